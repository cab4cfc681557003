//! Config errors that point at the file, line and key, collected so one `check` run
//! reports every problem at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Collects problems for one source file, turning byte spans into line numbers.
pub struct Problems<'a> {
    file: &'a Path,
    text: &'a str,
    pub(crate) found: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Problems {
            file,
            text,
            found: Vec::new(),
        }
    }

    pub fn at(&mut self, span: Range<usize>, key: impl Into<String>, message: impl fmt::Display) {
        let line = line_of(self.text, span.start);
        self.found.push(Problem {
            file: self.file.to_path_buf(),
            line,
            key: key.into(),
            message: message.to_string(),
        });
    }

    pub fn file(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.found.push(Problem {
            file: self.file.to_path_buf(),
            line: 0,
            key: key.into(),
            message: message.to_string(),
        });
    }

    /// A TOML syntax or schema error (unknown key, wrong type), with its line.
    pub fn toml(&mut self, err: &toml::de::Error) {
        let line = err.span().map(|s| line_of(self.text, s.start)).unwrap_or(0);
        let message = err.message().trim().to_string();
        self.found.push(Problem {
            file: self.file.to_path_buf(),
            line,
            key: String::new(),
            message,
        });
    }

    /// A problem found in another file (an allowlist) while validating this one.
    pub fn push(&mut self, problem: Problem) {
        self.found.push(problem);
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
