//! The operator cannot weaken a guard by accident, or without the audit saying so:
//! `check` refuses what `run` would refuse (every file the run opens), wildcards at a
//! Public Suffix List entry, and `allow_internal` ranges that switch the guard off; an
//! allow opens exactly what it names; `check` and the audit list every weakened safeguard
//! (`audit --strict` fails on any); `auth_file` takes what Debian's `htpasswd` writes
//! (bcrypt, SHA-crypt; its default MD5-crypt and `{SHA}` are refused with their line).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::{curl, dns_server, Lab, Origin, Proxy};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
}

/// A config on loopback with `extra` appended.
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("lbo-proxy.toml");
    std::fs::write(
        &path,
        format!(
            "[proxy]\nlisten = [\"127.0.0.1:0\"]\n\
             [[segment]]\nname = \"staff\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn check(path: &Path) -> (bool, String, String) {
    let out = bin()
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `run` on the config: whether it refused to start (it would serve otherwise: stopped).
fn run_refuses(path: &Path) -> (bool, String) {
    let mut child = bin()
        .args(["run", "--config"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (!status.success(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (false, String::new());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn check_refuses_what_run_refuses_for_every_file_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir(dir.path().join("logdir")).unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
    let cases = [
        ("[log]\naccess = \"logdir\"\n", "log.access", "is a directory"),
        ("[log]\naccess = \"missing/access.log\"\n", "log.access", "missing"),
        (
            "[[upstream.parent]]\nname = \"p\"\naddress = \"127.0.0.1:9\"\ntls = true\ntls_ca_file = \"ca.pem\"\n",
            "upstream.parent.tls_ca_file",
            "ca.pem",
        ),
        ("[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"none.token\"\n", "admin.token_file", "none.token"),
    ];
    for (extra, key, why) in cases {
        let path = config(dir.path(), extra);
        let (ok, _, err) = check(&path);
        assert!(!ok, "check passed {extra:?}");
        assert!(
            err.contains(&format!("{d}/lbo-proxy.toml:")) && err.contains(key) && err.contains(why),
            "{extra:?}: {err}"
        );
        let (refused, run_err) = run_refuses(&path);
        assert!(refused, "run started on {extra:?}");
        assert!(run_err.contains(key), "{run_err}");
    }
    // The same config with the files in order passes both.
    let path = config(dir.path(), "[log]\naccess = \"logdir/access.log\"\n");
    let (ok, out, err) = check(&path);
    assert!(ok, "{err}");
    assert!(out.contains("public suffix list: psl "), "{out}");
}

#[test]
fn wildcards_at_a_public_suffix_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(
        local.join("city.toml"),
        "[category]\nname = \"city\"\ndescription = \"the city's own\"\n\
         [provenance]\nsource = \"local\"\nversion = \"1\"\nretrieved = \"2026-11-23\"\n\
         [[rule]]\nname = \"sites\"\ndomains = [\n  \"*.co.jp\",\n  \"*.sakura.ne.jp\",\n  \"*.blogspot.com\",\n  \"*.r2.dev\",\n  \"*.city.example.lg.jp\",\n]\n",
    )
    .unwrap();
    let path = config(
        dir.path(),
        "[allowlists]\nlocal_dir = \"local\"\n[[profile]]\nname = \"city\"\ndirect = [\"city\"]\n",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("profile = \"case1\"", "profile = \"city\"");
    std::fs::write(&path, text).unwrap();
    let (ok, _, err) = check(&path);
    assert!(!ok);
    for (line, zone, section) in [
        (11, "co.jp", "ICANN"),
        (12, "sakura.ne.jp", "private"),
        (13, "blogspot.com", "private"),
        (14, "r2.dev", "private"),
    ] {
        assert!(
            err.contains(&format!("city.toml:{line}: rule.domains"))
                && err.contains(&format!(
                    "a public suffix ({zone}, Public Suffix List, {section} section)"
                )),
            "{zone}: {err}"
        );
    }
    assert!(!err.contains("city.example.lg.jp"), "{err}");
}

/// Rewrites a line of the lab's config and reloads.
fn set_internal(proxy: &Proxy, from: &str, to: &str) {
    let cfg = proxy.dir.path().join("lbo-proxy.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&cfg, text.replacen(from, to, 1)).unwrap();
    reload(proxy);
}

/// `POST /-/reload` on the lab's admin listener, which must take it.
fn reload(proxy: &Proxy) {
    let reload = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://{}/-/reload", proxy.admin.unwrap()),
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&reload.stdout);
    assert!(body.contains("reloaded"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_internal_opens_exactly_what_it_names() {
    // An allowlisted name that resolves to loopback: refused by the guard, until an allow
    // names a range equal to the built-in one; a deny of the address wins over it.
    let origin = Origin::start().await;
    let dns = dns_server(&[("direct.test", "127.0.0.1")]).await;
    let proxy = Proxy::start(Lab::on(dns, origin.port())).await;
    let url = format!("http://direct.test:{}/", origin.port());
    set_internal(
        &proxy,
        "allow_internal = [\"127.0.0.1/32\"]",
        "allow_internal = []",
    );
    assert_eq!(curl(&proxy, &url, true).await.connect, 403);
    set_internal(
        &proxy,
        "allow_internal = []",
        "allow_internal = [\"127.0.0.0/8\"]",
    );
    let r = curl(&proxy, &url, true).await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    set_internal(
        &proxy,
        "allow_internal = [\"127.0.0.0/8\"]",
        "allow_internal = [\"127.0.0.0/8\"]\ndeny_internal = [\"127.0.0.1/32\"]",
    );
    assert_eq!(curl(&proxy, &url, true).await.connect, 403);
    let recs = proxy.records(3).await;
    let reasons: Vec<&str> = recs.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(
        reasons,
        ["internal_address", "finished", "internal_address"],
        "{recs:#?}"
    );
    proxy.stop().await;
}

#[test]
fn check_and_the_audit_list_every_weakened_safeguard() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users"), "sato:plain-text\n").unwrap();
    let weak = "[admin]\nlisten = \"127.0.0.1:0\"\nallow = [\"10.9.0.0/24\"]\n\
                [direct]\nallow_internal = [\"10.1.0.0/16\"]\n[sni_check]\nmode = \"log\"\nnon_tls = \"allow\"\n\
                [reload]\nopen_tunnels = \"keep\"\n[log]\naccess = \"off\"\n";
    let path = config(dir.path(), weak);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "profile = \"case1\"\n",
        "profile = \"case1\"\nauth_file = \"users\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let (ok, out, err) = check(&path);
    assert!(ok, "{err}");
    for want in [
        "weakened safeguards (7):",
        "direct.allow_internal = 10.1.0.0/16: local breakout to internal addresses: 10.1.0.0/16 of 10.0.0.0/8 Private-Use",
        "sni_check.mode = log",
        "sni_check.non_tls = allow",
        "admin.allow = 10.9.0.0/24",
        "segment.auth_file = staff: 1 user(s) of segment staff stored in plain text",
        "reload.open_tunnels = keep",
        "log.access = off",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    for (lang, heading) in [("en", "Weakened safeguards"), ("ja", "弱められた安全策")] {
        let report = dir.path().join(format!("audit-{lang}.md"));
        let out = bin()
            .args(["audit", "--format", "md", "--lang", lang, "--config"])
            .arg(&path)
            .arg("--out")
            .arg(&report)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let md = std::fs::read_to_string(&report).unwrap();
        assert!(md.contains(&format!("## 6. {heading}")), "{md}");
        assert!(
            md.contains("allow\\_internal") || md.contains("allow_internal"),
            "{md}"
        );
        let strict = bin()
            .args(["audit", "--strict", "--lang", lang, "--config"])
            .arg(&path)
            .arg("--out")
            .arg(dir.path().join("strict.html"))
            .output()
            .unwrap();
        assert!(
            !strict.status.success(),
            "audit --strict passed with weakened safeguards"
        );
    }
    // Nothing weakened: --strict passes.
    let plain = config(dir.path(), "");
    let (ok, out, _) = check(&plain);
    assert!(ok && out.contains("weakened safeguards: none"), "{out}");
    let strict = bin()
        .args(["audit", "--strict", "--config"])
        .arg(&plain)
        .arg("--out")
        .arg(dir.path().join("ok.html"))
        .output()
        .unwrap();
    assert!(
        strict.status.success(),
        "{}",
        String::from_utf8_lossy(&strict.stderr)
    );
}

/// `htpasswd` from Debian's apache2-utils (scripts/test installs it).
fn htpasswd(args: &[&str]) -> String {
    let out = Command::new("htpasswd")
        .args(args)
        .output()
        .expect("htpasswd is missing: scripts/test installs apache2-utils");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_file_takes_what_htpasswd_writes() {
    let bcrypt = htpasswd(&["-nbB", "sato", "pw-bcrypt"]);
    let sha256 = htpasswd(&["-nb2", "suzuki", "pw-sha256"]);
    let sha512 = htpasswd(&["-nb5", "tanaka", "pw-sha512"]);
    assert!(bcrypt.starts_with("sato:$2y$"), "{bcrypt}");
    assert!(sha256.starts_with("suzuki:$5$") && sha512.starts_with("tanaka:$6$"));
    let origin = Origin::start().await;
    let dns = dns_server(&[("direct.test", "127.0.0.1")]).await;
    let proxy = Proxy::start(Lab::on(dns, origin.port())).await;
    let users = proxy.dir.path().join("users");
    std::fs::write(
        &users,
        format!("{bcrypt}\n{sha256}\n{sha512}\nito:plain-pw\n"),
    )
    .unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o640)).unwrap();
    set_internal(
        &proxy,
        "profile = \"lab\"\n[timeouts]",
        "profile = \"lab\"\nauth_file = \"users\"\n[timeouts]",
    );
    let url = format!("http://direct.test:{}/", origin.port());
    for (cred, want) in [
        ("sato:pw-bcrypt", 200),
        ("suzuki:pw-sha256", 200),
        ("tanaka:pw-sha512", 200),
        ("ito:plain-pw", 200),
        ("sato:wrong", 407),
        ("nobody:pw-bcrypt", 407),
    ] {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-x",
                &proxy.url(),
                "-U",
                cred,
                &url,
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want.to_string(),
            "{cred}"
        );
    }
    proxy.stop().await;

    // htpasswd's default (MD5-crypt) and {SHA}: refused by check, with the line.
    let dir = tempfile::tempdir().unwrap();
    let md5 = htpasswd(&["-nb", "sato", "pw"]);
    let sha1 = htpasswd(&["-nbs", "suzuki", "pw"]);
    assert!(md5.starts_with("sato:$apr1$") && sha1.starts_with("suzuki:{SHA}"));
    std::fs::write(
        dir.path().join("users"),
        format!("# 税務課\n{bcrypt}\n{md5}\n{sha1}\n"),
    )
    .unwrap();
    let path = config(dir.path(), "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "profile = \"case1\"\n",
        "profile = \"case1\"\nauth_file = \"users\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let (ok, _, err) = check(&path);
    assert!(!ok);
    assert!(
        err.contains("segment.auth_file")
            && err.contains("line 3: MD5-crypt")
            && err.contains("htpasswd -B"),
        "{err}"
    );
    let hash = md5.split_once(':').unwrap().1;
    assert!(!err.contains(hash), "the hash is not echoed: {err}");
}
