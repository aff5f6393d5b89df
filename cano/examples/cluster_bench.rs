//! # Cluster benchmark: the peers' `pg_3step` and `pg_1step` scenarios on cano's cluster
//!
//! `cargo run -p cano --example cluster_bench --features postgres`
//!
//! With no options it starts a throwaway PostgreSQL server (`TempPostgres`), runs 200
//! timed runs of `pg_3step` after a warm-up of 20, prints the result lines and stops the
//! server: a quick check that the benchmark works. For numbers, build with `--release`
//! and run it on the peers' cluster, so that cano and the peers (DBOS, graphile-worker)
//! see the same PostgreSQL settings:
//!
//! ```text
//! shared/bench/peers/pg.sh -- cargo run --release -p cano --example cluster_bench \
//!     --features postgres -- --url "$PEER_PG_URL" --runs 2000 --concurrency 16 \
//!     --scenario pg_3step
//! ```
//!
//! Options: `--url URL`, `--runs N` (2000 with `--url`), `--concurrency C` (16),
//! `--scenario pg_3step|pg_1step` (`pg_3step`), `--warmup W` (200 with `--url`),
//! `--timeout S` (600: how long the timed phase may take), `--batched` (the worker's store
//! has [group commit](cano::recovery::postgres::PostgresCheckpointStore::with_group_commit):
//! the runs in flight share their state entries' transactions; reported as
//! `peer=cano-batched`, to be set beside the peers' batched variants), `--finished N`
//! (N runs that ended three days ago are put in the table first: claims must stay as
//! fast as ended runs accumulate), `--retention S` (the worker deletes runs that ended
//! more than S seconds ago, [`Worker::with_retention`](cano::cluster::Worker::with_retention);
//! `old_runs_left` in `BENCH_DETAIL` says how many of the N were left at the end),
//! `--prefetch P` (C with `--batched`, else 0: the worker claims up to P runs ahead of
//! its free slots, [`Worker::with_prefetch`](cano::cluster::Worker::with_prefetch); it
//! still executes at most C at once, as graphile-worker's batched variant fetches C + 1
//! ahead into its local queue; `worker_prefetch` in `BENCH_DETAIL`), `--runtime
//! current-thread|multi-thread` (`current-thread`: the Tokio runtime of both processes;
//! `worker_runtime` in `BENCH_DETAIL`; see below).
//!
//! It follows the scenario contract of `shared/bench/peers/README.md`:
//!
//! * **Processes.** This program is the client; it starts the worker, a second process
//!   (this program again, with `--role worker`), and both connect to `--url`. The worker
//!   is one [`cano::cluster::Worker`] running up to C runs at once, with a pool of C + 4
//!   connections; it learns about runs only from the database (a submit's `NOTIFY`
//!   wakes it, a finished run makes it claim again, and it polls every 500 ms, the
//!   default). It stops when its standard input closes. Both processes run on a
//!   current-thread Tokio runtime unless `--runtime multi-thread`: on this 2-core
//!   machine, shared with PostgreSQL, the runs a commit answers then run on the thread
//!   that read the answer instead of waking other threads, and the batched variant is
//!   28–57 % faster (medians of 3 on 2026-12-06: `pg_3step` 5,219 runs/s against 4,069
//!   with a thread per core, `pg_1step` 10,670 against 6,778; `BENCHMARKS.md`).
//! * **Work per run.** The input is `{"x": i}`. `pg_3step` goes `A → B(x+1) → C(2y) →
//!   Done(z-3)`, so its final state is `Done(2x-1)`; `pg_1step` goes `A → Done(x+1)`. A
//!   task's output travels in the next state, which is what that state's entry in the
//!   run's log records (committed before the state's task runs), as DBOS records a
//!   step's output. cano's states are values and a workflow looks its tasks up by
//!   state, so the factory registers the states of the run's path (`B(x+1)`, …); the
//!   tasks compute each next state, and a wrong one would end the run in an error.
//! * **Submission.** All N runs at once, in transactions of 100 runs:
//!   [`Client::submit_batch`](cano::cluster::Client::submit_batch), one statement each.
//!   Each run has the idempotency key `<scenario>-<phase>-<i>`, which the verification
//!   reads back.
//! * **Timing.** `submit_i` is this process's wall clock just before run i's batch is
//!   sent; `done_i` is the database's `finished_at` of the run (`now()` in the
//!   transaction that records its outcome and clears its log). `wall_s` = max(done) −
//!   min(submit); p50/p99 are nearest-rank percentiles of done − submit over the N timed
//!   runs (a backlog-drain latency). The warm-up goes through the same processes first
//!   and is verified, not timed.
//! * **Verification** (after the timed phase): exactly N runs, each succeeded once (one
//!   attempt) with the expected final state, and no log left behind. Otherwise it prints
//!   `BENCH_FAIL` and exits 1.
//! * **Output.** `BENCH peer=cano scenario=… runs=… concurrency=… runs_per_s=… p50_ms=…
//!   p99_ms=… wall_s=…`, then `BENCH_DETAIL` with the submission rate, the queue wait
//!   (submit → lease claimed) and execution latency (claim → finished), the CPU of the
//!   worker and of this client per run (from `/proc`), how busy the host was, and the
//!   cost counters of the contract: write transactions and KB of WAL per run.

