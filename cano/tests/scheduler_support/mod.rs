//! Helpers shared by the `scheduler_*` tests: a scripted job, workflows around it, and
//! ways to watch flows on Tokio's paused clock.
#![allow(dead_code)]

use cano::prelude::*;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    Run,
    Done,
}

/// What the job does on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Succeed,
    Fail,
    /// Never finishes.
    Hang,
}

/// A scripted job: every call records when it started, takes `work` (virtual) time, then
/// succeeds or fails according to its mode. Clones share everything.
#[derive(Clone)]
pub struct Job(Arc<JobInner>);

struct JobInner {
    origin: Instant,
    work: Mutex<Duration>,
    mode: Mutex<Mode>,
    starts: Mutex<Vec<Duration>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

impl Job {
    /// A job that succeeds at once. Start offsets are measured from now.
    pub fn new() -> Self {
        Self(Arc::new(JobInner {
            origin: Instant::now(),
            work: Mutex::new(Duration::ZERO),
            mode: Mutex::new(Mode::Succeed),
            starts: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
        }))
    }

    pub fn taking(self, work: Duration) -> Self {
        *self.0.work.lock().unwrap() = work;
        self
    }

    pub fn failing(self) -> Self {
        self.set_mode(Mode::Fail);
        self
    }

    pub fn hanging(self) -> Self {
        self.set_mode(Mode::Hang);
        self
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.0.mode.lock().unwrap() = mode;
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.0.starts.lock().unwrap().len()
    }

    /// When each call started, as an offset from the job's creation.
    pub fn starts(&self) -> Vec<Duration> {
        self.0.starts.lock().unwrap().clone()
    }

    /// Start offsets in whole milliseconds.
    pub fn start_millis(&self) -> Vec<u128> {
        self.starts().iter().map(Duration::as_millis).collect()
    }

    /// Calls in progress now.
    pub fn active(&self) -> usize {
        self.0.active.load(Ordering::SeqCst)
    }

    /// The most calls that were ever in progress at once.
    pub fn max_active(&self) -> usize {
        self.0.max_active.load(Ordering::SeqCst)
    }

    async fn call(&self) -> Result<TaskResult<Step>, CanoError> {
        let inner = &self.0;
        inner.starts.lock().unwrap().push(inner.origin.elapsed());
        let now_active = inner.active.fetch_add(1, Ordering::SeqCst) + 1;
        inner.max_active.fetch_max(now_active, Ordering::SeqCst);
        let _guard = Leave(&inner.active);
        let work = *inner.work.lock().unwrap();
        if !work.is_zero() {
            tokio::time::sleep(work).await;
        }
        let mode = *inner.mode.lock().unwrap();
        match mode {
            Mode::Succeed => Ok(TaskResult::Single(Step::Done)),
            Mode::Fail => Err(CanoError::task_execution("job failed")),
            Mode::Hang => std::future::pending().await,
        }
    }
}

impl Default for Job {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrements the active-call counter even when a call is cancelled.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The task that runs a [`Job`] (named `job`, no retries).
pub struct JobTask(pub Job);

#[task(state = Step)]
impl JobTask {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> std::borrow::Cow<'static, str> {
        "job".into()
    }

    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        self.0.call().await
    }
}

/// `Run --job--> Done`.
pub fn workflow(job: &Job) -> Workflow<Step> {
    Workflow::bare()
        .register(Step::Run, JobTask(job.clone()))
        .add_exit_state(Step::Done)
}

/// `Run --job--> Done` with these resources.
pub fn workflow_with(job: &Job, resources: Resources) -> Workflow<Step> {
    Workflow::new(resources)
        .register(Step::Run, JobTask(job.clone()))
        .add_exit_state(Step::Done)
}

/// A backoff policy without jitter.
pub fn backoff(initial_ms: u64, multiplier: f64, cap_ms: u64, trip: Option<u32>) -> BackoffPolicy {
    BackoffPolicy {
        initial: Duration::from_millis(initial_ms),
        multiplier,
        max_delay: Duration::from_millis(cap_ms),
        jitter: 0.0,
        streak_limit: trip,
    }
}

/// Let the spawned loops, runs and the driver make progress (virtual time does not move).
pub async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// The status of a flow that must exist.
pub async fn info(running: &RunningScheduler<Step>, id: &str) -> FlowInfo {
    running
        .status(id)
        .await
        .unwrap_or_else(|| panic!("no flow {id:?}"))
}

/// Wait (virtual time, in `step`s, up to `limit`) until `done` holds for flow `id`.
pub async fn wait_until(
    running: &RunningScheduler<Step>,
    id: &str,
    step: Duration,
    limit: Duration,
    done: impl Fn(&FlowInfo) -> bool,
) -> FlowInfo {
    let end = Instant::now() + limit;
    loop {
        let now = info(running, id).await;
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < end,
            "flow {id:?} did not get there within {limit:?}: {now:?}"
        );
        tokio::time::sleep(step).await;
    }
}

/// Watch flow `id` for `total` (virtual time), sampling every `step`, and return the start
/// time (`last_run`) of every run seen. `step` must be shorter than the gap between runs.
pub async fn run_times(
    running: &RunningScheduler<Step>,
    id: &str,
    step: Duration,
    total: Duration,
) -> Vec<DateTime<Utc>> {
    let end = Instant::now() + total;
    let mut seen: Vec<DateTime<Utc>> = Vec::new();
    let mut count = info(running, id).await.run_count;
    while Instant::now() < end {
        tokio::time::sleep(step).await;
        let now = info(running, id).await;
        assert!(
            now.run_count <= count + 1,
            "more than one run between two samples: {now:?}"
        );
        if now.run_count > count {
            count = now.run_count;
            seen.push(now.last_run.expect("a started run has a start time"));
        }
    }
    seen
}

/// Whether `a` and `b` are within `tolerance_ms` of each other.
pub fn close(a: Duration, b: Duration, tolerance_ms: u64) -> bool {
    a.abs_diff(b) <= Duration::from_millis(tolerance_ms)
}
