//! Domain patterns with Microsoft's semantics, compiled into a label trie.
//!
//! Forms: an exact name (`outlook.office.com`); `*.suffix` (one or more labels in front of
//! the suffix, never the bare suffix); a wildcard inside the first label (`*-my.sharepoint.com`,
//! at least one character, never across a dot); a wildcard label in the middle
//! (`autodiscover.*.onmicrosoft.com`, exactly one label). Lookup walks the name's labels
//! from the right, so its cost depends on the name, not on how many patterns are loaded.

use std::fmt;

use rustc_hash::FxHashMap;

/// One label of a pattern, right to left.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Label {
    Literal(Box<str>),
    /// `*` as a whole label in the middle: exactly one label.
    One,
    /// `pre*suf` inside a label: at least one character between.
    Glob {
        prefix: Box<str>,
        suffix: Box<str>,
    },
}

/// A parsed domain pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DomainPattern {
    /// Labels from the right (TLD first), excluding a leading `*.`.
    labels: Vec<Label>,
    /// The pattern began with `*.`: one or more labels may precede.
    any_sub: bool,
    text: Box<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty pattern")]
    Empty,
    #[error("patterns are lower-case ASCII (use punycode for international names)")]
    NotLowerAscii,
    #[error("empty label")]
    EmptyLabel,
    #[error("invalid character {0:?}")]
    InvalidChar(char),
    #[error("more than one '*' in a label")]
    DoubleStar,
    #[error(
        "the last two labels must be literal (a wildcard over a top-level domain is never allowed)"
    )]
    WildTld,
    #[error("a wildcard inside a label is only allowed in the first label")]
    GlobNotFirst,
}

