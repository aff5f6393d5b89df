//! Durable run data under SIGKILL, with real processes: a run on a redb file is killed
//! around the moment its run data becomes durable, and a fresh process resumes it.
//!
//! The test binary is its own driver: `data_driver_entry` runs the workflow
//! `Quote → Charge → Ship → Done` when the `CANO_CRASH_MODE` environment variable is set
//! (`fresh` starts the run, `resume` resumes it), and does nothing in a normal test run.
//! `Quote` writes `amount`; `Charge` reads it, writes `charge_id` (unique to the process:
//! `ch-<pid>-<start ms>`), says `CHARGED`, then takes `CANO_DATA_CHARGE_MS` before it
//! returns; `Ship` reads `charge_id`, says `SHIPPING`, then takes `CANO_DATA_SHIP_MS`.
//! Every task records what it saw (its idempotency key, the values it read) in a
//! side-effect file, so that the tests can compare across processes.
//!
//! What is checked: the writes of a state are durable only with the entry row of the next
//! state. A process killed inside `Charge` after its `put` leaves no `charge_id` in the
//! log, and the re-run of `Charge` (same idempotency key) does not see it; a process
//! killed in `Ship` left `charge_id` in `Ship`'s entry row, and the resumed `Ship` sees
//! it without `Charge` running again. Between processes the test reads the log (redb
//! lets one process open a file at a time: only while no driver runs).
//!
//! `sigkill_at_random_points_commits_one_charge_id` runs `CANO_DATA_KILL_TRIALS` trials
//! (default 3; about 1.5 s each), each killing up to two processes at random points;
//! `CANO_CRASH_SEED` repeats a run's random kill delays.
#![cfg(all(unix, feature = "recovery"))]

mod crash;

use cano::prelude::*;
use cano::recovery::log::{self, LogEntry};
use cano::run_data::RunData;
use crash::{Driver, Rng, now_ms, record, say, side_effects};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ENTRY: &str = "data_driver_entry";
const RUN_ID: &str = "order-9";
const AMOUNT: u64 = 1999;
/// Set in the driver: how long `Charge` takes after its write, in milliseconds.
const CHARGE_VAR: &str = "CANO_DATA_CHARGE_MS";
/// Set in the driver: how long `Ship` takes after it started, in milliseconds.
const SHIP_VAR: &str = "CANO_DATA_SHIP_MS";
/// `Charge` is visit 1 of the run (`Quote` is visit 0), `Ship` visit 2.
const CHARGE_KEY: &str = "order-9/1";
const SHIP_KEY: &str = "order-9/2";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum D {
    Quote,
    Charge,
    Ship,
    Done,
}

fn pid() -> u32 {
    std::process::id()
}

/// Writes `amount`; records `quote <pid>`.
struct Quote {
    dir: PathBuf,
}

#[task(state = D)]
impl Quote {
    fn name(&self) -> Cow<'static, str> {
        "quote".into()
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<D>, CanoError> {
        record(&self.dir, &format!("quote {}", pid()))?;
        RunData::current()?.put("amount", AMOUNT)?;
        Ok(TaskResult::Single(D::Charge))
    }
}

/// Reads `amount` and any `charge_id`, writes `charge_id`; records
/// `charge <pid> <key> <amount> <charge_id before or -> <charge_id written>`, says
/// `CHARGED <charge_id>`, takes `pause`, records `charge_done <pid>`.
struct Charge {
    dir: PathBuf,
    charge_id: String,
    pause: Duration,
}

#[task(state = D)]
impl Charge {
    fn name(&self) -> Cow<'static, str> {
        "charge".into()
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<D>, CanoError> {
        let data = RunData::current()?;
        let amount: u64 = data.get("amount")?;
        let before = data.get::<String>("charge_id").ok();
        data.put("charge_id", self.charge_id.clone())?;
        record(
            &self.dir,
            &format!(
                "charge {} {} {amount} {} {}",
                pid(),
                data.idempotency_key(),
                before.as_deref().unwrap_or("-"),
                self.charge_id
            ),
        )?;
        say(&format!("CHARGED {}", self.charge_id));
        tokio::time::sleep(self.pause).await;
        record(&self.dir, &format!("charge_done {}", pid()))?;
        Ok(TaskResult::Single(D::Ship))
    }
}

