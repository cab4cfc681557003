//! End to end on loopback: curl → lbo-proxy → (origin direct | Squid → origin).

mod support;

use support::{closed_port, curl, dns_server, Lab, Origin, Proxy, Squid};

/// Names the lab's DNS knows; only `*.direct.test` is allowlisted.
const RECORDS: &[(&str, &str)] = &[
    ("direct.test", "127.0.0.1"),
    ("www.direct.test", "127.0.0.1"),
    ("rebind.direct.test", "127.0.0.2"),
    ("upstream.test", "127.0.0.1"),
];

/// What Squid resolves (the parent resolves names itself).
const SQUID_HOSTS: &[(&str, &str)] = &[("upstream.test", "127.0.0.1"), ("deny.test", "127.0.0.1")];

async fn lab(origin: &Origin, parents: Vec<(&'static str, String)>) -> Proxy {
    Proxy::start(Lab {
        parents,
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_connect_goes_direct_and_not_through_squid() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let proxy = lab(&origin, vec![("seccloud-a", squid.addr())]).await;
    let url = format!("http://www.direct.test:{}/signin", origin.port());
    let r = curl(&proxy, &url, true).await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    assert_eq!(
        r.body,
        format!("origin www.direct.test:{}\n", origin.port())
    );
    assert!(origin.saw("GET /signin"));
    assert!(
        !squid.logged("direct.test"),
        "a direct request reached the parent"
    );
    let recs = proxy.records(1).await;
    let rec = &recs[0];
    assert_eq!(rec["route"], "direct");
    assert_eq!(rec["rule"], "lab-direct/direct-test");
    assert_eq!(rec["method"], "CONNECT");
    assert_eq!(rec["reason"], "finished");
    assert_eq!(rec["server"], format!("127.0.0.1:{}", origin.port()));
    assert!(rec["bytes_down"].as_u64().unwrap() > 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_http_is_forwarded_in_origin_form() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, vec![]).await;
    let url = format!("http://direct.test:{}/a?b=c", origin.port());
    let r = curl(&proxy, &url, false).await;
    assert_eq!(r.status, 200, "{r:?}");
    let heads = origin.heads();
    assert!(heads[0].starts_with("GET /a?b=c HTTP/1.1\r\n"), "{heads:?}");
    assert!(
        heads[0].to_lowercase().contains("via: 1.1 lbo-proxy"),
        "{heads:?}"
    );
    assert!(
        !heads[0].to_lowercase().contains("proxy-connection"),
        "{heads:?}"
    );
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["route"], "direct");
    assert_eq!(rec["target_from"], "uri");
    assert_eq!(rec["status"], 200);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_destinations_go_through_squid() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let proxy = lab(&origin, vec![("seccloud-a", squid.addr())]).await;
    let tunnel = curl(
        &proxy,
        &format!("http://upstream.test:{}/t", origin.port()),
        true,
    )
    .await;
    assert_eq!((tunnel.connect, tunnel.status), (200, 200), "{tunnel:?}");
    let plain = curl(
        &proxy,
        &format!("http://upstream.test:{}/p", origin.port()),
        false,
    )
    .await;
    assert_eq!(plain.status, 200, "{plain:?}");
    assert!(
        squid.logged(&format!("CONNECT upstream.test:{}", origin.port())),
        "{}",
        squid.access_log()
    );
    assert!(
        squid.logged(&format!("GET http://upstream.test:{}/p", origin.port())),
        "{}",
        squid.access_log()
    );
    let recs = proxy.records(2).await;
    for rec in &recs {
        assert_eq!(rec["route"], "upstream");
        assert_eq!(rec["decision"], "not_allowlisted");
        assert_eq!(rec["parent"], "seccloud-a");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_destinations_get_403_and_open_no_socket() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let proxy = lab(&origin, vec![("seccloud-a", squid.addr())]).await;
    let r = curl(
        &proxy,
        &format!("http://deny.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 403, "{r:?}");
    let r = curl(
        &proxy,
        &format!("http://deny.test:{}/", origin.port()),
        false,
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("lab-deny/denied"), "{}", r.body);
    assert!(!squid.logged("deny.test"));
    assert!(origin.heads().is_empty());
    let recs = proxy.records(2).await;
    assert!(recs
        .iter()
        .all(|r| r["route"] == "deny" && r["reason"] == "denied"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_parent_down_fails_over_to_the_second() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let dead = format!("127.0.0.1:{}", closed_port());
    let proxy = lab(
        &origin,
        vec![("seccloud-a", dead), ("seccloud-b", squid.addr())],
    )
    .await;
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    assert!(squid.logged("upstream.test"));
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["parent"], "seccloud-b");
    // With fall = 1 the dead parent is now marked down and skipped.
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/again", origin.port()),
        false,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_parents_down_gives_502() {
    let origin = Origin::start().await;
    let a = format!("127.0.0.1:{}", closed_port());
    let b = format!("127.0.0.1:{}", closed_port());
    let proxy = lab(&origin, vec![("seccloud-a", a), ("seccloud-b", b)]).await;
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 502, "{r:?}");
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/", origin.port()),
        false,
    )
    .await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("Security cloud unavailable"), "{}", r.body);
    assert!(origin.heads().is_empty(), "an upstream request went direct");
    let recs = proxy.records(2).await;
    assert!(
        recs.iter().all(|r| r["reason"] == "parents_down"),
        "{recs:?}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_security_cloud_means_503_never_direct() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, vec![]).await;
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 503, "{r:?}");
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/", origin.port()),
        false,
    )
    .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.body.contains("no security cloud proxy is configured"),
        "{}",
        r.body
    );
    assert!(
        origin.heads().is_empty(),
        "a non-allowlisted request went direct"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_name_resolving_to_an_internal_address_is_refused() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, vec![]).await;
    let r = curl(
        &proxy,
        &format!("http://rebind.direct.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 403, "{r:?}");
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["route"], "direct");
    assert_eq!(rec["reason"], "internal_address");
    assert!(origin.heads().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalikes_and_wrong_ports_never_go_direct() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, vec![]).await;
    let port = origin.port();
    for host in [
        "direct.test.evil.test",
        "xdirect.test",
        "DIRECT.TEST.",
        "127.0.0.2",
        "[::ffff:127.0.0.1]",
    ] {
        let r = curl(&proxy, &format!("http://{host}:{port}/"), true).await;
        let went_direct = r.connect == 200;
        let allowed = host.eq_ignore_ascii_case("DIRECT.TEST.") || host == "[::ffff:127.0.0.1]";
        assert_eq!(went_direct, allowed, "{host}: {r:?}");
    }
    // The allowlisted name on a port its rule does not list is refused.
    let r = curl(
        &proxy,
        &format!("http://direct.test:{}/", closed_port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 403, "{r:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_every_segment_are_refused() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(Lab {
        segment: "127.0.0.99/32",
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let r = curl(
        &proxy,
        &format!("http://direct.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 403, "{r:?}");
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["decision"], "unknown_client");
    assert!(origin.heads().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start().await;
    let proxy = lab(&origin, vec![]).await;
    for req in [
        "CONNECT user@direct.test:443 HTTP/1.1\r\n\r\n",
        "CONNECT direct.test HTTP/1.1\r\n\r\n",
        "CONNECT direct.test:0 HTTP/1.1\r\n\r\n",
        "CONNECT 127.1:443 HTTP/1.1\r\n\r\n",
        "\x16\x03\x01\x00\x05hello\r\n\r\n",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        let _ = tcp.read_to_string(&mut resp).await;
        assert!(resp.starts_with("HTTP/1.1 400 "), "{req:?} → {resp:?}");
    }
    let r = curl(&proxy, "http://direct.test/", false).await;
    assert_eq!(
        r.status, 403,
        "no port: default 80, not the rule's port → refused; {r:?}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_answers_health_checks() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, vec![]).await;
    let admin = proxy.admin.unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-s", &format!("http://{admin}/healthz")])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_open_tunnels_then_closes_them() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An echo server that keeps the tunnel open as long as the client does.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = Proxy::start(Lab::on(dns_server(RECORDS).await, port)).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(format!("CONNECT direct.test:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 39];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 Connection established\r\n\r\n");
    let stopping = tokio::spawn(proxy.stop());
    // Still relaying while the proxy drains.
    tcp.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    tcp.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
    // The drain time (1s) ends the tunnel.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "tunnel still open after the drain time");
    let dir = stopping.await.unwrap();
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    // The last record (after it: the log's stop checkpoint).
    let rec: serde_json::Value = log
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r.get("event").is_none())
        .unwrap();
    assert_eq!(rec["reason"], "shutdown");
    assert_eq!(rec["bytes_up"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_over_tls_with_basic_auth() {
    let origin = Origin::start().await;
    let squid = Squid::start_with(SQUID_HOSTS, Some(("lbo", "s3cret")));
    let certs = tempfile::tempdir().unwrap();
    let (front, ca) = support::tls_front("seccloud.test", squid.addr(), certs.path()).await;
    let parent = |password: &str| {
        format!(
            "[[upstream.parent]]\nname = \"seccloud-tls\"\naddress = \"{front}\"\ntls = true\n\
             tls_server_name = \"seccloud.test\"\ntls_ca_file = \"{}\"\nusername = \"lbo\"\npassword = \"{password}\"\n",
            ca.display()
        )
    };
    let good = parent("s3cret");
    let proxy = Proxy::start(Lab {
        extra: &good,
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let tunnel = curl(
        &proxy,
        &format!("http://upstream.test:{}/t", origin.port()),
        true,
    )
    .await;
    assert_eq!((tunnel.connect, tunnel.status), (200, 200), "{tunnel:?}");
    let plain = curl(
        &proxy,
        &format!("http://upstream.test:{}/p", origin.port()),
        false,
    )
    .await;
    assert_eq!(plain.status, 200, "{plain:?}");
    assert!(
        squid.logged(" lbo "),
        "squid did not see the user: {}",
        squid.access_log()
    );
    let log = std::fs::read_to_string(proxy.dir.path().join("access.log")).unwrap();
    assert!(
        !log.contains("s3cret") && !log.contains("Basic "),
        "credentials leaked into the log"
    );
    proxy.stop().await;

    // Wrong credentials: the parent's 407 is not the client's to answer, so it gets 502.
    let bad = parent("wrong");
    let proxy = Proxy::start(Lab {
        extra: &bad,
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/t", origin.port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 502, "{r:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_eyeballs_falls_back_from_ipv6_to_ipv4() {
    let origin = Origin::start().await;
    let mut records = RECORDS.to_vec();
    records.push(("dual.direct.test", "::1"));
    records.push(("dual.direct.test", "127.0.0.1"));
    let proxy = Proxy::start(Lab::on(dns_server(&records).await, origin.port())).await;
    // ::1 is refused by the guard (only 127.0.0.1/32 is opened), 127.0.0.1 answers.
    let r = curl(
        &proxy,
        &format!("http://dual.direct.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["server"], format!("127.0.0.1:{}", origin.port()));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parents_refusal_is_passed_back() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let proxy = lab(&origin, vec![("seccloud-a", squid.addr())]).await;
    let r = curl(
        &proxy,
        &format!("http://blocked.test:{}/", origin.port()),
        true,
    )
    .await;
    // The security cloud's refusal is its own: the client gets a page that says so (502),
    // not a 403 that would read as this appliance's.
    assert_eq!(r.connect, 502, "{r:?}");
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["reason"], "parent_refused");
    assert_eq!(rec["blame"], "next_hop");
    assert_eq!(rec["parent"], "seccloud-a");
    assert!(
        rec["error"]
            .as_str()
            .is_some_and(|e| e.contains("it answered 403 Forbidden")),
        "{rec}"
    );
    // A refusal is an answer, not a failure: the parent stays in use.
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!(r.connect, 200, "{r:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keep_alive_is_honoured() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, vec![]).await;
    let url = |p: &str| format!("http://direct.test:{}/{p}", origin.port());
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-x",
            &proxy.url(),
            "-w",
            "%{http_code} %{num_connects}\n",
        ])
        .args([url("one"), url("two")])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["200 1", "200 0"],
        "the second request opened a new connection"
    );
    assert_eq!(origin.heads().len(), 2);
    assert_eq!(
        origin.connection_count(),
        1,
        "the origin connection was not reused"
    );
    // Another destination on the same client connection gets its own origin connection.
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-x",
            &proxy.url(),
            "-w",
            "%{http_code}\n",
        ])
        .args([
            url("three"),
            format!("http://www.direct.test:{}/four", origin.port()),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200\n200\n");
    assert_eq!(origin.connection_count(), 3);
    let heads = origin.heads();
    assert!(heads[3].contains("www.direct.test"), "{heads:?}");
    proxy.stop().await;
}
