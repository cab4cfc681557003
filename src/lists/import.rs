//! Published endpoint list + mapping → category files, and a report of everything the
//! mapping did not take, so nothing Microsoft publishes is silently dropped.
//!
//! Fail closed: a URL Microsoft no longer publishes leaves the category; a URL it adds is
//! taken only where the mapping says `urls = "all"`; and a mapping that would put a
//! shared-hosting wildcard in a category is refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::m365::{Endpoint, ListError};
use super::mapping::{Mapping, RuleMap, Selection};
use super::render::{CategoryFile, RuleOut};
use crate::config::schema::Provenance;
use crate::policy::domain::DomainPattern;
use crate::policy::shared_hosting::{public_suffix_of, shared_zone_of};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{category}/{rule}: {message}")]
    Mapping {
        category: String,
        rule: String,
        message: String,
    },
    #[error(transparent)]
    List(#[from] ListError),
}

/// What an import produced and what it left out.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    #[serde(skip)]
    pub files: Vec<CategoryFile>,
    /// Endpoints that carry only UDP: the proxy cannot carry them; the firewall can.
    pub udp_only: Vec<UdpOnly>,
    /// Published URLs of mapped endpoints that no rule takes, and whether the mapping
    /// lists them as reviewed exclusions.
    pub left_out: Vec<LeftOut>,
    /// Endpoints no rule maps: they stay with the security cloud.
    pub unmapped: Vec<u32>,
    /// Things the mapping names that the list no longer publishes (dropped, fail closed).
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct UdpOnly {
    pub endpoint_id: u32,
    pub service_area: String,
    pub udp_ports: String,
    /// The category whose firewall export carries it, if any.
    pub exported_in: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LeftOut {
    pub endpoint_id: u32,
    pub url: String,
    pub reviewed: bool,
}

/// Overrides of the mapping's source, for a newer list than the one shipped.
#[derive(Default)]
pub struct Version<'a> {
    pub version: Option<&'a str>,
    pub retrieved: Option<&'a str>,
}

