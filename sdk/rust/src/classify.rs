//! The shapes a classifier plugin shares with the host: a `labels` action
//! that takes `{}` ([`NoInput`]) and answers [`Labels`] lets a playbook's
//! `classification: labels_from` offer analysts the labels it can give.
//!
//! ```ignore
//! Actions::new().action("labels", "The labels I can give", |_: NoInput| {
//!     Ok::<_, Error>(Labels { labels: vec!["Spam".into(), "Ham".into()] })
//! })
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An action's input that is `{}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

/// The labels a classifier can give.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Labels {
    /// Each label once, without any prefix of the classifier's own.
    pub labels: Vec<String>,
}
