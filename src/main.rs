//! The `weir` binary: parse the command line, set up logging, hand over.

use std::process::ExitCode;

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
    match runtime.block_on(weir::commands::run(cli.command)) {
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
