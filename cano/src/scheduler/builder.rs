//! [`Scheduler`]: registers flows, then starts them.

use super::flow::{Cadence, Flow};
use super::policy::BackoffPolicy;
use super::running::RunningScheduler;
use crate::error::{CanoError, CanoResult};
use crate::workflow::Workflow;
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::time::Duration;

/// Runs workflows on intervals, cron schedules or on demand.
///
/// Register each workflow as a *flow* under a unique id, then [`start`](Self::start) the
/// scheduler to get a [`RunningScheduler`] handle for triggering, inspecting and stopping
/// the flows. All flows of one scheduler share the state and resource-key types.
///
/// ```
/// use cano::prelude::*;
/// use std::time::Duration;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Work, Done }
///
/// struct Work;
///
/// #[task(state = Step)]
/// impl Work {
///     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
///         Ok(TaskResult::Single(Step::Done))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> CanoResult<()> {
/// let workflow = || Workflow::bare().register(Step::Work, Work).add_exit_state(Step::Done);
///
/// let mut scheduler = Scheduler::new();
/// scheduler.every_minutes("sync", workflow(), Step::Work, 5)?;
/// scheduler.cron("nightly", workflow(), Step::Work, "0 0 2 * * *")?;
/// scheduler.manual("on-demand", workflow(), Step::Work)?;
/// scheduler.set_backoff("sync", BackoffPolicy::with_trip(5))?;
///
/// let running = scheduler.start().await?;
/// running.trigger("on-demand").await?;
/// running.stop().await?;
/// assert_eq!(running.status("sync").await.unwrap().run_count, 1); // ran once, at start
/// # Ok(())
/// # }
/// ```
pub struct Scheduler<TState, TResourceKey = Cow<'static, str>>
where
    TState: Clone + Send + Sync + 'static + fmt::Debug + Hash + Eq,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// In registration order, which is the order of setup, of `list()` and (reversed) of
    /// teardown.
    flows: Vec<Flow<TState, TResourceKey>>,
}

