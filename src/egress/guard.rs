//! The address guard: a local breakout never goes to an internal address, even when an
//! allowlisted name resolves there (DNS rebinding, a poisoned or split-horizon resolver,
//! a stale record), however the address is spelt. Pure: an address in, a verdict out.
//!
//! In order: `deny_internal` refuses (it always wins); `allow_internal` opens exactly the
//! ranges it names; then the built-in table ([`crate::policy::special`]) decides. An IPv6
//! address that carries an IPv4 one (IPv4-mapped or -compatible, NAT64, 6to4, SIIT) is
//! judged as that IPv4 address, by every step; an ISATAP address must pass both as
//! itself and as its IPv4 address.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::policy::network::PrefixTable;
use crate::policy::special;

/// Why a direct connection to an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// In `direct.deny_internal`.
    Denied,
    /// Not the public internet: the built-in entry's name.
    Internal(&'static str),
}

/// Decides whether the direct route may connect to an address.
pub struct AddressGuard {
    deny: PrefixTable<()>,
    allow: PrefixTable<()>,
    /// The built-in table: `true` where the internet can be (a more specific entry).
    builtin: PrefixTable<(bool, &'static str)>,
}

impl AddressGuard {
    /// `allow` opens chosen internal ranges (labs, tests); `deny` adds the municipality's
    /// own ranges and wins over everything.
    pub fn new(allow: &[IpNet], deny: &[IpNet]) -> AddressGuard {
        let builtin = special::SPECIAL
            .iter()
            .filter_map(|s| {
                let net = s.range.parse::<IpNet>().ok()?;
                Some((net, (s.reachable, s.name)))
            })
            .collect();
        AddressGuard {
            deny: deny.iter().map(|n| (*n, ())).collect(),
            allow: allow.iter().map(|n| (*n, ())).collect(),
            builtin,
        }
    }

    /// True when a direct connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.verdict(ip).is_ok()
    }

    /// The verdict with its reason.
    pub fn verdict(&self, ip: IpAddr) -> Result<(), Refusal> {
        let embedded = match ip {
            IpAddr::V6(v6) => special::embedded_ipv4(v6),
            IpAddr::V4(_) => None,
        };
        let forms = std::iter::once(ip).chain(embedded.map(|(v4, _)| IpAddr::V4(v4)));
        if forms.clone().any(|f| self.deny.longest(f).is_some()) {
            return Err(Refusal::Denied);
        }
        if forms.clone().any(|f| self.allow.longest(f).is_some()) {
            return Ok(());
        }
        match embedded {
            Some((v4, how)) if how.transparent() => self.builtin(IpAddr::V4(v4)),
            Some((v4, _)) => self.builtin(ip).and(self.builtin(IpAddr::V4(v4))),
            None => self.builtin(ip),
        }
    }

    fn builtin(&self, ip: IpAddr) -> Result<(), Refusal> {
        let mut best: Option<(u8, bool, &'static str)> = None;
        for (len, &(reachable, name)) in self.builtin.lookup(ip) {
            match best {
                None => best = Some((len, reachable, name)),
                // Of two entries of one length, the refusing one.
                Some((l, true, _)) if l == len && !reachable => best = Some((len, false, name)),
                _ => break,
            }
        }
        match best {
            Some((_, true, _)) => Ok(()),
            Some((_, false, name)) => Err(Refusal::Internal(name)),
            None => match ip {
                IpAddr::V6(v6) if v6.segments()[0] & 0xe000 != 0x2000 => {
                    Err(Refusal::Internal(special::RESERVED_V6))
                }
                _ => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod registry_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow: &[&str], deny: &[&str]) -> AddressGuard {
        let p = |l: &[&str]| l.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>();
        AddressGuard::new(&p(allow), &p(deny))
    }

    fn allows(g: &AddressGuard, ip: &str) -> bool {
        g.allows(ip.parse().unwrap())
    }

    #[test]
    fn refuses_internal_addresses_however_spelt() {
        let g = guard(&[], &[]);
        for ip in [
            "10.1.2.3",
            "172.31.255.255",
            "127.9.9.9",
            "169.254.169.254",
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
            "::a00:1",
            "::ffff:0:a00:1",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::808:808",
            "2002:a00:1::",
            "2002:7f00:1:5::9",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "2603:1006::5efe:a00:1",
            "4000::1",
        ] {
            assert!(!allows(&g, ip), "{ip}");
        }
        for ip in [
            "20.190.128.1",
            "172.32.0.1",
            "100.128.0.1",
            "2603:1006::1",
            "8.8.8.8",
            "::ffff:20.190.128.1",
            "64:ff9b::1414:8001",
            "2002:1414:8001::1",
            "192.0.0.9",
            "2001:3::1",
            "2603:1006::200:5efe:1414:8001",
        ] {
            assert!(allows(&g, ip), "{ip}");
        }
    }

    #[test]
    fn allow_opens_exactly_what_it_names() {
        // An allow equal to a built-in range opens it; one inside it opens only itself.
        let g = guard(&["127.0.0.0/8"], &[]);
        assert!(allows(&g, "127.0.0.1") && allows(&g, "127.255.0.9"));
        assert!(allows(&g, "::ffff:127.0.0.1") && allows(&g, "64:ff9b::7f00:1"));
        assert!(!allows(&g, "10.0.0.1"));
        let g = guard(&["10.0.0.0/7"], &[]);
        assert!(allows(&g, "10.200.0.1"));
        assert!(!allows(&g, "172.16.0.1"));
        let g = guard(&["127.0.0.1/32"], &[]);
        assert!(allows(&g, "127.0.0.1"));
        assert!(!allows(&g, "127.0.0.2"));
        let g = guard(&["fd00::/8"], &[]);
        assert!(allows(&g, "fd12::1") && !allows(&g, "fc00::1"));
    }

    #[test]
    fn deny_wins_over_allow_in_every_spelling() {
        let g = guard(
            &["127.0.0.0/8", "10.0.0.0/8"],
            &["127.0.0.0/8", "203.0.112.0/24"],
        );
        assert_eq!(
            g.verdict("127.0.0.1".parse().unwrap()),
            Err(Refusal::Denied)
        );
        assert!(!allows(&g, "203.0.112.9"));
        assert!(!allows(&g, "64:ff9b::cb00:7009"));
        assert!(!allows(&g, "2002:cb00:7009::1"));
        assert!(!allows(&g, "::ffff:127.0.0.1"));
        assert!(allows(&g, "10.1.1.1"));
        let g = guard(&[], &["2603:1006::/32"]);
        assert!(!allows(&g, "2603:1006::1"));
    }
}
