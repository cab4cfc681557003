//! The portable relay direction, for any stream (TLS to a parent, an upgraded HTTP
//! connection, a client with bytes read ahead on a system without splice). A buffer is
//! taken from the pool for each read that finds bytes and given back once they are
//! written: a read that would wait gives its buffer back first, so an idle direction holds
//! none.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::pool::Pool;
use super::{Activity, Blame, RelayEnd};

/// Bytes moved per read. Large enough for a TLS record and a fast loopback burst.
const BUF_SIZE: usize = 16 * 1024;
/// Buffers kept per thread: enough for the tunnels a thread moves bytes for at once.
const POOLED: usize = 256;

thread_local! {
    static BUFFERS: Pool<Box<[u8]>> = const { Pool::new(POOLED) };
}

pub fn take_buffer() -> Box<[u8]> {
    BUFFERS
        .try_with(Pool::take)
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0u8; BUF_SIZE].into_boxed_slice())
}

pub fn give_buffer(buf: Box<[u8]>) {
    // During thread teardown the pool is gone; the buffer is simply freed.
    let _ = BUFFERS.try_with(move |p| p.give(buf));
}

/// Copies `r` to `w` until EOF (then shuts `w`'s write half) or an error.
pub async fn copy<R, W>(
    r: &mut R,
    w: &mut W,
    count: &AtomicU64,
    activity: &Activity,
    blame: Blame,
) -> Result<(), RelayEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let (buf, n) = match read_pooled(r).await {
            Ok((_, 0)) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(_) => return Err(blame.read),
        };
        let written = w.write_all(&buf[..n]).await;
        give_buffer(buf);
        written.map_err(|_| blame.write)?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
    }
    // Half-close: the peer sees EOF, the other direction goes on.
    let _ = w.shutdown().await;
    Ok(())
}

/// One read into a pooled buffer; while the read waits, the buffer is back in the pool.
async fn read_pooled<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(Box<[u8]>, usize)> {
    poll_fn(|cx| {
        let mut buf = take_buffer();
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                Poll::Ready(Ok((buf, n)))
            }
            Poll::Ready(Err(e)) => {
                give_buffer(buf);
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                give_buffer(buf);
                Poll::Pending
            }
        }
    })
    .await
}
