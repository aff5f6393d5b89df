//! The public API surface of the core: names at the crate root, in the prelude and in the
//! modules; auto traits of the public types and futures; object safety; and the enums
//! user code may match exhaustively.
//!
//! Split/join, router/poll/batch/stepped, saga, redb and scheduler items are covered
//! where those features are tested.

mod support;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use support::{TestStore, assert_send, assert_send_sync};

/// Every core root re-export resolves (compile-time check).
#[allow(unused_imports)]
mod root_names {
    use cano::{
        CanoError, CanoResult, CheckpointRow, CheckpointStore, CircuitBreaker, CircuitPermit,
        CircuitPolicy, CircuitState, DynTask, HealthStatus, MemoryStore, Resource, Resources,
        RetryMode, RowKind, StateEntry, Task, TaskConfig, TaskObject, TaskResult, Workflow,
        WorkflowObserver,
    };
    // Macros, in the macro namespace of the root.
    use cano::{FromResources, checkpoint_store, resource, task};

    #[cfg(feature = "tracing")]
    use cano::TracingObserver;
}

/// Every core prelude name resolves (compile-time check).
#[allow(unused_imports)]
mod prelude_names {
    use cano::prelude::{
        CanoError, CanoResult, CheckpointRow, CheckpointStore, CircuitBreaker, CircuitPermit,
        CircuitPolicy, CircuitState, FromResources, HealthStatus, MemoryStore, Resource,
        ResourceDerive, Resources, RetryMode, RowKind, Task, TaskConfig, TaskObject, TaskResult,
        Workflow, WorkflowObserver, checkpoint_store, resource, task,
    };

    #[cfg(feature = "tracing")]
    use cano::prelude::TracingObserver;
}

/// The module paths of the core items resolve (compile-time check).
#[allow(unused_imports)]
mod module_paths {
    use cano::circuit::{CircuitBreaker, CircuitPolicy, CircuitState, Permit};
    use cano::error::{CanoError, CanoResult};
    use cano::observer::WorkflowObserver;
    use cano::recovery::{CheckpointRow, CheckpointStore, RowKind};
    use cano::resource::{HealthStatus, Resource, Resources};
    use cano::store::error::StoreError as StoreErrorByModule;
    use cano::store::memory::MemoryStore as MemoryStoreByModule;
    use cano::store::{MemoryStore, StoreError, StoreResult};
    use cano::task::{
        DynTask, RetryMode, Task, TaskConfig, TaskObject, TaskResult, run_with_retries,
    };
    use cano::workflow::{StateEntry, Workflow};

    #[cfg(feature = "tracing")]
    use cano::observer::TracingObserver;
}

mod with_the_prelude {
    //! Everything a typical program writes after `use cano::prelude::*;`.
    use cano::prelude::*;

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum Flow {
        Begin,
        End,
    }

    #[derive(Resource)]
    pub struct Config;

    #[derive(ResourceDerive)]
    pub struct ViaAlias;

    pub struct Plain;
    impl Resource for Plain {}

    pub struct Hooked;
    #[resource]
    impl Resource for Hooked {
        async fn health(&self) -> HealthStatus {
            HealthStatus::Degraded("hooked".into())
        }
    }

    #[derive(FromResources)]
    pub struct Deps {
        #[res("config")]
        pub config: std::sync::Arc<Config>,
    }

    pub struct Begin;
    #[task(state = Flow)]
    impl Begin {
        async fn run(&self, res: &Resources) -> Result<TaskResult<Flow>, CanoError> {
            let deps = Deps::from_resources(res)?;
            let _config: &Config = &deps.config;
            let _ = resource::Resources::<String>::new();
            Ok(TaskResult::Single(Flow::End))
        }
    }

    pub struct TraitForm;
    #[task]
    impl Task<Flow> for TraitForm {
        async fn run_bare(&self) -> Result<TaskResult<Flow>, CanoError> {
            Ok(TaskResult::Single(Flow::End))
        }
    }

    #[derive(Default)]
    pub struct NoStore;
    #[checkpoint_store]
    impl NoStore {
        async fn append(&self, _workflow_id: &str, _row: CheckpointRow) -> Result<(), CanoError> {
            Ok(())
        }
        async fn load_run(&self, _workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
            Ok(Vec::new())
        }
        async fn clear(&self, _workflow_id: &str) -> Result<(), CanoError> {
            Ok(())
        }
    }

    pub fn workflow() -> Workflow<Flow> {
        Workflow::new(
            Resources::new()
                .insert("config", Config)
                .insert("alias", ViaAlias)
                .insert("plain", Plain)
                .insert("hooked", Hooked),
        )
        .register(Flow::Begin, Begin)
        .add_exit_state(Flow::End)
        .with_checkpoint_store(std::sync::Arc::new(NoStore))
        .with_workflow_id("prelude")
    }
}

