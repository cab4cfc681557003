//! The failure model of the security cloud path, end to end on loopback: real Squid
//! parents (one whose resolver never answers, so its `CONNECT` answers are slow), a
//! listener that never answers, parents that close, cut off or garble their reply, a TLS
//! parent with the wrong certificate, a parent whose name does not resolve. Each class is
//! checked for what the client gets, the access-log record, whether the next parent saw
//! the request, and whether the parent stays up.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;
use support::parent::{FakeParent, Script};
use support::readback::{admin_get, is_up, metric, record};
use support::{closed_port, curl, dns_server, DnsMode, FaultyDns, Lab, Origin, Proxy, Squid};

const RECORDS: &[(&str, &str)] = &[("direct.test", "127.0.0.1")];

/// What Squid resolves from its hosts file; every other name goes to its DNS.
const SQUID_HOSTS: &[(&str, &str)] = &[("upstream.test", "127.0.0.1")];

fn error(rec: &Value) -> &str {
    rec["error"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_origins_behind_a_parent_leave_it_up_and_everybody_else_served() {
    let origin = Origin::start().await;
    let silent = FaultyDns::start_on_port_53(&[], 60).await;
    silent.set(DnsMode::Silent);
    let squid_a = Squid::start_resolving(SQUID_HOSTS, None, "", silent.addr.ip());
    let squid_b = Squid::start(SQUID_HOSTS);
    let proxy = Proxy::start(Lab {
        parents: vec![("slow-a", squid_a.addr()), ("slow-b", squid_b.addr())],
        upstream: "fall = 3\n",
        timeouts: "parent_answer = \"2s\"\n",
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let port = origin.port();
    // Five CONNECTs whose origin names Squid cannot resolve, and ordinary ones at the
    // same moment: more slow ones than fall, at once.
    let slow: Vec<_> = (0..5)
        .map(|i| format!("http://slow{i}.example.test:{port}/"))
        .collect();
    let ordinary: Vec<_> = (0..5)
        .map(|i| format!("http://upstream.test:{port}/{i}"))
        .collect();
    let (slow_r, ordinary_r) = tokio::join!(
        join_all(slow.iter().map(|u| curl(&proxy, u, true))),
        join_all(ordinary.iter().map(|u| curl(&proxy, u, true))),
    );
    for r in &slow_r {
        assert_eq!(r.connect, 504, "{r:?}");
    }
    for r in &ordinary_r {
        assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    }
    let recs = proxy.records(10).await;
    let timeouts: Vec<&Value> = recs
        .iter()
        .filter(|r| r["reason"] == "parent_timeout")
        .collect();
    assert_eq!(timeouts.len(), 5, "{recs:#?}");
    for r in &timeouts {
        assert_eq!(r["parent"], "slow-a");
        assert_eq!(r["status"], 504);
        assert_eq!(r["blame"], "next_hop");
        let target = r["target"].as_str().unwrap();
        assert_eq!(
            error(r),
            format!("slow-a did not answer CONNECT {target} within 2 s")
        );
    }
    assert!(recs
        .iter()
        .filter(|r| r["reason"] == "finished")
        .all(|r| r["parent"] == "slow-a"));
    // The parent is up, the timeouts were counted as limits, and the second parent never
    // saw a CONNECT that the first one had.
    assert!(is_up(&proxy, "slow-a").await);
    assert!(
        metric(
            &proxy,
            "lbo_limit_hits_total",
            &[("limit", "parent_answer")]
        )
        .await
            >= 5.0
    );
    assert!(
        metric(
            &proxy,
            "lbo_parent_attempts_total",
            &[("parent", "slow-a"), ("class", "timeout")]
        )
        .await
            >= 5.0
    );
    assert!(
        !squid_b.logged("slow"),
        "slow-b got a replayed CONNECT: {}",
        squid_b.access_log()
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_that_never_answers_gets_504_parent_timeout_and_the_request_is_not_replayed() {
    let origin = Origin::start().await;
    let silent = FakeParent::start(Script::Silent).await;
    let squid = Squid::start(SQUID_HOSTS);
    // fall = 1: one failure would mark it down; a timeout is not one.
    let proxy = Proxy::start(Lab {
        parents: vec![("silent-a", silent.address()), ("silent-b", squid.addr())],
        timeouts: "parent_answer = \"1s\"\n",
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let port = origin.port();
    let r = curl(&proxy, &format!("http://upstream.test:{port}/t"), true).await;
    assert_eq!(r.connect, 504, "{r:?}");
    let rec = record(&proxy, "method", "CONNECT").await;
    assert_eq!(rec["reason"], "parent_timeout");
    assert_eq!(rec["parent"], "silent-a");
    assert_eq!(rec["status"], 504);
    assert_eq!(
        error(&rec),
        format!("silent-a did not answer CONNECT upstream.test:{port} within 1 s")
    );
    assert!(silent.saw(&format!("CONNECT upstream.test:{port}")));
    // The same for a plain http:// request.
    let r = curl(&proxy, &format!("http://upstream.test:{port}/p"), false).await;
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        r.body.contains("Security cloud did not answer"),
        "{}",
        r.body
    );
    let rec = record(&proxy, "method", "GET").await;
    assert_eq!(rec["reason"], "parent_timeout");
    assert_eq!(
        error(&rec),
        format!("silent-a did not answer GET http://upstream.test:{port}/p within 1 s")
    );
    assert!(silent.saw("GET http://upstream.test"));
    assert!(
        !squid.logged("upstream.test"),
        "silent-b got a replayed request: {}",
        squid.access_log()
    );
    assert!(is_up(&proxy, "silent-a").await);
    assert!(
        metric(
            &proxy,
            "lbo_limit_hits_total",
            &[("limit", "parent_answer")]
        )
        .await
            >= 2.0
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_that_answers_503_passes_it_on_and_stays_up() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let proxy = Proxy::start(Lab {
        parents: vec![("origin503-a", squid.addr())],
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    // Squid cannot connect to a closed port: its 503, the destination's failure.
    let closed = closed_port();
    let r = curl(&proxy, &format!("http://upstream.test:{closed}/"), true).await;
    assert_eq!(r.connect, 503, "{r:?}");
    let rec = record(&proxy, "method", "CONNECT").await;
    assert_eq!(rec["reason"], "parent_origin_error");
    assert_eq!(rec["parent"], "origin503-a");
    assert_eq!(rec["status"], 503);
    assert_eq!(
        error(&rec),
        format!("origin503-a could not reach the destination of CONNECT upstream.test:{closed}: it answered 503 Service Unavailable")
    );
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{closed}/page"),
        false,
    )
    .await;
    assert_eq!(r.status, 503, "{r:?}");
    // The parent's own page, passed on.
    assert!(
        r.body.contains("squid") || r.body.contains("Squid"),
        "{}",
        r.body
    );
    let rec = record(&proxy, "method", "GET").await;
    assert_eq!(rec["reason"], "parent_origin_error");
    // fall = 1, and still up: the next tunnel goes through it.
    assert!(is_up(&proxy, "origin503-a").await);
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_407_from_the_parent_is_reported_as_our_credentials_refused() {
    let origin = Origin::start().await;
    let squid = Squid::start_with(SQUID_HOSTS, Some(("lbo", "s3cret")));
    let extra = format!(
        "[[upstream.parent]]\nname = \"auth407-a\"\naddress = \"{}\"\n\
         username = \"lbo\"\npassword = \"wrong\"\n",
        squid.addr()
    );
    let proxy = Proxy::start(Lab {
        extra: &extra,
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let port = origin.port();
    let r = curl(&proxy, &format!("http://upstream.test:{port}/"), true).await;
    assert_eq!(r.connect, 502, "{r:?}");
    let rec = record(&proxy, "method", "CONNECT").await;
    assert_eq!(rec["reason"], "parent_refused");
    assert_eq!(
        error(&rec),
        format!("auth407-a refused CONNECT upstream.test:{port}: it answered 407 Proxy Authentication Required (the credentials configured for this parent were not accepted)")
    );
    // On http:// too: never the parent's 407, which would ask the user for the
    // appliance's credentials.
    let r = curl(&proxy, &format!("http://upstream.test:{port}/p"), false).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(
        r.body.contains("Refused by the security cloud"),
        "{}",
        r.body
    );
    let rec = record(&proxy, "method", "GET").await;
    assert_eq!(rec["reason"], "parent_refused");
    assert!(is_up(&proxy, "auth407-a").await);
    let log = std::fs::read_to_string(proxy.dir.path().join("access.log")).unwrap();
    assert!(!log.contains("wrong") && !log.contains("Basic "), "{log}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_parents_fail_over_count_toward_fall_then_are_down_with_the_reason() {
    let origin = Origin::start().await;
    let (a, b) = (closed_port(), closed_port());
    let proxy = Proxy::start(Lab {
        parents: vec![
            ("dead-a", format!("127.0.0.1:{a}")),
            ("dead-b", format!("127.0.0.1:{b}")),
        ],
        upstream: "fall = 3\n",
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let url = format!("http://upstream.test:{}/", origin.port());
    // The health check at start-up is the first failure of each.
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in ["dead-a", "dead-b"] {
        let failed = [("parent", p), ("result", "failure")];
        while metric(&proxy, "lbo_parent_checks_total", &failed).await < 1.0 {
            assert!(Instant::now() < deadline, "no health check of {p}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (code, body) = admin_get(&proxy, "/readyz?upstream=1").await;
    assert_eq!(code, 200, "{body}");
    // Both tried, neither down yet (fall = 3).
    let r = curl(&proxy, &url, true).await;
    assert_eq!(r.connect, 502, "{r:?}");
    let rec = record(&proxy, "reason", "parent_unreachable").await;
    assert_eq!(rec["parent"], "dead-b");
    assert_eq!(
        error(&rec),
        format!("no security cloud parent could be reached: dead-a: TCP connect to 127.0.0.1:{a} refused; dead-b: TCP connect to 127.0.0.1:{b} refused")
    );
    // The third failure of each marks both down: every parent down, and why.
    let r = curl(&proxy, &url, false).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("Security cloud unavailable"), "{}", r.body);
    let rec = record(&proxy, "reason", "parents_down").await;
    let e = error(&rec);
    assert!(
        e.starts_with("every security cloud parent is marked down: dead-a by connection failures since ")
            && e.contains(&format!("; last error: TCP connect to 127.0.0.1:{a} refused; dead-b by connection failures since "))
            && e.ends_with(&format!("; last error: TCP connect to 127.0.0.1:{b} refused")),
        "{e}"
    );
    assert!(origin.heads().is_empty(), "an upstream request went direct");
    // Direct breakout still works: ready, but the upstream cannot carry traffic.
    let (code, body) = admin_get(&proxy, "/readyz").await;
    assert_eq!(code, 200);
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["upstream_available"], false, "{ready}");
    assert_eq!(ready["parents"][0]["down_by"], "connection failures");
    let (code, _) = admin_get(&proxy, "/readyz?upstream=1").await;
    assert_eq!(code, 503);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_no_upstream_without_parents() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(Lab::on(dns_server(RECORDS).await, origin.port())).await;
    let (code, body) = admin_get(&proxy, "/readyz").await;
    assert_eq!(code, 200);
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&ready["ready"], &ready["upstream_available"]),
        (&true.into(), &false.into())
    );
    assert_eq!(admin_get(&proxy, "/readyz?upstream=1").await.0, 503);
    proxy.stop().await;
}
