//! # Parked runs: 100,000 sleeping or waiting runs in one process
//!
//! Run with:
//! `cargo run -p cano --example parked_runs` (a quick check), or for the figures:
//! `cargo run --release -p cano --example parked_runs -- --runs 100000`
//! (options: `--scenario timer|timer+store|signal|sleep-floor|all` (default `all`),
//! `--runs N` (100000), `--warmup W` (1000), `--park-secs S` (timers' deadline, counted
//! from the first spawn; default 2 s + 30 µs per run), `--in-flight K` (see below),
//! `--redb-cache-mib M` (redb's page cache for the redb scenarios; redb's default, 1 GiB,
//! if not given)).
//!
//! The requirement it checks: a sleeping or waiting run costs no thread and at most
//! 1 KiB of memory. Each scenario `tokio::spawn`s N runs of a one-state workflow
//! (`Wait → Done`) on the multi-thread runtime, all at once, and waits until every run
//! is parked in `Wait`:
//!
//! * `timer`: `Wait` is a `#[task::timer]` whose deadline is common to all runs, late
//!   enough that all N are parked before it; no checkpoint store. All runs share one
//!   `Arc<Workflow>`.
//! * `timer+store`: the same with a [`MemoryCheckpointStore`]. A run's log needs an id of
//!   its own: each run starts with `Workflow::orchestrate_with_id` on the one shared
//!   workflow.
//! * `signal`: `Wait` is a `#[task::signal]` state; the store keeps signals
//!   (`with_signal_store`), one id per run as above. The benchmark wakes
//!   the runs by sending each one its signal, in run order, from the main thread.
//! * `timer+redb` and `signal+redb` (only when named, with `--features recovery`): the
//!   `timer+store` and `signal` scenarios on a [`RedbCheckpointStore`](cano::RedbCheckpointStore)
//!   in a temporary directory: the runs' logs are on disk, not in the process's memory.
//! * `sleep-floor` (reference, no cano): each task awaits `tokio::time::sleep_until` of the
//!   common deadline: what a parked tokio task with a timer costs at least.
//!
//! It reads `VmRSS` and `Threads` from `/proc/self/status` (Linux only; elsewhere it says
//! so and exits) before the runs are spawned and once all of them are parked, and
//! reports the RSS per parked run (the difference over N), the process's OS threads while
//! they are parked (the runtime's workers and the main thread: parked runs hold none),
//! and the time from the wake-up (the timers' deadline, or the first signal sent) until
//! the last run has finished. Before that, `--warmup` runs go through the same scenario
//! (so that one-time allocations are in the "before" figure), and afterwards the program
//! checks every run's result and that every checkpoint log was cleared; a failed check
//! prints `BENCH_FAIL` and exits non-zero.
//!
//! `--in-flight K` starts a run of a store scenario only while fewer than K started runs
//! have not parked yet (the engine's `on_wait`: the wait is in the log), as a service
//! admitting runs as they come would; by default all N start in the same instant. The
//! store scenarios write a row per run while parking, and a burst of N writes in flight
//! at once holds their buffers together: the process's heap keeps that high-water mark
//! (the allocator returns little of it), so RSS then measures the burst as much as the
//! parked runs. With the redb store: `-- --scenario timer+redb --in-flight 1000`.
//!
//! `--scenario all` (and a single scenario as well) runs each scenario in a fresh child
//! process of this program, so that each starts from a clean heap.
//!
//! Output: the peer format of `shared/bench/peers` (its `README.md`, "Timing and
//! metrics"), which fits: the wake-up is a backlog drain of N runs released at once, like
//! the peers' N runs submitted at once. Per scenario one
//! `BENCH peer=cano scenario=parked_<name> runs=N concurrency=N runs_per_s=.. p50_ms=..
//! p99_ms=.. wall_s=..` line, where `wall_s` is the wake-up time, `runs_per_s` is N over
//! it, and p50/p99 are nearest-rank percentiles of (run finished − wake-up); and one
//! `BENCH_DETAIL` line with the memory and thread figures (`rss_per_run_bytes`,
//! `threads_parked`, …). A `BENCH_ENV` line comes first, and an aligned table of the
//! main figures at the end. `shared/bench/peers/summary.py` reads the `BENCH` lines.

