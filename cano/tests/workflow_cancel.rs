//! Cancellation and the whole-run deadline (all on Tokio's paused clock):
//! a cancelled or timed-out run drops its task in flight, never interrupts a
//! compensatable task, aborts split members, drains its compensation stack (within the
//! compensation budget), tears resources down once, fires `on_cancelled` /
//! `on_workflow_timeout` once, and says why it stopped.

mod support;

use cano::MemoryCheckpointStore;
use cano::cancel::CancellationToken;
use cano::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{Log, Probe, Recorder};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Reserve,
    Charge,
    Ship,
    Fan,
    Done,
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A plain task that sleeps `sleep`, then logs `done:{name}` and moves to `next`.
struct Sleep {
    name: &'static str,
    sleep: Duration,
    next: S,
    log: Log,
}

#[task(state = S)]
impl Sleep {
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.log.push(format!("start:{}", self.name));
        tokio::time::sleep(self.sleep).await;
        self.log.push(format!("done:{}", self.name));
        Ok(TaskResult::Single(self.next.clone()))
    }
}

/// A saga step that takes `sleep` forward and `undo_sleep` to compensate; logs both.
struct Step {
    name: &'static str,
    sleep: Duration,
    undo_sleep: Duration,
    next: S,
    log: Log,
}

#[saga::task]
impl CompensatableTask<S> for Step {
    type Output = u32;
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u32), CanoError> {
        tokio::time::sleep(self.sleep).await;
        self.log.push(format!("done:{}", self.name));
        Ok((TaskResult::Single(self.next.clone()), 7))
    }
    async fn compensate(&self, _res: &Resources, output: u32) -> Result<(), CanoError> {
        tokio::time::sleep(self.undo_sleep).await;
        self.log.push(format!("undo:{}:{output}", self.name));
        Ok(())
    }
}

fn step(name: &'static str, sleep: u64, next: S, log: &Log) -> Step {
    Step {
        name,
        sleep: secs(sleep),
        undo_sleep: Duration::ZERO,
        next,
        log: log.clone(),
    }
}

fn sleep(name: &'static str, secs_: u64, next: S, log: &Log) -> Sleep {
    Sleep {
        name,
        sleep: secs(secs_),
        next,
        log: log.clone(),
    }
}

/// Reserve (saga, 1 s) -> Charge (plain, 1 h) -> Done, with a probe resource.
fn order(log: &Log, recorder: &Arc<Recorder>) -> Workflow<S> {
    Workflow::new(Resources::new().insert("probe", Probe::new("probe", log)))
        .register_with_compensation(S::Reserve, step("reserve", 1, S::Charge, log))
        .register(S::Charge, sleep("charge", 3600, S::Done, log))
        .add_exit_state(S::Done)
        .with_observer(recorder.clone())
}

fn cancel_after(handle: cano::cancel::CancellationHandle, after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        handle.cancel();
    });
}

