//! Why a run could not be driven on. A failing step is not one of these: it
//! is a failed run, recorded as such. These are the cases where the runner
//! itself stops, and the run waits in the store to be resumed.

use std::error::Error;

use crate::playbook::PlaybookErrors;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The input does not fit the playbook's declared inputs; nothing was
    /// recorded.
    #[error("{playbook}: {why}")]
    Input { playbook: String, why: String },
    /// A write or read failed; the run stays as its last write left it.
    /// The store's own error says what it was doing.
    #[error(transparent)]
    Store(Box<dyn Error + Send + Sync>),
    /// Another process took the run over (this one's lease expired).
    #[error("run {run}: it was taken over by another process")]
    LeaseLost { run: String },
    /// A resumed run's stored playbook does not read.
    #[error("run {run}: its stored playbook does not read")]
    Definition {
        run: String,
        #[source]
        source: PlaybookErrors,
    },
    /// The run's records do not match its playbook (a damaged store).
    #[error("run {run} has no record of step `{step}`")]
    NoRecord { run: String, step: String },
}

/// `.stored()?`: a store failure as the runner reports it.
pub(super) trait Stored<T> {
    fn stored(self) -> Result<T, RunError>;
}

impl<T, E: Error + Send + Sync + 'static> Stored<T> for Result<T, E> {
    fn stored(self) -> Result<T, RunError> {
        self.map_err(|e| RunError::Store(Box::new(e)))
    }
}

/// An error and its causes, `outer: inner: root`, for a step's message.
pub(super) fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}
