//! # Saga crash and resume: a process killed mid-saga is rolled back by another
//!
//! Run with: `cargo run -p cano --example saga_crash_resume --features recovery`
//!
//! An order saga (reserve stock, charge the card, ship) runs on a durable
//! [`RedbCheckpointStore`] in a temporary directory. The program starts a copy of
//! itself as a worker process to run the saga, and kills it with SIGKILL at a marker
//! line the worker prints. It then opens the same database, shows the checkpoint log
//! the dead worker left behind, and calls [`Workflow::resume_from`] in this process.
//! Every side effect is appended to a file, so the program can check at the end that
//! each completed step was compensated exactly once, most recent first.
//!
//! Two crashes are shown:
//!
//! 1. **During the forward steps.** The worker reserved the stock and charged the card
//!    (each step's output is in the log as a `CompensationCompletion` row), then dies
//!    while waiting for the courier. The resumed run enters `Ship` again, the courier
//!    rejects the parcel, and the two earlier steps, done by the dead process, are
//!    compensated from their recorded outputs.
//! 2. **During the rollback.** The worker's courier rejects the parcel, the card is
//!    refunded, and the worker dies while releasing the stock. The log records the
//!    rollback (`RollbackStarted`, then `Compensated` after the refund), so the resumed
//!    run only finishes it: the stock is released, the card is not refunded twice.
//!
//! (cano 0.12.0 did not record rollbacks; see COMPATIBILITY.md.)

use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const COURIER_ERROR: &str = "courier rejected the parcel: address not deliverable";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Order {
    Reserve,
    Charge,
    Ship,
    Done,
}

/// Where the worker is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// While `Ship` waits for the courier, after both earlier steps completed.
    Forward,
    /// While the stock is released, after the refund was recorded.
    Rollback,
}

impl Crash {
    fn arg(self) -> &'static str {
        match self {
            Crash::Forward => "forward",
            Crash::Rollback => "rollback",
        }
    }

    fn from_arg(arg: &str) -> Option<Self> {
        [Crash::Forward, Crash::Rollback]
            .into_iter()
            .find(|c| c.arg() == arg)
    }

    /// The line after which the parent kills the worker.
    fn marker(self) -> &'static str {
        match self {
            Crash::Forward => "ship: waiting for the courier",
            Crash::Rollback => "undo reserve: calling the warehouse",
        }
    }
}

/// Which process runs the tasks, the crash being staged, and where side effects go.
#[derive(Resource)]
struct Env {
    dir: PathBuf,
    crash: Crash,
    worker: bool,
}

impl Env {
    /// Appends a side effect to `effects.log`, tagged with the process that did it.
    fn effect(&self, what: &str) -> Result<(), CanoError> {
        let who = if self.worker { "worker" } else { "resumed" };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("effects.log"))?;
        writeln!(file, "{what} [{who}]")?;
        say(&format!("{what} [{who}]"));
        Ok(())
    }

    /// In the worker, at the staged crash point: print the marker and wait to be killed.
    async fn maybe_hang(&self, crash: Crash) {
        if self.worker && self.crash == crash {
            say(crash.marker());
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
}

fn env(res: &Resources) -> Result<Arc<Env>, CanoError> {
    res.get::<Env, _>("env")
}

#[derive(Debug, Serialize, Deserialize)]
struct Hold {
    hold_id: String,
    qty: u32,
}

struct ReserveStock;

#[saga::task(state = Order)]
impl ReserveStock {
    type Output = Hold;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    /// A stable name: it keys the compensation in the log, across processes and builds.
    fn name(&self) -> Cow<'static, str> {
        "reserve-stock".into()
    }

    async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, Hold), CanoError> {
        env(res)?.effect("reserve H-7")?;
        let hold = Hold {
            hold_id: "H-7".into(),
            qty: 2,
        };
        Ok((TaskResult::Single(Order::Charge), hold))
    }

    async fn compensate(&self, res: &Resources, hold: Hold) -> Result<(), CanoError> {
        let env = env(res)?;
        env.maybe_hang(Crash::Rollback).await;
        env.effect(&format!("release {} ({} units)", hold.hold_id, hold.qty))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Payment {
    payment_id: String,
    amount_cents: u64,
}

struct ChargeCard;

#[saga::task(state = Order)]
impl ChargeCard {
    type Output = Payment;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        "charge-card".into()
    }

    async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, Payment), CanoError> {
        env(res)?.effect("charge PAY-31")?;
        let payment = Payment {
            payment_id: "PAY-31".into(),
            amount_cents: 2_598,
        };
        Ok((TaskResult::Single(Order::Ship), payment))
    }

    async fn compensate(&self, res: &Resources, payment: Payment) -> Result<(), CanoError> {
        env(res)?.effect(&format!(
            "refund {} ({} cents)",
            payment.payment_id, payment.amount_cents
        ))
    }
}

struct ShipParcel;

