//! Running a split state: start every member, collect outcomes per the join strategy.

use super::Workflow;
use super::join::{JoinConfig, JoinStrategy, SplitResult, SplitTaskResult};
use super::run::Run;
use crate::error::CanoError;
use crate::recovery::log;
use crate::resource::Resources;
use crate::task::attempt;
use crate::task::{TaskConfig, TaskObject, TaskResult};
use crate::util::panic_message;
use parking_lot::Mutex;
use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinHandle};

type MemberOutcome<TState> = (usize, Result<TaskResult<TState>, CanoError>);

/// What every member of one split shares (one `Arc` clone per member).
struct Members<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    tasks: Arc<[TaskObject<TState, TResourceKey>]>,
    /// The registered configs, or copies with the observers stamped in.
    configs: Arc<[Arc<TaskConfig>]>,
    resources: Arc<Resources<TResourceKey>>,
    bulkhead: Option<Semaphore>,
    /// The index of the next member a runner starts.
    next: AtomicUsize,
    /// Set when the split ends early or is dropped: runners start no more members.
    stopped: AtomicBool,
    /// Members that finished before a resume (by index): not run again. Empty otherwise.
    skip: Vec<bool>,
    /// Members that did not finish on their first poll and now run as their own tokio
    /// task; `None` once the split was stopped (a member moved out after that is aborted
    /// at once).
    detached: Mutex<Option<Vec<AbortHandle>>>,
}

impl<TState, TResourceKey> Members<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Keep `handle` so that stopping the split aborts it (or abort it now if the split
    /// was already stopped).
    fn detach(&self, handle: AbortHandle) {
        match self.detached.lock().as_mut() {
            Some(handles) => handles.push(handle),
            None => handle.abort(),
        }
    }

    /// Member `idx`'s task, its config and the resources it runs with.
    fn member(
        &self,
        idx: usize,
    ) -> (
        &TaskObject<TState, TResourceKey>,
        &TaskConfig,
        &Resources<TResourceKey>,
    ) {
        (&self.tasks[idx], &self.configs[idx], &self.resources)
    }

    /// Start no more members and abort every detached one.
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(handles) = self.detached.lock().take() {
            handles.iter().for_each(AbortHandle::abort);
        }
    }
}

/// Stops the split's runners and members when it ends early or is dropped.
struct Running<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    runners: Vec<JoinHandle<()>>,
    shared: Arc<Members<TState, TResourceKey>>,
}

impl<TState, TResourceKey> Running<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn abort_all(&mut self) {
        self.shared.stop();
        for handle in self.runners.drain(..) {
            handle.abort();
        }
    }

    /// Every member reported: nothing is left to abort.
    fn finished(&mut self) {
        self.runners.clear();
    }
}

