#![doc = include_str!("../../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cancel;
pub mod circuit;
#[cfg(feature = "postgres")]
pub mod cluster;
pub mod error;
pub mod guide;
mod instrument;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod observer;
pub mod rate_limit;
pub mod recovery;
pub mod resource;
pub mod run_data;
pub mod saga;
#[cfg(feature = "scheduler")]
#[cfg_attr(docsrs, doc(cfg(feature = "scheduler")))]
pub mod scheduler;
pub mod signal;
pub mod store;
pub mod task;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod workflow;

mod clock;
mod util;

pub use circuit::{CircuitBreaker, CircuitPolicy, CircuitState, Permit as CircuitPermit};
pub use error::{CanoError, CanoResult};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics::MetricsObserver;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use observer::TracingObserver;
pub use observer::WorkflowObserver;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use recovery::PostgresCheckpointStore;
#[cfg(feature = "recovery")]
#[cfg_attr(docsrs, doc(cfg(feature = "recovery")))]
pub use recovery::RedbCheckpointStore;
pub use recovery::{
    CheckpointRow, CheckpointStore, ListRuns, MemoryCheckpointStore, RowKind, RunStatus,
    RunSummary, RunWriter, RunWriters,
};
pub use resource::{HealthStatus, Resource, Resources};
pub use saga::{CompensatableTask, ErasedCompensatable};
#[cfg(feature = "scheduler")]
#[cfg_attr(docsrs, doc(cfg(feature = "scheduler")))]
pub use scheduler::{BackoffPolicy, FlowInfo, RunningScheduler, Schedule, Scheduler, Status};
pub use signal::{Signal, SignalStore, SignalTask};
pub use store::MemoryStore;
pub use task::batch::{
    BatchTask, BatchTaskObject, DefaultBatchItem, DefaultBatchItemOutput, DynBatchTask, run_batch,
};
pub use task::poll::{
    DynPollTask, PollErrorPolicy, PollOutcome, PollTask, PollTaskObject, run_poll_loop,
};
pub use task::router::{DynRouterTask, RouterTask, RouterTaskObject};
pub use task::stepped::{
    DefaultStepCursor, DynSteppedTask, StepOutcome, SteppedTask, SteppedTaskObject, run_stepped,
};
pub use task::stream::{
    CloseReason, ItemStream, StreamBatch, StreamErrorPolicy, StreamTask, StreamWindow,
    WindowSignal, run_stream,
};
pub use task::timer::{DynTimerTask, TimerOutcome, TimerTask, TimerTaskObject, run_timer};
pub use task::{DynTask, RetryMode, Task, TaskConfig, TaskObject, TaskResult};
pub use workflow::{JoinConfig, JoinStrategy, SplitResult, SplitTaskResult, StateEntry, Workflow};

pub use cano_macros::{FromResources, Resource, checkpoint_store, resource, task};

/// Everything most programs need: `use cano::prelude::*;`.
pub mod prelude {
    pub use crate::{
        BatchTask, CanoError, CanoResult, CheckpointRow, CheckpointStore, CircuitBreaker,
        CircuitPermit, CircuitPolicy, CircuitState, CompensatableTask, HealthStatus, JoinConfig,
        JoinStrategy, MemoryStore, PollErrorPolicy, PollOutcome, PollTask, Resource, Resources,
        RetryMode, RouterTask, RowKind, SignalTask, SplitResult, SplitTaskResult, StateEntry,
        StepOutcome, SteppedTask, Task, TaskConfig, TaskObject, TaskResult, TimerOutcome,
        TimerTask, Workflow, WorkflowObserver, run_stepped,
    };
    pub use crate::{
        CloseReason, ItemStream, StreamErrorPolicy, StreamTask, StreamWindow, WindowSignal,
    };

    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub use crate::MetricsObserver;
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub use crate::PostgresCheckpointStore;
    #[cfg(feature = "recovery")]
    #[cfg_attr(docsrs, doc(cfg(feature = "recovery")))]
    pub use crate::RedbCheckpointStore;
    #[cfg(feature = "tracing")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
    pub use crate::TracingObserver;
    #[cfg(feature = "scheduler")]
    #[cfg_attr(docsrs, doc(cfg(feature = "scheduler")))]
    pub use crate::{BackoffPolicy, FlowInfo, RunningScheduler, Schedule, Scheduler, Status};

    pub use crate::FromResources;
    pub use crate::Resource as ResourceDerive;
    pub use crate::saga;
    pub use crate::{checkpoint_store, resource, task};
}
