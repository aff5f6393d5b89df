//! The checkpoint log's format: what each row of a run's log means, and the one place
//! that writes and reads it.
//!
//! A run's log is the list of [`CheckpointRow`]s its store keeps under the run's id,
//! ordered by `sequence`. Every row the engine writes is built by this module, and every
//! row it reads back is parsed here ([`parse_row`]); nothing else in the crate looks inside
//! `output_blob`. Stores do not need to know any of this: to them a row is four fields and
//! an opaque blob.
//!
//! # Fields
//!
//! | field | meaning |
//! |---|---|
//! | `sequence` | position in the log, from 0; the engine never writes the same sequence twice in one run and never reuses the sequence of a failed append (a gap is harmless) |
//! | `state` | the state's `Debug` text (`format!("{state:?}")`); `""` on rollback rows |
//! | `task_id` | the task's [`name`](crate::Task::name); `""` for split states, exit states and rollback rows |
//! | `output_blob` | depends on `kind`, below |
//! | `kind` | which of the row kinds below this is |
//!
//! # Row kinds and their blobs
//!
//! | kind | written when | `output_blob` |
//! |---|---|---|
//! | [`StateEntry`](RowKind::StateEntry) | the run enters a state, before its task runs | `None` for a plain entry; else JSON `{"resumed": true, "supersedes": 7, "set": {key: {"type": …, "value": …}}, "removed": [key, …], "version": 2}` (each member only when it applies): `resumed` marks the first entry of a resumed run (a re-entry, not a new visit); `supersedes` is the sequence of the completion row at the resume point, which the re-run *supersedes*; `set` and `removed` are the [run data](crate::run_data) written by the states since the previous entry row; `version` (on a run's first row only, and only when it is not 0) is the [workflow version](crate::Workflow::with_workflow_version) the run was started under. (Earlier versions of this crate wrote a re-entry's supersedes marker as decimal ASCII text, `b"7"`; it is still read.) |
//! | [`StepCursor`](RowKind::StepCursor) | a stepped task returned a new cursor; also the re-entry of a stepped state resumed mid-way | the cursor, as the JSON of the task's `Cursor` type |
//! | [`CompensationCompletion`](RowKind::CompensationCompletion) | a saga task finished | its `Output`, as JSON |
//! | [`RollbackStarted`](RowKind::RollbackStarted) | a run with completed saga steps failed and its rollback begins | JSON `{"category": …, "message": …, "steps": [{"task_id": …, "output": [bytes…]}, …]}`: the error that caused it ([`CanoError::category`] and raw message) and the steps to undo, oldest first |
//! | [`Compensated`](RowKind::Compensated) | one step of that rollback was undone | the decimal ASCII text of the step's index in the `steps` list of the latest `RollbackStarted` row |
//! | [`SignalWait`](RowKind::SignalWait) | a [signal](crate::signal) state starts waiting (after its entry row); also the re-entry of a signal state resumed while waiting | JSON `{"signal": name, "deadline_ms": ms or null}`: the signal waited for and the timeout's deadline (ms since the Unix epoch, UTC) |
//! | [`Signal`](RowKind::Signal) | a signal state consumed a signal (before its task sees the payload); also the re-entry of a signal state resumed after that | JSON `{"signal": name, "id": the sender's id, "payload": the payload (JSON)}` |
//! | [`SplitMember`](RowKind::SplitMember) | a member of a split state finished successfully (in a run with a checkpoint store) | the member's index, as decimal ASCII text |
//! | [`Timer`](RowKind::Timer) | a [timer](crate::TimerTask) state starts waiting (after its entry row); also the re-entry of a timer state resumed while waiting | the deadline: decimal ASCII milliseconds since the Unix epoch, UTC (`b"1764950400000"`) |
//!
//! Rows of kinds `StateEntry`, `StepCursor` and `CompensationCompletion` are also what
//! cano 0.12.0 writes (with the same blobs, except that 0.12.0 never writes a supersedes
//! marker); `RollbackStarted`, `Compensated`, `Timer`, `SignalWait`, `Signal` and
//! `SplitMember` are this crate's additions.
//!
//! # Reading a log back
//!
//! [`Workflow::resume_from`](crate::Workflow::resume_from) reads a log like this:
//!
//! * If it holds a `RollbackStarted` row, the run died (or failed) while rolling back: the
//!   rollback is finished, undoing the steps of the latest `RollbackStarted` row that no
//!   later `Compensated` row names, most recent first; nothing runs forward.
//! * Otherwise the **resume point** is the row with the highest sequence: the run
//!   re-enters its state. If that row is a `StepCursor`, the stepped state continues from
//!   its cursor; if it is a `Timer`, the timer state waits until its recorded deadline
//!   (at once if it has passed) without asking the task again; if it is a `SignalWait`,
//!   the signal state waits again, until the recorded deadline; if it is a `Signal`, the
//!   signal state hands that signal's payload to its task again; if it is a
//!   `CompensationCompletion`, the step runs again and its re-entry row supersedes that
//!   completion.
//! * Before anything runs, the version the run was started under (the `version` of its
//!   first entry row; 0 when there is none, as in every log written by cano 0.12.0) must
//!   be the resuming workflow's [version](crate::Workflow::with_workflow_version).
//! * Signal ids in `Signal` rows are never consumed again by the run.
//! * If the resume point is in a split state's visit (its entry row, possibly re-entered,
//!   followed by `SplitMember` rows), the members those rows name count as succeeded and
//!   are not run again.
//! * Saga steps on the compensation stack are the `CompensationCompletion` rows before the
//!   resume point that no supersedes marker names, in sequence order.
//!
//! A row that does not follow this format (a blob where none belongs, a missing blob, a
//! blob that does not decode) is an error naming the run, the row's sequence and what is
//! wrong ([`CanoError::CheckpointStore`]); nothing is guessed.
//!
//! # Example: a saga that crashed during its rollback, then resumed
//!
//! A checkout `Reserve → Charge → Ship → Done` where `Reserve` and `Charge` are saga tasks
//! (`task_id`s `reserve` and `charge`) and `Ship` fails. The process is killed after the
//! first compensation; a new process calls `resume_from("order-7")`.
//!
//! | seq | kind | state | task_id | output_blob |
//! |---:|---|---|---|---|
//! | 0 | StateEntry | `Reserve` | `reserve` | — |
//! | 1 | CompensationCompletion | `Reserve` | `reserve` | `{"sku":"A1","qty":2}` |
//! | 2 | StateEntry | `Charge` | `charge` | — |
//! | 3 | CompensationCompletion | `Charge` | `charge` | `{"charge_id":"ch_9"}` |
//! | 4 | StateEntry | `Ship` | `ship` | — |
//! | 5 | RollbackStarted | | | `{"category":"task_execution","message":"carrier down","steps":[{"task_id":"reserve","output":[123,…]},{"task_id":"charge","output":[123,…]}]}` |
//! | 6 | Compensated | | | `1` (the charge was refunded) |
//!
//! *(killed here)* The resumed run finds the `RollbackStarted` row at 5 and the
//! `Compensated` row naming index 1, so only `reserve` (index 0) is left. It compensates
//! it, writes `7 Compensated "0"`, clears the log and returns the original error,
//! `Task execution error: carrier down`. Had the process died before row 5 was written,
//! the resume point would have been row 4: `Ship` would run again with both steps on the
//! compensation stack.

