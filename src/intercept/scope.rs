//! Whether tenant restrictions apply to a connection: a pure function of the validated
//! policies, the client's segment and profile, and the target host. No I/O, so every row
//! of the scenario table is a unit test here, and `route` and the audit report use the
//! same answer as the proxy.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::ingress::sni_check::First;
use crate::policy::{Host, Target};

/// Entra ID sign-in hosts intercepted unless the config names others.
pub const DEFAULT_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.microsoft.com",
    "login.windows.net",
];

/// Consumer (Microsoft account) sign-in hosts, intercepted for `restrict_msa`.
pub const DEFAULT_MSA_HOSTS: &[&str] = &["login.live.com"];

/// Hosts that are never intercepted: device registration and device sign-in use client
/// certificates (Windows Hello, Entra join) that a minted leaf would break.
pub const NEVER: &[&str] = &[
    "device.login.microsoftonline.com",
    "enterpriseregistration.windows.net",
];

pub const V1_TENANTS: HeaderName = HeaderName::from_static("restrict-access-to-tenants");
pub const V1_CONTEXT: HeaderName = HeaderName::from_static("restrict-access-context");
pub const V2_POLICY: HeaderName = HeaderName::from_static("sec-restrict-tenant-access-policy");

/// Every header name of the mechanism: a client's own copies are removed before ours go in.
pub const ALL_HEADERS: [HeaderName; 3] = [V1_TENANTS, V1_CONTEXT, V2_POLICY];

/// One `[[tenant_restrictions.policy]]`, validated.
#[derive(Clone, Debug)]
pub struct TenantPolicy {
    pub name: Arc<str>,
    pub segments: Vec<String>,
    pub profiles: Vec<String>,
    /// v1 tenant list, as written.
    pub tenants: Vec<String>,
    /// v1 directory ID.
    pub context: Option<String>,
    /// v2 `<tenantId>:<policyId>`.
    pub v2_policy: Option<String>,
    pub restrict_msa: bool,
    /// Headers set on requests to the Entra ID sign-in hosts (empty: not intercepted).
    pub entra: Vec<(HeaderName, HeaderValue)>,
    /// Headers set on requests to the consumer sign-in hosts (empty: not intercepted).
    pub msa: Vec<(HeaderName, HeaderValue)>,
}

impl TenantPolicy {
    /// Builds the header sets from validated values; `None` when a value cannot be a
    /// header (validation reports that first).
    pub fn new(
        name: &str,
        segments: Vec<String>,
        profiles: Vec<String>,
        tenants: Vec<String>,
        context: Option<String>,
        v2_policy: Option<String>,
        restrict_msa: bool,
    ) -> Option<TenantPolicy> {
        let mut entra = Vec::new();
        if let Some(ctx) = &context {
            entra.push((V1_TENANTS, HeaderValue::from_str(&tenants.join(",")).ok()?));
            entra.push((V1_CONTEXT, HeaderValue::from_str(ctx).ok()?));
        }
        if let Some(v2) = &v2_policy {
            entra.push((V2_POLICY, HeaderValue::from_str(v2).ok()?));
        }
        let msa = if restrict_msa {
            vec![(V2_POLICY, HeaderValue::from_static("restrict-msa"))]
        } else {
            Vec::new()
        };
        Some(TenantPolicy {
            name: name.into(),
            segments,
            profiles,
            tenants,
            context,
            v2_policy,
            restrict_msa,
            entra,
            msa,
        })
    }
}

/// The validated policies and the hosts they cover.
#[derive(Clone, Debug)]
pub struct Scope {
    pub policies: Vec<TenantPolicy>,
    pub hosts: Vec<String>,
    pub msa_hosts: Vec<String>,
    /// The allowlists' networks of the rules that name a sign-in host: an IP target in
    /// them is a sign-in whose server name must be read.
    pub networks: Vec<IpNet>,
}

/// What tenant restrictions make of one tunnel, once its first bytes are known.
#[derive(Clone, Copy, Debug)]
pub enum SignIn<'a> {
    /// Not a sign-in of a client under a policy: a blind tunnel.
    Blind,
    /// A sign-in: intercepted for `host`, which is what the ClientHello names (or, without
    /// a server name, the target).
    Intercept { host: &'a str, plan: Plan<'a> },
    /// A sign-in that cannot be intercepted: refused, never tunnelled without the headers.
    Refuse {
        policy: &'a TenantPolicy,
        why: &'static str,
    },
}

