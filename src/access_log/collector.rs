//! The connection to the SIEM collector: RFC 5424 messages over UDP (one per datagram),
//! TCP (octet counting) or TLS (RFC 5425), connected on first use and again after any
//! error, with a pause that doubles up to [`MAX_PAUSE`].
//!
//! A stream collector that stops reading must not hold the writer: a send that makes no
//! progress for `write_timeout` drops the connection. Delivery is counted against what
//! the collector's TCP acknowledged: frames sent but not acknowledged when a connection is
//! dropped (the kernel's send queue, `SIOCOUTQ`) are discarded with a reset and sent again
//! on the next connection, so a stall loses nothing that was already handed over; what
//! was acknowledged is in the collector's buffer and reaches it when it reads again.
//! Only at shutdown, with the collector still away, are such frames given up, and then by
//! their numbers.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};

use super::syslog::{self, Origin, Severity};
use super::Stop;
use crate::config::{SyslogConfig, SyslogTls, SyslogTransport};
use crate::outcome::rfc3339;

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// Reaching the collector; a black-holed address must not hold the writer for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest UDP payload; a longer message is cut (RFC 5426 3.2 lets receivers do so).
const MAX_DATAGRAM: usize = 65_507;
/// How long a connection the collector closed gets for what is in flight to arrive.
const SETTLE: Duration = Duration::from_secs(1);
/// How often (in frames) the acknowledged ones are let go.
const PRUNE_EVERY: usize = 256;

/// One line for the collector: its number, where it is in the writer's buffer (without
/// newline), its structured data and severity.
pub(super) struct Item {
    pub seq: u64,
    pub start: usize,
    pub end: usize,
    pub sd: String,
    pub severity: Severity,
    /// A record (counted when lost), not a checkpoint or report.
    pub record: bool,
}

/// A frame sent on the current connection and not yet known to be acknowledged.
struct Sent {
    /// Bytes written to the socket up to and including this frame.
    end: u64,
    seq: u64,
    record: bool,
    frame: Vec<u8>,
}

enum Connection {
    Udp(UdpSocket),
    Tcp(Counted<TcpStream>),
    Tls(Box<tokio_rustls::client::TlsStream<Counted<TcpStream>>>),
}

pub(super) struct Collector {
    config: SyslogConfig,
    origin: Origin,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    connection: Option<Connection>,
    unacked: VecDeque<Sent>,
    pause: Duration,
    since_prune: usize,
    frame: Vec<u8>,
    message: Vec<u8>,
}

impl Collector {
    /// Fails on TLS files that cannot be read (at start or reload); a collector that is
    /// down does not fail here.
    pub(super) fn new(config: SyslogConfig) -> std::io::Result<Collector> {
        let tls = match &config.transport {
            SyslogTransport::Tls(t) => Some(tls_config(t)?),
            _ => None,
        };
        let origin = Origin {
            facility: config.facility,
            hostname: config.hostname.clone().unwrap_or_else(host_name),
            app_name: config.app_name.clone(),
            procid: std::process::id().to_string(),
        };
        Ok(Collector {
            config,
            origin,
            tls,
            connection: None,
            unacked: VecDeque::new(),
            pause: FIRST_PAUSE,
            since_prune: 0,
            frame: Vec::with_capacity(2048),
            message: Vec::with_capacity(2048),
        })
    }

    pub(super) fn name(&self) -> String {
        let t = match self.config.transport {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
            SyslogTransport::Tls(_) => "tls",
        };
        format!("syslog {t} {}", self.config.address)
    }

    /// Sends the items in order until one cannot be delivered before `stop` gives up;
    /// returns how many were sent, and the last error met.
    pub(super) async fn write(
        &mut self,
        buf: &[u8],
        items: &[Item],
        stop: &Stop,
    ) -> (usize, Option<std::io::Error>) {
        let mut last_error = None;
        for (i, item) in items.iter().enumerate() {
            self.message.clear();
            let now = rfc3339(SystemTime::now());
            syslog::message(
                &self.origin,
                item.severity,
                &now,
                &item.sd,
                &buf[item.start..item.end],
                &mut self.message,
            );
            self.frame.clear();
            match self.config.transport {
                SyslogTransport::Udp => {
                    self.message.truncate(MAX_DATAGRAM);
                    self.frame.extend_from_slice(&self.message);
                }
                _ => syslog::octet_counted(&self.message, &mut self.frame),
            }
            let frame = std::mem::take(&mut self.frame);
            let sent = self
                .deliver(&frame, (item.seq, item.record), stop, &mut last_error)
                .await;
            self.frame = frame;
            if !sent {
                return (i, last_error);
            }
        }
        (items.len(), last_error)
    }

