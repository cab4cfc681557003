//! One round trip sooner: standby connections to a real Squid parent (behind a front that
//! counts connections) are used, replaced, recycled, kept across a reload that leaves the
//! parent alone and dropped by one that changes it; TLS sessions to a parent are resumed,
//! across reloads too, and with `tls_early_data` the `CONNECT` goes in the first flight.

mod support;

use support::parent::{FakeParent, Script};
use support::readback::{last, metric, metric_reaches, reload_with, standby_ready};
use support::zero_rtt::ZeroRttFront;
use support::{curl, dns_server, Lab, Origin, Proxy, Squid};

const RECORDS: &[(&str, &str)] = &[("direct.test", "127.0.0.1")];
const SQUID_HOSTS: &[(&str, &str)] = &[("upstream.test", "127.0.0.1")];

fn parent(name: &str, address: &str, more: &str) -> String {
    format!("[[upstream.parent]]\nname = \"{name}\"\naddress = \"{address}\"\n{more}")
}

async fn tunnel(proxy: &Proxy, origin: &Origin, path: &str) {
    let r = curl(
        proxy,
        &format!("http://upstream.test:{}/{path}", origin.port()),
        true,
    )
    .await;
    assert_eq!((r.connect, r.status), (200, 200), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_connections_are_used_replaced_kept_and_dropped_on_reload() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let front = FakeParent::start(Script::Relay(squid.addr().parse().unwrap())).await;
    let other = FakeParent::start(Script::Relay(squid.addr().parse().unwrap())).await;
    let name = "standby-a";
    let extra = parent(name, &front.address(), "standby = 2\n");
    let proxy = Proxy::start(Lab {
        extra: &extra,
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    // Two ready, and the start-up health check's own connection come and gone.
    standby_ready(&proxy, name, 2).await;
    metric_reaches(&proxy, "lbo_parent_checks_total", &[("parent", name)], 1.0).await;
    front.until("two open", |f| f.open() == 2).await;
    let before = front.accepted();

    // A tunnel takes one; a replacement is opened in the background.
    tunnel(&proxy, &origin, "one").await;
    let used = [("parent", name), ("event", "used")];
    assert_eq!(metric(&proxy, "lbo_parent_standby_total", &used).await, 1.0);
    standby_ready(&proxy, name, 2).await;
    assert_eq!(
        front.accepted(),
        before + 1,
        "the tunnel opened its own connection"
    );
    assert_eq!(last(&proxy, 1, "CONNECT").await["parent"], name);

    // A reload that leaves the parent as it was keeps them: no connection is opened but
    // the new configuration's first health check and the next replacement.
    let checks = [("parent", name)];
    let checked = metric(&proxy, "lbo_parent_checks_total", &checks).await;
    reload_with(&proxy, |t| t.replace("drain = \"1s\"", "drain = \"2s\"")).await;
    metric_reaches(&proxy, "lbo_parent_checks_total", &checks, checked + 1.0).await;
    assert_eq!(
        front.accepted(),
        before + 2,
        "the reload replaced the standby connections"
    );
    tunnel(&proxy, &origin, "two").await;
    standby_ready(&proxy, name, 2).await;
    assert_eq!(front.accepted(), before + 3);
    assert_eq!(metric(&proxy, "lbo_parent_standby_total", &used).await, 2.0);

    // A reload that changes the parent's address drops them all; the new address gets
    // its own, and tunnels use those.
    let moved = front.address();
    reload_with(&proxy, |t| t.replace(&moved, &other.address())).await;
    front
        .until("the old standby connections closed", |f| f.open() == 0)
        .await;
    let dropped = [("parent", name), ("event", "dropped")];
    assert!(metric(&proxy, "lbo_parent_standby_total", &dropped).await >= 2.0);
    standby_ready(&proxy, name, 2).await;
    metric_reaches(&proxy, "lbo_parent_checks_total", &checks, checked + 2.0).await;
    let accepted = other.accepted();
    let old = front.accepted();
    tunnel(&proxy, &origin, "three").await;
    assert_eq!(
        front.accepted(),
        old,
        "an old connection was used after the reload"
    );
    standby_ready(&proxy, name, 2).await;
    assert_eq!(other.accepted(), accepted + 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_connections_are_recycled_before_the_parent_idles_them_out() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_HOSTS);
    let front = FakeParent::start(Script::Relay(squid.addr().parse().unwrap())).await;
    let name = "standby-recycled";
    let extra = parent(
        name,
        &front.address(),
        "standby = 2\nstandby_max_idle = \"300ms\"\n",
    );
    let proxy = Proxy::start(Lab {
        extra: &extra,
        ..Lab::on(dns_server(RECORDS).await, origin.port())
    })
    .await;
    let recycled = [("parent", name), ("event", "recycled")];
    metric_reaches(&proxy, "lbo_parent_standby_total", &recycled, 4.0).await;
    // Replaced, not just closed: two are ready again and the old ones are gone.
    standby_ready(&proxy, name, 2).await;
    front
        .until("replacements opened", |f| f.accepted() >= 6)
        .await;
    front
        .until("at most the two ready (and a check) open", |f| {
            f.open() <= 3
        })
        .await;
    tunnel(&proxy, &origin, "after").await;
    proxy.stop().await;
}

/// A lab whose one parent is Squid behind a TLS front that resumes sessions (and, with
/// `early`, takes early data), trusted through its CA; `tls_early_data` as `early`.
struct TlsLab {
    name: &'static str,
    origin: Origin,
    squid: Squid,
    front: ZeroRttFront,
    proxy: Proxy,
    _certs: tempfile::TempDir,
}

impl TlsLab {
    async fn start(name: &'static str, early: bool) -> TlsLab {
        let origin = Origin::start().await;
        let squid = Squid::start(SQUID_HOSTS);
        let certs = tempfile::tempdir().unwrap();
        let backend = squid.addr().parse().unwrap();
        let front = ZeroRttFront::start("seccloud.test", backend, certs.path(), early).await;
        let tls = format!(
            "tls = true\ntls_server_name = \"seccloud.test\"\ntls_ca_file = \"{}\"\n{}",
            front.ca.display(),
            if early { "tls_early_data = true\n" } else { "" }
        );
        let extra = parent(name, &front.addr.to_string(), &tls);
        let proxy = Proxy::start(Lab {
            extra: &extra,
            ..Lab::on(dns_server(RECORDS).await, origin.port())
        })
        .await;
        TlsLab {
            name,
            origin,
            squid,
            front,
            proxy,
            _certs: certs,
        }
    }
}

/// Opens the `n`th tunnel and says whether its parent's TLS session was resumed.
async fn resumed(proxy: &Proxy, origin: &Origin, parent: &str, n: &mut usize) -> bool {
    *n += 1;
    tunnel(proxy, origin, &format!("t{n}")).await;
    let rec = last(proxy, *n, "CONNECT").await;
    assert_eq!(rec["parent"], parent);
    rec["parent_tls_resumed"]
        .as_bool()
        .expect("a TLS parent's record says")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_to_a_parent_are_resumed_across_reloads_that_keep_its_tls() {
    // Every part bound: what a pattern leaves out is dropped (Squid killed) at once.
    let TlsLab {
        name,
        origin,
        squid: _squid,
        front,
        proxy,
        _certs,
    } = TlsLab::start("resumed-a", false).await;
    let mut n = 0;
    assert!(
        !resumed(&proxy, &origin, name, &mut n).await,
        "the first session is new"
    );
    assert!(
        resumed(&proxy, &origin, name, &mut n).await,
        "the second resumes the first"
    );
    // The same TLS settings: the session cache outlives the reload.
    reload_with(&proxy, |t| t.replace("drain = \"1s\"", "drain = \"2s\"")).await;
    assert!(
        resumed(&proxy, &origin, name, &mut n).await,
        "a reload that kept the TLS settings lost the sessions"
    );
    // Other TLS settings: a new client config, sessions start afresh.
    reload_with(&proxy, |t| {
        t.replace("tls = true\n", "tls = true\ntls_early_data = true\n")
    })
    .await;
    assert!(
        !resumed(&proxy, &origin, name, &mut n).await,
        "a session of the old TLS settings was resumed"
    );
    assert!(resumed(&proxy, &origin, name, &mut n).await);
    let resumptions = [("parent", name), ("kind", "resumed")];
    assert!(metric(&proxy, "lbo_parent_tls_handshakes_total", &resumptions).await >= 3.0);
    assert_eq!(front.counts.get().2, 0, "this parent takes no early data");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_early_data_a_resumed_connect_goes_in_the_first_flight() {
    let TlsLab {
        origin,
        squid,
        front,
        proxy,
        _certs,
        ..
    } = TlsLab::start("early-a", true).await;
    tunnel(&proxy, &origin, "first").await;
    tunnel(&proxy, &origin, "second").await;
    let rec = last(&proxy, 2, "CONNECT").await;
    assert_eq!(rec["parent_tls_resumed"], true, "{rec}");
    let (_, resumed, early) = front.counts.get();
    assert!(resumed >= 1, "{:?}", front.counts.get());
    assert!(
        early >= 1,
        "the CONNECT did not come as early data: {:?}",
        front.counts.get()
    );
    assert!(squid.logged(&format!("CONNECT upstream.test:{}", origin.port())));
    // Plain http:// is never sent as early data (it could be replayed).
    let r = curl(
        &proxy,
        &format!("http://upstream.test:{}/p", origin.port()),
        false,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(front.counts.get().2, early);
    proxy.stop().await;
}
