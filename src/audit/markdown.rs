//! The report as Markdown (GitHub flavour): the same content as the HTML page, in tables.
//! Text from files is escaped; names, patterns and hashes go in code spans.

use super::html::counts;
use super::lang::{fill, Text, KINDS, REASONS, ROUTES};
use super::report::{CategoryRow, Got, Outcome, Report};
use super::sources::verify_command;

/// The whole document.
pub fn render(r: &Report, t: &Text) -> String {
    let mut m = String::with_capacity(256 * 1024);
    let decisions = r.evidence.decisions().to_string();
    let verdict = match r.failures() {
        0 => fill(t.verdict_ok, &[("decisions", decisions)]),
        n => fill(
            t.verdict_fail,
            &[("failures", n.to_string()), ("decisions", decisions)],
        ),
    };
    m.push_str(&format!(
        "# {}\n\n{}\n\n> **{}**\n\n",
        text(t.title),
        text(t.subtitle),
        text(&verdict)
    ));
    identification(&mut m, r, t);
    summary(&mut m, r, t);
    upstream(&mut m, r, t);
    m.push_str(&format!(
        "## 4. {}\n\n{}\n\n{}\n\n",
        text(t.s4),
        text(t.s4_intro),
        text(t.s4_patterns)
    ));
    if r.categories.is_empty() {
        m.push_str(&format!("{}\n\n", text(t.s4_none)));
    }
    for c in &r.categories {
        category(&mut m, c, t);
    }
    if !r.other_categories.is_empty() {
        m.push_str(&format!(
            "{}{}{}\n\n",
            text(t.s4_others),
            t.gap,
            codes(&r.other_categories, ", ", t.none)
        ));
    }
    evidence(&mut m, r, t);
    m.push_str(&super::log_evidence::markdown(&r.access_log, t.code));
    super::safeguards::markdown(&mut m, r, t);
    m.push_str(&format!(
        "---\n\n{} lbo-proxy {}, {} {}\n",
        text(t.end),
        text(r.version),
        text(t.generated),
        text(&r.generated)
    ));
    m
}

/// Plain text: Markdown and HTML characters escaped, line breaks kept inside a cell.
pub(super) fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A code span that survives any backticks and a table's pipes.
pub(super) fn code(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let inner = s.replace('|', "\\|").replace(['\n', '\r'], " ");
    let pad = if inner.starts_with('`') || inner.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{inner}{pad}{fence}")
}

fn codes(list: &[String], sep: &str, none: &str) -> String {
    if list.is_empty() {
        text(none)
    } else {
        list.iter().map(|s| code(s)).collect::<Vec<_>>().join(sep)
    }
}

pub(super) fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

pub(super) fn head(cells: &[&str]) -> String {
    let names: Vec<String> = cells.iter().map(|c| text(c)).collect();
    let rule: Vec<&str> = cells.iter().map(|_| "---").collect();
    format!("{}| {} |\n", row(&names), rule.join(" | "))
}

