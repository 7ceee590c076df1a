//! The playbook model, parsed from YAML, and its validation.
//!
//! Validation reports every problem at once, each as `file:line:column: message`
//! where a position is known.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::template::Templates;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// What starts the playbook. Checked here; the server serves webhook, mail
    /// and cron triggers. `aerie run` starts any playbook by hand.
    #[serde(default)]
    pub trigger: Option<Trigger>,
    pub steps: Vec<Step>,
    /// The run's output, rendered after the last step.
    #[serde(default)]
    pub output: Value,
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    source: String,
}

/// `trigger: { manual: {} }`, `{ webhook: { path: /hooks/phishing } }`,
/// `{ mail: { mailbox: soc } }` or `{ cron: "*/5 * * * *" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TriggerSpec")]
pub enum Trigger {
    Manual,
    Webhook {
        /// The URL path the server listens on, starting with `/`.
        path: String,
    },
    Mail {
        /// A mailbox name from aerie.toml.
        mailbox: String,
    },
    /// Five fields: minute, hour, day of month, month, day of week.
    Cron(String),
}

/// The YAML shape of a trigger: a map with exactly one of these keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerSpec {
    manual: Option<Empty>,
    webhook: Option<WebhookSpec>,
    mail: Option<MailSpec>,
    cron: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSpec {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailSpec {
    mailbox: String,
}

impl TryFrom<TriggerSpec> for Trigger {
    type Error = String;

    fn try_from(spec: TriggerSpec) -> Result<Trigger, String> {
        match spec {
            TriggerSpec {
                manual: Some(_),
                webhook: None,
                mail: None,
                cron: None,
            } => Ok(Trigger::Manual),
            TriggerSpec {
                manual: None,
                webhook: Some(w),
                mail: None,
                cron: None,
            } => Ok(Trigger::Webhook { path: w.path }),
            TriggerSpec {
                manual: None,
                webhook: None,
                mail: Some(m),
                cron: None,
            } => Ok(Trigger::Mail { mailbox: m.mailbox }),
            TriggerSpec {
                manual: None,
                webhook: None,
                mail: None,
                cron: Some(c),
            } => Ok(Trigger::Cron(c)),
            _ => Err("give exactly one of `manual`, `webhook`, `mail` or `cron`".to_owned()),
        }
    }
}

impl Trigger {
    fn check(&self) -> Result<(), String> {
        match self {
            Trigger::Manual | Trigger::Mail { .. } => Ok(()),
            Trigger::Webhook { path }
                if path.starts_with('/') && !path.contains(char::is_whitespace) =>
            {
                Ok(())
            }
            Trigger::Webhook { path } => Err(format!(
                "webhook path `{path}` must start with `/` and have no spaces"
            )),
            Trigger::Cron(spec) => {
                let fields: Vec<&str> = spec.split_whitespace().collect();
                let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
                if fields.len() != 5 {
                    return Err(format!(
                        "cron `{spec}` needs 5 fields (minute hour day month weekday)"
                    ));
                }
                for (field, (low, high)) in fields.iter().zip(ranges) {
                    cron_field(field, low, high)
                        .map_err(|why| format!("cron `{spec}`: `{field}` {why}"))?;
                }
                Ok(())
            }
        }
    }
}

/// One cron field: `*`, `*/N`, or a comma list of `A`, `A-B`, `A-B/N`.
fn cron_field(field: &str, low: u32, high: u32) -> Result<(), String> {
    let number = |text: &str| -> Result<u32, String> {
        let n: u32 = text
            .parse()
            .map_err(|_| format!("has `{text}`, which is not a number"))?;
        if (low..=high).contains(&n) {
            Ok(n)
        } else {
            Err(format!("has {n}, outside {low}-{high}"))
        }
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            let step: u32 = step
                .parse()
                .map_err(|_| format!("has step `{step}`, which is not a number"))?;
            if step == 0 {
                return Err("has a step of 0".to_owned());
            }
        }
        if range == "*" {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) if number(a)? > number(b)? => {
                return Err(format!("has the empty range {range}"));
            }
            Some(_) => {}
            None => {
                number(range)?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(rename = "type", default)]
    pub kind: InputType,
    #[serde(default)]
    pub required: bool,
    pub default: Option<Value>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    #[default]
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl InputType {
    fn described(self) -> &'static str {
        match self {
            InputType::String => "a string",
            InputType::Number => "a number",
            InputType::Integer => "an integer",
            InputType::Boolean => "a boolean",
            InputType::Object => "an object",
            InputType::Array => "an array",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    /// `plugin.action`
    pub uses: Option<String>,
    /// The action's input; `{}` when absent.
    #[serde(default = "empty_object")]
    pub with: Value,
    /// A list to run the step for, once per item (`item`, `index` in templates).
    pub for_each: Option<String>,
    /// How many `for_each` items run at the same time (default 1).
    pub concurrency: Option<u32>,
    #[serde(rename = "if")]
    pub condition: Option<String>,
    /// Built-in: the rendered value is the step's output.
    pub set: Option<Value>,
    /// Built-in: logs the rendered message.
    pub log: Option<String>,
    /// Built-in: waits for people to approve or reject.
    pub approval: Option<ApprovalSpec>,
    /// Built-in: fails the run with the rendered message.
    pub fail: Option<String>,
    /// Branch on the rendered value: the steps of the matching `cases` entry run
    /// (else `default`); the others are skipped. The step's output is the key.
    pub switch: Option<String>,
    #[serde(default)]
    pub cases: BTreeMap<String, Vec<Step>>,
    pub default: Option<Vec<Step>>,
    /// Steps run at the same time; the step's output maps each one's id to its
    /// output. Each is a `uses`, `set`, `log` or `fail` step.
    pub parallel: Option<Vec<Step>>,
    /// Runs another playbook (by name, from the playbooks folder) with `with`
    /// as its input; the step's output is that run's output.
    pub playbook: Option<String>,
    #[serde(default)]
    pub on_error: OnError,
    /// Retries of errors the plugin marked retryable (and step timeouts).
    pub retry: Option<Retry>,
    /// Deadline of each call of the step, e.g. `20s`.
    #[serde(default, with = "duration_text")]
    pub timeout: Option<Duration>,
}

/// `approval: { message, approvers: [alice, soc-leads], required: 1, timeout: 4h,
/// on_timeout: reject }`. The run waits (status `waiting`) until `required`
/// distinct approvers approve, one rejects, or the timeout passes. The step's
/// output is `{approved, decided_by, comment}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// What the approvers read (a template).
    pub message: String,
    /// User or group names from `[users]` in aerie.toml.
    pub approvers: Vec<String>,
    #[serde(default = "one")]
    pub required: u32,
    #[serde(default, with = "duration_text")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

fn one() -> u32 {
    1
}

/// What an approval that nobody decided in time becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Reject,
    Approve,
}

/// `retry: { attempts: 3, backoff: 1s, max_backoff: 30s }`: up to `attempts`
/// calls in all, waiting `backoff`, then twice that, and so on up to
/// `max_backoff`, between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub attempts: u32,
    #[serde(default = "default_backoff", with = "duration_text::required")]
    pub backoff: Duration,
    #[serde(default = "default_max_backoff", with = "duration_text::required")]
    pub max_backoff: Duration,
}

fn default_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}

