//! `weir bench --store postgres`: end to end and fan-out on a shared
//! PostgreSQL store, with one node and with two. Nodes run as child
//! processes so the CPU each spends is its own; PostgreSQL's CPU over the
//! same interval is read from its processes. Every row sits beside the
//! same-run ceiling (the same client straight to the same sink).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::harness::{Running, Sink, blast, cpu_of, event_bodies};
use super::{BenchArgs, row, webhook};

/// A fresh database on the server `admin_url` points at, dropped after.
pub(super) struct BenchDb {
    admin: tokio_postgres::Client,
    pub(super) name: String,
    pub(super) url: String,
}

impl BenchDb {
    pub(super) async fn create(admin_url: &str) -> anyhow::Result<BenchDb> {
        let (admin, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .context("connecting to PostgreSQL for the bench (--database-url)")?;
        tokio::spawn(conn);
        let name = format!("weir_bench_{:08x}", rand::random::<u32>());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&name);
        Ok(BenchDb {
            admin,
            name,
            url: url.to_string(),
        })
    }

    pub(super) fn store_section(&self) -> String {
        format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{}\"\n\n",
            self.url
        )
    }

    pub(super) async fn drop_db(self) -> anyhow::Result<()> {
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

/// CPU seconds every `postgres` process on this machine has used (live
/// ones; backends that exit during the run are missed, so weir keeps its
/// pool open throughout).
fn postgres_cpu() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_of)
        .sum()
}

struct Measured {
    rate: f64,
    weir_cpu_us: f64,
    pg_cpu_us: f64,
}

/// What the producers send, and what the sink must see.
struct Load {
    /// Request bodies, spread over the nodes.
    batches: Vec<String>,
    /// Producer connections in all.
    producers: usize,
    /// Requests the sink must receive.
    deliveries: usize,
}

/// Runs `config_body` on `nodes` child processes sharing a fresh database,
/// posts the load spread over them, and waits for it at the sink.
async fn run_cluster(
    args: &BenchArgs,
    admin_url: &str,
    config_body: &str,
    nodes: usize,
    load: Load,
    sink: &Sink,
) -> anyhow::Result<Measured> {
    let Load {
        batches,
        producers,
        deliveries,
    } = load;
    let db = BenchDb::create(admin_url).await?;
    let body = format!("{}{config_body}", db.store_section());
    let mut running = Vec::new();
    for _ in 0..nodes {
        running.push(Running::start(&body, &args.plugins_dir).await?);
    }
    let pids: Vec<u32> = running.iter().map(|r| r.pid()).collect();
    let (weir0, pg0): (f64, f64) = (pids.iter().map(|p| cpu_of(*p)).sum(), postgres_cpu());
    let started = Instant::now();
    let per_node = batches.len().div_ceil(nodes);
    let mut blasts = Vec::new();
    for (i, chunk) in batches.chunks(per_node).enumerate() {
        let url = format!("{}/v1/events", running[i].url);
        let chunk = Arc::new(chunk.to_vec());
        let conc = (producers / nodes).max(1);
        blasts.push(tokio::spawn(async move { blast(&url, chunk, conc).await }));
    }
    for b in blasts {
        b.await??;
    }
    sink.wait_for(deliveries, Duration::from_secs(900)).await?;
    let total = started.elapsed();
    let weir_cpu: f64 = pids.iter().map(|p| cpu_of(*p)).sum::<f64>() - weir0;
    let pg_cpu = postgres_cpu() - pg0;
    for r in running {
        r.stop().await?;
    }
    db.drop_db().await?;
    Ok(Measured {
        rate: deliveries as f64 / total.as_secs_f64(),
        weir_cpu_us: weir_cpu * 1e6 / deliveries as f64,
        pg_cpu_us: pg_cpu * 1e6 / deliveries as f64,
    })
}

fn report(name: &str, unit: &str, m: &Measured, ceiling: f64) {
    row(
        name,
        format!("{:.0} {unit}", m.rate),
        format!("{ceiling:.0} req/s"),
        Some(m.rate / ceiling),
    );
    let share = m.pg_cpu_us / (m.pg_cpu_us + m.weir_cpu_us).max(f64::MIN_POSITIVE);
    println!(
        "{:<58} {:>14} {:>18}",
        "  CPU per delivery: weir (all nodes) / PostgreSQL",
        format!("{:.0} µs", m.weir_cpu_us),
        format!("{:.0} µs ({:.0}% PG)", m.pg_cpu_us, share * 100.0)
    );
}

/// End to end and fan-out on PostgreSQL, with 1 node and with 2.
pub(super) async fn postgres(
    args: &BenchArgs,
    template: &serde_json::Value,
    admin_url: &str,
) -> anyhow::Result<()> {
    let sink = Sink::default();
    let url = sink.start().await?;
    for nodes in [1, 2] {
        // Ceiling first, in the same run: the same client, straight to the sink.
        let single: Vec<String> = event_bodies(template, args.events, "c")
            .iter()
            .map(|e| e.to_string())
            .collect();
        let ceiling = args.events as f64
            / blast(&url, Arc::new(single), args.concurrency)
                .await?
                .as_secs_f64();
        sink.count.store(0, Ordering::Relaxed);
        let batches: Vec<String> = event_bodies(template, args.events, &format!("e{nodes}-"))
            .chunks(args.batch)
            .map(|c| serde_json::Value::Array(c.to_vec()).to_string())
            .collect();
        let m = run_cluster(
            args,
            admin_url,
            &webhook("bench", &url, args.concurrency),
            nodes,
            Load {
                batches,
                producers: args.concurrency,
                deliveries: args.events,
            },
            &sink,
        )
        .await?;
        report(
            &format!("postgres, {nodes} node(s): end to end, 1 webhook + app_scope"),
            "ev/s",
            &m,
            ceiling,
        );
        sink.count.store(0, Ordering::Relaxed);

        let events = (2000 / args.fanout).max(20);
        let config: String = (0..args.fanout)
            .map(|i| webhook(&format!("h{i}"), &url, 4))
            .collect();
        let batches: Vec<String> = event_bodies(template, events, &format!("f{nodes}-"))
            .chunks(10)
            .map(|c| serde_json::Value::Array(c.to_vec()).to_string())
            .collect();
        let m = run_cluster(
            args,
            admin_url,
            &config,
            nodes,
            Load {
                batches,
                producers: 4,
                deliveries: events * args.fanout,
            },
            &sink,
        )
        .await?;
        report(
            &format!(
                "postgres, {nodes} node(s): fan-out {events} events x {} webhooks",
                args.fanout
            ),
            "dl/s",
            &m,
            ceiling,
        );
        sink.count.store(0, Ordering::Relaxed);
    }
    Ok(())
}
