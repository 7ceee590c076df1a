//! `aerie plugin list | inspect | call`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use aerie_runtime::{CallError, Plugin};
use anyhow::Context as _;
use serde_json::{Value, json};

use crate::cli::PluginCommand;
use crate::context::Context;
use crate::input;

pub async fn run(ctx: &Context, command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::List { json } => list(ctx, json).await,
        PluginCommand::Inspect { plugin, json } => inspect(ctx, &plugin, json).await,
        PluginCommand::Keygen { out } => super::bundle::keygen(&out),
        PluginCommand::Pack { dir, out } => super::bundle::pack(&dir, &out),
        PluginCommand::Sign { file, key } => super::bundle::sign(&file, &key),
        PluginCommand::Install { path, user } => super::bundle::install(ctx, &path, &user).await,
        PluginCommand::Approve { name, user } => super::bundle::approve(ctx, &name, &user).await,
        PluginCommand::Remove { name, user } => super::bundle::remove(ctx, &name, &user).await,
        PluginCommand::Call {
            plugin,
            action,
            input,
            jsonl,
        } => {
            // Bad input is a usage error, reported before any plugin is loaded.
            let input = if jsonl {
                None
            } else {
                Some(input::parse(input.as_deref())?)
            };
            let plugin = ctx.registry()?.load(&plugin).await?;
            match input {
                None => call_lines(&plugin, &action).await,
                Some(input) => call_once(&plugin, &action, &input).await,
            }
        }
    }
}

