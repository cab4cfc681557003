//! Why the next hop could not be reached: a closed set, each with the status the client
//! gets and the side that failed. The texts are for people: they say what happened, in
//! words, and name the parent.

use std::time::Duration;

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
    /// Every parent is marked down; `detail` says by what and the last error of each.
    #[error("every security cloud parent is marked down: {detail}")]
    ParentsDown { detail: String },
    /// The parent answered with a refusal of its own (407: our credentials, 403: its
    /// rules, other 4xx).
    #[error("{parent} refused {request}: it answered {status}{}", refusal_hint(*.status))]
    ParentRefused {
        parent: String,
        request: String,
        status: StatusCode,
    },
    /// The parent broke the exchange (a malformed or oversized reply head, a close in
    /// the middle of one, an answer no proxy gives).
    #[error("{parent} failed: {detail}")]
    ParentFailed { parent: String, detail: String },
    /// No attempt reached a parent (connect, TLS, or a close before any reply byte);
    /// `attempts` has each one's reason. Some parent is still up.
    #[error("no security cloud parent could be reached: {attempts}")]
    ParentUnreachable { parent: String, attempts: String },
    /// The parent has the request but did not answer in time; it is not sent again.
    #[error("{parent} did not answer {request} within {}", words(*.after))]
    ParentTimeout {
        parent: String,
        request: String,
        after: Duration,
    },
    /// The parent could not reach the destination (its 502, 503 or 504, passed on).
    #[error("{parent} could not reach the destination of {request}: it answered {status}")]
    ParentOriginError {
        parent: String,
        request: String,
        status: StatusCode,
    },
}

fn refusal_hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
            " (the credentials configured for this parent were not accepted)"
        }
        StatusCode::FORBIDDEN => " (its access rules refuse this destination or this appliance)",
        _ => "",
    }
}

/// A duration as a person writes it: `60 s`, `1.5 s`, `250 ms`.
pub fn words(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
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
            ConnectError::ParentsDown { .. }
            | ConnectError::ParentFailed { .. }
            | ConnectError::ParentRefused { .. }
            | ConnectError::ParentUnreachable { .. } => StatusCode::BAD_GATEWAY,
            ConnectError::ParentTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ConnectError::ParentOriginError { status, .. } => *status,
        }
    }

    /// The parent that answered or failed, when one did.
    pub fn parent(&self) -> Option<&str> {
        match self {
            ConnectError::ParentRefused { parent, .. }
            | ConnectError::ParentFailed { parent, .. }
            | ConnectError::ParentUnreachable { parent, .. }
            | ConnectError::ParentTimeout { parent, .. }
            | ConnectError::ParentOriginError { parent, .. } => Some(parent),
            _ => None,
        }
    }

    /// The title of the page the client gets.
    pub fn title(&self) -> &'static str {
        match self {
            ConnectError::NoParent | ConnectError::ParentsDown { .. } => {
                "Security cloud unavailable"
            }
            ConnectError::ParentUnreachable { .. } | ConnectError::ParentFailed { .. } => {
                "Security cloud unreachable"
            }
            ConnectError::ParentTimeout { .. } => "Security cloud did not answer",
            ConnectError::ParentRefused { .. } => "Refused by the security cloud",
            ConnectError::InternalAddress(_) => "Local breakout refused",
            _ => "Destination unreachable",
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
            ConnectError::ParentUnreachable { .. } => R::ParentUnreachable,
            ConnectError::ParentTimeout { .. } => R::ParentTimeout,
            ConnectError::ParentOriginError { .. } => R::ParentOriginError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_words() {
        let e = ConnectError::ParentTimeout {
            parent: "seccloud-1".into(),
            request: "CONNECT www.example.org:443".into(),
            after: Duration::from_secs(60),
        };
        assert_eq!(
            e.to_string(),
            "seccloud-1 did not answer CONNECT www.example.org:443 within 60 s"
        );
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        let e = ConnectError::ParentRefused {
            parent: "seccloud-1".into(),
            request: "CONNECT www.example.org:443".into(),
            status: StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        };
        assert_eq!(
            e.to_string(),
            "seccloud-1 refused CONNECT www.example.org:443: it answered 407 Proxy Authentication Required (the credentials configured for this parent were not accepted)"
        );
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        let e = ConnectError::ParentOriginError {
            parent: "seccloud-1".into(),
            request: "CONNECT www.example.org:443".into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
        };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(e
            .to_string()
            .ends_with("it answered 503 Service Unavailable"));
        assert_eq!(words(Duration::from_millis(250)), "250 ms");
        assert_eq!(words(Duration::from_millis(1500)), "1.5 s");
    }
}
