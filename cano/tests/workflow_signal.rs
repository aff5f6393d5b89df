//! Signals on the memory store (paused clock): a signal state waits for a named signal,
//! durable (sent before the wait or while the run is down), idempotent (by signal id),
//! consumed once and recorded in the log; with a timeout that moves to another state and
//! survives a resume; bad payloads rejected; a failing store loses nothing; `on_signal`
//! retries only the errors the task says are worth it.

mod support;

use cano::cancel::CancellationToken;
use cano::prelude::*;
use cano::recovery::StoreFuture;
use cano::signal::{self, Signal, SignalStore};
use cano::{MemoryCheckpointStore, RunStatus};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::Recorder;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Prepare,
    Approve,
    Ship,
    Expired,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Approval {
    approved: bool,
    by: String,
}

/// Waits for "approval"; records every payload it is given.
struct AwaitApproval {
    seen: Arc<Mutex<Vec<Approval>>>,
    timeout: Option<Duration>,
    /// Sleep this long in `on_signal` (to crash in the middle of it).
    slow: Duration,
}

#[task::signal(state = S)]
impl AwaitApproval {
    type Payload = Approval;
    fn name(&self) -> Cow<'static, str> {
        "await_approval".into()
    }
    fn signal(&self) -> Cow<'static, str> {
        "approval".into()
    }
    fn timeout(&self) -> Option<(Duration, S)> {
        self.timeout.map(|d| (d, S::Expired))
    }
    async fn on_signal(&self, _res: &Resources, a: Approval) -> Result<TaskResult<S>, CanoError> {
        tokio::time::sleep(self.slow).await;
        self.seen.lock().unwrap().push(a.clone());
        Ok(TaskResult::Single(if a.approved {
            S::Ship
        } else {
            S::Rejected
        }))
    }
}

/// Sleeps a minute, then waits for approval.
struct Prepare;
#[task(state = S)]
impl Prepare {
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(TaskResult::Single(S::Approve))
    }
}

struct Fixture {
    seen: Arc<Mutex<Vec<Approval>>>,
    store: Arc<MemoryCheckpointStore>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            seen: Arc::default(),
            store: Arc::new(MemoryCheckpointStore::new()),
        }
    }

    fn task(&self, timeout: Option<Duration>, slow: Duration) -> AwaitApproval {
        AwaitApproval {
            seen: self.seen.clone(),
            timeout,
            slow,
        }
    }

    fn workflow(&self, timeout: Option<Duration>) -> Workflow<S> {
        self.workflow_on(self.store.clone(), self.task(timeout, Duration::ZERO))
    }

    fn workflow_on<St: SignalStore>(&self, store: Arc<St>, task: AwaitApproval) -> Workflow<S> {
        Workflow::bare()
            .register(S::Prepare, Prepare)
            .register_signal(S::Approve, task)
            .add_exit_states(vec![S::Ship, S::Expired, S::Rejected])
            .with_signal_store(store)
            .with_workflow_id("order-7")
    }

    fn seen(&self) -> Vec<Approval> {
        self.seen.lock().unwrap().clone()
    }

    async fn kinds(&self) -> Vec<RowKind> {
        let rows = self.store.load_run("order-7").await.unwrap();
        rows.iter().map(|r| r.kind).collect()
    }
}

fn approval(by: &str) -> Approval {
    Approval {
        approved: true,
        by: by.into(),
    }
}

fn signal_of(id: &str, by: &str) -> Signal {
    Signal::new("approval", id, &approval(by)).unwrap()
}

