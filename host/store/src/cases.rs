//! Cases (tickets): what belongs together, opened by runs and people, and
//! the de-duplication that folds a repeated alert into the case it repeats.
//!
//! Every change is a write of the group-commit writer and an audited event
//! (`case.created`, `case.repeated`, `case.commented`, `case.linked`,
//! `case.closed`) under the subject `case:ID`, naming who made it. A
//! de-duplication decision reads the key and writes its outcome in one
//! transaction that holds the audit chain's lock — SQLite's one writer, or
//! PostgreSQL's advisory lock across servers — so two identical alerts
//! arriving at once make one case.

mod read;

use std::sync::{Arc, Mutex};

use aerie_engine::{now, rfc3339};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use crate::Store;
use crate::audit::{self, Head};
use crate::error::{Doing as _, Result};

pub use read::CaseFilter;

/// A typed indicator: `ip`, `domain`, `url`, `hash`, `email`, `host`, `user`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct Observable {
    pub kind: String,
    pub value: String,
}

/// The kinds of observable a case holds.
pub const OBSERVABLE_KINDS: &[&str] = &["ip", "domain", "url", "hash", "email", "host", "user"];

/// A case to open.
#[derive(Debug, Clone, Default)]
pub struct NewCase {
    pub title: String,
    /// Free: Enrichment, Investigation, Phishing, DeviceLost, ...
    pub kind: String,
    pub severity: String,
    pub description: String,
    pub tags: Vec<String>,
    pub assignee: Option<String>,
    pub observables: Vec<Observable>,
    /// The run that opened it, if one did.
    pub run_id: Option<String>,
}

/// Where a de-duplication window is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFrom {
    /// A repeat within the window of the key's first sighting folds.
    First,
    /// A sliding gap: each repeat extends the window, and a gap longer than
    /// it starts a new case.
    Last,
}

/// What a repeat does, from the most aggressive to the most passive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Nothing saved; the key's repeat count goes up.
    Drop,
    /// A comment on the existing case with the repeat's time and fields.
    DropAndComment,
    /// A new case, a child of the first, sharing its observables.
    Child,
    /// An independent case, linked to the first.
    Link,
    /// A new case, and a "might be related" note on the old one.
    NewAndNote,
}

impl Strategy {
    pub const ALL: &[(&str, Strategy)] = &[
        ("drop", Strategy::Drop),
        ("drop_and_comment", Strategy::DropAndComment),
        ("child", Strategy::Child),
        ("link", Strategy::Link),
        ("new_and_note", Strategy::NewAndNote),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Drop => "drop",
            Strategy::DropAndComment => "drop_and_comment",
            Strategy::Child => "child",
            Strategy::Link => "link",
            Strategy::NewAndNote => "new_and_note",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = CaseError;

    fn from_str(name: &str) -> Result<Strategy, CaseError> {
        Strategy::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .ok_or_else(|| CaseError::Strategy(name.to_owned()))
    }
}

/// How a case being opened is folded into one it repeats.
#[derive(Debug, Clone)]
pub struct Dedupe {
    /// The rendered key: `10.0.0.1|CVE-2024-1234`.
    pub key: String,
    pub window_ms: i64,
    pub from: WindowFrom,
    pub strategy: Strategy,
    /// The repeat's fields, for `drop_and_comment`'s comment.
    pub fields: Value,
}

/// What [`Store::create_case`] did: `case.create`'s output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    /// The case opened, or (for `drop` and `drop_and_comment`) the one folded into.
    pub id: String,
    pub created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<&'static str>,
}

/// Why a case change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no case `{0}`")]
    Unknown(String),
    #[error("case `{0}` is closed")]
    Closed(String),
    #[error(
        "the dedupe key rendered empty: a key must name what makes two alerts the same (`{{{{ inputs.body.src_ip }}}}`, say)"
    )]
    EmptyKey,
    #[error(
        "`{0}` is not a dedupe strategy: use drop, drop_and_comment, child, link or new_and_note"
    )]
    Strategy(String),
    #[error("`{kind}` is not a kind of observable: use {}", OBSERVABLE_KINDS.join(", "))]
    ObservableKind { kind: String },
    #[error("a case needs a {0}")]
    Missing(&'static str),
}

impl Store {
    /// Opens `case` as `by`, or folds it into the case its `dedupe` key
    /// repeats within the window, by the strategy. `now_ms` is the time the
    /// window is judged at (the caller's clock, so tests can move it).
    pub async fn create_case(
        &self,
        case: NewCase,
        dedupe: Option<Dedupe>,
        by: &str,
        now_ms: i64,
    ) -> Result<Created> {
        check(&case, dedupe.as_ref())?;
        let outcome = Arc::new(Mutex::new(None));
        let (shared, out) = (Arc::new((case, dedupe, by.to_owned())), outcome.clone());
        self.writer
            .submit(Box::new(move |conn, head| {
                let (shared, out) = (shared.clone(), out.clone());
                Box::pin(async move {
                    let (case, dedupe, by) = &*shared;
                    let created = decide(conn, head, case, dedupe.as_ref(), by, now_ms).await?;
                    *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(created);
                    Ok(())
                })
            }))
            .await?;
        let created = outcome.lock().unwrap_or_else(|e| e.into_inner()).take();
        created.ok_or_else(|| crate::StoreError::Write("the case was not written".to_owned()))
    }

