//! The workers: tasks that claim queued runs (and runs whose process died)
//! and execute them. Woken when a trigger queues a run; otherwise they look
//! every [`POLL`], which is also how runs queued by another server sharing
//! the store, expired leases and approvals past their deadline are found.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerie::wiring::RuntimePlugins;
use aerie_engine::{Playbook, Runner};
use aerie_store::Store;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

type ServeRunner = Runner<'static, RuntimePlugins<'static>, Store>;

/// How often an idle worker looks for work it was not woken for.
const POLL: Duration = Duration::from_millis(500);

/// How long a worker waits after the store failed before it tries again.
const BACKOFF: Duration = Duration::from_secs(2);

pub struct Workers {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    owner: String,
}

pub fn start(
    runner: Arc<ServeRunner>,
    store: &'static Store,
    wake: Arc<Notify>,
    count: usize,
) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let owner = runner.owner().to_owned();
    metrics::gauge!("aerie_workers").set(count as f64);
    for n in 0..count {
        tasks.spawn(work(n, runner.clone(), wake.clone(), stopped.clone()));
    }
    tasks.spawn(maintain(store, stopped));
    Workers { tasks, stop, owner }
}

impl Workers {
    /// The run workers (the maintenance task is not one).
    pub fn count(&self) -> usize {
        self.tasks.len() - 1
    }

    /// Lets the runs in flight go on for up to `grace`, then stops the rest
    /// mid-step and releases their leases, so another server (or this one,
    /// restarted) resumes them at once; each step interrupted is run again
    /// from its start there. Returns how many runs were released.
    pub async fn stop(mut self, grace: Duration, store: &Store) -> anyhow::Result<u64> {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace = ?grace, "runs still in flight after the grace period: stopping them");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        Ok(store.release(&self.owner).await?)
    }
}

async fn work(
    n: usize,
    runner: Arc<ServeRunner>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let load = |source: &str| Playbook::parse(Path::new("(stored definition)"), source);
    while !*stopped.borrow() {
        let started = Instant::now();
        let idle = match runner.resume(None, load).await {
            Ok(Some(run)) => {
                // Utilisation: rate(aerie_worker_run_seconds_sum) over
                // aerie_workers.
                metrics::histogram!("aerie_worker_run_seconds")
                    .record(started.elapsed().as_secs_f64());
                tracing::info!(worker = n, run = %run.id, playbook = %run.playbook, status = %run.status, "run done");
                continue;
            }
            Ok(None) => POLL,
            Err(e) => {
                tracing::error!(worker = n, error = %crate::chain(&anyhow::Error::new(e)), "a run could not be executed");
                BACKOFF
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(idle) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Forgets webhook signatures and idempotency keys past their windows.
async fn maintain(store: &'static Store, mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if let Err(e) = store.prune_guards().await {
            tracing::warn!(error = %e, "pruning webhook guards");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stopped.changed() => {}
        }
    }
}
