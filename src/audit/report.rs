//! The report as data: everything an auditor reads, built from a loaded configuration
//! without I/O (the clock is passed in), so tests can check facts instead of markup.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::oracle::{Expect, Oracle};
use super::probes::{self, Probe};
use super::sources::{FileHash, Sources};
use super::AuditError;
use crate::config::schema::Provenance;
use crate::config::validate::BUILTIN_PROFILES;
use crate::config::LoadedCategory;
use crate::policy::decide::{decide, decide_for_profile};
use crate::policy::snapshot::Profile;
use crate::policy::{Decision, Reason, Route, Snapshot, Target};

pub struct Report {
    /// RFC 3339, UTC, whole seconds.
    pub generated: String,
    pub version: &'static str,
    /// The config source as loaded (a path, or `<embedded default>`).
    pub source: String,
    pub files: Vec<FileHash>,
    pub combined_sha256: String,
    /// Segments whose profile is reported.
    pub segments: Vec<SegmentRow>,
    /// The reported profiles, in the configuration's order.
    pub profiles: Vec<ProfileRow>,
    pub upstream: UpstreamRow,
    /// Categories some reported profile breaks out, in load order.
    pub categories: Vec<CategoryRow>,
    /// Loaded categories no reported profile breaks out (their destinations go upstream
    /// or are denied).
    pub other_categories: Vec<String>,
    pub evidence: Evidence,
    /// The access log as evidence: its signing key and how to verify it.
    pub access_log: super::log_evidence::LogEvidence,
    /// Settings that open what the appliance would otherwise refuse.
    pub weakened: Vec<crate::config::safeguards::Weakened>,
}

pub struct SegmentRow {
    pub name: String,
    pub networks: Vec<String>,
    pub profile: String,
    /// The tenant-restriction policy and the headers its sign-ins get; `None`: off.
    pub tenant_restrictions: Option<String>,
}

pub struct ProfileRow {
    pub name: String,
    /// 1, 2 or 3 for the built-in α′ cases.
    pub case: Option<u8>,
    /// Segments that use it (none: reported because it is a built-in case).
    pub segments: Vec<String>,
    pub direct: Vec<String>,
    pub deny: Vec<String>,
}

pub struct UpstreamRow {
    /// Empty: whatever is not direct is refused with 503, never sent direct.
    pub parents: Vec<ParentRow>,
    pub health_interval: String,
    pub health_timeout: String,
    pub fall: u32,
    pub rise: u32,
}

/// A parent as the auditor may see it: never the credentials.
pub struct ParentRow {
    pub name: String,
    pub address: String,
    pub tls: bool,
    pub tls_server_name: Option<String>,
    pub auth: bool,
}

pub struct CategoryRow {
    pub name: String,
    pub description: String,
    pub file: String,
    pub provenance: Provenance,
    /// Reported profiles that break it out.
    pub direct_in: Vec<String>,
    pub rules: Vec<RuleRow>,
}

pub struct RuleRow {
    /// `category/rule`, as logs and decisions name it.
    pub name: String,
    pub endpoint_id: Option<u32>,
    pub source: Option<String>,
    pub ports: Vec<u16>,
    /// For the firewall only; the proxy never carries UDP.
    pub udp_ports: Vec<u16>,
    pub domains: Vec<String>,
    pub networks: Vec<String>,
}

pub struct Evidence {
    /// Column order of every row's outcomes.
    pub profiles: Vec<String>,
    pub rows: Vec<ProbeRow>,
    pub clients: Vec<ClientRow>,
    /// Categories whose probes stopped at the per-category cap.
    pub capped: Vec<String>,
}

pub struct ProbeRow {
    pub probe: Probe,
    /// The normalised `host:port`, or why it could not be normalised.
    pub normalised: Result<String, String>,
    /// One per reported profile.
    pub outcomes: Vec<Outcome>,
}

pub struct Outcome {
    pub expected: Expect,
    pub got: Got,
}

/// What the real decision function returned.
pub struct Got {
    pub route: Route,
    pub reason: Reason,
    pub rule: Option<String>,
}

/// A client in no segment asking for an allowlisted name.
pub struct ClientRow {
    pub client: IpAddr,
    pub target: String,
    pub outcome: Outcome,
}

