//! Plain `http://` requests in absolute form, served by hyper on the client connection
//! (keep-alive honoured): each request is decided and authenticated under the policy in
//! force when it arrives, then sent in origin form to the origin (direct) or in absolute
//! form to a parent (upstream). hyper reads the connection through [`Heads`], which
//! checks each head as the first was checked and stops hyper at a head it may not see
//! (a CONNECT, a head over a limit): the listener takes the connection back from there.
//! The transparent HTTP listener uses the same server, with origin-form requests routed
//! by `Host`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use super::explicit::LISTENER;
use super::heads::{Heads, Stop};
use super::pages::{self, Page};
use super::tunnel::{self, Refusal};
use crate::outcome::{CloseReason, Recorder, TargetSource};
use crate::policy::Route;
use crate::server::{Context, Live};
use crate::stream::ServerStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// The HTTP server's own read buffer bound by default (hyper's): heads are bounded by
/// [`Heads`] before it sees them, so this only has to hold the largest allowed one.
const HTTP_BUF_SIZE: usize = 8192 + 4096 * 100;

/// The `Via` token this appliance adds.
const VIA: &str = "1.1 lbo-proxy";

/// How requests on a connection name their destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The explicit proxy: absolute-form URIs, and CONNECT.
    Explicit,
    /// A transparent listener: origin-form requests routed by `Host`, whose default port
    /// is `port` (the original destination's, or 80). No CONNECT, no PAC.
    Transparent { port: u16 },
}

impl Mode {
    pub fn listener(self) -> &'static str {
        match self {
            Mode::Explicit => LISTENER,
            Mode::Transparent { .. } => super::transparent_http::LISTENER,
        }
    }
}