impl Retry {
    /// The wait before attempt `attempt` (2 is the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(20);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// Durations written as `500ms`, `20s`, `4h` (humantime).
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim())
            .map_err(|e| format!("`{text}` is not a duration like 500ms, 20s or 4h: {e}"))
    }

    pub mod required {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer};

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            super::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
        }
    }
}

/// What a failed step does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The run fails (the default).
    #[default]
    Fail,
    /// The run goes on; the step's output is `{"error": {code, message}}` (per
    /// item for `for_each`).
    Continue,
}

/// What a step does, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind<'a> {
    Uses { plugin: &'a str, action: &'a str },
    Set,
    Log,
    Approval,
    Fail,
    Switch,
    Parallel,
    Playbook,
}

impl Step {
    pub fn kind(&self) -> Result<StepKind<'_>, String> {
        let given = [
            self.uses.is_some(),
            self.set.is_some(),
            self.log.is_some(),
            self.approval.is_some(),
            self.fail.is_some(),
            self.switch.is_some(),
            self.parallel.is_some(),
            self.playbook.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(
                "give exactly one of `uses`, `set`, `log`, `approval`, `fail`, `switch`, `parallel` or `playbook`"
                    .to_owned(),
            );
        }
        if self.switch.is_none() && (!self.cases.is_empty() || self.default.is_some()) {
            return Err("`cases` and `default` belong to a `switch`".to_owned());
        }
        Ok(match () {
            _ if self.set.is_some() => StepKind::Set,
            _ if self.log.is_some() => StepKind::Log,
            _ if self.approval.is_some() => StepKind::Approval,
            _ if self.fail.is_some() => StepKind::Fail,
            _ if self.switch.is_some() => StepKind::Switch,
            _ if self.parallel.is_some() => StepKind::Parallel,
            _ if self.playbook.is_some() => StepKind::Playbook,
            _ => {
                let uses = self.uses.as_deref().unwrap_or_default();
                let (plugin, action) = uses
                    .split_once('.')
                    .filter(|(p, a)| !p.is_empty() && !a.is_empty() && !a.contains('.'))
                    .ok_or_else(|| format!("`uses: {uses}` must be plugin.action"))?;
                StepKind::Uses { plugin, action }
            }
        })
    }

    /// The steps nested in this one (branches, parallel steps), in order.
    pub fn children(&self) -> impl Iterator<Item = &Step> {
        self.cases
            .values()
            .flatten()
            .chain(self.default.iter().flatten())
            .chain(self.parallel.iter().flatten())
    }
}

