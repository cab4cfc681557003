//! `allowlist diff`: the page an operator reads before approving an allowlist update.
//! Two small directories cover an addition, a removal, a move, a port change and a
//! provenance change; the expected text is the golden page.

use std::path::Path;
use std::process::Command;

use lbo_proxy::lists::diff::{self, Kind, LoadError, Status};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
}

/// One category file: `rules` is the TOML of its `[[rule]]` tables.
fn category(dir: &Path, name: &str, version: &str, rules: &str) {
    let text = format!(
        "[category]\nname = \"{name}\"\ndescription = \"test\"\n\n\
         [provenance]\nsource = \"test\"\nversion = \"{version}\"\nretrieved = \"2025-01-01\"\n\n\
         {rules}"
    );
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

/// old → new: pki gains a name and a new list version; `*.share.example.com` moves from
/// storage to teams; teams' signalling rule gains TCP 80 and a UDP media rule appears;
/// storage loses a network and a rule.
fn lists() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    std::fs::create_dir(&old).unwrap();
    std::fs::create_dir(&new).unwrap();

    category(
        &old,
        "pki",
        "v1",
        "[[rule]]\nname = \"crl\"\ndomains = [\"crl.example.com\", \"ocsp.example.com\"]\nports = [80]\n",
    );
    category(
        &new,
        "pki",
        "v2",
        "[[rule]]\nname = \"crl\"\ndomains = [\"crl.example.com\", \"ocsp.example.com\", \"new-ocsp.example.com\"]\nports = [80]\n",
    );
    category(
        &old,
        "teams",
        "v1",
        "[[rule]]\nname = \"signalling\"\ndomains = [\"*.teams.example.com\"]\nnetworks = [\"52.112.0.0/14\"]\nports = [443]\n",
    );
    category(
        &new,
        "teams",
        "v1",
        "[[rule]]\nname = \"signalling\"\ndomains = [\"*.teams.example.com\", \"*.share.example.com\"]\nnetworks = [\"52.112.0.0/14\"]\nports = [80, 443]\n\n\
         [[rule]]\nname = \"media\"\nnetworks = [\"52.112.0.0/14\"]\nports = []\nudp_ports = [3478, 3479, 3480, 3481]\n",
    );
    category(
        &old,
        "storage",
        "v1",
        "[[rule]]\nname = \"files\"\ndomains = [\"*.files.example.com\", \"*.share.example.com\"]\nnetworks = [\"198.51.100.0/24\"]\nports = [443]\n\n\
         [[rule]]\nname = \"old-rule\"\ndomains = [\"legacy.example.com\"]\nports = [443]\n",
    );
    category(
        &new,
        "storage",
        "v1",
        "[[rule]]\nname = \"files\"\ndomains = [\"*.files.example.com\"]\nports = [443]\n",
    );
    root
}

const GOLDEN: &str = "\
+1 -2 moved 1; newly direct in: case1 (1), case2 (4), case3 (4)

NEWLY DIRECT: the security team must approve these
  case1 (1)
    domain   new-ocsp.example.com  pki    tcp 80
  case2 (4)
    domain   *.share.example.com   teams  tcp 80,443
    domain   *.teams.example.com   teams  tcp 80
    domain   new-ocsp.example.com  pki    tcp 80
    network  52.112.0.0/14         teams  tcp 80  udp 3478-3481
  case3 (4)
    domain   *.share.example.com   teams  tcp 80
    domain   *.teams.example.com   teams  tcp 80
    domain   new-ocsp.example.com  pki    tcp 80
    network  52.112.0.0/14         teams  tcp 80  udp 3478-3481

No longer direct (back to the security cloud)
  case3 (2)
    domain   legacy.example.com  storage  tcp 443
    network  198.51.100.0/24     storage  tcp 443

Moved
  domain  *.share.example.com  storage → teams  newly direct in case2

By category
  pki (direct in case1, case2, case3)
    provenance  \"v1\" (2025-01-01) → \"v2\" (2025-01-01)
    + domain    new-ocsp.example.com
  storage (direct in case3)
    - rule      storage/old-rule
    - domain    legacy.example.com
    - network   198.51.100.0/24
  teams (direct in case2, case3)
    + rule      teams/media
    ~ ports     teams/signalling  tcp 443 → 80,443
