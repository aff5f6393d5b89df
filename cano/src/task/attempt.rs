//! The attempt path: the one place where a unit of work is attempted, retried and guarded.
//!
//! Every kind of work the engine runs goes through here: a state's task (from the run
//! loop), each member of a split, each step of a stepped task, each saga step, each batch
//! item, and [`run_with_retries`](super::run_with_retries). Per attempt it takes a circuit
//! breaker permit, applies the attempt timeout and reports the outcome to the breaker; per
//! failure it asks whether the error is worth another attempt
//! ([`Task::is_retryable`](super::Task::is_retryable)), notifies observers and waits the
//! retry delay on the engine's clock (Tokio's timer). [`guarded`] adds panic capture: a
//! panicking attempt ends the loop with an error and is not retried.
//!
//! The run loop and split members make a task's **first attempt bare** when nothing needs
//! to sit around it ([`is_plain`]): the attempt's future is polled directly, and only if it
//! fails does the (boxed) loop here take over with that failure ([`guarded`]'s `first`).
//! The results and events are the same as if the loop had made the first attempt.

use super::retry::TaskConfig;
use crate::error::CanoError;
use crate::observer::WorkflowObserver;
use crate::util::{CatchUnwind, panic_message};
use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

/// What one bare attempt returned, or the panic it raised.
pub(crate) type Attempt<T> = Result<Result<T, CanoError>, Box<dyn Any + Send>>;

/// What a loop whose every allowed attempt failed returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exhausted {
    /// `RetryExhausted("Task failed after {n} attempt(s): {last}")` when more than one
    /// attempt was allowed, else the error itself (tasks, [`run_with_retries`](super::run_with_retries)).
    Wrapped,
    /// The last error itself (batch items).
    LastError,
}

/// The retry predicate of work that retries every error.
pub(crate) fn retry_all(_: &CanoError, _: u32) -> bool {
    true
}

/// Whether an attempt under `config` needs nothing around it: no breaker, no timeout, no
/// observers. Then the first attempt may run bare.
///
/// Every field is named, so a field added to [`TaskConfig`] does not compile until it is
/// decided here whether it needs the guarded path.
pub(crate) fn is_plain(config: &TaskConfig) -> bool {
    let TaskConfig {
        retry_mode: _,
        attempt_timeout,
        circuit_breaker,
        observers,
        task_name: _,
    } = config;
    attempt_timeout.is_none()
        && circuit_breaker.is_none()
        && observers.is_none()
        && !crate::instrument::enabled()
}

/// Poll `attempt` with panics caught: a bare first attempt.
pub(crate) fn bare<F: Future + Unpin>(attempt: F) -> CatchUnwind<F> {
    CatchUnwind::new(attempt)
}

/// The retry loop under `config`, with panics caught and turned into errors by `panicked`
/// (a panic ends the loop). `first`: the error of a first attempt the caller made bare.
pub(crate) async fn guarded<T, F, Fut>(
    config: &TaskConfig,
    run_fn: F,
    retryable: impl Fn(&CanoError, u32) -> bool,
    first: Option<CanoError>,
    panicked: impl FnOnce(&(dyn Any + Send)) -> CanoError,
) -> Result<T, CanoError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, CanoError>>,
{
    let retried = pin!(retry_loop(
        config,
        run_fn,
        retryable,
        Exhausted::Wrapped,
        first
    ));
    match CatchUnwind::new(retried).await {
        Ok(outcome) => outcome,
        Err(payload) => {
            crate::instrument::attempt(crate::instrument::outcome::PANIC);
            Err(panicked(&*payload))
        }
    }
}

/// The error a caught panic becomes.
pub(crate) fn panicked(payload: &(dyn Any + Send)) -> CanoError {
    CanoError::task_execution(format!("panic: {}", panic_message(payload)))
}

const ATTEMPT_TIMEOUT: &str = "task attempt exceeded attempt_timeout";

