//! [`RunningScheduler`]: the handle to started flows, and the driver task behind it.

use super::flow::{Busy, Cadence, Flow, FlowInfo};
use super::loops::{self, Control};
use crate::error::{CanoError, CanoResult};
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};

/// Commands that may wait in the driver's queue before `trigger`/`reset_flow` fail with
/// "queue full".
const COMMAND_CAPACITY: usize = 64;

/// How long [`RunningScheduler::stop`] lets in-flight runs finish.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

type Reply = oneshot::Sender<CanoResult<()>>;

enum Command {
    Trigger { id: String, reply: Reply },
    Reset { id: String, reply: Reply },
    Stop { timeout: Duration },
}

/// The flows and the loop/driver control block, shared by the driver and every handle.
struct Core<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// In registration order.
    flows: Vec<Arc<Flow<TState, TResourceKey>>>,
    control: Arc<Control>,
}

impl<TState, TResourceKey> Core<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn flow(&self, id: &str) -> Option<&Arc<Flow<TState, TResourceKey>>> {
        self.flows.iter().find(|f| f.id == id)
    }
}

/// A handle to a started [`Scheduler`](super::Scheduler): trigger, cancel and reset flows,
/// read their status, and stop the scheduler.
///
/// Cheap to clone; every clone talks to the same scheduler. When the last clone is dropped
/// before the scheduler has stopped, every loop and run is aborted at its next `.await` and
/// **no** resource teardown runs — call [`stop`](Self::stop) for an orderly shutdown.
///
/// ```
/// use cano::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Report, Done }
///
/// struct Report;
///
/// #[task(state = Step)]
/// impl Report {
///     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
///         Ok(TaskResult::Single(Step::Done))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> CanoResult<()> {
/// let mut scheduler = Scheduler::new();
/// let report = Workflow::bare().register(Step::Report, Report).add_exit_state(Step::Done);
/// scheduler.manual("report", report, Step::Report)?;
/// let running = scheduler.start().await?;
///
/// running.trigger("report").await?; // returns once the run is spawned
/// while running.has_running_flows().await {
///     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
/// }
/// let info = running.status("report").await.expect("registered");
/// assert_eq!(info.status, Status::Completed);
/// assert_eq!(info.run_count, 1);
///
/// running.stop().await?;
/// assert!(running.trigger("report").await.is_err()); // stopped for good
/// # Ok(())
/// # }
/// ```
pub struct RunningScheduler<TState, TResourceKey = Cow<'static, str>>
where
    TState: Clone + Send + Sync + 'static + fmt::Debug + Hash + Eq,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    handle: Arc<Handle<TState, TResourceKey>>,
}

/// Shared by the user-held clones only (never by the driver), so its `Drop` runs exactly
/// when the last clone goes away.
struct Handle<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    core: Arc<Core<TState, TResourceKey>>,
    commands: mpsc::Sender<Command>,
    result: watch::Receiver<Option<CanoResult<()>>>,
    driver: AbortHandle,
}

impl<TState, TResourceKey> Drop for Handle<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if self.driver.is_finished() {
            return;
        }
        // The driver owns the handles it is awaiting during a shutdown and aborts them when
        // it is dropped; the others are still in the list.
        self.core.control.signal_stop();
        self.driver.abort();
        for task in self.core.control.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

