//! One intercepted sign-in connection: TLS with the client under a minted leaf (HTTP/1.1 or
//! HTTP/2 by ALPN), TLS with the sign-in server over the tunnel's next hop (verified against
//! the trusted roots), and every request passed on with the restriction headers replaced.
//! When any step fails the connection closes or gets an error page; its bytes never go
//! through unchanged.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1 as client1, http2 as client2};
use hyper::server::conn::{http1 as server1, http2 as server2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::counted::{Counted, Counts};
use super::record::{TenantReason, TenantRecord};
use super::scope::Plan;
use super::Interceptor;
use crate::ingress::tunnel::NextHop;
use crate::ingress::tunnels::{Closed, OpenTunnel};
use crate::outcome::{CloseReason, Recorder};
use crate::server::Context;
use crate::stream::Prefixed;

type Body = Either<Incoming, Full<Bytes>>;

/// Intercepts an established tunnel to the sign-in host `host` (what the ClientHello
/// names) and records how it went; `tunnel` closes it from outside (a reload, shutdown).
#[allow(clippy::too_many_arguments)]
pub async fn intercept<C>(
    ctx: &Context,
    interceptor: &Interceptor,
    rec: &mut Recorder,
    client: C,
    host: &str,
    hop: NextHop,
    plan: Plan<'_>,
    tunnel: &OpenTunnel,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let target = host;
    let host = host.to_string();
    let record = |reason: TenantReason, requests: u32| TenantRecord {
        policy: plan.policy.name.clone(),
        outcome: reason.outcome(),
        reason,
        requests,
    };
    let fail = |rec: &mut Recorder, reason: TenantReason, error: String| {
        tracing::warn!(target = %target, policy = %plan.policy.name, reason = reason.as_str(), %error, "tenant restrictions: sign-in not intercepted, denied");
        rec.get().tenant_restrictions = Some(record(reason, 0));
        rec.get().error = Some(error);
        let close = match reason.outcome() {
            super::TenantOutcome::Refused => CloseReason::InterceptRefused,
            _ => CloseReason::InterceptFailed,
        };
        rec.end(close, Some(200));
    };
    let server_config = match interceptor.client_side(&host) {
        Ok(c) => c,
        Err(e) => return fail(rec, TenantReason::MintFailed, e.to_string()),
    };
    let counts = Arc::new(Counts::default());
    let client = Counted::new(client, counts.clone());
    let accepted = tokio::time::timeout(
        ctx.config.timeouts.head,
        TlsAcceptor::from(server_config).accept(client),
    )
    .await;
    let count = |rec: &mut Recorder| {
        rec.get().bytes_up = counts.up.load(Ordering::Relaxed);
        rec.get().bytes_down = counts.down.load(Ordering::Relaxed);
    };
    count(rec);
    let tls = match accepted {
        Err(_) => {
            return fail(
                rec,
                TenantReason::ClientHandshakeTimeout,
                "client TLS handshake not complete within timeouts.head".into(),
            )
        }
        Ok(Err(e)) => {
            return fail(
                rec,
                client_reason(&e),
                format!("client TLS: {}", crate::error_text::io(&e)),
            )
        }
        Ok(Ok(tls)) => tls,
    };
    let client_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let bridge = Arc::new(Bridge {
        host: host.clone(),
        headers: plan.headers.to_vec(),
        origin: connect_origin(ctx, interceptor, &host, hop).await,
        requests: AtomicU32::new(0),
        replaced: AtomicBool::new(false),
        failure: Mutex::new(None),
    });
    let driver = match &bridge.origin {
        Origin::Failed(..) => None,
        Origin::H1(_, conn) | Origin::H2(_, conn) => conn
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .map(tokio::spawn),
    };
    let service = {
        let bridge = bridge.clone();
        service_fn(move |req| forward(bridge.clone(), req))
    };
    let io = TokioIo::new(tls);
    let served = async {
        if client_h2 {
            server2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        } else {
            // A request head, the first or the next on a kept-alive connection, must come
            // within `timeouts.head`, so an idle intercepted connection does not stay open.
            server1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(ctx.config.timeouts.head)
                .serve_connection(io, service)
                .await
        }
    };
    let shutdown = tokio::select! {
        r = served => r.err().map(|e| e.to_string()),
        _ = tunnel.closed() => Some(match tunnel.why_closed() {
            Some(Closed::PolicyChanged(why)) => why.clone(),
            _ => "shutdown".to_string(),
        }),
    };
    if let Some(d) = driver {
        d.abort();
    }
    count(rec);
    let requests = bridge.requests.load(Ordering::Relaxed);
    let failure = bridge.failure.lock().ok().and_then(|mut f| f.take());
    let reason = match (&bridge.origin, failure) {
        (Origin::Failed(reason, error), _) => return fail(rec, *reason, error.clone()),
        (_, Some((reason, error))) => return fail(rec, reason, error),
        _ if requests == 0 => TenantReason::NoRequest,
        _ if bridge.replaced.load(Ordering::Relaxed) => TenantReason::HeadersReplaced,
        _ => TenantReason::HeadersAdded,
    };
    tracing::info!(target = %target, policy = %plan.policy.name, requests, reason = reason.as_str(), "tenant restrictions applied");
    rec.get().tenant_restrictions = Some(record(reason, requests));
    if let Some(e) = shutdown {
        rec.get().error = Some(e);
    }
    let end = match tunnel.why_closed() {
        Some(Closed::PolicyChanged(_)) => CloseReason::PolicyChanged,
        _ => CloseReason::Finished,
    };
    rec.end(end, Some(200));
}

/// Names the client's refusal: an alert about our certificate means the CA is not trusted
/// on that PC.
fn client_reason(e: &std::io::Error) -> TenantReason {
    use rustls::AlertDescription as A;
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::AccessDenied,
        )) => TenantReason::ClientRejectedCertificate,
        _ => TenantReason::ClientHandshakeFailed,
    }
}

