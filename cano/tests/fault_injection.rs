//! Fault injection on the checkpoint store: a [`FaultyStore`] wraps a real
//! [`RedbCheckpointStore`] and fails, delays or panics on chosen calls.
//!
//! For every fault the tests check that
//!
//! * it surfaces to the caller, with 0.12.0's error texts
//!   (`append checkpoint: …`, `append step cursor checkpoint: …`,
//!   `append compensation checkpoint: …`, `load checkpoint run "…": …`, and our
//!   `append rollback checkpoint: …`), or as a panic for a panicking store;
//! * the log on disk is exactly what the inner store accepted, in order: dense from 0,
//!   nothing before the fault lost, nothing reordered or half-written — read back
//!   through a second path (straight from redb, and after reopening the file);
//! * `resume_from` then reaches the end an unfaulted run reaches: the same final state,
//!   the same side effects once the at-least-once re-run of the state at the fault point
//!   is folded away, and the log cleared.
//!
//! The workflow under test has every kind of checkpointed state:
//! `Start` (plain) → `Load` (stepped, three steps) → `Reserve`, `Charge` (saga steps,
//! outputs 7 and 8) → `Ship` (plain; can be told to fail) → `Done`.
//!
//! Panics: a panic in a checkpoint-store call is **not** caught by the engine (as in
//! 0.12.0). Observed: a store panic unwinds out of `orchestrate` / `resume_from` (a
//! `JoinError` for a spawned run); nothing after it runs — no saga
//! rollback, no resource teardown (as when the future is dropped); the file keeps every
//! row that was durable, and `resume_from` continues like after a crash.
//!
//! Engine bugs this suite found (now fixed) are pinned by the regression tests at the end:
//! a failed `RollbackStarted` row no longer leaves orphan `Compensated` rows, and a
//! failed append's sequence is never reused (a lost acknowledgement stored it anyway).
#![cfg(feature = "recovery")]

mod fault;
mod support;

use cano::prelude::*;
use fault::{
    Call, Fault, FaultyStore, Op, Returned, Rng, Trigger, assert_dense, panic_text,
    quiet_injected_panics,
};
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::{Log, Probe, Recorder};
use tokio::time::Instant;

const ID: &str = "order-17";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Start,
    Load,
    Reserve,
    Charge,
    Ship,
    Done,
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------------------
// The workflow
// ---------------------------------------------------------------------------------------

/// A plain task: records `name` when it succeeds; fails (`"{name} failed"`) while its
/// failure budget lasts.
struct Plain {
    name: &'static str,
    next: S,
    fx: Log,
    failures: Arc<AtomicU32>,
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
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(CanoError::task_execution(format!("{} failed", self.name)));
        }
        self.fx.push(self.name);
        Ok(TaskResult::Single(self.next.clone()))
    }
}

/// A stepped task: cursor `None → 1 → 2 → done`, recording `load:{n}` per step.
struct Load {
    fx: Log,
}

#[task::stepped(state = S)]
impl Load {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("load")
    }
    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, S>, CanoError> {
        let n = cursor.unwrap_or(0);
        self.fx.push(format!("load:{n}"));
        Ok(if n + 1 < 3 {
            StepOutcome::More(n + 1)
        } else {
            StepOutcome::Done(TaskResult::Single(S::Reserve))
        })
    }
}

/// A saga step: records `name` forward and `undo:{name}:{output}` when compensated.
struct Step {
    name: &'static str,
    output: u32,
    next: S,
    fx: Log,
    /// How many times `compensate` fails before it succeeds.
    undo_failures: Arc<AtomicU32>,
}

#[saga::task(state = S)]
impl Step {
    type Output = u32;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        self.fx.push(self.name);
        Ok((TaskResult::Single(self.next.clone()), self.output))
    }
    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        let failing = self
            .undo_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            self.fx.push(format!("undo-failed:{}", self.name));
            return Err(CanoError::task_execution("refund service down"));
        }
        self.fx.push(format!("undo:{}:{output}", self.name));
        Ok(())
    }
}

/// The side effects of an unfaulted run.
const FULL: [&str; 7] = [
    "start", "load:0", "load:1", "load:2", "reserve", "charge", "ship",
];

/// The side effects of an unfaulted run whose `Ship` fails: both saga steps undone.
const ROLLED_BACK: [&str; 8] = [
    "start",
    "load:0",
    "load:1",
    "load:2",
    "reserve",
    "charge",
    "undo:charge:8",
    "undo:reserve:7",
];

