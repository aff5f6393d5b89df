//! Failures, backoff windows, trips and resets (`reset_flow`), and the status a flow goes
//! through.
#![cfg(feature = "scheduler")]

mod scheduler_support;

use cano::prelude::*;
use scheduler_support::{Job, Mode, Step, backoff, close, info, settle, wait_until, workflow};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const FAILED: &str = "Task execution error: job failed";

#[tokio::test(start_paused = true)]
async fn backoff_grows_per_failure_and_stretches_the_interval() {
    let job = Job::new().taking(ms(50)).failing();
    let mut s = Scheduler::new();
    s.every("flaky", workflow(&job), Step::Run, ms(10)).unwrap();
    s.set_backoff("flaky", backoff(150, 2.0, 600, None))
        .unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(ms(1300)).await;

    // Run k ends 50 ms after it starts; the next waits max(10 ms, 150 ms × 2^(k-1), cap 600).
    let starts = job.starts();
    let expected = [0, 200, 550, 1200].map(ms);
    assert_eq!(starts.len(), expected.len(), "{starts:?}");
    for (got, want) in starts.iter().zip(expected) {
        assert!(close(*got, want, 5), "{starts:?}");
    }

    let flaky = info(&running, "flaky").await;
    assert_eq!(flaky.run_count, 4);
    assert_eq!(flaky.failure_streak, 4);
    let until = flaky.next_eligible.expect("in a backoff window");
    assert_eq!(
        flaky.status,
        Status::Backoff {
            until,
            streak: 4,
            last_error: FAILED.to_string()
        }
    );
    // The window opens 600 ms (the cap) after the 4th run ended (1250 ms).
    let window = (until - flaky.last_run.unwrap()).to_std().unwrap();
    assert!(close(window, ms(650), 5), "{window:?}");
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_flow_trips_at_its_streak_limit_and_stays_stopped_until_reset() {
    let job = Job::new().failing();
    let mut s = Scheduler::new();
    s.every("fragile", workflow(&job), Step::Run, ms(20))
        .unwrap();
    s.set_backoff("fragile", backoff(10, 1.0, 10, Some(3)))
        .unwrap();
    let running = s.start().await.unwrap();

    let tripped = wait_until(&running, "fragile", ms(5), ms(500), |f| {
        matches!(f.status, Status::Tripped { .. })
    })
    .await;
    assert_eq!(
        tripped.status,
        Status::Tripped {
            streak: 3,
            last_error: FAILED.to_string()
        }
    );
    assert_eq!(tripped.run_count, 3);
    assert_eq!(tripped.failure_streak, 3);
    assert_eq!(tripped.next_eligible, None);

    // The loop stays alive but never runs a tripped flow; nor does a trigger.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(job.calls(), 3);
    let err = running.trigger("fragile").await.unwrap_err();
    assert_eq!(
        err,
        CanoError::workflow("Flow 'fragile' is tripped — call reset_flow before triggering")
    );
    assert_eq!(info(&running, "fragile").await.run_count, 3);

    // Reset: idle, clean streak; the loop picks it up again and it trips again.
    running.reset_flow("fragile").await.unwrap();
    let reset = info(&running, "fragile").await;
    assert_eq!(reset.status, Status::Idle);
    assert_eq!(reset.failure_streak, 0);
    assert_eq!(reset.next_eligible, None);
    assert_eq!(reset.run_count, 3);
    let again = wait_until(&running, "fragile", ms(5), ms(500), |f| {
        matches!(f.status, Status::Tripped { .. })
    })
    .await;
    assert_eq!(again.run_count, 6);
    assert_eq!(again.failure_streak, 3);

    // Second reset, and the job recovers: the next run completes and clears the streak.
    job.set_mode(Mode::Succeed);
    running.reset_flow("fragile").await.unwrap();
    let healed = wait_until(&running, "fragile", ms(5), ms(500), |f| {
        f.status == Status::Completed
    })
    .await;
    assert_eq!(healed.failure_streak, 0);
    assert_eq!(healed.next_eligible, None);
    assert!(healed.run_count >= 7);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn with_trip_zero_trips_on_the_first_failure() {
    let job = Job::new().failing();
    let mut s = Scheduler::new();
    s.every("once", workflow(&job), Step::Run, ms(5)).unwrap();
    s.set_backoff("once", BackoffPolicy::with_trip(0)).unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let once = info(&running, "once").await;
    assert_eq!(once.run_count, 1);
    assert!(
        matches!(once.status, Status::Tripped { streak: 1, .. }),
        "{once:?}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn manual_failures_trip_and_a_reset_lets_triggers_through_again() {
    let job = Job::new().failing();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    s.set_backoff("m", backoff(60_000, 2.0, 600_000, Some(2)))
        .unwrap();
    let running = s.start().await.unwrap();

    running.trigger("m").await.unwrap();
    let first = wait_until(&running, "m", ms(1), ms(100), |f| {
        f.status != Status::Running
    })
    .await;
    assert!(
        matches!(first.status, Status::Backoff { streak: 1, .. }),
        "{first:?}"
    );
    // Backoff does not hold a trigger back.
    running.trigger("m").await.unwrap();
    let second = wait_until(&running, "m", ms(1), ms(100), |f| {
        f.status != Status::Running
    })
    .await;
    assert!(
        matches!(second.status, Status::Tripped { streak: 2, .. }),
        "{second:?}"
    );

    let err = running.trigger("m").await.unwrap_err();
    assert_eq!(err.category(), "workflow");
    assert!(err.to_string().contains("tripped"), "{err}");

    running.reset_flow("m").await.unwrap();
    job.set_mode(Mode::Succeed);
    running.trigger("m").await.unwrap();
    let ok = wait_until(&running, "m", ms(1), ms(100), |f| {
        f.status != Status::Running
    })
    .await;
    assert_eq!(ok.status, Status::Completed);
    assert_eq!(ok.run_count, 3);
    assert_eq!(ok.failure_streak, 0);

    // Trip -> reset -> trip again in the same session.
    job.set_mode(Mode::Fail);
    for _ in 0..2 {
        running.trigger("m").await.unwrap();
        wait_until(&running, "m", ms(1), ms(100), |f| {
            f.status != Status::Running
        })
        .await;
    }
    let tripped = info(&running, "m").await;
    assert!(
        matches!(tripped.status, Status::Tripped { streak: 2, .. }),
        "{tripped:?}"
    );
    assert_eq!(tripped.run_count, 5);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_default_policy_parks_a_failed_flow_in_backoff() {
    let job = Job::new().failing();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    running.trigger("m").await.unwrap();
    settle().await;
    let failed = info(&running, "m").await;
    let Status::Backoff {
        until,
        streak,
        last_error,
    } = &failed.status
    else {
        panic!("{failed:?}");
    };
    assert_eq!(*streak, 1);
    assert_eq!(last_error, FAILED);
    assert_eq!(failed.failure_streak, 1);
    assert_eq!(failed.next_eligible, Some(*until));
    // 1 s ± 10 % jitter after the run.
    let window = (*until - failed.last_run.unwrap()).to_std().unwrap();
    assert!(window >= ms(899) && window <= ms(1101), "{window:?}");
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_trigger_inside_a_backoff_window_runs_and_a_success_clears_it() {
    let job = Job::new().failing();
    let mut s = Scheduler::new();
    s.every("e", workflow(&job), Step::Run, ms(10)).unwrap();
    s.set_backoff("e", backoff(60_000, 2.0, 600_000, None))
        .unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    let failed = info(&running, "e").await;
    assert!(matches!(failed.status, Status::Backoff { streak: 1, .. }));

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(job.calls(), 1, "the loop waits out the window");
    job.set_mode(Mode::Succeed);
    running.trigger("e").await.unwrap();
    settle().await;
    let ok = info(&running, "e").await;
    assert_eq!(ok.status, Status::Completed);
    assert_eq!(ok.failure_streak, 0);
    assert_eq!(ok.next_eligible, None);
    assert_eq!(ok.run_count, 2);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cron_flow_skips_the_ticks_inside_its_backoff_window() {
    let job = Job::new().failing();
    let mut s = Scheduler::new();
    s.cron("c", workflow(&job), Step::Run, "* * * * * *")
        .unwrap();
    s.set_backoff("c", backoff(60_000, 2.0, 600_000, None))
        .unwrap();
    let running = s.start().await.unwrap();
    wait_until(&running, "c", ms(100), ms(1500), |f| f.run_count == 1).await;
    tokio::time::sleep(ms(3200)).await;
    assert_eq!(info(&running, "c").await.run_count, 1);
    // The window ends 60 s after the failure; the first tick after that runs.
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert_eq!(info(&running, "c").await.run_count, 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = info(&running, "c").await;
    assert_eq!(after.run_count, 2, "{after:?}");
    assert!(matches!(after.status, Status::Backoff { streak: 2, .. }));
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn status_goes_idle_running_completed_backoff_idle() {
    let job = Job::new().taking(Duration::from_secs(1));
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    assert_eq!(info(&running, "m").await.status, Status::Idle);

    running.trigger("m").await.unwrap();
    let started = info(&running, "m").await;
    assert_eq!(started.status, Status::Running);
    assert_eq!(started.run_count, 1);
    assert!(started.last_run.is_some());
    assert!(running.has_running_flows().await);

    tokio::time::sleep(ms(1001)).await;
    assert_eq!(info(&running, "m").await.status, Status::Completed);
    assert!(!running.has_running_flows().await);

    job.set_mode(Mode::Fail);
    running.trigger("m").await.unwrap();
    tokio::time::sleep(ms(1001)).await;
    assert!(matches!(
        info(&running, "m").await.status,
        Status::Backoff { .. }
    ));

    running.reset_flow("m").await.unwrap();
    assert_eq!(info(&running, "m").await.status, Status::Idle);
    // A completed flow becomes idle on reset too.
    job.set_mode(Mode::Succeed);
    running.trigger("m").await.unwrap();
    tokio::time::sleep(ms(1001)).await;
    assert_eq!(info(&running, "m").await.status, Status::Completed);
    running.reset_flow("m").await.unwrap();
    assert_eq!(info(&running, "m").await.status, Status::Idle);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_reset_during_a_run_leaves_it_running_and_restarts_the_streak() {
    let job = Job::new().failing().taking(ms(100));
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    s.set_backoff("m", backoff(1, 1.0, 1, None)).unwrap();
    let running = s.start().await.unwrap();
    for _ in 0..3 {
        running.trigger("m").await.unwrap();
        tokio::time::sleep(ms(150)).await;
    }
    assert_eq!(info(&running, "m").await.failure_streak, 3);

    running.trigger("m").await.unwrap();
    running.reset_flow("m").await.unwrap();
    let mid = info(&running, "m").await;
    assert_eq!(
        mid.status,
        Status::Running,
        "reset leaves a running flow running"
    );
    assert_eq!(mid.failure_streak, 0);
    assert_eq!(mid.next_eligible, None);
    tokio::time::sleep(ms(150)).await;
    let after = info(&running, "m").await;
    assert_eq!(after.failure_streak, 1);
    assert!(matches!(after.status, Status::Backoff { streak: 1, .. }));
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_streak() {
    let job = Job::new().failing();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    for _ in 0..2 {
        running.trigger("m").await.unwrap();
        settle().await;
    }
    assert_eq!(info(&running, "m").await.failure_streak, 2);
    job.set_mode(Mode::Succeed);
    running.trigger("m").await.unwrap();
    settle().await;
    let ok = info(&running, "m").await;
    assert_eq!(
        (ok.failure_streak, ok.next_eligible, ok.status),
        (0, None, Status::Completed)
    );
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reset_of_an_unknown_flow_is_an_error() {
    let mut s: Scheduler<Step> = Scheduler::new();
    s.manual("m", workflow(&Job::new()), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    assert_eq!(
        running.reset_flow("missing").await,
        Err(CanoError::workflow(
            "No workflow registered with id 'missing'"
        ))
    );
    running.stop().await.unwrap();
}
