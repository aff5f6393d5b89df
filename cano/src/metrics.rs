//! Metrics (feature `metrics`), on the [`metrics`](https://docs.rs/metrics) facade: install
//! any recorder (a Prometheus exporter, StatsD, an in-process one in tests) and cano
//! reports to it.
//!
//! Two layers, as with `tracing`:
//!
//! 1. **Engine instrumentation**: runs (count by outcome, duration, how many are active),
//!    each state's work (duration by state and kind), task attempts, circuit breakers,
//!    split branches, the processing models' loops, checkpoint appends and clears, saga
//!    compensations, scheduled flows and rate limiters. It is **off until switched on**
//!    with [`enable`] (or [`describe`], or by creating a [`MetricsObserver`]): until then
//!    every hook is one relaxed atomic load and formats nothing, so a program built with
//!    the feature but without a recorder pays nothing measurable.
//! 2. **[`MetricsObserver`]**: a [`WorkflowObserver`] that counts what observers see
//!    (states entered, tasks run and their outcome, retries, breaker rejections,
//!    checkpoints, resumes, rollbacks, cancellations, timeouts, signals), per workflow it
//!    is attached to.
//!
//! ```
//! use cano::metrics::{self, MetricsObserver};
//! use cano::prelude::*;
//! use std::sync::Arc;
//!
//! // In a program: install a recorder first (e.g. a Prometheus exporter), then
//! metrics::describe(); // help texts and units; also switches the engine's metrics on
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { A, Done }
//! # struct T;
//! # #[task(state = S)]
//! # impl T { async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> { Ok(TaskResult::Single(S::Done)) } }
//! let wf = Workflow::bare()
//!     .register(S::A, T)
//!     .add_exit_state(S::Done)
//!     .with_observer(Arc::new(MetricsObserver::new()));
//! # metrics::disable();
//! ```
//!
//! # Metrics
//!
//! Every name starts with `cano_`; the constants in [`names`] spell them.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `cano_workflow_runs_total` | counter | `outcome` = success, failure, cancelled, timeout | runs that ended |
//! | `cano_workflow_duration_seconds` | histogram | — | a run's duration, setup and teardown included |
//! | `cano_workflow_active` | gauge | — | runs in progress |
//! | `cano_task_duration_seconds` | histogram | `state`, `kind` = single, router, split, stepped, compensatable, timer, signal, stream | one state's work, retries included |
//! | `cano_task_attempts_total` | counter | `outcome` = success, failure, timeout, panic | attempts of any work |
//! | `cano_circuit_rejections_total` | counter | — | attempts an open breaker refused |
//! | `cano_circuit_transitions_total` | counter | `transition` = closed_to_open, open_to_halfopen, halfopen_to_closed, halfopen_to_open | breaker state changes |
//! | `cano_circuit_acquires_total` | counter | `result` = admitted, rejected_open, rejected_half_open_busy | `try_acquire` calls |
//! | `cano_circuit_outcomes_total` | counter | `outcome` = success, failure | outcomes reported to breakers |
//! | `cano_split_branch_results_total` | counter | `result` = success, failure | split members that finished |
//! | `cano_poll_iterations_total` | counter | `result` = ready, pending | poll loop iterations |
//! | `cano_batch_runs_total` | counter | `outcome` = success, failure | batch runs |
//! | `cano_batch_items_total` | counter | `result` = ok, err | batch items processed |
//! | `cano_step_iterations_total` | counter | `result` = more, done | stepped task steps |
//! | `cano_stream_runs_total` | counter | `outcome` = success, failure, cancelled | stream states that ended |
//! | `cano_stream_items_total` | counter | `result` = ok, error | stream items processed |
//! | `cano_stream_windows_total` | counter | — | windows flushed and committed |
//! | `cano_stream_window_outputs` | histogram | — | outputs per flushed window |
//! | `cano_checkpoint_appends_total` | counter | `result` = ok, error | rows appended |
//! | `cano_checkpoint_clears_total` | counter | `result` = ok, error | logs cleared |
//! | `cano_compensations_run_total` | counter | `result` = ok, error | saga steps compensated |
//! | `cano_compensation_drains_total` | counter | `outcome` = clean, partial | rollbacks that ended |
//! | `cano_scheduler_flow_runs_total` | counter | `flow`, `outcome` = success, failure, cancelled | scheduled runs |
//! | `cano_scheduler_flow_duration_seconds` | histogram | `flow` | a scheduled run's duration |
//! | `cano_scheduler_flow_backoff_total` | counter | `flow` | failures that put a flow in backoff |
//! | `cano_scheduler_flow_tripped_total` | counter | `flow` | failures that tripped a flow |
//! | `cano_rate_limiter_acquired_total` | counter | — | permits granted |
//! | `cano_rate_limiter_tokens_consumed_total` | counter | — | tokens those permits took |
//! | `cano_rate_limiter_throttled_total` | counter | `result` = waited, rejected; `tier` | requests a limiter held back |
//! | `cano_rate_limiter_wait_seconds` | histogram | — | how long a held-back `acquire` waited |
//!
//! [`MetricsObserver`] adds `cano_state_enters_total{state}`,
//! `cano_observed_task_runs_total{task, outcome}`, `cano_task_retries_total{task}`,
//! `cano_circuit_open_events_total{task}`, `cano_checkpoints_observed_total`,
//! `cano_resumes_total`, `cano_rollbacks_total`, `cano_observed_compensations_total{task,
//! result}`, `cano_observed_cancellations_total`, `cano_observed_workflow_timeouts_total`,
//! `cano_signals_total{signal, result}`, `cano_observed_runs_total{outcome}` and
//! `cano_observed_unknown_resume_states_total`.
//!
//! # Label policy
//!
//! Labels take values from closed sets (outcomes, kinds), from what the program declares
//! (state `Debug` texts, task names, flow ids, rate-limit tier names, signal names) — never
//! from run ids, errors, payloads or anything else that grows with traffic. The hottest
//! counters (attempts, breaker internals, loop iterations) carry no state or task label.
//! A state whose `Debug` text carries data (`Retry { attempt: 3 }`) makes one series per
//! value: keep such states out of workflows you measure, or measure with the observer
//! only where the set is small.

