//! Network namespaces a test creates for itself (named after the test and this process,
//! so parallel runs on one machine never meet), the commands run inside them, and threads
//! moved into them. Needs root, `ip` (iproute2) and, for firewall rules, `nft`
//! (nftables): `scripts/test` installs both and CI runs as root. A missing one fails the
//! test; nothing here skips.

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

/// A namespace, deleted when dropped.
pub struct Netns(pub String);

impl Netns {
    /// Creates `lbo-<tag>-<pid>` with its loopback up.
    pub fn create(tag: &str) -> Netns {
        let name = format!("lbo-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("`ip` is missing: scripts/test installs iproute2");
        assert!(
            out.status.success(),
            "ip netns add {name} failed (the tests need root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns(name);
        ns.run("ip", &["link", "set", "lo", "up"], None);
        ns
    }

    /// Runs a command inside the namespace, feeding it `stdin`; it must succeed.
    pub fn run(&self, cmd: &str, args: &[&str], stdin: Option<&str>) -> String {
        run_in(&self.0, cmd, args, stdin)
    }

    /// Runs a command inside the namespace: whether it succeeded, and its output.
    pub fn try_run(&self, cmd: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        try_run_in(&self.0, cmd, args, stdin)
    }

    /// Moves the calling thread (only) into the namespace: sockets it makes from then on
    /// belong there, whichever thread uses them later.
    pub fn enter(&self) {
        let f = std::fs::File::open(format!("/var/run/netns/{}", self.0)).unwrap();
        // SAFETY: setns on a valid namespace fd; it affects this thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Runs `f` on a thread inside the namespace and returns what it returns (a panic
    /// there is this test's failure).
    pub fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.0.clone();
        let handle = std::thread::spawn(move || {
            Netns(name.clone()).enter_only();
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Runs `fut` on a two-thread runtime whose every socket lives in the namespace.
    pub fn block_on<F: std::future::Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send + 'static,
    {
        // The runtime's threads are made inside: their sockets belong there.
        self.within(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(fut)
        })
    }

    fn enter_only(self) {
        self.enter();
        // Not ours to delete: the owner drops it.
        std::mem::forget(self);
    }
}

/// Runs a command inside namespace `ns`, feeding it `stdin`; it must succeed.
pub fn run_in(ns: &str, cmd: &str, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out) = try_run_in(ns, cmd, args, stdin);
    assert!(ok, "{cmd} {args:?} in {ns}: {out}");
    out
}

/// Runs a command inside namespace `ns`: whether it succeeded, and its output.
pub fn try_run_in(ns: &str, cmd: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, cmd])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd} in {ns}: {e}"));
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Links two namespaces with a veth pair: `a_if` in `a`, `b_if` in `b`, both up.
pub fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    let pid = std::process::id();
    let (ta, tb) = (format!("v{pid}a{a_if}"), format!("v{pid}b{b_if}"));
    let (ta, tb) = (&ta[..ta.len().min(15)], &tb[..tb.len().min(15)]);
    let ok = Command::new("ip")
        .args(["link", "add", ta, "type", "veth", "peer", "name", tb])
        .status()
        .expect("`ip` is missing: scripts/test installs iproute2")
        .success();
    assert!(ok, "ip link add {ta} (veth) failed");
    for (t, ns, name) in [(ta, a, a_if), (tb, b, b_if)] {
        let ok = Command::new("ip")
            .args(["link", "set", t, "netns", &ns.0])
            .status()
            .unwrap()
            .success();
        assert!(ok, "moving {t} into {}", ns.0);
        ns.run("ip", &["link", "set", t, "name", name], None);
        ns.run("ip", &["link", "set", name, "up"], None);
    }
}
