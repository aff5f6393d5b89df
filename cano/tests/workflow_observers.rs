//! Observer callbacks fired by workflow runs.
//! Checkpoint and resume events are covered in `workflow_checkpoint.rs`.

mod support;

use cano::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{Log, Recorder};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Start,
    Next,
    Done,
    Elsewhere,
}

#[derive(Clone)]
enum Act {
    Go(S),
    Fail,
    Panic,
    Split,
    Sleep,
}

/// A task named `name` that acts as told, under `config`.
struct X {
    name: &'static str,
    act: Act,
    config: TaskConfig,
}

fn x(act: Act) -> X {
    X {
        name: "X",
        act,
        config: TaskConfig::minimal(),
    }
}

impl X {
    fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    fn with_config(mut self, config: TaskConfig) -> Self {
        self.config = config;
        self
    }
}

#[task(state = S)]
impl X {
    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        match &self.act {
            Act::Go(s) => Ok(TaskResult::Single(s.clone())),
            Act::Fail => Err(CanoError::task_execution("x failed")),
            Act::Panic => panic!("x panicked"),
            Act::Split => Ok(TaskResult::Split(vec![S::Done])),
            Act::Sleep => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(TaskResult::Single(S::Done))
            }
        }
    }
}

fn observed(task: X, rec: &Arc<Recorder>) -> Workflow<S> {
    Workflow::bare()
        .register(S::Start, task)
        .add_exit_state(S::Done)
        .with_observer(rec.clone())
}

fn tripped_breaker() -> Arc<CircuitBreaker> {
    let b = Arc::new(CircuitBreaker::new(CircuitPolicy {
        failure_threshold: 1,
        reset_timeout: Duration::from_secs(3600),
        half_open_max_calls: 1,
    }));
    drop(b.try_acquire().unwrap());
    b
}

#[tokio::test]
async fn a_successful_run_reports_enter_start_success_enter_in_order() {
    let rec = Recorder::new();
    let wf = observed(x(Act::Go(S::Done)), &rec);
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    assert_eq!(
        rec.events(),
        ["enter:Start", "start:X", "success:X", "enter:Done"]
    );
    assert!(rec.position("enter:Start") < rec.position("start:X"));
    assert!(rec.position("start:X") < rec.position("success:X"));
    assert!(rec.position("success:X") < rec.position("enter:Done"));
}

