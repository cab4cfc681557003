//! The `[tenant_restrictions]` table: off when absent. When present it needs the CA to
//! mint sign-in leaves from and at least one policy saying which segments or profiles get
//! which headers; the CA is loaded here so `check` fails on what would fail a sign-in.

use std::collections::HashSet;
use std::path::Path;

use toml::Spanned;

use super::allowlists;
use super::error::Problems;
use super::schema;
use super::validate::resolve;
use crate::intercept::scope::{DEFAULT_HOSTS, DEFAULT_MSA_HOSTS, NEVER};
use crate::intercept::{Interceptor, Scope, TenantPolicy, TenantRestrictions};
use crate::policy::{Host, ProfileSpec, SegmentSpec};

const KEY: &str = "tenant_restrictions";

pub(super) fn validate(
    p: &mut Problems<'_>,
    t: &Option<Spanned<schema::TenantRestrictions>>,
    base: Option<&Path>,
    segments: &[SegmentSpec],
    profiles: &[ProfileSpec],
    categories: &[crate::config::LoadedCategory],
) -> Option<TenantRestrictions> {
    let spanned = t.as_ref()?;
    let t = spanned.get_ref();
    if t.policies.is_empty() {
        p.at(
            spanned.span(),
            KEY,
            "no [[tenant_restrictions.policy]]: add one, or remove the table to turn tenant restrictions off",
        );
    }
    let hosts = host_list(p, &t.hosts, DEFAULT_HOSTS, "tenant_restrictions.hosts");
    let msa_hosts = host_list(
        p,
        &t.msa_hosts,
        DEFAULT_MSA_HOSTS,
        "tenant_restrictions.msa_hosts",
    );
    if let Some(both) = hosts.iter().find(|h| msa_hosts.contains(h)) {
        p.at(
            spanned.span(),
            "tenant_restrictions.msa_hosts",
            format!("{both:?} is in both hosts and msa_hosts"),
        );
    }
    let mut names = HashSet::new();
    let mut seen_segments = HashSet::new();
    let mut seen_profiles = HashSet::new();
    let mut policies = Vec::new();
    for pol in &t.policies {
        let name = pol.name.get_ref();
        if !allowlists::valid_name(name) {
            p.at(
                pol.name.span(),
                "tenant_restrictions.policy.name",
                "use lower-case letters, digits and '-'",
            );
        }
        if !names.insert(name.clone()) {
            p.at(
                pol.name.span(),
                "tenant_restrictions.policy.name",
                format!("duplicate policy {name:?}"),
            );
        }
        if pol.segments.is_empty() && pol.profiles.is_empty() {
            p.at(
                pol.name.span(),
                "tenant_restrictions.policy",
                "name the segments or profiles it applies to",
            );
        }
        for s in &pol.segments {
            if !segments.iter().any(|seg| &seg.name == s.get_ref()) {
                p.at(
                    s.span(),
                    "tenant_restrictions.policy.segments",
                    format!("unknown segment {:?}", s.get_ref()),
                );
            } else if !seen_segments.insert(s.get_ref().clone()) {
                p.at(
                    s.span(),
                    "tenant_restrictions.policy.segments",
                    format!("segment {:?} is in two policies", s.get_ref()),
                );
            }
        }
        for pr in &pol.profiles {
            if !profiles.iter().any(|prof| &prof.name == pr.get_ref()) {
                p.at(
                    pr.span(),
                    "tenant_restrictions.policy.profiles",
                    format!("unknown profile {:?}", pr.get_ref()),
                );
            } else if !seen_profiles.insert(pr.get_ref().clone()) {
                p.at(
                    pr.span(),
                    "tenant_restrictions.policy.profiles",
                    format!("profile {:?} is in two policies", pr.get_ref()),
                );
            }
        }
        let v1 = match (&pol.context, pol.tenants.is_empty()) {
            (None, true) => false,
            (Some(c), false) => {
                if !is_guid(c.get_ref()) {
                    p.at(
                        c.span(),
                        "tenant_restrictions.policy.context",
                        "the directory (tenant) ID, a GUID",
                    );
                }
                for t in &pol.tenants {
                    if !is_tenant(t.get_ref()) {
                        p.at(
                            t.span(),
                            "tenant_restrictions.policy.tenants",
                            format!("{:?} is not a tenant domain or ID", t.get_ref()),
                        );
                    }
                }
                true
            }
            (None, false) => {
                p.at(
                    pol.name.span(),
                    "tenant_restrictions.policy.context",
                    "v1 needs context (the directory ID) with tenants",
                );
                false
            }
            (Some(c), true) => {
                p.at(
                    c.span(),
                    "tenant_restrictions.policy.tenants",
                    "v1 needs tenants (the permitted tenant list) with context",
                );
                false
            }
        };
        if let Some(v2) = &pol.v2_policy {
            let ok = v2
                .get_ref()
                .split_once(':')
                .is_some_and(|(t, pid)| is_guid(t) && is_guid(pid));
            if !ok {
                p.at(
                    v2.span(),
                    "tenant_restrictions.policy.v2_policy",
                    "write <tenantId>:<policyId>, two GUIDs",
                );
            }
        }
        if !v1 && pol.v2_policy.is_none() && !pol.restrict_msa {
            p.at(
                pol.name.span(),
                "tenant_restrictions.policy",
                "sets nothing: give tenants + context (v1), v2_policy, or restrict_msa",
            );
        }
        let strings =
            |l: &[Spanned<String>]| l.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>();
        let built = TenantPolicy::new(
            name,
            strings(&pol.segments),
            strings(&pol.profiles),
            if v1 {
                strings(&pol.tenants)
            } else {
                Vec::new()
            },
            pol.context
                .as_ref()
                .filter(|_| v1)
                .map(|c| c.get_ref().clone()),
            pol.v2_policy.as_ref().map(|v| v.get_ref().clone()),
            pol.restrict_msa,
        );
        match built {
            Some(b) => policies.push(b),
            None => p.at(
                pol.name.span(),
                "tenant_restrictions.policy",
                "a value cannot be sent as an HTTP header",
            ),
        }
    }
    let upstream = t
        .upstream_ca_file
        .as_ref()
        .map(|f| resolve(base, f.get_ref()));
    let interceptor = match Interceptor::new(
        &resolve(base, t.ca_cert.get_ref()),
        &resolve(base, t.ca_key.get_ref()),
        upstream.as_deref(),
    ) {
        Ok(i) => Some(i),
        Err(e) => {
            let span = match &e {
                crate::intercept::SetupError::Bundle { .. }
                | crate::intercept::SetupError::NoRoots => t
                    .upstream_ca_file
                    .as_ref()
                    .map_or(spanned.span(), |f| f.span()),
                crate::intercept::SetupError::Ca(crate::intercept::CaError::Cert { .. }) => {
                    t.ca_cert.span()
                }
                _ => t.ca_key.span(),
            };
            p.at(span, KEY, e.to_string());
            None
        }
    };
    Some(TenantRestrictions {
        scope: Scope {
            networks: signin_networks(categories, hosts.iter().chain(&msa_hosts)),
            policies,
            hosts,
            msa_hosts,
        },
        interceptor: interceptor?,
    })
}

