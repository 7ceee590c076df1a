//! One call: the checks before the plugin runs (configured, a known action,
//! input that fits the schema), the run under its deadline, and what stopped
//! it if it did not return.

use std::time::{Duration, Instant};

use aerie_contract::{LogLine, RequestRecord};
use serde_json::Value;

use super::instance::MAX_RESOURCES;
use super::pool::Warm;
use super::{CallReport, Plugin};
use crate::bindings::{ErrorCode, PluginError};
use crate::error::{CallError, Fault};
use crate::state::CallState;

/// `scheme://host[:port]` of a URL the broker sent to.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

impl Plugin {
    /// Runs `action` on `input`, in a fresh instance (or a warm one, for a
    /// plugin that reuses instances).
    pub async fn call(&self, action: &str, input: &Value) -> CallReport {
        let started = Instant::now();
        let (result, requests, logs) = match self.check(action, input) {
            Err(fault) => (Err(fault), Vec::new(), Vec::new()),
            Ok(()) => self.run(action, input).await,
        };
        let elapsed = started.elapsed();
        self.observe(action, &result, &requests, elapsed);
        CallReport {
            result: result.map_err(|fault| CallError {
                plugin: self.manifest.name.clone(),
                action: action.to_owned(),
                fault,
            }),
            requests,
            logs,
            elapsed,
        }
    }

    /// The call's time, its fault and its requests, for `/metrics`. A
    /// refused request is counted without its origin: a hostile plugin picks
    /// that, and would grow the metrics without bound.
    fn observe(
        &self,
        action: &str,
        result: &Result<Value, Fault>,
        requests: &[RequestRecord],
        elapsed: Duration,
    ) {
        let plugin = self.manifest.name.clone();
        metrics::histogram!(
            "aerie_plugin_call_seconds",
            "plugin" => plugin.clone(),
            "action" => action.to_owned(),
        )
        .record(elapsed.as_secs_f64());
        if let Err(fault) = result {
            metrics::counter!(
                "aerie_plugin_faults_total",
                "plugin" => plugin.clone(),
                "kind" => fault.kind(),
            )
            .increment(1);
        }
        for request in requests {
            let (outcome, origin) = match &request.refused {
                Some(_) => ("refused", String::new()),
                None => ("sent", origin(&request.url)),
            };
            metrics::counter!(
                "aerie_broker_requests_total",
                "plugin" => plugin.clone(),
                "origin" => origin,
                "outcome" => outcome,
            )
            .increment(1);
        }
    }