use cano::cancel::CancellationToken;
use cano::cluster::{Client, Registry, Worker};
use cano::prelude::*;
use cano::recovery::postgres::TempPostgres;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Runs per submit transaction, as the contract says.
const BATCH: usize = 100;
/// How often the client looks whether every run of a phase has ended.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// `/proc` counts CPU time in clock ticks of 1/100 s (`USER_HZ` on Linux).
const TICKS_PER_S: f64 = 100.0;

/// A run's state: a task's output travels in the next state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Stage {
    A,
    B(i64),
    C(i64),
    Done(i64),
}

/// A run's input: its index.
#[derive(Debug, Serialize, Deserialize)]
struct Input {
    x: i64,
}

/// A: `x + 1`, handed to the next state (`B` in `pg_3step`, `Done` in `pg_1step`).
struct AddOne {
    x: i64,
    next: fn(i64) -> Stage,
}

#[task(state = Stage)]
impl AddOne {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Stage>, CanoError> {
        Ok(TaskResult::Single((self.next)(self.x + 1)))
    }
}

/// B: `2y`.
struct Double {
    y: i64,
}

#[task(state = Stage)]
impl Double {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Stage>, CanoError> {
        Ok(TaskResult::Single(Stage::C(2 * self.y)))
    }
}

/// C: `z - 3`, the output.
struct MinusThree {
    z: i64,
}

#[task(state = Stage)]
impl MinusThree {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Stage>, CanoError> {
        Ok(TaskResult::Single(Stage::Done(self.z - 3)))
    }
}

/// The two scenarios, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    ThreeSteps,
    OneStep,
}

impl Scenario {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "pg_3step" => Some(Self::ThreeSteps),
            "pg_1step" => Some(Self::OneStep),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::ThreeSteps => "pg_3step",
            Self::OneStep => "pg_1step",
        }
    }

    /// The output of run `x`.
    fn expected(self, x: i64) -> i64 {
        match self {
            Self::ThreeSteps => 2 * x - 1,
            Self::OneStep => x + 1,
        }
    }
}

/// Both scenarios' workflows, registered under the scenarios' names.
fn registry() -> Registry {
    Registry::new()
        .register("pg_3step", |input: Input| {
            let x = input.x;
            let (y, z) = (x + 1, 2 * (x + 1));
            Ok(Workflow::bare()
                .register(Stage::A, AddOne { x, next: Stage::B })
                .register(Stage::B(y), Double { y })
                .register(Stage::C(z), MinusThree { z })
                .add_exit_state(Stage::Done(Scenario::ThreeSteps.expected(x))))
        })
        .register("pg_1step", |input: Input| {
            let x = input.x;
            Ok(Workflow::bare()
                .register(
                    Stage::A,
                    AddOne {
                        x,
                        next: Stage::Done,
                    },
                )
                .add_exit_state(Stage::Done(Scenario::OneStep.expected(x))))
        })
}

