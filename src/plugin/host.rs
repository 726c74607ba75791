//! The sandbox: engines and linkers (one of each per compiler tier, alike
//! in all else), per-call store with deadline and memory limit.
//!
//! Guests get WASI with nothing granted (no preopened directories, no
//! environment, no sockets; stdout/stderr captured into weir's log) and
//! `wasi:http` whose every outgoing request is refused, so components from
//! the usual toolchains link. Each call gets a fresh `Store`, made on the
//! engine that compiled the plugin it runs: a trapped store is never
//! reused. Cheap calls run where they are made, others on blocking threads
//! bounded by a semaphore (see [`super::pace`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::Semaphore;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::WasiHttpCtx;

use super::bindings::{self, Level};
use super::engine::{TICK, Tier, spawn_ticker};
use super::pace::{INLINE_BUDGET, run_inline};
use super::registry::{Loaded, Registry};
use super::state::{DenyHttp, HostState, LogSink, MAX_LOG_LINE, MemoryLimit, Tags};
use super::tier::TIER_THRESHOLD;
use super::{CallContext, Change, Compiler, PluginError, PluginKind, PluginStatus, Verdict};
use crate::config::{Config, PluginLimits};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::store::Rendered;

/// Largest body a plugin may produce (and largest `data` of an event a
/// source plugin makes).
pub const MAX_BODY: usize = 4 << 20;
/// Captured stdout/stderr per call.
const MAX_STDIO: usize = 4096;

/// The plugin host and registry. Cheap to clone.
#[derive(Clone)]
pub struct Plugins {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// Builds every plugin's optimised code.
    pub(super) cranelift: Tier,
    /// Builds a large plugin's first version, several times faster than
    /// Cranelift, so it serves while Cranelift's build is made. Made when
    /// first needed: each pooling engine reserves terabytes of address
    /// space, which a host without large plugins should not pay twice.
    winch: Arc<OnceLock<Tier>>,
    pub(super) registry: Arc<Registry>,
    limits: Mutex<PluginLimits>,
    metrics: Arc<Metrics>,
    pub(super) permits: Semaphore,
    breaker: super::breaker::Breaker,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Plugins {
    /// A host for `config`, caching compiled plugins under its data dir;
    /// a large plugin serves on Winch until its Cranelift build is ready.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Plugins> {
        let cache = config.server.data_dir.join("plugin-cache");
        let registry = Registry::new(Some(cache), Some(TIER_THRESHOLD));
        Self::build(config.plugins, metrics, registry)
    }

    /// A host without a compile cache or tiering, whose every plugin is
    /// compiled with Cranelift before it loads (dry runs, benchmarks).
    pub fn with_limits(limits: PluginLimits, metrics: Arc<Metrics>) -> anyhow::Result<Plugins> {
        Self::build(limits, metrics, Registry::new(None, None))
    }

