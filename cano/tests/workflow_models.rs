//! The processing models inside a workflow: router states leave no checkpoint row, poll
//! tasks follow their error budget and are bounded by `attempt_timeout`, batch tasks fail
//! only through `load`/`finish`, and `register_stepped` runs an engine-driven step loop
//! that retries each step with the same cursor, records every cursor and resumes from the
//! last one. Every model retries only the errors its task says are worth it.
//!
//! Deliberate difference from 0.12.0 (COMPATIBILITY.md, "Stepped cursor on resume"): only
//! the resume point's own cursor is fed to a resumed run; every other entry of a stepped
//! state starts from `None`.

mod support;

use cano::prelude::*;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Log, Recorder, TestStore, triples};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Start,
    Process,
    Complete,
    Route,
    Wait,
    Crunch,
    Grind,
    Done,
    A,
    B,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

type Kinded = (u64, String, String, RowKind);

/// `(sequence, state, task_id, kind)`, owned.
fn kinded(sequence: u64, state: &str, task_id: &str, kind: RowKind) -> Kinded {
    (sequence, state.to_string(), task_id.to_string(), kind)
}

/// `(sequence, state, task_id, kind)` of every row ever appended for `id`.
fn kinds(store: &TestStore, id: &str) -> Vec<Kinded> {
    store
        .audit_rows(id)
        .into_iter()
        .map(|r| (r.sequence, r.state, r.task_id, r.kind))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// A plain task: logs its name and moves to `next`; fails while `crash` is set.
struct Node {
    name: &'static str,
    next: S,
    log: Log,
    crash: Arc<AtomicBool>,
}

impl Node {
    fn new(name: &'static str, next: S, log: &Log) -> Self {
        Self {
            name,
            next,
            log: log.clone(),
            crash: Arc::default(),
        }
    }

    fn crashing(mut self, flag: &Arc<AtomicBool>) -> Self {
        self.crash = Arc::clone(flag);
        self
    }
}

#[task(state = S)]
impl Node {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.log.push(self.name);
        if self.crash.load(Ordering::SeqCst) {
            return Err(CanoError::task_execution(format!(
                "{}: simulated crash",
                self.name
            )));
        }
        Ok(TaskResult::Single(self.next.clone()))
    }
}

/// A router that goes to `to` (or fails while `fail` is set), counting its calls. Keeps
/// the `RouterTask` defaults for `name` and `config`.
struct Route {
    to: S,
    calls: Arc<AtomicU32>,
    fail: bool,
}

impl Route {
    fn to(to: S, calls: &Arc<AtomicU32>) -> Self {
        Self {
            to,
            calls: Arc::clone(calls),
            fail: false,
        }
    }
}

#[task::router(state = S)]
impl Route {
    async fn route(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(CanoError::task_execution("router failed"));
        }
        Ok(TaskResult::Single(self.to.clone()))
    }
}

/// A router that always fails with `error`, counting its calls. Keeps the default config
/// (four attempts); errors that say they are permanent are not worth another one.
struct Picky {
    error: &'static str,
    calls: Arc<AtomicU32>,
}

#[task::router(state = S)]
impl Picky {
    fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
        !error.message().starts_with("permanent")
    }

    async fn route(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(CanoError::task_execution(self.error))
    }
}

/// One scripted answer of [`Scripted`].
#[derive(Clone, Copy)]
enum Answer {
    Error,
    /// An error the poller says is not worth another attempt.
    Permanent,
    Pending(u64),
    Ready,
}

/// A poller that plays a script; once the script is used up it stays pending (1 ms).
/// Error `n` reads `poll error {n}` (`permanent poll error {n}`), where `n` counts every
/// poll; only the permanent ones are not worth another attempt.
struct Scripted {
    script: Mutex<VecDeque<Answer>>,
    polls: Arc<AtomicU32>,
    policy: PollErrorPolicy,
    config: TaskConfig,
    next: S,
}

impl Scripted {
    fn new(script: &[Answer], polls: &Arc<AtomicU32>, next: S) -> Self {
        Self {
            script: Mutex::new(script.iter().copied().collect()),
            polls: Arc::clone(polls),
            policy: PollErrorPolicy::FailFast,
            config: TaskConfig::minimal(),
            next,
        }
    }

    fn tolerating(mut self, max_errors: u32) -> Self {
        self.policy = PollErrorPolicy::RetryOnError { max_errors };
        self
    }

    fn with_config(mut self, config: TaskConfig) -> Self {
        self.config = config;
        self
    }

    async fn answer(&self) -> Result<PollOutcome<S>, CanoError> {
        let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer::Pending(1));
        match answer {
            Answer::Error => Err(CanoError::task_execution(format!("poll error {n}"))),
            Answer::Permanent => Err(CanoError::task_execution(format!(
                "permanent poll error {n}"
            ))),
            Answer::Pending(delay_ms) => Ok(PollOutcome::Pending { delay_ms }),
            Answer::Ready => Ok(PollOutcome::Ready(TaskResult::Single(self.next.clone()))),
        }
    }
}

#[task::poll(state = S)]
impl Scripted {
    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    fn on_poll_error(&self) -> PollErrorPolicy {
        self.policy.clone()
    }

    fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
        !error.message().starts_with("permanent")
    }

    async fn poll(&self, _res: &Resources) -> Result<PollOutcome<S>, CanoError> {
        self.answer().await
    }
}

/// A [`Scripted`] poller that keeps every `PollTask` default (`config`, `on_poll_error`).
struct Defaults(Scripted);

#[task::poll(state = S)]
impl Defaults {
    async fn poll(&self, _res: &Resources) -> Result<PollOutcome<S>, CanoError> {
        self.0.answer().await
    }
}

/// What [`Numbers::finish`] received, with errors reduced to their messages.
type Finished = Arc<Mutex<Vec<Vec<Result<u32, String>>>>>;

/// A batch that doubles its items. `fail_item` always fails; `load` fails while
/// `load_failures` is positive.
struct Numbers {
    items: Vec<u32>,
    fail_item: Option<u32>,
    load_failures: AtomicU32,
    loads: Arc<AtomicU32>,
    processed: Arc<AtomicU32>,
    finished: Finished,
    config: TaskConfig,
    next: S,
}

