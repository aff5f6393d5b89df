//! Workflows: finite state machines over your own state type.
//!
//! A [`Workflow`] maps states to tasks. [`orchestrate`](Workflow::orchestrate) starts at
//! an initial state, runs that state's task, moves to the state it returns, and stops
//! when it enters an *exit state*:
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Order { Validate, Charge, Done, Rejected }
//!
//! struct Validate;
//! #[task(state = Order)]
//! impl Validate {
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Order>, CanoError> {
//!         let amount = res.get::<MemoryStore, _>("store")?.get::<u64>("amount")?;
//!         Ok(TaskResult::Single(if amount > 0 { Order::Charge } else { Order::Rejected }))
//!     }
//! }
//!
//! struct Charge;
//! #[task(state = Order)]
//! impl Charge {
//!     async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
//!         Ok(TaskResult::Single(Order::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let store = MemoryStore::new();
//! store.put("amount", 1999u64)?;
//! let workflow = Workflow::new(Resources::new().insert("store", store))
//!     .register(Order::Validate, Validate)
//!     .register(Order::Charge, Charge)
//!     .add_exit_states(vec![Order::Done, Order::Rejected]);
//! assert_eq!(workflow.orchestrate(Order::Validate).await?, Order::Done);
//! # Ok(())
//! # }
//! ```

mod compensation;
mod diagram;
mod entry;
mod execution;
mod handler;
mod join;
mod run;
mod split;
mod states;
mod table;

pub use entry::StateEntry;
pub use join::{JoinConfig, JoinStrategy, SplitResult, SplitTaskResult};

use crate::error::CanoError;
use crate::observer::WorkflowObserver;
use crate::recovery::{CheckpointStore, RunWriters};
use crate::resource::Resources;
use crate::saga::{CompensatableAdapter, CompensatableTask, ErasedCompensatable};
use crate::signal::{ErasedSignalTask, SignalAdapter, SignalStore, SignalTask};
use crate::task::stepped::{ErasedSteppedTask, SteppedAdapter};
use crate::task::{RouterTask, SteppedTask, Task, TaskConfig, TaskObject};
use crate::util::FastMap;
use handler::Handler;
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use table::StateTable;

/// A finite state machine whose states are values of `TState`, with a task per state.
///
/// Build it with the `register*` / `add_exit_state*` / `with_*` methods (each consumes
/// and returns the workflow), then run it with [`orchestrate`](Self::orchestrate) — as
/// often as you like, concurrently too: runs share the workflow's [`Resources`] but
/// nothing else.
///
/// `Clone` is cheap (tasks and resources are shared) and a clone re-validates on first use.
#[must_use]
pub struct Workflow<TState, TResourceKey = Cow<'static, str>>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    states: StateTable<TState, Handler<TState, TResourceKey>>,
    exit_states: StateTable<TState, ()>,
    resources: Arc<Resources<TResourceKey>>,
    timeout: Option<Duration>,
    /// The whole-run deadline (`with_total_timeout`).
    total_timeout: Option<Duration>,
    /// The rollback's budget when a run with a total timeout fails.
    compensation_timeout: Option<Duration>,
    validated: OnceLock<Result<(), CanoError>>,
    observers: Option<Arc<[Arc<dyn WorkflowObserver>]>>,
    checkpoint_store: Option<Arc<dyn CheckpointStore>>,
    /// The same store as `checkpoint_store`, when it hands out per-run writers.
    run_writers: Option<Arc<dyn RunWriters>>,
    /// The same store as `checkpoint_store`, when it keeps signals.
    signals: Option<Arc<dyn SignalStore>>,
    /// Run data in memory for runs without a checkpoint store (`with_run_data`).
    run_data: bool,
    /// The version stamped in each run's log (`with_workflow_version`).
    version: u32,
    /// Transitions declared for diagrams (`with_transitions`).
    transitions: Arc<Vec<(TState, TState)>>,
    workflow_id: Option<Arc<str>>,
    /// Saga compensators by task name (how completion rows refer to them).
    compensators: FastMap<String, Arc<dyn ErasedCompensatable<TState, TResourceKey>>>,
    #[cfg(feature = "tracing")]
    tracing_span: Option<tracing::Span>,
}

