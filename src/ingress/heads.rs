//! The client side of a kept-alive connection, as the HTTP server reads it: one request
//! at a time, each head checked by the same parser, limits and timeout as the first
//! ([`super::head`]), each body passed on up to where it ends and not a byte further.
//!
//! At a boundary the next head is read here first. A complete plain HTTP request goes on
//! to the HTTP server; anything else stops the connection's HTTP server (it reads an end
//! of stream) and comes back to the listener with the bytes read: a `CONNECT` is then
//! tunnelled as on a fresh connection, and a head over a limit, a head not finished in
//! time or ambiguous framing gets the same status, page and record as a first head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::chunked::{Chunked, Scan};
use super::head::{self, Body, Head, HeadLimits};
use crate::server::Live;

/// Read from the socket at a time while a head is incomplete.
const READ_CHUNK: usize = 4096;

/// Why the HTTP server was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The next head is not a plain request it may see (a `CONNECT`, a head over a limit,
    /// bad framing, or none in time): the listener takes it from here.
    NextHead,
    /// The client closed, asked to close, or sent a broken body: nothing follows.
    End,
}

#[derive(Debug)]
enum State {
    /// Waiting for the next head (in `buf`, as far as it came).
    Head,
    /// Passing the rest of a head and a body of known length.
    Bytes(u64),
    /// Passing a chunked body (after its head, `head_left` bytes of it first).
    Chunked {
        head_left: u64,
        body: Chunked,
    },
    Stopped(Stop),
}

/// A client connection handing the HTTP server one checked request at a time.
pub struct Heads {
    tcp: TcpStream,
    /// Read from the socket, not yet passed on.
    buf: BytesMut,
    state: State,
    live: Arc<Live>,
    /// When the head being waited for must be complete.
    deadline: Pin<Box<Sleep>>,
    /// The request being passed asked to close the connection after it.
    close_after: bool,
    /// The proxy stops: a connection between requests closes.
    stopping: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl Heads {
    /// A connection whose next head (complete or not) is in `buf`, due by `due`.
    pub fn new(tcp: TcpStream, buf: BytesMut, live: Arc<Live>, due: Instant) -> Heads {
        let stopping = Box::pin(live.stopping.clone().cancelled_owned());
        Heads {
            tcp,
            buf,
            state: State::Head,
            live,
            deadline: Box::pin(tokio::time::sleep_until(due)),
            close_after: false,
            stopping,
        }
    }

    /// How the HTTP server was stopped, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        match self.state {
            State::Stopped(s) => Some(s),
            _ => None,
        }
    }

    /// The socket, the bytes read past the last request, and when the next head is due.
    pub fn into_parts(self) -> (TcpStream, BytesMut, Instant) {
        (self.tcp, self.buf, self.deadline.deadline())
    }

    /// The limits and timeout of the policy in force when a head is begun.
    fn limits(&self) -> (HeadLimits, Duration) {
        let ctx = self.live.current();
        let l = &ctx.config.limits;
        (
            HeadLimits {
                max_bytes: l.max_head_bytes,
                max_headers: l.max_headers,
            },
            ctx.config.timeouts.head,
        )
    }

    /// At a boundary: the next request's head, as far as it has come.
    fn poll_head(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let (limits, _) = self.limits();
        loop {
            match head::parse(&self.buf, limits) {
                Ok(Head::Http {
                    head_len,
                    body,
                    close,
                }) => {
                    self.close_after = close;
                    self.state = match body {
                        Body::Empty => State::Bytes(head_len as u64),
                        Body::Length(n) => State::Bytes(head_len as u64 + n),
                        Body::Chunked => State::Chunked {
                            head_left: head_len as u64,
                            body: Chunked::default(),
                        },
                    };
                    return Poll::Ready(Ok(()));
                }
                Ok(Head::Partial) => {}
                Ok(Head::Connect { .. }) | Err(_) => {
                    self.state = State::Stopped(Stop::NextHead);
                    return Poll::Ready(Ok(()));
                }
            }
            if self.deadline.as_mut().poll(cx).is_ready() {
                self.state = State::Stopped(Stop::NextHead);
                return Poll::Ready(Ok(()));
            }
            if self.buf.is_empty() && self.stopping.as_mut().poll(cx).is_ready() {
                self.state = State::Stopped(Stop::End);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.poll_fill(cx, READ_CHUNK)) {
                Ok(0) | Err(_) => {
                    self.state = State::Stopped(if self.buf.is_empty() {
                        Stop::End
                    } else {
                        Stop::NextHead
                    });
                    return Poll::Ready(Ok(()));
                }
                Ok(_) => {}
            }
        }
    }

    /// Reads more bytes from the socket into `buf` (at most about `want` at a time).
    fn poll_fill(&mut self, cx: &mut TaskContext<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.tcp), cx, &mut self.buf)
    }

    /// The request passed on is complete: wait for the next head from now.
    fn boundary(&mut self) {
        if self.close_after {
            self.state = State::Stopped(Stop::End);
            return;
        }
        let (_, timeout) = self.limits();
        self.deadline.as_mut().reset(Instant::now() + timeout);
        self.state = State::Head;
    }
}

impl AsyncRead for Heads {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Stopped(_) => return Poll::Ready(Ok(())),
                State::Head => ready!(this.poll_head(cx))?,
                State::Bytes(0) => this.boundary(),
                State::Bytes(left) => {
                    let left = *left;
                    if this.buf.is_empty() && ready!(this.poll_fill(cx, READ_CHUNK))? == 0 {
                        this.state = State::Stopped(Stop::End);
                        return Poll::Ready(Ok(()));
                    }
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(this.buf.len())
                        .min(out.remaining());
                    out.put_slice(&this.buf[..n]);
                    this.buf.advance(n);
                    this.state = State::Bytes(left - n as u64);
                    return Poll::Ready(Ok(()));
                }
                State::Chunked { .. } => {
                    if this.buf.is_empty() && ready!(this.poll_fill(cx, READ_CHUNK))? == 0 {
                        this.state = State::Stopped(Stop::End);
                        return Poll::Ready(Ok(()));
                    }
                    let State::Chunked { head_left, body } = &mut this.state else {
                        continue;
                    };
                    let room = out.remaining().min(this.buf.len());
                    let head = usize::try_from(*head_left).unwrap_or(usize::MAX).min(room);
                    let (n, next) = if head > 0 {
                        *head_left -= head as u64;
                        (head, None)
                    } else {
                        match body.scan(&this.buf[..room]) {
                            Scan::More => (room, None),
                            Scan::End(n) => (n, Some(Stop::NextHead)),
                            // The HTTP server sees the broken byte and refuses the body.
                            Scan::Broken(at) => (at + 1, Some(Stop::End)),
                        }
                    };
                    out.put_slice(&this.buf[..n]);
                    this.buf.advance(n);
                    match next {
                        Some(Stop::NextHead) => this.boundary(),
                        Some(Stop::End) => this.state = State::Stopped(Stop::End),
                        None => {}
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl AsyncWrite for Heads {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