use cano::prelude::*;
use cano::signal::SignalStore;
use cano::signal::{self, Signal};
use cano::{ListRuns, MemoryCheckpointStore};
use std::borrow::Cow;
use std::future::Future;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: parked_runs [--runs N] \
    [--scenario timer|timer+store|signal|sleep-floor|all|timer+redb|signal+redb] \
    [--warmup W] [--park-secs S] [--in-flight K] [--redb-cache-mib M]";

/// The scenarios, in the order `all` runs them.
const SCENARIOS: [&str; 4] = ["timer", "timer+store", "signal", "sleep-floor"];

/// Scenarios run only when named (feature `recovery`): the store scenarios on a
/// `RedbCheckpointStore`, whose rows are on disk rather than in the process's memory.
const REDB_SCENARIOS: [&str; 2] = ["timer+redb", "signal+redb"];

/// A store the store scenarios can use.
trait ParkStore: ListRuns + SignalStore {}
impl<S: ListRuns + SignalStore> ParkStore for S {}

/// How long a parked run is given, after the last one parked, to finish the poll that
/// parked it before RSS is read.
const SETTLE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Park {
    Wait,
    Done,
}

// ---------------------------------------------------------------------------------------
// The tasks

/// A timer that waits until `until`, counting the runs that asked it (they are about to
/// park).
struct Sleep {
    until: Instant,
    asked: Arc<AtomicUsize>,
}

#[task::timer(state = Park)]
impl Sleep {
    fn name(&self) -> Cow<'static, str> {
        "sleep".into()
    }

    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Ok(TimerOutcome::Until(self.until))
    }

    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Park>, CanoError> {
        Ok(TaskResult::Single(Park::Done))
    }
}

/// Waits for the signal `go`, whose payload is the run's number.
struct AwaitGo;

#[task::signal(state = Park)]
impl AwaitGo {
    type Payload = u64;

    fn name(&self) -> Cow<'static, str> {
        "await_go".into()
    }

    fn signal(&self) -> Cow<'static, str> {
        "go".into()
    }

    async fn on_signal(&self, _res: &Resources, _run: u64) -> Result<TaskResult<Park>, CanoError> {
        Ok(TaskResult::Single(Park::Done))
    }
}

/// Runs that have parked (the engine's `on_wait`: the wait is recorded), for `--in-flight`.
static PARKED: AtomicUsize = AtomicUsize::new(0);

/// Counts [`PARKED`].
struct CountParked;

impl WorkflowObserver for CountParked {
    fn on_wait(&self, _workflow_id: &str, _deadline_ms: Option<u64>, _signal: Option<&str>) {
        PARKED.fetch_add(1, Ordering::Relaxed);
    }
}

/// `wf` with [`CountParked`] if `phase` admits runs `--in-flight` (only then: an observed
/// run keeps its task's name, for the observer, while it waits).
fn counted(wf: Workflow<Park>, phase: &Phase) -> Workflow<Park> {
    match phase.in_flight {
        Some(_) => wf.with_observer(Arc::new(CountParked)),
        None => wf,
    }
}

fn timer_workflow(until: Instant, asked: &Arc<AtomicUsize>) -> Workflow<Park> {
    Workflow::bare()
        .register(
            Park::Wait,
            Sleep {
                until,
                asked: Arc::clone(asked),
            },
        )
        .add_exit_state(Park::Done)
}

fn signal_workflow<S: ParkStore>(store: &Arc<S>) -> Workflow<Park> {
    Workflow::bare()
        .register_signal(Park::Wait, AwaitGo)
        .add_exit_state(Park::Done)
        .with_signal_store(Arc::clone(store))
}

fn run_id(i: usize) -> String {
    format!("run-{i}")
}

// ---------------------------------------------------------------------------------------
// Finished runs
//
// Kept in a static so that a spawned run's future carries nothing but the run itself:
// its size is part of what is measured.

struct Finished {
    base: Instant,
    /// When each run finished (ns since `base`), in the order they finished.
    at: Box<[AtomicU64]>,
    count: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

static FINISHED: OnceLock<Finished> = OnceLock::new();

fn finished() -> &'static Finished {
    FINISHED
        .get()
        .expect("FINISHED is set before any run is spawned")
}

/// Record the end of a run.
fn finish(result: Result<Park, CanoError>) {
    let f = finished();
    let ns = u64::try_from(f.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if result != Ok(Park::Done) {
        f.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = f.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| format!("{result:?}"));
    }
    let slot = f.count.fetch_add(1, Ordering::Relaxed);
    if let Some(at) = f.at.get(slot) {
        at.store(ns, Ordering::Relaxed);
    }
}

