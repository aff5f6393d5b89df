//! # Cluster: three worker processes share runs through PostgreSQL; one is SIGKILLed
//!
//! Run with:
//! `cargo run -p cano --example cluster --features postgres`
//! (options after `--`: `[--runs N]`, default 24)
//!
//! The program starts its own throwaway PostgreSQL server from the system's installation
//! (`initdb` and `pg_ctl` in a temporary directory; as the `postgres` user when run as
//! root; if none is installed it says which package to install), submits `--runs` runs of
//! a four-step `job` workflow with [`cano::cluster::Client`], and starts three worker
//! processes — this same program, re-run as `cluster worker URL NAME` — each a
//! [`cano::cluster::Worker`] claiming runs from the database, two at a time, on leases of
//! one second. Shortly after the workers start, it kills worker `w1` with SIGKILL. The
//! other two take its runs over once their leases expire and resume them from their
//! logs. Every step a worker starts is printed as it starts; at the end the program
//! waits for every run and prints who finished which, checking that every run succeeded
//! exactly once and that the only steps run twice are the ones `w1` had in flight when
//! it died. Then it stops the other two workers with SIGTERM (they hand back what they
//! hold at once) and the server.

use cano::cancel::CancellationToken;
use cano::cluster::{Client, Registry, RunState, Worker};
use cano::prelude::*;
use cano::recovery::postgres::TempPostgres;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STEPS: u32 = 4;
const LEASE: Duration = Duration::from_secs(1);
const WORKERS: [&str; 3] = ["w1", "w2", "w3"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Stage {
    Step(u32),
    Done,
}

#[derive(Serialize, Deserialize)]
struct Job {
    id: u32,
}

/// One step of job `job`: says so on stdout (the parent reads it), takes 150 ms.
struct Step {
    job: u32,
    step: u32,
    worker: String,
}

#[task(state = Stage)]
impl Step {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Stage>, CanoError> {
        println!("STEP {} {} {}", self.worker, self.job, self.step);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let next = self.step + 1;
        Ok(TaskResult::Single(if next == STEPS {
            Stage::Done
        } else {
            Stage::Step(next)
        }))
    }
}

fn registry(worker: &str) -> Registry {
    let worker = worker.to_string();
    Registry::new().register("job", move |job: Job| {
        let mut wf = Workflow::bare();
        for step in 0..STEPS {
            wf = wf.register(
                Stage::Step(step),
                Step {
                    job: job.id,
                    step,
                    worker: worker.clone(),
                },
            );
        }
        Ok(wf.add_exit_state(Stage::Done))
    })
}

/// A worker process: claim and run jobs until SIGTERM.
async fn worker(url: &str, name: &str) -> Result<(), CanoError> {
    let store = PostgresCheckpointStore::connect(url)
        .await?
        .with_worker_id(name)
        .with_lease_duration(LEASE);
    let worker = Worker::new(store, registry(name))
        .with_concurrency(2)
        .with_poll_interval(Duration::from_millis(200));
    let (stop, token) = CancellationToken::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CanoError::configuration(format!("cannot listen for SIGTERM: {e}")))?;
    tokio::spawn(async move {
        term.recv().await;
        stop.cancel();
    });
    println!("READY {name}");
    worker.run(token).await
}

/// Start worker `name`; its stdout lines go to `lines` as `(name, line)`.
fn spawn_worker(url: &str, name: &str, lines: &mpsc::Sender<String>) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = Command::new(exe)
        .args(["worker", url, name])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start worker {name}: {e}"))?;
    let out = child.stdout.take().ok_or("worker stdout")?;
    let lines = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    Ok(child)
}

async fn demo(runs: u32) -> Result<(), String> {
    let server = TempPostgres::start().await.map_err(|e| e.to_string())?;
    let url = server.url();
    println!(
        "throwaway PostgreSQL at {}",
        url.split('@').next_back().unwrap_or("")
    );
    let client = Client::new(
        PostgresCheckpointStore::connect(&url)
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut ids = Vec::new();
    for id in 0..runs {
        let run = client
            .submit(
                "job",
                &Job { id },
                &Stage::Step(0),
                Some(&format!("job-{id}")),
            )
            .await
            .map_err(|e| e.to_string())?;
        ids.push(run);
    }
    println!("submitted {runs} runs of a {STEPS}-step job");

    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for name in WORKERS {
        children.push((name, spawn_worker(&url, name, &tx)?));
    }
    drop(tx);
    // Relay the workers' lines; kill w1 once it has started a few steps.
    let mut started: BTreeMap<(u32, u32), Vec<String>> = BTreeMap::new();
    let mut killed_at = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut w1_steps = 0;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("STEP ") {
                    let parts: Vec<&str> = rest.split(' ').collect();
                    if let [who, job, step] = parts[..] {
                        let key = (
                            job.parse().map_err(|_| format!("bad line {line:?}"))?,
                            step.parse().map_err(|_| format!("bad line {line:?}"))?,
                        );
                        started.entry(key).or_default().push(who.to_string());
                        println!("  {who}: job {:>2} step {}", key.0, key.1);
                        if who == "w1" {
                            w1_steps += 1;
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if killed_at.is_none() && w1_steps >= 3 {
            let (_, w1) = &mut children[0];
            w1.kill().map_err(|e| format!("kill w1: {e}"))?;
            let _ = w1.wait();
            killed_at = Some(started.clone());
            println!(
                "*** w1 killed with SIGKILL; its runs go to w2 and w3 when their leases expire"
            );
        }
        let finished = started.len() == (runs * STEPS) as usize;
        if finished || Instant::now() > deadline {
            break;
        }
    }
    let mut by_worker: BTreeMap<String, u32> = BTreeMap::new();
    for id in &ids {
        let status = client
            .wait(id, Duration::from_secs(60))
            .await
            .map_err(|e| e.to_string())?;
        if status.state != RunState::Succeeded {
            return Err(format!(
                "run {id} ended {:?}: {:?}",
                status.state, status.error
            ));
        }
        *by_worker
            .entry(status.worker.unwrap_or_default())
            .or_default() += 1;
    }
    // Stop the others gracefully.
    for (name, child) in children.iter_mut().skip(1) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        println!("{name} stopped (SIGTERM)");
    }
    let twice: Vec<&(u32, u32)> = started
        .iter()
        .filter(|(_, who)| who.len() > 1)
        .map(|(key, _)| key)
        .collect();
    println!("\nevery one of the {runs} runs succeeded, each once; finished by: {by_worker:?}");
    println!(
        "steps run twice: {} (the ones w1 had started when it was killed: {:?})",
        twice.len(),
        twice
    );
    // A step runs again only if w1 had started it (it died in it, or before its
    // checkpoint).
    let killed = killed_at.unwrap_or_default();
    for key in &twice {
        let first = killed.get(key).and_then(|who| who.first());
        if first.map(String::as_str) != Some("w1") {
            return Err(format!("step {key:?} ran twice but w1 had not started it"));
        }
    }
    server.stop().await.map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cluster: cannot start a Tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if args.get(1).map(String::as_str) == Some("worker") {
        let (Some(url), Some(name)) = (args.get(2), args.get(3)) else {
            eprintln!("usage: cluster worker URL NAME");
            return std::process::ExitCode::from(2);
        };
        return match runtime.block_on(worker(url, name)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker {name}: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => match args.get(i + 1).and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                eprintln!("usage: cluster [--runs N]");
                return std::process::ExitCode::from(2);
            }
        },
        None => 24,
    };
    match runtime.block_on(demo(runs)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