/// The worker process: run the scenarios' runs from `url` until standard input closes.
async fn worker_main(
    url: &str,
    concurrency: usize,
    batched: bool,
    retention: Option<u64>,
    prefetch: usize,
) -> Result<(), CanoError> {
    // A connection per run in flight, plus the claim loop, the heartbeat and the listener.
    let mut store = PostgresCheckpointStore::builder(url)
        .with_max_connections(concurrency + 4)
        .connect()
        .await?
        .with_worker_id(format!("bench-worker-{}", std::process::id()));
    if batched {
        store = store.with_group_commit();
    }
    let mut worker = Worker::new(store, registry())
        .with_concurrency(concurrency)
        .with_prefetch(prefetch);
    if let Some(secs) = retention {
        worker = worker.with_retention(Duration::from_secs(secs));
    }
    let worker =
        worker.with_error_hook(|doing, error| eprintln!("cluster_bench worker: {doing}: {error}"));
    let (stop, token) = CancellationToken::new();
    std::thread::spawn(move || {
        // EOF: the client is done (or gone).
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        stop.cancel();
    });
    println!("READY");
    let _ = std::io::stdout().flush();
    worker.run(token).await
}

/// The worker process, seen from the client: stopped (standard input closed, then
/// killed if it lingers) when dropped.
struct WorkerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl WorkerProcess {
    /// Start the worker on `url` and wait until it is ready.
    fn start(options: &Options, url: &str) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let mut child = Command::new(exe)
            .args(["--role", "worker", "--url", url, "--concurrency"])
            .arg(options.concurrency.to_string())
            .args(options.batched.then_some("--batched"))
            .args(["--prefetch".to_owned(), options.prefetch.to_string()])
            .args(["--runtime", options.runtime.name()])
            .args(
                (options.retention)
                    .map(|secs| ["--retention".to_owned(), secs.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the worker process: {e}"))?;
        let stdin = child.stdin.take();
        let mut process = Self { child, stdin };
        let out = process.child.stdout.take().ok_or("the worker's stdout")?;
        let (ready, readiness) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line == "READY" {
                    let _ = ready.send(());
                } else {
                    println!("worker: {line}");
                }
            }
        });
        readiness
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "the worker process did not get ready within 60 s".to_owned())?;
        Ok(process)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the worker process has ended.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the worker process ended early ({status})")),
            Err(e) => Err(format!("cannot look at the worker process: {e}")),
        }
    }

    /// Close its standard input (it hands back what it holds and exits); kill it if it
    /// has not exited after 30 s.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The benchmark's options.
struct Options {
    url: Option<String>,
    runs: usize,
    concurrency: usize,
    scenario: Scenario,
    warmup: usize,
    timeout: Duration,
    worker: bool,
    /// `--batched`: the worker's store has group commit; reported as `cano-batched`.
    batched: bool,
    /// `--finished N`: runs that ended three days ago, put in the table before the
    /// warm-up (claims must not slow down as ended runs accumulate).
    finished: usize,
    /// `--retention S`: the worker deletes runs that ended more than S seconds ago.
    retention: Option<u64>,
    /// `--prefetch P`: the worker claims up to P runs ahead of its free slots
    /// ([`Worker::with_prefetch`]); it still executes at most C at once.
    prefetch: usize,
    /// `--runtime`: the Tokio runtime of both processes.
    runtime: Runtime,
}

/// The Tokio runtime the processes run on (`--runtime`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runtime {
    /// `current-thread` (the default): every task on the process's one thread, so that a
    /// commit's answer wakes the runs on the thread that reads it.
    CurrentThread,
    /// `multi-thread`: Tokio's default runtime, a thread per core.
    MultiThread,
}

impl Runtime {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "current-thread" => Some(Self::CurrentThread),
            "multi-thread" => Some(Self::MultiThread),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::CurrentThread => "current-thread",
            Self::MultiThread => "multi-thread",
        }
    }
}

impl Options {
    /// The peer name of the output lines.
    fn peer(&self) -> &'static str {
        if self.batched { "cano-batched" } else { "cano" }
    }
}

