//! The admin listener is no back door: who may connect (`[admin] allow`, loopback by
//! default), which endpoint more networks may reach, the bearer token a change needs off
//! loopback, the head timeout and the connection limits of the proxy's accept loop, and a
//! record for every refusal. The client that is not on loopback lives in a network
//! namespace this test creates (needs root and `ip`: without them it fails).

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::netns::Netns;
use support::{dns_server, Lab, Proxy};

/// One request from `from` to the admin listener: status line and body.
async fn get(from: &str, admin: SocketAddr, request: &str) -> (u16, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let Ok(mut tcp) = socket.connect(admin).await else {
        return (0, String::new());
    };
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn req(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n{extra}Connection: close\r\n\r\n")
}

/// Every admin record so far (waits, bounded, for at least `n`).
async fn admin_records(proxy: &Proxy, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs: Vec<Value> = proxy
            .records(0)
            .await
            .into_iter()
            .filter(|r| r["listener"] == "admin")
            .collect();
        if recs.len() >= n || Instant::now() > deadline {
            return recs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_networks_connect_and_endpoints_open_to_their_own() {
    let proxy = Proxy::start(Lab {
        admin: "allow = [\"127.0.0.1/32\"]\nmetrics_allow = [\"127.0.0.6/32\"]\n\
                readyz_allow = [\"127.0.0.7/32\"]\npac_allow = [\"127.0.0.8/32\"]",
        ..Lab::on(dns_server(&[]).await, 9)
    })
    .await;
    let admin = proxy.admin.unwrap();
    assert_eq!(get("127.0.0.1", admin, &req("GET", "/", "")).await.0, 200);
    // Outside every admin network: closed at accept, nothing answered.
    let (status, text) = get("127.0.0.5", admin, &req("GET", "/metrics", "")).await;
    assert_eq!((status, text.as_str()), (0, ""));
    for (from, open, closed) in [
        ("127.0.0.6", "/metrics", "/readyz"),
        ("127.0.0.7", "/readyz", "/metrics"),
        ("127.0.0.7", "/healthz", "/"),
        ("127.0.0.8", "/proxy.pac", "/-/reload"),
    ] {
        assert_eq!(
            get(from, admin, &req("GET", open, "")).await.0,
            200,
            "{from} {open}"
        );
        assert_eq!(
            get(from, admin, &req("GET", closed, "")).await.0,
            403,
            "{from} {closed}"
        );
    }
    let recs = admin_records(&proxy, 5).await;
    let refused: Vec<&Value> = recs
        .iter()
        .filter(|r| r["reason"] == "admin_refused")
        .collect();
    assert_eq!(refused.len(), 5, "{recs:#?}");
    assert!(refused
        .iter()
        .any(|r| r["client"] == "127.0.0.5" && r["status"].is_null()));
    assert!(refused
        .iter()
        .any(|r| r["client"] == "127.0.0.6" && r["status"] == 403));
    assert!(refused.iter().all(|r| r["blame"] == "client"));
    let metrics = support::scrape::scrape(admin).await;
    assert!(metrics.sum("lbo_denied_total", &[("reason", "admin_refused")]) >= 5.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_admin_connections_time_out_and_cannot_take_the_proxys_descriptors() {
    let proxy = Proxy::start(Lab {
        timeouts: "head = \"1s\"",
        ..Lab::on(dns_server(&[]).await, 9)
    })
    .await;
    let admin = proxy.admin.unwrap();
    // More idle connections than the admin listener admits, from one address and from many.
    let mut idle = Vec::new();
    for i in 0..80u8 {
        let from = format!("127.0.1.{}", 1 + i % 40);
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        idle.push(socket.connect(admin).await.unwrap());
    }
    let one = "127.0.2.1";
    let mut same = Vec::new();
    for _ in 0..20 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{one}:0").parse().unwrap()).unwrap();
        same.push(socket.connect(admin).await.unwrap());
    }
    // The proxy listener still serves meanwhile.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"GET /proxy.pac HTTP/1.1\r\nHost: lbo\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).await.unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let recs = admin_records(&proxy, 1).await;
    assert!(
        recs.iter()
            .any(|r| r["reason"] == "connection_limit" && r["status"] == 503),
        "{recs:#?}"
    );
    // Idle ones are closed after the head timeout; then the listener answers again.
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), idle[0].read(&mut buf))
        .await
        .expect("an idle admin connection is closed by the head timeout");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
    drop(same);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get("127.0.0.1", admin, &req("GET", "/healthz", "")).await.0,
        200
    );
    proxy.stop().await;
}

/// A token file kept like a key.
fn token_file(dir: &std::path::Path, token: &str) -> String {
    let path = dir.join("admin.token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    path.display().to_string()
}

#[test]
fn changes_off_loopback_need_the_bearer_token() {
    let ns = Netns::create("admin");
    // Two more addresses on the namespace's own interface: the admin listener's, and a
    // client's that is not a loopback address.
    ns.run("ip", &["addr", "add", "192.0.2.1/32", "dev", "lo"], None);
    ns.run("ip", &["addr", "add", "192.0.2.2/32", "dev", "lo"], None);
    ns.block_on(token_scenario());
}

async fn token_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let token = "0f5c2a4b9e8d7c6b5a49382716051234";
    let file = token_file(dir.path(), token);
    let admin_conf =
        format!("allow = [\"127.0.0.0/8\", \"192.0.2.0/24\"]\ntoken_file = \"{file}\"");
    let proxy = Proxy::start(Lab {
        admin_listen: "0.0.0.0:0",
        admin: &admin_conf,
        ..Lab::on(dns_server(&[]).await, 9)
    })
    .await;
    let port = proxy.admin.unwrap().port();
    let there = SocketAddr::from(([192, 0, 2, 1], port));
    let here = SocketAddr::from(([127, 0, 0, 1], port));
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");
    // Reading is open to the allowed network; a change is not, without the token.
    assert_eq!(get("192.0.2.2", there, &req("GET", "/", "")).await.0, 200);
    let (status, text) = get("192.0.2.2", there, &req("POST", "/-/reload", "")).await;
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{text}"
    );
    let wrong = bearer("0f5c2a4b9e8d7c6b5a49382716051235");
    assert_eq!(
        get("192.0.2.2", there, &req("POST", "/-/reload", &wrong))
            .await
            .0,
        401
    );
    assert_eq!(
        get(
            "192.0.2.2",
            there,
            &req("POST", "/-/reload", &bearer(token))
        )
        .await
        .0,
        200
    );
    // Loopback needs none.
    assert_eq!(
        get("127.0.0.1", here, &req("POST", "/-/reload", ""))
            .await
            .0,
        200
    );
    let recs = admin_records(&proxy, 2).await;
    let auth: Vec<&Value> = recs
        .iter()
        .filter(|r| r["reason"] == "auth_required")
        .collect();
    assert_eq!(auth.len(), 2, "{recs:#?}");
    assert!(auth
        .iter()
        .all(|r| r["status"] == 401 && r["client"] == "192.0.2.2"));
    assert!(
        !std::fs::read_to_string(proxy.dir.path().join("access.log"))
            .unwrap()
            .contains(token)
    );

    // Without a token file, changes come from loopback only.
    let cfg = proxy.dir.path().join("lbo-proxy.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace(&format!("token_file = \"{file}\""), "")).unwrap();
    assert_eq!(
        get("127.0.0.1", here, &req("POST", "/-/reload", ""))
            .await
            .0,
        200
    );
    let (status, text) = get(
        "192.0.2.2",
        there,
        &req("POST", "/-/reload", &bearer(token)),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    proxy.stop().await;
}
