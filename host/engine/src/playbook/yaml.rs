//! The YAML side of reading a playbook: parsing with positions
//! (marked-yaml), typed getters that report what is wrong where, and YAML
//! values as JSON.
//!
//! Anchors, aliases and tags are refused by the parser: a playbook has
//! `playbook` steps for reuse, and no alias can blow a small file up.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use aerie_contract::Location;
use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use serde_json::Value;

use super::error::PlaybookError;
use super::step::{Templated, Text};

/// How deep values may nest; deeper is refused before anything recurses.
pub(super) const MAX_DEPTH: usize = 64;

/// The largest playbook file read: the shipped ones are a few KiB.
pub const MAX_BYTES: usize = 1 << 20;

pub(super) fn at(node: &Node) -> Option<Location> {
    // A block mapping's own mark is where the parser saw its first `:`; its
    // first key is where a reader sees it begin.
    if let Node::Mapping(map) = node
        && let Some(first) = map.keys().next()
    {
        return key_at(first);
    }
    node.span().start().map(location)
}

pub(super) fn key_at(key: &MarkedScalarNode) -> Option<Location> {
    key.span().start().map(location)
}

fn location(marker: &marked_yaml::Marker) -> Location {
    Location {
        line: marker.line(),
        column: marker.column(),
    }
}

/// Parses the document into nodes; a syntax error is the one error.
pub(super) fn parse(file: &Path, source: &str) -> Result<Node, PlaybookError> {
    if source.len() > MAX_BYTES {
        return Err(too_big(file, source.len() as u64));
    }
    if let Some(at) = too_deep(source) {
        return Err(PlaybookError {
            file: file.to_owned(),
            at: Some(at),
            message: format!("values nest more than {MAX_DEPTH} deep"),
        });
    }
    let options = marked_yaml::LoaderOptions::default()
        .error_on_duplicate_keys(true)
        // Only plain scalars may read as numbers, booleans or null; quoted ones are strings.
        .prevent_coercion(true)
        .toplevel_mapping();
    marked_yaml::parse_yaml_with_options(0, source, options).map_err(|e| {
        use marked_yaml::LoadError::*;
        let (marker, message) = match &e {
            TopLevelMustBeMapping(m) => (Some(*m), "a playbook is a mapping (name, steps, ...)".to_owned()),
            TopLevelMustBeSequence(m) => (Some(*m), "expected a list".to_owned()),
            UnexpectedAnchor(m) => (
                Some(*m),
                "anchors and aliases are not allowed in a playbook (call a playbook to reuse steps)".to_owned(),
            ),
            MappingKeyMustBeScalar(m) => (Some(*m), "a key must be a plain string".to_owned()),
            UnexpectedTag(m) => (Some(*m), "YAML tags (`!…`) are not allowed in a playbook".to_owned()),
            ScanError(m, e) => (Some(*m), e.info().to_owned()),
            DuplicateKey(inner) => (
                inner.key.span().start().copied(),
                format!(
                    "duplicate key `{}` (first at line {})",
                    inner.key.as_str(),
                    inner.prev_key.span().start().map_or(0, |m| m.line())
                ),
            ),
        };
        PlaybookError {
            file: file.to_owned(),
            at: marker.as_ref().map(location),
            message,
        }
    })
}

/// The error for a file over [`MAX_BYTES`].
pub(super) fn too_big(file: &Path, bytes: u64) -> PlaybookError {
    PlaybookError {
        file: file.to_owned(),
        at: None,
        message: format!(
            "the file is {bytes} bytes; a playbook may be at most {} KiB",
            MAX_BYTES / 1024
        ),
    }
}

