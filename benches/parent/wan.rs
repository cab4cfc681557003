//! The WAN between the appliance and the security cloud, in user space (this kernel has no
//! qdiscs, so no `tc netem`): a loopback relay in front of the parent that
//!
//! - delays every chunk by half the round trip, in each direction, in order;
//! - holds the first bytes a client sends until one full round trip after its connection
//!   was opened: the TCP handshake a real WAN charges before data can leave (a connection
//!   opened long ago, such as a standby one, pays nothing).
//!
//! So a fresh connection's first request reaches the parent 1.5 round trips after
//! `connect()`, its answer is back after 2, and every later exchange costs one. Threads
//! and blocking sockets, so a delay is a `nanosleep` (tens of microseconds late), not a
//! 1 ms timer tick. What it leaves out: bandwidth and queueing, loss and retransmission,
//! jitter, slow start and delayed ACKs, and the connect() itself returns at once (the
//! handshake is charged to the first bytes instead).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Wan {
    pub addr: SocketAddr,
    /// Connections opened through it, so a row can tell new ones from standby ones.
    pub opened: Arc<AtomicUsize>,
}

impl Wan {
    /// A relay to `to` with round trip `rtt`.
    pub fn start(to: SocketAddr, rtt: Duration) -> Wan {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the WAN relay");
        let addr = listener.local_addr().expect("relay address");
        let opened = Arc::new(AtomicUsize::new(0));
        let count = opened.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(near) = conn else { continue };
                let opened_at = Instant::now();
                count.fetch_add(1, Ordering::Relaxed);
                let Ok(far) = TcpStream::connect(to) else {
                    continue;
                };
                let _ = near.set_nodelay(true);
                let _ = far.set_nodelay(true);
                let (Ok(near2), Ok(far2)) = (near.try_clone(), far.try_clone()) else {
                    continue;
                };
                // Towards the parent: not before one round trip after the open.
                direction(near, far, rtt / 2, Some(opened_at + rtt));
                direction(far2, near2, rtt / 2, None);
            }
        });
        Wan { addr, opened }
    }
}

/// One direction: a reader that stamps each chunk with when it is due, and a writer that
/// sends it then. End of stream travels the same way.
fn direction(mut from: TcpStream, mut to: TcpStream, delay: Duration, not_before: Option<Instant>) {
    let (tx, rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let now = Instant::now();
            let leaves = not_before.map_or(now, |t| now.max(t));
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            let last = chunk.is_none();
            if tx.send((leaves + delay, chunk)).is_err() || last {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        while let Ok((due, chunk)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).is_err() {
                        let _ = to.shutdown(Shutdown::Both);
                        return;
                    }
                }
                None => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
            }
        }
    });
}
