//! The auditor's report (外部監査) required before an α′ migration: what the configuration
//! breaks out and why, traceable to its sources and hashes, with evidence from the real
//! decision function that lookalike destinations never go direct.
//!
//! [`sources`] reads and hashes, [`report`] builds the data (pure), [`html`] and
//! [`markdown`] render it in the words of [`lang`].

pub mod html;
pub mod lang;
pub mod log_evidence;
pub mod markdown;
pub mod oracle;
pub mod probes;
pub mod report;
mod safeguards;
pub mod sources;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

pub use lang::Lang;
pub use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Config(crate::config::ConfigError),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("re-reading the validated configuration: {0}")]
    Reparse(String),
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "html" => Ok(Format::Html),
            "md" | "markdown" => Ok(Format::Markdown),
            _ => Err(format!("{s:?}: use html or md")),
        }
    }
}

/// Loads the configuration (`None`: the embedded default) and builds its report,
/// restricted to one profile when `profile` is given.
pub fn generate(
    config: Option<&Path>,
    profile: Option<&str>,
    now: SystemTime,
) -> Result<Report, AuditError> {
    let sources = sources::load(config)?;
    report::build(&sources, profile, now)
}

/// The report as a complete document.
pub fn render(report: &Report, lang: Lang, format: Format) -> String {
    match format {
        Format::Html => html::render(report, lang.text()),
        Format::Markdown => markdown::render(report, lang.text()),
    }
}
