//! Executes a playbook, step by step, writing each step's state to the store
//! as it changes; resumes a run whose process died from what was written.
//!
//! - `flow`: blocks of steps, branches, parallel blocks, skipping;
//! - `leaf`: one step that holds no steps: its condition, the built-ins
//!   (set, log, fail, switch, approval) and called playbooks;
//! - `uses`: plugin calls: retries, timeouts, the `for_each` window.

mod error;
mod flow;
mod leaf;
mod metrics;
mod uses;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_support;

use std::time::Duration;

use aerie_contract::{epoch_ms, now};
use serde_json::{Value, json};
use tracing::Instrument as _;

pub use error::RunError;
use error::Stored as _;

use crate::playbook::{Playbook, PlaybookErrors};
use crate::plugins::Plugins;
use crate::run::{RunRecord, RunStatus, StepRecord, StepStatus};
use crate::store::{Lease, RunStore};
use crate::template::{RunBudget, Templates};
use flow::Flow;

/// Finds a playbook by name, for `playbook` steps.
pub type PlaybookLoader<'a> = &'a (dyn Fn(&str) -> Result<Playbook, PlaybookErrors> + Sync);

type Result<T, E = RunError> = std::result::Result<T, E>;

/// How deep `playbook` steps may nest, so a playbook that calls itself stops.
const MAX_DEPTH: usize = 8;

/// How many runs one root run may start through `playbook` steps, its
/// callees' included: depth alone would let a playbook that calls itself
/// ten times a level start a hundred million.
pub const MAX_CALLED_RUNS: usize = 256;

/// The count of runs started under one root run, shared by its callees.
type Family = std::sync::Arc<std::sync::atomic::AtomicUsize>;

/// The shortest and longest lease (as `[engine] lease_seconds` allows).
pub const LEASE_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(86_400));

pub struct Runner<'a, P, S> {
    plugins: &'a P,
    store: &'a S,
    playbooks: Option<PlaybookLoader<'a>>,
    depth: usize,
    templates: Templates,
    owner: String,
    lease: Duration,
    max_items: usize,
    /// A called run's family (the root's count); `None` at the root, which
    /// keeps one per run it is driving in `families`.
    family: Option<Family>,
    families: std::sync::Mutex<std::collections::HashMap<String, Family>>,
    budgets: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<RunBudget>>>,
}

/// A new run of `playbook` on `input`, every step pending: what `run` records
/// before executing it, and what a trigger queues for a worker. Invalid input
/// is an error, and nothing is recorded.
pub fn new_run(playbook: &Playbook, input: &Value, status: RunStatus) -> Result<RunRecord> {
    let inputs = playbook.bind_inputs(input).map_err(|why| RunError::Input {
        playbook: playbook.name.clone(),
        why,
    })?;
    Ok(RunRecord {
        id: uuid::Uuid::now_v7().to_string(),
        playbook: playbook.name.clone(),
        status,
        input: inputs,
        output: Value::Null,
        error: None,
        steps: playbook
            .all_steps()
            .into_iter()
            .enumerate()
            .map(|(seq, step)| StepRecord::pending(seq, &step.id))
            .collect(),
        started_at: now(),
        finished_at: None,
        classification: None,
    })
}

impl<'a, P: Plugins, S: RunStore> Runner<'a, P, S> {
    pub fn new(plugins: &'a P, store: &'a S) -> Self {
        Runner {
            plugins,
            store,
            playbooks: None,
            depth: 0,
            templates: Templates::new(),
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            lease: Duration::from_secs(15),
            max_items: 10_000,
            family: None,
            families: Default::default(),
            budgets: Default::default(),
        }
    }

    /// The most items a `for_each` step may have (`[engine] max_items`).
    pub fn max_items(mut self, max: usize) -> Self {
        self.max_items = max.max(1);
        self
    }

    /// Where `playbook` steps find the playbooks they call.
    pub fn playbooks(mut self, loader: PlaybookLoader<'a>) -> Self {
        self.playbooks = Some(loader);
        self
    }