    /// Adds `author`'s comment to the case.
    pub async fn comment_case(&self, id: &str, author: &str, text: &str) -> Result<()> {
        let (id, author, text) = (id.to_owned(), author.to_owned(), text.to_owned());
        self.writer
            .submit(Box::new(move |conn, head| {
                let (id, author, text) = (id.clone(), author.clone(), text.clone());
                Box::pin(async move {
                    exists(conn, &id).await?;
                    comment(conn, head, &id, &author, &text).await
                })
            }))
            .await
    }

    /// Closes the case with `resolution` (`benign`, `escalated`, ...), as `by`.
    pub async fn close_case(&self, id: &str, resolution: &str, by: &str) -> Result<()> {
        let (id, resolution, by) = (id.to_owned(), resolution.to_owned(), by.to_owned());
        self.writer
            .submit(Box::new(move |conn, head| {
                let (id, resolution, by) = (id.clone(), resolution.clone(), by.clone());
                Box::pin(async move {
                    if exists(conn, &id).await? == "closed" {
                        return Err(CaseError::Closed(id.clone()).into());
                    }
                    sqlx::query(
                        "UPDATE cases SET status = 'closed', resolution = $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(&resolution)
                    .bind(now())
                    .bind(&id)
                    .execute(&mut *conn)
                    .await
                    .doing("closing the case")?;
                    let body = json!({ "by": by, "resolution": resolution });
                    audit::append(conn, head, &subject(&id), "case.closed", &body).await
                })
            }))
            .await
    }

    /// Links case `a` to `b` (`kind`: `linked`, `duplicate`, ...), as `by`.
    pub async fn link_cases(
        &self,
        a: &str,
        b: &str,
        kind: &str,
        reason: Option<&str>,
        by: &str,
    ) -> Result<()> {
        let (a, b, kind) = (a.to_owned(), b.to_owned(), kind.to_owned());
        let (reason, by) = (reason.map(str::to_owned), by.to_owned());
        self.writer
            .submit(Box::new(move |conn, head| {
                let (a, b, kind) = (a.clone(), b.clone(), kind.clone());
                let (reason, by) = (reason.clone(), by.clone());
                Box::pin(async move {
                    exists(conn, &a).await?;
                    exists(conn, &b).await?;
                    link(conn, head, &a, &b, &kind, reason.as_deref(), &by).await
                })
            }))
            .await
    }
}

fn check(case: &NewCase, dedupe: Option<&Dedupe>) -> Result<(), CaseError> {
    if case.title.trim().is_empty() {
        return Err(CaseError::Missing("title"));
    }
    if case.kind.trim().is_empty() {
        return Err(CaseError::Missing("type"));
    }
    if let Some(bad) = case
        .observables
        .iter()
        .find(|o| !OBSERVABLE_KINDS.contains(&o.kind.as_str()))
    {
        return Err(CaseError::ObservableKind {
            kind: bad.kind.clone(),
        });
    }
    if dedupe.is_some_and(|d| d.key.trim().is_empty()) {
        return Err(CaseError::EmptyKey);
    }
    Ok(())
}

/// The audit subject of a case.
fn subject(id: &str) -> String {
    format!("case:{id}")
}

/// The case's status; an unknown case is an error.
async fn exists(conn: &mut AnyConnection, id: &str) -> Result<String> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM cases WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .doing("looking up the case")?;
    status.ok_or_else(|| CaseError::Unknown(id.to_owned()).into())
}

