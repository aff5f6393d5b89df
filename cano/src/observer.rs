//! Observing workflow runs: [`WorkflowObserver`] (and, with the `tracing` feature,
//! `TracingObserver`).
//!
//! Observers receive synchronous callbacks as a run progresses: states entered, task
//! starts and outcomes, retries, circuit-breaker rejections, checkpoints and resumes.
//! Every method has a no-op default; implement the ones you need.
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Default)]
//! struct Log(Mutex<Vec<String>>);
//!
//! impl WorkflowObserver for Log {
//!     fn on_state_enter(&self, state: &str) {
//!         self.0.lock().unwrap().push(format!("enter {state}"));
//!     }
//! }
//!
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { A, Done }
//! # struct T;
//! # #[task(state = S)] impl T { async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) } }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), CanoError> {
//! let log = Arc::new(Log::default());
//! let wf = Workflow::bare().register(S::A, T).add_exit_state(S::Done).with_observer(log.clone());
//! wf.orchestrate(S::A).await?;
//! assert_eq!(*log.0.lock().unwrap(), ["enter A", "enter Done"]);
//! # Ok(()) }
//! ```

use crate::error::CanoError;
use std::sync::Arc;

/// Call `f` on every observer, in order. An observer that panics does not take the run (or
/// the worker thread) down: the panic is caught and reported — `tracing` at ERROR with the
/// `tracing` feature, otherwise one line on stderr per process — and the other observers
/// still hear the event.
pub(crate) fn each(observers: &[Arc<dyn WorkflowObserver>], f: impl Fn(&dyn WorkflowObserver)) {
    for o in observers {
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&**o)));
        if let Err(payload) = called {
            report_panic(&crate::util::panic_message(&*payload));
        }
    }
}

fn report_panic(message: &str) {
    #[cfg(feature = "tracing")]
    tracing::error!(panic = message, "observer panicked; the run goes on");
    #[cfg(not(feature = "tracing"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            eprintln!(
                "cano: an observer panicked ({message}); the run goes on (reported once per process)"
            );
        });
    }
}

/// Callbacks fired while a workflow runs. All methods default to doing nothing.
///
/// Callbacks run inline on the engine's task (split members may call them
/// concurrently from several tasks), so keep them short and non-blocking.
pub trait WorkflowObserver: Send + Sync + 'static {
    /// The run entered `state` (its `Debug` text).
    fn on_state_enter(&self, _state: &str) {}
    /// A task is about to run. Split members are named `"{name}[{index}]"`.
    fn on_task_start(&self, _task_id: &str) {}
    /// A task succeeded (after any retries).
    fn on_task_success(&self, _task_id: &str) {}
    /// A task failed for good.
    fn on_task_failure(&self, _task_id: &str, _err: &CanoError) {}
    /// Attempt number `attempt` (1-based) failed and will be retried.
    fn on_retry(&self, _task_id: &str, _attempt: u32) {}
    /// A circuit breaker rejected the task.
    fn on_circuit_open(&self, _task_id: &str) {}
    /// A checkpoint row with `sequence` was stored for `workflow_id`.
    fn on_checkpoint(&self, _workflow_id: &str, _sequence: u64) {}
    /// A run is resuming `workflow_id` after the row with `sequence`.
    fn on_resume(&self, _workflow_id: &str, _sequence: u64) {}
    /// Attempt number `attempt` (1-based) of a task failed with `error`. Fired for every
    /// failed attempt, before [`on_retry`](Self::on_retry) when the task will be retried.
    fn on_attempt_failed(&self, _task_id: &str, _attempt: u32, _error: &CanoError) {}
    /// A saga rollback began: `steps` completed steps will be compensated (most recent
    /// first) because the run failed with `cause`.
    fn on_rollback_started(&self, _steps: usize, _cause: &CanoError) {}
    /// The saga step `task_id` was compensated.
    fn on_compensated(&self, _task_id: &str) {}
    /// Compensating the saga step `task_id` failed with `error`; the run's log is kept so
    /// that `resume_from` can finish the rollback.
    fn on_compensation_failed(&self, _task_id: &str, _error: &CanoError) {}
    /// The checkpoint log of `workflow_id` could not be cleared after the run ended (the
    /// run's outcome is unchanged; the log is left behind).
    fn on_checkpoint_clear_failed(&self, _workflow_id: &str, _error: &CanoError) {}
    /// A resource's teardown failed after a run (the run's outcome is unchanged).
    fn on_teardown_failed(&self, _error: &CanoError) {}
    /// A run ended: `Ok` with the exit state's `Debug` text, or `Err` with the error the
    /// run returns. Fired once per `orchestrate` / `resume_from` / scheduled run that got
    /// past its checks (validation, reading the log), after teardown.
    fn on_run_end(&self, _outcome: Result<&str, &CanoError>) {}
    /// The run was cancelled through its
    /// [`CancellationHandle`](crate::cancel::CancellationHandle) in `state` (its `Debug`
    /// text). Fired once per run, before the saga's rollback.
    fn on_cancelled(&self, _state: &str) {}
    /// The run passed its [total timeout](crate::Workflow::with_total_timeout) after
    /// running for `elapsed` (`limit` is the timeout). Fired once per run, before the
    /// saga's rollback.
    fn on_workflow_timeout(&self, _elapsed: std::time::Duration, _limit: std::time::Duration) {}
    /// A signal state consumed the signal `name` with the sender's id `id` (its row is in
    /// the run's log).
    fn on_signal_received(&self, _name: &str, _id: &str) {}
    /// A pending signal was dropped without being consumed: its payload does not
    /// deserialize into the task's payload type (`error` says why). The run keeps waiting.
    fn on_signal_rejected(&self, _name: &str, _id: &str, _error: &CanoError) {}
    /// A resumed run's log names, in the row with `sequence`, a state (`state`, its
    /// `Debug` text) that is no longer registered in the workflow — one the code no longer
    /// has, before the resume point. The row is skipped and the resume goes on (a resume
    /// point in such a state is an error instead).
    fn on_unknown_resume_state(&self, _workflow_id: &str, _sequence: u64, _state: &str) {}
    /// The run `workflow_id` starts waiting, its wait recorded in its log: a
    /// [timer](crate::TimerTask) until `deadline_ms`, or a [signal](crate::signal) state
    /// for `signal` (until `deadline_ms`, if it has a timeout); milliseconds since the Unix
    /// epoch, UTC. Fired when the run is about to sleep (not for a deadline already past
    /// or a signal already there). Dropping the run's future from here on loses nothing:
    /// `resume_from` continues the wait for what is left of it (the cluster runtime frees
    /// a worker's slot this way).
    fn on_wait(&self, _workflow_id: &str, _deadline_ms: Option<u64>, _signal: Option<&str>) {}
}

