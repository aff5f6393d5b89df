//! [`PollTask`]: wait until something is ready.
//!
//! The engine calls [`PollTask::poll`] repeatedly: [`PollOutcome::Pending`] sleeps for
//! the given delay and polls again, [`PollOutcome::Ready`] carries the next state. Errors
//! end the loop at once ([`PollErrorPolicy::FailFast`], the default) or are tolerated up
//! to a budget of consecutive errors ([`PollErrorPolicy::RetryOnError`]).
//!
//! The loop has no iteration cap: bound it with
//! [`TaskConfig::with_attempt_timeout`](crate::TaskConfig::with_attempt_timeout), which
//! limits the whole loop. Unlike other tasks, a poll task's default config is
//! [`TaskConfig::minimal`] (one attempt).
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum S { Wait, Done }
//!
//! struct JobFinished(AtomicU32);
//! #[task::poll(state = S)]
//! impl JobFinished {
//!     async fn poll(&self, _res: &Resources) -> Result<PollOutcome<S>, CanoError> {
//!         if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
//!             Ok(PollOutcome::Pending { delay_ms: 10 })
//!         } else {
//!             Ok(PollOutcome::Ready(TaskResult::Single(S::Done)))
//!         }
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let wf = Workflow::bare().register(S::Wait, JobFinished(AtomicU32::new(0))).add_exit_state(S::Done);
//! assert_eq!(wf.orchestrate(S::Wait).await?, S::Done);
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
use std::time::Duration;

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome<TState> {
    /// Done: move on with this result.
    Ready(TaskResult<TState>),
    /// Not yet: poll again after `delay_ms` milliseconds (0 polls again at once).
    Pending {
        /// Milliseconds to wait before the next poll.
        delay_ms: u64,
    },
}

/// What to do when [`PollTask::poll`] returns an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PollErrorPolicy {
    /// Stop at the first error.
    #[default]
    FailFast,
    /// Poll again immediately after an error, until more than `max_errors` errors in a
    /// row (a `Pending` resets the count); then fail with the latest error.
    RetryOnError {
        /// Consecutive errors tolerated.
        max_errors: u32,
    },
}

/// A task that polls until ready. Write it with `#[task::poll]`; the attribute also
/// implements [`Task`](crate::Task) for the type (forwarding `config`, `name` and
/// `is_retryable`, and running [`run_poll_loop`]).
pub trait PollTask<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Settings for the whole poll loop. Default: [`TaskConfig::minimal`].
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    /// The task's name. Default: the type's path.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// How poll errors are handled. Default: [`PollErrorPolicy::FailFast`].
    fn on_poll_error(&self) -> PollErrorPolicy {
        PollErrorPolicy::FailFast
    }

    /// Whether `error`, which ended failed attempt number `attempt` (1-based) of the poll
    /// loop, is worth another attempt (the loop started again) under the task's retry
    /// policy. Default: every error is. Return `false` for permanent failures (a job that
    /// does not exist): the state then fails at once with that error, not wrapped in
    /// `RetryExhausted`. Consulted only when [`config`](Self::config) allows retries; the
    /// [`on_poll_error`](Self::on_poll_error) budget inside one attempt does not ask it.
    /// See [`Task::is_retryable`](crate::Task::is_retryable).
    ///
    /// ```
    /// use cano::prelude::*;
    /// use std::time::Duration;
    ///
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { Wait, Done }
    /// struct JobFinished;
    ///
    /// #[task::poll(state = S)]
    /// impl JobFinished {
    ///     fn config(&self) -> TaskConfig {
    ///         TaskConfig::new().with_fixed_retry(3, Duration::from_millis(100))
    ///     }
    ///     fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
    ///         !error.message().contains("no such job")
    ///     }
    ///     async fn poll(&self, _res: &Resources) -> Result<PollOutcome<S>, CanoError> {
    ///         Err(CanoError::task_execution("no such job"))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let wf = Workflow::bare().register(S::Wait, JobFinished).add_exit_state(S::Done);
    /// let err = wf.orchestrate(S::Wait).await.unwrap_err();
    /// assert_eq!(err.to_string(), "Task execution error: no such job"); // one attempt
    /// # }
    /// ```
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }

    /// Check once whether the awaited condition holds.
    fn poll<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
    ) -> Pin<Box<dyn Future<Output = Result<PollOutcome<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// A type-erased poll task.
pub type DynPollTask<TState, TResourceKey = Cow<'static, str>> =
    dyn PollTask<TState, TResourceKey> + Send + Sync;

/// A shared, type-erased poll task.
pub type PollTaskObject<TState, TResourceKey = Cow<'static, str>> =
    Arc<DynPollTask<TState, TResourceKey>>;

/// Poll `p` until it is ready, following its [`PollErrorPolicy`].
///
/// # Errors
/// The poll error that ended the loop, unchanged.
pub async fn run_poll_loop<P, S, K>(p: &P, res: &Resources<K>) -> Result<TaskResult<S>, CanoError>
where
    P: PollTask<S, K> + ?Sized,
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    let policy = p.on_poll_error();
    let mut consecutive_errors: u32 = 0;
    loop {
        match p.poll(res).await {
            Ok(PollOutcome::Ready(result)) => {
                crate::instrument::poll_iteration(true);
                return Ok(result);
            }
            Ok(PollOutcome::Pending { delay_ms }) => {
                crate::instrument::poll_iteration(false);
                consecutive_errors = 0;
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
            }
            Err(e) => match policy {
                PollErrorPolicy::FailFast => return Err(e),
                PollErrorPolicy::RetryOnError { max_errors } => {
                    consecutive_errors = consecutive_errors.saturating_add(1);
                    if consecutive_errors > max_errors {
                        return Err(e);
                    }
                }
            },
        }
    }
}
