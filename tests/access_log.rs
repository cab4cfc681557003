//! The access log's sinks with the real binary: a file rotated by logrotate with the
//! shipped snippet (the proxy reopens it on SIGUSR1), RFC 5424 syslog to a loopback
//! collector over UDP and TCP (octet counting, reconnect), and a sink nobody reads (a
//! FIFO) that must not stall tunnels: lost records are counted and reported afterwards.

mod support;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::process::ProxyProcess;
use support::scrape::scrape;
use support::{curl_via, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A config with every loopback client in a profile that breaks out `127.0.0.1:PORT`
/// (`origin_port`) and nothing else, no parent (anything else is refused with 503, a
/// record without any traffic leaving), and `log` as its `[log]` table.
fn config(dir: &Path, origin_port: u16, log: &str) -> PathBuf {
    let lists = dir.join("allowlists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(
        lists.join("lab-direct.toml"),
        format!(
            "[category]\nname = \"lab-direct\"\ndescription = \"test origin\"\n\
             [provenance]\nsource = \"test\"\nversion = \"1\"\nretrieved = \"2026-11-23\"\n\
             [[rule]]\nname = \"origin\"\nnetworks = [\"127.0.0.1/32\"]\nports = [{origin_port}]\n"
        ),
    )
    .unwrap();
    let path = dir.join("lbo-proxy.toml");
    std::fs::write(
        &path,
        format!(
            "[proxy]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [allowlists]\ndir = \"allowlists\"\n\
             [direct]\nallow_internal = [\"127.0.0.1/32\"]\n\
             [[profile]]\nname = \"lab\"\ndirect = [\"lab-direct\"]\n\
             [[segment]]\nname = \"lab\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"lab\"\n\
             [timeouts]\ndrain = \"1s\"\n\
             [state]\ndir = \"state\"\n\
             {log}\n"
        ),
    )
    .unwrap();
    path
}

/// One request that is refused without leaving the appliance (no parent): one record.
async fn refused(proxy: &ProxyProcess, n: usize) -> String {
    let r = curl_via(&proxy.url(), &format!("http://upstream-{n}.test/"), false).await;
    assert_eq!(r.status, 503, "{r:?}");
    format!("upstream-{n}.test:80")
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("access-log lines are JSON"))
        .collect()
}

/// Waits (bounded) until the file at `path` holds at least `n` lines.
async fn wait_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = lines(path);
        if l.len() >= n || Instant::now() > deadline {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn targets(lines: &[serde_json::Value]) -> Vec<&str> {
    lines.iter().filter_map(|l| l["target"].as_str()).collect()
}

#[tokio::test]
async fn logrotate_with_the_shipped_snippet_and_sigusr1_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = config(dir.path(), 9, "[log]\naccess = \"file:access.log\"\n");
    let proxy = ProxyProcess::start(&cfg);

    let first = refused(&proxy, 1).await;
    assert_eq!(targets(&wait_lines(&log, 2).await), [first.as_str()]);

    // The shipped snippet, pointed at this file and this process.
    let snippet = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/lbo-proxy.logrotate"),
    )
    .unwrap();
    let signal = "systemctl kill --kill-whom=main --signal=USR1 lbo-proxy.service";
    assert!(snippet.contains(signal));
    assert!(!snippet.lines().any(|l| l.trim() == "copytruncate"));
    let conf = dir.path().join("logrotate.conf");
    std::fs::write(
        &conf,
        snippet
            .replace("/var/log/lbo-proxy/access.log", log.to_str().unwrap())
            .replace(signal, &format!("kill -USR1 {}", proxy.child.id())),
    )
    .unwrap();
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(dir.path().join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("logrotate is not installed: run scripts/test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("access.log-"))
        })
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");

    // The proxy reopens by name: a new file appears, and new lines go there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "not reopened:\n{}", proxy.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = refused(&proxy, 2).await;
    assert_eq!(targets(&wait_lines(&log, 2).await), [second.as_str()]);
    assert_eq!(targets(&lines(&rotated[0])), [first.as_str()]);
    assert!(proxy.log().contains("access log reopened"));
    // The old file ends with a checkpoint and the new one begins with one, in sequence.
    let old = lines(&rotated[0]);
    let new = lines(&log);
    let last = old.last().unwrap();
    assert_eq!(
        (&last["event"], &last["kind"]),
        (&"checkpoint".into(), &"rotate".into())
    );
    assert_eq!(
        (&new[0]["event"], &new[0]["kind"]),
        (&"checkpoint".into(), &"open".into())
    );
    assert_eq!(new[0]["seq"].as_u64(), last["seq"].as_u64().map(|s| s + 1));
    assert_eq!(new[0]["prev"], last["chain"]);
}

