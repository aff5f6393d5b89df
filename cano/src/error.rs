//! The engine's error type, [`CanoError`], and the [`CanoResult`] alias.
//!
//! Every fallible API in cano returns a [`CanoError`]. Each variant carries a message
//! (the raw text, available through [`CanoError::message`]) and belongs to a stable
//! category (see [`CanoError::category`]) that code can match on without parsing text.
//!
//! ```
//! use cano::CanoError;
//!
//! let err = CanoError::task_execution("payment gateway refused the card");
//! assert_eq!(err.category(), "task_execution");
//! assert_eq!(err.message(), "payment gateway refused the card");
//! assert_eq!(err.to_string(), "Task execution error: payment gateway refused the card");
//! ```

use std::fmt;

/// Errors produced by tasks, the workflow engine, stores and resources.
///
/// The set of variants is fixed (the enum is not `#[non_exhaustive]`), so an
/// exhaustive `match` is allowed. What each message means and what to do about it:
/// [`guide::troubleshooting`](crate::guide::troubleshooting).
#[derive(Debug, Clone)]
pub enum CanoError {
    /// A task's own logic failed (also used for caught panics).
    TaskExecution(String),
    /// A [`MemoryStore`](crate::MemoryStore) or custom store operation failed.
    Store(String),
    /// The workflow engine could not continue (missing handler, join failure, timeout, …).
    Workflow(String),
    /// The workflow or a task is configured incorrectly.
    Configuration(String),
    /// Every attempt of a retried task failed; the message embeds the last error.
    RetryExhausted(String),
    /// A task attempt exceeded its `attempt_timeout`.
    Timeout(String),
    /// A circuit breaker rejected the call.
    CircuitOpen(String),
    /// A checkpoint store operation failed, or recovery could not proceed.
    CheckpointStore(String),
    /// A saga rollback failed: `errors[0]` is the original error, the rest are the
    /// compensation errors in the order they happened.
    CompensationFailed {
        /// The original error followed by every compensation error.
        errors: Vec<CanoError>,
    },
    /// Any other error.
    Generic(String),
    /// [`Resources::get`](crate::Resources::get) found no resource under the key. The
    /// message names the requested type, not the key: check the key's spelling.
    ResourceNotFound(String),
    /// [`Resources::get`](crate::Resources::get) found a resource of another type.
    ResourceTypeMismatch(String),
    /// [`Resources::try_insert`](crate::Resources::try_insert) was given a key twice.
    ResourceDuplicateKey(String),
}

/// Result alias used throughout cano.
pub type CanoResult<TState> = Result<TState, CanoError>;

impl CanoError {
    /// A task's own logic failed.
    pub fn task_execution<S: Into<String>>(msg: S) -> Self {
        Self::TaskExecution(msg.into())
    }
    /// A store operation failed.
    pub fn store<S: Into<String>>(msg: S) -> Self {
        Self::Store(msg.into())
    }
    /// The workflow engine could not continue.
    pub fn workflow<S: Into<String>>(msg: S) -> Self {
        Self::Workflow(msg.into())
    }
    /// Something is configured incorrectly.
    pub fn configuration<S: Into<String>>(msg: S) -> Self {
        Self::Configuration(msg.into())
    }
    /// All retry attempts failed.
    pub fn retry_exhausted<S: Into<String>>(msg: S) -> Self {
        Self::RetryExhausted(msg.into())
    }
    /// An attempt timed out.
    pub fn timeout<S: Into<String>>(msg: S) -> Self {
        Self::Timeout(msg.into())
    }
    /// A circuit breaker rejected the call.
    pub fn circuit_open<S: Into<String>>(msg: S) -> Self {
        Self::CircuitOpen(msg.into())
    }
    /// A checkpoint store operation failed.
    pub fn checkpoint_store<S: Into<String>>(msg: S) -> Self {
        Self::CheckpointStore(msg.into())
    }
    /// A rollback failed; `errors[0]` should be the original error.
    pub fn compensation_failed(errors: Vec<CanoError>) -> Self {
        Self::CompensationFailed { errors }
    }
    /// Any other error.
    pub fn generic<S: Into<String>>(msg: S) -> Self {
        Self::Generic(msg.into())
    }
    /// No resource under the requested key.
    pub fn resource_not_found<S: Into<String>>(msg: S) -> Self {
        Self::ResourceNotFound(msg.into())
    }
    /// A resource exists under the key but has another type.
    pub fn resource_type_mismatch<S: Into<String>>(msg: S) -> Self {
        Self::ResourceTypeMismatch(msg.into())
    }
    /// A resource key was inserted twice.
    pub fn resource_duplicate_key<S: Into<String>>(msg: S) -> Self {
        Self::ResourceDuplicateKey(msg.into())
    }

