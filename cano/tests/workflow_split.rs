//! Split states end to end through `orchestrate`: every join strategy, early stop and
//! cancellation of the members still running, member results and per-member
//! `TaskConfig`s, panics, the bulkhead, split validation and split / workflow timeouts.
//!
//! Members sleep with `tokio::time::sleep` and every timed test runs on tokio's paused
//! clock, so "500 ms" costs nothing and elapsed times are exact up to a millisecond.

mod support;

use cano::prelude::*;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Log, Probe, Recorder};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Fan,
    Merge,
    Joined,
    Done,
    Elsewhere,
    Unknown,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a [`Member`] does after its delay.
#[derive(Clone)]
enum End {
    Ok,
    /// Succeeds with `TaskResult::Split(vec![])`.
    OkSplit,
    /// Succeeds naming a state that is not registered anywhere.
    OkTo(S),
    Fail(&'static str),
    Panic(&'static str),
    /// Fails on its first `n` calls, then succeeds.
    FailFirst(usize),
}

/// Tracks how many members run their body at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    /// Paused-clock offsets (from `origin`) at which bodies started.
    starts: Mutex<Vec<Duration>>,
    origin: Mutex<Option<Instant>>,
}

impl Gauge {
    fn new(origin: Instant) -> Arc<Self> {
        let g = Self::default();
        *g.origin.lock().unwrap() = Some(origin);
        Arc::new(g)
    }

    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        if let Some(origin) = *self.origin.lock().unwrap() {
            self.starts.lock().unwrap().push(origin.elapsed());
        }
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// A split member: counts its calls, sleeps `delay`, marks itself finished, then ends
/// as told. A member cancelled during its sleep never sets `finished`.
struct Member {
    name: Option<&'static str>,
    delay: Duration,
    end: End,
    config: TaskConfig,
    calls: Arc<AtomicUsize>,
    finished: Arc<AtomicBool>,
    gauge: Option<Arc<Gauge>>,
}

impl Member {
    fn new(delay_ms: u64, end: End) -> Self {
        Self {
            name: None,
            delay: ms(delay_ms),
            end,
            config: TaskConfig::minimal(),
            calls: Arc::default(),
            finished: Arc::default(),
            gauge: None,
        }
    }

    fn ok(delay_ms: u64) -> Self {
        Self::new(delay_ms, End::Ok)
    }

    fn fail(delay_ms: u64, msg: &'static str) -> Self {
        Self::new(delay_ms, End::Fail(msg))
    }

    fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    fn with_config(mut self, config: TaskConfig) -> Self {
        self.config = config;
        self
    }

    fn gauged(mut self, gauge: &Arc<Gauge>) -> Self {
        self.gauge = Some(Arc::clone(gauge));
        self
    }

    /// Handles to watch this member from the test: (calls, finished).
    fn handles(&self) -> (Arc<AtomicUsize>, Arc<AtomicBool>) {
        (Arc::clone(&self.calls), Arc::clone(&self.finished))
    }
}

#[task(state = S)]
impl Member {
    fn config(&self) -> TaskConfig {
        self.config.clone()
    }

    fn name(&self) -> Cow<'static, str> {
        match self.name {
            Some(n) => Cow::Borrowed(n),
            None => Cow::Borrowed(std::any::type_name::<Self>()),
        }
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(g) = &self.gauge {
            g.enter();
        }
        tokio::time::sleep(self.delay).await;
        self.finished.store(true, Ordering::SeqCst);
        if let Some(g) = &self.gauge {
            g.leave();
        }
        match &self.end {
            End::Ok => Ok(TaskResult::Single(S::Done)),
            End::OkSplit => Ok(TaskResult::Split(vec![])),
            End::OkTo(s) => Ok(TaskResult::Single(s.clone())),
            End::Fail(msg) => Err(CanoError::task_execution(*msg)),
            End::Panic(msg) => panic!("{msg}"),
            End::FailFirst(n) if call <= *n => Err(CanoError::task_execution("not yet")),
            End::FailFirst(_) => Ok(TaskResult::Single(S::Done)),
        }
    }
}

/// Moves on from the join state.
struct MergeTask;

#[task(state = S)]
impl MergeTask {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Done))
    }
}

/// A split at `Fan` joining into the exit state `Joined`.
fn split<T: Task<S> + 'static>(members: Vec<T>, join: JoinConfig<S>) -> Workflow<S> {
    Workflow::bare()
        .register_split(S::Fan, members, join)
        .add_exit_state(S::Joined)
}

fn join(strategy: JoinStrategy) -> JoinConfig<S> {
    JoinConfig::new(strategy, S::Joined)
}

/// Run from `Fan`; the result and the paused-clock time it took.
async fn timed(wf: &Workflow<S>) -> (Result<S, CanoError>, Duration) {
    let start = Instant::now();
    let out = wf.orchestrate(S::Fan).await;
    (out, start.elapsed())
}

/// `elapsed` is `expected_ms` give or take the timer wheel's millisecond rounding.
#[track_caller]
fn assert_took(elapsed: Duration, expected_ms: u64) {
    assert!(
        elapsed >= ms(expected_ms) && elapsed < ms(expected_ms + 5),
        "expected ~{expected_ms}ms, took {elapsed:?}"
    );
}

/// Let the paused clock run far past every member's sleep, so a member that was not
/// really cancelled would get to finish.
async fn let_stragglers_finish() {
    tokio::time::sleep(Duration::from_secs(10)).await;
}

#[track_caller]
fn assert_cancelled(handles: &(Arc<AtomicUsize>, Arc<AtomicBool>)) {
    assert_eq!(
        handles.0.load(Ordering::SeqCst),
        1,
        "the member had started"
    );
    assert!(
        !handles.1.load(Ordering::SeqCst),
        "the member was aborted and never got past its sleep"
    );
}

