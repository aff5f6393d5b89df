//! Model-based property test of the engine.
//!
//! proptest generates small random workflows — 2 to 5 states, each a plain task, a
//! router, a saga step, an engine-driven stepped task or a split with a random join
//! strategy — whose tasks follow a script, one entry per call: succeed (naming the next
//! state), fail, panic, return a split result where a single one is expected, sleep first
//! or hang; with random retries, retry delays, attempt timeouts, split timeouts, a
//! workflow timeout, and compensations that succeed, fail, panic or hang. Each workflow is
//! run (`orchestrate`, then up to four `resume_from`s while the run failed and left a
//! log), each run with its own workflow timeout and possibly a crash right after one of
//! its checkpoint appends, on tokio's paused clock, and compared after every run with
//! [`Model`], a direct, sequential interpretation of the engine's documented rules for
//! retries, timeouts, splits, observers, checkpoints, sagas and resume (with our
//! differences from 0.12.0 in COMPATIBILITY.md):
//!
//! * the final state or the exact error;
//! * the exact observer event sequence (and the errors passed to `on_task_failure`);
//! * the checkpoint rows ever appended (in order) and the live log;
//! * the compensations run (task and output, in order);
//! * how many times every task was called, and the cursor every step call received.
//!
//! Timing is exact on the paused clock. Split members run concurrently; the model
//! computes each member's timeline and rejects the (rare) cases where two members act at
//! the same non-zero instant, or a member acts exactly at the split's deadline, because
//! the engine does not define an order for wake-ups at the same instant.
//!
//! Tasks' scripts are finite: a call past the end of a script succeeds at once to the
//! first exit state, and a split's join state always lies ahead of it, so every run ends.
//!
//! The seed is fixed (override with `PROPTEST_RNG_SEED=<n>`; `PROPTEST_CASES=<n>` sets
//! the number of cases).

mod support;

use cano::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use support::{Recorder, TestStore};

// ---------------------------------------------------------------------------------------
// The generated workflow
// ---------------------------------------------------------------------------------------

/// States are `St(0)` … `St(n-1)` (registered), `St(100)` and `St(101)` (exit states)
/// and `St(99)` (known to no one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct St(u8);

const EXIT: u8 = 100;
const LOST: u8 = 99;
const WF: &str = "wf";
/// The workflow timeout, when set. Far above any finite run, far below a hang.
const WORKFLOW_TIMEOUT_MS: u64 = 10_000_000;
/// How long a hanging task or compensation sleeps (odd: never equal to an even timeout).
const HANG_MS: u64 = 100_000_001;
/// A generous bound on a whole case (paused clock) that turns an engine deadlock into a
/// test failure instead of a hang.
const GUARD_MS: u64 = 50_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Where a successful task goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    State(u8),
    Exit(u8),
    Lost,
}

impl Target {
    fn st(self) -> St {
        match self {
            Target::State(i) => St(i),
            Target::Exit(k) => St(EXIT + k),
            Target::Lost => St(LOST),
        }
    }
}

/// What a call does before its outcome.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Now,
    /// Sleep this many (odd) milliseconds.
    Sleep(u64),
    /// Sleep [`HANG_MS`].
    Hang,
}

impl Wait {
    fn ms(self) -> u64 {
        match self {
            Wait::Now => 0,
            Wait::Sleep(d) => d,
            Wait::Hang => HANG_MS,
        }
    }
}

/// How a call ends.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// Succeed, moving to the target (a stepped task: `Done`).
    Go(Target),
    /// `Err(TaskExecution("{name}#{n} failed"))`.
    Fail,
    /// `panic!("{name}#{n} boom")`.
    Panic,
    /// Succeed with `TaskResult::Split(vec![])`.
    Misuse,
    /// Stepped tasks only: `StepOutcome::More(cursor + 1)`.
    More,
}

#[derive(Clone, Copy, Debug)]
struct Act {
    wait: Wait,
    outcome: Outcome,
}

/// What a call past the end of a script does.
const DONE: Act = Act {
    wait: Wait::Now,
    outcome: Outcome::Go(Target::Exit(0)),
};

/// A task's script and config.
#[derive(Clone, Debug)]
struct Spec {
    acts: Vec<Act>,
    retries: usize,
    /// Delay before each retry, ms.
    delay: u64,
    /// Attempt timeout, ms (even).
    timeout: Option<u64>,
}

impl Spec {
    fn act(&self, n: usize) -> Act {
        self.acts.get(n).copied().unwrap_or(DONE)
    }

    fn config(&self) -> TaskConfig {
        let mut config = TaskConfig::minimal();
        if self.retries > 0 {
            config = config.with_fixed_retry(self.retries, ms(self.delay));
        }
        if let Some(t) = self.timeout {
            config = config.with_attempt_timeout(ms(t));
        }
        config
    }
}

/// How a saga step's `compensate` ends (after recording the call).
#[derive(Clone, Copy, Debug)]
enum Undo {
    Ok,
    Fail,
    Panic,
    Hang,
}

#[derive(Clone, Debug)]
enum Kind {
    Plain(Spec),
    Router(Spec),
    Comp(Spec, Undo),
    Stepped(Spec),
    Split {
        members: Vec<Spec>,
        strategy: JoinStrategy,
        timeout: Option<u64>,
        bulkhead: bool,
        join: Target,
    },
}

#[derive(Clone, Debug)]
struct Case {
    kinds: Vec<Kind>,
    observed: bool,
    stored: bool,
    /// `orchestrate`, then the resumes (while a run fails and leaves a log).
    runs: Vec<RunSpec>,
}

#[derive(Clone, Copy, Debug)]
struct RunSpec {
    /// The workflow timeout, ms: a small one kills the run part-way.
    timeout: Option<u64>,
    /// The run dies right after its checkpoint append number `crash` (from 0) is durable:
    /// the append never returns, and the workflow timeout (always set then) drops the run.
    crash: Option<usize>,
}

/// The name of state `i`'s task (split members: `s{i}`, observed as `s{i}[{idx}]`).
fn task_name(i: u8, kind: &Kind) -> String {
    let prefix = match kind {
        Kind::Plain(_) => "p",
        Kind::Router(_) => "r",
        Kind::Comp(..) => "c",
        Kind::Stepped(_) => "t",
        Kind::Split { .. } => "s",
    };
    format!("{prefix}{i}")
}

fn fail_message(name: &str, n: usize) -> String {
    format!("{name}#{n} failed")
}

fn boom_message(name: &str, n: usize) -> String {
    format!("{name}#{n} boom")
}

/// A saga step's output: its state and the call that produced it.
fn output_of(state: u8, call: usize) -> u32 {
    u32::from(state) * 1000 + u32::try_from(call).unwrap()
}

/// Which task: a state's, or a split member's.
type Key = (u8, Option<usize>);

// ---------------------------------------------------------------------------------------
// The real tasks
// ---------------------------------------------------------------------------------------

