//! Run leases and fenced writes: how workers on many machines share runs without ever
//! writing over each other. The reference for the `cano_runs` table's use.
//!
//! # Leases
//!
//! A worker (a store object's [worker id](PostgresCheckpointStore::with_worker_id))
//! [claims](PostgresCheckpointStore::claim) a run for a [lease
//! duration](PostgresCheckpointStore::with_lease_duration) and gets a [`Lease`] carrying
//! the run's **epoch**. In `cano_runs`, one row per run id:
//!
//! * a run nobody holds (no row, released, or `lease_until <= now()`) is claimed by
//!   whoever asks first; the epoch goes up by one (a new run starts at 1);
//! * a run whose lease another worker holds and which has not expired cannot be claimed;
//! * a worker claiming a run it holds already gets the same epoch and a lease at least as
//!   long (so that `claim` then [`resume_from`](crate::Workflow::resume_from), whose
//!   writer claims again, share one lease);
//! * [renewing](PostgresCheckpointStore::renew) extends a lease that is still the run's
//!   and has not expired, and fails otherwise: an expired lease is gone even when nobody
//!   took it yet; claim the run again (a new epoch);
//! * [releasing](PostgresCheckpointStore::release) ends a lease at once; the next claim,
//!   by anyone, takes a new epoch.
//!
//! Every time is the database's `now()` (the start of the statement's transaction); the
//! workers' clocks decide nothing. Two workers racing for a run are ordered by the row's
//! lock: exactly one of them gets it.
//!
//! # Fenced writes
//!
//! The [`RunWriter`] of a leased run carries the lease's epoch. Each append is one
//! statement that, under the run's row lock, checks that the run is still at that epoch
//! and the lease has not expired, extends the lease by its duration, and inserts the row
//! (with the epoch in `cano_checkpoints.epoch`); the final clear is one statement (the
//! function `cano_fenced_clear`) that checks the same, releases the lease and deletes the
//! log and its pending signals. A
//! write that fails the check is refused with a [`CanoError::CheckpointStore`] whose text
//! says `fenced`, the run, this writer's epoch and the run's current one. Because the
//! check and the takeover both lock the run's row, they are ordered: a takeover that
//! commits first fences the write; a write that commits first extended the lease, so the
//! takeover finds it held. A worker paused past its lease whose run was taken over can
//! therefore never write to it again, and since the engine writes a state's row before
//! the state's task runs, it starts no further task of that run.
//!
//! Clearing keeps the run's `cano_runs` row (released, with its epoch), so a run started
//! again under the same id gets a higher epoch and no writer of an earlier one passes.
//!
//! A run that ends in an error and keeps its log is marked failed by its writer
//! ([`RunWriter::finished_with_error`]) in `cano_run_failures`, with the lease's epoch,
//! under the same check (a writer whose run was taken over is refused); the lease itself
//! is kept until it expires. Listings report the mark while the run is still at that
//! epoch; the run's next fenced append deletes it, and so does the fenced clear.
//!
//! Only writes through a run's writer are fenced: the plain [`CheckpointStore`] methods
//! (`append`, `clear`) do not look at leases, for single-process use and tools.
//!
//! # Limits
//!
//! * Fencing guards the log, not the world: a task already running when its run was
//!   taken over finishes (its next write is refused), so a step may run twice. Give
//!   side effects an idempotency key such as `(run id, epoch, sequence)`.
//! * A claim waits for the run's row lock, which every fenced write holds for one
//!   statement only: a worker stopped between statements holds no lock.
//! * The engine reads a resumed run's log before it asks for the run's writer: claim the
//!   run first, then resume it, so that the log read is already the lease holder's.
//! * A refused append fails the run like any failed append: a saga then rolls back its
//!   completed steps (the 0.12 contract), on the worker that lost the run. To avoid that,
//!   stop the run when a write is refused instead of letting the error reach the engine,
//!   as the [cluster's](crate::cluster) workers do (their writer reports the error and
//!   never returns; the run is tried again from its log).
//!
//! [`CheckpointStore`]: crate::recovery::CheckpointStore

