//! Every command on a real PostgreSQL store (`--store postgres://…`): runs written by
//! workflows through the library, read, signalled and purged by the CLI; bad URLs, bad
//! credentials and databases that are not cano stores give clear errors and change
//! nothing.
//!
//! One throwaway server per test binary and a database per test (`support::pg`); without
//! PostgreSQL the tests print why they skip, and fail when `CANO_REQUIRE_POSTGRES=1`.

mod support;

use predicates::prelude::*;
use std::sync::Arc;
use support::pg;
use support::{FAILED, ROLLBACK, SIGNAL, TIMER, cano, ids, list_json, stdout_of};

#[test]
fn runs_list_shows_the_runs_as_a_table_as_json_and_by_status() {
    let Some(url) = pg::fixture("list") else {
        return;
    };
    let out = cano()
        .args(["runs", "list", "--store", &url])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("RUN ID"), "{text}");
    let line = |id: &str| *lines.iter().find(|l| l.starts_with(id)).unwrap();
    // A shared database may have the run in progress elsewhere: the status says so.
    assert!(line(FAILED).contains(" running-or-failed "), "{text}");
    assert!(line(FAILED).contains(" Load "), "{text}");
    assert!(
        line(SIGNAL).contains("signal \"approval\" until "),
        "{text}"
    );
    assert!(line(TIMER).contains("timer until "), "{text}");
    assert!(line(ROLLBACK).contains("1 compensation(s) left"), "{text}");

    let runs = list_json(&url, &[]);
    assert_eq!(ids(&runs), format!("{FAILED} {SIGNAL} {ROLLBACK} {TIMER}"));
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["running-or-failed", "waiting", "rolling-back", "waiting"]
    );
    assert_eq!(runs[0]["rows"], 2);
    assert_eq!(runs[1]["signal"], "approval");

    assert_eq!(
        ids(&list_json(&url, &["--status", "waiting"])),
        format!("{SIGNAL} {TIMER}")
    );
    for status in ["failed", "running"] {
        assert_eq!(
            ids(&list_json(&url, &["--status", status])),
            format!("{FAILED} {ROLLBACK}")
        );
    }
    cano()
        .args(["runs", "list", "--status", "running", "--store", &url])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "running and failed runs are the same",
        ));
    assert_eq!(ids(&list_json(&url, &["--limit", "1"])), FAILED);
}

#[test]
fn runs_show_and_graph_decode_a_run_and_never_print_the_password() {
    let Some(url) = pg::fixture("show") else {
        return;
    };
    let password = pg::password(&url).to_string();
    let rollback = stdout_of(["runs", "show", ROLLBACK, "--store", &url]);
    for line in [
        "rollback started after task_execution error: courier rejected the parcel; steps to undo: reserve, charge",
        "compensated reserve (step 0)",
        "stopped: rolling back after task_execution error: courier rejected the parcel; 1 compensation(s) not done",
    ] {
        assert!(rollback.contains(line), "{line:?} not in {rollback}");
    }
    assert!(
        rollback.contains("postgresql://postgres:***@127.0.0.1:"),
        "{rollback}"
    );
    assert!(!rollback.contains(&password), "{rollback}");

    let show: serde_json::Value = serde_json::from_str(&stdout_of([
        "runs", "show", SIGNAL, "--json", "--store", &url,
    ]))
    .unwrap();
    assert_eq!(show["run"]["status"], "waiting");
    assert!(
        show["why"]
            .as_str()
            .unwrap()
            .contains("no signal has been sent yet")
    );

    let mermaid = stdout_of(["graph", ROLLBACK, "--store", &url]);
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert!(mermaid.contains("s0[\"Reserve\"]"), "{mermaid}");
    let dot = stdout_of(["graph", FAILED, "--format", "dot", "--store", &url]);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("Load"), "{dot}");

    for args in [
        &["runs", "show", "order-9999"][..],
        &["graph", "order-9999"],
        &["runs", "purge", "order-9999"],
        &[
            "runs",
            "signal",
            "order-9999",
            "approval",
            "--payload",
            "{}",
        ],
    ] {
        cano()
            .args(args)
            .args(["--store", &url])
            .assert()
            .code(1)
            .stdout("")
            .stderr(predicate::str::contains("holds no run \"order-9999\""))
            .stderr(predicate::str::contains(":***@"))
            .stderr(predicate::str::contains(password.as_str()).not());
    }
}

#[test]
fn a_signal_sent_by_the_cli_is_consumed_by_the_resumed_run() {
    let Some(url) = pg::fixture("signal") else {
        return;
    };
    let sent = support::send_approval(&url);
    assert!(
        sent.contains("a program waiting on the run now wakes"),
        "{sent}"
    );
    support::runtime().block_on(async {
        support::resume_approved(Arc::new(pg::connect(&url).await)).await;
    });
}