#[tokio::test]
async fn a_program_written_against_the_prelude_runs() {
    use with_the_prelude::Flow;
    let wf = with_the_prelude::workflow();
    assert_eq!(wf.orchestrate(Flow::Begin).await, Ok(Flow::End));
    assert_eq!(
        cano::Task::run_bare(&with_the_prelude::TraitForm).await,
        Ok(cano::TaskResult::Single(Flow::End))
    );
}

mod fully_qualified {
    //! The macros also work by absolute path, without importing anything.

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum Flow {
        Only,
    }

    #[derive(cano::Resource)]
    pub struct Derived;

    pub struct Hooked;
    #[cano::resource]
    impl cano::Resource for Hooked {}

    pub struct Inherent;
    #[cano::task(state = Flow)]
    impl Inherent {
        async fn run_bare(&self) -> Result<cano::TaskResult<Flow>, cano::CanoError> {
            Ok(cano::TaskResult::Single(Flow::Only))
        }
    }

    pub struct TraitForm;
    #[cano::task]
    impl cano::Task<Flow> for TraitForm {
        async fn run_bare(&self) -> Result<cano::TaskResult<Flow>, cano::CanoError> {
            Ok(cano::TaskResult::Single(Flow::Only))
        }
    }
}

#[tokio::test]
async fn fully_qualified_macro_spellings_work() {
    use cano::Task;
    use fully_qualified::Flow;
    let res: cano::Resources = cano::Resources::new()
        .insert("d", fully_qualified::Derived)
        .insert("h", fully_qualified::Hooked);
    assert_eq!(
        fully_qualified::Inherent.run(&res).await,
        Ok(cano::TaskResult::Single(Flow::Only))
    );
    assert_eq!(
        fully_qualified::TraitForm.run(&res).await,
        Ok(cano::TaskResult::Single(Flow::Only))
    );
}

#[tokio::test]
async fn run_with_retries_and_store_types_are_reachable_by_module_path() {
    let out = cano::task::run_with_retries(&cano::TaskConfig::minimal(), || async {
        Ok::<_, cano::CanoError>(1u8)
    })
    .await;
    assert_eq!(out, Ok(1));
    let ok: cano::store::StoreResult<u8> = Ok(1);
    let err: cano::store::StoreResult<u8> = Err(cano::store::StoreError::generic("x"));
    assert!(ok.is_ok() && err.is_err());
    let row: cano::recovery::CheckpointRow = cano::recovery::CheckpointRow::new(0, "A", "t");
    assert_eq!(row.kind, cano::RowKind::StateEntry);
}

#[test]
fn the_circuit_permit_alias_is_the_circuit_modules_permit() {
    let breaker = Arc::new(cano::CircuitBreaker::new(cano::CircuitPolicy::default()));
    let permit: cano::CircuitPermit = breaker.try_acquire().unwrap();
    let same: cano::circuit::Permit = permit;
    breaker.record_success(same);
}

// ---------------------------------------------------------------------------------------
// Exhaustive matches: these enums are not #[non_exhaustive]
// ---------------------------------------------------------------------------------------

fn variant_name(e: &cano::CanoError) -> &'static str {
    use cano::CanoError as E;
    match e {
        E::TaskExecution(_) => "TaskExecution",
        E::Store(_) => "Store",
        E::Workflow(_) => "Workflow",
        E::Configuration(_) => "Configuration",
        E::RetryExhausted(_) => "RetryExhausted",
        E::Timeout(_) => "Timeout",
        E::CircuitOpen(_) => "CircuitOpen",
        E::CheckpointStore(_) => "CheckpointStore",
        E::CompensationFailed { errors: _ } => "CompensationFailed",
        E::Generic(_) => "Generic",
        E::ResourceNotFound(_) => "ResourceNotFound",
        E::ResourceTypeMismatch(_) => "ResourceTypeMismatch",
        E::ResourceDuplicateKey(_) => "ResourceDuplicateKey",
    }
}

