//! [`RedbCheckpointStore`]: checkpoint logs in an embedded [redb](https://docs.rs/redb) file.
//!
//! On-disk layout (compatible with files written by cano 0.12.0): one table
//! `"cano_checkpoints"` keyed by `(workflow_id, sequence)`, whose values are the postcard
//! encoding of `{ state, task_id, output_blob, kind }`. Beside it, `"cano_run_meta"` keyed
//! by `workflow_id` says when each run's first and last rows were written and whether it
//! [failed](super::RunStatus::Failed): values are a format byte (1) and the postcard
//! encoding of `{ started_ms: Option<u64>, updated_ms: Option<u64>, failed:
//! Option<String> }`. It is written in the transactions that write the rows, and a run's
//! entry goes with its rows. A file of an earlier cano has no entries (the table is created
//! when the file is opened): its runs list with no times. Pending
//! [signals](crate::signal) are in a third table (see `signals`).
//!
//! Each `append` returns only once its row is durable, but a write does not cost a redb
//! commit: it is appended to a write-ahead log beside the database (`<file>-wal`, see
//! [`super::wal`]) and synced, and the log is folded into the table in one redb
//! transaction every few thousand writes, when the store is dropped, and when the file is
//! opened again after a crash. Reads see the table and the log together.
//!
//! Writes that arrive while a sync is in flight are logged together in the next one (group
//! commit), so many concurrent runs share disk syncs. No async task is ever blocked behind
//! disk work:
//!
//! * on a multi-thread tokio runtime, one waiting writer at a time writes the queue on
//!   its own thread inside `tokio::task::block_in_place` (the runtime hands that
//!   worker's other tasks to another thread for the duration), then passes the lead on;
//!   a single run thus writes with no thread hop at all;
//! * elsewhere (a current-thread runtime, no runtime), a dedicated writer thread writes.
//!
//! Reads run on tokio's blocking pool.

use super::wal::{self, Log, Mark, Pending, PendingRun, Record};
use super::{CheckpointRow, CheckpointStore, RowKind, RunWriter, RunWriters, StoreFuture};
use crate::error::CanoError;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

mod signals;

const TABLE: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
    TableDefinition::new("cano_checkpoints");

/// When each run was written, and its failure mark (see the module docs).
const META: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("cano_run_meta");

/// The first byte of every [`META`] value: the encoding that follows.
const META_FORMAT: u8 = 1;

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 1024;

/// The stored value: everything of a [`CheckpointRow`] but its sequence (the key holds it).
#[derive(Serialize, Deserialize)]
struct StoredRow {
    state: String,
    task_id: String,
    output_blob: Option<Vec<u8>>,
    kind: RowKind,
}

/// A [`META`] value: when a run's first and last rows were written (ms since the Unix
/// epoch; `None` when not known) and the error it failed with.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredMeta {
    started_ms: Option<u64>,
    updated_ms: Option<u64>,
    failed: Option<String>,
}

impl StoredMeta {
    fn encode(&self) -> Result<Vec<u8>, CanoError> {
        let bytes = vec![META_FORMAT];
        postcard::to_extend(self, bytes)
            .map_err(|e| CanoError::checkpoint_store(format!("encode a run's times: {e}")))
    }

