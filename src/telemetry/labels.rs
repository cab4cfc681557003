//! Label values derived from an [`Outcome`]: every one is a closed set or a configured
//! name, so a label can never carry a host name or an address.

use std::sync::Arc;

use crate::outcome::{CloseReason, Outcome};
use crate::policy::{Reason, Route};

/// Stands for an absent value (no decision yet, no status, nobody to blame).
pub const NONE: &str = "none";

pub fn route(route: Option<Route>) -> &'static str {
    route.map_or(NONE, Route::as_str)
}

/// A configured name (segment, profile, category), or `none`.
pub fn name(name: &Option<Arc<str>>) -> &str {
    match name.as_deref() {
        Some(n) if !n.is_empty() => n,
        _ => NONE,
    }
}

/// `1xx` … `5xx`; `none` when no status was sent (or it is out of range).
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => NONE,
    }
}

/// Why the proxy refused a request, if it did: the decision's reason when the policy
/// routed it to deny (`unknown_client`, `deny_rule`, `invalid_target`), otherwise the
/// close reason when the proxy itself refused it (`internal_address`, `head_too_large`,
/// `bad_request`, `sni_mismatch`). Failures of the next hop are not refusals and give `None`.
pub fn denied(o: &Outcome) -> Option<&'static str> {
    if o.route == Some(Route::Deny) {
        return Some(
            o.decision
                .map_or(CloseReason::Denied.as_str(), Reason::as_str),
        );
    }
    match o.reason {
        CloseReason::InternalAddress
        | CloseReason::HeadTooLarge
        | CloseReason::BadRequest
        | CloseReason::SniMismatch
        | CloseReason::TooManyHeaders
        | CloseReason::AdminRefused => Some(o.reason.as_str()),
        _ => None,
    }
}

/// Every `limit` label of `lbo_limit_hits_total`.
pub const LIMITS: [&str; 10] = [
    "head_timeout",
    "head_bytes",
    "header_count",
    "connections",
    "connections_per_client",
    "connect_timeout",
    "dns_timeout",
    "idle_timeout",
    "tunnel_lifetime",
    "parent_answer",
];

/// Every `kind` label of `lbo_accept_errors_total`.
pub const ACCEPT_ERRORS: [&str; 3] = ["fd_limit", "memory", "other"];

/// The configured limit or timeout that ended this record, if one did.
pub fn limit(o: &Outcome) -> Option<&'static str> {
    Some(match o.reason {
        CloseReason::HeadTimeout => "head_timeout",
        CloseReason::HeadTooLarge => "head_bytes",
        CloseReason::TooManyHeaders => "header_count",
        CloseReason::ConnectionLimit => "connections",
        CloseReason::ClientConnectionLimit => "connections_per_client",
        CloseReason::ConnectTimeout => "connect_timeout",
        CloseReason::DnsTimeout => "dns_timeout",
        CloseReason::IdleTimeout => "idle_timeout",
        CloseReason::TunnelLifetime => "tunnel_lifetime",
        CloseReason::ParentTimeout => "parent_answer",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Decision;

    fn outcome(reason: CloseReason) -> Outcome {
        Outcome {
            listener: "explicit",
            client: "192.0.2.1".parse().unwrap(),
            reason,
            ..Outcome::default()
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(101)), "1xx");
        assert_eq!(status_class(Some(200)), "2xx");
        assert_eq!(status_class(Some(307)), "3xx");
        assert_eq!(status_class(Some(403)), "4xx");
        assert_eq!(status_class(Some(599)), "5xx");
        assert_eq!(status_class(Some(600)), "none");
        assert_eq!(status_class(Some(0)), "none");
        assert_eq!(status_class(None), "none");
    }

    #[test]
    fn absent_names_are_none() {
        assert_eq!(name(&None), "none");
        assert_eq!(name(&Some(Arc::from(""))), "none");
        assert_eq!(name(&Some(Arc::from("teams"))), "teams");
        assert_eq!(route(None), "none");
        assert_eq!(route(Some(Route::Upstream)), "upstream");
    }

    #[test]
    fn denials_are_policy_denies_and_refusals_only() {
        let mut o = outcome(CloseReason::Denied);
        o.route = Some(Route::Deny);
        o.decision = Some(Reason::DenyRule);
        assert_eq!(denied(&o), Some("deny_rule"));
        o.decision = Some(Reason::UnknownClient);
        assert_eq!(denied(&o), Some("unknown_client"));

        // An unparsable target is decided as deny and ends as a bad request: counted once,
        // under the decision's reason.
        let mut o = outcome(CloseReason::BadRequest);
        let d = Decision::invalid_target();
        o.route = Some(d.route);
        o.decision = Some(d.reason);
        assert_eq!(denied(&o), Some("invalid_target"));

        assert_eq!(
            denied(&outcome(CloseReason::BadRequest)),
            Some("bad_request")
        );
        assert_eq!(
            denied(&outcome(CloseReason::HeadTooLarge)),
            Some("head_too_large")
        );
        let mut o = outcome(CloseReason::InternalAddress);
        o.route = Some(Route::Direct);
        assert_eq!(denied(&o), Some("internal_address"));
        // Domain fronting on a tunnel decided direct: refused by the SNI check.
        let mut o = outcome(CloseReason::SniMismatch);
        o.route = Some(Route::Direct);
        assert_eq!(denied(&o), Some("sni_mismatch"));

        assert_eq!(
            denied(&outcome(CloseReason::TooManyHeaders)),
            Some("too_many_headers")
        );
        for r in [
            CloseReason::Finished,
            CloseReason::ConnectFailed,
            CloseReason::ParentsDown,
            CloseReason::NoParent,
            CloseReason::HeadTimeout,
        ] {
            let mut o = outcome(r);
            o.route = Some(Route::Upstream);
            assert_eq!(denied(&o), None, "{r:?}");
        }
    }

    #[test]
    fn limits_are_a_closed_set() {
        for r in [
            CloseReason::HeadTimeout,
            CloseReason::HeadTooLarge,
            CloseReason::TooManyHeaders,
            CloseReason::ConnectionLimit,
            CloseReason::ClientConnectionLimit,
            CloseReason::ConnectTimeout,
            CloseReason::DnsTimeout,
            CloseReason::IdleTimeout,
            CloseReason::TunnelLifetime,
            CloseReason::ParentTimeout,
        ] {
            let l = limit(&outcome(r));
            assert!(l.is_some_and(|l| LIMITS.contains(&l)), "{r:?}");
        }
        assert_eq!(limit(&outcome(CloseReason::Finished)), None);
        assert_eq!(limit(&outcome(CloseReason::BadRequest)), None);
    }
}
