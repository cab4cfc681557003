//! What a new version of the allowlists changes: the page an operator reads before
//! approving an update. Changes are grouped by category and by built-in profile, and what
//! becomes newly direct (what the security team must approve) is kept apart from what
//! only goes back to the security cloud.
//!
//! The comparison is pure, over loaded categories, so lists the importer builds in memory
//! compare exactly like directories on disk ([`load_dir`] is the only I/O here).
//!
//! A domain pattern counts as direct in a profile when that same pattern is in one of the
//! profile's categories; a network when a network of those categories contains it.
//! Coverage by a wider wildcard is not worked out, so the report may over-state what
//! becomes direct, never under-state it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Serialize;

use crate::config::allowlists::{self, LoadedCategory};
use crate::config::error::{Problem, Problems};
use crate::config::validate::BUILTIN_PROFILES;

/// Everything a new list version changes, sorted so the same inputs give the same output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListDiff {
    pub summary: Summary,
    /// Per built-in profile: what now goes direct (or on more ports) that did not before.
    pub newly_direct: Vec<Exposure>,
    /// Per built-in profile: what no longer goes direct (on some or all of its ports).
    pub no_longer_direct: Vec<Exposure>,
    /// Patterns and networks that left one category for another, reported only here.
    pub moves: Vec<Move>,
    /// Categories with changes other than moves.
    pub categories: Vec<CategoryDiff>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Domain patterns and networks added (moves not counted).
    pub added: usize,
    /// Domain patterns and networks removed (moves not counted).
    pub removed: usize,
    pub moved: usize,
    /// Items newly direct, for every built-in profile (zero included).
    pub newly_direct: BTreeMap<String, usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Domain,
    Network,
}

/// What changes route in one built-in profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exposure {
    pub profile: String,
    pub items: Vec<Exposed>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exposed {
    pub kind: Kind,
    pub value: String,
    /// Categories of the profile that hold it: in the new version for a newly direct item,
    /// in the old one for an item no longer direct.
    pub categories: Vec<String>,
    /// The ports that changed (gained, or lost).
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Move {
    pub kind: Kind,
    pub value: String,
    pub from: String,
    pub to: String,
    /// Built-in profiles in which it goes direct now and did not before.
    pub newly_direct_in: Vec<String>,
    /// Built-in profiles in which it went direct and no longer does.
    pub no_longer_direct_in: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Removed,
    Changed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CategoryDiff {
    pub name: String,
    pub status: Status,
    /// Built-in profiles that break this category out.
    pub profiles: Vec<String>,
    pub provenance: Option<ProvenanceChange>,
    pub domains_added: Vec<String>,
    pub domains_removed: Vec<String>,
    pub networks_added: Vec<String>,
    pub networks_removed: Vec<String>,
    /// Rule names without the category prefix.
    pub rules_added: Vec<String>,
    pub rules_removed: Vec<String>,
    pub ports_changed: Vec<PortChange>,
}

/// Provenance of a category before and after (`None` on the side where it is absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProvenanceChange {
    pub old_version: Option<String>,
    pub new_version: Option<String>,
    pub old_retrieved: Option<String>,
    pub new_retrieved: Option<String>,
}

/// A rule present in both versions whose TCP or UDP ports differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortChange {
    pub rule: String,
    pub tcp_old: Vec<u16>,
    pub tcp_new: Vec<u16>,
    pub udp_old: Vec<u16>,
    pub udp_new: Vec<u16>,
}

/// Reading an allowlist directory for a diff failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read allowlist directory {}", dir.display())]
    Read {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no .toml files", .0.display())]
    Empty(PathBuf),
    #[error("{}", problem_list(.0))]
    Invalid(Vec<Problem>),
}

fn problem_list(problems: &[Problem]) -> String {
    let n = problems.len();
    let mut s = format!(
        "{n} problem{} in the allowlists:",
        if n == 1 { "" } else { "s" }
    );
    for p in problems {
        let _ = write!(s, "\n  {p}");
    }
    s
}