#[tokio::test]
async fn stdout_for_the_journal_has_one_json_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 9, "[log]\naccess = \"stdout\"\n");
    let proxy = ProxyProcess::start(&cfg);
    let first = refused(&proxy, 1).await;
    let second = refused(&proxy, 2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    // The start checkpoint, then the two records.
    while proxy.stdout().lines().count() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let records: Vec<serde_json::Value> = proxy
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let mut seen = targets(&records);
    seen.sort_unstable();
    assert_eq!(seen, [first.as_str(), second.as_str()]);
    // Numbered from the start checkpoint on.
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(records[0]["kind"], "start");
    assert_eq!(records[0]["previous_stop"], "none");
}

/// A syslog message as RFC 5424 section 6 lays it out, with the JSON record as MSG.
struct Message {
    pri: u32,
    timestamp: String,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    /// The `lbo@32473` SD-ELEMENT's parameters.
    sd: std::collections::HashMap<String, String>,
    msg: serde_json::Value,
}

fn rfc5424(text: &str) -> Message {
    let (pri, rest) = text
        .strip_prefix('<')
        .and_then(|t| t.split_once(">1 "))
        .unwrap_or_else(|| panic!("no <PRI>1 header: {text:?}"));
    let f: Vec<&str> = rest.splitn(6, ' ').collect();
    assert_eq!(f.len(), 6, "{text:?}");
    let (sd, msg) = structured_data(f[5]);
    Message {
        pri: pri.parse().unwrap(),
        timestamp: f[0].into(),
        hostname: f[1].into(),
        app_name: f[2].into(),
        procid: f[3].into(),
        msgid: f[4].into(),
        sd,
        msg: serde_json::from_str(msg).expect("MSG is the JSON record"),
    }
}

/// Parses `[lbo@32473 name="value" …] MSG` (RFC 5424 6.3), unescaping `\"`, `\\`, `\]`.
fn structured_data(text: &str) -> (std::collections::HashMap<String, String>, &str) {
    let body = text
        .strip_prefix("[lbo@32473")
        .unwrap_or_else(|| panic!("no lbo@32473 structured data: {text:?}"));
    let mut params = std::collections::HashMap::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start_matches(' ');
        if let Some(msg) = rest.strip_prefix("] ") {
            return (params, msg);
        }
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad structured data: {text:?}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => value.push(chars.next().unwrap().1),
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated value: {text:?}"),
            }
        };
        params.insert(name.to_string(), value);
        rest = &after[end + 1..];
    }
}

fn is_rfc3339_utc(t: &str) -> bool {
    let b = t.as_bytes();
    t.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && t.ends_with('Z')
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

fn check_record(m: &Message, proxy: &ProxyProcess, facility: u32, target: &str) {
    assert_eq!(m.pri, facility * 8 + 6, "informational");
    assert!(is_rfc3339_utc(&m.timestamp), "{}", m.timestamp);
    assert_eq!(m.hostname, "lbo-test");
    assert_eq!(m.app_name, "lbo-proxy");
    assert_eq!(m.procid, proxy.child.id().to_string());
    assert_eq!(m.msgid, "access");
    assert_eq!(m.msg["target"], target);
    assert_eq!(m.msg["reason"], "no_parent");
    // The key fields as structured data, for a SIEM that does not parse the JSON.
    assert_eq!(m.sd["target"], target);
    assert_eq!(m.sd["reason"], "no_parent");
    assert_eq!(m.sd["seq"], m.msg["seq"].to_string());
    assert_eq!(m.sd["client"], "127.0.0.1");
    assert_eq!(m.sd["client_port"], m.msg["client_port"].to_string());
}

/// Skips checkpoints and reports: the next message that is a record.
fn is_record(m: &Message) -> bool {
    if let Some(event) = m.msg.get("event") {
        assert_eq!(m.sd["event"], event.as_str().unwrap());
        return false;
    }
    true
}

#[tokio::test]
async fn syslog_over_udp_one_rfc_5424_message_per_datagram() {
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        9,
        &format!(
            "[log]\naccess = \"syslog\"\n[log.syslog]\naddress = \"{}\"\n\
             transport = \"udp\"\nfacility = \"local3\"\nhostname = \"lbo-test\"\n",
            collector.local_addr().unwrap()
        ),
    );
    let proxy = ProxyProcess::start(&cfg);
    let mut buf = vec![0u8; 65536];
    for n in 1..=2 {
        let target = refused(&proxy, n).await;
        let m = loop {
            let (len, _) =
                tokio::time::timeout(Duration::from_secs(10), collector.recv_from(&mut buf))
                    .await
                    .expect("a datagram from the proxy")
                    .unwrap();
            let m = rfc5424(std::str::from_utf8(&buf[..len]).unwrap());
            if is_record(&m) {
                break m;
            }
        };
        check_record(&m, &proxy, 19, &target);
    }
}