use super::{CheckpointRow, RowKind};
use crate::error::CanoError;
use crate::run_data::{DataWrites, StoredValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One row of a checkpoint log, decoded. Borrows from the row it was parsed from.
///
/// Built by [`parse_row`]; see the [module docs](self) for what each kind means.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry<'a> {
    /// The run entered `state` (before its task ran).
    StateEntry {
        /// The state's `Debug` text.
        state: &'a str,
        /// The state's task, or `""`.
        task_id: &'a str,
        /// The sequence of the completion row this re-entry replaces (the first entry of
        /// a run resumed at a completion row).
        supersedes: Option<u64>,
        /// Whether this is the re-entry of a resumed run (not a new visit).
        resumed: bool,
        /// The run data written by the states since the previous entry row.
        writes: Option<DataWrites>,
        /// The [workflow version](crate::Workflow::with_workflow_version) the run was
        /// started under, on the run's first entry row (`None` on later rows, and for
        /// version 0).
        version: Option<u32>,
    },
    /// A stepped task reached `cursor` (or its state was re-entered at it on resume).
    StepCursor {
        /// The state's `Debug` text.
        state: &'a str,
        /// The stepped task's name.
        task_id: &'a str,
        /// The cursor, as JSON.
        cursor: &'a [u8],
    },
    /// A saga task finished with `output`.
    Completion {
        /// The state's `Debug` text.
        state: &'a str,
        /// The saga task's name (how its compensator is found).
        task_id: &'a str,
        /// Its output, as JSON.
        output: &'a [u8],
    },
    /// A timer state waits until `deadline_ms` (or was re-entered, waiting, on resume).
    Timer {
        /// The state's `Debug` text.
        state: &'a str,
        /// The timer task's name.
        task_id: &'a str,
        /// The deadline, in milliseconds since the Unix epoch (UTC).
        deadline_ms: u64,
    },
    /// A signal state waits for `signal` (until `deadline_ms`, if set), or was
    /// re-entered, waiting, on resume.
    SignalWait {
        /// The state's `Debug` text.
        state: &'a str,
        /// The signal task's name.
        task_id: &'a str,
        /// The signal's name.
        signal: String,
        /// The timeout's deadline, in milliseconds since the Unix epoch (UTC).
        deadline_ms: Option<u64>,
    },
    /// A signal state consumed `signal` (or was re-entered with it on resume).
    Signal {
        /// The state's `Debug` text.
        state: &'a str,
        /// The signal task's name.
        task_id: &'a str,
        /// The signal: name, id and payload.
        signal: crate::signal::Signal,
    },
    /// Member `index` of the split state `state` finished successfully.
    SplitMember {
        /// The split state's `Debug` text.
        state: &'a str,
        /// The member's index.
        index: usize,
    },
    /// A rollback began.
    RollbackStarted(RollbackRecord),
    /// Step `index` of the latest rollback was undone.
    Compensated {
        /// Index into the latest [`RollbackRecord::steps`].
        index: usize,
    },
}

