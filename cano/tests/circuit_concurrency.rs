//! Circuit breakers: the exact state machine, breakers shared by many tasks, split
//! members and concurrent runs, and the breaker inside the retry loop as seen through a
//! workflow and its observer (including a breaker already open when the run starts).
//!
//! The breaker reads the engine's clock, Tokio's: tests whose deadlines must pass run on a
//! paused clock, advance it, and assert deadlines exactly. The others use a zero
//! `reset_timeout` (the next `try_acquire` may probe at once) or an hour (it may not).

mod support;

use cano::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::{Recorder, breaker, fail_once, succeed_once};
use tokio::sync::{Semaphore, mpsc};

const LONG: Duration = Duration::from_secs(3600);
/// A reset timeout the paused clock is advanced through.
const SHORT: Duration = Duration::from_millis(30);

/// The engine clock's "now" (Tokio's, paused in the tests that advance it).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
/// Upper bound for waits in multi-thread tests, so a bug hangs nothing.
const GUARD: Duration = Duration::from_secs(20);

fn open_until(b: &CircuitBreaker) -> Instant {
    match b.state() {
        CircuitState::Open { until } => until,
        other => panic!("expected Open, got {other:?}"),
    }
}

fn is_open(b: &CircuitBreaker) -> bool {
    matches!(b.state(), CircuitState::Open { .. })
}

fn rejected_open() -> CanoError {
    CanoError::circuit_open("circuit breaker open: rejecting call")
}

fn rejected_half_open() -> CanoError {
    CanoError::circuit_open("circuit breaker half-open: trial slot exhausted")
}

// ---------------------------------------------------------------------------------------
// The state machine
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_breaker_trips_after_exactly_failure_threshold_consecutive_failures() {
    let b = breaker(3, LONG, 1);
    fail_once(&b);
    fail_once(&b);
    assert_eq!(b.state(), CircuitState::Closed, "two of three");
    let before = now();
    fail_once(&b);
    let until = open_until(&b);
    assert_eq!(until, before + LONG, "open for reset_timeout from the trip");
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err, rejected_open());
    assert_eq!(
        err.to_string(),
        "Circuit open: circuit breaker open: rejecting call"
    );
    assert_eq!(err.category(), "circuit_open");
    assert_eq!(
        open_until(&b),
        until,
        "a rejection does not move the deadline"
    );
}

#[test]
fn a_success_while_closed_resets_the_consecutive_count() {
    let b = breaker(3, LONG, 1);
    for _ in 0..4 {
        fail_once(&b);
        fail_once(&b);
        succeed_once(&b);
    }
    assert_eq!(b.state(), CircuitState::Closed, "never three in a row");
    fail_once(&b);
    fail_once(&b);
    fail_once(&b);
    assert!(is_open(&b));
}

