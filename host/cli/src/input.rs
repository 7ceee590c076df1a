//! `--input JSON|@FILE` and the usage errors it can raise.

use std::io::Read as _;

use serde_json::Value;

/// A mistake in how aerie was invoked (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses `--input`: inline JSON, `@FILE`, or `@-` for stdin. No input is `{}`.
pub fn parse(arg: Option<&str>) -> anyhow::Result<Value> {
    let Some(arg) = arg else {
        return Ok(Value::Object(Default::default()));
    };
    let (text, origin) = match arg.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| UsageError(format!("--input @-: reading stdin: {e}")))?;
            (text, "stdin".to_owned())
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("--input @{path}: {e}")))?;
            (text, path.to_owned())
        }
        None => (arg.to_owned(), "--input".to_owned()),
    };
    serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("{origin} is not valid JSON: {e}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_file_and_errors() {
        assert_eq!(
            parse(Some(r#"{"a":1}"#)).unwrap(),
            serde_json::json!({"a": 1})
        );
        assert_eq!(parse(None).unwrap(), serde_json::json!({}));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        assert_eq!(
            parse(Some(&format!("@{}", path.display()))).unwrap(),
            serde_json::json!([1, 2])
        );

        let err = parse(Some("{nope")).unwrap_err();
        assert!(err.is::<UsageError>());
        assert_eq!(
            err.to_string(),
            "--input is not valid JSON: key must be a string at line 1 column 2"
        );
        let err = parse(Some("@/no/such/file")).unwrap_err();
        assert!(
            err.to_string().starts_with("--input @/no/such/file: "),
            "{err}"
        );
    }
}
