//! Helpers for testing workflows (feature `testing`; not in the prelude).
//!
//! * [`RecordingObserver`]: an observer that records every event, with assertions on the
//!   path a run took, how it ended, which states were never entered and what was
//!   compensated;
//! * [`InMemoryCheckpointStore`]: a checkpoint store with the whole contract (duplicate
//!   sequences rejected, sorted loads, per-run clears, [`ListRuns`](crate::ListRuns),
//!   [signals](crate::signal::SignalStore)), with no file and no feature needed;
//! * [`TestResources`]: a builder for the [`Resources`] a test workflow needs;
//! * [`panic_on_attempt`]: a task that fails, then panics on a chosen attempt, then
//!   succeeds, for testing what a panic does to a run;
//! * [`assert_compensation_ran`]: compare the compensations a run made with the expected
//!   ones.
//!
//! ```
//! use cano::prelude::*;
//! use cano::testing::{RecordingObserver, TestResources};
//! use std::sync::Arc;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum S { Fetch, Store, Done }
//!
//! struct Step(S);
//! #[task(state = S)]
//! impl Step {
//!     async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
//!         Ok(TaskResult::Single(self.0.clone()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let recorder = Arc::new(RecordingObserver::new());
//! let wf = Workflow::new(TestResources::new().with_store("store").build())
//!     .register(S::Fetch, Step(S::Store))
//!     .register(S::Store, Step(S::Done))
//!     .add_exit_state(S::Done)
//!     .with_observer(recorder.clone());
//! wf.orchestrate(S::Fetch).await?;
//!
//! recorder.assert_path(&["Fetch", "Store", "Done"]);
//! recorder.assert_completed_with("Done");
//! assert_eq!(recorder.assert_registered_states_entered(&wf), Ok(()));
//! # Ok(()) }
//! ```

use crate::error::CanoError;
use crate::observer::WorkflowObserver;
use crate::resource::{Resource, Resources};
use crate::store::MemoryStore;
use crate::task::{Task, TaskConfig, TaskResult};
use crate::workflow::Workflow;
use parking_lot::Mutex;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The crate's [`MemoryCheckpointStore`](crate::MemoryCheckpointStore) under the name cano
/// 0.15's testing module gives it. It keeps the whole store contract, lists its runs and
/// keeps signals.
pub type InMemoryCheckpointStore = crate::recovery::MemoryCheckpointStore;

/// One event a [`RecordingObserver`] saw: one variant per
/// [`WorkflowObserver`] callback, carrying its arguments.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedEvent {
    /// A run entered `state` (its `Debug` text).
    StateEntered {
        /// The state's `Debug` text.
        state: String,
    },
    /// A task is about to run.
    TaskStarted {
        /// The task's name.
        task_id: String,
    },
    /// A task succeeded.
    TaskSucceeded {
        /// The task's name.
        task_id: String,
    },
    /// A task failed for good.
    TaskFailed {
        /// The task's name.
        task_id: String,
        /// Its error.
        error: CanoError,
    },
    /// An attempt of a task failed.
    AttemptFailed {
        /// The task's name.
        task_id: String,
        /// The attempt (1-based).
        attempt: u32,
        /// Its error.
        error: CanoError,
    },
    /// A failed attempt will be retried.
    Retry {
        /// The task's name.
        task_id: String,
        /// The attempt that failed (1-based).
        attempt: u32,
    },
    /// A circuit breaker rejected a task.
    CircuitOpen {
        /// The task's name.
        task_id: String,
    },
    /// A checkpoint row was stored.
    Checkpoint {
        /// The run's id.
        workflow_id: String,
        /// The row's sequence.
        sequence: u64,
    },
    /// A run resumed after the row `sequence`.
    Resume {
        /// The run's id.
        workflow_id: String,
        /// The last recorded sequence.
        sequence: u64,
    },
    /// A saga rollback began.
    RollbackStarted {
        /// Steps to compensate.
        steps: usize,
        /// The error that caused it.
        cause: CanoError,
    },
    /// A saga step was compensated.
    Compensated {
        /// The step's task name.
        task_id: String,
    },
    /// Compensating a saga step failed.
    CompensationFailed {
        /// The step's task name.
        task_id: String,
        /// Its error.
        error: CanoError,
    },
    /// A run was cancelled in `state`.
    Cancelled {
        /// The state's `Debug` text.
        state: String,
    },
    /// A run passed its whole-run deadline.
    WorkflowTimeout {
        /// How long it ran.
        elapsed: Duration,
        /// Its limit.
        limit: Duration,
    },
    /// A signal state consumed a signal.
    SignalReceived {
        /// The signal's name.
        name: String,
        /// The sender's id for it.
        id: String,
    },
    /// A signal state refused a signal's payload.
    SignalRejected {
        /// The signal's name.
        name: String,
        /// The sender's id for it.
        id: String,
        /// Why.
        error: CanoError,
    },
    /// A resumed run's log named a state the workflow no longer has (the row is skipped).
    UnknownResumeState {
        /// The run's id.
        workflow_id: String,
        /// The row's sequence.
        sequence: u64,
        /// The state's `Debug` text.
        state: String,
    },
    /// A run ended: with its exit state's `Debug` text, or its error.
    RunEnded {
        /// The outcome.
        outcome: Result<String, CanoError>,
    },
}