/// Serves requests until the connection ends, or until [`Heads`] stops at a head the
/// HTTP server may not see: then the connection is handed back.
pub async fn serve(live: Arc<Live>, io: Heads, peer: SocketAddr, mode: Mode) -> Option<Heads> {
    let limits = live.current().config.limits;
    let idle_hop: IdleHop = Arc::new(tokio::sync::Mutex::new(None));
    let service = {
        let live = live.clone();
        service_fn(move |req| {
            let live = live.clone();
            let idle_hop = idle_hop.clone();
            async move { Ok::<_, Infallible>(handle(live, req, peer, mode, idle_hop).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Heads bounds the wait for a head, and the heads themselves.
        .header_read_timeout(None)
        .max_headers(limits.max_headers)
        .max_buf_size(HTTP_BUF_SIZE.max(limits.max_head_bytes + 8192))
        // Stopping at a head looks like the client's end of stream: the response being
        // written must still go out.
        .half_close(true)
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(io), service)
        .without_shutdown();
    match conn.await {
        Ok(parts) if parts.read_buf.is_empty() => {
            let heads = parts.io.into_inner();
            (heads.stopped() == Some(Stop::NextHead)).then_some(heads)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "http connection ended with an error");
            if e.is_parse() {
                refused_head(&live.current().log, peer, mode, &e);
            }
            None
        }
    }
}

/// A request head the HTTP server refused itself although [`Heads`] let it through (a
/// form httparse reads but hyper does not, such as `Transfer-Encoding` on HTTP/1.0): it
/// answered and closed the connection. Recorded like the heads the listener refuses.
fn refused_head(
    log: &crate::access_log::AccessLog,
    peer: SocketAddr,
    mode: Mode,
    e: &hyper::Error,
) {
    let mut rec = Recorder::new(log, mode.listener(), peer);
    rec.get().error = Some(e.to_string());
    if e.is_parse_too_large() {
        rec.end(CloseReason::HeadTooLarge, Some(431));
    } else {
        rec.end(CloseReason::BadRequest, Some(400));
    }
}

/// The next-hop connection of the previous request on this client connection, kept for
/// the next request to the same direct origin, or through the security cloud.
pub(super) type IdleHop = Arc<tokio::sync::Mutex<Option<Kept>>>;

pub(super) enum Kept {
    Direct(KeptHop),
    Upstream(crate::egress::parent::KeptLink<CountingBody>),
}

pub(super) struct KeptHop {
    key: String,
    /// The context it was connected under: after a reload it carries no request.
    generation: u64,
    sender: SendRequest<CountingBody>,
    server: Option<std::net::SocketAddr>,
}

/// A connection ready to carry a request: reused, or freshly connected.
enum Hop {
    Kept(KeptHop),
    New(ServerStream),
}

async fn handle(
    live: Arc<Live>,
    req: Request<Incoming>,
    peer: SocketAddr,
    mode: Mode,
    idle_hop: IdleHop,
) -> Response<ProxyBody> {
    // The policy in force when this request arrived decides it.
    let ctx = live.current();
    let mut rec = Recorder::new(&ctx.log, mode.listener(), peer);
    rec.get().method = Some(req.method().to_string());
    let explicit = mode == Mode::Explicit;
    let credentials = if explicit {
        req.headers()
            .get(header::PROXY_AUTHORIZATION)
            .map(HeaderValue::as_bytes)
    } else {
        None
    };
    if let Some(p) = super::client_auth::refused(&ctx, &mut rec, credentials, explicit) {
        return auth_required(p);
    }
    rec.get().target_from = Some(TargetSource::Uri);
    let mut default_port = 80;
    let authority = match (req.uri().scheme_str(), req.uri().authority()) {
        (Some("http"), Some(a)) => a.as_str().to_string(),
        (Some(_), Some(_)) => {
            rec.end(CloseReason::BadRequest, Some(400));
            return page(Page {
                status: StatusCode::BAD_REQUEST,
                title: "Unsupported scheme",
                detail: "Only http:// URIs are forwarded; use CONNECT for https.".into(),
                decision: None,
            });
        }
        (None, None) if req.method() != Method::CONNECT => {
            let Mode::Transparent { port } = mode else {
                return not_a_proxy_request(&ctx, &mut rec, &req, peer);
            };
            rec.get().target_from = Some(TargetSource::Host);
            default_port = port;
            match req.headers().get(header::HOST).map(|h| h.to_str()) {
                Some(Ok(host)) if !host.is_empty() => host.to_string(),
                _ => {
                    rec.end(CloseReason::BadRequest, Some(400));
                    return page(Page {
                        status: StatusCode::BAD_REQUEST,
                        title: "No Host header",
                        detail: "The request names no host to forward it to.".into(),
                        decision: None,
                    });
                }
            }
        }
        _ if mode == Mode::Explicit => return not_a_proxy_request(&ctx, &mut rec, &req, peer),
        _ => {
            rec.end(CloseReason::BadRequest, Some(400));
            return page(Page {
                status: StatusCode::BAD_REQUEST,
                title: "Unsupported request",
                detail: "Only plain http:// requests are forwarded here.".into(),
                decision: None,
            });
        }
    };
    let (target, decision) = match tunnel::decide(&ctx, &mut rec, &authority, Some(default_port)) {
        Ok(x) => x,
        Err(d) => return page(pages::denied(&d)),
    };
    if rec.get().target_from == Some(TargetSource::Uri) {
        rec.get().host_mismatch = host_mismatch(req.headers(), &target);
    }
    let mut rec = rec;
    if decision.route == Route::Upstream {
        return super::forward_upstream::forward(&ctx, rec, req, &authority, &idle_hop).await;
    }
    let key = format!("direct {target}");
    let kept = idle_hop.lock().await.take();
    let reusable = match kept {
        Some(Kept::Direct(mut k))
            if k.key == key && k.generation == ctx.generation && decision.route != Route::Deny =>
        {
            k.sender.ready().await.is_ok().then_some(k)
        }
        _ => None,
    };
    let hop = match reusable {
        Some(k) => {
            rec.get().server = k.server;
            Hop::Kept(k)
        }
        None => match connect_hop(&ctx, &mut rec, &target, &decision).await {
            Ok(hop) => hop,
            Err(resp) => return resp,
        },
    };
    let outbound = match outbound_request(req, true, &authority) {
        Ok(r) => r,
        Err(e) => return not_forwardable(&mut rec, e),
    };
    send(rec, hop, key, ctx.generation, outbound, &idle_hop).await
}

/// A request that cannot be rebuilt for the next hop (a header that is not one).
pub(super) fn not_forwardable(rec: &mut Recorder, e: String) -> Response<ProxyBody> {
    rec.end(CloseReason::BadRequest, Some(400));
    rec.get().error = Some(e);
    page(Page {
        status: StatusCode::BAD_REQUEST,
        title: "Bad request",
        detail: "The request could not be forwarded.".into(),
        decision: None,
    })
}

/// A request the explicit proxy cannot forward: the PAC file when it asks for it (PCs
/// fetch it from the proxy's own address), otherwise 400.
fn not_a_proxy_request(
    ctx: &Context,
    rec: &mut Recorder,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    if let Some(pac) = crate::admin::pac_response(ctx, req, peer.ip()) {
        rec.get().target = Some(req.uri().path().to_string());
        rec.end(CloseReason::Finished, Some(pac.status().as_u16()));
        return pac.map(|b| b.map_err(|e| match e {}).boxed());
    }
    rec.end(CloseReason::BadRequest, Some(400));
    page(Page {
        status: StatusCode::BAD_REQUEST,
        title: "Not a proxy request",
        detail: "This is a forward proxy: send requests in absolute form (http://host/path) or use CONNECT.".into(),
        decision: None,
    })
}

/// Opens a new next-hop connection for the decision; deny and failures become the page.
async fn connect_hop(
    ctx: &Context,
    rec: &mut Recorder,
    target: &crate::policy::Target,
    decision: &crate::policy::Decision,
) -> Result<Hop, Response<ProxyBody>> {
    match decision.route {
        Route::Deny => {
            let page_ = pages::denied(decision);
            rec.end(CloseReason::Denied, Some(page_.status.as_u16()));
            Err(page(page_))
        }
        // Upstream requests never get here: see `forward_upstream`.
        Route::Direct | Route::Upstream => {
            match tunnel::connect(ctx, rec, target, decision).await {
                Ok(hop) => Ok(Hop::New(hop.stream)),
                Err(r) => Err(refusal(&r)),
            }
        }
    }
}

/// Sends the request to the next hop and streams the response back; the connection is
/// kept for the next request of this client connection.
async fn send(
    mut rec: Recorder,
    hop: Hop,
    key: String,
    generation: u64,
    req: Request<CountingBody>,
    idle_hop: &IdleHop,
) -> Response<ProxyBody> {
    let up = req.body().state.clone();
    let mut kept = match hop {
        Hop::Kept(k) => k,
        Hop::New(stream) => {
            let handshake = hyper::client::conn::http1::Builder::new()
                .preserve_header_case(true)
                .handshake(TokioIo::new(stream))
                .await;
            let (sender, conn) = match handshake {
                Ok(x) => x,
                Err(e) => return next_hop_failed(rec, e, &up),
            };
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "next-hop connection ended with an error");
                }
            });
            KeptHop {
                key,
                generation,
                sender,
                server: rec.get().server,
            }
        }
    };
    let sent = kept.sender.send_request(req).await;
    *idle_hop.lock().await = Some(Kept::Direct(kept));
    match sent {
        Ok(resp) => passed_on(rec, resp, CloseReason::Finished, up),
        Err(e) => next_hop_failed(rec, e, &up),
    }
}