/// The de-duplication decision and its writes, inside the writer's
/// transaction.
async fn decide(
    conn: &mut AnyConnection,
    head: &mut Head,
    case: &NewCase,
    dedupe: Option<&Dedupe>,
    by: &str,
    now_ms: i64,
) -> Result<Created> {
    let Some(dedupe) = dedupe else {
        let id = insert(conn, head, case, None, by).await?;
        return Ok(Created {
            id,
            created: true,
            duplicate_of: None,
            strategy: None,
        });
    };
    // The chain's lock before the key is read: on PostgreSQL another
    // server's decision on the same key commits first or waits for ours.
    audit::lock_chain(conn).await?;
    let seen: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT case_id, first_ms, last_ms FROM case_keys WHERE key = $1")
            .bind(&dedupe.key)
            .fetch_optional(&mut *conn)
            .await
            .doing("looking up the dedupe key")?;
    let repeats = seen.filter(|(_, first, last)| {
        let since = match dedupe.from {
            WindowFrom::First => *first,
            WindowFrom::Last => *last,
        };
        now_ms.saturating_sub(since) <= dedupe.window_ms
    });
    let Some((original, _, _)) = repeats else {
        // New, or the window (the gap) passed: this case is the key's now.
        let id = insert(conn, head, case, None, by).await?;
        sqlx::query(
            "INSERT INTO case_keys (key, case_id, first_ms, last_ms, repeats) VALUES ($1, $2, $3, $3, 0)
             ON CONFLICT (key) DO UPDATE SET case_id = excluded.case_id, first_ms = excluded.first_ms,
                last_ms = excluded.last_ms, repeats = 0",
        )
        .bind(&dedupe.key)
        .bind(&id)
        .bind(now_ms)
        .execute(&mut *conn)
        .await
        .doing("recording the dedupe key")?;
        return Ok(Created {
            id,
            created: true,
            duplicate_of: None,
            strategy: None,
        });
    };
    sqlx::query("UPDATE case_keys SET last_ms = $1, repeats = repeats + 1 WHERE key = $2")
        .bind(now_ms)
        .bind(&dedupe.key)
        .execute(&mut *conn)
        .await
        .doing("counting the repeat")?;
    let strategy = dedupe.strategy;
    let folded = |id: String, created: bool| Created {
        id,
        created,
        duplicate_of: Some(original.clone()),
        strategy: Some(strategy.as_str()),
    };
    let at = rfc3339(now_ms);
    match strategy {
        Strategy::Drop => {
            let body = json!({ "key": dedupe.key, "at": at, "strategy": "drop", "by": by });
            audit::append(conn, head, &subject(&original), "case.repeated", &body).await?;
            Ok(folded(original.clone(), false))
        }
        Strategy::DropAndComment => {
            let text = format!(
                "Repeated at {at} (dedupe key `{}`): {}",
                dedupe.key, dedupe.fields
            );
            comment(conn, head, &original, by, &text).await?;
            Ok(folded(original.clone(), false))
        }
        Strategy::Child => {
            let id = insert(conn, head, case, Some(&original), by).await?;
            Ok(folded(id, true))
        }
        Strategy::Link => {
            let id = insert(conn, head, case, None, by).await?;
            let reason = format!("dedupe key `{}`", dedupe.key);
            link(conn, head, &id, &original, "duplicate", Some(&reason), by).await?;
            Ok(folded(id, true))
        }
        Strategy::NewAndNote => {
            let id = insert(conn, head, case, None, by).await?;
            let reason = format!("dedupe key `{}`", dedupe.key);
            link(
                conn,
                head,
                &original,
                &id,
                "possibly_related",
                Some(&reason),
                by,
            )
            .await?;
            let text = format!(
                "Might be related to case {id} (dedupe key `{}`); if it is the same, close this one.",
                dedupe.key
            );
            comment(conn, head, &original, by, &text).await?;
            Ok(folded(id, true))
        }
    }
}

/// Writes a new case (a child of `parent`, sharing its observables) and
/// returns its id.
async fn insert(
    conn: &mut AnyConnection,
    head: &mut Head,
    case: &NewCase,
    parent: Option<&str>,
    by: &str,
) -> Result<String> {
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
    .bind(&case.assignee)
    .bind(serde_json::to_string(&case.tags)?)
    .bind(&case.description)
    .bind(&at)
    .bind(by)
    .bind(&case.run_id)
    .bind(parent)
    .execute(&mut *conn)
    .await
    .doing("opening the case")?;
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
    observables.sort();
    observables.dedup();
    for observable in &observables {
        sqlx::query("INSERT INTO case_observables (case_id, kind, value) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(&observable.kind)
            .bind(&observable.value)
            .execute(&mut *conn)
            .await
            .doing("recording an observable")?;
    }
    let body = json!({
        "by": by,
        "title": case.title,
        "type": case.kind,
        "severity": severity,
        "run": case.run_id,
        "parent": parent,
        "observables": observables,
    });
    audit::append(conn, head, &subject(&id), "case.created", &body).await?;
    Ok(id)
}

async fn comment(
    conn: &mut AnyConnection,
    head: &mut Head,
    id: &str,
    author: &str,
    text: &str,
) -> Result<()> {
    let at = now();
    sqlx::query("INSERT INTO case_comments (case_id, author, at, text) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(author)
        .bind(&at)
        .bind(text)
        .execute(&mut *conn)
        .await
        .doing("adding the comment")?;
    sqlx::query("UPDATE cases SET updated_at = $1 WHERE id = $2")
        .bind(&at)
        .bind(id)
        .execute(&mut *conn)
        .await
        .doing("adding the comment")?;
    let body = json!({ "by": author, "text": text });
    audit::append(conn, head, &subject(id), "case.commented", &body).await
}

async fn link(
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

#[cfg(test)]
mod tests;
