//! # Stream task: a million-line import in windows of 1,000, durable on redb
//!
//! Run with:
//! `cargo run -p cano --example stream_task --features recovery`
//! (options after `--`: `[--items N] [--window W] [--db PATH]`; for the full-size
//! measurement build it in release: `cargo run --release -p cano --example stream_task
//! --features recovery -- --items 1000000`)
//!
//! A `#[task::stream]` state reads a source of `--items` lines (default 200,000; generated
//! in memory, so the measurement is the engine's and the store's cost), parses each into a
//! row, and flushes the rows in windows of `--window` (default 1,000) into a running total
//! kept in the run's resources. After each flush the engine records the window's cursor in
//! the run's log on a [`RedbCheckpointStore`] (one durable commit per window). The program
//! prints the throughput, then shows resume: a second run is cancelled after a few windows
//! — the window in flight is flushed and its cursor committed — and `resume_from` opens
//! the source at that cursor and finishes, with every line counted exactly once.

use cano::cancel::CancellationToken;
use cano::prelude::*;
use cano::task::stream::items;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Import {
    Lines,
    Done,
}

/// The running totals the windows are flushed into (clones share them).
#[derive(Clone, Default)]
struct Totals(Arc<Counts>);

#[derive(Default)]
struct Counts {
    rows: AtomicU64,
    sum: AtomicU64,
    windows: AtomicU64,
}

impl Resource for Totals {}

impl std::ops::Deref for Totals {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.0
    }
}

/// Reads lines `cursor..items`, parses each ("<n>,<amount>") into its amount.
struct ImportLines {
    items: u64,
    window: usize,
    /// Lines are produced this slowly, when set (to give the cancel something to catch).
    pace: Option<Duration>,
}

#[task::stream(state = Import)]
impl ImportLines {
    fn window(&self) -> StreamWindow {
        StreamWindow::Count(self.window)
    }

    async fn open(
        &self,
        _res: &Resources,
        cursor: Option<u64>,
    ) -> Result<ItemStream<String>, CanoError> {
        let from = cursor.unwrap_or(0);
        let lines = (from..self.items).map(|n| format!("{n},{}", n % 100));
        match self.pace {
            None => Ok(items(lines)),
            Some(pace) => Ok(Box::pin(futures_util::StreamExt::then(
                futures_util::stream::iter(lines),
                move |line| async move {
                    tokio::time::sleep(pace).await;
                    line
                },
            ))),
        }
    }

    async fn process_item(&self, _res: &Resources, line: String) -> Result<(u64, u64), CanoError> {
        let (n, amount) = line
            .split_once(',')
            .ok_or_else(|| CanoError::task_execution(format!("no comma in {line:?}")))?;
        let n: u64 = n
            .parse()
            .map_err(|e| CanoError::task_execution(format!("{line:?}: {e}")))?;
        let amount: u64 = amount
            .parse()
            .map_err(|e| CanoError::task_execution(format!("{line:?}: {e}")))?;
        Ok((amount, n + 1))
    }

    async fn flush_window(
        &self,
        res: &Resources,
        amounts: Vec<u64>,
    ) -> Result<WindowSignal<Import>, CanoError> {
        let totals = res.get::<Totals, _>("totals")?;
        totals
            .rows
            .fetch_add(amounts.len() as u64, Ordering::SeqCst);
        totals
            .sum
            .fetch_add(amounts.iter().sum::<u64>(), Ordering::SeqCst);
        totals.windows.fetch_add(1, Ordering::SeqCst);
        Ok(WindowSignal::Continue)
    }

    async fn on_close(
        &self,
        _res: &Resources,
        _reason: CloseReason,
    ) -> Result<TaskResult<Import>, CanoError> {
        Ok(TaskResult::Single(Import::Done))
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn workflow(
    store: &Arc<RedbCheckpointStore>,
    totals: &Totals,
    task: ImportLines,
) -> Workflow<Import> {
    Workflow::new(Resources::new().insert("totals", totals.clone()))
        .register_stream(Import::Lines, task)
        .add_exit_state(Import::Done)
        .with_checkpoint_store(store.clone())
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let parse = |name: &str, default: u64| -> Result<u64, CanoError> {
        arg(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|e| CanoError::configuration(format!("{name} {v:?}: {e}")))
        })
    };
    let items_n = parse("--items", 200_000)?;
    let window = parse("--window", 1_000)?.max(1) as usize;
    let dir = tempfile_dir()?;
    let db = arg("--db")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("stream.redb"));
    let store = Arc::new(RedbCheckpointStore::new(&db)?);

    // 1. Throughput: the whole source, one commit per window.
    let totals = Totals::default();
    let task = ImportLines {
        items: items_n,
        window,
        pace: None,
    };
    let started = Instant::now();
    workflow(&store, &totals, task)
        .with_workflow_id("import-all")
        .orchestrate(Import::Lines)
        .await?;
    let elapsed = started.elapsed();
    let rows = totals.rows.load(Ordering::SeqCst);
    println!(
        "{rows} lines in {} windows of {window} in {:.2} s: {:.0} items/s (redb: {})",
        totals.windows.load(Ordering::SeqCst),
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        db.display()
    );

    // 2. Cancel mid-stream, then resume from the committed cursor.
    let totals = Totals::default();
    let paced = ImportLines {
        items: 5_000,
        window: 500,
        pace: Some(Duration::from_micros(50)),
    };
    let (handle, token) = CancellationToken::new();
    let wf = workflow(&store, &totals, paced).with_workflow_id("import-cancelled");
    let run = tokio::spawn(async move { wf.orchestrate_with_token(Import::Lines, token).await });
    while totals.windows.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    handle.cancel();
    let err = run
        .await
        .map_err(|e| CanoError::workflow(format!("the run's task failed: {e}")))?
        .err()
        .ok_or_else(|| CanoError::workflow("the run was expected to be cancelled"))?;
    let before = totals.rows.load(Ordering::SeqCst);
    println!("cancelled ({err}) after {before} lines, all flushed and committed");
    let rest = ImportLines {
        items: 5_000,
        window: 500,
        pace: None,
    };
    workflow(&store, &totals, rest)
        .resume_from("import-cancelled")
        .await?;
    let counted = totals.rows.load(Ordering::SeqCst);
    println!("resumed at line {before}: {counted} lines counted in all (5000 expected)");
    if counted != 5_000 {
        return Err(CanoError::workflow(format!(
            "counted {counted} lines, not 5000"
        )));
    }
    drop(store);
    if arg("--db").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// A fresh directory under the system temp dir for the example's database.
fn tempfile_dir() -> Result<PathBuf, CanoError> {
    let dir = std::env::temp_dir().join(format!("cano-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CanoError::configuration(format!("create {}: {e}", dir.display())))?;
    Ok(dir)
}
