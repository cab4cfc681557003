//! The soak's origin on loopback: echoes tunnel bytes back, serves reproducible bodies to
//! `GET /blob/SEED/LEN` with their SHA-256, and counts connections from an address that
//! should never reach it (the proof that upstream traffic never went direct).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::payload::{blob, sha256_hex};

/// First bytes of a tunnel payload: the origin echoes what follows.
pub const ECHO: &[u8; 4] = b"ECHO";

/// Largest request head the origin reads.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Clone)]
pub struct SoakOrigin {
    pub addr: SocketAddr,
    /// Connections accepted.
    pub connections: Arc<AtomicU64>,
    /// Connections whose peer was not `only_from` (when set).
    pub strangers: Arc<AtomicU64>,
}

impl SoakOrigin {
    /// Listens on 127.0.0.1; with `only_from`, a connection from any other address is
    /// counted as a stranger (it is still served, so the client sees nothing odd).
    pub async fn start(only_from: Option<IpAddr>) -> SoakOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = SoakOrigin {
            addr: listener.local_addr().unwrap(),
            connections: Arc::new(AtomicU64::new(0)),
            strangers: Arc::new(AtomicU64::new(0)),
        };
        let (connections, strangers) = (origin.connections.clone(), origin.strangers.clone());
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                if only_from.is_some_and(|ip| ip != peer.ip()) {
                    strangers.fetch_add(1, Ordering::SeqCst);
                }
                tokio::spawn(serve(tcp));
            }
        });
        origin
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn strangers(&self) -> u64 {
        self.strangers.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// One connection: an echo after `ECHO`, otherwise HTTP/1.1 requests (keep-alive, as a
/// parent may reuse the connection).
async fn serve(mut tcp: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    while buf.len() < ECHO.len() {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if buf.starts_with(ECHO) {
        if tcp.write_all(&buf[ECHO.len()..]).await.is_err() {
            return;
        }
        let (mut r, mut w) = tcp.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        return;
    }
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let close = head.to_ascii_lowercase().contains("connection: close");
        let response = respond(&head);
        if tcp.write_all(&response).await.is_err() || close {
            return;
        }
    }
}

/// `GET /blob/SEED/LEN` → the blob with `X-Soak-Sha256`; anything else → 404.
fn respond(head: &str) -> Vec<u8> {
    let path = head.split_whitespace().nth(1).unwrap_or("");
    // An absolute-form target (from a parent) keeps only its path.
    let path = path
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(path);
    let mut parts = path.trim_start_matches("/blob/").split('/');
    let seed = parts.next().and_then(|s| s.parse::<u64>().ok());
    let len = parts.next().and_then(|s| s.parse::<usize>().ok());
    let (Some(seed), Some(len), true) = (seed, len, path.starts_with("/blob/")) else {
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    };
    let body = blob(seed, len);
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nX-Soak-Sha256: {}\r\n\r\n",
        sha256_hex(&body)
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}
