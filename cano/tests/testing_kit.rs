//! The testing kit (`cano::testing`, feature `testing`) checked against real runs.
#![cfg(feature = "testing")]

use cano::prelude::*;
use cano::testing::{
    InMemoryCheckpointStore, RecordedEvent, RecordingObserver, TestResources,
    assert_compensation_ran, panic_on_attempt,
};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Start,
    Left,
    Right,
    Reserve,
    Charge,
    Fail,
    Done,
}

/// Moves to `0`.
struct Go(S);

#[task(state = S)]
impl Go {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        if self.0 == S::Fail {
            return Err(CanoError::task_execution("out of stock"));
        }
        Ok(TaskResult::Single(self.0.clone()))
    }
}

/// A saga step named `name` that moves to `next`.
struct Step {
    name: &'static str,
    next: S,
}

#[saga::task(state = S)]
impl Step {
    type Output = ();
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        self.name.into()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, ()), CanoError> {
        Ok((TaskResult::Single(self.next.clone()), ()))
    }
    async fn compensate(&self, _res: &Resources, _output: ()) -> Result<(), CanoError> {
        Ok(())
    }
}

fn branching(recorder: &Arc<RecordingObserver>) -> Workflow<S> {
    Workflow::new(TestResources::new().with_store("store").build())
        .register(S::Start, Go(S::Left))
        .register(S::Left, Go(S::Done))
        .register(S::Right, Go(S::Done))
        .add_exit_state(S::Done)
        .with_observer(recorder.clone())
}

#[tokio::test]
async fn the_recorded_path_and_outcome_match_the_run() {
    let recorder = Arc::new(RecordingObserver::new());
    let wf = branching(&recorder);
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Done));
    recorder.assert_path(&["Start", "Left", "Done"]);
    recorder.assert_completed_with("Done");
    assert_eq!(recorder.last_outcome(), Some(Ok("Done".to_string())));
    assert_eq!(
        recorder.check_path(&["Start", "Right", "Done"]),
        Err(
            "the run took the path [\"Start\", \"Left\", \"Done\"], expected [\"Start\", \
             \"Right\", \"Done\"]: they part at step 1 (\"Left\" instead of \"Right\")"
                .to_string()
        )
    );
    assert_eq!(
        recorder.check_path(&["Start", "Left"]),
        Err(
            "the run took the path [\"Start\", \"Left\", \"Done\"], expected [\"Start\", \
             \"Left\"]: they part at step 2 (\"Done\" instead of the end)"
                .to_string()
        )
    );
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        recorder.assert_path(&["Start"])
    }));
    assert!(panicked.is_err(), "a wrong path panics");
    // Dead states: Right never ran; exit-only states are not asked for.
    assert_eq!(
        recorder.assert_registered_states_entered(&wf),
        Err(vec!["Right".to_string()])
    );
    assert_eq!(
        recorder.assert_all_states_entered(&[S::Start, S::Charge, S::Right]),
        Err(vec!["Charge".to_string(), "Right".to_string()])
    );
    assert_eq!(
        recorder.assert_all_states_entered(&[S::Start, S::Done]),
        Ok(())
    );
    // The events of the run, in order.
    let events = recorder.take();
    assert!(matches!(&events[0], RecordedEvent::StateEntered { state } if state == "Start"));
    assert!(matches!(&events[1], RecordedEvent::TaskStarted { .. }));
    assert!(matches!(&events[2], RecordedEvent::TaskSucceeded { .. }));
    assert!(matches!(
        events.last(),
        Some(RecordedEvent::RunEnded { outcome: Ok(s) }) if s == "Done"
    ));
    assert!(recorder.events().is_empty(), "take empties the record");
    assert_eq!(
        recorder.check_completed_with("Done"),
        Err("no run has ended yet, expected one to end in \"Done\"".to_string())
    );
}