impl Outcome {
    /// The decision agrees with the expectation.
    pub fn ok(&self) -> bool {
        match self.expected {
            Expect::Direct => self.got.route == Route::Direct,
            Expect::NotDirect => self.got.route != Route::Direct,
            Expect::Deny => self.got.route == Route::Deny,
        }
    }
}

impl Evidence {
    /// Decisions taken: every probe under every profile, plus the unknown clients.
    pub fn decisions(&self) -> usize {
        self.rows.len() * self.profiles.len() + self.clients.len()
    }

    pub fn failures(&self) -> usize {
        let rows = self.rows.iter().flat_map(|r| &r.outcomes);
        let clients = self.clients.iter().map(|c| &c.outcome);
        rows.chain(clients).filter(|o| !o.ok()).count()
    }

    /// Probes expected to go direct in one profile column.
    pub fn expected_direct(&self, column: usize) -> usize {
        self.rows
            .iter()
            .filter(|r| r.outcomes.get(column).map(|o| o.expected) == Some(Expect::Direct))
            .count()
    }

    /// Contradictions in one profile column.
    pub fn column_failures(&self, column: usize) -> usize {
        self.rows
            .iter()
            .filter(|r| r.outcomes.get(column).is_some_and(|o| !o.ok()))
            .count()
    }
}

impl Report {
    pub fn failures(&self) -> usize {
        self.evidence.failures()
    }

    /// No security cloud: what is not direct is refused with 503.
    pub fn no_parent(&self) -> bool {
        self.upstream.parents.is_empty()
    }
}

impl From<&Decision> for Got {
    fn from(d: &Decision) -> Got {
        Got {
            route: d.route,
            reason: d.reason,
            rule: d.rule.as_deref().map(str::to_string),
        }
    }
}

/// Builds the report; `only` restricts it to one profile.
pub fn build(s: &Sources, only: Option<&str>, now: SystemTime) -> Result<Report, AuditError> {
    let cfg = &s.config;
    let snap: &Snapshot = &cfg.policy;
    let reported = reported_profiles(snap, only)?;
    let names = |p: &Profile| -> (Vec<String>, Vec<String>) {
        let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
        (
            owned(snap.category_names(p.direct)),
            owned(snap.category_names(p.deny)),
        )
    };
    let segments: Vec<SegmentRow> = snap
        .segments()
        .iter()
        .filter(|seg| {
            reported
                .iter()
                .any(|p| p.name == snap.profiles()[seg.profile].name)
        })
        .map(|seg| SegmentRow {
            name: seg.name.to_string(),
            networks: s
                .file
                .segments
                .iter()
                .find(|f| *f.name.get_ref() == *seg.name)
                .map(|f| f.networks.iter().map(|n| n.get_ref().clone()).collect())
                .unwrap_or_default(),
            profile: snap.profiles()[seg.profile].name.to_string(),
            tenant_restrictions: cfg.tenant.as_ref().and_then(|tr| {
                let profile = &snap.profiles()[seg.profile].name;
                tr.scope
                    .policy_for(Some(&seg.name), Some(profile))
                    .map(|p| tr.scope.describe(p))
            }),
        })
        .collect();
    let profiles: Vec<ProfileRow> = reported
        .iter()
        .map(|p| {
            let (direct, deny) = names(p);
            ProfileRow {
                name: p.name.to_string(),
                case: BUILTIN_PROFILES
                    .iter()
                    .position(|(b, _)| *b == &*p.name)
                    .and_then(|i| u8::try_from(i + 1).ok()),
                segments: snap
                    .segments()
                    .iter()
                    .filter(|seg| snap.profiles()[seg.profile].name == p.name)
                    .map(|seg| seg.name.to_string())
                    .collect(),
                direct,
                deny,
            }
        })
        .collect();
    let in_any = |pick: fn(&ProfileRow) -> &Vec<String>, c: &LoadedCategory| {
        profiles
            .iter()
            .any(|p| pick(p).iter().any(|n| *n == *c.category.name))
    };
    let direct_cats: Vec<&LoadedCategory> = cfg
        .categories
        .iter()
        .filter(|c| in_any(|p| &p.direct, c))
        .collect();
    let denied_cats: Vec<&LoadedCategory> = cfg
        .categories
        .iter()
        .filter(|c| in_any(|p| &p.deny, c) && !in_any(|p| &p.direct, c))
        .collect();
    let categories = direct_cats
        .iter()
        .map(|c| category_row(c, &profiles))
        .collect();
    let other_categories = cfg
        .categories
        .iter()
        .filter(|c| !in_any(|p| &p.direct, c))
        .map(|c| c.category.name.to_string())
        .collect();
    let evidence = evidence(s, &reported, &direct_cats, &denied_cats);
    let full = crate::outcome::rfc3339(now);
    Ok(Report {
        generated: format!("{}Z", full.get(..19).unwrap_or(&full)),
        version: env!("CARGO_PKG_VERSION"),
        source: cfg.source.display().to_string(),
        files: s.files.clone(),
        combined_sha256: s.combined_sha256(),
        segments,
        profiles,
        upstream: upstream_row(cfg),
        categories,
        other_categories,
        evidence,
        access_log: super::log_evidence::LogEvidence::of(cfg),
        weakened: crate::config::safeguards::weakened(cfg),
    })
}

