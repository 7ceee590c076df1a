//! Steps, typed once at load: a step is one [`StepKind`], and the fields
//! that only make sense for one kind live in that kind.

use std::collections::BTreeMap;
use std::time::Duration;

use aerie_contract::Location;
use serde_json::Value;

/// A template (or plain text) as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub text: String,
    pub at: Option<Location>,
}

/// A YAML value whose strings are templates (a step's `with`, a `set`, the
/// playbook's `output`), with where each string was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Templated {
    pub value: Value,
    /// Every string inside `value`, in document order.
    pub texts: Vec<Text>,
}

impl Templated {
    /// A literal value, as if written without positions (`{}` for a step
    /// without `with`).
    pub fn literal(value: Value) -> Templated {
        Templated {
            value,
            texts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    /// Where the step's `id` is written: errors about the whole step point here.
    pub at: Option<Location>,
    /// `if`: the step runs only when this renders truthy.
    pub condition: Option<Text>,
    pub on_error: OnError,
    pub kind: StepKind,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// `uses: plugin.action`
    Uses(Uses),
    /// Built-in: the rendered value is the step's output.
    Set(SetValue),
    /// Built-in: logs the rendered message.
    Log(Text),
    /// Built-in: waits for people to approve or reject.
    Approval(ApprovalSpec),
    /// Built-in: fails the run with the rendered message.
    Fail(Text),
    /// Branches on the rendered value: the steps of the matching case run
    /// (else `default`); the others are skipped. The step's output is the key.
    Switch(Switch),
    /// Steps run at the same time; the step's output maps each one's id to
    /// its output. Each is a `uses`, `set`, `log`, `fail` or `playbook` step.
    Parallel(Vec<Step>),
    /// Runs another playbook (by name, from the playbooks folder) with `with`
    /// as its input; the step's output is that run's output.
    Playbook(Call),
}

/// A `set` step: its value, rendered once, or once per `for_each` item
/// (the output is then the list of the items' values, in order) — a row per
/// indicator, say, joining what several steps found about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SetValue {
    pub value: Templated,
    pub for_each: Option<Text>,
}

/// A call of a plugin's action.
#[derive(Debug, Clone, PartialEq)]
pub struct Uses {
    pub plugin: String,
    pub action: String,
    /// Where `uses:` is written.
    pub at: Option<Location>,
    /// The action's input; `{}` when absent.
    pub with: Templated,
    pub for_each: Option<ForEach>,
    /// Retries of errors the plugin marked retryable (and step timeouts).
    pub retry: Option<Retry>,
    /// Deadline of each call of the step, e.g. `20s`.
    pub timeout: Option<Duration>,
}

/// `for_each`: the step runs once per item of a list (`item`, `index` in
/// templates), up to `concurrency` items at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForEach {
    pub items: Text,
    /// At least 1.
    pub concurrency: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    pub on: Text,
    pub cases: BTreeMap<String, Vec<Step>>,
    pub default: Vec<Step>,
}

impl Switch {
    /// The branch a key takes: its case, else `default`.
    pub fn branch(&self, key: &str) -> &[Step] {
        self.cases.get(key).unwrap_or(&self.default)
    }

    /// Every branch, cases in key order then `default`, each with whether
    /// `key` takes it.
    pub fn branches<'a>(
        &'a self,
        key: Option<&'a str>,
    ) -> impl Iterator<Item = (bool, &'a [Step])> {
        let matched = key.is_some_and(|k| self.cases.contains_key(k));
        self.cases
            .iter()
            .map(move |(case, steps)| (key == Some(case.as_str()), steps.as_slice()))
            .chain(std::iter::once((
                key.is_some() && !matched,
                self.default.as_slice(),
            )))
    }
}

/// A `playbook` step: which playbook, with what input.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub playbook: Text,
    pub with: Templated,
}

/// `approval: { message, approvers: [alice, soc-leads], required: 1, timeout: 4h,
/// on_timeout: reject }`. The run waits (status `waiting`) until `required`
/// distinct approvers approve, one rejects, or the timeout passes. The step's
/// output is `{approved, decided_by, comment}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSpec {
    /// What the approvers read (a template).
    pub message: Text,
    /// User or group names from `[users]` in aerie.toml.
    pub approvers: Vec<Text>,
    /// At least 1.
    pub required: u32,
    pub timeout: Option<Duration>,
    pub on_timeout: OnTimeout,
}

/// What an approval that nobody decided in time becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Reject,
    Approve,
}

/// `retry: { attempts: 3, backoff: 1s, max_backoff: 30s }`: up to `attempts`
/// calls in all, waiting `backoff`, then twice that, and so on up to
/// `max_backoff`, between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// At least 1.
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Retry {
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

    /// The wait before attempt `attempt` (2 is the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(20);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// What a failed step does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    /// The run fails (the default).
    #[default]
    Fail,
    /// The run goes on; the step's output is `{"error": {code, message}}` (per
    /// item for `for_each`).
    Continue,
}

impl Step {
    /// The steps nested in this one (branches, parallel steps), in order.
    pub fn children(&self) -> Box<dyn Iterator<Item = &Step> + '_> {
        match &self.kind {
            StepKind::Switch(switch) => {
                Box::new(switch.cases.values().flatten().chain(switch.default.iter()))
            }
            StepKind::Parallel(steps) => Box::new(steps.iter()),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Every template the step itself renders (not its children's), with the
    /// variables `for_each` adds allowed or not.
    pub fn texts(&self) -> Vec<&Text> {
        let mut texts: Vec<&Text> = self.condition.iter().collect();
        match &self.kind {
            StepKind::Uses(uses) => {
                texts.extend(uses.for_each.as_ref().map(|f| &f.items));
                texts.extend(&uses.with.texts);
            }
            StepKind::Set(set) => {
                texts.extend(&set.for_each);
                texts.extend(&set.value.texts);
            }
            StepKind::Log(text) | StepKind::Fail(text) => texts.push(text),
            StepKind::Approval(spec) => texts.push(&spec.message),
            StepKind::Switch(switch) => texts.push(&switch.on),
            StepKind::Parallel(_) => {}
            StepKind::Playbook(call) => texts.extend(&call.with.texts),
        }
        texts
    }

    /// Whether the step runs once per item (so `item` and `index` exist).
    pub fn has_items(&self) -> bool {
        matches!(
            &self.kind,
            StepKind::Uses(Uses {
                for_each: Some(_),
                ..
            }) | StepKind::Set(SetValue {
                for_each: Some(_),
                ..
            })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let retry = Retry {
            attempts: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        };
        let delays: Vec<u64> = (2..=8).map(|a| retry.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }
}
