//! The PostgreSQL side of the CLI tests: the library tests' throwaway server (one per
//! test binary, a database per test; see `cano/tests/pg_support`), from synchronous tests.
//!
//! No PostgreSQL installed: the tests print why they skip, unless
//! `CANO_REQUIRE_POSTGRES=1` (as CI sets it), which makes them fail instead.

use super::pg_support;
use cano::recovery::postgres::{PostgresCheckpointStore, TempPostgres, tokio_postgres};
use std::sync::Arc;

/// The shared server, started on first use; `None` when PostgreSQL is not installed and
/// not required.
pub fn server() -> Option<&'static TempPostgres> {
    super::runtime().block_on(pg_support::server())
}

/// The URL of a new, empty database on the shared server (named after `tag`); `None` when
/// the PostgreSQL tests skip.
pub fn fresh_database(tag: &str) -> Option<String> {
    super::runtime().block_on(pg_support::fresh_database(tag))
}

/// A new database holding the four runs of [`super::write_runs`]; `None` when the
/// PostgreSQL tests skip.
pub fn fixture(tag: &str) -> Option<String> {
    let url = fresh_database(tag)?;
    super::runtime().block_on(async {
        super::write_runs(&Arc::new(connect(&url).await)).await;
    });
    Some(url)
}

/// The store at `url`, as a program using cano opens it (creating the tables).
pub async fn connect(url: &str) -> PostgresCheckpointStore {
    PostgresCheckpointStore::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Run `sql` on the database at `url`, behind the store's back; the rows' first column.
pub fn query(url: &str, sql: &str) -> Vec<String> {
    super::runtime().block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .simple_query(sql)
            .await
            .expect("query")
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or("NULL").to_string())
                }
                _ => None,
            })
            .collect()
    })
}

/// The password in `url` (what the CLI must never print).
pub fn password(url: &str) -> &str {
    let credentials = &url[url.find("://").expect("a URL") + 3..url.rfind('@').expect("a user")];
    credentials.split_once(':').expect("a password").1
}
