//! # Split/join: run tasks in parallel and join them with each strategy
//!
//! Run with: `cargo run -p cano --example split_join`
//!
//! One split state fans out to four "replica" tasks with different latencies (one of
//! them fails). The same members are joined with every [`JoinStrategy`], showing when
//! each strategy returns and whether it succeeds. A last run caps concurrency with a
//! bulkhead and reports the peak number of members running at once.

use cano::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Fanout,
    Joined,
}

/// A replica answering after `delay_ms`, or failing.
#[derive(Clone)]
struct Replica {
    delay_ms: u64,
    fails: bool,
}

#[task(state = Step)]
impl Replica {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
        if self.fails {
            Err(CanoError::task_execution(format!(
                "replica at {} ms is down",
                self.delay_ms
            )))
        } else {
            Ok(TaskResult::Single(Step::Joined))
        }
    }
}

fn replicas() -> Vec<Replica> {
    vec![
        Replica {
            delay_ms: 20,
            fails: false,
        },
        Replica {
            delay_ms: 40,
            fails: true,
        },
        Replica {
            delay_ms: 60,
            fails: false,
        },
        Replica {
            delay_ms: 300,
            fails: false,
        },
    ]
}

async fn run(label: &str, join: JoinConfig<Step>) {
    let workflow = Workflow::bare()
        .register_split(Step::Fanout, replicas(), join)
        .add_exit_state(Step::Joined);
    let started = Instant::now();
    let outcome = workflow.orchestrate(Step::Fanout).await;
    let ms = started.elapsed().as_millis();
    match outcome {
        Ok(state) => println!("{label:<34} -> {state:?} after ~{ms} ms"),
        Err(err) => println!("{label:<34} -> error after ~{ms} ms: {err}"),
    }
}

/// Tracks how many members run at the same time.
#[derive(Clone)]
struct Gauge {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

#[task(state = Step)]
impl Gauge {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(TaskResult::Single(Step::Joined))
    }
}

#[tokio::main]
async fn main() {
    println!("members: ok@20ms, FAIL@40ms, ok@60ms, ok@300ms\n");
    run("All", JoinConfig::new(JoinStrategy::All, Step::Joined)).await;
    run("Any", JoinConfig::new(JoinStrategy::Any, Step::Joined)).await;
    run(
        "Quorum(2)",
        JoinConfig::new(JoinStrategy::Quorum(2), Step::Joined),
    )
    .await;
    run(
        "Percentage(0.75)",
        JoinConfig::new(JoinStrategy::Percentage(0.75), Step::Joined),
    )
    .await;
    run(
        "PartialResults(2)",
        JoinConfig::new(JoinStrategy::PartialResults(2), Step::Joined),
    )
    .await;
    run(
        "PartialTimeout (100 ms)",
        JoinConfig::new(JoinStrategy::PartialTimeout, Step::Joined)
            .with_timeout(Duration::from_millis(100)),
    )
    .await;
    run(
        "Quorum(2) with a 100 ms timeout",
        JoinConfig::new(JoinStrategy::Quorum(2), Step::Joined)
            .with_timeout(Duration::from_millis(100)),
    )
    .await;

    let gauge = Gauge {
        now: Arc::new(AtomicUsize::new(0)),
        peak: Arc::new(AtomicUsize::new(0)),
    };
    let workflow = Workflow::bare()
        .register_split(
            Step::Fanout,
            vec![gauge.clone(); 12],
            JoinConfig::new(JoinStrategy::All, Step::Joined).with_bulkhead(3),
        )
        .add_exit_state(Step::Joined);
    let end = workflow.orchestrate(Step::Fanout).await;
    println!(
        "\nbulkhead of 3 over 12 members -> {:?}; peak concurrency {}",
        end,
        gauge.peak.load(Ordering::SeqCst)
    );
    assert!(gauge.peak.load(Ordering::SeqCst) <= 3);
}