    /// At shutdown: waits (bounded by `stop`) for the collector to acknowledge what was
    /// sent, then resets the connection; returns the frames it never acknowledged, which
    /// the reset discarded: their numbers, and whether each was a record.
    pub(super) async fn finish(&mut self, stop: &Stop) -> Vec<(u64, bool)> {
        if self.connection.is_some() {
            while !self.unacked.is_empty() && !stop.expired() {
                self.settle(stop).await;
            }
        }
        self.drop_connection();
        self.unacked.drain(..).map(|s| (s.seq, s.record)).collect()
    }

    /// Tries until the frame is handed over or `stop` says to give up.
    async fn deliver(
        &mut self,
        frame: &[u8],
        (seq, record): (u64, bool),
        stop: &Stop,
        last_error: &mut Option<std::io::Error>,
    ) -> bool {
        loop {
            if stop.expired() {
                return false;
            }
            if self.connection.is_none() {
                if let Err(e) = self.reconnect(stop).await {
                    self.failed(&e, "cannot reach the syslog collector");
                    *last_error = Some(e);
                    self.rest(stop).await;
                    continue;
                }
            }
            match self.send(frame, stop).await {
                Ok(()) => {
                    self.pause = FIRST_PAUSE;
                    if !matches!(self.connection, Some(Connection::Udp(_))) {
                        self.unacked.push_back(Sent {
                            end: self.written(),
                            seq,
                            record,
                            frame: frame.to_vec(),
                        });
                        self.since_prune += 1;
                        if self.since_prune >= PRUNE_EVERY {
                            self.since_prune = 0;
                            self.prune();
                        }
                    }
                    return true;
                }
                Err(e) => {
                    self.failed(&e, "sending to the syslog collector failed");
                    if e.kind() == std::io::ErrorKind::ConnectionReset {
                        // It closed but may still be reading what is in flight (a
                        // restart): let that arrive rather than send it twice.
                        self.settle(stop).await;
                    }
                    self.drop_connection();
                    *last_error = Some(e);
                    self.rest(stop).await;
                }
            }
        }
    }

    /// Waits (up to a second) until the peer has acknowledged what was sent.
    async fn settle(&mut self, stop: &Stop) {
        let until = std::time::Instant::now() + SETTLE;
        loop {
            self.prune();
            if self.unacked.is_empty() || std::time::Instant::now() >= until || stop.expired() {
                return;
            }
            let _ = stop
                .bound(Duration::from_millis(10), std::future::pending::<()>())
                .await;
        }
    }

    /// Connects, and sends again what the last connection left unacknowledged.
    async fn reconnect(&mut self, stop: &Stop) -> std::io::Result<()> {
        let connection = stop.bound(CONNECT_TIMEOUT, self.connect()).await??;
        tracing::info!(collector = %self.config.address, resending = self.unacked.len(), "access log: connected to the syslog collector");
        self.connection = Some(connection);
        let again: Vec<Sent> = self.unacked.drain(..).collect();
        let mut again = again.into_iter();
        while let Some(s) = again.next() {
            if let Err(e) = self.send(&s.frame, stop).await {
                self.unacked.push_back(s);
                self.unacked.extend(again);
                self.drop_connection();
                return Err(e);
            }
            self.unacked.push_back(Sent {
                end: self.written(),
                ..s
            });
        }
        Ok(())
    }

