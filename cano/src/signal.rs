//! Signals: a run waits in a state until another party — a person approving an order, a
//! webhook, another system — sends it a named signal carrying a payload.
//!
//! * A [`SignalTask`] (`#[task::signal]`, registered with
//!   [`Workflow::register_signal`](crate::Workflow::register_signal)) names the signal its
//!   state waits for, the payload's type, an optional timeout with the state to move to
//!   when it passes, and what to do with the payload ([`SignalTask::on_signal`]).
//! * The workflow's store must be a [`SignalStore`]
//!   ([`Workflow::with_signal_store`](crate::Workflow::with_signal_store)):
//!   [`MemoryCheckpointStore`](crate::MemoryCheckpointStore) and
//!   [`RedbCheckpointStore`](crate::RedbCheckpointStore) are.
//! * Anyone who can open the store sends with [`SignalStore::send_signal`] (or [`send`]),
//!   by run id, signal name and a **signal id** of the sender's choosing.
//!
//! What is guaranteed:
//!
//! * **Durable.** A signal is kept by the store until the run consumes it: one sent after
//!   the run started (its first row is in the store) but before it waits, or while the
//!   run's process is down, is consumed when it does wait (a run resumed with
//!   `resume_from` waits again, for what is left of its timeout). A signal for a run the
//!   store does not hold (not started yet, or finished) is refused with an error.
//! * **Idempotent.** Sending a signal id that the run has already received, or that is
//!   already pending, changes nothing (`send_signal` says `false`).
//! * **Consumed once.** Consuming a signal writes a [`RowKind::Signal`](crate::RowKind)
//!   row (name, id, payload) to the run's log before the payload is handed to the task; a
//!   run resumed after that hands the same payload to the task again and never takes
//!   another signal for that visit, and a signal id recorded in the log is never consumed
//!   again by the run. If the store fails while a signal is consumed, the signal stays
//!   pending and the run fails; `resume_from` consumes it.
//! * A payload that does not deserialize into the task's `Payload` type is not consumed:
//!   it is dropped from the store, reported (observers' `on_signal_rejected`, `tracing`),
//!   and the run keeps waiting.
//!
//! ```
//! use cano::prelude::*;
//! use cano::signal::{self, Signal, SignalStore};
//! use cano::MemoryCheckpointStore;
//! use std::sync::Arc;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Order { AwaitApproval, Ship, Cancelled }
//!
//! #[derive(serde::Deserialize)]
//! struct Approval { approved: bool, by: String }
//!
//! struct AwaitApproval;
//! #[task::signal(state = Order)]
//! impl AwaitApproval {
//!     type Payload = Approval;
//!     fn signal(&self) -> std::borrow::Cow<'static, str> { "approval".into() }
//!     async fn on_signal(&self, _res: &Resources, a: Approval) -> Result<TaskResult<Order>, CanoError> {
//!         Ok(TaskResult::Single(if a.approved { Order::Ship } else { Order::Cancelled }))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let store = Arc::new(MemoryCheckpointStore::new());
//! let wf = Workflow::bare()
//!     .register_signal(Order::AwaitApproval, AwaitApproval)
//!     .add_exit_states(vec![Order::Ship, Order::Cancelled])
//!     .with_signal_store(store.clone())
//!     .with_workflow_id("order-7");
//! let run = tokio::spawn(async move { wf.orchestrate(Order::AwaitApproval).await });
//! # tokio::task::yield_now().await;
//! # while store.load_run("order-7").await?.is_empty() { tokio::task::yield_now().await; }
//! // Elsewhere: approve order 7 (the id makes a repeated click harmless).
//! let approval = serde_json::json!({ "approved": true, "by": "ana" });
//! signal::send(&*store, "order-7", Signal::new("approval", "click-1", &approval)?).await?;
//! assert_eq!(run.await.unwrap()?, Order::Ship);
//! # Ok(()) }
//! ```

use crate::error::CanoError;
use crate::recovery::{CheckpointStore, StoreFuture};
use crate::resource::Resources;
use crate::task::{TaskConfig, TaskResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// One signal: its name (what a [`SignalTask`] waits for), the sender's id for it (what
/// makes a repeated delivery a no-op), and its payload as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The signal's name, e.g. `"approval"`.
    pub name: String,
    /// The sender's id for this signal, unique per run (a request id, a webhook's
    /// delivery id).
    pub id: String,
    /// The payload, as JSON.
    pub payload: Vec<u8>,
}