/// What exists outside the playbook, for validation.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Plugin name → its actions, or why it could not be loaded.
    pub plugins: BTreeMap<String, Result<BTreeSet<String>, String>>,
    /// `(plugin, action)` → the action's input JSON Schema, where known.
    pub schemas: BTreeMap<(String, String), Value>,
    /// Users and groups that may be named as approvers.
    pub people: BTreeSet<String>,
    /// Playbooks a `playbook` step may call, by name.
    pub playbooks: BTreeSet<String>,
}

/// A problem in a playbook file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybookError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for PlaybookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PlaybookError {}

impl Playbook {
    pub fn from_file(path: &Path) -> Result<Playbook, PlaybookError> {
        let source = std::fs::read_to_string(path).map_err(|e| PlaybookError {
            file: path.to_owned(),
            line: None,
            column: None,
            message: e.to_string(),
        })?;
        Playbook::parse(path, &source)
    }

    pub fn parse(path: &Path, source: &str) -> Result<Playbook, PlaybookError> {
        let mut playbook: Playbook = serde_yaml_ng::from_str(source).map_err(|e| {
            let location = e.location();
            // serde_yaml_ng appends " at line L column C"; the position goes in front.
            let message = e.to_string();
            let message = match message.find(" at line ") {
                Some(cut) if location.is_some() => message[..cut].to_owned(),
                _ => message,
            };
            PlaybookError {
                file: path.to_owned(),
                line: location.as_ref().map(|l| l.line()),
                column: location.as_ref().map(|l| l.column()),
                message,
            }
        })?;
        playbook.path = path.to_owned();
        playbook.source = source.to_owned();
        Ok(playbook)
    }

