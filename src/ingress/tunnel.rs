//! A tunnel, from decision to relay, shared by every way in (`CONNECT` on the explicit
//! listener, the transparent TLS listener): decide, reach the next hop (direct or
//! parent), register it with the server's open tunnels, check its ClientHello against the
//! policy in force (SNI check, tenant restrictions), then hand both streams to the relay.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use tokio::io::AsyncWriteExt;

use std::sync::atomic::Ordering;

use super::pages::{self, Page};
use super::proxy_auth::Admitted;
use super::sni_check::{self, First};
use super::tunnels::{Closed, OpenTunnel, Registered};
use crate::config::SniMode;
use crate::egress::ConnectError;
use crate::intercept::scope::SignIn;
use crate::outcome::{millis, CloseReason, Recorder};
use crate::policy::{self, Decision, Route, Target};
use crate::relay::{relay, Limits};
use crate::server::{Context, Live};
use crate::stream::{Endpoint, Prefixed, ServerStream};

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

/// Registers a connected tunnel with the server's open tunnels, decided again under the
/// policy in force now. `Err`: the policy changed while it connected (or the proxy is
/// stopping), recorded on `rec`; the client is to be told with [`changed_page`].
pub fn register(
    live: &Live,
    ctx: &Context,
    rec: &mut Recorder,
    user: Option<Admitted>,
    target: &Target,
    decision: &Decision,
) -> Result<Registered, Closed> {
    let listener = rec.get().listener;
    let mut entry = OpenTunnel::new(listener, rec.peer(), user, target.clone(), decision.clone());
    entry.server = rec.get().server;
    entry.parent = rec.get().parent.as_ref().and_then(|name| {
        ctx.parents
            .parents()
            .iter()
            .find(|p| p.config.name == *name)
            .map(|p| (name.clone(), super::recheck::parent_fingerprint(&p.config)))
    });
    live.tunnels.open(entry, live).inspect_err(|why| match why {
        Closed::PolicyChanged(e) => {
            rec.get().error = Some(format!("the policy changed while connecting: {e}"));
            rec.end(CloseReason::PolicyChanged, Some(503));
        }
        Closed::Shutdown => rec.end(CloseReason::Shutdown, Some(503)),
    })
}

/// What a client whose tunnel could not open is told.
pub fn changed_page(why: &Closed) -> Page<'static> {
    Page {
        status: StatusCode::SERVICE_UNAVAILABLE,
        title: "Try again",
        detail: match why {
            Closed::PolicyChanged(_) => {
                "The appliance's policy changed while this connection was being set up; try again."
                    .into()
            }
            Closed::Shutdown => "The appliance is restarting; try again.".into(),
        },
        decision: None,
    }
}

/// Relays an established, registered tunnel to its target and records how it ended.
/// `first` is what the client sent first when the listener read it already (a
/// transparent listener's ClientHello); otherwise a direct tunnel's ClientHello is read
/// here for the SNI check (domain fronting), and, when tenant restrictions apply to the
/// client, any tunnel's: a sign-in is intercepted by the server name it sends, on either
/// route. What was read is replayed. Closed from outside (a reload that changes its
/// route, the end of the drain), it ends with that reason.
pub async fn run<C>(
    live: &Live,
    ctx: &Context,
    rec: &mut Recorder,
    mut client: C,
    hop: NextHop,
    tunnel: Registered,
    first: Option<First>,
) where
    C: Endpoint,
{
    if !hop.early.is_empty() && client.write_all(&hop.early).await.is_err() {
        rec.end(CloseReason::ClientError, Some(200));
        return;
    }
    // In `lbo_active_tunnels` from the 200 until the relay ends, or is dropped when
    // cancelled (the first bytes' wait included).
    let _open = rec.get().route.map(crate::telemetry::OpenTunnel::new);
    let early = hop.early.len() as u64;
    // Boxed: what judging the first bytes holds is freed before the tunnel idles.
    let Some((mut client, mut server)) =
        Box::pin(first_bytes(live, ctx, rec, client, hop, &tunnel, first)).await
    else {
        return;
    };
    let limits = Limits {
        idle: ctx.config.timeouts.idle,
        lifetime: ctx.config.limits.max_tunnel_lifetime,
    };
    let stop = std::pin::pin!(tunnel.closed());
    let end = relay(&mut client, &mut server, limits, &tunnel.stats, stop).await;
    let o = rec.get();
    o.bytes_up = tunnel.stats.bytes_up.load(Ordering::Relaxed);
    o.bytes_down = tunnel.stats.bytes_down.load(Ordering::Relaxed) + early;
    match tunnel.why_closed() {
        Some(Closed::PolicyChanged(why)) => {
            rec.get().error = Some(why.clone());
            rec.end(CloseReason::PolicyChanged, Some(200));
        }
        _ => rec.end(end.into(), Some(200)),
    }
}

