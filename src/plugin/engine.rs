//! The engines plugins are compiled for and run on: one per compiler
//! (Cranelift for every plugin, Winch for a large one's first build), alike
//! in everything else, each with the linker of what plugins may import, and
//! the ticker that advances their epochs, by which call deadlines count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

use super::Compiler;
use super::bindings::{self, Filter};
use super::state::HostState;

/// How often the epoch advances; deadlines are counted in these ticks.
pub(super) const TICK: Duration = Duration::from_millis(2);
/// Ceiling for memory the pool reserves per instance; the configured
/// `memory_mb` is enforced below it by the store's limiter.
const POOL_MAX_MEMORY: usize = 1 << 30;

/// An engine and its linker, for one compiler. The two tiers are alike in
/// everything else, so a plugin behaves the same on either, only faster on
/// Cranelift.
#[derive(Clone)]
pub(super) struct Tier {
    pub(super) compiler: Compiler,
    pub(super) engine: Engine,
    pub(super) linker: Linker<HostState>,
}

impl Tier {
    pub(super) fn new(compiler: Compiler) -> anyhow::Result<Tier> {
        let engine = engine(compiler)?;
        let linker = linker(&engine)?;
        Ok(Tier {
            compiler,
            engine,
            linker,
        })
    }
}

/// What every plugin may import: WASI (nothing granted), `wasi:http` (every
/// request refused) and weir's `host`.
fn linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker: Linker<HostState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    Filter::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    // The source world's `host` is the filter world's, linked above.
    bindings::source::weir::plugin::inbound::add_to_linker::<_, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}

fn engine(compiler: Compiler) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(2048)
        .total_memories(1024)
        .total_tables(1024)
        .max_memory_size(POOL_MAX_MEMORY)
        .table_elements(100_000)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        // Reset a slot without madvise where possible: a filter dirties few
        // pages, and madvise costs page faults and TLB shootdowns per call.
        // PAGEMAP_SCAN (Linux 6.7+) finds the dirty pages so only those are
        // reset; elsewhere the kept-resident part is memset.
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = wasmtime::Config::new();
    config
        .strategy(match compiler {
            Compiler::Cranelift => Strategy::Cranelift,
            Compiler::Winch => Strategy::Winch,
        })
        .wasm_component_model(true)
        // Winch honours epoch deadlines too (since wasmtime 29, whatever
        // the `epoch_interruption` doc says); a test holds it to that.
        .epoch_interruption(true)
        // Plugins are called synchronously; the per-store async task
        // machinery of the component model would be pure overhead.
        .concurrency_support(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

/// Advances the epoch of both tiers' engines (Winch's once it is made), so
/// a deadline means the same on either.
pub(super) fn spawn_ticker(cranelift: Engine, winch: Arc<OnceLock<Tier>>, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("weir-plugin-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                cranelift.increment_epoch();
                if let Some(winch) = winch.get() {
                    winch.engine.increment_epoch();
                }
            }
        })
        .expect("spawn epoch ticker");
}
