//! Group commit of fenced appends ([`PostgresCheckpointStore::with_group_commit`]): the
//! state entries of the runs a worker executes at once share transactions.
//!
//! Each append is queued for one committer task per store object, which writes every
//! append queued meanwhile in one statement (one transaction, one WAL flush) and answers
//! each caller separately. Before a batch goes out, the committer lets the runtime's
//! other tasks run a few times, so that the runs its last commit woke join the batch
//! ([`gather`]). An append still returns only once its row is committed, so a
//! state's entry is durable before its task runs, as without group commit; what changes
//! is that sixteen runs in flight cost one commit per step between them instead of
//! sixteen. Each row stays fenced by its own run's lease: a row whose run another worker
//! took over is refused (and only that one), as is a duplicate sequence.
//!
//! The committer holds the store's connection pool, not the queue: it ends once every
//! clone of the store object is dropped.

use super::error::Doing;
use super::lease::{Lease, epoch_param, fenced, read_holder};
use super::pool::Pool;
use super::{Inner, conflict};
use crate::error::CanoError;
use crate::recovery::CheckpointRow;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// The most appends one statement carries.
const MAX_BATCH: usize = 512;

/// How many times a batch refused for a deadlock or a serialization failure (another
/// transaction, a heartbeat say, locked some of the same leases in another order) is
/// tried again.
const RETRIES: usize = 3;

/// The fenced append of many rows, each under its own run's lease: the rows' runs whose
/// lease is still live at the row's epoch have their lease extended and their failure
/// mark removed, and only their rows are inserted (a duplicate sequence is not). One
/// answer per input row, in order: (lease held, row inserted).
pub(super) const FENCED_APPEND_MANY: &str = "
    WITH input AS MATERIALIZED (
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                             $6::bytea[], $7::bigint[], $8::float8[])
            WITH ORDINALITY AS i(workflow_id, sequence, kind, state, task_id, output_blob,
                                 epoch, secs, n)
    ), lease AS (
        UPDATE cano_runs r
        SET lease_until = greatest(r.lease_until, now() + make_interval(secs => i.secs))
        FROM input i
        WHERE r.workflow_id = i.workflow_id AND r.epoch = i.epoch
          AND r.owner IS NOT NULL AND r.lease_until > now()
        RETURNING r.workflow_id
    ), unmark AS (
        DELETE FROM cano_run_failures f USING lease WHERE f.workflow_id = lease.workflow_id
    ), written AS (
        INSERT INTO cano_checkpoints
            (workflow_id, sequence, kind, state, task_id, output_blob, epoch)
        SELECT i.workflow_id, i.sequence, i.kind, i.state, i.task_id, i.output_blob, i.epoch
        FROM input i WHERE i.workflow_id IN (SELECT workflow_id FROM lease)
        ON CONFLICT DO NOTHING
        RETURNING workflow_id, sequence
    )
    SELECT EXISTS (SELECT 1 FROM lease l WHERE l.workflow_id = i.workflow_id),
           EXISTS (SELECT 1 FROM written w
                   WHERE w.workflow_id = i.workflow_id AND w.sequence = i.sequence)
    FROM input i ORDER BY i.n";

/// One queued append, checked and converted for the statement.
pub(super) struct Queued {
    pub(super) lease: Lease,
    pub(super) sequence: i64,
    pub(super) kind: String,
    pub(super) row: CheckpointRow,
}

/// What writes the batches of a [`Batcher`].
pub(crate) trait WriteBatch: Send + Sync + 'static {
    /// One caller's request.
    type Item: Send + 'static;
    /// What it gets back.
    type Answer: Send + 'static;

    /// Write `batch`: one answer per item, in order.
    fn write(&self, batch: &[Self::Item]) -> impl Future<Output = Vec<Self::Answer>> + Send;
}

/// A queued item and where its answer goes.
type Waiting<W> = (
    <W as WriteBatch>::Item,
    oneshot::Sender<<W as WriteBatch>::Answer>,
);

/// A queue whose items one task writes in batches: everything queued while a batch is
/// being written goes in the next one (see the module docs).
pub(crate) struct Batcher<W: WriteBatch> {
    queue: OnceLock<mpsc::UnboundedSender<Waiting<W>>>,
}

impl<W: WriteBatch> Default for Batcher<W> {
    fn default() -> Self {
        Self {
            queue: OnceLock::new(),
        }
    }
}

impl<W: WriteBatch> Batcher<W> {
    /// Queue `item` and wait for its answer; the writing task is started on first use
    /// with the writer `start` makes. `None` if the task stopped (the runtime is
    /// shutting down) before answering.
    pub(crate) async fn submit(
        &self,
        item: W::Item,
        start: impl FnOnce() -> W,
    ) -> Option<W::Answer> {
        let queue = self.queue.get_or_init(|| {
            let (queue, items) = mpsc::unbounded_channel();
            tokio::spawn(write_batches(start(), items));
            queue
        });
        let (done, answer) = oneshot::channel();
        queue.send((item, done)).ok()?;
        answer.await.ok()
    }
}

/// The writing task: batch after batch, until the queue is closed.
async fn write_batches<W: WriteBatch>(writer: W, mut queue: mpsc::UnboundedReceiver<Waiting<W>>) {
    let mut queued = Vec::new();
    while queue.recv_many(&mut queued, MAX_BATCH).await > 0 {
        gather(&mut queue, &mut queued).await;
        let (items, callers): (Vec<_>, Vec<_>) = queued.drain(..).unzip();
        let answers = writer.write(&items).await;
        for (caller, answer) in callers.into_iter().zip(answers) {
            // A caller that stopped waiting (its run was dropped) needs no answer.
            let _ = caller.send(answer);
        }
    }
}

