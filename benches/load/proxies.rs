//! The proxies under test, each a child process on its own loopback port: lbo-proxy (the
//! release binary cargo built with this bench), the bare relay, Debian's Squid and
//! tinyproxy. Killed by PID on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::{free_port, log_file, wait_ready};
use crate::squid;
use crate::workloads::{source_address, SOURCES};

/// Name the allowlist breaks out (direct to the origin).
pub const DIRECT_NAME: &str = "echo.bench";
/// Name on no allowlist: lbo-proxy sends it to its parent.
pub const UPSTREAM_NAME: &str = "up.bench";

pub struct Proxy {
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Set (to anything) to run lbo-proxy under `valgrind --tool=callgrind` and count the
/// instructions it runs in user space: a figure that, unlike CPU time, does not move with
/// what else the machine is doing, so a change of a few per cent shows.
pub const CALLGRIND: &str = "LBO_BENCH_CALLGRIND";
const CALLGRIND_OUT: &str = "callgrind.out";

/// The access log of an lbo-proxy row.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Log {
    Off,
    /// To a file, numbered, chained and signed, `sync = "batch"` (the default) or `"none"`.
    File {
        sync: &'static str,
    },
}

/// How lbo-proxy is set up for one row.
pub struct Lbo<'a> {
    pub dns: SocketAddr,
    pub ports: &'a [u16],
    pub access_log: Log,
    pub parent: Option<SocketAddr>,
    pub max_connections: usize,
}

pub fn lbo(o: Lbo<'_>) -> Proxy {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir(d.join("allowlists")).expect("allowlist dir");
    let ports: Vec<String> = o.ports.iter().map(u16::to_string).collect();
    std::fs::write(
        d.join("allowlists/bench.toml"),
        format!(
            "[category]\nname = \"bench\"\ndescription = \"benchmark origin\"\n\
             [provenance]\nsource = \"bench\"\nversion = \"1\"\nretrieved = \"2026-11-23\"\n\
             [[rule]]\nname = \"bench-origin\"\ndomains = [\"{DIRECT_NAME}\"]\nports = [{}]\n",
            ports.join(", ")
        ),
    )
    .expect("writing the allowlist");
    let port = free_port();
    let parent = o.parent.map_or(String::new(), |p| {
        format!("[[upstream.parent]]\nname = \"squid\"\naddress = \"{p}\"\n")
    });
    let log = match o.access_log {
        Log::Off => "access = \"off\"\n".to_string(),
        Log::File { sync } => {
            let made = Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
                .args(["log", "keygen", "--key"])
                .arg(d.join("log.key"))
                .output()
                .expect("lbo-proxy log keygen");
            assert!(made.status.success(), "log keygen failed");
            format!("access = \"access.log\"\nsync = \"{sync}\"\nsigning_key = \"log.key\"\n")
        }
    };
    let config = format!(
        "[proxy]\nlisten = [\"127.0.0.1:{port}\"]\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [allowlists]\ndir = \"allowlists\"\n\
         [direct]\ndns = [\"{dns}\"]\nallow_internal = [\"127.0.0.1/32\"]\n\
         [upstream]\nhealth_interval = \"1h\"\nfall = 1\nrise = 1\n{parent}\
         [[profile]]\nname = \"bench\"\ndirect = [\"bench\"]\n\
         [[segment]]\nname = \"bench\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"bench\"\n\
         [limits]\nmax_connections = {max}\n\
         [log]\n{log}\
         [state]\ndir = \"state\"\n",
        dns = o.dns,
        max = o.max_connections,
    );
    let path = d.join("lbo-proxy.toml");
    std::fs::write(&path, config).expect("writing the config");
    let mut command = if std::env::var_os(CALLGRIND).is_some() {
        let mut valgrind = Command::new("valgrind");
        valgrind
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={CALLGRIND_OUT}"))
            .arg(env!("CARGO_BIN_EXE_lbo-proxy"));
        valgrind
    } else {
        Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
    };
    let child = command
        .current_dir(d)
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log_file(d, "stderr.log"))
        .spawn()
        .expect("starting lbo-proxy");
    ready(child, dir, port, "stderr.log")
}

/// The first argument that starts this bench's binary as the bare relay (`bare.rs`).
pub const BARE_RELAY: &str = "bare-relay";
/// The same for the bare splice relay (`bare_splice.rs`).
pub const BARE_SPLICE: &str = "bare-splice";