pub fn import(
    mapping: &Mapping,
    list: &[Endpoint],
    version: &Version<'_>,
) -> Result<Report, ImportError> {
    let by_id: HashMap<u32, &Endpoint> = list.iter().map(|e| (e.id, e)).collect();
    let mut report = Report::default();
    // URLs taken by some rule, per endpoint; and exclusions that were reviewed.
    let mut taken: HashMap<u32, BTreeSet<String>> = HashMap::new();
    let mut reviewed: HashMap<u32, BTreeSet<String>> = HashMap::new();
    let mut udp_exported: HashMap<u32, String> = HashMap::new();
    let mut narrowed = BTreeSet::new();
    for l in &mapping.left_out {
        reviewed
            .entry(l.endpoint_id)
            .or_default()
            .extend(l.urls.iter().cloned());
    }
    for cat in &mapping.categories {
        let mut rules = Vec::new();
        let mut ids = BTreeSet::new();
        for rm in &cat.rules {
            let fail = |message: String| ImportError::Mapping {
                category: cat.name.clone(),
                rule: rm.name.clone(),
                message,
            };
            let rule = match (rm.endpoint_id, &rm.source) {
                (id, Some(source)) => {
                    // A documented narrowing: what the endpoint publishes beyond it was
                    // reviewed when the addition was written.
                    if let Some(id) = id {
                        taken.entry(id).or_default();
                        narrowed.insert(id);
                    }
                    addition(rm, source).map_err(fail)?
                }
                (None, None) => return Err(fail("needs endpoint_id or source".into())),
                (Some(id), None) => {
                    let Some(ep) = by_id.get(&id) else {
                        report.warnings.push(format!(
                            "{}/{}: endpoint {id} is no longer published; rule dropped",
                            cat.name, rm.name
                        ));
                        continue;
                    };
                    let rule =
                        from_endpoint(rm, ep, &mut report.warnings, &cat.name).map_err(fail)?;
                    taken
                        .entry(id)
                        .or_default()
                        .extend(rule.domains.iter().cloned());
                    reviewed
                        .entry(id)
                        .or_default()
                        .extend(rm.exclude_urls.iter().cloned());
                    if rm.udp {
                        udp_exported.insert(id, cat.name.clone());
                    }
                    rule
                }
            };
            check_patterns(&rule).map_err(fail)?;
            if rule.domains.is_empty() && rule.networks.is_empty() {
                report.warnings.push(format!(
                    "{}/{}: nothing left to take; rule dropped",
                    cat.name, rm.name
                ));
                continue;
            }
            ids.extend(rule.endpoint_id);
            rules.push(rule);
        }
        report.files.push(CategoryFile {
            name: cat.name.clone(),
            header: cat.header.clone(),
            description: cat.description.clone(),
            provenance: Provenance {
                source: mapping.source.name.clone(),
                version: version
                    .version
                    .unwrap_or(&mapping.source.version)
                    .to_string(),
                retrieved: version
                    .retrieved
                    .unwrap_or(&mapping.source.retrieved)
                    .to_string(),
                endpoint_ids: ids.into_iter().collect(),
                references: cat.references.clone(),
                notes: cat.notes.clone(),
            },
            rules,
        });
    }
    let mut left_out = BTreeMap::new();
    for ep in list {
        if ep.udp_only() {
            report.udp_only.push(UdpOnly {
                endpoint_id: ep.id,
                service_area: ep.service_area.clone(),
                udp_ports: ep.udp_ports.clone().unwrap_or_default(),
                exported_in: udp_exported.get(&ep.id).cloned(),
            });
        }
        let Some(urls) = taken.get(&ep.id) else {
            if !udp_exported.contains_key(&ep.id) {
                report.unmapped.push(ep.id);
            }
            continue;
        };
        for url in ep.urls.iter().filter(|u| !urls.contains(*u)) {
            let ok =
                narrowed.contains(&ep.id) || reviewed.get(&ep.id).is_some_and(|r| r.contains(url));
            left_out.insert((ep.id, url.clone()), ok);
        }
    }
    report.left_out = left_out
        .into_iter()
        .map(|((endpoint_id, url), reviewed)| LeftOut {
            endpoint_id,
            url,
            reviewed,
        })
        .collect();
    Ok(report)
}

fn addition(rm: &RuleMap, source: &str) -> Result<RuleOut, String> {
    if rm.urls.is_some() || !rm.exclude_urls.is_empty() || !rm.exclude_networks.is_empty() || rm.udp
    {
        return Err("an addition (with source) lists domains, networks and ports itself".into());
    }
    let networks = match &rm.networks {
        None => Vec::new(),
        Some(Selection::Only(list)) => list.clone(),
        Some(Selection::All(_)) => return Err("an addition cannot take \"all\" networks".into()),
    };
    Ok(RuleOut {
        name: rm.name.clone(),
        endpoint_id: rm.endpoint_id,
        source: Some(source.to_string()),
        domains: rm.domains.clone(),
        networks,
        ports: rm.ports.clone().ok_or("an addition needs ports")?,
        udp_ports: rm.udp_ports.clone(),
    })
}

