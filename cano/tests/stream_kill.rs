//! The stream model under SIGKILL, with real processes: a stream state on a redb file is
//! killed at random points and resumed by fresh processes until it finishes.
//!
//! The test binary is its own driver (`stream_driver_entry`, active when
//! `CANO_CRASH_MODE` is set). The stream reads the numbers `0..ITEMS` in windows of
//! `WINDOW`; each flush appends `flush <first> <last>` to a side-effect file (one write),
//! each `open` appends `open <cursor>`, and `on_close` appends `closed`. A window whose
//! flush is recorded but whose cursor the kill kept from being committed is flushed again
//! after the resume (at least once); everything else exactly once.
//!
//! `sigkill_at_random_points_loses_nothing` kills `CANO_STREAM_KILL_TRIALS` times (default
//! 4); `CANO_CRASH_SEED` repeats a run's kill delays.
#![cfg(all(unix, feature = "recovery"))]

mod crash;

use cano::prelude::*;
use crash::{Rng, record, say, side_effects};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ENTRY: &str = "stream_driver_entry";
const RUN_ID: &str = "import";
const ITEMS: u64 = 3_000;
const WINDOW: usize = 100;
/// How long a flush takes: the run lasts about `ITEMS / WINDOW` times this.
const FLUSH_PAUSE: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum St {
    Import,
    Done,
}

struct Import {
    dir: PathBuf,
}

#[task::stream(state = St)]
impl Import {
    fn window(&self) -> StreamWindow {
        StreamWindow::Count(WINDOW)
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "import".into()
    }
    async fn open(
        &self,
        _res: &Resources,
        cursor: Option<u64>,
    ) -> Result<ItemStream<u64>, CanoError> {
        let from = cursor.unwrap_or(0);
        record(&self.dir, &format!("open {from}"))?;
        say(&format!("OPEN {from}"));
        Ok(cano::task::stream::items(from..ITEMS))
    }
    async fn process_item(&self, _res: &Resources, n: u64) -> Result<(u64, u64), CanoError> {
        Ok((n, n + 1))
    }
    async fn flush_window(
        &self,
        _res: &Resources,
        window: Vec<u64>,
    ) -> Result<WindowSignal<St>, CanoError> {
        tokio::time::sleep(FLUSH_PAUSE).await;
        let (first, last) = (window[0], window[window.len() - 1]);
        record(&self.dir, &format!("flush {first} {last}"))?;
        Ok(WindowSignal::Continue)
    }
    async fn on_close(
        &self,
        _res: &Resources,
        _reason: CloseReason,
    ) -> Result<TaskResult<St>, CanoError> {
        record(&self.dir, "closed")?;
        Ok(TaskResult::Single(St::Done))
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("stream.redb")
}

/// The driver, run inside a child process.
#[test]
fn stream_driver_entry() {
    crash::drive(|mode, dir| async move {
        let store = Arc::new(RedbCheckpointStore::new(db(&dir))?);
        let wf = Workflow::bare()
            .register_stream(St::Import, Import { dir: dir.clone() })
            .add_exit_state(St::Done)
            .with_checkpoint_store(store)
            .with_workflow_id(RUN_ID);
        if mode == "resume" {
            wf.resume_from(RUN_ID).await
        } else {
            wf.orchestrate(St::Import).await
        }
    });
}

#[test]
fn sigkill_at_random_points_loses_nothing() {
    let trials: u32 = std::env::var("CANO_STREAM_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut rng = Rng::from_env(0x5743);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // Each process is killed somewhere in its first half second (the whole run takes
    // about 30 flushes of 25 ms).
    let mut kills = 0;
    for trial in 0..trials {
        let mode = if trial == 0 { "fresh" } else { "resume" };
        let delay = Duration::from_millis(60 + rng.below(400));
        let printed = crash::run_and_kill_after(ENTRY, mode, dir, "OPEN", delay);
        if printed.contains("COMPLETED") || printed.contains("NO_ROWS") {
            break;
        }
        assert!(!printed.contains("FAILED"), "{printed}");
        kills += 1;
    }
    // Finish the run.
    let printed = crash::run_to_end(ENTRY, "resume", dir);
    assert!(
        printed.contains("COMPLETED Done") || printed.contains("NO_ROWS"),
        "{printed}"
    );

    let effects = side_effects(dir);
    let opens: Vec<u64> = effects
        .iter()
        .filter_map(|l| l.strip_prefix("open "))
        .map(|c| c.parse().expect("open cursor"))
        .collect();
    let flushes: Vec<(u64, u64)> = effects
        .iter()
        .filter_map(|l| l.strip_prefix("flush "))
        .map(|w| {
            let (a, b) = w.split_once(' ').expect("flush range");
            (a.parse().expect("first"), b.parse().expect("last"))
        })
        .collect();
    assert_eq!(
        effects.iter().filter(|l| *l == "closed").count(),
        1,
        "closed once: {effects:?}"
    );
    // Every resume opens at a window boundary, never behind the previous open.
    assert_eq!(opens[0], 0);
    for pair in opens.windows(2) {
        assert!(pair[0] <= pair[1], "opened backwards: {opens:?}");
    }
    for &at in &opens[1..] {
        assert!(
            at == 0 || flushes.iter().any(|&(_, last)| last + 1 == at),
            "opened at {at}, not after a flushed window: {flushes:?}"
        );
    }
    // Every item was flushed; only windows cut off by a kill before their commit twice.
    let mut seen = vec![0_u32; ITEMS as usize];
    for &(first, last) in &flushes {
        assert_eq!(last - first + 1, WINDOW as u64, "a window of {WINDOW}");
        for n in first..=last {
            seen[n as usize] += 1;
        }
    }
    assert!(seen.iter().all(|&c| c >= 1), "an item was never flushed");
    let twice = seen.iter().filter(|&&c| c > 1).count();
    assert!(
        twice <= kills * WINDOW,
        "{twice} items flushed twice after {kills} kills"
    );
    assert!(seen.iter().all(|&c| c <= 2), "an item flushed three times");
    // The finished run cleared its log.
    let rows = crash::runtime().block_on(async {
        let store = RedbCheckpointStore::new(db(dir)).expect("reopen");
        store.load_run(RUN_ID).await.expect("load")
    });
    assert!(rows.is_empty(), "{rows:?}");
    eprintln!(
        "{kills} kills, {} opens, {twice} items flushed twice",
        opens.len()
    );
}
