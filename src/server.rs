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
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin;
use crate::app::App;
use crate::auth::Tokens;
use crate::config::{Config, StoreConfig};
use crate::deliver::{Deliverer, Shared};
use crate::error::ApiError;
use crate::event::{Clock, SystemClock};
use crate::ingest;
use crate::metrics::Metrics;
use crate::plugin::Plugins;
use crate::store::{PgStore, SqliteStore, Store};

/// How long shutdown waits for attempts on the wire.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(25);

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
    let (store, node) = open_store(&config).await?;
    let metrics = Arc::new(Metrics::new());
    metrics.node_info.with_label_values(&[node.as_str()]).set(1);
    let telemetry = crate::telemetry::Telemetry::start(&config.telemetry, &node, &metrics)
        .context("starting the trace export")?
        .map(Arc::new);
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
    let table = crate::catalog::load(&config, store.as_ref())
        .await
        .context("loading the webhooks")?;
    let tokens = Tokens::load(store.tokens().await.context("loading the API tokens")?);
    let sources = crate::inbound::load(&config, store.as_ref())
        .await
        .context("loading the inbound sources")?;
    let hooks = Arc::new(ArcSwap::from_pointee(table));
    let config = Arc::new(ArcSwap::from_pointee(config));
    let tracker = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    let shared = Arc::new(Shared {
        store: store.clone(),
        hooks: hooks.clone(),
        plugins: plugins.clone(),
        clients: Default::default(),
        disabled: Default::default(),
        metrics: metrics.clone(),
        clock: clock.clone(),
        outbound: tokio::sync::Semaphore::new(crate::deliver::MAX_OUTBOUND),
        node: node.clone(),
        telemetry: telemetry.clone(),
    });
    let deliverer = Arc::new(Deliverer::new(
        shared,
        tracker.clone(),
        stop_workers.clone(),
    ));
    deliverer.start().await.context("starting the deliverer")?;
    let app = Arc::new(App {
        config: config.clone(),
        hooks,
        hooks_write: Default::default(),
        tokens,
        store: store.clone(),
        deliverer: deliverer.clone(),
        plugins: plugins.clone(),
        metrics,
        shutting_down: CancellationToken::new(),
        reload_status: Default::default(),
        clock,
        pending_events: Default::default(),
        inbound: Arc::new(crate::inbound::Inbound::new(sources)),
        node: node.clone(),
        telemetry: telemetry.clone(),
    });
    tracker.spawn(crate::inbound::route::run(
        app.clone(),
        stop_workers.clone(),
    ));
    tracker.spawn(crate::reload::watch(app.clone(), stop_workers.clone()));
    tracker.spawn(retention(app.clone(), stop_workers.clone()));
    if let Some(changes) = store.changes() {
        tracker.spawn(crate::cluster::follow(
            app.clone(),
            changes,
            stop_workers.clone(),
        ));
    }

    info!(%addr, %node, version = env!("CARGO_PKG_VERSION"), "weir is serving");
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
    store.close().await;
    // Last: the spans of the attempts drained above go out too.
    if let Some(t) = &telemetry {
        t.shutdown().await;
    }
    drop(app);
    drop(deliverer);
    info!("stopped");
    Ok(())
}

/// Opens the configured store; returns it with this node's id.
async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, String)> {
    use anyhow::Context as _;
    match &config.store {
        StoreConfig::Sqlite => {
            let store = SqliteStore::open(&config.server.data_dir).context("opening the store")?;
            let node = config
                .server
                .node_id
                .clone()
                .unwrap_or_else(|| "local".into());
            Ok((Arc::new(store), node))
        }
        StoreConfig::Postgres {
            url,
            pool_size,
            lease,
        } => {
            let store = PgStore::open(crate::store::postgres::Options {
                url: url.clone(),
                pool_size: *pool_size,
                lease: *lease,
                node_id: config.server.node_id.clone(),
            })
            .await
            .context("opening the PostgreSQL store")?;
            let node = store.node().to_owned();
            Ok((Arc::new(store), node))
        }
    }
}

pub fn routes(app: Arc<App>) -> Router {
    let api = Router::new()
        .route(
            "/v1/webhooks",
            get(admin::webhooks::list).post(admin::webhooks::create),
        )
        .route(
            "/v1/webhooks/{id}",
            get(admin::webhooks::get)
                .patch(admin::webhooks::update)
                .delete(admin::webhooks::delete),
        )
        .route(
            "/v1/webhooks/{id}/secret/rotate",
            post(admin::webhooks::rotate_secret),
        )
        .route("/v1/webhooks/{id}/test", post(admin::webhooks::test))
        .route("/v1/webhooks/{id}/enable", post(admin::webhooks::enable))
        .route("/v1/webhooks/{id}/stats", get(admin::stats::stats))
        .route("/v1/deliveries", get(admin::deliveries::list))
        .route("/v1/deliveries/{id}", get(admin::deliveries::get))
        .route(
            "/v1/deliveries/{id}/replay",
            post(admin::deliveries::replay),
        )
        .route("/v1/replay", post(admin::deliveries::bulk_replay))
        .route("/v1/plugins", get(admin::plugins::list))
        .route("/v1/plugins/{name}/run", post(admin::plugins::run))
        .route(
            "/v1/sources",
            get(admin::sources::list).post(admin::sources::create),
        )
        .route(
            "/v1/sources/{id}",
            get(admin::sources::get).delete(admin::sources::delete),
        )
        .route("/v1/sources/{id}/requests", get(admin::sources::requests))
        .route(
            "/v1/sources/{id}/requests/{request}",
            get(admin::sources::request),
        )
        .route(
            "/v1/sources/{id}/requests/{request}/replay",
            post(admin::sources::replay),
        )
        .route(
            "/v1/tokens",
            get(admin::tokens::list).post(admin::tokens::create),
        )
        .route(
            "/v1/tokens/{id}",
            axum::routing::delete(admin::tokens::revoke),
        )
        .route("/v1/whoami", get(admin::whoami::whoami))
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate));
    Router::new()
        .route("/v1/events", post(ingest::post_events))
        .route("/in/{source}", any(crate::inbound::catch::catch))
        .route("/healthz", get(crate::api::openapi::health))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(crate::api::openapi::serve))
        .merge(api)
        .merge(crate::console::routes())
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
        let depth: std::collections::HashMap<String, u64> =
            depths.into_iter().map(|d| (d.webhook, d.live)).collect();
        for hook in app.hooks.load().all() {
            let n = depth.get(&hook.id).copied().unwrap_or(0);
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

/// Resolves the caller once per request; handlers take it as an extension
/// and check the scope they need. A write that carries a body type other
/// than JSON is refused first: that is what a cross-site form sends, even to
/// routes that read no body (replay, test, enable).
async fn authenticate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    if req.method() != axum::http::Method::GET {
        if let Err(e) = crate::api::same_origin(req.headers()) {
            return e.into_response();
        }
        if req.headers().contains_key(header::CONTENT_TYPE)
            && let Err(e) = crate::api::require_json(req.headers())
        {
            return e.into_response();
        }
    }
    match app.principal(req.headers()) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Purges old delivered/filtered deliveries in small batches.
async fn retention(app: Arc<App>, stop: CancellationToken) {
    const BATCH: usize = 500;
    loop {
        let keep = app.config.load().server.retention;
        let before = app.clock.now() - keep.as_millis() as i64;
        loop {
            match app.store.purge(before, BATCH).await {
                Ok(n) if n as usize >= BATCH => tokio::time::sleep(Duration::from_millis(20)).await,
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
