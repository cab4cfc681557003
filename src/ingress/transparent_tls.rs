//! The transparent TLS listener: connections redirected to the appliance (nftables
//! `redirect` of port 443) with no proxy setting on the PC. The ClientHello's server name
//! is the target, with the port the client was connecting to; without a name, the
//! original destination address is. Then the same decision, next hop and relay as a
//! CONNECT, with the hello replayed. There is no HTTP to answer in: refusals just close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::client_hello::{self, Hello, HelloError};
use super::sni_check::First;
use super::{original_dst, tunnel};
use crate::outcome::{CloseReason, Recorder, TargetSource};
use crate::server::Live;
use crate::stream::Prefixed;

pub const LISTENER: &str = "transparent_tls";

/// Accepts until shutdown; over a connection limit, connections are closed.
pub async fn serve(listener: TcpListener, live: Arc<Live>) {
    let answer = super::accept::Answer::Close;
    super::accept::serve(
        listener,
        live,
        LISTENER,
        answer,
        |live, tcp, peer| async move { handle(&live, tcp, peer).await },
    )
    .await
}

/// How reading the ClientHello ended.
#[derive(Debug)]
enum Read {
    Hello(Option<String>),
    Bad(HelloError),
    Timeout,
    Closed,
}

async fn handle(live: &Arc<Live>, mut tcp: TcpStream, peer: SocketAddr) {
    let (max, wait) = {
        let t = &live.current().config.transparent;
        (t.max_hello_bytes, t.hello_timeout)
    };
    let original = original_dst::redirected(&tcp);
    let (buf, read) = read_hello(&mut tcp, max, wait).await;
    // The request is the ClientHello: decided under the policy in force when it came.
    let ctx = &live.current();
    let settings = &ctx.config.transparent;
    let sni = match read {
        Read::Hello(sni) => sni,
        // Nothing sent (a probe, a client that gave up): nothing to log.
        Read::Closed | Read::Timeout if buf.is_empty() => return,
        failed => {
            let mut rec = Recorder::new(&ctx.log, LISTENER, peer);
            rec.get().target_from = Some(TargetSource::Sni);
            let (reason, error) = match failed {
                Read::Timeout => (
                    CloseReason::HeadTimeout,
                    "ClientHello not complete within transparent.hello_timeout".to_string(),
                ),
                Read::Bad(e @ HelloError::TooLarge(_)) => {
                    (CloseReason::HeadTooLarge, e.to_string())
                }
                Read::Bad(e) => (CloseReason::BadRequest, e.to_string()),
                _ => (
                    CloseReason::ClientError,
                    "client closed before its ClientHello was complete".to_string(),
                ),
            };
            rec.get().error = Some(error);
            rec.end(reason, None);
            return;
        }
    };
    let mut rec = Recorder::new(&ctx.log, LISTENER, peer);
    rec.get().target_from = Some(TargetSource::Sni);
    rec.get().sni = sni.clone();
    let first = First::Hello(sni.clone());
    // No way to ask for credentials here: a segment that requires them is refused.
    if super::client_auth::refused(ctx, &mut rec, None, false).is_some() {
        rec.get().status = None;
        return;
    }
    let authority = match (sni, original) {
        (Some(name), Some(dst)) => format!("{name}:{}", dst.port()),
        (Some(name), None) => format!("{name}:{}", settings.tls_port),
        (None, Some(dst)) => dst.to_string(),
        (None, None) => {
            rec.get().error = Some(
                "ClientHello without a server name on a connection that was not redirected".into(),
            );
            rec.end(CloseReason::BadRequest, None);
            return;
        }
    };
    let Ok((target, decision)) = tunnel::decide(ctx, &mut rec, &authority, None) else {
        // An invalid name: recorded as a bad request; no HTTP status was sent.
        rec.get().status = None;
        return;
    };
    // Boxed: the connect phase's state is freed before the tunnel idles.
    match Box::pin(tunnel::connect(ctx, &mut rec, &target, &decision)).await {
        // Deny, or the next hop not reached: recorded; the client only sees the close.
        Err(_) => rec.get().status = None,
        Ok(hop) => {
            let open = tunnel::register(live, ctx, &mut rec, None, &target, &decision);
            drop((target, decision));
            match open {
                Err(_) => rec.get().status = None,
                Ok(open) => {
                    let client = Prefixed::new(buf.freeze(), tcp);
                    tunnel::run(live, ctx, &mut rec, client, hop, open, Some(first)).await;
                }
            }
        }
    }
}

/// Reads until the parser answers, at most `max` bytes and for at most `wait`: a
/// ClientHello may arrive in many TCP segments. Returns what was read, to replay.
async fn read_hello(tcp: &mut TcpStream, max: usize, wait: Duration) -> (BytesMut, Read) {
    let mut buf = BytesMut::with_capacity(max.min(4096));
    let reading = async {
        loop {
            match client_hello::parse(&buf, max) {
                Ok(Hello::NeedMore) => {}
                Ok(Hello::Complete { sni }) => return Read::Hello(sni),
                Err(e) => return Read::Bad(e),
            }
            // The parser answers `TooLarge` at `max` bytes, so there is room; never more.
            let room = max.saturating_sub(buf.len()) as u64;
            match (&mut *tcp).take(room).read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(_) => {}
            }
        }
    };
    let read = tokio::time::timeout(wait, reading)
        .await
        .unwrap_or(Read::Timeout);
    (buf, read)
}
