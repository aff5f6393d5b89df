//! # Scheduler: graceful shutdown on Ctrl-C
//!
//! Run with: `cargo run -p cano --example scheduler_shutdown --features scheduler`
//!
//! Two interval flows share the work: `ingest` (a 2 s job, started again one second after
//! the previous run ends) and `heartbeat` (instant, every 300 ms). Each workflow holds a
//! connection resource that is set up once when the scheduler starts and torn down once
//! when it stops. Press Ctrl-C — or wait four seconds, so the demo also finishes
//! unattended — and the program calls [`RunningScheduler::stop_with_timeout`]: loops stop
//! scheduling at once, the ingest run in flight is allowed to finish (up to the 5 s bound),
//! then the connections are closed in reverse registration order.

use cano::prelude::*;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Work,
    Done,
}

/// Prints when it is opened and closed.
struct Connection(&'static str);

#[resource]
impl Resource for Connection {
    async fn setup(&self) -> Result<(), CanoError> {
        println!("  [{}] connection opened", self.0);
        Ok(())
    }

    async fn teardown(&self) -> Result<(), CanoError> {
        println!("  [{}] connection closed", self.0);
        Ok(())
    }
}

/// Works for `millis`, then finishes.
struct Job {
    name: &'static str,
    millis: u64,
}

#[task(state = Step)]
impl Job {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        if self.millis > 0 {
            println!("  [{}] working for {} ms", self.name, self.millis);
            tokio::time::sleep(Duration::from_millis(self.millis)).await;
            println!("  [{}] done", self.name);
        }
        Ok(TaskResult::Single(Step::Done))
    }
}

fn workflow(name: &'static str, millis: u64) -> Workflow<Step> {
    Workflow::new(Resources::new().insert("connection", Connection(name)))
        .register(Step::Work, Job { name, millis })
        .add_exit_state(Step::Done)
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let mut scheduler = Scheduler::new();
    scheduler.every(
        "ingest",
        workflow("ingest", 2000),
        Step::Work,
        Duration::from_secs(1),
    )?;
    scheduler.every(
        "heartbeat",
        workflow("heartbeat", 0),
        Step::Work,
        Duration::from_millis(300),
    )?;
    let running = scheduler.start().await?;
    println!("running; press Ctrl-C to stop (stopping by itself in 4 s)");

    tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal.map_err(CanoError::from)?;
            println!("\nCtrl-C received");
        }
        () = tokio::time::sleep(Duration::from_secs(4)) => println!("4 s elapsed"),
    }

    let t = Instant::now();
    println!(
        "stopping; runs in flight: {:?}",
        running
            .list()
            .await
            .into_iter()
            .filter(|f| f.status == Status::Running)
            .map(|f| f.id)
            .collect::<Vec<_>>()
    );
    running.stop_with_timeout(Duration::from_secs(5)).await?;
    println!("stopped in {} ms", t.elapsed().as_millis());

    for flow in running.list().await {
        println!("{:<9} {} runs, {:?}", flow.id, flow.run_count, flow.status);
    }
    match running.trigger("ingest").await {
        Err(e) => println!("trigger after stop: {e}"),
        Ok(()) => unreachable!("the scheduler is stopped"),
    }
    Ok(())
}
