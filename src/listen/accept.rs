//! The accept loop and one task per connection: the connection cap, hyper's
//! limits on a request head, and an orderly stop.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::answer;
use super::wire::JsonErrors;
use crate::config::Config;
use crate::error::ApiError;

/// How long shutdown waits for requests in progress before cutting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Header fields a request may have (hyper's default, made explicit).
pub const MAX_HEADERS: usize = 100;
/// Bytes of request line and headers a request may have.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Refused connections being answered at once; past this they are just closed.
const REFUSALS_AT_ONCE: usize = 64;
/// After the last answer, unread request bytes are drained for this long (or
/// [`LINGER_BYTES`]): closing a socket with unread input resets it, and a
/// reset can destroy the answer before the client reads it.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 4 << 20;

/// Connections the kernel may queue for `accept`. The standard library's
/// 128 drops connections in a burst (their clients retry after a second).
const BACKLOG: u32 = 1024;

/// A listener on `addr` with a backlog fit for bursts of connections.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for
/// the requests in progress (at most [`SHUTDOWN_GRACE`]). Limits are read
/// from `config` for each new connection, so a reload applies to new ones.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: Arc<ArcSwap<Config>>,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = Connections::new(router, config);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, _)) => connections.start(stream),
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // Out of file descriptors, most likely: give some time to close.
                error!(error = %e, "cannot accept connections; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = &mut shutdown => break,
                }
            }
        }
    }
    drop(listener);
    connections.finish().await;
}

/// The accepted connections: how many are open, the tasks serving them, and
/// the tokens that stop them.
struct Connections {
    router: Router,
    config: Arc<ArcSwap<Config>>,
    open: Arc<AtomicUsize>,
    /// Bounds the tasks answering refused connections.
    refusing: Arc<Semaphore>,
    /// Connections refused since the limit was last reached, for the log.
    refused: u64,
    tasks: TaskTracker,
    /// Asks connections to finish their request in progress and close.
    stop: CancellationToken,
    /// Closes them at once.
    cut: CancellationToken,
}

impl Connections {
    fn new(router: Router, config: Arc<ArcSwap<Config>>) -> Self {
        Connections {
            router,
            config,
            open: Arc::new(AtomicUsize::new(0)),
            refusing: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            refused: 0,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            cut: CancellationToken::new(),
        }
    }

    /// Serves `stream` in a task of its own, or refuses it when weir already
    /// serves `max_connections`.
    fn start(&mut self, stream: TcpStream) {
        let limit = self.config.load().server.max_connections;
        let Some(slot) = Slot::take(&self.open, limit) else {
            if self.refused == 0 {
                warn!(
                    limit,
                    "connection limit reached; new connections get 503 until some close"
                );
            }
            self.refused += 1;
            if let Ok(permit) = self.refusing.clone().try_acquire_owned() {
                self.tasks.spawn(async move {
                    refuse(stream, limit).await;
                    drop(permit);
                });
            }
            return;
        };
        if self.refused > 0 {
            info!(refused = self.refused, "below the connection limit again");
            self.refused = 0;
        }
        let (router, config) = (self.router.clone(), self.config.clone());
        let (stop, cut) = (self.stop.clone(), self.cut.clone());
        self.tasks.spawn(async move {
            tokio::select! {
                () = connection(stream, router, config, stop) => {}
                () = cut.cancelled() => {}
            }
            drop(slot);
        });
    }

    /// Lets requests in progress finish, for at most [`SHUTDOWN_GRACE`].
    async fn finish(self) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                connections = self.open.load(Ordering::Relaxed),
                "requests still in progress at the shutdown deadline; closing their connections"
            );
            self.cut.cancel();
            self.tasks.wait().await;
        }
    }
}

/// Errors about one connection that went away while queued; the listener is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// One served connection, counted in `open` until dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>, limit: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection until the client or hyper closes it, or `stop`
/// asks it to finish its request in progress and close.
async fn connection(
    stream: TcpStream,
    router: Router,
    config: Arc<ArcSwap<Config>>,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let header_timeout = config.load().server.header_read_timeout;
    let service = hyper::service::service_fn(move |req| {
        Box::pin(answer::handle(router.clone(), config.clone(), req))
    });
    let mut conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEAD_BYTES)
        // Also bounds a head that never ends, which max_header_size does not.
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(JsonErrors::new(stream)), service);
    let mut stopping = pin!(stop.cancelled());
    let mut asked_to_stop = false;
    // Without shutdown: the socket comes back for a last answer and a linger.
    let result = poll_fn(|cx| {
        if !asked_to_stop && stopping.as_mut().poll(cx).is_ready() {
            asked_to_stop = true;
            Pin::new(&mut conn).graceful_shutdown();
        }
        conn.poll_without_shutdown(cx)
    })
    .await;
    let parts = conn.into_parts();
    let mut io = parts.io.into_inner();
    if let Err(e) = result {
        debug!(error = %e, "connection closed on an error");
        // Part of a head arrived, the rest did not in time. (An idle
        // keep-alive connection that times out is closed without a word.)
        if e.is_timeout() && !parts.read_buf.is_empty() {
            let late = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request head did not arrive within {} s",
                    header_timeout.as_secs()
                ),
            );
            let _ = tokio::time::timeout(LINGER, io.write_all(&answer::raw(&late))).await;
        }
    }
    linger(io).await;
}

/// Answers a connection over the limit with `503` and closes it.
async fn refuse(mut stream: TcpStream, limit: usize) {
    let full = ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            format!("weir is serving its limit of {limit} connections; retry shortly"),
        )
    };
    let _ = tokio::time::timeout(LINGER, stream.write_all(&answer::raw(&full))).await;
    linger(stream).await;
}

/// Closes `io` for writing, then reads and drops what the client still
/// sends, for a short while, before the socket is closed.
async fn linger(mut io: impl AsyncRead + AsyncWrite + Unpin) {
    let _ = tokio::time::timeout(LINGER, async {
        if io.shutdown().await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
