//! `classification:` — a playbook that classifies says so, and says where its
//! decision is: the run's label (and, if it has them, the probability, which
//! path decided, and the text that was classified), and which labels an
//! analyst may give when correcting it. `aerie classify` reads only this, so
//! any classifier — another model, another plugin — is reviewed the same way.
//!
//! ```yaml
//! classification:
//!   label: "{{ steps.decision.output.label }}"
//!   probability: "{{ steps.decision.output.probability }}"
//!   decided_by: "{{ steps.decision.output.decided_by }}"
//!   text: "{{ inputs.subject }} {{ inputs.body }}"
//!   labels: [Unclassified]                           # labels the playbook gives itself
//!   labels_from: [fasttext.labels, keyword-match.labels]  # actions listing a classifier's labels
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::step::Text;
use crate::template::{RunBudget, Templates};

#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationSpec {
    /// Templates over the finished run, like `output`.
    pub label: Text,
    pub probability: Option<Text>,
    pub decided_by: Option<Text>,
    pub text: Option<Text>,
    /// Labels the playbook itself may give (a default such as `Unclassified`).
    pub labels: Vec<String>,
    /// `plugin.action`s that list the labels their classifier can give: an
    /// action taking `{}` and answering `{"labels": [...]}`.
    pub labels_from: Vec<LabelSource>,
}

/// A `plugin.action` that lists labels, with where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSource {
    pub plugin: String,
    pub action: String,
    pub at: Option<aerie_contract::Location>,
}

impl ClassificationSpec {
    /// Its templates, for validation.
    pub fn texts(&self) -> impl Iterator<Item = &Text> {
        std::iter::once(&self.label)
            .chain(&self.probability)
            .chain(&self.decided_by)
            .chain(&self.text)
    }
}

/// What a finished classifying run decided, as stored with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classified {
    pub label: String,
    pub probability: Option<f64>,
    pub decided_by: Option<String>,
    /// The text that was classified: training data once an analyst reviewed it.
    pub text: Option<String>,
}

impl ClassificationSpec {
    /// Renders the decision against the finished run's context. A run that
    /// gives no label is an error: a classifying playbook must decide.
    pub(crate) fn render(
        &self,
        templates: &Templates,
        ctx: &Value,
        budget: &RunBudget,
    ) -> Result<Classified, String> {
        let render = |text: &Option<Text>| -> Result<Value, String> {
            match text {
                Some(text) => templates.render_str(&text.text, ctx, budget),
                None => Ok(Value::Null),
            }
        };
        let label = match templates.render_str(&self.label.text, ctx, budget)? {
            Value::String(label) if !label.trim().is_empty() => label.trim().to_owned(),
            other => return Err(format!("`label` gave {other}, not a label")),
        };
        let probability = match render(&self.probability)? {
            Value::Null => None,
            Value::Number(n) => n.as_f64(),
            Value::String(text) => text.trim().parse().ok(),
            other => return Err(format!("`probability` gave {other}, not a number")),
        };
        let text_of = |value: Value| match value {
            Value::Null => None,
            Value::String(text) => Some(text),
            other => Some(other.to_string()),
        };
        Ok(Classified {
            label,
            probability,
            decided_by: text_of(render(&self.decided_by)?),
            text: text_of(render(&self.text)?),
        })
    }
}
