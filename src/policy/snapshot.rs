//! The compiled, immutable policy a connection decides with.

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;

use super::allowlist::{Category, Rule};
use super::domain::DomainSet;
use super::network::PrefixTable;

/// Most categories one snapshot may hold (they are a bit set per profile).
pub const MAX_CATEGORIES: usize = 128;

/// What the policy is built from, already validated by the config loader.
#[derive(Clone, Debug, Default)]
pub struct PolicySpec {
    pub categories: Vec<Category>,
    pub profiles: Vec<ProfileSpec>,
    pub segments: Vec<SegmentSpec>,
}

#[derive(Clone, Debug)]
pub struct ProfileSpec {
    pub name: String,
    /// Categories whose destinations break out locally.
    pub direct: Vec<String>,
    /// Categories whose destinations are refused outright (checked first).
    pub deny: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SegmentSpec {
    pub name: String,
    pub networks: Vec<IpNet>,
    pub profile: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("profile {profile:?} names unknown category {category:?}")]
    UnknownCategory { profile: String, category: String },
    #[error("segment {segment:?} names unknown profile {profile:?}")]
    UnknownProfile { segment: String, profile: String },
    #[error("more than {MAX_CATEGORIES} categories")]
    TooManyCategories,
}

/// A set of categories, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CategorySet(u128);

impl CategorySet {
    pub fn contains(self, id: CategoryId) -> bool {
        self.0 & (1u128 << id.0) != 0
    }
    fn insert(&mut self, id: CategoryId) {
        self.0 |= 1u128 << id.0;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CategoryId(pub(crate) u8);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleId(pub(crate) u32);

pub(crate) struct CompiledRule {
    pub name: Arc<str>,
    pub category: CategoryId,
    pub ports: Box<[u16]>,
}

pub struct Profile {
    pub name: Arc<str>,
    pub direct: CategorySet,
    pub deny: CategorySet,
}

pub struct Segment {
    pub name: Arc<str>,
    pub profile: usize,
}

pub struct Snapshot {
    pub(crate) categories: Vec<Category>,
    pub(crate) category_names: Vec<Arc<str>>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) domains: DomainSet<RuleId>,
    pub(crate) networks: PrefixTable<RuleId>,
    pub(crate) profiles: Vec<Profile>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) clients: PrefixTable<usize>,
}

impl Snapshot {
    pub fn build(spec: PolicySpec) -> Result<Snapshot, BuildError> {
        if spec.categories.len() > MAX_CATEGORIES {
            return Err(BuildError::TooManyCategories);
        }
        let mut by_name = HashMap::new();
        let mut rules = Vec::new();
        let mut domains = DomainSet::default();
        let mut networks = Vec::new();
        for (i, cat) in spec.categories.iter().enumerate() {
            let cid = CategoryId(i as u8);
            by_name.insert(cat.name.to_string(), cid);
            for rule in &cat.rules {
                let rid = RuleId(rules.len() as u32);
                rules.push(CompiledRule {
                    name: rule.name.clone(),
                    category: cid,
                    ports: rule.ports.clone().into_boxed_slice(),
                });
                for d in &rule.domains {
                    domains.insert(d, rid);
                }
                for n in &rule.networks {
                    networks.push((*n, rid));
                }
            }
        }
        let set = |profile: &str, names: &[String]| -> Result<CategorySet, BuildError> {
            let mut s = CategorySet::default();
            for n in names {
                let id = by_name.get(n).ok_or_else(|| BuildError::UnknownCategory {
                    profile: profile.to_string(),
                    category: n.clone(),
                })?;
                s.insert(*id);
            }
            Ok(s)
        };
        let mut profiles = Vec::new();
        for p in &spec.profiles {
            profiles.push(Profile {
                name: Arc::from(p.name.as_str()),
                direct: set(&p.name, &p.direct)?,
                deny: set(&p.name, &p.deny)?,
            });
        }
        let mut segments = Vec::new();
        let mut clients = Vec::new();
        for (i, s) in spec.segments.iter().enumerate() {
            let profile = profiles
                .iter()
                .position(|p| *p.name == *s.profile)
                .ok_or_else(|| BuildError::UnknownProfile {
                    segment: s.name.clone(),
                    profile: s.profile.clone(),
                })?;
            segments.push(Segment {
                name: Arc::from(s.name.as_str()),
                profile,
            });
            for n in &s.networks {
                clients.push((*n, i));
            }
        }
        Ok(Snapshot {
            category_names: spec.categories.iter().map(|c| c.name.clone()).collect(),
            categories: spec.categories,
            rules,
            domains,
            networks: networks.into_iter().collect(),
            profiles,
            segments,
            clients: clients.into_iter().collect(),
        })
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| &*p.name == name)
    }

    /// The segment a client address belongs to (most specific network).
    pub fn segment_of(&self, client: std::net::IpAddr) -> Option<&Segment> {
        self.clients.longest(client).map(|&i| &self.segments[i])
    }

    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| &*s.name == name)
    }

    /// The rules a profile breaks out and the rules it denies, in load order.
    pub fn rules_of(&self, profile: &Profile) -> (Vec<&Rule>, Vec<&Rule>) {
        let mut direct = Vec::new();
        let mut deny = Vec::new();
        for (i, c) in self.categories.iter().enumerate() {
            let id = CategoryId(i as u8);
            if profile.deny.contains(id) {
                deny.extend(&c.rules);
            } else if profile.direct.contains(id) {
                direct.extend(&c.rules);
            }
        }
        (direct, deny)
    }

    /// Names of the categories in a set, in load order.
    pub fn category_names(&self, set: CategorySet) -> Vec<&str> {
        self.category_names
            .iter()
            .enumerate()
            .filter(|(i, _)| set.contains(CategoryId(*i as u8)))
            .map(|(_, n)| &**n)
            .collect()
    }
}
