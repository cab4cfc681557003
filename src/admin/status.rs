//! `GET /` on the admin listener: one self-contained HTML page (inline CSS, no script, no
//! external asset) that tells a network engineer at a glance whether the security cloud is
//! reachable, what breaks out, what is refused and whether the last reload took.
//!
//! Two steps, so the page can be tested without a running proxy: [`view`] reads the
//! context and the metrics registry into a plain [`StatusView`], and [`render`] turns a
//! view into HTML. Everything that comes from the config or a metric label is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::audit::html::esc;
use crate::server::Context;

/// Seconds between automatic reloads of the page.
pub const REFRESH_SECS: u32 = 10;

/// The routes every page lists, in this order, even before they carry traffic.
pub const ROUTES: [&str; 3] = ["direct", "upstream", "deny"];

/// Everything the page shows; built by [`view`], or by hand in tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusView {
    pub version: String,
    /// The appliance's host name (empty when unknown).
    pub host: String,
    /// Where the running configuration came from.
    pub config_source: String,
    /// When the page was made, in seconds since the Unix epoch.
    pub now: f64,
    /// When the process started, in seconds since the Unix epoch.
    pub started: Option<f64>,
    /// False when the metrics registry could not be read: counters then show as zero.
    pub metrics: bool,
    pub parents: Vec<ParentRow>,
    pub routes: Vec<RouteRow>,
    pub categories: Vec<CategoryRow>,
    /// Refusals by reason, most frequent first.
    pub denies: Vec<(String, u64)>,
    /// How requests and tunnels ended, most frequent first.
    pub ends: Vec<EndRow>,
    pub reload: ReloadView,
    pub allowlists: Vec<AllowlistRow>,
}

