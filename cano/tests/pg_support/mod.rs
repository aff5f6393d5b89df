//! One throwaway PostgreSQL server per test binary, shared by its tests, with a database
//! of its own for each test.
//!
//! No PostgreSQL installed: the tests that need one print why they skip, unless
//! `CANO_REQUIRE_POSTGRES=1` (as CI sets it), which makes them fail instead.

use cano::recovery::postgres::TempPostgres;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::OnceCell;

/// Never dropped: the server's watcher stops it and removes its directory when the test
/// binary exits.
static SERVER: OnceCell<Option<TempPostgres>> = OnceCell::const_new();
static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// The shared server, started on first use; `None` when PostgreSQL is not installed and
/// not required.
pub async fn server() -> Option<&'static TempPostgres> {
    SERVER
        .get_or_init(|| async {
            if let Err(e) = TempPostgres::find_binaries() {
                if std::env::var("CANO_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!("CANO_REQUIRE_POSTGRES=1, but: {e}");
                }
                eprintln!("SKIPPED: the PostgreSQL tests need PostgreSQL: {e}");
                return None;
            }
            let started = std::time::Instant::now();
            let server = TempPostgres::start()
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL is installed but did not start: {e}"));
            eprintln!(
                "throwaway PostgreSQL on port {} started in {:?}",
                server.port(),
                started.elapsed()
            );
            Some(server)
        })
        .await
        .as_ref()
}

/// The URL of a new, empty database on the shared server (named after `tag`); `None` when
/// the PostgreSQL tests skip.
pub async fn fresh_database(tag: &str) -> Option<String> {
    let server = server().await?;
    let n = NEXT_DATABASE.fetch_add(1, Ordering::Relaxed);
    let name = format!("{tag}_{n}");
    Some(
        server
            .create_database(&name)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}")),
    )
}

/// A worker's store on `url`: a pool of its own (as another process would have), the
/// worker id `id` and leases of `lease`.
#[allow(dead_code)] // not every test binary has workers
pub async fn worker(
    url: &str,
    id: &str,
    lease: std::time::Duration,
) -> cano::PostgresCheckpointStore {
    cano::PostgresCheckpointStore::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
        .with_worker_id(id)
        .with_lease_duration(lease)
}
