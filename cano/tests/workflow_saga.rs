//! Sagas in the engine:
//! completed compensatable steps are undone most recent first when a later state fails;
//! a clean rollback returns the original error and clears the log, a dirty one returns
//! `CompensationFailed` and keeps it; completion rows carry the step's JSON output so a
//! resumed run can roll back steps finished by an earlier process.

mod support;

use cano::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Log, Recorder, TestStore, triples};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    A,
    B,
    C,
    D,
    P,
    Fan,
    G,
    Done,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// How a [`Step`]'s `compensate` behaves (after recording its call).
#[derive(Clone, Copy)]
enum Undo {
    Succeed,
    Fail,
    Panic,
    Hang,
}

/// Records of one test: forward runs (by name) and compensations (`(tag, output)`).
#[derive(Clone, Default)]
struct Books {
    forward: Log,
    undone: Arc<Mutex<Vec<(String, u32)>>>,
}

impl Books {
    /// A compensatable step named `name` that outputs `output` and moves to `next`.
    fn step<St>(&self, name: &str, output: u32, next: St) -> Step<St> {
        Step {
            name: name.to_string(),
            tag: name.to_string(),
            output,
            next,
            fail: false,
            undo: Undo::Succeed,
            config: TaskConfig::minimal(),
            books: self.clone(),
        }
    }

    /// A plain (non-compensatable) task named `name` that moves to `next`.
    fn plain(&self, name: &'static str, next: S) -> Plain {
        Plain {
            name,
            next,
            fail: false,
            hang: false,
            forward: self.forward.clone(),
        }
    }

    fn undone(&self) -> Vec<(String, u32)> {
        self.undone.lock().unwrap().clone()
    }
}

/// Owned `(tag, output)` pairs, for comparing with [`Books::undone`].
fn pairs(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(t, o)| (t.to_string(), *o)).collect()
}

/// A compensatable step, generic over the state type. Its forward run logs `name` and
/// fails with `"{name} forward failed"` when `fail` is set; `compensate` records
/// `(tag, output)` and then behaves as `undo` says.
struct Step<St> {
    name: String,
    tag: String,
    output: u32,
    next: St,
    fail: bool,
    undo: Undo,
    config: TaskConfig,
    books: Books,
}

impl<St> Step<St> {
    fn failing(mut self) -> Self {
        self.fail = true;
        self
    }

    fn undo(mut self, undo: Undo) -> Self {
        self.undo = undo;
        self
    }

    fn tagged(mut self, tag: &str) -> Self {
        self.tag = tag.to_string();
        self
    }

    fn with_config(mut self, config: TaskConfig) -> Self {
        self.config = config;
        self
    }
}

#[saga::task]
impl<St> CompensatableTask<St> for Step<St>
where
    St: Clone + fmt::Debug + Send + Sync + 'static,
{
    type Output = u32;

    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.name.clone())
    }

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<St>, u32), CanoError> {
        self.books.forward.push(self.name.clone());
        if self.fail {
            return Err(CanoError::task_execution(format!(
                "{} forward failed",
                self.name
            )));
        }
        Ok((TaskResult::Single(self.next.clone()), self.output))
    }

    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        self.books
            .undone
            .lock()
            .unwrap()
            .push((self.tag.clone(), output));
        match self.undo {
            Undo::Succeed => Ok(()),
            Undo::Fail => Err(CanoError::task_execution(format!(
                "{} compensate failed",
                self.name
            ))),
            Undo::Panic => panic!("{} compensate exploded", self.name),
            Undo::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }
}

/// A plain task: logs its name, then fails (`"{name} failed"`), hangs for an hour, or
/// moves to `next`.
struct Plain {
    name: &'static str,
    next: S,
    fail: bool,
    hang: bool,
    forward: Log,
}

impl Plain {
    fn failing(mut self) -> Self {
        self.fail = true;
        self
    }

    fn hanging(mut self) -> Self {
        self.hang = true;
        self
    }
}

#[task(state = S)]
impl Plain {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.forward.push(self.name);
        if self.hang {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if self.fail {
            return Err(CanoError::task_execution(format!("{} failed", self.name)));
        }
        Ok(TaskResult::Single(self.next.clone()))
    }
}

/// The cursor each `step` call received.
type Calls = Arc<Mutex<Vec<Option<u32>>>>;

/// A stepped task counting `None → 1 → 2 → …` that fails on the step starting from
/// cursor `fail_from`.
struct Grind {
    calls: Calls,
    fail_from: u32,
}

#[task::stepped(state = S)]
impl Grind {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("grind")
    }

    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, S>, CanoError> {
        self.calls.lock().unwrap().push(cursor);
        let from = cursor.unwrap_or(0);
        if from >= self.fail_from {
            return Err(CanoError::task_execution(format!("grind failed at {from}")));
        }
        Ok(StepOutcome::More(from + 1))
    }
}