/// The sign-in server connection's task, taken once to be spawned.
type Driver<T> = Mutex<Option<T>>;
type OriginIo = TokioIo<tokio_rustls::client::TlsStream<Prefixed<crate::stream::ServerStream>>>;
type Drive = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The sign-in server's side: an HTTP/1.1 or HTTP/2 connection, or why there is none.
enum Origin {
    /// One request at a time: the lock is held until the response head is in.
    H1(
        tokio::sync::Mutex<client1::SendRequest<Incoming>>,
        Driver<Drive>,
    ),
    H2(client2::SendRequest<Incoming>, Driver<Drive>),
    Failed(TenantReason, String),
}

/// What every request of one intercepted connection shares.
struct Bridge {
    host: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    origin: Origin,
    requests: AtomicU32,
    replaced: AtomicBool,
    failure: Mutex<Option<(TenantReason, String)>>,
}

async fn connect_origin(
    ctx: &Context,
    interceptor: &Interceptor,
    host: &str,
    hop: NextHop,
) -> Origin {
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        return Origin::Failed(
            TenantReason::OriginHandshakeFailed,
            format!("{host:?} is not a TLS server name"),
        );
    };
    let stream = Prefixed::new(hop.early, hop.stream);
    let connecting = TlsConnector::from(interceptor.upstream.clone()).connect(name, stream);
    let tls = match tokio::time::timeout(ctx.config.timeouts.connect, connecting).await {
        Err(_) => {
            return Origin::Failed(
                TenantReason::OriginHandshakeFailed,
                "sign-in server TLS handshake timed out".into(),
            )
        }
        Ok(Err(e)) => {
            let invalid = matches!(
                e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
                Some(rustls::Error::InvalidCertificate(_))
            );
            let reason = if invalid {
                TenantReason::OriginCertificateInvalid
            } else {
                TenantReason::OriginHandshakeFailed
            };
            return Origin::Failed(
                reason,
                format!("sign-in server TLS: {}", crate::error_text::io(&e)),
            );
        }
        Ok(Ok(tls)) => tls,
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io: OriginIo = TokioIo::new(tls);
    let failed = |e: hyper::Error| {
        Origin::Failed(
            TenantReason::OriginHandshakeFailed,
            format!("sign-in server HTTP: {e}"),
        )
    };
    if h2 {
        match client2::handshake(TokioExecutor::new(), io).await {
            Ok((send, conn)) => Origin::H2(
                send,
                Mutex::new(Some(Box::pin(async move {
                    let _ = conn.await;
                }))),
            ),
            Err(e) => failed(e),
        }
    } else {
        match client1::handshake(io).await {
            Ok((send, conn)) => Origin::H1(
                tokio::sync::Mutex::new(send),
                Mutex::new(Some(Box::pin(async move {
                    let _ = conn.await;
                }))),
            ),
            Err(e) => failed(e),
        }
    }
}

