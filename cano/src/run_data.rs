//! Durable run data: a per-run key/value map whose values survive a crash, and what a task
//! can know about the run it belongs to (its id, an idempotency key for the visit).
//!
//! # What is durable and what is not
//!
//! | what | lives | after a crash and `resume_from` |
//! |---|---|---|
//! | [`RunData`] values | in the run's checkpoint log | exactly the values that **completed** states wrote |
//! | [`MemoryStore`](crate::MemoryStore), resources, anything in your process | in memory, shared by every run of the workflow | gone (a new process starts empty) |
//! | the run's position, saga steps, cursors, timers, signals | in the run's checkpoint log | kept |
//!
//! A task writes with [`RunData::put`]; the writes of a state are recorded in the run's log
//! together with the entry row of the **next** state, in one append. So a resumed run (in
//! this process or another) sees every value written by the states that completed before
//! the crash, and never a value written by the state that was interrupted: that state runs
//! again and writes again. Reads see the state's own writes at once.
//!
//! Run data is available to the tasks of a workflow built with
//! [`Workflow::with_run_data`](crate::Workflow::with_run_data): durable with a checkpoint
//! store, in memory without one (tests, store-less runs); split members share their run's
//! data. Workflows that do not ask for it pay nothing for it.
//! Values are stored as JSON with their type's name, so a value read back as another type
//! is an error naming the key, the run and both types.
//!
//! # Idempotency keys
//!
//! [`RunData::idempotency_key`] is `"{run id}/{visit}"`, where `visit` counts the states
//! the run entered (with a checkpoint row) before this one: the same when a state runs
//! again after a resume, different for a later visit of the same state. Pass it to the
//! payment provider, the mailer, the queue, so that a side effect repeated by a resume is
//! done once.
//!
//! ```
//! use cano::prelude::*;
//! use cano::run_data::RunData;
//! use std::sync::Arc;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Order { Quote, Charge, Done }
//!
//! struct Quote;
//! #[task(state = Order)]
//! impl Quote {
//!     async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
//!         RunData::current()?.put("amount_cents", 1999u64)?;
//!         Ok(TaskResult::Single(Order::Charge))
//!     }
//! }
//!
//! struct Charge;
//! #[task(state = Order)]
//! impl Charge {
//!     async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
//!         let data = RunData::current()?;
//!         let amount: u64 = data.get("amount_cents")?;
//!         assert_eq!(amount, 1999);
//!         // Stable across a resume of this visit: safe to give to the payment provider.
//!         assert_eq!(data.idempotency_key(), "order-42/1");
//!         Ok(TaskResult::Single(Order::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let wf = Workflow::bare()
//!     .register(Order::Quote, Quote)
//!     .register(Order::Charge, Charge)
//!     .add_exit_state(Order::Done)
//!     .with_checkpoint_store(Arc::new(cano::MemoryCheckpointStore::new()))
//!     .with_workflow_id("order-42")
//!     .with_run_data();
//! assert_eq!(wf.orchestrate(Order::Quote).await?, Order::Done);
//! # Ok(()) }
//! ```

use crate::error::CanoError;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    /// The run data of the run whose task is being polled.
    static RUN: Option<Arc<RunScope>>;
}

/// One stored value of run data: its JSON and the name of the type it was written as.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredValue {
    /// The Rust type it was written as (`std::any::type_name`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The value, as JSON.
    pub value: serde_json::Value,
}

/// The run data written between two entry rows: values set, keys removed (as recorded
/// in the log; see [`crate::recovery::log`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataWrites {
    /// Keys set, with their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, StoredValue>,
    /// Keys removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

impl DataWrites {
    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// Apply these writes to `values`.
    pub fn apply(self, values: &mut BTreeMap<String, StoredValue>) {
        for key in self.removed {
            values.remove(&key);
        }
        values.extend(self.set);
    }
}

