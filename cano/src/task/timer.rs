//! [`TimerTask`]: a state that waits — for a duration, or until a point in time — and
//! then moves on. Durable: with a checkpoint store, the wait survives the process.
//!
//! The engine calls [`TimerTask::wait`] once to learn how long to wait, records the
//! deadline (as wall-clock time) in the run's checkpoint log, sleeps until it, and then
//! calls [`TimerTask::after_wait`] for the next state. A run resumed with
//! [`Workflow::resume_from`](crate::Workflow::resume_from) while a timer was pending
//! does not call `wait` again: it sleeps only what is left of the recorded deadline, and
//! a deadline already past fires at once. A sleeping run holds no thread (it is a Tokio
//! timer), and it can be cancelled or cut short by the run's total timeout like any
//! other task.
//!
//! Register a timer with plain [`register`](crate::Workflow::register): `#[task::timer]`
//! also implements [`Task`](crate::Task) for it (running [`run_timer`], the in-memory
//! wait), and the workflow recognises it as a timer.
//!
//! ```
//! use cano::prelude::*;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum S { Cooldown, Done }
//!
//! struct Cooldown;
//! #[task::timer(state = S)]
//! impl Cooldown {
//!     async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
//!         Ok(TimerOutcome::Duration(Duration::from_secs(3600)))
//!     }
//!     async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
//!         Ok(TaskResult::Single(S::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), CanoError> {
//! let wf = Workflow::bare().register(S::Cooldown, Cooldown).add_exit_state(S::Done);
//! let started = tokio::time::Instant::now();
//! assert_eq!(wf.orchestrate(S::Cooldown).await?, S::Done);
//! assert_eq!(started.elapsed(), Duration::from_secs(3600));
//! # Ok(()) }
//! ```

use crate::error::CanoError;
use crate::resource::Resources;
use crate::task::{TaskConfig, TaskResult};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a [`TimerTask`] waits. A zero duration, or a point already past, fires at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimerOutcome {
    /// Wait this long from now.
    Duration(Duration),
    /// Wait until this instant of this process's monotonic clock (recorded in the log as
    /// the wall-clock time it corresponds to now).
    Until(Instant),
    /// Wait until this wall-clock time (e.g. "tomorrow 09:00 UTC"). Not in cano 0.15.
    At(SystemTime),
}

/// A state that waits, then moves on. See the [module docs](self).
///
/// Implement it with `#[task::timer]` (inherent form `#[task::timer(state = S[, key = K])]
/// impl T { … }`, or the trait-impl form `#[task::timer] impl TimerTask<S> for T { … }`),
/// which also implements [`Task`](crate::Task) for `T` (forwarding `config`, `name` and
/// `is_retryable`) so that it is registered with [`register`](crate::Workflow::register).
pub trait TimerTask<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Retry policy and timeout for each call of [`wait`](Self::wait) and
    /// [`after_wait`](Self::after_wait) (not the sleep between them). Default:
    /// [`TaskConfig::minimal`] (one attempt).
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    /// The timer's name (its checkpoint rows' `task_id`). Default: the type name.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Whether `error`, returned by failed attempt number `attempt` (1-based) of
    /// [`wait`](Self::wait) or [`after_wait`](Self::after_wait), is worth another attempt
    /// of that call under the timer's retry policy. Default: every error is. Return
    /// `false` for permanent failures: the state then fails at once with that error, not
    /// wrapped in `RetryExhausted`. See [`Task::is_retryable`](crate::Task::is_retryable).
    ///
    /// ```
    /// use cano::prelude::*;
    /// use std::time::Duration;
    ///
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { Cooldown, Done }
    /// struct Cooldown;
    ///
    /// #[task::timer(state = S)]
    /// impl Cooldown {
    ///     fn config(&self) -> TaskConfig {
    ///         TaskConfig::new().with_fixed_retry(3, Duration::from_millis(100))
    ///     }
    ///     fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
    ///         !error.message().contains("no such account")
    ///     }
    ///     async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
    ///         Err(CanoError::task_execution("no such account"))
    ///     }
    ///     async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
    ///         Ok(TaskResult::Single(S::Done))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let wf = Workflow::bare().register(S::Cooldown, Cooldown).add_exit_state(S::Done);
    /// let err = wf.orchestrate(S::Cooldown).await.unwrap_err();
    /// assert_eq!(err.to_string(), "Task execution error: no such account"); // one attempt
    /// # }
    /// ```
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }

    /// How long to wait. Called once per visit of the state (not again when a resumed
    /// run finds the deadline in its log).
    fn wait<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
    ) -> Pin<Box<dyn Future<Output = Result<TimerOutcome, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// The next state, once the wait is over.
    fn after_wait<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
    ) -> Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// A type-erased timer task.
