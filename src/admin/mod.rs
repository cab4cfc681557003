//! The admin listener: liveness and readiness for the appliance's monitoring, metrics,
//! the PAC, the status page, and reload. It is no back door: it uses the proxy's accept
//! loop with its own, small connection limits (so it can never take the proxy's
//! descriptors), a client outside `[admin] allow` (loopback by default) and the networks
//! opened to single endpoints is closed at accept, each request head must come within
//! `timeouts.head`, and anything that changes the appliance needs a bearer token unless
//! it comes from loopback. Every refusal is in the access log (`listener` `admin`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

pub mod pac;
mod ready;
pub mod status;

use crate::config::admin::{on_loopback, Endpoint};
use crate::ingress::accept::{self, Answer, Door, Refusal};
use crate::ingress::admission::Admission;
use crate::outcome::{CloseReason, Recorder};
use crate::server::{Context, Live};

pub const LISTENER: &str = "admin";

/// Open admin connections at most, and per client address: monitoring needs a few; a
/// flood of idle ones must not reach the proxy's own descriptors.
const MAX_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS_PER_CLIENT: usize = 16;
/// Longest an admin connection lives, whatever the client does.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Largest admin request head, and most header fields: requests are tiny.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

pub async fn serve(listener: TcpListener, live: Arc<Live>) {
    let door = Door {
        name: LISTENER,
        answer: Answer::Http,
        // Counted apart from the proxy's connections.
        admission: Some(Admission::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT)),
        refuse: outside_admin_networks,
    };
    accept::serve_door(listener, live, door, |live, tcp, peer| async move {
        let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection(live, tcp, peer)).await;
    })
    .await
}

/// A client in none of the admin networks is closed at accept.
fn outside_admin_networks(ctx: &Context, peer: SocketAddr) -> Option<Refusal> {
    (!ctx.config.admin.may_connect(peer.ip())).then_some((
        CloseReason::AdminRefused,
        None,
        "closed at accept: not in admin.allow (nor an endpoint's networks)",
    ))
}

/// One admin connection: one request, its head due within `timeouts.head`.
async fn connection(live: Arc<Live>, tcp: TcpStream, peer: SocketAddr) {
    let head = live.current().config.timeouts.head;
    let service = service_fn(move |req| {
        let live = live.clone();
        async move { Ok::<_, Infallible>(request(&live, &req, peer).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(false)
        .serve_connection(TokioIo::new(tcp), service)
        .await;
}

/// What an admin path is, for who may reach it; `/-/…` paths change the appliance.
fn endpoint(path: &str) -> Endpoint {
    match path {
        "/metrics" => Endpoint::Metrics,
        "/readyz" | "/healthz" => Endpoint::Readyz,
        "/proxy.pac" | "/wpad.dat" => Endpoint::Pac,
        _ => Endpoint::Other,
    }
}

async fn request(live: &Live, req: &Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let ctx = live.current();
    let client = peer.ip();
    let path = req.uri().path();
    if !ctx.config.admin.may_reach(client, endpoint(path)) {
        refused(
            &ctx,
            peer,
            req,
            CloseReason::AdminRefused,
            403,
            "not open to this network",
        );
        return text(
            StatusCode::FORBIDDEN,
            "not open to your network (admin.allow)\n".into(),
            "text/plain",
        );
    }
    if path.starts_with("/-/") {
        if let Some(refusal) = may_not_change(&ctx, req, peer) {
            return refusal;
        }
        if path == "/-/reload" {
            return reload(live, req).await;
        }
        return text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain");
    }
    route(&ctx, req, client)
}

/// Changing the appliance: from loopback, or with the bearer token of `admin.token_file`.
/// `Some(answer)` when this request may not.
fn may_not_change(
    ctx: &Context,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Option<Response<Full<Bytes>>> {
    if on_loopback(peer.ip()) {
        return None;
    }
    let Some(token) = &ctx.config.admin.token else {
        refused(
            ctx,
            peer,
            req,
            CloseReason::AdminRefused,
            403,
            "changes need admin.token_file off loopback",
        );
        return Some(text(
            StatusCode::FORBIDDEN,
            "changes are accepted from loopback only: no admin.token_file is configured\n".into(),
            "text/plain",
        ));
    };
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if token.admits(header) {
        return None;
    }
    let why = if header.is_some() {
        "admin token not accepted"
    } else {
        "no admin token"
    };
    refused(ctx, peer, req, CloseReason::AuthRequired, 401, why);
    let mut resp = text(
        StatusCode::UNAUTHORIZED,
        "a bearer token (admin.token_file) is needed\n".into(),
        "text/plain",
    );
    resp.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"lbo-proxy admin\""),
    );
    Some(resp)
}

/// One access-log record for a refused admin request (never its credentials).
fn refused(
    ctx: &Context,
    peer: SocketAddr,
    req: &Request<Incoming>,
    reason: CloseReason,
    status: u16,
    why: &str,
) {
    let mut rec = Recorder::new(&ctx.log, LISTENER, peer);
    rec.get().method = Some(req.method().to_string());
    rec.get().target = Some(req.uri().path().chars().take(300).collect());
    rec.get().error = Some(why.into());
    rec.end(reason, Some(status));
}

/// `POST /-/reload`: the same as SIGHUP, with the outcome in the answer.
async fn reload(live: &Live, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != http::Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST\n".into(),
            "text/plain",
        );
    }
    crate::systemd::notify("RELOADING=1");
    let result = live.reload().await;
    crate::systemd::notify("READY=1");
    match result {
        Ok(()) => text(StatusCode::OK, "reloaded\n".into(), "text/plain"),
        Err(e) => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("reload refused; the running configuration stays\n{e}\n"),
            "text/plain",
        ),
    }
}

fn route(ctx: &Context, req: &Request<Incoming>, client: IpAddr) -> Response<Full<Bytes>> {
    if let Some(resp) = pac_response(ctx, req, client) {
        return resp;
    }
    match req.uri().path() {
        "/" => status::response(ctx),
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/metrics" => text(
            StatusCode::OK,
            crate::telemetry::metrics().encode(),
            crate::telemetry::TEXT_FORMAT,
        ),
        "/readyz" => ready::response(ctx, req.uri().query()),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}

/// `/proxy.pac` and `/wpad.dat` for the requesting client's segment, or the one named by
/// `?segment=`. Also served on the proxy listener, so PCs can fetch it from the proxy.
pub fn pac_response<B>(
    ctx: &Context,
    req: &Request<B>,
    client: IpAddr,
) -> Option<Response<Full<Bytes>>> {
    if !matches!(req.uri().path(), "/proxy.pac" | "/wpad.dat") {
        return None;
    }
    let snap = &ctx.config.policy;
    let named = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("segment=")));
    let segment = match named {
        Some(name) => match snap.segment(name) {
            Some(s) => Some(s),
            None => {
                return Some(text(
                    StatusCode::NOT_FOUND,
                    format!("no segment {name:?}\n"),
                    "text/plain",
                ))
            }
        },
        None => snap.segment_of(client),
    };
    let profile = segment.map(|s| &snap.profiles()[s.profile]);
    let body = pac::render(snap, &ctx.config.pac, profile, segment.map(|s| &*s.name));
    Some(text(
        StatusCode::OK,
        body,
        "application/x-ns-proxy-autoconfig",
    ))
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}
