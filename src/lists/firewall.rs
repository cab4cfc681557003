//! What a profile breaks out but the proxy cannot carry, for the firewall of the LBO line:
//! UDP media (Teams prefers UDP 3478-3481) has to leave without a proxy. The networks and
//! UDP ports come from the same loaded categories the proxy decides with, so the firewall
//! and the proxy work from one list. Rendered as an nftables script that filters nothing
//! by itself: it fills named sets and a chain with no hook, for the municipality to use.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ipnet::IpNet;

use crate::config::{Config, LoadedCategory, EMBEDDED_NAME};

/// The nftables table every export writes into.
pub const TABLE: &str = "lbo_proxy";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FirewallError {
    #[error("unknown profile {profile:?}; known profiles: {}", known.join(", "))]
    UnknownProfile { profile: String, known: Vec<String> },
    #[error("profile name {0:?} cannot name an nftables set: it must start with a letter")]
    BadName(String),
}

/// The nftables script for `profile`, in table `inet lbo_proxy`: sets `<profile>_v4` and
/// `<profile>_v6` (every network of the profile's categories); when some rule carries
/// `udp_ports`, `<profile>_udp_v4`/`_udp_v6` (those rules' networks) and `<profile>_udp`
/// (their ports); and chain `<profile>_udp_media` with the rule that lets them out.
pub fn nftables(config: &Config, profile: &str) -> Result<String, FirewallError> {
    let snap = &config.policy;
    let Some(p) = snap.profile(profile) else {
        return Err(FirewallError::UnknownProfile {
            profile: profile.to_string(),
            known: snap.profiles().iter().map(|p| p.name.to_string()).collect(),
        });
    };
    if !profile.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(FirewallError::BadName(profile.to_string()));
    }
    let categories: Vec<&LoadedCategory> = snap
        .category_names(p.direct)
        .into_iter()
        .filter_map(|n| config.categories.iter().find(|c| &*c.category.name == n))
        .collect();

    let all = merged(
        categories
            .iter()
            .flat_map(|c| &c.category.rules)
            .flat_map(|r| &r.networks),
    );
    // The rules that carry UDP ports, with their networks: only these may get UDP.
    let udp_rules: Vec<(&[u16], &[IpNet])> = categories
        .iter()
        .flat_map(|c| c.rules.iter().zip(&c.category.rules))
        .filter(|(info, _)| !info.udp_ports.is_empty())
        .map(|(info, rule)| (&info.udp_ports[..], &rule.networks[..]))
        .collect();
    let udp_nets = merged(udp_rules.iter().flat_map(|(_, nets)| nets.iter()));
    let udp_ports: Vec<u16> = udp_rules
        .iter()
        .flat_map(|(p, _)| p.iter().copied())
        .collect();
    let sets = Sets {
        profile,
        all,
        udp_nets,
        udp: port_ranges(&udp_ports),
    };
    let mut out = header(config, &sets, &categories);
    render(&mut out, &sets);
    Ok(out)
}

/// What one export holds, networks merged (IPv4 first) and ports as ranges.
struct Sets<'a> {
    profile: &'a str,
    /// Every network of the profile's categories.
    all: Vec<IpNet>,
    /// Networks of the rules that carry UDP ports.
    udp_nets: Vec<IpNet>,
    udp: Vec<(u16, u16)>,
}

/// De-duplicated, with a network inside another (or next to it) merged into one.
fn merged<'a>(nets: impl Iterator<Item = &'a IpNet>) -> Vec<IpNet> {
    let list: Vec<IpNet> = nets.map(IpNet::trunc).collect();
    let mut out = IpNet::aggregate(&list);
    out.sort();
    out
}

fn family(nets: &[IpNet], v4: bool) -> Vec<String> {
    nets.iter()
        .filter(|n| n.addr().is_ipv4() == v4)
        .map(ToString::to_string)
        .collect()
}

/// Sorted, de-duplicated ports as inclusive ranges of consecutive ports.
pub fn port_ranges(ports: &[u16]) -> Vec<(u16, u16)> {
    let sorted: BTreeSet<u16> = ports.iter().copied().collect();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for p in sorted {
        match out.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(p) => *end = p,
            _ => out.push((p, p)),
        }
    }
    out
}

