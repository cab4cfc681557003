//! The appliance image's firewall (`image/rootfs/etc/nftables.conf` with its site file),
//! checked by nftables' own parser and then exercised in network namespaces this test
//! creates: an appliance with an LGWAN leg and an LBO line, a PC and an admin PC on the
//! LGWAN side, the internet on the LBO side. Each side reaches exactly what the rules say,
//! and nothing arrives new from the internet whatever its source address claims. Needs
//! root, `ip` and `nft` (scripts/test installs them; CI runs as root): without them it
//! fails.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::netns::{link, Netns};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The shipped rule set, its include pointed at `site` (the file first boot fills in).
fn rules(dir: &Path, site: &str) -> PathBuf {
    let conf =
        std::fs::read_to_string(Path::new(ROOT).join("image/rootfs/etc/nftables.conf")).unwrap();
    let site_path = dir.join("lbo-site.nft");
    std::fs::write(&site_path, site).unwrap();
    let conf = conf.replace(
        "include \"/etc/nftables.d/lbo-site.nft\"",
        &format!("include \"{}\"", site_path.display()),
    );
    assert!(
        conf.contains(&site_path.display().to_string()),
        "the include moved"
    );
    let path = dir.join("nftables.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn nft_path() -> &'static str {
    ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nft is missing: scripts/test installs nftables")
}

#[test]
fn the_shipped_rules_and_the_boot_test_site_pass_nft_check() {
    let ns = Netns::create("fwcheck");
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(Path::new(ROOT).join("image/rootfs/etc/nftables.d/lbo-site.nft"))
            .unwrap();
    let boot_test =
        std::fs::read_to_string(Path::new(ROOT).join("image/boot-test/lbo-site.nft")).unwrap();
    for site in [shipped.as_str(), boot_test.as_str()] {
        let conf = rules(dir.path(), site);
        let path = conf.display().to_string();
        let (ok, out) = ns.try_run(nft_path(), &["-c", "-f", &path], None);
        assert!(ok, "nft -c refused the rules:\n{out}\n--- site ---\n{site}");
    }
    // A typo in the site file is caught by the same check.
    let conf = rules(
        dir.path(),
        "add element inet filter lgwan_ifz { \"ens3\" }\n",
    );
    let (ok, _) = ns.try_run(nft_path(), &["-c", "-f", &conf.display().to_string()], None);
    assert!(!ok, "nft -c accepted a set that does not exist");
}

/// Whether a TCP connection from `from` (bound there) reaches `to` within a second and a
/// half (a dropped SYN never answers). Run on a thread inside the client's namespace.
fn reaches(from: &str, to: SocketAddr) -> bool {
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(from).unwrap();
        matches!(
            tokio::time::timeout(Duration::from_millis(1500), socket.connect(to)).await,
            Ok(Ok(_))
        )
    })
}

#[test]
fn each_side_reaches_what_the_rules_say_and_the_internet_nothing() {
    let appliance = Netns::create("fwapp");
    let lgwan = Netns::create("fwlan");
    let internet = Netns::create("fwnet");
    link(&appliance, "lgwan0", &lgwan, "eth0");
    link(&appliance, "lbo0", &internet, "eth0");
    // Documentation ranges, inside these namespaces only.
    appliance.run(
        "ip",
        &["addr", "add", "192.0.2.1/24", "dev", "lgwan0"],
        None,
    );
    appliance.run(
        "ip",
        &["addr", "add", "198.51.100.1/24", "dev", "lbo0"],
        None,
    );
    lgwan.run("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth0"], None);
    lgwan.run("ip", &["addr", "add", "192.0.2.50/24", "dev", "eth0"], None);
    internet.run(
        "ip",
        &["addr", "add", "198.51.100.2/24", "dev", "eth0"],
        None,
    );
    // The internet pretends to be the admin network.
    internet.run("ip", &["addr", "add", "192.0.2.60/32", "dev", "eth0"], None);
    internet.run(
        "ip",
        &["route", "add", "192.0.2.0/24", "via", "198.51.100.1"],
        None,
    );

    let dir = tempfile::tempdir().unwrap();
    let site = "add element inet filter lgwan_ifs { \"lgwan0\" }\n\
                add element inet filter lbo_ifs { \"lbo0\" }\n\
                add element inet filter admin_v4 { 192.0.2.48/28 }\n";
    let conf = rules(dir.path(), site);
    appliance.run(nft_path(), &["-f", &conf.display().to_string()], None);

    // The appliance's services: the proxy, admin and SSH ports, on every address.
    let listeners = appliance
        .within(|| [3128u16, 9090, 22].map(|port| TcpListener::bind(("0.0.0.0", port)).unwrap()));
    let lgwan_side = |port| SocketAddr::from(([192, 0, 2, 1], port));
    let lbo_side = |port| SocketAddr::from(([198, 51, 100, 1], port));

    let pc = lgwan.within(move || [3128, 9090, 22].map(|p| reaches("192.0.2.2", lgwan_side(p))));
    assert_eq!(pc, [true, false, false], "a PC: the proxy port only");
    let admin =
        lgwan.within(move || [3128, 9090, 22].map(|p| reaches("192.0.2.50", lgwan_side(p))));
    assert_eq!(
        admin,
        [true, true, true],
        "the admin network: admin port and SSH too"
    );
    let outside = internet.within(move || {
        let direct = [3128, 9090, 22].map(|p| reaches("198.51.100.2", lbo_side(p)));
        let across = [3128, 9090, 22].map(|p| reaches("198.51.100.2", lgwan_side(p)));
        let spoofed = [3128, 9090, 22].map(|p| reaches("192.0.2.60", lbo_side(p)));
        (direct, across, spoofed)
    });
    assert_eq!(
        outside,
        ([false; 3], [false; 3], [false; 3]),
        "the LBO line: nothing new, whatever the source"
    );
    drop(listeners);
}
