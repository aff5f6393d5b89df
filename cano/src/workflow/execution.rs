//! The run loop: the one place that drives a workflow from state to state.
//!
//! [`Workflow::orchestrate`], [`Workflow::resume_from`] and the scheduler's runs all
//! return its future, [`Workflow::run_loop`]; validation, resource setup/teardown and the
//! global timeout are layers it puts around itself when a run needs them. Per state the
//! loop:
//!
//! 1. fires `on_state_enter` (the state's `Debug` text is only formatted when an
//!    observer or a checkpoint store needs it);
//! 2. appends the state-entry checkpoint row, before any task runs;
//! 3. ends the run if the state is an exit state (clearing the checkpoint log);
//! 4. dispatches the state's [`Handler`](super::handler::Handler).
//!
//! Every error that ends a run after the loop started goes through [`Workflow::fail`],
//! which rolls back completed saga steps.

use super::Workflow;
use super::compensation::{PendingRollback, pending_rollback};
use super::handler::{Handler, single_next};
use super::table::Entry;
use crate::error::CanoError;
use crate::observer::WorkflowObserver;
use crate::recovery::{CheckpointRow, CheckpointStore, RowKind};
use crate::resource::Resources;
use crate::task::{TaskConfig, TaskResult, retry, run_with_retries};
use crate::util::{CatchUnwind, panic_message};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::{Pin, pin};
use std::sync::Arc;

/// Per-run bookkeeping.
///
/// Every run's future holds one, so what only sagas and resumed runs need lives behind a
/// box that plain runs never allocate ([`Run::extra`]).
pub(crate) struct Run {
    /// The checkpoint log's id (`None` when the workflow has no id and this is not a resume).
    pub(crate) workflow_id: Option<Arc<str>>,
    /// Sequence number of the next checkpoint row.
    pub(crate) sequence: u64,
    extra: Option<Box<RunExtra>>,
}

#[derive(Default)]
struct RunExtra {
    /// Completed saga steps, oldest first.
    compensations: Vec<Completed>,
    /// The cursor recorded at the resume point; only the first state of a resumed run
    /// (the one whose cursor it is) may use it.
    resume_cursor: Option<Vec<u8>>,
    /// The completion row at the resume point, which the resumed state's re-run replaces.
    /// The re-entry row names it (in its `output_blob`), so a later resume never
    /// compensates that superseded run of the step as well as the new one.
    supersedes: Option<u64>,
}

impl Run {
    fn fresh(workflow_id: Option<Arc<str>>) -> Self {
        Self {
            workflow_id,
            sequence: 0,
            extra: None,
        }
    }

    fn extra(&mut self) -> &mut RunExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Completed saga steps, oldest first.
    pub(crate) fn compensations(&self) -> &[Completed] {
        self.extra.as_ref().map_or(&[], |e| &e.compensations)
    }

    /// Push a completed saga step.
    pub(crate) fn push_completed(&mut self, step: Completed) {
        self.extra().compensations.push(step);
    }

    /// Take the compensation stack (leaving it empty).
    pub(crate) fn take_compensations(&mut self) -> Vec<Completed> {
        self.extra
            .as_mut()
            .map(|e| std::mem::take(&mut e.compensations))
            .unwrap_or_default()
    }

    /// The cursor recorded at the resume point, if the run still has it.
    pub(crate) fn resume_cursor(&self) -> Option<&Vec<u8>> {
        self.extra.as_ref()?.resume_cursor.as_ref()
    }

    /// Take the resume point's cursor (a resume cursor is used once).
    pub(crate) fn take_resume_cursor(&mut self) -> Option<Vec<u8>> {
        self.extra.as_mut()?.resume_cursor.take()
    }

    /// The sequence of the row written last: the run loop's entry rows take the run's
    /// next sequence and advance it by one.
    fn last_sequence(&self) -> u64 {
        self.sequence.saturating_sub(1)
    }

