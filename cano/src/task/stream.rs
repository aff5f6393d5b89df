//! The stream model: a source of items processed one by one, in tumbling windows, with
//! each window's cursor committed to the run's log after it is flushed.
//!
//! A [`StreamTask`] opens its source from a cursor (`None` the first time), turns each
//! item into an output and the cursor just past it ([`process_item`](StreamTask::process_item)),
//! and flushes the outputs of each window ([`flush_window`](StreamTask::flush_window)):
//! a window closes after [`StreamWindow::Count`] outputs, or [`StreamWindow::Duration`]
//! after its first output. After a flush, the cursor of the window's last item is
//! committed — with a checkpoint store, as a [`StepCursor`](crate::RowKind::StepCursor) row
//! of the run's log — so a run resumed after a crash opens the source again from there
//! and nothing flushed is processed twice. When the source ends, the last (partial) window
//! is flushed and [`on_close`](StreamTask::on_close) picks the next state.
//!
//! Register it with [`Workflow::register_stream`](crate::Workflow::register_stream): the
//! durable, cancellable path. A run cancelled (or past its total timeout) during a stream
//! state flushes the window in flight and commits its cursor before it stops, and calls
//! `on_close(CloseReason::Cancelled)` for cleanup. `#[task::stream]` also implements
//! [`Task`](crate::Task) for the type, so plain `register` works too, in memory: no
//! commits, no cancellation drain (for tests and throwaway runs).
//!
//! Delivery is at least once between commits: items after the last committed cursor are
//! processed again after a crash, so `process_item`, `flush_window` and `on_close` should
//! be idempotent. The log keeps one cursor row per window until the run reaches an exit
//! state.
//!
//! ```
//! use cano::prelude::*;
//! use cano::task::stream::{CloseReason, ItemStream, StreamWindow, WindowSignal};
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum S { Ingest, Done }
//!
//! /// Sums the numbers 0..10 in windows of 4.
//! struct Sum;
//!
//! #[task::stream(state = S)]
//! impl Sum {
//!     fn window(&self) -> StreamWindow { StreamWindow::Count(4) }
//!     async fn open(&self, _res: &Resources, cursor: Option<u32>) -> Result<ItemStream<u32>, CanoError> {
//!         Ok(cano::task::stream::items(cursor.unwrap_or(0)..10))
//!     }
//!     async fn process_item(&self, _res: &Resources, item: u32) -> Result<(u64, u32), CanoError> {
//!         Ok((u64::from(item), item + 1)) // the output, and the cursor just past the item
//!     }
//!     async fn flush_window(&self, res: &Resources, outputs: Vec<u64>) -> Result<WindowSignal<S>, CanoError> {
//!         let store = res.get::<MemoryStore, _>("sums")?;
//!         let mut sums: Vec<u64> = store.get("sums").unwrap_or_default();
//!         sums.push(outputs.iter().sum());
//!         store.put("sums", sums)?;
//!         Ok(WindowSignal::Continue)
//!     }
//!     async fn on_close(&self, _res: &Resources, _reason: CloseReason) -> Result<TaskResult<S>, CanoError> {
//!         Ok(TaskResult::Single(S::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let sums = MemoryStore::new();
//! let wf = Workflow::new(Resources::new().insert("sums", sums.clone()))
//!     .register_stream(S::Ingest, Sum)
//!     .add_exit_state(S::Done);
//! assert_eq!(wf.orchestrate(S::Ingest).await?, S::Done);
//! assert_eq!(sums.get::<Vec<u64>>("sums")?, [0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9]);
//! # Ok(()) }
//! ```

use super::stepped::{decode_cursor, encode_cursor};
use super::{TaskConfig, TaskResult};
use crate::error::CanoError;
use crate::resource::Resources;
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The items of a stream task's source.
pub type ItemStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

pub use futures_util::Stream;

/// A source over the items of `iter` (a `Vec`, a range, an iterator), for tests and for
/// sources already in memory.
///
/// ```
/// use cano::task::stream::{items, ItemStream};
/// let source: ItemStream<u32> = items(0..3);
/// ```
pub fn items<I>(iter: I) -> ItemStream<I::Item>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    Box::pin(futures_util::stream::iter(iter))
}

