//! What connects out: the direct route (local breakout) and the parent pool (security
//! cloud). Connectors know nothing of policy: they get a target and return a stream or a
//! [`ConnectError`] that maps to one HTTP status.

pub mod connect_head;
pub mod direct;
pub mod error;
pub mod guard;
pub mod parent;
pub mod resolver;

pub use error::ConnectError;
