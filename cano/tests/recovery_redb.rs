//! `RedbCheckpointStore`: the store contract on a real file, group commit under
//! concurrency, and bad files.
#![cfg(feature = "recovery")]

use cano::prelude::*;
use std::sync::Arc;

fn row(seq: u64) -> CheckpointRow {
    CheckpointRow::new(seq, format!("S{seq}"), "task")
}

fn store_in(dir: &tempfile::TempDir) -> RedbCheckpointStore {
    RedbCheckpointStore::new(dir.path().join("ckpt.redb")).expect("open store")
}

#[tokio::test]
async fn all_row_kinds_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let rows = vec![
        CheckpointRow::new(0, "A", "a"),
        CheckpointRow::new(1, "A", "a").with_output(br#"{"x":1}"#.to_vec()),
        CheckpointRow::new(2, "B", "b").with_cursor(b"3".to_vec()),
    ];
    for r in &rows {
        store.append("run", r.clone()).await.unwrap();
    }
    assert_eq!(store.load_run("run").await.unwrap(), rows);
}

#[tokio::test]
async fn rows_come_back_sorted_and_unknown_ids_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    for seq in [5, 1, 9, 0, 3] {
        store.append("run", row(seq)).await.unwrap();
    }
    let seqs: Vec<u64> = store
        .load_run("run")
        .await
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(seqs, vec![0, 1, 3, 5, 9]);
    assert!(store.load_run("nobody").await.unwrap().is_empty());
    store.clear("nobody").await.unwrap();
}

#[tokio::test]
async fn rows_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store_in(&dir);
        store.append("run", row(0)).await.unwrap();
        store.append("run", row(1)).await.unwrap();
    }
    let store = store_in(&dir);
    assert_eq!(store.load_run("run").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_small_page_cache_reads_back_more_than_it_caches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-cache.redb");
    let payload = vec![7u8; 512];
    {
        // 64 KiB of cache against ~1 MB of rows: most reads go to the file.
        let store = RedbCheckpointStore::new_with_cache_size(&path, 64 << 10).unwrap();
        for run in 0..600 {
            for seq in 0..3 {
                let r = row(seq).with_output(payload.clone());
                store.append(&format!("run-{run}"), r).await.unwrap();
            }
        }
        for run in (0..600).step_by(7) {
            let rows = store.load_run(&format!("run-{run}")).await.unwrap();
            assert_eq!(rows.len(), 3, "run-{run}");
            assert!(
                rows.iter()
                    .all(|r| r.output_blob.as_deref() == Some(&payload[..]))
            );
        }
    }
    // And after reopening with the default cache.
    let store = RedbCheckpointStore::new(&path).unwrap();
    assert_eq!(store.load_run("run-599").await.unwrap().len(), 3);
}

#[tokio::test]
async fn clear_removes_one_id_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    store.append("a", row(0)).await.unwrap();
    store.append("b", row(0)).await.unwrap();
    store.clear("a").await.unwrap();
    assert!(store.load_run("a").await.unwrap().is_empty());
    assert_eq!(store.load_run("b").await.unwrap().len(), 1);
    // A cleared id can start again from sequence 0.
    store.append("a", row(0)).await.unwrap();
}

#[tokio::test]
async fn duplicates_are_rejected_and_the_original_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    store.append("run", row(0)).await.unwrap();
    let err = store
        .append("run", CheckpointRow::new(0, "Other", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("conflict"), "{err}");
    assert_eq!(
        err.message(),
        r#"checkpoint conflict: workflow "run" already has a row at sequence 0; resume the existing run or clear it before starting a new one"#
    );
    assert_eq!(store.load_run("run").await.unwrap(), vec![row(0)]);
    store.append("run", row(1)).await.unwrap();
    store.append("other", row(0)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs_stay_isolated_and_dense() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_in(&dir));
    let mut handles = Vec::new();
    for run in 0..16 {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let id = format!("run-{run}");
            for seq in 0..12 {
                store.append(&id, row(seq)).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    for run in 0..16 {
        let rows = store.load_run(&format!("run-{run}")).await.unwrap();
        let seqs: Vec<u64> = rows.iter().map(|r| r.sequence).collect();
        assert_eq!(seqs, (0..12).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_one_id_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_in(&dir));
    let handles: Vec<_> = (0..32)
        .map(|seq| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append("one", row(seq)).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let seqs: Vec<u64> = store
        .load_run("one")
        .await
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(seqs, (0..32).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_duplicates_in_one_batch_keep_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_in(&dir));
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .append("dup", CheckpointRow::new(0, format!("writer-{i}"), "t"))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert!(e.message().contains("conflict"), "{e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.load_run("dup").await.unwrap().len(), 1);
}

#[tokio::test]
async fn large_blobs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let blob: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    store
        .append(
            "big",
            CheckpointRow::new(0, "A", "t").with_output(blob.clone()),
        )
        .await
        .unwrap();
    let rows = store.load_run("big").await.unwrap();
    assert_eq!(rows[0].output_blob.as_deref(), Some(blob.as_slice()));
}

#[tokio::test]
async fn a_second_handle_on_an_open_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = store_in(&dir);
    let err = RedbCheckpointStore::new(dir.path().join("ckpt.redb"))
        .err()
        .expect("second open must fail");
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().starts_with("redb: "), "{err}");
    assert!(err.message().contains("ckpt.redb"), "{err}");
    assert!(err.message().contains("it is already open"), "{err}");
}

#[tokio::test]
async fn a_foreign_file_is_refused_with_its_name_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "these are not checkpoints\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = RedbCheckpointStore::new(&path)
        .err()
        .expect("a text file is not a database");
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("notes.txt"), "{err}");
    assert!(
        err.message()
            .contains("not a redb checkpoint database, or it is damaged"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[tokio::test]
async fn a_truncated_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.redb");
    {
        let store = RedbCheckpointStore::new(&path).unwrap();
        for seq in 0..50 {
            store.append("run", row(seq)).await.unwrap();
        }
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    match RedbCheckpointStore::new(&path) {
        Err(err) => {
            assert_eq!(err.category(), "checkpoint_store");
            assert!(err.message().contains("ckpt.redb"), "{err}");
        }
        // If redb can repair what is left, every row it returns must be intact.
        Ok(store) => {
            for r in store.load_run("run").await.unwrap() {
                assert_eq!(r, row(r.sequence));
            }
        }
    }
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/ckpt.redb");
    let err = RedbCheckpointStore::new(&path).err().expect("must fail");
    assert!(err.message().contains("ckpt.redb"), "{err}");
    assert!(
        err.message().contains("check that its directory exists"),
        "{err}"
    );
}

#[tokio::test]
async fn a_checkpointed_workflow_runs_on_redb_and_clears_its_log() {
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum S {
        A,
        B,
        Done,
    }
    struct Go(S);
    #[task(state = S)]
    impl Go {
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            Ok(TaskResult::Single(self.0.clone()))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_in(&dir));
    let wf = Workflow::bare()
        .register(S::A, Go(S::B))
        .register(S::B, Go(S::Done))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("wf");
    assert_eq!(wf.orchestrate(S::A).await.unwrap(), S::Done);
    assert!(store.load_run("wf").await.unwrap().is_empty());
}
