//! The count of records lost and not yet reported in the log. Connections add to it when
//! the queue is full, the writer when a write fails; the writer takes it out to write a
//! `records_lost` line and puts it back if that line could not be written, so a count
//! only leaves the ledger once the log says it. While records are being lost the service
//! log says so every [`WARN_EVERY`], not only once the pressure is over.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::state::{add_range, Saved};

pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Lost records: how many, when the first and the last were lost, and the numbers of
/// those that had been numbered (sent, then not delivered).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    pub count: u64,
    pub from: Option<SystemTime>,
    pub to: Option<SystemTime>,
    pub seqs: Vec<(u64, u64)>,
}

impl Lost {
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.seqs.is_empty()
    }

    fn add(&mut self, n: u64, at: SystemTime) {
        self.count += n;
        self.from = Some(self.from.map_or(at, |f| f.min(at)));
        self.to = Some(self.to.map_or(at, |t| t.max(at)));
    }

    pub fn merge(&mut self, other: Lost) {
        self.count += other.count;
        self.from = match (self.from, other.from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.to = match (self.to, other.to) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (a, b) in other.seqs {
            add_range(&mut self.seqs, a, b);
        }
    }

    /// The span to report: both ends are known once anything was lost.
    pub fn span(&self) -> (SystemTime, SystemTime) {
        let from = self.from.unwrap_or_else(SystemTime::now);
        (from, self.to.unwrap_or(from))
    }

    pub fn from_saved(s: &Saved) -> Lost {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        Lost {
            count: s.lost,
            from: (s.lost > 0).then(|| at(s.lost_from_ms)),
            to: (s.lost > 0).then(|| at(s.lost_to_ms)),
            seqs: s.lost_seqs.clone(),
        }
    }

    pub fn save_into(&self, s: &mut Saved) {
        let ms = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        s.lost = self.count;
        s.lost_from_ms = ms(self.from);
        s.lost_to_ms = ms(self.to);
        s.lost_seqs = self.seqs.clone();
    }
}

#[derive(Default)]
pub struct Ledger {
    live: Mutex<Lost>,
    /// The count being reported (taken out, not yet known to be written).
    reporting: Mutex<Lost>,
    warn: Mutex<Warn>,
}

#[derive(Default)]
struct Warn {
    last: Option<Instant>,
    since: u64,
}

impl Ledger {
    /// `n` records lost now; `why` says where, for the service log.
    pub fn lost(&self, n: u64, why: &str) {
        self.lost_at(n, SystemTime::now(), why);
    }

    pub fn lost_at(&self, n: u64, at: SystemTime, why: &str) {
        if n == 0 {
            return;
        }
        if let Ok(mut l) = self.live.lock() {
            l.add(n, at);
        }
        let m = crate::telemetry::metrics();
        m.access_log_dropped(n);
        m.access_log_unreported(self.pending());
        self.warn(n, why);
    }

    /// Records that were numbered and sent, then not delivered.
    pub fn lost_numbered(&self, from: u64, to: u64, why: &str) {
        let n = to - from + 1;
        if let Ok(mut l) = self.live.lock() {
            add_range(&mut l.seqs, from, to);
        }
        self.lost(n, why);
    }

    /// Numbers of lines that were not records (checkpoints, reports) sent and not
    /// delivered: no count, but the verifier must not take their gap for a deletion.
    pub fn note_numbers(&self, from: u64, to: u64) {
        if let Ok(mut l) = self.live.lock() {
            add_range(&mut l.seqs, from, to);
        }
    }

    /// Carries counts over from elsewhere (the state file of the run before) without
    /// counting them again in the metrics.
    pub fn restore(&self, lost: Lost) {
        if let Ok(mut l) = self.live.lock() {
            l.merge(lost);
        }
        crate::telemetry::metrics().access_log_unreported(self.pending());
    }

    /// Takes the pending count out to report it; `None` when nothing is pending.
    pub fn take(&self) -> Option<Lost> {
        let taken = self.live.lock().map(|mut l| std::mem::take(&mut *l)).ok()?;
        if taken.is_empty() {
            return None;
        }
        if let Ok(mut r) = self.reporting.lock() {
            r.merge(taken.clone());
        }
        Some(taken)
    }

    /// The report of what [`take`](Ledger::take) gave is in the log.
    pub fn reported(&self) {
        if let Ok(mut r) = self.reporting.lock() {
            *r = Lost::default();
        }
        crate::telemetry::metrics().access_log_unreported(self.pending());
    }

    /// The report could not be written: the count stays pending.
    pub fn not_reported(&self) {
        let back = self
            .reporting
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        if let Ok(mut l) = self.live.lock() {
            l.merge(back);
        }
    }

    /// Everything not yet reported in the log (for the state file).
    pub fn snapshot(&self) -> Lost {
        let mut all = self.live.lock().map(|l| l.clone()).unwrap_or_default();
        if let Ok(r) = self.reporting.lock() {
            all.merge(r.clone());
        }
        all
    }

    pub fn pending(&self) -> u64 {
        let live = self.live.lock().map_or(0, |l| l.count);
        live + self.reporting.lock().map_or(0, |r| r.count)
    }

    fn warn(&self, n: u64, why: &str) {
        let Ok(mut w) = self.warn.lock() else { return };
        w.since += n;
        let now = Instant::now();
        if w.last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return;
        }
        let lost = std::mem::take(&mut w.since);
        let over = w.last.map_or(0, |t| now.duration_since(t).as_secs());
        w.last = Some(now);
        drop(w);
        tracing::warn!(
            lost,
            seconds = over,
            unreported = self.pending(),
            "access log: records are being lost ({why}); they are counted and the log will say how many"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_failed_report_keeps_its_count_and_span() {
        let l = Ledger::default();
        assert_eq!(l.take(), None);
        l.lost_at(4, at(10), "queue full");
        l.lost_at(1, at(12), "queue full");
        let first = l.take().unwrap();
        assert_eq!((first.count, first.span()), (5, (at(10), at(12))));
        // Lost while the report was being written.
        l.lost_at(2, at(20), "write failed");
        assert_eq!(l.pending(), 7);
        l.not_reported();
        let again = l.take().unwrap();
        assert_eq!((again.count, again.span()), (7, (at(10), at(20))));
        assert_eq!(l.snapshot().count, 7);
        l.reported();
        assert_eq!(l.pending(), 0);
        assert_eq!(l.take(), None);
    }

    #[test]
    fn numbered_losses_keep_their_numbers_and_survive_the_state_file() {
        let l = Ledger::default();
        l.lost_numbered(100, 104, "collector dropped");
        l.lost_at(3, at(5), "queue full");
        let snap = l.snapshot();
        assert_eq!(snap.count, 8);
        assert_eq!(snap.seqs, [(100, 104)]);
        let mut s = Saved::default();
        snap.save_into(&mut s);
        let back = Lost::from_saved(&s);
        assert_eq!(back.count, 8);
        assert_eq!(back.seqs, [(100, 104)]);
        assert_eq!(back.from, Some(at(5)));
        let other = Ledger::default();
        other.restore(back);
        assert_eq!(other.pending(), 8);
    }
}