/// One security cloud parent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParentRow {
    pub name: String,
    pub address: String,
    pub up: bool,
    pub checks_ok: u64,
    pub checks_failed: u64,
    /// Times traffic moved on from this parent to the next one.
    pub failovers: u64,
    /// Times this parent was marked down.
    pub downs: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteRow {
    pub route: String,
    pub active_tunnels: u64,
    pub requests: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CategoryRow {
    /// Empty for traffic no category matched.
    pub category: String,
    pub requests: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndRow {
    pub reason: String,
    /// Empty when nobody is to blame.
    pub blame: String,
    pub count: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReloadView {
    /// When the configuration was last loaded successfully (seconds since the epoch).
    pub last_success: Option<f64>,
    /// Whether the last attempt succeeded; `None` when unknown.
    pub last_ok: Option<bool>,
    pub succeeded: u64,
    pub failed: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllowlistRow {
    pub category: String,
    /// Entries by kind (domains, networks…).
    pub entries: Vec<(String, u64)>,
}

/// One sample of the metrics registry, flattened.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The response for `GET /`.
pub fn response(ctx: &Context) -> Response<Full<Bytes>> {
    let mut resp = super::text(
        StatusCode::OK,
        render(&view(ctx)),
        "text/html; charset=utf-8",
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Reads the context and the process-wide metrics registry.
pub fn view(ctx: &Context) -> StatusView {
    let families = crate::telemetry::metrics().registry().gather();
    view_from(ctx, &flatten(&families), !families.is_empty())
}

/// The counters and gauges of gathered families, one [`Sample`] per series (histograms
/// are not shown on the page).
pub fn flatten(families: &[prometheus::proto::MetricFamily]) -> Vec<Sample> {
    use prometheus::proto::MetricType;
    let mut out = Vec::new();
    for family in families {
        for m in family.get_metric() {
            let value = match family.get_field_type() {
                MetricType::COUNTER => m.get_counter().get_value(),
                MetricType::GAUGE => m.get_gauge().get_value(),
                _ => continue,
            };
            out.push(Sample {
                name: family.name().to_string(),
                labels: m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect(),
                value,
            });
        }
    }
    out
}

/// Builds the view from the context (parents, config) and gathered samples.
pub fn view_from(ctx: &Context, samples: &[Sample], metrics: bool) -> StatusView {
    let m = Samples(samples);
    let parents = ctx
        .parents
        .parents()
        .iter()
        .map(|p| {
            let name = p.config.name.to_string();
            let checks = m.by("lbo_parent_checks_total", "result", &[("parent", &name)]);
            let (ok, failed) = checks.iter().fold((0, 0), |(ok, failed), (result, n)| {
                if matches!(result.as_str(), "success" | "ok" | "up") {
                    (ok + count(*n), failed)
                } else {
                    (ok, failed + count(*n))
                }
            });
            ParentRow {
                address: p.config.address.clone(),
                up: p.is_up(),
                checks_ok: ok,
                checks_failed: failed,
                failovers: count(m.sum("lbo_parent_failovers_total", &[("parent", &name)])),
                downs: p.downs.load(std::sync::atomic::Ordering::Relaxed),
                name,
            }
        })
        .collect();
    let now = unix(SystemTime::now());
    let started = m
        .first("process_start_time_seconds")
        .filter(|s| *s > 0.0)
        .or_else(process_started);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    StatusView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        host,
        config_source: ctx.config.source.display().to_string(),
        now,
        started,
        metrics,
        parents,
        ..traffic(&m)
    }
}

/// The parts of the view that come from the metrics alone.
fn traffic(m: &Samples) -> StatusView {
    let requests = m.by("lbo_requests_total", "route", &[]);
    let active = m.by("lbo_active_tunnels", "route", &[]);
    let up = m.by("lbo_bytes_total", "route", &[("direction", "up")]);
    let down = m.by("lbo_bytes_total", "route", &[("direction", "down")]);
    let mut names: Vec<String> = ROUTES.iter().map(|r| r.to_string()).collect();
    for r in requests.keys().chain(active.keys()).chain(up.keys()) {
        if !r.is_empty() && !names.contains(r) {
            names.push(r.clone());
        }
    }
    let get = |map: &BTreeMap<String, f64>, k: &str| map.get(k).copied().map_or(0, count);
    let routes = names
        .into_iter()
        .map(|r| RouteRow {
            active_tunnels: get(&active, &r),
            requests: get(&requests, &r),
            bytes_up: get(&up, &r),
            bytes_down: get(&down, &r),
            route: r,
        })
        .collect();

    let cat_requests = absent_as_empty(m.by("lbo_requests_total", "category", &[]));
    let cat_up = absent_as_empty(m.by("lbo_bytes_total", "category", &[("direction", "up")]));
    let cat_down = absent_as_empty(m.by("lbo_bytes_total", "category", &[("direction", "down")]));
    let mut cats: Vec<String> = cat_requests.keys().cloned().collect();
    for c in cat_up.keys().chain(cat_down.keys()) {
        if !cats.contains(c) {
            cats.push(c.clone());
        }
    }
    let mut categories: Vec<CategoryRow> = cats
        .into_iter()
        .map(|c| CategoryRow {
            requests: get(&cat_requests, &c),
            bytes_up: get(&cat_up, &c),
            bytes_down: get(&cat_down, &c),
            category: c,
        })
        .collect();
    categories.sort_by(|a, b| {
        (b.requests, b.bytes_down)
            .cmp(&(a.requests, a.bytes_down))
            .then_with(|| a.category.cmp(&b.category))
    });

    let mut denies: Vec<(String, u64)> = m
        .by("lbo_denied_total", "reason", &[])
        .into_iter()
        .map(|(r, n)| (r, count(n)))
        .collect();
    denies.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    let mut ends: Vec<EndRow> = m
        .by2("lbo_request_end_total", "reason", "blame")
        .into_iter()
        .map(|((reason, blame), n)| EndRow {
            blame: if blame == NONE { String::new() } else { blame },
            reason,
            count: count(n),
        })
        .collect();
    ends.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.reason, &a.blame).cmp(&(&b.reason, &b.blame)))
    });

    let reloads = m.by("lbo_config_reloads_total", "result", &[]);
    let (mut succeeded, mut failed) = (0, 0);
    for (result, n) in &reloads {
        if matches!(result.as_str(), "success" | "ok") {
            succeeded += count(*n);
        } else {
            failed += count(*n);
        }
    }
    let reload = ReloadView {
        last_success: m
            .first("lbo_config_last_reload_success_timestamp_seconds")
            .filter(|t| *t > 0.0),
        last_ok: m
            .first("lbo_config_last_reload_successful")
            .map(|v| v > 0.5),
        succeeded,
        failed,
    };

    let mut allowlists: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for ((category, kind), n) in m.by2("lbo_allowlist_entries", "category", "kind") {
        allowlists
            .entry(category)
            .or_default()
            .push((kind, count(n)));
    }
    StatusView {
        routes,
        categories,
        denies,
        ends,
        reload,
        allowlists: allowlists
            .into_iter()
            .map(|(category, entries)| AllowlistRow { category, entries })
            .collect(),
        ..StatusView::default()
    }
}

/// The telemetry's label value for "no such thing" (no category, nobody to blame…).
const NONE: &str = "none";

/// Merges the `none` label value into the empty one.
fn absent_as_empty(mut map: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    if let Some(n) = map.remove(NONE) {
        *map.entry(String::new()).or_insert(0.0) += n;
    }
    map
}

/// Lookups over flattened samples.
struct Samples<'a>(&'a [Sample]);

