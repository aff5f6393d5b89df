//! `#[task::router]`, `#[task::poll]`, `#[task::batch]` and `#[task::stepped]`: every surface
//! form compiles (warning-free: this file denies warnings and clippy's default groups), the
//! companion `Task` impl forwards `config`/`name` and runs the model, inherent forms get the
//! model's defaults and inferred associated types, and the runners behave as specified.
#![deny(warnings, missing_docs, unused, rust_2018_idioms, unreachable_code)]
#![deny(clippy::all)]

use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Start,
    Left,
    Right,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Store,
}

/// Resources holding a store under `"store"`.
fn resources() -> (MemoryStore, Resources) {
    let store = MemoryStore::new();
    (store.clone(), Resources::new().insert("store", store))
}

/// Resources holding a store under `Key::Store`.
fn keyed_resources() -> (MemoryStore, Resources<Key>) {
    let store = MemoryStore::new();
    (store.clone(), Resources::new().insert(Key::Store, store))
}

/// Runs `task` through its `Task` impl.
async fn run_task<T: Task<Step>>(task: &T) -> Result<TaskResult<Step>, CanoError> {
    task.run(&Resources::new()).await
}

fn assert_task<S, K, T>(_: &T)
where
    S: Clone + fmt::Debug + Send + Sync + 'static,
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    T: Task<S, K>,
{
}

fn is_done(result: Result<TaskResult<Step>, CanoError>) -> bool {
    matches!(result, Ok(TaskResult::Single(Step::Done)))
}

/// Ends the workflow.
struct Finish;

#[task(state = Step)]
impl Finish {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

/// Public items, so `missing_docs` sees what the attributes generate for them.
pub mod api {
    use cano::prelude::*;

    /// A router.
    pub struct PublicRouter;

    #[task::router(state = u8)]
    impl PublicRouter {
        /// Routes to 1.
        pub async fn route(&self, _res: &Resources) -> Result<TaskResult<u8>, CanoError> {
            Ok(TaskResult::Single(1))
        }
    }

    /// A stepped task.
    pub struct PublicStepped;

