//! Circuit breakers: stop calling a failing dependency for a while.
//!
//! A [`CircuitBreaker`] counts consecutive failures. After
//! [`failure_threshold`](CircuitPolicy::failure_threshold) of them it *opens* and rejects
//! calls for [`reset_timeout`](CircuitPolicy::reset_timeout); then it lets up to
//! [`half_open_max_calls`](CircuitPolicy::half_open_max_calls) probe calls through, and
//! closes again once that many succeed (one probe failure reopens it).
//!
//! Attach one to tasks with [`TaskConfig::with_circuit_breaker`](crate::TaskConfig::with_circuit_breaker);
//! the retry loop then asks it for a [`Permit`] before every attempt. Clones share state,
//! so one breaker can guard many tasks and many concurrent runs.
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let breaker = Arc::new(CircuitBreaker::new(CircuitPolicy {
//!     failure_threshold: 2,
//!     reset_timeout: Duration::from_secs(30),
//!     half_open_max_calls: 1,
//! }));
//! for _ in 0..2 {
//!     let permit = breaker.try_acquire()?;
//!     breaker.record_failure(permit);
//! }
//! assert!(matches!(breaker.state(), CircuitState::Open { .. }));
//! assert_eq!(breaker.try_acquire().unwrap_err().category(), "circuit_open");
//! # Ok::<(), CanoError>(())
//! ```

use crate::error::CanoError;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When a [`CircuitBreaker`] opens and how it recovers.
#[derive(Debug, Clone)]
pub struct CircuitPolicy {
    /// Consecutive failures (while closed) that open the breaker. Must be at least 1.
    pub failure_threshold: u32,
    /// How long the breaker stays open before letting probe calls through.
    pub reset_timeout: Duration,
    /// Probe calls allowed at once while half-open, and successes needed to close.
    /// Must be at least 1.
    pub half_open_max_calls: u32,
}

impl Default for CircuitPolicy {
    /// Five failures, thirty seconds open, one probe.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(30),
            half_open_max_calls: 1,
        }
    }
}

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls pass through; failures are counted.
    Closed,
    /// Calls are rejected until `until`.
    Open {
        /// When probe calls will be allowed again, on the engine's clock: Tokio's, so a
        /// paused runtime clock (`tokio::time::pause`) pauses the breaker too.
        until: Instant,
    },
    /// A limited number of probe calls pass through.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    consecutive_failures: u32,
    half_open_in_flight: u32,
    half_open_successes: u32,
    epoch: u64,
}

impl Inner {
    fn transition(&mut self, to: CircuitState) {
        if crate::instrument::enabled() {
            crate::instrument::circuit_transition(match (&self.state, &to) {
                (CircuitState::Closed, _) => "closed_to_open",
                (CircuitState::Open { .. }, _) => "open_to_halfopen",
                (CircuitState::HalfOpen, CircuitState::Closed) => "halfopen_to_closed",
                (CircuitState::HalfOpen, _) => "halfopen_to_open",
            });
        }
        #[cfg(feature = "tracing")]
        {
            let (from, next) = (state_name(&self.state), state_name(&to));
            tracing::info!("circuit breaker transition: {from} -> {next}");
        }
        self.state = to;
        self.half_open_in_flight = 0;
        self.half_open_successes = 0;
        self.epoch = self.epoch.wrapping_add(1);
    }
}

#[cfg(feature = "tracing")]
fn state_name(s: &CircuitState) -> &'static str {
    match s {
        CircuitState::Closed => "Closed",
        CircuitState::Open { .. } => "Open",
        CircuitState::HalfOpen => "HalfOpen",
    }
}

/// A shared circuit breaker. See the [module docs](self).
///
/// `Clone` is shallow: clones share one state.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Arc<Mutex<Inner>>,
    policy: CircuitPolicy,
}

impl CircuitBreaker {
    /// A closed breaker with `policy`.
    ///
    /// # Panics
    /// If `failure_threshold` or `half_open_max_calls` is 0, or `half_open_max_calls`
    /// exceeds `u32::MAX / 2`.
    #[track_caller]
    pub fn new(policy: CircuitPolicy) -> Self {
        assert!(
            policy.failure_threshold >= 1,
            "CircuitPolicy::failure_threshold must be >= 1; 0 would make the breaker trip semantics nonsensical"
        );
        assert!(
            policy.half_open_max_calls >= 1,
            "CircuitPolicy::half_open_max_calls must be >= 1; 0 deadlocks the breaker in HalfOpen (no trial would ever be admitted)"
        );
        assert!(
            policy.half_open_max_calls <= u32::MAX / 2,
            "CircuitPolicy::half_open_max_calls must be <= {}; got {} (values near u32::MAX may prevent the breaker from ever closing)",
            u32::MAX / 2,
            policy.half_open_max_calls
        );
        Self {
            inner: Arc::new(Mutex::new(Inner {
                state: CircuitState::Closed,
                consecutive_failures: 0,
                half_open_in_flight: 0,
                half_open_successes: 0,
                epoch: 0,
            })),
            policy,
        }
    }