fn range_text((a, b): (u16, u16)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// One line of a comment: provenance strings are free text.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header(config: &Config, sets: &Sets<'_>, categories: &[&LoadedCategory]) -> String {
    let profile = sets.profile;
    let mut h = String::from("#!/usr/sbin/nft -f\n");
    let source = config.source.display().to_string();
    let command = if source == EMBEDDED_NAME {
        format!("lbo-proxy allowlist firewall --profile {profile}")
    } else {
        format!("lbo-proxy allowlist firewall --config {source} --profile {profile}")
    };
    let _ = writeln!(h, "# lbo-proxy firewall export for profile {profile}");
    let _ = writeln!(h, "# Generated by: {command}");
    let _ = writeln!(h, "# Configuration: {source}");
    let _ = writeln!(
        h,
        "# Categories this profile breaks out, with their list version:"
    );
    let width = categories
        .iter()
        .map(|c| c.category.name.len())
        .max()
        .unwrap_or(0);
    for c in categories {
        let _ = writeln!(
            h,
            "#   {:<width$}  {}, retrieved {}",
            c.category.name,
            flat(&c.provenance.version),
            flat(&c.provenance.retrieved),
        );
    }
    let count = |nets: &[IpNet], v4| family(nets, v4).len();
    let _ = writeln!(
        h,
        "# Networks after merging: {} IPv4, {} IPv6; with UDP ports: {} IPv4, {} IPv6.",
        count(&sets.all, true),
        count(&sets.all, false),
        count(&sets.udp_nets, true),
        count(&sets.udp_nets, false),
    );
    let udp_text = if sets.udp.is_empty() {
        "none".to_string()
    } else {
        sets.udp
            .iter()
            .map(|r| range_text(*r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(h, "# UDP ports: {udp_text}.");
    let chain = format!("{profile}_udp_media");
    let listed = [
        (
            format!("{profile}_v4, {profile}_v6"),
            "every network of the categories above",
        ),
        (
            format!("{profile}_udp_v4, {profile}_udp_v6"),
            "the networks of the rules that carry UDP ports",
        ),
        (format!("{profile}_udp"), "those UDP ports"),
    ];
    let w = listed.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let sets_text: String = listed
        .iter()
        .map(|(n, what)| format!("#   {n:<w$}  {what}\n"))
        .collect();
    h.push_str(&format!(
        "#
# The proxy carries TCP only; this is for the UDP the profile's destinations use (Teams
# media prefers UDP 3478-3481 and otherwise falls back to TCP/TLS 443 through the proxy).
# Loading it filters nothing: it fills named sets and chain {chain}, which has no
# hook, in table inet {TABLE}:
{sets_text}# Each load replaces what an earlier load of this profile put there, so ranges removed
# from the lists go; other profiles and other tables are left alone.
# Check with `nft -c -f FILE`, load with `nft -f FILE`.
#
# To let UDP media out directly, jump to {chain} from a base chain of this same
# table (sets and chains are local to their table), before anything there drops it:
#   nft add chain inet {TABLE} forward '{{ type filter hook forward priority filter; }}'
#   nft add rule inet {TABLE} forward jump {chain}
# An accept in one table does not overrule a drop in another: if your firewall drops by
# default in its own table, put the same rule there, with these networks and ports.
"
    ));
    h
}

fn render(out: &mut String, sets: &Sets<'_>) {
    let profile = sets.profile;
    let has_udp = !sets.udp.is_empty();
    let chain = format!("{profile}_udp_media");
    let mut declared = vec![("v4", "ipv4_addr"), ("v6", "ipv6_addr")];
    if has_udp {
        declared.extend([
            ("udp_v4", "ipv4_addr"),
            ("udp_v6", "ipv6_addr"),
            ("udp", "inet_service"),
        ]);
    }
    let _ = writeln!(out, "\ntable inet {TABLE} {{");
    for (name, ty) in &declared {
        let _ = writeln!(
            out,
            "\tset {profile}_{name} {{\n\t\ttype {ty}\n\t\tflags interval\n\t}}"
        );
    }
    let _ = writeln!(out, "\tchain {chain} {{\n\t}}\n}}\n");
    for (name, _) in &declared {
        let _ = writeln!(out, "flush set inet {TABLE} {profile}_{name}");
    }
    let _ = writeln!(out, "flush chain inet {TABLE} {chain}");

    let elements = |out: &mut String, set: &str, items: Vec<String>| {
        if items.is_empty() {
            let _ = writeln!(out, "\n# {profile}_{set}: empty");
            return;
        }
        let _ = writeln!(out, "\nadd element inet {TABLE} {profile}_{set} {{");
        for i in items {
            let _ = writeln!(out, "\t{i},");
        }
        out.push_str("}\n");
    };
    elements(out, "v4", family(&sets.all, true));
    elements(out, "v6", family(&sets.all, false));
    if !has_udp {
        let _ = write!(
            out,
            "\n# No category of this profile carries udp_ports, so there are no UDP sets and\n\
             # {chain} stays empty: nothing may leave over UDP.\n"
        );
        return;
    }
    elements(out, "udp_v4", family(&sets.udp_nets, true));
    elements(out, "udp_v6", family(&sets.udp_nets, false));
    elements(
        out,
        "udp",
        sets.udp.iter().map(|r| range_text(*r)).collect(),
    );
    let _ = write!(
        out,
        "\n# UDP media to the networks that carry it; inert until a base chain jumps here.\n\
         add rule inet {TABLE} {chain} ip daddr @{profile}_udp_v4 udp dport @{profile}_udp accept\n\
         add rule inet {TABLE} {chain} ip6 daddr @{profile}_udp_v6 udp dport @{profile}_udp accept\n"
    );
}
