//! Real parts on loopback for the end-to-end tests: a DNS server the test controls, an
//! origin that records what reaches it, Squid from Debian as the security cloud, the proxy
//! itself in-process, and curl as the client.

#![allow(dead_code)]

pub mod browser;
pub mod collector;
pub mod evidence;
pub mod netns;
pub mod parent;
pub mod process;
pub mod readback;
pub mod scrape;
pub mod signin;
pub mod throwaway_root;
pub mod tls;
pub mod zero_rtt;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// A DNS server on 127.0.0.1 answering A/AAAA from a fixed table, NXDOMAIN otherwise.
pub async fn dns_server(records: &[(&str, &str)]) -> SocketAddr {
    FaultyDns::start(records, 60).await.addr
}

/// How a [`FaultyDns`] answers right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsMode {
    /// Answers from the table.
    Ok = 0,
    /// SERVFAIL to every query.
    ServFail = 1,
    /// No answer at all: the resolver times out.
    Silent = 2,
}

/// A DNS server on 127.0.0.1 whose behaviour the test switches while it runs (the soak's
/// DNS faults); in [`DnsMode::Ok`] it is [`dns_server`].
#[derive(Clone)]
pub struct FaultyDns {
    pub addr: SocketAddr,
    mode: Arc<std::sync::atomic::AtomicU8>,
}

impl FaultyDns {
    /// Answers `records` with `ttl` seconds (a short one keeps the resolver asking).
    pub async fn start(records: &[(&str, &str)], ttl: u32) -> FaultyDns {
        let (socket, tcp) = udp_and_tcp_port().await;
        FaultyDns::serve(socket, tcp, records, ttl)
    }

    /// As [`FaultyDns::start`], on port 53 of a loopback address of its own, for a
    /// resolver that cannot be given a port (Squid's `dns_nameservers`).
    pub async fn start_on_port_53(records: &[(&str, &str)], ttl: u32) -> FaultyDns {
        let pid = std::process::id();
        for i in 0..200u32 {
            let n = pid.wrapping_add(i * 7919) % (250 * 250);
            let ip = std::net::Ipv4Addr::new(127, 53, (n / 250) as u8 + 1, (n % 250) as u8 + 1);
            let Ok(udp) = UdpSocket::bind((ip, 53)).await else {
                continue;
            };
            if let Ok(tcp) = TcpListener::bind((ip, 53)).await {
                return FaultyDns::serve(udp, tcp, records, ttl);
            }
        }
        panic!("no loopback address free for a DNS server on port 53 (needs root)");
    }