    fn decode(workflow_id: &str, bytes: &[u8]) -> Result<Self, CanoError> {
        let decoded = match bytes.split_first() {
            Some((&META_FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
            _ => Err("unknown format; written by a newer cano?".to_owned()),
        };
        decoded.map_err(|e| {
            CanoError::checkpoint_store(format!("decode the times of run {workflow_id:?}: {e}"))
        })
    }

    /// The entry of a run after its logged writes `run`, given its entry in the table
    /// (`base`) and whether the table holds rows of it (`had_rows`, asked only when
    /// needed). `None`: the run has no rows after them, or nothing is known about it.
    fn merged(
        base: Option<Self>,
        run: &PendingRun,
        had_rows: impl FnOnce() -> Result<bool, CanoError>,
    ) -> Result<Option<Self>, CanoError> {
        let base = if run.cleared { None } else { base };
        let (started_ms, has_rows) = match base.as_ref().and_then(|b| b.started_ms) {
            Some(started_ms) => (Some(started_ms), true),
            None if run.cleared => (run.meta.started_ms, !run.rows.is_empty()),
            None => {
                // Rows in the table whose time is not known: written before the store
                // kept times.
                let earlier = had_rows()?;
                let started_ms = if earlier { None } else { run.meta.started_ms };
                (started_ms, earlier || !run.rows.is_empty())
            }
        };
        if !has_rows {
            return Ok(None);
        }
        let base = base.unwrap_or_default();
        let meta = Self {
            started_ms,
            updated_ms: run.meta.updated_ms.or(base.updated_ms),
            failed: match &run.meta.failed {
                Mark::Keep => base.failed,
                Mark::Set(error) => Some(error.clone()),
                Mark::Unset => None,
            },
        };
        Ok((meta != Self::default()).then_some(meta))
    }
}

/// The [`META`] entry of `workflow_id` in `table`, if any.
fn read_meta(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    workflow_id: &str,
) -> Result<Option<StoredMeta>, CanoError> {
    match table.get(workflow_id).map_err(redb_error)? {
        Some(value) => StoredMeta::decode(workflow_id, value.value()).map(Some),
        None => Ok(None),
    }
}

/// A durable [`CheckpointStore`] in one redb database file.
///
/// ```no_run
/// use cano::prelude::*;
/// use std::sync::Arc;
///
/// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { A, Done }
/// # fn wf() -> Workflow<S> { Workflow::bare() }
/// let store = Arc::new(RedbCheckpointStore::new("checkpoints.redb")?);
/// let workflow = wf()
///     .with_checkpoint_store(store)
///     .with_workflow_id("nightly-2026-11-26");
/// # Ok::<(), CanoError>(())
/// ```
///
/// `Clone` shares one open database. redb allows one open handle per file: opening the
/// same path again, in this or another process, fails until every clone is dropped.
///
/// # Files
///
/// Writes are made durable in a write-ahead log beside the database, `<path>-wal` (one
/// small write and one disk sync per batch of rows), and moved into the database's table
/// every few thousand writes and when the last clone is dropped, which also removes the
/// log. After a crash the newest rows are in the log until the file is opened again with
/// `new`, which replays it: keep the two files together, and open a crashed database with
/// cano before handing it to anything else. The table's layout is the one cano 0.12.0
/// writes, so files move between the two versions once closed cleanly.
#[derive(Clone)]
pub struct RedbCheckpointStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    path: PathBuf,
    requests: Mutex<Option<Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    leading: Mutex<Leading>,
    /// Signal wakers and which runs have pending signals.
    signals: signals::Signals,
}

/// What the writers and readers of one store share.
struct Shared {
    db: Database,
    journal: Mutex<Journal>,
}

/// The write-ahead log and what it holds that the table does not have yet. Writers log
/// under its lock; readers read the table under it, so a fold never shows them half.
struct Journal {
    log: Log,
    pending: Pending,
    /// Fold once this many writes are logged ([`wal::FOLD_WRITES`]; tests fold sooner).
    fold_writes: usize,
}

/// One write.
enum Op {
    Append {
        workflow_id: String,
        sequence: u64,
        value: Vec<u8>,
    },
    Clear {
        workflow_id: String,
    },
    /// The run's failure mark.
    Fail {
        workflow_id: String,
        error: String,
    },
}

/// A write for the writer thread, with where to send its result.
struct Request {
    op: Op,
    reply: oneshot::Sender<Result<(), CanoError>>,
}

/// A write waiting for the current leader (multi-thread runtimes; see [`Leading`]).
struct Waiting {
    op: Op,
    /// `None` for the leader's own write, whose result the leader keeps.
    reply: Option<oneshot::Sender<Handoff>>,
}

/// What a waiting writer is told.
enum Handoff {
    /// Its write was committed (or failed) by the leader.
    Done(Result<(), CanoError>),
    /// It is the leader now: commit the queue, its own write included.
    Lead,
}

/// The write queue of a store used from multi-thread runtimes.
///
/// The first writer to find no leader becomes the leader: it commits every queued write
/// in one transaction on its own thread (inside `tokio::task::block_in_place`, so the
/// runtime moves its other tasks to another thread), answers the others, and hands the
/// lead to the first writer that queued up meanwhile. A single run thus commits without
/// any thread hop, and concurrent runs share commits.
#[derive(Default)]
struct Leading {
    queue: std::collections::VecDeque<Waiting>,
    leading: bool,
}

/// Create the checkpoint and run tables if the database does not have them yet.
fn ensure_table(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(TABLE)?;
    txn.open_table(META)?;
    txn.commit()?;
    Ok(())
}

/// Create a new, initialised database file at `path` so that a crash at any moment
/// leaves either no file or a complete one: the database is built under a temporary
/// name in the same directory and then linked into place (never over an existing file).
/// `Ok(false)` when another process created the file first (its file is kept).
fn create_atomically(path: &Path) -> Result<bool, String> {
    let (dir, tmp) = staging_paths(path);
    let built = (|| -> Result<bool, String> {
        let db = Database::create(&tmp).map_err(|e| e.to_string())?;
        ensure_table(&db).map_err(|e| e.to_string())?;
        drop(db);
        let created = match std::fs::hard_link(&tmp, path) {
            Ok(()) => true,
            // Someone else created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(format!("I/O error: {e}")),
        };
        // Make the new directory entry durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(created)
    })();
    let _ = std::fs::remove_file(&tmp);
    built
}

/// The directory of `path` (`.` for a bare file name) and a fresh temporary name in it,
/// where [`create_atomically`] builds the file: the same directory, so that the final
/// link never crosses file systems.
fn staging_paths(path: &Path) -> (PathBuf, PathBuf) {
    let dir = wal::parent_dir(path).to_path_buf();
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoints.redb".to_string());
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{file_name}.init-{}-{nonce}", std::process::id()));
    (dir, tmp)
}

/// What to check when redb cannot open a file.
fn open_hint(e: &redb::DatabaseError) -> &'static str {
    use redb::{DatabaseError, StorageError};
    match e {
        DatabaseError::DatabaseAlreadyOpen => {
            "it is already open; redb allows one handle per file, so drop the other store or stop the other process first"
        }
        DatabaseError::UpgradeRequired(_) => "it was written in an older redb file format",
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::NotFound =>
        {
            "its directory does not exist"
        }
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            "permission denied"
        }
        DatabaseError::Storage(StorageError::Io(_) | StorageError::Corrupted(_)) => {
            "the file is not a redb checkpoint database, or it is damaged; nothing was changed"
        }
        _ => "the file could not be opened as a checkpoint database",
    }
}

/// A panic while a lock of the store was held (inside redb or the log) left its state
/// unknown.
fn poisoned() -> CanoError {
    CanoError::checkpoint_store("redb: write queue poisoned; reopen the store")
}

fn redb_error(e: impl std::fmt::Display) -> CanoError {
    CanoError::checkpoint_store(format!("redb: {e}"))
}

fn log_error(path: &Path, e: &dyn std::fmt::Display, what: &str) -> CanoError {
    CanoError::checkpoint_store(format!("checkpoint log {}: {what}: {e}", path.display()))
}