    /// Take the completion sequence the resumed state's re-entry supersedes.
    fn take_supersedes(&mut self) -> Option<u64> {
        self.extra.as_mut()?.supersedes.take()
    }
}

/// A completed saga step on the compensation stack.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Completed {
    /// The compensatable task's name (how its compensator is found).
    pub(crate) task_id: String,
    /// Its output, as JSON.
    pub(crate) output: Vec<u8>,
}

/// Where a run begins.
enum Start<TState> {
    /// Check the workflow (cached) and that this state is one of its states, then enter it
    /// ([`Workflow::orchestrate`]).
    Fresh(TState),
    /// Enter this state.
    At(TState),
    /// Finish a rollback that a previous process started.
    Rollback(Box<PendingRollback>),
}

/// The layers a run's future puts around the state machine.
#[derive(Clone, Copy)]
enum Layers {
    /// The global timeout (if the workflow has one) and, if `lifecycle`, resource setup
    /// and teardown.
    Outer { lifecycle: bool },
    /// None: the state machine inside the outer layers.
    Inner,
}

/// A store's `append` or `clear` in flight.
type StoreCall<'a> = Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'a>>;

const MISSING_ID: &str = "checkpointing requires a workflow id (call with_workflow_id)";

/// Observer bookkeeping for one unit of work: `on_task_start` when created,
/// `on_task_success` / `on_task_failure` in [`TaskScope::end`], and the task config with
/// the observers stamped in (so the retry loop reports retries and breaker rejections).
pub(crate) struct TaskScope<'a> {
    config: &'a TaskConfig,
    /// Boxed: only observed runs pay for it, and it keeps every run's future small.
    observed: Option<Box<Observed<'a>>>,
}

/// The observers of a unit of work, the name they know it by, and the task config with
/// the observers stamped in.
struct Observed<'a> {
    observers: &'a [Arc<dyn WorkflowObserver>],
    name: Cow<'static, str>,
    config: TaskConfig,
}

