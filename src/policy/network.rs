//! IP networks → values, looked up most specific first.
//!
//! Networks nest or are disjoint, never overlap partly, so each family's address space cuts
//! into elementary ranges, each covered by one chain of nested networks. A lookup is one
//! binary search for the range (about 15 steps for 10,000 networks, whatever their prefix
//! lengths) and then a walk up that chain: no hashing, and IPv6 costs no more than IPv4.
//! The table is built once from a complete list, as a policy snapshot is.

use std::net::IpAddr;

use ipnet::IpNet;

pub struct PrefixTable<V> {
    v4: Family<u32, V>,
    v6: Family<u128, V>,
}

/// An address family's networks, compiled for lookup.
struct Family<K, V> {
    /// Where each elementary range begins, ascending; the first is always address zero.
    starts: Vec<K>,
    /// For each range, the most specific network covering it ([`NONE`] when none does).
    cover: Vec<u32>,
    /// Distinct networks, each pointing at the next less specific one containing it.
    nets: Vec<Net>,
    /// Every network's values, grouped by network, in the order they were given.
    values: Vec<V>,
}

/// One distinct network (several values may share it).
struct Net {
    len: u8,
    /// The network just outside this one, or [`NONE`].
    parent: u32,
    /// Its values: `values[first..end]`.
    first: u32,
    end: u32,
}

/// "No network" in `cover` and `parent`.
const NONE: u32 = u32::MAX;

/// An address family's integer form.
trait Bits: Copy + Ord {
    const ZERO: Self;
    /// The address after the last one of the `len`-bit prefix starting at `self`;
    /// `None` when that prefix reaches the end of the address space.
    fn after(self, len: u8) -> Option<Self>;
}

impl Bits for u32 {
    const ZERO: u32 = 0;
    fn after(self, len: u8) -> Option<u32> {
        self.checked_add(1u32.checked_shl(u32::from(32u8.saturating_sub(len)))?)
    }
}

impl Bits for u128 {
    const ZERO: u128 = 0;
    fn after(self, len: u8) -> Option<u128> {
        self.checked_add(1u128.checked_shl(u32::from(128u8.saturating_sub(len)))?)
    }
}

impl<K: Bits, V> Family<K, V> {
    /// Compiles `(first address, prefix length, value)` entries, in load order.
    fn build(mut entries: Vec<(K, u8, V)>) -> Family<K, V> {
        // Stable: equal networks keep their values in load order. A network sorts before
        // the narrower ones sharing its first address, so it is pushed on the chain first.
        entries.sort_by_key(|&(start, len, _)| (start, len));

        let mut nets: Vec<Net> = Vec::new();
        let mut keys: Vec<(K, u8)> = Vec::new();
        let mut values = Vec::with_capacity(entries.len());
        for (start, len, value) in entries {
            if keys.last() != Some(&(start, len)) {
                keys.push((start, len));
                let at = values.len() as u32;
                nets.push(Net {
                    len,
                    parent: NONE,
                    first: at,
                    end: at,
                });
            }
            values.push(value);
            if let Some(net) = nets.last_mut() {
                net.end += 1;
            }
        }

        let mut bounds: Vec<K> = vec![K::ZERO];
        for &(start, len) in &keys {
            bounds.push(start);
            bounds.extend(start.after(len));
        }
        bounds.sort_unstable();
        bounds.dedup();

        // Sweep the bounds in order with the chain of networks containing the current one.
        let mut starts: Vec<K> = Vec::with_capacity(bounds.len());
        let mut cover: Vec<u32> = Vec::with_capacity(bounds.len());
        let mut chain: Vec<usize> = Vec::new();
        let mut next = 0;
        for b in bounds {
            while let Some(&top) = chain.last() {
                let (start, len) = keys[top];
                if start.after(len).is_some_and(|after| after <= b) {
                    chain.pop();
                } else {
                    break;
                }
            }
            // Every network's first address is a bound, so none is skipped.
            while next < keys.len() && keys[next].0 == b {
                nets[next].parent = chain.last().map_or(NONE, |&p| p as u32);
                chain.push(next);
                next += 1;
            }
            let here = chain.last().map_or(NONE, |&n| n as u32);
            if cover.last() != Some(&here) {
                starts.push(b);
                cover.push(here);
            }
        }
        Family {
            starts,
            cover,
            nets,
            values,
        }
    }

