//! Running workflows with plain tasks: building, validation, the state-machine loop,
//! retries, timeouts, panics, cancellation and the resource lifecycle around each run
//! (split states and the processing models are in `workflow_split.rs` and
//! `workflow_models.rs`).

mod support;

use cano::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::{Log, Probe, Recorder};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Start,
    Process,
    Done,
    B,
    C,
}

/// What a [`Step`] does when it runs.
#[derive(Clone)]
enum Act {
    Next(S),
    Fail(&'static str),
    Panic(&'static str),
    PanicWithNumber,
    SleepThen(Duration, S),
    Split,
}

/// A configurable task: counts its calls, then acts.
struct Step {
    act: Act,
    calls: Arc<AtomicUsize>,
    config: TaskConfig,
}

impl Step {
    fn to(next: S) -> Self {
        Self::acting(Act::Next(next))
    }

    fn acting(act: Act) -> Self {
        Self {
            act,
            calls: Arc::default(),
            config: TaskConfig::minimal(),
        }
    }

    fn counted(mut self, calls: &Arc<AtomicUsize>) -> Self {
        self.calls = Arc::clone(calls);
        self
    }

    fn with_config(mut self, config: TaskConfig) -> Self {
        self.config = config;
        self
    }
}

#[task(state = S)]
impl Step {
    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.act {
            Act::Next(s) => Ok(TaskResult::Single(s.clone())),
            Act::Fail(msg) => Err(CanoError::task_execution(*msg)),
            Act::Panic(msg) => panic!("{msg}"),
            Act::PanicWithNumber => std::panic::panic_any(42u32),
            Act::SleepThen(d, s) => {
                tokio::time::sleep(*d).await;
                Ok(TaskResult::Single(s.clone()))
            }
            Act::Split => Ok(TaskResult::Split(vec![S::Done, S::C])),
        }
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn calls(c: &Arc<AtomicUsize>) -> usize {
    c.load(Ordering::SeqCst)
}

fn probe_resources(log: &Log) -> Resources {
    Resources::new().insert("probe", Probe::new("R", log))
}

fn breaker(failure_threshold: u32) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(CircuitPolicy {
        failure_threshold,
        reset_timeout: Duration::from_secs(3600),
        half_open_max_calls: 1,
    }))
}

// ---------------------------------------------------------------------------------------
// Building and running
// ---------------------------------------------------------------------------------------

#[test]
fn a_bare_workflow_has_no_states_and_no_exits() {
    let wf = Workflow::<S>::bare();
    assert_eq!(
        format!("{wf:?}"),
        "Workflow { states: \"0 states\", exit_states: [], workflow_timeout: None, workflow_id: None, checkpoint_store: false, compensators: \"0 compensators\" }"
    );
    assert_eq!(
        wf.validate(),
        Err(CanoError::configuration(
            "Workflow has no registered state handlers"
        ))
    );
}

#[tokio::test]
async fn a_single_step_run_returns_the_exit_state() {
    let ran = counter();
    let wf = Workflow::bare()
        .register(S::Start, Step::to(S::Done).counted(&ran))
        .add_exit_state(S::Done);
    assert_eq!(wf.validate(), Ok(()));
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    assert_eq!(calls(&ran), 1);
}

struct Produce;

#[task(state = S)]
impl Produce {
    async fn run(&self, res: &Resources) -> Result<TaskResult<S>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        store.put("numbers", vec![1u32, 2, 3])?;
        Ok(TaskResult::Single(S::Process))
    }
}

struct Sum;

#[task(state = S)]
impl Sum {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<S>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        let total: u32 = store.get::<Vec<u32>>("numbers")?.iter().sum();
        store.put("total", total)?;
        Ok(TaskResult::Single(S::Done))
    }
}

#[tokio::test]
async fn a_multi_step_run_shares_data_through_a_memory_store_resource() {
    let store = MemoryStore::new();
    let wf = Workflow::new(Resources::new().insert("store", store.clone()))
        .register(S::Start, Produce)
        .register(S::Process, Sum)
        .add_exit_state(S::Done);
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    assert_eq!(
        store.get::<u32>("total").unwrap(),
        6,
        "visible via the caller's clone"
    );
}

