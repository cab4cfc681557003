//! Opening a connection to a parent: its name resolved (the system resolver, or
//! `upstream.dns`), TCP connected, and TLS when configured. Every failure comes back as a
//! sentence that says what happened, for the log, the status page and the error page.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{ParentConfig, ParentTls};
use crate::egress::error::words;
use crate::egress::resolver::Resolver;
use crate::egress::ConnectError;
use crate::stream::ServerStream;

/// How to reach one parent: its address and TLS settings. Kept across reloads that leave
/// them unchanged, so the TLS session cache (and with it resumption) and the standby
/// connections outlive a reload; a reload that changes them gets a new one.
pub struct Link {
    pub address: String,
    tls: Option<TlsLink>,
    /// The parent resolvers the address was looked up with (part of what the link is).
    dns: Vec<SocketAddr>,
    /// Tells links apart where connections are kept (the `http://` path).
    pub id: u64,
}

struct TlsLink {
    /// One client config per parent: its session cache is what makes resumption happen.
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    early_data: bool,
    settings: ParentTls,
    /// The CA file's contents when read: a file replaced under the same name is a change.
    ca: Option<Vec<u8>>,
}

/// A connection to a parent and how its TLS session began.
pub struct Dialled {
    pub stream: ServerStream,
    /// `Some(true)` when the TLS session was resumed; `None` without TLS, or while the
    /// handshake is still under way (early data).
    pub resumed: Option<bool>,
}

impl Link {
    pub fn new(p: &ParentConfig, dns: &[SocketAddr], id: u64) -> anyhow::Result<Link> {
        let tls = match &p.tls {
            None => None,
            Some(t) => {
                let name = ServerName::try_from(t.server_name.clone())
                    .map_err(|e| anyhow::anyhow!("parent {}: tls server name: {e}", p.name))?;
                let ca = match &t.ca_file {
                    Some(path) => Some(
                        std::fs::read(path)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                    ),
                    None => None,
                };
                Some(TlsLink {
                    config: Arc::new(client_config(ca.as_deref(), t)?),
                    name,
                    early_data: t.early_data,
                    settings: t.clone(),
                    ca,
                })
            }
        };
        Ok(Link {
            address: p.address.clone(),
            tls,
            dns: dns.to_vec(),
            id,
        })
    }

    /// Whether `p` (with `dns`) would be reached the same way as this link.
    pub fn same_as(&self, p: &ParentConfig, dns: &[SocketAddr]) -> bool {
        let tls_same = match (&self.tls, &p.tls) {
            (None, None) => true,
            (Some(have), Some(want)) => {
                have.settings.server_name == want.server_name
                    && have.settings.ca_file == want.ca_file
                    && have.early_data == want.early_data
                    && have.ca == want.ca_file.as_ref().and_then(|f| std::fs::read(f).ok())
            }
            _ => false,
        };
        self.address == p.address && self.dns == dns && tls_same
    }

    /// Whether a tunnel's `CONNECT` may go in TLS early data on this link.
    pub fn early_data(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.early_data)
    }

    /// Resolves, connects and (with TLS) handshakes, each step within `timeout`. With
    /// `early`, a resumed TLS 1.3 session returns before the handshake is done, so the
    /// first bytes written go in early data.
    pub async fn dial(
        &self,
        resolver: Option<&Resolver>,
        timeout: Duration,
        early: bool,
    ) -> Result<Dialled, String> {
        let addrs = self.resolve(resolver, timeout).await?;
        let tcp = connect(&addrs, timeout).await?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Dialled {
                stream: ServerStream::Tcp(tcp),
                resumed: None,
            });
        };
        let connector = TlsConnector::from(tls.config.clone()).early_data(early);
        match tokio::time::timeout(timeout, connector.connect(tls.name.clone(), tcp)).await {
            Err(_) => Err(format!("TLS handshake timed out after {}", words(timeout))),
            Ok(Err(e)) => Err(format!("TLS handshake failed: {}", tls_words(&e, tls))),
            Ok(Ok(s)) => {
                let resumed = handshake_resumed(&s);
                Ok(Dialled {
                    stream: ServerStream::Tls(Box::new(s)),
                    resumed,
                })
            }
        }
    }

    async fn resolve(
        &self,
        resolver: Option<&Resolver>,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, String> {
        if let Ok(addr) = self.address.parse::<SocketAddr>() {
            return Ok(vec![addr]);
        }
        let (host, port) = self
            .address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("{} is not host:port", self.address))?;
        match resolver {
            Some(r) => match r.lookup(host).await {
                Ok(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
                Err(ConnectError::DnsTimeout(_)) => Err(format!(
                    "the name {host} was not resolved in time (upstream.dns did not answer)"
                )),
                Err(ConnectError::DnsFailed { detail, .. }) => {
                    Err(format!("the name {host} does not resolve ({detail})"))
                }
                Err(e) => Err(e.to_string()),
            },
            None => {
                match tokio::time::timeout(timeout, tokio::net::lookup_host(&self.address)).await {
                    Err(_) => Err(format!(
                        "the name {host} was not resolved within {}",
                        words(timeout)
                    )),
                    Ok(Err(e)) => Err(format!(
                        "the name {host} does not resolve ({})",
                        io_words(&e)
                    )),
                    Ok(Ok(found)) => {
                        let addrs: Vec<SocketAddr> = found.collect();
                        if addrs.is_empty() {
                            Err(format!("the name {host} has no address"))
                        } else {
                            Ok(addrs)
                        }
                    }
                }
            }
        }
    }
}