/// One profile, or every profile a segment uses plus the built-in cases.
fn reported_profiles<'a>(
    snap: &'a Snapshot,
    only: Option<&str>,
) -> Result<Vec<&'a Profile>, AuditError> {
    if let Some(name) = only {
        return snap
            .profile(name)
            .map(|p| vec![p])
            .ok_or_else(|| AuditError::UnknownProfile(name.to_string()));
    }
    Ok(snap
        .profiles()
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            snap.segments().iter().any(|s| s.profile == *i)
                || BUILTIN_PROFILES.iter().any(|(b, _)| *b == &*p.name)
        })
        .map(|(_, p)| p)
        .collect())
}

fn category_row(c: &LoadedCategory, profiles: &[ProfileRow]) -> CategoryRow {
    let rules = c
        .category
        .rules
        .iter()
        .zip(c.rules.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(r, info)| RuleRow {
            name: r.name.to_string(),
            endpoint_id: info.and_then(|i| i.endpoint_id),
            source: info.and_then(|i| i.source.clone()),
            ports: r.ports.clone(),
            udp_ports: info.map(|i| i.udp_ports.clone()).unwrap_or_default(),
            domains: r.domains.iter().map(|d| d.as_str().to_string()).collect(),
            networks: r.networks.iter().map(IpNet::to_string).collect(),
        })
        .collect();
    CategoryRow {
        name: c.category.name.to_string(),
        description: c.description.clone(),
        file: c.file.display().to_string(),
        provenance: c.provenance.clone(),
        direct_in: profiles
            .iter()
            .filter(|p| p.direct.iter().any(|d| *d == *c.category.name))
            .map(|p| p.name.clone())
            .collect(),
        rules,
    }
}

fn upstream_row(cfg: &crate::Config) -> UpstreamRow {
    let u = &cfg.upstream;
    UpstreamRow {
        parents: u
            .parents
            .iter()
            .map(|p| ParentRow {
                name: p.name.to_string(),
                address: p.address.clone(),
                tls: p.tls.is_some(),
                tls_server_name: p.tls.as_ref().map(|t| t.server_name.clone()),
                auth: p.proxy_authorization.is_some(),
            })
            .collect(),
        health_interval: duration(u.health_interval),
        health_timeout: duration(u.health_timeout),
        fall: u.fall,
        rise: u.rise,
    }
}

/// `5s`, `250ms`: as the config file writes durations.
fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn evidence(
    s: &Sources,
    reported: &[&Profile],
    direct: &[&LoadedCategory],
    denied: &[&LoadedCategory],
) -> Evidence {
    let snap: &Snapshot = &s.config.policy;
    let oracle = Oracle::new(&s.config.categories);
    let plan = probes::plan(direct, denied, &oracle);
    let columns: Vec<(&Profile, Vec<&str>, Vec<&str>)> = reported
        .iter()
        .map(|p| {
            (
                *p,
                snap.category_names(p.direct),
                snap.category_names(p.deny),
            )
        })
        .collect();
    let rows = plan
        .probes
        .into_iter()
        .map(|probe| {
            let target = Target::parse_authority(&probe.target, None);
            let outcomes = columns
                .iter()
                .map(|(p, direct, deny)| {
                    let d = match &target {
                        Ok(t) => decide_for_profile(snap, &p.name, t)
                            .unwrap_or_else(Decision::invalid_target),
                        Err(_) => Decision::invalid_target(),
                    };
                    Outcome {
                        expected: oracle.expect(direct, deny, target.as_ref().ok()),
                        got: Got::from(&d),
                    }
                })
                .collect();
            ProbeRow {
                normalised: target.map(|t| t.to_string()).map_err(|e| e.to_string()),
                probe,
                outcomes,
            }
        })
        .collect();
    Evidence {
        profiles: reported.iter().map(|p| p.name.to_string()).collect(),
        rows,
        clients: unknown_clients(s, direct),
        capped: plan.capped,
    }
}

