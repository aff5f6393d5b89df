//! A real worker process SIGSTOPped past its lease on a PostgreSQL store, its run taken
//! over by another worker, then SIGCONTed: its next write is refused (`fenced`), it starts
//! no further task, nothing it wrote after the takeover is in the log, and the new owner
//! finishes the run.
//!
//! The test binary re-executes itself as the worker (`crash::driver`). On a throwaway
//! server (`pg_support`); without PostgreSQL the test prints why it skips, and fails when
//! `CANO_REQUIRE_POSTGRES=1`.
#![cfg(all(feature = "postgres", unix))]

mod crash;
mod pg_support;

use cano::prelude::*;
use std::io::{BufRead, BufReader, Read};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ENTRY: &str = "sigstop_driver_entry";
/// Set in the worker: the database's URL.
const URL_VAR: &str = "CANO_PG_URL";
const RUN: &str = "stopped";
const STEPS: u32 = 12;
const LEASE: Duration = Duration::from_millis(400);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Step(u32),
    Done,
}

/// Records (and, in the worker process, prints) that step `n` started, then takes a little while.
struct Step {
    n: u32,
    started: Arc<Mutex<Vec<u32>>>,
}

#[task(state = S)]
impl Step {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.started.lock().unwrap().push(self.n);
        if std::env::var(crash::MODE_VAR).is_ok() {
            crash::say(&format!("TASK {}", self.n));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let next = self.n + 1;
        Ok(TaskResult::Single(if next == STEPS {
            S::Done
        } else {
            S::Step(next)
        }))
    }
}

fn workflow(store: &PostgresCheckpointStore, started: &Arc<Mutex<Vec<u32>>>) -> Workflow<S> {
    let mut wf = Workflow::bare();
    for n in 0..STEPS {
        let started = Arc::clone(started);
        wf = wf.register(S::Step(n), Step { n, started });
    }
    wf.add_exit_state(S::Done)
        .with_run_writers(Arc::new(store.clone()))
        .with_workflow_id(RUN)
}

/// A worker with leases of [`LEASE`].
async fn worker(url: &str, id: &str) -> PostgresCheckpointStore {
    pg_support::worker(url, id, LEASE).await
}

/// The worker, run inside a child process.
#[test]
fn sigstop_driver_entry() {
    crash::drive(|_mode, _dir| async move {
        let url = std::env::var(URL_VAR).expect("database URL");
        let store = worker(&url, "w-stopped").await;
        workflow(&store, &Arc::default())
            .orchestrate(S::Step(0))
            .await
    });
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}

/// The step a `TASK n` line names.
fn task_steps(printed: &str) -> Vec<u32> {
    printed
        .lines()
        .filter_map(|l| l.split_once("TASK ").map(|(_, n)| n.trim()))
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[test]
fn a_worker_stopped_past_its_lease_writes_nothing_and_starts_no_task_after_the_takeover() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(url) = rt.block_on(pg_support::fresh_database("sigstop")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = crash::driver(ENTRY, "worker", dir.path());
    cmd.env(URL_VAR, &url);
    let mut child = cmd.spawn().expect("spawn worker");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("worker stdout"));
    let mut printed = String::new();
    let mut line = String::new();
    while !task_steps(&printed).contains(&3) {
        line.clear();
        let read = out.read_line(&mut line).expect("read worker");
        assert!(read > 0, "the worker ended early:\n{printed}");
        printed.push_str(&line);
    }

    // The worker stalls (a GC pause, a frozen VM) past its lease; another takes over.
    signal(pid, "-STOP");
    std::thread::sleep(LEASE + Duration::from_millis(300));
    let new_owner = rt.block_on(worker(&url, "w-new"));
    let lease = rt
        .block_on(new_owner.claim(RUN))
        .unwrap_or_else(|e| panic!("takeover: {e}"));
    assert_eq!(lease.epoch(), 2);
    let at_takeover = rt.block_on(new_owner.load_run(RUN)).unwrap();
    let last = at_takeover.last().expect("rows").state.clone();

    signal(pid, "-CONT");
    out.read_to_string(&mut printed).expect("read worker");
    let status = child.wait().expect("wait for worker");
    assert!(!status.success(), "the stale worker must fail:\n{printed}");
    assert!(printed.contains("FAILED"), "{printed}");
    assert!(printed.contains("fenced"), "{printed}");
    assert!(
        printed.contains("epoch 1") && printed.contains("epoch 2"),
        "{printed}"
    );

    // It started no task past the last row it wrote before the takeover (a state's row
    // is written before its task starts, and every later write was refused)…
    let stale_started = task_steps(&printed);
    let max_started = *stale_started.iter().max().unwrap();
    assert!(
        format!("{:?}", S::Step(max_started)) == last
            || format!("{:?}", S::Step(max_started + 1)) == last,
        "the stale worker started step {max_started}, the log ended at {last} at the takeover"
    );
    // …and wrote nothing after it.
    assert_eq!(rt.block_on(new_owner.load_run(RUN)).unwrap(), at_takeover);

    // The new owner finishes the run under its lease.
    let started = Arc::default();
    let end = rt.block_on(workflow(&new_owner, &started).resume_from(RUN));
    assert_eq!(end, Ok(S::Done));
    let resumed: Vec<u32> = started.lock().unwrap().clone();
    assert_eq!(format!("{:?}", S::Step(resumed[0])), last);
    assert_eq!(*resumed.last().unwrap(), STEPS - 1);
    // Every step ran; only the one in flight at the takeover ran twice.
    let mut all = stale_started.clone();
    all.extend(&resumed);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, (0..STEPS).collect::<Vec<_>>());
    assert!(stale_started.iter().filter(|n| resumed.contains(n)).count() <= 1);
    assert!(rt.block_on(new_owner.load_run(RUN)).unwrap().is_empty());
}
