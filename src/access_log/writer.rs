//! The writer task: takes records off the queue in order, turns each into one JSON line,
//! and hands it to the sink; reports lost records once it has caught up. It runs on the
//! access log's own thread, so the file and stdout sinks write with plain blocking calls.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::mpsc;

use super::collector::Collector;
use super::file::FileSink;
use super::stdout::StdoutSink;
use super::syslog::Severity;
use super::{Entry, Shared};
use crate::config::AccessLogTarget;
use crate::outcome::rfc3339;

/// Where lines go.
pub(super) enum Sink {
    Stdout(StdoutSink),
    File(FileSink),
    Syslog(Collector),
}

impl Sink {
    pub(super) fn open(target: &AccessLogTarget) -> std::io::Result<Sink> {
        Ok(match target {
            AccessLogTarget::Stdout | AccessLogTarget::Off => Sink::Stdout(StdoutSink::new()),
            AccessLogTarget::File(path) => Sink::File(FileSink::open(path.clone())?),
            AccessLogTarget::Syslog(config) => Sink::Syslog(Collector::new(config.clone())),
        })
    }

    /// Writes one line (without its newline).
    async fn write(&mut self, line: &[u8], severity: Severity) -> std::io::Result<()> {
        match self {
            Sink::Stdout(s) => s.write(line),
            Sink::File(f) => f.write(line),
            Sink::Syslog(c) => c.send(line, severity).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.flush(),
            // Each record went out whole in `send`.
            Sink::Syslog(_) => Ok(()),
        }
    }

    fn reopen(&mut self) {
        if let Sink::File(f) = self {
            f.reopen();
        }
    }
}

/// The line written when records were lost, once the pressure is over.
#[derive(Serialize)]
struct DroppedReport {
    time: String,
    event: &'static str,
    /// Records lost.
    lines: u64,
    /// When the first of them was lost.
    since: String,
}

/// How long the writer rests after catching up, before it looks at the queue again.
/// Records that come meanwhile wait in the queue and go out as one write, and their
/// senders wake nobody: without the rest, a busy proxy paid a wake-up of this thread and a
/// write system call for every record (about 30 µs a tunnel, a third of its CPU).
const REST: std::time::Duration = std::time::Duration::from_millis(10);

pub(super) async fn run(mut rx: mpsc::Receiver<Entry>, mut sink: Sink, shared: Arc<Shared>) {
    let metrics = crate::telemetry::metrics();
    let mut line = Vec::with_capacity(1024);
    loop {
        let entry = tokio::select! {
            biased;
            _ = shared.reopen.notified() => {
                sink.reopen();
                continue;
            }
            entry = rx.recv() => match entry {
                Some(e) => e,
                None => break,
            },
        };
        match entry {
            Entry::Record(outcome) => {
                line.clear();
                if serde_json::to_writer(&mut line, &*outcome).is_ok() {
                    write(&mut sink, &line, Severity::Informational, &shared).await;
                }
            }
            Entry::Flush(done) => {
                flush(&mut sink).await;
                let _ = done.send(());
            }
        }
        metrics.access_log_queue_depth(rx.len());
        if rx.is_empty() {
            // Caught up: the pressure, if there was any, is over.
            if let Some((n, since)) = shared.take_lost() {
                report_lost(&mut sink, n, since, &shared).await;
            }
            flush(&mut sink).await;
            tokio::time::sleep(REST).await;
        }
    }
    if let Some((n, since)) = shared.take_lost() {
        report_lost(&mut sink, n, since, &shared).await;
    }
    flush(&mut sink).await;
}

async fn write(sink: &mut Sink, line: &[u8], severity: Severity, shared: &Shared) {
    if let Err(e) = sink.write(line, severity).await {
        crate::telemetry::metrics().access_log_write_error();
        tracing::error!("access log: write failed, record lost: {e}");
        shared.lost(1);
    }
}

async fn flush(sink: &mut Sink) {
    if let Err(e) = sink.flush().await {
        crate::telemetry::metrics().access_log_write_error();
        tracing::error!("access log: flush failed: {e}");
    }
}

async fn report_lost(sink: &mut Sink, lines: u64, since: SystemTime, shared: &Shared) {
    let since = rfc3339(since);
    tracing::warn!(
        lines,
        %since,
        "access log: records were dropped because the sink could not keep up"
    );
    let report = DroppedReport {
        time: rfc3339(SystemTime::now()),
        event: "access_log_dropped",
        lines,
        since,
    };
    if let Ok(line) = serde_json::to_vec(&report) {
        write(sink, &line, Severity::Warning, shared).await;
    }
}
