//! The metric definitions and the events that update them. The names and labels are a
//! contract: the Grafana dashboard and alert rules in `dashboards/`, the status page and
//! the README table all use them.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::SystemTime;

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry, TextEncoder};

use super::families::Families;
use super::labels::{self, NONE};
use crate::config::Config;
use crate::outcome::{Blame, Outcome};
use crate::policy::Route;

/// The content type of [`Metrics::encode`]'s output.
pub use prometheus::TEXT_FORMAT;

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics, created on first use and kept across config reloads.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

pub struct Metrics {
    registry: Registry,
    /// `None` only if the library refused a definition below, a bug the unit tests catch:
    /// the proxy then runs without metrics rather than not at all.
    families: Option<Families>,
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        match Families::register(&registry) {
            Ok(families) => Metrics {
                registry,
                families: Some(families),
            },
            Err(e) => {
                tracing::error!(error = %e, "metrics are off: a definition was refused");
                Metrics {
                    registry: Registry::new(),
                    families: None,
                }
            }
        }
    }

    /// The registry, for readers such as the status page (`registry().gather()`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in the Prometheus text exposition format ([`TEXT_FORMAT`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding the metrics");
        }
        out
    }

    /// One finished request or tunnel: the only place traffic counters move.
    pub fn record(&self, o: &Outcome) {
        let Some(f) = &self.families else { return };
        let route = labels::route(o.route);
        let category = labels::name(&o.category);
        let listener = if o.listener.is_empty() {
            NONE
        } else {
            o.listener
        };
        let request = [
            listener,
            route,
            category,
            labels::name(&o.profile),
            labels::name(&o.segment),
            labels::status_class(o.status),
        ];
        if let Some(c) = series(&f.requests, &request) {
            c.inc();
        }
        let blame = o.blame.map_or(NONE, Blame::as_str);
        if let Some(c) = series(&f.request_end, &[route, o.reason.as_str(), blame]) {
            c.inc();
        }
        if let Some(reason) = labels::denied(o) {
            if let Some(c) = series(&f.denied, &[reason]) {
                c.inc();
            }
        }
        if let Some(limit) = labels::limit(o) {
            if let Some(c) = series(&f.limit_hits, &[limit]) {
                c.inc();
            }
        }
        for (direction, n) in [("up", o.bytes_up), ("down", o.bytes_down)] {
            if n > 0 {
                if let Some(c) = series(&f.bytes, &[direction, route, category]) {
                    c.inc_by(n);
                }
            }
        }
        if let Some(ms) = o.connect_ms {
            if let Some(h) = series(&f.connect_duration, &[route]) {
                h.observe(ms / 1000.0);
            }
        }
        if let Some(ms) = o.dns_ms {
            f.dns_duration.observe(ms / 1000.0);
        }
        if let Some(h) = series(&f.request_duration, &[route]) {
            h.observe(o.duration_ms / 1000.0);
        }
        if let Some(t) = &o.tenant_restrictions {
            let labels = [t.outcome.as_str(), t.reason.as_str()];
            if let Some(c) = series(&f.tenant_restrictions, &labels) {
                c.inc();
            }
        }
    }

    pub fn tunnel_opened(&self, route: Route) {
        if let Some(g) = self.gauge(|f| &f.active_tunnels, &[route.as_str()]) {
            g.inc();
        }
    }

    pub fn tunnel_closed(&self, route: Route) {
        if let Some(g) = self.gauge(|f| &f.active_tunnels, &[route.as_str()]) {
            g.dec();
        }
    }

    /// A parent of a newly built pool: its series start at zero so a dashboard shows a
    /// quiet parent rather than none. `lbo_parent_up` starts at 1 (a new parent is presumed
    /// up) only when it is not reported yet: after a reload the new pool inherits the old
    /// one's health, and its first health check, which runs at once, publishes it.
    pub fn parent_configured(&self, parent: &str) {
        let Some(f) = &self.families else { return };
        for result in ["success", "failure"] {
            let _ = series(&f.parent_checks, &[parent, result]);
        }
        let _ = series(&f.parent_failovers, &[parent]);
        let _ = series(&f.parent_downs, &[parent]);
        if !has_label(&f.parent_up, "parent", parent) {
            if let Some(g) = series(&f.parent_up, &[parent]) {
                g.set(1);
            }
        }
    }

    /// One active health check of a parent.
    pub fn parent_checked(&self, parent: &str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        if let Some(c) = self.counter(|f| &f.parent_checks, &[parent, result]) {
            c.inc();
        }
    }

    /// A parent changed state (fall or rise threshold reached); going down is counted.
    pub fn parent_state(&self, parent: &str, up: bool) {
        self.parent_up(parent, up);
        self.parent_state_changed(parent);
        if !up {
            if let Some(c) = self.counter(|f| &f.parent_downs, &[parent]) {
                c.inc();
            }
        }
    }

    /// Publishes a parent's current health without counting a transition.
    pub fn parent_up(&self, parent: &str, up: bool) {
        if let Some(g) = self.gauge(|f| &f.parent_up, &[parent]) {
            g.set(i64::from(up));
        }
    }

    /// A request passed over this parent and went on to the next one (or ran out).
    pub fn parent_failover(&self, parent: &str) {
        if let Some(c) = self.counter(|f| &f.parent_failovers, &[parent]) {
            c.inc();
        }
    }

    /// A reload attempt; on failure the previous configuration stays in force.
    pub fn reload(&self, ok: bool) {
        let Some(f) = &self.families else { return };
        let result = if ok { "success" } else { "failure" };
        if let Some(c) = series(&f.reloads, &[result]) {
            c.inc();
        }
        f.last_reload_successful.set(i64::from(ok));
        if ok {
            f.last_reload_success.set(unix_now());
        }
    }

    /// The configuration now in force (at start and after each successful reload): the
    /// allowlist sizes, and the load time. Series of categories and parents no longer
    /// configured are removed.
    pub fn config_loaded(&self, config: &Config) {
        let Some(f) = &self.families else { return };
        let mut categories = Vec::with_capacity(config.categories.len());
        for c in &config.categories {
            let name = &*c.category.name;
            categories.push(name);
            let counts = [
                ("domain", c.category.domain_count()),
                ("network", c.category.network_count()),
            ];
            for (kind, n) in counts {
                if let Some(g) = series(&f.allowlist_entries, &[name, kind]) {
                    g.set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        retain(&f.allowlist_entries, "category", &categories);
        let parents: Vec<&str> = config.upstream.parents.iter().map(|p| &*p.name).collect();
        retain(&f.parent_up, "parent", &parents);
        f.last_reload_successful.set(1);
        f.last_reload_success.set(unix_now());
    }

    /// A failed accept (`kind` from [`labels::ACCEPT_ERRORS`]): not a connection, so
    /// no record.
    pub fn accept_error(&self, kind: &'static str) {
        if let Some(c) = self.counter(|f| &f.accept_errors, &[kind]) {
            c.inc();
        }
    }

    /// Access-log records that did not fit the writer's queue.
    pub fn access_log_dropped(&self, n: u64) {
        if let Some(f) = &self.families {
            f.access_log_dropped.inc_by(n);
        }
    }

    /// Records waiting for the access-log writer now.
    pub fn access_log_queue_depth(&self, n: usize) {
        if let Some(f) = &self.families {
            f.access_log_queue_depth
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A failed write to the access-log sink.
    pub fn access_log_write_error(&self) {
        if let Some(f) = &self.families {
            f.access_log_write_errors.inc();
        }
    }

    /// Lost access-log records whose count the log does not say yet.
    pub fn access_log_unreported(&self, n: u64) {
        if let Some(f) = &self.families {
            f.access_log_unreported
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A checkpoint line written to the access log.
    pub fn access_log_checkpoint(&self) {
        if let Some(f) = &self.families {
            f.access_log_checkpoints.inc();
        }
    }

    pub(super) fn counter(
        &self,
        pick: impl Fn(&Families) -> &IntCounterVec,
        values: &[&str],
    ) -> Option<IntCounter> {
        self.families.as_ref().and_then(|f| series(pick(f), values))
    }

    pub(super) fn gauge(
        &self,
        pick: impl Fn(&Families) -> &IntGaugeVec,
        values: &[&str],
    ) -> Option<IntGauge> {
        self.families.as_ref().and_then(|f| series(pick(f), values))
    }
}

/// Counts an open tunnel in `lbo_active_tunnels` until dropped, so a relay that is
/// cancelled (shutdown, client gone) is uncounted as surely as one that finishes.
#[must_use = "the tunnel counts as open only while this value lives"]
pub struct OpenTunnel(Route);

impl OpenTunnel {
    pub fn new(route: Route) -> OpenTunnel {
        metrics().tunnel_opened(route);
        OpenTunnel(route)
    }
}

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        metrics().tunnel_closed(self.0);
    }
}

/// The series for these label values. The label count is fixed by the code above; a
/// mismatch (a bug the tests catch) loses the update instead of panicking.
fn series<B: MetricVecBuilder>(vec: &MetricVec<B>, values: &[&str]) -> Option<B::M> {
    vec.get_metric_with_label_values(values).ok()
}

fn has_label<B: MetricVecBuilder>(vec: &MetricVec<B>, name: &str, value: &str) -> bool {
    vec.collect().iter().any(|family| {
        family.get_metric().iter().any(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == name && l.value() == value)
        })
    })
}

/// Removes the series whose `name` label is not in `keep`.
fn retain<B: MetricVecBuilder>(vec: &MetricVec<B>, name: &str, keep: &[&str]) {
    for family in vec.collect() {
        for m in family.get_metric() {
            let labels: HashMap<&str, &str> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels.get(name).is_some_and(|v| !keep.contains(v)) {
                let _ = vec.remove(&labels);
            }
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::CloseReason;
    use crate::policy::Reason;
    use std::sync::Arc;

    /// The value of one series in `m`'s text output.
    fn value(m: &Metrics, series: &str) -> Option<f64> {
        m.encode().lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.parse().ok())
        })
    }

    fn outcome() -> Outcome {
        Outcome {
            start: SystemTime::UNIX_EPOCH,
            listener: "explicit",
            client: "192.0.2.7".parse().unwrap(),
            segment: Some(Arc::from("honcho")),
            profile: Some(Arc::from("case2")),
            method: Some("CONNECT".into()),
            target: Some("login.microsoftonline.com:443".into()),
            target_from: None,
            route: Some(Route::Direct),
            category: Some(Arc::from("auth")),
            rule: None,
            decision: Some(Reason::Allowlisted),
            parent: None,
            parent_tls_resumed: None,
            server: Some("192.0.2.80:443".parse().unwrap()),
            status: Some(200),
            bytes_up: 100,
            bytes_down: 2000,
            dns_ms: Some(3.0),
            connect_ms: Some(12.5),
            duration_ms: 60_000.0,
            sni: None,
            sni_mismatch: false,
            host_mismatch: None,
            tenant_restrictions: None,
            reason: CloseReason::Finished,
            blame: None,
            error: None,
            ..Outcome::default()
        }
    }

    #[test]
    fn every_definition_is_accepted() {
        let m = Metrics::new();
        assert!(m.families.is_some(), "a metric definition was refused");
        assert_eq!(
            value(
                &m,
                &format!(
                    "lbo_build_info{{version=\"{}\"}}",
                    env!("CARGO_PKG_VERSION")
                )
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&m, "lbo_config_reloads_total{result=\"failure\"}"),
            Some(0.0)
        );
        assert_eq!(value(&m, "lbo_active_tunnels{route=\"direct\"}"), Some(0.0));
    }

    #[test]
    fn an_outcome_becomes_counters_and_histograms_without_hosts_or_addresses() {
        let m = Metrics::new();
        m.record(&outcome());
        assert_eq!(
            value(&m, "lbo_requests_total{category=\"auth\",listener=\"explicit\",profile=\"case2\",route=\"direct\",segment=\"honcho\",status_class=\"2xx\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &m,
                "lbo_request_end_total{blame=\"none\",reason=\"finished\",route=\"direct\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &m,
                "lbo_bytes_total{category=\"auth\",direction=\"down\",route=\"direct\"}"
            ),
            Some(2000.0)
        );
        assert_eq!(
            value(
                &m,
                "lbo_connect_duration_seconds_bucket{route=\"direct\",le=\"0.025\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &m,
                "lbo_connect_duration_seconds_bucket{route=\"direct\",le=\"0.01\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&m, "lbo_dns_lookup_duration_seconds_count"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &m,
                "lbo_request_duration_seconds_bucket{route=\"direct\",le=\"60\"}"
            ),
            Some(1.0)
        );
        let text = m.encode();
        assert!(!text.contains("lbo_denied_total{"), "{text}");
        for secret in ["192.0.2", "microsoftonline"] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
    }

    #[test]
    fn a_denied_request_without_segment_is_labelled_none() {
        let m = Metrics::new();
        let mut o = outcome();
        o.route = Some(Route::Deny);
        o.decision = Some(Reason::UnknownClient);
        (o.segment, o.profile, o.category) = (None, None, None);
        o.status = Some(403);
        o.reason = CloseReason::Denied;
        (o.bytes_up, o.bytes_down, o.connect_ms, o.dns_ms) = (0, 0, None, None);
        m.record(&o);
        assert_eq!(
            value(&m, "lbo_requests_total{category=\"none\",listener=\"explicit\",profile=\"none\",route=\"deny\",segment=\"none\",status_class=\"4xx\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&m, "lbo_denied_total{reason=\"unknown_client\"}"),
            Some(1.0)
        );
        assert!(!m.encode().contains("lbo_bytes_total{"));
    }

    #[test]
    fn tunnels_parents_reloads_and_the_access_log() {
        let m = Metrics::new();
        m.tunnel_opened(Route::Upstream);
        m.tunnel_opened(Route::Upstream);
        m.tunnel_closed(Route::Upstream);
        assert_eq!(
            value(&m, "lbo_active_tunnels{route=\"upstream\"}"),
            Some(1.0)
        );

        m.parent_configured("seccloud-a");
        assert_eq!(value(&m, "lbo_parent_up{parent=\"seccloud-a\"}"), Some(1.0));
        assert_eq!(
            value(
                &m,
                "lbo_parent_checks_total{parent=\"seccloud-a\",result=\"failure\"}"
            ),
            Some(0.0)
        );
        m.parent_checked("seccloud-a", false);
        m.parent_state("seccloud-a", false);
        m.parent_failover("seccloud-a");
        // A pool built by a reload does not revive a parent that is down.
        m.parent_configured("seccloud-a");
        assert_eq!(value(&m, "lbo_parent_up{parent=\"seccloud-a\"}"), Some(0.0));
        assert_eq!(
            value(
                &m,
                "lbo_parent_checks_total{parent=\"seccloud-a\",result=\"failure\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &m,
                "lbo_parent_down_transitions_total{parent=\"seccloud-a\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&m, "lbo_parent_failovers_total{parent=\"seccloud-a\"}"),
            Some(1.0)
        );
        m.parent_state("seccloud-a", true);
        assert_eq!(value(&m, "lbo_parent_up{parent=\"seccloud-a\"}"), Some(1.0));
        assert_eq!(
            value(
                &m,
                "lbo_parent_down_transitions_total{parent=\"seccloud-a\"}"
            ),
            Some(1.0)
        );

        m.reload(false);
        assert_eq!(value(&m, "lbo_config_last_reload_successful"), Some(0.0));
        assert_eq!(
            value(&m, "lbo_config_reloads_total{result=\"failure\"}"),
            Some(1.0)
        );
        m.reload(true);
        assert_eq!(value(&m, "lbo_config_last_reload_successful"), Some(1.0));
        assert!(value(&m, "lbo_config_last_reload_success_timestamp_seconds").unwrap() > 1.7e9);

        m.access_log_dropped(3);
        assert_eq!(value(&m, "lbo_access_log_dropped_total"), Some(3.0));
        m.access_log_queue_depth(7);
        assert_eq!(value(&m, "lbo_access_log_queue_depth"), Some(7.0));
        m.access_log_write_error();
        assert_eq!(value(&m, "lbo_access_log_write_errors_total"), Some(1.0));
    }

    #[test]
    fn config_loaded_sets_allowlist_sizes_and_forgets_what_is_gone() {
        let m = Metrics::new();
        let config = crate::config::load(None).expect("the embedded default loads");
        m.parent_configured("removed-parent");
        m.config_loaded(&config);
        assert_eq!(value(&m, "lbo_config_last_reload_successful"), Some(1.0));
        assert_eq!(value(&m, "lbo_parent_up{parent=\"removed-parent\"}"), None);
        for c in &config.categories {
            let name = &c.category.name;
            assert_eq!(
                value(
                    &m,
                    &format!("lbo_allowlist_entries{{category=\"{name}\",kind=\"domain\"}}")
                ),
                Some(c.category.domain_count() as f64),
                "{name}"
            );
            assert_eq!(
                value(
                    &m,
                    &format!("lbo_allowlist_entries{{category=\"{name}\",kind=\"network\"}}")
                ),
                Some(c.category.network_count() as f64),
                "{name}"
            );
        }
        assert!(!config.categories.is_empty());
    }
}
