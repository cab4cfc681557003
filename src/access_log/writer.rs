//! The writer: takes records off the queue in batches, numbers and chains each into one
//! JSON line, hands the batch to the sink, and keeps the books: a line that was not
//! written gives its number back and is counted as lost; a count is reported in the log
//! once the writer has caught up (or every [`REPORT_EVERY`] under pressure); checkpoints
//! go at start, rotation, every interval and stop; the state file reserves numbers ahead
//! and carries what is pending across a restart. JSON and hashing happen here, on the
//! access log's own thread, never on a connection's.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::collector::Item;
use super::keys::SigningKey;
use super::ledger::Lost;
use super::line::{self, Head, Kind, PreviousStop, GENESIS};
use super::sink::Sink;
use super::state::Saved;
use super::syslog::{self, Severity};
use super::{Control, Shared, STOP_WAIT};
use crate::config::{AccessLogConfig, SyncMode};
use crate::outcome::Outcome;

/// Records taken off the queue at once: one write for all of them.
const BATCH: usize = 256;
/// How long the writer rests after catching up, before it looks at the queue again.
/// Records that come meanwhile wait in the queue and go out as one write, and their
/// senders wake nobody: without the rest, a busy proxy paid a wake-up of this thread and a
/// write system call for every record (about 30 µs a tunnel, a third of its CPU).
const REST: Duration = Duration::from_millis(10);
/// Numbers reserved per write of the state file: after a crash, numbering goes on past
/// them, so a number is never used twice.
const BLOCK: u64 = 65_536;
/// `sync = "batch"`: at most one `fdatasync` a second.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Under continuous pressure the writer never catches up; lost counts are still
/// reported this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// A reload's switch lets a waiting sink this long for the old sink's last checkpoint.
const SWITCH_WAIT: Duration = Duration::from_secs(1);

/// What a reload may change besides the sink.
pub(super) struct Settings {
    sync: SyncMode,
    checkpoint_interval: Duration,
    key: Option<SigningKey>,
}

impl Settings {
    pub(super) fn of(c: &AccessLogConfig) -> Settings {
        Settings {
            sync: c.sync,
            checkpoint_interval: c.checkpoint_interval,
            key: c.signing_key.clone(),
        }
    }
}

pub(super) struct Writer {
    sink: Sink,
    settings: Settings,
    shared: Arc<Shared>,
    /// The last line written.
    head: Head,
    /// No number above this is reserved in the state file.
    reserved: u64,
    previous_stop: PreviousStop,
    /// Lines written since the last checkpoint.
    unsigned: u64,
    /// Written and not yet synced.
    unsynced: bool,
    last_sync: Instant,
    last_report_try: Instant,
    /// The last report and what it said, until a collector has acknowledged it.
    last_report: Option<(u64, Lost)>,
    // The batch being written: bytes, where each line ends, its number and chain,
    // whether it is a record, and what a collector needs.
    buf: Vec<u8>,
    ends: Vec<usize>,
    heads: Vec<Head>,
    records: Vec<bool>,
    items: Vec<Item>,
}