/// `A(1) → B(2) → C(3) → D`, where D's forward run fails; B compensates as `b_undo` says.
fn abcd(books: &Books, b_undo: Undo) -> Workflow<S> {
    Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::C).undo(b_undo))
        .register_with_compensation(S::C, books.step("C", 3, S::D))
        .register_with_compensation(S::D, books.step("D", 4, S::Done).failing())
        .add_exit_state(S::Done)
}

/// The `errors` of a `CompensationFailed`; panics on any other error.
#[track_caller]
fn compensation_errors(err: CanoError) -> Vec<CanoError> {
    match err {
        CanoError::CompensationFailed { errors } => errors,
        other => panic!("expected CompensationFailed, got {other:?}"),
    }
}

/// The rows of the kinds 0.12.0 writes (entry, completion, cursor). Rows of any other
/// kind (bookkeeping this engine may add, `RowKind` is non-exhaustive) are left out so
/// the assertions below pin exactly the rows 0.12.0 writes too.
fn contract_rows(rows: Vec<CheckpointRow>) -> Vec<CheckpointRow> {
    rows.into_iter()
        .filter(|r| {
            matches!(
                r.kind,
                RowKind::StateEntry | RowKind::CompensationCompletion | RowKind::StepCursor
            )
        })
        .collect()
}

/// The live log of `id`, contract rows only.
fn live(store: &TestStore, id: &str) -> Vec<CheckpointRow> {
    contract_rows(store.rows(id))
}

/// Every row ever appended for `id`, contract rows only.
fn audit(store: &TestStore, id: &str) -> Vec<CheckpointRow> {
    contract_rows(store.audit_rows(id))
}

/// A [`TestStore`] whose `nth` append call (1-based) fails with `disk full`; every other
/// call goes through.
struct FailNth {
    inner: Arc<TestStore>,
    nth: usize,
    calls: Mutex<usize>,
}

impl FailNth {
    fn new(inner: &Arc<TestStore>, nth: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::clone(inner),
            nth,
            calls: Mutex::new(0),
        })
    }
}

#[checkpoint_store]
impl CheckpointStore for FailNth {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if call == self.nth {
            return Err(CanoError::checkpoint_store("disk full"));
        }
        self.inner.append(workflow_id, row).await
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        self.inner.load_run(workflow_id).await
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.inner.clear(workflow_id).await
    }
}

/// Append `rows` to `id` as an earlier process would have.
async fn seed(store: &TestStore, id: &str, rows: Vec<CheckpointRow>) {
    for row in rows {
        store.append(id, row).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// The drain
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn compensations_run_in_reverse_and_the_original_error_is_returned() {
    let books = Books::default();

    let err = abcd(&books, Undo::Succeed)
        .orchestrate(S::A)
        .await
        .unwrap_err();

    assert!(matches!(err, CanoError::TaskExecution(_)), "{err:?}");
    assert_eq!(err.category(), "task_execution");
    assert_eq!(err.message(), "D forward failed");
    assert_eq!(books.forward.entries(), ["A", "B", "C", "D"]);
    assert_eq!(books.undone(), pairs(&[("C", 3), ("B", 2), ("A", 1)]));
}

#[tokio::test]
async fn no_observer_hook_fires_for_compensations() {
    let (books, recorder) = (Books::default(), Recorder::new());
    let wf = abcd(&books, Undo::Succeed).with_observer(recorder.clone());

    wf.orchestrate(S::A).await.unwrap_err();

    assert_eq!(books.undone().len(), 3);
    let mut expected = Vec::new();
    for name in ["A", "B", "C", "D"] {
        expected.extend([
            format!("enter:{name}"),
            format!("start:{name}"),
            format!("success:{name}"),
        ]);
    }
    *expected.last_mut().unwrap() = "failure:D".to_string();
    // Nothing after D's failure: the three compensations are not observer events.
    assert_eq!(recorder.events(), expected);
}

#[tokio::test]
async fn only_compensatable_tasks_are_compensated() {
    let books = Books::default();
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::P))
        .register(S::P, books.plain("plain", S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::D))
        .register_with_compensation(S::D, books.step("D", 4, S::Done).failing())
        .add_exit_state(S::Done);

    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert_eq!(err.message(), "D forward failed");
    assert_eq!(books.forward.entries(), ["A", "plain", "B", "D"]);
    assert_eq!(books.undone(), pairs(&[("B", 2), ("A", 1)]));
}

