//! Bad stores and bad command lines: a clear message and the conventional exit code,
//! never a panic, never a changed file.

mod support;

use cano::RedbCheckpointStore;
use predicates::prelude::*;
use support::{cano, fixture, store_arg};

#[test]
fn a_missing_file_is_named_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.redb");
    cano()
        .args(["runs", "list", "--store", &store_arg(&path)])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(path.display().to_string()))
        .stderr(predicate::str::contains("no such file"));
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_file_that_is_not_a_cano_store_is_named_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database, just some text\n".repeat(200)).unwrap();
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, "").unwrap();
    let foreign = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<u64, u64>::new("orders"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
    }
    for (path, says) in [
        (&text, "is not a cano checkpoint store"),
        (&empty, "is an empty file"),
        (
            &foreign,
            "is a redb database but not a cano checkpoint store",
        ),
        (&dir.path().to_path_buf(), "is a directory"),
    ] {
        let before = std::fs::read(path).ok();
        cano()
            .args(["runs", "list", "--store", &store_arg(path)])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(path.display().to_string()))
            .stderr(predicate::str::contains(says));
        assert_eq!(
            std::fs::read(path).ok(),
            before,
            "{} changed",
            path.display()
        );
    }
    // Nothing beside them either (no write-ahead log, no staging file).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn a_file_held_open_by_another_process_is_refused_clearly() {
    let (_dir, path) = fixture();
    let held = RedbCheckpointStore::new(&path).unwrap();
    for args in [
        &["runs", "list"][..],
        &["runs", "purge", support::FAILED],
        &[
            "runs",
            "signal",
            support::SIGNAL,
            "approval",
            "--payload",
            "{}",
        ],
    ] {
        cano()
            .args(args)
            .args(["--store", &store_arg(&path)])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("is open in another process"))
            .stderr(predicate::str::contains("nothing was read or changed"));
    }
    drop(held);
    // Still whole: every run is there.
    cano()
        .args(["runs", "list", "--store", &store_arg(&path)])
        .assert()
        .success()
        .stdout(predicate::str::contains(support::FAILED));
}

#[test]
fn store_urls_with_a_typo_are_usage_errors_and_hide_the_password() {
    // A PostgreSQL URL is accepted; nobody listens on port 1, and the password stays out.
    cano()
        .args([
            "runs",
            "list",
            "--store",
            "postgres://ana:secret@127.0.0.1:1/cano",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "postgres://ana:***@127.0.0.1:1/cano",
        ))
        .stderr(predicate::str::contains("cannot connect"))
        .stderr(predicate::str::contains("secret").not());
    for typo in [
        "rebd:/tmp/x.redb",
        "/tmp/x.redb",
        "redb:",
        "postgrs://ana:secret@db/cano",
    ] {
        cano()
            .args(["runs", "list", "--store", typo])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("redb:PATH"))
            .stderr(predicate::str::contains("secret").not());
    }
}

#[test]
fn bad_usage_exits_with_2() {
    let (_dir, path) = fixture();
    let store = store_arg(&path);
    for args in [
        &["runs", "list"][..],
        &["runs", "list", "--status", "finished", "--store", &store],
        &["runs", "list", "--limit", "many", "--store", &store],
        &["runs", "frobnicate", "--store", &store],
        &["graph", "x", "--format", "png", "--store", &store],
        &["runs", "purge", "--store", &store],
        &["runs", "signal", "x", "approval", "--store", &store],
    ] {
        cano().args(args).assert().code(2).stdout("");
    }
    cano()
        .args(["runs", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no store given"));
}
