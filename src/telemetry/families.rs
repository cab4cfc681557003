//! The metric families: names, help texts, labels and buckets. The names are a contract
//! with `dashboards/`, the status page and the README.

use prometheus::core::Collector;

use crate::policy::Route;
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Connect and DNS times: 1 ms (a nearby resolver or parent) to 10 s (past any timeout).
const CONNECT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Request and tunnel lifetimes: a plain GET takes milliseconds, a Teams or Outlook
/// tunnel stays open for a working day.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0,
];

pub(super) struct Families {
    pub(super) requests: IntCounterVec,
    pub(super) request_end: IntCounterVec,
    pub(super) denied: IntCounterVec,
    pub(super) bytes: IntCounterVec,
    pub(super) active_tunnels: IntGaugeVec,
    pub(super) connect_duration: HistogramVec,
    pub(super) dns_duration: Histogram,
    pub(super) request_duration: HistogramVec,
    pub(super) parent_up: IntGaugeVec,
    pub(super) parent_checks: IntCounterVec,
    pub(super) parent_failovers: IntCounterVec,
    pub(super) parent_downs: IntCounterVec,
    pub(super) reloads: IntCounterVec,
    pub(super) last_reload_success: Gauge,
    pub(super) last_reload_successful: IntGauge,
    pub(super) allowlist_entries: IntGaugeVec,
    pub(super) access_log_dropped: IntCounter,
    pub(super) access_log_queue_depth: IntGauge,
    pub(super) access_log_write_errors: IntCounter,
    pub(super) build_info: IntGaugeVec,
    pub(super) limit_hits: IntCounterVec,
    pub(super) accept_errors: IntCounterVec,
    pub(super) tenant_restrictions: IntCounterVec,
    pub(super) parent_attempts: IntCounterVec,
    pub(super) parent_standby_ready: IntGaugeVec,
    pub(super) parent_standby: IntCounterVec,
    pub(super) parent_tls_handshakes: IntCounterVec,
    pub(super) parent_state_changes: IntCounterVec,
    pub(super) access_log_unreported: IntGauge,
    pub(super) access_log_checkpoints: IntCounter,
}

