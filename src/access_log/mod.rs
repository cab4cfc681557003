//! The access log: the auditor's proof of what broke out. Records go through a bounded
//! queue to one writer on its own thread, so a slow disk or collector never stalls a
//! tunnel, and a line costs one wake-up and a share of a batched write, not a round trip
//! through the blocking pool as async file I/O would. The writer numbers each line
//! (`seq`, monotonic across restarts through the state file), chains it to the one before
//! (`chain`), and adds signed checkpoints (`line.rs`), so `lbo-proxy log verify` finds any
//! line deleted, edited or moved (`verify.rs`).
//!
//! Nothing is lost silently: a record that does not fit the queue, or whose write fails,
//! is counted (`ledger.rs`), and the count stays pending until a `records_lost` line that
//! says it is really written, if need be by the next run (the state file carries it).

mod collector;
mod file;
pub mod keys;
mod ledger;
pub mod line;
mod sink;
pub mod state;
pub mod syslog;
pub mod verify;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::{AccessLogConfig, AccessLogTarget, StateConfig};
use crate::outcome::Outcome;
use ledger::Ledger;
use line::Head;
use state::{Saved, StateFile};

/// How long shutdown lets the writer finish (drain the queue, report, checkpoint) before
/// it counts what is left as lost and writes the state file itself.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// On top of [`STOP_WAIT`]: a sink stuck in a system call does not answer at all.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What the writer is told besides records.
enum Control {
    /// A reload changed the sink or its settings.
    Switch(Box<sink::Sink>, writer::Settings),
    /// Shut down: everything queued is written or counted, then the state saved.
    Stop(oneshot::Sender<()>),
}

/// A handle on the writer; cheap to clone, one per context.
#[derive(Clone)]
pub struct AccessLog {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: mpsc::Sender<Box<Outcome>>,
    control: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
}

/// What the handles and the writer share besides the queues.
struct Shared {
    ledger: Ledger,
    /// SIGUSR1: reopen the file (logrotate moved it away) and checkpoint.
    reopen: Notify,
    /// When the writer must give up waiting for a sink.
    stop: Stop,
    /// Where the writer is, for shutdown to take over if it does not answer.
    books: Mutex<Books>,
    /// Set when shutdown has taken over: the writer stops touching the books.
    abandoned: AtomicBool,
    queue: usize,
}

/// The writer's position: enough to write the state file without it.
struct Books {
    head: Head,
    reserved: u64,
    /// Records taken off the queue and being written now.
    inflight: usize,
    state: Option<StateFile>,
}

/// A deadline for sinks that wait (a collector away): set at shutdown, and for a moment
/// when a reload switches the sink, so a stuck sink gives up the batch in hand.
#[derive(Default)]
pub(crate) struct Stop {
    deadline: Mutex<Option<Instant>>,
    changed: Notify,
    /// A final stop: nothing clears the deadline any more.
    last: AtomicUsize,
}

#[derive(Debug)]
pub(crate) struct TimedOut;

impl From<TimedOut> for std::io::Error {
    fn from(_: TimedOut) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")
    }
}

impl Stop {
    fn deadline(&self) -> Option<Instant> {
        self.deadline.lock().ok().and_then(|d| *d)
    }

    fn set(&self, at: Option<Instant>) {
        if self.last.load(Ordering::Relaxed) > 0 && at.is_none() {
            return;
        }
        if let Ok(mut d) = self.deadline.lock() {
            *d = at;
        }
        self.changed.notify_waiters();
    }

    fn finally(&self, at: Instant) {
        self.last.store(1, Ordering::Relaxed);
        self.set(Some(at));
    }

