//! `aerie runs list | show` and `aerie audit verify | export`.

use std::fmt::Write as _;
use std::process::ExitCode;

use aerie_store::{AuditEntry, Store, Verification};
use serde_json::{Value, json};

use crate::cli::{AuditCommand, ExportFormat, RunsCommand};
use crate::context::Context;

pub async fn runs(ctx: &Context, command: RunsCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open(&ctx.config.store_url()).await?;
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
    let store = Store::open(&ctx.config.store_url()).await?;
    match command {
        AuditCommand::Verify => match store.verify_audit().await? {
            Verification::Intact { entries, last } => {
                outln!("audit trail intact: {entries} entries, last hash {last}")?;
                Ok(ExitCode::SUCCESS)
            }
            Verification::Broken { seq, why } => {
                eprintln!("aerie: audit entry {seq} does not match: {why}");
                Ok(ExitCode::from(1))
            }
        },
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
