//! Submitting runs and reading how they are doing.

use super::{CANCEL_CHANNEL, DEFAULT_QUEUE, READY_CHANNEL};
use crate::error::CanoError;
use crate::recovery::postgres::PostgresCheckpointStore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Insert a ready run (its id made by the database); nothing when the idempotency key
/// `$6` is taken.
/// The queue's workers are woken on the channel `$6` when the run is added.
pub(super) const SUBMIT: &str = "
    WITH added AS (
        INSERT INTO cano_cluster_runs
            (run_id, queue, workflow, status, input, initial_state, idempotency_key)
        VALUES (gen_random_uuid()::text, $1, $2, 'ready', ($3::text)::jsonb,
                ($4::text)::jsonb, $5)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING run_id
    )
    SELECT added.run_id FROM added CROSS JOIN LATERAL (SELECT pg_notify($6, $1)) AS woken";

/// The run submitted with idempotency key `$1`.
const BY_KEY: &str = "SELECT run_id FROM cano_cluster_runs WHERE idempotency_key = $1";

/// Insert the ready runs of arrays `$2` (workflows), `$3` (inputs, JSON text), `$4`
/// (initial states, JSON text) and `$5` (idempotency keys) into queue `$1`, skipping those
/// whose key is taken; the queue's workers are woken on the channel `$6` when one was
/// added. Answers, in the arrays' order, each run's id: the new run's, or the earlier
/// run's of a taken key (`NULL` when that run is not in the statement's snapshot: a
/// duplicate key in the batch, or a run committed while the statement ran).
const SUBMIT_BATCH: &str = "
    WITH batch AS MATERIALIZED (
        SELECT gen_random_uuid()::text AS run_id, b.workflow, b.input, b.initial_state,
               b.idempotency_key, b.ord
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
            AS b (workflow, input, initial_state, idempotency_key, ord)
    ), added AS (
        INSERT INTO cano_cluster_runs
            (run_id, queue, workflow, status, input, initial_state, idempotency_key)
        SELECT run_id, $1, workflow, 'ready', input::jsonb, initial_state::jsonb,
               idempotency_key
        FROM batch ORDER BY ord
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING run_id
    ), woken AS (
        SELECT pg_notify($6, $1) FROM (SELECT 1 FROM added LIMIT 1) AS any_added
    )
    SELECT coalesce(added.run_id, earlier.run_id)
    FROM batch
    LEFT JOIN added ON added.run_id = batch.run_id
    LEFT JOIN cano_cluster_runs AS earlier
        ON added.run_id IS NULL AND earlier.idempotency_key = batch.idempotency_key
    CROSS JOIN (SELECT count(*) FROM woken) AS notified
    ORDER BY batch.ord";

/// A run's status row.
const STATUS: &str = "
    SELECT run_id, queue, workflow, status, final_state::text, error, attempts, worker,
           cancel_requested_at IS NOT NULL, wake_at, waiting_for
    FROM cano_cluster_runs WHERE run_id = $1";

/// Lock run `$1`'s row for a cancel: its status, and whether it has a log.
const CANCEL_LOOK: &str = "
    SELECT status, EXISTS (SELECT 1 FROM cano_checkpoints WHERE workflow_id = $1)
    FROM cano_cluster_runs WHERE run_id = $1 FOR UPDATE";

/// Cancel run `$1`, ready and never started: it ends here.
const CANCEL_UNSTARTED: &str = "
    UPDATE cano_cluster_runs
    SET status = 'cancelled', error = 'cluster: cancelled before it started',
        cancel_requested_at = now(), finished_at = now(), heartbeat_at = NULL
    WHERE run_id = $1";

/// Ask the worker running run `$1` (or the next to claim it) to cancel it; a waiting run
/// is made ready for that. Answers the run's queue.
const CANCEL_REQUEST: &str = "
    UPDATE cano_cluster_runs
    SET cancel_requested_at = coalesce(cancel_requested_at, now()),
        status = CASE WHEN status = 'waiting' THEN 'ready' ELSE status END
    WHERE run_id = $1
    RETURNING queue";

/// Make run `$1`, failed or parked, ready again with its attempts counted from zero; the
/// queue's workers are woken on the channel `$2`. Answers the run's queue.
const RETRY: &str = "
    WITH again AS (
        UPDATE cano_cluster_runs
        SET status = 'ready', attempts = 0, final_state = NULL, finished_at = NULL,
            heartbeat_at = NULL, cancel_requested_at = NULL
        WHERE run_id = $1 AND status IN ('failed', 'parked')
        RETURNING queue
    )
    SELECT again.queue FROM again CROSS JOIN LATERAL (SELECT pg_notify($2, again.queue)) AS woken";

