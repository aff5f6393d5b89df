//! The worker loop: claim ready runs, run them under leases kept alive by a heartbeat,
//! record how they ended, and make the runs of dead workers ready again.

use super::registry::{Registry, RunContext};
use super::writers::Slot;
use super::{CANCEL_CHANNEL, DEFAULT_QUEUE, READY_CHANNEL};
use crate::cancel::{CancellationHandle, CancellationToken};
use crate::error::CanoError;
use crate::observer::WorkflowObserver;
use crate::recovery::postgres::lease::lease_upsert;
use crate::recovery::postgres::{
    Batcher, Lease, PostgresCheckpointStore, SIGNAL_CHANNEL, WriteBatch, answered_each, gather,
    retried,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

/// Take up to `$2` ready runs of queue `$1` for worker `$3`, oldest first, skipping runs
/// another worker is taking at the same moment, and their leases for `$4` seconds, in
/// one statement (one commit). A run picked whose lease another worker still holds (it
/// stopped answering) stays ready, with a note saying so, for a later claim.
static CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH picked AS (
            SELECT run_id AS id FROM cano_cluster_runs
            WHERE status = 'ready' AND queue = $1
            -- The ready index's order: no sort of every ready run (runs submitted
            -- together, in one transaction, come in the index's order).
            ORDER BY submitted_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        ), leased AS (
            {}
        ), still_held AS (
            UPDATE cano_cluster_runs AS c
            SET error = 'cluster: the run is still leased to a worker that stopped \
                         answering; it is tried again once that lease ends'
            FROM picked
            WHERE c.run_id = picked.id
              AND picked.id NOT IN (SELECT workflow_id FROM leased)
        )
        UPDATE cano_cluster_runs AS c
        SET status = 'running', worker = $3, attempts = c.attempts + 1, heartbeat_at = now()
        FROM leased WHERE c.run_id = leased.workflow_id
        RETURNING c.run_id, c.workflow, c.input::text, c.initial_state::text, c.attempts,
                  c.cancel_requested_at IS NOT NULL,
                  EXISTS (SELECT 1 FROM cano_checkpoints WHERE workflow_id = c.run_id),
                  leased.epoch, leased.lease_until",
        lease_upsert("SELECT id FROM picked", "$3", "$4")
    )
});

/// Take the queue `$1`'s claim lock until the transaction ends. Its own statement: the
/// count after it must see the claims committed while it waited (a statement's snapshot
/// is taken when it starts).
const QUEUE_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('cano_cluster_queue:' || $1))";

/// How many runs of queue `$1` are running.
const QUEUE_RUNNING: &str =
    "SELECT count(*) FROM cano_cluster_runs WHERE queue = $1 AND status = 'running'";

/// Make ready again (or park, after `$2` attempts) the running runs of queue `$1` whose
/// worker gave no sign of life for `$3` seconds and whose lease has ended.
const REAP: &str = "
    UPDATE cano_cluster_runs AS c
    SET status = CASE WHEN c.attempts >= $2 THEN 'parked' ELSE 'ready' END,
        error = CASE WHEN c.attempts >= $2::integer THEN
                    format('cluster: parked after %s attempts: each time, the worker running it \
                            (last %s) stopped without recording an outcome (it died, hung or \
                            lost its lease)', c.attempts, c.worker)
                    || coalesce('; the last error: ' || c.error, '')
                ELSE c.error END,
        finished_at = CASE WHEN c.attempts >= $2 THEN now() END,
        heartbeat_at = NULL
    WHERE c.status = 'running' AND c.queue = $1
      AND c.heartbeat_at < now() - make_interval(secs => $3)
      AND NOT EXISTS (
          SELECT 1 FROM cano_runs AS r
          WHERE r.workflow_id = c.run_id AND r.owner IS NOT NULL AND r.lease_until > now())";

/// Make ready again the waiting runs of queue `$1` whose wake time passed, whose signal
/// is pending or that a client asked to cancel; answers how many.
const WAKE: &str = "
    UPDATE cano_cluster_runs AS c
    SET status = 'ready', wake_at = NULL, waiting_for = NULL
    WHERE c.status = 'waiting' AND c.queue = $1
      AND (c.wake_at <= now()
           OR c.cancel_requested_at IS NOT NULL
           OR (c.waiting_for IS NOT NULL AND EXISTS (
                   SELECT 1 FROM cano_signals AS s
                   WHERE s.workflow_id = c.run_id AND s.name = c.waiting_for)))";

/// Run `$1` (attempt `$3` of worker `$2`) waits, held by no worker: until `$4` (ms since
/// the Unix epoch; `NULL`: no deadline) or for the signal `$5`. The attempt does not
/// count. Nothing when the run is no longer that attempt's.
const PARK: &str = "
    UPDATE cano_cluster_runs
    SET status = 'waiting', attempts = attempts - 1, heartbeat_at = NULL,
        wake_at = to_timestamp($4::double precision / 1000), waiting_for = $5
    WHERE run_id = $1 AND worker = $2 AND attempts = $3 AND status = 'running'";

/// The heartbeat of worker `$2`'s runs `$1`; answers those asked to cancel.
const HEARTBEAT: &str = "
    UPDATE cano_cluster_runs SET heartbeat_at = now()
    WHERE run_id = ANY($1) AND worker = $2 AND status = 'running'
    RETURNING run_id, cancel_requested_at IS NOT NULL";

/// The owner of each of the runs `$1` (`NULL`: released).
const OWNERS: &str = "SELECT workflow_id, owner FROM cano_runs WHERE workflow_id = ANY($1)";

