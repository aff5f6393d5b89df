//! Parallel split/join: [`JoinStrategy`], [`JoinConfig`], [`SplitResult`].
//!
//! A split state (registered with [`Workflow::register_split`](crate::Workflow::register_split))
//! runs all of its tasks concurrently, in parallel on the tokio runtime's worker threads,
//! each with its own retry policy, then moves to the [`JoinConfig::join_state`] when the
//! strategy is satisfied.

use crate::error::CanoError;
use crate::task::TaskResult;
use std::time::Duration;

/// When a split state counts as successful.
#[derive(Clone, Debug, PartialEq)]
pub enum JoinStrategy {
    /// Every member must succeed. Waits for all of them.
    All,
    /// One success is enough; the others are cancelled as soon as it arrives.
    Any,
    /// At least `n` members must succeed. Waits for all of them.
    Quorum(usize),
    /// At least `ceil(total × p)` members must succeed (`0 < p ≤ 1`). Waits for all of them.
    Percentage(f64),
    /// At least `min` members must succeed; the rest are cancelled once they have.
    PartialResults(usize),
    /// Wait until the split's timeout (required); succeed if at least one member
    /// finished by then, successfully or not.
    PartialTimeout,
}

impl JoinStrategy {
    /// Whether `completed` successes out of `total` members satisfy the strategy.
    ///
    /// ```
    /// use cano::JoinStrategy;
    /// assert!(JoinStrategy::Percentage(0.5).is_satisfied(2, 3));
    /// assert!(!JoinStrategy::Percentage(0.5).is_satisfied(1, 3));
    /// assert!(JoinStrategy::All.is_satisfied(0, 0));
    /// ```
    pub fn is_satisfied(&self, completed: usize, total: usize) -> bool {
        match self {
            Self::All => completed >= total,
            Self::Any | Self::PartialTimeout => completed >= 1,
            Self::Quorum(n) => completed >= *n,
            Self::PartialResults(min) => completed >= *min,
            // `as` saturates (and maps NaN to 0).
            Self::Percentage(p) => completed >= (total as f64 * p).ceil() as usize,
        }
    }
}

/// How a split state joins: the strategy, an optional timeout, the state to move to,
/// and an optional cap on members running at once.
///
/// ```
/// use cano::{JoinConfig, JoinStrategy};
/// use std::time::Duration;
///
/// #[derive(Clone, Debug, PartialEq, Eq, Hash)]
/// enum S { Fanout, Merge }
///
/// let cfg = JoinConfig::new(JoinStrategy::Quorum(2), S::Merge)
///     .with_timeout(Duration::from_secs(5))
///     .with_bulkhead(4);
/// assert_eq!(cfg.bulkhead, Some(4));
/// ```
#[must_use]
#[derive(Clone)]
pub struct JoinConfig<TState> {
    /// When the split succeeds.
    pub strategy: JoinStrategy,
    /// Limit for the whole split, measured from when all members were started.
    pub timeout: Option<Duration>,
    /// The state entered when the split succeeds.
    pub join_state: TState,
    /// At most this many members run at once (the rest wait; waiting counts against
    /// the timeout).
    pub bulkhead: Option<usize>,
}

impl<TState: Clone> JoinConfig<TState> {
    /// A join with `strategy` moving to `join_state`; no timeout, no bulkhead.
    pub fn new(strategy: JoinStrategy, join_state: TState) -> Self {
        Self {
            strategy,
            timeout: None,
            join_state,
            bulkhead: None,
        }
    }

    /// Limit the whole split to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Move to `state` when the split succeeds.
    pub fn with_join_state(mut self, state: TState) -> Self {
        self.join_state = state;
        self
    }

    /// Run at most `n` members at once (`n` must be positive).
    pub fn with_bulkhead(mut self, n: usize) -> Self {
        self.bulkhead = Some(n);
        self
    }

