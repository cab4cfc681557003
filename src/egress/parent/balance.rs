//! Which parent a new connection tries first, and then which next: pure functions of the
//! configured order, the weights, a turn counter and the client address.
//!
//! - `failover`: the configured order (Squid's default parent selection).
//! - `round_robin`: a smooth weighted rotation (each parent in proportion to its weight,
//!   spread out rather than in runs), then the others in order (Squid's `round-robin`
//!   peers, HAProxy's `balance roundrobin`).
//! - `source_hash`: weighted rendezvous hashing of the client address with each parent's
//!   name: a client keeps its parent while that parent is up, and when one goes down only
//!   its own clients move (Squid's `sourcehash`, HAProxy's `balance source` with
//!   consistent hashing).

use std::hash::Hasher;
use std::net::IpAddr;

use crate::config::Balance;

/// The rotation of `round_robin`: parent indices, each `weight` times, interleaved
/// (nginx's smooth weighted round robin, computed once per pool).
pub fn rotation(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(weights) {
            *c += i64::from(*w);
        }
        let Some((best, _)) = current
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        else {
            break;
        };
        current[best] -= total;
        out.push(best);
    }
    out
}

/// The order in which the parents are tried for one connection.
pub fn order(
    balance: Balance,
    names: &[&str],
    weights: &[u32],
    rotation: &[usize],
    turn: u64,
    client: IpAddr,
) -> Vec<usize> {
    let n = names.len();
    match balance {
        Balance::Failover => (0..n).collect(),
        Balance::RoundRobin => {
            let Some(first) = usize::try_from(turn)
                .ok()
                .and_then(|t| rotation.get(t % rotation.len().max(1)))
                .copied()
            else {
                return (0..n).collect();
            };
            (0..n).map(|i| (first + i) % n).collect()
        }
        Balance::SourceHash => {
            let mut scored: Vec<(f64, usize)> = names
                .iter()
                .zip(weights)
                .enumerate()
                .map(|(i, (name, w))| (score(client, name, *w), i))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            scored.into_iter().map(|(_, i)| i).collect()
        }
    }
}

/// Weighted rendezvous score of `client` for the parent `name`: `-weight / ln(u)` with
/// `u` uniform in (0, 1) from a stable hash, highest first.
fn score(client: IpAddr, name: &str, weight: u32) -> f64 {
    let mut h = rustc_hash::FxHasher::default();
    match client {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    h.write(name.as_bytes());
    let bits = mix(h.finish());
    // 53 random bits, never 0 nor 1.
    let u = ((bits >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

/// splitmix64's finaliser: spreads the bits of a weak hash over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 3] = ["seccloud-a", "seccloud-b", "seccloud-c"];

    fn client(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn failover_is_the_configured_order() {
        let o = order(Balance::Failover, &NAMES, &[1, 1, 1], &[], 7, client(1));
        assert_eq!(o, [0, 1, 2]);
    }

    #[test]
    fn round_robin_follows_the_weights_spread_out() {
        assert_eq!(rotation(&[1, 1, 1]), [0, 1, 2]);
        let r = rotation(&[5, 1, 1]);
        assert_eq!(r, [0, 0, 1, 0, 2, 0, 0]);
        let firsts: Vec<usize> = (0..7)
            .map(|t| order(Balance::RoundRobin, &NAMES, &[5, 1, 1], &r, t, client(1))[0])
            .collect();
        assert_eq!(firsts, r);
        // After the first, the others follow in order, so a failure moves on.
        assert_eq!(
            order(Balance::RoundRobin, &NAMES, &[5, 1, 1], &r, 4, client(1)),
            [2, 0, 1]
        );
    }

    #[test]
    fn source_hash_sticks_spreads_by_weight_and_moves_only_the_lost_parents_clients() {
        let w = [1, 1, 1];
        let first =
            |c, names: &[&str], w: &[u32]| order(Balance::SourceHash, names, w, &[], 0, c)[0];
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let c = client(i);
            let a = first(c, &NAMES, &w);
            assert_eq!(a, first(c, &NAMES, &w), "the same client, the same parent");
            counts[a] += 1;
        }
        for n in counts {
            assert!((800..1200).contains(&n), "{counts:?}");
        }
        // Without seccloud-b (down), its clients move; the others keep their parent.
        for i in 0..3000 {
            let c = client(i);
            let full = order(Balance::SourceHash, &NAMES, &w, &[], 0, c);
            let without: Vec<usize> = full.iter().copied().filter(|p| *p != 1).collect();
            if full[0] != 1 {
                assert_eq!(without[0], full[0]);
            }
        }
        let mut heavy = [0usize; 3];
        for i in 0..4000 {
            heavy[first(client(i), &NAMES, &[2, 1, 1])] += 1;
        }
        assert!((1700..2300).contains(&heavy[0]), "{heavy:?}");
    }
}
