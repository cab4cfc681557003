//! Every entry of IANA's IPv4 and IPv6 Special-Purpose Address Registries with the guard's
//! verdict. Taken from the registries as IANA publishes them: the IPv6 registry last
//! updated 2025-10-09 (25 entries, the newest the Dummy IPv6 Prefix of 2025-04), the IPv4
//! registry with its 25 entries (the newest allocated 2017-02). An entry IANA marks
//! globally reachable is let through; every other one (false, N/A, or terminated) is
//! refused, except 6to4, which is judged as the IPv4 address it carries. Each entry is
//! probed at its first and last address, and at an address inside that no more specific
//! entry covers.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Allow,
    Refuse,
    /// Judged as the embedded IPv4 address: refused for an internal one, allowed for a
    /// public one (the probes give both).
    AsIpv4,
}

/// (block, IANA's name, IANA's "Globally Reachable", verdict, probes).
type Entry = (
    &'static str,
    &'static str,
    &'static str,
    Want,
    &'static [&'static str],
);

const IPV4: &[Entry] = &[
    (
        "0.0.0.0/8",
        "\"This network\"",
        "False",
        Want::Refuse,
        &["0.0.0.1", "0.255.255.255"],
    ),
    (
        "0.0.0.0/32",
        "\"This host on this network\"",
        "False",
        Want::Refuse,
        &["0.0.0.0"],
    ),
    (
        "10.0.0.0/8",
        "Private-Use",
        "False",
        Want::Refuse,
        &["10.0.0.0", "10.255.255.255"],
    ),
    (
        "100.64.0.0/10",
        "Shared Address Space",
        "False",
        Want::Refuse,
        &["100.64.0.0", "100.127.255.255"],
    ),
    (
        "127.0.0.0/8",
        "Loopback",
        "False",
        Want::Refuse,
        &["127.0.0.1", "127.255.255.255"],
    ),
    (
        "169.254.0.0/16",
        "Link Local",
        "False",
        Want::Refuse,
        &["169.254.0.0", "169.254.169.254", "169.254.255.255"],
    ),
    (
        "172.16.0.0/12",
        "Private-Use",
        "False",
        Want::Refuse,
        &["172.16.0.0", "172.31.255.255"],
    ),
    (
        "192.0.0.0/24",
        "IETF Protocol Assignments",
        "False",
        Want::Refuse,
        &["192.0.0.11", "192.0.0.255"],
    ),
    (
        "192.0.0.0/29",
        "IPv4 Service Continuity Prefix",
        "False",
        Want::Refuse,
        &["192.0.0.0", "192.0.0.7"],
    ),
    (
        "192.0.0.8/32",
        "IPv4 dummy address",
        "False",
        Want::Refuse,
        &["192.0.0.8"],
    ),
    (
        "192.0.0.9/32",
        "Port Control Protocol Anycast",
        "True",
        Want::Allow,
        &["192.0.0.9"],
    ),
    (
        "192.0.0.10/32",
        "Traversal Using Relays around NAT Anycast",
        "True",
        Want::Allow,
        &["192.0.0.10"],
    ),
    (
        "192.0.0.170/32, 192.0.0.171/32",
        "NAT64/DNS64 Discovery",
        "False",
        Want::Refuse,
        &["192.0.0.170", "192.0.0.171"],
    ),
    (
        "192.0.2.0/24",
        "Documentation (TEST-NET-1)",
        "False",
        Want::Refuse,
        &["192.0.2.0", "192.0.2.255"],
    ),
    (
        "192.31.196.0/24",
        "AS112-v4",
        "True",
        Want::Allow,
        &["192.31.196.0", "192.31.196.255"],
    ),
    (
        "192.52.193.0/24",
        "AMT",
        "True",
        Want::Allow,
        &["192.52.193.0", "192.52.193.255"],
    ),
    (
        "192.88.99.0/24",
        "Deprecated (6to4 Relay Anycast)",
        "(terminated 2015-03)",
        Want::Refuse,
        &["192.88.99.0", "192.88.99.255"],
    ),
    (
        "192.88.99.2/32",
        "6a44-relay anycast address",
        "False",
        Want::Refuse,
        &["192.88.99.2"],
    ),
    (
        "192.168.0.0/16",
        "Private-Use",
        "False",
        Want::Refuse,
        &["192.168.0.0", "192.168.255.255"],
    ),
    (
        "192.175.48.0/24",
        "Direct Delegation AS112 Service",
        "True",
        Want::Allow,
        &["192.175.48.0", "192.175.48.255"],
    ),
    (
        "198.18.0.0/15",
        "Benchmarking",
        "False",
        Want::Refuse,
        &["198.18.0.0", "198.19.255.255"],
    ),
    (
        "198.51.100.0/24",
        "Documentation (TEST-NET-2)",
        "False",
        Want::Refuse,
        &["198.51.100.0", "198.51.100.255"],
    ),
    (
        "203.0.113.0/24",
        "Documentation (TEST-NET-3)",
        "False",
        Want::Refuse,
        &["203.0.113.0", "203.0.113.255"],
    ),
    (
        "240.0.0.0/4",
        "Reserved",
        "False",
        Want::Refuse,
        &["240.0.0.0", "254.255.255.255"],
    ),
    (
        "255.255.255.255/32",
        "Limited Broadcast",
        "False",
        Want::Refuse,
        &["255.255.255.255"],
    ),
];