/// Open the log at `log_path` after a crash or a clean close: replay what it holds into
/// the table (one durable transaction), then start an empty log.
fn recover(db: &Database, log_path: &Path) -> Result<Journal, CanoError> {
    let mut pending = Pending::default();
    match std::fs::read(log_path) {
        Ok(bytes) => {
            let records = wal::decode(&bytes).map_err(|e| {
                log_error(
                    log_path,
                    &e,
                    "not a checkpoint log of this version of cano, or damaged; nothing was \
                     changed. To open the database without it (losing the writes it holds), \
                     move the log away",
                )
            })?;
            for record in &records {
                pending.replay(record);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(log_error(log_path, &e, "cannot read it")),
    }
    if !pending.runs.is_empty() {
        fold(db, &mut pending)?;
    }
    let log = Log::create(log_path).map_err(|e| log_error(log_path, &e, "cannot create it"))?;
    Ok(Journal {
        log,
        pending,
        fold_writes: wal::FOLD_WRITES,
    })
}

/// Apply the net effect of the logged writes to the table in one durable transaction, and
/// start over. On failure nothing changes (the log still holds every write).
fn fold(db: &Database, pending: &mut Pending) -> Result<(), CanoError> {
    let txn = db.begin_write().map_err(redb_error)?;
    {
        let mut table = txn.open_table(TABLE).map_err(redb_error)?;
        let mut meta = txn.open_table(META).map_err(redb_error)?;
        for (id, run) in &pending.runs {
            let id = id.as_str();
            // A run written and cleared since the last fold has nothing in the tables.
            let known = !(run.cleared && run.stored == Some(false));
            let entry = if known || !run.rows.is_empty() {
                let base = read_meta(&meta, id)?;
                let had_rows = || match run.stored {
                    Some(stored) => Ok(stored),
                    None => Ok(
                        redb::ReadableTable::range(&table, (id, u64::MIN)..=(id, u64::MAX))
                            .map_err(redb_error)?
                            .next()
                            .transpose()
                            .map_err(redb_error)?
                            .is_some(),
                    ),
                };
                Some((StoredMeta::merged(base.clone(), run, had_rows)?, base))
            } else {
                None
            };
            if run.cleared && known {
                table
                    .retain_in((id, u64::MIN)..=(id, u64::MAX), |_, _| false)
                    .map_err(redb_error)?;
            }
            for (sequence, value) in &run.rows {
                table
                    .insert((id, *sequence), value.as_slice())
                    .map_err(redb_error)?;
            }
            match entry {
                Some((Some(new), base)) if base.as_ref() != Some(&new) => {
                    meta.insert(id, new.encode()?.as_slice())
                        .map_err(redb_error)?;
                }
                Some((None, Some(_))) => {
                    meta.remove(id).map_err(redb_error)?;
                }
                _ => {}
            }
        }
    }
    txn.commit().map_err(redb_error)?;
    *pending = Pending::default();
    Ok(())
}

impl Journal {
    /// Fold the log into the table and empty it.
    fn fold(&mut self, db: &Database) -> Result<(), CanoError> {
        fold(db, &mut self.pending)?;
        self.log.reset();
        Ok(())
    }

    /// Whether a row of `workflow_id` at `sequence` exists: logged, or in the table and
    /// not cleared since.
    fn has_row(
        &mut self,
        db: &Database,
        workflow_id: &str,
        sequence: u64,
    ) -> Result<bool, CanoError> {
        let known = match self.pending.runs.get(workflow_id) {
            Some(run) if run.rows.contains_key(&sequence) => return Ok(true),
            Some(run) if run.cleared || run.stored == Some(false) => return Ok(false),
            Some(run) => run.stored,
            None => None,
        };
        let txn = db.begin_read().map_err(redb_error)?;
        let table = txn.open_table(TABLE).map_err(redb_error)?;
        if known.is_none() {
            // First time this id is written since the last fold: one look at the table
            // spares the next writes of a new id theirs.
            let any = table
                .range((workflow_id, u64::MIN)..=(workflow_id, u64::MAX))
                .map_err(redb_error)?
                .next()
                .transpose()
                .map_err(redb_error)?
                .is_some();
            self.pending.set_stored(workflow_id, any);
            if !any {
                return Ok(false);
            }
        }
        Ok(table
            .get((workflow_id, sequence))
            .map_err(redb_error)?
            .is_some())
    }
}

/// A stored value back as a row.
fn decode_row(workflow_id: &str, sequence: u64, value: &[u8]) -> Result<CheckpointRow, CanoError> {
    let stored: StoredRow = postcard::from_bytes(value).map_err(|e| {
        CanoError::checkpoint_store(format!(
            "decode checkpoint row: {e} (workflow {workflow_id:?}, sequence {sequence})"
        ))
    })?;
    Ok(CheckpointRow {
        sequence,
        state: stored.state,
        task_id: stored.task_id,
        output_blob: stored.output_blob,
        kind: stored.kind,
    })
}

impl RedbCheckpointStore {
    /// Open the database at `path`, creating it (and the checkpoint table) if needed.
    ///
    /// If a crash left writes in the store's log (`<path>-wal`), they are moved into the
    /// database first.
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] naming the file when it cannot be opened: it is not a
    /// redb database, is damaged, belongs to an incompatible version, or is already open
    /// (redb allows one open handle per file); or naming the log when it cannot be read,
    /// replayed or created. A file under the log's name that is not a cano checkpoint log
    /// is refused and left as it is.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, CanoError> {
        Self::open(path.as_ref(), None)
    }

    /// [`new`](Self::new), with redb's page cache bounded to `bytes` (redb's default is
    /// 1 GiB). The cache keeps the pages the store reads and writes, so until it is full
    /// it grows with the data written: about 200 bytes per parked run's log. Bound it when
    /// memory matters more than read speed, e.g. with many runs parked in timers or
    /// signal waits; reads of logs that are no longer cached go to the file.
    ///
    /// ```
    /// # fn main() -> Result<(), cano::CanoError> {
    /// let dir = std::env::temp_dir().join(format!("cano-doc-cache-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let store = cano::RedbCheckpointStore::new_with_cache_size(dir.join("runs.redb"), 16 << 20)?;
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_with_cache_size(path: impl AsRef<Path>, bytes: usize) -> Result<Self, CanoError> {
        Self::open(path.as_ref(), Some(bytes))
    }

    fn open(path: &Path, cache_bytes: Option<usize>) -> Result<Self, CanoError> {
        let path = path.to_path_buf();
        let open_error = |e: &dyn std::fmt::Display, hint: &str| {
            CanoError::checkpoint_store(format!(
                "redb: {e} (checkpoint database {}: {hint})",
                path.display()
            ))
        };
        let created = if path.exists() {
            false
        } else {
            create_atomically(&path).map_err(|e| {
                open_error(
                    &e,
                    "could not create it; check that its directory exists and is writable",
                )
            })?
        };
        let mut builder = redb::Builder::new();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder
            .create(&path)
            .map_err(|e| open_error(&e, open_hint(&e)))?;
        ensure_table(&db).map_err(|e| {
            open_error(
                &e,
                "could not create the `cano_checkpoints` table; the file may hold another \
                 application's table of that name",
            )
        })?;
        let log_path = wal::log_path(&path);
        if created {
            // A log left behind by an earlier database of that name belongs to no file now.
            match std::fs::remove_file(&log_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(log_error(&log_path, &e, "could not remove a stale log"));
                }
                _ => {}
            }
        }
        let journal = recover(&db, &log_path)?;
        let shared = Arc::new(Shared {
            db,
            journal: Mutex::new(journal),
        });

        let signals = signals::Signals::load(&shared)
            .map_err(|e| open_error(&e, "could not read its pending signals"))?;
        let (tx, rx) = mpsc::channel();
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("cano-redb-writer".into())
            .spawn(move || writer_loop(&writer_shared, &rx))
            .map_err(|e| open_error(&e, "could not start the writer thread"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                path,
                requests: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                leading: Mutex::new(Leading::default()),
                signals,
            }),
        })
    }

    /// The database file this store writes to.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many writes the log collects before they are moved into the database's table in
    /// one redb transaction (default 4,096; the log also folds at 4 MiB, on drop, and on
    /// the next open after a crash). Fewer: less to replay after a crash and less memory
    /// held for rows not yet folded; more: fewer redb commits. `0` counts as 1. Applies to
    /// every clone of the store.
    ///
    /// ```no_run
    /// use cano::prelude::*;
    ///
    /// let store = RedbCheckpointStore::new("checkpoints.redb")?.with_fold_interval(256);
    /// # Ok::<(), CanoError>(())
    /// ```
    #[must_use]
    pub fn with_fold_interval(self, writes: usize) -> Self {
        if let Ok(mut journal) = self.inner.shared.journal.lock() {
            journal.fold_writes = writes.max(1);
        }
        self
    }

    /// Commit `op` durably: inline with group commit on a multi-thread runtime, else
    /// through the writer thread.
    async fn submit(&self, op: Op) -> Result<(), CanoError> {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            self.submit_led(op).await
        } else {
            self.submit_to_writer(op).await
        }
    }

    async fn submit_led(&self, op: Op) -> Result<(), CanoError> {
        let (reply, answer) = oneshot::channel();
        let lead_now = {
            let mut q = self.inner.leading.lock().map_err(|_| poisoned())?;
            if q.leading {
                q.queue.push_back(Waiting {
                    op,
                    reply: Some(reply),
                });
                false
            } else {
                q.leading = true;
                q.queue.push_back(Waiting { op, reply: None });
                true
            }
        };
        if !lead_now {
            let mut waiting = Follower {
                inner: &self.inner,
                answer,
                settled: false,
            };
            let handoff = (&mut waiting.answer).await;
            waiting.settled = true;
            match handoff {
                Ok(Handoff::Done(result)) => return result,
                Ok(Handoff::Lead) => {}
                Err(_) => {
                    return Err(CanoError::checkpoint_store(
                        "redb: the write was dropped before it was committed; retry it",
                    ));
                }
            }
        }
        let inner = &self.inner;
        tokio::task::block_in_place(|| lead(inner))
    }

    async fn submit_to_writer(&self, op: Op) -> Result<(), CanoError> {
        let (reply, answer) = oneshot::channel();
        let sent = {
            let requests = self
                .inner
                .requests
                .lock()
                .map_err(|_| CanoError::checkpoint_store("redb: writer channel poisoned"))?;
            match requests.as_ref() {
                Some(tx) => tx.send(Request { op, reply }).is_ok(),
                None => false,
            }
        };
        if !sent {
            return Err(CanoError::checkpoint_store(format!(
                "redb: the writer thread of {} has stopped; reopen the store",
                self.inner.path.display()
            )));
        }
        answer.await.unwrap_or_else(|_| {
            Err(CanoError::checkpoint_store(format!(
                "redb: the writer thread of {} stopped before confirming the write; reopen the store",
                self.inner.path.display()
            )))
        })
    }

    /// The rows of `workflow_id`: the table's, unless a clear was logged since the last
    /// fold, and the logged ones.
    fn read_rows(shared: &Shared, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        Ok(Self::read_run(shared, workflow_id, false)?.0)
    }

    /// [`read_rows`](Self::read_rows), and (if `with_meta`) the run's times and failure
    /// mark as the table and the log say together.
    fn read_run(
        shared: &Shared,
        workflow_id: &str,
        with_meta: bool,
    ) -> Result<(Vec<CheckpointRow>, Option<StoredMeta>), CanoError> {
        let journal = shared.journal.lock().map_err(|_| poisoned())?;
        let logged = journal.pending.runs.get(workflow_id);
        let mut rows = Vec::new();
        let mut base = None;
        if !logged.is_some_and(|run| run.cleared) {
            let txn = shared.db.begin_read().map_err(redb_error)?;
            let table = txn.open_table(TABLE).map_err(redb_error)?;
            let range = table
                .range((workflow_id, u64::MIN)..=(workflow_id, u64::MAX))
                .map_err(redb_error)?;
            for item in range {
                let (key, value) = item.map_err(redb_error)?;
                rows.push(decode_row(workflow_id, key.value().1, value.value())?);
            }
            if with_meta {
                base = match txn.open_table(META) {
                    Ok(meta) => read_meta(&meta, workflow_id)?,
                    Err(redb::TableError::TableDoesNotExist(_)) => None,
                    Err(e) => return Err(redb_error(e)),
                };
            }
        }
        let meta = match logged {
            Some(run) if with_meta => {
                let had_rows = !rows.is_empty();
                StoredMeta::merged(base, run, || Ok(had_rows))?
            }
            _ => base,
        };
        if let Some(run) = logged.filter(|run| !run.rows.is_empty()) {
            for (sequence, value) in &run.rows {
                rows.push(decode_row(workflow_id, *sequence, value)?);
            }
            rows.sort_by_key(|row| row.sequence);
        }
        Ok((rows, meta))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; wait for it so the file lock is
        // released when the last handle is gone (a new store may open the file at once).
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        if let Ok(mut writer) = self.writer.lock()
            && let Some(handle) = writer.take()
        {
            let _ = handle.join();
        }
        // Leave everything in the table, and no log beside it. If the fold fails, the log
        // stays and the next open replays it.
        if let Ok(mut journal) = self.shared.journal.lock()
            && (journal.pending.runs.is_empty() || journal.fold(&self.shared.db).is_ok())
        {
            let _ = std::fs::remove_file(journal.log.path());
        }
    }
}

