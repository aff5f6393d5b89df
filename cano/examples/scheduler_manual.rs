//! # Scheduler: manual triggers
//!
//! Run with: `cargo run -p cano --example scheduler_manual --features scheduler`
//!
//! A rebuild workflow has no schedule of its own: it runs only when triggered. A trigger
//! returns as soon as the run is spawned; a second trigger while the run is in flight is
//! refused (a flow never overlaps itself). A flaky export flow, set to trip on its first
//! failure, shows that a tripped flow refuses triggers until `reset_flow`.

use cano::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Work,
    Done,
}

/// Takes half a second.
struct Rebuild;

#[task(state = Step)]
impl Rebuild {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(TaskResult::Single(Step::Done))
    }
}

/// Fails until its disk is fixed.
struct Export {
    disk_ok: Arc<AtomicBool>,
}

#[task(state = Step)]
impl Export {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        if self.disk_ok.load(Ordering::SeqCst) {
            Ok(TaskResult::Single(Step::Done))
        } else {
            Err(CanoError::task_execution("disk full"))
        }
    }
}

async fn settled(running: &RunningScheduler<Step>, id: &str) -> FlowInfo {
    loop {
        let info = running.status(id).await.expect("registered");
        if info.status != Status::Running {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let disk_ok = Arc::new(AtomicBool::new(false));
    let mut scheduler = Scheduler::new();
    let rebuild = Workflow::bare()
        .register(Step::Work, Rebuild)
        .add_exit_state(Step::Done);
    scheduler.manual("rebuild", rebuild, Step::Work)?;
    let export = Workflow::bare()
        .register(
            Step::Work,
            Export {
                disk_ok: disk_ok.clone(),
            },
        )
        .add_exit_state(Step::Done);
    scheduler.manual("export", export, Step::Work)?;
    scheduler.set_backoff("export", BackoffPolicy::with_trip(1))?;
    let running = scheduler.start().await?;

    let t = Instant::now();
    running.trigger("rebuild").await?;
    println!(
        "trigger returned after {} ms; rebuild is {:?}",
        t.elapsed().as_millis(),
        running.status("rebuild").await.expect("registered").status
    );
    match running.trigger("rebuild").await {
        Ok(()) => println!("second trigger accepted (unexpected)"),
        Err(e) => println!("second trigger refused: {e}"),
    }
    let done = settled(&running, "rebuild").await;
    println!(
        "rebuild finished after {} ms: {:?}, run_count {}",
        t.elapsed().as_millis(),
        done.status,
        done.run_count
    );

    running.trigger("export").await?;
    let failed = settled(&running, "export").await;
    println!("export: {:?}", failed.status);
    if let Err(e) = running.trigger("export").await {
        println!("trigger refused: {e}");
    }
    disk_ok.store(true, Ordering::SeqCst);
    running.reset_flow("export").await?;
    running.trigger("export").await?;
    let fixed = settled(&running, "export").await;
    println!(
        "after reset_flow and a new trigger: {:?}, run_count {}",
        fixed.status, fixed.run_count
    );
    if let Err(e) = running.trigger("nightly").await {
        println!("unknown flow: {e}");
    }

    running.stop().await?;
    if let Err(e) = running.trigger("rebuild").await {
        println!("after stop: {e}");
    }
    assert_eq!(fixed.status, Status::Completed);
    assert_eq!(done.run_count, 1);
    Ok(())
}