use super::error::{Doing, pg_error};
use super::{PostgresCheckpointStore, conflict, kind_name, no_nul, sequence_param};
use crate::error::CanoError;
use crate::recovery::{CheckpointRow, RunWriter, RunWriters, StoreFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How long a lease lasts unless set with
/// [`PostgresCheckpointStore::with_lease_duration`].
pub(super) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The shortest lease a store takes.
const MIN_LEASE: Duration = Duration::from_millis(10);

/// The upsert that claims each run whose id the query `ids` yields (one column, `id`) for
/// worker `worker` for `secs` seconds (SQL expressions, e.g. parameters): take it when
/// free or expired (epoch + 1), extend it when that worker holds it already (same
/// epoch); no row for a run another worker holds. Answers `workflow_id, epoch,
/// lease_until` for each run claimed. The one claim of the store's [`CLAIM`] and of the
/// cluster's claim, which picks its runs in the same statement.
pub(crate) fn lease_upsert(ids: &str, worker: &str, secs: &str) -> String {
    format!(
        "INSERT INTO cano_runs AS r (workflow_id, owner, epoch, lease_until)
        SELECT id, {worker}, 1, now() + make_interval(secs => {secs}) FROM ({ids}) AS ids
        ON CONFLICT (workflow_id) DO UPDATE SET
            epoch = CASE WHEN r.owner = {worker} AND r.lease_until > now()
                         THEN r.epoch ELSE r.epoch + 1 END,
            lease_until = CASE WHEN r.owner = {worker} AND r.lease_until > now()
                               THEN greatest(r.lease_until, excluded.lease_until)
                               ELSE excluded.lease_until END,
            claimed_at = CASE WHEN r.owner = {worker} AND r.lease_until > now()
                              THEN r.claimed_at ELSE now() END,
            owner = {worker},
            released_at = NULL
        WHERE r.owner IS NULL OR r.owner = {worker} OR r.lease_until <= now()
        RETURNING r.workflow_id, r.epoch, r.lease_until"
    )
}

/// Claim each run of the array `$1` for worker `$2` for `$3` seconds ([`lease_upsert`]).
static CLAIM: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lease_upsert("SELECT unnest($1::text[]) AS id", "$2", "$3"));

/// Extend the lease of run `$1` at epoch `$2` to `$3` seconds from now, if it is still
/// the run's and has not expired.
const RENEW: &str = "
    UPDATE cano_runs SET lease_until = greatest(lease_until, now() + make_interval(secs => $3))
    WHERE workflow_id = $1 AND epoch = $2 AND owner IS NOT NULL AND lease_until > now()
    RETURNING lease_until";

/// [`RENEW`] for the runs `$1` at the epochs `$2` for `$3` seconds each.
const RENEW_ALL: &str = "
    UPDATE cano_runs AS r
    SET lease_until = greatest(r.lease_until, now() + make_interval(secs => l.secs))
    FROM unnest($1::text[], $2::bigint[], $3::float8[]) AS l (workflow_id, epoch, secs)
    WHERE r.workflow_id = l.workflow_id AND r.epoch = l.epoch
      AND r.owner IS NOT NULL AND r.lease_until > now()
    RETURNING r.workflow_id, r.epoch, r.lease_until";

/// End the lease of run `$1` at epoch `$2`, if it is still the run's and has not expired
/// (one row changed).
pub(super) const RELEASE: &str = "
    UPDATE cano_runs SET owner = NULL, lease_until = now(), released_at = now()
    WHERE workflow_id = $1 AND epoch = $2 AND owner IS NOT NULL AND lease_until > now()";

/// The fenced append: extend the lease of run `$1` at epoch `$7` by `$8` seconds if it is
/// still the run's and live, and only then insert the row. Answers (runs whose lease
/// passed, rows inserted): `(0, 0)` fenced, `(1, 0)` a duplicate sequence, `(1, 1)` done.
pub(super) const FENCED_APPEND: &str = "
    WITH lease AS (
        UPDATE cano_runs SET lease_until = greatest(lease_until, now() + make_interval(secs => $8))
        WHERE workflow_id = $1 AND epoch = $7 AND owner IS NOT NULL AND lease_until > now()
        RETURNING workflow_id
    ), unmark AS (
        DELETE FROM cano_run_failures f USING lease WHERE f.workflow_id = lease.workflow_id
    ), written AS (
        INSERT INTO cano_checkpoints
            (workflow_id, sequence, kind, state, task_id, output_blob, epoch)
        SELECT workflow_id, $2::bigint, $3::text, $4::text, $5::text, $6::bytea, $7::bigint
        FROM lease
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM lease), (SELECT count(*) FROM written)";