/// The writer thread: take every request that is waiting, log them in one write, answer
/// each.
fn writer_loop(shared: &Shared, rx: &Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut ops: Vec<&mut Op> = batch.iter_mut().map(|r| &mut r.op).collect();
        let results = commit_guarded(shared, &mut ops);
        for (request, result) in batch.into_iter().zip(results) {
            let _ = request.reply.send(result);
        }
    }
}

/// The leader's work: log the queue (up to [`MAX_BATCH`] writes) in one write, answer
/// every other writer in it, hand the lead to the next writer waiting (if any), and return
/// the leader's own result.
fn lead(inner: &Inner) -> Result<(), CanoError> {
    let mut batch: Vec<Waiting> = {
        let mut q = inner.leading.lock().map_err(|_| poisoned())?;
        let n = q.queue.len().min(MAX_BATCH);
        q.queue.drain(..n).collect()
    };
    let mut ops: Vec<&mut Op> = batch.iter_mut().map(|w| &mut w.op).collect();
    let results = commit_guarded(&inner.shared, &mut ops);
    let mut own = Err(CanoError::checkpoint_store(
        "redb: the leader's write was missing from its batch",
    ));
    for (waiting, result) in batch.into_iter().zip(results) {
        match waiting.reply {
            Some(reply) => {
                let _ = reply.send(Handoff::Done(result));
            }
            None => own = result,
        }
    }
    let mut q = inner.leading.lock().map_err(|_| poisoned())?;
    hand_off(&mut q);
    own
}