#[test]
fn cano_error_has_exactly_thirteen_variants_in_order() {
    use cano::CanoError;
    let names: Vec<&str> = [
        CanoError::task_execution(""),
        CanoError::store(""),
        CanoError::workflow(""),
        CanoError::configuration(""),
        CanoError::retry_exhausted(""),
        CanoError::timeout(""),
        CanoError::circuit_open(""),
        CanoError::checkpoint_store(""),
        CanoError::compensation_failed(vec![]),
        CanoError::generic(""),
        CanoError::resource_not_found(""),
        CanoError::resource_type_mismatch(""),
        CanoError::resource_duplicate_key(""),
    ]
    .iter()
    .map(variant_name)
    .collect();
    assert_eq!(
        names,
        [
            "TaskExecution",
            "Store",
            "Workflow",
            "Configuration",
            "RetryExhausted",
            "Timeout",
            "CircuitOpen",
            "CheckpointStore",
            "CompensationFailed",
            "Generic",
            "ResourceNotFound",
            "ResourceTypeMismatch",
            "ResourceDuplicateKey",
        ]
    );
}

#[test]
fn other_public_enums_can_be_matched_exhaustively() {
    use cano::store::StoreError;
    use cano::{CircuitState, RetryMode, TaskResult};
    let store_kind = |e: &StoreError| match e {
        StoreError::KeyNotFound(_) => 0,
        StoreError::TypeMismatch(_) => 1,
        StoreError::LockError(_) => 2,
        StoreError::AppendTypeMismatch(_) => 3,
        StoreError::Generic(_) => 4,
    };
    assert_eq!(store_kind(&StoreError::lock_error("x")), 2);
    let retry_kind = |m: &RetryMode| match m {
        RetryMode::None => 0,
        RetryMode::Fixed { .. } => 1,
        RetryMode::ExponentialBackoff { .. } => 2,
    };
    assert_eq!(retry_kind(&RetryMode::default()), 2);
    let result_kind = |r: &TaskResult<u8>| match r {
        TaskResult::Single(_) => 0,
        TaskResult::Split(_) => 1,
    };
    assert_eq!(result_kind(&TaskResult::Split(vec![])), 1);
    let circuit_kind = |s: &CircuitState| match s {
        CircuitState::Closed => 0,
        CircuitState::Open { until: _ } => 1,
        CircuitState::HalfOpen => 2,
    };
    assert_eq!(circuit_kind(&CircuitState::HalfOpen), 2);
    // RowKind and HealthStatus are #[non_exhaustive]: a wildcard arm is required.
    let row_kind = |k: &cano::RowKind| match k {
        cano::RowKind::StateEntry => 0,
        cano::RowKind::CompensationCompletion => 1,
        cano::RowKind::StepCursor => 2,
        _ => 3,
    };
    assert_eq!(row_kind(&cano::RowKind::StepCursor), 2);
}

#[test]
fn task_config_has_five_public_fields_and_supports_struct_update() {
    let cfg = cano::TaskConfig {
        retry_mode: cano::RetryMode::None,
        ..Default::default()
    };
    let cano::TaskConfig {
        retry_mode,
        attempt_timeout,
        circuit_breaker,
        observers,
        task_name,
    } = cfg;
    assert_eq!(retry_mode.max_attempts(), 1);
    assert!(attempt_timeout.is_none() && circuit_breaker.is_none());
    assert!(observers.is_none() && task_name.is_none());
    let _: Option<Duration> = attempt_timeout;
    let _: Option<Cow<'static, str>> = task_name;
}

#[test]
fn circuit_policy_and_checkpoint_rows_are_built_from_public_fields() {
    let policy = cano::CircuitPolicy {
        failure_threshold: 3,
        reset_timeout: Duration::from_secs(1),
        half_open_max_calls: 2,
    };
    assert_eq!(policy.half_open_max_calls, 2);
    let row = cano::CheckpointRow {
        sequence: 1,
        state: "A".into(),
        task_id: "t".into(),
        output_blob: None,
        kind: cano::RowKind::default(),
    };
    assert_eq!(row, cano::CheckpointRow::new(1, "A", "t"));
}

// ---------------------------------------------------------------------------------------
// Auto traits, futures and object safety
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Flow {
    Begin,
    End,
}

struct Begin;

#[cano::task(state = Flow)]
impl Begin {
    fn config(&self) -> cano::TaskConfig {
        cano::TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<cano::TaskResult<Flow>, cano::CanoError> {
        tokio::task::yield_now().await;
        Ok(cano::TaskResult::Single(Flow::End))
    }
}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<cano::Workflow<Flow>>();
    assert_send_sync::<cano::Workflow<Flow, String>>();
    assert_send_sync::<cano::Resources>();
    assert_send_sync::<cano::MemoryStore>();
    assert_send_sync::<cano::CircuitBreaker>();
    assert_send_sync::<cano::CircuitPermit>();
    assert_send_sync::<cano::CanoError>();
    assert_send_sync::<cano::TaskConfig>();
    assert_send_sync::<cano::RetryMode>();
    assert_send_sync::<cano::CheckpointRow>();
    assert_send_sync::<cano::TaskObject<Flow>>();
    assert_send_sync::<Arc<dyn cano::CheckpointStore>>();
    assert_send_sync::<Arc<dyn cano::WorkflowObserver>>();
    assert_send_sync::<Arc<dyn cano::Resource>>();
}

