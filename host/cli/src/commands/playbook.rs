//! `aerie run` and `aerie playbook validate`: the glue between the engine, the
//! runtime and the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aerie::wiring::RuntimePlugins;
use aerie_engine::{Catalog, Parsed, Playbook, RunRecord, RunStatus, Runner};
use aerie_runtime::Registry;
use aerie_store::Store;
use serde_json::{Value, json};

use crate::cli::{ApprovalsCommand, RunArgs};
use crate::context::Context;
use crate::input;

/// `PLAYBOOK` is a path, or a name in the playbooks folder (with or without
/// `.yaml`).
fn resolve(ctx: &Context, playbook: &str) -> PathBuf {
    resolve_in(&ctx.config.playbooks_dir, playbook)
}

/// [`resolve`] with the playbooks folder `dir`.
pub(super) fn resolve_in(dir: &Path, playbook: &str) -> PathBuf {
    let path = Path::new(playbook);
    if path.exists() {
        return path.to_owned();
    }
    for candidate in [
        dir.join(playbook),
        dir.join(format!("{playbook}.yaml")),
        dir.join(format!("{playbook}.yml")),
    ] {
        if candidate.is_file() {
            return candidate;
        }
    }
    path.to_owned()
}

/// What the playbook's plugins offer (loading each one it names), and the
/// users and groups it may name as approvers.
async fn catalog(ctx: &Context, registry: &Registry, playbook: &Playbook) -> Catalog {
    catalog_of(ctx, registry, playbook.plugins()).await
}

/// What a playbook is checked against on this site: every installed plugin,
/// for `aerie serve`'s API, which validates playbooks it has not seen.
pub(super) async fn site_catalog(ctx: &Context, registry: &Registry) -> Catalog {
    catalog_of(ctx, registry, registry.names()).await
}

/// The people and playbooks of the site, and the `plugins` named.
async fn catalog_of<'n>(
    ctx: &Context,
    registry: &Registry,
    plugins: impl IntoIterator<Item = &'n str>,
) -> Catalog {
    let mut catalog = Catalog {
        playbooks: playbook_names(ctx),
        ..Catalog::default()
    };
    catalog.plugins.insert(
        aerie::wiring::cases::NAME.to_owned(),
        Ok(aerie::wiring::cases::actions()),
    );
    for (user, config) in &ctx.config.users {
        catalog.people.insert(user.clone());
        catalog.people.extend(config.groups.iter().cloned());
    }
    for name in plugins {
        match registry.load(name).await {
            Ok(plugin) => {
                catalog.plugins.insert(
                    name.to_owned(),
                    Ok(plugin.actions.iter().map(|a| a.name.clone()).collect()),
                );
                for action in &plugin.actions {
                    catalog.schemas.insert(
                        (name.to_owned(), action.name.clone()),
                        action.input_schema.clone(),
                    );
                }
            }
            Err(aerie_runtime::RegistryError::Unknown { .. }) => {}
            Err(e) => {
                catalog.plugins.insert(name.to_owned(), Err(e.to_string()));
            }
        }
    }
    catalog
}

/// The playbook at `path`, if it and every playbook it calls are valid;
/// else every problem in all of them.
pub(super) async fn load_valid(
    ctx: &Context,
    registry: &Registry,
    path: &Path,
) -> Result<Playbook, Vec<String>> {
    validate_read(ctx, registry, path, Playbook::read_file(path)).await
}

/// [`load_valid`] for a playbook already read from `path`.
pub(super) async fn validate_read(
    ctx: &Context,
    registry: &Registry,
    path: &Path,
    top: Parsed,
) -> Result<Playbook, Vec<String>> {
    let mut seen = std::collections::BTreeSet::from([path.to_owned()]);
    let mut queue = Vec::new();
    let mut called = |parsed: &Parsed, queue: &mut Vec<Parsed>| {
        for name in parsed.playbook.called_playbooks() {
            let path = resolve(ctx, name);
            if path.is_file() && seen.insert(path.clone()) {
                queue.push(Playbook::read_file(&path));
            }
        }
    };
    called(&top, &mut queue);
    let catalog_of_top = catalog(ctx, registry, &top.playbook).await;
    let mut errors: Vec<String> = Vec::new();
    let playbook = top
        .validate(&catalog_of_top)
        .map_err(|e| errors.extend(e.0.iter().map(ToString::to_string)));
    while let Some(next) = queue.pop() {
        called(&next, &mut queue);
        let catalog = catalog(ctx, registry, &next.playbook).await;
        if let Err(e) = next.validate(&catalog) {
            errors.extend(e.0.iter().map(ToString::to_string));
        }
    }
    match playbook {
        Ok(playbook) if errors.is_empty() => Ok(playbook),
        _ => Err(errors),
    }
}

/// The names `playbook` steps may use: the files in the playbooks folder.
fn playbook_names(ctx: &Context) -> std::collections::BTreeSet<String> {
    playbook_files(&ctx.config.playbooks_dir)
        .iter()
        .filter_map(|path| path.file_stem()?.to_str().map(str::to_owned))
        .collect()
}

/// The `.yaml` and `.yml` files of the playbooks folder, in name order.
pub(super) fn playbook_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = listing
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
        })
        .collect();
    files.sort();
    files
}