    /// The YAML the playbook was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every step, nested ones included, depth first: the order of a run's
    /// step records.
    pub fn all_steps(&self) -> Vec<&Step> {
        fn walk<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
            for step in steps {
                out.push(step);
                let children: Vec<&Step> = step.children().collect();
                for child in children {
                    walk(std::slice::from_ref(child), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }

    /// The plugins the playbook calls.
    pub fn plugins(&self) -> BTreeSet<&str> {
        self.all_steps()
            .into_iter()
            .filter_map(|s| match s.kind() {
                Ok(StepKind::Uses { plugin, .. }) => Some(plugin),
                _ => None,
            })
            .collect()
    }

    fn error_at(&self, needle: &str, message: String) -> PlaybookError {
        self.error_at_nth(needle, 0, message)
    }

    /// Like `error_at`, at the `nth` (0-based) occurrence of `needle`.
    fn error_at_nth(&self, needle: &str, nth: usize, message: String) -> PlaybookError {
        let (line, column) = locate(&self.source, needle, nth).unzip();
        PlaybookError {
            file: self.path.clone(),
            line,
            column,
            message,
        }
    }

    /// Every problem in the playbook: duplicate ids, malformed steps, unknown
    /// plugins and actions, template syntax, and references to steps that do not
    /// exist or have not run yet.
    pub fn validate(&self, catalog: &Catalog) -> Vec<PlaybookError> {
        let templates = Templates::new();
        let mut errors = Vec::new();
        let all = self.all_steps();
        let all_ids: BTreeSet<&str> = all.iter().map(|s| s.id.as_str()).collect();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for (i, step) in all.iter().enumerate() {
            if !seen.insert(step.id.as_str()) {
                let earlier = all[..i].iter().filter(|s| s.id == step.id).count();
                errors.push(self.error_at_nth(
                    &format!("id: {}", step.id),
                    earlier,
                    format!("duplicate step id `{}`", step.id),
                ));
            }
        }
        if let Some(trigger) = &self.trigger
            && let Err(why) = trigger.check()
        {
            errors.push(self.error_at("trigger:", format!("trigger: {why}")));
        }
        let mut done = BTreeSet::new();
        let check = Check {
            catalog,
            templates: &templates,
            all: &all_ids,
        };
        self.check_block(&check, &self.steps, &mut done, false, &mut errors);
        let mut texts = Vec::new();
        collect_strings(&self.output, &mut texts);
        for text in texts {
            self.check_template(&templates, text, &all_ids, &all_ids, None, &mut errors);
        }
        // In the order of the file, as an editor lists them.
        errors.sort_by_key(|e| (e.line, e.column));
        errors
    }

    /// Checks a list of steps; `done` holds the ids that have run before it and
    /// gains this list's ids. Steps inside `parallel` must be simple.
    fn check_block<'p>(
        &'p self,
        check: &Check<'_>,
        steps: &'p [Step],
        done: &mut BTreeSet<&'p str>,
        in_parallel: bool,
        errors: &mut Vec<PlaybookError>,
    ) {
        let catalog = check.catalog;
        let templates = check.templates;
        let all_ids = check.all;
        let known_people = &catalog.people;
        for step in steps {
            let at = format!("id: {}", step.id);
            let seen = &*done;
            if !valid_id(&step.id) {
                errors.push(self.error_at(
                    &at,
                    format!("step id `{}` must be letters, digits, `_` or `-`", step.id),
                ));
            }
            match step.kind() {
                Err(message) => {
                    errors.push(self.error_at(&at, format!("step `{}`: {message}", step.id)))
                }
                Ok(StepKind::Uses { plugin, action }) => match catalog.plugins.get(plugin) {
                    None => errors.push(self.error_at(
                        &format!("uses: {plugin}.{action}"),
                        format!("step `{}`: unknown plugin `{plugin}`", step.id),
                    )),
                    Some(Err(why)) => errors.push(self.error_at(
                        &format!("uses: {plugin}.{action}"),
                        format!(
                            "step `{}`: plugin `{plugin}` cannot be loaded: {why}",
                            step.id
                        ),
                    )),
                    Some(Ok(actions)) if !actions.contains(action) => errors.push(self.error_at(
                        &format!("uses: {plugin}.{action}"),
                        format!(
                            "step `{}`: plugin `{plugin}` has no action `{action}` (it has: {})",
                            step.id,
                            actions.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )),
                    Some(Ok(_)) => {
                        if let Some(schema) =
                            catalog.schemas.get(&(plugin.to_owned(), action.to_owned()))
                            && step.for_each.is_none()
                        {
                            for problem in literal_problems(schema, &step.with) {
                                errors.push(
                                    self.error_at(
                                        &at,
                                        format!("step `{}`: input {problem}", step.id),
                                    ),
                                );
                            }
                        }
                    }
                },
                Ok(StepKind::Set | StepKind::Log | StepKind::Fail) => {}
                Ok(StepKind::Playbook) => {
                    let name = step.playbook.as_deref().unwrap_or_default();
                    if !catalog.playbooks.contains(name) {
                        errors.push(self.error_at(
                            &format!("playbook: {name}"),
                            format!(
                                "step `{}`: no playbook `{name}` in the playbooks folder",
                                step.id
                            ),
                        ));
                    }
                }
                Ok(StepKind::Switch | StepKind::Parallel | StepKind::Approval) if in_parallel => {
                    errors.push(self.error_at(
                        &at,
                        format!("step `{}`: a step inside `parallel` is a `uses`, `set`, `log` or `fail` step", step.id),
                    ));
                }
                Ok(StepKind::Switch | StepKind::Parallel) => {}
                Ok(StepKind::Approval) => {
                    let Some(spec) = &step.approval else { continue };
                    if spec.approvers.is_empty() || spec.required == 0 {
                        errors.push(self.error_at(
                            &at,
                            format!("step `{}`: an approval needs approvers and `required` of at least 1", step.id),
                        ));
                    }
                    if let Some(unknown) = spec
                        .approvers
                        .iter()
                        .find(|a| !known_people.contains(a.as_str()))
                    {
                        errors.push(self.error_at(
                            unknown,
                            format!("step `{}`: `{unknown}` is neither a user nor a group in aerie.toml", step.id),
                        ));
                    }
                }
            }
            if let Some(retry) = &step.retry
                && (retry.attempts == 0 || step.uses.is_none())
            {
                errors.push(self.error_at(
                    &at,
                    format!(
                        "step `{}`: `retry` needs `uses` and at least 1 attempt",
                        step.id
                    ),
                ));
            }
            if step.concurrency.is_some_and(|n| n == 0)
                || (step.concurrency.is_some() && step.for_each.is_none())
            {
                errors.push(self.error_at(
                    &at,
                    format!(
                        "step `{}`: `concurrency` needs `for_each` and must be at least 1",
                        step.id
                    ),
                ));
            }
            if step.for_each.is_some() && step.uses.is_none() {
                errors.push(
                    self.error_at(&at, format!("step `{}`: `for_each` needs `uses`", step.id)),
                );
            }

            let mut texts: Vec<&str> = Vec::new();
            texts.extend(step.condition.as_deref());
            texts.extend(step.for_each.as_deref());
            texts.extend(step.log.as_deref());
            collect_strings(&step.with, &mut texts);
            if let Some(set) = &step.set {
                collect_strings(set, &mut texts);
            }
            if let Some(approval) = &step.approval {
                texts.push(&approval.message);
            }
            for text in texts {
                self.check_template(templates, text, seen, all_ids, Some(step), errors);
            }
            let mut texts: Vec<&str> = Vec::new();
            texts.extend(step.switch.as_deref());
            texts.extend(step.fail.as_deref());
            for text in texts {
                self.check_template(templates, text, seen, all_ids, Some(step), errors);
            }
            // Nested steps see what ran before this step; after it, all of
            // them count as run (a skipped branch's outputs are null).
            if step.switch.is_some() {
                let mut after = done.clone();
                after.insert(step.id.as_str());
                for branch in step.cases.values().chain(step.default.iter()) {
                    let mut inner = after.clone();
                    self.check_block(check, branch, &mut inner, false, errors);
                }
            }
            if let Some(parallel) = &step.parallel {
                // Parallel steps cannot see each other: each is checked against
                // what ran before the block.
                for child in parallel {
                    let mut before = done.clone();
                    self.check_block(
                        check,
                        std::slice::from_ref(child),
                        &mut before,
                        true,
                        errors,
                    );
                }
            }
            done.insert(step.id.as_str());
            done.extend(step.children().map(|c| c.id.as_str()));
        }
    }

    fn check_template(
        &self,
        templates: &Templates,
        text: &str,
        done: &BTreeSet<&str>,
        all: &BTreeSet<&str>,
        step: Option<&Step>,
        errors: &mut Vec<PlaybookError>,
    ) {
        let whose = step.map_or("output".to_owned(), |s| format!("step `{}`", s.id));
        let vars = match templates.check(text) {
            Ok(vars) => vars,
            Err(e) => {
                errors.push(self.error_at(text, format!("{whose}: template error: {e}")));
                return;
            }
        };
        for var in vars {
            let mut parts = var.split('.');
            match parts.next() {
                Some("steps") => {
                    let Some(id) = parts.next() else { continue };
                    let current = step.is_some_and(|s| s.id == id);
                    if current || !done.contains(id) || (step.is_none() && !all.contains(id)) {
                        let why = if !all.contains(id) {
                            "does not exist"
                        } else {
                            "has not run yet at this point"
                        };
                        errors.push(self.error_at(text, format!("{whose}: `steps.{id}` {why}")));
                    }
                }
                Some("inputs") => {
                    if let Some(name) = parts.next()
                        && !self.inputs.contains_key(name)
                    {
                        errors.push(self.error_at(
                            text,
                            format!("{whose}: `inputs.{name}` is not a declared input"),
                        ));
                    }
                }
                Some("item" | "index") if step.is_some_and(|s| s.for_each.is_some()) => {}
                Some(other) => {
                    errors.push(self.error_at(
                        text,
                        format!("{whose}: unknown variable `{other}` (use inputs.*, steps.*, or item/index in a for_each step)"),
                    ));
                }
                None => {}
            }
        }
    }

    /// Applies defaults and checks the run's inputs against the declaration.
    pub fn bind_inputs(&self, given: &Value) -> Result<Value, String> {
        let Value::Object(given) = given else {
            return Err("the playbook's input must be a JSON object".to_owned());
        };
        if let Some(unknown) = given.keys().find(|k| !self.inputs.contains_key(*k)) {
            let declared = self.inputs.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(format!("unknown input `{unknown}` (declared: {declared})"));
        }
        let mut bound = serde_json::Map::new();
        for (name, spec) in &self.inputs {
            let value = match given.get(name).or(spec.default.as_ref()) {
                Some(value) => value.clone(),
                None if spec.required => return Err(format!("input `{name}` is required")),
                None => Value::Null,
            };
            let fits = match spec.kind {
                InputType::String => value.is_string(),
                InputType::Number => value.is_number(),
                InputType::Integer => value.is_i64() || value.is_u64(),
                InputType::Boolean => value.is_boolean(),
                InputType::Object => value.is_object(),
                InputType::Array => value.is_array(),
            };
            if !fits && !value.is_null() {
                return Err(format!(
                    "input `{name}` must be {}, got {value}",
                    spec.kind.described()
                ));
            }
            bound.insert(name.clone(), value);
        }
        Ok(Value::Object(bound))
    }
}

/// What is wrong with the literal parts of a step's `with` against the action's
/// input schema. Templated values are only known at run time, so they are left
/// out, and a required key given as a template counts as given.
fn literal_problems(schema: &Value, with: &Value) -> Vec<String> {
    let Value::Object(with) = with else {
        return vec!["`with` must be an object".to_owned()];
    };
    let templated = |v: &Value| {
        let mut texts = Vec::new();
        collect_strings(v, &mut texts);
        texts.iter().any(|t| t.contains("{{") || t.contains("{%"))
    };
    let literal: serde_json::Map<String, Value> = with
        .iter()
        .filter(|(_, v)| !templated(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let Ok(validator) = jsonschema::validator_for(schema) else {
        return Vec::new();
    };
    let literal = Value::Object(literal);
    validator
        .iter_errors(&literal)
        .filter(|e| match &e.kind {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                property.as_str().is_none_or(|p| !with.contains_key(p))
            }
            _ => true,
        })
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect()
}

/// What validation checks steps against.
struct Check<'a> {
    catalog: &'a Catalog,
    templates: &'a Templates,
    all: &'a BTreeSet<&'a str>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// The 1-based line and column of the `nth` (0-based) occurrence of `needle`.
fn locate(source: &str, needle: &str, nth: usize) -> Option<(usize, usize)> {
    let (offset, _) = source.match_indices(needle).nth(nth)?;
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.plugins
            .insert("ioc-extract".into(), Ok(["extract".to_owned()].into()));
        c.plugins
            .insert("virustotal".into(), Ok(["lookup".to_owned()].into()));
        c.plugins
            .insert("broken".into(), Err("plugin.wasm: missing".into()));
        c.people.insert("alice".into());
        c
    }

    fn errors(source: &str) -> String {
        match Playbook::parse(Path::new("pb.yaml"), source) {
            Err(e) => e.to_string(),
            Ok(p) => p
                .validate(&catalog())
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn a_valid_playbook_has_no_errors() {
        let source = r#"
name: enrich
inputs:
  text: { type: string, required: true }
steps:
  - id: iocs
    uses: ioc-extract.extract
    with: { text: "{{ inputs.text }}" }
  - id: lookups
    for_each: "{{ steps.iocs.output.ipv4 }}"
    uses: virustotal.lookup
    with: { indicator: "{{ item }}" }
    on_error: continue
  - id: note
    if: "{{ steps.lookups.output | length > 0 }}"
    log: "looked up {{ steps.lookups.output | length }}"
output:
  verdicts: "{{ steps.lookups.output }}"
"#;
        assert_eq!(errors(source), "");
    }

    #[test]
    fn every_error_is_reported_with_its_position() {
        let source = r#"name: bad
steps:
  - id: a
    uses: virustotal.scan
    with: { indicator: "{{ steps.b.output }}" }
  - id: b
    uses: nosuch.thing
  - id: b
    set: { x: "{{ inputs.nope }}" }
  - id: c
    uses: broken.run
  - id: d
    log: "{{ item }} {{ oops( }}"
output:
  x: "{{ steps.zzz.output }}"
"#;
        insta::assert_snapshot!(errors(source), @r"
        pb.yaml:4:5: step `a`: plugin `virustotal` has no action `scan` (it has: lookup)
        pb.yaml:5:25: step `a`: `steps.b` has not run yet at this point
        pb.yaml:7:5: step `b`: unknown plugin `nosuch`
        pb.yaml:8:5: duplicate step id `b`
        pb.yaml:9:16: step `b`: `inputs.nope` is not a declared input
        pb.yaml:11:5: step `c`: plugin `broken` cannot be loaded: plugin.wasm: missing
        pb.yaml:13:11: step `d`: template error: syntax error: unexpected `}` (in <string>:1)
        pb.yaml:15:7: output: `steps.zzz` does not exist
        ");
    }

    #[test]
    fn yaml_and_shape_errors_have_positions() {
        insta::assert_snapshot!(errors("name: x\nsteps: [\n  - id: a\n"), @"pb.yaml:3:3: did not find expected node content");
        insta::assert_snapshot!(errors("name: x\nsteps:\n  - id: a\n    usess: p.a\n"), @"pb.yaml:4:5: steps[0]: unknown field `usess`, expected one of `id`, `uses`, `with`, `for_each`, `concurrency`, `if`, `set`, `log`, `approval`, `fail`, `switch`, `cases`, `default`, `parallel`, `playbook`, `on_error`, `retry`, `timeout`");
        insta::assert_snapshot!(errors("name: x\nsteps:\n  - id: a\n    uses: p\n"), @"pb.yaml:3:5: step `a`: `uses: p` must be plugin.action");
    }

    #[test]
    fn literal_inputs_are_checked_against_the_schema() {
        let mut catalog = catalog();
        catalog.schemas.insert(
            ("virustotal".into(), "lookup".into()),
            serde_json::json!({
                "type": "object",
                "properties": {"indicator": {"type": "string"}, "type": {"enum": ["file", "ip"]}},
                "required": ["indicator"],
                "additionalProperties": false
            }),
        );
        let check = |with: &str| -> String {
            let source = format!(
                "name: x\nsteps:\n  - id: vt\n    uses: virustotal.lookup\n    with: {with}\n"
            );
            let playbook = Playbook::parse(Path::new("pb.yaml"), &source).unwrap();
            playbook
                .validate(&catalog)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(check("{ indicator: 8.8.8.8, type: ip }"), "");
        assert_eq!(check("{ indicator: \"{{ 1 + 1 }}\" }"), "");
        insta::assert_snapshot!(check("{ type: domain, extra: 1 }"), @r#"
        pb.yaml:3:5: step `vt`: input "indicator" is a required property
        pb.yaml:3:5: step `vt`: input /type: "domain" is not one of "file" or "ip"
        pb.yaml:3:5: step `vt`: input Additional properties are not allowed ('extra' was unexpected)
        "#);
    }

    #[test]
    fn triggers_are_checked() {
        for (trigger, expected) in [
            ("{ manual: {} }", ""),
            ("{ webhook: { path: /hooks/phish } }", ""),
            ("{ mail: { mailbox: soc } }", ""),
            ("{ cron: \"*/5 9-17 * * 1-5\" }", ""),
            (
                "{ cron: \"0 0 * *\" }",
                "pb.yaml:2:1: trigger: cron `0 0 * *` needs 5 fields (minute hour day month weekday)",
            ),
            (
                "{ cron: \"61 * * * *\" }",
                "pb.yaml:2:1: trigger: cron `61 * * * *`: `61` has 61, outside 0-59",
            ),
            (
                "{ cron: \"* * * * */0\" }",
                "pb.yaml:2:1: trigger: cron `* * * * */0`: `*/0` has a step of 0",
            ),
            (
                "{ webhook: { path: hooks } }",
                "pb.yaml:2:1: trigger: webhook path `hooks` must start with `/` and have no spaces",
            ),
            (
                "{ pager: {} }",
                "pb.yaml:2:12: trigger: unknown field `pager`, expected one of `manual`, `webhook`, `mail`, `cron`",
            ),
        ] {
            let source = format!("name: t\ntrigger: {trigger}\nsteps: []\n");
            assert_eq!(errors(&source), expected, "{trigger}");
        }
    }

    #[test]
    fn inputs_are_bound_with_defaults_and_checked() {
        let p = Playbook::parse(
            Path::new("pb.yaml"),
            "name: x\ninputs:\n  text: { required: true }\n  severity: { default: low }\n  n: { type: integer }\nsteps: []\n",
        )
        .unwrap();
        assert_eq!(
            p.bind_inputs(&serde_json::json!({"text": "t"})).unwrap(),
            serde_json::json!({"n": null, "severity": "low", "text": "t"})
        );
        assert_eq!(
            p.bind_inputs(&serde_json::json!({})).unwrap_err(),
            "input `text` is required"
        );
        assert_eq!(
            p.bind_inputs(&serde_json::json!({"text": "t", "x": 1}))
                .unwrap_err(),
            "unknown input `x` (declared: n, severity, text)"
        );
        assert_eq!(
            p.bind_inputs(&serde_json::json!({"text": "t", "n": "two"}))
                .unwrap_err(),
            "input `n` must be an integer, got \"two\""
        );
    }
}
