//! The report as one self-contained HTML page: inline CSS, no script, no external asset,
//! laid out to print on A4 (the evidence tables on landscape pages). Everything that comes
//! from a file is escaped.

use super::lang::{fill, Text, KINDS, REASONS, ROUTES};
use super::oracle::Expect;
use super::probes::{PER_CATEGORY, PER_PATTERN};
use super::report::{CategoryRow, Got, Outcome, ProbeRow, Report};
use super::sources::verify_command;

const CSS: &str = r#"
:root { --ink: #1b1f24; --muted: #5b6470; --line: #b9c0c8; --head: #e9eef4; --accent: #1f3a5f;
  --ok: #0b6b2e; --fail: #b00020; --failbg: #fde7ea; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Yu Gothic UI", "Yu Gothic",
  Meiryo, "Segoe UI", "Helvetica Neue", Arial, sans-serif; color: var(--ink); font-size: 14px;
  line-height: 1.5; max-width: 1200px; margin: 24px auto; padding: 0 24px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 16px; }
h1 { font-size: 26px; margin: 0 0 2px; color: var(--accent); }
.subtitle { margin: 0 0 12px; color: var(--muted); }
h2 { font-size: 19px; color: var(--accent); border-bottom: 1px solid var(--line); margin: 28px 0 10px;
  padding-bottom: 2px; break-after: avoid; }
h3 { font-size: 16px; margin: 18px 0 6px; break-after: avoid; }
p { margin: 6px 0 10px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: left; vertical-align: top; }
thead th, th[scope=row] { background: var(--head); }
th[scope=row] { width: 24%; font-weight: 600; }
tr { break-inside: avoid; }
code, .mono { font-family: "DejaVu Sans Mono", "Cascadia Mono", Consolas, Menlo, monospace;
  font-size: 12px; overflow-wrap: anywhere; }
