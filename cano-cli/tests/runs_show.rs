//! `cano runs show` and `cano graph` on a real redb store.

mod support;

use predicates::prelude::*;
use support::{FAILED, ROLLBACK, SIGNAL, TIMER, cano, fixture, store_arg};

fn show(store: &str, id: &str) -> String {
    support::stdout_of(["runs", "show", id, "--store", store])
}

#[test]
fn show_decodes_every_row_and_says_where_the_run_stopped() {
    let (_dir, path) = fixture();
    let store = store_arg(&path);

    let failed = show(&store, FAILED);
    assert!(
        failed.contains("#0    enter Fetch (task fetch)"),
        "{failed}"
    );
    assert!(
        failed.contains(
            "#1    enter Load (task load); run data from the states before: set batches = 12, \
             source = \"s3://bucket/2026-12-05.csv\""
        ),
        "{failed}"
    );
    assert!(failed.contains("stopped: in Load (row #1)"), "{failed}");
    assert!(
        failed.contains("Workflow::resume_from(\"import-7\")"),
        "{failed}"
    );

    let timer = show(&store, TIMER);
    assert!(timer.contains("Wait: timer waits until 20"), "{timer}");
    assert!(timer.contains(" UTC"), "{timer}");
    assert!(
        timer.contains("stopped: in Wait, on a timer until "),
        "{timer}"
    );

    let signal = show(&store, SIGNAL);
    assert!(
        signal.contains("AwaitApproval: waits for signal \"approval\" until "),
        "{signal}"
    );
    assert!(signal.contains("no signal has been sent yet"), "{signal}");

    let rollback = show(&store, ROLLBACK);
    for line in [
        "Reserve: saga step reserve completed, output {\"done_by\":\"reserve\"}",
        "rollback started after task_execution error: courier rejected the parcel; steps to undo: reserve, charge",
        "compensated reserve (step 0)",
        "stopped: rolling back after task_execution error: courier rejected the parcel; 1 compensation(s) not done",
    ] {
        assert!(rollback.contains(line), "{line:?} not in {rollback}");
    }
}

#[test]
fn show_json_has_the_run_the_reason_and_the_decoded_path() {
    let (_dir, path) = fixture();
    let out = cano()
        .args([
            "runs",
            "show",
            ROLLBACK,
            "--json",
            "--store",
            &store_arg(&path),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"]["status"], "rolling-back");
    assert!(v["why"].as_str().unwrap().contains("courier rejected"));
    let kinds: Vec<&str> = v["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "state_entry",
            "completion",
            "state_entry",
            "completion",
            "state_entry",
            "rollback_started",
            "compensated"
        ]
    );
    assert_eq!(
        v["path"][5]["steps"],
        serde_json::json!(["reserve", "charge"])
    );
    assert_eq!(v["path"][6]["task_id"], "reserve");
    assert_eq!(v["path"][1]["output"]["done_by"], "reserve");
}

#[test]
fn an_unknown_run_id_is_an_error_naming_it() {
    let (_dir, path) = fixture();
    for args in [
        &["runs", "show", "order-9999"][..],
        &["graph", "order-9999", "--format", "dot"],
        &["runs", "retry", "order-9999"],
    ] {
        cano()
            .args(args)
            .args(["--store", &store_arg(&path)])
            .assert()
            .code(1)
            .stdout("")
            .stderr(predicate::str::contains("holds no run \"order-9999\""));
    }
}

#[test]
fn graph_draws_the_path_in_mermaid_and_dot() {
    let (_dir, path) = fixture();
    let store = store_arg(&path);
    let graph = |id: &str, format: &str| {
        support::stdout_of(["graph", id, "--format", format, "--store", &store])
    };
    let mermaid = graph(ROLLBACK, "mermaid");
    for part in [
        "flowchart TD\n",
        "s0[\"Reserve\"]",
        "s0 -->|\"1\"| s1",
        "s1 -->|\"2\"| s2",
        "s2 -.->|\"failed\"| rollback",
        "undo1([\"undo charge<br/>not done\"])",
        "undo0([\"undo reserve<br/>done\"])",
        "undo1 -.-|\"compensates\"| s1",
        "class rollback stopped",
    ] {
        assert!(mermaid.contains(part), "{part:?} not in {mermaid}");
    }
    let dot = graph(SIGNAL, "dot");
    assert!(dot.starts_with("digraph \"order-1042\" {"), "{dot}");
    assert!(dot.contains("s0 -> s1 [label=\"1\"];"), "{dot}");
    assert!(
        dot.contains("s1 [label=\"AwaitApproval\\nwaits for signal approval until "),
        "{dot}"
    );
    assert!(dot.contains("color=red, penwidth=3];"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
}

#[test]
fn a_malformed_log_is_listed_and_shown_row_by_row_not_refused() {
    let (_dir, path) = fixture();
    support::add_malformed_run(&path);
    let store = store_arg(&path);
    let runs = support::list_json(&store, &["--status", "malformed"]);
    assert_eq!(support::ids(&runs), support::MALFORMED);
    assert!(runs[0]["problem"].as_str().unwrap().contains("\"soon\""));
    assert_eq!(
        support::ids(&support::list_json(&store, &["--status", "failed"])),
        format!("{FAILED} {ROLLBACK}")
    );
    let text = show(&store, support::MALFORMED);
    assert!(text.contains("#0    enter Wait (task later)"), "{text}");
    assert!(text.contains("#1    MALFORMED: "), "{text}");
    assert!(
        text.contains("stopped: the log does not follow cano's format"),
        "{text}"
    );
    cano()
        .args([
            "graph",
            support::MALFORMED,
            "--format",
            "dot",
            "--store",
            &store,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("s0 [label=\"Wait\""));
}