/// What the real tasks record.
#[derive(Default)]
struct Books {
    calls: Mutex<BTreeMap<Key, Arc<AtomicUsize>>>,
    undone: Mutex<Vec<(String, u32)>>,
    cursors: Mutex<Vec<(String, Option<u32>)>>,
}

impl Books {
    fn core(self: &Arc<Self>, name: String, spec: &Spec, key: Key) -> Core {
        let calls = Arc::clone(self.calls.lock().unwrap().entry(key).or_default());
        Core {
            name,
            spec: spec.clone(),
            calls,
            books: Arc::clone(self),
        }
    }

    fn counts(&self) -> BTreeMap<Key, usize> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(k, c)| (*k, c.load(Ordering::SeqCst)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// A scripted task: each call takes the next act of its script.
struct Core {
    name: String,
    spec: Spec,
    calls: Arc<AtomicUsize>,
    books: Arc<Books>,
}

impl Core {
    async fn perform(&self) -> Result<(usize, Outcome), CanoError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let act = self.spec.act(n);
        if !matches!(act.wait, Wait::Now) {
            tokio::time::sleep(ms(act.wait.ms())).await;
        }
        match act.outcome {
            Outcome::Fail => Err(CanoError::task_execution(fail_message(&self.name, n))),
            Outcome::Panic => panic!("{}", boom_message(&self.name, n)),
            other => Ok((n, other)),
        }
    }
}

fn task_result(outcome: Outcome) -> TaskResult<St> {
    match outcome {
        Outcome::Go(target) => TaskResult::Single(target.st()),
        Outcome::Misuse => TaskResult::Split(Vec::new()),
        // Not generated for these tasks.
        Outcome::Fail | Outcome::Panic | Outcome::More => TaskResult::Single(St(EXIT)),
    }
}

/// A plain task (also every split member).
struct Plain(Core);

#[task]
impl Task<St> for Plain {
    fn config(&self) -> TaskConfig {
        self.0.spec.config()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.0.name.clone())
    }

    async fn run_bare(&self) -> Result<TaskResult<St>, CanoError> {
        let (_, outcome) = self.0.perform().await?;
        Ok(task_result(outcome))
    }
}

struct Route(Core);

#[task::router]
impl RouterTask<St> for Route {
    fn config(&self) -> TaskConfig {
        self.0.spec.config()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.0.name.clone())
    }

    async fn route(&self, _res: &Resources) -> Result<TaskResult<St>, CanoError> {
        let (_, outcome) = self.0.perform().await?;
        Ok(task_result(outcome))
    }
}

struct Comp {
    core: Core,
    state: u8,
    undo: Undo,
}

#[saga::task]
impl CompensatableTask<St> for Comp {
    type Output = u32;

    fn config(&self) -> TaskConfig {
        self.core.spec.config()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.core.name.clone())
    }

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<St>, u32), CanoError> {
        let (n, outcome) = self.core.perform().await?;
        Ok((task_result(outcome), output_of(self.state, n)))
    }

    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        let name = &self.core.name;
        self.core
            .books
            .undone
            .lock()
            .unwrap()
            .push((name.clone(), output));
        match self.undo {
            Undo::Ok => Ok(()),
            Undo::Fail => Err(CanoError::task_execution(format!("{name} undo failed"))),
            Undo::Panic => panic!("{name} undo boom"),
            Undo::Hang => {
                tokio::time::sleep(ms(HANG_MS)).await;
                Ok(())
            }
        }
    }
}

struct Stepper(Core);

#[task::stepped]
impl SteppedTask<St> for Stepper {
    type Cursor = u32;

    fn config(&self) -> TaskConfig {
        self.0.spec.config()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.0.name.clone())
    }

    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, St>, CanoError> {
        self.0
            .books
            .cursors
            .lock()
            .unwrap()
            .push((self.0.name.clone(), cursor));
        let (_, outcome) = self.0.perform().await?;
        Ok(match outcome {
            Outcome::More => StepOutcome::More(cursor.unwrap_or(0) + 1),
            other => StepOutcome::Done(task_result(other)),
        })
    }
}

/// The in-memory store of the tests' support module, made to "crash" after a chosen
/// append: the row is stored, and the append never returns.
struct CrashStore {
    log: Arc<TestStore>,
    crash: Mutex<Option<usize>>,
    appends: AtomicUsize,
}

#[checkpoint_store]
impl CheckpointStore for CrashStore {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        self.log.append(workflow_id, row).await?;
        let n = self.appends.fetch_add(1, Ordering::SeqCst);
        if *self.crash.lock().unwrap() == Some(n) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        self.log.load_run(workflow_id).await
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.log.clear(workflow_id).await
    }
}

fn build(
    case: &Case,
    timeout: Option<u64>,
    books: &Arc<Books>,
    store: Option<&Arc<CrashStore>>,
    recorder: Option<&Arc<Recorder>>,
) -> Workflow<St> {
    let mut wf = Workflow::bare().add_exit_states(vec![St(EXIT), St(EXIT + 1)]);
    for (i, kind) in case.kinds.iter().enumerate() {
        let i = u8::try_from(i).unwrap();
        let name = task_name(i, kind);
        wf = match kind {
            Kind::Plain(spec) => wf.register(St(i), Plain(books.core(name, spec, (i, None)))),
            Kind::Router(spec) => {
                wf.register_router(St(i), Route(books.core(name, spec, (i, None))))
            }
            Kind::Comp(spec, undo) => wf.register_with_compensation(
                St(i),
                Comp {
                    core: books.core(name, spec, (i, None)),
                    state: i,
                    undo: *undo,
                },
            ),
            Kind::Stepped(spec) => {
                wf.register_stepped(St(i), Stepper(books.core(name, spec, (i, None))))
            }
            Kind::Split {
                members,
                strategy,
                timeout,
                bulkhead,
                join,
            } => {
                let tasks = members
                    .iter()
                    .enumerate()
                    .map(|(idx, spec)| Plain(books.core(name.clone(), spec, (i, Some(idx)))))
                    .collect();
                let mut config = JoinConfig::new(strategy.clone(), join.st());
                if let Some(t) = timeout {
                    config = config.with_timeout(ms(*t));
                }
                if *bulkhead {
                    config = config.with_bulkhead(members.len().max(1));
                }
                wf.register_split(St(i), tasks, config)
            }
        };
    }
    if let Some(t) = timeout {
        wf = wf.with_timeout(ms(t));
    }
    if let Some(store) = store {
        wf = wf
            .with_checkpoint_store(Arc::clone(store) as Arc<dyn CheckpointStore>)
            .with_workflow_id(WF);
    }
    if let Some(recorder) = recorder {
        wf = wf.with_observer(Arc::clone(recorder) as Arc<dyn WorkflowObserver>);
    }
    wf
}

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

/// The workflow timeout fired: the run is dropped where it stands.
struct Halt;

