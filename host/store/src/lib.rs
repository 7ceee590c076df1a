//! Every SQL statement aerie runs: the sqlx pool, migrations, and the engine's
//! [`RunStore`] trait.
//!
//! SQLite (a file under the data folder) is the embedded default; PostgreSQL is
//! the same queries through sqlx's `Any` driver, with migrations of its own, and
//! lets several hosts share one queue of runs. Writes happen as a run
//! progresses, so a run's state on disk is never behind by more than the step in
//! flight.

use std::path::Path;

use aerie_engine::{
    ApprovalRequest, ApprovalState, CallTrace, Lease, PluginRef, RunRecord, RunStore, StepError,
    StepRecord, StepStatus,
};
use error::Doing as _;
use serde_json::Value;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Connection as _, Executor as _, Row};

pub mod approvals;
pub mod audit;
pub mod classify;
mod error;
mod writer;

pub use approvals::{Approval, DecisionError};

pub use audit::{AuditEntry, Verification};
pub use classify::{Classification, CorrectionError};
pub use error::{Result, StoreError};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a URL names. The queries are the same for both (numbered
/// `$N` parameters, text timestamps and JSON); the few statements that differ
/// ask [`Backend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(conn: &sqlx::AnyConnection) -> Backend {
        match conn.backend_name() {
            "PostgreSQL" => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    writer: writer::Writer,
}

/// A run as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub id: String,
    pub playbook: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl Store {
    /// Opens the database at `url` and migrates it: `sqlite://PATH` (the file
    /// and its folder are created if needed) or `postgres://USER@HOST/DB`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .doing_with(|| format!("creating {}", dir.display()))?;
            }
            let create = if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            };
            (Backend::Sqlite, format!("{url}{create}"))
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let shown = redact_password(&url);
        // One connection first: the pool would retry a refused connection until
        // its timeout and then report only that it timed out.
        sqlx::AnyConnection::connect(&url)
            .await
            .doing_with(|| format!("opening the store {shown}"))?
            .close()
            .await?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers (the CLI, the UI) never block the writer.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .doing_with(|| format!("opening the store {shown}"))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        };
        migrator
            .run(&pool)
            .await
            .doing_with(|| format!("migrating the store {shown}"))?;
        Ok(Store {
            writer: writer::Writer::start(pool.clone()),
            pool,
            backend,
        })
    }

    pub async fn runs(&self, limit: i64) -> Result<Vec<RunSummary>> {
        let rows = sqlx::query(
            "SELECT id, playbook, status, started_at, finished_at FROM runs ORDER BY started_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
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

    /// A run as the engine resumes it. Every value is read strictly: a
    /// damaged one (an unknown status, a JSON column that is not JSON) is an
    /// error naming the run and the value, never a guess that would run a
    /// step again.
    async fn record(&self, id: &str) -> Result<Option<RunRecord>> {
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

/// `url` with its password, if any, replaced by `***`: store URLs appear in errors.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn json_text(value: &Value) -> Option<String> {
    (!value.is_null()).then(|| value.to_string())
}

impl Store {
    /// A write transaction that extends the audit chain: no other writer, in
    /// this process or another, runs between its reading the chain's head and
    /// its commit. SQLite takes its write lock at BEGIN IMMEDIATE; PostgreSQL
    /// takes the chain's advisory lock.
    async fn write(&self) -> Result<Tx<'static>> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .doing("starting a write")?;
        audit::lock_chain(&mut tx).await?;
        Ok(tx)
    }
}

impl RunStore for Store {
    type Error = StoreError;

    async fn run_started(&self, run: &RunRecord, definition: &str, lease: &Lease) -> Result<()> {
        let (run, definition, lease) = (run.clone(), definition.to_owned(), lease.clone());
        self.writer
            .submit(Box::new(move |conn, head| {
                let (run, definition, lease) = (run.clone(), definition.clone(), lease.clone());
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO runs (id, playbook, status, input, started_at, definition, lease_owner, lease_until)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&run.id)
                    .bind(&run.playbook)
                    .bind(run.status.as_str())
                    .bind(run.input.to_string())
                    .bind(&run.started_at)
                    .bind(&definition)
                    .bind(&lease.owner)
                    .bind(lease.until_ms)
                    .execute(&mut *conn)
                    .await
                    .doing("recording the run")?;
                    let body = serde_json::json!({ "playbook": run.playbook, "input": run.input });
                    audit::append(conn, head, &run.id, "run.started", &body).await
                })
            }))
            .await
    }

    async fn renew_lease(&self, run_id: &str, lease: &Lease) -> Result<bool> {
        let done =
            sqlx::query("UPDATE runs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
                .bind(lease.until_ms)
                .bind(run_id)
                .bind(&lease.owner)
                .execute(&self.pool)
                .await
                .doing("renewing the run's lease")?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim(
        &self,
        lease: &Lease,
        only: Option<&str>,
    ) -> Result<Option<(RunRecord, String)>> {
        // On PostgreSQL the chain's lock is taken only if an entry is appended
        // (audit::append), so claims by several hosts do not queue on it.
        let mut tx = match self.backend {
            Backend::Sqlite => self.write().await?,
            Backend::Postgres => self.pool.begin().await.doing("starting a claim")?,
        };
        // Approvals past their deadline are decided first, which puts their
        // runs back in the queue.
        approvals::expire(&mut tx, None).await?;
        // SKIP LOCKED: hosts sharing a PostgreSQL queue each take a different
        // run instead of queueing on the same row. SQLite has one writer.
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        };
        let claimed: Option<(String, String)> = sqlx::query_as(&format!(
            "UPDATE runs SET lease_owner = $1, lease_until = $2
             WHERE id = (SELECT id FROM runs
                         WHERE status = 'running' AND coalesce(lease_until, 0) < $3 AND ($4 IS NULL OR id = $4)
                         ORDER BY started_at LIMIT 1 {lock})
             RETURNING id, definition"
        ))
        .bind(&lease.owner)
        .bind(lease.until_ms)
        .bind(aerie_engine::epoch_ms())
        .bind(only)
        .fetch_optional(&mut *tx)
        .await
        .doing("claiming a run")?;
        let Some((id, definition)) = claimed else {
            return Ok(None);
        };
        audit::append(
            &mut tx,
            &mut audit::Head::default(),
            &id,
            "run.resumed",
            &serde_json::json!({ "by": lease.owner }),
        )
        .await?;
        tx.commit().await?;
        let record = self.record(&id).await?.ok_or_else(|| StoreError::Damaged {
            run: id.clone(),
            what: "the run".to_owned(),
            why: "it vanished while it was claimed".to_owned(),
        })?;
        Ok(Some((record, definition)))
    }

    async fn step_updated(&self, run_id: &str, step: &StepRecord) -> Result<()> {
        let (run_id, step) = (run_id.to_owned(), step.clone());
        self.writer
            .submit(Box::new(move |conn, head| {
                let (run_id, step) = (run_id.clone(), step.clone());
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO steps (run_id, step_id, seq, status, attempts, input, output, error, plugin,
                                            plugin_version, plugin_sha256, started_at, finished_at, ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                         ON CONFLICT (run_id, step_id) DO UPDATE SET
                            status = excluded.status, attempts = excluded.attempts, input = excluded.input,
                            output = excluded.output, error = excluded.error, plugin = excluded.plugin,
                            plugin_version = excluded.plugin_version, plugin_sha256 = excluded.plugin_sha256,
                            started_at = excluded.started_at, finished_at = excluded.finished_at, ms = excluded.ms",
                    )
                    .bind(&run_id)
                    .bind(&step.id)
                    .bind(step.seq as i64)
                    .bind(step.status.as_str())
                    .bind(step.attempts as i64)
                    .bind(json_text(&step.input))
                    .bind(json_text(&step.output))
                    .bind(step.error.as_ref().map(|e| serde_json::to_string(e).unwrap_or_default()))
                    .bind(step.plugin.as_ref().map(|p| p.name.clone()))
                    .bind(step.plugin.as_ref().map(|p| p.version.clone()))
                    .bind(step.plugin.as_ref().map(|p| p.sha256.clone()))
                    .bind(&step.started_at)
                    .bind(&step.finished_at)
                    .bind(step.ms as i64)
                    .execute(&mut *conn)
                    .await
                    .doing_with(|| format!("recording step `{}`", step.id))?;
                    let (kind, body) = match step.status {
                        StepStatus::Running => (
                            "step.started",
                            serde_json::json!({ "step": step.id, "attempt": step.attempts, "at": step.started_at }),
                        ),
                        _ => ("step.finished", serde_json::to_value(&step)?),
                    };
                    audit::append(conn, head, &run_id, kind, &body).await
                })
            }))
            .await
    }

    async fn call_traced(&self, run_id: &str, trace: CallTrace<'_>) -> Result<()> {
        if trace.requests.is_empty() && trace.logs.is_empty() && trace.logs_dropped == 0 {
            return Ok(());
        }
        let run_id = run_id.to_owned();
        let (step_id, plugin) = (trace.step.to_owned(), trace.plugin.to_owned());
        let (requests, logs) = (trace.requests.to_vec(), trace.logs.to_vec());
        let (item, dropped) = (trace.item.map(|i| i as i64), trace.logs_dropped);
        self.writer
            .submit(Box::new(move |conn, head| {
                let (run_id, step_id, plugin) = (run_id.clone(), step_id.clone(), plugin.clone());
                let (requests, logs) = (requests.clone(), logs.clone());
                Box::pin(async move {
                    for request in &requests {
                        sqlx::query(
                            "INSERT INTO requests (run_id, step_id, item, plugin, method, url, status, bytes, ms, refused)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(&run_id)
                        .bind(&step_id)
                        .bind(item)
                        .bind(&plugin)
                        .bind(&request.method)
                        .bind(&request.url)
                        .bind(request.status.map(i64::from))
                        .bind(i64::try_from(request.bytes).unwrap_or(i64::MAX))
                        .bind(i64::try_from(request.ms).unwrap_or(i64::MAX))
                        .bind(&request.refused)
                        .execute(&mut *conn)
                        .await
                        .doing("recording a request")?;
                        let body = serde_json::json!({ "step": step_id, "item": item, "plugin": plugin, "request": request });
                        audit::append(conn, head, &run_id, "request", &body).await?;
                    }
                    for line in &logs {
                        sqlx::query(
                            "INSERT INTO logs (run_id, step_id, item, plugin, level, context, message, at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(&run_id)
                        .bind(&step_id)
                        .bind(item)
                        .bind(&plugin)
                        .bind(&line.level)
                        .bind(&line.context)
                        .bind(&line.message)
                        .bind(&line.at)
                        .execute(&mut *conn)
                        .await
                        .doing("recording a log line")?;
                    }
                    if dropped > 0 {
                        sqlx::query(
                            "UPDATE steps SET logs_dropped = logs_dropped + $1 WHERE run_id = $2 AND step_id = $3",
                        )
                        .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
                        .bind(&run_id)
                        .bind(&step_id)
                        .execute(&mut *conn)
                        .await
                        .doing("counting dropped log lines")?;
                    }
                    if !logs.is_empty() || dropped > 0 {
                        let body = serde_json::json!({ "step": step_id, "item": item, "plugin": plugin, "lines": logs, "dropped": dropped });
                        audit::append(conn, head, &run_id, "logs", &body).await?;
                    }
                    Ok(())
                })
            }))
            .await
    }

    async fn run_finished(&self, run: &RunRecord) -> Result<()> {
        let run = run.clone();
        self.writer
            .submit(Box::new(move |conn, head| {
                let run = run.clone();
                Box::pin(async move {
                    let classification = run
                        .classification
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()?;
                    sqlx::query("UPDATE runs SET status = $1, output = $2, error = $3, finished_at = $4, classification = $5 WHERE id = $6")
                        .bind(run.status.as_str())
                        .bind(json_text(&run.output))
                        .bind(&run.error)
                        .bind(&run.finished_at)
                        .bind(&classification)
                        .bind(&run.id)
                        .execute(&mut *conn)
                        .await
                        .doing("recording the run's end")?;
                    let mut body = serde_json::json!({ "status": run.status, "output": run.output, "error": run.error });
                    if let Some(classification) = &run.classification {
                        body["classification"] = serde_json::to_value(classification)?;
                    }
                    audit::append(conn, head, &run.id, "run.finished", &body).await
                })
            }))
            .await
    }

    async fn approval(
        &self,
        run_id: &str,
        step_id: &str,
        request: &ApprovalRequest,
    ) -> Result<ApprovalState> {
        self.open_approval(run_id, step_id, request).await
    }

    async fn run_waiting(&self, run: &RunRecord) -> Result<()> {
        self.mark_waiting(run).await
    }
}