#[tokio::test]
async fn a_failing_compensation_is_reported_and_the_rest_still_run_once_each() {
    let (books, store) = (Books::default(), TestStore::new());
    // B's own retry policy does not apply to `compensate`.
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(
            S::B,
            books
                .step("B", 2, S::C)
                .undo(Undo::Fail)
                .with_config(TaskConfig::minimal().with_fixed_retry(3, Duration::ZERO)),
        )
        .register_with_compensation(S::C, books.step("C", 3, S::D))
        .register_with_compensation(S::D, books.step("D", 4, S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("dirty");

    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert_eq!(err.category(), "compensation_failed");
    assert_eq!(err.message(), "D forward failed");
    let errors = compensation_errors(err);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].category(), "task_execution");
    assert_eq!(errors[0].message(), "D forward failed");
    assert!(
        errors[1].message().contains("B compensate failed"),
        "{errors:?}"
    );
    assert_eq!(books.undone(), pairs(&[("C", 3), ("B", 2), ("A", 1)]));
    // A dirty rollback keeps the log: three entry + completion pairs and D's entry.
    assert_eq!(live(&store, "dirty"), audit(&store, "dirty"));
    assert_eq!(live(&store, "dirty").len(), 7);
}

#[tokio::test]
async fn a_panicking_compensation_is_caught_and_reported() {
    let books = Books::default();

    let err = abcd(&books, Undo::Panic)
        .orchestrate(S::A)
        .await
        .unwrap_err();

    let errors = compensation_errors(err);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].message(), "D forward failed");
    assert!(errors[1].message().contains("panicked"), "{errors:?}");
    assert!(
        errors[1].message().contains("B compensate exploded"),
        "{errors:?}"
    );
    assert_eq!(books.undone(), pairs(&[("C", 3), ("B", 2), ("A", 1)]));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_compensation_is_cut_off_by_the_attempt_timeout() {
    let books = Books::default();
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(
            S::B,
            books
                .step("B", 2, S::C)
                .undo(Undo::Hang)
                .with_config(TaskConfig::minimal().with_attempt_timeout(ms(50))),
        )
        .register_with_compensation(S::C, books.step("C", 3, S::Done).failing())
        .add_exit_state(S::Done);

    let start = Instant::now();
    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert!(start.elapsed() >= ms(50), "{:?}", start.elapsed());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let errors = compensation_errors(err);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].message(), "C forward failed");
    assert!(matches!(errors[1], CanoError::Timeout(_)), "{errors:?}");
    assert!(
        errors[1].message().contains("exceeded attempt_timeout"),
        "{errors:?}"
    );
    assert_eq!(books.undone(), pairs(&[("B", 2), ("A", 1)]));
}

#[tokio::test]
async fn a_failure_with_nothing_to_compensate_keeps_the_log() {
    let (books, store) = (Books::default(), TestStore::new());
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("empty");

    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert_eq!(err.message(), "A forward failed");
    assert!(books.undone().is_empty());
    assert_eq!(store.summary("empty"), triples(&[(0, "A", "A")]));
}

#[tokio::test]
async fn a_clean_rollback_clears_the_log() {
    let (books, store) = (Books::default(), TestStore::new());
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::C))
        .register_with_compensation(S::C, books.step("C", 3, S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("clean");

    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert_eq!(err.message(), "C forward failed");
    assert_eq!(books.undone(), pairs(&[("B", 2), ("A", 1)]));
    assert_eq!(audit(&store, "clean").len(), 5);
    assert!(store.rows("clean").is_empty());
}

// ---------------------------------------------------------------------------------------
// Registration and name-keyed lookup
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn re_registering_a_state_with_another_compensatable_task_replaces_its_compensator() {
    let (books, store) = (Books::default(), TestStore::new());
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A1", 1, S::B))
        .register_with_compensation(S::A, books.step("A2", 10, S::B))
        .register(S::B, books.plain("b", S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("fresh");
    assert!(format!("{wf:?}").contains("1 compensators"), "{wf:?}");

    let err = wf.orchestrate(S::A).await.unwrap_err();
    assert_eq!(err.message(), "b failed");
    assert_eq!(books.forward.entries(), ["A2", "b"]);
    assert_eq!(books.undone(), pairs(&[("A2", 10)]));

    // A step recorded under the replaced task's name can no longer be rolled back.
    seed(
        &store,
        "old",
        vec![
            CheckpointRow::new(0, "A", "A1"),
            CheckpointRow::new(1, "A", "A1").with_output(json(&1u32)),
            CheckpointRow::new(2, "B", "b"),
        ],
    )
    .await;
    let errors = compensation_errors(wf.resume_from("old").await.unwrap_err());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].message(), "b failed");
    assert_eq!(errors[1].category(), "workflow");
    assert!(
        errors[1]
            .message()
            .contains("no compensator registered for task \"A1\""),
        "{errors:?}"
    );
    assert_eq!(books.undone(), pairs(&[("A2", 10)]));
}

#[tokio::test]
async fn re_registering_a_state_with_plain_register_drops_its_compensator() {
    let (books, store) = (Books::default(), TestStore::new());
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register(S::A, books.plain("a", S::B))
        .register(S::B, books.plain("b", S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("w");
    assert!(format!("{wf:?}").contains("0 compensators"), "{wf:?}");
    seed(
        &store,
        "w",
        vec![
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(json(&1u32)),
            CheckpointRow::new(2, "B", "b"),
        ],
    )
    .await;

    let errors = compensation_errors(wf.resume_from("w").await.unwrap_err());

    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].message(), "b failed");
    assert!(matches!(errors[1], CanoError::Workflow(_)), "{errors:?}");
    assert!(
        errors[1]
            .message()
            .contains("no compensator registered for task \"A\""),
        "{errors:?}"
    );
    assert!(books.undone().is_empty());
    assert_eq!(live(&store, "w").len(), 4, "a dirty rollback keeps the log");
}

/// QUIRK kept from 0.12.0: compensators are keyed by task name, so two states whose
/// tasks report the same name share one compensator — the one registered last — for both
/// entries.
#[tokio::test]
async fn two_states_whose_tasks_share_a_name_share_one_compensator() {
    let books = Books::default();
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("shared", 1, S::B).tagged("first"))
        .register_with_compensation(S::B, books.step("shared", 2, S::C).tagged("second"))
        .register_with_compensation(S::C, books.step("C", 3, S::Done).failing())
        .add_exit_state(S::Done);
    assert!(format!("{wf:?}").contains("2 compensators"), "{wf:?}");

    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert_eq!(err.message(), "C forward failed");
    assert_eq!(books.undone(), pairs(&[("second", 2), ("second", 1)]));
}

