//! Stream types every route and listener shares: a client stream that may hold bytes
//! already read ahead, and a server-side stream that is plain TCP or TLS to a parent.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// One end of a tunnel as the relay sees it: a stream that may be a bare TCP socket under
/// bytes already read ahead. Bare sockets on both ends let the relay move bytes inside
/// the kernel (splice); anything else (TLS, an upgraded HTTP connection) is copied.
pub trait Endpoint: AsyncRead + AsyncWrite + Unpin {
    /// The TCP socket under this stream, when nothing but read-ahead bytes is in between.
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }

    /// Takes the bytes read ahead of the socket, which must be passed on first.
    fn take_pending(&mut self) -> Bytes {
        Bytes::new()
    }
}

impl Endpoint for TcpStream {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

/// An HTTP connection upgraded by CONNECT: hyper may hold bytes, so it is copied.
impl Endpoint for hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {}

/// A stream whose first bytes were already read (a request head's tail, a ClientHello);
/// they are replayed before reading from the socket again.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Endpoint> Endpoint for Prefixed<S> {
    fn tcp(&self) -> Option<&TcpStream> {
        self.inner.tcp()
    }

    fn take_pending(&mut self) -> Bytes {
        // This prefix was read through `inner`, so it comes before what `inner` still holds.
        let outer = std::mem::take(&mut self.prefix);
        let inner = self.inner.take_pending();
        match (outer.is_empty(), inner.is_empty()) {
            (_, true) => outer,
            (true, false) => inner,
            (false, false) => [outer, inner].concat().into(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Replayed: let go of the buffer it was read into.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The next hop: a destination or parent over TCP, or a parent over TLS.
pub enum ServerStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Endpoint for ServerStream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            ServerStream::Tcp(s) => Some(s),
            ServerStream::Tls(_) => None,
        }
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_prefix_then_reads_inner() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut p = Prefixed::new(Bytes::from_static(b"hello"), b);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn nested_prefixes_come_out_in_reading_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let inner = Prefixed::new(Bytes::from_static(b" world"), tcp);
        let mut outer = Prefixed::new(Bytes::from_static(b"hello"), inner);
        assert!(outer.tcp().is_some());
        assert_eq!(outer.take_pending(), Bytes::from_static(b"hello world"));
        assert!(outer.take_pending().is_empty());
    }
}
