//! The transparent HTTP listener: plain HTTP redirected to the appliance (nftables
//! `redirect` of port 80) from PCs without a proxy setting. Requests arrive in origin
//! form and are routed by their `Host`; the connection loop (every head read and checked
//! alike) and the forwarding server are the explicit proxy's.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::forward::Mode;
use super::original_dst;
use crate::server::Live;

pub const LISTENER: &str = "transparent_http";

/// Accepts until shutdown; over a connection limit, connections are answered with a 503 or 429 page.
pub async fn serve(listener: TcpListener, live: Arc<Live>) {
    let answer = super::accept::Answer::Http;
    super::accept::serve(
        listener,
        live,
        LISTENER,
        answer,
        |live, tcp, peer| async move {
            // A `Host` without a port means the port the client was connecting to.
            let port = original_dst::redirected(&tcp).map_or(80, |a| a.port());
            super::explicit::connection(live, tcp, peer, Mode::Transparent { port }).await
        },
    )
    .await
}
