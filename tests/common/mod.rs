//! Test harness: a real weir on port 0 and fake subscribers on port 0 that
//! record every request and answer as the test scripts them.
#![allow(dead_code)]

pub mod browser;
pub mod process;
pub mod proxy;
mod store;

pub use store::{
    BACKEND, Backend, TestDir, assert_on_test_store, backend, on_ci, postgres_or_skip, tempdir,
    with_store, write_config,
};

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

/// Runs each test in it twice, on each store: `sqlite::<name>` and
/// `postgres::<name>`, each with the test's own attributes. A test file
/// wraps everything after its imports in one `both_stores! { ... }`:
///
/// ```ignore
/// both_stores! {
///     #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///     async fn a_test() { /* ... */ }
///
///     fn a_helper() {} // any other item is kept once, as it is
/// }
/// ```
///
/// A test is an argument-less `async fn` with doc comments, then
/// `#[tokio::test ...]`, then any other attributes; any other argument-less
/// `async fn` is a compile error rather than a test on one store. The file's
/// module is in scope in the bodies. The PostgreSQL variant skips with one
/// `SKIPPED` line on stderr when no server can be found, and fails instead
/// on CI. Tests pick no store themselves: [`tempdir`] and [`write_config`]
/// follow the task-local [`BACKEND`] the variant sets. rustfmt does not
/// format inside the macro: keep the bodies formatted by hand.
#[allow(unused_macros)] // not every test file runs on both stores
macro_rules! both_stores {
    (@munch [$($tests:tt)*]) => {
        $crate::common::both_stores!(@emit $($tests)*);
    };
    (@munch [$($tests:tt)*]
        $(#[doc = $doc:expr])*
        #[tokio::test $($targs:tt)?]
        $(#[$meta:meta])*
        async fn $name:ident() $body:block
        $($rest:tt)*
    ) => {
        $crate::common::both_stores!(@munch [
            $($tests)*
            { [$(#[doc = $doc])* #[tokio::test $($targs)?] $(#[$meta])*] $name $body }
        ] $($rest)*);
    };
    // Anything else shaped like a test would otherwise run on one store only.
    (@munch [$($tests:tt)*]
        $(#[$meta:meta])*
        async fn $name:ident() $(-> $ret:ty)? $body:block
        $($rest:tt)*
    ) => {
        compile_error!(concat!(
            "both_stores!: `",
            stringify!($name),
            "` is not shaped like a test here: doc comments, then #[tokio::test ...], ",
            "then any other attributes, then `async fn ",
            stringify!($name),
            "() { ... }` with no return type",
        ));
    };
    (@munch [$($tests:tt)*] $item:item $($rest:tt)*) => {
        $item
        $crate::common::both_stores!(@munch [$($tests)*] $($rest)*);
    };
    (@emit $({ [$($attr:tt)*] $name:ident $body:block })*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                $($attr)*
                async fn $name() {
                    $crate::common::BACKEND
                        .scope($crate::common::Backend::Sqlite, async move $body)
                        .await
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                $($attr)*
                async fn $name() {
                    if !$crate::common::postgres_or_skip(concat!("postgres::", stringify!($name))) {
                        return;
                    }
                    $crate::common::BACKEND
                        .scope($crate::common::Backend::Postgres, async move $body)
                        .await
                }
            )*
        }
    };
    ($($input:tt)*) => {
        $crate::common::both_stores!(@munch [] $($input)*);
    };
}
#[allow(unused_imports)]
pub(crate) use both_stores;

/// How long any awaited condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Where the build put the test plugins.
pub fn test_plugin(name: &str) -> PathBuf {
    Path::new(env!("WEIR_TEST_PLUGINS")).join(format!("{name}.wasm"))
}

/// An example plugin from `plugins/`.
pub fn example_plugin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins")
        .join(format!("{name}.wasm"))
}

/// A sample event from `examples/events/`.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One request as the subscriber saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
}

/// How the subscriber answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    StatusHeader(u16, &'static str, String),
    /// Wait this long before answering 200.
    Delay(Duration),
    /// Body sent as garbage bytes with a 200.
    Garbage,
    /// This status with this body (as a subscriber's error page would).
    StatusBody(u16, &'static str),
}

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    arrived: Notify,
    /// Requests whose handling has begun (a delayed answer counts at once).
    started: std::sync::atomic::AtomicUsize,
}

/// A fake subscriber.
#[derive(Clone)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener).await
    }

    /// Serves on an already bound listener (to come back on the same port).
    pub async fn serve(listener: tokio::net::TcpListener) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState::default());
        let s = state.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { record(s, uri.path().to_owned(), headers, body).await }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Queues answers for the next requests, in order; after them, the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// The answer once the script is used up (200 unless set).
    pub fn always(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The distinct values of header `name` over every request so far.
    pub fn distinct(&self, name: &str) -> std::collections::HashSet<String> {
        let requests = self.state.requests.lock().unwrap();
        requests.iter().map(|r| r.header(name).to_owned()).collect()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// Waits until at least `n` requests are being (or have been) answered.
    pub async fn wait_started(&self, n: usize) {
        let started = || self.state.started.load(std::sync::atomic::Ordering::SeqCst);
        let deadline = Instant::now() + PATIENCE;
        while started() < n {
            let notified = self.state.arrived.notified();
            if started() >= n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "subscriber {}: only {} requests started",
                self.addr,
                started()
            );
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_until(|r| r.len() >= n).await
    }

    /// Waits until `cond` holds for the requests so far.
    pub async fn wait_until(&self, cond: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let notified = self.state.arrived.notified();
            {
                let r = self.state.requests.lock().unwrap();
                if cond(&r) {
                    return r.clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                let r = self.state.requests.lock().unwrap();
                panic!(
                    "subscriber {} condition not met after {PATIENCE:?}; {} requests arrived",
                    self.addr,
                    r.len()
                );
            }
        }
    }
}

async fn record(
    state: Arc<ReceiverState>,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .started
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    state.arrived.notify_waiters();
    let reply = {
        let scripted = state.script.lock().unwrap().pop_front();
        scripted
            .or_else(|| state.default.lock().unwrap().clone())
            .unwrap_or(Reply::Status(200))
    };
    if let Reply::Delay(d) = &reply {
        tokio::time::sleep(*d).await;
    }
    state.requests.lock().unwrap().push(Received {
        path,
        headers,
        body,
        at: Instant::now(),
    });
    state.arrived.notify_waiters();
    match reply {
        Reply::Status(s) => (StatusCode::from_u16(s).unwrap(), "ok").into_response(),
        Reply::StatusHeader(s, name, value) => {
            (StatusCode::from_u16(s).unwrap(), [(name, value)], "later").into_response()
        }
        Reply::Delay(_) => "slow ok".into_response(),
        Reply::Garbage => (StatusCode::OK, vec![0xffu8, 0x00, 0xfe, 0x13]).into_response(),
        Reply::StatusBody(s, body) => (StatusCode::from_u16(s).unwrap(), body).into_response(),
    }
}

/// A weir running in-process on port 0, with its own temp data and plugin dirs.
pub struct Weir {
    pub url: String,
    pub dir: TestDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    client: reqwest::Client,
    pub admin_token: Option<String>,
}

/// The `[server]` and `[delivery]` preamble every test config gets; tests
/// append webhooks. Loopback targets are allowed: subscribers live there.
pub fn preamble() -> String {
    "[server]\nlisten = \"127.0.0.1:0\"\n\n[delivery]\nallow_targets = [\"127.0.0.0/8\"]\nretry_delays_secs = [0]\ntimeout_secs = 5\n\n".into()
}

impl Weir {
    /// Starts weir with `preamble() + webhooks`, plugins copied in first.
    pub async fn start(webhooks: &str, plugins: &[(&str, PathBuf)]) -> Weir {
        Self::start_with(&format!("{}{webhooks}", preamble()), plugins).await
    }

    /// Starts weir with exactly `config` as its config.toml (and, in a
    /// PostgreSQL test, the `[store]` table naming the test's database).
    pub async fn start_with(config: &str, plugins: &[(&str, PathBuf)]) -> Weir {
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        for (name, src) in plugins {
            std::fs::copy(src, dir.path().join("plugins").join(format!("{name}.wasm")))
                .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
        write_config(dir.path(), config);
        Self::boot(dir).await
    }

    /// Like [`Weir::start`] without plugins, with server time from `clock`.
    pub async fn start_with_clock(webhooks: &str, clock: Arc<dyn weir::event::Clock>) -> Weir {
        let dir = tempdir();
        write_config(dir.path(), &format!("{}{webhooks}", preamble()));
        Self::boot_with_clock(dir, clock).await
    }

    /// (Re)starts weir on `dir`, which holds config.toml, plugins/ and data/.
    pub async fn boot(dir: TestDir) -> Weir {
        Self::boot_with_clock(dir, Arc::new(weir::event::SystemClock)).await
    }

    /// Starts weir with a config that names the address it listens on, as
    /// a real deployment's does (so the CLI can find it from the file).
    pub async fn start_listening(config: impl Fn(std::net::SocketAddr) -> String) -> Weir {
        let dir = tempdir();
        let listener = weir::listen::bind(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        write_config(dir.path(), &config(addr));
        Self::boot_on(dir, listener, Arc::new(weir::event::SystemClock)).await
    }

    /// Like [`Weir::boot`], with server time from `clock`.
    pub async fn boot_with_clock(dir: TestDir, clock: Arc<dyn weir::event::Clock>) -> Weir {
        let listener = weir::listen::bind(([127, 0, 0, 1], 0).into()).unwrap();
        Self::boot_on(dir, listener, clock).await
    }

    async fn boot_on(
        dir: TestDir,
        listener: tokio::net::TcpListener,
        clock: Arc<dyn weir::event::Clock>,
    ) -> Weir {
        init_logging();
        assert_on_test_store(dir.path());
        let config = weir::config::Config::load(&dir.path().join("config.toml"))
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let admin_token = config
            .server
            .admin_token
            .as_ref()
            .map(|_| "admin-secret".to_owned());
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(weir::server::run_with_clock(
            config,
            listener,
            async move {
                let _ = rx.await;
            },
            clock,
        ));
        Weir {
            url,
            dir,
            shutdown: Some(tx),
            task: Some(task),
            client: reqwest::Client::new(),
            admin_token,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin_token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// POSTs raw bytes to /v1/events, declared as JSON.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}/v1/events", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// POSTs events and asserts they were accepted; returns their ids.
    pub async fn send(&self, events: &Value) -> Vec<String> {
        let (status, body) = self.post_raw(events.to_string()).await;
        assert_eq!(status, 202, "ingest refused: {body}");
        body["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .auth(self.client.get(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.auth(self.client.post(format!("{}{path}", self.url)));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Any request, with `token` (or none) and an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Creates an API token as the admin (as anonymous when no admin token
    /// is configured) and returns it.
    pub async fn token(&self, owner: Option<&str>, scopes: &[&str]) -> String {
        let body = serde_json::json!({"owner": owner, "scopes": scopes});
        let (status, answer) = self
            .call(
                reqwest::Method::POST,
                "/v1/tokens",
                self.admin_token.as_deref(),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    /// Polls the delivery log until `cond` holds for the deliveries matching `query`.
    pub async fn wait_deliveries(
        &self,
        query: &str,
        cond: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let rows = self.all_deliveries(query).await;
            if cond(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "delivery log never satisfied the condition for {query:?}: {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `webhook` has exactly one delivery, in `status`, and
    /// returns it with its attempt log.
    pub async fn sole_delivery(&self, webhook: &str, status: &str) -> Value {
        let rows = self
            .wait_deliveries(&format!("webhook={webhook}"), |r| {
                r.len() == 1 && r[0]["status"] == status
            })
            .await;
        let (code, detail) = self
            .get(&format!(
                "/v1/deliveries/{}",
                rows[0]["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(code, 200, "{detail}");
        detail
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Every delivery matching `query`, following the cursor across pages.
    pub async fn all_deliveries(&self, query: &str) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut after = String::new();
        loop {
            let (status, body) = self
                .get(&format!("/v1/deliveries?limit=1000&{query}{after}"))
                .await;
            assert_eq!(status, 200, "{body}");
            rows.extend(body["deliveries"].as_array().unwrap().iter().cloned());
            match body["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => return rows,
            }
        }
    }

    /// Replaces config.toml the way an editor does (write a temp file,
    /// rename), on the test's store.
    pub fn rewrite_config(&self, text: &str) {
        let tmp = self.path(".config.toml.swp");
        std::fs::write(&tmp, with_store(self.dir.path(), text)).unwrap();
        std::fs::rename(&tmp, self.path("config.toml")).unwrap();
    }

    /// Stops weir gracefully and returns its directory (and database) for
    /// a restart.
    pub async fn stop(mut self) -> TestDir {
        let _ = self.shutdown.take().unwrap().send(());
        let result = self.task.take().unwrap().await.unwrap();
        result.expect("weir stopped with an error");
        self.dir
    }
}

/// Polls `f` until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs to the test's captured output; `WEIR_LOG=debug` for more.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// One `[[webhooks]]` entry; `extra` adds keys.
pub fn hook(id: &str, url: &str, extra: &str) -> String {
    format!("[[webhooks]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n\n")
}

/// A clock the test moves forward by hand.
#[derive(Default)]
pub struct ManualClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl weir::event::Clock for ManualClock {
    fn now(&self) -> weir::event::Millis {
        weir::event::now_millis() + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `n` small record events with distinct ids.
pub fn events(n: usize, event_type: &str, owner: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| serde_json::json!({"id": format!("e{i}"), "type": event_type, "owner_id": owner, "data": {"i": i}}))
            .collect(),
    )
}

/// How a [`RawSubscriber`] misbehaves below HTTP.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Headers promise a body that never fully comes.
    CloseMidResponse,
    /// One byte every 300 ms: never a full answer in time.
    SlowDrip,
    /// Not HTTP at all.
    NotHttp,
    /// Reads the request and answers nothing until dropped.
    Hang,
    /// Answers with a TCP RST.
    Reset,
}

/// A TCP "subscriber" that misbehaves at the byte level. Every request it
/// reads is reported on `seen`; hung connections are let go when it drops.
pub struct RawSubscriber {
    pub url: String,
    pub seen: tokio::sync::mpsc::UnboundedReceiver<()>,
    release: tokio_util::sync::CancellationToken,
}

impl Drop for RawSubscriber {
    fn drop(&mut self) {
        self.release.cancel();
    }
}

impl RawSubscriber {
    pub async fn start(fault: Fault) -> RawSubscriber {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel();
        let release = tokio_util::sync::CancellationToken::new();
        let hold = release.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (seen_tx, hold) = (seen_tx.clone(), hold.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = sock.read(&mut buf).await;
                    let _ = seen_tx.send(());
                    match fault {
                        Fault::CloseMidResponse => {
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                                .await;
                        }
                        Fault::SlowDrip => {
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n")
                                .await;
                            for _ in 0..50 {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                if sock.write_all(b"x").await.is_err() {
                                    return;
                                }
                            }
                        }
                        Fault::NotHttp => {
                            let _ = sock.write_all(b"SSH-2.0-OpenSSH_9.0\r\n").await;
                        }
                        Fault::Hang => hold.cancelled().await,
                        Fault::Reset => {
                            // A zero linger makes close send RST; it never blocks.
                            #[allow(deprecated)]
                            sock.set_linger(Some(Duration::ZERO)).unwrap();
                        }
                    }
                });
            }
        });
        RawSubscriber { url, seen, release }
    }
}
