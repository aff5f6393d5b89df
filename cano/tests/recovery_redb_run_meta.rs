//! The redb store's side table of run times and failure marks: it survives a clean close
//! (the write-ahead log folded into the file) and a crash (the log replayed on open), and a
//! file written by cano 0.12.0, which has no such table, opens and lists with no times.
#![cfg(feature = "recovery")]

use cano::prelude::*;
use cano::{ListRuns, RunStatus, RunSummary};
use std::path::Path;
use std::sync::Arc;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/reference-0.12.0.redb"
);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Work,
    Done,
}

struct Fails;

#[task(state = Step)]
impl Fails {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Err(CanoError::task_execution("disk quota exceeded"))
    }
}

async fn listed(store: &RedbCheckpointStore) -> Vec<RunSummary> {
    store.list_runs().await.expect("list")
}

fn open(path: &Path) -> RedbCheckpointStore {
    RedbCheckpointStore::new(path).expect("open")
}

/// A run that failed through the store's run writers, and one that is in flight.
async fn write_runs(store: &RedbCheckpointStore) {
    let err = Workflow::bare()
        .register(Step::Work, Fails)
        .add_exit_state(Step::Done)
        .with_run_writers(Arc::new(store.clone()))
        .with_workflow_id("failed")
        .orchestrate(Step::Work)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("quota"), "{err}");
    store
        .append("in-flight", CheckpointRow::new(0, "Work", "work"))
        .await
        .unwrap();
}

fn check(runs: &[RunSummary], what: &str) {
    assert_eq!(runs.len(), 2, "{what}: {runs:?}");
    let failed = &runs[0];
    assert_eq!(failed.workflow_id, "failed");
    assert!(
        matches!(&failed.status, RunStatus::Failed { error } if error.contains("disk quota exceeded")),
        "{what}: {:?}",
        failed.status
    );
    let in_flight = &runs[1];
    assert_eq!(in_flight.status, RunStatus::Forward, "{what}");
    for run in runs {
        let (started, updated) = (run.started_ms, run.updated_ms);
        assert!(started.is_some() && updated >= started, "{what}: {run:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_and_failure_marks_survive_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.redb");
    let store = open(&path);
    write_runs(&store).await;
    let before = listed(&store).await;
    check(&before, "before closing");
    drop(store);
    assert!(!dir.path().join("ckpt.redb-wal").exists(), "folded");
    let store = open(&path);
    let after = listed(&store).await;
    assert_eq!(after, before, "read back from the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_and_failure_marks_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.redb");
    let store = open(&path);
    write_runs(&store).await;
    let before = listed(&store).await;
    // The files as a crash would leave them: the newest writes in the log only.
    let image = tempfile::tempdir().unwrap();
    for name in ["ckpt.redb", "ckpt.redb-wal"] {
        std::fs::copy(dir.path().join(name), image.path().join(name)).unwrap();
    }
    drop(store);
    let store = open(&image.path().join("ckpt.redb"));
    let replayed = listed(&store).await;
    check(&replayed, "after the crash");
    assert_eq!(replayed, before, "replayed from the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_cano_0_12_lists_its_runs_with_no_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.redb");
    std::fs::copy(FIXTURE, &path).expect("copy the fixture");
    let store = open(&path);
    let runs = listed(&store).await;
    assert_eq!(runs.len(), 7, "{runs:?}");
    for run in &runs {
        assert_eq!((run.started_ms, run.updated_ms), (None, None), "{run:?}");
        assert!(!matches!(run.status, RunStatus::Failed { .. }), "{run:?}");
    }
    // A row written now has a time; the run's start stays unknown, through a reopen.
    store
        .append("plain-failed", CheckpointRow::new(2, "Work", "work"))
        .await
        .unwrap();
    let check = |runs: Vec<RunSummary>| {
        let run = runs
            .into_iter()
            .find(|r| r.workflow_id == "plain-failed")
            .expect("listed");
        assert_eq!(run.started_ms, None, "written before times were kept");
        assert!(run.updated_ms.is_some(), "{run:?}");
    };
    check(listed(&store).await);
    drop(store);
    let store = open(&path);
    check(listed(&store).await);
    let others = listed(&store).await;
    let untouched = others.iter().find(|r| r.workflow_id == "at-exit").unwrap();
    assert_eq!((untouched.started_ms, untouched.updated_ms), (None, None));
}
