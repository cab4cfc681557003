//! The Grafana dashboard and the alert rules in `dashboards/`: promtool accepts the rules
//! and their unit tests pass, the dashboard is importable JSON whose expressions parse, and
//! every metric they name is one the appliance really exports.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::scrape::{promtool, scrape};
use support::{closed_port, curl, dns_server, Lab, Origin, Proxy};

const ROWS: [&str; 9] = [
    "Overview",
    "Breakout",
    "Security cloud",
    "Latency",
    "Config",
    "Access log",
    "Limits",
    "Security cloud: who failed, standby, TLS",
    "Access-log evidence",
];

fn file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dashboards")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(file(name)).unwrap_or_else(|e| panic!("dashboards/{name}: {e}"))
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("lbo-proxy.json")).expect("dashboards/lbo-proxy.json is JSON")
}

fn run_promtool(args: &[&str]) -> (Output, String) {
    let out = Command::new(promtool())
        .args(args)
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// Every panel but the rows.
fn panels(d: &serde_json::Value) -> Vec<&serde_json::Value> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

/// Panel expressions with Grafana's variables replaced, so Prometheus can parse them.
fn expressions(d: &serde_json::Value) -> Vec<(String, String)> {
    panels(d)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("").to_string();
            p["targets"].as_array().into_iter().flatten().map(move |t| {
                let expr = t["expr"].as_str().unwrap_or("");
                let expr = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$__range", "1h")
                    .replace("$instance", ".*");
                (title.clone(), expr)
            })
        })
        .collect()
}

#[test]
fn alert_rules_pass_promtool() {
    let path = file("alerts.yml");
    let (out, text) = run_promtool(&["check", "rules", path.to_str().unwrap()]);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    let rules = read("alerts.yml");
    let count = rules.matches("- alert: ").count();
    assert!(
        text.contains(&format!("SUCCESS: {count} rules found")),
        "{text}"
    );
    for alert in [
        "ParentDown",
        "AllParentsDown",
        "DenySpike",
        "ConfigReloadFailed",
        "DirectConnectErrors",
        "AccessLogDropping",
        "AccessLogLossUnreported",
        "ParentFlapping",
        "LboProxyDown",
    ] {
        assert!(rules.contains(&format!("alert: {alert}\n")), "{alert}");
    }
    assert_eq!(rules.matches("summary_ja:").count(), count);
}

#[test]
fn alert_rules_fire_as_their_unit_tests_expect() {
    let path = file("alerts_test.yml");
    let (out, text) = run_promtool(&["test", "rules", path.to_str().unwrap()]);
    println!("{text}");
    assert!(out.status.success() && text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_dashboard_is_importable() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(
        d["id"].is_null(),
        "an exported dashboard carries no database id"
    );
    assert_eq!(d["uid"], "lbo-proxy");
    let input = &d["__inputs"][0];
    assert_eq!(
        (&input["name"], &input["type"], &input["pluginId"]),
        (
            &"DS_PROMETHEUS".into(),
            &"datasource".into(),
            &"prometheus".into()
        )
    );
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(vars
        .iter()
        .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"));

    let rows: Vec<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(rows, ROWS);

    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{} is wider than the grid", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{} overlaps another panel",
                    p["title"]
                );
            }
        }
    }
    for p in panels(&d) {
        let title = &p["title"];
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains("lbo_"), "{title}: {expr}");
            assert!(
                expr.contains("instance=~\"$instance\""),
                "{title} ignores the appliance selector: {expr}"
            );
        }
    }
}

#[test]
fn dashboard_expressions_are_valid_promql() {
    // promtool parses PromQL in rule files: one recording rule per panel expression.
    let d = dashboard();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in expressions(&d).iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard_expr_{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let (out, text) = run_promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(out.status.success(), "{text}\n{rules}");
}

/// `lbo_*` names in a text, histogram series mapped to their family.
fn metric_names(text: &str, histograms: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("lbo_") {
        let start = i + at;
        let before_ok = start == 0 || !matches!(bytes[start - 1], b'a'..=b'z' | b'_' | b'-');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if before_ok {
            let name = &text[start..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(*b)))
                .unwrap_or(name);
            names.insert(family.to_string());
        }
        i = end;
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    // Traffic on every route, and a parent, so histograms and parent series have samples.
    let origin = Origin::start().await;
    let dns = dns_server(&[("www.direct.test", "127.0.0.1")]).await;
    let proxy = Proxy::start(Lab {
        parents: vec![("dashboards-dead", format!("127.0.0.1:{}", closed_port()))],
        ..Lab::on(dns, origin.port())
    })
    .await;
    let port = origin.port();
    let r = curl(&proxy, &format!("http://www.direct.test:{port}/"), true).await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    let r = curl(&proxy, &format!("http://upstream.test:{port}/"), true).await;
    assert_eq!(r.connect, 502, "{r:?}");
    let r = curl(&proxy, &format!("http://deny.test:{port}/"), true).await;
    assert_eq!(r.connect, 403, "{r:?}");
    proxy.records(3).await;
    let m = scrape(proxy.admin.unwrap()).await;
    proxy.stop().await;

    let families = m.families();
    let histograms: BTreeSet<String> = families
        .iter()
        .filter(|(_, t)| t == "histogram")
        .map(|(n, _)| n.clone())
        .collect();
    let exported: BTreeSet<String> = families.into_iter().map(|(n, _)| n).collect();
    for (n, _) in m.families() {
        assert!(
            m.samples().iter().any(|s| s.name.starts_with(&n)),
            "{n} has no sample"
        );
    }

    let d = dashboard();
    let mut panel_text = String::new();
    for (_, expr) in expressions(&d) {
        panel_text.push_str(&expr);
        panel_text.push('\n');
    }
    let used_by_panels = metric_names(&panel_text, &histograms);
    let used_by_alerts = metric_names(&read("alerts.yml"), &histograms);
    // The whole JSON too: titles, descriptions and variables may name metrics.
    let used_anywhere = metric_names(&read("lbo-proxy.json"), &histograms);
    for (what, used) in [
        ("dashboard panel", &used_by_panels),
        ("alert rule", &used_by_alerts),
        ("dashboard", &used_anywhere),
    ] {
        assert!(!used.is_empty());
        let missing: Vec<&String> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "a {what} uses metrics /metrics does not export: {missing:?}\n{}",
            m.text
        );
    }
    // And the other way round: nothing exported is left off the dashboard.
    let unused: Vec<&String> = exported.difference(&used_by_panels).collect();
    assert!(unused.is_empty(), "exported but on no panel: {unused:?}");
}
