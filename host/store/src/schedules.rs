//! Cron triggers' ticks: the last one each schedule fired, and the runs of a
//! tick stored with it, all or none.

use std::sync::{Arc, Mutex};

use aerie_engine::{RunRecord, RunStatus, now};
use serde_json::json;

use crate::error::{Doing as _, Result};
use crate::queue::queue_run;
use crate::{Store, audit};

/// One tick (or several folded into one) of a schedule, to store.
#[derive(Debug, Clone)]
pub struct Tick {
    pub playbook: String,
    /// The playbook's text, for the queued run.
    pub definition: String,
    /// The last tick as it was read: the move happens only from it.
    pub seen: Option<i64>,
    /// The tick fired now.
    pub last: i64,
    /// At most one run, queued, for `trigger` (`cron:2026-12-02T08:00:00Z`).
    pub run: Option<(RunRecord, String)>,
    /// Ticks recorded as missed: a run with status `missed` each, its error
    /// the reason.
    pub missed: Vec<RunRecord>,
}

impl Store {
    /// The last tick of `playbook`'s schedule, in ms since the epoch.
    pub async fn last_tick(&self, playbook: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT last_tick_ms FROM schedules WHERE playbook = $1")
            .bind(playbook)
            .fetch_optional(&self.pool)
            .await
            .doing("reading the schedule's last tick")
    }

    /// How many of `playbook`'s ticks were recorded as missed.
    pub async fn missed(&self, playbook: &str) -> Result<i64> {
        sqlx::query_scalar("SELECT count(*) FROM runs WHERE playbook = $1 AND status = 'missed'")
            .bind(playbook)
            .fetch_one(&self.pool)
            .await
            .doing("counting missed ticks")
    }

    /// Whether a run of `playbook` has not finished (queued, running or
    /// waiting for an approval).
    pub async fn unfinished(&self, playbook: &str) -> Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT id FROM runs WHERE playbook = $1 AND status IN ('queued', 'running', 'waiting') LIMIT 1",
        )
        .bind(playbook)
        .fetch_optional(&self.pool)
        .await
        .doing("looking for an unfinished run")
    }

    /// Moves the schedule from `tick.seen` to `tick.last` and stores the
    /// tick's runs, in one transaction. False when the schedule was not at
    /// `seen` any more: another host fired this tick, and nothing is stored.
    pub async fn fire(&self, tick: Tick) -> Result<bool> {
        let moved = Arc::new(Mutex::new(false));
        let tick = Arc::new(tick);
        let written = moved.clone();
        self.writer
            .submit(Box::new(move |conn, head| {
                let (tick, written) = (tick.clone(), written.clone());
                Box::pin(async move {
                    let done = |moved| {
                        *written.lock().unwrap_or_else(|e| e.into_inner()) = moved;
                        Ok(())
                    };
                    let changed = match tick.seen {
                        None => sqlx::query(
                            "INSERT INTO schedules (playbook, last_tick_ms) VALUES ($1, $2) ON CONFLICT (playbook) DO NOTHING",
                        )
                        .bind(&tick.playbook)
                        .bind(tick.last),
                        Some(seen) => sqlx::query(
                            "UPDATE schedules SET last_tick_ms = $2 WHERE playbook = $1 AND last_tick_ms = $3",
                        )
                        .bind(&tick.playbook)
                        .bind(tick.last)
                        .bind(seen),
                    }
                    .execute(&mut *conn)
                    .await
                    .doing("moving the schedule")?;
                    if changed.rows_affected() == 0 {
                        return done(false);
                    }
                    if let Some((run, trigger)) = &tick.run {
                        queue_run(conn, head, run, &tick.definition, trigger).await?;
                    }
                    let finished = now();
                    for run in &tick.missed {
                        sqlx::query(
                            "INSERT INTO runs (id, playbook, status, input, error, started_at, finished_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(&run.id)
                        .bind(&run.playbook)
                        .bind(RunStatus::Missed.as_str())
                        .bind(run.input.to_string())
                        .bind(&run.error)
                        .bind(&run.started_at)
                        .bind(&finished)
                        .execute(&mut *conn)
                        .await
                        .doing("recording a missed tick")?;
                        let body = json!({ "playbook": run.playbook, "tick": run.started_at, "reason": run.error });
                        audit::append(conn, head, &run.id, "run.missed", &body).await?;
                    }
                    done(true)
                })
            }))
            .await?;
        Ok(*moved.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
