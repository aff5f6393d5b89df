//! `#[checkpoint_store]`: the inherent form (writes the `impl CheckpointStore for T`
//! header), the trait-impl form and the trait-definition form.

use cano::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The inherent form, as in the seed example: exactly `append`, `load_run`, `clear`.
#[derive(Default, Clone)]
struct MapStore(Arc<Mutex<HashMap<String, Vec<CheckpointRow>>>>);

#[checkpoint_store]
impl MapStore {
    /// Rejects a duplicate `(workflow_id, sequence)`.
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let mut map = self.0.lock().unwrap();
        let rows = map.entry(workflow_id.to_string()).or_default();
        if rows.iter().any(|r| r.sequence == row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "conflict: {workflow_id} already has sequence {}",
                row.sequence
            )));
        }
        rows.push(row);
        Ok(())
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        let mut rows = self
            .0
            .lock()
            .unwrap()
            .get(workflow_id)
            .cloned()
            .unwrap_or_default();
        rows.sort_by_key(|r| r.sequence);
        Ok(rows)
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.0.lock().unwrap().remove(workflow_id);
        Ok(())
    }
}

/// The inherent form on a generic type, via the full path and with ignored arguments.
struct Counting<T> {
    appended: AtomicUsize,
    inner: T,
}

#[cano::checkpoint_store(these, args = "are ignored")]
impl<T> Counting<T>
where
    T: CheckpointStore,
{
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        self.appended.fetch_add(1, Ordering::SeqCst);
        self.inner.append(workflow_id, row).await
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        self.inner.load_run(workflow_id).await
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.inner.clear(workflow_id).await
    }
}

/// The trait-impl form.
struct Null;

#[checkpoint_store]
impl CheckpointStore for Null {
    async fn append(&self, _workflow_id: &str, _row: CheckpointRow) -> Result<(), CanoError> {
        Ok(())
    }

    async fn load_run(&self, _workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        Ok(Vec::new())
    }

    async fn clear(&self, _workflow_id: &str) -> Result<(), CanoError> {
        Err(CanoError::checkpoint_store("null store cannot clear"))
    }
}

#[tokio::test]
async fn inherent_form_implements_the_trait() {
    let store = MapStore::default();
    store
        .append("w", CheckpointRow::new(1, "B", "t"))
        .await
        .unwrap();
    store
        .append("w", CheckpointRow::new(0, "A", "t"))
        .await
        .unwrap();
    let err = store
        .append("w", CheckpointRow::new(0, "A", "t"))
        .await
        .unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("conflict"));
    let sequences: Vec<u64> = store
        .load_run("w")
        .await
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(sequences, [0, 1]);
    store.clear("w").await.unwrap();
    assert!(store.load_run("w").await.unwrap().is_empty());
}

#[tokio::test]
async fn stores_are_usable_as_trait_objects_and_send() {
    let stores: Vec<Arc<dyn CheckpointStore>> = vec![
        Arc::new(MapStore::default()),
        Arc::new(Counting {
            appended: AtomicUsize::new(0),
            inner: MapStore::default(),
        }),
        Arc::new(Null),
    ];
    for store in stores {
        let handle = tokio::spawn(async move {
            store.append("id", CheckpointRow::new(0, "S", "t")).await?;
            store.load_run("id").await
        });
        let rows = handle.await.unwrap().unwrap();
        assert!(rows.len() <= 1);
    }
    assert!(Null.clear("x").await.is_err());
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Work,
    Done,
}

struct Work;

#[task(state = Step)]
impl Work {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

#[tokio::test]
async fn inherent_store_receives_workflow_checkpoints() {
    let store = Arc::new(Counting {
        appended: AtomicUsize::new(0),
        inner: MapStore::default(),
    });
    let workflow = Workflow::bare()
        .register(Step::Work, Work)
        .add_exit_state(Step::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("run-1");
    assert_eq!(workflow.orchestrate(Step::Work).await.unwrap(), Step::Done);
    assert!(store.appended.load(Ordering::SeqCst) >= 1);
}

/// `#[checkpoint_store]` on a trait definition: the plain rewrite.
#[checkpoint_store]
trait Audit: Send + Sync {
    async fn record(&self, line: &str) -> usize;
}

#[checkpoint_store]
impl Audit for MapStore {
    async fn record(&self, line: &str) -> usize {
        line.len()
    }
}

#[tokio::test]
async fn trait_definition_form() {
    let audit: &(dyn Audit + Sync) = &MapStore::default();
    assert_eq!(audit.record("four").await, 4);
}
