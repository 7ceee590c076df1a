//! The playbook's YAML read into the typed model, step by step and collecting
//! every problem with its position, so one typo never hides the rest.
//!
//! A step that cannot be typed (no kind, two kinds, a malformed `uses`) is
//! left out and its id remembered, so validation does not report references
//! to it as well.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use marked_yaml::Node;
use serde_json::Value;

use super::classification::{ClassificationSpec, LabelSource};
use super::inputs::{InputSpec, InputType};
use super::step::{
    ApprovalSpec, Call, ForEach, OnError, OnTimeout, Retry, SetValue, Step, StepKind, Switch,
    Templated, Uses,
};
use super::trigger::{Missed, Overlap, Schedule, Trigger, TriggerDedupe, WindowFrom};
use super::yaml::{self, Fields, Reporter, at, templated};
use super::{PlaybookError, PlaybookParts};

const TOP: &[&str] = &[
    "name",
    "description",
    "inputs",
    "trigger",
    "steps",
    "output",
    "classification",
];
const STEP: &[&str] = &[
    "id",
    "if",
    "on_error",
    "uses",
    "with",
    "for_each",
    "concurrency",
    "retry",
    "timeout",
    "set",
    "log",
    "approval",
    "fail",
    "switch",
    "cases",
    "default",
    "parallel",
    "playbook",
];
/// The keys that say what a step is; a step has exactly one.
const KINDS: &[&str] = &[
    "uses", "set", "log", "approval", "fail", "switch", "parallel", "playbook",
];

/// Reads `source`; what could not be read is in the errors.
pub(super) fn read(file: &Path, source: &str) -> (PlaybookParts, Vec<PlaybookError>) {
    let mut reader = Reader {
        report: Reporter {
            file,
            errors: Vec::new(),
        },
        unreadable: BTreeSet::new(),
    };
    let parts = match yaml::parse(file, source) {
        Ok(root) => reader.playbook(&root),
        Err(e) => {
            reader.report.errors.push(e);
            PlaybookParts::default()
        }
    };
    (
        PlaybookParts {
            unreadable: reader.unreadable,
            ..parts
        },
        reader.report.errors,
    )
}

struct Reader<'a> {
    report: Reporter<'a>,
    unreadable: BTreeSet<String>,
}

