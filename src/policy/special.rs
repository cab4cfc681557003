//! Addresses that are never the public internet, and the IPv6 spellings that carry an IPv4
//! address inside them. Pure data and pure functions: the direct route's address guard
//! decides with them, and `check` and the audit explain what an `allow_internal` range
//! opens with the same table.
//!
//! The table follows IANA's IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890):
//! every entry that is not globally reachable is refused, the more specific entries that
//! are (PCP and TURN anycast, AMT, ORCHIDv2…) are let through. Multicast, IPv4's reserved
//! block and IPv6 outside global unicast (`2000::/3`) are refused as well: no server on
//! the internet answers there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// One range of the built-in table: what it is, and whether the internet can be there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Special {
    pub range: &'static str,
    pub name: &'static str,
    /// Globally reachable (a more specific entry inside a refused one).
    pub reachable: bool,
}

const fn refused(range: &'static str, name: &'static str) -> Special {
    Special {
        range,
        name,
        reachable: false,
    }
}

const fn reachable(range: &'static str, name: &'static str) -> Special {
    Special {
        range,
        name,
        reachable: true,
    }
}

/// The built-in table, most specific entries winning. IPv6 forms that embed an IPv4
/// address (IPv4-mapped and -compatible, the NAT64 well-known prefix, 6to4, SIIT) are not
/// listed: they are judged as the IPv4 address they carry ([`embedded_ipv4`]).
pub const SPECIAL: &[Special] = &[
    refused("0.0.0.0/8", "\"This network\" (RFC 791)"),
    refused("10.0.0.0/8", "Private-Use (RFC 1918)"),
    refused("100.64.0.0/10", "Shared Address Space, CGNAT (RFC 6598)"),
    refused("127.0.0.0/8", "Loopback (RFC 1122)"),
    refused("169.254.0.0/16", "Link Local (RFC 3927)"),
    refused("172.16.0.0/12", "Private-Use (RFC 1918)"),
    refused("192.0.0.0/24", "IETF Protocol Assignments (RFC 6890)"),
    reachable("192.0.0.9/32", "Port Control Protocol Anycast (RFC 7723)"),
    reachable(
        "192.0.0.10/32",
        "Traversal Using Relays around NAT Anycast (RFC 8155)",
    ),
    refused("192.0.2.0/24", "Documentation, TEST-NET-1 (RFC 5737)"),
    refused("192.88.99.0/24", "Deprecated 6to4 Relay Anycast (RFC 7526)"),
    refused("192.168.0.0/16", "Private-Use (RFC 1918)"),
    refused("198.18.0.0/15", "Benchmarking (RFC 2544)"),
    refused("198.51.100.0/24", "Documentation, TEST-NET-2 (RFC 5737)"),
    refused("203.0.113.0/24", "Documentation, TEST-NET-3 (RFC 5737)"),
    refused("224.0.0.0/4", "Multicast (RFC 5771)"),
    refused(
        "240.0.0.0/4",
        "Reserved, and Limited Broadcast (RFC 1112, RFC 919)",
    ),
    refused("::/8", "Reserved by IETF: unspecified, loopback (RFC 4291)"),
    refused(
        "64:ff9b:1::/48",
        "Local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    refused("100::/64", "Discard-Only (RFC 6666)"),
    refused("100:0:0:1::/64", "Dummy IPv6 Prefix (RFC 9780)"),
    refused("2001::/23", "IETF Protocol Assignments (RFC 2928)"),
    refused(
        "2001::/32",
        "Teredo (RFC 4380): carries another host's IPv4 address",
    ),
    reachable("2001:1::1/128", "Port Control Protocol Anycast (RFC 7723)"),
    reachable(
        "2001:1::2/128",
        "Traversal Using Relays around NAT Anycast (RFC 8155)",
    ),
    reachable(
        "2001:1::3/128",
        "DNS-SD Service Registration Protocol Anycast (RFC 9665)",
    ),
    refused("2001:2::/48", "Benchmarking (RFC 5180)"),
    reachable("2001:3::/32", "AMT (RFC 7450)"),
    reachable("2001:4:112::/48", "AS112-v6 (RFC 7535)"),
    refused("2001:10::/28", "Deprecated ORCHID (RFC 4843)"),
    reachable("2001:20::/28", "ORCHIDv2 (RFC 7343)"),
    reachable("2001:30::/28", "Drone Remote ID Entity Tags (RFC 9374)"),
    refused("2001:db8::/32", "Documentation (RFC 3849)"),
    refused("3fff::/20", "Documentation (RFC 9637)"),
    refused("5f00::/16", "Segment Routing (SRv6) SIDs (RFC 9602)"),
    refused("fc00::/7", "Unique-Local (RFC 4193)"),
    refused("fe80::/10", "Link-Local Unicast (RFC 4291)"),
    refused("fec0::/10", "Deprecated Site-Local (RFC 3879)"),
    refused("ff00::/8", "Multicast (RFC 4291)"),
];

/// IPv6 outside global unicast (`2000::/3`) and outside every entry above is IETF
/// reserved space: never an internet server.
pub const RESERVED_V6: &str = "Outside IPv6 global unicast 2000::/3 (RFC 4291)";

/// How an IPv6 address carries an IPv4 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d` (RFC 4291): a dual-stack socket connects to the IPv4 address.
    Mapped,
    /// `::a.b.c.d`, deprecated IPv4-compatible (RFC 4291).
    Compatible,
    /// `::ffff:0:a.b.c.d`, SIIT's IPv4-translated form (RFC 2765).
    Translated,
    /// `64:ff9b::a.b.c.d`, NAT64's well-known prefix (RFC 6052): the translator connects
    /// to the IPv4 address.
    Nat64,
    /// `2002:AABB:CCDD::/48` (RFC 3056): the site behind the IPv4 address.
    SixToFour,
    /// An ISATAP interface identifier `::0:5efe:a.b.c.d` or `::200:5efe:a.b.c.d` (RFC 5214):
    /// the tunnel ends at the IPv4 address, inside the site that routes the prefix.
    Isatap,
}

