//! A reload reaches every request, and every open tunnel: each `http://` request of a
//! kept-alive connection, each later CONNECT on it and each transparent request is
//! decided under the policy in force when it arrives; a kept next-hop connection carries
//! no request past a reload; open tunnels whose route the new policy changes (direct no
//! more, credentials revoked, the client out of its segment, the parent or the guard
//! changed) are closed as `policy_changed`, one record each, the rest untouched; with
//! `[reload] open_tunnels = "keep"` they all stay. Real sockets on loopback, Squid as the
//! parent, and a property test over random reloads.

mod support;

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::scrape::scrape;
use support::{dns_server, Lab, Origin, Proxy, Squid};

const RECORDS: &[(&str, &str)] = &[
    ("direct.test", "127.0.0.1"),
    ("a.direct.test", "127.0.0.1"),
    ("b.direct.test", "127.0.0.1"),
    ("c.direct.test", "127.0.0.1"),
];
const SQUID_HOSTS: &[(&str, &str)] = &[
    ("direct.test", "127.0.0.1"),
    ("a.direct.test", "127.0.0.1"),
    ("b.direct.test", "127.0.0.1"),
    ("c.direct.test", "127.0.0.1"),
];

/// Rewrites the lab's direct category to break out exactly `names` (on the origin's
/// port), keeping everything else of the file.
fn set_direct(proxy: &Proxy, names: &[&str]) {
    let path = proxy.dir.path().join("allowlists/lab-direct.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("domains = [").unwrap();
    let end = start + text[start..].find(']').unwrap() + 1;
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let domains = if names.is_empty() {
        // A rule needs domains or networks: keep a name nobody asks for.
        "domains = [\"nobody.direct.test\"]".to_string()
    } else {
        format!("domains = [{}]", list.join(", "))
    };
    std::fs::write(
        &path,
        format!("{}{domains}{}", &text[..start], &text[end..]),
    )
    .unwrap();
}

/// Edits the lab's config file.
fn edit_config(proxy: &Proxy, from: &str, to: &str) {
    let path = proxy.dir.path().join("lbo-proxy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in\n{text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

async fn reload(proxy: &Proxy) {
    let admin = proxy.admin.unwrap();
    let mut tcp = TcpStream::connect(admin).await.unwrap();
    tcp.write_all(
        b"POST /-/reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).await.unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "reload refused: {text}");
}

/// Sends one request on a kept-alive connection and reads its whole response.
async fn ask(tcp: &mut TcpStream, head: &str) -> String {
    tcp.write_all(head.as_bytes()).await.unwrap();
    read_response(tcp).await
}

/// One response: its head, then its `Content-Length` body.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return String::from_utf8_lossy(&got).to_string();
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => return String::from_utf8_lossy(&got).to_string(),
        }
    }
}

/// A tunnel opened with CONNECT (and, when given, Basic credentials), its 200 read.
async fn tunnel(proxy: &Proxy, host: &str, port: u16, auth: Option<&str>) -> TcpStream {
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let auth = auth
        .map(|a| {
            use base64::Engine;
            let t = base64::engine::general_purpose::STANDARD.encode(a);
            format!("Proxy-Authorization: Basic {t}\r\n")
        })
        .unwrap_or_default();
    tcp.write_all(
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tcp
}

/// Whether a tunnel still carries a request to the origin behind it.
async fn alive(tcp: &mut TcpStream) -> bool {
    if tcp
        .write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    read_response(tcp).await.starts_with("HTTP/1.1 200")
}

/// The records whose `reason` is `policy_changed` (waits, bounded, for `n`).
async fn changed(proxy: &Proxy, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let recs: Vec<Value> = proxy
            .records(0)
            .await
            .into_iter()
            .filter(|r| r["reason"] == "policy_changed")
            .collect();
        if recs.len() >= n || std::time::Instant::now() > deadline {
            return recs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lab<'a>(
    dns: std::net::SocketAddr,
    origin: &Origin,
    parents: Vec<(&'a str, String)>,
    extra: &'a str,
) -> Lab<'a> {
    Lab {
        parents,
        extra,
        ..Lab::on(dns, origin.port())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_follows_every_reload() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let dns = dns_server(RECORDS).await;
    let proxy = Proxy::start(lab(
        dns,
        &origin,
        vec![("seccloud", squid.addr())],
        "[sni_check]\nmode = \"off\"",
    ))
    .await;
    let port = origin.port();
    let get =
        format!("GET http://a.direct.test:{port}/x HTTP/1.1\r\nHost: a.direct.test:{port}\r\n\r\n");
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(ask(&mut client, &get).await.starts_with("HTTP/1.1 200"));
    let direct_connections = origin.connection_count();
    // The category no longer holds a.direct.test: the same connection's next request,
    // a second later, goes to the security cloud; the kept direct connection is not used.
    set_direct(&proxy, &["b.direct.test"]);
    reload(&proxy).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ask(&mut client, &get).await.starts_with("HTTP/1.1 200"));
    assert!(squid.logged("a.direct.test"), "not sent through the parent");
    // A CONNECT on the same kept-alive connection is decided now too.
    client
        .write_all(
            format!("CONNECT a.direct.test:{port} HTTP/1.1\r\nHost: a.direct.test:{port}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let recs = proxy.records(3).await;
    let routes: Vec<(&str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or(""),
                r["route"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        routes[..2],
        [("GET", "direct"), ("GET", "upstream")],
        "{recs:#?}"
    );
    drop(client);
    let recs = proxy.records(3).await;
    assert_eq!(recs[2]["method"], "CONNECT");
    assert_eq!(recs[2]["route"], "upstream", "{:#?}", recs[2]);
    // Back to direct: a new direct connection, not the old kept one (gone with its policy).
    set_direct(&proxy, &["a.direct.test"]);
    reload(&proxy).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(ask(&mut client, &get).await.starts_with("HTTP/1.1 200"));
    assert!(origin.connection_count() > direct_connections);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_closes_exactly_the_tunnels_whose_route_changes() {
    let origin = Origin::start().await;
    let dns = dns_server(RECORDS).await;
    let proxy = Proxy::start(lab(dns, &origin, vec![], "[sni_check]\nmode = \"off\"")).await;
    set_direct(&proxy, &["a.direct.test", "b.direct.test"]);
    reload(&proxy).await;
    let port = origin.port();
    let before = scrape(proxy.admin.unwrap())
        .await
        .sum("lbo_request_end_total", &[("reason", "policy_changed")]);
    let mut a = tunnel(&proxy, "a.direct.test", port, None).await;
    let mut b = tunnel(&proxy, "b.direct.test", port, None).await;
    assert!(alive(&mut a).await && alive(&mut b).await);
    set_direct(&proxy, &["b.direct.test"]);
    reload(&proxy).await;
    let recs = changed(&proxy, 1).await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["target"], format!("a.direct.test:{port}"));
    assert_eq!(recs[0]["route"], "direct");
    assert_eq!(recs[0]["status"], 200);
    assert!(
        recs[0]["error"]
            .as_str()
            .unwrap()
            .contains("now goes upstream"),
        "{}",
        recs[0]
    );
    assert!(
        !alive(&mut a).await,
        "the tunnel whose route changed was closed"
    );
    assert!(alive(&mut b).await, "the unaffected tunnel relays on");
    let after = scrape(proxy.admin.unwrap())
        .await
        .sum("lbo_request_end_total", &[("reason", "policy_changed")]);
    assert!(after >= before + 1.0);
    // The address guard changed under a direct tunnel: closed too.
    edit_config(
        &proxy,
        "allow_internal = [\"127.0.0.1/32\"]",
        "allow_internal = [\"127.0.0.1/32\"]\ndeny_internal = [\"127.0.0.1/32\"]",
    );
    reload(&proxy).await;
    let recs = changed(&proxy, 2).await;
    assert!(
        recs[1]["error"].as_str().unwrap().contains("address guard"),
        "{:#?}",
        recs[1]
    );
    assert!(!alive(&mut b).await);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_users_and_clients_out_of_their_segment_lose_their_tunnels() {
    let origin = Origin::start().await;
    let dns = dns_server(RECORDS).await;
    let proxy = Proxy::start(lab(dns, &origin, vec![], "[sni_check]\nmode = \"off\"")).await;
    let users = proxy.dir.path().join("users");
    let alice = bcrypt::hash("alice-pw", 4).unwrap();
    std::fs::write(&users, format!("alice:{alice}\nbob:bob-pw\n")).unwrap();
    edit_config(
        &proxy,
        "profile = \"lab\"\n[timeouts]",
        &format!(
            "profile = \"lab\"\nauth_file = \"{}\"\n[timeouts]",
            users.display()
        ),
    );
    reload(&proxy).await;
    let port = origin.port();
    let mut a = tunnel(&proxy, "direct.test", port, Some("alice:alice-pw")).await;
    let mut b = tunnel(&proxy, "direct.test", port, Some("bob:bob-pw")).await;
    // A kept-alive connection of alice's, authenticating each request.
    let mut keep = TcpStream::connect(proxy.addr).await.unwrap();
    let cred = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("alice:alice-pw")
    };
    let get = format!("GET http://direct.test:{port}/ HTTP/1.1\r\nHost: direct.test:{port}\r\nProxy-Authorization: Basic {cred}\r\n\r\n");
    assert!(ask(&mut keep, &get).await.starts_with("HTTP/1.1 200"));
    std::fs::write(&users, "bob:bob-pw\n").unwrap();
    reload(&proxy).await;
    let recs = changed(&proxy, 1).await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert!(
        recs[0]["error"].as_str().unwrap().contains("user alice"),
        "{}",
        recs[0]
    );
    assert!(!alive(&mut a).await && alive(&mut b).await);
    assert!(
        ask(&mut keep, &get).await.starts_with("HTTP/1.1 407"),
        "alice's next request"
    );
    // The client's network leaves every segment: its tunnel goes as well.
    edit_config(
        &proxy,
        "networks = [\"127.0.0.0/8\"]",
        "networks = [\"10.0.0.0/8\"]",
    );
    reload(&proxy).await;
    let recs = changed(&proxy, 2).await;
    assert!(
        recs[1]["error"]
            .as_str()
            .unwrap()
            .contains("unknown_client"),
        "{:#?}",
        recs[1]
    );
    assert!(!alive(&mut b).await);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_that_changes_closes_the_tunnels_through_it() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let other = Squid::start(SQUID_HOSTS);
    let dns = dns_server(RECORDS).await;
    let proxy = Proxy::start(lab(dns, &origin, vec![("seccloud", squid.addr())], "")).await;
    set_direct(&proxy, &[]);
    reload(&proxy).await;
    let mut up = tunnel(&proxy, "a.direct.test", origin.port(), None).await;
    assert!(alive(&mut up).await);
    edit_config(&proxy, &squid.addr(), &other.addr());
    reload(&proxy).await;
    let recs = changed(&proxy, 1).await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["route"], "upstream");
    assert!(
        recs[0]["error"]
            .as_str()
            .unwrap()
            .contains("parent seccloud"),
        "{}",
        recs[0]
    );
    assert!(!alive(&mut up).await);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_open_tunnels_on_the_policy_they_opened_under() {
    let origin = Origin::start().await;
    let dns = dns_server(RECORDS).await;
    let proxy = Proxy::start(lab(
        dns,
        &origin,
        vec![],
        "[sni_check]\nmode = \"off\"\n[reload]\nopen_tunnels = \"keep\"",
    ))
    .await;
    let mut t = tunnel(&proxy, "a.direct.test", origin.port(), None).await;
    set_direct(&proxy, &["b.direct.test"]);
    reload(&proxy).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(&mut t).await);
    assert!(changed(&proxy, 0).await.is_empty());
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sni_check_turned_on_closes_unchecked_direct_tunnels() {
    let origin = Origin::start().await;
    let dns = dns_server(RECORDS).await;
    let proxy = Proxy::start(lab(dns, &origin, vec![], "[sni_check]\nmode = \"off\"")).await;
    let mut t = tunnel(&proxy, "a.direct.test", origin.port(), None).await;
    assert!(alive(&mut t).await);
    edit_config(&proxy, "mode = \"off\"", "mode = \"enforce\"");
    reload(&proxy).await;
    let recs = changed(&proxy, 1).await;
    assert!(
        recs[0]["error"].as_str().unwrap().contains("SNI check"),
        "{recs:#?}"
    );
    proxy.stop().await;
}

mod property {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 3] = ["a.direct.test", "b.direct.test", "c.direct.test"];

    /// One run: reloads to each policy in turn (which names break out); after each, every
    /// tunnel opened earlier is open exactly when its name still breaks out, and a new
    /// request on a connection kept since the start is decided as the policy now says.
    async fn run(policies: Vec<[bool; 3]>) -> Result<(), String> {
        let origin = Origin::start().await;
        let dns = dns_server(RECORDS).await;
        let proxy = Proxy::start(lab(dns, &origin, vec![], "[sni_check]\nmode = \"off\"")).await;
        let port = origin.port();
        let mut kept = TcpStream::connect(proxy.addr).await.unwrap();
        let mut open: Vec<(usize, TcpStream)> = Vec::new();
        let result = async {
            for (step, policy) in policies.iter().enumerate() {
                let names: Vec<&str> = NAMES
                    .iter()
                    .zip(policy)
                    .filter(|(_, d)| **d)
                    .map(|(n, _)| *n)
                    .collect();
                set_direct(&proxy, &names);
                reload(&proxy).await;
                let mut still = Vec::new();
                for (i, mut t) in open.drain(..) {
                    let up = alive(&mut t).await;
                    if up != policy[i] {
                        return Err(format!(
                            "step {step}: tunnel to {} open={up} under {policy:?}",
                            NAMES[i]
                        ));
                    }
                    if up {
                        still.push((i, t));
                    }
                }
                open = still;
                for (i, name) in NAMES.iter().enumerate() {
                    let get = format!(
                        "GET http://{name}:{port}/{step} HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n"
                    );
                    let resp = ask(&mut kept, &get).await;
                    let want = if policy[i] {
                        "HTTP/1.1 200"
                    } else {
                        "HTTP/1.1 503"
                    };
                    if !resp.starts_with(want) {
                        return Err(format!("step {step}: {name} under {policy:?}: {resp}"));
                    }
                    if policy[i] && !open.iter().any(|(j, _)| *j == i) {
                        open.push((i, tunnel(&proxy, name, port, None).await));
                    }
                }
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            for r in proxy.records(0).await {
                eprintln!("{r}");
            }
            eprintln!(
                "{}",
                std::fs::read_to_string(proxy.dir.path().join("allowlists/lab-direct.toml"))
                    .unwrap()
            );
        }
        proxy.stop().await;
        result
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

        #[test]
        fn no_request_or_tunnel_outlives_the_policy_it_was_decided_by(
            policies in proptest::collection::vec(any::<[bool; 3]>(), 2..5)
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            prop_assert_eq!(rt.block_on(run(policies)), Ok(()));
        }
    }
}