const USAGE: &str = "usage: cluster_bench [--url URL] [--runs N] [--concurrency C] \
                     [--scenario pg_3step|pg_1step] [--warmup W] [--timeout S] [--batched] \
                     [--finished N] [--retention S] [--prefetch P] \
                     [--runtime current-thread|multi-thread]";

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut runs, mut warmup, mut concurrency, mut timeout) = (None, None, None, 16, 600);
    let (mut scenario, mut worker, mut batched) = (Scenario::ThreeSteps, false, false);
    let (mut finished, mut retention, mut prefetch) = (0, None, None);
    let mut runtime = Runtime::CurrentThread;
    while let Some(flag) = args.next() {
        if flag == "--batched" {
            batched = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || -> Result<usize, String> {
            value
                .parse()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--finished" => finished = number()?,
            "--prefetch" => prefetch = Some(number()?),
            "--retention" => retention = Some(number()? as u64),
            "--url" => url = Some(value.clone()),
            "--runs" => runs = Some(number()?),
            "--concurrency" => concurrency = number()?,
            "--warmup" => warmup = Some(number()?),
            "--timeout" => timeout = number()?,
            "--scenario" => {
                scenario =
                    Scenario::parse(&value).ok_or_else(|| format!("unknown scenario {value:?}"))?;
            }
            "--runtime" => {
                runtime = Runtime::parse(&value).ok_or_else(|| {
                    format!("unknown runtime {value:?} (current-thread or multi-thread)")
                })?;
            }
            "--role" if value == "worker" => worker = true,
            _ => return Err(format!("unknown option {flag} {value}")),
        }
    }
    // Without a URL: the quick check on a throwaway server.
    let (default_runs, default_warmup) = if url.is_some() {
        (2000, 200)
    } else {
        (200, 20)
    };
    let options = Options {
        runs: runs.unwrap_or(default_runs),
        warmup: warmup.unwrap_or(default_warmup),
        url,
        concurrency,
        scenario,
        timeout: Duration::from_secs(timeout as u64),
        worker,
        batched,
        finished,
        retention,
        // Batched, the worker claims C ahead by default, as graphile-worker's batched
        // variant fetches C + 1 ahead into its local queue.
        prefetch: prefetch.unwrap_or(if batched { concurrency } else { 0 }),
        runtime,
    };
    if options.runs == 0 || options.concurrency == 0 {
        return Err("--runs and --concurrency must be at least 1".into());
    }
    Ok(options)
}

/// The wall clock (CLOCK_REALTIME) in seconds since the Unix epoch.
fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// CPU seconds of process `pid` (user + system), from `/proc`.
fn process_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_S)
}

/// The host's (total, idle + iowait, steal) ticks, from `/proc/stat`.
fn host_ticks() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total = values.iter().take(8).sum();
    Some((total, values.get(3)? + values.get(4)?, *values.get(7)?))
}

/// CPU readings at one moment: the worker's, this process's and the host's.
struct CpuSnap {
    worker: Option<f64>,
    client: Option<f64>,
    host: Option<(f64, f64, f64)>,
}

impl CpuSnap {
    fn take(worker_pid: u32) -> Self {
        Self {
            worker: process_cpu_s(&worker_pid.to_string()),
            client: process_cpu_s("self"),
            host: host_ticks(),
        }
    }
}

/// The nearest-rank `p` percentile of `sorted` (not empty).
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let k = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted[k.min(sorted.len()) - 1]
}

