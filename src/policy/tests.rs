//! Decision tables and the fail-closed property: nothing outside an enabled allowlist
//! is ever decided direct.

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;

use super::allowlist::{Category, Rule};
use super::decide::{decide, decide_for_profile};
use super::domain::DomainPattern;
use super::*;

fn rule(cat: &str, name: &str, domains: &[&str], networks: &[&str], ports: &[u16]) -> Rule {
    Rule {
        name: Arc::from(format!("{cat}/{name}")),
        domains: domains
            .iter()
            .map(|d| DomainPattern::parse(d).unwrap())
            .collect(),
        networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
        ports: ports.to_vec(),
    }
}

fn category(name: &str, rules: Vec<Rule>) -> Category {
    Category {
        name: Arc::from(name),
        rules,
    }
}

fn profile(name: &str, direct: &[&str], deny: &[&str]) -> ProfileSpec {
    ProfileSpec {
        name: name.into(),
        direct: direct.iter().map(|s| s.to_string()).collect(),
        deny: deny.iter().map(|s| s.to_string()).collect(),
    }
}

fn snapshot() -> Snapshot {
    let spec = PolicySpec {
        categories: vec![
            category(
                "m365-auth",
                vec![rule(
                    "m365-auth",
                    "entra",
                    &["login.microsoftonline.com", "*.msauth.net"],
                    &["20.190.128.0/18", "2603:1006:2000::/48"],
                    &[80, 443],
                )],
            ),
            category(
                "exchange",
                vec![rule(
                    "exchange",
                    "autodiscover",
                    &["autodiscover.*.onmicrosoft.com", "outlook.office365.com"],
                    &[],
                    &[443],
                )],
            ),
            category(
                "storage",
                vec![
                    rule("storage", "spo", &["*.sharepoint.com"], &[], &[443]),
                    rule("storage", "mysite", &["*-my.sharepoint.com"], &[], &[443]),
                ],
            ),
            category(
                "blocked",
                vec![rule(
                    "blocked",
                    "bad",
                    &["bad-my.sharepoint.com"],
                    &[],
                    &[443],
                )],
            ),
        ],
        profiles: vec![
            profile("case1", &["m365-auth"], &[]),
            profile("case2", &["m365-auth", "exchange"], &[]),
            profile("case3", &["m365-auth", "exchange", "storage"], &["blocked"]),
        ],
        segments: vec![
            SegmentSpec {
                name: "office".into(),
                networks: vec!["10.0.0.0/8".parse().unwrap()],
                profile: "case1".into(),
            },
            SegmentSpec {
                name: "it".into(),
                networks: vec!["10.9.0.0/16".parse().unwrap()],
                profile: "case3".into(),
            },
        ],
    };
    Snapshot::build(spec).unwrap()
}

fn target(s: &str) -> Result<Target, TargetError> {
    Target::parse_authority(s, None)
}

