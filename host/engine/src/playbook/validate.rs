//! What is wrong with a typed playbook against what exists outside it:
//! plugins and their actions, input schemas, approvers, called playbooks, and
//! the templates' references to steps that do not exist or have not run yet.

use std::collections::{BTreeMap, BTreeSet};

use aerie_contract::Location;
use serde_json::Value;

use super::step::{Step, StepKind, Templated, Text};
use super::{Playbook, PlaybookError, Trigger};
use crate::template::Templates;

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

impl Playbook {
    /// Every problem the catalog reveals, in the order of the file.
    pub fn validate(&self, catalog: &Catalog) -> Vec<PlaybookError> {
        let all = self.all_steps();
        let all_ids: BTreeSet<&str> = all.iter().map(|s| s.id.as_str()).collect();
        let mut check = Check {
            playbook: self,
            catalog,
            templates: Templates::new(),
            all: &all_ids,
            errors: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        for step in &all {
            if !seen.insert(step.id.as_str()) {
                check.error(step.at, format!("duplicate step id `{}`", step.id));
            }
        }
        if let Some(Trigger::Webhook {
            dedupe: Some(dedupe),
            ..
        }) = &self.trigger
        {
            check.trigger_key(&dedupe.key);
        }
        check.block(&self.steps, &mut BTreeSet::new());
        for text in &self.output.texts {
            check.template(text, &all_ids, None);
        }
        if let Some(classification) = &self.classification {
            for text in classification.texts() {
                check.template(text, &all_ids, None);
            }
            for source in &classification.labels_from {
                let whose = "classification: labels_from";
                check.action(whose, &source.plugin, &source.action, source.at);
            }
        }
        let mut errors = check.errors;
        errors.sort_by_key(|e| e.at);
        errors
    }
}

struct Check<'a> {
    playbook: &'a Playbook,
    catalog: &'a Catalog,
    templates: Templates,
    all: &'a BTreeSet<&'a str>,
    errors: Vec<PlaybookError>,
}

impl<'a> Check<'a> {
    fn error(&mut self, at: Option<Location>, message: String) {
        self.errors.push(PlaybookError {
            file: self.playbook.path.clone(),
            at,
            message,
        });
    }

    /// Checks a list of steps; `done` holds the ids that have run before it
    /// and gains this list's ids.
    fn block(&mut self, steps: &'a [Step], done: &mut BTreeSet<&'a str>) {
        for step in steps {
            self.step(step);
            for text in step.texts() {
                self.template(text, done, Some(step));
            }
            match &step.kind {
                // Nested steps see what ran before this step; after it, all
                // of them count as run (a skipped branch's outputs are null).
                StepKind::Switch(switch) => {
                    let mut after = done.clone();
                    after.insert(step.id.as_str());
                    for (_, branch) in switch.branches(None) {
                        self.block(branch, &mut after.clone());
                    }
                }
                // Parallel steps cannot see each other: each is checked
                // against what ran before the block.
                StepKind::Parallel(children) => {
                    for child in children {
                        self.block(std::slice::from_ref(child), &mut done.clone());
                    }
                }
                _ => {}
            }
            done.insert(step.id.as_str());
            done.extend(step.children().map(|c| c.id.as_str()));
        }
    }

    /// Whether `plugin` is known, loads and offers `action`; reports which
    /// is not the case, prefixed with `whose`.
    fn action(&mut self, whose: &str, plugin: &str, action: &str, at: Option<Location>) -> bool {
        match self.catalog.plugins.get(plugin) {
            None => self.error(at, format!("{whose}: unknown plugin `{plugin}`")),
            Some(Err(why)) => self.error(
                at,
                format!("{whose}: plugin `{plugin}` cannot be loaded: {why}"),
            ),
            Some(Ok(actions)) if !actions.contains(action) => {
                let offered = actions.iter().cloned().collect::<Vec<_>>().join(", ");
                self.error(
                    at,
                    format!(
                        "{whose}: plugin `{plugin}` has no action `{action}` (it has: {offered})"
                    ),
                );
            }
            Some(Ok(_)) => return true,
        }
        false
    }

