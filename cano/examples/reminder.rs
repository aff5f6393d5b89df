//! # Reminder: a durable sleep survives a SIGKILL and fires once after the restart
//!
//! Run with:
//! `cargo run -p cano --example reminder --features recovery`
//! (options after `--`: `[--db PATH] [--after SECONDS]`)
//!
//! The workflow is `Schedule → Send → Done`. `Schedule` is a timer (`#[task::timer]`)
//! that waits `--after` seconds (default 10); `Send` fires the reminder: it prints
//! `reminder fired` and appends one line to a file next to the database
//! (`<db>` with the extension `fired.log`). The run has the fixed id `reminder` and
//! checkpoints to a [`RedbCheckpointStore`] (default: `cano-reminder.redb` in the system
//! temp dir).
//!
//! Before the timer sleeps, the engine records its wall-clock deadline in the run's log;
//! the program says when it has. Stop it mid-sleep — Ctrl-C, or `kill -9 <pid>` from
//! another terminal (the pid is printed) — and run the same command again: the program
//! finds the run in the database, prints how much of the wait is left, and resumes it
//! with [`Workflow::resume_from`]. The resumed run does not ask the timer how long to
//! wait again: it sleeps only the rest of the recorded deadline (and fires at once if the
//! deadline passed while nothing was running), fires once, and clears the log. The next
//! run after that schedules a new reminder.
//!
//! ```text
//! cargo run -p cano --features recovery --example reminder -- --after 30
//! #   it prints its pid; mid-sleep, from another terminal: kill -9 <pid>
//! cargo run -p cano --features recovery --example reminder
//! #   "found run "reminder" (2 checkpoint rows): ... 24.0 s left", then fires once
//! ```

use cano::cancel::CancellationToken;
use cano::prelude::*;
use cano::recovery::log::{self, LogEntry};
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RUN_ID: &str = "reminder";
const DEFAULT_AFTER: Duration = Duration::from_secs(10);
const USAGE: &str = "usage: reminder [--db PATH] [--after SECONDS]";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Reminder {
    Schedule,
    Send,
    Done,
}

/// The timer: waits `after`, then moves on to `Send`.
struct ScheduleReminder {
    after: Duration,
    /// Set when the timer was asked how long to wait: the next checkpoint is its deadline.
    asked: Arc<AtomicBool>,
}

#[task::timer(state = Reminder)]
impl ScheduleReminder {
    /// A stable name: it is the timer row's `task_id` in the log.
    fn name(&self) -> Cow<'static, str> {
        "schedule".into()
    }

    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        say(&format!(
            "schedule: the reminder fires in {:.1} s",
            self.after.as_secs_f64()
        ));
        self.asked.store(true, Ordering::SeqCst);
        Ok(TimerOutcome::Duration(self.after))
    }

    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Reminder>, CanoError> {
        say("schedule: the deadline has come");
        Ok(TaskResult::Single(Reminder::Send))
    }
}

/// Fires the reminder: prints it and appends a line to `fired`.
///
/// Like every task, it runs again if the process dies after it fired but before the run
/// recorded its next state (a few milliseconds); a real sender makes the send idempotent.
struct SendReminder {
    fired: PathBuf,
}

#[task(state = Reminder)]
impl SendReminder {
    fn name(&self) -> Cow<'static, str> {
        "send".into()
    }

    async fn run_bare(&self) -> Result<TaskResult<Reminder>, CanoError> {
        say("send: reminder fired");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.fired)
            .map_err(|e| {
                CanoError::task_execution(format!("cannot append to {}: {e}", self.fired.display()))
            })?;
        // One write call: a kill never leaves half a line.
        let line = format!(
            "reminder fired at {} ms since the epoch (pid {})\n",
            now_ms(),
            std::process::id()
        );
        file.write_all(line.as_bytes())?;
        Ok(TaskResult::Single(Reminder::Done))
    }
}

/// Says when the timer's deadline is durable: from then on, the wait survives a kill.
struct Progress {
    asked: Arc<AtomicBool>,
}

