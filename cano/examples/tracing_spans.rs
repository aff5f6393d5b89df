//! # Tracing: spans around runs and `TracingObserver` events
//!
//! Run with: `cargo run -p cano --example tracing_spans --features tracing`
//!
//! Installs a `tracing-subscriber` formatter at DEBUG level, wraps a run in a custom span
//! with [`Workflow::with_tracing_span`], and attaches [`TracingObserver`], which turns
//! every engine event (state entered, task started, retry, failure, …) into a `tracing`
//! event with target `cano::observer`.

use cano::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Import,
    Index,
    Done,
}

struct Import;
#[task(state = Step)]
impl Import {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        tracing::info!(rows = 120, "imported rows");
        Ok(TaskResult::Single(Step::Index))
    }
}

/// Fails once, then succeeds: shows the retry event.
struct Index(AtomicU32);
#[task(state = Step)]
impl Index {
    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_fixed_retry(2, Duration::from_millis(5))
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(CanoError::task_execution("index locked"));
        }
        Ok(TaskResult::Single(Step::Done))
    }
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_target(true)
        .init();

    let workflow = Workflow::bare()
        .register(Step::Import, Import)
        .register(Step::Index, Index(AtomicU32::new(0)))
        .add_exit_state(Step::Done)
        .with_observer(Arc::new(TracingObserver::new()))
        .with_tracing_span(tracing::info_span!("nightly_import", batch = 42));

    let end = workflow.orchestrate(Step::Import).await?;
    tracing::info!(?end, "workflow finished");
    Ok(())
}
