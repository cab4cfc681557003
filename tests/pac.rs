//! The PAC the appliance serves, evaluated by a real PAC engine (Debian's pacparser), must
//! agree with `policy::decide` on every destination: what the appliance breaks out or
//! denies goes to the appliance, everything else to the security cloud.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use lbo_proxy::admin::pac;
use lbo_proxy::policy::decide::decide_for_profile;
use lbo_proxy::policy::{Route, Target};

const APPLIANCE: &str = "PROXY lbo1.example.lg.jp:3128; PROXY lbo2.example.lg.jp:3128";
const SECCLOUD: &str = "PROXY proxy1.seccloud.example.lg.jp:8080";

fn config() -> lbo_proxy::Config {
    let text = r#"
[proxy]
listen = ["127.0.0.1:3128"]
[pac]
mode = "split"
proxies = ["lbo1.example.lg.jp:3128", "lbo2.example.lg.jp:3128"]
security_cloud = ["proxy1.seccloud.example.lg.jp:8080"]
internal = ["*.lg.jp", "10.0.0.0/8", "172.16.0.0/12"]
[[profile]]
name = "case2-no-storage"
direct = ["m365-auth", "m365-license", "av-update", "pki", "teams", "exchange"]
deny = ["storage"]
[[segment]]
name = "s1"
networks = ["10.1.0.0/16"]
profile = "case1"
[[segment]]
name = "s2"
networks = ["10.2.0.0/16"]
profile = "case2"
[[segment]]
name = "s3"
networks = ["10.3.0.0/16"]
profile = "case3"
[[segment]]
name = "s4"
networks = ["10.4.0.0/16"]
profile = "case2-no-storage"
"#;
    lbo_proxy::config::load_str(std::path::Path::new("pac-test.toml"), text, None).unwrap()
}

