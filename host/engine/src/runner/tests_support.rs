//! A scripted plugin host and an in-memory store for the runner's tests.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aerie_contract::{ErrorCode, LogLine, RequestRecord};
use serde_json::Value;

use crate::plugins::{CallSite, PluginCall, Plugins};
use crate::run::{RunRecord, StepError, StepRecord};
use crate::store::{ApprovalRequest, ApprovalState, CallTrace, Lease, RunStore};

pub fn err(code: ErrorCode, retryable: bool) -> Result<Value, StepError> {
    Err(StepError {
        code,
        message: format!("{code} happened"),
        retryable,
    })
}

/// One scripted answer: after `delay`, `result`, having logged `logs` lines.
pub struct Answer {
    pub delay: Duration,
    pub result: Result<Value, StepError>,
    pub logs: usize,
}

impl From<(Duration, Result<Value, StepError>)> for Answer {
    fn from((delay, result): (Duration, Result<Value, StepError>)) -> Answer {
        Answer {
            delay,
            result,
            logs: 0,
        }
    }
}

/// Answers each call with the next scripted answer.
pub struct Scripted {
    answers: Mutex<Vec<Answer>>,
    pub calls: Mutex<Vec<Value>>,
    in_flight: AtomicUsize,
    /// The most calls that were running at once.
    pub most_at_once: AtomicUsize,
    /// The inputs of the calls that finished, in the order they finished.
    pub finished: Mutex<Vec<Value>>,
}

impl Scripted {
    pub fn new(answers: Vec<(Duration, Result<Value, StepError>)>) -> Self {
        Scripted::answering(answers.into_iter().map(Answer::from).collect())
    }

    pub fn answering(answers: Vec<Answer>) -> Self {
        Scripted {
            answers: Mutex::new(answers.into_iter().rev().collect()),
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            finished: Mutex::new(Vec::new()),
        }
    }
}

impl Plugins for Scripted {
    async fn call(
        &self,
        _site: CallSite<'_>,
        _plugin: &str,
        _action: &str,
        input: &Value,
    ) -> PluginCall {
        self.calls.lock().unwrap().push(input.clone());
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop()
            .expect("more calls than scripted");
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(answer.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.finished.lock().unwrap().push(input.clone());
        PluginCall {
            result: answer.result,
            plugin: None,
            requests: vec![RequestRecord {
                method: "GET".into(),
                url: "https://example.com/".into(),
                status: Some(200),
                bytes: 0,
                ms: 0,
                refused: None,
            }],
            logs: (0..answer.logs)
                .map(|n| LogLine {
                    level: "info".into(),
                    context: String::new(),
                    message: format!("line {n}"),
                    at: String::new(),
                })
                .collect(),
        }
    }
}

/// Keeps a line per write, as `step:status`, and what was traced.
#[derive(Default)]
pub struct Memory {
    pub events: Mutex<Vec<String>>,
    /// Per traced call: the step, the lines kept and the lines dropped.
    pub logs: Mutex<Vec<(String, usize, u64)>>,
}

impl Memory {
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl RunStore for Memory {
    type Error = std::convert::Infallible;

    async fn run_started(&self, _: &RunRecord, _: &str, _: &Lease) -> Result<(), Self::Error> {
        self.events.lock().unwrap().push("run.started".into());
        Ok(())
    }
    async fn renew_lease(&self, _: &str, _: &Lease) -> Result<bool, Self::Error> {
        Ok(true)
    }
    async fn claim(
        &self,
        _: &Lease,
        _: Option<&str>,
    ) -> Result<Option<(RunRecord, String)>, Self::Error> {
        Ok(None)
    }
    async fn step_updated(&self, _: &str, step: &StepRecord) -> Result<(), Self::Error> {
        self.events
            .lock()
            .unwrap()
            .push(format!("{}:{}#{}", step.id, step.status, step.attempts));
        Ok(())
    }
    async fn call_traced(&self, _: &str, trace: CallTrace<'_>) -> Result<(), Self::Error> {
        self.events.lock().unwrap().push(format!(
            "{}:requests:{}",
            trace.step,
            trace.requests.len()
        ));
        self.logs.lock().unwrap().push((
            trace.step.to_owned(),
            trace.logs.len(),
            trace.logs_dropped,
        ));
        Ok(())
    }
    async fn run_finished(&self, run: &RunRecord) -> Result<(), Self::Error> {
        self.events
            .lock()
            .unwrap()
            .push(format!("run.{}", run.status));
        Ok(())
    }
    async fn approval(
        &self,
        _: &str,
        _: &str,
        _: &ApprovalRequest,
    ) -> Result<ApprovalState, Self::Error> {
        Ok(ApprovalState::Pending)
    }
    async fn run_waiting(&self, _: &RunRecord) -> Result<(), Self::Error> {
        self.events.lock().unwrap().push("run.waiting".into());
        Ok(())
    }
}