    pub(super) fn build(
        limits: PluginLimits,
        metrics: Arc<Metrics>,
        registry: Registry,
    ) -> anyhow::Result<Plugins> {
        let cranelift = Tier::new(Compiler::Cranelift)?;
        let winch = Arc::new(OnceLock::new());
        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_ticker(cranelift.engine.clone(), winch.clone(), stop_ticker.clone());
        let concurrency = std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 2)
            .max(4);
        Ok(Plugins {
            inner: Arc::new(Inner {
                registry: Arc::new(registry),
                cranelift,
                winch,
                limits: Mutex::new(limits),
                metrics,
                permits: Semaphore::new(concurrency),
                breaker: Default::default(),
                stop_ticker,
            }),
        })
    }

    pub fn set_limits(&self, limits: PluginLimits) {
        *self.inner.limits.lock().expect("limits") = limits;
    }

    /// Loads every `*.wasm` in `dir`; failures are recorded, not fatal.
    pub fn load_dir(&self, dir: &Path) -> Vec<Change> {
        self.rescan(dir)
    }

    /// Brings the registry in line with `dir`: loads new and changed files
    /// (by content hash), unloads deleted ones. A file that fails to load
    /// leaves the previous version serving.
    pub fn rescan(&self, dir: &Path) -> Vec<Change> {
        self.inner.registry.rescan(&self.inner, dir)
    }

    /// Loads one file under its stem's name (dry runs); returns the name.
    pub fn load_file(&self, path: &Path) -> anyhow::Result<String> {
        self.inner.registry.load_file(&self.inner, path)
    }

    /// Checks that `path` is a loadable plugin, without loading it; returns
    /// its kind.
    pub fn validate_file(&self, path: &Path) -> anyhow::Result<PluginKind> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        super::compile::compile(&self.inner.cranelift, &bytes, None).map(|pre| pre.kind())
    }

    /// The kind of the version of `name` serving now; `None` when none is.
    pub fn kind(&self, name: &str) -> Option<PluginKind> {
        self.inner.registry.get(name).map(|l| l.pre.kind())
    }

    pub fn states(&self) -> Vec<PluginStatus> {
        self.inner.registry.states()
    }

    /// The plugins as loaded now. A chain runs on one snapshot, so an event
    /// is handled entirely by one version of each plugin, whatever reloads.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.inner.registry.snapshot())
    }

    /// Runs plugin `name` (as it is in `snapshot`) on one event.
    pub async fn call(
        &self,
        snapshot: &Snapshot,
        name: &str,
        event: &Event,
        request: &Rendered,
        config: &str,
        ctx: &CallContext<'_>,
    ) -> Result<Verdict, PluginError> {
        self.call_capturing_logs(snapshot, name, event, request, config, ctx)
            .await
            .0
    }

    /// Like [`Self::call`], also returning the log lines the call produced.
    pub async fn call_capturing_logs(
        &self,
        snapshot: &Snapshot,
        name: &str,
        event: &Event,
        request: &Rendered,
        config: &str,
        ctx: &CallContext<'_>,
    ) -> (Result<Verdict, PluginError>, Vec<String>) {
        let loaded = match self.inner.registry.lookup(&snapshot.0, name) {
            Ok(loaded) => loaded,
            Err(e) => return (Err(e), Vec::new()),
        };
        if let Err(e) = loaded.filter() {
            return (Err(e), Vec::new());
        }
        let job = CallJob {
            event: event.clone(),
            request: request.clone(),
            config: config.to_owned(),
            webhook: ctx.webhook.to_owned(),
            delivery: ctx.delivery.to_owned(),
        };
        let outcome = |v: &Verdict| match v {
            Verdict::Deliver(_) => "deliver",
            Verdict::Drop(_) => "drop",
        };
        self.guarded(
            ctx.webhook,
            loaded,
            outcome,
            move |inner, loaded, budget| inner.call_sync(loaded, &job, budget),
        )
        .await
    }

    /// Runs `job` under the host's guards: the breaker for (`bench_key`,
    /// plugin) and the metrics, whose `result` label is `outcome` of a
    /// success or `failure`. A version whose calls have been cheap runs here,
    /// under [`INLINE_BUDGET`]; others, and a call that overruns that budget,
    /// run on a blocking thread within the concurrency permits (see
    /// [`super::pace`]). `job` is given the deadline to use instead of the
    /// configured one, if any.
    pub(super) async fn guarded<R: Send + 'static>(
        &self,
        bench_key: &str,
        loaded: Arc<Loaded>,
        outcome: impl FnOnce(&R) -> &'static str,
        job: impl Fn(&Inner, &Loaded, Option<Duration>) -> (Result<R, PluginError>, Vec<String>)
        + Send
        + Sync
        + 'static,
    ) -> (Result<R, PluginError>, Vec<String>) {
        let name = loaded.name.clone();
        let name = name.as_str();
        let breaker = &self.inner.breaker;
        let version = Arc::as_ptr(&loaded) as usize;
        if let Some(left) = breaker.benched(bench_key, name, version, Instant::now()) {
            self.inner
                .metrics
                .plugin_calls
                .with_label_values(&[name, "benched"])
                .inc();
            let benched = PluginError::Benched {
                strikes: super::breaker::STRIKES,
                secs_left: left.as_secs().max(1),
            };
            return (Err(benched), Vec::new());
        }
        let started = Instant::now();
        let out = match self.try_inline(&loaded, &job) {
            Some(out) => out,
            None => {
                let _permit = self
                    .inner
                    .permits
                    .acquire()
                    .await
                    .expect("semaphore never closes");
                let inner = self.inner.clone();
                let loaded = loaded.clone();
                tokio::task::spawn_blocking(move || job(&inner, &loaded, None))
                    .await
                    .unwrap_or_else(|e| {
                        (
                            Err(PluginError::Trap(format!("host task failed: {e}"))),
                            Vec::new(),
                        )
                    })
            }
        };
        loaded.pace.record(started.elapsed());
        let exhausted = matches!(out.0, Err(PluginError::Timeout(_) | PluginError::Memory(_)));
        breaker.record(bench_key, name, version, exhausted, Instant::now());
        let m = &self.inner.metrics;
        m.plugin_seconds
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        let result = match &out.0 {
            Ok(r) => outcome(r),
            Err(_) => "failure",
        };
        m.plugin_calls.with_label_values(&[name, result]).inc();
        out
    }

    /// Makes the call here, under [`INLINE_BUDGET`], if `loaded` runs
    /// inline; `None` when it must be made on a blocking thread instead: it
    /// does not run inline, or this call overran the budget (not its own
    /// deadline) or made a WASI call that blocks. Those, and a call that ran
    /// out of memory, send the version to blocking threads from now on.
    fn try_inline<R>(
        &self,
        loaded: &Loaded,
        job: &impl Fn(&Inner, &Loaded, Option<Duration>) -> (Result<R, PluginError>, Vec<String>),
    ) -> Option<(Result<R, PluginError>, Vec<String>)> {
        if !loaded.pace.inline() {
            return None;
        }
        let timeout = self.inner.limits.lock().expect("limits").timeout;
        let out = run_inline(|| job(&self.inner, loaded, Some(INLINE_BUDGET)));
        let finished = match &out {
            None => false,
            Some((Err(PluginError::Timeout(_)), _)) => INLINE_BUDGET >= timeout,
            Some(_) => true,
        };
        if !finished || matches!(out, Some((Err(PluginError::Memory(_)), _))) {
            loaded.pace.to_blocking();
        }
        out.filter(|_| finished)
    }

    /// The version of filter plugin `name` serving now, outside any
    /// webhook's chain (dry runs, benchmarks).
    pub(super) fn serving_filter(&self, name: &str) -> Result<Arc<Loaded>, PluginError> {
        let loaded = self
            .inner
            .registry
            .get(name)
            .ok_or_else(|| PluginError::NotLoaded(name.into()))?;
        loaded.filter()?;
        Ok(loaded)
    }

    /// A synchronous call for benchmarks: no thread hop, no semaphore.
    pub fn call_blocking(
        &self,
        name: &str,
        event: &Event,
        request: &Rendered,
        config: &str,
    ) -> Result<Verdict, PluginError> {
        let loaded = self.serving_filter(name)?;
        let job = CallJob {
            event: event.clone(),
            request: request.clone(),
            config: config.to_owned(),
            webhook: String::new(),
            delivery: String::new(),
        };
        self.inner.call_sync(&loaded, &job, None).0
    }
}

