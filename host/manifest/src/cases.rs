//! `[cases]` of aerie.toml: how the site's cases are worked.
//!
//! ```toml
//! [[cases.assign]]                 # tried in order; the first that matches decides
//! type = "Phishing"
//! to = "pat"                       # a user of [users]
//!
//! [[cases.assign]]
//! hours = "08:00-17:00"            # local time of day; "22:00-06:00" wraps midnight
//! tz = "Europe/Berlin"             # UTC when absent
//! round_robin = "day-shift"        # a group of [users]: its members take turns
//!
//! [[cases.assign]]
//! to = "oncall"                    # no condition: every other case
//! ```
//!
//! A case opened with an assignee keeps it; the rules apply to the others.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CasesConfig {
    pub assign: Vec<AssignRule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRule {
    /// Cases of this type only.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `HH:MM-HH:MM`, local to `tz`.
    pub hours: Option<String>,
    pub tz: Option<String>,
    /// A user of `[users]`.
    pub to: Option<String>,
    /// A group of `[users]`, whose members take turns.
    pub round_robin: Option<String>,
}
