//! A store whose writer process is alive, then killed with SIGKILL: refused while it lives,
//! readable (its runs all there) once it is dead.

mod support;

use cano::RedbCheckpointStore;
use predicates::prelude::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use support::{FAILED, ROLLBACK, SIGNAL, TIMER, cano, store_arg};

/// Set for the child: the store it writes.
const CHILD_STORE: &str = "CANO_CLI_TEST_CHILD_STORE";

/// The child process (run by the test below, ignored otherwise): write the runs, say
/// `ready`, and wait to be killed with the store open.
#[test]
#[ignore = "the child process of a_killed_writer_leaves_a_store_the_cli_reads"]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD_STORE) else {
        return;
    };
    let rt = support::runtime();
    let store = rt.block_on(async {
        let store = Arc::new(RedbCheckpointStore::new(&path).expect("create the store"));
        support::write_runs(&store).await;
        store
    });
    println!("ready");
    std::thread::sleep(std::time::Duration::from_secs(60));
    drop(store);
}

#[test]
fn a_killed_writer_leaves_a_store_the_cli_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_writer", "--nocapture"])
        .env(CHILD_STORE, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "ready");
    assert!(ready, "the child did not get ready");

    // Alive and holding the file: refused, nothing touched.
    cano()
        .args(["runs", "list", "--store", &store_arg(&path)])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is open in another process"));

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Dead: its file (and the rows still in its write-ahead log) read back whole.
    let runs = support::list_json(&store_arg(&path), &[]);
    assert_eq!(
        support::ids(&runs),
        format!("{FAILED} {SIGNAL} {ROLLBACK} {TIMER}")
    );
    assert_eq!(runs[1]["status"], "waiting");
}