/// Clients in no segment asking for a name that breaks out for everyone else.
fn unknown_clients(s: &Sources, direct: &[&LoadedCategory]) -> Vec<ClientRow> {
    let segments: Vec<IpNet> = s
        .file
        .segments
        .iter()
        .flat_map(|seg| &seg.networks)
        .filter_map(|n| n.get_ref().parse().ok())
        .collect();
    let host = direct
        .iter()
        .flat_map(|c| &c.category.rules)
        .flat_map(|r| &r.domains)
        .map(|d| probes::instance(d.as_str()))
        .next()
        .unwrap_or_else(|| "login.microsoftonline.com".to_string());
    let target = format!("{host}:443");
    probes::unknown_clients(&segments)
        .into_iter()
        .map(|client| {
            let d = match Target::parse_authority(&target, None) {
                Ok(t) => decide(&s.config.policy, client, &t),
                Err(_) => Decision::invalid_target(),
            };
            ClientRow {
                client,
                target: target.clone(),
                outcome: Outcome {
                    expected: Expect::Deny,
                    got: Got::from(&d),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::probes::Kind;
    use crate::audit::sources;

    fn report(path: Option<&std::path::Path>) -> Report {
        let s = sources::load(path).unwrap();
        build(&s, None, SystemTime::UNIX_EPOCH).unwrap()
    }

    /// The shipped configurations hold no probe whose decision contradicts expectation.
    #[test]
    fn shipped_configs_have_no_failures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut paths = vec![None];
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                paths.push(Some(p));
            }
        }
        for p in &paths {
            let r = report(p.as_deref());
            let bad: Vec<String> = r
                .evidence
                .rows
                .iter()
                .filter(|row| row.outcomes.iter().any(|o| !o.ok()))
                .map(|row| row.probe.target.clone())
                .collect();
            assert!(bad.is_empty(), "{p:?}: {bad:?}");
            assert_eq!(r.failures(), 0, "{p:?}");
            assert!(!r.evidence.clients.is_empty(), "{p:?}");
        }
    }

    #[test]
    fn embedded_default_reports_every_case_with_every_probe_kind() {
        let r = report(None);
        assert_eq!(r.evidence.profiles, ["case1", "case2", "case3"]);
        assert_eq!(r.segments.len(), 1);
        assert!(r.no_parent());
        for kind in [
            Kind::Lookalike,
            Kind::IdnLookalike,
            Kind::RealSpelling,
            Kind::OutsideNetwork,
            Kind::InsideNetwork,
            Kind::SharedHosting,
        ] {
            assert!(
                r.evidence.rows.iter().any(|row| row.probe.kind == kind),
                "{kind:?}"
            );
        }
        // Real spellings break out exactly where their category does.
        let row = r
            .evidence
            .rows
            .iter()
            .find(|row| row.probe.target == "OUTLOOK.OFFICE.COM:443")
            .or_else(|| {
                r.evidence.rows.iter().find(|row| {
                    row.probe.from == "outlook.office.com" && row.probe.kind == Kind::RealSpelling
                })
            })
            .unwrap();
        let routes: Vec<Route> = row.outcomes.iter().map(|o| o.got.route).collect();
        assert_eq!(routes, [Route::Upstream, Route::Direct, Route::Direct]);
    }

    #[test]
    fn a_failure_is_counted() {
        let mut r = report(None);
        r.evidence.rows[0].outcomes[0].got.route = Route::Direct;
        r.evidence.rows[0].outcomes[0].expected = Expect::NotDirect;
        assert_eq!(r.failures(), 1);
    }

    #[test]
    fn one_profile_only() {
        let s = sources::load(None).unwrap();
        let r = build(&s, Some("case1"), SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(r.evidence.profiles, ["case1"]);
        assert!(r.categories.iter().all(|c| c.name != "teams"));
        assert!(matches!(
            build(&s, Some("nope"), SystemTime::UNIX_EPOCH),
            Err(AuditError::UnknownProfile(_))
        ));
    }
}
