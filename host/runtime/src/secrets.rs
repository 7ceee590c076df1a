//! Secrets: resolved from the operator's binding, held only by the broker, and
//! scrubbed from everything the host prints or stores.
//!
//! A [`Secret`] has no `Display` and its `Debug` prints stars, so it cannot end
//! up in a log line by accident. Its value leaves this module only to be written
//! into an outgoing request by the broker.

use std::fmt;
use std::sync::Arc;

use aerie_manifest::SecretSource;

/// A credential's value.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// Reads the secret from where the operator bound it ([`SecretSource::read`]).
    pub fn resolve(source: &SecretSource) -> Result<Secret, String> {
        Ok(Secret(source.read()?.into()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `prefix` and this secret as one value, such as the `user:secret` pair a
    /// Basic credential sends, which must be scrubbed whole.
    pub(crate) fn prefixed(&self, prefix: &str) -> Secret {
        Secret(format!("{prefix}{}", self.0).into())
    }

    /// A value made from a secret (the header it is sent in), as secret as it.
    pub(crate) fn derived(value: String) -> Secret {
        Secret(value.into())
    }
}

use crate::scrub::Patterns;
pub use crate::scrub::REDACTED;

/// Replaces every known secret value, in every form [`crate::scrub`] knows,
/// in text or JSON with [`REDACTED`].
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    patterns: Option<Arc<Patterns>>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Self {
        let secrets: Vec<Secret> = secrets.into_iter().collect();
        Redactor {
            patterns: Patterns::new(secrets.iter().map(Secret::expose)).map(Arc::new),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_none()
    }

    /// The patterns the broker scrubs responses with.
    pub(crate) fn patterns(&self) -> Option<&Arc<Patterns>> {
        self.patterns.as_ref()
    }

    pub fn redact(&self, text: &str) -> String {
        match &self.patterns {
            Some(patterns) => patterns.scrub_str(text).into_owned(),
            None => text.to_owned(),
        }
    }

    /// Redacts every string (keys included) inside a JSON value.
    pub fn redact_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.is_empty() {
            return value;
        }
        match value {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.redact(&k), self.redact_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(value: &str) -> Secret {
        Secret(value.into())
    }

    #[test]
    fn redacts_text_and_json_everywhere() {
        let r = Redactor::new([secret("s3cr3t-key"), secret("s3cr3t-key-long")]);
        assert_eq!(
            r.redact("a s3cr3t-key-long b s3cr3t-key"),
            "a [REDACTED] b [REDACTED]"
        );
        assert_eq!(
            r.redact_json(json!({"s3cr3t-key": ["x s3cr3t-key", 1], "n": null})),
            json!({"[REDACTED]": ["x [REDACTED]", 1], "n": null})
        );
    }

    #[test]
    fn redacts_encoded_forms_too() {
        use base64::Engine as _;
        let r = Redactor::new([secret("s3cr3t-key")]);
        let encoded = base64::engine::general_purpose::STANDARD.encode("s3cr3t-key");
        assert_eq!(r.redact(&format!("k={encoded}")), "k=[REDACTED]");
        assert_eq!(r.redact(&hex::encode("s3cr3t-key")), "[REDACTED]");
    }

    #[test]
    fn debug_never_prints_the_value() {
        assert_eq!(format!("{:?}", secret("hunter22")), "Secret(***)");
    }

    #[test]
    fn resolves_env_and_file_sources() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "from-file\n").unwrap();
        assert_eq!(
            Secret::resolve(&SecretSource::File(path)).unwrap().expose(),
            "from-file"
        );

        let missing =
            Secret::resolve(&SecretSource::Env("AERIE_TEST_SURELY_UNSET".into())).unwrap_err();
        assert!(
            missing.contains("AERIE_TEST_SURELY_UNSET, which is not set"),
            "{missing}"
        );
    }
}
