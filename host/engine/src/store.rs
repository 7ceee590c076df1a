//! Where runs are kept: the trait the store implements. Every call is a
//! durable write; the engine goes on only once it returned.

use aerie_contract::{LogLine, RequestRecord};
use serde::Serialize;

use crate::playbook::OnTimeout;
use crate::run::{RunRecord, StepRecord};

/// A process's hold on a run: only the holder executes it, and it renews the
/// hold while it does. A run whose hold expired (its process died) may be
/// claimed by another process and resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    /// Milliseconds since the Unix epoch.
    pub until_ms: i64,
}

/// What one plugin call of a step left behind: its requests and log lines.
#[derive(Debug, Clone, Copy)]
pub struct CallTrace<'a> {
    pub step: &'a str,
    /// The `for_each` item, if the step has items.
    pub item: Option<usize>,
    pub plugin: &'a str,
    pub requests: &'a [RequestRecord],
    /// The lines within the step's cap ([`crate::StepLogs::MAX_LINES`]).
    pub logs: &'a [LogLine],
    /// Lines of this call past the step's cap, dropped.
    pub logs_dropped: u64,
}

/// Where runs are kept. Every call is a durable write.
pub trait RunStore: Sync {
    /// Why a write or a read failed; the runner stops the run with it.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Records a new run, its playbook's source (so a resume runs the same
    /// definition) and the creator's lease.
    fn run_started(
        &self,
        run: &RunRecord,
        definition: &str,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Extends the lease; `false` when another process holds the run now.
    fn renew_lease(
        &self,
        run_id: &str,
        lease: &Lease,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
    /// Takes over the oldest running run whose lease expired (or `only` that
    /// one), returning it with its playbook's source.
    fn claim(
        &self,
        lease: &Lease,
        only: Option<&str>,
    ) -> impl Future<Output = Result<Option<(RunRecord, String)>, Self::Error>> + Send;
    fn step_updated(
        &self,
        run_id: &str,
        step: &StepRecord,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Records a plugin call's requests and log lines (the step's record,
    /// written before the call, exists).
    fn call_traced(
        &self,
        run_id: &str,
        trace: CallTrace<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    fn run_finished(&self, run: &RunRecord)
    -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Opens the approval for a step (once; later calls return its state). A
    /// pending approval past its deadline is decided by its `on_timeout`.
    fn approval(
        &self,
        run_id: &str,
        step_id: &str,
        request: &ApprovalRequest,
    ) -> impl Future<Output = Result<ApprovalState, Self::Error>> + Send;
    /// Marks the run as waiting for a decision and releases its lease.
    fn run_waiting(&self, run: &RunRecord) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// An approval as the engine asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    pub message: String,
    pub approvers: Vec<String>,
    pub required: u32,
    /// Milliseconds since the Unix epoch.
    pub deadline_ms: Option<i64>,
    pub on_timeout: OnTimeout,
}

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalState {
    Pending,
    Decided {
        approved: bool,
        decided_by: Vec<String>,
        comment: Option<String>,
    },
}
