//! [`MemoryCheckpointStore`]: the checkpoint log contract, in memory.

use super::{
    CheckpointRow, CheckpointStore, ListRuns, RowKind, RunSummary, RunWriter, RunWriters,
    StoreFuture,
};
use crate::error::CanoError;
use crate::signal::{Signal, SignalStore, WakeSlot, Wakers};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A [`CheckpointStore`] that keeps every log in memory: the full contract (duplicate
/// sequences rejected, rows loaded in sequence order, per-id clear, concurrent use),
/// [`ListRuns`] (with when each run was first and last written) and [`RunWriters`] (which
/// marks runs that return an error [failed](super::RunStatus::Failed)), without a file.
///
/// What it holds lives as long as the store (clones share it) and is gone with the
/// process: use it in tests and for runs that need no crash recovery, and
/// [`RedbCheckpointStore`](crate::recovery) (feature `recovery`) for durable logs.
///
/// ```
/// use cano::prelude::*;
/// use cano::recovery::MemoryCheckpointStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
/// let store = MemoryCheckpointStore::new();
/// store.append("run-1", CheckpointRow::new(0, "Fetch", "fetch")).await?;
/// let again = store.append("run-1", CheckpointRow::new(0, "Fetch", "fetch")).await;
/// assert!(again.unwrap_err().to_string().contains("conflict"));
/// assert_eq!(store.load_run("run-1").await?.len(), 1);
/// # let _: Arc<dyn CheckpointStore> = Arc::new(store);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpointStore {
    /// Each run's log.
    runs: Arc<Mutex<Logs>>,
    /// Pending signals per run, oldest first.
    signals: Arc<Mutex<HashMap<String, Vec<Signal>>>>,
    wakers: Arc<Wakers>,
}

/// The logs, and the state and task names their rows share.
#[derive(Debug, Default)]
struct Logs {
    by_run: HashMap<Box<str>, Log>,
    /// Each distinct pair of names once (up to [`MAX_NAMES`]), by state: rows hold a
    /// shared copy.
    names: HashMap<Box<str>, Vec<Arc<Names>>>,
    /// How many pairs `names` holds.
    shared: usize,
    /// The error each failed run returned, while no row came after it (few runs: kept
    /// apart so that the other runs' entries are smaller).
    failed: HashMap<Box<str>, Box<str>>,
}

/// How many distinct (state, task) name pairs the store shares between rows; pairs
/// beyond it (states whose `Debug` text carries data, say) are stored with each row.
const MAX_NAMES: usize = 4096;

/// A row's state and task names.
#[derive(Debug)]
struct Names {
    state: Box<str>,
    task_id: Box<str>,
}

impl Logs {
    /// The names `state` and `task_id`, shared with the rows that have them already.
    fn share(&mut self, state: String, task_id: String) -> Arc<Names> {
        if let Some(shared) = self
            .names
            .get(state.as_str())
            .and_then(|pairs| pairs.iter().find(|names| *names.task_id == *task_id))
        {
            return Arc::clone(shared);
        }
        let names = Arc::new(Names {
            state: state.into_boxed_str(),
            task_id: task_id.into_boxed_str(),
        });
        if self.shared < MAX_NAMES {
            self.shared += 1;
            (self.names.entry(names.state.clone()).or_default()).push(Arc::clone(&names));
        }
        names
    }
}

/// One run's log and when it was written.
#[derive(Debug, Default)]
struct Log {
    /// The rows, sorted by sequence (rows mostly arrive in order: a `Vec` costs a fraction
    /// of a tree per run).
    rows: Vec<Row>,
    /// When the first row was written (ms since the Unix epoch).
    started_ms: u64,
    /// When the last row was written.
    updated_ms: u64,
    /// The run's wake-up while it waits for a signal (kept here rather than in a map of
    /// its own: a waiting run costs less).
    wake: WakeSlot,
}

/// A [`CheckpointRow`] as the store keeps it: names shared, no spare capacity (a waiting
/// run keeps its rows for as long as it waits).
#[derive(Debug)]
struct Row {
    sequence: u64,
    names: Arc<Names>,
    output_blob: Option<Box<[u8]>>,
    kind: RowKind,
}

impl Row {
    fn to_row(&self) -> CheckpointRow {
        CheckpointRow {
            sequence: self.sequence,
            state: String::from(&*self.names.state),
            task_id: String::from(&*self.names.task_id),
            output_blob: self.output_blob.as_deref().map(<[u8]>::to_vec),
            kind: self.kind,
        }
    }
}

impl Log {
    fn rows(&self) -> Vec<CheckpointRow> {
        self.rows.iter().map(Row::to_row).collect()
    }
}

