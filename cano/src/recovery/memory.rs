//! [`MemoryCheckpointStore`]: the checkpoint log contract, in memory.

use super::{
    CheckpointRow, CheckpointStore, ListRuns, RunSummary, RunWriter, RunWriters, StoreFuture,
};
use crate::error::CanoError;
use crate::signal::{Signal, SignalStore, Wakers};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;

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
    runs: Arc<Mutex<HashMap<String, Log>>>,
    /// Pending signals per run, oldest first.
    signals: Arc<Mutex<HashMap<String, Vec<Signal>>>>,
    wakers: Arc<Wakers>,
}

/// One run's log and what the store knows about it.
#[derive(Debug, Default)]
struct Log {
    /// The rows, sorted by sequence (rows mostly arrive in order: a `Vec` costs a fraction
    /// of a tree per run).
    rows: Vec<CheckpointRow>,
    /// When the first row was written (ms since the Unix epoch).
    started_ms: u64,
    /// When the last row was written.
    updated_ms: u64,
    /// The error the run returned, while no row came after it.
    failed: Option<Box<str>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn append_now(&self, workflow_id: &str, mut row: CheckpointRow) -> Result<(), CanoError> {
        // Kept as long as the run waits: no spare capacity (a JSON blob is built in a
        // buffer of 128 bytes or more).
        if let Some(blob) = &mut row.output_blob {
            blob.shrink_to_fit();
        }
        let now = super::now_ms();
        let mut runs = self.runs.lock();
        let log = runs.entry(workflow_id.to_owned()).or_default();
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
        rows.insert(at, row);
        if log.rows.len() == 1 {
            log.started_ms = now;
        }
        log.updated_ms = log.updated_ms.max(now);
        log.failed = None;
        Ok(())
    }

    fn rows(&self, workflow_id: &str) -> Vec<CheckpointRow> {
        self.runs
            .lock()
            .get(workflow_id)
            .map(|log| log.rows.clone())
            .unwrap_or_default()
    }

    /// Mark `workflow_id` failed with `error`, if it has a log.
    fn mark_failed(&self, workflow_id: &str, error: &CanoError) {
        if let Some(log) = self.runs.lock().get_mut(workflow_id)
            && !log.rows.is_empty()
        {
            log.failed = Some(super::failure_text(error).into_boxed_str());
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
        self.runs.lock().remove(workflow_id);
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
        let consumed = match self.runs.lock().get(workflow_id) {
            Some(log) if !log.rows.is_empty() => consumed(&log.rows, &signal.id),
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
        self.wakers.wake(workflow_id);
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

    fn signal_waker(&self, workflow_id: &str) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.wakers.get(workflow_id))
    }

    fn forget_signal_waker(&self, workflow_id: &str) {
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
        let runs: Vec<Listed> = self
            .runs
            .lock()
            .iter()
            .filter(|(_, log)| !log.rows.is_empty())
            .map(|(id, log)| {
                let (rows, failed) = (log.rows.clone(), log.failed.clone());
                (id.clone(), rows, log.started_ms, log.updated_ms, failed)
            })
            .collect();
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
        let found = self
            .runs
            .lock()
            .get(workflow_id)
            .filter(|log| !log.rows.is_empty())
            .map(|log| {
                let (rows, failed) = (log.rows.clone(), log.failed.clone());
                (rows, log.started_ms, log.updated_ms, failed)
            });
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