impl Numbers {
    fn new(items: &[u32], next: S) -> Self {
        Self {
            items: items.to_vec(),
            fail_item: None,
            load_failures: AtomicU32::new(0),
            loads: Arc::default(),
            processed: Arc::default(),
            finished: Arc::default(),
            config: TaskConfig::minimal(),
            next,
        }
    }
}

#[task::batch(state = S)]
impl Numbers {
    fn concurrency(&self) -> usize {
        2
    }

    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("numbers")
    }

    async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let left = self.load_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.load_failures.store(left - 1, Ordering::SeqCst);
            return Err(CanoError::task_execution("load failed"));
        }
        Ok(self.items.clone())
    }

    async fn process_item(&self, item: &u32) -> Result<u32, CanoError> {
        self.processed.fetch_add(1, Ordering::SeqCst);
        if Some(*item) == self.fail_item {
            return Err(CanoError::task_execution(format!("item {item} failed")));
        }
        Ok(item * 2)
    }

    async fn finish(
        &self,
        _res: &Resources,
        outputs: Vec<Result<u32, CanoError>>,
    ) -> Result<TaskResult<S>, CanoError> {
        let seen = outputs
            .into_iter()
            .map(|r| r.map_err(|e| e.message().to_string()))
            .collect();
        self.finished.lock().unwrap().push(seen);
        Ok(TaskResult::Single(self.next.clone()))
    }
}

/// A batch over `[1, 2]` whose item 2 (or, with `failing_load`, whose `load`) always fails
/// with `error`. Items and the batch both get two retries a second apart, except for errors
/// that say they are permanent.
struct PickyBatch {
    error: &'static str,
    failing_load: bool,
    loads: Arc<AtomicU32>,
    /// The item of every `process_item` call, in call order.
    items: Arc<Mutex<Vec<u32>>>,
    finished: Finished,
}

impl PickyBatch {
    fn new(error: &'static str, failing_load: bool) -> Self {
        Self {
            error,
            failing_load,
            loads: Arc::default(),
            items: Arc::default(),
            finished: Arc::default(),
        }
    }
}

#[task::batch(state = S)]
impl PickyBatch {
    fn item_retry(&self) -> RetryMode {
        RetryMode::fixed(2, Duration::from_secs(1))
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal().with_fixed_retry(2, Duration::from_secs(1))
    }

    fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
        !error.message().starts_with("permanent")
    }

    async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.failing_load {
            return Err(CanoError::task_execution(self.error));
        }
        Ok(vec![1, 2])
    }

    async fn process_item(&self, item: &u32) -> Result<u32, CanoError> {
        self.items.lock().unwrap().push(*item);
        if *item == 2 {
            return Err(CanoError::task_execution(self.error));
        }
        Ok(item * 2)
    }

    async fn finish(
        &self,
        _res: &Resources,
        outputs: Vec<Result<u32, CanoError>>,
    ) -> Result<TaskResult<S>, CanoError> {
        let seen = outputs
            .into_iter()
            .map(|r| r.map_err(|e| e.message().to_string()))
            .collect();
        self.finished.lock().unwrap().push(seen);
        Ok(TaskResult::Single(S::Done))
    }
}

/// The cursor each `step` call received, in call order.
type Calls = Arc<Mutex<Vec<Option<u32>>>>;

fn calls_of(calls: &Calls) -> Vec<Option<u32>> {
    calls.lock().unwrap().clone()
}

/// Counts `None → 1 → 2 → …`: step `n` (from cursor `n - 1`) returns `More(n)` until
/// `n` reaches `target`, then `Done(next)`. Optionally fails once on the step that starts
/// from cursor `fail_once_from`, and sleeps `pause` in every step.
struct Counter {
    name: &'static str,
    target: u32,
    next: S,
    calls: Calls,
    fail_once_from: Option<u32>,
    failed: AtomicBool,
    pause: Duration,
    config: TaskConfig,
}

impl Counter {
    fn new(target: u32, next: S, calls: &Calls) -> Self {
        Self {
            name: "counter",
            target,
            next,
            calls: Arc::clone(calls),
            fail_once_from: None,
            failed: AtomicBool::new(false),
            pause: Duration::ZERO,
            config: TaskConfig::minimal(),
        }
    }

    fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    fn failing_once_from(mut self, cursor: u32) -> Self {
        self.fail_once_from = Some(cursor);
        self
    }

    fn pausing(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    fn with_config(mut self, config: TaskConfig) -> Self {
        self.config = config;
        self
    }
}

#[task::stepped(state = S)]
impl Counter {
    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, S>, CanoError> {
        self.calls.lock().unwrap().push(cursor);
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        let from = cursor.unwrap_or(0);
        if self.fail_once_from == Some(from) && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(CanoError::task_execution(format!(
                "step from {from} failed"
            )));
        }
        let n = from + 1;
        Ok(if n >= self.target {
            StepOutcome::Done(TaskResult::Single(self.next.clone()))
        } else {
            StepOutcome::More(n)
        })
    }
}

/// A stepped task that finishes with a split result.
struct SplitStepper;

