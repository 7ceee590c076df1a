//! Blocks of steps: in order, into the branch a `switch` takes, all at once
//! for `parallel`, and marking what is not taken as skipped.

use std::pin::Pin;
use std::time::Instant;

use aerie_contract::{ErrorCode, now};
use serde_json::{Value, json};
use tracing::Instrument as _;

use super::error::{RunError, Stored as _};
use super::{Result, Runner};
use crate::playbook::{OnError, Step, StepKind};
use crate::plugins::Plugins;
use crate::run::{RunRecord, RunStatus, StepError, StepRecord, StepStatus};
use crate::store::RunStore;

/// How a block of steps ended.
pub(super) enum Flow {
    /// Every step is done; go on.
    Next,
    /// An approval is pending; the run stops here for now.
    Waiting,
    /// A step failed and the run fails with this message.
    Failed(String),
}

impl Flow {
    fn failed(step: &Step, error: Option<&StepError>) -> Flow {
        Flow::Failed(match error {
            Some(e) => format!("step `{}`: {}: {}", step.id, e.code, e.message),
            None => format!("step `{}` failed", step.id),
        })
    }
}

/// Makes a step's output and status visible to the templates after it.
pub(super) fn publish(ctx: &mut Value, record: &StepRecord) {
    ctx["steps"][&record.id] = json!({ "output": record.output, "status": record.status });
}

/// Whether a step needs no more work: it succeeded or was skipped, or it failed
/// and the run went on past it.
fn finished(record: &StepRecord, step: &Step) -> bool {
    matches!(record.status, StepStatus::Succeeded | StepStatus::Skipped)
        || (record.status == StepStatus::Failed && step.on_error == OnError::Continue)
}

fn position(run: &RunRecord, id: &str) -> Result<usize> {
    run.steps
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| RunError::NoRecord {
            run: run.id.clone(),
            step: id.to_owned(),
        })
}

type Boxed<'s, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 's>>;

