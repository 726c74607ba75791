//! Live reload of `config.toml` and the plugins folder.
//!
//! A `notify` watcher on the two directories feeds a debouncer: after a
//! change, weir waits until the directory has been quiet for [`SETTLE`] (so a
//! file written in chunks or via a temp file and a rename is seen whole), then
//! rescans. Plugins are compared by content hash, so a touch changes nothing.
//! A config that fails validation is logged and the old one keeps running.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::app::App;
use crate::config::Config;

/// Quiet time before a change is acted on.
pub const SETTLE: Duration = Duration::from_millis(150);

/// The last config reload failure, shown by the admin API until a valid
/// file lands.
#[derive(Default)]
pub struct ReloadStatus {
    last_error: Mutex<Option<String>>,
}

impl ReloadStatus {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("reload status").clone()
    }

    fn set(&self, error: Option<String>) {
        *self.last_error.lock().expect("reload status") = error;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changed {
    Config,
    Plugins,
}

/// Watches until `stop`; errors setting up the watcher are logged, not fatal.
pub async fn watch(app: Arc<App>, stop: CancellationToken) {
    let config = app.config.load_full();
    let config_path = std::fs::canonicalize(&config.path).unwrap_or(config.path.clone());
    let plugins_dir = std::fs::canonicalize(&config.server.plugins_dir)
        .unwrap_or(config.server.plugins_dir.clone());
    let (tx, mut rx) = mpsc::channel::<Changed>(64);
    let watched = (config_path.clone(), plugins_dir.clone());
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if let Some(kind) = classify(path, &watched.0, &watched.1) {
                // A full channel already holds a pending rescan: dropping is fine.
                let _ = tx.try_send(kind);
            }
        }
    };
    let config_dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // notify's calls wait for its own thread: they run off the runtime's
    // workers, and a shutdown does not wait for them.
    let setup =
        tokio::task::spawn_blocking(move || start_watcher(handler, [config_dir, plugins_dir]));
    let _watcher = tokio::select! {
        started = setup => match started {
            Ok(Some(watcher)) => watcher,
            _ => return,
        },
        _ = stop.cancelled() => return,
    };
    // Changes that landed before the watcher was in place.
    rescan_plugins(&app).await;
    reload_config(&app).await;
    loop {
        let first = tokio::select! {
            Some(kind) = rx.recv() => kind,
            _ = stop.cancelled() => return,
        };
        let (mut config_changed, mut plugins_changed) =
            (first == Changed::Config, first == Changed::Plugins);
        // Debounce: wait for SETTLE of quiet.
        loop {
            tokio::select! {
                Some(kind) = rx.recv() => match kind {
                    Changed::Config => config_changed = true,
                    Changed::Plugins => plugins_changed = true,
                },
                _ = tokio::time::sleep(SETTLE) => break,
                _ = stop.cancelled() => return,
            }
        }
        if plugins_changed {
            rescan_plugins(&app).await;
        }
        if config_changed {
            reload_config(&app).await;
        }
    }
}

fn start_watcher(
    handler: impl notify::EventHandler,
    dirs: [PathBuf; 2],
) -> Option<notify::RecommendedWatcher> {
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            error!(error = %e, "cannot watch files; live reload is off");
            return None;
        }
    };
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            warn!(dir = %dir.display(), error = %e, "cannot watch directory; live reload is off for it");
        }
    }
    Some(watcher)
}

/// Which reload a change to `path` calls for; `None` for every file weir
/// does not read (its own log among them), before anything is logged.
fn classify(path: &Path, config: &Path, plugins_dir: &Path) -> Option<Changed> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".swp")
    {
        return None;
    }
    let parent = path.parent()?;
    if parent == plugins_dir && name.ends_with(".wasm") {
        return Some(Changed::Plugins);
    }
    if Some(name) == config.file_name().and_then(|n| n.to_str()) && Some(parent) == config.parent()
    {
        return Some(Changed::Config);
    }
    None
}

async fn rescan_plugins(app: &Arc<App>) {
    let dir = app.config.load().server.plugins_dir.clone();
    let plugins = app.plugins.clone();
    let changes = tokio::task::spawn_blocking(move || plugins.rescan(&dir))
        .await
        .unwrap_or_default();
    for change in changes {
        let result = if change.error.is_some() {
            "error"
        } else {
            "ok"
        };
        app.metrics
            .reloads
            .with_label_values(&["plugin", result])
            .inc();
        match &change.error {
            None => info!(plugin = %change.name, what = %change.what, "plugin reloaded"),
            Some(e) => {
                warn!(plugin = %change.name, error = %e, "plugin change rejected; the previous version keeps serving")
            }
        }
    }
}

