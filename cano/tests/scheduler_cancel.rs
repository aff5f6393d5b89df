//! `cancel_flow`: cancelling a flow's run in flight drops its task, rolls its saga back
//! and returns the flow to `Idle` without counting a failure (unless the rollback fails);
//! it is a no-op for a flow that is not running and an error for an unknown id, and the
//! flow runs normally afterwards.
#![cfg(feature = "scheduler")]

mod scheduler_support;
mod support;

use cano::prelude::*;
use scheduler_support::{Job, Mode, Step, backoff, info, settle, wait_until, workflow};
use std::borrow::Cow;
use std::time::Duration;
use support::Log;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Wait until flow `id` is no longer running (virtual time, 1 ms steps, up to 100 ms).
async fn ended(running: &RunningScheduler<Saga>, id: &str) -> FlowInfo {
    let end = Instant::now() + ms(100);
    loop {
        let now = running.status(id).await.expect("registered");
        if now.status != Status::Running {
            return now;
        }
        assert!(Instant::now() < end, "flow {id:?} still running: {now:?}");
        tokio::time::sleep(ms(1)).await;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Saga {
    Reserve,
    Charge,
    Done,
}

/// A saga step: takes 1 s, then moves to `Charge`; its compensation fails if `undo_fails`.
struct Reserve {
    log: Log,
    undo_fails: bool,
}

#[saga::task]
impl CompensatableTask<Saga> for Reserve {
    type Output = u32;
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("reserve")
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Saga>, u32), CanoError> {
        tokio::time::sleep(secs(1)).await;
        self.log.push("done:reserve");
        Ok((TaskResult::Single(Saga::Charge), 7))
    }
    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        self.log.push(format!("undo:reserve:{output}"));
        if self.undo_fails {
            return Err(CanoError::task_execution("undo failed"));
        }
        Ok(())
    }
}

/// A plain task that takes `sleep`; logs when it starts and when it gets past the sleep.
struct Charge {
    log: Log,
    sleep: Duration,
}

#[task(state = Saga)]
impl Charge {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Saga>, CanoError> {
        self.log.push("start:charge");
        tokio::time::sleep(self.sleep).await;
        self.log.push("done:charge");
        Ok(TaskResult::Single(Saga::Done))
    }
}

