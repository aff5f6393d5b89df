//! The cluster under fire: sagas run through four worker processes while one of them is
//! SIGKILLed (and started again) every two seconds. A ledger written by the database in
//! the same transaction as each step's record shows that every run ended exactly once,
//! that no record was committed twice, and that every compensated saga step was
//! compensated at most once (exactly once for the runs that roll back). The side effects
//! the tasks themselves perform may repeat only for the steps in flight at a kill.
//!
//! The ledger: triggers on the store's tables, installed before the workers start.
//! `AFTER INSERT ON cano_checkpoints` copies every committed log row (a state entry, a
//! compensatable step's completion, a compensation) into `ledger`, and `AFTER UPDATE OF
//! status ON cano_cluster_runs` records every change of a run to `succeeded` or `failed`
//! in `ledger_end`. A trigger runs inside the statement's transaction, so a row is in the
//! ledger if and only if the record it copies committed.
//!
//! CI runs 1,500 runs (three or four kills here); the full count of the issue:
//! `CANO_SOAK_RUNS=10000 CANO_REQUIRE_POSTGRES=1 cargo test -p cano --features postgres
//! --test cluster_soak -- --nocapture` (about a minute and 25 kills here).
//!
//! The test binary re-executes itself as the workers (`crash::driver`). On a throwaway
//! server (`pg_support`); without PostgreSQL the test prints why it skips, and fails when
//! `CANO_REQUIRE_POSTGRES=1`.
#![cfg(all(feature = "postgres", unix))]

mod crash;
mod pg_plain;
mod pg_support;

use cano::cancel::CancellationToken;
use cano::cluster::{Client, Registry, RunState, Worker};
use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ENTRY: &str = "cluster_soak_worker_entry";
/// Set in the workers: the database's URL.
const URL_VAR: &str = "CANO_PG_URL";
const LEASE: Duration = Duration::from_secs(1);
const WORKERS: usize = 4;
const CONCURRENCY: usize = 16;
const KILL_EVERY: Duration = Duration::from_secs(2);
/// How long each step's task takes.
const STEP_TIME: Duration = Duration::from_millis(60);
/// One run in this many fails at `Ship` and rolls back `Charge` and `Reserve`.
const FAIL_ONE_IN: u32 = 7;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum S {
    Reserve,
    Charge,
    Ship,
    Done,
}

#[derive(Deserialize, Serialize)]
struct Order {
    n: u32,
}

/// Where the side effects go (one line per effect, appended by every worker process).
fn effects_dir() -> PathBuf {
    PathBuf::from(std::env::var(crash::DIR_VAR).expect("crash dir"))
}

fn effect(what: &str, n: u32, step: &str) {
    crash::record(&effects_dir(), &format!("{what} {n} {step}")).expect("record effect");
}

/// A compensatable step: `DO n step`, then (on rollback) `UNDO n step`.
struct Booked {
    n: u32,
    step: &'static str,
    next: S,
}

#[saga::task]
impl CompensatableTask<S> for Booked {
    type Output = u32;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> std::borrow::Cow<'static, str> {
        self.step.into()
    }

    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        effect("DO", self.n, self.step);
        tokio::time::sleep(STEP_TIME).await;
        Ok((TaskResult::Single(self.next.clone()), self.n))
    }

    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        assert_eq!(
            output, self.n,
            "the step's output comes back for its rollback"
        );
        effect("UNDO", self.n, self.step);
        tokio::time::sleep(STEP_TIME).await;
        Ok(())
    }
}

/// The last step: fails for one run in [`FAIL_ONE_IN`].
struct Ship {
    n: u32,
}

#[task(state = S)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        effect("DO", self.n, "ship");
        tokio::time::sleep(STEP_TIME).await;
        if self.n.is_multiple_of(FAIL_ONE_IN) {
            return Err(CanoError::task_execution(format!(
                "order {} cannot ship",
                self.n
            )));
        }
        Ok(TaskResult::Single(S::Done))
    }
}

fn registry() -> Registry {
    Registry::new().register("order", |order: Order| {
        let n = order.n;
        Ok(Workflow::bare()
            .register_with_compensation(
                S::Reserve,
                Booked {
                    n,
                    step: "reserve",
                    next: S::Charge,
                },
            )
            .register_with_compensation(
                S::Charge,
                Booked {
                    n,
                    step: "charge",
                    next: S::Ship,
                },
            )
            .register(S::Ship, Ship { n })
            .add_exit_state(S::Done))
    })
}