#[tokio::test(start_paused = true)]
async fn a_cancel_drops_the_task_in_flight_and_rolls_the_saga_back() {
    let (log, recorder) = (Log::new(), Recorder::new());
    let wf = order(&log, &recorder);
    let (handle, token) = CancellationToken::new();
    cancel_after(handle.clone(), secs(10));
    let started = tokio::time::Instant::now();
    let err = wf
        .orchestrate_with_token(S::Reserve, token)
        .await
        .unwrap_err();
    assert_eq!(
        started.elapsed(),
        secs(10),
        "the run stops when the cancel comes"
    );
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(
        err.to_string(),
        "Workflow error: Workflow cancelled in state Charge"
    );
    assert_eq!(
        log.entries(),
        [
            "setup:probe",
            "done:reserve",
            "start:charge",
            "undo:reserve:7",
            "teardown:probe"
        ]
    );
    assert_eq!(recorder.events_with("cancelled:"), ["cancelled:Charge"]);
    // Cancelling again changes nothing.
    handle.cancel();
    tokio::time::sleep(secs(7200)).await;
    assert_eq!(log.count("done:charge"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_compensatable_task_is_never_interrupted() {
    let (log, recorder) = (Log::new(), Recorder::new());
    let wf = Workflow::<S>::bare()
        .register_with_compensation(S::Reserve, step("reserve", 60, S::Charge, &log))
        .register(S::Charge, sleep("charge", 1, S::Done, &log))
        .add_exit_state(S::Done)
        .with_observer(recorder.clone());
    let (handle, token) = CancellationToken::new();
    cancel_after(handle, secs(1));
    let started = tokio::time::Instant::now();
    let err = wf
        .orchestrate_with_token(S::Reserve, token)
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), secs(60), "the step ran to its end");
    assert_eq!(err.message(), "Workflow cancelled in state Charge");
    // Its output was recorded and compensated; the next state's task never started.
    assert_eq!(log.entries(), ["done:reserve", "undo:reserve:7"]);
}

#[tokio::test(start_paused = true)]
async fn a_token_cancelled_before_the_run_runs_nothing() {
    let (log, recorder) = (Log::new(), Recorder::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = order(&log, &recorder)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("early");
    let (handle, token) = CancellationToken::new();
    handle.cancel();
    let err = wf
        .orchestrate_with_token(S::Reserve, token.clone())
        .await
        .unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(err.message(), "Workflow cancelled in state Reserve");
    assert!(log.entries().is_empty(), "{:?}", log.entries());
    assert!(store.load_run("early").await.unwrap().is_empty());
    assert_eq!(recorder.events_with("cancelled:"), ["cancelled:Reserve"]);
    // resume_from_with_token too: a run left at Charge is not resumed, and its log is kept.
    store
        .append("early", CheckpointRow::new(0, "Charge", "charge"))
        .await
        .unwrap();
    let err = wf.resume_from_with_token("early", token).await.unwrap_err();
    assert_eq!(err.message(), "Workflow cancelled in state Charge");
    assert!(log.entries().is_empty(), "{:?}", log.entries());
    assert_eq!(store.load_run("early").await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_cancelled_before_a_resume_runs_nothing_even_with_steps_to_compensate() {
    let (log, recorder) = (Log::new(), Recorder::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = order(&log, &recorder)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("owed");
    // The process dies in Charge, after Reserve completed.
    let died = tokio::time::timeout(secs(5), wf.orchestrate(S::Reserve)).await;
    assert!(died.is_err(), "the run should still be in Charge");
    let before = store.load_run("owed").await.unwrap();
    assert_eq!(
        log.entries(),
        ["setup:probe", "done:reserve", "start:charge"]
    );
    let (handle, token) = CancellationToken::new();
    handle.cancel();
    let err = wf.resume_from_with_token("owed", token).await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(err.message(), "Workflow cancelled in state Charge");
    // As in cano 0.15: nothing runs, not even the compensation; the log stays for a
    // later resume.
    assert_eq!(log.entries().len(), 3, "{:?}", log.entries());
    assert_eq!(store.load_run("owed").await.unwrap(), before);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_can_be_cancelled_and_resumed_again() {
    let log = Log::new();
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = Workflow::<S>::bare()
        .register(S::Reserve, sleep("reserve", 1, S::Charge, &log))
        .register(S::Charge, sleep("charge", 3600, S::Done, &log))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("r1");
    let (handle, token) = CancellationToken::new();
    cancel_after(handle, secs(5));
    let err = wf
        .orchestrate_with_token(S::Reserve, token)
        .await
        .unwrap_err();
    assert!(err.is_cancelled());
    // No saga step: the log is kept, at Charge.
    let rows = store.load_run("r1").await.unwrap();
    assert_eq!(rows.last().map(|r| r.state.as_str()), Some("Charge"));
    let (handle, token) = CancellationToken::new();
    cancel_after(handle, secs(5));
    let err = wf.resume_from_with_token("r1", token).await.unwrap_err();
    assert_eq!(err.message(), "Workflow cancelled in state Charge");
    assert_eq!(wf.resume_from("r1").await.unwrap(), S::Done);
    assert_eq!(log.count("done:charge"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_aborts_split_members() {
    let log = Log::new();
    let members: Vec<Sleep> = ["m0", "m1", "m2"]
        .into_iter()
        .map(|name| sleep(name, 100, S::Done, &log))
        .collect();
    let wf = Workflow::<S>::bare()
        .register_split(S::Fan, members, JoinConfig::new(JoinStrategy::All, S::Done))
        .add_exit_state(S::Done);
    let (handle, token) = CancellationToken::new();
    cancel_after(handle, secs(10));
    let err = wf.orchestrate_with_token(S::Fan, token).await.unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(
        log.count("start:m0") + log.count("start:m1") + log.count("start:m2"),
        3
    );
    tokio::time::sleep(secs(1000)).await;
    let done = log
        .entries()
        .iter()
        .filter(|e| e.starts_with("done:"))
        .count();
    assert_eq!(done, 0, "aborted members never finish: {:?}", log.entries());
}

#[tokio::test(start_paused = true)]
async fn a_cancel_at_an_exit_state_is_too_late() {
    let log = Log::new();
    let (handle, token) = CancellationToken::new();
    struct CancelThenDone(cano::cancel::CancellationHandle);
    #[task(state = S)]
    impl CancelThenDone {
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            self.0.cancel();
            Ok(TaskResult::Single(S::Done))
        }
    }
    let wf = Workflow::<S>::bare()
        .register(S::Reserve, CancelThenDone(handle))
        .register(S::Charge, sleep("charge", 1, S::Done, &log))
        .add_exit_state(S::Done);
    assert_eq!(
        wf.orchestrate_with_token(S::Reserve, token).await,
        Ok(S::Done)
    );
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_drops_the_task_and_rolls_back() {
    let (log, recorder) = (Log::new(), Recorder::new());
    let wf = order(&log, &recorder).with_total_timeout(secs(30));
    let started = tokio::time::Instant::now();
    let err = wf.orchestrate(S::Reserve).await.unwrap_err();
    assert_eq!(started.elapsed(), secs(30));
    assert!(err.is_workflow_timeout(), "{err}");
    assert!(!err.is_cancelled());
    assert_eq!(
        err.message(),
        "Workflow exceeded its total timeout in state Charge: ran 30s, limit 30s"
    );
    assert_eq!(
        log.entries(),
        [
            "setup:probe",
            "done:reserve",
            "start:charge",
            "undo:reserve:7",
            "teardown:probe"
        ]
    );
    assert_eq!(
        recorder.events_with("workflow_timeout:"),
        ["workflow_timeout:30s:30s"]
    );
}

/// A compensatable step is never interrupted, so both the cancel (at 10 s) and the
/// deadline (at 30 s) are due when it ends (at 60 s): the cancel wins.
#[tokio::test(start_paused = true)]
async fn a_cancel_wins_over_the_deadline() {
    let (log, recorder) = (Log::new(), Recorder::new());
    let wf = Workflow::<S>::bare()
        .register_with_compensation(S::Reserve, step("reserve", 60, S::Charge, &log))
        .register(S::Charge, sleep("charge", 1, S::Done, &log))
        .add_exit_state(S::Done)
        .with_observer(recorder.clone())
        .with_total_timeout(secs(30));
    let (handle, token) = CancellationToken::new();
    cancel_after(handle, secs(10));
    let err = wf
        .orchestrate_with_token(S::Reserve, token)
        .await
        .unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert!(recorder.events_with("workflow_timeout:").is_empty());
    assert_eq!(recorder.events_with("cancelled:"), ["cancelled:Charge"]);
}

#[tokio::test(start_paused = true)]
async fn the_rollback_has_a_budget_and_resume_finishes_it() {
    let log = Log::new();
    let store = Arc::new(MemoryCheckpointStore::new());
    let build = |limit: Option<Duration>| {
        let wf = Workflow::<S>::bare()
            .register_with_compensation(
                S::Reserve,
                Step {
                    undo_sleep: secs(3600),
                    ..step("reserve", 1, S::Charge, &log)
                },
            )
            .register_with_compensation(S::Charge, step("charge", 1, S::Ship, &log))
            .register(S::Ship, sleep("ship", 3600, S::Done, &log))
            .add_exit_state(S::Done)
            .with_checkpoint_store(store.clone())
            .with_workflow_id("budget");
        match limit {
            Some(limit) => wf.with_total_timeout(limit),
            None => wf,
        }
    };
    let started = tokio::time::Instant::now();
    let err = build(Some(secs(20)))
        .orchestrate(S::Reserve)
        .await
        .unwrap_err();
    // 20 s to the deadline, then the default budget: min(20 s / 2, 30 s) = 10 s.
    assert_eq!(started.elapsed(), secs(30));
    assert!(err.is_workflow_timeout(), "{err}");
    let CanoError::CompensationFailed { errors } = &err else {
        panic!("expected CompensationFailed, got {err}");
    };
    assert!(errors[0].is_workflow_timeout());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[1].message(),
        "compensate for \"reserve\" dropped: the rollback's budget of 10s ran out \
         (the log keeps the rollback; resume_from finishes it)"
    );
    assert_eq!(log.count("undo:charge:7"), 1);
    assert_eq!(log.count("undo:reserve:7"), 0);
    // A process without the deadline finishes the rollback: only the step left.
    let err = build(None).resume_from("budget").await.unwrap_err();
    assert!(err.is_workflow_timeout(), "the original cause: {err}");
    assert_eq!(log.count("undo:reserve:7"), 1);
    assert_eq!(log.count("undo:charge:7"), 1);
    assert!(store.load_run("budget").await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn with_timeout_keeps_its_0_12_behaviour() {
    let (log, recorder) = (Log::new(), Recorder::new());
    let wf = order(&log, &recorder).with_timeout(secs(30));
    let err = wf.orchestrate(S::Reserve).await.unwrap_err();
    assert_eq!(err, CanoError::workflow("Workflow timeout exceeded"));
    assert_eq!(log.count("undo:reserve:7"), 0, "no rollback, as in 0.12.0");
    // With a total timeout as well, the smaller limit applies, gracefully.
    let wf = order(&log, &recorder)
        .with_timeout(secs(30))
        .with_total_timeout(secs(60));
    let err = wf.orchestrate(S::Reserve).await.unwrap_err();
    assert!(err.message().ends_with("ran 30s, limit 30s"), "{err}");
    assert_eq!(log.count("undo:reserve:7"), 1);
}

/// 500 runs, each cancelled at its own point (before, during and after each state):
/// every completed saga step is compensated exactly once, nothing else is, and resources
/// are set up and torn down once per run.
#[tokio::test(start_paused = true)]
async fn a_cancellation_storm_compensates_each_completed_step_once() {
    const RUNS: u64 = 500;
    let forward = Arc::new(AtomicUsize::new(0));
    let undone = Arc::new(AtomicUsize::new(0));
    struct Counted {
        next: S,
        forward: Arc<AtomicUsize>,
        undone: Arc<AtomicUsize>,
    }
    #[saga::task]
    impl CompensatableTask<S> for Counted {
        type Output = ();
        fn name(&self) -> Cow<'static, str> {
            Cow::Owned(format!("{:?}", self.next))
        }
        async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, ()), CanoError> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.forward.fetch_add(1, Ordering::SeqCst);
            Ok((TaskResult::Single(self.next.clone()), ()))
        }
        async fn compensate(&self, _res: &Resources, _output: ()) -> Result<(), CanoError> {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.undone.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let counted = |next| Counted {
        next,
        forward: forward.clone(),
        undone: undone.clone(),
    };
    let log = Log::new();
    let wf = Arc::new(
        Workflow::new(Resources::new().insert("probe", Probe::new("probe", &log)))
            .register_with_compensation(S::Reserve, counted(S::Charge))
            .register_with_compensation(S::Charge, counted(S::Ship))
            .register(S::Ship, sleep("ship", 1, S::Done, &log))
            .add_exit_state(S::Done),
    );
    let mut runs = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut pre_cancelled = 0;
    for _ in 0..RUNS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // 0..=1700 ms: before the start, inside each step, after the end.
        let at = Duration::from_millis(seed % 1701);
        let (handle, token) = CancellationToken::new();
        if at.is_zero() {
            pre_cancelled += 1;
            handle.cancel();
        } else {
            cancel_after(handle, at);
        }
        let wf = wf.clone();
        runs.push(tokio::spawn(async move {
            wf.orchestrate_with_token(S::Reserve, token).await
        }));
    }
    let (mut cancelled, mut finished) = (0, 0);
    for run in runs {
        match run.await.unwrap() {
            Ok(S::Done) => finished += 1,
            Err(e) if e.is_cancelled() => cancelled += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(cancelled + finished, RUNS);
    assert!(
        cancelled > 300 && finished > 20,
        "{cancelled} cancelled, {finished} finished"
    );
    // Every completed step of a cancelled run was undone once; a finished run's were not.
    let forward = forward.load(Ordering::SeqCst);
    let undone = undone.load(Ordering::SeqCst);
    assert_eq!(
        forward - undone,
        2 * finished as usize,
        "{forward} forward, {undone} undone"
    );
    let setups = log.count("setup:probe");
    assert_eq!(setups, log.count("teardown:probe"));
    assert_eq!(
        setups as u64,
        RUNS - pre_cancelled,
        "no setup for a run cancelled before it starts"
    );
}
