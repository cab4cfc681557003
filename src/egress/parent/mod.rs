//! The upstream route: the security cloud's parent proxies, with health checks, a choice
//! of parent per connection (`balance`), standby connections, and a failure model that
//! says who failed. Direct traffic never waits on any of this.
//!
//! Every attempt through a parent ends in one class, and the class decides what happens:
//!
//! | what happened | counts toward `fall` | next parent tried | client gets |
//! |---|---|---|---|
//! | connect, TLS or name lookup failed, or closed before any reply byte | yes | yes | the next parent's answer, else 502 |
//! | no answer within `timeouts.parent_answer` once the parent had the request | no | no | 504 `parent_timeout` |
//! | the parent's 502/503/504 (the destination failed, as the parent saw it) | no | no | that status, `parent_origin_error` |
//! | the parent's 407/403/other 4xx | no | no | 502 page, `parent_refused` |
//! | a broken reply (malformed, too large, cut off) | yes | no | 502 `parent_failed` |
//!
//! A request a parent has is never sent to another: only what never reached one fails
//! over. `parents_down` is the answer only when every parent is marked down.

mod balance;
mod dial;
mod exchange;
mod health;
mod http_forward;
mod standby;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use self::dial::{Dialled, Link};
use self::exchange::Answer;
use self::health::{Change, Health, Source};
use self::standby::Standby;
use super::connect_head;
use super::error::ConnectError;
use super::resolver::Resolver;
use crate::config::{Balance, HealthCheck, ParentConfig, Timeouts, UpstreamConfig};
use crate::policy::Target;
use crate::stream::ServerStream;
use crate::telemetry::{metrics, AttemptClass};

pub use self::health::{CheckResult, HealthView};
pub use self::http_forward::{HttpAnswer, KeptLink};

/// Link ids, unique in the process.
static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// One parent: how it is reached, its health, its standby connections.
pub struct Parent {
    pub config: ParentConfig,
    link: Arc<Link>,
    health: Arc<Health>,
    standby: Option<Arc<Standby>>,
    /// A 407 or 403 from this parent was logged at warn since the last reload.
    warned: AtomicBool,
}

impl Parent {
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    pub fn health(&self) -> HealthView {
        self.health.view()
    }

    /// Standby connections ready now, and how many are kept.
    pub fn standby(&self) -> (usize, usize) {
        self.standby
            .as_ref()
            .map_or((0, 0), |s| (s.ready(), self.config.standby))
    }
}

pub struct ParentPool {
    parents: Vec<Arc<Parent>>,
    balance: Balance,
    /// The weighted rotation of `round_robin`, and the turn counter that walks it.
    rotation: Vec<usize>,
    turn: AtomicU64,
    fall: u32,
    rise: u32,
    connect_timeout: Duration,
    parent_answer: Duration,
    health_interval: Duration,
    health_timeout: Duration,
    health_check: HealthCheck,
    /// `upstream.dns`; `None`: the system resolver.
    resolver: Option<Arc<Resolver>>,
    /// Set once a newer pool is in force: this one's health checks stop.
    retired: AtomicBool,
    /// What this pool takes over from the one before when it goes into force.
    handover: Mutex<Option<Handover>>,
}

struct Handover {
    previous: Weak<ParentPool>,
    /// Standby sets of the previous pool no parent of this one keeps.
    retire: Vec<Arc<Standby>>,
}

/// A tunnel through a parent, and what the log records about it.
pub struct ThroughParent {
    pub stream: ServerStream,
    /// Bytes the parent sent after its CONNECT reply head (normally none).
    pub early: Bytes,
    pub parent: Arc<str>,
    /// With a TLS parent: whether the session was resumed.
    pub tls_resumed: Option<bool>,
}

/// How one attempt at a parent ended: for good (a tunnel, or an answer to pass on), or
/// before the parent had the request (the next one may be tried).
enum Step<T> {
    Done(Result<T, ConnectError>),
    Unreachable(String),
}

