//! Retry policy ([`RetryMode`]), per-task settings ([`TaskConfig`]) and the retry loop
//! every dispatch path shares ([`run_with_retries`]).

use super::attempt::Exhausted;
use crate::circuit::CircuitBreaker;
use crate::error::CanoError;
use crate::observer::WorkflowObserver;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How often, and after what delay, a failed task attempt is retried.
///
/// ```
/// use cano::RetryMode;
/// use std::time::Duration;
///
/// let fixed = RetryMode::fixed(2, Duration::from_millis(50));
/// assert_eq!(fixed.max_attempts(), 3);
/// assert_eq!(fixed.delay_for_attempt(1), Some(Duration::from_millis(50)));
/// assert_eq!(fixed.delay_for_attempt(2), None);
///
/// let backoff = RetryMode::exponential_custom(2, Duration::from_millis(50), 3.0, Duration::from_secs(5), 0.0);
/// assert_eq!(backoff.delay_for_attempt(0), Some(Duration::from_millis(50)));
/// assert_eq!(backoff.delay_for_attempt(1), Some(Duration::from_millis(150)));
/// ```
#[derive(Debug, Clone)]
pub enum RetryMode {
    /// One attempt, no retries.
    None,
    /// `retries` retries, each after the same `delay`.
    Fixed {
        /// Retries after the first attempt.
        retries: usize,
        /// Wait before each retry.
        delay: Duration,
    },
    /// Retries with exponentially growing, capped, jittered delays.
    ExponentialBackoff {
        /// Retries after the first attempt.
        max_retries: usize,
        /// Delay before the first retry (whole milliseconds are used).
        base_delay: Duration,
        /// Growth factor per retry.
        multiplier: f64,
        /// Cap applied before jitter.
        max_delay: Duration,
        /// Relative jitter: the delay is scaled by a random factor in `[1 - jitter, 1 + jitter]`.
        jitter: f64,
    },
}

impl RetryMode {
    /// `retries` retries with a fixed `delay` between attempts.
    pub fn fixed(retries: usize, delay: Duration) -> Self {
        Self::Fixed { retries, delay }
    }

    /// `max_retries` retries with backoff from 100 ms, doubling, capped at 30 s, 10 % jitter.
    pub fn exponential(max_retries: usize) -> Self {
        Self::ExponentialBackoff {
            max_retries,
            base_delay: Duration::from_millis(100),
            multiplier: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: 0.1,
        }
    }