impl<TState, TResourceKey> RunningScheduler<TState, TResourceKey>
where
    TState: Clone + Send + Sync + 'static + fmt::Debug + Hash + Eq,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Spawn the flow loops and the driver (resources are already set up).
    pub(crate) fn launch(flows: Vec<Flow<TState, TResourceKey>>) -> Self {
        let control = Arc::new(Control::new());
        let flows: Vec<_> = flows.into_iter().map(Arc::new).collect();
        for flow in &flows {
            let handle = match &flow.cadence {
                Cadence::Every(interval) => {
                    tokio::spawn(loops::every(flow.clone(), control.clone(), *interval))
                }
                Cadence::Cron(_) => tokio::spawn(loops::cron(flow.clone(), control.clone())),
                Cadence::Manual => continue,
            };
            control.track(handle);
        }
        let core = Arc::new(Core { flows, control });
        let (commands, queue) = mpsc::channel(COMMAND_CAPACITY);
        let (publish, result) = watch::channel(None);
        let driver = tokio::spawn(drive(core.clone(), queue, publish)).abort_handle();
        Self {
            handle: Arc::new(Handle {
                core,
                commands,
                result,
                driver,
            }),
        }
    }

    /// Stop the scheduler, letting in-flight runs finish for up to 30 seconds.
    ///
    /// Same as [`stop_with_timeout`](Self::stop_with_timeout) with a 30 s bound.
    ///
    /// # Errors
    /// `Workflow("Timeout waiting for workflows to complete")` if runs had to be cancelled.
    pub async fn stop(&self) -> CanoResult<()> {
        self.stop_with_timeout(DEFAULT_STOP_TIMEOUT).await
    }

    /// Stop the scheduler, letting in-flight runs finish for up to `timeout`.
    ///
    /// In order: new triggers and resets are refused from now on (they fail with
    /// "Scheduler not running"); loops stop scheduling (sleeping loops wake at once); the
    /// runs in flight get up to `timeout` to finish; runs still going then are cancelled —
    /// their tasks are aborted at their next `.await` — and each is recorded in its flow's
    /// [`FlowInfo`] as a failed run (`last_error` says it was cancelled by the stop bound;
    /// the failure also counts toward the flow's streak) and logged; finally every flow's
    /// resources are torn down once, in reverse registration order.
    ///
    /// Idempotent: later calls, from any clone, wait for the same shutdown and return its
    /// result (the first call's `timeout` applies). Dropping this future does not undo or
    /// interrupt a shutdown that has begun; [`wait`](Self::wait) still reports its result.
    ///
    /// A run that blocks its thread without ever reaching an `.await` cannot be cancelled;
    /// the shutdown then waits for it. To cut short a run the shutdown is waiting for and
    /// roll its saga back, call [`cancel_flow`](Self::cancel_flow) meanwhile.
    ///
    /// # Errors
    /// `Workflow("Timeout waiting for workflows to complete")` if runs had to be cancelled
    /// (resources are torn down all the same).
    pub async fn stop_with_timeout(&self, timeout: Duration) -> CanoResult<()> {
        // A closed queue means a shutdown is already under way; wait for its result.
        let _ = self.handle.commands.send(Command::Stop { timeout }).await;
        self.wait().await
    }

    /// Wait until the scheduler has stopped (through [`stop`](Self::stop) on any clone) and
    /// return the shutdown's result. Without a `stop`, this waits forever.
    ///
    /// Dropping this future has no effect on the scheduler.
    ///
    /// # Errors
    /// The shutdown's error (see [`stop`](Self::stop)), or
    /// `Workflow("Scheduler driver task terminated unexpectedly without publishing a result")`.
    pub async fn wait(&self) -> CanoResult<()> {
        let mut result = self.handle.result.clone();
        match result.wait_for(Option::is_some).await {
            Ok(published) => published.clone().unwrap_or(Ok(())),
            Err(_) => Err(CanoError::workflow(
                "Scheduler driver task terminated unexpectedly without publishing a result",
            )),
        }
    }

    /// Start a run of flow `id` now, whatever its schedule, and return as soon as the run
    /// is spawned (not when it finishes). A backoff window does not hold a trigger back.
    ///
    /// If this future is dropped after the request was queued, the run may still start.
    ///
    /// # Errors
    /// All [`CanoError::Workflow`]: `No workflow registered with id '{id}'`;
    /// `Flow '{id}' is already running`;
    /// `Flow '{id}' is tripped — call reset_flow before triggering`;
    /// `Scheduler not running — call start() before trigger()` once the scheduler is
    /// stopping or stopped; `Scheduler command queue full` when 64 requests are pending;
    /// `Scheduler stopped before trigger was processed`.
    pub async fn trigger(&self, id: &str) -> CanoResult<()> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Trigger {
            id: id.to_string(),
            reply,
        };
        self.request(
            command,
            answer,
            "Scheduler not running — call start() before trigger()",
            "Scheduler stopped before trigger was processed",
        )
        .await
    }

    /// Clear flow `id`'s failure streak and backoff window, and untrip it. A flow that is
    /// not running becomes [`Status::Idle`](super::Status::Idle); a running flow keeps
    /// running (if that run then fails, its streak starts again from 1).
    ///
    /// If this future is dropped after the request was queued, the reset may still happen.
    ///
    /// # Errors
    /// All [`CanoError::Workflow`]: `No workflow registered with id '{id}'`;
    /// `Scheduler not running — call start() before reset_flow()` once the scheduler is
    /// stopping or stopped; `Scheduler command queue full`;
    /// `Scheduler stopped before reset was processed`.
    pub async fn reset_flow(&self, id: &str) -> CanoResult<()> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Reset {
            id: id.to_string(),
            reply,
        };
        self.request(
            command,
            answer,
            "Scheduler not running — call start() before reset_flow()",
            "Scheduler stopped before reset was processed",
        )
        .await
    }

    /// Cancel flow `id`'s run in flight, if it has one; a no-op when the flow is not running.
    ///
    /// Each run has its own cancellation token (see [`cancel`](crate::cancel)), and this
    /// fires the current run's: the task in flight is dropped at its next `.await` (a
    /// [`CompensatableTask`](crate::CompensatableTask) is never interrupted: it finishes,
    /// and the cancel takes effect at the next state boundary), the saga steps the run
    /// completed are compensated, and the run ends. A run triggered but not started yet
    /// runs nothing. The cancel applies to that one run: the flow keeps its schedule, and
    /// its next run (the next interval, cron tick or trigger) runs normally.
    ///
    /// How the run is recorded in the flow's [`FlowInfo`]:
    /// * the rollback succeeded (the run ended with [`CanoError::cancelled`]'s error): the
    ///   flow returns to [`Status::Idle`](super::Status::Idle). The cancel is neither a
    ///   success nor a failure: the failure streak and the backoff window stay as they
    ///   were before the run, so it never leads to `Backoff` or `Tripped`, and no error is
    ///   recorded (`Idle` carries no `last_error`);
    /// * the rollback failed (`CompensationFailed`, whose first error is the cancel): a
    ///   failed run like any other, so the flow goes to `Backoff` (or `Tripped`) with that
    ///   error as `last_error`;
    /// * the run ended some other way before the cancel took effect (it completed, or
    ///   failed): recorded as usual.
    ///
    /// Returns as soon as the cancel is requested, not when the run has wound down; poll
    /// [`status`](Self::status) or [`has_running_flows`](Self::has_running_flows) to see
    /// it end. Unlike [`trigger`](Self::trigger) and [`reset_flow`](Self::reset_flow), it
    /// does not go through the scheduler's command queue: it also works while the
    /// scheduler is stopping (to cut short a run [`stop`](Self::stop) is waiting for), and
    /// after the stop it finds nothing to cancel. Completes without waiting; a future
    /// dropped before it is first polled cancels nothing.
    ///
    /// ```
    /// use cano::prelude::*;
    /// use std::time::Duration;
    ///
    /// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    /// enum Step { Export, Done }
    ///
    /// struct Export;
    ///
    /// #[task(state = Step)]
    /// impl Export {
    ///     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
    ///         tokio::time::sleep(Duration::from_secs(3600)).await; // a long export
    ///         Ok(TaskResult::Single(Step::Done))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> CanoResult<()> {
    /// let mut scheduler = Scheduler::new();
    /// let export = Workflow::bare().register(Step::Export, Export).add_exit_state(Step::Done);
    /// scheduler.manual("export", export, Step::Export)?;
    /// let running = scheduler.start().await?;
    ///
    /// running.cancel_flow("export").await?; // not running: nothing to cancel
    /// running.trigger("export").await?;
    /// tokio::time::sleep(Duration::from_secs(60)).await;
    /// running.cancel_flow("export").await?; // returns once the cancel is requested
    /// while running.has_running_flows().await {
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// let info = running.status("export").await.expect("registered");
    /// assert_eq!(info.status, Status::Idle); // not a failure: no backoff
    /// assert_eq!(info.failure_streak, 0);
    /// assert_eq!(info.run_count, 1);
    ///
    /// assert!(running.cancel_flow("import").await.is_err()); // no such flow
    /// running.stop().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`CanoError::Workflow`]: `No workflow registered with id '{id}'` (as from
    /// [`trigger`](Self::trigger) and [`reset_flow`](Self::reset_flow)).
    pub async fn cancel_flow(&self, id: &str) -> CanoResult<()> {
        let flow = self.handle.core.flow(id).ok_or_else(|| unknown(id))?;
        flow.cancel();
        Ok(())
    }

    /// A snapshot of flow `id`, or `None` if no flow has that id. Works after a stop too.
    ///
    /// Completes without waiting; dropping the future has no effect.
    pub async fn status(&self, id: &str) -> Option<FlowInfo> {
        self.handle.core.flow(id).map(|f| f.snapshot())
    }

    /// Snapshots of every flow, in registration order.
    ///
    /// Completes without waiting; dropping the future has no effect.
    pub async fn list(&self) -> Vec<FlowInfo> {
        self.handle
            .core
            .flows
            .iter()
            .map(|f| f.snapshot())
            .collect()
    }

    /// Whether any flow is running.
    ///
    /// Completes without waiting; dropping the future has no effect.
    pub async fn has_running_flows(&self) -> bool {
        self.handle.core.flows.iter().any(|f| f.is_running())
    }

    async fn request(
        &self,
        command: Command,
        answer: oneshot::Receiver<CanoResult<()>>,
        closed: &'static str,
        dropped: &'static str,
    ) -> CanoResult<()> {
        match self.handle.commands.try_send(command) {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(CanoError::workflow(dropped))),
            Err(TrySendError::Full(_)) => Err(CanoError::workflow("Scheduler command queue full")),
            Err(TrySendError::Closed(_)) => Err(CanoError::workflow(closed)),
        }
    }
}

