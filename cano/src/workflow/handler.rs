//! [`Handler`]: what a registered state is, as the run loop sees it.
//!
//! Every kind of state (plain task, router, split, stepped, compensatable) is one variant
//! here, with what the run loop needs to know about it: the `task_id` of its entry row,
//! whether it writes one, whether its first attempt may run bare. Running a handler is
//! the run loop's job (`states.rs`); every variant's work goes through the one attempt
//! path (`task::attempt`).

use super::join::JoinConfig;
use crate::error::CanoError;
use crate::resource::Resources;
use crate::saga::ErasedCompensatable;
use crate::signal::ErasedSignalTask;
use crate::task::attempt::{self, Attempt};
use crate::task::stepped::ErasedSteppedTask;
use crate::task::stream::ErasedStreamTask;
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
    /// A [`TimerTask`](crate::TimerTask) registered with `register`: the engine runs it
    /// durably (its deadline recorded in the log). `task.__timer()` is `Some`.
    Timer {
        task: TaskObject<TState, TResourceKey>,
        config: Arc<TaskConfig>,
    },
    /// `register_signal`: waits for a signal, then runs the task on its payload.
    Signal {
        task: Arc<dyn ErasedSignalTask<TState, TResourceKey>>,
        config: Arc<TaskConfig>,
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
    /// `register_stream`: the engine drives the stream and records window cursors.
    Stream {
        task: Arc<dyn ErasedStreamTask<TState, TResourceKey>>,
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
            Self::Timer { task, config } => Self::Timer {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
            Self::Signal { task, config } => Self::Signal {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
            Self::Compensatable { task, config } => Self::Compensatable {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
            Self::Stream { task } => Self::Stream {
                task: Arc::clone(task),
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
            Self::Signal { task, .. } => match task.timeout() {
                Some((_, state)) if !known(&state) => Err(CanoError::configuration(format!(
                    "Signal state's timeout state {state:?} is neither registered nor an exit state"
                ))),
                _ => Ok(()),
            },
            Self::Task { .. }
            | Self::Timer { .. }
            | Self::Stepped { .. }
            | Self::Stream { .. }
            | Self::Compensatable { .. } => Ok(()),
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
            Self::Timer { task, .. } => Some(task.name()),
            Self::Signal { task, .. } => Some(task.name()),
            Self::Compensatable { task, .. } => Some(task.name()),
            Self::Stream { task } => Some(task.name()),
        }
    }

    /// The task of a plain single-task state whose config needs nothing around an
    /// attempt (no breaker, no timeout), for the run loop's fast path.
    pub(crate) fn plain_task(&self) -> Option<(&TaskObject<TState, TResourceKey>, &TaskConfig)> {
        match self {
            Self::Task { task, config, .. } if attempt::is_plain(config) => Some((task, config)),
            _ => None,
        }
    }

    /// The kind of state this is, as the `kind` label of its metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Task {
                checkpointed: true, ..
            } => "single",
            Self::Task { .. } => "router",
            Self::Timer { .. } => "timer",
            Self::Split { .. } => "split",
            Self::Stepped { .. } => "stepped",
            Self::Compensatable { .. } => "compensatable",
            Self::Signal { .. } => "signal",
            Self::Stream { .. } => "stream",
        }
    }

    /// Whether entering this state writes an entry row.
    pub(crate) fn is_checkpointed(&self) -> bool {
        match self {
            Self::Task { checkpointed, .. } => *checkpointed,
            Self::Split { .. }
            | Self::Timer { .. }
            | Self::Signal { .. }
            | Self::Stepped { .. }
            | Self::Stream { .. }
            | Self::Compensatable { .. } => true,
        }
    }

    /// Whether this state resumes from a cursor recorded in `StepCursor` rows (stepped and
    /// stream states).
    pub(crate) fn resumes_at_cursor(&self) -> bool {
        matches!(self, Self::Stepped { .. } | Self::Stream { .. })
    }

    /// Whether this is a durable timer state.
    pub(crate) fn is_timer(&self) -> bool {
        matches!(self, Self::Timer { .. })
    }

    /// Whether this is a signal state.
    pub(crate) fn is_signal(&self) -> bool {
        matches!(self, Self::Signal { .. })
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
        attempt: Attempt<TaskResult<TState>>,
    ) -> Result<TState, CanoError> {
        match (self, attempt) {
            (Self::Task { task, config, .. }, Ok(Err(first))) => attempt::guarded(
                config,
                || task.run(resources),
                |e, n| task.is_retryable(e, n),
                Some(first),
                attempt::panicked,
            )
            .await
            .and_then(single_next),
            // The run loop makes a first attempt only for plain tasks.
            (_, attempt) => first_outcome(attempt),
        }
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

/// The next state from a single task's bare attempt: its `Single` result, its error, or
/// the error its panic becomes.
pub(crate) fn first_outcome<TState>(
    attempt: Attempt<TaskResult<TState>>,
) -> Result<TState, CanoError>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
{
    match attempt {
        Ok(result) => result.and_then(single_next),
        Err(payload) => Err(attempt::panicked(&*payload)),
    }
}