/// Reads `charge_id`; records `ship <pid> <key> <charge_id>`, says `SHIPPING <charge_id>`,
/// takes `pause`.
struct Ship {
    dir: PathBuf,
    pause: Duration,
}

#[task(state = D)]
impl Ship {
    fn name(&self) -> Cow<'static, str> {
        "ship".into()
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<D>, CanoError> {
        let data = RunData::current()?;
        let charge_id: String = data.get("charge_id")?;
        record(
            &self.dir,
            &format!("ship {} {} {charge_id}", pid(), data.idempotency_key()),
        )?;
        say(&format!("SHIPPING {charge_id}"));
        tokio::time::sleep(self.pause).await;
        Ok(TaskResult::Single(D::Done))
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("data.redb")
}

fn workflow(
    dir: &Path,
    store: Arc<RedbCheckpointStore>,
    charge_pause: Duration,
    ship_pause: Duration,
) -> Workflow<D> {
    let dir = dir.to_path_buf();
    Workflow::bare()
        .register(D::Quote, Quote { dir: dir.clone() })
        .register(
            D::Charge,
            Charge {
                dir: dir.clone(),
                charge_id: format!("ch-{}-{}", pid(), now_ms()),
                pause: charge_pause,
            },
        )
        .register(
            D::Ship,
            Ship {
                dir,
                pause: ship_pause,
            },
        )
        .add_exit_state(D::Done)
        .with_checkpoint_store(store)
        .with_workflow_id(RUN_ID)
        .with_run_data()
}

fn env_ms(var: &str) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis)
}

/// The driver, run inside a child process.
#[test]
fn data_driver_entry() {
    crash::drive(|mode, dir| async move {
        let (charge_pause, ship_pause) = (env_ms(CHARGE_VAR), env_ms(SHIP_VAR));
        let store = Arc::new(RedbCheckpointStore::new(db(&dir))?);
        let wf = workflow(&dir, store, charge_pause, ship_pause);
        if mode == "resume" {
            say(&format!("RESUMING {}", pid()));
            wf.resume_from(RUN_ID).await
        } else {
            say(&format!("STARTED {}", pid()));
            wf.orchestrate(D::Quote).await
        }
    });
}

/// Spawn a driver whose `Charge` and `Ship` take `charge` and `ship` after their work.
fn spawn(mode: &str, dir: &Path, charge: Duration, ship: Duration) -> Driver {
    let mut cmd = crash::driver(ENTRY, mode, dir);
    cmd.env(CHARGE_VAR, charge.as_millis().to_string())
        .env(SHIP_VAR, ship.as_millis().to_string());
    Driver::spawn(cmd)
}

/// Run a driver to its end, with no pauses; returns what it printed.
fn finish(mode: &str, dir: &Path) -> String {
    spawn(mode, dir, Duration::ZERO, Duration::ZERO).finish()
}

/// The run's log, read through a short-lived store (no driver may run).
fn log_rows(dir: &Path) -> Vec<CheckpointRow> {
    crash::runtime().block_on(async {
        let store = RedbCheckpointStore::new(db(dir)).expect("reopen the database");
        store.load_run(RUN_ID).await.expect("load the run")
    })
}

/// The values the log's entry rows set, in sequence order: `(entry state, key, value)`.
fn logged_sets(rows: &[CheckpointRow]) -> Vec<(String, String, serde_json::Value)> {
    let mut out = Vec::new();
    for row in rows {
        if let LogEntry::StateEntry {
            state,
            writes: Some(writes),
            ..
        } = log::parse_row(RUN_ID, row).expect("a well-formed row")
        {
            for (key, stored) in writes.set {
                out.push((state.to_string(), key, stored.value));
            }
        }
    }
    out
}

/// The `charge_id` values the log records, with the state whose entry row carries each.
fn logged_charge_ids(rows: &[CheckpointRow]) -> Vec<(String, String)> {
    logged_sets(rows)
        .into_iter()
        .filter(|(_, key, _)| key == "charge_id")
        .map(|(state, _, value)| {
            let id = value.as_str().expect("charge_id is a string").to_string();
            (state, id)
        })
        .collect()
}

/// The side effects `what`, split into words (without `what`).
fn lines(effects: &[String], what: &str) -> Vec<Vec<String>> {
    let prefix = format!("{what} ");
    effects
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// One `Charge` call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChargeCall {
    pid: String,
    key: String,
    amount: String,
    before: String,
    wrote: String,
}

