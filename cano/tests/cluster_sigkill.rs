//! A real cluster worker process SIGKILLed with runs in flight: another worker resumes
//! them from their logs once their leases expire, every run finishes once, and no step
//! of any run runs again except the ones in flight at the kill. And one SIGSTOPped past
//! its lease: another worker finishes its run, and once SIGCONTed the stale worker
//! starts no step and records nothing.
//!
//! The test binary re-executes itself as the worker (`crash::driver`); the worker prints
//! `STEP <job> <step>` as each step starts. On a throwaway server (`pg_support`); without
//! PostgreSQL the test prints why it skips, and fails when `CANO_REQUIRE_POSTGRES=1`.
#![cfg(all(feature = "postgres", unix))]

mod crash;
mod pg_support;

use cano::cancel::CancellationToken;
use cano::cluster::{Client, Registry, RunState, Worker};
use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ENTRY: &str = "cluster_sigkill_driver_entry";
/// Set in the worker: the database's URL.
const URL_VAR: &str = "CANO_PG_URL";
const LEASE: Duration = Duration::from_millis(500);
const STEPS: u32 = 4;
const JOBS: u32 = 12;
const CONCURRENCY: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum S {
    Step(u32),
    Done,
}

#[derive(Deserialize, Serialize)]
struct Job {
    n: u32,
}

/// `(job, step)` of every step started in this process.
type Started = Arc<Mutex<Vec<(u32, u32)>>>;

struct Step {
    job: u32,
    step: u32,
    started: Started,
}

#[task(state = S)]
impl Step {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.started.lock().unwrap().push((self.job, self.step));
        if std::env::var(crash::MODE_VAR).is_ok() {
            crash::say(&format!("STEP {} {}", self.job, self.step));
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        let next = self.step + 1;
        Ok(TaskResult::Single(if next == STEPS {
            S::Done
        } else {
            S::Step(next)
        }))
    }
}

fn registry(started: &Started) -> Registry {
    let started = Arc::clone(started);
    Registry::new().register("job", move |job: Job| {
        let mut wf = Workflow::bare();
        for step in 0..STEPS {
            let started = Arc::clone(&started);
            wf = wf.register(
                S::Step(step),
                Step {
                    job: job.n,
                    step,
                    started,
                },
            );
        }
        Ok(wf.add_exit_state(S::Done))
    })
}

async fn worker(url: &str, id: &str, started: &Started) -> Worker {
    let store = pg_support::worker(url, id, LEASE).await;
    Worker::new(store, registry(started))
        .with_concurrency(CONCURRENCY)
        .with_poll_interval(Duration::from_millis(50))
}

/// The worker, run inside a child process until it is killed.
#[test]
fn cluster_sigkill_driver_entry() {
    crash::drive(|mode, _dir| async move {
        let url = std::env::var(URL_VAR).expect("database URL");
        let worker = worker(&url, &format!("w-{mode}"), &Started::default()).await;
        crash::say("WORKER UP");
        worker.run(CancellationToken::disabled()).await
    });
}

