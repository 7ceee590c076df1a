//! The writes of a case change, inside the writer's transaction, each with
//! its audit entry.

use aerie_engine::now;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use aerie_engine::{Assignment, Pick};

use super::{CaseChange, CaseError, CaseUpdate, NewCase, Observable, decide};
use crate::audit::{self, Head};
use crate::error::{Doing as _, Result};

/// Makes `change`, unless `origin` made it before: then its first output.
pub(super) async fn once(
    conn: &mut AnyConnection,
    head: &mut Head,
    change: &CaseChange,
    by: &str,
    origin: Option<&str>,
    assignment: &Assignment,
) -> Result<Value> {
    if let Some(origin) = origin {
        let made: Option<String> =
            sqlx::query_scalar("SELECT output FROM case_calls WHERE origin = $1")
                .bind(origin)
                .fetch_optional(&mut *conn)
                .await
                .doing("looking up the step's earlier case change")?;
        if let Some(output) = made {
            return Ok(serde_json::from_str(&output)?);
        }
    }
    let output = apply(conn, head, change, by, assignment).await?;
    if let Some(origin) = origin {
        sqlx::query("INSERT INTO case_calls (origin, output) VALUES ($1, $2)")
            .bind(origin)
            .bind(output.to_string())
            .execute(&mut *conn)
            .await
            .doing("recording the step's case change")?;
    }
    Ok(output)
}

async fn apply(
    conn: &mut AnyConnection,
    head: &mut Head,
    change: &CaseChange,
    by: &str,
    assignment: &Assignment,
) -> Result<Value> {
    match change {
        CaseChange::Create {
            case,
            dedupe,
            now_ms,
        } => {
            let opening = Opening {
                case,
                by,
                assignment,
                now_ms: *now_ms,
            };
            let created = decide::decide(conn, head, &opening, dedupe.as_ref()).await?;
            Ok(serde_json::to_value(created)?)
        }
        CaseChange::Update { id, update } => {
            open(conn, id).await?;
            let changed = update_case(conn, head, id, update, by).await?;
            Ok(json!({ "id": id, "changed": changed }))
        }
        CaseChange::Comment { id, text } => {
            exists(conn, id).await?;
            let number = comment(conn, head, id, by, text).await?;
            Ok(json!({ "id": id, "comment": number }))
        }
        CaseChange::AddTask { id, title } => {
            if title.trim().is_empty() {
                return Err(CaseError::Missing("task title").into());
            }
            open(conn, id).await?;
            let number = add_task(conn, head, id, title, by).await?;
            Ok(json!({ "id": id, "task": number }))
        }
        CaseChange::Task { id, task, done } => {
            exists(conn, id).await?;
            mark_task(conn, head, id, *task, *done, by).await?;
            Ok(json!({ "id": id, "task": task, "done": done }))
        }
        CaseChange::Link { a, b, kind, reason } => {
            if a == b {
                return Err(CaseError::SelfLink.into());
            }
            exists(conn, a).await?;
            exists(conn, b).await?;
            link(conn, head, a, b, kind, reason.as_deref(), by).await?;
            Ok(json!({ "id": a, "to": b, "kind": kind }))
        }
        CaseChange::Close {
            id,
            resolution,
            duplicate_of,
        } => {
            if resolution.trim().is_empty() {
                return Err(CaseError::Missing("resolution").into());
            }
            open(conn, id).await?;
            if let Some(original) = duplicate_of {
                if original == id {
                    return Err(CaseError::SelfLink.into());
                }
                exists(conn, original).await?;
                let reason = "closed as its duplicate";
                link(conn, head, id, original, "duplicate", Some(reason), by).await?;
                // What repeated this case repeats the one it duplicates: its
                // dedupe keys fold into the case that stays open.
                sqlx::query("UPDATE case_keys SET case_id = $1 WHERE case_id = $2")
                    .bind(original)
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .doing("moving the dedupe keys to the original")?;
            }
            sqlx::query(
                "UPDATE cases SET status = 'closed', resolution = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(resolution)
            .bind(now())
            .bind(id)
            .execute(&mut *conn)
            .await
            .doing("closing the case")?;
            let body = json!({ "by": by, "resolution": resolution, "duplicate_of": duplicate_of });
            audit::append(conn, head, &subject(id), "case.closed", &body).await?;
            let mut output = json!({ "id": id, "resolution": resolution });
            if let Some(original) = duplicate_of {
                output["duplicate_of"] = original.as_str().into();
            }
            Ok(output)
        }
    }
}

/// The audit subject of a case.
pub(super) fn subject(id: &str) -> String {
    format!("case:{id}")
}

/// The case's status; an unknown case is an error.
pub(super) async fn exists(conn: &mut AnyConnection, id: &str) -> Result<String> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM cases WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .doing("looking up the case")?;
    status.ok_or_else(|| CaseError::Unknown(id.to_owned()).into())
}

