//! `#[task]`: the async rewrite on user traits and impls, the `Task` trait-impl form, and
//! the inherent forms `#[task(state = S)]` / `#[task(state = S, key = K)]`.

use cano::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Start,
    Middle,
    Done,
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

// ---------------------------------------------------------------------------------------
// `#[task]` on user-defined traits
// ---------------------------------------------------------------------------------------

#[task]
trait Greet: Send + Sync {
    async fn hello(&self) -> Result<String, ()>;

    async fn echo(&self, msg: &str) -> String {
        format!("echo: {msg}")
    }

    /// A default body that awaits other trait methods.
    async fn greet_twice(&self, who: &str) -> Result<String, ()> {
        let hello = self.hello().await?;
        Ok(format!("{hello} {who}, {}", self.echo(who).await))
    }
}

struct English;

#[task]
impl Greet for English {
    async fn hello(&self) -> Result<String, ()> {
        Ok("hello".to_string())
    }
}

struct Loud;

#[task]
impl Greet for Loud {
    async fn hello(&self) -> Result<String, ()> {
        Err(())
    }

    async fn echo(&self, msg: &str) -> String {
        msg.to_uppercase()
    }
}

#[tokio::test]
async fn user_trait_required_and_default_methods() {
    let greeter = English;
    assert_eq!(greeter.hello().await, Ok("hello".to_string()));
    assert_eq!(greeter.echo("hi").await, "echo: hi");
    assert_eq!(
        greeter.greet_twice("bob").await,
        Ok("hello bob, echo: bob".to_string())
    );
}

#[tokio::test]
async fn user_trait_overridden_default_and_question_mark() {
    assert_eq!(Loud.echo("hi").await, "HI");
    // `?` on `hello()` returns early from the default body.
    assert_eq!(Loud.greet_twice("bob").await, Err(()));
}

#[tokio::test]
async fn user_trait_through_boxed_trait_object() {
    let greeters: Vec<Box<dyn Greet + Send + Sync>> = vec![Box::new(English), Box::new(Loud)];
    let mut out = Vec::new();
    for greeter in &greeters {
        out.push(greeter.echo("x").await);
    }
    assert_eq!(out, ["echo: x", "X"]);
    let shared: &(dyn Greet + Sync) = &English;
    assert_eq!(
        shared.greet_twice("al").await,
        Ok("hello al, echo: al".into())
    );
}

#[tokio::test]
async fn user_trait_futures_are_send() {
    let greeter: Arc<dyn Greet + Send + Sync> = Arc::new(English);
    let handle = tokio::spawn(async move { greeter.greet_twice("t").await });
    assert_eq!(handle.await.unwrap(), Ok("hello t, echo: t".into()));
    let future = assert_send(English.echo("s"));
    assert_eq!(future.await, "echo: s");
}

/// A generic trait with a where-clause and a default-bodied method.
#[task]
trait Store<T>: Send + Sync
where
    T: Clone + Send + Sync + 'static,
{
    async fn load(&self, key: &str) -> Option<T>;

    async fn load_or(&self, key: &str, fallback: T) -> T {
        self.load(key).await.unwrap_or(fallback)
    }
}

struct OneValue(u32);

#[task]
impl Store<u32> for OneValue {
    async fn load(&self, key: &str) -> Option<u32> {
        (key == "one").then_some(self.0)
    }
}

struct Wrapped<T>(T);