impl Finished {
    fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        *self.first_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Wait until `n` runs have finished, or fail after `limit`.
    async fn all(&self, n: usize, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        while self.count() < n {
            if started.elapsed() > limit {
                return Err(format!(
                    "only {} of {n} runs finished within {limit:?} of the wake-up",
                    self.count()
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        match self.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            failed => Err(format!(
                "{failed} of {n} runs did not end in Done; the first: {}",
                self.first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_deref()
                    .unwrap_or("?")
            )),
        }
    }

    /// Each of the first `n` runs' time from `wake` to its end, sorted (runs that ended
    /// before `wake`, by less than a timer tick, count as 0).
    fn latencies(&self, n: usize, wake: Instant) -> Vec<Duration> {
        let wake_ns = wake.saturating_duration_since(self.base).as_nanos();
        let mut all: Vec<Duration> = self.at[..n]
            .iter()
            .map(|at| {
                let ns = u128::from(at.load(Ordering::Relaxed)).saturating_sub(wake_ns);
                Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
            })
            .collect();
        all.sort_unstable();
        all
    }
}

/// Nearest-rank percentile `p` (0..=1) of `sorted`, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // The rank is at most the (small) length of the list: no precision is lost.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    #[allow(clippy::cast_sign_loss)]
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------
// /proc

/// A field of `/proc/self/status` (`VmRSS` in kB, `Threads`), as a number.
fn status_field(name: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("/proc/self/status has no {name} line"))
}

/// The process's resident set and OS threads now.
#[derive(Clone, Copy)]
struct Snapshot {
    rss_kb: u64,
    threads: u64,
}

fn snapshot() -> Result<Snapshot, String> {
    Ok(Snapshot {
        rss_kb: status_field("VmRSS")?,
        threads: status_field("Threads")?,
    })
}

// ---------------------------------------------------------------------------------------
// One scenario

/// What one measured phase of a scenario found.
struct Measured {
    runs: usize,
    before: Snapshot,
    parked: Snapshot,
    after: Snapshot,
    /// From the first spawn until every run was parked.
    park: Duration,
    /// From the wake-up until the last run finished.
    wake: Duration,
    /// Sorted per-run times from the wake-up to the run's end.
    latencies: Vec<Duration>,
    /// Signal scenario: how long sending all signals took.
    send: Option<Duration>,
    /// `size_of_val` of one spawned run's future.
    future_bytes: usize,
}

/// The knobs of one phase (warm-up or measured).
struct Phase {
    runs: usize,
    /// The timers' deadline, counted from the first spawn.
    park_budget: Duration,
    /// A warm-up: nothing is measured, and timers may fire before every run has parked.
    warmup: bool,
    /// `--in-flight`: at most this many runs started and not yet parked.
    in_flight: Option<usize>,
    /// `--redb-cache-mib`: redb's page cache (redb's default if `None`).
    redb_cache_mib: Option<usize>,
}

impl Phase {
    /// The timers' deadline for runs spawned from now on.
    fn deadline(&self) -> Instant {
        Instant::now() + self.park_budget
    }
}

/// Wait until `asked` reaches `n`: every run has asked its timer how long to wait, and
/// parks in the same poll. Fails if `deadline` comes first.
async fn all_asked(asked: &AtomicUsize, n: usize, deadline: Option<Instant>) -> Result<(), String> {
    while asked.load(Ordering::Relaxed) < n {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(format!(
                "only {} of {n} runs were parked when the deadline came: \
                 give them longer with --park-secs",
                asked.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Let the polls that parked the last runs end, and check that RSS can still be read
/// before `deadline`.
async fn settle(deadline: Option<Instant>) -> Result<(), String> {
    tokio::time::sleep(SETTLE).await;
    if let Some(d) = deadline
        && Instant::now() + Duration::from_millis(50) >= d
    {
        return Err(
            "the runs parked too close to the deadline to read RSS before it: \
                    give them longer with --park-secs"
                .into(),
        );
    }
    Ok(())
}

/// Check that every run `0..n` has a log whose last row is of `kind` (it waits).
async fn check_waiting<S: ParkStore>(
    store: &S,
    n: usize,
    kind: RowKind,
    limit: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    for i in 0..n {
        let id = run_id(i);
        loop {
            let rows = store.load_run(&id).await.map_err(|e| e.to_string())?;
            if rows.last().map(|r| r.kind) == Some(kind) {
                break;
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "run {id:?} is not waiting: its log is {:?}",
                    rows.iter().map(|r| r.kind).collect::<Vec<_>>()
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

/// Check that the store holds no log any more (every run cleared its own).
async fn check_cleared<S: ParkStore>(store: &S) -> Result<(), String> {
    let left = store.list_runs().await.map_err(|e| e.to_string())?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} checkpoint logs were not cleared, e.g. {:?}",
            left.len(),
            left[0]
        ))
    }
}

/// The scenarios whose runs wait for a common deadline.
enum Timed {
    /// `timer`: one shared workflow, no store.
    Timer,
    /// `timer+store`: a memory checkpoint store, one workflow clone and id per run.
    TimerStore,
    /// `sleep-floor`: plain tokio tasks asleep, no cano.
    SleepFloor,
}

/// Spawn `n` runs of `run(i)`; `size_of_val` of the first one's future.
async fn spawn_runs<F: Future<Output = ()> + Send + 'static>(
    phase: &Phase,
    run: impl Fn(usize) -> F,
) -> usize {
    let mut future_bytes = 0;
    let parked_before = PARKED.load(Ordering::Relaxed);
    // A run that ended without waiting (its deadline had passed) is out of flight too.
    let out_of_flight = || PARKED.load(Ordering::Relaxed) - parked_before + finished().count();
    for i in 0..phase.runs {
        if let Some(k) = phase.in_flight {
            while i >= k + out_of_flight() {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        let run = run(i);
        if i == 0 {
            future_bytes = size_of_val(&run);
        }
        drop(tokio::spawn(run));
    }
    future_bytes
}

/// The `timer`, `timer+store` and `sleep-floor` scenarios.
async fn timers<S: ParkStore>(
    phase: &Phase,
    kind: Timed,
    store: Arc<S>,
) -> Result<Measured, String> {
    let n = phase.runs;
    let before = snapshot()?;
    let asked = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = phase.deadline();
    let wf = counted(timer_workflow(deadline, &asked), phase);
    // Runs without an id report no wait to observers: `--in-flight` gates the store
    // scenarios only.
    let ungated = Phase {
        in_flight: None,
        ..*phase
    };
    let future_bytes = match kind {
        Timed::Timer => {
            let wf = Arc::new(wf);
            spawn_runs(&ungated, |_| {
                let wf = Arc::clone(&wf);
                async move { finish(wf.orchestrate(Park::Wait).await) }
            })
            .await
        }
        Timed::TimerStore => {
            let base =
                Arc::new(wf.with_checkpoint_store(Arc::clone(&store) as Arc<dyn CheckpointStore>));
            spawn_runs(phase, |i| {
                let wf = Arc::clone(&base);
                async move { finish(wf.orchestrate_with_id(run_id(i), Park::Wait).await) }
            })
            .await
        }
        Timed::SleepFloor => {
            spawn_runs(&ungated, |_| {
                let asked = Arc::clone(&asked);
                async move {
                    asked.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep_until(deadline.into()).await;
                    finish(Ok(Park::Done));
                }
            })
            .await
        }
    };
    let strict = (!phase.warmup).then_some(deadline);
    all_asked(&asked, n, strict).await?;
    let park = started.elapsed();
    if !phase.warmup {
        if let Timed::TimerStore = kind {
            check_waiting(&*store, n, RowKind::Timer, Duration::from_secs(5)).await?;
        }
        settle(strict).await?;
    }
    let parked = snapshot()?;
    if !phase.warmup && finished().count() > 0 {
        return Err("a run finished before the deadline".into());
    }
    finished()
        .all(n, phase.park_budget + Duration::from_secs(60))
        .await?;
    let latencies = finished().latencies(n, deadline);
    check_cleared(&*store).await?;
    Ok(Measured {
        runs: n,
        before,
        parked,
        after: snapshot()?,
        park,
        wake: latencies.last().copied().unwrap_or_default(),
        latencies,
        send: None,
        future_bytes,
    })
}

/// The `signal` scenario.
async fn signals<S: ParkStore>(phase: &Phase, store: Arc<S>) -> Result<Measured, String> {
    let n = phase.runs;
    let before = snapshot()?;
    let base = counted(signal_workflow(&store), phase);
    let started = Instant::now();
    let base = Arc::new(base);
    let future_bytes = spawn_runs(phase, |i| {
        let wf = Arc::clone(&base);
        async move { finish(wf.orchestrate_with_id(run_id(i), Park::Wait).await) }
    })
    .await;
    drop(base);
    check_waiting(&*store, n, RowKind::SignalWait, Duration::from_secs(120)).await?;
    let park = started.elapsed();
    settle(None).await?;
    let parked = snapshot()?;
    if finished().count() > 0 {
        return Err("a run finished before its signal was sent".into());
    }
    let wake = Instant::now();
    for i in 0..n {
        #[allow(clippy::cast_possible_truncation)] // run numbers fit u64
        let go = Signal::new("go", "go", &(i as u64)).map_err(|e| e.to_string())?;
        signal::send(&*store, &run_id(i), go)
            .await
            .map_err(|e| format!("send to run {i}: {e}"))?;
    }
    let send = wake.elapsed();
    finished().all(n, Duration::from_secs(120)).await?;
    let latencies = finished().latencies(n, wake);
    check_cleared(&*store).await?;
    Ok(Measured {
        runs: n,
        before,
        parked,
        after: snapshot()?,
        park,
        wake: latencies.last().copied().unwrap_or_default(),
        latencies,
        send: Some(send),
        future_bytes,
    })
}

async fn measure(scenario: &str, phase: &Phase) -> Result<Measured, String> {
    finished().reset();
    let memory = || Arc::new(MemoryCheckpointStore::new());
    match scenario {
        "timer" => timers(phase, Timed::Timer, memory()).await,
        "timer+store" => timers(phase, Timed::TimerStore, memory()).await,
        "signal" => signals(phase, memory()).await,
        "sleep-floor" => timers(phase, Timed::SleepFloor, memory()).await,
        #[cfg(feature = "recovery")]
        "timer+redb" | "signal+redb" => {
            let dir = std::env::temp_dir().join(format!(
                "cano-parked-{}-{}",
                std::process::id(),
                scenario.replace('+', "-")
            ));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = dir.join("parked.redb");
            let store = match phase.redb_cache_mib {
                Some(mib) => cano::RedbCheckpointStore::new_with_cache_size(path, mib << 20),
                None => cano::RedbCheckpointStore::new(path),
            }
            .map(Arc::new)
            .map_err(|e| e.to_string());
            let measured = match store {
                Ok(store) if scenario == "timer+redb" => {
                    timers(phase, Timed::TimerStore, store).await
                }
                Ok(store) => signals(phase, store).await,
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_dir_all(&dir);
            measured
        }
        #[cfg(not(feature = "recovery"))]
        "timer+redb" | "signal+redb" => Err(format!(
            "{scenario} needs the redb store: run with --features recovery"
        )),
        other => Err(format!("unknown scenario {other:?}\n{USAGE}")),
    }
}

/// The name of `scenario` in `BENCH` lines.
fn bench_name(scenario: &str) -> String {
    format!("parked_{}", scenario.replace(['+', '-'], "_"))
}

/// Run one scenario in this process and print its `BENCH` and `BENCH_DETAIL` lines.
fn run_scenario(scenario: &str, args: &Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let workers = runtime.metrics().num_workers();
    let capacity = args.runs.max(args.warmup);
    FINISHED
        .set(Finished {
            base: Instant::now(),
            at: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            first_error: Mutex::new(None),
        })
        .map_err(|_| "run_scenario runs once per process")?;
    let m = runtime.block_on(async {
        if args.warmup > 0 {
            let warmup = Phase {
                runs: args.warmup,
                park_budget: Duration::from_millis(300),
                warmup: true,
                in_flight: args.in_flight,
                redb_cache_mib: args.redb_cache_mib,
            };
            measure(scenario, &warmup)
                .await
                .map_err(|e| format!("warm-up: {e}"))?;
        }
        let phase = Phase {
            runs: args.runs,
            park_budget: args.park_budget(),
            warmup: false,
            in_flight: args.in_flight,
            redb_cache_mib: args.redb_cache_mib,
        };
        measure(scenario, &phase).await
    })?;
    print_result(scenario, workers, &m);
    Ok(())
}

#[allow(clippy::cast_precision_loss)] // byte and run counts far below 2^52
fn print_result(scenario: &str, workers: usize, m: &Measured) {
    let name = bench_name(scenario);
    let n = m.runs;
    let wake_s = m.wake.as_secs_f64();
    let runs_per_s = if wake_s > 0.0 { n as f64 / wake_s } else { 0.0 };
    let delta_kb = m.parked.rss_kb.saturating_sub(m.before.rss_kb);
    let per_run = (delta_kb * 1024) as f64 / n as f64;
    println!(
        "BENCH peer=cano scenario={name} runs={n} concurrency={n} runs_per_s={runs_per_s:.1} \
         p50_ms={:.1} p99_ms={:.1} wall_s={wake_s:.2}",
        percentile_ms(&m.latencies, 0.50),
        percentile_ms(&m.latencies, 0.99),
    );
    let send = m
        .send
        .map(|s| format!(" send_ms={:.1}", s.as_secs_f64() * 1e3))
        .unwrap_or_default();
    println!(
        "BENCH_DETAIL peer=cano scenario={name} workers={workers} rss_before_kb={} \
         rss_parked_kb={} rss_per_run_bytes={per_run:.0} rss_after_kb={} threads_before={} \
         threads_parked={} park_s={:.3} wake_ms={:.1}{send} future_bytes={} \
         workflow_bytes={} verified={n}",
        m.before.rss_kb,
        m.parked.rss_kb,
        m.after.rss_kb,
        m.before.threads,
        m.parked.threads,
        m.park.as_secs_f64(),
        wake_s * 1e3,
        m.future_bytes,
        size_of::<Workflow<Park>>(),
    );
}

// ---------------------------------------------------------------------------------------
// The parent: one child process per scenario, then a table

/// A field `key=value` of a `BENCH` or `BENCH_DETAIL` line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("?")
}

fn env_line() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().replace(' ', "_"));
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    let load = read("/proc/loadavg");
    format!(
        "BENCH_ENV peer=cano cano={} date={} nproc={nproc} cpu={cpu} kernel={} load1={}",
        env!("CARGO_PKG_VERSION"),
        utc_now(),
        read("/proc/sys/kernel/osrelease").trim(),
        load.split_whitespace().next().unwrap_or("unknown"),
    )
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn run_children(args: &Args) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    println!("{}", env_line());
    let mut rows: Vec<[String; COLUMNS]> = Vec::new();
    let mut failed = false;
    for scenario in &args.scenarios {
        eprintln!("parked_runs: {scenario}: parking {} runs ...", args.runs);
        let mut cmd = Command::new(&exe);
        cmd.args(["--in-process", "--scenario", scenario])
            .args(["--runs", &args.runs.to_string()])
            .args(["--warmup", &args.warmup.to_string()]);
        if let Some(secs) = args.park_secs {
            cmd.args(["--park-secs", &secs.to_string()]);
        }
        if let Some(k) = args.in_flight {
            cmd.args(["--in-flight", &k.to_string()]);
        }
        if let Some(mib) = args.redb_cache_mib {
            cmd.args(["--redb-cache-mib", &mib.to_string()]);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            failed = true;
            if !stdout.contains("BENCH_FAIL") {
                println!(
                    "BENCH_FAIL peer=cano scenario={} the child process ended with {}",
                    bench_name(scenario),
                    out.status
                );
            }
            continue;
        }
        let bench = stdout
            .lines()
            .find(|l| l.starts_with("BENCH "))
            .unwrap_or("");
        let detail = stdout
            .lines()
            .find(|l| l.starts_with("BENCH_DETAIL "))
            .unwrap_or("");
        let per_run = field(detail, "rss_per_run_bytes");
        let within = match per_run.parse::<u64>() {
            Ok(bytes) if bytes <= 1024 => "yes",
            Ok(_) => "no",
            Err(_) => "?",
        };
        let mb = |key| {
            field(detail, key)
                .parse::<f64>()
                .map_or("?".into(), |kb| format!("{:.1}", kb / 1024.0))
        };
        rows.push([
            scenario.clone(),
            field(bench, "runs").to_owned(),
            format!("{} -> {}", mb("rss_before_kb"), mb("rss_parked_kb")),
            per_run.to_owned(),
            within.to_owned(),
            format!(
                "{} / {}",
                field(detail, "threads_before"),
                field(detail, "threads_parked")
            ),
            field(detail, "park_s").to_owned(),
            field(detail, "wake_ms").to_owned(),
            field(bench, "runs_per_s").to_owned(),
            field(bench, "p99_ms").to_owned(),
            field(detail, "future_bytes").to_owned(),
        ]);
    }
    print_table(&rows);
    if failed {
        Err("a scenario failed (see BENCH_FAIL)".into())
    } else {
        Ok(())
    }
}

/// The columns of the summary table.
const COLUMNS: usize = 11;

fn print_table(rows: &[[String; COLUMNS]]) {
    let head: [&str; COLUMNS] = [
        "scenario",
        "runs",
        "RSS MB before -> parked",
        "RSS/run B",
        "<= 1 KiB",
        "threads before/parked",
        "park s",
        "wake ms",
        "runs/s",
        "p99 ms",
        "future B",
    ];
    let mut widths = head.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; COLUMNS]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 0 {
                out.push_str(&format!("{cell:<w$}"));
            } else {
                out.push_str(&format!("  {cell:>w$}"));
            }
        }
        println!("{}", out.trim_end());
    };
    println!();
    line(head);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    println!(
        "RSS/run = (VmRSS once all runs are parked - VmRSS before spawning) / runs; the \
         requirement: <= 1 KiB and no thread per parked run. wake = from the deadline (or \
         the first signal sent) until the last run finished. future B = size_of_val of a \
         spawned run's future."
    );
}

// ---------------------------------------------------------------------------------------
// Arguments

struct Args {
    runs: usize,
    scenarios: Vec<String>,
    warmup: usize,
    park_secs: Option<f64>,
    in_process: bool,
    in_flight: Option<usize>,
    redb_cache_mib: Option<usize>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Self {
            runs: 100_000,
            scenarios: SCENARIOS.map(String::from).to_vec(),
            warmup: 1000,
            park_secs: None,
            in_process: false,
            in_flight: None,
            redb_cache_mib: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |what: &str| {
                it.next()
                    .ok_or_else(|| format!("{arg} needs {what}\n{USAGE}"))
            };
            match arg.as_str() {
                "--runs" => args.runs = number(&value("a number of runs")?)?,
                "--warmup" => args.warmup = number(&value("a number of runs")?)?,
                "--park-secs" => {
                    let text = value("a number of seconds")?;
                    let secs: f64 = text
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| format!("--park-secs {text:?}: not a positive number"))?;
                    args.park_secs = Some(secs);
                }
                "--scenario" => {
                    let name = value("a scenario")?;
                    args.scenarios = match name.as_str() {
                        "all" => SCENARIOS.map(String::from).to_vec(),
                        s if SCENARIOS.contains(&s) || REDB_SCENARIOS.contains(&s) => {
                            vec![name]
                        }
                        _ => return Err(format!("unknown scenario {name:?}\n{USAGE}")),
                    };
                }
                "--in-flight" => {
                    let k = number(&value("a number of runs")?)?;
                    if k == 0 {
                        return Err(format!("--in-flight must be at least 1\n{USAGE}"));
                    }
                    args.in_flight = Some(k);
                }
                "--redb-cache-mib" => {
                    args.redb_cache_mib = Some(number(&value("a size in MiB")?)?);
                }
                "--in-process" => args.in_process = true,
                "-h" | "--help" => return Err(USAGE.into()),
                _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
            }
        }
        if args.runs == 0 {
            return Err(format!("--runs must be at least 1\n{USAGE}"));
        }
        Ok(args)
    }

    /// The timers' deadline after the first spawn: `--park-secs`, or 2 s + 30 µs per run.
    fn park_budget(&self) -> Duration {
        self.park_secs.map_or_else(
            || {
                Duration::from_secs(2)
                    + Duration::from_micros(30) * u32::try_from(self.runs).unwrap_or(u32::MAX)
            },
            Duration::from_secs_f64,
        )
    }
}

fn number(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number\n{USAGE}"))
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if std::fs::metadata("/proc/self/status").is_err() {
        eprintln!(
            "parked_runs measures RSS and threads through /proc/self/status, which this \
             system does not have (Linux only): nothing was measured"
        );
        return ExitCode::from(2);
    }
    let outcome = if args.in_process {
        let scenario = args.scenarios[0].clone();
        run_scenario(&scenario, &args).inspect_err(|e| {
            println!(
                "BENCH_FAIL peer=cano scenario={} {}",
                bench_name(&scenario),
                e.replace('\n', " ")
            );
        })
    } else {
        run_children(&args)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parked_runs: {e}");
            ExitCode::FAILURE
        }
    }
}
