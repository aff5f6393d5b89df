//! # Circuit breaker: trip on failures, reject fast, probe, recover
//!
//! Run with: `cargo run -p cano --example circuit_breaker`
//!
//! A task calls a flaky dependency through a shared [`CircuitBreaker`] attached with
//! [`TaskConfig::with_circuit_breaker`]. The dependency is down for the first runs:
//! after two failures the breaker opens and later runs are rejected without calling the
//! dependency at all. Once the reset timeout has passed, a probe call goes through, the
//! dependency is back, and the breaker closes again.

use cano::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Call,
    Done,
}

/// The outside service. The flags are shared so `main` can watch and repair it.
#[derive(Clone, Default, Resource)]
struct Dependency {
    up: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
}

struct CallDependency {
    breaker: Arc<CircuitBreaker>,
}

#[task(state = Step)]
impl CallDependency {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal().with_circuit_breaker(Arc::clone(&self.breaker))
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        let dep = res.get::<Dependency, _>("dependency")?;
        dep.calls.fetch_add(1, Ordering::SeqCst);
        if dep.up.load(Ordering::SeqCst) {
            Ok(TaskResult::Single(Step::Done))
        } else {
            Err(CanoError::task_execution("dependency unavailable"))
        }
    }
}

fn describe(state: CircuitState) -> &'static str {
    match state {
        CircuitState::Closed => "closed",
        CircuitState::Open { .. } => "open",
        CircuitState::HalfOpen => "half-open",
    }
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let breaker = Arc::new(CircuitBreaker::new(CircuitPolicy {
        failure_threshold: 2,
        reset_timeout: Duration::from_millis(200),
        half_open_max_calls: 1,
    }));
    let dependency = Dependency::default();
    let workflow = Workflow::new(Resources::new().insert("dependency", dependency.clone()))
        .register(
            Step::Call,
            CallDependency {
                breaker: Arc::clone(&breaker),
            },
        )
        .add_exit_state(Step::Done);

    for run in 1..=4 {
        let outcome = workflow.orchestrate(Step::Call).await;
        println!(
            "run {run}: {:<60} breaker {}",
            match &outcome {
                Ok(s) => format!("reached {s:?}"),
                Err(e) => e.to_string(),
            },
            describe(breaker.state())
        );
    }

    println!(
        "the dependency was called {} times in 4 runs",
        dependency.calls.load(Ordering::SeqCst)
    );
    assert_eq!(dependency.calls.load(Ordering::SeqCst), 2);

    println!("... the dependency comes back; waiting out the reset timeout");
    dependency.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;

    let outcome = workflow.orchestrate(Step::Call).await?;
    println!(
        "run 5: probe reached {outcome:?}; breaker {}",
        describe(breaker.state())
    );
    assert_eq!(breaker.state(), CircuitState::Closed);
    Ok(())
}
