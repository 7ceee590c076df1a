//! The work queue: triggers store runs here and only then answer their sender;
//! workers claim them through [`aerie_engine::RunStore::claim`].

use std::sync::{Arc, Mutex};

use aerie_engine::{RunRecord, RunStatus, WindowFrom, epoch_ms};
use serde_json::json;

use crate::error::{Doing as _, Result};
use crate::{Store, audit};

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// What a trigger's request is checked against, in the transaction that
/// stores its runs, so two hosts sharing the store decide alike.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// The sender's `Idempotency-Key`, scoped to the trigger.
    pub idempotency_key: Option<String>,
    /// A signed request's signature (its digest) and until when it may not
    /// be accepted again.
    pub replay: Option<Replay>,
    /// Per run, in order, the key that folds it into the run an earlier
    /// request started; empty when the trigger folds nothing.
    pub fold: Vec<Option<Fold>>,
}

/// A trigger's dedupe key for one run: a repeat of `key` within the window
/// starts no run and is recorded on the run the key started.
#[derive(Debug, Clone)]
pub struct Fold {
    pub key: String,
    pub window_ms: i64,
    pub from: WindowFrom,
    /// The repeat's body, hashed (SHA-256), for its record.
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct Replay {
    pub digest: String,
    pub until_ms: i64,
}

/// What [`Store::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The runs are stored: each request's run, in order; those at the
    /// `folded` positions repeated a dedupe key and are the runs the key
    /// started, not new ones.
    Queued {
        ids: Vec<String>,
        folded: Vec<usize>,
    },
    /// The idempotency key was seen within a day: the runs its first request
    /// queued, and nothing new.
    Repeated(Vec<String>),
    /// The signature was accepted before: nothing is stored.
    Replayed,
}

/// Stores `run` of `definition` as queued for `trigger`, and audits it:
/// inside a writer's transaction.
pub(crate) async fn queue_run(
    conn: &mut sqlx::AnyConnection,
    head: &mut audit::Head,
    run: &RunRecord,
    definition: &str,
    trigger: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO runs (id, playbook, status, input, started_at, definition)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&run.id)
    .bind(&run.playbook)
    .bind(RunStatus::Queued.as_str())
    .bind(run.input.to_string())
    .bind(&run.started_at)
    .bind(definition)
    .execute(&mut *conn)
    .await
    .doing("queueing the run")?;
    let body = json!({ "playbook": run.playbook, "input": run.input, "trigger": trigger });
    audit::append(conn, head, &run.id, "run.queued", &body).await
}

/// The run `fold`'s key started, if this is a repeat within its window;
/// the repeat is counted, extends a sliding window, and is recorded on that
/// run's audit trail.
async fn repeated(
    conn: &mut sqlx::AnyConnection,
    head: &mut audit::Head,
    trigger: &str,
    fold: &Fold,
    now: i64,
) -> Result<Option<String>> {
    let seen: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT run_id, first_ms, last_ms FROM trigger_keys WHERE scope = $1 AND key = $2",
    )
    .bind(trigger)
    .bind(&fold.key)
    .fetch_optional(&mut *conn)
    .await
    .doing("looking up the trigger's dedupe key")?;
    let Some((run, first, last)) = seen else {
        return Ok(None);
    };
    let since = match fold.from {
        WindowFrom::First => first,
        WindowFrom::Last => last,
    };
    if now.saturating_sub(since) > fold.window_ms {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE trigger_keys SET last_ms = $1, repeats = repeats + 1 WHERE scope = $2 AND key = $3",
    )
    .bind(now)
    .bind(trigger)
    .bind(&fold.key)
    .execute(&mut *conn)
    .await
    .doing("counting the repeat")?;
    let body = json!({
        "trigger": trigger,
        "key": fold.key,
        "at": aerie_engine::rfc3339(now),
        "body_sha256": fold.digest,
    });
    audit::append(conn, head, &run, "run.repeated", &body).await?;
    Ok(Some(run))
}

/// Records that `run` is the one `fold`'s key started (a new key, or one
/// whose window had passed).
async fn started(
    conn: &mut sqlx::AnyConnection,
    trigger: &str,
    fold: &Fold,
    run: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO trigger_keys (scope, key, run_id, first_ms, last_ms, repeats) VALUES ($1, $2, $3, $4, $4, 0)
         ON CONFLICT (scope, key) DO UPDATE SET run_id = excluded.run_id, first_ms = excluded.first_ms,
            last_ms = excluded.last_ms, repeats = 0",
    )
    .bind(trigger)
    .bind(&fold.key)
    .bind(run)
    .bind(now)
    .execute(&mut *conn)
    .await
    .doing("recording the trigger's dedupe key")?;
    Ok(())
}

