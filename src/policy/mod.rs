//! The decision, and nothing but the decision: pure functions from a policy snapshot, a
//! client address and a normalised target to a [`Decision`]. No sockets, no clock, no
//! runtime, so every rule can be proven with table tests and explained by `lbo-proxy route`.

pub mod allowlist;
pub mod decide;
pub mod domain;
pub mod network;
pub mod shared_hosting;
pub mod snapshot;
pub mod special;
pub mod target;

pub use decide::{Decision, Reason, Route};
pub use snapshot::{PolicySpec, ProfileSpec, SegmentSpec, Snapshot};
pub use target::{Host, Target, TargetError};

#[cfg(test)]
mod tests;