/// One retry loop (`run_with_retries` under `catch_unwind`), in milliseconds from its
/// start.
struct Timeline {
    /// When each attempt started; attempt `k` used script entry `first + k`.
    starts: Vec<u64>,
    /// `on_retry` events: (time, failed attempts so far).
    retries: Vec<(u64, u32)>,
    /// When the loop returned.
    end: u64,
    /// The script index and outcome of the successful attempt, or the loop's error.
    result: Result<(usize, Outcome), CanoError>,
}

impl Timeline {
    /// Every non-zero instant at which this loop does something.
    fn activity(&self) -> Vec<u64> {
        let mut times: Vec<u64> = self.starts.clone();
        times.extend(self.retries.iter().map(|(t, _)| *t));
        times.push(self.end);
        times.retain(|t| *t > 0);
        times
    }
}

/// The retry loop: attempts up to `retries + 1`; an attempt that outlives its
/// timeout fails with `Timeout`; a panic ends the loop; exhaustion wraps the last error
/// in `RetryExhausted` unless only one attempt was allowed; `on_retry(k)` then the delay
/// between attempts.
fn timeline(
    spec: &Spec,
    first: usize,
    name: &str,
    panicked: impl Fn(String) -> CanoError,
) -> Timeline {
    let max = spec.retries + 1;
    let mut tl = Timeline {
        starts: Vec::new(),
        retries: Vec::new(),
        end: 0,
        result: Err(CanoError::generic("unset")),
    };
    let mut now = 0;
    let mut failures = 0usize;
    loop {
        let n = first + tl.starts.len();
        tl.starts.push(now);
        let act = spec.act(n);
        let attempt = match spec.timeout {
            Some(limit) if act.wait.ms() > limit => {
                now += limit;
                Err(CanoError::timeout("task attempt exceeded attempt_timeout"))
            }
            _ => {
                now += act.wait.ms();
                match act.outcome {
                    Outcome::Fail => Err(CanoError::task_execution(fail_message(name, n))),
                    Outcome::Panic => {
                        tl.end = now;
                        tl.result = Err(panicked(boom_message(name, n)));
                        return tl;
                    }
                    other => Ok((n, other)),
                }
            }
        };
        match attempt {
            Ok(success) => {
                tl.end = now;
                tl.result = Ok(success);
                return tl;
            }
            Err(e) => {
                failures += 1;
                if failures >= max {
                    tl.end = now;
                    tl.result = Err(if max <= 1 {
                        e
                    } else {
                        CanoError::retry_exhausted(format!(
                            "Task failed after {failures} attempt(s): {e}"
                        ))
                    });
                    return tl;
                }
                tl.retries.push((now, u32::try_from(failures).unwrap()));
                now += spec.delay;
            }
        }
    }
}

/// Per-run bookkeeping (the engine's `Run`).
#[derive(Default)]
struct RunState {
    seq: u64,
    /// Completed saga steps, oldest first: (task name, JSON output).
    stack: Vec<(String, Vec<u8>)>,
    resume_cursor: Option<Vec<u8>>,
    supersedes: Option<u64>,
    /// The next entry is a resumed run's re-entry.
    reentry: bool,
    /// The members of the resumed split state that finished before the resume.
    split_done: Vec<usize>,
}

/// What the model expects after one run.
#[derive(Debug, PartialEq)]
struct Snapshot {
    result: Result<St, CanoError>,
    events: Vec<String>,
    failures: Vec<CanoError>,
    audit: Vec<Row>,
    live: Vec<Row>,
    undone: Vec<(String, u32)>,
    counts: BTreeMap<Key, usize>,
    cursors: Vec<(String, Option<u32>)>,
}

/// A checkpoint row with its blob decoded where it is JSON we compare structurally (the
/// rollback record), so key order does not matter.
#[derive(Debug, PartialEq)]
struct Row {
    sequence: u64,
    state: String,
    task_id: String,
    kind: RowKind,
    blob: Option<Blob>,
}

#[derive(Debug, PartialEq)]
enum Blob {
    Bytes(String),
    Json(Value),
}

fn row(r: &CheckpointRow) -> Row {
    Row {
        sequence: r.sequence,
        state: r.state.clone(),
        task_id: r.task_id.clone(),
        kind: r.kind,
        blob: r.output_blob.as_ref().map(|b| {
            if r.kind == RowKind::RollbackStarted {
                Blob::Json(serde_json::from_slice(b).expect("rollback record is JSON"))
            } else {
                Blob::Bytes(String::from_utf8_lossy(b).into_owned())
            }
        }),
    }
}

struct Model<'a> {
    case: &'a Case,
    counts: BTreeMap<Key, usize>,
    events: Vec<String>,
    failures: Vec<CanoError>,
    audit: Vec<CheckpointRow>,
    live: Vec<CheckpointRow>,
    undone: Vec<(String, u32)>,
    cursors: Vec<(String, Option<u32>)>,
    /// Paused-clock time, ms.
    now: u64,
    /// When the current run's workflow timeout fires.
    deadline: Option<u64>,
    /// The append after which the current run dies, and the appends it made so far.
    crash: Option<usize>,
    appends: usize,
    /// Set when the outcome depends on the order of same-instant wake-ups.
    ambiguous: bool,
}

impl<'a> Model<'a> {
    fn new(case: &'a Case) -> Self {
        Self {
            case,
            counts: BTreeMap::new(),
            events: Vec::new(),
            failures: Vec::new(),
            audit: Vec::new(),
            live: Vec::new(),
            undone: Vec::new(),
            cursors: Vec::new(),
            now: 0,
            deadline: None,
            crash: None,
            appends: 0,
            ambiguous: false,
        }
    }

    fn snapshot(&self, result: Result<St, CanoError>) -> Snapshot {
        Snapshot {
            result,
            events: if self.case.observed {
                self.events.clone()
            } else {
                Vec::new()
            },
            failures: if self.case.observed {
                self.failures.clone()
            } else {
                Vec::new()
            },
            audit: self.audit.iter().map(row).collect(),
            live: self.live.iter().map(row).collect(),
            undone: self.undone.clone(),
            counts: self.counts.clone(),
            cursors: self.cursors.clone(),
        }
    }

    fn event(&mut self, e: String) {
        if self.case.observed {
            self.events.push(e);
        }
    }