fn calls(handles: &(Arc<AtomicUsize>, Arc<AtomicBool>)) -> usize {
    handles.0.load(Ordering::SeqCst)
}

fn oks(n: usize) -> Vec<Member> {
    (0..n as u64).map(|i| Member::ok(10 * (i + 1))).collect()
}

// ---------------------------------------------------------------------------------------
// The strategy table: all members succeed
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn every_strategy_succeeds_when_every_member_succeeds() {
    let strategies = [
        JoinStrategy::All,
        JoinStrategy::Any,
        JoinStrategy::Quorum(3),
        JoinStrategy::Quorum(4),
        JoinStrategy::Percentage(0.75),
        JoinStrategy::Percentage(1.0),
        JoinStrategy::PartialResults(2),
        JoinStrategy::PartialResults(4),
        JoinStrategy::PartialTimeout,
    ];
    for strategy in strategies {
        let cfg = join(strategy.clone()).with_timeout(Duration::from_secs(1));
        let (out, _) = timed(&split(oks(4), cfg)).await;
        assert_eq!(out, Ok(S::Joined), "{strategy:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_single_member_split_joins() {
    for strategy in [
        JoinStrategy::All,
        JoinStrategy::Any,
        JoinStrategy::Quorum(1),
    ] {
        let (out, _) = timed(&split(vec![Member::ok(5)], join(strategy))).await;
        assert_eq!(out, Ok(S::Joined));
    }
}

// ---------------------------------------------------------------------------------------
// The strategy table: zero members
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn zero_members_all_and_percentage_succeed() {
    for strategy in [JoinStrategy::All, JoinStrategy::Percentage(0.5)] {
        let (out, elapsed) = timed(&split::<Member>(vec![], join(strategy.clone()))).await;
        assert_eq!(out, Ok(S::Joined), "{strategy:?}");
        assert_eq!(elapsed, Duration::ZERO);
    }
}

#[tokio::test(start_paused = true)]
async fn zero_members_any_fails() {
    let (out, _) = timed(&split::<Member>(vec![], join(JoinStrategy::Any))).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Join condition not met: 0 of 0 tasks completed successfully, strategy: Any"
    );
}

#[tokio::test(start_paused = true)]
async fn zero_members_quorum_succeeds_only_for_zero() {
    let (out, _) = timed(&split::<Member>(vec![], join(JoinStrategy::Quorum(0)))).await;
    assert_eq!(out, Ok(S::Joined));
    let (out, _) = timed(&split::<Member>(vec![], join(JoinStrategy::Quorum(1)))).await;
    assert_eq!(
        out,
        Err(CanoError::workflow(
            "Join condition not met: 0 of 0 tasks completed successfully, strategy: Quorum(1)"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn zero_members_partial_results_succeeds_only_for_zero() {
    let (out, _) = timed(&split(
        Vec::<Member>::new(),
        join(JoinStrategy::PartialResults(0)),
    ))
    .await;
    assert_eq!(out, Ok(S::Joined));
    let (out, _) = timed(&split(
        Vec::<Member>::new(),
        join(JoinStrategy::PartialResults(1)),
    ))
    .await;
    assert_eq!(
        out,
        Err(CanoError::workflow(
            "Partial results condition not met: 0 completed successfully, 1 required"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn zero_members_partial_timeout_fails() {
    let cfg = join(JoinStrategy::PartialTimeout).with_timeout(ms(50));
    let (out, _) = timed(&split::<Member>(vec![], cfg)).await;
    assert_eq!(
        out,
        Err(CanoError::workflow(
            "PartialTimeout: No tasks completed before timeout"
        ))
    );
}

// ---------------------------------------------------------------------------------------
// The strategy table: failures and exact error texts
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn all_with_one_failure_fails_after_waiting_for_every_member() {
    let members = vec![Member::fail(10, "f0"), Member::ok(20), Member::ok(500)];
    let (out, elapsed) = timed(&split(members, join(JoinStrategy::All))).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Join condition not met: 2 of 3 tasks completed successfully, strategy: All; errors: task 0: Task execution error: f0"
    );
    assert_took(elapsed, 500);
}

#[tokio::test(start_paused = true)]
async fn more_than_three_errors_are_summarised() {
    let members = (0..5u64)
        .map(|i| {
            let msg: &'static str = ["f0", "f1", "f2", "f3", "f4"][i as usize];
            Member::fail(10 * (i + 1), msg)
        })
        .collect();
    let (out, _) = timed(&split(members, join(JoinStrategy::All))).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Join condition not met: 0 of 5 tasks completed successfully, strategy: All; errors: task 0: Task execution error: f0; task 1: Task execution error: f1; task 2: Task execution error: f2; ... and 2 more error(s)"
    );
}

#[tokio::test(start_paused = true)]
async fn exactly_three_errors_have_no_more_suffix() {
    let members = vec![
        Member::fail(10, "a"),
        Member::fail(20, "b"),
        Member::fail(30, "c"),
    ];
    let (out, _) = timed(&split(members, join(JoinStrategy::All))).await;
    assert_eq!(
        out.unwrap_err().message(),
        "Join condition not met: 0 of 3 tasks completed successfully, strategy: All; errors: task 0: Task execution error: a; task 1: Task execution error: b; task 2: Task execution error: c"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_are_listed_in_completion_order_with_their_indices() {
    let members = vec![
        Member::fail(30, "late"),
        Member::ok(5),
        Member::fail(10, "early"),
    ];
    let (out, _) = timed(&split(members, join(JoinStrategy::All))).await;
    assert_eq!(
        out.unwrap_err().message(),
        "Join condition not met: 1 of 3 tasks completed successfully, strategy: All; errors: task 2: Task execution error: early; task 0: Task execution error: late"
    );
}

#[tokio::test(start_paused = true)]
async fn any_with_every_member_failing_lists_the_errors() {
    let members = vec![Member::fail(10, "bad"), Member::fail(20, "bad")];
    let (out, elapsed) = timed(&split(members, join(JoinStrategy::Any))).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Join condition not met: 0 of 2 tasks completed successfully, strategy: Any; errors: task 0: Task execution error: bad; task 1: Task execution error: bad"
    );
    assert_took(elapsed, 20);
}

#[tokio::test(start_paused = true)]
async fn quorum_with_one_failure_is_met() {
    let members = vec![Member::ok(10), Member::fail(20, "x"), Member::ok(30)];
    let (out, _) = timed(&split(members, join(JoinStrategy::Quorum(2)))).await;
    assert_eq!(out, Ok(S::Joined));
}

#[tokio::test(start_paused = true)]
async fn quorum_zero_with_every_member_failing_is_met() {
    let members = vec![Member::fail(10, "x"), Member::fail(20, "y")];
    let (out, _) = timed(&split(members, join(JoinStrategy::Quorum(0)))).await;
    assert_eq!(out, Ok(S::Joined));
}

#[tokio::test(start_paused = true)]
async fn quorum_larger_than_the_member_count_fails_without_an_errors_suffix() {
    let (out, _) = timed(&split(oks(2), join(JoinStrategy::Quorum(5)))).await;
    assert_eq!(
        out,
        Err(CanoError::workflow(
            "Join condition not met: 2 of 2 tasks completed successfully, strategy: Quorum(5)"
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn percentage_needs_the_ceiling_of_its_share() {
    // ceil(3 × 0.5) = 2 successes needed; only one.
    let members = vec![Member::ok(10), Member::fail(20, "x"), Member::fail(30, "y")];
    let (out, _) = timed(&split(members, join(JoinStrategy::Percentage(0.5)))).await;
    assert_eq!(
        out.unwrap_err().message(),
        "Join condition not met: 1 of 3 tasks completed successfully, strategy: Percentage(0.5); errors: task 1: Task execution error: x; task 2: Task execution error: y"
    );
    // Two of three is enough.
    let members = vec![Member::ok(10), Member::ok(20), Member::fail(30, "y")];
    let (out, _) = timed(&split(members, join(JoinStrategy::Percentage(0.5)))).await;
    assert_eq!(out, Ok(S::Joined));
}

#[tokio::test(start_paused = true)]
async fn percentage_one_behaves_like_all() {
    let members = vec![
        Member::ok(10),
        Member::ok(20),
        Member::fail(30, "x"),
        Member::ok(40),
    ];
    let (out, _) = timed(&split(members, join(JoinStrategy::Percentage(1.0)))).await;
    assert_eq!(
        out.unwrap_err().message(),
        "Join condition not met: 3 of 4 tasks completed successfully, strategy: Percentage(1.0); errors: task 2: Task execution error: x"
    );
}

#[tokio::test(start_paused = true)]
async fn partial_results_with_too_few_successes_lists_the_errors() {
    let members = vec![Member::ok(10), Member::fail(20, "x"), Member::fail(30, "y")];
    let (out, _) = timed(&split(members, join(JoinStrategy::PartialResults(2)))).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Partial results condition not met: 1 completed successfully, 2 required; errors: task 1: Task execution error: x; task 2: Task execution error: y"
    );
}

#[tokio::test(start_paused = true)]
async fn partial_results_counts_successes_only() {
    // Two completions, but only one success: PartialResults(2) must not stop early at
    // the second completion; it waits for the third member's success.
    let members = vec![Member::fail(10, "x"), Member::ok(20), Member::ok(300)];
    let (out, elapsed) = timed(&split(members, join(JoinStrategy::PartialResults(2)))).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 300);
}

#[tokio::test(start_paused = true)]
async fn partial_timeout_with_only_failures_succeeds_once_everything_finished() {
    let members = vec![Member::fail(10, "x"), Member::fail(20, "y")];
    let cfg = join(JoinStrategy::PartialTimeout).with_timeout(ms(200));
    let (out, elapsed) = timed(&split(members, cfg)).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 20);
}

#[tokio::test(start_paused = true)]
async fn partial_timeout_with_nothing_finished_fails_at_the_deadline() {
    let slow = Member::ok(100);
    let h = slow.handles();
    let cfg = join(JoinStrategy::PartialTimeout).with_timeout(ms(50));
    let (out, elapsed) = timed(&split(vec![slow], cfg)).await;
    assert_eq!(
        out,
        Err(CanoError::workflow(
            "PartialTimeout: No tasks completed before timeout"
        ))
    );
    assert_took(elapsed, 50);
    let_stragglers_finish().await;
    assert_cancelled(&h);
}

#[tokio::test(start_paused = true)]
async fn partial_timeout_succeeds_at_the_deadline_and_cancels_the_stragglers() {
    let members = vec![
        Member::ok(50),
        Member::ok(100),
        Member::ok(500),
        Member::ok(600),
    ];
    let stragglers = [members[2].handles(), members[3].handles()];
    let cfg = join(JoinStrategy::PartialTimeout).with_timeout(ms(200));
    let (out, elapsed) = timed(&split(members, cfg)).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 200);
    let_stragglers_finish().await;
    stragglers.iter().for_each(assert_cancelled);
}

#[tokio::test(start_paused = true)]
async fn partial_timeout_when_everything_finishes_early_does_not_wait_for_the_deadline() {
    let cfg = join(JoinStrategy::PartialTimeout).with_timeout(Duration::from_secs(5));
    let (out, elapsed) = timed(&split(oks(3), cfg)).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 30);
}

// ---------------------------------------------------------------------------------------
// Timing: who waits for what
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn any_returns_at_the_first_success_and_cancels_the_rest() {
    let members = vec![Member::fail(10, "x"), Member::ok(20), Member::ok(300)];
    let loser = members[2].handles();
    let rec = Recorder::new();
    let wf = split(members, join(JoinStrategy::Any)).with_observer(rec.clone());
    let (out, elapsed) = timed(&wf).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 20);
    let_stragglers_finish().await;
    assert_cancelled(&loser);
    let id = |i: usize| format!("{}[{i}]", std::any::type_name::<Member>());
    assert_eq!(
        rec.events_with("success:"),
        [format!("success:{}", id(1))],
        "the cancelled member is not reported"
    );
    assert_eq!(rec.events_with("failure:"), [format!("failure:{}", id(0))]);
}

#[tokio::test(start_paused = true)]
async fn partial_results_returns_at_the_nth_success_and_cancels_the_rest() {
    let members = vec![
        Member::ok(50),
        Member::ok(100),
        Member::ok(500),
        Member::ok(600),
    ];
    let losers = [members[2].handles(), members[3].handles()];
    let rec = Recorder::new();
    let wf = split(members, join(JoinStrategy::PartialResults(2))).with_observer(rec.clone());
    let (out, elapsed) = timed(&wf).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 100);
    let_stragglers_finish().await;
    losers.iter().for_each(assert_cancelled);
    assert_eq!(rec.events_with("success:").len(), 2);
    assert!(
        rec.events_with("success:")
            .iter()
            .all(|e| e.ends_with("[0]") || e.ends_with("[1]")),
        "{:?}",
        rec.events()
    );
    assert!(rec.events_with("failure:").is_empty());
}

#[tokio::test(start_paused = true)]
async fn partial_results_with_a_fast_failure_still_succeeds() {
    let members = vec![
        Member::fail(10, "x"),
        Member::ok(50),
        Member::ok(100),
        Member::ok(500),
    ];
    let (out, elapsed) = timed(&split(members, join(JoinStrategy::PartialResults(2)))).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 100);
}

#[tokio::test(start_paused = true)]
async fn partial_results_zero_stops_at_the_first_completion_of_any_kind() {
    let members = vec![Member::fail(10, "x"), Member::ok(300)];
    let loser = members[1].handles();
    let (out, elapsed) = timed(&split(members, join(JoinStrategy::PartialResults(0)))).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 10);
    let_stragglers_finish().await;
    assert_cancelled(&loser);
}

#[tokio::test(start_paused = true)]
async fn quorum_and_percentage_wait_for_the_slowest_member() {
    for strategy in [JoinStrategy::Quorum(2), JoinStrategy::Percentage(0.5)] {
        let members = vec![Member::ok(50), Member::ok(100), Member::ok(500)];
        let slow = members[2].handles();
        let (out, elapsed) = timed(&split(members, join(strategy.clone()))).await;
        assert_eq!(out, Ok(S::Joined), "{strategy:?}");
        assert_took(elapsed, 500);
        assert!(slow.1.load(Ordering::SeqCst), "the slowest member finished");
    }
}

#[tokio::test(start_paused = true)]
async fn a_met_quorum_still_fails_when_a_straggler_outlives_the_split_timeout() {
    let members = vec![Member::ok(10), Member::ok(10), Member::ok(500)];
    let straggler = members[2].handles();
    let cfg = join(JoinStrategy::Quorum(2)).with_timeout(ms(100));
    let (out, elapsed) = timed(&split(members, cfg)).await;
    assert_eq!(out, Err(CanoError::workflow("Split task timeout exceeded")));
    assert_took(elapsed, 100);
    let_stragglers_finish().await;
    assert_cancelled(&straggler);
}

#[tokio::test(start_paused = true)]
async fn partial_results_that_cannot_be_met_in_time_fails_with_the_split_timeout() {
    let members = vec![Member::ok(500), Member::ok(500), Member::ok(500)];
    let cfg = join(JoinStrategy::PartialResults(3)).with_timeout(ms(100));
    let (out, elapsed) = timed(&split(members, cfg)).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Split task timeout exceeded"
    );
    assert_took(elapsed, 100);
}

// ---------------------------------------------------------------------------------------
// Member results, member configs, panics
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn member_results_are_ignored_and_the_join_state_is_always_next() {
    let members = vec![
        Member::new(10, End::OkSplit),
        Member::new(20, End::OkTo(S::Unknown)),
        Member::new(30, End::OkTo(S::Elsewhere)),
    ];
    let rec = Recorder::new();
    let wf = Workflow::bare()
        .register_split(
            S::Fan,
            members,
            JoinConfig::new(JoinStrategy::All, S::Merge),
        )
        .register(S::Merge, MergeTask)
        .add_exit_states(vec![S::Done, S::Elsewhere])
        .with_observer(rec.clone());
    assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Done));
    let entered: Vec<String> = rec.events_with("enter:");
    assert_eq!(entered, ["enter:Fan", "enter:Merge", "enter:Done"]);
}

