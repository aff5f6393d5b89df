//! What one scheduled run is: the workflow's state machine under its global timeout, with
//! checkpointing under a per-run log id, observers, and panics turned into failures
//! (the timeout and log-id differences from 0.12.0 are in COMPATIBILITY.md).
#![cfg(feature = "scheduler")]

mod scheduler_support;
mod support;

use cano::prelude::*;
use scheduler_support::{Job, Step, info, settle, wait_until, workflow};
use std::sync::Arc;
use std::time::Duration;
use support::{Recorder, TestStore, triples};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The checkpoint log id of the flow's latest run, as the scheduler docs define it.
fn log_id(base: &str, flow: &FlowInfo) -> String {
    format!(
        "{base}@{}-{}",
        flow.run_count,
        flow.last_run.unwrap().timestamp_millis()
    )
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_run_honours_the_workflow_timeout() {
    let job = Job::new().taking(ms(300));
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job).with_timeout(ms(50)), Step::Run)
        .unwrap();
    let running = s.start().await.unwrap();
    running.trigger("m").await.unwrap();
    tokio::time::sleep(ms(60)).await;
    let timed_out = info(&running, "m").await;
    let Status::Backoff { last_error, .. } = &timed_out.status else {
        panic!("{timed_out:?}");
    };
    assert_eq!(last_error, "Workflow error: Workflow timeout exceeded");
    assert_eq!(job.active(), 0, "the run was cancelled at the timeout");
    running.stop().await.unwrap();

    // Runs that fit the timeout complete.
    let job = Job::new().taking(ms(30));
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job).with_timeout(ms(50)), Step::Run)
        .unwrap();
    let running = s.start().await.unwrap();
    running.trigger("m").await.unwrap();
    tokio::time::sleep(ms(60)).await;
    assert_eq!(info(&running, "m").await.status, Status::Completed);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_checkpointed_run_writes_its_own_log() {
    let store = TestStore::new();
    let job = Job::new().failing();
    let checkpointed = |job: &Job| {
        workflow(job)
            .with_checkpoint_store(store.clone())
            .with_workflow_id("nightly")
    };
    let mut s = Scheduler::new();
    s.manual("m", checkpointed(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();

    // Run 1 fails with nothing to compensate: its log is kept for a resume.
    running.trigger("m").await.unwrap();
    settle().await;
    let first = info(&running, "m").await;
    let first_id = log_id("nightly", &first);
    assert_eq!(store.summary(&first_id), triples(&[(0, "Run", "job")]));

    // Run 2 (a trigger bypasses the backoff) starts a log of its own at sequence 0 instead
    // of conflicting with run 1's, and fails with the job's error.
    tokio::time::sleep(ms(5)).await;
    running.trigger("m").await.unwrap();
    settle().await;
    let second = info(&running, "m").await;
    let Status::Backoff {
        last_error,
        streak: 2,
        ..
    } = &second.status
    else {
        panic!("{second:?}");
    };
    assert_eq!(last_error, "Task execution error: job failed");
    let second_id = log_id("nightly", &second);
    assert_ne!(first_id, second_id);
    assert_eq!(store.summary(&second_id), triples(&[(0, "Run", "job")]));
    assert_eq!(
        store.summary(&first_id).len(),
        1,
        "run 1's log is untouched"
    );

    // Run 3 succeeds: its log is cleared; the kept logs stay.
    job.set_mode(scheduler_support::Mode::Succeed);
    tokio::time::sleep(ms(5)).await;
    running.trigger("m").await.unwrap();
    settle().await;
    let third = info(&running, "m").await;
    assert_eq!(third.status, Status::Completed);
    let third_id = log_id("nightly", &third);
    assert!(store.summary(&third_id).is_empty());
    assert_eq!(
        store.audit(&third_id),
        triples(&[(0, "Run", "job"), (1, "Done", "")])
    );
    running.stop().await.unwrap();

    // A kept log resumes under its id.
    let resumed = checkpointed(&job).resume_from(first_id.as_str()).await;
    assert_eq!(resumed, Ok(Step::Done));
    assert!(store.summary(&first_id).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_checkpointed_flow_without_a_workflow_id_uses_the_flow_id() {
    let store = TestStore::new();
    let job = Job::new();
    let mut s = Scheduler::new();
    s.every_hours(
        "hourly-sync",
        workflow(&job).with_checkpoint_store(store.clone()),
        Step::Run,
        1,
    )
    .unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    let first = info(&running, "hourly-sync").await;
    assert_eq!(first.status, Status::Completed);
    let id = log_id("hourly-sync", &first);
    assert!(id.starts_with("hourly-sync@1-"), "{id}");
    assert_eq!(
        store.audit(&id),
        triples(&[(0, "Run", "job"), (1, "Done", "")])
    );

    tokio::time::sleep(Duration::from_secs(3601)).await;
    let second = info(&running, "hourly-sync").await;
    assert_eq!(second.run_count, 2);
    let id = log_id("hourly-sync", &second);
    assert!(id.starts_with("hourly-sync@2-"), "{id}");
    assert_eq!(store.audit(&id).len(), 2);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn observers_see_every_scheduled_run() {
    let recorder = Recorder::new();
    let job = Job::new();
    let mut s = Scheduler::new();
    s.every_seconds(
        "observed",
        workflow(&job).with_observer(recorder.clone()),
        Step::Run,
        10,
    )
    .unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(25)).await;
    running.stop().await.unwrap();
    let once = ["enter:Run", "start:job", "success:job", "enter:Done"];
    let expected: Vec<&str> = once.iter().cycle().take(12).copied().collect();
    assert_eq!(recorder.events(), expected);
}

/// A checkpoint store whose appends panic: a panic that escapes the run (observer panics
/// are caught by the engine, store panics are not).
struct PanickyStore;

#[checkpoint_store]
impl CheckpointStore for PanickyStore {
    async fn append(&self, _workflow_id: &str, _row: CheckpointRow) -> Result<(), CanoError> {
        panic!("store exploded")
    }
    async fn load_run(&self, _workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        Ok(Vec::new())
    }
    async fn clear(&self, _workflow_id: &str) -> Result<(), CanoError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_run_is_recorded_as_a_failure() {
    let job = Job::new();
    let mut s = Scheduler::new();
    let wf = workflow(&job)
        .with_checkpoint_store(Arc::new(PanickyStore))
        .with_workflow_id("p");
    s.every("p", wf, Step::Run, ms(100)).unwrap();
    s.set_backoff("p", scheduler_support::backoff(10, 1.0, 10, None))
        .unwrap();
    let running = s.start().await.unwrap();
    let failed = wait_until(&running, "p", ms(10), ms(500), |f| f.run_count >= 2).await;
    let Status::Backoff { last_error, .. } = &failed.status else {
        panic!("{failed:?}");
    };
    assert_eq!(last_error, "Task execution error: panic: store exploded");
    // The loop survived the panic and keeps trying the flow.
    assert!(failed.run_count >= 2);
    running.stop().await.unwrap();
}
