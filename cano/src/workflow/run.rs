//! [`Run`]: the bookkeeping of one run of a workflow.
//!
//! # What may live in a run's future
//!
//! Every spawned run holds the run loop's future, so its size is memory per concurrent
//! run; `a_run_future_stays_small` (in `execution.rs`) pins it so that
//! `tokio::spawn(async move { wf.orchestrate(s).await })` fits a 256-byte tokio task. The
//! rule that keeps it there:
//!
//! * the future holds what **every** run needs, by value: the run's id, its next
//!   sequence number, the current state, and one reference into the state table;
//! * what only **some** runs need (saga steps, a resume point's cursor or superseded
//!   completion) lives in [`RunExtra`], behind one box that plain runs never allocate;
//! * work that only some states do (retries after a failed first attempt, the other
//!   handler kinds, rollbacks, the resource lifecycle and global timeout) runs in boxed
//!   futures of its own, awaited from the loop, so their size is paid only when used;
//! * across an `await`, the loop keeps no value it has already matched apart: what it
//!   awaits is either moved whole into a boxed future or awaited through `&mut`.

use crate::cancel::CancellationToken;
use crate::error::CanoError;
use crate::recovery::log::{CompletedStep, ResumeWait};
use crate::recovery::{CheckpointRow, CheckpointStore, RunWriter, StoreFuture};
use crate::run_data::RunScope;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const MISSING_ID: &str = "checkpointing requires a workflow id (call with_workflow_id)";

/// Per-run bookkeeping. See the [module docs](self) for what belongs here.
pub(crate) struct Run {
    /// The checkpoint log's id (`None` when the workflow has no id and this is not a resume).
    pub(crate) workflow_id: Option<Arc<str>>,
    /// Sequence number of the next checkpoint row.
    pub(crate) sequence: u64,
    extra: Option<Box<RunExtra>>,
}

/// What only sagas and resumed runs need.
#[derive(Default)]
pub(crate) struct RunExtra {
    /// Completed saga steps, oldest first.
    pub(crate) compensations: Vec<CompletedStep>,
    /// The cursor recorded at the resume point; only the first state of a resumed run
    /// (the one whose cursor it is) may use it.
    pub(crate) resume_cursor: Option<Vec<u8>>,
    /// What a waiting state recorded at the resume point (a timer's deadline, a signal
    /// wait, a consumed signal); like the cursor, only the first state of a resumed run
    /// may use it.
    pub(crate) resume_wait: Option<ResumeWait>,
    /// The ids of the signals this run consumed (never consumed again).
    pub(crate) consumed_signals: Vec<String>,
    /// The completion row at the resume point, which the resumed state's re-run replaces.
    /// The re-entry row names it, so a later resume never compensates that superseded run
    /// of the step as well as the new one.
    pub(crate) supersedes: Option<u64>,
    /// The writer the run's store handed it (a `RunWriters` store): every row of the run
    /// goes through it.
    pub(crate) writer: Option<Box<dyn RunWriter>>,
    /// What may stop the run early: a cancellation token, a whole-run deadline.
    pub(crate) interrupt: Option<Interrupt>,
    /// The run's data (runs with a checkpoint store or `with_run_data`).
    pub(crate) data: Option<Arc<RunScope>>,
    /// The next state entry is a resumed run's re-entry, not a new visit.
    pub(crate) reentry: bool,
    /// The members of the resumed split state that finished before the resume.
    pub(crate) split_done: Vec<usize>,
    /// A token cancelled before the run starts still drains the compensations the run
    /// owes (the cluster's cancel of a run that waits to be resumed). Off for
    /// `resume_from_with_token`, which then runs nothing, as in cano 0.15.
    pub(crate) compensate_if_cancelled: bool,
}

/// What may stop a run between (and during) its states.
#[derive(Clone, Debug)]
pub(crate) struct Interrupt {
    /// The run's cancellation token (never a disabled one).
    pub(crate) token: Option<CancellationToken>,
    /// The whole-run deadline: when the run started (engine clock) and its limit.
    pub(crate) deadline: Option<(Instant, Duration)>,
}

/// Why an interrupted run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Cancelled,
    TimedOut { elapsed: Duration, limit: Duration },
}

impl Interrupt {
    /// `None` when nothing can interrupt the run (no enabled token, no deadline).
    pub(crate) fn new(token: CancellationToken, deadline: Option<Duration>) -> Option<Self> {
        let token = token.is_enabled().then_some(token);
        if token.is_none() && deadline.is_none() {
            return None;
        }
        let deadline = deadline.map(|limit| (crate::clock::now(), limit));
        Some(Self { token, deadline })
    }

    /// Whether the run must stop now. A cancel wins over a passed deadline.
    pub(crate) fn check(&self) -> Option<Stop> {
        if self
            .token
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
        {
            return Some(Stop::Cancelled);
        }
        let (started, limit) = self.deadline?;
        let elapsed = crate::clock::now().saturating_duration_since(started);
        (elapsed >= limit).then_some(Stop::TimedOut { elapsed, limit })
    }

