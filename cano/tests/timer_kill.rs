//! Durable timers under SIGKILL, with real processes: a run sleeping in a `#[task::timer]`
//! state on a redb file is killed, and a fresh process resumes it.
//!
//! The test binary is its own driver: `timer_driver_entry` runs the workflow
//! `Schedule (timer) → Send → Done` when the `CANO_CRASH_MODE` environment variable is
//! set (`fresh` starts the run, `resume` resumes it), and does nothing in a normal test
//! run. The driver prints marker lines the tests kill at (`ASKED` once the timer was
//! asked how long to wait, `TIMER_DURABLE` once its deadline is in the log, `FIRED` once
//! the reminder went out) and records every call in a side-effect file, so that the tests
//! can count, across processes, how often the timer was asked and how often it fired.
//!
//! `Send` is idempotent (it fires only if the side-effect file holds no `fired` line),
//! as a real sender must be: the engine runs a state again when a process dies inside it.
//!
//! `sigkill_at_random_points_fires_once_per_run` runs `CANO_TIMER_KILL_TRIALS` trials
//! (default 3; about 1.5 s each); `CANO_CRASH_SEED` repeats a run's random kill delays.
#![cfg(all(unix, feature = "recovery"))]

mod crash;

use cano::prelude::*;
use cano::recovery::log::{self, LogEntry};
use crash::{Driver, Rng, now_ms, number_after, record, say, side_effects};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const ENTRY: &str = "timer_driver_entry";
const RUN_ID: &str = "reminder";
/// Set in the driver: how long the timer waits, in milliseconds.
const WAIT_VAR: &str = "CANO_TIMER_WAIT_MS";
/// How long `wait()` takes before it answers: a window in which a kill finds the timer
/// asked but its deadline not yet recorded.
const ASK_PAUSE: Duration = Duration::from_millis(200);
/// How long `Send` takes after it fired: a window in which a kill finds the reminder sent
/// but the run not finished.
const SEND_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum R {
    Schedule,
    Send,
    Done,
}

/// Waits `wait`; records each `wait()` call (`wait <pid>`) and each firing
/// (`after_wait <ms>`).
struct Remind {
    wait: Duration,
    dir: PathBuf,
    /// Set when `wait()` answered: the next checkpoint is the timer's deadline.
    asked: Arc<AtomicBool>,
}

#[task::timer(state = R)]
impl Remind {
    fn name(&self) -> Cow<'static, str> {
        "remind".into()
    }

    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        record(&self.dir, &format!("wait {}", std::process::id()))?;
        say("ASKED");
        tokio::time::sleep(ASK_PAUSE).await;
        self.asked.store(true, Ordering::SeqCst);
        Ok(TimerOutcome::Duration(self.wait))
    }

    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<R>, CanoError> {
        record(&self.dir, &format!("after_wait {}", now_ms()))?;
        Ok(TaskResult::Single(R::Send))
    }
}

/// Sends the reminder once: records each attempt (`send <pid>`) and the one firing
/// (`fired <ms>`).
struct SendOnce {
    dir: PathBuf,
}

#[task(state = R)]
impl SendOnce {
    fn name(&self) -> Cow<'static, str> {
        "send".into()
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<R>, CanoError> {
        record(&self.dir, &format!("send {}", std::process::id()))?;
        if !side_effects(&self.dir)
            .iter()
            .any(|l| l.starts_with("fired "))
        {
            record(&self.dir, &format!("fired {}", now_ms()))?;
        }
        say("FIRED");
        tokio::time::sleep(SEND_PAUSE).await;
        Ok(TaskResult::Single(R::Done))
    }
}

/// Prints `CHECKPOINT <seq>` for every durable row, and `TIMER_DURABLE <seq>` for the
/// timer's deadline row.
struct Marks {
    asked: Arc<AtomicBool>,
}