impl<TState, TResourceKey> Drop for Running<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.runners.is_empty() {
            self.abort_all();
        }
    }
}

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Run a split state's members concurrently and join them.
    ///
    /// Members start in index order, started by one runner task per worker thread (see
    /// [`start_members`]) and, for strategies that wait for every member and have no
    /// deadline, by this future as well while it waits. `Any` and `PartialResults` stop early and cancel the rest;
    /// the other strategies wait for every member or the timeout. Dropping the returned
    /// future aborts every member still running.
    ///
    /// In a run with a checkpoint store, each member that succeeds is recorded (a
    /// `SplitMember` row), and a resumed split does not run the members its log says
    /// finished: they count as succeeded.
    pub(crate) async fn run_split(
        &self,
        tasks: &Arc<[TaskObject<TState, TResourceKey>]>,
        configs: &Arc<[Arc<TaskConfig>]>,
        join: &JoinConfig<TState>,
        run: &mut Run,
        label: &str,
    ) -> Result<TState, CanoError> {
        join.check()?;
        let Ok(runtime) = Handle::try_current() else {
            return Err(CanoError::workflow(
                "a split state must run inside a tokio runtime (its members are tokio tasks)",
            ));
        };
        let total = tasks.len();
        let done = run.take_split_done();
        let mut skip = Vec::new();
        if !done.is_empty() {
            skip = vec![false; total];
            for &idx in &done {
                if let Some(slot) = skip.get_mut(idx) {
                    *slot = true;
                }
            }
        }
        let mut ids: Vec<String> = Vec::new();
        let configs = match &self.observers {
            None => Arc::clone(configs),
            Some(observers) => tasks
                .iter()
                .zip(configs.iter())
                .enumerate()
                .map(|(idx, (task, config))| {
                    let id = format!("{}[{idx}]", task.name());
                    crate::observer::each(observers, |o| o.on_task_start(&id));
                    let stamped = TaskConfig {
                        observers: Some(Arc::clone(observers)),
                        task_name: Some(Cow::Owned(id.clone())),
                        ..(**config).clone()
                    };
                    ids.push(id);
                    Arc::new(stamped)
                })
                .collect(),
        };
        let shared = Arc::new(Members {
            tasks: Arc::clone(tasks),
            configs,
            resources: Arc::clone(&self.resources),
            bulkhead: join.bulkhead.map(Semaphore::new),
            next: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            skip,
            detached: Mutex::new(Some(Vec::new())),
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        // One runner per worker thread: together they start every member, in index
        // order, as fast as the runtime can run them in parallel.
        let runners = runtime.metrics().num_workers().clamp(1, total.max(1));
        let mut running = Running {
            runners: Vec::with_capacity(runners),
            shared: Arc::clone(&shared),
        };
        // Strategies that can end before every member reported need each outcome as soon
        // as it exists; the others only need them all, and take them in batches.
        let batch = match join.strategy {
            JoinStrategy::Any | JoinStrategy::PartialResults(_) | JoinStrategy::PartialTimeout => 1,
            _ => REPORT_BATCH,
        };
        // Members the log says finished may decide the split alone: start nothing.
        let settled = !done.is_empty()
            && match join.strategy {
                JoinStrategy::Any => true,
                JoinStrategy::PartialResults(min) => done.len() >= min,
                _ => false,
            };
        if total > 0 && !settled {
            for _ in 0..runners {
                let runner = start_members(Arc::clone(&shared), tx.clone(), runners > 1, batch);
                running
                    .runners
                    .push(crate::run_data::spawn_inheriting(&runtime, runner));
            }
        }
        // A strategy that waits for every member, without a deadline, leaves the collector
        // nothing to do until the last member reports: it starts members itself meanwhile,
        // beside the runners. Small members then often all finish here before a runner is
        // even scheduled, and the split needs no hand-off to another thread and back. A
        // member that blocks this thread holds up nothing the split could do without it:
        // the runners go on starting the others.
        if total > 0 && !settled && join.timeout.is_none() && waits_for_all(&join.strategy) {
            start_members(Arc::clone(&shared), tx.clone(), runners > 1, batch).await;
        }
        // Runners and members hold the senders: the channel closes when the last is done.
        drop(tx);

        // Members that succeed are recorded, so that a resume does not run them again.
        let mut record = MemberRecorder {
            workflow: self,
            store: self
                .checkpoint_store
                .as_deref()
                .filter(|_| run.workflow_id.is_some()),
            run,
            label,
        };
        let outcome = collect(&mut rx, &mut running, total, join, &done, &mut record).await?;
        if let Some(observers) = &self.observers {
            for s in &outcome.successes {
                if let Some(id) = ids.get(s.task_index) {
                    crate::observer::each(observers, |o| o.on_task_success(id));
                }
            }
            for e in &outcome.errors {
                if let (Some(id), Err(err)) = (ids.get(e.task_index), &e.result) {
                    crate::observer::each(observers, |o| o.on_task_failure(id, err));
                }
            }
        }
        outcome.decide(&join.strategy, total)?;
        Ok(join.join_state.clone())
    }
}

/// A runner: start members (taking the next index each time) until none is left or the
/// split stopped. `multi_thread`: there are other runners (and workers to steal work);
/// `batch`: how many outcomes to report at once.
///
/// Each member's first poll happens here. One that finishes in it (most do: a task that
/// computes and returns) costs no tokio task of its own; one that waits (I/O, a timer, a
/// bulkhead permit) moves to its own tokio task, so it runs and is stolen by idle workers
/// exactly like a spawned member. A member that keeps a worker busy without waiting
/// blocks only this runner: the others go on starting the remaining members.
async fn start_members<TState, TResourceKey>(
    shared: Arc<Members<TState, TResourceKey>>,
    report: mpsc::UnboundedSender<Vec<MemberOutcome<TState>>>,
    multi_thread: bool,
    batch: usize,
) where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    let total = shared.tasks.len();
    // Outcomes of members that finished here, reported together: one message (and one
    // wake-up of the collector) per batch instead of per member.
    let mut finished = Vec::new();
    while !shared.stopped.load(Ordering::Acquire) {
        let idx = shared.next.fetch_add(1, Ordering::Relaxed);
        if idx >= total {
            break;
        }
        if shared.skip.get(idx).copied().unwrap_or(false) {
            continue;
        }
        let mut started = Box::pin(member(idx, Arc::clone(&shared)));
        match poll_fn(|cx| Poll::Ready(started.as_mut().poll(cx))).await {
            Poll::Ready(outcome) => {
                finished.push(outcome);
                if finished.len() >= batch {
                    let _ = report.send(std::mem::take(&mut finished));
                    if multi_thread {
                        // The send may have woken the collector into this worker's
                        // unstealable slot (see below): let it run before the next member,
                        // which might keep this thread busy past the split's deadline.
                        tokio::task::yield_now().await;
                    }
                }
            }
            Poll::Pending => {
                let reporter = report.clone();
                let detached = crate::run_data::spawn_inheriting(
                    &tokio::runtime::Handle::current(),
                    async move {
                        let outcome = started.await;
                        // The collector may have stopped listening (early stop): fine.
                        let _ = reporter.send(vec![outcome]);
                    },
                );
                shared.detach(detached.abort_handle());
                if !finished.is_empty() {
                    let _ = report.send(std::mem::take(&mut finished));
                }
                if multi_thread {
                    // Let this worker take up the new task (tokio keeps the latest spawn,
                    // or the latest task woken from this thread, in a slot other workers
                    // cannot steal from): were the next member to block the thread, the
                    // detached one would otherwise be stuck behind it. On a single thread
                    // there is nothing to steal, and not yielding gives every member its
                    // first poll before the collector runs, as spawning all did.
                    tokio::task::yield_now().await;
                }
            }
        }
    }
    if !finished.is_empty() {
        let _ = report.send(finished);
    }
}

