//! Wiring: listeners from the config, the context every connection uses, hot reload (a new
//! context swapped in atomically), and an orderly shutdown (stop accepting, let tunnels
//! drain, then close what is left).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::access_log::AccessLog;
use crate::config::{self, Config};
use crate::egress::direct::DirectConnector;
use crate::egress::parent::ParentPool;
use crate::ingress::admission::Admission;
use crate::ingress::tunnels::Tunnels;
use crate::{admin, ingress, systemd};

/// What the requests in force share: the config and what is built from it. Each request
/// (every head of a kept-alive connection, each CONNECT, each transparent connection) is
/// decided with the context in force when it arrives; a reload swaps in a new one, and
/// open tunnels are decided again by the [`Tunnels`] registry.
pub struct Context {
    pub config: Arc<Config>,
    /// Counts reloads: what a kept-alive next-hop connection was made under.
    pub generation: u64,
    pub direct: DirectConnector,
    pub parents: Arc<ParentPool>,
    pub log: AccessLog,
    /// Becomes true when the proxy stops accepting.
    pub shutdown: watch::Receiver<bool>,
    /// Open client connections, bounded by `limits.max_connections` overall and
    /// `limits.max_connections_per_client` per address; shared across reloads.
    pub admission: Arc<Admission>,
    pub tasks: TaskTracker,
}

impl Context {
    /// A context for `config`, reusing what does not change from `old`: the access-log
    /// writer (same target), the open-connection counts (with the new limits), parent health.
    async fn build(config: Config, old: &Context) -> anyhow::Result<Context> {
        if config.state != old.config.state {
            tracing::warn!("state.dir is read at start only: restart to change it");
        }
        let log = if config.access_log == old.config.access_log {
            old.log.clone()
        } else if old.log.is_off() {
            AccessLog::start(&config.access_log, &old.config.state)
                .context("opening the access log")?
        } else {
            // The same writer goes on, so the numbering and the chain do.
            old.log
                .reconfigure(&config.access_log)
                .context("opening the access log")?;
            old.log.clone()
        };
        let admission = old.admission.clone();
        admission.set_limits(
            config.limits.max_connections,
            config.limits.max_connections_per_client,
        );
        let direct = DirectConnector::new(&config.direct, &config.timeouts)
            .context("setting up the direct route's resolver")?;
        let parents = ParentPool::new(&config.upstream, &config.timeouts, Some(&old.parents))
            .context("setting up the security cloud parents")?;
        for (segment, users) in &config.access.auth {
            if let Some(before) = old.config.access.users(segment) {
                users.inherit(before);
            }
        }
        Ok(Context {
            config: Arc::new(config),
            direct,
            parents: Arc::new(parents),
            log,
            generation: old.generation + 1,
            shutdown: old.shutdown.clone(),
            admission,
            tasks: old.tasks.clone(),
        })
    }
}

/// Builds what a run builds from a config before it serves, and drops it: `check` calls
/// it so that a config the run would refuse is refused there too.
pub fn preflight(config: &Config) -> anyhow::Result<()> {
    DirectConnector::new(&config.direct, &config.timeouts)
        .context("setting up the direct route's resolver")?;
    ParentPool::new(&config.upstream, &config.timeouts, None)
        .context("setting up the security cloud parents")?;
    Ok(())
}

/// Pending connections the kernel queues before accept: a burst of thousands of PCs at
/// 9:00 must not overflow it (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Accepted sockets inherit the listener's TCP_NODELAY (Linux and the BSDs), which saves a
/// system call per connection: the tunnels carry TLS handshakes, which Nagle would delay.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn addrs(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}

/// Resolves once the flag is set (shutdown has begun).
pub async fn stopping(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|set| *set).await;
}

/// The running proxy: the context in force, swapped on reload, and the open tunnels.
pub struct Live {
    current: arc_swap::ArcSwap<Context>,
    /// The file to re-read; `None`: the embedded default.
    path: Option<PathBuf>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Every open tunnel, across reloads.
    pub tunnels: Arc<Tunnels>,
    /// Cancelled when the proxy stops accepting: connections idle between requests close.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl Live {
    /// The context in force: one lock-free load, taken as each request arrives.
    pub fn current(&self) -> Arc<Context> {
        self.current.load_full()
    }

