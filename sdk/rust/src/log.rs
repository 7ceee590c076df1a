//! Log lines the host attaches to the run (secrets redacted, size capped).

use crate::bindings::wasi::logging::logging::{Level, log};

const CONTEXT: &str = "plugin";

pub fn debug(message: &str) {
    log(Level::Debug, CONTEXT, message);
}
pub fn info(message: &str) {
    log(Level::Info, CONTEXT, message);
}
pub fn warn(message: &str) {
    log(Level::Warn, CONTEXT, message);
}
pub fn error(message: &str) {
    log(Level::Error, CONTEXT, message);
}