/// The payload of a [`RowKind::RollbackStarted`] row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRecord {
    /// [`CanoError::category`] of the error that caused the rollback.
    pub category: String,
    /// Its raw message ([`CanoError::message`]).
    pub message: String,
    /// The saga steps to undo, oldest first (they are undone last to first).
    pub steps: Vec<CompletedStep>,
}

impl RollbackRecord {
    /// The error the rollback started from, rebuilt from its category and message.
    pub fn original(&self) -> CanoError {
        CanoError::from_category(&self.category, self.message.clone())
    }
}

/// A completed saga step: which task, and its output (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedStep {
    /// The saga task's name (how its compensator is found).
    pub task_id: String,
    /// Its output, as JSON.
    pub output: Vec<u8>,
}

/// Decode one row of `workflow_id`'s log.
///
/// # Errors
/// [`CanoError::CheckpointStore`] naming the run, the sequence and what is wrong when the
/// row does not follow the [format](self): a blob on a row kind that has none, a missing
/// blob, a marker or index that is not a decimal number, a rollback record that is not the
/// expected JSON.
///
/// ```
/// use cano::recovery::log::{LogEntry, parse_row};
/// use cano::CheckpointRow;
///
/// let row = CheckpointRow::new(3, "Charge", "charge").with_output(br#"{"id":9}"#.to_vec());
/// assert_eq!(
///     parse_row("order-7", &row)?,
///     LogEntry::Completion { state: "Charge", task_id: "charge", output: br#"{"id":9}"# },
/// );
///
/// let mut bad = CheckpointRow::new(4, "Ship", "ship");
/// bad.output_blob = Some(b"not a number".to_vec());
/// let err = parse_row("order-7", &bad).unwrap_err();
/// assert!(err.to_string().contains("\"order-7\""));
/// assert!(err.to_string().contains("sequence 4"));
/// # Ok::<(), cano::CanoError>(())
/// ```
pub fn parse_row<'a>(workflow_id: &str, row: &'a CheckpointRow) -> Result<LogEntry<'a>, CanoError> {
    let bad = |what: String| malformed(workflow_id, row, &what);
    let blob = row.output_blob.as_deref();
    match row.kind {
        RowKind::StateEntry => {
            let record = match blob {
                None => EntryRecord::default(),
                Some(b) if b.first() == Some(&b'{') => serde_json::from_slice(b)
                    .map_err(|e| bad(format!("its entry record does not decode ({e})")))?,
                // Written by earlier versions: a re-entry's supersedes marker.
                Some(b) => EntryRecord {
                    resumed: true,
                    supersedes: Some(decimal(b).ok_or_else(|| {
                        bad(format!(
                            "its supersedes marker {} is not a sequence number",
                            shown(b)
                        ))
                    })?),
                    ..EntryRecord::default()
                },
            };
            let writes = DataWrites {
                set: record.set,
                removed: record.removed,
            };
            Ok(LogEntry::StateEntry {
                state: &row.state,
                task_id: &row.task_id,
                supersedes: record.supersedes,
                resumed: record.resumed,
                writes: (!writes.is_empty()).then_some(writes),
                version: record.version,
            })
        }
        RowKind::StepCursor => Ok(LogEntry::StepCursor {
            state: &row.state,
            task_id: &row.task_id,
            cursor: blob.ok_or_else(|| bad("it has no cursor".into()))?,
        }),
        RowKind::CompensationCompletion => Ok(LogEntry::Completion {
            state: &row.state,
            task_id: &row.task_id,
            output: blob.ok_or_else(|| bad("it has no output".into()))?,
        }),
        RowKind::Timer => {
            let blob = blob.ok_or_else(|| bad("it has no deadline".into()))?;
            let deadline_ms = decimal(blob).ok_or_else(|| {
                bad(format!(
                    "its deadline {} is not a number of milliseconds",
                    shown(blob)
                ))
            })?;
            Ok(LogEntry::Timer {
                state: &row.state,
                task_id: &row.task_id,
                deadline_ms,
            })
        }
        RowKind::SplitMember => {
            let blob = blob.ok_or_else(|| bad("it has no member index".into()))?;
            let index = decimal(blob)
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| bad(format!("its member index {} is not a number", shown(blob))))?;
            Ok(LogEntry::SplitMember {
                state: &row.state,
                index,
            })
        }
        RowKind::SignalWait => {
            let blob = blob.ok_or_else(|| bad("it has no signal".into()))?;
            let wait: WaitRecord = serde_json::from_slice(blob)
                .map_err(|e| bad(format!("its signal wait does not decode ({e})")))?;
            Ok(LogEntry::SignalWait {
                state: &row.state,
                task_id: &row.task_id,
                signal: wait.signal,
                deadline_ms: wait.deadline_ms,
            })
        }
        RowKind::Signal => {
            let blob = blob.ok_or_else(|| bad("it has no signal".into()))?;
            let got: SignalRecord = serde_json::from_slice(blob)
                .map_err(|e| bad(format!("its signal does not decode ({e})")))?;
            Ok(LogEntry::Signal {
                state: &row.state,
                task_id: &row.task_id,
                signal: crate::signal::Signal {
                    name: got.signal,
                    id: got.id,
                    payload: serde_json::to_vec(&got.payload)
                        .map_err(|e| bad(format!("its payload does not encode ({e})")))?,
                },
            })
        }
        RowKind::RollbackStarted => {
            let blob = blob.ok_or_else(|| bad("it has no rollback record".into()))?;
            serde_json::from_slice(blob)
                .map(LogEntry::RollbackStarted)
                .map_err(|e| bad(format!("its rollback record does not decode ({e})")))
        }
        RowKind::Compensated => {
            let blob = blob.ok_or_else(|| bad("it has no step index".into()))?;
            let index = decimal(blob)
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| bad(format!("its step index {} is not a number", shown(blob))))?;
            Ok(LogEntry::Compensated { index })
        }
    }
}