impl WorkflowObserver for Progress {
    fn on_checkpoint(&self, _workflow_id: &str, sequence: u64) {
        if self.asked.swap(false, Ordering::SeqCst) {
            say(&format!(
                "schedule: deadline recorded (checkpoint #{sequence}); stop me now \
                 (Ctrl-C, or kill -9 {}) and run me again",
                std::process::id()
            ));
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "  {line}");
    let _ = out.flush();
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Args {
    db: PathBuf,
    /// `--after`, if given.
    after: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        db: std::env::temp_dir().join("cano-reminder.redb"),
        after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value; {USAGE}"))
        };
        match arg.as_str() {
            "--db" => args.db = PathBuf::from(value()?),
            "--after" => {
                let text = value()?;
                args.after = text
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        format!("--after {text:?}: expected a number of seconds, like 10 or 2.5")
                    })?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg:?}; {USAGE}")),
        }
    }
    Ok(args)
}

fn workflow(store: Arc<RedbCheckpointStore>, after: Duration, fired: &Path) -> Workflow<Reminder> {
    let asked = Arc::new(AtomicBool::new(false));
    Workflow::bare()
        .register(
            Reminder::Schedule,
            ScheduleReminder {
                after,
                asked: asked.clone(),
            },
        )
        .register(
            Reminder::Send,
            SendReminder {
                fired: fired.to_path_buf(),
            },
        )
        .add_exit_state(Reminder::Done)
        .with_checkpoint_store(store)
        .with_workflow_id(RUN_ID)
        .with_observer(Arc::new(Progress { asked }))
}

/// What the log left by an earlier process says about the run, in one line.
fn describe(rows: &[CheckpointRow]) -> Result<String, CanoError> {
    let Some(last) = rows.iter().max_by_key(|r| r.sequence) else {
        return Ok("its log is empty".into());
    };
    Ok(match log::parse_row(RUN_ID, last)? {
        LogEntry::Timer { deadline_ms, .. } => {
            let now = now_ms();
            if deadline_ms > now {
                format!(
                    "it is sleeping until its recorded deadline: {:.1} s left",
                    Duration::from_millis(deadline_ms - now).as_secs_f64()
                )
            } else {
                format!(
                    "its deadline passed {:.1} s ago: it fires at once",
                    Duration::from_millis(now - deadline_ms).as_secs_f64()
                )
            }
        }
        _ => format!("it stopped in state {}", last.state),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let fired = args.db.with_extension("fired.log");
    let store = Arc::new(RedbCheckpointStore::new(&args.db)?);
    println!("checkpoint database: {}", args.db.display());
    println!("fired reminders go to: {}", fired.display());
    println!("pid {}", std::process::id());

    let rows = store.load_run(RUN_ID).await?;
    let after = args.after.unwrap_or(DEFAULT_AFTER);
    let wf = workflow(store.clone(), after, &fired);

    // Ctrl-C cancels the run: its log (with the deadline, once recorded) is kept, as after
    // a kill -9.
    let (handle, token) = CancellationToken::new();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            handle.cancel();
        }
    });

    let started = Instant::now();
    let outcome = if rows.is_empty() {
        println!("=== no run {RUN_ID:?} in the database: schedule a new reminder ===");
        wf.orchestrate_with_token(Reminder::Schedule, token).await
    } else {
        println!(
            "=== found run {RUN_ID:?} ({} checkpoint rows): {} ===",
            rows.len(),
            describe(&rows)?
        );
        if rows.iter().any(|r| r.kind == RowKind::Timer) && args.after.is_some() {
            println!("(--after is ignored: the deadline was fixed when the run was scheduled)");
        }
        wf.resume_from_with_token(RUN_ID, token).await
    };
    let took = started.elapsed().as_secs_f64();

    match outcome {
        Ok(end) => {
            let left = store.load_run(RUN_ID).await?.len();
            let count = std::fs::read_to_string(&fired)
                .map(|text| text.lines().count())
                .unwrap_or(0);
            println!(
                "=== run finished in {end:?} after {took:.1} s; its log holds {left} row(s) ==="
            );
            println!(
                "{} holds {count} fired reminder(s) in total",
                fired.display()
            );
            Ok(())
        }
        Err(err) if err.is_cancelled() => {
            println!(
                "=== cancelled after {took:.1} s: the run's log stays in the database; \
                 run the same command again to continue ==="
            );
            Ok(())
        }
        Err(err) => Err(format!(
            "the reminder run failed: {err}\n(its log is kept in {}; run again to retry, \
             or delete the file to start over)",
            args.db.display()
        )
        .into()),
    }
}
