//! Following the other nodes of a cluster: what they change in the shared
//! store (API webhooks, tokens, disabled webhooks, new deliveries) reaches
//! this node's routing table, token cache and delivery workers.
//!
//! Notifications drive it; a re-read every [`REFRESH`] covers any that were
//! lost, and a gap in the feed (reconnect, lag) re-reads everything and wakes
//! every worker.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::app::App;
use crate::store::Change;

/// Longest a change made through another node can go unseen.
const REFRESH: Duration = Duration::from_secs(10);

pub async fn follow(
    app: Arc<App>,
    mut changes: broadcast::Receiver<Change>,
    stop: CancellationToken,
) {
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.tick().await;
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(Change::Due(webhook)) => app.deliverer.notify(&webhook),
                Ok(Change::Catalog) => resync(&app, false).await,
                Ok(Change::Resync) | Err(RecvError::Lagged(_)) => resync(&app, true).await,
                Err(RecvError::Closed) => return,
            },
            _ = refresh.tick() => resync(&app, false).await,
            _ = stop.cancelled() => return,
        }
    }
}

/// Re-reads the catalog and webhook health; with `wake_all`, every worker
/// looks at its queue again too.
async fn resync(app: &App, wake_all: bool) {
    {
        let _writing = app.hooks_write.lock().await;
        let config = app.config.load_full();
        match crate::catalog::load(&config, app.store.as_ref()).await {
            Ok(table) => app.install(table).await,
            Err(e) => warn!(error = %e, "cannot re-read the webhooks"),
        }
    }
    {
        let _writing = app.hooks_write.lock().await;
        let config = app.config.load_full();
        match crate::inbound::load(&config, app.store.as_ref()).await {
            Ok(table) => app.inbound.sources.store(Arc::new(table)),
            Err(e) => warn!(error = %e, "cannot re-read the sources"),
        }
    }
    {
        let _writing = app.tokens.writing().await;
        match app.store.tokens().await {
            Ok(list) => app.tokens.replace(list),
            Err(e) => warn!(error = %e, "cannot re-read the tokens"),
        }
    }
    if let Err(e) = app.deliverer.load_disabled().await {
        warn!(error = %e, "cannot re-read disabled webhooks");
    }
    if wake_all {
        app.deliverer.wake_all();
    }
}
