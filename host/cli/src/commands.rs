mod plugin;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::context::Context;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context::open(cli.config.as_deref())?;
    match cli.command {
        Command::Plugin(command) => plugin::run(&ctx, command).await,
        Command::Run(_) | Command::Playbook(_) => anyhow::bail!("not yet"),
    }
}