impl TaskScope<'_> {
    pub(crate) fn config(&self) -> &TaskConfig {
        match &self.observed {
            Some(observed) => &observed.config,
            None => self.config,
        }
    }

    pub(crate) fn end<R>(&self, outcome: &Result<R, CanoError>) {
        if let Some(observed) = &self.observed {
            let name = &observed.name;
            match outcome {
                Ok(_) => observed
                    .observers
                    .iter()
                    .for_each(|o| o.on_task_success(name)),
                Err(e) => observed
                    .observers
                    .iter()
                    .for_each(|o| o.on_task_failure(name, e)),
            }
        }
    }
}

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Run the workflow from `initial_state` until it enters an exit state.
    ///
    /// Order of work: validation (cached), a check that `initial_state` is known, resource
    /// setup, the state machine (under the global timeout, if any), resource teardown.
    /// Teardown runs whether the state machine succeeded, failed or timed out.
    ///
    /// Nothing runs until the returned future is first polled (it is what an `async fn`
    /// would return, written out so that every run's future stays small; with the
    /// `tracing` feature, the run's span is created with the future). If
    /// it is dropped mid-run, the current task is cancelled and teardown does not run;
    /// with a checkpoint store the log is kept, so the run can be resumed.
    ///
    /// # Errors
    /// Validation errors ([`CanoError::Configuration`]), resource setup errors, task
    /// errors (after retries), `No task registered for state: …` when a task moves to an
    /// unknown state, `Workflow timeout exceeded`, and checkpoint store errors.
    pub fn orchestrate(
        &self,
        initial_state: TState,
    ) -> impl Future<Output = Result<TState, CanoError>> + Send + '_ {
        let run = self.run_loop(
            Run::fresh(self.workflow_id.clone()),
            Start::Fresh(initial_state),
            Layers::Outer {
                lifecycle: self.resources.has_lifecycle(),
            },
        );
        // The span is made here, when the run's future is, and entered on every poll.
        #[cfg(feature = "tracing")]
        {
            use tracing::Instrument;
            let span = self.tracing_span.clone().unwrap_or_else(|| {
                if tracing::enabled!(tracing::Level::INFO) {
                    tracing::info_span!("workflow_orchestrate")
                } else {
                    tracing::Span::none()
                }
            });
            run.instrument(span)
        }
        // Without a span the run's future is returned as it is: no wrapper around it
        // (see `a_run_future_stays_small`).
        #[cfg(not(feature = "tracing"))]
        run
    }

    /// Continue the run recorded under `workflow_id` in the checkpoint store.
    ///
    /// The run re-enters the state of the log's last row (writing a new row for it and
    /// running its task again), so tasks at and after the resume point should be
    /// idempotent. A stepped state continues from the cursor recorded at the resume
    /// point; saga steps completed before it are rolled back if the resumed run fails.
    /// Resource setup/teardown and the global timeout apply as in
    /// [`orchestrate`](Self::orchestrate); `on_resume` fires before setup.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] without a checkpoint store;
    /// [`CanoError::CheckpointStore`] when the log cannot be read or is empty;
    /// [`CanoError::Workflow`] when the last row's state is not a state of this workflow;
    /// plus everything [`orchestrate`](Self::orchestrate) can return.
    pub async fn resume_from(&self, workflow_id: impl Into<String>) -> Result<TState, CanoError> {
        let workflow_id: Arc<str> = Arc::from(workflow_id.into());
        let fut = async {
            let store = self.checkpoint_store.as_ref().ok_or_else(|| {
                CanoError::configuration(
                    "resume_from requires a checkpoint store (call with_checkpoint_store)",
                )
            })?;
            self.validated()?;
            let rows = store.load_run(&workflow_id).await.map_err(|e| {
                CanoError::checkpoint_store(format!("load checkpoint run {workflow_id:?}: {e}"))
            })?;
            if let Some(pending) = pending_rollback(&rows)? {
                // The run died while rolling back: finish the rollback.
                let last_sequence = rows.iter().map(|r| r.sequence).max().unwrap_or(0);
                let mut run = Run::fresh(Some(workflow_id.clone()));
                run.sequence = last_sequence.saturating_add(1);
                self.notify(|o| o.on_resume(&workflow_id, last_sequence));
                return self
                    .run_loop(
                        run,
                        Start::Rollback(Box::new(pending)),
                        Layers::Outer {
                            lifecycle: self.resources.has_lifecycle(),
                        },
                    )
                    .await;
            }
            let (state, run) = self.plan_resume(workflow_id.clone(), &rows)?;
            let last_sequence = run.sequence - 1;
            self.notify(|o| o.on_resume(&workflow_id, last_sequence));
            let layers = Layers::Outer {
                lifecycle: self.resources.has_lifecycle(),
            };
            self.run_loop(run, Start::At(state), layers).await
        };
        #[cfg(feature = "tracing")]
        {
            use tracing::Instrument;
            let span = self.tracing_span.clone().unwrap_or_else(|| {
                if tracing::enabled!(tracing::Level::INFO) {
                    tracing::info_span!("workflow_resume")
                } else {
                    tracing::Span::none()
                }
            });
            fut.instrument(span).await
        }
        #[cfg(not(feature = "tracing"))]
        fut.await
    }

    /// Where a resumed run starts and what it carries over, from the run's rows:
    ///
    /// * the resume point is the state of the row with the highest sequence (of any kind);
    /// * the next row gets that sequence + 1;
    /// * saga steps recorded by completion rows before the resume point are put back on
    ///   the compensation stack (the resume point's own completion row is not: that step
    ///   runs again and records a fresh output);
    /// * if the last row is a step cursor, the resumed stepped state starts from it.
    fn plan_resume(
        &self,
        workflow_id: Arc<str>,
        rows: &[CheckpointRow],
    ) -> Result<(TState, Run), CanoError> {
        let last = rows.iter().max_by_key(|r| r.sequence).ok_or_else(|| {
            CanoError::checkpoint_store(format!(
                "no checkpoint rows for workflow id {workflow_id:?}"
            ))
        })?;
        let state = self
            .states
            .labelled_keys()
            .chain(self.exit_states.labelled_keys())
            .find(|(_, label)| *label == last.state)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| {
                CanoError::workflow(format!(
                    "checkpoint state {:?} is not a registered or exit state of this workflow",
                    last.state
                ))
            })?;
        let sequence = last.sequence.checked_add(1).ok_or_else(|| {
            CanoError::checkpoint_store(format!(
                "checkpoint log {workflow_id:?} is full: its last sequence is u64::MAX"
            ))
        })?;
        // Completion rows replaced by a re-run after an earlier resume: the re-entry row of
        // that resume names them.
        let superseded: Vec<u64> = rows
            .iter()
            .filter(|r| r.kind == RowKind::StateEntry)
            .filter_map(|r| {
                std::str::from_utf8(r.output_blob.as_deref()?)
                    .ok()?
                    .parse()
                    .ok()
            })
            .collect();
        let mut completed: Vec<&CheckpointRow> = rows
            .iter()
            .filter(|r| {
                r.kind == RowKind::CompensationCompletion
                    && r.sequence != last.sequence
                    && !superseded.contains(&r.sequence)
                    && r.output_blob.is_some()
            })
            .collect();
        completed.sort_by_key(|r| r.sequence);
        let compensations = completed
            .into_iter()
            .filter_map(|r| {
                Some(Completed {
                    task_id: r.task_id.clone(),
                    output: r.output_blob.clone()?,
                })
            })
            .collect();
        let resume_cursor = match last.kind {
            RowKind::StepCursor => last.output_blob.clone(),
            _ => None,
        };
        let extra = RunExtra {
            compensations,
            resume_cursor,
            supersedes: (last.kind == RowKind::CompensationCompletion).then_some(last.sequence),
        };
        let run = Run {
            workflow_id: Some(workflow_id),
            sequence,
            extra: Some(Box::new(extra)),
        };
        Ok((state, run))
    }

    /// One scheduled run: the state machine from `initial_state` under the workflow's
    /// global timeout, recording its checkpoint log (if a store is attached) under
    /// `workflow_id`. No validation and no resource lifecycle: the scheduler validates
    /// and sets resources up once, at start.
    #[cfg_attr(not(feature = "scheduler"), allow(dead_code))] // the scheduler's entry point
    pub(crate) async fn run_scheduled(
        &self,
        initial_state: TState,
        workflow_id: Option<Arc<str>>,
    ) -> Result<TState, CanoError> {
        let layers = Layers::Outer { lifecycle: false };
        self.run_loop(Run::fresh(workflow_id), Start::At(initial_state), layers)
            .await
    }

    /// The workflow's resources (the scheduler sets them up and tears them down).
    #[cfg_attr(not(feature = "scheduler"), allow(dead_code))] // used by the scheduler
    pub(crate) fn resources(&self) -> &Arc<Resources<TResourceKey>> {
        &self.resources
    }

    /// The id set with `with_workflow_id`, and whether a checkpoint store is attached.
    #[cfg_attr(not(feature = "scheduler"), allow(dead_code))] // used by the scheduler
    pub(crate) fn checkpoint_identity(&self) -> (Option<&str>, bool) {
        (self.workflow_id.as_deref(), self.checkpoint_store.is_some())
    }

    /// The run loop. See the module docs for the steps per state.
    ///
    /// This future is the whole of a plain run: every spawned run holds one, so its size
    /// is memory per concurrent run (`a_run_future_stays_small`). Hence:
    /// * it owns the run's bookkeeping, and no `async fn` layer sits between it and the
    ///   public entry points (each such layer keeps its own copy of its arguments);
    /// * what only some runs need is boxed: the resource lifecycle and the global timeout
    ///   ([`Workflow::layered`], which runs this loop again inside them), retries after a
    ///   failed first attempt, the other handler kinds, rollbacks;
    /// * across an `await` it keeps as little as it can: one reference to the state's
    ///   table entry rather than its parts, the store call without its id;
    /// * it is an `async move` block rather than an `async fn`: an `async fn` stores its
    ///   arguments twice (once as captured, once as locals), a block uses the captured
    ///   ones in place.
    #[allow(clippy::manual_async_fn)] // deliberate, see above
    fn run_loop(
        &self,
        mut run: Run,
        start: Start<TState>,
        layers: Layers,
    ) -> impl Future<Output = Result<TState, CanoError>> + Send + '_ {
        async move {
            if let Start::Fresh(state) = &start {
                self.validated()?;
                self.validate_initial_state(state)?;
            }
            if let Layers::Outer { lifecycle } = layers
                && (lifecycle || self.timeout.is_some())
            {
                return self.layered(run, start, lifecycle).await;
            }
            let mut current = match start {
                Start::Fresh(state) | Start::At(state) => state,
                Start::Rollback(pending) => {
                    return Err(Box::pin(self.resume_rollback(&mut run, *pending)).await);
                }
            };
            let labelled = self.observers.is_some() || self.checkpoint_store.is_some();
            #[cfg(feature = "tracing")]
            tracing::info!(initial_state = ?current, "Starting workflow execution");
            // Every failure leaves the loop with its error, and the one `fail` below rolls
            // back and reports it: one suspension point instead of one per failure site.
            let failure = loop {
                #[cfg(feature = "tracing")]
                tracing::debug!(current_state = ?current, "Executing state");
                let entry = self.states.entry(&current);
                if labelled {
                    // The store's append is awaited here rather than inside a helper
                    // future, whose size every run's future would carry.
                    let appended = {
                        let mut append = match self.enter(&mut run, &current, entry) {
                            Ok(append) => append,
                            Err(err) => break err,
                        };
                        // Awaited in place, through `&mut`: moving it out would keep its
                        // container and the future both.
                        match &mut append {
                            Some(call) => match call.await {
                                Ok(()) => true,
                                Err(e) => {
                                    break CanoError::checkpoint_store(format!(
                                        "append checkpoint: {e}"
                                    ));
                                }
                            },
                            None => false,
                        }
                    };
                    if appended && let Some(id) = run.workflow_id.as_deref() {
                        self.notify(|o| o.on_checkpoint(id, run.last_sequence()));
                    }
                }
                if self.exit_states.contains(&current) {
                    #[cfg(feature = "tracing")]
                    tracing::info!(final_state = ?current, "Workflow completed successfully");
                    if let Some(clearing) = &mut self.start_clear(&run)
                        && let Err(e) = clearing.await
                    {
                        report_clear_failure(&run, &e);
                    }
                    return Ok(current);
                }
                let Some((_, handler, label)) = entry else {
                    break CanoError::workflow(format!(
                        "No task registered for state: {current:?}"
                    ));
                };
                let outcome = match handler.plain_task().filter(|_| self.observers.is_none()) {
                    // The common case, inline: the first attempt runs without the retry
                    // machinery (or a dispatch future) around it; the retry loop, boxed,
                    // starts only if that attempt fails.
                    Some((task, _)) => {
                        let attempt = CatchUnwind::new(task.run(&self.resources)).await;
                        // Moved whole into the boxed retry: matched apart around the
                        // `await`, it would stay in the run's future beside it.
                        if matches!(attempt, Ok(Err(_))) {
                            Box::pin(handler.retry_plain(&self.resources, attempt)).await
                        } else {
                            first_outcome(attempt)
                        }
                    }
                    // Boxed: the other kinds' futures are large, and only they pay for it.
                    None => Box::pin(handler.dispatch(self, &mut run, label)).await,
                };
                // A resume cursor belongs to the resume point only.
                run.take_resume_cursor();
                match outcome {
                    Ok(next) => current = next,
                    Err(e) => break e,
                }
            };
            Err(Box::pin(self.fail(&mut run, failure)).await)
        }
    }

    /// A run with a resource lifecycle or a global timeout: set resources up (if
    /// `lifecycle`), run the state machine ([`Workflow::run_loop`] without layers) under
    /// the timeout, tear resources down. Teardown runs whether the state machine
    /// succeeded, failed or timed out; a failed setup ends the run before it.
    ///
    /// Boxed (and type-erased, which lets `run_loop` call it): runs without these layers,
    /// the common case, do not carry the timer or the lifecycle futures.
    fn layered(
        &self,
        run: Run,
        start: Start<TState>,
        lifecycle: bool,
    ) -> Pin<Box<dyn Future<Output = Result<TState, CanoError>> + Send + '_>> {
        // Validated already (`run_loop` did it before coming here).
        let start = match start {
            Start::Fresh(state) => Start::At(state),
            start => start,
        };
        Box::pin(async move {
            if lifecycle {
                self.resources.setup_all().await?;
            }
            let machine = self.run_loop(run, start, Layers::Inner);
            let result = match self.timeout {
                Some(limit) => tokio::time::timeout(limit, machine)
                    .await
                    .unwrap_or_else(|_| Err(CanoError::workflow("Workflow timeout exceeded"))),
                None => machine.await,
            };
            if lifecycle {
                self.resources.teardown_all().await;
            }
            result
        })
    }

    /// Entering `current` in an observed or checkpointed run: fire `on_state_enter` and
    /// start appending the state-entry row. Returns the append (for the caller to await
    /// before the state's task runs; the row's sequence is then [`Run::last_sequence`]);
    /// `None` when no row is written. `entry` is the state's entry in the state table, if it has a handler. The
    /// run's sequence is advanced here.
    fn enter<'r>(
        &'r self,
        run: &'r mut Run,
        current: &TState,
        entry: Option<&Entry<TState, Handler<TState, TResourceKey>>>,
    ) -> Result<Option<StoreCall<'r>>, CanoError> {
        let (handler, label) = match entry {
            Some((_, handler, label)) => (Some(handler), Some(&**label)),
            None => (None, None),
        };
        // Exit states have their label in the exit table; a state that is neither (an
        // error, reported after its row) is formatted here.
        let text = match label.or_else(|| self.exit_states.label(current)) {
            Some(label) => Cow::Borrowed(label),
            None => Cow::Owned(format!("{current:?}")),
        };
        self.notify(|o| o.on_state_enter(&text));
        let store = match &self.checkpoint_store {
            Some(store) if handler.is_none_or(|h| h.is_checkpointed()) => store,
            _ => return Ok(None),
        };
        let Some(id) = run.workflow_id.as_deref() else {
            return Err(CanoError::checkpoint_store(MISSING_ID));
        };
        // Never reuse the sequence of a failed append: it may have been stored anyway.
        let next = next_sequence(id, run.sequence)?;
        let task_id = handler
            .and_then(|h| h.checkpoint_task_id())
            .unwrap_or(Cow::Borrowed(""));
        let mut row = CheckpointRow::new(run.sequence, text.into_owned(), task_id);
        // A stepped state resumed mid-way records its re-entry as a cursor row carrying the
        // cursor it continues from: the log's last row then always says where the visit
        // stands, even if the process dies again before the next step.
        if let (Some(cursor), true) = (run.resume_cursor(), handler.is_some_and(|h| h.is_stepped()))
        {
            row = row.with_cursor(cursor.clone());
        }
        if let Some(superseded) = run.take_supersedes() {
            row.output_blob = Some(superseded.to_string().into_bytes());
        }
        run.sequence = next;
        let run: &'r Run = run;
        let Some(id) = run.workflow_id.as_deref() else {
            return Err(CanoError::checkpoint_store(MISSING_ID));
        };
        Ok(Some(store.append(id, row)))
    }

    /// Append `row` to the run's log (which must have an id); on success fire
    /// `on_checkpoint` and advance the sequence. Returns the store's error unchanged.
    pub(crate) async fn append_row(
        &self,
        store: &dyn CheckpointStore,
        run: &mut Run,
        row: CheckpointRow,
    ) -> Result<(), CanoError> {
        let Some(id) = run.workflow_id.as_deref() else {
            return Err(CanoError::checkpoint_store(MISSING_ID));
        };
        let sequence = row.sequence;
        // A failed append may still have stored its row (a lost acknowledgement): never
        // reuse its sequence number. A gap is harmless; a duplicate would make every later
        // row of the run conflict.
        run.sequence = next_sequence(id, sequence)?;
        store.append(id, row).await?;
        self.notify(|o| o.on_checkpoint(id, sequence));
        Ok(())
    }

    /// Best-effort removal of the run's log after it succeeded or rolled back cleanly. A
    /// failure is reported, not returned.
    pub(crate) async fn clear_log(&self, run: &Run) {
        if let Some(clearing) = self.start_clear(run)
            && let Err(e) = clearing.await
        {
            report_clear_failure(run, &e);
        }
    }

    /// The store's `clear` for this run's log, not yet awaited (`None` without a store or
    /// an id). The run loop awaits it itself, so that no helper future adds its size to
    /// every run's future.
    fn start_clear<'a>(&'a self, run: &'a Run) -> Option<StoreCall<'a>> {
        match (&self.checkpoint_store, run.workflow_id.as_deref()) {
            (Some(store), Some(id)) => Some(store.clear(id)),
            _ => None,
        }
    }

    /// Remove the run's log (no-op without a store or an id).
    pub(crate) async fn try_clear_log(&self, run: &Run) -> Result<(), CanoError> {
        match self.start_clear(run) {
            Some(clearing) => clearing.await,
            None => Ok(()),
        }
    }

    /// Call `f` on every observer.
    #[inline]
    pub(crate) fn notify(&self, f: impl Fn(&dyn WorkflowObserver)) {
        if let Some(observers) = &self.observers {
            for o in observers.iter() {
                f(&**o);
            }
        }
    }

    /// Start observing one unit of work: fires `on_task_start(name())` and stamps the
    /// observers into a copy of `config`. Without observers nothing is formatted or copied.
    pub(crate) fn begin_task<'a>(
        &'a self,
        config: &'a TaskConfig,
        name: impl FnOnce() -> Cow<'static, str>,
    ) -> TaskScope<'a> {
        let Some(observers) = &self.observers else {
            return TaskScope {
                config,
                observed: None,
            };
        };
        let name = name();
        observers.iter().for_each(|o| o.on_task_start(&name));
        let stamped = TaskConfig {
            observers: Some(Arc::clone(observers)),
            task_name: Some(name.clone()),
            ..config.clone()
        };
        TaskScope {
            config,
            observed: Some(Box::new(Observed {
                observers: &observers[..],
                name,
                config: stamped,
            })),
        }
    }
}

