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

/// How long an answer of "no such name" or "no data" is kept at least, as Squid's
/// `negative_dns_ttl`. Without a floor, a resolver that omits the SOA (RFC 2308) gets its
/// negative answers not cached at all, and every connection to an IPv4-only name would
/// cost an AAAA query.
const NEGATIVE_TTL_FLOOR: Duration = Duration::from_secs(60);

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
        opts.negative_min_ttl = Some(NEGATIVE_TTL_FLOOR);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record, RecordType};
    use tokio::net::UdpSocket;

    use super::*;

    /// A resolver on 127.0.0.1 that answers A with 127.0.0.1 and says "no data" to every
    /// other type without an SOA, as some broken resolvers do; it counts the AAAA queries.
    async fn no_soa_dns() -> (SocketAddr, Arc<AtomicUsize>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let aaaa = Arc::new(AtomicUsize::new(0));
        let count = aaaa.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let query = Message::from_vec(&buf[..n]).unwrap();
                let mut reply = Message::new(
                    query.metadata.id,
                    MessageType::Response,
                    query.metadata.op_code,
                );
                reply.metadata.recursion_available = true;
                for q in &query.queries {
                    reply.add_query(q.clone());
                    match q.query_type() {
                        RecordType::A => {
                            let a = RData::A(A::new(127, 0, 0, 1));
                            reply.add_answer(Record::from_rdata(q.name().clone(), 3600, a));
                        }
                        RecordType::AAAA => {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
                let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
            }
        });
        (addr, aaaa)
    }

    /// Without a floor, such an answer is not cached at all and every connection to an
    /// IPv4-only name costs a query.
    #[tokio::test]
    async fn no_data_without_an_soa_is_cached() {
        let (dns, aaaa) = no_soa_dns().await;
        let resolver = Resolver::new(&[dns], Duration::from_secs(2)).unwrap();
        for _ in 0..3 {
            let ips = resolver.lookup("v4only.example").await.unwrap();
            assert_eq!(ips, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        }
        assert_eq!(aaaa.load(Ordering::SeqCst), 1);
    }
}
