//! A CONNECT, from decision to relay, shared by the raw fast path and the HTTP server's
//! upgrade path: decide, reach the next hop (direct or parent), check a direct tunnel's
//! ClientHello against the same policy (`sni_check`), then hand both streams to the relay.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use tokio::io::AsyncWriteExt;

use super::pages::{self, Page};
use super::sni_check;
use crate::config::SniMode;
use crate::egress::ConnectError;
use crate::outcome::{millis, CloseReason, Recorder};
use crate::policy::{self, Decision, Route, Target};
use crate::relay::{relay, Limits, RelayStats};
use crate::server::Context;
use crate::stream::{Endpoint, Prefixed, ServerStream};
use crate::telemetry::OpenTunnel;

/// A connected next hop.
pub struct NextHop {
    pub stream: ServerStream,
    /// Bytes the parent sent after its CONNECT reply, to pass to the client first.
    pub early: Bytes,
}

/// What the client is told when the next hop is not reached.
pub enum Refusal {
    Decision(Decision),
    Connect(ConnectError),
}

impl Refusal {
    pub fn page(&self) -> Page<'_> {
        match self {
            Refusal::Decision(d) => pages::denied(d),
            Refusal::Connect(e) => Page {
                status: e.status(),
                title: e.title(),
                detail: match e {
                    ConnectError::NoParent => "This destination is not on the local breakout allowlist and must go through the security cloud (セキュリティクラウド), but no security cloud proxy is configured on this appliance. It is never sent directly.".to_string(),
                    _ => e.to_string(),
                },
                decision: None,
            },
        }
    }

    pub fn status(&self) -> StatusCode {
        self.page().status
    }
}

/// Normalises the authority and decides.
pub fn decide(
    ctx: &Context,
    rec: &mut Recorder,
    authority: &str,
    default_port: Option<u16>,
) -> Result<(Target, Decision), Decision> {
    let target = match Target::parse_authority(authority, default_port) {
        Ok(t) => t,
        Err(e) => {
            let d = Decision::invalid_target();
            rec.decided(&d);
            rec.get().target = Some(authority.chars().take(300).collect());
            rec.get().error = Some(e.to_string());
            rec.end(CloseReason::BadRequest, Some(400));
            return Err(d);
        }
    };
    rec.get().target = Some(target.to_string());
    let d = policy::decide::decide(&ctx.config.policy, rec.client(), &target);
    rec.decided(&d);
    Ok((target, d))
}

/// Reaches the next hop the decision names. Deny never opens a socket.
pub async fn connect(
    ctx: &Context,
    rec: &mut Recorder,
    target: &Target,
    d: &Decision,
) -> Result<NextHop, Refusal> {
    let started = Instant::now();
    let result = match d.route {
        Route::Deny => {
            rec.end(CloseReason::Denied, Some(pages::denied(d).status.as_u16()));
            return Err(Refusal::Decision(d.clone()));
        }
        Route::Direct => ctx.direct.connect(target).await.map(|c| {
            rec.get().server = Some(c.peer);
            rec.get().dns_ms = c.dns_time.map(millis);
            NextHop {
                stream: ServerStream::Tcp(c.stream),
                early: Bytes::new(),
            }
        }),
        Route::Upstream => ctx
            .parents
            .connect_tunnel(rec.client(), target)
            .await
            .map(|p| {
                rec.get().parent = Some(p.parent);
                rec.get().parent_tls_resumed = p.tls_resumed;
                NextHop {
                    stream: p.stream,
                    early: p.early,
                }
            }),
    };
    rec.get().connect_ms = Some(millis(started.elapsed()));
    result.map_err(|e| {
        if let Some(parent) = e.parent() {
            rec.get().parent = Some(parent.into());
        }
        rec.get().error = Some(e.to_string());
        rec.end(e.reason(), Some(e.status().as_u16()));
        Refusal::Connect(e)
    })
}

/// Relays an established tunnel to `target` and records how it ended. A direct tunnel
/// first passes the SNI check (domain fronting); what it read is replayed. A sign-in host
/// under tenant restrictions is intercepted instead, on either route.
pub async fn run<C>(ctx: &Context, rec: &mut Recorder, mut client: C, target: &Target, hop: NextHop)
where
    C: Endpoint,
{
    if !hop.early.is_empty() && client.write_all(&hop.early).await.is_err() {
        rec.end(CloseReason::ClientError, Some(200));
        return;
    }
    // In `lbo_active_tunnels` from the 200 until the relay ends, or is dropped when
    // cancelled (the SNI check's wait included).
    let _open = rec.get().route.map(OpenTunnel::new);
    if let Some(tr) = &ctx.config.tenant {
        let (segment, profile) = (rec.get().segment.clone(), rec.get().profile.clone());
        if let Some(plan) = target
            .host
            .as_name()
            .and_then(|host| tr.scope.plan(segment.as_deref(), profile.as_deref(), host))
        {
            // Boxed: the interception's HTTP machinery is not carried by every tunnel.
            Box::pin(crate::intercept::intercept(
                ctx,
                &tr.interceptor,
                rec,
                client,
                target,
                hop,
                plan,
            ))
            .await;
            return;
        }
    }
    let check = ctx.config.sni_check;
    let read = if rec.get().route == Some(Route::Direct) && check.mode != SniMode::Off {
        let head = ctx.config.timeouts.head;
        let policy = &ctx.config.policy;
        match Box::pin(sni_check::guard(
            &check,
            policy,
            head,
            rec,
            &mut client,
            target,
        ))
        .await
        {
            Some(read) => read,
            // Dropping the destination's stream closes it: nothing was sent.
            None => return,
        }
    } else {
        Bytes::new()
    };
    let mut client = Prefixed::new(read, client);
    let mut server = hop.stream;
    let stats = RelayStats::default();
    let limits = Limits {
        idle: ctx.config.timeouts.idle,
        lifetime: ctx.config.limits.max_tunnel_lifetime,
    };
    let stop = std::pin::pin!(ctx.drained());
    let end = relay(&mut client, &mut server, limits, &stats, stop).await;
    let o = rec.get();
    o.bytes_up = stats.bytes_up.into_inner();
    o.bytes_down = stats.bytes_down.into_inner() + hop.early.len() as u64;
    rec.end(end.into(), Some(200));
}
