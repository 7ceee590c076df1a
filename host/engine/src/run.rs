//! A run and its steps as they are recorded: what ran, with what, and how it
//! ended. The store persists these; the CLI and the API show them.

use std::fmt;
use std::str::FromStr;

use aerie_contract::{ErrorCode, LogLine};
use serde::Serialize;
use serde_json::Value;

/// Which plugin version ran a step, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A failed step or plugin call, in the plugin contract's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StepError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default)]
    pub retryable: bool,
}

impl StepError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> StepError {
        StepError {
            code,
            message: message.into(),
            retryable: false,
        }
    }
}

/// A status text that names no status, read back from storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {what} status")]
pub struct UnknownStatus {
    pub what: &'static str,
    pub value: String,
}

/// Status enums spelled in lowercase, parsed back strictly: a damaged value is
/// an error, never a guess (a guess of `pending` would run a step again).
macro_rules! status {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(text: &str) -> Result<$name, UnknownStatus> {
                match text {
                    $($text => Ok($name::$variant),)*
                    _ => Err(UnknownStatus { what: $what, value: text.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status!(RunStatus, "run" {
    /// Stored by a trigger, waiting for a worker to claim it.
    Queued = "queued",
    Running = "running",
    /// Paused at an approval.
    Waiting = "waiting",
    Succeeded = "succeeded",
    Failed = "failed",
    /// A schedule's tick that did not run: no server was up, or the previous
    /// run had not finished. Its error says which.
    Missed = "missed",
});

status!(StepStatus, "step" {
    Pending = "pending",
    Running = "running",
    /// An approval not decided yet.
    Waiting = "waiting",
    Succeeded = "succeeded",
    Failed = "failed",
    Skipped = "skipped",
});

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

impl StepRecord {
    /// A step that has not started.
    pub fn pending(seq: usize, id: &str) -> StepRecord {
        StepRecord {
            id: id.to_owned(),
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
        }
    }
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
    /// What a classifying playbook's run decided (see `classification:`).
    pub classification: Option<crate::playbook::Classified>,
}

/// What a plugin logged during one step, kept with the run. At most
/// [`StepLogs::MAX_LINES`] lines are kept; the rest are counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepLogs {
    pub lines: Vec<LogLine>,
    pub dropped: u64,
}

impl StepLogs {
    pub const MAX_LINES: usize = 500;

    /// Keeps what fits, counts the rest.
    pub fn extend(&mut self, lines: impl IntoIterator<Item = LogLine>) {
        for line in lines {
            if self.lines.len() < Self::MAX_LINES {
                self.lines.push(line);
            } else {
                self.dropped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_strictly() {
        for status in [
            StepStatus::Pending,
            StepStatus::Running,
            StepStatus::Waiting,
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Skipped,
        ] {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert_eq!("waiting".parse(), Ok(RunStatus::Waiting));
        insta::assert_snapshot!("Succeeded".parse::<StepStatus>().unwrap_err(), @"`Succeeded` is not a step status");
        insta::assert_snapshot!("".parse::<RunStatus>().unwrap_err(), @"`` is not a run status");
    }

    #[test]
    fn step_logs_keep_a_bounded_number_of_lines_and_count_the_rest() {
        let line = |n: usize| LogLine {
            level: "info".into(),
            context: String::new(),
            message: format!("line {n}"),
            at: String::new(),
        };
        let mut logs = StepLogs::default();
        logs.extend((0..StepLogs::MAX_LINES + 7).map(line));
        assert_eq!(logs.lines.len(), StepLogs::MAX_LINES);
        assert_eq!(logs.dropped, 7);
        assert_eq!(logs.lines.last(), Some(&line(StepLogs::MAX_LINES - 1)));
    }
}