fn charges(effects: &[String]) -> Vec<ChargeCall> {
    lines(effects, "charge")
        .into_iter()
        .map(|w| ChargeCall {
            pid: w[0].clone(),
            key: w[1].clone(),
            amount: w[2].clone(),
            before: w[3].clone(),
            wrote: w[4].clone(),
        })
        .collect()
}

/// One `Ship` call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShipCall {
    pid: String,
    key: String,
    charge_id: String,
}

fn ships(effects: &[String]) -> Vec<ShipCall> {
    lines(effects, "ship")
        .into_iter()
        .map(|w| ShipCall {
            pid: w[0].clone(),
            key: w[1].clone(),
            charge_id: w[2].clone(),
        })
        .collect()
}

/// The pid in a `charge_id` (`ch-<pid>-<ms>`).
fn writer_of(charge_id: &str) -> &str {
    charge_id.split('-').nth(1).expect("ch-<pid>-<ms>")
}

/// The pid a driver printed after `marker`.
fn pid_after(printed: &str, marker: &str) -> String {
    printed
        .lines()
        .find_map(|l| {
            l.split_once(marker)
                .map(|(_, rest)| rest.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {marker} line in:\n{printed}"))
}

#[test]
fn a_kill_after_the_write_loses_it_and_the_rerun_keeps_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();

    // Killed while Charge sleeps after its put.
    let mut fresh = spawn("fresh", dir, Duration::from_secs(2), Duration::ZERO);
    let lost = fresh.until("CHARGED").expect("CHARGED");
    std::thread::sleep(Duration::from_millis(100));
    let printed = fresh.kill();
    let killed = pid_after(&printed, "STARTED");
    assert!(!printed.contains("SHIPPING"), "killed too late:\n{printed}");
    assert_eq!(writer_of(&lost), killed);

    let rows = log_rows(dir);
    let states: Vec<(RowKind, &str)> = rows.iter().map(|r| (r.kind, r.state.as_str())).collect();
    assert_eq!(
        states,
        [
            (RowKind::StateEntry, "Quote"),
            (RowKind::StateEntry, "Charge")
        ],
        "{rows:?}"
    );
    // Quote's write went in with Charge's entry row; Charge's write is nowhere.
    assert_eq!(
        logged_sets(&rows),
        [("Charge".into(), "amount".into(), serde_json::json!(AMOUNT))]
    );

    let out = finish("resume", dir);
    assert!(out.contains("COMPLETED Done"), "{out}");
    let resumed = pid_after(&out, "RESUMING");
    let effects = side_effects(dir);
    let calls = charges(&effects);
    assert_eq!(calls.len(), 2, "{effects:?}");
    let (first, again) = (&calls[0], &calls[1]);
    assert_eq!(
        (first.pid.as_str(), again.pid.as_str()),
        (killed.as_str(), resumed.as_str())
    );
    // The re-run sees Quote's amount, not the killed attempt's charge_id, and has the
    // killed attempt's idempotency key.
    assert_eq!(again.amount, AMOUNT.to_string(), "{effects:?}");
    assert_eq!(again.before, "-", "the lost write is visible: {effects:?}");
    assert_eq!(first.key, CHARGE_KEY, "{effects:?}");
    assert_eq!(
        again.key, first.key,
        "the re-run's key differs: {effects:?}"
    );
    assert_eq!(first.wrote, lost);
    assert_ne!(again.wrote, lost);
    // Ship sees the charge_id of the process that completed Charge.
    let shipped = ships(&effects);
    assert_eq!(
        shipped,
        [ShipCall {
            pid: resumed.clone(),
            key: SHIP_KEY.into(),
            charge_id: again.wrote.clone(),
        }],
        "{effects:?}"
    );
    assert_eq!(lines(&effects, "quote").len(), 1, "{effects:?}");
    assert!(log_rows(dir).is_empty(), "the log is cleared");
}

#[test]
fn a_kill_after_the_next_entry_row_keeps_the_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();

    // Killed while Ship sleeps: its entry row, carrying charge_id, is durable.
    let mut fresh = spawn("fresh", dir, Duration::ZERO, Duration::from_secs(2));
    let committed = fresh.until("SHIPPING").expect("SHIPPING");
    std::thread::sleep(Duration::from_millis(100));
    let printed = fresh.kill();
    let killed = pid_after(&printed, "STARTED");
    assert!(
        !printed.contains("COMPLETED"),
        "killed too late:\n{printed}"
    );
    assert_eq!(writer_of(&committed), killed);

    let rows = log_rows(dir);
    assert_eq!(
        rows.last().map(|r| (r.kind, r.state.as_str())),
        Some((RowKind::StateEntry, "Ship")),
        "{rows:?}"
    );
    assert_eq!(
        logged_charge_ids(&rows),
        [("Ship".to_string(), committed.clone())],
        "{rows:?}"
    );

    let out = finish("resume", dir);
    assert!(out.contains("COMPLETED Done"), "{out}");
    let resumed = pid_after(&out, "RESUMING");
    let effects = side_effects(dir);
    // Charge ran once, in the killed process; the resumed Ship sees its charge_id, with
    // the killed Ship's key.
    let calls = charges(&effects);
    assert_eq!(calls.len(), 1, "Charge ran again: {effects:?}");
    assert_eq!(calls[0].wrote, committed);
    assert_eq!(lines(&effects, "charge_done").len(), 1, "{effects:?}");
    let shipped = ships(&effects);
    assert_eq!(
        shipped,
        [
            ShipCall {
                pid: killed,
                key: SHIP_KEY.into(),
                charge_id: committed.clone(),
            },
            ShipCall {
                pid: resumed,
                key: SHIP_KEY.into(),
                charge_id: committed,
            },
        ],
        "{effects:?}"
    );
    assert!(log_rows(dir).is_empty(), "the log is cleared");
}

/// Where a kill landed, from the log it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// No log, nothing done: the run had not started.
    BeforeStart,
    /// The last entry row is the state's.
    InQuote,
    InCharge,
    InShip,
    AtDone,
    /// The log was cleared: the run had finished.
    AfterEnd,
}