/// A log that could not be cleared is reported (through `tracing` when enabled, else on
/// stderr), not returned: the run itself succeeded.
fn report_clear_failure(run: &Run, e: &CanoError) {
    let id = run.workflow_id.as_deref().unwrap_or_default();
    #[cfg(feature = "tracing")]
    tracing::warn!(workflow_id = id, error = %e, "could not clear the checkpoint log");
    #[cfg(not(feature = "tracing"))]
    eprintln!("cano: could not clear the checkpoint log of {id:?}: {e}");
}

/// The sequence after `sequence`. The last number, `u64::MAX`, is never used for a row,
/// so that there is always a next one to resume at.
fn next_sequence(workflow_id: &str, sequence: u64) -> Result<u64, CanoError> {
    match sequence.checked_add(1) {
        Some(next) if next < u64::MAX => Ok(next),
        _ => Err(CanoError::checkpoint_store(format!(
            "checkpoint log {workflow_id:?} is full: no sequence number is left for another row"
        ))),
    }
}

/// The retry loop with panics turned into `TaskExecution("panic: …")`. A panic ends the
/// loop: the attempt is not retried.
pub(crate) async fn guarded<T, Fut>(
    config: &TaskConfig,
    run_fn: impl Fn() -> Fut,
) -> Result<T, CanoError>
where
    T: Send + Sync,
    Fut: Future<Output = Result<T, CanoError>>,
{
    let retried = pin!(run_with_retries(config, run_fn));
    match CatchUnwind::new(retried).await {
        Ok(outcome) => outcome,
        Err(payload) => Err(panicked(&*payload)),
    }
}

