//! Signals in a [`RedbCheckpointStore`]: the [`SignalStore`] capability.
//!
//! Pending signals live in a second table, `"cano_signals"`, keyed by `(workflow_id,
//! arrival number)`, whose values are the postcard encoding of `{ id, name, payload }`.
//! Signals are rare next to checkpoint rows, so they skip the write-ahead log: each send
//! or removal is one durable redb transaction of its own, on tokio's blocking pool.
//!
//! A run's pending signals are deleted when its log is cleared (after the clear is
//! durable). Should the process die in between, the leftovers stay in the file: a later
//! run under the same id would see them (they are never consumed twice by one run). Use
//! fresh ids per run, as checkpoint logs require anyway.

use super::{RedbCheckpointStore, Shared, poisoned, redb_error};
use crate::error::CanoError;
use crate::recovery::StoreFuture;
use crate::recovery::memory::{consumed, no_run};
use crate::signal::{Signal, SignalStore, Wakers};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub(super) const SIGNALS: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
    TableDefinition::new("cano_signals");

/// A stored signal (the key holds the run and the arrival number).
#[derive(Serialize, Deserialize)]
struct StoredSignal {
    id: String,
    name: String,
    payload: Vec<u8>,
}

/// What the store keeps in memory about signals.
pub(super) struct Signals {
    wakers: Wakers,
    /// The runs that may have pending signals (read when the file is opened), so that
    /// clearing a log costs nothing more when it has none.
    runs: Mutex<HashSet<String>>,
}

impl Signals {
    /// Read which runs have pending signals (when the file is opened).
    pub(super) fn load(shared: &Shared) -> Result<Self, CanoError> {
        Ok(Self {
            wakers: Wakers::default(),
            runs: Mutex::new(stored_runs(shared)?),
        })
    }

    /// Whether `workflow_id` may have pending signals.
    fn may_have(&self, workflow_id: &str) -> Result<bool, CanoError> {
        let runs = self.runs.lock().map_err(|_| poisoned())?;
        Ok(!runs.is_empty() && runs.contains(workflow_id))
    }

    fn note(&self, workflow_id: &str, has: bool) {
        if let Ok(mut runs) = self.runs.lock() {
            if has {
                runs.insert(workflow_id.to_owned());
            } else {
                runs.remove(workflow_id);
            }
        }
    }
}

/// The runs with rows in the signals table.
fn stored_runs(shared: &Shared) -> Result<HashSet<String>, CanoError> {
    let txn = shared.db.begin_read().map_err(redb_error)?;
    let table = match txn.open_table(SIGNALS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashSet::new()),
        Err(e) => return Err(redb_error(e)),
    };
    let mut runs = HashSet::new();
    for item in table.iter().map_err(redb_error)? {
        let (key, _) = item.map_err(redb_error)?;
        runs.insert(key.value().0.to_owned());
    }
    Ok(runs)
}

/// The pending signals of `workflow_id` with their arrival numbers, oldest first.
fn read(shared: &Shared, workflow_id: &str) -> Result<Vec<(u64, Signal)>, CanoError> {
    let txn = shared.db.begin_read().map_err(redb_error)?;
    let table = match txn.open_table(SIGNALS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(redb_error(e)),
    };
    let mut signals = Vec::new();
    for item in table
        .range((workflow_id, u64::MIN)..=(workflow_id, u64::MAX))
        .map_err(redb_error)?
    {
        let (key, value) = item.map_err(redb_error)?;
        let stored: StoredSignal = postcard::from_bytes(value.value()).map_err(|e| {
            CanoError::checkpoint_store(format!(
                "redb: a pending signal of run {workflow_id:?} does not decode ({e}); \
                 the file was edited or damaged"
            ))
        })?;
        signals.push((
            key.value().1,
            Signal {
                name: stored.name,
                id: stored.id,
                payload: stored.payload,
            },
        ));
    }
    Ok(signals)
}