fn ports(list: &[u16]) -> String {
    list.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn identification(m: &mut String, r: &Report, t: &Text) {
    m.push_str(&format!("## 1. {}\n\n", text(t.s1)));
    m.push_str(&head(&["", ""]));
    for (k, v) in [
        (t.generated, text(&r.generated)),
        (t.version, text(r.version)),
        (t.config_source, code(&r.source)),
        (t.combined, code(&r.combined_sha256)),
    ] {
        m.push_str(&row(&[format!("**{}**", text(k)), v]));
    }
    m.push('\n');
    m.push_str(&head(&["#", t.file, t.bytes, "SHA-256"]));
    for (i, f) in r.files.iter().enumerate() {
        m.push_str(&row(&[
            (i + 1).to_string(),
            code(&f.name),
            f.bytes.to_string(),
            code(&f.sha256),
        ]));
    }
    m.push_str(&format!(
        "\n{}\n\n```sh\n{}\n```\n\n",
        text(t.hash_explain),
        verify_command(&r.files)
    ));
}

fn summary(m: &mut String, r: &Report, t: &Text) {
    let (rest_text, rest_cell) = if r.no_parent() {
        (t.s2_no_parent, t.rest_503)
    } else {
        (t.s2_parent, t.rest_upstream)
    };
    m.push_str(&format!(
        "## 2. {}\n\n{}{}{}\n\n### {}\n\n",
        text(t.s2),
        text(t.s2_intro),
        t.gap,
        text(rest_text),
        text(t.segments)
    ));
    m.push_str(&head(&[
        t.segment,
        t.client_networks,
        t.profile,
        t.tenant_col,
    ]));
    for s in &r.segments {
        m.push_str(&row(&[
            code(&s.name),
            codes(&s.networks, "<br>", t.none),
            code(&s.profile),
            s.tenant_restrictions
                .as_deref()
                .map_or_else(|| text(t.tenant_off), code),
        ]));
    }
    m.push_str(&format!("\n### {}\n\n", text(t.profiles)));
    m.push_str(&head(&[
        t.profile,
        t.case,
        t.used_by,
        t.direct_col,
        t.denied_col,
        t.rest_col,
    ]));
    for p in &r.profiles {
        m.push_str(&row(&[
            code(&p.name),
            text(t.case_label(p.case)),
            codes(&p.segments, ", ", t.none),
            codes(&p.direct, ", ", t.none),
            codes(&p.deny, ", ", t.none),
            text(rest_cell),
        ]));
    }
    m.push('\n');
}

fn upstream(m: &mut String, r: &Report, t: &Text) {
    let u = &r.upstream;
    m.push_str(&format!("## 3. {}\n\n", text(t.s3)));
    if u.parents.is_empty() {
        m.push_str(&format!("> {}\n\n", text(t.s3_none)));
    } else {
        m.push_str(&format!("{}\n\n", text(t.s3_intro)));
        m.push_str(&head(&["#", t.name, t.address, "TLS", t.auth]));
        for (i, p) in u.parents.iter().enumerate() {
            let tls = match &p.tls_server_name {
                Some(n) if p.tls => format!("{} ({})", text(t.yes), code(n)),
                _ => text(if p.tls { t.yes } else { t.no }),
            };
            m.push_str(&row(&[
                (i + 1).to_string(),
                code(&p.name),
                code(&p.address),
                tls,
                text(if p.auth { t.yes } else { t.no }),
            ]));
        }
        m.push('\n');
    }
    m.push_str(&format!("### {}\n\n", text(t.health)));
    m.push_str(&head(&["", ""]));
    for (k, v) in [
        (t.interval, u.health_interval.clone()),
        (t.timeout, u.health_timeout.clone()),
        (t.fall, fill(t.fall_n, &[("n", u.fall.to_string())])),
        (t.rise, fill(t.rise_n, &[("n", u.rise.to_string())])),
    ] {
        m.push_str(&row(&[format!("**{}**", text(k)), text(&v)]));
    }
    m.push('\n');
}

fn category(m: &mut String, c: &CategoryRow, t: &Text) {
    let p = &c.provenance;
    let ids: Vec<String> = p.endpoint_ids.iter().map(u32::to_string).collect();
    let refs: Vec<String> = p
        .references
        .iter()
        .map(|u| {
            if u.starts_with("https://") || u.starts_with("http://") {
                format!("<{}>", u.replace(['<', '>', ' ', '|'], ""))
            } else {
                text(u)
            }
        })
        .collect();
    m.push_str(&format!("### {}\n\n", code(&c.name)));
    m.push_str(&head(&["", ""]));
    for (k, v) in [
        (t.description, text(&c.description)),
        (t.direct_in, codes(&c.direct_in, ", ", t.none)),
        (t.file, code(&c.file)),
        (t.source, text(&p.source)),
        (t.list_version, text(&p.version)),
        (t.retrieved, text(&p.retrieved)),
        (t.endpoint_ids, ids.join(", ")),
        (t.references, refs.join("<br>")),
    ] {
        m.push_str(&row(&[format!("**{}**", text(k)), v]));
    }
    if !p.notes.trim().is_empty() {
        let notes = p.notes.trim();
        let longest = notes.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat((longest + 1).max(3));
        m.push_str(&format!(
            "\n**{}**\n\n{fence}text\n{notes}\n{fence}\n",
            text(t.notes)
        ));
    }
    m.push('\n');
    m.push_str(&head(&[
        t.rule,
        t.endpoint_or_source,
        t.tcp_ports,
        t.udp_ports,
        t.domains,
        t.networks,
    ]));
    for rule in &c.rules {
        let mut origin = Vec::new();
        if let Some(id) = rule.endpoint_id {
            origin.push(format!("{} {id}", text(t.endpoint)));
        }
        if let Some(s) = &rule.source {
            origin.push(text(s));
        }
        let udp = if rule.udp_ports.is_empty() {
            String::new()
        } else {
            format!("{} ({})", ports(&rule.udp_ports), text(t.udp_note))
        };
        m.push_str(&row(&[
            code(&rule.name),
            origin.join("<br>"),
            ports(&rule.ports),
            udp,
            codes(&rule.domains, "<br>", ""),
            codes(&rule.networks, "<br>", ""),
        ]));
    }
    m.push('\n');
}

fn got(g: &Got) -> String {
    let mut s = format!("{} · {}", g.route.as_str(), g.reason.as_str());
    if let Some(rule) = &g.rule {
        s.push_str(&format!("<br>{}", code(rule)));
    }
    s
}

fn outcome_cells(o: &Outcome, t: &Text) -> [String; 2] {
    let mark = if o.ok() { "" } else { "**FAILURE** " };
    [text(t.expect(o.expected)), format!("{mark}{}", got(&o.got))]
}

fn evidence(m: &mut String, r: &Report, t: &Text) {
    let e = &r.evidence;
    m.push_str(&format!(
        "## 5. {}\n\n{}\n\n**{}**\n\n",
        text(t.s5),
        text(t.s5_intro),
        text(&counts(r, t))
    ));
    if r.no_parent() {
        m.push_str(&format!("> {}\n\n", text(t.s5_no_parent)));
    }
    if !e.capped.is_empty() {
        m.push_str(&format!(
            "{}{}{}\n\n",
            text(t.s5_capped),
            t.gap,
            codes(&e.capped, ", ", t.none)
        ));
    }
    m.push_str(&head(&[
        t.profile,
        t.probes_col,
        t.expect_direct_col,
        t.expect_not_col,
        t.failures_col,
    ]));
    for (i, p) in e.profiles.iter().enumerate() {
        let direct = e.expected_direct(i);
        m.push_str(&row(&[
            code(p),
            e.rows.len().to_string(),
            direct.to_string(),
            (e.rows.len() - direct).to_string(),
            e.column_failures(i).to_string(),
        ]));
    }
    m.push_str(&format!("\n**{}**\n\n", text(t.kinds)));
    for k in KINDS {
        m.push_str(&format!("- {}\n", text(t.kind(k))));
    }
    m.push_str(&format!("\n**{}**\n\n", text(t.legend)));
    for r in ROUTES {
        m.push_str(&format!("- {}\n", text(t.route(r))));
    }
    for r in REASONS {
        m.push_str(&format!("- {}\n", text(t.reason(r))));
    }
    m.push_str(&format!(
        "\n### {}\n\n{}\n\n",
        text(t.unknown_clients),
        text(t.unknown_intro)
    ));
    if e.clients.is_empty() {
        m.push_str(&format!("{}\n\n", text(t.no_unknown)));
    } else {
        m.push_str(&head(&[t.client, t.target, t.expected, t.got]));
        for c in &e.clients {
            let [exp, got] = outcome_cells(&c.outcome, t);
            m.push_str(&row(&[
                code(&c.client.to_string()),
                code(&c.target),
                exp,
                got,
            ]));
        }
        m.push('\n');
    }
    m.push_str(&format!("### {}\n\n", text(t.probe_list)));
    let mut names: Vec<String> = vec!["#".into(), t.probe.into(), t.kind_from.into()];
    for p in &e.profiles {
        names.push(format!("{p}: {}", t.expected));
        names.push(format!("{p}: {}", t.got));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    m.push_str(&head(&names));
    for (i, r) in e.rows.iter().enumerate() {
        let p = &r.probe;
        let mut probe = code(&p.target);
        match &r.normalised {
            Ok(n) if *n != p.target => {
                probe.push_str(&format!("<br>{}: {}", text(t.normalised), code(n)))
            }
            Ok(_) => {}
            Err(e) => probe.push_str(&format!("<br>{}: {}", text(t.invalid), text(e))),
        }
        let mut kind = text(t.kind(p.kind));
        if let Some(c) = &p.category {
            kind.push_str(&format!("<br>{}", code(c)));
        }
        if !p.from.is_empty() {
            kind.push_str(&format!(": {}", code(&p.from)));
        }
        let mut cells = vec![(i + 1).to_string(), probe, kind];
        for o in &r.outcomes {
            cells.extend(outcome_cells(o, t));
        }
        m.push_str(&row(&cells));
    }
    m.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_guards_code_spans() {
        assert_eq!(text("a|b <i>*x*</i>"), "a\\|b &lt;i&gt;\\*x\\*&lt;/i&gt;");
        assert_eq!(code("*.sharepoint.com"), "`*.sharepoint.com`");
        assert_eq!(code("a`b|c"), "``a`b\\|c``");
    }
}
