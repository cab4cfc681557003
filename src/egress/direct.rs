//! The direct route (local breakout): resolve with the LBO line's DNS, drop every address
//! the guard refuses, then race IPv6 and IPv4 (happy eyeballs, RFC 8305).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::error::ConnectError;
use super::guard::AddressGuard;
use super::resolver::Resolver;
use crate::config::{DirectConfig, Timeouts};
use crate::policy::{Host, Target};

pub struct DirectConnector {
    resolver: Resolver,
    guard: AddressGuard,
    connect_timeout: Duration,
    /// Head start of one address family before the next attempt begins.
    stagger: Duration,
}

/// A connected direct stream and what the log records about it.
pub struct Connected {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub dns_time: Option<Duration>,
}

impl DirectConnector {
    pub fn new(config: &DirectConfig, timeouts: &Timeouts) -> anyhow::Result<DirectConnector> {
        Ok(DirectConnector {
            resolver: Resolver::new(&config.dns, timeouts.dns)?,
            guard: AddressGuard::new(&config.allow_internal, &config.deny_internal),
            connect_timeout: timeouts.connect,
            stagger: config.happy_eyeballs_delay,
        })
    }

    pub async fn connect(&self, target: &Target) -> Result<Connected, ConnectError> {
        let (candidates, dns_time) = match &target.host {
            Host::Ip(ip) => (vec![*ip], None),
            Host::Name(name) => {
                let started = Instant::now();
                let ips = self.resolver.lookup(name).await?;
                (ips, Some(started.elapsed()))
            }
        };
        let allowed: Vec<IpAddr> = candidates
            .into_iter()
            .filter(|ip| self.guard.allows(*ip))
            .collect();
        if allowed.is_empty() {
            return Err(ConnectError::InternalAddress(target.host.to_string()));
        }
        let addrs: Vec<SocketAddr> = interleave(allowed)
            .into_iter()
            .map(|ip| SocketAddr::new(ip, target.port))
            .collect();
        let (stream, peer) = race(&addrs, self.stagger, self.connect_timeout, target).await?;
        Ok(Connected {
            stream,
            peer,
            dns_time,
        })
    }
}

/// Alternates families, IPv6 first (RFC 8305 §4).
fn interleave(ips: Vec<IpAddr>) -> Vec<IpAddr> {
    let (v6, v4): (Vec<IpAddr>, Vec<IpAddr>) = ips.into_iter().partition(IpAddr::is_ipv6);
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// Starts one attempt, and another every `stagger` (or as soon as one fails), until one
/// connects; the whole race is bounded by `timeout`.
async fn race(
    addrs: &[SocketAddr],
    stagger: Duration,
    timeout: Duration,
    target: &Target,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending = addrs.iter().copied();
    let mut attempts = JoinSet::new();
    let mut last_err: Option<(SocketAddr, std::io::Error)> = None;
    let start = |set: &mut JoinSet<_>, addr: SocketAddr| {
        set.spawn(async move { (addr, TcpStream::connect(addr).await) });
    };
    if let Some(first) = pending.next() {
        start(&mut attempts, first);
    }
    loop {
        let next_start = tokio::time::sleep(stagger);
        tokio::select! {
            biased;
            done = attempts.join_next() => match done {
                Some(Ok((addr, Ok(stream)))) => {
                    attempts.abort_all();
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, addr));
                }
                Some(Ok((addr, Err(e)))) => {
                    last_err = Some((addr, e));
                    match pending.next() {
                        Some(a) => start(&mut attempts, a),
                        None if attempts.is_empty() => break,
                        None => {}
                    }
                }
                Some(Err(_)) => {}
                None => break,
            },
            _ = next_start, if pending.len() > 0 => {
                if let Some(a) = pending.next() {
                    start(&mut attempts, a);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                attempts.abort_all();
                return Err(ConnectError::Timeout(target.to_string()));
            }
        }
    }
    Err(match last_err {
        Some((addr, source)) => ConnectError::Refused {
            addr: addr.to_string(),
            source,
        },
        None => ConnectError::Timeout(target.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_v6_first() {
        let ips: Vec<IpAddr> = ["1.1.1.1", "2.2.2.2", "::1", "::2", "::3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let got: Vec<String> = interleave(ips).iter().map(|i| i.to_string()).collect();
        assert_eq!(got, ["::1", "1.1.1.1", "::2", "2.2.2.2", "::3"]);
    }
}
