//! Plain `http://` requests through a parent, under the same failure model as tunnels: a
//! request goes to the next parent only when the one before never took it (the
//! connection failed, or closed before hyper wrote a byte of it). Once written it is the
//! parent's: it is not sent again, and an answer that does not come within
//! `timeouts.parent_answer` of the request's end is a 504.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Buf;
use http::header::{HeaderValue, PROXY_AUTHORIZATION};
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use super::{Parent, ParentPool};
use crate::egress::error::ConnectError;
use crate::telemetry::{metrics, AttemptClass};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection to a parent kept for the client connection's next request.
pub struct KeptLink<B> {
    sender: SendRequest<Tracked<B>>,
    parent: Arc<str>,
    link: u64,
}

/// The parent's response and what the log needs about it.
pub struct HttpAnswer<B> {
    pub response: Response<Incoming>,
    pub kept: KeptLink<B>,
    pub parent: Arc<str>,
    /// `OriginError` for the parent's 502/503/504, else `Ok`.
    pub class: AttemptClass,
    /// How long opening a new connection took (none when one was reused).
    pub connect: Option<Duration>,
    pub tls_resumed: Option<bool>,
}

/// A connection ready for a request, and where it came from.
struct Opened<B> {
    sender: SendRequest<Tracked<B>>,
    /// A kept or standby connection, which the parent may have closed meanwhile.
    reused: bool,
    connect: Option<Duration>,
    tls_resumed: Option<bool>,
}

impl ParentPool {
    /// Sends `req` (absolute form) through a parent: the kept connection's if that
    /// parent is still up, else in `balance` order. The parent's `Proxy-Authorization`
    /// is set here, per parent tried.
    pub async fn forward_http<B>(
        &self,
        client: IpAddr,
        kept: Option<KeptLink<B>>,
        req: Request<B>,
    ) -> Result<HttpAnswer<B>, ConnectError>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let what = request_words(&req);
        let done = Arc::new(Ended::default());
        if req.body().is_end_stream() {
            done.set();
        }
        let mut req = req.map(|inner| Tracked {
            inner,
            done: done.clone(),
        });
        let mut kept = kept.filter(|k| {
            self.parents
                .iter()
                .any(|p| p.config.name == k.parent && p.link.id == k.link && p.is_up())
        });
        let mut order = self.order(client);
        if let Some(k) = &kept {
            if let Some(at) = order.iter().position(|p| p.config.name == k.parent) {
                let p = order.remove(at);
                order.insert(0, p);
            }
        }
        let mut tried = Vec::new();
        'parents: for parent in order {
            if !parent.is_up() {
                metrics().parent_failover(&parent.config.name);
                continue;
            }
            set_authorization(&mut req, &parent);
            loop {
                let opened = match kept.take() {
                    Some(k) => Opened {
                        sender: k.sender,
                        reused: true,
                        connect: None,
                        tls_resumed: None,
                    },
                    None => match self.open_http(&parent).await {
                        Ok(o) => o,
                        Err(text) => {
                            self.unreachable(&parent, text, &mut tried);
                            continue 'parents;
                        }
                    },
                };
                match self.send(&parent, opened, req, &done, &what).await {
                    Sent::Answered(a) => return a,
                    Sent::NotTaken(r, reused) => {
                        req = r;
                        if reused {
                            continue;
                        }
                        let text = "the parent closed the new connection before taking the request";
                        self.unreachable(&parent, text.into(), &mut tried);
                        continue 'parents;
                    }
                }
            }
        }
        Err(self.give_up(tried))
    }

    async fn send<B>(
        &self,
        parent: &Arc<Parent>,
        mut opened: Opened<B>,
        req: Request<Tracked<B>>,
        done: &Ended,
        what: &str,
    ) -> Sent<B>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let name = &parent.config.name;
        let waited = async {
            done.wait().await;
            tokio::time::sleep(self.parent_answer).await;
        };
        let sent = tokio::select! {
            r = opened.sender.try_send_request(req) => r,
            _ = waited => {
                self.attempt(parent, AttemptClass::Timeout, None);
                return Sent::Answered(Err(ConnectError::ParentTimeout {
                    parent: name.to_string(),
                    request: what.to_string(),
                    after: self.parent_answer,
                }));
            }
        };
        let response = match sent {
            Ok(r) => r,
            Err(mut e) => {
                if let Some(req) = e.take_message() {
                    return Sent::NotTaken(req, opened.reused);
                }
                let e = e.into_error();
                if e.is_user() {
                    // The client's request body failed on its way: nobody's fault upstream.
                    return Sent::Answered(Err(ConnectError::ParentFailed {
                        parent: name.to_string(),
                        detail: format!("the request body of {what} broke off ({e})"),
                    }));
                }
                let detail = format!(
                    "{} after it had {what}; it was not sent again",
                    hyper_words(&e)
                );
                // A new connection that breaks counts against the parent; a reused one
                // may have met the parent's idle timeout.
                let counted = (!opened.reused || e.is_parse()).then_some(detail.as_str());
                self.attempt(parent, AttemptClass::Failed, counted);
                return Sent::Answered(Err(ConnectError::ParentFailed {
                    parent: name.to_string(),
                    detail,
                }));
            }
        };
        let status = response.status();
        if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            return Sent::Answered(Err(self.answered(parent, status, what.to_string())));
        }
        let class = if matches!(status.as_u16(), 502..=504) {
            AttemptClass::OriginError
        } else {
            AttemptClass::Ok
        };
        self.attempt(parent, class, None);
        Sent::Answered(Ok(HttpAnswer {
            response,
            kept: KeptLink {
                sender: opened.sender,
                parent: name.clone(),
                link: parent.link.id,
            },
            parent: name.clone(),
            class,
            connect: opened.connect,
            tls_resumed: opened.tls_resumed,
        }))
    }

    /// A connection for `http://` requests: a standby one, or a new one (no early
    /// data: a replayed request could change something at the origin).
    async fn open_http<B>(&self, parent: &Parent) -> Result<Opened<B>, String>
    where
        B: Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let taken = parent.standby.as_ref().and_then(|s| s.take());
        let reused = taken.is_some();
        let (stream, tls_resumed) = match taken {
            Some(s) => s,
            None => {
                let d = self.dial(parent, false).await?;
                (d.stream, d.resumed)
            }
        };
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| hyper_words(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "parent connection ended with an error");
            }
        });
        Ok(Opened {
            sender,
            reused,
            connect: Some(started.elapsed()),
            tls_resumed,
        })
    }
}

