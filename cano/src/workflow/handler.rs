//! [`Handler`]: what the run loop does in a registered state.
//!
//! Every kind of state (plain task, router, and later split, stepped, compensatable)
//! is one variant here. The run loop in `execution.rs` is the only caller: it writes the
//! state-entry checkpoint row (using [`Handler::checkpoint_task_id`]) and then calls
//! [`Handler::dispatch`]. Each variant runs its work through the same
//! [`attempt`](super::execution) helper, which owns retries, timeouts, the circuit
//! breaker, panic capture and observer events.

use super::Workflow;
use super::execution::Run;
use super::join::JoinConfig;
use crate::error::CanoError;
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
        }
    }
}

impl<TState, TResourceKey> Handler<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    pub(crate) fn task(
        task: TaskObject<TState, TResourceKey>,
        config: Arc<TaskConfig>,
        checkpointed: bool,
    ) -> Self {
        Self::Task {
            task,
            config,
            checkpointed,
        }
    }

    /// Structural checks run by `Workflow::validate`; `known` says whether a state is
    /// registered or an exit state.
    pub(crate) fn validate(&self, known: impl Fn(&TState) -> bool) -> Result<(), CanoError> {
        match self {
            Self::Task { .. } => Ok(()),
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
        }
    }

    /// The `task_id` of this state's entry row, or `None` when the state writes no row.
    pub(crate) fn checkpoint_task_id(&self) -> Option<Cow<'static, str>> {
        match self {
            Self::Task {
                task, checkpointed, ..
            } => checkpointed.then(|| task.name()),
            Self::Split { .. } => Some(Cow::Borrowed("")),
        }
    }

    /// Whether entering this state writes an entry row.
    pub(crate) fn is_checkpointed(&self) -> bool {
        match self {
            Self::Task { checkpointed, .. } => *checkpointed,
            Self::Split { .. } => true,
        }
    }

    /// Whether this state's task can be rolled back (sagas).
    pub(crate) fn is_compensatable(&self) -> bool {
        match self {
            Self::Task { .. } | Self::Split { .. } => false,
        }
    }

    /// Run the state's work and return the next state.
    pub(crate) async fn dispatch(
        &self,
        wf: &Workflow<TState, TResourceKey>,
        run: &mut Run,
    ) -> Result<TState, CanoError> {
        let _ = run;
        match self {
            Self::Task { task, config, .. } => {
                let resources = &*wf.resources;
                wf.attempt(config, || task.name(), || task.run(resources), single_next)
                    .await
            }
            Self::Split {
                tasks,
                configs,
                join,
            } => wf.run_split(tasks, configs, join).await,
        }
    }
}

/// The next state of a single-task state; a split result is a usage error.
fn single_next<TState>(result: TaskResult<TState>) -> Result<TState, CanoError> {
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
    pub(crate) fn compensator_count(&self) -> usize {
        self.states
            .iter()
            .filter(|(_, h)| h.is_compensatable())
            .count()
    }
}