/// The next hop's response on its way to the client: hop-by-hop headers out, `Via` in;
/// the record, ended with `reason`, is written when the body is done.
pub(super) fn passed_on(
    mut rec: Recorder,
    resp: Response<Incoming>,
    reason: CloseReason,
    up: Arc<BodyState>,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts
        .headers
        .append(header::VIA, HeaderValue::from_static(VIA));
    rec.end(reason, Some(parts.status.as_u16()));
    let logged = LoggedBody {
        inner: body,
        rec: Some(rec),
        up,
        down: 0,
    };
    Response::from_parts(parts, logged.boxed())
}

/// The answer to a client that must authenticate: a 407 carries the challenge; a
/// transparent client never asked for a proxy and gets the 403 as it is.
fn auth_required(p: Page<'_>) -> Response<ProxyBody> {
    let challenge = p.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED;
    let mut resp = page(p);
    if challenge {
        resp.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static(super::proxy_auth::CHALLENGE),
        );
    }
    resp
}

/// A request whose body broke (a chunk size that is not one, say): 400, and the
/// connection is closed, since where the next request starts is unknown.
pub(super) fn bad_framing(rec: &mut Recorder) -> Response<ProxyBody> {
    rec.end(CloseReason::BadRequest, Some(400));
    let mut resp = page(Page {
        status: StatusCode::BAD_REQUEST,
        title: "Bad request",
        detail: "The request's body is malformed.".into(),
        decision: None,
    });
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The `Host` header of an absolute-form request when it names another destination than
/// the URI; the URI decides, the header is recorded for the log (at most 300 characters).
fn host_mismatch(headers: &HeaderMap, target: &crate::policy::Target) -> Option<String> {
    let host = headers.get(header::HOST)?;
    let text = String::from_utf8_lossy(host.as_bytes());
    let same = crate::policy::Target::parse_authority(&text, Some(target.port))
        .is_ok_and(|t| t == *target);
    (!same).then(|| text.chars().take(300).collect())
}

fn next_hop_failed(mut rec: Recorder, e: hyper::Error, body: &BodyState) -> Response<ProxyBody> {
    rec.get().error = Some(e.to_string());
    if body.failed.load(Ordering::Relaxed) {
        // The client's body broke (an invalid chunk size, say), not the next hop.
        return bad_framing(&mut rec);
    }
    rec.end(CloseReason::ServerError, Some(502));
    page(Page {
        status: StatusCode::BAD_GATEWAY,
        title: "Destination failed",
        detail: format!("The next hop did not answer properly: {e}"),
        decision: None,
    })
}

pub(super) fn refusal(r: &Refusal) -> Response<ProxyBody> {
    page(r.page())
}

fn page(p: Page<'_>) -> Response<ProxyBody> {
    let mut resp = Response::new(Full::new(p.html()).map_err(|e| match e {}).boxed());
    *resp.status_mut() = p.status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Some(d) = p.decision {
        resp.headers_mut()
            .insert("x-lbo-route", HeaderValue::from_static(d.route.as_str()));
        resp.headers_mut()
            .insert("x-lbo-reason", HeaderValue::from_static(d.reason.as_str()));
    }
    resp
}

/// The request as the next hop gets it: origin form to an origin, absolute form to a
/// parent; hop-by-hop headers removed; `Host` from the URI (or, for an origin-form
/// request, `authority`: its own `Host`); `Via` added. The parent's credentials are the
/// pool's to add, per parent tried.
pub(super) fn outbound_request(
    req: Request<Incoming>,
    direct: bool,
    authority: &str,
) -> Result<Request<CountingBody>, String> {
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| authority.to_string());
    parts.headers.insert(
        header::HOST,
        HeaderValue::from_str(&host).map_err(|e| e.to_string())?,
    );
    parts
        .headers
        .append(header::VIA, HeaderValue::from_static(VIA));
    if direct {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = path.parse::<Uri>().map_err(|e| e.to_string())?;
    } else if parts.uri.authority().is_none() {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = format!("http://{host}{path}")
            .parse::<Uri>()
            .map_err(|e| e.to_string())?;
    }
    parts.version = http::Version::HTTP_11;
    let body = CountingBody {
        inner: body,
        state: Arc::new(BodyState::default()),
    };
    Ok(Request::from_parts(parts, body))
}