impl Samples<'_> {
    fn matching<'s>(
        &'s self,
        name: &'s str,
        want: &'s [(&'s str, &'s str)],
    ) -> impl Iterator<Item = &'s Sample> + 's {
        self.0.iter().filter(move |s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.label(k).is_some_and(|have| have == *v))
        })
    }

    fn first(&self, name: &str) -> Option<f64> {
        self.matching(name, &[]).next().map(|s| s.value)
    }

    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.matching(name, want).map(|s| s.value).sum()
    }

    /// Sums over every label but `label`.
    fn by(&self, name: &str, label: &str, want: &[(&str, &str)]) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.matching(name, want) {
            *out.entry(s.label(label).unwrap_or("").to_string())
                .or_insert(0.0) += s.value;
        }
        out
    }

    fn by2(&self, name: &str, a: &str, b: &str) -> BTreeMap<(String, String), f64> {
        let mut out = BTreeMap::new();
        for s in self.matching(name, &[]) {
            let key = (
                s.label(a).unwrap_or("").to_string(),
                s.label(b).unwrap_or("").to_string(),
            );
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// When this process started, from `/proc` (boot time plus the start in clock ticks; the
/// kernel reports those in USER_HZ, 100 on every architecture the appliance runs on).
fn process_started() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces; the
    // start time is field 22, the 20th after the name.
    let ticks: f64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + ticks / 100.0)
}

