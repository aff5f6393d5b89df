//! Run leases and fenced writes on `PostgresCheckpointStore`: claims, renewals, releases
//! and takeovers with their epochs (timed by the database), workers racing for a run, a
//! stale writer refused after a takeover, and a real workflow whose lease is taken over
//! mid-run: it fails `fenced` and starts no further task, and the new owner finishes it.
//!
//! On a throwaway server (`pg_support`); without PostgreSQL the tests print why they skip,
//! and fail when `CANO_REQUIRE_POSTGRES=1`. Leases are 300 ms, so the tests wait only a
//! few lease lengths in all.
#![cfg(feature = "postgres")]

mod pg_support;

use cano::RunWriters;
use cano::prelude::*;
use cano::recovery::postgres::Lease;
use cano::signal::SignalStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::{Barrier, Notify};

const LEASE: Duration = Duration::from_millis(300);

/// Long enough for a lease of [`LEASE`] to have ended by the database's clock.
async fn let_the_lease_expire() {
    tokio::time::sleep(LEASE + Duration::from_millis(150)).await;
}

/// A worker with leases of [`LEASE`].
async fn worker(url: &str, id: &str) -> PostgresCheckpointStore {
    pg_support::worker(url, id, LEASE).await
}

/// A plain client, to look at the tables behind the store's back.
async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// `(sequence, epoch)` of every row of `id`'s log.
async fn rows_with_epochs(url: &str, id: &str) -> Vec<(i64, Option<i64>)> {
    client(url)
        .await
        .query(
            "SELECT sequence, epoch FROM cano_checkpoints WHERE workflow_id = $1 ORDER BY sequence",
            &[&id],
        )
        .await
        .expect("read rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `(owner, epoch)` of `id`'s lease row.
async fn lease_row(url: &str, id: &str) -> Option<(Option<String>, i64)> {
    client(url)
        .await
        .query_opt(
            "SELECT owner, epoch FROM cano_runs WHERE workflow_id = $1",
            &[&id],
        )
        .await
        .expect("read lease")
        .map(|r| (r.get(0), r.get(1)))
}

fn assert_fenced(err: &CanoError, stale: u64, current: u64) {
    let text = err.to_string();
    assert_eq!(err.category(), "checkpoint_store", "{text}");
    assert!(text.contains("fenced"), "{text}");
    assert!(text.contains(&format!("epoch {stale}")), "{text}");
    assert!(text.contains(&format!("epoch {current}")), "{text}");
}

#[tokio::test]
async fn claims_renewals_releases_and_takeovers_follow_the_epochs() {
    let Some(url) = pg_support::fresh_database("lease_cycle").await else {
        return;
    };
    let (a, b) = (worker(&url, "w-a").await, worker(&url, "w-b").await);

    assert_eq!(b.holder("run").await.unwrap(), None, "never claimed");
    let mut first = a.claim("run").await.unwrap();
    assert_eq!(
        (first.epoch(), first.owner(), first.workflow_id()),
        (1, "w-a", "run")
    );
    let holder = b.holder("run").await.unwrap().expect("held");
    assert_eq!((holder.worker_id.as_str(), holder.epoch), ("w-a", 1));
    assert_eq!(holder.expires_at, first.expires_at());
    assert_eq!(first.duration(), LEASE);
    assert!(!first.is_expired());
    // The holder claiming again keeps its epoch (resume after claim shares the lease).
    assert_eq!(a.claim("run").await.unwrap().epoch(), 1);
    // Another worker cannot have it while it is held.
    assert_eq!(b.try_claim("run").await.unwrap(), None);
    let held = b.claim("run").await.unwrap_err().to_string();
    assert!(
        held.contains("leased to worker \"w-a\" (epoch 1)"),
        "{held}"
    );

    // A heartbeat keeps it past its first duration.
    let before = first.expires_at();
    for _ in 0..3 {
        tokio::time::sleep(LEASE / 2).await;
        a.renew(&mut first).await.unwrap();
    }
    assert!(first.expires_at() > before);
    assert_eq!(
        b.try_claim("run").await.unwrap(),
        None,
        "renewed: still held"
    );

    // Expired (by the database's clock): renewing fails, another worker takes it over.
    let_the_lease_expire().await;
    assert!(first.is_expired());
    assert_eq!(b.holder("run").await.unwrap(), None, "expired");
    let err = a.renew(&mut first).await.unwrap_err();
    assert!(err.to_string().contains("fenced"), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    let second = b.claim("run").await.unwrap();
    assert_eq!((second.epoch(), second.owner()), (2, "w-b"));
    assert_eq!(a.try_claim("run").await.unwrap(), None);
    // The old lease cannot be renewed now: it names the takeover.
    assert_fenced(&a.renew(&mut first).await.unwrap_err(), 1, 2);

    // A release hands it over at once; releasing twice changes nothing.
    assert!(b.release(&second).await.unwrap());
    assert!(!b.release(&second).await.unwrap());
    assert_eq!(lease_row(&url, "run").await, Some((None, 2)));
    assert_eq!(a.holder("run").await.unwrap(), None, "released");
    let third = a.claim("run").await.unwrap();
    assert_eq!((third.epoch(), third.owner()), (3, "w-a"));
    // Released, then claimed again by the same worker: still a new epoch.
    assert!(a.release(&third).await.unwrap());
    assert_eq!(a.claim("run").await.unwrap().epoch(), 4);
    // Leases are per run.
    assert_eq!(b.claim("other").await.unwrap().epoch(), 1);
}

#[tokio::test]
async fn one_heartbeat_renews_every_lease_still_held_and_names_the_lost_ones() {
    let Some(url) = pg_support::fresh_database("lease_heartbeat").await else {
        return;
    };
    let (a, b) = (worker(&url, "w-a").await, worker(&url, "w-b").await);
    let mut held = Vec::new();
    for id in ["r1", "r2", "r3", "r4"] {
        held.push(a.claim(id).await.unwrap());
    }
    assert!(a.release(&held[1]).await.unwrap());
    assert!(a.release(&held[2]).await.unwrap());
    assert_eq!(b.claim("r3").await.unwrap().epoch(), 2, "taken over");
    let before: Vec<_> = held.iter().map(Lease::expires_at).collect();
    tokio::time::sleep(LEASE / 3).await;
    assert_eq!(a.renew_all(&mut held).await.unwrap(), ["r2", "r3"]);
    assert!(held[0].expires_at() > before[0] && held[3].expires_at() > before[3]);
    assert_eq!(
        held[1].expires_at(),
        before[1],
        "a lost lease is left as it was"
    );
    // Heartbeats keep the held ones past their first duration; the lost stay lost.
    for _ in 0..3 {
        tokio::time::sleep(LEASE / 2).await;
        assert_eq!(a.renew_all(&mut held).await.unwrap(), ["r2", "r3"]);
    }
    assert_eq!(b.try_claim("r1").await.unwrap(), None);
    assert_eq!(b.try_claim("r4").await.unwrap(), None);
    assert_eq!(b.claim("r2").await.unwrap().epoch(), 2);
    assert!(a.renew_all(&mut []).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_racing_for_a_run_exactly_one_wins() {
    let Some(url) = pg_support::fresh_database("lease_race").await else {
        return;
    };
    const WORKERS: usize = 6;
    let mut stores = Vec::new();
    for w in 0..WORKERS {
        stores.push(worker(&url, &format!("w-{w}")).await);
    }
    for round in 0..10 {
        let id = format!("run-{round}");
        let barrier = Arc::new(Barrier::new(WORKERS));
        let claims = stores.iter().map(|store| {
            let (store, id, barrier) = (store.clone(), id.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store.try_claim(&id).await
            })
        });
        let won: Vec<Lease> = futures_util::future::join_all(claims)
            .await
            .into_iter()
            .filter_map(|joined| joined.unwrap().unwrap())
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        assert_eq!(won[0].epoch(), 1);
        assert_eq!(
            lease_row(&url, &id).await,
            Some((Some(won[0].owner().to_owned()), 1))
        );
    }
    // Racing for an expired run: again exactly one, at the next epoch.
    let_the_lease_expire().await;
    let barrier = Arc::new(Barrier::new(WORKERS));
    let claims = stores.iter().map(|store| {
        let (store, barrier) = (store.clone(), Arc::clone(&barrier));
        tokio::spawn(async move {
            barrier.wait().await;
            store.try_claim("run-0").await
        })
    });
    let won: Vec<Lease> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .filter_map(|joined| joined.unwrap().unwrap())
        .collect();
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(won[0].epoch(), 2);
}

#[tokio::test]
async fn a_stale_writer_is_refused_after_a_takeover_and_no_sequence_is_written_twice() {
    let Some(url) = pg_support::fresh_database("lease_fence").await else {
        return;
    };
    let (a, b) = (worker(&url, "w-a").await, worker(&url, "w-b").await);

    // Worker a's run writer claims the run and writes through its lease.
    let stale = a.writer("order").await.unwrap();
    stale.append(CheckpointRow::new(0, "A", "a")).await.unwrap();
    // Appends extend the lease: a run that keeps writing keeps its run.
    for sequence in 1..=3 {
        tokio::time::sleep(LEASE / 2).await;
        stale
            .append(CheckpointRow::new(sequence, "A", "a"))
            .await
            .unwrap();
    }
    assert_eq!(b.try_claim("order").await.unwrap(), None);

    // Worker a stalls past its lease; b takes the run over.
    let_the_lease_expire().await;
    let lease = b.claim("order").await.unwrap();
    assert_eq!(lease.epoch(), 2);
    let fresh = b.writer_for(&lease);

    let err = stale
        .append(CheckpointRow::new(4, "B", "b"))
        .await
        .unwrap_err();
    assert_fenced(&err, 1, 2);
    assert!(err.to_string().contains("\"order\""), "{err}");
    assert!(err.to_string().contains("\"w-b\""), "{err}");
    assert_fenced(&stale.clear().await.unwrap_err(), 1, 2);

    // The new owner writes on; a sequence already written is a conflict, not a fence.
    fresh.append(CheckpointRow::new(4, "B", "b")).await.unwrap();
    let dup = fresh
        .append(CheckpointRow::new(3, "A", "a"))
        .await
        .unwrap_err();
    assert!(dup.to_string().contains("conflict"), "{dup}");
    assert!(!dup.to_string().contains("fenced"), "{dup}");
    // The stale writer's refused rows are not there; each row names its epoch, and the
    // old epoch's rows all come before the new one's.
    assert_eq!(
        rows_with_epochs(&url, "order").await,
        [
            (0, Some(1)),
            (1, Some(1)),
            (2, Some(1)),
            (3, Some(1)),
            (4, Some(2))
        ]
    );
    // Still refused later, and after the new owner's run ended.
    assert_fenced(
        &stale
            .append(CheckpointRow::new(5, "C", "c"))
            .await
            .unwrap_err(),
        1,
        2,
    );
    // A pending signal of the run is cleared with it; a fenced clear removes nothing.
    let signal = cano::signal::Signal::new("approval", "s-1", &true).unwrap();
    assert!(b.send_signal("order", signal).await.unwrap());
    assert!(stale.clear().await.is_err());
    assert_eq!(
        b.pending_signals("order", "approval").await.unwrap().len(),
        1
    );
    assert_eq!(b.load_run("order").await.unwrap().len(), 5);
    fresh.clear().await.unwrap();
    assert!(b.load_run("order").await.unwrap().is_empty());
    assert!(
        b.pending_signals("order", "approval")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(lease_row(&url, "order").await, Some((None, 2)), "released");
    assert!(stale.append(CheckpointRow::new(0, "A", "a")).await.is_err());
    // A run started again under the id continues the epochs: no earlier writer passes.
    let again = a.writer("order").await.unwrap();
    again.append(CheckpointRow::new(0, "A", "a")).await.unwrap();
    assert_eq!(rows_with_epochs(&url, "order").await, [(0, Some(3))]);
    assert_fenced(
        &fresh
            .append(CheckpointRow::new(1, "B", "b"))
            .await
            .unwrap_err(),
        2,
        3,
    );
}

/// A writer that keeps appending with pauses around its lease length, against a worker
/// trying to take the run over every few milliseconds: whichever way each append and
/// claim interleave, the old epoch's rows all come before the new one's, the new owner
/// continues right after the last row it finds, and the old writer is fenced for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_racing_a_takeover_never_interleave_epochs() {
    let Some(url) = pg_support::fresh_database("lease_interleave").await else {
        return;
    };
    let short = Duration::from_millis(60);
    let a = pg_support::worker(&url, "w-a", short).await;
    let b = pg_support::worker(&url, "w-b", short).await;
    for round in 0..4u64 {
        let id = format!("run-{round}");
        let old = a.writer(&id).await.unwrap();
        let thief = {
            let (b, id) = (b.clone(), id.clone());
            tokio::spawn(async move {
                loop {
                    if let Some(lease) = b.try_claim(&id).await.unwrap() {
                        return lease;
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        };
        // Pauses from well inside the lease to past it, so that the takeover lands
        // between, before and during appends.
        let mut sequence = 0;
        let refused = loop {
            match old.append(CheckpointRow::new(sequence, "A", "a")).await {
                Ok(()) => sequence += 1,
                Err(e) => break e,
            }
            let pause = 20 + (sequence * 7 + round * 13) % 60;
            tokio::time::sleep(Duration::from_millis(pause)).await;
        };
        let lease = thief.await.unwrap();
        // Refused either as expired (just before the takeover) or as taken over.
        assert!(refused.to_string().contains("fenced"), "{refused}");
        let next = b.load_run(&id).await.unwrap().len() as u64;
        assert_eq!(next, sequence, "every acknowledged row is there, no other");
        let new = b.writer_for(&lease);
        new.append(CheckpointRow::new(next, "B", "b"))
            .await
            .unwrap();
        new.append(CheckpointRow::new(next + 1, "B", "b"))
            .await
            .unwrap();
        assert!(
            old.append(CheckpointRow::new(next + 2, "A", "a"))
                .await
                .is_err()
        );
        let epochs: Vec<i64> = rows_with_epochs(&url, &id)
            .await
            .into_iter()
            .map(|(_, epoch)| epoch.unwrap())
            .collect();
        let expected: Vec<i64> = (0..next).map(|_| 1).chain([2, 2]).collect();
        assert_eq!(epochs, expected, "round {round}");
    }
}

#[tokio::test]
async fn a_writer_whose_lease_lapsed_is_refused_even_before_a_takeover() {
    let Some(url) = pg_support::fresh_database("lease_lapse").await else {
        return;
    };
    let a = worker(&url, "w-a").await;
    let writer = a.writer("order").await.unwrap();
    writer
        .append(CheckpointRow::new(0, "A", "a"))
        .await
        .unwrap();
    let_the_lease_expire().await;
    let err = writer
        .append(CheckpointRow::new(1, "B", "b"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("fenced") && err.contains("expired"), "{err}");
    assert!(err.contains("Claim the run again"), "{err}");
    assert!(writer.clear().await.is_err());
    assert_eq!(rows_with_epochs(&url, "order").await, [(0, Some(1))]);
    // Claiming again gives a new epoch; the lapsed writer stays refused.
    let lease = a.claim("order").await.unwrap();
    assert_eq!(lease.epoch(), 2);
    assert_fenced(
        &writer
            .append(CheckpointRow::new(1, "B", "b"))
            .await
            .unwrap_err(),
        1,
        2,
    );
    a.writer_for(&lease)
        .append(CheckpointRow::new(1, "B", "b"))
        .await
        .unwrap();
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Charge,
    Ship,
    Done,
}

/// The first time it runs, waits until told to go on (so a takeover can happen
/// meanwhile).
struct Charge {
    runs: Arc<AtomicU32>,
    started: Arc<Notify>,
    proceed: Arc<Notify>,
}

#[task(state = S)]
impl Charge {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            self.started.notify_one();
            self.proceed.notified().await;
        }
        Ok(TaskResult::Single(S::Ship))
    }
}

struct Ship(Arc<AtomicU32>);

#[task(state = S)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(TaskResult::Single(S::Done))
    }
}

#[derive(Clone, Default)]
struct Counters {
    charged: Arc<AtomicU32>,
    shipped: Arc<AtomicU32>,
    started: Arc<Notify>,
    proceed: Arc<Notify>,
}

fn workflow(store: &PostgresCheckpointStore, id: &str, c: &Counters) -> Workflow<S> {
    Workflow::bare()
        .register(
            S::Charge,
            Charge {
                runs: Arc::clone(&c.charged),
                started: Arc::clone(&c.started),
                proceed: Arc::clone(&c.proceed),
            },
        )
        .register(S::Ship, Ship(Arc::clone(&c.shipped)))
        .add_exit_state(S::Done)
        .with_run_writers(Arc::new(store.clone()))
        .with_workflow_id(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_taken_over_mid_task_is_fenced_and_its_new_owner_finishes_it_once() {
    let Some(url) = pg_support::fresh_database("lease_workflow").await else {
        return;
    };
    let (a, b) = (worker(&url, "w-a").await, worker(&url, "w-b").await);
    let counters = Counters::default();

    let wf = workflow(&a, "order-1", &counters);
    let run = tokio::spawn(async move { wf.orchestrate(S::Charge).await });
    counters.started.notified().await;
    // Worker a is stuck in Charge past its lease; worker b takes the run over.
    let_the_lease_expire().await;
    let lease = b.claim("order-1").await.unwrap();
    assert_eq!(lease.epoch(), 2);
    counters.proceed.notify_one();

    let err = run.await.unwrap().unwrap_err();
    assert_fenced(&err, 1, 2);
    assert_eq!(
        counters.shipped.load(Ordering::SeqCst),
        0,
        "no task after the takeover"
    );
    assert_eq!(rows_with_epochs(&url, "order-1").await, [(0, Some(1))]);

    // The new owner resumes it under the lease it claimed, to the end, once.
    let resumed = workflow(&b, "order-1", &counters)
        .resume_from("order-1")
        .await;
    assert_eq!(resumed, Ok(S::Done));
    assert_eq!(counters.shipped.load(Ordering::SeqCst), 1);
    assert_eq!(
        counters.charged.load(Ordering::SeqCst),
        2,
        "Charge re-ran on resume"
    );
    assert!(b.load_run("order-1").await.unwrap().is_empty(), "cleared");
    assert_eq!(
        lease_row(&url, "order-1").await,
        Some((None, 2)),
        "released"
    );
    // Nothing is left for the stale worker to resume.
    let err = workflow(&a, "order-1", &counters)
        .resume_from("order-1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no checkpoint rows"), "{err}");
    assert_eq!(lease_row(&url, "order-1").await, Some((None, 2)));
    assert_eq!(counters.shipped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_run_another_worker_holds_does_not_start() {
    let Some(url) = pg_support::fresh_database("lease_held").await else {
        return;
    };
    let (a, b) = (worker(&url, "w-a").await, worker(&url, "w-b").await);
    let _held = a.claim("order-2").await.unwrap();
    let counters = Counters::default();
    counters.proceed.notify_one();
    let err = workflow(&b, "order-2", &counters)
        .orchestrate(S::Charge)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(
        err.to_string().contains("leased to worker \"w-a\""),
        "{err}"
    );
    assert_eq!(counters.charged.load(Ordering::SeqCst), 0, "nothing ran");
    assert!(rows_with_epochs(&url, "order-2").await.is_empty());
    // The holder itself runs it (its writer shares the lease) and hands it back.
    assert_eq!(
        workflow(&a, "order-2", &counters)
            .orchestrate(S::Charge)
            .await,
        Ok(S::Done)
    );
    assert_eq!(lease_row(&url, "order-2").await, Some((None, 1)));
}
