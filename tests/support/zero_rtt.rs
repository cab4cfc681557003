//! A TLS front for a parent that resumes sessions and, when asked to, accepts TLS 1.3
//! early data and answers in the same flight (half-RTT data): what a security cloud's
//! TLS listener does when it allows 0-RTT. Plain rustls driven by hand, since tokio-rustls
//! does not read early data on the server side. It counts handshakes, resumptions and
//! connections whose first bytes came as early data.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Default)]
pub struct Counts {
    pub handshakes: Arc<AtomicUsize>,
    pub resumed: Arc<AtomicUsize>,
    pub early: Arc<AtomicUsize>,
}

impl Counts {
    pub fn get(&self) -> (usize, usize, usize) {
        (
            self.handshakes.load(Ordering::SeqCst),
            self.resumed.load(Ordering::SeqCst),
            self.early.load(Ordering::SeqCst),
        )
    }
}

pub struct ZeroRttFront {
    pub addr: SocketAddr,
    /// PEM of the certificate to trust (`tls_ca_file`).
    pub ca: PathBuf,
    pub counts: Counts,
}

impl ZeroRttFront {
    /// Terminates TLS for `name` in front of `backend`; with `early`, accepts 0-RTT.
    pub async fn start(name: &str, backend: SocketAddr, dir: &Path, early: bool) -> ZeroRttFront {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        config.max_early_data_size = if early { 16 * 1024 } else { 0 };
        config.send_half_rtt_data = true;
        config.send_tls13_tickets = 4;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Counts::default();
        let c = counts.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve(tcp, config.clone(), backend, c.clone()));
            }
        });
        ZeroRttFront { addr, ca, counts }
    }
}

async fn serve(tcp: TcpStream, config: Arc<ServerConfig>, backend: SocketAddr, counts: Counts) {
    let Ok(mut conn) = ServerConnection::new(config) else {
        return;
    };
    let Ok(up) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = up.set_nodelay(true);
    let (mut ur, mut uw) = up.into_split();
    let (mut tr, mut tw) = tcp.into_split();
    let mut tbuf = vec![0u8; 16 * 1024];
    let mut ubuf = vec![0u8; 16 * 1024];
    let mut counted = false;
    let mut backend_done = false;
    let mut client_done = false;
    loop {
        while conn.wants_write() {
            let mut out = Vec::new();
            if conn.write_tls(&mut out).is_err() || tw.write_all(&out).await.is_err() {
                return;
            }
        }
        if !counted && !conn.is_handshaking() {
            counted = true;
            counts.handshakes.fetch_add(1, Ordering::SeqCst);
            if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                counts.resumed.fetch_add(1, Ordering::SeqCst);
            }
        }
        if client_done && backend_done {
            return;
        }
        tokio::select! {
            n = tr.read(&mut tbuf), if !client_done => {
                let n = match n {
                    Ok(n) if n > 0 => n,
                    // The client is gone: what the backend still sends is for nobody, but
                    // its end is awaited so the close below is clean.
                    _ => {
                        client_done = true;
                        let _ = uw.shutdown().await;
                        continue;
                    }
                };
                let mut rd = &tbuf[..n];
                while !rd.is_empty() {
                    if conn.read_tls(&mut rd).is_err() || conn.process_new_packets().is_err() {
                        return;
                    }
                    let mut plain = Vec::new();
                    if let Some(mut early) = conn.early_data() {
                        let _ = early.read_to_end(&mut plain);
                        if !plain.is_empty() {
                            counts.early.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    let mut closed = false;
                    loop {
                        match conn.reader().read(&mut chunk) {
                            // close_notify: the client is done sending.
                            Ok(0) => {
                                closed = true;
                                break;
                            }
                            Ok(k) => plain.extend_from_slice(&chunk[..k]),
                            Err(_) => break,
                        }
                    }
                    if !plain.is_empty() && uw.write_all(&plain).await.is_err() {
                        return;
                    }
                    if closed {
                        let _ = uw.shutdown().await;
                    }
                }
            }
            n = ur.read(&mut ubuf), if !backend_done => {
                match n {
                    Ok(n) if n > 0 => {
                        if conn.writer().write_all(&ubuf[..n]).is_err() {
                            return;
                        }
                    }
                    // The backend is done: say so in TLS, then wait for the client to close
                    // (closing first would reset what it still sends).
                    _ => {
                        backend_done = true;
                        conn.send_close_notify();
                    }
                }
            }
        }
    }
}
