//! [`PostgresCheckpointStore`]: checkpoint logs in PostgreSQL (feature `postgres`), and
//! [`TempPostgres`], a throwaway PostgreSQL server for tests and demos.
//!
//! The store keeps every run's log in the table `cano_checkpoints`, one row per
//! [`CheckpointRow`], keyed by `(workflow_id, sequence)`, and pending
//! [signals](crate::signal) in `cano_signals`. It creates and upgrades these tables itself
//! when it connects; the [`schema`] module documents them and how versions are handled. A
//! row's [`RowKind`] is stored as its serde name (`'StateEntry'`, `'Signal'`, …), the same
//! names the kinds have in every serialized row.
//!
//! A signal sent through any store on the database wakes the run waiting for it at once,
//! in whichever process it waits: sends are announced with `NOTIFY` on the channel
//! `cano_signals`, and each store with waiting runs listens on one connection. The
//! notification is a hint; waiting runs also look once a second, so none is missed.
//!
//! Each `append` is one `INSERT` committed before it returns, at the server's durability
//! settings (with the defaults, `fsync` and `synchronous_commit` on, it is on disk). Calls
//! share a small pool of connections, so concurrent runs do not wait for each other's
//! round trips.
//!
//! # Leases and fencing
//!
//! Workers on many machines can share runs through one database: a worker
//! [claims](PostgresCheckpointStore::claim) a run and holds a [`Lease`] on it for a while
//! ([renewed](PostgresCheckpointStore::renew) by a heartbeat, handed back with
//! [`release`](PostgresCheckpointStore::release)); a run whose lease expired can be
//! claimed by any other worker, and each change of holder raises the run's **epoch**.
//! Leases are kept in `cano_runs` and timed by the database's clock, never a worker's.
//!
//! With [`Workflow::with_run_writers`](crate::Workflow::with_run_writers), a run claims
//! its lease when it starts (or uses the one its worker claimed before resuming it) and
//! every append and the final clear are checked against the lease's epoch in the same
//! statement: once another worker took the run over, a write of the old worker is refused
//! with a `fenced` [`CanoError::CheckpointStore`], its run fails, and no further task of it
//! starts. The [`lease`] module is the reference for these rules.
//!
//! ```no_run
//! use cano::prelude::*;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { A, Done }
//! # fn wf() -> Workflow<S> { Workflow::bare() }
//! # #[tokio::main] async fn main() -> Result<(), CanoError> {
//! let store = PostgresCheckpointStore::connect("postgresql://cano:secret@localhost/app")
//!     .await?
//!     .with_worker_id("worker-a")
//!     .with_lease_duration(Duration::from_secs(10));
//! // Fenced by the lease this run claims for worker-a.
//! wf().with_run_writers(Arc::new(store.clone()))
//!     .with_workflow_id("order-7")
//!     .orchestrate(S::A)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The tables live in the first schema of the connection's `search_path` (normally
//! `public`); to keep them elsewhere, set it in the connection string, e.g.
//! `postgresql://app@db/app?options=-csearch_path%3Dcano` (the schema must exist).

mod error;
mod group;
pub mod lease;
pub(crate) use error::worth_retrying;
pub(crate) use group::{Batcher, WriteBatch, answered_each, gather, retried};
mod pool;
pub mod schema;
mod signals;
/// The channel a signal's send notifies (the run id as payload).
pub(crate) use self::signals::CHANNEL as SIGNAL_CHANNEL;
mod temp;

pub use self::lease::{Lease, LeaseHolder};
pub use self::schema::SCHEMA_VERSION;
pub use self::temp::TempPostgres;
/// The PostgreSQL driver the store uses, for naming its types (`NoTls`, the
/// `tls::MakeTlsConnect` a TLS connector implements) at the version cano was built with.
pub use tokio_postgres;

use self::error::{Doing, pg_error};
use self::pool::{Connector, Pool};
use super::{CheckpointRow, CheckpointStore, ListRuns, RowKind, RunSummary, StoreFuture};
use crate::error::CanoError;
use crate::signal::Wakers;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Config, NoTls, Socket, Statement, Transaction};

/// Connections a store opens at most, unless set with
/// [`PostgresStoreBuilder::with_max_connections`].
const DEFAULT_MAX_CONNECTIONS: usize = 8;

