//! The built-in `case.*` actions: called like a plugin's (`uses:
//! case.create`, `with: {...}`), made by the host over its store. A change a
//! run makes is made by `run:ID` and at most once per step and item, so a
//! resumed run does not open a second case.

use std::collections::BTreeSet;
use std::time::Duration;

use aerie_engine::{CallSite, ErrorCode, PluginCall, StepError, epoch_ms};
use aerie_store::{
    CaseChange, CaseError, CaseUpdate, Dedupe, Find, NewCase, Observable, Store, StoreError,
    Strategy, WindowFrom,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The plugin name the actions are called under.
pub const NAME: &str = "case";

/// The actions, as a playbook names them.
pub const ACTIONS: &[&str] = &[
    "create", "update", "comment", "task", "link", "close", "find",
];

/// The actions' names, for validating playbooks.
pub fn actions() -> BTreeSet<String> {
    ACTIONS.iter().map(|a| (*a).to_owned()).collect()
}

/// Calls `case.ACTION` with `input`, from `site`.
pub async fn call(store: &Store, site: CallSite<'_>, action: &str, input: &Value) -> PluginCall {
    let result = match action {
        "find" => find(store, input).await,
        _ => make(store, site, action, input).await,
    };
    PluginCall {
        result,
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
) -> Result<Value, StepError> {
    let change = change(action, input, site.run_id)?;
    let by = format!("run:{}", site.run_id);
    store
        .change_case(change, &by, Some(&site.origin()))
        .await
        .map_err(store_error)
}

fn invalid(message: impl Into<String>) -> StepError {
    StepError::new(ErrorCode::InvalidInput, message)
}

fn store_error(e: StoreError) -> StepError {
    match &e {
        StoreError::Case(CaseError::Unknown(_) | CaseError::UnknownTask { .. }) => {
            StepError::new(ErrorCode::NotFound, e.to_string())
        }
        StoreError::Case(_) => invalid(e.to_string()),
        _ => StepError {
            code: ErrorCode::Internal,
            message: format!("the store: {e}"),
            retryable: true,
        },
    }
}

fn parse<T: DeserializeOwned>(action: &str, input: &Value) -> Result<T, StepError> {
    serde_json::from_value(input.clone()).map_err(|e| invalid(format!("case.{action}: {e}")))
}

fn duration(field: &str, text: &str) -> Result<Duration, StepError> {
    humantime::parse_duration(text).map_err(|e| {
        invalid(format!(
            "`{field}: {text}` is not a duration (5m, 1h, 7d): {e}"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    title: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    assignee: Option<String>,
    #[serde(default)]
    observables: Vec<Observable>,
    dedupe: Option<DedupeInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DedupeInput {
    key: String,
    window: String,
    window_from: Option<String>,
    strategy: Option<String>,
    fields: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    id: String,
    title: Option<String>,
    severity: Option<String>,
    /// Present and null unassigns; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    tags: Option<Vec<String>>,
    description: Option<String>,
    #[serde(default)]
    observables: Vec<Observable>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Comment {
    id: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Task {
    id: String,
    /// A new task's title, or:
    title: Option<String>,
    /// the number of the task to mark `done`.
    task: Option<i64>,
    #[serde(default = "yes")]
    done: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    id: String,
    to: String,
    kind: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Close {
    id: String,
    resolution: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindInput {
    id: Option<String>,
    key: Option<String>,
    observable: Option<Observable>,
    #[serde(rename = "type")]
    kind: Option<String>,
    closed_within: Option<String>,
}

/// The change `case.ACTION` asks for.
fn change(action: &str, input: &Value, run_id: &str) -> Result<CaseChange, StepError> {
    Ok(match action {
        "create" => {
            let create: Create = parse(action, input)?;
            let fields = json!({ "title": create.title, "observables": create.observables });
            let dedupe = create.dedupe.map(|d| dedupe(d, fields)).transpose()?;
            CaseChange::Create {
                case: NewCase {
                    title: create.title,
                    kind: create.kind,
                    severity: create.severity,
                    description: create.description,
                    tags: create.tags,
                    assignee: create.assignee,
                    observables: create.observables,
                    run_id: Some(run_id.to_owned()),
                },
                dedupe,
                now_ms: epoch_ms(),
            }
        }
        "update" => {
            let update: Update = parse(action, input)?;
            CaseChange::Update {
                id: update.id,
                update: CaseUpdate {
                    title: update.title,
                    severity: update.severity,
                    assignee: update.assignee,
                    tags: update.tags,
                    description: update.description,
                    observables: update.observables,
                },
            }
        }
        "comment" => {
            let comment: Comment = parse(action, input)?;
            CaseChange::Comment {
                id: comment.id,
                text: comment.text,
            }
        }
        "task" => match parse::<Task>(action, input)? {
            Task {
                id,
                title: Some(title),
                task: None,
                ..
            } => CaseChange::AddTask { id, title },
            Task {
                id,
                title: None,
                task: Some(task),
                done,
            } => CaseChange::Task { id, task, done },
            _ => {
                return Err(invalid(
                    "case.task: give `title` to add a task, or `task` (its number) to mark it `done`",
                ));
            }
        },
        "link" => {
            let link: Link = parse(action, input)?;
            CaseChange::Link {
                a: link.id,
                b: link.to,
                kind: link.kind.unwrap_or_else(|| "linked".to_owned()),
                reason: link.reason,
            }
        }
        "close" => {
            let close: Close = parse(action, input)?;
            CaseChange::Close {
                id: close.id,
                resolution: close.resolution,
            }
        }
        other => {
            return Err(StepError::new(
                ErrorCode::NotFound,
                format!(
                    "`case.{other}` is not a built-in action: use case.{}",
                    ACTIONS.join(", case.")
                ),
            ));
        }
    })
}

fn dedupe(input: DedupeInput, fields: Value) -> Result<Dedupe, StepError> {
    let window = duration("dedupe.window", &input.window)?;
    let from = match input.window_from.as_deref() {
        None | Some("first") => WindowFrom::First,
        Some("last") => WindowFrom::Last,
        Some(other) => {
            return Err(invalid(format!(
                "`dedupe.window_from: {other}`: use first (a fixed window) or last (a sliding gap)"
            )));
        }
    };
    // Folding into a comment loses nothing, so it is the default.
    let strategy = match input.strategy.as_deref() {
        None => Strategy::DropAndComment,
        Some(name) => name
            .parse()
            .map_err(|e: CaseError| invalid(e.to_string()))?,
    };
    Ok(Dedupe {
        key: input.key,
        window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        from,
        strategy,
        fields: input.fields.unwrap_or(fields),
    })
}

async fn find(store: &Store, input: &Value) -> Result<Value, StepError> {
    let input: FindInput = parse("find", input)?;
    let find = match (input.id, input.key, input.observable) {
        (Some(id), None, None) => Find::Id(id),
        (None, Some(key), None) => Find::Key(key),
        (None, None, Some(observable)) => Find::Observable {
            observable,
            kind: input.kind,
            closed_within_ms: input
                .closed_within
                .map(|w| duration("closed_within", &w))
                .transpose()?
                .map(|w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX)),
            now_ms: epoch_ms(),
        },
        _ => {
            return Err(invalid(
                "case.find: give one of `id`, `key` (a dedupe key) or `observable: {kind, value}`",
            ));
        }
    };
    let cases = store.find_cases(&find).await.map_err(store_error)?;
    Ok(json!({ "found": cases.len(), "cases": cases }))
}
