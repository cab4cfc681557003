//! lbo-proxy: a local breakout forwarding proxy for the α′ model.
//!
//! The flow of one connection: [`ingress`] accepts and reads the request head into a
//! normalised [`policy::Target`]; [`policy::decide`] returns a [`policy::Decision`];
//! [`egress`] connects direct or through the security cloud; [`relay`] copies the bytes;
//! the [`outcome`] of the connection becomes one access-log line and the [`telemetry`]
//! metric updates.

// Outside tests nothing may panic on what it is given: every failure is an error value.
// Tests unwrap freely, since a panic is how a test reports a failure.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod access_log;
pub mod admin;
pub mod audit;
pub mod config;
pub mod egress;
pub mod error_text;
pub mod ingress;
pub mod intercept;
pub mod lists;
pub mod outcome;
pub mod policy;
pub mod relay;
pub mod server;
pub mod stream;
pub mod systemd;
pub mod telemetry;

pub use config::Config;
pub use server::Server;
