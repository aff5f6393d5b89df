//! Running a registered state's handler: the part of the run loop that differs per kind
//! of state. Every kind's work goes through the one attempt path (`task::attempt`), and
//! every row it writes is built by the log format module (`recovery::log`).

use super::Workflow;
use super::handler::{Handler, single_next};
use super::run::{MISSING_ID, Run, Stop};
use crate::error::CanoError;
use crate::recovery::log::{self, CompletedStep, ResumeWait};
use crate::saga::ErasedCompensatable;
use crate::signal::{ErasedSignalTask, Signal, SignalStore};
use crate::task::attempt::TaskScope;
use crate::task::stepped::{ErasedStep, ErasedSteppedTask};
use crate::task::stream::{ErasedStreamTask, StreamHost};
use crate::task::timer::{self, TimerOutcome, TimerTask};
use crate::task::{TaskConfig, TaskResult};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A handler's work, boxed.
pub(crate) type HandlerFuture<'a, TState> =
    Pin<Box<dyn Future<Output = Result<TState, CanoError>> + Send + 'a>>;

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Run `handler`'s work and return the next state. `label` is the state's `Debug`
    /// text (from the state table).
    ///
    /// In a run that can be interrupted (a cancellation token, a total timeout), the work
    /// is dropped when the run must stop — except a compensatable task's, which is never
    /// interrupted mid-run (the run loop stops after it, at the next state boundary).
    ///
    /// The work is one boxed future (two when it can be interrupted), chosen here: a run
    /// parked in a timer or a signal state holds that box and nothing else.
    pub(crate) fn dispatch<'a>(
        &'a self,
        handler: &'a Handler<TState, TResourceKey>,
        run: &'a mut Run,
        label: &'a str,
    ) -> HandlerFuture<'a, TState> {
        let interrupt = match handler {
            // A saga step is never interrupted; a stream drains its window when stopped.
            Handler::Compensatable { .. } | Handler::Stream { .. } => None,
            _ => run.interrupt().cloned(),
        };
        let work = match interrupt {
            Some(interrupt) => Box::pin(async move {
                match interrupt.race(self.run_handler(handler, run, label)).await {
                    Ok(outcome) => outcome,
                    Err(stop) => Err(self.stopped(stop, label)),
                }
            }),
            None => self.run_handler(handler, run, label),
        };
        if !crate::instrument::enabled() {
            return work;
        }
        Box::pin(async move {
            let started = std::time::Instant::now();
            let outcome = work.await;
            crate::instrument::state_ran(label, handler.kind(), started.elapsed());
            outcome
        })
    }

    /// `handler`'s work, boxed: the future of its kind, sized for it alone.
    fn run_handler<'a>(
        &'a self,
        handler: &'a Handler<TState, TResourceKey>,
        run: &'a mut Run,
        label: &'a str,
    ) -> HandlerFuture<'a, TState> {
        match handler {
            Handler::Timer { task, config } => match task.__timer() {
                Some(timer) => self.run_timer(timer, config, run, label),
                // A `Timer` whose task says it is no timer after all runs as a task.
                None => self.run_task(task, config),
            },
            Handler::Task { task, config, .. } => self.run_task(task, config),
            Handler::Split {
                tasks,
                configs,
                join,
            } => Box::pin(self.run_split(tasks, configs, join, run, label)),
            Handler::Stepped { task, config } => {
                Box::pin(self.run_stepped(task.as_ref(), config, run, label))
            }
            Handler::Compensatable { task, config } => {
                Box::pin(self.run_compensatable(task.as_ref(), config, run, label))
            }
            Handler::Signal { task, config } => self.run_signal(task.as_ref(), config, run, label),
            Handler::Stream { task } => Box::pin(self.run_stream(task.as_ref(), run, label)),
        }
    }

    /// A plain task under its retry policy, observed.
    fn run_task<'a>(
        &'a self,
        task: &'a crate::task::TaskObject<TState, TResourceKey>,
        config: &'a TaskConfig,
    ) -> HandlerFuture<'a, TState> {
        let resources = &*self.resources;
        Box::pin(async move {
            let scope = self.begin_task(config, || task.name());
            let outcome = scope
                .attempts(|| task.run(resources), |e, n| task.is_retryable(e, n))
                .await
                .and_then(single_next);
            scope.end(&outcome);
            outcome
        })
    }

    /// A signal state: wait for the signal (recording the wait, with its deadline, unless
    /// the resume point did), consume it (recording it), then hand its payload to the
    /// task. A resume point that had consumed a signal hands that one to the task again.
    /// The timeout moves to the task's timeout state.
    ///
    /// A parked run keeps this future for as long as it waits, so it is kept small: an
    /// `async move` block (the arguments are kept once, not also copied into an `async
    /// fn`'s locals), one level (nested futures would each keep their own copies), and
    /// what runs only before or after the wait is boxed and returns little.
    fn run_signal<'a>(
        &'a self,
        task: &'a dyn ErasedSignalTask<TState, TResourceKey>,
        config: &'a TaskConfig,
        run: &'a mut Run,
        label: &'a str,
    ) -> HandlerFuture<'a, TState> {
        Box::pin(async move {
            let scope = self.begin_task(config, || task.name());
            // Every way out goes through `scope.ended` (no outcome is kept across the
            // wait), and the signal's name is asked for where it is needed.
            let deadline = match Box::pin(self.signal_wait_starts(task, &scope, run, label)).await {
                Ok(Ok(deadline)) => deadline,
                Ok(Err(outcome)) => return scope.ended(outcome),
                Err(e) => return scope.ended(Err(e)),
            };
            let Some(signals) = self.signals.as_deref() else {
                return scope.ended(Err(CanoError::configuration(
                    "a signal state needs with_signal_store",
                )));
            };
            let Some(waiting_as) = run.workflow_id.clone().map(|id| ForgetWaker(signals, id))
            else {
                return scope.ended(Err(CanoError::checkpoint_store(MISSING_ID)));
            };
            // `waiting_as` makes the store forget the waker however the wait ends (a
            // signal, the deadline, an error, or the run dropped: cancelled, timed out).
            // Polled once before the store is read, so a signal sent meanwhile wakes it; a
            // store that cannot wake its waiters is asked every second.
            let sent = |cx: &mut Context<'_>| signals.poll_signal_sent(&waiting_as.1, cx);
            let wakes = std::future::poll_fn(|cx| Poll::Ready(sent(cx).is_some())).await;
            let mut waiting = false;
            loop {
                let took = Box::pin(self.take_and_handle(task, &scope, run, label));
                if let Some(outcome) = took.await {
                    return scope.ended(outcome);
                }
                if !waiting {
                    waiting = true;
                    self.notify(|o| o.on_wait(&waiting_as.1, deadline, Some(&task.signal())));
                }
                // `Some(None)`: the deadline has passed.
                let left = deadline.map(timer::left_until_ms);
                let woken = match left {
                    Some(None) => false,
                    left => {
                        // The sleeps are boxed only when there are any: a run waiting
                        // without a timeout for a store that wakes it keeps none.
                        let mut expiry = left
                            .flatten()
                            .map(|left| Box::pin(tokio::time::sleep(left)));
                        let mut ask_again = (!wakes).then(|| {
                            Box::pin(tokio::time::sleep(std::time::Duration::from_secs(1)))
                        });
                        std::future::poll_fn(|cx| {
                            if let Some(Poll::Ready(())) = sent(cx) {
                                return Poll::Ready(true);
                            }
                            if let Some(sleep) = &mut ask_again
                                && sleep.as_mut().poll(cx).is_ready()
                            {
                                return Poll::Ready(true);
                            }
                            if let Some(sleep) = &mut expiry
                                && sleep.as_mut().poll(cx).is_ready()
                            {
                                return Poll::Ready(false);
                            }
                            Poll::Pending
                        })
                        .await
                    }
                };
                if !woken {
                    // A signal that came with the deadline still counts.
                    let took = Box::pin(self.take_and_handle(task, &scope, run, label));
                    return scope.ended(match took.await {
                        Some(outcome) => outcome,
                        None => task.timeout().map(|(_, state)| state).ok_or_else(|| {
                            CanoError::workflow(format!(
                                "signal {:?}: the wait recorded in the log timed out, \
                                 but the task has no timeout state any more",
                                task.signal()
                            ))
                        }),
                    });
                }
            }
        })
    }

    /// The start of a signal state: the deadline of the wait the resume point recorded,
    /// or of the one it records now (`Ok(deadline)`); or, when the resume point had
    /// consumed the signal already, the task's outcome for it (`Err(outcome)`).
    async fn signal_wait_starts(
        &self,
        task: &dyn ErasedSignalTask<TState, TResourceKey>,
        scope: &TaskScope<'_>,
        run: &mut Run,
        label: &str,
    ) -> Result<Result<Option<u64>, Result<TState, CanoError>>, CanoError> {
        match run.take_resume_wait() {
            // The re-entry row recorded it again.
            Some(ResumeWait::Received(signal)) => {
                Ok(Err(self.signal_received(task, scope, signal).await))
            }
            Some(ResumeWait::Signal { deadline_ms, .. }) => Ok(Ok(deadline_ms)),
            _ => (self
                .start_signal_wait(task, &task.signal(), run, label)
                .await)
                .map(Ok),
        }
    }

    /// Consume the first pending signal for the task the run may consume and hand it to
    /// the task: its outcome, or `None` if there is none.
    async fn take_and_handle(
        &self,
        task: &dyn ErasedSignalTask<TState, TResourceKey>,
        scope: &TaskScope<'_>,
        run: &mut Run,
        label: &str,
    ) -> Option<Result<TState, CanoError>> {
        let signals = self.signals.as_deref()?;
        match self
            .take_signal(task, signals, &task.signal(), run, label)
            .await
        {
            Ok(Some(signal)) => Some(self.signal_received(task, scope, signal).await),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Hand a consumed `signal` to the task, under its retry policy.
    async fn signal_received(
        &self,
        task: &dyn ErasedSignalTask<TState, TResourceKey>,
        scope: &TaskScope<'_>,
        signal: Signal,
    ) -> Result<TState, CanoError> {
        let resources = &*self.resources;
        scope
            .attempts(
                || task.on_signal(resources, &signal.payload),
                |e, n| task.is_retryable(e, n),
            )
            .await
            .and_then(single_next)
    }

    /// Record that the state starts waiting for `name` (and until when): the wait's
    /// deadline, if the task has a timeout.
    async fn start_signal_wait(
        &self,
        task: &dyn ErasedSignalTask<TState, TResourceKey>,
        name: &str,
        run: &mut Run,
        label: &str,
    ) -> Result<Option<u64>, CanoError> {
        let deadline = match task.timeout() {
            Some((after, _)) => Some(timer::deadline_ms(
                &task.name(),
                TimerOutcome::Duration(after),
                timer::wall_now_ms(),
            )?),
            None => None,
        };
        if let Some(store) = &self.checkpoint_store {
            self.append_row(store.as_ref(), run, |sequence| {
                Ok(log::signal_wait(
                    sequence,
                    label,
                    task.name(),
                    name,
                    deadline,
                ))
            })
            .await
            .map_err(|e| {
                CanoError::checkpoint_store(format!("append signal wait checkpoint: {e}"))
            })?;
        }
        Ok(deadline)
    }

    /// The first pending signal named `name` that the run may consume, consumed: skips
    /// (and forgets) signals the run consumed before and payloads the task cannot read.
    async fn take_signal(
        &self,
        task: &dyn ErasedSignalTask<TState, TResourceKey>,
        signals: &dyn SignalStore,
        name: &str,
        run: &mut Run,
        label: &str,
    ) -> Result<Option<Signal>, CanoError> {
        let id = run.workflow_id.clone().unwrap_or_default();
        let pending = signals
            .pending_signals(&id, name)
            .await
            .map_err(|e| CanoError::checkpoint_store(format!("read pending signals: {e}")))?;
        for signal in pending {
            if run.consumed_signal(&signal.id) {
                self.forget_signal(signals, &id, &signal.id).await;
                continue;
            }
            if let Err(why) = task.check(&signal.payload) {
                let err = CanoError::workflow(format!(
                    "signal {:?} ({:?}) for run {id:?} rejected: {why}",
                    signal.name, signal.id
                ));
                #[cfg(feature = "tracing")]
                tracing::warn!(signal = %signal.name, id = %signal.id, error = %err, "signal rejected");
                self.notify(|o| o.on_signal_rejected(&signal.name, &signal.id, &err));
                self.forget_signal(signals, &id, &signal.id).await;
                continue;
            }
            if let Some(store) = &self.checkpoint_store {
                self.append_row(store.as_ref(), run, |sequence| {
                    log::signal_received(sequence, label, task.name(), &signal)
                })
                .await
                .map_err(|e| {
                    CanoError::checkpoint_store(format!("append signal checkpoint: {e}"))
                })?;
            }
            run.mark_consumed(signal.id.clone());
            #[cfg(feature = "tracing")]
            tracing::info!(signal = %signal.name, id = %signal.id, "signal received");
            self.notify(|o| o.on_signal_received(&signal.name, &signal.id));
            self.forget_signal(signals, &id, &signal.id).await;
            return Ok(Some(signal));
        }
        Ok(None)
    }

    /// Remove a consumed or rejected signal from the store. A failure leaves it there,
    /// harmlessly (the run never consumes an id twice), and is reported.
    async fn forget_signal(&self, signals: &dyn SignalStore, run_id: &str, signal_id: &str) {
        if let Err(e) = signals.remove_signal(run_id, signal_id).await {
            #[cfg(feature = "tracing")]
            tracing::warn!(signal_id, error = %e, "could not remove a consumed signal");
            #[cfg(not(feature = "tracing"))]
            let _ = e;
        }
    }

    /// A compensatable state: run forward, then record the output (checkpoint row and
    /// compensation stack) so a later failure can undo it.
    async fn run_compensatable(
        &self,
        task: &dyn ErasedCompensatable<TState, TResourceKey>,
        config: &TaskConfig,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let resources = &*self.resources;
        let scope = self.begin_task(config, || task.name());
        let outcome = scope
            .attempts(|| task.run(resources), |e, n| task.is_retryable(e, n))
            .await
            .and_then(|(result, blob)| match result {
            TaskResult::Single(next) => Ok((next, blob)),
            TaskResult::Split(_) => Err(CanoError::workflow(
                "Compensatable task returned a split result \u{2014} split states cannot be compensatable",
            )),
        });
        scope.end(&outcome);
        let (next, output) = outcome?;
        let task_id = task.name().into_owned();
        if let (Some(store), true) = (&self.checkpoint_store, run.workflow_id.is_some()) {
            let appended = self
                .append_row(store.as_ref(), run, |sequence| {
                    Ok(log::completion(
                        sequence,
                        label,
                        task_id.clone(),
                        output.clone(),
                    ))
                })
                .await;
            if let Err(e) = appended {
                // The step did happen: make sure the rollback undoes it.
                run.push_completed(CompletedStep { task_id, output });
                return Err(CanoError::checkpoint_store(format!(
                    "append compensation checkpoint: {e}"
                )));
            }
        }
        run.push_completed(CompletedStep { task_id, output });
        Ok(next)
    }

    /// A durable timer state: ask the timer how long to wait (unless the resume point
    /// recorded the deadline already), record the deadline, sleep until it, then ask the
    /// timer for the next state. `wait` and `after_wait` each run under the timer's
    /// config; the sleep is bounded only by the run's cancellation and total timeout.
    fn run_timer<'a>(
        &'a self,
        timer: &'a (dyn TimerTask<TState, TResourceKey> + Send + Sync + '_),
        config: &'a TaskConfig,
        run: &'a mut Run,
        label: &'a str,
    ) -> HandlerFuture<'a, TState> {
        // An `async move` block rather than an `async fn`: the arguments are kept once,
        // not also copied into the body's locals.
        Box::pin(async move {
            let scope = self.begin_task(config, || timer.name());
            // Only the scope, the arguments and the sleep live across the wait: what runs
            // before and after it is boxed, so a parked run keeps nothing of it.
            let deadline = match Box::pin(self.timer_deadline(timer, &scope, run, label)).await {
                Ok(deadline) => deadline,
                Err(e) => return scope.ended(Err(e)),
            };
            if let Some(left) = timer::left_until_ms(deadline) {
                tokio::time::sleep(left).await;
            }
            let resources = &*self.resources;
            let after = Box::pin(scope.attempts(
                || timer.after_wait(resources),
                |e, n| timer.is_retryable(e, n),
            ));
            scope.ended(after.await.and_then(single_next))
        })
    }

    /// When the timer state's wait ends: the deadline the resume point recorded, or the
    /// one the task asks for now, recorded in the log before the wait.
    async fn timer_deadline(
        &self,
        timer: &(dyn TimerTask<TState, TResourceKey> + Send + Sync + '_),
        scope: &TaskScope<'_>,
        run: &mut Run,
        label: &str,
    ) -> Result<u64, CanoError> {
        let deadline = match run.take_resume_wait() {
            // The re-entry row already records it.
            Some(ResumeWait::Timer(deadline)) => deadline,
            _ => {
                let resources = &*self.resources;
                let wait = scope
                    .attempts(|| timer.wait(resources), |e, n| timer.is_retryable(e, n))
                    .await?;
                let deadline = timer::deadline_ms(&timer.name(), wait, timer::wall_now_ms())?;
                if let (Some(store), true) = (&self.checkpoint_store, run.workflow_id.is_some()) {
                    self.append_row(store.as_ref(), run, |sequence| {
                        Ok(log::timer(sequence, label, timer.name(), deadline))
                    })
                    .await
                    .map_err(|e| {
                        CanoError::checkpoint_store(format!("append timer checkpoint: {e}"))
                    })?;
                }
                deadline
            }
        };
        if self.observers.is_some()
            && let Some(id) = run.workflow_id.as_deref()
            && deadline > timer::wall_now_ms()
        {
            self.notify(|o| o.on_wait(id, Some(deadline), None));
        }
        Ok(deadline)
    }

    /// The engine-driven step loop of a `register_stepped` state.
    ///
    /// Each step runs under the task's retry policy (a retry reuses the cursor). With a
    /// checkpoint store, each new cursor is appended before the next step runs. A resumed
    /// run starts from the cursor recorded at the resume point.
    /// A stream state: the stream loop (`task::stream`) from the resume cursor, its window
    /// cursors committed to the run's log; observed as one task.
    async fn run_stream(
        &self,
        task: &dyn ErasedStreamTask<TState, TResourceKey>,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let config = task.config();
        let scope = self.begin_task(&config, || task.name());
        let cursor = run.take_resume_cursor();
        let mut host = StreamCommits {
            workflow: self,
            run,
            label,
            task_id: task.name(),
        };
        let outcome = task
            .run(&self.resources, cursor, &mut host)
            .await
            .and_then(single_next);
        scope.end(&outcome);
        outcome
    }

    async fn run_stepped(
        &self,
        task: &dyn ErasedSteppedTask<TState, TResourceKey>,
        config: &TaskConfig,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let resources = &*self.resources;
        let scope = self.begin_task(config, || task.name());
        let mut cursor = run.take_resume_cursor();
        let outcome = loop {
            let step = scope
                .attempts(
                    || task.step(resources, cursor.clone()),
                    |e, n| task.is_retryable(e, n),
                )
                .await;
            match step {
                Err(e) => break Err(e),
                Ok(ErasedStep::Done(TaskResult::Single(next))) => break Ok(next),
                Ok(ErasedStep::Done(TaskResult::Split(_))) => {
                    break Err(CanoError::workflow(
                        "Stepped task returned split result \u{2014} split is not supported for Stepped states",
                    ));
                }
                Ok(ErasedStep::More(bytes)) => {
                    if let (Some(store), true) = (&self.checkpoint_store, run.workflow_id.is_some())
                    {
                        let appended = self
                            .append_row(store.as_ref(), run, |sequence| {
                                Ok(log::cursor(sequence, label, task.name(), bytes.clone()))
                            })
                            .await;
                        if let Err(e) = appended {
                            break Err(CanoError::checkpoint_store(format!(
                                "append step cursor checkpoint: {e}"
                            )));
                        }
                    }
                    cursor = Some(bytes);
                }
            }
        };
        scope.end(&outcome);
        outcome
    }
}

