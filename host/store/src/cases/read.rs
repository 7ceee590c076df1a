//! Reading cases back: the list (`aerie cases list --json`), one case with
//! its comments, observables, tasks and relations (`aerie cases show`), and
//! `case.find`.

use aerie_engine::rfc3339;
use serde_json::{Value, json};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Observable;
use crate::Store;
use crate::error::{Doing as _, Result};

/// Which cases to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub limit: u32,
}

/// Which cases `case.find` looks for.
#[derive(Debug, Clone)]
pub enum Find {
    Id(String),
    /// The case a dedupe key folds into, while the key is known.
    Key(String),
    /// Cases holding the observable, newest first: open ones, and those
    /// closed at most `closed_within_ms` ago; only of `kind` if given.
    Observable {
        observable: Observable,
        kind: Option<String>,
        closed_within_ms: Option<i64>,
        now_ms: i64,
    },
}

const COLUMNS: &str = "id, title, type, severity, status, resolution, assignee, tags, description,
                       created_at, updated_at, created_by, run_id, parent";

fn summary(row: &AnyRow) -> Result<Value> {
    let tags: String = row.try_get("tags")?;
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "title": row.try_get::<String, _>("title")?,
        "type": row.try_get::<String, _>("type")?,
        "severity": row.try_get::<String, _>("severity")?,
        "status": row.try_get::<String, _>("status")?,
        "resolution": row.try_get::<Option<String>, _>("resolution")?,
        "assignee": row.try_get::<Option<String>, _>("assignee")?,
        "tags": serde_json::from_str::<Value>(&tags)?,
        "created_at": row.try_get::<String, _>("created_at")?,
        "updated_at": row.try_get::<String, _>("updated_at")?,
        "created_by": row.try_get::<String, _>("created_by")?,
        "run": row.try_get::<Option<String>, _>("run_id")?,
        "parent": row.try_get::<Option<String>, _>("parent")?,
    }))
}

impl Store {
    /// Cases, newest first, each with the ids it links to.
    pub async fn cases(&self, filter: &CaseFilter) -> Result<Vec<Value>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM cases
             WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR type = $2)
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(&filter.status)
        .bind(&filter.kind)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.pool)
        .await
        .doing("listing cases")?;
        self.summaries(&rows).await
    }

    /// One case with its comments, observables, relations and children.
    pub async fn case(&self, id: &str) -> Result<Option<Value>> {
        let Some(row) = sqlx::query(&format!("SELECT {COLUMNS} FROM cases WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .doing("reading the case")?
        else {
            return Ok(None);
        };
        let mut case = summary(&row)?;
        case["description"] = Value::from(row.try_get::<String, _>("description")?);
        case["links"] = self.links(id).await?;
        let comments = sqlx::query(
            "SELECT author, at, text FROM case_comments WHERE case_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .doing("reading the case's comments")?;
        case["comments"] = comments
            .iter()
            .map(|c| -> Result<Value> {
                Ok(json!({
                    "author": c.try_get::<String, _>("author")?,
                    "at": c.try_get::<String, _>("at")?,
                    "text": c.try_get::<String, _>("text")?,
                }))
            })
            .collect::<Result<Vec<_>>>()?
            .into();
        let observables: Vec<(String, String)> = sqlx::query_as(
            "SELECT kind, value FROM case_observables WHERE case_id = $1 ORDER BY kind, value",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .doing("reading the case's observables")?;
        case["observables"] = observables
            .into_iter()
            .map(|(kind, value)| json!({ "kind": kind, "value": value }))
            .collect::<Vec<_>>()
            .into();
        let children: Vec<String> =
            sqlx::query_scalar("SELECT id FROM cases WHERE parent = $1 ORDER BY created_at, id")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .doing("reading the case's children")?;
        case["children"] = children.into();
        let tasks = sqlx::query(
            "SELECT number, title, created_at, created_by, done_at, done_by FROM case_tasks
             WHERE case_id = $1 ORDER BY number",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .doing("reading the case's tasks")?;
        case["tasks"] = tasks
            .iter()
            .map(|t| -> Result<Value> {
                let done_at: Option<String> = t.try_get("done_at")?;
                Ok(json!({
                    "task": t.try_get::<i64, _>("number")?,
                    "title": t.try_get::<String, _>("title")?,
                    "created_at": t.try_get::<String, _>("created_at")?,
                    "created_by": t.try_get::<String, _>("created_by")?,
                    "done": done_at.is_some(),
                    "done_at": done_at,
                    "done_by": t.try_get::<Option<String>, _>("done_by")?,
                }))
            })
            .collect::<Result<Vec<_>>>()?
            .into();
        Ok(Some(case))
    }

    /// The cases `find` names, each as `cases list` shows it.
    pub async fn find_cases(&self, find: &Find) -> Result<Vec<Value>> {
        let rows = match find {
            Find::Id(id) => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM cases WHERE id = $1"))
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
            }
            Find::Key(key) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM cases WHERE id = (SELECT case_id FROM case_keys WHERE key = $1)"
                ))
                .bind(key)
                .fetch_all(&self.pool)
                .await
            }
            Find::Observable {
                observable,
                kind,
                closed_within_ms,
                now_ms,
            } => {
                // RFC 3339 UTC text orders as time does (to the second).
                let closed_since = closed_within_ms.map(|w| rfc3339(now_ms.saturating_sub(w)));
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM cases WHERE id IN
                        (SELECT case_id FROM case_observables WHERE kind = $1 AND value = $2)
                     AND ($3 IS NULL OR type = $3)
                     AND (status = 'open' OR ($4 IS NOT NULL AND updated_at >= $4))
                     ORDER BY created_at DESC, id DESC LIMIT 100"
                ))
                .bind(&observable.kind)
                .bind(&observable.value)
                .bind(kind)
                .bind(closed_since)
                .fetch_all(&self.pool)
                .await
            }
        }
        .doing("finding cases")?;
        self.summaries(&rows).await
    }

    /// Each row as `cases list` shows it, with its links.
    async fn summaries(&self, rows: &[AnyRow]) -> Result<Vec<Value>> {
        let mut cases = Vec::with_capacity(rows.len());
        for row in rows {
            let mut case = summary(row)?;
            let id = case["id"].as_str().unwrap_or_default().to_owned();
            case["links"] = self.links(&id).await?;
            cases.push(case);
        }
        Ok(cases)
    }

    /// Every link of the case, either way: `{case, kind, reason, direction}`.
    async fn links(&self, id: &str) -> Result<Value> {
        let rows = sqlx::query(
            "SELECT a, b, kind, reason FROM case_links WHERE a = $1 OR b = $1 ORDER BY at, a, b",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .doing("reading the case's links")?;
        let mut links = Vec::with_capacity(rows.len());
        for row in &rows {
            let (a, b): (String, String) = (row.try_get("a")?, row.try_get("b")?);
            let (other, direction) = if a == id { (b, "to") } else { (a, "from") };
            links.push(json!({
                "case": other,
                "kind": row.try_get::<String, _>("kind")?,
                "reason": row.try_get::<Option<String>, _>("reason")?,
                "direction": direction,
            }));
        }
        Ok(links.into())
    }
}