/// A bare relay, `mode` one of the two above: this bench's own binary, started again.
pub fn bare(mode: &str) -> Proxy {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let child = Command::new(std::env::current_exe().expect("the bench's own path"))
        .args([mode, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(log_file(dir.path(), "stderr.log"))
        .spawn()
        .expect("starting the bare relay");
    ready(child, dir, port, "stderr.log")
}

/// Squid, if installed; with `parent`, every request goes through it.
pub fn squid(parent: Option<SocketAddr>, max_fds: usize) -> Option<Proxy> {
    let bin = squid::bin()?;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("temp dir mode");
    // Squid looks up the name of each client address (PTR). Nothing answers on port 53
    // here, so unanswered queries would pile up and Squid would spend most of its CPU
    // searching them; the hosts file answers them, as a working resolver's cache would.
    let mut hosts = format!("127.0.0.1 {DIRECT_NAME} {UPSTREAM_NAME}\n");
    for i in 0..SOURCES {
        hosts.push_str(&format!("{} client{i}.bench\n", source_address(i)));
    }
    std::fs::write(d.join("hosts"), hosts).expect("hosts file");
    let port = free_port();
    let parent = parent.map_or(String::new(), |p| {
        format!(
            "cache_peer {} parent {} 0 no-query no-digest default\nnever_direct allow all\n",
            p.ip(),
            p.port()
        )
    });
    let extra = format!("max_filedescriptors {max_fds}\n{parent}");
    let child = squid::spawn(bin, d, port, &extra);
    Some(ready(child, dir, port, "cache.log"))
}

/// tinyproxy, if installed: a second peer from issue 7's table. It resolves names with the
/// system resolver, so the client asks it for the origin's address, not a name.
pub fn tinyproxy(max_clients: usize) -> Option<Proxy> {
    let bin = "/usr/bin/tinyproxy";
    if !Path::new(bin).exists() {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("temp dir mode");
    let port = free_port();
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "User nobody\nGroup nogroup\n"
    } else {
        ""
    };
    let conf = format!(
        "Port {port}\n\
         Listen 127.0.0.1\n\
         Timeout 600\n\
         LogFile \"{d}/tinyproxy.log\"\n\
         LogLevel Critical\n\
         PidFile \"{d}/tinyproxy.pid\"\n\
         MaxClients {max_clients}\n\
         Allow 127.0.0.0/8\n\
         DisableViaHeader Yes\n\
         {user}",
        d = d.display()
    );
    std::fs::write(d.join("tinyproxy.conf"), conf).expect("tinyproxy.conf");
    let child = Command::new(bin)
        .arg("-d")
        .arg("-c")
        .arg(d.join("tinyproxy.conf"))
        .stdout(Stdio::null())
        .stderr(log_file(d, "stderr.log"))
        .spawn()
        .expect("starting tinyproxy");
    Some(ready(child, dir, port, "stderr.log"))
}

/// A peer's version, e.g. "5.7" for Squid or "1.11.1" for tinyproxy: the first word of
/// what `BIN -v` prints that starts with a digit. Empty when it is not installed.
pub fn version(bin: &str) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let first = text.lines().next()?;
            let word = first
                .split_whitespace()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
            Some(word.to_string())
        })
        .unwrap_or_default()
}

/// Waits (at most 30 s) until the child accepts on `port`.
fn ready(mut child: Child, dir: tempfile::TempDir, port: u16, log: &str) -> Proxy {
    let addr = wait_ready(&mut child, port, &dir.path().join(log));
    Proxy {
        addr,
        pid: child.id(),
        child,
        dir,
    }
}

impl Proxy {
    /// Under callgrind: stops the proxy the way systemd does (SIGTERM, then it drains and
    /// exits, which is when callgrind writes its counts) and returns the instructions it
    /// ran, start-up included. `None` when not under callgrind.
    pub fn instructions(mut self) -> Option<u64> {
        let out = self.dir.path().join(CALLGRIND_OUT);
        std::env::var_os(CALLGRIND)?;
        // SAFETY: signals our own child, by the PID we started it with.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::read_to_string(out)
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("totals: "))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Lines of the access log written so far (lbo-proxy with logging on).
    pub fn access_lines(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("access.log")).map_or(0, |s| s.lines().count())
    }
}
