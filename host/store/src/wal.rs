//! SQLite's write-ahead log is copied back into the database file by a
//! checkpoint. Left to SQLite (`wal_autocheckpoint`), the commit that fills
//! the log past a thousand pages runs it, and waits for it: a write every few
//! hundred paid milliseconds of copying and syncing, the p99 of every write
//! (BENCHMARKS.md, cases at scale: 1.3 ms folding a repeat and 6.8 ms opening
//! a case, against 0.2 and 0.4 ms without). So the store turns that off and
//! checkpoints beside the writer instead, on a connection of its own, at most
//! one at a time and at most once a second after writes. A passive checkpoint
//! waits for no reader or writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::AnyPool;

/// How often the log is checkpointed while writes come.
const EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Checkpoints {
    pool: AnyPool,
    last: Instant,
    running: Arc<AtomicBool>,
}

impl Checkpoints {
    pub(crate) fn new(pool: AnyPool) -> Checkpoints {
        Checkpoints {
            pool,
            // The first commit checkpoints what an earlier process left.
            last: Instant::now() - EVERY,
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// After a commit: starts a checkpoint if none ran for a second and none
    /// is running.
    pub(crate) fn committed(&mut self) {
        if self.last.elapsed() < EVERY || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last = Instant::now();
        let (pool, running) = (self.pool.clone(), self.running.clone());
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                // The log only grows until the next one: nothing is lost.
                tracing::warn!(error = %e, "checkpointing SQLite's write-ahead log");
            }
            running.store(false, Ordering::Release);
        });
    }
}
