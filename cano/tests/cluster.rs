//! The cluster runtime on PostgreSQL: runs submitted by a client and finished by
//! in-process workers, each exactly once; idempotent submits; a worker dropped mid-run
//! whose run another worker resumes from its log after the lease expires; unknown
//! workflows and bad inputs failing the run with a clear error; a run that kills its
//! worker each time parked; a shutdown handing runs back; runs cancelled (not started,
//! running, waiting to be resumed: completed saga steps compensated once) and retried;
//! runs sleeping on a timer or waiting for a signal given back (no worker slot held),
//! woken by their deadline (after every worker was down past it), a signal (sent while
//! no worker had the run) or a cancel; cron ticks started once across three nodes and
//! missed ticks by their misfire policy; retention; busy connections cut and PostgreSQL
//! crash-restarted with 1,000 runs in flight (none lost, none run twice).
//!
//! On a throwaway server (`pg_support`); without PostgreSQL the tests print why they skip,
//! and fail when `CANO_REQUIRE_POSTGRES=1`. Leases are 300 ms and workers poll every
//! 20 ms, so a takeover takes well under a second.
#![cfg(feature = "postgres")]

mod pg_support;

use cano::cancel::{CancellationHandle, CancellationToken};
use cano::cluster::{CancelOutcome, Client, Registry, RunState, Worker};
use cano::prelude::*;
use cano::signal::Signal;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const LEASE: Duration = Duration::from_millis(300);
const POLL: Duration = Duration::from_millis(20);
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Step {
    Prepare,
    Work,
    Done,
}

#[derive(Debug, Deserialize, Serialize)]
struct Job {
    n: u32,
    /// Hold the first execution of `Work` until the test lets go (it never does).
    #[serde(default)]
    hold: bool,
    /// Hang in `Work` every time (the test then kills the worker).
    #[serde(default)]
    poison: bool,
    /// Hang in `Work` whenever this worker runs it.
    #[serde(default)]
    hold_on: Option<String>,
}

/// How many times each job's steps ran, across all workers: `(prepare, work)` by `n`.
#[derive(Clone, Default)]
struct Ledger {
    runs: Arc<Mutex<HashMap<u32, (u32, u32)>>>,
    /// Which worker ran each job's `Work`.
    workers: Arc<Mutex<HashMap<u32, Vec<String>>>>,
    holding: Arc<Notify>,
}

impl Ledger {
    fn count(&self, n: u32) -> (u32, u32) {
        self.runs
            .lock()
            .unwrap()
            .get(&n)
            .copied()
            .unwrap_or_default()
    }
}

struct Prepare {
    n: u32,
    ledger: Ledger,
}

#[task(state = Step)]
impl Prepare {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        self.ledger
            .runs
            .lock()
            .unwrap()
            .entry(self.n)
            .or_default()
            .0 += 1;
        Ok(TaskResult::Single(Step::Work))
    }
}

struct Work {
    n: u32,
    hold: bool,
    poison: bool,
    hold_on: Option<String>,
    worker: String,
    ledger: Ledger,
}

#[task(state = Step)]
impl Work {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        let first = {
            let mut runs = self.ledger.runs.lock().unwrap();
            let entry = runs.entry(self.n).or_default();
            entry.1 += 1;
            entry.1 == 1
        };
        self.ledger
            .workers
            .lock()
            .unwrap()
            .entry(self.n)
            .or_default()
            .push(self.worker.clone());
        let held_here = self.hold_on.as_deref() == Some(self.worker.as_str());
        if self.poison || (self.hold && first) || held_here {
            self.ledger.holding.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(TaskResult::Single(Step::Done))
    }
}

/// `Reserve` of the workflow `"saga"`: a saga step that counts its runs and its
/// compensations in the ledger (`(prepare, work)` of job `n` + 1000: runs, compensations).
struct Reserve {
    n: u32,
    ledger: Ledger,
}

#[saga::task(state = Step)]
impl Reserve {
    type Output = u32;
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, u32), CanoError> {
        self.ledger
            .runs
            .lock()
            .unwrap()
            .entry(self.n + 1000)
            .or_default()
            .0 += 1;
        Ok((TaskResult::Single(Step::Work), self.n))
    }
    async fn compensate(&self, _res: &Resources, n: u32) -> Result<(), CanoError> {
        self.ledger
            .runs
            .lock()
            .unwrap()
            .entry(n + 1000)
            .or_default()
            .1 += 1;
        Ok(())
    }
}

/// `Work` of the workflow `"flaky"`: fails its first run, then moves on.
struct Flaky {
    n: u32,
    ledger: Ledger,
}

#[task(state = Step)]
impl Flaky {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        let runs = {
            let mut runs = self.ledger.runs.lock().unwrap();
            let entry = runs.entry(self.n).or_default();
            entry.1 += 1;
            entry.1
        };
        if runs == 1 {
            return Err(CanoError::task_execution("the first try fails"));
        }
        Ok(TaskResult::Single(Step::Done))
    }
}

/// `Work` of the workflow `"nap"`: sleeps `n` ms on a durable timer, then counts its
/// firing (`(_, fired)` of job `n` + 2000).
struct Nap {
    n: u32,
    ledger: Ledger,
}

#[task::timer(state = Step)]
impl Nap {
    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        Ok(TimerOutcome::Duration(Duration::from_millis(u64::from(
            self.n,
        ))))
    }
    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        self.ledger
            .runs
            .lock()
            .unwrap()
            .entry(self.n + 2000)
            .or_default()
            .1 += 1;
        Ok(TaskResult::Single(Step::Done))
    }
}

/// `Work` of the workflow `"approve"`: waits for the signal `"go"` (a number), then
/// records it (`(payload, consumed)` of job `n` + 3000).
struct Approve {
    n: u32,
    ledger: Ledger,
}

#[task::signal(state = Step)]
impl Approve {
    type Payload = u32;
    fn signal(&self) -> Cow<'static, str> {
        "go".into()
    }
    async fn on_signal(&self, _res: &Resources, value: u32) -> Result<TaskResult<Step>, CanoError> {
        let mut runs = self.ledger.runs.lock().unwrap();
        let entry = runs.entry(self.n + 3000).or_default();
        *entry = (value, entry.1 + 1);
        Ok(TaskResult::Single(Step::Done))
    }
}

