//! `keyword-match`: the fallback classifier. The operator's rules are tried in
//! order and the first one that matches names the label:
//!
//! ```toml
//! [plugins.keyword-match]
//! settings = { rules = [
//!   { label = "DeviceLost", keywords = ["stolen laptop", "lost phone"] },
//!   { label = "Phishing", patterns = ['verify (your )?account', 'password.*expire'] },
//! ] }
//! ```
//!
//! Matching ignores case. A keyword matches as a whole word or phrase (`lost
//! phone` matches "I LOST PHONE yesterday", not "lost phones"); a pattern is a
//! regular expression matched anywhere.

use std::sync::{Arc, Mutex};

use aerie_sdk::classify::{Labels, NoInput};
use aerie_sdk::{Actions, Error, Plugin};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

struct KeywordMatch;

impl Plugin for KeywordMatch {
    fn actions() -> Actions {
        Actions::new()
            .action(
                "match",
                "The label of the first rule the text matches, or null",
                |input: Input| Ok::<_, Error>(rules()?.first_match(&input.text)),
            )
            .action(
                "labels",
                "The labels the rules can give, in rule order",
                |_: NoInput| {
                    Ok::<_, Error>(Labels {
                        labels: rules()?.labels(),
                    })
                },
            )
    }
}

aerie_sdk::export!(KeywordMatch);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The text to match: a subject and body, a ticket.
    pub text: String,
}

#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct Output {
    /// The first matching rule's label; null when no rule matches.
    pub label: Option<String>,
    /// The keywords and patterns of that rule that matched, in rule order.
    pub matched: Vec<String>,
}

/// One rule as the operator writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    label: String,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
}

struct Rule {
    label: String,
    keywords: Vec<(String, String)>,
    patterns: Vec<(String, Regex)>,
}

pub struct Rules(Vec<Rule>);

impl Rules {
    /// Each rule's label once, in rule order.
    pub fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = Vec::new();
        for rule in &self.0 {
            if !labels.contains(&rule.label) {
                labels.push(rule.label.clone());
            }
        }
        labels
    }

    /// Parses the `rules` setting: errors name the rule and what is wrong.
    pub fn parse(json: &str) -> Result<Rules, String> {
        let specs: Vec<RuleSpec> = serde_json::from_str(json)
            .map_err(|e| format!("the `rules` setting is not a list of rules: {e}"))?;
        let mut rules = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let at = format!("rule {} (`{}`)", i + 1, spec.label);
            if spec.label.trim().is_empty() {
                return Err(format!("rule {} has an empty label", i + 1));
            }
            if spec.keywords.is_empty() && spec.patterns.is_empty() {
                return Err(format!("{at} has neither keywords nor patterns"));
            }
            let mut keywords = Vec::new();
            for keyword in spec.keywords {
                let folded = fold(keyword.trim());
                if folded.is_empty() {
                    return Err(format!("{at} has an empty keyword"));
                }
                keywords.push((keyword, folded));
            }
            let mut patterns = Vec::new();
            for pattern in spec.patterns {
                let regex = Regex::new(&format!("(?i){pattern}")).map_err(|e| {
                    format!("{at}: `{pattern}` is not a valid regular expression: {e}")
                })?;
                patterns.push((pattern, regex));
            }
            rules.push(Rule {
                label: spec.label,
                keywords,
                patterns,
            });
        }
        Ok(Rules(rules))
    }

    pub fn first_match(&self, text: &str) -> Output {
        let folded = fold(text);
        for rule in &self.0 {
            let mut matched: Vec<String> = rule
                .keywords
                .iter()
                .filter(|(_, keyword)| contains_phrase(&folded, keyword))
                .map(|(original, _)| original.clone())
                .collect();
            matched.extend(
                rule.patterns
                    .iter()
                    .filter(|(_, regex)| regex.is_match(text))
                    .map(|(original, _)| original.clone()),
            );
            if !matched.is_empty() {
                return Output {
                    label: Some(rule.label.clone()),
                    matched,
                };
            }
        }
        Output {
            label: None,
            matched: Vec::new(),
        }
    }
}

