//! The accept loop every listener shares: stop on shutdown, back off on accept errors,
//! bound open connections, and run each connection in a tracked task with the context
//! current when it was accepted (a reload never changes the rules under it).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use crate::server::{Context, Live};

/// Accepts until shutdown. `busy` gets the connections over `limits.max_connections`;
/// `handle` the others.
pub async fn serve<B, H, F>(listener: TcpListener, live: Arc<Live>, busy: B, handle: H)
where
    B: Fn(TcpStream),
    H: Fn(Arc<Context>, TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut shutdown = live.current().shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::server::stopping(&mut shutdown) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let ctx = live.current();
        let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
            busy(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let task = handle(ctx.clone(), tcp, peer);
        ctx.tasks.spawn(async move {
            task.await;
            drop(permit);
        });
    }
}