/// The error for a row that does not follow the format.
fn malformed(workflow_id: &str, row: &CheckpointRow, what: &str) -> CanoError {
    CanoError::checkpoint_store(format!(
        "checkpoint log {workflow_id:?} is malformed at sequence {} ({:?} row): {what}; \
         the log was not written by this version of cano, or was edited or damaged",
        row.sequence, row.kind
    ))
}

/// A short, printable excerpt of a blob for an error message.
fn shown(blob: &[u8]) -> String {
    let text = String::from_utf8_lossy(&blob[..blob.len().min(32)]).into_owned();
    if blob.len() > 32 {
        format!("{text:?}…")
    } else {
        format!("{text:?}")
    }
}

/// A decimal ASCII number (no sign, no spaces), as written by [`entry`] and
/// [`compensated`].
fn decimal(blob: &[u8]) -> Option<u64> {
    if blob.is_empty() || !blob.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(blob).ok()?.parse().ok()
}

/// A [`RowKind::StateEntry`] row in the form earlier versions wrote (`supersedes` as
/// decimal text).
#[cfg(test)]
pub(crate) fn entry(
    sequence: u64,
    state: String,
    task_id: String,
    supersedes: Option<u64>,
) -> CheckpointRow {
    let mut row = CheckpointRow::new(sequence, state, task_id);
    row.output_blob = supersedes.map(|s| s.to_string().into_bytes());
    row
}

/// The JSON blob of a [`RowKind::StateEntry`] row with more than a plain entry to say.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRecord {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resumed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    supersedes: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    set: BTreeMap<String, StoredValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
}

/// A plain [`RowKind::StateEntry`] row: a new visit, with nothing more to say.
#[inline]
pub(crate) fn plain_entry(sequence: u64, state: String, task_id: String) -> CheckpointRow {
    CheckpointRow::new(sequence, state, task_id)
}

/// What an entry row says beside its state: see [`entry_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EntryMark {
    /// The re-entry of a resumed run (not a new visit).
    pub resumed: bool,
    /// The completion row the re-entry supersedes.
    pub supersedes: Option<u64>,
    /// The workflow version, on a run's first entry (never `Some(0)`).
    pub version: Option<u32>,
}

impl EntryMark {
    /// Whether the mark says nothing: a plain entry.
    #[inline]
    pub(crate) fn is_plain(&self) -> bool {
        *self == Self::default()
    }
}

/// A [`RowKind::StateEntry`] row that may carry a re-entry mark, a supersedes marker and
/// run data writes (a plain entry, without a blob, when it carries none of them).
pub(crate) fn entry_with(
    sequence: u64,
    state: String,
    task_id: String,
    mark: EntryMark,
    writes: DataWrites,
) -> Result<CheckpointRow, CanoError> {
    let mut row = CheckpointRow::new(sequence, state, task_id);
    if mark.resumed || mark.supersedes.is_some() || mark.version.is_some() || !writes.is_empty() {
        let record = EntryRecord {
            resumed: mark.resumed,
            supersedes: mark.supersedes,
            set: writes.set,
            removed: writes.removed,
            version: mark.version,
        };
        row.output_blob = Some(serde_json::to_vec(&record).map_err(|e| {
            CanoError::store(format!(
                "run data does not encode for the checkpoint log: {e}"
            ))
        })?);
    }
    Ok(row)
}

/// A [`RowKind::StepCursor`] row.
pub(crate) fn cursor(
    sequence: u64,
    state: impl Into<String>,
    task_id: impl Into<String>,
    cursor: Vec<u8>,
) -> CheckpointRow {
    CheckpointRow::new(sequence, state, task_id).with_cursor(cursor)
}

/// A [`RowKind::Timer`] row: the state waits until `deadline_ms`.
pub(crate) fn timer(
    sequence: u64,
    state: impl Into<String>,
    task_id: impl Into<String>,
    deadline_ms: u64,
) -> CheckpointRow {
    let mut row = CheckpointRow::new(sequence, state, task_id);
    row.output_blob = Some(deadline_ms.to_string().into_bytes());
    row.kind = RowKind::Timer;
    row
}

/// A [`RowKind::SplitMember`] row: member `index` of the split state finished.
pub(crate) fn split_member(sequence: u64, state: impl Into<String>, index: usize) -> CheckpointRow {
    let mut row = CheckpointRow::new(sequence, state, "");
    row.output_blob = Some(index.to_string().into_bytes());
    row.kind = RowKind::SplitMember;
    row
}

/// The blob of a [`RowKind::SignalWait`] row.
#[derive(Serialize, Deserialize)]
struct WaitRecord {
    signal: String,
    deadline_ms: Option<u64>,
}

