//! Sagas under SIGKILL: a run of five compensatable steps whose sixth state fails is
//! killed at random points (during the forward steps or during the rollback), then
//! resumed in a fresh process.
//!
//! After each trial, every completed step has been compensated, in reverse order, and a
//! step whose compensation was recorded is never compensated again. The only possible
//! repeat is the compensation that was running when the process died (it had not been
//! recorded yet): at-least-once at the crash point, as for every task.
#![cfg(all(unix, feature = "recovery"))]

mod crash;

use cano::prelude::*;
use crash::{
    Rng, folded, record, run_and_kill, run_and_kill_after, run_length_after, run_to_end,
    side_effects,
};
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ENTRY: &str = "saga_driver_entry";
const RUN_ID: &str = "saga-run";
const STEPS: u32 = 5;

/// Where side effects go, and which process is writing them.
#[derive(Resource)]
struct SideEffects {
    dir: PathBuf,
    mode: String,
}

struct Reserve(u32);

#[saga::task(state = u32)]
impl Reserve {
    type Output = u32;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        format!("reserve-{}", self.0).into()
    }

    async fn run(&self, res: &Resources) -> Result<(TaskResult<u32>, u32), CanoError> {
        let fx = res.get::<SideEffects, _>("sidefx")?;
        record(&fx.dir, &format!("R{}", self.0))?;
        tokio::time::sleep(Duration::from_micros(400)).await;
        Ok((TaskResult::Single(self.0 + 1), self.0))
    }

    async fn compensate(&self, res: &Resources, output: u32) -> Result<(), CanoError> {
        let fx = res.get::<SideEffects, _>("sidefx")?;
        tokio::time::sleep(Duration::from_micros(400)).await;
        record(&fx.dir, &format!("U{output}@{}", fx.mode))?;
        Ok(())
    }
}

struct Fail;

#[task(state = u32)]
impl Fail {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<u32>, CanoError> {
        Err(CanoError::task_execution("shipping refused"))
    }
}

fn workflow(dir: &Path, mode: &str) -> Result<Workflow<u32>, CanoError> {
    let store = Arc::new(RedbCheckpointStore::new(dir.join("ckpt.redb"))?);
    let fx = SideEffects {
        dir: dir.to_path_buf(),
        mode: mode.to_string(),
    };
    let mut wf = Workflow::new(Resources::new().insert("sidefx", fx));
    for i in 0..STEPS {
        wf = wf.register_with_compensation(i, Reserve(i));
    }
    Ok(wf
        .register(STEPS, Fail)
        .add_exit_state(STEPS + 1)
        .with_checkpoint_store(store)
        .with_workflow_id(RUN_ID))
}

