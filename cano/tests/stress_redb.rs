//! Stress: thousands of concurrent checkpointed runs on one shared
//! [`RedbCheckpointStore`] (one file), with random task failures and random cancellation
//! (dropped `orchestrate` / `resume_from` futures), on a multi-thread runtime.
//!
//! Each run is `Start` (plain, retried) → `Load` (stepped, three steps) → `Reserve`,
//! `Charge` (saga steps) → `Ship` (plain) → `Done`. A run may get one planned task
//! failure (an error or a panic, firing once), plus — when it hits `Charge` or `Ship` — a
//! failing compensation (a dirty rollback); each attempt may be cancelled at a random
//! point in one of three ways: `tokio::time::timeout` with a random short limit,
//! `select!` against a progress counter (lands right after a chosen task step), or
//! `JoinHandle::abort` after a random number of yields.
//!
//! Phases: (1) every run starts, with chaos; (2) every run that left rows is resumed,
//! again with random cancellation; (3) every run is driven to its end without chaos.
//! After phases 1 and 2 every log must be well-formed (dense from 0, rows of the right
//! kinds for their states, rollback rows only after a `RollbackStarted` row). At the end:
//!
//! * every log is cleared, and the file holds no key at all (read with redb directly);
//! * every run either completed — its side effects, with the re-runs at interruption
//!   points folded away, are exactly those of an unfaulted run — or, when its planned
//!   failure hit `Charge` or `Ship` (after a saga step), rolled back every completed step,
//!   newest first; nothing ran forward after a compensation;
//! * a run re-ran at most one unit of work per interruption;
//! * runs that had no rows at all are accounted for: they either never wrote a row (and
//!   never ran a task: they are started afresh and complete) or had already finished.
//!
//! CI runs 2,000 runs (under a minute in debug on 2 cores). A soak runs with
//! `CANO_SOAK_RUNS=100000` (and optionally `CANO_STRESS_SEED`), e.g.
//! `CANO_SOAK_RUNS=100000 cargo test --release -p cano --features recovery --test stress_redb -- --nocapture`.
#![cfg(feature = "recovery")]

mod fault;

use cano::prelude::*;
use fault::{PANIC_MARKER, Rng, quiet_injected_panics};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Runs in the CI version.
const CI_RUNS: usize = 2_000;
/// Most runs per round (a soak runs several rounds on the same file).
const ROUND: usize = 50_000;
/// Most runs in flight at once.
const MAX_IN_FLIGHT: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum St {
    Start,
    Load,
    Reserve,
    Charge,
    Ship,
    Done,
}

/// Where a planned failure fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    Start,
    Load,
    Reserve,
    Charge,
    Ship,
    UndoReserve,
    UndoCharge,
}

const FORWARD: [Point; 5] = [
    Point::Start,
    Point::Load,
    Point::Reserve,
    Point::Charge,
    Point::Ship,
];

const FULL: [&str; 7] = [
    "start", "load:0", "load:1", "load:2", "reserve", "charge", "ship",
];

/// One run's world: its side effects, its planned failure, its progress.
struct Ctx {
    fx: Mutex<Vec<&'static str>>,
    /// Planned failures `(where, panic?)`; each is taken when it fires.
    failures: Mutex<Vec<(Point, bool)>>,
    fired: Mutex<Vec<Point>>,
    cancels: AtomicU32,
    progress: AtomicU32,
    moved: Notify,
    rng: Mutex<Rng>,
}

impl Ctx {
    fn new(seed: u64) -> Self {
        Self {
            fx: Mutex::default(),
            failures: Mutex::default(),
            fired: Mutex::default(),
            cancels: AtomicU32::new(0),
            progress: AtomicU32::new(0),
            moved: Notify::new(),
            rng: Mutex::new(Rng::new(seed)),
        }
    }