/// QUIRK kept from 0.12.0: re-registering one of two same-named states forgets the
/// shared name, so the other state's completed step has no compensator any more.
#[tokio::test]
async fn re_registering_one_of_two_same_named_states_forgets_the_shared_compensator() {
    let books = Books::default();
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("shared", 1, S::B))
        .register_with_compensation(S::B, books.step("shared", 2, S::C))
        .register(S::B, books.plain("b", S::C))
        .register(S::C, books.plain("c", S::Done).failing())
        .add_exit_state(S::Done);

    let errors = compensation_errors(wf.orchestrate(S::A).await.unwrap_err());

    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].message(), "c failed");
    assert!(
        errors[1]
            .message()
            .contains("no compensator registered for task \"shared\""),
        "{errors:?}"
    );
    assert!(books.undone().is_empty());
}

// ---------------------------------------------------------------------------------------
// Stack shape
// ---------------------------------------------------------------------------------------

/// States `0..n` over `u32`, each a compensatable step `step-{i}` outputting `i`; the
/// state `fail_at` (if below `n`) fails forward. Exit state `n`.
fn ladder(books: &Books, n: u32, fail_at: u32) -> Workflow<u32> {
    (0..n)
        .fold(Workflow::bare(), |wf, i| {
            let step = books.step(&format!("step-{i}"), i, i + 1);
            let step = if i == fail_at { step.failing() } else { step };
            wf.register_with_compensation(i, step)
        })
        .add_exit_state(n)
}

#[tokio::test]
async fn a_deep_stack_unwinds_in_exact_reverse_order() {
    let books = Books::default();

    let err = ladder(&books, 60, 59).orchestrate(0).await.unwrap_err();

    assert_eq!(err.message(), "step-59 forward failed");
    let expected: Vec<(String, u32)> = (0..59).rev().map(|i| (format!("step-{i}"), i)).collect();
    assert_eq!(books.undone(), expected);
}

#[tokio::test]
async fn a_failure_at_step_k_compensates_exactly_the_steps_before_it() {
    const N: u32 = 5;
    for k in 0..=N {
        let books = Books::default();
        let outcome = ladder(&books, N, k).orchestrate(0).await;
        if k == N {
            assert_eq!(outcome.unwrap(), N);
        } else {
            assert_eq!(
                outcome.unwrap_err().message(),
                format!("step-{k} forward failed")
            );
        }
        // Without a failure there is nothing to undo.
        let completed = if k == N { 0 } else { k };
        let expected: Vec<(String, u32)> = (0..completed)
            .rev()
            .map(|i| (format!("step-{i}"), i))
            .collect();
        assert_eq!(books.undone(), expected, "failing at {k}");
    }
}