/// A worker process, until it is killed (or its driver's watchdog ends it).
#[test]
fn cluster_soak_worker_entry() {
    crash::drive(|mode, _dir| async move {
        let url = std::env::var(URL_VAR).expect("database URL");
        let store = pg_support::worker(&url, &format!("w-{mode}"), LEASE).await;
        let worker = Worker::new(store, registry())
            .with_concurrency(CONCURRENCY)
            .with_poll_interval(Duration::from_millis(50));
        worker.run(CancellationToken::disabled()).await
    });
}

fn spawn_worker(name: &str, url: &str, dir: &Path) -> Child {
    let mut cmd = crash::driver(ENTRY, name, dir);
    cmd.env(URL_VAR, url).stdout(Stdio::null());
    cmd.spawn().expect("spawn a worker")
}

const LEDGER: &str = "
CREATE TABLE ledger (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    sequence bigint NOT NULL,
    kind text NOT NULL,
    state text NOT NULL,
    blob bytea,
    epoch bigint
);
CREATE FUNCTION ledger_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger (run_id, sequence, kind, state, blob, epoch)
    VALUES (NEW.workflow_id, NEW.sequence, NEW.kind, NEW.state, NEW.output_blob, NEW.epoch);
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_step AFTER INSERT ON cano_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_step();
CREATE TABLE ledger_end (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    status text NOT NULL
);
CREATE FUNCTION ledger_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_end (run_id, status) VALUES (NEW.run_id, NEW.status);
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_end AFTER UPDATE OF status ON cano_cluster_runs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ledger_end();
";

/// Rows of a query whose columns are `text` and `bigint`, as strings.
async fn rows(db: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    db.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    row.try_get::<_, String>(i)
                        .or_else(|_| row.try_get::<_, i64>(i).map(|v| v.to_string()))
                        .unwrap_or_else(|e| panic!("{sql}: column {i}: {e}"))
                })
                .collect()
        })
        .collect()
}