pre { font-family: "DejaVu Sans Mono", Consolas, Menlo, monospace; font-size: 12px; white-space: pre-wrap;
  overflow-wrap: anywhere; background: #f6f8fa; border: 1px solid var(--line); padding: 6px 8px; margin: 4px 0; }
small, .muted { color: var(--muted); }
ul.plain { list-style: none; padding: 0; margin: 0; }
.verdict { border: 2px solid var(--ok); color: var(--ok); background: #eaf6ee; padding: 8px 12px;
  margin: 10px 0 14px; font-weight: 600; }
.verdict.failed { border-color: var(--fail); color: var(--fail); background: var(--failbg); }
.warn { border-left: 4px solid #b26b00; background: #fff6e5; padding: 6px 10px; }
.cat { border: 1px solid var(--line); padding: 4px 12px 2px; margin: 12px 0 18px; }
.cat h3 { margin-top: 6px; }
.cat h3 code { font-size: 16px; }
.r-direct { color: var(--ok); font-weight: 600; }
.r-upstream { color: #1d4f91; }
.r-deny { color: #7a3b00; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.group th { background: #f3f5f8; font-weight: 600; }
tr.failure td { background: var(--failbg); }
.failure-mark { color: #fff; background: var(--fail); font-weight: 700; padding: 0 4px; }
.ok-mark { color: var(--ok); font-weight: 600; }
table.probes { font-size: 11.5px; table-layout: fixed; }
table.probes code { font-size: 11px; }
footer { margin-top: 28px; border-top: 1px solid var(--line); color: var(--muted); font-size: 12px; }
.new-page { break-before: page; }
@page { size: A4 portrait; margin: 14mm 12mm; }
@page wide { size: A4 landscape; margin: 12mm 10mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  table { font-size: 9pt; }
  table.probes { font-size: 7.5pt; }
  table.probes code { font-size: 7.5pt; }
  code, pre { font-size: 8.5pt; }
  section.evidence { page: wide; }
  a { color: inherit; }
}
"#;

/// The whole document.
pub fn render(r: &Report, t: &Text) -> String {
    let mut h = String::with_capacity(512 * 1024);
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"lbo-proxy {}\">\n<title>{} — {}</title>\n\
         <style>{CSS}</style>\n</head>\n<body>\n",
        t.code,
        esc(r.version),
        esc(t.title),
        esc(&r.source)
    ));
    header(&mut h, r, t);
    identification(&mut h, r, t);
    summary(&mut h, r, t);
    upstream(&mut h, r, t);
    categories(&mut h, r, t);
    evidence(&mut h, r, t);
    h.push_str(&super::log_evidence::html(&r.access_log, t.code));
    super::safeguards::html(&mut h, r, t);
    h.push_str(&format!(
        "<footer><p>{} — lbo-proxy {} — {} {}</p></footer>\n</body>\n</html>\n",
        esc(t.end),
        esc(r.version),
        esc(t.generated),
        esc(&r.generated)
    ));
    h
}

/// Escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn code(s: &str) -> String {
    format!("<code>{}</code>", esc(s))
}

fn codes(list: &[String]) -> String {
    list.iter()
        .map(|s| code(s))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn words(list: &[String], none: &str) -> String {
    if list.is_empty() {
        format!("<span class=\"muted\">{}</span>", esc(none))
    } else {
        list.iter().map(|s| code(s)).collect::<Vec<_>>().join(", ")
    }
}

fn ports(list: &[u16]) -> String {
    list.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(r: &Report, t: &Text) -> (bool, String) {
    let decisions = r.evidence.decisions().to_string();
    match r.failures() {
        0 => (true, fill(t.verdict_ok, &[("decisions", decisions)])),
        n => (
            false,
            fill(
                t.verdict_fail,
                &[("failures", n.to_string()), ("decisions", decisions)],
            ),
        ),
    }
}

fn header(h: &mut String, r: &Report, t: &Text) {
    let (ok, text) = verdict(r, t);
    h.push_str(&format!(
        "<header>\n<h1>{}</h1>\n<p class=\"subtitle\">{}</p>\n</header>\n\
         <div class=\"verdict{}\" id=\"verdict\">{}</div>\n",
        esc(t.title),
        esc(t.subtitle),
        if ok { "" } else { " failed" },
        esc(&text)
    ));
}

fn identification(h: &mut String, r: &Report, t: &Text) {
    h.push_str(&format!(
        "<section id=\"identification\">\n<h2>1. {}</h2>\n<table>\n",
        esc(t.s1)
    ));
    for (k, v) in [
        (t.generated, esc(&r.generated)),
        (t.version, esc(r.version)),
        (t.config_source, code(&r.source)),
        (t.combined, code(&r.combined_sha256)),
    ] {
        h.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{v}</td></tr>\n",
            esc(k)
        ));
    }
    h.push_str(&format!(
        "</table>\n<table>\n<thead><tr><th>#</th><th>{}</th><th>{}</th><th>SHA-256</th></tr></thead>\n<tbody>\n",
        esc(t.file),
        esc(t.bytes)
    ));
    for (i, f) in r.files.iter().enumerate() {
        h.push_str(&format!(
            "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            i + 1,
            code(&f.name),
            f.bytes,
            code(&f.sha256)
        ));
    }
    h.push_str(&format!(
        "</tbody>\n</table>\n<p>{}</p>\n<pre>{}</pre>\n</section>\n",
        esc(t.hash_explain),
        esc(&verify_command(&r.files))
    ));
}

fn summary(h: &mut String, r: &Report, t: &Text) {
    let rest = if r.no_parent() {
        t.s2_no_parent
    } else {
        t.s2_parent
    };
    h.push_str(&format!(
        "<section id=\"summary\">\n<h2>2. {}</h2>\n<p>{}{}{}</p>\n<h3>{}</h3>\n<table>\n\
         <thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        esc(t.s2),
        esc(t.s2_intro),
        t.gap,
        esc(rest),
        esc(t.segments),
        esc(t.segment),
        esc(t.client_networks),
        esc(t.profile),
        esc(t.tenant_col)
    ));
    for s in &r.segments {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            code(&s.name),
            codes(&s.networks),
            code(&s.profile),
            s.tenant_restrictions
                .as_deref()
                .map_or_else(|| esc(t.tenant_off), code)
        ));
    }
    h.push_str(&format!(
        "</tbody>\n</table>\n<h3>{}</h3>\n<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th>\
         <th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        esc(t.profiles),
        esc(t.profile),
        esc(t.case),
        esc(t.used_by),
        esc(t.direct_col),
        esc(t.denied_col),
        esc(t.rest_col)
    ));
    let rest = if r.no_parent() {
        format!("<span class=\"r-deny\">{}</span>", esc(t.rest_503))
    } else {
        format!("<span class=\"r-upstream\">{}</span>", esc(t.rest_upstream))
    };
    for p in &r.profiles {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{rest}</td></tr>\n",
            code(&p.name),
            esc(t.case_label(p.case)),
            words(&p.segments, t.none),
            words(&p.direct, t.none),
            words(&p.deny, t.none),
        ));
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn upstream(h: &mut String, r: &Report, t: &Text) {
    let u = &r.upstream;
    h.push_str(&format!(
        "<section id=\"upstream\">\n<h2>3. {}</h2>\n",
        esc(t.s3)
    ));
    if u.parents.is_empty() {
        h.push_str(&format!("<p class=\"warn\">{}</p>\n", esc(t.s3_none)));
    } else {
        h.push_str(&format!(
            "<p>{}</p>\n<table>\n<thead><tr><th>#</th><th>{}</th><th>{}</th><th>TLS</th>\
             <th>{}</th></tr></thead>\n<tbody>\n",
            esc(t.s3_intro),
            esc(t.name),
            esc(t.address),
            esc(t.auth)
        ));
        for (i, p) in u.parents.iter().enumerate() {
            let tls = match &p.tls_server_name {
                Some(n) if p.tls => format!("{} ({})", esc(t.yes), code(n)),
                _ => esc(if p.tls { t.yes } else { t.no }),
            };
            h.push_str(&format!(
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{tls}</td><td>{}</td></tr>\n",
                i + 1,
                code(&p.name),
                code(&p.address),
                esc(if p.auth { t.yes } else { t.no })
            ));
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h.push_str(&format!("<h3>{}</h3>\n<table>\n", esc(t.health)));
    for (k, v) in [
        (t.interval, u.health_interval.clone()),
        (t.timeout, u.health_timeout.clone()),
        (t.fall, fill(t.fall_n, &[("n", u.fall.to_string())])),
        (t.rise, fill(t.rise_n, &[("n", u.rise.to_string())])),
    ] {
        h.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>\n",
            esc(k),
            esc(&v)
        ));
    }
    h.push_str("</table>\n</section>\n");
}