/// Reads and parses every category file in `dir`; any problem in any file is an error.
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedCategory>, LoadError> {
    let files = allowlists::read_dir(dir).map_err(|source| LoadError::Read {
        dir: dir.to_path_buf(),
        source,
    })?;
    if files.is_empty() {
        return Err(LoadError::Empty(dir.to_path_buf()));
    }
    let mut found = Vec::new();
    let mut loaded = Vec::new();
    for (path, text) in &files {
        let mut problems = Problems::new(path, text);
        if let Some(c) = allowlists::parse(path, text, &mut problems) {
            loaded.push(c);
        }
        found.extend(problems.found);
    }
    if found.is_empty() {
        Ok(loaded)
    } else {
        Err(LoadError::Invalid(found))
    }
}

/// Compares two versions of the allowlists.
pub fn diff(old: &[LoadedCategory], new: &[LoadedCategory]) -> ListDiff {
    let old = index(old);
    let new = index(new);
    let (moves, mut added, mut removed) = moves_and_leftovers(&old, &new);

    let mut categories = Vec::new();
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        let added = added.remove(name).unwrap_or_default();
        let removed = removed.remove(name).unwrap_or_default();
        if let Some(c) = category_diff(name, old.get(name), new.get(name), added, removed) {
            categories.push(c);
        }
    }

    let items: BTreeSet<Item> = holders(&old)
        .into_keys()
        .chain(holders(&new).into_keys())
        .collect();
    let mut newly_direct = Vec::new();
    let mut no_longer_direct = Vec::new();
    let mut summary = Summary::default();
    for (profile, direct) in BUILTIN_PROFILES {
        let mut gained = Vec::new();
        let mut lost = Vec::new();
        for item in &items {
            let before = reach(&old, direct, item);
            let after = reach(&new, direct, item);
            if let Some(e) = exposed(item, &after, &before) {
                gained.push(e);
            }
            if let Some(e) = exposed(item, &before, &after) {
                lost.push(e);
            }
        }
        summary
            .newly_direct
            .insert(profile.to_string(), gained.len());
        if !gained.is_empty() {
            newly_direct.push(Exposure {
                profile: profile.to_string(),
                items: gained,
            });
        }
        if !lost.is_empty() {
            no_longer_direct.push(Exposure {
                profile: profile.to_string(),
                items: lost,
            });
        }
    }

    let moves: Vec<Move> = moves
        .into_iter()
        .map(|(item, from, to)| {
            let mut m = Move {
                kind: item.kind(),
                value: item.to_string(),
                from,
                to,
                newly_direct_in: Vec::new(),
                no_longer_direct_in: Vec::new(),
            };
            for (profile, direct) in BUILTIN_PROFILES {
                let before = !reach(&old, direct, &item).is_empty();
                let after = !reach(&new, direct, &item).is_empty();
                if after && !before {
                    m.newly_direct_in.push(profile.to_string());
                }
                if before && !after {
                    m.no_longer_direct_in.push(profile.to_string());
                }
            }
            m
        })
        .collect();

    summary.added = categories
        .iter()
        .map(|c| c.domains_added.len() + c.networks_added.len())
        .sum();
    summary.removed = categories
        .iter()
        .map(|c| c.domains_removed.len() + c.networks_removed.len())
        .sum();
    summary.moved = moves.len();
    ListDiff {
        summary,
        newly_direct,
        no_longer_direct,
        moves,
        categories,
    }
}

// ---- the model both versions are reduced to ----

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Domain(String),
    Network(IpNet),
}

impl Item {
    fn kind(&self) -> Kind {
        match self {
            Item::Domain(_) => Kind::Domain,
            Item::Network(_) => Kind::Network,
        }
    }
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Domain(d) => f.write_str(d),
            Item::Network(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Default)]
struct RuleView {
    domains: BTreeSet<String>,
    networks: BTreeSet<IpNet>,
    tcp: BTreeSet<u16>,
    udp: BTreeSet<u16>,
}

struct CatView<'a> {
    loaded: &'a LoadedCategory,
    /// By rule name without the category prefix.
    rules: BTreeMap<String, RuleView>,
}

