//! The direct route's address guard, end to end: an allowlisted name whose AAAA answer
//! spells an internal IPv4 address the IPv6 way (NAT64, IPv4-compatible, -mapped, 6to4),
//! or is Teredo or local-use NAT64, is refused before any connect (403,
//! `internal_address`). Inside a network namespace this test creates, with loopback only,
//! so no IPv6 destination can leave the machine. Needs root and `ip`: without them it
//! fails.

mod support;

use support::netns::Netns;
use support::{curl, dns_server, Lab, Origin, Proxy};

const ANSWERS: &[(&str, &str)] = &[
    ("nat64.direct.test", "64:ff9b::a00:1"),
    ("nat64-loopback.direct.test", "64:ff9b::7f00:2"),
    ("local-nat64.direct.test", "64:ff9b:1::808:808"),
    ("compat.direct.test", "::a00:1"),
    ("mapped.direct.test", "::ffff:10.0.0.1"),
    ("translated.direct.test", "::ffff:0:a00:1"),
    ("sixtofour.direct.test", "2002:a00:1::1"),
    ("teredo.direct.test", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
    ("isatap.direct.test", "2603:1006::5efe:a00:1"),
    ("public-nat64.direct.test", "64:ff9b::1414:8001"),
];

#[test]
fn internal_addresses_in_ipv6_spellings_are_refused_before_any_connect() {
    let ns = Netns::create("guard");
    ns.block_on(scenario());
}

async fn scenario() {
    let origin = Origin::start().await;
    let dns = dns_server(ANSWERS).await;
    let proxy = Proxy::start(Lab {
        extra: "[sni_check]\nmode = \"off\"",
        ..Lab::on(dns, origin.port())
    })
    .await;
    let port = origin.port();
    for (name, _) in &ANSWERS[..ANSWERS.len() - 1] {
        let r = curl(&proxy, &format!("http://{name}:{port}/"), true).await;
        assert_eq!(r.connect, 403, "{name}: {r:?}");
    }
    // A public IPv4 address behind NAT64 passes the guard: the connect itself then fails
    // here (no route out of the namespace), which is what tells the two apart.
    let r = curl(
        &proxy,
        &format!("http://public-nat64.direct.test:{port}/"),
        true,
    )
    .await;
    assert_eq!(r.connect, 502, "{r:?}");
    let recs = proxy.records(ANSWERS.len()).await;
    for (rec, (name, _)) in recs.iter().zip(ANSWERS) {
        assert_eq!(rec["target"], format!("{name}:{port}"));
        let want = if name.starts_with("public") {
            "connect_failed"
        } else {
            "internal_address"
        };
        assert_eq!(rec["reason"], want, "{rec}");
        if want == "internal_address" {
            assert!(rec["server"].is_null(), "{rec}");
        }
    }
    proxy.stop().await;
}
