//! The JSON form of a case change: what `case.ACTION`'s `with:` and
//! `/api/v1/cases` take, read in one place so a playbook and an API caller
//! are held to the same rules and get the same messages.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{CaseChange, CaseError, CaseUpdate, Dedupe, Find, NewCase, Observable, Strategy};
use super::{WindowFrom, check_kinds};

/// The changes, as `case.ACTION` names them (`find` reads, so it is apart).
pub const ACTIONS: &[&str] = &["create", "update", "comment", "task", "link", "close"];

/// The change `action` asks for with `input`, judged at `now_ms`; `run` is
/// the run opening a case, if one is.
pub fn change(
    action: &str,
    input: &Value,
    run: Option<&str>,
    now_ms: i64,
) -> Result<CaseChange, CaseError> {
    Ok(match action {
        "create" => {
            let create: Create = parse(input)?;
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
                    run_id: run.map(str::to_owned),
                },
                dedupe,
                now_ms,
            }
        }
        "update" => {
            let update: Update = parse(input)?;
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
            let Comment { id, text } = parse(input)?;
            CaseChange::Comment { id, text }
        }
        "task" => match parse::<Task>(input)? {
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
                return Err(CaseError::Input(
                    "give `title` to add a task, or `task` (its number) to mark it `done`"
                        .to_owned(),
                ));
            }
        },
        "link" => {
            let link: Link = parse(input)?;
            CaseChange::Link {
                a: link.id,
                b: link.to,
                kind: link.kind.unwrap_or_else(|| "linked".to_owned()),
                reason: link.reason,
            }
        }
        "close" => {
            let Close {
                id,
                resolution,
                duplicate_of,
            } = parse(input)?;
            CaseChange::Close {
                id,
                resolution,
                duplicate_of,
            }
        }
        other => return Err(CaseError::Action(other.to_owned())),
    })
}

/// The cases `case.find`'s `input` looks for, judged at `now_ms`.
pub fn find(input: &Value, now_ms: i64) -> Result<Find, CaseError> {
    let input: FindInput = parse(input)?;
    match (input.id, input.key, input.observable) {
        (Some(id), None, None) if input.kind.is_none() && input.closed_within.is_none() => {
            Ok(Find::Id(id))
        }
        (None, Some(key), None) if input.kind.is_none() && input.closed_within.is_none() => {
            Ok(Find::Key(key))
        }
        (Some(_), None, None) | (None, Some(_), None) => Err(CaseError::Input(
            "`type` and `closed_within` narrow a search by `observable`; an `id` or a `key` names one case"
                .to_owned(),
        )),
        (None, None, Some(observable)) => {
            check_kinds(std::slice::from_ref(&observable))?;
            let closed_within_ms = input
                .closed_within
                .map(|w| duration("closed_within", &w))
                .transpose()?
                .map(millis);
            Ok(Find::Observable {
                observable,
                kind: input.kind,
                closed_within_ms,
                now_ms,
            })
        }
        _ => Err(CaseError::Input(
            "give one of `id`, `key` (a dedupe key) or `observable: {kind, value}`".to_owned(),
        )),
    }
}

fn parse<T: DeserializeOwned>(input: &Value) -> Result<T, CaseError> {
    T::deserialize(input).map_err(|e| CaseError::Input(e.to_string()))
}