#[test]
fn sagas_survive_a_sigkill_every_two_seconds_and_the_ledger_shows_each_once() {
    let runs: u32 = std::env::var("CANO_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(url) = rt.block_on(pg_support::fresh_database("cluster_soak")) else {
        return;
    };
    let (client, db) = rt.block_on(async {
        let store = PostgresCheckpointStore::connect(&url).await.unwrap();
        // The cluster's tables exist once a client has submitted through the store.
        let client = Client::new(store).with_poll_interval(Duration::from_millis(50));
        let db = pg_plain::plain_client(&url).await;
        (client, db)
    });
    // The ledger's triggers go on the tables the first submit creates: submit one run
    // first, then install them, then the rest.
    let mut ids = Vec::with_capacity(runs as usize);
    rt.block_on(async {
        ids.push(
            client
                .submit("order", &Order { n: 0 }, &S::Reserve, Some("order-0"))
                .await
                .unwrap(),
        );
        db.batch_execute(LEDGER).await.expect("install the ledger");
        for n in 1..runs {
            let key = format!("order-{n}");
            ids.push(
                client
                    .submit("order", &Order { n }, &S::Reserve, Some(&key))
                    .await
                    .unwrap(),
            );
        }
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let mut generation = 0usize;
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|i| spawn_worker(&format!("{i}-0"), &url, dir.path()))
        .collect();
    // Kill one worker every two seconds, in turn, and start it again at once, until
    // every run has ended.
    let mut kills = 0usize;
    // The first kill once the workers are busy, then one every two seconds: three or
    // four kills in CI's 1,500 runs, and at least two on a machine twice as fast.
    let mut next_kill = Instant::now() + KILL_EVERY / 2;
    let deadline = Instant::now() + Duration::from_secs(60 + u64::from(runs) / 20);
    loop {
        let open: i64 = rt.block_on(async {
            db.query_one(
                "SELECT count(*) FROM cano_cluster_runs WHERE status NOT IN ('succeeded', 'failed', 'parked', 'cancelled')",
                &[],
            )
            .await
            .expect("count open runs")
            .get(0)
        });
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} runs still open after {:?} and {kills} kills",
            started.elapsed()
        );
        if Instant::now() >= next_kill {
            let victim = kills % WORKERS;
            let _ = workers[victim].kill();
            let _ = workers[victim].wait();
            kills += 1;
            generation += 1;
            workers[victim] = spawn_worker(&format!("{victim}-{generation}"), &url, dir.path());
            next_kill += KILL_EVERY;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }

    // Every run ended as it should, through the client.
    let mut failed = 0u32;
    rt.block_on(async {
        for (n, id) in ids.iter().enumerate() {
            let status = client.status(id).await.unwrap().expect("the run exists");
            if (n as u32).is_multiple_of(FAIL_ONE_IN) {
                assert_eq!(status.state, RunState::Failed, "{status:?}");
                let error = status.error.clone().unwrap_or_default();
                assert!(error.contains("cannot ship"), "{status:?}");
                failed += 1;
            } else {
                assert_eq!(status.state, RunState::Succeeded, "{status:?}");
                assert_eq!(status.final_state::<S>().unwrap(), Some(S::Done));
            }
        }
    });

    rt.block_on(async {
        // Each run ended exactly once.
        let ends = rows(
            &db,
            "SELECT run_id, count(*) FROM ledger_end GROUP BY run_id HAVING count(*) <> 1",
        )
        .await;
        assert!(ends.is_empty(), "runs that ended more than once: {ends:?}");
        let ended: i64 = db
            .query_one("SELECT count(DISTINCT run_id) FROM ledger_end", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(ended, i64::from(runs), "every run ended");
        // No record was committed twice: a sequence of a run, once.
        let twice = rows(
            &db,
            "SELECT run_id, sequence::bigint, count(*) FROM ledger \
             GROUP BY run_id, sequence HAVING count(*) > 1 LIMIT 10",
        )
        .await;
        assert!(twice.is_empty(), "log records committed twice: {twice:?}");
        // A compensatable step's completion at most once per worker's tenure of the run
        // (its lease epoch). A takeover may record it again: a run resumed after a step's
        // completion but before the next state's entry runs that step again (0.12.0's
        // resume contract), and only the new completion is compensated on a rollback.
        let completions = rows(
            &db,
            "SELECT run_id, state, count(*) FROM ledger WHERE kind = 'CompensationCompletion' \
             GROUP BY run_id, state, epoch HAVING count(*) > 1 LIMIT 10",
        )
        .await;
        if let Some(first) = completions.first() {
            let history = rows(
                &db,
                &format!(
                    "SELECT sequence::bigint, kind, state, coalesce(epoch, 0)::bigint FROM ledger \
                     WHERE run_id = '{}' ORDER BY id",
                    first[0]
                ),
            )
            .await;
            panic!(
                "steps completed twice under one lease: {completions:?}; \
                 the first one's ledger: {history:?}"
            );
        }
        // Each compensation at most once.
        let compensated = rows(
            &db,
            "SELECT run_id, encode(blob, 'escape'), count(*) FROM ledger \
             WHERE kind = 'Compensated' GROUP BY run_id, blob HAVING count(*) > 1 LIMIT 10",
        )
        .await;
        assert!(
            compensated.is_empty(),
            "steps compensated twice: {compensated:?}"
        );
        // The runs that rolled back compensated both their steps, once each.
        let per_run = rows(
            &db,
            "SELECT run_id, count(*) FROM ledger WHERE kind = 'Compensated' GROUP BY run_id",
        )
        .await;
        assert_eq!(per_run.len() as u32, failed, "{per_run:?}");
        assert!(per_run.iter().all(|r| r[1] == "2"), "{per_run:?}");
    });

    // The tasks' own side effects: every step ran; a step ran again only if it was in
    // flight at a kill (at most CONCURRENCY per kill), and the same for compensations.
    let effects = crash::side_effects(dir.path());
    let mut counts: HashMap<(String, u32, String), u32> = HashMap::new();
    for line in &effects {
        let mut words = line.split(' ');
        let (Some(what), Some(n), Some(step)) = (words.next(), words.next(), words.next()) else {
            panic!("a torn effect line: {line:?}");
        };
        let n: u32 = n.parse().expect("order number");
        *counts
            .entry((what.to_string(), n, step.to_string()))
            .or_default() += 1;
    }
    for n in 0..runs {
        for step in ["reserve", "charge", "ship"] {
            assert!(
                counts.contains_key(&("DO".into(), n, step.into())),
                "order {n}: {step} never ran"
            );
        }
        let rolled_back = n.is_multiple_of(FAIL_ONE_IN);
        for step in ["reserve", "charge"] {
            assert_eq!(
                counts.contains_key(&("UNDO".into(), n, step.into())),
                rolled_back,
                "order {n}: {step} compensated: {}",
                !rolled_back
            );
        }
    }
    let repeats: u32 = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "{runs} runs ({failed} rolled back) through {WORKERS} workers in {took:?}, \
         {kills} SIGKILLs; {} side effects, {repeats} of them repeats",
        effects.len()
    );
    assert!(kills >= 2, "the workload ended before two kills: {took:?}");
    assert!(
        repeats as usize <= kills * CONCURRENCY,
        "{repeats} repeated side effects for {kills} kills"
    );
}