/// The run data of one run, shared by the engine and the run's tasks.
#[derive(Debug)]
pub(crate) struct RunScope {
    run_id: Option<Arc<str>>,
    state: Mutex<ScopeState>,
}

#[derive(Debug, Default)]
struct ScopeState {
    /// Values recorded in the log (or, in memory, written by completed states).
    committed: BTreeMap<String, StoredValue>,
    /// This state's writes: `Some` set, `None` removed.
    pending: BTreeMap<String, Option<StoredValue>>,
    /// The ordinal of the visit in progress.
    visit: u64,
    /// The ordinal the next visit gets.
    next_visit: u64,
}

impl RunScope {
    /// A run's data: `committed` values (a resumed run's, from its log) and the number of
    /// visits recorded so far (`visits`; the visit in progress is the last of them).
    pub(crate) fn new(
        run_id: Option<Arc<str>>,
        committed: BTreeMap<String, StoredValue>,
        visits: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            run_id,
            state: Mutex::new(ScopeState {
                committed,
                pending: BTreeMap::new(),
                visit: visits.saturating_sub(1),
                next_visit: visits,
            }),
        })
    }

    /// A new visit begins (a state entered with a fresh entry row): take the writes of
    /// the states before it, to record with that row, and count the visit.
    pub(crate) fn begin_visit(&self) -> DataWrites {
        let mut state = self.state.lock();
        state.visit = state.next_visit;
        state.next_visit = state.next_visit.saturating_add(1);
        let pending = std::mem::take(&mut state.pending);
        let mut writes = DataWrites::default();
        for (key, value) in pending {
            match value {
                Some(stored) => {
                    state.committed.insert(key.clone(), stored.clone());
                    writes.set.insert(key, stored);
                }
                None => {
                    state.committed.remove(&key);
                    writes.removed.push(key);
                }
            }
        }
        writes
    }

    /// Run `fut` with this scope as its tasks' run data.
    pub(crate) fn enter<F: Future>(
        self: &Arc<Self>,
        fut: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        RUN.scope(Some(Arc::clone(self)), fut)
    }
}

/// The run data of the task being polled, if it has any (to hand to the futures it
/// spawns for its run, like split members).
pub(crate) fn current_scope() -> Option<Arc<RunScope>> {
    RUN.try_with(Clone::clone).ok().flatten()
}

/// Spawn `fut` on `runtime`, with the current task's run data if it has any.
pub(crate) fn spawn_inheriting<F>(
    runtime: &tokio::runtime::Handle,
    fut: F,
) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current_scope() {
        Some(scope) => runtime.spawn(scope.enter(fut)),
        None => runtime.spawn(fut),
    }
}

/// The data of the run a task belongs to. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct RunData {
    scope: Arc<RunScope>,
}

impl RunData {
    /// The data of the run whose task calls this.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] when called outside a task of a workflow run with
    /// run data (see the [module docs](self)).
    pub fn current() -> Result<Self, CanoError> {
        match RUN.try_with(Clone::clone) {
            Ok(Some(scope)) => Ok(Self { scope }),
            _ => Err(CanoError::configuration(
                "RunData::current(): not inside a task of a workflow run with run data; \
                 call with_run_data() on the workflow (durable with a checkpoint store, \
                 in memory without one)",
            )),
        }
    }

    /// The run's id (the checkpoint log's), if it has one.
    pub fn run_id(&self) -> Option<&str> {
        self.scope.run_id.as_deref()
    }

    /// `"{run id}/{visit}"`: the same when this state runs again after a resume,
    /// different for a later visit of the same state (see the [module docs](self)).
    pub fn idempotency_key(&self) -> String {
        let visit = self.scope.state.lock().visit;
        format!("{}/{visit}", self.run_id().unwrap_or("-"))
    }

    fn run_name(&self) -> String {
        format!("{:?}", self.run_id().unwrap_or("(no id)"))
    }

