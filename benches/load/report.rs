//! The printed result: a table shaped like the issue's, ratios to the no-proxy row and to
//! Squid, and each target of issue 7 with the figure that meets it or not.

use crate::Plan;

/// g3proxy's 1-tunnel throughput as a share of no proxy, in the table (14.9 / 23.4).
const G3PROXY_SHARE: f64 = 14.9 / 23.4;

#[derive(Default)]
pub struct Figures {
    pub gbit: Option<f64>,
    pub cpu_per_gb: Option<f64>,
    pub tunnels_per_s: Option<f64>,
    pub cpu_us_per_tunnel: Option<f64>,
    pub rss_kib_per_idle: Option<f64>,
    /// Short tunnels opened, over all runs.
    pub short_tunnels: usize,
    /// Idle tunnels held, and the proxy's whole RSS in KiB while it held them.
    pub idle_held: Option<(usize, u64)>,
    /// Failures and absolute memory, printed under the table.
    pub notes: Vec<String>,
}

pub struct Row {
    pub id: &'static str,
    pub name: String,
    pub f: Figures,
}

impl Row {
    pub fn new(id: &'static str, name: &str, f: Figures) -> Row {
        Row {
            id,
            name: name.to_string(),
            f,
        }
    }
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    match v {
        None => "–".into(),
        Some(v) if decimals == 0 => thousands(v.round() as u64),
        Some(v) => format!("{v:.decimals$}"),
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn print(plan: &Plan, rows: &[Row], fd_limit: u64) {
    let kind = if plan.full {
        format!("full run, medians of {}", plan.runs)
    } else {
        "smoke run (cargo bench --bench load for the full run)".into()
    };
    println!("\nlbo-proxy load benchmark: {kind}");
    println!("machine: {}", crate::procfs::machine());
    let mut workloads = Vec::new();
    if plan.runs_workload("download") {
        workloads.push(format!(
            "{} MiB through 1 tunnel per run",
            plan.download_bytes / (1024 * 1024)
        ));
    }
    if plan.runs_workload("short") {
        workloads.push(format!(
            "short tunnels {} in flight for {:?} (at most {})",
            plan.in_flight, plan.rate_length, plan.rate_max
        ));
    }
    if plan.runs_workload("idle") {
        workloads.push(format!("{} idle tunnels per proxy", plan.idle));
    }
    println!(
        "workloads: {}; open-file limit {fd_limit}",
        workloads.join("; ")
    );
    println!("CPU and RSS are the proxy process's (the first hop when chained), from /proc.\n");
    println!(
        "| | 1 tunnel Gbit/s | proxy CPU s per GB | new tunnels/s at {} in flight | \
         proxy CPU µs per tunnel | RSS KiB per idle tunnel |",
        plan.in_flight
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            cell(r.f.gbit, 1),
            cell(r.f.cpu_per_gb, 2),
            cell(r.f.tunnels_per_s, 0),
            cell(r.f.cpu_us_per_tunnel, 0),
            cell(r.f.rss_kib_per_idle, 1),
        );
    }
    println!();
    for r in rows {
        for n in &r.f.notes {
            println!("{}: {n}", r.name);
        }
    }

    let row = |id: &str| rows.iter().find(|r| r.id == id).map(|r| &r.f);
    println!("\nratios");
    let base = row("none");
    for id in [
        "bare",
        "splice",
        "lbo",
        "lbo-log",
        "lbo-log-nosync",
        "squid",
        "tinyproxy",
        "lbo-squid",
        "squid-squid",
    ] {
        if let (Some(b), Some(r)) = (base, rows.iter().find(|r| r.id == id)) {
            println!(
                "  {} / no proxy: throughput {}, new tunnels/s {}",
                r.name,
                percent(ratio(r.f.gbit, b.gbit)),
                percent(ratio(r.f.tunnels_per_s, b.tunnels_per_s))
            );
        }
    }
    for (ours, theirs) in [
        ("lbo-log", "lbo"),
        ("lbo-log-nosync", "lbo"),
        ("lbo", "bare"),
        ("lbo", "splice"),
        ("lbo", "squid"),
        ("lbo-log", "squid"),
        ("lbo", "tinyproxy"),
        ("lbo-squid", "squid-squid"),
    ] {
        if let (Some(o), Some(t)) = (
            rows.iter().find(|r| r.id == ours),
            rows.iter().find(|r| r.id == theirs),
        ) {
            println!(
                "  {} / {}: throughput {}, CPU per GB {}, tunnels/s {}, CPU per tunnel {}, \
                 RSS per idle tunnel {}",
                o.name,
                t.name,
                times(ratio(o.f.gbit, t.f.gbit)),
                times(ratio(o.f.cpu_per_gb, t.f.cpu_per_gb)),
                times(ratio(o.f.tunnels_per_s, t.f.tunnels_per_s)),
                times(ratio(o.f.cpu_us_per_tunnel, t.f.cpu_us_per_tunnel)),
                times(ratio(o.f.rss_kib_per_idle, t.f.rss_kib_per_idle)),
            );
        }
    }

    println!("\ntargets (issue 7)");
    let lbo = row("lbo");
    let share = ratio(lbo.and_then(|f| f.gbit), base.and_then(|f| f.gbit));
    target(
        "1-tunnel throughput ≥ 70 % of no proxy",
        share.map(|s| s >= 0.70),
        percent(share),
    );
    target(
        &format!(
            "1-tunnel throughput ≥ 1.2 × g3proxy (its share of no proxy in the issue × 1.2 = {})",
            percent(Some(G3PROXY_SHARE * 1.2))
        ),
        share.map(|s| s >= G3PROXY_SHARE * 1.2),
        percent(share),
    );
    let log = row("lbo-log");
    for (what, figure, limit, decimals) in [
        (
            "proxy CPU ≤ 0.25 s per GB",
            lbo.and_then(|f| f.cpu_per_gb),
            0.25,
            2,
        ),
        (
            "proxy CPU ≤ 60 µs per tunnel",
            lbo.and_then(|f| f.cpu_us_per_tunnel),
            60.0,
            0,
        ),
        (
            "proxy CPU ≤ 75 µs per tunnel, access log on",
            log.and_then(|f| f.cpu_us_per_tunnel),
            75.0,
            0,
        ),
        (
            "≤ 4 KiB RSS per idle tunnel",
            lbo.and_then(|f| f.rss_kib_per_idle),
            4.0,
            1,
        ),
    ] {
        target(what, figure.map(|v| v <= limit), cell(figure, decimals));
    }
    // Issue 21: the evidence log (chain, signatures, batch sync) costs at most 15 % more
    // CPU per tunnel than the log off, both measured in this run.
    let cost = ratio(
        log.and_then(|f| f.cpu_us_per_tunnel),
        lbo.and_then(|f| f.cpu_us_per_tunnel),
    );
    target(
        "access log with chain and sync batch ≤ 1.15 × the CPU per tunnel of the log off",
        cost.map(|c| c <= 1.15),
        times(cost),
    );
    let idle = lbo.and_then(|f| f.idle_held);
    target(
        "100,000 concurrent idle tunnels held in < 1 GiB of proxy RSS",
        idle.and_then(|(held, rss)| (held >= 100_000).then_some(rss < 1024 * 1024)),
        idle.map_or("–".into(), |(held, rss)| {
            format!("{} tunnels, {} MiB", thousands(held as u64), rss / 1024)
        }),
    );
    if let (Some(o), Some(t)) = (row("lbo-squid"), row("squid-squid")) {
        let higher_better = [(o.gbit, t.gbit), (o.tunnels_per_s, t.tunnels_per_s)];
        let lower_better = [
            (o.cpu_per_gb, t.cpu_per_gb),
            (o.cpu_us_per_tunnel, t.cpu_us_per_tunnel),
            (o.rss_kib_per_idle, t.rss_kib_per_idle),
        ];
        let met = higher_better
            .iter()
            .map(|(a, b)| Some(a.as_ref()? >= b.as_ref()?))
            .chain(
                lower_better
                    .iter()
                    .map(|(a, b)| Some(a.as_ref()? <= b.as_ref()?)),
            )
            .collect::<Option<Vec<bool>>>()
            .map(|v| v.iter().all(|m| *m));
        let figure = format!(
            "throughput {}, CPU per GB {}, tunnels/s {}, CPU per tunnel {}, RSS per idle tunnel {}",
            times(ratio(o.gbit, t.gbit)),
            times(ratio(o.cpu_per_gb, t.cpu_per_gb)),
            times(ratio(o.tunnels_per_s, t.tunnels_per_s)),
            times(ratio(o.cpu_us_per_tunnel, t.cpu_us_per_tunnel)),
            times(ratio(o.rss_kib_per_idle, t.rss_kib_per_idle)),
        );
        target(
            "chained through Squid: no worse than Squid → Squid on every figure",
            met,
            figure,
        );
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn percent(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{:.0} %", r * 100.0))
}

fn times(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}×"))
}

fn target(what: &str, met: Option<bool>, figure: String) {
    let mark = match met {
        Some(true) => "met    ",
        Some(false) => "NOT met",
        None => "unknown",
    };
    println!("  [{mark}] {what}: {figure}");
}