/// Where the nesting of the document first passes [`MAX_DEPTH`]: read from
/// the parser's event stream, which keeps no tree, before anything that
/// recurses (building nodes, dropping them, reading them) sees the document.
/// A syntax error is left to the real parse to report.
fn too_deep(source: &str) -> Option<Location> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(source);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::SequenceStart(..) | Event::MappingStart(..), marker)) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(Location {
                        line: marker.line(),
                        column: marker.col() + 1,
                    });
                }
            }
            Ok((Event::SequenceEnd | Event::MappingEnd, _)) => depth = depth.saturating_sub(1),
            // The scanner has a limit of its own for flow nesting.
            Err(e) if e.info().contains("recursion limit") => {
                return Some(Location {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                });
            }
            Ok((Event::StreamEnd, _)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Reports problems, each at its place in the file.
pub(super) struct Reporter<'a> {
    pub file: &'a Path,
    pub errors: Vec<PlaybookError>,
}

impl Reporter<'_> {
    pub fn error(&mut self, at: Option<Location>, message: impl Into<String>) {
        self.errors.push(PlaybookError {
            file: self.file.to_owned(),
            at,
            message: message.into(),
        });
    }

    /// The entries of a mapping whose keys are all in `allowed`; each other
    /// key is reported (prefixed with `whose`), and left out.
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        whose: &str,
        allowed: &[&'static str],
    ) -> Option<Fields<'n>> {
        let Some(map) = node.as_mapping() else {
            self.error(at(node), format!("{whose}: expected a mapping"));
            return None;
        };
        for key in map.keys() {
            let name = key.as_str();
            if !allowed.contains(&name) {
                let expected = allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let hint = suggestion(name, allowed)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.error(
                    key_at(key),
                    format!("{whose}: unknown field `{name}`{hint}, expected one of {expected}"),
                );
            }
        }
        Some(Fields {
            map,
            at: at(node),
            allowed: allowed.iter().copied().collect(),
        })
    }

    pub fn text(&mut self, node: &Node, what: &str) -> Option<Text> {
        match node.as_scalar() {
            Some(scalar) => Some(Text {
                text: scalar.as_str().to_owned(),
                at: at(node),
            }),
            None => {
                self.error(at(node), format!("{what}: expected a string"));
                None
            }
        }
    }

    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        self.text(node, what).map(|t| t.text)
    }

    pub fn texts(&mut self, node: &Node, what: &str) -> Option<Vec<Text>> {
        let Some(items) = node.as_sequence() else {
            self.error(at(node), format!("{what}: expected a list"));
            return None;
        };
        items.iter().map(|item| self.text(item, what)).collect()
    }

    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        let parsed = node.as_scalar().and_then(MarkedScalarNode::as_bool);
        if parsed.is_none() {
            self.error(at(node), format!("{what}: expected true or false"));
        }
        parsed
    }

    /// A whole number from `min` up.
    pub fn count(&mut self, node: &Node, what: &str, min: u32) -> Option<u32> {
        let parsed = node
            .as_scalar()
            .filter(|s| s.may_coerce())
            .and_then(|s| s.as_str().parse::<u32>().ok());
        match parsed {
            Some(n) if n >= min => Some(n),
            _ => {
                self.error(
                    at(node),
                    format!("{what}: expected a whole number of at least {min}"),
                );
                None
            }
        }
    }

    /// `500ms`, `20s`, `4h` (humantime).
    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match humantime::parse_duration(text.trim()) {
            Ok(duration) => Some(duration),
            Err(e) => {
                self.error(
                    at(node),
                    format!("{what}: `{text}` is not a duration like 500ms, 20s or 4h: {e}"),
                );
                None
            }
        }
    }

    /// One of a few words.
    pub fn word<T: Copy>(&mut self, node: &Node, what: &str, words: &[(&str, T)]) -> Option<T> {
        let text = self.string(node, what)?;
        let found = words.iter().find(|(w, _)| *w == text).map(|(_, v)| *v);
        if found.is_none() {
            let expected = words
                .iter()
                .map(|(w, _)| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(" or ");
            self.error(at(node), format!("{what}: `{text}` is not {expected}"));
        }
        found
    }
}

/// A mapping's entries, looked up by the keys its place allows.
pub(super) struct Fields<'n> {
    map: &'n MarkedMappingNode,
    pub at: Option<Location>,
    allowed: BTreeSet<&'static str>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.map.get_node(key)
    }

    /// Whether the mapping has no keys at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Where `key` is written, if it is.
    pub fn key_at(&self, key: &str) -> Option<Location> {
        self.map.keys().find(|k| k.as_str() == key).and_then(key_at)
    }

    /// The allowed keys present, in document order.
    pub fn present(&self) -> impl Iterator<Item = &'n str> + '_ {
        self.map
            .keys()
            .map(MarkedScalarNode::as_str)
            .filter(|k| self.allowed.contains(k))
    }
}

