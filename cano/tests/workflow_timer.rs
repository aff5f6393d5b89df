//! Durable timers: a `#[task::timer]` state records its deadline in the log before it
//! sleeps; a resumed run waits only what is left (at once if the deadline passed) and
//! does not ask the timer again; a sleeping run can be cancelled; `wait` and `after_wait`
//! retry only the errors the timer says are worth it. Paused clock throughout, except the
//! redb test.

use cano::cancel::CancellationToken;
use cano::prelude::*;
use cano::recovery::log::{self, LogEntry};
use cano::{MemoryCheckpointStore, RunStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Cooldown,
    Notify,
    Done,
}

const HOUR: Duration = Duration::from_secs(3600);

/// Waits `wait`, counting how often it was asked and how often it fired.
struct Cooldown {
    wait: TimerOutcome,
    asked: Arc<AtomicU32>,
    fired: Arc<AtomicU32>,
}

#[task::timer(state = S)]
impl Cooldown {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "cooldown".into()
    }
    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(self.wait)
    }
    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
        self.fired.fetch_add(1, Ordering::SeqCst);
        Ok(TaskResult::Single(S::Done))
    }
}

struct Counts {
    asked: Arc<AtomicU32>,
    fired: Arc<AtomicU32>,
}

impl Counts {
    fn new() -> Self {
        Self {
            asked: Arc::default(),
            fired: Arc::default(),
        }
    }
    fn timer(&self, wait: TimerOutcome) -> Cooldown {
        Cooldown {
            wait,
            asked: self.asked.clone(),
            fired: self.fired.clone(),
        }
    }
    fn get(&self) -> (u32, u32) {
        (
            self.asked.load(Ordering::SeqCst),
            self.fired.load(Ordering::SeqCst),
        )
    }
}

fn workflow(
    counts: &Counts,
    wait: TimerOutcome,
    store: &Arc<MemoryCheckpointStore>,
) -> Workflow<S> {
    Workflow::bare()
        .register(S::Cooldown, counts.timer(wait))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("t1")
}

/// Run `wf` from `Cooldown` for `for_` and then drop it, as a crash would.
async fn crash_after(wf: &Workflow<S>, for_: Duration) {
    let run = tokio::time::timeout(for_, wf.orchestrate(S::Cooldown)).await;
    assert!(run.is_err(), "the run should still be sleeping");
}

fn deadline_of(rows: &[CheckpointRow]) -> Option<u64> {
    rows.iter()
        .rev()
        .find_map(|r| match log::parse_row("t1", r) {
            Ok(LogEntry::Timer { deadline_ms, .. }) => Some(deadline_ms),
            _ => None,
        })
}