    /// Re-reads the config and allowlists, validates them, and swaps the new context in.
    /// On any error the running context stays and the error (with file:line) is returned.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one = self.reloading.lock().await;
        let result = self.try_reload().await;
        crate::telemetry::metrics().reload(result.is_ok());
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => tracing::error!("reload refused, the running configuration stays: {e}"),
        }
        result
    }

    async fn try_reload(&self) -> Result<(), ReloadError> {
        let path = self.path.clone();
        let config = tokio::task::spawn_blocking(move || config::load_to_run(path.as_deref()))
            .await
            .map_err(|e| ReloadError::Setup(e.to_string()))?
            .map_err(ReloadError::Config)?;
        let old = self.current();
        if config.proxy_listen != old.config.proxy_listen
            || config.admin_listen != old.config.admin_listen
            || config.transparent.tls_listen != old.config.transparent.tls_listen
            || config.transparent.http_listen != old.config.transparent.http_listen
        {
            tracing::warn!("listener addresses are read at start only: restart to change them");
        }
        let ctx = Context::build(config, &old)
            .await
            .map_err(|e| ReloadError::Setup(format!("{e:#}")))?;
        crate::telemetry::metrics().config_loaded(&ctx.config);
        let ctx = Arc::new(ctx);
        tokio::spawn(ParentPool::run_health_checks(
            Arc::downgrade(&ctx.parents),
            ctx.shutdown.clone(),
        ));
        let recheck = ctx.config.reload == config::admin::OpenTunnels::Recheck;
        self.current.store(ctx.clone());
        if recheck {
            let closed = self.tunnels.recheck(&ctx);
            if closed > 0 {
                tracing::info!(
                    closed,
                    "open tunnels whose route the new policy changes are closed"
                );
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(config::ConfigError),
    #[error("{0}")]
    Setup(String),
}

/// A bound, not yet running, proxy.
pub struct Server {
    live: Arc<Live>,
    proxy: Vec<TcpListener>,
    transparent_tls: Vec<TcpListener>,
    transparent_http: Vec<TcpListener>,
    admin: Option<TcpListener>,
    shutdown_tx: watch::Sender<bool>,
}

impl Server {
    /// Binds every listener and starts the access log; fails before serving anything.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let mut proxy = Vec::new();
        for addr in &config.proxy_listen {
            proxy.push(listen(*addr).with_context(|| format!("binding proxy listener {addr}"))?);
        }
        let mut transparent_tls = Vec::new();
        for addr in &config.transparent.tls_listen {
            transparent_tls.push(
                listen(*addr)
                    .with_context(|| format!("binding transparent TLS listener {addr}"))?,
            );
        }
        let mut transparent_http = Vec::new();
        for addr in &config.transparent.http_listen {
            transparent_http.push(
                listen(*addr)
                    .with_context(|| format!("binding transparent HTTP listener {addr}"))?,
            );
        }
        let admin = match config.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding admin listener {addr}"))?,
            ),
            None => None,
        };
        let log = AccessLog::start(&config.access_log, &config.state)
            .context("opening the access log")?;
        let direct = DirectConnector::new(&config.direct, &config.timeouts)
            .context("setting up the direct route's resolver")?;
        let parents = Arc::new(
            ParentPool::new(&config.upstream, &config.timeouts, None)
                .context("setting up the security cloud parents")?,
        );
        let (shutdown_tx, shutdown) = watch::channel(false);
        let path =
            (config.source != Path::new(config::EMBEDDED_NAME)).then(|| config.source.clone());
        crate::telemetry::metrics().config_loaded(&config);
        let ctx = Arc::new(Context {
            admission: Admission::new(
                config.limits.max_connections,
                config.limits.max_connections_per_client,
            ),
            config: Arc::new(config),
            generation: 0,
            direct,
            parents,
            log,
            shutdown,
            tasks: TaskTracker::new(),
        });
        let live = Arc::new(Live {
            current: arc_swap::ArcSwap::new(ctx),
            path,
            reloading: tokio::sync::Mutex::new(()),
            tunnels: Arc::default(),
            stopping: tokio_util::sync::CancellationToken::new(),
        });
        Ok(Server {
            live,
            proxy,
            transparent_tls,
            transparent_http,
            admin,
            shutdown_tx,
        })
    }

    pub fn proxy_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.proxy)
    }

    /// The transparent TLS (SNI) listeners' bound addresses.
    pub fn transparent_tls_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.transparent_tls)
    }

    /// The transparent HTTP (`Host`) listeners' bound addresses.
    pub fn transparent_http_addrs(&self) -> Vec<SocketAddr> {
        addrs(&self.transparent_http)
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The handle that reloads the running proxy (SIGHUP, `POST /-/reload`).
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// Serves until `shutdown` resolves, then drains open connections for up to
    /// `timeouts.drain` and closes the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let live = self.live;
        let first = live.current();
        let mut accept = Vec::new();
        for listener in self.proxy {
            tracing::info!(addr = ?listener.local_addr().ok(), "proxy listening");
            accept.push(tokio::spawn(ingress::explicit::serve(
                listener,
                live.clone(),
            )));
        }
        for listener in self.transparent_tls {
            tracing::info!(addr = ?listener.local_addr().ok(), "transparent TLS listening");
            accept.push(tokio::spawn(ingress::transparent_tls::serve(
                listener,
                live.clone(),
            )));
        }
        for listener in self.transparent_http {
            tracing::info!(addr = ?listener.local_addr().ok(), "transparent HTTP listening");
            accept.push(tokio::spawn(ingress::transparent_http::serve(
                listener,
                live.clone(),
            )));
        }
        if let Some(listener) = self.admin {
            tracing::info!(addr = ?listener.local_addr().ok(), "admin listening");
            tokio::spawn(admin::serve(listener, live.clone()));
        }
        tokio::spawn(ParentPool::run_health_checks(
            Arc::downgrade(&first.parents),
            first.shutdown.clone(),
        ));
        systemd::ready();
        let watchdog =
            systemd::watchdog_interval().map(|every| tokio::spawn(systemd::run_watchdog(every)));
        drop(first);
        shutdown.await;
        systemd::notify("STOPPING=1");
        let ctx = live.current();
        tracing::info!(
            open = ctx.tasks.len(),
            drain = ?ctx.config.timeouts.drain,
            "shutting down: no new connections, draining open ones"
        );
        let _ = self.shutdown_tx.send(true);
        live.stopping.cancel();
        for a in accept {
            let _ = a.await;
        }
        ctx.tasks.close();
        if tokio::time::timeout(ctx.config.timeouts.drain, ctx.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = ctx.tasks.len(),
                "drain time over: closing open tunnels"
            );
            live.tunnels.close_all();
            ctx.tasks.wait().await;
        }
        ctx.log.close().await;
        if let Some(w) = watchdog {
            w.abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
