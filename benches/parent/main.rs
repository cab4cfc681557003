//! The security cloud path at WAN latency: time from a client's `CONNECT` to its `200`
//! through an appliance and a Squid parent 10 ms (round trip) away, behind the user-space
//! WAN emulator of `wan.rs`.
//!
//! Rows, all measured in the same run, in rounds that take turns so that whatever else
//! the machine does falls on every row alike:
//!
//! - lbo-proxy → Squid, plain, `standby = 0` and `standby = 8`;
//! - Squid → Squid (`cache_peer … standby=8`, and without standby), plain;
//! - lbo-proxy → Squid's own `https_port` (TLS 1.3, GnuTLS: it offers no resumption),
//!   `standby = 0` and `8`, and Squid → Squid over the same TLS with `standby=8`;
//! - lbo-proxy → a TLS front that resumes sessions and allows 0-RTT (rustls, in front of
//!   Squid's plain port), `standby = 0`, without and with `tls_early_data`.
//!
//! Each sample connects to the appliance, sends the `CONNECT`, waits for the `200` (the
//! time measured), then echoes four bytes through the tunnel and closes. Run
//! `cargo bench --bench parent` for the full run; without `--bench` (as `cargo test
//! --all-targets` runs it) it takes a few samples a row. `LBO_BENCH_RTT_MS` sets the
//! round trip (default 10).

#[path = "../common/child.rs"]
mod child;
#[path = "../common/squid.rs"]
mod squid;
#[path = "../../tests/support/zero_rtt.rs"]
mod zero_rtt;

mod parties;
mod wan;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use parties::{LboParent, Process};
use wan::Wan;

