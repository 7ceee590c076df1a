//! Cases (tickets): what belongs together, opened by runs and people, and
//! the de-duplication that folds a repeated alert into the case it repeats.
//!
//! Every change is a [`CaseChange`], one write of the group-commit writer
//! and an audited event (`case.created`, `case.repeated`, `case.updated`,
//! `case.commented`, `case.task`, `case.linked`, `case.closed`) under the
//! subject `case:ID`, naming who made it. A de-duplication decision reads
//! the key and writes its outcome in one transaction that holds the audit
//! chain's lock — SQLite's one writer, or PostgreSQL's advisory lock across
//! servers — so two identical alerts arriving at once make one case.

mod decide;
pub mod input;
mod read;
mod similar;
mod write;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Store;
use crate::error::Result;

pub use read::{CaseFilter, Find};
pub use similar::Similar;

/// A typed indicator: `ip`, `domain`, `url`, `hash`, `email`, `host`, `user`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

pub use aerie_engine::WindowFrom;

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
    /// Always a new case, with the most similar open cases attached.
    Suggest,
}

impl Strategy {
    pub const ALL: &[(&str, Strategy)] = &[
        ("drop", Strategy::Drop),
        ("drop_and_comment", Strategy::DropAndComment),
        ("child", Strategy::Child),
        ("link", Strategy::Link),
        ("new_and_note", Strategy::NewAndNote),
        ("suggest", Strategy::Suggest),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Drop => "drop",
            Strategy::DropAndComment => "drop_and_comment",
            Strategy::Child => "child",
            Strategy::Link => "link",
            Strategy::NewAndNote => "new_and_note",
            Strategy::Suggest => "suggest",
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The case opened, or (for `drop` and `drop_and_comment`) the one folded into.
    pub id: String,
    pub created: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// For `suggest`: the most similar open cases, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<Similar>,
}

/// Fields of a case to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseUpdate {
    pub title: Option<String>,
    pub severity: Option<String>,
    /// `Some(None)` unassigns.
    pub assignee: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub description: Option<String>,
    /// More observables (kept; none is removed).
    pub observables: Vec<Observable>,
}

/// One change of the cases, made by someone: what the `case.*` actions, the
/// CLI and the API do.
#[derive(Debug, Clone)]
pub enum CaseChange {
    /// Opens a case, or folds it by its dedupe key, judged at `now_ms`
    /// (the caller's clock, so tests can move it). Output: [`Created`].
    Create {
        case: NewCase,
        dedupe: Option<Dedupe>,
        now_ms: i64,
    },
    /// Output: `{id, changed: [field, ...]}`.
    Update { id: String, update: CaseUpdate },
    /// Output: `{id, comment}` (the comment's number).
    Comment { id: String, text: String },
    /// Adds a task to the checklist. Output: `{id, task}` (its number).
    AddTask { id: String, title: String },
    /// Marks task `task` done (or not done again). Output: `{id, task, done}`.
    Task { id: String, task: i64, done: bool },
    /// Links `a` to `b` (`linked`, `duplicate`, ...). Output: `{id, to, kind}`.
    Link {
        a: String,
        b: String,
        kind: String,
        reason: Option<String>,
    },
    /// Closes the case; with `duplicate_of`, as a duplicate of that case,
    /// linked to it in the same change (the "close this one" of a
    /// `new_and_note` note). Output: `{id, resolution, duplicate_of?}`.
    Close {
        id: String,
        resolution: String,
        duplicate_of: Option<String>,
    },
}

/// Why a case change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no case `{0}`")]
    Unknown(String),
    #[error("case `{0}` is closed")]
    Closed(String),
    #[error(
        "the dedupe key rendered empty (or only separators): a key must name what makes two alerts the same (`{{{{ inputs.body.src_ip }}}}`, say), and the fields it reads were missing"
    )]
    EmptyKey,
    #[error(
        "`{0}` is not a dedupe strategy: use drop, drop_and_comment, child, link, new_and_note or suggest"
    )]
    Strategy(String),
    #[error("`{kind}` is not a kind of observable: use {}", OBSERVABLE_KINDS.join(", "))]
    ObservableKind { kind: String },
    #[error("a case needs a {0}")]
    Missing(&'static str),
    #[error("case `{case}` has no task {task}")]
    UnknownTask { case: String, task: i64 },
    #[error("a case cannot be linked to itself")]
    SelfLink,
    /// What was given does not fit the change (serde names the field).
    #[error("{0}")]
    Input(String),
    #[error(
        "`case.{0}` is not a built-in action: use case.create, case.update, case.comment, case.task, case.link, case.close or case.find"
    )]
    Action(String),
}