/// Mark run `$1` failed with error `$3` if it is still at epoch `$2` (its row locked
/// against a takeover meanwhile) and has a log. Answers (runs at the epoch, marks
/// written): `(0, 0)` fenced, `(1, 0)` no log.
const MARK_FAILED: &str = "
    WITH lease AS (
        SELECT workflow_id FROM cano_runs WHERE workflow_id = $1 AND epoch = $2 FOR SHARE
    ), marked AS (
        INSERT INTO cano_run_failures (workflow_id, epoch, error)
        SELECT workflow_id, $2, $3 FROM lease
        WHERE EXISTS (SELECT 1 FROM cano_checkpoints WHERE workflow_id = $1)
        ON CONFLICT (workflow_id) DO UPDATE
            SET epoch = excluded.epoch, error = excluded.error, failed_at = now()
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM lease), (SELECT count(*) FROM marked)";

/// Who holds run `$1` now, for the texts of refused claims and writes.
const HOLDER: &str = "
    SELECT owner, epoch, lease_until > now(),
           extract(epoch FROM lease_until - now())::float8, lease_until
    FROM cano_runs WHERE workflow_id = $1";

/// A worker's lease on one run: its epoch, and until when it lasts.
///
/// Made by [`PostgresCheckpointStore::claim`]; kept alive with
/// [`renew`](PostgresCheckpointStore::renew), ended with
/// [`release`](PostgresCheckpointStore::release); its writes go through
/// [`writer_for`](PostgresCheckpointStore::writer_for). A copy is just as good as the
/// original: what counts is the epoch, checked by the database on every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    workflow_id: String,
    owner: String,
    epoch: u64,
    duration: Duration,
    expires_at: SystemTime,
    deadline: Instant,
}

impl Lease {
    /// The run the lease is on.
    pub fn workflow_id(&self) -> &str {
        &self.workflow_id
    }

    /// The worker holding it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The run's epoch under this lease: 1 for a new run, one more on every change of
    /// holder. Writes of an older epoch are refused.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How long each claim, renewal and write extends the lease.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// When the lease ends by the database's clock, as of the last claim or renewal
    /// (writes through the lease's writer extend it further).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// When the lease ends at the latest by this process's monotonic clock: the lease
    /// duration after the last claim or renewal was *sent*, which is never later than
    /// the database's end of it. A worker should start no task of the run past it
    /// without a renewal.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether [`deadline`](Self::deadline) has passed.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// Who holds a run now, as [`PostgresCheckpointStore::holder`] reports it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The worker holding the run's lease.
    pub worker_id: String,
    /// The run's epoch under that lease.
    pub epoch: u64,
    /// When the lease ends unless renewed, by the database's clock.
    pub expires_at: SystemTime,
}

/// The worker id of a store that was given none: unique per store object and process.
pub(super) fn default_worker_id() -> Arc<str> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    let started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{host}:{}:{started:x}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
    .into()
}

/// An epoch as the table's `bigint` (epochs come from it, so they fit).
pub(super) fn epoch_param(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// A run's lease row as [`HOLDER`] reads it.
pub(super) struct Holder {
    owner: Option<String>,
    epoch: i64,
    live: bool,
    /// Seconds until the lease ends (negative: since it ended).
    remaining: f64,
    expires_at: SystemTime,
}

impl Holder {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            owner: row.try_get(0)?,
            epoch: row.try_get(1)?,
            live: row.try_get(2)?,
            remaining: row.try_get(3)?,
            expires_at: row.try_get(4)?,
        })
    }
}

/// `seconds` as a short text (`"250 ms"`).
fn millis(seconds: f64) -> String {
    format!("{:.0} ms", (seconds * 1000.0).abs())
}

/// The refusal of `what` (e.g. `"append of row 3"`) by `lease`, given what the run's
/// lease row says now (`Err`: reading it failed).
pub(super) fn fenced(
    lease: &Lease,
    what: &str,
    now: Result<Option<Holder>, CanoError>,
) -> CanoError {
    let (id, mine, me) = (&lease.workflow_id, lease.epoch, &lease.owner);
    let text = match now {
        Err(e) => format!(
            "postgres: fenced: {what} of run {id:?} refused: the lease of epoch {mine} \
             (worker {me:?}) is no longer the run's or has expired; the current epoch could \
             not be read ({e})"
        ),
        Ok(None) => format!(
            "postgres: fenced: {what} of run {id:?} refused: the run has no lease at all, \
             so epoch {mine} (worker {me:?}) is not its current one; claim the run before \
             writing to it"
        ),
        Ok(Some(now)) if now.epoch != epoch_param(mine) => {
            let holder = match (&now.owner, now.live) {
                (Some(owner), true) => format!(", held by worker {owner:?}"),
                _ => ", not held now".to_owned(),
            };
            format!(
                "postgres: fenced: {what} of run {id:?} refused: this writer's lease is \
                 epoch {mine} (worker {me:?}) but the run is at epoch {}{holder}: another \
                 worker took it over. This worker must not touch the run again; its new \
                 owner resumes it",
                now.epoch
            )
        }
        Ok(Some(now)) => {
            let ended = match now.owner {
                None => "was released".to_owned(),
                Some(_) => format!("expired {} ago", millis(now.remaining)),
            };
            format!(
                "postgres: fenced: {what} of run {id:?} refused: the lease of epoch {mine} \
                 (worker {me:?}) {ended}; the run is still at epoch {} (nobody took it \
                 over yet). Claim the run again, which gives a new epoch, and resume it \
                 from its log",
                now.epoch
            )
        }
    };
    CanoError::checkpoint_store(text)
}