#[tokio::test(start_paused = true)]
async fn a_timer_waits_then_moves_on_without_a_store() {
    let counts = Counts::new();
    let wf = Workflow::bare()
        .register(S::Cooldown, counts.timer(TimerOutcome::Duration(HOUR)))
        .add_exit_state(S::Done);
    let started = Instant::now();
    assert_eq!(wf.orchestrate(S::Cooldown).await, Ok(S::Done));
    assert_eq!(started.elapsed(), HOUR);
    assert_eq!(counts.get(), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_resumed_timer_waits_only_what_is_left_and_is_not_asked_again() {
    let counts = Counts::new();
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = workflow(&counts, TimerOutcome::Duration(HOUR), &store);
    crash_after(&wf, Duration::from_secs(600)).await;
    let rows = store.load_run("t1").await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        [RowKind::StateEntry, RowKind::Timer]
    );
    assert!(matches!(
        log::summarize("t1", &rows).status,
        RunStatus::Waiting {
            deadline_ms: Some(_),
            signal: None
        }
    ));
    let deadline = deadline_of(&rows).unwrap();
    // Crash again, ten minutes into the resumed wait: the deadline is kept.
    let resumed = tokio::time::timeout(Duration::from_secs(600), wf.resume_from("t1")).await;
    assert!(resumed.is_err());
    let rows = store.load_run("t1").await.unwrap();
    assert_eq!(
        rows.last().unwrap().kind,
        RowKind::Timer,
        "the re-entry is a timer row"
    );
    assert_eq!(deadline_of(&rows), Some(deadline));
    let started = Instant::now();
    assert_eq!(wf.resume_from("t1").await, Ok(S::Done));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2400),
        "40 of the 60 minutes were left"
    );
    assert_eq!(counts.get(), (1, 1), "asked once, fired once");
    assert!(store.load_run("t1").await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_passed_while_the_process_was_down_fires_at_once() {
    let counts = Counts::new();
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = workflow(&counts, TimerOutcome::Duration(HOUR), &store);
    crash_after(&wf, Duration::from_secs(60)).await;
    tokio::time::sleep(2 * HOUR).await;
    let started = Instant::now();
    assert_eq!(wf.resume_from("t1").await, Ok(S::Done));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(counts.get(), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn wall_clock_and_instant_deadlines() {
    // A point in wall-clock time (two hours from the engine's now) and a past one.
    let counts = Counts::new();
    let store = Arc::new(MemoryCheckpointStore::new());
    let now_ms = || {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        real + (Instant::now()
            .into_std()
            .saturating_duration_since(std::time::Instant::now()))
    };
    let at = UNIX_EPOCH + now_ms() + 2 * HOUR;
    let wf = workflow(&counts, TimerOutcome::At(at), &store);
    let started = Instant::now();
    assert_eq!(wf.orchestrate(S::Cooldown).await, Ok(S::Done));
    let waited = started.elapsed();
    assert!(
        // Real time passes between reading the clocks here and in the engine.
        waited >= 2 * HOUR - Duration::from_secs(1) && waited <= 2 * HOUR + Duration::from_secs(1),
        "{waited:?}"
    );
    let past = workflow(&counts, TimerOutcome::At(UNIX_EPOCH), &store);
    let started = Instant::now();
    assert_eq!(past.orchestrate(S::Cooldown).await, Ok(S::Done));
    assert_eq!(started.elapsed(), Duration::ZERO);
    let until = workflow(
        &counts,
        // An instant of the engine's (Tokio's, here paused) clock.
        TimerOutcome::Until(Instant::now().into_std() + HOUR),
        &store,
    );
    let started = Instant::now();
    assert_eq!(until.orchestrate(S::Cooldown).await, Ok(S::Done));
    let waited = started.elapsed();
    // Milliseconds are what the log keeps: the wait may end up to one early or late.
    assert!(
        waited >= HOUR - Duration::from_millis(2) && waited <= HOUR + Duration::from_millis(2),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_overflows_is_an_error_and_nothing_is_recorded() {
    let counts = Counts::new();
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = workflow(&counts, TimerOutcome::Duration(Duration::MAX), &store);
    let err = wf.orchestrate(S::Cooldown).await.unwrap_err();
    assert_eq!(err.category(), "task_execution");
    assert!(err.message().contains("timer \"cooldown\""), "{err}");
    assert!(err.message().contains("too far away"), "{err}");
    let rows = store.load_run("t1").await.unwrap();
    assert_eq!(rows.len(), 1, "only the entry row: {rows:?}");
    assert_eq!(counts.get(), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_sleeping_run_can_be_cancelled_and_resumed_later() {
    let counts = Counts::new();
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = workflow(&counts, TimerOutcome::Duration(HOUR), &store);
    let (handle, token) = CancellationToken::new();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        handle.cancel();
    });
    let err = wf
        .orchestrate_with_token(S::Cooldown, token)
        .await
        .unwrap_err();
    assert_eq!(err.message(), "Workflow cancelled in state Cooldown");
    let started = Instant::now();
    assert_eq!(wf.resume_from("t1").await, Ok(S::Done));
    assert_eq!(started.elapsed(), HOUR - Duration::from_secs(60));
    assert_eq!(counts.get(), (1, 1));
}

/// The trait-impl form, a timer followed by another state, and a timer in a split (run
/// in memory there, like any member).
struct Remind;
#[task::timer]
impl TimerTask<S> for Remind {
    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        Ok(TimerOutcome::Duration(Duration::from_secs(30)))
    }
    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Notify))
    }
}

struct Notify;
#[task(state = S)]
impl Notify {
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Done))
    }
}

#[tokio::test(start_paused = true)]
async fn the_trait_impl_form_registers_with_plain_register() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = Workflow::bare()
        .register(S::Cooldown, Remind)
        .register(S::Notify, Notify)
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("t1");
    let started = Instant::now();
    assert_eq!(wf.orchestrate(S::Cooldown).await, Ok(S::Done));
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    // Outside a workflow, the Task impl runs the timer in memory.
    let started = Instant::now();
    assert_eq!(
        Task::run(&Remind, &Resources::new()).await,
        Ok(TaskResult::Single(S::Notify))
    );
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

