//! The change feed: one connection per node that `LISTEN`s for what other
//! nodes write (new deliveries, API webhooks, tokens, webhook health) and
//! passes it on as [`Change`]s. When the connection drops it reconnects and
//! sends [`Change::Resync`], since notifications sent meanwhile are lost;
//! workers also poll, so a lost notification only delays.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{CATALOG_CHANNEL, DUE_CHANNEL};
use crate::config::DatabaseUrl;
use crate::store::Change;

pub async fn listen(url: DatabaseUrl, tx: broadcast::Sender<Change>, stop: CancellationToken) {
    let mut first = true;
    loop {
        let ran = tokio::select! {
            r = session(&url, &tx, first) => r,
            _ = stop.cancelled() => return,
        };
        if let Err(e) = ran {
            warn!(error = %e, "change feed lost; reconnecting");
        }
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One connection's life: LISTEN, then forward until it ends.
async fn session(
    url: &DatabaseUrl,
    tx: &broadcast::Sender<Change>,
    first: bool,
) -> Result<(), String> {
    let mut config: tokio_postgres::Config = url.expose().parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("weir-feed");
    let (client, mut conn) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (msgs_tx, mut msgs) = tokio::sync::mpsc::channel(1024);
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = stream.next().await {
            match m {
                Ok(m) => {
                    if msgs_tx.send(m).await.is_err() {
                        break;
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {DUE_CHANNEL}; LISTEN {CATALOG_CHANNEL};"))
        .await
        .map_err(|e| e.to_string())?;
    if !first {
        info!("change feed back");
        let _ = tx.send(Change::Resync);
    }
    while let Some(m) = msgs.recv().await {
        if let AsyncMessage::Notification(n) = m {
            let change = match n.channel() {
                DUE_CHANNEL => Change::Due(n.payload().to_owned()),
                _ => Change::Catalog,
            };
            let _ = tx.send(change);
        }
    }
    drop(client);
    driver.await.map_err(|e| e.to_string())?
}