impl Signal {
    /// A signal whose payload is `payload` serialized as JSON.
    ///
    /// # Errors
    /// [`CanoError::Store`] when the payload does not serialize, naming the signal.
    pub fn new(
        name: impl Into<String>,
        id: impl Into<String>,
        payload: &impl Serialize,
    ) -> Result<Self, CanoError> {
        let name = name.into();
        let payload = serde_json::to_vec(payload).map_err(|e| {
            CanoError::store(format!(
                "signal {name:?}: the payload does not serialize: {e}"
            ))
        })?;
        Ok(Self {
            name,
            id: id.into(),
            payload,
        })
    }

    /// A signal whose payload is the JSON text `json` (as a command line or a web form
    /// gives it).
    ///
    /// # Errors
    /// [`CanoError::Store`] when `json` is not valid JSON, with the parser's message.
    pub fn from_json(
        name: impl Into<String>,
        id: impl Into<String>,
        json: &str,
    ) -> Result<Self, CanoError> {
        let name = name.into();
        serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(|e| {
            CanoError::store(format!(
                "signal {name:?}: the payload is not valid JSON: {e}"
            ))
        })?;
        Ok(Self {
            name,
            id: id.into(),
            payload: json.as_bytes().to_vec(),
        })
    }
}

/// A store that keeps signals for runs until they consume them: a capability beside
/// [`CheckpointStore`]. See the [module docs](self).
pub trait SignalStore: CheckpointStore {
    /// Keep `signal` for the run `workflow_id` until the run consumes it. Returns `true`
    /// if it was stored, `false` if a signal with the same id is already pending for the
    /// run or recorded as consumed in its log (a repeated delivery: nothing changes).
    ///
    /// # Errors
    /// The store holds no run `workflow_id` (an unknown or finished run: there is nothing
    /// to signal); the store failed.
    fn send_signal<'a>(&'a self, workflow_id: &'a str, signal: Signal) -> StoreFuture<'a, bool>;

    /// The signals named `name` pending for the run, oldest first.
    fn pending_signals<'a>(
        &'a self,
        workflow_id: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Vec<Signal>>;

    /// Forget a pending signal (the engine calls it once the signal's consumption is in
    /// the run's log, or when its payload was rejected). A no-op if it is not pending.
    fn remove_signal<'a>(&'a self, workflow_id: &'a str, signal_id: &'a str)
    -> StoreFuture<'a, ()>;

    /// Whether a signal was sent to the run `workflow_id` through this store object since
    /// this last returned `Ready` for it (or since [`forget_signal_waker`]): `Ready` if so,
    /// else `Pending`, and the task of `cx` is woken when one is sent. `None` (the default)
    /// when the store cannot tell: the engine then checks for signals every second.
    ///
    /// A waiting run polls this once before it first reads its pending signals, so a
    /// signal sent after that read wakes it. A `Ready` may be spurious (the signal was one
    /// the run had already read): the engine reads the pending signals again.
    ///
    /// [`forget_signal_waker`]: SignalStore::forget_signal_waker
    fn poll_signal_sent(&self, workflow_id: &str, cx: &mut Context<'_>) -> Option<Poll<()>> {
        let _ = (workflow_id, cx);
        None
    }

    /// The run stopped waiting: the store may forget what it kept for
    /// [`poll_signal_sent`](SignalStore::poll_signal_sent).
    fn forget_signal_waker(&self, workflow_id: &str) {
        let _ = workflow_id;
    }
}

/// One waiting run's wake-up: whether a signal was sent since it last looked, and the task
/// to wake. 24 bytes, where a `tokio::sync::Notify` shared with the run costs a 64-byte
/// allocation and a 64-byte `Notified` in the run's future.
#[derive(Debug, Default)]
pub(crate) struct WakeSlot {
    waker: Option<Waker>,
    sent: bool,
}

impl WakeSlot {
    /// [`SignalStore::poll_signal_sent`] for this run.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::take(&mut self.sent) {
            return Poll::Ready(());
        }
        match &mut self.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => self.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// A signal was sent: the task to wake (once the caller's lock is released).
    #[must_use]
    pub(crate) fn sent(&mut self) -> Option<Waker> {
        self.sent = true;
        self.waker.take()
    }
}

/// The wake-ups of the runs waiting for signals in one store object (what
/// [`SignalStore::poll_signal_sent`] reads).
#[derive(Debug, Default)]
pub(crate) struct Wakers(parking_lot::Mutex<std::collections::HashMap<Box<str>, WakeSlot>>);