    /// What refuses the call before the plugin runs: a secret that cannot be
    /// read, an action the plugin does not offer, input its schema rejects.
    fn check(&self, action: &str, input: &Value) -> Result<(), Fault> {
        if let Some(why) = &self.unconfigured {
            return Err(Fault::Unconfigured(why.clone()));
        }
        let Some(validator) = self.validators.get(action) else {
            let offered = self
                .actions
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Fault::UnknownAction {
                action: action.to_owned(),
                offered,
            });
        };
        match validator.iter_errors(input).next() {
            None => Ok(()),
            Some(problem) => {
                let at = problem.instance_path.to_string();
                let at = if at.is_empty() {
                    "input".to_owned()
                } else {
                    format!("input{at}")
                };
                Err(Fault::InvalidInput(format!("{at}: {problem}")))
            }
        }
    }

    /// Runs the plugin under its deadline; returns its result with the
    /// requests it made and the lines it logged.
    async fn run(
        &self,
        action: &str,
        input: &Value,
    ) -> (Result<Value, Fault>, Vec<RequestRecord>, Vec<LogLine>) {
        let (mut store, journal, instance) = match self.take_warm() {
            Some(warm) => (warm.store, warm.journal, Some(warm.instance)),
            None => match self.new_store() {
                Ok((store, journal)) => (store, journal, None),
                Err(e) => return (Err(Fault::Host(format!("{e:#}"))), Vec::new(), Vec::new()),
            },
        };
        let input_text = input.to_string();
        let outcome = {
            let run = async {
                let instance = match instance {
                    Some(instance) => instance,
                    None => self.pre.instantiate_async(&mut store).await?,
                };
                let result = instance
                    .aerie_plugin_plugin()
                    .call_invoke(&mut store, action, &input_text)
                    .await?;
                Ok::<_, wasmtime::Error>((result, instance))
            };
            // Epoch interruption stops a guest burning CPU; this stops one
            // waiting on the network past its deadline.
            tokio::time::timeout(Duration::from_millis(self.limits.timeout_ms), run).await
        };
        let journal_records =
            std::mem::take(&mut *journal.lock().unwrap_or_else(|e| e.into_inner()));
        let logs = std::mem::take(&mut store.data_mut().logs);
        let over_budget = store.data().budget.exceeded();
        let result = match (outcome, over_budget) {
            (Err(_elapsed), _) => Err(Fault::Deadline(self.limits.timeout_ms)),
            // Whatever the guest made of the refusal, the budget is the cause.
            (Ok(_), Some(exceeded)) => Err(Fault::HostMemory(exceeded.to_string())),
            (Ok(Err(trap)), None) => Err(self.classify_trap(&trap, store.data())),
            (Ok(Ok((returned, instance))), None) => {
                // A call that returned, even with its own error, leaves the
                // instance sound; one that trapped or timed out does not.
                self.keep_warm(Warm {
                    store,
                    instance,
                    journal,
                });
                match returned {
                    Err(reported) => {
                        Err(self.reported(reported, journal_records.refusal.as_deref()))
                    }
                    Ok(text) => serde_json::from_str::<Value>(&text)
                        .map(|output| self.redactor.redact_json(output))
                        .map_err(|e| Fault::Reported {
                            code: aerie_contract::ErrorCode::Internal,
                            message: format!("the plugin's output is not JSON: {e}"),
                            retryable: false,
                        }),
                }
            }
        };
        (result, journal_records.records(), logs)
    }

    /// Says what stopped the guest: the memory cap, the deadline, a stack
    /// overflow, a panic (its message comes from the guest's stderr) or another
    /// trap.
    pub(super) fn classify_trap(&self, err: &wasmtime::Error, state: &CallState) -> Fault {
        if state.limiter.hit {
            return Fault::Memory(self.limits.memory_mb);
        }
        if let Some(wasmtime::component::ResourceTableError::Full) =
            err.downcast_ref::<wasmtime::component::ResourceTableError>()
        {
            return Fault::HostMemory(format!(
                "the plugin held more than {MAX_RESOURCES} host resources (header sets, requests, streams) at once"
            ));
        }
        match err.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => Fault::Deadline(self.limits.timeout_ms),
            Some(wasmtime::Trap::StackOverflow) => Fault::StackOverflow,
            // Languages with a shadow stack in linear memory (Rust, C) overflow
            // it into an out-of-bounds access rather than a wasm stack overflow.
            Some(wasmtime::Trap::MemoryOutOfBounds) => Fault::Trap(
                "out-of-bounds memory access (a plugin bug; unbounded recursion overflows the stack this way)"
                    .to_owned(),
            ),
            trap => {
                let stderr = state.stderr.contents();
                match panic_message(&String::from_utf8_lossy(&stderr)) {
                    Some(message) => Fault::Panic(self.redactor.redact(&message)),
                    None => {
                        let what = trap.map_or_else(|| format!("{err}"), |t| t.to_string());
                        Fault::Trap(self.redactor.redact(what.lines().next().unwrap_or_default()))
                    }
                }
            }
        }
    }

    /// The plugin's own error. When the broker refused a request during the call,
    /// the refusal is the real cause and is reported as `denied` with the rule.
    fn reported(&self, err: PluginError, refusal: Option<&str>) -> Fault {
        if let Some(refusal) = refusal {
            return Fault::Denied(self.redactor.redact(refusal));
        }
        Fault::Reported {
            code: code_of(err.code),
            message: self.redactor.redact(&err.message),
            retryable: err.retryable,
        }
    }
}

/// The contract's error code for the one the WIT bindings generated.
fn code_of(code: ErrorCode) -> aerie_contract::ErrorCode {
    use aerie_contract::ErrorCode as Code;
    match code {
        ErrorCode::InvalidInput => Code::InvalidInput,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Unauthorized => Code::Unauthorized,
        ErrorCode::RateLimited => Code::RateLimited,
        ErrorCode::Upstream => Code::Upstream,
        ErrorCode::Timeout => Code::Timeout,
        ErrorCode::Denied => Code::Denied,
        ErrorCode::Internal => Code::Internal,
    }
}

/// Rust's panic report on stderr is `thread '…' panicked at FILE:LINE:COL:`
/// followed by the message; returns `MESSAGE (at FILE:LINE:COL)`.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines();
    let header = lines.find(|l| l.contains("panicked at"))?;
    let location = header
        .split("panicked at")
        .nth(1)?
        .trim()
        .trim_end_matches(':');
    let message = lines.next().unwrap_or("").trim();
    Some(format!("{message} (at {location})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_panic_message_and_location() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:5:\nboom: bad input\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "boom: bad input (at src/lib.rs:12:5)"
        );
        assert_eq!(panic_message("just noise"), None);
    }
}