/// An unknown or closed case is an error.
async fn open(conn: &mut AnyConnection, id: &str) -> Result<()> {
    if exists(conn, id).await? == "closed" {
        return Err(CaseError::Closed(id.to_owned()).into());
    }
    Ok(())
}

/// A case being opened: what, by whom, when, under which assignment rules.
pub(super) struct Opening<'a> {
    pub case: &'a NewCase,
    pub by: &'a str,
    pub assignment: &'a Assignment,
    pub now_ms: i64,
}

/// Who a new case goes to, and by which rule: the assignee it was opened
/// with, else the first assignment rule that matches (a group's member whose
/// turn it is, the turn taken in this transaction).
async fn assignee(
    conn: &mut AnyConnection,
    opening: &Opening<'_>,
) -> Result<(Option<String>, Option<String>)> {
    if let Some(given) = &opening.case.assignee {
        return Ok((Some(given.clone()), None));
    }
    match opening.assignment.pick(&opening.case.kind, opening.now_ms) {
        None => Ok((None, None)),
        Some(Pick::User(user)) => Ok((Some(user.to_owned()), Some("assignment rule".to_owned()))),
        Some(Pick::Turn { key, members }) => {
            let taken: i64 = sqlx::query_scalar(
                "INSERT INTO assign_turns (rule, taken) VALUES ($1, 1)
                 ON CONFLICT (rule) DO UPDATE SET taken = assign_turns.taken + 1
                 RETURNING taken",
            )
            .bind(&key)
            .fetch_one(&mut *conn)
            .await
            .doing("taking the next turn of the assignment rule")?;
            let member = &members[(taken - 1).rem_euclid(members.len() as i64) as usize];
            let group = key.split_once(':').map_or(key.as_str(), |(_, g)| g);
            Ok((
                Some(member.clone()),
                Some(format!("round robin over {group}")),
            ))
        }
    }
}

/// Writes a new case (a child of `parent`, sharing its observables) and
/// returns its id.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    head: &mut Head,
    opening: &Opening<'_>,
    parent: Option<&str>,
) -> Result<String> {
    let (case, by) = (opening.case, opening.by);
    let (assignee, assigned_by) = assignee(conn, opening).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let at = now();
    let severity = if case.severity.is_empty() {
        "medium"
    } else {
        case.severity.as_str()
    };
    sqlx::query(
        "INSERT INTO cases (id, title, type, severity, status, assignee, tags, description,
                            created_at, updated_at, created_by, run_id, parent)
         VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(&case.title)
    .bind(&case.kind)
    .bind(severity)
    .bind(&assignee)
    .bind(serde_json::to_string(&case.tags)?)
    .bind(&case.description)
    .bind(&at)
    .bind(by)
    .bind(&case.run_id)
    .bind(parent)
    .execute(&mut *conn)
    .await
    .doing("opening the case")?;
    sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'cases'")
        .execute(&mut *conn)
        .await
        .doing("counting the case")?;
    let mut observables = case.observables.clone();
    if let Some(parent) = parent {
        let shared: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, value FROM case_observables WHERE case_id = $1")
                .bind(parent)
                .fetch_all(&mut *conn)
                .await
                .doing("reading the parent's observables")?;
        observables.extend(
            shared
                .into_iter()
                .map(|(kind, value)| Observable { kind, value }),
        );
    }
    let observables = add_observables(conn, &id, observables).await?;
    let body = json!({
        "by": by,
        "title": case.title,
        "type": case.kind,
        "severity": severity,
        "assignee": assignee,
        "assigned_by": assigned_by,
        "run": case.run_id,
        "parent": parent,
        "observables": observables,
    });
    audit::append(conn, head, &subject(&id), "case.created", &body).await?;
    Ok(id)
}

/// Adds the observables the case does not hold yet, counting each case an
/// observable appears in; returns those added.
async fn add_observables(
    conn: &mut AnyConnection,
    id: &str,
    mut observables: Vec<Observable>,
) -> Result<Vec<Observable>> {
    observables.sort();
    observables.dedup();
    let mut added = Vec::with_capacity(observables.len());
    for observable in observables {
        let inserted = sqlx::query(
            "INSERT INTO case_observables (case_id, kind, value) VALUES ($1, $2, $3)
             ON CONFLICT (case_id, kind, value) DO NOTHING",
        )
        .bind(id)
        .bind(&observable.kind)
        .bind(&observable.value)
        .execute(&mut *conn)
        .await
        .doing("recording an observable")?;
        if inserted.rows_affected() == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO observable_counts (kind, value, cases) VALUES ($1, $2, 1)
             ON CONFLICT (kind, value) DO UPDATE SET cases = observable_counts.cases + 1",
        )
        .bind(&observable.kind)
        .bind(&observable.value)
        .execute(&mut *conn)
        .await
        .doing("counting an observable")?;
        added.push(observable);
    }
    Ok(added)
}

