//! A plain `http://` request that goes to the security cloud: handed to the parent pool,
//! which picks the parent, sends it at most once to a parent that takes it, and keeps the
//! connection for the client connection's next request; the answer is streamed back and
//! recorded like every other.

use std::sync::atomic::Ordering;

use http::{Request, Response};
use hyper::body::Incoming;

use super::forward::{
    bad_framing, not_forwardable, outbound_request, passed_on, refusal, IdleHop, Kept, ProxyBody,
};
use super::tunnel::Refusal;
use crate::outcome::{millis, CloseReason, Recorder};
use crate::server::Context;
use crate::telemetry::AttemptClass;

pub(super) async fn forward(
    ctx: &Context,
    mut rec: Recorder,
    req: Request<Incoming>,
    authority: &str,
    idle_hop: &IdleHop,
) -> Response<ProxyBody> {
    let outbound = match outbound_request(req, false, authority) {
        Ok(r) => r,
        Err(e) => return not_forwardable(&mut rec, e),
    };
    let up = outbound.body().state.clone();
    let kept = match idle_hop.lock().await.take() {
        Some(Kept::Upstream(k)) => Some(k),
        _ => None,
    };
    let started = std::time::Instant::now();
    match ctx.parents.forward_http(rec.client(), kept, outbound).await {
        Ok(a) => {
            let o = rec.get();
            o.parent = Some(a.parent);
            o.parent_tls_resumed = a.tls_resumed;
            o.connect_ms = a.connect.map(millis);
            *idle_hop.lock().await = Some(Kept::Upstream(a.kept));
            let reason = match a.class {
                AttemptClass::OriginError => CloseReason::ParentOriginError,
                _ => CloseReason::Finished,
            };
            passed_on(rec, a.response, reason, up)
        }
        Err(e) => {
            rec.get().error = Some(e.to_string());
            if up.failed.load(Ordering::Relaxed) {
                // The client's body broke (an invalid chunk size, say), not the parent.
                return bad_framing(&mut rec);
            }
            rec.get().connect_ms = Some(millis(started.elapsed()));
            if let Some(parent) = e.parent() {
                rec.get().parent = Some(parent.into());
            }
            rec.end(e.reason(), Some(e.status().as_u16()));
            refusal(&Refusal::Connect(e))
        }
    }
}