    /// One frame, whole, within the write timeout.
    async fn send(&mut self, frame: &[u8], stop: &Stop) -> std::io::Result<()> {
        let timeout = self.config.write_timeout;
        let Some(connection) = &mut self.connection else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        if closed(connection) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the collector closed the connection",
            ));
        }
        let sending = async {
            match connection {
                Connection::Udp(socket) => socket.send(frame).await.map(drop),
                Connection::Tcp(stream) => stream.write_all(frame).await,
                Connection::Tls(stream) => {
                    stream.write_all(frame).await?;
                    stream.flush().await
                }
            }
        };
        match stop.bound(timeout, sending).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the collector took no bytes for {} ms", timeout.as_millis()),
            )),
        }
    }

    /// Drops the connection with a reset, letting go of the frames its peer acknowledged;
    /// the rest stay to be sent again.
    fn drop_connection(&mut self) {
        self.prune();
        if let Some(c) = self.connection.take() {
            let tcp = match &c {
                Connection::Udp(_) => None,
                Connection::Tcp(s) => Some(&s.inner),
                Connection::Tls(s) => Some(&s.get_ref().0.inner),
            };
            // With nothing left unacknowledged, an ordinary close will do.
            if let (Some(tcp), false) = (tcp, self.unacked.is_empty()) {
                reset_on_close(tcp);
            }
        }
    }

    /// Lets go of the frames the peer's TCP has acknowledged.
    fn prune(&mut self) {
        let Some(acked) = self.acknowledged() else {
            return;
        };
        while self.unacked.front().is_some_and(|s| s.end <= acked) {
            self.unacked.pop_front();
        }
    }

    /// Bytes of the current connection its peer acknowledged.
    fn acknowledged(&self) -> Option<u64> {
        let (tcp, written) = match self.connection.as_ref()? {
            Connection::Udp(_) => return None,
            Connection::Tcp(s) => (&s.inner, s.written),
            Connection::Tls(s) => (&s.get_ref().0.inner, s.get_ref().0.written),
        };
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int: the bytes not yet acknowledged.
        let r = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        (r == 0).then(|| written.saturating_sub(u64::try_from(queued).unwrap_or(0)))
    }

    fn written(&self) -> u64 {
        match &self.connection {
            Some(Connection::Tcp(s)) => s.written,
            Some(Connection::Tls(s)) => s.get_ref().0.written,
            _ => 0,
        }
    }

    fn failed(&self, e: &std::io::Error, what: &str) {
        crate::telemetry::metrics().access_log_write_error();
        tracing::warn!(
            collector = %self.config.address,
            waiting = self.unacked.len(),
            "access log: {what}: {}",
            crate::error_text::io(e)
        );
    }

    async fn rest(&mut self, stop: &Stop) {
        let _ = stop.bound(self.pause, std::future::pending::<()>()).await;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        let address = &self.config.address;
        let mut last = None;
        for addr in tokio::net::lookup_host(address).await? {
            let attempt = match &self.tls {
                None if self.config.transport == SyslogTransport::Udp => {
                    udp(addr).await.map(Connection::Udp)
                }
                None => tcp(addr).await.map(|s| Connection::Tcp(Counted::new(s))),
                Some((config, name)) => match tcp(addr).await {
                    Ok(s) => tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name.clone(), Counted::new(s))
                        .await
                        .map(|s| Connection::Tls(Box::new(s))),
                    Err(e) => Err(e),
                },
            };
            match attempt {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{address}: no address"),
            )
        }))
    }
}

/// A collector never sends application data: a stream that is readable at its end means
/// it closed (or broke) the connection. Reading also lets TLS take in what the collector
/// does send (session tickets, a close_notify).
fn closed(connection: &mut Connection) -> bool {
    let mut buf = [0u8; 512];
    let read = match connection {
        Connection::Udp(_) => return false,
        Connection::Tcp(s) => s.read(&mut buf).now_or_never(),
        Connection::Tls(s) => s.read(&mut buf).now_or_never(),
    };
    matches!(read, Some(Ok(0)) | Some(Err(_)))
}

/// A reset discards what the kernel still holds for the peer; a graceful close would go
/// on sending it after it was counted as undelivered. With a zero linger, close does not
/// wait.
fn reset_on_close(tcp: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: SO_LINGER with a valid struct linger of the given size, on an open socket.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

async fn tcp(addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn udp(addr: std::net::SocketAddr) -> std::io::Result<UdpSocket> {
    let local: std::net::SocketAddr = match addr {
        std::net::SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        std::net::SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    Ok(socket)
}

fn tls_config(
    t: &SyslogTls,
) -> std::io::Result<(
    Arc<rustls::ClientConfig>,
    rustls::pki_types::ServerName<'static>,
)> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let bad = |what: &std::path::Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", what.display()),
        )
    };
    let mut roots = rustls::RootCertStore::empty();
    match &t.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(path, &e))? {
                let cert = cert.map_err(|e| bad(path, &e))?;
                roots.add(cert).map_err(|e| bad(path, &e))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots);
    let config = match &t.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad(cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(cert, &e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| bad(cert, &e))?
        }
    };
    let name = ServerName::try_from(t.server_name.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    Ok((Arc::new(config), name))
}

/// The machine's host name, as the collector should show it; `-` (NILVALUE) if unknown.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A stream that counts the bytes written to it: the offsets `SIOCOUTQ` is measured
/// against (under TLS, the ciphertext).
struct Counted<S> {
    inner: S,
    written: u64,
}

impl<S> Counted<S> {
    fn new(inner: S) -> Counted<S> {
        Counted { inner, written: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