/// The blob of a [`RowKind::Signal`] row.
#[derive(Serialize, Deserialize)]
struct SignalRecord {
    signal: String,
    id: String,
    payload: serde_json::Value,
}

/// A [`RowKind::SignalWait`] row: the state waits for `signal` until `deadline_ms`.
pub(crate) fn signal_wait(
    sequence: u64,
    state: impl Into<String>,
    task_id: impl Into<String>,
    signal: &str,
    deadline_ms: Option<u64>,
) -> CheckpointRow {
    let mut row = CheckpointRow::new(sequence, state, task_id);
    let record = WaitRecord {
        signal: signal.to_string(),
        deadline_ms,
    };
    // A struct of a string and a number always serializes.
    let mut blob = serde_json::to_vec(&record).unwrap_or_default();
    // A waiting run keeps this row for as long as it waits: no spare capacity.
    blob.shrink_to_fit();
    row.output_blob = Some(blob);
    row.kind = RowKind::SignalWait;
    row
}

/// A [`RowKind::Signal`] row: the state consumed `signal`.
///
/// # Errors
/// The signal's payload is not JSON ([`CanoError::Store`], naming the signal).
pub(crate) fn signal_received(
    sequence: u64,
    state: impl Into<String>,
    task_id: impl Into<String>,
    signal: &crate::signal::Signal,
) -> Result<CheckpointRow, CanoError> {
    let payload: serde_json::Value = serde_json::from_slice(&signal.payload).map_err(|e| {
        CanoError::store(format!(
            "signal {:?} ({:?}): the payload is not JSON: {e}",
            signal.name, signal.id
        ))
    })?;
    let record = SignalRecord {
        signal: signal.name.clone(),
        id: signal.id.clone(),
        payload,
    };
    let mut row = CheckpointRow::new(sequence, state, task_id);
    row.output_blob = Some(serde_json::to_vec(&record).map_err(|e| {
        CanoError::store(format!(
            "signal {:?}: record does not encode: {e}",
            signal.name
        ))
    })?);
    row.kind = RowKind::Signal;
    Ok(row)
}

/// A [`RowKind::CompensationCompletion`] row.
pub(crate) fn completion(
    sequence: u64,
    state: impl Into<String>,
    task_id: impl Into<String>,
    output: Vec<u8>,
) -> CheckpointRow {
    CheckpointRow::new(sequence, state, task_id).with_output(output)
}

/// A [`RowKind::RollbackStarted`] row for a rollback of `steps` caused by `cause`.
///
/// # Errors
/// The record cannot be encoded (it always can: strings and bytes).
pub(crate) fn rollback_started(
    sequence: u64,
    cause: &CanoError,
    steps: &[CompletedStep],
) -> Result<CheckpointRow, CanoError> {
    let record = RollbackRecord {
        category: cause.category().to_string(),
        message: cause.message().to_string(),
        steps: steps.to_vec(),
    };
    let blob = serde_json::to_vec(&record)
        .map_err(|e| CanoError::checkpoint_store(format!("encode rollback row: {e}")))?;
    let mut row = CheckpointRow::new(sequence, "", "");
    row.output_blob = Some(blob);
    row.kind = RowKind::RollbackStarted;
    Ok(row)
}

/// A [`RowKind::Compensated`] row for step `index` of the latest rollback record.
pub(crate) fn compensated(sequence: u64, index: usize) -> CheckpointRow {
    let mut row = CheckpointRow::new(sequence, "", "");
    row.output_blob = Some(index.to_string().into_bytes());
    row.kind = RowKind::Compensated;
    row
}

/// What a waiting state recorded at the resume point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResumeWait {
    /// A timer waiting until this deadline (ms since the epoch).
    Timer(u64),
    /// A signal state waiting for `signal` until `deadline_ms`.
    Signal {
        signal: String,
        deadline_ms: Option<u64>,
    },
    /// A signal state that consumed this signal.
    Received(crate::signal::Signal),
}

/// What a log says a resumed run must do.
#[derive(Debug)]
pub(crate) enum ResumePlan<'a> {
    /// Finish a rollback: undo `remaining` (index in the record, step), last first.
    Rollback {
        original: CanoError,
        remaining: Vec<(usize, CompletedStep)>,
        last_sequence: u64,
        /// The workflow version the run was started under.
        version: u32,
    },
    /// Re-enter the state labelled `state` and run on.
    Forward {
        state: &'a str,
        last_sequence: u64,
        /// Saga steps to put back on the compensation stack, oldest first.
        compensations: Vec<CompletedStep>,
        /// The cursor the resumed stepped state continues from.
        cursor: Option<Vec<u8>>,
        /// What the resumed state was waiting for (a timer, a signal) or had received.
        wait: Option<ResumeWait>,
        /// The ids of every signal the run consumed.
        consumed_signals: Vec<String>,
        /// The run data written by completed states.
        data: BTreeMap<String, StoredValue>,
        /// The visits (fresh state entries) recorded: the one in progress is the last.
        visits: u64,
        /// The members of the resumed split state that finished in its visit.
        split_done: Vec<usize>,
        /// The completion row that the re-entry supersedes.
        supersedes: Option<u64>,
        /// The workflow version the run was started under.
        version: u32,
    },
}

