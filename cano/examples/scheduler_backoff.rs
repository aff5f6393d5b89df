//! # Scheduler: an interval flow that backs off after failures
//!
//! Run with: `cargo run -p cano --example scheduler_backoff --features scheduler`
//!
//! A sync workflow runs every 100 ms against an upstream service that is down for its
//! first four calls. Each failure grows the flow's failure streak and parks it in
//! `Status::Backoff`; the [`BackoffPolicy`] (200 ms, doubling, capped at 1 s, no jitter)
//! stretches the wait before the next run: 200, 400, 800 ms, 1 s. The fifth run succeeds
//! and the flow is back to `Completed` with a clean streak. A second flow against a service
//! that never recovers trips after three failures and stays stopped until `reset_flow`.

use cano::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Sync,
    Done,
}

/// An upstream service that fails its first `down_for` calls.
#[derive(Clone, Resource)]
struct Upstream {
    down_for: u32,
    calls: Arc<AtomicU32>,
}

impl Upstream {
    fn new(down_for: u32) -> Self {
        Self {
            down_for,
            calls: Arc::default(),
        }
    }
}

struct SyncTask;

#[task(state = Step)]
impl SyncTask {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal() // no retries inside a run: the scheduler's backoff takes over
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        let upstream = res.get::<Upstream, _>("upstream")?;
        let call = upstream.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call <= upstream.down_for {
            return Err(CanoError::task_execution(format!(
                "upstream unavailable (call {call})"
            )));
        }
        Ok(TaskResult::Single(Step::Done))
    }
}

fn sync_workflow(upstream: Upstream) -> Workflow<Step> {
    Workflow::new(Resources::new().insert("upstream", upstream))
        .register(Step::Sync, SyncTask)
        .add_exit_state(Step::Done)
}

fn describe(status: &Status) -> String {
    match status {
        Status::Backoff {
            streak, last_error, ..
        } => format!("Backoff (streak {streak}): {last_error}"),
        Status::Tripped { streak, last_error } => {
            format!("Tripped (streak {streak}): {last_error}")
        }
        other => format!("{other:?}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let mut scheduler = Scheduler::new();
    scheduler.every(
        "sync",
        sync_workflow(Upstream::new(4)),
        Step::Sync,
        Duration::from_millis(100),
    )?;
    scheduler.set_backoff(
        "sync",
        BackoffPolicy {
            initial: Duration::from_millis(200),
            multiplier: 2.0,
            max_delay: Duration::from_secs(1),
            jitter: 0.0,
            streak_limit: None,
        },
    )?;
    scheduler.every(
        "doomed",
        sync_workflow(Upstream::new(u32::MAX)),
        Step::Sync,
        Duration::from_millis(100),
    )?;
    scheduler.set_backoff(
        "doomed",
        BackoffPolicy {
            initial: Duration::from_millis(100),
            jitter: 0.0,
            ..BackoffPolicy::with_trip(3)
        },
    )?;

    let started = Instant::now();
    let running = scheduler.start().await?;
    let mut seen = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let sync = running.status("sync").await.expect("registered");
        if sync.run_count != seen && sync.status != Status::Running {
            seen = sync.run_count;
            println!(
                "{:>5} ms  sync run {}: {}",
                started.elapsed().as_millis(),
                sync.run_count,
                describe(&sync.status)
            );
            if sync.status == Status::Completed {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let doomed = running.status("doomed").await.expect("registered");
    println!(
        "doomed after {} runs: {}",
        doomed.run_count,
        describe(&doomed.status)
    );
    if let Err(e) = running.trigger("doomed").await {
        println!("trigger refused: {e}");
    }
    running.reset_flow("doomed").await?;
    println!(
        "after reset_flow: {:?}",
        running.status("doomed").await.expect("registered").status
    );

    running.stop().await?;
    let sync = running.status("sync").await.expect("registered");
    assert_eq!(sync.status, Status::Completed);
    assert_eq!(sync.failure_streak, 0);
    Ok(())
}