/// Delete up to `$2` runs that ended more than `$1` seconds ago, with what is left of
/// their logs, signals and (released or expired) leases; answers how many.
const PRUNE: &str = "
    WITH gone AS (
        DELETE FROM cano_cluster_runs WHERE run_id IN (
            SELECT run_id FROM cano_cluster_runs
            WHERE finished_at < now() - make_interval(secs => $1)
              AND status IN ('succeeded', 'failed', 'parked', 'cancelled')
            ORDER BY finished_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING run_id
    ), logs AS (
        DELETE FROM cano_checkpoints WHERE workflow_id IN (SELECT run_id FROM gone)
    ), signals AS (
        DELETE FROM cano_signals WHERE workflow_id IN (SELECT run_id FROM gone)
    ), leases AS (
        DELETE FROM cano_runs
        WHERE workflow_id IN (SELECT run_id FROM gone)
          AND (owner IS NULL OR lease_until <= now())
    )
    SELECT count(*) FROM gone";

/// How often [`Client::wait`] looks, unless set with [`Client::with_poll_interval`].
const DEFAULT_WAIT_POLL: Duration = Duration::from_millis(100);

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunState {
    /// Waiting for a worker.
    Ready,
    /// A worker has it.
    Running,
    /// It sleeps on a timer or waits for a signal, held by no worker: it is ready again
    /// when its wake time passes, the signal comes or a cancel is asked for.
    Waiting,
    /// It ended in its final state.
    Succeeded,
    /// It ended with an error (the workflow's, or the worker could not build it).
    Failed,
    /// Given up after too many attempts; the error says why.
    Parked,
    /// Ended by [`Client::cancel`]: its completed saga steps were compensated.
    Cancelled,
}

impl RunState {
    /// Whether the run has ended (succeeded, failed, parked or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Parked | Self::Cancelled
        )
    }

    /// The status as the table (and the CLI) spells it: `ready`, `running`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Parked => "parked",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<Self, CanoError> {
        Ok(match text {
            "ready" => Self::Ready,
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "parked" => Self::Parked,
            "cancelled" => Self::Cancelled,
            other => {
                return Err(CanoError::checkpoint_store(format!(
                    "cluster: a run has the status {other:?}, which this version of cano does \
                     not know; a newer cano wrote it"
                )));
            }
        })
    }
}

/// A run's status, as [`Client::status`] reads it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunStatus {
    /// The run's id.
    pub run_id: String,
    /// Its queue.
    pub queue: String,
    /// The registered name of its workflow.
    pub workflow: String,
    /// Where it is.
    pub state: RunState,
    /// Its final state as JSON, once it succeeded.
    pub final_state: Option<serde_json::Value>,
    /// Its error, once it failed or was parked (or the last attempt's, while it is retried).
    pub error: Option<String>,
    /// How many times a worker claimed it.
    pub attempts: u32,
    /// The worker running it, or the last one that did.
    pub worker: Option<String>,
    /// Whether [`Client::cancel`] asked for it to be cancelled.
    pub cancel_requested: bool,
    /// While it is [waiting](RunState::Waiting): when it wakes (`None`: no deadline).
    pub wake_at: Option<std::time::SystemTime>,
    /// While it is [waiting](RunState::Waiting) for a signal: the signal's name.
    pub waiting_for: Option<String>,
}

/// What [`Client::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The run had not started: it is cancelled, nothing of it ran.
    Cancelled,
    /// The run has started (or was started before and waits to be resumed): the worker
    /// running it, or the next to claim it, cancels it and records it cancelled once its
    /// completed saga steps are compensated. [`Client::wait`] for its end.
    Requested,
    /// The run had ended already, in the state given; nothing changed.
    AlreadyEnded(RunState),
}

impl RunStatus {
    /// The final state as `S` (`None` while the run has not succeeded).
    ///
    /// # Errors
    /// [`CanoError::Workflow`] when the stored state does not deserialize as `S`.
    pub fn final_state<S: DeserializeOwned>(&self) -> Result<Option<S>, CanoError> {
        self.final_state
            .as_ref()
            .map(|json| {
                S::deserialize(json).map_err(|e| {
                    CanoError::workflow(format!(
                        "cluster: the final state of run {:?} ({json}) does not deserialize as \
                         {}: {e}",
                        self.run_id,
                        std::any::type_name::<S>()
                    ))
                })
            })
            .transpose()
    }
}