impl<P: Plugins, S: RunStore> Runner<'_, P, S> {
    /// Runs a list of steps in order, descending into branches; steps already
    /// done (in an earlier process) are passed over.
    pub(super) fn block<'s>(
        &'s self,
        steps: &'s [Step],
        run: &'s mut RunRecord,
        ctx: &'s mut Value,
    ) -> Boxed<'s, Flow> {
        Box::pin(async move {
            for step in steps {
                let seq = position(run, &step.id)?;
                let flow = match &step.kind {
                    StepKind::Switch(_) => self.switch(step, seq, run, ctx).await?,
                    _ if finished(&run.steps[seq], step) => Flow::Next,
                    StepKind::Parallel(children) => self.parallel(step, children, run, ctx).await?,
                    _ => self.single(step, seq, run, ctx).await?,
                };
                if !matches!(flow, Flow::Next) {
                    return Ok(flow);
                }
            }
            Ok(Flow::Next)
        })
    }

    /// A step that holds no steps.
    async fn single(
        &self,
        step: &Step,
        seq: usize,
        run: &mut RunRecord,
        ctx: &mut Value,
    ) -> Result<Flow> {
        let mut record = run.steps[seq].clone();
        self.leaf(&run.id, step, ctx, &mut record)
            .instrument(tracing::info_span!("step", step = %step.id))
            .await?;
        if record.status == StepStatus::Waiting {
            run.steps[seq] = record;
            run.status = RunStatus::Waiting;
            self.store.run_waiting(run).await.stored()?;
            return Ok(Flow::Waiting);
        }
        publish(ctx, &record);
        let failed = record.status == StepStatus::Failed && step.on_error == OnError::Fail;
        let flow = Flow::failed(step, record.error.as_ref());
        run.steps[seq] = record;
        Ok(if failed { flow } else { Flow::Next })
    }

    /// Decides a switch's key (once), marks the branches not taken skipped,
    /// and runs the one taken (resuming it when it was under way).
    async fn switch(
        &self,
        step: &Step,
        seq: usize,
        run: &mut RunRecord,
        ctx: &mut Value,
    ) -> Result<Flow> {
        let StepKind::Switch(switch) = &step.kind else {
            return Ok(Flow::Next);
        };
        if !finished(&run.steps[seq], step) {
            let mut record = run.steps[seq].clone();
            self.leaf(&run.id, step, ctx, &mut record).await?;
            publish(ctx, &record);
            let (status, error) = (record.status, record.error.clone());
            let key = record.output.as_str().map(str::to_owned);
            run.steps[seq] = record;
            if status == StepStatus::Failed {
                return Ok(Flow::failed(step, error.as_ref()));
            }
            // The branches not taken are skipped, for the record; all of them
            // when the switch itself was skipped.
            let key = key.filter(|_| status != StepStatus::Skipped);
            for (taken, branch) in switch.branches(key.as_deref()) {
                if !taken {
                    self.skip_all(branch, run, ctx).await?;
                }
            }
        }
        if run.steps[seq].status == StepStatus::Skipped {
            return Ok(Flow::Next);
        }
        let key = run.steps[seq]
            .output
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.block(switch.branch(&key), run, ctx).await
    }

    /// Runs the steps of a `parallel` block at the same time.
    async fn parallel(
        &self,
        step: &Step,
        children: &[Step],
        run: &mut RunRecord,
        ctx: &mut Value,
    ) -> Result<Flow> {
        let started = Instant::now();
        let mut record = run.steps[position(run, &step.id)?].clone();
        record.started_at = Some(now());
        record.status = StepStatus::Running;
        self.store.step_updated(&run.id, &record).await.stored()?;

        let mut records = Vec::with_capacity(children.len());
        for child in children {
            records.push(run.steps[position(run, &child.id)?].clone());
        }
        let snapshot = ctx.clone();
        let run_id = run.id.clone();
        let results = futures_util::future::join_all(
            children
                .iter()
                .zip(records.iter_mut())
                .filter(|(child, rec)| !finished(rec, child))
                .map(|(child, rec)| self.leaf(&run_id, child, &snapshot, rec)),
        )
        .await;
        results.into_iter().collect::<Result<Vec<()>>>()?;

        let mut outputs = serde_json::Map::new();
        let mut failure = None;
        for (child, rec) in children.iter().zip(records) {
            publish(ctx, &rec);
            outputs.insert(child.id.clone(), rec.output.clone());
            if rec.status == StepStatus::Failed
                && child.on_error == OnError::Fail
                && failure.is_none()
            {
                failure = Some(Flow::failed(child, rec.error.as_ref()));
            }
            let seq = position(run, &child.id)?;
            run.steps[seq] = rec;
        }
        record.output = Value::Object(outputs);
        record.status = if failure.is_some() {
            StepStatus::Failed
        } else {
            StepStatus::Succeeded
        };
        if let Some(Flow::Failed(message)) = &failure {
            record.error = Some(StepError::new(ErrorCode::Failed, message.clone()));
        }
        record.finished_at = Some(now());
        record.ms = started.elapsed().as_millis() as u64;
        self.store.step_updated(&run.id, &record).await.stored()?;
        publish(ctx, &record);
        let seq = position(run, &step.id)?;
        run.steps[seq] = record;
        Ok(match failure {
            Some(flow) if step.on_error == OnError::Fail => flow,
            _ => Flow::Next,
        })
    }

    /// Marks every step of a branch not taken (and their children) skipped.
    async fn skip_all(&self, steps: &[Step], run: &mut RunRecord, ctx: &mut Value) -> Result<()> {
        let mut stack: Vec<&Step> = steps.iter().collect();
        while let Some(step) = stack.pop() {
            stack.extend(step.children());
            let seq = position(run, &step.id)?;
            if run.steps[seq].status == StepStatus::Pending {
                run.steps[seq].status = StepStatus::Skipped;
                self.store
                    .step_updated(&run.id, &run.steps[seq])
                    .await
                    .stored()?;
                publish(ctx, &run.steps[seq]);
            }
        }
        Ok(())
    }
}
