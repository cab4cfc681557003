//! Reading allowlist files: one TOML file per category, from a directory or built in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{line_of, Problems};
use super::schema::{AllowlistFile, Provenance};
use crate::policy::allowlist::{Category, Rule, DEFAULT_PORTS};
use crate::policy::domain::DomainPattern;
use crate::policy::shared_hosting::{public_suffix_of, shared_zone_of};

/// The shipped allowlists, built into the binary for the embedded default.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "m365-auth.toml",
        include_str!("../../allowlists/m365-auth.toml"),
    ),
    (
        "m365-license.toml",
        include_str!("../../allowlists/m365-license.toml"),
    ),
    (
        "av-update.toml",
        include_str!("../../allowlists/av-update.toml"),
    ),
    ("pki.toml", include_str!("../../allowlists/pki.toml")),
    ("teams.toml", include_str!("../../allowlists/teams.toml")),
    (
        "exchange.toml",
        include_str!("../../allowlists/exchange.toml"),
    ),
    (
        "storage.toml",
        include_str!("../../allowlists/storage.toml"),
    ),
    (
        "windows-update.toml",
        include_str!("../../allowlists/windows-update.toml"),
    ),
];

/// A loaded category with what `check` and audits report about it.
#[derive(Clone, Debug)]
pub struct LoadedCategory {
    pub category: Category,
    pub description: String,
    pub provenance: Provenance,
    pub file: PathBuf,
    /// Where each rule comes from, in the order of `category.rules`.
    pub rules: Vec<RuleInfo>,
    /// Wildcards over shared-hosting zones and public suffixes, with their line: refused
    /// if a profile breaks this category out (a deny list may name them).
    pub(crate) shared_hosting: Vec<SharedHostingHit>,
}

/// What the file says about one rule beyond what the policy matches on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleInfo {
    /// Microsoft endpoint id the rule is taken from.
    pub endpoint_id: Option<u32>,
    /// Source of a rule that does not come from the published list.
    pub source: Option<String>,
    /// UDP ports for the firewall export; the proxy never carries UDP.
    pub udp_ports: Vec<u16>,
}

#[derive(Clone, Debug)]
pub(crate) struct SharedHostingHit {
    pub pattern: String,
    /// The zone and what it is: `shared hosting (blob.core.windows.net)` or `a public
    /// suffix (co.jp, Public Suffix List, ICANN section)`.
    pub zone: String,
    pub line: usize,
}

/// Source text of every category file in `dir` (`*.toml`, sorted by name).
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path)?;
            files.push((path, text));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Parses and validates one category file. Problems are added to `problems`.
pub fn parse(path: &Path, text: &str, problems: &mut Problems<'_>) -> Option<LoadedCategory> {
    let file: AllowlistFile = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            problems.toml(&e);
            return None;
        }
    };
    let name = file.category.name.get_ref().clone();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if name != stem {
        problems.at(
            file.category.name.span(),
            "category.name",
            format!("{name:?} must equal the file name {stem:?}"),
        );
    }
    if !valid_name(&name) {
        problems.at(
            file.category.name.span(),
            "category.name",
            "use lower-case letters, digits and '-'",
        );
    }
    let mut rules = Vec::new();
    let mut shared_hosting = Vec::new();
    let mut infos = Vec::new();
    for r in &file.rules {
        let rule_name = r.name.get_ref();
        if !valid_name(rule_name) {
            problems.at(
                r.name.span(),
                "rule.name",
                "use lower-case letters, digits and '-'",
            );
        }
        if rules
            .iter()
            .any(|x: &Rule| *x.name == *format!("{name}/{rule_name}"))
        {
            problems.at(
                r.name.span(),
                "rule.name",
                format!("duplicate rule {rule_name:?}"),
            );
        }
        if r.domains.is_empty() && r.networks.is_empty() {
            problems.at(r.name.span(), "rule", "a rule needs domains or networks");
        }
        let mut domains = Vec::new();
        for d in &r.domains {
            match DomainPattern::parse(d.get_ref()) {
                Ok(p) => {
                    let open = shared_zone_of(&p)
                        .map(|z| format!("shared hosting ({z})"))
                        .or_else(|| {
                            public_suffix_of(&p).map(|(z, section)| {
                                format!(
                                    "a public suffix ({z}, Public Suffix List, {})",
                                    section.as_str()
                                )
                            })
                        });
                    if let Some(zone) = open {
                        shared_hosting.push(SharedHostingHit {
                            pattern: d.get_ref().clone(),
                            zone,
                            line: line_of(text, d.span().start),
                        });
                    }
                    domains.push(p)
                }
                Err(e) => problems.at(d.span(), "rule.domains", format!("{:?}: {e}", d.get_ref())),
            }
        }
        let mut networks = Vec::new();
        for n in &r.networks {
            match n.get_ref().parse::<ipnet::IpNet>() {
                Ok(net) => networks.push(net),
                Err(e) => problems.at(n.span(), "rule.networks", format!("{:?}: {e}", n.get_ref())),
            }
        }
        let ports = match &r.ports {
            None => DEFAULT_PORTS.to_vec(),
            Some(list) => port_list(list, "rule.ports", problems),
        };
        infos.push(RuleInfo {
            endpoint_id: r.endpoint_id,
            source: r.source.clone(),
            udp_ports: port_list(&r.udp_ports, "rule.udp_ports", problems),
        });
        rules.push(Rule {
            name: Arc::from(format!("{name}/{rule_name}")),
            domains,
            networks,
            ports,
        });
    }
    Some(LoadedCategory {
        category: Category {
            name: Arc::from(name),
            rules,
        },
        description: file.category.description,
        provenance: file.provenance,
        file: path.to_path_buf(),
        rules: infos,
        shared_hosting,
    })
}

fn port_list(list: &[toml::Spanned<u32>], key: &str, problems: &mut Problems<'_>) -> Vec<u16> {
    let mut ports = Vec::new();
    for p in list {
        match u16::try_from(*p.get_ref()) {
            Ok(port) if port > 0 => ports.push(port),
            _ => problems.at(p.span(), key, format!("{} is not a port", p.get_ref())),
        }
    }
    ports
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