impl<TState, TResourceKey> Clone for RunningScheduler<TState, TResourceKey>
where
    TState: Clone + Send + Sync + 'static + fmt::Debug + Hash + Eq,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
        }
    }
}

impl<TState, TResourceKey> fmt::Debug for RunningScheduler<TState, TResourceKey>
where
    TState: Clone + Send + Sync + 'static + fmt::Debug + Hash + Eq,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flows: Vec<&str> = self
            .handle
            .core
            .flows
            .iter()
            .map(|f| f.id.as_str())
            .collect();
        f.debug_struct("RunningScheduler")
            .field("flows", &flows)
            .field("driver_finished", &self.handle.driver.is_finished())
            .finish_non_exhaustive()
    }
}

/// The driver: handles commands one at a time until a stop (or until every handle is gone),
/// then shuts down and publishes the result.
async fn drive<TState, TResourceKey>(
    core: Arc<Core<TState, TResourceKey>>,
    mut queue: mpsc::Receiver<Command>,
    publish: watch::Sender<Option<CanoResult<()>>>,
) where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    let mut timeout = DEFAULT_STOP_TIMEOUT;
    while let Some(command) = queue.recv().await {
        match command {
            Command::Trigger { id, reply } => {
                let _ = reply.send(trigger(&core, &id));
            }
            Command::Reset { id, reply } => {
                let _ = reply.send(match core.flow(&id) {
                    Some(flow) => {
                        flow.reset();
                        Ok(())
                    }
                    None => Err(unknown(&id)),
                });
            }
            Command::Stop { timeout: bound } => {
                timeout = bound;
                break;
            }
        }
    }
    // Refuse new requests; requests already queued are dropped, so their callers learn
    // that the scheduler stopped before handling them.
    queue.close();
    drop(queue);
    let result = shut_down(&core, timeout).await;
    publish.send_replace(Some(result));
}

