//! `aerie cases list | show | open | update | comment | task | close | link |
//! similar | ignore`: each change one [`CaseChange`], as the `case.*` actions
//! and the API make them.

use std::process::ExitCode;

use aerie_store::cases::input;
use aerie_store::{CaseChange, CaseFilter, CaseUpdate, Observable};
use serde_json::Value;

use crate::cli::CasesCommand;
use crate::context::Context;

pub async fn run(ctx: &Context, command: CasesCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    match command {
        CasesCommand::List {
            status,
            kind,
            limit,
            json,
        } => {
            let cases = store
                .cases(&CaseFilter {
                    status,
                    kind,
                    limit,
                })
                .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&cases)?)?;
            } else if cases.is_empty() {
                outln!("no cases")?;
            }
            for case in cases.iter().filter(|_| !json) {
                outln!(
                    "{}  {:<6}  {:<13}  {}",
                    text(&case["id"]),
                    text(&case["status"]),
                    text(&case["type"]),
                    text(&case["title"])
                )?;
            }
        }
        CasesCommand::Show { id, json } => {
            let Some(case) = store.case(&id).await? else {
                anyhow::bail!("no case `{id}`");
            };
            if json {
                outln!("{}", serde_json::to_string_pretty(&case)?)?;
            } else {
                show(&case)?;
            }
        }
        CasesCommand::Open {
            title,
            kind,
            severity,
            description,
            observables,
            tags,
            assignee,
            dedupe_key,
            window,
            window_from,
            strategy,
            json,
            user,
        } => {
            known(ctx, &user)?;
            // Read as `case.create`'s input is, so the rules and defaults are one.
            let mut input = serde_json::json!({
                "title": title, "type": kind, "severity": severity, "description": description,
                "observables": observables_of(&observables)?, "tags": tags, "assignee": assignee,
            });
            if let Some(key) = dedupe_key {
                input["dedupe"] = serde_json::json!({
                    "key": key, "window": window, "window_from": window_from, "strategy": strategy,
                });
            }
            let change = input::change("create", &input, None, aerie_engine::epoch_ms())?;
            let created = store.change_case(change, &user, None).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&created)?)?;
            } else if created["created"] == false {
                outln!(
                    "{}  (a repeat: folded into it by {})",
                    text(&created["id"]),
                    text(&created["strategy"])
                )?;
            } else {
                outln!("{}", text(&created["id"]))?;
            }
        }
        CasesCommand::Comment { id, text, user } => {
            known(ctx, &user)?;
            store.comment_case(&id, &user, &text).await?;
            outln!("commented on case {id}")?;
        }
        CasesCommand::Update {
            id,
            title,
            severity,
            assignee,
            unassign,
            tags,
            description,
            observables,
            user,
        } => {
            known(ctx, &user)?;
            let update = CaseUpdate {
                title,
                severity,
                assignee: if unassign {
                    Some(None)
                } else {
                    assignee.map(Some)
                },
                tags: (!tags.is_empty()).then_some(tags),
                description,
                observables: observables_of(&observables)?,
            };
            let change = CaseChange::Update {
                id: id.clone(),
                update,
            };
            let changed = store.change_case(change, &user, None).await?;
            outln!("updated case {id}: {}", changed["changed"])?;
        }
        CasesCommand::Task {
            id,
            add,
            done,
            undone,
            user,
        } => {
            known(ctx, &user)?;
            let change = match (add, done, undone) {
                (Some(title), _, _) => CaseChange::AddTask {
                    id: id.clone(),
                    title,
                },
                (None, Some(task), _) => CaseChange::Task {
                    id: id.clone(),
                    task,
                    done: true,
                },
                (None, None, Some(task)) => CaseChange::Task {
                    id: id.clone(),
                    task,
                    done: false,
                },
                (None, None, None) => anyhow::bail!("give --add TITLE, --done N or --undone N"),
            };
            let output = store.change_case(change, &user, None).await?;
            outln!("case {id}: task {}", output["task"])?;
        }
        CasesCommand::Close {
            id,
            resolution,
            duplicate_of,
            user,
        } => {
            known(ctx, &user)?;
            let change = CaseChange::Close {
                id: id.clone(),
                resolution: resolution.clone(),
                duplicate_of: duplicate_of.clone(),
            };
            store.change_case(change, &user, None).await?;
            match duplicate_of {
                Some(original) => outln!("closed case {id} as a duplicate of {original}")?,
                None => outln!("closed case {id}: {resolution}")?,
            }
        }
        CasesCommand::Similar { id, limit, json } => {
            let similar = store.similar_cases(&id, limit).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&similar)?)?;
            } else if similar.is_empty() {
                outln!("no open case shares a telling observable with {id}")?;
            }
            for case in similar.iter().filter(|_| !json) {
                let shared: Vec<String> = case
                    .shared
                    .iter()
                    .map(|o| format!("{}:{}", o.kind, o.value))
                    .collect();
                outln!(
                    "{}  {:.3}  {}  (shares {})",
                    case.id,
                    case.score,
                    case.title,
                    shared.join(", ")
                )?;
            }
        }
        CasesCommand::Ignore {
            observable: given,
            reason,
            undo,
            user,
        } => {
            known(ctx, &user)?;
            let observable = observable(&given)?;
            store
                .ignore_observable(&observable, !undo, reason.as_deref(), &user)
                .await?;
            if undo {
                outln!("{given} counts for similarity again")?;
            } else {
                outln!("{given} is ignored for similarity")?;
            }
        }
        CasesCommand::Link {
            a,
            b,
            kind,
            reason,
            user,
        } => {
            known(ctx, &user)?;
            store
                .link_cases(&a, &b, &kind, reason.as_deref(), &user)
                .await?;
            outln!("linked case {a} to {b} ({kind})")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Changes name who made them: a user of the config.
fn known(ctx: &Context, user: &str) -> anyhow::Result<()> {
    if !ctx.config.users.contains_key(user) {
        anyhow::bail!("`{user}` is not a user in [users] of the config");
    }
    Ok(())
}

fn observables_of(given: &[String]) -> anyhow::Result<Vec<Observable>> {
    given.iter().map(|g| observable(g)).collect()
}

/// `ip:10.0.0.1` as an observable.
fn observable(given: &str) -> anyhow::Result<Observable> {
    match given.split_once(':') {
        Some((kind, value)) if !value.is_empty() => Ok(Observable {
            kind: kind.to_owned(),
            value: value.to_owned(),
        }),
        _ => anyhow::bail!("`--observable {given}`: give KIND:VALUE, `ip:10.0.0.1` say"),
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn show(case: &Value) -> anyhow::Result<()> {
    outln!("# Case {} — {}", text(&case["id"]), text(&case["title"]))?;
    outln!(
        "{} · {} · {}{}",
        text(&case["type"]),
        text(&case["severity"]),
        text(&case["status"]),
        case["resolution"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )?;
    outln!(
        "opened {} by {}",
        text(&case["created_at"]),
        text(&case["created_by"])
    )?;
    if let Some(parent) = case["parent"].as_str() {
        outln!("child of {parent}")?;
    }
    if let Some(description) = case["description"].as_str().filter(|d| !d.is_empty()) {
        outln!("\n{description}")?;
    }
    let list = |key: &str| case[key].as_array().cloned().unwrap_or_default();
    let observables = list("observables");
    if !observables.is_empty() {
        outln!("\nobservables:")?;
        for o in &observables {
            outln!("- {} {}", text(&o["kind"]), text(&o["value"]))?;
        }
    }
    let links = list("links");
    if !links.is_empty() {
        outln!("\nlinks:")?;
        for l in &links {
            outln!(
                "- {} {} {}{}",
                text(&l["kind"]),
                text(&l["direction"]),
                text(&l["case"]),
                l["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )?;
        }
    }
    for child in list("children") {
        outln!("child: {}", text(&child))?;
    }
    let tasks = list("tasks");
    if !tasks.is_empty() {
        outln!("\ntasks:")?;
        for t in &tasks {
            let mark = if t["done"] == true { "x" } else { " " };
            let by = t["done_by"]
                .as_str()
                .map(|by| format!(" (done by {by}, {})", text(&t["done_at"])))
                .unwrap_or_default();
            outln!("- [{mark}] {}. {}{by}", t["task"], text(&t["title"]))?;
        }
    }
    let comments = list("comments");
    if !comments.is_empty() {
        outln!("\ncomments:")?;
        for c in &comments {
            outln!(
                "- {} {}: {}",
                text(&c["at"]),
                text(&c["author"]),
                text(&c["text"])
            )?;
        }
    }
    Ok(())
}
