//! What a finished run adds to `/metrics`, through the `metrics` facade (a
//! no-op unless `aerie serve` installed its recorder).

use crate::run::{RunRecord, StepStatus};

/// Counts the run by playbook and status, and times each step that ran.
pub(super) fn finished(run: &RunRecord) {
    metrics::counter!(
        "aerie_runs_total",
        "playbook" => run.playbook.clone(),
        "status" => run.status.as_str(),
    )
    .increment(1);
    for step in &run.steps {
        if matches!(step.status, StepStatus::Succeeded | StepStatus::Failed) {
            metrics::histogram!(
                "aerie_step_seconds",
                "playbook" => run.playbook.clone(),
                "step" => step.id.clone(),
                "status" => step.status.as_str(),
            )
            .record(step.ms as f64 / 1000.0);
        }
    }
}