impl ParentPool {
    /// A pool for `config`. With `previous` (a reload), a parent with the same name and
    /// address keeps its health, and one reached the same way keeps its link (the TLS
    /// session cache) and standby connections; nothing of `previous` changes until this
    /// pool goes into force ([`ParentPool::run_health_checks`]).
    pub fn new(
        config: &UpstreamConfig,
        timeouts: &Timeouts,
        previous: Option<&Arc<ParentPool>>,
    ) -> anyhow::Result<ParentPool> {
        let mut parents = Vec::new();
        for p in &config.parents {
            let old = previous.and_then(|o| o.parents.iter().find(|o| o.config.name == p.name));
            let link = match old {
                Some(o) if o.link.same_as(p, &config.dns) => o.link.clone(),
                _ => Arc::new(
                    Link::new(p, &config.dns, NEXT_LINK.fetch_add(1, Ordering::Relaxed))
                        .map_err(|e| e.context(format!("parent {}", p.name)))?,
                ),
            };
            let health = match old {
                Some(o) if o.config.address == p.address => o.health.clone(),
                _ => Arc::new(Health::default()),
            };
            let standby = (p.standby > 0).then(|| match old.and_then(|o| o.standby.as_ref()) {
                Some(s) if old.is_some_and(|o| Arc::ptr_eq(&o.link, &link)) => s.clone(),
                _ => Standby::new(p.name.clone()),
            });
            parents.push(Arc::new(Parent {
                config: p.clone(),
                link,
                health,
                standby,
                warned: AtomicBool::new(false),
            }));
        }
        let handover = previous.map(|old| Handover {
            previous: Arc::downgrade(old),
            retire: old
                .parents
                .iter()
                .filter_map(|o| o.standby.clone())
                .filter(|s| {
                    !parents
                        .iter()
                        .any(|p| p.standby.as_ref().is_some_and(|n| Arc::ptr_eq(n, s)))
                })
                .collect(),
        });
        let resolver = match config.dns.as_slice() {
            [] => None,
            servers => Some(Arc::new(Resolver::new(servers, timeouts.dns)?)),
        };
        // Only a pool that is built shows up in the metrics.
        for p in &parents {
            metrics().parent_configured(&p.config.name);
            metrics().parent_series(&p.config.name, p.standby.is_some());
        }
        let weights: Vec<u32> = parents.iter().map(|p| p.config.weight).collect();
        Ok(ParentPool {
            parents,
            balance: config.balance,
            rotation: balance::rotation(&weights),
            turn: AtomicU64::new(0),
            fall: config.fall,
            rise: config.rise,
            connect_timeout: timeouts.connect,
            parent_answer: timeouts.parent_answer,
            health_interval: config.health_interval,
            health_timeout: config.health_timeout,
            health_check: config.health_check.clone(),
            resolver,
            retired: AtomicBool::new(false),
            handover: Mutex::new(handover),
        })
    }

    pub fn parents(&self) -> &[Arc<Parent>] {
        &self.parents
    }

    /// Whether a parent is configured and one of them is up.
    pub fn available(&self) -> bool {
        self.parents.iter().any(|p| p.is_up())
    }