";

#[test]
fn text_is_the_golden_review_page() {
    let root = lists();
    let old = diff::load_dir(&root.path().join("old")).unwrap();
    let new = diff::load_dir(&root.path().join("new")).unwrap();
    let d = diff::diff(&old, &new);
    assert_eq!(d.to_text(), GOLDEN, "got:\n{}", d.to_text());
    assert_eq!(
        d.summary_line(),
        "+1 -2 moved 1; newly direct in: case1 (1), case2 (4), case3 (4)"
    );
}

#[test]
fn structure_names_every_kind_of_change() {
    let root = lists();
    let old = diff::load_dir(&root.path().join("old")).unwrap();
    let new = diff::load_dir(&root.path().join("new")).unwrap();
    let d = diff::diff(&old, &new);

    assert_eq!(
        (d.summary.added, d.summary.removed, d.summary.moved),
        (1, 2, 1)
    );
    assert_eq!(d.moves.len(), 1);
    let m = &d.moves[0];
    assert_eq!(m.kind, Kind::Domain);
    assert_eq!(
        (m.value.as_str(), m.from.as_str(), m.to.as_str()),
        ("*.share.example.com", "storage", "teams")
    );
    assert_eq!(m.newly_direct_in, ["case2"]);
    assert!(m.no_longer_direct_in.is_empty());

    let names: Vec<&str> = d.categories.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["pki", "storage", "teams"]);
    let pki = &d.categories[0];
    assert_eq!(pki.status, Status::Changed);
    assert_eq!(pki.profiles, ["case1", "case2", "case3"]);
    let prov = pki.provenance.as_ref().unwrap();
    assert_eq!(
        (prov.old_version.as_deref(), prov.new_version.as_deref()),
        (Some("v1"), Some("v2"))
    );
    assert_eq!(pki.domains_added, ["new-ocsp.example.com"]);
    let storage = &d.categories[1];
    assert_eq!(storage.domains_removed, ["legacy.example.com"]);
    assert_eq!(storage.networks_removed, ["198.51.100.0/24"]);
    assert_eq!(storage.rules_removed, ["old-rule"]);
    let teams = &d.categories[2];
    assert_eq!(teams.rules_added, ["media"]);
    assert_eq!(teams.ports_changed.len(), 1);
    let pc = &teams.ports_changed[0];
    assert_eq!(pc.rule, "signalling");
    assert_eq!(
        (&pc.tcp_old[..], &pc.tcp_new[..]),
        (&[443][..], &[80, 443][..])
    );

    // A move counts once: not also as an addition to teams or a removal from storage.
    assert!(teams.domains_added.is_empty());
    assert!(!storage
        .domains_removed
        .contains(&"*.share.example.com".to_string()));
}

