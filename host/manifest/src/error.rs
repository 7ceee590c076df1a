use std::fmt;
use std::path::{Path, PathBuf};

pub use aerie_contract::Location;

/// Why a manifest or a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected shape.
    #[error("{}{}: {message}", path.display(), Loc(location))]
    Parse {
        path: PathBuf,
        location: Option<Location>,
        message: String,
    },
    /// The file parsed but a value in it is not acceptable.
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

struct Loc<'a>(&'a Option<Location>);

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => write!(f, ":{}:{}", l.line, l.column),
            None => Ok(()),
        }
    }
}

impl Error {
    pub(crate) fn invalid(
        path: &Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            path: path.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses `source` as TOML into `T`, turning serde's error into one that names the
/// file, the line and the column.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    source: &str,
) -> Result<T, Error> {
    toml::from_str(source).map_err(|err| Error::Parse {
        path: path.to_owned(),
        location: err
            .span()
            .map(|span| Location::of_offset(source, span.start)),
        message: err.message().trim().to_owned(),
    })
}

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|cause| Error::Read {
        path: path.to_owned(),
        cause,
    })
}
