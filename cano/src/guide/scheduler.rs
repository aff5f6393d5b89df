//! The scheduler: run workflows on intervals, cron schedules or on demand (feature
//! `scheduler`).
//!
//! Examples, all with `--features scheduler`:
//!
//! * `cano/examples/scheduler_cron.rs`
//!   (`cargo run -p cano --example scheduler_cron --features scheduler`): a cron flow
//!   that ticks every two seconds, next to a daily one that does not fire;
//! * `cano/examples/scheduler_backoff.rs`
//!   (`cargo run -p cano --example scheduler_backoff --features scheduler`): an interval
//!   flow backs off while its upstream is down, another trips and waits for a reset;
//! * `cano/examples/scheduler_manual.rs`
//!   (`cargo run -p cano --example scheduler_manual --features scheduler`): triggered
//!   flows, an overlapping trigger refused, a tripped flow reset;
//! * `cano/examples/scheduler_shutdown.rs`
//!   (`cargo run -p cano --example scheduler_shutdown --features scheduler`): a graceful
//!   stop on Ctrl-C that lets the run in flight finish and closes resources once.
//!
//! The API reference is the `cano::scheduler` module; it appears in the documentation
//! when it is built with the feature (`cargo doc -p cano --features scheduler --open`).
//!
//! # Flows
//!
//! A `Scheduler` collects *flows*: a workflow, the state
//! each run starts at, and when to run it, under an id of your choice. All flows of one
//! scheduler share the state type. `start()` checks every workflow, sets up every
//! workflow's resources **once**, starts the flows, and returns a
//! `RunningScheduler` handle.
//!
//! | register with | runs |
//! |---|---|
//! | `every(id, wf, start, interval)`, `every_seconds`, `every_minutes`, `every_hours` | at start, then `interval` after each run **ends** (a fixed delay, so runs never pile up) |
//! | `cron(id, wf, start, expr)` | at every tick of `expr`, in UTC; the first run at the first tick after start |
//! | `manual(id, wf, start)` | only when triggered |
//!
//! ```
//! use cano::prelude::*;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Sync { Pull, Done }
//!
//! struct Pull;
//!
//! #[task(state = Sync)]
//! impl Pull {
//!     async fn run_bare(&self) -> Result<TaskResult<Sync>, CanoError> {
//!         Ok(TaskResult::Single(Sync::Done))
//!     }
//! }
//!
//! fn sync_workflow() -> Workflow<Sync> {
//!     Workflow::bare().register(Sync::Pull, Pull).add_exit_state(Sync::Done)
//! }
//!
//! # #[cfg(feature = "scheduler")]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), CanoError> {
//! let mut scheduler = Scheduler::new();
//! scheduler.every("sync", sync_workflow(), Sync::Pull, Duration::from_millis(20))?;
//! scheduler.cron("nightly", sync_workflow(), Sync::Pull, "0 30 2 * * *")?; // 02:30:00 UTC
//! scheduler.manual("resync", sync_workflow(), Sync::Pull)?;
//! scheduler.set_backoff("sync", BackoffPolicy::with_trip(5))?;
//!
//! let running = scheduler.start().await?;
//! running.trigger("resync").await?; // returns once the run has started
//! tokio::time::sleep(Duration::from_millis(50)).await;
//!
//! for flow in running.list().await {
//!     println!("{}: {:?}, {} run(s)", flow.id, flow.status, flow.run_count);
//! }
//! running.stop().await?;
//! assert!(running.status("sync").await.unwrap().run_count >= 2);
//! assert_eq!(running.status("nightly").await.unwrap().run_count, 0);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "scheduler"))]
//! # fn main() {}
//! ```
//!
//! Cron expressions have **six or seven fields, seconds first** (seconds, minutes, hours,
//! day of month, month, day of week, optional year), or one of `@yearly`, `@monthly`,
//! `@weekly`, `@daily`, `@hourly`. A five-field Unix expression such as `*/5 * * * *` is
//! rejected with `Configuration error: Invalid cron expression: …`; write
//! `0 */5 * * * *` for "every five minutes".
//!
//! # How a scheduled run differs from `orchestrate`
//!
//! * Resources are set up once at `start` and torn down once at `stop`, not around every
//!   run; validation happens once, at `start`.
//! * A flow never runs concurrently with itself: a tick that finds it running is
//!   skipped, and a trigger is refused.
//! * The workflow's timeout (`Workflow::with_timeout`) bounds every run, as under
//!   `orchestrate`. (cano 0.12.0 ignored it for scheduled runs; see `COMPATIBILITY.md`.)
//! * With a checkpoint store, each run writes its log under its own id,
//!   `"{base}@{run}-{millis}"` — `base` is the workflow's id (or the flow id), `run` the
//!   run's number (`FlowInfo::run_count`), `millis` its start time (`FlowInfo::last_run`)
//!   in Unix milliseconds — so a failed run's log can be resumed with `resume_from` and
//!   never blocks the next run. (0.12.0 used one id for every run.)
//!
//! # Status, failures and backoff
//!
//! `running.status(id)` and `running.list()` return `FlowInfo`
//! snapshots: the `Status`, how many runs started, when the
//! last one started, the failure streak and the end of the backoff window.
//!
//! There is no "failed" status. A failed run grows the flow's failure streak and parks
//! it in `Status::Backoff { until, streak, last_error }`: scheduled runs are skipped until
//! `until`, computed by the flow's `BackoffPolicy`
//! (by default 1 s after the first failure, doubling up to 5 minutes, with 10 % jitter).
//! If the policy has a `streak_limit` and the streak reaches it, the flow parks in
//! `Status::Tripped` instead and does not run again until `reset_flow(id)`. A successful
//! run clears the streak and sets `Status::Completed`. `Status` is `#[non_exhaustive]`:
//! give a `match` on it a `_` arm.
//!
//! `trigger(id)` runs a flow now, whatever its schedule, and returns as soon as the run
//! has started (poll `status` or `has_running_flows` to see it finish). It skips a backoff
//! window, but is refused while the flow is running (`Flow '…' is already running`) or
//! tripped (`Flow '…' is tripped — call reset_flow before triggering`).
//!
//! `cancel_flow(id)` cancels the flow's run in flight (a no-op when it is not running):
//! its completed saga steps are compensated and the flow returns to `Status::Idle`
//! without counting a failure (no backoff), unless that rollback fails.
//!
//! # Stopping
//!
//! `running.stop()` stops the loops at once (sleeping loops wake up), refuses new
//! triggers, gives the runs in flight up to 30 seconds to finish
//! (`stop_with_timeout(d)` takes another bound), cancels those still going and records
//! them as failed runs, then tears every workflow's resources down, in reverse
//! registration order. It returns
//! `Workflow error: Timeout waiting for workflows to complete` if it had to cancel runs.
//! `stop` can be called from any clone of the handle, any number of times; `wait()`
//! waits for a stop that someone else started.
//!
//! Always stop the scheduler before the program exits: dropping the last handle without
//! `stop` aborts every loop and run and tears **nothing** down.
//!
//! A graceful shutdown on Ctrl-C (the `scheduler` feature turns on Tokio's `signal`
//! support):
//!
//! ```no_run
//! # use cano::prelude::*;
//! # #[cfg(feature = "scheduler")]
//! # async fn serve(scheduler: Scheduler<u8>) -> Result<(), CanoError> {
//! let running = scheduler.start().await?;
//! tokio::signal::ctrl_c().await?;
//! running.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! (cano 0.12.0 documented the 30-second bound but waited for runs without a limit; see
//! `COMPATIBILITY.md`.)
