//! The status page as HTML: one self-contained page, no external assets.

use super::*;

/// The whole page.
pub fn render(v: &StatusView) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let title = if v.host.is_empty() {
        "lbo-proxy status".to_string()
    } else {
        format!("{} — lbo-proxy status", v.host)
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut h, v);
    h.push_str("<main>\n");
    if !v.metrics {
        h.push_str(
            "<p class=\"notice\">The metrics registry could not be read: counters show as 0. \
             Parent states come from the running proxy.</p>\n",
        );
    }
    tiles(&mut h, v);
    parents(&mut h, v);
    routes(&mut h, v);
    h.push_str("<div class=\"grid\">\n");
    categories(&mut h, v);
    denies(&mut h, v);
    h.push_str("</div>\n<div class=\"grid\">\n");
    ends(&mut h, v);
    config(&mut h, v);
    h.push_str("</div>\n</main>\n");
    let _ = write!(
        h,
        "<footer>lbo-proxy {} · generated {} · refreshes every {REFRESH_SECS} s · \
         <code>/metrics</code> for Prometheus, <code>/readyz</code> for monitoring</footer>\n\
         </body>\n</html>\n",
        esc(&v.version),
        esc(&when(v.now)),
    );
    h
}

fn header(h: &mut String, v: &StatusView) {
    let host = if v.host.is_empty() {
        String::new()
    } else {
        format!("<span class=\"host\">{}</span>", esc(&v.host))
    };
    let uptime = match v.started {
        Some(s) => format!(
            "<dd id=\"uptime\" title=\"started {}\">{}</dd>",
            esc(&when(s)),
            esc(&duration(v.now - s))
        ),
        None => "<dd id=\"uptime\">unknown</dd>".to_string(),
    };
    let _ = write!(
        h,
        "<header class=\"top\">\n<h1>lbo-proxy status{host}</h1>\n<dl>\
         <div><dt>version</dt><dd id=\"version\">{}</dd></div>\
         <div><dt>config</dt><dd id=\"config-source\"><code>{}</code></dd></div>\
         <div><dt>uptime</dt>{uptime}</div>\
         <div><dt>now</dt><dd>{}</dd></div>\
         </dl>\n</header>\n",
        esc(&v.version),
        esc(&v.config_source),
        esc(&when(v.now)),
    );
}

/// The five figures an engineer looks at first.
fn tiles(h: &mut String, v: &StatusView) {
    let up = v.parents.iter().filter(|p| p.up).count();
    let parents_class = if v.parents.is_empty() {
        ""
    } else if up == v.parents.len() {
        "ok"
    } else if up == 0 {
        "fail"
    } else {
        "warn"
    };
    let (parents_value, parents_detail) = if v.parents.is_empty() {
        ("none".to_string(), "nothing goes upstream".to_string())
    } else {
        let down: Vec<&str> = v
            .parents
            .iter()
            .filter(|p| !p.up)
            .map(|p| p.name.as_str())
            .collect();
        let detail = if down.is_empty() {
            "all parents answer".to_string()
        } else {
            format!("down: {}", down.join(", "))
        };
        (format!("{up} / {} up", v.parents.len()), detail)
    };
    let route = |name: &str| v.routes.iter().find(|r| r.route == name);
    let active: u64 = v.routes.iter().map(|r| r.active_tunnels).sum();
    let requests: u64 = v.routes.iter().map(|r| r.requests).sum();
    let share = |name: &str| route(name).map_or(0, |r| r.requests);
    let denied: u64 = v.denies.iter().map(|d| d.1).sum();
    let top_deny = v.denies.first().map_or(String::new(), |(r, n)| {
        format!("most: {r} ({})", number(*n))
    });
    let (config_class, config_value) = match v.reload.last_ok {
        Some(true) => ("ok", "loaded"),
        Some(false) => ("fail", "reload failed"),
        None => ("", "unknown"),
    };
    let config_detail = match v.reload.last_success {
        Some(t) => format!("{} ago", duration(v.now - t)),
        None => String::new(),
    };
    let tiles = [
        (
            parents_class,
            "security cloud parents",
            parents_value,
            parents_detail,
        ),
        (
            "",
            "active tunnels",
            number(active),
            format!(
                "direct {} · upstream {}",
                number(route("direct").map_or(0, |r| r.active_tunnels)),
                number(route("upstream").map_or(0, |r| r.active_tunnels))
            ),
        ),
        (
            "",
            "requests",
            number(requests),
            format!(
                "direct {} · upstream {}",
                number(share("direct")),
                number(share("upstream"))
            ),
        ),
        ("", "denied", number(denied), top_deny),
        (
            config_class,
            "configuration",
            config_value.to_string(),
            config_detail,
        ),
    ];
    h.push_str("<div class=\"tiles\">\n");
    for (class, label, value, detail) in tiles {
        let _ = writeln!(
            h,
            "<div class=\"tile {class}\"><div class=\"label\">{}</div><div class=\"value\">{}</div>\
             <div class=\"detail\">{}</div></div>",
            esc(label),
            esc(&value),
            esc(&detail)
        );
    }
    h.push_str("</div>\n");
}