/// Records the members of a split that succeed (`SplitMember` rows), in a run with a
/// checkpoint store and an id.
struct MemberRecorder<'a, TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    workflow: &'a Workflow<TState, TResourceKey>,
    store: Option<&'a dyn crate::recovery::CheckpointStore>,
    run: &'a mut Run,
    label: &'a str,
}

impl<TState, TResourceKey> MemberRecorder<'_, TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Member `idx` succeeded.
    async fn record(&mut self, idx: usize) -> Result<(), CanoError> {
        let Some(store) = self.store else {
            return Ok(());
        };
        let label = self.label;
        self.workflow
            .append_row(store, self.run, |sequence| {
                Ok(log::split_member(sequence, label, idx))
            })
            .await
            .map_err(|e| {
                CanoError::checkpoint_store(format!("append split member checkpoint: {e}"))
            })
    }
}

/// Whether `strategy` decides only once every member has reported (no early stop).
fn waits_for_all(strategy: &JoinStrategy) -> bool {
    match strategy {
        JoinStrategy::All | JoinStrategy::Quorum(_) | JoinStrategy::Percentage(_) => true,
        JoinStrategy::Any | JoinStrategy::PartialResults(_) | JoinStrategy::PartialTimeout => false,
    }
}

/// How many outcomes a runner collects before reporting them, for strategies that wait
/// for every member (`All`, `Quorum`, `Percentage`: until then, or a timeout that fails
/// the split whatever the outcomes, nothing depends on them). A runner also reports
/// whenever it moves a member to a task of its own, and when it is done.
const REPORT_BATCH: usize = 32;

/// One member: run the task under its retry policy (after taking a bulkhead permit, if
/// there is a bulkhead) and return `(index, outcome)`. A panic becomes an error for this
/// index only.
///
/// A member's future is boxed by its runner and, if it waits, moved into a tokio task:
/// the common case (no bulkhead, a first attempt that needs nothing around it) keeps
/// that future a few dozen bytes; everything else runs boxed inside it.
async fn member<TState, TResourceKey>(
    idx: usize,
    shared: Arc<Members<TState, TResourceKey>>,
) -> MemberOutcome<TState>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    let (task, config, resources) = shared.member(idx);
    let outcome = if shared.bulkhead.is_none() && attempt::is_plain(config) {
        match attempt::bare(task.run(resources)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(first)) => Box::pin(member_attempts(idx, &shared, Some(first))).await,
            Err(payload) => Err(member_panicked(idx, &*payload)),
        }
    } else {
        Box::pin(member_attempts(idx, &shared, None)).await
    };
    crate::instrument::split_branch(outcome.is_ok());
    (idx, outcome)
}