#[tokio::test(start_paused = true)]
async fn open_becomes_half_open_lazily_and_only_in_try_acquire() {
    let b = breaker(1, SHORT, 1);
    fail_once(&b);
    let until = open_until(&b);
    assert_eq!(until, now() + SHORT);
    tokio::time::advance(SHORT - Duration::from_millis(1)).await;
    assert_eq!(b.try_acquire().unwrap_err(), rejected_open(), "1 ms early");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(now(), until);
    assert_eq!(
        b.state(),
        CircuitState::Open { until },
        "state() does not promote, even after the deadline"
    );
    let probe = b
        .try_acquire()
        .expect("the deadline passed: a probe is admitted");
    assert_eq!(b.state(), CircuitState::HalfOpen);
    assert_eq!(
        format!("{probe:?}"),
        "Permit { was_half_open: true, consumed: false, epoch: 2 }",
        "two transitions so far: Closed -> Open -> HalfOpen"
    );
    b.record_success(probe);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn two_half_open_slots_admit_two_probes_and_reject_the_third() {
    let b = breaker(1, Duration::ZERO, 2);
    fail_once(&b);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let third = b.try_acquire().unwrap_err();
    assert_eq!(third, rejected_half_open());
    assert_eq!(
        third.to_string(),
        "Circuit open: circuit breaker half-open: trial slot exhausted"
    );
    b.record_success(p1);
    assert_eq!(b.state(), CircuitState::HalfOpen, "one of two successes");
    b.record_success(p2);
    assert_eq!(b.state(), CircuitState::Closed, "two successes close it");
}

#[test]
fn a_finished_probe_frees_its_slot_and_its_success_still_counts() {
    let b = breaker(1, Duration::ZERO, 2);
    fail_once(&b);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    b.record_success(p1);
    let p3 = b.try_acquire().expect("p1's slot is free again");
    assert_eq!(b.try_acquire().unwrap_err(), rejected_half_open());
    b.record_success(p2);
    assert_eq!(b.state(), CircuitState::Closed, "p1 + p2 = two successes");
    // p3 is from the half-open session that just ended: ignored.
    b.record_failure(p3);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn one_probe_failure_reopens_and_the_other_probe_is_then_stale() {
    let b = breaker(1, Duration::ZERO, 2);
    fail_once(&b);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    b.record_failure(p1);
    assert!(is_open(&b), "any probe failure reopens");
    b.record_success(p2);
    assert!(is_open(&b), "a probe from the previous session is ignored");
}

#[tokio::test(start_paused = true)]
async fn a_probe_failure_reopens_with_a_fresh_deadline_and_the_full_round_trip_works() {
    let b = breaker(2, SHORT, 1);
    // Closed -> Open
    fail_once(&b);
    fail_once(&b);
    let first = open_until(&b);
    // Open -> HalfOpen -> Open
    tokio::time::advance(SHORT + Duration::from_millis(10)).await;
    fail_once(&b);
    let second = open_until(&b);
    assert_eq!(
        second,
        first + Duration::from_millis(10) + SHORT,
        "fresh deadline"
    );
    tokio::time::advance(SHORT - Duration::from_millis(1)).await;
    assert_eq!(
        b.try_acquire().unwrap_err(),
        rejected_open(),
        "still open 1 ms before"
    );
    // Open -> HalfOpen -> Closed
    tokio::time::advance(Duration::from_millis(1)).await;
    succeed_once(&b);
    assert_eq!(b.state(), CircuitState::Closed);
    // Closing reset the count: a full threshold is needed again.
    fail_once(&b);
    assert_eq!(b.state(), CircuitState::Closed);
    fail_once(&b);
    assert!(is_open(&b));
}

#[test]
fn a_stale_closed_era_success_does_not_close_a_later_half_open() {
    let b = breaker(2, Duration::ZERO, 1);
    let old = b.try_acquire().unwrap();
    fail_once(&b);
    fail_once(&b);
    let probe = b.try_acquire().unwrap();
    assert_eq!(b.state(), CircuitState::HalfOpen);
    b.record_success(old);
    assert_eq!(b.state(), CircuitState::HalfOpen, "stale epoch: ignored");
    assert_eq!(
        b.try_acquire().unwrap_err(),
        rejected_half_open(),
        "the stale permit did not free the probe's slot"
    );
    b.record_success(probe);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn stale_failures_and_stale_drops_are_ignored() {
    let b = breaker(1, Duration::ZERO, 1);
    let old_a = b.try_acquire().unwrap();
    let old_b = b.try_acquire().unwrap();
    fail_once(&b);
    let probe = b.try_acquire().unwrap();
    b.record_failure(old_a);
    drop(old_b);
    assert_eq!(b.state(), CircuitState::HalfOpen, "neither reopened it");
    b.record_success(probe);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn dropped_permits_count_as_failures() {
    let b = breaker(3, LONG, 1);
    for _ in 0..2 {
        drop(b.try_acquire().unwrap());
    }
    assert_eq!(b.state(), CircuitState::Closed);
    drop(b.try_acquire().unwrap());
    assert!(
        is_open(&b),
        "three dropped permits trip a threshold of three"
    );

    let b = breaker(1, Duration::ZERO, 1);
    fail_once(&b);
    drop(b.try_acquire().unwrap());
    assert!(is_open(&b), "a dropped probe reopens");
}

#[test]
#[should_panic(
    expected = "CircuitPolicy::failure_threshold must be >= 1; 0 would make the breaker trip semantics nonsensical"
)]
fn a_zero_failure_threshold_panics() {
    let _ = breaker(0, LONG, 1);
}

#[test]
#[should_panic(
    expected = "CircuitPolicy::half_open_max_calls must be >= 1; 0 deadlocks the breaker in HalfOpen (no trial would ever be admitted)"
)]
fn zero_half_open_calls_panics() {
    let _ = breaker(1, LONG, 0);
}