#[test]
fn workflow_futures_are_send() {
    let store = TestStore::new();
    let wf = cano::Workflow::bare()
        .register(Flow::Begin, Begin)
        .add_exit_state(Flow::End)
        .with_checkpoint_store(store);
    drop(assert_send(wf.orchestrate(Flow::Begin)));
    drop(assert_send(wf.resume_from("id")));
}

/// `orchestrate` is a plain `fn` returning the run's future (COMPATIBILITY.md); like the
/// `async fn` of 0.12.0 it does nothing until that future is polled, and reports even a
/// workflow that does not validate through the future.
#[tokio::test]
async fn orchestrate_does_nothing_until_its_future_is_polled() {
    let recorder = support::Recorder::new();
    let wf = cano::Workflow::bare()
        .register(Flow::Begin, Begin)
        .add_exit_state(Flow::End)
        .with_observer(recorder.clone());
    drop(wf.orchestrate(Flow::Begin));
    assert!(recorder.events().is_empty(), "{:?}", recorder.events());
    assert_eq!(wf.orchestrate(Flow::Begin).await, Ok(Flow::End));
    assert!(recorder.events().contains(&"enter:Begin".to_string()));

    let no_exit = cano::Workflow::bare().register(Flow::Begin, Begin);
    let run = no_exit.orchestrate(Flow::Begin);
    assert!(matches!(run.await, Err(cano::CanoError::Configuration(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrate_and_resume_from_can_be_spawned_on_a_multi_thread_runtime() {
    let store = TestStore::new();
    store.seed("resumed", &[(0, "Begin", "")]);
    let wf = Arc::new(
        cano::Workflow::bare()
            .register(Flow::Begin, Begin)
            .add_exit_state(Flow::End)
            .with_checkpoint_store(store.clone())
            .with_workflow_id("spawned"),
    );
    let run = tokio::spawn({
        let wf = Arc::clone(&wf);
        async move { wf.orchestrate(Flow::Begin).await }
    });
    let resume = tokio::spawn({
        let wf = Arc::clone(&wf);
        async move { wf.resume_from("resumed").await }
    });
    assert_eq!(run.await.unwrap(), Ok(Flow::End));
    assert_eq!(resume.await.unwrap(), Ok(Flow::End));
}

#[tokio::test]
async fn the_core_traits_are_object_safe() {
    use cano::{CheckpointStore, Resource, Task};

    let store: Arc<dyn CheckpointStore> = TestStore::new();
    store
        .append("wf", cano::CheckpointRow::new(0, "A", ""))
        .await
        .unwrap();
    assert_eq!(store.load_run("wf").await.unwrap().len(), 1);

    let task: Box<dyn Task<Flow> + Send + Sync> = Box::new(Begin);
    let res: cano::Resources = cano::Resources::new();
    assert_eq!(
        task.run(&res).await,
        Ok(cano::TaskResult::Single(Flow::End))
    );
    let by_ref: &cano::DynTask<Flow> = &Begin;
    assert_eq!(
        by_ref.run_bare().await,
        Ok(cano::TaskResult::Single(Flow::End))
    );

    let resource: Box<dyn Resource> = Box::new(cano::MemoryStore::new());
    assert_eq!(resource.setup().await, Ok(()));
    assert_eq!(resource.health().await, cano::HealthStatus::Healthy);

    let observer: Arc<dyn cano::WorkflowObserver> = support::Recorder::new();
    observer.on_state_enter("A");
}

#[test]
fn resources_key_type_is_inferred_from_context() {
    fn takes(res: cano::Resources) -> usize {
        format!("{res:?}").len()
    }
    // As a function argument, from a Workflow::new whose tasks use the default key, and
    // from an explicit annotation.
    assert!(takes(cano::Resources::new()) > 0);
    let _wf = cano::Workflow::new(cano::Resources::new())
        .register(Flow::Begin, Begin)
        .add_exit_state(Flow::End);
    let keyed = cano::Resources::<u8>::new().insert(1u8, cano::MemoryStore::new());
    assert!(keyed.get::<cano::MemoryStore, _>(&1u8).is_ok());
}

#[test]
fn workflows_are_cloneable_and_debuggable() {
    let wf = cano::Workflow::bare()
        .register(Flow::Begin, Begin)
        .add_exit_state(Flow::End);
    let clone = wf.clone();
    assert_eq!(format!("{wf:?}"), format!("{clone:?}"));
}