impl<TState, TResourceKey> Scheduler<TState, TResourceKey>
where
    TState: Clone + Send + Sync + 'static + fmt::Debug + Hash + Eq,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// An empty scheduler.
    #[must_use]
    pub fn new() -> Self {
        Self { flows: Vec::new() }
    }

    /// Register a flow that runs as soon as the scheduler starts, then again `interval` after
    /// each run ends (a fixed delay between runs, so a slow run never overlaps the next).
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if a flow with this id exists.
    pub fn every(
        &mut self,
        id: &str,
        workflow: Workflow<TState, TResourceKey>,
        initial_state: TState,
        interval: Duration,
    ) -> CanoResult<()> {
        self.add(id, workflow, initial_state, Cadence::Every(interval))
    }

    /// [`every`](Self::every) with an interval of `seconds` seconds.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if a flow with this id exists.
    pub fn every_seconds(
        &mut self,
        id: &str,
        workflow: Workflow<TState, TResourceKey>,
        initial_state: TState,
        seconds: u64,
    ) -> CanoResult<()> {
        self.every(id, workflow, initial_state, Duration::from_secs(seconds))
    }

    /// [`every`](Self::every) with an interval of `minutes` minutes.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if a flow with this id exists.
    pub fn every_minutes(
        &mut self,
        id: &str,
        workflow: Workflow<TState, TResourceKey>,
        initial_state: TState,
        minutes: u64,
    ) -> CanoResult<()> {
        let interval = Duration::from_secs(minutes.saturating_mul(60));
        self.every(id, workflow, initial_state, interval)
    }

    /// [`every`](Self::every) with an interval of `hours` hours.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if a flow with this id exists.
    pub fn every_hours(
        &mut self,
        id: &str,
        workflow: Workflow<TState, TResourceKey>,
        initial_state: TState,
        hours: u64,
    ) -> CanoResult<()> {
        let interval = Duration::from_secs(hours.saturating_mul(3600));
        self.every(id, workflow, initial_state, interval)
    }

    /// Register a flow that runs at each tick of the cron expression `expr`, evaluated in UTC.
    /// The first run happens at the first tick after start; ticks that pass during a run or
    /// inside a backoff window are skipped, not queued.
    ///
    /// `expr` has 6 or 7 space-separated fields — seconds, minutes, hours, day of month,
    /// month, day of week, optional year — or is one of `@yearly`, `@monthly`, `@weekly`,
    /// `@daily`, `@hourly`. Examples: `"0 */5 * * * *"` (every five minutes),
    /// `"0 0 9 * * MON"` (Mondays at 09:00). Five-field Unix expressions are rejected.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if a flow with this id exists, or
    /// `Configuration("Invalid cron expression: {cause}")` if `expr` does not parse; the
    /// cause quotes the expression and points at the offending field:
    ///
    /// ```
    /// # use cano::prelude::*;
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum Step { Go }
    /// let mut scheduler: Scheduler<Step> = Scheduler::new();
    /// let err = scheduler.cron("c", Workflow::bare(), Step::Go, "61 * * * * *").unwrap_err();
    /// assert!(matches!(&err, CanoError::Configuration(m)
    ///     if m.starts_with("Invalid cron expression: 61 * * * * *")));
    /// ```
    pub fn cron(
        &mut self,
        id: &str,
        workflow: Workflow<TState, TResourceKey>,
        initial_state: TState,
        expr: &str,
    ) -> CanoResult<()> {
        self.ensure_new(id)?;
        // The cron crate's message quotes the expression with a caret under the fault.
        let schedule = cron::Schedule::from_str(expr)
            .map_err(|e| CanoError::configuration(format!("Invalid cron expression: {e}")))?;
        self.add(
            id,
            workflow,
            initial_state,
            Cadence::Cron(Box::new(schedule)),
        )
    }

    /// Register a flow that runs only when [triggered](RunningScheduler::trigger).
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if a flow with this id exists.
    pub fn manual(
        &mut self,
        id: &str,
        workflow: Workflow<TState, TResourceKey>,
        initial_state: TState,
    ) -> CanoResult<()> {
        self.add(id, workflow, initial_state, Cadence::Manual)
    }

    /// Number of registered flows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Whether a flow is registered under `id`.
    #[must_use]
    pub fn contains(&self, id: &str) -> bool {
        self.flows.iter().any(|f| f.id == id)
    }

    /// Replace the [`BackoffPolicy`] of flow `id` (every flow starts with the default).
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if no flow is registered under `id`.
    pub fn set_backoff(&mut self, id: &str, policy: BackoffPolicy) -> CanoResult<()> {
        let flow = self.flows.iter_mut().find(|f| f.id == id).ok_or_else(|| {
            CanoError::configuration(format!("Flow '{id}' not found — cannot set backoff"))
        })?;
        flow.policy = policy;
        Ok(())
    }

    /// Validate every flow, set up every workflow's resources and start the flows.
    ///
    /// In order: each workflow is [validated](Workflow::validate) together with its initial
    /// state (in registration order; the first error is returned and nothing is set up);
    /// each workflow's resources are set up once, in registration order (if one fails, the
    /// flows already set up are torn down in reverse order and its error is returned); then
    /// interval and cron flows start their loops. Interval flows run right away; cron flows
    /// wait for their first tick; manual flows wait for a trigger.
    ///
    /// The resources stay set up across runs and are torn down once, when the scheduler
    /// stops. If this future is dropped during setup, resources already set up stay set up
    /// and nothing is started.
    ///
    /// # Errors
    /// Validation errors ([`CanoError::Configuration`]) and resource setup errors.
    ///
    /// # Panics
    /// If called outside a Tokio runtime.
    pub async fn start(self) -> CanoResult<RunningScheduler<TState, TResourceKey>> {
        for flow in &self.flows {
            flow.workflow.validate()?;
            flow.workflow.validate_initial_state(flow.initial_state())?;
        }
        for (i, flow) in self.flows.iter().enumerate() {
            if let Err(e) = flow.workflow.setup_resources().await {
                for earlier in self.flows[..i].iter().rev() {
                    earlier.workflow.teardown_resources().await;
                }
                return Err(e);
            }
        }
        Ok(RunningScheduler::launch(self.flows))
    }

    fn ensure_new(&self, id: &str) -> CanoResult<()> {
        if self.contains(id) {
            return Err(CanoError::configuration(format!(
                "Flow '{}' already exists",
                id
            )));
        }
        Ok(())
    }

    fn add(
        &mut self,
        id: &str,
        workflow: Workflow<TState, TResourceKey>,
        initial_state: TState,
        cadence: Cadence,
    ) -> CanoResult<()> {
        self.ensure_new(id)?;
        self.flows
            .push(Flow::new(id, workflow, initial_state, cadence));
        Ok(())
    }
}

impl<TState, TResourceKey> Default for Scheduler<TState, TResourceKey>
where
    TState: Clone + Send + Sync + 'static + fmt::Debug + Hash + Eq,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}
