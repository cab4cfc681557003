//! The connection to the SIEM collector: RFC 5424 messages over UDP (one per datagram)
//! or TCP (octet counting), connected on first use and again after any error. While the
//! collector is unreachable the writer retries the same record with a growing pause, so
//! records wait in the queue (and overflow is counted) instead of vanishing.

use std::time::{Duration, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::syslog::{self, Origin, Severity};
use crate::config::{SyslogConfig, SyslogTransport};
use crate::outcome::rfc3339;

/// Attempts for one record before it is given up as lost (about 20 s in all).
const ATTEMPTS: u32 = 8;
/// First pause between attempts; doubled each time up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// Reaching the collector; a black-holed address must not hold the writer for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest UDP payload; a longer message is cut (RFC 5426 3.2 lets receivers do so).
const MAX_DATAGRAM: usize = 65_507;

enum Connection {
    Udp(UdpSocket),
    /// Unbuffered: a record is handed to the kernel whole, or known to have failed.
    Tcp(TcpStream),
}

pub(super) struct Collector {
    config: SyslogConfig,
    origin: Origin,
    connection: Option<Connection>,
    frame: Vec<u8>,
    buf: Vec<u8>,
}

impl Collector {
    pub(super) fn new(config: SyslogConfig) -> Collector {
        let origin = Origin {
            facility: config.facility,
            hostname: config.hostname.clone().unwrap_or_else(host_name),
            app_name: config.app_name.clone(),
            procid: std::process::id().to_string(),
        };
        Collector {
            config,
            origin,
            connection: None,
            frame: Vec::with_capacity(1024),
            buf: Vec::with_capacity(1024),
        }
    }

    /// Sends one message, reconnecting as needed; an error means the record is lost.
    pub(super) async fn send(&mut self, line: &[u8], severity: Severity) -> std::io::Result<()> {
        self.buf.clear();
        let now = rfc3339(SystemTime::now());
        syslog::message(&self.origin, severity, &now, line, &mut self.buf);
        self.frame.clear();
        match self.config.transport {
            SyslogTransport::Udp => {
                self.buf.truncate(MAX_DATAGRAM);
                self.frame.extend_from_slice(&self.buf);
            }
            SyslogTransport::Tcp => syslog::octet_counted(&self.buf, &mut self.frame),
        }
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1;
        loop {
            match self.try_send().await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= ATTEMPTS => return Err(e),
                Err(e) => {
                    crate::telemetry::metrics().access_log_write_error();
                    tracing::warn!(
                        collector = %self.config.address,
                        attempt,
                        "access log: syslog collector unreachable, retrying: {e}"
                    );
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
            attempt += 1;
        }
    }

    async fn try_send(&mut self) -> std::io::Result<()> {
        if let Some(Connection::Tcp(stream)) = &self.connection {
            if closed(stream) {
                tracing::info!(collector = %self.config.address, "access log: the syslog collector closed the connection");
                self.connection = None;
            }
        }
        let connection = match &mut self.connection {
            Some(c) => c,
            None => self.connection.insert(self.connect().await?),
        };
        let sent = match connection {
            Connection::Udp(socket) => socket.send(&self.frame).await.map(drop),
            Connection::Tcp(stream) => stream.write_all(&self.frame).await,
        };
        if sent.is_err() {
            // A half-written frame would desynchronise the stream: start a new one.
            self.connection = None;
        }
        sent
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        let address = &self.config.address;
        let reach = async {
            let mut last = None;
            for addr in tokio::net::lookup_host(address).await? {
                let attempt = match self.config.transport {
                    SyslogTransport::Udp => udp(addr).await.map(Connection::Udp),
                    SyslogTransport::Tcp => TcpStream::connect(addr).await.map(Connection::Tcp),
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
        };
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, reach)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        tracing::info!(collector = %address, "access log: connected to the syslog collector");
        Ok(connection)
    }
}

/// A collector never sends: a readable stream means it closed (or broke) the connection,
/// and a record written now would be lost without an error.
fn closed(stream: &TcpStream) -> bool {
    match stream.try_read(&mut [0u8; 64]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
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

/// The machine's host name, as the collector should show it; `-` (NILVALUE) if unknown.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