/// Wait (on the paused clock) until the run's last row is of `kind`.
async fn until_last_row(store: &MemoryCheckpointStore, kind: RowKind) {
    for _ in 0..10_000 {
        let rows = store.load_run("order-7").await.unwrap();
        if rows.last().is_some_and(|r| r.kind == kind) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the run never wrote a {kind:?} row");
}

#[tokio::test(start_paused = true)]
async fn a_signal_sent_while_the_run_waits_is_consumed_once_and_logged() {
    let f = Fixture::new();
    let wf = f.workflow(None);
    let run = tokio::spawn(async move { wf.orchestrate(S::Prepare).await });
    until_last_row(&f.store, RowKind::SignalWait).await;
    let summary =
        cano::recovery::log::summarize("order-7", &f.store.load_run("order-7").await.unwrap());
    assert_eq!(
        summary.status,
        RunStatus::Waiting {
            deadline_ms: None,
            signal: Some("approval".into())
        }
    );
    assert!(
        f.store
            .send_signal("order-7", signal_of("s1", "ana"))
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .send_signal("order-7", signal_of("s1", "ana"))
            .await
            .unwrap_or(true),
        "a repeated delivery is a no-op"
    );
    assert_eq!(run.await.unwrap(), Ok(S::Ship));
    assert_eq!(f.seen(), [approval("ana")]);
    assert!(f.kinds().await.is_empty(), "the log is cleared at the end");
}

#[tokio::test(start_paused = true)]
async fn a_signal_sent_before_the_run_waits_is_not_lost() {
    let f = Fixture::new();
    let wf = f.workflow(None);
    let run = tokio::spawn(async move { wf.orchestrate(S::Prepare).await });
    // The run is in Prepare (a minute long): its log exists, it does not wait yet.
    until_last_row(&f.store, RowKind::StateEntry).await;
    signal::send(&*f.store, "order-7", signal_of("early", "bo"))
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(run.await.unwrap(), Ok(S::Ship));
    assert!(started.elapsed() <= Duration::from_secs(60));
    assert_eq!(f.seen(), [approval("bo")]);
}

/// Waits for "approval"; `on_signal` fails with `error` on its first `failures` calls,
/// which `calls` counts. Three retries a second apart, except for errors that say they are
/// permanent.
struct FlakyApproval {
    error: &'static str,
    failures: u32,
    calls: Arc<AtomicU32>,
}

#[task::signal(state = S)]
impl FlakyApproval {
    type Payload = Approval;
    fn signal(&self) -> Cow<'static, str> {
        "approval".into()
    }
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal().with_fixed_retry(3, Duration::from_secs(1))
    }
    fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
        !error.message().contains("permanent")
    }
    async fn on_signal(&self, _res: &Resources, _a: Approval) -> Result<TaskResult<S>, CanoError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(CanoError::task_execution(self.error));
        }
        Ok(TaskResult::Single(S::Ship))
    }
}

/// A run of `Prepare`, then a [`FlakyApproval`] failing `failures` times with `error`
/// (the approval is sent while `Prepare` runs): `on_signal`'s calls and the run's outcome.
async fn run_flaky(error: &'static str, failures: u32) -> (u32, Result<S, CanoError>) {
    let store = Arc::new(MemoryCheckpointStore::new());
    let calls = Arc::new(AtomicU32::new(0));
    let task = FlakyApproval {
        error,
        failures,
        calls: calls.clone(),
    };
    let wf = Workflow::bare()
        .register(S::Prepare, Prepare)
        .register_signal(S::Approve, task)
        .add_exit_state(S::Ship)
        .with_signal_store(store.clone())
        .with_workflow_id("order-7");
    let run = tokio::spawn(async move { wf.orchestrate(S::Prepare).await });
    until_last_row(&store, RowKind::StateEntry).await;
    signal::send(&*store, "order-7", signal_of("s1", "ana"))
        .await
        .unwrap();
    let outcome = run.await.unwrap();
    (calls.load(Ordering::SeqCst), outcome)
}

#[tokio::test(start_paused = true)]
async fn on_signal_retries_only_the_errors_the_task_says_are_worth_it() {
    // Retryable: two failures, retried, then the run moves on.
    assert_eq!(run_flaky("busy", 2).await, (3, Ok(S::Ship)));
    // Not retryable: one attempt, and the error comes back as it is.
    let permanent = "permanent: order 7 is gone";
    assert_eq!(
        run_flaky(permanent, u32::MAX).await,
        (1, Err(CanoError::task_execution(permanent)))
    );
}

