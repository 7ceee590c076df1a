//! Executes a playbook, step by step, writing each step's state to the store as
//! it changes.

use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use crate::playbook::{OnError, Playbook, Step, StepKind};
use crate::template::Templates;

/// Which plugin version ran a step, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A failed step or plugin call, in the plugin contract's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// One plugin call as the engine sees it.
#[derive(Debug, Clone)]
pub struct PluginCall {
    pub result: Result<Value, StepError>,
    pub plugin: Option<PluginRef>,
    /// The brokered requests, each a JSON object (method, url, status, ...).
    pub requests: Vec<Value>,
    pub logs: Vec<Value>,
}

/// How the engine reaches plugins.
pub trait Plugins: Sync {
    fn call(
        &self,
        plugin: &str,
        action: &str,
        input: &Value,
    ) -> impl Future<Output = PluginCall> + Send;
}

/// Where runs are kept. Every call is a durable write.
pub trait RunStore: Sync {
    fn run_started(&self, run: &RunRecord) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn step_updated(
        &self,
        run_id: &str,
        step: &StepRecord,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn requests_made(
        &self,
        run_id: &str,
        step_id: &str,
        item: Option<usize>,
        plugin: &str,
        requests: &[Value],
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn run_finished(&self, run: &RunRecord) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub id: String,
    pub seq: usize,
    pub status: StepStatus,
    pub attempts: u32,
    pub input: Value,
    pub output: Value,
    pub error: Option<StepError>,
    pub plugin: Option<PluginRef>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub playbook: String,
    pub status: RunStatus,
    pub input: Value,
    pub output: Value,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub struct Runner<'a, P, S> {
    plugins: &'a P,
    store: &'a S,
    templates: Templates,
}

impl<'a, P: Plugins, S: RunStore> Runner<'a, P, S> {
    pub fn new(plugins: &'a P, store: &'a S) -> Self {
        Runner {
            plugins,
            store,
            templates: Templates::new(),
        }
    }

    /// Runs `playbook` on `input` to its end. Invalid input is an error before
    /// any run is recorded; a failing step is a failed run, not an error.
    pub async fn run(&self, playbook: &Playbook, input: &Value) -> anyhow::Result<RunRecord> {
        let inputs = playbook
            .bind_inputs(input)
            .map_err(|e| anyhow::anyhow!("{}: {e}", playbook.name))?;
        let mut run = RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            playbook: playbook.name.clone(),
            status: RunStatus::Running,
            input: inputs.clone(),
            output: Value::Null,
            error: None,
            steps: playbook
                .steps
                .iter()
                .enumerate()
                .map(|(seq, step)| StepRecord {
                    id: step.id.clone(),
                    seq,
                    status: StepStatus::Pending,
                    attempts: 0,
                    input: Value::Null,
                    output: Value::Null,
                    error: None,
                    plugin: None,
                    started_at: None,
                    finished_at: None,
                    ms: 0,
                })
                .collect(),
            started_at: now(),
            finished_at: None,
        };
        self.store.run_started(&run).await?;

        let mut ctx = json!({ "inputs": inputs, "steps": {} });
        for (seq, step) in playbook.steps.iter().enumerate() {
            let started = Instant::now();
            let mut record = run.steps[seq].clone();
            record.started_at = Some(now());
            let skip = match &step.condition {
                Some(condition) => match self.templates.truthy(condition, &ctx) {
                    Ok(holds) => !holds,
                    Err(e) => {
                        record.error = Some(template_error(e));
                        false
                    }
                },
                None => false,
            };
            if record.error.is_none() {
                if skip {
                    record.status = StepStatus::Skipped;
                } else {
                    record.status = StepStatus::Running;
                    self.store.step_updated(&run.id, &record).await?;
                    self.execute(&run.id, step, &ctx, &mut record).await?;
                }
            }
            if record.error.is_some() && record.status != StepStatus::Failed {
                record.status = StepStatus::Failed;
            }
            record.finished_at = Some(now());
            record.ms = started.elapsed().as_millis() as u64;
            self.store.step_updated(&run.id, &record).await?;
            ctx["steps"][&step.id] =
                json!({ "output": record.output, "status": record.status.as_str() });
            let failed = record.status == StepStatus::Failed && step.on_error == OnError::Fail;
            let message = record
                .error
                .as_ref()
                .map(|e| format!("step `{}`: {}: {}", step.id, e.code, e.message));
            run.steps[seq] = record;
            if failed {
                run.status = RunStatus::Failed;
                run.error = message;
                break;
            }
        }
        if run.status == RunStatus::Running {
            match self.templates.render(&playbook.output, &ctx) {
                Ok(output) => {
                    run.output = output;
                    run.status = RunStatus::Succeeded;
                }
                Err(e) => {
                    run.status = RunStatus::Failed;
                    run.error = Some(format!("output: {e}"));
                }
            }
        }
        run.finished_at = Some(now());
        self.store.run_finished(&run).await?;
        Ok(run)
    }

    /// Runs one step that is not skipped, filling in its output or error.
    async fn execute(
        &self,
        run_id: &str,
        step: &Step,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> anyhow::Result<()> {
        let kind = match step.kind() {
            Ok(kind) => kind,
            Err(message) => {
                record.error = Some(StepError {
                    code: "invalid-input".to_owned(),
                    message,
                    retryable: false,
                });
                return Ok(());
            }
        };
        match kind {
            StepKind::Set => match self
                .templates
                .render(step.set.as_ref().unwrap_or(&Value::Null), ctx)
            {
                Ok(value) => {
                    record.output = value;
                    record.status = StepStatus::Succeeded;
                }
                Err(e) => record.error = Some(template_error(e)),
            },
            StepKind::Log => match self
                .templates
                .render_str(step.log.as_deref().unwrap_or_default(), ctx)
            {
                Ok(message) => {
                    let text = message
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| message.to_string());
                    tracing::info!(step = %step.id, "{text}");
                    record.output = Value::String(text);
                    record.status = StepStatus::Succeeded;
                }
                Err(e) => record.error = Some(template_error(e)),
            },
            StepKind::Uses { plugin, action } => {
                let Some(for_each) = &step.for_each else {
                    let input = match self.templates.render(&step.with, ctx) {
                        Ok(input) => input,
                        Err(e) => {
                            record.error = Some(template_error(e));
                            return Ok(());
                        }
                    };
                    record.input = input.clone();
                    record.attempts += 1;
                    let call = self.plugins.call(plugin, action, &input).await;
                    self.store
                        .requests_made(run_id, &step.id, None, plugin, &call.requests)
                        .await?;
                    record.plugin = call.plugin;
                    match call.result {
                        Ok(output) => {
                            record.output = output;
                            record.status = StepStatus::Succeeded;
                        }
                        Err(e) => {
                            if step.on_error == OnError::Continue {
                                record.output =
                                    json!({ "error": { "code": e.code, "message": e.message } });
                            }
                            record.error = Some(e);
                        }
                    }
                    return Ok(());
                };
                let items = match self.templates.render_str(for_each, ctx) {
                    Ok(Value::Array(items)) => items,
                    Ok(Value::Null) => Vec::new(),
                    Ok(other) => {
                        record.error = Some(template_error(format!(
                            "`for_each` must give a list, got {other}"
                        )));
                        return Ok(());
                    }
                    Err(e) => {
                        record.error = Some(template_error(e));
                        return Ok(());
                    }
                };
                let mut inputs = Vec::with_capacity(items.len());
                let mut outputs = Vec::with_capacity(items.len());
                let mut first_error = None;
                for (index, item) in items.into_iter().enumerate() {
                    let mut item_ctx = ctx.clone();
                    item_ctx["item"] = item;
                    item_ctx["index"] = json!(index);
                    let input = match self.templates.render(&step.with, &item_ctx) {
                        Ok(input) => input,
                        Err(e) => {
                            record.error = Some(template_error(e));
                            return Ok(());
                        }
                    };
                    record.attempts += 1;
                    let call = self.plugins.call(plugin, action, &input).await;
                    self.store
                        .requests_made(run_id, &step.id, Some(index), plugin, &call.requests)
                        .await?;
                    inputs.push(input);
                    record.plugin = call.plugin;
                    match call.result {
                        Ok(output) => outputs.push(output),
                        Err(e) => {
                            outputs
                                .push(json!({ "error": { "code": e.code, "message": e.message } }));
                            let stop = step.on_error == OnError::Fail;
                            first_error.get_or_insert(StepError {
                                message: format!("item {index}: {}", e.message),
                                ..e
                            });
                            if stop {
                                break;
                            }
                        }
                    }
                }
                record.input = Value::Array(inputs);
                record.output = Value::Array(outputs);
                match first_error {
                    Some(e) => record.error = Some(e),
                    None => record.status = StepStatus::Succeeded,
                }
            }
        }
        // A step that went on after an error keeps its error but does not fail
        // the run; its status says what happened.
        Ok(())
    }
}

fn template_error(message: String) -> StepError {
    StepError {
        code: "invalid-input".to_owned(),
        message,
        retryable: false,
    }
}