fn categories(h: &mut String, r: &Report, t: &Text) {
    h.push_str(&format!(
        "<section id=\"categories\" class=\"new-page\">\n<h2>4. {}</h2>\n<p>{}</p>\n<p class=\"muted\">{}</p>\n",
        esc(t.s4),
        esc(t.s4_intro),
        esc(t.s4_patterns)
    ));
    if r.categories.is_empty() {
        h.push_str(&format!("<p>{}</p>\n", esc(t.s4_none)));
    }
    for c in &r.categories {
        category(h, c, t);
    }
    if !r.other_categories.is_empty() {
        h.push_str(&format!(
            "<p>{}{}{}</p>\n",
            esc(t.s4_others),
            t.gap,
            words(&r.other_categories, t.none)
        ));
    }
    h.push_str("</section>\n");
}

fn category(h: &mut String, c: &CategoryRow, t: &Text) {
    let p = &c.provenance;
    let ids: Vec<String> = p.endpoint_ids.iter().map(u32::to_string).collect();
    let refs: Vec<String> = p.references.iter().map(|u| link(u)).collect();
    h.push_str(&format!(
        "<div class=\"cat\" id=\"cat-{}\">\n<h3>{}</h3>\n<table>\n",
        esc(&c.name),
        code(&c.name)
    ));
    for (k, v) in [
        (t.description, esc(&c.description)),
        (t.direct_in, words(&c.direct_in, t.none)),
        (t.file, code(&c.file)),
        (t.source, esc(&p.source)),
        (t.list_version, esc(&p.version)),
        (t.retrieved, esc(&p.retrieved)),
        (t.endpoint_ids, esc(&ids.join(", "))),
        (
            t.references,
            format!("<ul class=\"plain\">{}</ul>", refs.concat()),
        ),
    ] {
        h.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{v}</td></tr>\n",
            esc(k)
        ));
    }
    if !p.notes.trim().is_empty() {
        h.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td><pre>{}</pre></td></tr>\n",
            esc(t.notes),
            esc(p.notes.trim())
        ));
    }
    h.push_str(&format!(
        "</table>\n<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        esc(t.rule),
        esc(t.endpoint_or_source),
        esc(t.tcp_ports),
        esc(t.udp_ports),
        esc(t.domains),
        esc(t.networks)
    ));
    for rule in &c.rules {
        let mut origin = Vec::new();
        if let Some(id) = rule.endpoint_id {
            origin.push(format!("{} {id}", esc(t.endpoint)));
        }
        if let Some(s) = &rule.source {
            origin.push(esc(s));
        }
        let udp = if rule.udp_ports.is_empty() {
            String::new()
        } else {
            format!(
                "{}<br><small>{}</small>",
                ports(&rule.udp_ports),
                esc(t.udp_note)
            )
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{udp}</td><td>{}</td><td>{}</td></tr>\n",
            code(&rule.name),
            origin.join("<br>"),
            ports(&rule.ports),
            codes(&rule.domains),
            codes(&rule.networks)
        ));
    }
    h.push_str("</tbody>\n</table>\n</div>\n");
}

