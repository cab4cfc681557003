//! Everything of the same kind as a dead parent or a broken answer, each given its class
//! and checked end to end on loopback: what never reached a parent (refused, connect
//! timed out, closed at once or before any reply byte, TLS refused for a wrong
//! certificate, a name that does not resolve) fails over to the next parent and counts
//! toward `fall`; what reached one and broke (a reply cut off, too large, not HTTP) is not
//! sent again. And an application-level health check marks down a parent that accepts
//! TCP but never answers.

mod support;

use std::time::{Duration, Instant};

use support::parent::{FakeParent, FullBacklog, Script};
use support::readback::{is_up, last, metric};
use support::{closed_port, curl, dns_server, DnsMode, FaultyDns, Lab, Origin, Proxy, Squid};

const RECORDS: &[(&str, &str)] = &[("direct.test", "127.0.0.1")];
const SQUID_HOSTS: &[(&str, &str)] = &[("upstream.test", "127.0.0.1")];

/// A parent that is never reached, and the words its failure is logged with.
struct Unreached {
    kind: &'static str,
    /// The `[[upstream.parent]]` table of the bad parent, named `NAME`.
    parent: String,
    /// More lines of `[upstream]`.
    upstream: String,
    words: String,
    /// Keeps the bad parent's parts alive.
    _keep: Box<dyn std::any::Any + Send>,
}

fn table(address: &str, more: &str) -> String {
    format!("[[upstream.parent]]\nname = \"NAME\"\naddress = \"{address}\"\n{more}")
}