// ---------------------------------------------------------------------------------------
// Completion rows
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn each_completed_step_writes_a_completion_row_with_its_json_output() {
    let (books, store, recorder) = (Books::default(), TestStore::new(), Recorder::new());
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::Done))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("rows")
        .with_observer(recorder.clone());

    assert_eq!(wf.orchestrate(S::A).await.unwrap(), S::Done);

    let rows = store.audit_rows("rows");
    assert_eq!(
        rows,
        [
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(json(&1u32)),
            CheckpointRow::new(2, "B", "B"),
            CheckpointRow::new(3, "B", "B").with_output(json(&2u32)),
            CheckpointRow::new(4, "Done", ""),
        ]
    );
    assert_eq!(rows[1].kind, RowKind::CompensationCompletion);
    assert_eq!(rows[1].output_blob.as_deref(), Some(&b"1"[..]));
    assert!(store.rows("rows").is_empty());
    assert_eq!(
        recorder.events_with("checkpoint:"),
        (0..5)
            .map(|n| format!("checkpoint:rows:{n}"))
            .collect::<Vec<_>>()
    );
    assert!(books.undone().is_empty());
}

#[tokio::test]
async fn a_failing_completion_append_still_compensates_the_step_it_recorded() {
    let (books, store) = (Books::default(), TestStore::new());
    // The second append is A's completion row.
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register(S::B, books.plain("b", S::Done))
        .add_exit_state(S::Done)
        .with_checkpoint_store(FailNth::new(&store, 2))
        .with_workflow_id("c1");

    let err = wf.orchestrate(S::A).await.unwrap_err();

    // A's compensation succeeded: a clean rollback returns the append error itself.
    assert!(matches!(err, CanoError::CheckpointStore(_)), "{err:?}");
    assert!(
        err.message()
            .starts_with("append compensation checkpoint: "),
        "{err}"
    );
    assert!(err.message().contains("disk full"), "{err}");
    assert_eq!(books.forward.entries(), ["A"]);
    assert_eq!(books.undone(), pairs(&[("A", 1)]));
    assert!(
        store.rows("c1").is_empty(),
        "a clean rollback clears the log"
    );
}

#[tokio::test]
async fn a_failing_completion_append_and_a_failing_compensation_are_both_reported() {
    let (books, store) = (Books::default(), TestStore::new());
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B).undo(Undo::Fail))
        .register(S::B, books.plain("b", S::Done))
        .add_exit_state(S::Done)
        .with_checkpoint_store(FailNth::new(&store, 2))
        .with_workflow_id("c2");

    let errors = compensation_errors(wf.orchestrate(S::A).await.unwrap_err());

    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].category(), "checkpoint_store");
    assert!(
        errors[0]
            .message()
            .starts_with("append compensation checkpoint: "),
        "{errors:?}"
    );
    assert_eq!(errors[1].message(), "A compensate failed");
    assert_eq!(books.undone(), pairs(&[("A", 1)]));
    assert_eq!(live(&store, "c2"), [CheckpointRow::new(0, "A", "A")]);
}

