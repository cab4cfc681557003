//! The SNI check (domain fronting) end to end: a CONNECT tunnel decided direct, then a
//! real rustls ClientHello (or plain bytes) from the client; the origin is a plain TCP
//! listener that records what reaches it, so the ClientHello arriving is the proof.

mod support;

use support::tls::client_hello;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{dns_server, Lab, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `direct.test` is allowlisted on the origin's port; `other.test` stands for an unlisted
/// site behind the same CDN address.
const RECORDS: &[(&str, &str)] = &[("direct.test", "127.0.0.1"), ("other.test", "127.0.0.1")];

/// A TCP origin that keeps every byte each connection sent until it closed.
struct RawOrigin {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawOrigin {
    async fn start() -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let log = log.clone();
                let slot = {
                    let mut l = log.lock().unwrap();
                    l.push(Vec::new());
                    l.len() - 1
                };
                tokio::spawn(async move {
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = tcp.read(&mut chunk).await {
                        log.lock().unwrap()[slot].extend_from_slice(&chunk[..n]);
                    }
                });
            }
        });
        RawOrigin { addr, received }
    }

    fn bytes(&self) -> Vec<u8> {
        self.received.lock().unwrap().concat()
    }

    /// Waits (bounded) until `n` bytes have arrived.
    async fn wait_for(&self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.bytes().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.bytes()
    }
}

async fn lab(origin: &RawOrigin, extra: &str) -> Proxy {
    Proxy::start(Lab {
        extra,
        ..Lab::on(dns_server(RECORDS).await, origin.addr.port())
    })
    .await
}

/// Opens a CONNECT tunnel to `authority` and checks the proxy's 200.
async fn tunnel(proxy: &Proxy, authority: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1, "proxy closed: {head:?}");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tcp
}