/// How long opening a connection may take, unless the connection string sets
/// `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A durable [`CheckpointStore`] in a PostgreSQL database, with [`ListRuns`] and
/// [`SignalStore`](crate::signal::SignalStore).
///
/// ```no_run
/// use cano::prelude::*;
/// use std::sync::Arc;
///
/// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { A, Done }
/// # fn wf() -> Workflow<S> { Workflow::bare() }
/// # #[tokio::main] async fn main() -> Result<(), CanoError> {
/// let store = PostgresCheckpointStore::connect("postgresql://cano:secret@localhost/app").await?;
/// let workflow = wf()
///     .with_checkpoint_store(Arc::new(store))
///     .with_workflow_id("nightly-2026-11-26");
/// # Ok(()) }
/// ```
///
/// `Clone` shares one pool of connections. Processes on other machines may use the same
/// database at once: every call is one statement or one transaction, and a duplicate
/// `(workflow_id, sequence)` is refused by the table's primary key whichever process
/// wrote first. The plain [`CheckpointStore`] methods do not fence writers; to keep a
/// worker that lost a run from writing to it, attach the store with
/// [`Workflow::with_run_writers`](crate::Workflow::with_run_writers): see
/// [leases and fencing](self#leases-and-fencing).
///
/// Every method's future may be dropped: a statement already sent is then committed or
/// not, as the server decides, and its connection goes back to the pool.
#[derive(Clone)]
pub struct PostgresCheckpointStore {
    inner: Arc<Inner>,
    /// The worker this store claims runs for ([`lease`]).
    worker: Arc<str>,
    lease_duration: Duration,
    /// Set by [`with_group_commit`](Self::with_group_commit).
    group: Option<Arc<group::GroupCommit>>,
}

struct Inner {
    pool: Pool,
    /// Wake-ups for runs of this process that wait for signals.
    wakers: Wakers,
    /// Which of them wait now (woken on notifications, and every poll interval).
    waiting: signals::Waiting,
    /// How often waiting runs look for signals whatever the notifications say.
    signal_poll_interval: Duration,
}

impl std::fmt::Debug for PostgresCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCheckpointStore")
            .field("worker_id", &self.worker)
            .field("lease_duration", &self.lease_duration)
            .field("group_commit", &self.group.is_some())
            .finish_non_exhaustive()
    }
}

/// Options for connecting a [`PostgresCheckpointStore`]: the TLS connector and the pool
/// size. Made by [`PostgresCheckpointStore::builder`].
///
/// ```no_run
/// use cano::recovery::postgres::PostgresCheckpointStore;
///
/// # async fn f() -> Result<(), cano::CanoError> {
/// let store = PostgresCheckpointStore::builder("host=db.internal user=cano dbname=app")
///     .with_max_connections(16)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `connect` is awaited"]
pub struct PostgresStoreBuilder<T = NoTls> {
    config: String,
    tls: T,
    max_connections: usize,
    signal_poll_interval: Duration,
    migrations: bool,
}

impl<T> std::fmt::Debug for PostgresStoreBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password.
        f.debug_struct("PostgresStoreBuilder")
            .field("max_connections", &self.max_connections)
            .field("signal_poll_interval", &self.signal_poll_interval)
            .field("migrations", &self.migrations)
            .finish_non_exhaustive()
    }
}