/// The networks of every allowlist rule that names a sign-in host: an IP address in them
/// may be a sign-in, whose ClientHello must name its host.
fn signin_networks<'a>(
    categories: &[crate::config::LoadedCategory],
    hosts: impl Iterator<Item = &'a String> + Clone,
) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    for rule in categories.iter().flat_map(|c| &c.category.rules) {
        let mut set = crate::policy::domain::DomainSet::default();
        for d in &rule.domains {
            set.insert(d, ());
        }
        let mut named = false;
        for h in hosts.clone() {
            set.matches(h, &mut |_, ()| named = true);
        }
        if named {
            out.extend(rule.networks.iter().copied());
        }
    }
    out
}

fn host_list(
    p: &mut Problems<'_>,
    list: &Option<Vec<Spanned<String>>>,
    default: &[&str],
    key: &str,
) -> Vec<String> {
    let Some(list) = list else {
        return default.iter().map(|h| h.to_string()).collect();
    };
    list.iter()
        .filter_map(|h| {
            let raw = h.get_ref();
            match Host::parse(raw) {
                Ok(Host::Name(n)) if !n.contains('*') && !NEVER.contains(&&*n) => Some(n.to_string()),
                Ok(Host::Name(n)) if NEVER.contains(&&*n) => {
                    p.at(h.span(), key, format!("{raw:?} is never intercepted: device registration and device sign-in need the PC's own certificate"));
                    None
                }
                _ => {
                    p.at(h.span(), key, format!("{raw:?}: name one sign-in host exactly (no wildcard, no address)"));
                    None
                }
            }
        })
        .collect()
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A tenant domain (`city.example.jp`, `contoso.onmicrosoft.com`) or ID: no separators.
fn is_tenant(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const CTX: &str = "22222222-2222-2222-2222-222222222222";

    fn load(dir: &Path, table: &str) -> Result<crate::Config, crate::config::ConfigError> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\n\
             [[segment]]\nname = \"staff\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"case1\"\n{table}\n"
        );
        crate::config::load_str(Path::new("t.toml"), &text, Some(dir))
    }

    fn lab() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        crate::intercept::ca::init(
            &dir.path().join("ca.pem"),
            &dir.path().join("ca.key"),
            "Lab",
        )
        .unwrap();
        dir
    }

    const HEAD: &str = "[tenant_restrictions]\nca_cert = \"ca.pem\"\nca_key = \"ca.key\"\nupstream_ca_file = \"ca.pem\"\n";

    #[test]
    fn off_by_default() {
        let dir = lab();
        assert!(load(dir.path(), "").unwrap().tenant.is_none());
    }

    #[test]
    fn reads_v1_v2_and_msa() {
        let dir = lab();
        let c = load(
            dir.path(),
            &format!(
                "{HEAD}[[tenant_restrictions.policy]]\nname = \"city\"\nsegments = [\"staff\"]\n\
                 tenants = [\"city.example.jp\"]\ncontext = \"{CTX}\"\nv2_policy = \"{CTX}:{CTX}\"\nrestrict_msa = true\n"
            ),
        )
        .unwrap();
        let t = c.tenant.unwrap();
        assert_eq!(t.scope.hosts.len(), 3);
        assert_eq!(t.scope.msa_hosts, ["login.live.com"]);
        let plan = t
            .scope
            .plan(Some("staff"), Some("case1"), "login.microsoftonline.com")
            .unwrap();
        assert_eq!(plan.headers.len(), 3);
    }

    #[test]
    fn errors_cite_the_line() {
        let dir = lab();
        let e = load(
            dir.path(),
            &format!(
                "{HEAD}hosts = [\"device.login.microsoftonline.com\", \"*.live.com\"]\n\
                 [[tenant_restrictions.policy]]\nname = \"city\"\nsegments = [\"nope\"]\n\
                 tenants = [\"a,b\"]\ncontext = \"not-a-guid\"\nv2_policy = \"x\"\n"
            ),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        for want in [
            "t.toml:11: tenant_restrictions.hosts",
            "t.toml:14: tenant_restrictions.policy.segments",
            "t.toml:15: tenant_restrictions.policy.tenants",
            "t.toml:16: tenant_restrictions.policy.context",
            "t.toml:17: tenant_restrictions.policy.v2_policy",
        ] {
            assert!(e.contains(want), "{want} in {e}");
        }
        assert!(e.contains("never intercepted"), "{e}");
    }

    #[test]
    fn no_ca_no_policy_or_nothing_set_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(
            dir.path(),
            &format!("{HEAD}[[tenant_restrictions.policy]]\nname = \"city\"\nsegments = [\"staff\"]\nrestrict_msa = true\n"),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("t.toml:9") && e.contains("ca.key"), "{e}");
        let dir = lab();
        let e = load(dir.path(), HEAD)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("no [[tenant_restrictions.policy]]"), "{e}");
        let e = load(
            dir.path(),
            &format!(
                "{HEAD}[[tenant_restrictions.policy]]\nname = \"city\"\nprofiles = [\"case1\"]\n"
            ),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("sets nothing"), "{e}");
        assert!(load(dir.path(), &format!("{HEAD}bogus = 1\n")).is_err());
    }
}
