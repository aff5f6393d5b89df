//! Signal waits under SIGKILL, with real processes: a run waiting in a `#[task::signal]`
//! state on a redb file is killed; while no process runs it, the test opens the file and
//! sends signals; a fresh process resumes the run.
//!
//! The test binary is its own driver: `signal_driver_entry` runs the workflow
//! `Prepare → Await (signal "approval") → Ship | Rejected | Expire → Done` when the
//! `CANO_CRASH_MODE` environment variable is set (`fresh` starts the run, `resume`
//! resumes it), and does nothing in a normal test run. The driver prints marker lines
//! the tests kill at (`WAITING` once the `SignalWait` row is durable, `CONSUMED` once
//! `on_signal` was handed a payload, that is after the `Signal` row is durable) and
//! records every call in a side-effect file, so that the tests can count, across
//! processes, how often each signal was consumed and what `on_signal` was given.
//!
//! redb lets one process open a file at a time: the test reads and writes the file only
//! while no driver runs.
#![cfg(all(unix, feature = "recovery"))]

mod crash;

use cano::RunStatus;
use cano::prelude::*;
use cano::recovery::log::{self, LogEntry};
use cano::signal::{Signal, SignalStore};
use crash::{Driver, now_ms, number_after, record, say, side_effects};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ENTRY: &str = "signal_driver_entry";
const RUN_ID: &str = "order-7";
const SIGNAL: &str = "approval";
/// Set in the driver: the wait's timeout in milliseconds (none if unset).
const TIMEOUT_VAR: &str = "CANO_SIGNAL_TIMEOUT_MS";
/// Set in the driver: how long `on_signal` takes after it was handed the payload.
const SLOW_VAR: &str = "CANO_SIGNAL_SLOW_MS";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum O {
    Prepare,
    Await,
    Ship,
    Rejected,
    Expire,
    Done,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Approval {
    approved: bool,
    by: String,
}

/// A plain state: records `<name> <pid>`, then moves to `next`.
struct Step {
    name: &'static str,
    next: O,
    dir: PathBuf,
}

#[task(state = O)]
impl Step {
    fn name(&self) -> Cow<'static, str> {
        self.name.into()
    }

    async fn run_bare(&self) -> Result<TaskResult<O>, CanoError> {
        record(
            &self.dir,
            &format!("{} {} {}", self.name, std::process::id(), now_ms()),
        )?;
        Ok(TaskResult::Single(self.next.clone()))
    }
}

/// Waits for "approval". `on_signal` records `on_signal <pid> <by> pending=<ids>` (the
/// signals still pending in the store as it runs), says `CONSUMED`, takes `slow`, then
/// records `on_signal_done <by>`.
struct Await {
    dir: PathBuf,
    store: Arc<RedbCheckpointStore>,
    timeout: Option<Duration>,
    slow: Duration,
}

#[task::signal(state = O)]
impl Await {
    type Payload = Approval;

    fn name(&self) -> Cow<'static, str> {
        "await".into()
    }

    fn signal(&self) -> Cow<'static, str> {
        SIGNAL.into()
    }

    fn timeout(&self) -> Option<(Duration, O)> {
        self.timeout.map(|t| (t, O::Expire))
    }

    async fn on_signal(&self, _res: &Resources, a: Approval) -> Result<TaskResult<O>, CanoError> {
        let pending = self.store.pending_signals(RUN_ID, SIGNAL).await?;
        let ids: Vec<&str> = pending.iter().map(|s| s.id.as_str()).collect();
        record(
            &self.dir,
            &format!(
                "on_signal {} {} pending={}",
                std::process::id(),
                a.by,
                ids.join(",")
            ),
        )?;
        say(&format!("CONSUMED {}", a.by));
        tokio::time::sleep(self.slow).await;
        record(&self.dir, &format!("on_signal_done {}", a.by))?;
        Ok(TaskResult::Single(if a.approved {
            O::Ship
        } else {
            O::Rejected
        }))
    }
}

/// Records each signal the run consumes (`received <name>/<id>`).
struct Received {
    dir: PathBuf,
}