impl Reader<'_> {
    fn playbook(&mut self, root: &Node) -> PlaybookParts {
        let Some(top) = self.report.mapping(root, "playbook", TOP) else {
            return PlaybookParts::default();
        };
        let name = match top.get("name") {
            Some(node) => self.report.string(node, "name").unwrap_or_default(),
            None => {
                self.report.error(top.at, "missing field `name`");
                String::new()
            }
        };
        let steps = match top.get("steps") {
            Some(node) => self.block(node, "steps", false),
            None => {
                self.report.error(top.at, "missing field `steps`");
                Vec::new()
            }
        };
        PlaybookParts {
            name,
            description: top
                .get("description")
                .and_then(|node| self.report.string(node, "description"))
                .unwrap_or_default(),
            inputs: top
                .get("inputs")
                .map(|node| self.inputs(node))
                .unwrap_or_default(),
            trigger: top.get("trigger").and_then(|node| self.trigger(node, &top)),
            steps,
            output: top.get("output").map(templated).unwrap_or_default(),
            classification: top
                .get("classification")
                .and_then(|node| self.classification(node)),
            unreadable: BTreeSet::new(),
        }
    }

    fn classification(&mut self, node: &Node) -> Option<ClassificationSpec> {
        let whose = "classification";
        let f = self.report.mapping(
            node,
            whose,
            &[
                "label",
                "probability",
                "decided_by",
                "text",
                "labels",
                "labels_from",
            ],
        )?;
        let mut text = |field: &str| {
            f.get(field)
                .and_then(|n| self.report.text(n, &format!("{whose}: {field}")))
        };
        let (label, probability, decided_by, classified) = (
            text("label"),
            text("probability"),
            text("decided_by"),
            text("text"),
        );
        if f.get("label").is_none() {
            self.report
                .error(f.at, format!("{whose}: missing field `label`"));
        }
        let labels = match f.get("labels") {
            Some(n) => self
                .report
                .texts(n, &format!("{whose}: labels"))
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.text)
                .collect(),
            None => Vec::new(),
        };
        let mut labels_from = Vec::new();
        if let Some(n) = f.get("labels_from") {
            for source in self
                .report
                .texts(n, &format!("{whose}: labels_from"))
                .unwrap_or_default()
            {
                match source.text.split_once('.') {
                    Some((plugin, action)) if !plugin.is_empty() && !action.is_empty() => {
                        labels_from.push(LabelSource {
                            plugin: plugin.to_owned(),
                            action: action.to_owned(),
                            at: source.at,
                        });
                    }
                    _ => self.report.error(
                        source.at,
                        format!(
                            "{whose}: labels_from: `{}` must be plugin.action",
                            source.text
                        ),
                    ),
                }
            }
        }
        Some(ClassificationSpec {
            label: label?,
            probability,
            decided_by,
            text: classified,
            labels,
            labels_from,
        })
    }

    fn inputs(&mut self, node: &Node) -> BTreeMap<String, InputSpec> {
        let Some(map) = node.as_mapping() else {
            self.report
                .error(at(node), "inputs: expected a mapping of name → spec");
            return BTreeMap::new();
        };
        let mut inputs = BTreeMap::new();
        for (key, spec) in map.iter() {
            let whose = format!("input `{}`", key.as_str());
            let Some(f) = self.report.mapping(
                spec,
                &whose,
                &["type", "required", "default", "description"],
            ) else {
                continue;
            };
            let spec = InputSpec {
                kind: f
                    .get("type")
                    .and_then(|n| {
                        self.report
                            .word(n, &format!("{whose}: type"), &InputType::ALL)
                    })
                    .unwrap_or_default(),
                required: f
                    .get("required")
                    .and_then(|n| self.report.boolean(n, &format!("{whose}: required")))
                    .unwrap_or(false),
                default: f.get("default").map(|n| templated(n).value),
                description: f
                    .get("description")
                    .and_then(|n| self.report.string(n, &format!("{whose}: description")))
                    .unwrap_or_default(),
            };
            inputs.insert(key.as_str().to_owned(), spec);
        }
        inputs
    }

    fn trigger(&mut self, node: &Node, top: &Fields<'_>) -> Option<Trigger> {
        let key_at = top.key_at("trigger");
        let f = self
            .report
            .mapping(node, "trigger", &["manual", "webhook", "mail", "cron"])?;
        let given: Vec<&str> = f.present().collect();
        let [kind] = given.as_slice() else {
            if !given.is_empty() || f.is_empty() {
                self.report.error(
                    key_at,
                    "trigger: give exactly one of `manual`, `webhook`, `mail` or `cron`",
                );
            }
            return None;
        };
        let value = f.get(kind)?;
        let trigger = match *kind {
            "manual" => {
                self.report.mapping(value, "trigger: manual", &[])?;
                Trigger::Manual
            }
            "webhook" => self.webhook(value)?,
            "mail" => Trigger::Mail {
                mailbox: self.required(value, "trigger: mail", "mailbox")?,
            },
            _ => Trigger::Cron(self.cron(value)?),
        };
        if let Err(why) = trigger.check() {
            self.report.error(key_at, format!("trigger: {why}"));
        }
        Some(trigger)
    }

    /// `"*/5 * * * *"`, or `{ schedule, tz, missed, overlap }`.
    fn cron(&mut self, node: &Node) -> Option<Schedule> {
        if node.as_mapping().is_none() {
            return Some(Schedule::every(&self.report.string(node, "trigger: cron")?));
        }
        let f = self.report.mapping(
            node,
            "trigger: cron",
            &["schedule", "tz", "missed", "overlap"],
        )?;
        let Some(spec) = f.get("schedule") else {
            self.report
                .error(f.at, "trigger: cron: missing field `schedule`");
            return None;
        };
        let mut schedule = Schedule::every(&self.report.string(spec, "trigger: cron: schedule")?);
        if let Some(tz) = f.get("tz") {
            schedule.tz = Some(self.report.string(tz, "trigger: cron: tz")?);
        }
        if let Some(missed) = f.get("missed") {
            schedule.missed = self
                .report
                .word(missed, "trigger: cron: missed", &Missed::ALL)?;
        }
        if let Some(overlap) = f.get("overlap") {
            schedule.overlap =
                self.report
                    .word(overlap, "trigger: cron: overlap", &Overlap::ALL)?;
        }
        Some(schedule)
    }

    /// `{ name: alerts, headers: [X-GitHub-Event] }`.
    fn webhook(&mut self, node: &Node) -> Option<Trigger> {
        let f = self
            .report
            .mapping(node, "trigger: webhook", &["name", "headers", "dedupe"])?;
        let Some(name) = f.get("name") else {
            self.report
                .error(f.at, "trigger: webhook: missing field `name`");
            return None;
        };
        let name = self.report.string(name, "trigger: webhook: name")?;
        let headers = match f.get("headers") {
            Some(node) => self
                .report
                .texts(node, "trigger: webhook: headers")?
                .into_iter()
                .map(|t| t.text.to_ascii_lowercase())
                .collect(),
            None => Vec::new(),
        };
        let dedupe = match f.get("dedupe") {
            Some(node) => Some(self.trigger_dedupe(node)?),
            None => None,
        };
        Some(Trigger::Webhook {
            name,
            headers,
            dedupe,
        })
    }

    /// `{ key, window, window_from }`.
    fn trigger_dedupe(&mut self, node: &Node) -> Option<TriggerDedupe> {
        let whose = "trigger: webhook: dedupe";
        let f = self
            .report
            .mapping(node, whose, &["key", "window", "window_from"])?;
        if f.get("key").is_none() || f.get("window").is_none() {
            self.report.error(
                f.at,
                format!("{whose}: give `key` (a template) and `window` (5m, say)"),
            );
        }
        // Each field read, so every problem is reported at once.
        let key = f
            .get("key")
            .and_then(|n| self.report.text(n, &format!("{whose}: key")));
        let window = f
            .get("window")
            .and_then(|n| self.report.duration(n, &format!("{whose}: window")));
        let from = match f.get("window_from") {
            Some(node) => {
                self.report
                    .word(node, &format!("{whose}: window_from"), &WindowFrom::ALL)
            }
            None => Some(WindowFrom::First),
        };
        Some(TriggerDedupe {
            key: key?,
            window: window?,
            from: from?,
        })
    }

    /// The one string field of a small mapping such as `{ mailbox: soc }`.
    fn required(&mut self, node: &Node, whose: &str, field: &'static str) -> Option<String> {
        let f = self.report.mapping(node, whose, &[field])?;
        match f.get(field) {
            Some(value) => self.report.string(value, &format!("{whose}: {field}")),
            None => {
                self.report
                    .error(f.at, format!("{whose}: missing field `{field}`"));
                None
            }
        }
    }

    fn block(&mut self, node: &Node, whose: &str, in_parallel: bool) -> Vec<Step> {
        let Some(items) = node.as_sequence() else {
            self.report
                .error(at(node), format!("{whose}: expected a list of steps"));
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.step(item, in_parallel))
            .collect()
    }

    fn step(&mut self, node: &Node, in_parallel: bool) -> Option<Step> {
        let Some(map) = node.as_mapping() else {
            self.report
                .error(at(node), "a step is a mapping (id, uses, with, ...)");
            return None;
        };
        // The id first, so every other message can name the step.
        let Some(id_node) = map.get_node("id") else {
            self.report.error(at(node), "a step needs an `id`");
            return None;
        };
        let id = self.report.string(id_node, "step id")?;
        let whose = format!("step `{id}`");
        let f = self.report.mapping(node, &whose, STEP)?;
        let id_at = f.key_at("id");
        if !valid_id(&id) {
            self.report.error(
                id_at,
                format!("step id `{id}` must be letters, digits, `_` or `-`"),
            );
        }
        let condition = f
            .get("if")
            .and_then(|n| self.report.text(n, &format!("{whose}: if")));
        let on_error = f
            .get("on_error")
            .and_then(|n| {
                self.report.word(
                    n,
                    &format!("{whose}: on_error"),
                    &[("fail", OnError::Fail), ("continue", OnError::Continue)],
                )
            })
            .unwrap_or_default();

        let kinds: Vec<&str> = f.present().filter(|k| KINDS.contains(k)).collect();
        let [kind_name] = kinds.as_slice() else {
            self.report.error(
                id_at,
                format!("{whose}: give exactly one of `uses`, `set`, `log`, `approval`, `fail`, `switch`, `parallel` or `playbook`"),
            );
            self.unreadable.insert(id);
            return None;
        };
        for field in f.present() {
            if let Some(owners) = owners(field)
                && !owners.contains(kind_name)
            {
                let owners = owners
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                self.report.error(
                    f.key_at(field),
                    format!("{whose}: `{field}` belongs to a {owners} step"),
                );
            }
        }
        if in_parallel && matches!(*kind_name, "switch" | "parallel" | "approval") {
            self.report.error(
                id_at,
                format!("{whose}: a step inside `parallel` is a `uses`, `set`, `log`, `fail` or `playbook` step"),
            );
            self.unreadable.insert(id);
            return None;
        }
        let Some(kind) = self.kind(kind_name, &f, &whose) else {
            self.unreadable.insert(id);
            return None;
        };
        Some(Step {
            id,
            at: id_at,
            condition,
            on_error,
            kind,
        })
    }

    fn kind(&mut self, kind: &str, f: &Fields<'_>, whose: &str) -> Option<StepKind> {
        let node = f.get(kind)?;
        let what = format!("{whose}: {kind}");
        Some(match kind {
            "uses" => StepKind::Uses(self.uses(node, f, whose)?),
            "set" => StepKind::Set(SetValue {
                value: templated(node),
                for_each: f
                    .get("for_each")
                    .and_then(|n| self.report.text(n, &format!("{whose}: for_each"))),
            }),
            "log" => StepKind::Log(self.report.text(node, &what)?),
            "fail" => StepKind::Fail(self.report.text(node, &what)?),
            "approval" => StepKind::Approval(self.approval(node, &what)?),
            "switch" => StepKind::Switch(Switch {
                on: self.report.text(node, &what)?,
                cases: self.cases(f, whose),
                default: f
                    .get("default")
                    .map(|n| self.block(n, &format!("{whose}: default"), false))
                    .unwrap_or_default(),
            }),
            "parallel" => StepKind::Parallel(self.block(node, &what, true)),
            _ => StepKind::Playbook(Call {
                playbook: self.report.text(node, &what)?,
                with: with(f),
            }),
        })
    }

    fn uses(&mut self, node: &Node, f: &Fields<'_>, whose: &str) -> Option<Uses> {
        let uses = self.report.text(node, &format!("{whose}: uses"))?;
        let Some((plugin, action)) = uses
            .text
            .split_once('.')
            .filter(|(p, a)| !p.is_empty() && !a.is_empty() && !a.contains('.'))
        else {
            self.report.error(
                f.key_at("uses"),
                format!("{whose}: `uses: {}` must be plugin.action", uses.text),
            );
            return None;
        };
        let items = f
            .get("for_each")
            .and_then(|n| self.report.text(n, &format!("{whose}: for_each")));
        let concurrency = f
            .get("concurrency")
            .and_then(|n| self.report.count(n, &format!("{whose}: concurrency"), 1));
        if concurrency.is_some() && items.is_none() {
            self.report.error(
                f.key_at("concurrency"),
                format!("{whose}: `concurrency` needs `for_each`"),
            );
        }
        Some(Uses {
            plugin: plugin.to_owned(),
            action: action.to_owned(),
            at: f.key_at("uses"),
            with: with(f),
            for_each: items.map(|items| ForEach {
                items,
                concurrency: concurrency.unwrap_or(1),
            }),
            retry: f.get("retry").and_then(|n| self.retry(n, whose)),
            timeout: f
                .get("timeout")
                .and_then(|n| self.report.duration(n, &format!("{whose}: timeout"))),
        })
    }

    fn retry(&mut self, node: &Node, whose: &str) -> Option<Retry> {
        let whose = format!("{whose}: retry");
        let f = self
            .report
            .mapping(node, &whose, &["attempts", "backoff", "max_backoff"])?;
        let Some(attempts) = f.get("attempts") else {
            self.report
                .error(f.at, format!("{whose}: missing field `attempts`"));
            return None;
        };
        let attempts = self
            .report
            .count(attempts, &format!("{whose}: attempts"), 1);
        let mut duration = |field: &str, default| match f.get(field) {
            Some(n) => self.report.duration(n, &format!("{whose}: {field}")),
            None => Some(default),
        };
        let backoff = duration("backoff", Retry::DEFAULT_BACKOFF);
        let max_backoff = duration("max_backoff", Retry::DEFAULT_MAX_BACKOFF);
        Some(Retry {
            attempts: attempts?,
            backoff: backoff?,
            max_backoff: max_backoff?,
        })
    }

    fn approval(&mut self, node: &Node, whose: &str) -> Option<ApprovalSpec> {
        let f = self.report.mapping(
            node,
            whose,
            &["message", "approvers", "required", "timeout", "on_timeout"],
        )?;
        let message = match f.get("message") {
            Some(n) => self.report.text(n, &format!("{whose}: message")),
            None => {
                self.report
                    .error(f.at, format!("{whose}: missing field `message`"));
                None
            }
        };
        let approvers = match f.get("approvers") {
            Some(n) => match self.report.texts(n, &format!("{whose}: approvers")) {
                Some(list) if list.is_empty() => {
                    self.report
                        .error(at(n), format!("{whose}: approvers: name at least one"));
                    None
                }
                list => list,
            },
            None => {
                self.report
                    .error(f.at, format!("{whose}: missing field `approvers`"));
                None
            }
        };
        let required = match f.get("required") {
            Some(n) => self.report.count(n, &format!("{whose}: required"), 1),
            None => Some(1),
        };
        let timeout = match f.get("timeout") {
            Some(n) => Some(self.report.duration(n, &format!("{whose}: timeout"))?),
            None => None,
        };
        let on_timeout = match f.get("on_timeout") {
            Some(n) => self.report.word(
                n,
                &format!("{whose}: on_timeout"),
                &[
                    ("reject", OnTimeout::Reject),
                    ("approve", OnTimeout::Approve),
                ],
            ),
            None => Some(OnTimeout::Reject),
        };
        Some(ApprovalSpec {
            message: message?,
            approvers: approvers?,
            required: required?,
            timeout,
            on_timeout: on_timeout?,
        })
    }

    fn cases(&mut self, f: &Fields<'_>, whose: &str) -> BTreeMap<String, Vec<Step>> {
        let Some(node) = f.get("cases") else {
            return BTreeMap::new();
        };
        let Some(map) = node.as_mapping() else {
            self.report.error(
                at(node),
                format!("{whose}: cases: expected a mapping of value → steps"),
            );
            return BTreeMap::new();
        };
        map.iter()
            .map(|(key, branch)| {
                let steps = self.block(branch, &format!("{whose}: case `{}`", key.as_str()), false);
                (key.as_str().to_owned(), steps)
            })
            .collect()
    }
}

/// A step's `with`; `{}` when absent.
fn with(f: &Fields<'_>) -> Templated {
    f.get("with")
        .map(templated)
        .unwrap_or_else(|| Templated::literal(Value::Object(Default::default())))
}

/// The step kinds a kind-specific field belongs to.
fn owners(field: &str) -> Option<&'static [&'static str]> {
    match field {
        "with" => Some(&["uses", "playbook"]),
        "for_each" => Some(&["uses", "set"]),
        "concurrency" | "retry" | "timeout" => Some(&["uses"]),
        "cases" | "default" => Some(&["switch"]),
        _ => None,
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
