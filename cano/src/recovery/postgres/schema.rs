//! The store's tables and their versions: the one place that creates or changes them.
//!
//! `cano_schema_version` holds one row per migration applied (`version`, the library that
//! applied it, when). Connecting runs every migration the database lacks, in one
//! transaction that first takes a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`): processes that start at once queue on the lock, and each
//! after the first finds the work done. A database whose newest version is above
//! [`SCHEMA_VERSION`] was upgraded by a newer cano and is refused, unchanged.
//!
//! # Version 1
//!
//! ```sql
//! CREATE TABLE cano_checkpoints (
//!     workflow_id text        NOT NULL,
//!     sequence    bigint      NOT NULL CHECK (sequence >= 0),
//!     kind        text        NOT NULL,  -- the RowKind's serde name, e.g. 'StateEntry'
//!     state       text        NOT NULL,
//!     task_id     text        NOT NULL,
//!     output_blob bytea,
//!     created_at  timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (workflow_id, sequence)
//! );
//! CREATE TABLE cano_signals (
//!     workflow_id text        NOT NULL,
//!     signal_id   text        NOT NULL,
//!     arrival     bigint      GENERATED ALWAYS AS IDENTITY,  -- the order signals arrived in
//!     name        text        NOT NULL,
//!     payload     bytea       NOT NULL,  -- JSON
//!     sent_at     timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (workflow_id, signal_id)
//! );
//! ```
//!
//! # Version 2: leases
//!
//! ```sql
//! CREATE TABLE cano_runs (
//!     workflow_id text        PRIMARY KEY,
//!     owner       text,                  -- the worker holding the lease; NULL once released
//!     epoch       bigint      NOT NULL CHECK (epoch > 0),  -- +1 on every change of holder
//!     lease_until timestamptz NOT NULL,  -- the database's clock; expired when <= now()
//!     claimed_at  timestamptz NOT NULL DEFAULT now(),
//!     released_at timestamptz            -- set by a release or a fenced clear
//! );
//! CREATE INDEX cano_runs_lease_until ON cano_runs (lease_until) WHERE owner IS NOT NULL;  -- dropped in version 8
//! -- The epoch of the lease a fenced row was written under (NULL: written unfenced).
//! ALTER TABLE cano_checkpoints ADD COLUMN epoch bigint;
//! -- The fenced clear, in one statement: release the lease of `run` at `lease_epoch` if
//! -- it is still the run's and live, and only then delete the run's log and signals
//! -- (each statement with a fresh snapshot, as in a transaction of three); false when
//! -- fenced.
//! CREATE FUNCTION cano_fenced_clear(run text, lease_epoch bigint) RETURNS boolean;
//! ```
//!
//! A run's `cano_runs` row outlives its log: clearing the log releases the lease but keeps
//! the epoch, so that a run started again under the same id continues the count and a
//! writer of an earlier incarnation stays fenced.
//!
//! # Version 3: the cluster's runs
//!
//! The runs submitted to the [cluster runtime](crate::cluster), one row each (its lease
//! and log are the `cano_runs` and `cano_checkpoints` rows of the same id):
//!
//! ```sql
//! CREATE TABLE cano_cluster_runs (
//!     run_id          text        PRIMARY KEY,
//!     queue           text        NOT NULL,
//!     workflow        text        NOT NULL,  -- the registered workflow's name
//!     status          text        NOT NULL,  -- ready | running | succeeded | failed | parked
//!     input           jsonb       NOT NULL,
//!     initial_state   jsonb       NOT NULL,
//!     final_state     jsonb,                 -- set when succeeded
//!     error           text,                  -- set when failed or parked (or the last retry's)
//!     attempts        integer     NOT NULL DEFAULT 0,  -- claims so far; +1 per claim
//!     idempotency_key text        UNIQUE,
//!     worker          text,                  -- the worker running it (or that last did)
//!     heartbeat_at    timestamptz,           -- that worker's last sign of life
//!     submitted_at    timestamptz NOT NULL DEFAULT now(),
//!     finished_at     timestamptz
//! );
//! CREATE INDEX cano_cluster_runs_ready ON cano_cluster_runs (queue, submitted_at)
//!     WHERE status = 'ready';
//! CREATE INDEX cano_cluster_runs_running ON cano_cluster_runs (heartbeat_at)
//!     WHERE status = 'running';
//! CREATE INDEX cano_cluster_runs_finished ON cano_cluster_runs (finished_at)
//!     WHERE finished_at IS NOT NULL;
//! ```
//!
//! # Version 4: cancelling cluster runs
//!
//! ```sql
//! -- Set by `Client::cancel`: the worker running the run (or the next one to claim it)
//! -- cancels it, compensating its completed saga steps, and records it `cancelled`.
//! ALTER TABLE cano_cluster_runs ADD COLUMN cancel_requested_at timestamptz;
//! -- The status check gains 'cancelled'.
//! ALTER TABLE cano_cluster_runs DROP CONSTRAINT cano_cluster_runs_status_check;
//! ALTER TABLE cano_cluster_runs ADD CONSTRAINT cano_cluster_runs_status_check
//!     CHECK (status IN ('ready', 'running', 'succeeded', 'failed', 'parked', 'cancelled'));
//! ```
//!
//! # Version 5: failed runs
//!
//! A run that returned an error and whose log stays, marked by its [run
//! writer](crate::RunWriter::finished_with_error) (listed as
//! [`RunStatus::Failed`](crate::RunStatus::Failed)). The mark counts while the run is at
//! the epoch it was written under; the run's next row deletes it (in the append's
//! statement), and so does clearing the log:
//!
//! ```sql
//! CREATE TABLE cano_run_failures (
//!     workflow_id text        PRIMARY KEY,
//!     epoch       bigint      NOT NULL,  -- the lease epoch of the run that failed
//!     error       text        NOT NULL,  -- the error's text
//!     failed_at   timestamptz NOT NULL DEFAULT now()
//! );
//! -- cano_fenced_clear also deletes the run's mark.
//! CREATE OR REPLACE FUNCTION cano_fenced_clear(run text, lease_epoch bigint) RETURNS boolean;
//! ```
//!
//! # Version 6: cluster runs that wait without a worker
//!
//! A cluster run sleeping on a timer or waiting for a signal is given back by its worker
//! and holds no worker slot: it is `waiting` until `wake_at` passes, a signal named
//! `waiting_for` is pending for it, or a cancel is asked for; then it is ready again and
//! the worker that claims it resumes the wait from its log.
//!
//! ```sql
//! ALTER TABLE cano_cluster_runs ADD COLUMN wake_at timestamptz;  -- NULL: no deadline
//! ALTER TABLE cano_cluster_runs ADD COLUMN waiting_for text;     -- the signal's name
//! -- The status check gains 'waiting'.
//! ALTER TABLE cano_cluster_runs DROP CONSTRAINT cano_cluster_runs_status_check;
//! ALTER TABLE cano_cluster_runs ADD CONSTRAINT cano_cluster_runs_status_check CHECK (status IN
//!     ('ready', 'running', 'waiting', 'succeeded', 'failed', 'parked', 'cancelled'));
//! CREATE INDEX cano_cluster_runs_waiting ON cano_cluster_runs (queue, wake_at)
//!     WHERE status = 'waiting';
//! ```
//!
//! # Version 7: cron schedules across machines
//!
//! One row per schedule of the [cluster's cron](crate::cluster::Cron) (feature
//! `scheduler`), locked by the node that starts its due ticks:
//!
//! ```sql
//! CREATE TABLE cano_cluster_schedules (
//!     name       text        PRIMARY KEY,
//!     last_tick  timestamptz NOT NULL,  -- every tick up to here is handled
//!     created_at timestamptz NOT NULL DEFAULT now()
//! );
//! ```
//!
//! # Version 8: leases renewed in place
//!
//! Every lease is found by its run's id; the index on `lease_until` served no query and
//! made each renewal (every append extends the lease) write a new index entry. Without
//! it, and with room left in each page, a renewal, a claim and a release rewrite the row
//! in its page (a HOT update) and touch no index.
//!
//! ```sql
//! DROP INDEX cano_runs_lease_until;
//! ALTER TABLE cano_runs SET (fillfactor = 70);
//! ALTER TABLE cano_cluster_runs SET (fillfactor = 80);
//! ```