#[tokio::test(start_paused = true)]
async fn the_timeout_moves_on_and_a_resumed_wait_keeps_its_deadline() {
    let f = Fixture::new();
    let wf = f.workflow(Some(Duration::from_secs(3600)));
    // Crash 10 minutes into the wait (Prepare takes 1 of them).
    let crashed = tokio::time::timeout(Duration::from_secs(660), wf.orchestrate(S::Prepare)).await;
    assert!(crashed.is_err());
    assert_eq!(f.kinds().await.last(), Some(&RowKind::SignalWait));
    let started = Instant::now();
    assert_eq!(wf.resume_from("order-7").await, Ok(S::Expired));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3000),
        "50 of the 60 minutes were left"
    );
    assert!(f.seen().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_signal_sent_while_the_run_is_down_is_consumed_by_the_resumed_run() {
    let f = Fixture::new();
    let wf = f.workflow(Some(Duration::from_secs(3600)));
    let crashed = tokio::time::timeout(Duration::from_secs(120), wf.orchestrate(S::Prepare)).await;
    assert!(crashed.is_err());
    signal::send(&*f.store, "order-7", signal_of("while-down", "cy"))
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(wf.resume_from("order-7").await, Ok(S::Ship));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(f.seen(), [approval("cy")]);
}

#[tokio::test(start_paused = true)]
async fn a_crash_after_the_signal_was_consumed_replays_the_same_payload() {
    let f = Fixture::new();
    // on_signal takes ten minutes; the process dies five minutes in.
    let wf = f.workflow_on(f.store.clone(), f.task(None, Duration::from_secs(600)));
    let store = f.store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(90)).await;
        signal::send(&*store, "order-7", signal_of("s1", "di"))
            .await
            .unwrap();
    });
    let crashed = tokio::time::timeout(Duration::from_secs(390), wf.orchestrate(S::Prepare)).await;
    assert!(crashed.is_err());
    assert_eq!(f.kinds().await.last(), Some(&RowKind::Signal));
    assert!(
        f.store
            .pending_signals("order-7", "approval")
            .await
            .unwrap()
            .is_empty()
    );
    // The same id sent again (a retried webhook) is recognised as consumed.
    let again = f.store.send_signal("order-7", signal_of("s1", "di")).await;
    assert_eq!(again, Ok(false));
    // Crash again during the replay: the re-entry row still carries the signal.
    let crashed = tokio::time::timeout(Duration::from_secs(300), wf.resume_from("order-7")).await;
    assert!(crashed.is_err());
    assert_eq!(f.kinds().await.last(), Some(&RowKind::Signal));
    assert_eq!(wf.resume_from("order-7").await, Ok(S::Ship));
    assert_eq!(
        f.seen(),
        [approval("di")],
        "one completed on_signal, with the payload"
    );
}

#[tokio::test(start_paused = true)]
async fn a_payload_that_does_not_parse_is_rejected_and_the_run_keeps_waiting() {
    let f = Fixture::new();
    let recorder = Recorder::new();
    struct Rejections(Mutex<Vec<String>>);
    impl WorkflowObserver for Rejections {
        fn on_signal_rejected(&self, name: &str, id: &str, error: &CanoError) {
            self.0.lock().unwrap().push(format!("{name}/{id}: {error}"));
        }
    }
    let rejections = Arc::new(Rejections(Mutex::default()));
    let wf = f
        .workflow(None)
        .with_observer(recorder)
        .with_observer(rejections.clone());
    let run = tokio::spawn(async move { wf.orchestrate(S::Prepare).await });
    until_last_row(&f.store, RowKind::SignalWait).await;
    let bad = Signal::from_json("approval", "bad", r#"{"approved": "yes"}"#).unwrap();
    signal::send(&*f.store, "order-7", bad).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!run.is_finished());
    let rejected = rejections.0.lock().unwrap().clone();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].starts_with("approval/bad: "), "{rejected:?}");
    assert!(
        rejected[0].contains("Approval"),
        "names the type: {rejected:?}"
    );
    assert!(
        f.store
            .pending_signals("order-7", "approval")
            .await
            .unwrap()
            .is_empty()
    );
    signal::send(&*f.store, "order-7", signal_of("good", "ed"))
        .await
        .unwrap();
    assert_eq!(run.await.unwrap(), Ok(S::Ship));
    assert_eq!(f.seen(), [approval("ed")]);
}

