//! Run workflows on intervals, cron schedules or on demand (feature `scheduler`).
//!
//! A [`Scheduler`] collects *flows* — a [`Workflow`](crate::Workflow), its initial state
//! and when to run it — and [`start`](Scheduler::start)s them, returning a
//! [`RunningScheduler`] handle.
//!
//! * **Interval** flows ([`Scheduler::every`] and friends) run at start, then again a fixed
//!   delay after each run ends.
//! * **Cron** flows ([`Scheduler::cron`]) run at each tick of a cron expression with seconds,
//!   evaluated in UTC; the first run is at the first tick after start.
//! * **Manual** flows ([`Scheduler::manual`]) run only when
//!   [triggered](RunningScheduler::trigger); any flow can be triggered.
//!
//! # Runs
//!
//! A flow never runs concurrently with itself: a tick that finds it running is skipped, a
//! trigger is refused. Each run executes the workflow's state machine from the flow's
//! initial state, under the workflow's global timeout ([`Workflow::with_timeout`](crate::Workflow::with_timeout)),
//! with its checkpointing, compensation and observers. Validation happens once, at start;
//! each workflow's resources are set up once at start and torn down once when the
//! scheduler stops, not around each run.
//!
//! A workflow with a checkpoint store writes each run's log under its own id,
//! `"{base}@{run}-{millis}"`: `base` is the workflow's `with_workflow_id` id (or the flow id
//! when it has none), `run` the run's number ([`FlowInfo::run_count`] once the run has
//! started) and `millis` its start time ([`FlowInfo::last_run`]) in Unix milliseconds. A
//! failed run's kept log can be resumed with [`Workflow::resume_from`](crate::Workflow::resume_from)
//! under that id, and never collides with a later run.
//!
//! # Failures, backoff and trips
//!
//! There is no "failed" status. A failed run grows the flow's failure streak and parks the
//! flow in [`Status::Backoff`] — scheduled runs are skipped until the window computed by its
//! [`BackoffPolicy`] has passed — or, once the streak reaches the policy's limit, in
//! [`Status::Tripped`], where it stays until [`RunningScheduler::reset_flow`]. A manual
//! trigger runs a flow in backoff at once, but is refused for a tripped flow. A successful
//! run clears the streak. A panic that escapes a run (the engine already turns task panics
//! into errors; an observer callback can still panic) counts as a failed run.
//!
//! # Cancelling a run
//!
//! [`RunningScheduler::cancel_flow`] cancels a flow's run in flight (a no-op when it is not
//! running): the task in flight is dropped at its next `.await`, the run's completed saga
//! steps are compensated, and the flow returns to [`Status::Idle`]. A cancel that rolled
//! back cleanly is not a failure: it leaves the failure streak and backoff window as they
//! were. One whose rollback failed (`CompensationFailed`) counts as a failed run.
//!
//! # Shutdown
//!
//! [`RunningScheduler::stop`] stops the loops, gives the runs in flight up to 30 seconds
//! ([`stop_with_timeout`](RunningScheduler::stop_with_timeout) takes another bound),
//! cancels the runs still going after that (recording each in its flow's [`FlowInfo`]), and
//! tears down every flow's resources in reverse registration order. Dropping the last
//! handle without stopping aborts everything and tears nothing down.
//!
//! ```
//! use cano::prelude::*;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Ping, Done }
//!
//! struct Ping;
//!
//! #[task(state = Step)]
//! impl Ping {
//!     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
//!         Ok(TaskResult::Single(Step::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> CanoResult<()> {
//! let mut scheduler = Scheduler::new();
//! let ping = Workflow::bare().register(Step::Ping, Ping).add_exit_state(Step::Done);
//! scheduler.every("ping", ping, Step::Ping, Duration::from_millis(20))?;
//!
//! let running = scheduler.start().await?;
//! tokio::time::sleep(Duration::from_millis(70)).await;
//! running.stop().await?;
//!
//! let info = running.status("ping").await.unwrap();
//! assert!(info.run_count >= 2);
//! assert_eq!(info.status, Status::Completed);
//! # Ok(())
//! # }
//! ```

mod builder;
mod clock;
mod flow;
mod loops;
mod policy;
mod running;

pub use builder::Scheduler;
pub use flow::{FlowInfo, Schedule, Status};
pub use policy::BackoffPolicy;
pub use running::RunningScheduler;
