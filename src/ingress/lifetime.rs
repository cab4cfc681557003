//! `limits.max_tunnel_lifetime`: a tunnel may be ended after a fixed time, busy or not
//! (so a long-lived tunnel picks up a reloaded policy on its next connection). It is the
//! relay's stop signal, beside the shutdown drain, and says afterwards which one ended it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::outcome::CloseReason;
use crate::relay::RelayEnd;

#[derive(Default)]
pub struct Lifetime {
    lived_out: AtomicBool,
}

impl Lifetime {
    /// Resolves when `drained` does or, with `max`, when the tunnel has lived that long.
    pub async fn stop(&self, drained: impl Future<Output = ()>, max: Option<Duration>) {
        let Some(max) = max else {
            return drained.await;
        };
        tokio::select! {
            _ = drained => {}
            _ = tokio::time::sleep(max) => self.lived_out.store(true, Ordering::Relaxed),
        }
    }

    /// How the tunnel ended: `tunnel_lifetime` when its time ran out, else the relay's end.
    pub fn reason(&self, end: RelayEnd) -> CloseReason {
        if self.lived_out.load(Ordering::Relaxed) {
            CloseReason::TunnelLifetime
        } else {
            end.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ends_at_the_lifetime_or_the_drain() {
        let l = Lifetime::default();
        l.stop(std::future::pending(), Some(Duration::from_secs(3600)))
            .await;
        assert_eq!(l.reason(RelayEnd::Shutdown), CloseReason::TunnelLifetime);

        let l = Lifetime::default();
        l.stop(async {}, Some(Duration::from_secs(3600))).await;
        assert_eq!(l.reason(RelayEnd::Shutdown), CloseReason::Shutdown);

        let l = Lifetime::default();
        l.stop(async {}, None).await;
        assert_eq!(l.reason(RelayEnd::IdleTimeout), CloseReason::IdleTimeout);
    }
}