use crate::error::CanoError;
use crate::observer::WorkflowObserver;
use ::metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The metric names, all prefixed `cano_`.
pub mod names {
    /// Runs that ended, by `outcome`.
    pub const WORKFLOW_RUNS: &str = "cano_workflow_runs_total";
    /// A run's duration.
    pub const WORKFLOW_DURATION: &str = "cano_workflow_duration_seconds";
    /// Runs in progress.
    pub const WORKFLOW_ACTIVE: &str = "cano_workflow_active";
    /// One state's work, by `state` and `kind`.
    pub const TASK_DURATION: &str = "cano_task_duration_seconds";
    /// Attempts, by `outcome`.
    pub const TASK_ATTEMPTS: &str = "cano_task_attempts_total";
    /// Attempts an open breaker refused.
    pub const CIRCUIT_REJECTIONS: &str = "cano_circuit_rejections_total";
    /// Breaker state changes, by `transition`.
    pub const CIRCUIT_TRANSITIONS: &str = "cano_circuit_transitions_total";
    /// Breaker `try_acquire` calls, by `result`.
    pub const CIRCUIT_ACQUIRES: &str = "cano_circuit_acquires_total";
    /// Outcomes reported to breakers, by `outcome`.
    pub const CIRCUIT_OUTCOMES: &str = "cano_circuit_outcomes_total";
    /// Split members that finished, by `result`.
    pub const SPLIT_BRANCH_RESULTS: &str = "cano_split_branch_results_total";
    /// Poll loop iterations, by `result`.
    pub const POLL_ITERATIONS: &str = "cano_poll_iterations_total";
    /// Batch runs, by `outcome`.
    pub const BATCH_RUNS: &str = "cano_batch_runs_total";
    /// Batch items, by `result`.
    pub const BATCH_ITEMS: &str = "cano_batch_items_total";
    /// Stepped task steps, by `result`.
    pub const STEP_ITERATIONS: &str = "cano_step_iterations_total";
    /// Stream states that ended, by `outcome`.
    pub const STREAM_RUNS: &str = "cano_stream_runs_total";
    /// Stream items processed, by `result`.
    pub const STREAM_ITEMS: &str = "cano_stream_items_total";
    /// Stream windows flushed and committed.
    pub const STREAM_WINDOWS: &str = "cano_stream_windows_total";
    /// Outputs per flushed stream window.
    pub const STREAM_WINDOW_SIZE: &str = "cano_stream_window_outputs";
    /// Checkpoint rows appended, by `result`.
    pub const CHECKPOINT_APPENDS: &str = "cano_checkpoint_appends_total";
    /// Checkpoint logs cleared, by `result`.
    pub const CHECKPOINT_CLEARS: &str = "cano_checkpoint_clears_total";
    /// Saga steps compensated, by `result`.
    pub const COMPENSATIONS_RUN: &str = "cano_compensations_run_total";
    /// Rollbacks that ended, by `outcome`.
    pub const COMPENSATION_DRAINS: &str = "cano_compensation_drains_total";
    /// Scheduled runs, by `flow` and `outcome`.
    pub const SCHEDULER_FLOW_RUNS: &str = "cano_scheduler_flow_runs_total";
    /// A scheduled run's duration, by `flow`.
    pub const SCHEDULER_FLOW_DURATION: &str = "cano_scheduler_flow_duration_seconds";
    /// Failures that put a flow in backoff, by `flow`.
    pub const SCHEDULER_FLOW_BACKOFF: &str = "cano_scheduler_flow_backoff_total";
    /// Failures that tripped a flow, by `flow`.
    pub const SCHEDULER_FLOW_TRIPPED: &str = "cano_scheduler_flow_tripped_total";
    /// Rate limiter permits granted.
    pub const RATE_LIMITER_ACQUIRED: &str = "cano_rate_limiter_acquired_total";
    /// Tokens the granted permits took.
    pub const RATE_LIMITER_TOKENS: &str = "cano_rate_limiter_tokens_consumed_total";
    /// Requests a limiter held back, by `result` and `tier`.
    pub const RATE_LIMITER_THROTTLED: &str = "cano_rate_limiter_throttled_total";
    /// How long a held-back `acquire` waited.
    pub const RATE_LIMITER_WAIT: &str = "cano_rate_limiter_wait_seconds";