    /// The configuration checks `Workflow::validate` performs on split states (except the
    /// join-state check, which needs the workflow).
    pub(crate) fn check(&self) -> Result<(), CanoError> {
        if self.strategy == JoinStrategy::PartialTimeout && self.timeout.is_none() {
            return Err(CanoError::configuration(
                "PartialTimeout strategy requires a timeout to be configured",
            ));
        }
        if let JoinStrategy::Percentage(p) = self.strategy
            && (!p.is_finite() || p <= 0.0 || p > 1.0)
        {
            return Err(CanoError::configuration(format!(
                "Percentage strategy requires a finite value in (0.0, 1.0], got {p}"
            )));
        }
        if self.bulkhead == Some(0) {
            return Err(CanoError::configuration(
                "bulkhead requires a positive permit count, got 0",
            ));
        }
        Ok(())
    }
}

/// The outcome of one member of a split.
#[derive(Clone, Debug)]
pub struct SplitTaskResult<TState> {
    /// The member's index in the registered task list.
    pub task_index: usize,
    /// What the member returned (after its retries).
    pub result: Result<TaskResult<TState>, CanoError>,
}

/// Every member's outcome of one split, in completion order.
#[derive(Clone, Debug)]
pub struct SplitResult<TState> {
    /// Members that succeeded.
    pub successes: Vec<SplitTaskResult<TState>>,
    /// Members that failed.
    pub errors: Vec<SplitTaskResult<TState>>,
    /// Indices of members cancelled before they finished, ascending.
    pub cancelled: Vec<usize>,
}

impl<TState> SplitResult<TState> {
    /// An empty result.
    pub fn new() -> Self {
        Self {
            successes: Vec::new(),
            errors: Vec::new(),
            cancelled: Vec::new(),
        }
    }

    /// An empty result with room for `total_tasks` outcomes.
    pub fn with_capacity(total_tasks: usize) -> Self {
        Self {
            successes: Vec::with_capacity(total_tasks),
            errors: Vec::new(),
            cancelled: Vec::new(),
        }
    }

    /// Members that finished, successfully or not.
    pub fn completed_count(&self) -> usize {
        self.successes.len() + self.errors.len()
    }

    /// All members: finished plus cancelled.
    pub fn total_count(&self) -> usize {
        self.completed_count() + self.cancelled.len()
    }

    /// `task {i}: {error}` for the first three errors, then how many more there were.
    fn error_summary(&self) -> String {
        let mut parts: Vec<String> = self
            .errors
            .iter()
            .take(3)
            .map(|e| match &e.result {
                Err(err) => format!("task {}: {err}", e.task_index),
                Ok(_) => format!("task {}: unexpected success in error list", e.task_index),
            })
            .collect();
        if self.errors.len() > 3 {
            parts.push(format!("... and {} more error(s)", self.errors.len() - 3));
        }
        parts.join("; ")
    }

    /// Apply `strategy` to the collected outcomes of `total` members.
    pub(crate) fn decide(&self, strategy: &JoinStrategy, total: usize) -> Result<(), CanoError> {
        let successful = self.successes.len();
        let with_errors = |msg: String| {
            if self.errors.is_empty() {
                CanoError::workflow(msg)
            } else {
                CanoError::workflow(format!("{msg}; errors: {}", self.error_summary()))
            }
        };
        match strategy {
            JoinStrategy::PartialResults(min) => {
                if successful >= *min {
                    Ok(())
                } else {
                    Err(with_errors(format!(
                        "Partial results condition not met: {successful} completed successfully, {min} required"
                    )))
                }
            }
            JoinStrategy::PartialTimeout => {
                if self.completed_count() >= 1 {
                    Ok(())
                } else {
                    Err(CanoError::workflow(
                        "PartialTimeout: No tasks completed before timeout",
                    ))
                }
            }
            other => {
                if other.is_satisfied(successful, total) {
                    Ok(())
                } else {
                    Err(with_errors(format!(
                        "Join condition not met: {successful} of {total} tasks completed successfully, strategy: {other:?}"
                    )))
                }
            }
        }
    }
}