/// An observer that turns every callback into a `tracing` event with target
/// `cano::observer`.
#[cfg(feature = "tracing")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingObserver;

#[cfg(feature = "tracing")]
impl TracingObserver {
    /// A new tracing observer.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

#[cfg(feature = "tracing")]
impl WorkflowObserver for TracingObserver {
    fn on_state_enter(&self, state: &str) {
        tracing::debug!(target: "cano::observer", state, "workflow entered state");
    }
    fn on_task_start(&self, task_id: &str) {
        tracing::debug!(target: "cano::observer", task_id, "task started");
    }
    fn on_task_success(&self, task_id: &str) {
        tracing::info!(target: "cano::observer", task_id, "task succeeded");
    }
    fn on_task_failure(&self, task_id: &str, err: &CanoError) {
        tracing::error!(target: "cano::observer", task_id, error = %err, "task failed");
    }
    fn on_retry(&self, task_id: &str, attempt: u32) {
        tracing::warn!(target: "cano::observer", task_id, attempt, "task retry");
    }
    fn on_circuit_open(&self, task_id: &str) {
        tracing::warn!(target: "cano::observer", task_id, "circuit breaker rejected task");
    }
    fn on_checkpoint(&self, workflow_id: &str, sequence: u64) {
        tracing::debug!(target: "cano::observer", workflow_id, sequence, "checkpoint appended");
    }
    fn on_resume(&self, workflow_id: &str, sequence: u64) {
        tracing::info!(target: "cano::observer", workflow_id, sequence, "workflow resumed from checkpoint");
    }
    fn on_attempt_failed(&self, task_id: &str, attempt: u32, error: &CanoError) {
        tracing::warn!(target: "cano::observer", task_id, attempt, error = %error, "task attempt failed");
    }
    fn on_rollback_started(&self, steps: usize, cause: &CanoError) {
        tracing::warn!(target: "cano::observer", steps, cause = %cause, "saga rollback started");
    }
    fn on_compensated(&self, task_id: &str) {
        tracing::info!(target: "cano::observer", task_id, "saga step compensated");
    }
    fn on_compensation_failed(&self, task_id: &str, error: &CanoError) {
        tracing::error!(target: "cano::observer", task_id, error = %error, "compensation failed");
    }
    fn on_checkpoint_clear_failed(&self, workflow_id: &str, error: &CanoError) {
        tracing::warn!(target: "cano::observer", workflow_id, error = %error, "checkpoint log not cleared");
    }
    fn on_teardown_failed(&self, error: &CanoError) {
        tracing::error!(target: "cano::observer", error = %error, "resource teardown failed");
    }
    fn on_cancelled(&self, state: &str) {
        tracing::warn!(target: "cano::observer", state, "workflow run cancelled");
    }
    fn on_workflow_timeout(&self, elapsed: std::time::Duration, limit: std::time::Duration) {
        tracing::warn!(target: "cano::observer", elapsed = ?elapsed, limit = ?limit, "workflow total timeout exceeded");
    }
    fn on_signal_received(&self, name: &str, id: &str) {
        tracing::info!(target: "cano::observer", signal = name, id, "signal received");
    }
    fn on_signal_rejected(&self, name: &str, id: &str, error: &CanoError) {
        tracing::warn!(target: "cano::observer", signal = name, id, error = %error, "signal rejected");
    }
    fn on_unknown_resume_state(&self, workflow_id: &str, sequence: u64, state: &str) {
        tracing::warn!(target: "cano::observer", workflow_id, sequence, state, "resumed log names an unregistered state");
    }
    fn on_wait(&self, workflow_id: &str, deadline_ms: Option<u64>, signal: Option<&str>) {
        tracing::info!(target: "cano::observer", workflow_id, deadline_ms, signal, "run waiting");
    }
    fn on_run_end(&self, outcome: Result<&str, &CanoError>) {
        match outcome {
            Ok(state) => {
                tracing::info!(target: "cano::observer", final_state = state, "workflow run ended")
            }
            Err(error) => {
                tracing::error!(target: "cano::observer", error = %error, "workflow run failed")
            }
        }
    }
}
