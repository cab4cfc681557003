//! The upstream route: the security cloud's parent proxies, in priority order, with active
//! health checks (fall/rise) and failover. Direct traffic never waits on any of this.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::connect_head::{self, Reply};
use super::error::ConnectError;
use crate::config::{ParentConfig, UpstreamConfig};
use crate::policy::Target;
use crate::stream::ServerStream;

/// One parent and its health.
pub struct Parent {
    pub config: ParentConfig,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    up: AtomicBool,
    /// Consecutive failures (checks or real connections) while up; successes while down.
    streak: AtomicU32,
    /// Times this parent went down.
    pub downs: AtomicU64,
}

impl Parent {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

pub struct ParentPool {
    parents: Vec<Arc<Parent>>,
    fall: u32,
    rise: u32,
    connect_timeout: Duration,
    health_interval: Duration,
    health_timeout: Duration,
}

/// A stream through a parent and the parent's name for the log.
pub struct ThroughParent {
    pub stream: ServerStream,
    /// Bytes the parent sent after its CONNECT reply head (normally none).
    pub early: Bytes,
    pub parent: Arc<str>,
}

impl ParentPool {
    pub fn new(config: &UpstreamConfig, connect_timeout: Duration) -> anyhow::Result<ParentPool> {
        let mut parents = Vec::new();
        for p in &config.parents {
            let tls = match &p.tls {
                None => None,
                Some(t) => {
                    let name = ServerName::try_from(t.server_name.clone())
                        .map_err(|e| anyhow::anyhow!("parent {}: tls server name: {e}", p.name))?;
                    Some((
                        TlsConnector::from(Arc::new(tls_config(t.ca_file.as_deref())?)),
                        name,
                    ))
                }
            };
            parents.push(Arc::new(Parent {
                config: p.clone(),
                tls,
                up: AtomicBool::new(true),
                streak: AtomicU32::new(0),
                downs: AtomicU64::new(0),
            }));
        }
        // Only a pool that is built shows up in the metrics.
        for p in &parents {
            crate::telemetry::metrics().parent_configured(&p.config.name);
        }
        Ok(ParentPool {
            parents,
            fall: config.fall,
            rise: config.rise,
            connect_timeout,
            health_interval: config.health_interval,
            health_timeout: config.health_timeout,
        })
    }

    pub fn parents(&self) -> &[Arc<Parent>] {
        &self.parents
    }

    /// A tunnel to `target` through the first healthy parent that answers.
    pub async fn connect_tunnel(&self, target: &Target) -> Result<ThroughParent, ConnectError> {
        self.with_failover(|parent| async move {
            let mut stream = self.open(&parent).await?;
            let request =
                connect_head::request(target, parent.config.proxy_authorization.as_deref());
            let exchange = async {
                stream.write_all(&request).await?;
                read_reply(&mut stream).await
            };
            let reply = tokio::time::timeout(self.connect_timeout, exchange).await;
            let (status, early) = match reply {
                Err(_) => {
                    return Err(Failure::Down(ConnectError::Timeout(
                        parent.config.address.clone(),
                    )))
                }
                Ok(Err(e)) => return Err(Failure::Down(failed(&parent, e))),
                Ok(Ok(r)) => r,
            };
            if status.is_success() {
                return Ok(ThroughParent {
                    stream,
                    early,
                    parent: parent.config.name.clone(),
                });
            }
            // The parent is alive and said no: pass its answer on, except that a 407 means
            // our own credentials are wrong, which the client cannot fix.
            let status = if status == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED {
                http::StatusCode::BAD_GATEWAY
            } else {
                status
            };
            Err(Failure::Answer(ConnectError::ParentRefused {
                parent: parent.config.name.to_string(),
                status,
            }))
        })
        .await
    }

    /// A connection to the first healthy parent, for forwarding plain HTTP in absolute form.
    pub async fn connect_http(&self) -> Result<(ServerStream, Arc<Parent>), ConnectError> {
        self.with_failover(|parent| async move {
            let stream = self.open(&parent).await?;
            Ok((stream, parent))
        })
        .await
    }

    async fn with_failover<T, F, Fut>(&self, attempt: F) -> Result<T, ConnectError>
    where
        F: Fn(Arc<Parent>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        if self.parents.is_empty() {
            return Err(ConnectError::NoParent);
        }
        // What the client and the log are told: the last real failure, or that every
        // parent is marked down by the health checks.
        let mut last = String::from("every parent is marked down by its health checks");
        for parent in &self.parents {
            if !parent.is_up() {
                crate::telemetry::metrics().parent_failover(&parent.config.name);
                continue;
            }
            match attempt(parent.clone()).await {
                Ok(v) => {
                    self.record(parent, true);
                    return Ok(v);
                }
                Err(Failure::Answer(e)) => {
                    self.record(parent, true);
                    return Err(e);
                }
                Err(Failure::Down(e)) => {
                    tracing::warn!(parent = %parent.config.name, error = %e, "parent failed, trying the next");
                    crate::telemetry::metrics().parent_failover(&parent.config.name);
                    self.record(parent, false);
                    last = format!("{}: {e}", parent.config.name);
                }
            }
        }
        Err(ConnectError::ParentsDown { last })
    }

