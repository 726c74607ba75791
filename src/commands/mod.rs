//! What each CLI command does. `serve`, `check` and `plugin run` work on local
//! files; `send`, `deliveries` and `replay` talk to a running weir over HTTP.

mod manage;
mod remote;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::cli::{Command, PluginCommand};
use crate::config::{Config, PluginLimits};
use crate::event::now_millis;
use crate::ingest::envelope;
use crate::plugin::{PluginError, PluginKind, Plugins, Verdict};

/// How a command failed: the user's doing (exit 1) or weir's (exit 2).
#[derive(Debug)]
pub enum Failure {
    User(Vec<String>),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Internal(e)
    }
}

pub fn user(line: impl Into<String>) -> Failure {
    Failure::User(vec![line.into()])
}

pub async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve { config } => serve(&config).await,
        Command::Check { config } => check(&config),
        Command::Migrate { config } => migrate(&config).await,
        Command::Plugin {
            command:
                PluginCommand::Run {
                    plugin,
                    event,
                    config,
                    weir_config,
                },
        } => plugin_run(&plugin, &event, &config, &weir_config).await,
        Command::Bench(args) => Ok(crate::bench::run(args).await?),
        Command::Send {
            file,
            remote,
            batch,
        } => remote::send(&file, &remote, batch).await,
        Command::Deliveries {
            webhook,
            status,
            event,
            limit,
            json,
            remote,
        } => remote::deliveries(webhook, status, event, limit, json, &remote).await,
        Command::Webhooks { command } => manage::webhooks(command).await,
        Command::Token { command } => manage::token(command).await,
        Command::Sources { command } => manage::sources(command).await,
        Command::Replay {
            delivery,
            webhook,
            status,
            since,
            json,
            remote,
        } => remote::replay(delivery, webhook, status, since, json, &remote).await,
    }
}

fn load_config(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::User(e.problems))
}

/// From the first SIGTERM or Ctrl-C to exit, at most: requests in progress,
/// deliveries on the wire, then a few seconds for the store.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(
    crate::listen::SHUTDOWN_GRACE.as_secs() + crate::server::DRAIN_DEADLINE.as_secs() + 5,
);

async fn serve(path: &Path) -> Result<(), Failure> {
    let config = load_config(path)?;
    let listener = crate::listen::bind(config.server.listen)
        .map_err(|e| user(format!("cannot listen on {}: {e}", config.server.listen)))?;
    let mut signals = Signals::new().context("listening for signals")?;
    let stop = CancellationToken::new();
    let server = crate::server::run(config, listener, stop.clone().cancelled_owned());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return Ok(result?),
        () = signals.recv() => stop.cancel(),
    }
    // Shutdown is ordered and bounded; this bounds it again, whatever hangs.
    tokio::select! {
        result = server => Ok(result?),
        () = signals.recv() => {
            warn!("second signal: exiting without finishing the shutdown");
            Ok(())
        }
        () = tokio::time::sleep(EXIT_DEADLINE) => {
            error!(deadline_secs = EXIT_DEADLINE.as_secs(), "shutdown did not finish in time; exiting");
            Ok(())
        }
    }
}

/// Applies pending migrations to the configured store and says where it is.
async fn migrate(path: &Path) -> Result<(), Failure> {
    let config = load_config(path)?;
    let version = match &config.store {
        crate::config::StoreConfig::Sqlite => {
            drop(
                crate::store::SqliteStore::open(&config.server.data_dir)
                    .map_err(|e| user(e.to_string()))?,
            );
            crate::store::migrate::latest()
        }
        crate::config::StoreConfig::Postgres { url, .. } => crate::store::PgStore::migrate(url)
            .await
            .map_err(|e| user(e.to_string()))?,
    };
    println!("store schema at version {version}");
    Ok(())
}

