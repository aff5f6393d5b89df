//! `cano runs signal|purge|cancel|retry` on a real redb store.

mod support;

use cano::prelude::*;
use cano::signal::SignalStore;
use predicates::prelude::*;
use std::sync::Arc;
use support::{FAILED, ROLLBACK, SIGNAL, TIMER, cano, fixture, store_arg};

#[test]
fn a_signal_sent_by_the_cli_is_consumed_by_the_resumed_run() {
    let (_dir, path) = fixture();
    let sent = support::send_approval(&store_arg(&path));
    assert!(
        sent.contains("when the program that owns the workflow"),
        "{sent}"
    );
    support::runtime().block_on(support::resume_approved(Arc::new(
        RedbCheckpointStore::new(&path).unwrap(),
    )));
}

#[test]
fn a_malformed_payload_is_refused_and_nothing_is_written() {
    let (_dir, path) = fixture();
    let store = store_arg(&path);
    cano()
        .args([
            "runs",
            "signal",
            SIGNAL,
            "approval",
            "--payload",
            "{approved: yes",
        ])
        .args(["--store", &store])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--payload"))
        .stderr(predicate::str::contains("not valid JSON"))
        .stderr(predicate::str::contains("nothing was sent"));
    support::runtime().block_on(async {
        let store = RedbCheckpointStore::new(&path).unwrap();
        let pending = store.pending_signals(SIGNAL, "approval").await.unwrap();
        assert!(pending.is_empty(), "{pending:?}");
    });
}

#[test]
fn a_signal_for_an_unknown_run_is_an_error() {
    let (_dir, path) = fixture();
    cano()
        .args(["runs", "signal", "order-1", "approval", "--payload", "{}"])
        .args(["--store", &store_arg(&path)])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("holds no run \"order-1\""));
}

fn listed(store: &str) -> String {
    support::ids(&support::list_json(store, &[]))
}

#[test]
fn purge_clears_logs_and_asks_for_yes_before_more_than_one() {
    let (_dir, path) = fixture();
    let store = store_arg(&path);
    cano()
        .args(["runs", "purge", TIMER, "--store", &store])
        .assert()
        .success()
        .stdout(predicate::str::contains("purged 1 run(s)"));
    assert_eq!(listed(&store), format!("{FAILED} {SIGNAL} {ROLLBACK}"));

    cano()
        .args(["runs", "purge", FAILED, SIGNAL, "--store", &store])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    cano()
        .args([
            "runs", "purge", FAILED, "order-1", "--yes", "--store", &store,
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("holds no run \"order-1\""))
        .stderr(predicate::str::contains("nothing was purged"));
    assert_eq!(listed(&store), format!("{FAILED} {SIGNAL} {ROLLBACK}"));

    let out = cano()
        .args([
            "runs",
            "purge",
            "--all-failed",
            "--yes",
            "--json",
            "--store",
            &store,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["purged"], serde_json::json!([FAILED, ROLLBACK]));
    assert_eq!(listed(&store), SIGNAL);
}

#[test]
fn purge_goes_through_many_runs() {
    let (_dir, path) = fixture();
    support::add_failed_runs(&path, 12);
    let store = store_arg(&path);
    cano()
        .args(["runs", "purge", "--all-failed", "--yes", "--store", &store])
        .assert()
        .success()
        .stdout(predicate::str::contains("purged 14 run(s)"));
    assert_eq!(listed(&store), format!("{SIGNAL} {TIMER}"));
}

#[test]
fn cancel_and_retry_say_they_need_the_owning_program() {
    let (_dir, path) = fixture();
    let store = store_arg(&path);
    cano()
        .args(["runs", "retry", FAILED, "--store", &store])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "only the program that owns the workflow",
        ))
        .stderr(predicate::str::contains(
            "Workflow::resume_from(\"import-7\")",
        ));
    cano()
        .args(["runs", "cancel", SIGNAL, "--store", &store])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cancelled by the program that runs it",
        ))
        .stderr(predicate::str::contains("cano runs purge order-1042"));
    assert_eq!(
        listed(&store),
        format!("{FAILED} {SIGNAL} {ROLLBACK} {TIMER}")
    );
}
