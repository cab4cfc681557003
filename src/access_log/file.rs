//! A file the log is appended to, reopened by name on SIGUSR1 so logrotate can move it
//! away without losing or truncating lines (no `copytruncate`).

use std::path::PathBuf;

use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};

pub(super) struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl FileSink {
    pub(super) async fn open(path: PathBuf) -> std::io::Result<FileSink> {
        let out = BufWriter::new(open_append(&path).await?);
        Ok(FileSink { path, out })
    }

    pub(super) async fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.out.write_all(line).await?;
        self.out.write_all(b"\n").await
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await
    }

    /// Finishes the old file and continues in a new one at the same path. If the new one
    /// cannot be opened, writing goes on to the old one, and the error is logged.
    pub(super) async fn reopen(&mut self) {
        if let Err(e) = self.out.flush().await {
            tracing::error!(path = %self.path.display(), "access log: flush before reopen failed: {e}");
        }
        match open_append(&self.path).await {
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

async fn open_append(path: &std::path::Path) -> std::io::Result<File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}