impl ResumePlan<'_> {
    /// The workflow version the run was started under (0 when its log names none).
    pub(crate) fn version(&self) -> u32 {
        match self {
            Self::Rollback { version, .. } | Self::Forward { version, .. } => *version,
        }
    }
}

/// Read `rows` (one run's log, any order) as described in the [module docs](self).
///
/// # Errors
/// An empty log; a malformed row.
pub(crate) fn plan_resume<'a>(
    workflow_id: &str,
    rows: &'a [CheckpointRow],
) -> Result<ResumePlan<'a>, CanoError> {
    let entries = rows
        .iter()
        .map(|r| Ok((r, parse_row(workflow_id, r)?)))
        .collect::<Result<Vec<_>, CanoError>>()?;
    let Some((last, last_entry)) = entries.iter().max_by_key(|(r, _)| r.sequence) else {
        return Err(CanoError::checkpoint_store(format!(
            "no checkpoint rows for workflow id {workflow_id:?}"
        )));
    };
    let last_sequence = last.sequence;
    let version = entries
        .iter()
        .filter_map(|(r, e)| match e {
            LogEntry::StateEntry {
                version: Some(v), ..
            } => Some((r.sequence, *v)),
            _ => None,
        })
        .max_by_key(|(sequence, _)| *sequence)
        .map_or(0, |(_, v)| v);
    let latest_rollback = entries
        .iter()
        .filter_map(|(r, e)| match e {
            LogEntry::RollbackStarted(record) => Some((r.sequence, record)),
            _ => None,
        })
        .max_by_key(|(sequence, _)| *sequence);
    if let Some((started, record)) = latest_rollback {
        let done: Vec<usize> = entries
            .iter()
            .filter(|(r, _)| r.sequence > started)
            .filter_map(|(_, e)| match e {
                LogEntry::Compensated { index } => Some(*index),
                _ => None,
            })
            .collect();
        let remaining = record
            .steps
            .iter()
            .cloned()
            .enumerate()
            .filter(|(i, _)| !done.contains(i))
            .collect();
        return Ok(ResumePlan::Rollback {
            original: record.original(),
            remaining,
            last_sequence,
            version,
        });
    }
    let superseded: Vec<u64> = entries
        .iter()
        .filter_map(|(_, e)| match e {
            LogEntry::StateEntry { supersedes, .. } => *supersedes,
            _ => None,
        })
        .collect();
    let mut completed: Vec<(u64, CompletedStep)> = entries
        .iter()
        .filter(|(r, _)| r.sequence != last_sequence && !superseded.contains(&r.sequence))
        .filter_map(|(r, e)| match e {
            LogEntry::Completion {
                task_id, output, ..
            } => Some((
                r.sequence,
                CompletedStep {
                    task_id: (*task_id).to_string(),
                    output: output.to_vec(),
                },
            )),
            _ => None,
        })
        .collect();
    completed.sort_by_key(|(sequence, _)| *sequence);
    Ok(ResumePlan::Forward {
        state: &last.state,
        last_sequence,
        compensations: completed.into_iter().map(|(_, step)| step).collect(),
        cursor: match last_entry {
            LogEntry::StepCursor { cursor, .. } => Some(cursor.to_vec()),
            _ => None,
        },
        wait: match last_entry {
            LogEntry::Timer { deadline_ms, .. } => Some(ResumeWait::Timer(*deadline_ms)),
            LogEntry::SignalWait {
                signal,
                deadline_ms,
                ..
            } => Some(ResumeWait::Signal {
                signal: signal.clone(),
                deadline_ms: *deadline_ms,
            }),
            LogEntry::Signal { signal, .. } => Some(ResumeWait::Received(signal.clone())),
            _ => None,
        },
        data: {
            let mut writes: Vec<(u64, &DataWrites)> = entries
                .iter()
                .filter_map(|(r, e)| match e {
                    LogEntry::StateEntry {
                        writes: Some(w), ..
                    } => Some((r.sequence, w)),
                    _ => None,
                })
                .collect();
            writes.sort_by_key(|(sequence, _)| *sequence);
            let mut data = BTreeMap::new();
            for (_, w) in writes {
                w.clone().apply(&mut data);
            }
            data
        },
        split_done: {
            // Back from the resume point, through the visit's member rows and re-entries,
            // to the entry row that began it.
            let mut by_sequence: Vec<&(&CheckpointRow, LogEntry<'_>)> = entries.iter().collect();
            by_sequence.sort_by_key(|(r, _)| std::cmp::Reverse(r.sequence));
            let mut done = Vec::new();
            for (r, e) in by_sequence {
                match e {
                    LogEntry::SplitMember { index, .. } if r.state == last.state => {
                        done.push(*index);
                    }
                    LogEntry::StateEntry { resumed: true, .. } if r.state == last.state => {}
                    _ => break,
                }
            }
            done.sort_unstable();
            done.dedup();
            done
        },
        visits: entries
            .iter()
            .filter(|(_, e)| matches!(e, LogEntry::StateEntry { resumed: false, .. }))
            .count() as u64,
        consumed_signals: entries
            .iter()
            .filter_map(|(_, e)| match e {
                LogEntry::Signal { signal, .. } => Some(signal.id.clone()),
                _ => None,
            })
            .collect(),
        supersedes: matches!(last_entry, LogEntry::Completion { .. }).then_some(last_sequence),
        version,
    })
}

