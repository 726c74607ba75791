//! `weir bench`: reproducible throughput and latency figures, each printed
//! beside a ceiling measured in the same run (the same client posting the same
//! bodies at the same concurrency straight to the same sink).
//!
//! Everything runs on loopback: an in-process keep-alive sink, weir on a temp
//! data dir (durable store, fsync on, signing on; in this process, or as a
//! child process where its own memory is measured), and the producers.
//! `harness` holds those pieces; the other modules are the scenarios.

mod cluster;
mod harness;
mod inbound;
mod latency;
mod load;
mod log;
mod throughput;
mod tiered;

use std::path::PathBuf;

use anyhow::Context as _;

/// What to run, from the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Events for the end-to-end run.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Concurrent producer connections (and the deliverer's max_in_flight).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Events per ingest request.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Webhooks in the fan-out run.
    #[arg(long, default_value_t = 100)]
    pub fanout: usize,
    /// Folder holding the built example plugins.
    #[arg(long, default_value = "plugins")]
    pub plugins_dir: PathBuf,
    /// The sample event (record.create).
    #[arg(long, default_value = "examples/events/record.create.json")]
    pub event: PathBuf,
    /// Extra plugin files (e.g. componentize-py/js builds) to time per call.
    #[arg(long)]
    pub foreign: Vec<PathBuf>,
    /// Calls timed per --foreign plugin.
    #[arg(long, default_value_t = 300)]
    pub foreign_calls: usize,
    /// Config given to the --foreign plugins.
    #[arg(long, default_value = "{}")]
    pub foreign_config: String,
    /// Also run end to end without the plugin, to show what the chain costs.
    #[arg(long)]
    pub without_plugin_too: bool,
    /// Where the misbehaving test plugins were built (the hostile run).
    #[arg(long, default_value = "tests/plugins/target/wasm32-wasip2/release")]
    pub hostile_dir: PathBuf,
    /// The misbehaving plugins in the hostile run, one webhook each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "spin_forever,memory_bomb,trap"
    )]
    pub hostile: Vec<String>,
    /// Pending deliveries in the backlog run.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: usize,
    /// Deliveries in the delivery-log paging run.
    #[arg(long, default_value_t = 1_000_000)]
    pub log_rows: usize,
    /// The store the PostgreSQL scenarios use: `sqlite` (the default) runs
    /// the usual scenarios; `postgres` runs end to end and fan-out on a
    /// fresh PostgreSQL database with one node and with two.
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// An admin URL of the PostgreSQL server to create bench databases on.
    #[arg(
        long,
        env = "WEIR_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Only these scenarios (comma separated:
    /// plugin,e2e,fanout,routing,inbound,latency,hostile,idle,overload,backlog,log;
    /// and `tiered`, only when named: landed -> in effect for each --foreign file).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

const FORM: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub(super) fn webhook(id: &str, url: &str, in_flight: usize) -> String {
    format!(
        "[[webhooks]]\nid = \"{id}\"\nurl = \"{url}\"\nsecrets = [\"{SECRET}\"]\nmax_in_flight = {in_flight}\n\
         [[webhooks.plugins]]\nname = \"app_scope\"\nconfig = {{ form_ids = [\"{FORM}\"] }}\n\n"
    )
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let template: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&args.event)
            .with_context(|| format!("reading {}", args.event.display()))?,
    )?;
    let wants = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    println!(
        "weir bench — {} cores, weir {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "{:<58} {:>14} {:>18} {:>8}",
        "scenario", "weir", "ceiling (same run)", "ratio"
    );
    if args.store == "postgres" {
        return cluster::postgres(&args, &template, &args.database_url).await;
    }
    anyhow::ensure!(args.store == "sqlite", "--store is sqlite or postgres");
    if wants("plugin") {
        throughput::plugin_call(&args)?;
    }
    if args.only.iter().any(|o| o == "tiered") {
        tiered::tiered(&args).await?;
    }
    if wants("e2e") {
        throughput::end_to_end(&args, &template, true).await?;
        if args.without_plugin_too {
            throughput::end_to_end(&args, &template, false).await?;
        }
    }
    if wants("fanout") {
        throughput::fan_out(&args, &template).await?;
    }
    if wants("routing") {
        throughput::routing(&args, &template).await?;
    }
    if wants("inbound") {
        inbound::inbound(&args, &template).await?;
    }
    if wants("latency") {
        latency::latency(&args, &template).await?;
    }
    if wants("hostile") {
        latency::hostile(&args, &template).await?;
    }
    if wants("idle") {
        load::idle_memory(&args).await?;
    }
    if wants("overload") {
        load::overload(&args, &template).await?;
    }
    if wants("backlog") {
        load::backlog(&args, &template).await?;
    }
    if wants("log") {
        log::log_paging(&args, &template).await?;
    }
    Ok(())
}

pub(super) fn row(name: &str, weir: String, ceiling: String, ratio: Option<f64>) {
    let ratio = ratio.map_or("".into(), |r| format!("{:.0}%", r * 100.0));
    println!("{name:<58} {weir:>14} {ceiling:>18} {ratio:>8}");
}

/// The line under a throughput row: weir's own CPU time (user + system, all
/// threads) per delivery, beside what one request of the same-run ceiling
/// cost the client and the sink together (the bench process's CPU).
pub(super) fn cpu_row(weir_us: f64, ceiling_us: Option<f64>) {
    let ceiling = ceiling_us.map_or(String::new(), |c| format!("{c:.0} µs/req"));
    println!(
        "{:<58} {:>14} {:>18}",
        "  weir CPU per delivery (ceiling: client + sink)",
        format!("{weir_us:.0} µs"),
        ceiling
    );
}