impl PostgresCheckpointStore {
    /// Connect without TLS to the database at `url` (a `postgresql://` URL or a
    /// `key=value` connection string, as libpq takes), creating or upgrading the cano
    /// tables, with a pool of up to 8 connections.
    ///
    /// Use [`builder`](Self::builder) for TLS or another pool size.
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`], saying what to check, when the string does not
    /// parse, the server cannot be reached, the credentials are refused, the database
    /// does not exist, the tables cannot be created, or the database's cano schema is
    /// newer than this library's ([`SCHEMA_VERSION`]).
    ///
    /// Dropping the future abandons the connection; a migration in flight is rolled back.
    pub async fn connect(url: &str) -> Result<Self, CanoError> {
        Self::builder(url).connect().await
    }

    /// Options for connecting to `url`: without TLS and with up to 8 connections unless
    /// changed.
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder<NoTls> {
        PostgresStoreBuilder {
            config: url.into(),
            tls: NoTls,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            signal_poll_interval: signals::POLL_INTERVAL,
            migrations: true,
        }
    }
}

impl<T> PostgresStoreBuilder<T> {
    /// Connect through `tls`, a TLS connector (for example `postgres-native-tls`'s
    /// `MakeTlsConnector` or `tokio-postgres-rustls`'s `MakeRustlsConnect`). The
    /// connection string's `sslmode` says whether TLS is required.
    pub fn with_tls<U>(self, tls: U) -> PostgresStoreBuilder<U>
    where
        U: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    {
        PostgresStoreBuilder {
            config: self.config,
            tls,
            max_connections: self.max_connections,
            signal_poll_interval: self.signal_poll_interval,
            migrations: self.migrations,
        }
    }

    /// Open at most `n` connections at once (at least 1; default 8). Calls beyond that
    /// wait for a free connection.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How often a run waiting for a [signal](crate::signal) looks for one even when no
    /// notification said so (default: every second). Sends are announced with
    /// `NOTIFY`, so waiting runs usually wake at once; this bounds the delay when a
    /// notification is lost (the listening connection dropped, a server restart).
    /// Longer: fewer queries from many waiting runs. At least 10 ms.
    pub fn with_signal_poll_interval(mut self, every: Duration) -> Self {
        self.signal_poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Whether [`connect`](Self::connect) creates or upgrades the cano tables (default:
    /// `true`). With `false` it changes no table: it checks that the database has them, at
    /// this library's [`SCHEMA_VERSION`], and refuses it otherwise. For tools that look at
    /// a database they must not alter (the `cano` command-line tool).
    pub fn with_migrations(mut self, migrations: bool) -> Self {
        self.migrations = migrations;
        self
    }
}

impl<T> PostgresStoreBuilder<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + Sync + 'static,
    T::TlsConnect: Send + Sync,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    /// Connect, create or upgrade the cano tables, and make the store.
    ///
    /// # Errors
    /// See [`PostgresCheckpointStore::connect`].
    ///
    /// Dropping the future abandons the connection; a migration in flight is rolled back.
    pub async fn connect(self) -> Result<PostgresCheckpointStore, CanoError> {
        let mut config: Config = self.config.parse().map_err(|e| {
            CanoError::checkpoint_store(format!(
                "postgres: the connection string does not parse: {e}; write it as \
                 `postgresql://user:password@host:port/database` or \
                 `host=… port=… user=… password=… dbname=…`"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        let tls = self.tls;
        let connector: Connector = Box::new(move || {
            let (config, tls) = (config.clone(), tls.clone());
            Box::pin(async move {
                tokio::runtime::Handle::try_current().map_err(|_| {
                    CanoError::checkpoint_store(
                        "postgres: the store needs a tokio runtime (its connections run on \
                         it); call it from inside one",
                    )
                })?;
                let (client, mut connection) = config
                    .connect(tls)
                    .await
                    .map_err(|e| pg_error(&e, Doing::Connect))?;
                let messages: pool::Messages = Box::pin(futures_util::stream::poll_fn(move |cx| {
                    connection.poll_message(cx)
                }));
                Ok((client, messages))
            })
        });
        let mut first = pool::open(&connector).await?;
        if self.migrations {
            schema::migrate(&mut first).await?;
        } else {
            schema::check(&first).await?;
        }
        let first = pool::prepare(first).await?;
        Ok(PostgresCheckpointStore {
            inner: Arc::new(Inner {
                pool: Pool::new(connector, self.max_connections, first),
                wakers: Wakers::default(),
                waiting: signals::Waiting::default(),
                signal_poll_interval: self.signal_poll_interval,
            }),
            worker: lease::default_worker_id(),
            lease_duration: lease::DEFAULT_LEASE,
            group: None,
        })
    }
}

impl PostgresCheckpointStore {
    /// A connection of the store's pool, for the cluster runtime's own statements
    /// ([`crate::cluster`]); it goes back to the pool when dropped.
    pub(crate) async fn connection(&self) -> Result<pool::Pooled<'_>, CanoError> {
        self.inner.pool.get().await
    }

    /// A connection of its own listening on `channel` (an SQL identifier), for the
    /// cluster runtime's wake-ups: the client (the connection stays open while it lives)
    /// and the connection's messages, which must be polled (notifications arrive there).
    /// `None` when it could not be opened within a few seconds.
    pub(crate) async fn listener(
        &self,
        channel: &str,
    ) -> Option<(tokio_postgres::Client, pool::Messages)> {
        signals::listen_on(&self.inner, channel).await
    }
}

