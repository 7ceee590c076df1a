//! The workers: tasks that claim queued runs (and runs whose process died)
//! and execute them. Woken when a trigger queues a run; otherwise they look
//! every [`POLL`], which is also how runs queued by another server sharing
//! the store, expired leases and approvals past their deadline are found.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aerie::wiring::RuntimePlugins;
use aerie_engine::{Playbook, PlaybookErrors, Runner};
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
    let definitions = Arc::new(Definitions::default());
    for n in 0..count {
        tasks.spawn(work(
            n,
            runner.clone(),
            definitions.clone(),
            wake.clone(),
            stopped.clone(),
        ));
    }
    tasks.spawn(maintain(store, wake, stopped));
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
    definitions: Arc<Definitions>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let load = |source: &str| definitions.load(source);
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

/// The playbooks of claimed runs, read once per text: every run stores the
/// text it started with, and most runs of a server share a few.
#[derive(Default)]
struct Definitions {
    read: Mutex<HashMap<String, Playbook>>,
}

/// Texts kept before the cache starts afresh (playbooks edited often, or
/// many servers' worth).
const DEFINITIONS: usize = 256;

impl Definitions {
    fn load(&self, source: &str) -> Result<Playbook, PlaybookErrors> {
        if let Some(playbook) = self.lock().get(source) {
            return Ok(playbook.clone());
        }
        let playbook = Playbook::parse(Path::new("(stored definition)"), source)?;
        let mut read = self.lock();
        if read.len() >= DEFINITIONS {
            read.clear();
        }
        read.insert(source.to_owned(), playbook.clone());
        Ok(playbook)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Playbook>> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often approvals past their deadline are decided.
const EXPIRY: Duration = Duration::from_secs(1);

/// How often webhook signatures and idempotency keys past their windows are
/// forgotten.
const PRUNE: Duration = Duration::from_secs(60);

/// Decides approvals at their deadline (their runs go back in the queue, and
/// a worker is woken for them), and forgets webhook guards past their windows.
async fn maintain(store: &'static Store, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    let mut pruned: Option<Instant> = None;
    while !*stopped.borrow() {
        match store.expire_approvals().await {
            Ok(0) => {}
            Ok(settled) => (0..settled).for_each(|_| wake.notify_one()),
            Err(e) => tracing::warn!(error = %e, "deciding approvals past their deadline"),
        }
        if pruned.is_none_or(|at| at.elapsed() >= PRUNE) {
            if let Err(e) = store.prune_guards().await {
                tracing::warn!(error = %e, "pruning webhook guards");
            }
            pruned = Some(Instant::now());
        }
        tokio::select! {
            () = tokio::time::sleep(EXPIRY) => {}
            _ = stopped.changed() => {}
        }
    }
}