#[test]
fn decision_table() {
    let snap = snapshot();
    use Reason::*;
    use Route::*;
    let table: &[(&str, &str, Route, Reason, Option<&str>)] = &[
        (
            "10.1.1.1",
            "login.microsoftonline.com:443",
            Direct,
            Allowlisted,
            Some("m365-auth/entra"),
        ),
        (
            "10.1.1.1",
            "LOGIN.MicrosoftOnline.com.:443",
            Direct,
            Allowlisted,
            Some("m365-auth/entra"),
        ),
        (
            "10.1.1.1",
            "login.microsoftonline.com:8443",
            Deny,
            PortNotAllowlisted,
            Some("m365-auth/entra"),
        ),
        (
            "10.1.1.1",
            "login.microsoftonline.com.evil.test:443",
            Upstream,
            NotAllowlisted,
            None,
        ),
        (
            "10.1.1.1",
            "xlogin.microsoftonline.com:443",
            Upstream,
            NotAllowlisted,
            None,
        ),
        (
            "10.1.1.1",
            "aadcdn.msauth.net:443",
            Direct,
            Allowlisted,
            Some("m365-auth/entra"),
        ),
        ("10.1.1.1", "msauth.net:443", Upstream, NotAllowlisted, None),
        (
            "10.1.1.1",
            "outlook.office365.com:443",
            Upstream,
            NotAllowlisted,
            None,
        ),
        (
            "10.1.1.1",
            "contoso.sharepoint.com:443",
            Upstream,
            NotAllowlisted,
            None,
        ),
        (
            "10.1.1.1",
            "20.190.130.1:443",
            Direct,
            Allowlisted,
            Some("m365-auth/entra"),
        ),
        (
            "10.1.1.1",
            "20.190.192.1:443",
            Upstream,
            NotAllowlisted,
            None,
        ),
        (
            "10.1.1.1",
            "[2603:1006:2000::1]:443",
            Direct,
            Allowlisted,
            Some("m365-auth/entra"),
        ),
        (
            "10.1.1.1",
            "[::ffff:20.190.130.1]:443",
            Direct,
            Allowlisted,
            Some("m365-auth/entra"),
        ),
        (
            "10.9.1.1",
            "contoso.sharepoint.com:443",
            Direct,
            Allowlisted,
            Some("storage/spo"),
        ),
        (
            "10.9.1.1",
            "contoso-my.sharepoint.com:443",
            Direct,
            Allowlisted,
            Some("storage/mysite"),
        ),
        (
            "10.9.1.1",
            "bad-my.sharepoint.com:443",
            Deny,
            DenyRule,
            Some("blocked/bad"),
        ),
        (
            "10.9.1.1",
            "autodiscover.contoso.onmicrosoft.com:443",
            Direct,
            Allowlisted,
            Some("exchange/autodiscover"),
        ),
        (
            "10.9.1.1",
            "autodiscover.onmicrosoft.com:443",
            Upstream,
            NotAllowlisted,
            None,
        ),
        (
            "192.0.2.1",
            "login.microsoftonline.com:443",
            Deny,
            UnknownClient,
            None,
        ),
        (
            "::1",
            "login.microsoftonline.com:443",
            Deny,
            UnknownClient,
            None,
        ),
    ];
    for (client, t, route, reason, rule) in table {
        let client: IpAddr = client.parse().unwrap();
        let d = decide(&snap, client, &target(t).unwrap());
        assert_eq!((d.route, d.reason), (*route, *reason), "{client} {t}");
        assert_eq!(d.rule.as_deref(), *rule, "{client} {t}");
    }
}

#[test]
fn decision_names_segment_and_profile() {
    let snap = snapshot();
    let d = decide(
        &snap,
        "10.9.0.1".parse().unwrap(),
        &target("x.test:443").unwrap(),
    );
    assert_eq!(d.segment.as_deref(), Some("it"));
    assert_eq!(d.profile.as_deref(), Some("case3"));
    let d = decide_for_profile(
        &snap,
        "case2",
        &target("outlook.office365.com:443").unwrap(),
    );
    assert_eq!(d.map(|d| d.route), Some(Route::Direct));
    assert!(decide_for_profile(&snap, "nope", &target("x.test:443").unwrap()).is_none());
}

#[test]
fn unknown_references_fail_to_build() {
    let spec = PolicySpec {
        categories: vec![],
        profiles: vec![profile("p", &["nope"], &[])],
        segments: vec![],
    };
    assert!(Snapshot::build(spec).is_err());
}

/// Names and literals that must never go direct under case3 (which enables everything).
const LOOKALIKES: &[&str] = &[
    "login.microsoftonline.com.evil.test",
    "loginmicrosoftonline.com",
    "login-microsoftonline.com",
    "login.microsoftonline.co",
    "login.microsoftonline.com-evil.test",
    "sharepoint.com",
    "xsharepoint.com",
    "sharepoint.com.evil.test",
    "evil-sharepoint.com",
    "contoso.sharepoint.co",
    "autodiscover.onmicrosoft.com",
    "autodiscover.a.b.onmicrosoft.com",
    "msauth.net",
    "20.190.192.0",
    "20.190.127.255",
    "[2603:1006:2001::1]",
    "xn--lgin-microsoftonline-5wb.com",
];

