//! Notices to the team about tickets: new escalations, SLA breaches and
//! reply deadlines, POSTed to chat webhooks through a durable outbox.
//!
//! - [`format`]: what a notice says and each chat tool's body (pure).
//! - [`sla`]: which notice a ticket's timers call for, and when (pure).
//! - [`send`]: one POST with the target's signing; reading the answer.
//! - [`SlaWatcher`]: finds tickets whose timers are due and, in one
//!   transaction per ticket, moves the timer on and stores the notices.
//! - [`Notifier`]: delivers stored notices with leases, retries with
//!   backoff and jitter (or `Retry-After`), and an `Idempotency-Key`; after
//!   `outbox.max_attempts` a notice is dead (logged: a notice about a
//!   notice would fail the same way).
//!
//! Both loops read "now" from a [`Clock`], so tests can drive the SLA
//! timers with tokio's paused time.

pub mod format;
pub mod send;
pub mod sla;

mod notifier;
mod watcher;

pub use format::Event;
pub use notifier::Notifier;
pub use watcher::{Progress, SlaWatcher};

use crate::model::now_ms;

/// Where the notification loops get the time (Unix ms).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system clock: what tickets are stamped with. Production.
    Wall,
    /// The wall time when created, then tokio's clock: pausing and
    /// advancing tokio time moves it. For tests. (Not for production: a
    /// monotonic clock stands still while a machine is suspended and drifts
    /// from the wall clock the tickets are stamped with.)
    Tokio {
        wall_at_start: i64,
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that follows tokio's (pausable) time from now on.
    pub fn tokio() -> Clock {
        Clock::Tokio {
            wall_at_start: now_ms(),
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::Wall => now_ms(),
            Clock::Tokio {
                wall_at_start,
                start,
            } => wall_at_start.saturating_add(start.elapsed().as_millis() as i64),
        }
    }

    /// The tokio instant at which this clock shows `at_ms` (now, if past).
    pub fn instant_at(&self, at_ms: i64) -> tokio::time::Instant {
        match self {
            Clock::Wall => {
                let wait = at_ms.saturating_sub(now_ms()).max(0) as u64;
                tokio::time::Instant::now() + std::time::Duration::from_millis(wait)
            }
            Clock::Tokio {
                wall_at_start,
                start,
            } => {
                let offset = at_ms.saturating_sub(*wall_at_start).max(0) as u64;
                *start + std::time::Duration::from_millis(offset)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let clock = Clock::tokio();
        let t0 = clock.now_ms();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(clock.now_ms() - t0, 600_000);
        let at = clock.instant_at(t0 + 900_000);
        assert_eq!(at - tokio::time::Instant::now(), Duration::from_secs(300));
        assert!(clock.instant_at(t0) <= tokio::time::Instant::now());
    }
}