/// The closest allowed word, if one is close: a typo's likely intent.
fn suggestion<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2 && *distance < candidate.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// A YAML value as JSON, every string in it a [`Text`] with its place.
pub(super) fn templated(node: &Node) -> Templated {
    let mut texts = Vec::new();
    let value = json(node, &mut texts);
    Templated { value, texts }
}

fn json(node: &Node, texts: &mut Vec<Text>) -> Value {
    match node {
        Node::Scalar(scalar) => {
            let value = scalar_value(scalar);
            if let Value::String(text) = &value {
                texts.push(Text {
                    text: text.clone(),
                    at: at(node),
                });
            }
            value
        }
        Node::Sequence(items) => Value::Array(items.iter().map(|item| json(item, texts)).collect()),
        Node::Mapping(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.as_str().to_owned(), json(value, texts)))
                .collect(),
        ),
    }
}

/// A scalar as YAML 1.2's core schema reads it: a quoted one is always a
/// string; a plain one may be null, a boolean or a number.
fn scalar_value(scalar: &MarkedScalarNode) -> Value {
    let text = scalar.as_str();
    if !scalar.may_coerce() {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => number(text).unwrap_or_else(|| Value::String(text.to_owned())),
    }
}

fn number(text: &str) -> Option<Value> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Value::from);
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return i64::from_str_radix(octal, 8).ok().map(Value::from);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<i64>() {
            return Some(Value::from(n));
        }
        if let Ok(n) = text.parse::<u64>() {
            return Some(Value::from(n));
        }
    }
    // Only digits, a point, an exponent and signs: Rust would also read
    // `inf` and `NaN`, which YAML spells otherwise and JSON cannot hold.
    let float_like = unsigned.bytes().any(|b| b.is_ascii_digit())
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if float_like {
        return text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(yaml: &str) -> Value {
        let node = parse(Path::new("t.yaml"), &format!("v: {yaml}")).unwrap();
        templated(node.as_mapping().unwrap().get_node("v").unwrap()).value
    }

    #[test]
    fn scalars_read_as_the_core_schema_says() {
        for (yaml, expected) in [
            ("1", serde_json::json!(1)),
            ("-7", serde_json::json!(-7)),
            ("0x1f", serde_json::json!(31)),
            ("0o17", serde_json::json!(15)),
            ("2.5", serde_json::json!(2.5)),
            ("1e3", serde_json::json!(1000.0)),
            (
                "18446744073709551615",
                serde_json::json!(18446744073709551615u64),
            ),
            ("true", serde_json::json!(true)),
            ("False", serde_json::json!(false)),
            ("~", Value::Null),
            ("null", Value::Null),
            ("'1'", serde_json::json!("1")),
            ("\"true\"", serde_json::json!("true")),
            ("yes", serde_json::json!("yes")),
            ("inf", serde_json::json!("inf")),
            (".nan", serde_json::json!(".nan")),
            ("1.2.3.4", serde_json::json!("1.2.3.4")),
            ("8.8.8.8", serde_json::json!("8.8.8.8")),
            ("[1, a, {b: 2}]", serde_json::json!([1, "a", {"b": 2}])),
        ] {
            assert_eq!(value(yaml), expected, "{yaml}");
        }
    }

    #[test]
    fn typos_get_a_suggestion() {
        let allowed = ["id", "uses", "with", "for_each", "if"];
        assert_eq!(suggestion("wiht", &allowed), Some("with"));
        assert_eq!(suggestion("usess", &allowed), Some("uses"));
        assert_eq!(suggestion("foreach", &allowed), Some("for_each"));
        assert_eq!(suggestion("xy", &allowed), None);
        assert_eq!(suggestion("zzzzzz", &allowed), None);
    }
}