/// The next octet-counted frame that is a record.
async fn record_frame(stream: &mut tokio::net::TcpStream) -> Message {
    loop {
        let m = rfc5424(&frame(stream).await);
        if is_record(&m) {
            return m;
        }
    }
}

/// Reads one octet-counted frame (RFC 6587 3.4.1) from a stream, bounded in time.
async fn frame(stream: &mut tokio::net::TcpStream) -> String {
    tokio::time::timeout(Duration::from_secs(10), support::collector::frame(stream))
        .await
        .expect("a frame from the proxy")
        .expect("a whole frame")
}

#[tokio::test]
async fn syslog_over_tcp_is_octet_counted_and_survives_a_collector_restart() {
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        9,
        &format!(
            "[log]\naccess = \"syslog\"\n[log.syslog]\naddress = \"{}\"\n\
             transport = \"tcp\"\nfacility = \"local0\"\nhostname = \"lbo-test\"\n",
            collector.local_addr().unwrap()
        ),
    );
    let proxy = ProxyProcess::start(&cfg);
    let accept = || async {
        tokio::time::timeout(Duration::from_secs(10), collector.accept())
            .await
            .expect("the proxy connects to the collector")
            .unwrap()
            .0
    };
    let target = refused(&proxy, 1).await;
    let mut stream = accept().await;
    check_record(&record_frame(&mut stream).await, &proxy, 16, &target);
    let target = refused(&proxy, 2).await;
    check_record(&record_frame(&mut stream).await, &proxy, 16, &target);

    // The collector drops the connection (a restart): the next record comes on a new one.
    stream.shutdown().await.unwrap();
    drop(stream);
    let target = refused(&proxy, 3).await;
    let mut stream = accept().await;
    check_record(&record_frame(&mut stream).await, &proxy, 16, &target);
}

/// The `lbo_access_log_dropped_total` counter of the process behind `admin`.
async fn dropped(proxy: &ProxyProcess) -> f64 {
    scrape(proxy.admin)
        .await
        .sum("lbo_access_log_dropped_total", &[])
}