    #[task::stepped(state = u8)]
    impl PublicStepped {
        /// One step.
        pub async fn step(
            &self,
            _res: &Resources,
            _cursor: Option<u8>,
        ) -> Result<cano::StepOutcome<u8, u8>, CanoError> {
            Ok(cano::StepOutcome::Done(TaskResult::Single(1)))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Trait definitions: the attributes rewrite user traits like `#[task]` does (their
// trait-impl form needs a model trait header, so the impls use `#[task]`)
// ---------------------------------------------------------------------------------------

#[task::router]
trait Describe: Send + Sync {
    async fn describe(&self, prefix: &str) -> String;
}

#[task::poll]
trait Probe: Send + Sync {
    async fn probe(&self) -> bool {
        true
    }
}

#[task::batch]
trait Sum: Send + Sync {
    async fn sum(&self, items: &[u32]) -> u32;
}

#[task::stepped]
trait Advance: Send + Sync {
    async fn advance(&mut self, by: u32) -> u32;
}

struct Thing(u32);

#[task]
impl Describe for Thing {
    async fn describe(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.0)
    }
}

#[task]
impl Probe for Thing {}

#[task]
impl Sum for Thing {
    async fn sum(&self, items: &[u32]) -> u32 {
        items.iter().sum::<u32>() + self.0
    }
}

#[task]
impl Advance for Thing {
    async fn advance(&mut self, by: u32) -> u32 {
        self.0 += by;
        self.0
    }
}

#[tokio::test]
async fn model_attributes_rewrite_user_traits() {
    let mut thing = Thing(1);
    assert_eq!(thing.describe("n=").await, "n=1");
    assert!(thing.probe().await);
    assert_eq!(thing.sum(&[2, 3]).await, 6);
    assert_eq!(thing.advance(4).await, 5);
    let describe: &dyn Describe = &thing;
    assert_eq!(describe.describe("#").await, "#5");
}

// ---------------------------------------------------------------------------------------
// Router
// ---------------------------------------------------------------------------------------

/// Routes on the `n` value in the store.
struct ByValue;

#[task::router(state = Step)]
impl ByValue {
    async fn route(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        let n = res.get::<MemoryStore, _>("store")?.get::<u32>("n")?;
        Ok(TaskResult::Single(if n > 10 {
            Step::Right
        } else {
            Step::Left
        }))
    }
}

/// Overrides `config` and `name`, and splits.
struct CustomRouter;

#[task::router(state = Step)]
impl CustomRouter {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        "my-custom-router".into()
    }

    async fn route(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Split(vec![Step::Left, Step::Right]))
    }
}

#[tokio::test]
async fn router_routes_directly_and_through_task() {
    let (store, res) = resources();
    store.put("n", 3u32).unwrap();
    assert_eq!(
        RouterTask::route(&ByValue, &res).await.unwrap(),
        TaskResult::Single(Step::Left)
    );
    assert_eq!(
        Task::run(&ByValue, &res).await.unwrap(),
        TaskResult::Single(Step::Left)
    );
    store.put("n", 30u32).unwrap();
    assert_eq!(
        Task::run(&ByValue, &res).await.unwrap(),
        TaskResult::Single(Step::Right)
    );
    let object: Arc<dyn Task<Step>> = Arc::new(ByValue);
    assert_eq!(
        object.run(&res).await.unwrap(),
        TaskResult::Single(Step::Right)
    );
    // A resource error from `route` comes back unchanged.
    let err = Task::run(&ByValue, &Resources::new()).await.unwrap_err();
    assert!(matches!(err, CanoError::ResourceNotFound(_)), "{err:?}");
}

#[tokio::test]
async fn router_defaults_and_overrides_reach_the_companion() {
    assert_eq!(
        RouterTask::<Step>::config(&ByValue)
            .retry_mode
            .max_attempts(),
        4
    );
    assert_eq!(Task::config(&ByValue).retry_mode.max_attempts(), 4);
    assert!(RouterTask::<Step>::name(&ByValue).contains("ByValue"));
    assert_eq!(Task::name(&ByValue), RouterTask::<Step>::name(&ByValue));

    assert_eq!(Task::config(&CustomRouter).retry_mode.max_attempts(), 1);
    assert_eq!(Task::name(&CustomRouter), "my-custom-router");
    assert_eq!(RouterTask::<Step>::name(&CustomRouter), "my-custom-router");
    // A split result passes through `Task::run` unchanged.
    assert_eq!(
        run_task(&CustomRouter).await.unwrap(),
        TaskResult::Split(vec![Step::Left, Step::Right])
    );
}

#[tokio::test]
async fn router_in_a_workflow() {
    let (store, res) = resources();
    store.put("n", 30u32).unwrap();
    let workflow = Workflow::new(res)
        .register(Step::Start, ByValue)
        .register(Step::Left, Finish)
        .register(Step::Right, Finish)
        .add_exit_state(Step::Done);
    assert_eq!(workflow.orchestrate(Step::Start).await.unwrap(), Step::Done);
}

/// Reads an enum-keyed resource.
struct KeyedRouter;

#[task::router(state = Step, key = Key)]
impl KeyedRouter {
    async fn route(&self, res: &Resources<Key>) -> Result<TaskResult<Step>, CanoError> {
        let n = res.get::<MemoryStore, _>(&Key::Store)?.get::<u32>("n")?;
        Ok(TaskResult::Single(if n == 0 {
            Step::Left
        } else {
            Step::Done
        }))
    }
}

/// The trait-impl form with a key.
struct KeyedHeaderRouter;

#[task::router]
impl RouterTask<Step, Key> for KeyedHeaderRouter {
    async fn route(&self, res: &Resources<Key>) -> Result<TaskResult<Step>, CanoError> {
        res.get::<MemoryStore, _>(&Key::Store)?;
        Ok(TaskResult::Single(Step::Done))
    }
}

#[tokio::test]
async fn router_with_enum_keys() {
    let (store, res) = keyed_resources();
    store.put("n", 1u32).unwrap();
    assert_task::<Step, Key, _>(&KeyedRouter);
    assert_eq!(
        Task::run(&KeyedRouter, &res).await.unwrap(),
        TaskResult::Single(Step::Done)
    );
    assert_eq!(
        Task::run(&KeyedHeaderRouter, &res).await.unwrap(),
        TaskResult::Single(Step::Done)
    );
    let workflow = Workflow::new(keyed_resources().1)
        .register(Step::Start, KeyedHeaderRouter)
        .add_exit_state(Step::Done);
    assert_eq!(workflow.orchestrate(Step::Start).await.unwrap(), Step::Done);
}

/// Generic over the state: routes to a fixed state.
struct Always<S>(S);

#[task::router]
impl<S> RouterTask<S> for Always<S>
where
    S: Clone + fmt::Debug + Send + Sync + 'static,
{
    async fn route(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(self.0.clone()))
    }
}

/// A generic inherent form with a where-clause.
struct Computed<F>(F);

#[task::router(state = Step)]
impl<F> Computed<F>
where
    F: Fn() -> Step + Send + Sync + 'static,
{
    async fn route(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single((self.0)()))
    }
}

#[tokio::test]
async fn router_generic_impls() {
    assert!(is_done(run_task(&Always(Step::Done)).await));
    let on_numbers: &dyn Task<u32> = &Always(7u32);
    assert_eq!(
        on_numbers.run(&Resources::new()).await.unwrap(),
        TaskResult::Single(7)
    );
    assert!(is_done(run_task(&Computed(|| Step::Done)).await));
    assert_eq!(
        RouterTask::<Step>::config(&Computed(|| Step::Left))
            .retry_mode
            .max_attempts(),
        4
    );
}

// ---------------------------------------------------------------------------------------
// Every header spelling of the trait-impl forms, inside submodules
// ---------------------------------------------------------------------------------------

mod bare_headers {
    //! Bare trait names: the companion's bare names come from the prelude.
    use super::Step;
    use cano::prelude::*;

    pub(crate) struct Router;

    #[task::router]
    impl RouterTask<Step> for Router {
        async fn route(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
            Ok(TaskResult::Single(Step::Done))
        }
    }

    pub(crate) struct Poller;

    #[task::poll]
    impl PollTask<Step> for Poller {
        fn config(&self) -> TaskConfig {
            TaskConfig::default()
        }

        async fn poll(&self, _res: &Resources) -> Result<PollOutcome<Step>, CanoError> {
            Ok(PollOutcome::Ready(TaskResult::Single(Step::Done)))
        }
    }

    pub(crate) struct Stepper;

    #[task::stepped]
    impl SteppedTask<Step> for Stepper {
        type Cursor = u8;

