//! Standard output: under systemd the journal, which keeps the lines with the unit's
//! other output (`journalctl -u lbo-proxy -o cat`).

use tokio::io::{AsyncWriteExt, BufWriter, Stdout};

pub(super) struct StdoutSink {
    out: BufWriter<Stdout>,
}

impl StdoutSink {
    pub(super) fn new() -> StdoutSink {
        StdoutSink {
            out: BufWriter::new(tokio::io::stdout()),
        }
    }

    pub(super) async fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.out.write_all(line).await?;
        self.out.write_all(b"\n").await
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await
    }
}