impl DomainPattern {
    pub fn parse(text: &str) -> Result<DomainPattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text
            .bytes()
            .any(|b| !b.is_ascii() || b.is_ascii_uppercase())
        {
            return Err(PatternError::NotLowerAscii);
        }
        let (any_sub, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let raw: Vec<&str> = rest.split('.').collect();
        let count = raw.len();
        let mut labels = Vec::with_capacity(count);
        for (i, label) in raw.iter().rev().enumerate() {
            let first = i + 1 == count;
            labels.push(parse_label(label, first)?);
        }
        if labels.len() < 2 || labels[..2].iter().any(|l| !matches!(l, Label::Literal(_))) {
            return Err(PatternError::WildTld);
        }
        Ok(DomainPattern {
            labels,
            any_sub,
            text: text.into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern matches more than one name.
    pub fn is_wildcard(&self) -> bool {
        self.any_sub || self.labels.iter().any(|l| !matches!(l, Label::Literal(_)))
    }

    /// The literal labels right of the rightmost wildcard (`blob.core.windows.net` for
    /// `*.blob.core.windows.net`, `onmicrosoft.com` for `autodiscover.*.onmicrosoft.com`):
    /// the zone a wildcard ranges over. `None` for an exact name.
    pub fn wildcard_zone(&self) -> Option<String> {
        if !self.is_wildcard() {
            return None;
        }
        let fixed: Vec<&str> = self
            .labels
            .iter()
            .map_while(|l| match l {
                Label::Literal(s) => Some(&**s),
                _ => None,
            })
            .collect();
        Some(fixed.iter().rev().copied().collect::<Vec<_>>().join("."))
    }

    /// Specificity for "most specific wins": literal labels count most, then exactness.
    fn specificity(&self) -> u32 {
        let literal = self
            .labels
            .iter()
            .filter(|l| matches!(l, Label::Literal(_)))
            .count() as u32;
        literal * 4 + self.labels.len() as u32 * 2 + u32::from(!self.any_sub)
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_label(label: &str, first: bool) -> Result<Label, PatternError> {
    if label.is_empty() {
        return Err(PatternError::EmptyLabel);
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*')))
    {
        return Err(PatternError::InvalidChar(c));
    }
    match label.matches('*').count() {
        0 => Ok(Label::Literal(label.into())),
        1 if label == "*" => Ok(Label::One),
        1 if first => {
            let (prefix, suffix) = label.split_once('*').unwrap_or((label, ""));
            Ok(Label::Glob {
                prefix: prefix.into(),
                suffix: suffix.into(),
            })
        }
        1 => Err(PatternError::GlobNotFirst),
        _ => Err(PatternError::DoubleStar),
    }
}

/// Splits `a.b.c` into `(Some("a.b"), "c")`, and `c` into `(None, "c")`. A plain loop over
/// the bytes: labels are short, and a general searcher costs more than the search.
fn last_label(name: &str) -> (Option<&str>, &str) {
    let dot = name.bytes().rposition(|b| b == b'.');
    match dot.and_then(|dot| name.split_at_checked(dot)) {
        Some((tail, label)) => (Some(tail), label.strip_prefix('.').unwrap_or(label)),
        None => (None, name),
    }
}

/// Index of a compiled node.
type NodeId = u32;

struct Node<V> {
    /// Children by literal label. A fixed, fast hash rather than a randomised one: the
    /// keys come from the operator's allowlists, and a client only looks names up, so it
    /// cannot add keys that collide and make the chains longer.
    literal: FxHashMap<Box<str>, NodeId>,
    one: Option<NodeId>,
    globs: Vec<(Box<str>, Box<str>, NodeId)>,
    /// Patterns ending exactly here.
    exact: Vec<(u32, V)>,
    /// `*.` patterns whose suffix ends here: match when labels remain.
    any_sub: Vec<(u32, V)>,
}

impl<V> Node<V> {
    fn empty() -> Self {
        Node {
            literal: FxHashMap::default(),
            one: None,
            globs: Vec::new(),
            exact: Vec::new(),
            any_sub: Vec::new(),
        }
    }
}

/// Compiled set of domain patterns, each carrying a value (a rule id).
pub struct DomainSet<V> {
    nodes: Vec<Node<V>>,
    len: usize,
}

impl<V: Copy> Default for DomainSet<V> {
    fn default() -> Self {
        DomainSet {
            nodes: vec![Node::empty()],
            len: 0,
        }
    }
}

impl<V: Copy> DomainSet<V> {
    pub fn insert(&mut self, pattern: &DomainPattern, value: V) {
        let mut at: NodeId = 0;
        for label in &pattern.labels {
            at = match label {
                Label::Literal(s) => match self.nodes[at as usize].literal.get(s) {
                    Some(&next) => next,
                    None => {
                        let next = self.push();
                        self.nodes[at as usize].literal.insert(s.clone(), next);
                        next
                    }
                },
                Label::One => match self.nodes[at as usize].one {
                    Some(next) => next,
                    None => {
                        let next = self.push();
                        self.nodes[at as usize].one = Some(next);
                        next
                    }
                },
                Label::Glob { prefix, suffix } => {
                    let found = self.nodes[at as usize]
                        .globs
                        .iter()
                        .find(|(p, s, _)| p == prefix && s == suffix)
                        .map(|g| g.2);
                    match found {
                        Some(next) => next,
                        None => {
                            let next = self.push();
                            self.nodes[at as usize].globs.push((
                                prefix.clone(),
                                suffix.clone(),
                                next,
                            ));
                            next
                        }
                    }
                }
            };
        }
        let entry = (pattern.specificity(), value);
        let node = &mut self.nodes[at as usize];
        if pattern.any_sub {
            node.any_sub.push(entry);
        } else {
            node.exact.push(entry);
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `found(specificity, value)` for every pattern that matches `name`
    /// (a normalised name: lower-case, no trailing dot).
    pub fn matches(&self, name: &str, found: &mut impl FnMut(u32, V)) {
        self.walk(0, Some(name), found);
    }

    /// Matches the labels of `rest` (`None` when none are left) from node `at`, taking
    /// them from the right, so no list of labels is built.
    fn walk(&self, at: NodeId, rest: Option<&str>, found: &mut impl FnMut(u32, V)) {
        let node = &self.nodes[at as usize];
        let Some(rest) = rest else {
            for &(s, v) in &node.exact {
                found(s, v);
            }
            return;
        };
        let (tail, label) = last_label(rest);
        for &(s, v) in &node.any_sub {
            found(s, v);
        }
        if let Some(&next) = node.literal.get(label) {
            self.walk(next, tail, found);
        }
        if let Some(next) = node.one {
            self.walk(next, tail, found);
        }
        for (prefix, suffix, next) in &node.globs {
            if label.len() > prefix.len() + suffix.len()
                && label.starts_with(&**prefix)
                && label.ends_with(&**suffix)
            {
                self.walk(*next, tail, found);
            }
        }
    }

    fn push(&mut self) -> NodeId {
        self.nodes.push(Node::empty());
        (self.nodes.len() - 1) as NodeId
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> DomainSet<usize> {
        let mut s = DomainSet::default();
        for (i, p) in patterns.iter().enumerate() {
            s.insert(&DomainPattern::parse(p).unwrap(), i);
        }
        s
    }

    fn hits(s: &DomainSet<usize>, name: &str) -> Vec<usize> {
        let mut v = Vec::new();
        s.matches(name, &mut |_, i| v.push(i));
        v.sort();
        v
    }

    #[test]
    fn microsoft_semantics() {
        let s = set(&[
            "outlook.office.com",             // 0
            "*.sharepoint.com",               // 1
            "*-my.sharepoint.com",            // 2
            "autodiscover.*.onmicrosoft.com", // 3
            "*cdn.onenote.net",               // 4
        ]);
        let table: &[(&str, &[usize])] = &[
            ("outlook.office.com", &[0]),
            ("x.outlook.office.com", &[]),
            ("office.com", &[]),
            ("sharepoint.com", &[]),
            ("contoso.sharepoint.com", &[1]),
            ("a.b.sharepoint.com", &[1]),
            ("contoso-my.sharepoint.com", &[1, 2]),
            ("-my.sharepoint.com", &[1]),
            ("a.contoso-my.sharepoint.com", &[1]),
            ("xsharepoint.com", &[]),
            ("sharepoint.com.evil.test", &[]),
            ("autodiscover.contoso.onmicrosoft.com", &[3]),
            ("autodiscover.onmicrosoft.com", &[]),
            ("autodiscover.a.b.onmicrosoft.com", &[]),
            ("x.autodiscover.contoso.onmicrosoft.com", &[]),
            ("appcdn.onenote.net", &[4]),
            ("cdn.onenote.net", &[]),
            ("a.appcdn.onenote.net", &[]),
        ];
        for (name, want) in table {
            assert_eq!(hits(&s, name), *want, "{name}");
        }
    }

    #[test]
    fn names_of_one_label_and_of_many() {
        let s = set(&["*.sharepoint.com", "com.example.com", "example.com"]);
        assert_eq!(hits(&s, "com"), Vec::<usize>::new());
        assert_eq!(hits(&s, "example.com"), [2]);
        assert_eq!(hits(&s, "com.example.com"), [1]);
        let deep = format!("{}sharepoint.com", "a.".repeat(125));
        assert_eq!(hits(&s, &deep), [0]);
        assert_eq!(last_label("a.b.c"), (Some("a.b"), "c"));
        assert_eq!(last_label("c"), (None, "c"));
    }

    #[test]
    fn more_specific_pattern_scores_higher() {
        let exact = DomainPattern::parse("a.sharepoint.com").unwrap();
        let glob = DomainPattern::parse("*-my.sharepoint.com").unwrap();
        let sub = DomainPattern::parse("*.sharepoint.com").unwrap();
        assert!(exact.specificity() > glob.specificity());
        assert!(glob.specificity() > sub.specificity());
    }

    #[test]
    fn rejects_bad_patterns() {
        let cases = [
            ("", PatternError::Empty),
            ("Outlook.com", PatternError::NotLowerAscii),
            ("*.com", PatternError::WildTld),
            ("*", PatternError::WildTld),
            ("a.*", PatternError::WildTld),
            ("a..com", PatternError::EmptyLabel),
            ("a.b*c.example.com", PatternError::GlobNotFirst),
            ("**.example.com", PatternError::DoubleStar),
            ("a/b.example.com", PatternError::InvalidChar('/')),
        ];
        for (p, want) in cases {
            assert_eq!(DomainPattern::parse(p), Err(want), "{p:?}");
        }
    }

    #[test]
    fn wildcard_zone() {
        let z = |p: &str| DomainPattern::parse(p).unwrap().wildcard_zone();
        assert_eq!(
            z("*.blob.core.windows.net").as_deref(),
            Some("blob.core.windows.net")
        );
        assert_eq!(
            z("autodiscover.*.onmicrosoft.com").as_deref(),
            Some("onmicrosoft.com")
        );
        assert_eq!(z("*-my.sharepoint.com").as_deref(), Some("sharepoint.com"));
        assert_eq!(z("login.microsoftonline.com"), None);
    }
}
