//! Standard output: under systemd the journal, which keeps the lines with the unit's
//! other output (`journalctl -u lbo-proxy -o cat`). Blocking writes, on the access log's
//! own thread.

use std::io::{BufWriter, Stdout, Write};

pub(super) struct StdoutSink {
    out: BufWriter<Stdout>,
}

impl StdoutSink {
    pub(super) fn new() -> StdoutSink {
        StdoutSink {
            out: BufWriter::new(std::io::stdout()),
        }
    }

    pub(super) fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