/// The contract's cost counters: (next transaction id, WAL position in bytes).
async fn db_counters(db: &tokio_postgres::Client) -> Result<(i64, i64), String> {
    let row = db
        .query_one(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, \
             (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint",
            &[],
        )
        .await
        .map_err(|e| format!("reading the cost counters: {e}"))?;
    Ok((row.get(0), row.get(1)))
}

/// One run, as read back after a phase.
struct Finished {
    /// When it was submitted (this process's clock).
    submit: f64,
    /// When its lease was claimed (the database's clock).
    claimed: f64,
    /// When its outcome was recorded (the database's clock).
    done: f64,
}

/// What a phase measured.
struct Phase {
    runs: Vec<Finished>,
    submit_s: f64,
    cpu: (CpuSnap, CpuSnap),
    write_txns: i64,
    wal_bytes: i64,
}

/// Submit `n` runs of `scenario` (keys `<scenario>-<tag>-<i>`) in batches, wait until
/// every one has ended, and verify them.
async fn phase(
    client: &Client,
    db: &tokio_postgres::Client,
    worker: &mut WorkerProcess,
    scenario: Scenario,
    tag: &str,
    n: usize,
    timeout: Duration,
) -> Result<Phase, String> {
    let prefix = format!("{}-{tag}-", scenario.name());
    let inputs: Vec<(Input, String)> = (0..n)
        .map(|i| (Input { x: i as i64 }, format!("{prefix}{i}")))
        .collect();
    let (xid0, wal0) = db_counters(db).await?;
    let cpu0 = CpuSnap::take(worker.pid());
    let started = Instant::now();
    let mut submitted = Vec::with_capacity(n);
    for batch in inputs.chunks(BATCH) {
        let runs: Vec<_> = batch
            .iter()
            .map(|(input, key)| (scenario.name(), input, &Stage::A, Some(key.as_str())))
            .collect();
        let at = wall_now();
        client
            .submit_batch(&runs)
            .await
            .map_err(|e| format!("submitting: {e}"))?;
        submitted.extend(std::iter::repeat_n(at, batch.len()));
    }
    let submit_s = started.elapsed().as_secs_f64();
    let pattern = format!("{prefix}%");
    let deadline = Instant::now() + timeout;
    loop {
        let ended: i64 = db
            .query_one(
                "SELECT count(*) FROM cano_cluster_runs WHERE idempotency_key LIKE $1 \
                 AND status IN ('succeeded', 'failed', 'parked', 'cancelled')",
                &[&pattern],
            )
            .await
            .map_err(|e| format!("counting the ended runs: {e}"))?
            .get(0);
        if ended as usize >= n {
            break;
        }
        worker.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!(
                "timeout: only {ended}/{n} runs of {prefix}* ended within {timeout:?}"
            ));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
    let cpu1 = CpuSnap::take(worker.pid());
    let (xid1, wal1) = db_counters(db).await?;
    let runs = verify(db, scenario, &prefix, &submitted).await?;
    Ok(Phase {
        runs,
        submit_s,
        cpu: (cpu0, cpu1),
        write_txns: xid1 - xid0,
        wal_bytes: wal1 - wal0,
    })
}

/// Check the runs of `prefix`: exactly one per submit time in `submitted`, each
/// succeeded at its first attempt with the expected output, with no log left; answer
/// their times, by index.
async fn verify(
    db: &tokio_postgres::Client,
    scenario: Scenario,
    prefix: &str,
    submitted: &[f64],
) -> Result<Vec<Finished>, String> {
    let rows = db
        .query(
            "SELECT c.idempotency_key, c.status, c.final_state::text, c.attempts, c.error, \
                    extract(epoch FROM c.finished_at)::float8, \
                    extract(epoch FROM r.claimed_at)::float8, \
                    (SELECT count(*) FROM cano_checkpoints AS k WHERE k.workflow_id = c.run_id) \
             FROM cano_cluster_runs AS c LEFT JOIN cano_runs AS r ON r.workflow_id = c.run_id \
             WHERE c.idempotency_key LIKE $1",
            &[&format!("{prefix}%")],
        )
        .await
        .map_err(|e| format!("reading the runs back: {e}"))?;
    let n = submitted.len();
    let name = scenario.name();
    if rows.len() != n {
        return Err(format!(
            "scenario={name}: expected {n} runs {prefix}*, found {}",
            rows.len()
        ));
    }
    let mut by_index: HashMap<usize, Finished> = HashMap::with_capacity(n);
    let mut wrong = Vec::new();
    for row in &rows {
        let key: String = row.get(0);
        let status: String = row.get(1);
        let final_state: Option<String> = row.get(2);
        let attempts: i32 = row.get(3);
        let error: Option<String> = row.get(4);
        let done: Option<f64> = row.get(5);
        let claimed: Option<f64> = row.get(6);
        let log_rows: i64 = row.get(7);
        let Some(i) = key
            .strip_prefix(prefix)
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < n)
        else {
            return Err(format!(
                "scenario={name}: a run has the unexpected key {key:?}"
            ));
        };
        let output = final_state
            .as_deref()
            .and_then(|text| serde_json::from_str::<Stage>(text).ok());
        let expected = Stage::Done(scenario.expected(i as i64));
        match (done, claimed) {
            (Some(done), Some(claimed))
                if status == "succeeded"
                    && output.as_ref() == Some(&expected)
                    && attempts == 1
                    && log_rows == 0 =>
            {
                let run = Finished {
                    submit: submitted[i],
                    claimed,
                    done,
                };
                if by_index.insert(i, run).is_some() {
                    return Err(format!("scenario={name}: two runs have the key {key:?}"));
                }
            }
            _ => wrong.push(format!(
                "run {i}: status={status} final_state={final_state:?} expected={expected:?} \
                 attempts={attempts} log_rows={log_rows} error={error:?}"
            )),
        }
    }
    if let Some(first) = wrong.first() {
        return Err(format!(
            "scenario={name}: {}/{n} runs wrong; e.g. {first}",
            wrong.len()
        ));
    }
    let mut runs: Vec<(usize, Finished)> = by_index.into_iter().collect();
    runs.sort_by_key(|(i, _)| *i);
    Ok(runs.into_iter().map(|(_, run)| run).collect())
}

