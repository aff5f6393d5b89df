//! `cano runs list --since`, the STARTED / UPDATED columns and runs marked failed by the
//! store (a run of a program using `Workflow::with_run_writers` that returned an error), on
//! real redb files and a real PostgreSQL database.

mod support;

use cano::RunWriters;
use cano::prelude::*;
use predicates::prelude::*;
use std::path::Path;
use std::sync::Arc;
use support::{
    FAILED, ROLLBACK, SIGNAL, TIMER, cano, fixture, ids, list_json, stdout_of, store_arg,
};

/// The run the store marks failed.
const MARKED: &str = "charge-9";

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cano/tests/fixtures/reference-0.12.0.redb"
);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Charge,
    Done,
}

struct Charge;

#[task(state = Step)]
impl Charge {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Err(CanoError::task_execution("card declined\nby the issuer"))
    }
}

/// Run [`MARKED`] through `store`'s run writers: it fails, and the store marks it.
async fn fail_marked<S: RunWriters>(store: Arc<S>) {
    let err = Workflow::bare()
        .register(Step::Charge, Charge)
        .add_exit_state(Step::Done)
        .with_run_writers(store)
        .with_workflow_id(MARKED)
        .orchestrate(Step::Charge)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("card declined"), "{err}");
}

fn add_marked(path: &Path) {
    support::runtime().block_on(async {
        let store = Arc::new(RedbCheckpointStore::new(path).expect("open the store"));
        fail_marked(store).await;
    });
}

fn run<'a>(runs: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    runs.iter().find(|r| r["run_id"] == id).expect("listed")
}

#[test]
fn the_table_and_json_carry_when_each_run_was_started_and_last_written() {
    let (_dir, path) = fixture();
    add_marked(&path);
    let store = store_arg(&path);
    let runs = list_json(&store, &[]);
    let now = now_ms();
    for r in &runs {
        let (started, updated) = (r["started_ms"].as_u64(), r["updated_ms"].as_u64());
        let (started, updated) = (started.expect("started_ms"), updated.expect("updated_ms"));
        assert!(started <= updated && updated <= now + 1000, "{r}");
        assert!(now - started < 600_000, "written by this test: {r}");
        for key in ["started", "updated"] {
            assert!(r[key].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
        }
    }
    let marked = run(&runs, MARKED);
    assert_eq!(marked["status"], "failed");
    assert_eq!(
        marked["error"],
        "Task execution error: card declined\nby the issuer"
    );
    assert!(run(&runs, FAILED)["error"].is_null(), "not marked");

    let text = stdout_of(["runs", "list", "--store", &store]);
    let lines: Vec<&str> = text.lines().collect();
    let started_col = lines[0].find("STARTED (UTC)").expect("a STARTED column");
    let updated_col = lines[0].find("UPDATED (UTC)").expect("an UPDATED column");
    for r in &runs {
        let line = lines
            .iter()
            .find(|l| l.starts_with(r["run_id"].as_str().unwrap()))
            .unwrap();
        let cell = |key: &str| utc_cell(r[key].as_u64().unwrap());
        assert!(
            line[started_col..].starts_with(&cell("started_ms")),
            "{text}"
        );
        assert!(
            line[updated_col..].starts_with(&cell("updated_ms")),
            "{text}"
        );
    }
    let marked = lines.iter().find(|l| l.starts_with(MARKED)).unwrap();
    assert!(marked.contains(" failed "), "{text}");
    assert!(
        marked.contains("error: Task execution error: card declined…"),
        "the first line of the error: {text}"
    );
}

#[test]
fn since_keeps_the_runs_written_lately_and_says_what_it_leaves_out() {
    let (_dir, path) = fixture();
    let store = store_arg(&path);
    let all = format!("{FAILED} {SIGNAL} {ROLLBACK} {TIMER}");
    assert_eq!(ids(&list_json(&store, &["--since", "1h"])), all);
    assert_eq!(
        ids(&list_json(&store, &["--since", "1970-01-02T00:00:00Z"])),
        all
    );
    assert_eq!(
        ids(&list_json(&store, &["--since", "2999-01-01T00:00:00Z"])),
        ""
    );
    cano()
        .args(["runs", "list", "--since", "2999-01-01T00:00:00+00:00"])
        .args(["--store", &store])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "no runs written since 2999-01-01 00:00:00 UTC in ",
        ));
    // With --status too.
    assert_eq!(
        ids(&list_json(
            &store,
            &["--since", "7d", "--status", "waiting"]
        )),
        format!("{SIGNAL} {TIMER}")
    );
    for bad in ["yesterday", "5", "3 fortnights", "-2h"] {
        cano()
            .args(["runs", "list", &format!("--since={bad}"), "--store", &store])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("RFC 3339").and(predicate::str::contains("30m")));
    }
}

