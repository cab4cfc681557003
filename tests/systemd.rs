//! The service as systemd runs it: the unit passes `systemd-analyze verify` and rates well
//! in `systemd-analyze security`; the binary speaks the notify protocol (READY, RELOADING,
//! WATCHDOG, STOPPING) and reloads on SIGHUP.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn unit_for_this_build(dir: &Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/lbo-proxy.service"),
    )
    .unwrap();
    let path = dir.join("lbo-proxy.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/lbo-proxy", env!("CARGO_BIN_EXE_lbo-proxy")),
    )
    .unwrap();
    path
}

#[test]
fn the_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze is missing: run scripts/test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for lbo-proxy.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{text}"));
    // 0 is the best possible and 10 the worst; a network daemon cannot drop its network.
    assert!(score <= 2.0, "exposure {score}:\n{text}");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "LimitNOFILE=1048576",
    ] {
        assert!(
            std::fs::read_to_string(&unit).unwrap().contains(needed),
            "{needed}"
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) for a notify message containing `want`; returns every message seen.
fn wait_for(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = msg.contains(want);
            seen.push(msg);
            if hit {
                return;
            }
        }
    }
    panic!("no {want:?} from the service; saw {seen:?}");
}

#[test]
fn notify_protocol_and_sighup_reload() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = dir.path().join("lbo-proxy.toml");
    let write = |profile: &str| {
        std::fs::write(
            &config,
            format!(
                "[proxy]\nlisten = [\"127.0.0.1:{}\"]\n[log]\naccess = \"off\"\n\
                 [[segment]]\nname = \"lo\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"{profile}\"\n",
                free_port()
            ),
        )
        .unwrap()
    };
    write("case1");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut seen = Vec::new();
    wait_for(&sock, "READY=1", &mut seen);
    wait_for(&sock, "WATCHDOG=1", &mut seen);

    // A good new config: reload around it.
    write("case2");
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(&sock, "RELOADING=1", &mut seen);
    wait_for(&sock, "READY=1", &mut seen);

    // A bad one: refused, the process keeps running.
    std::fs::write(&config, "[proxy]\nlisten = [\"127.0.0.1:1\"]\nbogus = 1\n").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(&sock, "RELOADING=1", &mut seen);
    wait_for(&sock, "READY=1", &mut seen);
    assert!(
        child.try_wait().unwrap().is_none(),
        "a bad reload ended the process"
    );

    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(&sock, "STOPPING=1", &mut seen);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("reload refused") && log.contains(":3: "),
        "{log}"
    );
}
