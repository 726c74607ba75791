//! The `weir` binary: parse the command line, set up logging, hand over.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use weir::cli::{Cli, LogFormat};

fn main() -> ExitCode {
    // A mistyped command or flag is the user's: exit 1 (SPEC §6), not
    // clap's 2, which weir keeps for internal errors.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(weir::commands::run(cli.command));
    // A task stuck in a blocking call must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(weir::commands::Failure::User(lines)) => {
            for line in lines {
                eprintln!("error: {line}");
            }
            ExitCode::from(1)
        }
        Err(weir::commands::Failure::Internal(e)) => {
            eprintln!("weir: internal error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Targets kept at `info` unless `WEIR_LOG` names them: the file watcher's
/// crates log every filesystem event at trace, and with stderr written next
/// to config.toml every log line is such an event, which logs another.
const QUIET_TARGETS: [&str; 2] = ["notify", "inotify"];

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let spec = std::env::var("WEIR_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(&spec)
        .ok()
        .filter(|_| !spec.is_empty())
        .unwrap_or_else(|| EnvFilter::new("info"));
    for target in QUIET_TARGETS {
        if !spec.contains(target) {
            filter =
                filter.add_directive(format!("{target}=info").parse().expect("a valid directive"));
        }
    }
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
