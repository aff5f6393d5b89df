//! Crash tests with real processes: a checkpointed workflow on a redb file is killed with
//! SIGKILL at random points, then resumed in a fresh process.
//!
//! The test binary is its own driver: `crash_driver_entry` runs the workflow when the
//! `CANO_CRASH_MODE` environment variable is set (and does nothing in a normal test run).
//! Each trial kills a fresh run after a random delay, resumes it (or starts it if it never
//! got going), and checks that:
//!
//! * the run completes exactly once across all processes;
//! * no state is skipped: the side effects, with the re-execution of the state at the
//!   crash point folded away, are exactly the full sequence;
//! * every side effect recorded before the kill is kept (it is a prefix of the final log);
//! * the checkpoint log is empty afterwards.
#![cfg(all(unix, feature = "recovery"))]

use cano::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const RUN_ID: &str = "crash-run";
const STEPS: u32 = 6;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    S0,
    S1,
    S2,
    Crunch,
    S3,
    S4,
    Done,
}

/// Appends one line per side effect to a file.
#[derive(Resource)]
struct SideEffects(PathBuf);

impl SideEffects {
    fn record(&self, what: &str) -> Result<(), CanoError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.0)?;
        // One write call per line, so a kill never leaves half a line.
        f.write_all(format!("{what}\n").as_bytes())?;
        Ok(())
    }
}

struct Plain {
    name: &'static str,
    next: Step,
}

#[task(state = Step)]
impl Plain {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        res.get::<SideEffects, _>("sidefx")?.record(self.name)?;
        tokio::time::sleep(Duration::from_micros(300)).await;
        Ok(TaskResult::Single(self.next.clone()))
    }
}

struct Crunch;