    /// How long a lease lasts without renewal (`[engine] lease_seconds`),
    /// within [`LEASE_BOUNDS`].
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(LEASE_BOUNDS.0, LEASE_BOUNDS.1);
        self
    }

    /// Who holds the leases this runner takes: one per process.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn lease(&self) -> Lease {
        let millis = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        Lease {
            owner: self.owner.clone(),
            until_ms: epoch_ms().saturating_add(millis),
        }
    }

    /// Claims a queued run, or one whose process died (or `only` that one, if
    /// its lease expired), and finishes it. `load` turns the stored playbook source into a
    /// playbook. Returns `None` when there is nothing to resume.
    pub async fn resume(
        &self,
        only: Option<&str>,
        load: impl Fn(&str) -> Result<Playbook, PlaybookErrors>,
    ) -> Result<Option<RunRecord>> {
        let Some((mut run, definition)) = self.store.claim(&self.lease(), only).await.stored()?
        else {
            return Ok(None);
        };
        let playbook = match load(&definition) {
            Ok(playbook) => playbook,
            Err(source) => {
                // Failed for good, or every claimer would take it up again
                // once its lease expired.
                run.status = RunStatus::Failed;
                run.error = Some(format!("its stored playbook does not read: {source}"));
                run.finished_at = Some(now());
                self.store.run_finished(&run).await.stored()?;
                metrics::finished(&run);
                return Err(RunError::Definition {
                    run: run.id.clone(),
                    source,
                });
            }
        };
        tracing::info!(run = %run.id, playbook = %run.playbook, "claimed");
        // Steps that never started have no record yet.
        let mut stored = std::mem::take(&mut run.steps);
        run.steps = playbook
            .all_steps()
            .into_iter()
            .enumerate()
            .map(
                |(seq, step)| match stored.iter().position(|s| s.id == step.id) {
                    Some(at) => StepRecord {
                        seq,
                        ..stored.swap_remove(at)
                    },
                    None => StepRecord::pending(seq, &step.id),
                },
            )
            .collect();
        self.drive(&playbook, &mut run).await?;
        Ok(Some(run))
    }

    /// Runs `playbook` on `input` to its end. Invalid input is an error before
    /// any run is recorded; a failing step is a failed run, not an error.
    pub async fn run(&self, playbook: &Playbook, input: &Value) -> Result<RunRecord> {
        let mut run = new_run(playbook, input, RunStatus::Running)?;
        self.store
            .run_started(&run, playbook.source(), &self.lease())
            .await
            .stored()?;
        self.drive(playbook, &mut run).await?;
        Ok(run)
    }

    /// Executes the steps not yet done, renewing the lease meanwhile. Steps that
    /// succeeded or were skipped (in an earlier process) are not run again; a
    /// step interrupted mid-flight is run again from its start.
    async fn drive(&self, playbook: &Playbook, run: &mut RunRecord) -> Result<()> {
        let id = run.id.clone();
        let renew = async {
            loop {
                tokio::time::sleep(self.lease / 3).await;
                if !self.store.renew_lease(&id, &self.lease()).await.stored()? {
                    return Err(RunError::LeaseLost { run: id.clone() });
                }
            }
        };
        // Every log line of the run, its steps' and its plugins', carries
        // the run and the playbook (`--log-format json` prints them as fields).
        let span = tracing::info_span!("run", run = %id, playbook = %playbook.name);
        let work = self.steps(playbook, run).instrument(span);
        let done = tokio::select! {
            done = work => done,
            lost = renew => lost,
        };
        // Finished, waiting or failed: this attempt's template budget goes.
        self.budgets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        done
    }

    async fn steps(&self, playbook: &Playbook, run: &mut RunRecord) -> Result<()> {
        let mut ctx = json!({ "inputs": run.input, "steps": {} });
        for record in &run.steps {
            if record.status != StepStatus::Pending {
                flow::publish(&mut ctx, record);
            }
        }
        match self.block(&playbook.steps, run, &mut ctx).await? {
            Flow::Next => {}
            Flow::Waiting => return Ok(()),
            Flow::Failed(message) => {
                run.status = RunStatus::Failed;
                run.error = Some(message);
            }
        }
        if run.status == RunStatus::Running {
            let classified = match &playbook.classification {
                Some(spec) => spec
                    .render(&self.templates, &ctx, &self.budget(&run.id))
                    .map(Some)
                    .map_err(|e| format!("classification: {e}")),
                None => Ok(None),
            };
            let output = self
                .templates
                .render(&playbook.output.value, &ctx, &self.budget(&run.id))
                .map_err(|e| format!("output: {e}"));
            match output.and_then(|output| Ok((output, classified?))) {
                Ok((output, classification)) => {
                    run.output = output;
                    run.classification = classification;
                    run.status = RunStatus::Succeeded;
                }
                Err(e) => {
                    run.status = RunStatus::Failed;
                    run.error = Some(e);
                }
            }
        }
        run.finished_at = Some(now());
        self.store.run_finished(run).await.stored()?;
        metrics::finished(run);
        if self.family.is_none() {
            self.families
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&run.id);
        }
        Ok(())
    }

    /// The template budget of a run this runner drives: one per run (and per
    /// attempt: a resumed run starts afresh).
    fn budget(&self, run_id: &str) -> std::sync::Arc<RunBudget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up before inserting: every render asks, and the id is only
        // copied once per attempt.
        if let Some(budget) = budgets.get(run_id) {
            return budget.clone();
        }
        budgets.entry(run_id.to_owned()).or_default().clone()
    }

    /// A runner for a playbook that run `run_id` calls: the same plugins,
    /// store and lease owner, one level deeper, counted in the root run's
    /// family.
    fn nested(&self, run_id: &str) -> Result<Runner<'a, P, S>, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "playbooks call each other more than {MAX_DEPTH} deep"
            ));
        }
        let family = match &self.family {
            Some(family) => family.clone(),
            None => self
                .families
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(run_id.to_owned())
                .or_default()
                .clone(),
        };
        let started = family.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if started > MAX_CALLED_RUNS {
            return Err(format!(
                "the run and the playbooks it calls may start at most {MAX_CALLED_RUNS} runs together"
            ));
        }
        Ok(Runner {
            plugins: self.plugins,
            store: self.store,
            playbooks: self.playbooks,
            depth: self.depth + 1,
            templates: Templates::new(),
            owner: self.owner.clone(),
            lease: self.lease,
            max_items: self.max_items,
            family: Some(family),
            families: Default::default(),
            budgets: Default::default(),
        })
    }
}
