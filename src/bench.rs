//! `weir bench`: reproducible throughput and latency figures, each printed
//! beside a ceiling measured in the same run (the same client posting the same
//! bodies at the same concurrency straight to the same sink).
//!
//! Everything runs in this process on loopback: an in-process keep-alive sink,
//! weir itself on a temp data dir (durable store, fsync on, signing on), and
//! the producers.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::http::HeaderMap;
use tokio::sync::{Notify, oneshot};

use crate::config::{Config, PluginLimits};
use crate::event::now_millis;
use crate::ingest::envelope;
use crate::plugin::Plugins;
use crate::store::Rendered;

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
    #[arg(long, default_value = "../shared/fixtures/record.create.json")]
    pub event: PathBuf,
    /// Extra plugin files (e.g. componentize-py/js builds) to time per call.
    #[arg(long)]
    pub foreign: Vec<PathBuf>,
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
    /// Only these scenarios (comma separated:
    /// plugin,e2e,fanout,latency,hostile,idle,overload,backlog).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// A sink that counts arrivals and remembers when each webhook-id arrived.
#[derive(Clone, Default)]
struct Sink {
    count: Arc<AtomicUsize>,
    arrived: Arc<Notify>,
    times: Arc<std::sync::Mutex<Vec<(String, Instant)>>>,
    record_times: Arc<std::sync::atomic::AtomicBool>,
    /// While set, every request is answered 503 and not counted.
    down: Arc<std::sync::atomic::AtomicBool>,
    /// When the first 503 went out.
    first_refusal: Arc<std::sync::OnceLock<Instant>>,
}