        fn name(&self) -> std::borrow::Cow<'static, str> {
            "bare-stepper".into()
        }

        async fn step(
            &self,
            _res: &Resources,
            cursor: Option<u8>,
        ) -> Result<StepOutcome<u8, Step>, CanoError> {
            Ok(match cursor {
                None => StepOutcome::More(1),
                Some(_) => StepOutcome::Done(TaskResult::Single(Step::Done)),
            })
        }
    }
}

mod crate_headers {
    //! `cano::XTask<S>` headers, with nothing imported.
    use super::Step;

    pub(crate) struct Router;

    #[cano::task::router]
    impl cano::RouterTask<Step> for Router {
        async fn route(
            &self,
            _res: &cano::Resources,
        ) -> Result<cano::TaskResult<Step>, cano::CanoError> {
            Ok(cano::TaskResult::Single(Step::Done))
        }
    }

    pub(crate) struct Poller;

    #[cano::task::poll]
    impl cano::PollTask<Step> for Poller {
        async fn poll(
            &self,
            _res: &cano::Resources,
        ) -> Result<cano::PollOutcome<Step>, cano::CanoError> {
            Ok(cano::PollOutcome::Ready(cano::TaskResult::Single(
                Step::Done,
            )))
        }
    }

    pub(crate) struct Stepper;

    #[cano::task::stepped]
    impl cano::SteppedTask<Step> for Stepper {
        type Cursor = ();

        async fn step(
            &self,
            _res: &cano::Resources,
            _cursor: Option<()>,
        ) -> Result<cano::StepOutcome<(), Step>, cano::CanoError> {
            Ok(cano::StepOutcome::Done(cano::TaskResult::Single(
                Step::Done,
            )))
        }
    }
}

mod absolute_headers {
    //! `::cano::XTask<S, K>` headers, with nothing imported.
    use super::{Key, Step};

    pub(crate) struct Router;

    #[::cano::task::router]
    impl ::cano::RouterTask<Step, Key> for Router {
        async fn route(
            &self,
            _res: &::cano::Resources<Key>,
        ) -> Result<::cano::TaskResult<Step>, ::cano::CanoError> {
            Ok(::cano::TaskResult::Single(Step::Done))
        }
    }

    pub(crate) struct Poller;

    #[::cano::task::poll]
    impl ::cano::PollTask<Step, Key> for Poller {
        async fn poll(
            &self,
            _res: &::cano::Resources<Key>,
        ) -> Result<::cano::PollOutcome<Step>, ::cano::CanoError> {
            Ok(::cano::PollOutcome::Ready(::cano::TaskResult::Single(
                Step::Done,
            )))
        }
    }

    pub(crate) struct Stepper;

    #[::cano::task::stepped]
    impl ::cano::SteppedTask<Step, Key> for Stepper {
        type Cursor = u8;

        async fn step(
            &self,
            _res: &::cano::Resources<Key>,
            _cursor: Option<u8>,
        ) -> ::cano::CanoResult<::cano::StepOutcome<u8, Step>> {
            Ok(::cano::StepOutcome::Done(::cano::TaskResult::Single(
                Step::Done,
            )))
        }
    }
}

#[tokio::test]
async fn trait_impl_forms_under_every_prefix() {
    assert!(is_done(run_task(&bare_headers::Router).await));
    assert!(is_done(run_task(&bare_headers::Poller).await));
    assert!(is_done(run_task(&bare_headers::Stepper).await));
    assert!(is_done(run_task(&crate_headers::Router).await));
    assert!(is_done(run_task(&crate_headers::Poller).await));
    assert!(is_done(run_task(&crate_headers::Stepper).await));

    let res = keyed_resources().1;
    let keyed: [&dyn Task<Step, Key>; 3] = [
        &absolute_headers::Router,
        &absolute_headers::Poller,
        &absolute_headers::Stepper,
    ];
    for task in keyed {
        assert!(is_done(task.run(&res).await));
    }

    // The companions forward the trait impls' own `config`/`name` (or the traits' defaults).
    assert_eq!(
        Task::config(&bare_headers::Poller)
            .retry_mode
            .max_attempts(),
        4
    );
    assert_eq!(
        Task::config(&crate_headers::Poller)
            .retry_mode
            .max_attempts(),
        1
    );
    assert_eq!(Task::name(&bare_headers::Stepper), "bare-stepper");
}

// ---------------------------------------------------------------------------------------
// Poll
// ---------------------------------------------------------------------------------------

/// Ready on call number `ready_at`, pending before.
struct Countdown {
    ready_at: u32,
    calls: AtomicU32,
}

impl Countdown {
    fn new(ready_at: u32) -> Self {
        Self {
            ready_at,
            calls: AtomicU32::new(0),
        }
    }
}

#[task::poll(state = Step)]
impl Countdown {
    async fn poll(&self, _res: &Resources) -> Result<PollOutcome<Step>, CanoError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(if call >= self.ready_at {
            PollOutcome::Ready(TaskResult::Single(Step::Done))
        } else {
            PollOutcome::Pending { delay_ms: 5 }
        })
    }
}

/// Plays a script of poll results, with a configurable error policy.
struct Scripted {
    script: Mutex<VecDeque<Result<PollOutcome<Step>, CanoError>>>,
    policy: PollErrorPolicy,
    calls: AtomicU32,
}

