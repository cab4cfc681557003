//! docs/access-log.md cannot drift from what the appliance writes: its field table lists
//! the record's fields in the order the serializer writes them, and its examples (one
//! per route, one per end reason, and the events) are the writer's own bytes for the
//! records built here. After a deliberate change to the format,
//! `LBO_BLESS=1 cargo test --test access_log_doc` rewrites the examples.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lbo_proxy::access_log::keys::SigningKey;
use lbo_proxy::access_log::line::{self, Kind, PreviousStop, GENESIS};
use lbo_proxy::outcome::{CloseReason, Outcome, TargetSource};
use lbo_proxy::policy::{Reason, Route};

const DOC: &str = "docs/access-log.md";
const BEGIN: &str = "<!-- examples: written by tests/access_log_doc.rs -->";
const END: &str = "<!-- end of examples -->";

/// An Ed25519 key for these examples only (never an appliance's).
const EXAMPLE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIN9KiLF5EshAOYcysezf12Uj3QSx1rbBDdL7mexjDlRF
-----END PRIVATE KEY-----
";

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_435_200_000 + ms)
}

fn name(s: &str) -> Option<Arc<str>> {
    Some(Arc::from(s))
}

/// A CONNECT from a PC of the 本庁 segment, case ②, to a name that is not allowlisted.
fn base() -> Outcome {
    Outcome {
        start: at(0),
        end: at(42),
        listener: "explicit",
        client: "10.20.30.41".parse().unwrap(),
        client_port: 51234,
        segment: name("honcho"),
        profile: name("case2"),
        method: Some("CONNECT".into()),
        target: Some("www.example.com:443".into()),
        target_from: Some(TargetSource::Connect),
        route: Some(Route::Upstream),
        decision: Some(Reason::NotAllowlisted),
        duration_ms: 42.0,
        ..Outcome::default()
    }
}

/// Sent direct to Microsoft 365's sign-in.
fn direct() -> Outcome {
    Outcome {
        target: Some("login.microsoftonline.com:443".into()),
        route: Some(Route::Direct),
        category: name("m365-auth"),
        rule: name("entra-signin"),
        decision: Some(Reason::Allowlisted),
        server: Some("20.190.160.1:443".parse().unwrap()),
        dns_ms: Some(1.204),
        connect_ms: Some(3.871),
        sni: Some("login.microsoftonline.com".into()),
        ..base()
    }
}

fn upstream() -> Outcome {
    Outcome {
        parent: name("seccloud-a"),
        connect_ms: Some(8.513),
        ..base()
    }
}

fn finished(mut o: Outcome, up: u64, down: u64, end: u64) -> Outcome {
    o.status = Some(200);
    o.bytes_up = up;
    o.bytes_down = down;
    o.end = at(end);
    o.duration_ms = end as f64;
    o.reason = CloseReason::Finished;
    o
}

fn failed(mut o: Outcome, reason: CloseReason, status: Option<u16>, error: &str) -> Outcome {
    o.reason = reason;
    o.status = status;
    o.error = (!error.is_empty()).then(|| error.to_string());
    if matches!(o.route, Some(Route::Direct)) && status.is_some_and(|s| s >= 400) {
        o.server = None;
        o.sni = None;
    }
    o
}

/// Before a decision: the request head was not usable.
fn undecided(reason: CloseReason, status: Option<u16>, error: &str) -> Outcome {
    let o = Outcome {
        segment: None,
        profile: None,
        method: None,
        target: None,
        target_from: None,
        route: None,
        decision: None,
        ..base()
    };
    failed(o, reason, status, error)
}

fn denied() -> Outcome {
    Outcome {
        target: Some("files.example-share.com:443".into()),
        route: Some(Route::Deny),
        category: name("file-sharing"),
        rule: name("consumer-storage"),
        decision: Some(Reason::DenyRule),
        status: Some(403),
        reason: CloseReason::Denied,
        ..base()
    }
}