impl<TState> Workflow<TState, Cow<'static, str>>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
{
    /// A workflow without resources (`Workflow::new(Resources::new())`).
    pub fn bare() -> Self {
        Self::new(Resources::new())
    }
}

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// A workflow whose tasks share `resources`.
    pub fn new(resources: Resources<TResourceKey>) -> Self {
        Self {
            states: StateTable::new(),
            exit_states: StateTable::new(),
            resources: Arc::new(resources),
            timeout: None,
            total_timeout: None,
            compensation_timeout: None,
            validated: OnceLock::new(),
            observers: None,
            checkpoint_store: None,
            run_writers: None,
            signals: None,
            run_data: false,
            version: 0,
            transitions: Arc::default(),
            workflow_id: None,
            compensators: FastMap::default(),
            #[cfg(feature = "tracing")]
            tracing_span: None,
        }
    }

    /// Every builder step invalidates the cached validation result.
    fn edited(mut self) -> Self {
        self.validated = OnceLock::new();
        self
    }

    /// Limit each run's state machine (not resource setup/teardown) to `timeout`; a run
    /// that takes longer fails with `Workflow timeout exceeded`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self.edited()
    }

    /// A deadline for each whole run — each [`orchestrate`](Self::orchestrate) or
    /// [`resume_from`](Self::resume_from) call, counted from its start (a resumed run
    /// gets the whole limit again). When it passes:
    ///
    /// * the task in flight is dropped at its next `.await` (a
    ///   [`CompensatableTask`] is never interrupted: it
    ///   completes and the run stops after it);
    /// * observers' `on_workflow_timeout(elapsed, limit)` fires;
    /// * the saga's completed steps are compensated within the compensation budget
    ///   ([`with_compensation_timeout`](Self::with_compensation_timeout));
    /// * the run ends with [`CanoError::workflow_timeout`]'s error, naming the state, the
    ///   time it ran and the limit (tell it apart with
    ///   [`CanoError::is_workflow_timeout`]), or `CompensationFailed` whose first error is
    ///   that one.
    ///
    /// Unlike [`with_timeout`](Self::with_timeout), which drops the whole run at once, the
    /// saga rolls back. With both set, the smaller limit applies, this way.
    ///
    /// ```
    /// use cano::prelude::*;
    /// use std::time::Duration;
    ///
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { Slow, Done }
    /// struct Slow;
    /// #[task(state = S)]
    /// impl Slow {
    ///     async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
    ///         tokio::time::sleep(Duration::from_secs(3600)).await;
    ///         Ok(TaskResult::Single(S::Done))
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let wf = Workflow::bare()
    ///     .register(S::Slow, Slow)
    ///     .add_exit_state(S::Done)
    ///     .with_total_timeout(Duration::from_secs(5));
    /// let err = wf.orchestrate(S::Slow).await.unwrap_err();
    /// assert!(err.is_workflow_timeout());
    /// assert!(err.to_string().contains("limit 5s"), "{err}");
    /// # }
    /// ```
    pub fn with_total_timeout(mut self, limit: Duration) -> Self {
        self.total_timeout = Some(limit);
        self.edited()
    }

    /// The budget for rolling back a saga when a run with a
    /// [total timeout](Self::with_total_timeout) fails (for any reason: the deadline, a
    /// task error, a cancel). Default: the smaller of half the total timeout and 30 s.
    /// Compensations still running when it passes are dropped, those not started are not
    /// run; each is reported in the `CompensationFailed` error, and the log keeps the
    /// rollback so that [`resume_from`](Self::resume_from) finishes it.
    pub fn with_compensation_timeout(mut self, budget: Duration) -> Self {
        self.compensation_timeout = Some(budget);
        self.edited()
    }

    /// The rollback budget of a failed run, if the workflow bounds runs.
    pub(crate) fn compensation_budget(&self) -> Option<Duration> {
        let total = self.total_timeout?;
        Some(
            self.compensation_timeout
                .unwrap_or_else(|| (total / 2).min(Duration::from_secs(30))),
        )
    }

    /// The whole-run deadline: the total timeout, or the smaller of it and
    /// `with_timeout`'s when both are set.
    pub(crate) fn run_deadline(&self) -> Option<Duration> {
        let total = self.total_timeout?;
        Some(self.timeout.map_or(total, |t| t.min(total)))
    }

    /// Run `task` whenever the workflow enters `state`. Replaces any earlier handler for
    /// `state`. `task.config()` is read now, once.
    ///
    /// A [`TimerTask`](crate::TimerTask) (`#[task::timer]`) registered here is run
    /// durably: see [`task::timer`](mod@crate::task::timer).
    pub fn register<T>(self, state: TState, task: T) -> Self
    where
        T: Task<TState, TResourceKey> + Send + Sync + 'static,
    {
        let config = Arc::new(task.config());
        // A timer (`#[task::timer]`) is run durably: its deadline goes in the log.
        let handler = if task.__timer().is_some() {
            Handler::Timer {
                task: Arc::new(task),
                config,
            }
        } else {
            Handler::Task {
                task: Arc::new(task),
                config,
                checkpointed: true,
            }
        };
        self.with_handler(state, handler)
    }

    /// Register a [`RouterTask`] for `state`. Unlike [`register`](Self::register), the
    /// state writes no checkpoint row and consumes no sequence number: a router has no
    /// side effects, so on resume it simply routes again.
    pub fn register_router<T>(self, state: TState, task: T) -> Self
    where
        T: RouterTask<TState, TResourceKey> + Task<TState, TResourceKey> + 'static,
    {
        let config = Arc::new(Task::config(&task));
        self.with_handler(
            state,
            Handler::Task {
                task: Arc::new(task),
                config,
                checkpointed: false,
            },
        )
    }

    /// Register a [`SteppedTask`] for `state`, driven step by step by the engine: each
    /// step runs under the task's retry policy (reusing its cursor), and with a
    /// checkpoint store every new cursor is recorded before the next step, so
    /// [`resume_from`](Self::resume_from) continues from the last one.
    pub fn register_stepped<T>(self, state: TState, task: T) -> Self
    where
        T: SteppedTask<TState, TResourceKey> + 'static,
    {
        let config = Arc::new(SteppedTask::config(&task));
        let task: Arc<dyn ErasedSteppedTask<TState, TResourceKey>> =
            Arc::new(SteppedAdapter(Arc::new(task)));
        self.with_handler(state, Handler::Stepped { task, config })
    }

    /// Register a [`StreamTask`](crate::task::stream::StreamTask) for `state`: the engine
    /// opens its source (at the cursor recorded in the run's log, when the run is
    /// resumed), processes items one by one, flushes each window and then records its
    /// cursor (a `StepCursor` row, with a checkpoint store), and lets `on_close` pick the
    /// next state when the source ends. A cancel or a passed total timeout flushes and
    /// records the window in flight before the run stops. See
    /// [`cano::task::stream`](mod@crate::task::stream).
    pub fn register_stream<T>(self, state: TState, task: T) -> Self
    where
        T: crate::task::stream::StreamTask<TState, TResourceKey> + 'static,
    {
        let task: Arc<dyn crate::task::stream::ErasedStreamTask<TState, TResourceKey>> =
            Arc::new(crate::task::stream::StreamAdapter(Arc::new(task)));
        self.with_handler(state, Handler::Stream { task })
    }

    /// Register a [`CompensatableTask`] for `state`: after it succeeds, its output goes
    /// on the run's compensation stack (and into the checkpoint log), and if a later
    /// state fails, its `compensate` runs, most recent step first.
    ///
    /// Compensations are looked up by the task's [`name`](CompensatableTask::name); two
    /// steps with the same name share one compensator (the last registered).
    pub fn register_with_compensation<T>(self, state: TState, task: T) -> Self
    where
        T: CompensatableTask<TState, TResourceKey> + 'static,
    {
        let config = Arc::new(task.config());
        let task: Arc<dyn ErasedCompensatable<TState, TResourceKey>> =
            Arc::new(CompensatableAdapter(Arc::new(task)));
        self.with_handler(state, Handler::Compensatable { task, config })
    }

    /// Register a [`SignalTask`] for `state`: entering it, the run waits until the signal
    /// the task names is sent to it (or the task's timeout passes), then the task gets the
    /// signal's payload. The workflow needs a signal store
    /// ([`with_signal_store`](Self::with_signal_store)) and an id; see [`crate::signal`].
    pub fn register_signal<T>(self, state: TState, task: T) -> Self
    where
        T: SignalTask<TState, TResourceKey> + 'static,
    {
        let config = Arc::new(SignalTask::config(&task));
        let task: Arc<dyn ErasedSignalTask<TState, TResourceKey>> = Arc::new(SignalAdapter(task));
        self.with_handler(state, Handler::Signal { task, config })
    }

    /// Run every task in `tasks` concurrently whenever the workflow enters `state`, then
    /// move to `join_config.join_state` if `join_config.strategy` is satisfied.
    ///
    /// Each task keeps its own [`TaskConfig`] (read now, once): retries happen inside
    /// the member. The tasks' own results are ignored; the next state is always the
    /// join state. A split state writes one checkpoint row, however wide it is.
    ///
    /// ```
    /// use cano::prelude::*;
    ///
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { Fanout, Merge, Done }
    ///
    /// struct Shard(u32);
    /// #[task(state = S)]
    /// impl Shard {
    ///     async fn run(&self, res: &Resources) -> Result<TaskResult<S>, CanoError> {
    ///         res.get::<MemoryStore, _>("store")?.append("shards", self.0)?;
    ///         Ok(TaskResult::Single(S::Merge))
    ///     }
    /// }
    ///
    /// struct Merge;
    /// #[task(state = S)]
    /// impl Merge {
    ///     async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
    /// let store = MemoryStore::new();
    /// let wf = Workflow::new(Resources::new().insert("store", store.clone()))
    ///     .register_split(S::Fanout, (0..4).map(Shard).collect(), JoinConfig::new(JoinStrategy::All, S::Merge))
    ///     .register(S::Merge, Merge)
    ///     .add_exit_state(S::Done);
    /// assert_eq!(wf.orchestrate(S::Fanout).await?, S::Done);
    /// assert_eq!(store.get::<Vec<u32>>("shards")?.len(), 4);
    /// # Ok(()) }
    /// ```
    pub fn register_split<T>(
        self,
        state: TState,
        tasks: Vec<T>,
        join_config: JoinConfig<TState>,
    ) -> Self
    where
        T: Task<TState, TResourceKey> + Send + Sync + 'static,
    {
        self.register_split_from(state, tasks, join_config)
    }

    /// [`register_split`](Self::register_split) taking the members from any iterable: an
    /// array, a range mapped to tasks, a `Vec`.
    ///
    /// (cano 0.15 changed `register_split` itself to take `impl IntoIterator`; that would
    /// stop `register_split(s, iter.collect(), …)` from compiling, which 0.12.0 programs
    /// write, so this crate adds a method instead.)
    ///
    /// ```
    /// use cano::prelude::*;
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { Fanout, Done }
    /// struct Ping;
    /// #[task(state = S)]
    /// impl Ping {
    ///     async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
    /// let wf = Workflow::bare()
    ///     .register_split_from(S::Fanout, [Ping, Ping, Ping], JoinConfig::new(JoinStrategy::All, S::Done))
    ///     .add_exit_states_from([S::Done]);
    /// assert_eq!(wf.orchestrate(S::Fanout).await?, S::Done);
    /// # Ok(()) }
    /// ```
    pub fn register_split_from<T>(
        self,
        state: TState,
        tasks: impl IntoIterator<Item = T>,
        join_config: JoinConfig<TState>,
    ) -> Self
    where
        T: Task<TState, TResourceKey> + Send + Sync + 'static,
    {
        let tasks: Vec<T> = tasks.into_iter().collect();
        let configs: Arc<[Arc<TaskConfig>]> = tasks.iter().map(|t| Arc::new(t.config())).collect();
        let tasks: Arc<[TaskObject<TState, TResourceKey>]> = tasks
            .into_iter()
            .map(|t| Arc::new(t) as TaskObject<TState, TResourceKey>)
            .collect();
        self.with_handler(
            state,
            Handler::Split {
                tasks,
                configs,
                join: Arc::new(join_config),
            },
        )
    }

    /// Install `handler` for `state`, replacing the old one. A replaced compensatable
    /// task's compensator is forgotten (by name) before the new one is recorded.
    fn with_handler(mut self, state: TState, handler: Handler<TState, TResourceKey>) -> Self {
        if let Some(old) = self.states.get(&state).and_then(Handler::compensator) {
            self.compensators.remove(old.name().as_ref());
        }
        if let Some(new) = handler.compensator() {
            self.compensators
                .insert(new.name().into_owned(), Arc::clone(new));
        }
        self.states.insert(state, handler);
        self.edited()
    }

    /// Make `state` an exit state: entering it ends the run successfully (even if a task
    /// is registered for it).
    pub fn add_exit_state(mut self, state: TState) -> Self {
        if !self.exit_states.contains(&state) {
            self.exit_states.insert(state, ());
        }
        self.edited()
    }

    /// [`add_exit_state`](Self::add_exit_state) for each state, in order.
    pub fn add_exit_states(self, states: Vec<TState>) -> Self {
        self.add_exit_states_from(states)
    }

    /// [`add_exit_states`](Self::add_exit_states) taking any iterable (an array, an
    /// iterator). A method of its own for the reason given at
    /// [`register_split_from`](Self::register_split_from).
    pub fn add_exit_states_from(self, states: impl IntoIterator<Item = TState>) -> Self {
        states.into_iter().fold(self, Self::add_exit_state)
    }

    /// Add an observer; every observer receives every event, in registration order.
    pub fn with_observer(mut self, observer: Arc<dyn WorkflowObserver>) -> Self {
        let mut all: Vec<Arc<dyn WorkflowObserver>> = self
            .observers
            .as_deref()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        all.push(observer);
        self.observers = Some(all.into());
        self.edited()
    }

    /// Record a checkpoint row in `store` on every state entry, so a failed or crashed
    /// run can continue with [`resume_from`](Self::resume_from). Needs
    /// [`with_workflow_id`](Self::with_workflow_id) for [`orchestrate`](Self::orchestrate).
    pub fn with_checkpoint_store(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.checkpoint_store = Some(store);
        self.run_writers = None;
        self.signals = None;
        self.edited()
    }

    /// [`with_checkpoint_store`](Self::with_checkpoint_store) for a store that keeps
    /// signals ([`SignalStore`]), which [signal states](Self::register_signal) need. If
    /// the workflow already has this very store (e.g. from
    /// [`with_run_writers`](Self::with_run_writers)), that is kept.
    pub fn with_signal_store<S: SignalStore>(mut self, store: Arc<S>) -> Self {
        if !self.has_store(&store) {
            self.checkpoint_store = Some(Arc::clone(&store) as Arc<dyn CheckpointStore>);
            self.run_writers = None;
        }
        self.signals = Some(store);
        self.edited()
    }

    /// Whether `store` is the workflow's checkpoint store already.
    fn has_store<S>(&self, store: &Arc<S>) -> bool {
        self.checkpoint_store
            .as_ref()
            .is_some_and(|current| std::ptr::addr_eq(Arc::as_ptr(current), Arc::as_ptr(store)))
    }

    /// [`with_checkpoint_store`](Self::with_checkpoint_store) for a store that hands each
    /// run a [`RunWriter`](crate::RunWriter) of its own: every row of a run (and its
    /// clear) is written through the writer the store gave it when the run started, so
    /// the store can refuse the writes of a run that is no longer this process's (a lost
    /// lease). A refused write fails the run and no further task of it starts.
    pub fn with_run_writers<S: RunWriters>(mut self, store: Arc<S>) -> Self {
        if !self.has_store(&store) {
            self.checkpoint_store = Some(Arc::clone(&store) as Arc<dyn CheckpointStore>);
            self.signals = None;
        }
        self.run_writers = Some(store);
        self.edited()
    }

    /// Give each run [run data](crate::run_data): a key/value map its tasks reach with
    /// [`RunData::current`](crate::run_data::RunData::current), and an idempotency key
    /// per visit. With a checkpoint store it is durable (recorded in the run's log, with
    /// the next state's entry row); without one it lives in memory (tests, store-less
    /// runs). Workflows that do not ask for it pay nothing for it.
    pub fn with_run_data(mut self) -> Self {
        self.run_data = true;
        self.edited()
    }

    /// Stamp `version` into the log of every run this workflow starts, and resume only
    /// runs started under the same version.
    ///
    /// Bump it when a change to the workflow (states renamed or removed, tasks whose saved
    /// outputs or cursors changed shape) means that logs written by the old code must not
    /// be resumed by the new. [`resume_from`](Self::resume_from) of a run started under
    /// another version fails before anything runs, with an error naming both versions
    /// ([`CanoError::workflow_version_mismatch_versions`]). Logs written without a version
    /// (by cano 0.12.0, or by a workflow that never called this) resume as version 0, the
    /// default. The version is recorded in the blob of the run's first row;
    /// [`CheckpointRow`](crate::CheckpointRow) keeps its fields.
    ///
    /// ```
    /// use cano::prelude::*;
    /// use cano::MemoryCheckpointStore;
    /// use std::sync::Arc;
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { Work, Done }
    /// struct Fail;
    /// #[task(state = S)]
    /// impl Fail {
    ///     fn config(&self) -> TaskConfig { TaskConfig::minimal() }
    ///     async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
    ///         Err(CanoError::task_execution("not today"))
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = Arc::new(MemoryCheckpointStore::new());
    /// let v1 = Workflow::bare()
    ///     .register(S::Work, Fail)
    ///     .add_exit_state(S::Done)
    ///     .with_checkpoint_store(store.clone())
    ///     .with_workflow_version(1);
    /// assert!(v1.clone().with_workflow_id("run-1").orchestrate(S::Work).await.is_err());
    ///
    /// let v2 = v1.with_workflow_version(2);
    /// let err = v2.resume_from("run-1").await.unwrap_err();
    /// assert_eq!(err.workflow_version_mismatch_versions(), Some((1, 2)));
    /// # }
    /// ```
    pub fn with_workflow_version(mut self, version: u32) -> Self {
        self.version = version;
        self.edited()
    }

    /// The version set with [`with_workflow_version`](Self::with_workflow_version) (0 by
    /// default).
    pub fn workflow_version(&self) -> u32 {
        self.version
    }

    /// The id under which [`orchestrate`](Self::orchestrate) records its checkpoint log.
    ///
    /// Two runs must not share an id at the same time: a store rejects the second run's
    /// rows as duplicates.
    pub fn with_workflow_id(mut self, workflow_id: impl Into<String>) -> Self {
        self.workflow_id = Some(Arc::from(workflow_id.into()));
        self.edited()
    }

    /// Run every `orchestrate` / `resume_from` inside `span` instead of the default
    /// `workflow_orchestrate` / `workflow_resume` spans.
    #[cfg(feature = "tracing")]
    pub fn with_tracing_span(mut self, span: tracing::Span) -> Self {
        self.tracing_span = Some(span);
        self.edited()
    }

    /// Check the workflow's structure.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] when no state has a handler, no exit state is
    /// defined, or a split state is misconfigured (`PartialTimeout` without a timeout, a
    /// `Percentage` outside `(0, 1]`, a zero bulkhead, a join state that is neither
    /// registered nor an exit state), or a [declared transition](Self::with_transitions)
    /// names a state that is neither.
    pub fn validate(&self) -> Result<(), CanoError> {
        if self.states.is_empty() {
            return Err(CanoError::configuration(
                "Workflow has no registered state handlers",
            ));
        }
        if self.exit_states.is_empty() {
            return Err(CanoError::configuration(
                "Workflow has no exit states defined \u{2014} orchestration may loop forever",
            ));
        }
        self.validate_transitions()?;
        for (_, handler) in self.states.iter() {
            handler.validate(|s| self.is_known(s))?;
            if handler.is_signal() && self.signals.is_none() {
                return Err(CanoError::configuration(
                    "A signal state needs a store that keeps signals: call with_signal_store \
                     (MemoryCheckpointStore and RedbCheckpointStore keep them)",
                ));
            }
        }
        Ok(())
    }

    /// Check that a run may start at `state`.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] when `state` is neither registered nor an exit state.
    pub fn validate_initial_state(&self, state: &TState) -> Result<(), CanoError> {
        if self.is_known(state) {
            Ok(())
        } else {
            Err(CanoError::configuration(format!(
                "Initial state {state:?} is neither registered nor an exit state"
            )))
        }
    }

    /// The states that have a handler (not the exit-only states), in no particular order.
    ///
    /// ```
    /// use cano::prelude::*;
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { A, Done }
    /// struct T;
    /// #[task(state = S)]
    /// impl T { async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) } }
    /// let wf = Workflow::bare().register(S::A, T).add_exit_state(S::Done);
    /// assert_eq!(wf.registered_states().collect::<Vec<_>>(), [&S::A]);
    /// ```
    pub fn registered_states(&self) -> impl Iterator<Item = &TState> {
        self.states.keys()
    }

    fn is_known(&self, state: &TState) -> bool {
        self.states.contains(state) || self.exit_states.contains(state)
    }

    /// The cached result of [`validate`](Self::validate).
    fn validated(&self) -> Result<(), CanoError> {
        self.validated.get_or_init(|| self.validate()).clone()
    }
}

