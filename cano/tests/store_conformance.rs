//! One conformance suite for every checkpoint store the crate ships: the memory store, the
//! redb store (feature `recovery`) and the PostgreSQL store (feature `postgres`) pass the
//! same checks of the `CheckpointStore` contract (rows round-trip and load sorted,
//! duplicates rejected, unknown ids empty, per-id clear, concurrent appends), `ListRuns`
//! (with each run's times and failure mark), `RunWriters` and `SignalStore`.
//!
//! The PostgreSQL checks run on a throwaway server (`pg_support`); without PostgreSQL
//! they print why they skip, and fail when `CANO_REQUIRE_POSTGRES=1`.

#[cfg(feature = "postgres")]
mod pg_support;

use cano::prelude::*;
use cano::signal::{Signal, SignalStore};
use cano::{ListRuns, RunStatus, RunSummary, RunWriters};
use std::collections::BTreeSet;
use std::sync::Arc;

/// What every store under test offers.
pub trait Store: CheckpointStore + ListRuns + SignalStore + RunWriters {}
impl<T: CheckpointStore + ListRuns + SignalStore + RunWriters> Store for T {}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Work,
    Done,
}

/// Fails when `fail`, else goes on to `Done`.
struct Work {
    fail: bool,
}

#[task(state = Step)]
impl Work {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        if self.fail {
            return Err(CanoError::task_execution("the warehouse is on fire"));
        }
        Ok(TaskResult::Single(Step::Done))
    }
}

fn work(fail: bool) -> Workflow<Step> {
    Workflow::bare()
        .register(Step::Work, Work { fail })
        .add_exit_state(Step::Done)
}

/// The checks, each against a fresh, empty store.
mod checks {
    use super::*;

    fn row(seq: u64) -> CheckpointRow {
        CheckpointRow::new(seq, format!("S{seq}"), "task")
    }

    /// A row recording that the run consumed signal `id` (the log format's `Signal` row).
    fn signal_row(seq: u64, name: &str, id: &str) -> CheckpointRow {
        let mut row = CheckpointRow::new(seq, "Await", "await");
        row.kind = RowKind::Signal;
        row.output_blob = Some(
            serde_json::to_vec(
                &serde_json::json!({"signal": name, "id": id, "payload": {"ok": true}}),
            )
            .unwrap(),
        );
        row
    }

    fn sequences(rows: &[CheckpointRow]) -> Vec<u64> {
        rows.iter().map(|r| r.sequence).collect()
    }