fn landed(rows: &[CheckpointRow], effects: &[String]) -> Landed {
    match rows.last() {
        None if effects.is_empty() => Landed::BeforeStart,
        None => Landed::AfterEnd,
        Some(last) => match (last.kind, last.state.as_str()) {
            (RowKind::StateEntry, "Quote") => Landed::InQuote,
            (RowKind::StateEntry, "Charge") => Landed::InCharge,
            (RowKind::StateEntry, "Ship") => Landed::InShip,
            (RowKind::StateEntry, "Done") => Landed::AtDone,
            other => panic!("unexpected last row {other:?}: {rows:?}"),
        },
    }
}

const TRIAL_CHARGE: Duration = Duration::from_millis(150);
const TRIAL_SHIP: Duration = Duration::from_millis(150);

/// How a trial picks its first kill point.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// While `Charge` sleeps after its write.
    Charged,
    /// While `Ship` sleeps (its entry row is durable).
    Shipping,
    /// Anywhere, timed from the start of the run.
    Anywhere,
}

/// One trial: start a run and SIGKILL it at a random point near `aim`; if that left the
/// run unfinished, resume it and SIGKILL that at a random point too; then let a last
/// process finish it, and check the charge_id the run committed.
fn trial(aim: Aim, rng: &mut Rng) -> Vec<Landed> {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Kill delays spread over the whole run (both pauses, and a little more).
    let whole = (TRIAL_CHARGE + TRIAL_SHIP).as_millis() as u64 + 100;

    let mut completions = 0;
    let mut path = Vec::new();
    // The charge_ids seen in the log between processes, with the killed process's pid.
    let mut committed: Vec<(String, String)> = Vec::new();
    // How many Charge calls were recorded when the log first showed a charge_id.
    let mut charges_at_commit = None;
    let mut mode = "fresh";
    for kill in 0..2 {
        let mut driver = spawn(mode, dir, TRIAL_CHARGE, TRIAL_SHIP);
        let start = if mode == "fresh" {
            "STARTED"
        } else {
            "RESUMING"
        };
        let pid = driver.until(start).expect("the driver started");
        let (marker, span) = match aim {
            Aim::Charged if kill == 0 => ("CHARGED", TRIAL_CHARGE.as_millis() as u64 * 3 / 4),
            Aim::Shipping if kill == 0 => ("SHIPPING", TRIAL_SHIP.as_millis() as u64 * 3 / 4),
            _ => (start, whole),
        };
        if marker != start {
            assert!(driver.until(marker).is_some(), "{}", driver.printed);
        }
        let delay = rng.below(span);
        std::thread::sleep(Duration::from_millis(delay));
        let printed = driver.kill();
        completions += usize::from(printed.contains("COMPLETED Done"));

        let rows = log_rows(dir);
        let effects = side_effects(dir);
        let at = landed(&rows, &effects);
        eprintln!("{mode} process killed {delay} ms after {marker}: landed {at:?}");
        path.push(at);
        for (state, id) in logged_charge_ids(&rows) {
            assert_eq!(state, "Ship", "charge_id recorded with {state}: {rows:?}");
            committed.push((pid.clone(), id));
            charges_at_commit.get_or_insert_with(|| charges(&effects).len());
        }
        match at {
            Landed::AfterEnd => break,
            Landed::BeforeStart => mode = "fresh",
            _ => mode = "resume",
        }
    }
    if path.last() != Some(&Landed::AfterEnd) {
        let out = finish(mode, dir);
        completions += usize::from(out.contains("COMPLETED Done"));
        assert_eq!(completions, 1, "the run did not complete once: {out}");
    }
    // A process may have finished and been killed before it said so.
    assert!(completions <= 1, "the run completed twice");

    let effects = side_effects(dir);
    let calls = charges(&effects);
    let shipped = ships(&effects);
    assert!(!calls.is_empty() && !shipped.is_empty(), "{effects:?}");
    // Every Charge call is the same visit, sees Quote's amount and no charge_id.
    for call in &calls {
        assert_eq!(call.key, CHARGE_KEY, "{effects:?}");
        assert_eq!(call.amount, AMOUNT.to_string(), "{effects:?}");
        assert_eq!(call.before, "-", "Charge saw a charge_id: {effects:?}");
    }
    // Every Ship call is the same visit and sees one and the same charge_id.
    let charge_id = shipped[0].charge_id.clone();
    for ship in &shipped {
        assert_eq!(ship.key, SHIP_KEY, "{effects:?}");
        assert_eq!(ship.charge_id, charge_id, "two charge_ids: {effects:?}");
    }
    let writer = writer_of(&charge_id);
    // Its writer's Charge completed.
    assert!(
        calls
            .iter()
            .any(|c| c.wrote == charge_id && c.pid == writer),
        "{charge_id} was never written: {effects:?}"
    );
    assert!(
        lines(&effects, "charge_done")
            .iter()
            .any(|w| w[0] == writer),
        "{charge_id} was written by a process whose Charge did not complete: {effects:?}"
    );
    if let Some((first_pid, first)) = committed.first() {
        // Seen in the log after a kill: written by the first process whose log showed
        // it (else an earlier look would have seen it); it never changed, and Charge did
        // not run after.
        for (_, id) in &committed {
            assert_eq!(id, first, "the log changed its charge_id: {committed:?}");
        }
        assert_eq!(&charge_id, first, "{effects:?}");
        assert_eq!(first_pid, writer, "{committed:?}");
        assert_eq!(
            Some(calls.len()),
            charges_at_commit,
            "Charge ran after its write was committed: {effects:?}"
        );
    } else {
        // Committed by the process that finished the run: its own Ship saw it first.
        assert_eq!(shipped[0].pid, writer, "{effects:?}");
    }
    let quotes = lines(&effects, "quote").len();
    let in_quote = path.iter().filter(|l| **l == Landed::InQuote).count();
    assert!((1..=1 + in_quote).contains(&quotes), "{path:?} {effects:?}");
    assert!(log_rows(dir).is_empty(), "the log is cleared");
    path
}

#[test]
fn sigkill_at_random_points_commits_one_charge_id() {
    let trials: usize = std::env::var("CANO_DATA_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut rng = Rng::from_env(0xda7a);
    let aims = [Aim::Charged, Aim::Shipping, Aim::Anywhere];
    let paths: Vec<Vec<Landed>> = (0..trials)
        .map(|t| trial(aims[t % aims.len()], &mut rng))
        .collect();
    let mid_run = paths
        .iter()
        .filter_map(|p| p.first())
        .filter(|l| !matches!(l, Landed::BeforeStart | Landed::AfterEnd))
        .count();
    assert!(
        mid_run * 2 >= trials,
        "too few kills hit a running workflow: {paths:?}"
    );
}