    /// The policy this breaker was built with.
    pub fn policy(&self) -> &CircuitPolicy {
        &self.policy
    }

    /// The stored state. An `Open` breaker whose deadline has passed still reports
    /// `Open` until the next [`try_acquire`](Self::try_acquire) promotes it.
    pub fn state(&self) -> CircuitState {
        self.lock().state
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("circuit breaker mutex poisoned")
    }

    /// Ask to make a call. On success, report the outcome with
    /// [`record_success`](Self::record_success) or [`record_failure`](Self::record_failure);
    /// dropping the permit counts as a failure.
    ///
    /// # Errors
    /// [`CanoError::CircuitOpen`] when the breaker is open, or half-open with every probe
    /// slot taken.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, CanoError> {
        let mut inner = self.lock();
        if let CircuitState::Open { until } = inner.state
            && crate::clock::now() >= until
        {
            inner.transition(CircuitState::HalfOpen);
        }
        let epoch = inner.epoch;
        let was_half_open = match inner.state {
            CircuitState::Closed => false,
            CircuitState::Open { .. } => {
                crate::instrument::circuit_acquire("rejected_open");
                return Err(CanoError::circuit_open(
                    "circuit breaker open: rejecting call",
                ));
            }
            CircuitState::HalfOpen => {
                if inner.half_open_in_flight >= self.policy.half_open_max_calls {
                    crate::instrument::circuit_acquire("rejected_half_open_busy");
                    // Distinct from "open": see `CanoError::is_circuit_half_open_busy`.
                    return Err(CanoError::circuit_open(crate::error::HALF_OPEN_BUSY));
                }
                inner.half_open_in_flight += 1;
                true
            }
        };
        drop(inner);
        crate::instrument::circuit_acquire("admitted");
        Ok(Permit {
            breaker: Arc::clone(self),
            was_half_open,
            consumed: false,
            epoch,
        })
    }

    /// Report that the call made under `permit` succeeded.
    pub fn record_success(&self, mut permit: Permit) {
        permit.consumed = true;
        crate::instrument::circuit_outcome(true);
        let mut inner = self.lock();
        if !self.settle(&mut inner, &permit) {
            return;
        }
        match inner.state {
            CircuitState::Closed => inner.consecutive_failures = 0,
            CircuitState::HalfOpen => {
                inner.half_open_successes = inner.half_open_successes.saturating_add(1);
                if inner.half_open_successes >= self.policy.half_open_max_calls {
                    inner.consecutive_failures = 0;
                    inner.transition(CircuitState::Closed);
                }
            }
            CircuitState::Open { .. } => debug_assert!(false, "success recorded while open"),
        }
    }

    /// Report that the call made under `permit` failed.
    pub fn record_failure(&self, mut permit: Permit) {
        permit.consumed = true;
        self.fail(&permit);
    }

    fn fail(&self, permit: &Permit) {
        crate::instrument::circuit_outcome(false);
        let mut inner = self.lock();
        if !self.settle(&mut inner, permit) {
            return;
        }
        match inner.state {
            CircuitState::Closed => {
                inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
                if inner.consecutive_failures >= self.policy.failure_threshold {
                    inner.transition(CircuitState::Open {
                        until: self.reopen_at(),
                    });
                }
            }
            CircuitState::HalfOpen => inner.transition(CircuitState::Open {
                until: self.reopen_at(),
            }),
            CircuitState::Open { .. } => debug_assert!(false, "failure recorded while open"),
        }
    }

    /// When a breaker opening now lets probe calls through again. A `reset_timeout` too
    /// large for the clock (`Duration::MAX`, say) keeps it open for a century instead of
    /// overflowing.
    fn reopen_at(&self) -> Instant {
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
        let now = crate::clock::now();
        now.checked_add(self.policy.reset_timeout)
            .or_else(|| now.checked_add(CENTURY))
            .unwrap_or(now)
    }

    /// Release the permit's probe slot. Returns `false` for a stale permit (issued
    /// before the last transition), whose outcome is ignored.
    fn settle(&self, inner: &mut Inner, permit: &Permit) -> bool {
        if permit.epoch != inner.epoch {
            return false;
        }
        if permit.was_half_open && inner.half_open_in_flight > 0 {
            inner.half_open_in_flight -= 1;
        }
        true
    }
}

impl crate::resource::Resource for CircuitBreaker {}

/// Permission to make one call through a [`CircuitBreaker`].
///
/// Hand it back with [`CircuitBreaker::record_success`] or
/// [`CircuitBreaker::record_failure`]; dropping it unused records a failure.
#[must_use = "drop a Permit only as a deliberate failure signal; pass it to record_success or record_failure to indicate the call outcome"]
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    was_half_open: bool,
    consumed: bool,
    epoch: u64,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("was_half_open", &self.was_half_open)
            .field("consumed", &self.consumed)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.consumed {
            self.consumed = true;
            self.breaker.fail(self);
        }
    }
}