/// A reference as a link when it is a web address, as text otherwise.
fn link(u: &str) -> String {
    if u.starts_with("https://") || u.starts_with("http://") {
        format!("<li><a href=\"{0}\">{0}</a></li>", esc(u))
    } else {
        format!("<li>{}</li>", esc(u))
    }
}

fn evidence(h: &mut String, r: &Report, t: &Text) {
    let e = &r.evidence;
    h.push_str(&format!(
        "<section id=\"evidence\" class=\"evidence new-page\">\n<h2>5. {}</h2>\n<p>{}</p>\n<p><strong>{}</strong></p>\n",
        esc(t.s5),
        esc(t.s5_intro),
        esc(&counts(r, t))
    ));
    if r.no_parent() {
        h.push_str(&format!("<p class=\"warn\">{}</p>\n", esc(t.s5_no_parent)));
    }
    if !e.capped.is_empty() {
        h.push_str(&format!(
            "<p>{}{}{}</p>\n",
            esc(t.s5_capped),
            t.gap,
            words(&e.capped, t.none)
        ));
    }
    h.push_str(&format!(
        "<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        esc(t.profile),
        esc(t.probes_col),
        esc(t.expect_direct_col),
        esc(t.expect_not_col),
        esc(t.failures_col)
    ));
    for (i, p) in e.profiles.iter().enumerate() {
        let direct = e.expected_direct(i);
        let failures = e.column_failures(i);
        h.push_str(&format!(
            "<tr{}><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{direct}</td><td class=\"num\">{}</td><td class=\"num\">{failures}</td></tr>\n",
            if failures > 0 { " class=\"failure\"" } else { "" },
            code(p),
            e.rows.len(),
            e.rows.len() - direct,
        ));
    }
    h.push_str("</tbody>\n</table>\n");
    legend(h, t);
    unknown_clients(h, r, t);
    probe_table(h, r, t);
    h.push_str("</section>\n");
}

pub(super) fn counts(r: &Report, t: &Text) -> String {
    let e = &r.evidence;
    fill(
        t.s5_counts,
        &[
            ("probes", e.rows.len().to_string()),
            ("profiles", e.profiles.len().to_string()),
            ("decisions", (e.rows.len() * e.profiles.len()).to_string()),
            ("clients", e.clients.len().to_string()),
            ("per_pattern", PER_PATTERN.to_string()),
            ("per_category", PER_CATEGORY.to_string()),
        ],
    )
}

fn legend(h: &mut String, t: &Text) {
    let kinds: Vec<String> = KINDS
        .iter()
        .map(|k| format!("<li>{}</li>", esc(t.kind(*k))))
        .collect();
    let routes: Vec<String> = ROUTES
        .iter()
        .map(|r| format!("<li>{}</li>", esc(t.route(*r))))
        .chain(
            REASONS
                .iter()
                .map(|r| format!("<li>{}</li>", esc(t.reason(*r)))),
        )
        .collect();
    h.push_str(&format!(
        "<table>\n<thead><tr><th>{}</th><th>{}</th></tr></thead>\n<tbody><tr><td><ul class=\"plain\">{}</ul></td><td><ul class=\"plain\">{}</ul></td></tr></tbody>\n</table>\n",
        esc(t.kinds),
        esc(t.legend),
        kinds.concat(),
        routes.concat()
    ));
}

fn got(g: &Got) -> String {
    let route = g.route.as_str();
    let mut s = format!(
        "<span class=\"r-{route}\">{route}</span> · {}",
        g.reason.as_str()
    );
    if let Some(rule) = &g.rule {
        s.push_str(&format!("<br>{}", code(rule)));
    }
    s
}

fn outcome_cells(o: &Outcome, t: &Text) -> String {
    let mark = if o.ok() {
        String::new()
    } else {
        "<span class=\"failure-mark\">FAILURE</span><br>".to_string()
    };
    let expected = match o.expected {
        Expect::Direct => format!(
            "<span class=\"r-direct\">{}</span>",
            esc(t.expect(o.expected))
        ),
        _ => esc(t.expect(o.expected)),
    };
    format!("<td>{expected}</td><td>{mark}{}</td>", got(&o.got))
}