/// When a window closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamWindow {
    /// After this many outputs (at least 1).
    Count(usize),
    /// This long after the window's first output (at least 1 ms). A quiet source opens
    /// no empty windows.
    Duration(Duration),
}

/// cano 0.15's other name for [`StreamWindow`].
pub type StreamBatch = StreamWindow;

impl StreamWindow {
    /// The window with its lower bounds applied (1 item, 1 ms).
    fn bounded(self) -> Self {
        match self {
            Self::Count(n) => Self::Count(n.max(1)),
            Self::Duration(d) => Self::Duration(d.max(Duration::from_millis(1))),
        }
    }
}

/// What an item that fails ([`process_item`](StreamTask::process_item) returns an error, or
/// passes the attempt timeout) does to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamErrorPolicy {
    /// Fail the state with the item's error: the window in flight is dropped (not
    /// flushed, its cursor not committed) and `on_close` is not called.
    #[default]
    FailFast,
    /// Drop the item and go on; its cursor is not committed.
    SkipAndContinue,
    /// Drop failed items and go on, unless more than `max_errors` fail in a row; then
    /// fail as [`FailFast`](Self::FailFast). (A budget, not a retry: a dropped item is not
    /// pulled again.)
    RetryOnError {
        /// Consecutive failures tolerated.
        max_errors: u32,
    },
}

/// What [`flush_window`](StreamTask::flush_window) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowSignal<TState> {
    /// Commit the window's cursor and go on.
    Continue,
    /// Commit the window's cursor and leave the state with this result (the source is
    /// not read further and `on_close` is not called).
    Stop(TaskResult<TState>),
}

/// Why [`on_close`](StreamTask::on_close) is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The source ended; its result picks the next state.
    Exhausted,
    /// The run was cancelled (or passed its total timeout) and the window in flight was
    /// flushed: clean up; the result is ignored and the run stops.
    Cancelled,
}

/// A source of items processed in windows, with a durable cursor. Write it with
/// `#[task::stream]` (see the [module docs](self)).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a stream task (`StreamTask<{TState}>`)",
    label = "not a stream task",
    note = "`Workflow::register_stream` takes a stream task: `#[task::stream]` on its impl"
)]
#[allow(clippy::type_complexity)] // the boxed async-fn shapes of the contract
pub trait StreamTask<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// What the source yields.
    type Item: Send + 'static;
    /// What processing an item gives, collected per window.
    type Output: Send + 'static;
    /// Where the source stands (persisted as JSON after each flushed window).
    type Cursor: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// When a window closes. Default: after every output (`Count(1)`).
    fn window(&self) -> StreamWindow {
        StreamWindow::Count(1)
    }

    /// What a failed item does. Default: [`StreamErrorPolicy::FailFast`].
    fn on_item_error(&self) -> StreamErrorPolicy {
        StreamErrorPolicy::FailFast
    }

    /// Settings: its `attempt_timeout` bounds each `process_item` call; there is no
    /// retry (it would read the source again). Default: [`TaskConfig::minimal`].
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    /// The task's name. Default: the type's path.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Open the source at `cursor` (`None`: from its start).
    fn open<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
        cursor: Option<Self::Cursor>,
    ) -> Pin<
        Box<dyn Future<Output = Result<ItemStream<Self::Item>, CanoError>> + Send + 'async_trait>,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// Process one item: its output and the cursor just past it.
    fn process_item<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
        item: Self::Item,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(Self::Output, Self::Cursor), CanoError>>
                + Send
                + 'async_trait,
        >,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// Flush a window's outputs (write them out); its cursor is committed after this
    /// returns `Ok`.
    fn flush_window<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
        outputs: Vec<Self::Output>,
    ) -> Pin<Box<dyn Future<Output = Result<WindowSignal<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// The source ended (pick the next state) or the run was cancelled (clean up).
    fn on_close<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
        reason: CloseReason,
    ) -> Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// Run `task` in memory from the start of its source: windows are flushed but no cursor