/// Where an engine-driven stream commits its window cursors (the run's log, through the
/// one append path) and how it learns that the run must stop.
struct StreamCommits<'a, TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    workflow: &'a Workflow<TState, TResourceKey>,
    run: &'a mut Run,
    label: &'a str,
    task_id: std::borrow::Cow<'static, str>,
}

impl<TState, TResourceKey> StreamHost for StreamCommits<'_, TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn commit(
        &mut self,
        cursor: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + '_>> {
        Box::pin(async move {
            let (Some(store), true) = (
                &self.workflow.checkpoint_store,
                self.run.workflow_id.is_some(),
            ) else {
                return Ok(());
            };
            let (label, task_id) = (self.label, &self.task_id);
            self.workflow
                .append_row(store.as_ref(), self.run, |sequence| {
                    Ok(log::cursor(sequence, label, task_id.clone(), cursor))
                })
                .await
                .map_err(|e| {
                    CanoError::checkpoint_store(format!("append stream cursor checkpoint: {e}"))
                })
        })
    }

    fn stop_signal(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        match self.run.interrupt().cloned() {
            Some(interrupt) => Box::pin(async move {
                interrupt.stopped().await;
            }),
            None => Box::pin(std::future::pending()),
        }
    }

    fn stopped_error(&mut self) -> CanoError {
        let stop = self
            .run
            .interrupt()
            .and_then(|i| i.check())
            .unwrap_or(Stop::Cancelled);
        self.workflow.stopped(stop, self.label)
    }
}

/// Tells a signal store, when dropped, that the run stopped waiting.
struct ForgetWaker<'a>(&'a dyn SignalStore, std::sync::Arc<str>);

impl Drop for ForgetWaker<'_> {
    fn drop(&mut self) {
        self.0.forget_signal_waker(&self.1);
    }
}