#[tokio::test]
async fn cycles_between_states_are_allowed() {
    struct Loop {
        left: AtomicUsize,
    }
    #[task(state = S)]
    impl Loop {
        fn config(&self) -> TaskConfig {
            TaskConfig::minimal()
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            if self.left.fetch_sub(1, Ordering::SeqCst) > 1 {
                Ok(TaskResult::Single(S::Start))
            } else {
                Ok(TaskResult::Single(S::Done))
            }
        }
    }
    let rec = Recorder::new();
    let wf = Workflow::bare()
        .register(
            S::Start,
            Loop {
                left: AtomicUsize::new(5),
            },
        )
        .add_exit_state(S::Done)
        .with_observer(rec.clone());
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    assert_eq!(rec.events_with("enter:Start").len(), 5);
}

#[tokio::test]
async fn re_registering_a_state_replaces_its_task() {
    let first = counter();
    let second = counter();
    let wf = Workflow::bare()
        .register(S::Start, Step::to(S::Done).counted(&first))
        .register(S::Start, Step::to(S::Done).counted(&second))
        .add_exit_state(S::Done);
    assert!(format!("{wf:?}").contains("states: \"1 states\""), "{wf:?}");
    wf.orchestrate(S::Start).await.unwrap();
    assert_eq!((calls(&first), calls(&second)), (0, 1));
}

#[tokio::test]
async fn the_engine_calls_run_not_run_bare() {
    struct Both {
        run: Arc<AtomicUsize>,
        bare: Arc<AtomicUsize>,
    }
    #[task]
    impl Task<S> for Both {
        fn config(&self) -> TaskConfig {
            TaskConfig::minimal()
        }
        async fn run(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
            self.run.fetch_add(1, Ordering::SeqCst);
            Ok(TaskResult::Single(S::Done))
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            self.bare.fetch_add(1, Ordering::SeqCst);
            Ok(TaskResult::Single(S::Done))
        }
    }
    let (run, bare) = (counter(), counter());
    let wf = Workflow::bare()
        .register(
            S::Start,
            Both {
                run: run.clone(),
                bare: bare.clone(),
            },
        )
        .add_exit_state(S::Done);
    wf.orchestrate(S::Start).await.unwrap();
    assert_eq!((calls(&run), calls(&bare)), (1, 0));
}

#[tokio::test]
async fn config_is_read_once_at_registration() {
    struct Configured {
        reads: Arc<AtomicUsize>,
    }
    #[task(state = S)]
    impl Configured {
        fn config(&self) -> TaskConfig {
            self.reads.fetch_add(1, Ordering::SeqCst);
            TaskConfig::minimal()
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            Ok(TaskResult::Single(S::Done))
        }
    }
    let reads = counter();
    let wf = Workflow::bare()
        .register(
            S::Start,
            Configured {
                reads: reads.clone(),
            },
        )
        .add_exit_state(S::Done);
    assert_eq!(calls(&reads), 1);
    for _ in 0..3 {
        wf.orchestrate(S::Start).await.unwrap();
    }
    assert_eq!(calls(&reads), 1, "not read again per run or per dispatch");
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Store,
}

struct Keyed;

#[task(state = S, key = Key)]
impl Keyed {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run(&self, res: &Resources<Key>) -> Result<TaskResult<S>, CanoError> {
        res.get::<MemoryStore, _>(&Key::Store)?.put("seen", true)?;
        Ok(TaskResult::Single(S::Done))
    }
}

#[tokio::test]
async fn workflows_work_with_a_custom_resource_key_type() {
    let store = MemoryStore::new();
    let wf: Workflow<S, Key> = Workflow::new(Resources::new().insert(Key::Store, store.clone()))
        .register(S::Start, Keyed)
        .add_exit_state(S::Done);
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    assert!(store.get::<bool>("seen").unwrap());
}

