//! The relay: the one place bytes are copied between a client and the next hop, for every
//! route and listener. It keeps half-close (EOF one way shuts the other writer; the other
//! direction goes on), ends idle tunnels, counts bytes, and says why it stopped.
//!
//! Two ways to move bytes, chosen per tunnel: on Linux, when both ends are bare TCP
//! sockets, [`splice`] moves them inside the kernel; otherwise [`copy`] reads and writes
//! through user memory. Both take a pipe or a buffer from a per-thread [`pool`] only while
//! bytes move, so an idle tunnel holds neither.

mod copy;
mod pool;
#[cfg(target_os = "linux")]
mod splice;
mod watchdog;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::stream::Endpoint;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides closed their write half.
    Finished,
    /// No byte moved either way for the idle timeout.
    IdleTimeout,
    /// The tunnel reached its longest allowed life, busy or not.
    Lifetime,
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

/// When a tunnel is ended although both sides are still there.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// No byte either way for this long.
    pub idle: Duration,
    /// Open this long, busy or not (`limits.max_tunnel_lifetime`).
    pub lifetime: Option<Duration>,
}

/// Copies both ways until both sides are done, an error, a limit, or `stop`.
///
/// The relay is what every idle tunnel's task holds, so its state is kept small: the two
/// streams are borrowed, `stop` lives in the caller, one timer serves the idle and lifetime
/// limits, and the splice path is a plain state machine rather than nested async blocks.
pub async fn relay<C, S, F>(
    client: &mut C,
    server: &mut S,
    limits: Limits,
    stats: &RelayStats,
    stop: Pin<&mut F>,
) -> RelayEnd
where
    C: Endpoint,
    S: Endpoint,
    F: Future<Output = ()>,
{
    let activity = Activity::new();
    #[cfg(target_os = "linux")]
    if client.tcp().is_some() && server.tcp().is_some() {
        let (up_first, down_first) = (client.take_pending(), server.take_pending());
        if let (Some(c), Some(s)) = (client.tcp(), server.tcp()) {
            return splice::relay(c, s, [up_first, down_first], limits, stats, &activity, stop)
                .await;
        }
    }
    // Boxed: only tunnels that cannot splice carry the copy path's state.
    Box::pin(copy_both(client, server, limits, stats, &activity, stop)).await
}

/// The portable relay: both directions through pooled buffers.
async fn copy_both<C, S, F>(
    client: &mut C,
    server: &mut S,
    limits: Limits,
    stats: &RelayStats,
    activity: &Activity,
    stop: Pin<&mut F>,
) -> RelayEnd
where
    C: Endpoint,
    S: Endpoint,
    F: Future<Output = ()>,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let up = copy::copy(
        &mut cr,
        &mut sw,
        &stats.bytes_up,
        activity,
        Blame::CLIENT_TO_SERVER,
    );
    let down = copy::copy(
        &mut sr,
        &mut cw,
        &stats.bytes_down,
        activity,
        Blame::SERVER_TO_CLIENT,
    );
    let both = async {
        match tokio::try_join!(up, down) {
            Ok(_) => RelayEnd::Finished,
            Err(end) => end,
        }
    };
    let mut watchdog = std::pin::pin!(watchdog::Watchdog::new(limits));
    let limit = std::future::poll_fn(|cx| watchdog.as_mut().poll(cx, activity));
    tokio::select! {
        end = both => end,
        end = limit => end,
        _ = stop => RelayEnd::Shutdown,
    }
}

/// When a byte last moved either way: both directions write it, the watchdog reads it.
struct Activity {
    epoch: Instant,
    /// Milliseconds since `epoch`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// Who is to blame when a read or a write of one direction fails.
#[derive(Clone, Copy)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::net::{TcpListener, TcpStream};

    use crate::stream::Prefixed;

    /// Limits with this idle timeout and no lifetime.
    fn within(idle: Duration) -> Limits {
        Limits {
            idle,
            lifetime: None,
        }
    }

    impl Endpoint for DuplexStream {}

