//! One error type for the crate. Every message names what it is about — the space file and
//! line, the study database, the trial — so a failed search says where to look.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A malformed search space: file, line and column (1-based), and what is wrong.
    #[error("{path}:{line}:{column}: {message}")]
    Space {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The study database could not be reached or refused an operation.
    #[error("study {location}: {message}")]
    Study { location: String, message: String },
    /// A hard limit that no candidate of the space can meet.
    #[error("{0}")]
    Infeasible(String),
    /// A trial that could not be trained, quantised, compiled or profiled.
    #[error("trial: {0}")]
    Trial(String),
    #[error("{0}")]
    Invalid(String),
}

impl SearchError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Line and column (1-based) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 9), (2, 4));
        assert_eq!(line_column(text, 1000), (3, 1));
    }
}