    fn kind(&self, s: &St) -> Option<&'a Kind> {
        self.case.kinds.get(usize::from(s.0))
    }

    fn count(&self, key: Key) -> usize {
        self.counts.get(&key).copied().unwrap_or(0)
    }

    fn start_run(&mut self, spec: RunSpec) {
        self.deadline = spec.timeout.map(|t| self.now + t);
        self.crash = spec.crash;
        self.appends = 0;
    }

    /// Let `d` ms pass, unless the workflow timeout fires first.
    fn advance(&mut self, d: u64) -> Result<(), Halt> {
        match self.deadline {
            Some(deadline) if self.now + d >= deadline => {
                self.ambiguous |= self.now + d == deadline;
                self.now = deadline;
                Err(Halt)
            }
            _ => {
                self.now += d;
                Ok(())
            }
        }
    }

    /// Append a row: durable first, then (unless the process dies here) `on_checkpoint`.
    fn append(&mut self, run: &mut RunState, row: CheckpointRow) -> Result<(), Halt> {
        let sequence = row.sequence;
        self.audit.push(row.clone());
        self.live.push(row);
        self.appends += 1;
        if self.crash == Some(self.appends - 1) {
            self.now = self
                .deadline
                .expect("a crashing run has a workflow timeout");
            return Err(Halt);
        }
        self.event(format!("checkpoint:{WF}:{sequence}"));
        run.seq += 1;
        Ok(())
    }

    fn clear(&mut self) {
        self.live.clear();
    }

    /// `orchestrate(St(0))`.
    fn orchestrate(&mut self, spec: RunSpec) -> Result<St, CanoError> {
        self.start_run(spec);
        let mut run = RunState::default();
        self.finish(|m| m.run_loop(St(0), &mut run))
    }

    fn finish(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<Result<St, CanoError>, Halt>,
    ) -> Result<St, CanoError> {
        body(self).unwrap_or_else(|Halt| Err(CanoError::workflow("Workflow timeout exceeded")))
    }

    /// The run loop.
    fn run_loop(
        &mut self,
        mut current: St,
        run: &mut RunState,
    ) -> Result<Result<St, CanoError>, Halt> {
        for _ in 0..100_000 {
            let label = format!("{current:?}");
            let kind = self.kind(&current);
            self.event(format!("enter:{label}"));
            if self.case.stored && !matches!(kind, Some(Kind::Router(_))) {
                let task_id = match kind {
                    Some(k @ (Kind::Plain(_) | Kind::Comp(..) | Kind::Stepped(_))) => {
                        task_name(current.0, k)
                    }
                    _ => String::new(),
                };
                let mut entry = CheckpointRow::new(run.seq, label.clone(), task_id);
                let reentry = std::mem::take(&mut run.reentry);
                if let (Some(cursor), Some(Kind::Stepped(_))) = (&run.resume_cursor, kind) {
                    entry = entry.with_cursor(cursor.clone());
                } else if reentry {
                    // A re-entry says so, with the completion it supersedes.
                    let mut record = serde_json::json!({ "resumed": true });
                    if let Some(superseded) = run.supersedes.take() {
                        record["supersedes"] = superseded.into();
                    }
                    entry.output_blob = Some(serde_json::to_vec(&record).unwrap());
                }
                self.append(run, entry)?;
            }
            if current.0 >= EXIT {
                self.clear();
                return Ok(Ok(current));
            }
            let Some(kind) = kind else {
                let err = CanoError::workflow(format!("No task registered for state: {current:?}"));
                return self.fail(run, err).map(Err);
            };
            let i = current.0;
            let outcome = match kind {
                Kind::Plain(spec) | Kind::Router(spec) => self.single(i, kind, spec)?,
                Kind::Comp(spec, _) => self.compensatable(i, kind, spec, &label, run)?,
                Kind::Stepped(spec) => self.stepped(i, kind, spec, &label, run)?,
                Kind::Split {
                    members,
                    strategy,
                    timeout,
                    join,
                    ..
                } => {
                    let done = std::mem::take(&mut run.split_done);
                    self.split(i, members, strategy, *timeout, *join, run, &label, &done)?
                }
            };
            run.resume_cursor = None;
            run.split_done.clear();
            match outcome {
                Ok(next) => current = next,
                Err(e) => return self.fail(run, e).map(Err),
            }
        }
        panic!("the model ran 100000 states: the generator made an endless workflow");
    }

    /// Play one retry loop of task `key` from now: commit the calls it started and the
    /// `on_retry` events it fired, until it returns or the workflow timeout fires.
    /// `cursor` is recorded for every call of a stepped task.
    fn play(
        &mut self,
        key: Key,
        id: &str,
        tl: &Timeline,
        cursor: Option<(&str, Option<u32>)>,
    ) -> Result<(), Halt> {
        let cut = self.deadline.map(|d| d - self.now);
        let halted = cut.is_some_and(|c| tl.end >= c);
        let within = |t: u64| !halted || cut.is_some_and(|c| t < c);
        if let (true, Some(c)) = (halted, cut) {
            self.ambiguous |= tl.activity().contains(&c);
        }
        let started = tl.starts.iter().filter(|t| within(**t)).count();
        *self.counts.entry(key).or_default() += started;
        if let Some((name, cursor)) = cursor {
            for _ in 0..started {
                self.cursors.push((name.to_string(), cursor));
            }
        }
        for (t, k) in &tl.retries {
            if within(*t) {
                self.event(format!("retry:{id}:{k}"));
            }
        }
        self.advance(tl.end)
    }

    fn end_event(&mut self, id: &str, outcome: &Result<impl Sized, CanoError>) {
        if self.case.observed {
            match outcome {
                Ok(_) => self.events.push(format!("success:{id}")),
                Err(e) => {
                    self.events.push(format!("failure:{id}"));
                    self.failures.push(e.clone());
                }
            }
        }
    }

    /// A plain or router state.
    fn single(&mut self, i: u8, kind: &Kind, spec: &Spec) -> Result<Result<St, CanoError>, Halt> {
        let name = task_name(i, kind);
        self.event(format!("start:{name}"));
        let tl = timeline(spec, self.count((i, None)), &name, |m| {
            CanoError::task_execution(format!("panic: {m}"))
        });
        self.play((i, None), &name, &tl, None)?;
        let outcome = tl.result.and_then(|(_, o)| match o {
            Outcome::Go(t) => Ok(t.st()),
            _ => Err(CanoError::workflow(
                "Single task returned split result - use register_split() for split tasks",
            )),
        });
        self.end_event(&name, &outcome);
        Ok(outcome)
    }

    /// A saga step: it records its output (row and stack).
    fn compensatable(
        &mut self,
        i: u8,
        kind: &Kind,
        spec: &Spec,
        label: &str,
        run: &mut RunState,
    ) -> Result<Result<St, CanoError>, Halt> {
        let name = task_name(i, kind);
        self.event(format!("start:{name}"));
        let tl = timeline(spec, self.count((i, None)), &name, |m| {
            CanoError::task_execution(format!("panic: {m}"))
        });
        self.play((i, None), &name, &tl, None)?;
        let outcome = tl.result.and_then(|(n, o)| match o {
            Outcome::Go(t) => Ok((t.st(), output_of(i, n))),
            _ => Err(CanoError::workflow(
                "Compensatable task returned a split result \u{2014} split states cannot be compensatable",
            )),
        });
        self.end_event(&name, &outcome);
        let (next, output) = match outcome {
            Ok(done) => done,
            Err(e) => return Ok(Err(e)),
        };
        let blob = serde_json::to_vec(&output).unwrap();
        if self.case.stored {
            let completion =
                CheckpointRow::new(run.seq, label, name.clone()).with_output(blob.clone());
            self.append(run, completion)?;
        }
        run.stack.push((name, blob));
        Ok(Ok(next))
    }

    /// The engine-driven step loop, each step under the retry loop,
    /// each new cursor recorded before the next step.
    fn stepped(
        &mut self,
        i: u8,
        kind: &Kind,
        spec: &Spec,
        label: &str,
        run: &mut RunState,
    ) -> Result<Result<St, CanoError>, Halt> {
        let name = task_name(i, kind);
        self.event(format!("start:{name}"));
        let mut cursor: Option<u32> = run
            .resume_cursor
            .take()
            .map(|b| serde_json::from_slice(&b).expect("model cursors are JSON numbers"));
        let outcome = loop {
            let tl = timeline(spec, self.count((i, None)), &name, |m| {
                CanoError::task_execution(format!("panic: {m}"))
            });
            self.play((i, None), &name, &tl, Some((&name, cursor)))?;
            match tl.result {
                Err(e) => break Err(e),
                Ok((_, Outcome::Go(t))) => break Ok(t.st()),
                Ok((_, Outcome::More)) => {
                    let next = cursor.unwrap_or(0) + 1;
                    if self.case.stored {
                        let bytes = serde_json::to_vec(&next).unwrap();
                        let row =
                            CheckpointRow::new(run.seq, label, name.clone()).with_cursor(bytes);
                        self.append(run, row)?;
                    }
                    cursor = Some(next);
                }
                Ok(_) => {
                    break Err(CanoError::workflow(
                        "Stepped task returned split result \u{2014} split is not supported for Stepped states",
                    ));
                }
            }
        };
        self.end_event(&name, &outcome);
        Ok(outcome)
    }

    /// A split: members start together; outcomes are collected in completion order
    /// until all are in, `Any`/`PartialResults` is satisfied, or the split's deadline.
    /// Members that succeed are recorded (`SplitMember` rows, at their ends); members a
    /// resumed split's log names (`done`) are not run and count as succeeded.
    #[allow(clippy::too_many_arguments)]
    fn split(
        &mut self,
        i: u8,
        members: &[Spec],
        strategy: &JoinStrategy,
        timeout: Option<u64>,
        join: Target,
        run: &mut RunState,
        label: &str,
        done: &[usize],
    ) -> Result<Result<St, CanoError>, Halt> {
        let ids: Vec<String> = (0..members.len())
            .map(|idx| format!("s{i}[{idx}]"))
            .collect();
        for id in &ids {
            self.event(format!("start:{id}"));
        }
        let name = format!("s{i}");
        let tls: Vec<Timeline> = members
            .iter()
            .enumerate()
            .map(|(idx, spec)| {
                timeline(spec, self.count((i, Some(idx))), &name, |m| {
                    CanoError::task_execution(format!("panic in split task {idx}: {m}"))
                })
            })
            .collect();
        // Same-instant activity of two members, or of a member and the deadline: the
        // order is up to the runtime.
        for a in 0..tls.len() {
            let mine = tls[a].activity();
            if timeout.is_some_and(|d| mine.contains(&d)) {
                self.ambiguous = true;
            }
            for other in &tls[a + 1..] {
                if other.activity().iter().any(|t| mine.contains(t)) {
                    self.ambiguous = true;
                }
            }
        }
        let stops = |successes: usize| match strategy {
            JoinStrategy::Any => successes >= 1,
            JoinStrategy::PartialResults(min) => successes >= *min,
            _ => false,
        };
        // The log's finished members may decide the split alone: nothing runs.
        let settled = !done.is_empty() && stops(done.len());
        let mut order: Vec<usize> = (0..tls.len())
            .filter(|idx| !settled && !done.contains(idx))
            .collect();
        order.sort_by_key(|&idx| (tls[idx].end, idx));
        let mut collected: Vec<usize> = Vec::new();
        let mut stopped_at = None;
        let mut timed_out = false;
        for idx in order {
            let t = tls[idx].end;
            if let Some(d) = timeout
                && t > d
            {
                timed_out = true;
                stopped_at = Some(d);
                break;
            }
            collected.push(idx);
            let successes = collected.iter().filter(|k| tls[**k].result.is_ok()).count();
            if stops(successes + done.len()) {
                stopped_at = Some(t);
                break;
            }
        }
        let runs = |idx: &usize| !settled && !done.contains(idx);
        let end = stopped_at.unwrap_or_else(|| {
            (0..tls.len())
                .filter(runs)
                .map(|idx| tls[idx].end)
                .max()
                .unwrap_or(0)
        });
        // What the members did before the split ended (or the workflow timed out).
        let halted = self.deadline.is_some_and(|d| self.now + end >= d);
        let cut = if halted {
            self.deadline.unwrap() - self.now
        } else {
            end
        };
        let within = |t: u64| if halted { t < cut } else { t <= cut };
        if halted {
            self.ambiguous |= tls.iter().any(|tl| tl.activity().contains(&cut));
        }
        let mut retries: Vec<(u64, usize, u32)> = Vec::new();
        for (idx, tl) in tls.iter().enumerate().filter(|(idx, _)| runs(idx)) {
            let started = tl.starts.iter().filter(|t| within(**t)).count();
            *self.counts.entry((i, Some(idx))).or_default() += started;
            retries.extend(
                tl.retries
                    .iter()
                    .filter(|(t, _)| within(*t))
                    .map(|(t, k)| (*t, idx, *k)),
            );
        }
        // Each member that succeeds is recorded when it ends, between the retries.
        let recorded: Vec<usize> = collected
            .iter()
            .copied()
            .filter(|idx| tls[*idx].result.is_ok() && within(tls[*idx].end))
            .collect();
        let mut happenings: Vec<(u64, usize, Option<u32>)> = retries
            .into_iter()
            .map(|(t, idx, k)| (t, idx, Some(k)))
            .collect();
        if self.case.stored {
            if self
                .crash
                .is_some_and(|c| c >= self.appends && c < self.appends + recorded.len())
            {
                // A crash in the middle of a split: the other members keep running until
                // the run is dropped, which this model does not follow.
                self.ambiguous = true;
                return Err(Halt);
            }
            happenings.extend(recorded.iter().map(|idx| (tls[*idx].end, *idx, None)));
        }
        happenings.sort_by_key(|(t, idx, k)| (*t, k.is_none(), *idx));
        for (_, idx, k) in happenings {
            match k {
                Some(k) => self.event(format!("retry:{}:{k}", ids[idx])),
                None => {
                    let row = CheckpointRow {
                        output_blob: Some(idx.to_string().into_bytes()),
                        kind: RowKind::SplitMember,
                        ..CheckpointRow::new(run.seq, label, "")
                    };
                    self.append(run, row)?;
                }
            }
        }
        self.advance(end)?;
        if timed_out && *strategy != JoinStrategy::PartialTimeout {
            return Ok(Err(CanoError::workflow("Split task timeout exceeded")));
        }
        let (oks, errs): (Vec<usize>, Vec<usize>) =
            collected.iter().partition(|k| tls[**k].result.is_ok());
        for idx in done.iter().chain(&oks) {
            self.event(format!("success:{}", ids[*idx]));
        }
        let mut errors: Vec<(usize, CanoError)> = Vec::new();
        for idx in &errs {
            let e = tls[*idx].result.clone().unwrap_err();
            if self.case.observed {
                self.events.push(format!("failure:{}", ids[*idx]));
                self.failures.push(e.clone());
            }
            errors.push((*idx, e));
        }
        let successful = oks.len() + done.len();
        let total = members.len();
        let with_errors = |msg: String| {
            if errors.is_empty() {
                return CanoError::workflow(msg);
            }
            let mut parts: Vec<String> = errors
                .iter()
                .take(3)
                .map(|(idx, e)| format!("task {idx}: {e}"))
                .collect();
            if errors.len() > 3 {
                parts.push(format!("... and {} more error(s)", errors.len() - 3));
            }
            CanoError::workflow(format!("{msg}; errors: {}", parts.join("; ")))
        };
        let verdict = match strategy {
            JoinStrategy::PartialResults(min) => {
                if successful >= *min {
                    Ok(())
                } else {
                    Err(with_errors(format!(
                        "Partial results condition not met: {successful} completed successfully, {min} required"
                    )))
                }
            }
            JoinStrategy::PartialTimeout => {
                if collected.is_empty() && done.is_empty() {
                    Err(CanoError::workflow(
                        "PartialTimeout: No tasks completed before timeout",
                    ))
                } else {
                    Ok(())
                }
            }
            other => {
                let needed = match other {
                    JoinStrategy::All => total,
                    JoinStrategy::Any => 1,
                    JoinStrategy::Quorum(n) => *n,
                    JoinStrategy::Percentage(p) => (total as f64 * p).ceil() as usize,
                    _ => unreachable!(),
                };
                if successful >= needed {
                    Ok(())
                } else {
                    Err(with_errors(format!(
                        "Join condition not met: {successful} of {total} tasks completed successfully, strategy: {other:?}"
                    )))
                }
            }
        };
        Ok(verdict.map(|()| join.st()))
    }

    /// Our rollback (COMPATIBILITY.md "interrupted saga rollback"): nothing to undo →
    /// the error as is, log kept; else a `RollbackStarted` row, then each step undone
    /// last-first, a `Compensated` row after each success; clean → log cleared and the
    /// original error, dirty → `CompensationFailed`, log kept.
    fn fail(&mut self, run: &mut RunState, err: CanoError) -> Result<CanoError, Halt> {
        if run.stack.is_empty() {
            return Ok(err);
        }
        let steps = std::mem::take(&mut run.stack);
        if self.case.stored {
            let record = json!({
                "category": err.category(),
                "message": err.message(),
                "steps": steps
                    .iter()
                    .map(|(task_id, output)| json!({ "task_id": task_id, "output": output }))
                    .collect::<Vec<_>>(),
            });
            let mut started = CheckpointRow::new(run.seq, "", "");
            started.output_blob = Some(serde_json::to_vec(&record).unwrap());
            started.kind = RowKind::RollbackStarted;
            self.append(run, started)?;
        }
        self.undo(run, steps.into_iter().enumerate().collect(), vec![err])
    }

    fn undo(
        &mut self,
        run: &mut RunState,
        mut remaining: Vec<(usize, (String, Vec<u8>))>,
        mut errors: Vec<CanoError>,
    ) -> Result<CanoError, Halt> {
        while let Some((index, (task_id, output))) = remaining.pop() {
            match self.compensate(&task_id, &output)? {
                Ok(()) => {
                    if self.case.stored {
                        let mut done = CheckpointRow::new(run.seq, "", "");
                        done.output_blob = Some(index.to_string().into_bytes());
                        done.kind = RowKind::Compensated;
                        self.append(run, done)?;
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.len() == 1 {
            self.clear();
            return Ok(errors.remove(0));
        }
        Ok(CanoError::compensation_failed(errors))
    }

    /// A compensation: one `compensate` call, no retries, bounded by the step's
    /// attempt timeout, panics caught.
    fn compensate(&mut self, task_id: &str, blob: &[u8]) -> Result<Result<(), CanoError>, Halt> {
        let found = self
            .case
            .kinds
            .iter()
            .enumerate()
            .find_map(|(i, k)| match k {
                Kind::Comp(spec, undo) if task_name(u8::try_from(i).unwrap(), k) == task_id => {
                    Some((spec.timeout, *undo))
                }
                _ => None,
            });
        let Some((limit, undo)) = found else {
            return Ok(Err(CanoError::workflow(format!(
                "no compensator registered for task {task_id:?} \u{2014} cannot roll it back"
            ))));
        };
        let output: u32 = serde_json::from_slice(blob).expect("model outputs are JSON numbers");
        self.undone.push((task_id.to_string(), output));
        Ok(match undo {
            Undo::Ok => Ok(()),
            Undo::Fail => Err(CanoError::task_execution(format!("{task_id} undo failed"))),
            Undo::Panic => Err(CanoError::task_execution(format!(
                "compensate for {task_id:?} panicked: {task_id} undo boom"
            ))),
            Undo::Hang => match limit {
                Some(t) => {
                    self.advance(t)?;
                    Err(CanoError::timeout(format!(
                        "compensate for {task_id:?} exceeded attempt_timeout {:?}",
                        ms(t)
                    )))
                }
                None => {
                    self.advance(HANG_MS)?;
                    Ok(())
                }
            },
        })
    }

    /// `resume_from(WF)` over the live log, with our differences from 0.12.0.
    fn resume(&mut self, spec: RunSpec) -> Result<St, CanoError> {
        self.start_run(spec);
        let rows = self.live.clone();
        let Some(last) = rows.iter().max_by_key(|r| r.sequence) else {
            return Err(CanoError::checkpoint_store(format!(
                "no checkpoint rows for workflow id {WF:?}"
            )));
        };
        let mut run = RunState {
            seq: last.sequence + 1,
            ..RunState::default()
        };
        // A rollback in the log: finish it.
        if let Some(started) = rows
            .iter()
            .filter(|r| r.kind == RowKind::RollbackStarted)
            .max_by_key(|r| r.sequence)
        {
            let record: Value =
                serde_json::from_slice(started.output_blob.as_ref().unwrap()).unwrap();
            let original = from_category(
                record["category"].as_str().unwrap(),
                record["message"].as_str().unwrap(),
            );
            let done: Vec<usize> = rows
                .iter()
                .filter(|r| r.kind == RowKind::Compensated && r.sequence > started.sequence)
                .map(|r| {
                    String::from_utf8_lossy(r.output_blob.as_ref().unwrap())
                        .parse()
                        .unwrap()
                })
                .collect();
            let remaining = record["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let task_id = s["task_id"].as_str().unwrap().to_string();
                    let output: Vec<u8> = serde_json::from_value(s["output"].clone()).unwrap();
                    (task_id, output)
                })
                .enumerate()
                .filter(|(index, _)| !done.contains(index))
                .collect();
            self.event(format!("resume:{WF}:{}", last.sequence));
            return self.finish(|m| m.undo(&mut run, remaining, vec![original]).map(Err));
        }
        let n = u8::try_from(self.case.kinds.len()).unwrap();
        let Some(state) = (0..n)
            .chain([EXIT, EXIT + 1])
            .map(St)
            .find(|s| format!("{s:?}") == last.state)
        else {
            return Err(CanoError::workflow(format!(
                "checkpoint state {:?} is not a registered or exit state of this workflow",
                last.state
            )));
        };
        // Completion rows that a re-run after an earlier resume replaced.
        let superseded: Vec<u64> = rows
            .iter()
            .filter(|r| r.kind == RowKind::StateEntry)
            .filter_map(|r| {
                let blob = r.output_blob.as_deref()?;
                serde_json::from_slice::<serde_json::Value>(blob).ok()?["supersedes"].as_u64()
            })
            .collect();
        run.stack = rows
            .iter()
            .filter(|r| {
                r.kind == RowKind::CompensationCompletion
                    && r.sequence != last.sequence
                    && !superseded.contains(&r.sequence)
            })
            .map(|r| (r.task_id.clone(), r.output_blob.clone().unwrap()))
            .collect();
        if last.kind == RowKind::StepCursor {
            run.resume_cursor = last.output_blob.clone();
        }
        if last.kind == RowKind::CompensationCompletion {
            run.supersedes = Some(last.sequence);
        }
        run.reentry = true;
        // The members of the resumed split's visit that finished.
        let mut newest_first: Vec<&CheckpointRow> = rows.iter().collect();
        newest_first.sort_by_key(|r| std::cmp::Reverse(r.sequence));
        for r in newest_first {
            let reentry = r.kind == RowKind::StateEntry
                && r.output_blob
                    .as_deref()
                    .is_some_and(|b| b.starts_with(br#"{"resumed":true"#));
            match r.kind {
                RowKind::SplitMember if r.state == last.state => run.split_done.push(
                    String::from_utf8_lossy(r.output_blob.as_deref().unwrap_or_default())
                        .parse()
                        .unwrap(),
                ),
                _ if reentry && r.state == last.state => {}
                _ => break,
            }
        }
        run.split_done.sort_unstable();
        run.split_done.dedup();
        self.event(format!("resume:{WF}:{}", last.sequence));
        self.finish(|m| m.run_loop(state, &mut run))
    }
}

fn from_category(category: &str, message: &str) -> CanoError {
    let m = message.to_string();
    match category {
        "task_execution" => CanoError::task_execution(m),
        "workflow" => CanoError::workflow(m),
        "retry_exhausted" => CanoError::retry_exhausted(m),
        "timeout" => CanoError::timeout(m),
        "checkpoint_store" => CanoError::checkpoint_store(m),
        "configuration" => CanoError::configuration(m),
        "circuit_open" => CanoError::circuit_open(m),
        "store" => CanoError::store(m),
        _ => CanoError::generic(m),
    }
}

/// The model's snapshots after `orchestrate` and each resume, or `None` when the case
/// depends on the order of same-instant wake-ups.
fn expected(case: &Case) -> Option<Vec<Snapshot>> {
    let mut model = Model::new(case);
    let mut snapshots = Vec::new();
    let result = model.orchestrate(case.runs[0]);
    let mut failed = result.is_err();
    snapshots.push(model.snapshot(result));
    for spec in &case.runs[1..] {
        if !(case.stored && failed && !model.live.is_empty()) {
            break;
        }
        let result = model.resume(*spec);
        failed = result.is_err();
        snapshots.push(model.snapshot(result));
    }
    (!model.ambiguous).then_some(snapshots)
}

// ---------------------------------------------------------------------------------------
// The engine, observed
// ---------------------------------------------------------------------------------------

fn actual(case: &Case, runs: usize) -> Vec<Snapshot> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let books = Arc::new(Books::default());
        let log = TestStore::new();
        let store = case.stored.then(|| {
            Arc::new(CrashStore {
                log: Arc::clone(&log),
                crash: Mutex::new(None),
                appends: AtomicUsize::new(0),
            })
        });
        let recorder = case.observed.then(Recorder::new);
        let mut snapshots = Vec::new();
        for round in 0..runs {
            // A new process: a new workflow (same tasks, store and observer).
            let spec = case.runs[round];
            if let Some(store) = &store {
                *store.crash.lock().unwrap() = spec.crash;
                store.appends.store(0, Ordering::SeqCst);
            }
            let wf = build(
                case,
                spec.timeout,
                &books,
                store.as_ref(),
                recorder.as_ref(),
            );
            let run = async {
                if round == 0 {
                    wf.orchestrate(St(0)).await
                } else {
                    wf.resume_from(WF).await
                }
            };
            let result = tokio::time::timeout(ms(GUARD_MS), run)
                .await
                .unwrap_or_else(|_| panic!("run {round} never ended (engine hang)"));
            snapshots.push(Snapshot {
                result,
                events: recorder.as_ref().map(|r| r.events()).unwrap_or_default(),
                failures: recorder.as_ref().map(|r| r.failures()).unwrap_or_default(),
                audit: log.audit_rows(WF).iter().map(row).collect(),
                live: log.rows(WF).iter().map(row).collect(),
                undone: books.undone.lock().unwrap().clone(),
                counts: books.counts(),
                cursors: books.cursors.lock().unwrap().clone(),
            });
        }
        snapshots
    })
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    quiet_panics();
    let Some(expected) = expected(case) else {
        return Err(TestCaseError::reject("same-instant wake-ups"));
    };
    let actual = actual(case, expected.len());
    for (round, (want, got)) in expected.iter().zip(&actual).enumerate() {
        let run = if round == 0 {
            "orchestrate".to_string()
        } else {
            format!("resume #{round}")
        };
        prop_assert_eq!(&got.result, &want.result, "{}: result", run);
        prop_assert_eq!(&got.events, &want.events, "{}: observer events", run);
        prop_assert_eq!(
            &got.failures,
            &want.failures,
            "{}: on_task_failure errors",
            run
        );
        prop_assert_eq!(&got.audit, &want.audit, "{}: rows appended", run);
        prop_assert_eq!(&got.live, &want.live, "{}: live log", run);
        prop_assert_eq!(&got.undone, &want.undone, "{}: compensations", run);
        prop_assert_eq!(&got.counts, &want.counts, "{}: task calls", run);
        prop_assert_eq!(&got.cursors, &want.cursors, "{}: step cursors", run);
    }
    Ok(())
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
// Generators
// ---------------------------------------------------------------------------------------

fn target(n: u8) -> impl Strategy<Value = Target> {
    prop_oneof![
        8 => (0..n).prop_map(Target::State),
        3 => (0..2u8).prop_map(Target::Exit),
        1 => Just(Target::Lost),
    ]
}

fn wait() -> impl Strategy<Value = Wait> {
    prop_oneof![
        5 => Just(Wait::Now),
        4 => (0..20u64).prop_map(|k| Wait::Sleep(2 * k + 1)),
        1 => Just(Wait::Hang),
    ]
}

fn outcome(n: u8, stepped: bool) -> BoxedStrategy<Outcome> {
    let common = prop_oneof![
        6 => target(n).prop_map(Outcome::Go),
        4 => Just(Outcome::Fail),
        1 => Just(Outcome::Panic),
        1 => Just(Outcome::Misuse),
    ];
    if stepped {
        prop_oneof![3 => common, 2 => Just(Outcome::More)].boxed()
    } else {
        common.boxed()
    }
}

fn spec(n: u8, stepped: bool) -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(
            (wait(), outcome(n, stepped)).prop_map(|(wait, outcome)| Act { wait, outcome }),
            0..5,
        ),
        0..3usize,
        prop_oneof![3 => Just(0u64), 1 => (0..10u64).prop_map(|k| 2 * k + 1)],
        prop_oneof![2 => Just(None), 1 => (1..16u64).prop_map(|k| Some(2 * k))],
    )
        .prop_map(|(acts, retries, delay, timeout)| Spec {
            acts,
            retries,
            delay,
            timeout,
        })
}

