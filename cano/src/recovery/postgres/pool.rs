//! A small connection pool: up to `max` open connections, handed out one caller at a
//! time, so that concurrent runs do not queue behind one connection.
//!
//! Connections are opened on demand (the first one when the store connects), kept open
//! while healthy, and dropped when the server closed them; the next caller then opens a
//! new one. The TLS connector's type is erased here, so the store is not generic over it.

use super::error::{Doing, pg_error};
use crate::error::CanoError;
use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{AsyncMessage, Client, Statement};

/// What the server sends a connection unasked (notices, notifications). Polling it also
/// drives the connection's I/O: a connection does nothing while nobody polls it.
pub(crate) type Messages =
    Pin<Box<dyn Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Send>>;

/// How the pool opens a connection (the configuration and TLS connector, erased): the
/// client, and the connection's messages, which the caller must keep polling.
pub(super) type Connector = Box<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<(Client, Messages), CanoError>> + Send>>
        + Send
        + Sync,
>;

/// Open a connection whose I/O runs on a task of its own (it ends when the client is
/// dropped or the server goes away; the client then reports it closed).
pub(super) async fn open(connector: &Connector) -> Result<Client, CanoError> {
    let (client, mut messages) = connector().await?;
    tokio::spawn(async move { while let Some(Ok(_)) = messages.next().await {} });
    Ok(client)
}

/// An open connection with the statements the hot paths use, prepared once.
pub(crate) struct Conn {
    pub(crate) client: Client,
    /// `INSERT` of one checkpoint row (nothing on a duplicate key).
    pub(super) append: Statement,
    /// A run's rows, by ascending sequence.
    pub(super) load: Statement,
    /// Delete a run's rows, then (in the same transaction) its pending signals.
    pub(super) clear_rows: Statement,
    pub(super) clear_signals: Statement,
    /// The fenced append of a leased run's row (see [`super::lease`]).
    pub(super) fenced_append: Statement,
    /// The fenced clear of a leased run (`cano_fenced_clear`, see [`super::schema`]).
    pub(super) fenced_clear: Statement,
    /// End a lease if it is still the run's.
    pub(super) release: Statement,
    /// Set when a call on it failed in a way that says the connection is gone; it is then
    /// dropped instead of going back to the pool (the client may not know it yet).
    broken: Arc<AtomicBool>,
    /// Further statements, prepared on first use (see [`Conn::statement`]), by the address
    /// and length of their text.
    statements: parking_lot::Mutex<std::collections::HashMap<(usize, usize), Statement>>,
}

impl Conn {
    /// `sql` prepared on this connection: on its first use only, so that later runs of
    /// it take one round trip instead of two (a statement given as text is prepared each
    /// time). For the constant statements of the cluster's hot paths.
    ///
    /// # Errors
    /// The server's answer when `sql` does not prepare.
    pub(crate) async fn statement(
        &self,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        let key = (sql.as_ptr() as usize, sql.len());
        if let Some(prepared) = self.statements.lock().get(&key) {
            return Ok(prepared.clone());
        }
        let prepared = self.client.prepare(sql).await?;
        self.statements.lock().insert(key, prepared.clone());
        Ok(prepared)
    }
}

impl Conn {
    /// Turns a driver error of a call on this connection into the store's error, and
    /// marks the connection broken when the error says it is gone.
    pub(super) fn on_error(
        &self,
        doing: Doing,
    ) -> impl Fn(tokio_postgres::Error) -> CanoError + Send + Sync + 'static {
        let broken = Arc::clone(&self.broken);
        move |e| {
            let gone = e.is_closed()
                || match e.as_db_error() {
                    // Not the server's answer: I/O or protocol trouble.
                    None => true,
                    Some(db) => db.code().code().starts_with("57P"),
                };
            if gone {
                broken.store(true, Ordering::Release);
            }
            pg_error(&e, doing)
        }
    }

    /// [`on_error`](Self::on_error) for the statements of the cluster runtime
    /// ([`crate::cluster`]).
    pub(crate) fn on_cluster_error(
        &self,
    ) -> impl Fn(tokio_postgres::Error) -> CanoError + Send + Sync + 'static {
        self.on_error(Doing::Cluster)
    }
}

/// The pool. Dropping it closes the idle connections.
pub(super) struct Pool {
    connector: Connector,
    idle: parking_lot::Mutex<Vec<Conn>>,
    permits: Semaphore,
}

impl Pool {
    /// A pool of at most `max` connections (at least one), holding `first`.
    pub(super) fn new(connector: Connector, max: usize, first: Conn) -> Self {
        Self {
            connector,
            idle: parking_lot::Mutex::new(vec![first]),
            permits: Semaphore::new(max.max(1)),
        }
    }

    /// How the pool opens its connections (for a connection of another use).
    pub(super) fn connector(&self) -> &Connector {
        &self.connector
    }

    /// A connection for one caller: an idle one, or a new one when none is idle and the
    /// pool has room; else wait for one to come back.
    ///
    /// Dropping the future gives up the wait; nothing is opened or lost.
    pub(super) async fn get(&self) -> Result<Pooled<'_>, CanoError> {
        let permit =
            self.permits.acquire().await.map_err(|_| {
                CanoError::checkpoint_store("postgres: the connection pool is closed")
            })?;
        let reused = {
            let mut idle = self.idle.lock();
            let mut found = None;
            while let Some(conn) = idle.pop() {
                if !conn.client.is_closed() {
                    found = Some(conn);
                    break;
                }
            }
            found
        };
        let conn = match reused {
            Some(conn) => conn,
            None => prepare(open(&self.connector).await?).await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }
}

/// Prepare the statements every run uses on a new connection (sent together: one round
/// trip).
pub(super) async fn prepare(client: Client) -> Result<Conn, CanoError> {
    let (append, load, clear_rows, clear_signals, fenced_append, fenced_clear, release) = tokio::try_join!(
        // A run's next row takes its failure mark away (see `schema`, version 5).
        client.prepare(
            "WITH unmark AS (DELETE FROM cano_run_failures WHERE workflow_id = $1) \
             INSERT INTO cano_checkpoints (workflow_id, sequence, kind, state, task_id, output_blob) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        ),
        client.prepare(
            "SELECT sequence, kind, state, task_id, output_blob FROM cano_checkpoints \
             WHERE workflow_id = $1 ORDER BY sequence",
        ),
        client.prepare(
            "WITH unmark AS (DELETE FROM cano_run_failures WHERE workflow_id = $1) \
             DELETE FROM cano_checkpoints WHERE workflow_id = $1",
        ),
        client.prepare("DELETE FROM cano_signals WHERE workflow_id = $1"),
        client.prepare(super::lease::FENCED_APPEND),
        client.prepare("SELECT cano_fenced_clear($1, $2)"),
        client.prepare(super::lease::RELEASE),
    )
    .map_err(|e| pg_error(&e, Doing::Prepare))?;
    Ok(Conn {
        client,
        append,
        load,
        clear_rows,
        clear_signals,
        fenced_append,
        fenced_clear,
        release,
        broken: Arc::default(),
        statements: parking_lot::Mutex::default(),
    })
}

/// A connection lent to one caller; it goes back to the pool when dropped, unless the
/// server closed it.
pub(crate) struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Deref for Pooled<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        // Only `drop` takes the connection out.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        // A query future dropped mid-way leaves the connection usable: the driver discards
        // the rest of its answer, and an unfinished transaction is rolled back. A
        // connection the server ended is dropped (a new one is opened on demand).
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
            && !conn.broken.load(Ordering::Acquire)
        {
            self.pool.idle.lock().push(conn);
        }
    }
}
