//! The workloads, as a client on loopback: one big download through one tunnel, short
//! tunnels at a fixed number in flight, and many idle tunnels. Each one is bounded in
//! count and in time.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Longest any single step may take before the workload counts it as failed.
const STEP: Duration = Duration::from_secs(10);
/// Bytes echoed per short tunnel.
const ECHO: usize = 64;

/// How the client reaches the origin.
#[derive(Clone, Copy)]
pub enum Via {
    /// Straight to the origin: the limit.
    Nothing,
    /// A CONNECT through the proxy at this address, to this name.
    Proxy(SocketAddr, &'static str),
}

/// Opens a connection to the origin port, from `source` (a loopback address).
async fn open(via: Via, port: u16, source: Ipv4Addr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let tcp = match via {
        Via::Nothing => {
            socket
                .connect(SocketAddr::from(([127, 0, 0, 1], port)))
                .await?
        }
        Via::Proxy(proxy, name) => {
            let mut tcp = socket.connect(proxy).await?;
            let head = format!("CONNECT {name}:{port} HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n");
            tcp.write_all(head.as_bytes()).await?;
            read_reply(&mut tcp).await?;
            tcp
        }
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Reads the proxy's reply head; only a 200 opens the tunnel. The origin never speaks
/// first, so no tunnel byte follows the head.
async fn read_reply(tcp: &mut TcpStream) -> io::Result<()> {
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await?;
        if n == 0 || head.len() > 4096 {
            return Err(io::Error::other("no reply head from the proxy"));
        }
        head.extend_from_slice(&buf[..n]);
    }
    if head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200") {
        Ok(())
    } else {
        let line = String::from_utf8_lossy(&head);
        Err(io::Error::other(format!(
            "proxy refused: {}",
            line.lines().next().unwrap_or("")
        )))
    }
}

/// Downloads `bytes` through one tunnel from the source; returns the time from asking to
/// the last byte.
pub async fn download(via: Via, source_port: u16, bytes: u64) -> io::Result<Duration> {
    let mut tcp = tokio::time::timeout(STEP, open(via, source_port, Ipv4Addr::LOCALHOST))
        .await
        .map_err(|_| io::Error::other("tunnel not open in time"))??;
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    tcp.write_u64(bytes).await?;
    let mut got = 0u64;
    // A generous bound: even 1 Gbit/s finishes well within it.
    let limit = Duration::from_secs(30) + Duration::from_nanos(bytes * 8);
    tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut buf).await? {
                0 => return Ok::<_, io::Error>(()),
                n => got += n as u64,
            }
        }
    })
    .await
    .map_err(|_| io::Error::other("download did not finish in time"))??;
    if got != bytes {
        return Err(io::Error::other(format!("got {got} of {bytes} bytes")));
    }
    Ok(started.elapsed())
}

/// What the short-tunnel workload did.
pub struct Rate {
    pub tunnels: usize,
    pub failures: usize,
    /// Why the first failed tunnel failed.
    pub first_failure: Option<String>,
    pub elapsed: Duration,
}

/// Opens, echoes 64 bytes through, and closes tunnels, `in_flight` at a time, for `length`
/// or until `max` tunnels. The tunnels go to each of `ports` in turn: the relay closes
/// towards the origin first, so its side of each connection waits out TIME_WAIT, and one
/// origin port would soon leave it no local port (28,000 by default) to connect from.
pub async fn short_tunnels(
    via: Via,
    ports: &[u16],
    in_flight: usize,
    length: Duration,
    max: usize,
) -> Rate {
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None));
    let started = Instant::now();
    let deadline = started + length;
    // Each tunnel from the next source address: the client closes first, and its
    // TIME_WAIT ports are spread over all of them.
    let sequence = Arc::new(AtomicUsize::new(0));
    let ports: Arc<[u16]> = ports.into();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (done, failed, sequence) = (done.clone(), failed.clone(), sequence.clone());
            let (first_failure, ports) = (first_failure.clone(), ports.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; ECHO];
                while Instant::now() < deadline && done.load(Ordering::Relaxed) < max {
                    let i = sequence.fetch_add(1, Ordering::Relaxed);
                    let (source, port) = (source_address(i), ports[i % ports.len()]);
                    let one = async {
                        let mut tcp = open(via, port, source).await?;
                        tcp.write_all(&[b'x'; ECHO]).await?;
                        tcp.read_exact(&mut buf).await?;
                        Ok::<_, io::Error>(())
                    };
                    let why = match tokio::time::timeout(STEP, one).await {
                        Ok(Ok(())) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => format!("not done within {STEP:?}"),
                    };
                    failed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut first) = first_failure.lock() {
                        first.get_or_insert(why);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    Rate {
        tunnels: done.load(Ordering::Relaxed),
        failures: failed.load(Ordering::Relaxed),
        first_failure: first_failure.lock().ok().and_then(|mut f| f.take()),
        elapsed: started.elapsed(),
    }
}

/// Opens `n` tunnels spread over the echo ports, each carrying one echoed byte, and keeps
/// them open (idle) in the returned list. At most 256 are being opened at a time; the
/// whole takes at most `STEP` per 1,000 tunnels.
pub async fn idle_tunnels(via: Via, ports: &[u16], n: usize) -> io::Result<Vec<TcpStream>> {
    let ports: Arc<[u16]> = ports.into();
    let next = Arc::new(AtomicUsize::new(0));
    let limit = STEP * (n as u32 / 1000 + 1);
    let openers: Vec<_> = (0..256.min(n))
        .map(|_| {
            let (ports, next) = (ports.clone(), next.clone());
            tokio::spawn(async move {
                let mut held = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, io::Error>(held);
                    }
                    let port = ports[i % ports.len()];
                    let mut tcp = open(via, port, source_address(i)).await?;
                    tcp.write_all(b"x").await?;
                    let mut b = [0u8; 1];
                    tcp.read_exact(&mut b).await?;
                    held.push(tcp);
                }
            })
        })
        .collect();
    let all = async {
        let mut held = Vec::with_capacity(n);
        for o in openers {
            held.extend(o.await.map_err(io::Error::other)??);
        }
        Ok::<_, io::Error>(held)
    };
    tokio::time::timeout(limit, all)
        .await
        .map_err(|_| io::Error::other("idle tunnels not open in time"))?
}

/// How many loopback addresses the client connects from.
pub const SOURCES: usize = 250;

/// Client connections come from 127.0.0.2–127.0.0.251, so that 100,000 of them to one
/// proxy port do not run out of ephemeral ports.
pub fn source_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8)
}
