//! Tenant restrictions end to end on loopback: the proxy mints leaves from a test CA, curl
//! and a rustls client trust that CA, a fake sign-in server with its own certificate
//! records the headers it receives; Squid is the security cloud for the upstream route.

mod support;

use std::path::Path;

use support::signin::{curl_run, rustls_get, SignIn};
use support::{dns_server, Lab, Proxy, Squid};

const TENANTS: &str = "city.example.jp,11111111-1111-1111-1111-111111111111";
const CONTEXT: &str = "22222222-2222-2222-2222-222222222222";
const V2: &str = "33333333-3333-3333-3333-333333333333:44444444-4444-4444-4444-444444444444";

/// Every name the tests use, each served by the fake sign-in server on 127.0.0.1.
const NAMES: &[&str] = &[
    "login.microsoftonline.com",
    "login.microsoft.com",
    "login.windows.net",
    "login.live.com",
    "device.login.microsoftonline.com",
    "enterpriseregistration.windows.net",
    "outlook.office365.com",
];

const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The proxy's interception CA, as `lbo-proxy ca init` makes it.
fn proxy_ca(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    lbo_proxy::intercept::ca::init(&cert, &key, "Test interception CA").unwrap();
    (cert.display().to_string(), key.display().to_string())
}

/// The `[tenant_restrictions]` table for segment `lab`, trusting `upstream_ca` for the
/// sign-in server, with the policy lines given.
fn table(ca: &(String, String), upstream_ca: &Path, policy: &str) -> String {
    format!(
        "[tenant_restrictions]\nca_cert = \"{}\"\nca_key = \"{}\"\nupstream_ca_file = \"{}\"\n\
         [[tenant_restrictions.policy]]\nname = \"city\"\nsegments = [\"lab\"]\n{policy}\n",
        ca.0,
        ca.1,
        upstream_ca.display()
    )
}

fn v1_policy() -> String {
    format!(
        "tenants = [\"city.example.jp\", \"11111111-1111-1111-1111-111111111111\"]\n\
         context = \"{CONTEXT}\"\nrestrict_msa = true"
    )
}

async fn dns() -> std::net::SocketAddr {
    let records: Vec<(&str, &str)> = NAMES.iter().map(|n| (*n, "127.0.0.1")).collect();
    dns_server(&records).await
}

/// curl through `proxy` with one HTTP-version flag, trusting `ca`: its exit code and the
/// HTTP version it spoke to the proxy's interception.
async fn fetch_version(proxy: &Proxy, ca: &str, flag: &str, target: &str) -> (Option<i32>, String) {
    let r = curl_run(
        proxy,
        &[flag, "--cacert", ca, "-w", "\n%{http_version}", target],
    )
    .await;
    let version = r.stdout.rsplit('\n').next().unwrap_or("").to_string();
    (r.code, version)
}

/// A proxy whose segment breaks every test name out directly.
async fn direct_proxy(signin: &SignIn, extra: &str) -> Proxy {
    Proxy::start(Lab {
        direct_domains: NAMES,
        extra,
        ..Lab::on(dns().await, signin.port())
    })
    .await
}

fn url(host: &str, signin: &SignIn, path: &str) -> String {
    format!("https://{host}:{}{path}", signin.port())
}

fn record_for<'a>(recs: &'a [serde_json::Value], host: &str) -> &'a serde_json::Value {
    recs.iter()
        .rev()
        .find(|r| {
            r["target"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("{host}:")))
        })
        .unwrap_or_else(|| panic!("no record for {host}: {recs:?}"))
}