#[task]
impl<T> Store<T> for Wrapped<T>
where
    T: Clone + Send + Sync + 'static,
{
    async fn load(&self, _key: &str) -> Option<T> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn generic_trait_with_where_clause() {
    assert_eq!(OneValue(7).load_or("one", 0).await, 7);
    assert_eq!(OneValue(7).load_or("two", 3).await, 3);
    let store: Box<dyn Store<String>> = Box::new(Wrapped("w".to_string()));
    assert_eq!(store.load_or("any", String::new()).await, "w");
}

/// `&mut self` receivers, receiver-less functions, patterns and explicit lifetimes.
#[task]
trait Shapes {
    async fn bump(&mut self, by: u32) -> u32;
    async fn make(seed: u8) -> Self
    where
        Self: Sized;
    async fn pick<'a>(&self, first: &'a str, second: &'a str) -> &'a str;
    /// An elided output lifetime borrows from `self`.
    async fn label(&self) -> &str;
}

struct Counter(u32);

#[task]
impl Shapes for Counter {
    async fn bump(&mut self, mut by: u32) -> u32 {
        by *= 2;
        self.0 += by;
        self.0
    }

    async fn make(seed: u8) -> Self {
        Counter(u32::from(seed))
    }

    async fn pick<'a>(&self, first: &'a str, _second: &'a str) -> &'a str {
        first
    }

    async fn label(&self) -> &str {
        if self.0 > 5 { "big" } else { "small" }
    }
}

#[tokio::test]
async fn mut_receiver_receiverless_and_lifetimes() {
    let mut counter = Counter::make(1).await;
    assert_eq!(counter.bump(2).await, 5);
    assert_eq!(counter.bump(1).await, 7);
    let (a, b) = ("a".to_string(), "b".to_string());
    assert_eq!(counter.pick(&a, &b).await, "a");
    assert_eq!(counter.label().await, "big");
}

struct Patterns;

/// Sets its flag when dropped.
struct Guard(Arc<AtomicBool>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[task]
trait PatternOps {
    async fn sum(&self, pair: (u8, u8), c: u32, ignored: u8, unused: &str) -> u32;
    async fn hold(&self, guard: Guard, ready: Arc<AtomicBool>) -> bool;
    async fn nested(&self, value: &&str) -> usize;
    async fn early(&self, fail: bool) -> Result<u8, CanoError>;
    async fn nothing(&self);
}

#[task]
impl PatternOps for Patterns {
    async fn sum(&self, (a, b): (u8, u8), mut c: u32, _: u8, _unused: &str) -> u32 {
        c += 1;
        u32::from(a) + u32::from(b) + c
    }

    async fn hold(&self, _: Guard, ready: Arc<AtomicBool>) -> bool {
        ready.load(Ordering::SeqCst)
    }

    async fn nested(&self, value: &&str) -> usize {
        value.len()
    }

    async fn early(&self, fail: bool) -> Result<u8, CanoError> {
        if fail {
            return Err(CanoError::generic("early"));
        }
        let parsed: u8 = "12".parse().map_err(|_| CanoError::generic("parse"))?;
        Ok(parsed)
    }

    async fn nothing(&self) {}
}

#[tokio::test]
async fn parameter_patterns_and_returns() {
    assert_eq!(Patterns.sum((1, 2), 3, 9, "x").await, 7);
    assert_eq!(Patterns.nested(&"abc").await, 3);
    assert_eq!(Patterns.early(false).await.unwrap(), 12);
    assert_eq!(Patterns.early(true).await.unwrap_err().message(), "early");
    Patterns.nothing().await;
}

#[tokio::test]
async fn wildcard_parameter_lives_as_long_as_the_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let future = Patterns.hold(Guard(dropped.clone()), dropped.clone());
    // As with a native `async fn`, the `_` argument is owned by the future.
    assert!(!dropped.load(Ordering::SeqCst));
    assert!(!future.await);
    assert!(dropped.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------
// `#[task] impl Task<S> for X`
// ---------------------------------------------------------------------------------------

struct BareOnly;

#[task]
impl Task<Step> for BareOnly {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

struct RunOnly {
    bare_calls: AtomicUsize,
}

#[task]
impl Task<Step> for RunOnly {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        store.put("ran", true)?;
        Ok(TaskResult::Single(Step::Middle))
    }

    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        self.bare_calls.fetch_add(1, Ordering::SeqCst);
        Ok(TaskResult::Single(Step::Done))
    }
}

struct Neither;

#[task]
impl Task<Step> for Neither {}

struct Named;

#[cano::task]
impl cano::Task<Step> for Named {
    fn name(&self) -> Cow<'static, str> {
        "named-task".into()
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

fn store_resources() -> (Resources, MemoryStore) {
    let store = MemoryStore::new();
    (Resources::new().insert("store", store.clone()), store)
}

#[tokio::test]
async fn trait_impl_run_delegates_to_run_bare() {
    let (res, _) = store_resources();
    assert_eq!(
        BareOnly.run(&res).await.unwrap(),
        TaskResult::Single(Step::Done)
    );
    assert_eq!(
        BareOnly.run_bare().await.unwrap(),
        TaskResult::Single(Step::Done)
    );
}

#[tokio::test]
async fn trait_impl_overriding_run_never_calls_run_bare() {
    let (res, store) = store_resources();
    let task = RunOnly {
        bare_calls: AtomicUsize::new(0),
    };
    assert_eq!(
        task.run(&res).await.unwrap(),
        TaskResult::Single(Step::Middle)
    );
    assert!(store.get::<bool>("ran").unwrap());
    assert_eq!(task.bare_calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        task.run_bare().await.unwrap(),
        TaskResult::Single(Step::Done)
    );
}

#[tokio::test]
async fn trait_impl_overriding_neither_is_a_configuration_error() {
    let err = Neither.run(&Resources::new()).await.unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert!(err.message().contains("Neither"), "{err}");
}

#[tokio::test]
async fn trait_impl_name_and_config_overrides() {
    assert_eq!(Named.name(), "named-task");
    assert_eq!(Named.config().retry_mode.max_attempts(), 1);
    assert!(BareOnly.name().contains("BareOnly"));
}

// ---------------------------------------------------------------------------------------
// Inherent forms
// ---------------------------------------------------------------------------------------

struct Inherent;

#[task(state = Step)]
impl Inherent {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        let visits = store.get::<u32>("visits").unwrap_or(0) + 1;
        store.put("visits", visits)?;
        Ok(TaskResult::Single(if visits < 2 {
            Step::Start
        } else {
            Step::Done
        }))
    }
}

struct InherentNamed {
    label: &'static str,
}

#[task(state = Step,)]
impl InherentNamed {
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.label)
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_fixed_retry(5, Duration::from_millis(1))
    }

    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

struct Generic<T>(T);

#[task(state = Step)]
impl<T> Generic<T>
where
    T: Clone + Into<Step> + Send + Sync + 'static,
{
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(self.0.clone().into()))
    }
}