/// Record the ends of runs of worker `$1`: run `$2[k]`'s attempt `$3[k]` ended with status
/// `$4[k]`, final state `$5[k]` (JSON text), error `$6[k]`; its lease at epoch `$8[k]`
/// released, and with `$7[k]` its log cleared, in the same transaction. For each run:
/// its row is locked first; the lease is released (and the log, signals and failure
/// mark deleted) only if the run is still that attempt's and the lease still live at
/// that epoch; the outcome is recorded only if the run is still that attempt's and, when
/// its log is to be cleared, the clear was allowed. One answer per run, in order: whether
/// it was recorded. One statement (one commit) for a batch of runs (group commit) or one.
/// The lease is released here, not after: a worker whose slot is free again may claim
/// the run anew at once (a retry), and a release sent after that claim would end the
/// new lease, which has the same epoch when the same worker holds it.
const FINISH_MANY: &str = "
    WITH input AS MATERIALIZED (
        SELECT * FROM unnest($2::text[], $3::integer[], $4::text[], $5::text[], $6::text[],
                             $7::boolean[], $8::bigint[])
            WITH ORDINALITY AS i(run_id, attempt, status, final_state, error, clear, epoch, n)
    ), target AS MATERIALIZED (
        SELECT r.run_id FROM cano_cluster_runs r JOIN input i ON i.run_id = r.run_id
        WHERE r.worker = $1 AND r.attempts = i.attempt AND r.status = 'running'
        ORDER BY r.run_id
        FOR UPDATE OF r
    ), released AS MATERIALIZED (
        UPDATE cano_runs l SET owner = NULL, lease_until = now(), released_at = now()
        FROM input i
        WHERE l.workflow_id = i.run_id AND l.epoch = i.epoch
          AND l.owner IS NOT NULL AND l.lease_until > now()
          AND i.run_id IN (SELECT run_id FROM target)
        RETURNING l.workflow_id
    ), cleared AS MATERIALIZED (
        SELECT i.run_id FROM input i JOIN released r ON r.workflow_id = i.run_id WHERE i.clear
    ), logs AS (
        DELETE FROM cano_checkpoints WHERE workflow_id IN (SELECT run_id FROM cleared)
    ), signals AS (
        DELETE FROM cano_signals WHERE workflow_id IN (SELECT run_id FROM cleared)
    ), failures AS (
        DELETE FROM cano_run_failures WHERE workflow_id IN (SELECT run_id FROM cleared)
    ), finished AS (
        UPDATE cano_cluster_runs r
        SET status = i.status, final_state = (i.final_state)::jsonb, error = i.error,
            finished_at = now(), heartbeat_at = NULL
        FROM input i, target t
        WHERE r.run_id = i.run_id AND t.run_id = i.run_id
          AND (NOT i.clear OR i.run_id IN (SELECT run_id FROM cleared))
        RETURNING r.run_id
    )
    SELECT EXISTS (SELECT 1 FROM finished f WHERE f.run_id = i.run_id)
    FROM input i ORDER BY i.n";

/// One run's outcome, for [`FINISH_MANY`].
struct Finish {
    run_id: String,
    attempt: i32,
    status: String,
    final_state: Option<String>,
    error: Option<String>,
    clear: bool,
    epoch: i64,
}

/// Records batches of outcomes ([`FINISH_MANY`]) through a clone of the worker's store
/// (held by the batch task, which ends with the worker's queue).
struct Finishes(PostgresCheckpointStore);

impl Finishes {
    /// One try: whether each run was recorded, or the error and whether trying again may
    /// help.
    async fn write_once(&self, batch: &[Finish]) -> Result<Vec<bool>, (CanoError, bool)> {
        let conn = self.0.connection().await.map_err(|e| (e, false))?;
        let on_error = conn.on_cluster_error();
        let failed = |e: tokio_postgres::Error| {
            let retry = crate::recovery::postgres::worth_retrying(&e);
            (on_error(e), retry)
        };
        let statement = conn.statement(FINISH_MANY).await.map_err(&failed)?;
        let ids: Vec<&str> = batch.iter().map(|f| f.run_id.as_str()).collect();
        let attempts: Vec<i32> = batch.iter().map(|f| f.attempt).collect();
        let statuses: Vec<&str> = batch.iter().map(|f| f.status.as_str()).collect();
        let finals: Vec<Option<&str>> = batch.iter().map(|f| f.final_state.as_deref()).collect();
        let errors: Vec<Option<&str>> = batch.iter().map(|f| f.error.as_deref()).collect();
        let clears: Vec<bool> = batch.iter().map(|f| f.clear).collect();
        let epochs: Vec<i64> = batch.iter().map(|f| f.epoch).collect();
        let rows = conn
            .client
            .query(
                &statement,
                &[
                    &self.0.worker_id(),
                    &ids,
                    &attempts,
                    &statuses,
                    &finals,
                    &errors,
                    &clears,
                    &epochs,
                ],
            )
            .await
            .map_err(&failed)?;
        answered_each("cluster: a batch of run outcomes", batch.len(), rows.len())?;
        rows.iter()
            .map(|row| row.try_get::<_, bool>(0).map_err(&failed))
            .collect()
    }
}

impl WriteBatch for Finishes {
    type Item = Finish;
    type Answer = Result<bool, CanoError>;

