use std::fmt;

use crate::bindings::aerie::plugin::types;

/// Why an action failed; the host shows `code` and `message` to the analyst and
/// retries only what is `retryable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
}

pub use types::ErrorCode;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retryable = matches!(code, ErrorCode::RateLimited | ErrorCode::Timeout);
        Error {
            code,
            message: message.into(),
            retryable,
        }
    }

    /// Overrides the default: rate limits and timeouts are retryable, the rest not.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidInput, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::NotFound, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Unauthorized, message)
    }
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::RateLimited, message)
    }
    pub fn upstream(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Upstream, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Timeout, message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Denied, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for types::PluginError {
    fn from(e: Error) -> Self {
        types::PluginError {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        }
    }
}
