//! Probes for the fail-closed evidence: names and addresses that look like an allowlisted
//! destination but are not one (they must never go direct), and other spellings of real
//! ones (which must). Derivation only; the report runs them through the real decision.
//!
//! Bounded on purpose: at most [`PER_PATTERN`] probes per pattern, two per network and
//! [`PER_CATEGORY`] per category, so the report stays readable for a large list.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::oracle::Oracle;
use crate::config::LoadedCategory;
use crate::policy::Target;

/// Probes per domain pattern: one lookalike, a second lookalike or an IDN one, one real
/// spelling.
pub const PER_PATTERN: usize = 3;
/// Probes per category at most.
pub const PER_CATEGORY: usize = 100;
/// Names anyone can host content under; never direct whatever the profile.
pub const SHARED_HOSTING_SAMPLES: &[&str] = &["x.blob.core.windows.net", "x.azureedge.net"];
/// Client addresses tried, in order, for "a client in no segment" (documentation ranges).
const UNKNOWN_CLIENT_CANDIDATES: &[&str] = &[
    "192.0.2.1",
    "198.51.100.1",
    "203.0.113.1",
    "2001:db8::1",
    "2001:db8:ffff::1",
];
/// What a wildcard is filled with: Microsoft's own example tenant.
const INSTANCE: &str = "contoso";
/// A domain nobody allowlists (RFC 2606 reserves `.example`).
const ELSEWHERE: &str = "evil.example";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A name built to look like an allowlisted pattern; must not go direct.
    Lookalike,
    /// The same with a Cyrillic letter in place of a Latin one; must not go direct.
    IdnLookalike,
    /// An allowlisted name in upper case or with a trailing dot; same as the name.
    RealSpelling,
    /// The first address after an allowlisted network; must not go direct.
    OutsideNetwork,
    /// The first address of an allowlisted network.
    InsideNetwork,
    /// A name under a shared hosting zone; never direct.
    SharedHosting,
    /// A name of a category a profile denies.
    DeniedName,
}