const IPV6: &[Entry] = &[
    (
        "::1/128",
        "Loopback Address",
        "False",
        Want::Refuse,
        &["::1"],
    ),
    (
        "::/128",
        "Unspecified Address",
        "False",
        Want::Refuse,
        &["::"],
    ),
    (
        "::ffff:0:0/96",
        "IPv4-mapped Address",
        "False",
        Want::AsIpv4,
        &["::ffff:10.0.0.1", "::ffff:127.0.0.1", "::ffff:20.190.128.1"],
    ),
    (
        "64:ff9b::/96",
        "IPv4-IPv6 Translat.",
        "True",
        Want::AsIpv4,
        &["64:ff9b::a00:1", "64:ff9b::c0a8:101", "64:ff9b::1414:8001"],
    ),
    (
        "64:ff9b:1::/48",
        "IPv4-IPv6 Translat.",
        "False",
        Want::Refuse,
        &[
            "64:ff9b:1::",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        ],
    ),
    (
        "100::/64",
        "Discard-Only Address Block",
        "False",
        Want::Refuse,
        &["100::", "100::ffff:ffff:ffff:ffff"],
    ),
    (
        "100:0:0:1::/64",
        "Dummy IPv6 Prefix",
        "False",
        Want::Refuse,
        &["100:0:0:1::", "100:0:0:1:ffff:ffff:ffff:ffff"],
    ),
    (
        "2001::/23",
        "IETF Protocol Assignments",
        "False",
        Want::Refuse,
        &["2001:100::1", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "2001::/32",
        "TEREDO",
        "N/A",
        Want::Refuse,
        &[
            "2001::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
        ],
    ),
    (
        "2001:1::1/128",
        "Port Control Protocol Anycast",
        "True",
        Want::Allow,
        &["2001:1::1"],
    ),
    (
        "2001:1::2/128",
        "Traversal Using Relays around NAT Anycast",
        "True",
        Want::Allow,
        &["2001:1::2"],
    ),
    (
        "2001:1::3/128",
        "DNS-SD Service Registration Protocol Anycast",
        "True",
        Want::Allow,
        &["2001:1::3"],
    ),
    (
        "2001:2::/48",
        "Benchmarking",
        "False",
        Want::Refuse,
        &["2001:2::", "2001:2:0:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "2001:3::/32",
        "AMT",
        "True",
        Want::Allow,
        &["2001:3::", "2001:3:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "2001:4:112::/48",
        "AS112-v6",
        "True",
        Want::Allow,
        &["2001:4:112::", "2001:4:112:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "2001:10::/28",
        "Deprecated (previously ORCHID)",
        "(terminated 2014-03)",
        Want::Refuse,
        &["2001:10::", "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "2001:20::/28",
        "ORCHIDv2",
        "True",
        Want::Allow,
        &["2001:20::", "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "2001:30::/28",
        "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
        "True",
        Want::Allow,
        &["2001:30::", "2001:3f:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "2001:db8::/32",
        "Documentation",
        "False",
        Want::Refuse,
        &["2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "2002::/16",
        "6to4",
        "N/A",
        Want::AsIpv4,
        &["2002:a00:1::", "2002:c0a8:101:ffff::1", "2002:1414:8001::1"],
    ),
    (
        "2620:4f:8000::/48",
        "Direct Delegation AS112 Service",
        "True",
        Want::Allow,
        &["2620:4f:8000::", "2620:4f:8000:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "3fff::/20",
        "Documentation",
        "False",
        Want::Refuse,
        &["3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "5f00::/16",
        "Segment Routing (SRv6) SIDs",
        "False",
        Want::Refuse,
        &["5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "fc00::/7",
        "Unique-Local",
        "False",
        Want::Refuse,
        &["fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
    (
        "fe80::/10",
        "Link-Local Unicast",
        "False",
        Want::Refuse,
        &["fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ),
];

/// The verdict an embedded probe must get: that of its IPv4 address.
fn as_ipv4_verdict(g: &AddressGuard, probe: IpAddr) -> bool {
    let IpAddr::V6(v6) = probe else {
        return g.allows(probe);
    };
    let (v4, _) = special::embedded_ipv4(v6).expect("an embedded form");
    g.allows(IpAddr::V4(v4))
}

#[test]
fn every_registry_entry_has_its_verdict() {
    let g = AddressGuard::new(&[], &[]);
    assert_eq!(
        (IPV4.len(), IPV6.len()),
        (25, 25),
        "both registries list 25 entries"
    );
    let mut wrong = Vec::new();
    for (block, name, global, want, probes) in IPV4.iter().chain(IPV6) {
        for probe in *probes {
            let ip: IpAddr = probe.parse().unwrap();
            let allowed = g.allows(ip);
            let expected = match want {
                Want::Allow => true,
                Want::Refuse => false,
                Want::AsIpv4 => as_ipv4_verdict(&g, ip),
            };
            // Each probe lies inside its entry's block.
            let inside = block
                .split(", ")
                .any(|b| b.parse::<IpNet>().unwrap().contains(&ip));
            if allowed != expected || !inside {
                wrong.push(format!("{block} {name} (globally reachable: {global}): {probe} allowed={allowed} inside={inside}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The embedded probes above cover both verdicts.
    for p in ["::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::"] {
        assert!(!g.allows(p.parse().unwrap()), "{p}");
    }
    for p in [
        "::ffff:20.190.128.1",
        "64:ff9b::1414:8001",
        "2002:1414:8001::1",
    ] {
        assert!(g.allows(p.parse().unwrap()), "{p}");
    }
}

/// Outside the registries: multicast, deprecated site-local, IPv6 outside global unicast,
/// and the other IPv6 spellings of an IPv4 address.
#[test]
fn outside_the_registries_too() {
    let g = AddressGuard::new(&[], &[]);
    for p in [
        "224.0.0.1",
        "239.255.255.255",
        "ff02::1",
        "fec0::1",
        "4000::1",
        "::a00:1",
        "::ffff:0:a00:1",
        "2001:db8::5efe:a00:1",
        "2a00::200:5efe:a00:1",
    ] {
        assert!(!g.allows(p.parse().unwrap()), "{p}");
    }
}

mod embedded {
    use super::*;
    use proptest::prelude::*;

    /// Every IPv6 spelling of an IPv4 address that stands for it alone.
    fn spellings(v4: std::net::Ipv4Addr, tail: u64) -> Vec<IpAddr> {
        let [a, b, c, d] = v4.octets();
        let hi = u16::from_be_bytes([a, b]);
        let lo = u16::from_be_bytes([c, d]);
        let mut out = vec![
            IpAddr::V6(v4.to_ipv6_mapped()),
            format!("::ffff:0:{hi:x}:{lo:x}").parse().unwrap(),
            format!("64:ff9b::{hi:x}:{lo:x}").parse().unwrap(),
            format!(
                "2002:{hi:x}:{lo:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
                (tail >> 48) as u16,
                (tail >> 32) as u16,
                (tail >> 16) as u16,
                tail as u16,
                (tail >> 8) as u16
            )
            .parse()
            .unwrap(),
        ];
        // `::` and `::1` are themselves, not IPv4-compatible forms.
        if u32::from(v4) > 1 {
            out.push(format!("::{hi:x}:{lo:x}").parse().unwrap());
        }
        out
    }

    fn net() -> impl Strategy<Value = IpNet> {
        (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
            IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(a), len)
                    .unwrap()
                    .trunc(),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the allow and deny lists, an embedded spelling gets the verdict of the
        /// IPv4 address it carries; the local-use NAT64 prefix and Teredo are refused.
        #[test]
        fn embedded_forms_are_their_ipv4(
            v4 in any::<u32>().prop_map(std::net::Ipv4Addr::from),
            tail in any::<u64>(),
            allow in proptest::collection::vec(net(), 0..3),
            deny in proptest::collection::vec(net(), 0..2),
        ) {
            let g = AddressGuard::new(&allow, &deny);
            let want = g.allows(IpAddr::V4(v4));
            for form in spellings(v4, tail) {
                prop_assert_eq!(g.allows(form), want, "{} for {}", form, v4);
            }
            let [a, b, c, d] = v4.octets();
            let local: IpAddr = format!("64:ff9b:1::{:x}:{:x}", u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])).parse().unwrap();
            let teredo: IpAddr = format!("2001:0:{:x}:{:x}::1", u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])).parse().unwrap();
            let plain = AddressGuard::new(&[], &[]);
            prop_assert!(!plain.allows(local));
            prop_assert!(!plain.allows(teredo));
        }
    }
}