impl WorkflowObserver for Received {
    fn on_signal_received(&self, name: &str, id: &str) {
        let _ = record(&self.dir, &format!("received {name}/{id}"));
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("signal.redb")
}

fn workflow(
    dir: &Path,
    store: Arc<RedbCheckpointStore>,
    timeout: Option<Duration>,
    slow: Duration,
) -> Workflow<O> {
    let step = |name, next| Step {
        name,
        next,
        dir: dir.to_path_buf(),
    };
    Workflow::bare()
        .register(O::Prepare, step("prepare", O::Await))
        .register_signal(
            O::Await,
            Await {
                dir: dir.to_path_buf(),
                store: store.clone(),
                timeout,
                slow,
            },
        )
        .register(O::Ship, step("ship", O::Done))
        .register(O::Expire, step("expire", O::Done))
        .add_exit_states(vec![O::Rejected, O::Done])
        .with_signal_store(store)
        .with_workflow_id(RUN_ID)
        .with_observer(Arc::new(Received {
            dir: dir.to_path_buf(),
        }))
}

fn env_ms(var: &str) -> Option<Duration> {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

/// The driver, run inside a child process.
#[test]
fn signal_driver_entry() {
    crash::drive(|mode, dir| async move {
        let timeout = env_ms(TIMEOUT_VAR);
        let slow = env_ms(SLOW_VAR).unwrap_or_default();
        let store = Arc::new(RedbCheckpointStore::new(db(&dir))?);
        let wf = workflow(&dir, store.clone(), timeout, slow);
        if mode == "resume" {
            say(&format!("RESUMING {}", now_ms()));
            wf.resume_from(RUN_ID).await
        } else {
            say("STARTED");
            // Say when the wait is durable: the log's last row is the SignalWait row.
            let watched = store.clone();
            tokio::spawn(async move {
                loop {
                    let rows = watched.load_run(RUN_ID).await.unwrap_or_default();
                    if rows.last().is_some_and(|r| r.kind == RowKind::SignalWait) {
                        say(&format!("WAITING {}", now_ms()));
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            wf.orchestrate(O::Prepare).await
        }
    });
}

/// Spawn a driver.
fn spawn(mode: &str, dir: &Path, timeout: Option<Duration>, slow: Duration) -> Driver {
    let mut cmd = crash::driver(ENTRY, mode, dir);
    cmd.env(SLOW_VAR, slow.as_millis().to_string());
    if let Some(timeout) = timeout {
        cmd.env(TIMEOUT_VAR, timeout.as_millis().to_string());
    }
    Driver::spawn(cmd)
}

/// Open the database while no driver runs, and do `f` with it.
fn with_store<T>(dir: &Path, f: impl AsyncFnOnce(&RedbCheckpointStore) -> T) -> T {
    crash::runtime().block_on(async {
        let store = RedbCheckpointStore::new(db(dir)).expect("reopen the database");
        f(&store).await
    })
}

fn log_rows(dir: &Path) -> Vec<CheckpointRow> {
    with_store(dir, async |store| {
        store.load_run(RUN_ID).await.expect("load the run")
    })
}

fn pending(dir: &Path) -> Vec<String> {
    with_store(dir, async |store| {
        let pending = store
            .pending_signals(RUN_ID, SIGNAL)
            .await
            .expect("pending");
        pending.into_iter().map(|s| s.id).collect()
    })
}

/// Send an approval (or a rejection) while no driver runs; whether it was stored.
fn send(dir: &Path, id: &str, approved: bool, by: &str) -> bool {
    let approval = Approval {
        approved,
        by: by.into(),
    };
    let signal = Signal::new(SIGNAL, id, &approval).expect("signal");
    with_store(dir, async |store| {
        store.send_signal(RUN_ID, signal).await.expect("send")
    })
}

/// The side effects starting with `what` followed by a space.
fn lines<'a>(effects: &'a [String], what: &str) -> Vec<&'a str> {
    let prefix = format!("{what} ");
    effects
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect()
}

/// The `by` of each `on_signal` call.
fn on_signal_by(effects: &[String]) -> Vec<&str> {
    lines(effects, "on_signal")
        .into_iter()
        .filter_map(|rest| rest.split_whitespace().nth(1))
        .collect()
}

/// Start a run and SIGKILL it once its wait is durable; returns what it printed.
fn kill_while_waiting(dir: &Path, timeout: Option<Duration>, slow: Duration) -> String {
    let mut fresh = spawn("fresh", dir, timeout, slow);
    assert!(fresh.until("WAITING").is_some(), "{}", fresh.printed);
    std::thread::sleep(Duration::from_millis(100));
    let printed = fresh.kill();
    assert!(!printed.contains("CONSUMED"), "{printed}");
    assert!(!printed.contains("COMPLETED"), "{printed}");
    let rows = log_rows(dir);
    assert_eq!(
        rows.last().map(|r| r.kind),
        Some(RowKind::SignalWait),
        "{rows:?}"
    );
    printed
}

#[test]
fn a_signal_sent_while_the_process_is_down_is_consumed_once_on_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    kill_while_waiting(dir, None, Duration::ZERO);
    let status = log::summarize(RUN_ID, &log_rows(dir)).status;
    assert_eq!(
        status,
        RunStatus::Waiting {
            deadline_ms: None,
            signal: Some(SIGNAL.into())
        }
    );

    assert!(send(dir, "s1", true, "ana"), "stored");
    assert!(!send(dir, "s1", true, "ana"), "a repeat changes nothing");
    assert_eq!(pending(dir), ["s1"]);

    let out = spawn("resume", dir, None, Duration::ZERO).finish();
    assert!(out.contains("COMPLETED Done"), "{out}");
    let resumed_at = number_after(&out, "RESUMING").expect("RESUMING line");
    let effects = side_effects(dir);
    assert_eq!(lines(&effects, "received"), ["approval/s1"], "{effects:?}");
    assert_eq!(on_signal_by(&effects), ["ana"], "{effects:?}");
    assert_eq!(lines(&effects, "on_signal_done"), ["ana"], "{effects:?}");
    assert_eq!(lines(&effects, "prepare").len(), 1, "{effects:?}");
    let shipped = lines(&effects, "ship");
    assert_eq!(shipped.len(), 1, "{effects:?}");
    let shipped_at: u64 = shipped[0]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .expect("ship time");
    assert!(
        shipped_at.saturating_sub(resumed_at) < 1_000,
        "the pending signal was not consumed at once: {} ms",
        shipped_at.saturating_sub(resumed_at)
    );
    assert!(log_rows(dir).is_empty(), "the log is cleared");
    assert!(pending(dir).is_empty(), "no signal is left pending");
}

#[test]
fn a_kill_during_on_signal_replays_its_payload_and_consumes_no_other_signal() {
    let slow = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    kill_while_waiting(dir, None, slow);
    assert!(send(dir, "s1", true, "ana"));

    // The resumed run consumes s1; it is killed in the middle of on_signal.
    let mut resumed = spawn("resume", dir, None, slow);
    assert!(resumed.until("CONSUMED").is_some(), "{}", resumed.printed);
    std::thread::sleep(Duration::from_millis(200));
    let printed = resumed.kill();
    assert!(
        !printed.contains("COMPLETED"),
        "killed too late:\n{printed}"
    );
    let rows = log_rows(dir);
    let last = rows.last().expect("a log");
    assert_eq!(last.kind, RowKind::Signal, "{rows:?}");
    match log::parse_row(RUN_ID, last).expect("a valid row") {
        LogEntry::Signal { signal, .. } => assert_eq!(signal.id, "s1"),
        other => panic!("not a signal row: {other:?}"),
    }
    assert!(pending(dir).is_empty(), "s1 left the store once consumed");

    // While nothing runs: the same id again (a retried webhook), and a different
    // decision. Neither may be consumed by the visit that already consumed s1.
    assert!(
        !send(dir, "s1", true, "ana"),
        "the log records s1 as consumed: a repeat"
    );
    assert!(send(dir, "s2", false, "bo"));
    assert_eq!(pending(dir), ["s2"]);

    let out = spawn("resume", dir, None, slow).finish();
    assert!(out.contains("COMPLETED Done"), "{out}");
    let effects = side_effects(dir);
    assert_eq!(
        on_signal_by(&effects),
        ["ana", "ana"],
        "on_signal is handed the consumed payload again: {effects:?}"
    );
    let replay = lines(&effects, "on_signal")[1];
    assert!(
        replay.ends_with("pending=s2"),
        "the other signals stay pending during the replay: {effects:?}"
    );
    assert_eq!(lines(&effects, "on_signal_done"), ["ana"], "{effects:?}");
    assert_eq!(
        lines(&effects, "received"),
        ["approval/s1"],
        "one signal consumed in all: {effects:?}"
    );
    assert_eq!(lines(&effects, "ship").len(), 1, "{effects:?}");
    assert!(log_rows(dir).is_empty(), "the log is cleared");
    assert!(
        pending(dir).is_empty(),
        "the unconsumed signals went with the log"
    );
}

#[test]
fn a_timeout_that_passed_while_the_process_was_down_moves_on_at_once() {
    let timeout = Duration::from_secs(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let spawned_at = now_ms();
    let printed = kill_while_waiting(dir, Some(timeout), Duration::ZERO);
    let waiting_at = number_after(&printed, "WAITING").expect("WAITING line");
    let rows = log_rows(dir);
    let deadline = match log::summarize(RUN_ID, &rows).status {
        RunStatus::Waiting {
            deadline_ms: Some(deadline),
            signal: Some(signal),
        } if signal == SIGNAL => deadline,
        other => panic!("not waiting for {SIGNAL:?} with a deadline: {other:?}"),
    };
    let timeout_ms = timeout.as_millis() as u64;
    assert!(
        (spawned_at + timeout_ms..=waiting_at + timeout_ms).contains(&deadline),
        "the deadline {deadline} is not the timeout after the wait began \
         ({spawned_at}..={waiting_at})"
    );
    while now_ms() < deadline + 200 {
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = spawn("resume", dir, Some(timeout), Duration::ZERO).finish();
    assert!(out.contains("COMPLETED Done"), "{out}");
    let resumed_at = number_after(&out, "RESUMING").expect("RESUMING line");
    let effects = side_effects(dir);
    let expired = lines(&effects, "expire");
    assert_eq!(expired.len(), 1, "{effects:?}");
    let expired_at: u64 = expired[0]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .expect("expire time");
    let took = expired_at.saturating_sub(resumed_at);
    assert!(
        took < 500,
        "the deadline had passed, yet the resumed run waited {took} ms"
    );
    assert!(on_signal_by(&effects).is_empty(), "{effects:?}");
    assert!(lines(&effects, "ship").is_empty(), "{effects:?}");
    assert!(log_rows(dir).is_empty(), "the log is cleared");
}