#[tokio::test(start_paused = true)]
async fn with_join_state_redirects_the_split() {
    let cfg = JoinConfig::new(JoinStrategy::All, S::Merge).with_join_state(S::Joined);
    let (out, _) = timed(&split(oks(2), cfg)).await;
    assert_eq!(out, Ok(S::Joined));
}

#[tokio::test(start_paused = true)]
async fn each_member_applies_its_own_task_config() {
    let flaky = Member::new(0, End::FailFirst(2))
        .with_config(TaskConfig::new().with_retry(RetryMode::fixed(4, Duration::ZERO)));
    let once = Member::fail(0, "no retries for me");
    let retried =
        Member::fail(0, "three tries").with_config(TaskConfig::new().with_fixed_retry(2, ms(10)));
    let (flaky_h, once_h, retried_h) = (flaky.handles(), once.handles(), retried.handles());
    let (out, elapsed) = timed(&split(
        vec![flaky, once, retried],
        join(JoinStrategy::Quorum(1)),
    ))
    .await;
    assert_eq!(out, Ok(S::Joined));
    assert_eq!(calls(&flaky_h), 3, "Fixed(4) succeeding on the 3rd call");
    assert_eq!(calls(&once_h), 1, "minimal(): a single attempt");
    assert_eq!(calls(&retried_h), 3, "Fixed(2): three attempts");
    assert_took(elapsed, 20);
}