/// Pass the lead to the first writer still waiting, or end the leadership if none is.
/// Writers that gave up (their future was dropped) are skipped, their writes dropped.
fn hand_off(q: &mut Leading) {
    loop {
        let Some(next) = q.queue.front_mut() else {
            q.leading = false;
            return;
        };
        let handed = next
            .reply
            .take()
            .is_some_and(|reply| reply.send(Handoff::Lead).is_ok());
        if handed {
            return;
        }
        // A writer that gave up, or the write of one that gave up after being handed the
        // lead (only the lead's own write has no reply).
        q.queue.pop_front();
    }
}

/// A writer waiting for the leader. If its future is dropped just after the lead was
/// handed to it, it passes the lead on, so the queue never stalls.
struct Follower<'a> {
    inner: &'a Inner,
    answer: oneshot::Receiver<Handoff>,
    settled: bool,
}

impl Drop for Follower<'_> {
    fn drop(&mut self) {
        if !self.settled
            && let Ok(Handoff::Lead) = self.answer.try_recv()
            && let Ok(mut q) = self.inner.leading.lock()
        {
            hand_off(&mut q);
        }
    }
}

/// [`commit_batch`], with a failure or a panic turned into the same error for every write.
fn commit_guarded(shared: &Shared, ops: &mut [&mut Op]) -> Vec<Result<(), CanoError>> {
    let n = ops.len();
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit_batch(shared, ops)));
    match outcome {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => vec![Err(e); n],
        Err(payload) => {
            let e = CanoError::checkpoint_store(format!(
                "redb: write transaction panicked: {}; nothing of this batch was stored",
                crate::util::panic_message(&*payload)
            ));
            vec![Err(e); n]
        }
    }
}

