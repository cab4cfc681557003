//! The parents' own series beyond up/down: what each attempt through a parent came to,
//! its standby connections and its TLS handshakes. Labels are the configured parent name
//! and closed sets.

use super::Metrics;

/// What one attempt through a parent came to (the failure model's classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptClass {
    Ok,
    /// Connect, TLS, or a close before any reply byte: nothing reached the destination.
    Unreachable,
    /// The parent had the request and did not answer in time.
    Timeout,
    /// The parent's 502, 503 or 504: the destination failed, as the parent saw it.
    OriginError,
    /// The parent's 4xx (407: our credentials, 403: its rules).
    Refused,
    /// A broken reply: malformed, oversized, or cut off in the middle.
    Failed,
}

impl AttemptClass {
    pub const ALL: [AttemptClass; 6] = [
        AttemptClass::Ok,
        AttemptClass::Unreachable,
        AttemptClass::Timeout,
        AttemptClass::OriginError,
        AttemptClass::Refused,
        AttemptClass::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptClass::Ok => "ok",
            AttemptClass::Unreachable => "unreachable",
            AttemptClass::Timeout => "timeout",
            AttemptClass::OriginError => "origin_error",
            AttemptClass::Refused => "refused",
            AttemptClass::Failed => "failed",
        }
    }
}

/// What happened to a standby connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandbyEvent {
    Opened,
    Used,
    Missed,
    Recycled,
    Stale,
    Dropped,
}

impl StandbyEvent {
    pub const ALL: [StandbyEvent; 6] = [
        StandbyEvent::Opened,
        StandbyEvent::Used,
        StandbyEvent::Missed,
        StandbyEvent::Recycled,
        StandbyEvent::Stale,
        StandbyEvent::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StandbyEvent::Opened => "opened",
            StandbyEvent::Used => "used",
            StandbyEvent::Missed => "missed",
            StandbyEvent::Recycled => "recycled",
            StandbyEvent::Stale => "stale",
            StandbyEvent::Dropped => "dropped",
        }
    }
}

impl Metrics {
    /// Starts a parent's series at zero (see [`Metrics::parent_configured`]); the standby
    /// and TLS series too, so a dashboard shows zeros rather than gaps.
    pub fn parent_series(&self, parent: &str, standby: bool) {
        for class in AttemptClass::ALL {
            let _ = self.counter(|f| &f.parent_attempts, &[parent, class.as_str()]);
        }
        let _ = self.counter(|f| &f.parent_state_changes, &[parent]);
        for event in StandbyEvent::ALL {
            let _ = self.counter(|f| &f.parent_standby, &[parent, event.as_str()]);
        }
        if let Some(g) = self.gauge(|f| &f.parent_standby_ready, &[parent]) {
            if !standby {
                g.set(0);
            }
        }
        for kind in ["full", "resumed"] {
            let _ = self.counter(|f| &f.parent_tls_handshakes, &[parent, kind]);
        }
    }

    pub fn parent_attempt(&self, parent: &str, class: AttemptClass) {
        if let Some(c) = self.counter(|f| &f.parent_attempts, &[parent, class.as_str()]) {
            c.inc();
        }
    }

    pub fn parent_standby(&self, parent: &str, event: StandbyEvent) {
        if let Some(c) = self.counter(|f| &f.parent_standby, &[parent, event.as_str()]) {
            c.inc();
        }
    }

    pub fn parent_standby_ready(&self, parent: &str, ready: usize) {
        if let Some(g) = self.gauge(|f| &f.parent_standby_ready, &[parent]) {
            g.set(i64::try_from(ready).unwrap_or(i64::MAX));
        }
    }

    pub fn parent_tls_handshake(&self, parent: &str, resumed: bool) {
        let kind = if resumed { "resumed" } else { "full" };
        if let Some(c) = self.counter(|f| &f.parent_tls_handshakes, &[parent, kind]) {
            c.inc();
        }
    }

    pub(super) fn parent_state_changed(&self, parent: &str) {
        if let Some(c) = self.counter(|f| &f.parent_state_changes, &[parent]) {
            c.inc();
        }
    }
}