/// An observer that records every event, for assertions in tests.
///
/// Attach it with [`Workflow::with_observer`]; it records the events of every run of the
/// workflow, in order (split members may interleave). [`take`](Self::take) or
/// [`clear`](Self::clear) between runs to look at one at a time.
#[derive(Debug, Default)]
pub struct RecordingObserver {
    events: Mutex<Vec<RecordedEvent>>,
}

impl RecordingObserver {
    /// An observer that has recorded nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, event: RecordedEvent) {
        self.events.lock().push(event);
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.events.lock().clone()
    }

    /// The events so far, removing them.
    pub fn take(&self) -> Vec<RecordedEvent> {
        std::mem::take(&mut *self.events.lock())
    }

    /// Forget every event so far.
    pub fn clear(&self) {
        self.events.lock().clear();
    }

    /// The states entered so far (their `Debug` text), in order.
    pub fn states_entered(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                RecordedEvent::StateEntered { state } => Some(state.clone()),
                _ => None,
            })
            .collect()
    }

    /// The saga steps compensated so far (task names), in order.
    pub fn compensated(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                RecordedEvent::Compensated { task_id } => Some(task_id.clone()),
                _ => None,
            })
            .collect()
    }

    /// The outcome of the last run that ended, if any did.
    pub fn last_outcome(&self) -> Option<Result<String, CanoError>> {
        self.events.lock().iter().rev().find_map(|e| match e {
            RecordedEvent::RunEnded { outcome } => Some(outcome.clone()),
            _ => None,
        })
    }

    /// `Ok` when the states entered so far are exactly `expected`; otherwise a text
    /// saying where the path went another way.
    pub fn check_path(&self, expected: &[&str]) -> Result<(), String> {
        let actual = self.states_entered();
        if actual
            .iter()
            .map(String::as_str)
            .eq(expected.iter().copied())
        {
            return Ok(());
        }
        let same = actual
            .iter()
            .zip(expected)
            .take_while(|(a, e)| a.as_str() == **e)
            .count();
        Err(format!(
            "the run took the path {actual:?}, expected {expected:?}: they part at step {same} \
             ({} instead of {})",
            actual
                .get(same)
                .map_or("the end".into(), |s| format!("{s:?}")),
            expected
                .get(same)
                .map_or("the end".into(), |s| format!("{s:?}")),
        ))
    }

    /// Panic unless the states entered so far are exactly `expected` (their `Debug`
    /// texts, exit state included).
    ///
    /// # Panics
    /// When the path differs; the message shows both paths and where they part.
    #[track_caller]
    pub fn assert_path(&self, expected: &[&str]) {
        if let Err(e) = self.check_path(expected) {
            panic!("{e}");
        }
    }

    /// `Ok` when the last run that ended reached the exit state `state` (its `Debug`
    /// text); otherwise a text saying how it ended instead.
    pub fn check_completed_with(&self, state: &str) -> Result<(), String> {
        match self.last_outcome() {
            Some(Ok(s)) if s == state => Ok(()),
            Some(Ok(s)) => Err(format!("the run ended in {s:?}, expected {state:?}")),
            Some(Err(e)) => Err(format!(
                "the run failed ({e}), expected it to end in {state:?}"
            )),
            None => Err(format!(
                "no run has ended yet, expected one to end in {state:?}"
            )),
        }
    }

    /// Panic unless the last run that ended reached the exit state `state`.
    ///
    /// # Panics
    /// When it failed, ended elsewhere, or no run has ended.
    #[track_caller]
    pub fn assert_completed_with(&self, state: &str) {
        if let Err(e) = self.check_completed_with(state) {
            panic!("{e}");
        }
    }

    /// `Ok` when every state of `states` was entered; otherwise the `Debug` texts of
    /// those that were not.
    pub fn assert_all_states_entered<S: fmt::Debug>(
        &self,
        states: &[S],
    ) -> Result<(), Vec<String>> {
        self.missing(states.iter().map(|s| format!("{s:?}")))
    }

    /// `Ok` when every state that has a handler in `workflow` was entered (exit-only
    /// states are not asked for); otherwise the states never entered, sorted: the dead
    /// states of the runs recorded so far.
    pub fn assert_registered_states_entered<S, K>(
        &self,
        workflow: &Workflow<S, K>,
    ) -> Result<(), Vec<String>>
    where
        S: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
        K: Hash + Eq + Send + Sync + 'static,
    {
        self.missing(workflow.registered_states().map(|s| format!("{s:?}")))
    }

    fn missing(&self, wanted: impl Iterator<Item = String>) -> Result<(), Vec<String>> {
        let entered = self.states_entered();
        let mut missing: Vec<String> = wanted.filter(|w| !entered.contains(w)).collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }

    /// Panic unless the saga steps compensated so far are exactly `expected` (task
    /// names, in the order they were undone).
    ///
    /// # Panics
    /// When they differ.
    #[track_caller]
    pub fn assert_compensated(&self, expected: &[&str]) {
        assert_compensation_ran(&self.compensated(), expected);
    }
}