    async fn write(&self, batch: &[Finish]) -> Vec<Result<bool, CanoError>> {
        // A batch refused for a deadlock (with a heartbeat, say) is tried again.
        match retried(|| self.write_once(batch)).await {
            Ok(recorded) => recorded.into_iter().map(Ok).collect(),
            Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}

/// Give run `$1` (attempt `$3` of worker `$2`) back: ready again with error `$4` noted, or
/// parked after `$5` attempts; `$6` true: the attempt does not count (a shutdown).
const REQUEUE: &str = "
    UPDATE cano_cluster_runs
    SET status = CASE WHEN NOT $6::boolean AND attempts >= $5::integer THEN 'parked'
                      ELSE 'ready' END,
        attempts = CASE WHEN $6::boolean THEN attempts - 1 ELSE attempts END,
        error = CASE WHEN NOT $6::boolean AND attempts >= $5::integer THEN
                    format('cluster: parked after %s attempts; the last error: %s',
                           attempts, $4::text)
                ELSE coalesce($4::text, error) END,
        finished_at = CASE WHEN NOT $6::boolean AND attempts >= $5::integer THEN now() END,
        heartbeat_at = NULL
    WHERE run_id = $1 AND worker = $2 AND attempts = $3 AND status = 'running'";

/// How often a worker looks for ready runs unless set with [`Worker::with_poll_interval`].
const DEFAULT_POLL: Duration = Duration::from_millis(500);

/// Attempts before a run is parked unless set with [`Worker::with_max_attempts`].
const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The shortest timer wait a worker gives back unless set with
/// [`Worker::with_release_waits_after`].
const DEFAULT_RELEASE_AFTER: Duration = Duration::from_secs(1);

/// A run of this worker started waiting (what [`WorkflowObserver::on_wait`] says).
#[derive(Debug, Clone)]
pub(super) struct Wait {
    deadline_ms: Option<u64>,
    signal: Option<String>,
}

/// The observer a worker gives the workflows it runs: tells the run's task that the run
/// started waiting.
pub(super) struct WaitHook(pub(super) mpsc::UnboundedSender<Wait>);

impl WorkflowObserver for WaitHook {
    fn on_wait(&self, _workflow_id: &str, deadline_ms: Option<u64>, signal: Option<&str>) {
        let _ = self.0.send(Wait {
            deadline_ms,
            signal: signal.map(str::to_owned),
        });
    }
}

/// Why a worker stops a run it is running.
#[derive(Debug, Clone)]
enum Stop {
    /// Its lease is no longer this worker's: drop it, another worker resumes it.
    LeaseLost,
    /// The worker shuts down: hand it back.
    Shutdown,
    /// The run waits: give it back until its wait is over.
    Wait(Wait),
    /// A write of the run failed (the database, or a fence: another worker took the run
    /// over): the run goes no further here, so that it neither starts another task nor
    /// rolls back on this worker; it is tried again from its log.
    StoreFailed(CanoError),
}

/// Where the lease of a run in hand is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseState {
    /// Renewed by the heartbeat.
    Renewing,
    /// Released by the run's final clear: the run is recording its outcome.
    Released,
    /// Expired or taken over: no longer renewed, and the run's heartbeat stops.
    Lost,
}

/// A run claimed for this worker, to run.
struct Claimed {
    lease: Lease,
    workflow: String,
    input: String,
    initial: String,
    attempt: i32,
    /// The run's token: cancelled by [`Client::cancel`](super::Client::cancel).
    token: CancellationToken,
    /// Whether the run has a log to resume.
    has_log: bool,
    /// Where the run's task says that the run's execution is over (only its outcome is
    /// left to record): its slot is free.
    executed: mpsc::UnboundedSender<(String, Id)>,
    /// Where the worker loop stops the run.
    stopped: watch::Receiver<Option<Stop>>,
    /// The run's hold on one of the worker's slots.
    slot: Arc<Slot>,
}

/// A run this worker is running.
struct Held {
    lease: Lease,
    lease_state: LeaseState,
    stop: watch::Sender<Option<Stop>>,
    /// Cancels the run (asked for by [`Client::cancel`](super::Client::cancel)).
    cancel: CancellationHandle,
    /// Whether the run's execution is not over yet: from its claim until only its
    /// outcome is left to record (it may be waiting for a slot meanwhile, when claimed
    /// ahead). Its lease is renewed from its claim until its outcome is recorded.
    executing: bool,
    /// The task running it: a run's id may be claimed again (retried, say) while the
    /// task of its previous attempt still records that attempt's outcome.
    task: Id,
}

/// The tasks of the runs a worker's loop started ([`Worker::start`]).
struct RunTasks {
    tasks: JoinSet<Done>,
    /// Each task's run and attempt.
    task_runs: HashMap<Id, (String, i32)>,
    /// Where a run's task says its execution is over.
    executed: mpsc::UnboundedSender<(String, Id)>,
    /// The worker's slots: the runs executing at once; a run claimed ahead waits for one.
    slots: Arc<Semaphore>,
}

/// What a finished run task answers: its run's id.
type Done = String;

/// What a claim answers: for each run claimed, its id, workflow, input, initial state,
/// attempt, whether a cancel was asked for, whether it has a log, and its lease.
type Claims = Result<Vec<(String, String, String, String, i32, bool, bool, Lease)>, CanoError>;

/// Runs registered workflows from the cluster's queue: see the [module docs](super).
///
/// ```no_run
/// use cano::cancel::CancellationToken;
/// use cano::cluster::{Registry, Worker};
/// use cano::prelude::*;
/// use std::time::Duration;
///
/// # async fn f(registry: Registry) -> Result<(), CanoError> {
/// let store = PostgresCheckpointStore::connect("postgresql://cano@db/app")
///     .await?
///     .with_worker_id(format!("worker-{}", std::process::id()))
///     .with_lease_duration(Duration::from_secs(10));
/// let (stop, token) = CancellationToken::new();
/// let worker = Worker::new(store, registry).with_concurrency(16);
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     stop.cancel(); // hands this worker's runs back
/// });
/// worker.run(token).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Worker {
    store: PostgresCheckpointStore,
    registry: Arc<Registry>,
    concurrency: usize,
    queue: String,
    poll_interval: Duration,
    max_attempts: u32,
    queue_limit: Option<usize>,
    on_error: Option<ErrorHook>,
    release_after: Option<Duration>,
    retention: Option<Duration>,
    prefetch: usize,
    /// With a store that has group commit: the runs' outcomes are recorded in batches.
    finishes: Arc<Batcher<Finishes>>,
}

