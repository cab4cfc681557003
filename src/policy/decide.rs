//! `decide`: client + target → direct, upstream or deny, with the reason.
//!
//! Precedence: an unknown client is denied; the profile's deny categories come first; then
//! the allowlists of the profile's direct categories, where name (or IP network) *and* port
//! must match, most specific pattern winning; a name that matches such a rule on a port
//! the rule does not list is refused (a breakout name on an odd port is a tunnel nobody
//! asked for); everything else goes upstream. No branch returns `Direct` without a
//! matching rule of an enabled category.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::snapshot::{CategorySet, Profile, RuleId, Snapshot};
use super::target::{Host, Target};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Local breakout: the appliance connects to the destination itself.
    Direct,
    /// To the security cloud (the parent proxy).
    Upstream,
    /// Refused.
    Deny,
}

/// Why a decision was made; a closed set so it can label metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Matched an allowlist rule of a category the profile breaks out.
    Allowlisted,
    /// No rule of an enabled category matched.
    NotAllowlisted,
    /// The name matched an enabled rule but the port is not one it allows: refused.
    PortNotAllowlisted,
    /// Matched a rule of a category the profile denies.
    DenyRule,
    /// The client address is in no configured segment.
    UnknownClient,
    /// The request's target could not be normalised.
    InvalidTarget,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowlisted => "allowlisted",
            Reason::NotAllowlisted => "not_allowlisted",
            Reason::PortNotAllowlisted => "port_not_allowlisted",
            Reason::DenyRule => "deny_rule",
            Reason::UnknownClient => "unknown_client",
            Reason::InvalidTarget => "invalid_target",
        }
    }
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Upstream => "upstream",
            Route::Deny => "deny",
        }
    }
}

/// The answer to "why did this go where it went?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub route: Route,
    pub reason: Reason,
    pub segment: Option<Arc<str>>,
    pub profile: Option<Arc<str>>,
    pub category: Option<Arc<str>>,
    pub rule: Option<Arc<str>>,
}

impl Decision {
    fn new(route: Route, reason: Reason) -> Decision {
        Decision {
            route,
            reason,
            segment: None,
            profile: None,
            category: None,
            rule: None,
        }
    }

    /// The decision for a client address in no segment.
    pub fn unknown_client() -> Decision {
        Decision::new(Route::Deny, Reason::UnknownClient)
    }

    /// The decision for a request whose target could not be parsed.
    pub fn invalid_target() -> Decision {
        Decision::new(Route::Deny, Reason::InvalidTarget)
    }
}

/// Decides for a client address: its segment (longest prefix) selects the profile.
pub fn decide(snap: &Snapshot, client: IpAddr, target: &Target) -> Decision {
    let Some(&seg) = snap.clients.longest(client) else {
        return Decision::unknown_client();
    };
    let segment = &snap.segments[seg];
    let mut d = decide_in(snap, &snap.profiles[segment.profile], target);
    d.segment = Some(segment.name.clone());
    d
}

/// Decides as a named profile would, whatever the client (for `route --profile`, audits).
pub fn decide_for_profile(snap: &Snapshot, profile: &str, target: &Target) -> Option<Decision> {
    snap.profile(profile).map(|p| decide_in(snap, p, target))
}

fn decide_in(snap: &Snapshot, profile: &Profile, target: &Target) -> Decision {
    let mut deny: Option<(u32, RuleId)> = None;
    let mut direct: Option<(u32, RuleId)> = None;
    let mut wrong_port: Option<(u32, RuleId)> = None;
    let mut consider = |specificity: u32, rid: RuleId| {
        let rule = &snap.rules[rid.0 as usize];
        if profile.deny.contains(rule.category) {
            keep_best(&mut deny, specificity, rid);
        } else if profile.direct.contains(rule.category) {
            if rule.ports.contains(&target.port) {
                keep_best(&mut direct, specificity, rid);
            } else if !rule.ports.is_empty() {
                // A rule without TCP ports (UDP media, for the firewall) says nothing
                // about what the proxy carries.
                keep_best(&mut wrong_port, specificity, rid);
            }
        }
    };
    match &target.host {
        Host::Name(name) => snap.domains.matches(name, &mut consider),
        Host::Ip(ip) => {
            for (len, &rid) in snap.networks.lookup(*ip) {
                consider(u32::from(len), rid);
            }
        }
    }
    let (route, reason, hit) = if let Some((_, rid)) = deny {
        (Route::Deny, Reason::DenyRule, Some(rid))
    } else if let Some((_, rid)) = direct {
        (Route::Direct, Reason::Allowlisted, Some(rid))
    } else if let Some((_, rid)) = wrong_port {
        (Route::Deny, Reason::PortNotAllowlisted, Some(rid))
    } else {
        (Route::Upstream, Reason::NotAllowlisted, None)
    };
    let mut d = Decision::new(route, reason);
    d.profile = Some(profile.name.clone());
    if let Some(rid) = hit {
        let rule = &snap.rules[rid.0 as usize];
        d.category = Some(snap.category_names[rule.category.0 as usize].clone());
        d.rule = Some(rule.name.clone());
    }
    d
}

/// Most specific wins; of equals, the first loaded (lowest rule id).
fn keep_best(slot: &mut Option<(u32, RuleId)>, specificity: u32, rid: RuleId) {
    let better = match *slot {
        None => true,
        Some((s, r)) => specificity > s || (specificity == s && rid.0 < r.0),
    };
    if better {
        *slot = Some((specificity, rid));
    }
}

/// The categories a profile breaks out (for summaries and audits).
pub fn direct_categories(snap: &Snapshot, profile: &Profile) -> Vec<String> {
    names(snap, profile.direct)
}

fn names(snap: &Snapshot, set: CategorySet) -> Vec<String> {
    snap.category_names(set)
        .into_iter()
        .map(str::to_string)
        .collect()
}
