//! `max_queued`: triggers refuse work while too many runs wait for a worker.
//!
//! Counting the queue is a scan of its index, as long as the backlog is, and a
//! busy webhook would run it on every request; so the count is read at most
//! every [`FRESH`] and what this server queued since is added to it. Runs
//! claimed meanwhile are not subtracted: the estimate errs towards refusing,
//! by at most one interval's worth of claims. With several servers on one
//! store, each adds only its own runs between reads.

use std::time::{Duration, Instant};

use aerie_store::Store;
use axum::http::StatusCode;
use tokio::sync::Mutex;

use crate::error::ApiError;

/// How old a count of the queue may be.
pub const FRESH: Duration = Duration::from_millis(100);

pub struct Backlog {
    max: u64,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    read_at: Option<Instant>,
    queued: i64,
}

impl Backlog {
    /// At most `max` runs waiting (the config's `[server] max_queued`).
    pub fn new(max: u64) -> Backlog {
        Backlog {
            max,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Whether `runs` more may be queued: 503 with a Retry-After when the
    /// queue is full, or when the store cannot be counted.
    pub async fn admit(&self, store: &Store, runs: usize) -> Result<(), ApiError> {
        // Held while the store is counted: requests arriving meanwhile wait
        // for that one count instead of each starting their own.
        let mut seen = self.seen.lock().await;
        if seen.read_at.is_none_or(|at| at.elapsed() >= FRESH) {
            seen.queued = store.queued().await.map_err(|e| ApiError::store(&e))?;
            seen.read_at = Some(Instant::now());
        }
        let max = i64::try_from(self.max).unwrap_or(i64::MAX);
        if seen.queued.saturating_add(runs as i64) > max {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                format!(
                    "{} runs are waiting for a worker (max_queued {}); nothing was queued",
                    seen.queued, self.max
                ),
            )
            .retry_after(Duration::from_secs(5)));
        }
        Ok(())
    }

    /// `runs` were queued by this server.
    pub async fn queued(&self, runs: usize) {
        let mut seen = self.seen.lock().await;
        seen.queued = seen.queued.saturating_add(runs as i64);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use aerie_engine::{Playbook, RunStatus, new_run};
    use aerie_store::Guard;
    use serde_json::json;

    use super::*;

    async fn enqueue(store: &Store, playbook: &Playbook, n: usize) {
        let runs = (0..n)
            .map(|_| new_run(playbook, &json!({}), RunStatus::Queued).unwrap())
            .collect();
        store
            .enqueue("test", playbook.source(), runs, Guard::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_count_is_read_again_only_when_stale_and_counts_this_servers_runs_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("aerie.db").display());
        let store = Store::open(&url).await.unwrap();
        let source = "name: note\nsteps:\n  - id: note\n    log: hi\n";
        let playbook = Playbook::parse(Path::new("note.yaml"), source).unwrap();
        let backlog = Backlog::new(3);

        enqueue(&store, &playbook, 2).await;
        backlog.admit(&store, 1).await.unwrap();
        let full = backlog.admit(&store, 2).await.unwrap_err();
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            full.message.contains("2 runs are waiting") && full.message.contains("max_queued 3"),
            "{}",
            full.message
        );

        // This server's own run counts at once, before the next read.
        backlog.queued(1).await;
        assert!(backlog.admit(&store, 1).await.is_err());

        // Another server's runs count once the count is stale.
        let other = Backlog::new(10);
        other.admit(&store, 1).await.unwrap();
        enqueue(&store, &playbook, 5).await;
        other.admit(&store, 3).await.unwrap();
        tokio::time::sleep(FRESH).await;
        let full = other.admit(&store, 4).await.unwrap_err();
        assert!(
            full.message.contains("7 runs are waiting"),
            "{}",
            full.message
        );
    }
}
