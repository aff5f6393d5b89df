//! # Workflow versions: a log written by one version of a workflow is not resumed by another
//!
//! Run with:
//! `cargo run -p cano --example workflow_versions`
//!
//! Version 1 of an import workflow is `Fetch → Parse → Done`; its run `import-7` fails in
//! `Parse` and leaves its checkpoint log behind. Version 2 renamed and split the states,
//! so it must not pick that log up: its `resume_from` fails before running anything, with
//! an error that names both versions, and the log is left as it was. The program then
//! lists the run (its version is in the summary) and resumes it with version 1, which
//! finishes it. Runs started by a workflow that never called `with_workflow_version`, and
//! every log written by cano 0.12.0, are version 0.

use cano::prelude::*;
use cano::{ListRuns, MemoryCheckpointStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Import {
    Fetch,
    Parse,
    Done,
}

struct Fetch;

#[task(state = Import)]
impl Fetch {
    async fn run_bare(&self) -> Result<TaskResult<Import>, CanoError> {
        println!("  fetch: 120 records");
        Ok(TaskResult::Single(Import::Parse))
    }
}

/// Fails while the input is malformed.
struct Parse(Arc<AtomicBool>);

#[task(state = Import)]
impl Parse {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Import>, CanoError> {
        if self.0.load(Ordering::SeqCst) {
            return Err(CanoError::task_execution("record 37 is malformed"));
        }
        println!("  parse: 120 records");
        Ok(TaskResult::Single(Import::Done))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), CanoError> {
    let store = Arc::new(MemoryCheckpointStore::new());
    let malformed = Arc::new(AtomicBool::new(true));
    let import = |version| {
        Workflow::bare()
            .register(Import::Fetch, Fetch)
            .register(Import::Parse, Parse(malformed.clone()))
            .add_exit_state(Import::Done)
            .with_checkpoint_store(store.clone())
            .with_workflow_version(version)
    };

    println!("version 1 starts import-7:");
    let err = import(1)
        .with_workflow_id("import-7")
        .orchestrate(Import::Fetch)
        .await
        .unwrap_err();
    println!("  failed: {err}");
    let rows = store.load_run("import-7").await?;
    println!("  its log keeps {} rows", rows.len());

    println!("version 2 tries to resume it:");
    let err = import(2).resume_from("import-7").await.unwrap_err();
    println!("  refused: {err}");
    assert_eq!(err.workflow_version_mismatch_versions(), Some((1, 2)));
    assert_eq!(
        store.load_run("import-7").await?,
        rows,
        "the log is untouched"
    );

    for run in store.list_runs().await? {
        println!(
            "listed: {} at {} (version {}, {} rows)",
            run.workflow_id, run.last_state, run.version, run.rows
        );
    }

    println!("version 1 resumes it:");
    malformed.store(false, Ordering::SeqCst);
    let end = import(1).resume_from("import-7").await?;
    println!(
        "  finished in {end:?}; log cleared: {}",
        store.load_run("import-7").await?.is_empty()
    );
    Ok(())
}
