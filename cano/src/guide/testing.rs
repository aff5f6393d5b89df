//! Testing your workflows: a paused clock, in-memory stores, observers as probes.
//!
//! cano's own test suite (`cano/tests/`) uses every technique below; its
//! `tests/support/mod.rs` has a ready-made recording observer and resource probes.
//!
//! # Test the pieces first
//!
//! A task is an ordinary value: call it without a workflow. `#[task]` implements
//! [`Task`](crate::Task), so `run` (or `run_bare`) is a method you can await with
//! resources you build in the test:
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Parse, Store, Done }
//!
//! struct Parse;
//!
//! #[task(state = Step)]
//! impl Parse {
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
//!         let store = res.get::<MemoryStore, _>("store")?;
//!         let raw: String = store.get("raw")?;
//!         let n: u32 = raw.trim().parse().map_err(|e| CanoError::task_execution(format!("{raw:?}: {e}")))?;
//!         store.put("n", n)?;
//!         Ok(TaskResult::Single(Step::Store))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let store = MemoryStore::new();
//! store.put("raw", String::from(" 42\n"))?;
//! let res: Resources = Resources::new().insert("store", store.clone());
//!
//! assert_eq!(Parse.run(&res).await?, TaskResult::Single(Step::Store));
//! assert_eq!(store.get::<u32>("n")?, 42);
//!
//! store.put("raw", String::from("forty-two"))?;
//! let err = Parse.run(&res).await.unwrap_err();
//! assert_eq!(err.category(), "task_execution");
//! # Ok(())
//! # }
//! ```
//!
//! A workflow's structure can be checked without running it:
//! [`validate`](crate::Workflow::validate) and
//! [`validate_initial_state`](crate::Workflow::validate_initial_state) return the same
//! `Configuration` errors `orchestrate` would (no exit state, a bad join configuration,
//! an unknown initial state). One assertion per workflow constructor catches them in CI.
//!
//! Assert on errors by variant or [`category`](crate::CanoError::category), and on the
//! raw [`message`](crate::CanoError::message); the `Display` text adds prefixes and, after
//! retries, a `Retry exhausted: Task failed after N attempt(s): …` wrapper.
//!
//! # A paused clock
//!
//! Retry delays, attempt timeouts, poll delays, split and workflow timeouts, and the
//! scheduler's intervals, cron ticks and backoff windows all wait on Tokio's clock. Start
//! the test runtime with the clock paused and Tokio jumps over every wait as soon as
//! nothing else can run: a test of a four-attempt backoff, a one-hour interval or a daily
//! cron flow finishes in milliseconds, and does not become flaky on a slow CI machine.
//! It needs Tokio's `test-util` feature in your dev-dependencies:
//!
//! ```toml
//! [dev-dependencies]
//! tokio = { version = "1", features = ["macros", "rt", "test-util"] }
//! ```
//!
//! and the attribute `#[tokio::test(start_paused = true)]` on the test. Its body, for
//! a task that always fails under the default retry policy:
//!
//! ```
//! use cano::prelude::*;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Call, Done }
//!
//! struct Down;
//!
//! #[task(state = Step)]
//! impl Down {
//!     // No `config`: the default, four attempts with exponential backoff.
//!     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
//!         Err(CanoError::task_execution("connection refused"))
//!     }
//! }
//!
//! // #[tokio::test(start_paused = true)]
//! async fn gives_up_after_four_attempts() {
//!     let workflow = Workflow::bare().register(Step::Call, Down).add_exit_state(Step::Done);
//!
//!     let started = tokio::time::Instant::now();
//!     let err = workflow.orchestrate(Step::Call).await.unwrap_err();
//!
//!     assert!(matches!(err, CanoError::RetryExhausted(_)));
//!     assert!(err.message().starts_with("Task failed after 4 attempt(s)"));
//!     // About 100 + 200 + 400 ms of backoff, in virtual time: the test took no real time.
//!     assert!(started.elapsed() >= Duration::from_millis(600));
//! }
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() { gives_up_after_four_attempts().await }
//! ```
//!
//! Two things do not follow the paused clock: a [circuit breaker](super::circuit_breakers)
//! measures its `reset_timeout` on the real clock (`std::time::Instant`), so give breakers
//! in tests a short reset timeout and wait for it for real; and disk work (a
//! `RedbCheckpointStore` on a temporary file) takes real time, which a paused clock does
//! not mind.
//!
//! # In-memory stores
//!
//! * Data: a [`MemoryStore`](crate::MemoryStore) resource. Keep a clone in the test —
//!   clones share their contents — and inspect what the tasks wrote after the run.
//! * Outside services: a small resource with counters or a scripted list of answers (fail
//!   twice, then succeed) instead of the real client; count calls to check how often a
//!   step ran.
//! * Checkpoints: an in-memory [`CheckpointStore`](crate::CheckpointStore) (a
//!   `Mutex<HashMap<String, Vec<CheckpointRow>>>` under `#[checkpoint_store]`; see the
//!   [`recovery`](crate::recovery) module) lets a test read the log after a failed run,
//!   check its rows, and call `resume_from`. Make its `append` reject a duplicate
//!   sequence, as the real stores do, or the test will miss id collisions.
//!
//! To test what happens after a crash at a precise point, make the store's `append` fail
//! on a chosen call: the run stops there, before the next task runs, with the log as a
//! crash at that moment would leave it; then resume with a working store. For a real
//! crash, cano's own tests and the `crash_resume` example start a child process on a redb
//! file, kill it with SIGKILL and resume from the file.
//!
//! # Observers as probes
//!
//! An observer that records every event as a string turns "what happened, in which
//! order" into one assertion:
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Default)]
//! struct Recorder(Mutex<Vec<String>>);
//!
//! impl Recorder {
//!     fn events(&self) -> Vec<String> {
//!         self.0.lock().unwrap().clone()
//!     }
//! }
//!
//! impl WorkflowObserver for Recorder {
//!     fn on_state_enter(&self, state: &str) {
//!         self.0.lock().unwrap().push(format!("enter {state}"));
//!     }
//!     fn on_retry(&self, task: &str, attempt: u32) {
//!         self.0.lock().unwrap().push(format!("retry {task} {attempt}"));
//!     }
//!     fn on_task_failure(&self, task: &str, err: &CanoError) {
//!         self.0.lock().unwrap().push(format!("failed {task}: {}", err.message()));
//!     }
//! }
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Fetch, Done }
//!
//! struct Fetch;
//!
//! #[task(state = Step)]
//! impl Fetch {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::new().with_fixed_retry(1, std::time::Duration::ZERO)
//!     }
//!     fn name(&self) -> std::borrow::Cow<'static, str> {
//!         "fetch".into()
//!     }
//!     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
//!         Err(CanoError::task_execution("404"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let recorder = Arc::new(Recorder::default());
//! let workflow = Workflow::bare()
//!     .register(Step::Fetch, Fetch)
//!     .add_exit_state(Step::Done)
//!     .with_observer(recorder.clone());
//!
//! workflow.orchestrate(Step::Fetch).await.unwrap_err();
//! assert_eq!(
//!     recorder.events(),
//!     [
//!         "enter Fetch",
//!         "retry fetch 1",
//!         "failed fetch: Task failed after 2 attempt(s): Task execution error: 404",
//!     ]
//! );
//! # }
//! ```
//!
//! Give tasks a short `name()` so the expected events stay readable. The same recorder
//! can log `on_checkpoint` and `on_resume` to check which rows a run wrote and where a
//! resume started.
//!
//! # The testing kit (feature `testing`)
//!
//! [`cano::testing`](crate::testing) packages these probes: a
//! [`RecordingObserver`](crate::testing::RecordingObserver) with assertions on the path
//! (`assert_path`, or `check_path` that returns where the path went another way), the
//! outcome (`assert_completed_with`), the states no run entered
//! (`assert_registered_states_entered`, which returns the dead states instead of
//! panicking) and the compensations (`assert_compensated`); the in-memory store under the
//! name `InMemoryCheckpointStore`; a [`TestResources`](crate::testing::TestResources)
//! builder; and [`panic_on_attempt`](crate::testing::panic_on_attempt), a task that fails,
//! then panics on a chosen attempt, then succeeds — to test that a panic fails the state
//! at once (it is not retried) and that a resume runs the next attempt. The example
//! `testing_kit` (`cargo run -p cano --example testing_kit --features testing`) uses each
//! of them on a saga.
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use cano::prelude::*;
//! use cano::testing::RecordingObserver;
//! use std::sync::Arc;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Parse, Retry, Done }
//! struct Parse;
//! #[task(state = Step)]
//! impl Parse {
//!     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> { Ok(TaskResult::Single(Step::Done)) }
//! }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let recorder = Arc::new(RecordingObserver::new());
//! let wf = Workflow::bare()
//!     .register(Step::Parse, Parse)
//!     .register(Step::Retry, Parse)
//!     .add_exit_state(Step::Done)
//!     .with_observer(recorder.clone());
//! wf.orchestrate(Step::Parse).await.unwrap();
//! recorder.assert_path(&["Parse", "Done"]);
//! assert_eq!(recorder.assert_registered_states_entered(&wf), Err(vec!["Retry".to_string()]));
//! # });
//! # }
//! ```
//!
//! # Scheduler tests
//!
//! With the paused clock, a scheduler test can let minutes of schedule pass with
//! `tokio::time::sleep` and then read `status(id)`/`list()`: run counts, streaks and
//! backoff windows follow the virtual time (timestamps too: the scheduler's notion of
//! "now" moves with the paused clock). Call `stop()` at the end of each test, or the
//! resources of the flows are never torn down.