use super::error::{Doing, pg_error};
use crate::error::CanoError;
use tokio_postgres::Client;

/// The schema version this library writes and reads: the newest of its migrations.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Migration `n + 1` is `MIGRATIONS[n]`. Append only; never edit a released one. Each is
/// written to run again over a database that has part of it (`IF NOT EXISTS`), so that
/// dropping `cano_schema_version` rebuilds what is missing.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE IF NOT EXISTS cano_checkpoints (
        workflow_id text        NOT NULL,
        sequence    bigint      NOT NULL CHECK (sequence >= 0),
        kind        text        NOT NULL,
        state       text        NOT NULL,
        task_id     text        NOT NULL,
        output_blob bytea,
        created_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (workflow_id, sequence)
    );
    CREATE TABLE IF NOT EXISTS cano_signals (
        workflow_id text        NOT NULL,
        signal_id   text        NOT NULL,
        arrival     bigint      GENERATED ALWAYS AS IDENTITY,
        name        text        NOT NULL,
        payload     bytea       NOT NULL,
        sent_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (workflow_id, signal_id)
    );
",
    "
    CREATE TABLE IF NOT EXISTS cano_runs (
        workflow_id text        PRIMARY KEY,
        owner       text,
        epoch       bigint      NOT NULL CHECK (epoch > 0),
        lease_until timestamptz NOT NULL,
        claimed_at  timestamptz NOT NULL DEFAULT now(),
        released_at timestamptz
    );
    CREATE INDEX IF NOT EXISTS cano_runs_lease_until ON cano_runs (lease_until)
        WHERE owner IS NOT NULL;
    ALTER TABLE cano_checkpoints ADD COLUMN IF NOT EXISTS epoch bigint;
    CREATE OR REPLACE FUNCTION cano_fenced_clear(run text, lease_epoch bigint)
    RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE cano_runs SET owner = NULL, lease_until = now(), released_at = now()
        WHERE workflow_id = run AND epoch = lease_epoch
          AND owner IS NOT NULL AND lease_until > now();
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        DELETE FROM cano_checkpoints WHERE workflow_id = run;
        DELETE FROM cano_signals WHERE workflow_id = run;
        RETURN true;
    END $$;
