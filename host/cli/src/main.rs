//! `aerie`: the command line and, later, the server.
//!
//! Errors are printed once, with their whole chain, on stderr. Exit codes: 0
//! success, 1 a failure (a plugin error, an invalid playbook, a failed run), 2 a
//! usage error (bad arguments, `--input` that is not JSON).

mod cli;
mod commands;
mod context;
mod input;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("aerie: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("aerie: {}", chain(&err));
            ExitCode::from(if err.is::<input::UsageError>() { 2 } else { 1 })
        }
    }
}

/// `outer: inner: root`, each cause once.
fn chain(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,aerie=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AERIE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
