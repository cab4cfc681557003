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
    let parents = parents::rows(ctx, &m);
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

const CSS: &str = include_str!("style.css");

mod parents;
mod render;

pub use parents::ParentRow;

pub use render::{duration, human_bytes, number, render};

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
                    last_check: Some((1_795_435_200.0 - 4.0, true, String::new())),
                    standby_ready: 7,
                    standby_want: 8,
                    ..ParentRow::default()
                },
                ParentRow {
                    name: "<script>alert(1)</script>".into(),
                    address: "a\"b&c".into(),
                    up: false,
                    checks_ok: 3,
                    checks_failed: 40,
                    failovers: 2,
                    downs: 1,
                    down_since: Some(1_795_435_200.0 - 125.0),
                    down_by: "its health checks".into(),
                    last_check: Some((
                        1_795_435_200.0 - 2.0,
                        false,
                        "it did not answer CONNECT probe.example:443 within 3 s".into(),
                    )),
                    last_error: "TCP connect to 192.0.2.1:8080 <refused>".into(),
                    ..ParentRow::default()
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
            "down since 2026-11-23 11:57:55 UTC (2 min 5 s) by its health checks",
            "it did not answer CONNECT probe.example:443 within 3 s",
            "TCP connect to 192.0.2.1:8080 &lt;refused&gt;",
            "<td class=\"num\">7 / 8</td>",
            "passed 4 s ago",
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