    /// States entered, by `state` ([`MetricsObserver`](super::MetricsObserver)).
    pub const STATE_ENTERS: &str = "cano_state_enters_total";
    /// Tasks that finished, by `task` and `outcome` (observer).
    pub const OBSERVED_TASK_RUNS: &str = "cano_observed_task_runs_total";
    /// Retries, by `task` (observer).
    pub const TASK_RETRIES: &str = "cano_task_retries_total";
    /// Breaker rejections, by `task` (observer).
    pub const CIRCUIT_OPEN_EVENTS: &str = "cano_circuit_open_events_total";
    /// Checkpoint rows stored (observer).
    pub const CHECKPOINTS_OBSERVED: &str = "cano_checkpoints_observed_total";
    /// Resumed runs (observer).
    pub const RESUMES: &str = "cano_resumes_total";
    /// Rollbacks started (observer).
    pub const ROLLBACKS: &str = "cano_rollbacks_total";
    /// Compensations, by `task` and `result` (observer).
    pub const OBSERVED_COMPENSATIONS: &str = "cano_observed_compensations_total";
    /// Cancelled runs (observer).
    pub const OBSERVED_CANCELLATIONS: &str = "cano_observed_cancellations_total";
    /// Runs past their total timeout (observer).
    pub const OBSERVED_WORKFLOW_TIMEOUTS: &str = "cano_observed_workflow_timeouts_total";
    /// Signals received or rejected, by `signal` and `result` (observer).
    pub const SIGNALS: &str = "cano_signals_total";
    /// Runs that ended, by `outcome` (observer).
    pub const OBSERVED_RUNS: &str = "cano_observed_runs_total";
    /// Rows of resumed logs naming states no longer registered (observer).
    pub const OBSERVED_UNKNOWN_RESUME_STATES: &str = "cano_observed_unknown_resume_states_total";
}

/// Switch the engine's metrics on (see the [module docs](self)). Idempotent.
pub fn enable() {
    crate::instrument::ENABLED.store(true, Ordering::Relaxed);
}

/// Switch the engine's metrics off again ([`MetricsObserver`]s still count).
pub fn disable() {
    crate::instrument::ENABLED.store(false, Ordering::Relaxed);
}