/// Log `ops` in one write and one disk sync. A duplicate `(workflow_id, sequence)` rejects
/// only that request; a failure to read the table or to write the log fails the whole
/// batch (and nothing of it is stored). Folds the log into the table when it has grown.
fn commit_batch(
    shared: &Shared,
    ops: &mut [&mut Op],
) -> Result<Vec<Result<(), CanoError>>, CanoError> {
    let mut journal = shared.journal.lock().map_err(|_| poisoned())?;
    let journal = &mut *journal;
    let mut results = Vec::with_capacity(ops.len());
    let mut undo = Vec::with_capacity(ops.len());
    let logged = stage(journal, &shared.db, ops, &mut results, &mut undo).and_then(|bytes| {
        if bytes.is_empty() {
            return Ok(());
        }
        journal
            .log
            .append(&bytes)
            .map_err(CanoError::checkpoint_store)
    });
    if let Err(e) = logged {
        journal.pending.undo(undo);
        return Err(e);
    }
    if journal.pending.writes >= journal.fold_writes || journal.log.len() >= wal::FOLD_BYTES {
        // Every write of the batch is durable in the log already; a fold that fails is
        // tried again after the next batch.
        let _ = journal.fold(&shared.db);
    }
    Ok(results)
}

/// Check `ops` for conflicts, record the accepted ones in `journal.pending` (with how to
/// take each back in `undo`), put each one's result in `results`, and return their log
/// records. On error, `undo` holds what was recorded so far.
fn stage<'o>(
    journal: &mut Journal,
    db: &Database,
    ops: &'o mut [&mut Op],
    results: &mut Vec<Result<(), CanoError>>,
    undo: &mut Vec<wal::Undo<'o>>,
) -> Result<Vec<u8>, CanoError> {
    let epoch = journal.log.epoch();
    let mut bytes = Vec::new();
    // One clock read per batch: its appends were all written now.
    let mut clocked = false;
    for op in ops.iter_mut() {
        match &mut **op {
            Op::Append {
                workflow_id,
                sequence,
                value,
            } => {
                let workflow_id: &'o String = workflow_id;
                if journal.has_row(db, workflow_id, *sequence)? {
                    results.push(Err(CanoError::checkpoint_store(format!(
                        "checkpoint conflict: workflow {workflow_id:?} already has a row at sequence {sequence}; resume the existing run or clear it before starting a new one"
                    ))));
                    continue;
                }
                if !clocked {
                    let ms = super::now_ms();
                    wal::encode(&Record::Clock { ms }, epoch, &mut bytes);
                    journal.pending.clock = Some(ms);
                    clocked = true;
                }
                wal::encode(
                    &Record::Append {
                        workflow_id,
                        sequence: *sequence,
                        value,
                    },
                    epoch,
                    &mut bytes,
                );
                undo.push(
                    journal
                        .pending
                        .append(workflow_id, *sequence, std::mem::take(value)),
                );
            }
            Op::Clear { workflow_id } => {
                let workflow_id: &'o String = workflow_id;
                wal::encode(&Record::Clear { workflow_id }, epoch, &mut bytes);
                undo.push(journal.pending.clear(workflow_id));
            }
            Op::Fail { workflow_id, error } => {
                let workflow_id: &'o String = workflow_id;
                wal::encode(&Record::Failed { workflow_id, error }, epoch, &mut bytes);
                undo.push(journal.pending.fail(workflow_id, std::mem::take(error)));
            }
        }
        results.push(Ok(()));
    }
    Ok(bytes)
}

/// A write too large for one log record.
fn too_large() -> CanoError {
    CanoError::checkpoint_store(
        "encode checkpoint row: the row is larger than 4 GiB, the most one checkpoint write can hold; keep large outputs elsewhere and checkpoint a reference to them",
    )
}

impl RedbCheckpointStore {
    /// Every id with rows: in the table (unless cleared since the last fold) or logged.
    ///
    /// The journal lock is held only to take a snapshot (a read transaction of the table
    /// and what the log holds beside it), not while the table is scanned, so writers are
    /// not held up by a long listing.
    fn run_ids(shared: &Shared) -> Result<Vec<String>, CanoError> {
        let (txn, cleared, mut ids) = {
            let journal = shared.journal.lock().map_err(|_| poisoned())?;
            let txn = shared.db.begin_read().map_err(redb_error)?;
            let cleared: std::collections::HashSet<String> = journal
                .pending
                .runs
                .iter()
                .filter(|(_, run)| run.cleared)
                .map(|(id, _)| id.clone())
                .collect();
            let logged: std::collections::BTreeSet<String> = journal
                .pending
                .runs
                .iter()
                .filter(|(_, run)| !run.rows.is_empty())
                .map(|(id, _)| id.clone())
                .collect();
            (txn, cleared, logged)
        };
        let table = txn.open_table(TABLE).map_err(redb_error)?;
        let mut last: Option<String> = None;
        for item in redb::ReadableTable::iter(&table).map_err(redb_error)? {
            let (key, _) = item.map_err(redb_error)?;
            let id = key.value().0;
            if last.as_deref() != Some(id) {
                last = Some(id.to_owned());
                if !cleared.contains(id) {
                    ids.insert(id.to_owned());
                }
            }
        }
        Ok(ids.into_iter().collect())
    }

    fn list(shared: &Shared) -> Result<Vec<super::RunSummary>, CanoError> {
        let mut runs = Vec::new();
        for id in Self::run_ids(shared)? {
            // Cleared between the two reads: no longer a run.
            if let Some(summary) = Self::summary(shared, &id)? {
                runs.push(summary);
            }
        }
        Ok(runs)
    }

    /// The run `workflow_id` summarized with its times and failure mark (`None`: no rows).
    fn summary(shared: &Shared, workflow_id: &str) -> Result<Option<super::RunSummary>, CanoError> {
        let (rows, meta) = Self::read_run(shared, workflow_id, true)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut summary = super::log::summarize(workflow_id, &rows);
        let meta = meta.unwrap_or_default();
        summary.started_ms = meta.started_ms;
        summary.updated_ms = meta.updated_ms;
        super::mark_failed(&mut summary, meta.failed);
        Ok(Some(summary))
    }