impl Wakers {
    /// [`SignalStore::poll_signal_sent`] for `workflow_id`, and whether this was its first
    /// poll since it began waiting.
    pub(crate) fn poll(&self, workflow_id: &str, cx: &mut Context<'_>) -> (Poll<()>, bool) {
        let mut wakers = self.0.lock();
        if let Some(slot) = wakers.get_mut(workflow_id) {
            return (slot.poll(cx), false);
        }
        let poll = wakers.entry(Box::from(workflow_id)).or_default().poll(cx);
        (poll, true)
    }

    /// Wake the run `workflow_id` if it waits (its next poll is `Ready` if it is between
    /// polls).
    pub(crate) fn wake(&self, workflow_id: &str) {
        let waker = self.0.lock().get_mut(workflow_id).and_then(WakeSlot::sent);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The run stopped waiting.
    pub(crate) fn forget(&self, workflow_id: &str) {
        self.0.lock().remove(workflow_id);
    }
}

/// Send `signal` to the run `workflow_id` through `store`: [`SignalStore::send_signal`]
/// that says `Ok(())` for a repeated delivery too.
///
/// # Errors
/// See [`SignalStore::send_signal`].
pub async fn send<S: SignalStore + ?Sized>(
    store: &S,
    workflow_id: &str,
    signal: Signal,
) -> Result<(), CanoError> {
    store.send_signal(workflow_id, signal).await.map(drop)
}

/// A state that waits for a signal. See the [module docs](self).
///
/// Implement it with `#[task::signal]` (inherent form `#[task::signal(state = S[, key =
/// K])] impl T { type Payload = …; fn signal(&self) -> … ; async fn on_signal(…) }`, or
/// the trait-impl form) and register it with
/// [`Workflow::register_signal`](crate::Workflow::register_signal).
pub trait SignalTask<TState, TResourceKey = Cow<'static, str>>: Send + Sync
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// What the signal carries (deserialized from its JSON payload).
    type Payload: DeserializeOwned + Send + 'static;

    /// Retry policy and timeout for [`on_signal`](Self::on_signal). Default:
    /// [`TaskConfig::minimal`] (one attempt).
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    /// The task's name (its checkpoint rows' `task_id`). Default: the type name.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Whether `error`, returned by failed attempt number `attempt` (1-based) of
    /// [`on_signal`](Self::on_signal), is worth another attempt under the task's retry
    /// policy. Default: every error is. Return `false` for permanent failures (an order
    /// the signal names does not exist): the state then fails at once with that error, not
    /// wrapped in `RetryExhausted`. The signal stays consumed: a resumed run hands the same
    /// payload to the task again. See [`Task::is_retryable`](crate::Task::is_retryable).
    ///
    /// ```
    /// use cano::prelude::*;
    /// use cano::signal::{self, Signal};
    /// use cano::MemoryCheckpointStore;
    /// use std::borrow::Cow;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { Approve, Done }
    /// struct Approval;
    ///
    /// #[task::signal(state = S)]
    /// impl Approval {
    ///     type Payload = u64;
    ///     fn signal(&self) -> Cow<'static, str> {
    ///         "approved".into()
    ///     }
    ///     fn config(&self) -> TaskConfig {
    ///         TaskConfig::new().with_fixed_retry(3, Duration::from_millis(100))
    ///     }
    ///     fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
    ///         !error.message().contains("no such order")
    ///     }
    ///     async fn on_signal(&self, _res: &Resources, order: u64) -> Result<TaskResult<S>, CanoError> {
    ///         Err(CanoError::task_execution(format!("no such order: {order}")))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
    /// let store = Arc::new(MemoryCheckpointStore::new());
    /// let wf = Workflow::bare()
    ///     .register_signal(S::Approve, Approval)
    ///     .add_exit_state(S::Done)
    ///     .with_signal_store(store.clone())
    ///     .with_workflow_id("run-1");
    /// let run = tokio::spawn(async move { wf.orchestrate(S::Approve).await });
    /// # use cano::CheckpointStore;
    /// # while store.load_run("run-1").await?.is_empty() { tokio::task::yield_now().await; }
    /// signal::send(&*store, "run-1", Signal::new("approved", "s1", &7u64)?).await?;
    /// let err = run.await.unwrap().unwrap_err();
    /// assert_eq!(err.to_string(), "Task execution error: no such order: 7"); // one attempt
    /// # Ok(()) }
    /// ```
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        let _ = (error, attempt);
        true
    }

    /// The name of the signal the state waits for.
    fn signal(&self) -> Cow<'static, str>;

    /// How long to wait at most, and the state to move to when that time passes without
    /// a signal. Default: wait forever. The deadline is recorded in the run's log, so a
    /// resumed run waits only what is left.
    fn timeout(&self) -> Option<(Duration, TState)> {
        None
    }

    /// The signal arrived: the next state.
    fn on_signal<'life0, 'life1, 'async_trait>(
        &'life0 self,
        res: &'life1 Resources<TResourceKey>,
        payload: Self::Payload,
    ) -> Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// The future of [`ErasedSignalTask::on_signal`].
