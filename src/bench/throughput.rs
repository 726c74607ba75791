//! Throughput: one plugin call, end to end, and fan-out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::harness::{Running, Sink, blast, event_bodies, own_cpu};
use super::{BenchArgs, FORM, cpu_row, row, webhook};
use crate::config::PluginLimits;
use crate::event::now_millis;
use crate::ingest::envelope;
use crate::plugin::Plugins;
use crate::store::Rendered;

pub(super) fn plugin_call(args: &BenchArgs) -> anyhow::Result<()> {
    let host = Plugins::with_limits(
        PluginLimits {
            timeout: Duration::from_secs(5),
            memory_bytes: 256 << 20,
        },
        Default::default(),
    )?;
    let bytes = std::fs::read(&args.event)?;
    let event = envelope::parse_body(&bytes, now_millis())?.remove(0);
    let request = Rendered {
        body: event.envelope_json(),
        headers: vec![],
    };
    let app_scope = format!("{{\"form_ids\": [\"{FORM}\"]}}");
    let mut plugins = vec![(args.plugins_dir.join("app_scope.wasm"), app_scope, 20_000)];
    plugins.extend(
        args.foreign
            .iter()
            .map(|p| (p.clone(), args.foreign_config.clone(), args.foreign_calls)),
    );
    for (path, config, calls) in plugins {
        let started = Instant::now();
        let name = host.load_file(&path)?;
        let compile = started.elapsed();
        for _ in 0..calls / 20 {
            host.call_blocking(&name, &event, &request, &config)?;
        }
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            let v = host.call_blocking(&name, &event, &request, &config);
            samples.push(t.elapsed());
            anyhow::ensure!(v.is_ok(), "{name} failed: {v:?}");
        }
        samples.sort();
        let median = samples[samples.len() / 2];
        let p99 = samples[samples.len() * 99 / 100];
        row(
            &format!("plugin call: {name}, record.create, fresh instance"),
            format!("{:.1} µs p50", median.as_secs_f64() * 1e6),
            format!("p99 {:.1} µs", p99.as_secs_f64() * 1e6),
            None,
        );
        row(
            &format!(
                "  compile {name} ({} KB), uncached",
                std::fs::metadata(&path)?.len() / 1024
            ),
            format!("{:.2} s", compile.as_secs_f64()),
            String::new(),
            None,
        );
    }
    Ok(())
}

pub(super) async fn end_to_end(
    args: &BenchArgs,
    template: &serde_json::Value,
    with_plugin: bool,
) -> anyhow::Result<()> {
    let sink = Sink::default();
    let url = sink.start().await?;
    // Ceiling: one event per POST, straight to the sink.
    let single: Vec<String> = event_bodies(template, args.events, "c")
        .iter()
        .map(|e| e.to_string())
        .collect();
    let own0 = own_cpu();
    let ceiling = blast(&url, Arc::new(single), args.concurrency).await?;
    let ceiling_cpu = (own_cpu() - own0) * 1e6 / args.events as f64;
    let ceiling_rate = args.events as f64 / ceiling.as_secs_f64();
    sink.count.store(0, Ordering::Relaxed);

    let mut hook = webhook("bench", &url, args.concurrency);
    if !with_plugin {
        hook = hook
            .split("[[webhooks.plugins]]")
            .next()
            .unwrap_or_default()
            .to_owned();
    }
    let weir = Running::start(&hook, &args.plugins_dir).await?;
    let batches: Vec<String> = event_bodies(template, args.events, "e")
        .chunks(args.batch)
        .map(|c| serde_json::Value::Array(c.to_vec()).to_string())
        .collect();
    let cpu0 = weir.cpu();
    let started = Instant::now();
    let ingest = blast(
        &format!("{}/v1/events", weir.url),
        Arc::new(batches),
        args.concurrency,
    )
    .await?;
    sink.wait_for(args.events, Duration::from_secs(600)).await?;
    let total = started.elapsed();
    let weir_cpu = (weir.cpu() - cpu0) * 1e6 / args.events as f64;
    weir.stop().await?;
    let rate = args.events as f64 / total.as_secs_f64();
    row(
        &format!(
            "end to end, 1 webhook{} ({} events)",
            if with_plugin {
                " + app_scope"
            } else {
                ", no plugin"
            },
            args.events
        ),
        format!("{rate:.0} ev/s"),
        format!("{ceiling_rate:.0} req/s"),
        Some(rate / ceiling_rate),
    );
    cpu_row(weir_cpu, Some(ceiling_cpu));
    row(
        &format!("  ingest only (durable 202s, batches of {})", args.batch),
        format!("{:.0} ev/s", args.events as f64 / ingest.as_secs_f64()),
        String::new(),
        None,
    );
    Ok(())
}

