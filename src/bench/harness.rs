//! The pieces every scenario uses: the sink, weir on a temp dir, the
//! producers and an RSS sampler.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::http::HeaderMap;
use tokio::sync::Notify;

/// A sink that counts arrivals and remembers when each webhook-id arrived.
#[derive(Clone, Default)]
pub(super) struct Sink {
    pub(super) count: Arc<AtomicUsize>,
    pub(super) arrived: Arc<Notify>,
    pub(super) times: Arc<std::sync::Mutex<Vec<(String, Instant)>>>,
    pub(super) record_times: Arc<std::sync::atomic::AtomicBool>,
    /// While set, every request is answered 503 and not counted.
    pub(super) down: Arc<std::sync::atomic::AtomicBool>,
    /// When the first 503 went out.
    pub(super) first_refusal: Arc<std::sync::OnceLock<Instant>>,
}

impl Sink {
    pub(super) async fn start(&self) -> anyhow::Result<String> {
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

    pub(super) async fn wait_for(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
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

/// weir on a temp dir, as a child process (this same binary running `weir
/// serve`), so the CPU time and memory it uses are its own and not the
/// producers' or the sink's.
pub(super) struct Running {
    pub(super) url: String,
    child: tokio::process::Child,
    /// Holds config.toml, plugins/ and the data dir; removed on drop.
    dir: tempfile::TempDir,
}

impl Running {
    /// Writes config.toml (with `config_body`'s webhooks) and plugins/.
    pub(super) fn prepare(
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

    pub(super) async fn start(
        config_body: &str,
        plugins_dir: &std::path::Path,
    ) -> anyhow::Result<Running> {
        Self::start_with(config_body, plugins_dir, &[]).await
    }

    /// Starts `weir serve` on `config_body`, with `extra_plugins` copied
    /// into its plugins folder, and returns once it is serving.
    pub(super) async fn start_with(
        config_body: &str,
        plugins_dir: &std::path::Path,
        extra_plugins: &[PathBuf],
    ) -> anyhow::Result<Running> {
        use tokio::io::AsyncBufReadExt;
        let (dir, path) = Self::prepare(config_body, plugins_dir, extra_plugins)?;
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
            child,
            dir,
        })
    }

    /// The folder holding its config.toml and plugins/.
    pub(super) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The process weir runs in.
    pub(super) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// CPU seconds (user + system) weir has used so far.
    pub(super) fn cpu(&self) -> f64 {
        cpu_of(self.pid())
    }

    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SIGTERM: the same graceful shutdown an operator gets.
            std::process::Command::new("kill")
                .arg(pid.to_string())
                .status()?;
        }
        let status = self.child.wait().await?;
        anyhow::ensure!(status.success(), "weir serve exited with {status}");
        Ok(())
    }
}

/// CPU seconds (user + system) a process has used, all its threads.
pub(super) fn cpu_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command (which may hold spaces) in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / USER_HZ)
        })
        .unwrap_or(0.0)
}

/// The unit of `/proc/<pid>/stat`'s times: 100 on Linux, whatever the kernel's HZ.
const USER_HZ: f64 = 100.0;

/// CPU seconds the bench process itself (producers and sink) has used.
pub(super) fn own_cpu() -> f64 {
    cpu_of(std::process::id())
}

/// Posts `bodies` (JSON) to `url` with `concurrency` keep-alive connections.
pub(super) async fn blast(
    url: &str,
    bodies: Arc<Vec<String>>,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let requests = bodies
        .iter()
        .map(|body| Post {
            body: body.clone(),
            headers: vec![("content-type", "application/json".into())],
        })
        .collect();
    blast_requests(url, Arc::new(requests), concurrency).await
}

/// One request of a load: its body and headers.
pub(super) struct Post {
    pub(super) body: String,
    pub(super) headers: Vec<(&'static str, String)>,
}

/// Posts `requests` to `url` with `concurrency` keep-alive connections;
/// every answer must be a success.
pub(super) async fn blast_requests(
    url: &str,
    requests: Arc<Vec<Post>>,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, requests, next, url) = (
            client.clone(),
            requests.clone(),
            next.clone(),
            url.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(post) = requests.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let mut req = client.post(&url).body(post.body.clone());
                for (name, value) in &post.headers {
                    req = req.header(*name, value);
                }
                let r = req.send().await?;
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
pub(super) struct Shape {
    pub(super) before: String,
    pub(super) after: String,
}

impl Shape {
    pub(super) fn new(template: &serde_json::Value) -> Shape {
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
    pub(super) fn batch(&self, prefix: &str, from: usize, n: usize) -> String {
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

pub(super) fn event_bodies(
    template: &serde_json::Value,
    n: usize,
    prefix: &str,
) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let mut e = template.clone();
            e["id"] = serde_json::json!(format!("{prefix}{i}"));
            e
        })
        .collect()
}

pub(super) fn rss_kib_of(pid: u32) -> u64 {
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
pub(super) struct RssWatch {
    pub(super) peak: Arc<std::sync::atomic::AtomicU64>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    pub(super) fn start(pid: u32) -> RssWatch {
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

    pub(super) fn peak_mb(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