impl CatView<'_> {
    fn items(&self) -> BTreeSet<Item> {
        self.rules
            .values()
            .flat_map(|r| {
                r.domains
                    .iter()
                    .map(|d| Item::Domain(d.clone()))
                    .chain(r.networks.iter().map(|n| Item::Network(*n)))
            })
            .collect()
    }
}

type Version<'a> = BTreeMap<String, CatView<'a>>;

/// Reduces a list to sets by category and rule. A category given twice is merged.
fn index(list: &[LoadedCategory]) -> Version<'_> {
    let mut out: Version<'_> = BTreeMap::new();
    for c in list {
        let name = c.category.name.to_string();
        let prefix = format!("{name}/");
        let view = out.entry(name).or_insert_with(|| CatView {
            loaded: c,
            rules: BTreeMap::new(),
        });
        for (i, rule) in c.category.rules.iter().enumerate() {
            let short = rule.name.strip_prefix(&prefix).unwrap_or(&rule.name);
            let r = view.rules.entry(short.to_string()).or_default();
            r.domains
                .extend(rule.domains.iter().map(|d| d.as_str().to_string()));
            r.networks.extend(rule.networks.iter().map(IpNet::trunc));
            r.tcp.extend(&rule.ports);
            if let Some(info) = c.rules.get(i) {
                r.udp.extend(&info.udp_ports);
            }
        }
    }
    out
}

/// Which categories hold each item (exactly).
fn holders<'v>(version: &'v Version<'_>) -> BTreeMap<Item, BTreeSet<&'v str>> {
    let mut out: BTreeMap<Item, BTreeSet<&str>> = BTreeMap::new();
    for (name, cat) in version {
        for item in cat.items() {
            out.entry(item).or_default().insert(name);
        }
    }
    out
}

type PerCategory = BTreeMap<String, BTreeSet<Item>>;

/// Pairs an item removed from one category with its addition to another (in name order);
/// what cannot be paired stays a plain addition or removal of its category.
fn moves_and_leftovers(
    old: &Version<'_>,
    new: &Version<'_>,
) -> (Vec<(Item, String, String)>, PerCategory, PerCategory) {
    let before = holders(old);
    let after = holders(new);
    let none = BTreeSet::new();
    let all: BTreeSet<&Item> = before.keys().chain(after.keys()).collect();
    let mut moves = Vec::new();
    let mut added = PerCategory::new();
    let mut removed = PerCategory::new();
    for item in all {
        let b = before.get(item).unwrap_or(&none);
        let a = after.get(item).unwrap_or(&none);
        let mut from = b.difference(a);
        let mut to = a.difference(b);
        loop {
            match (from.next(), to.next()) {
                (Some(f), Some(t)) => moves.push((item.clone(), f.to_string(), t.to_string())),
                (Some(f), None) => {
                    removed
                        .entry(f.to_string())
                        .or_default()
                        .insert(item.clone());
                }
                (None, Some(t)) => {
                    added.entry(t.to_string()).or_default().insert(item.clone());
                }
                (None, None) => break,
            }
        }
    }
    (moves, added, removed)
}