/// The registry of worker `worker`, writing to `ledger`: the workflows `"job"` (Prepare,
/// Work), `"saga"` (Reserve, a saga step, then job's Work) and `"flaky"` (Prepare, then a
/// Work that fails its first run), `"nap"` (Prepare, a durable timer of `n` ms) and
/// `"approve"` (Prepare, a wait for the signal `"go"`).
fn registry(worker: &str, ledger: &Ledger) -> Registry {
    let work = {
        let (worker, ledger) = (worker.to_owned(), ledger.clone());
        move |job: &Job| Work {
            n: job.n,
            hold: job.hold,
            poison: job.poison,
            hold_on: job.hold_on.clone(),
            worker: worker.clone(),
            ledger: ledger.clone(),
        }
    };
    // `Prepare`, then the state `Work` the caller registers, then `Done`.
    let prepared = {
        let ledger = ledger.clone();
        move |job: &Job| {
            Workflow::bare()
                .register(
                    Step::Prepare,
                    Prepare {
                        n: job.n,
                        ledger: ledger.clone(),
                    },
                )
                .add_exit_state(Step::Done)
        }
    };
    let ledger = ledger.clone();
    let (work_a, prepared_a, prepared_b, prepared_c, prepared_d) = (
        work.clone(),
        prepared.clone(),
        prepared.clone(),
        prepared.clone(),
        prepared,
    );
    let (nap, approve, flaky, saga) = (ledger.clone(), ledger.clone(), ledger.clone(), ledger);
    Registry::new()
        .register("job", move |job: Job| {
            Ok(prepared_a(&job).register(Step::Work, work_a(&job)))
        })
        .register("nap", move |job: Job| {
            let nap = Nap {
                n: job.n,
                ledger: nap.clone(),
            };
            Ok(prepared_b(&job).register(Step::Work, nap))
        })
        .register("approve", move |job: Job| {
            let approve = Approve {
                n: job.n,
                ledger: approve.clone(),
            };
            Ok(prepared_c(&job).register_signal(Step::Work, approve))
        })
        .register("flaky", move |job: Job| {
            let flaky = Flaky {
                n: job.n,
                ledger: flaky.clone(),
            };
            Ok(prepared_d(&job).register(Step::Work, flaky))
        })
        .register("saga", move |job: Job| {
            let reserve = Reserve {
                n: job.n,
                ledger: saga.clone(),
            };
            Ok(Workflow::bare()
                .register_with_compensation(Step::Prepare, reserve)
                .register(Step::Work, work(&job))
                .add_exit_state(Step::Done))
        })
}

/// A worker `id` on `url`, started on a task of its own: its stop handle and task.
async fn start_worker(
    url: &str,
    id: &str,
    ledger: &Ledger,
    concurrency: usize,
    max_attempts: u32,
) -> (
    CancellationHandle,
    tokio::task::JoinHandle<Result<(), CanoError>>,
) {
    start_worker_with_lease(url, id, ledger, concurrency, max_attempts, LEASE).await
}

/// [`start_worker`] with leases of `lease`.
async fn start_worker_with_lease(
    url: &str,
    id: &str,
    ledger: &Ledger,
    concurrency: usize,
    max_attempts: u32,
    lease: Duration,
) -> (
    CancellationHandle,
    tokio::task::JoinHandle<Result<(), CanoError>>,
) {
    let store = pg_support::worker(url, id, lease).await;
    spawn_worker(store, id, ledger, concurrency, max_attempts)
}

/// A worker on `store` (worker id `id`), started on a task of its own: its stop handle
/// and task.
fn spawn_worker(
    store: PostgresCheckpointStore,
    id: &str,
    ledger: &Ledger,
    concurrency: usize,
    max_attempts: u32,
) -> (
    CancellationHandle,
    tokio::task::JoinHandle<Result<(), CanoError>>,
) {
    let worker = Worker::new(store, registry(id, ledger))
        .with_concurrency(concurrency)
        .with_poll_interval(POLL)
        .with_max_attempts(max_attempts);
    let (stop, token) = CancellationToken::new();
    (stop, tokio::spawn(async move { worker.run(token).await }))
}

/// A plain connection to the database at `url`, behind the cluster's back.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (conn, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    tokio::spawn(connection);
    conn
}

async fn client(url: &str) -> Client {
    let store = PostgresCheckpointStore::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    Client::new(store).with_poll_interval(Duration::from_millis(20))
}

async fn submit(client: &Client, job: &Job) -> String {
    client
        .submit("job", job, &Step::Prepare, None)
        .await
        .unwrap_or_else(|e| panic!("submit: {e}"))
}

