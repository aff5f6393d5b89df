//! One scheduled flow: its public status types ([`Schedule`], [`Status`], [`FlowInfo`]) and
//! the crate-internal [`Flow`] that reserves, runs and records a run.

use super::clock;
use super::policy::BackoffPolicy;
use crate::cancel::{CancellationHandle, CancellationToken};
use crate::error::CanoError;
use crate::util::{CatchUnwind, panic_message};
use crate::workflow::Workflow;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// When a flow runs.
///
/// Descriptive only: flows are registered with the [`Scheduler`](super::Scheduler) builder
/// methods ([`every`](super::Scheduler::every), [`cron`](super::Scheduler::cron),
/// [`manual`](super::Scheduler::manual), …), which take the schedule as arguments.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Run at start, then again `interval` after each run ends.
    Every(Duration),
    /// Run at each tick of a cron expression (with seconds; evaluated in UTC).
    Cron(String),
    /// Run only when triggered.
    Manual,
}

/// Where a flow stands.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Status {
    /// Not running: registered and never run, [reset](super::RunningScheduler::reset_flow),
    /// or its last run was cancelled with [`cancel_flow`](super::RunningScheduler::cancel_flow).
    Idle,
    /// A run is in progress.
    Running,
    /// The last run succeeded.
    Completed,
    /// The last run failed; scheduled runs are skipped until `until`.
    Backoff {
        /// End of the backoff window.
        until: DateTime<Utc>,
        /// Consecutive failed runs.
        streak: u32,
        /// `Display` of the last run's error.
        last_error: String,
    },
    /// The flow failed often enough to trip its [`BackoffPolicy`]; it does not run again until
    /// [`reset_flow`](super::RunningScheduler::reset_flow).
    Tripped {
        /// Consecutive failed runs.
        streak: u32,
        /// `Display` of the last run's error.
        last_error: String,
    },
}

/// A snapshot of one flow's state, from [`RunningScheduler::status`](super::RunningScheduler::status)
/// or [`list`](super::RunningScheduler::list).
#[derive(Debug, Clone)]
pub struct FlowInfo {
    /// The id the flow was registered under.
    pub id: String,
    /// Where the flow stands.
    pub status: Status,
    /// Runs started so far (scheduled and triggered).
    pub run_count: u64,
    /// When the latest run started.
    pub last_run: Option<DateTime<Utc>>,
    /// Consecutive failed runs (reset by a success or by `reset_flow`).
    pub failure_streak: u32,
    /// End of the current backoff window, if any: scheduled runs wait until then.
    pub next_eligible: Option<DateTime<Utc>>,
}

/// What drives a flow's runs.
pub(crate) enum Cadence {
    Every(Duration),
    Cron(Box<cron::Schedule>),
    Manual,
}

/// Why a flow could not be reserved for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    Running,
    Tripped,
}

/// A reserved run: the flow is `Running` and this run is counted.
pub(crate) struct Reservation {
    /// The flow's `run_count` including this run (1 for the first run).
    number: u64,
    /// The run's `last_run` timestamp.
    started: DateTime<Utc>,
    /// Fires when [`Flow::cancel`] cancels this run.
    token: CancellationToken,
}

/// A flow's live state, behind one lock so that a run's status and its cancel handle
/// change together.
struct Live {
    info: FlowInfo,
    /// The cancel handle of the run in flight: `Some` exactly while `info.status` is
    /// `Running`.
    cancel: Option<CancellationHandle>,
}

/// A registered flow and its live state.
pub(crate) struct Flow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    pub(crate) id: String,
    pub(crate) workflow: Arc<Workflow<TState, TResourceKey>>,
    initial_state: TState,
    pub(crate) cadence: Cadence,
    pub(crate) policy: BackoffPolicy,
    live: Mutex<Live>,
}

