//! The shipped Microsoft 365 category files are exactly what the importer makes of the
//! list copy and mapping named in their provenance.

use std::path::Path;

use lbo_proxy::lists::files::generate;
use lbo_proxy::lists::import::{import, Version};
use lbo_proxy::lists::m365;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_files_are_reproducible_from_their_sources() {
    let (report, files) = generate(
        &root().join("allowlists/sources/m365-mapping.toml"),
        None,
        &Version::default(),
    )
    .unwrap();
    assert!(files.len() >= 6);
    for (name, text) in &files {
        let shipped = std::fs::read_to_string(root().join("allowlists").join(name)).unwrap();
        assert!(
            shipped == *text,
            "allowlists/{name} differs from its regeneration: run `lbo-proxy allowlist import-m365`"
        );
    }
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        report.left_out.iter().all(|l| l.reviewed),
        "unreviewed: {:?}",
        report.left_out
    );
}

#[test]
fn the_list_copy_is_the_published_snapshot_the_provenance_names() {
    // The 2025-02-04 snapshot: 107 endpoint sets, ids 1 to 160 (shared/fixtures/README.md).
    let list = list();
    assert_eq!(list.len(), 107);
    assert_eq!(list.iter().map(|e| e.id).min(), Some(1));
    assert_eq!(list.iter().map(|e| e.id).max(), Some(160));
}

fn mapping() -> lbo_proxy::lists::mapping::Mapping {
    lbo_proxy::lists::files::load_mapping(&root().join("allowlists/sources/m365-mapping.toml"))
        .unwrap()
}

fn list() -> Vec<m365::Endpoint> {
    let text = std::fs::read_to_string(
        root().join("allowlists/sources/m365-endpoints-worldwide-2025-02-04.json"),
    )
    .unwrap();
    m365::parse(&text).unwrap()
}

#[test]
fn udp_only_entries_are_reported_not_dropped() {
    let report = import(&mapping(), &list(), &Version::default()).unwrap();
    let udp: Vec<(u32, Option<&str>)> = report
        .udp_only
        .iter()
        .map(|u| (u.endpoint_id, u.exported_in.as_deref()))
        .collect();
    assert_eq!(udp, [(11, Some("teams"))]);
    let teams = report.files.iter().find(|f| f.name == "teams").unwrap();
    let media = teams
        .rules
        .iter()
        .find(|r| r.name == "teams-media-udp")
        .unwrap();
    assert_eq!(media.udp_ports, [3478, 3479, 3480, 3481]);
    assert!(
        media.ports.is_empty(),
        "UDP media must never match a proxy request"
    );
}

#[test]
fn a_newer_list_adds_new_urls_only_where_the_mapping_takes_all() {
    let mut endpoints = list();
    for ep in endpoints.iter_mut() {
        match ep.id {
            // Taken whole ("all"): the new name is adopted.
            12 => ep.urls.push("new.teams.microsoft.com".into()),
            // Split by explicit lists: the new name is reported, not adopted.
            59 => ep.urls.push("new.login.example-msft.com".into()),
            _ => {}
        }
    }
    endpoints.retain(|e| e.id != 154);
    let v = Version {
        version: Some("2026112300"),
        retrieved: Some("2026-11-23"),
    };
    let report = import(&mapping(), &endpoints, &v).unwrap();
    let teams = report.files.iter().find(|f| f.name == "teams").unwrap();
    assert!(teams
        .rules
        .iter()
        .any(|r| r.domains.contains(&"new.teams.microsoft.com".to_string())));
    assert_eq!(teams.provenance.version, "2026112300");
    let auth = report.files.iter().find(|f| f.name == "m365-auth").unwrap();
    assert!(auth.rules.iter().all(|r| !r
        .domains
        .contains(&"new.login.example-msft.com".to_string())));
    assert!(report
        .left_out
        .iter()
        .any(|l| l.endpoint_id == 59 && l.url == "new.login.example-msft.com" && !l.reviewed));
    // An endpoint Microsoft stops publishing leaves its category (fail closed), loudly.
    let exchange = report.files.iter().find(|f| f.name == "exchange").unwrap();
    assert!(!exchange.provenance.endpoint_ids.contains(&154));
    assert!(
        report.warnings.iter().any(|w| w.contains("endpoint 154")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn a_shared_hosting_wildcard_is_refused() {
    let mut endpoints = list();
    for ep in endpoints.iter_mut().filter(|e| e.id == 12) {
        ep.urls.push("*.blob.core.windows.net".into());
    }
    let err = import(&mapping(), &endpoints, &Version::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shared hosting") && err.contains("teams/"),
        "{err}"
    );
}

#[test]
fn the_command_writes_files_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
        .current_dir(root())
        .args(["allowlist", "import-m365", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("UDP only: endpoint 11"), "{text}");
    assert!(text.contains("0 new or unreviewed"), "{text}");
    for name in [
        "m365-auth",
        "m365-license",
        "pki",
        "teams",
        "exchange",
        "storage",
    ] {
        let written = std::fs::read_to_string(dir.path().join(format!("{name}.toml"))).unwrap();
        let shipped =
            std::fs::read_to_string(root().join(format!("allowlists/{name}.toml"))).unwrap();
        assert_eq!(written, shipped, "{name}");
    }
}