#[test]
fn json_has_stable_field_names_and_is_deterministic() {
    let root = lists();
    let out = bin()
        .args(["allowlist", "diff"])
        .arg(root.path().join("old"))
        .arg(root.path().join("new"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["added"], 1);
    assert_eq!(v["summary"]["removed"], 2);
    assert_eq!(v["summary"]["moved"], 1);
    assert_eq!(v["summary"]["newly_direct"]["case1"], 1);
    assert_eq!(v["summary"]["newly_direct"]["case2"], 4);
    assert_eq!(v["moves"][0]["from"], "storage");
    assert_eq!(v["moves"][0]["to"], "teams");
    assert_eq!(v["moves"][0]["kind"], "domain");
    assert_eq!(v["categories"][0]["provenance"]["new_version"], "v2");
    assert_eq!(v["categories"][2]["ports_changed"][0]["tcp_new"][0], 80);
    let case2 = &v["newly_direct"][1];
    assert_eq!(case2["profile"], "case2");
    let media = &case2["items"][3];
    assert_eq!(media["kind"], "network");
    assert_eq!(media["value"], "52.112.0.0/14");
    assert_eq!(media["udp"], serde_json::json!([3478, 3479, 3480, 3481]));
    assert_eq!(v["no_longer_direct"][0]["profile"], "case3");

    let again = bin()
        .args(["allowlist", "diff"])
        .arg(root.path().join("old"))
        .arg(root.path().join("new"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn moving_storage_wildcard_to_teams_makes_it_direct_in_case2_only() {
    let root = tempfile::tempdir().unwrap();
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    std::fs::create_dir(&old).unwrap();
    std::fs::create_dir(&new).unwrap();
    let rule = |d: &str| format!("[[rule]]\nname = \"r\"\ndomains = [{d}]\nports = [443]\n");
    category(
        &old,
        "storage",
        "v1",
        &rule("\"*.x.example.com\", \"a.example.com\""),
    );
    category(&old, "teams", "v1", &rule("\"t.example.com\""));
    category(&new, "storage", "v1", &rule("\"a.example.com\""));
    category(
        &new,
        "teams",
        "v1",
        &rule("\"t.example.com\", \"*.x.example.com\""),
    );
    let d = diff::diff(
        &diff::load_dir(&old).unwrap(),
        &diff::load_dir(&new).unwrap(),
    );
    assert_eq!(d.moves.len(), 1);
    assert_eq!(d.moves[0].newly_direct_in, ["case2"]);
    assert!(d.moves[0].no_longer_direct_in.is_empty());
    assert_eq!(d.summary.newly_direct["case2"], 1);
    assert_eq!(d.summary.newly_direct["case3"], 0);
    assert!(d.no_longer_direct.is_empty());
    assert!(d
        .to_text()
        .starts_with("+0 -0 moved 1; newly direct in: case2 (1)\n"));
}

#[test]
fn a_network_inside_one_already_direct_is_not_newly_direct() {
    let root = tempfile::tempdir().unwrap();
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    std::fs::create_dir(&old).unwrap();
    std::fs::create_dir(&new).unwrap();
    let rule = |n: &str| format!("[[rule]]\nname = \"r\"\nnetworks = [{n}]\nports = [443]\n");
    category(&old, "teams", "v1", &rule("\"52.112.0.0/14\""));
    category(
        &new,
        "teams",
        "v1",
        &rule("\"52.112.0.0/14\", \"52.113.0.0/16\""),
    );
    let d = diff::diff(
        &diff::load_dir(&old).unwrap(),
        &diff::load_dir(&new).unwrap(),
    );
    assert_eq!(d.categories[0].networks_added, ["52.113.0.0/16"]);
    assert!(d.newly_direct.is_empty(), "{:?}", d.newly_direct);
}

#[test]
fn shipped_allowlists_against_themselves_give_no_changes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlists");
    let lists = diff::load_dir(&dir).unwrap();
    assert!(lists.len() >= 7);
    let d = diff::diff(&lists, &lists);
    assert!(d.is_empty(), "{}", d.to_text());
    assert_eq!(d.to_text(), "no changes\n");
    assert_eq!(d.summary.newly_direct.values().sum::<usize>(), 0);

    let out = bin()
        .args(["allowlist", "diff"])
        .arg(&dir)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no changes\n");
}

#[test]
fn parse_problems_are_errors_with_file_and_line() {
    let root = lists();
    let new = root.path().join("new");
    std::fs::write(
        new.join("exchange.toml"),
        "[category]\nname = \"exchange\"\ndescription = \"x\"\n\n[provenance]\nsource = \"t\"\nversion = \"1\"\nretrieved = \"2025\"\n\n\
         [[rule]]\nname = \"r\"\nnetworks = [\"10.0.0.0/33\"]\nports = [443]\n",
    )
    .unwrap();
    match diff::load_dir(&new) {
        Err(LoadError::Invalid(problems)) => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].file.ends_with("exchange.toml"));
            assert_eq!(problems[0].line, 12);
        }
        other => panic!("expected parse problems, got {other:?}"),
    }
    let out = bin()
        .args(["allowlist", "diff"])
        .arg(root.path().join("old"))
        .arg(&new)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exchange.toml:12"), "{err}");

    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(diff::load_dir(&empty), Err(LoadError::Empty(_))));
    assert!(matches!(
        diff::load_dir(&root.path().join("missing")),
        Err(LoadError::Read { .. })
    ));
}
