//! When the engine tells a run's writer that the run failed (`RunWriter::finished_with_error`):
//! once, when a run with a writer ends in an error and keeps its log; never when the run
//! succeeded, rolled back cleanly, or was refused over another run's log; and a failing
//! call does not change the run's result.

use cano::cancel::CancellationToken;
use cano::prelude::*;
use cano::recovery::{MemoryCheckpointStore, StoreFuture};
use cano::{ListRuns, RunStatus, RunWriter, RunWriters};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A memory store whose writers record each `finished_with_error` call (and can refuse it).
#[derive(Clone, Default)]
struct Recording {
    store: MemoryCheckpointStore,
    calls: Arc<Mutex<Vec<(String, String)>>>,
    refuse: Arc<AtomicBool>,
}

#[checkpoint_store]
impl Recording {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        self.store.append(workflow_id, row).await
    }
    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        self.store.load_run(workflow_id).await
    }
    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.store.clear(workflow_id).await
    }
}

impl RunWriters for Recording {
    fn writer<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Box<dyn RunWriter>> {
        Box::pin(async move {
            Ok(Box::new(Writer {
                inner: self.store.writer(workflow_id).await?,
                id: workflow_id.to_owned(),
                owner: self.clone(),
            }) as Box<dyn RunWriter>)
        })
    }
}

struct Writer {
    inner: Box<dyn RunWriter>,
    id: String,
    owner: Recording,
}

impl RunWriter for Writer {
    fn append(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        self.inner.append(row)
    }
    fn clear(&self) -> StoreFuture<'_, ()> {
        self.inner.clear()
    }
    fn finished_with_error<'a>(&'a self, error: &'a CanoError) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let call = (self.id.clone(), error.to_string());
            self.owner.calls.lock().unwrap().push(call);
            if self.owner.refuse.load(Ordering::SeqCst) {
                return Err(CanoError::checkpoint_store("the mark could not be written"));
            }
            self.inner.finished_with_error(error).await
        })
    }
}

impl Recording {
    fn calls(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    async fn status(&self, id: &str) -> Option<RunStatus> {
        self.store.run_summary(id).await.unwrap().map(|s| s.status)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Reserve,
    Work,
    Done,
}

struct Work {
    fail: bool,
    delay: Duration,
}

#[task(state = S)]
impl Work {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(CanoError::task_execution("out of stock"));
        }
        Ok(TaskResult::Single(S::Done))
    }
}

struct Reserve {
    compensation_fails: bool,
}

#[saga::task]
impl CompensatableTask<S> for Reserve {
    type Output = u32;
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "reserve".into()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        Ok((TaskResult::Single(S::Work), 7))
    }
    async fn compensate(&self, _res: &Resources, _output: u32) -> Result<(), CanoError> {
        if self.compensation_fails {
            return Err(CanoError::task_execution("the refund bounced"));
        }
        Ok(())
    }
}

fn work(store: &Recording, fail: bool) -> Workflow<S> {
    Workflow::bare()
        .register(
            S::Work,
            Work {
                fail,
                delay: Duration::ZERO,
            },
        )
        .add_exit_state(S::Done)
        .with_run_writers(Arc::new(store.clone()))
}

#[tokio::test]
async fn a_failed_run_is_reported_once_and_a_successful_one_never() {
    let store = Recording::default();
    let err = work(&store, true)
        .with_workflow_id("r1")
        .orchestrate(S::Work)
        .await
        .unwrap_err();
    assert_eq!(store.calls(), [("r1".to_owned(), err.to_string())]);
    assert_eq!(
        store.status("r1").await,
        Some(RunStatus::Failed {
            error: err.to_string()
        })
    );
    // The resumed run succeeds: no call, and the log (with its mark) is gone.
    work(&store, false).resume_from("r1").await.unwrap();
    assert_eq!(store.calls(), []);
    assert_eq!(store.status("r1").await, None);
    work(&store, false)
        .with_workflow_id("r2")
        .orchestrate(S::Work)
        .await
        .unwrap();
    assert_eq!(store.calls(), []);
}

#[tokio::test]
async fn a_refused_mark_is_reported_and_the_run_keeps_its_own_error() {
    let store = Recording::default();
    store.refuse.store(true, Ordering::SeqCst);
    let err = work(&store, true)
        .with_workflow_id("r1")
        .orchestrate(S::Work)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("out of stock"), "{err}");
    assert_eq!(store.calls().len(), 1);
    assert_eq!(store.status("r1").await, Some(RunStatus::Forward));
}

#[tokio::test]
async fn a_fresh_run_refused_over_another_runs_log_does_not_mark_it() {
    let store = Recording::default();
    store
        .append("taken", CheckpointRow::new(0, "Work", "work"))
        .await
        .unwrap();
    let err = work(&store, false)
        .with_workflow_id("taken")
        .orchestrate(S::Work)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("conflict"), "{err}");
    assert_eq!(store.calls(), [], "the log is not this run's");
    assert_eq!(store.status("taken").await, Some(RunStatus::Forward));
}

#[tokio::test]
async fn a_clean_rollback_clears_the_log_and_marks_nothing_a_failed_one_marks() {
    for compensation_fails in [false, true] {
        let store = Recording::default();
        let err = Workflow::bare()
            .register_with_compensation(S::Reserve, Reserve { compensation_fails })
            .register(
                S::Work,
                Work {
                    fail: true,
                    delay: Duration::ZERO,
                },
            )
            .add_exit_state(S::Done)
            .with_run_writers(Arc::new(store.clone()))
            .with_workflow_id("saga")
            .orchestrate(S::Reserve)
            .await
            .unwrap_err();
        if compensation_fails {
            assert_eq!(store.calls(), [("saga".to_owned(), err.to_string())]);
            assert!(matches!(
                store.status("saga").await,
                Some(RunStatus::Failed { error }) if error.contains("refund bounced")
            ));
        } else {
            assert_eq!(store.calls(), [], "rolled back: {err}");
            assert_eq!(store.status("saga").await, None);
        }
    }
}

#[tokio::test]
async fn a_run_stopped_by_its_timeout_or_a_cancel_is_marked() {
    let store = Recording::default();
    let slow = || {
        Workflow::bare()
            .register(
                S::Work,
                Work {
                    fail: false,
                    delay: Duration::from_secs(30),
                },
            )
            .add_exit_state(S::Done)
            .with_run_writers(Arc::new(store.clone()))
    };
    let err = slow()
        .with_timeout(Duration::from_millis(50))
        .with_workflow_id("slow")
        .orchestrate(S::Work)
        .await
        .unwrap_err();
    assert_eq!(store.calls(), [("slow".to_owned(), err.to_string())]);
    let (handle, token) = CancellationToken::new();
    let run = tokio::spawn({
        let wf = slow().with_workflow_id("cancelled");
        async move { wf.orchestrate_with_token(S::Work, token).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(store.calls(), [("cancelled".to_owned(), err.to_string())]);
    let listed = store.store.list_runs().await.unwrap();
    assert!(
        listed
            .iter()
            .all(|r| matches!(r.status, RunStatus::Failed { .. })),
        "{listed:?}"
    );
}