impl Kind {
    /// Probes that must never go direct, whatever the profile.
    pub fn must_not_break_out(self) -> bool {
        matches!(
            self,
            Kind::Lookalike | Kind::IdnLookalike | Kind::OutsideNetwork | Kind::SharedHosting
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub kind: Kind,
    /// As a client would write it (`host:port`), before normalisation.
    pub target: String,
    /// The pattern or network it was derived from (empty for fixed samples).
    pub from: String,
    pub category: Option<String>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub probes: Vec<Probe>,
    /// Categories whose probes stopped at [`PER_CATEGORY`].
    pub capped: Vec<String>,
}

/// Probes for the categories some reported profile breaks out (`direct`) and the ones some
/// reported profile denies (`denied`: their real names only), then shared hosting samples.
pub fn plan(direct: &[&LoadedCategory], denied: &[&LoadedCategory], oracle: &Oracle) -> Plan {
    let mut b = Builder {
        oracle,
        seen: HashSet::new(),
        plan: Plan::default(),
    };
    for c in direct {
        b.category(c, false);
    }
    for c in denied {
        b.category(c, true);
    }
    for host in SHARED_HOSTING_SAMPLES {
        b.push(Kind::SharedHosting, host, 443, "", None);
    }
    b.plan
}

struct Builder<'a> {
    oracle: &'a Oracle<'a>,
    /// Normalised targets already probed.
    seen: HashSet<String>,
    plan: Plan,
}

impl Builder<'_> {
    fn category(&mut self, c: &LoadedCategory, denied_only: bool) {
        let name = c.category.name.to_string();
        let start = self.plan.probes.len();
        let mut i = 0;
        'rules: for rule in &c.category.rules {
            let port = preferred_port(&rule.ports);
            for pattern in &rule.domains {
                let p = pattern.as_str();
                if denied_only {
                    self.push(Kind::DeniedName, &instance(p), port, p, Some(&name));
                } else {
                    self.pattern(p, i, port, &name);
                }
                i += 1;
                if self.plan.probes.len() - start >= PER_CATEGORY {
                    break 'rules;
                }
            }
            for (j, net) in rule.networks.iter().enumerate() {
                if denied_only {
                    break;
                }
                if let Some(ip) = outside(*net) {
                    self.push(
                        Kind::OutsideNetwork,
                        &host_of(ip),
                        port,
                        &net.to_string(),
                        Some(&name),
                    );
                }
                if j == 0 {
                    let ip = net.network();
                    self.push(
                        Kind::InsideNetwork,
                        &host_of(ip),
                        port,
                        &net.to_string(),
                        Some(&name),
                    );
                }
                if self.plan.probes.len() - start >= PER_CATEGORY {
                    break 'rules;
                }
            }
        }
        if self.plan.probes.len() - start >= PER_CATEGORY {
            self.plan.probes.truncate(start + PER_CATEGORY);
            self.plan.capped.push(name);
        }
    }

    /// Up to [`PER_PATTERN`] probes: a lookalike; a second lookalike or the IDN one
    /// (alternating, so a category shows both); a real spelling.
    fn pattern(&mut self, p: &str, i: usize, port: u16, cat: &str) {
        let look = lookalikes(p);
        let first: Vec<(Kind, String)> =
            look.iter().map(|h| (Kind::Lookalike, h.clone())).collect();
        let mut second: Vec<(Kind, String)> = rotate(&look[1.min(look.len())..], i / 2)
            .into_iter()
            .map(|h| (Kind::Lookalike, h))
            .collect();
        if let Some(h) = idn_lookalike(p) {
            let at = if i % 2 == 1 { 0 } else { second.len() };
            second.insert(at, (Kind::IdnLookalike, h));
        }
        let real = [(Kind::RealSpelling, real_spelling(p, i))];
        for slot in [&first[..], &second[..], &real[..]]
            .iter()
            .take(PER_PATTERN)
        {
            self.first_of(slot, port, p, cat);
        }
    }

    fn first_of(&mut self, hosts: &[(Kind, String)], port: u16, from: &str, cat: &str) {
        for (kind, h) in hosts {
            if self.push(*kind, h, port, from, Some(cat)) {
                return;
            }
        }
    }

    /// Adds a probe unless it repeats one, or is a "lookalike" some loaded rule allows
    /// (then it is a real name, and no evidence of anything).
    fn push(&mut self, kind: Kind, host: &str, port: u16, from: &str, cat: Option<&str>) -> bool {
        let target = format!("{host}:{port}");
        let parsed = Target::parse_authority(&target, None).ok();
        if kind.must_not_break_out() && kind != Kind::SharedHosting {
            if let Some(t) = &parsed {
                if self.oracle.covered(&t.host) {
                    return false;
                }
            }
        }
        let key = parsed.map_or_else(|| target.clone(), |t| t.to_string());
        if !self.seen.insert(key) {
            return false;
        }
        self.plan.probes.push(Probe {
            kind,
            target,
            from: from.to_string(),
            category: cat.map(str::to_string),
        });
        true
    }
}

/// The port a probe uses: 443 when the rule allows it, else the rule's first port.
fn preferred_port(ports: &[u16]) -> u16 {
    if ports.contains(&443) {
        443
    } else {
        ports.first().copied().unwrap_or(443)
    }
}

fn rotate(list: &[String], by: usize) -> Vec<String> {
    if list.is_empty() {
        return Vec::new();
    }
    let by = by % list.len();
    list[by..].iter().chain(&list[..by]).cloned().collect()
}

/// The pattern with every wildcard filled in: `*.sharepoint.com` → `contoso.sharepoint.com`,
/// `*-my.sharepoint.com` → `contoso-my.sharepoint.com`.
pub fn instance(pattern: &str) -> String {
    pattern.replace('*', INSTANCE)
}

/// The literal labels right of the last wildcard (the whole name for an exact pattern).
fn zone(pattern: &str) -> &str {
    match pattern.rfind('*') {
        None => pattern,
        Some(star) => match pattern[star..].find('.') {
            Some(dot) => &pattern[star + dot + 1..],
            None => "",
        },
    }
}

