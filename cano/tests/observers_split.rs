//! Observer events around split states: start events for every member up front, retry
//! and breaker events as they happen, then successes and failures in completion order,
//! nothing for cancelled members or after a split timeout, and several observers in
//! registration order.
//!
//! Everything runs on tokio's paused clock; members sleep to fix their completion order.

use cano::prelude::*;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    A,
    B,
    Done,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Records events as `enter:{state}`, `start:{id}`, `retry:{id}:{n}`, `open:{id}`,
/// `ok:{id}`, `fail:{id}:{error}`, optionally prefixed with `{tag}:`, into a log that
/// several observers may share.
struct Events {
    tag: Option<&'static str>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Events {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            tag: None,
            log: Arc::default(),
        })
    }

    fn tagged(tag: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Arc<Self> {
        Arc::new(Self {
            tag: Some(tag),
            log: Arc::clone(log),
        })
    }

    fn push(&self, event: String) {
        let event = match self.tag {
            Some(tag) => format!("{tag}:{event}"),
            None => event,
        };
        self.log.lock().unwrap().push(event);
    }

    fn all(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl WorkflowObserver for Events {
    fn on_state_enter(&self, state: &str) {
        self.push(format!("enter:{state}"));
    }
    fn on_task_start(&self, task_id: &str) {
        self.push(format!("start:{task_id}"));
    }
    fn on_task_success(&self, task_id: &str) {
        self.push(format!("ok:{task_id}"));
    }
    fn on_task_failure(&self, task_id: &str, err: &CanoError) {
        self.push(format!("fail:{task_id}:{err}"));
    }
    fn on_retry(&self, task_id: &str, attempt: u32) {
        self.push(format!("retry:{task_id}:{attempt}"));
    }
    fn on_circuit_open(&self, task_id: &str) {
        self.push(format!("open:{task_id}"));
    }
    fn on_checkpoint(&self, workflow_id: &str, sequence: u64) {
        self.push(format!("checkpoint:{workflow_id}:{sequence}"));
    }
    fn on_resume(&self, workflow_id: &str, sequence: u64) {
        self.push(format!("resume:{workflow_id}:{sequence}"));
    }
}

/// A split member: each attempt sleeps `delay` then succeeds or fails; `done` is set when
/// an attempt gets past its sleep.
struct Member {
    name: Option<&'static str>,
    delay: Duration,
    fails: bool,
    panics: bool,
    config: TaskConfig,
    done: Arc<AtomicBool>,
}

impl Member {
    fn ok(name: &'static str, delay_ms: u64) -> Self {
        Self {
            name: Some(name),
            delay: ms(delay_ms),
            fails: false,
            panics: false,
            config: TaskConfig::minimal(),
            done: Arc::default(),
        }
    }

    fn failing(name: &'static str, delay_ms: u64) -> Self {
        Self {
            fails: true,
            ..Self::ok(name, delay_ms)
        }
    }

    fn panicking(name: &'static str, delay_ms: u64) -> Self {
        Self {
            panics: true,
            ..Self::ok(name, delay_ms)
        }
    }

    fn unnamed(delay_ms: u64) -> Self {
        Self {
            name: None,
            ..Self::ok("", delay_ms)
        }
    }

    fn with_config(mut self, config: TaskConfig) -> Self {
        self.config = config;
        self
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
        tokio::time::sleep(self.delay).await;
        self.done.store(true, Ordering::SeqCst);
        if self.panics {
            panic!("member blew up");
        }
        if self.fails {
            let name = self.name.unwrap_or("member");
            return Err(CanoError::task_execution(format!("{name} down")));
        }
        Ok(TaskResult::Single(S::Done))
    }
}

/// A plain task at `B` moving to `Done`.
struct Then;

#[task(state = S)]
impl Then {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        "then".into()
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Done))
    }
}

/// A split at `A` joining into the exit state `B`, observed by `obs`.
fn split(members: Vec<Member>, strategy: JoinStrategy, obs: &Arc<Events>) -> Workflow<S> {
    split_with(members, JoinConfig::new(strategy, S::B), obs)
}

fn split_with(members: Vec<Member>, join: JoinConfig<S>, obs: &Arc<Events>) -> Workflow<S> {
    Workflow::bare()
        .register_split(S::A, members, join)
        .add_exit_state(S::B)
        .with_observer(obs.clone())
}

fn retry(retries: usize, delay_ms: u64) -> TaskConfig {
    TaskConfig::new().with_fixed_retry(retries, ms(delay_ms))
}

