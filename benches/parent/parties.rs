//! Who takes part, each on its own loopback port: an echo origin, Squid as the security
//! cloud (plain `http_port`, and `https_port` with Squid's own TLS), lbo-proxy (the release
//! binary cargo built with this bench) and Squid as the appliance, with a parent behind
//! the WAN emulator. Child processes are killed by PID on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::child::{free_port, log_file, wait_ready};
use crate::squid;

pub struct Process {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An origin that echoes what a tunnel sends.
pub fn echo_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the origin");
    let addr = listener.local_addr().expect("origin address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                let Ok(mut w) = s.try_clone() else { return };
                let _ = std::io::copy(&mut s, &mut w);
            });
        }
    });
    addr
}

/// A certificate for `name` and its key, as PEM files in `dir`: (cert, key).
pub fn certificate(name: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    let (c, k) = (dir.join("parent.pem"), dir.join("parent.key"));
    std::fs::write(&c, cert.cert.pem()).expect("writing the certificate");
    std::fs::write(&k, cert.signing_key.serialize_pem()).expect("writing the key");
    (c, k)
}

pub fn squid_installed() -> bool {
    squid::bin().is_some()
}

/// The security cloud: Squid with a plain `http_port` and an `https_port` (its own TLS,
/// GnuTLS in Debian's build) with `cert`; returns the process (plain port) and the TLS
/// port.
pub fn squid_parent(cert: &(PathBuf, PathBuf)) -> (Process, SocketAddr) {
    let tls = free_port();
    let extra = format!(
        "https_port 127.0.0.1:{tls} tls-cert={} tls-key={}\n",
        cert.0.display(),
        cert.1.display()
    );
    let p = squid(&extra);
    (p, SocketAddr::from(([127, 0, 0, 1], tls)))
}

/// Squid as the appliance: everything to `parent` (behind the WAN), `standby` connections
/// kept to it, TLS to it when `tls` names the CA to trust.
pub fn squid_child(parent: SocketAddr, standby: usize, tls: Option<&Path>) -> Process {
    let standby = if standby > 0 {
        format!(" standby={standby}")
    } else {
        String::new()
    };
    let tls = tls.map_or(String::new(), |ca| {
        format!(" tls tls-cafile={} tls-domain=seccloud.test", ca.display())
    });
    squid(&format!(
        "cache_peer {} parent {} 0 no-query no-digest default{standby}{tls}\n\
         never_direct allow all\n",
        parent.ip(),
        parent.port()
    ))
}

fn squid(extra: &str) -> Process {
    let bin = squid::bin().expect("squid is installed");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("temp dir mode");
    std::fs::write(d.join("hosts"), "127.0.0.1 bench-client seccloud.test\n").expect("hosts");
    let port = free_port();
    let child = squid::spawn(bin, d, port, extra);
    ready(child, dir, port, "cache.log")
}

/// How lbo-proxy reaches its one parent in a row.
pub struct LboParent<'a> {
    pub address: SocketAddr,
    pub standby: usize,
    /// The CA to trust for TLS to the parent (name `seccloud.test`); `None`: plain.
    pub tls: Option<&'a Path>,
    pub early_data: bool,
}

pub fn lbo(parent: &LboParent<'_>) -> Process {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir(d.join("allowlists")).expect("allowlist dir");
    // One rule that nothing in the bench asks for: every tunnel goes to the parent.
    std::fs::write(
        d.join("allowlists/bench.toml"),
        "[category]\nname = \"bench\"\ndescription = \"nothing the bench asks for\"\n\
         [provenance]\nsource = \"bench\"\nversion = \"1\"\nretrieved = \"2026-12-01\"\n\
         [[rule]]\nname = \"none\"\ndomains = [\"direct.bench\"]\n",
    )
    .expect("writing the allowlist");
    let port = free_port();
    let tls = parent.tls.map_or(String::new(), |ca| {
        format!(
            "tls = true\ntls_server_name = \"seccloud.test\"\ntls_ca_file = \"{}\"\n\
             tls_early_data = {}\n",
            ca.display(),
            parent.early_data
        )
    });
    let config = format!(
        "[proxy]\nlisten = [\"127.0.0.1:{port}\"]\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [allowlists]\ndir = \"allowlists\"\n\
         [upstream]\nhealth_interval = \"1h\"\n\
         [[upstream.parent]]\nname = \"seccloud\"\naddress = \"{}\"\nstandby = {}\n{tls}\
         [[profile]]\nname = \"bench\"\ndirect = [\"bench\"]\n\
         [[segment]]\nname = \"bench\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"bench\"\n\
         [log]\naccess = \"off\"\n",
        parent.address, parent.standby
    );
    let path = d.join("lbo-proxy.toml");
    std::fs::write(&path, config).expect("writing the config");
    let child = Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
        .current_dir(d)
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log_file(d, "stderr.log"))
        .spawn()
        .expect("starting lbo-proxy");
    ready(child, dir, port, "stderr.log")
}

/// Waits (at most 30 s) until the child accepts on `port`.
fn ready(mut child: Child, dir: tempfile::TempDir, port: u16, log: &str) -> Process {
    let addr = wait_ready(&mut child, port, &dir.path().join(log));
    Process {
        addr,
        child,
        _dir: dir,
    }
}
