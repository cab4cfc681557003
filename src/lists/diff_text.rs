//! The diff as an operator reads it: a summary line, what becomes newly direct per
//! profile, moves, then every change by category.

use std::fmt::Write as _;

use super::diff::*;
use super::firewall::port_ranges;

impl ListDiff {
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty() && self.moves.is_empty()
    }

    /// `+N -M moved K; newly direct in: case2 (3), case3 (5)`.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let direct: Vec<String> = s
            .newly_direct
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(p, n)| format!("{p} ({n})"))
            .collect();
        format!(
            "+{} -{} moved {}; newly direct in: {}",
            s.added,
            s.removed,
            s.moved,
            if direct.is_empty() {
                "none".to_string()
            } else {
                direct.join(", ")
            }
        )
    }

    /// The review page: summary line, then newly direct, no longer direct, moves, and the
    /// changes per category.
    pub fn to_text(&self) -> String {
        if self.is_empty() {
            return "no changes\n".to_string();
        }
        let mut out = self.summary_line();
        out.push('\n');
        if !self.newly_direct.is_empty() {
            out.push_str("\nNEWLY DIRECT: the security team must approve these\n");
            out.push_str(&table(&exposure_lines(&self.newly_direct), "    "));
        }
        if !self.no_longer_direct.is_empty() {
            out.push_str("\nNo longer direct (back to the security cloud)\n");
            out.push_str(&table(&exposure_lines(&self.no_longer_direct), "    "));
        }
        if !self.moves.is_empty() {
            out.push_str("\nMoved\n");
            let lines: Vec<Line> = self.moves.iter().map(move_line).collect();
            out.push_str(&table(&lines, "  "));
        }
        if !self.categories.is_empty() {
            out.push_str("\nBy category\n");
            let lines: Vec<Line> = self.categories.iter().flat_map(category_lines).collect();
            out.push_str(&table(&lines, "    "));
        }
        out
    }
}

enum Line {
    Heading(String),
    Row(Vec<String>),
}

fn row<const N: usize>(cells: [&str; N]) -> Line {
    Line::Row(cells.iter().map(|c| c.to_string()).collect())
}

/// Headings at two spaces, rows at `indent`, row columns aligned over the whole block.
fn table(lines: &[Line], indent: &str) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines {
        if let Line::Row(cells) = line {
            for (i, c) in cells.iter().enumerate() {
                let w = c.chars().count();
                match widths.get_mut(i) {
                    Some(x) => *x = (*x).max(w),
                    None => widths.push(w),
                }
            }
        }
    }
    let mut out = String::new();
    for line in lines {
        match line {
            Line::Heading(h) => {
                let _ = writeln!(out, "  {h}");
            }
            Line::Row(cells) => {
                let mut s = String::from(indent);
                for (i, c) in cells.iter().enumerate() {
                    s.push_str(c);
                    if i + 1 < cells.len() {
                        let pad = widths[i] - c.chars().count() + 2;
                        s.extend(std::iter::repeat_n(' ', pad));
                    }
                }
                let _ = writeln!(out, "{}", s.trim_end());
            }
        }
    }
    out
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Domain => "domain",
        Kind::Network => "network",
    }
}

fn ports_text(tcp: &[u16], udp: &[u16]) -> String {
    let mut parts = Vec::new();
    if !tcp.is_empty() {
        parts.push(format!("tcp {}", ranges_text(tcp)));
    }
    if !udp.is_empty() {
        parts.push(format!("udp {}", ranges_text(udp)));
    }
    parts.join("  ")
}

fn ranges_text(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "none".to_string();
    }
    port_ranges(ports)
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn exposure_lines(list: &[Exposure]) -> Vec<Line> {
    let mut lines = Vec::new();
    for e in list {
        lines.push(Line::Heading(format!("{} ({})", e.profile, e.items.len())));
        for i in &e.items {
            lines.push(row([
                kind_word(i.kind),
                &i.value,
                &i.categories.join(","),
                &ports_text(&i.tcp, &i.udp),
            ]));
        }
    }
    lines
}

fn move_line(m: &Move) -> Line {
    let mut effect = Vec::new();
    if !m.newly_direct_in.is_empty() {
        effect.push(format!("newly direct in {}", m.newly_direct_in.join(", ")));
    }
    if !m.no_longer_direct_in.is_empty() {
        effect.push(format!(
            "no longer direct in {}",
            m.no_longer_direct_in.join(", ")
        ));
    }
    if effect.is_empty() {
        effect.push("same routes".to_string());
    }
    row([
        kind_word(m.kind),
        &m.value,
        &format!("{} → {}", m.from, m.to),
        &effect.join("; "),
    ])
}

fn category_lines(c: &CategoryDiff) -> Vec<Line> {
    let profiles = if c.profiles.is_empty() {
        "not in a built-in profile".to_string()
    } else {
        format!("direct in {}", c.profiles.join(", "))
    };
    let status = match c.status {
        Status::Added => "added; ",
        Status::Removed => "removed; ",
        Status::Changed => "",
    };
    let mut lines = vec![Line::Heading(format!("{} ({status}{profiles})", c.name))];
    if let Some(p) = &c.provenance {
        let side = |v: &Option<String>, r: &Option<String>| match (v, r) {
            (Some(v), Some(r)) => format!("{v:?} ({r})"),
            _ => "none".to_string(),
        };
        lines.push(row([
            "provenance",
            &format!(
                "{} → {}",
                side(&p.old_version, &p.old_retrieved),
                side(&p.new_version, &p.new_retrieved)
            ),
        ]));
    }
    for r in &c.rules_added {
        lines.push(row(["+ rule", &format!("{}/{r}", c.name)]));
    }
    for r in &c.rules_removed {
        lines.push(row(["- rule", &format!("{}/{r}", c.name)]));
    }
    for d in &c.domains_added {
        lines.push(row(["+ domain", d]));
    }
    for d in &c.domains_removed {
        lines.push(row(["- domain", d]));
    }
    for n in &c.networks_added {
        lines.push(row(["+ network", n]));
    }
    for n in &c.networks_removed {
        lines.push(row(["- network", n]));
    }
    for p in &c.ports_changed {
        let mut change = Vec::new();
        if p.tcp_old != p.tcp_new {
            change.push(format!(
                "tcp {} → {}",
                ranges_text(&p.tcp_old),
                ranges_text(&p.tcp_new)
            ));
        }
        if p.udp_old != p.udp_new {
            change.push(format!(
                "udp {} → {}",
                ranges_text(&p.udp_old),
                ranges_text(&p.udp_new)
            ));
        }
        lines.push(row([
            "~ ports",
            &format!("{}/{}  {}", c.name, p.rule, change.join("  ")),
        ]));
    }
    lines
}
