//! The `weir` command line (SPEC §6). Exit codes: 0 ok, 1 user error (one
//! clear line per problem), 2 internal error.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "WebAssembly-pluggable webhook event router"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the router.
    Serve {
        #[arg(long, env = "WEIR_CONFIG", default_value = "config.toml")]
        config: PathBuf,
    },
    /// Validate the config and every plugin it names; exit 1 on errors.
    Check {
        #[arg(long, env = "WEIR_CONFIG", default_value = "config.toml")]
        config: PathBuf,
    },
    /// Run plugins outside the server.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Post events (a JSON file, an array, or newline-delimited JSON; `-` for stdin).
    Send {
        file: String,
        #[command(flatten)]
        remote: Remote,
        /// Events per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Read the delivery log.
    Deliveries {
        #[arg(long)]
        webhook: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        event: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Measure throughput and latency against an in-process sink (see BENCHMARKS.md).
    Bench(crate::bench::BenchArgs),
    /// Send a delivery again, or every delivery of a webhook in a state.
    Replay {
        /// A delivery id (dlv_...).
        delivery: Option<String>,
        #[arg(long, requires = "status", conflicts_with = "delivery")]
        webhook: Option<String>,
        #[arg(long, requires = "webhook")]
        status: Option<String>,
        /// Only deliveries updated since this RFC 3339 time.
        #[arg(long, requires = "webhook")]
        since: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Dry-run one plugin on an event file; prints verdict, body, headers, logs, time.
    Run {
        /// A plugin name in the plugins folder, or a path to a .wasm file.
        plugin: String,
        #[arg(long)]
        event: PathBuf,
        /// The plugin's config as JSON text.
        #[arg(long, default_value = "{}")]
        config: String,
        /// Where plugin names are looked up (default: the config's plugins_dir).
        #[arg(long, env = "WEIR_CONFIG", default_value = "config.toml")]
        weir_config: PathBuf,
    },
}

/// Where a running weir is, and how to authenticate to it.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    /// Base URL of the running weir.
    #[arg(long, env = "WEIR_URL", default_value = "http://127.0.0.1:8700")]
    pub url: String,
    /// Bearer token (admin token for admin commands, ingest token for send).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}
