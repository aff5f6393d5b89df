//! Workflow versions: a run's log records the version it was started under, and only a
//! workflow of that version resumes it.

use cano::prelude::*;
use cano::{ListRuns, MemoryCheckpointStore, RunStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Reserve,
    Ship,
    Done,
}

/// Counts runs and compensations; `fail` fails `Ship`, `undo_fails` fails the undo.
#[derive(Clone, Default)]
struct Probe {
    runs: Arc<AtomicUsize>,
    undone: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
    undo_fails: Arc<AtomicBool>,
}

struct Ship(Probe);

#[task(state = S)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.0.runs.fetch_add(1, Ordering::SeqCst);
        if self.0.fail.load(Ordering::SeqCst) {
            return Err(CanoError::task_execution("carrier down"));
        }
        Ok(TaskResult::Single(S::Done))
    }
}

struct Reserve(Probe);

#[saga::task(state = S)]
impl Reserve {
    type Output = u32;
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        self.0.runs.fetch_add(1, Ordering::SeqCst);
        Ok((TaskResult::Single(S::Ship), 7))
    }
    async fn compensate(&self, _res: &Resources, _output: u32) -> Result<(), CanoError> {
        if self.0.undo_fails.load(Ordering::SeqCst) {
            return Err(CanoError::task_execution("warehouse unreachable"));
        }
        self.0.undone.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn workflow(store: &Arc<MemoryCheckpointStore>, probe: &Probe, version: u32) -> Workflow<S> {
    let wf = Workflow::bare()
        .register_with_compensation(S::Reserve, Reserve(probe.clone()))
        .register(S::Ship, Ship(probe.clone()))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone());
    if version == 0 {
        wf // the default, never set
    } else {
        wf.with_workflow_version(version)
    }
}

#[tokio::test]
async fn a_run_resumes_only_under_its_own_version() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let probe = Probe::default();
    probe.fail.store(true, Ordering::SeqCst);
    let v1 = workflow(&store, &probe, 1);
    assert_eq!(v1.workflow_version(), 1);
    let err = v1
        .clone()
        .with_workflow_id("order-1")
        .orchestrate(S::Ship)
        .await
        .unwrap_err();
    assert_eq!(err.message(), "carrier down");
    let rows = store.load_run("order-1").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].output_blob.as_deref(),
        Some(&br#"{"version":1}"#[..]),
        "the first row records the version"
    );
    probe.fail.store(false, Ordering::SeqCst);
    let runs = probe.runs.load(Ordering::SeqCst);

    for other in [0, 2, u32::MAX] {
        let err = workflow(&store, &probe, other)
            .resume_from("order-1")
            .await
            .unwrap_err();
        assert_eq!(err.workflow_version_mismatch_versions(), Some((1, other)));
        assert_eq!(err.category(), "workflow");
        assert_eq!(
            err.to_string(),
            format!(
                "Workflow error: Workflow version mismatch: the checkpoint log was written by \
                 version 1, this workflow is version {other} (run \"order-1\"); resume it with \
                 a workflow of version 1, or clear its log"
            )
        );
    }
    assert_eq!(probe.runs.load(Ordering::SeqCst), runs, "nothing ran");
    assert_eq!(
        store.load_run("order-1").await.unwrap(),
        rows,
        "nothing written"
    );

    assert_eq!(v1.resume_from("order-1").await, Ok(S::Done));
    assert!(store.load_run("order-1").await.unwrap().is_empty());
}

#[tokio::test]
async fn version_0_writes_the_log_0_12_0_writes() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let probe = Probe::default();
    probe.fail.store(true, Ordering::SeqCst);
    let wf = workflow(&store, &probe, 0).with_workflow_id("plain");
    assert!(wf.orchestrate(S::Ship).await.is_err());
    let rows = store.load_run("plain").await.unwrap();
    assert_eq!(
        rows,
        [CheckpointRow::new(0, "Ship", rows[0].task_id.clone())]
    );
    assert_eq!(store.list_runs().await.unwrap()[0].version, 0);
    // Explicitly version 0 is the same workflow.
    probe.fail.store(false, Ordering::SeqCst);
    let explicit = workflow(&store, &probe, 1).with_workflow_version(0);
    assert_eq!(explicit.resume_from("plain").await, Ok(S::Done));
}

#[tokio::test]
async fn a_rollback_is_not_finished_by_another_version() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let probe = Probe::default();
    probe.fail.store(true, Ordering::SeqCst);
    probe.undo_fails.store(true, Ordering::SeqCst);
    let v3 = workflow(&store, &probe, 3).with_workflow_id("saga");
    // Reserve completes, Ship fails, undoing Reserve fails: the rollback stays in the log.
    let err = v3.orchestrate(S::Reserve).await.unwrap_err();
    assert_eq!(err.category(), "compensation_failed");
    let rows = store.load_run("saga").await.unwrap();
    assert!(rows.iter().any(|r| r.kind == RowKind::RollbackStarted));
    let summary = &store.list_runs().await.unwrap()[0];
    assert_eq!(summary.version, 3);
    assert!(matches!(
        summary.status,
        RunStatus::RollingBack { remaining: 1 }
    ));

    probe.undo_fails.store(false, Ordering::SeqCst);
    let err = workflow(&store, &probe, 4)
        .resume_from("saga")
        .await
        .unwrap_err();
    assert_eq!(err.workflow_version_mismatch_versions(), Some((3, 4)));
    assert_eq!(probe.undone.load(Ordering::SeqCst), 0, "nothing was undone");
    assert_eq!(store.load_run("saga").await.unwrap(), rows);

    let err = workflow(&store, &probe, 3)
        .resume_from("saga")
        .await
        .unwrap_err();
    assert_eq!(err.message(), "carrier down", "the rollback finished");
    assert_eq!(probe.undone.load(Ordering::SeqCst), 1);
    assert!(store.load_run("saga").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_state_the_workflow_no_longer_has_is_reported_and_skipped() {
    #[derive(Default)]
    struct Unknown(std::sync::Mutex<Vec<(u64, String)>>);
    impl WorkflowObserver for Unknown {
        fn on_unknown_resume_state(&self, workflow_id: &str, sequence: u64, state: &str) {
            assert_eq!(workflow_id, "old");
            self.0.lock().unwrap().push((sequence, state.to_string()));
        }
    }
    let store = Arc::new(MemoryCheckpointStore::new());
    // Written by an older build that had a `Weigh` state before `Ship`.
    store
        .append("old", CheckpointRow::new(0, "Weigh", "weigh"))
        .await
        .unwrap();
    store
        .append("old", CheckpointRow::new(1, "Ship", "ship"))
        .await
        .unwrap();
    let probe = Probe::default();
    let seen = Arc::new(Unknown::default());
    let wf = workflow(&store, &probe, 0).with_observer(seen.clone());
    assert_eq!(wf.resume_from("old").await, Ok(S::Done));
    assert_eq!(*seen.0.lock().unwrap(), [(0, "Weigh".to_string())]);

    // A resume point in such a state cannot be resumed.
    store
        .append("gone", CheckpointRow::new(0, "Weigh", "weigh"))
        .await
        .unwrap();
    let err = wf.resume_from("gone").await.unwrap_err();
    assert!(
        err.message().contains("\"Weigh\" is not a registered"),
        "{err}"
    );
}
