//! The reference fixture: a redb checkpoint database written by cano 0.12.0 (seven
//! interrupted runs, named in `RUN_IDS`). Every
//! run is resumed with the workflow `W` and with `W-ship-fails`, and the result, the
//! `on_resume` event, the task calls, the appended rows and the final log are checked.
#![cfg(feature = "recovery")]

use cano::ListRuns;
use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/reference-0.12.0.redb"
);
const RUN_IDS: [&str; 7] = [
    "plain-failed",
    "saga-midway",
    "saga-after-completion",
    "saga-dirty-rollback",
    "stepped-cursor",
    "split-entered",
    "at-exit",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    Start,
    Work,
    Finish,
    Reserve,
    Charge,
    Ship,
    Crunch,
    Prepare,
    Fanout,
    Merge,
    Done,
}

#[derive(Serialize, Deserialize, Debug)]
struct Reservation {
    sku: String,
    qty: u32,
}

#[derive(Serialize, Deserialize, Debug)]
struct Payment {
    payment_id: String,
    amount_cents: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Progress {
    next: u32,
    sum: u64,
}

/// What the tasks did, in order.
#[derive(Clone, Default, Resource)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn push(&self, call: impl Into<String>) {
        self.0.lock().unwrap().push(call.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn calls(res: &Resources) -> Result<Arc<Calls>, CanoError> {
    res.get::<Calls, _>("calls")
}

/// A plain task recording `label` and moving to `next`.
struct Plain {
    label: &'static str,
    next: Step,
    fails: bool,
}

#[task(state = Step)]
impl Plain {
    fn config(&self) -> TaskConfig {
        if self.label == "Ship" {
            TaskConfig::minimal()
        } else {
            TaskConfig::default()
        }
    }
    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        calls(res)?.push(self.label);
        if self.fails {
            return Err(CanoError::task_execution("ship failed"));
        }
        Ok(TaskResult::Single(self.next))
    }
}

struct ReserveTask;

#[saga::task(state = Step)]
impl ReserveTask {
    type Output = Reservation;
    fn name(&self) -> Cow<'static, str> {
        "reserve".into()
    }
    async fn run(&self, res: &Resources) -> Result<(TaskResult<Step>, Reservation), CanoError> {
        calls(res)?.push("reserve.run");
        Ok((
            TaskResult::Single(Step::Charge),
            Reservation {
                sku: "SKU-R".into(),
                qty: 1,
            },
        ))
    }
    async fn compensate(&self, res: &Resources, output: Reservation) -> Result<(), CanoError> {
        let json = serde_json::to_string(&output).unwrap();
        calls(res)?.push(format!("reserve.compensate {json}"));
        Ok(())
    }
}

struct ChargeTask;

#[saga::task(state = Step)]
impl ChargeTask {
    type Output = Payment;
    fn name(&self) -> Cow<'static, str> {
        "charge".into()
    }
    async fn run(&self, res: &Resources) -> Result<(TaskResult<Step>, Payment), CanoError> {
        calls(res)?.push("charge.run");
        Ok((
            TaskResult::Single(Step::Ship),
            Payment {
                payment_id: "PAY-R".into(),
                amount_cents: 500,
            },
        ))
    }
    async fn compensate(&self, res: &Resources, output: Payment) -> Result<(), CanoError> {
        let json = serde_json::to_string(&output).unwrap();
        calls(res)?.push(format!("charge.compensate {json}"));
        Ok(())
    }
}

struct Cruncher;

#[task::stepped(state = Step)]
impl Cruncher {
    async fn step(
        &self,
        res: &Resources,
        cursor: Option<Progress>,
    ) -> Result<StepOutcome<Progress, Step>, CanoError> {
        let shown = match &cursor {
            Some(p) => serde_json::to_string(p).unwrap(),
            None => "None".to_string(),
        };
        calls(res)?.push(format!("Crunch.step {shown}"));
        let p = cursor.unwrap_or(Progress { next: 0, sum: 0 });
        if p.next >= 5 {
            return Ok(StepOutcome::Done(TaskResult::Single(Step::Done)));
        }
        Ok(StepOutcome::More(Progress {
            next: p.next + 1,
            sum: p.sum + u64::from(p.next) + 1,
        }))
    }
}