/// A failed append after a completed saga step rolls that step back; here the store
/// fails the third append (the next state's entry row).
#[tokio::test]
async fn an_entry_append_failure_after_a_completed_step_rolls_it_back() {
    for undo in [Undo::Fail, Undo::Succeed] {
        let (books, store) = (Books::default(), TestStore::new());
        let wf = Workflow::bare()
            .register_with_compensation(S::A, books.step("A", 1, S::P).undo(undo))
            .register(S::P, books.plain("p", S::Done))
            .add_exit_state(S::Done)
            .with_checkpoint_store(FailNth::new(&store, 3))
            .with_workflow_id("e");

        let err = wf.orchestrate(S::A).await.unwrap_err();

        assert_eq!(books.forward.entries(), ["A"], "P never ran");
        assert_eq!(books.undone(), pairs(&[("A", 1)]), "A compensated once");
        let append_error = match undo {
            Undo::Fail => {
                let mut errors = compensation_errors(err);
                assert_eq!(errors.len(), 2, "{errors:?}");
                assert_eq!(errors[1].message(), "A compensate failed");
                // The two durable rows stay for inspection.
                assert_eq!(
                    live(&store, "e"),
                    [
                        CheckpointRow::new(0, "A", "A"),
                        CheckpointRow::new(1, "A", "A").with_output(json(&1u32)),
                    ]
                );
                errors.remove(0)
            }
            _ => {
                assert!(
                    store.rows("e").is_empty(),
                    "a clean rollback clears the log"
                );
                err
            }
        };
        assert_eq!(append_error.category(), "checkpoint_store");
        assert!(
            append_error.message().starts_with("append checkpoint: "),
            "{append_error}"
        );
        assert!(
            append_error.message().contains("disk full"),
            "{append_error}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Resume
// ---------------------------------------------------------------------------------------

/// `A(1) → B(2) → C` (C fails forward) over `store`.
fn abc(books: &Books, store: &Arc<TestStore>) -> Workflow<S> {
    Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::C))
        .register_with_compensation(S::C, books.step("C", 3, S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
}

#[tokio::test]
async fn a_second_resume_does_not_compensate_a_superseded_completion() {
    let (books, store) = (Books::default(), TestStore::new());
    seed(
        &store,
        "g2",
        vec![
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(json(&1u32)),
            CheckpointRow::new(2, "B", "B"),
            CheckpointRow::new(3, "B", "B").with_output(json(&2u32)),
            // A first resume re-entered B (superseding row 3) and died inside B.
            CheckpointRow {
                output_blob: Some(br#"{"resumed":true,"supersedes":3}"#.to_vec()),
                ..CheckpointRow::new(4, "B", "B")
            },
        ],
    )
    .await;

    let err = abc(&books, &store).resume_from("g2").await.unwrap_err();

    assert_eq!(err.message(), "C forward failed");
    assert_eq!(books.forward.entries(), ["B", "C"]);
    // B's superseded output (row 3) is not compensated; its fresh run is, once.
    assert_eq!(books.undone(), pairs(&[("B", 2), ("A", 1)]));
    assert!(store.rows("g2").is_empty());
}

#[tokio::test]
async fn resume_rehydrates_the_stack_without_double_compensating_the_resume_point() {
    let (books, store) = (Books::default(), TestStore::new());
    seed(
        &store,
        "g",
        vec![
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(json(&1u32)),
            CheckpointRow::new(2, "B", "B"),
            CheckpointRow::new(3, "B", "B").with_output(json(&2u32)),
        ],
    )
    .await;

    let err = abc(&books, &store).resume_from("g").await.unwrap_err();

    // The last row is B's completion: B is the resume point, re-runs and records a
    // fresh output; only that one is compensated.
    assert!(matches!(err, CanoError::TaskExecution(_)), "{err:?}");
    assert_eq!(err.message(), "C forward failed");
    assert_eq!(books.forward.entries(), ["B", "C"]);
    assert_eq!(books.undone(), pairs(&[("B", 2), ("A", 1)]));
    assert_eq!(
        audit(&store, "g")[4..],
        [
            // The re-entry row names the completion row it supersedes (COMPATIBILITY.md).
            CheckpointRow {
                output_blob: Some(br#"{"resumed":true,"supersedes":3}"#.to_vec()),
                ..CheckpointRow::new(4, "B", "B")
            },
            CheckpointRow::new(5, "B", "B").with_output(json(&2u32)),
            CheckpointRow::new(6, "C", "C"),
        ]
    );
    assert!(
        store.rows("g").is_empty(),
        "a clean rollback clears the log"
    );
}

#[tokio::test]
async fn resume_at_the_failing_state_compensates_every_recorded_step() {
    let (books, store) = (Books::default(), TestStore::new());
    seed(
        &store,
        "g",
        vec![
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(json(&7u32)),
            CheckpointRow::new(2, "B", "B"),
            CheckpointRow::new(3, "B", "B").with_output(json(&8u32)),
            CheckpointRow::new(4, "C", "C"),
        ],
    )
    .await;

    let err = abc(&books, &store).resume_from("g").await.unwrap_err();

    assert_eq!(err.message(), "C forward failed");
    assert_eq!(books.forward.entries(), ["C"]);
    assert_eq!(books.undone(), pairs(&[("B", 8), ("A", 7)]));
    assert!(store.rows("g").is_empty());
}

#[tokio::test]
async fn resume_after_a_crash_mid_step_compensates_the_fresh_outputs() {
    let (books, store) = (Books::default(), TestStore::new());
    store.seed("g", &[(0, "A", "A")]);
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 11, S::B))
        .register_with_compensation(S::B, books.step("B", 22, S::C))
        .register_with_compensation(S::C, books.step("C", 33, S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone());

    let err = wf.resume_from("g").await.unwrap_err();

    assert_eq!(err.message(), "C forward failed");
    assert_eq!(books.forward.entries(), ["A", "B", "C"]);
    assert_eq!(books.undone(), pairs(&[("B", 22), ("A", 11)]));
    assert!(store.rows("g").is_empty());
}

#[tokio::test]
async fn a_rehydrated_step_without_a_registered_compensator_makes_the_rollback_dirty() {
    let (books, store) = (Books::default(), TestStore::new());
    seed(
        &store,
        "g",
        vec![
            CheckpointRow::new(0, "A", "ghost"),
            CheckpointRow::new(1, "A", "ghost").with_output(json(&1u32)),
            CheckpointRow::new(2, "B", "B"),
        ],
    )
    .await;
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone());

    let errors = compensation_errors(wf.resume_from("g").await.unwrap_err());

    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].message(), "B forward failed");
    assert!(matches!(errors[1], CanoError::Workflow(_)), "{errors:?}");
    assert!(
        errors[1]
            .message()
            .contains("no compensator registered for task \"ghost\""),
        "{errors:?}"
    );
    assert!(books.undone().is_empty());
    assert_eq!(live(&store, "g").len(), 4, "a dirty rollback keeps the log");
}

#[tokio::test]
async fn recorded_outputs_are_read_back_as_json() {
    let (books, store) = (Books::default(), TestStore::new());
    seed(
        &store,
        "g",
        vec![
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(serde_json::to_vec(&7u32).unwrap()),
            CheckpointRow::new(2, "B", "B"),
        ],
    )
    .await;
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone());

    wf.resume_from("g").await.unwrap_err();

    assert_eq!(books.undone(), pairs(&[("A", 7)]));
}