/// One record for `reason`, as the appliance writes it when a request ends that way.
fn by_reason(reason: CloseReason) -> Outcome {
    use CloseReason::*;
    let mut o = match reason {
        Finished => finished(direct(), 5_210, 48_312, 1_850),
        IdleTimeout => failed(finished(direct(), 820, 4_100, 3_600_000), reason, Some(200), ""),
        ClientError => failed(finished(direct(), 300, 900, 2_000), reason, Some(200), "Connection reset by peer (os error 104)"),
        ServerError => failed(finished(direct(), 300, 900, 2_000), reason, Some(200), "Connection reset by peer (os error 104)"),
        Shutdown => failed(finished(upstream(), 1_000, 20_000, 30_000), reason, Some(200), ""),
        Denied => denied(),
        BadRequest => undecided(reason, Some(400), "malformed request head"),
        HeadTimeout => undecided(reason, Some(408), ""),
        HeadTooLarge => undecided(reason, Some(431), "request head larger than 32768 bytes"),
        DnsFailed => failed(Outcome { dns_ms: None, connect_ms: None, ..direct() }, reason, Some(502), "DNS lookup of login.microsoftonline.com failed: no such name (NXDOMAIN)"),
        DnsTimeout => failed(Outcome { dns_ms: None, connect_ms: None, ..direct() }, reason, Some(504), "DNS lookup of login.microsoftonline.com timed out"),
        InternalAddress => failed(Outcome { connect_ms: None, ..direct() }, reason, Some(403), "login.microsoftonline.com resolves only to internal addresses; local breakout refused"),
        ConnectFailed => failed(direct(), reason, Some(502), "connection to 20.190.160.1:443 refused or failed: Connection refused (os error 111)"),
        ConnectTimeout => failed(direct(), reason, Some(504), "connection to login.microsoftonline.com:443 timed out"),
        NoParent => failed(base(), reason, Some(503), "no security cloud (upstream parent) is configured"),
        ParentsDown => failed(base(), reason, Some(502), "every security cloud parent is marked down: seccloud-a by health checks since 2026-11-23T11:58:10.000Z; last error: TCP connect to 192.0.2.10:8080 timed out after 10 s"),
        ParentRefused => failed(upstream(), reason, Some(502), "seccloud-a refused CONNECT www.example.com:443: it answered 407 Proxy Authentication Required (the credentials configured for this parent were not accepted)"),
        ParentFailed => failed(upstream(), reason, Some(502), "seccloud-a failed: the parent closed the connection after 17 bytes of its reply head (to CONNECT www.example.com:443); it was not sent again"),
        Cancelled => failed(direct(), reason, None, ""),
        SniMismatch => failed(Outcome { sni: Some("evil.example.net".into()), sni_mismatch: true, ..direct() }, reason, Some(200), "ClientHello names evil.example.net, which goes upstream (not_allowlisted), on a tunnel to login.microsoftonline.com:443"),
        TooManyHeaders => undecided(reason, Some(431), "request head with more than 100 header fields"),
        ConnectionLimit => undecided(reason, Some(503), ""),
        ClientConnectionLimit => undecided(reason, Some(429), ""),
        TunnelLifetime => failed(finished(direct(), 90_000, 2_400_000, 43_200_000), reason, Some(200), ""),
        AuthRequired => failed(Outcome { route: None, decision: None, ..base() }, reason, Some(407), "no proxy credentials"),
        InterceptRefused => failed(direct(), reason, Some(200), "client TLS: the peer refused the TLS session: it does not trust the CA of our certificate"),
        InterceptFailed => failed(direct(), reason, Some(200), "sign-in server TLS: certificate refused: not issued by a trusted CA"),
        ParentUnreachable => failed(upstream(), reason, Some(502), "no security cloud parent could be reached: seccloud-a: TCP connect to 192.0.2.10:8080 refused; seccloud-b: TLS handshake failed: the parent's certificate is not signed by a trusted CA (tls_ca_file /etc/lbo-proxy/seccloud-ca.pem)"),
        ParentTimeout => failed(upstream(), reason, Some(504), "seccloud-a did not answer CONNECT www.example.com:443 within 60 s"),
        ParentOriginError => failed(upstream(), reason, Some(503), "seccloud-a could not reach the destination of CONNECT www.example.com:443: it answered 503 Service Unavailable"),
        PolicyChanged => failed(finished(direct(), 2_048, 61_440, 95_000), reason, Some(200), "login.microsoftonline.com:443 now goes upstream (not_allowlisted)"),
        AdminRefused => failed(Outcome { listener: "admin", ..undecided(reason, None, "closed at accept: not in admin.allow (nor an endpoint's networks)") }, reason, None, "closed at accept: not in admin.allow (nor an endpoint's networks)"),
    };
    o.blame = o.reason.blame();
    o
}

fn record_line(seq: u64, o: &Outcome) -> String {
    let mut out = Vec::new();
    line::record(&mut out, seq, &GENESIS, o);
    String::from_utf8(out).unwrap()
}