/// Removes the headers that belong to one connection only (RFC 9110 §7.6.1), including
/// those the `Connection` header names. Client credentials for this proxy never travel on.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// The request body on its way out, counting bytes for the record.
pub struct CountingBody {
    inner: Incoming,
    pub(super) state: Arc<BodyState>,
}

/// What the record needs from the request body: bytes read, and whether reading the
/// client's body failed.
#[derive(Default)]
pub struct BodyState {
    count: AtomicU64,
    pub(super) failed: AtomicBool,
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.state
                        .count
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(Some(Err(_))) => self.state.failed.store(true, Ordering::Relaxed),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The response body on its way back; its record is written when the body is done.
struct LoggedBody {
    inner: Incoming,
    rec: Option<Recorder>,
    up: Arc<BodyState>,
    down: u64,
}

impl LoggedBody {
    fn finish(&mut self, reason: Option<CloseReason>) {
        if let Some(mut rec) = self.rec.take() {
            rec.get().bytes_up = self.up.count.load(Ordering::Relaxed);
            rec.get().bytes_down = self.down;
            if let Some(r) = reason {
                rec.end(r, None);
            }
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.down += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(Some(CloseReason::ServerError)),
            Poll::Ready(None) => self.finish(None),
            Poll::Pending => {}
        }
        polled.map(|o| o.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away mid-response.
        let unfinished = !self.inner.is_end_stream();
        self.finish(unfinished.then_some(CloseReason::ClientError));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic abc"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn route_constants_fit_header_values() {
        for r in [Route::Direct, Route::Upstream, Route::Deny] {
            assert!(HeaderValue::from_str(r.as_str()).is_ok());
        }
    }
}