/// Summarize one run's log (its rows in any order) for a listing.
///
/// ```
/// use cano::recovery::{log, RunStatus};
/// use cano::CheckpointRow;
///
/// let rows = [CheckpointRow::new(0, "Fetch", "fetch"), CheckpointRow::new(1, "Store", "store")];
/// let summary = log::summarize("import-3", &rows);
/// assert_eq!((summary.last_state.as_str(), summary.rows), ("Store", 2));
/// assert_eq!(summary.status, RunStatus::Forward);
/// ```
pub fn summarize(workflow_id: &str, rows: &[CheckpointRow]) -> super::RunSummary {
    use super::RunStatus;
    let last_sequence = rows.iter().map(|r| r.sequence).max().unwrap_or(0);
    let last_state = rows
        .iter()
        .filter(|r| !r.state.is_empty())
        .max_by_key(|r| r.sequence)
        .map(|r| r.state.clone())
        .unwrap_or_default();
    let plan = plan_resume(workflow_id, rows);
    let version = plan.as_ref().map_or(0, ResumePlan::version);
    let status = match plan {
        Ok(ResumePlan::Rollback { remaining, .. }) => RunStatus::RollingBack {
            remaining: remaining.len(),
        },
        Ok(ResumePlan::Forward {
            wait: Some(ResumeWait::Timer(deadline_ms)),
            ..
        }) => RunStatus::Waiting {
            deadline_ms: Some(deadline_ms),
            signal: None,
        },
        Ok(ResumePlan::Forward {
            wait:
                Some(ResumeWait::Signal {
                    signal,
                    deadline_ms,
                }),
            ..
        }) => RunStatus::Waiting {
            deadline_ms,
            signal: Some(signal),
        },
        Ok(ResumePlan::Forward { .. }) => RunStatus::Forward,
        Err(e) => RunStatus::Malformed(e.message().to_string()),
    };
    super::RunSummary {
        workflow_id: workflow_id.to_string(),
        last_state,
        last_sequence,
        rows: rows.len(),
        status,
        version,
        started_ms: None,
        updated_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(task_id: &str) -> CompletedStep {
        CompletedStep {
            task_id: task_id.to_string(),
            output: b"1".to_vec(),
        }
    }

    fn started(sequence: u64, steps: &[&str]) -> CheckpointRow {
        let steps: Vec<CompletedStep> = steps.iter().map(|s| step(s)).collect();
        rollback_started(sequence, &CanoError::task_execution("boom"), &steps).unwrap()
    }

    fn remaining(rows: &[CheckpointRow]) -> Vec<(usize, String)> {
        match plan_resume("run", rows).unwrap() {
            ResumePlan::Rollback {
                original,
                remaining,
                ..
            } => {
                assert_eq!(original, CanoError::task_execution("boom"));
                remaining.into_iter().map(|(i, s)| (i, s.task_id)).collect()
            }
            plan => panic!("expected a rollback, got {plan:?}"),
        }
    }

    #[test]
    fn constructors_round_trip_through_the_parser() {
        let rows = [
            entry(0, "A".into(), "a".into(), None),
            entry(1, "A".into(), "a".into(), Some(7)),
            cursor(2, "B", "b", b"{\"i\":3}".to_vec()),
            completion(3, "C", "c", b"[1]".to_vec()),
            started(4, &["c"]),
            compensated(5, 0),
        ];
        let parsed: Vec<LogEntry<'_>> = rows.iter().map(|r| parse_row("r", r).unwrap()).collect();
        assert_eq!(
            parsed,
            [
                LogEntry::StateEntry {
                    state: "A",
                    task_id: "a",
                    supersedes: None,
                    resumed: false,
                    writes: None,
                    version: None,
                },
                LogEntry::StateEntry {
                    state: "A",
                    task_id: "a",
                    supersedes: Some(7),
                    resumed: true,
                    writes: None,
                    version: None,
                },
                LogEntry::StepCursor {
                    state: "B",
                    task_id: "b",
                    cursor: b"{\"i\":3}"
                },
                LogEntry::Completion {
                    state: "C",
                    task_id: "c",
                    output: b"[1]"
                },
                LogEntry::RollbackStarted(RollbackRecord {
                    category: "task_execution".into(),
                    message: "boom".into(),
                    steps: vec![step("c")],
                }),
                LogEntry::Compensated { index: 0 },
            ]
        );
    }

    #[test]
    fn a_version_is_read_from_the_first_entry_and_zero_without_one() {
        let mark = EntryMark {
            version: Some(3),
            ..EntryMark::default()
        };
        let first = entry_with(0, "A".into(), "a".into(), mark, DataWrites::default()).unwrap();
        assert_eq!(first.output_blob.as_deref(), Some(&br#"{"version":3}"#[..]));
        let rows = [first, plain_entry(1, "B".into(), "b".into())];
        assert_eq!(plan_resume("r", &rows).unwrap().version(), 3);
        assert_eq!(summarize("r", &rows).version, 3);
        let unversioned = [plain_entry(0, "A".into(), "a".into())];
        assert_eq!(plan_resume("r", &unversioned).unwrap().version(), 0);
        let rolling = [rows[0].clone(), started(1, &["a"])];
        assert_eq!(plan_resume("r", &rolling).unwrap().version(), 3);
    }

    #[test]
    fn blobs_keep_their_on_disk_encoding() {
        assert_eq!(
            entry(0, "A".into(), "".into(), Some(12))
                .output_blob
                .as_deref(),
            Some(&b"12"[..])
        );
        assert_eq!(compensated(0, 3).output_blob.as_deref(), Some(&b"3"[..]));
        assert_eq!(
            started(0, &["a"]).output_blob.as_deref(),
            Some(&br#"{"category":"task_execution","message":"boom","steps":[{"task_id":"a","output":[49]}]}"#[..])
        );
    }

    #[test]
    fn malformed_rows_are_errors_that_name_run_sequence_and_problem() {
        let mut bad_marker = CheckpointRow::new(4, "A", "a");
        bad_marker.output_blob = Some(b"-1".to_vec());
        let mut no_cursor = cursor(5, "A", "a", vec![]);
        no_cursor.output_blob = None;
        let mut bad_record = started(6, &["a"]);
        bad_record.output_blob = Some(b"{\"category\":".to_vec());
        let mut bad_index = compensated(7, 0);
        bad_index.output_blob = Some(b"zero".to_vec());
        for (row, what) in [
            (bad_marker, "supersedes marker \"-1\""),
            (no_cursor, "no cursor"),
            (bad_record, "rollback record does not decode"),
            (bad_index, "step index \"zero\""),
        ] {
            let err = parse_row("order-7", &row).unwrap_err();
            let text = err.to_string();
            assert_eq!(err.category(), "checkpoint_store");
            assert!(text.contains("\"order-7\""), "{text}");
            assert!(
                text.contains(&format!("sequence {}", row.sequence)),
                "{text}"
            );
            assert!(text.contains(what), "{text}");
        }
    }

    #[test]
    fn summaries_say_where_a_run_stands() {
        use crate::recovery::RunStatus;
        let rows = [
            entry(0, "Reserve".into(), "r".into(), None),
            completion(1, "Reserve", "r", b"1".to_vec()),
            started(2, &["r"]),
        ];
        let s = summarize("o", &rows);
        assert_eq!(
            (s.last_state.as_str(), s.last_sequence, s.rows),
            ("Reserve", 2, 3)
        );
        assert_eq!(s.status, RunStatus::RollingBack { remaining: 1 });
        let mut bad = compensated(3, 0);
        bad.output_blob = None;
        let s = summarize("o", &[rows[0].clone(), bad]);
        assert!(matches!(s.status, RunStatus::Malformed(ref m) if m.contains("sequence 3")));
    }

    #[test]
    fn an_empty_log_cannot_be_resumed() {
        let err = plan_resume("gone", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("no checkpoint rows for workflow id \"gone\"")
        );
    }

    #[test]
    fn only_compensated_rows_after_the_latest_start_count() {
        let rows = [
            CheckpointRow::new(0, "A", "a"),
            started(1, &["a", "b"]),
            compensated(2, 1),
            // A later record lists the steps afresh: the row above belongs to the earlier one.
            started(3, &["a", "b"]),
            compensated(4, 0),
        ];
        assert_eq!(remaining(&rows), vec![(1, "b".to_string())]);
    }

    #[test]
    fn rows_of_other_kinds_after_the_start_do_not_count() {
        let rows = [
            started(0, &["a", "b"]),
            completion(1, "A", "a", b"0".to_vec()),
            compensated(2, 1),
        ];
        assert_eq!(remaining(&rows), vec![(0, "a".to_string())]);
    }

    #[test]
    fn a_forward_resume_skips_superseded_and_last_completions() {
        let rows = [
            entry(0, "A".into(), "a".into(), None),
            completion(1, "A", "a", b"1".to_vec()),
            // Resumed at row 1: the re-entry supersedes it.
            entry(2, "A".into(), "a".into(), Some(1)),
            completion(3, "A", "a", b"2".to_vec()),
            entry(4, "B".into(), "b".into(), None),
            completion(5, "B", "b", b"3".to_vec()),
        ];
        let ResumePlan::Forward {
            state,
            last_sequence,
            compensations,
            cursor,
            supersedes,
            ..
        } = plan_resume("r", &rows).unwrap()
        else {
            panic!("expected a forward resume")
        };
        assert_eq!(
            (state, last_sequence, cursor, supersedes),
            ("B", 5, None, Some(5))
        );
        let outputs: Vec<&[u8]> = compensations.iter().map(|s| &s.output[..]).collect();
        assert_eq!(outputs, [&b"2"[..]]);
    }

    #[test]
    fn a_resume_at_a_cursor_carries_it() {
        let rows = [
            entry(0, "S".into(), "s".into(), None),
            cursor(1, "S", "s", b"4".to_vec()),
        ];
        let ResumePlan::Forward {
            state,
            cursor,
            supersedes,
            ..
        } = plan_resume("r", &rows).unwrap()
        else {
            panic!("expected a forward resume")
        };
        assert_eq!(
            (state, cursor, supersedes),
            ("S", Some(b"4".to_vec()), None)
        );
    }
}
