//! # Stepped task: resumable work with a struct cursor
//!
//! Run with: `cargo run -p cano --example stepped_task`
//!
//! A migration copies a customer table to a new database, one page per step, with a
//! `#[task::stepped]` state registered with [`Workflow::register_stepped`]. The cursor
//! is a struct (`Serialize`/`Deserialize`): the next page and a running row count.
//!
//! With a checkpoint store attached, the engine records every cursor as a
//! [`RowKind::StepCursor`] row (JSON) before the next step runs; the in-memory store in
//! this example, written with `#[checkpoint_store]`, prints each row as it arrives. The
//! target database drops its connection while page 3 is copied: the run fails and keeps
//! its log. Once the database is back, [`Workflow::resume_from`] continues from the last
//! recorded cursor, so pages 0–2 are not copied again.

use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const RUN_ID: &str = "migrate-customers";
const PAGES: u32 = 6;
const PAGE_SIZE: u64 = 250;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Migration {
    Plan,
    Copy,
    Verify,
    Done,
}

/// Progress of the copy: where to continue and how much is done.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    next_page: u32,
    rows_copied: u64,
}

/// The new database: the pages written to it, and whether the connection drops on
/// page 3. Clones share both, so `main` can watch the target the tasks write to.
#[derive(Clone, Default, Resource)]
struct Target {
    pages: Arc<Mutex<Vec<u32>>>,
    down: Arc<AtomicBool>,
}

impl Target {
    fn pages(&self) -> Vec<u32> {
        self.pages.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

struct Plan;

#[task(state = Migration)]
impl Plan {
    async fn run_bare(&self) -> Result<TaskResult<Migration>, CanoError> {
        println!("  plan: {PAGES} pages of {PAGE_SIZE} customers");
        Ok(TaskResult::Single(Migration::Copy))
    }
}

/// Copies one page per step.
struct CopyPages;

#[task::stepped(state = Migration)]
impl CopyPages {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn step(
        &self,
        res: &Resources,
        cursor: Option<Progress>,
    ) -> Result<StepOutcome<Progress, Migration>, CanoError> {
        let progress = cursor.unwrap_or(Progress {
            next_page: 0,
            rows_copied: 0,
        });
        let page = progress.next_page;
        let target = res.get::<Target, _>("target")?;
        if page == 3 && target.down.swap(false, Ordering::SeqCst) {
            println!("  copy: page {page} -> connection reset by peer");
            return Err(CanoError::task_execution(format!(
                "copy page {page}: connection reset by peer"
            )));
        }
        target
            .pages
            .lock()
            .map_err(|_| CanoError::task_execution("target poisoned"))?
            .push(page);
        let rows_copied = progress.rows_copied + PAGE_SIZE;
        println!("  copy: page {page} written ({rows_copied} rows so far)");
        if page + 1 == PAGES {
            res.get::<MemoryStore, _>("store")?
                .put("rows_copied", rows_copied)?;
            return Ok(StepOutcome::Done(TaskResult::Single(Migration::Verify)));
        }
        Ok(StepOutcome::More(Progress {
            next_page: page + 1,
            rows_copied,
        }))
    }
}

struct Verify;

#[task(state = Migration)]
impl Verify {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Migration>, CanoError> {
        let rows = res
            .get::<MemoryStore, _>("store")?
            .get::<u64>("rows_copied")?;
        println!("  verify: {rows} rows in the new table");
        Ok(TaskResult::Single(Migration::Done))
    }
}

/// An in-memory checkpoint log that prints every row it stores.
#[derive(Default)]
struct PrintingLog(Mutex<HashMap<String, Vec<CheckpointRow>>>);

fn describe(row: &CheckpointRow) -> String {
    let blob = match (&row.kind, &row.output_blob) {
        (RowKind::StepCursor, Some(blob)) => format!(" {}", String::from_utf8_lossy(blob)),
        _ => String::new(),
    };
    format!("#{:<2} {:<6} {:?}{blob}", row.sequence, row.state, row.kind)
}

#[checkpoint_store]
impl PrintingLog {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let mut runs = self
            .0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("log poisoned"))?;
        let rows = runs.entry(workflow_id.to_string()).or_default();
        if rows.iter().any(|r| r.sequence == row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "checkpoint conflict: {workflow_id:?} already has sequence {}",
                row.sequence
            )));
        }
        println!("    [row {}]", describe(&row));
        rows.push(row);
        Ok(())
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        let runs = self
            .0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("log poisoned"))?;
        let mut rows = runs.get(workflow_id).cloned().unwrap_or_default();
        rows.sort_by_key(|r| r.sequence);
        Ok(rows)
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("log poisoned"))?
            .remove(workflow_id);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let store = MemoryStore::new();
    let target = Target::default();
    target.down.store(true, Ordering::SeqCst);
    let log = Arc::new(PrintingLog::default());
    let workflow = Workflow::new(
        Resources::new()
            .insert("store", store.clone())
            .insert("target", target.clone()),
    )
    .register(Migration::Plan, Plan)
    .register_stepped(Migration::Copy, CopyPages)
    .register(Migration::Verify, Verify)
    .add_exit_state(Migration::Done)
    .with_checkpoint_store(log.clone())
    .with_workflow_id(RUN_ID);

    println!("=== first run: the target database drops during page 3 ===");
    let err = match workflow.orchestrate(Migration::Plan).await {
        Ok(state) => return Err(format!("expected a failure, got {state:?}").into()),
        Err(err) => err,
    };
    println!("first run stopped: {err}");

    let rows = log.load_run(RUN_ID).await?;
    println!("\ncheckpoint log kept for resume:");
    for row in &rows {
        println!("  {}", describe(row));
    }
    let last = rows.last().ok_or("the failed run left no log")?;
    assert_eq!(last.kind, RowKind::StepCursor);
    let cursor: Progress = serde_json::from_slice(last.output_blob.as_deref().unwrap_or(b"{}"))
        .map_err(|e| CanoError::generic(format!("decode cursor: {e}")))?;
    println!("last cursor: {cursor:?}");

    println!("\n=== resume: the database is back; copying continues at page 3 ===");
    let end = workflow.resume_from(RUN_ID).await?;
    println!("resumed run finished in {end:?}");

    let pages = target.pages();
    println!("\npages written to the target, in order: {pages:?}");
    assert_eq!(end, Migration::Done);
    assert_eq!(
        pages,
        (0..PAGES).collect::<Vec<_>>(),
        "a page was copied twice"
    );
    assert_eq!(
        store.get::<u64>("rows_copied")?,
        u64::from(PAGES) * PAGE_SIZE
    );
    assert!(log.load_run(RUN_ID).await?.is_empty());
    println!("each page copied exactly once; the log was cleared on success");
    Ok(())
}