    fn effects(&self) -> Vec<&'static str> {
        self.fx.lock().unwrap().clone()
    }

    fn record(&self, what: &'static str) {
        self.fx.lock().unwrap().push(what);
    }

    fn fired(&self) -> Vec<Point> {
        self.fired.lock().unwrap().clone()
    }

    /// A unit of work begins: count it, then give other tasks (and cancellations) a
    /// chance, sometimes with a short real sleep.
    async fn pause(&self) {
        self.progress.fetch_add(1, Ordering::SeqCst);
        self.moved.notify_waiters();
        let (yields, sleep) = {
            let mut rng = self.rng.lock().unwrap();
            let sleep = rng.chance(1.0 / 32.0).then(|| rng.below(400));
            (rng.below(4), sleep)
        };
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        if let Some(us) = sleep {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
    }

    /// Fire the planned failure if it is planned here (once).
    fn check(&self, point: Point) -> Result<(), CanoError> {
        let planned = {
            let mut failures = self.failures.lock().unwrap();
            let at = failures.iter().position(|(p, _)| *p == point);
            at.map(|i| failures.remove(i).1)
        };
        match planned {
            None => Ok(()),
            Some(panic) => {
                self.fired.lock().unwrap().push(point);
                if panic {
                    panic!("{PANIC_MARKER}: {point:?}");
                }
                Err(CanoError::task_execution(format!("{point:?} failed")))
            }
        }
    }

    /// Resolves once `k` more units of work have begun.
    async fn progressed(&self, k: u32) {
        let target = self.progress.load(Ordering::SeqCst) + k;
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.progress.load(Ordering::SeqCst) >= target {
                return;
            }
            moved.await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------

struct StartTask(Arc<Ctx>);

#[task(state = St)]
impl StartTask {
    fn config(&self) -> TaskConfig {
        // A failure here is retried at once and the run goes on.
        TaskConfig::minimal().with_fixed_retry(2, Duration::ZERO)
    }
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("start")
    }
    async fn run_bare(&self) -> Result<TaskResult<St>, CanoError> {
        self.0.pause().await;
        self.0.check(Point::Start)?;
        self.0.record("start");
        Ok(TaskResult::Single(St::Load))
    }
}

struct LoadTask(Arc<Ctx>);

#[task::stepped(state = St)]
impl LoadTask {
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
    ) -> Result<StepOutcome<u32, St>, CanoError> {
        self.0.pause().await;
        self.0.check(Point::Load)?;
        let n = cursor.unwrap_or(0);
        self.0.record(["load:0", "load:1", "load:2"][n as usize]);
        Ok(if n + 1 < 3 {
            StepOutcome::More(n + 1)
        } else {
            StepOutcome::Done(TaskResult::Single(St::Reserve))
        })
    }
}

struct SagaStep {
    ctx: Arc<Ctx>,
    name: &'static str,
    undo: &'static str,
    output: u32,
    next: St,
    at: Point,
    undo_at: Point,
}

#[saga::task(state = St)]
impl SagaStep {
    type Output = u32;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<St>, u32), CanoError> {
        self.ctx.pause().await;
        self.ctx.check(self.at)?;
        self.ctx.record(self.name);
        Ok((TaskResult::Single(self.next.clone()), self.output))
    }
    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        assert_eq!(output, self.output, "compensation got the recorded output");
        self.ctx.pause().await;
        self.ctx.check(self.undo_at)?;
        self.ctx.record(self.undo);
        Ok(())
    }
}

struct ShipTask(Arc<Ctx>);

#[task(state = St)]
impl ShipTask {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("ship")
    }
    async fn run_bare(&self) -> Result<TaskResult<St>, CanoError> {
        self.0.pause().await;
        self.0.check(Point::Ship)?;
        self.0.record("ship");
        Ok(TaskResult::Single(St::Done))
    }
}