fn job(n: u32) -> Job {
    Job {
        n,
        hold: false,
        poison: false,
        hold_on: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_finish_every_run_exactly_once() {
    let Some(url) = pg_support::fresh_database("cluster_once").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let mut runs = Vec::new();
    for n in 0..50 {
        runs.push((n, submit(&client, &job(n)).await));
    }
    let started = std::time::Instant::now();
    // Leases long enough not to expire on a loaded machine: no run changes hands, so
    // each is claimed once.
    let lease = Duration::from_secs(10);
    let (stop_a, a) = start_worker_with_lease(&url, "w-a", &ledger, 4, 5, lease).await;
    let (stop_b, b) = start_worker_with_lease(&url, "w-b", &ledger, 4, 5, lease).await;
    for (n, run) in &runs {
        let status = client.wait(run, WAIT).await.unwrap();
        assert_eq!(status.state, RunState::Succeeded, "{status:?}");
        assert_eq!(status.final_state::<Step>().unwrap(), Some(Step::Done));
        assert_eq!(status.attempts, 1, "{status:?}");
        assert_eq!(status.error, None);
        assert_eq!(ledger.count(*n), (1, 1), "job {n} ran its steps once each");
    }
    eprintln!("50 runs on two workers in {:?}", started.elapsed());
    let workers = ledger.workers.lock().unwrap().clone();
    for id in ["w-a", "w-b"] {
        assert!(
            workers.values().any(|w| w == &[id.to_owned()]),
            "worker {id} ran no run: {workers:?}"
        );
    }
    stop_a.cancel();
    stop_b.cancel();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_group_commit_finish_every_run_once_and_record_failures() {
    let Some(url) = pg_support::fresh_database("cluster_grouped").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let mut runs = Vec::new();
    for n in 0..60 {
        runs.push((n, submit(&client, &job(n)).await));
    }
    let unknown = client
        .submit("nope", &job(99), &Step::Prepare, None)
        .await
        .unwrap();
    let lease = Duration::from_secs(10);
    let mut workers = Vec::new();
    for id in ["w-a", "w-b"] {
        let store = pg_support::worker(&url, id, lease)
            .await
            .with_group_commit();
        workers.push(spawn_worker(store, id, &ledger, 8, 5));
    }
    for (n, run) in &runs {
        let status = client.wait(run, WAIT).await.unwrap();
        assert_eq!(status.state, RunState::Succeeded, "{status:?}");
        assert_eq!(status.final_state::<Step>().unwrap(), Some(Step::Done));
        assert_eq!(status.attempts, 1, "{status:?}");
        assert_eq!(ledger.count(*n), (1, 1), "job {n} ran its steps once each");
    }
    let status = client.wait(&unknown, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Failed, "{status:?}");
    assert!(status.error.unwrap().contains("\"nope\""));
    // Each finished run's log went with its outcome (in the same batch).
    let left: i64 = sql(&url)
        .await
        .query_one("SELECT count(*) FROM cano_checkpoints", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "logs left behind");
    for (stop, worker) in workers {
        stop.cancel();
        worker.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_answers_the_same_run_and_adds_nothing() {
    let Some(url) = pg_support::fresh_database("cluster_idem").await else {
        return;
    };
    let client = client(&url).await;
    let first = client
        .submit("job", &job(1), &Step::Prepare, Some("order-1"))
        .await
        .unwrap();
    let again = client
        .submit("job", &job(2), &Step::Prepare, Some("order-1"))
        .await
        .unwrap();
    assert_eq!(first, again);
    let other = client
        .submit("job", &job(1), &Step::Prepare, Some("order-2"))
        .await
        .unwrap();
    assert_ne!(first, other);
    let unkeyed = [
        submit(&client, &job(1)).await,
        submit(&client, &job(1)).await,
    ];
    assert_ne!(unkeyed[0], unkeyed[1], "no key: two runs");

    let status = client.status(&first).await.unwrap().expect("submitted");
    assert_eq!(
        (status.state, status.workflow.as_str(), status.attempts),
        (RunState::Ready, "job", 0)
    );
    assert_eq!(client.status("no-such-run").await.unwrap(), None);
    let err = client
        .wait("no-such-run", Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no run"), "{err}");
    let err = client
        .wait(&first, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has not ended"), "{err}");

    let conn = sql(&url).await;
    let rows: i64 = conn
        .query_one("SELECT count(*) FROM cano_cluster_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 4, "one run per key, one per unkeyed submit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_a_dropped_worker_is_resumed_by_another_after_its_lease() {
    let Some(url) = pg_support::fresh_database("cluster_takeover").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let run = submit(
        &client,
        &Job {
            n: 7,
            hold: true,
            poison: false,
            hold_on: None,
        },
    )
    .await;
    let (_stop_a, a) = start_worker(&url, "w-a", &ledger, 2, 5).await;
    ledger.holding.notified().await;
    // The worker dies: its task, the run's task and its heartbeat are gone at once.
    a.abort();
    let died = std::time::Instant::now();
    let (stop_b, b) = start_worker(&url, "w-b", &ledger, 2, 5).await;

    let status = client.wait(&run, WAIT).await.unwrap();
    let took = died.elapsed();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    assert_eq!(status.final_state::<Step>().unwrap(), Some(Step::Done));
    assert_eq!(status.worker.as_deref(), Some("w-b"));
    assert_eq!(status.attempts, 2);
    // Resumed from the log: the finished step did not run again; the one in flight did.
    assert_eq!(ledger.count(7), (1, 2));
    assert_eq!(
        ledger.workers.lock().unwrap()[&7],
        ["w-a".to_owned(), "w-b".to_owned()]
    );
    assert!(
        took < LEASE * 2 + Duration::from_secs(2),
        "taken over in {took:?}"
    );
    eprintln!("a dead worker's run finished elsewhere {took:?} after it died");
    stop_b.cancel();
    b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workflows_and_bad_inputs_fail_the_run_with_a_clear_error() {
    let Some(url) = pg_support::fresh_database("cluster_bad").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let unknown = client
        .submit("nope", &job(1), &Step::Prepare, None)
        .await
        .unwrap();
    let bad_input = client
        .submit(
            "job",
            &serde_json::json!({ "n": "seven" }),
            &Step::Prepare,
            None,
        )
        .await
        .unwrap();
    let bad_state = client
        .submit("job", &job(2), &"Teleport", None)
        .await
        .unwrap();
    let fine = submit(&client, &job(3)).await;
    let (stop, worker) = start_worker(&url, "w-a", &ledger, 2, 5).await;

    let status = client.wait(&unknown, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Failed, "{status:?}");
    let error = status.error.unwrap();
    for part in [
        "\"nope\"",
        "does not have",
        "[\"approve\", \"flaky\", \"job\", \"nap\", \"saga\"]",
    ] {
        assert!(error.contains(part), "{part:?} missing: {error}");
    }
    let status = client.wait(&bad_input, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Failed, "{status:?}");
    let error = status.error.unwrap();
    for part in ["input", "does not deserialize", "\"job\"", "seven"] {
        assert!(error.contains(part), "{part:?} missing: {error}");
    }
    let status = client.wait(&bad_state, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Failed, "{status:?}");
    let error = status.error.unwrap();
    assert!(error.contains("initial state"), "{error}");
    assert!(error.contains("Teleport"), "{error}");
    // The worker goes on.
    let status = client.wait(&fine, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_kills_its_worker_each_time_is_parked_and_the_rest_progress() {
    let Some(url) = pg_support::fresh_database("cluster_poison").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let poison = submit(
        &client,
        &Job {
            n: 1,
            hold: false,
            poison: true,
            hold_on: None,
        },
    )
    .await;
    for attempt in 1..=3 {
        let (_stop, worker) = start_worker(&url, &format!("w-{attempt}"), &ledger, 1, 3).await;
        ledger.holding.notified().await;
        worker.abort();
    }
    let fine = submit(&client, &job(2)).await;
    let (stop, worker) = start_worker(&url, "w-last", &ledger, 1, 3).await;
    let status = client.wait(&poison, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Parked, "{status:?}");
    assert_eq!(status.attempts, 3);
    let error = status.error.unwrap();
    assert!(error.contains("parked after 3 attempts"), "{error}");
    assert!(
        error.contains("(last w-3)"),
        "the last worker named: {error}"
    );
    assert_eq!(ledger.count(1).1, 3, "not run a fourth time");
    assert_eq!(
        client.wait(&fine, WAIT).await.unwrap().state,
        RunState::Succeeded
    );
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_shutting_down_hands_its_runs_back_at_once() {
    let Some(url) = pg_support::fresh_database("cluster_handback").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let run = submit(
        &client,
        &Job {
            n: 5,
            hold: true,
            poison: false,
            hold_on: None,
        },
    )
    .await;
    // Leases far longer than the handover may take, and a second worker that only polls
    // once a minute: it takes the run at once only if the run is handed back, and it is
    // told so.
    let lease = Duration::from_secs(10);
    let (stop_a, a) = start_worker_with_lease(&url, "w-a", &ledger, 1, 5, lease).await;
    ledger.holding.notified().await;
    let store = pg_support::worker(&url, "w-b", lease).await;
    let idle =
        Worker::new(store, registry("w-b", &ledger)).with_poll_interval(Duration::from_secs(60));
    let (stop_b, token) = CancellationToken::new();
    let b = tokio::spawn(async move { idle.run(token).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let handed = std::time::Instant::now();
    stop_a.cancel();
    a.await.unwrap().unwrap();
    let status = client.wait(&run, WAIT).await.unwrap();
    let took = handed.elapsed();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    assert_eq!(status.worker.as_deref(), Some("w-b"));
    assert_eq!(status.attempts, 1, "a handed back attempt does not count");
    assert!(took < Duration::from_secs(1), "handed over in {took:?}");
    eprintln!("a shutting down worker's run finished on another {took:?} later");
    stop_b.cancel();
    b.await.unwrap().unwrap();
}

/// Runs claimed ahead of the free slots (`with_prefetch`): a worker of one slot
/// claims four, executes one run's work, and the three others record their first entry
/// and wait (no task of theirs runs); on shutdown all four are handed back at once, the
/// attempt not counted, and another worker finishes each once, resuming where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_claimed_ahead_wait_for_a_slot_and_are_handed_back_on_shutdown() {
    let Some(url) = pg_support::fresh_database("cluster_prefetch").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let mut runs = Vec::new();
    for n in 0..4 {
        let job = Job {
            hold_on: Some("w-a".to_owned()),
            ..job(n)
        };
        runs.push(submit(&client, &job).await);
    }
    let lease = Duration::from_secs(10);
    let store = pg_support::worker(&url, "w-a", lease).await;
    let worker = Worker::new(store, registry("w-a", &ledger))
        .with_concurrency(1)
        .with_prefetch(3)
        .with_poll_interval(POLL);
    let (stop_a, token) = CancellationToken::new();
    let a = tokio::spawn(async move { worker.run(token).await });
    ledger.holding.notified().await;
    // The three others had time to record their first entry and reach their slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let prepared: u32 = (0..4).map(|n| ledger.count(n).0).sum();
    assert_eq!(prepared, 1, "one slot: only one run's task ran");
    let db = sql(&url).await;
    for run in &runs {
        let status = client.status(run).await.unwrap().unwrap();
        assert_eq!(status.state, RunState::Running, "claimed ahead: {status:?}");
        assert_eq!(status.worker.as_deref(), Some("w-a"));
        let rows: i64 = db
            .query_one(
                "SELECT count(*) FROM cano_checkpoints WHERE workflow_id = $1",
                &[run],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            rows >= 1,
            "run {run} recorded its first entry ({rows} rows)"
        );
    }

    let handed = std::time::Instant::now();
    stop_a.cancel();
    a.await.unwrap().unwrap();
    assert!(
        handed.elapsed() < Duration::from_secs(1),
        "handed back in {:?}",
        handed.elapsed()
    );
    let (stop_b, b) = start_worker_with_lease(&url, "w-b", &ledger, 4, 5, lease).await;
    for run in &runs {
        let status = client.wait(run, WAIT).await.unwrap();
        assert_eq!(status.state, RunState::Succeeded, "{status:?}");
        assert_eq!(status.worker.as_deref(), Some("w-b"));
        assert_eq!(status.attempts, 1, "a handed back attempt does not count");
    }
    for n in 0..4 {
        let (prepare, work) = ledger.count(n);
        assert_eq!(
            prepare, 1,
            "job {n}: Prepare ran once, on one worker or the other"
        );
        assert!((1..=2).contains(&work), "job {n}: Work ran {work} times");
    }
    let works: u32 = (0..4).map(|n| ledger.count(n).1).sum();
    assert_eq!(works, 5, "Work ran once per run, plus the one held on w-a");
    stop_b.cancel();
    b.await.unwrap().unwrap();
}

/// With runs claimed ahead and group commit, a worker still executes at most its
/// concurrency of runs' tasks at once, and finishes every run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_claiming_ahead_executes_at_most_its_concurrency() {
    let Some(url) = pg_support::fresh_database("cluster_prefetch_limit").await else {
        return;
    };
    let client = client(&url).await;
    let slow = Slow::default();
    let registry = slow_registry(&slow);
    let store = pg_support::worker(&url, "w-a", Duration::from_secs(10))
        .await
        .with_group_commit();
    let worker = Worker::new(store, registry)
        .with_concurrency(2)
        .with_prefetch(4)
        .with_poll_interval(POLL);
    let (stop, token) = CancellationToken::new();
    let running = tokio::spawn(async move { worker.run(token).await });
    for status in twelve_slow_runs(&client).await {
        assert_eq!(status.attempts, 1, "{status:?}");
    }
    let most = slow.most.load(Ordering::SeqCst);
    assert_eq!(
        most, 2,
        "{most} runs' tasks at once on a worker of two slots"
    );
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[test]
fn the_client_worker_and_their_futures_are_send() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Client>();
    shared::<Worker>();
    shared::<Registry>();
    fn send<T: Send>(_: &T) {}
    fn futures(client: &Client, worker: &Worker) {
        send(&client.submit("job", &job(1), &Step::Prepare, None));
        send(&client.status("run"));
        send(&client.wait("run", WAIT));
        send(&worker.run(CancellationToken::disabled()));
    }
    let _ = futures;
}

/// A store whose `clear` does nothing: a run through it ends with its whole log kept, as
/// a worker that died after its run ended but before recording the outcome leaves it.
struct KeepLog(PostgresCheckpointStore);

impl cano::CheckpointStore for KeepLog {
    fn append<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
        row: cano::CheckpointRow,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        self.0.append(workflow_id, row)
    }

    fn load_run<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<Vec<cano::CheckpointRow>, CanoError>> + Send + 'async_trait>,
    >
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        self.0.load_run(workflow_id)
    }

    fn clear<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _workflow_id: &'life1 str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_ended_without_its_outcome_recorded_is_not_run_again() {
    let Some(url) = pg_support::fresh_database("cluster_ended").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let run = submit(&client, &job(9)).await;
    // A worker ran it to its end and died before recording the outcome: the run is still
    // `running` (attempt 1, no heartbeat since), its log complete and not cleared.
    let store = PostgresCheckpointStore::connect(&url).await.unwrap();
    let conn = sql(&url).await;
    conn.execute(
        "UPDATE cano_cluster_runs SET status = 'running', attempts = 1, worker = 'ghost', \
         heartbeat_at = now() - interval '1 hour' WHERE run_id = $1",
        &[&run],
    )
    .await
    .unwrap();
    let end = Workflow::bare()
        .register(
            Step::Prepare,
            Prepare {
                n: 9,
                ledger: ledger.clone(),
            },
        )
        .register(
            Step::Work,
            Work {
                n: 9,
                hold: false,
                poison: false,
                hold_on: None,
                worker: "ghost".into(),
                ledger: ledger.clone(),
            },
        )
        .add_exit_state(Step::Done)
        .with_checkpoint_store(Arc::new(KeepLog(store.clone())))
        .orchestrate_with_id(run.as_str(), Step::Prepare)
        .await
        .unwrap();
    assert_eq!(end, Step::Done);
    assert!(
        !cano::CheckpointStore::load_run(&store, &run)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ledger.count(9), (1, 1));

    let (stop, worker) = start_worker(&url, "w-a", &ledger, 1, 5).await;
    let status = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    assert_eq!(status.final_state::<Step>().unwrap(), Some(Step::Done));
    assert_eq!(
        (status.attempts, status.worker.as_deref()),
        (2, Some("w-a"))
    );
    assert_eq!(
        ledger.count(9),
        (1, 1),
        "resumed at its end: no step ran again"
    );
    assert!(
        cano::CheckpointStore::load_run(&store, &run)
            .await
            .unwrap()
            .is_empty()
    );
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_wakes_an_idle_worker_without_waiting_for_its_poll() {
    let Some(url) = pg_support::fresh_database("cluster_notify").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let store = pg_support::worker(&url, "w-slow", LEASE).await;
    let worker =
        Worker::new(store, registry("w-slow", &ledger)).with_poll_interval(Duration::from_secs(60));
    let (stop, token) = CancellationToken::new();
    let running = tokio::spawn(async move { worker.run(token).await });
    // The worker has polled once (nothing ready) and listens.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let submitted = std::time::Instant::now();
    let run = submit(&client, &job(4)).await;
    let status = client.wait(&run, Duration::from_secs(20)).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    let took = submitted.elapsed();
    assert!(took < Duration::from_secs(5), "woken after {took:?}");
    eprintln!("a submitted run finished {took:?} later on a worker polling every minute");
    stop.cancel();
    running.await.unwrap().unwrap();
}

/// Counts how many of its runs are in it at once.
#[derive(Clone, Default)]
struct Slow {
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

#[task(state = Step)]
impl Slow {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(TaskResult::Single(Step::Done))
    }
}

/// The workflow `"slow"`: one `Slow` task.
fn slow_registry(slow: &Slow) -> Registry {
    let slow = slow.clone();
    Registry::new().register("slow", move |_: serde_json::Value| {
        Ok(Workflow::bare()
            .register(Step::Work, slow.clone())
            .add_exit_state(Step::Done))
    })
}

/// Submit twelve runs of `"slow"` and wait for each: each succeeded; their statuses.
async fn twelve_slow_runs(client: &Client) -> Vec<cano::cluster::RunStatus> {
    let mut runs = Vec::new();
    for n in 0..12 {
        runs.push(
            client
                .submit("slow", &serde_json::json!({ "n": n }), &Step::Work, None)
                .await
                .unwrap(),
        );
    }
    let mut statuses = Vec::new();
    for run in &runs {
        let status = client.wait(run, WAIT).await.unwrap();
        assert_eq!(status.state, RunState::Succeeded, "{status:?}");
        statuses.push(status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limit_holds_across_workers() {
    let Some(url) = pg_support::fresh_database("cluster_queue_limit").await else {
        return;
    };
    let client = client(&url).await;
    let slow = Slow::default();
    let registry = slow_registry(&slow);
    let mut workers = Vec::new();
    for id in ["w-a", "w-b", "w-c"] {
        let store = pg_support::worker(&url, id, Duration::from_secs(10)).await;
        let worker = Worker::new(store, registry.clone())
            .with_concurrency(4)
            .with_queue_limit(2)
            .with_poll_interval(POLL);
        let (stop, token) = CancellationToken::new();
        workers.push((stop, tokio::spawn(async move { worker.run(token).await })));
    }
    twelve_slow_runs(&client).await;
    let most = slow.most.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} runs of the queue at once");
    for (stop, worker) in workers {
        stop.cancel();
        worker.await.unwrap().unwrap();
    }
}

/// Runs for `ms` milliseconds, counting its starts.
#[derive(Clone)]
struct Long {
    ms: u64,
    started: Arc<AtomicUsize>,
}

#[task(state = Step)]
impl Long {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(TaskResult::Single(Step::Done))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_held_up_in_the_database_holds_up_no_heartbeat_nor_a_shutdown() {
    let Some(url) = pg_support::fresh_database("cluster_claim_held_up").await else {
        return;
    };
    let client = client(&url).await;
    let started = Arc::new(AtomicUsize::new(0));
    let registry = {
        let started = Arc::clone(&started);
        Registry::new().register("long", move |input: serde_json::Value| {
            let ms = input["ms"].as_u64().unwrap_or(0);
            let task = Long {
                ms,
                started: Arc::clone(&started),
            };
            Ok(Workflow::bare()
                .register(Step::Work, task)
                .add_exit_state(Step::Done))
        })
    };
    // A queue limit makes each claim take the queue's lock first; with a free slot the
    // worker claims every poll.
    let store = pg_support::worker(&url, "w-held-up", LEASE).await;
    let worker = Worker::new(store, registry)
        .with_concurrency(3)
        .with_queue_limit(3)
        .with_poll_interval(POLL);
    let (stop, token) = CancellationToken::new();
    let running = tokio::spawn(async move { worker.run(token).await });
    let long = |ms: u64| {
        let client = &client;
        async move {
            client
                .submit("long", &serde_json::json!({ "ms": ms }), &Step::Work, None)
                .await
                .unwrap()
        }
    };
    // Five leases, and one that outlasts the test.
    let (short, in_hand) = (long(1_500).await, long(60_000).await);
    until_state(&client, &short, RunState::Running).await;
    until_state(&client, &in_hand, RunState::Running).await;
    // Hold the queue's lock: the worker's next claim waits for it.
    let mut blocker = sql(&url).await;
    let held = blocker.transaction().await.unwrap();
    held.execute(
        "SELECT pg_advisory_xact_lock(hashtext('cano_cluster_queue:' || $1))",
        &[&cano::cluster::DEFAULT_QUEUE],
    )
    .await
    .unwrap();
    // The heartbeat keeps the leases while the claim waits: the short run ends on its
    // first attempt, each task started once.
    let status = client.wait(&short, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    assert_eq!(status.attempts, 1, "{status:?}");
    assert_eq!(started.load(Ordering::SeqCst), 2);
    // A shutdown while the claim waits hands the run in hand back at once, and what the
    // claim takes once it is answered.
    let other = long(0).await;
    stop.cancel();
    let asked = std::time::Instant::now();
    let status = until_state(&client, &in_hand, RunState::Ready).await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "handed back after {:?}",
        asked.elapsed()
    );
    assert_eq!(status.attempts, 0, "{status:?}");
    held.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the worker stops once its claim is answered")
        .unwrap()
        .unwrap();
    let status = client.status(&other).await.unwrap().unwrap();
    assert_eq!(status.state, RunState::Ready, "{status:?}");
    assert_eq!(status.attempts, 0, "{status:?}");
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "no task of the runs handed back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_ended_runs_in_batches_and_keeps_the_rest() {
    let Some(url) = pg_support::fresh_database("cluster_prune").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let failed = client
        .submit("nope", &job(0), &Step::Prepare, None)
        .await
        .unwrap();
    let mut ended = vec![failed];
    for n in 1..3 {
        ended.push(submit(&client, &job(n)).await);
    }
    let (stop, worker) = start_worker(&url, "w-a", &ledger, 2, 5).await;
    for run in &ended {
        assert!(client.wait(run, WAIT).await.unwrap().state.is_finished());
    }
    stop.cancel();
    worker.await.unwrap().unwrap();
    let waiting = submit(&client, &job(3)).await;

    assert_eq!(
        client.prune(Duration::from_secs(3600), 10).await.unwrap(),
        0
    );
    assert_eq!(client.prune(Duration::ZERO, 2).await.unwrap(), 2);
    assert_eq!(client.prune(Duration::ZERO, 2).await.unwrap(), 1);
    assert_eq!(client.prune(Duration::ZERO, 2).await.unwrap(), 0);
    for run in &ended {
        assert_eq!(client.status(run).await.unwrap(), None);
    }
    let status = client.status(&waiting).await.unwrap().expect("kept");
    assert_eq!(status.state, RunState::Ready);
    let conn = sql(&url).await;
    let left: i64 = conn
        .query_one(
            "SELECT (SELECT count(*) FROM cano_checkpoints) + (SELECT count(*) FROM cano_runs)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no log or lease of a pruned run is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_trouble_is_reported_to_the_hook_and_the_worker_goes_on() {
    let Some(url) = pg_support::fresh_database("cluster_trouble").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let conn = sql(&url).await;
    // The runs table is gone for a while (a botched manual change, say).
    conn.batch_execute("ALTER TABLE cano_cluster_runs RENAME TO cano_cluster_runs_away")
        .await
        .unwrap();
    let reported: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = pg_support::worker(&url, "w-a", LEASE).await;
    let worker = Worker::new(store, registry("w-a", &ledger))
        .with_poll_interval(POLL)
        .with_error_hook({
            let reported = Arc::clone(&reported);
            move |doing, error| reported.lock().unwrap().push(format!("{doing}: {error}"))
        });
    let (stop, token) = CancellationToken::new();
    let running = tokio::spawn(async move { worker.run(token).await });
    // The first claim fails at once; a loaded machine may take a while to get there.
    let claim_reported = || {
        reported
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("claiming ready runs") && r.contains("cano_cluster_runs"))
    };
    let looking = std::time::Instant::now();
    while !claim_reported() && looking.elapsed() < WAIT {
        tokio::time::sleep(POLL).await;
    }
    assert!(claim_reported(), "{:?}", reported.lock().unwrap());
    assert!(!running.is_finished(), "the worker goes on");
    conn.batch_execute("ALTER TABLE cano_cluster_runs_away RENAME TO cano_cluster_runs")
        .await
        .unwrap();
    let run = submit(&client, &job(1)).await;
    let status = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_run_wherever_it_is_and_compensates_its_saga_steps_once() {
    let Some(url) = pg_support::fresh_database("cluster_cancel").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let held = |n| Job {
        n,
        hold: true,
        poison: false,
        hold_on: None,
    };

    // Not started (no worker yet): it ends at once.
    let unstarted = submit(&client, &job(1)).await;
    assert_eq!(
        client.cancel(&unstarted).await.unwrap(),
        CancelOutcome::Cancelled
    );
    let status = client.status(&unstarted).await.unwrap().unwrap();
    assert_eq!(status.state, RunState::Cancelled, "{status:?}");
    assert!(status.cancel_requested);
    assert_eq!(
        status.error.as_deref(),
        Some("cluster: cancelled before it started")
    );

    // Running a saga, held in Work: the worker is woken (its heartbeat comes only every
    // 10 s with these leases), drops the task and compensates Reserve once.
    let lease = Duration::from_secs(30);
    let (stop_a, a) = start_worker_with_lease(&url, "w-a", &ledger, 2, 5, lease).await;
    let running = client
        .submit("saga", &held(2), &Step::Prepare, None)
        .await
        .unwrap();
    ledger.holding.notified().await;
    // The worker's listening connection opens beside its first claim: on a loaded machine
    // it may still be connecting (a cancel sent before it listens is found by the next
    // heartbeat, 10 s away here).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = std::time::Instant::now();
    assert_eq!(
        client.cancel(&running).await.unwrap(),
        CancelOutcome::Requested
    );
    let status = client.wait(&running, WAIT).await.unwrap();
    let took = asked.elapsed();
    assert_eq!(status.state, RunState::Cancelled, "{status:?}");
    assert!(
        status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cancelled in state Work")),
        "{status:?}"
    );
    assert!(took < Duration::from_secs(5), "cancelled in {took:?}");
    eprintln!("a running run was cancelled {took:?} after the client asked");
    assert_eq!(
        ledger.count(1002),
        (1, 1),
        "Reserve ran once, compensated once"
    );
    assert_eq!(ledger.count(2).1, 1, "Work ran once");
    let store = pg_support::worker(&url, "reader", lease).await;
    assert!(
        store.load_run(&running).await.unwrap().is_empty(),
        "log cleared"
    );
    // Asking again changes nothing.
    assert_eq!(
        client.cancel(&running).await.unwrap(),
        CancelOutcome::AlreadyEnded(RunState::Cancelled)
    );
    stop_a.cancel();
    a.await.unwrap().unwrap();

    // Waiting to be resumed (its worker died in Work): the next worker to claim it runs
    // no task and compensates Reserve.
    let (_stop_b, b) = start_worker(&url, "w-b", &ledger, 1, 5).await;
    let orphan = client
        .submit("saga", &held(3), &Step::Prepare, None)
        .await
        .unwrap();
    ledger.holding.notified().await;
    b.abort();
    assert_eq!(
        client.cancel(&orphan).await.unwrap(),
        CancelOutcome::Requested
    );
    let (stop_c, c) = start_worker(&url, "w-c", &ledger, 1, 5).await;
    let status = client.wait(&orphan, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Cancelled, "{status:?}");
    assert_eq!(status.worker.as_deref(), Some("w-c"));
    assert_eq!(
        ledger.count(1003),
        (1, 1),
        "Reserve ran once, compensated once"
    );
    assert_eq!(ledger.count(3).1, 1, "Work did not run again");
    assert!(
        store.load_run(&orphan).await.unwrap().is_empty(),
        "log cleared"
    );

    let err = client.cancel("no-such-run").await.unwrap_err();
    assert!(
        err.to_string().contains("there is no run \"no-such-run\""),
        "{err}"
    );
    stop_c.cancel();
    c.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_resumes_a_failed_run_from_its_log_and_refuses_other_runs() {
    let Some(url) = pg_support::fresh_database("cluster_retry").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let (stop, worker) = start_worker(&url, "w-a", &ledger, 1, 5).await;
    let run = client
        .submit("flaky", &job(4), &Step::Prepare, None)
        .await
        .unwrap();
    let status = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Failed, "{status:?}");
    assert_eq!(ledger.count(4), (1, 1));

    client.retry(&run).await.unwrap();
    let status = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    assert_eq!(status.final_state::<Step>().unwrap(), Some(Step::Done));
    assert_eq!(
        status.attempts, 1,
        "attempts count from zero again: {status:?}"
    );
    // Resumed where it failed: Prepare did not run again.
    assert_eq!(ledger.count(4), (1, 2));

    let err = client.retry(&run).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("is succeeded: only a failed or parked run can be retried"),
        "{err}"
    );
    let err = client.retry("no-such-run").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("there is no run \"no-such-run\" to retry"),
        "{err}"
    );
    stop.cancel();
    worker.await.unwrap().unwrap();
}

/// Wait until run `run_id` is `state` (polling its status).
async fn until_state(client: &Client, run_id: &str, state: RunState) -> cano::cluster::RunStatus {
    let started = std::time::Instant::now();
    loop {
        let status = client.status(run_id).await.unwrap().unwrap();
        if status.state == state {
            return status;
        }
        assert!(started.elapsed() < WAIT, "never {state:?}: {status:?}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_run_holds_no_worker_slot_and_fires_once_after_every_worker_was_down() {
    let Some(url) = pg_support::fresh_database("cluster_nap").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let lease = Duration::from_secs(10);
    // One slot: the nap gives it back while it sleeps, so the next run can have it.
    let (stop_a, a) = start_worker_with_lease(&url, "w-a", &ledger, 1, 5, lease).await;
    let submitted = std::time::Instant::now();
    let nap = client
        .submit("nap", &job(3000), &Step::Prepare, None)
        .await
        .unwrap();
    let waiting = until_state(&client, &nap, RunState::Waiting).await;
    assert!(waiting.wake_at.is_some(), "{waiting:?}");
    assert_eq!(waiting.waiting_for, None);
    let quick = submit(&client, &job(7)).await;
    let status = client.wait(&quick, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    assert_eq!(status.worker.as_deref(), Some("w-a"));
    let nap_now = client.status(&nap).await.unwrap().unwrap();
    assert_eq!(
        nap_now.state,
        RunState::Waiting,
        "still asleep: {nap_now:?}"
    );

    // Every worker goes away until past the deadline; a new one fires the timer once.
    stop_a.cancel();
    a.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(submitted.elapsed())).await;
    assert_eq!(ledger.count(5000).1, 0, "not fired while no worker ran");
    let (stop_b, b) = start_worker_with_lease(&url, "w-b", &ledger, 1, 5, lease).await;
    let status = client.wait(&nap, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    assert_eq!(status.worker.as_deref(), Some("w-b"));
    assert_eq!(
        status.attempts, 1,
        "a run given back while it waits counts no attempt"
    );
    assert_eq!(ledger.count(3000), (1, 0), "Prepare ran once");
    assert_eq!(ledger.count(5000).1, 1, "the timer fired once");
    assert!(submitted.elapsed() >= Duration::from_millis(3000));
    stop_b.cancel();
    b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_while_no_worker_has_the_run_wakes_it_and_is_consumed_once() {
    let Some(url) = pg_support::fresh_database("cluster_signal").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let lease = Duration::from_secs(10);
    let (stop_a, a) = start_worker_with_lease(&url, "w-a", &ledger, 1, 5, lease).await;
    let run = client
        .submit("approve", &job(1), &Step::Prepare, None)
        .await
        .unwrap();
    let waiting = until_state(&client, &run, RunState::Waiting).await;
    assert_eq!(waiting.waiting_for.as_deref(), Some("go"), "{waiting:?}");
    assert_eq!(waiting.wake_at, None);
    // Another run waits too, and is cancelled while it waits.
    let doomed = client
        .submit("approve", &job(2), &Step::Prepare, None)
        .await
        .unwrap();
    until_state(&client, &doomed, RunState::Waiting).await;
    stop_a.cancel();
    a.await.unwrap().unwrap();

    // No worker: the signal is kept in the database (sent twice: consumed once).
    let store = pg_support::worker(&url, "sender", lease).await;
    for _ in 0..2 {
        cano::signal::send(
            &store,
            &run,
            Signal::from_json("go", "sig-1", "42").unwrap(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        client.cancel(&doomed).await.unwrap(),
        CancelOutcome::Requested
    );
    let (stop_b, b) = start_worker_with_lease(&url, "w-b", &ledger, 1, 5, lease).await;
    let status = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    assert_eq!(status.worker.as_deref(), Some("w-b"));
    assert_eq!(
        ledger.count(3001),
        (42, 1),
        "consumed once, with its payload"
    );
    assert_eq!(ledger.count(1), (1, 0), "Prepare ran once");
    let status = client.wait(&doomed, WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Cancelled, "{status:?}");
    assert_eq!(
        ledger.count(3002).1,
        0,
        "the cancelled run consumed nothing"
    );
    stop_b.cancel();
    b.await.unwrap().unwrap();
}

/// The ticks (RFC 3339) of the runs schedule `name` started, in order.
#[cfg(feature = "scheduler")]
async fn cron_ticks(url: &str, name: &str) -> Vec<String> {
    let conn = sql(url).await;
    let prefix = format!("cron:{name}:");
    conn.query(
        "SELECT idempotency_key FROM cano_cluster_runs WHERE idempotency_key LIKE $1 || '%' \
         ORDER BY idempotency_key",
        &[&prefix],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| row.get::<_, String>(0)[prefix.len()..].to_owned())
    .collect()
}

/// Sleep until 50 ms past the next whole second of the wall clock (the database's, on
/// this machine), so that a cron look of a few milliseconds sees no tick come meanwhile.
#[cfg(feature = "scheduler")]
async fn just_past_a_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    tokio::time::sleep(Duration::from_secs(1) - into + Duration::from_millis(50)).await;
}

/// Whether `ticks` (RFC 3339, whole seconds) follow each other a second apart.
#[cfg(feature = "scheduler")]
fn one_second_apart(ticks: &[String]) -> bool {
    let secs: Vec<i64> = ticks
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp())
        .collect();
    secs.windows(2).all(|w| w[1] - w[0] == 1)
}

#[cfg(feature = "scheduler")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_on_three_nodes_starts_exactly_one_run_per_tick() {
    use cano::cluster::{Cron, Misfire};
    let Some(url) = pg_support::fresh_database("cluster_cron").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let (stop_w, w) = start_worker(&url, "w-a", &ledger, 4, 5).await;
    let mut nodes = Vec::new();
    for node in ["n-1", "n-2", "n-3"] {
        let store = pg_support::worker(&url, node, LEASE).await;
        let cron = Cron::new(store)
            .with_poll_interval(Duration::from_millis(50))
            .schedule(
                "every-second",
                "* * * * * *",
                "job",
                &job(900),
                &Step::Prepare,
                Misfire::RunAll,
            )
            .unwrap();
        let (stop, token) = CancellationToken::new();
        nodes.push((stop, tokio::spawn(async move { cron.run(token).await })));
    }
    tokio::time::sleep(Duration::from_millis(3300)).await;
    for (stop, node) in nodes {
        stop.cancel();
        node.await.unwrap().unwrap();
    }
    let ticks = cron_ticks(&url, "every-second").await;
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert!(one_second_apart(&ticks), "no tick lost: {ticks:?}");
    // Each tick's run ran once.
    let conn = sql(&url).await;
    for row in conn
        .query(
            "SELECT run_id FROM cano_cluster_runs WHERE idempotency_key LIKE 'cron:%'",
            &[],
        )
        .await
        .unwrap()
    {
        let status = client.wait(row.get(0), WAIT).await.unwrap();
        assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    }
    let n = u32::try_from(ticks.len()).unwrap();
    assert_eq!(ledger.count(900), (n, n), "one run per tick: {ticks:?}");
    eprintln!("three cron nodes started {n} runs for {n} ticks: {ticks:?}");
    stop_w.cancel();
    w.await.unwrap().unwrap();
}

#[cfg(feature = "scheduler")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_every_node_was_down_follow_the_misfire_policy() {
    use cano::cluster::{Cron, Misfire};
    let Some(url) = pg_support::fresh_database("cluster_misfire").await else {
        return;
    };
    let store = pg_support::worker(&url, "n-1", LEASE).await;
    let mut cron = Cron::new(store).with_misfire_after(Duration::from_secs(2));
    for (name, misfire) in [
        ("skip", Misfire::Skip),
        ("once", Misfire::RunOnce),
        ("all", Misfire::RunAll),
    ] {
        cron = cron
            .schedule(name, "* * * * * *", "job", &job(1), &Step::Prepare, misfire)
            .unwrap();
    }
    // Seen once: the schedules start from the database's clock; then every node is down
    // for ten seconds.
    just_past_a_second().await;
    cron.tick().await.unwrap();
    let conn = sql(&url).await;
    conn.batch_execute(
        "UPDATE cano_cluster_schedules SET last_tick = last_tick - interval '10 seconds'",
    )
    .await
    .unwrap();
    // Each look runs the three schedules one after another: started just after a whole
    // second, they all see the same on-time ticks.
    just_past_a_second().await;
    let started = cron.tick().await.unwrap();
    let (skip, once, all) = (
        cron_ticks(&url, "skip").await,
        cron_ticks(&url, "once").await,
        cron_ticks(&url, "all").await,
    );
    assert_eq!(started.len(), skip.len() + once.len() + all.len());
    assert!(skip.len() <= 3, "only the ticks of the last 2 s: {skip:?}");
    assert_eq!(
        once.len(),
        skip.len() + 1,
        "one for the missed ticks: {once:?}"
    );
    assert!(all.len() >= 10, "every missed tick: {all:?}");
    assert!(one_second_apart(&all), "{all:?}");
    assert_eq!(&all[all.len() - skip.len()..], skip.as_slice());
    // A second look starts no missed tick again (only ticks that came since, if any).
    just_past_a_second().await;
    cron.tick().await.unwrap();
    let grown = [
        cron_ticks(&url, "skip").await.len() - skip.len(),
        cron_ticks(&url, "once").await.len() - once.len(),
        cron_ticks(&url, "all").await.len() - all.len(),
    ];
    assert!(grown[0] <= 1 && grown == [grown[0]; 3], "{grown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_retention_deletes_ended_runs_and_keeps_the_rest() {
    let Some(url) = pg_support::fresh_database("cluster_retention").await else {
        return;
    };
    let client = client(&url).await;
    let ledger = Ledger::default();
    let store = pg_support::worker(&url, "w-a", LEASE).await;
    let worker = Worker::new(store, registry("w-a", &ledger))
        .with_poll_interval(POLL)
        .with_retention(Duration::from_secs(1));
    let (stop, token) = CancellationToken::new();
    let running = tokio::spawn(async move { worker.run(token).await });
    let mut ended = Vec::new();
    for n in 0..3 {
        let run = submit(&client, &job(n)).await;
        assert_eq!(
            client.wait(&run, WAIT).await.unwrap().state,
            RunState::Succeeded
        );
        ended.push(run);
    }
    // A run that keeps going is never deleted.
    let held = submit(
        &client,
        &Job {
            n: 9,
            hold: true,
            poison: false,
            hold_on: None,
        },
    )
    .await;
    ledger.holding.notified().await;
    let started = std::time::Instant::now();
    for run in &ended {
        while client.status(run).await.unwrap().is_some() {
            assert!(started.elapsed() < WAIT, "run {run} never pruned");
            tokio::time::sleep(POLL).await;
        }
    }
    let took = started.elapsed();
    eprintln!("ended runs deleted {took:?} after they were past their retention");
    let status = client.status(&held).await.unwrap().unwrap();
    assert_eq!(status.state, RunState::Running, "{status:?}");
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_batch_adds_every_run_in_one_statement_and_answers_earlier_runs_for_taken_keys() {
    let Some(url) = pg_support::fresh_database("cluster_batch").await else {
        return;
    };
    let client = client(&url).await;
    let earlier = client
        .submit("job", &job(0), &Step::Prepare, Some("k-0"))
        .await
        .unwrap();
    assert!(
        client
            .submit_batch::<Job, Step>(&[])
            .await
            .unwrap()
            .is_empty()
    );
    let jobs = [job(0), job(1), job(2), job(3)];
    let ids = client
        .submit_batch(&[
            ("job", &jobs[0], &Step::Prepare, Some("k-0")), // taken before
            ("job", &jobs[1], &Step::Prepare, Some("k-1")),
            ("job", &jobs[2], &Step::Prepare, None),
            ("job", &jobs[3], &Step::Prepare, Some("k-1")), // taken in this batch
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], earlier, "a taken key answers the earlier run");
    assert_eq!(
        ids[3], ids[1],
        "a key taken earlier in the batch answers that run"
    );
    assert!(ids[1] != earlier && ids[2] != earlier && ids[1] != ids[2]);
    // A run that does not serialize fails the whole batch before anything is sent.
    let bad = serde_json::json!({ "n": 6, "note": "a\u{0}b" });
    let refused = client
        .submit_batch(&[
            (
                "job",
                &serde_json::json!({ "n": 5 }),
                &Step::Prepare,
                Some("k-5"),
            ),
            ("job", &bad, &Step::Prepare, Some("k-6")),
        ])
        .await
        .unwrap_err();
    assert_eq!(refused.category(), "configuration", "{refused}");
    assert!(refused.to_string().contains("NUL"), "{refused}");

    let ledger = Ledger::default();
    let (stop, worker) = start_worker(&url, "w-batch", &ledger, 2, 5).await;
    for run in [&earlier, &ids[1], &ids[2]] {
        let status = client.wait(run, WAIT).await.unwrap();
        assert_eq!(status.state, RunState::Succeeded, "{status:?}");
        assert_eq!(status.final_state::<Step>().unwrap(), Some(Step::Done));
    }
    stop.cancel();
    worker.await.unwrap().unwrap();
    for n in 0..3 {
        assert_eq!(ledger.count(n), (1, 1), "job {n} ran once");
    }
    let db = sql(&url).await;
    let runs: i64 = db
        .query_one("SELECT count(*) FROM cano_cluster_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        runs, 3,
        "the duplicates and the refused batch added nothing"
    );
    assert_eq!(ledger.count(3), (0, 0));
}

/// The `application_name` of the connections that only look ([`status_counts`]): the
/// crash test's connection killer spares them.
const LOOKER: &str = "cano-test-looker";

/// The statuses of every run in the database at `url`, counted.
async fn status_counts(url: &str) -> HashMap<String, i64> {
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.application_name(LOOKER);
    let (conn, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    tokio::spawn(connection);
    conn.query(
        "SELECT status, count(*) FROM cano_cluster_runs GROUP BY status",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_restart_with_1000_runs_in_flight_loses_none() {
    const RUNS: u32 = 1000;
    // A server of its own: the restart cuts every connection to it.
    if pg_support::server().await.is_none() {
        return;
    }
    let server = cano::recovery::postgres::TempPostgres::start()
        .await
        .unwrap();
    let url = server.create_database("restart").await.unwrap();
    let client = client(&url).await;
    let ledger = Ledger::default();
    // Every run is submitted before the workers start, so that most are still to run when
    // the server goes down.
    let jobs: Vec<Job> = (0..RUNS).map(job).collect();
    let mut runs = Vec::new();
    for batch in jobs.chunks(100) {
        let batch: Vec<_> = batch
            .iter()
            .map(|job| ("job", job, &Step::Prepare, None))
            .collect();
        runs.extend(client.submit_batch(&batch).await.unwrap());
    }
    let started = std::time::Instant::now();
    let mut workers = Vec::new();
    for id in ["w-a", "w-b"] {
        // Long polls: a worker finds work by notifications (and whenever a slot frees).
        let store = pg_support::worker(&url, id, Duration::from_secs(2)).await;
        let worker = Worker::new(store, registry(id, &ledger))
            .with_concurrency(16)
            .with_poll_interval(Duration::from_secs(10))
            .with_max_attempts(20);
        let (stop, token) = CancellationToken::new();
        workers.push((stop, tokio::spawn(async move { worker.run(token).await })));
    }
    // Connections are cut one by one while runs are going (a commit's answer may be lost
    // with them), and the server crashes and comes back.
    let killer = {
        let url = url.clone();
        tokio::spawn(async move {
            let conn = sql(&url).await;
            let mut killed = 0_i64;
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                killed += conn
                    .query_one(
                        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM \
                         pg_stat_activity WHERE datname = current_database() AND \
                         pid <> pg_backend_pid() AND state = 'active' AND \
                         application_name <> $1 LIMIT 1) AS k",
                        &[&LOOKER],
                    )
                    .await
                    .map(|row| row.get::<_, i64>(0))
                    .unwrap_or(0);
            }
            killed
        })
    };
    let done = |counts: &HashMap<String, i64>| counts.get("succeeded").copied().unwrap_or(0);
    while done(&status_counts(&url).await) < i64::from(RUNS) / 10 {
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = status_counts(&url).await;
    assert!(
        done(&before) < i64::from(RUNS),
        "the crash must come while runs are in flight: {before:?}"
    );
    server.restart().await.unwrap();
    eprintln!(
        "restarted PostgreSQL (immediate) with {before:?}; cut {} busy connections before",
        killer.await.unwrap()
    );
    for run in &runs {
        let status = client.wait(run, Duration::from_secs(120)).await.unwrap();
        assert_eq!(status.state, RunState::Succeeded, "{status:?}");
    }
    let twice = (0..RUNS)
        .filter(|n| {
            let (prepare, work) = ledger.count(*n);
            assert!(prepare >= 1 && work >= 1, "job {n}: {prepare} {work}");
            prepare + work > 2
        })
        .count();
    eprintln!(
        "{RUNS} runs through a crash restart in {:?}; {twice} ran a step again",
        started.elapsed()
    );
    // Only a step in flight at the crash runs again (its next state's row was not
    // written): at most the runs the two workers had in hand.
    assert!(twice <= 32, "{twice} runs ran a step again");
    assert_eq!(
        status_counts(&url).await,
        HashMap::from([("succeeded".to_owned(), i64::from(RUNS))])
    );
    // Every run's log was cleared with its outcome, once.
    let store = pg_support::worker(&url, "reader", LEASE).await;
    for run in runs.iter().step_by(50) {
        assert!(store.load_run(run).await.unwrap().is_empty(), "{run}");
    }

    // The workers listen again (their listening connections are opened again within
    // about a second of the server's return): a new run is taken at once, not at the next
    // poll.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in 0..3 {
        let asked = std::time::Instant::now();
        let run = submit(&client, &job(RUNS + n)).await;
        client.wait(&run, WAIT).await.unwrap();
        let took = asked.elapsed();
        assert!(took < Duration::from_secs(2), "taken after {took:?}");
    }
    for (stop, worker) in workers {
        stop.cancel();
        worker.await.unwrap().unwrap();
    }
    server.stop().await.unwrap();
}
