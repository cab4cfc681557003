//! DNS for the direct route: the LBO line's own resolvers (or the system's), cached.
//! A lookup is bounded twice: each query by `timeouts.dns` (tried twice), the whole
//! lookup by three times that; running out of either is a `dns_timeout`, never a wait.
//!
//! In front of the resolver's own cache sits a small table of recent answers
//! ([`Answers`]): at 9:00 thousands of tunnels a second go to the same few sign-in and
//! mail names, and a hit there is one hash lookup, where the resolver's cache parses the
//! name and runs an A and an AAAA query through its cache.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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

/// Longest an answer is kept in [`Answers`], whatever its TTL: an A answer may have come
/// with "no data" for AAAA, which the resolver keeps for [`NEGATIVE_TTL_FLOOR`] and then
/// asks again; this table must not keep the family out for longer.
const ANSWER_TTL_CAP: Duration = NEGATIVE_TTL_FLOOR;
/// Names kept in [`Answers`]. A wildcard rule lets clients ask for many names; when the
/// table is full, expired answers go, and if none has, all of them.
const MAX_ANSWERS: usize = 10_000;

pub struct Resolver {
    inner: TokioResolver,
    timeout: Duration,
    answers: Answers,
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
            answers: Answers::default(),
        })
    }

    /// Every address of `name` (A and AAAA), or why there is none.
    pub async fn lookup(&self, name: &str) -> Result<Arc<[IpAddr]>, ConnectError> {
        if let Some(ips) = self.answers.get(name, Instant::now()) {
            return Ok(ips);
        }
        // The trailing dot makes the name absolute: no search domains are tried.
        let fqdn = format!("{name}.");
        let deadline = self.timeout * 3;
        match tokio::time::timeout(deadline, self.inner.lookup_ip(fqdn.as_str())).await {
            Err(_) => Err(ConnectError::DnsTimeout(name.to_string())),
            Ok(Err(e)) if timed_out(&e) => Err(ConnectError::DnsTimeout(name.to_string())),
            Ok(Err(e)) => Err(ConnectError::DnsFailed {
                name: name.to_string(),
                detail: crate::error_text::dns(&e),
            }),
            Ok(Ok(found)) => {
                let ips: Arc<[IpAddr]> = found.iter().collect();
                if ips.is_empty() {
                    Err(ConnectError::DnsFailed {
                        name: name.to_string(),
                        detail: "no addresses".into(),
                    })
                } else {
                    let until = found.valid_until();
                    self.answers.put(name, ips.clone(), until, Instant::now());
                    Ok(ips)
                }
            }
        }
    }
}

/// Recent positive answers by name, each until its TTL runs out (at most
/// [`ANSWER_TTL_CAP`]). Only the resolver's answers go in; failures are not kept here.
#[derive(Default)]
struct Answers {
    table: RwLock<HashMap<Box<str>, Answer>>,
}

struct Answer {
    ips: Arc<[IpAddr]>,
    until: Instant,
}

impl Answers {
    fn get(&self, name: &str, now: Instant) -> Option<Arc<[IpAddr]>> {
        let table = self.table.read().ok()?;
        let answer = table.get(name)?;
        (answer.until > now).then(|| answer.ips.clone())
    }

    fn put(&self, name: &str, ips: Arc<[IpAddr]>, until: Instant, now: Instant) {
        let until = until.min(now + ANSWER_TTL_CAP);
        if until <= now {
            return;
        }
        let Ok(mut table) = self.table.write() else {
            return;
        };
        if table.len() >= MAX_ANSWERS && !table.contains_key(name) {
            table.retain(|_, a| a.until > now);
            if table.len() >= MAX_ANSWERS {
                table.clear();
            }
        }
        table.insert(name.into(), Answer { ips, until });
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

    fn ips(list: &[&str]) -> Arc<[IpAddr]> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn an_answer_is_kept_until_its_ttl_and_no_longer_than_the_cap() {
        let answers = Answers::default();
        let now = Instant::now();
        answers.put(
            "a.example",
            ips(&["192.0.2.1"]),
            now + Duration::from_secs(30),
            now,
        );
        answers.put(
            "b.example",
            ips(&["192.0.2.2"]),
            now + Duration::from_secs(86_400),
            now,
        );
        let at = |s| now + Duration::from_secs(s);
        assert_eq!(answers.get("a.example", at(29)), Some(ips(&["192.0.2.1"])));
        assert_eq!(answers.get("a.example", at(30)), None);
        assert_eq!(answers.get("b.example", at(59)), Some(ips(&["192.0.2.2"])));
        assert_eq!(answers.get("b.example", at(60)), None);
        // Names are kept as given: the caller normalises them (lower case, no final dot).
        assert_eq!(answers.get("A.example", at(1)), None);
        assert_eq!(answers.get("a.example.", at(1)), None);
        assert_eq!(answers.get("c.example", at(1)), None);
    }

    #[test]
    fn an_answer_with_no_ttl_left_is_not_kept() {
        let answers = Answers::default();
        let now = Instant::now();
        answers.put("a.example", ips(&["192.0.2.1"]), now, now);
        assert_eq!(answers.get("a.example", now), None);
    }

    #[test]
    fn a_full_table_drops_expired_answers_then_everything() {
        let answers = Answers::default();
        let now = Instant::now();
        let short = now + Duration::from_secs(1);
        let long = now + Duration::from_secs(50);
        for i in 0..MAX_ANSWERS {
            let until = if i % 2 == 0 { short } else { long };
            answers.put(&format!("n{i}.example"), ips(&["192.0.2.1"]), until, now);
        }
        let later = now + Duration::from_secs(2);
        answers.put("new.example", ips(&["192.0.2.9"]), long, later);
        let len = answers.table.read().unwrap().len();
        assert_eq!(len, MAX_ANSWERS / 2 + 1);
        assert_eq!(answers.get("n1.example", later), Some(ips(&["192.0.2.1"])));
        // Full of live answers: the table starts again rather than grow.
        for i in 0..MAX_ANSWERS {
            answers.put(&format!("m{i}.example"), ips(&["192.0.2.1"]), long, later);
        }
        assert!(answers.table.read().unwrap().len() <= MAX_ANSWERS);
        let last = format!("m{}.example", MAX_ANSWERS - 1);
        assert_eq!(answers.get(&last, later), Some(ips(&["192.0.2.1"])));
    }

    /// Without a floor, such an answer is not cached at all and every connection to an
    /// IPv4-only name costs a query.
    #[tokio::test]
    async fn no_data_without_an_soa_is_cached() {
        let (dns, aaaa) = no_soa_dns().await;
        let resolver = Resolver::new(&[dns], Duration::from_secs(2)).unwrap();
        for _ in 0..3 {
            let ips = resolver.lookup("v4only.example").await.unwrap();
            assert_eq!(*ips, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
        }
        assert_eq!(aaaa.load(Ordering::SeqCst), 1);
    }
}