impl WorkflowObserver for RecordingObserver {
    fn on_state_enter(&self, state: &str) {
        self.push(RecordedEvent::StateEntered {
            state: state.to_string(),
        });
    }
    fn on_task_start(&self, task_id: &str) {
        self.push(RecordedEvent::TaskStarted {
            task_id: task_id.to_string(),
        });
    }
    fn on_task_success(&self, task_id: &str) {
        self.push(RecordedEvent::TaskSucceeded {
            task_id: task_id.to_string(),
        });
    }
    fn on_task_failure(&self, task_id: &str, err: &CanoError) {
        self.push(RecordedEvent::TaskFailed {
            task_id: task_id.to_string(),
            error: err.clone(),
        });
    }
    fn on_retry(&self, task_id: &str, attempt: u32) {
        self.push(RecordedEvent::Retry {
            task_id: task_id.to_string(),
            attempt,
        });
    }
    fn on_circuit_open(&self, task_id: &str) {
        self.push(RecordedEvent::CircuitOpen {
            task_id: task_id.to_string(),
        });
    }
    fn on_checkpoint(&self, workflow_id: &str, sequence: u64) {
        self.push(RecordedEvent::Checkpoint {
            workflow_id: workflow_id.to_string(),
            sequence,
        });
    }
    fn on_resume(&self, workflow_id: &str, sequence: u64) {
        self.push(RecordedEvent::Resume {
            workflow_id: workflow_id.to_string(),
            sequence,
        });
    }
    fn on_attempt_failed(&self, task_id: &str, attempt: u32, error: &CanoError) {
        self.push(RecordedEvent::AttemptFailed {
            task_id: task_id.to_string(),
            attempt,
            error: error.clone(),
        });
    }
    fn on_rollback_started(&self, steps: usize, cause: &CanoError) {
        self.push(RecordedEvent::RollbackStarted {
            steps,
            cause: cause.clone(),
        });
    }
    fn on_compensated(&self, task_id: &str) {
        self.push(RecordedEvent::Compensated {
            task_id: task_id.to_string(),
        });
    }
    fn on_compensation_failed(&self, task_id: &str, error: &CanoError) {
        self.push(RecordedEvent::CompensationFailed {
            task_id: task_id.to_string(),
            error: error.clone(),
        });
    }
    fn on_cancelled(&self, state: &str) {
        self.push(RecordedEvent::Cancelled {
            state: state.to_string(),
        });
    }
    fn on_workflow_timeout(&self, elapsed: Duration, limit: Duration) {
        self.push(RecordedEvent::WorkflowTimeout { elapsed, limit });
    }
    fn on_signal_received(&self, name: &str, id: &str) {
        self.push(RecordedEvent::SignalReceived {
            name: name.to_string(),
            id: id.to_string(),
        });
    }
    fn on_signal_rejected(&self, name: &str, id: &str, error: &CanoError) {
        self.push(RecordedEvent::SignalRejected {
            name: name.to_string(),
            id: id.to_string(),
            error: error.clone(),
        });
    }
    fn on_unknown_resume_state(&self, workflow_id: &str, sequence: u64, state: &str) {
        self.push(RecordedEvent::UnknownResumeState {
            workflow_id: workflow_id.to_string(),
            sequence,
            state: state.to_string(),
        });
    }
    fn on_run_end(&self, outcome: Result<&str, &CanoError>) {
        self.push(RecordedEvent::RunEnded {
            outcome: outcome.map(str::to_string).map_err(CanoError::clone),
        });
    }
}

