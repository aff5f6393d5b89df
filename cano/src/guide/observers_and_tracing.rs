//! Observers and tracing: watching what runs do.
//!
//! Examples: `cano/examples/observer_metrics.rs`
//! (`cargo run -p cano --example observer_metrics`) counts events over 50 concurrent runs
//! and prints the event order of one; `cano/examples/tracing_spans.rs`
//! (`cargo run -p cano --example tracing_spans --features tracing`) shows the spans and
//! `TracingObserver` events in a `tracing-subscriber` log.
//!
//! # Observers
//!
//! A [`WorkflowObserver`](crate::WorkflowObserver) is a set of callbacks, each with a
//! do-nothing default; implement the ones you need and attach the observer with
//! [`with_observer`](crate::Workflow::with_observer). A workflow may have several; each
//! receives every event, in the order they were attached.
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! /// Counts failures per run, e.g. to export as a metric.
//! #[derive(Default)]
//! struct FailureCounter {
//!     failures: AtomicU64,
//!     retries: AtomicU64,
//! }
//!
//! impl WorkflowObserver for FailureCounter {
//!     fn on_task_failure(&self, task_id: &str, err: &CanoError) {
//!         self.failures.fetch_add(1, Ordering::Relaxed);
//!         eprintln!("{task_id} failed: {err}");
//!     }
//!     fn on_retry(&self, _task_id: &str, _attempt: u32) {
//!         self.retries.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum Step { Work, Done }
//! # struct Work;
//! # #[task(state = Step)]
//! # impl Work { async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> { Ok(TaskResult::Single(Step::Done)) } }
//!
//! let counter = Arc::new(FailureCounter::default());
//! let workflow = Workflow::bare()
//!     .register(Step::Work, Work)
//!     .add_exit_state(Step::Done)
//!     .with_observer(counter.clone()); // keep a handle to read the counts
//! ```
//!
//! The callbacks and what they receive:
//!
//! | callback | fires when | arguments |
//! |---|---|---|
//! | `on_state_enter` | the run enters a state (including the first and the exit state) | the state's `Debug` text |
//! | `on_task_start` | a task is about to run | the task's `name()`; split members are `"{name}[{index}]"` |
//! | `on_retry` | an attempt failed and will be retried | the task, the number of the attempt that failed (from 1) |
//! | `on_circuit_open` | a circuit breaker rejected the task | the task |
//! | `on_task_success` / `on_task_failure` | the task is done (after its retries) | the task (and the final error) |
//! | `on_checkpoint` | a checkpoint row was stored | the workflow id, the row's sequence number |
//! | `on_resume` | `resume_from` starts, before resource setup | the workflow id, the sequence of the last row found |
//! | `on_cancelled` | the run's cancellation token fired; once, before the rollback | the state it stopped in |
//! | `on_signal_received` / `on_signal_rejected` | a signal state consumed a signal / dropped one whose payload it cannot read | the signal's name and id (and why) |
//! | `on_wait` | a run starts waiting on a timer or for a signal, its wait in the log | the run's id, the deadline (ms since the Unix epoch), the signal's name |
//! | `on_workflow_timeout` | the run passed its total timeout; once, before the rollback | the time it ran, the limit |
//!
//! For a run `Start → Done` whose task fails once and then succeeds, the events are:
//!
//! ```text
//! on_state_enter("Start")
//! on_task_start("my_app::StartTask")
//! on_attempt_failed("my_app::StartTask", 1, &error)
//! on_retry("my_app::StartTask", 1)
//! on_task_success("my_app::StartTask")
//! on_state_enter("Done")
//! on_run_end(Ok("Done"))
//! ```
//!
//! For a split state, every member's `on_task_start` fires as the members start; their
//! retries arrive as they happen; the successes and then the failures are reported after
//! the join.
//!
//! Beyond those, observers hear each failed attempt with its error (`on_attempt_failed`,
//! before `on_retry`), a saga rollback starting (`on_rollback_started`), each step
//! compensated or failing to compensate (`on_compensated`, `on_compensation_failed`), a
//! checkpoint log that could not be cleared (`on_checkpoint_clear_failed`), a resource
//! teardown that failed (`on_teardown_failed`), and the end of every run with its outcome
//! (`on_run_end`).
//!
//! Callbacks are plain synchronous functions, called inline on the run's task (split
//! members may call them from several tasks at once), so keep them short: bump a counter,
//! push to a channel. Do not block in them. A panic in an observer is caught: the run
//! goes on, the other observers still hear the event, and the panic is reported (`tracing`
//! at ERROR, or once per process on stderr without the `tracing` feature). Give tasks a short [`name`](crate::Task::name) if the type
//! path is too long for your dashboards.
//!
//! Observers change nothing about a run: attaching one never alters results. Without
//! observers (and without a checkpoint store) the engine does not even format state
//! names, so an unobserved run pays nothing for them.
//!
//! # Tracing (feature `tracing`)
//!
//! With the `tracing` feature the engine emits `tracing` spans and events, and two more
//! things become available:
//!
//! * `TracingObserver`, an observer that turns every callback into an event with target
//!   `cano::observer`, with the state or task id as a field: DEBUG `workflow entered
//!   state`, `task started`, `checkpoint appended`; INFO `task succeeded`, `workflow
//!   resumed from checkpoint`, `saga step compensated`, `workflow run ended`; WARN `task
//!   retry`, `task attempt failed`, `circuit breaker rejected task`, `saga rollback
//!   started`, `checkpoint log not cleared`, `workflow run cancelled`, `workflow total
//!   timeout exceeded`, `signal rejected`; INFO `signal received`, `run waiting`; ERROR
//!   `task failed`, `compensation failed`,
//!   `resource teardown failed`, `workflow run failed`;
//! * `Workflow::with_tracing_span(span)`, which runs every `orchestrate` and
//!   `resume_from` of the workflow inside your span instead of the default
//!   `workflow_orchestrate` / `workflow_resume` spans, so the run's events carry your
//!   fields (an order id, a batch number).
//!
//! You need a subscriber to see anything, e.g. `tracing-subscriber` in your own
//! dependencies:
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::Arc;
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum Step { Import, Done }
//! # struct Import;
//! # #[task(state = Step)]
//! # impl Import { async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> { Ok(TaskResult::Single(Step::Done)) } }
//!
//! # #[cfg(feature = "tracing")]
//! #[tokio::main]
//! async fn main() -> Result<(), CanoError> {
//!     tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).init();
//!
//!     let workflow = Workflow::bare()
//!         .register(Step::Import, Import)
//!         .add_exit_state(Step::Done)
//!         .with_observer(Arc::new(TracingObserver::new()))
//!         .with_tracing_span(tracing::info_span!("nightly_import", batch = 42));
//!
//!     workflow.orchestrate(Step::Import).await?;
//!     Ok(())
//! }
//! # #[cfg(not(feature = "tracing"))]
//! # fn main() {}
//! ```
//!
//! ## What the engine emits
//!
//! Besides `TracingObserver`'s events, the engine itself emits these spans and events
//! (target: the emitting module, e.g. `cano::workflow::execution`), at levels chosen so
//! that an INFO log tells a run's story and a WARN log shows what went wrong:
//!
//! | kind | level | name or message | fields |
//! |---|---|---|---|
//! | span | INFO | `workflow_orchestrate` | (one per `orchestrate`, unless `with_tracing_span`) |
//! | span | INFO | `workflow_resume` | (one per `resume_from`, unless `with_tracing_span`) |
//! | event | INFO | `Starting workflow execution` | `initial_state` |
//! | event | INFO | `Executing state` | `current_state` |
//! | event | INFO | `Workflow completed successfully` | `final_state` |
//! | event | ERROR | `workflow run failed` | `error` |
//! | event | WARN | `Task execution failed, will retry` | `task`, `attempt`, `max_attempts`, `error` |
//! | event | WARN | `error is not retryable; giving up` | `task`, `attempt`, `error` |
//! | event | WARN | `workflow run cancelled` | `state` |
//! | event | ERROR | `observer panicked; the run goes on` | `panic` |
//! | event | INFO | `signal received` | `signal`, `id` |
//! | event | WARN | `signal rejected` | `signal`, `id`, `error` |
//! | event | WARN | `could not remove a consumed signal` | `signal_id`, `error` |
//! | event | WARN | `could not mark the failed run in its checkpoint store` | `workflow_id`, `error` (a run with a writer, `with_run_writers`, whose store could not record that it failed; the run's error stands) |
//! | event | WARN | `cluster worker: {doing} failed; trying again` | `error` (feature `postgres`: a database call of a `cano::cluster` worker's loop failed; `{doing}` names it) |
//! | event | WARN | `cluster cron: looking at the schedules failed; trying again` | `error` (features `postgres` and `scheduler`: a `cano::cluster::Cron` could not reach the database; it looks again at its next poll) |
//! | event | WARN | `workflow total timeout exceeded` | `state`, `elapsed`, `limit` |
//! | event | WARN | `run failed; rolling back completed saga steps` | `steps`, `error` |
//! | event | WARN | `finishing the rollback recorded in the checkpoint log` | `steps`, `error` |
//! | event | INFO | `saga step compensated` | `task_id` |
//! | event | ERROR | `compensation failed` | `task_id`, `error` |
//! | event | WARN | `could not clear the checkpoint log` | `workflow_id`, `error` |
//! | event | ERROR | `resource teardown failed: {err}` | (the error in the message) |
//! | event | INFO | `circuit breaker transition: {from} -> {next}` | (the states in the message) |
//! | event | DEBUG | `scheduled run started` | `flow`, `run` |
//! | event | DEBUG | `scheduled run completed` | `flow`, `run` |
//! | event | WARN | `scheduled run failed` | `flow`, `run`, `error` |
//! | event | WARN | `scheduler stop: run cancelled after the stop timeout` | `flow`, `timeout` |
//!
//! `task` is the task's name when the run is observed, and empty otherwise. A test
//! (`tests/docs_tracing.rs`) keeps this table and the code in step. The messages are for
//! people reading logs; for events your code relies on, use an observer.
//!
//! Without the feature, the few things the engine must report outside a return value (a
//! resource `teardown` that failed, a checkpoint log it could not clear, a scheduled run
//! cancelled at stop) go to the run's observers (`on_teardown_failed`,
//! `on_checkpoint_clear_failed`, `on_run_end`), and to standard error when it has none.
//!
//! # Metrics (feature `metrics`)
//!
//! With the `metrics` feature, cano reports to whatever recorder of the
//! [`metrics`](https://docs.rs/metrics) facade the program installs (a Prometheus
//! exporter, StatsD, …): runs by outcome and their duration, runs in progress, each
//! state's work by state and kind, attempts, circuit breakers, split branches, the
//! processing models' loops, checkpoint appends and clears, compensations, scheduled flows
//! and rate limiters — all named `cano_*`. The engine's metrics are off until
//! [`cano::metrics::describe`](crate::metrics::describe) (or `enable`) is called, so a
//! build with the feature and no recorder pays one atomic load per hook and formats
//! nothing. [`MetricsObserver`](crate::metrics::MetricsObserver) adds per-state and
//! per-task counters from observer events. The names, the labels and the label policy
//! (no run ids, errors or payloads as labels) are in the [`cano::metrics`](crate::metrics)
//! module docs; the example `metrics`
//! (`cargo run -p cano --example metrics --features metrics`) prints what a Prometheus
//! server would scrape after twenty orders.
//!
//! # Which to use
//!
//! * Metrics and alerting: the `metrics` feature (above), or a small observer with
//!   counters of your own (see `observer_metrics`).
//! * Logs for people: `TracingObserver` plus a span per run with your identifiers.
//! * Tests: an observer that records events as strings is the easiest way to assert what
//!   happened, and in what order (see [`testing`](super::testing)).