/// Applies the update's fields; returns the names of those given.
async fn update_case(
    conn: &mut AnyConnection,
    head: &mut Head,
    id: &str,
    update: &CaseUpdate,
    by: &str,
) -> Result<Vec<&'static str>> {
    super::check_kinds(&update.observables)?;
    if update.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(CaseError::Missing("title").into());
    }
    let tags = update
        .tags
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    // COALESCE keeps a field not given; the assignee is cleared by a flag so
    // that "unassign" and "leave it" differ.
    sqlx::query(
        "UPDATE cases SET title = COALESCE($1, title), severity = COALESCE($2, severity),
                          assignee = CASE WHEN $3 = 1 THEN $4 ELSE assignee END,
                          tags = COALESCE($5, tags), description = COALESCE($6, description),
                          updated_at = $7
         WHERE id = $8",
    )
    .bind(&update.title)
    .bind(&update.severity)
    .bind(i64::from(update.assignee.is_some()))
    .bind(update.assignee.clone().flatten())
    .bind(tags)
    .bind(&update.description)
    .bind(now())
    .bind(id)
    .execute(&mut *conn)
    .await
    .doing("updating the case")?;
    let added = add_observables(conn, id, update.observables.clone()).await?;
    let given = [
        ("title", update.title.is_some()),
        ("severity", update.severity.is_some()),
        ("assignee", update.assignee.is_some()),
        ("tags", update.tags.is_some()),
        ("description", update.description.is_some()),
        ("observables", !added.is_empty()),
    ];
    let changed = given.iter().filter(|(_, g)| *g).map(|(name, _)| *name);
    let body = json!({
        "by": by,
        "title": update.title,
        "severity": update.severity,
        "assignee": update.assignee,
        "tags": update.tags,
        "description": update.description,
        "observables": added,
    });
    audit::append(conn, head, &subject(id), "case.updated", &body).await?;
    Ok(changed.collect())
}

/// Adds `author`'s comment; returns its number.
pub(super) async fn comment(
    conn: &mut AnyConnection,
    head: &mut Head,
    id: &str,
    author: &str,
    text: &str,
) -> Result<i64> {
    if text.trim().is_empty() {
        return Err(CaseError::Missing("comment text").into());
    }
    let at = now();
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO case_comments (case_id, author, at, text) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(id)
    .bind(author)
    .bind(&at)
    .bind(text)
    .fetch_one(&mut *conn)
    .await
    .doing("adding the comment")?;
    touch(conn, id, &at).await?;
    let body = json!({ "by": author, "text": text });
    audit::append(conn, head, &subject(id), "case.commented", &body).await?;
    Ok(number)
}

async fn touch(conn: &mut AnyConnection, id: &str, at: &str) -> Result<()> {
    sqlx::query("UPDATE cases SET updated_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(&mut *conn)
        .await
        .doing("updating the case")?;
    Ok(())
}

async fn add_task(
    conn: &mut AnyConnection,
    head: &mut Head,
    id: &str,
    title: &str,
    by: &str,
) -> Result<i64> {
    let at = now();
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO case_tasks (case_id, number, title, created_at, created_by)
         SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4 FROM case_tasks WHERE case_id = $1
         RETURNING number",
    )
    .bind(id)
    .bind(title)
    .bind(&at)
    .bind(by)
    .fetch_one(&mut *conn)
    .await
    .doing("adding the task")?;
    touch(conn, id, &at).await?;
    let body = json!({ "by": by, "task": number, "title": title });
    audit::append(conn, head, &subject(id), "case.task", &body).await?;
    Ok(number)
}

async fn mark_task(
    conn: &mut AnyConnection,
    head: &mut Head,
    id: &str,
    task: i64,
    done: bool,
    by: &str,
) -> Result<()> {
    let at = now();
    let (done_at, done_by) = if done {
        (Some(at.as_str()), Some(by))
    } else {
        (None, None)
    };
    let marked = sqlx::query(
        "UPDATE case_tasks SET done_at = $1, done_by = $2 WHERE case_id = $3 AND number = $4",
    )
    .bind(done_at)
    .bind(done_by)
    .bind(id)
    .bind(task)
    .execute(&mut *conn)
    .await
    .doing("marking the task")?;
    if marked.rows_affected() == 0 {
        return Err(CaseError::UnknownTask {
            case: id.to_owned(),
            task,
        }
        .into());
    }
    touch(conn, id, &at).await?;
    let body = json!({ "by": by, "task": task, "done": done });
    audit::append(conn, head, &subject(id), "case.task", &body).await
}

pub(super) async fn link(
    conn: &mut AnyConnection,
    head: &mut Head,
    a: &str,
    b: &str,
    kind: &str,
    reason: Option<&str>,
    by: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO case_links (a, b, kind, reason, at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (a, b, kind) DO NOTHING",
    )
    .bind(a)
    .bind(b)
    .bind(kind)
    .bind(reason)
    .bind(now())
    .execute(&mut *conn)
    .await
    .doing("linking the cases")?;
    let body = json!({ "by": by, "to": b, "kind": kind, "reason": reason });
    audit::append(conn, head, &subject(a), "case.linked", &body).await
}
