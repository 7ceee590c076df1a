//! Names that become URL path segments (`/hooks/NAME`), checked the same
//! wherever they are written: in aerie.toml and in a playbook's trigger.

/// Whether `name` is a webhook name: a-z, 0-9, `-` and `_`, not empty.
pub fn check_webhook_name(name: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!(
            "webhook name `{name}` may use only a-z, 0-9, `-` and `_` (it is a URL path segment)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_names_are_url_segments() {
        for ok in ["alerts", "edr-1", "a_b"] {
            assert_eq!(check_webhook_name(ok), Ok(()));
        }
        for bad in ["", "Alerts", "a b", "/hooks/x", "é"] {
            assert!(check_webhook_name(bad).is_err(), "{bad}");
        }
    }
}