async fn unreached_kinds(dir: &std::path::Path) -> Vec<Unreached> {
    let closed = format!("127.0.0.1:{}", closed_port());
    let backlog = FullBacklog::start();
    let at_once = FakeParent::start(Script::CloseAtOnce).await;
    let after_head = FakeParent::start(Script::CloseAfterHead).await;
    let squid_for_tls = Squid::start(SQUID_HOSTS);
    let (front, ca) = support::tls_front("seccloud.test", squid_for_tls.addr(), dir).await;
    let nxdomain = dns_server(&[]).await;
    let silent = FaultyDns::start(&[], 60).await;
    silent.set(DnsMode::Silent);
    vec![
        Unreached {
            kind: "refused",
            parent: table(&closed, ""),
            upstream: String::new(),
            words: format!("TCP connect to {closed} refused"),
            _keep: Box::new(()),
        },
        Unreached {
            kind: "connect timed out",
            parent: table(&backlog.addr.to_string(), ""),
            upstream: String::new(),
            words: format!("TCP connect to {} timed out after 1 s", backlog.addr),
            _keep: Box::new(backlog),
        },
        Unreached {
            kind: "closed at once",
            parent: table(&at_once.address(), ""),
            upstream: String::new(),
            words: "the parent closed the connection before answering".into(),
            _keep: Box::new(at_once),
        },
        Unreached {
            kind: "closed after reading the CONNECT, before any reply byte",
            parent: table(&after_head.address(), ""),
            upstream: String::new(),
            words: "the parent closed the connection before answering".into(),
            _keep: Box::new(after_head),
        },
        Unreached {
            kind: "TLS: certificate for another name",
            parent: table(
                &front.to_string(),
                &format!(
                    "tls = true\ntls_server_name = \"other.test\"\ntls_ca_file = \"{}\"\n",
                    ca.display()
                ),
            ),
            upstream: String::new(),
            words: "TLS handshake failed: the parent's certificate is not valid for the name other.test (tls_server_name)".into(),
            _keep: Box::new(squid_for_tls),
        },
        Unreached {
            kind: "TLS: certificate from an unknown CA",
            parent: table(&front.to_string(), "tls = true\ntls_server_name = \"seccloud.test\"\n"),
            upstream: String::new(),
            words: "TLS handshake failed: the parent's certificate is not signed by a trusted CA (the system's CAs; set tls_ca_file)".into(),
            _keep: Box::new(()),
        },
        Unreached {
            kind: "the parents' resolver does not answer",
            parent: table("seccloud-slow.test:3128", ""),
            upstream: format!("dns = [\"{}\"]\n", silent.addr),
            words: "the name seccloud-slow.test was not resolved in time (upstream.dns did not answer)".into(),
            _keep: Box::new(silent),
        },
        Unreached {
            kind: "name does not resolve",
            parent: table("seccloud-gone.test:3128", ""),
            upstream: format!("dns = [\"{nxdomain}\"]\n"),
            words: "the name seccloud-gone.test does not resolve (no such name (NXDOMAIN))".into(),
            _keep: Box::new(()),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_never_reached_a_parent_fails_over_and_says_what_happened() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let certs = tempfile::tempdir().unwrap();
    let port = origin.port();
    // Parent names are unique to each case: the metrics are the process's.
    for (i, k) in unreached_kinds(certs.path()).await.into_iter().enumerate() {
        let (bad, good) = (format!("unreached-{i}"), format!("unreached-{i}-b"));
        let parent = k.parent.replace("NAME", &bad);
        // With a second parent: the request gets through it, on both paths.
        let second = format!(
            "{parent}[[upstream.parent]]\nname = \"{good}\"\naddress = \"{}\"\n",
            squid.addr()
        );
        let upstream = format!("fall = 10\n{}", k.upstream);
        let proxy = Proxy::start(Lab {
            extra: &second,
            upstream: &upstream,
            timeouts: "connect = \"1s\"\ndns = \"300ms\"\n",
            ..Lab::on(dns_server(RECORDS).await, port)
        })
        .await;
        let r = curl(&proxy, &format!("http://upstream.test:{port}/t"), true).await;
        assert_eq!((r.connect, r.status), (200, 200), "{}: {r:?}", k.kind);
        assert_eq!(
            last(&proxy, 1, "CONNECT").await["parent"],
            *good,
            "{}",
            k.kind
        );
        let r = curl(&proxy, &format!("http://upstream.test:{port}/p"), false).await;
        let rec = last(&proxy, 2, "GET").await;
        if k.kind.starts_with("closed after reading") {
            // hyper wrote the GET before the close: it is the parent's now, not sent again.
            assert_eq!(r.status, 502, "{}: {r:?}", k.kind);
            assert_eq!(rec["reason"], "parent_failed", "{}: {rec}", k.kind);
        } else if k.kind != "closed at once" {
            // (Closed at once races hyper's write: either class is right then.)
            assert_eq!(r.status, 200, "{}: {r:?}", k.kind);
            assert_eq!(rec["parent"], *good, "{}", k.kind);
        }
        let unreachable = [("parent", bad.as_str()), ("class", "unreachable")];
        assert!(
            metric(&proxy, "lbo_parent_attempts_total", &unreachable).await >= 1.0,
            "{}",
            k.kind
        );
        proxy.stop().await;

        // Alone: the client is told, in words.
        let proxy = Proxy::start(Lab {
            extra: &parent,
            upstream: &upstream,
            timeouts: "connect = \"1s\"\ndns = \"300ms\"\n",
            ..Lab::on(dns_server(RECORDS).await, port)
        })
        .await;
        let r = curl(&proxy, &format!("http://upstream.test:{port}/t"), true).await;
        assert_eq!(r.connect, 502, "{}: {r:?}", k.kind);
        let rec = last(&proxy, 1, "CONNECT").await;
        assert_eq!(rec["reason"], "parent_unreachable", "{}: {rec}", k.kind);
        assert_eq!(rec["parent"], *bad);
        let said = rec["error"].as_str().unwrap_or("");
        let close = "the parent closed the connection before answering";
        let reset = "the parent reset the connection before answering";
        let mut want = format!(
            "no security cloud parent could be reached: {bad}: {}",
            k.words
        );
        if k.kind == "closed at once" && said.ends_with(reset) {
            // Whether the close or our write comes first decides between the two.
            want = want.replace(close, reset);
        }
        assert_eq!(said, want, "{}", k.kind);
        proxy.stop().await;
    }
}

/// An oversized reply head, leaked so a script can hold it.
fn huge_head() -> &'static [u8] {
    let mut head = b"HTTP/1.1 200 Connection established\r\nX-Padding: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 20 * 1024));
    Box::leak(head.into_boxed_slice())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reply_is_not_sent_again_and_counts_toward_fall() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let port = origin.port();
    let kinds: [(&str, Script, &str); 3] = [
        (
            "cut off",
            Script::ReplyAndClose(b"HTTP/1.1 200 Conn"),
            "the parent closed the connection after 17 bytes of its reply head",
        ),
        (
            "too large",
            Script::Reply(huge_head()),
            "reply head from parent too large",
        ),
        (
            "not HTTP",
            Script::Reply(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"),
            "malformed reply from parent",
        ),
    ];
    for (i, (kind, script, words)) in kinds.into_iter().enumerate() {
        let bad = FakeParent::start(script).await;
        let name: &'static str = ["broken-0", "broken-1", "broken-2"][i];
        let proxy = Proxy::start(Lab {
            parents: vec![(name, bad.address()), ("broken-b", squid.addr())],
            ..Lab::on(dns_server(RECORDS).await, port)
        })
        .await;
        let target = format!("{kind}.example.test:{port}")
            .replace(' ', "-")
            .to_lowercase();
        let r = curl(&proxy, &format!("http://{target}/"), true).await;
        assert_eq!(r.connect, 502, "{kind}: {r:?}");
        let rec = last(&proxy, 1, "CONNECT").await;
        assert_eq!(rec["reason"], "parent_failed", "{kind}: {rec}");
        assert_eq!(rec["parent"], name);
        assert_eq!(
            rec["error"],
            format!("{name} failed: {words} (to CONNECT {target}); it was not sent again")
        );
        assert!(bad.saw(&format!("CONNECT {target}")), "{kind}");
        // fall = 1: a parent that breaks its replies is marked down.
        assert!(!is_up(&proxy, name).await, "{kind}");
        proxy.stop().await;
        assert!(
            !squid.access_log().contains(&target),
            "{kind}: seccloud-b got a replayed CONNECT: {}",
            squid.access_log()
        );
    }
    // A well-formed answer no proxy gives to a CONNECT: the parent failed, but it is alive
    // and answering, so it is not counted against it.
    let odd = FakeParent::start(Script::Reply(b"HTTP/1.1 301 Moved Permanently\r\n\r\n")).await;
    let proxy = Proxy::start(Lab {
        parents: vec![("broken-3", odd.address()), ("broken-b", squid.addr())],
        ..Lab::on(dns_server(RECORDS).await, port)
    })
    .await;
    let r = curl(&proxy, &format!("http://moved.example.test:{port}/"), true).await;
    assert_eq!(r.connect, 502, "{r:?}");
    let rec = last(&proxy, 1, "CONNECT").await;
    assert_eq!(rec["reason"], "parent_failed", "{rec}");
    assert_eq!(
        rec["error"],
        format!("broken-3 failed: it answered 301 Moved Permanently to CONNECT moved.example.test:{port}, which is no proxy's answer")
    );
    assert!(is_up(&proxy, "broken-3").await);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_health_check_marks_down_a_parent_that_accepts_but_never_answers() {
    let origin = Origin::start().await;
    let silent = FakeParent::start(Script::Silent).await;
    let squid = Squid::start(SQUID_HOSTS);
    let port = origin.port();
    let upstream = format!(
        "health_check = \"connect\"\nhealth_target = \"upstream.test:{port}\"\n\
         health_interval = \"200ms\"\nhealth_timeout = \"1s\"\nfall = 2\nrise = 1\n"
    );
    let proxy = Proxy::start(Lab {
        parents: vec![("hc-silent", silent.address()), ("hc-squid", squid.addr())],
        upstream: &upstream,
        ..Lab::on(dns_server(RECORDS).await, port)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while is_up(&proxy, "hc-silent").await {
        assert!(Instant::now() < deadline, "hc-silent was not marked down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Marked down by its checks, not by anyone's request; the other parent passes them.
    assert!(silent.saw(&format!("CONNECT upstream.test:{port}")));
    // Squid passes its checks (rise = 1: one that passed after a slow start brings it up).
    while !is_up(&proxy, "hc-squid").await {
        assert!(
            Instant::now() < deadline,
            "hc-squid does not pass its checks"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(squid.logged(&format!("CONNECT upstream.test:{port}")));
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--noproxy", "*", "--max-time", "10"])
        .arg(format!("http://{}/", proxy.admin.unwrap()))
        .output()
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    let row = &page[page.find("data-parent=\"hc-silent\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("by its health checks"), "{row}");
    assert!(
        row.contains(&format!(
            "it did not answer CONNECT upstream.test:{port} within 1 s"
        )),
        "{row}"
    );
    let r = curl(&proxy, &format!("http://upstream.test:{port}/"), true).await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
    assert_eq!(proxy.records(1).await[0]["parent"], "hc-squid");
    proxy.stop().await;
}