impl Sink {
    async fn start(&self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/sink", listener.local_addr()?);
        let me = self.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, _body: Bytes| {
            let me = me.clone();
            async move {
                if me.down.load(Ordering::Relaxed) {
                    me.first_refusal.get_or_init(Instant::now);
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down");
                }
                if me.record_times.load(Ordering::Relaxed) {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    me.times.lock().expect("times").push((id, Instant::now()));
                }
                me.count.fetch_add(1, Ordering::Relaxed);
                me.arrived.notify_waiters();
                (axum::http::StatusCode::OK, "ok")
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }

    async fn wait_for(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.count.load(Ordering::Relaxed) < n {
            let notified = self.arrived.notified();
            if self.count.load(Ordering::Relaxed) >= n {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(
                !left.is_zero(),
                "only {} of {n} arrived in {limit:?}",
                self.count.load(Ordering::Relaxed)
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
        Ok(())
    }
}

/// weir on a temp dir: in this process, or as a child process where its
/// own memory is measured.
struct Running {
    url: String,
    how: How,
    _dir: tempfile::TempDir,
}

enum How {
    InProcess {
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
    Child(tokio::process::Child),
}

impl Running {
    /// Writes config.toml (with `config_body`'s webhooks) and plugins/.
    fn prepare(
        config_body: &str,
        plugins_dir: &std::path::Path,
        extra_plugins: &[PathBuf],
    ) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
        let dir = tempfile::tempdir()?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins)?;
        for path in extra_plugins {
            let name = path.file_name().context("a plugin file name")?;
            std::fs::copy(path, plugins.join(name))
                .with_context(|| format!("{} (built by `cargo build`)", path.display()))?;
        }
        let app_scope = plugins_dir.join("app_scope.wasm");
        std::fs::copy(&app_scope, plugins.join("app_scope.wasm"))
            .with_context(|| format!("{} (build it with `cargo build`)", app_scope.display()))?;
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[delivery]\nallow_targets = [\"127.0.0.0/8\"]\n\n{config_body}"
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text)?;
        Ok((dir, path))
    }

    async fn start(config_body: &str, plugins_dir: &std::path::Path) -> anyhow::Result<Running> {
        Self::start_with(config_body, plugins_dir, &[]).await
    }

    async fn start_with(
        config_body: &str,
        plugins_dir: &std::path::Path,
        extra_plugins: &[PathBuf],
    ) -> anyhow::Result<Running> {
        let (dir, path) = Self::prepare(config_body, plugins_dir, extra_plugins)?;
        let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(crate::server::run(config, listener, async move {
            let _ = rx.await;
        }));
        Ok(Running {
            url,
            how: How::InProcess {
                stop: Some(tx),
                task,
            },
            _dir: dir,
        })
    }

    /// Starts `weir serve` as a child process (this same binary).
    async fn spawn(config_body: &str, plugins_dir: &std::path::Path) -> anyhow::Result<Running> {
        use tokio::io::AsyncBufReadExt;
        let (dir, path) = Self::prepare(config_body, plugins_dir, &[])?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("WEIR_LOG", "warn,weir::server=info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = tokio::io::BufReader::new(child.stderr.take().context("stderr")?).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(i) = line.find("addr=") {
                    let addr: String = line[i + 5..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    return Ok(addr);
                }
            }
            anyhow::bail!("weir serve exited before it was serving")
        })
        .await??;
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Running {
            url: format!("http://{addr}"),
            how: How::Child(child),
            _dir: dir,
        })
    }

    /// The process weir runs in.
    fn pid(&self) -> u32 {
        match &self.how {
            How::InProcess { .. } => std::process::id(),
            How::Child(c) => c.id().unwrap_or(0),
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self.how {
            How::InProcess { stop, task } => {
                let _ = stop.map(|s| s.send(()));
                task.await??;
            }
            How::Child(mut child) => {
                if let Some(pid) = child.id() {
                    // SIGTERM: the same graceful shutdown an operator gets.
                    std::process::Command::new("kill")
                        .arg(pid.to_string())
                        .status()?;
                }
                let status = child.wait().await?;
                anyhow::ensure!(status.success(), "weir serve exited with {status}");
            }
        }
        Ok(())
    }
}

const FORM: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn webhook(id: &str, url: &str, in_flight: usize) -> String {
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
    if wants("plugin") {
        plugin_call(&args)?;
    }
    if wants("e2e") {
        end_to_end(&args, &template, true).await?;
        if args.without_plugin_too {
            end_to_end(&args, &template, false).await?;
        }
    }
    if wants("fanout") {
        fan_out(&args, &template).await?;
    }
    if wants("latency") {
        latency(&args, &template).await?;
    }
    if wants("hostile") {
        hostile(&args, &template).await?;
    }
    if wants("idle") {
        idle_memory(&args).await?;
    }
    if wants("overload") {
        overload(&args, &template).await?;
    }
    if wants("backlog") {
        backlog(&args, &template).await?;
    }
    Ok(())
}

fn row(name: &str, weir: String, ceiling: String, ratio: Option<f64>) {
    let ratio = ratio.map_or("".into(), |r| format!("{:.0}%", r * 100.0));
    println!("{name:<58} {weir:>14} {ceiling:>18} {ratio:>8}");
}

fn plugin_call(args: &BenchArgs) -> anyhow::Result<()> {
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
            .map(|p| (p.clone(), args.foreign_config.clone(), 300)),
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

/// Posts `bodies` to `url` with `concurrency` keep-alive connections.
async fn blast(
    url: &str,
    bodies: Arc<Vec<String>>,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, bodies, next, url) =
            (client.clone(), bodies.clone(), next.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "{url} answered {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// The sample event as JSON text with a slot for its id, so batches are
/// cheap to make on the fly.
struct Shape {
    before: String,
    after: String,
}

impl Shape {
    fn new(template: &serde_json::Value) -> Shape {
        let mut e = template.clone();
        e["id"] = serde_json::json!("WEIR_ID_SLOT");
        let text = e.to_string();
        let (before, after) = text.split_once("WEIR_ID_SLOT").expect("the id slot");
        Shape {
            before: before.to_owned(),
            after: after.to_owned(),
        }
    }

    /// A JSON array of `n` events with ids `{prefix}{from}`, ...
    fn batch(&self, prefix: &str, from: usize, n: usize) -> String {
        let mut out = String::with_capacity(n * (self.before.len() + self.after.len() + 16));
        out.push('[');
        for i in from..from + n {
            if i > from {
                out.push(',');
            }
            out.push_str(&self.before);
            out.push_str(prefix);
            out.push_str(&i.to_string());
            out.push_str(&self.after);
        }
        out.push(']');
        out
    }
}

fn event_bodies(template: &serde_json::Value, n: usize, prefix: &str) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let mut e = template.clone();
            e["id"] = serde_json::json!(format!("{prefix}{i}"));
            e
        })
        .collect()
}

async fn end_to_end(
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
    let ceiling = blast(&url, Arc::new(single), args.concurrency).await?;
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
    let started = Instant::now();
    let ingest = blast(
        &format!("{}/v1/events", weir.url),
        Arc::new(batches),
        args.concurrency,
    )
    .await?;
    sink.wait_for(args.events, Duration::from_secs(600)).await?;
    let total = started.elapsed();
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
    row(
        &format!("  ingest only (durable 202s, batches of {})", args.batch),
        format!("{:.0} ev/s", args.events as f64 / ingest.as_secs_f64()),
        String::new(),
        None,
    );
    Ok(())
}

async fn fan_out(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let sink = Sink::default();
    let url = sink.start().await?;
    let per_hook = 4;
    let events = (2000 / args.fanout).max(20);
    let single: Vec<String> = event_bodies(template, events * args.fanout, "c")
        .iter()
        .map(|e| e.to_string())
        .collect();
    let ceiling = blast(&url, Arc::new(single), args.concurrency).await?;
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
    let started = Instant::now();
    blast(&format!("{}/v1/events", weir.url), Arc::new(batches), 4).await?;
    sink.wait_for(events * args.fanout, Duration::from_secs(600))
        .await?;
    let total = started.elapsed();
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
    Ok(())
}

async fn latency(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let rate = 1000;
    let (p50, p99) = ack_to_arrival(args, template, rate, 5, "", &[]).await?;
    row(
        &format!("latency at {rate} ev/s: ingest ack -> sink (p50 / p99)"),
        format!("{:.1} ms", p50.as_secs_f64() * 1e3),
        format!("p99 {:.1} ms", p99.as_secs_f64() * 1e3),
        None,
    );
    Ok(())
}

/// A healthy webhook's latency alone, then beside three webhooks whose
/// plugins spin to their deadline, blow their memory limit or trap on every
/// event: what the neighbours cost it, against their 50 ms time budget.
async fn hostile(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let rate = 20;
    let names = &args.hostile;
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| args.hostile_dir.join(format!("{n}.wasm")))
        .collect();
    let neighbours: String = names
        .iter()
        .map(|n| {
            format!(
                "[[webhooks]]\nid = \"{}\"\nurl = \"https://example.com/never\"\n\
                 [[webhooks.plugins]]\nname = \"{n}\"\non_error = \"hold\"\n\n",
                n.replace('_', "-")
            )
        })
        .collect();
    let seconds = 15;
    let (alone50, alone99) = ack_to_arrival(args, template, rate, seconds, "", &[]).await?;
    let (with50, with99) =
        ack_to_arrival(args, template, rate, seconds, &neighbours, &files).await?;
    row(
        &format!("hostile neighbours, {rate} ev/s for {seconds} s: healthy webhook alone"),
        format!("{:.1} ms p50", alone50.as_secs_f64() * 1e3),
        format!("p99 {:.1} ms", alone99.as_secs_f64() * 1e3),
        None,
    );
    row(
        &format!("  beside webhooks with {}", names.join(", ")),
        format!("{:.1} ms p50", with50.as_secs_f64() * 1e3),
        format!("p99 {:.1} ms", with99.as_secs_f64() * 1e3),
        None,
    );
    Ok(())
}