/// A consistent view of the loaded plugins; see [`Plugins::snapshot`].
pub struct Snapshot(Arc<std::collections::HashMap<String, Arc<Loaded>>>);

pub(super) struct CallJob {
    pub(super) event: Event,
    pub(super) request: Rendered,
    pub(super) config: String,
    pub(super) webhook: String,
    pub(super) delivery: String,
}

impl Inner {
    /// The Winch tier, made now if this is its first use.
    pub(super) fn winch(&self) -> anyhow::Result<&Tier> {
        if let Some(tier) = self.winch.get() {
            return Ok(tier);
        }
        let tier = Tier::new(Compiler::Winch)?;
        Ok(self.winch.get_or_init(|| tier))
    }

    /// One call of a filter; `budget`, when given, replaces the configured
    /// deadline if shorter.
    pub(super) fn call_sync(
        &self,
        loaded: &Loaded,
        job: &CallJob,
        budget: Option<Duration>,
    ) -> (Result<Verdict, PluginError>, Vec<String>) {
        let pre = match loaded.filter() {
            Ok(pre) => pre,
            Err(e) => return (Err(e), Vec::new()),
        };
        let tags = Tags::Filter {
            webhook: job.webhook.clone(),
            event: job.event.id.clone(),
            delivery: job.delivery.clone(),
        };
        let (result, lines) = self.sandboxed(loaded, tags, budget, |store| {
            let filter = pre.instantiate(&mut *store)?;
            let event = bindings::Event {
                id: job.event.id.clone(),
                event_type: job.event.event_type.clone(),
                owner_id: job.event.owner_id.clone(),
                data: job.event.data.clone(),
                occurred_at: job.event.occurred_at.clone(),
            };
            let request = bindings::Request {
                body: job.request.body.clone(),
                headers: job.request.headers.clone(),
            };
            filter.call_handle(&mut *store, &event, &request, &job.config)
        });
        (result.and_then(convert_verdict), lines)
    }

