//! [`BatchTask`]: load items, process each (concurrently, with per-item retries), finish.
//!
//! The engine runs [`BatchTask::load`], then [`BatchTask::process_item`] on every item
//! with at most [`BatchTask::concurrency`] in flight (all inside the state's own task,
//! not spawned), retrying each item per [`BatchTask::item_retry`], and finally
//! [`BatchTask::finish`] with one result per item, in input order. A failing item does
//! not fail the batch: `finish` decides. Only a `load` or `finish` error fails the state
//! (and is retried per [`BatchTask::config`], re-running the whole batch).
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum S { Resize, Done }
//!
//! struct Resize;
//! #[task::batch(state = S)]
//! impl Resize {
//!     fn concurrency(&self) -> usize { 4 }
//!     async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
//!         Ok((1..=10).collect())
//!     }
//!     async fn process_item(&self, item: &u32) -> Result<u32, CanoError> {
//!         Ok(item * 2)
//!     }
//!     async fn finish(&self, res: &Resources, outputs: Vec<Result<u32, CanoError>>)
//!         -> Result<TaskResult<S>, CanoError>
//!     {
//!         let total: u32 = outputs.into_iter().filter_map(Result::ok).sum();
//!         res.get::<MemoryStore, _>("store")?.put("total", total)?;
//!         Ok(TaskResult::Single(S::Done))
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let store = MemoryStore::new();
//! let wf = Workflow::new(Resources::new().insert("store", store.clone()))
//!     .register(S::Resize, Resize)
//!     .add_exit_state(S::Done);
//! wf.orchestrate(S::Resize).await?;
//! assert_eq!(store.get::<u32>("total")?, 110);
//! # Ok(()) }
//! ```

use crate::error::CanoError;
use crate::resource::Resources;
use crate::task::{RetryMode, TaskConfig, TaskResult};
use futures_util::StreamExt;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;

/// The item type of [`DynBatchTask`].
pub type DefaultBatchItem = Box<dyn std::any::Any + Send + Sync>;
/// The output type of [`DynBatchTask`].
pub type DefaultBatchItemOutput = Box<dyn std::any::Any + Send>;

/// A task that fans out over data items inside one state. Write it with `#[task::batch]`;
/// the attribute also implements [`Task`](crate::Task) for the type (forwarding `config`,
/// `name` and `is_retryable`, and running [`run_batch`]).
#[allow(clippy::type_complexity)] // the boxed async-fn signatures are fixed by the contract
pub trait BatchTask<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// One unit of input.
    type Item: Send + Sync + 'static;
    /// What processing one item yields.
    type ItemOutput: Send + 'static;

    /// Items processed at once (0 is treated as 1). Default: 1.
    fn concurrency(&self) -> usize {
        1
    }

    /// Retry policy for each item. Default: [`RetryMode::None`].
    fn item_retry(&self) -> RetryMode {
        RetryMode::None
    }

    /// Settings for the whole batch (load → process → finish). Default: [`TaskConfig::default`].
    fn config(&self) -> TaskConfig {
        TaskConfig::default()
    }

    /// The task's name. Default: the type's path.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Whether `error`, returned by failed attempt number `attempt` (1-based), is worth
    /// another attempt. Default: every error is. Asked for a failed item (its attempts
    /// under [`item_retry`](Self::item_retry): `false` hands the error to `finish` at
    /// once) and for a failed `load` or `finish` (the batch's attempts under
    /// [`config`](Self::config): `false` fails the state at once with that error, not
    /// wrapped in `RetryExhausted`). See [`Task::is_retryable`](crate::Task::is_retryable).
    ///
    /// ```
    /// use cano::prelude::*;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    ///
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { Resize, Done }
    /// struct Resize(Arc<AtomicU32>);
    ///
    /// #[task::batch(state = S)]
    /// impl Resize {
    ///     fn item_retry(&self) -> RetryMode {
    ///         RetryMode::fixed(3, Duration::from_millis(100))
    ///     }
    ///     fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
    ///         !error.message().contains("corrupt")
    ///     }
    ///     async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
    ///         Ok(vec![7])
    ///     }
    ///     async fn process_item(&self, _item: &u32) -> Result<u32, CanoError> {
    ///         self.0.fetch_add(1, Ordering::SeqCst);
    ///         Err(CanoError::task_execution("corrupt image"))
    ///     }
    ///     async fn finish(&self, _res: &Resources, outputs: Vec<Result<u32, CanoError>>)
    ///         -> Result<TaskResult<S>, CanoError>
    ///     {
    ///         assert!(outputs[0].is_err());
    ///         Ok(TaskResult::Single(S::Done))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let wf = Workflow::bare().register(S::Resize, Resize(calls.clone())).add_exit_state(S::Done);
    /// assert_eq!(wf.orchestrate(S::Resize).await?, S::Done);
    /// assert_eq!(calls.load(Ordering::SeqCst), 1); // the item was not retried
    /// # Ok(()) }
    /// ```
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }

    /// Produce the items to process.
    fn load<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Self::Item>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// Process one item.
    fn process_item<'life0, 'life1, 'async_trait>(
        &'life0 self,
        item: &'life1 Self::Item,
    ) -> Pin<Box<dyn Future<Output = Result<Self::ItemOutput, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// Combine the per-item results (in input order) and choose the next state.
    fn finish<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
        outputs: Vec<Result<Self::ItemOutput, CanoError>>,
    ) -> Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// A type-erased batch task over boxed items.