/// Reserve flow `id` and spawn its run.
fn trigger<TState, TResourceKey>(core: &Core<TState, TResourceKey>, id: &str) -> CanoResult<()>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    let flow = core.flow(id).ok_or_else(|| unknown(id))?;
    let reservation = flow.try_reserve().map_err(|busy| match busy {
        Busy::Running => CanoError::workflow(format!("Flow '{id}' is already running")),
        Busy::Tripped => CanoError::workflow(format!(
            "Flow '{id}' is tripped — call reset_flow before triggering"
        )),
    })?;
    let flow = flow.clone();
    let run = tokio::spawn(async move { flow.run(reservation).await });
    core.control.track(run);
    Ok(())
}

fn unknown(id: &str) -> CanoError {
    CanoError::workflow(format!("No workflow registered with id '{id}'"))
}

/// Aborts the tasks it holds when dropped (the driver holds the tracked tasks this way
/// while it waits for them, so aborting the driver aborts them too).
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// Stop the loops, wait up to `timeout` for every loop and run to end, cancel the rest,
/// and tear every flow's resources down in reverse registration order.
async fn shut_down<TState, TResourceKey>(
    core: &Core<TState, TResourceKey>,
    timeout: Duration,
) -> CanoResult<()>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    core.control.signal_stop();
    // No task is spawned after the stop signal, so this takes every one of them.
    let mut tasks = AbortOnDrop(std::mem::take(&mut *core.control.tasks.lock()));
    // A bound too far out to represent is no bound.
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    let mut finished = true;
    for task in &mut tasks.0 {
        let ended = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, task).await.is_ok(),
            None => {
                let _ = task.await;
                true
            }
        };
        if !ended {
            finished = false;
            break;
        }
    }
    let mut result = Ok(());
    if !finished {
        for task in &tasks.0 {
            task.abort();
        }
        for task in &mut tasks.0 {
            let _ = task.await;
        }
        // A flow still marked running lost its run to the abort. (Loops aborted while
        // sleeping cancel nothing.)
        for flow in core.flows.iter().filter(|f| f.is_running()) {
            let err = CanoError::workflow(format!(
                "Run cancelled: still running when the scheduler's stop timeout ({timeout:?}) elapsed"
            ));
            // The run's future was dropped: its observers hear of its end from here.
            flow.workflow.notify(|o| o.on_run_end(Err(&err)));
            report_cancelled(&flow.id, timeout, flow.workflow.is_observed());
            flow.record(Err(err));
            result = Err(CanoError::workflow(
                "Timeout waiting for workflows to complete",
            ));
        }
    }
    for flow in core.flows.iter().rev() {
        flow.workflow.teardown_resources().await;
    }
    result
}