/// One request: checked to be for the intercepted host, headers replaced, passed on in
/// the sign-in server's HTTP version.
async fn forward(
    bridge: Arc<Bridge>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let Some(authority) = authority(&req) else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "A request without a host name.",
        ));
    };
    if !host_of(&authority).eq_ignore_ascii_case(&bridge.host) {
        return Ok(page(
            StatusCode::MISDIRECTED_REQUEST,
            "This connection is for the sign-in host it was opened to; another host name was asked for.",
        ));
    }
    if super::headers::replace(req.headers_mut(), &bridge.headers)
        == super::headers::Applied::Replaced
    {
        bridge.replaced.store(true, Ordering::Relaxed);
    }
    let sent = match &bridge.origin {
        Origin::H2(send, _) => {
            let path = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            match Uri::try_from(format!("https://{authority}{path}")) {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => {
                    return Ok(page(
                        StatusCode::BAD_REQUEST,
                        "A request target that cannot be passed on.",
                    ))
                }
            }
            req.headers_mut().remove(header::HOST);
            *req.version_mut() = Version::HTTP_2;
            send.clone().send_request(req).await
        }
        Origin::H1(send, _) => {
            if req.uri().authority().is_some() {
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                if let Ok(uri) = Uri::try_from(path) {
                    *req.uri_mut() = uri;
                }
            }
            if !req.headers().contains_key(header::HOST) {
                if let Ok(v) = HeaderValue::from_str(&authority) {
                    req.headers_mut().insert(header::HOST, v);
                }
            }
            *req.version_mut() = Version::HTTP_11;
            let mut send = send.lock().await;
            match send.ready().await {
                Ok(()) => send.send_request(req).await,
                Err(e) => Err(e),
            }
        }
        Origin::Failed(_, error) => {
            return Ok(page(
                StatusCode::BAD_GATEWAY,
                &format!("Sign-in refused: tenant restrictions could not be applied ({error})."),
            ))
        }
    };
    match sent {
        Ok(resp) => {
            bridge.requests.fetch_add(1, Ordering::Relaxed);
            Ok(resp.map(Either::Left))
        }
        Err(e) => {
            let error = format!("sign-in server HTTP: {e}");
            if let Ok(mut f) = bridge.failure.lock() {
                f.get_or_insert((TenantReason::OriginRequestFailed, error.clone()));
            }
            Ok(page(
                StatusCode::BAD_GATEWAY,
                &format!("Sign-in refused: {error}."),
            ))
        }
    }
}

/// The request's host and port as the client named it (HTTP/2 `:authority`, else `Host`).
fn authority(req: &Request<Incoming>) -> Option<String> {
    match req.uri().authority() {
        Some(a) => Some(a.as_str().to_string()),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string),
    }
}

/// `host` of `host:port` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((h, port))
            if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') =>
        {
            h
        }
        _ => authority,
    }
    .trim_end_matches('.')
}

/// A short error page the user sees instead of the sign-in.
fn page(status: StatusCode, detail: &str) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(format!("{detail}\n")))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_an_authority() {
        assert_eq!(
            host_of("login.microsoftonline.com:443"),
            "login.microsoftonline.com"
        );
        assert_eq!(
            host_of("login.microsoftonline.com"),
            "login.microsoftonline.com"
        );
        assert_eq!(
            host_of("login.microsoftonline.com.:8443"),
            "login.microsoftonline.com"
        );
        assert_eq!(host_of("[::1]:443"), "[::1]");
        assert_eq!(host_of("::1"), "::1");
    }
}