/// How a [`RowKind`] is stored: its serde name. The serde derive on `RowKind` is the one
/// mapping; these two only move it in and out of text.
fn kind_name(kind: RowKind) -> Result<String, CanoError> {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        other => Err(CanoError::checkpoint_store(format!(
            "postgres: row kind {kind:?} has no name ({other:?})"
        ))),
    }
}

fn kind_from_name(workflow_id: &str, sequence: u64, name: &str) -> Result<RowKind, CanoError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        CanoError::checkpoint_store(format!(
            "postgres: row {sequence} of run {workflow_id:?} has kind {name:?}, which this \
             version of cano does not know; it was written by a newer cano or edited by hand"
        ))
    })
}

/// A sequence as the table's `bigint`.
fn sequence_param(workflow_id: &str, sequence: u64) -> Result<i64, CanoError> {
    i64::try_from(sequence).map_err(|_| {
        CanoError::checkpoint_store(format!(
            "postgres: sequence {sequence} of run {workflow_id:?} is above the largest \
             the table holds ({})",
            i64::MAX
        ))
    })
}

/// PostgreSQL's `text` cannot hold the NUL character: refuse it with a clear error (before
/// the server does with an obscure one).
fn no_nul(workflow_id: &str, sequence: u64, texts: &[&str]) -> Result<(), CanoError> {
    if texts.iter().any(|t| t.contains('\0')) {
        return Err(CanoError::checkpoint_store(format!(
            "postgres: row {sequence} of run {workflow_id:?} has a NUL character in its id, \
             state or task name, which PostgreSQL text cannot hold; remove it"
        )));
    }
    Ok(())
}

/// One `cano_checkpoints` row (selected as `sequence, kind, state, task_id, output_blob`
/// from column `offset` on) back as a [`CheckpointRow`].
fn decode_row(
    workflow_id: &str,
    row: &tokio_postgres::Row,
    offset: usize,
    doing: Doing,
) -> Result<CheckpointRow, CanoError> {
    let failed = |e: tokio_postgres::Error| pg_error(&e, doing);
    let sequence: i64 = row.try_get(offset).map_err(failed)?;
    let sequence = u64::try_from(sequence).map_err(|_| {
        CanoError::checkpoint_store(format!(
            "postgres: run {workflow_id:?} has a row with negative sequence {sequence}"
        ))
    })?;
    let kind: &str = row.try_get(offset + 1).map_err(failed)?;
    Ok(CheckpointRow {
        sequence,
        kind: kind_from_name(workflow_id, sequence, kind)?,
        state: row.try_get(offset + 2).map_err(failed)?,
        task_id: row.try_get(offset + 3).map_err(failed)?,
        output_blob: row.try_get(offset + 4).map_err(failed)?,
    })
}

