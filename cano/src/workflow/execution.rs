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
use super::compensation::PendingRollback;
use super::handler::{Handler, first_outcome};
use super::run::{Interrupt, MISSING_ID, Run, RunExtra, Stop};
use super::table::Entry;
use crate::cancel::CancellationToken;
use crate::error::CanoError;
use crate::observer::WorkflowObserver;
use crate::recovery::log::{self, ResumePlan, ResumeWait};
use crate::recovery::{CheckpointRow, CheckpointStore, RunWriter};
use crate::run_data::{DataWrites, RunScope};
use crate::task::TaskConfig;
use crate::task::attempt::{self, Observed, TaskScope};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
type StoreCall<'a> = crate::recovery::StoreFuture<'a, ()>;

/// The writer a `RunWriters` store handed a run, shared between the run (which writes
/// through it) and [`Workflow::layers`] (which tells it, at the end, that the run failed).
struct Ending {
    writer: Box<dyn RunWriter>,
    /// The log is the run's: it was resumed from it, or wrote a row to it.
    wrote: AtomicBool,
    /// The run's log was cleared through the writer (the run succeeded or rolled back).
    cleared: AtomicBool,
}

impl Ending {
    /// The run returned `error`: unless its log was cleared, tell the writer
    /// ([`RunWriter::finished_with_error`]). A failure to is reported, not returned: the
    /// run's result stands.
    async fn finished_with_error(&self, workflow_id: &str, error: &CanoError) {
        if self.cleared.load(Ordering::Acquire) || !self.wrote.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.writer.finished_with_error(error).await {
            #[cfg(feature = "tracing")]
            tracing::warn!(workflow_id, error = %e, "could not mark the failed run in its checkpoint store");
            #[cfg(not(feature = "tracing"))]
            eprintln!(
                "cano: could not mark run {workflow_id:?} failed in its checkpoint store: {e}"
            );
        }
    }
}

/// The run's side of an [`Ending`].
struct SharedWriter(Arc<Ending>);

impl SharedWriter {
    /// `append`, noting once that the run wrote to its log.
    fn noting<'a>(&'a self, append: StoreCall<'a>) -> StoreCall<'a> {
        if self.0.wrote.load(Ordering::Relaxed) {
            return append;
        }
        Box::pin(async move {
            append.await?;
            self.0.wrote.store(true, Ordering::Release);
            Ok(())
        })
    }
}

