//! A syslog collector on loopback for the access-log tests: RFC 6587 octet-counted frames
//! over TCP or TLS (RFC 5425), each message's MSG (the JSON line) kept in the order it
//! arrived. It can stop reading while it keeps the connections open (a stuck SIEM),
//! and stop and come back on the same port (a restart). Certificates are made with rcgen.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct Collector {
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    paused: Arc<AtomicBool>,
    accepting: Option<tokio::task::JoinHandle<()>>,
    /// Set to make every connection half-close and drain (a graceful restart).
    closing: Arc<AtomicBool>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Collector {
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Collector::serve(listener, tls, Arc::default())
    }

    fn serve(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        lines: Arc<Mutex<Vec<String>>>,
    ) -> Collector {
        let addr = listener.local_addr().unwrap();
        let paused = Arc::new(AtomicBool::new(false));
        let closing = Arc::new(AtomicBool::new(false));
        let (l, p, c, t) = (lines.clone(), paused.clone(), closing.clone(), tls.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (l, p, c) = (l.clone(), p.clone(), c.clone());
                match &t {
                    None => {
                        tokio::spawn(read_frames(tcp, l, p, c));
                    }
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
                        tokio::spawn(async move {
                            // A handshake the client refuses (a bad certificate) ends here.
                            if let Ok(s) = acceptor.accept(tcp).await {
                                read_frames(s, l, p, c).await;
                            }
                        });
                    }
                }
            }
        });
        Collector {
            addr,
            lines,
            paused,
            accepting: Some(accepting),
            closing,
            tls,
        }
    }

    /// Stops reading (a stuck SIEM): connections stay open, their buffers fill.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// A graceful restart: no new connections, each open one half-closed and read to its
    /// end; after `down`, the collector listens again on the same port.
    pub async fn restart(mut self, down: Duration) -> Collector {
        if let Some(a) = self.accepting.take() {
            a.abort();
            let _ = a.await;
        }
        self.closing.store(true, Ordering::SeqCst);
        tokio::time::sleep(down).await;
        let listener = TcpListener::bind(self.addr).await.unwrap();
        Collector::serve(listener, self.tls.clone(), self.lines.clone())
    }

    /// The MSG of every message received so far, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(a) = self.accepting.take() {
            a.abort();
        }
    }
}

async fn read_frames<S>(
    mut s: S,
    lines: Arc<Mutex<Vec<String>>>,
    paused: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
) where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut half_closed = false;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if closing.load(Ordering::SeqCst) && !half_closed {
            half_closed = true;
            let _ = s.shutdown().await;
        }
        if paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // A read given up after the timeout loses nothing (a frame is taken only once
        // it is whole in `buf`).
        let read = tokio::time::timeout(Duration::from_millis(100), s.read(&mut chunk)).await;
        let end = match read {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                false
            }
        };
        while let Some((text, used)) = whole_frame(&buf) {
            lines.lock().unwrap().push(msg(&text).to_string());
            buf.drain(..used);
        }
        if end {
            return;
        }
    }
}

/// The first whole octet-counted frame in `buf`, and the bytes it takes.
fn whole_frame(buf: &[u8]) -> Option<(String, usize)> {
    let space = buf.iter().position(|&b| b == b' ')?;
    let len: usize = std::str::from_utf8(&buf[..space]).ok()?.parse().ok()?;
    let end = space + 1 + len;
    let text = String::from_utf8(buf.get(space + 1..end)?.to_vec()).unwrap();
    Some((text, end))
}

/// One octet-counted frame; `None` at the end of the stream (or a reset, or a cut frame).
pub async fn frame<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut len = Vec::new();
    loop {
        let b = s.read_u8().await.ok()?;
        if b == b' ' {
            break;
        }
        assert!(b.is_ascii_digit() && len.len() < 10, "bad MSG-LEN {len:?}");
        len.push(b);
    }
    let n: usize = std::str::from_utf8(&len).unwrap().parse().unwrap();
    let mut msg = vec![0u8; n];
    s.read_exact(&mut msg).await.ok()?;
    Some(String::from_utf8(msg).unwrap())
}

/// The MSG of an RFC 5424 message with lbo-proxy's structured data: the JSON after it.
fn msg(text: &str) -> &str {
    let at = text
        .find("] {")
        .expect("structured data, then the JSON record");
    &text[at + 2..]
}

/// A CA and what it signs: server certificates for collectors, client certificates for
/// the appliance.
pub struct TestCa {
    pub cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf for `name` (a DNS name or an IP address): certificate and key, PEM.
    pub fn leaf(&self, name: &str) -> (String, String) {
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A collector's TLS: a leaf for `name`, and, with `clients`, client certificates
    /// signed by that CA required.
    pub fn server_config(&self, name: &str, clients: Option<&TestCa>) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (cert, key) = self.leaf(name);
        let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match clients {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
                    .unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }
}