    /// The step's own references to the catalog.
    fn step(&mut self, step: &'a Step) {
        let whose = format!("step `{}`", step.id);
        match &step.kind {
            StepKind::Uses(uses) => {
                let (plugin, action) = (uses.plugin.as_str(), uses.action.as_str());
                if self.action(&whose, plugin, action, uses.at)
                    && uses.for_each.is_none()
                    && let Some(schema) = self
                        .catalog
                        .schemas
                        .get(&(plugin.to_owned(), action.to_owned()))
                {
                    for problem in literal_problems(schema, &uses.with) {
                        self.error(step.at, format!("{whose}: input {problem}"));
                    }
                }
            }
            StepKind::Playbook(call) => {
                let name = &call.playbook.text;
                if !self.catalog.playbooks.contains(name) {
                    self.error(
                        call.playbook.at,
                        format!("{whose}: no playbook `{name}` in the playbooks folder"),
                    );
                }
            }
            StepKind::Approval(spec) => {
                for approver in &spec.approvers {
                    if !self.catalog.people.contains(&approver.text) {
                        self.error(
                            approver.at,
                            format!(
                                "{whose}: `{}` is neither a user nor a group in aerie.toml",
                                approver.text
                            ),
                        );
                    }
                }
            }
            StepKind::Set(_)
            | StepKind::Log(_)
            | StepKind::Fail(_)
            | StepKind::Switch(_)
            | StepKind::Parallel(_) => {}
        }
    }

    /// A trigger's dedupe key is rendered before any step: it may read only
    /// the inputs the trigger gives.
    fn trigger_key(&mut self, text: &Text) {
        let whose = "trigger: webhook: dedupe: key";
        match self.templates.check(&text.text) {
            Err(e) => self.error(text.at, format!("{whose}: template error: {e}")),
            Ok(vars) => {
                for var in vars {
                    let mut parts = var.split('.');
                    let (root, name) = (parts.next(), parts.next());
                    let declared = name.is_some_and(|n| self.playbook.inputs.contains_key(n));
                    if root != Some("inputs") || !declared {
                        self.error(
                            text.at,
                            format!("{whose}: `{var}` is not there before a run starts: use the declared inputs (inputs.body, inputs.headers)"),
                        );
                    }
                }
            }
        }
    }

    /// A template's syntax and the variables it reads: `steps.X` must have
    /// run before (`step`'s own output never), `inputs.X` must be declared,
    /// `item`/`index` exist only in a `for_each` step.
    fn template(&mut self, text: &Text, done: &BTreeSet<&str>, step: Option<&Step>) {
        let whose = step.map_or("output".to_owned(), |s| format!("step `{}`", s.id));
        let vars = match self.templates.check(&text.text) {
            Ok(vars) => vars,
            Err(e) => {
                self.error(text.at, format!("{whose}: template error: {e}"));
                return;
            }
        };
        for var in vars {
            let mut parts = var.split('.');
            match parts.next() {
                Some("steps") => {
                    let Some(id) = parts.next() else { continue };
                    if self.playbook.unreadable.contains(id) {
                        continue;
                    }
                    let current = step.is_some_and(|s| s.id == id);
                    if current || !done.contains(id) {
                        let why = if self.all.contains(id) {
                            "has not run yet at this point"
                        } else {
                            "does not exist"
                        };
                        self.error(text.at, format!("{whose}: `steps.{id}` {why}"));
                    }
                }
                Some("inputs") => {
                    if let Some(name) = parts.next()
                        && !self.playbook.inputs.contains_key(name)
                    {
                        self.error(
                            text.at,
                            format!("{whose}: `inputs.{name}` is not a declared input"),
                        );
                    }
                }
                Some("item" | "index") if step.is_some_and(Step::has_items) => {}
                Some(other) => self.error(
                    text.at,
                    format!("{whose}: unknown variable `{other}` (use inputs.*, steps.*, or item/index in a for_each step)"),
                ),
                None => {}
            }
        }
    }
}

/// What is wrong with the literal parts of a step's `with` against the action's
/// input schema. Templated values are only known at run time, so they are left
/// out, and a required key given as a template counts as given.
fn literal_problems(schema: &Value, with: &Templated) -> Vec<String> {
    let Value::Object(with) = &with.value else {
        return vec!["`with` must be an object".to_owned()];
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

/// Whether any string inside `value` is a template.
fn templated(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(items) => items.iter().any(templated),
        Value::Object(map) => map.values().any(templated),
        _ => false,
    }
}
