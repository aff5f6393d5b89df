//! [`RouterTask`]: a state whose only job is to choose the next state.
//!
//! A router reads what it needs from [`Resources`] and returns the next state. It is
//! expected to have no side effects, so when registered with
//! [`Workflow::register_router`](crate::Workflow::register_router) its state writes no
//! checkpoint row (on resume it simply routes again). Registered with plain
//! [`register`](crate::Workflow::register) it is an ordinary, checkpointed state.
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum S { Triage, Small, Large, Done }
//!
//! struct BySize;
//! #[task::router(state = S)]
//! impl BySize {
//!     async fn route(&self, res: &Resources) -> Result<TaskResult<S>, CanoError> {
//!         let n = res.get::<MemoryStore, _>("store")?.get::<u32>("items")?;
//!         Ok(TaskResult::Single(if n > 100 { S::Large } else { S::Small }))
//!     }
//! }
//! # struct Fin;
//! # #[task(state = S)] impl Fin { async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) } }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let store = MemoryStore::new();
//! store.put("items", 7u32)?;
//! let wf = Workflow::new(Resources::new().insert("store", store))
//!     .register_router(S::Triage, BySize)
//!     .register(S::Small, Fin)
//!     .register(S::Large, Fin)
//!     .add_exit_state(S::Done);
//! assert_eq!(wf.orchestrate(S::Triage).await?, S::Done);
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

/// A side-effect-free state handler that picks the next state.
///
/// Write it with `#[task::router]`; the attribute also implements [`Task`](crate::Task)
/// for the type (forwarding `config`, `name` and `is_retryable`, and running `route`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a router task (`RouterTask<{TState}>`)",
    label = "not a router task",
    note = "`Workflow::register_router` takes a router task: `#[task::router]` on its impl; plain tasks are registered with `Workflow::register`"
)]
pub trait RouterTask<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Retry/timeout settings. Default: [`TaskConfig::default`].
    fn config(&self) -> TaskConfig {
        TaskConfig::default()
    }

    /// The router's name. Default: the type's path.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Whether `error`, returned by failed attempt number `attempt` (1-based) of
    /// [`route`](Self::route), is worth another attempt under the router's retry policy.
    /// Default: every error is. Return `false` for permanent failures (a record that does
    /// not exist): the state then fails at once with that error, not wrapped in
    /// `RetryExhausted`. See [`Task::is_retryable`](crate::Task::is_retryable).
    ///
    /// ```
    /// use cano::prelude::*;
    /// use std::time::Duration;
    ///
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { Triage, Done }
    /// struct ByRegion;
    ///
    /// #[task::router(state = S)]
    /// impl ByRegion {
    ///     fn config(&self) -> TaskConfig {
    ///         TaskConfig::new().with_fixed_retry(3, Duration::from_millis(100))
    ///     }
    ///     fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
    ///         !error.message().contains("unknown region")
    ///     }
    ///     async fn route(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
    ///         Err(CanoError::task_execution("unknown region"))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let wf = Workflow::bare().register_router(S::Triage, ByRegion).add_exit_state(S::Done);
    /// let err = wf.orchestrate(S::Triage).await.unwrap_err();
    /// assert_eq!(err.to_string(), "Task execution error: unknown region"); // one attempt
    /// # }
    /// ```
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }

    /// Choose the next state.
    fn route<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
    ) -> Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// A type-erased router.
pub type DynRouterTask<TState, TResourceKey = Cow<'static, str>> =
    dyn RouterTask<TState, TResourceKey> + Send + Sync;

/// A shared, type-erased router.
pub type RouterTaskObject<TState, TResourceKey = Cow<'static, str>> =
    Arc<DynRouterTask<TState, TResourceKey>>;
