//! Bad-input tests for recovery: fuzzing with proptest, so they run in CI.
//!
//! * `resume_from` over arbitrary checkpoint logs — random row kinds, sequences (with
//!   duplicates, gaps, disorder and `u64::MAX`), state labels, task ids and blobs
//!   (valid JSON, JSON of the wrong shape, garbage; rollback records with bad steps) —
//!   served by an in-memory store. Every input must give `Ok` or an error, never a panic
//!   or a hang, and a rollback must never compensate a step that is not in the log (or
//!   done by the resumed run itself). When the log's sequences are unique, the outcome
//!   is also checked exactly against the documented rules: which error a log that cannot
//!   be resumed gives, which steps a resumed rollback undoes (never one a `Compensated`
//!   row marks done), which steps a resumed run rehydrates (never a superseded or the
//!   resume point's own completion), where the run continues and from which cursor.
//! * `RedbCheckpointStore::load_run` over arbitrary stored values, written straight into
//!   the `cano_checkpoints` table of a redb file: it returns the rows exactly when every
//!   value of the run decodes (checked against a reference postcard decoder written
//!   here), and a `checkpoint_store` "decode" error otherwise; `resume_from` on such a
//!   file never panics or hangs either.
//!
//! The seed is fixed (override with `PROPTEST_RNG_SEED=<n>`; `PROPTEST_CASES=<n>` sets
//! the number of cases).

mod support;

use cano::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_json::json;
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use support::Recorder;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct St(u8);

const WF: &str = "wf";
const DONE: St = St(100);
/// Bounds every case; on the paused clock it only fires if the engine waits forever.
const GUARD: Duration = Duration::from_secs(1_000_000);

fn config(cases: u32) -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            cases
        },
        rng_seed: match base.rng_seed {
            RngSeed::Random => RngSeed::Fixed(0x00ca_0019),
            fixed => fixed,
        },
        failure_persistence: None,
        ..base
    }
}

/// The test's own panics (`… boom`) are expected; keep them off stderr.
fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.ends_with(" boom") {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------
// The workflow the logs are resumed into
//
//   St(0) p0 → St(1) c1 (saga) → St(2) r2 (router) → St(3) t3 (stepped, cursor u32,
//   counts to 3) → St(4) split of two members (All) → St(5) c5 (saga) → St(6) p6 (fails
//   or not) → St(100); St(100) and St(101) are exit states.
// ---------------------------------------------------------------------------------------

/// What the tasks did during one resume.
#[derive(Default)]
struct Books {
    /// Saga forward runs: (task, output).
    forward: Mutex<Vec<(String, u32)>>,
    /// Compensations: (task, output).
    undone: Mutex<Vec<(String, u32)>>,
    /// Cursors received by `t3`, in order.
    cursors: Mutex<Vec<Option<u32>>>,
    calls: AtomicUsize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Undo {
    Ok,
    Fail,
    Panic,
}

struct Plain {
    name: &'static str,
    next: St,
    fail: bool,
}

#[task]
impl Task<St> for Plain {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    async fn run_bare(&self) -> Result<TaskResult<St>, CanoError> {
        if self.fail {
            return Err(CanoError::task_execution(format!("{} failed", self.name)));
        }
        Ok(TaskResult::Single(self.next.clone()))
    }
}

struct Route;

#[task::router]
impl RouterTask<St> for Route {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("r2")
    }

    async fn route(&self, _res: &Resources) -> Result<TaskResult<St>, CanoError> {
        Ok(TaskResult::Single(St(3)))
    }
}

struct Counter(Arc<Books>);

#[task::stepped]
impl SteppedTask<St> for Counter {
    type Cursor = u32;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("t3")
    }

    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, St>, CanoError> {
        self.0.cursors.lock().unwrap().push(cursor);
        let at = cursor.unwrap_or(0);
        Ok(if at >= 3 {
            StepOutcome::Done(TaskResult::Single(St(4)))
        } else {
            StepOutcome::More(at + 1)
        })
    }
}

struct Saga {
    name: &'static str,
    next: St,
    undo: Undo,
    books: Arc<Books>,
}

#[saga::task]
impl CompensatableTask<St> for Saga {
    type Output = u32;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<St>, u32), CanoError> {
        let n = self.books.calls.fetch_add(1, Ordering::SeqCst);
        let output = 1_000_000 + u32::try_from(n).unwrap();
        self.books
            .forward
            .lock()
            .unwrap()
            .push((self.name.to_string(), output));
        Ok((TaskResult::Single(self.next.clone()), output))
    }

    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        self.books
            .undone
            .lock()
            .unwrap()
            .push((self.name.to_string(), output));
        match self.undo {
            Undo::Ok => Ok(()),
            Undo::Fail => Err(CanoError::task_execution(format!(
                "{} undo failed",
                self.name
            ))),
            Undo::Panic => panic!("{} undo boom", self.name),
        }
    }
}

/// The compensators the workflow registers (a log may name others).
const SAGAS: [&str; 2] = ["c1", "c5"];