    async fn open(&self, parent: &Parent) -> Result<ServerStream, Failure> {
        let address = &parent.config.address;
        let tcp =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address.as_str()))
                .await
            {
                Err(_) => return Err(Failure::Down(ConnectError::Timeout(address.clone()))),
                Ok(Err(e)) => return Err(Failure::Down(failed(parent, e))),
                Ok(Ok(s)) => s,
            };
        let _ = tcp.set_nodelay(true);
        match &parent.tls {
            None => Ok(ServerStream::Tcp(tcp)),
            Some((connector, name)) => {
                let handshake = connector.connect(name.clone(), tcp);
                match tokio::time::timeout(self.connect_timeout, handshake).await {
                    Err(_) => Err(Failure::Down(ConnectError::Timeout(address.clone()))),
                    Ok(Err(e)) => Err(Failure::Down(failed(parent, e))),
                    Ok(Ok(s)) => Ok(ServerStream::Tls(Box::new(s))),
                }
            }
        }
    }

    /// Counts a success or failure towards the fall/rise thresholds.
    fn record(&self, parent: &Parent, ok: bool) {
        let up = parent.is_up();
        if ok == up {
            parent.streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = parent.streak.fetch_add(1, Ordering::Relaxed) + 1;
        if up && streak >= self.fall {
            parent.up.store(false, Ordering::Relaxed);
            parent.streak.store(0, Ordering::Relaxed);
            parent.downs.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::metrics().parent_state(&parent.config.name, false);
            tracing::error!(parent = %parent.config.name, "parent marked down");
        } else if !up && streak >= self.rise {
            parent.up.store(true, Ordering::Relaxed);
            parent.streak.store(0, Ordering::Relaxed);
            crate::telemetry::metrics().parent_state(&parent.config.name, true);
            tracing::info!(parent = %parent.config.name, "parent is back up");
        }
    }

    /// Checks every parent once (a TCP connect, and the TLS handshake when configured).
    pub async fn check_all(&self) {
        for parent in &self.parents {
            let ok = tokio::time::timeout(self.health_timeout, self.open(parent))
                .await
                .is_ok_and(|r| r.is_ok());
            let metrics = crate::telemetry::metrics();
            metrics.parent_checked(&parent.config.name, ok);
            self.record(parent, ok);
            // Also after a reload, whose pool inherits health the gauge has not seen yet.
            metrics.parent_up(&parent.config.name, parent.is_up());
        }
    }

    /// Runs the health checks until `shutdown` fires or the pool is replaced by a reload
    /// and no connection uses it any more.
    pub async fn run_health_checks(
        pool: std::sync::Weak<ParentPool>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(interval) = pool
            .upgrade()
            .filter(|p| !p.parents.is_empty())
            .map(|p| p.health_interval)
        else {
            return;
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => match pool.upgrade() {
                    Some(p) => p.check_all().await,
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Takes over the health of the parents an earlier pool knew (same name and address),
    /// so a reload neither revives a parent that is down nor forgets one that is up.
    pub fn inherit(&self, old: &ParentPool) {
        for p in &self.parents {
            let same = old
                .parents
                .iter()
                .find(|o| o.config.name == p.config.name && o.config.address == p.config.address);
            if let Some(o) = same {
                p.up.store(o.is_up(), Ordering::Relaxed);
                p.streak
                    .store(o.streak.load(Ordering::Relaxed), Ordering::Relaxed);
                p.downs
                    .store(o.downs.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }
}

/// How one attempt at a parent ended badly.
enum Failure {
    /// The parent is unreachable or broken: count it and try the next.
    Down(ConnectError),
    /// The parent answered: pass the answer on.
    Answer(ConnectError),
}

fn failed(parent: &Parent, e: std::io::Error) -> ConnectError {
    ConnectError::ParentFailed {
        parent: parent.config.name.to_string(),
        detail: crate::error_text::io(&e),
    }
}

async fn read_reply(stream: &mut ServerStream) -> std::io::Result<(http::StatusCode, Bytes)> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "parent closed before answering CONNECT",
            ));
        }
        match connect_head::parse_reply(&buf) {
            Ok(Reply::Partial) => continue,
            Ok(Reply::Complete { status, head_len }) => {
                let early = buf.split_off(head_len).freeze();
                return Ok((status, early));
            }
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
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
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(addr: String, fall: u32, rise: u32) -> ParentPool {
        let config = UpstreamConfig {
            parents: vec![ParentConfig {
                name: Arc::from("p"),
                address: addr,
                tls: None,
                proxy_authorization: None,
            }],
            health_interval: Duration::from_secs(1),
            health_timeout: Duration::from_secs(1),
            fall,
            rise,
        };
        ParentPool::new(&config, Duration::from_secs(1)).unwrap()
    }

    #[tokio::test]
    async fn health_checks_follow_fall_and_rise() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let pool = pool(addr.to_string(), 2, 2);
        let parent = pool.parents()[0].clone();
        pool.check_all().await;
        assert!(parent.is_up(), "one failure is below fall = 2");
        pool.check_all().await;
        assert!(!parent.is_up());
        assert_eq!(parent.downs.load(Ordering::Relaxed), 1);
        let _listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        pool.check_all().await;
        assert!(!parent.is_up(), "one success is below rise = 2");
        pool.check_all().await;
        assert!(parent.is_up());
    }

    #[tokio::test]
    async fn no_parent_and_all_down_are_distinct_errors() {
        let empty = ParentPool::new(
            &UpstreamConfig {
                parents: vec![],
                health_interval: Duration::from_secs(1),
                health_timeout: Duration::from_secs(1),
                fall: 1,
                rise: 1,
            },
            Duration::from_secs(1),
        )
        .unwrap();
        let t = Target::parse_authority("example.test:443", None).unwrap();
        assert!(matches!(
            empty.connect_tunnel(&t).await,
            Err(ConnectError::NoParent)
        ));
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let down = pool(addr.to_string(), 1, 1);
        assert!(matches!(
            down.connect_tunnel(&t).await,
            Err(ConnectError::ParentsDown { .. })
        ));
        assert!(!down.parents()[0].is_up());
        assert!(matches!(
            down.connect_tunnel(&t).await,
            Err(ConnectError::ParentsDown { .. })
        ));
    }
}
