//! The open tunnels of the running proxy, held by the server across reloads. Each entry
//! keeps what deciding the tunnel again needs (client, user, target, the route it took
//! and why, what its first bytes were) and a way to close it, so that a reload can close
//! exactly the tunnels whose route the new policy would change (`[reload] open_tunnels =
//! "recheck"`), and shutdown can end every one. The entry also shares the relay's byte
//! counters: a table of open tunnels reads them as they move.
//!
//! Deciding again and registering take the same lock after the new policy is in force,
//! so no tunnel slips between a reload's pass and its own registration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use tokio::sync::Notify;

use super::proxy_auth::Admitted;
use super::sni_check::First;
use crate::policy::{Decision, Target};
use crate::relay::RelayStats;
use crate::server::{Context, Live};

/// Why a tunnel was closed from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The policy in force would route it otherwise: why.
    PolicyChanged(String),
    /// The proxy is shutting down and the drain time is over.
    Shutdown,
}

/// One open tunnel.
pub struct OpenTunnel {
    pub listener: &'static str,
    pub client: SocketAddr,
    /// The proxy user whose credentials opened it, when its segment asks for them.
    pub user: Option<Admitted>,
    pub target: Target,
    pub started: SystemTime,
    /// The decision it was opened under (segment, profile, category, rule, route).
    pub decision: Decision,
    /// Upstream: the parent and a fingerprint of its settings as they were.
    pub parent: Option<(Arc<str>, u64)>,
    /// Direct: the address connected to.
    pub server: Option<SocketAddr>,
    /// What the client sent first, once looked at: `None` when no check reads it.
    pub first: OnceLock<Option<First>>,
    /// Tenant restrictions applied to it: a fingerprint of the policy and headers.
    pub tenant: OnceLock<Option<u64>>,
    /// Bytes each way, counted by the relay itself.
    pub stats: RelayStats,
    /// Set once, when it is closed from outside; `close` wakes whoever waits.
    closed: OnceLock<Closed>,
    close: Notify,
}

impl OpenTunnel {
    /// An entry for a tunnel opened under `decision`.
    pub fn new(
        listener: &'static str,
        client: SocketAddr,
        user: Option<Admitted>,
        target: Target,
        decision: Decision,
    ) -> OpenTunnel {
        OpenTunnel {
            listener,
            client,
            user,
            target,
            started: SystemTime::now(),
            decision,
            parent: None,
            server: None,
            first: OnceLock::new(),
            tenant: OnceLock::new(),
            stats: RelayStats::default(),
            closed: OnceLock::new(),
            close: Notify::new(),
        }
    }

    /// Resolves when the tunnel is closed from outside.
    pub async fn closed(&self) {
        loop {
            let notified = self.close.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the flag is read: a close in between still wakes it.
            notified.as_mut().enable();
            if self.closed.get().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Why it was closed from outside, once it was.
    pub fn why_closed(&self) -> Option<&Closed> {
        self.closed.get()
    }

    fn close(&self, why: Closed) {
        if self.closed.set(why).is_ok() {
            self.close.notify_waiters();
        }
    }
}

/// The registry.
#[derive(Default)]
pub struct Tunnels {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<OpenTunnel>>>,
    /// Set when the drain is over: nothing new may open.
    closing: AtomicBool,
}

/// A registered tunnel; leaves the registry when dropped.
pub struct Registered {
    tunnels: Arc<Tunnels>,
    id: u64,
    pub entry: Arc<OpenTunnel>,
}

impl std::ops::Deref for Registered {
    type Target = OpenTunnel;
    fn deref(&self) -> &OpenTunnel {
        &self.entry
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.tunnels.lock().remove(&self.id);
    }
}

impl Tunnels {
    /// Registers a tunnel about to relay, deciding it again under the policy in force
    /// now (a reload may have come while it connected). `Err` says why it may not open.
    pub fn open(self: &Arc<Self>, entry: OpenTunnel, live: &Live) -> Result<Registered, Closed> {
        let entry = Arc::new(entry);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut open = self.lock();
        if self.closing.load(Ordering::Relaxed) {
            return Err(Closed::Shutdown);
        }
        if let Some(why) = super::recheck::again(&live.current(), &entry) {
            return Err(Closed::PolicyChanged(why));
        }
        open.insert(id, entry.clone());
        Ok(Registered {
            tunnels: self.clone(),
            id,
            entry,
        })
    }

    /// Decides an open tunnel again under the policy in force, after it learnt more about
    /// itself (its first bytes); closes it when its route would differ.
    pub fn settle(&self, entry: &OpenTunnel, live: &Live) -> Option<String> {
        let _held = self.lock();
        let why = super::recheck::again(&live.current(), entry)?;
        entry.close(Closed::PolicyChanged(why.clone()));
        Some(why)
    }

    /// After a reload: closes every tunnel whose route the policy now in force would
    /// change; returns how many.
    pub fn recheck(&self, ctx: &Context) -> usize {
        let open = self.lock();
        let mut closed = 0;
        for entry in open.values() {
            if let Some(why) = super::recheck::again(ctx, entry) {
                entry.close(Closed::PolicyChanged(why));
                closed += 1;
            }
        }
        closed
    }

    /// The drain is over: every open tunnel closes, nothing new opens.
    pub fn close_all(&self) {
        let open = self.lock();
        self.closing.store(true, Ordering::Relaxed);
        for entry in open.values() {
            entry.close(Closed::Shutdown);
        }
    }

    /// The open tunnels, oldest first.
    pub fn list(&self) -> Vec<Arc<OpenTunnel>> {
        let open = self.lock();
        let mut all: Vec<(u64, Arc<OpenTunnel>)> =
            open.iter().map(|(id, e)| (*id, e.clone())).collect();
        all.sort_by_key(|(id, _)| *id);
        all.into_iter().map(|(_, e)| e).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A poisoned lock only means a thread panicked holding it; the map is still whole.
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<OpenTunnel>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}