    pub(crate) fn expired(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// `f`, given up after `limit` or at the deadline, whichever comes first.
    pub(crate) async fn bound<F: Future>(
        &self,
        limit: Duration,
        f: F,
    ) -> Result<F::Output, TimedOut> {
        let until = Instant::now() + limit;
        tokio::pin!(f);
        loop {
            let end = self.deadline().map_or(until, |d| d.min(until));
            let changed = self.changed.notified();
            tokio::select! {
                r = &mut f => return Ok(r),
                _ = tokio::time::sleep_until(end.into()) => return Err(TimedOut),
                _ = changed => {}
            }
        }
    }
}

impl AccessLog {
    /// Opens the sink and the state file and starts the writer; its thread ends when
    /// every handle is gone. A file that cannot be opened fails here, at start or reload;
    /// a collector that is down does not (its records wait in the queue). A state
    /// directory the config names must be usable; the default may be missing, which the
    /// log's first line then says.
    pub fn start(config: &AccessLogConfig, state: &StateConfig) -> anyhow::Result<AccessLog> {
        if config.target == AccessLogTarget::Off {
            return Ok(AccessLog::off());
        }
        let sink = sink::Sink::open(&config.target)?;
        let (state_file, saved) = match StateFile::open(&state.dir) {
            Ok((f, saved)) => (Some(f), Ok(saved)),
            Err(e) if state.explicit => {
                return Err(anyhow::anyhow!(e).context("state directory ([state] dir)"))
            }
            Err(e) => {
                tracing::error!("access log: no state: {e}; sequence numbers start again at 1 and a count of lost records pending at exit is only in this service log. Create the directory or set [state] dir");
                (None, Err(()))
            }
        };
        let shared = Arc::new(Shared {
            ledger: Ledger::default(),
            reopen: Notify::new(),
            stop: Stop::default(),
            books: Mutex::new(Books {
                head: Head::START,
                reserved: 0,
                inflight: 0,
                state: state_file,
            }),
            abandoned: AtomicBool::new(false),
            queue: config.queue,
        });
        let (tx, rx) = mpsc::channel(config.queue);
        let (control, control_rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let w = writer::Writer::new(sink, writer::Settings::of(config), shared.clone(), saved);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || runtime.block_on(w.run(rx, control_rx)))?;
        Ok(AccessLog {
            inner: Some(Arc::new(Inner {
                tx,
                control,
                shared,
            })),
        })
    }

    /// A log that writes nothing (`access = "off"`, tools, tests of other parts).
    pub fn off() -> AccessLog {
        AccessLog { inner: None }
    }

    pub fn is_off(&self) -> bool {
        self.inner.is_none()
    }

    /// Queues one record; never waits. A record that does not fit is counted as lost.
    pub(crate) fn write(&self, outcome: Outcome) {
        let Some(inner) = &self.inner else { return };
        let sent = inner.tx.try_send(Box::new(outcome));
        let depth = inner.shared.queue - inner.tx.capacity();
        // Measured here, so the gauge moves while the writer is stuck too.
        crate::telemetry::metrics().access_log_queue_depth(depth);
        if sent.is_err() {
            inner.shared.ledger.lost(1, "the queue is full");
        }
    }

    /// A reload changed `[log]`: the same writer (and numbering) goes on with the new
    /// sink and settings. Fails, leaving the running sink, when the new one cannot be
    /// opened.
    pub fn reconfigure(&self, config: &AccessLogConfig) -> anyhow::Result<()> {
        let Some(inner) = &self.inner else {
            anyhow::bail!("the access log is off")
        };
        if config.queue != inner.shared.queue {
            tracing::warn!("log.queue is read at start only: restart to change it");
        }
        let sink = sink::Sink::open(&config.target)?;
        // A sink waiting for a collector gives up its batch so the switch happens now.
        inner.shared.stop.set(Some(Instant::now()));
        inner
            .control
            .send(Control::Switch(
                Box::new(sink),
                writer::Settings::of(config),
            ))
            .map_err(|_| anyhow::anyhow!("the access-log writer has stopped"))
    }

    /// Reopens a file sink by its path (after logrotate renamed it) and checkpoints.
    pub fn reopen(&self) {
        if let Some(inner) = &self.inner {
            inner.shared.reopen.notify_one();
        }
    }