enum Sent<B> {
    Answered(Result<HttpAnswer<B>, ConnectError>),
    /// hyper gave the request back unwritten; `bool`: the connection was a reused one.
    NotTaken(Request<Tracked<B>>, bool),
}

fn set_authorization<B>(req: &mut Request<B>, parent: &Parent) {
    let headers = req.headers_mut();
    headers.remove(PROXY_AUTHORIZATION);
    if let Some(auth) = &parent.config.proxy_authorization {
        if let Ok(v) = HeaderValue::from_str(auth) {
            headers.insert(PROXY_AUTHORIZATION, v);
        }
    }
}

/// `GET http://host/path` for the log, the URI cut at 200 characters.
fn request_words<B>(req: &Request<B>) -> String {
    let uri = req.uri().to_string();
    let uri: String = uri.chars().take(200).collect();
    format!("{} {uri}", req.method())
}

fn hyper_words(e: &hyper::Error) -> String {
    if e.is_parse_too_large() {
        "its response head was too large".into()
    } else if e.is_parse() {
        "its response was malformed".into()
    } else if e.is_incomplete_message() {
        "it closed the connection before a complete response".into()
    } else {
        format!("the connection failed ({e})")
    }
}

/// Set once the request body has been sent in full.
#[derive(Default)]
struct Ended {
    flag: AtomicBool,
    notify: Notify,
}

impl Ended {
    fn set(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.flag.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// The request body on its way to the parent, telling [`Ended`] when it is all sent.
pub struct Tracked<B> {
    inner: B,
    done: Arc<Ended>,
}

impl<B> Body for Tracked<B>
where
    B: Body + Unpin,
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_))))
            || self.inner.is_end_stream()
        {
            self.done.set();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
