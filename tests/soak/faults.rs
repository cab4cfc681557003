//! The fault schedule, on its own thread: the parent is killed and restarted, DNS fails
//! and goes silent, the config is reloaded (good, and once per cycle a broken one). One
//! cycle takes about 35 s and repeats until the deadline (the first one always completes);
//! the end always restores the parent, DNS and a good config file.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::SoakConfig;
use super::process::ProxyProcess;
use crate::support::{DnsMode, FaultyDns, Squid};

#[derive(Clone, Copy, Debug)]
enum Step {
    Wait(u64),
    Dns(DnsMode),
    Reload,
    BadReload,
    KillParent,
    RestartParent,
}

/// One cycle; every fault is undone within it.
const CYCLE: &[Step] = &[
    Step::Wait(3),
    Step::Dns(DnsMode::ServFail),
    Step::Wait(3),
    Step::Dns(DnsMode::Ok),
    Step::Wait(2),
    Step::Reload,
    Step::Wait(2),
    Step::KillParent,
    Step::Wait(3),
    Step::RestartParent,
    Step::Wait(3),
    Step::Dns(DnsMode::Silent),
    // Longer than one lookup's deadline (3 × the 1 s DNS timeout), so lookups time out.
    Step::Wait(7),
    Step::Dns(DnsMode::Ok),
    Step::Wait(2),
    Step::BadReload,
    Step::Wait(1),
    Step::Reload,
    Step::Wait(3),
    Step::KillParent,
    Step::Wait(2),
    Step::RestartParent,
];

/// Bounds the schedule whatever the deadline.
const MAX_STEPS: usize = 100_000;

/// What was injected, with the time of each event since the start.
#[derive(Default, Debug)]
pub struct Injected {
    pub parent_kills: u64,
    pub dns_servfail: u64,
    pub dns_silent: u64,
    pub reloads: u64,
    pub bad_reloads: u64,
    pub events: Vec<(f64, String)>,
}

impl Injected {
    pub fn total(&self) -> u64 {
        self.parent_kills + self.dns_servfail + self.dns_silent + self.reloads + self.bad_reloads
    }
}

/// Runs the schedule until `until` (at least one whole cycle), then restores everything;
/// hands Squid back.
pub fn run(
    mut squid: Squid,
    dns: FaultyDns,
    config: &SoakConfig,
    proxy: &Arc<Mutex<ProxyProcess>>,
    until: Instant,
) -> (Squid, Injected) {
    let start = Instant::now();
    let mut done = Injected::default();
    let mut generation = 0;
    let note = |done: &mut Injected, what: String| {
        done.events.push((start.elapsed().as_secs_f64(), what));
    };
    for (n, step) in CYCLE.iter().cycle().take(MAX_STEPS).enumerate() {
        // The first cycle always runs to its end, so every fault is injected at least
        // once however short the run or slow the machine.
        let first_cycle = n < CYCLE.len();
        if !first_cycle && Instant::now() >= until {
            break;
        }
        match *step {
            Step::Wait(secs) => {
                let left = until.saturating_duration_since(Instant::now());
                let wait = Duration::from_secs(secs);
                std::thread::sleep(if first_cycle { wait } else { left.min(wait) });
            }
            Step::Dns(mode) => {
                dns.set(mode);
                match mode {
                    DnsMode::ServFail => done.dns_servfail += 1,
                    DnsMode::Silent => done.dns_silent += 1,
                    DnsMode::Ok => {}
                }
                note(&mut done, format!("dns {mode:?}"));
            }
            Step::Reload => {
                generation += 1;
                config.generation(generation);
                proxy.lock().unwrap().sighup();
                done.reloads += 1;
                note(&mut done, format!("reload generation {generation}"));
            }
            Step::BadReload => {
                config.broken();
                proxy.lock().unwrap().sighup();
                done.bad_reloads += 1;
                note(&mut done, "reload of a broken config".into());
            }
            Step::KillParent => {
                squid.kill();
                done.parent_kills += 1;
                note(&mut done, "squid killed".into());
            }
            Step::RestartParent => {
                squid.restart();
                note(&mut done, "squid restarted".into());
            }
        }
    }
    dns.set(DnsMode::Ok);
    if !squid.running() {
        squid.restart();
        note(&mut done, "squid restarted".into());
    }
    config.generation(generation);
    (squid, done)
}
