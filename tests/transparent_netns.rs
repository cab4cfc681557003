//! The transparent TLS listener behind a real nftables `redirect`, in a network namespace
//! the test creates (loopback only, nothing of the host's networks): the original
//! destination comes back through `SO_ORIGINAL_DST`. Needs root, `ip` and `nft`
//! (scripts/test installs them; CI runs as root): without them it fails.

mod support;

use support::netns::Netns;
use support::tls::client_hello;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{dns_server, Lab, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[test]
fn redirected_port_443_keeps_its_original_destination() {
    assert!(
        std::path::Path::new("/usr/sbin/nft").exists(),
        "nft is missing: scripts/test installs nftables"
    );
    let ns = Netns::create("transparent");
    let name = ns.0.clone();
    // Every socket of this test is made on this one thread, inside the namespace.
    ns.within(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(scenario(name))
    });
}

async fn scenario(ns: String) {
    // The origin really listens on 443; clients aim at 127.0.0.2:443, which nftables
    // redirects to the transparent listener (the proxy's own connection to 127.0.0.1:443
    // is left alone).
    let origin = TcpListener::bind("127.0.0.1:443").await.unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = origin.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = tcp.read(&mut chunk).await {
                    sink.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            });
        }
    });
    let dns = dns_server(&[("direct.test", "127.0.0.1")]).await;
    // `tls_port = 9`: only the original destination can say 443.
    let proxy = Proxy::start(Lab {
        extra: "[transparent]\ntls_listen = [\"127.0.0.1:0\"]\ntls_port = 9\n",
        ..Lab::on(dns, 443)
    })
    .await;
    let port = proxy.transparent_tls[0].port();
    let rules = format!(
        "table ip lbotest {{\n chain out {{\n  type nat hook output priority -100\n  \
         ip daddr 127.0.0.2 tcp dport 443 redirect to :{port}\n }}\n}}\n"
    );
    support::netns::run_in(&ns, "nft", &["-f", "-"], Some(&rules));

    let hello = client_hello("direct.test");
    let mut tcp = TcpStream::connect("127.0.0.2:443").await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.lock().unwrap().len() < hello.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *got.lock().unwrap(),
        hello,
        "the ClientHello did not reach :443"
    );
    drop(tcp);
    let rec = proxy.records(1).await[0].clone();
    assert_eq!(rec["target"], "direct.test:443");
    assert_eq!(rec["route"], "direct");

    // No SNI: the original destination itself is the target (not allowlisted, no parent).
    let mut tcp = TcpStream::connect("127.0.0.2:443").await.unwrap();
    tcp.write_all(&client_hello("127.0.0.2")).await.unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    let rec = proxy.records(2).await[1].clone();
    assert_eq!(rec["target"], "127.0.0.2:443");
    assert_eq!(rec["target_from"], "sni");
    assert_eq!(rec["reason"], "no_parent");
    proxy.stop().await;
}
