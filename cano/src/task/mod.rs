//! Tasks: the unit of work behind each workflow state.
//!
//! A [`Task`] runs when the workflow enters the state it is registered for and
//! returns a [`TaskResult`] naming the next state. Write one with the `#[task]`
//! attribute, either on an inherent impl (naming the state type) or on an
//! `impl Task<State> for …` block:
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Fetch, Done }
//!
//! struct Fetch;
//!
//! #[task(state = Step)]
//! impl Fetch {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::new().with_fixed_retry(2, std::time::Duration::from_millis(10))
//!     }
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
//!         let store = res.get::<MemoryStore, _>("store")?;
//!         store.put("fetched", 3u32)?;
//!         Ok(TaskResult::Single(Step::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let store = MemoryStore::new();
//! let workflow = Workflow::new(Resources::new().insert("store", store.clone()))
//!     .register(Step::Fetch, Fetch)
//!     .add_exit_state(Step::Done);
//! assert_eq!(workflow.orchestrate(Step::Fetch).await?, Step::Done);
//! assert_eq!(store.get::<u32>("fetched")?, 3);
//! # Ok(())
//! # }
//! ```

use crate::error::CanoError;
use crate::resource::Resources;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) mod attempt;
pub mod batch;
pub mod poll;
pub(crate) mod retry;
pub mod router;
pub mod stepped;
pub mod stream;
pub mod timer;

pub use batch::{
    BatchTask, BatchTaskObject, DefaultBatchItem, DefaultBatchItemOutput, DynBatchTask, run_batch,
};
pub use poll::{
    DynPollTask, PollErrorPolicy, PollOutcome, PollTask, PollTaskObject, run_poll_loop,
};
pub use retry::{RetryMode, TaskConfig, run_with_retries};
pub use router::{DynRouterTask, RouterTask, RouterTaskObject};
pub use stepped::{
    DefaultStepCursor, DynSteppedTask, StepOutcome, SteppedTask, SteppedTaskObject, run_stepped,
};

pub use cano_macros::batch_task as batch;
pub use cano_macros::poll_task as poll;
pub use cano_macros::router_task as router;
pub use cano_macros::signal_task as signal;
pub use cano_macros::stepped_task as stepped;
pub use cano_macros::stream_task as stream;
pub use cano_macros::timer_task as timer;

/// What a task returns: the next state, or (for split states) several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskResult<TState> {
    /// Move to this state.
    Single(TState),
    /// Several states; only meaningful for tasks inside a split state.
    Split(Vec<TState>),
}

/// A unit of work bound to a workflow state.
///
/// Implement either [`run`](Task::run) (which receives the workflow's
/// [`Resources`]) or [`run_bare`](Task::run_bare) (which does not). The engine always
/// calls `run`; its default delegates to `run_bare`. Write the methods as `async fn`
/// inside a `#[task]`-annotated block; the attribute turns them into the boxed form
/// shown here.
///
/// [`config`](Task::config) is read once, when the task is registered.
/// [`name`](Task::name) identifies the task in observer events and checkpoint rows.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Task<{TState}>`",
    label = "not a `Task<{TState}>`",
    note = "a saga task (`#[saga::task]` / `CompensatableTask`) is registered with `Workflow::register_with_compensation`; a plain task needs `#[task]` on its impl (or `impl Task<State> for ...`)"
)]
pub trait Task<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Retry, timeout and circuit-breaker settings. Default: [`TaskConfig::default`]
    /// (exponential backoff, 4 attempts).
    fn config(&self) -> TaskConfig {
        TaskConfig::default()
    }

    /// The task's name. Default: the implementing type's path (`std::any::type_name`).
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Whether `error`, returned by failed attempt number `attempt` (1-based), is worth
    /// another attempt. Default: every error is.
    ///
    /// Return `false` for permanent failures (a declined card, a missing record): the
    /// task then fails at once with that error (not wrapped in `RetryExhausted`) and, in
    /// a saga, the rollback starts. Consulted only while the retry policy allows another
    /// attempt.
    ///
    /// ```
    /// use cano::prelude::*;
    /// use std::time::Duration;
    ///
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { Charge, Done }
    /// struct Charge;
    ///
    /// #[task(state = S)]
    /// impl Charge {
    ///     fn config(&self) -> TaskConfig {
    ///         TaskConfig::new().with_fixed_retry(5, Duration::from_millis(100))
    ///     }
    ///     fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
    ///         !error.message().contains("declined")
    ///     }
    ///     async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
    ///         Err(CanoError::task_execution("card declined"))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let wf = Workflow::bare().register(S::Charge, Charge).add_exit_state(S::Done);
    /// let err = wf.orchestrate(S::Charge).await.unwrap_err();
    /// assert_eq!(err.to_string(), "Task execution error: card declined"); // one attempt
    /// # }
    /// ```
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }

    /// Do the work, with access to the workflow's resources. Default: call
    /// [`run_bare`](Task::run_bare).
    fn run<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
    ) -> Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        let _ = res;
        self.run_bare()
    }

    /// Not part of the API: `Some` for a [`TimerTask`](timer::TimerTask) (the `Task` impl
    /// that `#[task::timer]` generates says so), which the workflow then runs durably.
    #[doc(hidden)]
    fn __timer(&self) -> Option<&(dyn timer::TimerTask<TState, TResourceKey> + Send + Sync + '_)> {
        None
    }

    /// Do the work without resources. Default: a [`CanoError::Configuration`] saying
    /// that neither `run` nor `run_bare` was implemented.
    fn run_bare<'life0, 'async_trait>(
        &'life0 self,
    ) -> Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(async move {
            Err(CanoError::configuration(format!(
                "Task<{}>: neither `run` nor `run_bare` was implemented; override one of them",
                std::any::type_name::<Self>()
            )))
        })
    }
}

/// A type-erased task.
pub type DynTask<TState, TResourceKey = Cow<'static, str>> =
    dyn Task<TState, TResourceKey> + Send + Sync;

/// A shared, type-erased task.
pub type TaskObject<TState, TResourceKey = Cow<'static, str>> = Arc<DynTask<TState, TResourceKey>>;