/// is recorded, and nothing can cancel it. What plain `register` runs.
///
/// # Errors
/// As the engine-driven stream: an item error under the error policy, a failed open,
/// flush or close.
pub async fn run_stream<T, S, K>(task: &T, res: &Resources<K>) -> Result<TaskResult<S>, CanoError>
where
    T: StreamTask<S, K> + ?Sized,
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    drive(task, res, None, &mut InMemory).await
}

/// What the engine gives a stream it drives: where to commit cursors, and when to stop.
pub(crate) trait StreamHost: Send {
    /// Record `cursor` (JSON) as the stream's committed position.
    fn commit(
        &mut self,
        cursor: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + '_>>;
    /// Resolves when the run must stop (pending forever if nothing can stop it).
    fn stop_signal(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
    /// The error a stopped run ends with (the stop is reported to observers here).
    fn stopped_error(&mut self) -> CanoError;
}

/// The host of a stream run in memory: nothing recorded, never stopped.
struct InMemory;

impl StreamHost for InMemory {
    fn commit(
        &mut self,
        _cursor: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + '_>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn stop_signal(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(std::future::pending())
    }
    fn stopped_error(&mut self) -> CanoError {
        CanoError::cancelled()
    }
}

/// The next thing a stream loop handles.
enum Event<I> {
    Item(Option<I>),
    WindowDue,
    Stop,
}

/// The stream loop: open at `cursor`, process, flush and commit windows, close.
async fn drive<T, S, K>(
    task: &T,
    res: &Resources<K>,
    cursor: Option<T::Cursor>,
    host: &mut (dyn StreamHost + '_),
) -> Result<TaskResult<S>, CanoError>
where
    T: StreamTask<S, K> + ?Sized,
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    let window = task.window().bounded();
    let policy = task.on_item_error();
    let attempt_timeout = task.config().attempt_timeout;
    // One stop signal and one window timer for the whole loop: nothing is set up per item.
    let mut stop = host.stop_signal();
    let mut source = tokio::select! {
        biased;
        () = &mut stop => return Err(host.stopped_error()),
        source = task.open(res, cursor) => source?,
    };
    let due = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(due);
    let mut window_open = false;
    let mut outputs: Vec<T::Output> = Vec::new();
    let mut last_cursor: Option<T::Cursor> = None;
    let mut failures_in_a_row: u32 = 0;
    loop {
        let event = tokio::select! {
            biased;
            () = &mut stop => Event::Stop,
            () = &mut due, if window_open => Event::WindowDue,
            item = source.next() => Event::Item(item),
        };
        let item = match event {
            Event::Item(Some(item)) => item,
            Event::Item(None) => {
                // Exhausted: flush the last window, then let `on_close` pick the way on.
                if let Some(result) = flush(task, res, host, &mut outputs, &mut last_cursor).await?
                {
                    return Ok(result);
                }
                crate::instrument::stream_run(crate::instrument::outcome::SUCCESS);
                return task.on_close(res, CloseReason::Exhausted).await;
            }
            Event::WindowDue => {
                window_open = false;
                if let Some(result) = flush(task, res, host, &mut outputs, &mut last_cursor).await?
                {
                    return Ok(result);
                }
                continue;
            }
            Event::Stop => {
                // Cancelled: flush and commit the window in flight, clean up, stop.
                let drained = flush(task, res, host, &mut outputs, &mut last_cursor).await;
                let _ = task.on_close(res, CloseReason::Cancelled).await;
                crate::instrument::stream_run(crate::instrument::outcome::CANCELLED);
                return Err(match drained {
                    Ok(_) => host.stopped_error(),
                    Err(flush_error) => flush_error,
                });
            }
        };
        let processed = match attempt_timeout {
            Some(limit) => match tokio::time::timeout(limit, task.process_item(res, item)).await {
                Ok(result) => result,
                Err(_) => Err(CanoError::timeout(format!(
                    "stream item exceeded attempt_timeout ({limit:?})"
                ))),
            },
            None => task.process_item(res, item).await,
        };
        crate::instrument::stream_item(processed.is_ok());
        match processed {
            Ok((output, cursor)) => {
                failures_in_a_row = 0;
                outputs.push(output);
                last_cursor = Some(cursor);
                match window {
                    StreamWindow::Count(n) if outputs.len() >= n => {
                        if let Some(result) =
                            flush(task, res, host, &mut outputs, &mut last_cursor).await?
                        {
                            return Ok(result);
                        }
                    }
                    StreamWindow::Duration(d) if !window_open => {
                        due.as_mut().reset(tokio::time::Instant::now() + d);
                        window_open = true;
                    }
                    _ => {}
                }
            }
            Err(e) => {
                failures_in_a_row = failures_in_a_row.saturating_add(1);
                let tolerated = match policy {
                    StreamErrorPolicy::FailFast => false,
                    StreamErrorPolicy::SkipAndContinue => true,
                    StreamErrorPolicy::RetryOnError { max_errors } => {
                        failures_in_a_row <= max_errors
                    }
                };
                if !tolerated {
                    crate::instrument::stream_run(crate::instrument::outcome::FAILURE);
                    return Err(e);
                }
            }
        }
    }
}

/// Flush `outputs` (if any) and commit `last_cursor`: `Some(result)` when the flush asks
/// to leave the state.
async fn flush<T, S, K>(
    task: &T,
    res: &Resources<K>,
    host: &mut (dyn StreamHost + '_),
    outputs: &mut Vec<T::Output>,
    last_cursor: &mut Option<T::Cursor>,
) -> Result<Option<TaskResult<S>>, CanoError>
where
    T: StreamTask<S, K> + ?Sized,
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    if outputs.is_empty() {
        return Ok(None);
    }
    let count = outputs.len();
    // The next window starts with room for as many outputs as this one had.
    let window = std::mem::replace(outputs, Vec::with_capacity(count));
    let signal = task.flush_window(res, window).await?;
    if let Some(cursor) = last_cursor.take() {
        let bytes = encode_cursor(&cursor, || task.name())?;
        host.commit(bytes).await?;
    }
    crate::instrument::stream_window(count);
    match signal {
        WindowSignal::Continue => Ok(None),
        WindowSignal::Stop(result) => Ok(Some(result)),
    }
}

/// The future of [`ErasedStreamTask::run`].
pub(crate) type StreamFuture<'a, TState> =
    Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'a>>;

/// A stream task with JSON cursors, as the engine stores it.
pub(crate) trait ErasedStreamTask<TState, TResourceKey>: Send + Sync
where
    TState: Clone + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// The task's name.
    fn name(&self) -> Cow<'static, str>;
    /// The task's settings.
    fn config(&self) -> TaskConfig;
    /// Run the stream from the JSON-encoded cursor, committing through `host`.
    fn run<'a>(
        &'a self,
        res: &'a Resources<TResourceKey>,
        cursor: Option<Vec<u8>>,
        host: &'a mut (dyn StreamHost + 'a),
    ) -> StreamFuture<'a, TState>;
}

/// Adapts a typed [`StreamTask`] to [`ErasedStreamTask`].
pub(crate) struct StreamAdapter<T>(pub(crate) Arc<T>);

impl<T, TState, TResourceKey> ErasedStreamTask<TState, TResourceKey> for StreamAdapter<T>
where
    T: StreamTask<TState, TResourceKey> + 'static,
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn name(&self) -> Cow<'static, str> {
        self.0.name()
    }

    fn config(&self) -> TaskConfig {
        self.0.config()
    }

    fn run<'a>(
        &'a self,
        res: &'a Resources<TResourceKey>,
        cursor: Option<Vec<u8>>,
        host: &'a mut (dyn StreamHost + 'a),
    ) -> StreamFuture<'a, TState> {
        Box::pin(async move {
            let cursor = decode_cursor(cursor, || self.0.name())?;
            drive(&*self.0, res, cursor, host).await
        })
    }
}
