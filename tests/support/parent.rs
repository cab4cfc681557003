//! Parents that misbehave on purpose, on loopback: one that plays a fixed script after
//! reading a request head (never answers, closes, answers 503, sends half a head…), a
//! counting front that relays to a real Squid, and a listener whose accept queue is full
//! (connects to it time out). Each records the request heads it read and counts its
//! connections, so a test can tell that a parent never saw a request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a [`FakeParent`] does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Script {
    /// Reads the request head and never answers (the connection stays open).
    Silent,
    /// Closes as soon as the connection is accepted, before reading anything.
    CloseAtOnce,
    /// Reads the request head, then closes without a byte of answer.
    CloseAfterHead,
    /// Reads the request head, writes these bytes and keeps the connection open.
    Reply(&'static [u8]),
    /// Reads the request head, writes these bytes and closes.
    ReplyAndClose(&'static [u8]),
    /// Relays both ways to this address (a counting front for a real parent).
    Relay(SocketAddr),
}

#[derive(Clone)]
pub struct FakeParent {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

/// Counts a connection as open until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeParent {
    pub async fn start(script: Script) -> FakeParent {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = FakeParent {
            addr: listener.local_addr().unwrap(),
            heads: Arc::default(),
            accepted: Arc::default(),
            open: Arc::default(),
        };
        let me = p.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                me.accepted.fetch_add(1, Ordering::SeqCst);
                me.open.fetch_add(1, Ordering::SeqCst);
                let open = Open(me.open.clone());
                let heads = me.heads.clone();
                tokio::spawn(async move {
                    play(tcp, script, heads).await;
                    drop(open);
                });
            }
        });
        p
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Request heads read so far (none for [`Script::Relay`]).
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    pub fn saw(&self, needle: &str) -> bool {
        self.heads().iter().any(|h| h.contains(needle))
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits (bounded, 10 s) until `f` holds of this parent.
    pub async fn until(&self, what: &str, f: impl Fn(&FakeParent) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: {} accepted, {} open",
                self.accepted(),
                self.open()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn play(mut tcp: TcpStream, script: Script, heads: Arc<Mutex<Vec<String>>>) {
    match script {
        Script::CloseAtOnce => return,
        Script::Relay(to) => {
            if let Ok(mut up) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
            }
            return;
        }
        _ => {}
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&buf).to_string());
    match script {
        Script::Silent => hold(tcp).await,
        Script::CloseAfterHead => {}
        Script::Reply(bytes) => {
            let _ = tcp.write_all(bytes).await;
            hold(tcp).await;
        }
        Script::ReplyAndClose(bytes) => {
            let _ = tcp.write_all(bytes).await;
        }
        Script::CloseAtOnce | Script::Relay(_) => {}
    }
}

/// Keeps the connection open (reading and dropping anything) until the peer closes it,
/// or for at most a minute.
async fn hold(mut tcp: TcpStream) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// A listener whose accept queue is full: a TCP connect to it is never answered and
/// times out (the kernel drops the SYN), as a parent behind a dead link does. Keep the
/// value alive while it is used.
pub struct FullBacklog {
    pub addr: SocketAddr,
    _listener: std::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

impl FullBacklog {
    pub fn start() -> FullBacklog {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap().into_std().unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => queued.push(s),
                Err(_) => {
                    return FullBacklog {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    }
                }
            }
        }
        panic!("the accept queue of {addr} did not fill up");
    }
}
