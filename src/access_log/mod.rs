//! The access log: the auditor's proof of what broke out. Records go through a bounded
//! queue to one writer on its own thread, so a slow disk or collector never stalls a
//! tunnel, and a line costs one wake-up and a buffered write, not a round trip through
//! the blocking pool as async file I/O would; a record
//! that does not fit is dropped, counted in `lbo_access_log_dropped_total`, and reported
//! in the log itself once the writer has caught up.

mod collector;
mod file;
mod stdout;
pub mod syslog;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::{AccessLogConfig, AccessLogTarget};
use crate::outcome::Outcome;

/// What the writer receives, in order.
enum Entry {
    Record(Box<Outcome>),
    /// Everything queued before this is written out once the sender is answered.
    Flush(oneshot::Sender<()>),
}

/// How long shutdown waits for the writer: a dead collector must not hold the service.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// A handle on the writer; cheap to clone, one per context.
#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<Entry>>,
    shared: Arc<Shared>,
}

/// What the handles and the writer share besides the queue.
#[derive(Default)]
struct Shared {
    /// Records lost since the last report.
    dropped: AtomicU64,
    /// When the first of them was lost (Unix milliseconds; 0: none pending).
    dropped_since: AtomicU64,
    /// SIGUSR1: reopen the file (logrotate moved it away).
    reopen: Notify,
}

impl Shared {
    fn lost(&self, n: u64) {
        if self.dropped.fetch_add(n, Ordering::Relaxed) == 0 {
            self.dropped_since.store(unix_millis(), Ordering::Relaxed);
        }
        crate::telemetry::metrics().access_log_dropped(n);
    }

    /// The pending drop count and its start, cleared; `None` when nothing was lost.
    fn take_lost(&self) -> Option<(u64, SystemTime)> {
        let n = self.dropped.swap(0, Ordering::Relaxed);
        let since = self.dropped_since.swap(0, Ordering::Relaxed);
        (n > 0).then(|| {
            let since = match since {
                0 => SystemTime::now(),
                ms => SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            };
            (n, since)
        })
    }
}

impl AccessLog {
    /// Opens the sink and starts the writer; its thread ends when every handle is gone.
    /// A file that cannot be opened fails here, at start or reload; a collector that is
    /// down does not (its records wait in the queue).
    pub fn start(config: &AccessLogConfig) -> std::io::Result<AccessLog> {
        let shared = Arc::new(Shared::default());
        let sink = match &config.target {
            AccessLogTarget::Off => return Ok(AccessLog { tx: None, shared }),
            target => writer::Sink::open(target)?,
        };
        let (tx, rx) = mpsc::channel(config.queue);
        // Timers and sockets for the syslog collector's retries and connections.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || runtime.block_on(writer::run(rx, sink, writer_shared)))?;
        Ok(AccessLog {
            tx: Some(tx),
            shared,
        })
    }

    /// A log that writes nothing (tools, tests of other parts).
    pub fn off() -> AccessLog {
        AccessLog {
            tx: None,
            shared: Arc::default(),
        }
    }

    /// Queues one record; never waits.
    pub(crate) fn write(&self, outcome: Outcome) {
        if let Some(tx) = &self.tx {
            if tx.try_send(Entry::Record(Box::new(outcome))).is_err() {
                self.shared.lost(1);
            }
        }
    }

    /// Reopens a file sink by its path (after logrotate renamed it); a no-op otherwise.
    pub fn reopen(&self) {
        self.shared.reopen.notify_one();
    }

    /// Waits, bounded, until every record written so far is out (at shutdown).
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            let flushed = async {
                if tx.send(Entry::Flush(done)).await.is_ok() {
                    let _ = wait.await;
                }
            };
            if tokio::time::timeout(FLUSH_WAIT, flushed).await.is_err() {
                tracing::warn!("access log: the sink did not take every record before exit");
            }
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
        .max(1)
}