fn strategy() -> impl Strategy<Value = JoinStrategy> {
    prop_oneof![
        Just(JoinStrategy::All),
        Just(JoinStrategy::Any),
        (0..5usize).prop_map(JoinStrategy::Quorum),
        prop::sample::select(vec![0.25, 0.5, 0.75, 1.0]).prop_map(JoinStrategy::Percentage),
        (0..5usize).prop_map(JoinStrategy::PartialResults),
        Just(JoinStrategy::PartialTimeout),
    ]
}

fn split(n: u8, i: u8) -> impl Strategy<Value = Kind> {
    let join = if i + 1 < n {
        prop_oneof![3 => (i + 1..n).prop_map(Target::State), 1 => (0..2u8).prop_map(Target::Exit)]
            .boxed()
    } else {
        (0..2u8).prop_map(Target::Exit).boxed()
    };
    (
        prop::collection::vec(spec(n, false), 0..5),
        strategy(),
        prop::option::of(1..80u64),
        any::<bool>(),
        join,
    )
        .prop_map(|(members, strategy, timeout, bulkhead, join)| {
            let timeout = match (&strategy, timeout) {
                (JoinStrategy::PartialTimeout, None) => Some(40),
                (_, t) => t,
            };
            Kind::Split {
                members,
                strategy,
                timeout,
                bulkhead,
                join,
            }
        })
}

