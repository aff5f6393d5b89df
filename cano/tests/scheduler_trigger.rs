//! Manual triggers: which are accepted and which refused, what they return, and how they
//! look through other handles.
#![cfg(feature = "scheduler")]

mod scheduler_support;

use cano::prelude::*;
use scheduler_support::{Job, Step, info, settle, wait_until, workflow};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_trigger_returns_once_the_run_is_spawned() {
    let job = Job::new().taking(Duration::from_secs(3600));
    let mut s = Scheduler::new();
    s.manual("long", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    let before = tokio::time::Instant::now();
    running.trigger("long").await.unwrap();
    assert_eq!(before.elapsed(), Duration::ZERO);
    let now = info(&running, "long").await;
    assert_eq!(now.status, Status::Running);
    assert_eq!(now.run_count, 1);
    assert!(running.has_running_flows().await);
    running.stop_with_timeout(ms(10)).await.unwrap_err();
}

#[tokio::test(start_paused = true)]
async fn a_trigger_through_one_clone_shows_through_another() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    let other = running.clone();
    running.trigger("m").await.unwrap();
    settle().await;
    let seen = other.status("m").await.unwrap();
    assert_eq!(seen.run_count, 1);
    assert_eq!(seen.status, Status::Completed);
    other.stop().await.unwrap();
    running.wait().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unknown_flow_cannot_be_triggered() {
    let mut s: Scheduler<Step> = Scheduler::new();
    s.manual("m", workflow(&Job::new()), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    let err = running.trigger("nope").await.unwrap_err();
    assert_eq!(
        err,
        CanoError::workflow("No workflow registered with id 'nope'")
    );
    assert!(err.to_string().contains("No workflow registered"));
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_overlapping_trigger_is_refused() {
    let job = Job::new().taking(ms(300));
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    running.trigger("m").await.unwrap();
    tokio::time::sleep(ms(100)).await;
    let err = running.trigger("m").await.unwrap_err();
    assert_eq!(err, CanoError::workflow("Flow 'm' is already running"));
    assert_eq!(info(&running, "m").await.run_count, 1);
    tokio::time::sleep(ms(250)).await;
    assert_eq!(job.calls(), 1);
    assert_eq!(job.max_active(), 1);
    // Once the run has ended the flow can be triggered again.
    running.trigger("m").await.unwrap();
    assert_eq!(info(&running, "m").await.run_count, 2);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sequential_triggers_each_run_once() {
    let job = Job::new().taking(ms(5));
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    for i in 1..=20u64 {
        running.trigger("m").await.unwrap();
        let done = wait_until(&running, "m", ms(1), ms(100), |f| {
            f.status == Status::Completed
        })
        .await;
        assert_eq!(done.run_count, i);
    }
    assert_eq!(job.calls(), 20);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn any_kind_of_flow_can_be_triggered() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.every_hours("hourly", workflow(&job), Step::Run, 1)
        .unwrap();
    s.cron("yearly", workflow(&job), Step::Run, "@yearly")
        .unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    assert_eq!(info(&running, "hourly").await.run_count, 1);
    running.trigger("hourly").await.unwrap();
    running.trigger("yearly").await.unwrap();
    settle().await;
    assert_eq!(info(&running, "hourly").await.run_count, 2);
    assert_eq!(info(&running, "yearly").await.run_count, 1);
    assert_eq!(info(&running, "yearly").await.status, Status::Completed);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn more_than_64_pending_commands_fill_the_queue() {
    let job = Job::new().taking(Duration::from_secs(1));
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    // Every future queues its command on its first poll, before the driver runs.
    let triggers = (0..70).map(|_| running.trigger("m"));
    let results = futures_util::future::join_all(triggers).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let busy = results
        .iter()
        .filter(|r| **r == Err(CanoError::workflow("Flow 'm' is already running")))
        .count();
    let full = results
        .iter()
        .filter(|r| **r == Err(CanoError::workflow("Scheduler command queue full")))
        .count();
    assert_eq!((ok, busy, full), (1, 63, 6), "{results:?}");
    running.stop().await.unwrap();
    assert_eq!(job.calls(), 1);
}