/// Connects to the first address that answers, all within `timeout`.
async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, String> {
    let attempt = async {
        let mut last = String::new();
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("TCP connect to {addr} {}", io_words(&e)),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => {
            let to = match addrs {
                [one] => one.to_string(),
                _ => format!("{} addresses", addrs.len()),
            };
            Err(format!(
                "TCP connect to {to} timed out after {}",
                words(timeout)
            ))
        }
    }
}

/// Whether the connection's TLS session was resumed, once its handshake is done.
pub fn handshake_resumed(s: &tokio_rustls::client::TlsStream<TcpStream>) -> Option<bool> {
    let (_, conn) = s.get_ref();
    conn.handshake_kind()
        .map(|k| k == rustls::HandshakeKind::Resumed)
}

/// Whether a connection kept unused is still open: the parent has not closed it and
/// sent nothing (a TLS connection may hold session tickets, which is fine).
pub fn still_open(stream: &ServerStream) -> bool {
    let (fd, tls) = match stream {
        ServerStream::Tcp(s) => (s.as_raw_fd(), false),
        ServerStream::Tls(s) => (s.get_ref().0.as_raw_fd(), true),
    };
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte peek into a valid buffer on a socket this stream owns; it
    // neither blocks (MSG_DONTWAIT) nor consumes anything (MSG_PEEK).
    let n = unsafe {
        libc::recv(
            fd,
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => false,
        n if n > 0 => tls,
        _ => std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// An I/O error as words, without the OS error number.
pub fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "refused".into(),
        K::ConnectionReset => "reset by the parent".into(),
        K::ConnectionAborted => "aborted".into(),
        K::BrokenPipe => "closed by the parent".into(),
        K::UnexpectedEof => "closed by the parent".into(),
        K::TimedOut => "timed out".into(),
        K::HostUnreachable => "failed: no route to the host".into(),
        K::NetworkUnreachable => "failed: the network is unreachable".into(),
        K::AddrNotAvailable => "failed: no local address available".into(),
        _ => {
            let text = e.to_string();
            let text = match text.find(" (os error") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            format!("failed: {}", text.to_lowercase())
        }
    }
}

/// A TLS handshake error as words, with the setting to look at.
fn tls_words(e: &std::io::Error, tls: &TlsLink) -> String {
    use rustls::CertificateError as C;
    let Some(err) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "the parent closed the connection (is tls = true right for this port?)".into()
            }
            _ => format!("the connection {}", io_words(e)),
        };
    };
    let name = &tls.settings.server_name;
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!(
                "the parent's certificate is not signed by a trusted CA ({})",
                match &tls.settings.ca_file {
                    Some(f) => format!("tls_ca_file {}", f.display()),
                    None => "the system's CAs; set tls_ca_file".into(),
                }
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the parent's certificate is not valid for the name {name} (tls_server_name)"
            ),
            C::Expired | C::ExpiredContext { .. } => "the parent's certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the parent's certificate is not valid yet (check the clock)".into()
            }
            C::Revoked => "the parent's certificate is revoked".into(),
            C::BadSignature => "the parent's certificate has a bad signature".into(),
            // webpki's own reasons (a CA used as the server's certificate…) come as
            // `Other`, whose text is the reason's name.
            C::Other(reason) => format!(
                "the parent's certificate was refused: {}",
                camel_words(&reason.to_string())
            ),
            other => format!(
                "the parent's certificate was refused: {}",
                camel_words(&format!("{other:?}"))
            ),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the parent refused the handshake (TLS alert: {})",
            camel_words(&format!("{alert:?}"))
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the parent did not answer in TLS (is tls = true right for this port?)".into()
        }
        rustls::Error::NoCertificatesPresented => "the parent presented no certificate".into(),
        other => crate::error_text::tls(other),
    }
}

/// `HandshakeFailure` → `handshake failure`: an enum name as words.
fn camel_words(name: &str) -> String {
    let name = name.split(['(', '{', ' ']).next().unwrap_or(name);
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn client_config(ca: Option<&[u8]>, t: &ParentTls) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(pem) => {
            let shown = t
                .ca_file
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string());
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
                roots.add(cert)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_early_data = t.early_data;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_words() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_words(&refused), "refused");
        let other = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(io_words(&other), "failed: permission denied");
        assert_eq!(camel_words("HandshakeFailure"), "handshake failure");
        assert_eq!(camel_words("UnknownIssuer"), "unknown issuer");
    }

    #[tokio::test]
    async fn a_closed_port_and_an_unknown_name_say_so() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let p = |address: String| super::super::tests::parent("p", address);
        let link = Link::new(&p(addr.to_string()), &[], 1).unwrap();
        let e = link
            .dial(None, Duration::from_secs(1), false)
            .await
            .err()
            .unwrap();
        assert_eq!(e, format!("TCP connect to {addr} refused"));
        assert!(link.same_as(&p(addr.to_string()), &[]));
        assert!(!link.same_as(&p("127.0.0.1:1".into()), &[]));
    }
}