#[test]
fn purge_clears_runs_and_their_signals() {
    let Some(url) = pg::fixture("purge") else {
        return;
    };
    cano()
        .args(["runs", "signal", SIGNAL, "approval", "--payload", "{}"])
        .args(["--store", &url])
        .assert()
        .success();
    cano()
        .args(["runs", "purge", SIGNAL, "--store", &url])
        .assert()
        .success()
        .stdout(predicate::str::contains("purged 1 run(s)"));
    assert_eq!(pg::query(&url, "SELECT count(*) FROM cano_signals"), ["0"]);
    cano()
        .args(["runs", "purge", "--all-failed", "--store", &url])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    let out = stdout_of([
        "runs",
        "purge",
        "--all-failed",
        "--yes",
        "--json",
        "--store",
        &url,
    ]);
    let purged: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(purged["purged"], serde_json::json!([FAILED, ROLLBACK]));
    assert_eq!(ids(&list_json(&url, &[])), TIMER);
}

#[test]
fn cancel_and_retry_say_who_can() {
    let Some(url) = pg::fixture("actions") else {
        return;
    };
    cano()
        .args(["runs", "cancel", FAILED, "--store", &url])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is not a cluster run (cano::cluster) is cancelled by the program that runs it",
        ))
        .stderr(predicate::str::contains("cano runs purge import-7"));
    cano()
        .args(["runs", "retry", ROLLBACK, "--store", &url])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "Workflow::resume_from(\"order-1043\")",
        ));
    assert_eq!(list_json(&url, &[]).len(), 4);
}

#[test]
fn cancel_and_retry_act_on_cluster_runs() {
    let Some(url) = pg::fresh_database("cluster_actions") else {
        return;
    };
    let (ready, running, failed) = support::runtime().block_on(async {
        let client = cano::cluster::Client::new(pg::connect(&url).await);
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(client.submit("job", &n, &"Start", None).await.unwrap());
        }
        (ids[0].clone(), ids[1].clone(), ids[2].clone())
    });
    // One taken by a worker, one failed (as workers record them).
    pg::query(
        &url,
        &format!(
            "UPDATE cano_cluster_runs SET status = 'running', worker = 'w-1' WHERE run_id = '{running}'"
        ),
    );
    pg::query(
        &url,
        &format!(
            "UPDATE cano_cluster_runs SET status = 'failed', error = 'boom', finished_at = now() \
             WHERE run_id = '{failed}'"
        ),
    );
    let json =
        |args: &[&str]| -> serde_json::Value { serde_json::from_str(&stdout_of(args)).unwrap() };
    let cancel = |id: &str| json(&["runs", "cancel", id, "--store", &url, "--json"]);

    let out = cancel(&ready);
    assert_eq!(
        (out["outcome"].as_str(), out["status"].as_str()),
        (Some("cancelled"), Some("cancelled")),
        "{out}"
    );
    let out = cancel(&ready);
    assert_eq!(out["outcome"], "already-ended", "{out}");
    let out = cancel(&running);
    assert_eq!(
        (out["outcome"].as_str(), out["status"].as_str()),
        (Some("requested"), Some("running")),
        "{out}"
    );
    assert_eq!(
        pg::query(
            &url,
            &format!(
                "SELECT (cancel_requested_at IS NOT NULL)::text FROM cano_cluster_runs WHERE run_id = '{running}'"
            )
        ),
        ["true"]
    );
    cano()
        .args(["runs", "cancel", &failed, "--store", &url])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "has ended already (failed): nothing changed",
        ));

    cano()
        .args(["runs", "retry", &failed, "--store", &url])
        .assert()
        .success()
        .stdout(predicate::str::contains("is ready again"));
    assert_eq!(
        pg::query(
            &url,
            &format!(
                "SELECT status || ' ' || attempts FROM cano_cluster_runs WHERE run_id = '{failed}'"
            )
        ),
        ["ready 0"]
    );
    cano()
        .args(["runs", "retry", &ready, "--store", &url])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is cancelled: only a failed or parked run can be retried",
        ));
    // Not a cluster run and not in the store: the usual error.
    cano()
        .args(["runs", "cancel", "no-such-run", "--store", &url])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no-such-run"));
}