    fn serve(socket: UdpSocket, tcp: TcpListener, records: &[(&str, &str)], ttl: u32) -> FaultyDns {
        let table: HashMap<String, Vec<IpAddr>> =
            records.iter().fold(HashMap::new(), |mut m, (n, ip)| {
                m.entry(format!("{n}."))
                    .or_default()
                    .push(ip.parse().unwrap());
                m
            });
        let addr = socket.local_addr().unwrap();
        // DNS over TCP on the same port never answers: a resolver that falls back to TCP
        // when UDP is silent must time out, not see a quick "connection refused".
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let mut sink = [0u8; 512];
                    while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(DnsMode::Ok as u8));
        let current = mode.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let resp = match current.load(std::sync::atomic::Ordering::SeqCst) {
                    0 => dns_answer(&query, &table, ttl),
                    1 => {
                        let mut resp = dns_reply(&query);
                        resp.metadata.response_code = ResponseCode::ServFail;
                        resp
                    }
                    _ => continue,
                };
                if let Ok(bytes) = resp.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        FaultyDns { addr, mode }
    }

    pub fn set(&self, mode: DnsMode) {
        self.mode
            .store(mode as u8, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
async fn udp_and_tcp_port() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// An empty response to `query`, echoing its id and questions.
fn dns_reply(query: &Message) -> Message {
    let mut resp = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    for q in &query.queries {
        resp.add_query(q.clone());
    }
    resp
}

/// The answer to `query` from `table`: A/AAAA records, NXDOMAIN for unknown names.
fn dns_answer(query: &Message, table: &HashMap<String, Vec<IpAddr>>, ttl: u32) -> Message {
    let mut resp = dns_reply(query);
    let mut found = false;
    for q in &query.queries {
        let name = q.name().to_ascii().to_lowercase();
        if let Some(ips) = table.get(&name) {
            found = true;
            for ip in ips {
                let rdata = match (ip, q.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                resp.add_answer(Record::from_rdata(q.name().clone(), ttl, rdata));
            }
        }
    }
    if !found {
        resp.metadata.response_code = ResponseCode::NXDomain;
    }
    resp
}

/// An HTTP/1.1 origin (keep-alive) that answers every request with `origin <Host>` and
/// remembers the request heads and connections it saw.
#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (log, count) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end);
                        let host = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("Host: ")
                                    .or_else(|| l.strip_prefix("host: "))
                            })
                            .unwrap_or("")
                            .to_string();
                        log.lock().unwrap().push(head);
                        let body = format!("origin {host}\n");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tcp.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Origin {
            addr,
            seen,
            connections,
        }
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn saw(&self, needle: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|h| h.contains(needle))
    }

    pub fn heads(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Squid from Debian, as the security cloud's parent proxy, on loopback.
pub struct Squid {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    /// How it was started, so that [`Squid::restart`] starts it the same way.
    bin: &'static str,
    name: String,
}

impl Squid {
    /// Starts Squid resolving `hosts` from its own hosts file. Fails (never skips) when
    /// Squid is not installed: `scripts/test` installs it.
    pub fn start(hosts: &[(&str, &str)]) -> Squid {
        Squid::start_with(hosts, None)
    }

    /// As [`Squid::start`], requiring Basic proxy authentication when `auth` is given.
    pub fn start_with(hosts: &[(&str, &str)], auth: Option<(&str, &str)>) -> Squid {
        Squid::start_configured(hosts, auth, "")
    }

    /// As [`Squid::start_with`], with `extra` lines appended to squid.conf.
    pub fn start_configured(
        hosts: &[(&str, &str)],
        auth: Option<(&str, &str)>,
        extra: &str,
    ) -> Squid {
        Squid::start_resolving(hosts, auth, extra, "127.0.0.1".parse().unwrap())
    }

    /// As [`Squid::start_configured`], asking `dns` (port 53) for names its hosts file
    /// does not have.
    pub fn start_resolving(
        hosts: &[(&str, &str)],
        auth: Option<(&str, &str)>,
        extra: &str,
        dns: IpAddr,
    ) -> Squid {
        let bin = ["/usr/sbin/squid", "/usr/bin/squid"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("squid is not installed: run scripts/test (apt-get install squid)");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let hosts_file: String = hosts.iter().map(|(n, ip)| format!("{ip} {n}\n")).collect();
        std::fs::write(d.join("hosts"), hosts_file).unwrap();
        let port = closed_port();
        let user = if is_root() {
            "cache_effective_user proxy\n"
        } else {
            ""
        };
        let access = match auth {
            None => "http_access allow all\n".to_string(),
            Some((name, password)) => {
                let hash = Command::new("openssl")
                    .args(["passwd", "-apr1", password])
                    .output()
                    .expect("openssl is not installed: run scripts/test");
                let hash = String::from_utf8(hash.stdout).unwrap();
                std::fs::write(d.join("passwd"), format!("{name}:{}\n", hash.trim())).unwrap();
                format!(
                    "auth_param basic program /usr/lib/squid/basic_ncsa_auth {}/passwd\n\
                     acl authed proxy_auth REQUIRED\n\
                     http_access allow authed\n\
                     http_access deny all\n",
                    d.display()
                )
            }
        };
        // `blocked.test` stands for what the security cloud's filter refuses.
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             acl blocked dstdomain blocked.test\n\
             http_access deny blocked\n\
             {access}\
             cache deny all\n\
             access_log stdio:{d}/access.log squid\n\
             cache_log {d}/cache.log\n\
             pid_filename {d}/squid.pid\n\
             hosts_file {d}/hosts\n\
             dns_nameservers {dns}\n\
             coredump_dir {d}\n\
             shutdown_lifetime 0 seconds\n\
             visible_hostname seccloud-test\n\
             {user}{extra}",
            d = d.display()
        );
        std::fs::write(d.join("squid.conf"), conf).unwrap();
        let name = format!("lbotest{port}");
        let child = Squid::spawn(bin, &name, d);
        let squid = Squid {
            port,
            dir,
            child,
            bin,
            name,
        };
        squid.wait_listening();
        squid
    }

    fn spawn(bin: &str, name: &str, dir: &Path) -> Child {
        Command::new(bin)
            .args(["-N", "-n", name, "-f"])
            .arg(dir.join("squid.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting squid")
    }

    /// Waits (bounded, 30 s) until Squid accepts connections on its port.
    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "squid did not start: {}",
                std::fs::read_to_string(self.dir.path().join("cache.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The parent crashes: SIGKILL to the Squid this helper started, then reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts Squid again after [`Squid::kill`], on the same port with the same config,
    /// and waits (bounded) until it listens.
    pub fn restart(&mut self) {
        self.child = Squid::spawn(self.bin, &self.name, self.dir.path());
        self.wait_listening();
    }

    /// Whether the Squid process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits (bounded) for Squid's access log to mention `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.access_log().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false)
}

/// The proxy, in-process, on an ephemeral port, logging to a file the test reads.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// Transparent TLS (SNI) listeners, as configured in `[transparent]`.
    pub transparent_tls: Vec<SocketAddr>,
    /// Transparent HTTP (`Host`) listeners.
    pub transparent_http: Vec<SocketAddr>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// What a test configures; rendered into a real TOML config.
pub struct Lab<'a> {
    pub dns: SocketAddr,
    pub origin_port: u16,
    pub parents: Vec<(&'a str, String)>,
    pub segment: &'a str,
    pub extra: &'a str,
    /// More lines of the `[timeouts]` table (`head = "1s"`…); a `connect` here replaces
    /// the lab's `3s`.
    pub timeouts: &'a str,
    /// More names that break out (rule `direct-test`, on `origin_port`).
    pub direct_domains: &'a [&'a str],
    /// More lines of the `[upstream]` table; a `fall` or `rise` here replaces the lab's 1.
    pub upstream: &'a str,
    /// The admin listener's address.
    pub admin_listen: &'a str,
    /// More lines of the `[admin]` table (`allow = […]`, `token_file = …`).
    pub admin: &'a str,
    /// The proxy listener's address.
    pub proxy_listen: &'a str,
}

impl<'a> Lab<'a> {
    /// A lab on `dns` whose allowlisted destinations listen on `origin_port`: every loopback
    /// client, no parent, nothing extra.
    pub fn on(dns: SocketAddr, origin_port: u16) -> Lab<'a> {
        Lab {
            dns,
            origin_port,
            parents: Vec::new(),
            segment: "127.0.0.0/8",
            extra: "",
            timeouts: "",
            direct_domains: &[],
            upstream: "",
            admin_listen: "127.0.0.1:0",
            admin: "",
            proxy_listen: "127.0.0.1:0",
        }
    }
}

impl Proxy {
    pub async fn start(lab: Lab<'_>) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let lists = dir.path().join("allowlists");
        std::fs::create_dir(&lists).unwrap();
        let port = lab.origin_port;
        let more: String = lab
            .direct_domains
            .iter()
            .map(|d| format!(", \"{d}\""))
            .collect();
        std::fs::write(
            lists.join("lab-direct.toml"),
            format!(
                r#"[category]
name = "lab-direct"
description = "test destinations that break out"
[provenance]
source = "test"
version = "1"
retrieved = "2026-11-23"
[[rule]]
name = "direct-test"
domains = ["direct.test", "*.direct.test"{more}]
networks = ["127.0.0.1/32"]
ports = [{port}]
"#
            ),
        )
        .unwrap();
        std::fs::write(
            lists.join("lab-deny.toml"),
            r#"[category]
name = "lab-deny"
description = "test destinations that are refused"
[provenance]
source = "test"
version = "1"
retrieved = "2026-11-23"
[[rule]]
name = "denied"
domains = ["deny.test"]
"#,
        )
        .unwrap();
        let parents: String = lab
            .parents
            .iter()
            .map(|(name, addr)| {
                format!("[[upstream.parent]]\nname = \"{name}\"\naddress = \"{addr}\"\n")
            })
            .collect();
        let config = format!(
            r#"[proxy]
listen = ["{proxy_listen}"]
[admin]
listen = "{admin_listen}"
{admin}
[allowlists]
dir = "allowlists"
[direct]
dns = ["{dns}"]
allow_internal = ["127.0.0.1/32"]
[upstream]
{interval}{fall}{rise}{upstream}
{parents}
[[profile]]
name = "lab"
direct = ["lab-direct"]
deny = ["lab-deny"]
[[segment]]
name = "lab"
networks = ["{segment}"]
profile = "lab"
[timeouts]
drain = "1s"
{connect}{timeouts}
[log]
access = "access.log"
[state]
dir = "state"
{extra}
"#,
            dns = lab.dns,
            proxy_listen = lab.proxy_listen,
            admin_listen = lab.admin_listen,
            admin = lab.admin,
            segment = lab.segment,
            extra = lab.extra,
            timeouts = lab.timeouts,
            upstream = lab.upstream,
            connect = if lab.timeouts.contains("connect") {
                ""
            } else {
                "connect = \"3s\"\n"
            },
            interval = if lab.upstream.contains("health_interval") {
                ""
            } else {
                "health_interval = \"1h\"\n"
            },
            fall = if lab.upstream.contains("fall") {
                ""
            } else {
                "fall = 1\n"
            },
            rise = if lab.upstream.contains("rise") {
                ""
            } else {
                "rise = 1\n"
            },
        );
        let path = dir.path().join("lbo-proxy.toml");
        std::fs::write(&path, &config).unwrap();
        let config =
            lbo_proxy::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{config}"));
        let server = lbo_proxy::Server::bind(config).await.unwrap();
        let addr = server.proxy_addrs()[0];
        let admin = server.admin_addr();
        let transparent_tls = server.transparent_tls_addrs();
        let transparent_http = server.transparent_http_addrs();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Proxy {
            addr,
            admin,
            transparent_tls,
            transparent_http,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the proxy and waits for it to drain; the directory (and its access log) is
    /// handed back.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.dir
    }

    /// Access-log records (waits, bounded, for at least `n`), without the log's own
    /// lines (checkpoints, reports of lost records).
    pub async fn records(&self, n: usize) -> Vec<serde_json::Value> {
        let path: PathBuf = self.dir.path().join("access.log");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let recs: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("access log lines are JSON"))
                .filter(|r: &serde_json::Value| r.get("event").is_none())
                .collect();
            if recs.len() >= n || Instant::now() > deadline {
                return recs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The result of one curl run.
#[derive(Debug)]
pub struct Curl {
    /// Final HTTP status (000 when none).
    pub status: u16,
    /// Status of the proxy's CONNECT reply (0 when no CONNECT).
    pub connect: u16,
    pub body: String,
}

/// Runs curl through the proxy. `tunnel` makes curl use CONNECT even for http:// URLs.
pub async fn curl(proxy: &Proxy, url: &str, tunnel: bool) -> Curl {
    curl_via(&proxy.url(), url, tunnel).await
}

/// Runs curl through the proxy at `proxy_url` (e.g. a [`process::ProxyProcess`]).
pub async fn curl_via(proxy_url: &str, url: &str, tunnel: bool) -> Curl {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "15",
        "-x",
        proxy_url,
        "-w",
        "\n%{http_code} %{http_connect}",
    ]);
    if tunnel {
        cmd.arg("--proxytunnel");
    }
    cmd.arg(url);
    let out = cmd
        .output()
        .await
        .expect("curl is not installed: run scripts/test");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, codes) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut codes = codes
        .split_whitespace()
        .map(|c| c.parse::<u16>().unwrap_or(0));
    Curl {
        status: codes.next().unwrap_or(0),
        connect: codes.next().unwrap_or(0),
        body: body.to_string(),
    }
}

/// A TLS front for a parent (the security cloud's TLS listener): terminates TLS with a
/// fresh certificate for `name` and forwards the bytes to `backend`. Returns its address
/// and the PEM file of the certificate to trust.
pub async fn tls_front(name: &str, backend: String, dir: &Path) -> (SocketAddr, PathBuf) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let pem = dir.join("parent-ca.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, pem)
}