    /// Exponential backoff with every parameter given; `jitter` is clamped to `[0.0, 1.0]`.
    pub fn exponential_custom(
        max_retries: usize,
        base_delay: Duration,
        multiplier: f64,
        max_delay: Duration,
        jitter: f64,
    ) -> Self {
        Self::ExponentialBackoff {
            max_retries,
            base_delay,
            multiplier,
            max_delay,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// Total attempts: retries plus the first attempt.
    pub fn max_attempts(&self) -> usize {
        match self {
            Self::None => 1,
            Self::Fixed { retries, .. } => retries.saturating_add(1),
            Self::ExponentialBackoff { max_retries, .. } => max_retries.saturating_add(1),
        }
    }

    /// The wait before retry number `attempt` (0-based), or `None` when no such retry exists.
    pub fn delay_for_attempt(&self, attempt: usize) -> Option<Duration> {
        match self {
            Self::None => None,
            Self::Fixed { retries, delay } => (attempt < *retries).then_some(*delay),
            Self::ExponentialBackoff {
                max_retries,
                base_delay,
                multiplier,
                max_delay,
                jitter,
            } => {
                if attempt >= *max_retries {
                    return None;
                }
                let base_ms = base_delay.as_millis() as f64;
                let exp = base_ms * multiplier.powi(i32::try_from(attempt).unwrap_or(i32::MAX));
                let capped = exp.min(max_delay.as_millis() as f64);
                let factor = if *jitter > 0.0 {
                    1.0 + jitter * crate::util::unit_jitter()
                } else {
                    1.0
                };
                // `as` saturates: NaN -> 0, huge -> u64::MAX.
                let ms = (capped * factor).max(0.0) as u64;
                Some(Duration::from_millis(ms))
            }
        }
    }
}

impl Default for RetryMode {
    /// Three retries with exponential backoff: `RetryMode::exponential(3)`.
    fn default() -> Self {
        Self::exponential(3)
    }
}

/// Per-task execution settings: retries, per-attempt timeout, circuit breaker.
///
/// Returned by [`Task::config`](crate::Task::config) and read once at registration.
///
/// ```
/// use cano::prelude::*;
/// use std::time::Duration;
///
/// let cfg = TaskConfig::new()
///     .with_fixed_retry(3, Duration::from_millis(20))
///     .with_attempt_timeout(Duration::from_secs(2));
/// assert_eq!(cfg.retry_mode.max_attempts(), 4);
/// assert_eq!(TaskConfig::minimal().retry_mode.max_attempts(), 1);
/// ```
#[must_use]
#[derive(Clone, Default)]
pub struct TaskConfig {
    /// Retry policy. Default: [`RetryMode::default`] (4 attempts with backoff).
    pub retry_mode: RetryMode,
    /// Time limit for each attempt. Default: none.
    pub attempt_timeout: Option<Duration>,
    /// Breaker consulted before every attempt. Default: none.
    pub circuit_breaker: Option<Arc<CircuitBreaker>>,
    /// Observers notified of retries and breaker rejections (filled in by the workflow).
    pub observers: Option<Arc<[Arc<dyn WorkflowObserver>]>>,
    /// Name used in observer callbacks (filled in by the workflow).
    pub task_name: Option<Cow<'static, str>>,
}

impl TaskConfig {
    /// The default configuration (4 attempts with exponential backoff).
    pub fn new() -> Self {
        Self::default()
    }

    /// One attempt, no timeout, no breaker.
    pub fn minimal() -> Self {
        Self {
            retry_mode: RetryMode::None,
            ..Self::default()
        }
    }

    /// Set the retry policy.
    pub fn with_retry(mut self, retry_mode: RetryMode) -> Self {
        self.retry_mode = retry_mode;
        self
    }

    /// `retries` retries with a fixed `delay`.
    pub fn with_fixed_retry(self, retries: usize, delay: Duration) -> Self {
        self.with_retry(RetryMode::fixed(retries, delay))
    }

    /// `max_retries` retries with the default exponential backoff.
    pub fn with_exponential_retry(self, max_retries: usize) -> Self {
        self.with_retry(RetryMode::exponential(max_retries))
    }

    /// Limit each attempt to `timeout`; a timed-out attempt fails with
    /// [`CanoError::Timeout`] and may be retried.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Consult `breaker` before every attempt and report each outcome to it.
    pub fn with_circuit_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.circuit_breaker = Some(breaker);
        self
    }

    pub(crate) fn notify(&self, f: impl Fn(&dyn WorkflowObserver, &str)) {
        if let Some(observers) = &self.observers {
            let name = self.task_name.as_deref().unwrap_or("<task>");
            crate::observer::each(observers, |o| f(o, name));
        }
    }
}

/// Run `run_fn` under `config`: retries with backoff, per-attempt timeout and circuit
/// breaker.
///
/// * Up to [`RetryMode::max_attempts`] attempts; each calls `run_fn()` afresh.
/// * With a single allowed attempt the error is returned as is; otherwise exhaustion
///   yields [`CanoError::RetryExhausted`] with the text
///   `Task failed after {n} attempt(s): {last error}`.
/// * An open breaker stops the loop at once with its [`CanoError::CircuitOpen`] error.
/// * A zero delay between attempts retries immediately, without a timer.
///
/// Dropping the returned future cancels the current attempt (and counts a held breaker
/// permit as a failure).
///
/// ```
/// use cano::prelude::*;
/// use cano::task::run_with_retries;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let calls = AtomicU32::new(0);
/// let cfg = TaskConfig::new().with_fixed_retry(2, Duration::ZERO);
/// let out = run_with_retries(&cfg, || async {
///     if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(CanoError::generic("flaky")) } else { Ok(7) }
/// }).await;
/// assert_eq!(out, Ok(7));
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # }
/// ```
pub async fn run_with_retries<TState, F, Fut>(
    config: &TaskConfig,
    run_fn: F,
) -> Result<TState, CanoError>
where
    TState: Send + Sync,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<TState, CanoError>>,
{
    super::attempt::retry_loop(
        config,
        run_fn,
        super::attempt::retry_all,
        Exhausted::Wrapped,
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_delays_grow_and_cap() {
        let m = RetryMode::exponential_custom(
            5,
            Duration::from_millis(100),
            10.0,
            Duration::from_millis(500),
            0.0,
        );
        let d: Vec<_> = (0..6).map(|i| m.delay_for_attempt(i)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(d, vec![ms(100), ms(500), ms(500), ms(500), ms(500), None]);
    }

    #[test]
    fn jitter_spreads_delays_and_zero_jitter_does_not() {
        let jittered = RetryMode::exponential_custom(
            3,
            Duration::from_millis(1000),
            2.0,
            Duration::from_secs(10),
            0.5,
        );
        let draws: Vec<Duration> = (0..100)
            .map(|_| jittered.delay_for_attempt(0).unwrap())
            .collect();
        let lo = draws.iter().min().unwrap().as_millis();
        let hi = draws.iter().max().unwrap().as_millis();
        assert!(lo >= 500 && hi <= 1500, "{lo}..{hi}");
        assert!(hi - lo >= 200, "jitter must spread delays: {lo}..{hi}");
        let exact = RetryMode::exponential_custom(
            3,
            Duration::from_millis(1000),
            2.0,
            Duration::from_secs(10),
            0.0,
        );
        assert!((0..20).all(|_| exact.delay_for_attempt(1) == Some(Duration::from_millis(2000))));
    }

    #[test]
    fn jitter_is_clamped_and_bounded() {
        let m = RetryMode::exponential_custom(
            3,
            Duration::from_millis(100),
            2.0,
            Duration::from_secs(1),
            0.5,
        );
        for _ in 0..200 {
            let d = m.delay_for_attempt(0).unwrap().as_millis();
            assert!((50..=150).contains(&d), "{d}");
        }
        let RetryMode::ExponentialBackoff { jitter, .. } =
            RetryMode::exponential_custom(1, Duration::ZERO, 2.0, Duration::ZERO, 1.5)
        else {
            unreachable!()
        };
        assert_eq!(jitter, 1.0);
        let RetryMode::ExponentialBackoff { jitter, .. } =
            RetryMode::exponential_custom(1, Duration::ZERO, 2.0, Duration::ZERO, -0.5)
        else {
            unreachable!()
        };
        assert_eq!(jitter, 0.0);
    }

    #[test]
    fn huge_values_saturate_instead_of_panicking() {
        let m = RetryMode::ExponentialBackoff {
            max_retries: usize::MAX,
            base_delay: Duration::from_secs(u64::MAX / 4),
            multiplier: f64::MAX,
            max_delay: Duration::MAX,
            jitter: 3.0,
        };
        for a in [0, 1, 1000, usize::MAX - 1] {
            let _ = m.delay_for_attempt(a);
        }
        assert_eq!(
            RetryMode::fixed(usize::MAX, Duration::ZERO).max_attempts(),
            usize::MAX
        );
    }

    #[test]
    fn default_is_four_attempts() {
        assert_eq!(TaskConfig::default().retry_mode.max_attempts(), 4);
        assert_eq!(
            format!("{:?}", RetryMode::default()),
            "ExponentialBackoff { max_retries: 3, base_delay: 100ms, multiplier: 2.0, max_delay: 30s, jitter: 0.1 }"
        );
    }
}