/// A member's attempts (after taking a bulkhead permit, if there is a bulkhead), after a
/// bare first attempt that failed with `first`, if one was made.
async fn member_attempts<TState, TResourceKey>(
    idx: usize,
    shared: &Members<TState, TResourceKey>,
    first: Option<CanoError>,
) -> Result<TaskResult<TState>, CanoError>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    let _permit = match &shared.bulkhead {
        Some(semaphore) => match semaphore.acquire().await {
            Ok(permit) => Some(permit),
            Err(e) => {
                return Err(CanoError::task_execution(format!(
                    "bulkhead semaphore closed: {e}"
                )));
            }
        },
        None => None,
    };
    let (task, config, resources) = shared.member(idx);
    attempt::guarded(
        config,
        || task.run(resources),
        |e, n| task.is_retryable(e, n),
        first,
        |payload| member_panicked(idx, payload),
    )
    .await
}

fn member_panicked(idx: usize, payload: &(dyn std::any::Any + Send)) -> CanoError {
    CanoError::task_execution(format!(
        "panic in split task {idx}: {}",
        panic_message(payload)
    ))
}

/// Gather member outcomes until every member reported, the strategy allows an early
/// stop, or the split's deadline passes. Members still running at an early stop or at
/// the deadline are aborted.
///
/// `done`: members that finished before a resume (they count as succeeded, with the join
/// state as their result); `record` is called for each member that succeeds now.
async fn collect<TState, TResourceKey>(
    outcomes: &mut mpsc::UnboundedReceiver<Vec<MemberOutcome<TState>>>,
    running: &mut Running<TState, TResourceKey>,
    total: usize,
    join: &JoinConfig<TState>,
    done: &[usize],
    record: &mut MemberRecorder<'_, TState, TResourceKey>,
) -> Result<SplitResult<TState>, CanoError>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    let mut outcome = SplitResult::with_capacity(total);
    let mut finished = vec![false; total];
    for &idx in done.iter().filter(|&&idx| idx < total) {
        finished[idx] = true;
        outcome.successes.push(SplitTaskResult {
            task_index: idx,
            result: Ok(TaskResult::Single(join.join_state.clone())),
        });
    }
    let stops = |outcome: &SplitResult<TState>| match join.strategy {
        JoinStrategy::Any => !outcome.successes.is_empty(),
        JoinStrategy::PartialResults(min) => outcome.successes.len() >= min,
        _ => false,
    };
    // (Only members that did finish can decide it: `PartialResults(0)` still waits for
    // the first completion.)
    if !done.is_empty() && stops(&outcome) {
        running.abort_all();
        return Ok(outcome);
    }
    // One timer for the whole split, created after the runners were spawned.
    let mut deadline = join.timeout.map(|t| Box::pin(tokio::time::sleep(t)));
    'collecting: loop {
        let next = match deadline.as_mut() {
            None => outcomes.recv().await,
            Some(deadline) => tokio::select! {
                biased;
                next = outcomes.recv() => next,
                () = deadline => {
                    running.abort_all();
                    if join.strategy == JoinStrategy::PartialTimeout {
                        break;
                    }
                    return Err(CanoError::workflow("Split task timeout exceeded"));
                }
            },
        };
        let Some(batch) = next else {
            // Every member finished: nothing left to abort.
            running.finished();
            break;
        };
        // One at a time, as if each had arrived alone: an early stop ignores the rest.
        for (idx, result) in batch {
            if let Some(slot) = finished.get_mut(idx) {
                *slot = true;
            }
            let entry = SplitTaskResult {
                task_index: idx,
                result,
            };
            if entry.result.is_ok() {
                if let Err(e) = record.record(idx).await {
                    running.abort_all();
                    return Err(e);
                }
                outcome.successes.push(entry);
            } else {
                outcome.errors.push(entry);
            }
            if stops(&outcome) {
                running.abort_all();
                break 'collecting;
            }
        }
    }
    outcome.cancelled = finished
        .iter()
        .enumerate()
        .filter(|(_, done)| !**done)
        .map(|(i, _)| i)
        .collect();
    Ok(outcome)
}
