//! The workflows a worker can run, by name, each with the factory that builds it from a
//! run's input.

use super::writers::{DeferredClear, Slot};
use crate::cancel::CancellationToken;
use crate::error::CanoError;
use crate::recovery::postgres::{Lease, PostgresCheckpointStore};
use crate::workflow::Workflow;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// What a worker hands a registered workflow to run one run.
pub(super) struct RunContext {
    pub(super) run_id: String,
    pub(super) input: serde_json::Value,
    pub(super) initial_state: serde_json::Value,
    /// The worker's store; the run's lease is claimed on it already.
    pub(super) store: PostgresCheckpointStore,
    /// The worker's lease on the run.
    pub(super) lease: Lease,
    /// Whether the run has a log to resume (it ran before, on some worker).
    pub(super) has_log: bool,
    /// Set when the run asks for its log to be cleared ([`DeferredClear`]).
    pub(super) cleared: Arc<AtomicBool>,
    /// Cancels the run ([`Client::cancel`](super::Client::cancel)).
    pub(super) token: CancellationToken,
    /// Where the run says it started waiting (`None`: the worker keeps waiting runs).
    pub(super) waits: Option<tokio::sync::mpsc::UnboundedSender<super::worker::Wait>>,
    /// The run's hold on a slot of the worker: taken before the run starts, or (a fresh
    /// run whose first entry is recorded before any of its work) once that entry is
    /// committed.
    pub(super) slot: Arc<Slot>,
    /// Where a failed write of the run is reported (the worker then stops the run).
    pub(super) store_failures: tokio::sync::mpsc::UnboundedSender<CanoError>,
}

/// One registered workflow, erased: runs a run and answers its final state as JSON.
type Runner = Arc<
    dyn Fn(RunContext) -> BoxFuture<'static, Result<serde_json::Value, CanoError>> + Send + Sync,
>;

/// Workflows by name, each with a factory building it from a run's input.
///
/// ```
/// use cano::cluster::Registry;
/// use cano::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
/// enum Step { Start, Done }
///
/// #[derive(Deserialize)]
/// struct Report { day: String }
///
/// let registry = Registry::new().register("report", |report: Report| {
///     if report.day.is_empty() {
///         return Err(CanoError::configuration("a report needs a day"));
///     }
///     Ok(Workflow::<Step>::bare().add_exit_state(Step::Done))
/// });
/// assert_eq!(registry.names().collect::<Vec<_>>(), ["report"]);
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    workflows: BTreeMap<String, Runner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("workflows", &self.workflows.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register the workflow `name`, built for each run by `factory` from the run's input
    /// (deserialized from JSON as `I`). The run starts from its initial state
    /// (deserialized as `S`); its final state is stored as JSON. Registering a name again
    /// replaces the earlier factory.
    ///
    /// The factory's error, an input that does not deserialize as `I` and an initial state
    /// that does not deserialize as `S` fail the run with an error saying so. The
    /// factory is called on the worker's runtime: keep it quick (build, do not run).
    pub fn register<I, S, F>(mut self, name: impl Into<String>, factory: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        S: Clone + fmt::Debug + Hash + Eq + Send + Sync + Serialize + DeserializeOwned + 'static,
        F: Fn(I) -> Result<Workflow<S>, CanoError> + Send + Sync + 'static,
    {
        let name = name.into();
        let factory = Arc::new(factory);
        let workflow = name.clone();
        let runner: Runner = Arc::new(move |run: RunContext| {
            let factory = Arc::clone(&factory);
            let workflow = workflow.clone();
            Box::pin(async move { run_one(&workflow, factory.as_ref(), run).await })
        });
        self.workflows.insert(name, runner);
        self
    }

    /// The registered names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.workflows.keys().map(String::as_str)
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.workflows.contains_key(name)
    }

    /// Run one run of the workflow `name`: build it, start or resume it, and answer its
    /// final state as JSON.
    pub(super) async fn run(
        &self,
        name: &str,
        run: RunContext,
    ) -> Result<serde_json::Value, CanoError> {
        let Some(runner) = self.workflows.get(name) else {
            let known: Vec<&str> = self.names().collect();
            return Err(CanoError::configuration(format!(
                "cluster: run {:?} is of the workflow {name:?}, which this worker's registry \
                 does not have (it has {known:?}); register it in the workers of this queue, \
                 or submit the run to a queue whose workers have it",
                run.run_id
            )));
        };
        runner(run).await
    }
}

/// Build the workflow `name` with `factory` from the run's input and run it: resumed
/// from its log when an earlier worker left one, else started from its initial state.
async fn run_one<I, S, F>(
    name: &str,
    factory: &F,
    run: RunContext,
) -> Result<serde_json::Value, CanoError>
where
    I: DeserializeOwned,
    S: Clone + fmt::Debug + Hash + Eq + Send + Sync + Serialize + DeserializeOwned + 'static,
    F: Fn(I) -> Result<Workflow<S>, CanoError>,
{
    let RunContext {
        run_id,
        input,
        initial_state,
        store,
        lease,
        has_log,
        cleared,
        token,
        waits,
        slot,
        store_failures,
    } = run;
    let input: I = serde_json::from_value(input).map_err(|e| {
        CanoError::configuration(format!(
            "cluster: the input of run {run_id:?} does not deserialize as the input of the \
             workflow {name:?} ({}): {e}; submit it with the fields that type expects",
            std::any::type_name::<I>()
        ))
    })?;
    let initial: S = serde_json::from_value(initial_state).map_err(|e| {
        CanoError::configuration(format!(
            "cluster: the initial state of run {run_id:?} does not deserialize as a state of \
             the workflow {name:?} ({}): {e}",
            std::any::type_name::<S>()
        ))
    })?;
    // Rows fenced by the run's lease, signals through the worker's store.
    let writers = Arc::new(DeferredClear::new(
        store,
        lease,
        cleared,
        Arc::clone(&slot),
        store_failures,
    ));
    let mut workflow = factory(input)?
        .with_signal_store(Arc::clone(&writers))
        .with_run_writers(writers);
    if let Some(waits) = waits {
        workflow = workflow.with_observer(Arc::new(super::worker::WaitHook(waits)));
    }
    // A fresh run records its first entry, then takes its slot (in its writer) before
    // its first task; any other run takes its slot before anything of it runs.
    if has_log || !workflow.first_entry_precedes_work(&initial) {
        slot.take().await;
    }
    let end = if has_log {
        // A run asked to cancel while it waited to be resumed compensates what it owes.
        workflow.resume_from_cancelling(&run_id, token).await?
    } else {
        workflow
            .with_workflow_id(run_id.as_str())
            .orchestrate_with_token(initial, token)
            .await?
    };
    serde_json::to_value(&end).map_err(|e| {
        CanoError::workflow(format!(
            "cluster: run {run_id:?} ended in {end:?}, which does not serialize: {e}"
        ))
    })
}