/// Sorted milliseconds of `f` over `runs`.
fn sorted_ms(runs: &[Finished], f: impl Fn(&Finished) -> f64) -> Vec<f64> {
    let mut ms: Vec<f64> = runs.iter().map(|run| f(run) * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

/// Print the `BENCH` and `BENCH_DETAIL` lines of a timed phase.
/// Put `n` runs that ended three days ago in the table (run ids `old-…`), in statements
/// of 100,000, then `VACUUM ANALYZE` it, as autovacuum would have by then.
async fn add_finished_runs(db: &tokio_postgres::Client, n: usize) -> Result<(), String> {
    const CHUNK: usize = 100_000;
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let upto = (done + CHUNK).min(n);
        db.execute(
            "INSERT INTO cano_cluster_runs (run_id, queue, workflow, status, input, \
                 initial_state, final_state, attempts, submitted_at, finished_at) \
             SELECT 'old-' || g, 'default', 'pg_3step', 'succeeded', '{}', '\"A\"', \
                    '\"Done\"', 1, now() - interval '3 days', now() - interval '3 days' \
             FROM generate_series($1::bigint, $2::bigint) g",
            &[&(done as i64), &(upto as i64 - 1)],
        )
        .await
        .map_err(|e| format!("adding ended runs: {e}"))?;
        done = upto;
        eprintln!("cluster_bench: {done} of {n} ended runs added");
    }
    db.batch_execute("VACUUM ANALYZE cano_cluster_runs")
        .await
        .map_err(|e| format!("vacuum: {e}"))?;
    eprintln!(
        "cluster_bench: {n} ended runs added in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn report(options: &Options, phase: &Phase, settings: &str, old_left: i64) {
    let n = phase.runs.len();
    let name = options.scenario.name();
    let first_submit = phase.runs.iter().map(|r| r.submit).fold(f64::MAX, f64::min);
    let last_done = phase.runs.iter().map(|r| r.done).fold(f64::MIN, f64::max);
    let wall = last_done - first_submit;
    let latency = sorted_ms(&phase.runs, |r| r.done - r.submit);
    let queue = sorted_ms(&phase.runs, |r| (r.claimed - r.submit).max(0.0));
    let exec = sorted_ms(&phase.runs, |r| r.done - r.claimed);
    let mean = latency.iter().sum::<f64>() / n as f64;
    println!(
        "BENCH peer={} scenario={name} runs={n} concurrency={} runs_per_s={:.1} \
         p50_ms={:.1} p99_ms={:.1} wall_s={:.2}",
        options.peer(),
        options.concurrency,
        n as f64 / wall,
        nearest_rank(&latency, 0.50),
        nearest_rank(&latency, 0.99),
        wall
    );
    let (a, b) = &phase.cpu;
    let per_run = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => format!("{:.2}", (y - x) * 1000.0 / n as f64),
        _ => "nan".to_owned(),
    };
    // Percent of the host's ticks: busy (not idle nor iowait), and stolen.
    let host = |pick: fn(f64, f64, f64) -> f64| match (a.host, b.host) {
        (Some(x), Some(y)) if y.0 > x.0 => {
            let share = pick(y.0 - x.0, y.1 - x.1, y.2 - x.2) / (y.0 - x.0);
            format!("{:.1}", 100.0 * share)
        }
        _ => "nan".to_owned(),
    };
    println!(
        "BENCH_DETAIL peer={} scenario={name} workers=1 worker_concurrency={} \
         worker_pool={} worker_prefetch={} worker_runtime={} worker_poll_ms=500 submit=batch batch={BATCH} warmup={} \
         done=db_finished_at submit_s={:.3} submit_per_s={:.1} queue_p50_ms={:.1} \
         exec_p50_ms={:.1} exec_p99_ms={:.1} mean_ms={:.1} worker_cpu_ms_per_run={} \
         client_cpu_ms_per_run={} host_busy_pct={} host_steal_pct={} \
         write_txns_per_run={:.2} wal_kb_per_run={:.2} verified={n} finished_before={} \
         retention_s={} old_runs_left={} {settings}",
        options.peer(),
        options.concurrency,
        options.concurrency + 4,
        options.prefetch,
        options.runtime.name(),
        options.warmup,
        phase.submit_s,
        n as f64 / phase.submit_s,
        nearest_rank(&queue, 0.50),
        nearest_rank(&exec, 0.50),
        nearest_rank(&exec, 0.99),
        mean,
        per_run(a.worker, b.worker),
        per_run(a.client, b.client),
        host(|total, idle, _| total - idle),
        host(|_, _, steal| steal),
        phase.write_txns as f64 / n as f64,
        phase.wal_bytes as f64 / n as f64 / 1024.0,
        options.finished,
        options
            .retention
            .map_or_else(|| "none".to_owned(), |s| s.to_string()),
        old_left,
    );
}

/// The server's version and durability settings, for `BENCH_DETAIL`.
async fn settings(db: &tokio_postgres::Client) -> Result<String, String> {
    let mut line = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "shared_buffers",
    ] {
        let value: String = db
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .map_err(|e| format!("SHOW {name}: {e}"))?
            .get(0);
        line.push(format!("pg_{name}={}", value.replace(' ', "_")));
    }
    Ok(line.join(" "))
}

