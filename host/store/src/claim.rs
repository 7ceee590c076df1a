//! How a worker takes a run: the oldest whose process died (its lease
//! expired), else the oldest queued, leased to the worker's process.

use std::sync::atomic::{AtomicI64, Ordering};
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
    /// A run was handed back to the queue (an approval settled): the next
    /// claim looks for it at once.
    pub(crate) fn resumable(&self) {
        self.quiet.store(0, Ordering::Relaxed);
    }

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
        let (backend, quiet) = (self.backend, self.quiet.clone());
        self.writer
            .submit(Box::new(move |conn, head| {
                let (lease, only, out) = (lease.clone(), only.clone(), out.clone());
                let quiet = quiet.clone();
                Box::pin(async move {
                    let taken = take(conn, head, backend, &lease, only.as_deref(), &quiet).await?;
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

/// How often a claim looks for runs whose process died, once a look found
/// none. Their leases ran out seconds ago; the queue is looked at every time.
const EXPIRED_EVERY_MS: i64 = 1000;

/// Takes the oldest running run whose lease expired, else the oldest queued
/// (or `only` that one), for `lease`, inside the writer's transaction.
/// `quiet` is when a look for expired leases last found none.
async fn take(
    conn: &mut AnyConnection,
    head: &mut Head,
    backend: Backend,
    lease: &Lease,
    only: Option<&str>,
    quiet: &AtomicI64,
) -> Result<Option<Taken>> {
    // SKIP LOCKED: hosts sharing a PostgreSQL queue each take a different
    // run instead of queueing on the same row. SQLite has one writer.
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
    };
    let now = epoch_ms();
    if let Some(id) = only {
        return take_named(conn, head, lock, lease, id, now).await;
    }
    // One statement per kind of candidate, each answered from an index (the
    // few running runs', the queue's): a query with an OR between them
    // walked every finished run in start order, on every claim.
    let take_oldest = |filter: &str| {
        format!(
            "UPDATE runs SET status = 'running', lease_owner = $1, lease_until = $2
             WHERE id = (SELECT id FROM runs WHERE {filter} ORDER BY started_at LIMIT 1 {lock})
             RETURNING id, playbook, input, started_at, definition"
        )
    };
    type Row = (String, String, String, String, String);
    let mut taken: Option<(Row, bool)> = None;
    if now - quiet.load(Ordering::Relaxed) >= EXPIRED_EVERY_MS {
        let expired: Option<Row> = sqlx::query_as(&take_oldest(
            "status = 'running' AND coalesce(lease_until, 0) < $3",
        ))
        .bind(&lease.owner)
        .bind(lease.until_ms)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .doing("taking over a run whose process died")?;
        match expired {
            Some(row) => taken = Some((row, false)),
            None => quiet.store(now, Ordering::Relaxed),
        }
    }
    if taken.is_none() {
        let queued: Option<Row> = sqlx::query_as(&take_oldest("status = 'queued'"))
            .bind(&lease.owner)
            .bind(lease.until_ms)
            .fetch_optional(&mut *conn)
            .await
            .doing("claiming a queued run")?;
        taken = queued.map(|row| (row, true));
    }
    let Some(((id, playbook, input, started_at, definition), queued)) = taken else {
        return Ok(None);
    };
    claimed(
        conn,
        head,
        lease,
        Taken {
            id,
            queued,
            playbook,
            input,
            started_at,
            definition,
        },
    )
    .await
}

/// `aerie runs resume ID`: that run, if it is queued or its lease expired.
async fn take_named(
    conn: &mut AnyConnection,
    head: &mut Head,
    lock: &str,
    lease: &Lease,
    id: &str,
    now: i64,
) -> Result<Option<Taken>> {
    let row: Option<(String, String, String, String, String)> = sqlx::query_as(&format!(
        "SELECT status, playbook, input, started_at, definition FROM runs
         WHERE id = $1 AND (status = 'queued' OR (status = 'running' AND coalesce(lease_until, 0) < $2)) {lock}"
    ))
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .doing("claiming a run")?;
    let Some((status, playbook, input, started_at, definition)) = row else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE runs SET status = 'running', lease_owner = $1, lease_until = $2 WHERE id = $3",
    )
    .bind(&lease.owner)
    .bind(lease.until_ms)
    .bind(id)
    .execute(&mut *conn)
    .await
    .doing("claiming a run")?;
    let queued = status == "queued";
    claimed(
        conn,
        head,
        lease,
        Taken {
            id: id.to_owned(),
            queued,
            playbook,
            input,
            started_at,
            definition,
        },
    )
    .await
}

/// Audits the claim: a queued run starts here; a running one is taken over
/// from a process that died.
async fn claimed(
    conn: &mut AnyConnection,
    head: &mut Head,
    lease: &Lease,
    taken: Taken,
) -> Result<Option<Taken>> {
    let kind = if taken.queued {
        "run.claimed"
    } else {
        "run.resumed"
    };
    let body = serde_json::json!({ "by": lease.owner });
    audit::append(conn, head, &taken.id, kind, &body).await?;
    Ok(Some(taken))
}