/// At most how many times [`gather`] lets the runtime's other tasks run.
const GATHER_ROUNDS: usize = 32;

/// After how many rounds in a row that added nothing [`gather`] stops.
const GATHER_QUIET: usize = 3;

/// Before a batch goes out, let the tasks that are ready to run add to it: runs that
/// were woken together (by the commit of their previous rows) reach their next row
/// within a few task switches, and then share one commit instead of splitting over
/// several. Stops once a few rounds of the other tasks in a row added nothing, so that
/// an idle worker pays a few task switches, not a timer.
pub(crate) async fn gather<T>(queue: &mut mpsc::UnboundedReceiver<T>, queued: &mut Vec<T>) {
    let mut quiet = 0;
    for _ in 0..GATHER_ROUNDS {
        if queued.len() >= MAX_BATCH || quiet >= GATHER_QUIET {
            return;
        }
        tokio::task::yield_now().await;
        let before = queued.len();
        while queued.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(item) => queued.push(item),
                Err(_) => break,
            }
        }
        quiet = if queued.len() == before { quiet + 1 } else { 0 };
    }
}

/// The group commit of one store object (see the module docs).
pub(super) type GroupCommit = Batcher<Appends>;

/// Writes batches of appends through the store's pool. Holds the pool, not the store: the
/// task ends once every clone of the store object is dropped.
pub(super) struct Appends(pub(super) Arc<Inner>);

impl WriteBatch for Appends {
    type Item = Queued;
    type Answer = Result<(), CanoError>;

    async fn write(&self, batch: &[Queued]) -> Vec<Result<(), CanoError>> {
        write(&self.0.pool, batch).await
    }
}

/// The error of an append whose batch was never written.
pub(super) fn stopped() -> CanoError {
    CanoError::checkpoint_store(
        "postgres: the group commit stopped before this append was written (the runtime is \
         shutting down); nothing is lost: the run resumes from its last committed row",
    )
}

/// Run `once` until it succeeds, fails for good (its error says `false`: trying again
/// would not help), or was tried [`RETRIES`] times more.
pub(crate) async fn retried<T, F>(mut once: impl FnMut() -> F) -> Result<T, CanoError>
where
    F: Future<Output = Result<T, (CanoError, bool)>>,
{
    let mut tries = 0;
    loop {
        match once().await {
            Ok(value) => return Ok(value),
            Err((_, true)) if tries < RETRIES => tries += 1,
            Err((e, _)) => return Err(e),
        }
    }
}

/// A batched statement must answer each of its `asked` items once: an error (not worth
/// retrying) naming `what` when it answered for `answered`.
pub(crate) fn answered_each(
    what: &str,
    asked: usize,
    answered: usize,
) -> Result<(), (CanoError, bool)> {
    if asked == answered {
        return Ok(());
    }
    let e = CanoError::checkpoint_store(format!("{what} of {asked} was answered for {answered}"));
    Err((e, false))
}

/// Write `batch` in one statement; one answer per append, in order.
async fn write(pool: &Pool, batch: &[Queued]) -> Vec<Result<(), CanoError>> {
    match retried(|| write_once(pool, batch)).await {
        Ok(answers) => answers,
        Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// One try of [`write`]: the answers, or the statement's error and whether trying again
/// may help.
async fn write_once(
    pool: &Pool,
    batch: &[Queued],
) -> Result<Vec<Result<(), CanoError>>, (CanoError, bool)> {
    let conn = pool.get().await.map_err(|e| (e, false))?;
    let failed = |e: tokio_postgres::Error| {
        let retry = super::error::worth_retrying(&e);
        (conn.on_error(Doing::Append)(e), retry)
    };
    let statement = conn.statement(FENCED_APPEND_MANY).await.map_err(&failed)?;
    let ids: Vec<&str> = batch.iter().map(|q| q.lease.workflow_id()).collect();
    let sequences: Vec<i64> = batch.iter().map(|q| q.sequence).collect();
    let kinds: Vec<&str> = batch.iter().map(|q| q.kind.as_str()).collect();
    let states: Vec<&str> = batch.iter().map(|q| q.row.state.as_str()).collect();
    let tasks: Vec<&str> = batch.iter().map(|q| q.row.task_id.as_str()).collect();
    let blobs: Vec<Option<&[u8]>> = batch.iter().map(|q| q.row.output_blob.as_deref()).collect();
    let epochs: Vec<i64> = batch.iter().map(|q| epoch_param(q.lease.epoch())).collect();
    let secs: Vec<f64> = batch
        .iter()
        .map(|q| q.lease.duration().as_secs_f64())
        .collect();
    let rows = conn
        .client
        .query(
            &statement,
            &[
                &ids, &sequences, &kinds, &states, &tasks, &blobs, &epochs, &secs,
            ],
        )
        .await
        .map_err(&failed)?;
    answered_each("postgres: a group commit of rows", batch.len(), rows.len())?;
    let mut answers = Vec::with_capacity(batch.len());
    for (queued, row) in batch.iter().zip(&rows) {
        let leased: bool = row.try_get(0).map_err(&failed)?;
        let inserted: bool = row.try_get(1).map_err(&failed)?;
        answers.push(if !leased {
            let what = format!("append of row {}", queued.row.sequence);
            let now = read_holder(&conn.client, queued.lease.workflow_id()).await;
            Err(fenced(&queued.lease, &what, now))
        } else if !inserted {
            Err(conflict(queued.lease.workflow_id(), queued.row.sequence))
        } else {
            Ok(())
        });
    }
    Ok(answers)
}
