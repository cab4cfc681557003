//! A fake Microsoft sign-in server on loopback for the tenant-restriction tests: TLS with
//! a certificate from its own CA (standing for the public PKI), HTTP/1.1 and HTTP/2 by
//! ALPN, recording every ClientHello it gets and every request's headers. Plus a rustls
//! client that goes through the proxy with CONNECT and an ALPN of its own, and a curl
//! runner that keeps curl's exit code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Proxy;

/// The first bytes of a connection as the sign-in server saw them.
#[derive(Clone, Debug)]
pub struct Hello {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
}

/// One request as it reached the sign-in server.
#[derive(Clone, Debug)]
pub struct Seen {
    pub version: http::Version,
    pub authority: String,
    pub path: String,
    pub headers: http::HeaderMap,
}

impl Seen {
    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

pub struct SignIn {
    pub addr: SocketAddr,
    /// The CA of the server's certificate, to give the proxy (`upstream_ca_file`) or a
    /// client that must see the server itself.
    pub ca_pem: PathBuf,
    hellos: Arc<Mutex<Vec<Hello>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl SignIn {
    /// Serves `names` with ALPN `alpn` (e.g. `[b"h2", b"http/1.1"]`); the CA goes to `dir`.
    pub async fn start(dir: &Path, names: &[&str], alpn: &[&[u8]]) -> SignIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Fake public root");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca_pem = dir.join(format!("signin-ca-{}.pem", addr.port()));
        std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let config = Arc::new(config);
        let hellos = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h, s) = (hellos.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, config.clone(), h.clone(), s.clone()));
            }
        });
        SignIn {
            addr,
            ca_pem,
            hellos,
            seen,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn hellos(&self) -> Vec<Hello> {
        self.hellos.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    hellos: Arc<Mutex<Vec<Hello>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let Ok(start) = acceptor.await else { return };
    let hello = start.client_hello();
    hellos.lock().unwrap().push(Hello {
        sni: hello.server_name().map(str::to_string),
        alpn: hello
            .alpn()
            .map(|a| a.map(|p| String::from_utf8_lossy(p).to_string()).collect())
            .unwrap_or_default(),
    });
    let Ok(tls) = start.into_stream(config).await else {
        return;
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let service = service_fn(move |req: http::Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let authority = req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .or_else(|| {
                    req.headers()
                        .get("host")
                        .map(|h| h.to_str().unwrap().to_string())
                })
                .unwrap_or_default();
            seen.lock().unwrap().push(Seen {
                version: req.version(),
                authority,
                path: req.uri().path().to_string(),
                headers: req.headers().clone(),
            });
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                "signed in\n",
            ))))
        }
    });
    let io = TokioIo::new(tls);
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    }
}

/// Through the proxy with CONNECT `authority`, then TLS to `host` trusting only `ca_pem`
/// and offering `alpn`; one HTTP/1.1 GET. Returns the response, or the error.
pub async fn rustls_get(
    proxy: &Proxy,
    authority: &str,
    host: &str,
    ca_pem: &Path,
    alpn: &[&[u8]],
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if tcp.read(&mut b).await.unwrap() == 0 {
            return Err(format!("proxy closed: {}", String::from_utf8_lossy(&head)));
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(String::from_utf8_lossy(&head).to_string());
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).to_string())
}

/// A curl run through the proxy with the exit code kept.
#[derive(Debug)]
pub struct CurlRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `curl -s -x PROXY ARGS…` (bounded by `--max-time 15`).
pub async fn curl_run(proxy: &Proxy, args: &[&str]) -> CurlRun {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "15", "-x", &proxy.url()])
        .args(args)
        .output()
        .await
        .expect("curl is not installed: run scripts/test");
    CurlRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}