#[tokio::test]
async fn v1_headers_and_restrict_msa_arrive_on_the_direct_route() {
    let dir = tempfile::tempdir().unwrap();
    let signin = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    let proxy = direct_proxy(&signin, &table(&ca, &signin.ca_pem, &v1_policy())).await;
    for host in [
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
    ] {
        let r = curl_run(
            &proxy,
            &["--cacert", &ca.0, &url(host, &signin, "/common/oauth2")],
        )
        .await;
        assert_eq!(r.code, Some(0), "{host}: {r:?}");
        assert_eq!(r.stdout, "signed in\n");
    }
    let r = curl_run(
        &proxy,
        &["--cacert", &ca.0, &url("login.live.com", &signin, "/")],
    )
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");

    let seen = signin.requests();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for s in &seen[..3] {
        assert_eq!(s.all("restrict-access-to-tenants"), [TENANTS], "{s:?}");
        assert_eq!(s.all("restrict-access-context"), [CONTEXT], "{s:?}");
        assert!(s.all("sec-restrict-tenant-access-policy").is_empty());
        assert_eq!(s.path, "/common/oauth2");
    }
    assert_eq!(
        seen[3].all("sec-restrict-tenant-access-policy"),
        ["restrict-msa"]
    );
    assert!(seen[3].all("restrict-access-to-tenants").is_empty());

    let recs = proxy.records(4).await;
    let rec = record_for(&recs, "login.microsoftonline.com");
    assert_eq!(rec["route"], "direct", "{rec}");
    assert_eq!(rec["reason"], "finished", "{rec}");
    assert_eq!(rec["tenant_restrictions"]["policy"], "city");
    assert_eq!(rec["tenant_restrictions"]["outcome"], "applied");
    assert_eq!(rec["tenant_restrictions"]["reason"], "headers_added");
    assert_eq!(rec["tenant_restrictions"]["requests"], 1);
    assert!(rec["bytes_up"].as_u64().unwrap() > 0, "{rec}");
    assert!(rec["bytes_down"].as_u64().unwrap() > 0, "{rec}");

    let metrics = metrics_text(&proxy).await;
    assert!(
        metrics.contains(
            "lbo_tenant_restrictions_total{outcome=\"applied\",reason=\"headers_added\"}"
        ),
        "{metrics}"
    );
    proxy.stop().await;
}

/// The admin endpoint's `/metrics`, fetched with curl (no proxy).
async fn metrics_text(proxy: &Proxy) -> String {
    let admin = proxy.admin.unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("http://{admin}/metrics")])
        .output()
        .await
        .expect("curl is not installed: run scripts/test");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn v2_header_arrives_through_the_security_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let signin = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    let squid = Squid::start(&[("login.microsoftonline.com", "127.0.0.1")]);
    let extra = table(&ca, &signin.ca_pem, &format!("v2_policy = \"{V2}\""));
    let proxy = Proxy::start(Lab {
        parents: vec![("seccloud", squid.addr())],
        extra: &extra,
        ..Lab::on(dns().await, signin.port())
    })
    .await;
    let r = curl_run(
        &proxy,
        &[
            "--cacert",
            &ca.0,
            &url("login.microsoftonline.com", &signin, "/"),
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let seen = signin.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].all("sec-restrict-tenant-access-policy"), [V2]);
    assert!(seen[0].all("restrict-access-to-tenants").is_empty());
    let recs = proxy.records(1).await;
    let rec = record_for(&recs, "login.microsoftonline.com");
    assert_eq!(rec["route"], "upstream", "{rec}");
    assert_eq!(rec["parent"], "seccloud", "{rec}");
    assert_eq!(rec["tenant_restrictions"]["outcome"], "applied", "{rec}");
    assert!(
        squid.logged("login.microsoftonline.com"),
        "{}",
        squid.access_log()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn client_sent_copies_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let signin = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    let policy = format!("{}\nv2_policy = \"{V2}\"", v1_policy());
    let proxy = direct_proxy(&signin, &table(&ca, &signin.ca_pem, &policy)).await;
    let r = curl_run(
        &proxy,
        &[
            "--cacert",
            &ca.0,
            "-H",
            "Restrict-Access-To-Tenants: evil.example",
            "-H",
            "Restrict-Access-Context: 99999999-9999-9999-9999-999999999999",
            "-H",
            "sec-Restrict-Tenant-Access-Policy: restrict-nothing",
            &url("login.microsoftonline.com", &signin, "/"),
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let seen = signin.requests();
    assert_eq!(seen[0].all("restrict-access-to-tenants"), [TENANTS]);
    assert_eq!(seen[0].all("restrict-access-context"), [CONTEXT]);
    assert_eq!(seen[0].all("sec-restrict-tenant-access-policy"), [V2]);
    let recs = proxy.records(1).await;
    let rec = record_for(&recs, "login.microsoftonline.com");
    assert_eq!(
        rec["tenant_restrictions"]["reason"], "headers_replaced",
        "{rec}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn http2_and_http1_towards_the_client_and_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let h2_server = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    let proxy = direct_proxy(&h2_server, &table(&ca, &h2_server.ca_pem, &v1_policy())).await;
    let target = url("login.microsoftonline.com", &h2_server, "/h2");
    let r = fetch_version(&proxy, &ca.0, "--http2", &target).await;
    assert_eq!((r.0, r.1.as_str()), (Some(0), "2"), "{r:?}");
    let r = fetch_version(&proxy, &ca.0, "--http1.1", &target).await;
    assert_eq!((r.0, r.1.as_str()), (Some(0), "1.1"), "{r:?}");
    let seen = h2_server.requests();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.version, http::Version::HTTP_2);
        assert_eq!(
            s.authority,
            format!("login.microsoftonline.com:{}", h2_server.port())
        );
        assert_eq!(s.all("restrict-access-context"), [CONTEXT]);
    }
    proxy.stop().await;

    // A sign-in server that speaks HTTP/1.1 only, to an HTTP/2 client.
    let h1_server = SignIn::start(dir.path(), NAMES, &[b"http/1.1"]).await;
    let proxy = direct_proxy(&h1_server, &table(&ca, &h1_server.ca_pem, &v1_policy())).await;
    let target = url("login.microsoftonline.com", &h1_server, "/h1");
    let r = fetch_version(&proxy, &ca.0, "--http2", &target).await;
    assert_eq!((r.0, r.1.as_str()), (Some(0), "2"), "{r:?}");
    let seen = h1_server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, http::Version::HTTP_11);
    assert_eq!(
        seen[0].authority,
        format!("login.microsoftonline.com:{}", h1_server.port())
    );
    assert_eq!(seen[0].all("restrict-access-to-tenants"), [TENANTS]);
    proxy.stop().await;
}

