//! DNS for the direct route: the LBO line's own resolvers (or the system's), cached.
//! A lookup is bounded twice: each query by `timeouts.dns` (tried twice), the whole
//! lookup by three times that; running out of either is a `dns_timeout`, never a wait.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;

use super::error::ConnectError;

pub struct Resolver {
    inner: TokioResolver,
    timeout: Duration,
}

impl Resolver {
    /// `servers` empty: `/etc/resolv.conf`.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> anyhow::Result<Resolver> {
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio()?
        } else {
            let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
            for s in servers {
                let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                for c in &mut ns.connections {
                    c.port = s.port();
                }
                config.add_name_server(ns);
            }
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        Ok(Resolver {
            inner: builder.build()?,
            timeout,
        })
    }

    /// Every address of `name` (A and AAAA), or why there is none.
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ConnectError> {
        // The trailing dot makes the name absolute: no search domains are tried.
        let fqdn = format!("{name}.");
        let deadline = self.timeout * 3;
        match tokio::time::timeout(deadline, self.inner.lookup_ip(fqdn.as_str())).await {
            Err(_) => Err(ConnectError::DnsTimeout(name.to_string())),
            Ok(Err(e)) if timed_out(&e) => Err(ConnectError::DnsTimeout(name.to_string())),
            Ok(Err(e)) => Err(ConnectError::DnsFailed {
                name: name.to_string(),
                detail: e.to_string(),
            }),
            Ok(Ok(found)) => {
                let ips: Vec<IpAddr> = found.iter().collect();
                if ips.is_empty() {
                    Err(ConnectError::DnsFailed {
                        name: name.to_string(),
                        detail: "no addresses".into(),
                    })
                } else {
                    Ok(ips)
                }
            }
        }
    }
}

/// The resolvers did not answer in time (as opposed to answering "no such name").
fn timed_out(e: &NetError) -> bool {
    match e {
        NetError::Timeout => true,
        NetError::Io(io) => io.kind() == std::io::ErrorKind::TimedOut,
        _ => false,
    }
}
