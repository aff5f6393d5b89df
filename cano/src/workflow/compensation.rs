//! Saga rollback: undoing completed compensatable steps when a run fails.
//!
//! Every error that ends a run goes through [`Workflow::fail`]. With completed saga steps
//! on the run's stack, it compensates them, most recent first. With a checkpoint store,
//! the rollback is recorded as it goes — a `RollbackStarted` row listing the steps to
//! undo, then a `Compensated` row after each step undone — so that if the process dies
//! mid-rollback, [`Workflow::resume_from`] finishes the rollback instead of running the
//! failed state again, and never compensates a step twice. If the `RollbackStarted` row
//! cannot be written, no `Compensated` rows are (they would refer to it); should the
//! rollback then end with a failed compensation, it is recorded after the fact, listing
//! only the steps still to undo.

use super::Workflow;
use super::run::Run;
use crate::error::CanoError;
use crate::recovery::log::{self, CompletedStep};
use crate::util::{CatchUnwind, panic_message};
use std::fmt;
use std::hash::Hash;
use std::time::Duration;

/// A rollback found in a checkpoint log: what caused it and the steps still to undo,
/// each with its index in the rollback record.
pub(crate) struct PendingRollback {
    pub(crate) original: CanoError,
    pub(crate) remaining: Vec<(usize, CompletedStep)>,
}

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// The error a run ends with, after rolling back completed saga steps.
    ///
    /// * No completed steps: `err` unchanged; the checkpoint log is kept for `resume_from`.
    /// * Every compensation succeeded: `err` unchanged; the log is cleared.
    /// * Otherwise: [`CanoError::CompensationFailed`] with `err` first, then each
    ///   compensation error (most recent step first); the log is kept.
    ///
    /// Each `compensate` runs once (no retries), bounded by its task's
    /// `attempt_timeout`; a panic is caught and reported.
    pub(crate) async fn fail(&self, run: &mut Run, err: CanoError) -> CanoError {
        if run.compensations().is_empty() {
            return err;
        }
        // Boxed: rollbacks are rare and their future is large.
        Box::pin(self.roll_back(run, err)).await
    }

    async fn roll_back(&self, run: &mut Run, err: CanoError) -> CanoError {
        let steps = run.take_compensations();
        #[cfg(feature = "tracing")]
        tracing::warn!(steps = steps.len(), error = %err, "run failed; rolling back completed saga steps");
        self.notify(|o| o.on_rollback_started(steps.len(), &err));
        let mut bookkeeping = Vec::new();
        // Record progress only if the start is recorded: `Compensated` rows refer to it.
        let recording = match self.record_rollback_start(run, &err, &steps).await {
            Ok(()) => true,
            Err(e) => {
                bookkeeping.push(e);
                false
            }
        };
        let remaining = steps.into_iter().enumerate().collect();
        self.undo(run, remaining, err, recording, bookkeeping).await
    }

    /// Finish a rollback found in the log by `resume_from`.
    pub(crate) async fn resume_rollback(
        &self,
        run: &mut Run,
        pending: PendingRollback,
    ) -> CanoError {
        #[cfg(feature = "tracing")]
        tracing::warn!(steps = pending.remaining.len(), error = %pending.original, "finishing the rollback recorded in the checkpoint log");
        self.notify(|o| o.on_rollback_started(pending.remaining.len(), &pending.original));
        self.undo(run, pending.remaining, pending.original, true, Vec::new())
            .await
    }

    /// Compensate `remaining` (index in the rollback record, step), last first, recording
    /// each success when `recording`; then settle the log:
    ///
    /// * every compensation succeeded: clear the log and return `original` — even if some
    ///   bookkeeping row could not be written, since a cleared log needs none; only if the
    ///   log cannot be cleared either are those errors reported (`CompensationFailed`);
    /// * a compensation failed: keep the log (`resume_from` continues the rollback) and
    ///   return `CompensationFailed` with `original` first.
    async fn undo(
        &self,
        run: &mut Run,
        mut remaining: Vec<(usize, CompletedStep)>,
        original: CanoError,
        recording: bool,
        mut bookkeeping: Vec<CanoError>,
    ) -> CanoError {
        let mut errors = vec![original];
        // Steps whose compensation failed, newest first (kept only when not recording).
        let mut failed = Vec::new();
        // A workflow with a total timeout bounds its rollbacks too.
        let budget = self.compensation_budget().map(|budget| {
            let now = tokio::time::Instant::now();
            (
                now.checked_add(budget)
                    .unwrap_or(now + Duration::from_secs(86400 * 365)),
                budget,
            )
        });
        while let Some((index, step)) = remaining.pop() {
            let outcome = {
                let undo = self.compensate(&step.task_id, &step.output);
                match budget {
                    None => undo.await,
                    Some((until, budget)) => {
                        let out_of_budget = |what: &str| {
                            Err(CanoError::timeout(format!(
                                "compensate for {:?} {what}: the rollback's budget of {budget:?} ran out \
                             (the log keeps the rollback; resume_from finishes it)",
                                step.task_id
                            )))
                        };
                        if tokio::time::Instant::now() >= until {
                            out_of_budget("not run")
                        } else {
                            match tokio::time::timeout_at(until, undo).await {
                                Ok(outcome) => outcome,
                                Err(_) => out_of_budget("dropped"),
                            }
                        }
                    }
                }
            };
            crate::instrument::compensation(outcome.is_ok());
            match &outcome {
                Ok(()) => {
                    #[cfg(feature = "tracing")]
                    tracing::info!(task_id = %step.task_id, "saga step compensated");
                    self.notify(|o| o.on_compensated(&step.task_id));
                }
                Err(e) => {
                    #[cfg(feature = "tracing")]
                    tracing::error!(task_id = %step.task_id, error = %e, "compensation failed");
                    self.notify(|o| o.on_compensation_failed(&step.task_id, e));
                }
            }
            match outcome {
                Ok(()) if recording => {
                    if let Err(e) = self.record_compensated(run, index).await {
                        bookkeeping.push(e);
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    errors.push(e);
                    if !recording {
                        failed.push(step);
                    }
                }
            }
        }
        crate::instrument::compensation_drain(errors.len() <= 1);
        if errors.len() > 1 {
            if !recording {
                // The rollback's start could not be recorded, and the log is kept: record
                // it now, listing only the steps still to undo, so that `resume_from`
                // finishes the rollback instead of running the saga forward again.
                failed.reverse();
                if let Err(e) = self.record_rollback_start(run, &errors[0], &failed).await {
                    bookkeeping.push(e);
                }
            }
            errors.extend(bookkeeping);
            return CanoError::compensation_failed(errors);
        }
        if bookkeeping.is_empty() {
            self.clear_log(run).await;
            return errors.remove(0);
        }
        match self.try_clear_log(run).await {
            Ok(()) => errors.remove(0),
            Err(e) => {
                errors.extend(bookkeeping);
                errors.push(CanoError::checkpoint_store(format!(
                    "clear checkpoint log after a rollback: {e}"
                )));
                CanoError::compensation_failed(errors)
            }
        }
    }

    async fn record_rollback_start(
        &self,
        run: &mut Run,
        original: &CanoError,
        steps: &[CompletedStep],
    ) -> Result<(), CanoError> {
        let (Some(store), true) = (&self.checkpoint_store, run.workflow_id.is_some()) else {
            return Ok(());
        };
        self.append_row(store.as_ref(), run, |sequence| {
            log::rollback_started(sequence, original, steps)
        })
        .await
        .map_err(|e| CanoError::checkpoint_store(format!("append rollback checkpoint: {e}")))
    }

    async fn record_compensated(&self, run: &mut Run, index: usize) -> Result<(), CanoError> {
        let (Some(store), true) = (&self.checkpoint_store, run.workflow_id.is_some()) else {
            return Ok(());
        };
        self.append_row(store.as_ref(), run, |sequence| {
            Ok(log::compensated(sequence, index))
        })
        .await
        .map_err(|e| CanoError::checkpoint_store(format!("append compensated checkpoint: {e}")))
    }

    /// Undo one saga step.
    async fn compensate(&self, task_id: &str, blob: &[u8]) -> Result<(), CanoError> {
        let Some(compensator) = self.compensators.get(task_id) else {
            return Err(CanoError::workflow(format!(
                "no compensator registered for task {task_id:?} \u{2014} cannot roll it back"
            )));
        };
        let limit = compensator.config().attempt_timeout;
        let undo = CatchUnwind::new(compensator.compensate(&self.resources, blob));
        let outcome = match limit {
            Some(d) => match tokio::time::timeout(d, undo).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(CanoError::timeout(format!(
                        "compensate for {task_id:?} exceeded attempt_timeout {d:?}"
                    )));
                }
            },
            None => undo.await,
        };
        match outcome {
            Ok(result) => result,
            Err(payload) => Err(CanoError::task_execution(format!(
                "compensate for {task_id:?} panicked: {}",
                panic_message(&*payload)
            ))),
        }
    }
}
