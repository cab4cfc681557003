//! The steady load: workers that each loop over a seeded mix of direct and upstream
//! tunnels and `http://` requests, some reset mid-transfer, until told to stop; and the
//! tally of what happened.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::client::{http_get, tunnel, Ended, Transfer};
use super::config::{DIRECT_HOST, UPSTREAM_HOST};
use super::payload::{blob, Rng};

/// The largest payload or body of one transfer.
const MAX_SIZE: usize = 256 * 1024;
/// One transfer may take this long before it counts as broken (bounds every loop turn).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);
/// A worker stops after this many transfers even before the deadline.
const MAX_TRANSFERS_PER_WORKER: u64 = 1_000_000;
/// Share of transfers the client resets mid-transfer, in percent.
const RESET_PERCENT: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    TunnelDirect,
    TunnelUpstream,
    HttpDirect,
    HttpUpstream,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::TunnelDirect => "tunnel direct",
            Kind::TunnelUpstream => "tunnel upstream",
            Kind::HttpDirect => "http direct",
            Kind::HttpUpstream => "http upstream",
        }
    }

    pub fn is_direct(self) -> bool {
        matches!(self, Kind::TunnelDirect | Kind::HttpDirect)
    }
}

/// Where the load goes.
#[derive(Clone, Copy)]
pub struct Targets {
    pub proxy: SocketAddr,
    pub direct_port: u16,
    pub upstream_port: u16,
}

/// Totals per kind of transfer.
#[derive(Default, Debug, Clone)]
pub struct KindTally {
    pub transfers: u64,
    pub intact: u64,
    pub cut: u64,
    pub reset: u64,
    /// Bytes relayed back to the clients.
    pub bytes: u64,
    /// Bytes the clients sent into tunnels.
    pub sent: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub corrupt: Vec<String>,
    pub broken: Vec<String>,
}

#[derive(Default, Debug, Clone)]
pub struct Tally {
    pub kinds: BTreeMap<Kind, KindTally>,
}

impl Tally {
    pub fn add(&mut self, kind: Kind, t: Transfer) {
        let k = self.kinds.entry(kind).or_default();
        k.transfers += 1;
        k.bytes += t.bytes;
        k.sent += t.sent;
        *k.statuses.entry(t.status).or_default() += 1;
        match t.ended {
            Ended::Intact => k.intact += 1,
            Ended::Cut => k.cut += 1,
            Ended::Reset => k.reset += 1,
            Ended::Refused(_) => {}
            Ended::Corrupt(why) => k.corrupt.push(why),
            Ended::Broken(why) => k.broken.push(why),
        }
    }

    pub fn merge(&mut self, other: Tally) {
        for (kind, o) in other.kinds {
            let k = self.kinds.entry(kind).or_default();
            k.transfers += o.transfers;
            k.intact += o.intact;
            k.cut += o.cut;
            k.reset += o.reset;
            k.bytes += o.bytes;
            k.sent += o.sent;
            for (s, n) in o.statuses {
                *k.statuses.entry(s).or_default() += n;
            }
            k.corrupt.extend(o.corrupt);
            k.broken.extend(o.broken);
        }
    }

    pub fn sum(&self, f: impl Fn(&KindTally) -> u64) -> u64 {
        self.kinds.values().map(f).sum()
    }
}

/// One transfer of `kind`, its size and whether it is reset drawn from `rng`.
pub async fn one(targets: Targets, kind: Kind, rng: &mut Rng) -> Transfer {
    let size = rng.size(MAX_SIZE);
    let reset_after = rng
        .chance(RESET_PERCENT)
        .then(|| rng.below(size as u64 + 1) as usize);
    let seed = rng.next_u64();
    let direct = format!("{DIRECT_HOST}:{}", targets.direct_port);
    let upstream = format!("{UPSTREAM_HOST}:{}", targets.upstream_port);
    let run = async {
        match kind {
            Kind::TunnelDirect => {
                tunnel(targets.proxy, &direct, &blob(seed, size), reset_after).await
            }
            Kind::TunnelUpstream => {
                tunnel(targets.proxy, &upstream, &blob(seed, size), reset_after).await
            }
            Kind::HttpDirect => http_get(targets.proxy, &direct, seed, size, reset_after).await,
            Kind::HttpUpstream => http_get(targets.proxy, &upstream, seed, size, reset_after).await,
        }
    };
    match tokio::time::timeout(TRANSFER_TIMEOUT, run).await {
        Ok(t) => t,
        Err(_) => Transfer {
            ended: Ended::Broken(format!("{} took over {TRANSFER_TIMEOUT:?}", kind.name())),
            status: 0,
            bytes: 0,
            sent: 0,
        },
    }
}

/// One worker: transfers of every kind in a seeded order until `stop` is set.
pub async fn worker(targets: Targets, seed: u64, stop: Arc<AtomicBool>) -> Tally {
    const KINDS: [Kind; 4] = [
        Kind::TunnelDirect,
        Kind::TunnelUpstream,
        Kind::HttpDirect,
        Kind::HttpUpstream,
    ];
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for _ in 0..MAX_TRANSFERS_PER_WORKER {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        let t = one(targets, kind, &mut rng).await;
        tally.add(kind, t);
    }
    tally
}