/// Store `signal` unless its id is pending already.
fn send(shared: &Shared, workflow_id: &str, signal: &Signal) -> Result<bool, CanoError> {
    let rows = RedbCheckpointStore::read_rows(shared, workflow_id)?;
    if rows.is_empty() {
        return Err(no_run(workflow_id, signal));
    }
    if consumed(&rows, &signal.id) {
        return Ok(false);
    }
    let value = postcard::to_stdvec(&StoredSignal {
        id: signal.id.clone(),
        name: signal.name.clone(),
        payload: signal.payload.clone(),
    })
    .map_err(|e| CanoError::checkpoint_store(format!("encode signal: {e}")))?;
    let txn = shared.db.begin_write().map_err(redb_error)?;
    {
        let mut table = txn.open_table(SIGNALS).map_err(redb_error)?;
        let mut next = 0;
        for item in table
            .range((workflow_id, u64::MIN)..=(workflow_id, u64::MAX))
            .map_err(redb_error)?
        {
            let (key, value) = item.map_err(redb_error)?;
            if postcard::from_bytes::<StoredSignal>(value.value()).is_ok_and(|s| s.id == signal.id)
            {
                // A repeated delivery: the transaction is dropped, nothing written.
                return Ok(false);
            }
            next = key.value().1.saturating_add(1);
        }
        table
            .insert((workflow_id, next), value.as_slice())
            .map_err(redb_error)?;
    }
    txn.commit().map_err(redb_error)?;
    Ok(true)
}

/// Delete the pending signals of `workflow_id` whose id is `only` (all of them for
/// `None`). Returns whether any are left.
fn delete(shared: &Shared, workflow_id: &str, only: Option<&str>) -> Result<bool, CanoError> {
    let pending = read(shared, workflow_id)?;
    let doomed: Vec<u64> = pending
        .iter()
        .filter(|(_, s)| only.is_none_or(|id| s.id == id))
        .map(|(n, _)| *n)
        .collect();
    let left = pending.len() > doomed.len();
    if doomed.is_empty() {
        return Ok(left);
    }
    let txn = shared.db.begin_write().map_err(redb_error)?;
    {
        let mut table = txn.open_table(SIGNALS).map_err(redb_error)?;
        for n in doomed {
            table.remove((workflow_id, n)).map_err(redb_error)?;
        }
    }
    txn.commit().map_err(redb_error)?;
    Ok(left)
}

impl RedbCheckpointStore {
    /// Run `f` on the shared database on tokio's blocking pool (or here, outside a
    /// runtime).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T, CanoError> + Send + 'static,
    ) -> Result<T, CanoError> {
        let shared = Arc::clone(&self.inner.shared);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || f(&shared))
                .await
                .unwrap_or_else(|e| {
                    Err(CanoError::checkpoint_store(format!(
                        "redb: signal task failed: {e}"
                    )))
                }),
            Err(_) => f(&shared),
        }
    }

    /// After a run's log was cleared: forget its pending signals.
    pub(super) async fn clear_signals(&self, workflow_id: &str) -> Result<(), CanoError> {
        if !self.inner.signals.may_have(workflow_id)? {
            return Ok(());
        }
        let id = workflow_id.to_owned();
        self.blocking(move |shared| delete(shared, &id, None))
            .await?;
        self.inner.signals.note(workflow_id, false);
        Ok(())
    }
}

impl SignalStore for RedbCheckpointStore {
    fn send_signal<'a>(&'a self, workflow_id: &'a str, signal: Signal) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let id = workflow_id.to_owned();
            // Noted first, so that a clear from now on looks for it.
            self.inner.signals.note(workflow_id, true);
            let stored = self
                .blocking(move |shared| send(shared, &id, &signal))
                .await?;
            self.inner.signals.wakers.wake(workflow_id);
            Ok(stored)
        })
    }

    fn pending_signals<'a>(
        &'a self,
        workflow_id: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Vec<Signal>> {
        Box::pin(async move {
            if !self.inner.signals.may_have(workflow_id)? {
                return Ok(Vec::new());
            }
            let id = workflow_id.to_owned();
            let all = self.blocking(move |shared| read(shared, &id)).await?;
            Ok(all
                .into_iter()
                .map(|(_, s)| s)
                .filter(|s| s.name == name)
                .collect())
        })
    }

    fn remove_signal<'a>(
        &'a self,
        workflow_id: &'a str,
        signal_id: &'a str,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (id, signal_id) = (workflow_id.to_owned(), signal_id.to_owned());
            let left = self
                .blocking(move |shared| delete(shared, &id, Some(&signal_id)))
                .await?;
            if !left {
                self.inner.signals.note(workflow_id, false);
            }
            Ok(())
        })
    }

    fn poll_signal_sent(
        &self,
        workflow_id: &str,
        cx: &mut std::task::Context<'_>,
    ) -> Option<std::task::Poll<()>> {
        Some(self.inner.signals.wakers.poll(workflow_id, cx).0)
    }

    fn forget_signal_waker(&self, workflow_id: &str) {
        self.inner.signals.wakers.forget(workflow_id);
    }
}