    pub async fn rows_round_trip_and_load_sorted(store: Arc<impl Store>) {
        let mut timer = CheckpointRow::new(9, "Wait", "wait");
        timer.kind = RowKind::Timer;
        timer.output_blob = Some(b"1764950400000".to_vec());
        let mut empty_blob = CheckpointRow::new(3, "E", "");
        empty_blob.kind = RowKind::SplitMember;
        empty_blob.output_blob = Some(Vec::new());
        let rows = vec![
            CheckpointRow::new(5, "Charge", "charge").with_output(br#"{"id":"ch_9"}"#.to_vec()),
            CheckpointRow::new(1, "Fetch", "fetch").with_cursor(b"3".to_vec()),
            timer,
            CheckpointRow::new(0, "Start", "start"),
            empty_blob,
            CheckpointRow::new(7, "Ünïcödé ✓ \"quoted\"", "t\\x"),
        ];
        for r in &rows {
            store.append("run", r.clone()).await.expect("append");
        }
        let mut want = rows.clone();
        want.sort_by_key(|r| r.sequence);
        assert_eq!(store.load_run("run").await.unwrap(), want);
    }

    pub async fn large_blobs_and_unusual_ids_round_trip(store: Arc<impl Store>) {
        let id = "ünï/cöde id with spaces, 'single' and \"double\" quotes; DROP TABLE x --";
        let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let rows = vec![
            CheckpointRow::new(0, "Big", "big").with_output(blob),
            CheckpointRow::new(1, "", "").with_cursor(Vec::new()),
        ];
        for r in &rows {
            store.append(id, r.clone()).await.expect("append");
        }
        assert_eq!(store.load_run(id).await.unwrap(), rows);
        store.clear(id).await.unwrap();
        assert!(store.load_run(id).await.unwrap().is_empty());
    }

    pub async fn a_duplicate_sequence_is_rejected_and_the_first_row_kept(store: Arc<impl Store>) {
        store.append("run", row(0)).await.unwrap();
        store.append("run", row(1)).await.unwrap();
        let err = store
            .append("run", CheckpointRow::new(1, "Other", "other"))
            .await
            .expect_err("a second row at sequence 1 is refused");
        assert!(matches!(err, CanoError::CheckpointStore(_)), "{err:?}");
        assert!(err.to_string().contains("conflict"), "{err}");
        assert_eq!(store.load_run("run").await.unwrap(), vec![row(0), row(1)]);
        // The same sequence under another id is no conflict.
        store.append("other", row(1)).await.unwrap();
    }

    pub async fn an_unknown_id_loads_empty(store: Arc<impl Store>) {
        assert!(store.load_run("nobody").await.unwrap().is_empty());
        store.append("somebody", row(0)).await.unwrap();
        assert!(store.load_run("nobody").await.unwrap().is_empty());
    }

    pub async fn clear_removes_only_that_id(store: Arc<impl Store>) {
        for id in ["a", "b"] {
            store.append(id, row(0)).await.unwrap();
            store.append(id, row(1)).await.unwrap();
        }
        store.clear("a").await.unwrap();
        assert!(store.load_run("a").await.unwrap().is_empty());
        assert_eq!(sequences(&store.load_run("b").await.unwrap()), [0, 1]);
        // Clearing an unknown or already cleared id is fine.
        store.clear("a").await.unwrap();
        store.clear("never-seen").await.unwrap();
        // A cleared id starts again from sequence 0.
        store.append("a", row(0)).await.unwrap();
        assert_eq!(sequences(&store.load_run("a").await.unwrap()), [0]);
    }

    pub async fn concurrent_appends_all_land(store: Arc<impl Store>) {
        const TASKS: u64 = 16;
        const EACH: u64 = 12;
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let store = Arc::clone(&store);
            handles.push(tokio::spawn(async move {
                for i in 0..EACH {
                    // One shared run, sequences interleaved between the tasks…
                    store.append("shared", row(i * TASKS + t)).await.unwrap();
                    // …and one run per task.
                    store.append(&format!("own-{t}"), row(i)).await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let shared = store.load_run("shared").await.unwrap();
        assert_eq!(sequences(&shared), (0..TASKS * EACH).collect::<Vec<_>>());
        for t in 0..TASKS {
            let own = store.load_run(&format!("own-{t}")).await.unwrap();
            assert_eq!(sequences(&own), (0..EACH).collect::<Vec<_>>());
        }
    }

    pub async fn racing_writers_of_one_sequence_have_one_winner(store: Arc<impl Store>) {
        let mut handles = Vec::new();
        for w in 0..8 {
            let store = Arc::clone(&store);
            handles.push(tokio::spawn(async move {
                store
                    .append("contested", CheckpointRow::new(0, format!("W{w}"), "t"))
                    .await
            }));
        }
        let mut won = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(()) => won += 1,
                Err(e) => assert!(e.to_string().contains("conflict"), "{e}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(store.load_run("contested").await.unwrap().len(), 1);
    }

    pub async fn list_runs_reports_every_run(store: Arc<impl Store>) {
        assert!(store.list_runs().await.unwrap().is_empty());
        store.append("b", row(0)).await.unwrap();
        store.append("a", row(0)).await.unwrap();
        store.append("a", row(1)).await.unwrap();
        store.append("c", row(0)).await.unwrap();
        store.clear("c").await.unwrap();
        let mut runs = store.list_runs().await.unwrap();
        runs.sort_by(|x, y| x.workflow_id.cmp(&y.workflow_id));
        let seen: Vec<(&str, &str, u64, usize)> = runs
            .iter()
            .map(|r| {
                (
                    r.workflow_id.as_str(),
                    r.last_state.as_str(),
                    r.last_sequence,
                    r.rows,
                )
            })
            .collect();
        assert_eq!(seen, [("a", "S1", 1, 2), ("b", "S0", 0, 1)]);
        assert!(runs.iter().all(|r| r.status == RunStatus::Forward));
    }

    pub async fn signals_are_kept_once_until_removed(store: Arc<impl Store>) {
        let approval = |id: &str| Signal::from_json("approval", id, r#"{"ok":true}"#).unwrap();
        let err = store
            .send_signal("order", approval("s1"))
            .await
            .expect_err("no run, no signal");
        assert!(err.to_string().contains("no run"), "{err}");

        store.append("order", row(0)).await.unwrap();
        assert!(store.send_signal("order", approval("s1")).await.unwrap());
        assert!(
            !store.send_signal("order", approval("s1")).await.unwrap(),
            "a repeated delivery changes nothing"
        );
        assert!(store.send_signal("order", approval("s2")).await.unwrap());
        let other = Signal::from_json("cancel", "c1", "null").unwrap();
        assert!(store.send_signal("order", other.clone()).await.unwrap());

        let pending = store.pending_signals("order", "approval").await.unwrap();
        let ids: Vec<&str> = pending.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2"], "oldest first, only the name asked for");
        assert_eq!(pending[0], approval("s1"));
        assert_eq!(
            store.pending_signals("order", "cancel").await.unwrap(),
            [other]
        );

        store.remove_signal("order", "s1").await.unwrap();
        store.remove_signal("order", "not-pending").await.unwrap();
        let ids: Vec<String> = store
            .pending_signals("order", "approval")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["s2"]);

        // A signal the log records as consumed is not taken again.
        store
            .append("order", signal_row(1, "approval", "s9"))
            .await
            .unwrap();
        assert!(!store.send_signal("order", approval("s9")).await.unwrap());

        // Clearing the run forgets its pending signals.
        store.clear("order").await.unwrap();
        store.append("order", row(0)).await.unwrap();
        assert!(
            store
                .pending_signals("order", "approval")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .pending_signals("order", "cancel")
                .await
                .unwrap()
                .is_empty()
        );
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    /// The run `id` as listed, checked against what `run_summary` reads of it alone.
    async fn listed(store: &impl Store, id: &str) -> Option<RunSummary> {
        let runs = store.list_runs().await.unwrap();
        let listed = runs.into_iter().find(|r| r.workflow_id == id);
        assert_eq!(store.run_summary(id).await.unwrap(), listed, "{id}");
        listed
    }

    pub async fn runs_carry_when_they_were_first_and_last_written(store: Arc<impl Store>) {
        let before = now_ms();
        store.append("timed", row(0)).await.unwrap();
        let first = listed(&*store, "timed").await.expect("listed");
        let started = first.started_ms.expect("the first row's time");
        assert_eq!(first.updated_ms, Some(started), "one row: first and last");
        // The same machine's clock (PostgreSQL's is the server's): a second of slack.
        assert!(
            started + 1000 >= before && started <= now_ms() + 1000,
            "{started} not around {before}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        store.append("timed", row(1)).await.unwrap();
        store.append("timed", row(2)).await.unwrap();
        let later = listed(&*store, "timed").await.expect("listed");
        assert_eq!(later.started_ms, Some(started), "the start stays");
        let updated = later.updated_ms.expect("the last row's time");
        assert!(updated >= started + 20, "{updated} after {started}");
        // Clearing the run forgets its times: the next run under the id starts anew.
        store.clear("timed").await.unwrap();
        assert!(listed(&*store, "timed").await.is_none());
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        store.append("timed", row(0)).await.unwrap();
        let again = listed(&*store, "timed").await.expect("listed");
        let restarted = again.started_ms.expect("a new start");
        assert!(restarted >= updated + 20, "{restarted} after {updated}");
        assert_eq!(again.updated_ms, Some(restarted));
    }

    pub async fn a_failed_run_is_marked_until_its_next_row(store: Arc<impl Store>) {
        // Through the store's run writers, a run that returns an error is marked failed.
        let err = work(true)
            .with_run_writers(Arc::clone(&store))
            .with_workflow_id("order-1")
            .orchestrate(Step::Work)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("on fire"), "{err}");
        let failed = listed(&*store, "order-1").await.expect("the log stays");
        match &failed.status {
            RunStatus::Failed { error } => {
                assert_eq!(error, &err.to_string());
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        assert!(failed.updated_ms.is_some());

        // Given the store as a plain checkpoint store, a failing run stays Forward.
        work(true)
            .with_checkpoint_store(Arc::clone(&store) as Arc<dyn CheckpointStore>)
            .with_workflow_id("order-2")
            .orchestrate(Step::Work)
            .await
            .unwrap_err();
        let plain = listed(&*store, "order-2").await.expect("the log stays");
        assert_eq!(plain.status, RunStatus::Forward);

        // The next row of the run takes the mark away: the resumed run is in flight.
        let next = failed.last_sequence + 1;
        store
            .append("order-1", CheckpointRow::new(next, "Work", "work"))
            .await
            .unwrap();
        let resumed = listed(&*store, "order-1").await.expect("listed");
        assert_eq!(resumed.status, RunStatus::Forward);

        // Failing again marks it again; a resume that succeeds clears the log and the mark.
        work(true)
            .with_run_writers(Arc::clone(&store))
            .resume_from("order-1")
            .await
            .unwrap_err();
        assert!(matches!(
            listed(&*store, "order-1").await.expect("listed").status,
            RunStatus::Failed { .. }
        ));
        let end = work(false)
            .with_run_writers(Arc::clone(&store))
            .resume_from("order-1")
            .await
            .unwrap();
        assert_eq!(end, Step::Done);
        assert!(listed(&*store, "order-1").await.is_none());
        // A new run under the id is not marked by the old failure.
        store.append("order-1", row(0)).await.unwrap();
        let fresh = listed(&*store, "order-1").await.expect("listed");
        assert_eq!(fresh.status, RunStatus::Forward);
    }

    pub async fn a_failure_mark_goes_with_the_log(store: Arc<impl Store>) {
        work(true)
            .with_run_writers(Arc::clone(&store))
            .with_workflow_id("gone")
            .orchestrate(Step::Work)
            .await
            .unwrap_err();
        store.clear("gone").await.unwrap();
        assert!(listed(&*store, "gone").await.is_none());
        store.append("gone", row(0)).await.unwrap();
        let fresh = listed(&*store, "gone").await.expect("listed");
        assert_eq!(fresh.status, RunStatus::Forward, "the clear took the mark");
    }

    pub async fn a_send_wakes_a_waiting_run(store: Arc<impl Store>) {
        store.append("waiting", row(0)).await.unwrap();
        // The first poll registers the run, as the engine's does before it reads.
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(store.poll_signal_sent("waiting", cx))
        })
        .await;
        assert_eq!(
            first,
            Some(std::task::Poll::Pending),
            "the store wakes its waiters, and nothing was sent yet"
        );
        let sender = Arc::clone(&store);
        tokio::spawn(async move {
            let signal = Signal::from_json("go", "g1", "1").unwrap();
            sender.send_signal("waiting", signal).await.unwrap();
        });
        let woken = std::future::poll_fn(|cx| match store.poll_signal_sent("waiting", cx) {
            Some(poll) => poll,
            None => std::task::Poll::Ready(()),
        });
        tokio::time::timeout(std::time::Duration::from_secs(10), woken)
            .await
            .expect("woken by the send");
        store.forget_signal_waker("waiting");
        let ids: BTreeSet<String> = store
            .pending_signals("waiting", "go")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, BTreeSet::from(["g1".to_string()]));
    }
}

/// One test per check for the store that `$make` (an async block giving
/// `Option<(store, guard)>`; `None` skips) makes afresh for each.
macro_rules! conformance {
    ($store:ident, $make:expr) => {
        conformance!(@tests $store, $make;
            rows_round_trip_and_load_sorted,
            large_blobs_and_unusual_ids_round_trip,
            a_duplicate_sequence_is_rejected_and_the_first_row_kept,
            an_unknown_id_loads_empty,
            clear_removes_only_that_id,
            concurrent_appends_all_land,
            racing_writers_of_one_sequence_have_one_winner,
            list_runs_reports_every_run,
            signals_are_kept_once_until_removed,
            a_send_wakes_a_waiting_run,
            runs_carry_when_they_were_first_and_last_written,
            a_failed_run_is_marked_until_its_next_row,
            a_failure_mark_goes_with_the_log,
        );
    };
    (@tests $store:ident, $make:expr; $($check:ident,)*) => {
        mod $store {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((store, _guard)) = $make.await else { return };
                    super::checks::$check(Arc::new(store)).await;
                }
            )*
        }
    };
}

conformance!(memory, async {
    Some((cano::recovery::MemoryCheckpointStore::new(), ()))
});

#[cfg(feature = "recovery")]
conformance!(redb, async {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbCheckpointStore::new(dir.path().join("ckpt.redb")).expect("open redb");
    Some((store, dir))
});

#[cfg(feature = "postgres")]
conformance!(postgres, async {
    let url = pg_support::fresh_database("conformance").await?;
    let store = PostgresCheckpointStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    Some((store, ()))
});
