//! Group commit on `PostgresCheckpointStore` (`with_group_commit`): appends of many runs
//! at once share statements and transactions, yet each is answered for itself: rows land
//! in order and exactly once, a run another worker took over is refused (only that run),
//! a duplicate sequence is a conflict; and the cluster's batched outcomes (a worker on
//! such a store) finish every run exactly once.
//!
//! On a throwaway server (`pg_support`); without PostgreSQL the tests print why they skip,
//! and fail when `CANO_REQUIRE_POSTGRES=1`.
#![cfg(feature = "postgres")]

mod pg_plain;
mod pg_support;

use cano::RunWriters;
use cano::prelude::*;
use std::time::Duration;

const LEASE: Duration = Duration::from_millis(300);

/// The server's next transaction id: how many write transactions it has begun so far
/// (the peers' cost counter; reading it begins none).
async fn commits(url: &str) -> i64 {
    pg_plain::plain_client(url)
        .await
        .query_one(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
            &[],
        )
        .await
        .expect("read the next transaction id")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_transactions_and_each_gets_its_own_answer() {
    let Some(url) = pg_support::fresh_database("group_appends").await else {
        return;
    };
    let store = pg_support::worker(&url, "w-group", Duration::from_secs(30))
        .await
        .with_group_commit();
    const RUNS: usize = 32;
    const ROWS: u64 = 5;
    let mut writers = Vec::new();
    for i in 0..RUNS {
        writers.push(store.writer(&format!("run-{i}")).await.unwrap());
    }
    let before = commits(&url).await;
    let mut tasks = tokio::task::JoinSet::new();
    for writer in writers {
        tasks.spawn(async move {
            for sequence in 0..ROWS {
                writer
                    .append(CheckpointRow::new(sequence, format!("S{sequence}"), "t"))
                    .await?;
            }
            // A sequence written already is a conflict, answered to this run only.
            let dup = writer.append(CheckpointRow::new(2, "S2", "t")).await;
            Ok::<_, CanoError>(dup)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let dup = done.unwrap().unwrap();
        let err = dup.unwrap_err();
        assert!(err.to_string().contains("conflict"), "{err}");
        assert!(!err.to_string().contains("fenced"), "{err}");
    }
    let after = commits(&url).await;
    for i in 0..RUNS {
        let rows = store.load_run(&format!("run-{i}")).await.unwrap();
        let sequences: Vec<u64> = rows.iter().map(|r| r.sequence).collect();
        assert_eq!(sequences, (0..ROWS).collect::<Vec<_>>(), "run-{i}");
        assert!(rows.iter().all(|r| r.state == format!("S{}", r.sequence)));
    }
    // 32 runs × 6 appends one by one would be 192 write transactions; shared, far fewer.
    let used = after - before;
    assert!(
        used < (RUNS as i64 * (ROWS as i64 + 1)) / 2,
        "{used} write transactions for {} appends",
        RUNS as u64 * (ROWS + 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_taken_over_is_refused_in_a_batch_and_the_others_are_written() {
    let Some(url) = pg_support::fresh_database("group_fence").await else {
        return;
    };
    let a = pg_support::worker(&url, "w-a", LEASE)
        .await
        .with_group_commit();
    let b = pg_support::worker(&url, "w-b", LEASE).await;
    let stale = a.writer("taken").await.unwrap();
    stale.append(CheckpointRow::new(0, "A", "a")).await.unwrap();
    // Worker a stalls past its lease; b takes the run over.
    tokio::time::sleep(LEASE + Duration::from_millis(150)).await;
    let lease = b.claim("taken").await.unwrap();
    assert_eq!(lease.epoch(), 2);
    // Meanwhile a's other runs write; the stale row goes in the same batches.
    let mut others = Vec::new();
    for i in 0..8 {
        others.push(a.writer(&format!("other-{i}")).await.unwrap());
    }
    let (refused, written) = tokio::join!(
        stale.append(CheckpointRow::new(1, "B", "b")),
        futures_util::future::join_all(
            others
                .iter()
                .map(|w| w.append(CheckpointRow::new(0, "A", "a")))
        ),
    );
    let err = refused.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("fenced"), "{text}");
    assert!(
        text.contains("epoch 1") && text.contains("epoch 2"),
        "{text}"
    );
    assert!(text.contains("\"w-b\""), "{text}");
    for (i, w) in written.into_iter().enumerate() {
        w.unwrap_or_else(|e| panic!("other-{i}: {e}"));
    }
    // The stale row is not there; the new owner writes on.
    assert_eq!(a.load_run("taken").await.unwrap().len(), 1);
    b.writer_for(&lease)
        .append(CheckpointRow::new(1, "B", "b"))
        .await
        .unwrap();
    assert_eq!(a.load_run("taken").await.unwrap().len(), 2);
}
