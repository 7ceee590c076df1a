//! The engine's [`RunStore`]: every write of a run, each through the writer
//! (group commit) and chained into the audit trail.

use aerie_engine::{
    ApprovalRequest, ApprovalState, CallTrace, Lease, RunRecord, RunStore, StepRecord, StepStatus,
};
use serde_json::Value;

use crate::Store;
use crate::audit;
use crate::error::{Doing as _, Result, StoreError};

fn json_text(value: &Value) -> Option<String> {
    (!value.is_null()).then(|| value.to_string())
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
        self.claim_run(lease, only).await
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