/// Hosts outside the list, and the device hosts always, get the client's own ClientHello
/// (its private ALPN reaches the server) and the server's own certificate (the client
/// trusts only the server's CA).
#[tokio::test]
async fn unlisted_and_device_hosts_are_blind_tunnels() {
    let dir = tempfile::tempdir().unwrap();
    let signin = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    // The device hosts named in `hosts` are refused by `check`; here only the defaults.
    let proxy = direct_proxy(&signin, &table(&ca, &signin.ca_pem, &v1_policy())).await;
    let hosts = [
        "outlook.office365.com",
        "device.login.microsoftonline.com",
        "enterpriseregistration.windows.net",
    ];
    for host in hosts {
        let authority = format!("{host}:{}", signin.port());
        let alpn: &[&[u8]] = &[b"x-lbo-own-hello", b"http/1.1"];
        let got = rustls_get(&proxy, &authority, host, &signin.ca_pem, alpn).await;
        assert!(
            got.as_ref().is_ok_and(|r| r.contains("signed in")),
            "{host}: {got:?}"
        );
    }
    let hellos = signin.hellos();
    assert_eq!(hellos.len(), 3, "{hellos:?}");
    for (hello, host) in hellos.iter().zip(hosts) {
        assert_eq!(hello.sni.as_deref(), Some(host));
        assert_eq!(hello.alpn, ["x-lbo-own-hello", "http/1.1"], "{host}");
    }
    for s in signin.requests() {
        assert!(s.all("restrict-access-to-tenants").is_empty(), "{s:?}");
    }
    let recs = proxy.records(3).await;
    for host in hosts {
        let rec = record_for(&recs, host);
        assert!(rec["tenant_restrictions"].is_null(), "{rec}");
        assert_eq!(rec["reason"], "finished", "{rec}");
    }
    proxy.stop().await;
}

/// A PC without the CA refuses the minted certificate: the sign-in fails, nothing reaches
/// the server, and the refusal is logged and counted.
#[tokio::test]
async fn a_client_refusing_the_certificate_is_denied_not_tunnelled() {
    let dir = tempfile::tempdir().unwrap();
    let signin = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    let proxy = direct_proxy(&signin, &table(&ca, &signin.ca_pem, &v1_policy())).await;
    let server_ca = signin.ca_pem.display().to_string();
    let r = curl_run(
        &proxy,
        &[
            "--cacert",
            &server_ca,
            &url("login.microsoftonline.com", &signin, "/"),
        ],
    )
    .await;
    // 60: the peer's certificate cannot be verified with the known CA certificates.
    assert_eq!(r.code, Some(60), "{r:?}");
    assert!(signin.hellos().is_empty(), "the server saw a ClientHello");
    assert!(signin.requests().is_empty());
    let recs = proxy.records(1).await;
    let rec = record_for(&recs, "login.microsoftonline.com");
    assert_eq!(rec["reason"], "intercept_refused", "{rec}");
    assert_eq!(rec["blame"], "client", "{rec}");
    assert_eq!(rec["tenant_restrictions"]["outcome"], "refused", "{rec}");
    assert_eq!(
        rec["tenant_restrictions"]["reason"], "client_rejected_certificate",
        "{rec}"
    );
    let metrics = metrics_text(&proxy).await;
    assert!(
        metrics.contains("lbo_tenant_restrictions_total{outcome=\"refused\",reason=\"client_rejected_certificate\"}"),
        "{metrics}"
    );
    proxy.stop().await;
}