impl MemoryCheckpointStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn append_now(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let now = super::now_ms();
        let mut logs = self.runs.lock();
        let names = logs.share(row.state, row.task_id);
        let Logs { by_run, failed, .. } = &mut *logs;
        let log = match by_run.get_mut(workflow_id) {
            Some(log) => log,
            None => by_run.entry(Box::from(workflow_id)).or_default(),
        };
        let rows = &mut log.rows;
        let at = match rows.last() {
            Some(last) if last.sequence < row.sequence => rows.len(),
            None => 0,
            _ => match rows.binary_search_by_key(&row.sequence, |r| r.sequence) {
                Ok(_) => {
                    return Err(CanoError::checkpoint_store(format!(
                        "checkpoint conflict: workflow {workflow_id:?} already has a row at sequence {}; \
                         resume the existing run or clear it before starting a new one",
                        row.sequence
                    )));
                }
                Err(at) => at,
            },
        };
        // Grow 1, 2, 4, … rather than from 4: most waiting runs hold two or three rows.
        if rows.len() == rows.capacity() {
            rows.reserve_exact(rows.len().max(1));
        }
        let row = Row {
            sequence: row.sequence,
            names,
            output_blob: row.output_blob.map(Vec::into_boxed_slice),
            kind: row.kind,
        };
        rows.insert(at, row);
        if log.rows.len() == 1 {
            log.started_ms = now;
        }
        log.updated_ms = log.updated_ms.max(now);
        if !failed.is_empty() {
            failed.remove(workflow_id);
        }
        Ok(())
    }

    fn rows(&self, workflow_id: &str) -> Vec<CheckpointRow> {
        self.runs
            .lock()
            .by_run
            .get(workflow_id)
            .map(Log::rows)
            .unwrap_or_default()
    }

    /// Mark `workflow_id` failed with `error`, if it has a log.
    fn mark_failed(&self, workflow_id: &str, error: &CanoError) {
        let mut logs = self.runs.lock();
        if logs
            .by_run
            .get(workflow_id)
            .is_some_and(|log| !log.rows.is_empty())
        {
            let error = super::failure_text(error).into_boxed_str();
            logs.failed.insert(Box::from(workflow_id), error);
        }
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn append<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
        row: CheckpointRow,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(ready(self.append_now(workflow_id, row)))
    }

    fn load_run<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<CheckpointRow>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(ready(Ok(self.rows(workflow_id))))
    }

    fn clear<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        let mut logs = self.runs.lock();
        logs.by_run.remove(workflow_id);
        if !logs.failed.is_empty() {
            logs.failed.remove(workflow_id);
        }
        drop(logs);
        // A finished run's undelivered signals go with it.
        let mut signals = self.signals.lock();
        if !signals.is_empty() {
            signals.remove(workflow_id);
        }
        Box::pin(ready(Ok(())))
    }
}

/// Signals are kept in memory beside the logs; a run is known while it has a log.
impl SignalStore for MemoryCheckpointStore {
    fn send_signal<'a>(&'a self, workflow_id: &'a str, signal: Signal) -> StoreFuture<'a, bool> {
        let consumed = match self.runs.lock().by_run.get(workflow_id) {
            Some(log) if !log.rows.is_empty() => {
                let signal_rows: Vec<CheckpointRow> = (log.rows.iter())
                    .filter(|row| row.kind == RowKind::Signal)
                    .map(Row::to_row)
                    .collect();
                consumed(&signal_rows, &signal.id)
            }
            _ => return Box::pin(ready(Err(no_run(workflow_id, &signal)))),
        };
        if consumed {
            return Box::pin(ready(Ok(false)));
        }
        let stored = {
            let mut signals = self.signals.lock();
            let pending = signals.entry(workflow_id.to_owned()).or_default();
            let new = !pending.iter().any(|s| s.id == signal.id);
            if new {
                pending.push(signal);
            }
            new
        };
        let waker = match self.runs.lock().by_run.get_mut(workflow_id) {
            Some(log) => log.wake.sent(),
            None => None,
        };
        match waker {
            Some(waker) => waker.wake(),
            None => self.wakers.wake(workflow_id),
        }
        Box::pin(ready(Ok(stored)))
    }

    fn pending_signals<'a>(
        &'a self,
        workflow_id: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Vec<Signal>> {
        let pending = self
            .signals
            .lock()
            .get(workflow_id)
            .map(|all| all.iter().filter(|s| s.name == name).cloned().collect())
            .unwrap_or_default();
        Box::pin(ready(Ok(pending)))
    }

    fn remove_signal<'a>(
        &'a self,
        workflow_id: &'a str,
        signal_id: &'a str,
    ) -> StoreFuture<'a, ()> {
        if let Some(pending) = self.signals.lock().get_mut(workflow_id) {
            pending.retain(|s| s.id != signal_id);
        }
        Box::pin(ready(Ok(())))
    }

    fn poll_signal_sent(&self, workflow_id: &str, cx: &mut Context<'_>) -> Option<Poll<()>> {
        if let Some(log) = self.runs.lock().by_run.get_mut(workflow_id) {
            return Some(log.wake.poll(cx));
        }
        // A run whose log is elsewhere (signals through this store, rows through another).
        Some(self.wakers.poll(workflow_id, cx).0)
    }

    fn forget_signal_waker(&self, workflow_id: &str) {
        if let Some(log) = self.runs.lock().by_run.get_mut(workflow_id) {
            log.wake = WakeSlot::default();
        }
        self.wakers.forget(workflow_id);
    }
}