/// What [`Worker::with_error_hook`] is given.
type ErrorHook = Arc<dyn Fn(&str, &CanoError) + Send + Sync>;

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.store.worker_id())
            .field("registry", &self.registry)
            .field("concurrency", &self.concurrency)
            .field("queue", &self.queue)
            .field("poll_interval", &self.poll_interval)
            .field("max_attempts", &self.max_attempts)
            .field("queue_limit", &self.queue_limit)
            .field("release_after", &self.release_after)
            .field("retention", &self.retention)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker running `registry`'s workflows from the queue `"default"`, one run at a
    /// time, as `store`'s [worker id](PostgresCheckpointStore::with_worker_id), with its
    /// [lease duration](PostgresCheckpointStore::with_lease_duration). Give each worker
    /// a distinct worker id.
    pub fn new(store: PostgresCheckpointStore, registry: impl Into<Arc<Registry>>) -> Self {
        Self {
            store,
            registry: registry.into(),
            concurrency: 1,
            queue: DEFAULT_QUEUE.to_owned(),
            poll_interval: DEFAULT_POLL,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            queue_limit: None,
            on_error: None,
            release_after: Some(DEFAULT_RELEASE_AFTER),
            retention: None,
            prefetch: 0,
            finishes: Arc::default(),
        }
    }

    /// Delete the runs (of any queue) that ended more than `older_than` ago, with their
    /// logs, signals and leases: [`Client::prune`](super::Client::prune) in batches of
    /// 1,000, every `older_than` (at least every second, at most every minute). Several
    /// workers may prune at once; they skip each other's rows. Default: nothing is
    /// deleted.
    pub fn with_retention(mut self, older_than: Duration) -> Self {
        self.retention = Some(older_than);
        self
    }

    /// Give back a run that waits for a signal, or sleeps on a timer for at least `d`
    /// (default 1 s): it then holds no slot of any worker, and is ready again when the
    /// signal is pending, the timer's deadline passes (found within a poll interval) or a
    /// cancel is asked for; the worker that claims it resumes the wait from the run's
    /// log. A run given back is dropped like a run whose process died: resources it set
    /// up are not torn down. `None` keeps every waiting run in its slot.
    pub fn with_release_waits_after(mut self, d: Option<Duration>) -> Self {
        self.release_after = d;
        self
    }

    /// Run up to `n` runs at once (at least 1; default 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Claim up to `n` runs ahead of the free slots (default 0). A run claimed ahead is
    /// started at once but waits for a slot before any of its work: a fresh run whose
    /// first state records its entry first (a checkpointed task, split, timer, signal,
    /// stepped or compensatable state) records that entry, then waits; any other run
    /// waits before it starts. So when a slot frees, the next run goes on at once, its
    /// claim and first commit already done. The worker still executes at most
    /// [`concurrency`](Self::with_concurrency) runs' work at once and holds up to
    /// `concurrency + n` runs.
    ///
    /// The price: runs wait on this worker while another may have a free slot; a run's
    /// total timeout counts from its start, so also while it waits; its observers see
    /// its first state entered before it has a slot. A run claimed ahead counts an
    /// attempt and its lease is renewed like a running one's; if the worker dies it is
    /// resumed elsewhere after its lease, and on shutdown it is handed back at once, the
    /// attempt not counted.
    ///
    /// ```
    /// # use cano::cluster::{Registry, Worker};
    /// # fn f(store: cano::PostgresCheckpointStore) {
    /// let worker = Worker::new(store, Registry::new())
    ///     .with_concurrency(16)
    ///     .with_prefetch(16);
    /// # }
    /// ```
    pub fn with_prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// Start a run of the queue only while fewer than `n` of its runs are running, on all
    /// workers together (default: no limit; at least 1). Give every worker of the queue
    /// the same limit. The workers' claims of the queue then take turns (an advisory lock
    /// per queue), and the runs of a dead worker count until they are made ready again.
    pub fn with_queue_limit(mut self, n: usize) -> Self {
        self.queue_limit = Some(n.max(1));
        self
    }

    /// Call `hook` with each error the worker's loop rides out (what it was doing, and
    /// the error): the database unreachable, a lease that could not be renewed or
    /// released, an outcome that could not be recorded. The loop goes on; the hook is
    /// for logs and metrics, and must be quick. With the feature `tracing`, each is also
    /// a `tracing` warning.
    ///
    /// ```
    /// # use cano::cluster::{Registry, Worker};
    /// # fn f(store: cano::PostgresCheckpointStore) {
    /// let worker = Worker::new(store, Registry::new())
    ///     .with_error_hook(|doing, error| eprintln!("worker: {doing} failed: {error}"));
    /// # }
    /// ```
    pub fn with_error_hook(
        mut self,
        hook: impl Fn(&str, &CanoError) + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Take runs from `queue` (default `"default"`).
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How often to look for ready runs and for runs of dead workers (default: 500 ms;
    /// at least 1 ms). A dead worker's run is ready again within its lease duration plus
    /// this.
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Park a run, with its error, once it was claimed `n` times without ending (its
    /// worker died, lost the lease or could not reach the database each time); default 5,
    /// at least 1.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Claim and run runs until `shutdown` fires, then hand the runs in hand back (their
    /// leases released, ready again at once, the attempt not counted) and return. A
    /// claim in flight then is waited for, and its runs handed back as well.
    ///
    /// Database trouble does not end the loop: it tries again each poll interval (runs
    /// whose leases could not be renewed are dropped once the leases are lost, and are
    /// resumed by whichever worker claims them next).
    ///
    /// Dropping the future (or aborting its task) drops every run in hand at once, as if
    /// the process died: their leases expire and other workers resume them.
    ///
    /// # Errors
    /// None today: it returns `Ok` once the runs in hand are handed back. The `Result`
    /// leaves room for errors that must end a worker.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), CanoError> {
        let lease = self.store.lease_duration();
        let heartbeat_every = (lease / 3).max(Duration::from_millis(5));
        let mut held: HashMap<String, Held> = HashMap::new();
        let mut next_poll = Instant::now();
        let mut next_heartbeat = Instant::now() + heartbeat_every;
        let prune_every = self
            .retention
            .map(|age| age.clamp(Duration::from_secs(1), Duration::from_secs(60)));
        let mut next_prune = Instant::now();
        // Dead workers' runs and waits that are over are looked for every poll interval
        // (and at a signal); ready runs also whenever a slot frees or a run is announced.
        let mut next_sweep = Instant::now();
        // The claim in flight, if any, and whether to look for runs again once it is
        // answered (a slot freed or a run was announced meanwhile).
        let mut claiming: Option<Pin<Box<dyn Future<Output = Claims> + Send + '_>>> = None;
        let mut poll_after_claim = false;
        let woken = Arc::new(Notify::new());
        let signalled = Arc::new(Notify::new());
        let (cancels, mut cancel_requests) = mpsc::unbounded_channel();
        let (executed, mut executions) = mpsc::unbounded_channel();
        let mut runs = RunTasks {
            tasks: JoinSet::new(),
            task_runs: HashMap::new(),
            executed,
            slots: Arc::new(Semaphore::new(self.concurrency)),
        };
        let _listening = AbortOnDrop(tokio::spawn(listen(
            self.store.clone(),
            self.queue.clone(),
            Wakeups {
                ready: Arc::clone(&woken),
                signalled: Arc::clone(&signalled),
                cancels,
            },
        )));
        loop {
            let now = Instant::now();
            if now >= next_heartbeat {
                next_heartbeat = now + heartbeat_every;
                self.heartbeat(&mut held).await;
            }
            if let (Some(every), Some(age)) = (prune_every, self.retention)
                && now >= next_prune
            {
                next_prune = now + every;
                self.prune(age).await;
            }
            if now >= next_sweep {
                next_sweep = now + self.poll_interval;
                self.reap().await;
                self.wake().await;
                next_poll = now;
            }
            if now >= next_poll {
                next_poll = now + self.poll_interval;
                let executing = held.values().filter(|run| run.executing).count();
                let wanted = (self.concurrency + self.prefetch).saturating_sub(executing);
                // With runs claimed ahead, claim again once half of those waiting for a
                // slot have one: fewer, larger claims.
                let waiting = executing.saturating_sub(self.concurrency);
                if claiming.is_some() {
                    // One claim at a time: look again once it is answered.
                    poll_after_claim = true;
                } else if wanted > 0 && waiting <= self.prefetch / 2 {
                    claiming = Some(Box::pin(self.claim(wanted)));
                }
            }
            let mut wake = next_poll.min(next_heartbeat).min(next_sweep);
            if prune_every.is_some() {
                wake = wake.min(next_prune);
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(wake) => {}
                // The claim in flight was answered (the loop went on meanwhile: a slow
                // claim holds up no heartbeat).
                claimed = async {
                    match claiming.as_mut() {
                        Some(claim) => claim.await,
                        None => std::future::pending().await,
                    }
                }, if claiming.is_some() => {
                    claiming = None;
                    self.start(claimed, &mut held, &mut runs);
                    if std::mem::take(&mut poll_after_claim) {
                        next_poll = Instant::now();
                    }
                }
                // A run of this queue was submitted or handed back: look now.
                () = woken.notified() => next_poll = Instant::now(),
                // A signal was sent: a waiting run may be ready.
                () = signalled.notified() => next_sweep = Instant::now(),
                // A client asked to cancel a run (maybe one of ours).
                Some(run_id) = cancel_requests.recv() => {
                    if let Some(run) = held.get(&run_id) {
                        run.cancel.cancel();
                    }
                }
                // A run's execution is over; its outcome is being recorded (in a batch
                // with others, with group commit): its slot is free.
                Some(run) = executions.recv() => {
                    let mut ended = vec![run];
                    // Runs whose executions end together (woken by one commit) free
                    // their slots together, and are claimed for in one statement.
                    gather(&mut executions, &mut ended).await;
                    for (run_id, task) in ended {
                        if let Some(run) = held.get_mut(&run_id)
                            && run.task == task
                        {
                            run.executing = false;
                        }
                    }
                    next_poll = Instant::now();
                }
                Some(joined) = runs.tasks.join_next_with_id(), if !runs.tasks.is_empty() => {
                    self.joined(joined, &mut held, &mut runs.task_runs).await;
                    // And every other run that ended meanwhile: their slots are claimed
                    // together.
                    while let Some(joined) = runs.tasks.try_join_next_with_id() {
                        self.joined(joined, &mut held, &mut runs.task_runs).await;
                    }
                    // Slots are free: look for work now.
                    next_poll = Instant::now();
                }
            }
        }
        for run in held.values() {
            let _ = run.stop.send(Some(Stop::Shutdown));
        }
        // The runs of a claim in flight are handed back once it is answered (the runs in
        // hand meanwhile, by their tasks). Dropped instead, the claim could still commit
        // in the database, and its runs would wait for their leases to end.
        if let Some(claim) = claiming {
            self.start(claim.await, &mut held, &mut runs);
            for run in held.values() {
                let _ = run.stop.send(Some(Stop::Shutdown));
            }
        }
        while let Some(joined) = runs.tasks.join_next_with_id().await {
            self.joined(joined, &mut held, &mut runs.task_runs).await;
        }
        Ok(())
    }

    /// Report database trouble the loop rides out: to the error hook, and as a `tracing`
    /// warning (feature `tracing`).
    fn report(&self, doing: &str, error: &CanoError) {
        warn(doing, error);
        if let Some(hook) = &self.on_error {
            hook(doing, error);
        }
    }

    /// Renew the leases of the runs in hand and refresh their heartbeat; stop the runs
    /// another worker took over.
    ///
    /// A lease that could not be renewed was released by the run's own final clear (the
    /// run is finishing: its heartbeat goes on until its outcome is recorded), expired
    /// (its heartbeat stops, so that another worker may take it over; its next write is
    /// fenced) or taken over (the run is stopped at once).
    async fn heartbeat(&self, held: &mut HashMap<String, Held>) {
        let mut leases: Vec<Lease> = held
            .values()
            .filter(|run| run.lease_state == LeaseState::Renewing)
            .map(|run| run.lease.clone())
            .collect();
        match self.store.renew_all(&mut leases).await {
            Ok(lost) => {
                for lease in leases {
                    let id = lease.workflow_id().to_owned();
                    if let Some(run) = held.get_mut(&id) {
                        if lost.contains(&id) {
                            run.lease_state = LeaseState::Lost;
                        } else {
                            run.lease = lease;
                        }
                    }
                }
            }
            Err(e) => self.report("renewing the leases of the runs in hand", &e),
        }
        let lost: Vec<&str> = held
            .iter()
            .filter(|(_, run)| run.lease_state != LeaseState::Renewing)
            .map(|(id, _)| id.as_str())
            .collect();
        if !lost.is_empty() {
            match self.owners(&lost).await {
                Ok(owners) => {
                    let me = self.store.worker_id();
                    for (id, owner) in owners {
                        let Some(run) = held.get_mut(&id) else {
                            continue;
                        };
                        run.lease_state = match owner.as_deref() {
                            None => LeaseState::Released,
                            Some(owner) if owner == me => LeaseState::Lost,
                            Some(_) => {
                                let _ = run.stop.send(Some(Stop::LeaseLost));
                                LeaseState::Lost
                            }
                        };
                    }
                }
                Err(e) => self.report("reading who holds the runs whose leases were lost", &e),
            }
        }
        let ids: Vec<&str> = held
            .iter()
            .filter(|(_, run)| run.lease_state != LeaseState::Lost)
            .map(|(id, _)| id.as_str())
            .collect();
        if ids.is_empty() {
            return;
        }
        let beat = async {
            let conn = self.store.connection().await?;
            let failed = conn.on_cluster_error();
            let rows = conn
                .client
                .query(HEARTBEAT, &[&ids, &self.store.worker_id()])
                .await
                .map_err(&failed)?;
            rows.iter()
                .filter_map(|row| match row.try_get::<_, bool>(1) {
                    Ok(true) => Some(row.try_get::<_, String>(0).map_err(&failed)),
                    Ok(false) => None,
                    Err(e) => Some(Err(failed(e))),
                })
                .collect::<Result<Vec<String>, CanoError>>()
        };
        match beat.await {
            // The fallback for a lost cancel notification.
            Ok(cancelled) => {
                for run_id in cancelled {
                    if let Some(run) = held.get(&run_id) {
                        run.cancel.cancel();
                    }
                }
            }
            Err(e) => self.report("refreshing the heartbeat of the runs in hand", &e),
        }
    }

    /// The lease owner (`None`: released) of each of `runs`.
    async fn owners(&self, runs: &[&str]) -> Result<Vec<(String, Option<String>)>, CanoError> {
        let conn = self.store.connection().await?;
        let failed = conn.on_cluster_error();
        let rows = conn.client.query(OWNERS, &[&runs]).await.map_err(&failed)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(&failed)?,
                    row.try_get(1).map_err(&failed)?,
                ))
            })
            .collect()
    }

    /// Make the runs of dead workers ready again (or park them).
    async fn reap(&self) {
        let max = i32::try_from(self.max_attempts).unwrap_or(i32::MAX);
        let secs = self.store.lease_duration().as_secs_f64();
        let reaped = async {
            let conn = self.store.connection().await?;
            conn.client
                .execute(REAP, &[&self.queue, &max, &secs])
                .await
                .map_err(conn.on_cluster_error())
        };
        if let Err(e) = reaped.await {
            self.report("looking for the runs of dead workers", &e);
        }
    }

    /// Delete runs that ended more than `age` ago, a batch at a time (at most ten
    /// batches: the rest at the next round, so that claims are not held up).
    async fn prune(&self, age: Duration) {
        const BATCH: usize = 1_000;
        let client = super::Client::new(self.store.clone());
        for _ in 0..10 {
            match client.prune(age, BATCH).await {
                Ok(n) if n < BATCH as u64 => return,
                Ok(_) => {}
                Err(e) => return self.report("deleting runs past their retention", &e),
            }
        }
    }

    /// Make ready again the waiting runs whose wait is over.
    async fn wake(&self) {
        let woken = async {
            let conn = self.store.connection().await?;
            conn.client
                .execute(WAKE, &[&self.queue])
                .await
                .map_err(conn.on_cluster_error())
        };
        if let Err(e) = woken.await {
            self.report("waking the runs whose wait is over", &e);
        }
    }

    /// Whether to give back a run that started waiting.
    fn releases(&self, wait: &Wait) -> bool {
        let Some(after) = self.release_after else {
            return false;
        };
        if wait.signal.is_some() {
            return true;
        }
        let now = crate::task::timer::wall_now_ms();
        wait.deadline_ms.is_some_and(|deadline| {
            deadline.saturating_sub(now) >= u64::try_from(after.as_millis()).unwrap_or(u64::MAX)
        })
    }

    /// Give back `lease`'s run, which waits: release the lease and record the wait.
    async fn release_wait(&self, lease: &Lease, attempt: i32, wait: &Wait) {
        self.release(lease).await;
        let deadline = wait.deadline_ms.map(|ms| ms as f64);
        let parked = async {
            let conn = self.store.connection().await?;
            conn.client
                .execute(
                    PARK,
                    &[
                        &lease.workflow_id(),
                        &self.store.worker_id(),
                        &attempt,
                        &deadline,
                        &wait.signal,
                    ],
                )
                .await
                .map_err(conn.on_cluster_error())
        };
        if let Err(e) = parked.await {
            // The run stays `running` without a lease: it is made ready again once its
            // heartbeat is old, and resumes its wait.
            self.report("giving back a waiting run", &e);
        }
    }

    /// Claim up to `wanted` ready runs with their leases (one statement), for
    /// [`start`](Self::start).
    async fn claim(&self, wanted: usize) -> Claims {
        let mut limit = i64::try_from(wanted).unwrap_or(i64::MAX);
        let sent = Instant::now();
        let claimed = async {
            self.store.no_nul_worker()?;
            let mut conn = self.store.connection().await?;
            let failed = conn.on_cluster_error();
            let claim = conn.statement(&CLAIM).await.map_err(&failed)?;
            let secs = self.store.lease_duration().as_secs_f64();
            let worker = self.store.worker_id();
            let rows = if let Some(queue_limit) = self.queue_limit {
                let tx = conn.client.transaction().await.map_err(&failed)?;
                // Claimers of the queue take turns, so that the count stays true until
                // the claim commits.
                tx.execute(QUEUE_LOCK, &[&self.queue])
                    .await
                    .map_err(&failed)?;
                let running: i64 = tx
                    .query_one(QUEUE_RUNNING, &[&self.queue])
                    .await
                    .map_err(&failed)?
                    .try_get(0)
                    .map_err(&failed)?;
                let room = i64::try_from(queue_limit).unwrap_or(i64::MAX) - running;
                limit = limit.min(room.max(0));
                let rows = if limit > 0 {
                    tx.query(&claim, &[&self.queue, &limit, &worker, &secs])
                        .await
                        .map_err(&failed)?
                } else {
                    Vec::new()
                };
                tx.commit().await.map_err(&failed)?;
                rows
            } else {
                // One statement, committed on its own: one round trip.
                conn.client
                    .query(&claim, &[&self.queue, &limit, &worker, &secs])
                    .await
                    .map_err(&failed)?
            };
            rows.iter()
                .map(|row| {
                    let run_id: String = row.try_get(0).map_err(&failed)?;
                    let lease = self.store.granted(
                        run_id.clone(),
                        row.try_get(7).map_err(&failed)?,
                        row.try_get(8).map_err(&failed)?,
                        sent,
                    );
                    Ok::<_, CanoError>((
                        run_id,
                        row.try_get::<_, String>(1).map_err(&failed)?,
                        row.try_get::<_, String>(2).map_err(&failed)?,
                        row.try_get::<_, String>(3).map_err(&failed)?,
                        row.try_get::<_, i32>(4).map_err(&failed)?,
                        row.try_get::<_, bool>(5).map_err(&failed)?,
                        row.try_get::<_, bool>(6).map_err(&failed)?,
                        lease,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        claimed.await
    }

    /// Start the runs a [`claim`](Self::claim) took (each waits for a slot: see
    /// [`Slot`]).
    fn start(&self, claimed: Claims, held: &mut HashMap<String, Held>, runs: &mut RunTasks) {
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(e) => return self.report("claiming ready runs", &e),
        };
        for (run_id, workflow, input, initial, attempt, cancel_requested, has_log, lease) in claimed
        {
            let (stop, stopped) = watch::channel(None);
            let (cancel, token) = CancellationToken::new();
            if cancel_requested {
                // Asked to cancel while it waited to be resumed: it runs no task, and
                // compensates the saga steps it completed.
                cancel.cancel();
            }
            let claimed = Claimed {
                lease: lease.clone(),
                workflow,
                input,
                initial,
                attempt,
                token,
                has_log,
                executed: runs.executed.clone(),
                stopped,
                slot: Arc::new(Slot::new(Arc::clone(&runs.slots))),
            };
            let worker = self.clone();
            let handle = runs
                .tasks
                .spawn(async move { worker.run_one(claimed).await });
            runs.task_runs
                .insert(handle.id(), (run_id.clone(), attempt));
            held.insert(
                run_id,
                Held {
                    lease,
                    lease_state: LeaseState::Renewing,
                    stop,
                    cancel,
                    executing: true,
                    task: handle.id(),
                },
            );
        }
    }

    /// Run one claimed run to its end (or until it is stopped) and record the outcome.
    async fn run_one(&self, claimed: Claimed) -> Done {
        let Claimed {
            lease,
            workflow,
            input,
            initial,
            attempt,
            token,
            has_log,
            executed,
            mut stopped,
            slot,
        } = claimed;
        let run_id = lease.workflow_id().to_owned();
        let cleared = Arc::new(AtomicBool::new(false));
        let (waits, mut waiting) = mpsc::unbounded_channel();
        let (store_failures, mut store_failed) = mpsc::unbounded_channel();
        let run = async {
            let parse = |what: &str, text: &str| {
                serde_json::from_str(text).map_err(|e| {
                    CanoError::checkpoint_store(format!(
                        "cluster: the {what} of run {run_id:?} is not JSON: {e}"
                    ))
                })
            };
            let context = RunContext {
                run_id: run_id.clone(),
                input: parse("input", &input)?,
                initial_state: parse("initial state", &initial)?,
                store: self.store.clone(),
                lease: lease.clone(),
                has_log,
                cleared: Arc::clone(&cleared),
                token,
                waits: self.release_after.is_some().then_some(waits),
                slot: Arc::clone(&slot),
                store_failures,
            };
            self.registry.run(&workflow, context).await
        };
        // Stopped before it started (a lease lost, a shutdown): it does not start.
        let early = stopped.borrow().clone();
        let outcome = if let Some(stop) = early {
            drop(run);
            Err(Some(stop))
        } else {
            tokio::pin!(run);
            loop {
                tokio::select! {
                    biased;
                    outcome = &mut run => break Ok(outcome),
                    stop = stopped.wait_for(Option::is_some) => {
                        break Err(stop.map(|s| s.clone()).ok().flatten());
                    }
                    Some(wait) = waiting.recv() => {
                        if self.releases(&wait) {
                            break Err(Some(Stop::Wait(wait)));
                        }
                    }
                    Some(error) = store_failed.recv() => break Err(Some(Stop::StoreFailed(error))),
                }
            }
        };
        slot.give_back();
        // With group commit, the worker claims the next runs while this one's outcome
        // waits for its batch. Without, it claims once the outcome is recorded (when the
        // task ends): claims and outcomes then take turns instead of contending, which
        // measured faster (`cluster_bench --scenario pg_3step`: 1,058 and 1,183 against
        // 952 and 976 runs/s, the host 87 % against 91 % busy). The loop is gone if the
        // send fails.
        if self.store.group_commits() {
            let _ = executed.send((run_id.clone(), tokio::task::id()));
        }
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(Some(Stop::Wait(wait))) => {
                // The wait is in the run's log: dropping the run here loses nothing.
                self.release_wait(&lease, attempt, &wait).await;
                return run_id;
            }
            Err(Some(Stop::Shutdown)) => {
                self.hand_back(&lease, attempt).await;
                return run_id;
            }
            // The worker loop is gone (its future dropped): stop here, as if the process
            // died; the lease expires and another worker resumes the run.
            Err(None) => return run_id,
            Err(Some(Stop::LeaseLost)) => {
                let error = "cluster: the run's lease was taken over by another worker";
                self.requeue(&run_id, attempt, Some(error), false).await;
                return run_id;
            }
            Err(Some(Stop::StoreFailed(e))) => {
                self.try_again_later(&lease, attempt, &e).await;
                return run_id;
            }
        };
        let clear = cleared.load(Ordering::Acquire);
        let recorded = match &outcome {
            Ok(end) => {
                let end = end.to_string();
                self.finish(&lease, attempt, "succeeded", Some(&end), None, clear)
                    .await
            }
            // The store failed (or fenced the run): not the workflow's fault, try again.
            Err(e) if e.category() == "checkpoint_store" => {
                self.try_again_later(&lease, attempt, e).await;
                return run_id;
            }
            Err(e) => {
                let status = if e.is_cancelled() {
                    "cancelled"
                } else {
                    "failed"
                };
                let error = e.to_string();
                self.finish(&lease, attempt, status, None, Some(&error), clear)
                    .await
            }
        };
        match recorded {
            // The lease was released with the outcome.
            Ok(true) => {}
            // The lease was lost before the outcome could be recorded: another worker
            // resumes the run (or this one, once it is ready again).
            Ok(false) => {
                let error = "cluster: the run ended but its lease was lost before its outcome \
                             was recorded";
                self.requeue(&run_id, attempt, Some(error), false).await;
            }
            // The heartbeat stops with this task: the run is made ready again and resumed
            // from its log.
            Err(e) => self.report("recording how a run ended", &e),
        }
        run_id
    }

    /// Record the end of attempt `attempt` of `lease`'s run and release `lease`, and with
    /// `clear`, clear its log (fenced by `lease`), in the same transaction (see
    /// [`FINISH_MANY`]). `false`: nothing was recorded, the run is no longer this
    /// attempt's or the lease was lost.
    async fn finish(
        &self,
        lease: &Lease,
        attempt: i32,
        status: &str,
        final_state: Option<&str>,
        error: Option<&str>,
        clear: bool,
    ) -> Result<bool, CanoError> {
        let run_id = lease.workflow_id();
        let epoch = i64::try_from(lease.epoch()).unwrap_or(i64::MAX);
        let finish = Finish {
            run_id: run_id.to_owned(),
            attempt,
            status: status.to_owned(),
            final_state: final_state.map(str::to_owned),
            error: error.map(str::to_owned),
            clear,
            epoch,
        };
        if self.store.group_commits() {
            let store = &self.store;
            return (self
                .finishes
                .submit(finish, || Finishes(store.clone()))
                .await)
                .unwrap_or_else(|| {
                    Err(CanoError::checkpoint_store(
                        "cluster: the worker stopped before the run's outcome was recorded",
                    ))
                });
        }
        // One statement, prepared once: one round trip and one commit.
        let mut recorded = Finishes(self.store.clone()).write(&[finish]).await;
        recorded.pop().unwrap_or_else(|| {
            Err(CanoError::checkpoint_store(
                "cluster: the run's outcome was not answered",
            ))
        })
    }

    /// A write of attempt `attempt` of `lease`'s run failed with `error`: release the
    /// lease (if still the run's) and make the run ready again (the attempt counted), to
    /// be resumed from its log.
    async fn try_again_later(&self, lease: &Lease, attempt: i32, error: &CanoError) {
        self.release(lease).await;
        self.requeue(
            lease.workflow_id(),
            attempt,
            Some(&error.to_string()),
            false,
        )
        .await;
    }

    /// Make `run_id`'s attempt `attempt` ready again (parked after too many attempts);
    /// `shutdown`: the attempt does not count.
    async fn requeue(&self, run_id: &str, attempt: i32, error: Option<&str>, shutdown: bool) {
        let max = i32::try_from(self.max_attempts).unwrap_or(i32::MAX);
        let requeued = async {
            let conn = self.store.connection().await?;
            conn.client
                .execute(
                    REQUEUE,
                    &[
                        &run_id,
                        &self.store.worker_id(),
                        &attempt,
                        &error,
                        &max,
                        &shutdown,
                    ],
                )
                .await
                .map_err(conn.on_cluster_error())
        };
        if let Err(e) = requeued.await {
            self.report("giving a run back", &e);
        }
    }

    /// Release `lease` and make its run ready again without counting the attempt; wake
    /// the queue's workers.
    async fn hand_back(&self, lease: &Lease, attempt: i32) {
        self.release(lease).await;
        self.requeue(lease.workflow_id(), attempt, None, true).await;
        let woken = async {
            let conn = self.store.connection().await?;
            conn.client
                .execute("SELECT pg_notify($1, $2)", &[&READY_CHANNEL, &self.queue])
                .await
                .map_err(conn.on_cluster_error())
        };
        if let Err(e) = woken.await {
            // The other workers find the run at their next poll.
            self.report("waking the other workers", &e);
        }
    }

    /// End `lease`, if it is still the run's and live. Never a new claim: a lease that
    /// expired may be another worker's to take.
    async fn release(&self, lease: &Lease) {
        if let Err(e) = self.store.release(lease).await {
            // The lease then ends when it expires.
            self.report("releasing a run's lease", &e);
        }
    }

    /// A run task ended: forget the run (a panicking run is given back, the attempt
    /// counted).
    async fn joined(
        &self,
        joined: Result<(Id, Done), tokio::task::JoinError>,
        held: &mut HashMap<String, Held>,
        task_runs: &mut HashMap<Id, (String, i32)>,
    ) {
        match joined {
            Ok((id, run_id)) => {
                task_runs.remove(&id);
                // Unless the run was claimed again meanwhile, by another task.
                if held.get(&run_id).is_some_and(|run| run.task == id) {
                    held.remove(&run_id);
                }
            }
            Err(e) => {
                let Some((run_id, attempt)) = task_runs.remove(&e.id()) else {
                    return;
                };
                // Claimed again meanwhile, by another task: this attempt is over.
                if held.get(&run_id).is_none_or(|run| run.task != e.id()) {
                    return;
                }
                let error = format!("cluster: the run's task panicked: {e}");
                if let Some(run) = held.remove(&run_id) {
                    self.release(&run.lease).await;
                }
                self.requeue(&run_id, attempt, Some(&error), false).await;
            }
        }
    }
}

/// How long a worker waits before listening again when its listening connection failed.
const RELISTEN: Duration = Duration::from_secs(1);

/// Listen on a connection of its own (opened again when it fails) until aborted: wake
/// `ready` whenever a run of `queue` is announced on [`READY_CHANNEL`], `signalled` when a
/// signal is sent ([`SIGNAL_CHANNEL`]: it may end a wait), and send the id of
/// each run a client asks to cancel ([`CANCEL_CHANNEL`]) to `cancels`. A notification is
/// only a hint: a worker whose listener is down still polls, and its heartbeat sees the
/// cancels.
async fn listen(store: PostgresCheckpointStore, queue: String, wakeups: Wakeups) {
    loop {
        if let Some((client, mut messages)) = store.listener(READY_CHANNEL).await {
            // The other channels on the same connection; its messages must be polled
            // while the statement is answered.
            let sql = format!("LISTEN {CANCEL_CHANNEL}; LISTEN {SIGNAL_CHANNEL}");
            let also = client.batch_execute(&sql);
            tokio::pin!(also);
            let mut listening = false;
            loop {
                tokio::select! {
                    done = &mut also, if !listening => {
                        if done.is_err() {
                            break;
                        }
                        listening = true;
                    }
                    message = messages.next() => {
                        let Some(Ok(message)) = message else { break };
                        let tokio_postgres::AsyncMessage::Notification(n) = message else {
                            continue;
                        };
                        if n.channel() == CANCEL_CHANNEL {
                            if wakeups.cancels.send(n.payload().to_owned()).is_err() {
                                return;
                            }
                        } else if n.channel() == SIGNAL_CHANNEL {
                            wakeups.signalled.notify_one();
                        } else if n.payload() == queue {
                            wakeups.ready.notify_one();
                        }
                    }
                }
            }
        }
        tokio::time::sleep(RELISTEN).await;
    }
}

/// Where the worker's listener passes on what it hears.
struct Wakeups {
    /// A run of the worker's queue is ready: claim now.
    ready: Arc<Notify>,
    /// A signal was sent: look for waits that are over now.
    signalled: Arc<Notify>,
    /// A client asked to cancel this run.
    cancels: mpsc::UnboundedSender<String>,
}

/// Aborts its task when dropped (the worker's listener, when `run` ends or is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Report database trouble the worker loop rides out.
fn warn(doing: &str, error: &CanoError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(%error, "cluster worker: {doing} failed; trying again");
    #[cfg(not(feature = "tracing"))]
    let _ = (doing, error);
}
