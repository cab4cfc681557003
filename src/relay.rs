//! The relay: the one place bytes are copied between a client and the next hop, for every
//! route and listener. It keeps half-close (EOF one way shuts the other writer; the other
//! direction goes on), ends idle tunnels, counts bytes, and says why it stopped.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes per direction held while a tunnel moves data.
const BUF_SIZE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides closed their write half.
    Finished,
    /// No byte moved either way for the idle timeout.
    IdleTimeout,
    /// The client side failed (reset, broken pipe).
    ClientError,
    /// The server side failed.
    ServerError,
    /// The proxy is shutting down and the drain time is over.
    Shutdown,
}

#[derive(Debug, Default)]
pub struct RelayStats {
    /// Client → server.
    pub bytes_up: AtomicU64,
    /// Server → client.
    pub bytes_down: AtomicU64,
}

/// Copies both ways until both sides are done, an error, the idle timeout, or `stop`.
pub async fn relay<C, S>(
    client: C,
    server: S,
    idle: Duration,
    stats: &RelayStats,
    stop: impl std::future::Future<Output = ()>,
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    // Milliseconds since `epoch` of the last byte moved, shared by both directions.
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let up = copy(
        &mut cr,
        &mut sw,
        &stats.bytes_up,
        &last,
        epoch,
        Blame::CLIENT_TO_SERVER,
    );
    let down = copy(
        &mut sr,
        &mut cw,
        &stats.bytes_down,
        &last,
        epoch,
        Blame::SERVER_TO_CLIENT,
    );
    // The first error ends both directions; clean EOFs on both sides finish the tunnel.
    let both = async {
        match tokio::try_join!(up, down) {
            Ok(_) => RelayEnd::Finished,
            Err(end) => end,
        }
    };
    let watchdog = async {
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = epoch + since + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        end = both => end,
        _ = watchdog => RelayEnd::IdleTimeout,
        _ = stop => RelayEnd::Shutdown,
    }
}

/// Who is to blame when a read or a write of one direction fails.
struct Blame {
    read: RelayEnd,
    write: RelayEnd,
}

impl Blame {
    const CLIENT_TO_SERVER: Blame = Blame {
        read: RelayEnd::ClientError,
        write: RelayEnd::ServerError,
    };
    const SERVER_TO_CLIENT: Blame = Blame {
        read: RelayEnd::ServerError,
        write: RelayEnd::ClientError,
    };
}

async fn copy<R, W>(
    r: &mut R,
    w: &mut W,
    count: &AtomicU64,
    last: &AtomicU64,
    epoch: Instant,
    blame: Blame,
) -> Result<(), RelayEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(_) => return Err(blame.read),
        };
        w.write_all(&buf[..n]).await.map_err(|_| blame.write)?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        last.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    // Half-close: the peer sees EOF, the other direction goes on.
    let _ = w.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn copies_both_ways_and_keeps_half_close() {
        let (client, mut client_peer) = duplex(1024);
        let (server, mut server_peer) = duplex(1024);
        let stats = RelayStats::default();
        let relay = relay(
            client,
            server,
            Duration::from_secs(5),
            &stats,
            std::future::pending(),
        );
        let peers = async {
            client_peer.write_all(b"hello").await.unwrap();
            client_peer.shutdown().await.unwrap();
            let mut got = Vec::new();
            server_peer.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello");
            // The client's EOF did not close the other direction.
            server_peer.write_all(b"world!").await.unwrap();
            server_peer.shutdown().await.unwrap();
            let mut back = Vec::new();
            client_peer.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"world!");
        };
        let (end, ()) = tokio::join!(relay, peers);
        assert_eq!(end, RelayEnd::Finished);
        assert_eq!(stats.bytes_up.load(Ordering::Relaxed), 5);
        assert_eq!(stats.bytes_down.load(Ordering::Relaxed), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tunnels_end() {
        let (client, _client_peer) = duplex(1024);
        let (server, _server_peer) = duplex(1024);
        let stats = RelayStats::default();
        let end = relay(
            client,
            server,
            Duration::from_secs(30),
            &stats,
            std::future::pending(),
        )
        .await;
        assert_eq!(end, RelayEnd::IdleTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn activity_postpones_the_idle_timeout() {
        let (client, mut client_peer) = duplex(1024);
        let (server, mut server_peer) = duplex(1024);
        let stats = RelayStats::default();
        let started = Instant::now();
        let relay = relay(
            client,
            server,
            Duration::from_secs(30),
            &stats,
            std::future::pending(),
        );
        let chatter = async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                client_peer.write_all(b"x").await.unwrap();
                let mut b = [0u8; 1];
                server_peer.read_exact(&mut b).await.unwrap();
            }
        };
        let (end, ()) = tokio::join!(relay, chatter);
        assert_eq!(end, RelayEnd::IdleTimeout);
        assert!(started.elapsed() >= Duration::from_secs(90));
    }

    #[tokio::test]
    async fn stop_ends_the_relay() {
        let (client, _c) = duplex(1024);
        let (server, _s) = duplex(1024);
        let stats = RelayStats::default();
        let end = relay(client, server, Duration::from_secs(30), &stats, async {}).await;
        assert_eq!(end, RelayEnd::Shutdown);
    }
}
