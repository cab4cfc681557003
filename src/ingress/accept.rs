//! The accept loop every listener shares: stop on shutdown, back off (and count) on
//! accept errors, close clients outside every segment when so configured, bound open
//! connections overall and per client address, and run each connection in a tracked task
//! with the context current when it was accepted (a reload never changes the rules under
//! it).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::admission::{Permit, Refused};
use super::pages::Page;
use crate::config::limits::UnknownClient;
use crate::outcome::{CloseReason, Recorder};
use crate::policy::Decision;
use crate::server::{Context, Live};

/// First pause after a failed accept; doubled on each further failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// Longest pause: the listener tries again at least this often.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Refused connections being answered at once; beyond this they are just closed, so a
/// flood cannot turn refusals into a pile of tasks.
const ANSWERING: usize = 256;
/// How long a refused client may take to read its answer.
const ANSWER_TIME: Duration = Duration::from_secs(1);

/// How refused connections are told: with an HTTP page (`Http`) or by closing (`Close`,
/// for listeners whose clients do not speak HTTP first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Http,
    Close,
}

/// Accepts until shutdown; `handle` gets each admitted connection, logged as `listener`.
pub async fn serve<H, F>(
    listener: TcpListener,
    live: Arc<Live>,
    name: &'static str,
    answer: Answer,
    handle: H,
) where
    H: Fn(Arc<Context>, TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut shutdown = live.current().shutdown.clone();
    let answering = Arc::new(Semaphore::new(ANSWERING));
    let mut backoff = BACKOFF_FIRST;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::server::stopping(&mut shutdown) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => {
                backoff = BACKOFF_FIRST;
                a
            }
            Err(e) => {
                // EMFILE and friends: the error repeats at once until a descriptor is
                // free, so pause instead of spinning.
                let kind = error_kind(&e);
                crate::telemetry::metrics().accept_error(kind);
                tracing::warn!(error = %e, kind, pause = ?backoff, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = crate::server::stopping(&mut shutdown) => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let ctx = live.current();
        if ctx.config.access.unknown_client == UnknownClient::Close
            && ctx.config.policy.segment_of(peer.ip()).is_none()
        {
            let mut rec = Recorder::new(&ctx.log, name, peer);
            rec.decided(&Decision::unknown_client());
            rec.get().error = Some("closed at accept: access.unknown_client = close".into());
            rec.end(CloseReason::Denied, None);
            continue;
        }
        let permit = match ctx.admission.admit(peer.ip()) {
            Ok(p) => p,
            Err(refused) => {
                refuse(&ctx, name, answer, &answering, tcp, peer, refused);
                continue;
            }
        };
        let task = handle(ctx.clone(), tcp, peer);
        ctx.tasks.spawn(Admitted { task, permit });
    }
}

pin_project_lite::pin_project! {
    /// A connection's task, holding its admission permit until it ends. A named future
    /// rather than `async move { task.await; drop(permit) }`: such a block keeps the
    /// captured future and the awaited one side by side, twice every connection's state.
    struct Admitted<F> {
        #[pin]
        task: F,
        permit: Permit,
    }
}

impl<F: Future<Output = ()>> Future for Admitted<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        self.project().task.poll(cx)
    }
}

/// The `kind` label of a failed accept.
fn error_kind(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => "fd_limit",
        Some(libc::ENOBUFS | libc::ENOMEM) => "memory",
        _ => "other",
    }
}

/// Logs a connection over a limit and answers it (503 overall, 429 per client) in a
/// short task, or closes it at once when too many are being answered already.
fn refuse(
    ctx: &Context,
    name: &'static str,
    answer: Answer,
    answering: &Arc<Semaphore>,
    tcp: TcpStream,
    peer: SocketAddr,
    refused: Refused,
) {
    let (reason, status, detail) = match refused {
        Refused::Total => (
            CloseReason::ConnectionLimit,
            StatusCode::SERVICE_UNAVAILABLE,
            "The appliance has reached its connection limit.",
        ),
        Refused::PerClient => (
            CloseReason::ClientConnectionLimit,
            StatusCode::TOO_MANY_REQUESTS,
            "Your address has too many open connections to the proxy.",
        ),
    };
    let mut rec = Recorder::new(&ctx.log, name, peer);
    let sent = answer == Answer::Http;
    rec.end(reason, sent.then_some(status.as_u16()));
    drop(rec);
    if !sent {
        return;
    }
    let Ok(slot) = answering.clone().try_acquire_owned() else {
        return;
    };
    let page = Page {
        status,
        title: if refused == Refused::Total {
            "Proxy busy"
        } else {
            "Too many connections"
        },
        detail: detail.into(),
        decision: None,
    }
    .raw_response();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(ANSWER_TIME, answer_and_close(tcp, &page)).await;
        drop(slot);
    });
}

/// Writes the page, then reads (and drops) what the client sent until it closes: closing
/// with unread bytes would reset the connection and lose the page.
async fn answer_and_close(mut tcp: TcpStream, page: &[u8]) {
    if tcp.write_all(page).await.is_err() || tcp.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
}
