//! `#[saga::task]`: the trait-definition, trait-impl and inherent forms of
//! `CompensatableTask` compile warning-free (this file denies warnings and clippy's default
//! groups) and behave; no `Task` impl is generated.
#![deny(warnings, missing_docs, unused, rust_2018_idioms, unreachable_code)]
#![deny(clippy::all)]

use cano::CompensatableTask;
use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Reserve,
    Charge,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ledger,
}

/// Resources holding a store under `"ledger"`.
fn resources() -> (MemoryStore, Resources) {
    let store = MemoryStore::new();
    (store.clone(), Resources::new().insert("ledger", store))
}

/// Reserves seats: the output is the reservation number.
struct Reserve {
    released: Mutex<Vec<u32>>,
}

#[saga::task(state = Step)]
impl Reserve {
    type Output = u32;

    async fn run(&self, res: &Resources) -> Result<(TaskResult<Step>, u32), CanoError> {
        res.get::<MemoryStore, _>("ledger")?.put("reserved", true)?;
        Ok((TaskResult::Single(Step::Charge), 42))
    }

    async fn compensate(&self, res: &Resources, output: u32) -> Result<(), CanoError> {
        res.get::<MemoryStore, _>("ledger")?
            .put("reserved", false)?;
        self.released.lock().unwrap().push(output);
        Ok(())
    }
}

/// Charges money, with a tuple output and overridden `config`/`name`, over `u32` states.
struct Charge;

#[saga::task(state = u32)]
impl Charge {
    type Output = (String, i64);

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        "charge".into()
    }

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<u32>, (String, i64)), CanoError> {
        Ok((TaskResult::Single(2), ("card-1".to_string(), 1999)))
    }

    async fn compensate(
        &self,
        _res: &Resources,
        (account, cents): (String, i64),
    ) -> Result<(), CanoError> {
        if account == "card-1" && cents > 0 {
            Ok(())
        } else {
            Err(CanoError::task_execution(format!(
                "cannot refund {account}"
            )))
        }
    }
}

#[tokio::test]
async fn inherent_form_runs_and_compensates() {
    let (store, res) = resources();
    let reserve = Reserve {
        released: Mutex::new(Vec::new()),
    };
    let (next, output) = reserve.run(&res).await.unwrap();
    assert_eq!(next, TaskResult::Single(Step::Charge));
    assert_eq!(output, 42);
    assert!(store.get::<bool>("reserved").unwrap());

    reserve.compensate(&res, output).await.unwrap();
    assert!(!store.get::<bool>("reserved").unwrap());
    assert_eq!(*reserve.released.lock().unwrap(), [42]);

    // Errors from the body come back unchanged.
    let err = reserve.run(&Resources::new()).await.unwrap_err();
    assert!(matches!(err, CanoError::ResourceNotFound(_)), "{err:?}");
}

#[tokio::test]
async fn defaults_and_overrides() {
    let reserve = Reserve {
        released: Mutex::new(Vec::new()),
    };
    assert_eq!(
        CompensatableTask::<Step>::config(&reserve)
            .retry_mode
            .max_attempts(),
        4
    );
    assert!(CompensatableTask::<Step>::name(&reserve).contains("Reserve"));

    assert_eq!(Charge.config().retry_mode.max_attempts(), 1);
    assert_eq!(Charge.name(), "charge");
    let res = Resources::new();
    let (next, output) = Charge.run(&res).await.unwrap();
    assert_eq!(next, TaskResult::Single(2));
    assert_eq!(output, ("card-1".to_string(), 1999));
    Charge.compensate(&res, output).await.unwrap();
    let err = Charge
        .compensate(&res, ("cash".to_string(), 5))
        .await
        .unwrap_err();
    assert_eq!(err, CanoError::task_execution("cannot refund cash"));
}

/// A unit output, enum keys.
struct Notify;

#[saga::task(state = Step, key = Key)]
impl Notify {
    type Output = ();

    async fn run(&self, res: &Resources<Key>) -> Result<(TaskResult<Step>, ()), CanoError> {
        res.get::<MemoryStore, _>(&Key::Ledger)?
            .append("log", "notified".to_string())?;
        Ok((TaskResult::Single(Step::Done), ()))
    }

    async fn compensate(&self, res: &Resources<Key>, _output: ()) -> Result<(), CanoError> {
        res.get::<MemoryStore, _>(&Key::Ledger)?
            .append("log", "retracted".to_string())?;
        Ok(())
    }
}

#[tokio::test]
async fn enum_keys_and_unit_output() {
    let store = MemoryStore::new();
    let res = Resources::new().insert(Key::Ledger, store.clone());
    let (next, output) = Notify.run(&res).await.unwrap();
    assert_eq!(next, TaskResult::Single(Step::Done));
    Notify.compensate(&res, output).await.unwrap();
    assert_eq!(
        store.get::<Vec<String>>("log").unwrap(),
        ["notified", "retracted"]
    );
}

/// A struct output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Booking {
    id: String,
    seats: Vec<u8>,
}

/// The trait-impl form, with a struct output.
struct Book;

