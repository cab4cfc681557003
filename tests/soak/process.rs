//! The proxy as the real binary in a child process, so that the soak can signal it and
//! read its file descriptors and memory from /proc, as an operator would.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct ProxyProcess {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// Everything the proxy wrote to stderr (its own log), line by line.
    log: Arc<Mutex<Vec<String>>>,
}

/// What /proc says about the process at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub fds: usize,
    pub rss_kib: u64,
}

impl ProxyProcess {
    /// Starts `lbo-proxy run --config CONFIG` and waits (bounded) for both listeners,
    /// whose ports it learns from its log (the config binds port 0).
    pub fn start(config: &Path) -> ProxyProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
            .args(["run", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .env("LBO_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting lbo-proxy");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (addr, admin) = loop {
            let found = |what: &str| -> Option<SocketAddr> {
                let log = log.lock().unwrap();
                let line = log.iter().find(|l| l.contains(what))?;
                let at = line.find("127.0.0.1:")?;
                let rest = &line[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                    .unwrap_or(rest.len());
                rest[..end].parse().ok()
            };
            if let (Some(p), Some(a)) = (found("proxy listening"), found("admin listening")) {
                break (p, a);
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "lbo-proxy exited at start: {:?}",
                log.lock().unwrap()
            );
            assert!(Instant::now() < deadline, "lbo-proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        ProxyProcess {
            child,
            addr,
            admin,
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// True while the process runs; an exit is a soak failure.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `systemctl reload`: SIGHUP to the proxy this test started.
    pub fn sighup(&mut self) {
        assert!(self.alive(), "lbo-proxy exited: {}", self.log_text());
        // SAFETY: kill(2) on the PID of our own child, which is not yet reaped.
        let rc = unsafe { libc::kill(self.pid(), libc::SIGHUP) };
        assert_eq!(rc, 0, "SIGHUP to lbo-proxy");
    }

    /// Lines of the proxy's own log that contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn usage(&self) -> Usage {
        let pid = self.pid();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Usage { fds, rss_kib }
    }
}

/// `GET /healthz` on the admin listener at `admin`: its status, 0 when it does not answer.
pub async fn healthz(admin: SocketAddr) -> u16 {
    let ask = async {
        let mut tcp = tokio::net::TcpStream::connect(admin).await.ok()?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut text = Vec::new();
        tcp.read_to_end(&mut text).await.ok()?;
        String::from_utf8_lossy(&text)
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

impl Drop for ProxyProcess {
    /// SIGTERM, a bounded wait for the drain, then SIGKILL.
    fn drop(&mut self) {
        if !self.alive() {
            return;
        }
        // SAFETY: kill(2) on the PID of our own child, checked above not to be reaped.
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