",
    "
    CREATE TABLE IF NOT EXISTS cano_cluster_runs (
        run_id          text        PRIMARY KEY,
        queue           text        NOT NULL,
        workflow        text        NOT NULL,
        status          text        NOT NULL
            CHECK (status IN ('ready', 'running', 'succeeded', 'failed', 'parked')),
        input           jsonb       NOT NULL,
        initial_state   jsonb       NOT NULL,
        final_state     jsonb,
        error           text,
        attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        idempotency_key text        UNIQUE,
        worker          text,
        heartbeat_at    timestamptz,
        submitted_at    timestamptz NOT NULL DEFAULT now(),
        finished_at     timestamptz
    );
    CREATE INDEX IF NOT EXISTS cano_cluster_runs_ready ON cano_cluster_runs (queue, submitted_at)
        WHERE status = 'ready';
    CREATE INDEX IF NOT EXISTS cano_cluster_runs_running ON cano_cluster_runs (heartbeat_at)
        WHERE status = 'running';
    CREATE INDEX IF NOT EXISTS cano_cluster_runs_finished ON cano_cluster_runs (finished_at)
        WHERE finished_at IS NOT NULL;
",
    "
    ALTER TABLE cano_cluster_runs ADD COLUMN IF NOT EXISTS cancel_requested_at timestamptz;
    ALTER TABLE cano_cluster_runs DROP CONSTRAINT IF EXISTS cano_cluster_runs_status_check;
    ALTER TABLE cano_cluster_runs ADD CONSTRAINT cano_cluster_runs_status_check
        CHECK (status IN ('ready', 'running', 'succeeded', 'failed', 'parked', 'cancelled'));