impl<TState, TResourceKey> Clone for Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn clone(&self) -> Self {
        Self {
            states: self.states.clone(),
            exit_states: self.exit_states.clone(),
            resources: Arc::clone(&self.resources),
            timeout: self.timeout,
            total_timeout: self.total_timeout,
            compensation_timeout: self.compensation_timeout,
            validated: OnceLock::new(),
            observers: self.observers.clone(),
            checkpoint_store: self.checkpoint_store.clone(),
            run_writers: self.run_writers.clone(),
            signals: self.signals.clone(),
            run_data: self.run_data,
            version: self.version,
            transitions: Arc::clone(&self.transitions),
            workflow_id: self.workflow_id.clone(),
            compensators: self.compensators.clone(),
            #[cfg(feature = "tracing")]
            tracing_span: self.tracing_span.clone(),
        }
    }
}

impl<TState, TResourceKey> fmt::Debug for Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exit_states: Vec<&TState> = self.exit_states.keys().collect();
        f.debug_struct("Workflow")
            .field("states", &format!("{} states", self.states.len()))
            .field("exit_states", &exit_states)
            .field("workflow_timeout", &self.timeout)
            .field("workflow_id", &self.workflow_id)
            .field("checkpoint_store", &self.checkpoint_store.is_some())
            .field(
                "compensators",
                &format!("{} compensators", self.compensators.len()),
            )
            .finish()
    }
}
