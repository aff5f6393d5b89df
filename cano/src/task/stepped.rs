//! [`SteppedTask`]: resumable iterative work, one step at a time.
//!
//! Each [`step`](SteppedTask::step) receives the previous cursor (`None` at first) and
//! returns [`StepOutcome::More`] with the next cursor or [`StepOutcome::Done`] with the
//! next state. Registered with [`Workflow::register_stepped`](crate::Workflow::register_stepped),
//! the engine drives the loop: each step gets the task's retry policy (a retry reuses the
//! same cursor) and, with a checkpoint store, every cursor is recorded before the next
//! step runs, so [`resume_from`](crate::Workflow::resume_from) continues from the last
//! cursor instead of starting over. Cursors are stored as JSON.
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum S { Count, Done }
//!
//! struct CountTo(u32);
//! #[task::stepped(state = S)]
//! impl CountTo {
//!     async fn step(&self, _res: &Resources, cursor: Option<u32>) -> Result<StepOutcome<u32, S>, CanoError> {
//!         let n = cursor.unwrap_or(0) + 1;
//!         Ok(if n >= self.0 { StepOutcome::Done(TaskResult::Single(S::Done)) } else { StepOutcome::More(n) })
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let wf = Workflow::bare().register_stepped(S::Count, CountTo(5)).add_exit_state(S::Done);
//! assert_eq!(wf.orchestrate(S::Count).await?, S::Done);
//! # Ok(()) }
//! ```

use crate::error::CanoError;
use crate::resource::Resources;
use crate::task::{TaskConfig, TaskResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;

/// What one step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome<TCursor, TState> {
    /// More work: call `step` again with this cursor.
    More(TCursor),
    /// Finished: move on with this result.
    Done(TaskResult<TState>),
}

/// Iterative work driven one step at a time. Write it with `#[task::stepped]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a stepped task (`SteppedTask<{TState}>`)",
    label = "not a stepped task",
    note = "`Workflow::register_stepped` takes a stepped task: `#[task::stepped]` on its impl; plain tasks are registered with `Workflow::register`"
)]
pub trait SteppedTask<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Progress carried from one step to the next (persisted as JSON).
    type Cursor: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Settings applied to each step (engine-driven) or to the whole loop (plain
    /// `register`). Default: [`TaskConfig::default`].
    fn config(&self) -> TaskConfig {
        TaskConfig::default()
    }

    /// The task's name. Default: the type's path.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Whether `error`, returned by failed attempt number `attempt` (1-based) of a step, is
    /// worth another attempt of that step (engine-driven, with
    /// [`register_stepped`](crate::Workflow::register_stepped)). Default: every error is.
    /// Return `false` for permanent failures: the state then fails at once with that
    /// error, its cursor staying where the last successful step left it.
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }

    /// Do one step from `cursor` (`None` on the first step).
    #[allow(clippy::type_complexity)] // the boxed async-fn shape of the contract
    fn step<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
        cursor: Option<Self::Cursor>,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<StepOutcome<Self::Cursor, TState>, CanoError>>
                + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// The cursor type of [`DynSteppedTask`]: raw bytes.
pub type DefaultStepCursor = Vec<u8>;

/// A type-erased stepped task with byte cursors.
pub type DynSteppedTask<TState, TResourceKey = Cow<'static, str>> =
    dyn SteppedTask<TState, TResourceKey, Cursor = Vec<u8>> + Send + Sync;

/// A shared, type-erased stepped task.
pub type SteppedTaskObject<TState, TResourceKey = Cow<'static, str>> =
    Arc<DynSteppedTask<TState, TResourceKey>>;

/// Run `s` from `None` to `Done` in memory: no persistence, no per-step retry.
///
/// # Errors
/// The first step error.
pub async fn run_stepped<S, S2, K>(s: &S, res: &Resources<K>) -> Result<TaskResult<S2>, CanoError>
where
    S: SteppedTask<S2, K> + ?Sized,
    S2: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    let mut cursor = None;
    loop {
        match s.step(res, cursor).await? {
            StepOutcome::More(next) => {
                crate::instrument::step_iteration(false);
                cursor = Some(next);
            }
            StepOutcome::Done(result) => {
                crate::instrument::step_iteration(true);
                return Ok(result);
            }
        }
    }
}

/// A step's outcome with the cursor serialized.
pub enum ErasedStep<TState> {
    /// More work; the next cursor as JSON bytes.
    More(Vec<u8>),
    /// Finished.
    Done(TaskResult<TState>),
}

/// The future returned by [`ErasedSteppedTask::step`].
pub type StepFuture<'a, TState> =
    Pin<Box<dyn Future<Output = Result<ErasedStep<TState>, CanoError>> + Send + 'a>>;

/// A stepped task with byte cursors, as the engine stores it.
pub trait ErasedSteppedTask<TState, TResourceKey>: Send + Sync
where
    TState: Clone + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// The task's name.
    fn name(&self) -> Cow<'static, str>;
    /// The task's settings.
    fn config(&self) -> TaskConfig;
    /// Whether a step's error is worth another attempt ([`SteppedTask::is_retryable`]).
    /// Default: every error is (implementations written for cano 0.12.0 keep compiling).
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }
    /// One step from the JSON-encoded cursor.
    fn step<'a>(
        &'a self,
        res: &'a Resources<TResourceKey>,
        cursor_bytes: Option<Vec<u8>>,
    ) -> StepFuture<'a, TState>;
}

/// Adapts a typed [`SteppedTask`] to [`ErasedSteppedTask`] (JSON cursors).
pub(crate) struct SteppedAdapter<T>(pub(crate) Arc<T>);

impl<T, TState, TResourceKey> ErasedSteppedTask<TState, TResourceKey> for SteppedAdapter<T>
where
    T: SteppedTask<TState, TResourceKey> + 'static,
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn name(&self) -> Cow<'static, str> {
        self.0.name()
    }

    fn config(&self) -> TaskConfig {
        self.0.config()
    }

    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        self.0.is_retryable(error, attempt)
    }

    fn step<'a>(
        &'a self,
        res: &'a Resources<TResourceKey>,
        cursor_bytes: Option<Vec<u8>>,
    ) -> StepFuture<'a, TState> {
        Box::pin(async move {
            let cursor = decode_cursor(cursor_bytes, || self.0.name())?;
            let step = self.0.step(res, cursor).await?;
            crate::instrument::step_iteration(matches!(step, StepOutcome::Done(_)));
            match step {
                StepOutcome::More(next) => {
                    encode_cursor(&next, || self.0.name()).map(ErasedStep::More)
                }
                StepOutcome::Done(result) => Ok(ErasedStep::Done(result)),
            }
        })
    }
}

/// A recorded cursor (JSON) as the task's cursor type; `task` names the task in the error.
pub(crate) fn decode_cursor<C: DeserializeOwned>(
    bytes: Option<Vec<u8>>,
    task: impl FnOnce() -> Cow<'static, str>,
) -> Result<Option<C>, CanoError> {
    bytes
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                CanoError::task_execution(format!("deserialize cursor for `{}`: {e}", task()))
            })
        })
        .transpose()
}

/// A cursor as the JSON the log records; `task` names the task in the error.
pub(crate) fn encode_cursor<C: Serialize>(
    cursor: &C,
    task: impl FnOnce() -> Cow<'static, str>,
) -> Result<Vec<u8>, CanoError> {
    serde_json::to_vec(cursor)
        .map_err(|e| CanoError::task_execution(format!("serialize cursor for `{}`: {e}", task())))
}
