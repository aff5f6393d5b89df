//! The engine's clock.
//!
//! Everything in the engine that reads or waits on time uses Tokio's clock: retry delays,
//! attempt and workflow timeouts, split deadlines and the scheduler wait on Tokio's timer,
//! and the circuit breaker reads [`now`]. In a runtime whose clock is paused
//! (`#[tokio::test(start_paused = true)]`), time therefore advances only when every task
//! waits, and jumps straight to the next deadline: timer tests run instantly and can
//! assert exact elapsed times. In a normal runtime (and outside any runtime) it is the
//! real monotonic clock.

use std::time::Instant;

/// The engine's "now": Tokio's clock, as a `std::time::Instant` (see the module docs).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The current UTC wall-clock time on the engine's clock: the wall clock shifted by however
/// far Tokio's clock runs ahead of the real monotonic clock (zero in a normal runtime, the
/// virtual time advanced so far when the runtime's clock is paused). Scheduler timestamps
/// and cron ticks use it, so they behave on a paused clock as in production.
#[cfg(feature = "scheduler")]
pub(crate) fn wall_now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{DateTime, TimeDelta, Utc};
    // Read in this order so that the real time passing between the reads can only push the
    // result later, never earlier: a run woken exactly at a cron tick must not see a time
    // just before it.
    let runtime = now();
    let real = Instant::now();
    let wall = Utc::now();
    let delta = |d| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    match runtime.checked_duration_since(real) {
        Some(ahead) => wall
            .checked_add_signed(delta(ahead))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        None => wall
            .checked_sub_signed(delta(real.duration_since(runtime)))
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn now_follows_a_paused_runtime() {
        let before = now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(now() - before, Duration::from_secs(3600));
    }
}
