//! The access-log fault battery's parts (`tests/access_log_faults.rs`): a tmpfs to fill,
//! clients that count the answers, the tally of a log's lines, `lbo-proxy log verify`
//! and the edits it must find.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::ProxyProcess;

pub const BIN: &str = env!("CARGO_BIN_EXE_lbo-proxy");

/// A tmpfs mounted for one test, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
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

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system: a file that takes every free block.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }

    pub fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A signing key made with the command the operator uses.
pub fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
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
pub fn config(dir: &Path, key: &Path, state: &Path, log: &str) -> PathBuf {
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
pub fn file_log(on: Option<&Path>, extra: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
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
pub struct Load {
    answered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(proxy: std::net::SocketAddr, width: usize) -> Load {
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

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        self.answered.load(Ordering::SeqCst)
    }
}

/// One request; true when the proxy answered it (its record is then made).
pub async fn request(proxy: std::net::SocketAddr) -> bool {
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
pub fn stop(mut proxy: ProxyProcess) -> String {
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
pub struct Tally {
    /// Distinct numbers of record lines.
    pub records: u64,
    /// The sum of `records_lost` counts.
    pub reported: u64,
    pub lines: u64,
    /// Lines that are not JSON (a cut line after kill -9).
    pub broken: u64,
}

pub fn tally(texts: &[String]) -> Tally {
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

pub fn read_all(files: &[PathBuf]) -> Vec<String> {
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
pub fn verify(public: &Path, files: &[PathBuf]) -> (bool, String) {
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

pub fn assert_verifies(public: &Path, files: &[PathBuf]) {
    let (ok, report) = verify(public, files);
    assert!(ok, "untouched files must verify:\n{report}");
}

/// Each edit on a copy of `files` (in order; at least three for the removed file): the
/// verifier must fail and name it. A collector's file is checked by seq, where two lines
/// swapped are no finding, and is one file: those two edits are left out there.
pub fn tamper_suite(public: &Path, files: &[PathBuf]) {
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
pub async fn rotate(proxy: &ProxyProcess, log: &Path, n: usize) -> PathBuf {
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

pub fn row(fault: &str, answered: u64, t: &Tally) {
    eprintln!("| {fault} | {answered} | {} | {} |", t.records, t.reported);
}
