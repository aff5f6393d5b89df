//! # Approval: a run waits for a signal in its redb file, across processes
//!
//! Run with:
//! `cargo run -p cano --example approval --features recovery`
//! (no command: the three steps below, one after the other, on a fresh file in the
//! system temp dir), or step by step:
//! `cargo run -p cano --features recovery --example approval -- <start|approve|resume|status> [options]`
//!
//! The order workflow is `Submit → AwaitApproval → Ship | Rejected | Expired → Done`.
//! `AwaitApproval` is a signal state (`#[task::signal]`): it waits for the signal
//! `"approval"`, whose payload is `{ "approved": bool, "by": String, "note": Option<String> }`,
//! and moves to `Expired` if no decision comes within its timeout (7 days; `start
//! --timeout SECONDS` to try it). Each order is a run with the id `order-<ID>` in a
//! [`RedbCheckpointStore`] file (default: `cano-approval.redb` in the system temp dir).
//!
//! Each step is a separate process:
//!
//! 1. `start` runs the order until it waits: once the `SignalWait` row (with the timeout's
//!    deadline) is durable in the file, the process stops the run and exits. Nothing is
//!    running now; the run is in the file.
//! 2. `approve` (or `approve --reject`) opens the file and sends the signal, with a signal
//!    id (default: derived from the decision and `--by`): sending the same id again
//!    changes nothing. A signal sent to an order the file does not hold is an error.
//! 3. `resume` continues the run with [`Workflow::resume_from`]: it consumes the decision
//!    (at once, as it is already in the file), runs to `Done`, prints the path taken and
//!    clears the run's log. Without a decision yet, it waits (for what is left of the
//!    timeout); Ctrl-C stops it and leaves the run in the file.
//!
//! `status` lists the runs in the file and what each waits for.
//!
//! redb lets one process open a file at a time: while `start` or `resume` holds it,
//! `approve` cannot open it and says so. (A service would open the store once and send
//! through that same store object, which wakes the waiting run at once.)
//!
//! ```text
//! cargo run -p cano --features recovery --example approval -- start --order 1042
//! cargo run -p cano --features recovery --example approval -- approve --order 1042 --by ana
//! cargo run -p cano --features recovery --example approval -- resume --order 1042
//! ```

use cano::cancel::CancellationToken;
use cano::prelude::*;
use cano::recovery::log;
use cano::signal::{Signal, SignalStore};
use cano::{ListRuns, RunStatus};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The signal `AwaitApproval` waits for.
const SIGNAL: &str = "approval";
const DEFAULT_ORDER: &str = "1042";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
const USAGE: &str = "usage:
  approval start   [--db PATH] [--order ID] [--timeout SECONDS]
  approval approve [--db PATH] [--order ID] [--by NAME] [--reject] [--note TEXT] [--id SIGNAL_ID]
  approval resume  [--db PATH] [--order ID]
  approval status  [--db PATH]";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Order {
    Submit,
    AwaitApproval,
    Ship,
    Rejected,
    Expired,
    Done,
}

/// The payload of the `"approval"` signal.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Approval {
    approved: bool,
    by: String,
    #[serde(default)]
    note: Option<String>,
}

/// Submits the order for approval.
struct Submit {
    order: String,
}

#[task(state = Order)]
impl Submit {
    /// Stable names: they are the `task_id`s of the run's checkpoint rows.
    fn name(&self) -> Cow<'static, str> {
        "submit".into()
    }

    async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
        say(&format!(
            "submit: order {} submitted for approval",
            self.order
        ));
        Ok(TaskResult::Single(Order::AwaitApproval))
    }
}

/// Waits for the `"approval"` signal, at most `timeout`.
struct AwaitApproval {
    timeout: Duration,
}

#[task::signal(state = Order)]
impl AwaitApproval {
    type Payload = Approval;

    fn name(&self) -> Cow<'static, str> {
        "await_approval".into()
    }

    fn signal(&self) -> Cow<'static, str> {
        SIGNAL.into()
    }

    /// Asked when the wait starts; a resumed run keeps the deadline in its log.
    fn timeout(&self) -> Option<(Duration, Order)> {
        Some((self.timeout, Order::Expired))
    }

    async fn on_signal(
        &self,
        _res: &Resources,
        decision: Approval,
    ) -> Result<TaskResult<Order>, CanoError> {
        let verdict = if decision.approved {
            "approved"
        } else {
            "rejected"
        };
        let note = decision
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        say(&format!(
            "await_approval: {verdict} by {}{note}",
            decision.by
        ));
        Ok(TaskResult::Single(if decision.approved {
            Order::Ship
        } else {
            Order::Rejected
        }))
    }
}