/// Re-reads the config file; swaps it in whole if it is valid.
pub async fn reload_config(app: &Arc<App>) {
    let old = app.config.load_full();
    let path = old.path.clone();
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(t) => t,
        Err(e) => return reject(app, format!("{}: cannot read: {e}", path.display())),
    };
    let new = match Config::parse(&path, &text) {
        Ok(c) => c,
        Err(e) => return reject(app, e.to_string()),
    };
    if let Err(problem) = immutable_unchanged(&old, &new) {
        return reject(app, problem);
    }
    // A valid file clears the last error, whether or not it changes anything.
    app.reload_status.set(None);
    let changed = summarize(&old, &new);
    if changed.is_empty() {
        return;
    }
    let _writing = app.hooks_write.lock().await;
    // API webhooks take the new `[delivery]` defaults too.
    let table = match crate::catalog::load(&new, app.store.as_ref()).await {
        Ok(t) => t,
        Err(e) => return reject(app, format!("{}: {e}", path.display())),
    };
    let sources = match crate::inbound::load(&new, app.store.as_ref()).await {
        Ok(t) => t,
        Err(e) => return reject(app, format!("{}: {e}", path.display())),
    };
    let new = Arc::new(new);
    app.config.store(new.clone());
    app.plugins.set_limits(new.plugins);
    app.install(table).await;
    app.inbound.sources.store(Arc::new(sources));
    app.metrics
        .reloads
        .with_label_values(&["config", "ok"])
        .inc();
    // Names of what changed, never values: a changed secret or token is
    // reported by its key alone.
    info!(changes = %changed.join("; "), "config reloaded");
}

fn reject(app: &App, problem: String) {
    error!(error = %problem, "config change rejected; the previous config keeps running");
    app.metrics
        .reloads
        .with_label_values(&["config", "error"])
        .inc();
    app.reload_status.set(Some(problem));
}

/// Settings that only take effect on restart must not silently change.
fn immutable_unchanged(old: &Config, new: &Config) -> Result<(), String> {
    let (o, n) = (&old.server, &new.server);
    let mut changed = Vec::new();
    if o.listen != n.listen {
        changed.push("server.listen");
    }
    if o.data_dir != n.data_dir {
        changed.push("server.data_dir");
    }
    if o.plugins_dir != n.plugins_dir {
        changed.push("server.plugins_dir");
    }
    if o.node_id != n.node_id {
        changed.push("server.node_id");
    }
    if old.store != new.store {
        changed.push("store");
    }
    if old.telemetry != new.telemetry {
        changed.push("telemetry");
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {} can only change with a restart",
            new.path.display(),
            changed.join(", ")
        ))
    }
}

/// What a reload changes, by name: one entry per webhook, then the server
/// and plugin settings that differ. Values are compared, not their `Debug`
/// text, so an edit of a secret or token alone is a change.
fn summarize(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for hook in &new.webhooks {
        match old.webhook(&hook.id) {
            None => out.push(format!("added {}", hook.id)),
            Some(before) if before.active && !hook.active => {
                out.push(format!("deactivated {}", hook.id))
            }
            Some(before) if !before.active && hook.active => {
                out.push(format!("activated {}", hook.id))
            }
            Some(before) if before.secrets != hook.secrets => {
                out.push(format!("changed {} (secrets)", hook.id))
            }
            Some(before) if before != hook => out.push(format!("changed {}", hook.id)),
            Some(_) => {}
        }
    }
    for hook in &old.webhooks {
        if new.webhook(&hook.id).is_none() {
            out.push(format!("removed {}", hook.id));
        }
    }
    for source in &new.sources {
        match old.source(&source.id) {
            None => out.push(format!("added source {}", source.id)),
            Some(before) if before.secrets != source.secrets => {
                out.push(format!("changed source {} (secrets)", source.id))
            }
            Some(before) if before != source => out.push(format!("changed source {}", source.id)),
            Some(_) => {}
        }
    }
    for source in &old.sources {
        if new.source(&source.id).is_none() {
            out.push(format!("removed source {}", source.id));
        }
    }
    let (o, n) = (&old.server, &new.server);
    if o.admin_token != n.admin_token {
        out.push("server.admin_token".into());
    }
    if o.ingest_token != n.ingest_token {
        out.push("server.ingest_token".into());
    }
    if (o.max_body_bytes, o.max_pending_events, o.retention)
        != (n.max_body_bytes, n.max_pending_events, n.retention)
    {
        out.push("server settings".into());
    }
    if old.plugins != new.plugins {
        out.push("plugin limits".into());
    }
    if (&old.delivery, &old.allow_targets) != (&new.delivery, &new.allow_targets) {
        out.push("delivery defaults".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::summarize;
    use crate::config::Config;

    fn parse(text: &str) -> Config {
        Config::parse(std::path::Path::new("/x/config.toml"), text).unwrap()
    }

    #[test]
    fn a_secret_or_token_edit_alone_is_a_change_and_is_named_without_its_value() {
        let hook = |secret: &str| {
            format!("[[webhooks]]\nid = \"a\"\nurl = \"https://e.com\"\nsecrets = [\"{secret}\"]\n")
        };
        let a = parse(&hook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let b = parse(&hook("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        assert_eq!(summarize(&a, &b), ["changed a (secrets)"]);
        assert!(summarize(&a, &a).is_empty());
        let t1 = parse("[server]\nadmin_token = \"one-token\"\n");
        let t2 = parse("[server]\nadmin_token = \"two-token\"\n");
        let changes = summarize(&t1, &t2);
        assert_eq!(changes, ["server.admin_token"]);
        assert!(!changes.join(" ").contains("token\""));
    }
}