/// Waits an hour. `wait` (or `after_wait`, with `in_after_wait`) fails with `error` on its
/// first `failures` calls, which `calls` counts. Three retries a second apart, except for
/// errors that say they are permanent.
struct Flaky {
    error: &'static str,
    failures: u32,
    in_after_wait: bool,
    calls: Arc<AtomicU32>,
}

impl Flaky {
    fn call(&self, in_after_wait: bool) -> Result<(), CanoError> {
        if in_after_wait != self.in_after_wait {
            return Ok(());
        }
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(CanoError::task_execution(self.error));
        }
        Ok(())
    }
}

#[task::timer(state = S)]
impl Flaky {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal().with_fixed_retry(3, Duration::from_secs(1))
    }
    fn is_retryable(&self, error: &CanoError, _attempt: u32) -> bool {
        !error.message().contains("permanent")
    }
    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        self.call(false)?;
        Ok(TimerOutcome::Duration(HOUR))
    }
    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<S>, CanoError> {
        self.call(true)?;
        Ok(TaskResult::Single(S::Done))
    }
}

#[tokio::test(start_paused = true)]
async fn a_timer_retries_only_the_errors_it_says_are_worth_it() {
    for in_after_wait in [false, true] {
        // Retryable: two failures, retried a second apart, then the timer fires.
        let calls = Arc::new(AtomicU32::new(0));
        let flaky = Flaky {
            error: "busy",
            failures: 2,
            in_after_wait,
            calls: calls.clone(),
        };
        let wf = Workflow::bare()
            .register(S::Cooldown, flaky)
            .add_exit_state(S::Done);
        let started = Instant::now();
        assert_eq!(wf.orchestrate(S::Cooldown).await, Ok(S::Done));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "after_wait: {in_after_wait}"
        );
        assert_eq!(started.elapsed(), HOUR + Duration::from_secs(2));

        // Not retryable: one attempt, and the error comes back as it is.
        let calls = Arc::new(AtomicU32::new(0));
        let flaky = Flaky {
            error: "permanent: account closed",
            failures: u32::MAX,
            in_after_wait,
            calls: calls.clone(),
        };
        let wf = Workflow::bare()
            .register(S::Cooldown, flaky)
            .add_exit_state(S::Done);
        let err = wf.orchestrate(S::Cooldown).await.unwrap_err();
        assert_eq!(err, CanoError::task_execution("permanent: account closed"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "after_wait: {in_after_wait}"
        );
    }
    // The `Task` impl says the same (it is asked when the timer runs in a split).
    let flaky = Flaky {
        error: "",
        failures: 0,
        in_after_wait: false,
        calls: Arc::default(),
    };
    let permanent = CanoError::task_execution("permanent");
    assert!(!Task::is_retryable(&flaky, &permanent, 1));
    assert!(Task::is_retryable(
        &flaky,
        &CanoError::task_execution("busy"),
        1
    ));
}

#[cfg(feature = "recovery")]
#[tokio::test]
async fn the_deadline_survives_a_reopen_of_a_redb_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timers.redb");
    let counts = Counts::new();
    let build = |store: Arc<RedbCheckpointStore>| {
        Workflow::bare()
            .register(
                S::Cooldown,
                counts.timer(TimerOutcome::Duration(Duration::from_millis(300))),
            )
            .add_exit_state(S::Done)
            .with_checkpoint_store(store)
            .with_workflow_id("t1")
    };
    {
        let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());
        let wf = build(store.clone());
        let run =
            tokio::time::timeout(Duration::from_millis(50), wf.orchestrate(S::Cooldown)).await;
        assert!(run.is_err());
        let rows = store.load_run("t1").await.unwrap();
        assert_eq!(rows.last().unwrap().kind, RowKind::Timer);
    }
    let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());
    let deadline = deadline_of(&store.load_run("t1").await.unwrap()).unwrap();
    let wf = build(store.clone());
    assert_eq!(wf.resume_from("t1").await, Ok(S::Done));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now >= deadline,
        "fired at {now}, before its deadline {deadline}"
    );
    assert_eq!(counts.get(), (1, 1));
}
