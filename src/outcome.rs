//! One record per request or tunnel. It is created when the request is accepted, filled in
//! as it moves (head read → decided → connected → relayed), and written exactly once, when
//! it is dropped, so a cancelled or failed connection is logged like a finished one.
//! The access log is the auditor's proof of what broke out: it holds no secret.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::access_log::AccessLog;
use crate::policy::{Decision, Reason, Route};
use crate::relay::RelayEnd;

/// Why a request or tunnel ended: a closed set, fit for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Finished,
    IdleTimeout,
    ClientError,
    ServerError,
    Shutdown,
    Denied,
    BadRequest,
    HeadTimeout,
    HeadTooLarge,
    DnsFailed,
    DnsTimeout,
    InternalAddress,
    ConnectFailed,
    ConnectTimeout,
    NoParent,
    ParentsDown,
    ParentRefused,
    ParentFailed,
    Cancelled,
    /// A direct tunnel's first bytes named another host than one that goes direct
    /// (domain fronting), or were not the TLS the check requires.
    SniMismatch,
    /// A request head with more header fields than `limits.max_headers` (431).
    TooManyHeaders,
    /// `limits.max_connections` reached: the connection was refused at accept (503).
    ConnectionLimit,
    /// The client address holds `limits.max_connections_per_client` already (429).
    ClientConnectionLimit,
    /// The tunnel reached `limits.max_tunnel_lifetime` and was closed.
    TunnelLifetime,
    /// The client's segment requires proxy authentication and none valid was given (407).
    AuthRequired,
    /// Tenant restrictions apply but the client refused the intercepting TLS (the CA is
    /// not trusted on the PC): the sign-in was denied.
    InterceptRefused,
    /// Tenant restrictions apply but interception failed (minting, the sign-in server's
    /// TLS or HTTP): the sign-in was denied, never tunnelled without the headers.
    InterceptFailed,
    /// No parent could be reached (connect, TLS, or closed before any reply byte) and
    /// some parent is still up (502).
    ParentUnreachable,
    /// A parent had the request and did not answer within `timeouts.parent_answer` (504);
    /// it was not sent to another parent.
    ParentTimeout,
    /// The parent could not reach the destination: its 502, 503 or 504, passed on.
    ParentOriginError,
    /// A reload changed the policy so that this open tunnel would be routed otherwise
    /// (`[reload] open_tunnels = "recheck"`): it was closed.
    PolicyChanged,
    /// The admin listener refused the client: outside `[admin] allow` and the networks
    /// opened to the endpoint, or a change asked for without the token off loopback.
    AdminRefused,
}

/// Who failed, when something did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blame {
    Client,
    NextHop,
    Proxy,
}

impl Blame {
    /// The snake_case name, as in the access log; also the `blame` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Blame::Client => "client",
            Blame::NextHop => "next_hop",
            Blame::Proxy => "proxy",
        }
    }
}

impl CloseReason {
    /// Every reason, in the enum's order (docs/access-log.md has an example of each).
    pub const ALL: [CloseReason; 32] = {
        use CloseReason::*;
        [
            Finished,
            IdleTimeout,
            ClientError,
            ServerError,
            Shutdown,
            Denied,
            BadRequest,
            HeadTimeout,
            HeadTooLarge,
            DnsFailed,
            DnsTimeout,
            InternalAddress,
            ConnectFailed,
            ConnectTimeout,
            NoParent,
            ParentsDown,
            ParentRefused,
            ParentFailed,
            Cancelled,
            SniMismatch,
            TooManyHeaders,
            ConnectionLimit,
            ClientConnectionLimit,
            TunnelLifetime,
            AuthRequired,
            InterceptRefused,
            InterceptFailed,
            ParentUnreachable,
            ParentTimeout,
            ParentOriginError,
            PolicyChanged,
            AdminRefused,
        ]
    };