    /// The raw message, without the category prefix that `Display` adds.
    ///
    /// For [`CanoError::CompensationFailed`] this is the message of the original
    /// error (`errors[0]`), or `"compensation failed"` when the list is empty.
    pub fn message(&self) -> &str {
        match self {
            Self::TaskExecution(m)
            | Self::Store(m)
            | Self::Workflow(m)
            | Self::Configuration(m)
            | Self::RetryExhausted(m)
            | Self::Timeout(m)
            | Self::CircuitOpen(m)
            | Self::CheckpointStore(m)
            | Self::Generic(m)
            | Self::ResourceNotFound(m)
            | Self::ResourceTypeMismatch(m)
            | Self::ResourceDuplicateKey(m) => m,
            Self::CompensationFailed { errors } => errors
                .first()
                .map_or("compensation failed", CanoError::message),
        }
    }

    /// A stable, machine-readable category name, e.g. `"task_execution"`.
    pub fn category(&self) -> &'static str {
        match self {
            Self::TaskExecution(_) => "task_execution",
            Self::Store(_) => "store",
            Self::Workflow(_) => "workflow",
            Self::Configuration(_) => "configuration",
            Self::RetryExhausted(_) => "retry_exhausted",
            Self::Timeout(_) => "timeout",
            Self::CircuitOpen(_) => "circuit_open",
            Self::CheckpointStore(_) => "checkpoint_store",
            Self::CompensationFailed { .. } => "compensation_failed",
            Self::Generic(_) => "generic",
            Self::ResourceNotFound(_) => "resource_not_found",
            Self::ResourceTypeMismatch(_) => "resource_type_mismatch",
            Self::ResourceDuplicateKey(_) => "resource_duplicate_key",
        }
    }
}

/// The message of a cancelled run's error ([`CanoError::cancelled`]).
const CANCELLED: &str = "Workflow cancelled";
/// The start of a whole-run timeout's message ([`CanoError::workflow_timeout`]).
const WORKFLOW_TIMEOUT: &str = "Workflow exceeded its total timeout";
/// The start of a version mismatch's message ([`CanoError::workflow_version_mismatch`]).
const VERSION_MISMATCH: &str =
    "Workflow version mismatch: the checkpoint log was written by version ";
/// A half-open breaker's rejection when every trial slot is taken (0.12.0's text).
pub(crate) const HALF_OPEN_BUSY: &str = "circuit breaker half-open: trial slot exhausted";

/// Conditions added after 0.12.0. They use the existing variants (so a 0.12.0 program's
/// exhaustive `match` still compiles) with documented texts, and a typed helper each.
impl CanoError {
    /// The error of a run stopped through its
    /// [`CancellationHandle`](crate::cancel::CancellationHandle):
    /// `CanoError::Workflow("Workflow cancelled")`. The engine adds the state it stopped
    /// in: `Workflow cancelled in state Charge`.
    ///
    /// ```
    /// use cano::CanoError;
    /// let err = CanoError::cancelled();
    /// assert!(err.is_cancelled());
    /// assert_eq!(err.to_string(), "Workflow error: Workflow cancelled");
    /// ```
    pub fn cancelled() -> Self {
        Self::Workflow(CANCELLED.to_string())
    }

    /// [`cancelled`](Self::cancelled) naming the state the run stopped in.
    pub(crate) fn cancelled_in(state: &str) -> Self {
        Self::Workflow(format!("{CANCELLED} in state {state}"))
    }

    /// Whether the run ended because it was cancelled: this is
    /// [`cancelled`](Self::cancelled)'s error, or a `CompensationFailed` whose original
    /// error (the first) is.
    pub fn is_cancelled(&self) -> bool {
        match self {
            Self::Workflow(m) => {
                m == CANCELLED
                    || m.strip_prefix(CANCELLED)
                        .is_some_and(|rest| rest.starts_with(" in state "))
            }
            Self::CompensationFailed { errors } => errors.first().is_some_and(Self::is_cancelled),
            _ => false,
        }
    }

    /// The error of a run that passed its whole-run deadline
    /// ([`Workflow::with_total_timeout`](crate::Workflow::with_total_timeout)):
    /// `CanoError::Timeout("Workflow exceeded its total timeout: ran 5.001s, limit 5s")`.
    /// The engine adds the state it stopped in.
    ///
    /// ```
    /// use cano::CanoError;
    /// use std::time::Duration;
    /// let err = CanoError::workflow_timeout(Duration::from_millis(5001), Duration::from_secs(5));
    /// assert!(err.is_workflow_timeout());
    /// assert_eq!(err.message(), "Workflow exceeded its total timeout: ran 5.001s, limit 5s");
    /// ```
    pub fn workflow_timeout(elapsed: std::time::Duration, limit: std::time::Duration) -> Self {
        Self::Timeout(format!(
            "{WORKFLOW_TIMEOUT}: ran {elapsed:?}, limit {limit:?}"
        ))
    }