/// Case folding for keywords: lower case, with runs of whitespace as one space
/// so a phrase matches across line breaks.
fn fold(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `phrase` occurs in `text` with no letter or digit right before or after it.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(phrase).any(|(at, _)| {
        !word(text[..at].chars().next_back()) && !word(text[at + phrase.len()..].chars().next())
    })
}

/// The rules this instance parsed, with the setting text they came from.
static PARSED: Mutex<Option<(String, Arc<Rules>)>> = Mutex::new(None);

fn rules() -> Result<Arc<Rules>, Error> {
    let text = aerie_sdk::setting("rules").unwrap_or_default();
    let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((source, rules)) = parsed.as_ref()
        && *source == text
    {
        return Ok(rules.clone());
    }
    let rules = Arc::new(Rules::parse(&text).map_err(Error::internal)?);
    *parsed = Some((text, rules.clone()));
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"[
        {"label": "DeviceLost", "keywords": ["stolen laptop", "lost phone"]},
        {"label": "Phishing", "keywords": ["phish"], "patterns": ["verify (your )?account", "password.*expire"]},
        {"label": "Catch", "patterns": ["."]}
    ]"#;

    fn matched(text: &str) -> (Option<String>, Vec<String>) {
        let out = Rules::parse(RULES).unwrap().first_match(text);
        (out.label, out.matched)
    }

    #[test]
    fn the_first_matching_rule_wins_case_insensitively() {
        assert_eq!(
            matched("My STOLEN\nLaptop had a phish on it"),
            (Some("DeviceLost".into()), vec!["stolen laptop".into()])
        );
        assert_eq!(
            matched("Please VERIFY YOUR ACCOUNT, your password will expire"),
            (
                Some("Phishing".into()),
                vec!["verify (your )?account".into(), "password.*expire".into()]
            )
        );
    }

    #[test]
    fn labels_are_listed_once_in_rule_order() {
        let rules = Rules::parse(
            r#"[{"label": "Spam", "keywords": ["sale"]}, {"label": "Phishing", "keywords": ["verify"]}, {"label": "Spam", "patterns": ["prize"]}]"#,
        )
        .unwrap();
        assert_eq!(rules.labels(), ["Spam", "Phishing"]);
    }

    #[test]
    fn keywords_match_whole_words_only() {
        assert_eq!(matched("phishing attempt").0.as_deref(), Some("Catch"));
        assert_eq!(matched("a phish!").0.as_deref(), Some("Phishing"));
        assert_eq!(matched("two lost phones").0.as_deref(), Some("Catch"));
        assert_eq!(
            matched("gestohlen: lost phone, überall").0.as_deref(),
            Some("DeviceLost")
        );
    }

    #[test]
    fn no_rule_matching_gives_null() {
        let rules = Rules::parse(r#"[{"label": "A", "keywords": ["x"]}]"#).unwrap();
        assert_eq!(
            rules.first_match("nothing here"),
            Output {
                label: None,
                matched: vec![]
            }
        );
    }

    #[test]
    fn bad_rules_say_which_and_why() {
        let err = |json: &str| Rules::parse(json).err().unwrap();
        assert!(err("{}").starts_with("the `rules` setting is not a list of rules: "));
        assert_eq!(
            err(r#"[{"label": "A", "keywords": ["x"]}, {"label": "B"}]"#),
            "rule 2 (`B`) has neither keywords nor patterns"
        );
        assert!(
            err(r#"[{"label": "A", "patterns": ["(unclosed"]}]"#)
                .starts_with("rule 1 (`A`): `(unclosed` is not a valid regular expression: ")
        );
        assert!(err(r#"[{"label": "A", "keyword": ["x"]}]"#).contains("unknown field `keyword`"));
    }
}