/// Sends `n` CONNECT requests at once that are refused without leaving the appliance.
async fn burst(proxy: &ProxyProcess, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let addr = proxy.proxy;
        tasks.spawn(async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"CONNECT upstream.test:443 HTTP/1.1\r\nHost: upstream.test:443\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
            assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

#[tokio::test]
async fn a_sink_nobody_reads_does_not_stall_tunnels_and_every_lost_line_is_reported() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("access.fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(made.success());
    // A reader that is there (so the proxy can open the FIFO) but does not read yet.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let cfg = config(
        dir.path(),
        origin.port(),
        &format!("[log]\naccess = \"file:{}\"\nqueue = 4\n", fifo.display()),
    );
    let proxy = ProxyProcess::start(&cfg);

    // Fill the pipe (64 KiB) and the queue (4) until records are dropped.
    let mut sent = 0;
    // (Until the pipe stops filling: the writer is blocked on it.)
    let queued = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int, the bytes waiting in the pipe.
        unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&reader),
                libc::FIONREAD,
                &mut n,
            )
        };
        n
    };
    let mut before = -1;
    while dropped(&proxy).await == 0.0 || queued() != before {
        assert!(sent < 10_000, "nothing dropped after {sent} records");
        before = queued();
        burst(&proxy, 100).await;
        sent += 100;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // While the writer is stuck: the queue depth shows it, and the service log says
    // records are being lost, not only afterwards. (More records, so the last one to
    // set the gauge met the queue full, the writer blocked on the full pipe.)
    burst(&proxy, 10).await;
    sent += 10;
    let depth = scrape(proxy.admin)
        .await
        .sum("lbo_access_log_queue_depth", &[]);
    assert_eq!(depth, 4.0);
    assert!(
        proxy
            .log()
            .contains("records are being lost (the queue is full)"),
        "{}",
        proxy.log()
    );

    // The sink is stalled; a tunnel still goes through at once.
    let r = curl_via(
        &proxy.url(),
        &format!("http://127.0.0.1:{}/", origin.port()),
        true,
    )
    .await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    assert_eq!(r.body.trim(), format!("origin 127.0.0.1:{}", origin.port()));
    sent += 1;

    // The pressure ends: every record is either in the log or counted in a report.
    let mut text = String::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(30);
    let (records, reported) = loop {
        match reader.read(&mut buf) {
            Ok(n) => text.push_str(std::str::from_utf8(&buf[..n]).unwrap()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("{e}"),
        }
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let lines: Vec<serde_json::Value> = complete
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect();
        let reported: u64 = lines
            .iter()
            .filter(|l| l["event"] == "records_lost")
            .map(|l| l["count"].as_u64().unwrap())
            .sum();
        let records = lines.iter().filter(|l| l.get("event").is_none()).count();
        for l in &lines {
            assert!(l["seq"].is_u64() && l["chain"].is_string(), "{l}");
        }
        if records + reported as usize >= sent || Instant::now() > deadline {
            break (records, reported);
        }
    };
    assert!(reported > 0);
    assert_eq!(records + reported as usize, sent, "{records} + {reported}");
    assert_eq!(dropped(&proxy).await, reported as f64);
    let report = text.lines().find(|l| l.contains("records_lost")).unwrap();
    let report: serde_json::Value = serde_json::from_str(report).unwrap();
    for end in ["from", "to"] {
        assert!(report[end].as_str().is_some_and(is_rfc3339_utc), "{report}");
    }
    assert!(proxy.log().contains("lost records reported in the log"));
}

/// The `error` of every failure is written for people: DNS answers and refused
/// connections say what happened, never a program's `Debug` notation (such as
/// `Query { name: Name(…) }`; TLS failures: `error_text`'s unit tests).
#[tokio::test]
async fn error_texts_are_for_people() {
    use support::{curl, DnsMode, FaultyDns, Lab, Proxy};
    let dns = FaultyDns::start(&[("direct.test", "127.0.0.1")], 60).await;
    // Nothing listens on the allowlisted port: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let proxy = Proxy::start(Lab::on(dns.addr, port)).await;
    let cases = [
        (
            format!("http://nx.direct.test:{port}/"),
            "dns_failed",
            "no such name (NXDOMAIN)",
        ),
        (
            format!("http://direct.test:{port}/"),
            "connect_failed",
            "refused",
        ),
    ];
    let mut n = 0;
    for (url, _, _) in &cases {
        curl(&proxy, url, true).await;
        n += 1;
    }
    dns.set(DnsMode::ServFail);
    curl(
        &proxy,
        &format!("http://servfail.direct.test:{port}/"),
        true,
    )
    .await;
    n += 1;
    let records: Vec<serde_json::Value> = proxy
        .records(n)
        .await
        .into_iter()
        .filter(|r| r.get("event").is_none())
        .collect();
    assert_eq!(records.len(), n, "{records:?}");
    let error = |reason: &str| {
        records
            .iter()
            .find(|r| r["reason"] == reason)
            .and_then(|r| r["error"].as_str())
            .unwrap_or_else(|| panic!("no {reason} record in {records:?}"))
            .to_string()
    };
    for (_, reason, want) in &cases {
        let e = error(reason);
        assert!(e.contains(want), "{reason}: {e}");
    }
    let servfail = records
        .iter()
        .filter_map(|r| r["error"].as_str())
        .find(|e| e.contains("servfail.direct.test"))
        .unwrap();
    assert!(
        servfail.contains("the resolver answered Server Failure (2)"),
        "{servfail}"
    );
    for r in &records {
        let e = r["error"].as_str().unwrap_or("");
        assert!(!lbo_proxy::error_text::looks_like_debug(e), "{e}");
    }
    proxy.stop().await;
}

/// RFC 5425: syslog over TLS to a collector that verifies the appliance's client
/// certificate.
#[tokio::test]
async fn syslog_over_tls_with_a_client_certificate() {
    use support::collector::{Collector, TestCa};
    let ca = TestCa::new("municipality CA");
    let collector = Collector::start(Some(ca.server_config("siem.test", Some(&ca)))).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf("lbo1.city.example");
    std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
    std::fs::write(dir.path().join("me.pem"), cert).unwrap();
    std::fs::write(dir.path().join("me.key"), key).unwrap();
    let cfg = config(
        dir.path(),
        9,
        &format!(
            "[log]\naccess = \"syslog\"\n[log.syslog]\naddress = \"{}\"\ntransport = \"tls\"\n\
             ca_file = \"ca.pem\"\nserver_name = \"siem.test\"\nclient_cert = \"me.pem\"\n\
             client_key = \"me.key\"\n",
            collector.addr
        ),
    );
    let proxy = ProxyProcess::start(&cfg);
    let target = refused(&proxy, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !collector.lines().iter().any(|l| l.contains(&target)) {
        assert!(
            Instant::now() < deadline,
            "nothing over TLS:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = collector.lines();
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["kind"], "start");
}