/// Names and literals around every pattern and network of every category, plus noise.
fn probes(config: &lbo_proxy::Config) -> Vec<String> {
    let mut hosts = Vec::new();
    for cat in config.policy.categories() {
        for rule in &cat.rules {
            for d in &rule.domains {
                let p = d.as_str();
                let base = p.trim_start_matches("*.");
                let concrete = base.replace("*-", "tenant-").replace('*', "tenant");
                hosts.extend([
                    concrete.clone(),
                    format!("a.{concrete}"),
                    format!("a.b.{concrete}"),
                    format!("{concrete}.evil.test"),
                    format!("x{concrete}"),
                    concrete.to_uppercase(),
                    format!("{concrete}."),
                    base.replace("*.", "a.b."),
                ]);
            }
            for n in &rule.networks {
                if let ipnet::IpNet::V4(v4) = n.trunc() {
                    let first = u32::from(v4.network());
                    let last = u32::from(v4.broadcast());
                    for ip in [
                        first,
                        last,
                        first.wrapping_sub(1),
                        last.wrapping_add(1),
                        first + (last - first) / 2,
                    ] {
                        hosts.push(std::net::Ipv4Addr::from(ip).to_string());
                    }
                }
            }
        }
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let words = [
        "login",
        "microsoftonline",
        "sharepoint",
        "outlook",
        "office365",
        "teams",
        "lync",
        "evil",
        "com",
        "net",
        "jp",
    ];
    for _ in 0..1500 {
        let mut labels = Vec::new();
        for _ in 0..(2 + x % 3) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            labels.push(words[(x % words.len() as u64) as usize]);
        }
        hosts.push(labels.join("."));
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

fn url(host: &str, port: u16) -> String {
    match port {
        80 => format!("http://{host}/"),
        443 => format!("https://{host}/"),
        p => format!("https://{host}:{p}/"),
    }
}

/// Evaluates `pac` with pacparser for every (url, host).
fn evaluate(pac: &str, queries: &[(String, String)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.pac");
    std::fs::write(&file, pac).unwrap();
    let script = "import sys, pacparser\n\
        pacparser.init()\n\
        pacparser.parse_pac_file(sys.argv[1])\n\
        for line in sys.stdin:\n\
        \x20   url, host = line.rstrip('\\n').split('\\t')\n\
        \x20   print(pacparser.find_proxy(url, host))\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = queries.iter().map(|(u, h)| format!("{u}\t{h}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "pacparser failed (scripts/test installs python3-pacparser): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn split_pac_agrees_with_the_proxy_on_every_probe() {
    let config = config();
    let snap = &config.policy;
    let hosts = probes(&config);
    let mut checked = 0;
    for segment in ["s1", "s2", "s3", "s4"] {
        let seg = snap.segment(segment).unwrap();
        let profile = &snap.profiles()[seg.profile];
        let js = pac::render(snap, &config.pac, Some(profile), Some(segment));
        let mut queries = Vec::new();
        let mut expected = Vec::new();
        for host in &hosts {
            for port in [80u16, 443, 8443] {
                let Ok(target) = Target::parse_authority(&format!("{host}:{port}"), None) else {
                    continue;
                };
                let internal = host
                    .to_lowercase()
                    .trim_end_matches('.')
                    .ends_with(".lg.jp")
                    || host.starts_with("10.")
                    || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| {
                        ip.octets()[0] == 172 && (16..32).contains(&ip.octets()[1])
                    });
                let d = decide_for_profile(snap, &profile.name, &target).unwrap();
                let want = if internal {
                    "DIRECT"
                } else if matches!(d.route, Route::Direct | Route::Deny) {
                    APPLIANCE
                } else {
                    SECCLOUD
                };
                queries.push((url(host, port), host.clone()));
                expected.push((host.clone(), port, want, d));
            }
        }
        let got = evaluate(&js, &queries);
        assert_eq!(got.len(), expected.len());
        let mut direct = 0;
        for ((host, port, want, d), got) in expected.iter().zip(&got) {
            assert_eq!(got, want, "{segment}: {host}:{port} (proxy decides {d:?})");
            direct += usize::from(*want == APPLIANCE);
        }
        assert!(
            direct > 50,
            "{segment}: too few probes go direct to prove anything"
        );
        checked += got.len();
    }
    eprintln!("PAC agreement: {checked} answers checked against decide(), 0 disagreements");
    assert!(checked > 10_000, "only {checked} probes");
}

#[test]
fn mode_all_sends_everything_but_internal_to_the_appliance() {
    let mut config = config();
    config.pac.mode = pac::PacMode::All;
    let snap = &config.policy;
    let js = pac::render(snap, &config.pac, Some(&snap.profiles()[0]), Some("s1"));
    let got = evaluate(
        &js,
        &[
            ("https://evil.test/".into(), "evil.test".into()),
            (
                "https://login.microsoftonline.com/".into(),
                "login.microsoftonline.com".into(),
            ),
            ("http://www.city.lg.jp/".into(), "www.city.lg.jp".into()),
            ("http://intranet/".into(), "intranet".into()),
            ("http://10.9.9.9/".into(), "10.9.9.9".into()),
        ],
    );
    assert_eq!(got, [APPLIANCE, APPLIANCE, "DIRECT", "DIRECT", "DIRECT"]);
    assert!(
        !js.contains("dnsResolve(") && !js.contains("isResolvable(") && !js.contains("isInNet(")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pac_is_served_by_admin_and_proxy_listeners() {
    let origin = support::Origin::start().await;
    let proxy = support::Proxy::start(support::Lab {
        extra: "[pac]\nmode = \"split\"\nproxies = [\"lbo.example.lg.jp:3128\"]\n\
                security_cloud = [\"seccloud.example.lg.jp:8080\"]\n",
        ..support::Lab::on(support::dns_server(&[]).await, origin.port())
    })
    .await;
    for url in [
        format!("http://{}/proxy.pac", proxy.admin.unwrap()),
        format!("http://{}/wpad.dat", proxy.admin.unwrap()),
        format!("http://{}/proxy.pac", proxy.addr),
        format!("http://{}/proxy.pac?segment=lab", proxy.addr),
    ] {
        let out = tokio::process::Command::new("curl")
            .args(["-s", "-D", "-", &url])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 200"), "{url}: {text}");
        assert!(
            text.to_lowercase()
                .contains("content-type: application/x-ns-proxy-autoconfig"),
            "{url}"
        );
        assert!(
            text.contains("for segment lab, profile lab"),
            "{url}: {text}"
        );
        assert!(text.contains("\"PROXY lbo.example.lg.jp:3128\""), "{url}");
        assert!(text.contains("\"*.direct.test\""), "{url}");
    }
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/proxy.pac?segment=nope", proxy.admin.unwrap()),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    proxy.stop().await;
}