pub(crate) type OnSignalFuture<'a, TState> =
    Pin<Box<dyn Future<Output = Result<TaskResult<TState>, CanoError>> + Send + 'a>>;

/// A signal task with its payload as JSON, as the engine runs it.
pub(crate) trait ErasedSignalTask<TState, TResourceKey>: Send + Sync
where
    TState: Clone + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn name(&self) -> Cow<'static, str>;
    fn signal(&self) -> Cow<'static, str>;
    fn timeout(&self) -> Option<(Duration, TState)>;
    /// Whether a failed attempt of `on_signal` is worth another one
    /// ([`SignalTask::is_retryable`]).
    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool;
    /// Whether `payload` deserializes into the task's payload type (the error says why not).
    fn check(&self, payload: &[u8]) -> Result<(), String>;
    fn on_signal<'a>(
        &'a self,
        res: &'a Resources<TResourceKey>,
        payload: &'a [u8],
    ) -> OnSignalFuture<'a, TState>;
}

/// Adapts a typed [`SignalTask`] to [`ErasedSignalTask`].
pub(crate) struct SignalAdapter<T>(pub(crate) T);

impl<T, TState, TResourceKey> ErasedSignalTask<TState, TResourceKey> for SignalAdapter<T>
where
    T: SignalTask<TState, TResourceKey> + 'static,
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn name(&self) -> Cow<'static, str> {
        self.0.name()
    }

    fn signal(&self) -> Cow<'static, str> {
        self.0.signal()
    }

    fn timeout(&self) -> Option<(Duration, TState)> {
        self.0.timeout()
    }

    fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
        self.0.is_retryable(error, attempt)
    }

    fn check(&self, payload: &[u8]) -> Result<(), String> {
        serde_json::from_slice::<T::Payload>(payload)
            .map(drop)
            .map_err(|e| {
                format!(
                    "the payload does not deserialize into {}: {e}",
                    std::any::type_name::<T::Payload>()
                )
            })
    }

    fn on_signal<'a>(
        &'a self,
        res: &'a Resources<TResourceKey>,
        payload: &'a [u8],
    ) -> OnSignalFuture<'a, TState> {
        Box::pin(async move {
            let payload = serde_json::from_slice::<T::Payload>(payload).map_err(|e| {
                CanoError::workflow(format!(
                    "signal {:?}: the payload recorded in the log does not deserialize into {}: {e}",
                    self.0.signal(),
                    std::any::type_name::<T::Payload>()
                ))
            })?;
            self.0.on_signal(res, payload).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wake_between_polls_is_kept() {
        let wakers = Wakers::default();
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(wakers.poll("r", &mut cx), (Poll::Pending, true));
        wakers.wake("r");
        wakers.wake("unknown"); // nobody waits: nothing happens
        assert_eq!(wakers.poll("r", &mut cx), (Poll::Ready(()), false));
        assert_eq!(wakers.poll("r", &mut cx), (Poll::Pending, false));
        wakers.forget("r");
        assert!(wakers.0.lock().is_empty());
    }

    #[tokio::test]
    async fn a_wake_wakes_the_polling_task() {
        let wakers = Arc::new(Wakers::default());
        let waiting = Arc::clone(&wakers);
        let woken = tokio::spawn(async move {
            std::future::poll_fn(|cx| waiting.poll("r", cx).0).await;
        });
        while wakers
            .0
            .lock()
            .get("r")
            .is_none_or(|slot| slot.waker.is_none())
        {
            tokio::task::yield_now().await;
        }
        wakers.wake("r");
        tokio::time::timeout(std::time::Duration::from_secs(10), woken)
            .await
            .expect("woken")
            .expect("no panic");
    }

    #[test]
    fn payloads_are_json_and_bad_json_is_refused() {
        let s = Signal::new("approval", "1", &serde_json::json!({"ok": true})).unwrap();
        assert_eq!(s.payload, br#"{"ok":true}"#);
        let err = Signal::from_json("approval", "1", "{ok: true").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        assert!(Signal::from_json("approval", "1", " [1, 2] ").is_ok());
    }
}