fn from_endpoint(
    rm: &RuleMap,
    ep: &Endpoint,
    warnings: &mut Vec<String>,
    category: &str,
) -> Result<RuleOut, String> {
    if !rm.domains.is_empty() || !rm.udp_ports.is_empty() {
        return Err("a rule taken from an endpoint selects with urls and udp = true, not domains or udp_ports".into());
    }
    let mut pick = |what: &str,
                    sel: &Option<Selection>,
                    exclude: &[String],
                    published: &[String]|
     -> Result<Vec<String>, String> {
        match sel {
            None if exclude.is_empty() => Ok(Vec::new()),
            None => Err(format!("exclude_{what} needs {what} = \"all\"")),
            Some(Selection::All(_)) => {
                for x in exclude {
                    if !published.contains(x) {
                        warnings.push(format!(
                            "{category}/{}: excluded {what} {x:?} is no longer in endpoint {}",
                            rm.name, ep.id
                        ));
                    }
                }
                Ok(published
                    .iter()
                    .filter(|u| !exclude.contains(u))
                    .cloned()
                    .collect())
            }
            Some(Selection::Only(list)) => {
                if !exclude.is_empty() {
                    return Err(format!("exclude_{what} only goes with {what} = \"all\""));
                }
                let mut out = Vec::new();
                for x in list {
                    if published.contains(x) {
                        out.push(x.clone());
                    } else {
                        warnings.push(format!(
                            "{category}/{}: {x:?} is no longer in endpoint {}; dropped",
                            rm.name, ep.id
                        ));
                    }
                }
                Ok(out)
            }
        }
    };
    let domains = pick("urls", &rm.urls, &rm.exclude_urls, &ep.urls)?;
    let networks = pick("networks", &rm.networks, &rm.exclude_networks, &ep.ips)?;
    let ports = match &rm.ports {
        Some(p) => p.clone(),
        None => ep.tcp().map_err(|e| e.to_string())?,
    };
    let udp_ports = if rm.udp {
        ep.udp().map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    Ok(RuleOut {
        name: rm.name.clone(),
        endpoint_id: Some(ep.id),
        source: None,
        domains,
        networks,
        ports,
        udp_ports,
    })
}

/// Every pattern must parse, and no wildcard may range over shared hosting: these files
/// feed direct categories.
fn check_patterns(rule: &RuleOut) -> Result<(), String> {
    for d in &rule.domains {
        let p = DomainPattern::parse(d).map_err(|e| format!("{d:?}: {e}"))?;
        if let Some(zone) = shared_zone_of(&p) {
            return Err(format!(
                "{d:?} is a wildcard over shared hosting ({zone}); exclude it in the mapping"
            ));
        }
        if let Some((zone, section)) = public_suffix_of(&p) {
            return Err(format!(
                "{d:?} is a wildcard over a public suffix ({zone}, Public Suffix List, {}); exclude it in the mapping",
                section.as_str()
            ));
        }
    }
    for n in &rule.networks {
        n.parse::<ipnet::IpNet>()
            .map_err(|e| format!("{n:?}: {e}"))?;
    }
    Ok(())
}

/// The import report as an operator reads it.
pub fn summary(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for f in &report.files {
        let domains: usize = f.rules.iter().map(|r| r.domains.len()).sum();
        let networks: usize = f.rules.iter().map(|r| r.networks.len()).sum();
        let _ = writeln!(
            out,
            "{:<14} {:>2} rules {:>3} domains {:>3} networks  endpoints {:?}",
            f.name,
            f.rules.len(),
            domains,
            networks,
            f.provenance.endpoint_ids
        );
    }
    for u in &report.udp_only {
        let _ = writeln!(
            out,
            "UDP only: endpoint {} ({}, UDP {}) cannot cross an HTTP proxy; {}",
            u.endpoint_id,
            u.service_area,
            u.udp_ports,
            match &u.exported_in {
                Some(c) => format!("in the firewall export of category {c}"),
                None => "not exported: it goes nowhere unless the firewall allows it".into(),
            }
        );
    }
    let unreviewed: Vec<&LeftOut> = report.left_out.iter().filter(|l| !l.reviewed).collect();
    let _ = writeln!(
        out,
        "left out of mapped endpoints: {} reviewed, {} new or unreviewed",
        report.left_out.len() - unreviewed.len(),
        unreviewed.len()
    );
    for l in unreviewed {
        let _ = writeln!(out, "  unreviewed: endpoint {} {}", l.endpoint_id, l.url);
    }
    let _ = writeln!(
        out,
        "unmapped endpoints (they stay with the security cloud): {}",
        report
            .unmapped
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