    /// The most specific network containing `addr`.
    fn innermost(&self, addr: K) -> u32 {
        let range = self.starts.partition_point(|&s| s <= addr);
        range
            .checked_sub(1)
            .and_then(|r| self.cover.get(r))
            .copied()
            .unwrap_or(NONE)
    }
}

impl<V> FromIterator<(IpNet, V)> for PrefixTable<V> {
    /// Of networks given twice or more, the values keep the order given here.
    fn from_iter<I: IntoIterator<Item = (IpNet, V)>>(entries: I) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (net, value) in entries {
            // `network()` clears the host bits: `192.0.2.77/24` is `192.0.2.0/24`.
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), n.prefix_len(), value)),
                IpNet::V6(n) => v6.push((u128::from(n.network()), n.prefix_len(), value)),
            }
        }
        PrefixTable {
            v4: Family::build(v4),
            v6: Family::build(v6),
        }
    }
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        std::iter::empty().collect()
    }
}

/// The values of a chain of networks, innermost first.
pub struct Hits<'a, V> {
    nets: &'a [Net],
    values: &'a [V],
    /// The network being read, or [`NONE`] when done.
    net: u32,
    /// The next of its values.
    at: u32,
}

impl<'a, V> Iterator for Hits<'a, V> {
    type Item = (u8, &'a V);

    fn next(&mut self) -> Option<(u8, &'a V)> {
        loop {
            let net = self.nets.get(self.net as usize)?;
            if self.at < net.end {
                let value = self.values.get(self.at as usize)?;
                self.at += 1;
                return Some((net.len, value));
            }
            self.net = net.parent;
            if let Some(outer) = self.nets.get(self.net as usize) {
                self.at = outer.first;
            }
        }
    }
}

impl<V> PrefixTable<V> {
    /// Every value whose network contains `ip`, most specific network first, with its
    /// prefix length; of equal networks, in the order given. IPv4-mapped IPv6 addresses
    /// are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Hits<'_, V> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (nets, values, net) = match ip {
            IpAddr::V4(a) => (&self.v4.nets, &self.v4.values, self.v4.innermost(a.into())),
            IpAddr::V6(a) => (&self.v6.nets, &self.v6.values, self.v6.innermost(a.into())),
        };
        let at = nets.get(net as usize).map_or(0, |n| n.first);
        Hits {
            nets,
            values,
            net,
            at,
        }
    }

    /// The value of the most specific network containing `ip` (first given of equals).
    pub fn longest(&self, ip: IpAddr) -> Option<&V> {
        self.lookup(ip).next().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.v4.values.len() + self.v6.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn table<V: Copy>(entries: &[(&str, V)]) -> PrefixTable<V> {
        entries
            .iter()
            .map(|&(net, v)| (net.parse().unwrap(), v))
            .collect()
    }

    fn all<'a>(t: &PrefixTable<&'a str>, ip: &str) -> Vec<&'a str> {
        t.lookup(ip.parse().unwrap()).map(|(_, v)| *v).collect()
    }

    #[test]
    fn most_specific_first() {
        let t = table(&[
            ("10.0.0.0/8", "wide"),
            ("10.1.0.0/16", "narrow"),
            ("10.1.2.3/32", "host"),
            ("2001:db8::/32", "v6"),
            ("0.0.0.0/0", "any4"),
        ]);
        assert_eq!(all(&t, "10.1.2.3"), ["host", "narrow", "wide", "any4"]);
        assert_eq!(all(&t, "10.1.9.9"), ["narrow", "wide", "any4"]);
        assert_eq!(all(&t, "10.2.0.1"), ["wide", "any4"]);
        assert_eq!(all(&t, "11.0.0.1"), ["any4"]);
        assert_eq!(
            all(&t, "::ffff:10.1.2.3"),
            ["host", "narrow", "wide", "any4"]
        );
        assert_eq!(all(&t, "2001:db8::1"), ["v6"]);
        assert_eq!(all(&t, "2001:db9::1"), Vec::<&str>::new());
        assert_eq!(t.longest("10.1.0.1".parse().unwrap()), Some(&"narrow"));
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn prefix_lengths_carried_with_values() {
        let t = table(&[("10.0.0.0/8", 'a'), ("10.1.0.0/16", 'b')]);
        let hits: Vec<(u8, char)> = t
            .lookup("10.1.0.1".parse().unwrap())
            .map(|(l, v)| (l, *v))
            .collect();
        assert_eq!(hits, [(16, 'b'), (8, 'a')]);
    }

    #[test]
    fn unaligned_networks_are_truncated() {
        let t = table(&[("192.0.2.77/24", 1)]);
        assert_eq!(t.longest("192.0.2.1".parse().unwrap()), Some(&1));
        assert_eq!(t.longest("192.0.3.1".parse().unwrap()), None);
    }

    #[test]
    fn edges_of_the_address_space() {
        let t = table(&[
            ("0.0.0.0/0", "any4"),
            ("255.255.255.255/32", "last4"),
            ("0.0.0.0/32", "first4"),
            ("::/0", "any6"),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "last6"),
            ("::/128", "first6"),
        ]);
        assert_eq!(all(&t, "0.0.0.0"), ["first4", "any4"]);
        assert_eq!(all(&t, "0.0.0.1"), ["any4"]);
        assert_eq!(all(&t, "255.255.255.254"), ["any4"]);
        assert_eq!(all(&t, "255.255.255.255"), ["last4", "any4"]);
        assert_eq!(all(&t, "::"), ["first6", "any6"]);
        assert_eq!(all(&t, "::2"), ["any6"]);
        assert_eq!(
            all(&t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ["last6", "any6"]
        );
        assert_eq!(all(&t, "ffff::"), ["any6"]);
    }

    #[test]
    fn adjacent_and_nested_ranges() {
        let t = table(&[
            ("192.0.2.0/25", "low"),
            ("192.0.2.128/25", "high"),
            ("192.0.2.0/24", "both"),
            ("192.0.2.64/26", "inner"),
            ("192.0.3.0/24", "next"),
        ]);
        assert_eq!(all(&t, "192.0.1.255"), Vec::<&str>::new());
        assert_eq!(all(&t, "192.0.2.0"), ["low", "both"]);
        assert_eq!(all(&t, "192.0.2.63"), ["low", "both"]);
        assert_eq!(all(&t, "192.0.2.64"), ["inner", "low", "both"]);
        assert_eq!(all(&t, "192.0.2.127"), ["inner", "low", "both"]);
        assert_eq!(all(&t, "192.0.2.128"), ["high", "both"]);
        assert_eq!(all(&t, "192.0.2.255"), ["high", "both"]);
        assert_eq!(all(&t, "192.0.3.0"), ["next"]);
        assert_eq!(all(&t, "192.0.3.255"), ["next"]);
        assert_eq!(all(&t, "192.0.4.0"), Vec::<&str>::new());
    }

    #[test]
    fn equal_networks_keep_the_order_given() {
        let t = table(&[
            ("10.0.0.0/8", "first"),
            ("2001:db8::/32", "v6-first"),
            ("10.0.0.0/16", "narrow"),
            ("10.9.9.9/8", "second"),
            ("2001:db8::/32", "v6-second"),
        ]);
        assert_eq!(all(&t, "10.0.0.1"), ["narrow", "first", "second"]);
        assert_eq!(all(&t, "10.1.0.1"), ["first", "second"]);
        assert_eq!(all(&t, "2001:db8::1"), ["v6-first", "v6-second"]);
        assert_eq!(t.longest("10.1.0.1".parse().unwrap()), Some(&"first"));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let t = table(&[("192.0.2.0/24", "v4"), ("::ffff:0:0/96", "mapped-net")]);
        assert_eq!(all(&t, "::ffff:192.0.2.1"), ["v4"]);
        assert_eq!(all(&t, "192.0.2.1"), ["v4"]);
        assert_eq!(all(&t, "::ffff:198.51.100.1"), Vec::<&str>::new());
        assert_eq!(all(&t, "::192.0.2.1"), Vec::<&str>::new());
    }

    #[test]
    fn empty_table() {
        let t: PrefixTable<u8> = PrefixTable::default();
        assert!(t.is_empty());
        assert_eq!(t.longest("192.0.2.1".parse().unwrap()), None);
        assert_eq!(t.longest("::1".parse().unwrap()), None);
    }

    /// What a lookup must return, found the slow way: every containing network, longest
    /// first, equals in the order given.
    fn reference(entries: &[(IpNet, usize)], ip: IpAddr) -> Vec<(u8, usize)> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let mut hits: Vec<(u8, usize)> = entries
            .iter()
            .filter(|(net, _)| net.contains(&ip))
            .map(|(net, v)| (net.prefix_len(), *v))
            .collect();
        hits.sort_by_key(|&(len, _)| std::cmp::Reverse(len));
        hits
    }

    /// Networks clustered around a few bases, so that many nest, touch or repeat.
    fn clustered(bases: &[u32], picks: &[(usize, u32, u8)]) -> Vec<(IpNet, usize)> {
        picks
            .iter()
            .enumerate()
            .map(|(i, &(base, jitter, len))| {
                let addr = bases[base % bases.len()] ^ (jitter >> 8);
                let net = ipnet::Ipv4Net::new(addr.into(), len % 33).unwrap().trunc();
                let net = if i % 3 == 0 {
                    // The same block as IPv6, under a prefix of its own.
                    let v6 = (0x2001_0db8u128 << 96) | (u128::from(addr) << 32);
                    IpNet::V6(
                        ipnet::Ipv6Net::new(v6.into(), 32 + len % 97)
                            .unwrap()
                            .trunc(),
                    )
                } else {
                    IpNet::V4(net)
                };
                (net, i)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_a_linear_scan(
            bases in proptest::collection::vec(any::<u32>(), 1..4),
            picks in proptest::collection::vec((any::<usize>(), any::<u32>(), any::<u8>()), 0..40),
            probes in proptest::collection::vec(any::<u32>(), 8),
        ) {
            let entries = clustered(&bases, &picks);
            let t: PrefixTable<usize> = entries.iter().copied().collect();
            let mut ips: Vec<IpAddr> = Vec::new();
            for (net, _) in &entries {
                ips.push(net.network());
                ips.push(net.broadcast());
                if let IpNet::V4(n) = net {
                    ips.push(IpAddr::V4(u32::from(n.broadcast()).wrapping_add(1).into()));
                    ips.push(IpAddr::V6(n.network().to_ipv6_mapped()));
                }
            }
            for p in probes {
                let b = bases[p as usize % bases.len()];
                ips.push(IpAddr::V4((b ^ (p >> 12)).into()));
                ips.push(IpAddr::V6((((0x2001_0db8u128 << 96) | (u128::from(b) << 32)) ^ u128::from(p)).into()));
            }
            for ip in ips {
                let got: Vec<(u8, usize)> = t.lookup(ip).map(|(l, v)| (l, *v)).collect();
                prop_assert_eq!(got, reference(&entries, ip), "{}", ip);
            }
        }
    }
}
