//! Reading runs back: the list, a run as the engine resumes it (strictly),
//! a run as the CLI and the API show it, its requests and plugin logs.

use aerie_engine::{PluginRef, RunRecord, StepError, StepRecord};
use serde_json::Value;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::{RunSummary, Store};

/// Which runs a list shows.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub status: Option<String>,
    pub playbook: Option<String>,
    /// Only runs listed after this one (its `started_at` and id): the next
    /// page.
    pub before: Option<(String, String)>,
}

impl Store {
    /// The latest runs, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunSummary>> {
        self.runs_where(&RunFilter::default(), limit).await
    }

    /// The runs `filter` selects, newest first: one page of `limit`.
    pub async fn runs_where(&self, filter: &RunFilter, limit: i64) -> Result<Vec<RunSummary>> {
        // `$N` placeholders, numbered as the clauses are added: the one form
        // both backends take through sqlx's Any driver.
        let mut sql = String::from(
            "SELECT id, playbook, status, started_at, finished_at FROM runs WHERE 1 = 1",
        );
        let mut binds: Vec<&str> = Vec::new();
        fn bind<'v>(sql: &mut String, binds: &mut Vec<&'v str>, clause: &str, value: &'v str) {
            binds.push(value);
            sql.push_str(&clause.replace('#', &format!("${}", binds.len())));
        }
        if let Some(status) = &filter.status {
            bind(&mut sql, &mut binds, " AND status = #", status);
        }
        if let Some(playbook) = &filter.playbook {
            bind(&mut sql, &mut binds, " AND playbook = #", playbook);
        }
        if let Some((started_at, id)) = &filter.before {
            bind(&mut sql, &mut binds, " AND (started_at < #", started_at);
            bind(&mut sql, &mut binds, " OR (started_at = #", started_at);
            bind(&mut sql, &mut binds, " AND id < #))", id);
        }
        sql.push_str(&format!(
            " ORDER BY started_at DESC, id DESC LIMIT ${}",
            binds.len() + 1
        ));
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| -> Result<RunSummary, sqlx::Error> {
                Ok(RunSummary {
                    id: r.try_get("id")?,
                    playbook: r.try_get("playbook")?,
                    status: r.try_get("status")?,
                    started_at: r.try_get("started_at")?,
                    finished_at: r.try_get("finished_at")?,
                })
            })
            .collect::<Result<_, _>>()?)
    }

    /// When run `id` started, for a page that continues after it.
    pub async fn started_at(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT started_at FROM runs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A run as the engine resumes it. Every value is read strictly: a
    /// damaged one (an unknown status, a JSON column that is not JSON) is an
    /// error naming the run and the value, never a guess that would run a
    /// step again.
    pub(crate) async fn record(&self, id: &str) -> Result<Option<RunRecord>> {
        let Some(run) = sqlx::query(
            "SELECT id, playbook, status, input, output, error, started_at, finished_at FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let damaged = |what: &str, e: &dyn std::fmt::Display| StoreError::Damaged {
            run: id.to_owned(),
            what: what.to_owned(),
            why: e.to_string(),
        };
        let json = |what: &str, text: Option<String>| -> Result<Value> {
            match text {
                None => Ok(Value::Null),
                Some(text) => serde_json::from_str(&text).map_err(|e| damaged(what, &e)),
            }
        };
        let rows = sqlx::query(
            "SELECT step_id, status, attempts, input, output, error, plugin, plugin_version, plugin_sha256,
                    started_at, finished_at, ms
             FROM steps WHERE run_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut steps = Vec::with_capacity(rows.len());
        for (seq, s) in rows.iter().enumerate() {
            let step_id: String = s.try_get("step_id")?;
            let what = |column: &str| format!("step `{step_id}` {column}");
            let status: String = s.try_get("status")?;
            let error = match s.try_get::<Option<String>, _>("error")? {
                None => None,
                Some(text) => Some(
                    serde_json::from_str::<StepError>(&text)
                        .map_err(|e| damaged(&what("error"), &e))?,
                ),
            };
            let plugin = s
                .try_get::<Option<String>, _>("plugin")?
                .map(|name| -> Result<PluginRef> {
                    Ok(PluginRef {
                        name,
                        version: s
                            .try_get::<Option<String>, _>("plugin_version")?
                            .unwrap_or_default(),
                        sha256: s
                            .try_get::<Option<String>, _>("plugin_sha256")?
                            .unwrap_or_default(),
                    })
                })
                .transpose()?;
            steps.push(StepRecord {
                seq,
                status: status.parse().map_err(|e| damaged(&what("status"), &e))?,
                attempts: u32::try_from(s.try_get::<i64, _>("attempts")?)
                    .map_err(|e| damaged(&what("attempts"), &e))?,
                input: json(&what("input"), s.try_get("input")?)?,
                output: json(&what("output"), s.try_get("output")?)?,
                error,
                plugin,
                started_at: s.try_get("started_at")?,
                finished_at: s.try_get("finished_at")?,
                ms: u64::try_from(s.try_get::<i64, _>("ms")?).unwrap_or(0),
                id: step_id,
            });
        }
        let status: String = run.try_get("status")?;
        Ok(Some(RunRecord {
            id: run.try_get("id")?,
            playbook: run.try_get("playbook")?,
            status: status.parse().map_err(|e| damaged("status", &e))?,
            input: json("input", run.try_get("input")?)?,
            output: json("output", run.try_get("output")?)?,
            error: run.try_get("error")?,
            steps,
            started_at: run.try_get("started_at")?,
            finished_at: run.try_get("finished_at")?,
            // Only finished runs have one, and a claimed run is unfinished.
            classification: None,
        }))
    }

    /// One run with its steps, as JSON; `None` if there is no such run.
    pub async fn run(&self, id: &str) -> Result<Option<Value>> {
        let Some(run) = sqlx::query(
            "SELECT id, playbook, status, input, output, error, started_at, finished_at, classification FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let parse = |text: Option<String>| -> Value {
            text.and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null)
        };
        let steps = sqlx::query(
            "SELECT step_id, status, attempts, input, output, error, plugin, plugin_version, plugin_sha256,
                    started_at, finished_at, ms, logs_dropped
             FROM steps WHERE run_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut logs = self.logs(id).await?;
        let steps = steps
            .into_iter()
            .map(|s| -> Result<Value, sqlx::Error> {
                let step_id = s.try_get::<String, _>("step_id")?;
                Ok(serde_json::json!({
                    "id": step_id,
                    "status": s.try_get::<String, _>("status")?,
                    "attempts": s.try_get::<i64, _>("attempts")?,
                    "input": parse(s.try_get("input")?),
                    "output": parse(s.try_get("output")?),
                    "error": parse(s.try_get("error")?),
                    "plugin": match s.try_get::<Option<String>, _>("plugin")? {
                        Some(name) => serde_json::json!({
                            "name": name,
                            "version": s.try_get::<Option<String>, _>("plugin_version")?,
                            "sha256": s.try_get::<Option<String>, _>("plugin_sha256")?,
                        }),
                        None => Value::Null,
                    },
                    "started_at": s.try_get::<Option<String>, _>("started_at")?,
                    "finished_at": s.try_get::<Option<String>, _>("finished_at")?,
                    "ms": s.try_get::<i64, _>("ms")?,
                    "logs": logs.remove(&step_id).unwrap_or_default(),
                    "logs_dropped": s.try_get::<i64, _>("logs_dropped")?,
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(serde_json::json!({
            "id": run.try_get::<String, _>("id")?,
            "playbook": run.try_get::<String, _>("playbook")?,
            "status": run.try_get::<String, _>("status")?,
            "input": parse(run.try_get("input")?),
            "output": parse(run.try_get("output")?),
            "error": run.try_get::<Option<String>, _>("error")?,
            "started_at": run.try_get::<String, _>("started_at")?,
            "finished_at": run.try_get::<Option<String>, _>("finished_at")?,
            "classification": parse(run.try_get("classification")?),
            "steps": steps,
        })))
    }

    /// What plugins logged in a run, by step, in order.
    async fn logs(&self, run_id: &str) -> Result<std::collections::BTreeMap<String, Vec<Value>>> {
        let rows = sqlx::query(
            "SELECT step_id, item, level, context, message, at FROM logs WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut by_step: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for row in rows {
            by_step
                .entry(row.try_get("step_id")?)
                .or_default()
                .push(serde_json::json!({
                    "item": row.try_get::<Option<i64>, _>("item")?,
                    "level": row.try_get::<String, _>("level")?,
                    "context": row.try_get::<String, _>("context")?,
                    "message": row.try_get::<String, _>("message")?,
                    "at": row.try_get::<String, _>("at")?,
                }));
        }
        Ok(by_step)
    }

    /// Every text column of every table, for tests that prove a value is absent.
    pub async fn dump(&self) -> Result<String> {
        let mut text = String::new();
        for (table, columns) in [
            (
                "runs",
                "id || playbook || status || input || coalesce(output, '') || coalesce(error, '')",
            ),
            (
                "steps",
                "step_id || status || coalesce(input, '') || coalesce(output, '') || coalesce(error, '') || coalesce(plugin, '')",
            ),
            ("requests", "method || url || coalesce(refused, '')"),
            ("logs", "level || context || message"),
        ] {
            let rows = sqlx::query(&format!("SELECT {columns} AS t FROM {table}"))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                text.push_str(&row.try_get::<String, _>("t")?);
                text.push('\n');
            }
        }
        Ok(text)
    }

    /// The requests recorded for a run, in order.
    pub async fn requests(&self, run_id: &str) -> Result<Vec<Value>> {
        let rows = sqlx::query(
            "SELECT step_id, item, plugin, method, url, status, bytes, ms, refused FROM requests WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| -> Result<Value, sqlx::Error> {
                Ok(serde_json::json!({
                    "step": r.try_get::<String, _>("step_id")?,
                    "item": r.try_get::<Option<i64>, _>("item")?,
                    "plugin": r.try_get::<String, _>("plugin")?,
                    "method": r.try_get::<String, _>("method")?,
                    "url": r.try_get::<String, _>("url")?,
                    "status": r.try_get::<Option<i64>, _>("status")?,
                    "bytes": r.try_get::<i64, _>("bytes")?,
                    "ms": r.try_get::<i64, _>("ms")?,
                    "refused": r.try_get::<Option<String>, _>("refused")?,
                }))
            })
            .collect::<Result<_, _>>()?)
    }
}
