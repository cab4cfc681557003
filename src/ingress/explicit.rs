//! The explicit proxy listener: accept, read the first head, then either tunnel a CONNECT
//! on the raw socket or hand the connection (with the bytes read) to the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::head::{self, Head, HeadError, HeadLimits};
use super::pages::Page;
use super::{forward, tunnel};
use crate::outcome::{CloseReason, Recorder};
use crate::server::{Context, Live};
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
        |ctx, tcp, peer| async move { handle(&ctx, tcp, peer).await },
    )
    .await
}

async fn handle(ctx: &Arc<Context>, mut tcp: TcpStream, peer: SocketAddr) {
    let limits = HeadLimits {
        max_bytes: ctx.config.limits.max_head_bytes,
        max_headers: ctx.config.limits.max_headers,
    };
    let mut buf = BytesMut::with_capacity(4096);
    let read_head = async {
        loop {
            match head::parse(&buf, limits) {
                Ok(Head::Partial) => {}
                Ok(Head::Connect {
                    head_len,
                    authority,
                    proxy_authorization,
                }) => {
                    let auth = proxy_authorization.map(<[u8]>::to_vec);
                    return Ok(Some((head_len, authority.to_string(), auth)));
                }
                Ok(Head::Http) => return Ok(None),
                Err(e) => return Err(Some(e)),
            }
            match tcp.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(_) => {}
            }
        }
    };
    let parsed = match tokio::time::timeout(ctx.config.timeouts.head, read_head).await {
        Ok(p) => p,
        Err(_) => {
            if !buf.is_empty() {
                let mut rec = Recorder::new(&ctx.log, LISTENER, peer);
                rec.end(CloseReason::HeadTimeout, Some(408));
                reply(
                    &mut tcp,
                    StatusCode::REQUEST_TIMEOUT,
                    "Request head not received in time",
                )
                .await;
            }
            return;
        }
    };
    match parsed {
        Ok(Some((head_len, authority, auth))) => {
            // A copy, so that the head's buffer is not held for the tunnel's life.
            let rest = bytes::Bytes::copy_from_slice(&buf[head_len..]);
            drop(buf);
            connect(ctx, tcp, peer, &authority, auth.as_deref(), rest).await;
        }
        // Boxed, like the connect phase below: a connection's task keeps the largest state
        // it may reach, and an idle tunnel should not carry the HTTP server's.
        Ok(None) => {
            Box::pin(forward::serve(
                ctx.clone(),
                Prefixed::new(buf.freeze(), tcp),
                peer,
            ))
            .await
        }
        // The client went away before sending a request: nothing to log.
        Err(None) => {}
        Err(Some(e)) => {
            let mut rec = Recorder::new(&ctx.log, LISTENER, peer);
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
            reply(&mut tcp, status, &e.to_string()).await;
        }
    }
}

async fn connect(
    ctx: &Arc<Context>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    authority: &str,
    proxy_authorization: Option<&[u8]>,
    rest: bytes::Bytes,
) {
    let mut rec = Recorder::new(&ctx.log, LISTENER, peer);
    rec.get().method = Some("CONNECT".into());
    rec.get().target_from = Some(crate::outcome::TargetSource::Connect);
    if let Some(page) = super::client_auth::refused(ctx, &mut rec, proxy_authorization, true) {
        let challenge = super::client_auth::challenge_header();
        let _ = tcp.write_all(&page.raw_response_with(&challenge)).await;
        return;
    }
    let (target, decision) = match tunnel::decide(ctx, &mut rec, authority, None) {
        Ok(x) => x,
        Err(d) => {
            let _ = tcp
                .write_all(&super::pages::denied(&d).raw_response())
                .await;
            return;
        }
    };
    match Box::pin(tunnel::connect(ctx, &mut rec, &target, &decision)).await {
        Err(refusal) => {
            let _ = tcp.write_all(&refusal.page().raw_response()).await;
        }
        Ok(hop) => {
            if tcp
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_err()
            {
                rec.end(CloseReason::ClientError, Some(200));
                return;
            }
            tunnel::run(ctx, &mut rec, Prefixed::new(rest, tcp), &target, hop).await;
        }
    }
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
