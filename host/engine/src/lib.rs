//! Playbooks: the model, validation, templating and execution.
//!
//! The engine talks to plugins through [`Plugins`] and to storage through
//! [`RunStore`]; it knows neither wasmtime nor SQL. The binary wires the
//! runtime and the store in.
//!
//! - [`playbook`](Playbook): the typed model read from YAML, and validation;
//! - `run`: the records of a run and its steps, and their statuses;
//! - `plugins`, `store`: the two traits the engine is driven through;
//! - [`Runner`]: durable execution, resume, approvals, called playbooks;
//! - `approval`: who may decide an approval and how decisions tally;
//! - [`Templates`]: one templating language (minijinja) everywhere.

mod approval;
mod assign;
mod playbook;
mod plugins;
mod run;
mod runner;
mod store;
mod template;

pub use aerie_contract::{ErrorCode, LogLine, RequestRecord, epoch_ms, now, rfc3339};
pub use approval::{Decider, Outcome, tally};
pub use assign::{Assignment, Pick, RuleSpec};
pub use playbook::{
    ApprovalSpec, Call, Catalog, ClassificationSpec, Classified, ForEach, InputSpec, InputType,
    LabelSource, Missed, OnError, OnTimeout, Overlap, Parsed, Playbook, PlaybookError,
    PlaybookErrors, Retry, Schedule, SetValue, Step, StepKind, Switch, Templated, Text, Timetable,
    Trigger, TriggerDedupe, Uses, WindowFrom, key_names_nothing,
};
pub use plugins::{CallSite, PluginCall, Plugins};
pub use run::{
    PluginRef, RunRecord, RunStatus, StepError, StepLogs, StepRecord, StepStatus, UnknownStatus,
};
pub use runner::{LEASE_BOUNDS, PlaybookLoader, RunError, Runner, new_run};
pub use store::{ApprovalRequest, ApprovalState, CallTrace, Lease, RunStore};
pub use template::{RunBudget, Templates};
