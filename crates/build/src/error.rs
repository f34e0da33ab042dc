//! The one error type of the Dockerfile front end: every failure is bad input (a 400 in the API).

/// Why a Dockerfile, a word or a `.dockerignore` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A Dockerfile instruction (or the file as a whole, at `line`) is malformed.
    #[error("Dockerfile line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// A word could not be expanded (`${a:?}`, an unterminated quote, a bad substitution).
    #[error("failed to process \"{word}\": {message}")]
    Expand { word: String, message: String },
    /// The Dockerfile has no instruction at all.
    #[error("file with no instructions")]
    Empty,
    /// The Dockerfile has only ARGs, no FROM.
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// `--target` names no stage.
    #[error("target stage \"{0}\" could not be found")]
    TargetNotFound(String),
    /// A `.dockerignore` line is malformed.
    #[error(".dockerignore line {line}: {message}")]
    Ignore { line: usize, message: String },
}

impl Error {
    pub(crate) fn at(line: usize, message: impl Into<String>) -> Error {
        Error::Syntax { line, message: message.into() }
    }

    /// The same error placed at a Dockerfile line (an expansion failure inside an instruction).
    pub(crate) fn on_line(self, line: usize) -> Error {
        match self {
            Error::Syntax { .. } => self,
            other => Error::at(line, other.to_string()),
        }
    }
}

/// Short for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