#[test]
#[should_panic(
    expected = "CircuitPolicy::half_open_max_calls must be <= 2147483647; got 2147483648 (values near u32::MAX may prevent the breaker from ever closing)"
)]
fn too_many_half_open_calls_panics() {
    let _ = breaker(1, LONG, u32::MAX / 2 + 1);
}

#[test]
#[should_panic(expected = "failure_threshold must be >= 1")]
fn the_threshold_is_checked_before_the_half_open_calls() {
    let _ = breaker(0, LONG, 0);
}

#[test]
fn debug_of_states_and_permits() {
    let b = breaker(1, LONG, 1);
    let permit = b.try_acquire().unwrap();
    assert_eq!(
        format!("{permit:?}"),
        "Permit { was_half_open: false, consumed: false, epoch: 0 }"
    );
    b.record_failure(permit);
    assert!(format!("{:?}", b.state()).starts_with("Open { until:"));
    assert_eq!(format!("{:?}", CircuitState::Closed), "Closed");
    assert_eq!(format!("{:?}", CircuitState::HalfOpen), "HalfOpen");
}

// ---------------------------------------------------------------------------------------
// Sharing across threads
// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_half_open_probes_never_exceed_the_slot_count() {
    const THREADS: usize = 16;
    let b = breaker(1, Duration::ZERO, 3);
    fail_once(&b);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (b, barrier) = (Arc::clone(&b), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let got = b.try_acquire();
                // Hold every admitted probe until everyone has tried.
                barrier.wait();
                got
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let (admitted, rejected): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(admitted.len(), 3);
    assert!(
        rejected
            .into_iter()
            .all(|r| r.unwrap_err() == rejected_half_open())
    );
    assert_eq!(b.state(), CircuitState::HalfOpen);
    for permit in admitted {
        b.record_success(permit.unwrap());
    }
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn concurrent_failures_trip_once_and_every_later_call_is_rejected() {
    const THREADS: usize = 8;
    let b = breaker(5, LONG, 1);
    let barrier = Arc::new(Barrier::new(THREADS));
    let admitted = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (b, barrier, admitted) =
                (Arc::clone(&b), Arc::clone(&barrier), Arc::clone(&admitted));
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..50 {
                    if let Ok(p) = b.try_acquire() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        b.record_failure(p);
                    }
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let admitted = admitted.load(Ordering::SeqCst);
    assert!(
        (5..5 + THREADS).contains(&admitted),
        "at least the threshold, and at most one in-flight call per thread past it: {admitted}"
    );
    assert!(is_open(&b));
    assert_eq!(b.try_acquire().unwrap_err(), rejected_open());
}

// ---------------------------------------------------------------------------------------
// Breakers inside workflows
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    A,
    Done,
}

#[derive(Clone)]
enum Body {
    Ok,
    Fail,
    Panic,
    /// Sleep (tokio time) before succeeding.
    Sleep(Duration),
    /// Yield once, then fail.
    YieldFail,
    /// Wait for a permit from the gate, then succeed.
    Gate(Arc<Semaphore>),
}

/// A task whose body does as told and counts its invocations.
struct Call {
    name: &'static str,
    body: Body,
    config: TaskConfig,
    calls: Arc<AtomicUsize>,
}

impl Call {
    fn new(body: Body, config: TaskConfig, calls: &Arc<AtomicUsize>) -> Self {
        Self {
            name: "call",
            body,
            config,
            calls: Arc::clone(calls),
        }
    }
}

