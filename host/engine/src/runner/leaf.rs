//! One step that holds no steps (or a switch deciding its key): its
//! condition, its work, and its record, written as it changes. The built-ins
//! and called playbooks are here; plugin calls are in `uses`.

use std::time::Instant;

use aerie_contract::{ErrorCode, epoch_ms, now};
use serde_json::{Value, json};

use super::error::{Stored as _, chain};
use super::{Result, Runner};
use crate::playbook::{ApprovalSpec, Call, Step, StepKind, Templated, Text};
use crate::plugins::Plugins;
use crate::run::{RunStatus, StepError, StepRecord, StepStatus};
use crate::store::{ApprovalRequest, ApprovalState, RunStore};

pub(super) fn template_error(message: String) -> StepError {
    StepError::new(ErrorCode::InvalidInput, message)
}

/// A rendered value as message text: strings as they are, the rest as JSON.
fn as_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

impl<P: Plugins, S: RunStore> Runner<'_, P, S> {
    /// Runs one step: its condition, its work, and its record, written as it
    /// changes. A step left `waiting` is written, and the caller stops the run.
    pub(super) async fn leaf(
        &self,
        run_id: &str,
        step: &Step,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> Result<()> {
        let started = Instant::now();
        record.started_at = Some(now());
        // An error from an earlier process's attempt is not this run's.
        record.error = None;
        let holds = match &step.condition {
            Some(condition) => self
                .templates
                .truthy(&condition.text, ctx, &self.budget(run_id)),
            None => Ok(true),
        };
        match holds {
            Err(e) => record.error = Some(template_error(e)),
            Ok(false) => record.status = StepStatus::Skipped,
            Ok(true) => {
                record.status = StepStatus::Running;
                // A step that waits is recorded as started, so its record says
                // so meanwhile: an approval, a called playbook; a plugin step
                // by each attempt (see `uses`), so a crash mid-call still
                // counts the attempt. A step with no effect outside the run
                // (set, log, fail, switch) takes microseconds and is recorded
                // once, finished: were its process to die in it, it would be
                // run again from its start, as any step in flight is.
                if matches!(step.kind, StepKind::Approval(_) | StepKind::Playbook(_)) {
                    self.store.step_updated(run_id, record).await.stored()?;
                }
                self.execute(run_id, step, ctx, record).await?;
            }
        }
        if record.error.is_some() {
            record.status = StepStatus::Failed;
        }
        if record.status != StepStatus::Waiting {
            record.finished_at = Some(now());
            record.ms = started.elapsed().as_millis() as u64;
        }
        self.store.step_updated(run_id, record).await.stored()
    }

    /// The step's work, filling in its output or error. A step that went on
    /// after an error keeps its error; its status says what happened.
    async fn execute(
        &self,
        run_id: &str,
        step: &Step,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> Result<()> {
        let rendered = match &step.kind {
            StepKind::Uses(uses) => return self.uses(run_id, step, uses, ctx, record).await,
            StepKind::Approval(spec) => {
                return self.approval(run_id, step, spec, ctx, record).await;
            }
            StepKind::Playbook(call) => return self.call_playbook(run_id, call, ctx, record).await,
            // Run by the block, never here.
            StepKind::Parallel(_) => return Ok(()),
            StepKind::Set(set) => match &set.for_each {
                None => self
                    .templates
                    .render(&set.value.value, ctx, &self.budget(run_id)),
                Some(items) => {
                    let Some(items) = self.items(run_id, &items.text, ctx, record) else {
                        return Ok(());
                    };
                    let mut item_ctx = ctx.clone();
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(index, item)| {
                            item_ctx["item"] = item;
                            item_ctx["index"] = Value::from(index);
                            self.templates
                                .render(&set.value.value, &item_ctx, &self.budget(run_id))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Value::Array)
                }
            },
            StepKind::Log(text) => self.render_text(run_id, text, ctx).map(|message| {
                tracing::info!(step = %step.id, "{message}");
                Value::String(message)
            }),
            StepKind::Fail(text) => {
                let message = self.render_text(run_id, text, ctx).unwrap_or_else(|e| e);
                record.error = Some(StepError::new(ErrorCode::Failed, message));
                return Ok(());
            }
            StepKind::Switch(switch) => self
                .templates
                .render_str(&switch.on.text, ctx, &self.budget(run_id))
                .map(|key| match key {
                    Value::Null => Value::String(String::new()),
                    other => Value::String(as_text(other)),
                }),
        };
        match rendered {
            Ok(output) => {
                record.output = output;
                record.status = StepStatus::Succeeded;
            }
            Err(e) => record.error = Some(template_error(e)),
        }
        Ok(())
    }

    /// The list a `for_each` renders, at most `[engine] max_items` long; on
    /// an error, records it and gives nothing.
    pub(super) fn items(
        &self,
        run_id: &str,
        items: &str,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> Option<Vec<Value>> {
        let items = match self.templates.render_str(items, ctx, &self.budget(run_id)) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Null) => Vec::new(),
            Ok(other) => {
                record.error = Some(template_error(format!(
                    "`for_each` must give a list, got {other}"
                )));
                return None;
            }
            Err(e) => {
                record.error = Some(template_error(e));
                return None;
            }
        };
        if items.len() > self.max_items {
            record.error = Some(template_error(format!(
                "`for_each` gave {} items; a step may have at most {} ([engine] max_items)",
                items.len(),
                self.max_items
            )));
            return None;
        }
        Some(items)
    }

    fn render_text(&self, run_id: &str, text: &Text, ctx: &Value) -> Result<String, String> {
        self.templates
            .render_str(&text.text, ctx, &self.budget(run_id))
            .map(as_text)
    }

    /// A step's rendered input; on a template error, records it and gives
    /// nothing.
    pub(super) fn render_input(
        &self,
        run_id: &str,
        with: &Templated,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> Option<Value> {
        match self
            .templates
            .render(&with.value, ctx, &self.budget(run_id))
        {
            Ok(input) => Some(input),
            Err(e) => {
                record.error = Some(template_error(e));
                None
            }
        }
    }

    async fn approval(
        &self,
        run_id: &str,
        step: &Step,
        spec: &ApprovalSpec,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> Result<()> {
        let message = match self.render_text(run_id, &spec.message, ctx) {
            Ok(message) => message,
            Err(e) => {
                record.error = Some(template_error(e));
                return Ok(());
            }
        };
        let request = ApprovalRequest {
            message,
            approvers: spec.approvers.iter().map(|a| a.text.clone()).collect(),
            required: spec.required,
            deadline_ms: spec.timeout.map(|t| {
                epoch_ms().saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
            }),
            on_timeout: spec.on_timeout,
        };
        match self
            .store
            .approval(run_id, &step.id, &request)
            .await
            .stored()?
        {
            ApprovalState::Pending => record.status = StepStatus::Waiting,
            ApprovalState::Decided {
                approved,
                decided_by,
                comment,
            } => {
                record.output =
                    json!({ "approved": approved, "decided_by": decided_by, "comment": comment });
                record.status = StepStatus::Succeeded;
            }
        }
        Ok(())
    }

    /// Runs the called playbook as a run of its own; its output is the step's.
    async fn call_playbook(
        &self,
        run_id: &str,
        call: &Call,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> Result<()> {
        let name = &call.playbook.text;
        let Some(input) = self.render_input(run_id, &call.with, ctx, record) else {
            return Ok(());
        };
        record.input = input.clone();
        record.attempts += 1;
        let child = async {
            let Some(load) = self.playbooks else {
                return Err("this runner cannot load playbooks".to_owned());
            };
            let runner = self.nested(run_id)?;
            let playbook = load(name).map_err(|e| e.to_string())?;
            runner.run(&playbook, &input).await.map_err(|e| chain(&e))
        };
        match child.await {
            Ok(child) if child.status == RunStatus::Succeeded => {
                record.output = child.output;
                record.status = StepStatus::Succeeded;
            }
            Ok(child) => {
                let why = match child.status {
                    RunStatus::Waiting => {
                        "waits for an approval, which a called playbook may not do yet".to_owned()
                    }
                    _ => child.error.unwrap_or_else(|| "failed".to_owned()),
                };
                record.error = Some(StepError::new(
                    ErrorCode::Failed,
                    format!("playbook `{name}` (run {}): {why}", child.id),
                ));
            }
            Err(e) => {
                record.error = Some(StepError::new(
                    ErrorCode::InvalidInput,
                    format!("playbook `{name}`: {e}"),
                ));
            }
        }
        Ok(())
    }
}
