//! The engine's metric hooks: one function per thing the engine counts, called from the
//! one place that does it (the run loop, the attempt path, the circuit breaker, the
//! store calls, the rollback, the processing models, the scheduler, the rate limiters).
//!
//! Without the `metrics` feature every hook is an empty inline function. With it, a hook
//! does nothing — and formats nothing — until metrics are switched on
//! ([`crate::metrics::enable`], which [`crate::metrics::describe`] and
//! `MetricsObserver::new` call): one relaxed atomic load. What each metric means, and the
//! label policy, is documented in [`crate::metrics`].

#[cfg(feature = "metrics")]
pub(crate) use on::*;

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;

/// Label values of the small, closed sets the hooks use.
#[allow(dead_code)] // without the feature the values are passed to empty hooks
pub(crate) mod outcome {
    pub(crate) const SUCCESS: &str = "success";
    pub(crate) const FAILURE: &str = "failure";
    pub(crate) const TIMEOUT: &str = "timeout";
    pub(crate) const PANIC: &str = "panic";
    pub(crate) const CANCELLED: &str = "cancelled";
}

#[cfg(not(feature = "metrics"))]
#[allow(dead_code, clippy::missing_const_for_fn)]
mod off {
    use crate::error::CanoError;
    use std::time::Duration;