/// A run cancelled by the stop timeout, at `tracing`'s WARN level; on stderr when neither
/// `tracing` nor an observer (`observed`) hears of it.
fn report_cancelled(id: &str, timeout: Duration, observed: bool) {
    #[cfg(feature = "tracing")]
    {
        let _ = observed;
        tracing::warn!(flow = %id, ?timeout, "scheduler stop: run cancelled after the stop timeout");
    }
    #[cfg(not(feature = "tracing"))]
    if !observed {
        eprintln!(
            "cano: scheduler stop: cancelled the run of flow '{id}' after the stop timeout ({timeout:?})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::Workflow;

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum S {
        Done,
    }

    #[tokio::test(start_paused = true)]
    async fn finished_runs_are_reaped_on_each_trigger() {
        // Starts in its exit state: every run succeeds at once.
        let workflow = Workflow::bare().add_exit_state(S::Done);
        let running =
            RunningScheduler::launch(vec![Flow::new("m", workflow, S::Done, Cadence::Manual)]);
        for _ in 0..20 {
            running.trigger("m").await.unwrap();
            while running.has_running_flows().await {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(running.status("m").await.unwrap().run_count, 20);
        let tracked = running.handle.core.control.tasks.lock().len();
        assert!(tracked <= 1, "{tracked} handles tracked");
        running.stop().await.unwrap();
    }
}
