//! The write-ahead log beside a `RedbCheckpointStore`'s file (`<file>-wal`): what a crash
//! leaves behind is replayed on the next open, replaying twice changes nothing, folds
//! into the table keep every row, and a log that is not ours is refused.
#![cfg(feature = "recovery")]

mod support;

use cano::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn row(seq: u64) -> CheckpointRow {
    CheckpointRow::new(seq, format!("S{seq}"), "task").with_output(vec![seq as u8; 3])
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("ckpt.redb")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("ckpt.redb-wal")
}

/// Copy the database and its log as they are on disk now: what a crash at this moment
/// would leave. (The database file only changes when the log is folded into it.)
fn crash_image(from: &Path, to: &Path) {
    std::fs::copy(db_path(from), db_path(to)).unwrap();
    std::fs::copy(log_path(from), log_path(to)).unwrap();
}

/// Every `(id, sequence)` of the table (the store must be closed).
fn table_keys(dir: &Path) -> Vec<(String, u64)> {
    support::redb_keys(&db_path(dir))
}

async fn sequences(store: &RedbCheckpointStore, id: &str) -> Vec<u64> {
    store
        .load_run(id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect()
}

/// Some writes: "a" 0..3, "b" 0..2 then cleared then 7, "c" 0 then cleared.
async fn some_writes(store: &RedbCheckpointStore) {
    for seq in 0..3 {
        store.append("a", row(seq)).await.unwrap();
    }
    for seq in 0..2 {
        store.append("b", row(seq)).await.unwrap();
    }
    store.clear("b").await.unwrap();
    store.append("b", row(7)).await.unwrap();
    store.append("c", row(0)).await.unwrap();
    store.clear("c").await.unwrap();
}

async fn check_some_writes(store: &RedbCheckpointStore) {
    assert_eq!(
        store.load_run("a").await.unwrap(),
        [row(0), row(1), row(2)],
        "a"
    );
    assert_eq!(store.load_run("b").await.unwrap(), [row(7)], "b");
    assert!(store.load_run("c").await.unwrap().is_empty(), "c");
}

fn some_writes_keys() -> Vec<(String, u64)> {
    vec![
        ("a".to_string(), 0),
        ("a".to_string(), 1),
        ("a".to_string(), 2),
        ("b".to_string(), 7),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_crash_leaves_is_replayed_on_the_next_open() {
    let live = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let store = RedbCheckpointStore::new(db_path(live.path())).unwrap();
    some_writes(&store).await;
    crash_image(live.path(), crashed.path());

    let reopened = RedbCheckpointStore::new(db_path(crashed.path())).unwrap();
    check_some_writes(&reopened).await;
    // Writes go on from there; a replayed row still conflicts.
    let err = reopened.append("a", row(2)).await.unwrap_err();
    assert!(err.message().contains("conflict"), "{err}");
    reopened.append("a", row(3)).await.unwrap();
    drop(reopened);
    let mut want = some_writes_keys();
    want.insert(3, ("a".to_string(), 3));
    assert_eq!(table_keys(crashed.path()), want);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_log_already_folded_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let store = RedbCheckpointStore::new(db_path(dir.path())).unwrap();
    // Rows already in the table before the logged writes, one of them cleared by them.
    store.append("b", row(5)).await.unwrap();
    drop(store);
    let store = RedbCheckpointStore::new(db_path(dir.path())).unwrap();
    some_writes(&store).await;
    std::fs::copy(log_path(dir.path()), log_path(image.path())).unwrap();
    // A clean close folds the log into the table and removes it...
    drop(store);
    assert!(
        !log_path(dir.path()).exists(),
        "a clean close leaves no log"
    );
    assert_eq!(table_keys(dir.path()), some_writes_keys());
    // ...and a crash just after such a fold leaves the old log beside the new table.
    std::fs::copy(log_path(image.path()), log_path(dir.path())).unwrap();
    let store = RedbCheckpointStore::new(db_path(dir.path())).unwrap();
    check_some_writes(&store).await;
    drop(store);
    assert_eq!(table_keys(dir.path()), some_writes_keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folds_along_the_way_keep_every_row() {
    // Enough writes to fold the log into the table a few times while runs are open,
    // cleared, and written again.
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let store = RedbCheckpointStore::new(db_path(dir.path())).unwrap();
    let mut model: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..15_000u64 {
        let id = format!("run-{}", i % 13);
        let rows = model.entry(id.clone()).or_default();
        if i % 97 == 0 {
            store.clear(&id).await.unwrap();
            rows.clear();
        } else {
            let seq = rows.len() as u64;
            store.append(&id, row(seq)).await.unwrap();
            rows.push(seq);
        }
    }
    for (id, rows) in &model {
        assert_eq!(&sequences(&store, id).await, rows, "{id}");
    }
    crash_image(dir.path(), image.path());
    drop(store);
    let want: Vec<(String, u64)> = model
        .iter()
        .flat_map(|(id, rows)| rows.iter().map(move |s| (id.clone(), *s)))
        .collect();
    assert_eq!(table_keys(dir.path()), want);
    // The same from what a crash before the close would have left.
    let store = RedbCheckpointStore::new(db_path(image.path())).unwrap();
    for (id, rows) in &model {
        assert_eq!(&sequences(&store, id).await, rows, "{id} after a crash");
    }
}

#[test]
fn the_writer_thread_logs_too() {
    // Outside a multi-thread runtime writes go through the store's writer thread.
    let live = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = RedbCheckpointStore::new(db_path(live.path())).unwrap();
        some_writes(&store).await;
        check_some_writes(&store).await;
        crash_image(live.path(), crashed.path());
        let reopened = RedbCheckpointStore::new(db_path(crashed.path())).unwrap();
        check_some_writes(&reopened).await;
    });
}

#[tokio::test]
async fn a_log_left_by_a_deleted_database_is_not_replayed_into_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let store = RedbCheckpointStore::new(db_path(dir.path())).unwrap();
    some_writes(&store).await;
    std::fs::copy(log_path(dir.path()), log_path(image.path())).unwrap();
    drop(store);
    // The database is deleted, but an old log is still there.
    std::fs::remove_file(db_path(dir.path())).unwrap();
    std::fs::copy(log_path(image.path()), log_path(dir.path())).unwrap();
    let store = RedbCheckpointStore::new(db_path(dir.path())).unwrap();
    assert!(store.load_run("a").await.unwrap().is_empty());
    assert!(store.load_run("b").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_log_that_is_not_ours_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbCheckpointStore::new(db_path(dir.path())).unwrap());
    let foreign = b"SQLite format 3\0 and then some".to_vec();
    std::fs::write(log_path(dir.path()), &foreign).unwrap();
    let err = RedbCheckpointStore::new(db_path(dir.path()))
        .err()
        .expect("a foreign log is refused");
    assert_eq!(err.category(), "checkpoint_store");
    let text = err.message();
    assert!(text.contains("ckpt.redb-wal"), "{text}");
    assert!(text.contains("move the log away"), "{text}");
    assert_eq!(std::fs::read(log_path(dir.path())).unwrap(), foreign);
    // Moved away, the database opens.
    std::fs::remove_file(log_path(dir.path())).unwrap();
    RedbCheckpointStore::new(db_path(dir.path())).unwrap();
}

#[tokio::test]
async fn a_log_cut_short_by_the_crash_keeps_its_whole_records() {
    let live = tempfile::tempdir().unwrap();
    let store = RedbCheckpointStore::new(db_path(live.path())).unwrap();
    for seq in 0..4 {
        store.append("a", row(seq)).await.unwrap();
    }
    let image = tempfile::tempdir().unwrap();
    crash_image(live.path(), image.path());
    drop(store);
    // Cut the log inside its last record, as a crash during that write could.
    let log = std::fs::read(log_path(image.path())).unwrap();
    let end = log.iter().rposition(|&b| b != 0).unwrap() + 1;
    for cut in [end - 1, end - 10] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(db_path(image.path()), db_path(dir.path())).unwrap();
        std::fs::write(log_path(dir.path()), &log[..cut]).unwrap();
        let store = RedbCheckpointStore::new(db_path(dir.path())).unwrap();
        assert_eq!(sequences(&store, "a").await, [0, 1, 2], "cut at {cut}");
        // The lost row can be written again.
        store.append("a", row(3)).await.unwrap();
    }
}

#[tokio::test]
async fn a_log_that_cannot_be_read_stops_the_open() {
    // Something that is not a readable file sits under the log's name (here a
    // directory): the store does not open, and does not replace it with an empty log.
    let dir = tempfile::tempdir().unwrap();
    drop(RedbCheckpointStore::new(db_path(dir.path())).unwrap());
    std::fs::create_dir(log_path(dir.path())).unwrap();
    std::fs::write(log_path(dir.path()).join("keep"), b"x").unwrap();
    let err = RedbCheckpointStore::new(db_path(dir.path()))
        .err()
        .expect("an unreadable log is refused");
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("cannot read it"), "{err}");
    assert!(err.message().contains("ckpt.redb-wal"), "{err}");
    assert!(log_path(dir.path()).join("keep").exists());
}