/// `(job, step)` of every `STEP` line.
fn steps(printed: &str) -> Vec<(u32, u32)> {
    printed
        .lines()
        .filter_map(|l| l.strip_prefix("STEP "))
        .filter_map(|rest| {
            let (job, step) = rest.trim().split_once(' ')?;
            Some((job.parse().ok()?, step.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_killed_workers_runs_finish_once_on_another_worker() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(url) = rt.block_on(pg_support::fresh_database("cluster_sigkill")) else {
        return;
    };
    let client = rt.block_on(async {
        let store = PostgresCheckpointStore::connect(&url).await.unwrap();
        Client::new(store).with_poll_interval(Duration::from_millis(20))
    });
    let runs: Vec<String> = rt.block_on(async {
        let mut runs = Vec::new();
        for n in 0..JOBS {
            let key = format!("job-{n}");
            runs.push(
                client
                    .submit("job", &Job { n }, &S::Step(0), Some(&key))
                    .await
                    .unwrap(),
            );
        }
        runs
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = crash::driver(ENTRY, "victim", dir.path());
    cmd.env(URL_VAR, &url);
    let mut child = cmd.spawn().expect("spawn worker");
    let mut out = BufReader::new(child.stdout.take().expect("worker stdout"));
    let mut printed = String::new();
    let mut line = String::new();
    // Kill it in the middle of its second batch of runs.
    while steps(&printed).len() < (STEPS as usize) * CONCURRENCY + 2 {
        line.clear();
        let read = out.read_line(&mut line).expect("read worker");
        assert!(read > 0, "the worker ended early:\n{printed}");
        printed.push_str(&line);
    }
    child.kill().expect("SIGKILL the worker");
    let killed = Instant::now();
    let _ = out.read_to_string(&mut printed);
    let _ = child.wait();
    let victim = steps(&printed);

    let started = Started::default();
    let survivor = rt.block_on(worker(&url, "w-survivor", &started));
    let (stop, token) = CancellationToken::new();
    let running = rt.spawn(async move { survivor.run(token).await });
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for run in &runs {
        let status = rt
            .block_on(client.wait(run, Duration::from_secs(60)))
            .unwrap();
        assert_eq!(status.state, RunState::Succeeded, "{status:?}");
        assert_eq!(status.final_state::<S>().unwrap(), Some(S::Done));
        *by_worker.entry(status.worker.unwrap()).or_default() += 1;
    }
    let took = killed.elapsed();
    stop.cancel();
    rt.block_on(running).unwrap().unwrap();
    eprintln!(
        "after the SIGKILL every run finished in {took:?}; finished by {by_worker:?}; \
         the victim started {} steps",
        victim.len()
    );
    assert!(by_worker.contains_key("w-victim"), "{by_worker:?}");
    assert!(by_worker.contains_key("w-survivor"), "{by_worker:?}");
    assert!(took < LEASE + Duration::from_secs(7), "{took:?}");

    // Every step of every job ran; the only ones that ran twice were in flight at the
    // kill (at most one per run the victim held).
    let survivor_steps = started.lock().unwrap().clone();
    let mut counts: HashMap<(u32, u32), u32> = HashMap::new();
    for step in victim.iter().chain(&survivor_steps) {
        *counts.entry(*step).or_default() += 1;
    }
    for job in 0..JOBS {
        for step in 0..STEPS {
            assert!(
                counts.contains_key(&(job, step)),
                "job {job} step {step} never ran"
            );
        }
    }
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.iter().all(|(_, c)| **c == 2), "{twice:?}");
    assert!(twice.len() <= CONCURRENCY, "{twice:?}");
    for ((job, step), _) in &twice {
        let last_of_victim = victim.iter().rev().find(|(j, _)| j == job);
        assert_eq!(
            last_of_victim,
            Some(&(*job, *step)),
            "job {job} step {step} ran twice but was not in flight at the kill"
        );
        assert!(survivor_steps.contains(&(*job, *step)));
    }
}

fn signal(pid: u32, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}

#[test]
fn a_stalled_worker_loses_its_run_and_records_nothing_after_it_wakes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(url) = rt.block_on(pg_support::fresh_database("cluster_sigstop")) else {
        return;
    };
    let client = rt.block_on(async {
        let store = PostgresCheckpointStore::connect(&url).await.unwrap();
        Client::new(store).with_poll_interval(Duration::from_millis(20))
    });
    let run = rt
        .block_on(client.submit("job", &Job { n: 1 }, &S::Step(0), None))
        .unwrap();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = crash::driver(ENTRY, "stalled", dir.path());
    cmd.env(URL_VAR, &url);
    let mut child = cmd.spawn().expect("spawn worker");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("worker stdout"));
    let mut printed = String::new();
    let mut line = String::new();
    while !steps(&printed).contains(&(1, 1)) {
        line.clear();
        let read = out.read_line(&mut line).expect("read worker");
        assert!(read > 0, "the worker ended early:\n{printed}");
        printed.push_str(&line);
    }
    signal(pid, "-STOP");
    let before_stop = steps(&printed);

    // Past its lease, another worker takes the run over and finishes it.
    std::thread::sleep(LEASE + Duration::from_millis(200));
    let started = Started::default();
    let survivor = rt.block_on(worker(&url, "w-survivor", &started));
    let (stop, token) = CancellationToken::new();
    let running = rt.spawn(async move { survivor.run(token).await });
    let done = rt
        .block_on(client.wait(&run, Duration::from_secs(30)))
        .unwrap();
    assert_eq!(done.state, RunState::Succeeded, "{done:?}");
    assert_eq!(
        (done.worker.as_deref(), done.attempts),
        (Some("w-survivor"), 2)
    );

    // The stale worker wakes up: its writes are fenced, it starts no step, and the
    // run's outcome stays the survivor's.
    signal(pid, "-CONT");
    std::thread::sleep(LEASE * 3);
    let _ = child.kill();
    let _ = out.read_to_string(&mut printed);
    let _ = child.wait();
    let stale = steps(&printed);
    assert!(
        stale.len() <= before_stop.len() + 1,
        "the stale worker went on: {stale:?} (stopped after {before_stop:?})"
    );
    assert_eq!(
        rt.block_on(client.status(&run)).unwrap().as_ref(),
        Some(&done)
    );
    stop.cancel();
    rt.block_on(running).unwrap().unwrap();

    // Every step ran; at most the one in flight at the stop ran twice.
    let resumed = started.lock().unwrap().clone();
    for step in 0..STEPS {
        assert!(
            stale.contains(&(1, step)) || resumed.contains(&(1, step)),
            "step {step} never ran"
        );
    }
    let twice = resumed.iter().filter(|s| stale.contains(s)).count();
    assert!(twice <= 1, "stale {stale:?}, resumed {resumed:?}");
}