/// Panic unless `actual` (compensated task names, in the order they ran) is exactly
/// `expected`.
///
/// ```
/// cano::testing::assert_compensation_ran(&["charge", "reserve"], &["charge", "reserve"]);
/// ```
///
/// # Panics
/// When they differ; the message shows both lists.
#[track_caller]
pub fn assert_compensation_ran<A: AsRef<str>>(actual: &[A], expected: &[&str]) {
    let actual: Vec<&str> = actual.iter().map(AsRef::as_ref).collect();
    assert!(
        actual == expected,
        "compensations ran as {actual:?}, expected {expected:?}"
    );
}

/// A builder for the [`Resources`] of a test workflow.
///
/// ```
/// use cano::prelude::*;
/// use cano::testing::TestResources;
/// struct Limit(u32);
/// impl Resource for Limit {}
///
/// let res: Resources = TestResources::new()
///     .with_store("store")
///     .with_resource("limit", Limit(3))
///     .build();
/// assert!(res.get::<MemoryStore, _>("store").is_ok());
/// assert_eq!(res.get::<Limit, _>("limit")?.0, 3);
/// # Ok::<(), CanoError>(())
/// ```
#[must_use]
pub struct TestResources<K = Cow<'static, str>>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    resources: Resources<K>,
}

impl<K> Default for TestResources<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    fn default() -> Self {
        Self {
            resources: Resources::new(),
        }
    }
}