impl Store {
    /// Makes `change` as `by`, in one transaction with its audit entry.
    /// With an `origin` (the run, step and item making it), a change already
    /// made from there is not made again: its first output is the answer.
    pub async fn change_case(
        &self,
        change: CaseChange,
        by: &str,
        origin: Option<&str>,
    ) -> Result<Value> {
        if let CaseChange::Create { case, dedupe, .. } = &change {
            check(case, dedupe.as_ref())?;
        }
        let shared = Arc::new((change, by.to_owned(), origin.map(str::to_owned)));
        let assignment = self.assignment.clone();
        let outcome = Arc::new(Mutex::new(None));
        let out = outcome.clone();
        self.writer
            .submit(Box::new(move |conn, head| {
                let (shared, out, assignment) = (shared.clone(), out.clone(), assignment.clone());
                Box::pin(async move {
                    let (change, by, origin) = &*shared;
                    let output =
                        write::once(conn, head, change, by, origin.as_deref(), &assignment).await?;
                    *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(output);
                    Ok(())
                })
            }))
            .await?;
        let output = outcome.lock().unwrap_or_else(|e| e.into_inner()).take();
        output.ok_or_else(|| crate::StoreError::Write("the case change was not written".to_owned()))
    }

    /// Opens `case` as `by`, or folds it into the case its `dedupe` key
    /// repeats within the window, by the strategy.
    pub async fn create_case(
        &self,
        case: NewCase,
        dedupe: Option<Dedupe>,
        by: &str,
        now_ms: i64,
    ) -> Result<Created> {
        let change = CaseChange::Create {
            case,
            dedupe,
            now_ms,
        };
        Ok(serde_json::from_value(
            self.change_case(change, by, None).await?,
        )?)
    }

    /// Adds `author`'s comment to the case.
    pub async fn comment_case(&self, id: &str, author: &str, text: &str) -> Result<()> {
        let change = CaseChange::Comment {
            id: id.to_owned(),
            text: text.to_owned(),
        };
        self.change_case(change, author, None).await.map(drop)
    }

    /// Closes the case with `resolution` (`benign`, `escalated`, ...), as `by`.
    pub async fn close_case(&self, id: &str, resolution: &str, by: &str) -> Result<()> {
        let change = CaseChange::Close {
            id: id.to_owned(),
            resolution: resolution.to_owned(),
            duplicate_of: None,
        };
        self.change_case(change, by, None).await.map(drop)
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
        let change = CaseChange::Link {
            a: a.to_owned(),
            b: b.to_owned(),
            kind: kind.to_owned(),
            reason: reason.map(str::to_owned),
        };
        self.change_case(change, by, None).await.map(drop)
    }
}

/// What is wrong with a case to open, before anything is written.
fn check(case: &NewCase, dedupe: Option<&Dedupe>) -> Result<(), CaseError> {
    if case.title.trim().is_empty() {
        return Err(CaseError::Missing("title"));
    }
    if case.kind.trim().is_empty() {
        return Err(CaseError::Missing("type"));
    }
    check_kinds(&case.observables)?;
    if dedupe.is_some_and(|d| aerie_engine::key_names_nothing(&d.key)) {
        return Err(CaseError::EmptyKey);
    }
    Ok(())
}

/// An observable of a kind not in [`OBSERVABLE_KINDS`] is an error.
fn check_kinds(observables: &[Observable]) -> Result<(), CaseError> {
    match observables
        .iter()
        .find(|o| !OBSERVABLE_KINDS.contains(&o.kind.as_str()))
    {
        Some(bad) => Err(CaseError::ObservableKind {
            kind: bad.kind.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