    /// [`workflow_timeout`](Self::workflow_timeout) naming the state the run stopped in.
    pub(crate) fn workflow_timeout_in(
        state: &str,
        elapsed: std::time::Duration,
        limit: std::time::Duration,
    ) -> Self {
        Self::Timeout(format!(
            "{WORKFLOW_TIMEOUT} in state {state}: ran {elapsed:?}, limit {limit:?}"
        ))
    }

    /// Whether the run ended because it passed its whole-run deadline: this is
    /// [`workflow_timeout`](Self::workflow_timeout)'s error, or a `CompensationFailed`
    /// whose original error (the first) is.
    pub fn is_workflow_timeout(&self) -> bool {
        match self {
            Self::Timeout(m) => m.starts_with(WORKFLOW_TIMEOUT),
            Self::CompensationFailed { errors } => {
                errors.first().is_some_and(Self::is_workflow_timeout)
            }
            _ => false,
        }
    }
}

impl CanoError {
    /// The error of [`resume_from`](crate::Workflow::resume_from) when the run's log was
    /// written under another [workflow version](crate::Workflow::with_workflow_version)
    /// than the workflow resuming it: `CanoError::Workflow("Workflow version mismatch:
    /// the checkpoint log was written by version 1, this workflow is version 2")`. The
    /// engine adds the run's id. Nothing has run when it is returned.
    ///
    /// ```
    /// use cano::CanoError;
    /// let err = CanoError::workflow_version_mismatch(1, 2);
    /// assert_eq!(err.workflow_version_mismatch_versions(), Some((1, 2)));
    /// assert_eq!(
    ///     err.message(),
    ///     "Workflow version mismatch: the checkpoint log was written by version 1, this workflow is version 2"
    /// );
    /// ```
    pub fn workflow_version_mismatch(stored: u32, expected: u32) -> Self {
        Self::Workflow(format!(
            "{VERSION_MISMATCH}{stored}, this workflow is version {expected}"
        ))
    }

    /// [`workflow_version_mismatch`](Self::workflow_version_mismatch) naming the run.
    pub(crate) fn workflow_version_mismatch_for(run: &str, stored: u32, expected: u32) -> Self {
        Self::Workflow(format!(
            "{VERSION_MISMATCH}{stored}, this workflow is version {expected} (run {run:?}); \
             resume it with a workflow of version {stored}, or clear its log"
        ))
    }

    /// `(stored, expected)` when this is a
    /// [`workflow_version_mismatch`](Self::workflow_version_mismatch) error: the version
    /// the log was written under and the version of the workflow that tried to resume it.
    pub fn workflow_version_mismatch_versions(&self) -> Option<(u32, u32)> {
        let Self::Workflow(m) = self else {
            return None;
        };
        let rest = m.strip_prefix(VERSION_MISMATCH)?;
        let (stored, rest) = rest.split_once(", this workflow is version ")?;
        let expected = rest.split(|c: char| !c.is_ascii_digit()).next()?;
        Some((stored.parse().ok()?, expected.parse().ok()?))
    }

    /// Whether a [circuit breaker](crate::CircuitBreaker) rejected the call because it is
    /// half-open and every trial slot is taken (rather than because it is open): a
    /// [`CanoError::CircuitOpen`] with the text `circuit breaker half-open: trial slot
    /// exhausted`. Both short-circuit retries alike; this tells them apart in logs and
    /// metrics.
    ///
    /// ```
    /// use cano::{CanoError, CircuitBreaker, CircuitPolicy};
    /// use std::{sync::Arc, time::Duration};
    /// let breaker = Arc::new(CircuitBreaker::new(CircuitPolicy {
    ///     failure_threshold: 1,
    ///     reset_timeout: Duration::ZERO,
    ///     half_open_max_calls: 1,
    /// }));
    /// breaker.record_failure(breaker.try_acquire()?); // opens; half-open at once
    /// let _trial = breaker.try_acquire()?;             // takes the one trial slot
    /// let busy = breaker.try_acquire().unwrap_err();
    /// assert!(busy.is_circuit_half_open_busy());
    /// assert_eq!(busy.category(), "circuit_open");
    /// assert!(!CanoError::circuit_open("circuit breaker is open").is_circuit_half_open_busy());
    /// # Ok::<(), CanoError>(())
    /// ```
    pub fn is_circuit_half_open_busy(&self) -> bool {
        matches!(self, Self::CircuitOpen(m) if m == HALF_OPEN_BUSY)
    }
}

