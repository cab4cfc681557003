//! The relay's one timer: it ends a tunnel when no byte has moved for the idle timeout,
//! or when the tunnel has lived its longest allowed life. Activity does not touch the timer;
//! when it fires early the watchdog reads when bytes last moved and sleeps again, so a
//! busy tunnel costs no timer work per burst.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::time::{Instant, Sleep};

use super::{Activity, Limits, RelayEnd};

pin_project_lite::pin_project! {
    /// One timer for both limits, pinned inside the relay.
    pub struct Watchdog {
        #[pin]
        sleep: Sleep,
        idle: std::time::Duration,
        // When the tunnel's life is over, if it has a limit.
        until: Option<Instant>,
    }
}

impl Watchdog {
    pub fn new(limits: Limits) -> Self {
        let now = Instant::now();
        let until = limits.lifetime.map(|l| now + l);
        let first = earliest(now + limits.idle, until);
        Watchdog {
            sleep: tokio::time::sleep_until(first),
            idle: limits.idle,
            until,
        }
    }

    /// Ready with the limit that ended the tunnel.
    pub fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>, activity: &Activity) -> Poll<RelayEnd> {
        let mut this = self.project();
        loop {
            ready!(this.sleep.as_mut().poll(cx));
            let now = Instant::now();
            if this.until.is_some_and(|u| now >= u) {
                return Poll::Ready(RelayEnd::Lifetime);
            }
            let idle_at = activity.last() + *this.idle;
            if now >= idle_at {
                return Poll::Ready(RelayEnd::IdleTimeout);
            }
            this.sleep.as_mut().reset(earliest(idle_at, *this.until));
        }
    }
}

fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}
