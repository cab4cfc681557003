//! The direct route (local breakout): resolve with the LBO line's DNS, drop every address
//! the guard refuses, then race IPv6 and IPv4 (happy eyeballs, RFC 8305).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;

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

    /// Whether the address guard lets a direct connection go to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.guard.allows(ip)
    }

    pub async fn connect(&self, target: &Target) -> Result<Connected, ConnectError> {
        let (candidates, dns_time) = match &target.host {
            Host::Ip(ip) => (Arc::from([*ip]), None),
            Host::Name(name) => {
                let started = Instant::now();
                let ips = self.resolver.lookup(name).await?;
                (ips, Some(started.elapsed()))
            }
        };
        let allowed: Vec<IpAddr> = candidates
            .iter()
            .copied()
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
/// connects; the whole race is bounded by `timeout`. The attempts are polled here rather
/// than spawned: the usual race has one runner, and a task per connect would be the
/// costliest part of it.
async fn race(
    addrs: &[SocketAddr],
    stagger: Duration,
    timeout: Duration,
    target: &Target,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    if let [addr] = *addrs {
        // One address, nothing to race: no attempt set and no stagger timer.
        return match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok((stream, addr))
            }
            Ok(Err(source)) => Err(ConnectError::Refused {
                addr: addr.to_string(),
                source,
            }),
            Err(_) => Err(ConnectError::Timeout(target.to_string())),
        };
    }
    let attempt = |addr: SocketAddr| async move { (addr, TcpStream::connect(addr).await) };
    let mut pending = addrs.iter().copied();
    let mut attempts: FuturesUnordered<_> = pending.next().map(attempt).into_iter().collect();
    let mut last_err: Option<(SocketAddr, std::io::Error)> = None;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    while !attempts.is_empty() {
        let next_start = tokio::time::sleep(stagger);
        tokio::select! {
            biased;
            Some((addr, result)) = attempts.next() => match result {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, addr));
                }
                Err(e) => {
                    last_err = Some((addr, e));
                    attempts.extend(pending.next().map(attempt));
                }
            },
            _ = next_start, if pending.len() > 0 => {
                attempts.extend(pending.next().map(attempt));
            }
            _ = &mut deadline => return Err(ConnectError::Timeout(target.to_string())),
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

    /// A loopback port that refuses: bound, then closed again.
    fn refusing_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    fn target() -> Target {
        Target {
            host: Host::Ip("127.0.0.1".parse().unwrap()),
            port: 443,
        }
    }

    #[tokio::test]
    async fn a_refused_address_moves_the_race_on_at_once() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = [refusing_port(), live.local_addr().unwrap()];
        // A stagger longer than the test: only the refusal can start the second attempt.
        let stagger = Duration::from_secs(30);
        let (_, peer) = race(&addrs, stagger, Duration::from_secs(5), &target())
            .await
            .unwrap();
        assert_eq!(peer, addrs[1]);
    }

    #[tokio::test]
    async fn one_address_connects_or_is_refused_without_a_race() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = live.local_addr().unwrap();
        let (stream, peer) = race(
            &[addr],
            Duration::from_secs(30),
            Duration::from_secs(5),
            &target(),
        )
        .await
        .unwrap();
        assert_eq!(peer, addr);
        assert!(stream.nodelay().unwrap());
        let refusing = refusing_port();
        match race(
            &[refusing],
            Duration::from_secs(30),
            Duration::from_secs(5),
            &target(),
        )
        .await
        {
            Err(ConnectError::Refused { addr, .. }) => assert_eq!(addr, refusing.to_string()),
            Err(e) => panic!("expected a refusal, got {e}"),
            Ok(_) => panic!("expected a refusal, got a connection"),
        }
    }

    #[tokio::test]
    async fn every_address_refused_names_the_last() {
        let addrs = [refusing_port(), refusing_port()];
        let stagger = Duration::from_millis(10);
        match race(&addrs, stagger, Duration::from_secs(5), &target()).await {
            Err(ConnectError::Refused { addr, .. }) => {
                assert!(addrs.iter().any(|a| a.to_string() == addr), "{addr}");
            }
            Err(e) => panic!("expected a refusal, got {e}"),
            Ok(_) => panic!("expected a refusal, got a connection"),
        }
    }
}