/// Posts one event at a time at `rate` per second for `seconds` to a webhook with
/// `app_scope` (plus `extra_hooks`) and returns the p50 and p99 of ingest
/// ack -> arrival at the sink.
async fn ack_to_arrival(
    args: &BenchArgs,
    template: &serde_json::Value,
    rate: u64,
    seconds: u64,
    extra_hooks: &str,
    extra_plugins: &[PathBuf],
) -> anyhow::Result<(Duration, Duration)> {
    let sink = Sink::default();
    sink.record_times.store(true, Ordering::Relaxed);
    let url = sink.start().await?;
    let config = format!("{}{extra_hooks}", webhook("lat", &url, args.concurrency));
    let weir = Running::start_with(&config, &args.plugins_dir, extra_plugins).await?;
    let client = reqwest::Client::new();
    let n = (rate * seconds) as usize;
    let bodies = event_bodies(template, n, "l");
    let acks = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for body in bodies {
        tick.tick().await;
        let (client, url, acks) = (
            client.clone(),
            format!("{}/v1/events", weir.url),
            acks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let id = body["id"].as_str().unwrap_or_default().to_owned();
            let r = client.post(url).json(&body).send().await;
            if matches!(r, Ok(ref r) if r.status() == 202) {
                acks.lock().expect("acks").push((id, Instant::now()));
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    sink.wait_for(n, Duration::from_secs(120)).await?;
    weir.stop().await?;
    let arrivals: std::collections::HashMap<String, Instant> =
        sink.times.lock().expect("times").iter().cloned().collect();
    let mut lat: Vec<Duration> = acks
        .lock()
        .expect("acks")
        .iter()
        .filter_map(|(id, acked)| {
            arrivals
                .get(id)
                .map(|a| a.saturating_duration_since(*acked))
        })
        .collect();
    anyhow::ensure!(!lat.is_empty(), "no event arrived");
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    Ok((pct(50), pct(99)))
}

async fn idle_memory(args: &BenchArgs) -> anyhow::Result<()> {
    let config: String = (0..1000)
        .map(|i| webhook(&format!("idle{i}"), "https://example.com/hook", 32))
        .collect();
    let weir = Running::spawn(&config, &args.plugins_dir).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_kib_of(weir.pid());
    weir.stop().await?;
    row(
        "memory: 1,000 webhooks configured, idle (weir's RSS)",
        format!("{:.0} MB", during as f64 / 1024.0),
        String::new(),
        None,
    );
    Ok(())
}

fn rss_kib_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Samples a process's RSS every 100 ms until dropped; keeps the peak.
struct RssWatch {
    peak: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_kib_of(pid)));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(rss_kib_of(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssWatch { peak, task }
    }

    fn peak_mb(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Producers offering twice what ingest can commit: weir must answer 429
/// with `Retry-After` for what it cannot take, keep memory bounded, and
/// deliver everything it accepted.
async fn overload(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let sink = Sink::default();
    let url = sink.start().await?;
    let weir = Running::spawn(&webhook("over", &url, args.concurrency), &args.plugins_dir).await?;
    let ingest_url = format!("{}/v1/events", weir.url);
    // Capacity: closed-loop producers, as fast as durable 202s come back.
    let n = args.events;
    let batches: Vec<String> = event_bodies(template, n, "cap")
        .chunks(args.batch)
        .map(|c| serde_json::Value::Array(c.to_vec()).to_string())
        .collect();
    let took = blast(&ingest_url, Arc::new(batches), args.concurrency).await?;
    let capacity = n as f64 / took.as_secs_f64();
    // Open loop at twice that for 5 s: requests go out on a clock, whatever
    // comes back.
    let offered_rate = 2.0 * capacity;
    let seconds = 5.0;
    let requests = (offered_rate * seconds / args.batch as f64) as usize;
    let interval = Duration::from_secs_f64(seconds / requests as f64);
    let client = reqwest::Client::new();
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    let retry_after_ok = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let watch = RssWatch::start(weir.pid());
    let started = Instant::now();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(requests);
    let shape = Shape::new(template);
    for i in 0..requests {
        tick.tick().await;
        let body = shape.batch("over", i * args.batch, args.batch);
        let (client, url) = (client.clone(), ingest_url.clone());
        let (accepted, refused, other, retry_after_ok, others) = (
            accepted.clone(),
            refused.clone(),
            other.clone(),
            retry_after_ok.clone(),
            others.clone(),
        );
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match r.map(|r| (r.status().as_u16(), r.headers().contains_key("retry-after"))) {
                Ok((202, _)) => {
                    accepted.fetch_add(batch, Ordering::Relaxed);
                }
                Ok((429 | 503, has_retry_after)) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    if has_retry_after {
                        retry_after_ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                unexpected => {
                    other.fetch_add(1, Ordering::Relaxed);
                    let mut seen = others.lock().expect("others");
                    if seen.len() < 3 {
                        seen.push(format!("{unexpected:?}"));
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let offered_for = started.elapsed();
    let accepted = accepted.load(Ordering::Relaxed);
    // Nothing accepted is lost: all of it (and the capacity run) arrives.
    sink.wait_for(n + accepted, Duration::from_secs(900))
        .await?;
    let peak = watch.peak_mb();
    drop(watch);
    weir.stop().await?;
    let refused = refused.load(Ordering::Relaxed);
    for o in others.lock().expect("others").iter() {
        println!("  (unexpected answer: {o})");
    }
    row(
        &format!(
            "overload: offered {:.0} ev/s, 2x ingest capacity",
            requests as f64 * args.batch as f64 / offered_for.as_secs_f64()
        ),
        format!("{:.0} ev/s in", accepted as f64 / offered_for.as_secs_f64()),
        format!("capacity {capacity:.0} ev/s"),
        None,
    );
    row(
        "  refused with 429/503 (with Retry-After) / other answers",
        format!("{refused} ({})", retry_after_ok.load(Ordering::Relaxed)),
        format!("{} other", other.load(Ordering::Relaxed)),
        None,
    );
    row(
        "  accepted events delivered; weir's peak RSS",
        format!("{accepted} of {accepted}"),
        format!("{peak:.0} MB"),
        None,
    );
    Ok(())
}

/// A subscriber down while a backlog of `--backlog` deliveries builds, then
/// back: peak memory while it builds, and how fast it drains.
async fn backlog(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let sink = Sink::default();
    sink.down.store(true, Ordering::Relaxed);
    let url = sink.start().await?;
    let weir = Running::spawn(&webhook("down", &url, args.concurrency), &args.plugins_dir).await?;
    let n = args.backlog;
    let watch = RssWatch::start(weir.pid());
    let started = Instant::now();
    // Bodies are made a chunk at a time so the producer stays small.
    let shape = Shape::new(template);
    let chunk = 100_000;
    for first in (0..n).step_by(chunk) {
        let batches: Vec<String> = (first..(first + chunk).min(n))
            .step_by(1000)
            .map(|from| shape.batch("b", from, 1000.min(n - from)))
            .collect();
        blast(&format!("{}/v1/events", weir.url), Arc::new(batches), 4).await?;
    }
    let built = started.elapsed();
    let build_peak = watch.peak_mb();
    // Down for at least 30 s from its first refusal: an outage, not a blip.
    let first = *sink
        .first_refusal
        .get()
        .context("the subscriber saw no attempt")?;
    tokio::time::sleep(Duration::from_secs(31).saturating_sub(first.elapsed())).await;
    let back = Instant::now();
    sink.down.store(false, Ordering::Relaxed);
    sink.wait_for(n, Duration::from_secs(3600)).await?;
    let drained = back.elapsed();
    let peak = watch.peak_mb();
    drop(watch);
    weir.stop().await?;
    row(
        &format!("backlog: {n} pending for a down subscriber, built in"),
        format!("{:.1} s", built.as_secs_f64()),
        format!("{:.0} ev/s", n as f64 / built.as_secs_f64()),
        None,
    );
    row(
        "  weir's peak RSS while it builds / overall",
        format!("{build_peak:.0} MB"),
        format!("{peak:.0} MB"),
        None,
    );
    row(
        "  drain once the subscriber is back",
        format!("{:.0} dl/s", n as f64 / drained.as_secs_f64()),
        format!("{:.1} s", drained.as_secs_f64()),
        None,
    );
    Ok(())
}