#[tokio::test]
async fn states_may_carry_data() {
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum Page {
        Fetch(u32),
        Done,
    }
    struct Fetch(u32);
    #[task(state = Page)]
    impl Fetch {
        fn config(&self) -> TaskConfig {
            TaskConfig::minimal()
        }
        async fn run_bare(&self) -> Result<TaskResult<Page>, CanoError> {
            Ok(TaskResult::Single(if self.0 < 2 {
                Page::Fetch(self.0 + 1)
            } else {
                Page::Done
            }))
        }
    }
    let rec = Recorder::new();
    let wf = Workflow::bare()
        .register(Page::Fetch(0), Fetch(0))
        .register(Page::Fetch(1), Fetch(1))
        .register(Page::Fetch(2), Fetch(2))
        .add_exit_state(Page::Done)
        .with_observer(rec.clone());
    assert_eq!(wf.orchestrate(Page::Fetch(0)).await, Ok(Page::Done));
    assert_eq!(
        rec.events_with("enter:"),
        [
            "enter:Fetch(0)",
            "enter:Fetch(1)",
            "enter:Fetch(2)",
            "enter:Done"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_handlers_fails_before_any_resource_setup() {
    let log = Log::new();
    let wf = Workflow::<S>::new(probe_resources(&log)).add_exit_state(S::Done);
    let err = wf.orchestrate(S::Done).await.unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert!(
        err.to_string().contains("no registered state handlers"),
        "{err}"
    );
    assert!(log.entries().is_empty(), "no setup: {:?}", log.entries());
}

#[tokio::test]
async fn no_exit_states_fails_before_any_resource_setup() {
    let log = Log::new();
    let wf = Workflow::new(probe_resources(&log)).register(S::Start, Step::to(S::Done));
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(
        err,
        CanoError::configuration(
            "Workflow has no exit states defined \u{2014} orchestration may loop forever"
        )
    );
    assert!(err.to_string().contains("no exit states"));
    assert!(log.entries().is_empty());
}

#[test]
fn validate_initial_state_accepts_registered_and_exit_states_only() {
    let wf = Workflow::bare()
        .register(S::Start, Step::to(S::Done))
        .add_exit_state(S::Done);
    assert_eq!(wf.validate_initial_state(&S::Start), Ok(()));
    assert_eq!(wf.validate_initial_state(&S::Done), Ok(()));
    let err = wf.validate_initial_state(&S::B).unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert_eq!(
        err.to_string(),
        "Configuration error: Initial state B is neither registered nor an exit state"
    );
}

#[tokio::test]
async fn an_unknown_initial_state_fails_before_setup_and_before_any_event() {
    let log = Log::new();
    let rec = Recorder::new();
    let wf = Workflow::new(probe_resources(&log))
        .register(S::Start, Step::to(S::Done))
        .add_exit_state(S::Done)
        .with_observer(rec.clone());
    let err = wf.orchestrate(S::C).await.unwrap_err();
    assert!(
        err.message()
            .contains("neither registered nor an exit state"),
        "{err}"
    );
    assert!(log.entries().is_empty());
    assert!(rec.events().is_empty());
}

#[tokio::test]
async fn a_workflow_that_fails_validation_keeps_failing_the_same_way() {
    let log = Log::new();
    let wf = Workflow::new(probe_resources(&log)).register(S::Start, Step::to(S::Done));
    let first = wf.orchestrate(S::Start).await.unwrap_err();
    let second = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(first, second);
    assert_eq!(first.category(), "configuration");
    let from_clone = wf.clone().orchestrate(S::Start).await.unwrap_err();
    assert_eq!(
        from_clone, first,
        "a clone re-validates and finds the same problem"
    );
    assert!(log.entries().is_empty());
}

struct PointerOf(Arc<Log>);

#[task(state = S)]
impl PointerOf {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run(&self, res: &Resources) -> Result<TaskResult<S>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        self.0.push(format!("{:p}", Arc::as_ptr(&store)));
        Ok(TaskResult::Single(S::Done))
    }
}

#[tokio::test]
async fn a_clone_validates_on_its_own_and_shares_the_resources() {
    let seen = Arc::new(Log::new());
    let wf = Workflow::new(Resources::new().insert("store", MemoryStore::new()))
        .register(S::Start, PointerOf(seen.clone()))
        .add_exit_state(S::Done);
    let clone = wf.clone();
    assert_eq!(clone.orchestrate(S::Start).await, Ok(S::Done));
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    let ptrs = seen.entries();
    assert_eq!(ptrs.len(), 2);
    assert_eq!(ptrs[0], ptrs[1], "both runs saw the same resource instance");
}

// ---------------------------------------------------------------------------------------
// The loop: exit states, unknown states, split misuse
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_exit_state_wins_over_a_registered_handler() {
    let exit_handler = counter();
    let wf = Workflow::bare()
        .register(S::Start, Step::to(S::Done))
        .register(S::Done, Step::to(S::Start).counted(&exit_handler))
        .add_exit_state(S::Done);
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    assert_eq!(wf.orchestrate(S::Done).await, Ok(S::Done));
    assert_eq!(
        calls(&exit_handler),
        0,
        "the exit state's handler never runs"
    );
}

#[tokio::test]
async fn starting_at_an_exit_state_returns_it_but_still_sets_up_and_tears_down() {
    let log = Log::new();
    let ran = counter();
    let rec = Recorder::new();
    let wf = Workflow::new(probe_resources(&log))
        .register(S::Start, Step::to(S::Done).counted(&ran))
        .add_exit_state(S::Done)
        .with_observer(rec.clone());
    assert_eq!(wf.orchestrate(S::Done).await, Ok(S::Done));
    assert_eq!(calls(&ran), 0);
    assert_eq!(log.entries(), ["setup:R", "teardown:R"]);
    assert_eq!(rec.events(), ["enter:Done"]);
}

#[tokio::test]
async fn moving_to_an_unknown_state_fails_after_entering_it() {
    let log = Log::new();
    let rec = Recorder::new();
    let wf = Workflow::new(probe_resources(&log))
        .register(S::Start, Step::to(S::B))
        .add_exit_state(S::Done)
        .with_observer(rec.clone());
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err, CanoError::workflow("No task registered for state: B"));
    assert_eq!(rec.events().last().map(String::as_str), Some("enter:B"));
    assert_eq!(log.entries(), ["setup:R", "teardown:R"]);
}

#[tokio::test]
async fn a_single_task_returning_split_is_an_error() {
    let wf = Workflow::bare()
        .register(S::Start, Step::acting(Act::Split))
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err.category(), "workflow");
    assert!(err.message().contains("register_split"), "{err}");
    assert_eq!(
        err,
        CanoError::workflow(
            "Single task returned split result - use register_split() for split tasks"
        )
    );
}

