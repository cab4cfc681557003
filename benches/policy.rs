//! Benchmarks of the pure policy core: target normalisation and `decide`.
//!
//! `decide` is measured against snapshots of N = 100 and N = 100_000 synthetic domain
//! patterns (plus 10_000 networks) with the same targets, so the report shows whether the
//! cost of a decision grows with the size of the allowlists (it should not: the domain trie
//! is walked by the name's labels, the prefix table is one binary search over ranges).
//!
//! Run: `cargo bench --bench policy` (full) or `cargo bench --bench policy -- --quick`.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use lbo_proxy::policy::allowlist::{Category, Rule};
use lbo_proxy::policy::decide::decide;
use lbo_proxy::policy::domain::DomainPattern;
use lbo_proxy::policy::{PolicySpec, ProfileSpec, Reason, Route, SegmentSpec, Snapshot, Target};

/// Pattern counts compared by the `decide` group.
const SIZES: [usize; 2] = [100, 100_000];
/// Synthetic IPv4/IPv6 destination networks in every snapshot.
const NETWORKS: usize = 10_000;
const CATEGORIES: usize = 8;
/// Patterns (or networks) per synthetic rule.
const PER_RULE: usize = 16;
const PORTS: [u16; 2] = [80, 443];
const TLDS: [&str; 8] = ["com", "net", "org", "io", "de", "jp", "cloud", "app"];

/// A tiny deterministic generator (xorshift64), so every run benches the same data.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A random-looking DNS label: a letter, then letters and digits.
    fn label(&mut self, min: usize, max: usize) -> String {
        const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
        const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let len = min + self.below(max - min + 1);
        let mut s = String::with_capacity(len);
        s.push(FIRST[self.below(FIRST.len())] as char);
        for _ in 1..len {
            s.push(REST[self.below(REST.len())] as char);
        }
        s
    }
}

fn category_name(i: usize) -> String {
    format!("cat-{i}")
}

/// `n` synthetic patterns: exact names, `*.zone`, `*-x.zone` label globs and
/// `a.*.zone` middle wildcards, over a pool of random zones (several patterns per zone).
fn synthetic_patterns(rng: &mut XorShift, n: usize) -> Vec<DomainPattern> {
    let zones: Vec<String> = (0..(n / 4).max(4))
        .map(|_| format!("{}.{}", rng.label(5, 12), TLDS[rng.below(TLDS.len())]))
        .collect();
    (0..n)
        .map(|i| {
            let zone = &zones[rng.below(zones.len())];
            let text = match i % 4 {
                0 => format!("{}.{zone}", rng.label(3, 10)),
                1 => format!("*.{zone}"),
                2 => format!("*-{}.{zone}", rng.label(1, 4)),
                _ => format!("{}.*.{zone}", rng.label(3, 10)),
            };
            DomainPattern::parse(&text).expect("synthetic pattern is valid")
        })
        .collect()
}

/// `n` synthetic destination networks, half IPv4 (/16–/28), half IPv6 (/32–/64).
fn synthetic_networks(rng: &mut XorShift, n: usize) -> Vec<IpNet> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                let len = 16 + rng.below(13) as u8;
                let addr = std::net::Ipv4Addr::from(rng.next() as u32);
                IpNet::V4(Ipv4Net::new(addr, len).unwrap().trunc())
            } else {
                let len = 32 + rng.below(33) as u8;
                // Global unicast, 2000::/3.
                let bits =
                    (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3 | (1u128 << 125);
                let addr = std::net::Ipv6Addr::from(bits);
                IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc())
            }
        })
        .collect()
}

