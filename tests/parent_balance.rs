//! Choosing a parent, with two real Squid parents: `failover` uses the first that is up,
//! `round_robin` spreads tunnels by weight, `source_hash` keeps a client address on its
//! parent while that parent is up, moves only that parent's clients when it goes down,
//! and brings them back when it returns.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::readback::{is_up, last};
use support::{dns_server, Lab, Origin, Proxy, Squid};

const RECORDS: &[(&str, &str)] = &[("direct.test", "127.0.0.1")];
const SQUID_HOSTS: &[(&str, &str)] = &[("upstream.test", "127.0.0.1")];

fn parent(name: &str, address: &str, weight: u32) -> String {
    format!("[[upstream.parent]]\nname = \"{name}\"\naddress = \"{address}\"\nweight = {weight}\n")
}

/// A tunnel from source address `from`, and the parent its record names.
async fn via(proxy: &Proxy, origin: &Origin, from: &str, n: usize) -> String {
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "15",
            "-w",
            "%{http_connect}",
        ])
        .args(["--interface", from, "--proxytunnel", "-x", &proxy.url()])
        .arg(format!("http://upstream.test:{}/{n}", origin.port()))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "from {from}");
    last(proxy, n, "CONNECT").await["parent"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_tunnels_by_weight() {
    let origin = Origin::start().await;
    let (a, b) = (Squid::start(SQUID_HOSTS), Squid::start(SQUID_HOSTS));
    let extra = parent("rr-a", &a.addr(), 2) + &parent("rr-b", &b.addr(), 1);
    let proxy = Proxy::start(Lab {
        extra: &extra,
        upstream: "balance = \"round_robin\"\n",
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let mut order = Vec::new();
    for n in 1..=6 {
        order.push(via(&proxy, &origin, "127.0.0.1", n).await);
    }
    // Weight 2 and 1, spread out: a b a, a b a.
    assert_eq!(order, ["rr-a", "rr-b", "rr-a", "rr-a", "rr-b", "rr-a"]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_hash_keeps_a_client_on_its_parent_while_it_is_up() {
    let origin = Origin::start().await;
    let (a, mut b) = (Squid::start(SQUID_HOSTS), Squid::start(SQUID_HOSTS));
    let extra = parent("sh-a", &a.addr(), 1) + &parent("sh-b", &b.addr(), 1);
    let proxy = Proxy::start(Lab {
        extra: &extra,
        upstream: "balance = \"source_hash\"\nhealth_interval = \"200ms\"\n",
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let clients: Vec<String> = (10..26).map(|i| format!("127.0.0.{i}")).collect();
    let mut n = 0;
    let mut first = HashMap::new();
    for c in &clients {
        for _ in 0..2 {
            n += 1;
            let p = via(&proxy, &origin, c, n).await;
            let was = first.entry(c.clone()).or_insert_with(|| p.clone());
            assert_eq!(*was, p, "{c} moved from {was} to {p}");
        }
    }
    let on_b: Vec<&String> = clients.iter().filter(|c| first[*c] == "sh-b").collect();
    assert!(
        !on_b.is_empty() && on_b.len() < clients.len(),
        "one parent took every client: {first:?}"
    );

    // sh-b goes down: its clients move to sh-a, the others stay where they were.
    b.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while is_up(&proxy, "sh-b").await {
        assert!(Instant::now() < deadline, "sh-b was not marked down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in &clients {
        n += 1;
        assert_eq!(via(&proxy, &origin, c, n).await, "sh-a", "{c}");
    }
    // Back up: every client is on its own parent again.
    b.restart();
    while !is_up(&proxy, "sh-b").await {
        assert!(Instant::now() < deadline, "sh-b did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in &clients {
        n += 1;
        assert_eq!(via(&proxy, &origin, c, n).await, first[c], "{c}");
    }
    proxy.stop().await;
}