fn workflow(
    setup: &Setup,
    books: &Arc<Books>,
    store: Arc<dyn CheckpointStore>,
    recorder: &Arc<Recorder>,
) -> Workflow<St> {
    Workflow::bare()
        .register(
            St(0),
            Plain {
                name: "p0",
                next: St(1),
                fail: false,
            },
        )
        .register_with_compensation(
            St(1),
            Saga {
                name: "c1",
                next: St(2),
                undo: setup.c1,
                books: Arc::clone(books),
            },
        )
        .register_router(St(2), Route)
        .register_stepped(St(3), Counter(Arc::clone(books)))
        .register_split(
            St(4),
            (0..2)
                .map(|_| Plain {
                    name: "s4",
                    next: St(5),
                    fail: false,
                })
                .collect(),
            JoinConfig::new(JoinStrategy::All, St(5)),
        )
        .register_with_compensation(
            St(5),
            Saga {
                name: "c5",
                next: St(6),
                undo: setup.c5,
                books: Arc::clone(books),
            },
        )
        .register(
            St(6),
            Plain {
                name: "p6",
                next: DONE,
                fail: setup.p6_fails,
            },
        )
        .add_exit_states(vec![DONE, St(101)])
        .with_checkpoint_store(store)
        .with_observer(Arc::clone(recorder) as Arc<dyn WorkflowObserver>)
}

/// The labels of the workflow's states.
fn known_states() -> Vec<St> {
    (0..7).map(St).chain([DONE, St(101)]).collect()
}

// ---------------------------------------------------------------------------------------
// An in-memory store serving a given log as is
// ---------------------------------------------------------------------------------------

/// Serves `rows` exactly as given (in the given order, duplicates and all); appends are
/// recorded (and rejected on a duplicate sequence, as the store contract says).
struct RawStore {
    rows: Mutex<Vec<CheckpointRow>>,
    appended: Mutex<Vec<CheckpointRow>>,
    cleared: Mutex<bool>,
}

#[checkpoint_store]
impl CheckpointStore for RawStore {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        assert_eq!(workflow_id, WF, "the engine appended under another id");
        let mut rows = self.rows.lock().unwrap();
        if rows.iter().any(|r| r.sequence == row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "checkpoint conflict at sequence {}",
                row.sequence
            )));
        }
        rows.push(row.clone());
        self.appended.lock().unwrap().push(row);
        Ok(())
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        Ok(if workflow_id == WF {
            self.rows.lock().unwrap().clone()
        } else {
            Vec::new()
        })
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        if workflow_id == WF {
            self.rows.lock().unwrap().clear();
            *self.cleared.lock().unwrap() = true;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Generated logs
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Setup {
    rows: Vec<CheckpointRow>,
    c1: Undo,
    c5: Undo,
    p6_fails: bool,
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(known_states()).prop_map(|s| format!("{s:?}")),
        1 => Just("St(99)".to_string()),
        1 => Just(String::new()),
        1 => "[ -~]{0,8}",
    ]
}

fn task_id() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["c1", "c5", "p0", "t3", "p6", ""]).prop_map(String::from),
        1 => Just("c9".to_string()),
        1 => "[ -~]{0,6}",
    ]
}

fn sequence() -> impl Strategy<Value = u64> {
    prop_oneof![
        10 => 0..12u64,
        1 => prop::sample::select(vec![u64::MAX, u64::MAX - 1, u64::MAX - 2, u64::MAX / 2]),
    ]
}

