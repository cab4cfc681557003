//! Debian's Squid for the benches: on a loopback port, no cache, no access log, no pinger,
//! names from a hosts file the caller writes, plus the caller's lines. Shared by the
//! benches (`#[path]`).

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn bin() -> Option<&'static str> {
    ["/usr/sbin/squid", "/usr/bin/squid"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Writes `dir/squid.conf` (with `extra` appended) and starts Squid on `port`; its cache
/// log is `dir/cache.log`. `dir` must be writable by the user Squid runs as.
pub fn spawn(bin: &str, dir: &Path, port: u16, extra: &str) -> Child {
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "cache_effective_user proxy\n"
    } else {
        ""
    };
    let conf = format!(
        "http_port 127.0.0.1:{port}\n\
         http_access allow all\n\
         cache deny all\n\
         access_log none\n\
         cache_log {d}/cache.log\n\
         pid_filename {d}/squid.pid\n\
         hosts_file {d}/hosts\n\
         dns_nameservers 127.0.0.1\n\
         coredump_dir {d}\n\
         shutdown_lifetime 0 seconds\n\
         pinger_enable off\n\
         visible_hostname bench\n\
         {extra}{user}",
        d = dir.display()
    );
    std::fs::write(dir.join("squid.conf"), conf).expect("squid.conf");
    Command::new(bin)
        .args(["-N", "-n", &format!("lbobench{port}"), "-f"])
        .arg(dir.join("squid.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting squid")
}
