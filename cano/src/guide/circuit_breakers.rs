//! Circuit breakers: stop calling a dependency that keeps failing.
//!
//! Example: `cano/examples/circuit_breaker.rs`
//! (`cargo run -p cano --example circuit_breaker`): a dependency is down, the breaker
//! opens after two failures, later runs are rejected without calling it, and once it is
//! back a probe call closes the breaker again.
//!
//! # Why
//!
//! Retries help with a blip. When a dependency is down for minutes, retrying every call
//! only adds load to it and latency to you. A [`CircuitBreaker`](crate::CircuitBreaker)
//! counts consecutive failures; once there are `failure_threshold` of them it *opens* and
//! rejects calls at once, without running the task, for `reset_timeout`. Then it turns
//! *half-open*: up to `half_open_max_calls` probe calls go through; if that many succeed
//! the breaker closes, and if one fails it opens again for another `reset_timeout`.
//!
//! # Attaching a breaker to tasks
//!
//! Create the breaker once, share it through an `Arc`, and hand it to the `config()` of
//! every task that calls the dependency. The state is shared: a trip caused by one task
//! (or one run) rejects all of them.
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Geocode, Done }
//!
//! struct Geocode {
//!     maps_api: Arc<CircuitBreaker>,
//! }
//!
//! #[task(state = Step)]
//! impl Geocode {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::minimal().with_circuit_breaker(Arc::clone(&self.maps_api))
//!     }
//!     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
//!         Err(CanoError::task_execution("maps API: 503 Service Unavailable"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let maps_api = Arc::new(CircuitBreaker::new(CircuitPolicy {
//!     failure_threshold: 2,
//!     reset_timeout: Duration::from_secs(30),
//!     half_open_max_calls: 1,
//! }));
//! let workflow = Workflow::bare()
//!     .register(Step::Geocode, Geocode { maps_api: Arc::clone(&maps_api) })
//!     .add_exit_state(Step::Done);
//!
//! // Two failing runs trip the breaker...
//! for _ in 0..2 {
//!     let err = workflow.orchestrate(Step::Geocode).await.unwrap_err();
//!     assert!(matches!(err, CanoError::TaskExecution(_)));
//! }
//! assert!(matches!(maps_api.state(), CircuitState::Open { .. }));
//!
//! // ...and the next run is rejected without calling the API.
//! let err = workflow.orchestrate(Step::Geocode).await.unwrap_err();
//! assert_eq!(err.to_string(), "Circuit open: circuit breaker open: rejecting call");
//! # }
//! ```
//!
//! # How it combines with retries
//!
//! The retry loop asks the breaker for a permit before *every* attempt, including the
//! first, and reports each attempt's outcome to it (a timed-out attempt counts as a
//! failure).
//!
//! * An open breaker ends the loop at once with its own `CircuitOpen` error — not wrapped
//!   in `RetryExhausted`, and without using up attempts. Observers see `on_circuit_open`.
//! * If a task's own failures trip the breaker in the middle of its retries, the next
//!   attempt is rejected: the task ran as many times as the threshold allowed, and the
//!   run fails with `CircuitOpen`.
//! * A `CircuitOpen` error that a task *returns itself* is an ordinary task error, retried
//!   like any other.
//!
//! So a `CircuitOpen` error from a run means "we did not even try"; handle it as "the
//! dependency is known to be down, come back after `reset_timeout`".
//!
//! # Policy
//!
//! [`CircuitPolicy`](crate::CircuitPolicy) has three fields (the default is 5 failures,
//! 30 s open, 1 probe):
//!
//! * `failure_threshold`: consecutive failures, while closed, that open the breaker. Any
//!   success resets the count.
//! * `reset_timeout`: how long it stays open.
//! * `half_open_max_calls`: how many probes may run at once while half-open, and how many
//!   must succeed to close it.
//!
//! `CircuitBreaker::new` panics on a zero `failure_threshold` or `half_open_max_calls`;
//! these are programming errors, caught the first time the code runs.
//!
//! Two details: [`state`](crate::CircuitBreaker::state) reports `Open` until the next
//! call after `reset_timeout` moves the breaker to half-open (it changes state only when
//! asked for a permit); and the breaker measures `reset_timeout` on the real clock
//! (`std::time::Instant`), so a paused Tokio clock in a test does not advance it (see
//! [`testing`](super::testing)).
//!
//! # Using a breaker by hand
//!
//! A breaker can also guard one call inside a task, or code outside any workflow.
//! [`try_acquire`](crate::CircuitBreaker::try_acquire) gives a permit; report the outcome
//! with `record_success` or `record_failure`. Dropping a permit without reporting counts
//! as a failure. Because the breaker is a [`Resource`](crate::Resource) too, it can live
//! in [`Resources`](crate::Resources) and be fetched with `res.get::<CircuitBreaker, _>(…)`.
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::Arc;
//!
//! async fn send_invoice(breaker: &Arc<CircuitBreaker>) -> Result<(), CanoError> {
//!     let permit = breaker.try_acquire()?; // CircuitOpen while the mail server is down
//!     match deliver().await {
//!         Ok(()) => {
//!             breaker.record_success(permit);
//!             Ok(())
//!         }
//!         Err(e) => {
//!             breaker.record_failure(permit);
//!             Err(e)
//!         }
//!     }
//! }
//! # async fn deliver() -> Result<(), CanoError> { Ok(()) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! # let breaker = Arc::new(CircuitBreaker::new(CircuitPolicy::default()));
//! # send_invoice(&breaker).await?;
//! # assert_eq!(breaker.state(), CircuitState::Closed);
//! # Ok(())
//! # }
//! ```
