//! Standby connections (Squid's `cache_peer … standby=N`): N connections to a parent
//! kept open and ready, TLS done, so a tunnel starts with its `CONNECT` instead of a TCP
//! (and TLS) handshake across the WAN. One is taken per tunnel and replaced in the
//! background; one unused for `standby_max_idle` is replaced before the parent's own idle
//! timeout closes it. They belong to the parent's [`Link`](super::dial::Link): a reload
//! that changes how the parent is reached retires them, and none is used after that.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::dial::{still_open, Dialled};
use super::ParentPool;
use crate::stream::ServerStream;
use crate::telemetry::{metrics, StandbyEvent};

/// How often ready connections are looked at for a close by the parent, besides when one
/// is taken.
const SWEEP: Duration = Duration::from_secs(5);
/// First wait after a failed open; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Standby {
    name: Arc<str>,
    ready: Mutex<VecDeque<Ready>>,
    want: AtomicUsize,
    max_idle_ms: AtomicU64,
    /// A connection was taken, or the set was reconfigured: the filler looks again.
    wake: Notify,
    retired: AtomicBool,
    /// The filler of this generation is the one that runs; an adopting pool starts the next.
    generation: AtomicU64,
}

struct Ready {
    stream: ServerStream,
    opened: Instant,
    resumed: Option<bool>,
}

impl Standby {
    pub fn new(name: Arc<str>) -> Arc<Standby> {
        Arc::new(Standby {
            name,
            ready: Mutex::new(VecDeque::new()),
            want: AtomicUsize::new(0),
            max_idle_ms: AtomicU64::new(0),
            wake: Notify::new(),
            retired: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        })
    }

    /// Sets how many to keep and for how long, and returns the generation whose filler
    /// runs from now on (the previous one stops).
    pub fn configure(&self, want: usize, max_idle: Duration) -> u64 {
        self.want.store(want, Ordering::Relaxed);
        let ms = u64::try_from(max_idle.as_millis()).unwrap_or(u64::MAX);
        self.max_idle_ms.store(ms, Ordering::Relaxed);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.wake.notify_one();
        generation
    }

    fn max_idle(&self) -> Duration {
        Duration::from_millis(self.max_idle_ms.load(Ordering::Relaxed))
    }

    pub fn ready(&self) -> usize {
        self.ready.lock().map_or(0, |r| r.len())
    }

    pub fn want(&self) -> usize {
        self.want.load(Ordering::Relaxed)
    }

    /// The oldest ready connection that is still fresh and open, and whether its TLS
    /// session was resumed; `None` when there is none (the tunnel opens its own).
    pub fn take(&self) -> Option<(ServerStream, Option<bool>)> {
        if self.retired.load(Ordering::Relaxed) {
            return None;
        }
        let max_idle = self.max_idle();
        let taken = {
            let mut ready = self.ready.lock().ok()?;
            let mut taken = None;
            while let Some(r) = ready.pop_front() {
                if r.opened.elapsed() >= max_idle {
                    metrics().parent_standby(&self.name, StandbyEvent::Recycled);
                } else if !still_open(&r.stream) {
                    metrics().parent_standby(&self.name, StandbyEvent::Stale);
                } else {
                    taken = Some((r.stream, r.resumed));
                    break;
                }
            }
            metrics().parent_standby_ready(&self.name, ready.len());
            taken
        };
        let event = if taken.is_some() {
            StandbyEvent::Used
        } else {
            StandbyEvent::Missed
        };
        metrics().parent_standby(&self.name, event);
        self.wake.notify_one();
        taken
    }

    /// No connection of this set is used again (a reload changed the parent, or it no
    /// longer has standby connections): they are closed and the filler stops.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        self.drop_all();
        self.wake.notify_one();
    }

    fn drop_all(&self) {
        let dropped = self.ready.lock().map(|mut r| std::mem::take(&mut *r));
        if let Ok(dropped) = dropped {
            for _ in &dropped {
                metrics().parent_standby(&self.name, StandbyEvent::Dropped);
            }
        }
        metrics().parent_standby_ready(&self.name, 0);
    }

    /// Closes connections past `standby_max_idle` or closed by the parent; returns when
    /// the oldest left becomes too old.
    fn sweep(&self) -> Option<Instant> {
        let max_idle = self.max_idle();
        let mut ready = self.ready.lock().ok()?;
        let before = ready.len();
        ready.retain(|r| {
            if r.opened.elapsed() >= max_idle {
                metrics().parent_standby(&self.name, StandbyEvent::Recycled);
                false
            } else if !still_open(&r.stream) {
                metrics().parent_standby(&self.name, StandbyEvent::Stale);
                false
            } else {
                true
            }
        });
        if ready.len() != before {
            metrics().parent_standby_ready(&self.name, ready.len());
        }
        ready.front().map(|r| r.opened + max_idle)
    }

    fn push(&self, d: Dialled) {
        if let Ok(mut ready) = self.ready.lock() {
            ready.push_back(Ready {
                stream: d.stream,
                opened: Instant::now(),
                resumed: d.resumed,
            });
            metrics().parent_standby(&self.name, StandbyEvent::Opened);
            metrics().parent_standby_ready(&self.name, ready.len());
        }
    }

    /// Keeps `want` connections ready for parent `index` of `pool` until the set is
    /// retired, a newer generation takes over, the pool is gone, or shutdown. Opens run
    /// side by side; after a failed one (counted like any connection failure) the next
    /// waits, 1 s doubling to 30 s. While the parent is down nothing is kept or opened.
    pub async fn fill(
        self: Arc<Self>,
        pool: Weak<ParentPool>,
        index: usize,
        generation: u64,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut opening = FuturesUnordered::new();
        let mut backoff = Duration::ZERO;
        let mut retry_at: Option<Instant> = None;
        loop {
            if self.retired.load(Ordering::Relaxed)
                || self.generation.load(Ordering::Relaxed) != generation
                || *shutdown.borrow()
            {
                break;
            }
            let Some(p) = pool.upgrade() else { break };
            let Some(parent) = p.parents.get(index).cloned() else {
                break;
            };
            let mut wake_at = Instant::now() + SWEEP;
            if parent.is_up() {
                if let Some(t) = self.sweep() {
                    wake_at = wake_at.min(t);
                }
                let may_open = retry_at.is_none_or(|t| Instant::now() >= t);
                if may_open {
                    retry_at = None;
                    while self.ready() + opening.len() < self.want() {
                        opening.push(p.dial_standby(parent.clone()));
                    }
                } else if let Some(t) = retry_at {
                    wake_at = wake_at.min(t);
                }
            } else if self.ready() > 0 {
                self.drop_all();
            }
            drop(p);
            tokio::select! {
                Some((parent, result)) = opening.next(), if !opening.is_empty() => {
                    let Some(p) = pool.upgrade() else { break };
                    match result {
                        Ok(d) => {
                            p.standby_opened(&parent);
                            backoff = Duration::ZERO;
                            self.push(d);
                        }
                        Err(text) => {
                            p.standby_failed(&parent, &text);
                            backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                            retry_at = Some(Instant::now() + backoff);
                        }
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        let superseded = self.generation.load(Ordering::Relaxed) != generation;
        if !superseded {
            self.drop_all();
        }
    }
}