pub type DynTimerTask<TState, TResourceKey = Cow<'static, str>> =
    dyn TimerTask<TState, TResourceKey> + Send + Sync;

/// A shared, type-erased timer task.
pub type TimerTaskObject<TState, TResourceKey = Cow<'static, str>> =
    Arc<DynTimerTask<TState, TResourceKey>>;

/// Run a timer in memory: [`wait`](TimerTask::wait), sleep, then
/// [`after_wait`](TimerTask::after_wait). This is what the `Task` impl that
/// `#[task::timer]` generates runs (outside a workflow, or in a split); a workflow runs a
/// registered timer durably instead (see the [module docs](self)).
///
/// # Errors
/// `wait`'s and `after_wait`'s errors; a deadline too far away to represent.
pub async fn run_timer<T, S, K>(t: &T, res: &Resources<K>) -> Result<TaskResult<S>, CanoError>
where
    T: TimerTask<S, K> + ?Sized,
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    let outcome = t.wait(res).await?;
    let deadline = deadline_ms(&t.name(), outcome, wall_now_ms())?;
    sleep_until_ms(deadline).await;
    t.after_wait(res).await
}

/// The engine's wall clock in milliseconds since the Unix epoch: the system clock,
/// shifted by however far Tokio's clock runs ahead of the real one (so that on a paused
/// clock, timers behave as in production).
pub(crate) fn wall_now_ms() -> u64 {
    let runtime = crate::clock::now();
    let real = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let wall = match runtime.checked_duration_since(real) {
        Some(ahead) => wall.saturating_add(ahead),
        None => wall.saturating_sub(real.duration_since(runtime)),
    };
    u64::try_from(wall.as_millis()).unwrap_or(u64::MAX)
}

/// The wall-clock deadline (ms since the epoch) of `outcome`, measured from `now_ms`.
///
/// # Errors
/// A deadline that does not fit the clock (`Duration::MAX`, a year 500 million AD):
/// [`CanoError::TaskExecution`] naming the timer.
pub(crate) fn deadline_ms(
    timer: &str,
    outcome: TimerOutcome,
    now_ms: u64,
) -> Result<u64, CanoError> {
    let too_far = |what: String| {
        CanoError::task_execution(format!(
            "timer {timer:?}: its deadline ({what}) is too far away to record; \
             wait at most a few hundred million years"
        ))
    };
    let after = |d: Duration| {
        u64::try_from(d.as_millis())
            .ok()
            .and_then(|ms| now_ms.checked_add(ms))
            .filter(|ms| *ms < u64::MAX)
            .ok_or_else(|| too_far(format!("{d:?} from now")))
    };
    match outcome {
        TimerOutcome::Duration(d) => after(d),
        TimerOutcome::Until(at) => after(at.saturating_duration_since(crate::clock::now())),
        TimerOutcome::At(at) => match at.duration_since(UNIX_EPOCH) {
            Ok(since) => u64::try_from(since.as_millis())
                .ok()
                .filter(|ms| *ms < u64::MAX)
                .ok_or_else(|| too_far(format!("{at:?}"))),
            // Before 1970: long past.
            Err(_) => Ok(0),
        },
    }
}

/// Sleep until the wall-clock time `deadline_ms` on the engine's clock (at once if it
/// has passed).
pub(crate) async fn sleep_until_ms(deadline_ms: u64) {
    if let Some(left) = left_until_ms(deadline_ms) {
        tokio::time::sleep(left).await;
    }
}

/// How long until the wall-clock time `deadline_ms` on the engine's clock; `None` if it
/// has passed.
pub(crate) fn left_until_ms(deadline_ms: u64) -> Option<Duration> {
    match deadline_ms.saturating_sub(wall_now_ms()) {
        0 => None,
        left => Some(Duration::from_millis(left)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_wall_clock_milliseconds_and_overflow_is_an_error() {
        assert_eq!(
            deadline_ms("t", TimerOutcome::Duration(Duration::from_secs(2)), 1_000),
            Ok(3_000)
        );
        let at = UNIX_EPOCH + Duration::from_millis(1_234);
        assert_eq!(deadline_ms("t", TimerOutcome::At(at), 99), Ok(1_234));
        let err = deadline_ms("t", TimerOutcome::Duration(Duration::MAX), 1).unwrap_err();
        assert!(err.to_string().contains("timer \"t\""), "{err}");
        assert!(err.to_string().contains("too far away"), "{err}");
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(deadline_ms("t", TimerOutcome::Until(past), 500), Ok(500));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wall_clock_follows_a_paused_runtime() {
        let before = wall_now_ms();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let after = wall_now_ms();
        assert!(
            (3_600_000..3_600_050).contains(&(after - before)),
            "{}",
            after - before
        );
    }
}