    /// Set `key` to `value` (recorded with the next state's entry row).
    ///
    /// # Errors
    /// [`CanoError::Store`] when `value` does not serialize to JSON, naming the key, the
    /// run and the type.
    pub fn put<T: Serialize>(&self, key: &str, value: T) -> Result<(), CanoError> {
        let type_name = std::any::type_name::<T>();
        let value = serde_json::to_value(&value).map_err(|e| {
            CanoError::store(format!(
                "run data {key:?} of run {}: a value of type {type_name} does not serialize: {e}",
                self.run_name()
            ))
        })?;
        let stored = StoredValue {
            type_name: type_name.to_string(),
            value,
        };
        self.scope
            .state
            .lock()
            .pending
            .insert(key.to_string(), Some(stored));
        Ok(())
    }

    /// The value of `key`, as a `T`.
    ///
    /// # Errors
    /// [`CanoError::Store`] when no completed state (nor this one) wrote `key`, or when
    /// the stored value does not deserialize into `T` (naming the key, the run, the type it
    /// was written as and `T`).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, CanoError> {
        let stored = {
            let state = self.scope.state.lock();
            match state.pending.get(key) {
                Some(value) => value.clone(),
                None => state.committed.get(key).cloned(),
            }
        };
        let Some(stored) = stored else {
            return Err(CanoError::store(format!(
                "run data {key:?} not found in run {} (no completed state of the run wrote it)",
                self.run_name()
            )));
        };
        serde_json::from_value(stored.value).map_err(|e| {
            CanoError::store(format!(
                "run data {key:?} of run {} was written as {} and does not deserialize into {}: {e}",
                self.run_name(),
                stored.type_name,
                std::any::type_name::<T>()
            ))
        })
    }

    /// Remove `key` (recorded with the next state's entry row). A no-op if it is not set.
    pub fn remove(&self, key: &str) -> Result<(), CanoError> {
        self.scope
            .state
            .lock()
            .pending
            .insert(key.to_string(), None);
        Ok(())
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        let state = self.scope.state.lock();
        match state.pending.get(key) {
            Some(value) => value.is_some(),
            None => state.committed.contains_key(key),
        }
    }

    /// The keys that are set, sorted.
    pub fn keys(&self) -> Vec<String> {
        let state = self.scope.state.lock();
        let mut keys: Vec<String> = state
            .committed
            .keys()
            .filter(|k| !state.pending.contains_key(*k))
            .cloned()
            .collect();
        keys.extend(
            state
                .pending
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone()),
        );
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_commit_when_the_next_visit_begins() {
        let scope = RunScope::new(Some(Arc::from("r")), BTreeMap::new(), 0);
        let writes = scope.begin_visit();
        assert!(writes.is_empty());
        scope
            .enter(async {
                let data = RunData::current().unwrap();
                data.put("a", 1u8).unwrap();
                data.put("b", "x").unwrap();
                assert_eq!(data.get::<u8>("a").unwrap(), 1);
                assert_eq!(data.idempotency_key(), "r/0");
                let err = data.get::<String>("a").unwrap_err();
                assert!(err.to_string().contains("written as u8"), "{err}");
                assert!(err.to_string().contains("alloc::string::String"), "{err}");
            })
            .await;
        let writes = scope.begin_visit();
        assert_eq!(writes.set.len(), 2);
        scope
            .enter(async {
                let data = RunData::current().unwrap();
                assert_eq!(data.idempotency_key(), "r/1");
                data.remove("a").unwrap();
                assert!(!data.contains_key("a"));
                assert_eq!(data.keys(), ["b"]);
                let err = data.get::<u8>("a").unwrap_err();
                assert!(err.to_string().contains("not found in run \"r\""), "{err}");
            })
            .await;
        let writes = scope.begin_visit();
        assert_eq!(writes.removed, ["a"]);
        assert!(RunData::current().is_err());
    }
}
