//! What observers hear beyond task starts and outcomes: each failed attempt with its
//! error, a rollback starting, each step compensated or failing to compensate, a log that
//! could not be cleared, a teardown that failed, and the end of every run. And the task's
//! say on whether an error is worth another attempt.

use cano::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl Heard {
    fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    /// The events that are not state entries, task starts or checkpoints.
    fn lifecycle(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| {
                !e.starts_with("enter ") && !e.starts_with("start ") && !e.starts_with("checkpoint")
            })
            .collect()
    }
}

impl WorkflowObserver for Heard {
    fn on_state_enter(&self, state: &str) {
        self.push(format!("enter {state}"));
    }
    fn on_task_start(&self, task_id: &str) {
        self.push(format!("start {task_id}"));
    }
    fn on_task_success(&self, task_id: &str) {
        self.push(format!("success {task_id}"));
    }
    fn on_task_failure(&self, task_id: &str, err: &CanoError) {
        self.push(format!("failure {task_id}: {err}"));
    }
    fn on_retry(&self, task_id: &str, attempt: u32) {
        self.push(format!("retry {task_id} #{attempt}"));
    }
    fn on_checkpoint(&self, _workflow_id: &str, sequence: u64) {
        self.push(format!("checkpoint {sequence}"));
    }
    fn on_attempt_failed(&self, task_id: &str, attempt: u32, error: &CanoError) {
        self.push(format!("attempt {task_id} #{attempt}: {error}"));
    }
    fn on_rollback_started(&self, steps: usize, cause: &CanoError) {
        self.push(format!("rollback {steps} steps: {cause}"));
    }
    fn on_compensated(&self, task_id: &str) {
        self.push(format!("compensated {task_id}"));
    }
    fn on_compensation_failed(&self, task_id: &str, error: &CanoError) {
        self.push(format!("compensation failed {task_id}: {error}"));
    }
    fn on_checkpoint_clear_failed(&self, workflow_id: &str, error: &CanoError) {
        self.push(format!("clear failed {workflow_id}: {error}"));
    }
    fn on_teardown_failed(&self, error: &CanoError) {
        self.push(format!("teardown failed: {error}"));
    }
    fn on_run_end(&self, outcome: Result<&str, &CanoError>) {
        match outcome {
            Ok(state) => self.push(format!("end ok {state}")),
            Err(e) => self.push(format!("end err {e}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Reserve,
    Charge,
    Ship,
    Done,
}

/// Fails with "503" twice, then with "card declined" (not worth retrying).
struct Charge {
    calls: AtomicU32,
}

#[task(state = S)]
impl Charge {
    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_fixed_retry(5, Duration::from_millis(10))
    }
    fn name(&self) -> Cow<'static, str> {
        "charge".into()
    }
    fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
        error.message() != "card declined"
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            Err(CanoError::task_execution("503"))
        } else {
            Err(CanoError::task_execution("card declined"))
        }
    }
}

struct Reserve {
    undo_fails: bool,
}

#[saga::task(state = S)]
impl Reserve {
    type Output = u32;
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        "reserve".into()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        Ok((TaskResult::Single(S::Charge), 7))
    }
    async fn compensate(&self, _res: &Resources, _output: u32) -> Result<(), CanoError> {
        if self.undo_fails {
            Err(CanoError::task_execution("stock service down"))
        } else {
            Ok(())
        }
    }
}

fn checkout(undo_fails: bool, heard: &Arc<Heard>) -> (Workflow<S>, Arc<Charge>) {
    let charge = Arc::new(Charge {
        calls: AtomicU32::new(0),
    });
    struct Shared(Arc<Charge>);
    #[task(state = S)]
    impl Shared {
        fn config(&self) -> TaskConfig {
            self.0.config()
        }
        fn name(&self) -> Cow<'static, str> {
            "charge".into()
        }
        fn is_retryable(&self, error: &CanoError, attempt: u32) -> bool {
            self.0.is_retryable(error, attempt)
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            self.0.run_bare().await
        }
    }
    let wf = Workflow::bare()
        .register_with_compensation(S::Reserve, Reserve { undo_fails })
        .register(S::Charge, Shared(Arc::clone(&charge)))
        .add_exit_state(S::Done)
        .with_observer(heard.clone());
    (wf, charge)
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_stops_retrying_and_starts_the_rollback() {
    let heard = Arc::new(Heard::default());
    let (wf, charge) = checkout(false, &heard);
    let started = tokio::time::Instant::now();
    let err = wf.orchestrate(S::Reserve).await.unwrap_err();
    // Not wrapped in RetryExhausted: the task said the error is final.
    assert_eq!(err, CanoError::task_execution("card declined"));
    assert_eq!(charge.calls.load(Ordering::SeqCst), 3);
    // Two retry delays of 10 ms, on the paused clock.
    assert_eq!(started.elapsed(), Duration::from_millis(20));
    assert_eq!(
        heard.lifecycle(),
        [
            "success reserve",
            "attempt charge #1: Task execution error: 503",
            "retry charge #1",
            "attempt charge #2: Task execution error: 503",
            "retry charge #2",
            "attempt charge #3: Task execution error: card declined",
            "failure charge: Task execution error: card declined",
            "rollback 1 steps: Task execution error: card declined",
            "compensated reserve",
            "end err Task execution error: card declined",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_compensation_is_heard_and_ends_the_run() {
    let heard = Arc::new(Heard::default());
    let (wf, _) = checkout(true, &heard);
    let err = wf.orchestrate(S::Reserve).await.unwrap_err();
    assert_eq!(err.category(), "compensation_failed");
    let events = heard.lifecycle();
    assert!(
        events.contains(
            &"compensation failed reserve: Task execution error: stock service down".to_string()
        ),
        "{events:?}"
    );
    assert_eq!(
        events
            .last()
            .map(|e| e.starts_with("end err Compensation failed")),
        Some(true),
        "{events:?}"
    );
}

struct Go(S);

#[task(state = S)]
impl Go {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(self.0.clone()))
    }
}

/// A store whose `clear` always fails.
#[derive(Default)]
struct NoClear(Mutex<HashMap<String, Vec<CheckpointRow>>>);

#[checkpoint_store]
impl NoClear {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        self.0
            .lock()
            .unwrap()
            .entry(workflow_id.to_string())
            .or_default()
            .push(row);
        Ok(())
    }
    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(workflow_id)
            .cloned()
            .unwrap_or_default())
    }
    async fn clear(&self, _workflow_id: &str) -> Result<(), CanoError> {
        Err(CanoError::checkpoint_store("disk full"))
    }
}