impl<TState> Default for SplitResult<TState> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: usize, failed: usize) -> SplitResult<u8> {
        let mut r = SplitResult::new();
        for i in 0..ok {
            r.successes.push(SplitTaskResult {
                task_index: i,
                result: Ok(TaskResult::Single(0)),
            });
        }
        for i in ok..ok + failed {
            r.errors.push(SplitTaskResult {
                task_index: i,
                result: Err(CanoError::task_execution(format!("f{i}"))),
            });
        }
        r
    }

    #[test]
    fn counts_include_failures_and_cancellations() {
        let mut r = outcome(2, 1);
        r.cancelled = vec![3, 4];
        assert_eq!(r.completed_count(), 3);
        assert_eq!(r.total_count(), 5);
        let empty = SplitResult::<u8>::with_capacity(8);
        assert_eq!((empty.completed_count(), empty.total_count()), (0, 0));
    }

    #[test]
    fn strategy_table() {
        use JoinStrategy::*;
        assert!(All.is_satisfied(3, 3) && !All.is_satisfied(2, 3) && All.is_satisfied(0, 0));
        assert!(Any.is_satisfied(1, 9) && !Any.is_satisfied(0, 0));
        assert!(Quorum(2).is_satisfied(2, 5) && !Quorum(2).is_satisfied(1, 5));
        assert!(Quorum(0).is_satisfied(0, 4));
        assert!(Percentage(0.75).is_satisfied(3, 4) && !Percentage(0.75).is_satisfied(2, 4));
        assert!(Percentage(1.0).is_satisfied(4, 4) && !Percentage(1.0).is_satisfied(3, 4));
        assert!(Percentage(0.5).is_satisfied(0, 0));
        assert!(PartialResults(0).is_satisfied(0, 3));
    }

    #[test]
    fn failure_messages_summarise_three_errors() {
        let err = outcome(0, 5).decide(&JoinStrategy::All, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Workflow error: Join condition not met: 0 of 5 tasks completed successfully, strategy: All; errors: task 0: Task execution error: f0; task 1: Task execution error: f1; task 2: Task execution error: f2; ... and 2 more error(s)"
        );
        let err = outcome(2, 0)
            .decide(&JoinStrategy::Quorum(5), 2)
            .unwrap_err();
        assert_eq!(
            err.message(),
            "Join condition not met: 2 of 2 tasks completed successfully, strategy: Quorum(5)"
        );
        let err = outcome(0, 1)
            .decide(&JoinStrategy::PartialResults(1), 1)
            .unwrap_err();
        assert_eq!(
            err.message(),
            "Partial results condition not met: 0 completed successfully, 1 required; errors: task 0: Task execution error: f0"
        );
        assert!(
            outcome(0, 2)
                .decide(&JoinStrategy::PartialTimeout, 2)
                .is_ok()
        );
        assert_eq!(
            outcome(0, 0)
                .decide(&JoinStrategy::PartialTimeout, 2)
                .unwrap_err()
                .message(),
            "PartialTimeout: No tasks completed before timeout"
        );
    }

    #[test]
    fn config_checks() {
        let ok = JoinConfig::new(JoinStrategy::All, 1u8);
        assert!(ok.check().is_ok());
        for p in [0.0, 1.5, f64::NAN, f64::INFINITY, -1.0] {
            let e = JoinConfig::new(JoinStrategy::Percentage(p), 1u8)
                .check()
                .unwrap_err();
            assert!(
                e.message().starts_with("Percentage strategy requires"),
                "{e}"
            );
        }
        let e = JoinConfig::new(JoinStrategy::PartialTimeout, 1u8)
            .check()
            .unwrap_err();
        assert!(e.message().contains("requires a timeout"));
        let e = ok.with_bulkhead(0).check().unwrap_err();
        assert_eq!(
            e.message(),
            "bulkhead requires a positive permit count, got 0"
        );
    }
}
