//! The explicit proxy listener, and the client connection loop it shares with the
//! transparent HTTP listener: read a head with the limits in force, then either tunnel a
//! CONNECT on the raw socket or hand the connection (with the bytes read) to the HTTP
//! server, which gives it back at the next head it may not see. Every head of a
//! connection, the first or a later one, goes through [`read`] and [`refuse`]: the same
//! limits, statuses and reasons on every head.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::forward::{self, Mode};
use super::head::{self, Head, HeadError, HeadLimits};
use super::heads::Heads;
use super::pages::Page;
use super::tunnel;
use crate::outcome::{CloseReason, Recorder, TargetSource};
use crate::server::Live;
use crate::stream::Prefixed;

pub const LISTENER: &str = "explicit";

/// Accepts until shutdown; over a connection limit, clients get a 503 or 429 page.
pub async fn serve(listener: TcpListener, live: Arc<Live>) {
    let answer = super::accept::Answer::Http;
    super::accept::serve(
        listener,
        live,
        LISTENER,
        answer,
        |live, tcp, peer| async move { connection(live, tcp, peer, Mode::Explicit).await },
    )
    .await
}

/// What a head turned out to be.
enum Read {
    Connect {
        head_len: usize,
        authority: String,
        proxy_authorization: Option<Vec<u8>>,
    },
    Http,
    /// The client went away (or sent nothing in time) before a head began.
    Gone,
    TimedOut,
    Refused(HeadError),
}

/// One client connection, head after head, until it closes or tunnels.
pub async fn connection(live: Arc<Live>, tcp: TcpStream, peer: SocketAddr, mode: Mode) {
    let due = Instant::now() + live.current().config.timeouts.head;
    let mut next = (tcp, BytesMut::with_capacity(4096), due);
    loop {
        let (mut tcp, mut buf, due) = next;
        let ctx = live.current();
        let limits = HeadLimits {
            max_bytes: ctx.config.limits.max_head_bytes,
            max_headers: ctx.config.limits.max_headers,
        };
        let read = read(&mut tcp, &mut buf, limits, due).await;
        let rec = || Recorder::new(&ctx.log, mode.listener(), peer);
        match read {
            Read::Connect {
                head_len,
                authority,
                proxy_authorization,
            } => {
                if mode != Mode::Explicit {
                    let mut r = rec();
                    r.get().method = Some("CONNECT".into());
                    r.end(CloseReason::BadRequest, Some(400));
                    reply(
                        &mut tcp,
                        StatusCode::BAD_REQUEST,
                        "Only plain http:// requests are forwarded here.",
                    )
                    .await;
                    return;
                }
                // A copy, so that the head's buffer is not held for the tunnel's life.
                let rest = bytes::Bytes::copy_from_slice(&buf[head_len..]);
                drop(buf);
                // Boxed: a connection's task keeps the largest state it may reach.
                Box::pin(connect(
                    &live,
                    tcp,
                    peer,
                    authority,
                    proxy_authorization,
                    rest,
                ))
                .await;
                return;
            }
            Read::Http => {
                let heads = Heads::new(tcp, buf, live.clone(), due);
                match Box::pin(forward::serve(live.clone(), heads, peer, mode)).await {
                    Some(heads) => next = heads.into_parts(),
                    None => return,
                }
            }
            Read::Gone => return,
            Read::TimedOut => {
                // A connection that sent nothing is closed without a record.
                if !buf.is_empty() {
                    rec().end(CloseReason::HeadTimeout, Some(408));
                    reply(
                        &mut tcp,
                        StatusCode::REQUEST_TIMEOUT,
                        "Request head not received in time",
                    )
                    .await;
                }
                return;
            }
            Read::Refused(e) => {
                refuse(rec(), &mut tcp, &e).await;
                return;
            }
        }
    }
}

