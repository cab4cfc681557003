//! Transparent listeners end to end on loopback: a TLS client's first flight (routed by
//! its SNI) and plain HTTP (routed by `Host`) reach the origin directly or go through
//! Squid, with the same policy as the explicit proxy.

mod support;

use support::tls::client_hello;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{dns_server, Lab, Origin, Proxy, Squid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RECORDS: &[(&str, &str)] = &[
    ("direct.test", "127.0.0.1"),
    ("www.direct.test", "127.0.0.1"),
    ("other.test", "127.0.0.1"),
];
const SQUID_HOSTS: &[(&str, &str)] = &[("other.test", "127.0.0.1"), ("upstream.test", "127.0.0.1")];

/// A TCP origin that records every byte it receives and closes when the client does.
#[derive(Clone)]
struct RawOrigin {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<u8>>>,
}

impl RawOrigin {
    async fn start() -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = tcp.read(&mut chunk).await {
                        sink.lock().unwrap().extend_from_slice(&chunk[..n]);
                    }
                });
            }
        });
        RawOrigin { addr, got }
    }

    /// Waits (bounded) until `bytes` have arrived.
    async fn received(&self, bytes: &[u8]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self
                .got
                .lock()
                .unwrap()
                .windows(bytes.len())
                .any(|w| w == bytes)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// A lab with one transparent listener of each kind; SNI targets get the origin's port.
async fn lab(origin_port: u16, parents: Vec<(&'static str, String)>, hello_timeout: &str) -> Proxy {
    let extra = format!(
        "[transparent]\ntls_listen = [\"127.0.0.1:0\"]\nhttp_listen = [\"127.0.0.1:0\"]\n\
         tls_port = {origin_port}\nhello_timeout = \"{hello_timeout}\"\n"
    );
    Proxy::start(Lab {
        parents,
        extra: &extra,
        ..Lab::on(dns_server(RECORDS).await, origin_port)
    })
    .await
}

/// Reads until the proxy closes (bounded); true when it did.
async fn closed(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_sni_reaches_the_origin_directly() {
    let origin = RawOrigin::start().await;
    let proxy = lab(origin.addr.port(), vec![], "5s").await;
    let hello = client_hello("direct.test");
    let mut tcp = TcpStream::connect(proxy.transparent_tls[0]).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    assert!(
        origin.received(&hello).await,
        "the ClientHello did not arrive"
    );
    drop(tcp);
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["listener"], "transparent_tls");
    assert_eq!(rec["target_from"], "sni");
    assert_eq!(rec["target"], format!("direct.test:{}", origin.addr.port()));
    assert_eq!(rec["route"], "direct");
    assert_eq!(rec["rule"], "lab-direct/direct-test");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_one_byte_writes_is_reassembled() {
    let origin = RawOrigin::start().await;
    let proxy = lab(origin.addr.port(), vec![], "5s").await;
    let hello = client_hello("www.direct.test");
    let mut tcp = TcpStream::connect(proxy.transparent_tls[0]).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    for b in &hello {
        tcp.write_all(std::slice::from_ref(b)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        origin.received(&hello).await,
        "the ClientHello did not arrive"
    );
    drop(tcp);
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["route"], "direct");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_sni_goes_through_squid() {
    let origin = RawOrigin::start().await;
    let port = origin.addr.port();
    let squid = Squid::start(SQUID_HOSTS);
    let proxy = lab(port, vec![("seccloud-a", squid.addr())], "5s").await;
    let hello = client_hello("other.test");
    let mut tcp = TcpStream::connect(proxy.transparent_tls[0]).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    assert!(
        origin.received(&hello).await,
        "the ClientHello did not arrive"
    );
    drop(tcp);
    assert!(
        squid.logged(&format!("CONNECT other.test:{port}")),
        "{}",
        squid.access_log()
    );
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["route"], "upstream");
    assert_eq!(rec["parent"], "seccloud-a");
    assert_eq!(rec["target_from"], "sni");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_sni_without_a_parent_is_closed() {
    let origin = RawOrigin::start().await;
    let proxy = lab(origin.addr.port(), vec![], "5s").await;
    let mut tcp = TcpStream::connect(proxy.transparent_tls[0]).await.unwrap();
    tcp.write_all(&client_hello("other.test")).await.unwrap();
    assert!(closed(&mut tcp).await);
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["route"], "upstream");
    assert_eq!(rec["reason"], "no_parent");
    assert!(origin.got.lock().unwrap().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalled_hellos_are_closed_and_logged() {
    let origin = RawOrigin::start().await;
    let proxy = lab(origin.addr.port(), vec![], "300ms").await;
    let addr = proxy.transparent_tls[0];

    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: direct.test\r\n\r\n")
        .await
        .unwrap();
    assert!(closed(&mut garbage).await);
    let rec = &proxy.records(1).await[0];
    assert_eq!(rec["listener"], "transparent_tls");
    assert_eq!(rec["target_from"], "sni");
    assert_eq!(rec["reason"], "bad_request");

    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(&client_hello("direct.test")[..20])
        .await
        .unwrap();
    assert!(closed(&mut stalled).await);
    let rec = &proxy.records(2).await[1];
    assert_eq!(rec["reason"], "head_timeout");

    // No SNI on a connection that was not redirected: no destination to go to.
    let mut nameless = TcpStream::connect(addr).await.unwrap();
    nameless
        .write_all(&client_hello("127.0.0.1"))
        .await
        .unwrap();
    assert!(closed(&mut nameless).await);
    let rec = &proxy.records(3).await[2];
    assert_eq!(rec["reason"], "bad_request");
    assert!(origin.got.lock().unwrap().is_empty());
    proxy.stop().await;
}

/// Sends one request on the transparent HTTP listener; returns the response.
async fn http(proxy: &Proxy, head: &str) -> String {
    let mut tcp = TcpStream::connect(proxy.transparent_http[0]).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_is_routed_by_host() {
    let origin = Origin::start().await;
    let port = origin.port();
    let squid = Squid::start(SQUID_HOSTS);
    let proxy = lab(port, vec![("seccloud-a", squid.addr())], "5s").await;

    let direct = http(
        &proxy,
        &format!("GET /a?b=c HTTP/1.1\r\nHost: direct.test:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(direct.starts_with("HTTP/1.1 200"), "{direct}");
    assert!(
        direct.ends_with(&format!("origin direct.test:{port}\n")),
        "{direct}"
    );
    let heads = origin.heads();
    assert!(heads[0].starts_with("GET /a?b=c HTTP/1.1\r\n"), "{heads:?}");

    let upstream = http(
        &proxy,
        &format!("GET /p HTTP/1.1\r\nHost: upstream.test:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(upstream.starts_with("HTTP/1.1 200"), "{upstream}");
    assert!(
        squid.logged(&format!("GET http://upstream.test:{port}/p")),
        "{}",
        squid.access_log()
    );
    assert!(!squid.access_log().contains("direct.test"));

    let recs = proxy.records(2).await;
    for rec in &recs {
        assert_eq!(rec["listener"], "transparent_http");
        assert_eq!(rec["target_from"], "host");
    }
    assert_eq!(recs[0]["route"], "direct");
    assert_eq!(recs[1]["route"], "upstream");

    let nameless = http(&proxy, "GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        nameless.starts_with("HTTP/1.0 400") || nameless.starts_with("HTTP/1.1 400"),
        "{nameless}"
    );
    proxy.stop().await;
}

/// Runs a real TLS client (bounded: the raw origin never answers, so it is killed).
async fn tls_client(program: &str, args: &[String]) {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is missing (scripts/test installs it): {e}"));
    let _ = tokio::time::timeout(Duration::from_secs(3), child.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_openssl_through_the_transparent_port() {
    let origin = RawOrigin::start().await;
    let proxy = lab(origin.addr.port(), vec![], "5s").await;
    let t = proxy.transparent_tls[0];
    tls_client(
        "curl",
        &[
            "-sk".into(),
            "--max-time".into(),
            "3".into(),
            "--resolve".into(),
            format!("direct.test:{}:127.0.0.1", t.port()),
            format!("https://direct.test:{}/", t.port()),
        ],
    )
    .await;
    tls_client(
        "openssl",
        &[
            "s_client".into(),
            "-connect".into(),
            t.to_string(),
            "-servername".into(),
            "www.direct.test".into(),
        ],
    )
    .await;
    assert!(
        origin.received(&[0x16, 0x03]).await,
        "no ClientHello reached the origin"
    );
    let recs = proxy.records(2).await;
    let targets: Vec<String> = recs
        .iter()
        .map(|r| r["target"].as_str().unwrap_or("").to_string())
        .collect();
    for name in ["direct.test", "www.direct.test"] {
        let rec = recs
            .iter()
            .find(|r| r["target"] == format!("{name}:{}", origin.addr.port()))
            .unwrap_or_else(|| panic!("{name} not logged: {targets:?}"));
        assert_eq!(rec["listener"], "transparent_tls");
        assert_eq!(rec["route"], "direct");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_and_explicit_listeners_decide_like_route() {
    let origin = RawOrigin::start().await;
    let proxy = lab(origin.addr.port(), vec![], "5s").await;
    let port = origin.addr.port();
    let names = [
        "direct.test",
        "www.direct.test",
        "a.b.direct.test",
        "DIRECT.test",
        "direct.test.evil.test",
        "xdirect.test",
        "deny.test",
        "other.test",
        "upstream.test",
    ];
    let t = proxy.transparent_tls[0];
    let mut clients = Vec::new();
    for name in names {
        let s_client = vec![
            "s_client".to_string(),
            "-connect".into(),
            t.to_string(),
            "-servername".into(),
            name.to_string(),
        ];
        let explicit = vec![
            "-s".to_string(),
            "--max-time".into(),
            "3".into(),
            "-p".into(),
            "-x".into(),
            proxy.url(),
            format!("http://{name}:{port}/"),
        ];
        clients.push(async move {
            tls_client("openssl", &s_client).await;
            tls_client("curl", &explicit).await;
        });
    }
    one_after_another(clients).await;
    let recs = proxy.records(2 * names.len()).await;
    let config = proxy.dir.path().join("lbo-proxy.toml");
    for name in names {
        let target = format!("{}:{port}", name.to_lowercase());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lbo-proxy"))
            .args(["route", "--config"])
            .arg(&config)
            .args(["--client", "127.0.0.1", &target])
            .output()
            .unwrap();
        let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for listener in ["transparent_tls", "explicit"] {
            let rec = recs
                .iter()
                .find(|r| r["listener"] == listener && r["target"] == target)
                .unwrap_or_else(|| panic!("{listener} did not log {target}: {recs:?}"));
            assert_eq!(rec["route"], want["route"], "{listener} {target}");
            assert_eq!(rec["decision"], want["reason"], "{listener} {target}");
            assert_eq!(rec["rule"], want["rule"], "{listener} {target}");
        }
    }
    proxy.stop().await;
}

/// Runs the clients one after another: each is bounded, and the log stays in order.
async fn one_after_another<F: std::future::Future<Output = ()>>(clients: Vec<F>) {
    for c in clients {
        c.await;
    }
}
