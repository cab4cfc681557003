//! The address guard: a local breakout never goes to an internal address, even when an
//! allowlisted name resolves there (DNS rebinding, a poisoned or split-horizon resolver,
//! a stale record). Pure: an address in, allowed or refused out.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::policy::network::PrefixTable;

/// Ranges that are never the public internet: private, loopback, link-local, CGNAT,
/// multicast, documentation, benchmarking, reserved, and their IPv6 counterparts.
pub const INTERNAL_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Allow,
    Refuse,
}

/// Decides whether the direct route may connect to an address.
pub struct AddressGuard {
    table: PrefixTable<Verdict>,
}

impl AddressGuard {
    /// `allow` opens chosen internal ranges (labs, tests); `deny` adds the municipality's
    /// own ranges. The most specific range wins; of equals, a refusal.
    pub fn new(allow: &[IpNet], deny: &[IpNet]) -> AddressGuard {
        let deny = deny.iter().map(|net| (*net, Verdict::Refuse));
        let allow = allow.iter().map(|net| (*net, Verdict::Allow));
        let internal = INTERNAL_RANGES
            .iter()
            .filter_map(|range| range.parse::<IpNet>().ok())
            .map(|net| (net, Verdict::Refuse));
        let table: PrefixTable<Verdict> = deny.chain(allow).chain(internal).collect();
        AddressGuard { table }
    }

    /// True when a direct connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let mut best: Option<(u8, Verdict)> = None;
        for (len, v) in self.table.lookup(ip) {
            match best {
                None => best = Some((len, *v)),
                Some((l, _)) if l == len && *v == Verdict::Refuse => best = Some((len, *v)),
                _ => break,
            }
        }
        !matches!(best, Some((_, Verdict::Refuse)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow: &[&str], deny: &[&str]) -> AddressGuard {
        let p = |l: &[&str]| l.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>();
        AddressGuard::new(&p(allow), &p(deny))
    }

    #[test]
    fn refuses_internal_addresses() {
        let g = guard(&[], &[]);
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!g.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "20.190.128.1",
            "172.32.0.1",
            "100.128.0.1",
            "2603:1006::1",
            "8.8.8.8",
        ] {
            assert!(g.allows(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allow_opens_only_the_chosen_range() {
        let g = guard(&["127.0.0.1/32"], &[]);
        assert!(g.allows("127.0.0.1".parse().unwrap()));
        assert!(!g.allows("127.0.0.2".parse().unwrap()));
        assert!(!g.allows("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn deny_adds_ranges_and_wins_ties() {
        let g = guard(&["127.0.0.0/8"], &["203.0.112.0/24", "127.0.0.0/8"]);
        assert!(!g.allows("203.0.112.9".parse().unwrap()));
        assert!(!g.allows("127.0.0.1".parse().unwrap()));
    }
}
