//! `PostgresCheckpointStore` beyond the shared conformance suite: the schema (created once
//! when processes start together, a newer one refused), clear errors for bad connections,
//! and real workflows that crash and resume — forward and through a saga rollback — and
//! wait for a signal sent by another process's store.
//!
//! On a throwaway server (`pg_support`); without PostgreSQL the tests print why they skip,
//! and fail when `CANO_REQUIRE_POSTGRES=1`.
#![cfg(feature = "postgres")]

mod pg_support;

use cano::ListRuns;
use cano::prelude::*;
use cano::recovery::postgres::{SCHEMA_VERSION, TempPostgres};
use cano::signal::{Signal, SignalStore};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn connect(url: &str) -> PostgresCheckpointStore {
    PostgresCheckpointStore::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A plain client, to look at the tables behind the store's back.
async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

async fn versions(url: &str) -> Vec<i32> {
    client(url)
        .await
        .query(
            "SELECT version FROM cano_schema_version ORDER BY version",
            &[],
        )
        .await
        .expect("read versions")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_together_create_the_schema_once() {
    let Some(url) = pg_support::fresh_database("schema_race").await else {
        return;
    };
    // Separate stores connecting at the same moment, as separate processes would.
    let stores = futures_util::future::join_all((0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PostgresCheckpointStore::connect(&url).await })
    }))
    .await;
    let stores: Vec<PostgresCheckpointStore> = stores
        .into_iter()
        .map(|joined| joined.unwrap().unwrap_or_else(|e| panic!("connect: {e}")))
        .collect();
    assert_eq!(
        versions(&url).await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    // And they all work on the one set of tables.
    for (i, store) in stores.iter().enumerate() {
        store
            .append("run", CheckpointRow::new(i as u64, "S", "t"))
            .await
            .unwrap();
    }
    assert_eq!(stores[0].load_run("run").await.unwrap().len(), stores.len());
    // Connecting again changes nothing.
    drop(connect(&url).await);
    assert_eq!(
        versions(&url).await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connector_is_passed_through_the_builder() {
    let Some(url) = pg_support::fresh_database("tls").await else {
        return;
    };
    // The throwaway server speaks no TLS: a connector that never negotiates it.
    let store = PostgresCheckpointStore::builder(format!("{url}?sslmode=disable"))
        .with_tls(cano::recovery::postgres::tokio_postgres::NoTls)
        .with_max_connections(2)
        .connect()
        .await
        .unwrap();
    store
        .append("run", CheckpointRow::new(0, "S", "t"))
        .await
        .unwrap();
    // Requiring TLS from a server without it is a clear error.
    let err = PostgresCheckpointStore::connect(&format!("{url}?sslmode=require"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot connect"), "{text}");
    assert!(text.contains("sslmode"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_live_in_the_schema_the_search_path_names() {
    let Some(url) = pg_support::fresh_database("search_path").await else {
        return;
    };
    client(&url)
        .await
        .batch_execute("CREATE SCHEMA workflows")
        .await
        .unwrap();
    let store = connect(&format!("{url}?options=-csearch_path%3Dworkflows")).await;
    store
        .append("run", CheckpointRow::new(0, "S", "t"))
        .await
        .unwrap();
    let schemas: Vec<String> = client(&url)
        .await
        .query(
            "SELECT DISTINCT table_schema::text FROM information_schema.tables \
             WHERE table_name LIKE 'cano\\_%'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(schemas, ["workflows"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_library_is_refused_and_left_alone() {
    let Some(url) = pg_support::fresh_database("newer_schema").await else {
        return;
    };
    let store = connect(&url).await;
    store
        .append("kept", CheckpointRow::new(0, "S", "t"))
        .await
        .unwrap();
    drop(store);
    let newer = SCHEMA_VERSION + 1;
    client(&url)
        .await
        .execute(
            "INSERT INTO cano_schema_version (version, library) VALUES ($1, 'cano 99')",
            &[&newer],
        )
        .await
        .unwrap();
    let err = PostgresCheckpointStore::connect(&url)
        .await
        .expect_err("a newer schema is refused");
    let text = err.to_string();
    assert!(matches!(err, CanoError::CheckpointStore(_)), "{err:?}");
    assert!(text.contains(&format!("version {newer}")), "{text}");
    assert!(
        text.contains(&format!("version {SCHEMA_VERSION}")),
        "{text}"
    );
    assert!(text.contains("Upgrade cano"), "{text}");
    // Nothing was changed.
    let rows: i64 = client(&url)
        .await
        .query_one("SELECT count(*) FROM cano_checkpoints", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_dropped_by_hand_is_reported_with_what_to_do() {
    let Some(url) = pg_support::fresh_database("dropped").await else {
        return;
    };
    drop(connect(&url).await);
    client(&url)
        .await
        .batch_execute("DROP TABLE cano_checkpoints")
        .await
        .unwrap();
    let err = PostgresCheckpointStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cano_checkpoints"), "{text}");
    assert!(text.contains("drop `cano_schema_version`"), "{text}");
    // Doing so brings the tables back.
    client(&url)
        .await
        .batch_execute("DROP TABLE cano_schema_version")
        .await
        .unwrap();
    let store = connect(&url).await;
    store
        .append("run", CheckpointRow::new(0, "S", "t"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_migrations_off_connect_checks_the_tables_and_changes_nothing() {
    let Some(url) = pg_support::fresh_database("no_migrations").await else {
        return;
    };
    let checked = || {
        PostgresCheckpointStore::builder(url.clone())
            .with_migrations(false)
            .connect()
    };
    let tables = || async {
        client(&url)
            .await
            .query(
                "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'cano%' \
                 ORDER BY tablename",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    // An empty database is refused, and stays empty.
    let text = checked().await.unwrap_err().to_string();
    assert!(text.contains("has no cano tables"), "{text}");
    assert!(tables().await.is_empty());
    // Once a program created them, the store works on them.
    drop(connect(&url).await);
    let store = checked().await.unwrap_or_else(|e| panic!("connect: {e}"));
    store
        .append("run", CheckpointRow::new(0, "S", "t"))
        .await
        .unwrap();
    assert_eq!(store.list_runs().await.unwrap().len(), 1);
    drop(store);
    // A missing table or an older schema is refused, not rebuilt or upgraded.
    let mut left = tables().await;
    left.retain(|t| t != "cano_signals");
    client(&url)
        .await
        .batch_execute("DROP TABLE cano_signals")
        .await
        .unwrap();
    let text = checked().await.unwrap_err().to_string();
    assert!(text.contains("incomplete or older"), "{text}");
    assert_eq!(tables().await, left);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_give_clear_errors() {
    let Some(server) = pg_support::server().await else {
        return;
    };
    // A wrong password.
    let url = format!(
        "postgresql://postgres:wrong@127.0.0.1:{}/postgres",
        server.port()
    );
    let err = PostgresCheckpointStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CanoError::CheckpointStore(_)), "{err:?}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(text.contains("check the user name and password"), "{text}");

    // A database that does not exist.
    let err = PostgresCheckpointStore::connect(&server.url_for("no_such_db"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("does not exist"), "{text}");
    assert!(text.contains("createdb"), "{text}");

    // Nobody listening.
    let port = {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgresql://postgres:x@127.0.0.1:{port}/postgres?connect_timeout=5");
    let err = PostgresCheckpointStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot connect"), "{text}");
    assert!(text.contains("is the server running"), "{text}");

    // Not a connection string.
    let err = PostgresCheckpointStore::connect("postgresql://host:notaport/db")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not parse"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_by_the_server_is_replaced() {
    let Some(server) = pg_support::server().await else {
        return;
    };
    let Some(url) = pg_support::fresh_database("killed").await else {
        return;
    };
    let store = PostgresCheckpointStore::builder(url.clone())
        .with_max_connections(1)
        .connect()
        .await
        .unwrap();
    store
        .append("run", CheckpointRow::new(0, "S", "t"))
        .await
        .unwrap();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let killed: i64 = client(&server.url())
        .await
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
            &[&database],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the store's one connection");
    // The next call may still meet the dead connection: it fails with an error saying so,
    // and the call after it runs on a new connection.
    let row = CheckpointRow::new(1, "S", "t");
    if let Err(e) = store.append("run", row.clone()).await {
        let text = e.to_string();
        eprintln!("the first call after the kill: {text}");
        assert!(text.contains("retry"), "{text}");
        store.append("run", row).await.unwrap();
    }
    assert_eq!(store.load_run("run").await.unwrap().len(), 2);
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Reserve,
    Charge,
    Ship,
    Done,
}

/// What each task did, across the "processes" of one test.
#[derive(Clone, Default)]
struct Books {
    forward: Arc<Mutex<Vec<&'static str>>>,
    undone: Arc<Mutex<Vec<(&'static str, u32)>>>,
}

struct Step {
    name: &'static str,
    output: u32,
    next: S,
    books: Books,
}

#[saga::task(state = S)]
impl Step {
    type Output = u32;
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        self.name.into()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        self.books.forward.lock().unwrap().push(self.name);
        Ok((TaskResult::Single(self.next.clone()), self.output))
    }
    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        self.books.undone.lock().unwrap().push((self.name, output));
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Shipping {
    /// Never returns (the process dies here).
    Hangs,
    Fails,
    Works,
}

struct Ship {
    how: Shipping,
    books: Books,
}

#[task(state = S)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        "ship".into()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.books.forward.lock().unwrap().push("ship");
        match self.how {
            Shipping::Hangs => std::future::pending().await,
            Shipping::Fails => Err(CanoError::task_execution("carrier down")),
            Shipping::Works => Ok(TaskResult::Single(S::Done)),
        }
    }
}

fn checkout(books: &Books, how: Shipping, store: PostgresCheckpointStore, id: &str) -> Workflow<S> {
    let step = |name, output, next| Step {
        name,
        output,
        next,
        books: books.clone(),
    };
    Workflow::bare()
        .register_with_compensation(S::Reserve, step("reserve", 7, S::Charge))
        .register_with_compensation(S::Charge, step("charge", 9, S::Ship))
        .register(
            S::Ship,
            Ship {
                how,
                books: books.clone(),
            },
        )
        .add_exit_state(S::Done)
        .with_checkpoint_store(Arc::new(store))
        .with_workflow_id(id)
}

/// Start the checkout in a "process" of its own (a task with its own store) and kill it
/// once it is shipping: its log then ends at the `Ship` entry.
async fn crash_while_shipping(url: &str, books: &Books, id: &str) {
    let store = connect(url).await;
    let wf = checkout(books, Shipping::Hangs, store.clone(), id);
    let run = tokio::spawn(async move { wf.orchestrate(S::Reserve).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = store.load_run(id).await.unwrap();
        if rows.last().is_some_and(|r| r.state == "Ship") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached Ship: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_resumes_from_postgres_and_finishes() {
    let Some(url) = pg_support::fresh_database("resume").await else {
        return;
    };
    let books = Books::default();
    crash_while_shipping(&url, &books, "order-1").await;

    // A new process: a new store (its own connections) over the same database.
    let store = connect(&url).await;
    assert_eq!(store.list_runs().await.unwrap().len(), 1);
    let wf = checkout(&books, Shipping::Works, store.clone(), "order-1");
    assert_eq!(wf.resume_from("order-1").await.unwrap(), S::Done);

    assert_eq!(
        *books.forward.lock().unwrap(),
        ["reserve", "charge", "ship", "ship"],
        "finished steps are not run again"
    );
    assert!(books.undone.lock().unwrap().is_empty());
    assert!(
        store.load_run("order-1").await.unwrap().is_empty(),
        "a finished run clears its log"
    );
    assert!(store.list_runs().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_resumed_after_a_crash_compensates_each_step_once() {
    let Some(url) = pg_support::fresh_database("saga").await else {
        return;
    };
    let books = Books::default();
    crash_while_shipping(&url, &books, "order-2").await;

    let store = connect(&url).await;
    let wf = checkout(&books, Shipping::Fails, store.clone(), "order-2");
    let err = wf.resume_from("order-2").await.unwrap_err();
    assert!(err.to_string().contains("carrier down"), "{err}");
    assert_eq!(
        *books.undone.lock().unwrap(),
        [("charge", 9), ("reserve", 7)],
        "most recent first, with the outputs the first process recorded"
    );
    assert!(
        store.load_run("order-2").await.unwrap().is_empty(),
        "a clean rollback clears the log"
    );
}

#[derive(serde::Deserialize)]
struct Approval {
    approved: bool,
}

struct AwaitApproval;

#[task::signal(state = S)]
impl AwaitApproval {
    type Payload = Approval;
    fn signal(&self) -> Cow<'static, str> {
        "approval".into()
    }
    async fn on_signal(&self, _res: &Resources, a: Approval) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(if a.approved {
            S::Done
        } else {
            S::Reserve
        }))
    }
}

/// A run of `order-3` waiting for approval on a store polling every `poll`; returns the
/// store and the run.
async fn waiting_for_approval(
    url: &str,
    poll: Duration,
) -> (
    Arc<PostgresCheckpointStore>,
    tokio::task::JoinHandle<Result<S, CanoError>>,
) {
    let store = Arc::new(
        PostgresCheckpointStore::builder(url)
            .with_signal_poll_interval(poll)
            .connect()
            .await
            .unwrap(),
    );
    let wf = Workflow::bare()
        .register_signal(S::Ship, AwaitApproval)
        .add_exit_state(S::Done)
        .with_signal_store(Arc::clone(&store))
        .with_workflow_id("order-3");
    let run = tokio::spawn(async move { wf.orchestrate(S::Ship).await });
    while store.load_run("order-3").await.unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (store, run)
}

/// Wait until a connection of the database at `url` listens for signal notifications.
async fn until_listening(url: &str) {
    let database = url.rsplit('/').next().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // A new connection each time: the server may be restarting.
        if let Ok((admin, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            let listening: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND query = 'LISTEN cano_signals'",
                    &[&database],
                )
                .await
                .map_or(0, |row| row.get(0));
            if listening > 0 {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "nobody listens");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Approve `order-3` through a store of its own, as another process would, and check that
/// `run` finishes within seconds (long before a once-a-minute poll).
async fn approve_from_another_process(
    url: &str,
    signal_id: &str,
    run: tokio::task::JoinHandle<Result<S, CanoError>>,
) {
    let sender = connect(url).await;
    let approval = Signal::from_json("approval", signal_id, r#"{"approved": true}"#).unwrap();
    assert!(sender.send_signal("order-3", approval).await.unwrap());
    let done = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("woken by the notification, long before the next poll")
        .unwrap();
    assert_eq!(done.unwrap(), S::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_by_another_process_wakes_the_run_through_notify() {
    let Some(url) = pg_support::fresh_database("signal_notify").await else {
        return;
    };
    // Polling once a minute: only the notification can wake the run in time.
    let (waiting_side, run) = waiting_for_approval(&url, Duration::from_secs(60)).await;
    until_listening(&url).await;

    approve_from_another_process(&url, "click-1", run).await;
    assert!(waiting_side.load_run("order-3").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_whose_notification_is_lost_is_found_by_polling() {
    let Some(url) = pg_support::fresh_database("signal_poll").await else {
        return;
    };
    let (_store, run) = waiting_for_approval(&url, Duration::from_millis(200)).await;
    // Stored behind the store's back: no notification at all.
    client(&url)
        .await
        .execute(
            "INSERT INTO cano_signals (workflow_id, signal_id, name, payload) \
             VALUES ('order-3', 'raw-1', 'approval', $1)",
            &[&br#"{"approved": true}"#.to_vec()],
        )
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("found by the poll")
        .unwrap();
    assert_eq!(done.unwrap(), S::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_crash_the_store_and_its_listener_come_back() {
    if pg_support::server().await.is_none() {
        return;
    }
    // A server of its own: restarting the shared one would cut the other tests off.
    let pg = TempPostgres::start().await.unwrap();
    let url = pg.create_database("restart").await.unwrap();
    let (store, run) = waiting_for_approval(&url, Duration::from_secs(60)).await;
    until_listening(&url).await;

    pg.restart().await.unwrap();

    // The store's connections were cut: a call may fail (saying to retry), then one works.
    let mut rows = None;
    for _ in 0..10 {
        match store.load_run("order-3").await {
            Ok(found) => {
                rows = Some(found);
                break;
            }
            Err(e) => assert!(e.to_string().contains("retry"), "{e}"),
        }
    }
    assert_eq!(
        rows.expect("the store works again").len(),
        2,
        "the log survived"
    );
    // The listener comes back by itself, and a signal sent now wakes the run at once
    // (the run polls only once a minute).
    until_listening(&url).await;
    approve_from_another_process(&url, "after-restart", run).await;
    drop(store);
    pg.stop().await.unwrap();
}
