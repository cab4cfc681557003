//! Hot reload under load: open tunnels keep relaying across a reload, new requests are
//! decided by the new allowlist, and a bad config is refused while the old one stays.

mod support;

use support::{curl, dns_server, Lab, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post_reload(proxy: &Proxy) -> (String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-X", "POST", "-w", "\n%{http_code}"])
        .arg(format!("http://{}/-/reload", proxy.admin.unwrap()))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_policy_and_keeps_open_tunnels() {
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
    let dns = dns_server(&[
        ("direct.test", "127.0.0.1"),
        ("new.direct-two.test", "127.0.0.1"),
    ])
    .await;
    let proxy = Proxy::start(Lab::on(dns, port)).await;

    // A tunnel opened before the reload.
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(format!("CONNECT direct.test:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 39];
    tcp.read_exact(&mut head).await.unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));

    // Not allowlisted yet: upstream, and there is no parent.
    let url = format!("http://new.direct-two.test:{port}/");
    assert_eq!(curl(&proxy, &url, true).await.connect, 503);

    let lists = proxy.dir.path().join("allowlists/lab-direct.toml");
    let text = std::fs::read_to_string(&lists).unwrap();
    std::fs::write(
        &lists,
        text.replace(
            "\"*.direct.test\"]",
            "\"*.direct.test\", \"new.direct-two.test\"]",
        ),
    )
    .unwrap();
    let (code, body) = post_reload(&proxy).await;
    assert_eq!(code, "200", "{body}");

    // The old tunnel still relays.
    tcp.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    tcp.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"still here");
    // New requests use the new allowlist.
    let r = curl(&proxy, &url, true).await;
    assert_eq!(r.connect, 200, "{r:?}");

    // A broken allowlist is refused with its line; the running policy stays.
    std::fs::write(&lists, "[category]\nname = \"lab-direct\"\nbogus = true\n").unwrap();
    let (code, body) = post_reload(&proxy).await;
    assert_eq!(code, "422", "{body}");
    assert!(body.contains("lab-direct.toml:3"), "{body}");
    assert_eq!(curl(&proxy, &url, true).await.connect, 200);
    tcp.write_all(b"and again!").await.unwrap();
    tcp.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"and again!");

    let metrics = tokio::process::Command::new("curl")
        .args(["-s", &format!("http://{}/metrics", proxy.admin.unwrap())])
        .output()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("lbo_config_reloads_total{result=\"failure\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lbo_config_reloads_total{result=\"success\"}"),
        "{metrics}"
    );
    drop(tcp);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_needs_post() {
    let proxy = Proxy::start(Lab::on(dns_server(&[]).await, 9)).await;
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/-/reload", proxy.admin.unwrap()))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "405");
    proxy.stop().await;
}
