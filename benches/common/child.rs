//! A benchmark's child process on its own loopback port: a port to give it, a file for
//! its log, and a bounded wait until it accepts there. Shared by the benches (`#[path]`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free a moment ago (the children take their port from a config file).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(name)).map_or(Stdio::null(), Stdio::from)
}

/// Waits (at most 30 s) until `child` accepts on `port`; if it exits or does not, kills it
/// and panics with `log`.
pub fn wait_ready(child: &mut Child, port: u16, log: &Path) -> SocketAddr {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not start ({exited:?}):\n{}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    addr
}