fn category_diff(
    name: &str,
    old: Option<&CatView<'_>>,
    new: Option<&CatView<'_>>,
    added: BTreeSet<Item>,
    removed: BTreeSet<Item>,
) -> Option<CategoryDiff> {
    let status = match (old, new) {
        (None, Some(_)) => Status::Added,
        (Some(_), None) => Status::Removed,
        (Some(_), Some(_)) => Status::Changed,
        (None, None) => return None,
    };
    let prov = |c: Option<&CatView<'_>>| {
        c.map(|c| {
            (
                c.loaded.provenance.version.clone(),
                c.loaded.provenance.retrieved.clone(),
            )
        })
    };
    let (pold, pnew) = (prov(old), prov(new));
    let provenance = (pold != pnew).then(|| ProvenanceChange {
        old_version: pold.as_ref().map(|p| p.0.clone()),
        new_version: pnew.as_ref().map(|p| p.0.clone()),
        old_retrieved: pold.map(|p| p.1),
        new_retrieved: pnew.map(|p| p.1),
    });
    let no_rules = BTreeMap::new();
    let old_rules = old.map_or(&no_rules, |c| &c.rules);
    let new_rules = new.map_or(&no_rules, |c| &c.rules);
    let rules_added = new_rules
        .keys()
        .filter(|r| !old_rules.contains_key(*r))
        .cloned()
        .collect();
    let rules_removed = old_rules
        .keys()
        .filter(|r| !new_rules.contains_key(*r))
        .cloned()
        .collect();
    let vec = |s: &BTreeSet<u16>| s.iter().copied().collect::<Vec<_>>();
    let ports_changed = old_rules
        .iter()
        .filter_map(|(rule, o)| {
            let n = new_rules.get(rule)?;
            (o.tcp != n.tcp || o.udp != n.udp).then(|| PortChange {
                rule: rule.clone(),
                tcp_old: vec(&o.tcp),
                tcp_new: vec(&n.tcp),
                udp_old: vec(&o.udp),
                udp_new: vec(&n.udp),
            })
        })
        .collect();
    let (domains_added, networks_added) = split(added);
    let (domains_removed, networks_removed) = split(removed);
    let c = CategoryDiff {
        name: name.to_string(),
        status,
        profiles: profiles_of(name),
        provenance,
        domains_added,
        domains_removed,
        networks_added,
        networks_removed,
        rules_added,
        rules_removed,
        ports_changed,
    };
    let unchanged = c.status == Status::Changed
        && c.provenance.is_none()
        && c.domains_added.is_empty()
        && c.domains_removed.is_empty()
        && c.networks_added.is_empty()
        && c.networks_removed.is_empty()
        && c.rules_added.is_empty()
        && c.rules_removed.is_empty()
        && c.ports_changed.is_empty();
    (!unchanged).then_some(c)
}

fn split(items: BTreeSet<Item>) -> (Vec<String>, Vec<String>) {
    let mut domains = Vec::new();
    let mut networks = Vec::new();
    for item in items {
        match item {
            Item::Domain(d) => domains.push(d),
            Item::Network(n) => networks.push(n.to_string()),
        }
    }
    (domains, networks)
}

/// Built-in profiles that break the category out.
fn profiles_of(category: &str) -> Vec<String> {
    BUILTIN_PROFILES
        .iter()
        .filter(|(_, direct)| direct.contains(&category))
        .map(|(p, _)| p.to_string())
        .collect()
}

/// Ports on which an item goes direct in a profile, and the categories that make it so.
#[derive(Default)]
struct Reach {
    tcp: BTreeSet<u16>,
    udp: BTreeSet<u16>,
    categories: BTreeSet<String>,
}

impl Reach {
    fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }
}

fn reach(version: &Version<'_>, direct: &[&str], item: &Item) -> Reach {
    let mut out = Reach::default();
    for cat in direct {
        let Some(view) = version.get(*cat) else {
            continue;
        };
        for rule in view.rules.values() {
            let hit = match item {
                Item::Domain(d) => rule.domains.contains(d),
                Item::Network(n) => rule.networks.iter().any(|m| m.contains(n)),
            };
            if hit {
                out.tcp.extend(&rule.tcp);
                out.udp.extend(&rule.udp);
                out.categories.insert(cat.to_string());
            }
        }
    }
    out
}

/// The item's ports in `has` that `had` lacks, if any.
fn exposed(item: &Item, has: &Reach, had: &Reach) -> Option<Exposed> {
    let tcp: Vec<u16> = has.tcp.difference(&had.tcp).copied().collect();
    let udp: Vec<u16> = has.udp.difference(&had.udp).copied().collect();
    if tcp.is_empty() && udp.is_empty() {
        return None;
    }
    Some(Exposed {
        kind: item.kind(),
        value: item.to_string(),
        categories: has.categories.iter().cloned().collect(),
        tcp,
        udp,
    })
}