struct BadTeardown;

#[resource]
impl Resource for BadTeardown {
    async fn teardown(&self) -> Result<(), CanoError> {
        Err(CanoError::generic("socket already closed"))
    }
}

#[tokio::test]
async fn a_log_left_behind_and_a_failed_teardown_are_heard_and_the_run_still_succeeds() {
    let heard = Arc::new(Heard::default());
    let wf = Workflow::new(Resources::new().insert("conn", BadTeardown))
        .register(S::Ship, Go(S::Done))
        .add_exit_state(S::Done)
        .with_checkpoint_store(Arc::new(NoClear::default()))
        .with_workflow_id("order-9")
        .with_observer(heard.clone());
    assert_eq!(wf.orchestrate(S::Ship).await, Ok(S::Done));
    assert_eq!(
        heard.lifecycle(),
        [
            "success observers_lifecycle::Go",
            "clear failed order-9: Checkpoint store error: disk full",
            "teardown failed: Error: socket already closed",
            "end ok Done",
        ]
    );
}

#[tokio::test]
async fn every_run_ends_once_including_resumed_and_failed_ones() {
    let heard = Arc::new(Heard::default());
    let store = Arc::new(NoClear::default());
    let wf = Workflow::bare()
        .register(S::Ship, Go(S::Charge))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("r")
        .with_observer(heard.clone());
    let err = wf.orchestrate(S::Ship).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Workflow error: No task registered for state: Charge"
    );
    let ends = |h: &Heard| h.events().iter().filter(|e| e.starts_with("end ")).count();
    assert_eq!(ends(&heard), 1);
    // The log ends at `Charge`, which this workflow does not know: the resume fails in its
    // checks and is not a run.
    assert!(wf.resume_from("r").await.is_err());
    assert_eq!(ends(&heard), 1);
    let wf = wf.register(S::Charge, Go(S::Done));
    assert_eq!(wf.resume_from("r").await, Ok(S::Done));
    assert_eq!(ends(&heard), 2);
    assert_eq!(
        heard.events().last().map(String::as_str),
        Some("end ok Done")
    );
}

/// An observer that panics in every callback does not take the run down, and the
/// observers after it still hear every event.
#[tokio::test(start_paused = true)]
async fn a_panicking_observer_does_not_break_the_run_or_the_other_observers() {
    struct Explodes;
    impl WorkflowObserver for Explodes {
        fn on_state_enter(&self, _state: &str) {
            panic!("observer exploded");
        }
        fn on_task_start(&self, _task_id: &str) {
            panic!("observer exploded");
        }
        fn on_task_success(&self, _task_id: &str) {
            panic!("observer exploded");
        }
        fn on_run_end(&self, _outcome: Result<&str, &CanoError>) {
            panic!("observer exploded");
        }
    }
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum P {
        Go,
        Fan,
        Done,
    }
    struct Go;
    #[task(state = P)]
    impl Go {
        async fn run_bare(&self) -> Result<TaskResult<P>, CanoError> {
            Ok(TaskResult::Single(P::Fan))
        }
    }
    #[derive(Default)]
    struct Counts(Mutex<Vec<String>>);
    impl WorkflowObserver for Counts {
        fn on_state_enter(&self, state: &str) {
            self.0.lock().unwrap().push(format!("enter:{state}"));
        }
        fn on_task_start(&self, id: &str) {
            self.0.lock().unwrap().push(format!("start:{id}"));
        }
        fn on_task_success(&self, id: &str) {
            self.0.lock().unwrap().push(format!("success:{id}"));
        }
    }
    let after = Arc::new(Counts::default());
    let wf = Workflow::bare()
        .register(P::Go, Go)
        .register_split(
            P::Fan,
            vec![Go, Go],
            JoinConfig::new(JoinStrategy::All, P::Done),
        )
        .add_exit_state(P::Done)
        .with_observer(Arc::new(Explodes))
        .with_observer(after.clone());
    assert_eq!(wf.orchestrate(P::Go).await, Ok(P::Done));
    let events = after.0.lock().unwrap().clone();
    let count = |prefix: &str| events.iter().filter(|e| e.starts_with(prefix)).count();
    assert_eq!(count("start:"), 3, "{events:?}");
    assert_eq!(count("enter:"), 3, "{events:?}");
    assert_eq!(count("success:"), 3, "{events:?}");
}