    /// `read` on tokio's blocking pool (or here, outside a runtime).
    async fn off_runtime<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Shared) -> Result<T, CanoError> + Send + 'static,
    ) -> Result<T, CanoError> {
        let shared = Arc::clone(&self.inner.shared);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || read(&shared))
                .await
                .unwrap_or_else(|e| {
                    Err(CanoError::checkpoint_store(format!(
                        "redb: read task failed: {e}"
                    )))
                }),
            Err(_) => read(&shared),
        }
    }
}

impl super::ListRuns for RedbCheckpointStore {
    fn list_runs(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<super::RunSummary>, CanoError>> + Send + '_>> {
        Box::pin(self.off_runtime(Self::list))
    }

    fn run_summary<'a>(
        &'a self,
        workflow_id: &'a str,
    ) -> StoreFuture<'a, Option<super::RunSummary>> {
        let id = workflow_id.to_owned();
        Box::pin(self.off_runtime(move |shared| Self::summary(shared, &id)))
    }
}

impl CheckpointStore for RedbCheckpointStore {
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
        Box::pin(async move {
            let sequence = row.sequence;
            let stored = StoredRow {
                state: row.state,
                task_id: row.task_id,
                output_blob: row.output_blob,
                kind: row.kind,
            };
            let value = postcard::to_stdvec(&stored)
                .map_err(|e| CanoError::checkpoint_store(format!("encode checkpoint row: {e}")))?;
            if !wal::fits(workflow_id.len(), value.len()) {
                return Err(too_large());
            }
            self.submit(Op::Append {
                workflow_id: workflow_id.to_owned(),
                sequence,
                value,
            })
            .await
        })
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
        Box::pin(async move {
            let shared = Arc::clone(&self.inner.shared);
            let id = workflow_id.to_owned();
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle
                    .spawn_blocking(move || Self::read_rows(&shared, &id))
                    .await
                    .unwrap_or_else(|e| {
                        Err(CanoError::checkpoint_store(format!(
                            "redb: read task failed: {e}"
                        )))
                    }),
                // Not inside a tokio runtime: nothing to block but the caller.
                Err(_) => Self::read_rows(&shared, &id),
            }
        })
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
        Box::pin(async move {
            if !wal::fits(workflow_id.len(), 0) {
                return Err(too_large());
            }
            self.submit(Op::Clear {
                workflow_id: workflow_id.to_owned(),
            })
            .await?;
            self.clear_signals(workflow_id).await
        })
    }
}

/// Each run gets a writer that appends and clears as the store does, and marks the run
/// [failed](super::RunStatus::Failed) when it returns an error (in the write-ahead log,
/// like a row: durable when it returns).
impl RunWriters for RedbCheckpointStore {
    fn writer<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Box<dyn RunWriter>> {
        let writer = Writer {
            store: self.clone(),
            workflow_id: workflow_id.to_owned(),
        };
        Box::pin(std::future::ready(Ok(
            Box::new(writer) as Box<dyn RunWriter>
        )))
    }
}

/// The writer of one run of a [`RedbCheckpointStore`].
struct Writer {
    store: RedbCheckpointStore,
    workflow_id: String,
}

impl RunWriter for Writer {
    fn append(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        self.store.append(&self.workflow_id, row)
    }