impl Scripted {
    fn new(
        policy: PollErrorPolicy,
        script: impl IntoIterator<Item = Result<PollOutcome<Step>, CanoError>>,
    ) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            policy,
            calls: AtomicU32::new(0),
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[task::poll(state = Step)]
impl Scripted {
    fn on_poll_error(&self) -> PollErrorPolicy {
        self.policy.clone()
    }

    async fn poll(&self, _res: &Resources) -> Result<PollOutcome<Step>, CanoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| Err(CanoError::generic("script exhausted")))
    }
}

fn ready() -> Result<PollOutcome<Step>, CanoError> {
    Ok(PollOutcome::Ready(TaskResult::Single(Step::Done)))
}

fn pending() -> Result<PollOutcome<Step>, CanoError> {
    Ok(PollOutcome::Pending { delay_ms: 0 })
}

fn failure(message: &str) -> Result<PollOutcome<Step>, CanoError> {
    Err(CanoError::task_execution(message))
}

#[tokio::test(start_paused = true)]
async fn poll_until_ready() {
    let first = Countdown::new(1);
    assert!(is_done(run_task(&first).await));
    assert_eq!(first.calls.load(Ordering::SeqCst), 1);

    let third = Countdown::new(3);
    let started = tokio::time::Instant::now();
    assert!(is_done(run_task(&third).await));
    assert_eq!(third.calls.load(Ordering::SeqCst), 3);
    // Two pending polls of 5 ms each.
    assert!(started.elapsed() >= Duration::from_millis(10));

    // `poll` itself is a single call.
    let direct = Countdown::new(2);
    assert_eq!(
        PollTask::poll(&direct, &Resources::new()).await.unwrap(),
        PollOutcome::Pending { delay_ms: 5 }
    );
}

#[tokio::test]
async fn poll_defaults_and_forwarded_overrides() {
    let countdown = Countdown::new(1);
    assert_eq!(
        PollTask::<Step>::config(&countdown)
            .retry_mode
            .max_attempts(),
        1
    );
    assert_eq!(Task::config(&countdown).retry_mode.max_attempts(), 1);
    assert!(Task::config(&countdown).attempt_timeout.is_none());
    assert!(Task::name(&countdown).contains("Countdown"));
    assert_eq!(
        PollTask::<Step>::on_poll_error(&countdown),
        PollErrorPolicy::FailFast
    );

    let scripted = Scripted::new(PollErrorPolicy::RetryOnError { max_errors: 2 }, []);
    assert_eq!(
        PollTask::<Step>::on_poll_error(&scripted),
        PollErrorPolicy::RetryOnError { max_errors: 2 }
    );
}

#[tokio::test]
async fn poll_fail_fast_returns_the_error_unchanged() {
    let poller = Scripted::new(PollErrorPolicy::FailFast, [failure("boom"), ready()]);
    let err = run_task(&poller).await.unwrap_err();
    assert_eq!(err, CanoError::task_execution("boom"));
    assert_eq!(poller.calls(), 1);
}

#[tokio::test]
async fn poll_retry_on_error_budget() {
    let retry = |max_errors| PollErrorPolicy::RetryOnError { max_errors };

    // Two errors fit a budget of two.
    let poller = Scripted::new(retry(2), [failure("e1"), failure("e2"), ready()]);
    assert!(is_done(run_task(&poller).await));
    assert_eq!(poller.calls(), 3);

    // A third consecutive error exceeds it; the latest error is returned.
    let poller = Scripted::new(
        retry(2),
        [failure("e1"), failure("e2"), failure("e3"), ready()],
    );
    assert_eq!(
        run_task(&poller).await.unwrap_err(),
        CanoError::task_execution("e3")
    );
    assert_eq!(poller.calls(), 3);

    // `Pending` resets the count.
    let poller = Scripted::new(retry(1), [failure("e1"), pending(), failure("e2"), ready()]);
    assert!(is_done(run_task(&poller).await));
    assert_eq!(poller.calls(), 4);

    // A budget of zero fails at the first error.
    let poller = Scripted::new(retry(0), [failure("e1"), ready()]);
    assert_eq!(
        run_task(&poller).await.unwrap_err(),
        CanoError::task_execution("e1")
    );
    assert_eq!(poller.calls(), 1);
}

#[tokio::test]
async fn poll_split_passes_through_and_runner_takes_dyn() {
    let split = Scripted::new(
        PollErrorPolicy::FailFast,
        [Ok(PollOutcome::Ready(TaskResult::Split(vec![
            Step::Left,
            Step::Right,
        ])))],
    );
    assert_eq!(
        run_task(&split).await.unwrap(),
        TaskResult::Split(vec![Step::Left, Step::Right])
    );

    let countdown = Countdown::new(2);
    let object: &dyn PollTask<Step> = &countdown;
    assert!(is_done(
        cano::run_poll_loop(object, &Resources::new()).await
    ));
    let shared: Arc<dyn Task<Step>> = Arc::new(Countdown::new(1));
    assert!(is_done(shared.run(&Resources::new()).await));
}

/// Never ready; bounded only by its attempt timeout.
struct NeverReady;

#[task::poll(state = Step)]
impl NeverReady {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal().with_attempt_timeout(Duration::from_millis(20))
    }

    async fn poll(&self, _res: &Resources) -> Result<PollOutcome<Step>, CanoError> {
        Ok(PollOutcome::Pending { delay_ms: 1 })
    }
}