/// A last step: says `line` and moves to `Done`.
struct Finish {
    name: &'static str,
    line: &'static str,
}

#[task(state = Order)]
impl Finish {
    fn name(&self) -> Cow<'static, str> {
        self.name.into()
    }

    async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
        say(&format!("{}: {}", self.name, self.line));
        Ok(TaskResult::Single(Order::Done))
    }
}

/// Collects the states the run enters; says when it consumes a signal.
#[derive(Default)]
struct Trail(Mutex<Vec<String>>);

impl Trail {
    fn text(&self) -> String {
        self.0.lock().map(|p| p.join(" → ")).unwrap_or_default()
    }
}

impl WorkflowObserver for Trail {
    fn on_state_enter(&self, state: &str) {
        if let Ok(mut path) = self.0.lock() {
            path.push(state.to_owned());
        }
    }

    fn on_signal_received(&self, name: &str, id: &str) {
        say(&format!("consumed signal {name:?} (id {id:?})"));
    }
}

fn workflow(
    store: Arc<RedbCheckpointStore>,
    args: &Args,
    path: Arc<Trail>,
) -> Result<Workflow<Order>, CanoError> {
    let wf = Workflow::bare()
        .register(
            Order::Submit,
            Submit {
                order: args.order.clone(),
            },
        )
        .register_signal(
            Order::AwaitApproval,
            AwaitApproval {
                timeout: args.timeout.unwrap_or(DEFAULT_TIMEOUT),
            },
        )
        .register(
            Order::Ship,
            Finish {
                name: "ship",
                line: "the order is on its way",
            },
        )
        .register(
            Order::Rejected,
            Finish {
                name: "rejected",
                line: "the order is cancelled and the customer told",
            },
        )
        .register(
            Order::Expired,
            Finish {
                name: "expired",
                line: "no decision in time: the order is cancelled",
            },
        )
        .add_exit_state(Order::Done)
        .with_signal_store(store)
        .with_workflow_id(run_id(&args.order))
        .with_observer(path);
    wf.validate()?;
    Ok(wf)
}

