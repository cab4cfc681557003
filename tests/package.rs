//! The Debian package, built twice from this tree (two versions) with
//! `packaging/build-deb.sh`: lintian has nothing unexplained to say, and in a throwaway
//! root an upgrade keeps the local config and allowlists, refuses to go on (and so to
//! restart the service) while `lbo-proxy check` fails, and completes once it is fixed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::throwaway_root::{text, ThrowawayRoot};

const OLD: &str = "0.1.0-1";
const NEW: &str = "0.1.0-2";
const CONFIG: &str = "/etc/lbo-proxy/lbo-proxy.toml";

/// Lintian's informational tags that README.md explains (section Deploy); the last is a
/// byte sequence of the release binary's machine code that reads like a misspelt word.
const EXPLAINED: [&str; 3] = [
    "hardening-no-fortify-functions",
    "package-supports-alternative-init-but-no-init.d-script",
    "spelling-error-in-binary tHIk think",
];

/// Both packages, built once per test run (from the test binary, stripped by the script).
fn packages() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package-test");
        let build = |version: &str| {
            let run =
                Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-deb.sh"))
                    .args(["--binary", env!("CARGO_BIN_EXE_lbo-proxy"), "--out"])
                    .arg(&out)
                    .arg(version)
                    .output()
                    .expect("packaging/build-deb.sh");
            assert!(run.status.success(), "{}", text(&run));
            PathBuf::from(String::from_utf8_lossy(&run.stdout).trim())
        };
        (build(OLD), build(NEW))
    })
}

#[test]
fn lintian_has_nothing_unexplained() {
    let (old, _) = packages();
    let run = Command::new("lintian")
        .args(["--pedantic", "--info", "--no-tag-display-limit"])
        .arg(old)
        .output()
        .expect("lintian is missing: run scripts/test");
    let report = String::from_utf8_lossy(&run.stdout).to_string();
    for line in report.lines() {
        let explained = line.starts_with("I: lbo-proxy: ")
            && EXPLAINED
                .iter()
                .any(|tag| line.contains(&format!(": {tag} ")));
        assert!(explained, "lintian: {line}\n\n{report}");
    }
    assert!(run.status.success(), "{}", text(&run));
}

/// Runs `script` in `root` and asserts that it succeeds; returns its output.
fn ok(root: &ThrowawayRoot, script: &str) -> String {
    let out = root.sh(script);
    assert!(out.status.success(), "{script}\n{}", text(&out));
    text(&out)
}

/// The city's own edits: a segment whose custom profile needs a local category.
const LOCAL_CONFIG: &str = r#"
[[segment]]
name = "honcho-staff"
networks = ["10.20.0.0/16"]
profile = "city"

[[profile]]
name = "city"
direct = ["m365-auth", "city-saas"]
"#;

const LOCAL_ALLOWLIST: &str = r#"
[category]
name = "city-saas"
description = "The city's own SaaS portal"

[provenance]
source = "contract 2026-17"
version = "2026"
retrieved = "2026-04-01"

[[rule]]
name = "portal"
domains = ["portal.city.example.jp"]
"#;

