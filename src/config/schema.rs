//! The configuration file as written. Every table rejects unknown keys; values that
//! validation checks keep their span so errors cite a line.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub proxy: Proxy,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub allowlists: Allowlists,
    #[serde(default)]
    pub direct: Direct,
    #[serde(default)]
    pub upstream: Upstream,
    #[serde(default, rename = "segment")]
    pub segments: Vec<Segment>,
    #[serde(default, rename = "profile")]
    pub profiles: Vec<Profile>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub pac: Pac,
    #[serde(default)]
    pub sni_check: SniCheck,
    #[serde(default)]
    pub transparent: Transparent,
    #[serde(default)]
    pub access: Access,
    /// Absent: tenant restrictions are off and every sign-in is a blind tunnel.
    pub tenant_restrictions: Option<Spanned<TenantRestrictions>>,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub reload: Reload,
}

/// What must outlive the process.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Directory (default `/var/lib/lbo-proxy`); relative to the config file.
    pub dir: Option<Spanned<String>>,
}

/// What a reload does beyond swapping the policy for new requests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reload {
    /// `recheck` (default): open tunnels are decided again, those whose route changes
    /// are closed; `keep`: they keep the policy they were opened under.
    pub open_tunnels: Option<Spanned<String>>,
}

/// Who may use the proxy beyond the segments' networks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// What a client outside every segment gets: `deny` (a 403 page) or `close`.
    pub unknown_client: Option<Spanned<String>>,
}

/// Tenant restrictions: the headers Microsoft's sign-in reads to refuse other tenants,
/// added by terminating TLS for the sign-in hosts only, with leaves minted from the
/// municipality's own CA.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRestrictions {
    /// PEM certificate of the CA that PCs trust for the sign-in hosts.
    pub ca_cert: Spanned<String>,
    /// PEM private key of that CA; not readable by others than owner and group.
    pub ca_key: Spanned<String>,
    /// PEM bundle that sign-in servers are verified against (default: the system roots).
    pub upstream_ca_file: Option<Spanned<String>>,
    /// Entra ID sign-in hosts to intercept (default: Microsoft's documented three).
    pub hosts: Option<Vec<Spanned<String>>>,
    /// Consumer (Microsoft account) sign-in hosts, intercepted for `restrict_msa`.
    pub msa_hosts: Option<Vec<Spanned<String>>>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<TenantPolicy>,
}

/// Which segments or profiles get which restriction headers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    pub name: Spanned<String>,
    #[serde(default)]
    pub segments: Vec<Spanned<String>>,
    #[serde(default)]
    pub profiles: Vec<Spanned<String>>,
    /// v1 `Restrict-Access-To-Tenants`: tenant domains or IDs staff may sign in to.
    #[serde(default)]
    pub tenants: Vec<Spanned<String>>,
    /// v1 `Restrict-Access-Context`: the directory ID that sets the restriction.
    pub context: Option<Spanned<String>>,
    /// v2 `sec-Restrict-Tenant-Access-Policy`: `<tenantId>:<policyId>`.
    pub v2_policy: Option<Spanned<String>>,
    /// Consumer sign-in (`login.live.com`) gets `sec-Restrict-Tenant-Access-Policy: restrict-msa`.
    #[serde(default)]
    pub restrict_msa: bool,
}

/// Transparent listeners: traffic redirected to the appliance (nftables `redirect`)
/// without a proxy setting on the PC.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transparent {
    /// TLS listeners, routed by the ClientHello's server name (SNI).
    #[serde(default)]
    pub tls_listen: Vec<Spanned<String>>,
    /// Plain HTTP listeners, routed by the `Host` header.
    #[serde(default)]
    pub http_listen: Vec<Spanned<String>>,
    /// Most bytes read (and held) while waiting for the ClientHello.
    pub max_hello_bytes: Option<Spanned<usize>>,
    /// How long a client may take to send its ClientHello.
    pub hello_timeout: Option<Spanned<String>>,
    /// Destination port of SNI targets when the original destination is unknown (the
    /// connection was not redirected).
    pub tls_port: Option<Spanned<u16>>,
}

/// The domain-fronting guard on direct CONNECT tunnels.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCheck {
    /// `enforce` (close on mismatch), `log` (record and relay) or `off`.
    pub mode: Option<Spanned<String>>,
    /// What a direct tunnel that does not start with TLS gets: `deny_on_443`, `allow`, `deny`.
    pub non_tls: Option<Spanned<String>>,
    /// Most bytes read (and held) while waiting for the ClientHello.
    pub max_hello_bytes: Option<Spanned<usize>>,
}