/// [`guarded`] for a loop whose first attempt, made by the caller, failed with `first`.
pub(crate) async fn guarded_retry<T, Fut>(
    config: &TaskConfig,
    run_fn: impl Fn() -> Fut,
    first: CanoError,
) -> Result<T, CanoError>
where
    T: Send + Sync,
    Fut: Future<Output = Result<T, CanoError>>,
{
    let retried = pin!(retry::retry_after_failure(config, run_fn, first));
    match CatchUnwind::new(retried).await {
        Ok(outcome) => outcome,
        Err(payload) => Err(panicked(&*payload)),
    }
}

/// What one attempt of a task returned, or the panic it raised.
pub(crate) type Attempt<TState> =
    Result<Result<TaskResult<TState>, CanoError>, Box<dyn std::any::Any + Send>>;

/// The next state from a single task's attempt: its `Single` result, its error, or the
/// error its panic becomes.
pub(crate) fn first_outcome<TState>(attempt: Attempt<TState>) -> Result<TState, CanoError> {
    match attempt {
        Ok(result) => result.and_then(single_next),
        Err(payload) => Err(panicked(&*payload)),
    }
}

/// The error a caught panic becomes.
pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> CanoError {
    CanoError::task_execution(format!("panic: {}", panic_message(payload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum S {
        A,
        Done,
    }
    struct T;
    impl Task<S> for T {}

    /// Every spawned run holds one of these futures: its size is memory per concurrent
    /// run. It was 3.7 KB before the run loop was laid out to avoid double-stored state,
    /// 720 bytes before the loop awaited store calls itself, failed in one place and
    /// kept what only sagas and resumed runs need behind a box, and 256 bytes before the
    /// loop became the whole run's future (no `orchestrate`/`execute` layers around it)
    /// and stopped keeping matched-apart values beside the futures it awaits.
    #[test]
    fn a_run_future_stays_small() {
        let wf = Workflow::bare().register(S::A, T).add_exit_state(S::Done);
        // The `tracing` feature wraps runs in a span (a few dozen bytes more).
        let slack = if cfg!(feature = "tracing") { 64 } else { 0 };
        let size = std::mem::size_of_val(&wf.orchestrate(S::A));
        // At 136 bytes or less, `tokio::spawn(async move { wf.orchestrate(s).await })`
        // fits a 256-byte tokio task (tasks are 128-byte aligned, with 120 bytes of their
        // own and the spawned block's): 384 above that.
        assert!(
            size <= 136 + slack,
            "orchestrate future grew to {size} bytes"
        );
        let size = std::mem::size_of_val(&wf.resume_from("id"));
        assert!(
            size <= 336 + slack,
            "resume_from future grew to {size} bytes"
        );
    }
}