const CSS: &str = r#"
:root { --ink: #1b1f24; --muted: #5b6470; --line: #c9d0d8; --head: #e9eef4; --accent: #1f3a5f;
  --ok: #1e7b34; --okbg: #e6f4ea; --fail: #b00020; --failbg: #fde7ea; --warn: #9a5b00; --warnbg: #fff4df; }
* { box-sizing: border-box; }
body { font-family: "Segoe UI", "Helvetica Neue", Arial, "Noto Sans", "DejaVu Sans", Meiryo, "Yu Gothic UI",
  "Hiragino Sans", "Noto Sans CJK JP", "IPAPGothic", sans-serif; color: var(--ink);
  font-size: 13px; line-height: 1.45; margin: 0; background: #f4f6f9; }
header.top { background: var(--accent); color: #fff; padding: 10px 24px 12px; }
header.top h1 { font-size: 20px; margin: 0; font-weight: 600; letter-spacing: .02em; }
header.top h1 .host { font-weight: 400; opacity: .85; margin-left: 10px; }
header.top dl { display: flex; flex-wrap: wrap; gap: 4px 28px; margin: 6px 0 0; font-size: 12.5px; }
header.top dt { display: inline; opacity: .75; margin-right: 6px; }
header.top dd { display: inline; margin: 0; font-weight: 600; }
header.top code { font-size: 12px; color: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 14px 20px 8px; }
.tiles { display: grid; grid-template-columns: repeat(5, 1fr); gap: 10px; margin-bottom: 14px; }
.tile { background: #fff; border: 1px solid var(--line); border-left: 5px solid var(--accent);
  padding: 6px 12px 8px; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 22px; font-weight: 700; font-variant-numeric: tabular-nums; white-space: nowrap; }
.tile .detail { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.tile.ok { border-left-color: var(--ok); } .tile.ok .value { color: var(--ok); }
.tile.warn { border-left-color: var(--warn); background: var(--warnbg); } .tile.warn .value { color: var(--warn); }
.tile.fail { border-left-color: var(--fail); background: var(--failbg); } .tile.fail .value { color: var(--fail); }
section { background: #fff; border: 1px solid var(--line); margin: 0 0 14px; padding: 8px 14px 4px; }
h2 { font-size: 15px; color: var(--accent); margin: 0 0 6px; display: flex; align-items: baseline; gap: 10px; }
h2 .ja { font-size: 12px; color: var(--muted); font-weight: 400; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 14px; }
table { border-collapse: collapse; width: 100%; margin: 0 0 10px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; white-space: nowrap; }
thead th { background: var(--head); font-weight: 600; font-size: 12px; }
tbody tr:nth-child(even) td { background: #f8fafc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num.zero { color: #9aa3ad; }
code { font-family: "DejaVu Sans Mono", "Cascadia Mono", Consolas, Menlo, monospace; font-size: 12px; }
.state { display: inline-block; min-width: 52px; text-align: center; font-weight: 700; font-size: 12px;
  padding: 1px 8px; border-radius: 3px; color: #fff; }
.state.up { background: var(--ok); }
.state.down { background: var(--fail); }
tbody tr.down td { background: var(--failbg); }
tbody tr.total td { background: var(--head); font-weight: 600; }
.route { font-weight: 600; }
.r-direct { color: var(--ok); } .r-upstream { color: #1d4f91; } .r-deny { color: var(--fail); }
.sub { color: var(--muted); font-weight: 400; font-size: 11.5px; margin-left: 6px; }
.none { color: var(--muted); font-style: italic; margin: 2px 0 10px; }
.notice { border-left: 4px solid var(--warn); background: var(--warnbg); padding: 6px 10px; margin: 0 0 14px; }
.result.ok { color: var(--ok); font-weight: 700; } .result.fail { color: var(--fail); font-weight: 700; }
.blame { font-size: 11.5px; padding: 0 6px; border-radius: 3px; background: #eef1f4; color: var(--muted); }
.blame.client { background: #fff4df; color: var(--warn); }
.blame.next_hop { background: var(--failbg); color: var(--fail); }
.blame.proxy { background: #f1e6fb; color: #6a2a9a; }
footer { max-width: 1240px; margin: 0 auto; padding: 0 20px 16px; color: var(--muted); font-size: 11.5px; }
"#;

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
         <th class=\"num\">checks ok</th><th class=\"num\">checks failed</th>\
         <th class=\"num\">failovers</th><th class=\"num\">times marked down</th></tr></thead>\n<tbody>\n",
    );
    for (i, p) in v.parents.iter().enumerate() {
        let (class, state) = if p.up { ("up", "UP") } else { ("down", "DOWN") };
        let _ = writeln!(
            h,
            "<tr class=\"{class}\" data-parent=\"{name}\" data-state=\"{class}\"><td class=\"num\">{}</td>\
             <td><b>{name}</b></td><td><code>{}</code></td>\
             <td><span class=\"state {class}\">{state}</span></td>{}{}{}{}</tr>",
            i + 1,
            esc(&p.address),
            num(p.checks_ok),
            num(p.checks_failed),
            num(p.failovers),
            num(p.downs),
            name = esc(&p.name),
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    fn hand_made() -> StatusView {
        StatusView {
            version: "9.8.7".into(),
            host: "lbo1".into(),
            config_source: "/etc/lbo-proxy/lbo-proxy.toml".into(),
            now: 1_795_435_200.0,
            started: Some(1_795_435_200.0 - 93_784.0),
            metrics: true,
            parents: vec![
                ParentRow {
                    name: "seccloud-a".into(),
                    address: "proxy1.pref.example:8080".into(),
                    up: true,
                    checks_ok: 120,
                    checks_failed: 1,
                    failovers: 0,
                    downs: 0,
                },
                ParentRow {
                    name: "<script>alert(1)</script>".into(),
                    address: "a\"b&c".into(),
                    up: false,
                    checks_ok: 3,
                    checks_failed: 40,
                    failovers: 2,
                    downs: 1,
                },
            ],
            routes: vec![
                RouteRow {
                    route: "direct".into(),
                    active_tunnels: 12,
                    requests: 1_234_567,
                    bytes_up: 2048,
                    bytes_down: 5 * 1024 * 1024,
                },
                RouteRow {
                    route: "upstream".into(),
                    ..RouteRow::default()
                },
            ],
            categories: vec![CategoryRow {
                category: "m365-auth<".into(),
                requests: 7,
                bytes_up: 1,
                bytes_down: 2,
            }],
            denies: vec![("deny_rule".into(), 4)],
            ends: vec![EndRow {
                reason: "connect_failed".into(),
                blame: "next_hop".into(),
                count: 3,
            }],
            reload: ReloadView {
                last_success: Some(1_795_435_200.0 - 300.0),
                last_ok: Some(false),
                succeeded: 2,
                failed: 1,
            },
            allowlists: vec![AllowlistRow {
                category: "teams".into(),
                entries: vec![("domains".into(), 14), ("networks".into(), 6)],
            }],
        }
    }

    #[test]
    fn renders_a_hand_made_view() {
        let page = render(&hand_made());
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        for fact in [
            "9.8.7",
            "lbo1",
            "/etc/lbo-proxy/lbo-proxy.toml",
            "1 d 2 h 3 min",
            "2026-11-23 12:00:00 UTC",
            "seccloud-a",
            "proxy1.pref.example:8080",
            "<span class=\"state up\">UP</span>",
            "<span class=\"state down\">DOWN</span>",
            "1 / 2 up",
            "1,234,567",
            "5.00 MiB",
            "2.00 KiB",
            "data-route=\"direct\" data-requests=\"1234567\"",
            "data-route=\"upstream\" data-requests=\"0\"",
            "deny_rule",
            "connect_failed",
            "next hop",
            "reload failed",
            "5 min 0 s ago",
            "2 succeeded, 1 failed",
            "上位プロキシ",
        ] {
            assert!(page.contains(fact), "{fact:?} missing");
        }
        // The allowlist table has one column per kind.
        assert!(page.contains("<th class=\"num\">domains</th><th class=\"num\">networks</th>"));
        assert!(page.contains("<td class=\"num\">14</td><td class=\"num\">6</td>"));
    }

    #[test]
    fn escapes_everything_from_config_and_labels() {
        let page = render(&hand_made());
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("a&quot;b&amp;c"));
        assert!(page.contains("m365-auth&lt;"));
        assert!(!page.contains("<link") && !page.contains("src="));
    }

    #[test]
    fn empty_view_still_renders_every_section() {
        let page = render(&StatusView::default());
        for id in [
            "parents",
            "routes",
            "categories",
            "denies",
            "ends",
            "config",
        ] {
            assert!(page.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(page.contains("could not be read"));
        assert!(page.contains("No parent is configured"));
    }

    #[test]
    fn traffic_sums_over_labels() {
        let samples = vec![
            sample(
                "lbo_requests_total",
                &[
                    ("route", "direct"),
                    ("category", "teams"),
                    ("listener", "a"),
                ],
                3.0,
            ),
            sample(
                "lbo_requests_total",
                &[
                    ("route", "direct"),
                    ("category", "teams"),
                    ("listener", "b"),
                ],
                2.0,
            ),
            sample(
                "lbo_requests_total",
                &[("route", "upstream"), ("category", "")],
                4.0,
            ),
            sample(
                "lbo_bytes_total",
                &[
                    ("route", "direct"),
                    ("category", "teams"),
                    ("direction", "up"),
                ],
                10.0,
            ),
            sample(
                "lbo_bytes_total",
                &[
                    ("route", "direct"),
                    ("category", "teams"),
                    ("direction", "down"),
                ],
                90.0,
            ),
            sample("lbo_active_tunnels", &[("route", "direct")], 1.0),
            sample("lbo_denied_total", &[("reason", "deny_rule")], 2.0),
            sample("lbo_denied_total", &[("reason", "unknown_client")], 5.0),
            sample(
                "lbo_request_end_total",
                &[("reason", "finished"), ("blame", "none")],
                9.0,
            ),
            sample("lbo_config_reloads_total", &[("result", "success")], 2.0),
            sample("lbo_config_reloads_total", &[("result", "failure")], 1.0),
            sample("lbo_config_last_reload_successful", &[], 1.0),
            sample(
                "lbo_allowlist_entries",
                &[("category", "teams"), ("kind", "domains")],
                14.0,
            ),
        ];
        let v = traffic(&Samples(&samples));
        let names: Vec<&str> = v.routes.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(names, ["direct", "upstream", "deny"]);
        assert_eq!(
            v.routes[0],
            RouteRow {
                route: "direct".into(),
                active_tunnels: 1,
                requests: 5,
                bytes_up: 10,
                bytes_down: 90,
            }
        );
        assert_eq!(v.routes[1].requests, 4);
        assert_eq!(v.categories[0].category, "teams");
        assert_eq!(v.categories[0].requests, 5);
        assert_eq!(v.categories[1].category, "");
        assert_eq!(
            v.denies,
            [
                ("unknown_client".to_string(), 5),
                ("deny_rule".to_string(), 2)
            ]
        );
        assert_eq!(v.ends[0].blame, "");
        assert_eq!((v.reload.succeeded, v.reload.failed), (2, 1));
        assert_eq!(v.reload.last_ok, Some(true));
        assert_eq!(v.allowlists[0].entries, [("domains".to_string(), 14)]);
    }

    #[test]
    fn formats_numbers_sizes_and_durations() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1000), "1,000");
        assert_eq!(number(1_234_567), "1,234,567");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(200 * 1024 * 1024), "200 MiB");
        assert_eq!(duration(59.9), "59 s");
        assert_eq!(duration(3661.0), "1 h 1 min");
        assert_eq!(duration(-5.0), "0 s");
    }

    #[test]
    fn reads_the_process_start_time() {
        let started = process_started().expect("/proc is readable on Linux");
        let now = unix(SystemTime::now());
        assert!(started <= now + 1.0 && started > now - 86_400.0 * 365.0);
    }
}
