//! The load benchmark: loopback origins, a DNS responder, lbo-proxy as its own process
//! (and Squid and tinyproxy, when installed), and a client that drives the workloads of issue 7:
//!
//! - one tunnel downloading a large body (Gbit/s, proxy CPU seconds per GB);
//! - short tunnels, 32 in flight: CONNECT, decision, connect, 64-byte echo, close
//!   (tunnels per second, proxy CPU µs per tunnel);
//! - many idle tunnels (proxy RSS KiB per idle tunnel: the growth of VmRSS divided by
//!   the number of tunnels).
//!
//! A bare relay (see `bare.rs`) runs the same workloads as the floor no proxy goes below,
//! and a bare splice relay (`bare_splice.rs`) as the most a splice relay moves here.
//! CPU and memory come from /proc of the proxy process (the first hop when chained).
//! Each row is measured in the same run, so figures are read as ratios to the no-proxy
//! row, and to Squid. Run `cargo bench --bench load` for the full run (medians of three).
//! Without `--bench` (`cargo test --all-targets`) it does a smoke run of a few seconds.
//!
//! Environment: `LBO_BENCH_IDLE` (idle tunnels per row; default 10,000),
//! `LBO_BENCH_MIB` (download size per run; default 2,048), `LBO_BENCH_ROWS` (a comma
//! list of row ids: none, bare, splice, lbo, lbo-log, lbo-log-nosync, squid, tinyproxy,
//! lbo-squid, squid-squid; lbo-log's access log is numbered, chained and signed with
//! `sync = "batch"`, lbo-log-nosync's with `sync = "none"`),
//! `LBO_BENCH_WORKLOADS` (a comma list of download, short, idle; default all three),
//! `LBO_BENCH_CALLGRIND` (set: lbo-proxy runs under callgrind, and its instructions per
//! short tunnel are printed; use it with `LBO_BENCH_WORKLOADS=short`).

#[path = "../common/child.rs"]
mod child;
#[path = "../common/squid.rs"]
mod squid;

mod bare;
mod bare_splice;
mod dns;
mod origin;
mod procfs;
mod proxies;
mod report;
mod workloads;

use std::time::Duration;

use origin::Origin;
use proxies::{Lbo, Log, Proxy, DIRECT_NAME, UPSTREAM_NAME};
use report::{Figures, Row};
use workloads::Via;

/// How much of each workload one run does.
#[derive(Clone)]
pub struct Plan {
    pub full: bool,
    pub runs: usize,
    pub download_bytes: u64,
    pub rate_length: Duration,
    pub rate_max: usize,
    pub in_flight: usize,
    pub idle: usize,
    rows: Vec<String>,
    workloads: Vec<String>,
}

impl Plan {
    fn new(full: bool) -> Plan {
        let env = |key: &str| {
            std::env::var(key)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
        };
        let list = |key: &str, all: &str| -> Vec<String> {
            std::env::var(key)
                .unwrap_or_else(|_| all.into())
                .split(',')
                .map(|r| r.trim().to_string())
                .collect()
        };
        Plan {
            full,
            runs: if full { 3 } else { 1 },
            download_bytes: env("LBO_BENCH_MIB").unwrap_or(if full { 2048 } else { 16 }) as u64
                * 1024
                * 1024,
            rate_length: if full {
                Duration::from_secs(3)
            } else {
                Duration::from_millis(300)
            },
            rate_max: if full { 200_000 } else { 300 },
            in_flight: 32,
            idle: env("LBO_BENCH_IDLE").unwrap_or(if full { 10_000 } else { 100 }),
            rows: list(
                "LBO_BENCH_ROWS",
                "none,bare,splice,lbo,lbo-log,lbo-log-nosync,squid,tinyproxy,lbo-squid,squid-squid",
            ),
            workloads: list("LBO_BENCH_WORKLOADS", "download,short,idle"),
        }
    }

    fn wants(&self, row: &str) -> bool {
        self.rows.iter().any(|r| r == row)
    }

    pub fn runs_workload(&self, workload: &str) -> bool {
        self.workloads.iter().any(|w| w == workload)
    }

