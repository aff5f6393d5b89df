//! # Scheduler: a cron flow
//!
//! Run with: `cargo run -p cano --example scheduler_cron --features scheduler`
//!
//! A report workflow is registered with the cron expression `*/2 * * * * *` (seconds
//! field first: every second second, evaluated in UTC). Nothing runs at start; each run
//! happens on a tick. A second flow, `0 0 0 * * *` (daily at midnight UTC), is registered
//! too and never fires during the demo. After about seven seconds the program stops the
//! scheduler and prints what each flow did.

use cano::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Report,
    Done,
}

/// Counts the reports it has written.
#[derive(Clone, Default, Resource)]
struct Outbox {
    sent: Arc<AtomicU32>,
}

struct WriteReport;

#[task(state = Step)]
impl WriteReport {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        let outbox = res.get::<Outbox, _>("outbox")?;
        let n = outbox.sent.fetch_add(1, Ordering::SeqCst) + 1;
        println!(
            "  {}  report #{n} written",
            chrono::Utc::now().format("%H:%M:%S%.3f")
        );
        Ok(TaskResult::Single(Step::Done))
    }
}

fn report_workflow(outbox: &Outbox) -> Workflow<Step> {
    Workflow::new(Resources::new().insert("outbox", outbox.clone()))
        .register(Step::Report, WriteReport)
        .add_exit_state(Step::Done)
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let outbox = Outbox::default();
    let mut scheduler = Scheduler::new();
    scheduler.cron(
        "every-2s",
        report_workflow(&outbox),
        Step::Report,
        "*/2 * * * * *",
    )?;
    scheduler.cron(
        "midnight",
        report_workflow(&outbox),
        Step::Report,
        "0 0 0 * * *",
    )?;

    // A bad expression is an error, not a panic.
    let typo = scheduler.cron(
        "typo",
        report_workflow(&outbox),
        Step::Report,
        "*/5 * * * *",
    );
    println!(
        "five-field expression rejected: {}",
        typo.unwrap_err()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
    );

    println!(
        "started at {} UTC",
        chrono::Utc::now().format("%H:%M:%S%.3f")
    );
    let running = scheduler.start().await?;
    tokio::time::sleep(Duration::from_secs(7)).await;
    running.stop().await?;

    for flow in running.list().await {
        println!(
            "{:<9} runs: {}  status: {:?}  last run: {}",
            flow.id,
            flow.run_count,
            flow.status,
            flow.last_run.map_or("never".to_string(), |t| t
                .format("%H:%M:%S%.3f")
                .to_string())
        );
    }
    let every_2s = running.status("every-2s").await.expect("registered");
    assert!((3..=4).contains(&every_2s.run_count));
    assert_eq!(
        running.status("midnight").await.map(|f| f.run_count),
        Some(0)
    );
    Ok(())
}