/// Submits runs to the cluster and reads their status. `Clone` shares the store's pool.
///
/// Every method's future may be dropped: a statement already sent is then committed or
/// not, as the server decides (a dropped `submit` may have added the run; submit with an
/// idempotency key to make trying again safe).
#[derive(Debug, Clone)]
pub struct Client {
    store: PostgresCheckpointStore,
    queue: String,
    poll_interval: Duration,
}

impl Client {
    /// A client on `store`'s database, submitting to the queue `"default"`.
    pub fn new(store: PostgresCheckpointStore) -> Self {
        Self {
            store,
            queue: DEFAULT_QUEUE.to_owned(),
            poll_interval: DEFAULT_WAIT_POLL,
        }
    }

    /// Submit to `queue` instead (only workers of that queue run its runs).
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How often [`wait`](Self::wait) looks at the run (default: 100 ms; at least 1 ms).
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Submit a run of the registered workflow `workflow` with `input`, starting from
    /// `initial_state`; answers its run id. With an `idempotency_key`, a submit whose key
    /// was used before adds nothing and answers the earlier run's id (whatever its
    /// workflow and input were).
    ///
    /// # Errors
    /// [`CanoError::Configuration`] when the input or state does not serialize as JSON
    /// (or holds a NUL character); [`CanoError::CheckpointStore`] when the database
    /// cannot be reached.
    pub async fn submit<I, S>(
        &self,
        workflow: &str,
        input: &I,
        initial_state: &S,
        idempotency_key: Option<&str>,
    ) -> Result<String, CanoError>
    where
        I: Serialize + ?Sized,
        S: Serialize + ?Sized,
    {
        let input = to_json("input", workflow, input)?;
        let initial = to_json("initial state", workflow, initial_state)?;
        let conn = self.store.connection().await?;
        let failed = conn.on_cluster_error();
        let inserted = conn
            .client
            .query_opt(
                SUBMIT,
                &[
                    &self.queue,
                    &workflow,
                    &input,
                    &initial,
                    &idempotency_key,
                    &READY_CHANNEL,
                ],
            )
            .await
            .map_err(&failed)?;
        if let Some(row) = inserted {
            return row.try_get(0).map_err(&failed);
        }
        // Only a taken idempotency key inserts nothing.
        let row = conn
            .client
            .query_one(BY_KEY, &[&idempotency_key])
            .await
            .map_err(&failed)?;
        row.try_get(0).map_err(&failed)
    }