impl PostgresCheckpointStore {
    /// This store with the worker id `worker_id`: the owner its [claims](Self::claim) and
    /// [run writers](crate::RunWriters) take leases for.
    ///
    /// Unless set, each connected store has an id of its own (host, process, time).
    /// Give each worker process a distinct one: two processes with the same worker id
    /// share its leases (a claim of a run the worker holds is granted at the same
    /// epoch), so fencing cannot tell them apart.
    ///
    /// ```no_run
    /// use cano::recovery::postgres::PostgresCheckpointStore;
    /// use std::time::Duration;
    ///
    /// # async fn f() -> Result<(), cano::CanoError> {
    /// let store = PostgresCheckpointStore::connect("postgresql://cano@db/app")
    ///     .await?
    ///     .with_worker_id(format!("billing-{}", std::process::id()))
    ///     .with_lease_duration(Duration::from_secs(10));
    /// # Ok(()) }
    /// ```
    pub fn with_worker_id(mut self, worker_id: impl Into<String>) -> Self {
        self.worker = worker_id.into().into();
        self
    }

    /// This store with leases of `duration` (at least 10 ms; default 30 s): how long a
    /// claim, a renewal and each fenced write keep a run this worker's.
    ///
    /// Shorter: a dead worker's runs are taken over sooner; longer: a slow task or a
    /// pause of the process (a stall, a network hiccup) is less likely to lose its run.
    /// A run whose task may take longer than the lease needs a heartbeat
    /// ([`renew`](Self::renew)), or its next write is fenced once another worker took
    /// it over (or once it expired).
    pub fn with_lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration.max(MIN_LEASE);
        self
    }

    /// This store with group commit of its fenced appends: the rows that the runs of
    /// this worker append at the same time share one statement and one transaction (one
    /// WAL flush) instead of one each. Each append still returns only once its row is
    /// committed, fenced by its own run's lease, so a state's entry is durable before its
    /// task runs, as without it; a batch refused as a whole (a lost connection) fails each
    /// of its appends. Worth it when many runs are in flight on one worker; a lone run's
    /// append waits for nothing more than its own write.
    ///
    /// Applies to this store object and its clones made afterwards (each such object has
    /// one committer task, started on the first append).
    ///
    /// ```no_run
    /// use cano::recovery::postgres::PostgresCheckpointStore;
    ///
    /// # async fn f() -> Result<(), cano::CanoError> {
    /// let store = PostgresCheckpointStore::connect("postgresql://cano@db/app")
    ///     .await?
    ///     .with_group_commit();
    /// # Ok(()) }
    /// ```
    pub fn with_group_commit(mut self) -> Self {
        self.group = Some(Arc::default());
        self
    }

    /// Whether this store has [group commit](Self::with_group_commit).
    pub(crate) fn group_commits(&self) -> bool {
        self.group.is_some()
    }

    /// The worker id this store claims runs for.
    pub fn worker_id(&self) -> &str {
        &self.worker
    }

    /// How long this store's leases last.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// Claim run `workflow_id` for this store's worker for its lease duration.
    ///
    /// Granted when nobody holds the run (never claimed, released, or the lease
    /// expired by the database's clock), with the next epoch; or when this worker holds
    /// it already, with the same epoch and a lease extended to at least the lease
    /// duration from now. The run need not have a log: a claim before `orchestrate`
    /// reserves the id.
    ///
    /// ```no_run
    /// use cano::prelude::*;
    /// use std::sync::Arc;
    ///
    /// # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum S { A, Done }
    /// # fn wf() -> Workflow<S> { Workflow::bare() }
    /// # async fn f(store: PostgresCheckpointStore) -> Result<(), CanoError> {
    /// // Take over a run whose worker died, then continue it from its log: the run's
    /// // writer uses the lease claimed here, and every write is fenced by its epoch.
    /// let lease = store.claim("order-7").await?;
    /// println!("run order-7 is ours at epoch {}", lease.epoch());
    /// let end = wf().with_run_writers(Arc::new(store.clone())).resume_from("order-7").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A [`CanoError::CheckpointStore`] naming the holder when another worker holds a
    /// lease on the run that has not expired ([`try_claim`](Self::try_claim) answers
    /// `None` instead), or when the database cannot be reached.
    ///
    /// Dropping the future abandons the claim; a claim already sent may still be
    /// granted, and then lapses after the lease duration.
    pub async fn claim(&self, workflow_id: &str) -> Result<Lease, CanoError> {
        // A lease that ends between a refused claim and the look at its holder: try again.
        for _ in 0..3 {
            match self.claim_or_holder(workflow_id).await? {
                Ok(lease) => return Ok(lease),
                Err(Some(holder)) if holder.live => {
                    return Err(CanoError::checkpoint_store(format!(
                        "postgres: run {workflow_id:?} is leased to worker {:?} (epoch {}) \
                         for another {}; worker {:?} cannot claim it until that lease is \
                         released or expires",
                        holder.owner.unwrap_or_default(),
                        holder.epoch,
                        millis(holder.remaining),
                        self.worker_id()
                    )));
                }
                Err(_) => {}
            }
        }
        Err(CanoError::checkpoint_store(format!(
            "postgres: run {workflow_id:?} could not be claimed by worker {:?}: other \
             workers claimed it and let it go again meanwhile; try again",
            self.worker_id()
        )))
    }

    /// [`claim`](Self::claim), answering `None` when another worker holds the run.
    ///
    /// # Errors
    /// A [`CanoError::CheckpointStore`] when the database cannot be reached.
    ///
    /// Dropping the future abandons the claim; a claim already sent may still be
    /// granted, and then lapses after the lease duration.
    pub async fn try_claim(&self, workflow_id: &str) -> Result<Option<Lease>, CanoError> {
        Ok(self.claim_or_holder(workflow_id).await?.ok())
    }

    /// PostgreSQL text cannot hold the NUL character: refuse a worker id with one.
    pub(crate) fn no_nul_worker(&self) -> Result<(), CanoError> {
        if self.worker_id().contains('\0') {
            return Err(CanoError::checkpoint_store(format!(
                "postgres: the worker id {:?} has a NUL character, which PostgreSQL text \
                 cannot hold; set another with `with_worker_id`",
                self.worker_id()
            )));
        }
        Ok(())
    }

    /// One claim: the lease, or who holds the run (`None`: it is not held anymore).
    async fn claim_or_holder(
        &self,
        workflow_id: &str,
    ) -> Result<Result<Lease, Option<Holder>>, CanoError> {
        no_nul(workflow_id, 0, &[workflow_id])?;
        self.no_nul_worker()?;
        let conn = self.inner.pool.get().await?;
        if let Some(lease) = self.claim_on(&conn, &[workflow_id]).await?.pop() {
            return Ok(Ok(lease));
        }
        let holder = read_holder(&conn.client, workflow_id).await?;
        Ok(Err(holder.filter(|h| h.live)))
    }

    /// The lease a claim of [`lease_upsert`] granted this worker on `workflow_id` at
    /// `epoch` until `expires_at` (the database's clock), the claim sent at `sent`. For
    /// the cluster's worker, which claims its runs' leases in the statement that picks
    /// them.
    pub(crate) fn granted(
        &self,
        workflow_id: String,
        epoch: i64,
        expires_at: SystemTime,
        sent: Instant,
    ) -> Lease {
        Lease {
            workflow_id,
            owner: self.worker_id().to_owned(),
            epoch: u64::try_from(epoch).unwrap_or_default(),
            duration: self.lease_duration,
            expires_at,
            deadline: sent + self.lease_duration,
        }
    }

    /// The claim statement for `runs` on `conn`.
    async fn claim_on(
        &self,
        conn: &super::pool::Pooled<'_>,
        runs: &[&str],
    ) -> Result<Vec<Lease>, CanoError> {
        let duration = self.lease_duration;
        let failed = conn.on_error(Doing::Claim);
        let sent = Instant::now();
        let claim = conn.statement(&CLAIM).await.map_err(&failed)?;
        let rows = conn
            .client
            .query(&claim, &[&runs, &self.worker_id(), &duration.as_secs_f64()])
            .await
            .map_err(&failed)?;
        rows.iter()
            .map(|row| {
                Ok(self.granted(
                    row.try_get(0).map_err(&failed)?,
                    row.try_get(1).map_err(&failed)?,
                    row.try_get(2).map_err(&failed)?,
                    sent,
                ))
            })
            .collect()
    }

    /// Who holds run `workflow_id` now: a worker whose lease has not expired, or `None`
    /// (never claimed, released, expired). A run with a log and no holder is not being
    /// worked on: it stopped, or its worker died and any worker may take it over.
    ///
    /// ```no_run
    /// # use cano::recovery::postgres::PostgresCheckpointStore;
    /// # async fn f(store: PostgresCheckpointStore) -> Result<(), cano::CanoError> {
    /// match store.holder("order-7").await? {
    ///     Some(h) => println!("worker {} runs it (epoch {})", h.worker_id, h.epoch),
    ///     None => println!("nobody runs it"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A [`CanoError::CheckpointStore`] when the database cannot be reached.
    ///
    /// Dropping the future abandons the read; nothing changes.
    pub async fn holder(&self, workflow_id: &str) -> Result<Option<LeaseHolder>, CanoError> {
        let conn = self.inner.pool.get().await?;
        let now = read_holder(&conn.client, workflow_id).await?;
        Ok(now.and_then(|h| match (h.owner, h.live) {
            (Some(worker_id), true) => Some(LeaseHolder {
                worker_id,
                epoch: u64::try_from(h.epoch).unwrap_or_default(),
                expires_at: h.expires_at,
            }),
            _ => None,
        }))
    }

    /// Extend `lease` to its duration from now: the heartbeat of a worker that holds a
    /// run longer than one lease. Updates the lease's [`expires_at`](Lease::expires_at)
    /// and [`deadline`](Lease::deadline).
    ///
    /// ```no_run
    /// # use cano::recovery::postgres::PostgresCheckpointStore;
    /// # async fn f(store: PostgresCheckpointStore) -> Result<(), cano::CanoError> {
    /// let mut lease = store.claim("order-7").await?;
    /// let mut beat = tokio::time::interval(store.lease_duration() / 3);
    /// loop {
    ///     beat.tick().await;
    ///     // The run was taken over (or the lease lapsed): stop working on it.
    ///     store.renew(&mut lease).await?;
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// A [`CanoError::CheckpointStore`] saying `fenced` when the lease is no longer the
    /// run's (taken over, released) or has expired, even if nobody took the run yet:
    /// stop working on the run, or claim it again (a new epoch). Also when the database
    /// cannot be reached; the lease may then still hold, until it expires.
    ///
    /// Dropping the future abandons the renewal; one already sent may still extend the
    /// lease.
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), CanoError> {
        let conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::Renew);
        let sent = Instant::now();
        let renewed = conn
            .client
            .query_opt(
                RENEW,
                &[
                    &lease.workflow_id,
                    &epoch_param(lease.epoch),
                    &lease.duration.as_secs_f64(),
                ],
            )
            .await
            .map_err(&failed)?;
        match renewed {
            Some(row) => {
                lease.expires_at = row.try_get(0).map_err(&failed)?;
                lease.deadline = sent + lease.duration;
                Ok(())
            }
            None => Err(fenced(
                lease,
                "renewal",
                read_holder(&conn.client, &lease.workflow_id).await,
            )),
        }
    }

    /// [`renew`](Self::renew) many leases in one statement: a worker's heartbeat for all
    /// the runs it holds. The leases still the runs' and live are extended (their
    /// [`expires_at`](Lease::expires_at) and [`deadline`](Lease::deadline) updated);
    /// the ids of the others (taken over, released or expired) are returned, in the
    /// order given: stop working on those runs, their writes are refused.
    ///
    /// ```no_run
    /// # use cano::recovery::postgres::{Lease, PostgresCheckpointStore};
    /// # async fn f(store: PostgresCheckpointStore, mut held: Vec<Lease>) -> Result<(), cano::CanoError> {
    /// let lost = store.renew_all(&mut held).await?;
    /// held.retain(|lease| !lost.iter().any(|id| id == lease.workflow_id()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A [`CanoError::CheckpointStore`] when the database cannot be reached; the leases
    /// may then still hold, until they expire.
    ///
    /// Dropping the future abandons the renewal; one already sent may still extend the
    /// leases.
    pub async fn renew_all(&self, leases: &mut [Lease]) -> Result<Vec<String>, CanoError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = leases.iter().map(|l| l.workflow_id.as_str()).collect();
        let epochs: Vec<i64> = leases.iter().map(|l| epoch_param(l.epoch)).collect();
        let secs: Vec<f64> = leases.iter().map(|l| l.duration.as_secs_f64()).collect();
        let conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::Renew);
        let sent = Instant::now();
        let renewed = conn
            .client
            .query(RENEW_ALL, &[&ids, &epochs, &secs])
            .await
            .map_err(&failed)?;
        let mut until = std::collections::HashMap::with_capacity(renewed.len());
        for row in &renewed {
            let id: String = row.try_get(0).map_err(&failed)?;
            let epoch: i64 = row.try_get(1).map_err(&failed)?;
            let expires_at: SystemTime = row.try_get(2).map_err(&failed)?;
            until.insert((id, epoch), expires_at);
        }
        let mut lost = Vec::new();
        for lease in leases.iter_mut() {
            match until.get(&(lease.workflow_id.clone(), epoch_param(lease.epoch))) {
                Some(&expires_at) => {
                    lease.expires_at = expires_at;
                    lease.deadline = sent + lease.duration;
                }
                None => lost.push(lease.workflow_id.clone()),
            }
        }
        Ok(lost)
    }

    /// End `lease` now, so that any worker may claim the run at once (with a new epoch):
    /// for a worker handing its runs back when it shuts down. Writes under the lease are
    /// refused from then on. `true` if the lease was still the run's and live; `false`
    /// (and nothing changed) if it was not.
    ///
    /// ```no_run
    /// # use cano::recovery::postgres::PostgresCheckpointStore;
    /// # async fn f(store: PostgresCheckpointStore) -> Result<(), cano::CanoError> {
    /// let lease = store.claim("order-7").await?;
    /// // … shutting down before the run is done: let another worker have it.
    /// store.release(&lease).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A [`CanoError::CheckpointStore`] when the database cannot be reached; the lease
    /// then still holds, until it expires.
    ///
    /// Dropping the future abandons the release; one already sent may still be applied.
    pub async fn release(&self, lease: &Lease) -> Result<bool, CanoError> {
        let conn = self.inner.pool.get().await?;
        let released = conn
            .client
            .execute(
                &conn.release,
                &[&lease.workflow_id, &epoch_param(lease.epoch)],
            )
            .await
            .map_err(conn.on_error(Doing::Release))?;
        Ok(released == 1)
    }

    /// The writer of `lease`'s run: every append and its clear are fenced by the lease's
    /// epoch (see the [`lease`](self) module's reference). Appends extend the lease by its
    /// duration; the clear releases it. [`RunWriters::writer`] is this after a
    /// [`claim`](Self::claim).
    pub fn writer_for(&self, lease: &Lease) -> Box<dyn RunWriter> {
        Box::new(LeaseWriter {
            store: self.clone(),
            lease: lease.clone(),
        })
    }

    async fn fenced_append(&self, lease: &Lease, row: CheckpointRow) -> Result<(), CanoError> {
        let id = lease.workflow_id.as_str();
        let sequence = sequence_param(id, row.sequence)?;
        no_nul(id, row.sequence, &[id, &row.state, &row.task_id])?;
        let kind = kind_name(row.kind)?;
        if let Some(group) = &self.group {
            let queued = super::group::Queued {
                lease: lease.clone(),
                sequence,
                kind,
                row,
            };
            let inner = &self.inner;
            return (group
                .submit(queued, || super::group::Appends(Arc::clone(inner)))
                .await)
                .unwrap_or_else(|| Err(super::group::stopped()));
        }
        let conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::Append);
        let counts = conn
            .client
            .query_one(
                &conn.fenced_append,
                &[
                    &id,
                    &sequence,
                    &kind,
                    &row.state,
                    &row.task_id,
                    &row.output_blob,
                    &epoch_param(lease.epoch),
                    &lease.duration.as_secs_f64(),
                ],
            )
            .await
            .map_err(&failed)?;
        let leased: i64 = counts.try_get(0).map_err(&failed)?;
        let inserted: i64 = counts.try_get(1).map_err(&failed)?;
        if leased == 0 {
            let what = format!("append of row {}", row.sequence);
            return Err(fenced(
                lease,
                &what,
                read_holder(&conn.client, &lease.workflow_id).await,
            ));
        }
        if inserted == 0 {
            return Err(conflict(id, row.sequence));
        }
        Ok(())
    }

    /// Mark the run of `lease` failed with `error` (see [`MARK_FAILED`]): refused, as
    /// `fenced`, when another worker took the run over.
    async fn mark_failed(&self, lease: &Lease, error: &CanoError) -> Result<(), CanoError> {
        // PostgreSQL text cannot hold NUL.
        let text = crate::recovery::failure_text(error).replace('\0', "\u{fffd}");
        let conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::Append);
        let counts = conn
            .client
            .query_one(
                MARK_FAILED,
                &[&lease.workflow_id, &epoch_param(lease.epoch), &text],
            )
            .await
            .map_err(&failed)?;
        let leased: i64 = counts.try_get(0).map_err(&failed)?;
        if leased == 0 {
            let now = read_holder(&conn.client, &lease.workflow_id).await;
            return Err(fenced(lease, "failure mark", now));
        }
        Ok(())
    }

    async fn fenced_clear(&self, lease: &Lease) -> Result<(), CanoError> {
        let conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::Clear);
        // One statement, so that a worker stopped mid-way holds no lock across round trips.
        let cleared: bool = conn
            .client
            .query_one(
                &conn.fenced_clear,
                &[&lease.workflow_id, &epoch_param(lease.epoch)],
            )
            .await
            .map_err(&failed)?
            .try_get(0)
            .map_err(&failed)?;
        if !cleared {
            let now = read_holder(&conn.client, &lease.workflow_id).await;
            return Err(fenced(lease, "clear", now));
        }
        Ok(())
    }
}

