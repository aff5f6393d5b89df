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
//! Wake-ups: a send notifies the channel `cano_signals` (`pg_notify`, delivered when its
//! transaction commits) with the run's id. Each store object that has runs waiting keeps
//! one connection listening on it and wakes its waiting run of that id, in whichever
//! process it is. A notification is only a hint: a lost one (the listening connection
//! dropped, a server restart) costs a delay, not a signal, because every waiting run also
//! looks for signals once a second (or as set with
//! [`PostgresStoreBuilder::with_signal_poll_interval`](super::PostgresStoreBuilder::with_signal_poll_interval)),
//! and the listener reconnects.

use super::error::Doing;
use super::pool::Messages;
use super::{PostgresCheckpointStore, decode_row, kind_name};
use crate::error::CanoError;
use crate::recovery::memory::{consumed, no_run};
use crate::recovery::{RowKind, StoreFuture};
use crate::signal::{Signal, SignalStore};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_postgres::AsyncMessage;

/// How often a waiting run looks for signals whatever the notifications say, unless set
/// with [`PostgresStoreBuilder::with_signal_poll_interval`](super::PostgresStoreBuilder::with_signal_poll_interval).
pub(super) const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How often a lost listening connection is opened again (at most), and how long opening
/// it may take.
const RELISTEN: Duration = Duration::from_secs(1);
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// The notification channel of signal sends.
pub(crate) const CHANNEL: &str = "cano_signals";

/// The longest payload `pg_notify` takes is 7,999 bytes: a run with a longer id is found
/// by polling only.
const MAX_NOTIFY_PAYLOAD: usize = 7_999;

/// The runs of this store object that wait for a signal, and whether the task that wakes
/// them (on notifications, and every [`POLL_INTERVAL`]) runs.
#[derive(Default)]
pub(super) struct Waiting {
    runs: parking_lot::Mutex<HashSet<String>>,
    /// Whether the watching task runs (started by the first wait).
    watching: AtomicBool,
}

/// Wake the store's waiting runs when a notification names them, and all of them every
/// poll interval, until the store is gone.
fn start_watching(inner: Weak<super::Inner>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    /// Lets the next wait start a watcher again should this task end (its runtime shut
    /// down).
    struct Stopped(Weak<super::Inner>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            if let Some(inner) = self.0.upgrade() {
                inner.waiting.watching.store(false, Ordering::Release);
            }
        }
    }
    let stopped = Stopped(inner.clone());
    handle.spawn(async move {
        let _stopped = stopped;
        // The listening connection: its client (kept for the connection to stay open) and
        // its messages.
        let mut listener: Option<(tokio_postgres::Client, Messages)> = None;
        let poll = inner
            .upgrade()
            .map_or(POLL_INTERVAL, |inner| inner.signal_poll_interval);
        let mut beat = tokio::time::interval(poll.min(RELISTEN));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut polled = tokio::time::Instant::now();
        loop {
            let message = async {
                match listener.as_mut() {
                    Some((_, messages)) => messages.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = message => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        let Some(inner) = inner.upgrade() else { return };
                        if inner.waiting.runs.lock().contains(n.payload()) {
                            inner.wakers.wake(n.payload());
                        }
                    }
                    Some(Ok(_)) => {}
                    // The connection is gone: listen again at the next beat.
                    Some(Err(_)) | None => listener = None,
                },
                _ = beat.tick() => {
                    let Some(inner) = inner.upgrade() else { return };
                    if polled.elapsed() >= poll {
                        polled = tokio::time::Instant::now();
                        let runs: Vec<String> =
                            inner.waiting.runs.lock().iter().cloned().collect();
                        for run in &runs {
                            inner.wakers.wake(run);
                        }
                    }
                    if listener.is_none() {
                        listener = listen(&inner).await;
                    }
                }
            }
        }
    });
}

/// A connection listening on [`CHANNEL`], or `None` if that failed (tried again later).
async fn listen(inner: &super::Inner) -> Option<(tokio_postgres::Client, Messages)> {
    listen_on(inner, CHANNEL).await
}

/// A connection of its own listening on `channel` (an SQL identifier), or `None` if that
/// failed.
pub(super) async fn listen_on(
    inner: &super::Inner,
    channel: &str,
) -> Option<(tokio_postgres::Client, Messages)> {
    let connecting = inner.pool.connector()();
    let (client, mut messages) = tokio::time::timeout(LISTEN_TIMEOUT, connecting)
        .await
        .ok()?
        .ok()?;
    // The connection works only while its messages are polled: drive both until `LISTEN`
    // is answered.
    let answered = {
        let sql = format!("LISTEN {channel}");
        let listening = client.batch_execute(&sql);
        tokio::pin!(listening);
        tokio::time::timeout(LISTEN_TIMEOUT, async {
            loop {
                tokio::select! {
                    done = &mut listening => break done.is_ok(),
                    message = messages.next() => {
                        if !matches!(message, Some(Ok(_))) {
                            break false;
                        }
                    }
                }
            }
        })
        .await
    };
    matches!(answered, Ok(true)).then_some((client, messages))
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
        if stored == 1 && workflow_id.len() <= MAX_NOTIFY_PAYLOAD {
            // Delivered at commit, to every listening store.
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &workflow_id])
                .await
                .map_err(&failed)?;
        }
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

    fn poll_signal_sent(
        &self,
        workflow_id: &str,
        cx: &mut std::task::Context<'_>,
    ) -> Option<std::task::Poll<()>> {
        let (poll, first) = self.inner.wakers.poll(workflow_id, cx);
        if first {
            self.inner
                .waiting
                .runs
                .lock()
                .insert(workflow_id.to_owned());
            if !self.inner.waiting.watching.swap(true, Ordering::AcqRel) {
                start_watching(Arc::downgrade(&self.inner));
            }
        }
        Some(poll)
    }

    fn forget_signal_waker(&self, workflow_id: &str) {
        self.inner.waiting.runs.lock().remove(workflow_id);
        self.inner.wakers.forget(workflow_id);
    }
}
