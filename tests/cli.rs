//! The command line as an auditor and an operator use it.

use std::io::Write;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
}

/// Runs `check --config path`: success and what it printed on stderr.
fn check(path: &std::path::Path) -> (bool, String) {
    let out = bin()
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn check_accepts_the_embedded_default() {
    let out = bin().arg("check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "loopback",
        "case1",
        "case2",
        "case3",
        "m365-auth",
        "storage",
        "security cloud: none configured",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

#[test]
fn check_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"[proxy]
listen = ["127.0.0.1:3128"]

[[segment]]
name = "office"
networks = ["10.0.0.0/33"]
profile = "case9"

[timeouts]
idle = "ten minutes"
"#,
    )
    .unwrap();
    let (ok, err) = check(&path);
    assert!(!ok);
    let file = path.display().to_string();
    assert!(
        err.contains(&format!("{file}:6: segment.networks")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:7: segment.profile: unknown profile \"case9\""
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{file}:10: timeouts.idle")), "{err}");
}

#[test]
fn check_rejects_unknown_keys_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "[proxy]\nlisten = [\"127.0.0.1:3128\"]\nlisen = 1\n").unwrap();
    let (ok, err) = check(&path);
    assert!(!ok);
    assert!(err.contains(":3:") && err.contains("lisen"), "{err}");
}

#[test]
fn check_refuses_shared_hosting_wildcards_in_a_direct_category() {
    let dir = tempfile::tempdir().unwrap();
    let lists = dir.path().join("lists");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(
        lists.join("cdn.toml"),
        "[category]\nname = \"cdn\"\ndescription = \"x\"\n[provenance]\nsource = \"x\"\nversion = \"1\"\nretrieved = \"x\"\n\
         [[rule]]\nname = \"blob\"\ndomains = [\n  \"*.blob.core.windows.net\",\n]\n",
    )
    .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n[allowlists]\ndir = \"lists\"\n\
         [[profile]]\nname = \"p\"\ndirect = [\"cdn\"]\n[[segment]]\nname = \"s\"\nnetworks = [\"10.0.0.0/8\"]\nprofile = \"p\"\n",
    )
    .unwrap();
    let (ok, err) = check(&cfg);
    assert!(!ok);
    assert!(
        err.contains("cdn.toml:11: rule.domains") && err.contains("shared hosting"),
        "{err}"
    );
    // As a deny list the same file is fine.
    std::fs::write(
        &cfg,
        "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n[allowlists]\ndir = \"lists\"\n\
         [[profile]]\nname = \"p\"\ndeny = [\"cdn\"]\n[[segment]]\nname = \"s\"\nnetworks = [\"10.0.0.0/8\"]\nprofile = \"p\"\n",
    )
    .unwrap();
    let (ok, err) = check(&cfg);
    assert!(ok, "{err}");
}

fn route(args: &[&str], stdin: &str) -> Vec<serde_json::Value> {
    let mut child = bin()
        .arg("route")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn route_explains_each_target_in_order() {
    let got = route(
        &[
            "--client",
            "127.0.0.1",
            "login.microsoftonline.com",
            "outlook.office365.com:443",
            "evil.test",
        ],
        "",
    );
    let routes: Vec<&str> = got.iter().map(|d| d["route"].as_str().unwrap()).collect();
    assert_eq!(routes, ["direct", "upstream", "upstream"]);
    assert_eq!(got[0]["category"], "m365-auth");
    assert_eq!(got[0]["profile"], "case1");
    assert_eq!(got[0]["segment"], "loopback");
    assert!(got[0]["rule"].as_str().unwrap().starts_with("m365-auth/"));
    assert_eq!(got[1]["reason"], "not_allowlisted");
}

#[test]
fn route_reads_stdin_and_denies_invalid_lines_without_stopping() {
    let got = route(
        &["--profile", "case3"],
        "contoso.sharepoint.com\nnot a host\nLOGIN.MICROSOFTONLINE.COM.\n\nlogin.microsoftonline.com.evil.test\n",
    );
    let summary: Vec<(&str, &str)> = got
        .iter()
        .map(|d| (d["route"].as_str().unwrap(), d["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("direct", "allowlisted"),
            ("deny", "invalid_target"),
            ("direct", "allowlisted"),
            ("upstream", "not_allowlisted"),
        ]
    );
}

#[test]
fn route_for_an_unknown_client_is_deny() {
    let got = route(&["--client", "192.0.2.10", "login.microsoftonline.com"], "");
    assert_eq!(got[0]["route"], "deny");
    assert_eq!(got[0]["reason"], "unknown_client");
}

#[test]
fn local_allowlists_replace_or_add_to_the_shipped_ones() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let category = |name: &str, domain: &str| {
        format!(
            "[category]\nname = \"{name}\"\ndescription = \"local\"\n[provenance]\nsource = \"city IT\"\n\
             version = \"1\"\nretrieved = \"2026-11-23\"\n[[rule]]\nname = \"r\"\ndomains = [\"{domain}\"]\nports = [443]\n"
        )
    };
    // Replace the shipped pki with a local one, and add a category of the city's own.
    std::fs::write(
        local.join("pki.toml"),
        category("pki", "ocsp.city-ca.example.jp"),
    )
    .unwrap();
    std::fs::write(
        local.join("city-saas.toml"),
        category("city-saas", "app.saas.example.jp"),
    )
    .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n[allowlists]\nlocal_dir = \"local\"\n\
         [[profile]]\nname = \"city\"\ndirect = [\"m365-auth\", \"pki\", \"city-saas\"]\n\
         [[segment]]\nname = \"s\"\nnetworks = [\"10.0.0.0/8\"]\nprofile = \"city\"\n",
    )
    .unwrap();
    let (ok, err) = check(&cfg);
    assert!(ok, "{err}");
    let got = route(
        &["--config", cfg.to_str().unwrap(), "--profile", "city"],
        "ocsp.city-ca.example.jp\nocsp.digicert.com:80\napp.saas.example.jp\nlogin.microsoftonline.com\n",
    );
    let routes: Vec<&str> = got.iter().map(|d| d["route"].as_str().unwrap()).collect();
    assert_eq!(routes, ["direct", "upstream", "direct", "direct"]);
}
