//! The status page's parent rows: per parent its state, since when and by what it is
//! down, the last check and connection error in words, the counters, and its standby
//! connections, read from the pool and the metrics.

use super::{count, unix, Samples};
use crate::server::Context;

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
    /// While down: since when (seconds since the epoch) and by what.
    pub down_since: Option<f64>,
    pub down_by: String,
    /// The last health check: when, whether it passed, and what failed.
    pub last_check: Option<(f64, bool, String)>,
    /// The last failure of a connection through this parent, in words.
    pub last_error: String,
    /// Standby connections ready, and how many are kept.
    pub standby_ready: u64,
    pub standby_want: u64,
}

/// One row per parent of the running pool, in the configured order.
pub(super) fn rows(ctx: &Context, m: &Samples) -> Vec<ParentRow> {
    ctx.parents
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
            let health = p.health();
            let (ready, want) = p.standby();
            ParentRow {
                address: p.config.address.clone(),
                up: health.up,
                checks_ok: ok,
                checks_failed: failed,
                failovers: count(m.sum("lbo_parent_failovers_total", &[("parent", &name)])),
                downs: health.downs,
                down_since: health.down_since.map(unix),
                down_by: health.down_by.unwrap_or_default().to_string(),
                last_check: health
                    .last_check
                    .map(|c| (unix(c.at), c.ok, c.error.unwrap_or_default())),
                last_error: health.last_error.unwrap_or_default(),
                standby_ready: ready as u64,
                standby_want: want as u64,
                name,
            }
        })
        .collect()
}
