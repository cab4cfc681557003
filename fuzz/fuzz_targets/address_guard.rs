//! The direct route's address guard on arbitrary addresses and allow/deny lists: a
//! verdict, never a panic; a denied range always wins; an IPv6 address that stands for an
//! IPv4 one (mapped, compatible, translated, NAT64, 6to4) gets that address's verdict; the
//! local-use NAT64 prefix and Teredo are refused unless an allow names them.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use lbo_proxy::egress::guard::AddressGuard;
use lbo_proxy::policy::special::embedded_ipv4;
use libfuzzer_sys::fuzz_target;

/// Networks from 17-byte records: 16 address bytes (IPv4 when the first is even) and a
/// prefix length.
fn nets(data: &[u8]) -> Vec<IpNet> {
    data.chunks_exact(17)
        .filter_map(|c| {
            let len = c[16];
            let ip = if c[0] % 2 == 0 {
                IpAddr::V4(Ipv4Addr::new(c[1], c[2], c[3], c[4]))
            } else {
                let mut b = [0u8; 16];
                b.copy_from_slice(&c[..16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            IpNet::new(ip, len % 129).ok().map(|n| n.trunc())
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&data[..16]);
    let v6 = Ipv6Addr::from(raw);
    let split = usize::from(data[16]) % 4 * 17;
    let rest = &data[17..];
    let (allow, deny) = rest.split_at(split.min(rest.len()));
    let (allow, deny) = (nets(allow), nets(deny));
    let g = AddressGuard::new(&allow, &deny);
    let ip = IpAddr::V6(v6);
    let allowed = g.allows(ip);
    if deny.iter().any(|n| n.contains(&ip)) {
        assert!(!allowed, "{ip} is denied");
    }
    if let Some((v4, how)) = embedded_ipv4(v6) {
        let v4_allowed = g.allows(IpAddr::V4(v4));
        if how.transparent() {
            assert_eq!(allowed, v4_allowed, "{ip} ({}) against {v4}", how.as_str());
        } else if allowed && !allow.iter().any(|n| n.contains(&ip) || n.contains(&IpAddr::V4(v4))) {
            assert!(v4_allowed, "{ip} ({}) let through while {v4} is refused", how.as_str());
        }
    }
    let named = allow.iter().any(|n| n.contains(&ip));
    let local_nat64 = v6.segments()[..3] == [0x64, 0xff9b, 1];
    let teredo = v6.segments()[..2] == [0x2001, 0];
    if (local_nat64 || teredo) && !named && embedded_ipv4(v6).is_none() {
        assert!(!allowed, "{ip}");
    }
});