impl CanoError {
    /// Rebuild an error from its [`category`](Self::category) and raw message (used to
    /// restore an error recorded in a checkpoint log). Unknown categories become `Generic`.
    pub(crate) fn from_category(category: &str, message: String) -> Self {
        match category {
            "task_execution" => Self::TaskExecution(message),
            "store" => Self::Store(message),
            "workflow" => Self::Workflow(message),
            "configuration" => Self::Configuration(message),
            "retry_exhausted" => Self::RetryExhausted(message),
            "timeout" => Self::Timeout(message),
            "circuit_open" => Self::CircuitOpen(message),
            "checkpoint_store" => Self::CheckpointStore(message),
            "resource_not_found" => Self::ResourceNotFound(message),
            "resource_type_mismatch" => Self::ResourceTypeMismatch(message),
            "resource_duplicate_key" => Self::ResourceDuplicateKey(message),
            _ => Self::Generic(message),
        }
    }
}

impl PartialEq for CanoError {
    fn eq(&self, other: &Self) -> bool {
        use CanoError as E;
        match (self, other) {
            (E::TaskExecution(a), E::TaskExecution(b))
            | (E::Store(a), E::Store(b))
            | (E::Workflow(a), E::Workflow(b))
            | (E::Configuration(a), E::Configuration(b))
            | (E::RetryExhausted(a), E::RetryExhausted(b))
            | (E::Timeout(a), E::Timeout(b))
            | (E::CircuitOpen(a), E::CircuitOpen(b))
            | (E::CheckpointStore(a), E::CheckpointStore(b))
            | (E::Generic(a), E::Generic(b))
            | (E::ResourceNotFound(a), E::ResourceNotFound(b))
            | (E::ResourceTypeMismatch(a), E::ResourceTypeMismatch(b))
            | (E::ResourceDuplicateKey(a), E::ResourceDuplicateKey(b)) => a == b,
            (E::CompensationFailed { errors: a }, E::CompensationFailed { errors: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for CanoError {}

impl fmt::Display for CanoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TaskExecution(m) => write!(f, "Task execution error: {m}"),
            Self::Store(m) => write!(f, "Store error: {m}"),
            Self::Workflow(m) => write!(f, "Workflow error: {m}"),
            Self::Configuration(m) => write!(f, "Configuration error: {m}"),
            Self::RetryExhausted(m) => write!(f, "Retry exhausted: {m}"),
            Self::Timeout(m) => write!(f, "Timeout error: {m}"),
            Self::CircuitOpen(m) => write!(f, "Circuit open: {m}"),
            Self::CheckpointStore(m) => write!(f, "Checkpoint store error: {m}"),
            Self::Generic(m) => write!(f, "Error: {m}"),
            Self::ResourceNotFound(m) => write!(f, "Resource not found: {m}"),
            Self::ResourceTypeMismatch(m) => write!(f, "Resource type mismatch: {m}"),
            Self::ResourceDuplicateKey(m) => write!(f, "Resource duplicate key: {m}"),
            Self::CompensationFailed { errors } => {
                write!(f, "Compensation failed ({} error(s))", errors.len())?;
                for (i, e) in errors.iter().enumerate() {
                    if i == 0 {
                        write!(f, "; original: {e}")?;
                    } else {
                        write!(f, "; compensation #{i}: {e}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CanoError {}

impl From<Box<dyn std::error::Error + Send + Sync>> for CanoError {
    fn from(err: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self::Generic(err.to_string())
    }
}

impl From<&str> for CanoError {
    fn from(s: &str) -> Self {
        Self::Generic(s.to_string())
    }
}

impl From<String> for CanoError {
    fn from(s: String) -> Self {
        Self::Generic(s)
    }
}

impl From<std::io::Error> for CanoError {
    fn from(err: std::io::Error) -> Self {
        Self::Generic(format!("IO error: {err}"))
    }
}

impl From<crate::store::StoreError> for CanoError {
    fn from(err: crate::store::StoreError) -> Self {
        Self::Store(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensation_failed_display_lists_every_error() {
        let e = CanoError::compensation_failed(vec![
            CanoError::generic("a"),
            CanoError::timeout("b"),
            CanoError::store("c"),
        ]);
        assert_eq!(
            e.to_string(),
            "Compensation failed (3 error(s)); original: Error: a; compensation #1: Timeout error: b; compensation #2: Store error: c"
        );
        assert_eq!(e.message(), "a");
        let empty = CanoError::compensation_failed(vec![]);
        assert_eq!(empty.to_string(), "Compensation failed (0 error(s))");
        assert_eq!(empty.message(), "compensation failed");
    }

    #[test]
    fn equality_needs_same_variant_and_message() {
        assert_eq!(CanoError::timeout("x"), CanoError::timeout("x"));
        assert_ne!(CanoError::timeout("x"), CanoError::circuit_open("x"));
        assert_ne!(CanoError::timeout("x"), CanoError::timeout("y"));
        assert_ne!(
            CanoError::compensation_failed(vec![CanoError::generic("x")]),
            CanoError::generic("x")
        );
    }
}
