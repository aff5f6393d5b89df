//! Stopping: waking sleeping loops, the bound on in-flight runs (runs that outlast it are
//! cancelled and reported), one teardown, refusing requests during and after the
//! shutdown, and dropping the last handle (the bound differs from 0.12.0: see
//! COMPATIBILITY.md).
#![cfg(feature = "scheduler")]

mod scheduler_support;
mod support;

use cano::prelude::*;
use scheduler_support::{Job, Step, backoff, info, settle, workflow, workflow_with};
use std::time::Duration;
use support::{Log, Probe};
use tokio::time::Instant;

const TIMED_OUT: &str = "Timeout waiting for workflows to complete";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn stop_wakes_loops_sleeping_on_intervals_cron_ticks_and_backoff() {
    let ok = Job::new();
    let failing = Job::new().failing();
    let mut s = Scheduler::new();
    s.every_hours("hourly", workflow(&ok), Step::Run, 1)
        .unwrap();
    s.cron("daily", workflow(&ok), Step::Run, "0 0 0 * * *")
        .unwrap();
    s.every(
        "backing-off",
        workflow(&failing),
        Step::Run,
        Duration::from_millis(10),
    )
    .unwrap();
    s.set_backoff("backing-off", backoff(60_000, 1.0, 60_000, None))
        .unwrap();
    s.manual("manual", workflow(&ok), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(secs(1)).await;
    assert!(matches!(
        info(&running, "backing-off").await.status,
        Status::Backoff { .. }
    ));
    let before = Instant::now();
    running.stop().await.unwrap();
    assert!(before.elapsed() < secs(2), "{:?}", before.elapsed());
    assert_eq!(ok.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_runs_that_end_within_the_bound() {
    let log = Log::new();
    let job = Job::new().taking(secs(20));
    let mut s = Scheduler::new();
    let resources = Resources::new().insert("r", Probe::new("r", &log));
    s.every_hours("slow", workflow_with(&job, resources), Step::Run, 1)
        .unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(secs(1)).await;
    let before = Instant::now();
    running.stop().await.unwrap();
    let waited = before.elapsed();
    assert!(waited >= secs(19) && waited < secs(20), "{waited:?}");
    assert_eq!(info(&running, "slow").await.status, Status::Completed);
    assert_eq!(log.entries(), ["setup:r", "teardown:r"]);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_run_is_cancelled_at_the_30_second_bound_and_reported() {
    let log = Log::new();
    let hang = Job::new().hanging();
    let quick = Job::new();
    let mut s = Scheduler::new();
    let res = |name| Resources::new().insert("r", Probe::new(name, &log));
    s.every_hours("hangs", workflow_with(&hang, res("hangs")), Step::Run, 1)
        .unwrap();
    s.manual("stuck", workflow_with(&hang, res("stuck")), Step::Run)
        .unwrap();
    s.every_hours("fine", workflow_with(&quick, res("fine")), Step::Run, 1)
        .unwrap();
    let running = s.start().await.unwrap();
    running.trigger("stuck").await.unwrap();
    settle().await;
    assert_eq!(hang.calls(), 2);

    let before = Instant::now();
    let result = running.stop().await;
    let waited = before.elapsed();
    assert_eq!(result, Err(CanoError::workflow(TIMED_OUT)));
    assert!(waited >= secs(30) && waited < secs(31), "{waited:?}");
    assert_eq!(hang.max_active(), 2);

    // Both cancelled runs are recorded as failures of their flows; the other flow is not.
    for id in ["hangs", "stuck"] {
        let cancelled = info(&running, id).await;
        assert_eq!(cancelled.failure_streak, 1, "{cancelled:?}");
        let Status::Backoff { last_error, .. } = &cancelled.status else {
            panic!("{cancelled:?}");
        };
        assert!(
            last_error.starts_with("Workflow error: Run cancelled"),
            "{last_error}"
        );
        assert!(last_error.contains("30s"), "{last_error}");
    }
    assert_eq!(info(&running, "fine").await.status, Status::Completed);
    assert!(!running.has_running_flows().await);

    // Resources torn down once, in reverse registration order, despite the timeout.
    assert_eq!(
        log.entries(),
        [
            "setup:hangs",
            "setup:stuck",
            "setup:fine",
            "teardown:fine",
            "teardown:stuck",
            "teardown:hangs"
        ]
    );
    // The result is cached for every later call and every clone.
    assert_eq!(running.stop().await, Err(CanoError::workflow(TIMED_OUT)));
    assert_eq!(
        running.clone().wait().await,
        Err(CanoError::workflow(TIMED_OUT))
    );
    assert_eq!(log.entries().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn stop_with_timeout_takes_its_own_bound() {
    let job = Job::new().taking(secs(3600));
    let mut s = Scheduler::new();
    s.every_hours("long", workflow(&job), Step::Run, 1).unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    let before = Instant::now();
    let result = running.stop_with_timeout(Duration::from_millis(1500)).await;
    assert_eq!(result, Err(CanoError::workflow(TIMED_OUT)));
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_millis(1510),
        "{waited:?}"
    );
    let long = info(&running, "long").await;
    assert!(
        matches!(&long.status, Status::Backoff { last_error, .. } if last_error.contains("1.5s")),
        "{long:?}"
    );
    // A zero bound cancels at once; a run that already finished is not affected.
    let quick = Job::new();
    let mut s = Scheduler::new();
    s.every_hours("quick", workflow(&quick), Step::Run, 1)
        .unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    assert_eq!(running.stop_with_timeout(Duration::ZERO).await, Ok(()));
    assert_eq!(info(&running, "quick").await.status, Status::Completed);

    // An unrepresentably long bound waits as long as it takes.
    let job = Job::new().taking(secs(7 * 24 * 3600));
    let mut s = Scheduler::new();
    s.every_hours("week", workflow(&job), Step::Run, 1).unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    assert_eq!(running.stop_with_timeout(Duration::MAX).await, Ok(()));
    assert_eq!(info(&running, "week").await.status, Status::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_tripping_cancellation_trips_the_flow() {
    let job = Job::new().hanging();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    s.set_backoff("m", BackoffPolicy::with_trip(1)).unwrap();
    let running = s.start().await.unwrap();
    running.trigger("m").await.unwrap();
    settle().await;
    assert!(running.stop_with_timeout(secs(1)).await.is_err());
    let m = info(&running, "m").await;
    assert!(
        matches!(m.status, Status::Tripped { streak: 1, .. }),
        "{m:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_after_stop_are_refused() {
    let mut s: Scheduler<Step> = Scheduler::new();
    s.manual("m", workflow(&Job::new()), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    running.stop().await.unwrap();
    running.stop().await.unwrap();
    assert_eq!(
        running.trigger("m").await,
        Err(CanoError::workflow(
            "Scheduler not running — call start() before trigger()"
        ))
    );
    assert_eq!(
        running.reset_flow("m").await,
        Err(CanoError::workflow(
            "Scheduler not running — call start() before reset_flow()"
        ))
    );
    // Status still reads the flows.
    assert_eq!(info(&running, "m").await.status, Status::Idle);
    assert_eq!(running.list().await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn requests_during_the_shutdown_wait_are_refused() {
    let job = Job::new().taking(Duration::from_millis(400));
    let mut s = Scheduler::new();
    s.manual("slow", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    running.trigger("slow").await.unwrap();

    let stopper = running.clone();
    let stop = tokio::spawn(async move { stopper.stop().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!stop.is_finished());
    assert_eq!(
        running.trigger("slow").await,
        Err(CanoError::workflow(
            "Scheduler not running — call start() before trigger()"
        ))
    );
    assert_eq!(
        running.reset_flow("slow").await,
        Err(CanoError::workflow(
            "Scheduler not running — call start() before reset_flow()"
        ))
    );
    assert!(!stop.is_finished());
    assert_eq!(stop.await.unwrap(), Ok(()));
    assert_eq!(info(&running, "slow").await.status, Status::Completed);
}

#[tokio::test(start_paused = true)]
async fn wait_returns_when_another_clone_stops() {
    let mut s: Scheduler<Step> = Scheduler::new();
    s.manual("m", workflow(&Job::new()), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    let waiter = running.clone();
    let wait = tokio::spawn(async move { waiter.wait().await });
    tokio::time::sleep(secs(3600)).await;
    assert!(!wait.is_finished(), "wait without stop waits");
    running.stop().await.unwrap();
    assert_eq!(wait.await.unwrap(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_aborts_everything_without_teardown() {
    let log = Log::new();
    let job = Job::new();
    let mut s = Scheduler::new();
    let resources = Resources::new().insert("r", Probe::new("r", &log));
    s.every(
        "ticker",
        workflow_with(&job, resources),
        Step::Run,
        Duration::from_millis(20),
    )
    .unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Dropping one of two clones changes nothing.
    let clone = running.clone();
    drop(clone);
    let before = job.calls();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(job.calls() > before);

    drop(running);
    settle().await;
    let frozen = job.calls();
    tokio::time::sleep(secs(1)).await;
    assert_eq!(job.calls(), frozen);
    assert_eq!(log.entries(), ["setup:r"]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_cancels_a_run_in_flight() {
    let job = Job::new().hanging();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    running.trigger("m").await.unwrap();
    settle().await;
    assert_eq!(job.active(), 1);
    drop(running);
    settle().await;
    // The hanging call was dropped.
    assert_eq!(job.active(), 0);
    assert_eq!(job.calls(), 1);
}
