//! The run writers a worker gives the workflows it runs: every append fenced by the
//! worker's lease on the run, and the run's final clear deferred to the worker, which does
//! it (fenced) in the transaction that records the run's outcome, so that a run's log is
//! never gone without its outcome recorded.
//!
//! A run the worker claimed ahead of its free slots ([`Worker::with_prefetch`]) takes its
//! [`Slot`] here, after its first entry row is committed and before anything else of it
//! runs: the commit of that row overlaps the wait for a slot.
//!
//! [`Worker::with_prefetch`]: super::Worker::with_prefetch

use crate::error::CanoError;
use crate::recovery::postgres::{Lease, PostgresCheckpointStore};
use crate::recovery::{CheckpointRow, CheckpointStore, RunWriter, RunWriters, StoreFuture};
use crate::signal::{Signal, SignalStore};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// A run's hold on one of its worker's slots (one per run it may execute at once).
pub(super) struct Slot {
    slots: Arc<Semaphore>,
    permit: parking_lot::Mutex<Option<OwnedSemaphorePermit>>,
}

impl Slot {
    /// A run's hold, not taken yet, on one of `slots`.
    pub(super) fn new(slots: Arc<Semaphore>) -> Self {
        Self {
            slots,
            permit: parking_lot::Mutex::new(None),
        }
    }

    /// Wait for a slot, unless the run holds one already. Runs wait in the order they
    /// asked.
    pub(super) async fn take(&self) {
        if self.permit.lock().is_some() {
            return;
        }
        // The worker never closes its semaphore: an error cannot happen, and would only
        // let the run go on without a slot.
        if let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await {
            *self.permit.lock() = Some(permit);
        }
    }

    /// Free the run's slot: its execution is over.
    pub(super) fn give_back(&self) {
        self.permit.lock().take();
    }
}

/// [`RunWriters`] over the worker's store, with the clear deferred (see the module docs).
pub(super) struct DeferredClear {
    store: PostgresCheckpointStore,
    /// The worker's lease on the run.
    lease: Lease,
    /// Set when the engine asked to clear the run's log (it succeeded or rolled back).
    cleared: Arc<AtomicBool>,
    /// The run's slot, taken (if the run does not hold it yet) after each append: see
    /// the module docs.
    slot: Arc<Slot>,
    /// Where a failed append is reported: see [`Writer::append`].
    failures: mpsc::UnboundedSender<CanoError>,
}

impl DeferredClear {
    /// Writers on `store` under `lease` (the worker's, on the run); `cleared` is set when
    /// the run's clear is asked for; each append returns only once the run holds `slot`;
    /// a failed append is reported to `failures`.
    pub(super) fn new(
        store: PostgresCheckpointStore,
        lease: Lease,
        cleared: Arc<AtomicBool>,
        slot: Arc<Slot>,
        failures: mpsc::UnboundedSender<CanoError>,
    ) -> Self {
        Self {
            store,
            lease,
            cleared,
            slot,
            failures,
        }
    }
}

impl CheckpointStore for DeferredClear {
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
        self.store.append(workflow_id, row)
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
        self.store.load_run(workflow_id)
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
        self.store.clear(workflow_id)
    }
}

/// Signals go to the worker's store as they are: a run waiting for one on this worker is
/// woken by the store; a run given back while it waits is made ready by the worker loop.
impl SignalStore for DeferredClear {
    fn send_signal<'a>(&'a self, workflow_id: &'a str, signal: Signal) -> StoreFuture<'a, bool> {
        self.store.send_signal(workflow_id, signal)
    }

    fn pending_signals<'a>(
        &'a self,
        workflow_id: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Vec<Signal>> {
        self.store.pending_signals(workflow_id, name)
    }

    fn remove_signal<'a>(
        &'a self,
        workflow_id: &'a str,
        signal_id: &'a str,
    ) -> StoreFuture<'a, ()> {
        self.store.remove_signal(workflow_id, signal_id)
    }

    fn poll_signal_sent(
        &self,
        workflow_id: &str,
        cx: &mut std::task::Context<'_>,
    ) -> Option<std::task::Poll<()>> {
        self.store.poll_signal_sent(workflow_id, cx)
    }

    fn forget_signal_waker(&self, workflow_id: &str) {
        self.store.forget_signal_waker(workflow_id);
    }
}

impl RunWriters for DeferredClear {
    fn writer<'a>(&'a self, workflow_id: &'a str) -> StoreFuture<'a, Box<dyn RunWriter>> {
        Box::pin(async move {
            // The worker's lease is on this run only; another id would be a bug.
            if workflow_id != self.lease.workflow_id() {
                return Err(CanoError::checkpoint_store(format!(
                    "cluster: the writers of run {:?} were asked to write run {workflow_id:?}",
                    self.lease.workflow_id()
                )));
            }
            Ok(Box::new(Writer {
                fenced: self.store.writer_for(&self.lease),
                cleared: Arc::clone(&self.cleared),
                slot: Arc::clone(&self.slot),
                failures: self.failures.clone(),
            }) as Box<dyn RunWriter>)
        })
    }
}

/// One run's writer: fenced appends (each returning once the run holds its slot); the
/// clear only noted.
struct Writer {
    fenced: Box<dyn RunWriter>,
    cleared: Arc<AtomicBool>,
    slot: Arc<Slot>,
    failures: mpsc::UnboundedSender<CanoError>,
}

impl RunWriter for Writer {
    /// A failed append never returns: it is reported to the worker, which stops the run
    /// and tries it again from its log. Returned, the error would fail the run, and a
    /// saga would roll back on a worker whose lease may be another's by now (a fence)
    /// or that could not record the rollback (the database down).
    fn append(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.fenced.append(row).await {
                if self.failures.send(e.clone()).is_err() {
                    // Nobody to stop the run: fail it as a store would.
                    return Err(e);
                }
                std::future::pending::<()>().await;
            }
            self.slot.take().await;
            Ok(())
        })
    }

    fn clear(&self) -> StoreFuture<'_, ()> {
        self.cleared.store(true, Ordering::Release);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Not written: the worker records the run's final state and clears its log in one
    /// statement right after (a crash before it resumes the run from its previous row).
    fn append_last(&self, row: CheckpointRow) -> StoreFuture<'_, ()> {
        drop(row);
        Box::pin(std::future::ready(Ok(())))
    }

    fn finished_with_error<'a>(&'a self, error: &'a CanoError) -> StoreFuture<'a, ()> {
        self.fenced.finished_with_error(error)
    }
}