fn workflow(store: &Arc<RedbCheckpointStore>, ctx: &Arc<Ctx>, id: &str) -> Workflow<St> {
    let step = |name, undo, output, next, at, undo_at| SagaStep {
        ctx: ctx.clone(),
        name,
        undo,
        output,
        next,
        at,
        undo_at,
    };
    Workflow::bare()
        .register(St::Start, StartTask(ctx.clone()))
        .register_stepped(St::Load, LoadTask(ctx.clone()))
        .register_with_compensation(
            St::Reserve,
            step(
                "reserve",
                "undo:reserve",
                7,
                St::Charge,
                Point::Reserve,
                Point::UndoReserve,
            ),
        )
        .register_with_compensation(
            St::Charge,
            step(
                "charge",
                "undo:charge",
                8,
                St::Ship,
                Point::Charge,
                Point::UndoCharge,
            ),
        )
        .register(St::Ship, ShipTask(ctx.clone()))
        .add_exit_state(St::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id(id)
}

// ---------------------------------------------------------------------------------------
// Chaos
// ---------------------------------------------------------------------------------------

/// How an attempt is cancelled.
#[derive(Debug, Clone, Copy)]
enum Cancel {
    Never,
    /// `tokio::time::timeout` with this limit.
    After(Duration),
    /// `select!` against `k` more units of work.
    Progress(u32),
    /// Spawned, then aborted after this many yields.
    Abort(u32),
}

fn pick_cancel(rng: &mut Rng, probability: f64) -> Cancel {
    if !rng.chance(probability) {
        return Cancel::Never;
    }
    match rng.below(3) {
        0 => Cancel::After(Duration::from_micros(rng.below(20_000))),
        1 => Cancel::Progress(1 + rng.below(12) as u32),
        _ => Cancel::Abort(rng.below(40) as u32),
    }
}

/// One attempt (`orchestrate`, or `resume_from` when `resume`); `None` if cancelled.
async fn attempt(
    wf: Workflow<St>,
    ctx: &Ctx,
    id: &str,
    resume: bool,
    cancel: Cancel,
) -> Option<Result<St, CanoError>> {
    let id = id.to_string();
    let run = async move {
        if resume {
            wf.resume_from(id).await
        } else {
            wf.orchestrate(St::Start).await
        }
    };
    let outcome = match cancel {
        Cancel::Never => Some(run.await),
        Cancel::After(limit) => tokio::time::timeout(limit, run).await.ok(),
        Cancel::Progress(k) => {
            tokio::select! {
                r = run => Some(r),
                () = ctx.progressed(k) => None,
            }
        }
        Cancel::Abort(yields) => {
            let handle = tokio::spawn(run);
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            handle.abort();
            match handle.await {
                Ok(r) => Some(r),
                Err(e) if e.is_cancelled() => None,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    };
    if outcome.is_none() {
        ctx.cancels.fetch_add(1, Ordering::SeqCst);
    }
    outcome
}

/// Errors a run may end an attempt with: its planned failure (plain or caught panic),
/// or a dirty rollback caused by a planned compensation failure.
fn assert_expected_error(e: &CanoError, id: &str) {
    let ok = match e.category() {
        "task_execution" => e.message().ends_with(" failed") || e.message().starts_with("panic: "),
        "compensation_failed" => true,
        _ => false,
    };
    assert!(ok, "{id}: unexpected error {e:?}");
}

/// A log must be dense from 0; rows must have the kinds their states allow; after a
/// `RollbackStarted` row only `Compensated` rows may follow.
fn check_log(id: &str, rows: &[CheckpointRow]) {
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.sequence, i as u64, "{id}: not dense: {rows:?}");
    }
    if let Some(first) = rows.first() {
        assert_eq!(first, &CheckpointRow::new(0, "Start", "start"), "{id}");
    }
    let mut rolling_back = false;
    for r in rows {
        let blob = r.output_blob.as_deref();
        let fine = match (r.kind, r.state.as_str(), r.task_id.as_str()) {
            (RowKind::StateEntry, "Start", "start")
            | (RowKind::StateEntry, "Load", "load")
            | (RowKind::StateEntry, "Ship", "ship")
            | (RowKind::StateEntry, "Done", "") => blob.is_none_or(|b| b == br#"{"resumed":true}"#),
            // A re-entry at a completion row names the row it supersedes.
            (RowKind::StateEntry, "Reserve", "reserve")
            | (RowKind::StateEntry, "Charge", "charge") => blob.is_none_or(|b| {
                serde_json::from_slice::<serde_json::Value>(b)
                    .ok()
                    .filter(|v| v["resumed"] == true)
                    .map(|v| v["supersedes"].as_u64())
                    .is_some_and(|superseded| {
                        superseded.is_none_or(|seq| {
                            rows.get(seq as usize).is_some_and(|c| {
                                c.kind == RowKind::CompensationCompletion && c.state == r.state
                            })
                        })
                    })
            }),
            (RowKind::StepCursor, "Load", "load") => matches!(blob, Some(b"1") | Some(b"2")),
            (RowKind::CompensationCompletion, "Reserve", "reserve") => blob == Some(b"7"),
            (RowKind::CompensationCompletion, "Charge", "charge") => blob == Some(b"8"),
            (RowKind::RollbackStarted, "", "") => !rolling_back && blob.is_some(),
            (RowKind::Compensated, "", "") => {
                rolling_back && matches!(blob, Some(b"0") | Some(b"1"))
            }
            _ => false,
        };
        assert!(fine, "{id}: unexpected row {r:?} in {rows:?}");
        if rolling_back {
            assert_eq!(
                r.kind,
                RowKind::Compensated,
                "{id}: forward row after the rollback began: {rows:?}"
            );
        }
        rolling_back |= r.kind == RowKind::RollbackStarted;
    }
}

fn folded(fx: &[&'static str]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for e in fx {
        if out.last() != Some(e) {
            out.push(e);
        }
    }
    out
}

#[derive(Default, Debug)]
struct Tally {
    completed: usize,
    failed_kept: usize,
    rolled_back: usize,
    dirty_rollback: usize,
    cancelled_with_rows: usize,
    cancelled_never_started: usize,
    cancelled_after_clearing: usize,
}

impl Tally {
    /// Classify one attempt's outcome, given the run's log afterwards.
    fn add(
        &mut self,
        id: &str,
        ctx: &Ctx,
        outcome: &Option<Result<St, CanoError>>,
        rows: &[CheckpointRow],
    ) {
        check_log(id, rows);
        match outcome {
            Some(Ok(state)) => {
                assert_eq!(*state, St::Done, "{id}");
                assert!(
                    rows.is_empty(),
                    "{id}: a completed run kept its log: {rows:?}"
                );
                self.completed += 1;
            }
            Some(Err(e)) => {
                assert_expected_error(e, id);
                if e.category() == "compensation_failed" {
                    assert!(!rows.is_empty(), "{id}: a dirty rollback must keep its log");
                    self.dirty_rollback += 1;
                } else if rows.is_empty() {
                    assert!(
                        ctx.effects().iter().any(|e| e.starts_with("undo:")),
                        "{id}: a failed run lost its log without rolling back"
                    );
                    self.rolled_back += 1;
                } else {
                    self.failed_kept += 1;
                }
            }
            None if !rows.is_empty() => self.cancelled_with_rows += 1,
            None if ctx.effects().is_empty() => self.cancelled_never_started += 1,
            None => self.cancelled_after_clearing += 1,
        }
    }
}

struct Run {
    id: String,
    ctx: Arc<Ctx>,
}

/// Run `f(i)` for `i` in `0..n`, at most [`MAX_IN_FLIGHT`] at a time; results in run order.
async fn for_all<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let fut = f(i);
        handles.push(tokio::spawn(async move {
            let out = fut.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("run task"));
    }
    out
}

/// Totals over all rounds.
#[derive(Default)]
struct Totals {
    runs: usize,
    completed: usize,
    rolled_back: usize,
    never_started: u32,
    resumes: u32,
    repeated: usize,
    interruptions: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_chaotic_runs_on_one_redb_file_all_finish() {
    quiet_injected_panics();
    let runs_wanted: usize = std::env::var("CANO_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_RUNS);
    let seed: u64 = std::env::var("CANO_STRESS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CA70);
    eprintln!("stress: {runs_wanted} runs, seed {seed} (CANO_STRESS_SEED)");
    let started = Instant::now();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stress.redb");
    let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());

    // A soak runs in rounds (memory stays bounded), all on the same file.
    let mut totals = Totals::default();
    let mut round = 0u64;
    while totals.runs < runs_wanted {
        let n = (runs_wanted - totals.runs).min(ROUND);
        round_of_runs(&store, seed.wrapping_add(round), round, n, &mut totals).await;
        totals.runs += n;
        round += 1;
    }
    eprintln!(
        "stress: {} runs in {round} round(s), {:?}: {} completed, {} rolled back, {} never wrote a row (started afresh), {} resumes; {} re-runs over {} interruptions",
        totals.runs,
        started.elapsed(),
        totals.completed,
        totals.rolled_back,
        totals.never_started,
        totals.resumes,
        totals.repeated,
        totals.interruptions,
    );
    assert_eq!(totals.completed + totals.rolled_back, totals.runs);

    // Nothing is left in the file, for any id.
    drop(store);
    {
        use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
        const TABLE: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
            TableDefinition::new("cano_checkpoints");
        let db = redb::ReadOnlyDatabase::open(&path).expect("reopen read-only");
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        assert_eq!(table.len().unwrap(), 0, "rows left in the file");
    }
}

/// One round: `n` runs through the three phases; checks every run's end.
async fn round_of_runs(
    store: &Arc<RedbCheckpointStore>,
    seed: u64,
    round: u64,
    n: usize,
    totals: &mut Totals,
) {
    let started = Instant::now();
    let store = store.clone();
    let mut plan_rng = Rng::new(seed);
    let runs: Arc<Vec<Run>> = Arc::new(
        (0..n)
            .map(|i| {
                let ctx = Ctx::new(plan_rng.next_u64());
                if plan_rng.chance(0.35) {
                    let point = *plan_rng.pick(&FORWARD);
                    let mut plan = vec![(point, plan_rng.chance(0.3))];
                    // A rollback may hit a failing compensation too.
                    if matches!(point, Point::Charge | Point::Ship) && plan_rng.chance(0.4) {
                        let undo = if point == Point::Ship && plan_rng.chance(0.5) {
                            Point::UndoCharge
                        } else {
                            Point::UndoReserve
                        };
                        plan.push((undo, plan_rng.chance(0.3)));
                    }
                    *ctx.failures.lock().unwrap() = plan;
                }
                Run {
                    id: format!("r{round}-run-{i}"),
                    ctx: Arc::new(ctx),
                }
            })
            .collect(),
    );

    // Phase 1: start every run, with chaos.
    let phase = |resume: bool, cancel_probability: f64, only: Option<Arc<Vec<bool>>>| {
        let runs = runs.clone();
        let store = store.clone();
        async move {
            for_all(runs.len(), move |i| {
                let runs = runs.clone();
                let store = store.clone();
                let only = only.clone();
                async move {
                    let run = &runs[i];
                    if only.as_ref().is_some_and(|o| !o[i]) {
                        return None;
                    }
                    let cancel = pick_cancel(&mut run.ctx.rng.lock().unwrap(), cancel_probability);
                    let wf = workflow(&store, &run.ctx, &run.id);
                    Some(attempt(wf, &run.ctx, &run.id, resume, cancel).await)
                }
            })
            .await
        }
    };

    let t1 = Instant::now();
    let first = phase(false, 0.45, None).await;
    let mut tally1 = Tally::default();
    let mut has_rows = Vec::with_capacity(runs.len());
    for (run, outcome) in runs.iter().zip(&first) {
        let rows = store.load_run(&run.id).await.unwrap();
        tally1.add(&run.id, &run.ctx, outcome.as_ref().unwrap(), &rows);
        has_rows.push(!rows.is_empty());
    }
    eprintln!("phase 1 (start, chaos) in {:?}: {tally1:?}", t1.elapsed());

    // Phase 2: resume every run that left rows, cancelling some again.
    let t2 = Instant::now();
    let resumed = has_rows.iter().filter(|h| **h).count();
    let second = phase(true, 0.35, Some(Arc::new(has_rows))).await;
    let mut tally2 = Tally::default();
    for (run, outcome) in runs.iter().zip(&second) {
        if let Some(outcome) = outcome {
            let rows = store.load_run(&run.id).await.unwrap();
            tally2.add(&run.id, &run.ctx, outcome, &rows);
        }
    }
    eprintln!(
        "phase 2 (resume {resumed} runs, chaos) in {:?}: {tally2:?}",
        t2.elapsed()
    );

    // Phase 3: drive every run to its end without chaos.
    let t3 = Instant::now();
    let finishing = {
        let runs = runs.clone();
        let store = store.clone();
        for_all(runs.len(), move |i| {
            let runs = runs.clone();
            let store = store.clone();
            async move {
                let run = &runs[i];
                let (mut resumes, mut fresh) = (0u32, 0u32);
                for _ in 0..6 {
                    let rows = store.load_run(&run.id).await.unwrap();
                    check_log(&run.id, &rows);
                    let resume = !rows.is_empty();
                    if !resume && !run.ctx.effects().is_empty() {
                        return (resumes, fresh);
                    }
                    if resume {
                        resumes += 1;
                    } else {
                        fresh += 1;
                    }
                    let wf = workflow(&store, &run.ctx, &run.id);
                    match attempt(wf, &run.ctx, &run.id, resume, Cancel::Never).await {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => assert_expected_error(&e, &run.id),
                        None => unreachable!(),
                    }
                }
                panic!(
                    "{}: did not finish; effects {:?}",
                    run.id,
                    run.ctx.effects()
                );
            }
        })
        .await
    };
    let resumes: u32 = finishing.iter().map(|(r, _)| r).sum();
    let fresh: u32 = finishing.iter().map(|(_, f)| f).sum();
    eprintln!(
        "phase 3 (finish) in {:?}: {resumes} resumes, {fresh} fresh starts of runs that never wrote a row",
        t3.elapsed()
    );

    // Every run reached the end its plan allows.
    let (mut completed, mut rolled_back, mut repeated, mut interruptions) = (0, 0, 0, 0);
    for run in runs.iter() {
        let fx = run.ctx.effects();
        let fired = run.ctx.fired();
        let cancels = run.ctx.cancels.load(Ordering::SeqCst) as usize;
        let ctx = format!(
            "{}: effects {fx:?}, fired {fired:?}, {cancels} cancels",
            run.id
        );
        assert!(store.load_run(&run.id).await.unwrap().is_empty(), "{ctx}");
        // The forward side effects, then (for a rollback) the compensations.
        let (forward, undo): (&[&str], &[&str]) = if fired.contains(&Point::Ship) {
            rolled_back += 1;
            (&FULL[..6], &["undo:charge", "undo:reserve"])
        } else if fired.contains(&Point::Charge) {
            rolled_back += 1;
            (&FULL[..5], &["undo:reserve"])
        } else {
            completed += 1;
            (&FULL, &[])
        };
        let split = fx
            .iter()
            .position(|e| e.starts_with("undo:"))
            .unwrap_or(fx.len());
        assert_eq!(folded(&fx[..split]), forward, "{ctx}");
        assert!(
            fx[split..].iter().all(|e| e.starts_with("undo:")),
            "nothing may run forward after a compensation: {ctx}"
        );
        if fired
            .iter()
            .any(|p| matches!(p, Point::UndoReserve | Point::UndoCharge))
        {
            // The drain goes on past a failing compensation; the resumed rollback retries
            // it afterwards, so the order may differ — the set may not.
            let mut done: Vec<&str> = folded(&fx[split..]);
            done.sort_unstable();
            done.dedup();
            let mut want = undo.to_vec();
            want.sort_unstable();
            assert_eq!(done, want, "{ctx}");
        } else {
            assert_eq!(folded(&fx[split..]), undo, "{ctx}");
        }
        let repeats = fx.len() - forward.len() - undo.len();
        // Start's failure is retried inside the run: not an interruption.
        let interrupting = fired.iter().filter(|p| **p != Point::Start).count();
        assert!(repeats <= cancels + interrupting, "{ctx}");
        repeated += repeats;
        interruptions += cancels + interrupting;
    }
    eprintln!(
        "round {round} ({n} runs, seed {seed}) in {:?}: {completed} completed, {rolled_back} rolled back; {repeated} re-runs over {interruptions} interruptions",
        started.elapsed()
    );
    assert_eq!(completed + rolled_back, n);
    totals.completed += completed;
    totals.rolled_back += rolled_back;
    totals.never_started += fresh;
    totals.resumes += resumes;
    totals.repeated += repeated;
    totals.interruptions += interruptions;
}