/// A sign-in server whose certificate the appliance does not trust is never reached with
/// the client's request: the client gets a 502 page, the failure is logged.
#[tokio::test]
async fn an_untrusted_sign_in_server_is_denied_not_tunnelled() {
    let dir = tempfile::tempdir().unwrap();
    let signin = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    // The proxy trusts only its own CA for the sign-in server: verification fails.
    let proxy = direct_proxy(&signin, &table(&ca, Path::new(&ca.0), &v1_policy())).await;
    let r = curl_run(
        &proxy,
        &[
            "--cacert",
            &ca.0,
            "-w",
            "\n%{http_code}",
            &url("login.microsoftonline.com", &signin, "/"),
        ],
    )
    .await;
    assert!(r.stdout.ends_with("\n502"), "{r:?}");
    assert!(r.stdout.contains("Sign-in refused"), "{r:?}");
    assert!(signin.requests().is_empty());
    let recs = proxy.records(1).await;
    let rec = record_for(&recs, "login.microsoftonline.com");
    assert_eq!(rec["reason"], "intercept_failed", "{rec}");
    assert_eq!(rec["tenant_restrictions"]["outcome"], "failed", "{rec}");
    assert_eq!(
        rec["tenant_restrictions"]["reason"], "origin_certificate_invalid",
        "{rec}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn ca_init_warns_and_route_shows_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_lbo-proxy");
    let out = std::process::Command::new(bin)
        .current_dir(dir.path())
        .args(["ca", "init", "--name", "City lab CA"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("WARNING") && warning.contains("ca.key"),
        "{warning}"
    );
    let again = std::process::Command::new(bin)
        .current_dir(dir.path())
        .args(["ca", "init"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "ca init overwrote an existing CA");

    let config = format!(
        "[proxy]\nlisten = [\"127.0.0.1:0\"]\n\
         [[segment]]\nname = \"staff\"\nnetworks = [\"10.1.0.0/16\"]\nprofile = \"case1\"\n\
         [[segment]]\nname = \"guests\"\nnetworks = [\"10.2.0.0/16\"]\nprofile = \"case1\"\n\
         [tenant_restrictions]\nca_cert = \"ca.pem\"\nca_key = \"ca.key\"\nupstream_ca_file = \"ca.pem\"\n\
         [[tenant_restrictions.policy]]\nname = \"city\"\nsegments = [\"staff\"]\n{}\n",
        v1_policy()
    );
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let route = |client: &str| {
        let out = std::process::Command::new(bin)
            .current_dir(dir.path())
            .args([
                "route",
                "-c",
                "c.toml",
                "--client",
                client,
                "login.microsoftonline.com",
                "device.login.microsoftonline.com",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let staff = route("10.1.0.5");
    assert_eq!(
        staff[0]["tenant_restrictions"]["policy"], "city",
        "{staff:?}"
    );
    assert_eq!(
        staff[0]["tenant_restrictions"]["headers"]["restrict-access-to-tenants"],
        TENANTS
    );
    assert_eq!(
        staff[0]["tenant_restrictions"]["headers"]["restrict-access-context"],
        CONTEXT
    );
    assert!(staff[1]["tenant_restrictions"].is_null(), "{staff:?}");
    let guests = route("10.2.0.5");
    assert!(guests[0]["tenant_restrictions"].is_null(), "{guests:?}");

    let audit = std::process::Command::new(bin)
        .current_dir(dir.path())
        .args(["audit", "-c", "c.toml", "--format", "md"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&audit.stdout);
    let row = |segment: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("| `{segment}`")))
            .unwrap_or_else(|| panic!("no row for {segment}: {report}"))
            .to_string()
    };
    let staff = row("staff");
    assert!(
        staff.contains(&format!("`city: restrict-access-to-tenants: {TENANTS} (login.microsoftonline.com, login.microsoft.com, login.windows.net); restrict-access-context: {CONTEXT}")),
        "{staff}"
    );
    assert!(
        staff.contains("sec-restrict-tenant-access-policy: restrict-msa (login.live.com)"),
        "{staff}"
    );
    assert!(
        row("guests").contains("off (sign-in is a blind tunnel)"),
        "{report}"
    );
}

/// A PC without a proxy setting, redirected to the transparent TLS listener, is
/// intercepted the same way: its ClientHello names the sign-in host.
#[tokio::test]
async fn the_transparent_listener_intercepts_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let signin = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    let extra = format!(
        "[transparent]\ntls_listen = [\"127.0.0.1:0\"]\ntls_port = {}\n{}",
        signin.port(),
        table(&ca, &signin.ca_pem, &v1_policy())
    );
    let proxy = direct_proxy(&signin, &extra).await;
    let listener = proxy.transparent_tls[0];
    let host = "login.microsoftonline.com";
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "15",
            "--noproxy",
            "*",
            "--cacert",
            &ca.0,
        ])
        .arg("--connect-to")
        .arg(format!(
            "{host}:{}:127.0.0.1:{}",
            signin.port(),
            listener.port()
        ))
        .arg(url(host, &signin, "/transparent"))
        .output()
        .await
        .expect("curl is not installed: run scripts/test");
    assert!(out.status.success(), "{out:?}");
    let seen = signin.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].all("restrict-access-to-tenants"), [TENANTS]);
    assert_eq!(seen[0].all("restrict-access-context"), [CONTEXT]);
    let recs = proxy.records(1).await;
    let rec = record_for(&recs, host);
    assert_eq!(rec["listener"], "transparent_tls", "{rec}");
    assert_eq!(rec["tenant_restrictions"]["outcome"], "applied", "{rec}");
    proxy.stop().await;
}

