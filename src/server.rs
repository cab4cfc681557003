//! Wiring: listeners from the config, the shared context every connection uses, and an
//! orderly shutdown (stop accepting, let tunnels drain, then close what is left).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::egress::direct::DirectConnector;
use crate::egress::parent::ParentPool;
use crate::outcome::AccessLog;
use crate::{admin, ingress};

/// What every connection shares. A connection keeps the context it started with.
pub struct Context {
    pub config: Arc<Config>,
    pub direct: DirectConnector,
    pub parents: Arc<ParentPool>,
    pub log: AccessLog,
    /// Becomes true when the proxy stops accepting.
    pub shutdown: watch::Receiver<bool>,
    /// Becomes true when the drain time is over and open tunnels must close.
    drain_over: watch::Receiver<bool>,
    /// Open client connections, bounded by `limits.max_connections`.
    pub connections: Arc<Semaphore>,
    pub tasks: TaskTracker,
}

impl Context {
    /// Resolves when open tunnels must stop.
    pub async fn drained(&self) {
        stopping(&mut self.drain_over.clone()).await;
    }
}

/// Resolves once the flag is set (shutdown has begun).
pub async fn stopping(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|set| *set).await;
}

/// A bound, not yet running, proxy.
pub struct Server {
    ctx: Arc<Context>,
    proxy: Vec<TcpListener>,
    admin: Option<TcpListener>,
    shutdown_tx: watch::Sender<bool>,
    drain_tx: watch::Sender<bool>,
}

impl Server {
    /// Binds every listener and starts the access log; fails before serving anything.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let config = Arc::new(config);
        let mut proxy = Vec::new();
        for addr in &config.proxy_listen {
            proxy.push(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding proxy listener {addr}"))?,
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
        let log = AccessLog::start(&config.access_log)
            .await
            .context("opening the access log")?;
        let direct = DirectConnector::new(&config.direct, &config.timeouts)
            .context("setting up the direct route's resolver")?;
        let parents = Arc::new(
            ParentPool::new(&config.upstream, config.timeouts.connect)
                .context("setting up the security cloud parents")?,
        );
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (drain_tx, drain_over) = watch::channel(false);
        let ctx = Arc::new(Context {
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            config,
            direct,
            parents,
            log,
            shutdown,
            drain_over,
            tasks: TaskTracker::new(),
        });
        Ok(Server {
            ctx,
            proxy,
            admin,
            shutdown_tx,
            drain_tx,
        })
    }

    pub fn proxy_addrs(&self) -> Vec<SocketAddr> {
        self.proxy
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then drains open connections for up to
    /// `timeouts.drain` and closes the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let ctx = self.ctx;
        let mut accept = Vec::new();
        for listener in self.proxy {
            tracing::info!(addr = ?listener.local_addr().ok(), "proxy listening");
            accept.push(tokio::spawn(ingress::explicit::serve(
                listener,
                ctx.clone(),
            )));
        }
        if let Some(listener) = self.admin {
            tracing::info!(addr = ?listener.local_addr().ok(), "admin listening");
            tokio::spawn(admin::serve(listener, ctx.clone()));
        }
        tokio::spawn(ctx.parents.clone().run_health_checks(ctx.shutdown.clone()));
        shutdown.await;
        tracing::info!(
            open = ctx.tasks.len(),
            drain = ?ctx.config.timeouts.drain,
            "shutting down: no new connections, draining open ones"
        );
        let _ = self.shutdown_tx.send(true);
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
            let _ = self.drain_tx.send(true);
            ctx.tasks.wait().await;
        }
        ctx.log.flush().await;
        Ok(())
    }
}