/// Reads until `buf` holds a complete head (it may already), within `limits` and by `due`.
async fn read(tcp: &mut TcpStream, buf: &mut BytesMut, limits: HeadLimits, due: Instant) -> Read {
    let reading = async {
        loop {
            match head::parse(buf, limits) {
                Ok(Head::Partial) => {}
                Ok(Head::Connect {
                    head_len,
                    authority,
                    proxy_authorization,
                }) => {
                    return Read::Connect {
                        head_len,
                        authority: authority.to_string(),
                        proxy_authorization: proxy_authorization.map(<[u8]>::to_vec),
                    }
                }
                Ok(Head::Http { .. }) => return Read::Http,
                Err(e) => return Read::Refused(e),
            }
            match tcp.read_buf(buf).await {
                Ok(0) | Err(_) => return Read::Gone,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout_at(due, reading)
        .await
        .unwrap_or(Read::TimedOut)
}

/// A head over a limit or with ambiguous framing: 431 or 400, recorded.
async fn refuse(mut rec: Recorder, tcp: &mut TcpStream, e: &HeadError) {
    rec.get().error = Some(e.to_string());
    let status = match e {
        HeadError::TooLarge(_) => {
            rec.end(CloseReason::HeadTooLarge, Some(431));
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        }
        HeadError::TooManyHeaders(_) => {
            rec.end(CloseReason::TooManyHeaders, Some(431));
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        }
        HeadError::Malformed | HeadError::Framing(_) => {
            rec.end(CloseReason::BadRequest, Some(400));
            StatusCode::BAD_REQUEST
        }
    };
    drop(rec);
    reply(tcp, status, &e.to_string()).await;
}

/// A CONNECT, decided and authenticated under the policy in force as it arrived.
async fn connect(
    live: &Arc<Live>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    authority: String,
    proxy_authorization: Option<Vec<u8>>,
    rest: bytes::Bytes,
) {
    let ctx = live.current();
    let mut rec = Recorder::new(&ctx.log, LISTENER, peer);
    rec.get().method = Some("CONNECT".into());
    rec.get().target_from = Some(TargetSource::Connect);
    let user = super::client_auth::check(&ctx, &mut rec, proxy_authorization.as_deref(), true);
    drop(proxy_authorization);
    let user = match user {
        Ok(user) => user,
        Err(page) => {
            let challenge = super::client_auth::challenge_header();
            let _ = tcp.write_all(&page.raw_response_with(&challenge)).await;
            return;
        }
    };
    let decided = tunnel::decide(&ctx, &mut rec, &authority, None);
    drop(authority);
    let (target, decision) = match decided {
        Ok(x) => x,
        Err(d) => {
            let _ = tcp
                .write_all(&super::pages::denied(&d).raw_response())
                .await;
            return;
        }
    };
    let hop = match Box::pin(tunnel::connect(&ctx, &mut rec, &target, &decision)).await {
        Err(refusal) => {
            let _ = tcp.write_all(&refusal.page().raw_response()).await;
            return;
        }
        Ok(hop) => hop,
    };
    let open = tunnel::register(live, &ctx, &mut rec, user, &target, &decision);
    // The registry keeps both; this task does not hold them for the tunnel's life.
    drop((target, decision));
    let open = match open {
        Ok(open) => open,
        Err(why) => {
            let _ = tcp
                .write_all(&tunnel::changed_page(&why).raw_response())
                .await;
            return;
        }
    };
    if tcp
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        rec.end(CloseReason::ClientError, Some(200));
        return;
    }
    let client = Prefixed::new(rest, tcp);
    tunnel::run(live, &ctx, &mut rec, client, hop, open, None).await;
}

async fn reply(tcp: &mut TcpStream, status: StatusCode, detail: &str) {
    let page = Page {
        status,
        title: status.canonical_reason().unwrap_or("Error"),
        detail: detail.to_string(),
        decision: None,
    };
    let _ = tcp.write_all(&page.raw_response()).await;
}