#[tokio::test(start_paused = true)]
async fn member_retries_finish_before_the_member_reports() {
    // The retried member's final error is the wrapped one: its retries ran inside it.
    let members =
        vec![Member::fail(0, "nope").with_config(TaskConfig::new().with_fixed_retry(2, ms(5)))];
    let (out, _) = timed(&split(members, join(JoinStrategy::All))).await;
    assert_eq!(
        out.unwrap_err().message(),
        "Join condition not met: 0 of 1 tasks completed successfully, strategy: All; errors: task 0: Retry exhausted: Task failed after 3 attempt(s): Task execution error: nope"
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_attempt_timeout_is_its_own() {
    let members = vec![
        Member::ok(100).with_config(TaskConfig::minimal().with_attempt_timeout(ms(30))),
        Member::ok(60),
    ];
    let (out, elapsed) = timed(&split(members, join(JoinStrategy::All))).await;
    assert_eq!(
        out.unwrap_err().message(),
        "Join condition not met: 1 of 2 tasks completed successfully, strategy: All; errors: task 0: Timeout error: task attempt exceeded attempt_timeout"
    );
    assert_took(elapsed, 60);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_member_fails_only_its_own_index() {
    let members = vec![
        Member::ok(10),
        Member::new(20, End::Panic("kaboom")),
        Member::ok(30),
    ];
    let handles: Vec<_> = members.iter().map(Member::handles).collect();
    let (out, _) = timed(&split(members, join(JoinStrategy::All))).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Join condition not met: 2 of 3 tasks completed successfully, strategy: All; errors: task 1: Task execution error: panic in split task 1: kaboom"
    );
    assert!(handles[0].1.load(Ordering::SeqCst) && handles[2].1.load(Ordering::SeqCst));

    let members = vec![
        Member::ok(10),
        Member::new(20, End::Panic("kaboom")),
        Member::ok(30),
    ];
    let (out, _) = timed(&split(members, join(JoinStrategy::Quorum(2)))).await;
    assert_eq!(out, Ok(S::Joined), "the other members still count");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_member_is_not_retried() {
    let member = Member::new(0, End::Panic("once"))
        .with_config(TaskConfig::new().with_fixed_retry(3, Duration::ZERO));
    let h = member.handles();
    let (out, _) = timed(&split(vec![member], join(JoinStrategy::PartialResults(1)))).await;
    assert_eq!(
        out.unwrap_err().message(),
        "Partial results condition not met: 0 completed successfully, 1 required; errors: task 0: Task execution error: panic in split task 0: once"
    );
    assert_eq!(calls(&h), 1);
}

// ---------------------------------------------------------------------------------------
// Bulkhead
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_bulkhead_caps_concurrency() {
    let origin = Instant::now();
    let gauge = Gauge::new(origin);
    let members: Vec<Member> = (0..10).map(|_| Member::ok(50).gauged(&gauge)).collect();
    let cfg = join(JoinStrategy::All).with_bulkhead(2);
    let (out, elapsed) = timed(&split(members, cfg)).await;
    assert_eq!(out, Ok(S::Joined));
    assert!(gauge.peak() <= 2, "peak {}", gauge.peak());
    assert!(gauge.peak() >= 1);
    assert_took(elapsed, 250);
    let starts = gauge.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 10);
    for (wave, pair) in starts.chunks(2).enumerate() {
        for start in pair {
            let expected = 50 * wave as u64;
            assert!(
                *start >= ms(expected) && *start < ms(expected + 5),
                "bodies start in waves of two: {starts:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_bulkhead_every_member_runs_at_once() {
    let gauge = Gauge::new(Instant::now());
    let members: Vec<Member> = (0..10).map(|_| Member::ok(50).gauged(&gauge)).collect();
    let (out, elapsed) = timed(&split(members, join(JoinStrategy::All))).await;
    assert_eq!(out, Ok(S::Joined));
    assert_eq!(gauge.peak(), 10);
    assert_took(elapsed, 50);
}

/// Records the paused-clock offset of each `on_task_start`.
struct StartClock {
    origin: Instant,
    at: Mutex<Vec<Duration>>,
}

impl WorkflowObserver for StartClock {
    fn on_task_start(&self, _task_id: &str) {
        self.at.lock().unwrap().push(self.origin.elapsed());
    }
}

#[tokio::test(start_paused = true)]
async fn with_a_bulkhead_every_start_event_fires_up_front() {
    let clock = Arc::new(StartClock {
        origin: Instant::now(),
        at: Mutex::default(),
    });
    let rec = Recorder::new();
    let members: Vec<Member> = (0..6).map(|_| Member::ok(50)).collect();
    let wf = split(members, join(JoinStrategy::All).with_bulkhead(1))
        .with_observer(clock.clone())
        .with_observer(rec.clone());
    let (out, elapsed) = timed(&wf).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 300);
    let at = clock.at.lock().unwrap().clone();
    assert_eq!(at, vec![Duration::ZERO; 6], "all start events at t=0");
    let events = rec.events();
    let name = std::any::type_name::<Member>();
    let expected_starts: Vec<String> = (0..6).map(|i| format!("start:{name}[{i}]")).collect();
    assert_eq!(events[1..7], expected_starts[..]);
}

#[tokio::test(start_paused = true)]
async fn time_spent_waiting_for_the_bulkhead_counts_against_the_split_timeout() {
    let members: Vec<Member> = (0..3).map(|_| Member::ok(50)).collect();
    let last = members[2].handles();
    let cfg = join(JoinStrategy::All)
        .with_bulkhead(1)
        .with_timeout(ms(120));
    let (out, elapsed) = timed(&split(members, cfg)).await;
    assert_eq!(out, Err(CanoError::workflow("Split task timeout exceeded")));
    assert_took(elapsed, 120);
    let_stragglers_finish().await;
    assert_cancelled(&last);
}

#[tokio::test(start_paused = true)]
async fn a_zero_bulkhead_is_a_configuration_error_before_any_setup() {
    let log = Log::new();
    let wf = Workflow::new(Resources::new().insert("probe", Probe::new("p", &log)))
        .register_split(S::Fan, oks(2), join(JoinStrategy::All).with_bulkhead(0))
        .add_exit_state(S::Joined);
    let expected = CanoError::configuration("bulkhead requires a positive permit count, got 0");
    assert_eq!(wf.validate(), Err(expected.clone()));
    assert_eq!(wf.orchestrate(S::Fan).await, Err(expected));
    assert!(log.entries().is_empty(), "no setup: {:?}", log.entries());
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// A workflow with a setup-recording resource and a split at `Fan` joining per `cfg`.
fn probed(log: &Log, cfg: JoinConfig<S>) -> Workflow<S> {
    Workflow::new(Resources::new().insert("probe", Probe::new("p", log)))
        .register_split(S::Fan, oks(2), cfg)
        .add_exit_state(S::Joined)
}

#[tokio::test(start_paused = true)]
async fn an_unregistered_join_state_is_rejected_before_any_setup() {
    let log = Log::new();
    let rec = Recorder::new();
    let wf = probed(&log, JoinConfig::new(JoinStrategy::All, S::Merge)).with_observer(rec.clone());
    let err = wf.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "Configuration error: Split join_state Merge is neither registered nor an exit state"
    );
    assert_eq!(wf.orchestrate(S::Fan).await, Err(err));
    assert!(log.entries().is_empty(), "no setup: {:?}", log.entries());
    assert!(rec.events().is_empty(), "no events: {:?}", rec.events());
}

#[tokio::test(start_paused = true)]
async fn a_join_state_that_is_an_exit_state_or_registered_is_valid() {
    let log = Log::new();
    assert_eq!(probed(&log, join(JoinStrategy::All)).validate(), Ok(()));
    let wf = Workflow::<S>::bare()
        .register_split(S::Fan, oks(1), JoinConfig::new(JoinStrategy::All, S::Merge))
        .register(S::Merge, MergeTask)
        .add_exit_state(S::Done);
    assert_eq!(wf.validate(), Ok(()));
    assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Done));
}

#[tokio::test(start_paused = true)]
async fn partial_timeout_without_a_timeout_is_rejected_before_any_setup() {
    let log = Log::new();
    let wf = probed(&log, join(JoinStrategy::PartialTimeout));
    let expected =
        CanoError::configuration("PartialTimeout strategy requires a timeout to be configured");
    assert_eq!(wf.validate(), Err(expected.clone()));
    assert_eq!(wf.orchestrate(S::Fan).await, Err(expected));
    assert!(log.entries().is_empty());
}

#[tokio::test(start_paused = true)]
async fn out_of_range_percentages_are_rejected_before_any_setup() {
    let cases = [
        (0.0, "0"),
        (-0.25, "-0.25"),
        (1.5, "1.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ];
    for (p, shown) in cases {
        let log = Log::new();
        let wf = probed(&log, join(JoinStrategy::Percentage(p)));
        let expected = CanoError::configuration(format!(
            "Percentage strategy requires a finite value in (0.0, 1.0], got {shown}"
        ));
        assert_eq!(wf.validate(), Err(expected.clone()), "{p}");
        assert_eq!(wf.orchestrate(S::Fan).await, Err(expected), "{p}");
        assert!(log.entries().is_empty(), "{p}: no setup");
    }
    let log = Log::new();
    for p in [f64::MIN_POSITIVE, 0.5, 1.0] {
        assert_eq!(
            probed(&log, join(JoinStrategy::Percentage(p))).validate(),
            Ok(())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_split_and_an_oversized_quorum_pass_validation() {
    let wf = Workflow::<S>::bare()
        .register_split(S::Fan, Vec::<Member>::new(), join(JoinStrategy::Quorum(9)))
        .add_exit_state(S::Joined);
    assert_eq!(wf.validate(), Ok(()));
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_split_timeout_aborts_the_members_and_teardown_still_runs() {
    let log = Log::new();
    let members = vec![Member::ok(200), Member::ok(300)];
    let handles: Vec<_> = members.iter().map(Member::handles).collect();
    let wf = Workflow::new(Resources::new().insert("probe", Probe::new("p", &log)))
        .register_split(
            S::Fan,
            members,
            join(JoinStrategy::All).with_timeout(ms(50)),
        )
        .add_exit_state(S::Joined);
    let (out, elapsed) = timed(&wf).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Split task timeout exceeded"
    );
    assert_took(elapsed, 50);
    assert_eq!(log.entries(), ["setup:p", "teardown:p"]);
    let_stragglers_finish().await;
    handles.iter().for_each(assert_cancelled);
}

#[tokio::test(start_paused = true)]
async fn the_workflow_timeout_during_a_split_aborts_the_members_and_teardown_still_runs() {
    let log = Log::new();
    let members = vec![Member::ok(200), Member::ok(300)];
    let handles: Vec<_> = members.iter().map(Member::handles).collect();
    let wf = Workflow::new(Resources::new().insert("probe", Probe::new("p", &log)))
        .register_split(S::Fan, members, join(JoinStrategy::All))
        .add_exit_state(S::Joined)
        .with_timeout(ms(50));
    let (out, elapsed) = timed(&wf).await;
    assert_eq!(
        out.unwrap_err().to_string(),
        "Workflow error: Workflow timeout exceeded"
    );
    assert_took(elapsed, 50);
    assert_eq!(log.entries(), ["setup:p", "teardown:p"]);
    let_stragglers_finish().await;
    handles.iter().for_each(assert_cancelled);
}

#[tokio::test(start_paused = true)]
async fn the_split_timeout_is_measured_per_split_state_entry() {
    // Two splits in a row, each taking 80ms under a 100ms split timeout: the whole run
    // takes 160ms without tripping the timeout.
    let wf = Workflow::bare()
        .register_split(
            S::Fan,
            vec![Member::ok(80)],
            JoinConfig::new(JoinStrategy::All, S::Merge).with_timeout(ms(100)),
        )
        .register_split(
            S::Merge,
            vec![Member::ok(80)],
            JoinConfig::new(JoinStrategy::All, S::Joined).with_timeout(ms(100)),
        )
        .add_exit_state(S::Joined);
    let (out, elapsed) = timed(&wf).await;
    assert_eq!(out, Ok(S::Joined));
    assert_took(elapsed, 160);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_orchestrate_future_aborts_the_members() {
    let members = vec![Member::ok(200), Member::ok(300)];
    let handles: Vec<_> = members.iter().map(Member::handles).collect();
    let wf = split(members, join(JoinStrategy::All));
    let out = tokio::time::timeout(ms(50), wf.orchestrate(S::Fan)).await;
    assert!(out.is_err(), "the outer timeout fired");
    let_stragglers_finish().await;
    handles.iter().for_each(assert_cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_named_member_is_reported_as_name_and_index() {
    let rec = Recorder::new();
    let members = vec![Member::ok(10).named("fetch"), Member::ok(20).named("fetch")];
    let wf = split(members, join(JoinStrategy::All)).with_observer(rec.clone());
    assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Joined));
    assert_eq!(
        rec.events(),
        [
            "enter:Fan",
            "start:fetch[0]",
            "start:fetch[1]",
            "success:fetch[0]",
            "success:fetch[1]",
            "enter:Joined",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// On a multi-thread runtime: members that never wait, members that block their thread,
// members that wait, and early stops with all of them in flight
// ---------------------------------------------------------------------------------------

/// A member for the multi-thread tests; what it does is in [`Act`].
struct Worker {
    act: Act,
    /// Members whose body is running right now.
    alive: Arc<AtomicUsize>,
    /// Members whose body ran to its end.
    done: Arc<AtomicUsize>,
}

#[derive(Clone)]
enum Act {
    /// Returns at once.
    Instant,
    /// Sleeps on the timer for this long.
    Wait(Duration),
    /// Keeps its thread busy until `flag` is set (or five seconds pass); `saw` tells
    /// whether the flag came.
    BlockUntil {
        flag: Arc<AtomicBool>,
        saw: Arc<AtomicBool>,
    },
    /// Sets `flag` and returns.
    Set(Arc<AtomicBool>),
    /// Sleeps on the timer, then sets `flag`.
    WaitThenSet(Duration, Arc<AtomicBool>),
    /// Never finishes.
    Forever,
    /// Keeps its thread busy (no await) for this long.
    Spin(Duration),
}

/// Decrements `alive` however the body ends (finished or aborted).
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[task(state = S)]
impl Worker {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.alive.fetch_add(1, Ordering::SeqCst);
        let _alive = Alive(Arc::clone(&self.alive));
        match &self.act {
            Act::Instant => {}
            Act::Wait(d) => tokio::time::sleep(*d).await,
            Act::BlockUntil { flag, saw } => {
                let start = std::time::Instant::now();
                while !flag.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                saw.store(flag.load(Ordering::SeqCst), Ordering::SeqCst);
            }
            Act::Set(flag) => flag.store(true, Ordering::SeqCst),
            Act::WaitThenSet(d, flag) => {
                tokio::time::sleep(*d).await;
                flag.store(true, Ordering::SeqCst);
            }
            Act::Forever => std::future::pending::<()>().await,
            Act::Spin(d) => std::thread::sleep(*d),
        }
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(TaskResult::Single(S::Done))
    }
}

/// Members doing `acts`, sharing one pair of (alive, done) counters.
fn workers(acts: Vec<Act>) -> (Vec<Worker>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (alive, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let members = acts
        .into_iter()
        .map(|act| Worker {
            act,
            alive: Arc::clone(&alive),
            done: Arc::clone(&done),
        })
        .collect();
    (members, alive, done)
}

/// Wait (real time, up to two seconds) until no member body is alive.
async fn until_none_alive(alive: &AtomicUsize) {
    for _ in 0..200 {
        if alive.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(ms(10)).await;
    }
    panic!(
        "{} member(s) still running after the split ended",
        alive.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_blocks_its_thread_does_not_hold_up_the_others() {
    let (flag, saw) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let blocker = Act::BlockUntil {
        flag: Arc::clone(&flag),
        saw: Arc::clone(&saw),
    };
    let (members, _, done) = workers(vec![blocker, Act::Instant, Act::Set(flag)]);
    let wf = split(members, join(JoinStrategy::All));
    assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Joined));
    assert!(
        saw.load(Ordering::SeqCst),
        "a later member ran while member 0 held its thread"
    );
    assert_eq!(done.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_blocks_the_collectors_thread_does_not_hold_up_the_others() {
    // With `All` and no deadline the collector starts members itself too: run it in a
    // spawned task (on a worker, as in a server) so that the member it blocks on shares
    // that worker with the runners it spawned. The others must still run elsewhere.
    for _ in 0..20 {
        let (flag, saw) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let blocker = Act::BlockUntil {
            flag: Arc::clone(&flag),
            saw: Arc::clone(&saw),
        };
        let (members, _, done) = workers(vec![blocker, Act::Instant, Act::Set(flag)]);
        let wf = Arc::new(split(members, join(JoinStrategy::All)));
        let run = tokio::spawn({
            let wf = Arc::clone(&wf);
            async move { wf.orchestrate(S::Fan).await }
        });
        assert_eq!(run.await.unwrap(), Ok(S::Joined));
        assert!(
            saw.load(Ordering::SeqCst),
            "a later member ran while member 0 held its thread"
        );
        assert_eq!(done.load(Ordering::SeqCst), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_member_does_not_hold_up_a_member_that_waited_before_it() {
    // Member 0 waits on the timer first; member 1 then blocks a thread until member 0
    // has finished. Member 0 must be able to finish on another thread.
    let (flag, saw) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let blocker = Act::BlockUntil {
        flag: Arc::clone(&flag),
        saw: Arc::clone(&saw),
    };
    let (members, _, _) = workers(vec![Act::WaitThenSet(ms(20), flag), blocker]);
    let wf = split(members, join(JoinStrategy::All));
    assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Joined));
    assert!(
        saw.load(Ordering::SeqCst),
        "member 0 finished while member 1 blocked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_split_of_instant_and_waiting_members_reports_every_one() {
    let acts = (0..1000)
        .map(|i| match i % 3 {
            0 => Act::Wait(ms(1 + i % 7)),
            _ => Act::Instant,
        })
        .collect();
    let (members, alive, done) = workers(acts);
    let wf = split(members, join(JoinStrategy::All));
    for _ in 0..5 {
        assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Joined));
    }
    assert_eq!(done.load(Ordering::SeqCst), 5000);
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_stop_leaves_no_member_running() {
    // A success at index 0, then members that never finish, mixed with instant ones:
    // `Any` returns, and every member still running is aborted, on whichever thread and
    // whether or not it already moved to a task of its own.
    for round in 0..20 {
        let acts = (0..200)
            .map(|i| match (i + round) % 4 {
                0 => Act::Instant,
                _ => Act::Forever,
            })
            .collect();
        let (members, alive, _) = workers(acts);
        let wf = split(members, join(JoinStrategy::Any));
        assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Joined));
        until_none_alive(&alive).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_wide_split_leaves_no_member_running() {
    let acts = (0..300)
        .map(|i| {
            if i % 2 == 0 {
                Act::Forever
            } else {
                Act::Wait(ms(5))
            }
        })
        .collect();
    let (members, alive, _) = workers(acts);
    let wf = split(members, join(JoinStrategy::All));
    let out = tokio::time::timeout(ms(30), wf.orchestrate(S::Fan)).await;
    assert!(out.is_err(), "the split never ends on its own");
    until_none_alive(&alive).await;
}

#[tokio::test(start_paused = true)]
async fn on_one_thread_every_member_starts_before_an_early_stop() {
    // As when every member was spawned up front: on a current-thread runtime each member
    // gets its first poll before the collector sees the first success.
    let (members, alive, done) = workers(vec![Act::Instant, Act::Wait(ms(1)), Act::Instant]);
    let wf = split(members, join(JoinStrategy::Any));
    assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Joined));
    assert_eq!(
        done.load(Ordering::SeqCst),
        2,
        "members 0 and 2 ran to their end"
    );
    let_stragglers_finish().await;
    assert_eq!(alive.load(Ordering::SeqCst), 0, "member 1 was aborted");
    assert_eq!(done.load(Ordering::SeqCst), 2);
}

#[test]
fn a_split_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let (members, _, done) = workers(vec![Act::Instant, Act::Instant]);
    let wf = split(members, join(JoinStrategy::All));
    let mut run = std::pin::pin!(wf.orchestrate(S::Fan));
    let Poll::Ready(out) = run.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("nothing to wait for before the split");
    };
    let err = out.unwrap_err();
    assert_eq!(err.category(), "workflow");
    assert!(err.message().contains("tokio runtime"), "{err}");
    assert_eq!(done.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_deadline_holds_while_a_member_keeps_its_thread_busy() {
    // The split runs in a spawned task (as in a server), so its collector shares the
    // workers with the members. A member that blocks its thread for a second must not
    // hold the collector back past a 150 ms deadline.
    for strategy in [JoinStrategy::PartialTimeout, JoinStrategy::All] {
        let (members, _, done) = workers(vec![Act::Instant, Act::Spin(Duration::from_secs(1))]);
        let wf = Arc::new(split(members, join(strategy.clone()).with_timeout(ms(150))));
        let started = std::time::Instant::now();
        let run = tokio::spawn({
            let wf = Arc::clone(&wf);
            async move { wf.orchestrate(S::Fan).await }
        });
        let out = run.await.unwrap();
        let took = started.elapsed();
        match strategy {
            JoinStrategy::PartialTimeout => assert_eq!(out, Ok(S::Joined)),
            _ => assert_eq!(out.unwrap_err().message(), "Split task timeout exceeded"),
        }
        assert!(
            took < ms(800),
            "{strategy:?}: the split ended after {took:?}"
        );
        assert!(done.load(Ordering::SeqCst) >= 1);
        // Let the spinning member finish before the next round.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}
