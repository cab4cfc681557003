//! Why the next hop could not be reached: a closed set, each with the status the client
//! gets and the side that failed.

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DNS lookup of {name} failed: {detail}")]
    DnsFailed { name: String, detail: String },
    #[error("DNS lookup of {0} timed out")]
    DnsTimeout(String),
    #[error("{0} resolves only to internal addresses; local breakout refused")]
    InternalAddress(String),
    #[error("connection to {addr} refused or failed: {source}")]
    Refused {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {0} timed out")]
    Timeout(String),
    #[error("no security cloud (upstream parent) is configured")]
    NoParent,
    #[error("every security cloud parent is down ({last})")]
    ParentsDown { last: String },
    #[error("parent {parent} answered {status}")]
    ParentRefused { parent: String, status: StatusCode },
    #[error("parent {parent} failed: {detail}")]
    ParentFailed { parent: String, detail: String },
}

impl ConnectError {
    pub fn status(&self) -> StatusCode {
        match self {
            ConnectError::DnsFailed { .. } | ConnectError::Refused { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ConnectError::DnsTimeout(_) | ConnectError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ConnectError::InternalAddress(_) => StatusCode::FORBIDDEN,
            ConnectError::NoParent => StatusCode::SERVICE_UNAVAILABLE,
            ConnectError::ParentsDown { .. } | ConnectError::ParentFailed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ConnectError::ParentRefused { status, .. } => *status,
        }
    }

    /// The parent that answered or failed, when one did.
    pub fn parent(&self) -> Option<&str> {
        match self {
            ConnectError::ParentRefused { parent, .. }
            | ConnectError::ParentFailed { parent, .. } => Some(parent),
            _ => None,
        }
    }

    /// The access-log / metric reason.
    pub fn reason(&self) -> crate::outcome::CloseReason {
        use crate::outcome::CloseReason as R;
        match self {
            ConnectError::DnsFailed { .. } => R::DnsFailed,
            ConnectError::DnsTimeout(_) => R::DnsTimeout,
            ConnectError::InternalAddress(_) => R::InternalAddress,
            ConnectError::Refused { .. } => R::ConnectFailed,
            ConnectError::Timeout(_) => R::ConnectTimeout,
            ConnectError::NoParent => R::NoParent,
            ConnectError::ParentsDown { .. } => R::ParentsDown,
            ConnectError::ParentRefused { .. } => R::ParentRefused,
            ConnectError::ParentFailed { .. } => R::ParentFailed,
        }
    }
}
