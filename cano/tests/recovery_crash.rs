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

mod crash;

use cano::prelude::*;
use crash::{
    Rng, folded, record, run_and_kill, run_and_kill_after, run_length_after, run_to_end,
    side_effects,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ENTRY: &str = "crash_driver_entry";
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

/// Where side effects are recorded.
#[derive(Resource)]
struct SideEffects(PathBuf);

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
        record(&res.get::<SideEffects, _>("sidefx")?.0, self.name)?;
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
        record(&res.get::<SideEffects, _>("sidefx")?.0, &format!("C{n}"))?;
        tokio::time::sleep(Duration::from_micros(300)).await;
        Ok(if n + 1 >= STEPS {
            StepOutcome::Done(TaskResult::Single(Step::S3))
        } else {
            StepOutcome::More(n + 1)
        })
    }
}

fn workflow(dir: &Path) -> Result<Workflow<Step>, CanoError> {
    let store = Arc::new(RedbCheckpointStore::new(dir.join("ckpt.redb"))?);
    let plain = |name, next| Plain { name, next };
    Ok(
        Workflow::new(Resources::new().insert("sidefx", SideEffects(dir.to_path_buf())))
            .register(Step::S0, plain("S0", Step::S1))
            .register(Step::S1, plain("S1", Step::S2))
            .register(Step::S2, plain("S2", Step::Crunch))
            .register_stepped(Step::Crunch, Crunch)
            .register(Step::S3, plain("S3", Step::S4))
            .register(Step::S4, plain("S4", Step::Done))
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
    let Ok(mode) = std::env::var(crash::MODE_VAR) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(crash::DIR_VAR).expect("crash dir"));
    let code = crash::runtime().block_on(async {
        let wf = match workflow(&dir) {
            Ok(wf) => wf,
            Err(e) => {
                println!("OPEN_FAILED {e}");
                return 3;
            }
        };
        println!("STARTED");
        let _ = std::io::stdout().flush();
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

/// Where a kill landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    BeforeStart,
    MidRun,
    AfterEnd,
}

/// One trial: start a run, SIGKILL it `delay` after it started (from spawn, or from when
/// it had opened the store), then finish it.
///
/// With `second`, the first resume is killed too (that long after it started), and a
/// further resume finishes the run: a resumed run must itself be resumable.
fn trial(delay: Duration, from_spawn: bool, second: Option<Duration>) -> Landed {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = if from_spawn {
        run_and_kill(ENTRY, "fresh", dir.path(), delay)
    } else {
        run_and_kill_after(ENTRY, "fresh", dir.path(), "STARTED", delay)
    };
    let mut completions = usize::from(first.contains("COMPLETED Done"));
    let before = side_effects(dir.path());
    let mut latest = before.clone();
    if let Some(d) = second {
        let out = run_and_kill_after(ENTRY, "resume", dir.path(), "STARTED", d);
        completions += usize::from(out.contains("COMPLETED Done"));
        let now = side_effects(dir.path());
        assert!(
            now.starts_with(&latest),
            "side effects lost: {latest:?} -> {now:?}"
        );
        latest = now;
    }

    let resumed = run_to_end(ENTRY, "resume", dir.path());
    let landed;
    if resumed.contains("COMPLETED Done") {
        completions += 1;
        landed = Landed::MidRun;
    } else {
        assert!(
            resumed.contains("NO_ROWS"),
            "unexpected resume output: {resumed}"
        );
        if latest.is_empty() {
            // Killed before the first row: nothing ran, start it now.
            let fresh = run_to_end(ENTRY, "fresh", dir.path());
            assert!(fresh.contains("COMPLETED Done"), "{fresh}");
            completions += 1;
            landed = Landed::BeforeStart;
        } else {
            // No rows but side effects: the first run finished and cleared its log.
            assert_eq!(
                folded(&latest),
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

    crash::runtime().block_on(async {
        let store = RedbCheckpointStore::new(dir.path().join("ckpt.redb")).expect("reopen");
        assert!(store.load_run(RUN_ID).await.expect("load").is_empty());
    });
    landed
}

fn kill_many(trials: u32, salt: u64) {
    let mut rng = Rng::from_env(salt);
    let mut landed = Vec::new();
    let run_us = run_length_after(ENTRY, "fresh", "STARTED").as_micros() as u64;
    eprintln!("one run takes {run_us} us after start");
    for t in 0..trials {
        // Most kills are timed from the moment the run started; every fifth from the
        // spawn, to also hit process start and store creation.
        let from_spawn = t % 5 == 0;
        let span = if from_spawn {
            run_us * 2
        } else {
            run_us + run_us / 5
        }
        .max(1);
        let delay = Duration::from_micros(rng.below(span));
        // Every third trial also kills the first resume.
        let second = (t % 3 == 1).then(|| Duration::from_micros(rng.below(run_us.max(1))));
        landed.push(trial(delay, from_spawn, second));
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