fn section_head(h: &mut String, id: &str, title: &str, ja: &str) {
    let _ = writeln!(
        h,
        "<section id=\"{id}\">\n<h2>{}<span class=\"ja\" lang=\"ja\">{}</span></h2>",
        esc(title),
        esc(ja)
    );
}

fn parents(h: &mut String, v: &StatusView) {
    section_head(
        h,
        "parents",
        "Security cloud parents",
        "上位プロキシ（セキュリティクラウド）",
    );
    if v.parents.is_empty() {
        h.push_str(
            "<p class=\"none\">No parent is configured: traffic that is not allowlisted is refused.</p>\n</section>\n",
        );
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th>#</th><th>parent</th><th>address</th><th>state</th>\
         <th>last check · last error</th>\
         <th class=\"num\">checks ok</th><th class=\"num\">checks failed</th>\
         <th class=\"num\">failovers</th><th class=\"num\">times marked down</th>\
         <th class=\"num\">standby ready</th></tr></thead>\n<tbody>\n",
    );
    for (i, p) in v.parents.iter().enumerate() {
        let (class, state) = if p.up { ("up", "UP") } else { ("down", "DOWN") };
        let since = match p.down_since {
            Some(t) if !p.up => format!(
                "<span class=\"detail\">down since {} ({}) by {}</span>",
                esc(&when(t)),
                esc(&duration(v.now - t)),
                esc(&p.down_by)
            ),
            _ => String::new(),
        };
        let standby = if p.standby_want == 0 {
            "<td class=\"num zero\">–</td>".to_string()
        } else {
            format!(
                "<td class=\"num\">{} / {}</td>",
                number(p.standby_ready),
                number(p.standby_want)
            )
        };
        let _ = writeln!(
            h,
            "<tr class=\"{class}\" data-parent=\"{name}\" data-state=\"{class}\"><td class=\"num\">{}</td>\
             <td><b>{name}</b></td><td><code>{}</code></td>\
             <td><span class=\"state {class}\">{state}</span>{since}</td><td>{}</td>{}{}{}{}{standby}</tr>",
            i + 1,
            esc(&p.address),
            last_check(v.now, p),
            num(p.checks_ok),
            num(p.checks_failed),
            num(p.failovers),
            num(p.downs),
            name = esc(&p.name),
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// "passed 4 s ago", or "failed 2 s ago: what failed", and the last connection error.
fn last_check(now: f64, p: &ParentRow) -> String {
    let mut out = match &p.last_check {
        None => "<span class=\"detail\">no check yet</span>".to_string(),
        Some((at, true, _)) => format!("passed {} ago", esc(&duration(now - at))),
        Some((at, false, error)) => format!(
            "<span class=\"state down\">failed</span> {} ago: {}",
            esc(&duration(now - at)),
            esc(error)
        ),
    };
    if !p.last_error.is_empty() {
        let _ = write!(
            out,
            "<span class=\"detail\">last connection error: {}</span>",
            esc(&p.last_error)
        );
    }
    out
}

fn route_label(route: &str) -> String {
    let sub = match route {
        "direct" => "local breakout · ローカルブレイクアウト",
        "upstream" => "via the security cloud · セキュリティクラウド経由",
        "deny" => "refused · 拒否",
        NONE => "ended before a decision · 判定前に終了",
        _ => "",
    };
    let class = match route {
        "direct" | "upstream" | "deny" => route,
        _ => "other",
    };
    format!(
        "<span class=\"route r-{class}\">{}</span><span class=\"sub\">{}</span>",
        esc(route),
        esc(sub)
    )
}

fn routes(h: &mut String, v: &StatusView) {
    section_head(
        h,
        "routes",
        "Tunnels and throughput by route",
        "経路別の通信量",
    );
    h.push_str(
        "<table>\n<thead><tr><th>route</th><th class=\"num\">active tunnels</th>\
         <th class=\"num\">requests</th><th class=\"num\">bytes up</th>\
         <th class=\"num\">bytes down</th></tr></thead>\n<tbody>\n",
    );
    let mut total = RouteRow::default();
    for r in &v.routes {
        let _ = writeln!(
            h,
            "<tr data-route=\"{}\" data-requests=\"{}\"><td>{}</td>{}{}{}{}</tr>",
            esc(&r.route),
            r.requests,
            route_label(&r.route),
            num(r.active_tunnels),
            num(r.requests),
            bytes(r.bytes_up),
            bytes(r.bytes_down),
        );
        total.active_tunnels += r.active_tunnels;
        total.requests += r.requests;
        total.bytes_up += r.bytes_up;
        total.bytes_down += r.bytes_down;
    }
    let _ = writeln!(
        h,
        "<tr class=\"total\"><td>total</td>{}{}{}{}</tr>",
        num(total.active_tunnels),
        num(total.requests),
        bytes(total.bytes_up),
        bytes(total.bytes_down),
    );
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn categories(h: &mut String, v: &StatusView) {
    section_head(h, "categories", "By category", "カテゴリ別");
    if v.categories.is_empty() {
        h.push_str("<p class=\"none\">No traffic yet.</p>\n</section>\n");
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th>category</th><th class=\"num\">requests</th>\
         <th class=\"num\">bytes up</th><th class=\"num\">bytes down</th></tr></thead>\n<tbody>\n",
    );
    for c in &v.categories {
        let name = if c.category.is_empty() {
            "<span class=\"sub\">(no category: not allowlisted)</span>".to_string()
        } else {
            format!("<code>{}</code>", esc(&c.category))
        };
        let _ = writeln!(
            h,
            "<tr><td>{name}</td>{}{}{}</tr>",
            num(c.requests),
            bytes(c.bytes_up),
            bytes(c.bytes_down)
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn denies(h: &mut String, v: &StatusView) {
    section_head(h, "denies", "Denied, by reason", "拒否の理由");
    if v.denies.is_empty() {
        h.push_str("<p class=\"none\">Nothing refused yet.</p>\n</section>\n");
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th>reason</th><th class=\"num\">requests</th></tr></thead>\n<tbody>\n",
    );
    for (reason, n) in &v.denies {
        let _ = writeln!(
            h,
            "<tr data-deny=\"{r}\"><td><code>{r}</code></td>{}</tr>",
            num(*n),
            r = esc(reason)
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn ends(h: &mut String, v: &StatusView) {
    section_head(h, "ends", "How requests and tunnels ended", "終了理由");
    if v.ends.is_empty() {
        h.push_str("<p class=\"none\">Nothing has ended yet.</p>\n</section>\n");
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th>reason</th><th>blame</th><th class=\"num\">count</th></tr></thead>\n<tbody>\n",
    );
    for e in &v.ends {
        let blame = if e.blame.is_empty() {
            "<span class=\"sub\">—</span>".to_string()
        } else {
            let class = match e.blame.as_str() {
                "client" | "next_hop" | "proxy" => e.blame.as_str(),
                _ => "other",
            };
            format!(
                "<span class=\"blame {class}\">{}</span>",
                esc(&e.blame.replace('_', " "))
            )
        };
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{blame}</td>{}</tr>",
            esc(&e.reason),
            num(e.count)
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn config(h: &mut String, v: &StatusView) {
    section_head(
        h,
        "config",
        "Configuration and allowlists",
        "設定と許可リスト",
    );
    let r = &v.reload;
    let result = match r.last_ok {
        Some(true) => "<span class=\"result ok\">success</span>",
        Some(false) => {
            "<span class=\"result fail\">FAILED: the previous configuration is still in use</span>"
        }
        None => "<span class=\"sub\">unknown</span>",
    };
    let last = match r.last_success {
        Some(t) => format!("{} ({} ago)", esc(&when(t)), esc(&duration(v.now - t))),
        None => "never".to_string(),
    };
    let _ = writeln!(
        h,
        "<table>\n<tbody>\n<tr><th>last result</th><td id=\"reload-result\">{result}</td></tr>\n\
         <tr><th>last successful load</th><td>{last}</td></tr>\n\
         <tr><th>reloads</th><td>{} succeeded, {} failed</td></tr>\n</tbody>\n</table>",
        number(r.succeeded),
        number(r.failed),
    );
    if v.allowlists.is_empty() {
        h.push_str("<p class=\"none\">No allowlist entries reported.</p>\n</section>\n");
        return;
    }
    let mut kinds: Vec<&str> = Vec::new();
    for a in &v.allowlists {
        for (k, _) in &a.entries {
            if !kinds.contains(&k.as_str()) {
                kinds.push(k);
            }
        }
    }
    kinds.sort_unstable();
    h.push_str("<table>\n<thead><tr><th>allowlist category</th>");
    for k in &kinds {
        let title = match *k {
            "domain" => "domain patterns",
            "network" => "IP networks",
            other => other,
        };
        let _ = write!(h, "<th class=\"num\">{}</th>", esc(title));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for a in &v.allowlists {
        let _ = write!(h, "<tr><td><code>{}</code></td>", esc(&a.category));
        for k in &kinds {
            let n = a
                .entries
                .iter()
                .filter(|(kind, _)| kind == k)
                .map(|e| e.1)
                .sum();
            h.push_str(&num(n));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// A right-aligned count cell.
fn num(n: u64) -> String {
    let zero = if n == 0 { " zero" } else { "" };
    format!("<td class=\"num{zero}\">{}</td>", number(n))
}

/// A right-aligned byte cell: binary units, the exact count in the tooltip.
fn bytes(n: u64) -> String {
    let zero = if n == 0 { " zero" } else { "" };
    format!(
        "<td class=\"num{zero}\" title=\"{} bytes\">{}</td>",
        number(n),
        human_bytes(n)
    )
}

/// `1234567` → `1,234,567`.
pub fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.2} {}", UNITS[unit])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// `3 d 4 h 5 min`, `4 h 5 min`, `5 min 6 s`, `6 s`.
pub fn duration(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d} d {h} h {m} min")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// `2026-11-23 12:00:00 UTC`.
fn when(unix_secs: f64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(unix_secs.max(0.0) as u64);
    let iso = crate::outcome::rfc3339(t);
    format!("{} {} UTC", &iso[..10], &iso[11..19])
}