    /// The snake_case name, as in the access log; also the `reason` metric label.
    pub fn as_str(self) -> &'static str {
        use CloseReason::*;
        match self {
            Finished => "finished",
            IdleTimeout => "idle_timeout",
            ClientError => "client_error",
            ServerError => "server_error",
            Shutdown => "shutdown",
            Denied => "denied",
            BadRequest => "bad_request",
            HeadTimeout => "head_timeout",
            HeadTooLarge => "head_too_large",
            DnsFailed => "dns_failed",
            DnsTimeout => "dns_timeout",
            InternalAddress => "internal_address",
            ConnectFailed => "connect_failed",
            ConnectTimeout => "connect_timeout",
            NoParent => "no_parent",
            ParentsDown => "parents_down",
            ParentRefused => "parent_refused",
            ParentFailed => "parent_failed",
            Cancelled => "cancelled",
            SniMismatch => "sni_mismatch",
            TooManyHeaders => "too_many_headers",
            ConnectionLimit => "connection_limit",
            ClientConnectionLimit => "client_connection_limit",
            TunnelLifetime => "tunnel_lifetime",
            AuthRequired => "auth_required",
            InterceptRefused => "intercept_refused",
            InterceptFailed => "intercept_failed",
            ParentUnreachable => "parent_unreachable",
            ParentTimeout => "parent_timeout",
            ParentOriginError => "parent_origin_error",
            PolicyChanged => "policy_changed",
            AdminRefused => "admin_refused",
        }
    }

    pub fn blame(self) -> Option<Blame> {
        use CloseReason::*;
        match self {
            Finished | Denied | Cancelled | Shutdown | IdleTimeout | TunnelLifetime
            | PolicyChanged => None,
            ClientError
            | BadRequest
            | HeadTimeout
            | HeadTooLarge
            | SniMismatch
            | TooManyHeaders
            | ClientConnectionLimit
            | AuthRequired
            | InterceptRefused
            | AdminRefused => Some(Blame::Client),
            ServerError | DnsFailed | DnsTimeout | ConnectFailed | ConnectTimeout | ParentsDown
            | ParentRefused | ParentFailed | InterceptFailed | ParentUnreachable
            | ParentTimeout | ParentOriginError => Some(Blame::NextHop),
            InternalAddress | NoParent | ConnectionLimit => Some(Blame::Proxy),
        }
    }
}

impl From<RelayEnd> for CloseReason {
    fn from(end: RelayEnd) -> Self {
        match end {
            RelayEnd::Finished => CloseReason::Finished,
            RelayEnd::IdleTimeout => CloseReason::IdleTimeout,
            RelayEnd::Lifetime => CloseReason::TunnelLifetime,
            RelayEnd::ClientError => CloseReason::ClientError,
            RelayEnd::ServerError => CloseReason::ServerError,
            RelayEnd::Shutdown => CloseReason::Shutdown,
        }
    }
}

/// How the target was learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSource {
    Connect,
    Uri,
    /// The ClientHello's server name on a transparent TLS listener (or, without one, the
    /// redirected connection's original destination).
    Sni,
    /// The `Host` header on a transparent HTTP listener.
    Host,
}

/// The access-log record. The times and addresses are kept as values and written out as
/// text only by the access-log writer, off the connection's path. The fields and their
/// order are the access log's documented format (docs/access-log.md): add new ones at
/// the end.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// When the request or tunnel was accepted.
    #[serde(serialize_with = "as_rfc3339")]
    pub start: SystemTime,
    /// When it ended (the record is written then).
    #[serde(serialize_with = "as_rfc3339")]
    pub end: SystemTime,
    pub listener: &'static str,
    pub client: IpAddr,
    /// The client's source port, to match a record with a NAT or firewall log.
    pub client_port: u16,
    pub segment: Option<Arc<str>>,
    pub profile: Option<Arc<str>>,
    pub method: Option<String>,
    pub target: Option<String>,
    pub target_from: Option<TargetSource>,
    pub route: Option<Route>,
    pub category: Option<Arc<str>>,
    pub rule: Option<Arc<str>>,
    pub decision: Option<Reason>,
    pub parent: Option<Arc<str>>,
    /// With a TLS parent: whether the connection's TLS session was resumed.
    pub parent_tls_resumed: Option<bool>,
    pub server: Option<SocketAddr>,
    pub status: Option<u16>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub duration_ms: f64,
    /// The server name of a direct tunnel's ClientHello, as sent (SNI check).
    pub sni: Option<String>,
    /// The SNI check failed; with `reason` other than `sni_mismatch`, it was only logged.
    pub sni_mismatch: bool,
    /// The `Host` header of an absolute-form request when it names another host than
    /// the URI (the URI decides).
    pub host_mismatch: Option<String>,
    /// Set when tenant restrictions applied to this tunnel: what interception did.
    pub tenant_restrictions: Option<crate::intercept::TenantRecord>,
    pub reason: CloseReason,
    pub blame: Option<Blame>,
    pub error: Option<String>,
}

/// Fills in and finally writes one [`Outcome`].
pub struct Recorder {
    outcome: Outcome,
    started: Instant,
    log: AccessLog,
    /// The client's address and port (the record keeps the address only).
    peer: SocketAddr,
}

