//! Cron across machines whose clocks disagree: three cron node processes share one
//! schedule, one of them under `faketime` with its wall clock five minutes ahead. Ticks
//! come from the database's clock, so every tick of the window starts exactly one run,
//! none is early or late by the shifted node's clock, and none is missing.
//!
//! The test binary re-executes itself as the nodes (`crash::driver`), the shifted one
//! through `faketime` (the distribution's `faketime` package, LD_PRELOAD of libfaketime;
//! its monotonic clock is left alone, so the node's timers run normally). Without
//! `faketime` the test says why it skips, and fails when `CANO_REQUIRE_FAKETIME=1` (as
//! `.ci/run` sets it); without PostgreSQL likewise (`CANO_REQUIRE_POSTGRES=1`).
#![cfg(all(feature = "postgres", feature = "scheduler", unix))]

mod crash;
mod pg_plain;
mod pg_support;

use cano::cancel::CancellationToken;
use cano::cluster::{Cron, Misfire};
use cano::prelude::*;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ENTRY: &str = "cron_node_driver_entry";
/// Set in a node: the database's URL.
const URL_VAR: &str = "CANO_PG_URL";
/// How long each node runs its schedule.
const RUN_FOR: Duration = Duration::from_millis(3_500);
/// How far ahead the shifted node's wall clock is.
const SHIFT: Duration = Duration::from_secs(300);

fn wall_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A cron node, run inside a child process for [`RUN_FOR`]: it prints the wall clock it
/// sees (`CLOCK <ms>`), then runs the schedule `every-second`.
#[test]
fn cron_node_driver_entry() {
    crash::drive(|mode, _dir| async move {
        let url = std::env::var(URL_VAR).expect("database URL");
        crash::say(&format!("CLOCK {}", wall_ms()));
        let store = PostgresCheckpointStore::connect(&url)
            .await?
            .with_worker_id(format!("node-{mode}"));
        let cron = Cron::new(store)
            .with_poll_interval(Duration::from_millis(50))
            .schedule(
                "every-second",
                "* * * * * *",
                "job",
                &serde_json::json!({ "n": 1 }),
                &"Start",
                Misfire::RunAll,
            )?;
        let (stop, token) = CancellationToken::new();
        tokio::spawn(async move {
            tokio::time::sleep(RUN_FOR).await;
            stop.cancel();
        });
        crash::say("NODE UP");
        cron.run(token).await.map(|()| "stopped")
    });
}

/// `faketime`'s path, or `None` (and why) when it is not installed and not required.
fn faketime() -> Option<String> {
    let found = Command::new("sh")
        .args(["-c", "command -v faketime"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|path| !path.is_empty());
    if found.is_none() {
        let why = "faketime is not installed (Debian/Ubuntu: apt-get install faketime)";
        if std::env::var("CANO_REQUIRE_FAKETIME").as_deref() == Ok("1") {
            panic!("{why}, and CANO_REQUIRE_FAKETIME=1");
        }
        eprintln!("skipping: {why}");
    }
    found
}

/// The database's clock now, in ms since the epoch.
async fn db_ms(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        &[],
    )
    .await
    .expect("read the database's clock")
    .get(0)
}

#[test]
fn three_cron_nodes_one_with_its_clock_minutes_ahead_start_one_run_per_tick() {
    let Some(faketime) = faketime() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(url) = rt.block_on(pg_support::fresh_database("cron_clock")) else {
        return;
    };
    // The tables exist before the nodes start.
    let db = rt.block_on(async {
        PostgresCheckpointStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        pg_plain::plain_client(&url).await
    });
    let started = rt.block_on(db_ms(&db));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = Vec::new();
    for (mode, shifted) in [("a", false), ("b", false), ("ahead", true)] {
        let cmd = if shifted {
            let inner = crash::driver(ENTRY, mode, dir.path());
            let mut cmd = Command::new(&faketime);
            cmd.arg("-f")
                .arg(format!("+{}s", SHIFT.as_secs()))
                .arg(inner.get_program())
                .args(inner.get_args())
                .envs(
                    inner
                        .get_envs()
                        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
                )
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
            cmd
        } else {
            crash::driver(ENTRY, mode, dir.path())
        };
        let mut cmd = cmd;
        cmd.env(URL_VAR, &url);
        let mut node = crash::Driver::spawn(cmd);
        let clock: i64 = node
            .until("CLOCK")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("node {mode} printed no clock:\n{}", node.printed));
        let off = clock - wall_ms();
        let expected = if shifted {
            i64::try_from(SHIFT.as_millis()).unwrap_or(i64::MAX)
        } else {
            0
        };
        assert!(
            (off - expected).abs() < 10_000,
            "node {mode}'s clock is {off} ms off ours, expected about {expected} ms \
             (faketime did not take?)"
        );
        nodes.push(node);
    }
    for node in nodes {
        let printed = node.finish();
        assert!(printed.contains("COMPLETED"), "{printed}");
    }
    let ended = rt.block_on(db_ms(&db));

    let ticks: Vec<(String, i64)> = rt.block_on(async {
        db.query(
            "SELECT idempotency_key, count(*) FROM cano_cluster_runs \
             WHERE idempotency_key LIKE 'cron:every-second:%' \
             GROUP BY idempotency_key ORDER BY idempotency_key",
            &[],
        )
        .await
        .expect("read the ticks' runs")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
    });
    let secs: Vec<i64> = ticks
        .iter()
        .map(|(key, runs)| {
            assert_eq!(*runs, 1, "tick {key} started {runs} runs");
            let tick = key.trim_start_matches("cron:every-second:");
            chrono::DateTime::parse_from_rfc3339(tick)
                .unwrap_or_else(|e| panic!("tick {tick:?}: {e}"))
                .timestamp()
        })
        .collect();
    assert!(secs.len() >= 2, "too few ticks: {ticks:?}");
    assert!(
        secs.windows(2).all(|w| w[1] - w[0] == 1),
        "a tick is missing or doubled: {ticks:?}"
    );
    // Every tick is within the window by the database's clock: none comes from the
    // shifted node's clock.
    for &sec in &secs {
        assert!(
            sec * 1000 >= started - 2_000 && sec * 1000 <= ended + 1_000,
            "tick at {sec} s is outside the run's window [{started}, {ended}] ms: {ticks:?}"
        );
    }
    eprintln!(
        "three cron nodes (one {} s ahead) started {} runs for {} ticks",
        SHIFT.as_secs(),
        ticks.len(),
        secs.len()
    );
}
