//! The mapping from Microsoft's endpoint ids to our categories, kept as data
//! (`allowlists/sources/m365-mapping.toml`) so that an auditor can read it and the shipped
//! category files can be regenerated from it.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub source: Source,
    #[serde(rename = "category")]
    pub categories: Vec<CategoryMap>,
    /// Published URLs deliberately taken by no rule.
    #[serde(default)]
    pub left_out: Vec<LeftOutMap>,
}

/// URLs of an endpoint reviewed and left out; the category's notes say why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftOutMap {
    pub endpoint_id: u32,
    pub category: String,
    pub urls: Vec<String>,
}

/// The published list the shipped files come from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The service, as the provenance names it.
    pub name: String,
    /// The copy of the list the shipped files are generated from, next to the mapping.
    pub list: String,
    pub version: String,
    pub retrieved: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryMap {
    pub name: String,
    /// Comment lines at the top of the generated file.
    pub header: String,
    pub description: String,
    #[serde(default)]
    pub references: Vec<String>,
    pub notes: String,
    #[serde(rename = "rule")]
    pub rules: Vec<RuleMap>,
}

/// Either every item of the endpoint (less exclusions) or an explicit subset.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Selection {
    All(AllKeyword),
    Only(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub enum AllKeyword {
    #[serde(rename = "all")]
    All,
}

/// One rule of a generated file.
///
/// With `endpoint_id` and no `source`, the rule is taken from that endpoint: `urls` and
/// `networks` select from it (`"all"` also takes what a later list adds, less the
/// `exclude_*` entries; a list takes only those, which must be published), ports default
/// to its TCP ports. With `source`, the rule is a documented addition carried as written
/// (`domains`, a `networks` list, `ports`), possibly citing the endpoint it narrows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMap {
    pub name: String,
    pub endpoint_id: Option<u32>,
    pub source: Option<String>,
    pub urls: Option<Selection>,
    #[serde(default)]
    pub exclude_urls: Vec<String>,
    pub networks: Option<Selection>,
    #[serde(default)]
    pub exclude_networks: Vec<String>,
    /// Explicit domains of an addition.
    #[serde(default)]
    pub domains: Vec<String>,
    pub ports: Option<Vec<u16>>,
    /// Take the endpoint's UDP ports (for the firewall export).
    #[serde(default)]
    pub udp: bool,
    /// UDP ports of an addition (for the firewall export).
    #[serde(default)]
    pub udp_ports: Vec<u16>,
}
