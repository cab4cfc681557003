//! Configuration: the TOML schema, the embedded default, and validation into an immutable
//! [`Config`] whose policy snapshot the proxy decides with. `check`, start-up and reload
//! all go through [`load`].

pub mod admin;
pub mod allowlists;
pub mod duration;
pub mod error;
mod files;
pub mod limits;
pub mod log;
mod pac;
pub mod safeguards;
pub mod schema;
pub mod state;
mod tenant;
pub mod transparent;
mod upstream;
pub mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

pub use allowlists::LoadedCategory;
pub use error::{ConfigError, Problem};
pub use log::{
    AccessLogConfig, AccessLogTarget, SyncMode, SyslogConfig, SyslogTls, SyslogTransport,
};
pub use state::StateConfig;

use crate::policy::Snapshot;

/// The configuration built into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// Name shown for the embedded default in messages.
pub const EMBEDDED_NAME: &str = "<embedded default>";

/// A validated configuration. Immutable: reload builds a new one.
pub struct Config {
    /// Where it came from (a path, or the embedded default).
    pub source: PathBuf,
    pub proxy_listen: Vec<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub policy: Arc<Snapshot>,
    pub categories: Vec<LoadedCategory>,
    pub direct: DirectConfig,
    pub upstream: UpstreamConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub access_log: AccessLogConfig,
    pub pac: crate::admin::pac::PacSettings,
    pub sni_check: SniCheck,
    pub transparent: transparent::Transparent,
    pub access: limits::Access,
    /// `None`: tenant restrictions off, every sign-in a blind tunnel.
    pub tenant: Option<crate::intercept::TenantRestrictions>,
    /// What outlives the process (read at start only).
    pub state: StateConfig,
    /// Who may reach the admin listener, and for what.
    pub admin: admin::AdminAccess,
    /// What a reload does to open tunnels.
    pub reload: admin::OpenTunnels,
}

/// The domain-fronting guard: a direct tunnel's ClientHello must name a host that is
/// direct too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SniCheck {
    pub mode: SniMode,
    pub non_tls: NonTls,
    pub max_hello_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SniMode {
    /// A mismatch closes the tunnel before any byte reaches the destination.
    Enforce,
    /// A mismatch is recorded and the tunnel relayed (to try the check on live traffic).
    Log,
    /// Direct tunnels are relayed without looking at the first bytes.
    Off,
}

/// What a direct tunnel whose client does not start with TLS gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonTls {
    /// Refused on port 443, where only TLS is expected; relayed on other ports.
    DenyOn443,
    Allow,
    Deny,
}

#[derive(Clone, Debug)]
pub struct DirectConfig {
    /// Resolvers of the LBO line; empty means the system's `/etc/resolv.conf`.
    pub dns: Vec<SocketAddr>,
    pub allow_internal: Vec<IpNet>,
    pub deny_internal: Vec<IpNet>,
    pub happy_eyeballs_delay: Duration,
}

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    pub parents: Vec<ParentConfig>,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    pub balance: Balance,
    pub health_check: HealthCheck,
    /// Resolvers for the parents' names; empty: the system resolver (and `/etc/hosts`).
    pub dns: Vec<SocketAddr>,
}

/// How the parent of a new connection is chosen among those that are up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// The first parent in the configured order (the others are standbys).
    Failover,
    /// Each in turn, in proportion to its weight.
    RoundRobin,
    /// By the client address: a client keeps its parent while that parent is up.
    SourceHash,
}

/// What a health check asks of a parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheck {
    /// A TCP connect, and the TLS handshake when the parent has `tls = true`.
    Tcp,
    /// A `CONNECT` to this `host:port` through the parent, answered with a 2xx.
    Connect(String),
}

#[derive(Clone)]
pub struct ParentConfig {
    pub name: Arc<str>,
    /// `host:port`, resolved with the system resolver (the parent sits on the LGWAN side).
    pub address: String,
    pub tls: Option<ParentTls>,
    /// Pre-encoded `Basic …` credentials; never logged.
    pub proxy_authorization: Option<String>,
    /// Share of new connections under `round_robin` and `source_hash`.
    pub weight: u32,
    /// Connections kept open and ready for the next tunnels.
    pub standby: usize,
    /// Longest a ready connection waits unused before it is replaced.
    pub standby_max_idle: Duration,
}

impl std::fmt::Debug for ParentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentConfig")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("tls", &self.tls)
            .field(
                "auth",
                &self.proxy_authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("weight", &self.weight)
            .field("standby", &self.standby)
            .field("standby_max_idle", &self.standby_max_idle)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct ParentTls {
    pub server_name: String,
    pub ca_file: Option<PathBuf>,
    /// Send the `CONNECT` as TLS 1.3 early data on a resumed session the parent allows
    /// it on (one round trip less; a replayed `CONNECT` carries no client byte).
    pub early_data: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub head: Duration,
    pub connect: Duration,
    pub dns: Duration,
    pub idle: Duration,
    pub drain: Duration,
    /// How long a parent may take to answer once it has the request.
    pub parent_answer: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_connections: usize,
    /// Header fields in one request head (more: 431).
    pub max_headers: usize,
    /// Open connections of one client address (more: 429).
    pub max_connections_per_client: usize,
    /// Longest a tunnel may stay open; `None`: no limit.
    pub max_tunnel_lifetime: Option<Duration>,
}

/// What a configuration is loaded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// To explain or report on it (`route`, `pac`, `audit`, the firewall export): its
    /// values only.
    Read,
    /// To run it (`run`, reload, and `check`, which must refuse what the run would): also
    /// every file and directory the run will open.
    Run,
}

/// Loads a config file, or the embedded default when `path` is `None`, to read it.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    load_for(path, Purpose::Read)
}

/// Loads a config to run it: what `run`, reload and `check` all call.
pub fn load_to_run(path: Option<&Path>) -> Result<Config, ConfigError> {
    load_for(path, Purpose::Run)
}

fn load_for(path: Option<&Path>, purpose: Purpose) -> Result<Config, ConfigError> {
    match path {
        None => validate::from_str(Path::new(EMBEDDED_NAME), EMBEDDED_DEFAULT, None, purpose),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                problems: vec![Problem {
                    file: p.to_path_buf(),
                    line: 0,
                    key: String::new(),
                    message: format!("cannot read: {e}"),
                }],
            })?;
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            validate::from_str(p, &text, Some(&base), purpose)
        }
    }
}

/// Validates configuration text to read it; `base` resolves relative paths (`None`:
/// embedded).
pub fn load_str(name: &Path, text: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
    validate::from_str(name, text, base, Purpose::Read)
}

/// As [`load_str`], to run it.
pub fn load_str_to_run(
    name: &Path,
    text: &str,
    base: Option<&Path>,
) -> Result<Config, ConfigError> {
    validate::from_str(name, text, base, Purpose::Run)
}