/// Whether the log `rows` records the consumption of the signal `id`.
pub(crate) fn consumed<'a>(rows: impl IntoIterator<Item = &'a CheckpointRow>, id: &str) -> bool {
    rows.into_iter().any(|row| {
        row.kind == super::RowKind::Signal
            && matches!(
                super::log::parse_row("", row),
                Ok(super::log::LogEntry::Signal { signal, .. }) if signal.id == id
            )
    })
}

/// The error for a signal sent to a run the store does not hold.
pub(crate) fn no_run(workflow_id: &str, signal: &Signal) -> CanoError {
    CanoError::checkpoint_store(format!(
        "cannot send signal {:?} ({:?}): no run {workflow_id:?} in this store \
         (it never started here, or it has finished)",
        signal.name, signal.id
    ))
}

impl ListRuns for MemoryCheckpointStore {
    fn list_runs(&self) -> StoreFuture<'_, Vec<RunSummary>> {
        type Listed = (String, Vec<CheckpointRow>, u64, u64, Option<Box<str>>);
        let logs = self.runs.lock();
        let runs: Vec<Listed> = (logs.by_run.iter())
            .filter(|(_, log)| !log.rows.is_empty())
            .map(|(id, log)| {
                let (rows, failed) = (log.rows(), logs.failed.get(id).cloned());
                (
                    String::from(&**id),
                    rows,
                    log.started_ms,
                    log.updated_ms,
                    failed,
                )
            })
            .collect();
        drop(logs);
        let mut summaries: Vec<RunSummary> = runs
            .into_iter()
            .map(|(id, rows, started_ms, updated_ms, failed)| {
                let mut summary = super::log::summarize(&id, &rows);
                summary.started_ms = Some(started_ms);
                summary.updated_ms = Some(updated_ms);
                super::mark_failed(&mut summary, failed.map(String::from));
                summary
            })
            .collect();
        summaries.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        Box::pin(ready(Ok(summaries)))
    }

    fn run_summary<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Option<RunSummary>> {
        let logs = self.runs.lock();
        let found = (logs.by_run.get(workflow_id))
            .filter(|log| !log.rows.is_empty())
            .map(|log| {
                let (rows, failed) = (log.rows(), logs.failed.get(workflow_id).cloned());
                (rows, log.started_ms, log.updated_ms, failed)
            });
        drop(logs);
        let summary = found.map(|(rows, started_ms, updated_ms, failed)| {
            let mut summary = super::log::summarize(workflow_id, &rows);
            summary.started_ms = Some(started_ms);
            summary.updated_ms = Some(updated_ms);
            super::mark_failed(&mut summary, failed.map(String::from));
            summary
        });
        Box::pin(ready(Ok(summary)))
    }
}

/// Each run gets a writer that appends and clears as the store does, and marks the run
/// [failed](super::RunStatus::Failed) when it returns an error.
impl RunWriters for MemoryCheckpointStore {
    fn writer<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Box<dyn RunWriter>> {
        let writer = Writer {
            store: self.clone(),
            workflow_id: workflow_id.to_owned(),
        };
        Box::pin(ready(Ok(Box::new(writer) as Box<dyn RunWriter>)))
    }
}

/// The writer of one run of a [`MemoryCheckpointStore`].
struct Writer {
    store: MemoryCheckpointStore,
    workflow_id: String,
}

impl RunWriter for Writer {
    fn append(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        Box::pin(ready(self.store.append_now(&self.workflow_id, row)))
    }

    fn clear(&self) -> StoreFuture<'_, ()> {
        self.store.clear(&self.workflow_id)
    }

    fn finished_with_error<'a>(&'a self, error: &'a CanoError) -> StoreFuture<'a, ()> {
        self.store.mark_failed(&self.workflow_id, error);
        Box::pin(ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_sorted_and_duplicates_are_refused_in_any_order() {
        let store = MemoryCheckpointStore::new();
        for sequence in [3, 0, 7, 5] {
            store
                .append_now("r", CheckpointRow::new(sequence, "S", "t"))
                .unwrap();
        }
        for sequence in [0, 5, 7] {
            let err = store
                .append_now("r", CheckpointRow::new(sequence, "S", "t"))
                .unwrap_err();
            assert!(err.to_string().contains("conflict"), "{err}");
        }
        let sequences: Vec<u64> = store.rows("r").iter().map(|r| r.sequence).collect();
        assert_eq!(sequences, [0, 3, 5, 7]);
    }
}
