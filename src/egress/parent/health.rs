//! A parent's health: up or down by `fall`/`rise` consecutive results, what marked it down
//! and since when, the last check and the last connection failure, in words. It is shared
//! by the pools of successive reloads while the parent keeps its name and address, so a
//! reload neither revives a parent that is down nor forgets one that is up, and
//! connections still on an older pool report into the same state.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// What a result came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An active health check.
    Check,
    /// A connection for a client's request (or a standby connection).
    Connection,
}

impl Source {
    fn marked_by(self) -> &'static str {
        match self {
            Source::Check => "its health checks",
            Source::Connection => "connection failures",
        }
    }
}

/// The last health check of a parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub at: SystemTime,
    pub ok: bool,
    /// What failed, in words (none when it passed).
    pub error: Option<String>,
}

/// What the status page and `parents_down` say about a parent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthView {
    pub up: bool,
    pub down_since: Option<SystemTime>,
    /// "its health checks" or "connection failures" while down.
    pub down_by: Option<&'static str>,
    pub last_check: Option<CheckResult>,
    /// The last failure of a connection through this parent, in words.
    pub last_error: Option<String>,
    pub downs: u64,
}

#[derive(Default)]
struct Detail {
    down_since: Option<SystemTime>,
    down_by: Option<Source>,
    last_check: Option<CheckResult>,
    last_error: Option<String>,
}

pub struct Health {
    up: AtomicBool,
    /// Consecutive failures while up; successes while down.
    streak: AtomicU32,
    /// Times this parent went down.
    downs: AtomicU64,
    detail: Mutex<Detail>,
}

/// A change of state that [`Health::record`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Down,
    Up,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            up: AtomicBool::new(true),
            streak: AtomicU32::new(0),
            downs: AtomicU64::new(0),
            detail: Mutex::new(Detail::default()),
        }
    }
}

impl Health {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn downs(&self) -> u64 {
        self.downs.load(Ordering::Relaxed)
    }

    /// Counts a success (`error` none) or a failure towards the thresholds; returns the
    /// change of state, if this result made one.
    pub fn record(
        &self,
        source: Source,
        error: Option<&str>,
        fall: u32,
        rise: u32,
    ) -> Option<Change> {
        let ok = error.is_none();
        if source == Source::Check || error.is_some() {
            if let Ok(mut d) = self.detail.lock() {
                if source == Source::Check {
                    d.last_check = Some(CheckResult {
                        at: SystemTime::now(),
                        ok,
                        error: error.map(str::to_string),
                    });
                } else if let Some(e) = error {
                    d.last_error = Some(e.to_string());
                }
            }
        }
        let up = self.is_up();
        if ok == up {
            // The common case (a success while up): no lock, one store.
            if self.streak.load(Ordering::Relaxed) != 0 {
                self.streak.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        let (threshold, change) = if up {
            (fall, Change::Down)
        } else {
            (rise, Change::Up)
        };
        if streak < threshold {
            return None;
        }
        let Ok(mut d) = self.detail.lock() else {
            return None;
        };
        // Under the lock: of several results crossing the threshold at once, one changes
        // the state.
        if self
            .up
            .compare_exchange(up, !up, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        self.streak.store(0, Ordering::Relaxed);
        if change == Change::Down {
            self.downs.fetch_add(1, Ordering::Relaxed);
            d.down_since = Some(SystemTime::now());
            d.down_by = Some(source);
        } else {
            d.down_since = None;
            d.down_by = None;
        }
        Some(change)
    }

    pub fn view(&self) -> HealthView {
        let d = self.detail.lock().ok();
        HealthView {
            up: self.is_up(),
            down_since: d.as_ref().and_then(|d| d.down_since),
            down_by: d.as_ref().and_then(|d| d.down_by).map(Source::marked_by),
            last_check: d.as_ref().and_then(|d| d.last_check.clone()),
            last_error: d.as_ref().and_then(|d| d.last_error.clone()),
            downs: self.downs(),
        }
    }

    /// One parent's part of the `parents_down` text: by what, since when, and the last
    /// error that counted.
    pub fn down_text(&self, name: &str) -> String {
        let v = self.view();
        let since = v.down_since.map_or(String::new(), |t| {
            format!(" since {}", crate::outcome::rfc3339(t))
        });
        let last = match (v.down_by, &v.last_check, &v.last_error) {
            (Some("its health checks"), Some(CheckResult { error: Some(e), .. }), _) => {
                format!("; last check: {e}")
            }
            (_, _, Some(e)) => format!("; last error: {e}"),
            (_, Some(CheckResult { error: Some(e), .. }), None) => format!("; last check: {e}"),
            _ => String::new(),
        };
        format!(
            "{name} by {}{since}{last}",
            v.down_by.unwrap_or("its health checks")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_and_rise_count_consecutive_results() {
        let h = Health::default();
        assert_eq!(h.record(Source::Connection, Some("refused"), 3, 2), None);
        assert_eq!(h.record(Source::Connection, None, 3, 2), None);
        assert_eq!(h.record(Source::Connection, Some("refused"), 3, 2), None);
        assert_eq!(h.record(Source::Check, Some("timed out"), 3, 2), None);
        assert_eq!(
            h.record(
                Source::Connection,
                Some("TCP connect to 10.0.0.1:8080 refused"),
                3,
                2
            ),
            Some(Change::Down)
        );
        assert!(!h.is_up());
        let v = h.view();
        assert_eq!(v.down_by, Some("connection failures"));
        assert!(v.down_since.is_some());
        assert_eq!(v.downs, 1);
        let text = h.down_text("seccloud-1");
        assert!(
            text.starts_with("seccloud-1 by connection failures since 20")
                && text.ends_with("; last error: TCP connect to 10.0.0.1:8080 refused"),
            "{text}"
        );
        // While down, failures do not count towards rise.
        assert_eq!(h.record(Source::Check, None, 3, 2), None);
        assert_eq!(h.record(Source::Check, Some("refused"), 3, 2), None);
        assert_eq!(h.record(Source::Check, None, 3, 2), None);
        assert_eq!(h.record(Source::Check, None, 3, 2), Some(Change::Up));
        let v = h.view();
        assert!(v.up && v.down_since.is_none());
        assert_eq!(v.last_check.map(|c| (c.ok, c.error)), Some((true, None)));
    }
}
