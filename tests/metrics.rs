//! `/metrics` end to end: curl drives the in-process proxy, the admin listener's exposition
//! is read back, judged by promtool, and scraped by a real Prometheus server.
//!
//! The registry is process-wide and these tests run in parallel, so counters are asserted
//! with `>=`, and parent names are unique to each test.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::scrape::{promtool_check_metrics, scrape, Scrape};
use support::{closed_port, curl, dns_server, Lab, Origin, Proxy, Squid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RECORDS: &[(&str, &str)] = &[
    ("direct.test", "127.0.0.1"),
    ("www.direct.test", "127.0.0.1"),
    ("upstream.test", "127.0.0.1"),
];

const SQUID_HOSTS: &[(&str, &str)] = &[("upstream.test", "127.0.0.1")];

/// A direct tunnel, an upstream one with no parent (503) and a denied one (403).
async fn traffic(proxy: &Proxy, origin: &Origin) {
    let port = origin.port();
    let r = curl(proxy, &format!("http://www.direct.test:{port}/m"), true).await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    let r = curl(proxy, &format!("http://upstream.test:{port}/"), true).await;
    assert_eq!(r.connect, 503, "{r:?}");
    let r = curl(proxy, &format!("http://deny.test:{port}/"), true).await;
    assert_eq!(r.connect, 403, "{r:?}");
    // Metrics are updated just before the access-log line is queued.
    assert_eq!(proxy.records(3).await.len(), 3);
}

async fn admin_scrape(proxy: &Proxy) -> Scrape {
    scrape(proxy.admin.expect("the lab has an admin listener")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_route_reason_and_configured_names() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(Lab::on(dns_server(RECORDS).await, origin.port())).await;
    traffic(&proxy, &origin).await;
    let m = admin_scrape(&proxy).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.content_type, "text/plain; version=0.0.4");

    let lab = [
        ("listener", "explicit"),
        ("profile", "lab"),
        ("segment", "lab"),
    ];
    let direct = [
        &lab[..],
        &[
            ("route", "direct"),
            ("category", "lab-direct"),
            ("status_class", "2xx"),
        ],
    ]
    .concat();
    assert!(m.sum("lbo_requests_total", &direct) >= 1.0, "{}", m.text);
    let upstream = [
        &lab[..],
        &[
            ("route", "upstream"),
            ("category", "none"),
            ("status_class", "5xx"),
        ],
    ]
    .concat();
    assert!(m.sum("lbo_requests_total", &upstream) >= 1.0, "{}", m.text);
    let deny = [
        &lab[..],
        &[
            ("route", "deny"),
            ("category", "lab-deny"),
            ("status_class", "4xx"),
        ],
    ]
    .concat();
    assert!(m.sum("lbo_requests_total", &deny) >= 1.0, "{}", m.text);

    assert!(m.sum("lbo_denied_total", &[("reason", "deny_rule")]) >= 1.0);
    let end = |route, reason, blame| {
        m.sum(
            "lbo_request_end_total",
            &[("route", route), ("reason", reason), ("blame", blame)],
        )
    };
    assert!(end("direct", "finished", "none") >= 1.0, "{}", m.text);
    assert!(end("upstream", "no_parent", "proxy") >= 1.0, "{}", m.text);
    assert!(end("deny", "denied", "none") >= 1.0, "{}", m.text);

    let direct_bytes = |direction| {
        m.sum(
            "lbo_bytes_total",
            &[
                ("direction", direction),
                ("route", "direct"),
                ("category", "lab-direct"),
            ],
        )
    };
    assert!(direct_bytes("up") > 0.0 && direct_bytes("down") > 0.0);
    assert!(m.sum("lbo_connect_duration_seconds_count", &[("route", "direct")]) >= 1.0);
    assert!(m.sum("lbo_dns_lookup_duration_seconds_count", &[]) >= 1.0);
    for route in ["direct", "upstream", "deny"] {
        assert!(m.sum("lbo_request_duration_seconds_count", &[("route", route)]) >= 1.0);
    }
    assert!(m.has("lbo_active_tunnels", &[("route", "direct")]));
    assert_eq!(
        m.sum("lbo_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    assert_eq!(
        m.sum(
            "lbo_allowlist_entries",
            &[("category", "lab-direct"), ("kind", "domain")]
        ),
        2.0,
        "the running config's allowlists are published at start"
    );
    assert_eq!(m.sum("lbo_config_last_reload_successful", &[]), 1.0);

    // Bounded cardinality: no label carries a host name or an address.
    for v in m.label_values() {
        assert!(
            !v.contains(".test") && !v.contains("127.0.0.1"),
            "label value {v:?}"
        );
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_clients_are_denied_and_counted() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(Lab {
        segment: "192.0.2.0/24",
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let r = curl(
        &proxy,
        &format!("http://www.direct.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 403, "{r:?}");
    proxy.records(1).await;
    let m = admin_scrape(&proxy).await;
    assert!(m.sum("lbo_denied_total", &[("reason", "unknown_client")]) >= 1.0);
    assert!(
        m.sum(
            "lbo_requests_total",
            &[("route", "deny"), ("segment", "none"), ("profile", "none")]
        ) >= 1.0,
        "{}",
        m.text
    );
    assert!(origin.heads().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_tunnel_is_active_until_it_closes() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(Lab::on(dns_server(RECORDS).await, origin.port())).await;
    let active = |m: &Scrape| m.sum("lbo_active_tunnels", &[("route", "direct")]);
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let connect = format!("CONNECT www.direct.test:{} HTTP/1.1\r\n\r\n", origin.port());
    tcp.write_all(connect.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1, "proxy closed: {head:?}");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let open = active(&admin_scrape(&proxy).await);
    assert!(open >= 1.0, "an open direct tunnel is not counted");
    drop(tcp);
    proxy.records(1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = active(&admin_scrape(&proxy).await);
        if now < open {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {now} active after the tunnel closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_health_and_failover_are_exported() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let dead = format!("127.0.0.1:{}", closed_port());
    let proxy = Proxy::start(Lab {
        parents: vec![("metrics-dead", dead), ("metrics-squid", squid.addr())],
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    proxy.records(1).await;

    // The first health check runs at start; wait (bounded) until it is counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = admin_scrape(&proxy).await;
        let checked = |parent| m.sum("lbo_parent_checks_total", &[("parent", parent)]);
        if checked("metrics-dead") >= 1.0 && checked("metrics-squid") >= 1.0 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no health check counted:\n{}",
            m.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dead = [("parent", "metrics-dead")];
    let alive = [("parent", "metrics-squid")];
    assert_eq!(m.sum("lbo_parent_up", &dead), 0.0, "{}", m.text);
    assert_eq!(m.sum("lbo_parent_up", &alive), 1.0, "{}", m.text);
    let checks = |parent, result| {
        m.sum(
            "lbo_parent_checks_total",
            &[("parent", parent), ("result", result)],
        )
    };
    assert!(checks("metrics-dead", "failure") >= 1.0);
    assert_eq!(checks("metrics-dead", "success"), 0.0);
    assert!(checks("metrics-squid", "success") >= 1.0);
    assert_eq!(m.sum("lbo_parent_down_transitions_total", &dead), 1.0);
    assert_eq!(m.sum("lbo_parent_down_transitions_total", &alive), 0.0);
    // Down or failing, the dead parent was passed over on the way to Squid.
    assert!(m.sum("lbo_parent_failovers_total", &dead) >= 1.0);
    assert_eq!(m.sum("lbo_parent_failovers_total", &alive), 0.0);
    assert!(
        m.sum(
            "lbo_connect_duration_seconds_count",
            &[("route", "upstream")]
        ) >= 1.0
    );
    assert!(
        m.sum(
            "lbo_requests_total",
            &[("route", "upstream"), ("status_class", "2xx")]
        ) >= 1.0
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_passes_promtool() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(Lab {
        parents: vec![("metrics-lint", format!("127.0.0.1:{}", closed_port()))],
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let port = origin.port();
    let r = curl(&proxy, &format!("http://www.direct.test:{port}/m"), true).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = curl(&proxy, &format!("http://deny.test:{port}/"), false).await;
    assert_eq!(r.status, 403, "{r:?}");
    proxy.records(2).await;
    let m = admin_scrape(&proxy).await;
    let out = promtool_check_metrics(&m.text);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {:?}\n{report}\n{}",
        out.status,
        m.text
    );
    proxy.stop().await;
}

/// A Prometheus server from Debian on loopback, killed by PID when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second. Fails (never skips) when
    /// Prometheus is not installed: `scripts/test` installs it.
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let bin = "/usr/bin/prometheus";
        assert!(
            Path::new(bin).exists(),
            "prometheus is not installed: run scripts/test (apt-get install prometheus)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: lbo-proxy\n    static_configs:\n      - targets: ['{target}']\n",
            rules = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("dashboards/alerts.yml")
                .display(),
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let port = closed_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        Prometheus { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>` as JSON (`Null` until the server answers).
    async fn api(&self, path: &str) -> serde_json::Value {
        let out = tokio::process::Command::new("curl")
            .args(["-s", "--noproxy", "*", "--max-time", "5", "-G"])
            .arg(format!("http://127.0.0.1:{}/api/v1/{path}", self.port))
            .output()
            .await
            .expect("curl is not installed: run scripts/test");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The values of an instant query's result vector.
    async fn query(&self, expr: &str) -> Vec<f64> {
        let q: String = expr
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let v = self.api(&format!("query?query={q}")).await;
        v["data"]["result"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // `Child::kill` signals this child's own PID, nothing else.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_admin_listener() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(Lab::on(dns_server(RECORDS).await, origin.port())).await;
    traffic(&proxy, &origin).await;
    let prom = Prometheus::start(proxy.admin.unwrap());

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if prom.query("lbo_build_info").await == [1.0] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned lbo_build_info = 1; targets: {}\nlog:\n{}",
            prom.api("targets").await,
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let direct = prom
        .query("sum(lbo_requests_total{route=\"direct\",category=\"lab-direct\"})")
        .await;
    assert!(
        direct.first().is_some_and(|v| *v >= 1.0),
        "lbo_requests_total read back: {direct:?}"
    );
    let denied = prom
        .query("sum(lbo_denied_total{reason=\"deny_rule\"})")
        .await;
    assert!(denied.first().is_some_and(|v| *v >= 1.0), "{denied:?}");

    // The alert rules load and evaluate against the real series without error.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rules = prom.api("rules").await;
        let all: Vec<&serde_json::Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let healthy = all.iter().filter(|r| r["health"] == "ok").count();
        if all.len() == 7 && healthy == 7 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert rules not all evaluated ok: {rules}\nlog:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let pid = prom.child.id();
    drop(prom);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "prometheus (pid {pid}) still running"
    );
    proxy.stop().await;
}