/// What run `workflow_id`'s lease row says now.
pub(super) async fn read_holder(
    client: &tokio_postgres::Client,
    workflow_id: &str,
) -> Result<Option<Holder>, CanoError> {
    let failed = |e: tokio_postgres::Error| pg_error(&e, Doing::Load);
    client
        .query_opt(HOLDER, &[&workflow_id])
        .await
        .map_err(failed)?
        .map(|row| Holder::from_row(&row).map_err(failed))
        .transpose()
}

/// The writer of one leased run ([`PostgresCheckpointStore::writer_for`]).
struct LeaseWriter {
    store: PostgresCheckpointStore,
    lease: Lease,
}

impl RunWriter for LeaseWriter {
    fn append(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        Box::pin(self.store.fenced_append(&self.lease, row))
    }

    fn clear(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.store.fenced_clear(&self.lease))
    }

    fn finished_with_error<'a>(&'a self, error: &'a CanoError) -> StoreFuture<'a, ()> {
        Box::pin(self.store.mark_failed(&self.lease, error))
    }
}

/// Each run a workflow starts or resumes with
/// [`with_run_writers`](crate::Workflow::with_run_writers) is [claimed](PostgresCheckpointStore::claim)
/// for the store's worker, and all its writes are fenced by that lease's epoch. A run
/// another worker holds does not start (the claim's error). Claim a run first to take it
/// over before resuming it: the writer then shares that lease. A run that fails keeps its
/// lease until it expires (or is [released](PostgresCheckpointStore::release)); one that
/// ends releases it with its clear.
impl RunWriters for PostgresCheckpointStore {
    fn writer<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Box<dyn RunWriter>> {
        Box::pin(async move {
            let lease = self.claim(workflow_id).await?;
            Ok(self.writer_for(&lease))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(epoch: u64) -> Lease {
        Lease {
            workflow_id: "order-1".into(),
            owner: "w1".into(),
            epoch,
            duration: Duration::from_millis(300),
            expires_at: SystemTime::UNIX_EPOCH,
            deadline: Instant::now(),
        }
    }

    fn holder(owner: Option<&str>, epoch: i64, live: bool) -> Option<Holder> {
        Some(Holder {
            owner: owner.map(str::to_owned),
            epoch,
            live,
            remaining: -0.25,
            expires_at: SystemTime::UNIX_EPOCH,
        })
    }

    #[test]
    fn a_takeover_names_the_run_both_epochs_and_the_new_holder() {
        let text = fenced(
            &lease(3),
            "append of row 4",
            Ok(holder(Some("w2"), 4, true)),
        );
        let text = text.to_string();
        for part in [
            "fenced",
            "append of row 4",
            "\"order-1\"",
            "epoch 3",
            "epoch 4",
            "\"w2\"",
        ] {
            assert!(text.contains(part), "{part:?} missing: {text}");
        }
    }

    #[test]
    fn an_expired_or_released_lease_says_how_to_go_on() {
        let expired = fenced(&lease(3), "clear", Ok(holder(Some("w1"), 3, false))).to_string();
        assert!(expired.contains("expired 250 ms ago"), "{expired}");
        assert!(expired.contains("Claim the run again"), "{expired}");
        let released = fenced(&lease(3), "clear", Ok(holder(None, 3, false))).to_string();
        assert!(released.contains("was released"), "{released}");
        let gone = fenced(&lease(3), "clear", Ok(None)).to_string();
        assert!(
            gone.contains("fenced") && gone.contains("no lease"),
            "{gone}"
        );
    }

    #[test]
    fn default_worker_ids_differ() {
        assert_ne!(default_worker_id(), default_worker_id());
    }
}