/// The driver, run inside a child process.
#[test]
fn saga_driver_entry() {
    let Ok(mode) = std::env::var(crash::MODE_VAR) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(crash::DIR_VAR).expect("crash dir"));
    let code = crash::runtime().block_on(async {
        let wf = match workflow(&dir, &mode) {
            Ok(wf) => wf,
            Err(e) => {
                println!("OPEN_FAILED {e}");
                return 3;
            }
        };
        println!("STARTED");
        let _ = std::io::stdout().flush();
        let outcome = if mode.starts_with("resume") {
            wf.resume_from(RUN_ID).await
        } else {
            wf.orchestrate(0).await
        };
        match outcome {
            Err(e) if e.message() == "shipping refused" && e.category() == "task_execution" => {
                println!("ROLLED_BACK");
                0
            }
            Err(e) if mode.starts_with("resume") && e.message().contains("no checkpoint rows") => {
                println!("NO_ROWS");
                0
            }
            other => {
                println!("UNEXPECTED {other:?}");
                1
            }
        }
    });
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// One trial: kill `delay` after the driver started (from spawn, or from when it had
/// opened the store). Returns whether the kill landed during the rollback.
///
/// With `second`, the first resume is killed too (that long after it started).
fn trial(delay: Duration, from_spawn: bool, second: Option<Duration>) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = if from_spawn {
        run_and_kill(ENTRY, "fresh", dir.path(), delay)
    } else {
        run_and_kill_after(ENTRY, "fresh", dir.path(), "STARTED", delay)
    };
    let mut before = side_effects(dir.path());
    // The compensation each killed process had in flight (written, maybe not recorded):
    // the only ones that may run again.
    let mut in_flight: Vec<String> = Vec::new();
    let mut killed_mid_rollback = false;
    let last_undo = |lines: &[String]| lines.iter().rev().find(|l| l.starts_with('U')).cloned();
    if !first.contains("ROLLED_BACK")
        && let Some(l) = last_undo(&before)
    {
        in_flight.push(l);
        killed_mid_rollback = true;
    }
    let mut first = first;
    if let Some(d) = second
        && !first.contains("ROLLED_BACK")
        && !before.is_empty()
    {
        // A distinct mode name, so its compensations can be told from the final resume's.
        let out = run_and_kill_after(ENTRY, "resume1", dir.path(), "STARTED", d);
        let now = side_effects(dir.path());
        assert!(
            now.starts_with(&before),
            "side effects lost: {before:?} -> {now:?}"
        );
        if !out.contains("ROLLED_BACK")
            && let Some(l) = last_undo(&now[before.len()..])
        {
            in_flight.push(l);
            killed_mid_rollback = true;
        }
        before = now;
        first = out;
    }

    let resumed = run_to_end(ENTRY, "resume", dir.path());
    if resumed.contains("NO_ROWS") {
        if before.is_empty() {
            let fresh = run_to_end(ENTRY, "fresh", dir.path());
            assert!(fresh.contains("ROLLED_BACK"), "{fresh}");
        } else {
            assert!(
                first.contains("ROLLED_BACK")
                    || before.iter().filter(|l| l.starts_with('U')).count() == STEPS as usize,
                "the log was cleared before the rollback finished: {before:?}"
            );
        }
    } else {
        assert!(
            resumed.contains("ROLLED_BACK"),
            "unexpected resume output: {resumed}"
        );
    }

    let after = side_effects(dir.path());
    assert!(
        after.starts_with(&before),
        "side effects lost: {before:?} -> {after:?}"
    );
    let forward: Vec<String> = after
        .iter()
        .filter(|l| l.starts_with('R'))
        .cloned()
        .collect();
    let want_forward: Vec<String> = (0..STEPS).map(|i| format!("R{i}")).collect();
    assert_eq!(
        folded(&forward),
        want_forward,
        "a step was skipped: {after:?}"
    );

    // Compensations: each step exactly once, in reverse order, except that one a killed
    // process had in flight may have run again after resume.
    let undone: Vec<&String> = after.iter().filter(|l| l.starts_with('U')).collect();
    let mut order = Vec::new();
    for i in 0..STEPS {
        let lines: Vec<&&String> = undone
            .iter()
            .filter(|l| l.split('@').next() == Some(&format!("U{i}")))
            .collect();
        assert!(!lines.is_empty(), "step {i} never compensated: {after:?}");
        for repeat in &lines[..lines.len() - 1] {
            assert!(
                in_flight.contains(repeat),
                "step {i} compensated again although its compensation was recorded: {after:?}"
            );
        }
    }
    for l in &undone {
        let step = l.split('@').next().unwrap_or_default().to_string();
        if order.last() != Some(&step) && !order.contains(&step) {
            order.push(step);
        }
    }
    let want_order: Vec<String> = (0..STEPS).rev().map(|i| format!("U{i}")).collect();
    assert_eq!(order, want_order, "rollback out of order: {after:?}");

    crash::runtime().block_on(async {
        let store = RedbCheckpointStore::new(dir.path().join("ckpt.redb")).expect("reopen");
        assert!(store.load_run(RUN_ID).await.expect("load").is_empty());
    });
    killed_mid_rollback
}

#[test]
fn sigkill_during_forward_steps_and_rollback_then_resume() {
    let mut rng = Rng::from_env(0x5A6A);
    let trials = 120;
    let mut mid_rollback = 0;
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
        if trial(delay, from_spawn, second) {
            mid_rollback += 1;
        }
    }
    eprintln!("{trials} kills, {mid_rollback} of them during the rollback");
    assert!(
        mid_rollback >= 10,
        "too few kills landed during the rollback"
    );
}