#[test]
fn runs_of_a_file_written_before_times_were_kept_have_none_and_since_leaves_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.redb");
    std::fs::copy(REFERENCE, &path).expect("copy the cano 0.12.0 file");
    let store = store_arg(&path);
    let runs = list_json(&store, &[]);
    assert_eq!(runs.len(), 7);
    for r in &runs {
        for key in ["started_ms", "started", "updated_ms", "updated", "error"] {
            assert!(r[key].is_null(), "{key} of {r}");
        }
    }
    let text = stdout_of(["runs", "list", "--store", &store]);
    let line = text
        .lines()
        .find(|l| l.starts_with("plain-failed"))
        .unwrap();
    assert!(line.contains("  -  "), "no times: {text}");
    assert_eq!(ids(&list_json(&store, &["--since", "520w"])), "");
    cano()
        .args(["runs", "list", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("are left out"));
}

#[test]
fn a_marked_run_is_failed_for_the_filters_purge_and_show() {
    let (_dir, path) = fixture();
    add_marked(&path);
    let store = store_arg(&path);
    assert_eq!(
        ids(&list_json(&store, &["--status", "failed"])),
        format!("{MARKED} {FAILED} {ROLLBACK}")
    );
    let shown = stdout_of(["runs", "show", MARKED, "--store", &store]);
    assert!(shown.contains("started 2"), "{shown}");
    assert!(shown.contains(", last written 2"), "{shown}");
    assert!(
        shown.contains("error: Task execution error: card declined\nby the issuer"),
        "{shown}"
    );
    assert!(
        shown.contains("the run returned an error and nothing is running it"),
        "{shown}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout_of([
        "runs", "show", MARKED, "--json", "--store", &store,
    ]))
    .unwrap();
    assert_eq!(json["run"]["status"], "failed");
    assert!(json["run"]["updated_ms"].as_u64().is_some());
    assert!(
        json["run"]["error"]
            .as_str()
            .unwrap()
            .contains("card declined")
    );
    // An older run's show says the store does not know its times.
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("reference.redb");
    std::fs::copy(REFERENCE, &old).unwrap();
    let shown = stdout_of(["runs", "show", "plain-failed", "--store", &store_arg(&old)]);
    assert!(
        shown.contains("started not known, last written not known"),
        "{shown}"
    );
    cano()
        .args(["runs", "purge", "--all-failed", "--yes", "--store", &store])
        .assert()
        .success()
        .stdout(predicate::str::contains(MARKED));
    assert_eq!(ids(&list_json(&store, &[])), format!("{SIGNAL} {TIMER}"));
}

#[test]
fn on_postgres_a_marked_run_is_failed_even_under_its_lease() {
    let Some(url) = support::pg::fixture("marked") else {
        return;
    };
    support::runtime().block_on(async {
        // The failed run keeps its lease until it expires (10 minutes here).
        let store = support::pg::connect(&url)
            .await
            .with_worker_id("worker-3")
            .with_lease_duration(std::time::Duration::from_secs(600));
        fail_marked(Arc::new(store)).await;
    });
    let runs = list_json(&url, &[]);
    let marked = run(&runs, MARKED);
    assert_eq!(marked["status"], "failed", "{marked}");
    assert!(marked.get("lease_holder").is_none(), "{marked}");
    assert!(marked["error"].as_str().unwrap().contains("card declined"));
    assert_eq!(run(&runs, FAILED)["status"], "running-or-failed");
    for r in &runs {
        assert!(r["started_ms"].as_u64() <= r["updated_ms"].as_u64(), "{r}");
        assert!(
            r["updated"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{r}"
        );
    }
    assert_eq!(
        ids(&list_json(&url, &["--status", "failed"])),
        format!("{MARKED} {FAILED} {ROLLBACK}")
    );
    assert!(!ids(&list_json(&url, &["--status", "running"])).contains(MARKED));
    assert_eq!(
        ids(&list_json(&url, &["--since", "1h"])),
        format!("{MARKED} {FAILED} {SIGNAL} {ROLLBACK} {TIMER}")
    );
    assert_eq!(
        ids(&list_json(&url, &["--since", "2999-01-01T00:00:00Z"])),
        ""
    );
    let shown = stdout_of(["runs", "show", MARKED, "--store", &url]);
    assert!(
        shown.contains("error: Task execution error: card declined"),
        "{shown}"
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `ms` as the table shows it: `2026-12-05 21:30:00`, UTC.
fn utc_cell(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
