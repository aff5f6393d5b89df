//! # Testing kit: assert the path a run took, its outcome, dead states and compensations
//!
//! Run with:
//! `cargo run -p cano --example testing_kit --features testing`
//!
//! A checkout `Reserve → Charge → Ship → Done` with a saga (`Reserve` and `Charge` are
//! undone when `Ship` fails) and a `Refund` state no run reaches. The program runs it
//! twice under a [`RecordingObserver`] — once to the end, once with the carrier down —
//! and checks each run with the kit: the path, how it ended, which registered states no
//! run entered (the dead `Refund`), which steps were compensated, in which order. Then a
//! [`panic_on_attempt`] task shows what a panic does: the earlier failed attempts are
//! retried, the panic is not, the log is kept in the [`InMemoryCheckpointStore`], and a
//! resume runs the next attempt. Every check prints a line; a failed check panics.

use cano::prelude::*;
use cano::testing::{InMemoryCheckpointStore, RecordingObserver, TestResources, panic_on_attempt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Checkout {
    Reserve,
    Charge,
    Ship,
    Refund,
    Done,
}

/// A saga step that moves to `next`.
struct Step {
    name: &'static str,
    next: Checkout,
}

#[saga::task(state = Checkout)]
impl Step {
    type Output = String;
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        self.name.into()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Checkout>, String), CanoError> {
        Ok((
            TaskResult::Single(self.next.clone()),
            format!("{}-ok", self.name),
        ))
    }
    async fn compensate(&self, _res: &Resources, _output: String) -> Result<(), CanoError> {
        Ok(())
    }
}

/// Ships, unless the carrier is down.
struct Ship(Arc<AtomicBool>);

#[task(state = Checkout)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Checkout>, CanoError> {
        if self.0.load(Ordering::SeqCst) {
            return Err(CanoError::task_execution("carrier down"));
        }
        Ok(TaskResult::Single(Checkout::Done))
    }
}

/// Never reached.
struct Refund;

#[task(state = Checkout)]
impl Refund {
    async fn run_bare(&self) -> Result<TaskResult<Checkout>, CanoError> {
        Ok(TaskResult::Single(Checkout::Done))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), CanoError> {
    let carrier_down = Arc::new(AtomicBool::new(false));
    let recorder = Arc::new(RecordingObserver::new());
    let step = |name, next| Step { name, next };
    let checkout = Workflow::new(TestResources::new().with_store("orders").build())
        .register_with_compensation(Checkout::Reserve, step("reserve", Checkout::Charge))
        .register_with_compensation(Checkout::Charge, step("charge", Checkout::Ship))
        .register(Checkout::Ship, Ship(carrier_down.clone()))
        .register(Checkout::Refund, Refund)
        .add_exit_state(Checkout::Done)
        .with_observer(recorder.clone());

    checkout.orchestrate(Checkout::Reserve).await?;
    recorder.assert_path(&["Reserve", "Charge", "Ship", "Done"]);
    recorder.assert_completed_with("Done");
    println!("run 1: path Reserve → Charge → Ship → Done, completed with Done");
    match recorder.assert_registered_states_entered(&checkout) {
        Ok(()) => println!("run 1: every registered state was entered"),
        Err(dead) => println!("run 1: registered states no run entered: {dead:?}"),
    }
    assert_eq!(
        recorder.assert_registered_states_entered(&checkout),
        Err(vec!["Refund".to_string()])
    );

    recorder.clear();
    carrier_down.store(true, Ordering::SeqCst);
    let err = checkout.orchestrate(Checkout::Reserve).await.unwrap_err();
    recorder.assert_path(&["Reserve", "Charge", "Ship"]);
    recorder.assert_compensated(&["charge", "reserve"]);
    println!(
        "run 2: failed with {err}; compensated {:?}",
        recorder.compensated()
    );
    if let Err(why) = recorder.check_completed_with("Done") {
        println!("run 2: check_completed_with(\"Done\") says: {why}");
    }

    // A panic on attempt 3 of 4: attempts 1 and 2 fail and are retried, the panic is not.
    // (The engine catches the panic; this hook only keeps the default hook's backtrace
    // out of the demo's output.)
    std::panic::set_hook(Box::new(|info| {
        eprintln!("  (a task panicked, as planned: {info})")
    }));
    let store = Arc::new(InMemoryCheckpointStore::new());
    let flaky = panic_on_attempt(3, Checkout::Done)
        .with_config(TaskConfig::new().with_fixed_retry(4, Duration::ZERO));
    let attempts = flaky.attempts();
    let wf = Workflow::bare()
        .register(Checkout::Ship, flaky)
        .add_exit_state(Checkout::Done)
        .with_checkpoint_store(store.clone());
    let err = wf
        .clone()
        .with_workflow_id("order-9")
        .orchestrate(Checkout::Ship)
        .await
        .unwrap_err();
    assert_eq!(attempts.get(), 3);
    println!(
        "panic_on_attempt: {err} after {} attempts; log kept",
        attempts.get()
    );
    assert_eq!(wf.resume_from("order-9").await?, Checkout::Done);
    assert!(store.load_run("order-9").await?.is_empty());
    println!(
        "panic_on_attempt: resumed, attempt {} succeeded, log cleared",
        attempts.get()
    );
    Ok(())
}
