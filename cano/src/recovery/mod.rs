//! Crash recovery: the checkpoint log a workflow writes as it runs.
//!
//! Attach a [`CheckpointStore`] with
//! [`Workflow::with_checkpoint_store`](crate::Workflow::with_checkpoint_store) and give the
//! run an id with [`Workflow::with_workflow_id`](crate::Workflow::with_workflow_id). The
//! engine then appends a [`CheckpointRow`] each time it enters a state, *before* the
//! state's task runs. A run that reaches an exit state clears its log; a failed run keeps
//! it, and [`Workflow::resume_from`](crate::Workflow::resume_from) continues from the
//! last recorded state.
//!
//! Three stores come with the crate: [`MemoryCheckpointStore`] (in memory, for tests and
//! runs that need no crash recovery), `RedbCheckpointStore` (feature `recovery`: one
//! durable file) and `PostgresCheckpointStore` (feature `postgres`: a PostgreSQL database
//! that processes on many machines can share). What each row means is documented in
//! [`log`]. Beside [`CheckpointStore`], stores can offer capabilities: [`ListRuns`] (list
//! the runs a store holds, for operators' tools) and [`RunWriters`] (hand each run a
//! writer of its own, so that a store can fence a run's writes).
//!
//! Implementing a store takes three async methods; `#[checkpoint_store]` on an inherent
//! impl writes the trait header for you:
//!
//! ```
//! use cano::prelude::*;
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! #[derive(Default)]
//! struct MapStore(Mutex<HashMap<String, Vec<CheckpointRow>>>);
//!
//! #[checkpoint_store]
//! impl MapStore {
//!     async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
//!         let mut map = self.0.lock().unwrap();
//!         let rows = map.entry(workflow_id.to_string()).or_default();
//!         if rows.iter().any(|r| r.sequence == row.sequence) {
//!             return Err(CanoError::checkpoint_store(format!(
//!                 "checkpoint conflict: {workflow_id} already has sequence {}", row.sequence)));
//!         }
//!         rows.push(row);
//!         Ok(())
//!     }
//!     async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
//!         let mut rows = self.0.lock().unwrap().get(workflow_id).cloned().unwrap_or_default();
//!         rows.sort_by_key(|r| r.sequence);
//!         Ok(rows)
//!     }
//!     async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
//!         self.0.lock().unwrap().remove(workflow_id);
//!         Ok(())
//!     }
//! }
//! ```

pub mod log;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "recovery")]
mod redb;
#[cfg(feature = "recovery")]
mod wal;

pub use self::memory::MemoryCheckpointStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::PostgresCheckpointStore;
#[cfg(feature = "recovery")]
pub use self::redb::RedbCheckpointStore;

use crate::error::CanoError;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// What a [`CheckpointRow`] records.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RowKind {
    /// The run entered a state (written before the state's task runs).
    #[default]
    StateEntry,
    /// A compensatable task finished; `output_blob` holds its output for rollback.
    CompensationCompletion,
    /// A stepped task produced a cursor; `output_blob` holds it.
    StepCursor,
    /// A saga rollback began: `output_blob` holds (as JSON) the error that caused it and
    /// the completed steps to undo, so a crash during the rollback can be resumed.
    /// (Not written by cano 0.12.0.)
    RollbackStarted,
    /// One step of a rollback was compensated: `output_blob` holds (as JSON) its index
    /// in the `RollbackStarted` row's list, so a resumed rollback never undoes it twice.
    /// (Not written by cano 0.12.0.)
    Compensated,
    /// A timer state is waiting: `output_blob` holds its wall-clock deadline, so that a
    /// resumed run waits only what is left. (Not written by cano 0.12.0.)
    Timer,
    /// A [signal](crate::signal) state starts waiting: `output_blob` holds (as JSON) the
    /// signal's name and the wait's deadline, if it has one. (Not written by cano 0.12.0.)
    SignalWait,
    /// A signal was consumed: `output_blob` holds (as JSON) its name, id and payload, so
    /// that a resumed run hands the same payload to its task and never consumes the id
    /// again. (Not written by cano 0.12.0.)
    Signal,
    /// A member of a split state finished successfully: `output_blob` holds its index (as
    /// decimal text), so that a resumed split re-runs only the members that had not.
    /// (Not written by cano 0.12.0.)
    SplitMember,
}