fn undo() -> impl Strategy<Value = Undo> {
    prop_oneof![
        6 => Just(Undo::Ok),
        2 => Just(Undo::Fail),
        1 => Just(Undo::Panic),
        1 => Just(Undo::Hang),
    ]
}

fn kind(n: u8, i: u8) -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => spec(n, false).prop_map(Kind::Plain),
        2 => spec(n, false).prop_map(Kind::Router),
        3 => (spec(n, false), undo()).prop_map(|(s, u)| Kind::Comp(s, u)),
        2 => spec(n, true).prop_map(Kind::Stepped),
        2 => split(n, i),
    ]
}

/// A run: its workflow timeout (none, one no finite run reaches, or one that kills the
/// run part-way), and maybe a crash after an append.
fn run_spec() -> impl Strategy<Value = RunSpec> {
    (
        prop_oneof![
            2 => Just(None),
            1 => Just(Some(WORKFLOW_TIMEOUT_MS)),
            2 => (1..200u64).prop_map(Some),
        ],
        prop::option::weighted(0.5, 0..8usize),
    )
        .prop_map(|(timeout, crash)| RunSpec {
            timeout: if crash.is_some() {
                timeout.or(Some(WORKFLOW_TIMEOUT_MS))
            } else {
                timeout
            },
            crash,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (2..6u8).prop_flat_map(|n| {
        (
            (0..n).map(|i| kind(n, i)).collect::<Vec<_>>(),
            any::<bool>(),
            prop::bool::weighted(0.85),
            prop::collection::vec(run_spec(), 1..6),
        )
            .prop_map(|(kinds, observed, stored, runs)| Case {
                kinds,
                observed,
                stored,
                runs,
            })
    })
}

fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            4000
        },
        rng_seed: match base.rng_seed {
            RngSeed::Random => RngSeed::Fixed(0x00ca_0009),
            fixed => fixed,
        },
        max_global_rejects: 100_000,
        failure_persistence: None,
        ..base
    }
}

