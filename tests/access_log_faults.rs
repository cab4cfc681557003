//! The access log under faults, with the real binary: a full disk (a tmpfs this test
//! mounts and unmounts; it runs as root and fails if it cannot mount), a collector that
//! stops reading, one that restarts, one with a certificate the appliance must refuse,
//! rotation under load, and `kill -9` under load. For each, clients count the requests the
//! proxy answered, and
//!
//!     answered = complete records in the log + the counts the log itself reports lost
//!
//! exactly; every line is JSON; `lbo-proxy log verify` accepts the untouched files and
//! finds each of: a deleted line, an edited field, two swapped lines, a truncated file, a
//! removed rotated file.
//!
//! `kill -9` cannot keep that equality: records the dead process had queued but not yet
//! written are neither in the log nor counted, since the process that knew of them is
//! gone. What holds there (docs/access-log.md, "After a crash"): every line that reached
//! the file is whole and verifies; the missing records are those the queue had refused
//! since the last report (counted in memory only) and at most the queue and one batch
//! more; and `log verify` says where: the killed run's lines after its last checkpoint
//! are reported unsigned, and the numbers between them and the next run's first line are
//! reported as a gap after an unclean stop.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::collector::{Collector, TestCa};
use support::process::ProxyProcess;
use support::scrape::scrape;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_lbo-proxy");

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("mount(8)");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (this test runs as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system: a file that takes every free block.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A signing key made with the command the operator uses.
fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("log-signing.key");
    let out = Command::new(BIN)
        .args(["log", "keygen", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = dir.join("log-signing.key.pub");
    let fingerprint = String::from_utf8(out.stdout).unwrap();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    (key, public)
}

/// A proxy with no parent and no allowlist (every request is refused with 503: one record
/// each, nothing leaves the host), the access log as `log` says, its state in `state`.
fn config(dir: &Path, key: &Path, state: &Path, log: &str) -> PathBuf {
    let path = dir.join("lbo-proxy.toml");
    std::fs::write(
        &path,
        format!(
            "[proxy]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [[segment]]\nname = \"lab\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n\
             [timeouts]\ndrain = \"1s\"\n\
             [state]\ndir = \"{}\"\n\
             [log]\nsigning_key = \"{}\"\ncheckpoint_interval = \"1s\"\n{log}\n",
            state.display(),
            key.display()
        ),
    )
    .unwrap();
    path
}

/// A file log, on `on` (a tmpfs) or beside the config, with its state beside it, signed
/// with a key made by `log keygen`: the config dir, the public key, the log, the config.
fn file_log(on: Option<&Path>, extra: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let on = on.unwrap_or(dir.path());
    let log = on.join("access.log");
    let cfg = config(
        dir.path(),
        &key,
        &on.join("state"),
        &format!("access = \"{}\"\n{extra}", log.display()),
    );
    (dir, public, log, cfg)
}

/// Clients that send CONNECT requests the proxy refuses, in `width` parallel loops, and
/// count the answers until stopped.
struct Load {
    answered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(proxy: std::net::SocketAddr, width: usize) -> Load {
        let answered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..width)
            .map(|_| {
                let (answered, stop) = (answered.clone(), stop.clone());
                tokio::spawn(async move {
                    // Bounded: a few seconds of load at most.
                    for _ in 0..20_000 {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        if request(proxy).await {
                            answered.fetch_add(1, Ordering::SeqCst);
                        } else {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            answered,
            stop,
            tasks,
        }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        self.answered.load(Ordering::SeqCst)
    }
}

/// One request; true when the proxy answered it (its record is then made).
async fn request(proxy: std::net::SocketAddr) -> bool {
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(proxy).await.ok()?;
        tcp.write_all(b"CONNECT upstream.test:443 HTTP/1.1\r\nHost: upstream.test:443\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.ok()?;
        answer.starts_with(b"HTTP/1.1 503").then_some(())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// SIGTERM, and the exit awaited (bounded).
fn stop(mut proxy: ProxyProcess) -> String {
    proxy.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no exit:\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.log()
}

/// What a set of log files holds.
#[derive(Debug, Default)]
struct Tally {
    /// Distinct numbers of record lines.
    records: u64,
    /// The sum of `records_lost` counts.
    reported: u64,
    lines: u64,
    /// Lines that are not JSON (a cut line after kill -9).
    broken: u64,
}

fn tally(texts: &[String]) -> Tally {
    let mut t = Tally::default();
    let mut seen = BTreeSet::new();
    for text in texts {
        for line in text.lines() {
            t.lines += 1;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                t.broken += 1;
                continue;
            };
            match v["event"].as_str() {
                None => {
                    if seen.insert(v["seq"].as_u64().unwrap()) {
                        t.records += 1;
                    }
                }
                Some("records_lost") => t.reported += v["count"].as_u64().unwrap(),
                Some(_) => {}
            }
        }
    }
    t
}

fn read_all(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            let input = lbo_proxy::access_log::verify::Input::read(f).unwrap();
            input
                .lines
                .iter()
                .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
                .collect()
        })
        .collect()
}

/// `lbo-proxy log verify`: its exit status and report. A collector's file is checked by
/// seq: it read several connections at once.
fn verify(public: &Path, files: &[PathBuf]) -> (bool, String) {
    let siem = files.iter().any(|f| f.ends_with("collected.log"));
    let out = Command::new(BIN)
        .args(["log", "verify", "--key"])
        .arg(public)
        .args(siem.then_some("--by-seq"))
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn assert_verifies(public: &Path, files: &[PathBuf]) {
    let (ok, report) = verify(public, files);
    assert!(ok, "untouched files must verify:\n{report}");
}

/// Each edit on a copy of `files` (in order; at least three for the removed file): the
/// verifier must fail and name it. A collector's file is checked by seq, where two lines
/// swapped are no finding, and is one file: those two edits are left out there.
fn tamper_suite(public: &Path, files: &[PathBuf]) {
    let siem = files.iter().any(|f| f.ends_with("collected.log"));
    let work = tempfile::tempdir().unwrap();
    let copy = |edit: &dyn Fn(usize, &mut Vec<String>)| -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (i, text) in read_all(files).into_iter().enumerate() {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            edit(i, &mut lines);
            let path = match siem {
                true => work.path().join(format!("{i}")).join("collected.log"),
                false => work.path().join(format!("{i}.log")),
            };
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(
                &path,
                lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
            )
            .unwrap();
            out.push(path);
        }
        out
    };
    // A record line in the middle of the first file.
    let pick = |lines: &Vec<String>| {
        let records: Vec<usize> = (0..lines.len())
            .filter(|&i| !lines[i].contains("\"event\""))
            .collect();
        assert!(records.len() >= 3, "too few records to edit");
        records[records.len() / 2]
    };
    let expect = |what: &str, files: Vec<PathBuf>, want: &str| {
        let (ok, report) = verify(public, &files);
        assert!(!ok, "{what} not found:\n{report}");
        assert!(report.contains(want), "{what}: want {want:?} in\n{report}");
    };
    expect(
        "a deleted line",
        copy(&|i, l| {
            if i == 0 {
                let at = pick(l);
                l.remove(at);
            }
        }),
        "FAIL gap",
    );
    expect(
        "an edited field",
        copy(&|i, l| {
            if i == 0 {
                let at = pick(l);
                l[at] = l[at].replace("\"status\":503", "\"status\":200");
            }
        }),
        "FAIL modified",
    );
    if !siem {
        expect(
            "two swapped lines",
            copy(&|i, l| {
                if i == 0 {
                    let at = pick(l);
                    l.swap(at, at + 1);
                }
            }),
            "FAIL reordered",
        );
    }
    // Truncated in the middle of a line.
    let mut cut = copy(&|_, _| {});
    let bytes = std::fs::read(&cut[0]).unwrap();
    std::fs::write(&cut[0], &bytes[..bytes.len() * 2 / 3]).unwrap();
    expect("a truncated file", cut.clone(), "FAIL damaged");
    cut.clear();
    if siem {
        return;
    }
    assert!(
        files.len() >= 3,
        "need three files to remove one in the middle"
    );
    let mut removed = copy(&|_, _| {});
    removed.remove(1);
    expect("a removed rotated file", removed, "FAIL gap");
}

/// Moves the log away and signals the proxy to reopen, as logrotate does; returns the
/// rotated file's path.
async fn rotate(proxy: &ProxyProcess, log: &Path, n: usize) -> PathBuf {
    let to = log.with_extension(format!("log.{n}"));
    std::fs::rename(log, &to).unwrap();
    proxy.signal(libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "not reopened:\n{}", proxy.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    to
}

fn row(fault: &str, answered: u64, t: &Tally) {
    eprintln!("| {fault} | {answered} | {} | {} |", t.records, t.reported);
}

#[tokio::test]
async fn disk_full_then_freed() {
    let fs = Tmpfs::mount("16m");
    let (_dir, public, log, cfg) = file_log(Some(fs.path()), "");
    let proxy = ProxyProcess::start(&cfg);
    let load = Load::start(proxy.proxy, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = rotate(&proxy, &log, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fs.fill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let errors = scrape(proxy.admin)
        .await
        .sum("lbo_access_log_write_errors_total", &[]);
    assert!(errors > 0.0, "no write error while the disk is full");
    fs.free();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = rotate(&proxy, &log, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = load.finish().await;
    let service = stop(proxy);
    assert!(service.contains("records are being lost"), "{service}");
    let files = vec![first, second, log];
    let t = tally(&read_all(&files));
    row("disk full, then freed", answered, &t);
    assert_eq!(t.broken, 0);
    assert!(t.reported > 0, "nothing was lost: the disk was not full?");
    assert_eq!(answered, t.records + t.reported, "{t:?}");
    assert_verifies(&public, &files);
    tamper_suite(&public, &files);
}

#[tokio::test]
async fn disk_full_at_shutdown() {
    let fs = Tmpfs::mount("16m");
    let (_dir, public, log, cfg) = file_log(Some(fs.path()), "");
    let proxy = ProxyProcess::start(&cfg);
    let load = Load::start(proxy.proxy, 8);
    let mut files = Vec::new();
    for n in 1..=2 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        files.push(rotate(&proxy, &log, n).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    fs.fill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = load.finish().await;
    // Shut down while the disk is full: the count of lost records cannot be written to
    // the log, so it goes to the state file (allocated at start, written in place).
    // (A report may still fit in the page the file's last line began; what does not fit
    // waits in the state file.)
    let service = stop(proxy);
    files.push(log.clone());
    let before = tally(&read_all(&files));
    let pending = answered - before.records - before.reported;
    assert!(
        pending == 0 || service.contains(&format!("{pending} lost records could not be reported")),
        "{pending} not reported and not said:\n{service}"
    );
    fs.free();
    let proxy = ProxyProcess::start(&cfg);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally(&read_all(&files)).reported < before.reported + pending {
        assert!(
            Instant::now() < deadline,
            "no report after restart:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(proxy);
    let t = tally(&read_all(&files));
    row("disk full at shutdown", answered, &t);
    assert_eq!(t.broken, 0);
    assert_eq!(answered, t.records + t.reported, "{t:?}");
    assert_verifies(&public, &files);
    tamper_suite(&public, &files);
}

/// A syslog proxy config for `collector` (TCP, or TLS with `ca`).
fn syslog(collector: &Collector, tls: Option<(&Path, &str)>) -> String {
    let transport = match tls {
        None => "transport = \"tcp\"\n".to_string(),
        Some((ca, name)) => format!(
            "transport = \"tls\"\nca_file = \"{}\"\nserver_name = \"{name}\"\n",
            ca.display()
        ),
    };
    format!(
        "access = \"syslog\"\nqueue = 256\n[log.syslog]\naddress = \"{}\"\nwrite_timeout = \"1s\"\n{transport}",
        collector.addr
    )
}

/// The collector's lines as a file, for the tally and the verifier, once it has read
/// what the proxy sent (nothing new for half a second).
async fn collected(collector: &Collector, dir: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = collector.lines().len();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = collector.lines().len();
        if now == seen || Instant::now() > deadline {
            break;
        }
        seen = now;
    }
    let path = dir.join("collected.log");
    let text: String = collector.lines().iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_collector_that_stops_reading_then_resumes() {
    let collector = Collector::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let cfg = config(
        dir.path(),
        &key,
        &dir.path().join("state"),
        &syslog(&collector, None),
    );
    let proxy = ProxyProcess::start(&cfg);
    let load = Load::start(proxy.proxy, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    collector.pause();
    // Until the buffers are full and a write times out: the proxy drops the connection
    // and reconnects; tunnels go on meanwhile.
    let deadline = Instant::now() + Duration::from_secs(20);
    while scrape(proxy.admin)
        .await
        .sum("lbo_access_log_write_errors_total", &[])
        == 0.0
    {
        assert!(Instant::now() < deadline, "no write timeout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        proxy.log().contains("records are being lost"),
        "{}",
        proxy.log()
    );
    collector.resume();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answered = load.finish().await;
    stop(proxy);
    let file = collected(&collector, dir.path()).await;
    let t = tally(&read_all(std::slice::from_ref(&file)));
    row("collector stops reading, then resumes", answered, &t);
    assert_eq!(t.broken, 0);
    assert!(
        t.reported > 0,
        "nothing lost while the collector was stuck?"
    );
    assert_eq!(answered, t.records + t.reported, "{t:?}");
    assert_verifies(&public, std::slice::from_ref(&file));
    tamper_suite(&public, &[file]);
}

#[tokio::test]
async fn a_collector_that_restarts() {
    let collector = Collector::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path());
    let cfg = config(
        dir.path(),
        &key,
        &dir.path().join("state"),
        &syslog(&collector, None),
    );
    let proxy = ProxyProcess::start(&cfg);
    let load = Load::start(proxy.proxy, 8);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let collector = collector.restart(Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answered = load.finish().await;
    stop(proxy);
    let file = collected(&collector, dir.path()).await;
    let t = tally(&read_all(std::slice::from_ref(&file)));
    row("collector restarts", answered, &t);
    assert_eq!(t.broken, 0);
    assert_eq!(answered, t.records + t.reported, "{t:?}");
    assert_verifies(&public, std::slice::from_ref(&file));
    tamper_suite(&public, &[file]);
}

#[tokio::test]
async fn a_tls_collector_with_a_bad_certificate_is_refused_and_counted() {
    let trusted = TestCa::new("the municipality's CA");
    let other = TestCa::new("someone else");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &trusted.cert_pem).unwrap();
    // The collector presents a certificate the configured CA did not sign.
    let collector = Collector::start(Some(other.server_config("siem.test", None))).await;
    let (key, public) = keygen(dir.path());
    let cfg = config(
        dir.path(),
        &key,
        &dir.path().join("state"),
        &syslog(&collector, Some((&ca, "siem.test"))),
    );
    let proxy = ProxyProcess::start(&cfg);
    let load = Load::start(proxy.proxy, 4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answered = load.finish().await;
    assert!(
        collector.lines().is_empty(),
        "records went to an unverified collector"
    );
    let m = scrape(proxy.admin).await;
    assert!(m.sum("lbo_access_log_write_errors_total", &[]) > 0.0);
    assert!(
        proxy
            .log()
            .contains("certificate refused: not issued by a trusted CA"),
        "{}",
        proxy.log()
    );
    stop(proxy);
    // The collector gets the right certificate; the next start reports what was lost.
    drop(collector);
    let good = Collector::start(Some(trusted.server_config("siem.test", None))).await;
    let cfg = config(
        dir.path(),
        &key,
        &dir.path().join("state"),
        &syslog(&good, Some((&ca, "siem.test"))),
    );
    let proxy = ProxyProcess::start(&cfg);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !good.lines().iter().any(|l| l.contains("records_lost")) {
        assert!(Instant::now() < deadline, "no report:\n{}", proxy.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(proxy);
    let file = collected(&good, dir.path()).await;
    let t = tally(&read_all(std::slice::from_ref(&file)));
    row("TLS collector with a bad certificate", answered, &t);
    assert_eq!(t.records, 0);
    assert_eq!(answered, t.reported, "{t:?}");
    assert_verifies(&public, &[file]);
}

#[tokio::test]
async fn rotation_under_load() {
    let (_dir, public, log, cfg) = file_log(None, "");
    let proxy = ProxyProcess::start(&cfg);
    let load = Load::start(proxy.proxy, 16);
    let mut files = Vec::new();
    for n in 1..=4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        files.push(rotate(&proxy, &log, n).await);
    }
    let answered = load.finish().await;
    stop(proxy);
    // logrotate's compress: the oldest file as gzip.
    let gz = Command::new("gzip").arg(&files[0]).status().unwrap();
    assert!(gz.success());
    files[0] = files[0].with_extension("1.gz");
    files.push(log);
    let t = tally(&read_all(&files));
    row("rotation under load", answered, &t);
    assert_eq!(t.broken, 0);
    assert_eq!(answered, t.records + t.reported, "{t:?}");
    // In any order on the command line: the verifier orders the files by their numbers.
    let mut shuffled = files.clone();
    shuffled.reverse();
    assert_verifies(&public, &shuffled);
    tamper_suite(&public, &files);
}

#[tokio::test]
async fn kill_9_under_load() {
    let fs = Tmpfs::mount("64m");
    let queue = 512;
    let (_dir, public, log, cfg) = file_log(Some(fs.path()), &format!("queue = {queue}"));
    let mut proxy = ProxyProcess::start(&cfg);
    let load = Load::start(proxy.proxy, 16);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The clients' last requests are answered, and the proxy is killed while its writer
    // still works through them. The records the queue refused by then are counted in
    // memory only: read the count first, for the bound below.
    let answered = load.finish().await;
    let refused = scrape(proxy.admin)
        .await
        .sum("lbo_access_log_dropped_total", &[]) as u64;
    proxy.signal(libc::SIGKILL);
    let _ = proxy.child.wait();
    let killed = tally(&read_all(std::slice::from_ref(&log)));
    // The next run starts after the unclean stop and ends in order.
    let proxy = ProxyProcess::start(&cfg);
    assert!(request(proxy.proxy).await);
    stop(proxy);
    let t = tally(&read_all(std::slice::from_ref(&log)));
    row("kill -9 under load (first run)", answered, &killed);
    assert!(killed.broken <= 1, "{killed:?}");
    assert_eq!(t.records, killed.records + 1);
    // What the dead process knew and could not say: the records it had queued or was
    // writing (at most its queue and one batch), and the count of those the queue had
    // refused that it had not yet written in a records_lost line.
    let missing = answered - killed.records - killed.reported;
    let unreported = refused - killed.reported;
    eprintln!(
        "kill -9: {missing} answered records neither on disk nor reported: {unreported} refused by the queue and counted in memory, {} queued or being written",
        missing - unreported.min(missing)
    );
    assert!(
        missing >= unreported && missing - unreported <= queue + 256,
        "{missing} records missing, {unreported} of them counted and not reported: \
         more than the queue held"
    );
    let (ok, report) = verify(&public, std::slice::from_ref(&log));
    assert!(!ok, "{report}");
    let fails: Vec<&str> = report.lines().filter(|l| l.starts_with("FAIL")).collect();
    let unclean = fails
        .iter()
        .filter(|l| l.contains("after an unclean stop"))
        .count();
    let unsigned = fails
        .iter()
        .filter(|l| l.starts_with("FAIL unsigned"))
        .count();
    let cut = fails
        .iter()
        .filter(|l| l.starts_with("FAIL damaged"))
        .count();
    assert_eq!(unclean, 1, "{report}");
    assert!(unsigned <= 1 && cut <= killed.broken as usize, "{report}");
    assert_eq!(
        fails.len(),
        unclean + unsigned + cut,
        "nothing else may be wrong:\n{report}"
    );
}
