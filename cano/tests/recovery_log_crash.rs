//! SIGKILL against the redb store's write-ahead log: a child process writes rows and
//! clears runs as fast as it can, folding its log into the table every few writes, and is
//! killed at a random moment (in a write, a sync, a fold, or between them). The file is then
//! opened again: every write the child saw acknowledged must be there, nothing it never
//! wrote may be, and the one write in flight may have landed or not.
#![cfg(all(unix, feature = "recovery"))]

mod crash;

use cano::prelude::*;
use crash::Rng;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ENTRY: &str = "log_crash_driver_entry";
/// Rows per run before the run is cleared.
const ROWS: u64 = 9;
/// Runs written to in turn.
const IDS: u64 = 3;

/// The driver's `k`-th write, the same in every process.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Append(String, CheckpointRow),
    Clear(String),
}

fn op(k: u64) -> Op {
    // Each run gets ROWS appends and then a clear; the runs take turns.
    let round = k / (ROWS + 1);
    let within = k % (ROWS + 1);
    let id = format!("run-{}", round % IDS);
    if within == ROWS {
        Op::Clear(id)
    } else {
        let row = CheckpointRow::new(within, format!("S{within}"), format!("op-{k}"))
            .with_output(k.to_le_bytes().to_vec());
        Op::Append(id, row)
    }
}

/// The table after the first `n` writes.
fn model(n: u64) -> BTreeMap<String, Vec<CheckpointRow>> {
    let mut runs: BTreeMap<String, Vec<CheckpointRow>> = BTreeMap::new();
    for k in 0..n {
        match op(k) {
            Op::Append(id, row) => runs.entry(id).or_default().push(row),
            Op::Clear(id) => {
                runs.remove(&id);
            }
        }
    }
    runs
}

fn db(dir: &Path) -> PathBuf {
    dir.join("ckpt.redb")
}

/// The driver, run inside a child process: writes forever (until killed), printing the
/// number of every write acknowledged.
#[test]
fn log_crash_driver_entry() {
    let Ok(mode) = std::env::var(crash::MODE_VAR) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(crash::DIR_VAR).expect("crash dir"));
    // Both write paths: the store's writer thread (current-thread runtime) and group
    // commit by a waiting writer (multi-thread runtime).
    let rt = if mode == "multi-thread" {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime")
    } else {
        crash::runtime()
    };
    rt.block_on(async {
        let store = RedbCheckpointStore::new(db(&dir))
            .expect("open")
            .with_fold_interval(7);
        let mut out = std::io::stdout();
        for k in 0.. {
            match op(k) {
                Op::Append(id, row) => store.append(&id, row).await.expect("append"),
                Op::Clear(id) => store.clear(&id).await.expect("clear"),
            }
            let _ = writeln!(out, "ACK {k}");
            let _ = out.flush();
        }
    });
}

/// The last write the driver saw acknowledged, from what it printed.
fn acknowledged(printed: &str) -> Option<u64> {
    printed
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ACK ")?.trim().parse().ok())
}

async fn table(store: &RedbCheckpointStore) -> BTreeMap<String, Vec<CheckpointRow>> {
    let mut runs = BTreeMap::new();
    for i in 0..IDS {
        let id = format!("run-{i}");
        let rows = store.load_run(&id).await.expect("load_run");
        if !rows.is_empty() {
            runs.insert(id, rows);
        }
    }
    runs
}

#[test]
fn sigkill_while_logging_and_folding_loses_no_acknowledged_write() {
    let mut rng = Rng::from_env(0x10C);
    let trials = 40;
    let mut deepest = 0;
    for trial in 0..trials {
        let dir = tempfile::tempdir().expect("tempdir");
        // Kill somewhere in the first ~0.4 s: hundreds of writes and dozens of folds.
        let delay = Duration::from_micros(20_000 + rng.below(400_000));
        let mode = if trial % 2 == 0 {
            "current-thread"
        } else {
            "multi-thread"
        };
        let printed = crash::run_and_kill(ENTRY, mode, dir.path(), delay);
        let Some(last) = acknowledged(&printed) else {
            continue; // killed before its first write returned
        };
        deepest = deepest.max(last);
        let rt = crash::runtime();
        let found = rt.block_on(async {
            let store = RedbCheckpointStore::new(db(dir.path())).expect("reopen after the kill");
            table(&store).await
        });
        // Every acknowledged write is there; the next one may be too.
        let after_acked = model(last + 1);
        let after_next = model(last + 2);
        assert!(
            found == after_acked || found == after_next,
            "trial {trial}: killed after write {last}; found {found:?}, expected {after_acked:?} or {after_next:?}"
        );
        // A second open (after the first folded the log) reads the same.
        let again = rt.block_on(async {
            let store = RedbCheckpointStore::new(db(dir.path())).expect("open again");
            table(&store).await
        });
        assert_eq!(again, found, "trial {trial}: second open");
    }
    eprintln!("deepest kill: after write {deepest}");
    assert!(
        deepest > 50,
        "the kills came too early to test anything ({deepest} writes)"
    );
}
