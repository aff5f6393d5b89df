//! # Observers: count what a workflow does
//!
//! Run with: `cargo run -p cano --example observer_metrics`
//!
//! A [`WorkflowObserver`] that keeps counters (states entered, tasks started, succeeded,
//! failed, retries) and an ordered event log. It prints the event order of one run of a
//! small workflow (a retried step, then a split state), then watches 50 concurrent runs
//! of it, during which the flaky service rejects its first 25 calls, and prints totals.

use cano::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Load,
    Enrich,
    Publish,
    Done,
}

#[derive(Default)]
struct Metrics {
    states: AtomicU64,
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    log: Mutex<Vec<String>>,
}

impl Metrics {
    fn record(&self, event: String) {
        if let Ok(mut log) = self.log.lock() {
            log.push(event);
        }
    }
}

impl WorkflowObserver for Metrics {
    fn on_state_enter(&self, state: &str) {
        self.states.fetch_add(1, Ordering::Relaxed);
        self.record(format!("enter {state}"));
    }
    fn on_task_start(&self, task_id: &str) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.record(format!("start {task_id}"));
    }
    fn on_task_success(&self, task_id: &str) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        self.record(format!("ok {task_id}"));
    }
    fn on_task_failure(&self, task_id: &str, err: &CanoError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.record(format!("fail {task_id}: {err}"));
    }
    fn on_retry(&self, task_id: &str, attempt: u32) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.record(format!("retry {task_id} after attempt {attempt}"));
    }
}

struct Load;
#[task(state = Step)]
impl Load {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "load".into()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Enrich))
    }
}

/// The enrichment service is busy for its first `busy_calls` calls; retried without delay.
struct Enrich {
    calls: AtomicU64,
    busy_calls: u64,
}
#[task(state = Step)]
impl Enrich {
    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_fixed_retry(self.busy_calls as usize, Duration::ZERO)
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "enrich".into()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        if self.calls.fetch_add(1, Ordering::Relaxed) < self.busy_calls {
            return Err(CanoError::task_execution("enrichment service busy"));
        }
        Ok(TaskResult::Single(Step::Publish))
    }
}

#[derive(Clone)]
struct Publish;
#[task(state = Step)]
impl Publish {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "publish".into()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

fn workflow(metrics: Arc<Metrics>, busy_calls: u64) -> Workflow<Step> {
    Workflow::bare()
        .register(Step::Load, Load)
        .register(
            Step::Enrich,
            Enrich {
                calls: AtomicU64::new(0),
                busy_calls,
            },
        )
        .register_split(
            Step::Publish,
            vec![Publish; 3],
            JoinConfig::new(JoinStrategy::All, Step::Done),
        )
        .add_exit_state(Step::Done)
        .with_observer(metrics)
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    // One run, to show the order of events.
    let single = Arc::new(Metrics::default());
    workflow(single.clone(), 1).orchestrate(Step::Load).await?;
    println!("events of one run:");
    for event in single.log.lock().map(|l| l.clone()).unwrap_or_default() {
        println!("  {event}");
    }

    // Fifty concurrent runs of one shared workflow.
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(workflow(metrics.clone(), 25));
    let runs: Vec<_> = (0..50)
        .map(|_| {
            let wf = Arc::clone(&shared);
            tokio::spawn(async move { wf.orchestrate(Step::Load).await })
        })
        .collect();
    for run in runs {
        run.await.map_err(|e| CanoError::generic(e.to_string()))??;
    }
    println!(
        "\n50 runs: {} states entered, {} tasks started, {} succeeded, {} failed, {} retries",
        metrics.states.load(Ordering::Relaxed),
        metrics.started.load(Ordering::Relaxed),
        metrics.succeeded.load(Ordering::Relaxed),
        metrics.failed.load(Ordering::Relaxed),
        metrics.retries.load(Ordering::Relaxed),
    );
    assert_eq!(metrics.states.load(Ordering::Relaxed), 50 * 4);
    assert_eq!(metrics.retries.load(Ordering::Relaxed), 25);
    Ok(())
}