// ---------------------------------------------------------------------------------------
// Retries inside a workflow
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_failing_task_with_two_retries_runs_exactly_three_times() {
    let ran = counter();
    let wf = Workflow::bare()
        .register(
            S::Start,
            Step::acting(Act::Fail("nope"))
                .counted(&ran)
                .with_config(TaskConfig::new().with_fixed_retry(2, Duration::from_millis(10))),
        )
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(calls(&ran), 3, "no retry on top of the task's own retries");
    assert_eq!(
        err.to_string(),
        "Retry exhausted: Task failed after 3 attempt(s): Task execution error: nope"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_task_with_a_single_attempt_returns_its_raw_error() {
    let ran = counter();
    let wf = Workflow::bare()
        .register(S::Start, Step::acting(Act::Fail("nope")).counted(&ran))
        .add_exit_state(S::Done);
    assert_eq!(
        wf.orchestrate(S::Start).await,
        Err(CanoError::task_execution("nope"))
    );
    assert_eq!(calls(&ran), 1);
}

#[tokio::test(start_paused = true)]
async fn a_flaky_task_succeeds_within_its_retries() {
    struct Flaky(AtomicUsize);
    #[task(state = S)]
    impl Flaky {
        fn config(&self) -> TaskConfig {
            TaskConfig::new().with_fixed_retry(4, Duration::from_millis(5))
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(CanoError::task_execution("not yet"))
            } else {
                Ok(TaskResult::Single(S::Done))
            }
        }
    }
    let wf = Workflow::bare()
        .register(S::Start, Flaky(AtomicUsize::new(0)))
        .add_exit_state(S::Done);
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
}

#[tokio::test(start_paused = true)]
async fn zero_retry_delays_in_a_workflow_do_not_wait_for_a_timer() {
    // Between two millisecond ticks, any timer would have to move the paused clock.
    tokio::time::advance(Duration::from_micros(500)).await;
    let before = Instant::now();
    let ran = counter();
    let wf = Workflow::bare()
        .register(
            S::Start,
            Step::acting(Act::Fail("again"))
                .counted(&ran)
                .with_config(TaskConfig::new().with_fixed_retry(3, Duration::ZERO)),
        )
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err.category(), "retry_exhausted");
    assert_eq!(calls(&ran), 4);
    assert_eq!(Instant::now(), before, "the paused clock did not move");
}

struct Neither;

impl Task<S> for Neither {}