/// Reads and judges the client's first bytes when a check needs them, under the policy
/// in force when they came: the SNI check, tenant restrictions (an interception happens
/// here), and the tunnel decided again now that they are known. The two streams to relay,
/// or `None` when the tunnel ended here (recorded on `rec`).
async fn first_bytes<C>(
    live: &Live,
    ctx: &Context,
    rec: &mut Recorder,
    mut client: C,
    hop: NextHop,
    tunnel: &Registered,
    first: Option<First>,
) -> Option<(Prefixed<C>, ServerStream)>
where
    C: Endpoint,
{
    let target = &tunnel.target;
    let route = rec.get().route;
    let (segment, profile) = (rec.get().segment.clone(), rec.get().profile.clone());
    let tenant_applies = ctx.config.tenant.as_ref().is_some_and(|tr| {
        tr.scope
            .policy_for(segment.as_deref(), profile.as_deref())
            .is_some()
    });
    let check = ctx.config.sni_check;
    let in_signin_network = ctx
        .config
        .tenant
        .as_ref()
        .is_some_and(|tr| match target.host {
            crate::policy::Host::Ip(ip) => tr.scope.networks.iter().any(|n| n.contains(&ip)),
            crate::policy::Host::Name(_) => false,
        });
    let read_it = match route {
        Some(Route::Direct) => check.mode != SniMode::Off || tenant_applies,
        Some(Route::Upstream) => tenant_applies && (target.port == 443 || in_signin_network),
        _ => false,
    };
    let mut read = Bytes::new();
    let first = match first {
        Some(f) => Some(f),
        None if read_it => {
            let (seen, how) =
                sni_check::read_first(&mut client, check.max_hello_bytes, ctx.config.timeouts.head)
                    .await;
            read = seen;
            match how {
                sni_check::Read::First(f) => Some(f),
                // Nothing sent: the relay sees the end, nothing can reach the destination.
                sni_check::Read::Closed if read.is_empty() => None,
                sni_check::Read::Closed => {
                    rec.get().error =
                        Some("client closed before its ClientHello was complete".into());
                    rec.end(CloseReason::ClientError, Some(200));
                    return None;
                }
                sni_check::Read::Timeout => {
                    rec.get().error = Some("ClientHello not complete within timeouts.head".into());
                    rec.end(CloseReason::HeadTimeout, Some(200));
                    return None;
                }
            }
        }
        None => None,
    };
    let _ = tunnel.first.set(first);
    let first = tunnel.first.get().and_then(Option::as_ref);
    // The policy in force when the first bytes came decides what they mean.
    let now = live.current();
    let sign_in = match &now.config.tenant {
        Some(tr) => tr
            .scope
            .sign_in(segment.as_deref(), profile.as_deref(), target, first),
        None => SignIn::Blind,
    };
    let _ = tunnel.tenant.set(sign_in.fingerprint());
    if let (Some(f), Some(Route::Direct)) = (first, route) {
        if check.mode != SniMode::Off {
            let v = sni_check::judge(&now.config.policy, rec.client(), target, f, check.non_tls);
            rec.get().sni = v.sni;
            if let Some(why) = v.mismatch {
                tracing::debug!(client = %rec.client(), %target, error = %why, "sni check");
                rec.get().sni_mismatch = true;
                rec.get().error = Some(why);
                if check.mode == SniMode::Enforce {
                    rec.end(CloseReason::SniMismatch, Some(200));
                    return None;
                }
            }
        }
    }
    if let Some(why) = live.tunnels.settle(tunnel, live) {
        rec.get().error = Some(why);
        rec.end(CloseReason::PolicyChanged, Some(200));
        return None;
    }
    let client = Prefixed::new(read, client);
    match sign_in {
        SignIn::Blind => Some((client, hop.stream)),
        SignIn::Intercept { host, plan } => {
            if let Some(tr) = &now.config.tenant {
                // Boxed: the interception's HTTP machinery is not carried by every tunnel.
                Box::pin(crate::intercept::intercept(
                    &now,
                    &tr.interceptor,
                    rec,
                    client,
                    host,
                    hop,
                    plan,
                    tunnel,
                ))
                .await;
            }
            None
        }
        SignIn::Refuse { policy, why } => {
            tracing::warn!(%target, policy = %policy.name, why, "tenant restrictions: sign-in refused");
            rec.get().tenant_restrictions = Some(crate::intercept::TenantRecord {
                policy: policy.name.clone(),
                outcome: crate::intercept::TenantOutcome::Refused,
                reason: crate::intercept::TenantReason::NoServerName,
                requests: 0,
            });
            rec.get().error = Some(why.into());
            rec.end(CloseReason::InterceptRefused, Some(200));
            None
        }
    }
}