fn run_id(order: &str) -> String {
    format!("order-{order}")
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

/// `d` for people: "6 d 23 h", "4 h 12 min", "37 s".
fn human(d: Duration) -> String {
    // Rounded: a 7-day timeout just recorded reads "7 d 0 h", not "6 d 23 h".
    let s = d.as_secs_f64().round() as u64;
    match s {
        86_400.. => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        3600.. => format!("{} h {} min", s / 3600, s % 3600 / 60),
        60.. => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{:.1} s", d.as_secs_f64()),
    }
}

/// What a run's status means, in words.
fn describe(status: &RunStatus) -> String {
    match status {
        RunStatus::Waiting {
            signal: Some(signal),
            deadline_ms,
        } => {
            let until = match deadline_ms {
                Some(deadline) if *deadline > now_ms() => format!(
                    ", {} left before it expires",
                    human(Duration::from_millis(deadline - now_ms()))
                ),
                Some(_) => ", but its timeout has passed: `resume` takes a decision already sent, \
                     or else expires it at once"
                    .into(),
                None => String::new(),
            };
            format!("waiting for the signal {signal:?}{until}")
        }
        RunStatus::Waiting { .. } => "waiting on a timer".into(),
        RunStatus::Forward => "stopped between states: `resume` continues it".into(),
        RunStatus::RollingBack { remaining } => {
            format!("rolling back ({remaining} steps left): `resume` finishes it")
        }
        RunStatus::Malformed(why) => format!("its log is malformed: {why}"),
        other => format!("{other:?}"),
    }
}

/// The command lines for the next steps.
fn command(sub: &str, args: &Args) -> String {
    let mut line = format!("cargo run -p cano --features recovery --example approval -- {sub}");
    if args.db != default_db() {
        line.push_str(&format!(" --db {}", args.db.display()));
    }
    if args.order != DEFAULT_ORDER {
        line.push_str(&format!(" --order {}", args.order));
    }
    line
}

struct Args {
    command: String,
    db: PathBuf,
    order: String,
    timeout: Option<Duration>,
    by: String,
    reject: bool,
    note: Option<String>,
    id: Option<String>,
}

fn default_db() -> PathBuf {
    std::env::temp_dir().join("cano-approval.redb")
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = match it.next() {
        Some(c) if ["start", "approve", "resume", "status"].contains(&c.as_str()) => c,
        Some(c) if c == "-h" || c == "--help" => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(c) => return Err(format!("unknown command {c:?}\n{USAGE}")),
        // No command: the whole demo, on a file of its own.
        None => {
            return Ok(Args {
                command: "demo".into(),
                db: std::env::temp_dir()
                    .join(format!("cano-approval-demo-{}.redb", std::process::id())),
                order: DEFAULT_ORDER.into(),
                timeout: None,
                by: "ana".into(),
                reject: false,
                note: None,
                id: None,
            });
        }
    };
    let mut args = Args {
        command,
        db: default_db(),
        order: DEFAULT_ORDER.into(),
        timeout: None,
        by: std::env::var("USER").unwrap_or_else(|_| "ana".into()),
        reject: false,
        note: None,
        id: None,
    };
    let only = |arg: &str, commands: &[&str], current: &str| {
        if commands.contains(&current) {
            Ok(())
        } else {
            Err(format!(
                "{arg} is an option of `{}`, not of `{current}`\n{USAGE}",
                commands.join("`/`")
            ))
        }
    };
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        let current = args.command.as_str();
        match arg.as_str() {
            "--db" => args.db = PathBuf::from(value()?),
            "--order" => {
                only(&arg, &["start", "approve", "resume"], current)?;
                args.order = value()?;
                if args.order.is_empty() {
                    return Err("--order needs a non-empty id".into());
                }
            }
            "--timeout" => {
                only(&arg, &["start"], current)?;
                let text = value()?;
                args.timeout = text
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        format!("--timeout {text:?}: expected a number of seconds, like 30")
                    })?;
            }
            "--by" => {
                only(&arg, &["approve"], current)?;
                args.by = value()?;
            }
            "--note" => {
                only(&arg, &["approve"], current)?;
                args.note = Some(value()?);
            }
            "--id" => {
                only(&arg, &["approve"], current)?;
                args.id = Some(value()?);
            }
            "--reject" => {
                only(&arg, &["approve"], current)?;
                args.reject = true;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Open the database, saying plainly when another process holds it.
fn open(db: &Path) -> Result<Arc<RedbCheckpointStore>, String> {
    RedbCheckpointStore::new(db).map(Arc::new).map_err(|e| {
        if e.to_string().contains("already open") {
            format!(
                "{} is in use by another process (a `start` or `resume` that is still \
                 running?). redb lets one process open the file at a time: stop that \
                 process (Ctrl-C in its terminal) and run this command again.\n  ({e})",
                db.display()
            )
        } else {
            format!("cannot open the order database: {e}")
        }
    })
}

/// The run of an order, as its log says; an error if the file holds none.
async fn find(store: &RedbCheckpointStore, args: &Args) -> Result<RunStatus, String> {
    let id = run_id(&args.order);
    let rows = store.load_run(&id).await.map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Err(format!(
            "{} holds no order {}: it was never started, or it finished (a finished run's \
             log is cleared). Start it with:\n  {}",
            args.db.display(),
            args.order,
            command("start", args)
        ));
    }
    Ok(log::summarize(&id, &rows).status)
}

async fn start(args: &Args) -> Result<(), String> {
    let store = open(&args.db)?;
    let id = run_id(&args.order);
    if !store
        .load_run(&id)
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        let status = find(&store, args).await?;
        return Err(format!(
            "order {} is already in {}: {}. Approve it, resume it, or pick another --order.",
            args.order,
            args.db.display(),
            describe(&status)
        ));
    }
    println!("=== start order {} (run {id:?}) ===", args.order);
    let path = Arc::new(Trail::default());
    let wf = workflow(store.clone(), args, path).map_err(|e| e.to_string())?;
    let (handle, token) = CancellationToken::new();
    let run = tokio::spawn(async move { wf.orchestrate_with_token(Order::Submit, token).await });

    // Run until the wait is durable: then stop the run (its log stays) and exit.
    while !run.is_finished() {
        let rows = store.load_run(&id).await.map_err(|e| e.to_string())?;
        if rows.last().is_some_and(|r| r.kind == RowKind::SignalWait) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.cancel();
    match run.await {
        Err(e) => return Err(format!("the run panicked: {e}")),
        Ok(Ok(end)) => return Err(format!("the run ended in {end:?} without waiting")),
        Ok(Err(e)) if e.is_cancelled() => {}
        Ok(Err(e)) => return Err(format!("the run failed: {e}")),
    }
    let status = find(&store, args).await?;
    println!(
        "=== order {} is {} ===\nIt is recorded in {}; this process exits now.\n\
         Approve it (or add --reject) with:\n  {}\nthen let it continue with:\n  {}",
        args.order,
        describe(&status),
        args.db.display(),
        command("approve", args),
        command("resume", args),
    );
    Ok(())
}

async fn approve(args: &Args) -> Result<(), String> {
    let store = open(&args.db)?;
    let status = find(&store, args).await?;
    let decision = Approval {
        approved: !args.reject,
        by: args.by.clone(),
        note: args.note.clone(),
    };
    let signal_id = args.id.clone().unwrap_or_else(|| {
        let verdict = if args.reject { "reject" } else { "approve" };
        format!("{verdict}-by-{}", args.by)
    });
    let signal = Signal::new(SIGNAL, signal_id.as_str(), &decision).map_err(|e| e.to_string())?;
    let stored = store
        .send_signal(&run_id(&args.order), signal)
        .await
        .map_err(|e| format!("could not send the approval: {e}"))?;
    let verdict = if args.reject { "rejection" } else { "approval" };
    if stored {
        println!(
            "stored the {verdict} of order {} by {} (signal id {signal_id:?}) in {}",
            args.order,
            args.by,
            args.db.display()
        );
    } else {
        println!(
            "a signal with the id {signal_id:?} is already pending for order {}: \
             a repeat, nothing changed",
            args.order
        );
    }
    if !matches!(
        status,
        RunStatus::Waiting {
            signal: Some(_),
            ..
        }
    ) {
        println!("(the order is not waiting for a decision now: {status:?})");
    }
    println!(
        "let the order continue with:\n  {}",
        command("resume", args)
    );
    Ok(())
}

async fn resume(args: &Args) -> Result<(), String> {
    let store = open(&args.db)?;
    let id = run_id(&args.order);
    let status = find(&store, args).await?;
    println!("=== resume order {}: {} ===", args.order, describe(&status));
    let pending = store
        .pending_signals(&id, SIGNAL)
        .await
        .map_err(|e| e.to_string())?;
    let open_wait = match &status {
        RunStatus::Waiting {
            signal: Some(_),
            deadline_ms,
        } => deadline_ms.is_none_or(|deadline| deadline > now_ms()),
        _ => false,
    };
    if open_wait && pending.is_empty() {
        println!(
            "No decision has been sent yet: the order keeps waiting. This process holds the \
             file, so `approve` cannot open it meanwhile: press Ctrl-C, send the decision \
             with\n  {}\nand resume again.",
            command("approve", args)
        );
    }

    // Ctrl-C cancels the run: its log stays, still waiting.
    let (handle, token) = CancellationToken::new();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            handle.cancel();
        }
    });
    let path = Arc::new(Trail::default());
    let wf = workflow(store.clone(), args, path.clone()).map_err(|e| e.to_string())?;
    match wf.resume_from_with_token(&id, token).await {
        Ok(end) => {
            let left = store.load_run(&id).await.map_err(|e| e.to_string())?.len();
            println!(
                "=== order {} finished in {end:?}; path: {} ===\n\
                 its log holds {left} row(s) now (a finished run's log is cleared)",
                args.order,
                path.text()
            );
            Ok(())
        }
        Err(e) if e.is_cancelled() => {
            println!(
                "=== stopped: order {} still waits in {} ===",
                args.order,
                args.db.display()
            );
            Ok(())
        }
        Err(e) => Err(format!(
            "the order's run failed: {e}\n(its log is kept in {}; `resume` retries)",
            args.db.display()
        )),
    }
}