#[test]
fn lookalikes_never_go_direct() {
    let snap = snapshot();
    for name in LOOKALIKES {
        let t = target(&format!("{name}:443")).unwrap();
        let d = decide_for_profile(&snap, "case3", &t).unwrap();
        assert_ne!(d.route, Route::Direct, "{name}");
    }
}

fn allowed_by_patterns(name: &str) -> bool {
    let under = |zone: &str| name.len() > zone.len() + 1 && name.ends_with(&format!(".{zone}"));
    name == "login.microsoftonline.com"
        || name == "outlook.office365.com"
        || under("msauth.net")
        || under("sharepoint.com")
        || (name.starts_with("autodiscover.")
            && name.ends_with(".onmicrosoft.com")
            && name.matches('.').count() == 3)
}

proptest! {
    #[test]
    fn random_names_go_direct_only_when_a_pattern_allows(
        labels in proptest::collection::vec("[a-zA-Z0-9-]{1,12}", 1..5),
        zone in prop::sample::select(vec![
            "sharepoint.com", "msauth.net", "onmicrosoft.com", "microsoftonline.com",
            "office365.com", "evil.test", "com", "sharepoint.com.evil.test",
        ]),
        dot in any::<bool>(),
    ) {
        let snap = snapshot();
        let raw = format!("{}.{}{}", labels.join("."), zone, if dot { "." } else { "" });
        if let Ok(t) = Target::parse_authority(&format!("{raw}:443"), None) {
            let d = decide_for_profile(&snap, "case3", &t).unwrap();
            if d.route == Route::Direct {
                let name = t.host.as_name().unwrap_or_default().to_string();
                prop_assert!(allowed_by_patterns(&name), "{} went direct", raw);
            }
        }
    }

    #[test]
    fn random_ips_go_direct_only_inside_networks(a in any::<u32>(), b in any::<u128>()) {
        let snap = snapshot();
        let v4 = std::net::Ipv4Addr::from(a);
        let v6 = std::net::Ipv6Addr::from(b);
        let net4: ipnet::IpNet = "20.190.128.0/18".parse().unwrap();
        let net6: ipnet::IpNet = "2603:1006:2000::/48".parse().unwrap();
        let d = decide_for_profile(&snap, "case3", &target(&format!("{v4}:443")).unwrap()).unwrap();
        prop_assert_eq!(d.route == Route::Direct, net4.contains(&IpAddr::V4(v4)));
        let d = decide_for_profile(&snap, "case3", &target(&format!("[{v6}]:443")).unwrap()).unwrap();
        let unmapped = v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6));
        prop_assert_eq!(
            d.route == Route::Direct,
            net4.contains(&unmapped) || net6.contains(&unmapped)
        );
    }

    #[test]
    fn unknown_clients_are_always_denied(a in any::<u32>()) {
        let snap = snapshot();
        let client = IpAddr::V4(std::net::Ipv4Addr::from(a));
        let inside = "10.0.0.0/8".parse::<ipnet::IpNet>().unwrap().contains(&client);
        let d = decide(&snap, client, &target("login.microsoftonline.com:443").unwrap());
        prop_assert_eq!(d.route == Route::Deny, !inside);
    }
}

#[test]
fn rules_without_tcp_ports_neither_break_out_nor_refuse() {
    let spec = PolicySpec {
        categories: vec![category(
            "teams",
            vec![
                rule("teams", "signalling", &[], &["52.112.0.0/14"], &[443]),
                rule("teams", "media-udp", &[], &["52.122.0.0/15"], &[]),
            ],
        )],
        profiles: vec![profile("case2", &["teams"], &[])],
        segments: vec![],
    };
    let snap = Snapshot::build(spec).unwrap();
    let decide = |t: &str| decide_for_profile(&snap, "case2", &target(t).unwrap()).unwrap();
    let d = decide("52.112.0.1:8443");
    assert_eq!(
        (d.route, d.reason),
        (Route::Deny, Reason::PortNotAllowlisted)
    );
    let d = decide("52.122.0.1:443");
    assert_eq!(
        (d.route, d.reason),
        (Route::Upstream, Reason::NotAllowlisted)
    );
}
