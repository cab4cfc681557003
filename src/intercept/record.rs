//! What tenant restrictions did to one connection, for its access-log record and the
//! `lbo_tenant_restrictions_total{outcome,reason}` counter: a closed set of words.

use std::sync::Arc;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantOutcome {
    /// Intercepted; every request forwarded carried the configured headers.
    Applied,
    /// The client would not talk to us (our certificate refused, no TLS): nothing passed.
    Refused,
    /// The proxy could not intercept (minting, the sign-in server's TLS or HTTP): the
    /// sign-in was denied, never tunnelled without the headers.
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantReason {
    /// Headers set on requests that had none of their own.
    HeadersAdded,
    /// At least one request carried its own restriction headers; they were replaced.
    HeadersReplaced,
    /// The TLS session was set up but no request came.
    NoRequest,
    /// The client's TLS stack rejected the minted certificate (CA not deployed to the PC).
    ClientRejectedCertificate,
    ClientHandshakeFailed,
    ClientHandshakeTimeout,
    MintFailed,
    /// The sign-in server's certificate did not verify against the trusted roots.
    OriginCertificateInvalid,
    OriginHandshakeFailed,
    /// A request could not be forwarded to the sign-in server.
    OriginRequestFailed,
    /// A tunnel to a sign-in network whose ClientHello names no host, or to a sign-in
    /// host whose ClientHello names another: it cannot be intercepted, so it is refused.
    NoServerName,
}

impl TenantReason {
    pub fn outcome(self) -> TenantOutcome {
        use TenantReason::*;
        match self {
            HeadersAdded | HeadersReplaced | NoRequest => TenantOutcome::Applied,
            ClientRejectedCertificate
            | ClientHandshakeFailed
            | ClientHandshakeTimeout
            | NoServerName => TenantOutcome::Refused,
            MintFailed | OriginCertificateInvalid | OriginHandshakeFailed | OriginRequestFailed => {
                TenantOutcome::Failed
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        use TenantReason::*;
        match self {
            HeadersAdded => "headers_added",
            HeadersReplaced => "headers_replaced",
            NoRequest => "no_request",
            ClientRejectedCertificate => "client_rejected_certificate",
            ClientHandshakeFailed => "client_handshake_failed",
            ClientHandshakeTimeout => "client_handshake_timeout",
            MintFailed => "mint_failed",
            OriginCertificateInvalid => "origin_certificate_invalid",
            OriginHandshakeFailed => "origin_handshake_failed",
            OriginRequestFailed => "origin_request_failed",
            NoServerName => "no_server_name",
        }
    }
}

impl TenantOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantOutcome::Applied => "applied",
            TenantOutcome::Refused => "refused",
            TenantOutcome::Failed => "failed",
        }
    }
}

/// The access log's `tenant_restrictions` object.
#[derive(Clone, Debug, Serialize)]
pub struct TenantRecord {
    /// The `[[tenant_restrictions.policy]]` that applied.
    pub policy: Arc<str>,
    pub outcome: TenantOutcome,
    pub reason: TenantReason,
    /// Requests forwarded with the headers set.
    pub requests: u32,
}
