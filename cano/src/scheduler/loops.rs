//! The per-flow loops of interval and cron flows, and the stop signal they watch.

use super::clock;
use super::flow::Flow;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::fmt;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What the driver and the loops share: the running flag, the stop signal, and the handles
/// of every spawned loop and triggered run.
pub(crate) struct Control {
    running: AtomicBool,
    stop: Notify,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Control {
    pub(crate) fn new() -> Self {
        Self {
            running: AtomicBool::new(true),
            stop: Notify::new(),
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Clear the running flag and wake every loop that is sleeping.
    pub(crate) fn signal_stop(&self) {
        self.running.store(false, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    /// Track a spawned task, dropping the handles of finished ones.
    pub(crate) fn track(&self, handle: JoinHandle<()>) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|h| !h.is_finished());
        tasks.push(handle);
    }

    /// Sleep for `wait` unless the scheduler stops first. Returns whether the scheduler is
    /// still running afterwards.
    async fn sleep(&self, wait: Duration) -> bool {
        let mut stopped = pin!(self.stop.notified());
        // Registered before the flag is read, so a stop between the check and the sleep
        // still wakes us.
        stopped.as_mut().enable();
        if !self.is_running() {
            return false;
        }
        tokio::select! {
            () = stopped => false,
            () = tokio::time::sleep(wait) => self.is_running(),
        }
    }
}

/// Run the flow now, inline, unless it is running (a triggered run) or tripped.
async fn run_if_free<TState, TResourceKey>(flow: &Flow<TState, TResourceKey>)
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    if let Ok(reservation) = flow.try_reserve() {
        flow.run(reservation).await;
    }
}

/// An interval flow: run at once, then sleep `max(interval, backoff remaining)` after each
/// run ends and run again. Runs are awaited here, so the flow never overlaps itself.
pub(crate) async fn every<TState, TResourceKey>(
    flow: Arc<Flow<TState, TResourceKey>>,
    control: Arc<Control>,
    interval: Duration,
) where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    if !control.is_running() {
        return;
    }
    run_if_free(&flow).await;
    loop {
        let now = clock::now();
        let wait = match flow.backoff_until(now) {
            Some(until) => interval.max(clock::until(until, now)),
            None => interval,
        };
        if !control.sleep(wait).await {
            return;
        }
        run_if_free(&flow).await;
    }
}

/// A cron flow: sleep until the next tick and run, unless the tick falls inside a backoff
/// window or the flow is busy. The next tick is computed after each run, so ticks that pass
/// during a run are skipped rather than queued. Ends when the schedule has no further tick.
pub(crate) async fn cron<TState, TResourceKey>(
    flow: Arc<Flow<TState, TResourceKey>>,
    control: Arc<Control>,
) where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    let super::flow::Cadence::Cron(schedule) = &flow.cadence else {
        return;
    };
    let mut last_tick: Option<DateTime<Utc>> = None;
    while control.is_running() {
        // Never before the tick just handled: a wake-up a hair early must not fire it twice.
        let now = clock::now();
        let from = last_tick.map_or(now, |t| t.max(now));
        let Some(tick) = clock::next_tick(schedule, from) else {
            return;
        };
        if !control.sleep(clock::until(tick, clock::now())).await {
            return;
        }
        last_tick = Some(tick);
        if flow.backoff_until(clock::now()).is_some() {
            continue;
        }
        run_if_free(&flow).await;
    }
}