/// One configuration under test.
struct Row {
    id: &'static str,
    what: String,
    proxy: Process,
    wan: Wan,
    /// The row's TLS front, kept alive, and what it counted.
    front: Option<zero_rtt::ZeroRttFront>,
    samples: Vec<Duration>,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rtt = Duration::from_millis(
        std::env::var("LBO_BENCH_RTT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    );
    if !parties::squid_installed() {
        // scripts/test installs Squid; a bench without its parent has nothing to measure.
        panic!("squid is not installed: run scripts/test (apt-get install squid)");
    }
    let (rounds, per_round, warmup) = if full { (6, 50, 5) } else { (1, 5, 2) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let certs = tempfile::tempdir().expect("temp dir");
    let cert = parties::certificate("seccloud.test", certs.path());
    let ca = cert.0.clone();
    let origin = parties::echo_origin();
    let (parent, parent_tls) = parties::squid_parent(&cert);
    let front = |early| {
        runtime.block_on(zero_rtt::ZeroRttFront::start(
            "seccloud.test",
            parent.addr,
            certs.path(),
            early,
        ))
    };
    let mut rows = Vec::new();
    let mut lbo_row =
        |id, what: &str, to: SocketAddr, standby, tls: Option<&std::path::Path>, early, front| {
            let wan = Wan::start(to, rtt);
            let proxy = parties::lbo(&LboParent {
                address: wan.addr,
                standby,
                tls,
                early_data: early,
            });
            rows.push(Row {
                id,
                what: what.to_string(),
                proxy,
                wan,
                front,
                samples: Vec::new(),
            });
        };
    lbo_row(
        "lbo-0",
        "lbo-proxy → Squid, standby = 0",
        parent.addr,
        0,
        None,
        false,
        None,
    );
    lbo_row(
        "lbo-8",
        "lbo-proxy → Squid, standby = 8",
        parent.addr,
        8,
        None,
        false,
        None,
    );
    lbo_row(
        "lbo-tls-0",
        "lbo-proxy → Squid https_port (TLS 1.3, no resumption offered), standby = 0",
        parent_tls,
        0,
        Some(&ca),
        false,
        None,
    );
    lbo_row(
        "lbo-tls-8",
        "lbo-proxy → Squid https_port (TLS 1.3), standby = 8",
        parent_tls,
        8,
        Some(&ca),
        false,
        None,
    );
    let resuming = front(false);
    let resuming_addr = resuming.addr;
    let resuming_ca = resuming.ca.clone();
    lbo_row(
        "lbo-resume",
        "lbo-proxy → TLS front that resumes (TLS 1.3) → Squid, standby = 0",
        resuming_addr,
        0,
        Some(&resuming_ca),
        false,
        Some(resuming),
    );
    let early = front(true);
    let (early_addr, early_ca) = (early.addr, early.ca.clone());
    lbo_row(
        "lbo-0rtt",
        "lbo-proxy → TLS front with 0-RTT → Squid, standby = 0, tls_early_data",
        early_addr,
        0,
        Some(&early_ca),
        true,
        Some(early),
    );
    let mut squid_row = |id, what: &str, to: SocketAddr, standby, tls: Option<&std::path::Path>| {
        let wan = Wan::start(to, rtt);
        let proxy = parties::squid_child(wan.addr, standby, tls);
        rows.push(Row {
            id,
            what: what.to_string(),
            proxy,
            wan,
            front: None,
            samples: Vec::new(),
        });
    };
    squid_row("squid-0", "Squid → Squid, no standby", parent.addr, 0, None);
    squid_row(
        "squid-8",
        "Squid → Squid, cache_peer standby=8",
        parent.addr,
        8,
        None,
    );
    squid_row(
        "squid-tls-8",
        "Squid → Squid https_port (TLS 1.3), standby=8",
        parent_tls,
        8,
        Some(&ca),
    );

    // Standby connections open and TLS sessions cached before the first sample.
    std::thread::sleep(rtt * 30);
    for round in 0..rounds {
        for row in rows.iter_mut() {
            for i in 0..warmup + per_round {
                let took = sample(row.proxy.addr, origin)
                    .unwrap_or_else(|e| panic!("{} round {round}: {e}", row.id));
                if i >= warmup {
                    row.samples.push(took);
                }
                // Time for a standby connection to be replaced, as between two users' clicks.
                std::thread::sleep(rtt * 2);
            }
        }
    }
    report(&rows, rtt, full);
    drop(rows);
    drop(parent);
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// One tunnel: the time from connecting to the appliance to its `200`; then four bytes
/// through the tunnel and back.
fn sample(proxy: SocketAddr, origin: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let mut s = TcpStream::connect(proxy).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    write!(s, "CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let took = started.elapsed();
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Err(format!("answered {:?}", String::from_utf8_lossy(&head)));
    }
    s.write_all(b"ping").map_err(|e| e.to_string())?;
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).map_err(|e| format!("echo: {e}"))?;
    Ok(took)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(rows: &[Row], rtt: Duration, full: bool) {
    println!(
        "\nTime to the 200 of a CONNECT through a parent {} ms away (round trip), {} samples a row{}",
        rtt.as_millis(),
        rows.first().map_or(0, |r| r.samples.len()),
        if full { "" } else { " (smoke run: figures are not meaningful)" }
    );
    println!("\n| row | what | p50 ms | p90 ms | p99 ms | connections opened through the WAN |");
    println!("|---|---|---|---|---|---|");
    let mut p = std::collections::HashMap::new();
    for r in rows {
        let mut s = r.samples.clone();
        s.sort();
        let (p50, p90, p99) = (quantile(&s, 0.5), quantile(&s, 0.9), quantile(&s, 0.99));
        p.insert(r.id, (ms(p50), ms(p99)));
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} |",
            r.id,
            r.what,
            ms(p50),
            ms(p90),
            ms(p99),
            r.wan.opened.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    for r in rows {
        if let Some(f) = &r.front {
            let (handshakes, resumed, early) = f.counts.get();
            println!(
                "\n{}: the front saw {handshakes} TLS handshakes, {resumed} resumed, {early} with the CONNECT in early data",
                r.id
            );
        }
    }
    let get = |id: &str| p.get(id).copied().unwrap_or((f64::NAN, f64::NAN));
    let rtt_ms = ms(rtt);
    let target = |what: &str, value: f64, want: f64, more_is_better: bool| {
        let met = if more_is_better {
            value >= want
        } else {
            value <= want
        };
        let by = if more_is_better {
            want - value
        } else {
            value - want
        };
        if met {
            println!("- {what}: {value:.1} ms (target {want:.1}): met");
        } else {
            println!("- {what}: {value:.1} ms (target {want:.1}): NOT met, by {by:.1} ms");
        }
    };
    println!("\nTargets (ratios and differences of this run):");
    target(
        "standby saves at p50, plain (lbo-0 − lbo-8)",
        get("lbo-0").0 - get("lbo-8").0,
        0.9 * rtt_ms,
        true,
    );
    target(
        "standby saves at p50, TLS (lbo-tls-0 − lbo-tls-8)",
        get("lbo-tls-0").0 - get("lbo-tls-8").0,
        0.9 * rtt_ms,
        true,
    );
    target(
        "resumption with early data saves at p50 on the TLS parent (lbo-tls-0 − lbo-0rtt)",
        get("lbo-tls-0").0 - get("lbo-0rtt").0,
        0.9 * rtt_ms,
        true,
    );
    println!(
        "- resumption without early data saves at p50 (lbo-tls-0 − lbo-resume): {:.1} ms (TLS 1.3 resumes in the same round trips; only 0-RTT saves one)",
        get("lbo-tls-0").0 - get("lbo-resume").0
    );
    for (ours, theirs) in [
        ("lbo-8", "squid-8"),
        ("lbo-0", "squid-0"),
        ("lbo-tls-8", "squid-tls-8"),
    ] {
        let (a, b) = (get(ours), get(theirs));
        target(&format!("p50 {ours} ≤ {theirs}"), a.0, b.0, false);
        target(&format!("p99 {ours} ≤ {theirs}"), a.1, b.1, false);
        println!(
            "  ratio p50 {ours}/{theirs} = {:.2}, p99 {:.2}",
            a.0 / b.0,
            a.1 / b.1
        );
    }
}
