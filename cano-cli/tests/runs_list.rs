//! `cano runs list`: table, JSON and status filters on a real redb store.

mod support;

use predicates::prelude::*;
use support::{FAILED, ROLLBACK, SIGNAL, TIMER, cano, fixture, ids, list_json, store_arg};

#[test]
fn the_table_has_a_line_per_run_with_status_last_state_and_what_it_waits_for() {
    let (_dir, path) = fixture();
    let text = support::stdout_of(["runs", "list", "--store", &store_arg(&path)]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("RUN ID"), "{text}");
    // Aligned: every column starts where its header does.
    let status_col = lines[0].find("STATUS").unwrap();
    let state_col = lines[0].find("LAST STATE").unwrap();
    for line in &lines[1..] {
        assert_ne!(&line[status_col..status_col + 1], " ", "{text}");
        assert_eq!(&line[status_col - 1..status_col], " ", "{text}");
        assert_ne!(&line[state_col..state_col + 1], " ", "{text}");
    }
    let line = |id: &str| *lines.iter().find(|l| l.starts_with(id)).unwrap();
    assert!(line(FAILED).contains(" failed ") && line(FAILED).contains(" Load "));
    assert!(
        line(SIGNAL).contains("waiting") && line(SIGNAL).contains("signal \"approval\" until ")
    );
    assert!(
        line(SIGNAL).contains(" UTC (in 6 d 23 h)") || line(SIGNAL).contains(" UTC (in 7 d 0 h)")
    );
    assert!(line(TIMER).contains("timer until ") && line(TIMER).contains(" Wait "));
    assert!(
        line(ROLLBACK).contains("rolling-back")
            && line(ROLLBACK).contains("1 compensation(s) left")
    );
}

#[test]
fn json_lists_every_run_with_every_key() {
    let (_dir, path) = fixture();
    let runs = list_json(&store_arg(&path), &[]);
    assert_eq!(ids(&runs), format!("{FAILED} {SIGNAL} {ROLLBACK} {TIMER}"));
    let signal = &runs[1];
    assert_eq!(signal["status"], "waiting");
    assert_eq!(signal["last_state"], "AwaitApproval");
    assert_eq!(signal["signal"], "approval");
    assert!(signal["deadline_ms"].as_u64().unwrap() > 0);
    assert!(signal["deadline"].as_str().unwrap().ends_with('Z'));
    assert_eq!(runs[2]["compensations_left"], 1);
    assert_eq!(runs[0]["rows"], 2);
    for run in &runs {
        for key in [
            "run_id",
            "status",
            "last_state",
            "last_sequence",
            "rows",
            "signal",
            "deadline_ms",
            "deadline",
            "compensations_left",
            "problem",
            "version",
        ] {
            assert!(run.get(key).is_some(), "{key} missing in {run}");
        }
    }
}

#[test]
fn status_filters_map_what_a_log_can_tell() {
    let (_dir, path) = fixture();
    let store = store_arg(&path);
    let filtered = |s: &str| ids(&list_json(&store, &["--status", s]));
    assert_eq!(filtered("failed"), format!("{FAILED} {ROLLBACK}"));
    assert_eq!(filtered("rolling-back"), ROLLBACK);
    assert_eq!(filtered("waiting"), format!("{SIGNAL} {TIMER}"));
    assert_eq!(filtered("done"), "");
    assert_eq!(filtered("running"), "");
    assert_eq!(
        ids(&list_json(&store, &["--status", "waiting", "--limit", "1"])),
        SIGNAL
    );
    cano()
        .args(["runs", "list", "--status", "running", "--store", &store])
        .assert()
        .success()
        .stdout("no running runs in ".to_string() + &path.display().to_string() + "\n")
        .stderr(predicate::str::contains("no run in a redb file is running"));
}

#[test]
fn help_documents_the_status_mapping_and_the_times() {
    cano()
        .args(["runs", "list", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "a run that finished (or whose rollback finished cleanly) clears",
        ))
        .stdout(predicate::str::contains("--since <WHEN>"))
        .stdout(predicate::str::contains("STARTED and UPDATED"));
}