/// Names that look like `pattern` but that it does not match, most telling first.
pub fn lookalikes(pattern: &str) -> Vec<String> {
    let labels: Vec<&str> = pattern.split('.').collect();
    let real = instance(pattern);
    let zone = zone(pattern);
    let exact = !pattern.contains('*');
    let mut out = Vec::new();
    if let Some(rest) = pattern.strip_prefix("*.") {
        // `*.` never covers the bare suffix, nor the suffix inside another name.
        out.push(instance(rest));
        out.push(format!("{}.{ELSEWHERE}", instance(rest)));
    }
    if let Some(first) = labels.first().filter(|l| l.contains('*') && **l != "*") {
        // A wildcard inside the first label needs at least one character, and the fixed
        // part (`-my`) must be there.
        let rest = instance(&labels[1..].join("."));
        let (pre, suf) = first.split_once('*').unwrap_or((first, ""));
        out.push(format!("{pre}{suf}.{rest}"));
        out.push(format!("{INSTANCE}.{rest}"));
    }
    if let Some(i) = labels.iter().skip(1).position(|l| *l == "*").map(|i| i + 1) {
        // A `*` label in the middle stands for exactly one label.
        let mut none: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        none.remove(i);
        out.push(instance(&none.join(".")));
        let mut two: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        two[i] = format!("{INSTANCE}.x");
        out.push(instance(&two.join(".")));
    }
    if !pattern.starts_with("*.") {
        out.push(format!("{real}.{ELSEWHERE}"));
    }
    if exact {
        out.push(format!("x{real}"));
        if let Some((a, b)) = real.split_once('.') {
            out.push(format!("{a}-{b}"));
        }
    } else {
        out.push(format!("x{zone}"));
        if !pattern.starts_with("*.") {
            out.push(format!("x.{real}"));
        }
    }
    let mut seen = HashSet::new();
    out.retain(|h| !h.is_empty() && seen.insert(h.clone()));
    out
}

/// The real name with one Latin letter of its fixed part replaced by the Cyrillic letter
/// that looks the same (`о` for `o`): a different name once converted to punycode.
pub fn idn_lookalike(pattern: &str) -> Option<String> {
    const HOMOGLYPHS: &[(char, char)] = &[
        ('o', '\u{43e}'),
        ('a', '\u{430}'),
        ('e', '\u{435}'),
        ('c', '\u{441}'),
        ('p', '\u{440}'),
        ('x', '\u{445}'),
        ('y', '\u{443}'),
        ('i', '\u{456}'),
    ];
    let real = instance(pattern);
    let zone = zone(pattern);
    let offset = real.len().checked_sub(zone.len())?;
    // Prefer a letter left of the top-level domain.
    let tld_at = zone.rfind('.').unwrap_or(zone.len());
    let pick = |range: &str| {
        range.char_indices().find_map(|(i, c)| {
            HOMOGLYPHS
                .iter()
                .find(|(l, _)| *l == c)
                .map(|(_, h)| (i, *h))
        })
    };
    let (at, glyph) = pick(&zone[..tld_at]).or_else(|| pick(zone))?;
    let at = offset + at;
    let mut out = String::with_capacity(real.len() + 2);
    out.push_str(&real[..at]);
    out.push(glyph);
    out.push_str(&real[at + 1..]);
    Some(out)
}

