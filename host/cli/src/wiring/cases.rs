//! The built-in `case.*` actions: called like a plugin's (`uses:
//! case.create`, `with: {...}`), made by the host over its store. A change a
//! run makes is made by `run:ID` and at most once per step and item, so a
//! resumed run does not open a second case. What `with:` may hold is read by
//! [`aerie_store::cases::input`], the same reading `/api/v1/cases` uses.

use std::collections::BTreeSet;

use aerie_engine::{CallSite, ErrorCode, PluginCall, StepError, epoch_ms};
use aerie_store::cases::input;
use aerie_store::{CaseError, Store, StoreError};
use serde_json::{Value, json};

/// The plugin name the actions are called under.
pub const NAME: &str = "case";

/// The actions' names, for validating playbooks.
pub fn actions() -> BTreeSet<String> {
    input::ACTIONS
        .iter()
        .chain(&["find"])
        .map(|a| (*a).to_owned())
        .collect()
}

/// Calls `case.ACTION` with `input`, from `site`.
pub async fn call(store: &Store, site: CallSite<'_>, action: &str, input: &Value) -> PluginCall {
    let result = match action {
        "find" => find(store, input).await,
        _ => make(store, site, action, input).await,
    };
    PluginCall {
        result: result.map_err(|e| step_error(action, e)),
        plugin: None,
        requests: Vec::new(),
        logs: Vec::new(),
    }
}

/// Makes the change `case.ACTION` asks for, once per call site.
async fn make(
    store: &Store,
    site: CallSite<'_>,
    action: &str,
    input: &Value,
) -> Result<Value, StoreError> {
    let change = input::change(action, input, Some(site.run_id), epoch_ms())?;
    let by = format!("run:{}", site.run_id);
    store.change_case(change, &by, Some(&site.origin())).await
}

async fn find(store: &Store, input: &Value) -> Result<Value, StoreError> {
    let find = input::find(input, epoch_ms())?;
    let cases = store.find_cases(&find).await?;
    Ok(json!({ "found": cases.len(), "cases": cases }))
}

/// Input errors are the playbook's to mend; an unknown case is `not-found`;
/// the store failing may pass, so it is retryable.
fn step_error(action: &str, e: StoreError) -> StepError {
    match &e {
        StoreError::Case(
            CaseError::Unknown(_) | CaseError::UnknownTask { .. } | CaseError::Action(_),
        ) => StepError::new(ErrorCode::NotFound, e.to_string()),
        StoreError::Case(CaseError::Input(message)) => {
            StepError::new(ErrorCode::InvalidInput, format!("case.{action}: {message}"))
        }
        StoreError::Case(_) => StepError::new(ErrorCode::InvalidInput, e.to_string()),
        _ => StepError {
            code: ErrorCode::Internal,
            message: format!("the store: {e}"),
            retryable: true,
        },
    }
}