fn unknown_clients(h: &mut String, r: &Report, t: &Text) {
    h.push_str(&format!(
        "<h3>{}</h3>\n<p>{}</p>\n",
        esc(t.unknown_clients),
        esc(t.unknown_intro)
    ));
    if r.evidence.clients.is_empty() {
        h.push_str(&format!("<p>{}</p>\n", esc(t.no_unknown)));
        return;
    }
    h.push_str(&format!(
        "<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        esc(t.client),
        esc(t.target),
        esc(t.expected),
        esc(t.got)
    ));
    for c in &r.evidence.clients {
        h.push_str(&format!(
            "<tr{}><td>{}</td><td>{}</td>{}</tr>\n",
            if c.outcome.ok() {
                ""
            } else {
                " class=\"failure\""
            },
            code(&c.client.to_string()),
            code(&c.target),
            outcome_cells(&c.outcome, t)
        ));
    }
    h.push_str("</tbody>\n</table>\n");
}

fn probe_table(h: &mut String, r: &Report, t: &Text) {
    let e = &r.evidence;
    let mut head2 = String::new();
    let mut head1 = format!(
        "<th rowspan=\"2\">#</th><th rowspan=\"2\">{}</th><th rowspan=\"2\">{}</th>",
        esc(t.probe),
        esc(t.kind_from)
    );
    for p in &e.profiles {
        head1.push_str(&format!("<th colspan=\"2\">{}</th>", code(p)));
        head2.push_str(&format!(
            "<th>{}</th><th>{}</th>",
            esc(t.expected),
            esc(t.got)
        ));
    }
    h.push_str(&format!(
        "<h3>{}</h3>\n<table class=\"probes\" id=\"probes\">\n{}<thead><tr>{head1}</tr><tr>{head2}</tr></thead>\n<tbody>\n",
        esc(t.probe_list),
        colgroup(e.profiles.len())
    ));
    let width = 3 + 2 * e.profiles.len();
    let mut group: Option<Option<&str>> = None;
    for (i, row) in e.rows.iter().enumerate() {
        let cat = row.probe.category.as_deref();
        if group != Some(cat) {
            group = Some(cat);
            let title = match cat {
                Some(c) => code(c),
                None => esc(t.kind(row.probe.kind)),
            };
            h.push_str(&format!(
                "<tr class=\"group\"><th colspan=\"{width}\">{title}</th></tr>\n"
            ));
        }
        probe_row(h, i + 1, row, t);
    }
    h.push_str("</tbody>\n</table>\n");
}

/// Column widths: the probe and its origin get room, each profile shares the rest.
fn colgroup(profiles: usize) -> String {
    let (probe, kind) = if profiles > 1 {
        (22.0, 14.0)
    } else {
        (30.0, 20.0)
    };
    let each = (100.0 - 3.0 - probe - kind) / profiles.max(1) as f64;
    let mut c = format!(
        "<colgroup><col style=\"width:3%\"><col style=\"width:{probe}%\"><col style=\"width:{kind}%\">"
    );
    for _ in 0..profiles {
        c.push_str(&format!(
            "<col style=\"width:{:.1}%\"><col style=\"width:{:.1}%\">",
            each * 0.4,
            each * 0.6
        ));
    }
    c.push_str("</colgroup>\n");
    c
}

fn probe_row(h: &mut String, n: usize, row: &ProbeRow, t: &Text) {
    let p = &row.probe;
    let mut probe = code(&p.target);
    match &row.normalised {
        Ok(norm) if *norm != p.target => probe.push_str(&format!(
            "<br><small>{}: {}</small>",
            esc(t.normalised),
            code(norm)
        )),
        Ok(_) => {}
        Err(e) => probe.push_str(&format!(
            "<br><small>{}: {}</small>",
            esc(t.invalid),
            esc(e)
        )),
    }
    let from = if p.from.is_empty() {
        String::new()
    } else {
        format!("<br><small>{}</small>", code(&p.from))
    };
    let failed = row.outcomes.iter().any(|o| !o.ok());
    let cells: String = row.outcomes.iter().map(|o| outcome_cells(o, t)).collect();
    h.push_str(&format!(
        "<tr{}><td class=\"num\">{n}</td><td>{probe}</td><td>{}{from}</td>{cells}</tr>\n",
        if failed { " class=\"failure\"" } else { "" },
        esc(t.kind(p.kind)),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_from_files() {
        assert_eq!(
            esc("<script>alert('x&y')</script>\""),
            "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;&quot;"
        );
        assert_eq!(link("javascript:alert(1)"), "<li>javascript:alert(1)</li>");
        assert_eq!(
            link("https://a.example/?q=<b>"),
            "<li><a href=\"https://a.example/?q=&lt;b&gt;\">https://a.example/?q=&lt;b&gt;</a></li>"
        );
    }
}
