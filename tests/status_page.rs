//! The admin listener's status page (`GET /`) as an engineer sees it: the proxy runs with
//! Squid as one security cloud parent and a dead address as the other, carries a direct
//! tunnel, an upstream one and a refused one, and the page is then opened in a real
//! browser (Chromium from Debian, headless). A missing Chromium fails the test:
//! scripts/test installs it.
//!
//! The metrics registry is process-wide and tests run in parallel in one binary, so counts
//! are checked as "more than zero", never as exact numbers.

mod support;

use support::browser::chromium;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{closed_port, curl, dns_server, Lab, Origin, Proxy, Squid};

const RECORDS: &[(&str, &str)] = &[
    ("www.direct.test", "127.0.0.1"),
    ("upstream.test", "127.0.0.1"),
];
const SQUID_HOSTS: &[(&str, &str)] = &[("upstream.test", "127.0.0.1")];

/// A plain HTTP/1.1 GET on the admin listener: status line, head, body.
async fn get(admin: SocketAddr, path: &str) -> (String, String, String) {
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the admin listener did not answer in 10 s");
    let text = String::from_utf8(raw).expect("the answer is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let (status, head) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), head.to_lowercase(), body.to_string())
}

/// The `data-requests` count of a route's row, if the row is there.
fn route_requests(page: &str, route: &str) -> Option<u64> {
    let marker = format!("data-route=\"{route}\" data-requests=\"");
    let rest = &page[page.find(&marker)? + marker.len()..];
    rest[..rest.find('"')?].parse().ok()
}

/// The `<tr>` of a parent.
fn parent_row<'a>(page: &'a str, name: &str) -> Option<&'a str> {
    let at = page.find(&format!("data-parent=\"{name}\""))?;
    let start = page[..at].rfind("<tr")?;
    let end = at + page[at..].find("</tr>")?;
    Some(&page[start..end])
}

/// Waits (bounded) until the page shows what the traffic and the health check did.
async fn settled_page(admin: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, page) = get(admin, "/").await;
        let counted = ["direct", "upstream", "deny"]
            .iter()
            .all(|r| route_requests(&page, r).is_some_and(|n| n > 0));
        let b_down = parent_row(&page, "seccloud-b").is_some_and(|r| r.contains("DOWN"));
        if counted && b_down {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "the status page did not show the traffic within 30 s:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_parents_routes_and_denies_in_a_browser() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let dead = format!("127.0.0.1:{}", closed_port());
    let proxy = Proxy::start(Lab {
        parents: vec![("seccloud-a", squid.addr()), ("seccloud-b", dead.clone())],
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let admin = proxy.admin.expect("the lab has an admin listener");

    let direct = curl(
        &proxy,
        &format!("http://www.direct.test:{}/signin", origin.port()),
        true,
    )
    .await;
    assert_eq!((direct.connect, direct.status), (200, 200), "{direct:?}");
    let upstream = curl(
        &proxy,
        &format!("http://upstream.test:{}/page", origin.port()),
        true,
    )
    .await;
    assert_eq!(
        (upstream.connect, upstream.status),
        (200, 200),
        "{upstream:?}"
    );
    assert!(squid.logged("CONNECT upstream.test"));
    let denied = curl(
        &proxy,
        &format!("http://deny.test:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!(denied.connect, 403, "{denied:?}");

    // The page as served.
    let page = settled_page(admin).await;
    let (status, head, _) = get(admin, "/").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    assert!(
        !page.contains("<script") && !page.contains("<link") && !page.contains("src="),
        "the page must be self-contained"
    );
    assert!(page.contains(&dead), "the dead parent's address is listed");

    // The page as a browser renders it.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("chromium");
    let url = format!("http://{admin}/");
    let dom = {
        let (profile, url) = (profile.clone(), url.clone());
        tokio::task::spawn_blocking(move || chromium(&profile, &["--dump-dom"], &url))
            .await
            .unwrap()
    };
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(
        dom.contains(&format!("id=\"version\">{}<", env!("CARGO_PKG_VERSION"))),
        "no version in the DOM:\n{dom}"
    );
    let a = parent_row(&dom, "seccloud-a").expect("seccloud-a in the DOM");
    assert!(a.contains("data-state=\"up\"") && a.contains(">UP<"), "{a}");
    let b = parent_row(&dom, "seccloud-b").expect("seccloud-b in the DOM");
    assert!(
        b.contains("data-state=\"down\"") && b.contains(">DOWN<"),
        "{b}"
    );
    for route in ["direct", "upstream", "deny"] {
        let n = route_requests(&dom, route);
        assert!(
            n.is_some_and(|n| n > 0),
            "route {route}: {n:?} requests in the DOM"
        );
    }
    assert!(
        dom.contains("data-deny=\"deny_rule\""),
        "no deny reason in the DOM:\n{dom}"
    );
    assert!(
        dom.contains("上位プロキシ"),
        "the page is not read as UTF-8"
    );

    // And as pixels: kept where a person can look at it.
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page.png");
    let _ = std::fs::remove_file(&png);
    {
        let (profile, url, png) = (profile.clone(), url.clone(), png.clone());
        tokio::task::spawn_blocking(move || {
            chromium(
                &profile,
                &[
                    &format!("--screenshot={}", png.display()),
                    "--window-size=1280,1400",
                ],
                &url,
            )
        })
        .await
        .unwrap();
    }
    let bytes = std::fs::read(&png).expect("no screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 1400));
    // A blank page of that size compresses to a few kilobytes; tables and text do not.
    assert!(bytes.len() > 40_000, "screenshot is {} bytes", bytes.len());

    proxy.stop().await;
}
