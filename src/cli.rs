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
    /// Apply pending store migrations and exit (`weir serve` applies them too).
    Migrate {
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
    /// Manage webhooks through a running weir's API.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Inbound sources and the requests they caught, through a running weir's API.
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// Manage API tokens (needs an admin token).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
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

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// List the webhooks the token may see.
    List {
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one webhook.
    Get {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Create a webhook; prints its signing secret once.
    Create {
        #[command(flatten)]
        spec: SpecArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change some keys of a webhook.
    Update {
        #[arg(value_name = "ID")]
        webhook: String,
        #[command(flatten)]
        spec: SpecArgs,
        /// Pause (false) or resume (true) deliveries.
        #[arg(long)]
        active: Option<bool>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a webhook; its pending deliveries become canceled.
    Delete {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Give a webhook a new secret; the old one signs beside it for the overlap.
    RotateSecret {
        id: String,
        /// Seconds the previous secret keeps signing (default 86400).
        #[arg(long)]
        overlap_secs: Option<u64>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Webhook keys given as flags; `--body` takes a whole JSON spec.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SpecArgs {
    /// A JSON webhook spec (the keys of a [[webhooks]] table); `-` for stdin.
    #[arg(long)]
    pub body: Option<String>,
    #[arg(long)]
    pub id: Option<String>,
    /// Where deliveries go (`--url` names the weir server).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// An event-type glob; repeat for several.
    #[arg(long = "event")]
    pub events: Vec<String>,
    /// An owner_id; repeat for several.
    #[arg(long = "owner")]
    pub owners: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// A `whsec_` secret; generated when none is given.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SourcesCommand {
    /// List the sources the token may see.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Create a source from a JSON body (the keys of a `[[sources]]` table),
    /// given as an argument or on stdin with `-`.
    Create {
        /// `{"id": "github", "verify": "github", "secrets": ["..."]}`, or `-`.
        spec: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a source created through the API.
    Delete {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// The requests a source caught (newest first) and those it refused lately.
    Requests {
        id: String,
        /// pending, routed or held.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// One caught request with its headers and body.
    Request {
        id: String,
        request: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Route a caught request again through the source's current plugin.
    Replay {
        id: String,
        request: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; prints it once.
    Create {
        /// Limit the token to this owner's webhooks, deliveries and events.
        #[arg(long)]
        owner: Option<String>,
        /// events:write, webhooks:read, webhooks:write, deliveries:read,
        /// deliveries:replay, plugins:read, sources:read, sources:write or
        /// admin; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List tokens by id and prefix.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Where a running weir is, and how to authenticate to it: flags, then the
/// environment, then the local config file's listen address and token.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    /// Base URL of the running weir (default: from the config's listen address).
    #[arg(long, env = "WEIR_URL")]
    pub url: Option<String>,
    /// Bearer token (default: WEIR_ADMIN_TOKEN, then the config's token).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The config file consulted when no URL or token is given.
    #[arg(long = "config", env = "WEIR_CONFIG", default_value = "config.toml")]
    pub config: PathBuf,
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
