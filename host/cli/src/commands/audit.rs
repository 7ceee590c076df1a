//! `aerie runs list | show` and `aerie audit verify | export`.

use std::fmt::Write as _;
use std::process::ExitCode;

use aerie_store::checkpoint::{self, Standing};
use aerie_store::{AuditEntry, Checkpoint, Store};
use anyhow::Context as _;
use serde_json::{Value, json};

use crate::cli::{AuditCommand, ExportFormat, RunsCommand};
use crate::context::Context;

pub async fn runs(ctx: &Context, command: RunsCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    match command {
        RunsCommand::List { limit, json } => {
            let runs = store.runs(limit).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&runs)?)?;
            } else if runs.is_empty() {
                outln!("no runs yet")?;
            } else {
                for run in runs {
                    outln!(
                        "{}  {:<10} {:<24} {}",
                        run.id,
                        run.status,
                        run.playbook,
                        run.started_at
                    )?;
                }
            }
        }
        RunsCommand::Resume { id, json } => {
            return super::playbook::resume(ctx, &store, id.as_deref(), json).await;
        }
        RunsCommand::Show { id, json } => {
            let Some(run) = store.run(&id).await? else {
                anyhow::bail!("no run `{id}`");
            };
            if json {
                outln!("{}", serde_json::to_string_pretty(&run)?)?;
            } else {
                out!("{}", markdown(&store.audit_entries(&id).await?, &run))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(ctx: &Context, command: AuditCommand) -> anyhow::Result<ExitCode> {
    if let AuditCommand::Keygen { out } = &command {
        return keygen(out);
    }
    let store = ctx.store().await?;
    match command {
        AuditCommand::Verify => verify(ctx, &store).await,
        AuditCommand::Checkpoint => {
            if ctx.config.audit.checkpointing().is_none() {
                anyhow::bail!("no `[audit]` signing_key_file and checkpoints in the config");
            }
            match checkpoint(ctx, &store, true).await? {
                Some(checkpoint) => {
                    outln!("{}", serde_json::to_string_pretty(&checkpoint)?)?;
                    Ok(ExitCode::SUCCESS)
                }
                // Refused, and said why.
                None => Ok(ExitCode::from(1)),
            }
        }
        AuditCommand::Keygen { .. } => Ok(ExitCode::SUCCESS),
        AuditCommand::Export { run, format } => {
            let Some(record) = store.run(&run).await? else {
                anyhow::bail!("no run `{run}`");
            };
            let entries = store.audit_entries(&run).await?;
            match format {
                ExportFormat::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "run": record, "audit": entries }))?
                )?,
                ExportFormat::Md => out!("{}", markdown(&entries, &record))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The chain, then (with `[audit]` set) the chain against the latest signed
/// checkpoint ([`Store::check_audit`]); exit 1 when it does not hold.
async fn verify(ctx: &Context, store: &Store) -> anyhow::Result<ExitCode> {
    let check = store.check_audit(ctx.config.audit.checkpointing()).await?;
    if check.intact {
        outln!("{}", check.summary)?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("aerie: {}", check.summary);
        Ok(ExitCode::from(1))
    }
}

/// Signs and appends a checkpoint of the chain's head when `[audit]` is set
/// and (unless `always`) the head moved since the latest one.
pub async fn checkpoint(
    ctx: &Context,
    store: &Store,
    always: bool,
) -> anyhow::Result<Option<Checkpoint>> {
    let Some((key_file, checkpoints)) = ctx.config.audit.checkpointing() else {
        return Ok(None);
    };
    let key = read_key(key_file)?;
    // Signing the head costs two queries, not a walk of the chain; but a head
    // that does not extend the last checkpoint (entries removed, or the
    // chain rewritten since) is not signed, so a later checkpoint cannot
    // cover up an earlier tampering. `audit verify` says what is wrong.
    let (entries, head) = store.audit_head().await?;
    let latest = Checkpoint::latest(checkpoints).map_err(anyhow::Error::msg)?;
    if let Some(latest) = &latest {
        if store.standing(latest).await? != Standing::Extends {
            eprintln!(
                "aerie: not signing a checkpoint: the audit trail no longer extends the checkpoint of {} (run `aerie audit verify`)",
                latest.at
            );
            return Ok(None);
        }
        if !always && latest.entries == entries && latest.head == head {
            return Ok(None);
        }
    }
    let checkpoint = Checkpoint::sign(&key, entries, &head);
    checkpoint
        .append(checkpoints)
        .map_err(anyhow::Error::msg)
        .context("writing the audit checkpoint")?;
    Ok(Some(checkpoint))
}

fn read_key(path: &std::path::Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the audit signing key {}", path.display()))?;
    checkpoint::signing_key(&text)
        .map_err(anyhow::Error::msg)
        .with_context(|| path.display().to_string())
}

fn keygen(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (secret, public) = checkpoint::generate_key().map_err(anyhow::Error::msg)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    writeln!(file, "{secret}")?;
    let public_path = out.with_extension("pub");
    std::fs::write(&public_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", public_path.display()))?;
    outln!(
        "wrote the signing key to {} (keep it off the database's host) and its public key to {}",
        out.display(),
        public_path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn short(value: &Value, max: usize) -> String {
    let text = value.to_string();
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}… ({} characters)", text.chars().count())
}

/// The run as a checklist, from its audit entries.
fn markdown(entries: &[AuditEntry], run: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Run {} — {}: {}\n",
        run["id"].as_str().unwrap_or_default(),
        run["playbook"].as_str().unwrap_or_default(),
        run["status"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "Started {}, finished {}.\n\nInput: `{}`\n",
        run["started_at"].as_str().unwrap_or("?"),
        run["finished_at"].as_str().unwrap_or("(not yet)"),
        short(&run["input"], 300)
    );
    for entry in entries {
        match entry.kind.as_str() {
            "step.finished" => {
                let step = &entry.body;
                let status = step["status"].as_str().unwrap_or_default();
                let mark = if status == "succeeded" { "x" } else { " " };
                let by = match step["plugin"].as_object() {
                    Some(p) => format!(
                        "{} {} (sha256 {}…)",
                        p["name"].as_str().unwrap_or_default(),
                        p["version"].as_str().unwrap_or_default(),
                        p["sha256"]
                            .as_str()
                            .unwrap_or_default()
                            .get(..12)
                            .unwrap_or_default()
                    ),
                    None => "built-in".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "- [{mark}] **{}** — {status}, by {by}, started {}, {} ms, {} attempt(s)",
                    step["id"].as_str().unwrap_or_default(),
                    step["started_at"].as_str().unwrap_or("?"),
                    step["ms"],
                    step["attempts"]
                );
                if let Some(error) = step["error"].as_object() {
                    let _ = writeln!(
                        out,
                        "  - error: {}: {}",
                        error["code"].as_str().unwrap_or_default(),
                        error["message"].as_str().unwrap_or_default()
                    );
                }
                if !step["output"].is_null() {
                    let _ = writeln!(out, "  - output: `{}`", short(&step["output"], 300));
                }
            }
            "request" => {
                let r = &entry.body["request"];
                let _ = writeln!(
                    out,
                    "  - {} {} → {} ({} bytes, {} ms){}",
                    r["method"].as_str().unwrap_or_default(),
                    r["url"].as_str().unwrap_or_default(),
                    r["status"],
                    r["bytes"],
                    r["ms"],
                    r["refused"]
                        .as_str()
                        .map(|why| format!(" REFUSED: {why}"))
                        .unwrap_or_default()
                );
            }
            "logs" => {
                let body = &entry.body;
                let item = body["item"]
                    .as_u64()
                    .map(|i| format!(" item {i}"))
                    .unwrap_or_default();
                for line in body["lines"].as_array().into_iter().flatten() {
                    let context = line["context"].as_str().unwrap_or_default();
                    let context = if context.is_empty() {
                        String::new()
                    } else {
                        format!(" {context}")
                    };
                    let _ = writeln!(
                        out,
                        "  - log{item} {}{context}: {}",
                        line["level"].as_str().unwrap_or_default(),
                        line["message"].as_str().unwrap_or_default()
                    );
                }
                if let Some(dropped) = body["dropped"].as_u64().filter(|n| *n > 0) {
                    let _ = writeln!(
                        out,
                        "  - log{item}: {dropped} more line(s) past the step's cap were dropped"
                    );
                }
            }
            _ => {}
        }
    }
    if let Some(error) = run["error"].as_str() {
        let _ = writeln!(out, "\nError: {error}");
    }
    let _ = writeln!(out, "\nOutput: `{}`", short(&run["output"], 1000));
    if let Some(last) = entries.last() {
        let _ = writeln!(
            out,
            "\n{} audit entries; the last has hash {}.",
            entries.len(),
            last.hash
        );
    }
    out
}