#[derive(Clone)]
struct Member(usize);

#[task(state = Step)]
impl Member {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        calls(res)?.push(format!("Fanout[{}]", self.0));
        Ok(TaskResult::Single(Step::Merge))
    }
}

/// Records every append/clear before forwarding to the real store.
struct Recording {
    inner: RedbCheckpointStore,
    appended: Mutex<Vec<(String, CheckpointRow)>>,
    cleared: Mutex<Vec<String>>,
}

#[checkpoint_store]
impl CheckpointStore for Recording {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        self.appended
            .lock()
            .unwrap()
            .push((workflow_id.to_string(), row.clone()));
        self.inner.append(workflow_id, row).await
    }
    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        self.inner.load_run(workflow_id).await
    }
    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.cleared.lock().unwrap().push(workflow_id.to_string());
        self.inner.clear(workflow_id).await
    }
}

#[derive(Default)]
struct Resumes(Mutex<Vec<(String, u64)>>);

impl WorkflowObserver for Resumes {
    fn on_resume(&self, workflow_id: &str, sequence: u64) {
        self.0
            .lock()
            .unwrap()
            .push((workflow_id.to_string(), sequence));
    }
}

fn workflow(
    store: Arc<Recording>,
    calls: Calls,
    resumes: Arc<Resumes>,
    ship_fails: bool,
) -> Workflow<Step> {
    let plain = |label, next| Plain {
        label,
        next,
        fails: false,
    };
    Workflow::new(Resources::new().insert("calls", calls))
        .register(Step::Start, plain("Start", Step::Work))
        .register(Step::Work, plain("Work", Step::Finish))
        .register(Step::Finish, plain("Finish", Step::Done))
        .register_with_compensation(Step::Reserve, ReserveTask)
        .register_with_compensation(Step::Charge, ChargeTask)
        .register(
            Step::Ship,
            Plain {
                label: "Ship",
                next: Step::Done,
                fails: ship_fails,
            },
        )
        .register_stepped(Step::Crunch, Cruncher)
        .register(Step::Prepare, plain("Prepare", Step::Fanout))
        .register_split(
            Step::Fanout,
            vec![Member(0), Member(1), Member(2)],
            JoinConfig::new(JoinStrategy::All, Step::Merge),
        )
        .register(Step::Merge, plain("Merge", Step::Done))
        .add_exit_state(Step::Done)
        .with_checkpoint_store(store)
        .with_observer(resumes)
}

/// A private copy of the fixture.
fn copy_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("fixture.redb");
    std::fs::copy(FIXTURE, &path).expect("copy fixture");
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

/// One expected appended row: sequence, state, kind, task id (`None`: any non-empty
/// name of ours), output JSON.
type Row = (
    u64,
    &'static str,
    RowKind,
    Option<&'static str>,
    Option<&'static str>,
);

struct Case {
    id: &'static str,
    ship_fails: bool,
    resume_seq: u64,
    calls: &'static [&'static str],
    rows: &'static [Row],
    error: Option<&'static str>,
}

use RowKind::{
    CompensationCompletion as Done_, SplitMember as MemberDone, StateEntry as Entry,
    StepCursor as Cursor,
};

const PAY_R: &str = r#"{"payment_id":"PAY-R","amount_cents":500}"#;