/// One entry of a run's checkpoint log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRow {
    /// Position in the run's log: dense from 0.
    pub sequence: u64,
    /// The state's `Debug` text.
    pub state: String,
    /// The name of the state's task, or `""` (split states, exit states).
    pub task_id: String,
    /// The row's payload; what it holds depends on `kind` (a saga step's output, a
    /// stepped task's cursor, a rollback record, …). The [`log`] module documents every
    /// encoding. `None` on most state entries.
    pub output_blob: Option<Vec<u8>>,
    /// What the row records.
    pub kind: RowKind,
}

impl CheckpointRow {
    /// A [`RowKind::StateEntry`] row without output.
    pub fn new(sequence: u64, state: impl Into<String>, task_id: impl Into<String>) -> Self {
        Self {
            sequence,
            state: state.into(),
            task_id: task_id.into(),
            output_blob: None,
            kind: RowKind::StateEntry,
        }
    }

    /// Make this a [`RowKind::CompensationCompletion`] row carrying `output_blob`.
    pub fn with_output(mut self, output_blob: Vec<u8>) -> Self {
        self.output_blob = Some(output_blob);
        self.kind = RowKind::CompensationCompletion;
        self
    }

    /// Make this a [`RowKind::StepCursor`] row carrying `cursor_blob`.
    pub fn with_cursor(mut self, cursor_blob: Vec<u8>) -> Self {
        self.output_blob = Some(cursor_blob);
        self.kind = RowKind::StepCursor;
        self
    }
}

/// Durable storage for checkpoint logs, one log per workflow id.
///
/// Write the methods as `async fn` under `#[checkpoint_store]`. The contract:
///
/// * `append` stores the whole row durably before returning `Ok`, and **rejects** a
///   second row with the same `(workflow_id, sequence)` with an `Err` (built-in stores
///   say `conflict` in the message). That is what makes two runs sharing an id fail
///   fast, and a fresh run over an uncleared log fail at sequence 0.
/// * `load_run` returns every row of the id sorted by `sequence`; an unknown id gives
///   an empty `Vec`, not an error.
/// * `clear` removes the id's rows only; clearing an unknown id is `Ok`.
/// * Calls may come concurrently, for the same and for different ids.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Durably store `row` in `workflow_id`'s log.
    fn append<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
        row: CheckpointRow,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// Every row of `workflow_id`'s log, by ascending sequence.
    fn load_run<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<CheckpointRow>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;

    /// Remove `workflow_id`'s log.
    fn clear<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait;
}

/// A store call in flight: what [`RunWriter`]'s and [`RunWriters`]'s methods return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CanoError>> + Send + 'a>>;

/// The write path of one run's log: with a [`RunWriters`] store, every row of a run and
/// its final clear go through the writer the store handed that run.
///
/// A store uses this to tie a run's writes to something it checks on every write — a
/// lease epoch, say, so that a worker that lost a run to another can no longer write to
/// it. A refused write fails the run like any failed append: with a
/// [`CanoError::CheckpointStore`] error, and no further task of the run starts.
pub trait RunWriter: Send + Sync {
    /// Durably store `row` in the run's log (the contract of [`CheckpointStore::append`]).
    fn append(&self, row: CheckpointRow) -> StoreFuture<'_, ()>;
    /// Remove the run's log (the contract of [`CheckpointStore::clear`]).
    fn clear(&self) -> StoreFuture<'_, ()>;

    /// Store the entry row of an exit state: the run's last row, which the engine follows
    /// at once with [`clear`](Self::clear) (the run succeeded). The default appends it
    /// like any row; a writer whose clear is recorded together with the run's outcome
    /// (the cluster's workers record the final state and clear the log in one statement)
    /// may leave it unwritten: a crash before that statement resumes the run from its
    /// previous row, as a crash just before this row would.
    fn append_last(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        self.append(row)
    }