/// QUIRK kept from 0.12.0: an output that does not deserialize is a `Generic` error.
#[tokio::test]
async fn an_unreadable_recorded_output_is_a_generic_error() {
    let (books, store) = (Books::default(), TestStore::new());
    seed(
        &store,
        "g",
        vec![
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(json(&"seven")),
            CheckpointRow::new(2, "B", "B"),
        ],
    )
    .await;
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone());

    let errors = compensation_errors(wf.resume_from("g").await.unwrap_err());

    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(matches!(errors[1], CanoError::Generic(_)), "{errors:?}");
    assert!(
        errors[1]
            .message()
            .contains("deserialize compensation output for `A`"),
        "{errors:?}"
    );
    assert!(books.undone().is_empty(), "compensate was never called");
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

/// Account balances shared by every run.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<HashMap<String, i64>>>);

impl Resource for Ledger {}

impl Ledger {
    fn add(&self, account: &str, amount: i64) {
        *self
            .0
            .lock()
            .unwrap()
            .entry(account.to_string())
            .or_default() += amount;
    }

    fn balance(&self, account: &str) -> i64 {
        self.0.lock().unwrap().get(account).copied().unwrap_or(0)
    }
}

/// Charges `account` 100 at step `idx`; fails before touching the ledger at `fail_at`.
struct Charge {
    idx: u32,
    account: String,
    fail_at: u32,
}

#[saga::task(state = u32)]
impl Charge {
    type Output = (String, i64);

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        format!("charge-{}", self.idx).into()
    }

    async fn run(&self, res: &Resources) -> Result<(TaskResult<u32>, (String, i64)), CanoError> {
        tokio::task::yield_now().await;
        if self.idx == self.fail_at {
            return Err(CanoError::task_execution(format!(
                "charge {} declined",
                self.idx
            )));
        }
        res.get::<Ledger, _>("ledger")?.add(&self.account, 100);
        Ok((
            TaskResult::Single(self.idx + 1),
            (self.account.clone(), 100),
        ))
    }

    async fn compensate(
        &self,
        res: &Resources,
        (account, amount): (String, i64),
    ) -> Result<(), CanoError> {
        tokio::task::yield_now().await;
        res.get::<Ledger, _>("ledger")?.add(&account, -amount);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sagas_with_injected_failures_each_balance_out() {
    let ledger = Ledger::default();
    let runs: Vec<_> = (0..40u32)
        .map(|i| {
            let account = format!("acct-{i}");
            let fail_at = i % 4;
            let wf = (0..3)
                .fold(
                    Workflow::new(Resources::new().insert("ledger", ledger.clone())),
                    |wf, idx| {
                        wf.register_with_compensation(
                            idx,
                            Charge {
                                idx,
                                account: account.clone(),
                                fail_at,
                            },
                        )
                    },
                )
                .add_exit_state(3);
            tokio::spawn(async move { (account, fail_at, wf.orchestrate(0).await) })
        })
        .collect();

    let (mut completed, mut rolled_back) = (0, 0);
    for run in runs {
        let (account, fail_at, outcome) = run.await.unwrap();
        if fail_at == 3 {
            assert_eq!(outcome.unwrap(), 3, "{account}");
            assert_eq!(ledger.balance(&account), 300, "{account}");
            completed += 1;
        } else {
            let err = outcome.unwrap_err();
            assert_eq!(err.message(), format!("charge {fail_at} declined"));
            assert_eq!(ledger.balance(&account), 0, "{account}");
            rolled_back += 1;
        }
    }
    assert_eq!((completed, rolled_back), (10, 30));
}

// ---------------------------------------------------------------------------------------
// What triggers the drain
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_workflow_timeout_drops_the_run_without_compensating_and_keeps_the_log() {
    let (books, store) = (Books::default(), TestStore::new());
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register(S::B, books.plain("b", S::Done).hanging())
        .add_exit_state(S::Done)
        .with_timeout(ms(100))
        .with_checkpoint_store(store.clone())
        .with_workflow_id("t");

    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert!(matches!(err, CanoError::Workflow(_)), "{err:?}");
    assert_eq!(err.message(), "Workflow timeout exceeded");
    assert!(books.undone().is_empty());
    assert_eq!(
        store.rows("t"),
        [
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(json(&1u32)),
            CheckpointRow::new(2, "B", "b"),
        ]
    );
}

#[tokio::test]
async fn a_failing_split_after_compensatable_steps_triggers_the_rollback() {
    let books = Books::default();
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::B))
        .register_with_compensation(S::B, books.step("B", 2, S::Fan))
        .register_split(
            S::Fan,
            vec![
                books.plain("left", S::Done).failing(),
                books.plain("right", S::Done),
            ],
            JoinConfig::new(JoinStrategy::All, S::Done),
        )
        .add_exit_state(S::Done);

    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert!(
        !matches!(err, CanoError::CompensationFailed { .. }),
        "{err:?}"
    );
    assert_eq!(books.undone(), pairs(&[("B", 2), ("A", 1)]));
}

