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
    // Stop first: once stopped, not one more byte moves.
    tokio::select! {
        biased;
        _ = stop => RelayEnd::Shutdown,
        end = both => end,
        end = limit => end,
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

    use crate::stream::{Prefixed, ServerStream};

    impl Endpoint for DuplexStream {}

    /// A relay under test: its two ends and its byte counts.
    struct Tunnel<C, S> {
        client: C,
        server: S,
        stats: RelayStats,
    }

    impl<C: Endpoint, S: Endpoint> Tunnel<C, S> {
        fn new(client: C, server: S) -> Self {
            Tunnel {
                client,
                server,
                stats: RelayStats::default(),
            }
        }

        /// Relays with `limits` and no stop signal.
        async fn run(&mut self, limits: Limits) -> RelayEnd {
            self.run_until(limits, std::future::pending()).await
        }

        async fn run_until(&mut self, limits: Limits, stop: impl Future<Output = ()>) -> RelayEnd {
            let stop = pin!(stop);
            relay(
                &mut self.client,
                &mut self.server,
                limits,
                &self.stats,
                stop,
            )
            .await
        }

        /// Bytes moved (up, down).
        fn bytes(&self) -> (u64, u64) {
            (
                self.stats.bytes_up.load(Ordering::Relaxed),
                self.stats.bytes_down.load(Ordering::Relaxed),
            )
        }
    }

    /// A tunnel between in-memory streams (the copy path), with the client's and the
    /// server's far ends.
    fn duplex_tunnel() -> (
        Tunnel<DuplexStream, DuplexStream>,
        DuplexStream,
        DuplexStream,
    ) {
        let (client, client_peer) = duplex(1024);
        let (server, server_peer) = duplex(1024);
        (Tunnel::new(client, server), client_peer, server_peer)
    }

    /// A tunnel between loopback sockets (the splice path), with the far ends.
    async fn socket_tunnel() -> (Tunnel<TcpStream, TcpStream>, TcpStream, TcpStream) {
        let (client, client_peer) = tcp_pair().await;
        let (server, server_peer) = tcp_pair().await;
        (Tunnel::new(client, server), client_peer, server_peer)
    }

    /// A connected pair of loopback sockets.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    /// The client's peer sends `up` and half-closes, then the server's peer answers `down`
    /// and closes: returns what reached the server, after checking that `down` came back.
    async fn send_up_then_down(
        client_peer: &mut TcpStream,
        server_peer: &mut TcpStream,
        up: &[u8],
        down: &[u8],
    ) -> Vec<u8> {
        client_peer.write_all(up).await.unwrap();
        client_peer.shutdown().await.unwrap();
        let mut got = Vec::new();
        server_peer.read_to_end(&mut got).await.unwrap();
        server_peer.write_all(down).await.unwrap();
        server_peer.shutdown().await.unwrap();
        let mut back = Vec::new();
        client_peer.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, down);
        got
    }

    /// Limits with this idle timeout and no lifetime.
    fn within(idle: Duration) -> Limits {
        Limits {
            idle,
            lifetime: None,
        }
    }

    #[tokio::test]
    async fn copies_both_ways_and_keeps_half_close() {
        let (mut tunnel, mut client_peer, mut server_peer) = duplex_tunnel();
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
        let (end, ()) = tokio::join!(tunnel.run(within(Duration::from_secs(5))), peers);
        assert_eq!(end, RelayEnd::Finished);
        assert_eq!(tunnel.bytes(), (5, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tunnels_end() {
        let (mut tunnel, _client_peer, _server_peer) = duplex_tunnel();
        let end = tunnel.run(within(Duration::from_secs(30))).await;
        assert_eq!(end, RelayEnd::IdleTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn activity_postpones_the_idle_timeout() {
        let (mut tunnel, mut client_peer, mut server_peer) = duplex_tunnel();
        let started = Instant::now();
        let chatter = async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                client_peer.write_all(b"x").await.unwrap();
                let mut b = [0u8; 1];
                server_peer.read_exact(&mut b).await.unwrap();
            }
        };
        let (end, ()) = tokio::join!(tunnel.run(within(Duration::from_secs(30))), chatter);
        assert_eq!(end, RelayEnd::IdleTimeout);
        assert!(started.elapsed() >= Duration::from_secs(90));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_tunnel_ends_at_its_lifetime() {
        let (mut tunnel, mut client_peer, mut server_peer) = duplex_tunnel();
        let limits = Limits {
            idle: Duration::from_secs(45),
            lifetime: Some(Duration::from_secs(100)),
        };
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
            end = tunnel.run(limits) => end,
            () = chatter => unreachable!("the relay ends first"),
        };
        assert_eq!(end, RelayEnd::Lifetime);
        assert_eq!(tunnel.bytes().0, 3);
    }

    #[tokio::test]
    async fn stop_ends_the_relay() {
        let (mut tunnel, _client_peer, _server_peer) = duplex_tunnel();
        let end = tunnel
            .run_until(within(Duration::from_secs(30)), async {})
            .await;
        assert_eq!(end, RelayEnd::Shutdown);
    }

    #[tokio::test]
    async fn sockets_relay_both_ways_with_read_ahead_and_half_close() {
        let (client, mut client_peer) = tcp_pair().await;
        let (server, mut server_peer) = tcp_pair().await;
        // Bytes the proxy read ahead of the tunnel (a ClientHello) go to the server first.
        let client = Prefixed::new(bytes::Bytes::from_static(b"early "), client);
        let mut tunnel = Tunnel::new(client, ServerStream::Tcp(server));
        let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let peers = async {
            let got = send_up_then_down(&mut client_peer, &mut server_peer, &big, b"world!").await;
            assert_eq!(&got[..6], b"early ");
            assert!(got[6..] == big[..]);
        };
        let (end, ()) = tokio::join!(tunnel.run(within(Duration::from_secs(5))), peers);
        assert_eq!(end, RelayEnd::Finished);
        assert_eq!(tunnel.bytes(), (1_000_006, 6));
    }

    #[tokio::test]
    async fn sockets_relay_many_small_bursts_both_ways() {
        // Request and answer of sizes around the pipe's slot count: each burst is read
        // whole and the direction waits for the next one without a lost or stuck byte.
        let (mut tunnel, mut client_peer, mut server_peer) = socket_tunnel().await;
        client_peer.set_nodelay(true).unwrap();
        server_peer.set_nodelay(true).unwrap();
        let peers = async {
            let mut sent = 0;
            for round in 0..300usize {
                let size = 1 + round * 7 % 600;
                let ask: Vec<u8> = (0..size).map(|i| (i + round) as u8).collect();
                client_peer.write_all(&ask).await.unwrap();
                let mut got = vec![0u8; size];
                server_peer.read_exact(&mut got).await.unwrap();
                assert_eq!(got, ask, "round {round}");
                server_peer.write_all(&got[..size / 2 + 1]).await.unwrap();
                let mut back = vec![0u8; size / 2 + 1];
                client_peer.read_exact(&mut back).await.unwrap();
                assert_eq!(back, ask[..size / 2 + 1], "round {round}");
                sent += size;
            }
            let rest = send_up_then_down(&mut client_peer, &mut server_peer, b"", b"").await;
            assert!(rest.is_empty());
            sent
        };
        let (end, sent) = tokio::join!(tunnel.run(within(Duration::from_secs(10))), peers);
        assert_eq!(end, RelayEnd::Finished);
        assert_eq!(tunnel.bytes().0, sent as u64);
    }

    #[tokio::test]
    async fn sockets_pass_on_bytes_that_come_with_their_eof() {
        // A few bytes and the FIN in one go: the bytes arrive, then the EOF, both ways.
        let (mut tunnel, mut client_peer, mut server_peer) = socket_tunnel().await;
        let peers = async {
            let got =
                send_up_then_down(&mut client_peer, &mut server_peer, b"last words", b"bye").await;
            assert_eq!(got, b"last words");
        };
        let (end, ()) = tokio::join!(tunnel.run(within(Duration::from_secs(5))), peers);
        assert_eq!(end, RelayEnd::Finished);
        assert_eq!(tunnel.bytes(), (10, 3));
    }

    #[tokio::test]
    async fn many_one_byte_segments_all_arrive() {
        // A thousand one-byte segments, all queued before the relay starts: a read that
        // stops because the pipe is full must not be taken for a drained socket.
        let (mut tunnel, mut client_peer, mut server_peer) = socket_tunnel().await;
        client_peer.set_nodelay(true).unwrap();
        for i in 0..1000u32 {
            client_peer.write_all(&[i as u8]).await.unwrap();
        }
        client_peer.shutdown().await.unwrap();
        let peer = async {
            let mut got = Vec::new();
            server_peer.read_to_end(&mut got).await.unwrap();
            assert_eq!(got.len(), 1000);
            assert!(got.iter().enumerate().all(|(i, b)| *b == i as u8));
            drop(server_peer);
        };
        let (end, ()) = tokio::join!(tunnel.run(within(Duration::from_secs(5))), peer);
        assert_eq!(end, RelayEnd::Finished);
        assert_eq!(tunnel.bytes().0, 1000);
    }

    #[tokio::test]
    async fn idle_sockets_end() {
        let (mut tunnel, _client_peer, _server_peer) = socket_tunnel().await;
        let end = tunnel.run(within(Duration::from_millis(50))).await;
        assert_eq!(end, RelayEnd::IdleTimeout);
    }

    #[tokio::test]
    async fn sockets_end_at_their_lifetime() {
        let (mut tunnel, _client_peer, _server_peer) = socket_tunnel().await;
        let limits = Limits {
            idle: Duration::from_secs(3600),
            lifetime: Some(Duration::from_millis(50)),
        };
        assert_eq!(tunnel.run(limits).await, RelayEnd::Lifetime);
    }

    #[tokio::test]
    async fn a_reset_after_the_last_byte_counts_as_eof() {
        let (mut tunnel, client_peer, mut server_peer) = socket_tunnel().await;
        let peers = async {
            // Linger 0: closing sends a reset instead of a FIN.
            client_peer.set_zero_linger().unwrap();
            drop(client_peer);
            let mut got = Vec::new();
            server_peer.read_to_end(&mut got).await.unwrap();
            assert!(got.is_empty());
            drop(server_peer);
        };
        let (end, ()) = tokio::join!(tunnel.run(within(Duration::from_secs(5))), peers);
        assert_eq!(end, RelayEnd::Finished);
    }
}