/// Sends `first` in two writes (the hello split across TCP segments) and tells whether the
/// proxy then closed the tunnel.
async fn send_and_see_closed(tcp: &mut TcpStream, first: &[u8]) -> bool {
    let (a, b) = first.split_at(first.len() / 2);
    tcp.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = tcp.write_all(b).await;
    let mut buf = [0u8; 16];
    match tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// The last access-log record, once the tunnel has ended.
async fn last_record(proxy: &Proxy) -> serde_json::Value {
    proxy.records(1).await.pop().expect("an access-log record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowlisted_name_in_the_hello_reaches_the_origin() {
    let origin = RawOrigin::start().await;
    let proxy = lab(&origin, "").await;
    let port = origin.addr.port();
    let hello = client_hello("www.direct.test");
    let mut tcp = tunnel(&proxy, &format!("direct.test:{port}")).await;
    assert!(!send_and_see_closed(&mut tcp, &hello).await);
    assert_eq!(origin.wait_for(hello.len()).await, hello);
    drop(tcp);
    let rec = last_record(&proxy).await;
    assert_eq!(rec["route"], "direct");
    assert_eq!(rec["reason"], "finished", "{rec}");
    assert_eq!(rec["sni"], "www.direct.test");
    assert_eq!(rec["sni_mismatch"], false);
    assert_eq!(rec["bytes_up"], hello.len());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fronted_hello_closes_the_tunnel_before_any_byte_leaves() {
    let origin = RawOrigin::start().await;
    let proxy = lab(&origin, "").await;
    let port = origin.addr.port();
    let mut tcp = tunnel(&proxy, &format!("direct.test:{port}")).await;
    assert!(send_and_see_closed(&mut tcp, &client_hello("other.test")).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(origin.bytes().is_empty(), "{:?}", origin.bytes());
    let rec = last_record(&proxy).await;
    assert_eq!(rec["route"], "direct");
    assert_eq!(rec["reason"], "sni_mismatch", "{rec}");
    assert_eq!(rec["blame"], "client");
    assert_eq!(rec["sni"], "other.test");
    assert_eq!(rec["sni_mismatch"], true);
    assert_eq!(rec["bytes_up"], 0);
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains(&format!("other.test:{port}")), "{error}");
    assert!(error.contains("not_allowlisted"), "{error}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_mode_relays_and_records_the_mismatch() {
    let origin = RawOrigin::start().await;
    let proxy = lab(&origin, "[sni_check]\nmode = \"log\"\n").await;
    let port = origin.addr.port();
    let hello = client_hello("other.test");
    let mut tcp = tunnel(&proxy, &format!("direct.test:{port}")).await;
    assert!(!send_and_see_closed(&mut tcp, &hello).await);
    assert_eq!(origin.wait_for(hello.len()).await, hello);
    drop(tcp);
    let rec = last_record(&proxy).await;
    assert_eq!(rec["reason"], "finished", "{rec}");
    assert_eq!(rec["sni"], "other.test");
    assert_eq!(rec["sni_mismatch"], true);
    assert!(
        rec["error"].as_str().unwrap().contains("other.test"),
        "{rec}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_bytes_follow_the_non_tls_setting() {
    let plain = b"PING direct.test\r\n";
    let origin = RawOrigin::start().await;
    let proxy = lab(&origin, "[sni_check]\nnon_tls = \"deny\"\n").await;
    let port = origin.addr.port();
    let mut tcp = tunnel(&proxy, &format!("direct.test:{port}")).await;
    assert!(send_and_see_closed(&mut tcp, plain).await);
    assert!(origin.bytes().is_empty());
    let rec = last_record(&proxy).await;
    assert_eq!(rec["reason"], "sni_mismatch", "{rec}");
    assert_eq!(rec["sni"], serde_json::Value::Null);
    assert!(rec["error"].as_str().unwrap().contains("not TLS"), "{rec}");
    proxy.stop().await;

    // Allowed: the bytes reach the origin. (The default, deny_on_443, allows this port.)
    for extra in ["[sni_check]\nnon_tls = \"allow\"\n", ""] {
        let origin = RawOrigin::start().await;
        let proxy = lab(&origin, extra).await;
        let port = origin.addr.port();
        let mut tcp = tunnel(&proxy, &format!("direct.test:{port}")).await;
        assert!(!send_and_see_closed(&mut tcp, plain).await, "{extra}");
        assert_eq!(origin.wait_for(plain.len()).await, plain, "{extra}");
        proxy.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_literal_tunnel_may_carry_a_hello_without_sni() {
    let origin = RawOrigin::start().await;
    let proxy = lab(&origin, "").await;
    let port = origin.addr.port();
    let hello = client_hello("127.0.0.1");
    let mut tcp = tunnel(&proxy, &format!("127.0.0.1:{port}")).await;
    assert!(!send_and_see_closed(&mut tcp, &hello).await);
    assert_eq!(origin.wait_for(hello.len()).await, hello);
    drop(tcp);
    let rec = last_record(&proxy).await;
    assert_eq!(rec["reason"], "finished", "{rec}");
    assert_eq!(rec["sni"], serde_json::Value::Null);
    proxy.stop().await;

    // To a name, the same hello hides where it goes: refused.
    let origin = RawOrigin::start().await;
    let proxy = lab(&origin, "").await;
    let port = origin.addr.port();
    let mut tcp = tunnel(&proxy, &format!("direct.test:{port}")).await;
    assert!(send_and_see_closed(&mut tcp, &hello).await);
    assert!(origin.bytes().is_empty());
    assert_eq!(last_record(&proxy).await["reason"], "sni_mismatch");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_does_not_look() {
    let origin = RawOrigin::start().await;
    let proxy = lab(&origin, "[sni_check]\nmode = \"off\"\n").await;
    let port = origin.addr.port();
    let hello = client_hello("other.test");
    let mut tcp = tunnel(&proxy, &format!("direct.test:{port}")).await;
    assert!(!send_and_see_closed(&mut tcp, &hello).await);
    assert_eq!(origin.wait_for(hello.len()).await, hello);
    drop(tcp);
    let rec = last_record(&proxy).await;
    assert_eq!(rec["sni"], serde_json::Value::Null);
    assert_eq!(rec["sni_mismatch"], false);
    proxy.stop().await;
}

#[test]
fn bad_settings_are_reported_with_their_keys() {
    let text = format!(
        "{}\n[sni_check]\nmode = \"strict\"\nnon_tls = \"maybe\"\nmax_hello_bytes = 100\n",
        lbo_proxy::config::EMBEDDED_DEFAULT
    );
    let err = lbo_proxy::config::load_str(Path::new("t.toml"), &text, None)
        .err()
        .expect("invalid settings");
    let text = err.to_string();
    for key in [
        "sni_check.mode",
        "sni_check.non_tls",
        "sni_check.max_hello_bytes",
    ] {
        assert!(text.contains(key), "{key}: {text}");
    }
    let ok = format!(
        "{}\n[sni_check]\nmode = \"log\"\nnon_tls = \"allow\"\nmax_hello_bytes = 4096\n",
        lbo_proxy::config::EMBEDDED_DEFAULT
    );
    let c = lbo_proxy::config::load_str(Path::new("t.toml"), &ok, None).unwrap();
    assert_eq!(c.sni_check.mode, lbo_proxy::config::SniMode::Log);
    assert_eq!(c.sni_check.max_hello_bytes, 4096);
}