    /// The run returned `error` and its log stays (nothing cleared it): the engine calls
    /// this once, at the run's end, so that a store can tell a run that failed from one
    /// still in flight ([`RunStatus::Failed`]). The run's next append through any writer
    /// or [`CheckpointStore::append`] takes the mark away again, and a clear removes it
    /// with the log.
    ///
    /// The default does nothing. An error is reported by the engine (to `tracing` at
    /// WARN, or stderr) and does not change the run's result.
    fn finished_with_error<'a>(&'a self, error: &'a CanoError) -> StoreFuture<'a, ()> {
        let _ = error;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A store that hands each run a [`RunWriter`] of its own: a capability beside
/// [`CheckpointStore`], attached with
/// [`Workflow::with_run_writers`](crate::Workflow::with_run_writers).
///
/// The engine asks for a writer when a run starts (fresh, resumed or scheduled, once the
/// run's checks passed) and writes every row of that run through it; reads
/// (`load_run`) still go through [`CheckpointStore`]. When the run ends in an error and
/// keeps its log, the engine tells the writer ([`RunWriter::finished_with_error`]).
///
/// Implemented by [`MemoryCheckpointStore`] and `RedbCheckpointStore` (their writers
/// append and clear as the store does, and mark failed runs) and
/// `PostgresCheckpointStore` (fenced by leases).
pub trait RunWriters: CheckpointStore {
    /// A writer for the run `workflow_id`. An error stops the run before anything runs.
    fn writer<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Box<dyn RunWriter>>;
}

/// The text a store keeps for a run's failure ([`RunStatus::Failed`]): the error's
/// display, cut at [`FAILURE_TEXT_MAX`] bytes (on a character boundary).
pub(crate) fn failure_text(error: &CanoError) -> String {
    let mut text = error.to_string();
    if text.len() > FAILURE_TEXT_MAX {
        let mut end = FAILURE_TEXT_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The longest failure text a store keeps, in bytes.
pub(crate) const FAILURE_TEXT_MAX: usize = 16 * 1024;

/// The wall clock now, in milliseconds since the Unix epoch: when a store writes a row.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Report `summary` as [failed](RunStatus::Failed) with `error`, when the store holds a
/// failure mark for it. A log that does not follow the format stays
/// [`Malformed`](RunStatus::Malformed): it cannot be resumed, which matters more.
pub(crate) fn mark_failed(summary: &mut RunSummary, error: Option<String>) {
    if let Some(error) = error
        && !matches!(summary.status, RunStatus::Malformed(_))
    {
        summary.status = RunStatus::Failed { error };
    }
}

/// A run held by a store, as [`ListRuns::list_runs`] reports it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// The run's id.
    pub workflow_id: String,
    /// The state of the last row that names one (`""` if none does).
    pub last_state: String,
    /// The sequence of the log's last row.
    pub last_sequence: u64,
    /// How many rows the log holds.
    pub rows: usize,
    /// What the log says about the run.
    pub status: RunStatus,
    /// The [workflow version](crate::Workflow::with_workflow_version) the run was started
    /// under (0 when its log names none).
    pub version: u32,
    /// When the run's first row was written (milliseconds since the Unix epoch, UTC), if
    /// the store knows: `None` for runs written before the store kept times (a redb file
    /// of an earlier cano) and from [`log::summarize`], which sees rows only.
    pub started_ms: Option<u64>,
    /// When the run's last row was written (milliseconds since the Unix epoch, UTC), if
    /// the store knows (see `started_ms`).
    pub updated_ms: Option<u64>,
}

/// Where a run stands, as far as its checkpoint log (and the store's failure mark) can tell.
///
/// A successful run, and a run whose rollback finished cleanly, clear their log: every
/// run a store holds is therefore either still running or stopped short of its end. A
/// log alone cannot tell a run in progress from one whose process died or which returned
/// an error; that takes knowing whether a process is working on it. Runs written through
/// a [`RunWriter`] are the exception: the engine marks those that return an error
/// ([`Failed`](Self::Failed)).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// The run went forward as far as its last row: it is running, or it stopped (an
    /// error or a crash) and `resume_from` continues it from there.
    Forward,
    /// A saga rollback is recorded and `remaining` steps are not compensated yet: it is
    /// in progress, or a compensation failed, or the process died during it;
    /// `resume_from` finishes it.
    RollingBack {
        /// Steps still to compensate.
        remaining: usize,
    },
    /// The run is waiting at its last state: a [timer](crate::TimerTask) until
    /// `deadline_ms` (milliseconds since the Unix epoch, UTC), or a
    /// [signal](crate::signal) state for `signal` (until `deadline_ms`, if it has a
    /// timeout). `resume_from` continues the wait for what is left of it.
    Waiting {
        /// When the wait ends, if it has a deadline.
        deadline_ms: Option<u64>,
        /// The signal the run waits for, if it waits for one.
        signal: Option<String>,
    },
    /// The log does not follow the [format](log); the text says what is wrong.
    Malformed(String),
    /// The run returned an error and nothing is running it: its log stays (no rollback
    /// cleared it) and `resume_from` continues it as the log says (from its last row, or
    /// finishing a recorded rollback). `error` is the error's text. The mark takes the
    /// place of what the log alone would say ([`Forward`](Self::Forward),
    /// [`RollingBack`](Self::RollingBack), [`Waiting`](Self::Waiting) for a run stopped
    /// while it waited), except [`Malformed`](Self::Malformed).
    ///
    /// Only runs that write through a [`RunWriter`] are marked: runs of a workflow given
    /// its store with [`Workflow::with_run_writers`](crate::Workflow::with_run_writers)
    /// (the engine tells the writer with [`RunWriter::finished_with_error`]). A run given
    /// its store with
    /// [`Workflow::with_checkpoint_store`](crate::Workflow::with_checkpoint_store) that
    /// returns an error stays [`Forward`](Self::Forward), and so does a run whose process
    /// died. The mark goes away with the run's next row (a resume) and with its log.
    Failed {
        /// The text of the error the run returned.
        error: String,
    },
}

/// A store that can list the runs it holds: a capability beside [`CheckpointStore`].
///
/// Implemented by [`MemoryCheckpointStore`], `RedbCheckpointStore` (feature `recovery`) and
/// `PostgresCheckpointStore` (feature `postgres`).
pub trait ListRuns: CheckpointStore {
    /// Every run the store holds a log for, by id.
    ///
    /// Dropping the future abandons the listing; the store is not changed by it.
    fn list_runs(&self) -> StoreFuture<'_, Vec<RunSummary>>;

    /// The run `workflow_id` as [`list_runs`](Self::list_runs) reports it, or `None` when
    /// the store holds no log for it.
    ///
    /// The default lists every run and picks this one; the built-in stores read only
    /// the run's own log. Dropping the future abandons the read.
    fn run_summary<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Option<RunSummary>> {
        Box::pin(async move {
            let runs = self.list_runs().await?;
            Ok(runs.into_iter().find(|run| run.workflow_id == workflow_id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_kind_and_blob() {
        let r = CheckpointRow::new(1, "A", "t");
        assert_eq!((r.kind, r.output_blob.clone()), (RowKind::StateEntry, None));
        let c = r.clone().with_cursor(vec![1]);
        assert_eq!(
            (c.kind, c.output_blob),
            (RowKind::StepCursor, Some(vec![1]))
        );
        let o = r.with_output(vec![2]);
        assert_eq!(
            (o.kind, o.output_blob),
            (RowKind::CompensationCompletion, Some(vec![2]))
        );
    }

    #[test]
    fn json_shape_matches_field_order() {
        let row = CheckpointRow::new(1, "A", "t").with_cursor(vec![1]);
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"sequence":1,"state":"A","task_id":"t","output_blob":[1],"kind":"StepCursor"}"#
        );
    }
}