impl Embedding {
    pub fn as_str(self) -> &'static str {
        match self {
            Embedding::Mapped => "IPv4-mapped",
            Embedding::Compatible => "IPv4-compatible",
            Embedding::Translated => "IPv4-translated",
            Embedding::Nat64 => "NAT64",
            Embedding::SixToFour => "6to4",
            Embedding::Isatap => "ISATAP",
        }
    }

    /// The IPv6 address stands for the IPv4 one alone (its own prefix means nothing);
    /// false for ISATAP, where the prefix is routed as well.
    pub fn transparent(self) -> bool {
        !matches!(self, Embedding::Isatap)
    }
}

/// The IPv4 address an IPv6 address carries, and how.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Ipv4Addr, Embedding)> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some((low, Embedding::Mapped)),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some((low, Embedding::Translated)),
        // `::` and `::1` are the unspecified and loopback addresses, refused by the table.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some((low, Embedding::Compatible)),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some((low, Embedding::Nat64)),
        [0x2002, a, b, ..] => Some((
            Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8),
            Embedding::SixToFour,
        )),
        [_, _, _, _, 0 | 0x200, 0x5efe, _, _] => Some((low, Embedding::Isatap)),
        _ => None,
    }
}

/// The most specific built-in entry an address falls in, if any; of a refused and a
/// reachable entry of the same length, the refused one.
pub fn special_of(ip: IpAddr) -> Option<&'static Special> {
    SPECIAL
        .iter()
        .filter_map(|s| s.range.parse::<IpNet>().ok().map(|net| (net, s)))
        .filter(|(net, _)| net.contains(&ip))
        .max_by_key(|(net, s)| (net.prefix_len(), !s.reachable))
        .map(|(_, s)| s)
}

/// Why the built-in table refuses an IPv4 or IPv6 address that embeds none, or `None`
/// when the internet can be there.
pub fn builtin_refusal(ip: IpAddr) -> Option<&'static str> {
    if let Some(s) = special_of(ip) {
        return (!s.reachable).then_some(s.name);
    }
    match ip {
        IpAddr::V6(v6) if v6.segments()[0] & 0xe000 != 0x2000 => Some(RESERVED_V6),
        _ => None,
    }
}

/// Every built-in range, parsed (the table is checked by the tests).
pub fn refused_ranges() -> impl Iterator<Item = (IpNet, &'static Special)> {
    SPECIAL
        .iter()
        .filter(|s| !s.reachable)
        .filter_map(|s| s.range.parse::<IpNet>().ok().map(|net| (net, s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_parses_and_is_normalised() {
        for s in SPECIAL {
            let net: IpNet = s.range.parse().unwrap();
            assert_eq!(net.trunc(), net, "{}", s.range);
        }
    }

    #[test]
    fn finds_the_ipv4_inside() {
        let cases = [
            ("::ffff:10.0.0.1", "10.0.0.1", Embedding::Mapped),
            ("::a00:1", "10.0.0.1", Embedding::Compatible),
            ("::ffff:0:a00:1", "10.0.0.1", Embedding::Translated),
            ("64:ff9b::a00:1", "10.0.0.1", Embedding::Nat64),
            ("2002:a00:1::1", "10.0.0.1", Embedding::SixToFour),
            ("2002:0808:0808:1234::5", "8.8.8.8", Embedding::SixToFour),
            ("2001:db8::5efe:a00:1", "10.0.0.1", Embedding::Isatap),
            ("2a00:1::200:5efe:808:808", "8.8.8.8", Embedding::Isatap),
        ];
        for (v6, v4, how) in cases {
            let got = embedded_ipv4(v6.parse().unwrap());
            assert_eq!(got, Some((v4.parse().unwrap(), how)), "{v6}");
        }
        for none in [
            "::",
            "::1",
            "2603:1006::1",
            "64:ff9b:1::a00:1",
            "2001::a00:1",
        ] {
            assert_eq!(embedded_ipv4(none.parse().unwrap()), None, "{none}");
        }
    }

    #[test]
    fn more_specific_reachable_entries_win() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(builtin_refusal(ip("192.0.0.9")), None);
        assert!(builtin_refusal(ip("192.0.0.8")).is_some());
        assert_eq!(builtin_refusal(ip("2001:3::1")), None);
        assert!(builtin_refusal(ip("2001:5::1")).is_some());
        assert_eq!(builtin_refusal(ip("4000::1")), Some(RESERVED_V6));
        assert_eq!(builtin_refusal(ip("2603:1006::1")), None);
    }
}
