//! `aerie token create --as USER [--expires 30d]`.

use std::process::ExitCode;

use crate::cli::TokenCommand;
use crate::context::Context;

pub async fn run(ctx: &Context, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create { user, expires } = command;
    if user.trim().is_empty() || user.chars().any(char::is_control) {
        anyhow::bail!("`--as` needs a user name");
    }
    if !ctx.config.users.contains_key(&user) {
        eprintln!(
            "aerie: note: `{user}` is not in [users] of the config: the token reads the API, but decides no approval until it is"
        );
    }
    let expires_ms = expires.map(|d| {
        aerie_engine::epoch_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    });
    let store = ctx.store().await?;
    let (info, token) = store.create_token(&user, expires_ms).await?;
    let until = match expires {
        Some(d) => format!(", valid for {}", humantime::format_duration(d)),
        None => String::new(),
    };
    outln!(
        "token {} for {user}{until}; it is shown once, keep it now:",
        info.id
    )?;
    outln!("{token}")?;
    Ok(ExitCode::SUCCESS)
}