/// Whether the engine's metrics are on.
pub fn is_enabled() -> bool {
    crate::instrument::enabled()
}

/// Register a help text and unit for every metric with the installed recorder, and
/// switch the engine's metrics on. Call it once after installing a recorder; calling it
/// again is harmless.
pub fn describe() {
    use names::*;
    let counters: &[(&'static str, &'static str)] = &[
        (WORKFLOW_RUNS, "Workflow runs that ended, by outcome"),
        (TASK_ATTEMPTS, "Task attempts, by outcome"),
        (
            CIRCUIT_REJECTIONS,
            "Attempts refused by an open circuit breaker",
        ),
        (CIRCUIT_TRANSITIONS, "Circuit breaker state changes"),
        (
            CIRCUIT_ACQUIRES,
            "Circuit breaker try_acquire calls, by result",
        ),
        (CIRCUIT_OUTCOMES, "Outcomes reported to circuit breakers"),
        (
            SPLIT_BRANCH_RESULTS,
            "Split members that finished, by result",
        ),
        (POLL_ITERATIONS, "Poll loop iterations, by result"),
        (BATCH_RUNS, "Batch task runs, by outcome"),
        (BATCH_ITEMS, "Batch items processed, by result"),
        (STEP_ITERATIONS, "Stepped task steps, by result"),
        (STREAM_RUNS, "Stream states that ended, by outcome"),
        (STREAM_ITEMS, "Stream items processed, by result"),
        (STREAM_WINDOWS, "Stream windows flushed and committed"),
        (CHECKPOINT_APPENDS, "Checkpoint rows appended, by result"),
        (CHECKPOINT_CLEARS, "Checkpoint logs cleared, by result"),
        (COMPENSATIONS_RUN, "Saga steps compensated, by result"),
        (
            COMPENSATION_DRAINS,
            "Saga rollbacks that ended, clean or partial",
        ),
        (SCHEDULER_FLOW_RUNS, "Scheduled runs, by flow and outcome"),
        (
            SCHEDULER_FLOW_BACKOFF,
            "Scheduled run failures that put the flow in backoff",
        ),
        (
            SCHEDULER_FLOW_TRIPPED,
            "Scheduled run failures that tripped the flow",
        ),
        (RATE_LIMITER_ACQUIRED, "Rate limiter permits granted"),
        (
            RATE_LIMITER_TOKENS,
            "Tokens taken by granted rate limiter permits",
        ),
        (
            RATE_LIMITER_THROTTLED,
            "Requests a rate limiter held back, by result and tier",
        ),
        (STATE_ENTERS, "States entered, by state (MetricsObserver)"),
        (
            OBSERVED_TASK_RUNS,
            "Tasks that finished, by task and outcome (MetricsObserver)",
        ),
        (TASK_RETRIES, "Task retries, by task (MetricsObserver)"),
        (
            CIRCUIT_OPEN_EVENTS,
            "Circuit breaker rejections, by task (MetricsObserver)",
        ),
        (
            CHECKPOINTS_OBSERVED,
            "Checkpoint rows stored (MetricsObserver)",
        ),
        (RESUMES, "Resumed runs (MetricsObserver)"),
        (ROLLBACKS, "Saga rollbacks started (MetricsObserver)"),
        (
            OBSERVED_COMPENSATIONS,
            "Compensations, by task and result (MetricsObserver)",
        ),
        (OBSERVED_CANCELLATIONS, "Cancelled runs (MetricsObserver)"),
        (
            OBSERVED_WORKFLOW_TIMEOUTS,
            "Runs past their total timeout (MetricsObserver)",
        ),
        (
            SIGNALS,
            "Signals received or rejected, by signal and result (MetricsObserver)",
        ),
        (
            OBSERVED_RUNS,
            "Runs that ended, by outcome (MetricsObserver)",
        ),
        (
            OBSERVED_UNKNOWN_RESUME_STATES,
            "Resumed log rows naming states no longer registered (MetricsObserver)",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(*name, Unit::Count, *help);
    }
    describe_gauge!(WORKFLOW_ACTIVE, Unit::Count, "Workflow runs in progress");
    let seconds: &[(&'static str, &'static str)] = &[
        (WORKFLOW_DURATION, "Workflow run duration"),
        (
            TASK_DURATION,
            "Duration of one state's work, by state and kind",
        ),
        (SCHEDULER_FLOW_DURATION, "Scheduled run duration, by flow"),
        (
            RATE_LIMITER_WAIT,
            "How long a held-back rate limiter acquire waited",
        ),
    ];
    for (name, help) in seconds {
        describe_histogram!(*name, Unit::Seconds, *help);
    }
    describe_histogram!(
        STREAM_WINDOW_SIZE,
        Unit::Count,
        "Outputs per flushed stream window"
    );
    enable();
}

/// A [`WorkflowObserver`] that turns what observers see into counters (names in the
/// [module docs](self)). Creating one switches the engine's metrics on as well.
#[derive(Debug, Clone, Copy)]
pub struct MetricsObserver(());

impl Default for MetricsObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsObserver {
    /// A metrics observer (and the engine's metrics switched on).
    #[must_use]
    pub fn new() -> Self {
        enable();
        Self(())
    }
}

fn result_label(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

impl WorkflowObserver for MetricsObserver {
    fn on_state_enter(&self, state: &str) {
        counter!(names::STATE_ENTERS, "state" => state.to_string()).increment(1);
    }
    fn on_task_success(&self, task_id: &str) {
        counter!(names::OBSERVED_TASK_RUNS, "task" => task_id.to_string(), "outcome" => "success")
            .increment(1);
    }
    fn on_task_failure(&self, task_id: &str, _err: &CanoError) {
        counter!(names::OBSERVED_TASK_RUNS, "task" => task_id.to_string(), "outcome" => "failure")
            .increment(1);
    }
    fn on_retry(&self, task_id: &str, _attempt: u32) {
        counter!(names::TASK_RETRIES, "task" => task_id.to_string()).increment(1);
    }
    fn on_circuit_open(&self, task_id: &str) {
        counter!(names::CIRCUIT_OPEN_EVENTS, "task" => task_id.to_string()).increment(1);
    }
    fn on_checkpoint(&self, _workflow_id: &str, _sequence: u64) {
        counter!(names::CHECKPOINTS_OBSERVED).increment(1);
    }
    fn on_resume(&self, _workflow_id: &str, _sequence: u64) {
        counter!(names::RESUMES).increment(1);
    }
    fn on_rollback_started(&self, _steps: usize, _cause: &CanoError) {
        counter!(names::ROLLBACKS).increment(1);
    }
    fn on_compensated(&self, task_id: &str) {
        counter!(names::OBSERVED_COMPENSATIONS, "task" => task_id.to_string(), "result" => result_label(true))
            .increment(1);
    }
    fn on_compensation_failed(&self, task_id: &str, _error: &CanoError) {
        counter!(names::OBSERVED_COMPENSATIONS, "task" => task_id.to_string(), "result" => result_label(false))
            .increment(1);
    }
    fn on_cancelled(&self, _state: &str) {
        counter!(names::OBSERVED_CANCELLATIONS).increment(1);
    }
    fn on_workflow_timeout(&self, _elapsed: Duration, _limit: Duration) {
        counter!(names::OBSERVED_WORKFLOW_TIMEOUTS).increment(1);
    }
    fn on_signal_received(&self, name: &str, _id: &str) {
        counter!(names::SIGNALS, "signal" => name.to_string(), "result" => "received").increment(1);
    }
    fn on_signal_rejected(&self, name: &str, _id: &str, _error: &CanoError) {
        counter!(names::SIGNALS, "signal" => name.to_string(), "result" => "rejected").increment(1);
    }
    fn on_unknown_resume_state(&self, _workflow_id: &str, _sequence: u64, _state: &str) {
        counter!(names::OBSERVED_UNKNOWN_RESUME_STATES).increment(1);
    }
    fn on_run_end(&self, outcome: Result<&str, &CanoError>) {
        let outcome = match outcome {
            Ok(_) => "success",
            Err(e) if e.is_cancelled() => "cancelled",
            Err(e) if e.is_workflow_timeout() => "timeout",
            Err(_) => "failure",
        };
        counter!(names::OBSERVED_RUNS, "outcome" => outcome).increment(1);
    }
}