#[tokio::test]
async fn a_failing_stepped_state_rolls_back_the_steps_before_it() {
    let (books, store, calls) = (Books::default(), TestStore::new(), Calls::default());
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::G))
        .register_stepped(
            S::G,
            Grind {
                calls: Arc::clone(&calls),
                fail_from: 2,
            },
        )
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("sg");

    let err = wf.orchestrate(S::A).await.unwrap_err();

    assert_eq!(err.message(), "grind failed at 2");
    assert_eq!(*calls.lock().unwrap(), [None, Some(1), Some(2)]);
    assert_eq!(books.undone(), pairs(&[("A", 1)]));
    let kinds: Vec<RowKind> = audit(&store, "sg").iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RowKind::StateEntry,
            RowKind::CompensationCompletion,
            RowKind::StateEntry,
            RowKind::StepCursor,
            RowKind::StepCursor,
        ]
    );
    assert!(
        store.rows("sg").is_empty(),
        "a clean rollback clears the log"
    );
}

#[tokio::test]
async fn a_resumed_stepped_state_failing_rolls_back_a_rehydrated_step_but_not_its_cursors() {
    let (books, store, calls) = (Books::default(), TestStore::new(), Calls::default());
    // The cursor row at 3 is not the resume point (4 is): it must still not be taken for
    // a completed saga step.
    seed(
        &store,
        "sg",
        vec![
            CheckpointRow::new(0, "A", "A"),
            CheckpointRow::new(1, "A", "A").with_output(json(&42u32)),
            CheckpointRow::new(2, "G", "grind"),
            CheckpointRow::new(3, "G", "grind").with_cursor(json(&1u32)),
            CheckpointRow::new(4, "G", "grind").with_cursor(json(&2u32)),
        ],
    )
    .await;
    let wf = Workflow::bare()
        .register_with_compensation(S::A, books.step("A", 1, S::G))
        .register_stepped(
            S::G,
            Grind {
                calls: Arc::clone(&calls),
                fail_from: 2,
            },
        )
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone());

    let err = wf.resume_from("sg").await.unwrap_err();

    // A clean rollback: the original error, not `CompensationFailed`.
    assert!(matches!(err, CanoError::TaskExecution(_)), "{err:?}");
    assert_eq!(err.message(), "grind failed at 2");
    assert_eq!(*calls.lock().unwrap(), [Some(2)]);
    assert_eq!(books.forward.entries(), Vec::<String>::new());
    assert_eq!(books.undone(), pairs(&[("A", 42)]));
    assert!(store.rows("sg").is_empty());
}

/// A compensatable task that keeps the trait's default `name` and `config`; its forward
/// run fails `flaky` times before it succeeds.
struct Defaults {
    flaky: std::sync::atomic::AtomicU32,
    calls: std::sync::atomic::AtomicU32,
    undone: Arc<Mutex<Vec<u32>>>,
}

#[saga::task(state = S)]
impl Defaults {
    type Output = u32;

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        use std::sync::atomic::Ordering;
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .flaky
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(CanoError::task_execution("not yet"));
        }
        Ok((TaskResult::Single(S::B), 41))
    }

    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        self.undone.lock().unwrap().push(output);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_step_without_name_or_config_uses_its_type_path_and_the_default_retries() {
    let (books, store) = (Books::default(), TestStore::new());
    let undone = Arc::new(Mutex::new(Vec::new()));
    let step = Defaults {
        // The default config allows three retries: two failures are absorbed.
        flaky: 2.into(),
        calls: 0.into(),
        undone: undone.clone(),
    };
    let wf = Workflow::bare()
        .register_with_compensation(S::A, step)
        .register(S::B, books.plain("B", S::Done).failing())
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("defaults");
    let err = wf.orchestrate(S::A).await.unwrap_err();
    assert_eq!(err.message(), "B failed", "{err}");
    let name = std::any::type_name::<Defaults>();
    let rows = store.audit_rows("defaults");
    assert_eq!(
        rows[..2],
        [
            CheckpointRow::new(0, "A", name),
            CheckpointRow::new(1, "A", name).with_output(json(&41u32)),
        ]
    );
    // The compensator is found under the default name.
    assert_eq!(*undone.lock().unwrap(), [41]);
}