impl<K> TestResources<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    /// No resources yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a fresh [`MemoryStore`] under `key`.
    pub fn with_store(self, key: impl Into<K>) -> Self {
        self.with_resource(key, MemoryStore::new())
    }

    /// Add `resource` under `key` (a later resource under the same key replaces it).
    pub fn with_resource<R: Resource + 'static>(mut self, key: impl Into<K>, resource: R) -> Self {
        self.resources = self.resources.insert(key, resource);
        self
    }

    /// The resources.
    pub fn build(self) -> Resources<K> {
        self.resources
    }
}

/// A task that fails its attempts before `attempt`, panics on attempt `attempt`, and
/// moves to `next` on any later attempt. Attempts are counted across runs (a resumed run
/// goes on counting), so a test can crash a run with a panic and then resume it.
///
/// A panic fails the task at once: it is not retried (panics are caught around the whole
/// retry loop), and a saga rolls back. Only returned errors are retried.
///
/// ```
/// use cano::prelude::*;
/// use cano::testing::panic_on_attempt;
/// use std::time::Duration;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum S { Work, Done }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let task = panic_on_attempt(2, S::Done)
///     .with_config(TaskConfig::new().with_fixed_retry(5, Duration::ZERO));
/// let attempts = task.attempts();
/// let wf = Workflow::bare().register(S::Work, task).add_exit_state(S::Done);
/// let err = wf.orchestrate(S::Work).await.unwrap_err();
/// assert!(err.message().starts_with("panic: "), "{err}");
/// assert_eq!(attempts.get(), 2); // the first failed and was retried; the panic was not
/// assert_eq!(wf.orchestrate(S::Work).await, Ok(S::Done)); // attempt 3 succeeds
/// # }
/// ```
pub fn panic_on_attempt<S>(attempt: u32, next: S) -> PanicOnAttempt<S> {
    PanicOnAttempt {
        attempt,
        next,
        attempts: Attempts::default(),
        config: TaskConfig::minimal(),
    }
}

/// The task [`panic_on_attempt`] builds.
pub struct PanicOnAttempt<S> {
    attempt: u32,
    next: S,
    attempts: Attempts,
    config: TaskConfig,
}

/// How many attempts a [`PanicOnAttempt`] task has made; shared with the task.
#[derive(Debug, Clone, Default)]
pub struct Attempts(Arc<AtomicU32>);

impl Attempts {
    /// The attempts made so far.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

impl<S: fmt::Debug> fmt::Debug for PanicOnAttempt<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicOnAttempt")
            .field("attempt", &self.attempt)
            .field("next", &self.next)
            .field("attempts", &self.attempts.get())
            .finish_non_exhaustive()
    }
}

impl<S> PanicOnAttempt<S> {
    /// Run under `config` (default: [`TaskConfig::minimal`], one attempt).
    pub fn with_config(mut self, config: TaskConfig) -> Self {
        self.config = config;
        self
    }

    /// A handle on the attempt count, to read after the task is registered.
    pub fn attempts(&self) -> Attempts {
        self.attempts.clone()
    }
}

// Not offered in "other types implement `Task`" notes of users' compile errors.
#[diagnostic::do_not_recommend]
impl<S, K> Task<S, K> for PanicOnAttempt<S>
where
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
{
    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("panic_on_attempt")
    }

    fn run<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _res: &'life1 Resources<K>,
    ) -> Pin<Box<dyn Future<Output = Result<TaskResult<S>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        let n = self
            .attempts
            .0
            .fetch_add(1, Ordering::SeqCst)
            .saturating_add(1);
        Box::pin(async move {
            match n.cmp(&self.attempt) {
                std::cmp::Ordering::Less => Err(CanoError::task_execution(format!(
                    "panic_on_attempt: attempt {n} fails before the panic on attempt {}",
                    self.attempt
                ))),
                std::cmp::Ordering::Equal => panic!("panic_on_attempt: attempt {n} panics"),
                std::cmp::Ordering::Greater => Ok(TaskResult::Single(self.next.clone())),
            }
        })
    }
}
