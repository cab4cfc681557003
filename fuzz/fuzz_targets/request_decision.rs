//! A request head from a client, as the explicit listener sees it, to the decision:
//! `CONNECT` authority or absolute `http://` URI → normalised target → `decide` against a
//! snapshot with several segments and profiles. Nothing may panic, and the decision must
//! fail closed: direct only through a matching rule of a category the client's profile
//! breaks out, on one of that rule's ports; an unknown client is always denied.
#![no_main]

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use lbo_proxy::ingress::head::{parse, Head, HeadLimits};
use lbo_proxy::policy::decide::{decide, decide_for_profile, direct_categories};
use lbo_proxy::policy::{Reason, Route, Snapshot, Target};
use libfuzzer_sys::fuzz_target;

/// The explicit listener's defaults (`[limits]`).
const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 64 * 1024,
    max_headers: 100,
};

/// Three segments on the α′ cases and one that breaks out nothing and denies Windows
/// Update; the built-in allowlists.
const CONFIG: &str = r#"
[proxy]
listen = ["127.0.0.1:3128"]
[[profile]]
name = "closed"
deny = ["windows-update"]
[[segment]]
name = "case1"
networks = ["10.1.0.0/16"]
profile = "case1"
[[segment]]
name = "case2"
networks = ["10.2.0.0/16", "2001:db8:2::/48"]
profile = "case2"
[[segment]]
name = "case3"
networks = ["10.3.0.0/16"]
profile = "case3"
[[segment]]
name = "closed"
networks = ["10.4.0.0/16"]
profile = "closed"
"#;

/// Clients in each segment and outside all of them.
const CLIENTS: &[[u8; 4]] = &[
    [10, 1, 0, 5],
    [10, 2, 9, 9],
    [10, 3, 1, 1],
    [10, 4, 0, 1],
    [192, 168, 1, 1],
];

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<lbo_proxy::Config> = OnceLock::new();
    &SNAP
        .get_or_init(|| {
            lbo_proxy::config::load_str(Path::new("fuzz.toml"), CONFIG, None)
                .unwrap_or_else(|e| panic!("the fuzz config is valid: {e}"))
        })
        .policy
}

/// The target the proxy would decide on, as `ingress::explicit` and `ingress::forward`
/// derive it; `None` when the request is refused before any decision.
fn target(data: &[u8]) -> Option<Target> {
    match parse(data, LIMITS).ok()? {
        Head::Connect { authority, .. } => Target::parse_authority(authority, None).ok(),
        Head::Partial => None,
        Head::Http { .. } => {
            let mut headers = [httparse::EMPTY_HEADER; 100];
            let mut req = httparse::Request::new(&mut headers);
            req.parse(data).ok()?;
            let uri: http::Uri = req.path?.parse().ok()?;
            match (uri.scheme_str(), uri.authority()) {
                (Some("http"), Some(a)) => Target::parse_authority(a.as_str(), Some(80)).ok(),
                _ => None,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, head)) = data.split_first() else {
        return;
    };
    let snap = snapshot();
    let client = IpAddr::from(CLIENTS[usize::from(pick) % CLIENTS.len()]);
    let Some(target) = target(head) else {
        return;
    };
    let d = decide(snap, client, &target);
    let Some(segment) = snap.segment_of(client) else {
        assert_eq!((d.route, d.reason), (Route::Deny, Reason::UnknownClient));
        return;
    };
    let profile = &snap.profiles()[segment.profile];
    // The same answer for the profile whatever the client, and for the target read back.
    let mut as_profile = decide_for_profile(snap, &profile.name, &target).expect("profile exists");
    as_profile.segment = d.segment.clone();
    assert_eq!(as_profile, d);
    let again = Target::parse_authority(&target.to_string(), None).expect("reads back");
    assert_eq!(decide(snap, client, &again), d, "{target}");
    if d.route == Route::Direct {
        assert_eq!(d.reason, Reason::Allowlisted);
        let category = d
            .category
            .as_deref()
            .expect("a direct decision names its category");
        assert!(
            direct_categories(snap, profile)
                .iter()
                .any(|c| c == category),
            "{target} direct through {category}, not broken out by {}",
            profile.name
        );
        let rule = d.rule.as_deref().expect("a direct decision names its rule");
        let rule = snap
            .categories()
            .iter()
            .flat_map(|c| &c.rules)
            .find(|r| &*r.name == rule)
            .expect("the rule exists");
        assert!(
            rule.ports.contains(&target.port),
            "{target} via {}",
            rule.name
        );
    }
});
