//! The accept loop every listener shares: stop on shutdown, back off (and count) on
//! accept errors, refuse clients the listener does not serve (outside every segment when
//! so configured, outside `[admin] allow` for the admin listener), bound open connections
//! overall and per client address, and run each connection in a tracked task. The
//! connection's requests load the context in force as each of them arrives.

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

/// Who a listener serves, and within which limits.
pub struct Door {
    pub name: &'static str,
    pub answer: Answer,
    /// The open connections this listener counts against; `None`: the context's (the
    /// proxy's limits).
    pub admission: Option<Arc<super::admission::Admission>>,
    /// Refuses a client at accept (closed, with a record saying why), or lets it in.
    pub refuse: fn(&Context, SocketAddr) -> Option<Refusal>,
}

/// A client closed at accept: the record's reason, decision (if the policy made one) and
/// error.
pub type Refusal = (CloseReason, Option<Decision>, &'static str);

/// The proxy's listeners: a client outside every segment is closed at accept when
/// `access.unknown_client = "close"`.
pub fn unknown_client(ctx: &Context, peer: SocketAddr) -> Option<Refusal> {
    (ctx.config.access.unknown_client == UnknownClient::Close
        && ctx.config.policy.segment_of(peer.ip()).is_none())
    .then(|| {
        (
            CloseReason::Denied,
            Some(Decision::unknown_client()),
            "closed at accept: access.unknown_client = close",
        )
    })
}

/// Accepts until shutdown; `handle` gets each admitted connection, logged as `listener`.
pub async fn serve<H, F>(
    listener: TcpListener,
    live: Arc<Live>,
    name: &'static str,
    answer: Answer,
    handle: H,
) where
    H: Fn(Arc<Live>, TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let door = Door {
        name,
        answer,
        admission: None,
        refuse: unknown_client,
    };
    serve_door(listener, live, door, handle).await
}

/// As [`serve`], for a listener with its own door.
pub async fn serve_door<H, F>(listener: TcpListener, live: Arc<Live>, door: Door, handle: H)
where
    H: Fn(Arc<Live>, TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let Door {
        name,
        answer,
        admission,
        refuse: refused_at_accept,
    } = door;
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
        if let Some((reason, decision, why)) = refused_at_accept(&ctx, peer) {
            let mut rec = Recorder::new(&ctx.log, name, peer);
            if let Some(d) = &decision {
                rec.decided(d);
            }
            rec.get().error = Some(why.into());
            rec.end(reason, None);
            continue;
        }
        let admission = admission.as_ref().unwrap_or(&ctx.admission);
        let permit = match admission.admit(peer.ip()) {
            Ok(p) => p,
            Err(refused) => {
                refuse(&ctx, name, answer, &answering, tcp, peer, refused);
                continue;
            }
        };
        let task = handle(live.clone(), tcp, peer);
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
