//! # Crash and resume: a workflow killed with SIGKILL continues where it stopped
//!
//! Run with: `cargo run -p cano --example crash_resume --features recovery`
//!
//! The program starts a copy of itself as a worker process. The worker imports a file in
//! ten batches (a stepped task whose cursor is the next batch) on a durable
//! [`RedbCheckpointStore`]. Midway, the parent kills the worker with SIGKILL: no
//! destructors, no flushes, no goodbye. The parent then opens the same database, shows
//! the checkpoint log the dead worker left behind, and resumes the run: the workflow
//! continues from the last recorded batch instead of starting over, and clears its log
//! when it finishes.

use cano::prelude::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const RUN_ID: &str = "import-2026-11-26";
const BATCHES: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Import {
    Fetch,
    Batches,
    Publish,
    Done,
}

struct Fetch;

#[task(state = Import)]
impl Fetch {
    async fn run_bare(&self) -> Result<TaskResult<Import>, CanoError> {
        say(&format!("fetch: downloaded {BATCHES} batches"));
        Ok(TaskResult::Single(Import::Batches))
    }
}

/// Loads one batch per step; the cursor is the next batch to load.
struct LoadBatches;

#[task::stepped(state = Import)]
impl LoadBatches {
    async fn step(
        &self,
        _res: &Resources,
        cursor: Option<u32>,
    ) -> Result<StepOutcome<u32, Import>, CanoError> {
        let batch = cursor.unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(60)).await;
        say(&format!("load: batch {batch} committed"));
        if batch + 1 == BATCHES {
            Ok(StepOutcome::Done(TaskResult::Single(Import::Publish)))
        } else {
            Ok(StepOutcome::More(batch + 1))
        }
    }
}

struct Publish;

#[task(state = Import)]
impl Publish {
    async fn run_bare(&self) -> Result<TaskResult<Import>, CanoError> {
        say("publish: import announced");
        Ok(TaskResult::Single(Import::Done))
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "  {line}");
    let _ = out.flush();
}

fn workflow(db: &Path) -> Result<Workflow<Import>, CanoError> {
    Ok(Workflow::bare()
        .register(Import::Fetch, Fetch)
        .register_stepped(Import::Batches, LoadBatches)
        .register(Import::Publish, Publish)
        .add_exit_state(Import::Done)
        .with_checkpoint_store(Arc::new(RedbCheckpointStore::new(db)?))
        .with_workflow_id(RUN_ID))
}

fn print_log(rows: &[CheckpointRow]) {
    for row in rows {
        let extra = match (&row.kind, &row.output_blob) {
            (RowKind::StepCursor, Some(blob)) => {
                format!(" cursor={}", String::from_utf8_lossy(blob))
            }
            _ => String::new(),
        };
        println!(
            "  #{:<2} {:<8} {:?}{extra}",
            row.sequence, row.state, row.kind
        );
    }
}

/// The worker process: run the import from the start.
async fn worker(db: PathBuf) -> Result<(), CanoError> {
    let end = workflow(&db)?.orchestrate(Import::Fetch).await?;
    say(&format!(
        "worker finished in {end:?} (it should have been killed!)"
    ));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "worker" {
        return Ok(worker(PathBuf::from(&args[2])).await?);
    }

    let dir = std::env::temp_dir().join(format!("cano-crash-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("checkpoints.redb");

    println!("=== a worker process starts the import ===");
    let mut child = Command::new(std::env::current_exe()?)
        .arg("worker")
        .arg(&db)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no worker stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if line.contains("batch 4 committed") {
            child.kill()?; // SIGKILL on unix
            break;
        }
    }
    let status = child.wait()?;
    println!("=== worker killed with SIGKILL ({status}) ===\n");

    // redb allows one open handle per file: read the log through a short-lived store.
    println!("checkpoint log left by the dead worker:");
    let rows = RedbCheckpointStore::new(&db)?.load_run(RUN_ID).await?;
    print_log(&rows);
    let next = rows
        .iter()
        .rev()
        .find(|r| r.kind == RowKind::StepCursor)
        .and_then(|r| r.output_blob.as_deref())
        .map_or_else(
            || "0".to_string(),
            |b| String::from_utf8_lossy(b).into_owned(),
        );
    println!(
        "\n=== resume in this process: batches before {next} are done and will not run again ===\n\
         (a batch the worker finished but had not yet recorded runs once more: steps must be idempotent)"
    );
    let wf = workflow(&db)?;
    let end = wf.resume_from(RUN_ID).await?;
    println!("resumed run finished in {end:?}");
    drop(wf);

    let store = RedbCheckpointStore::new(&db)?;
    let left = store.load_run(RUN_ID).await?.len();
    println!("checkpoint log now holds {left} row(s)");
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    assert_eq!(end, Import::Done);
    assert_eq!(left, 0);
    Ok(())
}