pub async fn validate(ctx: &Context, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for path in paths {
        match load_valid(ctx, ctx.registry()?, path).await {
            Ok(_) => outln!("{}: ok", path.display())?,
            Err(errors) => {
                failed += 1;
                for error in errors {
                    eprintln!("{error}");
                }
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<ExitCode> {
    let input = input::parse(args.input.as_deref())?;
    let path = resolve(ctx, &args.playbook);
    let playbook = match load_valid(ctx, ctx.registry()?, &path).await {
        Ok(playbook) => playbook,
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            anyhow::bail!("{} is not a valid playbook", path.display());
        }
    };
    let store = ctx.store().await?;
    let plugins = RuntimePlugins {
        registry: ctx.registry()?,
        store: &store,
    };
    let load = |name: &str| Playbook::from_file(&resolve(ctx, name));
    let run = runner(ctx, &plugins, &store)
        .playbooks(&load)
        .run(&playbook, &input)
        .await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&run_json(&run))?)?;
    } else {
        print_run(&run)?;
    }
    Ok(match run.status {
        RunStatus::Succeeded | RunStatus::Waiting => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

pub(super) fn runner<'a>(
    ctx: &Context,
    plugins: &'a RuntimePlugins<'a>,
    store: &'a Store,
) -> Runner<'a, RuntimePlugins<'a>, Store> {
    Runner::new(plugins, store)
        .lease_duration(ctx.config.engine.lease())
        .max_items(ctx.config.engine.max_items)
}

/// `aerie runs resume [ID]`: finishes the runs whose process died.
pub async fn resume(
    ctx: &Context,
    store: &Store,
    only: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let plugins = RuntimePlugins {
        registry: ctx.registry()?,
        store,
    };
    let load_called = |name: &str| Playbook::from_file(&resolve(ctx, name));
    let runner = runner(ctx, &plugins, store).playbooks(&load_called);
    let load = |source: &str| Playbook::parse(Path::new("(stored definition)"), source);
    // Approvals past their deadline are decided first: their runs go back in
    // the queue and are resumed here.
    store.expire_approvals().await?;
    let mut resumed = Vec::new();
    while let Some(run) = runner.resume(only, load).await? {
        resumed.push(run);
        if only.is_some() {
            break;
        }
    }
    if let (Some(id), true) = (only, resumed.is_empty()) {
        anyhow::bail!(
            "run `{id}` is not waiting to be resumed (finished, unknown, or its process still holds it)"
        );
    }
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&resumed.iter().map(run_json).collect::<Vec<_>>())?
        )?;
    } else if resumed.is_empty() {
        outln!("no run to resume")?;
    } else {
        for run in &resumed {
            print_run(run)?;
        }
    }
    let all_succeeded = resumed
        .iter()
        .all(|r| matches!(r.status, RunStatus::Succeeded | RunStatus::Waiting));
    Ok(if all_succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn approvals(ctx: &Context, command: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let (decision, approve) = match command {
        ApprovalsCommand::List { json } => {
            let pending = store.pending_approvals().await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&pending)?)?;
            } else if pending.is_empty() {
                outln!("no pending approvals")?;
            } else {
                for a in pending {
                    outln!(
                        "{}  run {} step {}: {} of {} from [{}] so far: [{}]\n    {}",
                        a.id,
                        a.run_id,
                        a.step_id,
                        a.approvals.len(),
                        a.required,
                        a.approvers.join(", "),
                        a.approvals.join(", "),
                        a.message
                    )?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCommand::Approve(decision) => (decision, true),
        ApprovalsCommand::Reject(decision) => (decision, false),
    };
    let Some(user) = ctx.config.users.get(&decision.user) else {
        anyhow::bail!("`{}` is not a user in [users] of the config", decision.user);
    };
    let decider = aerie_engine::Decider {
        user: &decision.user,
        groups: &user.groups,
    };
    let settled = store
        .decide(&decision.id, decider, approve, decision.comment.as_deref())
        .await?;
    let verb = if approve { "approved" } else { "rejected" };
    let Some(run_id) = settled else {
        outln!(
            "{} {verb} approval {}; it needs more approvals",
            decision.user,
            decision.id
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    outln!(
        "{} {verb} approval {}; resuming run {run_id}",
        decision.user,
        decision.id
    )?;
    resume(ctx, &store, Some(&run_id), false).await
}

/// `{"id", "status", "output", "steps": [{"id", "status", "attempts", "error"}]}`.
pub(super) fn run_json(run: &RunRecord) -> Value {
    json!({
        "id": run.id,
        "playbook": run.playbook,
        "status": run.status,
        "output": run.output,
        "error": run.error,
        "steps": run.steps.iter().map(|s| json!({
            "id": s.id,
            "status": s.status,
            "attempts": s.attempts,
            "error": s.error,
            "ms": s.ms,
        })).collect::<Vec<_>>(),
    })
}

fn print_run(run: &RunRecord) -> std::io::Result<()> {
    outln!(
        "run {} of {}: {}",
        run.id,
        run.playbook,
        run.status.as_str()
    )?;
    for step in &run.steps {
        let error = step
            .error
            .as_ref()
            .map(|e| format!("  {}: {}", e.code, e.message))
            .unwrap_or_default();
        outln!(
            "  {:<20} {:<10} {:>6} ms{error}",
            step.id,
            step.status.as_str(),
            step.ms
        )?;
    }
    if let Some(error) = &run.error {
        outln!("error: {error}")?;
    }
    if !run.output.is_null() {
        outln!(
            "{}",
            serde_json::to_string_pretty(&run.output).unwrap_or_default()
        )?;
    }
    Ok(())
}