/// The rows an unfaulted run appends, in order (the run clears them at the end).
fn reference_rows() -> Vec<CheckpointRow> {
    vec![
        CheckpointRow::new(0, "Start", "start"),
        CheckpointRow::new(1, "Load", "load"),
        CheckpointRow::new(2, "Load", "load").with_cursor(b"1".to_vec()),
        CheckpointRow::new(3, "Load", "load").with_cursor(b"2".to_vec()),
        CheckpointRow::new(4, "Reserve", "reserve"),
        CheckpointRow::new(5, "Reserve", "reserve").with_output(b"7".to_vec()),
        CheckpointRow::new(6, "Charge", "charge"),
        CheckpointRow::new(7, "Charge", "charge").with_output(b"8".to_vec()),
        CheckpointRow::new(8, "Ship", "ship"),
        CheckpointRow::new(9, "Done", ""),
    ]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `log` with consecutive repeats folded away (the re-run at a fault point).
fn folded(log: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in log {
        if out.last() != Some(e) {
            out.push(e.clone());
        }
    }
    out
}

/// How many consecutive repeats `log` has.
fn repeats(log: &[String]) -> usize {
    log.len() - folded(log).len()
}

fn store_error(text: &str) -> CanoError {
    CanoError::checkpoint_store(text)
}

/// One test's world: a redb file, the fault wrapper around it, the side-effect log.
struct Fixture {
    dir: tempfile::TempDir,
    redb: Arc<RedbCheckpointStore>,
    store: Arc<FaultyStore>,
    fx: Log,
    resources: Log,
    /// How many times `Ship` fails before it succeeds.
    ship_failures: Arc<AtomicU32>,
    /// How many times undoing `Charge` fails before it succeeds.
    charge_undo_failures: Arc<AtomicU32>,
}

impl Fixture {
    fn new() -> Self {
        quiet_injected_panics();
        let dir = tempfile::tempdir().expect("tempdir");
        let redb = Arc::new(RedbCheckpointStore::new(dir.path().join("ckpt.redb")).unwrap());
        let store = FaultyStore::new(redb.clone());
        Self {
            dir,
            redb,
            store,
            fx: Log::new(),
            resources: Log::new(),
            ship_failures: Arc::default(),
            charge_undo_failures: Arc::default(),
        }
    }

    /// Undoing `Charge` fails `n` times before it succeeds.
    fn charge_undo_fails(self, n: u32) -> Self {
        self.charge_undo_failures.store(n, Ordering::SeqCst);
        self
    }

    /// `Ship` fails `n` times (`u32::MAX`: always) before it succeeds.
    fn ship_fails(self, n: u32) -> Self {
        self.ship_failures.store(n, Ordering::SeqCst);
        self
    }

    fn workflow(&self) -> Workflow<S> {
        let fx = &self.fx;
        let step = |name, output, next| Step {
            name,
            output,
            next,
            fx: fx.clone(),
            undo_failures: if name == "charge" {
                self.charge_undo_failures.clone()
            } else {
                Arc::default()
            },
        };
        Workflow::new(Resources::new().insert("probe", Probe::new("R", &self.resources)))
            .register(
                S::Start,
                Plain {
                    name: "start",
                    next: S::Load,
                    fx: fx.clone(),
                    failures: Arc::default(),
                },
            )
            .register_stepped(S::Load, Load { fx: fx.clone() })
            .register_with_compensation(S::Reserve, step("reserve", 7, S::Charge))
            .register_with_compensation(S::Charge, step("charge", 8, S::Ship))
            .register(
                S::Ship,
                Plain {
                    name: "ship",
                    next: S::Done,
                    fx: fx.clone(),
                    failures: self.ship_failures.clone(),
                },
            )
            .add_exit_state(S::Done)
            .with_checkpoint_store(self.store.clone())
            .with_workflow_id(ID)
    }

    fn effects(&self) -> Vec<String> {
        self.fx.entries()
    }

    /// The run's rows, read from redb without the wrapper.
    async fn disk(&self) -> Vec<CheckpointRow> {
        self.redb.load_run(ID).await.expect("redb load")
    }

    /// Wait for in-flight writes, then check that the file holds exactly the rows the
    /// inner store accepted since the last clear, dense and in order. Returns them.
    async fn check_disk(&self) -> Vec<CheckpointRow> {
        self.store.settle().await;
        let rows = self.disk().await;
        assert_eq!(
            rows,
            self.store.expected_rows(ID),
            "the file does not hold exactly the rows the store accepted"
        );
        assert_dense(&rows, "log on disk");
        rows
    }

    /// Close the file (every workflow must be dropped) and open it again, after checking
    /// its raw keys: one id, dense sequences.
    async fn reopen(self) -> Self {
        self.store.settle().await;
        let expected = self.store.expected_rows(ID);
        let Self {
            dir,
            redb,
            store,
            fx,
            resources,
            ship_failures,
            charge_undo_failures,
        } = self;
        drop(store);
        assert_eq!(Arc::strong_count(&redb), 1, "a store handle is still alive");
        drop(redb);
        let keys = support::redb_keys(&dir.path().join("ckpt.redb"));
        let want: Vec<(String, u64)> = expected
            .iter()
            .map(|r| (ID.to_string(), r.sequence))
            .collect();
        assert_eq!(keys, want, "raw keys in the file");
        let redb = Arc::new(RedbCheckpointStore::new(dir.path().join("ckpt.redb")).unwrap());
        assert_eq!(
            redb.load_run(ID).await.unwrap(),
            expected,
            "rows after reopening"
        );
        let store = FaultyStore::new(redb.clone());
        Self {
            dir,
            redb,
            store,
            fx,
            resources,
            ship_failures,
            charge_undo_failures,
        }
    }

    async fn orchestrate(&self) -> Outcome {
        let wf = self.workflow();
        spawned(async move { wf.orchestrate(S::Start).await }).await
    }

    async fn resume(&self) -> Outcome {
        let wf = self.workflow();
        spawned(async move { wf.resume_from(ID).await }).await
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Returned(Result<S, CanoError>),
    Panicked(String),
}

impl Outcome {
    fn err(self) -> CanoError {
        match self {
            Self::Returned(Err(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }
    fn panic_message(self) -> String {
        match self {
            Self::Panicked(m) => m,
            other => panic!("expected a panic, got {other:?}"),
        }
    }
}

/// Run `fut` as its own task, so a panic inside it comes back as a value.
async fn spawned<F>(fut: F) -> Outcome
where
    F: Future<Output = Result<S, CanoError>> + Send + 'static,
{
    match tokio::spawn(fut).await {
        Ok(result) => Outcome::Returned(result),
        Err(e) => Outcome::Panicked(panic_text(&*e.into_panic())),
    }
}

fn ops(calls: &[Call]) -> Vec<(Op, Option<u64>, Option<RowKind>)> {
    calls
        .iter()
        .map(|c| {
            (
                c.op,
                c.row.as_ref().map(|r| r.sequence),
                c.row.as_ref().map(|r| r.kind),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The unfaulted reference
// ---------------------------------------------------------------------------------------

/// Pins the call indices the other tests aim at: appends 0–9 are the rows of
/// [`reference_rows`], call 10 is the clear.
#[tokio::test]
async fn the_unfaulted_run_makes_ten_appends_and_a_clear() {
    let t = Fixture::new();
    assert_eq!(t.orchestrate().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(t.effects(), strings(&FULL));
    let journal = t.store.journal();
    let appended: Vec<CheckpointRow> = journal.iter().filter_map(|c| c.row.clone()).collect();
    assert_eq!(appended, reference_rows());
    assert_eq!(journal.len(), 11);
    assert_eq!(journal[10].op, Op::Clear);
    assert!(journal.iter().all(|c| c.returned == Returned::Ok));
    assert!(t.check_disk().await.is_empty());
}

/// With `Ship` failing, the run rolls back: a `RollbackStarted` row and one
/// `Compensated` row per step, then the clear.
#[tokio::test]
async fn the_unfaulted_rollback_records_its_rows_then_clears() {
    let t = Fixture::new().ship_fails(u32::MAX);
    let err = t.orchestrate().await.err();
    assert_eq!(err, CanoError::task_execution("ship failed"));
    assert_eq!(t.effects(), strings(&ROLLED_BACK));
    let tail: Vec<_> = ops(&t.store.journal())[9..].to_vec();
    assert_eq!(
        tail,
        [
            (Op::Append, Some(9), Some(RowKind::RollbackStarted)),
            (Op::Append, Some(10), Some(RowKind::Compensated)),
            (Op::Append, Some(11), Some(RowKind::Compensated)),
            (Op::Clear, None, None),
        ]
    );
    assert!(t.check_disk().await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Failing calls: every fault surfaces, the log keeps what was written, resume finishes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failed_entry_row_surfaces_as_append_checkpoint_and_resume_finishes() {
    let t = Fixture::new();
    let rec = Recorder::new();
    t.store.inject(Trigger::call(4), Fault::fail("disk full")); // Reserve's entry row
    let wf = t.workflow().with_observer(rec.clone());
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(
        err,
        store_error("append checkpoint: Checkpoint store error: disk full")
    );
    assert_eq!(
        err.to_string(),
        "Checkpoint store error: append checkpoint: Checkpoint store error: disk full"
    );
    assert_eq!(t.effects(), strings(&FULL[..4]), "Reserve never ran");
    assert_eq!(
        rec.events_with("checkpoint:"),
        (0..4)
            .map(|s| format!("checkpoint:{ID}:{s}"))
            .collect::<Vec<_>>(),
        "no on_checkpoint for the failed row"
    );
    assert_eq!(t.check_disk().await, reference_rows()[..4].to_vec());

    t.store.disarm();
    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    let fx = t.effects();
    assert_eq!(folded(&fx), strings(&FULL));
    assert_eq!(
        repeats(&fx),
        1,
        "only the last step of Load re-runs: {fx:?}"
    );
    assert!(t.check_disk().await.is_empty());
}

#[tokio::test]
async fn a_failed_cursor_row_surfaces_as_append_step_cursor_checkpoint_and_resume_finishes() {
    let t = Fixture::new();
    t.store.inject(
        Trigger::kind(RowKind::StepCursor).nth(1),
        Fault::fail("disk full"),
    );
    let err = t.orchestrate().await.err();
    assert_eq!(
        err,
        store_error("append step cursor checkpoint: Checkpoint store error: disk full")
    );
    assert_eq!(t.effects(), strings(&["start", "load:0", "load:1"]));
    assert_eq!(t.check_disk().await, reference_rows()[..3].to_vec());

    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    let fx = t.effects();
    assert_eq!(folded(&fx), strings(&FULL));
    assert_eq!(
        repeats(&fx),
        1,
        "the step at the fault point re-runs: {fx:?}"
    );
    // The resumed visit continued from the recorded cursor 1, and its re-entry row says so.
    let resumed = &t.store.journal()[5]; // after the four calls of the run and the load
    assert_eq!(
        resumed.row,
        Some(CheckpointRow::new(3, "Load", "load").with_cursor(b"1".to_vec()))
    );
    assert!(t.check_disk().await.is_empty());
}

/// A completion row that cannot be written ends the run through a rollback: the step
/// that just ran is undone too, and a clean rollback clears the log, so there is nothing
/// left to resume — the run's end is "rolled back".
#[tokio::test]
async fn a_failed_completion_row_surfaces_and_rolls_the_saga_back() {
    let t = Fixture::new();
    t.store.inject(
        Trigger::kind(RowKind::CompensationCompletion).nth(1),
        Fault::fail("disk full"),
    );
    let err = t.orchestrate().await.err();
    assert_eq!(
        err,
        store_error("append compensation checkpoint: Checkpoint store error: disk full")
    );
    assert_eq!(
        t.effects(),
        strings(&ROLLED_BACK),
        "both steps undone once, newest first; Ship never ran"
    );
    let tail: Vec<_> = ops(&t.store.journal())[7..].to_vec();
    assert_eq!(
        tail,
        [
            (Op::Append, Some(7), Some(RowKind::CompensationCompletion)),
            // The failed append's sequence is never reused (it may have been stored).
            (Op::Append, Some(8), Some(RowKind::RollbackStarted)),
            (Op::Append, Some(9), Some(RowKind::Compensated)),
            (Op::Append, Some(10), Some(RowKind::Compensated)),
            (Op::Clear, None, None),
        ]
    );
    assert!(t.check_disk().await.is_empty());
    let err = t.resume().await.err();
    assert!(err.message().contains("no checkpoint rows"), "{err}");
    assert_eq!(t.effects(), strings(&ROLLED_BACK), "nothing ran again");
}

/// An entry row failing after a saga step completed rolls that step back as well.
#[tokio::test]
async fn a_failed_entry_row_after_a_saga_step_rolls_the_step_back() {
    let t = Fixture::new();
    t.store.inject(Trigger::call(6), Fault::fail("disk full")); // Charge's entry row
    let err = t.orchestrate().await.err();
    assert_eq!(
        err,
        store_error("append checkpoint: Checkpoint store error: disk full")
    );
    assert_eq!(
        t.effects(),
        strings(&[
            "start",
            "load:0",
            "load:1",
            "load:2",
            "reserve",
            "undo:reserve:7"
        ])
    );
    assert!(t.check_disk().await.is_empty());
}

#[tokio::test]
async fn a_failed_load_surfaces_with_the_run_id_and_changes_nothing() {
    let t = Fixture::new();
    t.store.inject(Trigger::call(4), Fault::fail("disk full"));
    t.orchestrate().await.err();
    let before = t.check_disk().await;
    let effects = t.effects();

    t.store
        .inject(Trigger::op(Op::Load).times(1), Fault::fail("store offline"));
    let calls_before = t.store.calls();
    let err = t.resume().await.err();
    assert_eq!(
        err,
        store_error(&format!(
            "load checkpoint run {ID:?}: Checkpoint store error: store offline"
        ))
    );
    assert_eq!(
        t.store.calls(),
        calls_before + 1,
        "nothing but the load was attempted"
    );
    assert_eq!(t.effects(), effects, "no task ran");
    assert_eq!(
        t.resources.entries(),
        ["setup:R", "teardown:R"],
        "no setup for the failed resume"
    );
    assert_eq!(t.check_disk().await, before);

    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(folded(&t.effects()), strings(&FULL));
    assert!(t.check_disk().await.is_empty());
}

/// A `Compensated` row that cannot be written: the rollback goes on and every step is
/// compensated once. A record is only needed while the log exists: the rollback was
/// clean, so the log is cleared and the original error returned.
#[tokio::test]
async fn a_failed_compensated_row_is_harmless_once_the_clean_rollback_clears_the_log() {
    let t = Fixture::new().ship_fails(u32::MAX);
    t.store.inject(
        Trigger::kind(RowKind::Compensated).nth(0),
        Fault::fail("disk full"),
    );
    let err = t.orchestrate().await.err();
    assert_eq!(err, CanoError::task_execution("ship failed"));
    assert_eq!(t.effects(), strings(&ROLLED_BACK));
    assert!(
        t.check_disk().await.is_empty(),
        "a clean rollback clears the log"
    );
}

/// A `Compensated` row that cannot be written, and then the log cannot be cleared
/// either: the bookkeeping errors are reported (`CompensationFailed`) and the log is
/// kept. `resume_from` finishes the rollback: the step whose record was lost is
/// compensated a second time (its compensation did run — at-least-once at the fault
/// point, as after a crash), and only that step.
#[tokio::test]
async fn a_failed_compensated_row_and_clear_surface_and_resume_finishes() {
    let t = Fixture::new().ship_fails(u32::MAX);
    t.store.inject(
        Trigger::kind(RowKind::Compensated).nth(0),
        Fault::fail("disk full"),
    );
    t.store.inject(
        Trigger::op(Op::Clear).times(1),
        Fault::fail("clear refused"),
    );
    let err = t.orchestrate().await.err();
    assert_eq!(
        err,
        CanoError::compensation_failed(vec![
            CanoError::task_execution("ship failed"),
            store_error("append compensated checkpoint: Checkpoint store error: disk full"),
            store_error(
                "clear checkpoint log after a rollback: Checkpoint store error: clear refused"
            ),
        ])
    );
    assert_eq!(t.effects(), strings(&ROLLED_BACK));
    let rows = t.check_disk().await;
    assert_eq!(rows[..9], reference_rows()[..9]);
    assert_eq!(
        rows[9..].iter().map(|r| r.kind).collect::<Vec<_>>(),
        [RowKind::RollbackStarted, RowKind::Compensated]
    );
    assert_eq!(
        rows[10].output_blob.as_deref(),
        Some(&b"0"[..]),
        "Reserve's record"
    );

    let err = t.resume().await.err();
    assert_eq!(err, CanoError::task_execution("ship failed"), "clean now");
    let mut expected = strings(&ROLLED_BACK);
    expected.push("undo:charge:8".into());
    assert_eq!(t.effects(), expected, "only Charge is compensated again");
    assert!(t.check_disk().await.is_empty());
}

/// The `RollbackStarted` row cannot be written: every step is still compensated exactly
/// once, no `Compensated` rows are written (they would refer to nothing), and the clean
/// rollback clears the log.
#[tokio::test]
async fn a_failed_rollback_row_still_rolls_back_once_and_clears() {
    let t = Fixture::new().ship_fails(u32::MAX);
    t.store.inject(
        Trigger::kind(RowKind::RollbackStarted),
        Fault::fail("disk full"),
    );
    let err = t.orchestrate().await.err();
    assert_eq!(err, CanoError::task_execution("ship failed"));
    assert_eq!(t.effects(), strings(&ROLLED_BACK));
    assert!(t.check_disk().await.is_empty());
}

/// `clear` errors are ignored by design, as in 0.12.0: the run succeeds and its log
/// stays. Resuming that log only re-enters the exit state.
#[tokio::test]
async fn a_failed_clear_is_ignored_and_resume_only_clears() {
    let t = Fixture::new();
    t.store.inject(
        Trigger::op(Op::Clear).times(1),
        Fault::fail("clear refused"),
    );
    assert_eq!(t.orchestrate().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(t.check_disk().await, reference_rows());
    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(t.effects(), strings(&FULL), "no task ran again");
    assert!(t.check_disk().await.is_empty());
}

#[tokio::test]
async fn a_failed_clear_after_a_clean_rollback_is_ignored_and_resume_only_clears() {
    let t = Fixture::new().ship_fails(u32::MAX);
    t.store.inject(
        Trigger::op(Op::Clear).times(1),
        Fault::fail("clear refused"),
    );
    assert_eq!(
        t.orchestrate().await.err(),
        CanoError::task_execution("ship failed")
    );
    assert_eq!(t.check_disk().await.len(), 12);
    assert_eq!(
        t.resume().await.err(),
        CanoError::task_execution("ship failed")
    );
    assert_eq!(
        t.effects(),
        strings(&ROLLED_BACK),
        "nothing compensated twice"
    );
    assert!(t.check_disk().await.is_empty());
}

#[tokio::test]
async fn a_failed_re_entry_row_fails_the_resume_and_the_next_resume_finishes() {
    let t = Fixture::new();
    t.store.inject(Trigger::call(1), Fault::fail("disk full"));
    t.orchestrate().await.err();
    t.store
        .inject(Trigger::op(Op::Append).times(1), Fault::fail("still full"));
    let err = t.resume().await.err();
    assert_eq!(
        err,
        store_error("append checkpoint: Checkpoint store error: still full")
    );
    assert_eq!(t.check_disk().await, reference_rows()[..1].to_vec());
    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(folded(&t.effects()), strings(&FULL));
    assert!(t.check_disk().await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Lost acknowledgements: the row is written, the caller is told it failed
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_lost_ack_on_an_entry_row_surfaces_and_resume_finishes() {
    let t = Fixture::new();
    let rec = Recorder::new();
    t.store
        .inject(Trigger::call(1), Fault::fail_after("ack lost"));
    let wf = t.workflow().with_observer(rec.clone());
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(
        err,
        store_error("append checkpoint: Checkpoint store error: ack lost")
    );
    assert_eq!(
        rec.events_with("checkpoint:"),
        [format!("checkpoint:{ID}:0")]
    );
    assert_eq!(
        t.check_disk().await,
        reference_rows()[..2].to_vec(),
        "the row landed"
    );
    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(t.effects(), strings(&FULL), "nothing re-ran");
    assert!(t.check_disk().await.is_empty());
}

#[tokio::test]
async fn a_lost_ack_on_a_cursor_row_surfaces_and_resume_finishes() {
    let t = Fixture::new();
    t.store.inject(
        Trigger::kind(RowKind::StepCursor).nth(0),
        Fault::fail_after("ack lost"),
    );
    let err = t.orchestrate().await.err();
    assert_eq!(
        err,
        store_error("append step cursor checkpoint: Checkpoint store error: ack lost")
    );
    assert_eq!(t.check_disk().await, reference_rows()[..3].to_vec());
    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(
        t.effects(),
        strings(&FULL),
        "the resume went on from cursor 1"
    );
    assert!(t.check_disk().await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Panicking store calls (not caught by the engine)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_panicking_append_unwinds_out_of_the_run_and_leaves_the_file_intact() {
    let t = Fixture::new();
    t.store.inject(Trigger::call(6), Fault::panic("power cut")); // Charge's entry row
    let message = t.orchestrate().await.panic_message();
    assert_eq!(message, "injected panic: power cut");
    assert_eq!(
        t.effects(),
        strings(&FULL[..5]),
        "no rollback ran: Reserve was not compensated"
    );
    assert_eq!(t.resources.entries(), ["setup:R"], "no teardown either");
    assert_eq!(t.check_disk().await, reference_rows()[..6].to_vec());

    let t = t.reopen().await;
    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    let fx = t.effects();
    assert_eq!(folded(&fx), strings(&FULL));
    assert_eq!(
        repeats(&fx),
        1,
        "Reserve (the resume point) re-runs once: {fx:?}"
    );
    assert!(t.check_disk().await.is_empty());
}

#[tokio::test]
async fn a_store_that_panics_after_writing_keeps_the_row() {
    let t = Fixture::new();
    t.store.inject(
        Trigger::kind(RowKind::StepCursor).nth(0),
        Fault::panic_after("controller reset"),
    );
    let message = t.orchestrate().await.panic_message();
    assert_eq!(message, "injected panic: controller reset");
    assert_eq!(t.check_disk().await, reference_rows()[..3].to_vec());
    let t = t.reopen().await;
    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(
        t.effects(),
        strings(&FULL),
        "the resume went on from cursor 1"
    );
    assert!(t.check_disk().await.is_empty());
}

/// A store panic in the middle of a rollback leaves the rollback rows written so far;
/// `resume_from` (after reopening the file) finishes the rollback. With the panic after
/// the `Compensated` row was written no step is compensated twice; with the panic before
/// it, the step at the panic point is compensated again.
#[tokio::test]
async fn a_panic_during_a_rollback_leaves_a_resumable_rollback() {
    for (fault, extra) in [
        (Fault::panic_after("power cut"), None),
        (Fault::panic("power cut"), Some("undo:charge:8")),
    ] {
        let t = Fixture::new().ship_fails(u32::MAX);
        t.store
            .inject(Trigger::kind(RowKind::Compensated).nth(0), fault.clone());
        t.orchestrate().await.panic_message();
        assert_eq!(t.effects(), strings(&ROLLED_BACK[..7]), "{fault:?}");
        let rows = t.check_disk().await;
        assert_eq!(rows[9].kind, RowKind::RollbackStarted, "{fault:?}");
        let t = t.reopen().await;
        assert_eq!(
            t.resume().await.err(),
            CanoError::task_execution("ship failed"),
            "{fault:?}"
        );
        let mut expected = strings(&ROLLED_BACK[..7]);
        expected.extend(extra.map(String::from));
        expected.push("undo:reserve:7".into());
        assert_eq!(t.effects(), expected, "{fault:?}");
        assert!(t.check_disk().await.is_empty(), "{fault:?}");
    }
}

#[tokio::test]
async fn a_panicking_load_or_clear_unwinds_and_the_run_still_finishes() {
    // clear: the run did all its work; its log is complete.
    let t = Fixture::new();
    t.store
        .inject(Trigger::op(Op::Clear).times(1), Fault::panic("fs gone"));
    assert_eq!(
        t.orchestrate().await.panic_message(),
        "injected panic: fs gone"
    );
    assert_eq!(t.effects(), strings(&FULL));
    assert_eq!(t.check_disk().await, reference_rows());

    // load: resume_from unwinds before anything ran.
    t.store
        .inject(Trigger::op(Op::Load).times(1), Fault::panic("fs gone"));
    assert_eq!(t.resume().await.panic_message(), "injected panic: fs gone");
    assert_eq!(t.check_disk().await, reference_rows());

    let t = t.reopen().await;
    assert_eq!(t.resume().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(t.effects(), strings(&FULL), "no task ran again");
    assert!(t.check_disk().await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Slow store calls (paused clock)
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_slow_store_delays_the_run_but_changes_nothing_else() {
    let t = Fixture::new();
    t.store
        .inject(Trigger::op(Op::Append), Fault::Delay(secs(10)));
    t.store
        .inject(Trigger::op(Op::Clear), Fault::DelayAfter(secs(5)));
    let start = Instant::now();
    assert_eq!(t.orchestrate().await, Outcome::Returned(Ok(S::Done)));
    assert_eq!(start.elapsed(), secs(10 * 10 + 5));
    assert_eq!(t.effects(), strings(&FULL));
    let appended: Vec<CheckpointRow> = t
        .store
        .journal()
        .iter()
        .filter_map(|c| c.row.clone())
        .collect();
    assert_eq!(appended, reference_rows());
    assert!(t.check_disk().await.is_empty());
}

/// A store call slower than the workflow timeout: the run fails with the timeout (a
/// workflow timeout never starts a rollback). With the delay before the write the row
/// never lands; with the delay after it, it is on disk although the run never heard back.
/// Both resume.
#[tokio::test(start_paused = true)]
async fn a_store_slower_than_the_workflow_timeout_times_the_run_out() {
    for (fault, landed) in [
        (Fault::Delay(secs(3600)), false),
        (Fault::DelayAfter(secs(3600)), true),
    ] {
        let t = Fixture::new();
        t.store.inject(Trigger::call(6), fault.clone()); // Charge's entry row
        let wf = t.workflow().with_timeout(secs(60));
        let start = Instant::now();
        assert_eq!(
            wf.orchestrate(S::Start).await,
            Err(CanoError::workflow("Workflow timeout exceeded")),
            "{fault:?}"
        );
        assert_eq!(start.elapsed(), secs(60), "{fault:?}");
        assert_eq!(t.effects(), strings(&FULL[..5]), "no rollback: {fault:?}");
        let call = &t.store.journal()[6];
        assert_eq!(
            call.returned,
            Returned::Pending,
            "the caller gave up: {fault:?}"
        );
        let rows = t.check_disk().await;
        let expected_len = if landed { 7 } else { 6 };
        assert_eq!(rows, reference_rows()[..expected_len].to_vec(), "{fault:?}");

        // A slow load delays the resume; then the run finishes.
        t.store.disarm();
        t.store
            .inject(Trigger::op(Op::Load), Fault::Delay(secs(30)));
        let start = Instant::now();
        assert_eq!(wf.resume_from(ID).await, Ok(S::Done), "{fault:?}");
        assert_eq!(start.elapsed(), secs(30), "{fault:?}");
        let fx = t.effects();
        assert_eq!(folded(&fx), strings(&FULL), "{fault:?}");
        assert!(repeats(&fx) <= 1, "{fault:?}: {fx:?}");
        assert!(t.check_disk().await.is_empty(), "{fault:?}");
    }
}

/// The caller drops a run that is stuck in a slow rollback write; the rollback rows
/// written so far let `resume_from` finish it.
#[tokio::test(start_paused = true)]
async fn a_run_dropped_during_a_slow_rollback_write_resumes_the_rollback() {
    let t = Fixture::new().ship_fails(u32::MAX);
    t.store.inject(
        Trigger::kind(RowKind::Compensated).nth(1),
        Fault::Delay(secs(3600)),
    );
    let wf = t.workflow();
    let outcome = tokio::time::timeout(secs(600), wf.orchestrate(S::Start)).await;
    assert!(outcome.is_err(), "the caller gave up");
    assert_eq!(t.effects(), strings(&ROLLED_BACK));
    let rows = t.check_disk().await;
    assert_eq!(
        rows[9..].iter().map(|r| r.kind).collect::<Vec<_>>(),
        [RowKind::RollbackStarted, RowKind::Compensated]
    );
    drop(wf);

    assert_eq!(
        t.resume().await.err(),
        CanoError::task_execution("ship failed")
    );
    let mut expected = strings(&ROLLED_BACK);
    expected.push("undo:reserve:7".into());
    assert_eq!(
        t.effects(),
        expected,
        "only the step at the drop point is compensated again"
    );
    assert!(t.check_disk().await.is_empty());
}

/// Faults aimed at one workflow id leave the other runs on the same store alone.
#[tokio::test(start_paused = true)]
async fn a_delay_aimed_at_one_run_does_not_slow_the_others() {
    let t = Fixture::new();
    t.store.inject(
        Trigger::op(Op::Append).workflow("slow"),
        Fault::Delay(secs(60)),
    );
    let slow = t.workflow().with_workflow_id("slow");
    let fast = t.workflow().with_workflow_id("fast");
    let start = Instant::now();
    let timed = |wf: Workflow<S>| async move {
        let r = wf.orchestrate(S::Start).await;
        (r, start.elapsed())
    };
    let (s, f) = tokio::join!(timed(slow), timed(fast));
    assert_eq!(f, (Ok(S::Done), Duration::ZERO));
    assert_eq!(s, (Ok(S::Done), secs(60 * 10)));
    let journal = t.store.journal();
    assert!(
        journal
            .iter()
            .all(|c| c.fault.is_some() == (c.workflow_id == "slow" && c.op == Op::Append))
    );
    for id in ["slow", "fast"] {
        assert!(t.redb.load_run(id).await.unwrap().is_empty(), "{id}");
    }
}

// ---------------------------------------------------------------------------------------
// Random faults
// ---------------------------------------------------------------------------------------

/// How a fault-driven run ended once it was driven to completion.
#[derive(Debug, PartialEq)]
enum End {
    Done,
    RolledBack,
}

/// Drive the fixture's run to its end: orchestrate, then resume (or start again, if the
/// run never wrote a row) until it completes or has rolled back, checking the file after
/// every attempt. Returns the end and the number of attempts.
async fn drive(t: &Fixture, timeout: Duration) -> (End, u32) {
    let run = |resume: bool| {
        let wf = t.workflow().with_timeout(timeout);
        spawned(async move {
            if resume {
                wf.resume_from(ID).await
            } else {
                wf.orchestrate(S::Start).await
            }
        })
    };
    let mut outcome = run(false).await;
    for attempt in 1..=8 {
        let rows = t.check_disk().await;
        let fx = t.effects();
        if let Outcome::Returned(Err(e)) = &outcome {
            assert_ne!(e.category(), "compensation_failed", "{e}");
        }
        if rows.is_empty() {
            if fx.is_empty() {
                // Never wrote a row, never ran a task: start it (again).
                outcome = run(false).await;
                continue;
            }
            if fx.iter().any(|e| e.starts_with("undo:")) {
                return (End::RolledBack, attempt);
            }
            assert_eq!(
                folded(&fx),
                strings(&FULL),
                "log gone before the end: {outcome:?}"
            );
            return (End::Done, attempt);
        }
        outcome = run(true).await;
    }
    panic!(
        "the run did not finish: {outcome:?}, effects {:?}",
        t.effects()
    );
}

/// 60 seeds: one random fault (fail, panic before/after the write, short or
/// longer-than-the-timeout delay before/after the write) on a random call of the run,
/// including the calls of its resumes. Every run reaches the end of an unfaulted run —
/// or, when the fault failed a completion row, a clean rollback —
/// with at most the state at the fault point re-run, and the file checked after every
/// attempt.
#[tokio::test(start_paused = true)]
async fn random_single_faults_never_lose_or_corrupt_a_run() {
    let faults = [
        Fault::fail("flaky disk"),
        Fault::panic("power cut"),
        Fault::panic_after("power cut"),
        Fault::Delay(secs(30)),
        Fault::DelayAfter(secs(30)),
        Fault::Delay(secs(7200)),
        Fault::DelayAfter(secs(7200)),
    ];
    let mut fired = 0;
    let mut rolled_back = 0;
    for seed in 0..60u64 {
        let t = Fixture::new();
        let mut rng = Rng::new(seed);
        let fault = rng.pick(&faults).clone();
        t.store
            .inject(Trigger::random(seed, 0.12).times(1), fault.clone());
        let (end, _) = drive(&t, secs(3600)).await;
        let faulted = t.store.faulted();
        fired += usize::from(!faulted.is_empty());
        let fx = t.effects();
        let failed_completion = faulted.iter().any(|c| {
            c.row
                .as_ref()
                .is_some_and(|r| r.kind == RowKind::CompensationCompletion)
                && matches!(c.returned, Returned::Err(_))
        });
        let ctx = format!("seed {seed}, {fault:?}, faulted {faulted:?}, effects {fx:?}");
        if failed_completion {
            rolled_back += 1;
            assert_eq!(end, End::RolledBack, "{ctx}");
            let undo_start = fx.iter().position(|e| e.starts_with("undo:")).unwrap();
            let forward = folded(&fx[..undo_start]);
            assert!(
                FULL.starts_with(&forward.iter().map(String::as_str).collect::<Vec<_>>()),
                "{ctx}"
            );
            let undone: Vec<&str> = fx[undo_start..].iter().map(String::as_str).collect();
            let expected: &[&str] = if forward.last().map(String::as_str) == Some("charge") {
                &["undo:charge:8", "undo:reserve:7"]
            } else {
                &["undo:reserve:7"]
            };
            assert_eq!(undone, expected, "{ctx}");
        } else {
            assert_eq!(end, End::Done, "{ctx}");
            assert_eq!(folded(&fx), strings(&FULL), "{ctx}");
        }
        assert!(repeats(&fx) <= 1, "{ctx}");
        assert!(t.check_disk().await.is_empty(), "{ctx}");
    }
    eprintln!("random single faults: {fired} of 60 runs faulted, {rolled_back} rolled back");
    assert!(fired >= 40, "too few faults fired: {fired}");
}

// ---------------------------------------------------------------------------------------
// Regression tests for engine bugs the fault injection found (fixed)
// ---------------------------------------------------------------------------------------

/// The `RollbackStarted` row fails (cleanly: nothing written) and the store recovers:
/// the engine goes on writing `Compensated` rows, which have no `RollbackStarted` row to
/// belong to. `resume_from` on that log does not see a rollback and takes the last row's
/// state `""` as the resume point.
///
/// Was: `Err(Workflow("checkpoint state \"\" is not a registered or exit state of this
/// workflow"))` on every resume. Now: no `Compensated` rows are written without their
/// `RollbackStarted` row, and the clean rollback clears the log.
#[tokio::test]
async fn a_run_whose_rollback_row_failed_can_be_resumed() {
    let t = Fixture::new().ship_fails(u32::MAX);
    t.store.inject(
        Trigger::kind(RowKind::RollbackStarted),
        Fault::fail("disk full"),
    );
    t.orchestrate().await.err();
    assert_eq!(t.effects(), strings(&ROLLED_BACK));
    let outcome = t.resume().await;
    assert!(
        matches!(&outcome, Outcome::Returned(Err(e)) if e.category() != "workflow"),
        "resume_from must finish the rollback, got {outcome:?}"
    );
    assert_eq!(
        t.effects(),
        strings(&ROLLED_BACK),
        "nothing runs or is undone again"
    );
    assert!(t.check_disk().await.is_empty());
}

/// The `RollbackStarted` row fails once and a compensation fails too: the rollback is
/// dirty, so the log is kept. No `Compensated` rows may be written without the row that
/// starts the rollback (they would refer to a rollback the log does not show); instead,
/// once the rollback is over, the engine records it late, listing only the step still to
/// undo. `resume_from` then finishes the rollback: `Ship` does not run again and `Reserve`
/// is not compensated a second time.
#[tokio::test]
async fn a_rollback_whose_start_row_failed_is_recorded_late_if_it_stays_dirty() {
    let t = Fixture::new().ship_fails(1).charge_undo_fails(1);
    t.store.inject(
        Trigger::kind(RowKind::RollbackStarted).nth(0),
        Fault::fail("disk full"),
    );
    let err = t.orchestrate().await.err();
    assert_eq!(err.category(), "compensation_failed", "{err}");
    assert!(err.to_string().contains("refund service down"), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
    let rows = t.check_disk().await;
    assert!(
        rows.iter().all(|r| r.kind != RowKind::Compensated),
        "no Compensated row may refer to an unrecorded rollback: {rows:?}"
    );
    assert_eq!(rows.last().map(|r| r.kind), Some(RowKind::RollbackStarted));
    let undone_first = [
        "start",
        "load:0",
        "load:1",
        "load:2",
        "reserve",
        "charge",
        "undo-failed:charge",
        "undo:reserve:7",
    ];
    assert_eq!(t.effects(), strings(&undone_first));
    let resumed = t.resume().await.err();
    assert_eq!(resumed.category(), "task_execution", "{resumed}");
    let mut all = strings(&undone_first);
    all.push("undo:charge:8".to_string());
    assert_eq!(
        t.effects(),
        all,
        "only Charge is undone again; Ship does not run"
    );
    assert!(t.check_disk().await.is_empty());
}

/// The same with the `RollbackStarted` row failing every time: nothing can be recorded,
/// and `orchestrate`'s error says so (both the failed compensation and the failed row).
#[tokio::test]
async fn a_rollback_that_cannot_be_recorded_at_all_writes_no_compensated_rows() {
    let t = Fixture::new().ship_fails(1).charge_undo_fails(1);
    t.store.inject(
        Trigger::kind(RowKind::RollbackStarted),
        Fault::fail("disk full"),
    );
    let err = t.orchestrate().await.err();
    assert_eq!(err.category(), "compensation_failed", "{err}");
    assert!(err.to_string().contains("refund service down"), "{err}");
    assert_eq!(err.to_string().matches("disk full").count(), 2, "{err}");
    let rows = t.check_disk().await;
    assert!(
        rows.iter().all(|r| r.kind != RowKind::Compensated),
        "{rows:?}"
    );
    assert_eq!(rows.last().map(|r| r.state.as_str()), Some("Ship"));
}

/// A lost acknowledgement (the row is written, `append` returns `Err`) on an entry row
/// while saga steps are on the stack. The engine rolls back, but writes the rollback rows
/// at the sequence the lost row already holds: every one conflicts, so the log ends at
/// `Ship`'s entry row with no trace of the rollback although both steps were undone.
///
/// Must hold: the rollback is recorded (or at least not lost), so `resume_from` does not
/// run the saga forward after compensating it, and no step is compensated twice.
/// Was (before the fix that never reuses a failed append's sequence): `orchestrate` → `CompensationFailed [append checkpoint: ack lost,
/// append rollback checkpoint: … checkpoint conflict …, append compensation checkpoint:
/// … conflict …, … conflict …]`; `resume_from` re-enters `Ship` with both (already
/// undone) steps rehydrated, runs it and returns `Ok(Done)`: the order ships after its
/// payment and reservation were refunded. (Had `Ship` failed again, both steps would have
/// been compensated a second time.)
#[tokio::test]
async fn a_lost_ack_during_a_saga_never_resumes_forward_after_compensating() {
    let t = Fixture::new();
    t.store
        .inject(Trigger::call(8), Fault::fail_after("ack lost")); // Ship's entry row
    let err = t.orchestrate().await.err();
    assert_eq!(t.effects(), strings(&ROLLED_BACK), "{err}");
    t.check_disk().await;
    let outcome = t.resume().await;
    let fx = t.effects();
    assert!(
        !fx.contains(&"ship".to_string()),
        "Ship ran after the saga was compensated: {outcome:?}, {fx:?}"
    );
    assert_eq!(fx, strings(&ROLLED_BACK), "no step compensated twice");
    assert!(t.check_disk().await.is_empty());
}

/// A lost acknowledgement on a `Compensated` row: the row is on disk although the
/// append failed. The engine never reuses that sequence, so the later rows land; every
/// step is compensated once and the clean rollback clears the log — nothing to resume.
#[tokio::test]
async fn a_lost_ack_on_a_rollback_row_compensates_no_other_step_twice() {
    let t = Fixture::new().ship_fails(u32::MAX);
    t.store.inject(
        Trigger::kind(RowKind::Compensated).nth(0),
        Fault::fail_after("ack lost"),
    );
    assert_eq!(
        t.orchestrate().await.err(),
        CanoError::task_execution("ship failed")
    );
    assert_eq!(t.effects(), strings(&ROLLED_BACK), "each step undone once");
    assert!(t.check_disk().await.is_empty());
    assert_eq!(
        t.resume().await.err(),
        store_error(&format!("no checkpoint rows for workflow id {ID:?}"))
    );
    assert_eq!(
        t.effects(),
        strings(&ROLLED_BACK),
        "nothing compensated again"
    );
}

/// The full fault model on the rollback path: `Ship` fails on its first run, so every
/// run rolls back; up to two random faults per run, lost acknowledgements included,
/// also on the rollback rows. Every run must finish its rollback through `resume_from`;
/// nothing may run forward after the first compensation; a step may be compensated
/// again only if a fault kept its `Compensated` row from being written.
#[tokio::test(start_paused = true)]
async fn random_faults_on_the_rollback_path_never_lose_a_run_or_undo_a_step_twice() {
    let faults = [
        Fault::fail("flaky disk"),
        Fault::fail_after("ack lost"),
        Fault::panic("power cut"),
        Fault::panic_after("power cut"),
        Fault::Delay(secs(7200)),
        Fault::DelayAfter(secs(30)),
    ];
    let mut failures = Vec::new();
    for seed in 0..80u64 {
        let t = Fixture::new().ship_fails(1);
        let mut rng = Rng::new(seed);
        let fault = rng.pick(&faults).clone();
        t.store
            .inject(Trigger::random(seed, 0.15).times(2), fault.clone());
        // Drive it: orchestrate, then resume until the log is gone (or give up).
        let mut outcome = t.orchestrate().await;
        for _ in 0..8 {
            t.store.settle().await;
            if t.disk().await.is_empty() {
                if t.effects().is_empty() {
                    outcome = t.orchestrate().await;
                    continue;
                }
                break;
            }
            outcome = t.resume().await;
        }
        let fx = t.effects();
        let faulted = t.store.faulted();
        let first_undo = fx.iter().position(|e| e.starts_with("undo:"));
        let forward_after_undo =
            first_undo.is_some_and(|i| fx[i..].iter().any(|e| !e.starts_with("undo:")));
        let unrecorded = |tag: &str| {
            faulted
                .iter()
                .filter(|c| {
                    c.row.as_ref().is_some_and(|r| {
                        r.kind == RowKind::Compensated
                            && r.output_blob.as_deref() == Some(tag.as_bytes())
                    }) && c.inner != Some(Ok(()))
                })
                .count()
        };
        let twice = [("undo:reserve:7", "0"), ("undo:charge:8", "1")]
            .iter()
            .any(|(undo, idx)| fx.iter().filter(|e| e == undo).count() > 1 + unrecorded(idx));
        let rows = t.disk().await;
        if forward_after_undo || twice || !rows.is_empty() {
            failures.push(format!(
                "seed {seed} {fault:?}: rows left {}, last outcome {outcome:?}, effects {fx:?}, faulted {:?}",
                rows.len(),
                faulted.iter().map(|c| (c.index, c.fault.clone())).collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} runs went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