    fn clear(&self) -> StoreFuture<'_, ()> {
        self.store.clear(&self.workflow_id)
    }

    fn finished_with_error<'a>(&'a self, error: &'a CanoError) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let error = super::failure_text(error);
            if !wal::fits(self.workflow_id.len(), error.len()) {
                return Err(too_large());
            }
            self.store
                .submit(Op::Fail {
                    workflow_id: self.workflow_id.clone(),
                    error,
                })
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_dropped_just_after_being_handed_the_lead_passes_it_on() {
        use std::future::Future;
        use std::task::Poll;
        let dir = tempfile::tempdir().unwrap();
        let store = RedbCheckpointStore::new(dir.path().join("ckpt.redb")).unwrap();
        // Another writer leads; this one queues up behind it.
        store.inner.leading.lock().unwrap().leading = true;
        let mut follower = Box::pin(store.append("run", CheckpointRow::new(0, "A", "a")));
        let first = std::future::poll_fn(|cx| Poll::Ready(follower.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "it waits for the leader");
        // The leader finishes and hands the lead on; the follower's future is dropped
        // before it takes it up.
        hand_off(&mut store.inner.leading.lock().unwrap());
        drop(follower);
        // The lead was passed on (here: given up, nobody else waits), so later writes
        // are not stuck behind it; the dropped write was never stored.
        let next = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.append("run", CheckpointRow::new(0, "A", "a")),
        )
        .await;
        assert_eq!(next.expect("a later write must not wait forever"), Ok(()));
        assert_eq!(
            store.load_run("run").await.unwrap(),
            [CheckpointRow::new(0, "A", "a")]
        );
    }

    /// Rows of `id` in the table itself (not the log).
    fn table_rows(store: &RedbCheckpointStore, id: &str) -> usize {
        let txn = store.inner.shared.db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        table
            .range((id, u64::MIN)..=(id, u64::MAX))
            .unwrap()
            .count()
    }

    #[tokio::test]
    async fn the_log_is_folded_every_interval_and_when_it_grows_large() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbCheckpointStore::new(dir.path().join("ckpt.redb"))
            .unwrap()
            .with_fold_interval(3);
        for seq in 0..10 {
            store
                .append("run", CheckpointRow::new(seq, "A", "a"))
                .await
                .unwrap();
        }
        // Three folds of three writes; the tenth is still in the log.
        assert_eq!(table_rows(&store, "run"), 9);
        assert_eq!(store.inner.shared.journal.lock().unwrap().pending.writes, 1);
        assert_eq!(store.load_run("run").await.unwrap().len(), 10);
        drop(store);

        // One write larger than the log's byte limit is folded at once.
        let store = RedbCheckpointStore::new(dir.path().join("ckpt.redb")).unwrap();
        let big = CheckpointRow::new(0, "A", "a").with_output(vec![7; 5 << 20]);
        store.append("big", big).await.unwrap();
        assert_eq!(table_rows(&store, "big"), 1);
        assert_eq!(store.inner.shared.journal.lock().unwrap().pending.writes, 0);
    }

    #[test]
    fn the_file_is_built_beside_its_final_name() {
        let (dir, tmp) = staging_paths(Path::new("/var/lib/app/ckpt.redb"));
        assert_eq!(dir, Path::new("/var/lib/app"));
        assert_eq!(tmp.parent(), Some(Path::new("/var/lib/app")));
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".ckpt.redb.init-"), "{name}");
        // A bare file name lives in the current directory.
        let (dir, tmp) = staging_paths(Path::new("ckpt.redb"));
        assert_eq!(dir, Path::new("."));
        assert_eq!(tmp.parent(), Some(Path::new(".")));
    }

    #[test]
    fn creating_a_file_that_appeared_meanwhile_keeps_the_existing_one() {
        // Another process won the race: its (complete) file stays, and no error.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.redb");
        std::fs::write(&path, b"theirs").unwrap();
        assert_eq!(create_atomically(&path), Ok(false));
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file is removed");
    }

    #[test]
    fn value_encoding_matches_the_reference_layout() {
        let stored = StoredRow {
            state: "A".into(),
            task_id: "t".into(),
            output_blob: Some(vec![7]),
            kind: RowKind::StepCursor,
        };
        assert_eq!(
            postcard::to_stdvec(&stored).unwrap(),
            vec![1, 65, 1, 116, 1, 1, 7, 2]
        );
    }

    /// The store against a model, with the log folded every few writes, stores reopened
    /// (folding on close), and crash images (the files as they are between two writes)
    /// opened at the end: every image must read back as the model did when it was taken.
    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        enum Step {
            Append(u8, u8),
            Clear(u8),
            Image,
            Reopen,
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                8 => (0..3u8, 0..5u8).prop_map(|(id, seq)| Step::Append(id, seq)),
                2 => (0..3u8).prop_map(Step::Clear),
                1 => Just(Step::Image),
                1 => Just(Step::Reopen),
            ]
        }

        type Model = BTreeMap<String, BTreeMap<u64, CheckpointRow>>;

        fn open(dir: &Path, fold_every: usize) -> RedbCheckpointStore {
            RedbCheckpointStore::new(dir.join("ckpt.redb"))
                .expect("open")
                .with_fold_interval(fold_every)
        }

        async fn check(store: &RedbCheckpointStore, model: &Model, what: &str) {
            for id in ["r0", "r1", "r2"] {
                let want: Vec<CheckpointRow> = model
                    .get(id)
                    .map(|rows| rows.values().cloned().collect())
                    .unwrap_or_default();
                assert_eq!(store.load_run(id).await.unwrap(), want, "{id} {what}");
            }
        }

        async fn play(steps: Vec<Step>, fold_every: usize) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = open(dir.path(), fold_every);
            let mut model = Model::new();
            let mut images = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Append(id, seq) => {
                        let id = format!("r{id}");
                        let row = CheckpointRow::new(u64::from(seq), format!("S{i}"), "t")
                            .with_output(vec![i as u8; i % 7]);
                        let result = store.append(&id, row.clone()).await;
                        match model.entry(id.clone()).or_default().entry(row.sequence) {
                            std::collections::btree_map::Entry::Occupied(_) => {
                                let err = result.expect_err("a duplicate is refused");
                                assert!(err.message().contains("conflict"), "{err}");
                            }
                            std::collections::btree_map::Entry::Vacant(slot) => {
                                result.expect("append");
                                slot.insert(row);
                            }
                        }
                    }
                    Step::Clear(id) => {
                        let id = format!("r{id}");
                        store.clear(&id).await.unwrap();
                        model.remove(&id);
                    }
                    Step::Image => {
                        let image = tempfile::tempdir().unwrap();
                        for name in ["ckpt.redb", "ckpt.redb-wal"] {
                            std::fs::copy(dir.path().join(name), image.path().join(name)).unwrap();
                        }
                        images.push((image, model.clone()));
                    }
                    Step::Reopen => {
                        drop(store);
                        assert!(
                            !dir.path().join("ckpt.redb-wal").exists(),
                            "a clean close removes the log"
                        );
                        store = open(dir.path(), fold_every);
                        check(&store, &model, "after reopening").await;
                    }
                }
            }
            check(&store, &model, "at the end").await;
            drop(store);
            for (n, (image, model)) in images.iter().enumerate() {
                let store = open(image.path(), fold_every);
                check(&store, model, &format!("in crash image {n}")).await;
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

            #[test]
            fn the_store_keeps_to_the_model_through_folds_reopens_and_crashes(
                steps in proptest::collection::vec(step(), 1..60),
                fold_every in 1usize..6,
                multi_thread in any::<bool>(),
            ) {
                let rt = if multi_thread {
                    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()
                } else {
                    tokio::runtime::Builder::new_current_thread().build()
                }
                .unwrap();
                rt.block_on(play(steps, fold_every));
            }
        }
    }
}