impl Store {
    /// Stores `runs` of the playbook `definition` as queued, for `trigger`
    /// (`webhook:alerts`), all or none, and returns once they are committed.
    pub async fn enqueue(
        &self,
        trigger: &str,
        definition: &str,
        runs: Vec<RunRecord>,
        guard: Guard,
    ) -> Result<Enqueued> {
        let outcome = Arc::new(Mutex::new(None));
        let shared = Arc::new((trigger.to_owned(), definition.to_owned(), runs, guard));
        let written = outcome.clone();
        self.writer
            .submit(Box::new(move |conn, head| {
                let (shared, written) = (shared.clone(), written.clone());
                Box::pin(async move {
                    let (trigger, definition, runs, guard) = &*shared;
                    let now = epoch_ms();
                    let done = |outcome| {
                        *written.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                        Ok(())
                    };
                    if let Some(replay) = &guard.replay {
                        let fresh = sqlx::query(
                            "INSERT INTO replays (digest, until_ms) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
                        )
                        .bind(&replay.digest)
                        .bind(replay.until_ms)
                        .execute(&mut *conn)
                        .await
                        .doing("recording the request's signature")?;
                        if fresh.rows_affected() == 0 {
                            return done(Enqueued::Replayed);
                        }
                    }
                    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
                    if let Some(key) = &guard.idempotency_key {
                        let seen: Option<(String, i64)> = sqlx::query_as(
                            "SELECT runs, at_ms FROM idempotency WHERE scope = $1 AND key = $2",
                        )
                        .bind(trigger)
                        .bind(key)
                        .fetch_optional(&mut *conn)
                        .await
                        .doing("looking up the idempotency key")?;
                        if let Some((first, at)) = seen
                            && now - at < IDEMPOTENCY_WINDOW_MS
                        {
                            return done(Enqueued::Repeated(serde_json::from_str(&first)?));
                        }
                        sqlx::query(
                            "INSERT INTO idempotency (scope, key, runs, at_ms) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (scope, key) DO UPDATE SET runs = excluded.runs, at_ms = excluded.at_ms",
                        )
                        .bind(trigger)
                        .bind(key)
                        .bind(serde_json::to_string(&ids)?)
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .doing("recording the idempotency key")?;
                    }
                    let mut ids = ids;
                    let mut folded = Vec::new();
                    if guard.fold.iter().any(Option::is_some) {
                        // The chain's lock before the keys are read: on
                        // PostgreSQL another server's request with the same
                        // key commits first or waits for this one.
                        audit::lock_chain(conn).await?;
                    }
                    for (index, run) in runs.iter().enumerate() {
                        let fold = guard.fold.get(index).and_then(Option::as_ref);
                        if let Some(fold) = fold
                            && let Some(first) = repeated(conn, head, trigger, fold, now).await?
                        {
                            ids[index] = first;
                            folded.push(index);
                            continue;
                        }
                        queue_run(conn, head, run, definition, trigger).await?;
                        if let Some(fold) = fold {
                            started(conn, trigger, fold, &run.id, now).await?;
                        }
                    }
                    done(Enqueued::Queued { ids, folded })
                })
            }))
            .await?;
        let outcome = outcome.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok(outcome.unwrap_or(Enqueued::Queued {
            ids: Vec::new(),
            folded: Vec::new(),
        }))
    }

    /// How many runs wait for a worker.
    pub async fn queued(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await
            .doing("counting queued runs")
    }

    /// Gives up `owner`'s leases on the runs it still holds, so another
    /// process (or this one, restarted) claims them at once instead of after
    /// the lease's expiry. Returns how many.
    pub async fn release(&self, owner: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE runs SET lease_until = 0 WHERE lease_owner = $1 AND status = 'running'",
        )
        .bind(owner)
        .execute(&self.pool)
        .await
        .doing("releasing leases")?;
        Ok(done.rows_affected())
    }

    /// Forgets signatures past their window and idempotency keys past a day.
    pub async fn prune_guards(&self) -> Result<()> {
        let now = epoch_ms();
        sqlx::query("DELETE FROM replays WHERE until_ms < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .doing("pruning seen signatures")?;
        sqlx::query("DELETE FROM idempotency WHERE at_ms < $1")
            .bind(now - IDEMPOTENCY_WINDOW_MS)
            .execute(&self.pool)
            .await
            .doing("pruning idempotency keys")?;
        Ok(())
    }
}
