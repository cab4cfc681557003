//! A file the log is appended to, reopened by name on SIGUSR1 so logrotate can move it
//! away without losing or truncating lines (no `copytruncate`). Plain blocking writes:
//! they run on the access log's own thread, never on a tunnel's.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub(super) struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl FileSink {
    pub(super) fn open(path: PathBuf) -> std::io::Result<FileSink> {
        let out = BufWriter::new(open_append(&path)?);
        Ok(FileSink { path, out })
    }

    pub(super) fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Finishes the old file and continues in a new one at the same path. If the new one
    /// cannot be opened, writing goes on to the old one, and the error is logged.
    pub(super) fn reopen(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!(path = %self.path.display(), "access log: flush before reopen failed: {e}");
        }
        match open_append(&self.path) {
            Ok(f) => {
                self.out = BufWriter::new(f);
                tracing::info!(path = %self.path.display(), "access log reopened");
            }
            Err(e) => {
                crate::telemetry::metrics().access_log_write_error();
                tracing::error!(
                    path = %self.path.display(),
                    "access log: cannot reopen, writing on to the old file: {e}"
                );
            }
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}