/// Garbage: random bytes, or text and JSON of the wrong shape for any blob.
fn junk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        prop::sample::select(vec![
            "",
            "-1",
            "1.5",
            "4294967296",
            "18446744073709551616",
            "null",
            "true",
            "\"7\"",
            "[1,2]",
            "{}",
            " 2 ",
            "+3",
            "03",
            "2 junk",
            "{\"category\":1}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn json_number() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![0..6u32, any::<u32>()].prop_map(|n| n.to_string().into_bytes())
}

/// A rollback record, well formed or not.
fn record() -> impl Strategy<Value = Vec<u8>> {
    let step = (task_id(), prop_oneof![3 => json_number(), 1 => junk()])
        .prop_map(|(task_id, output)| json!({ "task_id": task_id, "output": output }));
    let category = prop::sample::select(vec![
        "task_execution",
        "workflow",
        "timeout",
        "retry_exhausted",
        "checkpoint_store",
        "generic",
        "configuration",
        "compensation_failed",
        "nonsense",
    ]);
    (
        category,
        "[ -~]{0,10}",
        prop::collection::vec(step, 0..4),
        0..10u8,
    )
        .prop_map(|(category, message, steps, shape)| {
            let value = match shape {
                // A step whose output is not bytes.
                0 => json!({ "category": category, "message": message,
                             "steps": [{ "task_id": "c1", "output": "seven" }] }),
                1 => json!({ "category": category, "steps": steps }),
                2 => json!({ "category": category, "message": message, "steps": {} }),
                _ => {
                    json!({ "category": category, "message": message, "steps": steps, "extra": 1 })
                }
            };
            serde_json::to_vec(&value).unwrap()
        })
}

/// The blob of a row of `kind`: mostly what such a row carries, sometimes not.
fn blob(kind: RowKind) -> BoxedStrategy<Option<Vec<u8>>> {
    let fitting: BoxedStrategy<Vec<u8>> = match kind {
        RowKind::StateEntry => (0..12u64).prop_map(|s| s.to_string().into_bytes()).boxed(),
        RowKind::CompensationCompletion | RowKind::StepCursor => json_number().boxed(),
        RowKind::RollbackStarted => record().boxed(),
        _ => (0..5usize).prop_map(|i| i.to_string().into_bytes()).boxed(),
    };
    let none_weight = if kind == RowKind::StateEntry { 6 } else { 1 };
    prop_oneof![
        none_weight => Just(None),
        6 => fitting.prop_map(Some),
        1 => junk().prop_map(Some),
    ]
    .boxed()
}

fn checkpoint_row() -> impl Strategy<Value = CheckpointRow> {
    prop_oneof![
        5 => Just(RowKind::StateEntry),
        3 => Just(RowKind::CompensationCompletion),
        2 => Just(RowKind::StepCursor),
        1 => Just(RowKind::RollbackStarted),
        2 => Just(RowKind::Compensated),
    ]
    .prop_flat_map(|kind| (sequence(), label(), task_id(), blob(kind), Just(kind)))
    .prop_map(
        |(sequence, state, task_id, output_blob, kind)| CheckpointRow {
            sequence,
            state,
            task_id,
            output_blob,
            kind,
        },
    )
}

fn undo() -> impl Strategy<Value = Undo> {
    prop_oneof![4 => Just(Undo::Ok), 1 => Just(Undo::Fail), 1 => Just(Undo::Panic)]
}

/// A log: sometimes as a store honouring the contract returns it (unique sequences,
/// ascending), sometimes in any order with duplicates.
fn log() -> impl Strategy<Value = Vec<CheckpointRow>> {
    (prop::collection::vec(checkpoint_row(), 0..9), 0..3u8).prop_map(|(mut rows, shape)| {
        if shape > 0 {
            rows.sort_by_key(|r| r.sequence);
            rows.dedup_by_key(|r| r.sequence);
            if shape == 2 {
                // Dense from 0, as an engine writes it.
                for (i, r) in rows.iter_mut().enumerate() {
                    r.sequence = i as u64;
                }
            }
        }
        rows
    })
}

fn setup() -> impl Strategy<Value = Setup> {
    (log(), undo(), undo(), any::<bool>()).prop_map(|(rows, c1, c5, p6_fails)| Setup {
        rows,
        c1,
        c5,
        p6_fails,
    })
}

// ---------------------------------------------------------------------------------------
// What the documented resume rules say about a log (with COMPATIBILITY.md's differences)
// ---------------------------------------------------------------------------------------

/// The payload of a `RollbackStarted` row.
#[derive(serde::Deserialize)]
struct Record {
    category: String,
    message: String,
    steps: Vec<RecordStep>,
}

#[derive(serde::Deserialize)]
struct RecordStep {
    task_id: String,
    output: Vec<u8>,
}

fn from_category(category: &str, message: &str) -> CanoError {
    let m = message.to_string();
    match category {
        "task_execution" => CanoError::task_execution(m),
        "store" => CanoError::store(m),
        "workflow" => CanoError::workflow(m),
        "configuration" => CanoError::configuration(m),
        "retry_exhausted" => CanoError::retry_exhausted(m),
        "timeout" => CanoError::timeout(m),
        "circuit_open" => CanoError::circuit_open(m),
        "checkpoint_store" => CanoError::checkpoint_store(m),
        "resource_not_found" => CanoError::resource_not_found(m),
        "resource_type_mismatch" => CanoError::resource_type_mismatch(m),
        "resource_duplicate_key" => CanoError::resource_duplicate_key(m),
        _ => CanoError::generic(m),
    }
}

/// What `resume_from` must do with a log whose sequences are unique.
enum Plan {
    /// Fail with a `checkpoint_store` error whose message contains this.
    StoreError(&'static str),
    /// Fail with a `workflow` error whose message contains this.
    WorkflowError(&'static str),
    /// Finish the recorded rollback: undo these steps (in this order; `None` output:
    /// the blob is not a `u32`), return this original error (or `CompensationFailed`
    /// starting with it).
    Rollback {
        original: CanoError,
        steps: Vec<(usize, String, Option<u32>)>,
        /// Whether the log has room for `Compensated` rows.
        room: bool,
    },
    /// Re-enter `state` (the last row's) with this rehydrated saga stack (oldest first).
    Resume {
        state: St,
        last: CheckpointRow,
        stack: Vec<(String, Option<u32>)>,
    },
}

/// Whether a run resumed from a log whose last sequence is `last` can append a row: its
/// first row takes `last + 1`, and no row takes a number without a next one below
/// `u64::MAX` (COMPATIBILITY.md, "sequence number of a failed append").
fn has_room(last: u64) -> bool {
    last <= u64::MAX - 3
}

fn as_u32(blob: &[u8]) -> Option<u32> {
    serde_json::from_slice(blob).ok()
}

/// Whether `row` follows the log format: a state entry carries nothing or a decimal
/// sequence (the completion it supersedes), a compensated row a decimal index, a rollback
/// row a decodable record, cursor and completion rows some blob.
fn well_formed(row: &CheckpointRow) -> bool {
    let decimal = |b: &[u8]| {
        !b.is_empty()
            && b.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(b).is_ok_and(|t| t.parse::<u64>().is_ok())
    };
    match (row.kind, row.output_blob.as_deref()) {
        (RowKind::StateEntry, None) => true,
        (RowKind::StateEntry, Some(b)) if b.first() == Some(&b'{') => {
            serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|v| {
                v.as_object().is_some_and(|o| {
                    o.iter().all(|(k, v)| match k.as_str() {
                        "resumed" => v.is_boolean(),
                        "supersedes" => v.is_null() || v.is_u64(),
                        _ => false,
                    })
                })
            })
        }
        (RowKind::StateEntry, Some(b)) | (RowKind::Compensated, Some(b)) => decimal(b),
        (RowKind::StepCursor | RowKind::CompensationCompletion, Some(_)) => true,
        (RowKind::RollbackStarted, Some(b)) => serde_json::from_slice::<Record>(b).is_ok(),
        _ => false,
    }
}

fn plan(rows: &[CheckpointRow]) -> Plan {
    // A row that does not follow the format stops the resume before anything runs.
    if !rows.iter().all(well_formed) {
        return Plan::StoreError("is malformed at sequence");
    }
    let Some(last) = rows.iter().max_by_key(|r| r.sequence) else {
        return Plan::StoreError("no checkpoint rows");
    };
    if let Some(started) = rows
        .iter()
        .filter(|r| r.kind == RowKind::RollbackStarted)
        .max_by_key(|r| r.sequence)
    {
        let Some(blob) = &started.output_blob else {
            return Plan::StoreError("rollback row");
        };
        let Ok(record) = serde_json::from_slice::<Record>(blob) else {
            return Plan::StoreError("rollback row");
        };
        let done: Vec<usize> = rows
            .iter()
            .filter(|r| r.kind == RowKind::Compensated && r.sequence > started.sequence)
            .filter_map(|r| serde_json::from_slice(r.output_blob.as_ref()?).ok())
            .collect();
        let steps = record
            .steps
            .iter()
            .enumerate()
            .filter(|(i, _)| !done.contains(i))
            .rev()
            .map(|(i, s)| (i, s.task_id.clone(), as_u32(&s.output)))
            .collect();
        return Plan::Rollback {
            original: from_category(&record.category, &record.message),
            steps,
            room: has_room(last.sequence),
        };
    }
    let Some(state) = known_states()
        .into_iter()
        .find(|s| format!("{s:?}") == last.state)
    else {
        return Plan::WorkflowError("is not a registered or exit state");
    };
    if last.sequence == u64::MAX {
        return Plan::StoreError("u64::MAX");
    }
    let superseded: Vec<u64> = rows
        .iter()
        .filter(|r| r.kind == RowKind::StateEntry)
        .filter_map(|r| {
            let blob = r.output_blob.as_deref()?;
            match serde_json::from_slice::<serde_json::Value>(blob) {
                Ok(record) if blob.first() == Some(&b'{') => record["supersedes"].as_u64(),
                _ => std::str::from_utf8(blob).ok()?.parse().ok(),
            }
        })
        .collect();
    let mut completed: Vec<&CheckpointRow> = rows
        .iter()
        .filter(|r| {
            r.kind == RowKind::CompensationCompletion
                && r.sequence != last.sequence
                && !superseded.contains(&r.sequence)
                && r.output_blob.is_some()
        })
        .collect();
    completed.sort_by_key(|r| r.sequence);
    Plan::Resume {
        state,
        last: last.clone(),
        stack: completed
            .iter()
            .map(|r| (r.task_id.clone(), as_u32(r.output_blob.as_ref().unwrap())))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// resume_from over arbitrary logs
// ---------------------------------------------------------------------------------------

/// What one resume did.
struct Outcome {
    result: Result<St, CanoError>,
    events: Vec<String>,
    appended: Vec<CheckpointRow>,
    cleared: bool,
    forward: Vec<(String, u32)>,
    undone: Vec<(String, u32)>,
    cursors: Vec<Option<u32>>,
}

fn resume(setup: &Setup) -> Outcome {
    resume_in(setup, &raw_store(&setup.rows))
}

fn raw_store(rows: &[CheckpointRow]) -> Arc<RawStore> {
    Arc::new(RawStore {
        rows: Mutex::new(rows.to_vec()),
        appended: Mutex::new(Vec::new()),
        cleared: Mutex::new(false),
    })
}

/// `resume_from(WF)` of a fresh workflow over `store` (whose appends are recorded
/// across resumes).
fn resume_in(setup: &Setup, store: &Arc<RawStore>) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let books = Arc::new(Books::default());
        let recorder = Recorder::new();
        let wf = workflow(setup, &books, store.clone(), &recorder);
        let result = tokio::time::timeout(GUARD, wf.resume_from(WF))
            .await
            .expect("resume_from never returned (hang)");
        Outcome {
            result,
            events: recorder.events(),
            appended: store.appended.lock().unwrap().clone(),
            cleared: *store.cleared.lock().unwrap(),
            forward: books.forward.lock().unwrap().clone(),
            undone: books.undone.lock().unwrap().clone(),
            cursors: books.cursors.lock().unwrap().clone(),
        }
    })
}

/// The checks that hold for any log.
fn check_any(setup: &Setup, out: &Outcome) -> Result<(), TestCaseError> {
    if let Ok(state) = &out.result {
        prop_assert!(
            *state == DONE || *state == St(101),
            "Ok with a non-exit state {:?}",
            state
        );
        prop_assert!(out.undone.is_empty(), "a successful resume compensated");
    }
    if let Err(e) = &out.result {
        prop_assert!(!e.to_string().is_empty());
    }
    // Rows continue the log: dense from its last sequence + 1.
    // (A log ending at u64::MAX has no room: nothing can be appended; no row ever takes
    // u64::MAX itself.)
    let last = setup.rows.iter().map(|r| r.sequence).max();
    for (i, r) in out.appended.iter().enumerate() {
        let want = last.and_then(|s| s.checked_add(1 + i as u64));
        prop_assert_eq!(Some(r.sequence), want, "appended {:?}", r);
        prop_assert!(r.sequence < u64::MAX, "a row took the last sequence number");
    }
    // Never compensate a step that is neither in the log nor done by this run.
    let mut available: Vec<(String, u32)> = out.forward.clone();
    for r in &setup.rows {
        match (r.kind, &r.output_blob) {
            (RowKind::CompensationCompletion, Some(b)) => {
                if let Some(n) = as_u32(b) {
                    available.push((r.task_id.clone(), n));
                }
            }
            (RowKind::RollbackStarted, Some(b)) => {
                if let Ok(record) = serde_json::from_slice::<Record>(b) {
                    for s in record.steps {
                        if let Some(n) = as_u32(&s.output) {
                            available.push((s.task_id, n));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for call in &out.undone {
        let Some(at) = available.iter().position(|a| a == call) else {
            return Err(TestCaseError::fail(format!(
                "compensated {call:?}, which is not a step of the log or of this run (or was \
                 compensated once already); log: {:?}",
                setup.rows
            )));
        };
        available.swap_remove(at);
    }
    Ok(())
}

/// The compensations a drain makes of `steps` (undo order): a step is called if its
/// compensator is registered and its output decodes.
fn calls(steps: &[(String, Option<u32>)]) -> Vec<(String, u32)> {
    steps
        .iter()
        .filter(|(task, _)| SAGAS.contains(&task.as_str()))
        .filter_map(|(task, output)| Some((task.clone(), (*output)?)))
        .collect()
}

/// Whether every step of a drain (undo order) compensates cleanly.
fn clean(setup: &Setup, steps: &[(String, Option<u32>)]) -> bool {
    steps.iter().all(|(task, output)| {
        output.is_some()
            && match task.as_str() {
                "c1" => setup.c1 == Undo::Ok,
                "c5" => setup.c5 == Undo::Ok,
                _ => false,
            }
    })
}

/// The checks that hold exactly when the log's sequences are unique.
fn check_plan(setup: &Setup, out: &Outcome) -> Result<(), TestCaseError> {
    let nothing_ran = |out: &Outcome| {
        out.events.is_empty()
            && out.appended.is_empty()
            && out.undone.is_empty()
            && out.forward.is_empty()
            && !out.cleared
    };
    let last_sequence = setup.rows.iter().map(|r| r.sequence).max();
    match plan(&setup.rows) {
        Plan::StoreError(needle) => {
            let e = out
                .result
                .as_ref()
                .expect_err("resume of a bad log succeeded");
            prop_assert_eq!(e.category(), "checkpoint_store", "{}", e);
            prop_assert!(e.message().contains(needle), "{} lacks {:?}", e, needle);
            prop_assert!(
                nothing_ran(out),
                "a log that cannot be resumed ran something"
            );
        }
        Plan::WorkflowError(needle) => {
            let e = out
                .result
                .as_ref()
                .expect_err("resume of a bad log succeeded");
            prop_assert_eq!(e.category(), "workflow", "{}", e);
            prop_assert!(e.message().contains(needle), "{} lacks {:?}", e, needle);
            prop_assert!(
                nothing_ran(out),
                "a log that cannot be resumed ran something"
            );
        }
        Plan::Rollback {
            original,
            steps,
            room,
        } => {
            let last = last_sequence.unwrap();
            prop_assert_eq!(&out.events[..1], &[format!("resume:{WF}:{last}")][..]);
            let pairs: Vec<(String, Option<u32>)> =
                steps.iter().map(|(_, t, o)| (t.clone(), *o)).collect();
            prop_assert_eq!(&out.undone, &calls(&pairs), "steps undone");
            prop_assert!(out.forward.is_empty(), "a rollback ran a task forward");
            let e = out.result.as_ref().expect_err("a rollback ended Ok");
            if clean(setup, &pairs) {
                prop_assert_eq!(e, &original);
                prop_assert!(out.cleared, "a clean rollback kept the log");
            } else {
                let CanoError::CompensationFailed { errors } = e else {
                    return Err(TestCaseError::fail(format!(
                        "expected CompensationFailed: {e}"
                    )));
                };
                prop_assert_eq!(&errors[0], &original);
                prop_assert!(!out.cleared, "a dirty rollback cleared the log");
            }
            // One `Compensated` row per step undone, naming its index in the record (if
            // the log has room for them).
            let undone_ok: Vec<String> = steps
                .iter()
                .filter(|(_, task, output)| {
                    output.is_some()
                        && match task.as_str() {
                            "c1" => setup.c1 == Undo::Ok,
                            "c5" => setup.c5 == Undo::Ok,
                            _ => false,
                        }
                })
                .map(|(i, _, _)| i.to_string())
                .collect();
            let written: Vec<String> = out
                .appended
                .iter()
                .map(|r| {
                    assert_eq!(r.kind, RowKind::Compensated);
                    String::from_utf8(r.output_blob.clone().unwrap()).unwrap()
                })
                .collect();
            prop_assert_eq!(written, if room { undone_ok } else { Vec::new() });
        }
        Plan::Resume { state, last, stack } => {
            prop_assert_eq!(
                &out.events[..1],
                &[format!("resume:{WF}:{}", last.sequence)][..]
            );
            prop_assert_eq!(&out.events[1], &format!("enter:{}", last.state));
            if !has_room(last.sequence) {
                // Not even the re-entry row fits: the run ends before any task runs.
                prop_assert!(
                    out.appended.is_empty(),
                    "appended past the end: {:?}",
                    out.appended
                );
                prop_assert!(out.forward.is_empty() && out.cursors.is_empty());
                let e = out.result.as_ref().expect_err("a full log was resumed");
                let root = match e {
                    CanoError::CompensationFailed { errors } => &errors[0],
                    e => e,
                };
                prop_assert_eq!(root.category(), "checkpoint_store", "{}", e);
                prop_assert!(root.message().contains("is full"), "{}", e);
            } else {
                // The re-entry row (routers write none).
                if state != St(2) {
                    let entry = &out.appended[0];
                    prop_assert_eq!(&entry.state, &last.state);
                    // A resumed stepped state records its re-entry as the cursor it continues from.
                    let resumed_cursor = state == St(3)
                        && last.kind == RowKind::StepCursor
                        && last.output_blob.is_some();
                    if last.kind == RowKind::CompensationCompletion {
                        let expected =
                            format!(r#"{{"resumed":true,"supersedes":{}}}"#, last.sequence);
                        prop_assert_eq!(
                            entry.output_blob.clone(),
                            Some(expected.into_bytes()),
                            "the re-entry row names the completion it supersedes"
                        );
                    } else if resumed_cursor {
                        prop_assert_eq!(entry.kind, RowKind::StepCursor);
                        prop_assert_eq!(&entry.output_blob, &last.output_blob);
                    } else {
                        prop_assert_eq!(entry.kind, RowKind::StateEntry);
                        prop_assert_eq!(
                            entry.output_blob.as_deref(),
                            Some(&br#"{"resumed":true}"#[..]),
                            "a re-entry is marked as one"
                        );
                    }
                }
                // Only the resume point's own cursor is used, and only by the resumed state.
                let resumed_cursor = match (&state, last.kind, &last.output_blob) {
                    (St(3), RowKind::StepCursor, Some(b)) => Some(as_u32(b)),
                    _ => None,
                };
                match resumed_cursor {
                    Some(Some(c)) => prop_assert_eq!(out.cursors.first(), Some(&Some(c))),
                    Some(None) => {
                        prop_assert!(
                            out.cursors.is_empty(),
                            "t3 ran from a cursor that does not decode"
                        );
                        let e = out.result.as_ref().expect_err("a bad cursor was accepted");
                        prop_assert!(e.message().contains("deserialize cursor"), "{}", e);
                    }
                    None => {
                        if let Some(first) = out.cursors.first() {
                            prop_assert_eq!(
                                *first,
                                None,
                                "a stepped state started from a stale cursor"
                            );
                        }
                    }
                }
            }
            // A failed run undoes its own steps and the rehydrated ones, newest first.
            if out.result.is_err() {
                let mut all: Vec<(String, Option<u32>)> = stack.clone();
                all.extend(out.forward.iter().map(|(t, o)| (t.clone(), Some(*o))));
                all.reverse();
                prop_assert_eq!(&out.undone, &calls(&all), "steps undone");
            }
        }
    }
    Ok(())
}

fn unique_sequences(rows: &[CheckpointRow]) -> bool {
    let mut seqs: Vec<u64> = rows.iter().map(|r| r.sequence).collect();
    seqs.sort_unstable();
    seqs.windows(2).all(|w| w[0] != w[1])
}

proptest! {
    #![proptest_config(config(3000))]

    /// `resume_from` over any log: `Ok` or an error, no panic, no hang, no compensation
    /// of a step that is not in the log; exactly the documented outcome when the log's
    /// sequences are unique.
    #[test]
    fn resume_from_any_log(setup in setup()) {
        quiet_panics();
        let out = resume(&setup);
        check_any(&setup, &out)?;
        if unique_sequences(&setup.rows) {
            check_plan(&setup, &out)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Regressions: engine bugs this generator found (fixed by "a full sequence space is an
// error instead of an overflow" and "clean rollbacks clear the log even if bookkeeping
// failed")
// ---------------------------------------------------------------------------------------

/// A log whose last sequence is `u64::MAX - 1`: the re-entry row would take `u64::MAX`,
/// after which no sequence is left. The resume must end with a clear error. It used to
/// panic with `attempt to add with overflow` (`run.sequence += 1` after the state-entry
/// append) in debug builds, and to wrap to sequence 0 in release builds (the run went on
/// appending rows below the log's last row, so a crash made a later resume start from
/// the stale row at the top).
#[test]
fn resume_near_the_top_of_the_sequence_space() {
    quiet_panics();
    let setup = Setup {
        rows: vec![CheckpointRow::new(u64::MAX - 1, "St(0)", "p0")],
        c1: Undo::Ok,
        c5: Undo::Ok,
        p6_fails: false,
    };
    let out = resume(&setup);
    check_any(&setup, &out).unwrap();
    let e = out
        .result
        .expect_err("the log had no room for the resumed run");
    assert_eq!(e.category(), "checkpoint_store", "{e}");
}

/// The last rows the sequence space allows: a log ending at `u64::MAX - 3` has room for
/// the re-entry row (`u64::MAX - 2`) but not for the next state's row, which would take
/// `u64::MAX - 1` and leave no number for a row after it. The run stops with a clear error
/// before that row, and `u64::MAX - 1` and `u64::MAX` are never written.
#[test]
fn the_last_row_the_sequence_space_allows() {
    quiet_panics();
    let setup = Setup {
        rows: vec![CheckpointRow::new(u64::MAX - 3, "St(0)", "p0")],
        c1: Undo::Ok,
        c5: Undo::Ok,
        p6_fails: false,
    };
    let out = resume(&setup);
    check_any(&setup, &out).unwrap();
    let e = out.result.expect_err("no room for the second row");
    assert_eq!(e.category(), "checkpoint_store", "{e}");
    assert!(e.message().contains("full"), "{e}");
    let sequences: Vec<u64> = out.appended.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, vec![u64::MAX - 2]);
}

/// A recorded rollback in a log that ends at `u64::MAX`: the resumed rollback has no room
/// for its `Compensated` rows. It used to compensate the step, fail to record it, return
/// `CompensationFailed` and keep the log — so the next resume compensated the same step
/// again. Every step must be undone once, however often the log is resumed.
#[test]
fn rollback_at_the_top_of_the_sequence_space_undoes_once() {
    quiet_panics();
    let record = json!({
        "category": "task_execution",
        "message": "p6 failed",
        "steps": [{ "task_id": "c1", "output": b"7".to_vec() }],
    });
    let mut started = CheckpointRow::new(0, "", "");
    started.output_blob = Some(serde_json::to_vec(&record).unwrap());
    started.kind = RowKind::RollbackStarted;
    let setup = Setup {
        rows: vec![started, CheckpointRow::new(u64::MAX, "St(6)", "p6")],
        c1: Undo::Ok,
        c5: Undo::Ok,
        p6_fails: true,
    };
    let store = raw_store(&setup.rows);
    let first = resume_in(&setup, &store);
    let second = resume_in(&setup, &store);
    let undone: Vec<(String, u32)> = first.undone.into_iter().chain(second.undone).collect();
    assert_eq!(
        undone,
        vec![("c1".to_string(), 7)],
        "results: {:?}, {:?}",
        first.result,
        second.result
    );
    // The rollback was clean: the original error, the log cleared.
    assert_eq!(first.result, Err(CanoError::task_execution("p6 failed")));
    assert!(first.cleared);
}

/// What the generated logs cover. Diagnostic only:
/// `cargo test -p cano --test prop_recovery -- --ignored --nocapture`.
#[test]
#[ignore = "diagnostic: prints what the generated logs cover"]
fn generator_coverage() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;
    quiet_panics();
    let mut runner = TestRunner::new(config(3000));
    let mut plans: BTreeMap<String, usize> = BTreeMap::new();
    let mut results: BTreeMap<String, usize> = BTreeMap::new();
    let (mut undone, mut forward) = (0, 0);
    for _ in 0..3000 {
        let setup = setup().new_tree(&mut runner).unwrap().current();
        let name = if !unique_sequences(&setup.rows) {
            "duplicate sequences".to_string()
        } else {
            match plan(&setup.rows) {
                Plan::StoreError(n) | Plan::WorkflowError(n) => format!("error: {n}"),
                Plan::Rollback { steps, .. } => format!("rollback of {} step(s)", steps.len()),
                Plan::Resume { state, last, stack } => {
                    format!(
                        "resume at {state:?} {:?}, stack {}",
                        last.kind,
                        stack.len().min(2)
                    )
                }
            }
        };
        *plans.entry(name).or_default() += 1;
        let out = resume(&setup);
        let result = match &out.result {
            Ok(s) => format!("{s:?}"),
            Err(e) => e.category().to_string(),
        };
        *results.entry(result).or_default() += 1;
        undone += out.undone.len();
        forward += out.forward.len();
    }
    for (plan, n) in &plans {
        eprintln!("{n:5}  {plan}");
    }
    eprintln!("results: {results:?}; compensations {undone}, saga steps run {forward}");
}

// ---------------------------------------------------------------------------------------
// RedbCheckpointStore over arbitrary stored values
// ---------------------------------------------------------------------------------------

#[cfg(feature = "recovery")]
mod redb_values {
    use super::*;
    use redb::{Database, ReadableDatabase, TableDefinition};

    /// Row kinds by their index in the stored encoding.
    const KINDS: [RowKind; 5] = [
        RowKind::StateEntry,
        RowKind::CompensationCompletion,
        RowKind::StepCursor,
        RowKind::RollbackStarted,
        RowKind::Compensated,
    ];

    const TABLE: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
        TableDefinition::new("cano_checkpoints");

    /// The reference decoder: postcard's encoding of `{ state: String, task_id: String,
    /// output_blob: Option<Vec<u8>>, kind: RowKind }` (varint lengths, raw bytes, option
    /// tag 0/1, varint variant index), trailing bytes ignored. `None`: not a row.
    pub(super) fn decode(bytes: &[u8]) -> Option<(String, String, Option<Vec<u8>>, u32)> {
        struct Reader<'a>(&'a [u8]);
        impl Reader<'_> {
            fn byte(&mut self) -> Option<u8> {
                let (first, rest) = self.0.split_first()?;
                self.0 = rest;
                Some(*first)
            }
            /// LEB128 of at most `max` bytes whose last byte carries at most `last_bits`.
            fn varint(&mut self, max: usize, last_bits: u32) -> Option<u64> {
                let mut out = 0u64;
                for i in 0..max {
                    let b = self.byte()?;
                    out |= u64::from(b & 0x7f) << (7 * i);
                    if b & 0x80 == 0 {
                        if i == max - 1 && u32::from(b) >= (1 << last_bits) {
                            return None;
                        }
                        return Some(out);
                    }
                }
                None
            }
            fn take(&mut self, n: u64) -> Option<&[u8]> {
                let n = usize::try_from(n).ok()?;
                if n > self.0.len() {
                    return None;
                }
                let (head, rest) = self.0.split_at(n);
                self.0 = rest;
                Some(head)
            }
            fn string(&mut self) -> Option<String> {
                let n = self.varint(10, 1)?;
                String::from_utf8(self.take(n)?.to_vec()).ok()
            }
        }
        let mut r = Reader(bytes);
        let state = r.string()?;
        let task_id = r.string()?;
        let blob = match r.byte()? {
            0 => None,
            1 => {
                let n = r.varint(10, 1)?;
                Some(r.take(n)?.to_vec())
            }
            _ => return None,
        };
        let kind = u32::try_from(r.varint(5, 4)?).ok()?;
        (kind < 5).then_some((state, task_id, blob, kind))
    }

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// A well-formed value (kind index may be out of range).
    fn encode(state: &str, task_id: &str, blob: Option<&[u8]>, kind: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for s in [state, task_id] {
            varint(s.len() as u64, &mut out);
            out.extend_from_slice(s.as_bytes());
        }
        match blob {
            None => out.push(0),
            Some(b) => {
                out.push(1);
                varint(b.len() as u64, &mut out);
                out.extend_from_slice(b);
            }
        }
        varint(u64::from(kind), &mut out);
        out
    }

    /// A well-formed stored value (its kind index may be out of range).
    fn stored_row() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![label(), "\\PC{0,6}"],
            task_id(),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..10)),
            prop_oneof![8 => 0..5u32, 1 => 5..300u32, 1 => Just(u32::MAX)],
        )
            .prop_map(|(state, task_id, blob, kind)| {
                encode(&state, &task_id, blob.as_deref(), kind)
            })
    }

    /// A stored value: well formed, well formed then damaged, or any bytes.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => stored_row(),
            // Truncated, extended or with one byte changed.
            3 => (stored_row(), any::<prop::sample::Index>(), any::<u8>(), 0..3u8).prop_map(
                |(mut v, at, byte, how)| {
                    let i = at.index(v.len().max(1));
                    match how {
                        0 => v.truncate(i),
                        1 => v.extend_from_slice(&[byte, byte]),
                        _ => {
                            if let Some(b) = v.get_mut(i) {
                                *b = byte;
                            }
                        }
                    }
                    v
                }
            ),
            2 => prop::collection::vec(any::<u8>(), 0..24),
            1 => prop::sample::select(vec![
                vec![],
                vec![0xff; 4],
                vec![0x80; 12],
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                vec![0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10],
                vec![1, 0xc3, 0, 0, 0],
            ]),
        ]
    }

    /// The stored values of the run `wf` (by sequence), and of other ids.
    type Table = (Vec<(u64, Vec<u8>)>, Vec<(String, u64, Vec<u8>)>);

    fn table() -> impl Strategy<Value = Table> {
        (
            prop::collection::btree_map(sequence(), value(), 0..6)
                .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["w", "wf2", "", "wf\0"]).prop_map(String::from),
                    sequence(),
                    value(),
                ),
                0..3,
            ),
        )
    }

    fn kind_of(index: u32) -> RowKind {
        KINDS[usize::try_from(index).unwrap()]
    }

    proptest! {
        #![proptest_config(config(96))]

        /// `load_run` returns the rows exactly when every value of the run decodes, and a
        /// `checkpoint_store` decode error otherwise; `resume_from` on the file never
        /// panics or hangs.
        #[test]
        fn redb_load_run_any_values((run, others) in table(), p6_fails in any::<bool>()) {
            quiet_panics();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("checkpoints.redb");
            {
                let db = Database::create(&path).unwrap();
                let txn = db.begin_write().unwrap();
                {
                    let mut table = txn.open_table(TABLE).unwrap();
                    for (seq, value) in &run {
                        table.insert((WF, *seq), value.as_slice()).unwrap();
                    }
                    for (id, seq, value) in &others {
                        table.insert((id.as_str(), *seq), value.as_slice()).unwrap();
                    }
                }
                txn.commit().unwrap();
            }
            let decoded: Option<Vec<CheckpointRow>> = run
                .iter()
                .map(|(seq, value)| {
                    decode(value).map(|(state, task_id, output_blob, kind)| CheckpointRow {
                        sequence: *seq,
                        state,
                        task_id,
                        output_blob,
                        kind: kind_of(kind),
                    })
                })
                .collect();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (loaded, resumed) = runtime.block_on(async {
                let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());
                let loaded = tokio::time::timeout(Duration::from_secs(60), store.load_run(WF))
                    .await
                    .expect("load_run never returned (hang)");
                let books = Arc::new(Books::default());
                let setup = Setup { rows: Vec::new(), c1: Undo::Ok, c5: Undo::Ok, p6_fails };
                let wf = workflow(&setup, &books, store.clone(), &Recorder::new());
                let resumed = tokio::time::timeout(Duration::from_secs(60), wf.resume_from(WF))
                    .await
                    .expect("resume_from never returned (hang)");
                (loaded, resumed)
            });
            match (&decoded, &loaded) {
                (Some(rows), Ok(got)) => prop_assert_eq!(got, rows),
                (None, Err(e)) => {
                    prop_assert_eq!(e.category(), "checkpoint_store", "{}", e);
                    prop_assert!(e.message().contains("decode"), "{}", e);
                }
                (Some(_), Err(e)) => {
                    return Err(TestCaseError::fail(format!("a valid log failed to load: {e}")));
                }
                (None, Ok(got)) => {
                    return Err(TestCaseError::fail(format!("an invalid log loaded: {got:?}")));
                }
            }
            match (&loaded, &resumed) {
                (Err(_), Err(e)) => {
                    prop_assert_eq!(e.category(), "checkpoint_store", "{}", e);
                    prop_assert!(e.message().contains("decode"), "{}", e);
                }
                (Err(_), Ok(s)) => {
                    return Err(TestCaseError::fail(format!("resumed an unreadable log to {s:?}")));
                }
                (Ok(_), Ok(s)) => prop_assert!(*s == DONE || *s == St(101), "{:?}", s),
                (Ok(_), Err(e)) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    /// The reference decoder agrees with the store on a row the store wrote itself.
    #[test]
    fn reference_decoder_reads_what_the_store_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.redb");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = RedbCheckpointStore::new(&path).unwrap();
            for (seq, kind) in KINDS.iter().enumerate() {
                let mut row = CheckpointRow::new(seq as u64, "Ünïcode(3)", "t");
                row.output_blob = (seq % 2 == 0).then(|| vec![7; 200]);
                row.kind = *kind;
                store.append(WF, row).await.unwrap();
            }
        });
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        for (seq, kind) in KINDS.iter().enumerate() {
            let value = table.get((WF, seq as u64)).unwrap().unwrap();
            let (state, task_id, blob, index) = decode(value.value()).unwrap();
            assert_eq!((state.as_str(), task_id.as_str()), ("Ünïcode(3)", "t"));
            assert_eq!(blob, (seq % 2 == 0).then(|| vec![7; 200]));
            assert_eq!(kind_of(index), *kind);
        }
    }
}