#[tokio::test]
async fn every_state_of_a_multi_step_run_is_reported() {
    let rec = Recorder::new();
    let wf = Workflow::bare()
        .register(S::Start, x(Act::Go(S::Next)).named("first"))
        .register(S::Next, x(Act::Go(S::Done)).named("second"))
        .add_exit_state(S::Done)
        .with_observer(rec.clone());
    wf.orchestrate(S::Start).await.unwrap();
    assert_eq!(
        rec.events(),
        [
            "enter:Start",
            "start:first",
            "success:first",
            "enter:Next",
            "start:second",
            "success:second",
            "enter:Done"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn retries_then_failure_are_reported_without_a_success() {
    let rec = Recorder::new();
    let wf = observed(
        x(Act::Fail).with_config(TaskConfig::new().with_fixed_retry(2, Duration::from_millis(5))),
        &rec,
    );
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(
        rec.events(),
        [
            "enter:Start",
            "start:X",
            "retry:X:1",
            "retry:X:2",
            "failure:X"
        ]
    );
    assert_eq!(
        rec.failures(),
        [err],
        "the failure event carries the run's error"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_reports_the_retry_and_the_success() {
    struct OnceFlaky(AtomicUsize);
    #[task(state = S)]
    impl OnceFlaky {
        fn config(&self) -> TaskConfig {
            TaskConfig::new().with_fixed_retry(3, Duration::from_millis(1))
        }
        fn name(&self) -> Cow<'static, str> {
            "flaky".into()
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(CanoError::generic("first"))
            } else {
                Ok(TaskResult::Single(S::Done))
            }
        }
    }
    let rec = Recorder::new();
    let wf = Workflow::bare()
        .register(S::Start, OnceFlaky(AtomicUsize::new(0)))
        .add_exit_state(S::Done)
        .with_observer(rec.clone());
    wf.orchestrate(S::Start).await.unwrap();
    assert_eq!(
        rec.events(),
        [
            "enter:Start",
            "start:flaky",
            "retry:flaky:1",
            "success:flaky",
            "enter:Done"
        ]
    );
}

#[tokio::test]
async fn an_open_breaker_is_reported_then_the_failure() {
    let rec = Recorder::new();
    let wf = observed(
        x(Act::Go(S::Done)).with_config(
            TaskConfig::new()
                .with_fixed_retry(3, Duration::from_millis(1))
                .with_circuit_breaker(tripped_breaker()),
        ),
        &rec,
    );
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert!(matches!(err, CanoError::CircuitOpen(_)), "{err:?}");
    assert_eq!(
        rec.events(),
        ["enter:Start", "start:X", "circuit_open:X", "failure:X"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_tripping_mid_retry_reports_retries_open_and_failure() {
    let breaker = Arc::new(CircuitBreaker::new(CircuitPolicy {
        failure_threshold: 2,
        reset_timeout: Duration::from_secs(3600),
        half_open_max_calls: 1,
    }));
    let rec = Recorder::new();
    let wf = observed(
        x(Act::Fail).with_config(
            TaskConfig::new()
                .with_fixed_retry(5, Duration::from_millis(1))
                .with_circuit_breaker(breaker),
        ),
        &rec,
    );
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err.category(), "circuit_open");
    assert_eq!(
        rec.events(),
        [
            "enter:Start",
            "start:X",
            "retry:X:1",
            "retry:X:2",
            "circuit_open:X",
            "failure:X"
        ]
    );
}

#[tokio::test]
async fn a_panic_is_reported_as_a_failure() {
    let rec = Recorder::new();
    let wf = observed(x(Act::Panic), &rec);
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert_eq!(rec.events(), ["enter:Start", "start:X", "failure:X"]);
    assert_eq!(
        rec.failures(),
        [CanoError::task_execution("panic: x panicked")]
    );
}

#[tokio::test]
async fn a_split_result_from_a_single_task_is_reported_as_a_failure() {
    let rec = Recorder::new();
    let wf = observed(x(Act::Split), &rec);
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(rec.events(), ["enter:Start", "start:X", "failure:X"]);
    assert_eq!(rec.failures(), [err]);
}

#[tokio::test]
async fn an_unknown_next_state_is_entered_but_no_task_event_follows() {
    let rec = Recorder::new();
    let wf = observed(x(Act::Go(S::Elsewhere)), &rec);
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert_eq!(
        rec.events(),
        ["enter:Start", "start:X", "success:X", "enter:Elsewhere"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_workflow_timeout_leaves_the_cancelled_task_without_an_outcome_event() {
    let rec = Recorder::new();
    let wf = observed(x(Act::Sleep), &rec).with_timeout(Duration::from_millis(10));
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert_eq!(rec.events(), ["enter:Start", "start:X"]);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_are_reported_as_retries_and_a_failure() {
    let rec = Recorder::new();
    let wf = observed(
        x(Act::Sleep).with_config(
            TaskConfig::new()
                .with_fixed_retry(1, Duration::ZERO)
                .with_attempt_timeout(Duration::from_millis(5)),
        ),
        &rec,
    );
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert_eq!(
        rec.events(),
        ["enter:Start", "start:X", "retry:X:1", "failure:X"]
    );
    assert!(
        rec.failures()[0]
            .to_string()
            .contains("Timeout error: task attempt exceeded attempt_timeout")
    );
}

#[tokio::test]
async fn a_workflow_without_observers_still_runs() {
    let wf = Workflow::bare()
        .register(S::Start, x(Act::Go(S::Next)))
        .register(S::Next, x(Act::Go(S::Done)))
        .add_exit_state(S::Done);
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
}

/// Writes `{tag}:{event}` into a log shared with other observers.
struct Tagged(&'static str, Log);

impl WorkflowObserver for Tagged {
    fn on_state_enter(&self, state: &str) {
        self.1.push(format!("{}:enter:{state}", self.0));
    }
    fn on_task_start(&self, task_id: &str) {
        self.1.push(format!("{}:start:{task_id}", self.0));
    }
    fn on_task_success(&self, task_id: &str) {
        self.1.push(format!("{}:success:{task_id}", self.0));
    }
}

#[tokio::test]
async fn several_observers_each_receive_every_event_in_registration_order() {
    let log = Log::new();
    let wf = Workflow::bare()
        .register(S::Start, x(Act::Go(S::Done)))
        .add_exit_state(S::Done)
        .with_observer(Arc::new(Tagged("a", log.clone())))
        .with_observer(Arc::new(Tagged("b", log.clone())));
    wf.orchestrate(S::Start).await.unwrap();
    assert_eq!(
        log.entries(),
        [
            "a:enter:Start",
            "b:enter:Start",
            "a:start:X",
            "b:start:X",
            "a:success:X",
            "b:success:X",
            "a:enter:Done",
            "b:enter:Done"
        ]
    );
}

#[tokio::test]
async fn observers_that_implement_only_some_hooks_get_no_op_defaults_for_the_rest() {
    struct EntersOnly(AtomicUsize);
    impl WorkflowObserver for EntersOnly {
        fn on_state_enter(&self, _state: &str) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let obs = Arc::new(EntersOnly(AtomicUsize::new(0)));
    let wf = Workflow::bare()
        .register(S::Start, x(Act::Go(S::Done)))
        .add_exit_state(S::Done)
        .with_observer(obs.clone());
    wf.orchestrate(S::Start).await.unwrap();
    assert_eq!(obs.0.load(Ordering::SeqCst), 2);
}

struct Unnamed;

#[task(state = S)]
impl Unnamed {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Done))
    }
}

struct TraitNamed;

#[task]
impl Task<S> for TraitNamed {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("trait-{}", 7))
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Next))
    }
}

#[tokio::test]
async fn task_ids_are_the_task_names() {
    let rec = Recorder::new();
    let wf = Workflow::bare()
        .register(S::Start, TraitNamed)
        .register(S::Next, Unnamed)
        .add_exit_state(S::Done)
        .with_observer(rec.clone());
    wf.orchestrate(S::Start).await.unwrap();
    let default_name = std::any::type_name::<Unnamed>();
    assert!(default_name.ends_with("Unnamed"), "{default_name}");
    assert_eq!(
        rec.events(),
        [
            "enter:Start".to_string(),
            "start:trait-7".to_string(),
            "success:trait-7".to_string(),
            "enter:Next".to_string(),
            format!("start:{default_name}"),
            format!("success:{default_name}"),
            "enter:Done".to_string(),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn observers_in_a_task_config_are_used_when_the_workflow_has_none() {
    let own = Recorder::new();
    let observers: Arc<[Arc<dyn WorkflowObserver>]> =
        Arc::new([own.clone() as Arc<dyn WorkflowObserver>]);
    let config = TaskConfig {
        observers: Some(observers),
        task_name: Some("configured".into()),
        ..TaskConfig::new().with_fixed_retry(1, Duration::ZERO)
    };

    let wf = Workflow::bare()
        .register(S::Start, x(Act::Fail).with_config(config.clone()))
        .add_exit_state(S::Done);
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert_eq!(own.events(), ["retry:configured:1"]);

    // With workflow observers, the workflow's list and the task's name replace them.
    let own = Recorder::new();
    let observers: Arc<[Arc<dyn WorkflowObserver>]> =
        Arc::new([own.clone() as Arc<dyn WorkflowObserver>]);
    let wf_rec = Recorder::new();
    let wf = Workflow::bare()
        .register(
            S::Start,
            x(Act::Fail).with_config(TaskConfig {
                observers: Some(observers),
                ..config
            }),
        )
        .add_exit_state(S::Done)
        .with_observer(wf_rec.clone());
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert!(own.events().is_empty(), "{:?}", own.events());
    assert_eq!(wf_rec.events_with("retry:"), ["retry:X:1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_observer_shared_by_concurrent_runs_sees_every_run() {
    let rec = Recorder::new();
    let wf = Arc::new(observed(x(Act::Go(S::Done)), &rec));
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let wf = Arc::clone(&wf);
            tokio::spawn(async move { wf.orchestrate(S::Start).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(rec.events_with("enter:Start").len(), 10);
    assert_eq!(rec.events_with("success:X").len(), 10);
    assert_eq!(rec.events_with("enter:Done").len(), 10);
}

#[test]
fn observers_are_object_safe_and_shareable() {
    let list: Vec<Arc<dyn WorkflowObserver>> =
        vec![Recorder::new(), Arc::new(Tagged("t", Log::new()))];
    for o in &list {
        o.on_state_enter("S");
        o.on_task_start("t");
        o.on_task_success("t");
        o.on_task_failure("t", &CanoError::generic("e"));
        o.on_retry("t", 1);
        o.on_circuit_open("t");
        o.on_checkpoint("wf", 0);
        o.on_resume("wf", 0);
    }
    support::assert_send_sync::<dyn WorkflowObserver>();
}

#[cfg(feature = "tracing")]
mod tracing_observer {
    use super::*;
    use std::sync::Mutex;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Debug, Clone, Default)]
    struct Captured {
        target: String,
        level: Option<Level>,
        message: String,
        fields: Vec<(String, String)>,
    }

    impl Visit for Captured {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let value = format!("{value:?}");
            if field.name() == "message" {
                self.message = value;
            } else {
                self.fields.push((field.name().to_string(), value));
            }
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.message = value.to_string();
            } else {
                self.fields
                    .push((field.name().to_string(), value.to_string()));
            }
        }
    }

    /// A minimal subscriber that keeps every event.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Captured>>>);

    impl Capture {
        fn observer_events(&self) -> Vec<Captured> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.target == "cano::observer")
                .cloned()
                .collect()
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut captured = Captured {
                target: event.metadata().target().to_string(),
                level: Some(*event.metadata().level()),
                ..Captured::default()
            };
            event.record(&mut captured);
            self.0.lock().unwrap().push(captured);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn field<'a>(e: &'a Captured, name: &str) -> &'a str {
        e.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no field {name} in {e:?}"))
    }

    #[test]
    fn every_hook_emits_one_event_with_the_documented_level_message_and_fields() {
        let capture = Capture::default();
        let _guard = tracing::subscriber::set_default(capture.clone());
        let obs = TracingObserver::new();
        obs.on_state_enter("Start");
        obs.on_task_start("t1");
        obs.on_task_success("t1");
        obs.on_task_failure("t1", &CanoError::task_execution("bad"));
        obs.on_retry("t1", 2);
        obs.on_circuit_open("t1");
        obs.on_checkpoint("wf", 3);
        obs.on_resume("wf", 4);

        let events = capture.observer_events();
        let summary: Vec<(Level, &str)> = events
            .iter()
            .map(|e| (e.level.unwrap(), e.message.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (Level::DEBUG, "workflow entered state"),
                (Level::DEBUG, "task started"),
                (Level::INFO, "task succeeded"),
                (Level::ERROR, "task failed"),
                (Level::WARN, "task retry"),
                (Level::WARN, "circuit breaker rejected task"),
                (Level::DEBUG, "checkpoint appended"),
                (Level::INFO, "workflow resumed from checkpoint"),
            ]
        );
        assert_eq!(field(&events[0], "state"), "Start");
        assert_eq!(field(&events[1], "task_id"), "t1");
        assert_eq!(field(&events[2], "task_id"), "t1");
        assert_eq!(field(&events[3], "task_id"), "t1");
        assert_eq!(field(&events[3], "error"), "Task execution error: bad");
        assert_eq!(field(&events[4], "task_id"), "t1");
        assert_eq!(field(&events[4], "attempt"), "2");
        assert_eq!(field(&events[5], "task_id"), "t1");
        assert_eq!(field(&events[6], "workflow_id"), "wf");
        assert_eq!(field(&events[6], "sequence"), "3");
        assert_eq!(field(&events[7], "workflow_id"), "wf");
        assert_eq!(field(&events[7], "sequence"), "4");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_workflow_with_the_tracing_observer_logs_its_progress() {
        let capture = Capture::default();
        let _guard = tracing::subscriber::set_default(capture.clone());
        let wf = Workflow::bare()
            .register(
                S::Start,
                x(Act::Fail)
                    .named("traced-task")
                    .with_config(TaskConfig::new().with_fixed_retry(1, Duration::ZERO)),
            )
            .register(
                S::Next,
                x(Act::Go(S::Done))
                    .named("guarded-task")
                    .with_config(TaskConfig::minimal().with_circuit_breaker(tripped_breaker())),
            )
            .add_exit_state(S::Done)
            .with_observer(Arc::new(TracingObserver::new()));
        let err = wf.orchestrate(S::Start).await.unwrap_err();
        assert_eq!(err.category(), "retry_exhausted", "results are unchanged");
        let err = wf.orchestrate(S::Next).await.unwrap_err();
        assert_eq!(err.category(), "circuit_open");

        let events = capture.observer_events();
        let has = |message: &str, task: &str| {
            events
                .iter()
                .any(|e| e.message == message && e.fields.iter().any(|(_, v)| v == task))
        };
        assert!(has("workflow entered state", "Start"), "{events:?}");
        assert!(has("task started", "traced-task"), "{events:?}");
        assert!(has("task retry", "traced-task"), "{events:?}");
        assert!(has("task failed", "traced-task"), "{events:?}");
        assert!(
            has("circuit breaker rejected task", "guarded-task"),
            "{events:?}"
        );
    }

    #[test]
    fn tracing_observer_is_a_plain_copyable_value() {
        fn value_traits<T: Default + Copy + std::fmt::Debug + WorkflowObserver>() {}
        value_traits::<TracingObserver>();
        assert_eq!(format!("{:?}", TracingObserver::new()), "TracingObserver");
    }
}
