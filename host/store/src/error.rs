//! The store's errors: typed at the crate's boundary, so a caller can tell a
//! refused decision or correction from a damaged store or a database that is
//! down, and each names what the store was doing.

use crate::approvals::DecisionError;
use crate::cases::CaseError;
use crate::classify::CorrectionError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store URL `{0}`: use sqlite://PATH or postgres://...")]
    Url(String),
    /// A query, a connection, a migration or a file failed; `doing` says
    /// what the store was at, the source why.
    #[error("{doing}")]
    Failed {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value cannot be what it should be: the file was edited, or
    /// written by a broken build. Never guessed around.
    #[error("run {run} is damaged in the store: {what}: {why}")]
    Damaged {
        run: String,
        what: String,
        why: String,
    },
    /// The batch a write was in could not be committed.
    #[error("{0}")]
    Write(String),
    #[error("the store's writer has stopped")]
    WriterStopped,
    #[error(transparent)]
    Decision(#[from] DecisionError),
    #[error(transparent)]
    Correction(#[from] CorrectionError),
    #[error(transparent)]
    Case(#[from] CaseError),
}

impl From<sqlx::Error> for StoreError {
    fn from(source: sqlx::Error) -> StoreError {
        StoreError::Failed {
            doing: "querying the store".to_owned(),
            source: Box::new(source),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(source: serde_json::Error) -> StoreError {
        StoreError::Failed {
            doing: "reading or writing a stored JSON value".to_owned(),
            source: Box::new(source),
        }
    }
}

/// `.doing("recording the run")`: what the store was at when `E` happened.
pub(crate) trait Doing<T> {
    fn doing(self, what: &str) -> Result<T>;
    fn doing_with(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Doing<T> for std::result::Result<T, E> {
    fn doing(self, what: &str) -> Result<T> {
        self.doing_with(|| what.to_owned())
    }

    fn doing_with(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Failed {
            doing: what(),
            source: Box::new(source),
        })
    }
}