async fn status(args: &Args) -> Result<(), String> {
    let store = open(&args.db)?;
    let runs = store.list_runs().await.map_err(|e| e.to_string())?;
    if runs.is_empty() {
        println!("{} holds no runs", args.db.display());
    }
    for run in runs {
        let pending = store
            .pending_signals(&run.workflow_id, SIGNAL)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "{}: in {} ({} rows), {}; {} decision(s) pending",
            run.workflow_id,
            run.last_state,
            run.rows,
            describe(&run.status),
            pending.len()
        );
    }
    Ok(())
}

/// The three steps in a row, each opening (and closing) the file as its own process would.
async fn demo(args: &Args) -> Result<(), String> {
    say(&format!(
        "demo on {} (each step opens the file anew, as a separate process would)",
        args.db.display()
    ));
    say("--- step 1: start");
    start(args).await?;
    say("--- step 2: approve");
    approve(args).await?;
    say("--- step 3: resume");
    let resumed = resume(args).await;
    for file in [args.db.clone(), {
        let mut wal = args.db.clone().into_os_string();
        wal.push("-wal");
        wal.into()
    }] {
        let _ = std::fs::remove_file(file);
    }
    resumed
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match parse_args() {
        Ok(args) => match args.command.as_str() {
            "start" => start(&args).await,
            "approve" => approve(&args).await,
            "resume" => resume(&args).await,
            "demo" => demo(&args).await,
            _ => status(&args).await,
        },
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