    /// The parents in the order this connection tries them.
    fn order(&self, client: IpAddr) -> Vec<Arc<Parent>> {
        let names: Vec<&str> = self.parents.iter().map(|p| &*p.config.name).collect();
        let weights: Vec<u32> = self.parents.iter().map(|p| p.config.weight).collect();
        let turn = match self.balance {
            Balance::RoundRobin => self.turn.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        balance::order(self.balance, &names, &weights, &self.rotation, turn, client)
            .into_iter()
            .filter_map(|i| self.parents.get(i).cloned())
            .collect()
    }

    /// A tunnel to `target` through the first parent (in `balance` order) that takes the
    /// `CONNECT`; see the module's table for what each kind of failure leads to.
    pub async fn connect_tunnel(
        &self,
        client: IpAddr,
        target: &Target,
    ) -> Result<ThroughParent, ConnectError> {
        let mut tried = Vec::new();
        for parent in self.order(client) {
            if !parent.is_up() {
                metrics().parent_failover(&parent.config.name);
                continue;
            }
            match self.tunnel_through(&parent, target).await {
                Step::Done(r) => return r,
                Step::Unreachable(text) => self.unreachable(&parent, text, &mut tried),
            }
        }
        Err(self.give_up(tried))
    }

    async fn tunnel_through(&self, parent: &Parent, target: &Target) -> Step<ThroughParent> {
        let name = &parent.config.name;
        let request = connect_head::request(target, parent.config.proxy_authorization.as_deref());
        let what = format!("CONNECT {target}");
        let mut taken = parent.standby.as_ref().and_then(|s| s.take());
        loop {
            let from_standby = taken.is_some();
            let (mut stream, resumed) = match taken.take() {
                Some(s) => s,
                None => match self.dial(parent, parent.link.early_data()).await {
                    Ok(d) => (d.stream, d.resumed),
                    Err(text) => return Step::Unreachable(text),
                },
            };
            let answer = exchange::exchange(
                &mut stream,
                &request,
                self.connect_timeout,
                self.parent_answer,
            )
            .await;
            // With early data the handshake ended during the exchange.
            let resumed = resumed.or_else(|| match &stream {
                ServerStream::Tls(s) => {
                    let r = dial::handshake_resumed(s);
                    if let Some(r) = r {
                        metrics().parent_tls_handshake(name, r);
                    }
                    r
                }
                ServerStream::Tcp(_) => None,
            });
            let status = match answer {
                Answer::Established { early } => {
                    self.attempt(parent, AttemptClass::Ok, None);
                    return Step::Done(Ok(ThroughParent {
                        stream,
                        early,
                        parent: name.clone(),
                        tls_resumed: resumed,
                    }));
                }
                // A standby connection the parent closed meanwhile: open a fresh one.
                Answer::NotTaken(_) if from_standby => {
                    metrics().parent_standby(name, crate::telemetry::StandbyEvent::Stale);
                    continue;
                }
                Answer::NotTaken(text) => return Step::Unreachable(text),
                Answer::Broken(text) => {
                    self.attempt(parent, AttemptClass::Failed, Some(&text));
                    return Step::Done(Err(ConnectError::ParentFailed {
                        parent: name.to_string(),
                        detail: format!("{text} (to {what}); it was not sent again"),
                    }));
                }
                Answer::Silent => {
                    self.attempt(parent, AttemptClass::Timeout, None);
                    return Step::Done(Err(ConnectError::ParentTimeout {
                        parent: name.to_string(),
                        request: what,
                        after: self.parent_answer,
                    }));
                }
                Answer::Status(s) => s,
            };
            return Step::Done(Err(self.answered(parent, status, what)));
        }
    }

    /// The error for a parent's non-2xx answer to `what`, counted by its class.
    fn answered(&self, parent: &Parent, status: StatusCode, what: String) -> ConnectError {
        let name = parent.config.name.to_string();
        match status.as_u16() {
            502..=504 => {
                self.attempt(parent, AttemptClass::OriginError, None);
                ConnectError::ParentOriginError {
                    parent: name,
                    request: what,
                    status,
                }
            }
            400..=499 => {
                self.attempt(parent, AttemptClass::Refused, None);
                self.warn_refusal(parent, status);
                ConnectError::ParentRefused {
                    parent: name,
                    request: what,
                    status,
                }
            }
            _ => {
                // Alive, but not answering as a proxy does: not counted against it.
                self.attempt(parent, AttemptClass::Failed, None);
                ConnectError::ParentFailed {
                    parent: name,
                    detail: format!("it answered {status} to {what}, which is no proxy's answer"),
                }
            }
        }
    }

    /// A 407 or 403 is logged at warn once per reload: credentials or access rules to fix.
    fn warn_refusal(&self, parent: &Parent, status: StatusCode) {
        let hint = match status {
            StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
                "check username and password_file of this parent"
            }
            StatusCode::FORBIDDEN => {
                "the security cloud's access rules refuse this appliance or destinations it sends"
            }
            _ => return,
        };
        if !parent.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(parent = %parent.config.name, %status, "the security cloud refused a request: {hint} (logged once until the next reload)");
        }
    }

    /// Counts one attempt's class; a broken reply counts toward `fall`, an answer
    /// (whatever its status) shows the parent alive.
    fn attempt(&self, parent: &Parent, class: AttemptClass, error: Option<&str>) {
        metrics().parent_attempt(&parent.config.name, class);
        match class {
            AttemptClass::Ok | AttemptClass::OriginError | AttemptClass::Refused => {
                self.record(parent, Source::Connection, None);
            }
            AttemptClass::Failed if error.is_some() => {
                self.record(parent, Source::Connection, error);
            }
            _ => {}
        }
    }

    /// An attempt that never reached the parent: counted toward `fall`, and the request
    /// moves on to the next parent.
    fn unreachable(&self, parent: &Parent, text: String, tried: &mut Vec<(Arc<str>, String)>) {
        let name = &parent.config.name;
        tracing::warn!(parent = %name, error = %text, "parent not reached, trying the next");
        metrics().parent_attempt(name, AttemptClass::Unreachable);
        metrics().parent_failover(name);
        self.record(parent, Source::Connection, Some(&text));
        tried.push((name.clone(), text));
    }

    /// The error once no parent took the request: `parents_down` when every parent is
    /// marked down (by what, and the last error of each), else what each attempt met.
    fn give_up(&self, tried: Vec<(Arc<str>, String)>) -> ConnectError {
        if self.parents.is_empty() {
            return ConnectError::NoParent;
        }
        if !self.available() || tried.is_empty() {
            let detail: Vec<String> = self
                .parents
                .iter()
                .map(|p| p.health.down_text(&p.config.name))
                .collect();
            return ConnectError::ParentsDown {
                detail: detail.join("; "),
            };
        }
        let parent = tried.last().map_or(String::new(), |(n, _)| n.to_string());
        let attempts: Vec<String> = tried.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        ConnectError::ParentUnreachable {
            parent,
            attempts: attempts.join("; "),
        }
    }

    async fn dial(&self, parent: &Parent, early: bool) -> Result<Dialled, String> {
        let d = parent
            .link
            .dial(self.resolver.as_deref(), self.connect_timeout, early)
            .await?;
        if let Some(r) = d.resumed {
            metrics().parent_tls_handshake(&parent.config.name, r);
        }
        Ok(d)
    }

    /// Opens a connection for the standby set of `parent` (TLS done, no early data).
    fn dial_standby(
        &self,
        parent: Arc<Parent>,
    ) -> impl std::future::Future<Output = (Arc<Parent>, Result<Dialled, String>)> + Send + 'static
    {
        let resolver = self.resolver.clone();
        let timeout = self.connect_timeout;
        async move {
            let r = parent.link.dial(resolver.as_deref(), timeout, false).await;
            if let Ok(Dialled {
                resumed: Some(r), ..
            }) = &r
            {
                metrics().parent_tls_handshake(&parent.config.name, *r);
            }
            (parent, r)
        }
    }

    fn standby_opened(&self, parent: &Parent) {
        self.record(parent, Source::Connection, None);
    }

    fn standby_failed(&self, parent: &Parent, text: &str) {
        tracing::warn!(parent = %parent.config.name, error = %text, "standby connection to the parent failed");
        metrics().parent_attempt(&parent.config.name, AttemptClass::Unreachable);
        self.record(parent, Source::Connection, Some(text));
    }

    /// Counts a result towards the fall/rise thresholds and reports a change of state.
    fn record(&self, parent: &Parent, source: Source, error: Option<&str>) {
        let Some(change) = parent.health.record(source, error, self.fall, self.rise) else {
            return;
        };
        let name = &parent.config.name;
        match change {
            Change::Down => {
                metrics().parent_state(name, false);
                let by = parent.health.view().down_by.unwrap_or("");
                tracing::error!(parent = %name, by, error = error.unwrap_or(""), "parent marked down");
            }
            Change::Up => {
                metrics().parent_state(name, true);
                tracing::info!(parent = %name, "parent is back up");
            }
        }
    }

    /// Checks every parent once: the TCP connect (and TLS handshake), or with
    /// `health_check = "connect"` a `CONNECT` to `health_target` that must get a 2xx.
    pub async fn check_all(&self) {
        for parent in &self.parents {
            // Each step is bounded by `health_timeout`; this is only a net under them.
            let error = tokio::time::timeout(self.health_timeout * 2, self.check(parent))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer to the health check within {}",
                        super::error::words(self.health_timeout)
                    ))
                })
                .err();
            let name = &parent.config.name;
            metrics().parent_checked(name, error.is_none());
            self.record(parent, Source::Check, error.as_deref());
            // Also after a reload, whose pool inherits health the gauge has not seen yet.
            metrics().parent_up(name, parent.is_up());
        }
    }

    async fn check(&self, parent: &Parent) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.health_timeout;
        let mut d = parent
            .link
            .dial(self.resolver.as_deref(), self.health_timeout, false)
            .await?;
        let HealthCheck::Connect(probe) = &self.health_check else {
            return Ok(());
        };
        let target = Target::parse_authority(probe, None).map_err(|e| e.to_string())?;
        let request = connect_head::request(&target, parent.config.proxy_authorization.as_deref());
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match exchange::exchange(&mut d.stream, &request, left, left).await {
            Answer::Established { .. } => Ok(()),
            Answer::Status(s) => Err(format!("it answered {s} to CONNECT {probe}")),
            Answer::NotTaken(t) | Answer::Broken(t) => Err(t),
            Answer::Silent => Err(format!(
                "it did not answer CONNECT {probe} within {}",
                super::error::words(self.health_timeout)
            )),
        }
    }

    /// Puts the pool into force and runs its background work until `shutdown` fires or
    /// a newer pool replaces it: retires what the previous pool had and this one does not
    /// keep, starts the standby connections, then checks the parents every
    /// `health_interval`.
    pub async fn run_health_checks(
        pool: Weak<ParentPool>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(p) = pool.upgrade() else { return };
        p.go_live(&pool, &shutdown);
        if p.parents.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(p.health_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        drop(p);
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                _ = tick.tick() => match pool.upgrade() {
                    Some(p) if !p.retired.load(Ordering::Relaxed) => p.check_all().await,
                    _ => return,
                },
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
            }
        }
    }

    fn go_live(&self, me: &Weak<ParentPool>, shutdown: &tokio::sync::watch::Receiver<bool>) {
        let handover = self.handover.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handover {
            if let Some(old) = h.previous.upgrade() {
                old.retired.store(true, Ordering::Relaxed);
            }
            for s in h.retire {
                s.retire();
            }
        }
        for (i, p) in self.parents.iter().enumerate() {
            if let Some(s) = &p.standby {
                let generation = s.configure(p.config.standby, p.config.standby_max_idle);
                tokio::spawn(s.clone().fill(me.clone(), i, generation, shutdown.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