/// Attempt `run_fn` until it succeeds, every allowed attempt failed, an error is not worth
/// another attempt (`retryable(error, failed_attempt)` is false: that error is returned as
/// it is), or an open breaker rejects an attempt (its error is returned).
///
/// `first`: the error of a first attempt the caller made itself; the loop continues from
/// there as if it had made it. A zero delay retries at once, without a timer. Dropping the
/// future cancels the current attempt (a held breaker permit counts as a failure).
pub(crate) async fn retry_loop<T, F, Fut>(
    config: &TaskConfig,
    run_fn: F,
    retryable: impl Fn(&CanoError, u32) -> bool,
    exhausted: Exhausted,
    mut first: Option<CanoError>,
) -> Result<T, CanoError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, CanoError>>,
{
    let max = config.retry_mode.max_attempts();
    let mut failures: usize = 0;
    loop {
        let err = match first.take() {
            Some(err) => err,
            None => match attempt_once(config, &run_fn).await? {
                Ok(v) => return Ok(v),
                Err(e) => e,
            },
        };
        failures += 1;
        let attempt = u32::try_from(failures).unwrap_or(u32::MAX);
        config.notify(|o, name| o.on_attempt_failed(name, attempt, &err));
        if failures >= max {
            if max <= 1 || exhausted == Exhausted::LastError {
                return Err(err);
            }
            return Err(CanoError::retry_exhausted(format!(
                "Task failed after {failures} attempt(s): {err}"
            )));
        }
        if !retryable(&err, attempt) {
            #[cfg(feature = "tracing")]
            tracing::warn!(task = config.task_name.as_deref(), attempt, error = %err, "error is not retryable; giving up");
            return Err(err);
        }
        #[cfg(feature = "tracing")]
        tracing::warn!(task = config.task_name.as_deref(), attempt, max_attempts = max, error = %err, "Task execution failed, will retry");
        config.notify(|o, name| o.on_retry(name, attempt));
        if let Some(delay) = config.retry_mode.delay_for_attempt(failures - 1)
            && !delay.is_zero()
        {
            Box::pin(tokio::time::sleep(delay)).await;
        }
    }
}

/// One attempt: breaker permit, attempt timeout, breaker outcome. The outer `Err` is an
/// open breaker, which ends the whole loop with its raw error.
async fn attempt_once<T, F, Fut>(
    config: &TaskConfig,
    run_fn: &F,
) -> Result<Result<T, CanoError>, CanoError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, CanoError>>,
{
    let permit = match &config.circuit_breaker {
        Some(breaker) => match breaker.try_acquire() {
            Ok(p) => Some(p),
            Err(e) => {
                crate::instrument::circuit_rejected();
                config.notify(|o, name| o.on_circuit_open(name));
                return Err(e);
            }
        },
        None => None,
    };
    let outcome = match config.attempt_timeout {
        // Boxed so the (rarely used) timer does not inflate every caller's future.
        Some(limit) => match Box::pin(tokio::time::timeout(limit, run_fn())).await {
            Ok(r) => r,
            Err(_) => Err(CanoError::timeout(ATTEMPT_TIMEOUT)),
        },
        None => run_fn().await,
    };
    if crate::instrument::enabled() {
        use crate::instrument::outcome;
        crate::instrument::attempt(match &outcome {
            Ok(_) => outcome::SUCCESS,
            Err(CanoError::Timeout(m)) if m == ATTEMPT_TIMEOUT => outcome::TIMEOUT,
            Err(_) => outcome::FAILURE,
        });
    }
    if let (Some(breaker), Some(permit)) = (&config.circuit_breaker, permit) {
        match &outcome {
            Ok(_) => breaker.record_success(permit),
            Err(_) => breaker.record_failure(permit),
        }
    }
    Ok(outcome)
}

/// Observer bookkeeping for one unit of work: `on_task_start` when created,
/// `on_task_success` / `on_task_failure` in [`TaskScope::end`], and the task config with
/// the observers stamped in (so the retry loop reports retries and breaker rejections).
pub(crate) struct TaskScope<'a> {
    pub(crate) config: &'a TaskConfig,
    /// Boxed: only observed runs pay for it, and it keeps every run's future small.
    pub(crate) observed: Option<Box<Observed<'a>>>,
}

/// The observers of a unit of work and the name they know it by. (The task config with
/// them stamped in is made for each call of [`TaskScope::attempts`], not kept: a run
/// parked in a timer or signal state keeps its scope for as long as it waits.)
pub(crate) struct Observed<'a> {
    pub(crate) observers: &'a Arc<[Arc<dyn WorkflowObserver>]>,
    pub(crate) name: Cow<'static, str>,
}

