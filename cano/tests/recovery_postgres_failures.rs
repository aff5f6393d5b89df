//! Failure marks on PostgreSQL (`cano_run_failures`, schema version 5): a leased run that
//! fails is marked under its lease's epoch; a takeover (a new epoch) hides the mark, and a
//! writer whose run was taken over cannot mark it.
//!
//! On a throwaway server (`pg_support`); without PostgreSQL the tests print why they skip,
//! and fail when `CANO_REQUIRE_POSTGRES=1`.
#![cfg(feature = "postgres")]

mod pg_support;

use cano::prelude::*;
use cano::{ListRuns, RunStatus, RunWriters};
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Work,
    Done,
}

struct Fails;

#[task(state = S)]
impl Fails {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        Err(CanoError::task_execution("the ledger is locked"))
    }
}

async fn status(store: &PostgresCheckpointStore, id: &str) -> Option<RunStatus> {
    store.run_summary(id).await.unwrap().map(|s| s.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_hides_the_mark_and_fences_the_old_writer() {
    let Some(url) = pg_support::fresh_database("failures").await else {
        return;
    };
    let a = pg_support::worker(&url, "worker-a", LEASE).await;
    let err = Workflow::bare()
        .register(S::Work, Fails)
        .add_exit_state(S::Done)
        .with_run_writers(Arc::new(a.clone()))
        .with_workflow_id("order-5")
        .orchestrate(S::Work)
        .await
        .unwrap_err();
    assert_eq!(
        status(&a, "order-5").await,
        Some(RunStatus::Failed {
            error: err.to_string()
        })
    );
    // Another worker takes the run over once the lease ran out: the mark was worker a's.
    tokio::time::sleep(LEASE + Duration::from_millis(150)).await;
    let b = pg_support::worker(&url, "worker-b", Duration::from_secs(60)).await;
    let lease = b.claim("order-5").await.expect("claim");
    assert_eq!(lease.epoch(), 2);
    assert_eq!(status(&b, "order-5").await, Some(RunStatus::Forward));
    let listed = b.list_runs().await.unwrap();
    assert_eq!(listed[0].status, RunStatus::Forward);

    // A writer of a run taken over cannot mark it.
    let stale = a.writer("order-6").await.expect("a's writer");
    stale
        .append(CheckpointRow::new(0, "Work", "work"))
        .await
        .unwrap();
    tokio::time::sleep(LEASE + Duration::from_millis(150)).await;
    b.claim("order-6").await.expect("takeover");
    let refused = stale
        .finished_with_error(&CanoError::task_execution("late"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("fenced"), "{refused}");
    assert_eq!(status(&b, "order-6").await, Some(RunStatus::Forward));

    // The new holder's run fails too: marked under its epoch; its next row unmarks it.
    let fresh = b.writer("order-6").await.expect("b's writer");
    fresh
        .finished_with_error(&CanoError::task_execution("ledger still locked"))
        .await
        .unwrap();
    assert!(matches!(
        status(&b, "order-6").await,
        Some(RunStatus::Failed { error }) if error.contains("ledger still locked")
    ));
    fresh
        .append(CheckpointRow::new(1, "Work", "work"))
        .await
        .unwrap();
    assert_eq!(status(&b, "order-6").await, Some(RunStatus::Forward));
    // A fenced clear takes the mark with the log.
    fresh
        .finished_with_error(&CanoError::task_execution("again"))
        .await
        .unwrap();
    fresh.clear().await.unwrap();
    assert_eq!(status(&b, "order-6").await, None);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let marks: i64 = client
        .query_one(
            "SELECT count(*) FROM cano_run_failures WHERE workflow_id = 'order-6'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(marks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_of_a_run_without_a_log_is_not_kept() {
    let Some(url) = pg_support::fresh_database("failures_nolog").await else {
        return;
    };
    let a = pg_support::worker(&url, "worker-a", Duration::from_secs(60)).await;
    let writer = a.writer("never-written").await.unwrap();
    writer
        .finished_with_error(&CanoError::task_execution("nothing ran"))
        .await
        .unwrap();
    assert_eq!(status(&a, "never-written").await, None);
    a.append("never-written", CheckpointRow::new(0, "Work", "work"))
        .await
        .unwrap();
    assert_eq!(status(&a, "never-written").await, Some(RunStatus::Forward));
}