#[tokio::test(start_paused = true)]
async fn a_task_implementing_neither_run_nor_run_bare_fails_wrapped_after_the_default_retries() {
    let wf = Workflow::bare()
        .register(S::Start, Neither)
        .add_exit_state(S::Done);
    let start = Instant::now();
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.category(), "retry_exhausted");
    assert!(
        text.starts_with(
            "Retry exhausted: Task failed after 4 attempt(s): Configuration error: Task<"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "Neither>: neither `run` nor `run_bare` was implemented; override one of them"
        ),
        "{text}"
    );
    // Default backoff: ~100 + 200 + 400 ms, each ±10 %.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(630) && waited <= Duration::from_millis(775),
        "{waited:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_panicking_task_fails_with_its_payload_and_is_not_retried() {
    let log = Log::new();
    let ran = counter();
    let wf = Workflow::new(probe_resources(&log))
        .register(
            S::Start,
            Step::acting(Act::Panic("kaboom"))
                .counted(&ran)
                .with_config(TaskConfig::new().with_fixed_retry(3, Duration::from_millis(1))),
        )
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err, CanoError::task_execution("panic: kaboom"));
    assert_eq!(calls(&ran), 1, "a panic ends the retry loop");
    assert_eq!(
        log.entries(),
        ["setup:R", "teardown:R"],
        "teardown still runs"
    );
}

#[tokio::test]
async fn a_static_str_panic_payload_is_reported() {
    struct StaticPanic;
    #[task(state = S)]
    impl StaticPanic {
        fn config(&self) -> TaskConfig {
            TaskConfig::minimal()
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            std::panic::panic_any("static payload")
        }
    }
    let wf = Workflow::bare()
        .register(S::Start, StaticPanic)
        .add_exit_state(S::Done);
    assert_eq!(
        wf.orchestrate(S::Start).await,
        Err(CanoError::task_execution("panic: static payload"))
    );
}

#[tokio::test]
async fn a_non_string_panic_payload_is_reported_generically() {
    let wf = Workflow::bare()
        .register(S::Start, Step::acting(Act::PanicWithNumber))
        .add_exit_state(S::Done);
    assert_eq!(
        wf.orchestrate(S::Start).await,
        Err(CanoError::task_execution(
            "panic: <non-string panic payload>"
        ))
    );
}

#[tokio::test]
async fn a_panic_counts_as_a_circuit_breaker_failure() {
    let b = breaker(1);
    let wf = Workflow::bare()
        .register(
            S::Start,
            Step::acting(Act::Panic("bang"))
                .with_config(TaskConfig::minimal().with_circuit_breaker(b.clone())),
        )
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err.category(), "task_execution");
    assert!(matches!(b.state(), CircuitState::Open { .. }));
    assert_eq!(
        wf.orchestrate(S::Start).await.unwrap_err().category(),
        "circuit_open"
    );
}

#[tokio::test]
async fn the_workflow_stays_usable_after_a_panic() {
    let panics = Arc::new(AtomicBool::new(true));
    struct Sometimes(Arc<AtomicBool>);
    #[task(state = S)]
    impl Sometimes {
        fn config(&self) -> TaskConfig {
            TaskConfig::minimal()
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            if self.0.swap(false, Ordering::SeqCst) {
                panic!("first run only");
            }
            Ok(TaskResult::Single(S::Done))
        }
    }
    let wf = Workflow::bare()
        .register(S::Start, Sometimes(panics))
        .add_exit_state(S::Done);
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
}