impl TaskScope<'_> {
    /// This unit of work's attempts: [`guarded`] under its config (observers stamped in),
    /// a panic ending them as `panic: …`.
    pub(crate) async fn attempts<T, F, Fut>(
        &self,
        run_fn: F,
        retryable: impl Fn(&CanoError, u32) -> bool,
    ) -> Result<T, CanoError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CanoError>>,
    {
        let stamped = self.observed.as_ref().map(|observed| TaskConfig {
            observers: Some(Arc::clone(observed.observers)),
            task_name: Some(observed.name.clone()),
            ..self.config.clone()
        });
        let config = stamped.as_ref().unwrap_or(self.config);
        guarded(config, run_fn, retryable, None, panicked).await
    }

    pub(crate) fn end<R>(&self, outcome: &Result<R, CanoError>) {
        if let Some(observed) = &self.observed {
            let name = &observed.name;
            match outcome {
                Ok(_) => {
                    crate::observer::each(&observed.observers[..], |o| o.on_task_success(name))
                }
                Err(e) => {
                    crate::observer::each(&observed.observers[..], |o| o.on_task_failure(name, e))
                }
            }
        }
    }

    /// [`end`](Self::end), passing `outcome` through.
    pub(crate) fn ended<R>(&self, outcome: Result<R, CanoError>) -> Result<R, CanoError> {
        self.end(&outcome);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::RetryMode;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn fixed(retries: usize) -> TaskConfig {
        TaskConfig::new().with_retry(RetryMode::fixed(retries, Duration::ZERO))
    }

    #[tokio::test]
    async fn a_permanent_error_stops_at_once_and_is_returned_as_is() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retry_loop(
            &fixed(5),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CanoError::task_execution("card declined"))
            },
            |e, _| !e.message().contains("declined"),
            Exhausted::Wrapped,
            None,
        )
        .await;
        assert_eq!(out, Err(CanoError::task_execution("card declined")));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_predicate_sees_each_failed_attempt_number() {
        let seen = std::sync::Mutex::new(Vec::new());
        let out: Result<(), _> = retry_loop(
            &fixed(5),
            || async { Err(CanoError::generic("503")) },
            |_, attempt| {
                seen.lock().unwrap().push(attempt);
                attempt < 3
            },
            Exhausted::Wrapped,
            None,
        )
        .await;
        assert_eq!(out, Err(CanoError::generic("503")));
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
    }

    #[tokio::test]
    async fn exhaustion_wraps_or_returns_the_last_error() {
        let fail = || async { Err::<(), _>(CanoError::generic("x")) };
        let wrapped = retry_loop(&fixed(1), fail, retry_all, Exhausted::Wrapped, None).await;
        assert_eq!(
            wrapped.unwrap_err().to_string(),
            "Retry exhausted: Task failed after 2 attempt(s): Error: x"
        );
        let last = retry_loop(&fixed(1), fail, retry_all, Exhausted::LastError, None).await;
        assert_eq!(last, Err(CanoError::generic("x")));
    }

    #[tokio::test]
    async fn a_first_failure_made_bare_counts_as_the_first_attempt() {
        let calls = AtomicU32::new(0);
        let out = retry_loop(
            &fixed(1),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, CanoError>(5)
            },
            retry_all,
            Exhausted::Wrapped,
            Some(CanoError::generic("first")),
        )
        .await;
        assert_eq!(out, Ok(5));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panic_ends_the_loop_with_the_callers_error() {
        let out: Result<(), _> = guarded(
            &fixed(3),
            || async { panic!("kaboom") },
            retry_all,
            None,
            |p| CanoError::task_execution(format!("member 2: {}", panic_message(p))),
        )
        .await;
        assert_eq!(out, Err(CanoError::task_execution("member 2: kaboom")));
    }

    #[test]
    fn only_a_bare_config_is_plain() {
        assert!(is_plain(&TaskConfig::new()));
        assert!(!is_plain(
            &TaskConfig::new().with_attempt_timeout(Duration::from_secs(1))
        ));
        let breaker = std::sync::Arc::new(crate::CircuitBreaker::new(Default::default()));
        assert!(!is_plain(&TaskConfig::new().with_circuit_breaker(breaker)));
        let observers: std::sync::Arc<[std::sync::Arc<dyn crate::WorkflowObserver>]> =
            std::sync::Arc::new([]);
        assert!(!is_plain(&TaskConfig {
            observers: Some(observers),
            ..TaskConfig::new()
        }));
    }
}