/// A row's `created_at` (column `at`) in milliseconds since the Unix epoch.
fn created_ms(row: &tokio_postgres::Row, at: usize) -> Result<u64, CanoError> {
    let at: std::time::SystemTime = row.try_get(at).map_err(|e| pg_error(&e, Doing::List))?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

/// The refusal of a second row at `sequence` in `workflow_id`'s log.
fn conflict(workflow_id: &str, sequence: u64) -> CanoError {
    CanoError::checkpoint_store(format!(
        "checkpoint conflict: workflow {workflow_id:?} already has a row at sequence {sequence}; \
         resume the existing run or clear it before starting a new one"
    ))
}

/// Delete `workflow_id`'s log and its pending signals in `tx` (the prepared `clear_rows`
/// and `clear_signals`).
async fn delete_log(
    tx: &Transaction<'_>,
    clear_rows: &Statement,
    clear_signals: &Statement,
    workflow_id: &str,
    failed: &(impl Fn(tokio_postgres::Error) -> CanoError + Sync),
) -> Result<(), CanoError> {
    // Rows first: a signal being sent holds a lock on the run's first row, so this
    // waits for it, and the next statement (a fresh snapshot) deletes that signal too.
    tx.execute(clear_rows, &[&workflow_id])
        .await
        .map_err(failed)?;
    tx.execute(clear_signals, &[&workflow_id])
        .await
        .map_err(failed)?;
    Ok(())
}

impl PostgresCheckpointStore {
    async fn append_row(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let sequence = sequence_param(workflow_id, row.sequence)?;
        no_nul(
            workflow_id,
            row.sequence,
            &[workflow_id, &row.state, &row.task_id],
        )?;
        let kind = kind_name(row.kind)?;
        let conn = self.inner.pool.get().await?;
        let inserted = conn
            .client
            .execute(
                &conn.append,
                &[
                    &workflow_id,
                    &sequence,
                    &kind,
                    &row.state,
                    &row.task_id,
                    &row.output_blob,
                ],
            )
            .await
            .map_err(conn.on_error(Doing::Append))?;
        if inserted == 0 {
            return Err(conflict(workflow_id, row.sequence));
        }
        Ok(())
    }

    async fn load_rows(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        let conn = self.inner.pool.get().await?;
        let rows = conn
            .client
            .query(&conn.load, &[&workflow_id])
            .await
            .map_err(conn.on_error(Doing::Load))?;
        rows.iter()
            .map(|row| decode_row(workflow_id, row, 0, Doing::Load))
            .collect()
    }

    async fn clear_run(&self, workflow_id: &str) -> Result<(), CanoError> {
        let mut conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::Clear);
        let (clear_rows, clear_signals) = (conn.clear_rows.clone(), conn.clear_signals.clone());
        let tx = conn.client.transaction().await.map_err(&failed)?;
        delete_log(&tx, &clear_rows, &clear_signals, workflow_id, &failed).await?;
        tx.commit().await.map_err(&failed)
    }

    /// The run `workflow_id`'s summary, as [`list`](Self::list) makes it.
    async fn summary(&self, workflow_id: &str) -> Result<Option<RunSummary>, CanoError> {
        let conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::List);
        // One statement: one snapshot.
        let rows = conn
            .client
            .query(
                "SELECT c.sequence, c.kind, c.state, c.task_id, c.output_blob, c.created_at, \
                        (SELECT f.error FROM cano_run_failures f \
                         JOIN cano_runs r ON r.workflow_id = f.workflow_id AND r.epoch = f.epoch \
                         WHERE f.workflow_id = $1) \
                 FROM cano_checkpoints c WHERE c.workflow_id = $1 ORDER BY c.sequence",
                &[&workflow_id],
            )
            .await
            .map_err(&failed)?;
        drop(conn);
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mark: Option<String> = first.try_get(6).map_err(&failed)?;
        let mut log = Vec::with_capacity(rows.len());
        let (mut started, mut updated) = (u64::MAX, 0);
        for row in &rows {
            log.push(decode_row(workflow_id, row, 0, Doing::List)?);
            let at = created_ms(row, 5)?;
            started = started.min(at);
            updated = updated.max(at);
        }
        let mut summary = super::log::summarize(workflow_id, &log);
        summary.started_ms = Some(started);
        summary.updated_ms = Some(updated);
        super::mark_failed(&mut summary, mark);
        Ok(Some(summary))
    }

    /// Every run's summary, with its times (the first and last rows' `created_at`) and
    /// its failure mark (if the run is still at the epoch it was marked under), read in
    /// one snapshot.
    async fn list(&self) -> Result<Vec<RunSummary>, CanoError> {
        let mut conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::List);
        let tx = conn
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(&failed)?;
        let rows = tx
            .query(
                "SELECT workflow_id, sequence, kind, state, task_id, output_blob, created_at \
                 FROM cano_checkpoints ORDER BY workflow_id, sequence",
                &[],
            )
            .await
            .map_err(&failed)?;
        let marks = tx
            .query(
                "SELECT f.workflow_id, f.error FROM cano_run_failures f \
                 JOIN cano_runs r ON r.workflow_id = f.workflow_id AND r.epoch = f.epoch",
                &[],
            )
            .await
            .map_err(&failed)?;
        tx.commit().await.map_err(&failed)?;
        drop(conn);
        let mut marks: std::collections::HashMap<String, String> = marks
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| pg_error(&e, Doing::List))?;
        let mut runs = Vec::new();
        let mut finish = |run: &str, log: &[CheckpointRow], (started, updated): (u64, u64)| {
            let mut summary = super::log::summarize(run, log);
            summary.started_ms = Some(started);
            summary.updated_ms = Some(updated);
            super::mark_failed(&mut summary, marks.remove(run));
            runs.push(summary);
        };
        let mut current: Option<(String, Vec<CheckpointRow>, (u64, u64))> = None;
        for row in &rows {
            let id: &str = row.try_get(0).map_err(|e| pg_error(&e, Doing::List))?;
            let decoded = decode_row(id, row, 1, Doing::List)?;
            let at = created_ms(row, 6)?;
            match &mut current {
                Some((run, log, (started, updated))) if run == id => {
                    log.push(decoded);
                    *started = (*started).min(at);
                    *updated = (*updated).max(at);
                }
                _ => {
                    if let Some((run, log, times)) = current.take() {
                        finish(&run, &log, times);
                    }
                    current = Some((id.to_owned(), vec![decoded], (at, at)));
                }
            }
        }
        if let Some((run, log, times)) = current {
            finish(&run, &log, times);
        }
        Ok(runs)
    }
}