#[task::stepped(state = Step)]
impl Crunch {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn step(
        &self,
        res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, Step>, CanoError> {
        let n = cursor.unwrap_or(0);
        res.get::<SideEffects, _>("sidefx")?
            .record(&format!("C{n}"))?;
        tokio::time::sleep(Duration::from_micros(300)).await;
        Ok(if n + 1 >= STEPS {
            StepOutcome::Done(TaskResult::Single(Step::S3))
        } else {
            StepOutcome::More(n + 1)
        })
    }
}

fn workflow(db: &Path, sidefx: &Path) -> Result<Workflow<Step>, CanoError> {
    let store = Arc::new(RedbCheckpointStore::new(db)?);
    Ok(
        Workflow::new(Resources::new().insert("sidefx", SideEffects(sidefx.to_path_buf())))
            .register(
                Step::S0,
                Plain {
                    name: "S0",
                    next: Step::S1,
                },
            )
            .register(
                Step::S1,
                Plain {
                    name: "S1",
                    next: Step::S2,
                },
            )
            .register(
                Step::S2,
                Plain {
                    name: "S2",
                    next: Step::Crunch,
                },
            )
            .register_stepped(Step::Crunch, Crunch)
            .register(
                Step::S3,
                Plain {
                    name: "S3",
                    next: Step::S4,
                },
            )
            .register(
                Step::S4,
                Plain {
                    name: "S4",
                    next: Step::Done,
                },
            )
            .add_exit_state(Step::Done)
            .with_checkpoint_store(store)
            .with_workflow_id(RUN_ID),
    )
}

/// The side effects of one complete run, in order.
fn full_sequence() -> Vec<String> {
    let mut v: Vec<String> = ["S0", "S1", "S2"].iter().map(|s| s.to_string()).collect();
    v.extend((0..STEPS).map(|n| format!("C{n}")));
    v.extend(["S3", "S4"].iter().map(|s| s.to_string()));
    v
}

/// The driver, run inside a child process.
#[test]
fn crash_driver_entry() {
    let Ok(mode) = std::env::var("CANO_CRASH_MODE") else {
        return;
    };
    let db = PathBuf::from(std::env::var("CANO_CRASH_DB").expect("CANO_CRASH_DB"));
    let sidefx = PathBuf::from(std::env::var("CANO_CRASH_SIDEFX").expect("CANO_CRASH_SIDEFX"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(async {
        let wf = match workflow(&db, &sidefx) {
            Ok(wf) => wf,
            Err(e) => {
                println!("OPEN_FAILED {e}");
                return 3;
            }
        };
        let outcome = if mode == "resume" {
            wf.resume_from(RUN_ID).await
        } else {
            wf.orchestrate(Step::S0).await
        };
        match outcome {
            Ok(state) => {
                println!("COMPLETED {state:?}");
                0
            }
            Err(e) if mode == "resume" && e.message().contains("no checkpoint rows") => {
                println!("NO_ROWS");
                0
            }
            Err(e) => {
                println!("FAILED {e}");
                1
            }
        }
    });
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn driver(mode: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        "crash_driver_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CANO_CRASH_MODE", mode)
    .env("CANO_CRASH_DB", dir.join("ckpt.redb"))
    .env("CANO_CRASH_SIDEFX", dir.join("sidefx.log"))
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    cmd
}

/// Run the driver to completion; returns its stdout.
fn run_to_end(mode: &str, dir: &Path) -> String {
    let out = driver(mode, dir).output().expect("run driver");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{mode} driver failed: {stdout}");
    stdout
}

fn side_effects(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("sidefx.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Fold adjacent repeats: the state (or step) at the crash point runs again on resume.
fn folded(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        if out.last() != Some(l) {
            out.push(l.clone());
        }
    }
    out
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    std::env::var("CANO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

/// Where a kill landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    BeforeStart,
    MidRun,
    AfterEnd,
}

/// One trial: start a run, SIGKILL it after `delay`, then finish it.
fn trial(delay: Duration) -> Landed {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = driver("fresh", dir.path()).spawn().expect("spawn");
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL on unix; the child may already have exited
    let out = child.wait_with_output().expect("wait");
    let first_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut completions = usize::from(first_stdout.contains("COMPLETED Done"));
    let before = side_effects(dir.path());

    let resumed = run_to_end("resume", dir.path());
    let landed;
    if resumed.contains("COMPLETED Done") {
        completions += 1;
        landed = Landed::MidRun;
    } else {
        assert!(
            resumed.contains("NO_ROWS"),
            "unexpected resume output: {resumed}"
        );
        if before.is_empty() {
            // Killed before the first row: nothing ran, start it now.
            let fresh = run_to_end("fresh", dir.path());
            assert!(fresh.contains("COMPLETED Done"), "{fresh}");
            completions += 1;
            landed = Landed::BeforeStart;
        } else {
            // No rows but side effects: the first run finished and cleared its log.
            assert_eq!(
                folded(&before),
                full_sequence(),
                "log cleared before the run ended"
            );
            completions = completions.max(1);
            landed = Landed::AfterEnd;
        }
    }
    assert_eq!(
        completions, 1,
        "the run must complete exactly once (delay {delay:?})"
    );

    let after = side_effects(dir.path());
    assert!(
        after.starts_with(&before),
        "side effects recorded before the kill were lost: {before:?} -> {after:?}"
    );
    assert_eq!(
        folded(&after),
        full_sequence(),
        "a state was skipped or repeated: {after:?}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = RedbCheckpointStore::new(dir.path().join("ckpt.redb")).expect("reopen");
        assert!(store.load_run(RUN_ID).await.expect("load").is_empty());
    });
    landed
}

fn kill_many(trials: u32, salt: u64) {
    let seed = seed() ^ salt;
    eprintln!("crash suite seed {seed} (set CANO_CRASH_SEED to repeat)");
    let mut rng = Rng(seed | 1);
    let mut landed = Vec::new();
    for _ in 0..trials {
        let delay = Duration::from_micros(rng.below(40_000));
        landed.push(trial(delay));
    }
    let count = |l| landed.iter().filter(|x| **x == l).count();
    eprintln!(
        "{trials} kills: {} before the first row, {} mid-run, {} after the end",
        count(Landed::BeforeStart),
        count(Landed::MidRun),
        count(Landed::AfterEnd)
    );
    // The delays must actually hit running workflows, not only the edges.
    assert!(
        count(Landed::MidRun) >= trials as usize / 4,
        "too few mid-run kills"
    );
}

#[test]
fn sigkill_at_random_points_then_resume_a() {
    kill_many(110, 0x5151);
}

#[test]
fn sigkill_at_random_points_then_resume_b() {
    kill_many(110, 0xA2A2);
}