    #[inline(always)]
    pub(crate) fn enabled() -> bool {
        false
    }
    /// A run being measured (nothing without the feature).
    pub(crate) struct RunMeter;
    impl RunMeter {
        #[inline(always)]
        pub(crate) fn finish<T>(self, _result: &Result<T, CanoError>) {}
    }
    #[inline(always)]
    pub(crate) fn run_started() -> Option<RunMeter> {
        None
    }
    #[inline(always)]
    pub(crate) fn state_ran(_state: &str, _kind: &'static str, _elapsed: Duration) {}
    #[inline(always)]
    pub(crate) fn attempt(_outcome: &'static str) {}
    #[inline(always)]
    pub(crate) fn circuit_rejected() {}
    #[inline(always)]
    pub(crate) fn circuit_transition(_transition: &'static str) {}
    #[inline(always)]
    pub(crate) fn circuit_acquire(_result: &'static str) {}
    #[inline(always)]
    pub(crate) fn circuit_outcome(_success: bool) {}
    #[inline(always)]
    pub(crate) fn split_branch(_success: bool) {}
    #[inline(always)]
    pub(crate) fn checkpoint_append(_ok: bool) {}
    #[inline(always)]
    pub(crate) fn checkpoint_clear(_ok: bool) {}
    #[inline(always)]
    pub(crate) fn compensation(_ok: bool) {}
    #[inline(always)]
    pub(crate) fn compensation_drain(_clean: bool) {}
    #[inline(always)]
    pub(crate) fn poll_iteration(_ready: bool) {}
    #[inline(always)]
    pub(crate) fn batch_run(_ok: bool, _items_ok: usize, _items_err: usize) {}
    #[inline(always)]
    pub(crate) fn step_iteration(_done: bool) {}
    #[inline(always)]
    pub(crate) fn stream_run(_outcome: &'static str) {}
    #[inline(always)]
    pub(crate) fn stream_item(_ok: bool) {}
    #[inline(always)]
    pub(crate) fn stream_window(_outputs: usize) {}
    #[inline(always)]
    pub(crate) fn scheduler_flow_run(_flow: &str, _outcome: &'static str, _elapsed: Duration) {}
    #[inline(always)]
    pub(crate) fn scheduler_flow_backoff(_flow: &str, _tripped: bool) {}
    #[inline(always)]
    pub(crate) fn rate_limit_acquired(_tokens: u64) {}
    #[inline(always)]
    pub(crate) fn rate_limit_throttled(_tier: &str, _waited: Option<Duration>) {}
}

#[cfg(feature = "metrics")]
mod on {
    use super::outcome;
    use crate::error::CanoError;
    use crate::metrics::names;
    use ::metrics::{counter, gauge, histogram};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// Whether the engine's metrics are switched on.
    pub(crate) static ENABLED: AtomicBool = AtomicBool::new(false);

    #[inline(always)]
    pub(crate) fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    /// A run being measured: counted active from [`run_started`] until dropped; its
    /// outcome and duration are recorded by [`finish`](Self::finish).
    pub(crate) struct RunMeter {
        started: Instant,
    }

    impl RunMeter {
        /// Record the run's outcome and duration.
        pub(crate) fn finish<T>(self, result: &Result<T, CanoError>) {
            let outcome = match result {
                Ok(_) => outcome::SUCCESS,
                Err(e) if e.is_cancelled() => outcome::CANCELLED,
                Err(e) if e.is_workflow_timeout() => outcome::TIMEOUT,
                Err(_) => outcome::FAILURE,
            };
            counter!(names::WORKFLOW_RUNS, "outcome" => outcome).increment(1);
            histogram!(names::WORKFLOW_DURATION).record(self.started.elapsed().as_secs_f64());
        }
    }

    impl Drop for RunMeter {
        fn drop(&mut self) {
            gauge!(names::WORKFLOW_ACTIVE).decrement(1.0);
        }
    }

    /// A run starts: `Some` meter when metrics are on.
    #[inline]
    pub(crate) fn run_started() -> Option<RunMeter> {
        if !enabled() {
            return None;
        }
        gauge!(names::WORKFLOW_ACTIVE).increment(1.0);
        Some(RunMeter {
            started: Instant::now(),
        })
    }

    pub(crate) fn state_ran(state: &str, kind: &'static str, elapsed: Duration) {
        histogram!(names::TASK_DURATION, "state" => state.to_string(), "kind" => kind)
            .record(elapsed.as_secs_f64());
    }

    #[inline]
    pub(crate) fn attempt(outcome: &'static str) {
        if enabled() {
            counter!(names::TASK_ATTEMPTS, "outcome" => outcome).increment(1);
        }
    }

    #[inline]
    pub(crate) fn circuit_rejected() {
        if enabled() {
            counter!(names::CIRCUIT_REJECTIONS).increment(1);
        }
    }

    #[inline]
    pub(crate) fn circuit_transition(transition: &'static str) {
        if enabled() {
            counter!(names::CIRCUIT_TRANSITIONS, "transition" => transition).increment(1);
        }
    }

    #[inline]
    pub(crate) fn circuit_acquire(result: &'static str) {
        if enabled() {
            counter!(names::CIRCUIT_ACQUIRES, "result" => result).increment(1);
        }
    }

    #[inline]
    pub(crate) fn circuit_outcome(success: bool) {
        if enabled() {
            counter!(names::CIRCUIT_OUTCOMES, "outcome" => success_or_failure(success))
                .increment(1);
        }
    }

    #[inline]
    pub(crate) fn split_branch(success: bool) {
        if enabled() {
            counter!(names::SPLIT_BRANCH_RESULTS, "result" => success_or_failure(success))
                .increment(1);
        }
    }

    #[inline]
    pub(crate) fn checkpoint_append(ok: bool) {
        if enabled() {
            counter!(names::CHECKPOINT_APPENDS, "result" => ok_or_error(ok)).increment(1);
        }
    }

    #[inline]
    pub(crate) fn checkpoint_clear(ok: bool) {
        if enabled() {
            counter!(names::CHECKPOINT_CLEARS, "result" => ok_or_error(ok)).increment(1);
        }
    }

    #[inline]
    pub(crate) fn compensation(ok: bool) {
        if enabled() {
            counter!(names::COMPENSATIONS_RUN, "result" => ok_or_error(ok)).increment(1);
        }
    }

    #[inline]
    pub(crate) fn compensation_drain(clean: bool) {
        if enabled() {
            let outcome = if clean { "clean" } else { "partial" };
            counter!(names::COMPENSATION_DRAINS, "outcome" => outcome).increment(1);
        }
    }

    #[inline]
    pub(crate) fn poll_iteration(ready: bool) {
        if enabled() {
            let result = if ready { "ready" } else { "pending" };
            counter!(names::POLL_ITERATIONS, "result" => result).increment(1);
        }
    }

    #[inline]
    pub(crate) fn batch_run(ok: bool, items_ok: usize, items_err: usize) {
        if enabled() {
            counter!(names::BATCH_RUNS, "outcome" => success_or_failure(ok)).increment(1);
            counter!(names::BATCH_ITEMS, "result" => "ok").increment(items_ok as u64);
            counter!(names::BATCH_ITEMS, "result" => "err").increment(items_err as u64);
        }
    }

    #[inline]
    pub(crate) fn step_iteration(done: bool) {
        if enabled() {
            let result = if done { "done" } else { "more" };
            counter!(names::STEP_ITERATIONS, "result" => result).increment(1);
        }
    }

    #[inline]
    pub(crate) fn stream_run(outcome: &'static str) {
        if enabled() {
            counter!(names::STREAM_RUNS, "outcome" => outcome).increment(1);
        }
    }

    #[inline]
    pub(crate) fn stream_item(ok: bool) {
        if enabled() {
            counter!(names::STREAM_ITEMS, "result" => ok_or_error(ok)).increment(1);
        }
    }

    #[inline]
    pub(crate) fn stream_window(outputs: usize) {
        if enabled() {
            counter!(names::STREAM_WINDOWS).increment(1);
            histogram!(names::STREAM_WINDOW_SIZE).record(outputs as f64);
        }
    }

    #[cfg_attr(not(feature = "scheduler"), allow(dead_code))]
    pub(crate) fn scheduler_flow_run(flow: &str, outcome: &'static str, elapsed: Duration) {
        if enabled() {
            let flow = flow.to_string();
            counter!(names::SCHEDULER_FLOW_RUNS, "flow" => flow.clone(), "outcome" => outcome)
                .increment(1);
            histogram!(names::SCHEDULER_FLOW_DURATION, "flow" => flow)
                .record(elapsed.as_secs_f64());
        }
    }

    #[cfg_attr(not(feature = "scheduler"), allow(dead_code))]
    pub(crate) fn scheduler_flow_backoff(flow: &str, tripped: bool) {
        if enabled() {
            let name = if tripped {
                names::SCHEDULER_FLOW_TRIPPED
            } else {
                names::SCHEDULER_FLOW_BACKOFF
            };
            counter!(name, "flow" => flow.to_string()).increment(1);
        }
    }

    #[inline]
    pub(crate) fn rate_limit_acquired(tokens: u64) {
        if enabled() {
            counter!(names::RATE_LIMITER_ACQUIRED).increment(1);
            counter!(names::RATE_LIMITER_TOKENS).increment(tokens);
        }
    }

    /// A limiter (tier `tier`) throttled a request: it waited `waited`, or was rejected.
    pub(crate) fn rate_limit_throttled(tier: &str, waited: Option<Duration>) {
        if enabled() {
            let result = if waited.is_some() {
                "waited"
            } else {
                "rejected"
            };
            counter!(names::RATE_LIMITER_THROTTLED, "result" => result, "tier" => tier.to_string())
                .increment(1);
            if let Some(waited) = waited {
                histogram!(names::RATE_LIMITER_WAIT).record(waited.as_secs_f64());
            }
        }
    }

    fn success_or_failure(success: bool) -> &'static str {
        if success {
            outcome::SUCCESS
        } else {
            outcome::FAILURE
        }
    }

    fn ok_or_error(ok: bool) -> &'static str {
        if ok { "ok" } else { "error" }
    }
}