/// `Reserve (saga, 1 s) -> Charge (plain, 1 h) -> Done`.
fn order(log: &Log, undo_fails: bool) -> Workflow<Saga> {
    Workflow::bare()
        .register_with_compensation(
            Saga::Reserve,
            Reserve {
                log: log.clone(),
                undo_fails,
            },
        )
        .register(
            Saga::Charge,
            Charge {
                log: log.clone(),
                sleep: secs(3600),
            },
        )
        .add_exit_state(Saga::Done)
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_long_run_returns_the_flow_to_idle_at_once() {
    let job = Job::new().hanging();
    let mut s = Scheduler::new();
    s.manual("long", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    running.trigger("long").await.unwrap();
    tokio::time::sleep(secs(10)).await;
    assert_eq!(job.active(), 1);

    let before = Instant::now();
    running.cancel_flow("long").await.unwrap();
    settle().await;
    assert_eq!(before.elapsed(), Duration::ZERO, "no virtual time passed");
    let long = info(&running, "long").await;
    assert_eq!(long.status, Status::Idle);
    assert_eq!(long.run_count, 1);
    assert!(!running.has_running_flows().await);
    // The job's future was dropped (its guard ran), not left hanging.
    assert_eq!(job.active(), 0);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_task_in_flight_is_dropped_and_never_resumes() {
    let log = Log::new();
    let mut s = Scheduler::new();
    s.manual("order", order(&log, false), Saga::Reserve)
        .unwrap();
    let running = s.start().await.unwrap();
    running.trigger("order").await.unwrap();
    tokio::time::sleep(secs(10)).await;
    running.cancel_flow("order").await.unwrap();
    ended(&running, "order").await;
    // Long past the point where the task's sleep would have ended.
    tokio::time::sleep(secs(7200)).await;
    assert_eq!(log.count("start:charge"), 1);
    assert_eq!(log.count("done:charge"), 0, "{:?}", log.entries());
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_saga_step_completed_before_the_cancel_is_compensated_once() {
    let log = Log::new();
    let mut s = Scheduler::new();
    s.manual("order", order(&log, false), Saga::Reserve)
        .unwrap();
    let running = s.start().await.unwrap();
    running.trigger("order").await.unwrap();
    tokio::time::sleep(secs(10)).await;
    running.cancel_flow("order").await.unwrap();
    // Cancelling again, while the run winds down, changes nothing.
    running.cancel_flow("order").await.unwrap();
    let after = ended(&running, "order").await;
    assert_eq!(after.status, Status::Idle);
    tokio::time::sleep(secs(7200)).await;
    assert_eq!(
        log.entries(),
        ["done:reserve", "start:charge", "undo:reserve:7"]
    );
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_clean_cancel_leaves_the_failure_streak_and_backoff_window_alone() {
    let job = Job::new().failing();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    s.set_backoff("m", backoff(60_000, 2.0, 600_000, Some(2)))
        .unwrap();
    let running = s.start().await.unwrap();

    // One failure: streak 1, in a backoff window.
    running.trigger("m").await.unwrap();
    let failed = wait_until(&running, "m", ms(1), ms(100), |f| {
        f.status != Status::Running
    })
    .await;
    assert!(
        matches!(failed.status, Status::Backoff { streak: 1, .. }),
        "{failed:?}"
    );
    let window = failed.next_eligible.expect("a backoff window");

    // A cancelled run changes neither the streak nor the window.
    job.set_mode(Mode::Hang);
    running.trigger("m").await.unwrap();
    tokio::time::sleep(secs(1)).await;
    running.cancel_flow("m").await.unwrap();
    let cancelled = wait_until(&running, "m", ms(1), ms(100), |f| {
        f.status != Status::Running
    })
    .await;
    assert_eq!(cancelled.status, Status::Idle);
    assert_eq!(cancelled.failure_streak, 1);
    assert_eq!(cancelled.next_eligible, Some(window));
    assert_eq!(cancelled.run_count, 2);

    // The next failure is the streak's second (the cancel did not count): it trips the
    // flow at its limit of 2.
    job.set_mode(Mode::Fail);
    running.trigger("m").await.unwrap();
    let tripped = wait_until(&running, "m", ms(1), ms(100), |f| {
        f.status != Status::Running
    })
    .await;
    assert!(
        matches!(tripped.status, Status::Tripped { streak: 2, .. }),
        "{tripped:?}"
    );
    assert_eq!(tripped.failure_streak, 2);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_interval_flow_keeps_its_schedule_after_a_cancel() {
    // Each run takes 10 s; a failure would hold the next run back by a minute.
    let job = Job::new().taking(secs(10));
    let mut s = Scheduler::new();
    s.every("tick", workflow(&job), Step::Run, ms(100)).unwrap();
    s.set_backoff("tick", backoff(60_000, 1.0, 60_000, None))
        .unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(secs(1)).await;
    running.cancel_flow("tick").await.unwrap();
    settle().await;
    let tick = info(&running, "tick").await;
    assert_eq!(tick.status, Status::Idle);
    assert_eq!(tick.failure_streak, 0);
    assert_eq!(tick.next_eligible, None);

    // The next run comes one interval after the cancelled one ended, and completes.
    tokio::time::sleep(ms(10_200)).await;
    assert_eq!(job.start_millis(), [0, 1100]);
    let tick = info(&running, "tick").await;
    assert_eq!(tick.status, Status::Completed);
    assert_eq!(tick.run_count, 2);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cancel_whose_rollback_fails_counts_as_a_failure_and_backs_off() {
    let log = Log::new();
    let mut s = Scheduler::new();
    s.manual("order", order(&log, true), Saga::Reserve).unwrap();
    s.set_backoff("order", backoff(60_000, 2.0, 600_000, None))
        .unwrap();
    let running = s.start().await.unwrap();
    running.trigger("order").await.unwrap();
    tokio::time::sleep(secs(10)).await;
    running.cancel_flow("order").await.unwrap();
    let dirty = ended(&running, "order").await;

    assert_eq!(
        log.entries(),
        ["done:reserve", "start:charge", "undo:reserve:7"]
    );
    assert_eq!(dirty.failure_streak, 1);
    let until = dirty.next_eligible.expect("a backoff window");
    let Status::Backoff {
        until: status_until,
        streak: 1,
        last_error,
    } = &dirty.status
    else {
        panic!("{dirty:?}");
    };
    assert_eq!(*status_until, until);
    assert_eq!(
        last_error,
        "Compensation failed (2 error(s)); original: Workflow error: Workflow cancelled in \
         state Charge; compensation #1: Task execution error: undo failed"
    );
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_flow_that_is_not_running_is_a_no_op() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();

    // Never run: stays idle.
    running.cancel_flow("m").await.unwrap();
    let idle = info(&running, "m").await;
    assert_eq!(idle.status, Status::Idle);
    assert_eq!(idle.run_count, 0);

    // Completed: stays completed.
    running.trigger("m").await.unwrap();
    settle().await;
    assert_eq!(info(&running, "m").await.status, Status::Completed);
    running.cancel_flow("m").await.unwrap();
    assert_eq!(info(&running, "m").await.status, Status::Completed);

    // A cancel while idle does not stick to the next run.
    running.trigger("m").await.unwrap();
    settle().await;
    let again = info(&running, "m").await;
    assert_eq!(again.status, Status::Completed);
    assert_eq!(again.run_count, 2);
    assert_eq!(job.calls(), 2);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancelling_an_unknown_flow_is_an_error_before_and_after_the_stop() {
    let mut s = Scheduler::new();
    s.manual("m", workflow(&Job::new()), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    let unknown = CanoError::workflow("No workflow registered with id 'nope'");
    let cancel = support::assert_send(running.cancel_flow("nope"));
    assert_eq!(cancel.await, Err(unknown.clone()));
    running.stop().await.unwrap();
    assert_eq!(running.cancel_flow("nope").await, Err(unknown));
    // A known flow after the stop: nothing to cancel.
    assert_eq!(running.cancel_flow("m").await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_flow_triggered_after_a_cancel_runs_to_completion() {
    let log = Log::new();
    let mut s = Scheduler::new();
    let short = Workflow::bare()
        .register_with_compensation(
            Saga::Reserve,
            Reserve {
                log: log.clone(),
                undo_fails: false,
            },
        )
        .register(
            Saga::Charge,
            Charge {
                log: log.clone(),
                sleep: secs(5),
            },
        )
        .add_exit_state(Saga::Done);
    s.manual("order", short, Saga::Reserve).unwrap();
    let running = s.start().await.unwrap();

    running.trigger("order").await.unwrap();
    tokio::time::sleep(ms(1500)).await;
    running.cancel_flow("order").await.unwrap();
    assert_eq!(ended(&running, "order").await.status, Status::Idle);
    log.clear();

    running.trigger("order").await.unwrap();
    tokio::time::sleep(secs(7)).await;
    let done = running.status("order").await.expect("registered");
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.run_count, 2);
    assert_eq!(
        log.entries(),
        ["done:reserve", "start:charge", "done:charge"]
    );
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cancel_right_after_a_trigger_stops_the_run() {
    let job = Job::new().taking(secs(10));
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    // `trigger` returns once the run is spawned: it may or may not have started yet.
    running.trigger("m").await.unwrap();
    running.cancel_flow("m").await.unwrap();
    settle().await;
    let m = info(&running, "m").await;
    assert_eq!(m.status, Status::Idle);
    assert_eq!(m.run_count, 1);
    assert_eq!(job.active(), 0);
    tokio::time::sleep(secs(60)).await;
    assert!(job.calls() <= 1, "{}", job.calls());
    assert_eq!(info(&running, "m").await.status, Status::Idle);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancel_flow_cuts_short_a_run_that_stop_is_waiting_for() {
    let job = Job::new().hanging();
    let mut s = Scheduler::new();
    s.manual("m", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    running.trigger("m").await.unwrap();
    settle().await;

    let stopping = running.clone();
    let before = Instant::now();
    let stop = tokio::spawn(async move { stopping.stop().await });
    tokio::time::sleep(secs(1)).await;
    assert!(!stop.is_finished(), "stop waits for the run in flight");
    running.cancel_flow("m").await.unwrap();
    assert_eq!(stop.await.unwrap(), Ok(()));
    assert!(before.elapsed() < secs(2), "{:?}", before.elapsed());
    assert_eq!(info(&running, "m").await.status, Status::Idle);
    assert_eq!(job.active(), 0);
}