#[tokio::test(start_paused = true)]
async fn the_observed_quorum_sequence() {
    let obs = Events::new();
    let members = vec![
        Member::ok("t2", 10),
        Member::failing("t1", 0).with_config(retry(5, 1)),
        Member::ok("t3", 20),
    ];
    let wf = split(members, JoinStrategy::Quorum(2), &obs);
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    assert_eq!(
        obs.all(),
        [
            "enter:A",
            "start:t2[0]",
            "start:t1[1]",
            "start:t3[2]",
            "retry:t1[1]:1",
            "retry:t1[1]:2",
            "retry:t1[1]:3",
            "retry:t1[1]:4",
            "retry:t1[1]:5",
            "ok:t2[0]",
            "ok:t3[2]",
            "fail:t1[1]:Retry exhausted: Task failed after 6 attempt(s): Task execution error: t1 down",
            "enter:B",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn successes_then_failures_each_in_completion_order() {
    let obs = Events::new();
    let members = vec![
        Member::ok("m", 30),
        Member::failing("m", 10),
        Member::ok("m", 20),
        Member::failing("m", 40),
        Member::ok("m", 5),
    ];
    let wf = split(members, JoinStrategy::Quorum(1), &obs);
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    assert_eq!(
        obs.all()[6..],
        [
            "ok:m[4]",
            "ok:m[2]",
            "ok:m[0]",
            "fail:m[1]:Task execution error: m down",
            "fail:m[3]:Task execution error: m down",
            "enter:B",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn member_events_fire_before_a_failed_join_ends_the_run() {
    let obs = Events::new();
    let members = vec![Member::failing("a", 10), Member::ok("b", 20)];
    let wf = split(members, JoinStrategy::All, &obs);
    assert!(wf.orchestrate(S::A).await.is_err());
    assert_eq!(
        obs.all(),
        [
            "enter:A",
            "start:a[0]",
            "start:b[1]",
            "ok:b[1]",
            "fail:a[0]:Task execution error: a down",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_events_from_several_members_interleave_as_they_happen() {
    // m0 fails at 0, 10, 20 ms; m1 at 5, 22, 39 ms.
    let obs = Events::new();
    let members = vec![
        Member::failing("m0", 0).with_config(retry(2, 10)),
        Member::failing("m1", 5).with_config(retry(2, 12)),
    ];
    let wf = split(members, JoinStrategy::Quorum(0), &obs);
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    assert_eq!(
        obs.all(),
        [
            "enter:A",
            "start:m0[0]",
            "start:m1[1]",
            "retry:m0[0]:1",
            "retry:m1[1]:1",
            "retry:m0[0]:2",
            "retry:m1[1]:2",
            "fail:m0[0]:Retry exhausted: Task failed after 3 attempt(s): Task execution error: m0 down",
            "fail:m1[1]:Retry exhausted: Task failed after 3 attempt(s): Task execution error: m1 down",
            "enter:B",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_split_followed_by_a_task_state() {
    let obs = Events::new();
    let wf = Workflow::bare()
        .register_split(
            S::A,
            vec![Member::ok("x", 1), Member::ok("y", 2)],
            JoinConfig::new(JoinStrategy::All, S::B),
        )
        .register(S::B, Then)
        .add_exit_state(S::Done)
        .with_observer(obs.clone());
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::Done));
    assert_eq!(
        obs.all(),
        [
            "enter:A",
            "start:x[0]",
            "start:y[1]",
            "ok:x[0]",
            "ok:y[1]",
            "enter:B",
            "start:then",
            "ok:then",
            "enter:Done",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn member_ids_default_to_the_type_name_and_index() {
    let obs = Events::new();
    let wf = split(
        vec![Member::unnamed(1), Member::unnamed(2)],
        JoinStrategy::All,
        &obs,
    );
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    let name = std::any::type_name::<Member>();
    assert_eq!(
        obs.all(),
        [
            "enter:A".to_string(),
            format!("start:{name}[0]"),
            format!("start:{name}[1]"),
            format!("ok:{name}[0]"),
            format!("ok:{name}[1]"),
            "enter:B".to_string(),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_member_gets_no_outcome_event_and_stops_retrying() {
    let obs = Events::new();
    let loser = Member::failing("slow", 0).with_config(retry(10, 50));
    let loser_done = Arc::clone(&loser.done);
    let members = vec![Member::ok("fast", 20), loser];
    let wf = split(members, JoinStrategy::Any, &obs);
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        obs.all(),
        [
            "enter:A",
            "start:fast[0]",
            "start:slow[1]",
            "retry:slow[1]:1",
            "ok:fast[0]",
            "enter:B",
        ],
        "no further retries and no outcome for the cancelled member"
    );
    assert!(loser_done.load(Ordering::SeqCst), "its first attempt ran");
}

#[tokio::test(start_paused = true)]
async fn partial_results_reports_only_the_members_that_finished() {
    let obs = Events::new();
    let members = vec![
        Member::failing("a", 5),
        Member::ok("b", 10),
        Member::ok("c", 20),
        Member::ok("d", 500),
    ];
    let wf = split(members, JoinStrategy::PartialResults(2), &obs);
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    assert_eq!(
        obs.all()[5..],
        [
            "ok:b[1]",
            "ok:c[2]",
            "fail:a[0]:Task execution error: a down",
            "enter:B",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_split_timeout_fires_no_member_outcome_events() {
    let obs = Events::new();
    let members = vec![
        Member::ok("quick", 10),
        Member::failing("flaky", 0).with_config(retry(1, 5)),
        Member::ok("slow", 500),
    ];
    let wf = split_with(
        members,
        JoinConfig::new(JoinStrategy::All, S::B).with_timeout(ms(100)),
        &obs,
    );
    assert_eq!(
        wf.orchestrate(S::A).await,
        Err(CanoError::workflow("Split task timeout exceeded"))
    );
    assert_eq!(
        obs.all(),
        [
            "enter:A",
            "start:quick[0]",
            "start:flaky[1]",
            "start:slow[2]",
            "retry:flaky[1]:1",
        ],
        "members that finished before the timeout are not reported either"
    );
}

#[tokio::test(start_paused = true)]
async fn partial_timeout_reports_what_finished_by_the_deadline() {
    let obs = Events::new();
    let members = vec![
        Member::ok("late", 500),
        Member::failing("bad", 20),
        Member::ok("good", 30),
    ];
    let wf = split_with(
        members,
        JoinConfig::new(JoinStrategy::PartialTimeout, S::B).with_timeout(ms(100)),
        &obs,
    );
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    assert_eq!(
        obs.all()[4..],
        [
            "ok:good[2]",
            "fail:bad[1]:Task execution error: bad down",
            "enter:B",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_workflow_timeout_during_a_split_fires_no_member_outcome_events() {
    let obs = Events::new();
    let members = vec![Member::ok("quick", 10), Member::ok("slow", 500)];
    let wf = split(members, JoinStrategy::All, &obs).with_timeout(ms(100));
    assert_eq!(
        wf.orchestrate(S::A).await,
        Err(CanoError::workflow("Workflow timeout exceeded"))
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(obs.all(), ["enter:A", "start:quick[0]", "start:slow[1]"]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_member_is_reported_as_a_failure_with_the_panic_text() {
    let obs = Events::new();
    let members = vec![Member::ok("fine", 10), Member::panicking("wild", 5)];
    let wf = split(members, JoinStrategy::Quorum(1), &obs);
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    assert_eq!(
        obs.all()[3..],
        [
            "ok:fine[0]",
            "fail:wild[1]:Task execution error: panic in split task 1: member blew up",
            "enter:B",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_rejections_of_members_are_reported_with_their_ids() {
    let breaker = Arc::new(CircuitBreaker::new(CircuitPolicy {
        failure_threshold: 1,
        reset_timeout: Duration::from_secs(3600),
        half_open_max_calls: 1,
    }));
    drop(breaker.try_acquire().unwrap()); // trip it
    let obs = Events::new();
    let guarded = || TaskConfig::minimal().with_circuit_breaker(Arc::clone(&breaker));
    // A bulkhead of one runs the members one after the other, fixing the order.
    let members = vec![
        Member::ok("c", 1).with_config(guarded()),
        Member::ok("c", 1).with_config(guarded()),
    ];
    let wf = split_with(
        members,
        JoinConfig::new(JoinStrategy::Quorum(0), S::B).with_bulkhead(1),
        &obs,
    );
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::B));
    assert_eq!(
        obs.all(),
        [
            "enter:A",
            "start:c[0]",
            "start:c[1]",
            "open:c[0]",
            "open:c[1]",
            "fail:c[0]:Circuit open: circuit breaker open: rejecting call",
            "fail:c[1]:Circuit open: circuit breaker open: rejecting call",
            "enter:B",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn every_observer_receives_every_event_in_registration_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (first, second, third) = (
        Events::tagged("1", &log),
        Events::tagged("2", &log),
        Events::tagged("3", &log),
    );
    let members = vec![
        Member::ok("ok", 10),
        Member::failing("bad", 0).with_config(retry(1, 5)),
    ];
    let wf = Workflow::bare()
        .register_split(S::A, members, JoinConfig::new(JoinStrategy::Any, S::B))
        .register(S::B, Then)
        .add_exit_state(S::Done)
        .with_observer(first.clone())
        .with_observer(second.clone())
        .with_observer(third.clone());
    assert_eq!(wf.orchestrate(S::A).await, Ok(S::Done));
    let expected = [
        "enter:A",
        "start:ok[0]",
        "start:bad[1]",
        "retry:bad[1]:1",
        "ok:ok[0]",
        "fail:bad[1]:Retry exhausted: Task failed after 2 attempt(s): Task execution error: bad down",
        "enter:B",
        "start:then",
        "ok:then",
        "enter:Done",
    ];
    let interleaved: Vec<String> = expected
        .iter()
        .flat_map(|e| ["1", "2", "3"].map(|tag| format!("{tag}:{e}")))
        .collect();
    assert_eq!(*log.lock().unwrap(), interleaved);
}
