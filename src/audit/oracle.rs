//! What a probe *should* get, worked out independently of the policy's label trie: a plain
//! reading of the pattern text, label by label. The report puts the two side by side, so a
//! bug in either shows up as a contradiction instead of passing silently.

use crate::config::LoadedCategory;
use crate::policy::allowlist::Rule;
use crate::policy::{Host, Target};

/// The expectation for one probe under one profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A rule of a category the profile breaks out matches name (or network) and port.
    Direct,
    /// Anything else: upstream or refused, never direct.
    NotDirect,
    /// A rule of a category the profile denies matches (or the client is in no segment).
    Deny,
}

/// The allowlists as loaded, read the simple way.
pub struct Oracle<'a> {
    categories: &'a [LoadedCategory],
}

impl<'a> Oracle<'a> {
    pub fn new(categories: &'a [LoadedCategory]) -> Self {
        Oracle { categories }
    }

    /// True when any rule of any loaded category matches the host, whatever the port:
    /// such a name is a real allowlisted name, not a lookalike.
    pub fn covered(&self, host: &Host) -> bool {
        self.categories
            .iter()
            .flat_map(|c| &c.category.rules)
            .any(|r| rule_matches(r, host))
    }

    /// The expectation for a profile given by its direct and deny category names. A target
    /// that could not be normalised is never direct.
    pub fn expect(&self, direct: &[&str], deny: &[&str], target: Option<&Target>) -> Expect {
        let Some(target) = target else {
            return Expect::NotDirect;
        };
        let rules_of = |names: &[&str]| -> Vec<&Rule> {
            self.categories
                .iter()
                .filter(|c| names.contains(&&*c.category.name))
                .flat_map(|c| &c.category.rules)
                .collect()
        };
        if rules_of(deny).iter().any(|r| rule_matches(r, &target.host)) {
            return Expect::Deny;
        }
        let direct = rules_of(direct)
            .iter()
            .any(|r| rule_matches(r, &target.host) && r.ports.contains(&target.port));
        if direct {
            Expect::Direct
        } else {
            Expect::NotDirect
        }
    }
}

fn rule_matches(rule: &Rule, host: &Host) -> bool {
    match host {
        Host::Name(name) => rule
            .domains
            .iter()
            .any(|p| pattern_matches(p.as_str(), name)),
        Host::Ip(ip) => rule.networks.iter().any(|n| n.contains(ip)),
    }
}

/// Microsoft's pattern semantics on plain strings: `*.` in front takes one or more labels,
/// a `*` label exactly one, a `*` inside a label at least one character.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let (any_sub, rest) = match pattern.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let want: Vec<&str> = rest.split('.').collect();
    let have: Vec<&str> = name.split('.').collect();
    let fits = if any_sub {
        have.len() > want.len()
    } else {
        have.len() == want.len()
    };
    fits && want
        .iter()
        .zip(&have[have.len() - want.len()..])
        .all(|(w, h)| label_matches(w, h))
}

fn label_matches(want: &str, have: &str) -> bool {
    if want == "*" {
        return !have.is_empty();
    }
    match want.split_once('*') {
        None => want == have,
        Some((pre, suf)) => {
            have.len() > pre.len() + suf.len() && have.starts_with(pre) && have.ends_with(suf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_patterns_as_microsoft_does() {
        let table = [
            ("outlook.office.com", "outlook.office.com", true),
            ("outlook.office.com", "x.outlook.office.com", false),
            ("*.sharepoint.com", "sharepoint.com", false),
            ("*.sharepoint.com", "a.b.sharepoint.com", true),
            ("*.sharepoint.com", "xsharepoint.com", false),
            ("*-my.sharepoint.com", "contoso-my.sharepoint.com", true),
            ("*-my.sharepoint.com", "-my.sharepoint.com", false),
            ("*-my.sharepoint.com", "a.contoso-my.sharepoint.com", false),
            (
                "autodiscover.*.onmicrosoft.com",
                "autodiscover.c.onmicrosoft.com",
                true,
            ),
            (
                "autodiscover.*.onmicrosoft.com",
                "autodiscover.onmicrosoft.com",
                false,
            ),
            (
                "autodiscover.*.onmicrosoft.com",
                "autodiscover.a.b.onmicrosoft.com",
                false,
            ),
            ("*cdn.onenote.net", "cdn.onenote.net", false),
            ("*cdn.onenote.net", "appcdn.onenote.net", true),
        ];
        for (pattern, name, want) in table {
            assert_eq!(pattern_matches(pattern, name), want, "{pattern} {name}");
        }
    }
}