fn duration(field: &str, text: &str) -> Result<Duration, CaseError> {
    humantime::parse_duration(text).map_err(|e| {
        CaseError::Input(format!(
            "`{field}: {text}` is not a duration (5m, 1h, 7d): {e}"
        ))
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn dedupe(input: DedupeInput, fields: Value) -> Result<Dedupe, CaseError> {
    let window = duration("dedupe.window", &input.window)?;
    let from = match input.window_from.as_deref() {
        None | Some("first") => WindowFrom::First,
        Some("last") => WindowFrom::Last,
        Some(other) => {
            return Err(CaseError::Input(format!(
                "`dedupe.window_from: {other}`: use first (a fixed window) or last (a sliding gap)"
            )));
        }
    };
    // Folding into a comment loses nothing, so it is the default.
    let strategy = match input.strategy.as_deref() {
        None => Strategy::DropAndComment,
        Some(name) => name.parse()?,
    };
    Ok(Dedupe {
        key: input.key,
        window_ms: millis(window),
        from,
        strategy,
        fields: input.fields.unwrap_or(fields),
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
    duplicate_of: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(action: &str, input: Value) -> String {
        match change(action, &input, None, 0) {
            Err(e) => e.to_string(),
            Ok(change) => panic!("case.{action} {input} was taken: {change:?}"),
        }
    }

    #[test]
    fn a_field_the_action_does_not_take_is_named() {
        let message = refused("comment", json!({ "id": "c", "text": "t", "txet": "" }));
        assert!(message.contains("unknown field `txet`"), "{message}");
    }

    #[test]
    fn a_dedupe_block_is_read_with_its_defaults() {
        let input = json!({ "title": "t", "type": "Investigation",
                            "dedupe": { "key": "k", "window": "5m" } });
        let Ok(CaseChange::Create {
            dedupe: Some(dedupe),
            ..
        }) = change("create", &input, Some("run-1"), 7)
        else {
            panic!("no dedupe read from {input}");
        };
        assert_eq!(dedupe.window_ms, 300_000);
        assert_eq!(dedupe.from, WindowFrom::First);
        assert_eq!(dedupe.strategy, Strategy::DropAndComment);
        let bad = json!({ "title": "t", "type": "x",
                          "dedupe": { "key": "k", "window": "5m", "strategy": "merge" } });
        assert!(refused("create", bad).contains("`merge` is not a dedupe strategy"));
        let bad = json!({ "title": "t", "type": "x", "dedupe": { "key": "k", "window": "soon" } });
        assert!(refused("create", bad).contains("`dedupe.window: soon` is not a duration"));
    }

    #[test]
    fn a_task_is_added_or_marked_never_both() {
        let both = json!({ "id": "c", "title": "call the user", "task": 1 });
        assert!(refused("task", both).contains("give `title` to add a task"));
        let mark = change("task", &json!({ "id": "c", "task": 2 }), None, 0).unwrap();
        assert!(matches!(
            mark,
            CaseChange::Task {
                task: 2,
                done: true,
                ..
            }
        ));
    }

    #[test]
    fn an_assignee_given_as_null_unassigns_and_one_left_out_stays() {
        let unassign = change("update", &json!({ "id": "c", "assignee": null }), None, 0);
        let keep = change("update", &json!({ "id": "c", "title": "x" }), None, 0);
        let assignee = |c| match c {
            Ok(CaseChange::Update { update, .. }) => update.assignee,
            other => panic!("{other:?}"),
        };
        assert_eq!(assignee(unassign), Some(None));
        assert_eq!(assignee(keep), None);
    }

    #[test]
    fn find_takes_one_way_of_naming_cases() {
        let key_and_type = json!({ "key": "k", "type": "Enrichment" });
        let message = find(&key_and_type, 0).unwrap_err().to_string();
        assert!(
            message.contains("narrow a search by `observable`"),
            "{message}"
        );
        let two = json!({ "id": "a", "key": "k" });
        assert!(
            find(&two, 0)
                .unwrap_err()
                .to_string()
                .contains("give one of")
        );
        let bad_kind = json!({ "observable": { "kind": "ipv4", "value": "1.2.3.4" } });
        assert!(
            find(&bad_kind, 0)
                .unwrap_err()
                .to_string()
                .contains("`ipv4` is not a kind of observable")
        );
        let recent = json!({ "observable": { "kind": "ip", "value": "1.2.3.4" },
                             "type": "Enrichment", "closed_within": "7d" });
        assert!(matches!(
            find(&recent, 1_000).unwrap(),
            Find::Observable {
                closed_within_ms: Some(604_800_000),
                now_ms: 1_000,
                ..
            }
        ));
    }

    #[test]
    fn an_unknown_action_names_the_ones_there_are() {
        let message = refused("reopen", json!({ "id": "c" }));
        assert!(message.contains("case.create"), "{message}");
    }
}