impl SignIn<'_> {
    /// Stands for this answer, to tell after a reload whether it would still be the same.
    pub fn fingerprint(&self) -> Option<u64> {
        let mut h = std::hash::DefaultHasher::new();
        match self {
            SignIn::Blind => return None,
            SignIn::Intercept { host, plan } => {
                host.hash(&mut h);
                plan.policy.name.hash(&mut h);
                for (n, v) in plan.headers {
                    n.as_str().hash(&mut h);
                    v.as_bytes().hash(&mut h);
                }
            }
            SignIn::Refuse { policy, why } => {
                policy.name.hash(&mut h);
                why.hash(&mut h);
            }
        }
        Some(h.finish())
    }
}

/// What to do with one connection: intercept it and set these headers.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    pub policy: &'a TenantPolicy,
    pub headers: &'a [(HeaderName, HeaderValue)],
}

impl Plan<'_> {
    /// What `route` and the audit report show: the policy and the headers as sent.
    pub fn summary(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect();
        serde_json::json!({
            "policy": &*self.policy.name,
            "headers": headers,
        })
    }
}

impl Scope {
    /// One line for the audit report: the policy, then each header as sent and the hosts
    /// it goes to.
    pub fn describe(&self, policy: &TenantPolicy) -> String {
        let lines = |set: &[(HeaderName, HeaderValue)], hosts: &[String]| {
            set.iter()
                .map(|(n, v)| {
                    format!(
                        "{n}: {} ({})",
                        String::from_utf8_lossy(v.as_bytes()),
                        hosts.join(", ")
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut out = lines(&policy.entra, &self.hosts);
        out.extend(lines(&policy.msa, &self.msa_hosts));
        format!("{}: {}", policy.name, out.join("; "))
    }

    /// The policy of a segment: one naming the segment wins over one naming its profile.
    pub fn policy_for(
        &self,
        segment: Option<&str>,
        profile: Option<&str>,
    ) -> Option<&TenantPolicy> {
        let by_segment = segment.and_then(|s| {
            self.policies
                .iter()
                .find(|p| p.segments.iter().any(|n| n == s))
        });
        by_segment.or_else(|| {
            profile.and_then(|pr| {
                self.policies
                    .iter()
                    .find(|p| p.profiles.iter().any(|n| n == pr))
            })
        })
    }

    /// Tenant restrictions follow the server name, not the CONNECT line: a tunnel whose
    /// ClientHello names a sign-in host is intercepted for that host whatever its target;
    /// one to a sign-in host whose hello names another host, or to a sign-in network whose
    /// hello names none (or is not TLS), is refused. `first` is what the client sent first
    /// (`None`: not read, for a tunnel no check reads).
    pub fn sign_in<'a>(
        &'a self,
        segment: Option<&str>,
        profile: Option<&str>,
        target: &'a Target,
        first: Option<&'a First>,
    ) -> SignIn<'a> {
        let Some(policy) = self.policy_for(segment, profile) else {
            return SignIn::Blind;
        };
        let named = match first {
            Some(First::Hello(Some(sni))) => Some(sni.as_str()),
            _ => None,
        };
        let sni = named.and_then(|raw| match Host::parse(raw) {
            Ok(Host::Name(_)) => Some(raw),
            _ => None,
        });
        let by_sni = sni.and_then(|raw| {
            let name = raw.trim_end_matches('.');
            let host = self
                .hosts
                .iter()
                .chain(&self.msa_hosts)
                .find(|h| h.eq_ignore_ascii_case(name))?;
            self.plan(segment, profile, host)
                .map(|plan| SignIn::Intercept { host, plan })
        });
        if let Some(hit) = by_sni {
            return hit;
        }
        let by_target = target
            .host
            .as_name()
            .and_then(|h| self.plan(segment, profile, h).map(|plan| (h, plan)));
        match (by_target, named) {
            (Some((host, plan)), None) => SignIn::Intercept { host, plan },
            (Some(_), Some(_)) => SignIn::Refuse {
                policy,
                why: "the ClientHello names another host than the sign-in host tunnelled to",
            },
            (None, _) => {
                let in_network = match target.host {
                    Host::Ip(ip) => self.networks.iter().any(|n| n.contains(&ip)),
                    Host::Name(_) => false,
                };
                if in_network && named.is_none() {
                    SignIn::Refuse {
                        policy,
                        why: "a tunnel to a sign-in network whose ClientHello names no host",
                    }
                } else {
                    SignIn::Blind
                }
            }
        }
    }

    /// The interception plan for `host` (a normalised, lower-case name) from a client of
    /// `segment`/`profile`; `None`: a blind tunnel.
    pub fn plan(
        &self,
        segment: Option<&str>,
        profile: Option<&str>,
        host: &str,
    ) -> Option<Plan<'_>> {
        if NEVER.contains(&host) {
            return None;
        }
        let policy = self.policy_for(segment, profile)?;
        let headers = if self.hosts.iter().any(|h| h == host) {
            &policy.entra
        } else if self.msa_hosts.iter().any(|h| h == host) {
            &policy.msa
        } else {
            return None;
        };
        (!headers.is_empty()).then_some(Plan { policy, headers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(
        name: &str,
        segments: &[&str],
        profiles: &[&str],
        v1: bool,
        v2: bool,
        msa: bool,
    ) -> TenantPolicy {
        TenantPolicy::new(
            name,
            segments.iter().map(|s| s.to_string()).collect(),
            profiles.iter().map(|s| s.to_string()).collect(),
            if v1 {
                vec![
                    "city.example.jp".into(),
                    "11111111-1111-1111-1111-111111111111".into(),
                ]
            } else {
                Vec::new()
            },
            v1.then(|| "22222222-2222-2222-2222-222222222222".into()),
            v2.then(|| {
                "33333333-3333-3333-3333-333333333333:44444444-4444-4444-4444-444444444444".into()
            }),
            msa,
        )
        .unwrap()
    }

    fn scope() -> Scope {
        Scope {
            policies: vec![
                policy("staff", &["staff"], &[], true, false, true),
                policy("case2", &[], &["case2"], false, true, false),
            ],
            hosts: DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect(),
            msa_hosts: DEFAULT_MSA_HOSTS.iter().map(|h| h.to_string()).collect(),
            networks: vec!["20.190.128.0/18".parse().unwrap()],
        }
    }

    fn target(s: &str) -> Target {
        Target::parse_authority(s, None).unwrap()
    }

    fn hello(sni: Option<&str>) -> First {
        First::Hello(sni.map(str::to_string))
    }

    /// What the SNI and the target make of a tunnel from segment `staff`.
    fn sign_in(t: &str, first: Option<First>) -> String {
        let s = scope();
        let t = target(t);
        match s.sign_in(Some("staff"), Some("case1"), &t, first.as_ref()) {
            SignIn::Blind => "blind".into(),
            SignIn::Intercept { host, .. } => format!("intercept {host}"),
            SignIn::Refuse { .. } => "refuse".into(),
        }
    }

    #[test]
    fn the_server_name_decides_whatever_the_target() {
        let cases: &[(&str, Option<First>, &str)] = &[
            (
                "20.190.128.5:443",
                Some(hello(Some("login.microsoftonline.com"))),
                "intercept login.microsoftonline.com",
            ),
            (
                "20.190.128.5:443",
                Some(hello(Some("LOGIN.microsoftonline.com."))),
                "intercept login.microsoftonline.com",
            ),
            (
                "outlook.office365.com:443",
                Some(hello(Some("login.live.com"))),
                "intercept login.live.com",
            ),
            (
                "login.microsoftonline.com:443",
                Some(hello(Some("login.microsoftonline.com"))),
                "intercept login.microsoftonline.com",
            ),
            (
                "login.microsoftonline.com:443",
                Some(hello(None)),
                "intercept login.microsoftonline.com",
            ),
            (
                "login.microsoftonline.com:443",
                Some(hello(Some("www.example.com"))),
                "refuse",
            ),
            ("20.190.128.5:443", Some(hello(None)), "refuse"),
            ("20.190.128.5:443", Some(First::NotTls), "refuse"),
            (
                "20.190.128.5:443",
                Some(hello(Some("aadcdn.msftauth.net"))),
                "blind",
            ),
            (
                "20.190.128.5:443",
                Some(hello(Some("device.login.microsoftonline.com"))),
                "blind",
            ),
            ("52.96.0.1:443", Some(hello(None)), "blind"),
            (
                "outlook.office365.com:443",
                Some(hello(Some("outlook.office365.com"))),
                "blind",
            ),
        ];
        for (t, first, want) in cases {
            assert_eq!(sign_in(t, first.clone()), *want, "{t} {first:?}");
        }
        // A client under no policy: nothing is intercepted or refused.
        let s = scope();
        let t = target("20.190.128.5:443");
        assert!(matches!(
            s.sign_in(Some("other"), Some("case1"), &t, Some(&hello(None))),
            SignIn::Blind
        ));
    }

    /// (segment, profile, host) → (policy, header names), or `None`: a blind tunnel.
    type Row<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        Option<(&'a str, &'a [&'a str])>,
    );

    #[test]
    fn scenario_table() {
        let s = scope();
        let rows: &[Row] = &[
            (
                Some("staff"),
                Some("case1"),
                "login.microsoftonline.com",
                Some((
                    "staff",
                    &["restrict-access-to-tenants", "restrict-access-context"],
                )),
            ),
            (
                Some("staff"),
                Some("case1"),
                "login.microsoft.com",
                Some((
                    "staff",
                    &["restrict-access-to-tenants", "restrict-access-context"],
                )),
            ),
            (
                Some("staff"),
                Some("case1"),
                "login.windows.net",
                Some((
                    "staff",
                    &["restrict-access-to-tenants", "restrict-access-context"],
                )),
            ),
            (
                Some("staff"),
                Some("case1"),
                "login.live.com",
                Some(("staff", &["sec-restrict-tenant-access-policy"])),
            ),
            // A segment named by a policy wins over its profile's policy.
            (
                Some("staff"),
                Some("case2"),
                "login.microsoftonline.com",
                Some((
                    "staff",
                    &["restrict-access-to-tenants", "restrict-access-context"],
                )),
            ),
            (
                Some("other"),
                Some("case2"),
                "login.microsoftonline.com",
                Some(("case2", &["sec-restrict-tenant-access-policy"])),
            ),
            // Without restrict_msa the consumer sign-in stays a blind tunnel.
            (Some("other"), Some("case2"), "login.live.com", None),
            (
                Some("other"),
                Some("case1"),
                "login.microsoftonline.com",
                None,
            ),
            (None, None, "login.microsoftonline.com", None),
            (
                Some("staff"),
                Some("case1"),
                "device.login.microsoftonline.com",
                None,
            ),
            (
                Some("staff"),
                Some("case1"),
                "enterpriseregistration.windows.net",
                None,
            ),
            (Some("staff"), Some("case1"), "outlook.office365.com", None),
            (
                Some("staff"),
                Some("case1"),
                "evil-login.microsoftonline.com",
                None,
            ),
        ];
        for (segment, profile, host, want) in rows {
            let got = s.plan(*segment, *profile, host).map(|p| {
                (
                    p.policy.name.to_string(),
                    p.headers
                        .iter()
                        .map(|(n, _)| n.as_str().to_string())
                        .collect::<Vec<_>>(),
                )
            });
            let want = want.map(|(n, h)| {
                (
                    n.to_string(),
                    h.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, want, "{segment:?} {profile:?} {host}");
        }
    }

    #[test]
    fn never_list_wins_over_configured_hosts() {
        let mut s = scope();
        s.hosts.push("device.login.microsoftonline.com".into());
        assert!(s
            .plan(Some("staff"), None, "device.login.microsoftonline.com")
            .is_none());
    }

    #[test]
    fn header_values_as_microsoft_documents_them() {
        let p = policy("p", &["s"], &[], true, true, true);
        let text = |set: &[(HeaderName, HeaderValue)]| {
            set.iter()
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            text(&p.entra),
            [
                "restrict-access-to-tenants: city.example.jp,11111111-1111-1111-1111-111111111111",
                "restrict-access-context: 22222222-2222-2222-2222-222222222222",
                "sec-restrict-tenant-access-policy: 33333333-3333-3333-3333-333333333333:44444444-4444-4444-4444-444444444444",
            ]
        );
        assert_eq!(
            text(&p.msa),
            ["sec-restrict-tenant-access-policy: restrict-msa"]
        );
    }
}