fn block(title: &str, lines: &[String]) -> String {
    let mut s = format!("#### {title}\n\n```json\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str("```\n\n");
    s
}

fn key() -> (SigningKey, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.key");
    std::fs::write(&path, EXAMPLE_KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (SigningKey::load(&path).unwrap(), dir)
}

/// The examples section as the writer would have it.
fn examples() -> String {
    let mut s = String::from("### One per route\n\n");
    type Example = (&'static str, fn() -> Outcome);
    let routes: [Example; 4] = [
        (
            "`direct`: to a Microsoft 365 sign-in host, through the LBO line",
            || finished(direct(), 5_210, 48_312, 1_850),
        ),
        ("`upstream`: to the security cloud", || {
            finished(upstream(), 1_432, 18_733, 960)
        }),
        ("`deny`: refused by a deny rule", denied),
        (
            "no route (`null`): a request refused before any decision",
            || undecided(CloseReason::BadRequest, Some(400), "malformed request head"),
        ),
    ];
    for (i, (title, make)) in routes.iter().enumerate() {
        let mut o = make();
        o.blame = o.reason.blame();
        s.push_str(&block(title, &[record_line(1_000 + i as u64, &o)]));
    }
    s.push_str("### One per end reason\n\n");
    for (i, reason) in CloseReason::ALL.iter().enumerate() {
        let o = by_reason(*reason);
        s.push_str(&block(
            &format!("`{}`", reason.as_str()),
            &[record_line(2_000 + i as u64, &o)],
        ));
    }
    s.push_str("### Events\n\n");
    let (key, _dir) = key();
    let mut out = Vec::new();
    let prev = [0x5a; 32];
    let chain = line::checkpoint(
        &mut out,
        3_000,
        &prev,
        Kind::Start,
        at(0),
        Some(PreviousStop::Clean),
        Some(&key),
    );
    let start = String::from_utf8(std::mem::take(&mut out)).unwrap();
    line::lost(&mut out, 3_001, &chain, 194, (at(61_000), at(75_500)), &[]);
    let lost = String::from_utf8(std::mem::take(&mut out)).unwrap();
    line::checkpoint(
        &mut out,
        3_002,
        &chain,
        Kind::Rotate,
        at(86_400_000),
        None,
        Some(&key),
    );
    let rotate = String::from_utf8(out).unwrap();
    s.push_str(&block(
        "`checkpoint` at start, after an orderly stop (signed)",
        &[start],
    ));
    s.push_str(&block(
        "`records_lost`: 194 records lost, the first at 12:01:01, the last at 12:01:15",
        &[lost],
    ));
    s.push_str(&block(
        "`checkpoint` at rotation (the last line of the old file)",
        &[rotate],
    ));
    s
}

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC)).unwrap()
}

#[test]
fn the_examples_are_what_the_writer_writes() {
    let text = doc();
    let (head, rest) = text.split_once(BEGIN).expect("the examples' begin marker");
    let (old, tail) = rest.split_once(END).expect("the examples' end marker");
    let new = format!("\n\n{}", examples());
    if std::env::var_os("LBO_BLESS").is_some() {
        std::fs::write(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC),
            format!("{head}{BEGIN}{new}{END}{tail}"),
        )
        .unwrap();
        return;
    }
    assert!(
        old == new,
        "{DOC}'s examples differ from what the writer writes now: if the change is meant, \
         run LBO_BLESS=1 cargo test --test access_log_doc"
    );
}

/// The top-level keys of a JSON object, in the order they are written.
fn keys(json: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let (mut depth, mut in_str, mut esc, mut start) = (0, false, false, 0);
    let b = json.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (_, b'\\') => esc = true,
                (_, b'"') => {
                    in_str = false;
                    if depth == 1 && b.get(i + 1) == Some(&b':') {
                        keys.push(json[start + 1..i].to_string());
                    }
                }
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                start = i;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    keys
}

#[test]
fn the_field_table_lists_every_field_in_order() {
    let text = doc();
    let table: Vec<String> = text
        .split_once("## Fields")
        .unwrap()
        .1
        .split_once("\n## ")
        .unwrap()
        .0
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split('`').next().unwrap().to_string())
        .collect();
    let written = keys(&record_line(1, &by_reason(CloseReason::Finished)));
    assert_eq!(
        table, written,
        "the field table of {DOC} and the record's fields"
    );
    // Every reason has its example, and every example is for people (no Rust Debug).
    for reason in CloseReason::ALL {
        let o = by_reason(reason);
        if let Some(e) = &o.error {
            assert!(!lbo_proxy::error_text::looks_like_debug(e), "{e}");
        }
        assert!(
            text.contains(&format!("#### `{}`", reason.as_str())),
            "{reason:?}"
        );
    }
}