/// A snapshot with `n` synthetic patterns and [`NETWORKS`] networks over [`CATEGORIES`]
/// categories, plus fixed anchor rules (in `cat-0`) that the benched targets hit. One
/// profile breaks out the even half of the categories; segment `office` is 10.0.0.0/8.
fn snapshot(n: usize) -> Snapshot {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut categories: Vec<Category> = (0..CATEGORIES)
        .map(|i| Category {
            name: Arc::from(category_name(i)),
            rules: Vec::new(),
        })
        .collect();
    categories[0].rules.push(Rule {
        name: Arc::from("cat-0/anchors"),
        domains: ["login.microsoftonline.com", "*.sharepoint.com"]
            .iter()
            .map(|d| DomainPattern::parse(d).unwrap())
            .collect(),
        networks: vec![
            "20.190.128.0/18".parse().unwrap(),
            "2603:1006:2000::/48".parse().unwrap(),
        ],
        ports: PORTS.to_vec(),
    });

    for (i, chunk) in synthetic_patterns(&mut rng, n).chunks(PER_RULE).enumerate() {
        let cat = i % CATEGORIES;
        categories[cat].rules.push(Rule {
            name: Arc::from(format!("{}/domains-{i}", category_name(cat))),
            domains: chunk.to_vec(),
            networks: Vec::new(),
            ports: PORTS.to_vec(),
        });
    }
    for (i, chunk) in synthetic_networks(&mut rng, NETWORKS)
        .chunks(PER_RULE)
        .enumerate()
    {
        let cat = i % CATEGORIES;
        categories[cat].rules.push(Rule {
            name: Arc::from(format!("{}/networks-{i}", category_name(cat))),
            domains: Vec::new(),
            networks: chunk.to_vec(),
            ports: PORTS.to_vec(),
        });
    }

    let spec = PolicySpec {
        categories,
        profiles: vec![ProfileSpec {
            name: "half".into(),
            direct: (0..CATEGORIES).step_by(2).map(category_name).collect(),
            deny: Vec::new(),
        }],
        segments: vec![SegmentSpec {
            name: "office".into(),
            networks: vec!["10.0.0.0/8".parse().unwrap()],
            profile: "half".into(),
        }],
    };
    Snapshot::build(spec).expect("synthetic policy builds")
}

/// One `decide` case: a client, a target and the decision it must produce.
struct Case {
    id: &'static str,
    client: IpAddr,
    target: Target,
    route: Route,
    reason: Reason,
    rule: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let office: IpAddr = "10.1.2.3".parse().unwrap();
    let t = |s: &str| Target::parse_authority(s, None).unwrap();
    vec![
        Case {
            id: "exact",
            client: office,
            target: t("login.microsoftonline.com:443"),
            route: Route::Direct,
            reason: Reason::Allowlisted,
            rule: Some("cat-0/anchors"),
        },
        Case {
            id: "wildcard_suffix",
            client: office,
            target: t("contoso.sharepoint.com:443"),
            route: Route::Direct,
            reason: Reason::Allowlisted,
            rule: Some("cat-0/anchors"),
        },
        Case {
            id: "no_match",
            client: office,
            target: t("updates.example-vendor.com:443"),
            route: Route::Upstream,
            reason: Reason::NotAllowlisted,
            rule: None,
        },
        Case {
            id: "ip_in_network",
            client: office,
            target: t("20.190.130.5:443"),
            route: Route::Direct,
            reason: Reason::Allowlisted,
            rule: Some("cat-0/anchors"),
        },
        Case {
            id: "ip6_in_network",
            client: office,
            target: t("[2603:1006:2000::5]:443"),
            route: Route::Direct,
            reason: Reason::Allowlisted,
            rule: Some("cat-0/anchors"),
        },
        Case {
            id: "unknown_client",
            client: "192.168.1.10".parse().unwrap(),
            target: t("login.microsoftonline.com:443"),
            route: Route::Deny,
            reason: Reason::UnknownClient,
            rule: None,
        },
    ]
}

fn bench_normalise(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalise");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    let inputs = [
        ("typical_name", "Login.MicrosoftOnline.com:443"),
        ("idn_name", "bücher.example:443"),
        ("ipv6_literal", "[2603:1006:2000::1]:443"),
    ];
    for (id, raw) in inputs {
        assert!(Target::parse_authority(raw, None).is_ok(), "{raw}");
        group.bench_with_input(BenchmarkId::from_parameter(id), raw, |b, raw| {
            b.iter(|| Target::parse_authority(black_box(raw), None))
        });
    }
    group.finish();
}

fn bench_decide(c: &mut Criterion) {
    let cases = cases();
    let mut group = c.benchmark_group("decide");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    for n in SIZES {
        let snap = snapshot(n);
        for case in &cases {
            // Prove the bench measures the path it is named for.
            let d = decide(&snap, case.client, &case.target);
            assert_eq!(
                (d.route, d.reason, d.rule.as_deref()),
                (case.route, case.reason, case.rule),
                "{} with N = {n}",
                case.id
            );
            group.bench_with_input(BenchmarkId::new(case.id, n), &snap, |b, snap| {
                b.iter(|| {
                    decide(
                        black_box(snap),
                        black_box(case.client),
                        black_box(&case.target),
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_normalise, bench_decide);
criterion_main!(benches);
