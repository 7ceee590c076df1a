use std::fmt;
use std::path::PathBuf;

use aerie_contract::Location;

/// A problem in a playbook file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybookError {
    pub file: PathBuf,
    pub at: Option<Location>,
    pub message: String,
}

impl fmt::Display for PlaybookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{at}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PlaybookError {}

/// Every problem found in a playbook, in the order of the file, one a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybookErrors(pub Vec<PlaybookError>);

impl fmt::Display for PlaybookErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlaybookErrors {}