#[tokio::test(start_paused = true)]
async fn bad_setups_and_unknown_runs_are_clear_errors() {
    let f = Fixture::new();
    let err = f
        .store
        .send_signal("nobody", signal_of("x", "y"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no run \"nobody\""), "{err}");
    let without_store = Workflow::bare()
        .register_signal(S::Approve, f.task(None, Duration::ZERO))
        .add_exit_state(S::Ship);
    let err = without_store.orchestrate(S::Approve).await.unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert!(err.message().contains("with_signal_store"), "{err}");
    // A plain checkpoint store after the signal store drops the signal capability.
    let replaced = f
        .workflow(None)
        .with_checkpoint_store(Arc::new(MemoryCheckpointStore::new()));
    assert_eq!(replaced.validate().unwrap_err().category(), "configuration");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_run_can_be_cancelled() {
    let f = Fixture::new();
    let wf = f.workflow(None);
    let (handle, token) = CancellationToken::new();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(600)).await;
        handle.cancel();
    });
    let err = wf
        .orchestrate_with_token(S::Prepare, token)
        .await
        .unwrap_err();
    assert_eq!(err.message(), "Workflow cancelled in state Approve");
    // Still waiting in the log; a later signal completes the resumed run.
    signal::send(&*f.store, "order-7", signal_of("late", "fi"))
        .await
        .unwrap();
    assert_eq!(wf.resume_from("order-7").await, Ok(S::Ship));
}

/// A memory store whose appends of `Signal` rows fail while `broken` is set.
struct Flaky {
    inner: MemoryCheckpointStore,
    broken: AtomicBool,
}

#[checkpoint_store]
impl CheckpointStore for Flaky {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        if row.kind == RowKind::Signal && self.broken.load(Ordering::SeqCst) {
            return Err(CanoError::checkpoint_store("disk full"));
        }
        self.inner.append(workflow_id, row).await
    }
    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        self.inner.load_run(workflow_id).await
    }
    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.inner.clear(workflow_id).await
    }
}

impl SignalStore for Flaky {
    fn send_signal<'a>(&'a self, workflow_id: &'a str, signal: Signal) -> StoreFuture<'a, bool> {
        self.inner.send_signal(workflow_id, signal)
    }
    fn pending_signals<'a>(
        &'a self,
        workflow_id: &'a str,
        name: &'a str,
    ) -> StoreFuture<'a, Vec<Signal>> {
        self.inner.pending_signals(workflow_id, name)
    }
    fn remove_signal<'a>(
        &'a self,
        workflow_id: &'a str,
        signal_id: &'a str,
    ) -> StoreFuture<'a, ()> {
        self.inner.remove_signal(workflow_id, signal_id)
    }
    fn poll_signal_sent(
        &self,
        workflow_id: &str,
        cx: &mut std::task::Context<'_>,
    ) -> Option<std::task::Poll<()>> {
        self.inner.poll_signal_sent(workflow_id, cx)
    }
    fn forget_signal_waker(&self, workflow_id: &str) {
        self.inner.forget_signal_waker(workflow_id);
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_while_a_signal_is_consumed_loses_nothing() {
    let f = Fixture::new();
    let flaky = Arc::new(Flaky {
        inner: MemoryCheckpointStore::new(),
        broken: AtomicBool::new(true),
    });
    let wf = f.workflow_on(flaky.clone(), f.task(None, Duration::ZERO));
    let sender = flaky.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(90)).await;
        signal::send(&*sender, "order-7", signal_of("s1", "gu"))
            .await
            .unwrap();
    });
    let err = wf.orchestrate(S::Prepare).await.unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("disk full"), "{err}");
    assert!(f.seen().is_empty());
    let pending = flaky.pending_signals("order-7", "approval").await.unwrap();
    assert_eq!(pending.len(), 1, "the signal is still pending");
    flaky.broken.store(false, Ordering::SeqCst);
    assert_eq!(wf.resume_from("order-7").await, Ok(S::Ship));
    assert_eq!(f.seen(), [approval("gu")]);
}