impl WorkflowObserver for Marks {
    fn on_checkpoint(&self, _workflow_id: &str, sequence: u64) {
        say(&format!("CHECKPOINT {sequence}"));
        if self.asked.swap(false, Ordering::SeqCst) {
            say(&format!("TIMER_DURABLE {sequence}"));
        }
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("timer.redb")
}

fn workflow(dir: &Path, wait: Duration) -> Result<Workflow<R>, CanoError> {
    let store = Arc::new(RedbCheckpointStore::new(db(dir))?);
    let asked = Arc::new(AtomicBool::new(false));
    Ok(Workflow::bare()
        .register(
            R::Schedule,
            Remind {
                wait,
                dir: dir.to_path_buf(),
                asked: asked.clone(),
            },
        )
        .register(
            R::Send,
            SendOnce {
                dir: dir.to_path_buf(),
            },
        )
        .add_exit_state(R::Done)
        .with_checkpoint_store(store)
        .with_workflow_id(RUN_ID)
        .with_observer(Arc::new(Marks { asked })))
}

/// The driver, run inside a child process.
#[test]
fn timer_driver_entry() {
    crash::drive(|mode, dir| async move {
        let wait = std::env::var(WAIT_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .expect("timer wait");
        let wf = workflow(&dir, wait)?;
        if mode == "resume" {
            say(&format!("RESUMING {}", now_ms()));
            wf.resume_from(RUN_ID).await
        } else {
            say("STARTED");
            wf.orchestrate(R::Schedule).await
        }
    });
}

/// A driver of `mode` whose timer waits `wait`.
fn spawn(mode: &str, dir: &Path, wait: Duration) -> Driver {
    let mut cmd = crash::driver(ENTRY, mode, dir);
    cmd.env(WAIT_VAR, wait.as_millis().to_string());
    Driver::spawn(cmd)
}

/// The run's log, read through a short-lived store (the driver must be dead: redb
/// allows one open handle per file).
fn log_rows(dir: &Path) -> Vec<CheckpointRow> {
    crash::runtime().block_on(async {
        let store = RedbCheckpointStore::new(db(dir)).expect("reopen the database");
        store.load_run(RUN_ID).await.expect("load the run")
    })
}

/// The deadline recorded by the latest timer row.
fn deadline_of(rows: &[CheckpointRow]) -> Option<u64> {
    rows.iter()
        .rev()
        .find_map(|r| match log::parse_row(RUN_ID, r) {
            Ok(LogEntry::Timer { deadline_ms, .. }) => Some(deadline_ms),
            _ => None,
        })
}

/// How many side effects start with `what` followed by a space.
fn count(effects: &[String], what: &str) -> usize {
    let prefix = format!("{what} ");
    effects.iter().filter(|l| l.starts_with(&prefix)).count()
}

/// The number recorded by the first side effect `what`.
fn recorded(effects: &[String], what: &str) -> Option<u64> {
    let prefix = format!("{what} ");
    effects
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.parse().ok())
}

#[test]
fn a_sleep_killed_midway_resumes_with_only_what_is_left() {
    let wait = Duration::from_secs(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();

    let mut fresh = spawn("fresh", dir, wait);
    let asked_at = now_ms();
    assert!(fresh.until("TIMER_DURABLE").is_some(), "{}", fresh.printed);
    let durable_at = now_ms();
    std::thread::sleep(Duration::from_millis(700));
    let printed = fresh.kill();
    assert!(!printed.contains("FIRED"), "killed too late:\n{printed}");
    let rows = log_rows(dir);
    assert_eq!(
        rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        [RowKind::StateEntry, RowKind::Timer]
    );
    let deadline = deadline_of(&rows).expect("a timer row");
    let wait_ms = wait.as_millis() as u64;
    assert!(
        (asked_at + wait_ms..=durable_at + wait_ms).contains(&deadline),
        "the deadline {deadline} is not `wait` after the timer was asked \
         ({asked_at}..={durable_at})"
    );

    // Killed again while sleeping, after the resumed run recorded its re-entry: the
    // re-entry row carries the same deadline.
    let mut resumed = spawn("resume", dir, wait);
    assert!(resumed.until("CHECKPOINT").is_some(), "{}", resumed.printed);
    std::thread::sleep(Duration::from_millis(700));
    let printed = resumed.kill();
    assert!(
        !printed.contains("ASKED"),
        "the timer was asked again:\n{printed}"
    );
    assert!(!printed.contains("FIRED"), "killed too late:\n{printed}");
    let rows = log_rows(dir);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[2].kind, RowKind::Timer);
    assert_eq!(deadline_of(&rows), Some(deadline), "the deadline moved");

    let out = spawn("resume", dir, wait).finish();
    assert!(out.contains("COMPLETED Done"), "{out}");
    let resumed_at = number_after(&out, "RESUMING").expect("RESUMING line");
    let effects = side_effects(dir);
    let fired_at = recorded(&effects, "after_wait").expect("fired");
    let took = fired_at.saturating_sub(resumed_at);
    let left = deadline.saturating_sub(resumed_at);
    eprintln!("resumed with {left} ms of {wait_ms} left; waited {took} ms");
    assert!(
        left + 1_000 <= wait_ms,
        "the test killed too late: {left} ms of {wait_ms} left"
    );
    assert!(
        took.abs_diff(left) <= 400,
        "the resumed run waited {took} ms; {left} ms of the wait were left"
    );
    assert!(
        took + 1_000 <= wait_ms,
        "the resumed run waited {took} ms, close to the full {wait_ms} ms"
    );

    assert_eq!(count(&effects, "wait"), 1, "asked once in all: {effects:?}");
    assert_eq!(count(&effects, "after_wait"), 1, "{effects:?}");
    assert_eq!(count(&effects, "send"), 1, "{effects:?}");
    assert_eq!(
        count(&effects, "fired"),
        1,
        "fired once in all: {effects:?}"
    );
    assert!(
        fired_at >= deadline,
        "fired at {fired_at}, before its deadline {deadline}"
    );
    assert!(log_rows(dir).is_empty(), "the log is cleared");
}

#[test]
fn a_deadline_that_passed_while_nothing_ran_fires_at_once_on_resume() {
    let wait = Duration::from_millis(1_500);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();

    let mut fresh = spawn("fresh", dir, wait);
    assert!(fresh.until("TIMER_DURABLE").is_some(), "{}", fresh.printed);
    std::thread::sleep(Duration::from_millis(300));
    let printed = fresh.kill();
    assert!(!printed.contains("FIRED"), "killed too late:\n{printed}");
    let deadline = deadline_of(&log_rows(dir)).expect("a timer row");
    while now_ms() < deadline + 300 {
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = spawn("resume", dir, wait).finish();
    assert!(out.contains("COMPLETED Done"), "{out}");
    let resumed_at = number_after(&out, "RESUMING").expect("RESUMING line");
    let effects = side_effects(dir);
    let fired_at = recorded(&effects, "after_wait").expect("fired");
    let took = fired_at.saturating_sub(resumed_at);
    assert!(
        took < 300,
        "the deadline had passed, yet the resumed run waited {took} ms"
    );
    assert_eq!(count(&effects, "wait"), 1, "{effects:?}");
    assert_eq!(count(&effects, "after_wait"), 1, "{effects:?}");
    assert_eq!(count(&effects, "fired"), 1, "{effects:?}");
    assert!(log_rows(dir).is_empty(), "the log is cleared");
}

/// Where a kill landed, from the log it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// No log, nothing done: the run had not started.
    BeforeStart,
    /// The timer's state was entered, its deadline not yet recorded.
    BeforeDeadline,
    /// The deadline was recorded; the run had not yet entered `Send`.
    Sleeping,
    /// The run was in `Send` (the reminder may have gone out).
    InSend,
    /// The run had entered `Done` but not cleared its log.
    AtDone,
    /// The log was cleared: the run had finished.
    AfterEnd,
}

fn landed(rows: &[CheckpointRow], effects: &[String]) -> Landed {
    match rows.last() {
        None if effects.is_empty() => Landed::BeforeStart,
        None => Landed::AfterEnd,
        Some(last) => match (last.kind, last.state.as_str()) {
            (RowKind::Timer, _) => Landed::Sleeping,
            (_, "Schedule") => Landed::BeforeDeadline,
            (_, "Send") => Landed::InSend,
            (_, "Done") => Landed::AtDone,
            other => panic!("unexpected last row {other:?}: {rows:?}"),
        },
    }
}

/// How a trial picks its kill point.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// While `wait()` is answering: asked, deadline not yet recorded.
    Asked,
    /// During the sleep.
    Sleeping,
    /// Just after the reminder fired, before the run finished.
    Fired,
    /// Anywhere, timed from the spawn.
    Anywhere,
}