/// The blob of a resumed run's re-entry row: 0.12.0 writes none; ours marks the row as a
/// re-entry, so that visits (and idempotency keys) are counted the same after any number
/// of resumes (COMPATIBILITY.md).
const RESUMED: &str = r#"{"resumed":true}"#;

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for ship_fails in [false, true] {
        out.push(Case {
            id: "plain-failed",
            ship_fails,
            resume_seq: 1,
            calls: &["Work", "Finish"],
            rows: &[
                (2, "Work", Entry, None, Some(RESUMED)),
                (3, "Finish", Entry, None, None),
                (4, "Done", Entry, Some(""), None),
            ],
            error: None,
        });
        out.push(Case {
            id: "stepped-cursor",
            ship_fails,
            resume_seq: 3,
            calls: &[
                r#"Crunch.step {"next":3,"sum":6}"#,
                r#"Crunch.step {"next":4,"sum":10}"#,
                r#"Crunch.step {"next":5,"sum":15}"#,
            ],
            // 0.12.0 appends (4, Crunch, StateEntry) for the re-entry; we record it as a
            // cursor row carrying the cursor the visit continues from, so that a second
            // crash before the next step still resumes from it (COMPATIBILITY.md).
            rows: &[
                (4, "Crunch", Cursor, None, Some(r#"{"next":3,"sum":6}"#)),
                (5, "Crunch", Cursor, None, Some(r#"{"next":4,"sum":10}"#)),
                (6, "Crunch", Cursor, None, Some(r#"{"next":5,"sum":15}"#)),
                (7, "Done", Entry, Some(""), None),
            ],
            error: None,
        });
        out.push(Case {
            id: "split-entered",
            ship_fails,
            resume_seq: 1,
            calls: &["Fanout[0]", "Fanout[1]", "Fanout[2]", "Merge"],
            // Each member that finishes is recorded, so that a crash during the split
            // does not run the finished ones again (COMPATIBILITY.md); 0.12.0 writes none.
            rows: &[
                (2, "Fanout", Entry, Some(""), Some(RESUMED)),
                (3, "Fanout", MemberDone, Some(""), Some("0")),
                (4, "Fanout", MemberDone, Some(""), Some("1")),
                (5, "Fanout", MemberDone, Some(""), Some("2")),
                (6, "Merge", Entry, None, None),
                (7, "Done", Entry, Some(""), None),
            ],
            error: None,
        });
        out.push(Case {
            id: "at-exit",
            ship_fails,
            resume_seq: 3,
            calls: &[],
            rows: &[(4, "Done", Entry, Some(""), Some(RESUMED))],
            error: None,
        });
    }
    out.push(Case {
        id: "saga-midway",
        ship_fails: false,
        resume_seq: 4,
        calls: &["Ship"],
        rows: &[
            (5, "Ship", Entry, None, Some(RESUMED)),
            (6, "Done", Entry, Some(""), None),
        ],
        error: None,
    });
    out.push(Case {
        id: "saga-midway",
        ship_fails: true,
        resume_seq: 4,
        calls: &[
            "Ship",
            r#"charge.compensate {"payment_id":"PAY-7","amount_cents":1999}"#,
            r#"reserve.compensate {"sku":"SKU-42","qty":2}"#,
        ],
        rows: &[(5, "Ship", Entry, None, Some(RESUMED))],
        error: Some("Task execution error: ship failed"),
    });
    for (id, first) in [
        ("saga-after-completion", 4u64),
        ("saga-dirty-rollback", 3u64),
    ] {
        let rows_ok: &'static [Row] = if first == 4 {
            // The resume point is Charge's completion row (seq 3), which the re-run
            // replaces. 0.12.0 writes the re-entry row without output; ours names the
            // superseded row (3) so a second resume never compensates both runs of the
            // step (COMPATIBILITY.md).
            &[
                (
                    4,
                    "Charge",
                    Entry,
                    Some("charge"),
                    Some(r#"{"resumed":true,"supersedes":3}"#),
                ),
                (5, "Charge", Done_, Some("charge"), Some(PAY_R)),
                (6, "Ship", Entry, None, None),
                (7, "Done", Entry, Some(""), None),
            ]
        } else {
            &[
                (3, "Charge", Entry, Some("charge"), Some(RESUMED)),
                (4, "Charge", Done_, Some("charge"), Some(PAY_R)),
                (5, "Ship", Entry, None, None),
                (6, "Done", Entry, Some(""), None),
            ]
        };
        out.push(Case {
            id,
            ship_fails: false,
            resume_seq: first - 1,
            calls: &["charge.run", "Ship"],
            rows: rows_ok,
            error: None,
        });
        out.push(Case {
            id,
            ship_fails: true,
            resume_seq: first - 1,
            calls: &[
                "charge.run",
                "Ship",
                r#"charge.compensate {"payment_id":"PAY-R","amount_cents":500}"#,
                r#"reserve.compensate {"sku":"SKU-42","qty":2}"#,
            ],
            rows: &rows_ok[..3],
            error: Some("Task execution error: ship failed"),
        });
    }
    out
}

async fn all_rows(store: &RedbCheckpointStore) -> Vec<(String, Vec<CheckpointRow>)> {
    let mut out = Vec::new();
    for id in RUN_IDS {
        out.push((id.to_string(), store.load_run(id).await.unwrap()));
    }
    out
}

#[tokio::test]
async fn every_run_in_the_reference_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbCheckpointStore::new(copy_fixture(dir.path())).unwrap();
    let counts: Vec<usize> = {
        let mut v = Vec::new();
        for id in RUN_IDS {
            v.push(store.load_run(id).await.unwrap().len());
        }
        v
    };
    assert_eq!(counts, vec![2, 5, 4, 3, 4, 2, 4]);
    assert_eq!(counts.iter().sum::<usize>(), 24);
    let saga = store.load_run("saga-midway").await.unwrap();
    assert_eq!(saga[1].kind, RowKind::CompensationCompletion);
    assert_eq!(saga[1].task_id, "reserve");
    assert_eq!(
        saga[1].output_blob.as_deref(),
        Some(br#"{"sku":"SKU-42","qty":2}"#.as_slice())
    );
    let stepped = store.load_run("stepped-cursor").await.unwrap();
    assert_eq!(stepped[3].kind, RowKind::StepCursor);
    assert_eq!(
        stepped.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let split = store.load_run("split-entered").await.unwrap();
    assert_eq!(
        (split[1].state.as_str(), split[1].task_id.as_str()),
        ("Fanout", "")
    );
}

#[tokio::test]
async fn every_run_resumes_as_the_reference_did() {
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let path = copy_fixture(dir.path());
        let redb = RedbCheckpointStore::new(&path).unwrap();
        let before = all_rows(&redb).await;
        let store = Arc::new(Recording {
            inner: redb.clone(),
            appended: Mutex::new(Vec::new()),
            cleared: Mutex::new(Vec::new()),
        });
        let calls = Calls::default();
        let resumes = Arc::new(Resumes::default());
        let wf = workflow(
            store.clone(),
            calls.clone(),
            resumes.clone(),
            case.ship_fails,
        );
        let what = format!("{} (ship fails: {})", case.id, case.ship_fails);

        let result = wf.resume_from(case.id).await;
        match case.error {
            None => assert_eq!(result, Ok(Step::Done), "{what}"),
            Some(text) => {
                let err = result.expect_err(&what);
                assert_eq!(err.category(), "task_execution", "{what}");
                assert_eq!(err.to_string(), text, "{what}");
            }
        }
        assert_eq!(
            *resumes.0.lock().unwrap(),
            vec![(case.id.to_string(), case.resume_seq)],
            "{what}"
        );
        let mut got_calls = calls.take();
        let mut want_calls: Vec<String> = case.calls.iter().map(|s| s.to_string()).collect();
        if case.id == "split-entered" {
            // Members run concurrently: their order is free, Merge comes last.
            got_calls[..3].sort();
            want_calls[..3].sort();
        }
        assert_eq!(got_calls, want_calls, "{what}");

        let mut appended = store.appended.lock().unwrap().clone();
        // Our engine also records the rollback itself (one `RollbackStarted` row, then a
        // `Compensated` row per step undone) so that a crash mid-rollback can be resumed;
        // 0.12.0 does not (see COMPATIBILITY.md). Those rows come after the reference's.
        let rollback: Vec<RowKind> = appended
            .iter()
            .map(|(_, r)| r.kind)
            .filter(|k| matches!(k, RowKind::RollbackStarted | RowKind::Compensated))
            .collect();
        appended
            .retain(|(_, r)| !matches!(r.kind, RowKind::RollbackStarted | RowKind::Compensated));
        let compensations = case
            .calls
            .iter()
            .filter(|c| c.contains(".compensate"))
            .count();
        let mut expected_rollback = Vec::new();
        if compensations > 0 {
            expected_rollback.push(RowKind::RollbackStarted);
            expected_rollback.extend(std::iter::repeat_n(RowKind::Compensated, compensations));
        }
        assert_eq!(rollback, expected_rollback, "{what}");
        assert_eq!(appended.len(), case.rows.len(), "{what}: {appended:?}");
        for ((id, row), (seq, state, kind, task_id, blob)) in appended.iter().zip(case.rows) {
            assert_eq!(id, case.id, "{what}");
            assert_eq!(
                (row.sequence, row.state.as_str(), row.kind),
                (*seq, *state, *kind),
                "{what}"
            );
            match task_id {
                Some(t) => assert_eq!(row.task_id, *t, "{what}"),
                None => assert!(!row.task_id.is_empty(), "{what}: row {seq} has no task id"),
            }
            assert_eq!(
                row.output_blob.as_deref(),
                blob.map(str::as_bytes),
                "{what}: row {seq}"
            );
        }
        // Every case ends cleanly (success or clean rollback): the log is cleared.
        assert_eq!(
            *store.cleared.lock().unwrap(),
            vec![case.id.to_string()],
            "{what}"
        );
        assert!(redb.load_run(case.id).await.unwrap().is_empty(), "{what}");
        // The other runs are untouched.
        for (id, rows) in before {
            if id != case.id {
                assert_eq!(
                    redb.load_run(&id).await.unwrap(),
                    rows,
                    "{what}: {id} changed"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_id_missing_from_the_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbCheckpointStore::new(copy_fixture(dir.path())).unwrap();
    let store = Arc::new(Recording {
        inner: redb,
        appended: Mutex::new(Vec::new()),
        cleared: Mutex::new(Vec::new()),
    });
    let wf = workflow(store, Calls::default(), Arc::new(Resumes::default()), false);
    let err = wf.resume_from("no-such-run").await.unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert_eq!(
        err.to_string(),
        r#"Checkpoint store error: no checkpoint rows for workflow id "no-such-run""#
    );
}

#[tokio::test]
async fn reference_runs_resume_as_version_0_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbCheckpointStore::new(copy_fixture(dir.path())).unwrap();
    let summaries = redb.list_runs().await.unwrap();
    assert_eq!(summaries.len(), RUN_IDS.len());
    assert!(summaries.iter().all(|s| s.version == 0), "{summaries:?}");
    let before = all_rows(&redb).await;
    let store = Arc::new(Recording {
        inner: redb,
        appended: Mutex::new(Vec::new()),
        cleared: Mutex::new(Vec::new()),
    });
    let calls = Calls::default();
    let resumes = Arc::new(Resumes::default());
    let v1 = workflow(store.clone(), calls.clone(), resumes, false).with_workflow_version(1);
    for id in RUN_IDS {
        let err = v1.resume_from(id).await.unwrap_err();
        assert_eq!(
            err.workflow_version_mismatch_versions(),
            Some((0, 1)),
            "{id}: {err}"
        );
        assert!(err.to_string().contains(&format!("{id:?}")), "{err}");
    }
    assert!(calls.take().is_empty(), "a refused resume ran a task");
    assert!(store.appended.lock().unwrap().is_empty());
    assert!(store.cleared.lock().unwrap().is_empty());
    assert_eq!(all_rows(&store.inner).await, before);
    // Version 0, the default, resumes them.
    let v0 = v1.with_workflow_version(0);
    assert_eq!(v0.resume_from("plain-failed").await, Ok(Step::Done));
}