/// The client: start the worker, run the warm-up and the timed phase, report.
async fn client_main(options: &Options) -> Result<(), String> {
    let mut server = None;
    let url = match &options.url {
        Some(url) => url.clone(),
        None => {
            let pg = TempPostgres::start().await.map_err(|e| e.to_string())?;
            let url = pg
                .create_database("bench")
                .await
                .map_err(|e| e.to_string())?;
            println!("throwaway PostgreSQL on 127.0.0.1:{}", pg.port());
            server = Some(pg);
            url
        }
    };
    // Connecting first creates the tables, before the worker connects.
    let client = Client::new(
        PostgresCheckpointStore::connect(&url)
            .await
            .map_err(|e| format!("connecting the client: {e}"))?,
    );
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    tokio::spawn(connection);
    let settings = settings(&db).await?;
    if options.finished > 0 {
        add_finished_runs(&db, options.finished).await?;
    }
    let mut worker = WorkerProcess::start(options, &url)?;
    let scenario = options.scenario;
    if options.warmup > 0 {
        phase(
            &client,
            &db,
            &mut worker,
            scenario,
            "warmup",
            options.warmup,
            options.timeout,
        )
        .await?;
    }
    let timed = phase(
        &client,
        &db,
        &mut worker,
        scenario,
        "timed",
        options.runs,
        options.timeout,
    )
    .await?;
    worker.stop();
    let old_left: i64 = if options.finished > 0 {
        db.query_one(
            "SELECT count(*) FROM cano_cluster_runs WHERE run_id LIKE 'old-%'",
            &[],
        )
        .await
        .map_err(|e| format!("counting ended runs: {e}"))?
        .get(0)
    } else {
        0
    };
    report(options, &timed, &settings, old_left);
    if let Some(pg) = server {
        pg.stop().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("cluster_bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut builder = match options.runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cluster_bench: cannot start a Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if options.worker {
        let Some(url) = &options.url else {
            eprintln!("cluster_bench: the worker needs --url");
            return ExitCode::from(2);
        };
        return match runtime.block_on(worker_main(
            url,
            options.concurrency,
            options.batched,
            options.retention,
            options.prefetch,
        )) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cluster_bench worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(client_main(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!(
                "BENCH_FAIL peer=cano scenario={} {e}",
                options.scenario.name()
            );
            ExitCode::FAILURE
        }
    }
}
