//! Running a split state: spawn every member, collect outcomes per the join strategy.

use super::Workflow;
use super::join::{JoinConfig, JoinStrategy, SplitResult, SplitTaskResult};
use crate::error::CanoError;
use crate::resource::Resources;
use crate::task::{TaskConfig, TaskObject, TaskResult, run_with_retries};
use crate::util::{CatchUnwind, panic_message};
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

type MemberOutcome<TState> = (usize, Result<TaskResult<TState>, CanoError>);

impl<TState, TResourceKey> Workflow<TState, TResourceKey>
where
    TState: Clone + fmt::Debug + Hash + Eq + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// Run a split state's members concurrently and join them.
    ///
    /// Members start in index order (each as its own tokio task, all started before any
    /// outcome is collected). `Any` and `PartialResults` stop early and cancel the rest;
    /// the other strategies wait for every member or the timeout. Dropping the returned
    /// future aborts every member still running.
    pub(crate) async fn run_split(
        &self,
        tasks: &[TaskObject<TState, TResourceKey>],
        configs: &[Arc<TaskConfig>],
        join: &JoinConfig<TState>,
    ) -> Result<TState, CanoError> {
        join.check()?;
        let bulkhead = join.bulkhead.map(|n| Arc::new(Semaphore::new(n)));
        let mut ids: Vec<String> = Vec::new();
        let mut members = JoinSet::new();
        for (idx, (task, config)) in tasks.iter().zip(configs).enumerate() {
            let config = match &self.observers {
                None => Arc::clone(config),
                Some(observers) => {
                    let id = format!("{}[{idx}]", task.name());
                    observers.iter().for_each(|o| o.on_task_start(&id));
                    let stamped = TaskConfig {
                        observers: Some(Arc::clone(observers)),
                        task_name: Some(Cow::Owned(id.clone())),
                        ..(**config).clone()
                    };
                    ids.push(id);
                    Arc::new(stamped)
                }
            };
            members.spawn(member(
                idx,
                Arc::clone(task),
                Arc::clone(&self.resources),
                config,
                bulkhead.clone(),
            ));
        }

        let total = tasks.len();
        let outcome = collect(&mut members, total, join).await?;
        if let Some(observers) = &self.observers {
            for s in &outcome.successes {
                if let Some(id) = ids.get(s.task_index) {
                    observers.iter().for_each(|o| o.on_task_success(id));
                }
            }
            for e in &outcome.errors {
                if let (Some(id), Err(err)) = (ids.get(e.task_index), &e.result) {
                    observers.iter().for_each(|o| o.on_task_failure(id, err));
                }
            }
        }
        outcome.decide(&join.strategy, total)?;
        Ok(join.join_state.clone())
    }
}

/// One member: wait for a bulkhead permit (held until the member finishes), then run
/// the task under its retry policy. A panic becomes an error for this index only.
async fn member<TState, TResourceKey>(
    idx: usize,
    task: TaskObject<TState, TResourceKey>,
    resources: Arc<Resources<TResourceKey>>,
    config: Arc<TaskConfig>,
    bulkhead: Option<Arc<Semaphore>>,
) -> MemberOutcome<TState>
where
    TState: Clone + fmt::Debug + Send + Sync + 'static,
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    let work = async {
        let _permit = match bulkhead {
            Some(semaphore) => match semaphore.acquire_owned().await {
                Ok(permit) => Some(permit),
                Err(e) => {
                    return Err(CanoError::task_execution(format!(
                        "bulkhead semaphore closed: {e}"
                    )));
                }
            },
            None => None,
        };
        run_with_retries(&config, || task.run(&resources)).await
    };
    match CatchUnwind::new(pin!(work)).await {
        Ok(result) => (idx, result),
        Err(payload) => (
            idx,
            Err(CanoError::task_execution(format!(
                "panic in split task {idx}: {}",
                panic_message(&*payload)
            ))),
        ),
    }
}

/// Gather member outcomes until every member reported, the strategy allows an early
/// stop, or the split's deadline passes.
async fn collect<TState: Send + 'static>(
    members: &mut JoinSet<MemberOutcome<TState>>,
    total: usize,
    join: &JoinConfig<TState>,
) -> Result<SplitResult<TState>, CanoError> {
    let mut outcome = SplitResult::with_capacity(total);
    let mut finished = vec![false; total];
    // One timer for the whole split, created after every member was spawned.
    let mut deadline = join.timeout.map(|t| Box::pin(tokio::time::sleep(t)));
    loop {
        let next = match deadline.as_mut() {
            None => members.join_next().await,
            Some(deadline) => tokio::select! {
                biased;
                next = members.join_next() => next,
                () = deadline => {
                    members.abort_all();
                    if join.strategy == JoinStrategy::PartialTimeout {
                        break;
                    }
                    return Err(CanoError::workflow("Split task timeout exceeded"));
                }
            },
        };
        match next {
            None => break,
            Some(Ok((idx, result))) => {
                if let Some(slot) = finished.get_mut(idx) {
                    *slot = true;
                }
                let entry = SplitTaskResult {
                    task_index: idx,
                    result,
                };
                if entry.result.is_ok() {
                    outcome.successes.push(entry);
                } else {
                    outcome.errors.push(entry);
                }
            }
            Some(Err(join_error)) => outcome.errors.push(SplitTaskResult {
                task_index: usize::MAX,
                result: Err(CanoError::workflow(format!("Task panic: {join_error:?}"))),
            }),
        }
        let stop = match join.strategy {
            JoinStrategy::Any => !outcome.successes.is_empty(),
            JoinStrategy::PartialResults(min) => outcome.successes.len() >= min,
            _ => false,
        };
        if stop {
            members.abort_all();
            break;
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
