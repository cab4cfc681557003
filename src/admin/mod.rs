//! The admin listener: liveness and readiness for the appliance's monitoring, the PAC,
//! and reload.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub mod pac;
mod ready;
pub mod status;

use crate::server::{Context, Live};

pub async fn serve(listener: TcpListener, live: Arc<Live>) {
    let mut shutdown = live.current().shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::server::stopping(&mut shutdown) => return,
        };
        let live = live.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let live = live.clone();
                async move {
                    if req.uri().path() == "/-/reload" {
                        return Ok::<_, Infallible>(reload(&live, &req).await);
                    }
                    Ok(route(&live.current(), &req, peer.ip()))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
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
