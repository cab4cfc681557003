//! Reading a running lab proxy back: its access-log records, one metric series, its
//! parents' state from `/readyz`, and other admin pages; and reloading it.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::scrape::scrape;
use super::Proxy;

/// Waits (bounded, 10 s) for a record with `key` = `value`.
pub async fn record(proxy: &Proxy, key: &str, value: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs = proxy.records(1).await;
        if let Some(r) = recs.iter().find(|r| r[key] == value) {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no record with {key} = {value}: {recs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last record of `method`, once there are `n` records in all (bounded wait).
pub async fn last(proxy: &Proxy, n: usize, method: &str) -> Value {
    let recs = proxy.records(n).await;
    recs.iter()
        .rev()
        .find(|r| r["method"] == method)
        .cloned()
        .unwrap_or_else(|| panic!("no {method} record: {recs:#?}"))
}

/// One series from `/metrics`, summed over the labels not named; it must exist. The
/// registry is the process's: give parents names unique to the test.
pub async fn metric(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    let m = scrape(proxy.admin.unwrap()).await;
    assert_eq!(m.status, 200, "scraping /metrics failed");
    let found: Vec<f64> = m
        .samples()
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .collect();
    assert!(
        !found.is_empty(),
        "no series {name} {labels:?}:\n{}",
        m.text
    );
    found.iter().sum()
}

/// Waits (bounded, 20 s) until the series reaches at least `at_least`.
pub async fn metric_reaches(proxy: &Proxy, name: &str, labels: &[(&str, &str)], at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = metric(proxy, name, labels).await;
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} {labels:?} is {v}, not {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` on the admin listener: status code and body.
pub async fn admin_get(proxy: &Proxy, path: &str) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "--noproxy",
            "*",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("http://{}{path}", proxy.admin.unwrap()))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap_or(0), body.to_string())
}

/// The parent named `parent` in the proxy's own `/readyz` (not the process-wide metrics,
/// which the proxies of parallel tests share).
pub async fn parent_state(proxy: &Proxy, parent: &str) -> Value {
    let (_, body) = admin_get(proxy, "/readyz").await;
    let ready: Value = serde_json::from_str(&body).expect("/readyz is JSON");
    ready["parents"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == parent))
        .cloned()
        .unwrap_or_else(|| panic!("no parent {parent} in {ready}"))
}

pub async fn is_up(proxy: &Proxy, parent: &str) -> bool {
    parent_state(proxy, parent).await["up"] == true
}

/// Waits (bounded, 20 s) until `parent` has `n` standby connections ready.
pub async fn standby_ready(proxy: &Proxy, parent: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = parent_state(proxy, parent).await;
        if p["standby_ready"] == n {
            return;
        }
        assert!(Instant::now() < deadline, "{parent}: {p}, not {n} ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rewrites the proxy's config with `edit` and reloads it (`POST /-/reload`); the reload
/// must succeed.
pub async fn reload_with(proxy: &Proxy, edit: impl Fn(&str) -> String) {
    let path = proxy.dir.path().join("lbo-proxy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&text)).unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--noproxy", "*", "-X", "POST", "-w", "\n%{http_code}"])
        .arg(format!("http://{}/-/reload", proxy.admin.unwrap()))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n200"), "reload refused: {text}");
}
