//! Per-run writers (`RunWriters`): every row of a run goes through the writer its store
//! handed it when it started, so a store can fence a run. Here a store ties each writer to
//! an epoch per run id, and a "takeover" (another worker asking for a writer for the same
//! id) bumps it: the first worker's next write is refused, its run fails with a
//! checkpoint-store error, and no further task of it starts.

use cano::prelude::*;
use cano::recovery::StoreFuture;
use cano::{RunWriter, RunWriters};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    rows: HashMap<String, Vec<CheckpointRow>>,
    epochs: HashMap<String, u64>,
    /// The states of the rows written with `append_last`, in order.
    last_rows: Vec<String>,
}

/// A store that fences each run's writes by an epoch per id.
#[derive(Default, Clone)]
struct Fenced(Arc<Mutex<Inner>>);

impl Fenced {
    fn append_at(&self, id: &str, epoch: Option<u64>, row: CheckpointRow) -> Result<(), CanoError> {
        let mut inner = self.0.lock().unwrap();
        if let Some(epoch) = epoch {
            let current = inner.epochs.get(id).copied().unwrap_or(0);
            if current != epoch {
                return Err(CanoError::checkpoint_store(format!(
                    "fenced: run {id:?} was taken over (epoch {current}, this writer {epoch})"
                )));
            }
        }
        let rows = inner.rows.entry(id.to_string()).or_default();
        if rows.iter().any(|r| r.sequence == row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "checkpoint conflict at sequence {}",
                row.sequence
            )));
        }
        rows.push(row);
        Ok(())
    }

    fn rows(&self, id: &str) -> Vec<CheckpointRow> {
        let mut rows = self
            .0
            .lock()
            .unwrap()
            .rows
            .get(id)
            .cloned()
            .unwrap_or_default();
        rows.sort_by_key(|r| r.sequence);
        rows
    }
}

#[checkpoint_store]
impl Fenced {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        self.append_at(workflow_id, None, row)
    }
    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        Ok(self.rows(workflow_id))
    }
    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.0.lock().unwrap().rows.remove(workflow_id);
        Ok(())
    }
}

struct Writer {
    store: Fenced,
    id: String,
    epoch: u64,
}

impl RunWriter for Writer {
    fn append(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.store.append_at(&self.id, Some(self.epoch), row) })
    }
    fn append_last(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        self.store
            .0
            .lock()
            .unwrap()
            .last_rows
            .push(row.state.clone());
        self.append(row)
    }
    fn clear(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut inner = self.store.0.lock().unwrap();
            if inner.epochs.get(&self.id).copied().unwrap_or(0) != self.epoch {
                return Err(CanoError::checkpoint_store("fenced: clear refused"));
            }
            inner.rows.remove(&self.id);
            Ok(())
        })
    }
}

impl RunWriters for Fenced {
    fn writer<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Box<dyn RunWriter>> {
        Box::pin(async move {
            let epoch = {
                let mut inner = self.0.lock().unwrap();
                let epoch = inner.epochs.entry(workflow_id.to_string()).or_insert(0);
                *epoch += 1;
                *epoch
            };
            Ok(Box::new(Writer {
                store: self.clone(),
                id: workflow_id.to_string(),
                epoch,
            }) as Box<dyn RunWriter>)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Charge,
    Ship,
    Done,
}

/// Waits until told to go on (so a takeover can happen meanwhile).
struct Charge {
    started: Arc<Notify>,
    proceed: Arc<Notify>,
}

#[task(state = S)]
impl Charge {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.started.notify_one();
        self.proceed.notified().await;
        Ok(TaskResult::Single(S::Ship))
    }
}

struct Ship(Arc<AtomicU32>);

#[task(state = S)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(TaskResult::Single(S::Done))
    }
}

fn workflow(
    store: &Fenced,
    started: &Arc<Notify>,
    proceed: &Arc<Notify>,
    shipped: &Arc<AtomicU32>,
) -> Workflow<S> {
    Workflow::bare()
        .register(
            S::Charge,
            Charge {
                started: Arc::clone(started),
                proceed: Arc::clone(proceed),
            },
        )
        .register(S::Ship, Ship(Arc::clone(shipped)))
        .add_exit_state(S::Done)
        .with_run_writers(Arc::new(store.clone()))
        .with_workflow_id("order-1")
}

#[tokio::test]
async fn a_run_whose_writer_was_fenced_writes_nothing_more_and_starts_no_further_task() {
    let store = Fenced::default();
    let (started, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let shipped = Arc::new(AtomicU32::new(0));
    let wf = workflow(&store, &started, &proceed, &shipped);
    let run = tokio::spawn(async move { wf.orchestrate(S::Charge).await });
    started.notified().await;
    // Another worker takes the run over: its writer has the newer epoch.
    let other = store.writer("order-1").await.unwrap();
    proceed.notify_one();
    let err = run.await.unwrap().unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.to_string().contains("fenced"), "{err}");
    assert_eq!(
        shipped.load(Ordering::SeqCst),
        0,
        "no task after the takeover"
    );
    // Only the row written before the takeover is there; the new owner goes on from it.
    let rows = store.rows("order-1");
    assert_eq!(
        rows.iter()
            .map(|r| (r.sequence, r.state.as_str()))
            .collect::<Vec<_>>(),
        [(0, "Charge")]
    );
    other
        .append(CheckpointRow::new(1, "Ship", ""))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unfenced_run_writes_and_clears_through_its_writer() {
    let store = Fenced::default();
    let (started, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let shipped = Arc::new(AtomicU32::new(0));
    let wf = workflow(&store, &started, &proceed, &shipped);
    proceed.notify_one();
    assert_eq!(wf.orchestrate(S::Charge).await, Ok(S::Done));
    assert_eq!(shipped.load(Ordering::SeqCst), 1);
    assert!(store.rows("order-1").is_empty(), "cleared on success");
    // One writer per run: the run asked once.
    assert_eq!(store.0.lock().unwrap().epochs.get("order-1"), Some(&1));
    // The exit state's entry, and only it, came as the run's last row.
    assert_eq!(store.0.lock().unwrap().last_rows, ["Done"]);
}

#[tokio::test]
async fn a_resumed_run_gets_a_writer_of_its_own() {
    let store = Fenced::default();
    store
        .append_at("order-1", None, CheckpointRow::new(0, "Charge", ""))
        .unwrap();
    store
        .append_at("order-1", None, CheckpointRow::new(1, "Ship", ""))
        .unwrap();
    let (started, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let shipped = Arc::new(AtomicU32::new(0));
    let wf = workflow(&store, &started, &proceed, &shipped);
    assert_eq!(wf.resume_from("order-1").await, Ok(S::Done));
    assert_eq!(shipped.load(Ordering::SeqCst), 1);
    assert_eq!(store.0.lock().unwrap().epochs.get("order-1"), Some(&1));
    assert!(store.rows("order-1").is_empty());
}
