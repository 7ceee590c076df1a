/// `println!` and `print!` that return the write's error instead of
/// panicking: when the reader goes away (`aerie plugin list | head`) the
/// command ends quietly with 0 (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod audit;
mod bundle;
mod cases;
mod classify;
mod model;
mod playbook;
mod plugin;
mod serve;
mod token;

use std::process::ExitCode;

use crate::cli::{Cli, Command, PlaybookCommand};
use crate::context::Context;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context::open(cli.config.as_deref())?;
    // Commands that extend the audit chain sign a checkpoint of it as they end.
    let writes = matches!(
        cli.command,
        Command::Run(_)
            | Command::Serve { .. }
            | Command::Runs(crate::cli::RunsCommand::Resume { .. })
            | Command::Approvals(crate::cli::ApprovalsCommand::Approve(_))
            | Command::Approvals(crate::cli::ApprovalsCommand::Reject(_))
            | Command::Classify(crate::cli::ClassifyCommand::Correct { .. })
            | Command::Plugin(crate::cli::PluginCommand::Install { .. })
            | Command::Plugin(crate::cli::PluginCommand::Approve { .. })
            | Command::Plugin(crate::cli::PluginCommand::Remove { .. })
    ) || matches!(
        &cli.command,
        // Every cases command but the readers changes something.
        Command::Cases(c) if !matches!(
            c,
            crate::cli::CasesCommand::List { .. }
                | crate::cli::CasesCommand::Show { .. }
                | crate::cli::CasesCommand::Similar { .. }
        )
    );
    let code = command(&ctx, cli.command).await;
    if writes && ctx.config.audit.checkpointing().is_some() {
        let store = ctx.store().await?;
        audit::checkpoint(&ctx, &store, false).await?;
    }
    code
}

async fn command(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Plugin(command) => plugin::run(ctx, command).await,
        Command::Run(args) => playbook::run(ctx, args).await,
        Command::Playbook(PlaybookCommand::Validate { paths }) => {
            playbook::validate(ctx, &paths).await
        }
        Command::Runs(command) => audit::runs(ctx, command).await,
        Command::Audit(command) => audit::audit(ctx, command).await,
        Command::Approvals(command) => playbook::approvals(ctx, command).await,
        Command::Classify(command) => classify::run(ctx, command).await,
        Command::Model(command) => model::run(ctx, command).await,
        Command::Serve { listen } => serve::serve(ctx, listen).await,
        Command::Token(command) => token::run(ctx, command).await,
        Command::Cases(command) => cases::run(ctx, command).await,
    }
}
