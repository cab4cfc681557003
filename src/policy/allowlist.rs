//! A category (one allowlist) as the policy sees it: named rules of domain patterns, IP
//! networks and ports. Reading the files is the config module's job; this is the data.

use std::sync::Arc;

use ipnet::IpNet;

use super::domain::DomainPattern;

/// Ports a rule allows when its file names none: plain and TLS web.
pub const DEFAULT_PORTS: &[u16] = &[80, 443];

#[derive(Clone, Debug)]
pub struct Category {
    pub name: Arc<str>,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
pub struct Rule {
    /// `category/rule`: the word the log, metrics and audit report use.
    pub name: Arc<str>,
    pub domains: Vec<DomainPattern>,
    pub networks: Vec<IpNet>,
    /// Destination ports this rule allows for a direct route. Deny rules ignore ports.
    pub ports: Vec<u16>,
}

impl Category {
    pub fn domain_count(&self) -> usize {
        self.rules.iter().map(|r| r.domains.len()).sum()
    }

    pub fn network_count(&self) -> usize {
        self.rules.iter().map(|r| r.networks.len()).sum()
    }
}
