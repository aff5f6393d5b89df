//! Retries and timeouts.
//!
//! Examples: `cano/examples/checkout.rs` (`cargo run -p cano --example checkout`) retries
//! a flaky payment call; `cano/examples/poll_task.rs`
//! (`cargo run -p cano --example poll_task`) bounds a wait with an attempt timeout.
//!
//! # The default is four attempts
//!
//! Every task has a [`TaskConfig`](crate::TaskConfig), returned by its `config` method
//! and read once, when the task is registered. **If you do not write `config`, the task
//! gets `TaskConfig::default()`: up to four attempts with exponential backoff (about 100,
//! 200 and 400 ms between them, with 10 % jitter).** So a failing task fails after
//! roughly 0.7 s, and its error arrives wrapped:
//!
//! ```text
//! Retry exhausted: Task failed after 4 attempt(s): Task execution error: card declined
//! ```
//!
//! That is the right default for calls to the outside world, and the wrong one for a step
//! whose failure means "this input is bad" — retrying a declined card or a missing
//! resource only delays the error. Say what each task needs:
//!
//! | you want | write |
//! |---|---|
//! | one attempt, the error as is | `TaskConfig::minimal()` |
//! | `n` retries after a fixed delay | `TaskConfig::new().with_fixed_retry(n, delay)` |
//! | `n` retries with exponential backoff (100 ms, doubling, capped at 30 s, 10 % jitter) | `TaskConfig::new().with_exponential_retry(n)` |
//! | your own backoff curve | `TaskConfig::new().with_retry(RetryMode::exponential_custom(n, base, factor, cap, jitter))` |
//! | a time limit per attempt | `.with_attempt_timeout(d)` on any of the above |
//! | no retry for errors that cannot heal | `fn is_retryable(&self, error, attempt) -> bool` returning `false` for them |
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Charge, Done }
//!
//! /// The payment gateway times out twice, then answers.
//! struct Charge {
//!     calls: AtomicU32,
//! }
//!
//! #[task(state = Step)]
//! impl Charge {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::new()
//!             .with_fixed_retry(3, Duration::from_millis(10))
//!             .with_attempt_timeout(Duration::from_secs(2))
//!     }
//!
//!     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
//!         if self.calls.fetch_add(1, Ordering::SeqCst) < 2 {
//!             return Err(CanoError::task_execution("gateway timed out"));
//!         }
//!         Ok(TaskResult::Single(Step::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let workflow = Workflow::bare()
//!     .register(Step::Charge, Charge { calls: AtomicU32::new(0) })
//!     .add_exit_state(Step::Done);
//! assert_eq!(workflow.orchestrate(Step::Charge).await?, Step::Done);
//! # Ok(())
//! # }
//! ```
//!
//! How the retry loop behaves:
//!
//! * Each attempt calls `run` afresh; there is no delay before the first attempt and none
//!   after the last.
//! * When every attempt fails, the error is `RetryExhausted` with the text
//!   `Task failed after {n} attempt(s): {last error}` — unless only one attempt was
//!   allowed, in which case the task's own error comes back unchanged. Match on
//!   [`CanoError::category`](crate::CanoError::category) or the variant rather than on the
//!   text.
//! * A panic is not retried: it ends the loop at once as `TaskExecution("panic: …")`.
//! * A delay of zero retries immediately. (cano 0.12.0 waited for the next timer tick,
//!   about 1 ms, even then; see `COMPATIBILITY.md`.)
//! * Observers hear about every retry (`on_retry`, with the number of the attempt that
//!   failed), then the final `on_task_success` or `on_task_failure`.
//!
//! Processing models have their own defaults: poll tasks default to
//! `TaskConfig::minimal()`; router, batch, stepped and saga tasks to the four-attempt
//! default. See [`processing_models`](super::processing_models) for what one "attempt" is
//! for each.
//!
//! # Errors not worth retrying
//!
//! A task says which errors are worth another attempt with `is_retryable(&self, error,
//! attempt)` (`attempt` is the number of the attempt that failed, from 1). Return `false`
//! for a permanent failure: the loop stops at once and the error comes back as it is (not
//! wrapped in `RetryExhausted`); in a saga, the rollback starts. The default says yes to
//! every error. It is asked only while the retry policy allows another attempt, and each
//! model asks it where its retries happen:
//!
//! | model | asked about |
//! |---|---|
//! | [`Task`](crate::Task::is_retryable), [`CompensatableTask`](crate::CompensatableTask::is_retryable) | a failed `run` |
//! | [`RouterTask`](crate::RouterTask::is_retryable) | a failed `route` |
//! | [`PollTask`](crate::PollTask::is_retryable) | the error that ended the poll loop (the loop's own `on_poll_error` budget does not ask) |
//! | [`BatchTask`](crate::BatchTask::is_retryable) | a failed item (under `item_retry`) and a failed `load` or `finish` (under `config`) |
//! | [`SteppedTask`](crate::SteppedTask::is_retryable) | a failed step, with `register_stepped` (with plain `register`, the whole loop is retried without asking) |
//! | [`TimerTask`](crate::TimerTask::is_retryable) | a failed `wait` or `after_wait` (never the sleep) |
//! | [`SignalTask`](crate::SignalTask::is_retryable) | a failed `on_signal` (never the wait) |
//!
//! A stream task has no such method: it is never retried (a retry would read its source
//! again).
//!
//! # Three kinds of timeout
//!
//! | level | set with | bounds | error when it fires |
//! |---|---|---|---|
//! | attempt | `TaskConfig::with_attempt_timeout(d)` | one call of the task's `run`; each retry gets a fresh `d` | `Timeout error: task attempt exceeded attempt_timeout` (inside `RetryExhausted` when retries were allowed) |
//! | split | `JoinConfig::with_timeout(d)` | the whole fan-out of one split state | `Workflow error: Split task timeout exceeded` |
//! | run | `Workflow::with_timeout(d)` | the state machine of one `orchestrate` or `resume_from` (not resource setup and teardown) | `Workflow error: Workflow timeout exceeded` |
//!
//! A timeout cancels the work it bounds: the task's future is dropped at its next
//! `.await` (a task that blocks its thread without awaiting cannot be cancelled). What the
//! task did before that stays done. A timed-out attempt counts as a failure for retries
//! and for a circuit breaker.
//!
//! When the run timeout fires, the run stops where it is: no saga compensation runs and
//! the checkpoint log is kept, so the run can be resumed; resources are still torn down.
//!
//! ```
//! use cano::prelude::*;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Export, Done }
//!
//! struct Export;
//!
//! #[task(state = Step)]
//! impl Export {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::minimal().with_attempt_timeout(Duration::from_millis(20))
//!     }
//!     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
//!         tokio::time::sleep(Duration::from_secs(60)).await; // a hung upstream
//!         Ok(TaskResult::Single(Step::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let workflow = Workflow::bare().register(Step::Export, Export).add_exit_state(Step::Done);
//! let err = workflow.orchestrate(Step::Export).await.unwrap_err();
//! assert!(matches!(err, CanoError::Timeout(_)));
//! assert_eq!(err.to_string(), "Timeout error: task attempt exceeded attempt_timeout");
//! # }
//! ```
//!
//! There is no per-state timeout on the workflow itself: bound a state with its task's
//! attempt timeout (and its retries), a split state with its join timeout.
//!
//! # Things the retry loop does not do
//!
//! * It does not retry a step of work *inside* a task: one attempt is one whole call of
//!   `run`. Make the call idempotent, or split the work into states.
//! * It does not spread retries over time beyond the delays you set; if a dependency
//!   needs minutes to recover, a [circuit breaker](super::circuit_breakers) or the
//!   scheduler's [backoff](super::scheduler) fits better than long retry delays.
//! * A compensation (see [`sagas`](super::sagas)) is never retried; only the task's
//!   attempt timeout applies to it.
//!
//! # Rate limits
//!
//! A retry loop reacts to failures; a dependency with a published quota ("5 calls per
//! second and 20 per minute") is better served by not exceeding it.
//! [`cano::rate_limit`](crate::rate_limit) has a token bucket
//! ([`RateLimiter`](crate::rate_limit::RateLimiter)), a fixed window
//! ([`WindowedRateLimiter`](crate::rate_limit::WindowedRateLimiter)) and a multi-tier
//! limiter ([`MultiRateLimiter`](crate::rate_limit::MultiRateLimiter)) that reserves every
//! tier or none. They are resources: put one in the workflow's [`Resources`](crate::Resources)
//! and call `acquire().await` in the task before the call — it sleeps exactly until
//! capacity exists (on Tokio's clock, so a paused-clock test asserts exact waits) — or
//! `try_acquire()` to get back which tier refused and how long to wait. The example
//! `rate_limiter` (`cargo run -p cano --example rate_limiter`) holds a split of twelve
//! API calls to such a quota.
