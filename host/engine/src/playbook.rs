//! The playbook model, read from YAML, and its validation.
//!
//! Reading types every step once ([`StepKind`]); validation checks the typed
//! model against a [`Catalog`]. Both report every problem at once, each as
//! `file:line:column: message` with the position the YAML parser gave.

mod classification;
mod error;
mod inputs;
mod read;
mod step;
mod trigger;
mod validate;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use classification::{ClassificationSpec, Classified, LabelSource};
pub use error::{PlaybookError, PlaybookErrors};
pub use inputs::{InputSpec, InputType};
pub use step::{
    ApprovalSpec, Call, ForEach, OnError, OnTimeout, Retry, SetValue, Step, StepKind, Switch,
    Templated, Text, Uses,
};
pub use trigger::{
    Missed, Overlap, Schedule, Timetable, Trigger, TriggerDedupe, WindowFrom, key_names_nothing,
};
pub use validate::Catalog;

#[derive(Debug, Clone)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    pub inputs: BTreeMap<String, InputSpec>,
    /// What starts the playbook (none: only `aerie run`).
    pub trigger: Option<Trigger>,
    pub steps: Vec<Step>,
    /// The run's output, rendered after the last step.
    pub output: Templated,
    /// Where a classifying playbook's decision is (see `aerie classify`).
    pub classification: Option<ClassificationSpec>,
    pub path: PathBuf,
    source: String,
    /// Ids of steps that could not be read; empty in a playbook without errors.
    unreadable: BTreeSet<String>,
}

/// What reading gives before validation: the parts, then the file.
#[derive(Default)]
struct PlaybookParts {
    name: String,
    description: String,
    inputs: BTreeMap<String, InputSpec>,
    trigger: Option<Trigger>,
    steps: Vec<Step>,
    output: Templated,
    classification: Option<ClassificationSpec>,
    unreadable: BTreeSet<String>,
}

/// A playbook as read: every step that could be typed, and what was wrong
/// with the rest.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub playbook: Playbook,
    pub errors: Vec<PlaybookError>,
}

impl Parsed {
    /// The playbook, if neither reading nor the catalog found a problem;
    /// else every problem, in the order of the file.
    pub fn validate(self, catalog: &Catalog) -> Result<Playbook, PlaybookErrors> {
        let mut errors = self.errors;
        errors.extend(self.playbook.validate(catalog));
        errors.sort_by_key(|e| e.at);
        if errors.is_empty() {
            Ok(self.playbook)
        } else {
            Err(PlaybookErrors(errors))
        }
    }
}

impl Playbook {
    /// Reads `source` (from `path`, for messages), typing each step; never
    /// fails, the problems are in [`Parsed::errors`].
    pub fn read(path: &Path, source: &str) -> Parsed {
        let (parts, errors) = read::read(path, source);
        Parsed {
            playbook: Playbook::assemble(path, source, parts),
            errors,
        }
    }

    pub fn read_file(path: &Path) -> Parsed {
        // A file too big to be a playbook is not read at all.
        if let Ok(meta) = std::fs::metadata(path)
            && meta.len() > yaml::MAX_BYTES as u64
        {
            return Parsed {
                playbook: Playbook::assemble(path, "", PlaybookParts::default()),
                errors: vec![yaml::too_big(path, meta.len())],
            };
        }
        match std::fs::read_to_string(path) {
            Ok(source) => Playbook::read(path, &source),
            Err(e) => Parsed {
                playbook: Playbook::assemble(path, "", PlaybookParts::default()),
                errors: vec![PlaybookError {
                    file: path.to_owned(),
                    at: None,
                    message: e.to_string(),
                }],
            },
        }
    }

    fn assemble(path: &Path, source: &str, parts: PlaybookParts) -> Playbook {
        Playbook {
            name: parts.name,
            description: parts.description,
            inputs: parts.inputs,
            trigger: parts.trigger,
            steps: parts.steps,
            output: parts.output,
            classification: parts.classification,
            path: path.to_owned(),
            source: source.to_owned(),
            unreadable: parts.unreadable,
        }
    }

    /// The playbook in `source`, if it reads without a problem (the catalog
    /// is not consulted).
    pub fn parse(path: &Path, source: &str) -> Result<Playbook, PlaybookErrors> {
        let parsed = Playbook::read(path, source);
        if parsed.errors.is_empty() {
            Ok(parsed.playbook)
        } else {
            Err(PlaybookErrors(parsed.errors))
        }
    }

    pub fn from_file(path: &Path) -> Result<Playbook, PlaybookErrors> {
        let parsed = Playbook::read_file(path);
        if parsed.errors.is_empty() {
            Ok(parsed.playbook)
        } else {
            Err(PlaybookErrors(parsed.errors))
        }
    }

    /// The YAML the playbook was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every step, nested ones included, depth first: the order of a run's
    /// step records.
    pub fn all_steps(&self) -> Vec<&Step> {
        fn walk<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
            for step in steps {
                out.push(step);
                for child in step.children() {
                    walk(std::slice::from_ref(child), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }

    /// The plugins the playbook calls (its classification's label sources
    /// included).
    pub fn plugins(&self) -> BTreeSet<&str> {
        let sources = self
            .classification
            .iter()
            .flat_map(|c| &c.labels_from)
            .map(|source| source.plugin.as_str());
        self.all_steps()
            .into_iter()
            .filter_map(|s| match &s.kind {
                StepKind::Uses(uses) => Some(uses.plugin.as_str()),
                _ => None,
            })
            .chain(sources)
            .collect()
    }

    /// The playbooks its `playbook` steps call, by name.
    pub fn called_playbooks(&self) -> BTreeSet<&str> {
        self.all_steps()
            .into_iter()
            .filter_map(|s| match &s.kind {
                StepKind::Playbook(call) => Some(call.playbook.text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Applies defaults and checks a run's input against the declaration.
    pub fn bind_inputs(&self, given: &Value) -> Result<Value, String> {
        inputs::bind(&self.inputs, given)
    }
}

#[cfg(test)]
mod tests;
