//! [`StateEntry`]: the public description of what can be registered for a state.

use super::join::JoinConfig;
use crate::saga::ErasedCompensatable;
use crate::task::stepped::ErasedSteppedTask;
use crate::task::{Task, TaskConfig};
use std::borrow::Cow;
use std::hash::Hash;
use std::sync::Arc;

/// The kinds of state a workflow can hold, one variant per `register*` method.
///
/// Part of the public API for compatibility; no `Workflow` method takes or returns it.
pub enum StateEntry<TState, TResourceKey = Cow<'static, str>>
where
    TState: Clone + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// [`Workflow::register`](crate::Workflow::register).
    Single {
        /// The task.
        task: Arc<dyn Task<TState, TResourceKey> + Send + Sync>,
        /// Its configuration, read at registration.
        config: Arc<TaskConfig>,
    },
    /// [`Workflow::register_router`](crate::Workflow::register_router).
    Router {
        /// The router (through its `Task` impl).
        task: Arc<dyn Task<TState, TResourceKey> + Send + Sync>,
        /// Its configuration, read at registration.
        config: Arc<TaskConfig>,
    },
    /// [`Workflow::register_split`](crate::Workflow::register_split).
    Split {
        /// The members, in index order.
        tasks: Vec<Arc<dyn Task<TState, TResourceKey> + Send + Sync>>,
        /// Each member's configuration.
        configs: Arc<Vec<Arc<TaskConfig>>>,
        /// How the members are joined.
        join_config: Arc<JoinConfig<TState>>,
    },
    /// [`Workflow::register_with_compensation`](crate::Workflow::register_with_compensation).
    CompensatableSingle {
        /// The compensatable task.
        task: Arc<dyn ErasedCompensatable<TState, TResourceKey>>,
        /// Its configuration, read at registration.
        config: Arc<TaskConfig>,
    },
    /// [`Workflow::register_stepped`](crate::Workflow::register_stepped).
    Stepped {
        /// The stepped task.
        task: Arc<dyn ErasedSteppedTask<TState, TResourceKey>>,
        /// Its configuration, read at registration.
        config: Arc<TaskConfig>,
    },
}

impl<TState, TResourceKey> Clone for StateEntry<TState, TResourceKey>
where
    TState: Clone + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn clone(&self) -> Self {
        match self {
            Self::Single { task, config } => Self::Single {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
            Self::Router { task, config } => Self::Router {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
            Self::Split {
                tasks,
                configs,
                join_config,
            } => Self::Split {
                tasks: tasks.clone(),
                configs: Arc::clone(configs),
                join_config: Arc::clone(join_config),
            },
            Self::CompensatableSingle { task, config } => Self::CompensatableSingle {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
            Self::Stepped { task, config } => Self::Stepped {
                task: Arc::clone(task),
                config: Arc::clone(config),
            },
        }
    }
}
