//! What one plugin call leaves behind besides its result.

use serde::{Deserialize, Serialize};

/// One HTTP request a plugin made through the broker, as the run records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub method: String,
    /// As the plugin asked for it; secrets are redacted.
    pub url: String,
    /// `None` when the request was refused or failed before a response.
    pub status: Option<u16>,
    /// Response body bytes the plugin read.
    pub bytes: u64,
    /// Until the response headers arrived.
    pub ms: u64,
    /// Why the broker refused or cut the request, if it did.
    pub refused: Option<String>,
}

/// A line a plugin wrote through `wasi:logging`, secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn`, `error` or `critical`.
    pub level: String,
    /// The plugin's own context string (often a module name); may be empty.
    pub context: String,
    pub message: String,
    /// When the host received it: RFC 3339, UTC.
    pub at: String,
}