impl RunWriter for SharedWriter {
    fn append(&self, row: CheckpointRow) -> StoreCall<'_> {
        self.noting(self.0.writer.append(row))
    }

    fn append_last(&self, row: CheckpointRow) -> StoreCall<'_> {
        self.noting(self.0.writer.append_last(row))
    }

    fn clear(&self) -> StoreCall<'_> {
        Box::pin(async move {
            self.0.writer.clear().await?;
            self.0.cleared.store(true, Ordering::Release);
            Ok(())
        })
    }

    fn finished_with_error<'a>(&'a self, error: &'a CanoError) -> StoreCall<'a> {
        self.0.writer.finished_with_error(error)
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
        self.start(Run::fresh(self.workflow_id.clone()), initial_state)
    }

    /// [`orchestrate`](Self::orchestrate) that stops when `token`'s
    /// [`CancellationHandle`](crate::cancel::CancellationHandle) cancels: the task in
    /// flight is dropped at its next `.await`, completed saga steps are compensated, and
    /// the run ends with [`CanoError::cancelled`]'s error (see [`crate::cancel`]). A token
    /// already cancelled runs nothing. (cano 0.15 changed `orchestrate` itself to take the
    /// token; here it is a separate method so that 0.12.0 programs compile unchanged.)
    ///
    /// ```
    /// use cano::prelude::*;
    /// use cano::cancel::CancellationToken;
    /// use std::time::Duration;
    ///
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { Wait, Done }
    /// struct Wait;
    /// #[task(state = S)]
    /// impl Wait {
    ///     async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
    ///         tokio::time::sleep(Duration::from_secs(3600)).await;
    ///         Ok(TaskResult::Single(S::Done))
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let wf = Workflow::bare().register(S::Wait, Wait).add_exit_state(S::Done);
    /// let (handle, token) = CancellationToken::new();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     handle.cancel();
    /// });
    /// let err = wf.orchestrate_with_token(S::Wait, token).await.unwrap_err();
    /// assert!(err.is_cancelled());
    /// assert_eq!(err.to_string(), "Workflow error: Workflow cancelled in state Wait");
    /// # }
    /// ```
    pub fn orchestrate_with_token(
        &self,
        initial_state: TState,
        token: CancellationToken,
    ) -> impl Future<Output = Result<TState, CanoError>> + Send + '_ {
        let mut run = Run::fresh(self.workflow_id.clone());
        run.set_interrupt(Interrupt::new(token, None));
        self.start(run, initial_state)
    }

    /// [`orchestrate`](Self::orchestrate) under the checkpoint-log id `workflow_id`
    /// (instead of the one set with [`with_workflow_id`](Self::with_workflow_id)): one
    /// workflow, shared (e.g. in an `Arc`), runs many orders concurrently, each with a log
    /// of its own, without a clone of the workflow per run.
    ///
    /// ```
    /// use cano::prelude::*;
    /// use cano::MemoryCheckpointStore;
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum S { Work, Done }
    /// struct Work;
    /// #[task(state = S)]
    /// impl Work {
    ///     async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
    /// let wf = Arc::new(
    ///     Workflow::bare()
    ///         .register(S::Work, Work)
    ///         .add_exit_state(S::Done)
    ///         .with_checkpoint_store(Arc::new(MemoryCheckpointStore::new())),
    /// );
    /// let runs: Vec<_> = (0..3)
    ///     .map(|i| {
    ///         let wf = Arc::clone(&wf);
    ///         tokio::spawn(async move { wf.orchestrate_with_id(format!("order-{i}"), S::Work).await })
    ///     })
    ///     .collect();
    /// for run in runs {
    ///     assert_eq!(run.await.unwrap()?, S::Done);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn orchestrate_with_id(
        &self,
        workflow_id: impl Into<String>,
        initial_state: TState,
    ) -> impl Future<Output = Result<TState, CanoError>> + Send + '_ {
        let id: Arc<str> = Arc::from(workflow_id.into());
        self.start(Run::fresh(Some(id)), initial_state)
    }

    /// A fresh run from `initial_state`, in its span.
    fn start(
        &self,
        run: Run,
        initial_state: TState,
    ) -> impl Future<Output = Result<TState, CanoError>> + Send + '_ {
        let lifecycle = self.resources.has_lifecycle();
        let run = self.run_loop(
            run,
            Start::Fresh(initial_state),
            Layers::Outer { lifecycle },
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
    /// [`CanoError::Workflow`] when the last row's state is not a state of this workflow,
    /// or when the run was started under another
    /// [workflow version](Self::with_workflow_version) (see
    /// [`CanoError::workflow_version_mismatch`]; nothing runs);
    /// plus everything [`orchestrate`](Self::orchestrate) can return.
    pub async fn resume_from(&self, workflow_id: impl Into<String>) -> Result<TState, CanoError> {
        self.resume(
            Arc::from(workflow_id.into()),
            CancellationToken::disabled(),
            false,
        )
        .await
    }

    /// [`resume_from`](Self::resume_from) that stops when `token`'s handle cancels, as
    /// [`orchestrate_with_token`](Self::orchestrate_with_token) does. A rollback found in
    /// the log is finished whatever the token says (a rollback cannot be cancelled); a
    /// token already cancelled runs nothing.
    pub async fn resume_from_with_token(
        &self,
        workflow_id: impl Into<String>,
        token: CancellationToken,
    ) -> Result<TState, CanoError> {
        self.resume(Arc::from(workflow_id.into()), token, false)
            .await
    }

    /// [`resume_from_with_token`](Self::resume_from_with_token), except that a token
    /// already cancelled does not leave the run as it is: no task runs, but the saga
    /// steps completed before the resume point are compensated (and a rollback in the log
    /// finished), as for a cancel during the run. The cluster's cancel of a run waiting to
    /// be resumed.
    #[cfg(feature = "postgres")]
    pub(crate) async fn resume_from_cancelling(
        &self,
        workflow_id: &str,
        token: CancellationToken,
    ) -> Result<TState, CanoError> {
        self.resume(Arc::from(workflow_id), token, true).await
    }

    /// The body of `resume_from`.
    async fn resume(
        &self,
        workflow_id: Arc<str>,
        token: CancellationToken,
        compensate_if_cancelled: bool,
    ) -> Result<TState, CanoError> {
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
            let layers = Layers::Outer {
                lifecycle: self.resources.has_lifecycle(),
            };
            let (mut run, start) = self.resumed_run(&workflow_id, &rows)?;
            run.set_interrupt(Interrupt::new(token, None));
            if compensate_if_cancelled {
                run.set_compensate_if_cancelled();
            }
            self.run_loop(run, start, layers).await
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

    /// The run that continues `workflow_id`'s log `rows`, and where it starts. Sync, so
    /// that the plan is not kept in the resume future.
    fn resumed_run(
        &self,
        workflow_id: &Arc<str>,
        rows: &[CheckpointRow],
    ) -> Result<(Run, Start<TState>), CanoError> {
        let plan = log::plan_resume(workflow_id, rows)?;
        if plan.version() != self.version {
            return Err(CanoError::workflow_version_mismatch_for(
                workflow_id,
                plan.version(),
                self.version,
            ));
        }
        if self.observers.is_some() {
            // States the workflow no longer has, before the resume point: reported, skipped.
            let point = rows.iter().map(|r| r.sequence).max().unwrap_or_default();
            for row in rows
                .iter()
                .filter(|r| r.sequence != point && !r.state.is_empty())
            {
                let known = self
                    .states
                    .labelled_keys()
                    .chain(self.exit_states.labelled_keys())
                    .any(|(_, label)| label == row.state);
                if !known {
                    self.notify(|o| {
                        o.on_unknown_resume_state(workflow_id, row.sequence, &row.state)
                    });
                }
            }
        }
        Ok(match plan {
            // The run died while rolling back: finish the rollback.
            ResumePlan::Rollback {
                original,
                remaining,
                last_sequence,
                version: _,
            } => {
                let mut run = Run::fresh(Some(workflow_id.clone()));
                run.sequence = last_sequence.saturating_add(1);
                self.notify(|o| o.on_resume(workflow_id, last_sequence));
                let pending = PendingRollback {
                    original,
                    remaining,
                };
                (run, Start::Rollback(Box::new(pending)))
            }
            ResumePlan::Forward {
                state,
                last_sequence,
                compensations,
                cursor,
                wait,
                consumed_signals,
                data,
                visits,
                split_done,
                supersedes,
                version: _,
            } => {
                let state = self.state_labelled(state)?;
                let sequence = last_sequence.checked_add(1).ok_or_else(|| {
                    CanoError::checkpoint_store(format!(
                        "checkpoint log {workflow_id:?} is full: its last sequence is u64::MAX"
                    ))
                })?;
                let extra = RunExtra {
                    compensations,
                    resume_cursor: cursor,
                    resume_wait: wait,
                    consumed_signals,
                    supersedes,
                    writer: None,
                    interrupt: None,
                    data: self
                        .has_run_data()
                        .then(|| RunScope::new(Some(workflow_id.clone()), data, visits)),
                    reentry: true,
                    split_done,
                    compensate_if_cancelled: false,
                };
                self.notify(|o| o.on_resume(workflow_id, last_sequence));
                let run = Run::resumed(workflow_id.clone(), sequence, extra);
                (run, Start::At(state))
            }
        })
    }

    /// The registered or exit state whose `Debug` text is `label`.
    fn state_labelled(&self, label: &str) -> Result<TState, CanoError> {
        self.states
            .labelled_keys()
            .chain(self.exit_states.labelled_keys())
            .find(|(_, l)| *l == label)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| {
                CanoError::workflow(format!(
                    "checkpoint state {label:?} is not a registered or exit state of this workflow"
                ))
            })
    }

    /// One scheduled run: the state machine from `initial_state` under the workflow's
    /// global timeout, recording its checkpoint log (if a store is attached) under
    /// `workflow_id`, stopped by `token` (see `orchestrate_with_token`). No validation
    /// and no resource lifecycle: the scheduler validates and sets resources up once, at
    /// start.
    #[cfg_attr(not(feature = "scheduler"), allow(dead_code))] // the scheduler's entry point
    pub(crate) async fn run_scheduled(
        &self,
        initial_state: TState,
        workflow_id: Option<Arc<str>>,
        token: CancellationToken,
    ) -> Result<TState, CanoError> {
        let layers = Layers::Outer { lifecycle: false };
        let mut run = Run::fresh(workflow_id);
        run.set_interrupt(Interrupt::new(token, None));
        self.run_loop(run, Start::At(initial_state), layers).await
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
                && (lifecycle
                    || self.timeout.is_some()
                    || self.total_timeout.is_some()
                    || self.run_writers.is_some()
                    || self.has_run_data()
                    || run.interrupt().is_some()
                    || crate::instrument::enabled())
            {
                return self.layered(run, start, lifecycle).await;
            }
            // This loop ends the run (rather than `layered`, which runs it inside itself).
            let ends_run = matches!(layers, Layers::Outer { .. });
            let mut current = match start {
                Start::Fresh(state) | Start::At(state) => state,
                Start::Rollback(pending) => {
                    let err = Box::pin(self.resume_rollback(&mut run, *pending)).await;
                    return self.end_run(ends_run, Err(err));
                }
            };
            let labelled =
                self.observers.is_some() || self.checkpoint_store.is_some() || self.has_run_data();
            #[cfg(feature = "tracing")]
            tracing::info!(initial_state = ?current, "Starting workflow execution");
            // Every failure leaves the loop with its error, and the one `fail` below rolls
            // back and reports it: one suspension point instead of one per failure site.
            let failure = loop {
                #[cfg(feature = "tracing")]
                tracing::info!(current_state = ?current, "Executing state");
                let entry = self.states.entry(&current);
                // A cancel or a passed deadline stops the run at the boundary (but never
                // keeps it from entering an exit state: its work is done).
                if let Some(stop) = run.must_stop()
                    && !self.exit_states.contains(&current)
                {
                    break self.stopped(stop, &self.label_of(&current));
                }
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
                        self.report_clear_failure(&run, &e);
                    }
                    return self.end_run(ends_run, Ok(current));
                }
                let Some((_, handler, label)) = entry else {
                    break CanoError::workflow(format!(
                        "No task registered for state: {current:?}"
                    ));
                };
                let bare = self.observers.is_none()
                    && run.interrupt().is_none()
                    && !crate::instrument::enabled();
                let outcome = match handler.plain_task().filter(|_| bare) {
                    // The common case, inline: the first attempt runs without the retry
                    // machinery (or a dispatch future) around it; the retry loop, boxed,
                    // starts only if that attempt fails.
                    Some((task, _)) => {
                        let attempt = attempt::bare(task.run(&self.resources)).await;
                        // Moved whole into the boxed retry: matched apart around the
                        // `await`, it would stay in the run's future beside it.
                        if matches!(attempt, Ok(Err(_))) {
                            Box::pin(handler.retry_plain(&self.resources, attempt)).await
                        } else {
                            first_outcome(attempt)
                        }
                    }
                    // Boxed: the other kinds' futures are large, and only they pay for it.
                    None => self.dispatch(handler, &mut run, label).await,
                };
                // A resume cursor belongs to the resume point only.
                run.clear_resume_point();
                match outcome {
                    Ok(next) => current = next,
                    Err(e) => break e,
                }
            };
            let err = Box::pin(self.fail(&mut run, failure)).await;
            self.end_run(ends_run, Err(err))
        }
    }

    /// A run with a per-run writer, a resource lifecycle or a global timeout: take the
    /// run's writer from a `RunWriters` store, set resources up (if `lifecycle`), run the
    /// state machine ([`Workflow::run_loop`] without layers) under the timeout, tear
    /// resources down. Teardown runs whether the state machine succeeded, failed or timed
    /// out; a failed setup (or writer) ends the run before it.
    ///
    /// Boxed (and type-erased, which lets `run_loop` call it): runs without these layers,
    /// the common case, do not carry the timer, the writer or the lifecycle futures.
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
            let meter = crate::instrument::run_started();
            let result = self.layers(run, start, lifecycle).await;
            if let Some(meter) = meter {
                meter.finish(&result);
            }
            result
        })
    }

    /// The body of [`layered`](Self::layered), inside the run's metrics.
    async fn layers(
        &self,
        mut run: Run,
        start: Start<TState>,
        lifecycle: bool,
    ) -> Result<TState, CanoError> {
        if let Some(limit) = self.run_deadline() {
            let token = run.interrupt().and_then(|i| i.token.clone());
            run.set_interrupt(Interrupt::new(token.unwrap_or_default(), Some(limit)));
        }
        // A token cancelled before the run starts: nothing runs, unless the run was asked
        // to drain what it owes (`resume_from_cancelling`) and owes compensations (saga
        // steps completed before the resume point, or a rollback to finish): the loop
        // then stops at its first boundary and drains them, as for a cancel during the
        // run.
        let drains = run.compensates_if_cancelled()
            && (!run.compensations().is_empty() || matches!(start, Start::Rollback(_)));
        if !drains && let Some(stop) = run.must_stop() {
            let label = match &start {
                Start::Fresh(state) | Start::At(state) => self.label_of(state),
                Start::Rollback(_) => Cow::Borrowed("(rollback)"),
            };
            return self.end_run(true, Err(self.stopped(stop, &label)));
        }
        let ending = match (&self.run_writers, run.workflow_id.clone()) {
            (Some(writers), Some(id)) => {
                let ending = Arc::new(Ending {
                    writer: writers.writer(&id).await?,
                    // A resumed run continues its own log; a fresh one owns it once it
                    // wrote to it (a fresh run refused over another run's log must not
                    // mark that run).
                    wrote: AtomicBool::new(run.sequence > 0),
                    cleared: AtomicBool::new(false),
                });
                run.set_writer(Box::new(SharedWriter(Arc::clone(&ending))));
                Some((id, ending))
            }
            _ => None,
        };
        if lifecycle {
            self.setup_resources().await?;
        }
        // Tasks reach the run's data through a task-local around the state machine.
        let data = match run.data() {
            Some(data) => Some(Arc::clone(data)),
            None if self.has_run_data() => {
                let data = RunScope::new(run.workflow_id.clone(), Default::default(), 0);
                run.set_data(Arc::clone(&data));
                Some(data)
            }
            None => None,
        };
        let machine = self.run_loop(run, start, Layers::Inner);
        let machine = async move {
            match data {
                Some(data) => data.enter(machine).await,
                None => machine.await,
            }
        };
        // 0.12.0's hard timeout, when no total timeout turns it into a graceful one.
        let result = match self.timeout.filter(|_| self.total_timeout.is_none()) {
            Some(limit) => tokio::time::timeout(limit, machine)
                .await
                .unwrap_or_else(|_| Err(CanoError::workflow("Workflow timeout exceeded"))),
            None => machine.await,
        };
        if lifecycle {
            self.teardown_resources().await;
        }
        if let (Some((id, ending)), Err(e)) = (&ending, &result) {
            ending.finished_with_error(id, e).await;
        }
        self.end_run(true, result)
    }

    /// Whether runs carry run data (`with_run_data`): a checkpoint store records it;
    /// without one it is kept in memory. Runs of other workflows pay nothing for it.
    pub(crate) fn has_run_data(&self) -> bool {
        self.run_data
    }

    /// The `Debug` text of `state` (from the state tables when it is registered).
    pub(crate) fn label_of<'a>(&'a self, state: &TState) -> Cow<'a, str> {
        match self
            .states
            .label(state)
            .or_else(|| self.exit_states.label(state))
        {
            Some(label) => Cow::Borrowed(label),
            None => Cow::Owned(format!("{state:?}")),
        }
    }

    /// The error of a run stopped in `state` by a cancel or its deadline, reported to
    /// observers (`on_cancelled` / `on_workflow_timeout`) and `tracing` first.
    pub(crate) fn stopped(&self, stop: Stop, state: &str) -> CanoError {
        match stop {
            Stop::Cancelled => {
                #[cfg(feature = "tracing")]
                tracing::warn!(state, "workflow run cancelled");
                self.notify(|o| o.on_cancelled(state));
                CanoError::cancelled_in(state)
            }
            Stop::TimedOut { elapsed, limit } => {
                #[cfg(feature = "tracing")]
                tracing::warn!(state, elapsed = ?elapsed, limit = ?limit, "workflow total timeout exceeded");
                self.notify(|o| o.on_workflow_timeout(elapsed, limit));
                CanoError::workflow_timeout_in(state, elapsed, limit)
            }
        }
    }

    /// Whether a fresh run started in `initial` records that state's entry (and awaits
    /// the append) before any of its tasks runs: a checkpoint store is set and the
    /// state's handler is checkpointed (or it has none, or it is an exit state, where
    /// no task runs at all). The cluster's worker lets such a run record its first
    /// entry before it holds a slot.
    #[cfg(feature = "postgres")]
    pub(crate) fn first_entry_precedes_work(&self, initial: &TState) -> bool {
        self.checkpoint_store.is_some()
            && self
                .states
                .entry(initial)
                .is_none_or(|(_, handler, _)| handler.is_checkpointed())
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
        let reentry = run.take_reentry();
        let store = match &self.checkpoint_store {
            Some(store) if handler.is_none_or(|h| h.is_checkpointed()) => store,
            _ => {
                // In memory, every state entered is a visit.
                if self.checkpoint_store.is_none()
                    && let Some(data) = run.data()
                {
                    data.begin_visit();
                }
                return Ok(None);
            }
        };
        if run.workflow_id.is_none() {
            return Err(CanoError::checkpoint_store(MISSING_ID));
        }
        let sequence = run.claim_sequence()?;
        let task_id = handler
            .and_then(|h| h.checkpoint_task_id())
            .unwrap_or(Cow::Borrowed(""))
            .into_owned();
        let state = text.into_owned();
        // A stepped (or stream) state resumed mid-way records its re-entry as a cursor row
        // carrying the cursor it continues from: the log's last row then always says where
        // the visit stands, even if the process dies again before the next step.
        // A timer state resumed while waiting likewise records its re-entry as a timer
        // row with the deadline it still waits for.
        // Signal states too: the re-entry repeats the wait, or the signal consumed.
        let row = match (run.resume_cursor(), run.resume_wait(), handler) {
            (Some(cursor), _, Some(h)) if h.resumes_at_cursor() => {
                log::cursor(sequence, state, task_id, cursor.clone())
            }
            (_, Some(ResumeWait::Timer(deadline_ms)), Some(h)) if h.is_timer() => {
                log::timer(sequence, state, task_id, *deadline_ms)
            }
            (
                _,
                Some(ResumeWait::Signal {
                    signal,
                    deadline_ms,
                }),
                Some(h),
            ) if h.is_signal() => log::signal_wait(sequence, state, task_id, signal, *deadline_ms),
            (_, Some(ResumeWait::Received(signal)), Some(h)) if h.is_signal() => {
                log::signal_received(sequence, state, task_id, signal)?
            }
            _ => {
                // A new visit records the run data written since the last entry row.
                let writes = match (reentry, run.data()) {
                    (false, Some(data)) => data.begin_visit(),
                    _ => DataWrites::default(),
                };
                let mark = log::EntryMark {
                    resumed: reentry,
                    supersedes: run.take_supersedes(),
                    // A fresh run's first row records the version it is started under.
                    version: (sequence == 0 && self.version != 0).then_some(self.version),
                };
                if !mark.is_plain() || !writes.is_empty() {
                    log::entry_with(sequence, state, task_id, mark, writes)?
                } else {
                    // The common case: a plain entry row.
                    log::plain_entry(sequence, state, task_id)
                }
            }
        };
        let run: &'r Run = run;
        if entry.is_none() && self.exit_states.contains(current) {
            return Ok(Some(run.append_last(store.as_ref(), row)));
        }
        Ok(Some(run.append(store.as_ref(), row)))
    }

    /// Append the row `row_for(sequence)` to the run's log (which must have an id) at the
    /// run's next sequence; on success fire `on_checkpoint`. The sequence is claimed even
    /// if the append fails ([`Run::claim_sequence`]). Returns the store's error unchanged.
    pub(crate) async fn append_row(
        &self,
        store: &dyn CheckpointStore,
        run: &mut Run,
        row_for: impl FnOnce(u64) -> Result<CheckpointRow, CanoError>,
    ) -> Result<(), CanoError> {
        if run.workflow_id.is_none() {
            return Err(CanoError::checkpoint_store(MISSING_ID));
        }
        let sequence = run.claim_sequence()?;
        let row = row_for(sequence)?;
        run.append(store, row).await?;
        let id = run.workflow_id.as_deref().unwrap_or_default();
        self.notify(|o| o.on_checkpoint(id, sequence));
        Ok(())
    }

    /// Best-effort removal of the run's log after it succeeded or rolled back cleanly. A
    /// failure is reported, not returned.
    pub(crate) async fn clear_log(&self, run: &Run) {
        if let Some(clearing) = self.start_clear(run)
            && let Err(e) = clearing.await
        {
            self.report_clear_failure(run, &e);
        }
    }

    /// The store's `clear` for this run's log, not yet awaited (`None` without a store or
    /// an id). The run loop awaits it itself, so that no helper future adds its size to
    /// every run's future.
    fn start_clear<'a>(&'a self, run: &'a Run) -> Option<StoreCall<'a>> {
        run.clear(self.checkpoint_store.as_deref()?)
    }

    /// Remove the run's log (no-op without a store or an id).
    pub(crate) async fn try_clear_log(&self, run: &Run) -> Result<(), CanoError> {
        match self.start_clear(run) {
            Some(clearing) => clearing.await,
            None => Ok(()),
        }
    }

    /// The end of a run that `ends_run`: report its outcome (observers' `on_run_end`, and a
    /// failure at `tracing`'s ERROR level) and return it.
    fn end_run(
        &self,
        ends_run: bool,
        result: Result<TState, CanoError>,
    ) -> Result<TState, CanoError> {
        if ends_run {
            match &result {
                Ok(state) => self.notify(|o| {
                    let label = self.exit_states.label(state);
                    o.on_run_end(Ok(label.unwrap_or_default()));
                }),
                Err(e) => {
                    #[cfg(feature = "tracing")]
                    tracing::error!(error = %e, "workflow run failed");
                    self.notify(|o| o.on_run_end(Err(e)));
                }
            }
        }
        result
    }

    /// A log that could not be cleared after the run ended is reported (observers'
    /// `on_checkpoint_clear_failed`, `tracing` at WARN), not returned: the run's outcome
    /// stands. With neither observers nor `tracing`, it goes to stderr.
    fn report_clear_failure(&self, run: &Run, e: &CanoError) {
        let id = run.workflow_id.as_deref().unwrap_or_default();
        self.notify(|o| o.on_checkpoint_clear_failed(id, e));
        #[cfg(feature = "tracing")]
        tracing::warn!(workflow_id = id, error = %e, "could not clear the checkpoint log");
        #[cfg(not(feature = "tracing"))]
        if self.observers.is_none() {
            eprintln!("cano: could not clear the checkpoint log of {id:?}: {e}");
        }
    }

    /// Set every resource up ([`Resources::setup_all`](crate::Resources::setup_all)); the teardown errors after a failed
    /// setup are reported to this workflow's observers.
    pub(crate) async fn setup_resources(&self) -> Result<(), CanoError> {
        self.resources
            .setup_reporting(&|e| self.report_teardown_failure(e))
            .await
    }

    /// Tear every resource down, last first, reporting failures to this workflow's
    /// observers.
    pub(crate) async fn teardown_resources(&self) {
        let all = 0..self.resources.lifecycle_len();
        self.resources
            .teardown_range(all, &|e| self.report_teardown_failure(e))
            .await;
    }

    /// A resource teardown that failed: to observers (`on_teardown_failed`) and `tracing`;
    /// stderr only when neither hears of it.
    fn report_teardown_failure(&self, e: &CanoError) {
        self.notify(|o| o.on_teardown_failed(e));
        crate::resource::report_teardown_error(e, self.observers.is_some());
    }

    /// Whether the workflow has observers.
    #[cfg_attr(not(feature = "scheduler"), allow(dead_code))] // used by the scheduler
    pub(crate) fn is_observed(&self) -> bool {
        self.observers.is_some()
    }

    /// Call `f` on every observer.
    #[inline]
    pub(crate) fn notify(&self, f: impl Fn(&dyn WorkflowObserver)) {
        if let Some(observers) = &self.observers {
            crate::observer::each(observers, f);
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
        crate::observer::each(observers, |o| o.on_task_start(&name));
        TaskScope {
            config,
            observed: Some(Box::new(Observed { observers, name })),
        }
    }
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
