//! Signals in a [`PostgresCheckpointStore`]: the [`SignalStore`] capability.
//!
//! Pending signals are rows of `cano_signals`, keyed by `(workflow_id, signal_id)`, so a
//! repeated delivery is refused by the key whichever process sends it; `arrival` orders
//! them. A run's pending signals are deleted with its log, in the same transaction.
//!
//! A send locks the run's first checkpoint row (`FOR KEY SHARE`) while it stores the
//! signal, so it cannot interleave with a clear: either the clear waits and deletes the
//! new signal too, or the send finds the run gone and is refused.
//!
//! Wake-ups: a send through this store object wakes the runs of this process waiting on
//! it at once; every other waiting run is woken once a second ([`POLL_INTERVAL`]) to look,
//! so a signal sent by another process is taken within about a second.

use super::error::Doing;
use super::{PostgresCheckpointStore, decode_row, kind_name};
use crate::error::CanoError;
use crate::recovery::memory::{consumed, no_run};
use crate::recovery::{RowKind, StoreFuture};
use crate::signal::{Signal, SignalStore};
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often a waiting run looks for signals sent by other processes.
pub(super) const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The runs of this store object that wait for a signal, and the task that wakes them
/// every [`POLL_INTERVAL`].
#[derive(Default)]
pub(super) struct Waiting {
    runs: parking_lot::Mutex<HashSet<String>>,
    /// Whether the polling task runs (started by the first wait).
    polling: std::sync::atomic::AtomicBool,
}

/// Wake every waiting run of the store every [`POLL_INTERVAL`], until the store is gone.
fn start_polling(inner: Weak<super::Inner>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    /// Lets the next wait start polling again should this task end (its runtime shut
    /// down).
    struct Stopped(Weak<super::Inner>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            if let Some(inner) = self.0.upgrade() {
                inner
                    .waiting
                    .polling
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
    }
    let stopped = Stopped(inner.clone());
    handle.spawn(async move {
        let _stopped = stopped;
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            let Some(inner) = inner.upgrade() else { return };
            let runs: Vec<String> = inner.waiting.runs.lock().iter().cloned().collect();
            for run in runs {
                inner.wakers.wake(&run);
            }
        }
    });
}

impl PostgresCheckpointStore {
    async fn store_signal(&self, workflow_id: &str, signal: &Signal) -> Result<bool, CanoError> {
        let signal_kind = kind_name(RowKind::Signal)?;
        let mut conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::Signal);
        let tx = conn.client.transaction().await.map_err(&failed)?;
        let run = tx
            .query_opt(
                "SELECT 1 FROM cano_checkpoints WHERE workflow_id = $1 \
                 ORDER BY sequence LIMIT 1 FOR KEY SHARE",
                &[&workflow_id],
            )
            .await
            .map_err(&failed)?;
        if run.is_none() {
            return Err(no_run(workflow_id, signal));
        }
        let received = tx
            .query(
                "SELECT sequence, kind, state, task_id, output_blob FROM cano_checkpoints \
                 WHERE workflow_id = $1 AND kind = $2 ORDER BY sequence",
                &[&workflow_id, &signal_kind],
            )
            .await
            .map_err(&failed)?
            .iter()
            .map(|row| decode_row(workflow_id, row, 0, Doing::Signal))
            .collect::<Result<Vec<_>, _>>()?;
        if consumed(&received, &signal.id) {
            return Ok(false);
        }
        let stored = tx
            .execute(
                "INSERT INTO cano_signals (workflow_id, signal_id, name, payload) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&workflow_id, &signal.id, &signal.name, &signal.payload],
            )
            .await
            .map_err(&failed)?;
        tx.commit().await.map_err(&failed)?;
        Ok(stored == 1)
    }

    async fn pending(&self, workflow_id: &str, name: &str) -> Result<Vec<Signal>, CanoError> {
        let conn = self.inner.pool.get().await?;
        let failed = conn.on_error(Doing::Signal);
        let rows = conn
            .client
            .query(
                "SELECT signal_id, name, payload FROM cano_signals \
                 WHERE workflow_id = $1 AND name = $2 ORDER BY arrival",
                &[&workflow_id, &name],
            )
            .await
            .map_err(&failed)?;
        rows.iter()
            .map(|row| {
                Ok(Signal {
                    id: row.try_get(0).map_err(&failed)?,
                    name: row.try_get(1).map_err(&failed)?,
                    payload: row.try_get(2).map_err(&failed)?,
                })
            })
            .collect()
    }

    async fn remove(&self, workflow_id: &str, signal_id: &str) -> Result<(), CanoError> {
        let conn = self.inner.pool.get().await?;
        conn.client
            .execute(
                "DELETE FROM cano_signals WHERE workflow_id = $1 AND signal_id = $2",
                &[&workflow_id, &signal_id],
            )
            .await
            .map_err(conn.on_error(Doing::Signal))?;
        Ok(())
    }
}

impl SignalStore for PostgresCheckpointStore {
    fn send_signal<'a>(&'a self, workflow_id: &'a str, signal: Signal) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let stored = self.store_signal(workflow_id, &signal).await?;
            self.inner.wakers.wake(workflow_id);
            Ok(stored)
        })
    }

    fn pending_signals<'a>(
        &'a self,
        workflow_id: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Vec<Signal>> {
        Box::pin(self.pending(workflow_id, name))
    }

    fn remove_signal<'a>(
        &'a self,
        workflow_id: &'a str,
        signal_id: &'a str,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.remove(workflow_id, signal_id))
    }

    fn signal_waker(&self, workflow_id: &str) -> Option<Arc<tokio::sync::Notify>> {
        let waker = self.inner.wakers.get(workflow_id);
        self.inner
            .waiting
            .runs
            .lock()
            .insert(workflow_id.to_owned());
        if !self
            .inner
            .waiting
            .polling
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            start_polling(Arc::downgrade(&self.inner));
        }
        Some(waker)
    }

    fn forget_signal_waker(&self, workflow_id: &str) {
        self.inner.waiting.runs.lock().remove(workflow_id);
        self.inner.wakers.forget(workflow_id);
    }
}
