//! [`Handler`]: what the run loop does in a registered state.
//!
//! Every kind of state (plain task, router, split, stepped, compensatable) is one
//! variant here. The run loop in `execution.rs` is the only caller: it writes the
//! state-entry checkpoint row (using [`Handler::checkpoint_task_id`]) and then calls
//! [`Handler::dispatch`]. Each variant runs its work through the shared
//! [`TaskScope`](super::execution::TaskScope) and `guarded` retry loop, which own
//! retries, timeouts, the circuit breaker, panic capture and observer events.

use super::Workflow;
use super::execution::{Attempt, Completed, Run, first_outcome, guarded, guarded_retry};
use super::join::JoinConfig;
use crate::error::CanoError;
use crate::recovery::CheckpointRow;
use crate::resource::Resources;
use crate::saga::ErasedCompensatable;
use crate::task::stepped::{ErasedStep, ErasedSteppedTask};
use crate::task::{TaskConfig, TaskObject, TaskResult};
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

pub(crate) enum Handler<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// A single [`Task`](crate::Task): `register` (checkpointed) or `register_router`
    /// (not checkpointed).
    Task {
        task: TaskObject<TState, TResourceKey>,
        config: Arc<TaskConfig>,
        checkpointed: bool,
    },
    /// `register_split`: members run concurrently, then the join decides.
    Split {
        tasks: Arc<[TaskObject<TState, TResourceKey>]>,
        configs: Arc<[Arc<TaskConfig>]>,
        join: Arc<JoinConfig<TState>>,
    },
    /// `register_stepped`: the engine drives the step loop and records cursors.
    Stepped {
        task: Arc<dyn ErasedSteppedTask<TState, TResourceKey>>,
        config: Arc<TaskConfig>,
    },
    /// `register_with_compensation`: records its output for rollback.
    Compensatable {
        task: Arc<dyn ErasedCompensatable<TState, TResourceKey>>,
        config: Arc<TaskConfig>,
    },
}

impl<TState, TResourceKey> Clone for Handler<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn clone(&self) -> Self {
        match self {
            Self::Task {
                task,
                config,
                checkpointed,
            } => Self::Task {
                task: Arc::clone(task),
                config: Arc::clone(config),
                checkpointed: *checkpointed,
            },
            Self::Split {
                tasks,
                configs,
                join,
            } => Self::Split {
                tasks: Arc::clone(tasks),
                configs: Arc::clone(configs),
                join: Arc::clone(join),
            },
            Self::Stepped { task, config } => Self::Stepped {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
            Self::Compensatable { task, config } => Self::Compensatable {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
        }
    }
}

impl<TState, TResourceKey> Handler<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Structural checks run by `Workflow::validate`; `known` says whether a state is
    /// registered or an exit state.
    pub(crate) fn validate(&self, known: impl Fn(&TState) -> bool) -> Result<(), CanoError> {
        match self {
            Self::Split { join, .. } => {
                join.check()?;
                if known(&join.join_state) {
                    Ok(())
                } else {
                    Err(CanoError::configuration(format!(
                        "Split join_state {:?} is neither registered nor an exit state",
                        join.join_state
                    )))
                }
            }
            Self::Task { .. } | Self::Stepped { .. } | Self::Compensatable { .. } => Ok(()),
        }
    }

