//! The cluster runtime (feature `postgres`): workflows registered by name, runs submitted
//! to a PostgreSQL database, and workers in any number of processes that claim, run and
//! finish them, each run once, with no coordinator.
//!
//! * A [`Registry`] names the workflows a worker can run; each has a factory that builds
//!   the [`Workflow`](crate::Workflow) from the run's input (any serde type).
//! * A [`Client`] [submits](Client::submit) `(workflow name, input, initial state)` and
//!   gets the run's id; with an idempotency key, submitting again returns the same id and
//!   adds nothing. It reads a run's [status](Client::status) and
//!   [waits](Client::wait) for its end: the final state or the error.
//! * A [`Worker`] claims ready runs (`FOR UPDATE SKIP LOCKED`, so workers never wait for
//!   each other), takes each run's [lease](crate::recovery::postgres::lease), runs it with
//!   fenced writers ([`with_run_writers`](crate::Workflow::with_run_writers)), or
//!   resumes it from its log when an earlier worker left one, renews its leases by
//!   heartbeat and records how each run ended. A submit wakes the queue's workers at once
//!   (`NOTIFY` on `cano_cluster_ready`); they also poll, so a lost notification or a
//!   dead listening connection only delays a run by a poll interval.
//!
//! # Runs and their status
//!
//! A run is `ready`, then `running` on one worker, then `succeeded` (with its final
//! state), `failed` (the workflow returned an error, or the run's workflow name or input
//! is unknown to the worker: the error says which), `parked` or `cancelled`. The table is
//! `cano_cluster_runs` (see [`schema`](crate::recovery::postgres::schema), versions 3
//! and 4).
//!
//! # Runs that wait
//!
//! A run that waits for a [signal](crate::signal), or sleeps on a
//! [timer](crate::TimerTask) for at least a second
//! ([`with_release_waits_after`](Worker::with_release_waits_after)), is given back by its
//! worker once the wait is in its log: it is `waiting`, holds no worker slot and no
//! lease, and its wake time or the signal it waits for is in the table. Every worker
//! makes it ready again each poll interval once its deadline passed, a signal of that
//! name is pending for it (a send also wakes the workers at once, `NOTIFY
//! cano_signals`) or a cancel is asked for; the worker that claims it resumes the wait
//! from the log: a deadline already past fires at once, a pending signal is consumed
//! once. Signals are kept in the database, so a signal sent while no worker has the run
//! (or while every worker is down) is consumed by whichever worker resumes it, and [run
//! data](crate::run_data) is in its log and moves with it.
//!
//! # Cron across machines
//!
//! With the feature `scheduler` as well, a [`Cron`] on every node starts the runs of cron
//! schedules: each tick of a schedule starts exactly one run in the cluster, whatever the
//! number of nodes and their clocks; ticks missed while every node was down follow the
//! schedule's [`Misfire`] policy. See [`cron`].
//!
//! # Cancel and retry
//!
//! [`Client::cancel`] ends a run that has not started at once. A running run's worker is
//! woken (`NOTIFY` on `cano_cluster_cancel`; its heartbeat looks as well) and cancels it
//! as a [`CancellationToken`](crate::cancel::CancellationToken) would: the task in flight
//! is dropped at its next `.await`, completed saga steps are compensated, and the run is
//! recorded `cancelled`. A run waiting to be resumed (its worker died) is cancelled by
//! the worker that claims it, which runs no task of it and compensates its completed saga
//! steps. [`Client::retry`] makes a failed or parked run ready again: it is resumed from
//! its log, where it stopped, or started again when its log is gone.
//!
//! # When a worker dies
//!
//! A worker refreshes the heartbeat of its runs and renews their leases every third of
//! its lease duration. A running run whose heartbeat is older than a lease duration and
//! whose lease has expired (by the database's clock) belongs to a dead or stalled worker:
//! every worker looks for such runs each poll interval and makes them ready again, so a
//! live worker resumes the run from its log within about a lease duration plus a poll
//! interval. A worker that was only stalled finds its writes fenced and drops the run.
//! Each claim counts an attempt; a run found abandoned (or failing on the database)
//! [`with_max_attempts`](Worker::with_max_attempts) times is parked with its error
//! instead of being tried again.
//!
//! Stopping a worker through its shutdown token hands its runs back at once: their leases
//! are released and they are ready again, without counting an attempt.
//!
//! # Throughput: commits per run, group commit
//!
//! A run costs one commit per state entry (each entry is durable before its state's task
//! runs), one for its outcome (the final state is recorded and the log cleared in one
//! statement; an exit state's own entry is not written, see
//! [`RunWriter::append_last`](crate::RunWriter::append_last)) and a share of a claim. On a
//! worker whose store has
//! [group commit](crate::recovery::postgres::PostgresCheckpointStore::with_group_commit),
//! the entries and outcomes of the runs in flight share statements and transactions
//! (each still committed before it is answered): fewer commits per run, at the price of
//! waiting for the batch in flight. A run's slot is then free once its execution is
//! over, while its outcome waits for its batch.
//!
//! With [`Worker::with_prefetch`], a worker claims runs ahead of its free slots: each
//! starts at once, records its first state's entry, and waits for a slot before its
//! first task, so that a slot that frees is taken without waiting for a claim or a
//! commit. The worker still executes at most its concurrency of runs' work at once.
//!
//! A worker process whose runs do little work of their own spends its time waiting for
//! commits and waking the runs each commit answers. On a small machine shared with
//! PostgreSQL, a current-thread Tokio runtime (`#[tokio::main(flavor =
//! "current_thread")]`) runs them on the thread that read the answer instead of waking
//! others: measured on 2 cores, with group commit and a prefetch of 16, 5,219 runs/s of
//! three states against 4,069 on a thread per core, and 10,670 of one state against
//! 6,778. Tasks that compute for long, or block, want the multi-thread runtime (or
//! `spawn_blocking`): on one thread they hold up every other run and the heartbeat.
//!
//! `cano/examples/cluster_bench.rs` measures these (`--batched`, `--prefetch`,
//! `--runtime`); `BENCHMARKS.md` has the figures.
//!
//! A write of a run that fails (the database, or a fence: another worker took the run
//! over) stops the run on its worker rather than failing it: no further task of it
//! starts there, a saga does not roll back there, and the run is tried again from its
//! log.
//!
//! # Limits
//!
//! * A run's outcome is recorded in the transaction that clears its log (fenced by the
//!   lease), so a run that ended is never started again. A task in flight when its
//!   worker died runs again on the worker that resumes the run: make side effects
//!   idempotent, as the [lease limits](crate::recovery::postgres::lease#limits) say.
//! * A failed run keeps its log (for inspection) until [`Client::prune`] deletes it with
//!   the run, or a worker's [retention](Worker::with_retention) does (off by default).
//! * The heartbeat, the claims and the recording of outcomes share the database: one
//!   slow enough to hold a lease renewal for two thirds of a lease costs the worker its
//!   leases (the runs are then resumed elsewhere, never run twice to their end). A
//!   claim waiting in the database (for a queue's lock, say) holds up no heartbeat:
//!   the worker goes on while it is in flight, with one claim at a time.
//!
//! ```no_run
//! use cano::cluster::{Client, Registry, Worker};
//! use cano::cancel::CancellationToken;
//! use cano::prelude::*;
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
//! enum Step { Charge, Done }
//!
//! #[derive(Deserialize)]
//! struct Order { id: u64 }
//!
//! # fn order_workflow(order: Order) -> Workflow<Step> { Workflow::bare() }
//! # #[tokio::main] async fn main() -> Result<(), CanoError> {
//! let url = "postgresql://cano:secret@localhost/app";
//! let registry = Registry::new()
//!     .register("order", |order: Order| Ok(order_workflow(order)));
//!
//! // In each worker process:
//! let store = PostgresCheckpointStore::connect(url).await?.with_worker_id("worker-a");
//! let (stop, token) = CancellationToken::new();
//! let worker = Worker::new(store, registry).with_concurrency(8);
//! let running = tokio::spawn(async move { worker.run(token).await });
//!
//! // Anywhere:
//! let client = Client::new(PostgresCheckpointStore::connect(url).await?);
//! let run = client
//!     .submit("order", &serde_json::json!({ "id": 7 }), &Step::Charge, Some("order-7"))
//!     .await?;
//! let status = client.wait(&run, Duration::from_secs(60)).await?;
//! assert_eq!(status.final_state::<Step>()?, Some(Step::Done));
//!
//! stop.cancel();
//! # let _ = running.await;
//! # Ok(()) }
//! ```

mod client;
#[cfg(feature = "scheduler")]
#[cfg_attr(docsrs, doc(cfg(feature = "scheduler")))]
pub mod cron;
mod registry;
mod worker;
mod writers;

pub use self::client::{CancelOutcome, Client, RunState, RunStatus};
#[cfg(feature = "scheduler")]
pub use self::cron::{Cron, Misfire};
pub use self::registry::Registry;
pub use self::worker::Worker;

/// The channel on which submits and hand-backs announce ready runs (`NOTIFY`, the queue
/// as payload): a hint that wakes the queue's workers at once; they poll as well.
const READY_CHANNEL: &str = "cano_cluster_ready";

/// The channel on which [`Client::cancel`] wakes the worker of a run to cancel (`NOTIFY`,
/// the run id as payload): a hint; workers also look at each heartbeat.
const CANCEL_CHANNEL: &str = "cano_cluster_cancel";

/// The queue of a client or worker that was given none.
pub const DEFAULT_QUEUE: &str = "default";