#[derive(Clone)]
struct ToMiddle;

impl From<ToMiddle> for Step {
    fn from(_: ToMiddle) -> Self {
        Step::Middle
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Store,
}

struct Keyed;

#[task(key = Key, state = Step)]
impl Keyed {
    async fn run(&self, res: &Resources<Key>) -> Result<TaskResult<Step>, CanoError> {
        res.get::<MemoryStore, _>(&Key::Store)?.put("keyed", 1u8)?;
        Ok(TaskResult::Single(Step::Done))
    }
}

#[tokio::test]
async fn inherent_form_runs_in_a_workflow() {
    let (res, store) = store_resources();
    let workflow = Workflow::new(res)
        .register(Step::Start, Inherent)
        .add_exit_state(Step::Done);
    assert_eq!(workflow.orchestrate(Step::Start).await.unwrap(), Step::Done);
    assert_eq!(store.get::<u32>("visits").unwrap(), 2);
}

#[tokio::test]
async fn inherent_form_name_and_config_overrides() {
    let task = InherentNamed { label: "custom" };
    assert_eq!(task.name(), "custom");
    assert_eq!(task.config().retry_mode.max_attempts(), 6);
    assert!(Inherent.name().contains("Inherent"));
    assert_eq!(Inherent.config().retry_mode.max_attempts(), 4);
}

#[tokio::test]
async fn inherent_form_with_generics() {
    let task = Generic(ToMiddle);
    assert_eq!(
        task.run_bare().await.unwrap(),
        TaskResult::Single(Step::Middle)
    );
    let object: TaskObject<Step> = Arc::new(task);
    assert_eq!(
        object.run(&Resources::new()).await.unwrap(),
        TaskResult::Single(Step::Middle)
    );
}

#[tokio::test]
async fn inherent_form_with_key_through_task_objects() {
    let store = MemoryStore::new();
    let res: Resources<Key> = Resources::new().insert(Key::Store, store.clone());
    let objects: Vec<TaskObject<Step, Key>> = vec![Arc::new(Keyed)];
    assert_eq!(
        objects[0].run(&res).await.unwrap(),
        TaskResult::Single(Step::Done)
    );
    assert_eq!(store.get::<u8>("keyed").unwrap(), 1);

    let workflow = Workflow::new(Resources::new().insert(Key::Store, MemoryStore::new()))
        .register(Step::Start, Keyed)
        .add_exit_state(Step::Done);
    assert_eq!(workflow.orchestrate(Step::Start).await.unwrap(), Step::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxed_futures_are_send_and_run_concurrently() {
    struct Counting(AtomicUsize);

    #[task(state = Step)]
    impl Counting {
        async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
            tokio::task::yield_now().await;
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(TaskResult::Single(Step::Done))
        }
    }

    let task = Arc::new(Counting(AtomicUsize::new(0)));
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let task = task.clone();
            tokio::spawn(async move { task.run_bare().await })
        })
        .collect();
    for handle in handles {
        assert_eq!(
            handle.await.unwrap().unwrap(),
            TaskResult::Single(Step::Done)
        );
    }
    assert_eq!(task.0.load(Ordering::SeqCst), 10);

    let res = Arc::new(Resources::new());
    let spawned = tokio::spawn({
        let task = task.clone();
        async move { task.run(&res).await }
    });
    assert!(spawned.await.unwrap().is_ok());
}