    /// The status of run `run_id`; `None` when there is no such run.
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] when the database cannot be reached.
    pub async fn status(&self, run_id: &str) -> Result<Option<RunStatus>, CanoError> {
        let conn = self.store.connection().await?;
        let failed = conn.on_cluster_error();
        let Some(row) = conn
            .client
            .query_opt(STATUS, &[&run_id])
            .await
            .map_err(&failed)?
        else {
            return Ok(None);
        };
        let final_state: Option<String> = row.try_get(4).map_err(&failed)?;
        let final_state = final_state
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| {
                    CanoError::checkpoint_store(format!(
                        "cluster: the final state of run {run_id:?} is not JSON: {e}"
                    ))
                })
            })
            .transpose()?;
        let state: &str = row.try_get(3).map_err(&failed)?;
        let attempts: i32 = row.try_get(6).map_err(&failed)?;
        Ok(Some(RunStatus {
            run_id: row.try_get(0).map_err(&failed)?,
            queue: row.try_get(1).map_err(&failed)?,
            workflow: row.try_get(2).map_err(&failed)?,
            state: RunState::parse(state)?,
            final_state,
            error: row.try_get(5).map_err(&failed)?,
            attempts: u32::try_from(attempts).unwrap_or(0),
            worker: row.try_get(7).map_err(&failed)?,
            cancel_requested: row.try_get(8).map_err(&failed)?,
            wake_at: row.try_get(9).map_err(&failed)?,
            waiting_for: row.try_get(10).map_err(&failed)?,
        }))
    }

    /// Cancel run `run_id`. A run that has not started ends at once; a running one is
    /// cancelled by its worker, which is woken (`NOTIFY`; its heartbeat looks as well):
    /// the task in flight is dropped at its next `.await`, completed saga steps are
    /// compensated (a compensating run finishes its rollback), and the run is recorded
    /// [`RunState::Cancelled`]. A run waiting to be resumed is cancelled in the same way
    /// by the worker that claims it. Asking again changes nothing.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] when there is no such run;
    /// [`CanoError::CheckpointStore`] when the database cannot be reached.
    pub async fn cancel(&self, run_id: &str) -> Result<CancelOutcome, CanoError> {
        let mut conn = self.store.connection().await?;
        let failed = conn.on_cluster_error();
        let tx = conn.client.transaction().await.map_err(&failed)?;
        let Some(row) = tx
            .query_opt(CANCEL_LOOK, &[&run_id])
            .await
            .map_err(&failed)?
        else {
            return Err(no_such_run(run_id, "cancel"));
        };
        let state = RunState::parse(row.try_get(0).map_err(&failed)?)?;
        let has_log: bool = row.try_get(1).map_err(&failed)?;
        let outcome = if state.is_finished() {
            return Ok(CancelOutcome::AlreadyEnded(state));
        } else if state == RunState::Ready && !has_log {
            tx.execute(CANCEL_UNSTARTED, &[&run_id])
                .await
                .map_err(&failed)?;
            CancelOutcome::Cancelled
        } else {
            let queue: String = tx
                .query_one(CANCEL_REQUEST, &[&run_id])
                .await
                .map_err(&failed)?
                .try_get(0)
                .map_err(&failed)?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CANCEL_CHANNEL, &run_id])
                .await
                .map_err(&failed)?;
            if state == RunState::Waiting {
                // Ready again: the queue's workers take it at once.
                tx.execute("SELECT pg_notify($1, $2)", &[&READY_CHANNEL, &queue])
                    .await
                    .map_err(&failed)?;
            }
            CancelOutcome::Requested
        };
        tx.commit().await.map_err(&failed)?;
        Ok(outcome)
    }

    /// Run `run_id` again: a [failed](RunState::Failed) or [parked](RunState::Parked) run
    /// is made ready, its attempts counted from zero. The worker that claims it resumes it
    /// from its log (where a failed run without a saga stopped), or starts it from its
    /// initial state when the log is gone (a run whose rollback finished).
    ///
    /// # Errors
    /// [`CanoError::Configuration`] when there is no such run, or it is not failed or
    /// parked (the error says what it is); [`CanoError::CheckpointStore`] when the
    /// database cannot be reached.
    pub async fn retry(&self, run_id: &str) -> Result<(), CanoError> {
        let retried = {
            let conn = self.store.connection().await?;
            conn.client
                .query_opt(RETRY, &[&run_id, &READY_CHANNEL])
                .await
                .map_err(conn.on_cluster_error())?
        };
        if retried.is_some() {
            return Ok(());
        }
        match self.status(run_id).await? {
            None => Err(no_such_run(run_id, "retry")),
            Some(status) => Err(CanoError::configuration(format!(
                "cluster: run {run_id:?} is {}: only a failed or parked run can be retried",
                status.state.as_str()
            ))),
        }
    }

    /// Delete up to `batch` runs (of any queue) that ended (succeeded, failed, parked or
    /// cancelled)
    /// more than `older_than` ago, with what is left of their logs and leases; answers how
    /// many. Call it again while it answers `batch`: each call is one short statement, so
    /// pruning a large backlog never holds many rows at once. Runs being pruned by another
    /// call at the same moment are skipped.
    ///
    /// Dropping the future abandons the call; a statement already sent is committed or
    /// not, as the server decides.
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] when the database cannot be reached.
    pub async fn prune(&self, older_than: Duration, batch: usize) -> Result<u64, CanoError> {
        let secs = older_than.as_secs_f64();
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        let conn = self.store.connection().await?;
        let failed = conn.on_cluster_error();
        let pruned: i64 = conn
            .client
            .query_one(PRUNE, &[&secs, &batch])
            .await
            .map_err(&failed)?
            .try_get(0)
            .map_err(&failed)?;
        Ok(u64::try_from(pruned).unwrap_or(0))
    }

    /// Wait until run `run_id` has ended (succeeded, failed, parked or cancelled) and answer its
    /// status, looking every poll interval.
    ///
    /// Dropping the future stops waiting; the run goes on.
    ///
    /// # Errors
    /// [`CanoError::Timeout`] when it has not ended after `timeout` (it goes on);
    /// [`CanoError::Configuration`] when there is no such run;
    /// [`CanoError::CheckpointStore`] when the database cannot be reached.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Result<RunStatus, CanoError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status(run_id).await?.ok_or_else(|| {
                CanoError::configuration(format!(
                    "cluster: there is no run {run_id:?} to wait for; use the id `submit` \
                     answered"
                ))
            })?;
            if status.state.is_finished() {
                return Ok(status);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(CanoError::timeout(format!(
                    "cluster: run {run_id:?} has not ended after {timeout:?} (it is {:?}, \
                     attempt {}); it goes on",
                    status.state, status.attempts
                )));
            }
            tokio::time::sleep_until((now + self.poll_interval).min(deadline)).await;
        }
    }
    /// Submit many runs in one statement, so one transaction and one commit: every run
    /// of `runs` is added, or none is. Each entry is what [`submit`](Self::submit) takes,
    /// `(workflow, input, initial state, idempotency key)`; answers the run ids in the
    /// order of `runs`. An entry whose idempotency key was used before (earlier, or by an
    /// entry before it in `runs`) adds nothing and answers that run's id. The queue's
    /// workers are woken once.
    ///
    /// Batches of about a hundred runs cut the submission's commits a hundredfold; a
    /// batch of thousands is one long statement that holds its new rows' locks until it
    /// ends. An empty `runs` sends nothing.
    ///
    /// ```no_run
    /// use cano::cluster::Client;
    /// use cano::prelude::*;
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)]
    /// struct Order { id: u64 }
    ///
    /// #[derive(Serialize)]
    /// enum Step { Charge }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), CanoError> {
    /// let client = Client::new(PostgresCheckpointStore::connect("postgresql://cano@db/app").await?);
    /// let orders: Vec<(Order, String)> =
    ///     (0..100).map(|id| (Order { id }, format!("order-{id}"))).collect();
    /// let runs: Vec<_> = orders
    ///     .iter()
    ///     .map(|(order, key)| ("order", order, &Step::Charge, Some(key.as_str())))
    ///     .collect();
    /// let ids = client.submit_batch(&runs).await?;
    /// assert_eq!(ids.len(), 100);
    /// # Ok(()) }
    /// ```
    ///
    /// Dropping the future abandons the call: the statement, once sent, adds every run or
    /// none, as the server decides (submit with idempotency keys to make trying again
    /// safe).
    ///
    /// # Errors
    /// [`CanoError::Configuration`] when an input or a state does not serialize as JSON
    /// (or holds a NUL character), before anything is sent;
    /// [`CanoError::CheckpointStore`] when the database cannot be reached.
    pub async fn submit_batch<I, S>(
        &self,
        runs: &[(&str, &I, &S, Option<&str>)],
    ) -> Result<Vec<String>, CanoError>
    where
        I: Serialize + ?Sized,
        S: Serialize + ?Sized,
    {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let mut workflows = Vec::with_capacity(runs.len());
        let mut inputs = Vec::with_capacity(runs.len());
        let mut initials = Vec::with_capacity(runs.len());
        let mut keys = Vec::with_capacity(runs.len());
        for &(workflow, input, initial_state, key) in runs {
            workflows.push(workflow);
            inputs.push(to_json("input", workflow, input)?);
            initials.push(to_json("initial state", workflow, initial_state)?);
            keys.push(key);
        }
        let conn = self.store.connection().await?;
        let failed = conn.on_cluster_error();
        let submit = conn.statement(SUBMIT_BATCH).await.map_err(&failed)?;
        let rows = conn
            .client
            .query(
                &submit,
                &[
                    &self.queue,
                    &workflows,
                    &inputs,
                    &initials,
                    &keys,
                    &READY_CHANNEL,
                ],
            )
            .await
            .map_err(&failed)?;
        let mut ids = Vec::with_capacity(runs.len());
        for (row, key) in rows.iter().zip(&keys) {
            let id = match row.try_get::<_, Option<String>>(0).map_err(&failed)? {
                Some(id) => id,
                // A key taken by an entry before it in the batch, or by a run committed
                // while the statement ran: the statement's snapshot does not show it.
                None => conn
                    .client
                    .query_one(BY_KEY, &[key])
                    .await
                    .map_err(&failed)?
                    .try_get(0)
                    .map_err(&failed)?,
            };
            ids.push(id);
        }
        Ok(ids)
    }
}

/// The error for a `what` (cancel, retry) of a run the cluster does not have.
fn no_such_run(run_id: &str, what: &str) -> CanoError {
    CanoError::configuration(format!(
        "cluster: there is no run {run_id:?} to {what} (never submitted, or pruned); use the \
         id `submit` answered"
    ))
}

/// `value` (the run's `what`) as JSON text for a `jsonb` column.
pub(super) fn to_json<T: Serialize + ?Sized>(
    what: &str,
    workflow: &str,
    value: &T,
) -> Result<String, CanoError> {
    let text = serde_json::to_string(value).map_err(|e| {
        CanoError::configuration(format!(
            "cluster: the {what} of a run of {workflow:?} does not serialize as JSON: {e}"
        ))
    })?;
    if text.contains("\\u0000") {
        return Err(CanoError::configuration(format!(
            "cluster: the {what} of a run of {workflow:?} holds a NUL character, which \
             PostgreSQL's jsonb cannot store; remove it"
        )));
    }
    Ok(text)
}