/// The approval flow across "processes" on one redb file: the run waits and its process
/// goes away; a second opening of the file sends the signal; a third resumes the run,
/// which consumes it. Real clock, no timeouts involved.
#[cfg(feature = "recovery")]
#[tokio::test]
async fn on_a_redb_file_a_signal_sent_while_the_run_is_down_is_consumed_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.redb");
    let f = Fixture::new();
    let instant = |store: Arc<RedbCheckpointStore>| {
        Workflow::bare()
            .register_signal(S::Approve, f.task(None, Duration::ZERO))
            .add_exit_states(vec![S::Ship, S::Expired, S::Rejected])
            .with_signal_store(store)
            .with_workflow_id("order-7")
    };
    {
        let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());
        let wf = instant(store.clone());
        let waiting =
            tokio::time::timeout(Duration::from_millis(200), wf.orchestrate(S::Approve)).await;
        assert!(waiting.is_err(), "the run waits");
        let rows = store.load_run("order-7").await.unwrap();
        assert_eq!(rows.last().map(|r| r.kind), Some(RowKind::SignalWait));
        let err = store
            .send_signal("nobody", signal_of("x", "y"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no run \"nobody\""), "{err}");
    }
    {
        let store = RedbCheckpointStore::new(&path).unwrap();
        assert!(
            store
                .send_signal("order-7", signal_of("s1", "jo"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .send_signal("order-7", signal_of("s1", "jo"))
                .await
                .unwrap()
        );
        let pending = store.pending_signals("order-7", "approval").await.unwrap();
        assert_eq!(pending, [signal_of("s1", "jo")]);
    }
    let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());
    assert_eq!(
        instant(store.clone()).resume_from("order-7").await,
        Ok(S::Ship)
    );
    assert_eq!(f.seen(), [approval("jo")]);
    assert!(store.load_run("order-7").await.unwrap().is_empty());
    assert!(
        store
            .pending_signals("order-7", "approval")
            .await
            .unwrap()
            .is_empty()
    );
}

/// In one process, a signal sent through the store wakes the waiting run at once; a
/// finished run's leftover signals are cleared with its log.
#[cfg(feature = "recovery")]
#[tokio::test]
async fn on_a_redb_file_a_send_wakes_the_waiting_run_and_clear_drops_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbCheckpointStore::new(dir.path().join("o.redb")).unwrap());
    let f = Fixture::new();
    let wf = Workflow::bare()
        .register_signal(S::Approve, f.task(None, Duration::ZERO))
        .add_exit_states(vec![S::Ship, S::Expired, S::Rejected])
        .with_signal_store(store.clone())
        .with_workflow_id("order-8");
    let run = tokio::spawn(async move { wf.orchestrate(S::Approve).await });
    while store.load_run("order-8").await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Another signal name the run does not wait for stays behind until the log is cleared.
    let other = Signal::new("other", "o1", &1).unwrap();
    store.send_signal("order-8", other).await.unwrap();
    let sent = std::time::Instant::now();
    store
        .send_signal("order-8", signal_of("s1", "ka"))
        .await
        .unwrap();
    assert_eq!(run.await.unwrap(), Ok(S::Ship));
    assert!(
        sent.elapsed() < Duration::from_millis(900),
        "woken, not polled"
    );
    assert!(
        store
            .pending_signals("order-8", "other")
            .await
            .unwrap()
            .is_empty()
    );
}