    /// Wait until the run must stop (pending forever if nothing can stop it).
    pub(crate) async fn stopped(&self) -> Stop {
        let cancelled = async {
            match &self.token {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let expired = async {
            match self.deadline {
                Some((started, limit)) => {
                    let at = started.checked_add(limit);
                    match at {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                    let elapsed = crate::clock::now().saturating_duration_since(started);
                    Stop::TimedOut { elapsed, limit }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = cancelled => Stop::Cancelled,
            stop = expired => stop,
        }
    }

    /// Run `work` unless the run must stop first: `Err(stop)` then (and `work` is
    /// dropped). A cancel that comes with `work`'s end wins.
    pub(crate) async fn race<T>(&self, work: impl Future<Output = T>) -> Result<T, Stop> {
        if let Some(stop) = self.check() {
            return Err(stop);
        }
        tokio::select! {
            biased;
            stop = self.stopped() => Err(stop),
            done = work => Ok(done),
        }
    }
}

impl Run {
    /// A run that starts at sequence 0.
    pub(crate) fn fresh(workflow_id: Option<Arc<str>>) -> Self {
        Self {
            workflow_id,
            sequence: 0,
            extra: None,
        }
    }

    /// A resumed run: its next row is `sequence`.
    pub(crate) fn resumed(workflow_id: Arc<str>, sequence: u64, extra: RunExtra) -> Self {
        Self {
            workflow_id: Some(workflow_id),
            sequence,
            extra: Some(Box::new(extra)),
        }
    }

    fn extra(&mut self) -> &mut RunExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// See [`RunExtra::compensate_if_cancelled`].
    pub(crate) fn set_compensate_if_cancelled(&mut self) {
        self.extra().compensate_if_cancelled = true;
    }

    /// See [`RunExtra::compensate_if_cancelled`].
    pub(crate) fn compensates_if_cancelled(&self) -> bool {
        self.extra
            .as_ref()
            .is_some_and(|extra| extra.compensate_if_cancelled)
    }

    /// Completed saga steps, oldest first.
    pub(crate) fn compensations(&self) -> &[CompletedStep] {
        self.extra.as_ref().map_or(&[], |e| &e.compensations)
    }

    /// Push a completed saga step.
    pub(crate) fn push_completed(&mut self, step: CompletedStep) {
        self.extra().compensations.push(step);
    }

    /// Take the compensation stack (leaving it empty).
    pub(crate) fn take_compensations(&mut self) -> Vec<CompletedStep> {
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

    /// What a waiting state recorded at the resume point, if the run still has it.
    pub(crate) fn resume_wait(&self) -> Option<&ResumeWait> {
        self.extra.as_ref()?.resume_wait.as_ref()
    }

    /// Take what a waiting state recorded at the resume point (used once).
    pub(crate) fn take_resume_wait(&mut self) -> Option<ResumeWait> {
        self.extra.as_mut()?.resume_wait.take()
    }

    /// Whether the run consumed the signal `id` already.
    pub(crate) fn consumed_signal(&self, id: &str) -> bool {
        self.extra
            .as_ref()
            .is_some_and(|e| e.consumed_signals.iter().any(|c| c == id))
    }

    /// Remember that the run consumed the signal `id`.
    pub(crate) fn mark_consumed(&mut self, id: String) {
        self.extra().consumed_signals.push(id);
    }

    /// Forget what the resume point recorded (cursor, timer): it belongs to the first
    /// state of a resumed run only.
    pub(crate) fn clear_resume_point(&mut self) {
        if let Some(extra) = self.extra.as_mut() {
            extra.resume_cursor = None;
            extra.resume_wait = None;
            extra.reentry = false;
            extra.split_done = Vec::new();
        }
    }

    /// Whether this entry is a resumed run's re-entry (asked once per entry).
    pub(crate) fn take_reentry(&mut self) -> bool {
        self.extra
            .as_mut()
            .is_some_and(|e| std::mem::take(&mut e.reentry))
    }

    /// Take the members of the resumed split state that finished before the resume.
    pub(crate) fn take_split_done(&mut self) -> Vec<usize> {
        self.extra
            .as_mut()
            .map(|e| std::mem::take(&mut e.split_done))
            .unwrap_or_default()
    }

    /// The run's data, if it has any.
    pub(crate) fn data(&self) -> Option<&Arc<RunScope>> {
        self.extra.as_ref()?.data.as_ref()
    }

    /// Give the run its data.
    pub(crate) fn set_data(&mut self, data: Arc<RunScope>) {
        self.extra().data = Some(data);
    }

    /// The sequence of the row written last: the run loop's entry rows take the run's
    /// next sequence and advance it by one.
    pub(crate) fn last_sequence(&self) -> u64 {
        self.sequence.saturating_sub(1)
    }

    /// Take the completion sequence the resumed state's re-entry supersedes.
    pub(crate) fn take_supersedes(&mut self) -> Option<u64> {
        self.extra.as_mut()?.supersedes.take()
    }

    /// What may interrupt this run, if anything.
    pub(crate) fn interrupt(&self) -> Option<&Interrupt> {
        self.extra.as_ref()?.interrupt.as_ref()
    }

    /// Let `interrupt` stop this run.
    pub(crate) fn set_interrupt(&mut self, interrupt: Option<Interrupt>) {
        if interrupt.is_some() {
            self.extra().interrupt = interrupt;
        }
    }

    /// Whether the run must stop now (see [`Interrupt::check`]).
    #[inline]
    pub(crate) fn must_stop(&self) -> Option<Stop> {
        self.interrupt()?.check()
    }

    /// Write every later row of this run through `writer`.
    pub(crate) fn set_writer(&mut self, writer: Box<dyn RunWriter>) {
        self.extra().writer = Some(writer);
    }

    fn writer(&self) -> Option<&dyn RunWriter> {
        self.extra.as_ref()?.writer.as_deref()
    }

    /// Append `row` to this run's log: through the run's writer if its store gave it one,
    /// else through `store` under the run's id.
    pub(crate) fn append<'a>(
        &'a self,
        store: &'a dyn CheckpointStore,
        row: CheckpointRow,
    ) -> StoreFuture<'a, ()> {
        self.append_row(store, row, false)
    }

    /// [`append`](Self::append) of an exit state's entry, the run's last row
    /// ([`RunWriter::append_last`]).
    pub(crate) fn append_last<'a>(
        &'a self,
        store: &'a dyn CheckpointStore,
        row: CheckpointRow,
    ) -> StoreFuture<'a, ()> {
        self.append_row(store, row, true)
    }

    fn append_row<'a>(
        &'a self,
        store: &'a dyn CheckpointStore,
        row: CheckpointRow,
        last: bool,
    ) -> StoreFuture<'a, ()> {
        let append = match (self.writer(), self.workflow_id.as_deref()) {
            (Some(writer), _) if last => writer.append_last(row),
            (Some(writer), _) => writer.append(row),
            (None, Some(id)) => store.append(id, row),
            (None, None) => Box::pin(std::future::ready(Err(CanoError::checkpoint_store(
                MISSING_ID,
            )))),
        };
        counted(append, crate::instrument::checkpoint_append)
    }