    /// The `task_id` of this state's entry row, or `None` when the state writes no row.
    pub(crate) fn checkpoint_task_id(&self) -> Option<Cow<'static, str>> {
        match self {
            Self::Task {
                task, checkpointed, ..
            } => checkpointed.then(|| task.name()),
            Self::Split { .. } => Some(Cow::Borrowed("")),
            Self::Stepped { task, .. } => Some(task.name()),
            Self::Compensatable { task, .. } => Some(task.name()),
        }
    }

    /// The task of a plain single-task state whose config needs nothing around an
    /// attempt (no breaker, no timeout), for the run loop's fast path.
    pub(crate) fn plain_task(&self) -> Option<(&TaskObject<TState, TResourceKey>, &TaskConfig)> {
        match self {
            Self::Task { task, config, .. } if crate::task::retry::is_plain(config) => {
                Some((task, config))
            }
            _ => None,
        }
    }

    /// Whether entering this state writes an entry row.
    pub(crate) fn is_checkpointed(&self) -> bool {
        match self {
            Self::Task { checkpointed, .. } => *checkpointed,
            Self::Split { .. } | Self::Stepped { .. } | Self::Compensatable { .. } => true,
        }
    }

    /// Whether this is an engine-driven stepped state.
    pub(crate) fn is_stepped(&self) -> bool {
        matches!(self, Self::Stepped { .. })
    }

    /// The compensatable task behind this state, if any.
    pub(crate) fn compensator(
        &self,
    ) -> Option<&Arc<dyn ErasedCompensatable<TState, TResourceKey>>> {
        match self {
            Self::Compensatable { task, .. } => Some(task),
            _ => None,
        }
    }

    /// After a plain task's first attempt, made inline by the run loop: if it failed, the
    /// rest of the retry loop (panics caught); then the next state.
    pub(crate) async fn retry_plain(
        &self,
        resources: &Resources<TResourceKey>,
        attempt: Attempt<TState>,
    ) -> Result<TState, CanoError> {
        match (self, attempt) {
            (Self::Task { task, config, .. }, Ok(Err(first))) => {
                guarded_retry(config, || task.run(resources), first)
                    .await
                    .and_then(single_next)
            }
            // The run loop makes a first attempt only for plain tasks.
            (_, attempt) => first_outcome(attempt),
        }
    }

    /// Run the state's work and return the next state. `label` is the state's `Debug`
    /// text (from the state table).
    pub(crate) async fn dispatch(
        &self,
        wf: &Workflow<TState, TResourceKey>,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let resources = &*wf.resources;
        match self {
            Self::Task { task, config, .. } => {
                let scope = wf.begin_task(config, || task.name());
                let outcome = guarded(scope.config(), || task.run(resources))
                    .await
                    .and_then(single_next);
                scope.end(&outcome);
                outcome
            }
            Self::Split {
                tasks,
                configs,
                join,
                // The less common kinds run boxed, so that their larger futures do not
                // inflate the run loop's future (and so every spawned run) for all workflows.
            } => Box::pin(wf.run_split(tasks, configs, join)).await,
            Self::Stepped { task, config } => {
                Box::pin(wf.run_stepped(task.as_ref(), config, run, label)).await
            }
            Self::Compensatable { task, config } => {
                Box::pin(wf.run_compensatable(task.as_ref(), config, run, label)).await
            }
        }
    }
}

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// A compensatable state: run forward, then record the output (checkpoint row and
    /// compensation stack) so a later failure can undo it.
    async fn run_compensatable(
        &self,
        task: &dyn ErasedCompensatable<TState, TResourceKey>,
        config: &TaskConfig,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let resources = &*self.resources;
        let scope = self.begin_task(config, || task.name());
        let outcome = guarded(scope.config(), || task.run(resources))
            .await
            .and_then(|(result, blob)| match result {
                TaskResult::Single(next) => Ok((next, blob)),
                TaskResult::Split(_) => Err(CanoError::workflow(
                    "Compensatable task returned a split result \u{2014} split states cannot be compensatable",
                )),
            });
        scope.end(&outcome);
        let (next, blob) = outcome?;
        let name = task.name().into_owned();
        if let (Some(store), true) = (&self.checkpoint_store, run.workflow_id.is_some()) {
            let row =
                CheckpointRow::new(run.sequence, label, name.clone()).with_output(blob.clone());
            if let Err(e) = self.append_row(store.as_ref(), run, row).await {
                // The step did happen: make sure the rollback undoes it.
                run.push_completed(Completed {
                    task_id: name,
                    output: blob,
                });
                return Err(CanoError::checkpoint_store(format!(
                    "append compensation checkpoint: {e}"
                )));
            }
        }
        run.push_completed(Completed {
            task_id: name,
            output: blob,
        });
        Ok(next)
    }
}

/// The next state of a single-task state; a split result is a usage error.
pub(crate) fn single_next<TState>(result: TaskResult<TState>) -> Result<TState, CanoError> {
    match result {
        TaskResult::Single(next) => Ok(next),
        TaskResult::Split(_) => Err(CanoError::workflow(
            "Single task returned split result - use register_split() for split tasks",
        )),
    }
}

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// The engine-driven step loop of a `register_stepped` state.
    ///
    /// Each step runs under the task's retry policy (a retry reuses the cursor). With a
    /// checkpoint store, each new cursor is appended before the next step runs. A resumed
    /// run starts from the cursor recorded at the resume point.
    async fn run_stepped(
        &self,
        task: &dyn ErasedSteppedTask<TState, TResourceKey>,
        config: &TaskConfig,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        let resources = &*self.resources;
        let scope = self.begin_task(config, || task.name());
        let mut cursor = run.take_resume_cursor();
        let outcome = loop {
            let step = guarded(scope.config(), || task.step(resources, cursor.clone())).await;
            match step {
                Err(e) => break Err(e),
                Ok(ErasedStep::Done(TaskResult::Single(next))) => break Ok(next),
                Ok(ErasedStep::Done(TaskResult::Split(_))) => {
                    break Err(CanoError::workflow(
                        "Stepped task returned split result \u{2014} split is not supported for Stepped states",
                    ));
                }
                Ok(ErasedStep::More(bytes)) => {
                    if let (Some(store), true) = (&self.checkpoint_store, run.workflow_id.is_some())
                    {
                        let row = CheckpointRow::new(run.sequence, label, task.name())
                            .with_cursor(bytes.clone());
                        if let Err(e) = self.append_row(store.as_ref(), run, row).await {
                            break Err(CanoError::checkpoint_store(format!(
                                "append step cursor checkpoint: {e}"
                            )));
                        }
                    }
                    cursor = Some(bytes);
                }
            }
        };
        scope.end(&outcome);
        outcome
    }
}