impl Recorder {
    pub fn new(log: &AccessLog, listener: &'static str, client: SocketAddr) -> Recorder {
        Recorder {
            outcome: Outcome {
                start: SystemTime::now(),
                listener,
                client: client.ip(),
                client_port: client.port(),
                ..Outcome::default()
            },
            started: Instant::now(),
            log: log.clone(),
            peer: client,
        }
    }

    pub fn client(&self) -> IpAddr {
        self.outcome.client
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn get(&mut self) -> &mut Outcome {
        &mut self.outcome
    }

    pub fn decided(&mut self, d: &Decision) {
        let o = &mut self.outcome;
        o.segment = d.segment.clone();
        o.profile = d.profile.clone();
        o.route = Some(d.route);
        o.category = d.category.clone();
        o.rule = d.rule.clone();
        o.decision = Some(d.reason);
    }

    pub fn end(&mut self, reason: CloseReason, status: Option<u16>) {
        self.outcome.reason = reason;
        if status.is_some() {
            self.outcome.status = status;
        }
    }
}

pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.outcome.end = SystemTime::now();
        self.outcome.duration_ms = millis(self.started.elapsed());
        self.outcome.blame = self.outcome.reason.blame();
        let outcome = std::mem::take(&mut self.outcome);
        // Metrics first: they count every record, even when the log is off or full.
        crate::telemetry::metrics().record(&outcome);
        self.log.write(outcome);
    }
}

/// A blank record: what a new connection starts from.
impl Default for Outcome {
    fn default() -> Outcome {
        Outcome {
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH,
            listener: "",
            client: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            client_port: 0,
            segment: None,
            profile: None,
            method: None,
            target: None,
            target_from: None,
            route: None,
            category: None,
            rule: None,
            decision: None,
            parent: None,
            parent_tls_resumed: None,
            server: None,
            status: None,
            bytes_up: 0,
            bytes_down: 0,
            dns_ms: None,
            connect_ms: None,
            duration_ms: 0.0,
            sni: None,
            sni_mismatch: false,
            host_mismatch: None,
            tenant_restrictions: None,
            reason: CloseReason::Cancelled,
            blame: None,
            error: None,
        }
    }
}

/// RFC 3339 UTC time with milliseconds, without a date-time dependency.
pub fn rfc3339(t: SystemTime) -> String {
    Rfc3339(t).to_string()
}

fn as_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Rfc3339(*t))
}

/// Formats as [`rfc3339`] straight into the writer: no string of its own.
struct Rfc3339(SystemTime);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self
            .0
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = d.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
            d.subsec_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_435_200_123);
        assert_eq!(rfc3339(t), "2026-11-23T12:00:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    /// The record keeps its times and client as values; the log line has them as text.
    #[test]
    fn the_record_writes_times_and_client_as_text() {
        let o = Outcome {
            start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_435_200_123),
            end: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_435_201_500),
            client: "2001:db8::7".parse().unwrap(),
            client_port: 50123,
            ..Outcome::default()
        };
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["start"], "2026-11-23T12:00:00.123Z");
        assert_eq!(v["end"], "2026-11-23T12:00:01.500Z");
        assert_eq!(v["client"], "2001:db8::7");
        assert_eq!(v["client_port"], 50123);
    }

    #[test]
    fn label_names_match_the_access_log() {
        use CloseReason::*;
        let listed = [
            Finished,
            IdleTimeout,
            ClientError,
            ServerError,
            Shutdown,
            Denied,
            BadRequest,
            HeadTimeout,
            HeadTooLarge,
            DnsFailed,
            DnsTimeout,
            InternalAddress,
            ConnectFailed,
            ConnectTimeout,
            NoParent,
            ParentsDown,
            ParentRefused,
            ParentFailed,
            Cancelled,
            SniMismatch,
            TooManyHeaders,
            ConnectionLimit,
            ClientConnectionLimit,
            TunnelLifetime,
            AuthRequired,
            InterceptRefused,
            InterceptFailed,
            ParentUnreachable,
            ParentTimeout,
            ParentOriginError,
            PolicyChanged,
            AdminRefused,
        ];
        for r in listed {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        // A reason added to the enum and to this list belongs in ALL too (and so in the
        // examples of docs/access-log.md).
        assert_eq!(listed, CloseReason::ALL);
        for b in [Blame::Client, Blame::NextHop, Blame::Proxy] {
            assert_eq!(serde_json::to_value(b).unwrap(), b.as_str());
        }
    }
}
