//! Prometheus metrics for the network team's dashboards and alerts.
//!
//! One process-wide [`Metrics`] with its own registry: it is created on first use and
//! outlives every configuration, so counters keep counting across reloads. Connections do
//! not touch counters themselves: each [`crate::outcome::Outcome`] is turned into metric
//! updates once, by [`Metrics::record`], when its record is written. Labels come only from
//! closed enums and configured names (route, reason, segment, profile, category, parent),
//! never from a host name or a client address, so the number of series stays bounded.

mod families;
mod labels;
mod metrics;
mod parents;

pub use metrics::{metrics, Metrics, OpenTunnel, TEXT_FORMAT};
pub use parents::{AttemptClass, StandbyEvent};