/// The PAC file the appliance serves (`/proxy.pac`, `/wpad.dat`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pac {
    /// `all` (every destination via the appliance) or `split`.
    pub mode: Option<Spanned<String>>,
    /// The appliance as PCs reach it (`host:port`, failover order); default: the proxy
    /// listeners.
    #[serde(default)]
    pub proxies: Vec<Spanned<String>>,
    /// The security cloud as PCs reach it, for `split`; default: the parents' addresses.
    #[serde(default)]
    pub security_cloud: Vec<Spanned<String>>,
    /// Destinations PCs reach without a proxy: domain patterns and networks.
    #[serde(default)]
    pub internal: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// Explicit proxy listeners (`CONNECT` and absolute-form `http://`).
    #[serde(default)]
    pub listen: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub listen: Option<Spanned<String>>,
    /// Networks that may connect and reach every endpoint; absent: loopback only.
    pub allow: Option<Vec<Spanned<String>>>,
    /// Networks that may reach `/metrics` only.
    pub metrics_allow: Option<Vec<Spanned<String>>>,
    /// Networks that may reach `/readyz` and `/healthz` only.
    pub readyz_allow: Option<Vec<Spanned<String>>>,
    /// Networks that may fetch the PAC (`/proxy.pac`, `/wpad.dat`) only.
    pub pac_allow: Option<Vec<Spanned<String>>>,
    /// File holding the bearer token that mutating endpoints need off loopback.
    pub token_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowlists {
    /// Directory of category files; relative to the config file. Absent: the lists built
    /// into the binary.
    pub dir: Option<Spanned<String>>,
    /// Local category files (e.g. `/etc/lbo-proxy/allowlists`): a file here replaces the
    /// shipped category of the same name, or adds a new one.
    pub local_dir: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    /// The LBO line's resolvers (`ip` or `ip:port`); empty: `/etc/resolv.conf`.
    #[serde(default)]
    pub dns: Vec<Spanned<String>>,
    /// Ranges the address guard lets through although internal (labs and tests only).
    #[serde(default)]
    pub allow_internal: Vec<Spanned<String>>,
    /// More ranges to refuse, e.g. the municipality's own public ranges.
    #[serde(default)]
    pub deny_internal: Vec<Spanned<String>>,
    pub happy_eyeballs_delay: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    #[serde(default, rename = "parent")]
    pub parents: Vec<Parent>,
    pub health_interval: Option<Spanned<String>>,
    pub health_timeout: Option<Spanned<String>>,
    /// Consecutive failed checks before a parent is marked down.
    pub fall: Option<Spanned<u32>>,
    /// Consecutive good checks before a down parent is used again.
    pub rise: Option<Spanned<u32>>,
    /// How a parent is chosen: `failover` (in order), `round_robin`, `source_hash`.
    pub balance: Option<Spanned<String>>,
    /// `tcp` (connect, and TLS when configured) or `connect` (a real `CONNECT` to
    /// `health_target` that must get a 2xx).
    pub health_check: Option<Spanned<String>>,
    /// `host:port` the `connect` health check asks each parent for.
    pub health_target: Option<Spanned<String>>,
    /// Resolvers for the parents' names (the LGWAN side); empty: the system's.
    #[serde(default)]
    pub dns: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parent {
    pub name: Spanned<String>,
    /// `host:port` of the security cloud's proxy.
    pub address: Spanned<String>,
    #[serde(default)]
    pub tls: bool,
    /// Name to verify on the parent's certificate (default: the host of `address`).
    pub tls_server_name: Option<Spanned<String>>,
    /// PEM bundle of CAs for the parent (default: the system roots).
    pub tls_ca_file: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    /// File holding the password (kept out of the config, e.g. mode 0600).
    pub password_file: Option<Spanned<String>>,
    /// Share of new connections under `round_robin` and `source_hash` (default 1).
    pub weight: Option<Spanned<u32>>,
    /// Connections kept open and ready (TLS done) for the next tunnels (default 0).
    pub standby: Option<Spanned<usize>>,
    /// A ready connection is replaced after this long unused, before the parent's own
    /// idle timeout closes it.
    pub standby_max_idle: Option<Spanned<String>>,
    /// Send the `CONNECT` in TLS 1.3 early data when resuming, if the parent allows it.
    #[serde(default)]
    pub tls_early_data: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub name: Spanned<String>,
    pub networks: Vec<Spanned<String>>,
    pub profile: Spanned<String>,
    /// File of `user:password` lines: the segment's clients must authenticate (Basic).
    pub auth_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub direct: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Reading a request head (slow clients).
    pub head: Option<Spanned<String>>,
    /// TCP connect to a destination or parent.
    pub connect: Option<Spanned<String>>,
    /// One DNS lookup on the direct route.
    pub dns: Option<Spanned<String>>,
    /// A tunnel with no bytes either way is closed after this.
    pub idle: Option<Spanned<String>>,
    /// On shutdown, how long open tunnels may finish.
    pub drain: Option<Spanned<String>>,
    /// How long a parent may take to answer a request once it has it (the `CONNECT`, or
    /// the `http://` request's response head).
    pub parent_answer: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_head_bytes: Option<Spanned<usize>>,
    pub max_connections: Option<Spanned<usize>>,
    /// Header fields in one request head.
    pub max_headers: Option<Spanned<usize>>,
    /// Open connections of one client address.
    pub max_connections_per_client: Option<Spanned<usize>>,
    /// Longest a tunnel may stay open, busy or not; absent: no limit.
    pub max_tunnel_lifetime: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `stdout`, `off`, `syslog`, `file:PATH`, or a file path.
    pub access: Option<Spanned<String>>,
    /// Lines waiting for the writer before new ones are dropped (and counted).
    pub queue: Option<Spanned<usize>>,
    /// The SIEM collector, for `access = "syslog"`.
    pub syslog: Option<LogSyslog>,
    /// `batch` (fdatasync at most once a second) or `none` (the kernel writes back).
    pub sync: Option<Spanned<String>>,
    /// How often a signed checkpoint is added besides rotations (default `10m`).
    pub checkpoint_interval: Option<Spanned<String>>,
    /// Ed25519 private key (PEM, PKCS#8) that signs checkpoints: `lbo-proxy log keygen`.
    pub signing_key: Option<Spanned<String>>,
}

/// RFC 5424 syslog to a collector (`[log.syslog]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSyslog {
    /// `host:port` of the collector.
    pub address: Spanned<String>,
    /// `udp` (RFC 5426), `tcp` (RFC 6587 octet counting) or `tls` (RFC 5425).
    pub transport: Option<Spanned<String>>,
    /// PEM bundle the collector's certificate is verified against (`tls`; default: the
    /// system roots).
    pub ca_file: Option<Spanned<String>>,
    /// Name to verify on the collector's certificate (default: the host of `address`).
    pub server_name: Option<Spanned<String>>,
    /// PEM certificate chain and key the appliance presents (`tls`, optional).
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    /// A collector that takes no bytes for this long is dropped and reconnected (`tcp`,
    /// `tls`; default `5s`).
    pub write_timeout: Option<Spanned<String>>,
    /// Facility name, e.g. `local0`.
    pub facility: Option<Spanned<String>>,
    /// APP-NAME in the header.
    pub app_name: Option<Spanned<String>>,
    /// HOSTNAME in the header; default: the machine's host name.
    pub hostname: Option<Spanned<String>>,
}

/// One allowlist file (`allowlists/<category>.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistFile {
    pub category: CategoryHeader,
    pub provenance: Provenance,
    #[serde(default, rename = "rule")]
    pub rules: Vec<AllowlistRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryHeader {
    pub name: Spanned<String>,
    pub description: String,
}

/// Where a list comes from, so an auditor can trace every rule to a published source.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub source: String,
    pub version: String,
    pub retrieved: String,
    #[serde(default)]
    pub endpoint_ids: Vec<u32>,
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistRule {
    pub name: Spanned<String>,
    pub endpoint_id: Option<u32>,
    pub source: Option<String>,
    #[serde(default)]
    pub domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub networks: Vec<Spanned<String>>,
    pub ports: Option<Vec<Spanned<u32>>>,
    /// UDP ports of the same destinations: never crossed by the proxy, exported for the
    /// firewall (e.g. Teams media 3478-3481).
    #[serde(default)]
    pub udp_ports: Vec<Spanned<u32>>,
}