#[task::stepped(state = S)]
impl SplitStepper {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u8>,
    ) -> Result<StepOutcome<u8, S>, CanoError> {
        Ok(match cursor {
            None => StepOutcome::More(1),
            Some(_) => StepOutcome::Done(TaskResult::Split(vec![S::A, S::B])),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Router
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_router_state_writes_no_row_and_consumes_no_sequence() {
    let (log, store, recorder) = (Log::new(), TestStore::new(), Recorder::new());
    let routed = Arc::new(AtomicU32::new(0));
    let wf = Workflow::bare()
        .register_router(S::Start, Route::to(S::Process, &routed))
        .register(S::Process, Node::new("process", S::Complete, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("r1")
        .with_observer(recorder.clone());

    assert_eq!(wf.orchestrate(S::Start).await.unwrap(), S::Complete);

    assert_eq!(routed.load(Ordering::SeqCst), 1);
    assert_eq!(
        store.audit("r1"),
        triples(&[(0, "Process", "process"), (1, "Complete", "")])
    );
    assert!(store.rows("r1").is_empty(), "success clears the log");
    assert_eq!(
        recorder.events_with("enter:"),
        ["enter:Start", "enter:Process", "enter:Complete"]
    );
    assert_eq!(
        recorder.events_with("checkpoint:"),
        ["checkpoint:r1:0", "checkpoint:r1:1"]
    );
    // The router still runs as a task.
    let router_name = Task::name(&Route::to(S::Done, &routed)).into_owned();
    assert!(
        recorder
            .events()
            .contains(&format!("success:{router_name}"))
    );
}

#[tokio::test]
async fn a_router_registered_with_plain_register_is_checkpointed_under_its_type_name() {
    let (log, store) = (Log::new(), TestStore::new());
    let routed = Arc::new(AtomicU32::new(0));
    let wf = Workflow::bare()
        .register(S::Start, Route::to(S::Process, &routed))
        .register(S::Process, Node::new("process", S::Complete, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("r2");

    assert_eq!(wf.orchestrate(S::Start).await.unwrap(), S::Complete);

    let router_name = std::any::type_name::<Route>();
    assert!(router_name.ends_with("Route"), "{router_name}");
    assert_eq!(
        store.audit("r2"),
        triples(&[
            (0, "Start", router_name),
            (1, "Process", "process"),
            (2, "Complete", ""),
        ])
    );
}

#[tokio::test]
async fn resume_after_a_router_start_state_re_enters_the_first_checkpointed_state() {
    let (log, store, recorder) = (Log::new(), TestStore::new(), Recorder::new());
    let routed = Arc::new(AtomicU32::new(0));
    let crash = Arc::new(AtomicBool::new(true));
    let wf = Workflow::bare()
        .register_router(S::Start, Route::to(S::Process, &routed))
        .register(
            S::Process,
            Node::new("process", S::Complete, &log).crashing(&crash),
        )
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("r3")
        .with_observer(recorder.clone());

    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err.message(), "process: simulated crash");
    assert_eq!(store.summary("r3"), triples(&[(0, "Process", "process")]));

    crash.store(false, Ordering::SeqCst);
    assert_eq!(wf.resume_from("r3").await.unwrap(), S::Complete);

    // The router ran once (in the first run): the resumed run starts at `Process`.
    assert_eq!(routed.load(Ordering::SeqCst), 1);
    assert_eq!(log.entries(), ["process", "process"]);
    assert_eq!(
        store.audit("r3"),
        triples(&[
            (0, "Process", "process"),
            (1, "Process", "process"),
            (2, "Complete", ""),
        ])
    );
    assert!(store.rows("r3").is_empty());
    let resumed: Vec<String> = recorder
        .events()
        .into_iter()
        .skip_while(|e| !e.starts_with("resume:"))
        .filter(|e| e.starts_with("resume:") || e.starts_with("checkpoint:"))
        .collect();
    assert_eq!(
        resumed,
        ["resume:r3:0", "checkpoint:r3:1", "checkpoint:r3:2"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_router_start_state_leaves_nothing_to_resume() {
    let store = TestStore::new();
    let routed = Arc::new(AtomicU32::new(0));
    let mut router = Route::to(S::Complete, &routed);
    router.fail = true;
    let wf = Workflow::bare()
        .register_router(S::Start, router)
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("r4");

    let err = wf.orchestrate(S::Start).await.unwrap_err();
    // The router's default config retries: 4 attempts, then `RetryExhausted`.
    assert_eq!(routed.load(Ordering::SeqCst), 4);
    assert!(matches!(err, CanoError::RetryExhausted(_)), "{err:?}");
    assert!(store.audit("r4").is_empty());
    let err = wf.resume_from("r4").await.unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("no checkpoint rows"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_router_retries_only_the_errors_it_says_are_worth_it() {
    let route = |error| {
        let calls = Arc::new(AtomicU32::new(0));
        let wf = Workflow::bare()
            .register_router(
                S::Route,
                Picky {
                    error,
                    calls: calls.clone(),
                },
            )
            .add_exit_state(S::Done);
        (wf, calls)
    };

    // Retryable: every one of the default config's four attempts is made.
    let (wf, calls) = route("lookup timed out");
    let err = wf.orchestrate(S::Route).await.unwrap_err();
    assert!(matches!(err, CanoError::RetryExhausted(_)), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // Not retryable: one attempt, and the error comes back as it is.
    let (wf, calls) = route("permanent: no such region");
    let err = wf.orchestrate(S::Route).await.unwrap_err();
    assert_eq!(err, CanoError::task_execution("permanent: no such region"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Poll
// ---------------------------------------------------------------------------------------

/// `Wait` polls, then `Done`.
fn poll_workflow(poller: Scripted) -> Workflow<S> {
    Workflow::bare()
        .register(S::Wait, poller)
        .add_exit_state(S::Done)
}

#[tokio::test]
async fn a_poll_task_with_the_default_config_makes_one_attempt() {
    let polls = Arc::new(AtomicU32::new(0));
    let poller = Defaults(Scripted::new(
        &[Answer::Error, Answer::Ready],
        &polls,
        S::Done,
    ));
    assert_eq!(Task::config(&poller).retry_mode.max_attempts(), 1);
    assert_eq!(poller.on_poll_error(), PollErrorPolicy::FailFast);
    let wf = Workflow::bare()
        .register(S::Wait, poller)
        .add_exit_state(S::Done);

    let err = wf.orchestrate(S::Wait).await.unwrap_err();

    // One attempt, fail-fast: the first poll error comes back as it is.
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert!(matches!(err, CanoError::TaskExecution(_)), "{err:?}");
    assert_eq!(err.message(), "poll error 1");
}

#[tokio::test]
async fn retry_on_error_tolerates_max_errors_in_a_row() {
    let polls = Arc::new(AtomicU32::new(0));
    let poller = Scripted::new(
        &[Answer::Error, Answer::Error, Answer::Ready],
        &polls,
        S::Done,
    )
    .tolerating(2);

    assert_eq!(
        poll_workflow(poller).orchestrate(S::Wait).await.unwrap(),
        S::Done
    );
    assert_eq!(polls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retry_on_error_fails_with_the_latest_error_once_the_budget_is_exceeded() {
    let polls = Arc::new(AtomicU32::new(0));
    let poller = Scripted::new(
        &[Answer::Error, Answer::Error, Answer::Error, Answer::Ready],
        &polls,
        S::Done,
    )
    .tolerating(2);

    let err = poll_workflow(poller)
        .orchestrate(S::Wait)
        .await
        .unwrap_err();

    assert_eq!(polls.load(Ordering::SeqCst), 3);
    assert!(matches!(err, CanoError::TaskExecution(_)), "{err:?}");
    assert_eq!(err.message(), "poll error 3");
}

#[tokio::test(start_paused = true)]
async fn a_pending_poll_resets_the_error_budget() {
    let polls = Arc::new(AtomicU32::new(0));
    let poller = Scripted::new(
        &[
            Answer::Error,
            Answer::Pending(5),
            Answer::Error,
            Answer::Ready,
        ],
        &polls,
        S::Done,
    )
    .tolerating(1);

    let start = Instant::now();
    assert_eq!(
        poll_workflow(poller).orchestrate(S::Wait).await.unwrap(),
        S::Done
    );
    assert_eq!(polls.load(Ordering::SeqCst), 4);
    // Only the pending answer slept; errors re-poll at once.
    assert!(start.elapsed() >= ms(5) && start.elapsed() < ms(10));
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_bounds_a_poll_loop_that_never_becomes_ready() {
    let polls = Arc::new(AtomicU32::new(0));
    // An empty script stays pending (1 ms) forever.
    let poller = Scripted::new(&[], &polls, S::Done)
        .with_config(TaskConfig::minimal().with_attempt_timeout(ms(20)));

    let start = Instant::now();
    let err = poll_workflow(poller)
        .orchestrate(S::Wait)
        .await
        .unwrap_err();

    assert!(matches!(err, CanoError::Timeout(_)), "{err:?}");
    assert!(start.elapsed() >= ms(20), "{:?}", start.elapsed());
    assert!(start.elapsed() < ms(500), "{:?}", start.elapsed());
    assert!(polls.load(Ordering::SeqCst) > 1);
}

#[tokio::test(start_paused = true)]
async fn a_poll_task_retries_only_the_errors_it_says_are_worth_it() {
    let config = TaskConfig::minimal().with_fixed_retry(2, Duration::from_secs(1));

    // Retryable: the failed loop is run again a second later, and becomes ready.
    let polls = Arc::new(AtomicU32::new(0));
    let poller =
        Scripted::new(&[Answer::Error, Answer::Ready], &polls, S::Done).with_config(config.clone());
    let start = Instant::now();
    assert_eq!(
        poll_workflow(poller).orchestrate(S::Wait).await.unwrap(),
        S::Done
    );
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(1));

    // Not retryable: one attempt, and the error comes back as it is.
    let polls = Arc::new(AtomicU32::new(0));
    let poller =
        Scripted::new(&[Answer::Permanent, Answer::Ready], &polls, S::Done).with_config(config);
    let err = poll_workflow(poller)
        .orchestrate(S::Wait)
        .await
        .unwrap_err();
    assert_eq!(err, CanoError::task_execution("permanent poll error 1"));
    assert_eq!(polls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Batch
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failing_item_reaches_finish_as_an_error_and_the_state_succeeds() {
    let store = TestStore::new();
    let mut batch = Numbers::new(&[1, 2, 3], S::Done);
    batch.fail_item = Some(2);
    let finished = Arc::clone(&batch.finished);
    let wf = Workflow::bare()
        .register(S::Crunch, batch)
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("b1");

    assert_eq!(wf.orchestrate(S::Crunch).await.unwrap(), S::Done);

    assert_eq!(
        *finished.lock().unwrap(),
        [vec![Ok(2), Err("item 2 failed".to_string()), Ok(6)]]
    );
    // A batch state is one ordinary row, under the batch's name.
    assert_eq!(
        store.audit("b1"),
        triples(&[(0, "Crunch", "numbers"), (1, "Done", "")])
    );
}

#[tokio::test]
async fn a_load_error_is_retried_by_the_task_config_re_running_load() {
    let recorder = Recorder::new();
    let mut batch = Numbers::new(&[1, 2, 3], S::Done);
    batch.load_failures = AtomicU32::new(2);
    batch.config = TaskConfig::minimal().with_fixed_retry(2, Duration::ZERO);
    let (loads, processed, finished) = (
        Arc::clone(&batch.loads),
        Arc::clone(&batch.processed),
        Arc::clone(&batch.finished),
    );
    let wf = Workflow::bare()
        .register(S::Crunch, batch)
        .add_exit_state(S::Done)
        .with_observer(recorder.clone());

    assert_eq!(wf.orchestrate(S::Crunch).await.unwrap(), S::Done);

    assert_eq!(loads.load(Ordering::SeqCst), 3);
    // Items run only after a successful load, once each.
    assert_eq!(processed.load(Ordering::SeqCst), 3);
    assert_eq!(*finished.lock().unwrap(), [vec![Ok(2), Ok(4), Ok(6)]]);
    assert_eq!(
        recorder.events_with("retry:"),
        ["retry:numbers:1", "retry:numbers:2"]
    );
}

#[tokio::test]
async fn a_load_error_that_outlasts_the_retries_fails_the_state_without_finish() {
    let mut batch = Numbers::new(&[1, 2, 3], S::Done);
    batch.load_failures = AtomicU32::new(u32::MAX);
    batch.config = TaskConfig::minimal().with_fixed_retry(2, Duration::ZERO);
    let (loads, finished) = (Arc::clone(&batch.loads), Arc::clone(&batch.finished));
    let wf = Workflow::bare()
        .register(S::Crunch, batch)
        .add_exit_state(S::Done);

    let err = wf.orchestrate(S::Crunch).await.unwrap_err();

    assert!(matches!(err, CanoError::RetryExhausted(_)), "{err:?}");
    assert!(err.message().contains("load failed"), "{err}");
    assert_eq!(loads.load(Ordering::SeqCst), 3);
    assert!(finished.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_batch_item_is_retried_only_for_errors_the_batch_says_are_worth_it() {
    // Retryable: item 2 gets all three attempts, and `finish` gets its last error.
    let batch = PickyBatch::new("busy", false);
    let (items, finished) = (Arc::clone(&batch.items), Arc::clone(&batch.finished));
    let wf = Workflow::bare()
        .register(S::Crunch, batch)
        .add_exit_state(S::Done);
    assert_eq!(wf.orchestrate(S::Crunch).await.unwrap(), S::Done);
    assert_eq!(*items.lock().unwrap(), [1, 2, 2, 2]);
    assert_eq!(
        *finished.lock().unwrap(),
        [vec![Ok(2), Err("busy".to_string())]]
    );

    // Not retryable: item 2 gets one attempt, and `finish` gets its error at once.
    let batch = PickyBatch::new("permanent: corrupt", false);
    let (items, finished) = (Arc::clone(&batch.items), Arc::clone(&batch.finished));
    let wf = Workflow::bare()
        .register(S::Crunch, batch)
        .add_exit_state(S::Done);
    let start = Instant::now();
    assert_eq!(wf.orchestrate(S::Crunch).await.unwrap(), S::Done);
    assert_eq!(start.elapsed(), Duration::ZERO, "no retry delay");
    assert_eq!(*items.lock().unwrap(), [1, 2]);
    assert_eq!(
        *finished.lock().unwrap(),
        [vec![Ok(2), Err("permanent: corrupt".to_string())]]
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_load_error_is_retried_only_when_the_batch_says_it_is_worth_it() {
    // Retryable: all three attempts of the batch, then `RetryExhausted`.
    let batch = PickyBatch::new("load timed out", true);
    let loads = Arc::clone(&batch.loads);
    let wf = Workflow::bare()
        .register(S::Crunch, batch)
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Crunch).await.unwrap_err();
    assert!(matches!(err, CanoError::RetryExhausted(_)), "{err:?}");
    assert_eq!(loads.load(Ordering::SeqCst), 3);

    // Not retryable: one attempt, and the error comes back as it is.
    let batch = PickyBatch::new("permanent: no such bucket", true);
    let (loads, finished) = (Arc::clone(&batch.loads), Arc::clone(&batch.finished));
    let wf = Workflow::bare()
        .register(S::Crunch, batch)
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Crunch).await.unwrap_err();
    assert_eq!(err, CanoError::task_execution("permanent: no such bucket"));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(finished.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Stepped, engine-driven
// ---------------------------------------------------------------------------------------

/// `Start` is a `register_stepped` counter to `target`, then `Complete`.
fn stepped(counter: Counter) -> Workflow<S> {
    Workflow::bare()
        .register_stepped(S::Start, counter)
        .add_exit_state(S::Complete)
}

#[tokio::test]
async fn register_stepped_without_a_store_runs_to_completion() {
    let calls = Calls::default();
    let wf = stepped(Counter::new(4, S::Complete, &calls));

    assert_eq!(wf.orchestrate(S::Start).await.unwrap(), S::Complete);
    assert_eq!(calls_of(&calls), [None, Some(1), Some(2), Some(3)]);
}

#[tokio::test]
async fn each_step_is_retried_with_the_same_cursor() {
    let (calls, recorder) = (Calls::default(), Recorder::new());
    let counter = Counter::new(4, S::Complete, &calls)
        .failing_once_from(2)
        .with_config(TaskConfig::minimal().with_fixed_retry(2, Duration::ZERO));
    let wf = stepped(counter).with_observer(recorder.clone());

    assert_eq!(wf.orchestrate(S::Start).await.unwrap(), S::Complete);

    // The failed step is called again with its own cursor; earlier steps are not redone.
    assert_eq!(calls_of(&calls), [None, Some(1), Some(2), Some(2), Some(3)]);
    let task_events: Vec<String> = recorder
        .events()
        .into_iter()
        .filter(|e| !e.starts_with("enter:"))
        .collect();
    assert_eq!(
        task_events,
        ["start:counter", "retry:counter:1", "success:counter"]
    );
}

#[tokio::test]
async fn a_step_that_outlasts_its_retries_fails_the_state() {
    let calls = Calls::default();
    // One attempt per step: the single failure is final.
    let wf = stepped(Counter::new(4, S::Complete, &calls).failing_once_from(1));

    let err = wf.orchestrate(S::Start).await.unwrap_err();

    assert_eq!(err.message(), "step from 1 failed");
    assert_eq!(calls_of(&calls), [None, Some(1)]);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_bounds_each_step_not_the_whole_loop() {
    let calls = Calls::default();
    let slow = || {
        Counter::new(5, S::Complete, &calls)
            .pausing(ms(15))
            .with_config(TaskConfig::minimal().with_attempt_timeout(ms(20)))
    };

    // Engine-driven: five 15 ms steps, each within its own 20 ms.
    assert_eq!(
        stepped(slow()).orchestrate(S::Start).await.unwrap(),
        S::Complete
    );
    assert_eq!(calls_of(&calls).len(), 5);

    // Through plain `register` the timeout bounds the whole in-memory loop.
    calls.lock().unwrap().clear();
    let wf = Workflow::bare()
        .register(S::Start, slow())
        .add_exit_state(S::Complete);
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert!(matches!(err, CanoError::Timeout(_)), "{err:?}");
    assert_eq!(calls_of(&calls), [None, Some(1)]);
}

#[tokio::test]
async fn a_stepped_task_finishing_with_a_split_is_a_workflow_error() {
    let wf = Workflow::bare()
        .register_stepped(S::Start, SplitStepper)
        .add_exit_state(S::Complete);

    let err = wf.orchestrate(S::Start).await.unwrap_err();

    assert!(matches!(err, CanoError::Workflow(_)), "{err:?}");
    assert!(err.message().contains("split"), "{err}");
}

#[tokio::test]
async fn every_cursor_is_checkpointed_as_json_before_the_next_step() {
    let (calls, store, recorder) = (Calls::default(), TestStore::new(), Recorder::new());
    let wf = stepped(Counter::new(4, S::Complete, &calls))
        .with_checkpoint_store(store.clone())
        .with_workflow_id("s1")
        .with_observer(recorder.clone());

    assert_eq!(wf.orchestrate(S::Start).await.unwrap(), S::Complete);

    assert_eq!(calls_of(&calls), [None, Some(1), Some(2), Some(3)]);
    assert_eq!(
        store.audit_rows("s1"),
        [
            CheckpointRow::new(0, "Start", "counter"),
            CheckpointRow::new(1, "Start", "counter").with_cursor(b"1".to_vec()),
            CheckpointRow::new(2, "Start", "counter").with_cursor(b"2".to_vec()),
            CheckpointRow::new(3, "Start", "counter").with_cursor(b"3".to_vec()),
            CheckpointRow::new(4, "Complete", ""),
        ]
    );
    for row in store.audit_rows("s1").iter().skip(1).take(3) {
        assert_eq!(row.kind, RowKind::StepCursor);
        let cursor: u32 = serde_json::from_slice(row.output_blob.as_deref().unwrap()).unwrap();
        assert_eq!(u64::from(cursor), row.sequence);
    }
    assert!(store.rows("s1").is_empty(), "success clears the log");
    assert_eq!(
        recorder.events_with("checkpoint:"),
        (0..5)
            .map(|n| format!("checkpoint:s1:{n}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_failing_cursor_append_fails_the_stepped_state() {
    let (calls, store, recorder) = (Calls::default(), TestStore::new(), Recorder::new());
    store.fail_append_at(2);
    let wf = stepped(Counter::new(4, S::Complete, &calls))
        .with_checkpoint_store(store.clone())
        .with_workflow_id("s2")
        .with_observer(recorder.clone());

    let err = wf.orchestrate(S::Start).await.unwrap_err();

    assert!(matches!(err, CanoError::CheckpointStore(_)), "{err:?}");
    assert!(
        err.message().starts_with("append step cursor checkpoint: "),
        "{err}"
    );
    assert!(err.message().contains("disk full"), "{err}");
    // The second cursor could not be recorded, so no step ran after it.
    assert_eq!(calls_of(&calls), [None, Some(1)]);
    assert_eq!(
        kinds(&store, "s2"),
        [
            kinded(0, "Start", "counter", RowKind::StateEntry),
            kinded(1, "Start", "counter", RowKind::StepCursor),
        ]
    );
    assert_eq!(store.rows("s2").len(), 2, "a failed run keeps its log");
    // The append error is the stepped task's outcome.
    assert_eq!(recorder.events().last().unwrap(), "failure:counter");
    assert_eq!(recorder.failures(), [err]);
}

/// Append `rows` to `id` as an earlier process would have.
async fn seed(store: &TestStore, id: &str, rows: Vec<CheckpointRow>) {
    for row in rows {
        store.append(id, row).await.unwrap();
    }
}

#[tokio::test]
async fn resume_continues_from_the_last_persisted_cursor() {
    let (calls, store) = (Calls::default(), TestStore::new());
    seed(
        &store,
        "s3",
        vec![
            CheckpointRow::new(0, "Start", "counter"),
            CheckpointRow::new(1, "Start", "counter").with_cursor(json(&1u32)),
            CheckpointRow::new(2, "Start", "counter").with_cursor(json(&2u32)),
        ],
    )
    .await;
    let wf = stepped(Counter::new(4, S::Complete, &calls)).with_checkpoint_store(store.clone());

    assert_eq!(wf.resume_from("s3").await.unwrap(), S::Complete);

    assert_eq!(calls_of(&calls), [Some(2), Some(3)]);
    // The re-entry is recorded as a cursor row carrying the resumed cursor (so a second
    // crash before the next step still resumes from it; COMPATIBILITY.md).
    assert_eq!(
        store.audit_rows("s3")[3..],
        [
            CheckpointRow::new(3, "Start", "counter").with_cursor(json(&2u32)),
            CheckpointRow::new(4, "Start", "counter").with_cursor(json(&3u32)),
            CheckpointRow::new(5, "Complete", ""),
        ]
    );
    assert!(store.rows("s3").is_empty());
}

#[tokio::test]
async fn a_second_resume_before_the_next_step_keeps_the_cursor() {
    let (calls, store) = (Calls::default(), TestStore::new());
    seed(
        &store,
        "s3b",
        vec![
            CheckpointRow::new(0, "Start", "counter"),
            CheckpointRow::new(1, "Start", "counter").with_cursor(json(&1u32)),
            CheckpointRow::new(2, "Start", "counter").with_cursor(json(&2u32)),
            // A first resume re-entered `Start` (recording its cursor), then died.
            CheckpointRow::new(3, "Start", "counter").with_cursor(json(&2u32)),
        ],
    )
    .await;
    let wf = stepped(Counter::new(4, S::Complete, &calls)).with_checkpoint_store(store.clone());

    assert_eq!(wf.resume_from("s3b").await.unwrap(), S::Complete);
    assert_eq!(calls_of(&calls), [Some(2), Some(3)]);
    assert!(store.rows("s3b").is_empty());
}

#[tokio::test]
async fn a_cursor_left_by_a_stepped_state_is_not_given_to_a_plain_task_that_replaced_it() {
    // The log was written while `Start` was a stepped state; the workflow now runs a
    // plain task there. Its re-entry row is a plain entry row: no cursor is carried on.
    let (log, store) = (Log::new(), TestStore::new());
    seed(
        &store,
        "s5",
        vec![
            CheckpointRow::new(0, "Start", "counter"),
            CheckpointRow::new(1, "Start", "counter").with_cursor(json(&1u32)),
        ],
    )
    .await;
    let wf = Workflow::bare()
        .register(S::Start, Node::new("start", S::Complete, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone());

    assert_eq!(wf.resume_from("s5").await.unwrap(), S::Complete);
    assert_eq!(log.entries(), ["start"]);
    assert_eq!(
        store.audit_rows("s5")[2..],
        [
            // A plain re-entry, marked as one (not a cursor row).
            CheckpointRow {
                output_blob: Some(br#"{"resumed":true}"#.to_vec()),
                ..CheckpointRow::new(2, "Start", "start")
            },
            CheckpointRow::new(3, "Complete", ""),
        ]
    );
    assert_eq!(store.audit_rows("s5")[2].kind, RowKind::StateEntry);
}

#[tokio::test]
async fn resume_from_an_entry_row_without_cursors_starts_from_none() {
    let (calls, store) = (Calls::default(), TestStore::new());
    store.seed("s4", &[(0, "Start", "counter")]);
    let wf = stepped(Counter::new(3, S::Complete, &calls)).with_checkpoint_store(store.clone());

    assert_eq!(wf.resume_from("s4").await.unwrap(), S::Complete);
    assert_eq!(calls_of(&calls), [None, Some(1), Some(2)]);
}

/// Stepped `A` (target 3) → `B` → back to `A` on B's first successful visit, then
/// `Done`. `B` fails while `crash` is set.
struct Bounce {
    visits: AtomicU32,
    crash: Arc<AtomicBool>,
}

#[task(state = S)]
impl Bounce {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("bounce")
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        if self.crash.load(Ordering::SeqCst) {
            return Err(CanoError::task_execution("bounce crashed"));
        }
        let first = self.visits.fetch_add(1, Ordering::SeqCst) == 0;
        Ok(TaskResult::Single(if first { S::A } else { S::Done }))
    }
}

fn bouncing(calls: &Calls, crash: &Arc<AtomicBool>, store: &Arc<TestStore>) -> Workflow<S> {
    Workflow::bare()
        .register_stepped(S::A, Counter::new(3, S::B, calls).named("a"))
        .register(
            S::B,
            Bounce {
                visits: AtomicU32::new(0),
                crash: Arc::clone(crash),
            },
        )
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("loop")
}

/// COMPATIBILITY.md, "Stepped cursor on resume": a cursor belongs to one visit of a state.
#[tokio::test]
async fn after_resume_re_entering_an_earlier_stepped_state_starts_from_none() {
    let (calls, store) = (Calls::default(), TestStore::new());
    let crash = Arc::new(AtomicBool::new(true));
    let wf = bouncing(&calls, &crash, &store);

    wf.orchestrate(S::A).await.unwrap_err();
    assert_eq!(calls_of(&calls), [None, Some(1), Some(2)]);
    assert_eq!(
        kinds(&store, "loop"),
        [
            kinded(0, "A", "a", RowKind::StateEntry),
            kinded(1, "A", "a", RowKind::StepCursor),
            kinded(2, "A", "a", RowKind::StepCursor),
            kinded(3, "B", "bounce", RowKind::StateEntry),
        ]
    );

    calls.lock().unwrap().clear();
    crash.store(false, Ordering::SeqCst);
    assert_eq!(wf.resume_from("loop").await.unwrap(), S::Done);

    // Resumed at B, which goes back to A: A's new visit starts over, not from the
    // stale cursor 2 of the crashed run's visit.
    assert_eq!(calls_of(&calls), [None, Some(1), Some(2)]);
    assert!(store.rows("loop").is_empty());
}

#[tokio::test]
async fn resume_into_a_revisit_before_its_first_cursor_starts_from_none() {
    let (calls, store) = (Calls::default(), TestStore::new());
    // The run crashed after entering A a second time, before A's first new cursor.
    seed(
        &store,
        "loop",
        vec![
            CheckpointRow::new(0, "A", "a"),
            CheckpointRow::new(1, "A", "a").with_cursor(json(&1u32)),
            CheckpointRow::new(2, "A", "a").with_cursor(json(&2u32)),
            CheckpointRow::new(3, "B", "bounce"),
            CheckpointRow::new(4, "A", "a"),
        ],
    )
    .await;
    let wf = bouncing(&calls, &Arc::default(), &store);

    // A re-runs from scratch, then B (first visit in this process) bounces back to A,
    // which again starts from scratch, then B finishes.
    assert_eq!(wf.resume_from("loop").await.unwrap(), S::Done);
    assert_eq!(
        calls_of(&calls),
        [None, Some(1), Some(2), None, Some(1), Some(2)]
    );
}

#[tokio::test]
async fn the_resume_cursor_feeds_only_the_first_visit_of_the_resumed_state() {
    let (calls, store) = (Calls::default(), TestStore::new());
    seed(
        &store,
        "loop",
        vec![
            CheckpointRow::new(0, "A", "a"),
            CheckpointRow::new(1, "A", "a").with_cursor(json(&1u32)),
        ],
    )
    .await;
    let wf = bouncing(&calls, &Arc::default(), &store);

    assert_eq!(wf.resume_from("loop").await.unwrap(), S::Done);
    assert_eq!(calls_of(&calls), [Some(1), Some(2), None, Some(1), Some(2)]);
}

// ---------------------------------------------------------------------------------------
// Stepped through plain `register`
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_stepped_task_registered_with_register_runs_in_memory_and_retries_from_none() {
    let (calls, store) = (Calls::default(), TestStore::new());
    let counter = Counter::new(4, S::Complete, &calls)
        .failing_once_from(2)
        .with_config(TaskConfig::minimal().with_fixed_retry(2, Duration::ZERO));
    let wf = Workflow::bare()
        .register(S::Start, counter)
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("m1");

    assert_eq!(wf.orchestrate(S::Start).await.unwrap(), S::Complete);

    // The retry re-runs the whole loop from `None`.
    assert_eq!(
        calls_of(&calls),
        [None, Some(1), Some(2), None, Some(1), Some(2), Some(3)]
    );
    // One ordinary entry row; no cursor rows.
    assert_eq!(
        kinds(&store, "m1"),
        [
            kinded(0, "Start", "counter", RowKind::StateEntry),
            kinded(1, "Complete", "", RowKind::StateEntry),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// All models in one run
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_chain_of_every_model_writes_dense_rows_and_none_for_the_router() {
    let (store, recorder) = (TestStore::new(), Recorder::new());
    let routed = Arc::new(AtomicU32::new(0));
    let polls = Arc::new(AtomicU32::new(0));
    let calls = Calls::default();
    let router = Route::to(S::Wait, &routed);
    assert_eq!(Task::config(&router).retry_mode.max_attempts(), 4);
    let wf = Workflow::bare()
        .register_router(S::Route, router)
        .register(
            S::Wait,
            Scripted::new(&[Answer::Pending(0), Answer::Ready], &polls, S::Crunch)
                .with_config(TaskConfig::minimal()),
        )
        .register(S::Crunch, Numbers::new(&[1, 2, 3, 4], S::Grind))
        .register_stepped(S::Grind, Counter::new(3, S::Done, &calls).named("grind"))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("chain")
        .with_observer(recorder.clone());

    assert_eq!(wf.orchestrate(S::Route).await.unwrap(), S::Done);

    let rows = store.audit_rows("chain");
    assert!(rows.iter().all(|r| r.state != "Route"), "{rows:?}");
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row.sequence, index as u64, "{rows:?}");
    }
    let entries: Vec<&str> = rows
        .iter()
        .filter(|r| r.kind == RowKind::StateEntry)
        .map(|r| r.state.as_str())
        .collect();
    assert_eq!(entries, ["Wait", "Crunch", "Grind", "Done"]);
    let cursors: Vec<&CheckpointRow> = rows
        .iter()
        .filter(|r| r.kind == RowKind::StepCursor)
        .collect();
    assert!(!cursors.is_empty());
    assert!(cursors.iter().all(|r| r.state == "Grind"), "{cursors:?}");
    assert!(
        rows.iter()
            .all(|r| r.kind != RowKind::CompensationCompletion)
    );
    assert!(store.rows("chain").is_empty());
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert_eq!(
        recorder.events_with("enter:"),
        [
            "enter:Route",
            "enter:Wait",
            "enter:Crunch",
            "enter:Grind",
            "enter:Done"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Bounded memory at scale
// ---------------------------------------------------------------------------------------

const MILLION: u64 = 1_000_000;

/// Sums `0..MILLION`, doubling each item, 64 at a time.
struct Million {
    total: Arc<AtomicU64>,
}

#[task::batch(state = S)]
impl Million {
    fn concurrency(&self) -> usize {
        64
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn load(&self, _res: &Resources) -> Result<Vec<u64>, CanoError> {
        Ok((0..MILLION).collect())
    }

    async fn process_item(&self, item: &u64) -> Result<u64, CanoError> {
        Ok(item * 2)
    }

    async fn finish(
        &self,
        _res: &Resources,
        outputs: Vec<Result<u64, CanoError>>,
    ) -> Result<TaskResult<S>, CanoError> {
        assert_eq!(outputs.len() as u64, MILLION);
        let total = outputs.into_iter().map(Result::unwrap).sum();
        self.total.store(total, Ordering::SeqCst);
        Ok(TaskResult::Single(S::Done))
    }
}

/// Counts to `MILLION` one step at a time.
struct MillionSteps {
    steps: Arc<AtomicU64>,
}

#[task::stepped(state = S)]
impl MillionSteps {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u64>,
    ) -> Result<StepOutcome<u64, S>, CanoError> {
        self.steps.fetch_add(1, Ordering::Relaxed);
        let n = cursor.unwrap_or(0) + 1;
        Ok(if n >= MILLION {
            StepOutcome::Done(TaskResult::Single(S::Done))
        } else {
            StepOutcome::More(n)
        })
    }
}

#[tokio::test]
async fn a_million_item_batch_completes() {
    let total = Arc::new(AtomicU64::new(0));
    let wf = Workflow::bare()
        .register(
            S::Crunch,
            Million {
                total: Arc::clone(&total),
            },
        )
        .add_exit_state(S::Done);

    let start = std::time::Instant::now();
    assert_eq!(wf.orchestrate(S::Crunch).await.unwrap(), S::Done);
    eprintln!("1M-item batch: {:?}", start.elapsed());
    assert_eq!(total.load(Ordering::SeqCst), MILLION * (MILLION - 1));
}

#[tokio::test]
async fn a_million_step_stepped_task_completes() {
    let steps = Arc::new(AtomicU64::new(0));
    let wf = Workflow::bare()
        .register_stepped(
            S::Grind,
            MillionSteps {
                steps: Arc::clone(&steps),
            },
        )
        .add_exit_state(S::Done);

    let start = std::time::Instant::now();
    assert_eq!(wf.orchestrate(S::Grind).await.unwrap(), S::Done);
    eprintln!("1M-step stepped task: {:?}", start.elapsed());
    assert_eq!(steps.load(Ordering::SeqCst), MILLION);
}

/// A stepped task that says which step errors are worth another attempt.
struct Pages {
    calls: Arc<std::sync::Mutex<Vec<String>>>,
}

#[task::stepped(state = u8)]
impl Pages {
    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_fixed_retry(5, std::time::Duration::ZERO)
    }
    fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
        !error.message().contains("gone")
    }
    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, u8>, CanoError> {
        let page = cursor.unwrap_or(0);
        let mut calls = self.calls.lock().unwrap();
        calls.push(format!("page {page}"));
        let tries = calls
            .iter()
            .filter(|c| **c == format!("page {page}"))
            .count();
        match page {
            // Page 1 fails twice with a transient error, then succeeds.
            1 if tries <= 2 => Err(CanoError::task_execution("503 busy")),
            // Page 2 is gone for good.
            2 => Err(CanoError::task_execution("page 2 gone")),
            _ => Ok(StepOutcome::More(page + 1)),
        }
    }
}

#[tokio::test]
async fn a_stepped_task_retries_only_the_errors_it_says_are_worth_it() {
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let wf = Workflow::bare()
        .register_stepped(
            0u8,
            Pages {
                calls: calls.clone(),
            },
        )
        .add_exit_state(1u8);
    let err = wf.orchestrate(0).await.unwrap_err();
    assert_eq!(err.message(), "page 2 gone", "not wrapped: not retried");
    assert_eq!(
        *calls.lock().unwrap(),
        ["page 0", "page 1", "page 1", "page 1", "page 2"]
    );
}