#[tokio::test]
async fn a_failed_run_and_its_rollback_are_recorded() {
    let recorder = Arc::new(RecordingObserver::new());
    let wf = Workflow::bare()
        .register_with_compensation(
            S::Reserve,
            Step {
                name: "reserve",
                next: S::Charge,
            },
        )
        .register_with_compensation(
            S::Charge,
            Step {
                name: "charge",
                next: S::Fail,
            },
        )
        .register(S::Fail, Go(S::Fail))
        .add_exit_state(S::Done)
        .with_observer(recorder.clone());
    let err = wf.orchestrate(S::Reserve).await.unwrap_err();
    assert_eq!(err.message(), "out of stock");
    recorder.assert_compensated(&["charge", "reserve"]);
    assert_compensation_ran(&recorder.compensated(), &["charge", "reserve"]);
    let wrong = std::panic::catch_unwind(|| assert_compensation_ran(&["reserve"], &["charge"]));
    assert!(wrong.is_err());
    assert_eq!(
        recorder.check_completed_with("Done"),
        Err(
            "the run failed (Task execution error: out of stock), expected it to end in \"Done\""
                .to_string()
        )
    );
    assert!(recorder.events().iter().any(|e| matches!(
        e,
        RecordedEvent::RollbackStarted { steps: 2, cause } if cause.message() == "out of stock"
    )));
    assert!(recorder.events().iter().any(|e| matches!(
        e,
        RecordedEvent::TaskFailed { error, .. } if error.message() == "out of stock"
    )));
}

#[tokio::test]
async fn a_panic_is_not_retried_and_a_resume_runs_the_next_attempt() {
    let store = Arc::new(InMemoryCheckpointStore::new());
    let recorder = Arc::new(RecordingObserver::new());
    let task = panic_on_attempt(3, S::Done)
        .with_config(TaskConfig::new().with_fixed_retry(10, Duration::ZERO));
    let attempts = task.attempts();
    let wf = Workflow::bare()
        .register(S::Start, task)
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_observer(recorder.clone());
    let err = wf
        .clone()
        .with_workflow_id("run-1")
        .orchestrate(S::Start)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Task execution error: panic: panic_on_attempt: attempt 3 panics"
    );
    assert_eq!(attempts.get(), 3, "two errors retried, the panic not");
    let retries = recorder
        .events()
        .iter()
        .filter(|e| matches!(e, RecordedEvent::Retry { .. }))
        .count();
    assert_eq!(retries, 2);
    assert_eq!(
        store.load_run("run-1").await.unwrap().len(),
        1,
        "the log is kept"
    );
    recorder.clear();
    assert_eq!(wf.resume_from("run-1").await, Ok(S::Done));
    assert_eq!(attempts.get(), 4);
    recorder.assert_path(&["Start", "Done"]);
    recorder.assert_completed_with("Done");
    assert!(matches!(
        &recorder.events()[0],
        RecordedEvent::Resume { workflow_id, sequence: 0 } if workflow_id == "run-1"
    ));
    assert!(store.load_run("run-1").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_in_memory_store_keeps_the_contract() {
    let store = InMemoryCheckpointStore::new();
    store
        .append("a", CheckpointRow::new(1, "B", "b"))
        .await
        .unwrap();
    store
        .append("a", CheckpointRow::new(0, "A", "a"))
        .await
        .unwrap();
    store
        .append("b", CheckpointRow::new(0, "A", "a"))
        .await
        .unwrap();
    let err = store
        .append("a", CheckpointRow::new(1, "C", "c"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("conflict"), "{err}");
    let rows = store.load_run("a").await.unwrap();
    assert_eq!(rows.iter().map(|r| r.sequence).collect::<Vec<_>>(), [0, 1]);
    store.clear("a").await.unwrap();
    assert!(store.load_run("a").await.unwrap().is_empty());
    assert_eq!(store.load_run("b").await.unwrap().len(), 1);
    store.clear("never").await.unwrap();
    use cano::ListRuns;
    assert_eq!(store.list_runs().await.unwrap().len(), 1);
}

struct Limit(u64);
impl Resource for Limit {}

#[test]
fn test_resources_hold_what_they_were_given() {
    let res = TestResources::<String>::new()
        .with_store("kv".to_string())
        .with_resource("n".to_string(), Limit(7))
        .build();
    assert!(res.get::<MemoryStore, _>("kv").is_ok());
    assert_eq!(res.get::<Limit, _>("n").unwrap().0, 7);
    assert!(res.get::<Limit, _>("missing").is_err());
}