    /// At shutdown: lets the writer write or count everything queued, report what was
    /// lost, checkpoint and save its state; if it does not finish in time (a sink stuck
    /// in a system call), counts what it held and saves the state itself.
    pub async fn close(&self) {
        let Some(inner) = &self.inner else { return };
        let shared = &inner.shared;
        shared.stop.finally(Instant::now() + STOP_WAIT);
        let (done, finished) = oneshot::channel();
        let _ = inner.control.send(Control::Stop(done));
        if tokio::time::timeout(STOP_WAIT + STOP_GRACE, finished)
            .await
            .is_ok()
        {
            return;
        }
        shared.abandoned.store(true, Ordering::SeqCst);
        let Ok(mut books) = shared.books.lock() else {
            return;
        };
        let queued = shared.queue - inner.tx.capacity();
        let held = (queued + books.inflight) as u64;
        shared
            .ledger
            .lost(held, "shutdown: the sink did not take them");
        let lost = shared.ledger.snapshot();
        let mut saved = Saved {
            seq: books.head.seq,
            chain: line::hex(&books.head.chain),
            reserved: books.reserved,
            clean: false,
            ..Saved::default()
        };
        lost.save_into(&mut saved);
        let written = books.state.take().map(|mut s| s.save(&saved));
        match written {
            Some(Ok(())) => tracing::error!(
                lost = lost.count,
                "access log: the sink did not take the last records before exit: {held} counted as lost; the next start reports {} in the log",
                lost.count
            ),
            _ => tracing::error!(
                lost = lost.count,
                "access log: the sink did not take the last records before exit, and the state file could not be written: {} records lost and not in the log",
                lost.count
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{AccessLogConfig, AccessLogTarget, StateConfig, SyncMode};

    fn config(target: AccessLogTarget) -> AccessLogConfig {
        AccessLogConfig {
            target,
            queue: 64,
            sync: SyncMode::Batch,
            checkpoint_interval: Duration::from_secs(600),
            signing_key: None,
        }
    }

    fn state(dir: &Path) -> StateConfig {
        StateConfig {
            dir: dir.join("state"),
            explicit: true,
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// /dev/full refuses every write: the records and their report are lost, the count
    /// goes to the state file, and the next run, on a disk with room, reports it.
    #[tokio::test]
    async fn a_count_that_cannot_be_written_at_shutdown_is_reported_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let full = AccessLogTarget::File("/dev/full".into());
        let log = AccessLog::start(&config(full), &state(dir.path())).unwrap();
        for _ in 0..5 {
            log.write(Outcome::default());
        }
        log.close().await;
        let path = dir.path().join("access.log");
        let log = AccessLog::start(
            &config(AccessLogTarget::File(path.clone())),
            &state(dir.path()),
        )
        .unwrap();
        log.close().await;
        let l = lines(&path);
        let kinds: Vec<&str> = l.iter().map(|v| v["event"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["checkpoint", "records_lost", "checkpoint"], "{l:?}");
        assert_eq!(l[0]["previous_stop"], "clean");
        assert_eq!(l[1]["count"], 5);
        // Nothing was written by the first run: its numbers were given back.
        assert_eq!(l[0]["seq"], 1);
    }

    /// A clean restart goes on with the next number and chains to the stop checkpoint;
    /// a reload that changes the sink keeps the numbering too.
    #[tokio::test]
    async fn numbering_and_chain_go_on_across_restarts_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let log = AccessLog::start(
            &config(AccessLogTarget::File(a.clone())),
            &state(dir.path()),
        )
        .unwrap();
        log.write(Outcome::default());
        log.close().await;
        let log = AccessLog::start(
            &config(AccessLogTarget::File(a.clone())),
            &state(dir.path()),
        )
        .unwrap();
        log.write(Outcome::default());
        tokio::time::sleep(Duration::from_millis(100)).await;
        log.reconfigure(&config(AccessLogTarget::File(b.clone())))
            .unwrap();
        log.write(Outcome::default());
        log.close().await;
        let mut all = lines(&a);
        all.extend(lines(&b));
        let seqs: Vec<u64> = all.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{all:?}");
        for pair in all.windows(2) {
            if pair[1]["event"] == "checkpoint" {
                assert_eq!(pair[1]["prev"], pair[0]["chain"]);
            }
        }
        let kinds: Vec<String> = all
            .iter()
            .map(|v| v["kind"].as_str().unwrap_or("record").to_string())
            .collect();
        assert_eq!(
            kinds,
            ["start", "record", "stop", "start", "record", "rotate", "open", "record", "stop"]
        );
        assert_eq!(all[3]["previous_stop"], "clean");
        let inputs = [
            verify::Input::read(&a).unwrap(),
            verify::Input::read(&b).unwrap(),
        ];
        let r = verify::verify(&inputs, &[]);
        // No key: every checkpoint is unsigned, and nothing else is wrong.
        assert!(
            r.problems.iter().all(|p| matches!(
                p,
                verify::Problem::BadCheckpoint { .. } | verify::Problem::Unsigned { .. }
            )),
            "{r}"
        );
    }

    /// The default state directory may be missing: the log runs, and says so.
    #[tokio::test]
    async fn without_a_state_directory_the_log_runs_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "").unwrap();
        let path = dir.path().join("a.log");
        let state = StateConfig {
            dir: blocked.join("state"),
            explicit: false,
        };
        let log = AccessLog::start(&config(AccessLogTarget::File(path.clone())), &state).unwrap();
        log.close().await;
        assert_eq!(lines(&path)[0]["previous_stop"], "state_unavailable");
        let explicit = StateConfig {
            explicit: true,
            ..state
        };
        let e = AccessLog::start(&config(AccessLogTarget::File(path)), &explicit)
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("state directory"), "{e:#}");
    }
}