impl Families {
    pub(super) fn register(r: &Registry) -> prometheus::Result<Families> {
        let f = Families {
            requests: counters(
                r,
                "lbo_requests_total",
                "Requests and tunnels handled, counted when they end, by listener, route (direct, upstream, deny; none before a decision), allowlist category, profile, segment and HTTP status class.",
                &["listener", "route", "category", "profile", "segment", "status_class"],
            )?,
            request_end: counters(
                r,
                "lbo_request_end_total",
                "Requests and tunnels by how they ended (the access log's reason) and who failed (client, next_hop, proxy; none when nobody did), by route.",
                &["route", "reason", "blame"],
            )?,
            denied: counters(
                r,
                "lbo_denied_total",
                "Requests the appliance refused: routed to deny by the policy (reason unknown_client, deny_rule, port_not_allowlisted, invalid_target), or refused by the proxy itself (internal_address: an allowlisted name resolved to an internal address; head_too_large; too_many_headers; bad_request; sni_mismatch: a direct tunnel's ClientHello named a host that is not direct, i.e. domain fronting). Failures of the next hop are not counted here.",
                &["reason"],
            )?,
            bytes: counters(
                r,
                "lbo_bytes_total",
                "Payload bytes relayed, up (client to destination) and down, by route and allowlist category.",
                &["direction", "route", "category"],
            )?,
            active_tunnels: gauges(
                r,
                "lbo_active_tunnels",
                "Tunnels relaying now, by route.",
                &["route"],
            )?,
            connect_duration: histograms(
                r,
                "lbo_connect_duration_seconds",
                "Time spent reaching the next hop (DNS, connect, and the parent's CONNECT answer), whether it succeeded or not, by route.",
                CONNECT_BUCKETS,
                &["route"],
            )?,
            dns_duration: add(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "lbo_dns_lookup_duration_seconds",
                        "Successful DNS lookups of the direct route on the LBO line's resolvers.",
                    )
                    .buckets(CONNECT_BUCKETS.to_vec()),
                )?,
            )?,
            request_duration: histograms(
                r,
                "lbo_request_duration_seconds",
                "Lifetime of a request or tunnel, from accept to close, by route.",
                DURATION_BUCKETS,
                &["route"],
            )?,
            parent_up: gauges(
                r,
                "lbo_parent_up",
                "Whether a security cloud parent proxy is considered up (1) or down (0) by the health checks and real connections.",
                &["parent"],
            )?,
            parent_checks: counters(
                r,
                "lbo_parent_checks_total",
                "Active health checks of a parent, by result (success, failure).",
                &["parent", "result"],
            )?,
            parent_failovers: counters(
                r,
                "lbo_parent_failovers_total",
                "Requests that passed over this parent because it was down or the attempt through it failed, going on to the next parent if there is one.",
                &["parent"],
            )?,
            parent_downs: counters(
                r,
                "lbo_parent_down_transitions_total",
                "Times a parent was marked down (fall threshold reached).",
                &["parent"],
            )?,
            reloads: counters(
                r,
                "lbo_config_reloads_total",
                "Configuration reloads (SIGHUP or POST /-/reload), by result (success, failure).",
                &["result"],
            )?,
            last_reload_success: add(
                r,
                Gauge::new(
                    "lbo_config_last_reload_success_timestamp_seconds",
                    "When the running configuration was loaded (start or last successful reload), in seconds since the Unix epoch.",
                )?,
            )?,
            last_reload_successful: add(
                r,
                IntGauge::new(
                    "lbo_config_last_reload_successful",
                    "Whether the last configuration load or reload succeeded (1) or was refused, the previous configuration staying in force (0).",
                )?,
            )?,
            allowlist_entries: gauges(
                r,
                "lbo_allowlist_entries",
                "Entries in the running allowlists, by category and kind (domain patterns, IP networks).",
                &["category", "kind"],
            )?,
            access_log_dropped: add(
                r,
                IntCounter::new(
                    "lbo_access_log_dropped_total",
                    "Access-log records lost: dropped because the queue was full, or a write to the sink failed. Each is counted in the log itself by a records_lost line.",
                )?,
            )?,
            access_log_queue_depth: add(
                r,
                IntGauge::new(
                    "lbo_access_log_queue_depth",
                    "Access-log records waiting for the writer; near the configured log.queue, records are about to be dropped.",
                )?,
            )?,
            access_log_write_errors: add(
                r,
                IntCounter::new(
                    "lbo_access_log_write_errors_total",
                    "Failed writes, syncs and connections of the access-log sink (file, stdout, syslog collector), each in the service log; records they lost are also counted in lbo_access_log_dropped_total.",
                )?,
            )?,
            build_info: gauges(
                r,
                "lbo_build_info",
                "Always 1; the version of the running lbo-proxy.",
                &["version"],
            )?,
            limit_hits: counters(
                r,
                "lbo_limit_hits_total",
                "Connections and requests ended by a configured limit or timeout: head_timeout, head_bytes, header_count, connections, connections_per_client, connect_timeout, dns_timeout, idle_timeout, tunnel_lifetime, parent_answer (docs/limits.md).",
                &["limit"],
            )?,
            accept_errors: counters(
                r,
                "lbo_accept_errors_total",
                "Failed accepts on a listener, by kind (fd_limit: EMFILE/ENFILE, memory, other); the listener backs off and goes on.",
                &["kind"],
            )?,
            tenant_restrictions: counters(
                r,
                "lbo_tenant_restrictions_total",
                "Sign-in tunnels that tenant restrictions applied to, counted when they end, by outcome (applied: intercepted and the headers set; refused: the client refused the intercepting TLS; failed: the proxy could not intercept) and reason. Refused and failed sign-ins were denied, never tunnelled without the headers.",
                &["outcome", "reason"],
            )?,
            parent_attempts: counters(
                r,
                "lbo_parent_attempts_total",
                "Attempts through a parent by what came of them: ok, unreachable (connect, TLS, or closed before any reply byte: counts toward fall, next parent tried), timeout (no answer within timeouts.parent_answer), origin_error (the parent's 502/503/504), refused (the parent's 4xx), failed (a broken reply).",
                &["parent", "class"],
            )?,
            parent_standby_ready: gauges(
                r,
                "lbo_parent_standby_ready",
                "Standby connections to a parent open and ready (TLS done) for the next tunnels.",
                &["parent"],
            )?,
            parent_standby: counters(
                r,
                "lbo_parent_standby_total",
                "Standby connections by event: opened, used (taken by a tunnel), missed (a tunnel found none ready), recycled (replaced after standby_max_idle), stale (closed by the parent while waiting), dropped (the parent went down or a reload changed it).",
                &["parent", "event"],
            )?,
            parent_tls_handshakes: counters(
                r,
                "lbo_parent_tls_handshakes_total",
                "TLS handshakes with a parent, by kind: full, or resumed (a session ticket or ID was accepted).",
                &["parent", "kind"],
            )?,
            parent_state_changes: counters(
                r,
                "lbo_parent_state_changes_total",
                "Times a parent changed state, up to down or down to up (fall or rise reached).",
                &["parent"],
            )?,
            access_log_unreported: add(
                r,
                IntGauge::new(
                    "lbo_access_log_lost_unreported",
                    "Access-log records lost whose count is not yet written in the log (a records_lost line): above 0 for long, the sink is still failing.",
                )?,
            )?,
            access_log_checkpoints: add(
                r,
                IntCounter::new(
                    "lbo_access_log_checkpoints_total",
                    "Checkpoints written to the access log (signed when log.signing_key is set): at start, rotation, every log.checkpoint_interval and at shutdown.",
                )?,
            )?,
        };
        for limit in super::labels::LIMITS {
            f.limit_hits.get_metric_with_label_values(&[limit])?;
        }
        for kind in super::labels::ACCEPT_ERRORS {
            f.accept_errors.get_metric_with_label_values(&[kind])?;
        }
        // Known label values start at zero, so dashboards and alerts see series, not gaps.
        for result in ["success", "failure"] {
            f.reloads.get_metric_with_label_values(&[result])?;
        }
        for route in [Route::Direct, Route::Upstream] {
            f.active_tunnels
                .get_metric_with_label_values(&[route.as_str()])?;
        }
        f.build_info
            .get_metric_with_label_values(&[env!("CARGO_PKG_VERSION")])?
            .set(1);
        Ok(f)
    }
}

fn add<C: Collector + Clone + 'static>(r: &Registry, c: C) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counters(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    add(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn gauges(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    add(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

fn histograms(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    add(r, HistogramVec::new(opts, labels)?)
}