proptest! {
    #![proptest_config(config())]

    /// The engine agrees with the model on every generated workflow.
    #[test]
    fn engine_matches_model(case in case()) {
        check(&case)?;
    }
}

/// What the generator covers: how runs end and where resumes start. Diagnostic only:
/// `cargo test -p cano --test prop_engine -- --ignored --nocapture`.
#[test]
#[ignore = "diagnostic: prints what the generated cases cover"]
fn generator_coverage() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::new(config());
    let (mut ambiguous, mut rows, mut events, mut undone) = (0, 0, 0, 0);
    let mut runs: BTreeMap<usize, usize> = BTreeMap::new();
    let mut endings: BTreeMap<String, usize> = BTreeMap::new();
    let mut resumed_at: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..config().cases {
        let case = case().new_tree(&mut runner).unwrap().current();
        let Some(snapshots) = expected(&case) else {
            ambiguous += 1;
            continue;
        };
        *runs.entry(snapshots.len()).or_default() += 1;
        for s in &snapshots {
            let ending = match &s.result {
                Ok(st) => format!("{st:?}"),
                Err(e) => e.category().to_string(),
            };
            *endings.entry(ending).or_default() += 1;
        }
        for pair in snapshots.windows(2) {
            if let Some(last) = pair[0].live.last() {
                *resumed_at.entry(format!("{:?}", last.kind)).or_default() += 1;
            }
        }
        let last = snapshots.last().unwrap();
        rows += last.audit.len();
        events += last.events.len();
        undone += last.undone.len();
    }
    eprintln!("cases rejected as ambiguous: {ambiguous}");
    eprintln!("runs per case: {runs:?}");
    eprintln!("run endings: {endings:?}");
    eprintln!("resumes by the kind of the log's last row: {resumed_at:?}");
    eprintln!("rows appended: {rows}, observer events: {events}, compensations: {undone}");
}
