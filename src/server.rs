//! `weir serve`: wires the stages together and runs until shutdown.
//!
//! [`run`] takes a bound listener and a shutdown future, so tests start the
//! real server on port 0 and stop it when they like. Shutdown is ordered:
//! ingest answers 503, the listener stops, workers finish the attempts on the
//! wire (up to a deadline), then the store's writer drains and closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin;
use crate::config::{Config, Token};
use crate::deliver::{Deliverer, Shared};
use crate::error::ApiError;
use crate::event::{Clock, SystemClock};
use crate::ingest;
use crate::metrics::Metrics;
use crate::plugin::Plugins;
use crate::store::{SqliteStore, Store};

/// How long shutdown waits for attempts on the wire.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(25);

/// State shared by every HTTP handler.
pub struct App {
    pub config: Arc<ArcSwap<Config>>,
    pub store: Arc<dyn Store>,
    pub deliverer: Arc<Deliverer>,
    pub plugins: Arc<Plugins>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when shutdown begins: ingest answers 503 from then on.
    pub shutting_down: CancellationToken,
    pub reload_status: crate::reload::ReloadStatus,
    pub clock: Arc<dyn Clock>,
    /// Events inside ingest and not yet committed (see [`ingest::Admission`]).
    pub pending_events: ingest::Admission,
}

/// Runs weir on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_clock(config, listener, shutdown, Arc::new(SystemClock)).await
}

/// [`run`] with server-side time taken from `clock` (tests move it).
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && config.server.admin_token.is_none() {
        warn!(%addr, "listening on a non-loopback address WITHOUT an admin token: anyone who can reach it can read the delivery log and replay deliveries; set [server] admin_token or WEIR_ADMIN_TOKEN");
    }
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&config.server.data_dir).context("opening the store")?);
    let metrics = Arc::new(Metrics::new());
    let plugins =
        Arc::new(Plugins::new(&config, metrics.clone()).context("starting the plugin host")?);
    std::fs::create_dir_all(&config.server.plugins_dir)
        .with_context(|| format!("creating {}", config.server.plugins_dir.display()))?;
    for change in plugins.load_dir(&config.server.plugins_dir) {
        match &change.error {
            None => info!(plugin = %change.name, "plugin loaded"),
            Some(e) => warn!(plugin = %change.name, error = %e, "plugin failed to load"),
        }
    }
    let config = Arc::new(ArcSwap::from_pointee(config));
    let tracker = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    let shared = Arc::new(Shared {
        store: store.clone(),
        config: config.clone(),
        plugins: plugins.clone(),
        clients: Default::default(),
        disabled: Default::default(),
        metrics: metrics.clone(),
        clock: clock.clone(),
    });
    let deliverer = Arc::new(Deliverer::new(
        shared,
        tracker.clone(),
        stop_workers.clone(),
    ));
    deliverer.start().await.context("starting the deliverer")?;
    let app = Arc::new(App {
        config: config.clone(),
        store: store.clone(),
        deliverer: deliverer.clone(),
        plugins: plugins.clone(),
        metrics,
        shutting_down: CancellationToken::new(),
        reload_status: Default::default(),
        clock,
        pending_events: Default::default(),
    });
    tracker.spawn(crate::reload::watch(app.clone(), stop_workers.clone()));
    tracker.spawn(retention(app.clone(), stop_workers.clone()));

    info!(%addr, version = env!("CARGO_PKG_VERSION"), "weir is serving");
    let shutting_down = app.shutting_down.clone();
    let stopping = async move {
        shutdown.await;
        info!("shutting down: refusing new events, finishing deliveries on the wire");
        shutting_down.cancel();
    };
    crate::listen::serve(listener, routes(app.clone()), app.config.clone(), stopping).await;
    stop_workers.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        warn!("attempts still in flight at the shutdown deadline; they will be retried on restart");
    }
    drop(app);
    drop(deliverer);
    info!("stopped");
    Ok(())
}

pub fn routes(app: Arc<App>) -> Router {
    let admin_routes = Router::new()
        .route("/v1/webhooks", get(admin::list_webhooks))
        .route("/v1/webhooks/{id}", get(admin::get_webhook))
        .route("/v1/webhooks/{id}/test", post(admin::test_webhook))
        .route("/v1/webhooks/{id}/enable", post(admin::enable_webhook))
        .route("/v1/deliveries", get(admin::list_deliveries))
        .route("/v1/deliveries/{id}", get(admin::get_delivery))
        .route("/v1/deliveries/{id}/replay", post(admin::replay_delivery))
        .route("/v1/replay", post(admin::bulk_replay))
        .route("/v1/plugins", get(admin::list_plugins))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_admin));
    Router::new()
        .route("/v1/events", post(ingest::post_events))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .merge(admin_routes)
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such route",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal("a request handler panicked").into_response()
        }))
        .with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    if let Ok(depths) = app.store.queue_depths().await {
        app.metrics.queue_depth.reset();
        for hook in &app.config.load().webhooks {
            let n = depths
                .iter()
                .find(|(id, _)| id == &hook.id)
                .map_or(0, |(_, n)| *n);
            app.metrics
                .queue_depth
                .with_label_values(&[hook.id.as_str()])
                .set(n as i64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn require_admin(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let token = app.config.load().server.admin_token.clone();
    match token {
        Some(t) if !bearer_ok(req.headers(), &t) => ApiError::unauthorized().into_response(),
        _ => next.run(req).await,
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>` (constant time).
pub fn bearer_ok(headers: &HeaderMap, token: &Token) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|presented| token.matches(presented.trim()))
}

/// Purges old delivered/filtered deliveries in small batches.
async fn retention(app: Arc<App>, stop: CancellationToken) {
    const BATCH: usize = 500;
    loop {
        let keep = app.config.load().server.retention;
        let before = app.clock.now() - keep.as_millis() as i64;
        loop {
            match app.store.purge(before, BATCH).await {
                Ok(n) if n as usize == BATCH => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(_) => break,
                Err(e) => {
                    warn!(error = %e, "retention purge failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
