//! How a worker takes a run: the oldest whose process died (its lease
//! expired), else the oldest queued, leased to the worker's process.

use std::sync::{Arc, Mutex};

use aerie_engine::{Lease, RunRecord, RunStatus, epoch_ms};
use serde_json::Value;
use sqlx::AnyConnection;

use crate::audit::{self, Head};
use crate::error::{Doing as _, Result, StoreError};
use crate::{Backend, Store};

/// A run taken, as its row read.
struct Taken {
    id: String,
    /// Queued, so no step has a record yet; else taken over.
    queued: bool,
    playbook: String,
    input: String,
    started_at: String,
    definition: String,
}

impl Store {
    /// [`aerie_engine::RunStore::claim`].
    pub(crate) async fn claim_run(
        &self,
        lease: &Lease,
        only: Option<&str>,
    ) -> Result<Option<(RunRecord, String)>> {
        // Through the writer: the claims of idle workers share a transaction
        // with the runs' own writes instead of queueing for SQLite's one
        // write lock beside it (a busy lock is retried after sleeps of up to
        // 100 ms). A claim later in a batch sees the ones before it.
        let claimed = Arc::new(Mutex::new(None));
        let (lease, only, out) = (lease.clone(), only.map(str::to_owned), claimed.clone());
        let backend = self.backend;
        self.writer
            .submit(Box::new(move |conn, head| {
                let (lease, only, out) = (lease.clone(), only.clone(), out.clone());
                Box::pin(async move {
                    let taken = take(conn, head, backend, &lease, only.as_deref()).await?;
                    *out.lock().unwrap_or_else(|e| e.into_inner()) = taken;
                    Ok(())
                })
            }))
            .await?;
        let Some(taken) = claimed.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(None);
        };
        let record = if taken.queued {
            let input =
                serde_json::from_str::<Value>(&taken.input).map_err(|e| StoreError::Damaged {
                    run: taken.id.clone(),
                    what: "input".to_owned(),
                    why: e.to_string(),
                })?;
            RunRecord {
                id: taken.id,
                playbook: taken.playbook,
                status: RunStatus::Running,
                input,
                output: Value::Null,
                error: None,
                steps: Vec::new(),
                started_at: taken.started_at,
                finished_at: None,
                classification: None,
            }
        } else {
            // Its steps so far, written by the process that died.
            self.record(&taken.id)
                .await?
                .ok_or_else(|| StoreError::Damaged {
                    run: taken.id.clone(),
                    what: "the run".to_owned(),
                    why: "it vanished while it was claimed".to_owned(),
                })?
        };
        Ok(Some((record, taken.definition)))
    }
}

/// Takes the oldest running run whose lease expired, else the oldest queued
/// (or `only` that one), for `lease`, inside the writer's transaction.
async fn take(
    conn: &mut AnyConnection,
    head: &mut Head,
    backend: Backend,
    lease: &Lease,
    only: Option<&str>,
) -> Result<Option<Taken>> {
    // SKIP LOCKED: hosts sharing a PostgreSQL queue each take a different
    // run instead of queueing on the same row. SQLite has one writer.
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
    };
    const COLUMNS: &str = "id, status, playbook, input, started_at, definition";
    // A query per kind of candidate, each answered from an index (the queue's,
    // or the few running runs'): one query with an OR between them walked
    // every finished run in start order, on every claim.
    let expired = format!(
        "SELECT {COLUMNS} FROM runs WHERE status = 'running' AND coalesce(lease_until, 0) < $1
         ORDER BY started_at LIMIT 1 {lock}"
    );
    let queued = format!(
        "SELECT {COLUMNS} FROM runs WHERE status = 'queued' ORDER BY started_at LIMIT 1 {lock}"
    );
    let named = format!(
        "SELECT {COLUMNS} FROM runs
         WHERE id = $1 AND (status = 'queued' OR (status = 'running' AND coalesce(lease_until, 0) < $2)) {lock}"
    );
    type Row = (String, String, String, String, String, String);
    let now = epoch_ms();
    let row: Option<Row> = match only {
        Some(id) => {
            sqlx::query_as(&named)
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *conn)
                .await
        }
        None => match sqlx::query_as(&expired)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
        {
            Ok(None) => sqlx::query_as(&queued).fetch_optional(&mut *conn).await,
            found => found,
        },
    }
    .doing("claiming a run")?;
    let Some((id, status, playbook, input, started_at, definition)) = row else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE runs SET status = 'running', lease_owner = $1, lease_until = $2 WHERE id = $3",
    )
    .bind(&lease.owner)
    .bind(lease.until_ms)
    .bind(&id)
    .execute(&mut *conn)
    .await
    .doing("claiming a run")?;
    // A queued run starts here; a running one is taken over from a process
    // that died.
    let queued = status == "queued";
    let kind = if queued { "run.claimed" } else { "run.resumed" };
    let body = serde_json::json!({ "by": lease.owner });
    audit::append(conn, head, &id, kind, &body).await?;
    Ok(Some(Taken {
        id,
        queued,
        playbook,
        input,
        started_at,
        definition,
    }))
}
