//! Error codes: the plugin contract's (`error-code` in `wit/plugin.wit`) and
//! the few the engine adds for failures that are no plugin's.

use std::fmt;
use std::str::FromStr;

/// Why a step or a plugin call failed, spelled as the WIT spells it.
///
/// Policy (`Denied`), plugin bugs (`Internal`) and upstream trouble
/// (`Upstream`, `RateLimited`, `Timeout`) stay distinguishable all the way to
/// the analyst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The input does not fit the action (or a template did not render).
    InvalidInput,
    NotFound,
    Unauthorized,
    RateLimited,
    /// The service behind the plugin failed.
    Upstream,
    /// A deadline passed: the plugin's own, the sandbox's or the step's.
    Timeout,
    /// The host refused by policy; nothing was sent.
    Denied,
    /// The plugin or the host broke.
    Internal,
    /// Engine only: a `fail` step, or a block or called playbook that failed.
    Failed,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::InvalidInput,
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
        ErrorCode::Upstream,
        ErrorCode::Timeout,
        ErrorCode::Denied,
        ErrorCode::Internal,
        ErrorCode::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::Upstream => "upstream",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Denied => "denied",
            ErrorCode::Internal => "internal",
            ErrorCode::Failed => "failed",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is no error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an error code")]
pub struct UnknownCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownCode;

    fn from_str(text: &str) -> Result<ErrorCode, UnknownCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
            .ok_or_else(|| UnknownCode(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_itself() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
        assert_eq!(
            "oops".parse::<ErrorCode>().unwrap_err().to_string(),
            "`oops` is not an error code"
        );
    }
}