/// One trial: start a run, SIGKILL it at a random point near `aim`, finish it in another
/// process, and check what each process did.
fn trial(aim: Aim, rng: &mut Rng, wait: Duration) -> Landed {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let wait_ms = wait.as_millis() as u64;

    let mut fresh = spawn("fresh", dir, wait);
    let (marker, span) = match aim {
        Aim::Asked => (Some("ASKED"), ASK_PAUSE.as_millis() as u64 / 2),
        Aim::Sleeping => (Some("TIMER_DURABLE"), wait_ms * 3 / 4),
        Aim::Fired => (Some("FIRED"), SEND_PAUSE.as_millis() as u64 / 2),
        Aim::Anywhere => (None, wait_ms + 1_000),
    };
    if let Some(marker) = marker {
        assert!(fresh.until(marker).is_some(), "{}", fresh.printed);
    }
    let delay = rng.below(span);
    std::thread::sleep(Duration::from_millis(delay));
    let first = fresh.kill();
    let mut completions = usize::from(first.contains("COMPLETED Done"));

    let rows = log_rows(dir);
    let before = side_effects(dir);
    let landed = landed(&rows, &before);
    eprintln!("aimed {aim:?} + {delay} ms: landed {landed:?}");
    let deadline = deadline_of(&rows);
    match landed {
        Landed::BeforeStart => {
            let out = spawn("fresh", dir, wait).finish();
            completions += usize::from(out.contains("COMPLETED Done"));
        }
        Landed::AfterEnd => {}
        _ => {
            let out = spawn("resume", dir, wait).finish();
            completions += usize::from(out.contains("COMPLETED Done"));
        }
    }
    // The first process may have finished and been killed before it said so.
    assert!(completions <= 1, "the run completed twice");
    if landed != Landed::AfterEnd {
        assert_eq!(completions, 1, "the run did not complete");
    }

    let after = side_effects(dir);
    assert!(
        after.starts_with(&before),
        "side effects lost: {before:?} -> {after:?}"
    );
    assert_eq!(count(&after, "fired"), 1, "fired once in all: {after:?}");
    let asked_before = count(&before, "wait");
    let asked = count(&after, "wait");
    match landed {
        // Asked at most once before the kill, and once by the process that finished.
        Landed::BeforeStart | Landed::BeforeDeadline => {
            assert!(asked_before <= 1, "{before:?}");
            assert_eq!(asked, asked_before + 1, "{after:?}");
        }
        // Once the deadline is durable, nobody asks again.
        _ => assert_eq!(asked, 1, "the timer was asked again: {after:?}"),
    }
    // Each state is re-entered by the resumed run only from where the log stood.
    let (after_waits, sends) = (count(&after, "after_wait"), count(&after, "send"));
    match landed {
        Landed::Sleeping => {
            assert_eq!(after_waits, count(&before, "after_wait") + 1, "{after:?}");
            assert_eq!(sends, 1, "{after:?}");
        }
        Landed::InSend => {
            assert_eq!(after_waits, 1, "{after:?}");
            assert_eq!(sends, count(&before, "send") + 1, "{after:?}");
        }
        _ => assert_eq!((after_waits, sends), (1, 1), "{after:?}"),
    }
    if let Some(deadline) = deadline {
        let fired_at = recorded(&after, "after_wait").expect("fired");
        assert!(
            fired_at >= deadline,
            "fired at {fired_at}, before {deadline}"
        );
    }
    assert!(log_rows(dir).is_empty(), "the log is cleared");
    landed
}

#[test]
fn sigkill_at_random_points_fires_once_per_run() {
    let trials: usize = std::env::var("CANO_TIMER_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut rng = Rng::from_env(0x7133);
    let aims = [Aim::Asked, Aim::Sleeping, Aim::Fired, Aim::Anywhere];
    let landed: Vec<Landed> = (0..trials)
        .map(|t| trial(aims[t % aims.len()], &mut rng, Duration::from_millis(800)))
        .collect();
    let mid_run = landed
        .iter()
        .filter(|l| !matches!(l, Landed::BeforeStart | Landed::AfterEnd))
        .count();
    assert!(
        mid_run * 2 >= trials,
        "too few kills hit a running workflow: {landed:?}"
    );
}