    fn without(&self, workload: &str) -> Plan {
        let mut plan = self.clone();
        plan.workloads.retain(|w| w != workload);
        plan
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next();
    let mut port = || args.next().and_then(|p| p.parse().ok()).expect("a port");
    match mode.as_deref() {
        Some(proxies::BARE_RELAY) => return bare::serve(port()),
        Some(proxies::BARE_SPLICE) => return bare_splice::serve(port()),
        _ => {}
    }
    let full = std::env::args().any(|a| a == "--bench");
    let mut plan = Plan::new(full);
    let fds = raise_fd_limit();
    // The client, the origin and the proxy each hold about two descriptors per tunnel.
    let most = (fds as usize).saturating_sub(2_000) / 2;
    if plan.idle > most {
        eprintln!(
            "idle tunnels capped at {most} by the open-file limit {fds} \
             (raise it, as root with CAP_SYS_RESOURCE, to measure more)"
        );
        plan.idle = most;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rows = runtime.block_on(run(&plan));
    report::print(&plan, &rows, fds);
    // Idle echo connections and the DNS task end with the runtime, not one by one.
    runtime.shutdown_timeout(Duration::from_secs(1));
}

async fn run(plan: &Plan) -> Vec<Row> {
    let dns = dns::start().await;
    let origin = Origin::start(8).await;
    let ports = origin.ports();
    let max_connections = plan.idle * 2 + 10_000;
    let squid_fds = plan.idle * 4 + 4096;
    let lbo = |access_log, parent| {
        proxies::lbo(Lbo {
            dns,
            ports: &ports,
            access_log,
            parent,
            max_connections,
        })
    };
    let squid_version = proxies::version("/usr/sbin/squid");
    if squid_version.is_empty() {
        eprintln!("Squid is not installed (apt-get install squid): its rows are left out");
    }
    let mut rows = Vec::new();

    if plan.wants("none") {
        let figures = measure(plan, &origin, Via::Nothing, None).await;
        rows.push(Row::new("none", "no proxy (the limit)", figures));
    }
    if plan.wants("bare") {
        let p = proxies::bare(proxies::BARE_RELAY);
        let figures = measure(plan, &origin, via(&p, ORIGIN_ADDRESS), Some(&p)).await;
        rows.push(Row::new(
            "bare",
            "bare relay (the floor: no policy, one thread, user-space copy)",
            figures,
        ));
    }
    if plan.wants("splice") {
        let p = proxies::bare(proxies::BARE_SPLICE);
        // Not idle tunnels: two threads and eight descriptors each, which the limit that
        // lets the other rows hold theirs does not allow; its figure is the throughput.
        let no_idle = plan.without("idle");
        let figures = measure(&no_idle, &origin, via(&p, ORIGIN_ADDRESS), Some(&p)).await;
        rows.push(Row::new(
            "splice",
            "bare splice relay (nothing but blocking splice, a thread per direction)",
            figures,
        ));
    }
    if plan.wants("lbo") {
        let p = lbo(Log::Off, None);
        let mut figures = measure(plan, &origin, via(&p, DIRECT_NAME), Some(&p)).await;
        let tunnels = figures.short_tunnels;
        if let Some(ir) = tokio::task::block_in_place(|| p.instructions()) {
            figures.notes.push(format!(
                "callgrind: {ir} instructions in user space, start-up included, for {tunnels} \
                 short tunnels: {} a tunnel",
                ir / tunnels.max(1) as u64
            ));
        }
        rows.push(Row::new("lbo", "lbo-proxy", figures));
    }
    for (id, sync, name) in [
        (
            "lbo-log",
            "batch",
            "lbo-proxy, access log on (chain, signed, sync batch)",
        ),
        (
            "lbo-log-nosync",
            "none",
            "lbo-proxy, access log on (chain, signed, sync none)",
        ),
    ] {
        if !plan.wants(id) {
            continue;
        }
        let p = lbo(Log::File { sync }, None);
        let mut figures = measure(plan, &origin, via(&p, DIRECT_NAME), Some(&p)).await;
        // Let the last records reach the file before counting them.
        tokio::time::sleep(Duration::from_millis(500)).await;
        figures
            .notes
            .push(format!("{} access-log lines written", p.access_lines()));
        rows.push(Row::new(id, name, figures));
    }
    if plan.wants("squid") {
        if let Some(p) = proxies::squid(None, squid_fds) {
            let figures = measure(plan, &origin, via(&p, DIRECT_NAME), Some(&p)).await;
            rows.push(Row::new(
                "squid",
                &format!("Squid {squid_version}"),
                figures,
            ));
        }
    }
    if plan.wants("tinyproxy") {
        match proxies::tinyproxy(plan.idle + 1_000) {
            Some(p) => {
                let figures = measure(plan, &origin, via(&p, ORIGIN_ADDRESS), Some(&p)).await;
                let version = proxies::version("/usr/bin/tinyproxy");
                rows.push(Row::new(
                    "tinyproxy",
                    &format!("tinyproxy {version}"),
                    figures,
                ));
            }
            None => eprintln!(
                "tinyproxy is not installed (apt-get install tinyproxy): its row is left out"
            ),
        }
    }
    if plan.wants("lbo-squid") {
        if let Some(parent) = proxies::squid(None, squid_fds) {
            let p = lbo(Log::Off, Some(parent.addr));
            let figures = measure(plan, &origin, via(&p, UPSTREAM_NAME), Some(&p)).await;
            rows.push(Row::new(
                "lbo-squid",
                &format!("lbo-proxy → Squid {squid_version} parent"),
                figures,
            ));
        }
    }
    if plan.wants("squid-squid") {
        if let Some(parent) = proxies::squid(None, squid_fds) {
            if let Some(p) = proxies::squid(Some(parent.addr), squid_fds) {
                let figures = measure(plan, &origin, via(&p, UPSTREAM_NAME), Some(&p)).await;
                rows.push(Row::new(
                    "squid-squid",
                    &format!("Squid → Squid {squid_version} parent"),
                    figures,
                ));
            }
        }
    }
    rows
}

/// The origin as an address, for proxies that resolve with the system resolver.
const ORIGIN_ADDRESS: &str = "127.0.0.1";

fn via(p: &Proxy, name: &'static str) -> Via {
    Via::Proxy(p.addr, name)
}

/// Runs the three workloads through `via`, reading CPU and memory of `proxy`.
async fn measure(plan: &Plan, origin: &Origin, via: Via, proxy: Option<&Proxy>) -> Figures {
    let pid = proxy.map(|p| p.pid);
    let cpu = || pid.map(procfs::cpu);
    let mut f = Figures::default();

    let mut gbits = Vec::new();
    let before = cpu();
    let downloads = if plan.runs_workload("download") {
        plan.runs
    } else {
        0
    };
    for _ in 0..downloads {
        match workloads::download(via, origin.source_port, plan.download_bytes).await {
            Ok(t) => gbits.push(plan.download_bytes as f64 * 8.0 / t.as_secs_f64() / 1e9),
            Err(e) => f.notes.push(format!("download failed: {e}")),
        }
    }
    if let (Some(b), Some(a)) = (before, cpu()) {
        let gb = (gbits.len() as u64 * plan.download_bytes) as f64 / 1e9;
        if gb > 0.0 {
            f.cpu_per_gb = Some((a - b).total() / gb);
        }
    }
    f.gbit = median(gbits);

    let mut rates = Vec::new();
    let mut per_tunnel = Vec::new();
    let mut user_per_tunnel = Vec::new();
    let short_runs = if plan.runs_workload("short") {
        plan.runs
    } else {
        0
    };
    for _ in 0..short_runs {
        let before = cpu();
        let r = workloads::short_tunnels(
            via,
            &origin.echo_ports,
            plan.in_flight,
            plan.rate_length,
            plan.rate_max,
        )
        .await;
        if r.failures > 0 {
            f.notes.push(format!(
                "{} short tunnels failed, the first: {}",
                r.failures,
                r.first_failure.as_deref().unwrap_or("?")
            ));
        }
        f.short_tunnels += r.tunnels;
        if r.tunnels > 0 {
            rates.push(r.tunnels as f64 / r.elapsed.as_secs_f64());
            if let (Some(b), Some(a)) = (before, cpu()) {
                let used = a - b;
                per_tunnel.push(used.total() / r.tunnels as f64 * 1e6);
                user_per_tunnel.push(used.user / r.tunnels as f64 * 1e6);
            }
        }
    }
    f.tunnels_per_s = median(rates);
    f.cpu_us_per_tunnel = median(per_tunnel);
    if let Some(user) = median(user_per_tunnel) {
        // The rest is the kernel's: system calls, and the loopback TCP work they set off.
        f.notes.push(format!(
            "short tunnels: {user:.0} µs per tunnel in user space"
        ));
    }

    if let (Some(pid), true) = (pid, plan.runs_workload("idle")) {
        // The proxy has settled after the short tunnels: their sockets are closed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = procfs::rss_kib(pid);
        let kernel_before = procfs::tcp_kernel_kib();
        let slab_before = procfs::slab_kib();
        match workloads::idle_tunnels(via, &origin.echo_ports, plan.idle).await {
            Ok(held) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let rss = procfs::rss_kib(pid);
                let n = held.len() as f64;
                f.rss_kib_per_idle = Some(rss.saturating_sub(rss_before) as f64 / n);
                f.idle_held = Some((held.len(), rss));
                f.notes.push(format!(
                    "{} idle tunnels: proxy RSS {} → {} MiB; box: TCP buffers +{} MiB, \
                     kernel slab +{} MiB (client, proxy and origin sockets)",
                    held.len(),
                    rss_before / 1024,
                    rss / 1024,
                    procfs::tcp_kernel_kib().saturating_sub(kernel_before) / 1024,
                    procfs::slab_kib().saturating_sub(slab_before) / 1024
                ));
                drop(held);
            }
            Err(e) => f.notes.push(format!("idle tunnels failed: {e}")),
        }
    }
    f
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Raises the open-file limit as far as allowed (as root, to the kernel's maximum); the
/// proxies started afterwards inherit it. Returns the limit in force.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the kernel to fill and read.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let max = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(lim.rlim_max);
        let wanted = libc::rlimit {
            rlim_cur: max,
            rlim_max: max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}
