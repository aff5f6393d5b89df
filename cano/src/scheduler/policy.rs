//! [`BackoffPolicy`]: how long a failing flow waits before its next scheduled run, and
//! when it stops running altogether (trips).

use std::time::Duration;

/// How a flow backs off after failed runs, and when it trips.
///
/// After a failed run the flow's failure streak grows by one. If the policy
/// [trips](Self::is_tripped) at that streak, the flow parks in
/// [`Status::Tripped`](super::Status::Tripped) and runs again only after
/// [`RunningScheduler::reset_flow`](super::RunningScheduler::reset_flow); otherwise it parks in
/// [`Status::Backoff`](super::Status::Backoff) for [`compute_delay`](Self::compute_delay) and
/// scheduled runs inside that window are skipped (a manual trigger still runs). A successful
/// run resets the streak.
///
/// The default waits 1 s after the first failure, doubling up to 5 minutes, with 10 %
/// jitter, and never trips:
///
/// ```
/// use cano::BackoffPolicy;
/// use std::time::Duration;
///
/// let policy = BackoffPolicy {
///     initial: Duration::from_millis(100),
///     jitter: 0.0,
///     ..BackoffPolicy::with_trip(3)
/// };
/// assert_eq!(policy.compute_delay(1), Duration::from_millis(100));
/// assert_eq!(policy.compute_delay(3), Duration::from_millis(400));
/// assert!(!policy.is_tripped(2));
/// assert!(policy.is_tripped(3));
/// ```
#[derive(Debug, Clone)]
pub struct BackoffPolicy {
    /// Delay after the first failure of a streak.
    pub initial: Duration,
    /// Growth factor per further failure.
    pub multiplier: f64,
    /// Cap on the delay (applied before and after jitter).
    pub max_delay: Duration,
    /// Relative jitter: the capped delay is scaled by a random factor in
    /// `[1 - jitter, 1 + jitter]` (`jitter` is clamped to `[0, 1]`; `0` disables it).
    pub jitter: f64,
    /// Trip the flow once its failure streak reaches this many failures; `None` never trips.
    pub streak_limit: Option<u32>,
}

impl Default for BackoffPolicy {
    /// 1 s initial delay, ×2 per failure, capped at 300 s, 10 % jitter, never trips.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: 0.1,
            streak_limit: None,
        }
    }
}

impl BackoffPolicy {
    /// The default policy, tripping once the failure streak reaches `n`
    /// (`with_trip(0)` trips on the first failure).
    #[must_use]
    pub fn with_trip(n: u32) -> Self {
        Self {
            streak_limit: Some(n),
            ..Self::default()
        }
    }

    /// The wait after the `streak`-th consecutive failure (a streak of 0 counts as 1):
    /// `initial × multiplier^(streak − 1)`, capped at `max_delay`, scaled by the jitter
    /// factor, and capped again.
    #[must_use]
    pub fn compute_delay(&self, streak: u32) -> Duration {
        self.delay_with(streak, crate::util::unit_jitter)
    }

    /// Whether a flow with `failure_streak` consecutive failures is tripped: true when a
    /// `streak_limit` is set and the streak has reached it.
    #[must_use]
    pub fn is_tripped(&self, failure_streak: u32) -> bool {
        matches!(self.streak_limit, Some(limit) if failure_streak >= limit)
    }

    /// [`compute_delay`](Self::compute_delay) with the jitter draw (uniform in `[-1, 1]`)
    /// supplied by the caller.
    fn delay_with(&self, streak: u32, draw: impl FnOnce() -> f64) -> Duration {
        let streak = streak.max(1);
        let exponent = i32::try_from(streak - 1).unwrap_or(i32::MAX);
        let cap = self.max_delay.as_secs_f64();
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        // `f64::min`/`max` ignore a NaN operand, so a NaN multiplier or jitter lands on the
        // cap or on zero instead of poisoning the delay.
        let capped = base.min(cap);
        let factor = if self.jitter > 0.0 {
            1.0 + self.jitter.clamp(0.0, 1.0) * draw()
        } else {
            1.0
        };
        let secs = (capped * factor).max(0.0);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial_ms: u64, multiplier: f64, cap_ms: u64) -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(initial_ms),
            multiplier,
            max_delay: Duration::from_millis(cap_ms),
            jitter: 0.0,
            streak_limit: None,
        }
    }

    #[test]
    fn defaults() {
        let p = BackoffPolicy::default();
        assert_eq!(p.initial, Duration::from_secs(1));
        assert_eq!(p.multiplier, 2.0);
        assert_eq!(p.max_delay, Duration::from_secs(300));
        assert_eq!(p.jitter, 0.1);
        assert_eq!(p.streak_limit, None);
        let t = BackoffPolicy::with_trip(4);
        assert_eq!(t.streak_limit, Some(4));
        assert_eq!(t.initial, Duration::from_secs(1));
        assert_eq!(t.jitter, 0.1);
    }

    #[test]
    fn delay_doubles_per_failure() {
        let p = policy(100, 2.0, 10_000);
        let delays: Vec<u128> = (1..=4).map(|s| p.compute_delay(s).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800]);
    }

    #[test]
    fn streak_zero_counts_as_one() {
        let p = policy(100, 2.0, 10_000);
        assert_eq!(p.compute_delay(0), p.compute_delay(1));
    }

    #[test]
    fn delay_is_capped() {
        let p = policy(100, 10.0, 500);
        assert_eq!(p.compute_delay(5), Duration::from_millis(500));
        assert_eq!(p.compute_delay(20), Duration::from_millis(500));
        assert_eq!(p.compute_delay(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = BackoffPolicy {
            jitter: 0.5,
            ..policy(1000, 2.0, 10_000)
        };
        for _ in 0..500 {
            let d = p.compute_delay(1);
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_millis(1500),
                "{d:?}"
            );
        }
        assert_eq!(p.delay_with(1, || -1.0), Duration::from_millis(500));
        assert_eq!(p.delay_with(1, || 1.0), Duration::from_millis(1500));
    }

    #[test]
    fn jitter_never_exceeds_the_cap_and_is_clamped() {
        let p = BackoffPolicy {
            jitter: 7.0,
            ..policy(1000, 2.0, 1000)
        };
        assert_eq!(p.delay_with(1, || 1.0), Duration::from_millis(1000));
        assert_eq!(p.delay_with(1, || -1.0), Duration::ZERO);
    }

    #[test]
    fn odd_numbers_do_not_panic() {
        let nan = BackoffPolicy {
            multiplier: f64::NAN,
            ..policy(100, 2.0, 500)
        };
        assert!(nan.compute_delay(3) <= Duration::from_millis(500));
        let huge = BackoffPolicy {
            max_delay: Duration::MAX,
            ..policy(100, 1e300, 0)
        };
        assert_eq!(huge.compute_delay(5), Duration::MAX);
        let negative = policy(100, -3.0, 500);
        assert_eq!(negative.compute_delay(2), Duration::ZERO);
    }

    #[test]
    fn trip_threshold() {
        assert!(!BackoffPolicy::default().is_tripped(u32::MAX));
        let p = BackoffPolicy::with_trip(3);
        assert!(!p.is_tripped(2));
        assert!(p.is_tripped(3));
        assert!(p.is_tripped(4));
        assert!(BackoffPolicy::with_trip(0).is_tripped(0));
        assert!(BackoffPolicy::with_trip(0).is_tripped(1));
    }
}