",
    "
    CREATE TABLE IF NOT EXISTS cano_run_failures (
        workflow_id text        PRIMARY KEY,
        epoch       bigint      NOT NULL,
        error       text        NOT NULL,
        failed_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE OR REPLACE FUNCTION cano_fenced_clear(run text, lease_epoch bigint)
    RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE cano_runs SET owner = NULL, lease_until = now(), released_at = now()
        WHERE workflow_id = run AND epoch = lease_epoch
          AND owner IS NOT NULL AND lease_until > now();
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        DELETE FROM cano_checkpoints WHERE workflow_id = run;
        DELETE FROM cano_signals WHERE workflow_id = run;
        DELETE FROM cano_run_failures WHERE workflow_id = run;
        RETURN true;
    END $$;
",
    "
    ALTER TABLE cano_cluster_runs ADD COLUMN IF NOT EXISTS wake_at timestamptz;
    ALTER TABLE cano_cluster_runs ADD COLUMN IF NOT EXISTS waiting_for text;
    ALTER TABLE cano_cluster_runs DROP CONSTRAINT IF EXISTS cano_cluster_runs_status_check;
    ALTER TABLE cano_cluster_runs ADD CONSTRAINT cano_cluster_runs_status_check CHECK (status IN
        ('ready', 'running', 'waiting', 'succeeded', 'failed', 'parked', 'cancelled'));
    CREATE INDEX IF NOT EXISTS cano_cluster_runs_waiting ON cano_cluster_runs (queue, wake_at)
        WHERE status = 'waiting';
",
    "
    CREATE TABLE IF NOT EXISTS cano_cluster_schedules (
        name       text        PRIMARY KEY,
        last_tick  timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
",
    "
    DROP INDEX IF EXISTS cano_runs_lease_until;
    ALTER TABLE cano_runs SET (fillfactor = 70);
    ALTER TABLE cano_cluster_runs SET (fillfactor = 80);
",
];

/// The advisory lock key every cano process takes while it migrates (`"cano"` in ASCII,
/// then the schema lock's number).
const MIGRATION_LOCK: i64 = 0x6361_6e6f_0000_0001;

/// Bring the database's cano tables to [`SCHEMA_VERSION`], or refuse a newer schema.
///
/// Cancel-safe: dropped mid-way, the open transaction is rolled back and nothing changes.
pub(super) async fn migrate(client: &mut Client) -> Result<(), CanoError> {
    let failed = |e: tokio_postgres::Error| pg_error(&e, Doing::Migrate);
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS cano_schema_version (
             version    integer     PRIMARY KEY,
             library    text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(failed)?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM cano_schema_version",
            &[],
        )
        .await
        .map_err(failed)?
        .try_get(0)
        .map_err(failed)?;
    if current > SCHEMA_VERSION {
        return Err(newer_schema(current));
    }
    let library = concat!("cano ", env!("CARGO_PKG_VERSION"));
    for (version, sql) in (1..).zip(MIGRATIONS).skip(current.max(0) as usize) {
        tx.batch_execute(sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO cano_schema_version (version, library) VALUES ($1, $2)",
            &[&version, &library],
        )
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// Check, changing nothing, that the database has the cano tables at [`SCHEMA_VERSION`]
/// (for a store opened with migrations off).
///
/// Cancel-safe: it only reads.
pub(super) async fn check(client: &Client) -> Result<(), CanoError> {
    let failed = |e: tokio_postgres::Error| pg_error(&e, Doing::Check);
    let found = client
        .query_one(
            "SELECT to_regclass('cano_schema_version') IS NOT NULL, \
                    to_regclass('cano_checkpoints') IS NOT NULL, \
                    to_regclass('cano_signals') IS NOT NULL",
            &[],
        )
        .await
        .map_err(failed)?;
    let [versions, checkpoints, signals]: [bool; 3] = [found.get(0), found.get(1), found.get(2)];
    if !(versions || checkpoints || signals) {
        return Err(CanoError::checkpoint_store(
            "postgres: the database has no cano tables (`cano_checkpoints`, `cano_signals`): \
             no program has used it as a cano store, or the connection's `search_path` \
             names another schema; nothing was created",
        ));
    }
    let current: i32 = if versions {
        client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM cano_schema_version",
                &[],
            )
            .await
            .map_err(failed)?
            .try_get(0)
            .map_err(failed)?
    } else {
        0
    };
    if current > SCHEMA_VERSION {
        return Err(newer_schema(current));
    }
    if current < SCHEMA_VERSION || !(checkpoints && signals) {
        return Err(CanoError::checkpoint_store(format!(
            "postgres: the database's cano tables are incomplete or older than this library \
             (cano {}) reads (schema version {current}, expected {SCHEMA_VERSION}); a program \
             that connects with `PostgresCheckpointStore::connect` creates or upgrades them; \
             nothing was changed",
            env!("CARGO_PKG_VERSION")
        )));
    }
    Ok(())
}

/// The error for a database upgraded by a newer cano.
fn newer_schema(found: i32) -> CanoError {
    CanoError::checkpoint_store(format!(
        "postgres: the database's cano schema is version {found}, newer than this library \
         (cano {}) knows, which is version {SCHEMA_VERSION}; a newer cano upgraded it. \
         Upgrade cano in this program, or point it at another database; nothing was changed",
        env!("CARGO_PKG_VERSION")
    ))
}