// ---------------------------------------------------------------------------------------
// Timeouts and cancellation
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_with_retries_ends_in_retry_exhausted() {
    let ran = counter();
    let wf = Workflow::bare()
        .register(
            S::Start,
            Step::acting(Act::SleepThen(Duration::from_millis(200), S::Done))
                .counted(&ran)
                .with_config(
                    TaskConfig::new()
                        .with_fixed_retry(2, Duration::from_millis(1))
                        .with_attempt_timeout(Duration::from_millis(20)),
                ),
        )
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(calls(&ran), 3);
    assert_eq!(
        err,
        CanoError::retry_exhausted(
            "Task failed after 3 attempt(s): Timeout error: task attempt exceeded attempt_timeout"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_without_retries_is_a_timeout_error() {
    let wf = Workflow::bare()
        .register(
            S::Start,
            Step::acting(Act::SleepThen(Duration::from_millis(200), S::Done))
                .with_config(TaskConfig::minimal().with_attempt_timeout(Duration::from_millis(20))),
        )
        .add_exit_state(S::Done);
    assert_eq!(
        wf.orchestrate(S::Start).await,
        Err(CanoError::timeout("task attempt exceeded attempt_timeout"))
    );
}

#[tokio::test(start_paused = true)]
async fn the_workflow_timeout_fails_the_run_and_teardown_still_runs() {
    let log = Log::new();
    let wf = Workflow::new(probe_resources(&log))
        .register(
            S::Start,
            Step::acting(Act::SleepThen(Duration::from_millis(200), S::Done)),
        )
        .add_exit_state(S::Done)
        .with_timeout(Duration::from_millis(50));
    let start = Instant::now();
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err, CanoError::workflow("Workflow timeout exceeded"));
    assert_eq!(err.to_string(), "Workflow error: Workflow timeout exceeded");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_millis(60),
        "{waited:?}"
    );
    assert_eq!(log.entries(), ["setup:R", "teardown:R"]);
}

#[tokio::test(start_paused = true)]
async fn the_workflow_timeout_spans_all_states_of_a_run() {
    let wf = Workflow::bare()
        .register(
            S::Start,
            Step::acting(Act::SleepThen(Duration::from_millis(30), S::Process)),
        )
        .register(
            S::Process,
            Step::acting(Act::SleepThen(Duration::from_millis(30), S::Done)),
        )
        .add_exit_state(S::Done)
        .with_timeout(Duration::from_millis(50));
    assert_eq!(
        wf.orchestrate(S::Start).await,
        Err(CanoError::workflow("Workflow timeout exceeded"))
    );
}

struct SlowSetup;

#[resource]
impl Resource for SlowSetup {
    async fn setup(&self) -> Result<(), CanoError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_workflow_timeout_does_not_cover_resource_setup() {
    let wf = Workflow::new(Resources::new().insert("slow", SlowSetup))
        .register(
            S::Start,
            Step::acting(Act::SleepThen(Duration::from_millis(10), S::Done)),
        )
        .add_exit_state(S::Done)
        .with_timeout(Duration::from_millis(50));
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
}

struct Guard(Arc<AtomicBool>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Hang {
    dropped: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}

#[task(state = S)]
impl Hang {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        let _guard = Guard(self.dropped.clone());
        tokio::time::sleep(Duration::from_secs(3600)).await;
        self.finished.store(true, Ordering::SeqCst);
        Ok(TaskResult::Single(S::Done))
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_orchestrate_future_cancels_the_running_task() {
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let wf = Workflow::bare()
        .register(
            S::Start,
            Hang {
                dropped: dropped.clone(),
                finished: finished.clone(),
            },
        )
        .add_exit_state(S::Done);
    let outcome = tokio::time::timeout(Duration::from_millis(10), wf.orchestrate(S::Start)).await;
    assert!(outcome.is_err(), "the caller gave up");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the task's future was dropped"
    );
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert!(!finished.load(Ordering::SeqCst), "and never resumed");
}

#[tokio::test(start_paused = true)]
async fn a_select_that_picks_another_branch_cancels_the_run() {
    let dropped = Arc::new(AtomicBool::new(false));
    let wf = Workflow::bare()
        .register(
            S::Start,
            Hang {
                dropped: dropped.clone(),
                finished: Arc::default(),
            },
        )
        .add_exit_state(S::Done);
    tokio::select! {
        _ = wf.orchestrate(S::Start) => panic!("the run hangs for an hour"),
        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
    }
    assert!(dropped.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------
// Resource lifecycle around runs
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_setup_failure_rolls_back_earlier_resources_and_runs_nothing() {
    let log = Log::new();
    let rec = Recorder::new();
    let ran = counter();
    let wf = Workflow::new(
        Resources::new()
            .insert("r0", Probe::new("R0", &log))
            .insert("r1", Probe::new("R1", &log))
            .insert("r2", Probe::new("R2", &log).failing_setup())
            .insert("r3", Probe::new("R3", &log)),
    )
    .register(S::Start, Step::to(S::Done).counted(&ran))
    .add_exit_state(S::Done)
    .with_observer(rec.clone());
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err, CanoError::generic("setup of R2 failed"));
    assert_eq!(
        log.entries(),
        [
            "setup:R0",
            "setup:R1",
            "setup:R2",
            "teardown:R1",
            "teardown:R0"
        ]
    );
    assert!(
        rec.events().is_empty(),
        "no observer event: {:?}",
        rec.events()
    );
    assert_eq!(calls(&ran), 0);
}

#[tokio::test]
async fn resources_are_set_up_before_and_torn_down_after_every_run() {
    let log = Log::new();
    let wf = Workflow::new(
        Resources::new()
            .insert("a", Probe::new("A", &log))
            .insert("b", Probe::new("B", &log)),
    )
    .register(S::Start, Step::to(S::Done))
    .add_exit_state(S::Done);
    wf.orchestrate(S::Start).await.unwrap();
    wf.orchestrate(S::Start).await.unwrap();
    let one_run = ["setup:A", "setup:B", "teardown:B", "teardown:A"];
    assert_eq!(log.entries(), [one_run, one_run].concat());
}

#[tokio::test]
async fn teardown_runs_after_a_failed_run_too() {
    let log = Log::new();
    let wf = Workflow::new(probe_resources(&log))
        .register(S::Start, Step::acting(Act::Fail("bad")))
        .add_exit_state(S::Done);
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert_eq!(log.entries(), ["setup:R", "teardown:R"]);
}

#[tokio::test]
async fn a_failing_teardown_does_not_change_the_result() {
    let log = Log::new();
    let wf = Workflow::new(
        Resources::new()
            .insert("a", Probe::new("A", &log))
            .insert("b", Probe::new("B", &log).failing_teardown()),
    )
    .register(S::Start, Step::to(S::Done))
    .add_exit_state(S::Done);
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    assert_eq!(
        log.entries(),
        ["setup:A", "setup:B", "teardown:B", "teardown:A"]
    );
}

#[tokio::test]
async fn resources_are_set_up_before_the_first_state_is_entered() {
    struct Order(Log);
    impl WorkflowObserver for Order {
        fn on_state_enter(&self, state: &str) {
            self.0.push(format!("enter:{state}"));
        }
    }
    let log = Log::new();
    let wf = Workflow::new(probe_resources(&log))
        .register(S::Start, Step::to(S::Done))
        .add_exit_state(S::Done)
        .with_observer(Arc::new(Order(log.clone())));
    wf.orchestrate(S::Start).await.unwrap();
    assert_eq!(
        log.entries(),
        ["setup:R", "enter:Start", "enter:Done", "teardown:R"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_of_one_workflow_are_independent() {
    let log = Log::new();
    let ran = counter();
    let wf = Arc::new(
        Workflow::new(probe_resources(&log))
            .register(
                S::Start,
                Step::acting(Act::SleepThen(Duration::from_millis(2), S::Process)).counted(&ran),
            )
            .register(S::Process, Step::to(S::Done))
            .add_exit_state(S::Done),
    );
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let wf = if i % 2 == 0 {
                Arc::clone(&wf)
            } else {
                Arc::new((*wf).clone())
            };
            tokio::spawn(async move { wf.orchestrate(S::Start).await })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), Ok(S::Done));
    }
    assert_eq!(calls(&ran), 8);
    assert_eq!(log.count("setup:R"), 8);
    assert_eq!(log.count("teardown:R"), 8);
}

// ---------------------------------------------------------------------------------------
// Debug
// ---------------------------------------------------------------------------------------

#[test]
fn debug_shows_the_shape_of_the_workflow() {
    let wf = Workflow::bare()
        .register(S::Start, Step::to(S::Process))
        .register(S::Process, Step::to(S::Done))
        .add_exit_state(S::Done)
        .add_exit_states(vec![S::Done, S::C])
        .with_timeout(Duration::from_secs(1));
    assert_eq!(
        format!("{wf:?}"),
        "Workflow { states: \"2 states\", exit_states: [Done, C], workflow_timeout: Some(1s), workflow_id: None, checkpoint_store: false, compensators: \"0 compensators\" }"
    );
}

#[test]
fn debug_shows_the_workflow_id_and_whether_a_store_is_attached() {
    let wf = Workflow::bare()
        .register(S::Start, Step::to(S::Done))
        .add_exit_state(S::Done)
        .with_checkpoint_store(support::TestStore::new())
        .with_workflow_id("first")
        .with_workflow_id("run-1");
    assert_eq!(
        format!("{wf:?}"),
        "Workflow { states: \"1 states\", exit_states: [Done], workflow_timeout: None, workflow_id: Some(\"run-1\"), checkpoint_store: true, compensators: \"0 compensators\" }"
    );
}