#[tokio::test(start_paused = true)]
async fn poll_loop_is_bounded_by_the_attempt_timeout() {
    let workflow = Workflow::bare()
        .register(Step::Start, NeverReady)
        .add_exit_state(Step::Done);
    let started = tokio::time::Instant::now();
    let err = workflow.orchestrate(Step::Start).await.unwrap_err();
    assert!(matches!(err, CanoError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn poll_in_a_workflow() {
    let workflow = Workflow::bare()
        .register(Step::Start, Countdown::new(3))
        .add_exit_state(Step::Done);
    assert_eq!(workflow.orchestrate(Step::Start).await.unwrap(), Step::Done);
}

// ---------------------------------------------------------------------------------------
// Stepped
// ---------------------------------------------------------------------------------------

/// Counts from 1 to `target`, recording the cursors it was given.
struct Counter {
    target: u32,
    seen: Mutex<Vec<Option<u32>>>,
}

impl Counter {
    fn new(target: u32) -> Self {
        Self {
            target,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn seen(&self) -> Vec<Option<u32>> {
        self.seen.lock().unwrap().clone()
    }
}

#[task::stepped(state = Step)]
impl Counter {
    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, Step>, CanoError> {
        self.seen.lock().unwrap().push(cursor);
        let next = cursor.unwrap_or(0) + 1;
        Ok(if next > self.target {
            StepOutcome::Done(TaskResult::Single(Step::Done))
        } else {
            StepOutcome::More(next)
        })
    }
}

#[tokio::test]
async fn stepped_threads_the_cursor() {
    let counter = Counter::new(2);
    assert!(is_done(run_task(&counter).await));
    assert_eq!(counter.seen(), [None, Some(1), Some(2)]);

    let immediate = Counter::new(0);
    assert!(is_done(run_task(&immediate).await));
    assert_eq!(immediate.seen(), [None]);

    let many = Counter::new(9);
    assert!(is_done(run_task(&many).await));
    assert_eq!(many.seen().len(), 10);

    // `step` itself is one step.
    let res = Resources::new();
    let single = Counter::new(5);
    assert_eq!(
        SteppedTask::step(&single, &res, Some(1)).await.unwrap(),
        StepOutcome::More(2)
    );
    assert_eq!(
        SteppedTask::step(&single, &res, Some(5)).await.unwrap(),
        StepOutcome::Done(TaskResult::Single(Step::Done))
    );
}

#[tokio::test]
async fn stepped_defaults_runner_and_dyn() {
    let counter = Counter::new(1);
    assert_eq!(
        SteppedTask::<Step>::config(&counter)
            .retry_mode
            .max_attempts(),
        4
    );
    assert_eq!(Task::config(&counter).retry_mode.max_attempts(), 4);
    assert!(Task::name(&counter).contains("Counter"));

    let object: &dyn SteppedTask<Step, Cursor = u32> = &counter;
    assert!(is_done(cano::run_stepped(object, &Resources::new()).await));
    let shared: Arc<dyn Task<Step>> = Arc::new(Counter::new(3));
    assert!(is_done(shared.run(&Resources::new()).await));

    let outcome: StepOutcome<u32, Step> = StepOutcome::More(1);
    assert_eq!(outcome.clone(), outcome);
}

/// Fails at cursor 2, or splits when done, and overrides `config`/`name`.
struct Erratic {
    split: bool,
}

#[task::stepped(state = Step, key = Key)]
impl Erratic {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("erratic")
    }

    async fn step(
        &self,
        res: &Resources<Key>,
        cursor: Option<u8>,
    ) -> Result<StepOutcome<u8, Step>, CanoError> {
        res.get::<MemoryStore, _>(&Key::Store)?;
        match cursor {
            None => Ok(StepOutcome::More(1)),
            Some(_) if self.split => Ok(StepOutcome::Done(TaskResult::Split(vec![
                Step::Left,
                Step::Right,
            ]))),
            Some(1) => Ok(StepOutcome::More(2)),
            Some(n) => Err(CanoError::task_execution(format!("step at {n} failed"))),
        }
    }
}

#[tokio::test]
async fn stepped_errors_splits_keys_and_overrides() {
    let (_, res) = keyed_resources();
    let err = Task::run(&Erratic { split: false }, &res)
        .await
        .unwrap_err();
    assert_eq!(err, CanoError::task_execution("step at 2 failed"));
    assert_eq!(
        Task::run(&Erratic { split: true }, &res).await.unwrap(),
        TaskResult::Split(vec![Step::Left, Step::Right])
    );
    assert_eq!(
        Task::config(&Erratic { split: true })
            .retry_mode
            .max_attempts(),
        1
    );
    assert_eq!(Task::name(&Erratic { split: true }), "erratic");
}

/// A struct cursor (inferred) that accumulates across steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Progress {
    visited: Vec<u32>,
}

struct Walk;

#[task::stepped(state = Step)]
impl Walk {
    async fn step(
        &self,
        res: &Resources,
        cursor: Option<Progress>,
    ) -> Result<StepOutcome<Progress, Step>, CanoError> {
        let mut progress = cursor.unwrap_or_default();
        if progress.visited.len() == 3 {
            res.get::<MemoryStore, _>("store")?
                .put("visited", progress.visited)?;
            return Ok(StepOutcome::Done(TaskResult::Single(Step::Done)));
        }
        progress.visited.push(progress.visited.len() as u32 * 10);
        Ok(StepOutcome::More(progress))
    }
}

/// A declared `Vec<u32>` cursor.
struct Accumulate;

#[task::stepped(state = Step)]
impl Accumulate {
    type Cursor = Vec<u32>;

    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<Self::Cursor>,
    ) -> Result<StepOutcome<Vec<u32>, Step>, CanoError> {
        let mut seen = cursor.unwrap_or_default();
        if seen.len() == 4 {
            return Ok(StepOutcome::Done(TaskResult::Single(
                if seen == [0, 1, 2, 3] {
                    Step::Done
                } else {
                    Step::Left
                },
            )));
        }
        seen.push(seen.len() as u32);
        Ok(StepOutcome::More(seen))
    }
}

fn assert_cursor<T: SteppedTask<Step, Cursor = C>, C>(_: &T) {}

#[tokio::test]
async fn stepped_struct_and_declared_cursors() {
    assert_cursor::<_, Progress>(&Walk);
    assert_cursor::<_, Vec<u32>>(&Accumulate);
    assert_cursor::<_, u32>(&Counter::new(0));

    let (store, res) = resources();
    let workflow = Workflow::new(res)
        .register(Step::Start, Walk)
        .add_exit_state(Step::Done);
    assert_eq!(workflow.orchestrate(Step::Start).await.unwrap(), Step::Done);
    assert_eq!(store.get::<Vec<u32>>("visited").unwrap(), [0, 10, 20]);

    assert!(is_done(run_task(&Accumulate).await));
}

#[test]
fn public_items_generate_task_impls() {
    assert_task::<u8, Cow<'static, str>, _>(&api::PublicRouter);
    assert_task::<u8, Cow<'static, str>, _>(&api::PublicStepped);
}

// ---------------------------------------------------------------------------------------
// Batch
// ---------------------------------------------------------------------------------------

mod batch {
    //! `#[task::batch]`: the companion runs load → process → finish.
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    /// Doubles items 1..=6; later items finish first; item 3 fails.
    #[derive(Default)]
    struct Doubler {
        concurrency: usize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        completed: Mutex<Vec<u32>>,
        outputs: Mutex<Vec<Result<u32, String>>>,
    }

    impl Doubler {
        fn with_concurrency(concurrency: usize) -> Self {
            Self {
                concurrency,
                ..Self::default()
            }
        }
    }

    #[task::batch(state = Step)]
    impl Doubler {
        fn concurrency(&self) -> usize {
            self.concurrency
        }

        async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
            Ok((1..=6).collect())
        }

        async fn process_item(&self, item: &u32) -> Result<u32, CanoError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(u64::from(7 - *item) * 10)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.completed.lock().unwrap().push(*item);
            if *item == 3 {
                Err(CanoError::task_execution("item 3 failed"))
            } else {
                Ok(item * 2)
            }
        }

        async fn finish(
            &self,
            _res: &Resources,
            outputs: Vec<Result<u32, CanoError>>,
        ) -> Result<TaskResult<Step>, CanoError> {
            *self.outputs.lock().unwrap() = outputs
                .into_iter()
                .map(|output| output.map_err(|e| e.message().to_string()))
                .collect();
            Ok(TaskResult::Single(Step::Done))
        }
    }

    fn doubled_with_failure() -> Vec<Result<u32, String>> {
        vec![
            Ok(2),
            Ok(4),
            Err("item 3 failed".to_string()),
            Ok(8),
            Ok(10),
            Ok(12),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn batch_outputs_keep_input_order_under_concurrency() {
        let batch = Doubler::with_concurrency(4);
        // A failing item does not fail the batch.
        assert!(is_done(run_task(&batch).await));
        assert_eq!(*batch.outputs.lock().unwrap(), doubled_with_failure());
        assert_eq!(batch.max_in_flight.load(Ordering::SeqCst), 4);
        let completed = batch.completed.lock().unwrap().clone();
        assert_ne!(
            completed,
            vec![1, 2, 3, 4, 5, 6],
            "later items finish first"
        );
        assert_eq!(completed.len(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn batch_sequential_and_zero_concurrency() {
        for concurrency in [1, 0] {
            let batch = Doubler::with_concurrency(concurrency);
            assert!(is_done(run_task(&batch).await));
            assert_eq!(*batch.outputs.lock().unwrap(), doubled_with_failure());
            assert_eq!(batch.max_in_flight.load(Ordering::SeqCst), 1);
            assert_eq!(*batch.completed.lock().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batch_runner_and_dyn_task() {
        let batch = Doubler::with_concurrency(2);
        let res = Resources::new();
        assert!(is_done(
            cano::run_batch::<Doubler, Step, _>(&batch, &res).await
        ));
        assert_eq!(*batch.outputs.lock().unwrap(), doubled_with_failure());
        let object: Arc<dyn Task<Step>> = Arc::new(Doubler::with_concurrency(3));
        assert!(is_done(object.run(&res).await));
    }

    /// Item 1 fails `fail_times` times before succeeding; item 2 always fails.
    struct Flaky {
        fail_times: u32,
        calls: [AtomicU32; 2],
        outputs: Mutex<Vec<Result<String, CanoError>>>,
    }

    #[task::batch(state = Step)]
    impl Flaky {
        fn item_retry(&self) -> RetryMode {
            RetryMode::fixed(2, Duration::from_millis(1))
        }

        async fn load(&self, _res: &Resources) -> Result<Vec<usize>, CanoError> {
            Ok(vec![0, 1])
        }

        async fn process_item(&self, item: &usize) -> Result<String, CanoError> {
            let call = self.calls[*item].fetch_add(1, Ordering::SeqCst) + 1;
            if *item == 0 && call > self.fail_times {
                Ok(format!("ok after {call}"))
            } else {
                Err(CanoError::task_execution(format!(
                    "item {item} call {call}"
                )))
            }
        }

        async fn finish(
            &self,
            _res: &Resources,
            outputs: Vec<Result<String, CanoError>>,
        ) -> Result<TaskResult<Step>, CanoError> {
            *self.outputs.lock().unwrap() = outputs;
            Ok(TaskResult::Single(Step::Done))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batch_item_retries() {
        let flaky = Flaky {
            fail_times: 2,
            calls: [AtomicU32::new(0), AtomicU32::new(0)],
            outputs: Mutex::new(Vec::new()),
        };
        assert_eq!(flaky.item_retry().max_attempts(), 3);
        assert!(is_done(run_task(&flaky).await));
        assert_eq!(flaky.calls[0].load(Ordering::SeqCst), 3);
        assert_eq!(flaky.calls[1].load(Ordering::SeqCst), 3);
        let outputs = std::mem::take(&mut *flaky.outputs.lock().unwrap());
        assert_eq!(
            outputs,
            vec![
                Ok("ok after 3".to_string()),
                // The raw last error, not a `RetryExhausted` wrapper.
                Err(CanoError::task_execution("item 1 call 3")),
            ]
        );
    }

    /// `load` or `finish` fails, as configured.
    struct Failing {
        load_fails: bool,
        finish_called: AtomicBool,
    }

    #[task::batch(state = Step)]
    impl Failing {
        async fn load(&self, _res: &Resources) -> Result<Vec<u8>, CanoError> {
            if self.load_fails {
                Err(CanoError::task_execution("load failed"))
            } else {
                Ok(Vec::new())
            }
        }

        async fn process_item(&self, _item: &u8) -> cano::CanoResult<()> {
            Ok(())
        }

        async fn finish(
            &self,
            _res: &Resources,
            outputs: Vec<Result<(), CanoError>>,
        ) -> Result<TaskResult<Step>, CanoError> {
            self.finish_called.store(true, Ordering::SeqCst);
            assert!(outputs.is_empty());
            Err(CanoError::workflow("finish failed"))
        }
    }

    #[tokio::test]
    async fn batch_load_and_finish_errors() {
        let load_fails = Failing {
            load_fails: true,
            finish_called: AtomicBool::new(false),
        };
        let err = run_task(&load_fails).await.unwrap_err();
        assert_eq!(err, CanoError::task_execution("load failed"));
        assert!(!load_fails.finish_called.load(Ordering::SeqCst));

        // No items: `finish` still runs, and its error propagates.
        let finish_fails = Failing {
            load_fails: false,
            finish_called: AtomicBool::new(false),
        };
        let err = run_task(&finish_fails).await.unwrap_err();
        assert_eq!(err, CanoError::workflow("finish failed"));
        assert!(finish_fails.finish_called.load(Ordering::SeqCst));
    }

    fn assert_types<B, I, O>(_: &B)
    where
        B: BatchTask<Step, Key, Item = I, ItemOutput = O>,
    {
    }

    /// Inferred `Item = u32` and `ItemOutput = String`, with enum keys; writes to the store.
    struct Render;

    #[task::batch(state = Step, key = Key)]
    impl Render {
        async fn load(&self, res: &Resources<Key>) -> Result<Vec<u32>, CanoError> {
            Ok(res.get::<MemoryStore, _>(&Key::Store)?.get("input")?)
        }

        async fn process_item(&self, item: &u32) -> Result<String, CanoError> {
            Ok((item * 2).to_string())
        }

        async fn finish(
            &self,
            res: &Resources<Key>,
            outputs: Vec<Result<String, CanoError>>,
        ) -> Result<TaskResult<Step>, CanoError> {
            let doubled = outputs.into_iter().collect::<Result<Vec<_>, _>>()?;
            res.get::<MemoryStore, _>(&Key::Store)?
                .put("output", doubled)?;
            Ok(TaskResult::Single(Step::Done))
        }
    }

    /// Declared associated types, generic `Item`.
    struct Declared<T>(Vec<T>);

    #[task::batch(state = Step, key = Key)]
    impl<T: Clone + Send + Sync + 'static> Declared<T> {
        type Item = T;
        type ItemOutput = ();

        fn concurrency(&self) -> usize {
            4
        }

        fn item_retry(&self) -> RetryMode {
            RetryMode::fixed(2, Duration::from_millis(5))
        }

        async fn load(&self, _res: &Resources<Key>) -> Result<Vec<T>, CanoError> {
            Ok(self.0.clone())
        }

        async fn process_item(&self, _item: &Self::Item) -> Result<(), CanoError> {
            Ok(())
        }

        async fn finish(
            &self,
            _res: &Resources<Key>,
            outputs: Vec<Result<(), CanoError>>,
        ) -> Result<TaskResult<Step>, CanoError> {
            Ok(TaskResult::Single(if outputs.len() == self.0.len() {
                Step::Done
            } else {
                Step::Left
            }))
        }
    }

    #[tokio::test]
    async fn batch_inherent_types_keys_defaults_and_overrides() {
        assert_types::<_, u32, String>(&Render);
        assert_types::<_, &'static str, ()>(&Declared(vec!["a"]));

        assert_eq!(BatchTask::<Step, Key>::concurrency(&Render), 1);
        assert_eq!(
            BatchTask::<Step, Key>::item_retry(&Render).max_attempts(),
            1
        );
        assert_eq!(Task::config(&Render).retry_mode.max_attempts(), 4);
        assert!(Task::name(&Render).contains("Render"));

        let declared = Declared(vec![1u8, 2, 3]);
        assert_eq!(declared.concurrency(), 4);
        assert_eq!(declared.item_retry().max_attempts(), 3);
        let (_, res) = keyed_resources();
        assert!(is_done(Task::run(&declared, &res).await));

        let (store, res) = keyed_resources();
        store.put("input", vec![1u32, 2, 3]).unwrap();
        let workflow = Workflow::new(res)
            .register(Step::Start, Render)
            .add_exit_state(Step::Done);
        assert_eq!(workflow.orchestrate(Step::Start).await.unwrap(), Step::Done);
        assert_eq!(store.get::<Vec<String>>("output").unwrap(), ["2", "4", "6"]);
    }

    /// Generic over the state, through the trait-impl form.
    struct Count<S>(S);

    #[task::batch]
    impl<S: Clone + fmt::Debug + Send + Sync + 'static> BatchTask<S> for Count<S> {
        type Item = u8;
        type ItemOutput = u8;

        async fn load(&self, _res: &Resources) -> Result<Vec<u8>, CanoError> {
            Ok(vec![1, 2, 3])
        }

        async fn process_item(&self, item: &u8) -> Result<u8, CanoError> {
            Ok(*item)
        }

        async fn finish(
            &self,
            _res: &Resources,
            outputs: Vec<Result<u8, CanoError>>,
        ) -> Result<TaskResult<S>, CanoError> {
            assert_eq!(outputs.len(), 3);
            Ok(TaskResult::Single(self.0.clone()))
        }
    }

    #[tokio::test]
    async fn batch_generic_state() {
        assert!(is_done(run_task(&Count(Step::Done)).await));
        let numbers: Arc<dyn Task<i64>> = Arc::new(Count(-1i64));
        assert_eq!(
            numbers.run(&Resources::new()).await.unwrap(),
            TaskResult::Single(-1)
        );
    }

    mod bare_headers {
        use super::super::Step;
        use cano::prelude::*;

        pub(crate) struct Batch;

        #[task::batch]
        impl BatchTask<Step> for Batch {
            type Item = u32;
            type ItemOutput = u32;

            async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
                Ok(vec![1, 2])
            }

            async fn process_item(&self, item: &u32) -> Result<u32, CanoError> {
                Ok(*item)
            }

            async fn finish(
                &self,
                _res: &Resources,
                outputs: Vec<Result<u32, CanoError>>,
            ) -> Result<TaskResult<Step>, CanoError> {
                assert_eq!(outputs.len(), 2);
                Ok(TaskResult::Single(Step::Done))
            }
        }
    }

    mod crate_headers {
        use super::super::Step;

        pub(crate) struct Batch;

        #[cano::task::batch]
        impl cano::BatchTask<Step> for Batch {
            type Item = ();
            type ItemOutput = ();

            async fn load(&self, _res: &cano::Resources) -> Result<Vec<()>, cano::CanoError> {
                Ok(vec![()])
            }

            async fn process_item(&self, _item: &()) -> Result<(), cano::CanoError> {
                Ok(())
            }

            async fn finish(
                &self,
                _res: &cano::Resources,
                _outputs: Vec<Result<(), cano::CanoError>>,
            ) -> Result<cano::TaskResult<Step>, cano::CanoError> {
                Ok(cano::TaskResult::Single(Step::Done))
            }
        }
    }

    mod absolute_headers {
        use super::super::{Key, Step};

        pub(crate) struct Batch;

        #[::cano::task::batch]
        impl ::cano::BatchTask<Step, Key> for Batch {
            type Item = u8;
            type ItemOutput = u8;

            async fn load(&self, _res: &::cano::Resources<Key>) -> ::cano::CanoResult<Vec<u8>> {
                Ok(vec![1])
            }

            async fn process_item(&self, item: &u8) -> ::cano::CanoResult<u8> {
                Ok(*item)
            }

            async fn finish(
                &self,
                _res: &::cano::Resources<Key>,
                _outputs: Vec<::cano::CanoResult<u8>>,
            ) -> ::cano::CanoResult<::cano::TaskResult<Step>> {
                Ok(::cano::TaskResult::Single(Step::Done))
            }
        }
    }

    #[tokio::test]
    async fn trait_impl_forms_under_every_prefix() {
        assert!(is_done(run_task(&bare_headers::Batch).await));
        assert!(is_done(run_task(&crate_headers::Batch).await));
        let res = keyed_resources().1;
        assert!(is_done(Task::run(&absolute_headers::Batch, &res).await));
        assert!(Task::name(&absolute_headers::Batch).contains("absolute_headers::Batch"));
        assert_eq!(
            Task::config(&crate_headers::Batch)
                .retry_mode
                .max_attempts(),
            4
        );
    }
}