    /// Runs `call` in a fresh store, on the engine that compiled `loaded`,
    /// with the configured deadline and memory limit, and turns what went
    /// wrong into a [`PluginError`]. Returns the guest's answer and the log
    /// lines (`host.log` and stdio) of the call.
    pub(super) fn sandboxed<R>(
        &self,
        loaded: &Loaded,
        tags: Tags,
        budget: Option<Duration>,
        call: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<Result<R, String>>,
    ) -> (Result<R, PluginError>, Vec<String>) {
        let limits = *self.limits.lock().expect("limits");
        let stdout = MemoryOutputPipe::new(MAX_STDIO);
        let stderr = MemoryOutputPipe::new(MAX_STDIO);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let state = HostState {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: DenyHttp,
            table: ResourceTable::new(),
            memory: MemoryLimit {
                max: limits.memory_bytes,
                exceeded: false,
            },
            log: LogSink {
                plugin: loaded.name.clone(),
                tags,
                lines: Vec::new(),
                dropped: 0,
            },
        };
        let mut store = Store::new(loaded.engine(), state);
        store.limiter(|s| &mut s.memory);
        let deadline = budget.map_or(limits.timeout, |b| b.min(limits.timeout));
        let ticks = (deadline.as_micros() / TICK.as_micros()).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        let result = call(&mut store).map_err(|e| {
            if store.data().memory.exceeded {
                return PluginError::Memory(limits.memory_bytes >> 20);
            }
            match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => PluginError::Timeout(limits.timeout.as_millis() as u64),
                Some(trap) => {
                    PluginError::Trap(with_last_words(trap.to_string(), &stderr.contents()))
                }
                None => PluginError::Trap(format!("call failed: {e}")),
            }
        });
        let result = result.and_then(|r| r.map_err(PluginError::Returned));
        let mut state = store.into_data();
        for (stream, pipe) in [("stdout", stdout), ("stderr", stderr)] {
            let text = String::from_utf8_lossy(&pipe.contents()).into_owned();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                state.log.line(Level::Info, &format!("{stream}: {line}"));
            }
        }
        state.log.finish();
        (result, state.log.lines)
    }
}

/// Adds the guest's last stderr line (a panic message, usually) to `what`.
fn with_last_words(what: String, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("note:"));
    match last {
        Some(line) => format!("{what}; stderr: {}", truncate(line, 200)),
        None => what,
    }
}

/// Checks what a plugin returned before it can reach a subscriber.
fn convert_verdict(v: bindings::Verdict) -> Result<Verdict, PluginError> {
    match v {
        bindings::Verdict::Drop(reason) => Ok(Verdict::Drop(truncate(&reason, MAX_LOG_LINE))),
        bindings::Verdict::Deliver(r) => check_output(r.body, r.headers).map(Verdict::Deliver),
    }
}

/// Vets a request a plugin produced: a body of at most 4 MiB that is valid
/// JSON unless the plugin set a non-JSON `content-type`, and headers that are
/// valid HTTP. Anything else is a plugin failure, never a malformed request.
pub fn check_output(body: String, headers: Vec<(String, String)>) -> Result<Rendered, PluginError> {
    if body.len() > MAX_BODY {
        return Err(PluginError::InvalidOutput(format!(
            "body of {} bytes is over the {} byte limit",
            body.len(),
            MAX_BODY
        )));
    }
    for (name, value) in &headers {
        if http::HeaderName::try_from(name.as_str()).is_err()
            || http::HeaderValue::try_from(value.as_str()).is_err()
        {
            return Err(PluginError::InvalidOutput(format!(
                "header {name:?} is not a valid HTTP header"
            )));
        }
    }
    let content_type = headers
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase());
    let json = content_type.as_deref().is_none_or(|ct| ct.contains("json"));
    if json && let Err(e) = crate::json::check_interoperable(&body) {
        return Err(PluginError::InvalidOutput(format!(
            "body is not valid JSON ({e})"
        )));
    }
    Ok(Rendered { body, headers })
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