    /// Remove this run's log, the way [`append`](Self::append) writes it (`None` without
    /// an id).
    pub(crate) fn clear<'a>(
        &'a self,
        store: &'a dyn CheckpointStore,
    ) -> Option<StoreFuture<'a, ()>> {
        let clear = match (self.writer(), self.workflow_id.as_deref()) {
            (Some(writer), _) => writer.clear(),
            (None, Some(id)) => store.clear(id),
            (None, None) => return None,
        };
        Some(counted(clear, crate::instrument::checkpoint_clear))
    }

    /// Claim the next sequence number for a row (returned) and advance past it.
    ///
    /// A failed append may still have stored its row (a lost acknowledgement): the
    /// sequence is advanced before the append, so it is never reused. A gap is harmless;
    /// a duplicate would make every later row of the run conflict.
    ///
    /// # Errors
    /// The log is full: the last number, `u64::MAX`, is never used for a row, so that
    /// there is always a next one to resume at.
    pub(crate) fn claim_sequence(&mut self) -> Result<u64, CanoError> {
        let sequence = self.sequence;
        self.sequence = match sequence.checked_add(1) {
            Some(next) if next < u64::MAX => next,
            _ => {
                return Err(CanoError::checkpoint_store(format!(
                    "checkpoint log {:?} is full: no sequence number is left for another row",
                    self.workflow_id.as_deref().unwrap_or_default()
                )));
            }
        };
        Ok(sequence)
    }
}

/// `call`, reporting whether it succeeded to `count` when the engine's metrics are on
/// (and `call` itself, unwrapped, when they are off).
fn counted<'a>(call: StoreFuture<'a, ()>, count: fn(bool)) -> StoreFuture<'a, ()> {
    if !crate::instrument::enabled() {
        return call;
    }
    Box::pin(async move {
        let result = call.await;
        count(result.is_ok());
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_claimed_once_and_the_last_is_never_used() {
        let mut run = Run::fresh(Some(Arc::from("r")));
        assert_eq!(run.claim_sequence(), Ok(0));
        assert_eq!(run.claim_sequence(), Ok(1));
        assert_eq!(run.last_sequence(), 1);
        run.sequence = u64::MAX - 2;
        assert_eq!(run.claim_sequence(), Ok(u64::MAX - 2));
        let err = run.claim_sequence().unwrap_err();
        assert!(err.to_string().contains("\"r\" is full"), "{err}");
    }
}