impl<TState, TResourceKey> Flow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    pub(crate) fn new(
        id: &str,
        workflow: Workflow<TState, TResourceKey>,
        initial_state: TState,
        cadence: Cadence,
    ) -> Self {
        Self {
            id: id.to_string(),
            workflow: Arc::new(workflow),
            initial_state,
            cadence,
            policy: BackoffPolicy::default(),
            live: Mutex::new(Live {
                info: FlowInfo {
                    id: id.to_string(),
                    status: Status::Idle,
                    run_count: 0,
                    last_run: None,
                    failure_streak: 0,
                    next_eligible: None,
                },
                cancel: None,
            }),
        }
    }

    pub(crate) fn initial_state(&self) -> &TState {
        &self.initial_state
    }

    /// A copy of the flow's current state.
    pub(crate) fn snapshot(&self) -> FlowInfo {
        self.live.lock().info.clone()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.live.lock().info.status == Status::Running
    }

    /// The end of the backoff window, if it is still ahead of `now`.
    pub(crate) fn backoff_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.live
            .lock()
            .info
            .next_eligible
            .filter(|until| *until > now)
    }

    /// Atomically check that the flow is neither running nor tripped and mark it running:
    /// the run is counted, timestamped now and given its own cancellation pair. The caller
    /// must then [`run`](Self::run) it.
    pub(crate) fn try_reserve(&self) -> Result<Reservation, Busy> {
        let mut live = self.live.lock();
        match live.info.status {
            Status::Running => return Err(Busy::Running),
            Status::Tripped { .. } => return Err(Busy::Tripped),
            _ => {}
        }
        let started = clock::now();
        let (handle, token) = CancellationToken::new();
        live.cancel = Some(handle);
        let info = &mut live.info;
        info.status = Status::Running;
        info.last_run = Some(started);
        info.run_count += 1;
        Ok(Reservation {
            number: info.run_count,
            started,
            token,
        })
    }

    /// Cancel the run in flight, if any. A run reserved but not started yet starts with a
    /// cancelled token, and so runs nothing.
    pub(crate) fn cancel(&self) {
        if let Some(handle) = &self.live.lock().cancel {
            handle.cancel();
        }
    }

    /// Run the workflow once for `reservation` and record the outcome.
    ///
    /// A panic escaping the run (for example from an observer callback) is recorded as a
    /// failed run, so the flow never stays `Running` forever. A run that
    /// [`cancel`](Self::cancel) stopped and that rolled back cleanly is recorded as neither
    /// a success nor a failure.
    pub(crate) async fn run(&self, reservation: Reservation) {
        let log_id = self.log_id(&reservation);
        #[cfg(feature = "tracing")]
        tracing::debug!(flow = %self.id, run = reservation.number, "scheduled run started");
        let token = reservation.token.clone();
        let started = std::time::Instant::now();
        let run =
            self.workflow
                .run_scheduled(self.initial_state.clone(), log_id, reservation.token);
        let outcome = match CatchUnwind::new(Box::pin(run)).await {
            Ok(result) => result.map(drop),
            Err(payload) => Err(CanoError::task_execution(format!(
                "panic: {}",
                panic_message(payload.as_ref())
            ))),
        };
        // Only our own cancel counts: a task may return a cancel error of its own.
        if token.is_cancelled() && outcome.as_ref().is_err_and(is_clean_cancel) {
            // The engine has reported the cancel (`on_cancelled`, and `tracing`'s
            // "workflow run cancelled"); it is not a failed run.
            crate::instrument::scheduler_flow_run(
                &self.id,
                crate::instrument::outcome::CANCELLED,
                started.elapsed(),
            );
            self.record_cancelled();
            return;
        }
        crate::instrument::scheduler_flow_run(
            &self.id,
            match &outcome {
                Ok(()) => crate::instrument::outcome::SUCCESS,
                Err(_) => crate::instrument::outcome::FAILURE,
            },
            started.elapsed(),
        );
        #[cfg(feature = "tracing")]
        match &outcome {
            Ok(()) => {
                tracing::debug!(flow = %self.id, run = reservation.number, "scheduled run completed")
            }
            Err(e) => {
                tracing::warn!(flow = %self.id, run = reservation.number, error = %e, "scheduled run failed")
            }
        }
        self.record(outcome);
    }

    /// The checkpoint log id of one run.
    ///
    /// A workflow with a checkpoint store gets `"{base}@{run}-{millis}"`: `base` is the id set
    /// with `with_workflow_id` (or the flow id), `run` the run's `run_count`, `millis` its
    /// `last_run` as Unix milliseconds. Every run of a flow thus writes its own log, and a
    /// log a failed run keeps (for `resume_from`) never collides with a later run, in this
    /// scheduler or in the next process. Without a store the configured id is passed as is
    /// (nothing is written).
    fn log_id(&self, reservation: &Reservation) -> Option<Arc<str>> {
        match self.workflow.checkpoint_identity() {
            (configured, true) => Some(Arc::from(format!(
                "{}@{}-{}",
                configured.unwrap_or(&self.id),
                reservation.number,
                reservation.started.timestamp_millis()
            ))),
            (configured, false) => configured.map(Arc::from),
        }
    }

    /// Record a run's outcome: a success clears the streak; a failure grows it and parks the
    /// flow in `Backoff` or, if the policy trips, in `Tripped`.
    pub(crate) fn record(&self, outcome: Result<(), CanoError>) {
        let mut live = self.live.lock();
        live.cancel = None;
        let info = &mut live.info;
        match outcome {
            Ok(()) => {
                info.status = Status::Completed;
                info.failure_streak = 0;
                info.next_eligible = None;
            }
            Err(e) => {
                let streak = info.failure_streak.saturating_add(1);
                let last_error = e.to_string();
                info.failure_streak = streak;
                crate::instrument::scheduler_flow_backoff(&self.id, self.policy.is_tripped(streak));
                if self.policy.is_tripped(streak) {
                    info.next_eligible = None;
                    info.status = Status::Tripped { streak, last_error };
                } else {
                    let until = clock::add(clock::now(), self.policy.compute_delay(streak));
                    info.next_eligible = Some(until);
                    info.status = Status::Backoff {
                        until,
                        streak,
                        last_error,
                    };
                }
            }
        }
    }

    /// Record a run stopped by [`cancel`](Self::cancel) whose rollback succeeded: the flow
    /// is `Idle`, and its streak and backoff window stay as they were before the run.
    fn record_cancelled(&self) {
        let mut live = self.live.lock();
        live.cancel = None;
        live.info.status = Status::Idle;
    }

    /// Clear the streak and the backoff window; a flow that is not running becomes `Idle`.
    pub(crate) fn reset(&self) {
        let mut live = self.live.lock();
        let info = &mut live.info;
        info.failure_streak = 0;
        info.next_eligible = None;
        if info.status != Status::Running {
            info.status = Status::Idle;
        }
    }
}

/// Whether a run ended through its cancel with a clean rollback. A failed rollback
/// (`CompensationFailed`, whose first error is the cancel) is a failure: something was
/// left half-done.
fn is_clean_cancel(error: &CanoError) -> bool {
    error.is_cancelled() && !matches!(error, CanoError::CompensationFailed { .. })
}
