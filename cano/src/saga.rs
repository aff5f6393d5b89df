//! Sagas: steps that can be undone.
//!
//! A [`CompensatableTask`] runs forward like a task and also returns an `Output` that
//! describes what it did. Registered with
//! [`Workflow::register_with_compensation`](crate::Workflow::register_with_compensation),
//! each completed step's output is pushed on the run's compensation stack (and, with a
//! checkpoint store, recorded in the log). When a later state fails, the engine calls
//! [`compensate`](CompensatableTask::compensate) for every completed step, most recent
//! first, and returns the original error (or [`CanoError::CompensationFailed`] if a
//! compensation failed too).
//!
//! Write one with `#[saga::task(state = …)]`:
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum S { Reserve, Done }
//!
//! struct Reserve;
//! #[saga::task(state = S)]
//! impl Reserve {
//!     type Output = String;
//!     async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, String), CanoError> {
//!         Ok((TaskResult::Single(S::Done), "R-1".to_string()))
//!     }
//!     async fn compensate(&self, _res: &Resources, reservation: String) -> Result<(), CanoError> {
//!         println!("releasing {reservation}");
//!         Ok(())
//!     }
//! }
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

#[doc(inline)]
pub use cano_macros::compensatable_task as task;

/// A step that can be undone: `run` returns an `Output`, `compensate` reverses it.
///
/// `compensate` must be idempotent and must work from `(res, output)` alone: after a
/// crash it may run in another process, from the output recorded in the checkpoint log.
/// [`name`](CompensatableTask::name) keys the compensation and should be stable.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a saga task (`CompensatableTask<{TState}>`)",
    label = "not a saga task",
    note = "plain tasks are registered with `Workflow::register`; saga tasks need `#[saga::task]` on their impl (or `impl CompensatableTask<State> for ...`)"
)]
pub trait CompensatableTask<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// What `run` did, as needed to undo it (stored as JSON).
    type Output: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Settings for `run` (its `attempt_timeout` also bounds each `compensate`).
    /// Default: [`TaskConfig::default`].
    fn config(&self) -> TaskConfig {
        TaskConfig::default()
    }

    /// The step's name, used as the compensation key and checkpoint `task_id`.
    /// Default: the type's path.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Whether `error`, from failed attempt number `attempt` (1-based) of `run`, is worth
    /// another attempt; see [`Task::is_retryable`](crate::Task::is_retryable). Default: yes.
    /// A step that fails for good starts the rollback of the steps before it.
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }

    /// Do the step; return the next state and what was done.
    #[allow(clippy::type_complexity)] // the boxed async-fn shape of the contract
    fn run<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(TaskResult<TState>, Self::Output), CanoError>>
                + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// Undo the step described by `output`.
    fn compensate<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
        output: Self::Output,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// The future of [`ErasedCompensatable::run`]: the next state and the output as JSON.
pub type ForwardRunFuture<'a, TState> =
    Pin<Box<dyn Future<Output = Result<(TaskResult<TState>, Vec<u8>), CanoError>> + Send + 'a>>;

/// The future of [`ErasedCompensatable::compensate`].
pub type CompensateFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'a>>;

/// A compensatable task with its output serialized, as the engine stores it.
pub trait ErasedCompensatable<TState, TResourceKey>: Send + Sync
where
    TState: Clone + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// The task's name.
    fn name(&self) -> Cow<'static, str>;
    /// The task's settings.
    fn config(&self) -> TaskConfig;
    /// Whether a failed attempt of `run` is worth another one. Default: yes.
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }
    /// Run forward; the output comes back as JSON bytes.
    fn run<'a>(&'a self, res: &'a Resources<TResourceKey>) -> ForwardRunFuture<'a, TState>;
    /// Undo the step whose output is `output_blob` (JSON).
    fn compensate<'a>(
        &'a self,
        res: &'a Resources<TResourceKey>,
        output_blob: &'a [u8],
    ) -> CompensateFuture<'a>;
}

/// Adapts a typed [`CompensatableTask`] to [`ErasedCompensatable`] (JSON outputs).
pub(crate) struct CompensatableAdapter<T>(pub(crate) Arc<T>);

impl<T, TState, TResourceKey> ErasedCompensatable<TState, TResourceKey> for CompensatableAdapter<T>
where
    T: CompensatableTask<TState, TResourceKey> + 'static,
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

    fn run<'a>(&'a self, res: &'a Resources<TResourceKey>) -> ForwardRunFuture<'a, TState> {
        Box::pin(async move {
            let (result, output) = self.0.run(res).await?;
            let blob = serde_json::to_vec(&output).map_err(|e| {
                CanoError::task_execution(format!(
                    "serialize compensation output for `{}`: {e}",
                    self.0.name()
                ))
            })?;
            Ok((result, blob))
        })
    }

    fn compensate<'a>(
        &'a self,
        res: &'a Resources<TResourceKey>,
        output_blob: &'a [u8],
    ) -> CompensateFuture<'a> {
        Box::pin(async move {
            let output = serde_json::from_slice::<T::Output>(output_blob).map_err(|e| {
                CanoError::generic(format!(
                    "deserialize compensation output for `{}`: {e}",
                    self.0.name()
                ))
            })?;
            self.0.compensate(res, output).await
        })
    }
}