#[task(state = S)]
impl Call {
    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    fn name(&self) -> std::borrow::Cow<'static, str> {
        self.name.into()
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.body {
            Body::Ok => Ok(TaskResult::Single(S::Done)),
            Body::Fail => Err(CanoError::task_execution("down")),
            Body::Panic => panic!("boom"),
            Body::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Ok(TaskResult::Single(S::Done))
            }
            Body::YieldFail => {
                tokio::task::yield_now().await;
                Err(CanoError::task_execution("down"))
            }
            Body::Gate(gate) => {
                gate.acquire().await.expect("gate open").forget();
                Ok(TaskResult::Single(S::Done))
            }
        }
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::default()
}

fn count(c: &Arc<AtomicUsize>) -> usize {
    c.load(Ordering::SeqCst)
}

fn single(task: Call) -> Workflow<S> {
    Workflow::bare()
        .register(S::A, task)
        .add_exit_state(S::Done)
}

fn guarded(b: &Arc<CircuitBreaker>) -> TaskConfig {
    TaskConfig::minimal().with_circuit_breaker(Arc::clone(b))
}

#[tokio::test(start_paused = true)]
async fn a_pre_tripped_breaker_fails_the_state_raw_without_an_attempt() {
    let b = breaker(1, LONG, 1);
    fail_once(&b);
    let calls = counter();
    let rec = Recorder::new();
    let task = Call::new(
        Body::Ok,
        TaskConfig::new()
            .with_fixed_retry(3, Duration::from_millis(10))
            .with_circuit_breaker(b.clone()),
        &calls,
    );
    let wf = single(task).with_observer(rec.clone());
    let start = tokio::time::Instant::now();
    let out = wf.orchestrate(S::A).await;
    assert_eq!(out, Err(rejected_open()), "raw, not RetryExhausted");
    assert_eq!(count(&calls), 0);
    assert_eq!(start.elapsed(), Duration::ZERO, "no backoff");
    assert_eq!(
        rec.events(),
        ["enter:A", "start:call", "circuit_open:call", "failure:call"]
    );
    assert_eq!(rec.failures(), [rejected_open()]);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_tripping_mid_loop_stops_the_retries_at_the_next_acquire() {
    let b = breaker(2, LONG, 1);
    let calls = counter();
    let rec = Recorder::new();
    let task = Call::new(
        Body::Fail,
        TaskConfig::new()
            .with_fixed_retry(5, Duration::from_millis(10))
            .with_circuit_breaker(b.clone()),
        &calls,
    );
    let wf = single(task).with_observer(rec.clone());
    let start = tokio::time::Instant::now();
    let out = wf.orchestrate(S::A).await;
    assert_eq!(out, Err(rejected_open()));
    assert_eq!(count(&calls), 2, "exactly two body invocations");
    assert_eq!(
        rec.events(),
        [
            "enter:A",
            "start:call",
            "retry:call:1",
            "retry:call:2",
            "circuit_open:call",
            "failure:call",
        ]
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(20) && elapsed < Duration::from_millis(25),
        "both backoffs were slept, the one after the trip too: {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_a_breaker_failure() {
    let b = breaker(1, LONG, 1);
    let calls = counter();
    let task = Call::new(
        Body::Sleep(Duration::from_secs(1)),
        guarded(&b).with_attempt_timeout(Duration::from_millis(10)),
        &calls,
    );
    let wf = single(task);
    assert_eq!(
        wf.orchestrate(S::A).await,
        Err(CanoError::timeout("task attempt exceeded attempt_timeout"))
    );
    assert!(is_open(&b));
    assert_eq!(wf.orchestrate(S::A).await, Err(rejected_open()));
    assert_eq!(count(&calls), 1, "the second run never reached the body");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_attempt_is_a_breaker_failure() {
    let b = breaker(1, LONG, 1);
    let calls = counter();
    let wf = single(Call::new(Body::Panic, guarded(&b), &calls));
    assert_eq!(
        wf.orchestrate(S::A).await,
        Err(CanoError::task_execution("panic: boom"))
    );
    assert!(is_open(&b), "the unwound permit was recorded as a failure");
    assert_eq!(wf.orchestrate(S::A).await, Err(rejected_open()));
    assert_eq!(count(&calls), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_split_member_is_a_breaker_failure() {
    let b = breaker(1, LONG, 1);
    let calls = counter();
    let members = vec![Call::new(Body::Panic, guarded(&b), &calls)];
    let wf = Workflow::bare()
        .register_split(S::A, members, JoinConfig::new(JoinStrategy::All, S::Done))
        .add_exit_state(S::Done);
    assert_eq!(
        wf.orchestrate(S::A).await.unwrap_err().message(),
        "Join condition not met: 0 of 1 tasks completed successfully, strategy: All; errors: task 0: Task execution error: panic in split task 0: boom"
    );
    assert!(is_open(&b));
}

#[tokio::test(start_paused = true)]
async fn a_successful_probe_run_closes_the_breaker() {
    let b = breaker(1, Duration::ZERO, 1);
    fail_once(&b);
    let calls = counter();
    let wf = single(Call::new(Body::Ok, guarded(&b), &calls));
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::Done));
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_trip_by_one_task_rejects_another_task_sharing_the_breaker() {
    let b = breaker(2, LONG, 1);
    let (failing_calls, other_calls) = (counter(), counter());
    let failing = single(Call::new(Body::Fail, guarded(&b), &failing_calls));
    let other = single(Call::new(Body::Ok, guarded(&b), &other_calls));
    assert_eq!(other.orchestrate(S::A).await, Ok(S::Done));
    for _ in 0..2 {
        assert_eq!(
            failing.orchestrate(S::A).await,
            Err(CanoError::task_execution("down"))
        );
    }
    assert_eq!(other.orchestrate(S::A).await, Err(rejected_open()));
    assert_eq!(count(&other_calls), 1);
}

#[tokio::test(start_paused = true)]
async fn split_members_sharing_a_breaker_trip_it_together() {
    let b = breaker(4, LONG, 1);
    let calls = counter();
    let members = (0..4)
        .map(|_| Call::new(Body::Fail, guarded(&b), &calls))
        .collect();
    let wf = Workflow::bare()
        .register_split(S::A, members, JoinConfig::new(JoinStrategy::All, S::Done))
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::A).await.unwrap_err();
    assert!(
        err.message().starts_with(
            "Join condition not met: 0 of 4 tasks completed successfully, strategy: All; errors: "
        ),
        "{err}"
    );
    assert!(
        err.message().ends_with("; ... and 1 more error(s)"),
        "{err}"
    );
    assert_eq!(count(&calls), 4);
    assert!(
        is_open(&b),
        "four member failures reach the threshold of four"
    );
}

#[tokio::test(start_paused = true)]
async fn members_started_after_a_shared_trip_are_rejected_without_running() {
    // A bulkhead of one runs members in index order: 0 and 1 fail and trip the breaker,
    // so 2 and 3 are rejected at their first acquire.
    let b = breaker(2, LONG, 1);
    let calls = counter();
    let members = (0..4)
        .map(|_| Call::new(Body::Fail, guarded(&b), &calls))
        .collect();
    let wf = Workflow::bare()
        .register_split(
            S::A,
            members,
            JoinConfig::new(JoinStrategy::All, S::Done).with_bulkhead(1),
        )
        .add_exit_state(S::Done);
    assert_eq!(
        wf.orchestrate(S::A).await.unwrap_err().message(),
        "Join condition not met: 0 of 4 tasks completed successfully, strategy: All; errors: task 0: Task execution error: down; task 1: Task execution error: down; task 2: Circuit open: circuit breaker open: rejecting call; ... and 1 more error(s)"
    );
    assert_eq!(count(&calls), 2);
}

#[tokio::test(start_paused = true)]
async fn half_open_split_members_get_at_most_the_probe_slots() {
    let b = breaker(1, Duration::ZERO, 2);
    fail_once(&b);
    let calls = counter();
    let rec = Recorder::new();
    let members = (0..6)
        .map(|_| Call::new(Body::Sleep(Duration::from_millis(10)), guarded(&b), &calls))
        .collect();
    let wf = Workflow::bare()
        .register_split(
            S::A,
            members,
            JoinConfig::new(JoinStrategy::Quorum(2), S::Done),
        )
        .add_exit_state(S::Done)
        .with_observer(rec.clone());
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::Done));
    assert_eq!(count(&calls), 2, "two probe slots");
    assert_eq!(rec.events_with("circuit_open:").len(), 4);
    assert_eq!(rec.events_with("success:").len(), 2);
    assert_eq!(
        rec.failures(),
        vec![rejected_half_open(); 4],
        "the other four were turned away"
    );
    assert_eq!(
        b.state(),
        CircuitState::Closed,
        "two probe successes close it"
    );
}

// ---------------------------------------------------------------------------------------
// Many concurrent runs on a multi-thread runtime
// ---------------------------------------------------------------------------------------

/// Start `n` runs of `wf` at once; their results, in completion order.
async fn concurrent_runs(wf: &Arc<Workflow<S>>, n: usize) -> Vec<Result<S, CanoError>> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let wf = Arc::clone(wf);
            tokio::spawn(async move { wf.orchestrate(S::A).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(tokio::time::timeout(GUARD, h).await.unwrap().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_runs_share_one_breaker() {
    let b = breaker(5, LONG, 1);
    let calls = counter();
    let wf = Arc::new(single(Call::new(Body::YieldFail, guarded(&b), &calls)));
    let results = concurrent_runs(&wf, 50).await;
    let ran = count(&calls);
    let raw = results
        .iter()
        .filter(|r| **r == Err(CanoError::task_execution("down")))
        .count();
    let rejected = results
        .iter()
        .filter(|r| **r == Err(rejected_open()))
        .count();
    assert_eq!(raw + rejected, 50, "only these two outcomes: {results:?}");
    assert_eq!(
        ran, raw,
        "every admitted run ran its body once, no other did"
    );
    assert!(ran >= 5, "the threshold has to be reached: {ran}");
    assert!(is_open(&b));
    // Once open, nothing gets through any more.
    let results = concurrent_runs(&wf, 50).await;
    assert!(results.iter().all(|r| *r == Err(rejected_open())));
    assert_eq!(count(&calls), ran);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_five_failing_runs_the_other_forty_five_are_rejected() {
    let b = breaker(5, LONG, 1);
    let calls = counter();
    let wf = Arc::new(single(Call::new(Body::YieldFail, guarded(&b), &calls)));
    let first = concurrent_runs(&wf, 5).await;
    assert!(
        first
            .iter()
            .all(|r| *r == Err(CanoError::task_execution("down")))
    );
    let rest = concurrent_runs(&wf, 45).await;
    assert!(rest.iter().all(|r| *r == Err(rejected_open())), "{rest:?}");
    assert_eq!(count(&calls), 5, "the task body ran at most five times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs_against_a_half_open_breaker_probe_at_most_max_calls() {
    const RUNS: usize = 20;
    let b = breaker(1, Duration::ZERO, 2);
    fail_once(&b);
    let calls = counter();
    let gate = Arc::new(Semaphore::new(0));
    let wf = Arc::new(single(Call::new(
        Body::Gate(Arc::clone(&gate)),
        guarded(&b),
        &calls,
    )));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for _ in 0..RUNS {
        let (wf, tx) = (Arc::clone(&wf), tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(wf.orchestrate(S::A).await);
        });
    }
    // The probes hold their slots at the gate; everyone else is turned away.
    for _ in 0..RUNS - 2 {
        let r = tokio::time::timeout(GUARD, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r, Err(rejected_half_open()));
    }
    assert_eq!(count(&calls), 2, "exactly two probes reached the body");
    assert_eq!(b.state(), CircuitState::HalfOpen);
    gate.add_permits(2);
    for _ in 0..2 {
        let r = tokio::time::timeout(GUARD, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r, Ok(S::Done));
    }
    assert_eq!(b.state(), CircuitState::Closed);
}
