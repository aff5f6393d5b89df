//! Listing the runs a store holds (`ListRuns`): which runs have a log, where each stopped,
//! and whether a rollback is pending — for the memory store, and for redb through its
//! write-ahead log, across folds and reopens.

use cano::prelude::*;
use cano::recovery::MemoryCheckpointStore;
use cano::{ListRuns, RunStatus, RunSummary};
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Reserve,
    Ship,
    Done,
}

struct Reserve;

#[saga::task(state = S)]
impl Reserve {
    type Output = u32;
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        "reserve".into()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        Ok((TaskResult::Single(S::Ship), 1))
    }
    async fn compensate(&self, _res: &Resources, _output: u32) -> Result<(), CanoError> {
        Err(CanoError::task_execution("stock service down"))
    }
}

struct Ship {
    fails: bool,
}

#[task(state = S)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        if self.fails {
            Err(CanoError::task_execution("carrier down"))
        } else {
            Ok(TaskResult::Single(S::Done))
        }
    }
}

fn summaries(mut runs: Vec<RunSummary>) -> Listed {
    runs.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
    runs.into_iter()
        .map(|r| {
            (
                r.workflow_id,
                r.last_state,
                r.last_sequence,
                r.rows,
                r.status,
            )
        })
        .collect()
}

type Listed = Vec<(String, String, u64, usize, RunStatus)>;

/// Leave three runs behind in `store` (one finished, one failed forward, one whose
/// rollback failed), check its listing, and return what it listed.
async fn leave_runs<St: ListRuns>(store: Arc<St>) -> Listed {
    let run = |id: &str, saga: bool, fails: bool| {
        let wf = Workflow::bare()
            .register(S::Ship, Ship { fails })
            .add_exit_state(S::Done)
            .with_checkpoint_store(store.clone())
            .with_workflow_id(id);
        if saga {
            wf.register_with_compensation(S::Reserve, Reserve)
        } else {
            wf
        }
    };
    assert!(store.list_runs().await.unwrap().is_empty());
    // Finished: cleared, not listed.
    assert_eq!(
        run("done", false, false).orchestrate(S::Ship).await,
        Ok(S::Done)
    );
    // Failed forward: the log stops at Ship.
    assert!(
        run("failed", false, true)
            .orchestrate(S::Ship)
            .await
            .is_err()
    );
    // Failed, and its rollback failed too: one step left to compensate.
    let err = run("stuck", true, true)
        .orchestrate(S::Reserve)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "compensation_failed");
    let expected = vec![
        (
            "failed".to_string(),
            "Ship".to_string(),
            0,
            1,
            RunStatus::Forward,
        ),
        (
            "stuck".to_string(),
            "Ship".to_string(),
            3,
            4,
            RunStatus::RollingBack { remaining: 1 },
        ),
    ];
    assert_eq!(summaries(store.list_runs().await.unwrap()), expected);
    expected
}

#[tokio::test]
async fn the_memory_store_lists_the_runs_it_holds_and_where_each_stands() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let expected = leave_runs(store.clone()).await;
    store.clear("failed").await.unwrap();
    assert_eq!(
        summaries(store.list_runs().await.unwrap()),
        expected[1..].to_vec()
    );
}

#[cfg(feature = "recovery")]
#[tokio::test]
async fn a_redb_store_lists_the_runs_it_holds_through_folds_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());
    let expected = leave_runs(store.clone()).await;
    // The same after the write-ahead log is folded into the file and the file reopened.
    drop(store);
    let store = RedbCheckpointStore::new(&path).unwrap();
    assert_eq!(summaries(store.list_runs().await.unwrap()), expected);
    // A clear shows at once, before any fold.
    store.clear("failed").await.unwrap();
    assert_eq!(
        summaries(store.list_runs().await.unwrap()),
        expected[1..].to_vec()
    );
}
