//! Limits, timeouts, hostile requests and client access, end to end on loopback: raw TCP
//! clients against the proxy, each test asserting the status the client gets, the reason
//! in the access log, and the metric that counts it (docs/limits.md).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::scrape::scrape;
use support::{dns_server, Lab, Origin, Proxy};

/// Names the lab's DNS knows; `direct.test` is allowlisted on the origin's port.
const RECORDS: &[(&str, &str)] = &[("direct.test", "127.0.0.1")];

async fn lab(origin: &Origin, extra: &str, timeouts: &str) -> Proxy {
    Proxy::start(Lab {
        extra,
        timeouts,
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await
}

/// Sends `bytes` and reads until the proxy closes (bounded).
async fn exchange(stream: &mut TcpStream, bytes: &[u8]) -> String {
    stream.write_all(bytes).await.unwrap();
    read_all(stream).await
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).to_string()
}

async fn send(proxy: &Proxy, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    exchange(&mut tcp, bytes).await
}

/// A connection from another loopback address (another PC, for the per-client limit).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// The first access-log record whose `key` is `value` (waits, bounded).
async fn record(proxy: &Proxy, key: &str, value: &str) -> Value {
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

/// One counter series, summed over the labels not named.
async fn counter(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    let admin = proxy.admin.expect("the lab has an admin listener");
    scrape(admin).await.sum(name, labels)
}

/// Metrics are shared by every proxy in this process: tests compare before and after.
async fn limit_hits(proxy: &Proxy, limit: &str) -> f64 {
    counter(proxy, "lbo_limit_hits_total", &[("limit", limit)]).await
}

async fn denied(proxy: &Proxy, reason: &str) -> f64 {
    counter(proxy, "lbo_denied_total", &[("reason", reason)]).await
}

fn status_of(resp: &str) -> &str {
    resp.get(9..12).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_not_finished_in_time_gets_408() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "", "head = \"1s\"").await;
    let before = limit_hits(&proxy, "head_timeout").await;
    let resp = send(&proxy, b"CONNECT direct.test:443 HTTP/1.1\r\nHost: dir").await;
    assert_eq!(status_of(&resp), "408", "{resp}");
    let rec = record(&proxy, "reason", "head_timeout").await;
    assert_eq!(rec["status"], 408);
    assert_eq!(rec["blame"], "client");
    assert!(limit_hits(&proxy, "head_timeout").await >= before + 1.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_max_head_bytes_gets_431() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "[limits]\nmax_head_bytes = 1024", "").await;
    let before = limit_hits(&proxy, "head_bytes").await;
    let big = format!(
        "CONNECT direct.test:443 HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let resp = send(&proxy, big.as_bytes()).await;
    assert_eq!(status_of(&resp), "431", "{resp}");
    record(&proxy, "reason", "head_too_large").await;
    assert!(limit_hits(&proxy, "head_bytes").await >= before + 1.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_max_headers_gets_431_on_both_paths() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "[limits]\nmax_headers = 10", "").await;
    let before = limit_hits(&proxy, "header_count").await;
    let fields: String = (0..11).map(|i| format!("X-{i}: 1\r\n")).collect();
    let port = origin.port();
    for first in ["CONNECT direct.test:443", "GET http://direct.test/"] {
        let head = format!("{first} HTTP/1.1\r\nHost: direct.test\r\n{fields}\r\n");
        let resp = send(&proxy, head.as_bytes()).await;
        assert_eq!(status_of(&resp), "431", "{first}: {resp}");
    }
    let recs = proxy.records(2).await;
    let hits = recs
        .iter()
        .filter(|r| r["reason"] == "too_many_headers" && r["status"] == 431)
        .count();
    assert_eq!(hits, 2, "{recs:#?}");
    assert!(limit_hits(&proxy, "header_count").await >= before + 2.0);
    // Ten fields pass.
    let ten: String = (0..8).map(|i| format!("X-{i}: 1\r\n")).collect();
    let ok = format!(
        "GET http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\nConnection: close\r\n{ten}\r\n"
    );
    let resp = send(&proxy, ok.as_bytes()).await;
    assert_eq!(status_of(&resp), "200", "{resp}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_get_503() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "[limits]\nmax_connections = 2", "").await;
    let before = limit_hits(&proxy, "connections").await;
    // Accepted in order by one loop: the first two hold the places, the third is refused.
    let _a = TcpStream::connect(proxy.addr).await.unwrap();
    let _b = connect_from("127.0.0.2", proxy.addr).await;
    let mut c = connect_from("127.0.0.3", proxy.addr).await;
    let resp = read_all(&mut c).await;
    assert_eq!(status_of(&resp), "503", "{resp}");
    let rec = record(&proxy, "reason", "connection_limit").await;
    assert_eq!(rec["status"], 503);
    assert_eq!(rec["blame"], "proxy");
    assert!(limit_hits(&proxy, "connections").await >= before + 1.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_over_max_connections_per_client_gets_429() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "[limits]\nmax_connections_per_client = 2", "").await;
    let before = limit_hits(&proxy, "connections_per_client").await;
    let _a = connect_from("127.0.0.5", proxy.addr).await;
    let _b = connect_from("127.0.0.5", proxy.addr).await;
    let mut c = connect_from("127.0.0.5", proxy.addr).await;
    let resp = read_all(&mut c).await;
    assert_eq!(status_of(&resp), "429", "{resp}");
    let rec = record(&proxy, "reason", "client_connection_limit").await;
    assert_eq!(rec["client"], "127.0.0.5");
    assert_eq!(rec["blame"], "client");
    assert!(limit_hits(&proxy, "connections_per_client").await >= before + 1.0);
    // Another PC is not held back by this one.
    let port = origin.port();
    let mut other = connect_from("127.0.0.6", proxy.addr).await;
    let req = format!("GET http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\nConnection: close\r\n\r\n");
    let resp = exchange(&mut other, req.as_bytes()).await;
    assert_eq!(status_of(&resp), "200", "{resp}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_does_not_answer_gets_504_connect_timeout() {
    // A listener whose accept queue is full: the kernel drops further SYNs, so a connect
    // to it hangs until the proxy's connect timeout (3 s in the lab).
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = socket.listen(1).unwrap();
    let addr = full.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        let attempt = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr));
        match attempt.await {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let proxy = Proxy::start(Lab {
        extra: "[sni_check]\nmode = \"off\"",
        ..Lab::on(dns_server(RECORDS).await, addr.port())
    })
    .await;
    let before = limit_hits(&proxy, "connect_timeout").await;
    let req = format!("CONNECT direct.test:{} HTTP/1.1\r\n\r\n", addr.port());
    let resp = send(&proxy, req.as_bytes()).await;
    assert_eq!(status_of(&resp), "504", "{resp}");
    let rec = record(&proxy, "reason", "connect_timeout").await;
    assert_eq!(rec["blame"], "next_hop");
    assert!(limit_hits(&proxy, "connect_timeout").await >= before + 1.0);
    proxy.stop().await;
    drop((full, fillers));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_that_does_not_answer_gets_504_dns_timeout() {
    let origin = Origin::start().await;
    // Bound and never read: every query goes unanswered.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy = Proxy::start(Lab {
        timeouts: "dns = \"500ms\"",
        ..Lab::on(silent.local_addr().unwrap(), origin.port())
    })
    .await;
    let before = limit_hits(&proxy, "dns_timeout").await;
    let req = format!("CONNECT direct.test:{} HTTP/1.1\r\n\r\n", origin.port());
    let resp = send(&proxy, req.as_bytes()).await;
    assert_eq!(status_of(&resp), "504", "{resp}");
    record(&proxy, "reason", "dns_timeout").await;
    assert!(limit_hits(&proxy, "dns_timeout").await >= before + 1.0);
    assert!(origin.heads().is_empty());
    proxy.stop().await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tunnel_is_closed_after_the_idle_timeout() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "[sni_check]\nmode = \"off\"", "idle = \"1s\"").await;
    let before = limit_hits(&proxy, "idle_timeout").await;
    let req = format!("CONNECT direct.test:{} HTTP/1.1\r\n\r\n", origin.port());
    let resp = send(&proxy, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    let rec = record(&proxy, "reason", "idle_timeout").await;
    assert_eq!(rec["status"], 200);
    assert!(limit_hits(&proxy, "idle_timeout").await >= before + 1.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_tunnel_without_a_client_hello_in_time_is_closed() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "", "head = \"1s\"").await;
    let before = limit_hits(&proxy, "head_timeout").await;
    // The 200 comes first; the TLS check then waits for the rest of a ClientHello
    // whose record announces 512 bytes, in vain. (A client that sends nothing at all
    // may speak a server-first protocol: `non_tls` decides, below 443 it is relayed.)
    let req = format!(
        "CONNECT direct.test:{} HTTP/1.1\r\n\r\n\x16\x03\x01\x02\x00\x01",
        origin.port()
    );
    let resp = send(&proxy, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    let rec = record(&proxy, "reason", "head_timeout").await;
    assert_eq!(rec["route"], "direct");
    assert!(
        rec["error"].as_str().unwrap_or("").contains("ClientHello"),
        "{rec}"
    );
    assert!(limit_hits(&proxy, "head_timeout").await >= before + 1.0);
    assert!(origin.heads().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_tunnel_is_closed_at_max_tunnel_lifetime() {
    let origin = Origin::start().await;
    let extra = "[sni_check]\nmode = \"off\"\n[limits]\nmax_tunnel_lifetime = \"1s\"";
    let proxy = lab(&origin, extra, "").await;
    let before = limit_hits(&proxy, "tunnel_lifetime").await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let req = format!("CONNECT direct.test:{} HTTP/1.1\r\n\r\n", origin.port());
    tcp.write_all(req.as_bytes()).await.unwrap();
    // Requests through the tunnel keep it busy until the proxy ends it (bounded).
    let mut answers = 0;
    let mut buf = vec![0u8; 4096];
    for _ in 0..200 {
        if tcp
            .write_all(b"GET / HTTP/1.1\r\nHost: direct.test\r\n\r\n")
            .await
            .is_err()
        {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answers += 1,
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        answers > 1,
        "the tunnel carried traffic before it was closed"
    );
    let rec = record(&proxy, "reason", "tunnel_lifetime").await;
    assert_eq!(rec["status"], 200);
    assert!(limit_hits(&proxy, "tunnel_lifetime").await >= before + 1.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_get_400_and_a_closed_connection() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "", "").await;
    let port = origin.port();
    let before = denied(&proxy, "bad_request").await;
    let shapes: &[(&str, &str)] = &[
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            "duplicate Content-Length",
        ),
        (
            "Content-Length: 5, 5\r\n\r\nhello",
            "invalid Content-Length",
        ),
        (
            "Transfer-Encoding: chunked, identity\r\n\r\n",
            "Transfer-Encoding not ending in chunked",
        ),
        ("X-A: 1\r\n folded\r\n\r\n", "obs-fold"),
        ("X-A: 1\nX-B: 2\r\n\r\n", "bare CR or LF"),
        ("X-A: 1\rX-B: 2\r\n\r\n", "bare CR or LF"),
    ];
    for (n, (headers, why)) in shapes.iter().enumerate() {
        let req = format!(
            "POST http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\n{headers}"
        );
        let resp = send(&proxy, req.as_bytes()).await;
        assert_eq!(status_of(&resp), "400", "{why}: {resp}");
        // The record is written after the connection closes: wait for this one.
        let recs = proxy.records(n + 1).await;
        assert!(
            recs.iter().any(|r| r["reason"] == "bad_request"
                && r["error"].as_str().is_some_and(|e| e.contains(why))),
            "{why}: {recs:#?}"
        );
    }
    assert!(origin.heads().is_empty(), "{:?}", origin.heads());
    assert!(denied(&proxy, "bad_request").await >= before + shapes.len() as f64);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_requests_get_one_framing_and_broken_chunks_get_400() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "", "").await;
    let port = origin.port();
    // A good request, then Content-Length beside Transfer-Encoding on the same connection:
    // refused as on a first head (400, connection closed); nothing of it or after it
    // reaches the next hop.
    let req = format!(
        "GET http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\n\r\n\
         POST http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\n\
         Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
         GET http://direct.test:{port}/smuggled HTTP/1.1\r\nHost: direct.test:{port}\r\n\r\n"
    );
    let resp = send(&proxy, req.as_bytes()).await;
    assert_eq!(resp.matches("HTTP/1.1 200 ").count(), 1, "{resp}");
    assert!(
        resp.contains("HTTP/1.1 400 ")
            && resp.contains("both Content-Length and Transfer-Encoding"),
        "{resp}"
    );
    let heads = origin.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(!origin.saw("/smuggled"), "{heads:?}");
    // A chunked body passes with its own framing: the proxy frames it itself.
    let req = format!(
        "POST http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
         GET http://direct.test:{port}/after HTTP/1.1\r\nHost: direct.test:{port}\r\nConnection: close\r\n\r\n"
    );
    let resp = send(&proxy, req.as_bytes()).await;
    assert_eq!(resp.matches("HTTP/1.1 200 ").count(), 2, "{resp}");
    assert!(origin.saw("/after"), "{:?}", origin.heads());
    let second = origin.heads()[1].to_ascii_lowercase();
    assert!(second.starts_with("post / "), "{second}");
    assert!(!second.contains("content-length"), "{second}");

    // A later head the HTTP server cannot read (obs-fold): its own 400, recorded too.
    let req = format!(
        "GET http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\n\r\n\
         GET http://direct.test:{port}/folded HTTP/1.1\r\nHost: direct.test:{port}\r\n\
         X-A: 1\r\n folded\r\n\r\n"
    );
    let resp = send(&proxy, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.contains("HTTP/1.1 400 "), "{resp}");
    let rec = record(&proxy, "reason", "bad_request").await;
    assert_eq!(rec["status"], 400);
    assert!(!origin.saw("/folded"));
    // A chunk size that is not hexadecimal: the client's fault, 400, not a 502.
    let req = format!(
        "POST http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\n\
         Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    );
    let before = denied(&proxy, "bad_request").await;
    let resp = send(&proxy, req.as_bytes()).await;
    assert_eq!(status_of(&resp), "400", "{resp}");
    // Two records for each pipelined pair and the chunked pair, one for the broken
    // chunk: three are refusals.
    let recs = proxy.records(7).await;
    let bad = recs.iter().filter(|r| r["reason"] == "bad_request").count();
    assert_eq!(bad, 3, "{recs:#?}");
    assert!(denied(&proxy, "bad_request").await >= before + 1.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connect_targets_get_400_invalid_target() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "", "").await;
    let before = denied(&proxy, "invalid_target").await;
    let long_label = format!("{}.test:443", "a".repeat(64));
    let long_name = format!("{}test:443", "abcdefghi.".repeat(26));
    let targets = [
        "user:pass@direct.test:443",
        "direct.test",
        "direct.test:",
        "direct.test:0",
        "direct.test:65536",
        "direct.test:99999999",
        "[fe80::1%25eth0]:443",
        "[fe80::1%eth0]:443",
        "direct%2etest:443",
        "%64irect.test:443",
        long_label.as_str(),
        long_name.as_str(),
    ];
    for target in targets {
        let resp = send(
            &proxy,
            format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status_of(&resp), "400", "{target}: {resp}");
    }
    let recs = proxy.records(targets.len()).await;
    let invalid = recs
        .iter()
        .filter(|r| r["decision"] == "invalid_target" && r["reason"] == "bad_request")
        .count();
    assert_eq!(invalid, targets.len(), "{recs:#?}");
    assert!(denied(&proxy, "invalid_target").await >= before + targets.len() as f64);
    assert!(origin.heads().is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_the_rule_does_not_list_gets_403() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "", "").await;
    let before = denied(&proxy, "port_not_allowlisted").await;
    let resp = send(&proxy, b"CONNECT direct.test:22 HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&resp), "403", "{resp}");
    assert!(
        resp.contains("X-LBO-Reason: port_not_allowlisted"),
        "{resp}"
    );
    let rec = record(&proxy, "decision", "port_not_allowlisted").await;
    assert_eq!(rec["route"], "deny");
    assert_eq!(rec["rule"], "lab-direct/direct-test");
    assert!(denied(&proxy, "port_not_allowlisted").await >= before + 1.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_header_that_disagrees_with_the_uri_is_logged_and_the_uri_decides() {
    let origin = Origin::start().await;
    let proxy = lab(&origin, "", "").await;
    let port = origin.port();
    let req = format!(
        "GET http://direct.test:{port}/ HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n"
    );
    let resp = send(&proxy, req.as_bytes()).await;
    assert_eq!(status_of(&resp), "200", "{resp}");
    assert!(
        resp.contains(&format!("origin direct.test:{port}")),
        "{resp}"
    );
    let rec = record(&proxy, "host_mismatch", "evil.test").await;
    assert_eq!(rec["route"], "direct");
    assert_eq!(rec["target"], format!("direct.test:{port}"));
    // An agreeing Host (any case, default port spelt out or not) is not a mismatch.
    let req = format!(
        "GET http://direct.test:{port}/ HTTP/1.1\r\nHost: DIRECT.test:{port}\r\nConnection: close\r\n\r\n"
    );
    send(&proxy, req.as_bytes()).await;
    let recs = proxy.records(2).await;
    assert_eq!(recs[1]["host_mismatch"], Value::Null, "{recs:#?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_every_segment_can_be_closed_at_accept() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(Lab {
        segment: "127.0.0.99/32",
        extra: "[access]\nunknown_client = \"close\"",
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let before = denied(&proxy, "unknown_client").await;
    let resp = send(&proxy, b"CONNECT direct.test:443 HTTP/1.1\r\n\r\n").await;
    assert_eq!(resp, "", "closed without an answer");
    let rec = record(&proxy, "decision", "unknown_client").await;
    assert_eq!(rec["route"], "deny");
    assert_eq!(rec["status"], Value::Null);
    assert!(denied(&proxy, "unknown_client").await >= before + 1.0);
    // A client inside a segment is served as usual.
    let mut inside = connect_from("127.0.0.99", proxy.addr).await;
    let port = origin.port();
    let req = format!("GET http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\nConnection: close\r\n\r\n");
    let resp = exchange(&mut inside, req.as_bytes()).await;
    assert_eq!(status_of(&resp), "200", "{resp}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_backs_off_counts_and_recovers() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (support::closed_port(), support::closed_port());
    let config = dir.path().join("lbo-proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\
             [log]\naccess = \"off\"\n\
             [[segment]]\nname = \"lo\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n"
        ),
    )
    .unwrap();
    // The proxy as a process of its own, with room for 64 descriptors only.
    let mut child = Running(
        Command::new("sh")
            .args(["-c", "ulimit -n 64 && exec \"$0\" run --config \"$1\""])
            .arg(env!("CARGO_BIN_EXE_lbo-proxy"))
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(admin).await.is_err() {
        assert!(Instant::now() < deadline, "the proxy did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // More connections than descriptors: the kernel completes them, the proxy cannot
    // accept them all.
    let mut held = Vec::new();
    for _ in 0..120 {
        held.push(TcpStream::connect(proxy).await.unwrap());
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.contains("accept failed")) {
        assert!(
            Instant::now() < deadline,
            "no accept error logged: {seen:#?}"
        );
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("fd_limit")),
        "an EMFILE is an fd_limit: {seen:#?}"
    );
    drop(held);

    // Descriptors come back: the process is alive, counts, and serves again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let errors = loop {
        let s = scrape(admin).await;
        if s.status == 200 {
            break s.sum("lbo_accept_errors_total", &[("kind", "fd_limit")]);
        }
        assert!(Instant::now() < deadline, "admin did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(errors >= 1.0, "{errors}");
    assert!(child.0.try_wait().unwrap().is_none(), "the proxy exited");
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    let resp = exchange(&mut tcp, b"CONNECT 127.1:443 HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&resp), "400", "{resp}");
    while let Ok(line) = lines.try_recv() {
        seen.push(line);
    }
    let failures = seen.iter().filter(|l| l.contains("accept failed")).count();
    eprintln!("accept errors counted: {errors}; logged so far: {failures}");
}

/// The proxy process of a test, ended (by its PID) however the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_with_auth_file_challenges_and_admits_its_users() {
    use base64::Engine;
    let origin = Origin::start().await;
    let users = tempfile::tempdir().unwrap();
    let file = users.path().join("tax.users");
    std::fs::write(&file, "# 税務課\nsato:s3cret-pw\n").unwrap();
    let extra = format!(
        "[[segment]]\nname = \"tax\"\nnetworks = [\"127.0.0.7/32\"]\nprofile = \"lab\"\n\
         auth_file = \"{}\"",
        file.display()
    );
    let proxy = lab(&origin, &extra, "").await;
    let port = origin.port();
    let required = || async {
        counter(
            &proxy,
            "lbo_request_end_total",
            &[("reason", "auth_required")],
        )
        .await
    };
    let before = required().await;
    let token = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let connect = |auth: Option<String>| {
        let auth = auth
            .map(|a| format!("Proxy-Authorization: Basic {a}\r\n"))
            .unwrap_or_default();
        format!("CONNECT direct.test:{port} HTTP/1.1\r\n{auth}\r\n")
    };
    for auth in [
        None,
        Some(token("sato:wrong")),
        Some(token("suzuki:s3cret-pw")),
    ] {
        let mut tcp = connect_from("127.0.0.7", proxy.addr).await;
        let resp = exchange(&mut tcp, connect(auth).as_bytes()).await;
        assert_eq!(status_of(&resp), "407", "{resp}");
        assert!(
            resp.contains("Proxy-Authenticate: Basic realm=\"lbo-proxy\""),
            "{resp}"
        );
    }
    let rec = record(&proxy, "reason", "auth_required").await;
    assert_eq!(rec["segment"], "tax");
    assert_eq!(rec["status"], 407);
    assert!(required().await >= before + 3.0);

    // The right user gets through, on the raw CONNECT path and for http://.
    let mut tcp = connect_from("127.0.0.7", proxy.addr).await;
    tcp.write_all(connect(Some(token("sato:s3cret-pw"))).as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(tcp);
    let mut tcp = connect_from("127.0.0.7", proxy.addr).await;
    let get = format!(
        "GET http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\n\
         Proxy-Authorization: Basic {}\r\nConnection: close\r\n\r\n",
        token("sato:s3cret-pw")
    );
    let resp = exchange(&mut tcp, get.as_bytes()).await;
    assert_eq!(status_of(&resp), "200", "{resp}");
    assert!(!origin
        .heads()
        .iter()
        .any(|h| h.to_ascii_lowercase().contains("proxy-authorization")));

    // Other segments are not asked.
    let resp = send(
        &proxy,
        format!("GET http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&resp), "200", "{resp}");

    // Neither passwords nor tokens reach the access log.
    let dir = proxy.stop().await;
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    for secret in [
        "s3cret",
        "wrong",
        &token("sato:s3cret-pw"),
        &token("sato:wrong"),
    ] {
        assert!(!log.contains(secret), "{secret} in the access log");
    }
}

/// The limits of a first head hold for every later head of a kept-alive connection: the
/// same status, the same reason in the log, the same counter, and nothing forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_later_head_gets_the_first_heads_limits() {
    let origin = Origin::start().await;
    let proxy = lab(
        &origin,
        "[limits]\nmax_head_bytes = 4096\nmax_headers = 10",
        "head = \"1s\"",
    )
    .await;
    let port = origin.port();
    let ok =
        format!("GET http://direct.test:{port}/ok HTTP/1.1\r\nHost: direct.test:{port}\r\n\r\n");
    let fields: String = (0..11).map(|i| format!("X-{i}: 1\r\n")).collect();
    let later: [(String, &str, &str, &str); 4] = [
        (
            format!(
                "GET http://direct.test:{port}/big HTTP/1.1\r\nHost: direct.test\r\nX-Pad: {}\r\n\r\n",
                "a".repeat(114_000)
            ),
            "431",
            "head_too_large",
            "head_bytes",
        ),
        (
            format!("GET http://direct.test:{port}/many HTTP/1.1\r\nHost: direct.test\r\n{fields}\r\n"),
            "431",
            "too_many_headers",
            "header_count",
        ),
        (
            format!("GET http://direct.test:{port}/bare HTTP/1.1\nHost: direct.test\r\n\r\n"),
            "400",
            "bad_request",
            "",
        ),
        // Half a head, then silence past timeouts.head.
        (
            format!("GET http://direct.test:{port}/slow HTTP/1.1\r\nHost: dir"),
            "408",
            "head_timeout",
            "head_timeout",
        ),
    ];
    for (second, status, reason, limit) in later {
        let before = if limit.is_empty() {
            denied(&proxy, reason).await
        } else {
            limit_hits(&proxy, limit).await
        };
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(ok.as_bytes()).await.unwrap();
        let resp = exchange(&mut tcp, second.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 200 "), "{reason}: {resp}");
        let second_status = resp
            .match_indices("HTTP/1.1 ")
            .nth(1)
            .map(|(i, _)| &resp[i + 9..i + 12]);
        assert_eq!(second_status, Some(status), "{reason}: {resp}");
        let rec = record(&proxy, "reason", reason).await;
        assert_eq!(rec["status"].as_u64(), status.parse().ok(), "{rec}");
        let after = if limit.is_empty() {
            denied(&proxy, reason).await
        } else {
            limit_hits(&proxy, limit).await
        };
        assert!(after >= before + 1.0, "{reason}: {before} → {after}");
    }
    assert!(
        origin.heads().iter().all(|h| h.starts_with("GET /ok ")),
        "{:?}",
        origin.heads()
    );
    // An idle kept-alive connection is closed after the head timeout without a record.
    let n = proxy.records(0).await.len();
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(ok.as_bytes()).await.unwrap();
    let resp = read_all(&mut tcp).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        proxy.records(0).await.len(),
        n + 1,
        "only the request's record"
    );
    proxy.stop().await;
}