/// What `runs list` says on `store`: exit code 1 and stderr.
fn list_fails(store: &str) -> String {
    let out = cano()
        .args(["runs", "list", "--store", store])
        .assert()
        .code(1)
        .stdout("")
        .get_output()
        .clone();
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_urls_and_credentials_are_clear_errors() {
    let Some(url) = pg::fixture("bad") else {
        return;
    };
    let server = pg::server().unwrap();
    let password = pg::password(&url);

    let wrong = url.replace(password, "not-the-password");
    let err = list_fails(&wrong);
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(err.contains("check the user name and password"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    // A port nobody listens on: the server's, once it is free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = url.replace(&format!(":{}/", server.port()), &format!(":{port}/"));
    let err = list_fails(&closed);
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(err.contains("is the server running"), "{err}");
    assert!(!err.contains(password), "{err}");

    let missing = server.url_for("no_such_database");
    let err = list_fails(&missing);
    assert!(err.contains("does not exist"), "{err}");

    let typo = url.replace(&format!(":{}/", server.port()), ":54x2/");
    let err = list_fails(&typo);
    assert!(err.contains("does not parse"), "{err}");
    assert!(!err.contains(password), "{err}");

    // A misspelt scheme is a usage error.
    cano()
        .args([
            "runs",
            "list",
            "--store",
            &url.replace("postgresql", "postgress"),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown store kind `postgress`"))
        .stderr(predicate::str::contains(password).not());
}

#[test]
fn a_database_without_cano_tables_is_refused_and_left_as_it_is() {
    let Some(url) = pg::fresh_database("foreign") else {
        return;
    };
    pg::query(
        &url,
        "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)",
    );
    let tables = "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables \
                  WHERE schemaname = 'public'";
    for args in [
        &["runs", "list"][..],
        &["runs", "show", FAILED],
        &["graph", FAILED],
        &["runs", "signal", SIGNAL, "approval", "--payload", "{}"],
        &["runs", "purge", FAILED],
    ] {
        cano()
            .args(args)
            .args(["--store", &url])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("has no cano tables"))
            .stderr(predicate::str::contains("nothing was created"));
    }
    assert_eq!(pg::query(&url, tables), ["orders"]);
}

#[test]
fn the_postgres_scheme_works_like_postgresql() {
    let Some(url) = pg::fixture("scheme") else {
        return;
    };
    let short = url.replacen("postgresql://", "postgres://", 1);
    assert_eq!(list_json(&short, &[]).len(), 4);
}

#[test]
fn a_run_a_worker_holds_a_live_lease_on_is_running_not_failed() {
    let Some(url) = pg::fixture("leased") else {
        return;
    };
    // A worker takes the failed run's lease (as a cluster worker resuming it would).
    let lease = support::runtime().block_on(async {
        let store = pg::connect(&url)
            .await
            .with_worker_id("worker-7")
            .with_lease_duration(std::time::Duration::from_secs(600));
        store.claim(FAILED).await.expect("claim the run")
    });
    assert_eq!(lease.owner(), "worker-7");
    let runs = list_json(&url, &[]);
    let failed = runs.iter().find(|r| r["run_id"] == FAILED).unwrap();
    assert_eq!(failed["status"], "running", "{failed}");
    assert_eq!(failed["lease_holder"], "worker-7");
    assert!(failed["lease_until_ms"].as_u64().is_some());
    let table = stdout_of(["runs", "list", "--store", &url]);
    assert!(
        table.contains("held by worker \"worker-7\", lease until"),
        "{table}"
    );
    assert_eq!(
        ids(&list_json(&url, &["--status", "running"])),
        format!("{FAILED} {ROLLBACK}")
    );
    assert_eq!(
        ids(&list_json(&url, &["--status", "failed"])),
        ROLLBACK,
        "not failed"
    );
    // `purge --all-failed` leaves the running run alone.
    cano()
        .args(["runs", "purge", "--all-failed", "--yes", "--store", &url])
        .assert()
        .success();
    assert_eq!(
        ids(&list_json(&url, &[])),
        format!("{FAILED} {SIGNAL} {TIMER}")
    );
}

#[test]
fn the_dashboard_serves_a_postgres_store() {
    use std::io::{Read, Write};
    let Some(url) = pg::fixture("dashboard") else {
        return;
    };
    let (mut child, addr) = support::start_dashboard(&url, None);
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        raw
    };
    let list = get("/runs");
    assert!(list.starts_with("HTTP/1.1 200"), "{list}");
    for id in [FAILED, SIGNAL, ROLLBACK, TIMER] {
        assert!(list.contains(&format!(">{id}</a>")), "{id} missing: {list}");
    }
    assert!(list.contains("running-or-failed"), "{list}");
    assert!(
        !list.contains(pg::password(&url)),
        "the password never shows"
    );
    let run = get(&format!("/runs/{ROLLBACK}"));
    assert!(
        run.starts_with("HTTP/1.1 200") && run.contains("<svg"),
        "{run}"
    );
    assert!(get("/runs/nope").starts_with("HTTP/1.1 404"));
    let _ = child.kill();
    let _ = child.wait();
}