#[test]
fn upgrade_keeps_local_config_and_checks_it_before_restarting() {
    let (old, new) = packages();
    let root = ThrowawayRoot::new();
    for deb in [old, new] {
        std::fs::copy(deb, root.share().join(deb.file_name().unwrap())).unwrap();
    }
    let deb = |p: &PathBuf| format!("/mnt/share/{}", p.file_name().unwrap().to_string_lossy());
    let status = "dpkg-query -W -f '${Status} ${Version}' lbo-proxy";

    // First install: user, permissions, service enabled, shipped config passes check.
    ok(&root, &format!("dpkg -i {}", deb(old)));
    let facts = ok(
        &root,
        &format!(
            "getent passwd lbo-proxy | cut -d: -f6,7
             stat -c '%n %U:%G %a' /etc/lbo-proxy /etc/lbo-proxy/allowlists {CONFIG} /var/lib/lbo-proxy
             readlink /etc/systemd/system/multi-user.target.wants/lbo-proxy.service
             ls /usr/share/lbo-proxy/allowlists /usr/share/lbo-proxy/dashboards
             {status}"
        ),
    );
    for fact in [
        "/nonexistent:/usr/sbin/nologin",
        "/etc/lbo-proxy root:lbo-proxy 750",
        "/etc/lbo-proxy/allowlists root:lbo-proxy 750",
        "/etc/lbo-proxy/lbo-proxy.toml root:lbo-proxy 640",
        "/var/lib/lbo-proxy lbo-proxy:lbo-proxy 750",
        "/lib/systemd/system/lbo-proxy.service",
        "m365-auth.toml",
        "lbo-proxy.json",
        "alerts.yml",
        &format!("install ok installed {OLD}"),
    ] {
        assert!(facts.contains(fact), "{fact:?} missing in:\n{facts}");
    }

    // Local edits, one of them a mistake: the upgrade must stop before the restart.
    std::fs::write(
        root.share().join("local.toml"),
        LOCAL_CONFIG.replace("\"city\"\n\n", "\"town\"\n\n"),
    )
    .unwrap();
    std::fs::write(root.share().join("city-saas.toml"), LOCAL_ALLOWLIST).unwrap();
    ok(
        &root,
        &format!(
            "cat /mnt/share/local.toml >> {CONFIG}
             cp /mnt/share/city-saas.toml /etc/lbo-proxy/allowlists/"
        ),
    );
    let lines_before = ok(&root, &format!("wc -l < {CONFIG}"));
    let bad_line = lines_before.trim().parse::<usize>().unwrap() - LOCAL_CONFIG.lines().count() + 5;
    let refused = root.sh(&format!("dpkg -i {}", deb(new)));
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "{CONFIG}:{bad_line}: segment.profile: unknown profile \"town\""
        )),
        "{said}"
    );
    assert!(said.contains("the service was not restarted"), "{said}");
    assert!(
        ok(&root, status).contains(&format!("half-configured {NEW}")),
        "{}",
        ok(&root, status)
    );

    // Fixed: the configuration completes; the edits and the local category are still there.
    ok(
        &root,
        &format!("sed -i 's/\"town\"/\"city\"/' {CONFIG} && dpkg --configure -a"),
    );
    assert!(ok(&root, status).contains(&format!("install ok installed {NEW}")));
    let config = ok(&root, &format!("cat {CONFIG}"));
    assert!(config.ends_with(LOCAL_CONFIG), "{config}");
    let summary = ok(&root, &format!("lbo-proxy check --config {CONFIG}"));
    assert!(
        summary.contains("honcho-staff         profile city"),
        "{summary}"
    );
    assert!(summary.contains("city-saas"), "{summary}");
    assert!(ok(&root, &format!("stat -c '%U:%G %a' {CONFIG}")).contains("root:lbo-proxy 640"));

    // An upgrade over a good config goes straight through (here: the same version again).
    ok(&root, &format!("dpkg -i {}", deb(new)));
    assert!(ok(&root, &format!("cat {CONFIG}")).ends_with(LOCAL_CONFIG));

    // Purge: the conffile, the overrides and the enablement go; the city's own file stays.
    ok(&root, "dpkg --purge lbo-proxy");
    let after = ok(
        &root,
        "ls /etc/lbo-proxy/allowlists; test ! -e /etc/lbo-proxy/lbo-proxy.toml && echo no-config
         test ! -e /etc/systemd/system/multi-user.target.wants/lbo-proxy.service && echo not-enabled
         dpkg-statoverride --list | grep -c lbo-proxy || true",
    );
    assert_eq!(
        after, "city-saas.toml\nno-config\nnot-enabled\n0\n",
        "{after}"
    );
}