/// Ctrl-C and SIGTERM, caught from creation on: before, either ends the
/// process on the spot, with no orderly shutdown.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Resolves on the next Ctrl-C or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn check(path: &Path) -> Result<(), Failure> {
    let mut problems = Vec::new();
    let config = match Config::load(path) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.extend(e.problems);
            None
        }
    };
    if let Some(config) = &config {
        let host = Plugins::new(config, Default::default()).context("starting the plugin host")?;
        let mut names: Vec<&str> = config
            .webhooks
            .iter()
            .flat_map(|w| w.plugins.iter().map(|p| p.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let file = config.plugin_path(name);
            match host.validate_file(&file) {
                Err(e) => problems.push(format!(
                    "{}: plugin {name:?} cannot be loaded: {e}",
                    file.display()
                )),
                Ok(is @ PluginKind::Source) => problems.push(format!(
                    "{}: {}",
                    file.display(),
                    PluginError::WrongKind {
                        plugin: name.to_owned(),
                        is
                    }
                )),
                Ok(PluginKind::Filter) => {}
            }
        }
        if problems.is_empty() {
            println!(
                "{}: ok ({} webhooks)",
                path.display(),
                config.webhooks.len()
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::User(problems))
    }
}

async fn plugin_run(
    plugin: &str,
    event_file: &Path,
    config_json: &str,
    weir_config: &Path,
) -> Result<(), Failure> {
    let file = if plugin.ends_with(".wasm") || plugin.contains('/') {
        std::path::PathBuf::from(plugin)
    } else {
        let dir = Config::load(weir_config)
            .map(|c| c.server.plugins_dir)
            .unwrap_or_else(|_| "plugins".into());
        dir.join(format!("{plugin}.wasm"))
    };
    let limits = Config::load(weir_config)
        .map(|c| c.plugins)
        .unwrap_or(PluginLimits::DEFAULT);
    let bytes = std::fs::read(event_file)
        .map_err(|e| user(format!("{}: cannot read: {e}", event_file.display())))?;
    let event = envelope::parse_body(&bytes, now_millis())
        .map_err(|e| user(format!("{}: {e}", event_file.display())))?
        .into_iter()
        .next()
        .ok_or_else(|| user(format!("{}: no event", event_file.display())))?;
    serde_json::from_str::<serde::de::IgnoredAny>(config_json)
        .map_err(|e| user(format!("--config is not JSON: {e}")))?;
    let host =
        Plugins::with_limits(limits, Default::default()).context("starting the plugin host")?;
    let name = host
        .load_file(&file)
        .map_err(|e| user(format!("{}: cannot load plugin: {e}", file.display())))?;
    let run = host
        .dry_run(&name, &event, config_json)
        .await
        .map_err(|e| user(format!("{}: {e}", file.display())))?;
    for line in &run.logs {
        println!("log: {}", printable(line));
    }
    let failed = run.result.is_err();
    match run.result {
        Ok(Verdict::Drop(reason)) => println!("verdict: drop\nreason: {}", printable(&reason)),
        Ok(Verdict::Deliver(r)) => {
            println!("verdict: deliver");
            for (k, v) in &r.headers {
                println!("header: {k}: {}", printable(v));
            }
            println!("body: {}", printable(&r.body));
        }
        Err(e) => println!("verdict: failure\nerror: {}", printable(&e.to_string())),
    }
    println!("time: {:.3} ms", run.took.as_secs_f64() * 1000.0);
    if failed {
        Err(user(format!("plugin {name} failed")))
    } else {
        Ok(())
    }
}

/// Text a sender, subscriber or plugin wrote, made safe for a terminal:
/// control characters (escape sequences among them) are shown escaped.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        std::borrow::Cow::Owned(
            s.chars()
                .map(|c| {
                    if c.is_control() && c != '\n' && c != '\t' {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod printable_tests {
    #[test]
    fn escape_sequences_are_shown_not_run() {
        assert_eq!(super::printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(super::printable("plain\ttext\n"), "plain\ttext\n");
    }
}