async fn list(ctx: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    for name in ctx.registry()?.names() {
        rows.push(match ctx.registry()?.load(name).await {
            Ok(p) => json!({
                "name": p.name(),
                "instance_of": p.instance_of,
                "version": p.version(),
                "world": p.world().as_str(),
                "actions": p.actions.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                "description": p.manifest.description,
                "error": null,
            }),
            Err(e) => json!({
                "name": name,
                "instance_of": ctx.registry()?.instance_of(name),
                "error": e.to_string(),
            }),
        });
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        outln!("no plugins in {}", ctx.config.plugins_dir.display())?;
    }
    for row in &rows {
        let name = match row["instance_of"].as_str() {
            Some(of) => format!("{} ({of})", row["name"].as_str().unwrap_or_default()),
            None => row["name"].as_str().unwrap_or_default().to_owned(),
        };
        match row["error"].as_str() {
            Some(error) => outln!("{name:<16} NOT LOADED: {error}")?,
            None => outln!(
                "{name:<16} {:<8} {:<12} {}",
                row["version"].as_str().unwrap_or_default(),
                row["world"].as_str().unwrap_or_default(),
                row["actions"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default(),
            )?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A loaded plugin as `aerie plugin inspect --json` prints it and the API
/// answers it: what it is, what it offers, what the site granted it (names of
/// credentials, never their values).
pub fn view(plugin: &Plugin) -> Value {
    json!({
        "name": plugin.name(),
        "instance_of": plugin.instance_of,
        "version": plugin.version(),
        "world": plugin.world().as_str(),
        "description": plugin.manifest.description,
        "manifest": plugin.manifest_path,
        "component": plugin.component_path,
        "sha256": plugin.sha256,
        "actions": plugin.actions,
        "allowed_origins": plugin.allowed,
        "credentials": plugin.credentials,
        // What the site granted, and what the manifest asked for.
        "limits": limits_json(&plugin.limits),
        "limits_asked": limits_json(&plugin.manifest.limits),
        "data_dir": plugin.data_dir,
        "warm_instances": plugin.warm_max(),
        "unconfigured": plugin.unconfigured,
    })
}

async fn inspect(ctx: &Context, target: &str, json: bool) -> anyhow::Result<ExitCode> {
    let path = Path::new(target);
    let plugin: Arc<Plugin> = if ctx.registry()?.manifest_path(target).is_some() || !path.exists() {
        ctx.registry()?.load(target).await?
    } else {
        Arc::new(ctx.registry()?.load_path(path).await?)
    };
    let view = view(&plugin);
    if json {
        outln!("{}", serde_json::to_string_pretty(&view)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} {} ({} world){}",
        plugin.name(),
        plugin.version(),
        plugin.world().as_str(),
        plugin
            .instance_of
            .as_ref()
            .map(|of| format!(", an instance of {of}"))
            .unwrap_or_default()
    )?;
    if !plugin.manifest.description.is_empty() {
        outln!("  {}", plugin.manifest.description)?;
    }
    outln!("component  {}", plugin.component_path.display())?;
    outln!("sha256     {}", plugin.sha256)?;
    outln!("limits     {}", limits_text(&plugin.limits))?;
    if plugin.manifest.limits != plugin.limits {
        outln!("  asked    {}", limits_text(&plugin.manifest.limits))?;
    }
    if let Some(dir) = &plugin.data_dir {
        outln!("data       {} (read-only, as /data)", dir.display())?;
    }
    match plugin.warm_max() {
        0 => outln!("instances  a fresh one per call")?,
        n => outln!(
            "instances  reused: up to {n} kept warm (later calls see what earlier ones left in memory)"
        )?,
    }
    outln!(
        "network    {}",
        if plugin.allowed.is_empty() {
            "none".to_owned()
        } else {
            plugin.allowed.join(", ")
        }
    )?;
    for cred in &plugin.credentials {
        outln!(
            "credential {} ({}, to {}): {}",
            cred.name,
            cred.apply,
            cred.hosts.join(", "),
            cred.bound_to
                .as_deref()
                .map_or("not bound".to_owned(), |b| format!("bound to {b}"))
        )?;
    }
    if let Some(why) = &plugin.unconfigured {
        outln!("NOT CALLABLE {why}")?;
    }
    outln!("actions")?;
    for action in &plugin.actions {
        outln!("  {:<14} {}", action.name, action.description)?;
        outln!("    input  {}", action.input_schema)?;
        outln!("    output {}", action.output_schema)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn call_once(plugin: &Plugin, action: &str, input: &Value) -> anyhow::Result<ExitCode> {
    let report = plugin.call(action, input).await;
    for line in &report.logs {
        tracing::info!(plugin = plugin.name(), "{}: {}", line.level, line.message);
    }
    for request in &report.requests {
        tracing::info!(
            plugin = plugin.name(),
            "{} {} -> {:?} ({} bytes, {} ms)",
            request.method,
            request.url,
            request.status,
            request.bytes,
            request.ms
        );
    }
    match report.result {
        Ok(output) => {
            outln!("{}", serde_json::to_string_pretty(&output)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("aerie: {err}");
            Ok(ExitCode::from(1))
        }
    }
}

/// One input per stdin line, one output per stdout line, in order, in one
/// process: the way a batch of thousands is classified or enriched.
async fn call_lines(plugin: &Plugin, action: &str) -> anyhow::Result<ExitCode> {
    let mut reader = BufReader::new(std::io::stdin().lock());
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line).context("reading stdin")? == 0 {
            break;
        }
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let result = match serde_json::from_str::<Value>(&line) {
            Ok(input) => plugin
                .call(action, &input)
                .await
                .result
                .map_err(|e| error_json(&e)),
            Err(e) => Err(
                json!({"error": {"code": "invalid-input", "message": format!("line {number} is not JSON: {e}")}}),
            ),
        };
        let text = match result {
            Ok(output) => serde_json::to_string(&output)?,
            Err(error) => {
                failed += 1;
                serde_json::to_string(&error)?
            }
        };
        writeln!(out, "{text}")?;
        // Flush when no more input is waiting, so an interactive producer sees
        // each answer, while a batch is written in large blocks.
        if reader.buffer().is_empty() {
            out.flush()?;
        }
    }
    out.flush()?;
    if failed > 0 {
        eprintln!("aerie: {failed} of the inputs failed");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn error_json(err: &CallError) -> Value {
    json!({"error": {"code": err.code(), "message": err.message()}})
}

fn limits_json(limits: &aerie_manifest::Limits) -> Value {
    json!({
        "memory_mb": limits.memory_mb,
        "timeout_ms": limits.timeout_ms,
        "max_response_kb": limits.max_response_kb,
        "max_requests": limits.max_requests,
    })
}

fn limits_text(limits: &aerie_manifest::Limits) -> String {
    format!(
        "{} MiB memory, {} ms per call, {} KiB per response, {} requests per call",
        limits.memory_mb, limits.timeout_ms, limits.max_response_kb, limits.max_requests
    )
}
