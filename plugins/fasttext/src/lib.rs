//! `fasttext`: classifies text with a supervised fastText model.
//!
//! The model is a file in the plugin's read-only data folder (`/data`), named
//! by the `model` setting; the operator grants the folder in `aerie.toml`:
//!
//! ```toml
//! [plugins.fasttext]
//! data = "/var/lib/aerie/models"
//! settings = { model = "tickets.ftz" }
//! ```
//!
//! This is a step plugin: it has no network, so the text it classifies cannot
//! leave the host. The manifest opts in to warm instances, so the model is
//! parsed once per instance and kept for the calls that follow.

use std::sync::{Arc, Mutex};

use aerie_fasttext::Model;
use aerie_sdk::classify::{Labels, NoInput};
use aerie_sdk::{Actions, Error, Plugin};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

struct FastText;

impl Plugin for FastText {
    fn actions() -> Actions {
        Actions::new()
            .action(
                "classify",
                "The most probable labels of a text, best first",
                classify,
            )
            .action(
                "labels",
                "Every label the model can give, as `aerie classify correct` offers them",
                labels,
            )
    }
}

aerie_sdk::export!(FastText);

/// Where the host mounts the operator's data folder.
const DATA: &str = "/data";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The text to classify: an e-mail's subject and body, a ticket. Newlines
    /// separate words like spaces.
    pub text: String,
    /// How many labels to return at most; -1 for all of them.
    #[serde(default = "one")]
    pub k: i64,
    /// Only labels at least this probable.
    #[serde(default)]
    pub threshold: f64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct Output {
    /// Labels without fastText's `__label__` prefix, best first.
    pub labels: Vec<String>,
    /// Their probabilities as fastText reports them (`exp(log(p + 1e-5))`).
    pub probs: Vec<f64>,
}

pub fn classify(input: Input) -> Result<Output, Error> {
    let k = match input.k {
        -1 => 0,
        k if k >= 1 => usize::try_from(k).unwrap_or(usize::MAX),
        k => {
            return Err(Error::invalid_input(format!(
                "k must be 1 or more, or -1 for every label; got {k}"
            )));
        }
    };
    if !(0.0..=1.0).contains(&input.threshold) {
        return Err(Error::invalid_input(format!(
            "threshold must be between 0 and 1; got {}",
            input.threshold
        )));
    }
    let model = model()?;
    let predictions = model.predict(&input.text, k, input.threshold as f32);
    Ok(Output {
        labels: predictions.iter().map(|p| p.label.clone()).collect(),
        probs: predictions.iter().map(|p| f64::from(p.prob)).collect(),
    })
}

/// The model's labels, without fastText's `__label__` prefix, most frequent
/// in training first.
pub fn labels(_: NoInput) -> Result<Labels, Error> {
    let labels = match loaded(&model_file()?) {
        Some(model) => model.labels().collect(),
        // Not parsed yet: the dictionary alone says, without the matrices.
        None => {
            let file = model_file()?;
            aerie_fasttext::labels(model_path(&file)?.as_ref())
                .map_err(|e| Error::internal(format!("model `{file}` in the data folder: {e}")))?
        }
    };
    Ok(Labels { labels })
}

/// The model this instance parsed, by file name.
static LOADED: Mutex<Option<(String, Arc<Model>)>> = Mutex::new(None);

fn model_file() -> Result<String, Error> {
    aerie_sdk::setting("model").ok_or_else(|| Error::internal("the `model` setting is not set"))
}

/// The model `file`, if this instance parsed it already.
fn loaded(file: &str) -> Option<Arc<Model>> {
    let loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    loaded
        .as_ref()
        .filter(|(name, _)| name == file)
        .map(|(_, model)| model.clone())
}

fn model() -> Result<Arc<Model>, Error> {
    let file = model_file()?;
    if let Some(model) = loaded(&file) {
        return Ok(model);
    }
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let path = model_path(&file)?;
    let model = Model::load(path.as_ref())
        .map_err(|e| Error::internal(format!("model `{file}` in the data folder: {e}")))?;
    aerie_sdk::log::info(&format!(
        "loaded model `{file}`: {} labels, {} words, dim {}, {:?} loss{}",
        model.labels().count(),
        model.words(),
        model.args().dim,
        model.args().loss,
        if model.is_quantized() {
            ", quantized"
        } else {
            ""
        },
    ));
    let model = Arc::new(model);
    *loaded = Some((file, model.clone()));
    Ok(model)
}

/// `file` inside the data folder; a name that climbs out of it is refused
/// (the sandbox would refuse it anyway, with a less helpful message).
fn model_path(file: &str) -> Result<String, Error> {
    let escapes = file.is_empty()
        || file.starts_with('/')
        || file.split(['/', '\\']).any(|part| part == "..");
    if escapes {
        return Err(Error::internal(format!(
            "the `model` setting `{file}` must name a file inside the data folder"
        )));
    }
    Ok(format!("{DATA}/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_stay_inside_the_data_folder() {
        assert_eq!(model_path("tickets.ftz").unwrap(), "/data/tickets.ftz");
        assert_eq!(
            model_path("2026/tickets.bin").unwrap(),
            "/data/2026/tickets.bin"
        );
        for bad in ["", "/etc/passwd", "../secrets", "a/../../b"] {
            assert!(model_path(bad).is_err(), "{bad}");
        }
    }
}