/// A spelling of the real name that must decide the same: upper case, a trailing dot, or
/// both (chosen by `i`, so a category shows all three).
pub fn real_spelling(pattern: &str, i: usize) -> String {
    let real = instance(pattern);
    match i % 3 {
        0 => real.to_ascii_uppercase(),
        1 => format!("{real}."),
        _ => {
            let capitalised: Vec<String> = real
                .split('.')
                .map(|l| {
                    let mut c = l.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            format!("{}.", capitalised.join("."))
        }
    }
}

/// The first address after the network (after its broadcast address), if there is one.
pub fn outside(net: IpNet) -> Option<IpAddr> {
    match net {
        IpNet::V4(n) => u32::from(n.broadcast())
            .checked_add(1)
            .map(|a| IpAddr::from(std::net::Ipv4Addr::from(a))),
        IpNet::V6(n) => u128::from(n.broadcast())
            .checked_add(1)
            .map(|a| IpAddr::from(std::net::Ipv6Addr::from(a))),
    }
}

/// The host part of an authority: IPv6 in brackets.
pub fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Client addresses in no segment: the first such IPv4 and IPv6 documentation address.
pub fn unknown_clients(segments: &[IpNet]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for c in UNKNOWN_CLIENT_CANDIDATES {
        let Ok(ip) = c.parse::<IpAddr>() else {
            continue;
        };
        let family_done = out.iter().any(|o| o.is_ipv4() == ip.is_ipv4());
        if !family_done && !segments.iter().any(|n| n.contains(&ip)) {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::oracle::pattern_matches;
    use crate::policy::Host;

    fn host(raw: &str) -> String {
        Host::parse(raw).unwrap().to_string()
    }

    #[test]
    fn lookalikes_of_each_pattern_form() {
        assert_eq!(
            lookalikes("login.microsoftonline.com"),
            [
                "login.microsoftonline.com.evil.example",
                "xlogin.microsoftonline.com",
                "login-microsoftonline.com",
            ]
        );
        assert_eq!(
            lookalikes("*.sharepoint.com"),
            [
                "sharepoint.com",
                "sharepoint.com.evil.example",
                "xsharepoint.com"
            ]
        );
        assert_eq!(
            lookalikes("*-my.sharepoint.com"),
            [
                "-my.sharepoint.com",
                "contoso.sharepoint.com",
                "contoso-my.sharepoint.com.evil.example",
                "xsharepoint.com",
                "x.contoso-my.sharepoint.com",
            ]
        );
        assert_eq!(
            lookalikes("autodiscover.*.onmicrosoft.com"),
            [
                "autodiscover.onmicrosoft.com",
                "autodiscover.contoso.x.onmicrosoft.com",
                "autodiscover.contoso.onmicrosoft.com.evil.example",
                "xonmicrosoft.com",
                "x.autodiscover.contoso.onmicrosoft.com",
            ]
        );
    }

    #[test]
    fn no_lookalike_matches_its_own_pattern() {
        for p in [
            "login.microsoftonline.com",
            "*.sharepoint.com",
            "*-my.sharepoint.com",
            "autodiscover.*.onmicrosoft.com",
            "*cdn.onenote.net",
            "app*.example.com",
            "aka.ms",
        ] {
            for l in lookalikes(p) {
                assert!(!pattern_matches(p, &l), "{p} matches its lookalike {l}");
            }
            let idn = idn_lookalike(p).unwrap();
            assert!(!idn.is_ascii(), "{idn}");
            let normalised = host(&idn);
            assert!(normalised.contains("xn--"), "{normalised}");
            assert!(!pattern_matches(p, &normalised), "{p} matches {normalised}");
        }
    }

    #[test]
    fn idn_lookalike_changes_the_fixed_part() {
        assert_eq!(
            idn_lookalike("login.microsoftonline.com").as_deref(),
            Some("l\u{43e}gin.microsoftonline.com")
        );
        // Not the filled-in wildcard, which the pattern would still match.
        assert_eq!(
            idn_lookalike("*.sharepoint.com").as_deref(),
            Some("contoso.sh\u{430}repoint.com")
        );
    }

    #[test]
    fn real_spellings_normalise_to_the_real_name() {
        for (i, p) in [
            "login.microsoftonline.com",
            "*.sharepoint.com",
            "*-my.sharepoint.com",
        ]
        .iter()
        .enumerate()
        {
            for k in 0..3 {
                let s = real_spelling(p, i + k);
                assert_ne!(s, instance(p));
                assert!(pattern_matches(p, &host(&s)), "{p}: {s}");
            }
        }
    }

    #[test]
    fn first_address_after_a_network() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(
            outside(n("20.190.128.0/18")),
            Some("20.190.192.0".parse().unwrap())
        );
        assert_eq!(
            outside(n("13.107.6.152/31")),
            Some("13.107.6.154".parse().unwrap())
        );
        assert_eq!(
            outside(n("2603:1006:2000::/48")),
            Some("2603:1006:2001::".parse().unwrap())
        );
        assert_eq!(outside(n("255.255.255.0/24")), None);
        assert_eq!(host_of("2603::1".parse().unwrap()), "[2603::1]");
    }

    #[test]
    fn unknown_clients_lie_outside_every_segment() {
        let segs: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        let got = unknown_clients(&segs);
        assert_eq!(
            got,
            vec![
                "198.51.100.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert!(
            unknown_clients(&["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]).is_empty()
        );
    }
}
