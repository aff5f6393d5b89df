//! Running a registered state's handler: the part of the run loop that differs per kind
//! of state. Every kind's work goes through the one attempt path (`task::attempt`), and
//! every row it writes is built by the log format module (`recovery::log`).

use super::Workflow;
use super::handler::{Handler, single_next};
use super::run::Run;
use crate::error::CanoError;
use crate::recovery::log::{self, CompletedStep};
use crate::saga::ErasedCompensatable;
use crate::task::attempt::retry_all;
use crate::task::stepped::{ErasedStep, ErasedSteppedTask};
use crate::task::timer::{self, TimerTask};
use crate::task::{TaskConfig, TaskResult};
use std::fmt;
use std::hash::Hash;

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
    pub(crate) async fn dispatch(
        &self,
        handler: &Handler<TState, TResourceKey>,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let interrupt = match handler {
            Handler::Compensatable { .. } => None,
            _ => run.interrupt().cloned(),
        };
        match interrupt {
            Some(interrupt) => {
                let work = Box::pin(self.run_handler(handler, run, label));
                match interrupt.race(work).await {
                    Ok(outcome) => outcome,
                    Err(stop) => Err(self.stopped(stop, label)),
                }
            }
            None => self.run_handler(handler, run, label).await,
        }
    }

    /// Run `handler`'s work and return the next state.
    async fn run_handler(
        &self,
        handler: &Handler<TState, TResourceKey>,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let resources = &*self.resources;
        if let Handler::Timer { task, config } = handler
            && let Some(timer) = task.__timer()
        {
            return Box::pin(self.run_timer(timer, config, run, label)).await;
        }
        match handler {
            // (A `Timer` whose task says it is no timer after all runs as a task.)
            Handler::Task { task, config, .. } | Handler::Timer { task, config } => {
                let scope = self.begin_task(config, || task.name());
                let outcome = scope
                    .attempts(|| task.run(resources), |e, n| task.is_retryable(e, n))
                    .await
                    .and_then(single_next);
                scope.end(&outcome);
                outcome
            }
            // The less common kinds run boxed, so that their larger futures do not inflate
            // the run loop's future (and so every spawned run) for all workflows.
            Handler::Split {
                tasks,
                configs,
                join,
            } => Box::pin(self.run_split(tasks, configs, join)).await,
            Handler::Stepped { task, config } => {
                Box::pin(self.run_stepped(task.as_ref(), config, run, label)).await
            }
            Handler::Compensatable { task, config } => {
                Box::pin(self.run_compensatable(task.as_ref(), config, run, label)).await
            }
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
    async fn run_timer(
        &self,
        timer: &(dyn TimerTask<TState, TResourceKey> + Send + Sync + '_),
        config: &TaskConfig,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let resources = &*self.resources;
        let scope = self.begin_task(config, || timer.name());
        let outcome = async {
            let deadline = match run.take_resume_timer() {
                // The re-entry row already records it.
                Some(deadline) => deadline,
                None => {
                    let wait = scope.attempts(|| timer.wait(resources), retry_all).await?;
                    let deadline = timer::deadline_ms(&timer.name(), wait, timer::wall_now_ms())?;
                    if let (Some(store), true) = (&self.checkpoint_store, run.workflow_id.is_some())
                    {
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
            timer::sleep_until_ms(deadline).await;
            scope
                .attempts(|| timer.after_wait(resources), retry_all)
                .await
                .and_then(single_next)
        }
        .await;
        scope.end(&outcome);
        outcome
    }

    /// The engine-driven step loop of a `register_stepped` state.
    ///
    /// Each step runs under the task's retry policy (a retry reuses the cursor). With a
    /// checkpoint store, each new cursor is appended before the next step runs. A resumed
    /// run starts from the cursor recorded at the resume point.
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
                .attempts(|| task.step(resources, cursor.clone()), retry_all)
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
