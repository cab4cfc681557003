//! The proxy binary as its own process, as systemd runs it: signalled by PID, its
//! listeners' ports read from its service log, its metrics its own.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ProxyProcess {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl ProxyProcess {
    /// Runs `lbo-proxy run --config CONFIG`; the config must have a proxy and an admin
    /// listener (port 0 is fine: the ports are read from the service log).
    pub fn start(config: &Path) -> ProxyProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
            .args(["run", "--config"])
            .arg(config)
            .env("LBO_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting lbo-proxy");
        let log = collect(child.stderr.take().expect("stderr is piped"));
        let stdout = collect(child.stdout.take().expect("stdout is piped"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = log.lock().unwrap().clone();
            if let (Some(proxy), Some(admin)) = (
                listening(&text, "proxy listening"),
                listening(&text, "admin listening"),
            ) {
                return ProxyProcess {
                    child,
                    proxy,
                    admin,
                    log,
                    stdout,
                };
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lbo-proxy did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// The service log (standard error) so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Standard output so far (the access log with `access = "stdout"`).
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines read from `pipe` by a thread, so the process never blocks on a full pipe.
fn collect(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    text
}

/// The address in a line like `… proxy listening addr=Some(127.0.0.1:41234)`.
fn listening(log: &str, what: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains(what))?;
    let start = line.find("127.0.0.1:")?;
    let rest = &line[start..];
    let end = rest
        .char_indices()
        .skip("127.0.0.1:".len())
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}