/// Tenant restrictions follow the server name: a CONNECT to an allowlisted sign-in
/// address whose ClientHello names a sign-in host is intercepted for that host, one whose
/// hello names none is refused, and a tunnel to another allowlisted name carrying a
/// sign-in hello is intercepted as the sign-in it is.
#[tokio::test]
async fn sign_ins_are_known_by_their_server_name_whatever_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let signin = SignIn::start(dir.path(), NAMES, H2_AND_H1).await;
    let ca = proxy_ca(dir.path());
    let proxy = direct_proxy(&signin, &table(&ca, &signin.ca_pem, &v1_policy())).await;
    let ip_target = format!("127.0.0.1:{}", signin.port());
    let ca_pem = Path::new(&ca.0);
    let page = rustls_get(
        &proxy,
        &ip_target,
        "login.microsoftonline.com",
        ca_pem,
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    assert!(page.contains("signed in"), "{page}");
    let seen = signin.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].all("restrict-access-to-tenants"),
        [TENANTS],
        "{seen:?}"
    );
    let recs = proxy.records(1).await;
    let rec = recs.last().unwrap();
    assert_eq!(rec["target"], ip_target);
    assert_eq!(rec["route"], "direct");
    assert_eq!(rec["tenant_restrictions"]["outcome"], "applied", "{rec}");

    // No server name to a sign-in network: refused, never tunnelled without the headers.
    let refused = rustls_get(&proxy, &ip_target, "127.0.0.1", ca_pem, &[b"http/1.1"]).await;
    assert!(refused.is_err(), "{refused:?}");
    let recs = proxy.records(2).await;
    let rec = recs.last().unwrap();
    assert_eq!(rec["reason"], "intercept_refused", "{rec}");
    assert_eq!(
        rec["tenant_restrictions"]["reason"], "no_server_name",
        "{rec}"
    );
    assert_eq!(
        signin.requests().len(),
        1,
        "nothing reached the sign-in server"
    );

    // A sign-in hello inside a tunnel to another allowlisted name: intercepted for the
    // sign-in host it names.
    let other = format!("outlook.office365.com:{}", signin.port());
    let page = rustls_get(&proxy, &other, "login.live.com", ca_pem, &[b"http/1.1"])
        .await
        .unwrap();
    assert!(page.contains("signed in"), "{page}");
    let seen = signin.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[1].all("sec-restrict-tenant-access-policy"),
        ["restrict-msa"]
    );
    // A tunnel to a sign-in host whose hello names another host cannot be intercepted.
    let login = format!("login.microsoftonline.com:{}", signin.port());
    let fronted = rustls_get(
        &proxy,
        &login,
        "outlook.office365.com",
        ca_pem,
        &[b"http/1.1"],
    )
    .await;
    assert!(fronted.is_err(), "{fronted:?}");
    let recs = proxy.records(4).await;
    assert_eq!(
        recs.last().unwrap()["reason"],
        "intercept_refused",
        "{recs:#?}"
    );
    proxy.stop().await;
}
