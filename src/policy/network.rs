//! IP networks → values, looked up most specific first.
//!
//! One hash map per family keyed by (prefix length, masked address), probed only at the
//! prefix lengths that exist: the cost depends on how many distinct lengths are loaded
//! (at most 33 or 129), not on how many networks.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

pub struct PrefixTable<V> {
    v4: Family<u32, V>,
    v6: Family<u128, V>,
}

struct Family<K, V> {
    /// Prefix lengths present, longest first.
    lens: Vec<u8>,
    map: HashMap<(u8, K), Vec<V>>,
}

impl<K, V> Default for Family<K, V> {
    fn default() -> Self {
        Family {
            lens: Vec::new(),
            map: HashMap::new(),
        }
    }
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        PrefixTable {
            v4: Family::default(),
            v6: Family::default(),
        }
    }
}

fn mask4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

impl<K: std::hash::Hash + Eq + Copy, V> Family<K, V> {
    fn insert(&mut self, len: u8, key: K, value: V) {
        if let Err(at) = self.lens.binary_search_by(|l| len.cmp(l)) {
            self.lens.insert(at, len);
        }
        self.map.entry((len, key)).or_default().push(value);
    }
}

impl<V> PrefixTable<V> {
    pub fn insert(&mut self, net: IpNet, value: V) {
        match net.trunc() {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                self.v4.insert(len, u32::from(n.network()), value);
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                self.v6.insert(len, u128::from(n.network()), value);
            }
        }
    }

    /// Every value whose network contains `ip`, most specific network first, with its
    /// prefix length. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> impl Iterator<Item = (u8, &V)> + '_ {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (v4, v6) = match ip {
            IpAddr::V4(a) => (Some(u32::from(a)), None),
            IpAddr::V6(a) => (None, Some(u128::from(a))),
        };
        let hits4 = v4.into_iter().flat_map(move |a| {
            self.v4.lens.iter().flat_map(move |&len| {
                self.v4
                    .map
                    .get(&(len, mask4(a, len)))
                    .into_iter()
                    .flatten()
                    .map(move |v| (len, v))
            })
        });
        let hits6 = v6.into_iter().flat_map(move |a| {
            self.v6.lens.iter().flat_map(move |&len| {
                self.v6
                    .map
                    .get(&(len, mask6(a, len)))
                    .into_iter()
                    .flatten()
                    .map(move |v| (len, v))
            })
        });
        hits4.chain(hits6)
    }

    /// The value of the most specific network containing `ip` (first inserted of equals).
    pub fn longest(&self, ip: IpAddr) -> Option<&V> {
        self.lookup(ip).next().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.v4.map.values().map(Vec::len).sum::<usize>()
            + self.v6.map.values().map(Vec::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_first() {
        let mut t = PrefixTable::default();
        t.insert("10.0.0.0/8".parse().unwrap(), "wide");
        t.insert("10.1.0.0/16".parse().unwrap(), "narrow");
        t.insert("10.1.2.3/32".parse().unwrap(), "host");
        t.insert("2001:db8::/32".parse().unwrap(), "v6");
        t.insert("0.0.0.0/0".parse().unwrap(), "any4");
        let all =
            |ip: &str| -> Vec<&str> { t.lookup(ip.parse().unwrap()).map(|(_, v)| *v).collect() };
        assert_eq!(all("10.1.2.3"), ["host", "narrow", "wide", "any4"]);
        assert_eq!(all("10.1.9.9"), ["narrow", "wide", "any4"]);
        assert_eq!(all("10.2.0.1"), ["wide", "any4"]);
        assert_eq!(all("11.0.0.1"), ["any4"]);
        assert_eq!(all("::ffff:10.1.2.3"), ["host", "narrow", "wide", "any4"]);
        assert_eq!(all("2001:db8::1"), ["v6"]);
        assert_eq!(all("2001:db9::1"), Vec::<&str>::new());
        assert_eq!(t.longest("10.1.0.1".parse().unwrap()), Some(&"narrow"));
    }

    #[test]
    fn unaligned_networks_are_truncated() {
        let mut t = PrefixTable::default();
        t.insert("192.0.2.77/24".parse().unwrap(), 1);
        assert_eq!(t.longest("192.0.2.1".parse().unwrap()), Some(&1));
    }
}
