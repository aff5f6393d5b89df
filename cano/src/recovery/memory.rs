//! [`MemoryCheckpointStore`]: the checkpoint log contract, in memory.

use super::{CheckpointRow, CheckpointStore, ListRuns, RunSummary, StoreFuture};
use crate::error::CanoError;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;

/// A [`CheckpointStore`] that keeps every log in memory: the full contract (duplicate
/// sequences rejected, rows loaded in sequence order, per-id clear, concurrent use), and
/// [`ListRuns`], without a file.
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
    runs: Arc<Mutex<HashMap<String, BTreeMap<u64, CheckpointRow>>>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn append_now(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let mut runs = self.runs.lock();
        let rows = runs.entry(workflow_id.to_owned()).or_default();
        if rows.contains_key(&row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "checkpoint conflict: workflow {workflow_id:?} already has a row at sequence {}; \
                 resume the existing run or clear it before starting a new one",
                row.sequence
            )));
        }
        rows.insert(row.sequence, row);
        Ok(())
    }

    fn rows(&self, workflow_id: &str) -> Vec<CheckpointRow> {
        self.runs
            .lock()
            .get(workflow_id)
            .map(|rows| rows.values().cloned().collect())
            .unwrap_or_default()
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
        Box::pin(ready(Ok(())))
    }
}

impl ListRuns for MemoryCheckpointStore {
    fn list_runs(&self) -> StoreFuture<'_, Vec<RunSummary>> {
        let runs: Vec<(String, Vec<CheckpointRow>)> = self
            .runs
            .lock()
            .iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(id, rows)| (id.clone(), rows.values().cloned().collect()))
            .collect();
        let mut summaries: Vec<RunSummary> = runs
            .iter()
            .map(|(id, rows)| super::log::summarize(id, rows))
            .collect();
        summaries.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        Box::pin(ready(Ok(summaries)))
    }
}