#[saga::task]
impl CompensatableTask<Step> for Book {
    type Output = Booking;

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, Booking), CanoError> {
        let booking = Booking {
            id: "B-7".to_string(),
            seats: vec![3, 4],
        };
        Ok((TaskResult::Single(Step::Done), booking))
    }

    async fn compensate(&self, _res: &Resources, output: Booking) -> Result<(), CanoError> {
        if output.seats.is_empty() {
            Err(CanoError::task_execution("nothing to cancel"))
        } else {
            Ok(())
        }
    }
}

/// The trait-impl form, generic over the state, with a key, under the `::cano::` prefix.
struct Forward<S>(S);

#[::cano::saga::task]
impl<S> ::cano::CompensatableTask<S, Key> for Forward<S>
where
    S: Clone + fmt::Debug + Send + Sync + 'static,
{
    type Output = Vec<u32>;

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("forward-{:?}", self.0))
    }

    async fn run(
        &self,
        _res: &::cano::Resources<Key>,
    ) -> Result<(::cano::TaskResult<S>, Vec<u32>), ::cano::CanoError> {
        Ok((::cano::TaskResult::Single(self.0.clone()), vec![1, 2]))
    }

    async fn compensate(
        &self,
        _res: &::cano::Resources<Key>,
        output: Vec<u32>,
    ) -> Result<(), ::cano::CanoError> {
        assert_eq!(output, [1, 2]);
        Ok(())
    }
}

/// A generic inherent form.
struct Wrap<T>(T);

#[saga::task(state = Step)]
impl<T> Wrap<T>
where
    T: Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    type Output = T;

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, T), CanoError> {
        Ok((TaskResult::Single(Step::Done), self.0.clone()))
    }

    async fn compensate(&self, _res: &Resources, _output: T) -> Result<(), CanoError> {
        Ok(())
    }
}

#[tokio::test]
async fn trait_impl_and_generic_forms() {
    let res = Resources::new();
    let (next, booking) = Book.run(&res).await.unwrap();
    assert_eq!(next, TaskResult::Single(Step::Done));
    assert_eq!(booking.seats, [3, 4]);
    Book.compensate(&res, booking).await.unwrap();
    assert!(CompensatableTask::<Step>::name(&Book).contains("Book"));

    let keyed = Resources::<Key>::new();
    let forward = Forward(Step::Reserve);
    assert_eq!(forward.name(), "forward-Reserve");
    let (next, output) = forward.run(&keyed).await.unwrap();
    assert_eq!(next, TaskResult::Single(Step::Reserve));
    forward.compensate(&keyed, output).await.unwrap();
    let (next, _) = Forward(9u8).run(&keyed).await.unwrap();
    assert_eq!(next, TaskResult::Single(9));

    let (_, output) = Wrap("w".to_string()).run(&res).await.unwrap();
    assert_eq!(output, "w");
}

#[tokio::test]
async fn usable_as_trait_objects() {
    let tasks: Vec<Box<dyn CompensatableTask<Step, Output = u32>>> = vec![
        Box::new(Reserve {
            released: Mutex::new(Vec::new()),
        }),
        Box::new(Wrap(5u32)),
    ];
    let (store, res) = resources();
    let mut outputs = Vec::new();
    for task in &tasks {
        outputs.push(task.run(&res).await.unwrap().1);
    }
    assert_eq!(outputs, [42, 5]);
    for (task, output) in tasks.iter().zip(outputs).rev() {
        task.compensate(&res, output).await.unwrap();
    }
    assert!(!store.get::<bool>("reserved").unwrap());
}

// The attribute on a trait definition is the plain async rewrite.
#[saga::task]
trait Undo: Send + Sync {
    async fn undo(&self, what: &str) -> String;

    async fn undo_twice(&self, what: &str) -> String {
        let once = self.undo(what).await;
        self.undo(&once).await
    }
}

#[saga::task]
impl Undo for Book {
    async fn undo(&self, what: &str) -> String {
        format!("undo({what})")
    }
}

#[tokio::test]
async fn rewrites_user_traits() {
    assert_eq!(Book.undo_twice("x").await, "undo(undo(x))");
}

/// `true` when `T` implements `Task<Step>` (autoref specialization: the inherent-looking
/// call picks `Yes` when its bound holds, else falls back to `No` on `&Probe<T>`).
struct Probe<T>(PhantomData<T>);

trait Yes {
    fn is_task(&self) -> bool {
        true
    }
}

impl<T: Task<Step>> Yes for Probe<T> {}

trait No {
    fn is_task(&self) -> bool {
        false
    }
}

impl<T> No for &Probe<T> {}

/// A plain task, to show the probe detects `Task` impls.
struct Plain;

#[task(state = Step)]
impl Plain {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

#[test]
fn no_task_impl_is_generated() {
    let plain = &Probe::<Plain>(PhantomData);
    assert!(plain.is_task());
    let inherent = &Probe::<Reserve>(PhantomData);
    assert!(!inherent.is_task());
    let trait_impl = &Probe::<Book>(PhantomData);
    assert!(!trait_impl.is_task());
    let generic = &Probe::<Wrap<u32>>(PhantomData);
    assert!(!generic.is_task());
}