pub(super) async fn fan_out(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let sink = Sink::default();
    let url = sink.start().await?;
    let per_hook = 4;
    let events = (2000 / args.fanout).max(20);
    let single: Vec<String> = event_bodies(template, events * args.fanout, "c")
        .iter()
        .map(|e| e.to_string())
        .collect();
    let own0 = own_cpu();
    let ceiling = blast(&url, Arc::new(single), args.concurrency).await?;
    let ceiling_cpu = (own_cpu() - own0) * 1e6 / (events * args.fanout) as f64;
    let ceiling_rate = (events * args.fanout) as f64 / ceiling.as_secs_f64();
    sink.count.store(0, Ordering::Relaxed);
    let config: String = (0..args.fanout)
        .map(|i| webhook(&format!("h{i}"), &url, per_hook))
        .collect();
    let weir = Running::start(&config, &args.plugins_dir).await?;
    let batches: Vec<String> = event_bodies(template, events, "f")
        .chunks(10)
        .map(|c| serde_json::Value::Array(c.to_vec()).to_string())
        .collect();
    let cpu0 = weir.cpu();
    let started = Instant::now();
    blast(&format!("{}/v1/events", weir.url), Arc::new(batches), 4).await?;
    sink.wait_for(events * args.fanout, Duration::from_secs(600))
        .await?;
    let total = started.elapsed();
    let weir_cpu = (weir.cpu() - cpu0) * 1e6 / (events * args.fanout) as f64;
    weir.stop().await?;
    let rate = (events * args.fanout) as f64 / total.as_secs_f64();
    row(
        &format!(
            "fan-out: {events} events x {} webhooks, each with a plugin",
            args.fanout
        ),
        format!("{rate:.0} dl/s"),
        format!("{ceiling_rate:.0} req/s"),
        Some(rate / ceiling_rate),
    );
    cpu_row(weir_cpu, Some(ceiling_cpu));
    Ok(())
}

/// Routing with many webhooks: 1,000 owners with 10 webhooks each, every
/// event matching its owner's 10. Beside it, in the same run and with the
/// same number of deliveries: 1 webhook (the end-to-end shape) and the same
/// 10 webhooks alone. No plugins, so the rows differ only in routing and in
/// how many workers share the work.
pub(super) async fn routing(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    const OWNERS: usize = 1_000;
    const PER_OWNER: usize = 10;
    let deliveries = (args.events * 2).max(10_000);
    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    for (owners, per_owner) in [(1, 1), (1, PER_OWNER), (OWNERS, PER_OWNER)] {
        let sink = Sink::default();
        let url = sink.start().await?;
        let config: String = (0..owners)
            .flat_map(|o| (0..per_owner).map(move |j| (o, j)))
            .map(|(o, j)| {
                format!(
                    "[[webhooks]]\nid = \"o{o}-{j}\"\nurl = \"{url}\"\nowners = [\"o{o}\"]\nmax_in_flight = {}\n\n",
                    args.concurrency
                )
            })
            .collect();
        let weir = Running::start(&config, &args.plugins_dir).await?;
        let events = deliveries / per_owner;
        let mut bodies = event_bodies(template, events, "r");
        for (i, e) in bodies.iter_mut().enumerate() {
            e["owner_id"] = serde_json::json!(format!("o{}", i % owners));
        }
        let batches: Vec<String> = bodies
            .chunks(args.batch)
            .map(|c| serde_json::Value::Array(c.to_vec()).to_string())
            .collect();
        let cpu0 = weir.cpu();
        let started = Instant::now();
        blast(
            &format!("{}/v1/events", weir.url),
            Arc::new(batches),
            args.concurrency,
        )
        .await?;
        sink.wait_for(deliveries, Duration::from_secs(600)).await?;
        let total = started.elapsed();
        cpus.push((weir.cpu() - cpu0) * 1e6 / deliveries as f64);
        weir.stop().await?;
        rates.push(deliveries as f64 / total.as_secs_f64());
    }
    row(
        &format!("routing: 1 webhook, no plugin ({deliveries} deliveries)"),
        format!("{:.0} dl/s", rates[0]),
        String::new(),
        None,
    );
    cpu_row(cpus[0], None);
    row(
        &format!("routing: {PER_OWNER} webhooks, all matching"),
        format!("{:.0} dl/s", rates[1]),
        format!("{:.0} dl/s", rates[0]),
        Some(rates[1] / rates[0]),
    );
    cpu_row(cpus[1], None);
    row(
        &format!(
            "routing: {} webhooks, {OWNERS} owners, {PER_OWNER} matching",
            OWNERS * PER_OWNER
        ),
        format!("{:.0} dl/s", rates[2]),
        format!("{:.0} dl/s", rates[0]),
        Some(rates[2] / rates[0]),
    );
    cpu_row(cpus[2], None);
    println!(
        "{:<58} {:>14}",
        "  10,000 webhooks against the same 10 alone",
        format!("{:.0}%", rates[2] / rates[1] * 100.0)
    );
    Ok(())
}