pub type DynBatchTask<TState, TResourceKey = Cow<'static, str>> = dyn BatchTask<TState, TResourceKey, Item = DefaultBatchItem, ItemOutput = DefaultBatchItemOutput>
    + Send
    + Sync;

/// A shared, type-erased batch task.
pub type BatchTaskObject<TState, TResourceKey = Cow<'static, str>> =
    Arc<DynBatchTask<TState, TResourceKey>>;

/// Run a batch: load, process every item with bounded concurrency and per-item retries,
/// then finish with the results in input order.
///
/// Memory stays proportional to the items themselves: at most `concurrency` items are
/// in flight, and results go straight into their input slot.
///
/// # Errors
/// A `load` or `finish` error (item errors are handed to `finish`).
pub async fn run_batch<B, S, K>(b: &B, res: &Resources<K>) -> Result<TaskResult<S>, CanoError>
where
    B: BatchTask<S, K> + ?Sized,
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    let items = b.load(res).await?;
    let config = TaskConfig::minimal().with_retry(b.item_retry());
    let concurrency = b.concurrency().max(1);
    type Slot<T> = Option<Result<T, CanoError>>;
    let mut slots: Vec<Slot<B::ItemOutput>> =
        std::iter::repeat_with(|| None).take(items.len()).collect();
    // At most `concurrency` item futures in flight, all polled by this task.
    let mut pending = items.iter().enumerate();
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    loop {
        while in_flight.len() < concurrency {
            let Some((i, item)) = pending.next() else {
                break;
            };
            in_flight.push(indexed(i, process_with_retry(b, item, &config)));
        }
        let Some((i, result)) = in_flight.next().await else {
            break;
        };
        slots[i] = Some(result);
    }
    drop(in_flight);
    drop(items);
    let slots_len = slots.len();
    let outputs = slots
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| Err(CanoError::task_execution("batch item produced no result")))
        })
        .collect::<Vec<_>>();
    let failed = outputs.iter().filter(|o| o.is_err()).count();
    let finished = b.finish(res, outputs).await;
    crate::instrument::batch_run(finished.is_ok(), slots_len - failed, failed);
    finished
}

/// `fut`'s output tagged with the item index.
async fn indexed<T>(i: usize, fut: impl Future<Output = T>) -> (usize, T) {
    (i, fut.await)
}

/// One item under the item retry policy, retrying only the errors the task says are worth
/// it ([`BatchTask::is_retryable`]). The last error is returned unwrapped.
async fn process_with_retry<B, S, K>(
    b: &B,
    item: &B::Item,
    config: &TaskConfig,
) -> Result<B::ItemOutput, CanoError>
where
    B: BatchTask<S, K> + ?Sized,
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    super::attempt::retry_loop(
        config,
        || b.process_item(item),
        |e, n| b.is_retryable(e, n),
        super::attempt::Exhausted::LastError,
        None,
    )
    .await
}