    /// A connected pair of loopback sockets.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    #[tokio::test]
    async fn copies_both_ways_and_keeps_half_close() {
        let (mut client, mut client_peer) = duplex(1024);
        let (mut server, mut server_peer) = duplex(1024);
        let stats = RelayStats::default();
        let stop = pin!(std::future::pending::<()>());
        let relay = relay(
            &mut client,
            &mut server,
            within(Duration::from_secs(5)),
            &stats,
            stop,
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
        let (mut client, _client_peer) = duplex(1024);
        let (mut server, _server_peer) = duplex(1024);
        let stats = RelayStats::default();
        let end = relay(
            &mut client,
            &mut server,
            within(Duration::from_secs(30)),
            &stats,
            pin!(std::future::pending::<()>()),
        )
        .await;
        assert_eq!(end, RelayEnd::IdleTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn activity_postpones_the_idle_timeout() {
        let (mut client, mut client_peer) = duplex(1024);
        let (mut server, mut server_peer) = duplex(1024);
        let stats = RelayStats::default();
        let started = Instant::now();
        let stop = pin!(std::future::pending::<()>());
        let relay = relay(
            &mut client,
            &mut server,
            within(Duration::from_secs(30)),
            &stats,
            stop,
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

    #[tokio::test(start_paused = true)]
    async fn a_busy_tunnel_ends_at_its_lifetime() {
        let (mut client, mut client_peer) = duplex(1024);
        let (mut server, mut server_peer) = duplex(1024);
        let stats = RelayStats::default();
        let limits = Limits {
            idle: Duration::from_secs(45),
            lifetime: Some(Duration::from_secs(100)),
        };
        let stop = pin!(std::future::pending::<()>());
        let relay = relay(&mut client, &mut server, limits, &stats, stop);
        let chatter = async {
            // Busy: a byte every 30 s (at 30, 60, 90), so the idle timeout never comes.
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if client_peer.write_all(b"x").await.is_err() {
                    return;
                }
                let mut b = [0u8; 1];
                if server_peer.read_exact(&mut b).await.is_err() {
                    return;
                }
            }
        };
        let end = tokio::select! {
            end = relay => end,
            () = chatter => unreachable!("the relay ends first"),
        };
        assert_eq!(end, RelayEnd::Lifetime);
        assert_eq!(stats.bytes_up.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn sockets_end_at_their_lifetime() {
        let limits = Limits {
            idle: Duration::from_secs(3600),
            lifetime: Some(Duration::from_millis(50)),
        };
        assert_eq!(silent_sockets(limits).await, RelayEnd::Lifetime);
    }

    #[tokio::test]
    async fn stop_ends_the_relay() {
        let (mut client, _c) = duplex(1024);
        let (mut server, _s) = duplex(1024);
        let stats = RelayStats::default();
        let end = relay(
            &mut client,
            &mut server,
            within(Duration::from_secs(30)),
            &stats,
            pin!(async {}),
        )
        .await;
        assert_eq!(end, RelayEnd::Shutdown);
    }

    #[tokio::test]
    async fn sockets_relay_both_ways_with_read_ahead_and_half_close() {
        let (client, mut client_peer) = tcp_pair().await;
        let (server, mut server_peer) = tcp_pair().await;
        // Bytes the proxy read ahead of the tunnel (a ClientHello) go to the server first.
        let mut client = Prefixed::new(bytes::Bytes::from_static(b"early "), client);
        let stats = RelayStats::default();
        let mut server = crate::stream::ServerStream::Tcp(server);
        let stop = pin!(std::future::pending::<()>());
        let relay = relay(
            &mut client,
            &mut server,
            within(Duration::from_secs(5)),
            &stats,
            stop,
        );
        let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let peers = async {
            client_peer.write_all(&big).await.unwrap();
            client_peer.shutdown().await.unwrap();
            let mut got = Vec::new();
            server_peer.read_to_end(&mut got).await.unwrap();
            assert_eq!(&got[..6], b"early ");
            assert!(got[6..] == big[..]);
            server_peer.write_all(b"world!").await.unwrap();
            server_peer.shutdown().await.unwrap();
            let mut back = Vec::new();
            client_peer.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"world!");
        };
        let (end, ()) = tokio::join!(relay, peers);
        assert_eq!(end, RelayEnd::Finished);
        assert_eq!(stats.bytes_up.load(Ordering::Relaxed), 1_000_006);
        assert_eq!(stats.bytes_down.load(Ordering::Relaxed), 6);
    }

    #[tokio::test]
    async fn idle_sockets_end() {
        let end = silent_sockets(within(Duration::from_millis(50))).await;
        assert_eq!(end, RelayEnd::IdleTimeout);
    }

    /// How a splice relay between two pairs of sockets where nobody speaks ends.
    async fn silent_sockets(limits: Limits) -> RelayEnd {
        let (mut client, _client_peer) = tcp_pair().await;
        let (mut server, _server_peer) = tcp_pair().await;
        let stats = RelayStats::default();
        let stop = pin!(std::future::pending::<()>());
        relay(&mut client, &mut server, limits, &stats, stop).await
    }

    #[tokio::test]
    async fn a_reset_after_the_last_byte_counts_as_eof() {
        let (mut client, client_peer) = tcp_pair().await;
        let (mut server, mut server_peer) = tcp_pair().await;
        let stats = RelayStats::default();
        let stop = pin!(std::future::pending::<()>());
        let relay = relay(
            &mut client,
            &mut server,
            within(Duration::from_secs(5)),
            &stats,
            stop,
        );
        let peers = async {
            // Linger 0: closing sends a reset instead of a FIN.
            client_peer.set_zero_linger().unwrap();
            drop(client_peer);
            let mut got = Vec::new();
            server_peer.read_to_end(&mut got).await.unwrap();
            assert!(got.is_empty());
            drop(server_peer);
        };
        let (end, ()) = tokio::join!(relay, peers);
        assert_eq!(end, RelayEnd::Finished);
    }
}