impl CheckpointStore for PostgresCheckpointStore {
    fn append<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
        row: CheckpointRow,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(self.append_row(workflow_id, row))
    }

    fn load_run<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<CheckpointRow>, CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(self.load_rows(workflow_id))
    }

    fn clear<'life0, 'life1, 'async_trait>(
        &'life0 self,
        workflow_id: &'life1 str,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(self.clear_run(workflow_id))
    }
}

impl ListRuns for PostgresCheckpointStore {
    fn list_runs(&self) -> StoreFuture<'_, Vec<RunSummary>> {
        Box::pin(self.list())
    }

    fn run_summary<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Option<RunSummary>> {
        Box::pin(self.summary(workflow_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_stable_name_that_reads_back() {
        let kinds = [
            (RowKind::StateEntry, "StateEntry"),
            (RowKind::CompensationCompletion, "CompensationCompletion"),
            (RowKind::StepCursor, "StepCursor"),
            (RowKind::RollbackStarted, "RollbackStarted"),
            (RowKind::Compensated, "Compensated"),
            (RowKind::Timer, "Timer"),
            (RowKind::SignalWait, "SignalWait"),
            (RowKind::Signal, "Signal"),
            (RowKind::SplitMember, "SplitMember"),
        ];
        for (kind, name) in kinds {
            assert_eq!(kind_name(kind).unwrap(), name);
            assert_eq!(kind_from_name("r", 0, name).unwrap(), kind);
        }
        let err = kind_from_name("r", 3, "Teleport").unwrap_err();
        assert!(err.to_string().contains("\"Teleport\""), "{err}");
    }

    #[test]
    fn nul_characters_are_refused_with_a_clear_error() {
        assert!(no_nul("r", 0, &["a", "b"]).is_ok());
        let err = no_nul("r", 4, &["a", "b\0c"]).unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn sequences_above_bigint_are_refused() {
        assert_eq!(sequence_param("r", 7).unwrap(), 7);
        assert!(sequence_param("r", u64::MAX).is_err());
    }

    #[test]
    fn a_bad_connection_string_says_how_to_write_one() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(PostgresCheckpointStore::connect("host=x port=notaport"))
            .unwrap_err();
        assert!(err.to_string().contains("does not parse"), "{err}");
    }

    #[test]
    fn the_store_is_send_sync_and_usable_as_dyn() {
        fn check<T: Send + Sync + 'static>() {}
        check::<PostgresCheckpointStore>();
        check::<PostgresStoreBuilder>();
        check::<Lease>();
        fn as_dyn(
            s: Arc<PostgresCheckpointStore>,
        ) -> (
            Arc<dyn CheckpointStore>,
            Arc<dyn ListRuns>,
            Arc<dyn crate::signal::SignalStore>,
        ) {
            (s.clone(), s.clone(), s)
        }
        fn as_run_writers(s: Arc<PostgresCheckpointStore>) -> Arc<dyn crate::recovery::RunWriters> {
            s
        }
        let _ = as_run_writers;
        fn claim_is_send(s: &PostgresCheckpointStore) -> impl Send + '_ {
            s.claim("run")
        }
        let _ = claim_is_send;
        let _ = as_dyn;
    }
}
