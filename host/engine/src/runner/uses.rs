//! `uses` steps: plugin calls with their timeout and retries, once or per
//! `for_each` item through a window of `concurrency` calls.
//!
//! One rule for every window size: after a failure that fails the run
//! (`on_error: fail`), no new item starts; the items in flight finish and are
//! recorded. Each attempt is counted and written before it starts, so a crash
//! mid-call still counts it.

use aerie_contract::ErrorCode;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::error::Stored as _;
use super::{Result, Runner};
use crate::playbook::{OnError, Step, Uses};
use crate::plugins::{CallSite, PluginCall, Plugins};
use crate::run::{StepError, StepLogs, StepRecord, StepStatus};
use crate::store::{CallTrace, RunStore};

/// A step's record while its calls run, shared by the items in flight.
struct Live {
    record: StepRecord,
    /// Log lines kept so far for the step (the cap is per step).
    logs_kept: usize,
}

impl<P: Plugins, S: RunStore> Runner<'_, P, S> {
    pub(super) async fn uses(
        &self,
        run_id: &str,
        step: &Step,
        uses: &Uses,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> Result<()> {
        let (inputs, items) = match &uses.for_each {
            None => {
                let Some(input) = self.render_input(run_id, &uses.with, ctx, record) else {
                    return Ok(());
                };
                record.input = input.clone();
                (vec![input], false)
            }
            Some(for_each) => {
                let Some(inputs) =
                    self.item_inputs(run_id, uses, &for_each.items.text, ctx, record)
                else {
                    return Ok(());
                };
                record.input = Value::Array(inputs.clone());
                (inputs, true)
            }
        };
        let window = uses.for_each.as_ref().map_or(1, |f| f.concurrency.max(1));
        let live = Mutex::new(Live {
            record: record.clone(),
            logs_kept: 0,
        });
        let calls = self
            .window(run_id, step, uses, &inputs, items, window as usize, &live)
            .await?;
        *record = live.into_inner().record;

        let mut outputs = Vec::with_capacity(calls.len());
        let mut first_error = None;
        for (index, call) in calls.into_iter().enumerate() {
            record.plugin = call.plugin.or(record.plugin.take());
            match call.result {
                Ok(output) => outputs.push(output),
                Err(e) => {
                    outputs.push(json!({ "error": { "code": e.code, "message": e.message } }));
                    let message = if items {
                        format!("item {index}: {}", e.message)
                    } else {
                        e.message.clone()
                    };
                    first_error.get_or_insert(StepError { message, ..e });
                }
            }
        }
        if items {
            if let Value::Array(inputs) = &mut record.input {
                inputs.truncate(outputs.len());
            }
            record.output = Value::Array(outputs);
        } else {
            let output = outputs.pop().unwrap_or(Value::Null);
            // Without `on_error: continue` a failed call has no output.
            if first_error.is_none() || step.on_error == OnError::Continue {
                record.output = output;
            }
        }
        match first_error {
            Some(e) => record.error = Some(e),
            None => record.status = StepStatus::Succeeded,
        }
        Ok(())
    }

    /// Each item's rendered input; on a template error, records it and gives
    /// nothing.
    fn item_inputs(
        &self,
        run_id: &str,
        uses: &Uses,
        items: &str,
        ctx: &Value,
        record: &mut StepRecord,
    ) -> Option<Vec<Value>> {
        let items = self.items(run_id, items, ctx, record)?;
        // One copy of the context for all items, not one per item.
        let mut item_ctx = ctx.clone();
        let mut inputs = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            item_ctx["item"] = item;
            item_ctx["index"] = json!(index);
            inputs.push(self.render_input(run_id, &uses.with, &item_ctx, record)?);
        }
        Some(inputs)
    }

    /// Calls the action for each input, up to `window` at once, in order of
    /// start; returns the calls of the items that started, in item order.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; the parts are unrelated"
    )]
    async fn window(
        &self,
        run_id: &str,
        step: &Step,
        uses: &Uses,
        inputs: &[Value],
        items: bool,
        window: usize,
        live: &Mutex<Live>,
    ) -> Result<Vec<PluginCall>> {
        let stop_at_error = step.on_error == OnError::Fail;
        let mut calls: Vec<Option<PluginCall>> = vec![None; inputs.len()];
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        let mut stopped = false;
        loop {
            while !stopped && running.len() < window && next < inputs.len() {
                let index = next;
                next += 1;
                let item = items.then_some(index);
                running.push(async move {
                    let call = self
                        .call(run_id, step, uses, item, &inputs[index], live)
                        .await;
                    (index, call)
                });
            }
            let Some((index, call)) = running.next().await else {
                break;
            };
            let call = call?;
            stopped |= stop_at_error && call.result.is_err();
            calls[index] = Some(call);
        }
        // The items that started are a prefix, and all of them finished.
        Ok(calls.into_iter().map_while(|call| call).collect())
    }

    /// One call of the action, with its timeout and retries; every attempt
    /// is counted and written before it starts, and its trace recorded after.
    async fn call(
        &self,
        run_id: &str,
        step: &Step,
        uses: &Uses,
        item: Option<usize>,
        input: &Value,
        live: &Mutex<Live>,
    ) -> Result<PluginCall> {
        let attempts = uses.retry.map_or(1, |r| r.attempts.max(1));
        let mut attempt = 1;
        loop {
            {
                let mut live = live.lock().await;
                live.record.attempts += 1;
                self.store
                    .step_updated(run_id, &live.record)
                    .await
                    .stored()?;
            }
            let site = CallSite {
                run_id,
                step: &step.id,
                item,
            };
            let called = self.plugins.call(site, &uses.plugin, &uses.action, input);
            let call = match uses.timeout {
                None => called.await,
                Some(limit) => match tokio::time::timeout(limit, called).await {
                    Ok(call) => call,
                    Err(_) => PluginCall::failed(StepError {
                        code: ErrorCode::Timeout,
                        message: format!(
                            "the step's {} timeout passed",
                            humantime::format_duration(limit)
                        ),
                        retryable: true,
                    }),
                },
            };
            let kept = {
                let mut live = live.lock().await;
                let kept = call
                    .logs
                    .len()
                    .min(StepLogs::MAX_LINES.saturating_sub(live.logs_kept));
                live.logs_kept += kept;
                kept
            };
            let trace = CallTrace {
                step: &step.id,
                item,
                plugin: &uses.plugin,
                requests: &call.requests,
                logs: &call.logs[..kept],
                logs_dropped: (call.logs.len() - kept) as u64,
            };
            self.store.call_traced(run_id, trace).await.stored()?;
            let retry = match (&call.result, uses.retry) {
                (Err(e), Some(retry)) if e.retryable && attempt < attempts => retry,
                _ => return Ok(call),
            };
            attempt += 1;
            let delay = retry.delay(attempt);
            tracing::info!(step = %step.id, attempt, "retrying in {}", humantime::format_duration(delay));
            tokio::time::sleep(delay).await;
        }
    }
}