#[saga::task(state = Order)]
impl ShipParcel {
    type Output = String;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        "ship-parcel".into()
    }

    async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, String), CanoError> {
        env(res)?.maybe_hang(Crash::Forward).await;
        say("ship: the courier rejected the parcel");
        Err(CanoError::task_execution(COURIER_ERROR))
    }

    async fn compensate(&self, res: &Resources, label: String) -> Result<(), CanoError> {
        env(res)?.effect(&format!("cancel label {label}"))
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "  {line}");
    let _ = out.flush();
}

fn workflow(env: Env, store: Arc<RedbCheckpointStore>) -> Workflow<Order> {
    let run_id = format!("order-{}", env.crash.arg());
    Workflow::new(Resources::new().insert("env", env))
        .register_with_compensation(Order::Reserve, ReserveStock)
        .register_with_compensation(Order::Charge, ChargeCard)
        .register_with_compensation(Order::Ship, ShipParcel)
        .add_exit_state(Order::Done)
        .with_checkpoint_store(store)
        .with_workflow_id(run_id)
}

fn db_path(dir: &Path, crash: Crash) -> PathBuf {
    dir.join(format!("{}.redb", crash.arg()))
}

/// The worker process: run the saga from the start (it is killed before it ends).
async fn worker(crash: Crash, dir: PathBuf) -> Result<(), CanoError> {
    let store = Arc::new(RedbCheckpointStore::new(db_path(&dir, crash))?);
    let env = Env {
        dir,
        crash,
        worker: true,
    };
    let outcome = workflow(env, store).orchestrate(Order::Reserve).await;
    say(&format!(
        "worker finished with {outcome:?} (it should have been killed!)"
    ));
    std::process::exit(1);
}

fn print_log(rows: &[CheckpointRow]) {
    for row in rows {
        let detail = match row.kind {
            RowKind::CompensationCompletion => format!(
                "{} output={}",
                row.task_id,
                String::from_utf8_lossy(row.output_blob.as_deref().unwrap_or_default())
            ),
            RowKind::RollbackStarted => "(the error and the steps to undo)".to_string(),
            RowKind::Compensated => "(one step undone)".to_string(),
            _ => row.task_id.clone(),
        };
        println!(
            "    #{:<2} {:<8} {:<22} {detail}",
            row.sequence,
            row.state,
            format!("{:?}", row.kind)
        );
    }
}

fn print_effects(effects: &[String]) {
    println!("  side effects, in order:");
    for effect in effects {
        println!("    {effect}");
    }
}

/// Runs the worker until it prints the crash marker, kills it, and resumes here.
async fn scenario(crash: Crash, dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["worker", crash.arg()])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no worker stdout")?;
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if line.trim() == crash.marker() {
            child.kill()?; // SIGKILL on unix
            killed = true;
            break;
        }
    }
    let status = child.wait()?;
    if !killed {
        return Err(format!("the worker ended ({status}) without reaching the crash point").into());
    }
    println!("  --- worker killed with SIGKILL ({status}) ---");

    let store = Arc::new(RedbCheckpointStore::new(db_path(dir, crash))?);
    let run_id = format!("order-{}", crash.arg());
    println!("  checkpoint log left by the dead worker:");
    print_log(&store.load_run(&run_id).await?);

    println!("  --- resume in this process ---");
    let env = Env {
        dir: dir.to_path_buf(),
        crash,
        worker: false,
    };
    let outcome = workflow(env, store.clone()).resume_from(&run_id).await;
    let err = match outcome {
        Ok(state) => return Err(format!("expected the saga to fail, got {state:?}").into()),
        Err(err) => err,
    };
    println!("  resumed run returned the original error: {err}");
    assert_eq!(err, CanoError::task_execution(COURIER_ERROR));
    let left = store.load_run(&run_id).await?.len();
    println!("  checkpoint log now holds {left} row(s)");
    assert_eq!(left, 0, "a clean rollback clears the log");

    let effects = std::fs::read_to_string(dir.join("effects.log"))?;
    std::fs::remove_file(dir.join("effects.log"))?;
    Ok(effects.lines().map(str::to_string).collect())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "worker" {
        let crash = Crash::from_arg(&args[2]).ok_or("unknown crash point")?;
        return Ok(worker(crash, PathBuf::from(&args[3])).await?);
    }

    // Removed on drop, also when an assertion fails.
    let dir = tempfile::tempdir()?;

    println!("=== 1. the worker dies while shipping, after two completed steps ===");
    let effects = scenario(Crash::Forward, dir.path()).await?;
    print_effects(&effects);
    assert_eq!(
        effects,
        [
            "reserve H-7 [worker]",
            "charge PAY-31 [worker]",
            "refund PAY-31 (2598 cents) [resumed]",
            "release H-7 (2 units) [resumed]",
        ]
    );

    println!("\n=== 2. the worker dies during the rollback, after the refund ===");
    let effects = scenario(Crash::Rollback, dir.path()).await?;
    print_effects(&effects);
    assert_eq!(
        effects,
        [
            "reserve H-7 [worker]",
            "charge PAY-31 [worker]",
            "refund PAY-31 (2598 cents) [worker]",
            "release H-7 (2 units) [resumed]",
        ]
    );

    println!("\neach completed step was compensated exactly once, most recent first");
    Ok(())
}