impl Writer {
    /// `saved`: what the state file held (`Err`: no usable state directory).
    pub(super) fn new(
        sink: Sink,
        settings: Settings,
        shared: Arc<Shared>,
        saved: Result<Option<Saved>, ()>,
    ) -> Writer {
        let (head, previous_stop) = match &saved {
            Err(()) => (Head::START, PreviousStop::StateUnavailable),
            Ok(None) => (Head::START, PreviousStop::None),
            Ok(Some(s)) => {
                let chain = line::unhex(s.chain.as_bytes()).unwrap_or(GENESIS);
                shared.ledger.restore(Lost::from_saved(s));
                if s.clean {
                    (Head { seq: s.seq, chain }, PreviousStop::Clean)
                } else {
                    let seq = s.reserved.max(s.seq);
                    (Head { seq, chain }, PreviousStop::Unclean)
                }
            }
        };
        Writer {
            sink,
            settings,
            shared,
            head,
            reserved: head.seq,
            previous_stop,
            unsigned: 0,
            unsynced: false,
            last_sync: Instant::now(),
            last_report_try: Instant::now(),
            last_report: None,
            buf: Vec::with_capacity(BATCH * 1024),
            ends: Vec::with_capacity(BATCH),
            heads: Vec::with_capacity(BATCH),
            records: Vec::with_capacity(BATCH),
            items: Vec::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Box<Outcome>>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        self.checkpoint(Kind::Start, Some(self.previous_stop)).await;
        self.report().await;
        let mut batch = Vec::with_capacity(BATCH);
        let mut next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
        loop {
            if self.shared.abandoned.load(Ordering::SeqCst) {
                return;
            }
            let sync_at = (self.unsynced && self.settings.sync == SyncMode::Batch)
                .then(|| self.last_sync + SYNC_EVERY);
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(Control::Switch(sink, settings)) => {
                        self.switch(*sink, settings).await;
                        next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
                    }
                    Some(Control::Stop(done)) => {
                        self.stop(&mut rx).await;
                        let _ = done.send(());
                        return;
                    }
                    None => return self.stop(&mut rx).await,
                },
                _ = self.shared.reopen.notified() => self.rotate().await,
                _ = tokio::time::sleep_until(next_checkpoint.into()) => {
                    if self.unsigned > 0 {
                        self.checkpoint(Kind::Interval, None).await;
                    }
                    next_checkpoint = Instant::now() + self.settings.checkpoint_interval;
                }
                _ = tokio::time::sleep_until(sync_at.unwrap_or(far).into()), if sync_at.is_some() => {
                    self.sync();
                }
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return self.stop(&mut rx).await;
                    }
                    self.write_records(&mut batch).await;
                    if rx.is_empty() {
                        self.report().await;
                        self.sync_if_due();
                        tokio::time::sleep(REST).await;
                    } else if self.last_report_try.elapsed() >= REPORT_EVERY {
                        self.report().await;
                    }
                }
            }
        }
    }

    // The queue's items as they come: boxed, so a slot of the bounded queue is a pointer.
    #[allow(clippy::vec_box)]
    async fn write_records(&mut self, batch: &mut Vec<Box<Outcome>>) {
        if self.sink.is_off() {
            batch.clear();
            return;
        }
        for o in batch.drain(..) {
            let prev = self.pending_head();
            let seq = prev.seq + 1;
            self.reserve(seq);
            let start = self.buf.len();
            let chain = line::record(&mut self.buf, seq, &prev.chain, &o);
            let items = self.sink.wants_items();
            self.finish_line(start, Head { seq, chain }, true, || {
                items.then(|| (syslog::record_data(seq, &o), Severity::Informational))
            });
        }
        self.send().await;
    }

    /// Writes a checkpoint; true when it is written.
    async fn checkpoint(&mut self, kind: Kind, previous_stop: Option<PreviousStop>) -> bool {
        if self.sink.is_off() {
            return false;
        }
        let prev = self.pending_head();
        let seq = prev.seq + 1;
        self.reserve(seq);
        let start = self.buf.len();
        let chain = line::checkpoint(
            &mut self.buf,
            seq,
            &prev.chain,
            kind,
            SystemTime::now(),
            previous_stop,
            self.settings.key.as_ref(),
        );
        let items = self.sink.wants_items();
        self.finish_line(start, Head { seq, chain }, false, || {
            items.then(|| {
                (
                    syslog::event_data(seq, "checkpoint"),
                    Severity::Informational,
                )
            })
        });
        let written = self.send().await == 1;
        if written {
            self.unsigned = 0;
            crate::telemetry::metrics().access_log_checkpoint();
        }
        written
    }

    /// Writes the count of lost records, if any is pending; it stays pending when the
    /// line cannot be written.
    async fn report(&mut self) {
        self.last_report_try = Instant::now();
        if self.sink.is_off() {
            return;
        }
        let Some(lost) = self.shared.ledger.take() else {
            return;
        };
        let prev = self.pending_head();
        let seq = prev.seq + 1;
        self.reserve(seq);
        let start = self.buf.len();
        let chain = line::lost(
            &mut self.buf,
            seq,
            &prev.chain,
            lost.count,
            lost.span(),
            &lost.seqs,
        );
        let items = self.sink.wants_items();
        self.finish_line(start, Head { seq, chain }, false, || {
            items.then(|| (syslog::event_data(seq, "records_lost"), Severity::Warning))
        });
        if self.send().await == 1 {
            self.sync();
            self.shared.ledger.reported();
            self.save_state(false);
            let (from, to) = lost.span();
            tracing::warn!(
                count = lost.count,
                from = %crate::outcome::rfc3339(from),
                to = %crate::outcome::rfc3339(to),
                "access log: lost records reported in the log (records_lost, seq {seq})"
            );
            self.last_report = Some((seq, lost));
        } else {
            self.shared.ledger.not_reported();
        }
    }

    /// SIGUSR1: the last line of the old file is a checkpoint, the first of the new one too.
    async fn rotate(&mut self) {
        self.checkpoint(Kind::Rotate, None).await;
        self.sync();
        match self.sink.reopen() {
            Ok(true) => {
                self.checkpoint(Kind::Open, None).await;
            }
            Ok(false) => {}
            Err(e) => {
                crate::telemetry::metrics().access_log_write_error();
                tracing::error!(
                    sink = %self.sink.name(),
                    "access log: cannot reopen, writing on to the old file: {}",
                    crate::error_text::io(&e)
                );
            }
        }
    }

    /// A reload changed the sink or its settings: the numbering and chain go on.
    async fn switch(&mut self, sink: Sink, settings: Settings) {
        self.shared.stop.set(Some(Instant::now() + SWITCH_WAIT));
        self.checkpoint(Kind::Rotate, None).await;
        self.sync();
        let shared = self.shared.clone();
        let undelivered = self.sink.finish(&shared.stop).await;
        self.undelivered(&undelivered);
        self.shared.stop.set(None);
        tracing::info!(from = %self.sink.name(), to = %sink.name(), "access log: sink changed by reload");
        self.sink = sink;
        self.settings = settings;
        self.checkpoint(Kind::Open, None).await;
        self.report().await;
    }

    /// Shutdown: writes what is queued while time allows, counts the rest, reports,
    /// checkpoints, and saves the state.
    async fn stop(&mut self, rx: &mut mpsc::Receiver<Box<Outcome>>) {
        if self.shared.stop.deadline().is_none() {
            self.shared.stop.finally(Instant::now() + STOP_WAIT);
        }
        let mut batch = Vec::with_capacity(BATCH);
        while !self.shared.stop.expired() {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            self.write_records(&mut batch).await;
            if self.shared.abandoned.load(Ordering::SeqCst) {
                return;
            }
        }
        rx.close();
        let mut left = 0;
        while rx.try_recv().is_ok() {
            left += 1;
        }
        self.shared
            .ledger
            .lost(left, "shutdown: the sink did not take them in time");
        self.report().await;
        self.checkpoint(Kind::Stop, None).await;
        let shared = self.shared.clone();
        let undelivered = self.sink.finish(&shared.stop).await;
        self.undelivered(&undelivered);
        self.sync();
        if self.shared.abandoned.load(Ordering::SeqCst) {
            return;
        }
        self.save_state(true);
        // Unlocked: a next writer (the next run, a test) may take the state.
        if let Ok(mut b) = self.shared.books.lock() {
            b.state = None;
        }
        let pending = self.shared.ledger.pending();
        if pending > 0 {
            tracing::error!(
                pending,
                "access log: {pending} lost records could not be reported in the log before exit; the next start reports them"
            );
        }
    }

    /// Lines a collector never acknowledged: lost records by their numbers, and a report
    /// among them puts its count back.
    fn undelivered(&mut self, lines: &[(u64, bool)]) {
        let ledger = &self.shared.ledger;
        for &(seq, record) in lines {
            if record {
                ledger.lost_numbered(seq, seq, "the collector did not acknowledge them");
            } else {
                ledger.note_numbers(seq, seq);
            }
            if let Some((report, lost)) = self.last_report.take() {
                if report == seq {
                    ledger.restore(lost);
                } else {
                    self.last_report = Some((report, lost));
                }
            }
        }
    }

    /// The line the next one follows: the last of the batch being built, or the head.
    fn pending_head(&self) -> Head {
        self.heads.last().copied().unwrap_or(self.head)
    }

    fn finish_line(
        &mut self,
        start: usize,
        head: Head,
        record: bool,
        item: impl FnOnce() -> Option<(String, Severity)>,
    ) {
        let end = self.buf.len();
        self.buf.push(b'\n');
        self.ends.push(self.buf.len());
        self.heads.push(head);
        self.records.push(record);
        if let Some((sd, severity)) = item() {
            self.items.push(Item {
                seq: head.seq,
                start,
                end,
                sd,
                severity,
                record,
            });
        }
    }

    /// Writes the batch built so far; lines that did not get out give their numbers
    /// back and, if records, are counted as lost. Returns how many were written.
    async fn send(&mut self) -> usize {
        let n = self.ends.len();
        if n == 0 {
            return 0;
        }
        if let Ok(mut b) = self.shared.books.lock() {
            b.inflight = self.records.iter().filter(|r| **r).count();
        }
        let shared = self.shared.clone();
        let (written, error) = self
            .sink
            .write(&self.buf, &self.ends, &self.items, &shared.stop)
            .await;
        if self.shared.abandoned.load(Ordering::SeqCst) {
            return written;
        }
        if written > 0 {
            self.head = self.heads[written - 1];
            self.unsigned += written as u64;
            self.unsynced = true;
        }
        let lost = self.records[written..].iter().filter(|r| **r).count() as u64;
        if let Some(e) = &error {
            if matches!(self.sink, Sink::File(_)) {
                crate::telemetry::metrics().access_log_write_error();
            }
            if lost > 0 {
                let why = format!(
                    "writing to {} failed: {}",
                    self.sink.name(),
                    crate::error_text::io(e)
                );
                self.shared.ledger.lost(lost, &why);
            } else if written < n {
                // The loss of records is what the service log warns about (rate-limited);
                // a report that failed stays pending and is tried again.
                tracing::debug!(sink = %self.sink.name(), "access log: a checkpoint or report could not be written: {}", crate::error_text::io(e));
            }
        } else if lost > 0 {
            self.shared.ledger.lost(lost, "the sink gave up");
        }
        if let Ok(mut b) = self.shared.books.lock() {
            b.head = self.head;
            b.inflight = 0;
        }
        self.buf.clear();
        self.ends.clear();
        self.heads.clear();
        self.records.clear();
        self.items.clear();
        written
    }

    fn sync_if_due(&mut self) {
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync();
        }
    }

    /// `fdatasync` what was written, for `sync = "batch"`.
    fn sync(&mut self) {
        if !self.unsynced || self.settings.sync != SyncMode::Batch {
            return;
        }
        self.last_sync = Instant::now();
        self.unsynced = false;
        if let Err(e) = self.sink.sync() {
            crate::telemetry::metrics().access_log_write_error();
            tracing::error!(
                sink = %self.sink.name(),
                seq = self.head.seq,
                "access log: fdatasync failed; lines written since the last sync may not survive a power loss: {}",
                crate::error_text::io(&e)
            );
        }
    }

    /// Makes sure `seq` is reserved in the state file before a line carries it.
    fn reserve(&mut self, seq: u64) {
        if seq > self.reserved {
            self.reserved = seq - 1 + BLOCK;
            self.save_state(false);
        }
    }

    fn save_state(&mut self, clean: bool) {
        let mut saved = Saved {
            seq: self.head.seq,
            chain: line::hex(&self.head.chain),
            reserved: self.reserved,
            clean,
            ..Saved::default()
        };
        self.shared.ledger.snapshot().save_into(&mut saved);
        let Ok(mut b) = self.shared.books.lock() else {
            return;
        };
        b.head = self.head;
        b.reserved = self.reserved;
        if let Some(state) = &mut b.state {
            if let Err(e) = state.save(&saved) {
                tracing::error!(
                    path = %state.path().display(),
                    "access log: cannot write the state file: {}",
                    crate::error_text::io(&e)
                );
            }
        }
    }
}
