//! What the commands report, and the reference of their `--json` output.
//!
//! Every value here is built from what `cano` decodes ([`log::summarize`] and
//! [`log::parse_row`]); nothing reads a checkpoint row's blob by hand. Times are
//! milliseconds since the Unix epoch (`*_ms`) with the same instant as RFC 3339 text in UTC
//! beside them. Fields that do not apply are `null` (never missing), so scripts can rely on
//! every key being present.
//!
//! # `cano runs list --json`
//!
//! An array of runs, by run id:
//!
//! | key | value |
//! |---|---|
//! | `run_id` | the run's id |
//! | `status` | `"failed"`, `"rolling-back"`, `"waiting"` or `"malformed"`; on a PostgreSQL store `"running"` for a run a worker holds a live lease on (with `lease_holder` and `lease_until_ms`) and `"running-or-failed"` instead of `"failed"` for the others unless the store recorded their failure (see `cano runs list --help`) |
//! | `last_state` | the state of the last row that names one (`""` if none) |
//! | `last_sequence` | the sequence of the log's last row |
//! | `rows` | how many rows the log holds |
//! | `signal` | the signal a waiting run waits for, or `null` (a timer) |
//! | `deadline_ms`, `deadline` | when a waiting run's wait ends, or `null` |
//! | `compensations_left` | a rolling-back run's steps still to undo, or `null` |
//! | `problem` | why a malformed log does not follow the format, or `null` |
//! | `version` | the workflow version the run was started under (0 when its log names none) |
//! | `started_ms`, `started` | when the run's first row was written, or `null` when the store does not know (a redb file written before cano kept times) |
//! | `updated_ms`, `updated` | when the run's last row was written, or `null` (the same) |
//! | `error` | the error a failed run returned, when the store recorded it (runs started with `Workflow::with_run_writers`), or `null` |
//!
//! # `cano runs show RUN_ID --json`
//!
//! An object: `run` (a run as listed above), `why` (where it stopped and why, in words),
//! `pending_signals` (the signals sent to a run that waits for one and not consumed yet:
//! `{"name", "id", "payload"}`) and `path`, the log's rows in sequence order, each an object
//! with `sequence` and `kind` and the members of its kind:
//!
//! | `kind` | members |
//! |---|---|
//! | `state_entry` | `state`, `task_id`, `visit` (how many fresh entries of this state so far, this one included), `version` (the workflow version the run was started under, on its first row, or `null`), `resumed` (the first entry of a resumed run: a re-entry, not a new visit), `supersedes` (the completion row it replaces, or `null`), `data_set` (run data keys set since the previous entry row, with their values), `data_removed` (keys removed) |
//! | `step_cursor` | `state`, `task_id`, `cursor` (JSON) |
//! | `completion` | `state`, `task_id`, `output` (a saga step's output, JSON) |
//! | `timer` | `state`, `task_id`, `deadline_ms`, `deadline` |
//! | `signal_wait` | `state`, `task_id`, `signal`, `deadline_ms`, `deadline` |
//! | `signal` | `state`, `task_id`, `signal`, `id`, `payload` (JSON) |
//! | `split_member` | `state`, `index` |
//! | `rollback_started` | `category`, `message` (the error that caused it), `steps` (task ids to undo, oldest first) |
//! | `compensated` | `index`, `task_id` (the step undone) |
//! | `malformed` | `problem` (the row does not follow the format) |
//!
//! # `cano runs purge --json`
//!
//! `{"purged": [run ids]}`.

use cano::CheckpointRow;
use cano::recovery::log::{self, LogEntry};
use cano::recovery::{RunStatus, RunSummary};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A run as `runs list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// The run's id.
    pub run_id: String,
    /// The status's name ([`status_name`]).
    pub status: &'static str,
    /// The state of the last row that names one.
    pub last_state: String,
    /// The sequence of the log's last row.
    pub last_sequence: u64,
    /// How many rows the log holds.
    pub rows: usize,
    /// The signal a waiting run waits for.
    pub signal: Option<String>,
    /// When a waiting run's wait ends (ms since the epoch).
    pub deadline_ms: Option<u64>,
    /// The same, as RFC 3339 text.
    pub deadline: Option<String>,
    /// A rolling-back run's steps still to undo.
    pub compensations_left: Option<usize>,
    /// Why a malformed log does not follow the format.
    pub problem: Option<String>,
    /// The workflow version the run was started under (0: none named).
    pub version: u32,
    /// When the run's first row was written (ms since the epoch), if the store knows.
    pub started_ms: Option<u64>,
    /// The same, as RFC 3339 text.
    pub started: Option<String>,
    /// When the run's last row was written (ms since the epoch), if the store knows.
    pub updated_ms: Option<u64>,
    /// The same, as RFC 3339 text.
    pub updated: Option<String>,
    /// The error a failed run returned, if the store recorded it.
    pub error: Option<String>,
    /// The worker holding a live lease on the run (PostgreSQL): then it is `running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_holder: Option<String>,
    /// When that lease ends unless renewed (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<u64>,
    /// The status as the library reports it (not serialized).
    #[serde(skip)]
    pub raw: RunStatus,
}

impl RunView {
    /// The view of a run the store summarized; `live`: other processes may be running
    /// runs in the store while the CLI reads it (a database, not a redb file).
    pub fn new(summary: &RunSummary, live: bool) -> Self {
        let (mut signal, mut deadline_ms, mut compensations_left, mut problem, mut error) =
            (None, None, None, None, None);
        match &summary.status {
            RunStatus::Waiting {
                deadline_ms: d,
                signal: s,
            } => {
                signal.clone_from(s);
                deadline_ms = *d;
            }
            RunStatus::RollingBack { remaining } => compensations_left = Some(*remaining),
            RunStatus::Malformed(why) => problem = Some(why.clone()),
            RunStatus::Failed { error: e } => error = Some(e.clone()),
            _ => {}
        }
        Self {
            run_id: summary.workflow_id.clone(),
            status: status_name(&summary.status, live),
            last_state: summary.last_state.clone(),
            last_sequence: summary.last_sequence,
            rows: summary.rows,
            signal,
            deadline_ms,
            deadline: deadline_ms.map(rfc3339),
            compensations_left,
            problem,
            version: summary.version,
            started_ms: summary.started_ms,
            started: summary.started_ms.map(rfc3339),
            updated_ms: summary.updated_ms,
            updated: summary.updated_ms.map(rfc3339),
            error,
            lease_holder: None,
            lease_until_ms: None,
            raw: summary.status.clone(),
        }
    }

    /// Mark the run as held by `worker`'s live lease until `until_ms`: it is `running`.
    pub fn held(&mut self, worker: String, until_ms: u64) {
        self.status = "running";
        self.lease_holder = Some(worker);
        self.lease_until_ms = Some(until_ms);
    }

    /// What the run waits for or what is left of it, in words (`""` when nothing).
    pub fn detail(&self, now_ms: u64) -> String {
        let until = |d: u64| format!("until {} ({})", utc_text(d), relative(d, now_ms));
        match (&self.signal, self.deadline_ms) {
            (Some(signal), Some(d)) => return format!("signal {signal:?} {}", until(d)),
            (Some(signal), None) => return format!("signal {signal:?}, no deadline"),
            (None, Some(d)) => return format!("timer {}", until(d)),
            (None, None) => {}
        }
        if let (Some(worker), Some(lease_end)) = (&self.lease_holder, self.lease_until_ms) {
            return format!("held by worker {worker:?}, lease {}", until(lease_end));
        }
        if let Some(left) = self.compensations_left {
            return format!("{left} compensation(s) left");
        }
        if let Some(problem) = &self.problem {
            return problem.clone();
        }
        if let Some(error) = &self.error {
            return format!("error: {}", first_line(error, 100));
        }
        String::new()
    }
}

/// The first line of `text`, cut at `max` characters (with `…` when cut).
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut cut: String = line.chars().take(max).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The name `runs list` gives a status. A store file that the CLI could open has no
/// process working on it, so a run that went forward as far as its log shows has stopped:
/// it returned an error or its process died (`failed`). In a `live` store (a database
/// other processes use) such a run may as well be running now: the log cannot tell,
/// unless the store recorded the run's failure ([`RunStatus::Failed`]).
pub fn status_name(status: &RunStatus, live: bool) -> &'static str {
    match status {
        RunStatus::Failed { .. } => "failed",
        RunStatus::Forward if live => "running-or-failed",
        RunStatus::Forward => "failed",
        RunStatus::RollingBack { .. } => "rolling-back",
        RunStatus::Waiting { .. } => "waiting",
        RunStatus::Malformed(_) => "malformed",
        _ => "unknown",
    }
}

/// One row of a run's log, decoded, as `runs show` reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PathRow {
    /// The run entered a state.
    StateEntry {
        /// The row's sequence.
        sequence: u64,
        /// The state.
        state: String,
        /// Its task.
        task_id: String,
        /// Fresh entries of this state so far, this one included.
        visit: u64,
        /// The workflow version the run was started under (on its first row).
        version: Option<u32>,
        /// The re-entry of a resumed run.
        resumed: bool,
        /// The completion row this re-entry replaces.
        supersedes: Option<u64>,
        /// Run data set since the previous entry row.
        data_set: BTreeMap<String, Value>,
        /// Run data removed since the previous entry row.
        data_removed: Vec<String>,
    },
    /// A stepped task's cursor.
    StepCursor {
        /// The row's sequence.
        sequence: u64,
        /// The state.
        state: String,
        /// Its task.
        task_id: String,
        /// The cursor.
        cursor: Value,
    },
    /// A saga step finished.
    Completion {
        /// The row's sequence.
        sequence: u64,
        /// The state.
        state: String,
        /// Its task.
        task_id: String,
        /// The step's output.
        output: Value,
    },
    /// A timer waits.
    Timer {
        /// The row's sequence.
        sequence: u64,
        /// The state.
        state: String,
        /// Its task.
        task_id: String,
        /// The deadline (ms since the epoch).
        deadline_ms: u64,
        /// The deadline, RFC 3339.
        deadline: String,
    },
    /// A signal state waits.
    SignalWait {
        /// The row's sequence.
        sequence: u64,
        /// The state.
        state: String,
        /// Its task.
        task_id: String,
        /// The signal's name.
        signal: String,
        /// The timeout's deadline (ms since the epoch).
        deadline_ms: Option<u64>,
        /// The deadline, RFC 3339.
        deadline: Option<String>,
    },
    /// A signal was consumed.
    Signal {
        /// The row's sequence.
        sequence: u64,
        /// The state.
        state: String,
        /// Its task.
        task_id: String,
        /// The signal's name.
        signal: String,
        /// The sender's id.
        id: String,
        /// The payload.
        payload: Value,
    },
    /// A split member finished.
    SplitMember {
        /// The row's sequence.
        sequence: u64,
        /// The split state.
        state: String,
        /// The member's index.
        index: usize,
    },
    /// A rollback began.
    RollbackStarted {
        /// The row's sequence.
        sequence: u64,
        /// The error's category.
        category: String,
        /// The error's message.
        message: String,
        /// The steps to undo (task ids, oldest first).
        steps: Vec<String>,
    },
    /// A step of the rollback was undone.
    Compensated {
        /// The row's sequence.
        sequence: u64,
        /// The step's index in the rollback's list.
        index: usize,
        /// The step's task (`null` if the list has no such index).
        task_id: Option<String>,
    },
    /// A row that does not follow the format.
    Malformed {
        /// The row's sequence.
        sequence: u64,
        /// What is wrong.
        problem: String,
    },
}

impl PathRow {
    /// Decode a run's rows (sorted by sequence) with [`log::parse_row`]. A row that does
    /// not decode becomes [`PathRow::Malformed`]; the others are still shown.
    pub fn decode(run_id: &str, rows: &[CheckpointRow]) -> Vec<PathRow> {
        let mut visits: BTreeMap<&str, u64> = BTreeMap::new();
        let mut rollback_steps: Vec<String> = Vec::new();
        let mut path = Vec::with_capacity(rows.len());
        for row in rows {
            let sequence = row.sequence;
            let entry = match log::parse_row(run_id, row) {
                Ok(entry) => entry,
                Err(e) => {
                    path.push(PathRow::Malformed {
                        sequence,
                        problem: e.message().to_string(),
                    });
                    continue;
                }
            };
            path.push(match entry {
                LogEntry::StateEntry {
                    state,
                    task_id,
                    supersedes,
                    resumed,
                    writes,
                    version,
                } => {
                    let visit = visits.entry(state).or_default();
                    if !resumed {
                        *visit += 1;
                    }
                    let (data_set, data_removed) = writes.map_or_else(Default::default, |w| {
                        (
                            w.set.into_iter().map(|(k, v)| (k, v.value)).collect(),
                            w.removed,
                        )
                    });
                    PathRow::StateEntry {
                        sequence,
                        state: state.to_string(),
                        task_id: task_id.to_string(),
                        visit: (*visit).max(1),
                        version,
                        resumed,
                        supersedes,
                        data_set,
                        data_removed,
                    }
                }
                LogEntry::StepCursor {
                    state,
                    task_id,
                    cursor,
                } => PathRow::StepCursor {
                    sequence,
                    state: state.to_string(),
                    task_id: task_id.to_string(),
                    cursor: json(cursor),
                },
                LogEntry::Completion {
                    state,
                    task_id,
                    output,
                } => PathRow::Completion {
                    sequence,
                    state: state.to_string(),
                    task_id: task_id.to_string(),
                    output: json(output),
                },
                LogEntry::Timer {
                    state,
                    task_id,
                    deadline_ms,
                } => PathRow::Timer {
                    sequence,
                    state: state.to_string(),
                    task_id: task_id.to_string(),
                    deadline_ms,
                    deadline: rfc3339(deadline_ms),
                },
                LogEntry::SignalWait {
                    state,
                    task_id,
                    signal,
                    deadline_ms,
                } => PathRow::SignalWait {
                    sequence,
                    state: state.to_string(),
                    task_id: task_id.to_string(),
                    signal,
                    deadline_ms,
                    deadline: deadline_ms.map(rfc3339),
                },
                LogEntry::Signal {
                    state,
                    task_id,
                    signal,
                } => PathRow::Signal {
                    sequence,
                    state: state.to_string(),
                    task_id: task_id.to_string(),
                    payload: json(&signal.payload),
                    signal: signal.name,
                    id: signal.id,
                },
                LogEntry::SplitMember { state, index } => PathRow::SplitMember {
                    sequence,
                    state: state.to_string(),
                    index,
                },
                LogEntry::RollbackStarted(record) => {
                    rollback_steps = record.steps.iter().map(|s| s.task_id.clone()).collect();
                    PathRow::RollbackStarted {
                        sequence,
                        category: record.category,
                        message: record.message,
                        steps: rollback_steps.clone(),
                    }
                }
                LogEntry::Compensated { index } => PathRow::Compensated {
                    sequence,
                    index,
                    task_id: rollback_steps.get(index).cloned(),
                },
                other => PathRow::Malformed {
                    sequence,
                    problem: format!("a row this version of the cano CLI cannot show: {other:?}"),
                },
            });
        }
        path
    }

    /// The row's sequence.
    pub fn sequence(&self) -> u64 {
        match self {
            PathRow::StateEntry { sequence, .. }
            | PathRow::StepCursor { sequence, .. }
            | PathRow::Completion { sequence, .. }
            | PathRow::Timer { sequence, .. }
            | PathRow::SignalWait { sequence, .. }
            | PathRow::Signal { sequence, .. }
            | PathRow::SplitMember { sequence, .. }
            | PathRow::RollbackStarted { sequence, .. }
            | PathRow::Compensated { sequence, .. }
            | PathRow::Malformed { sequence, .. } => *sequence,
        }
    }
}

/// A signal sent to a run and not consumed yet.
#[derive(Debug, Clone, Serialize)]
pub struct PendingSignal {
    /// The signal's name.
    pub name: String,
    /// The sender's id.
    pub id: String,
    /// The payload.
    pub payload: Value,
}

impl PendingSignal {
    /// The view of a stored signal.
    pub fn new(signal: &cano::Signal) -> Self {
        Self {
            name: signal.name.clone(),
            id: signal.id.clone(),
            payload: json(&signal.payload),
        }
    }
}

/// What `runs show --json` prints.
#[derive(Debug, Serialize)]
pub struct ShowView {
    /// The run, as listed.
    pub run: RunView,
    /// Where it stopped and why, in words.
    pub why: String,
    /// Signals pending for the run.
    pub pending_signals: Vec<PendingSignal>,
    /// Its rows, decoded.
    pub path: Vec<PathRow>,
}

/// What `runs purge --json` prints.
#[derive(Debug, Serialize)]
pub struct PurgeView {
    /// The runs whose logs were cleared.
    pub purged: Vec<String>,
}

/// A blob that holds JSON, as a value; one that does not, as its (lossy) text.
fn json(blob: &[u8]) -> Value {
    serde_json::from_slice(blob)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(blob).into_owned()))
}

/// Milliseconds since the epoch as RFC 3339 text in UTC (`2026-12-05T18:40:00.000Z`).
pub fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms since the epoch"),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
}

/// Milliseconds since the epoch as a table cell, in UTC (`2026-12-05 18:40:00`); `-`
/// when not known.
pub fn utc_cell(ms: Option<u64>) -> String {
    ms.and_then(|ms| i64::try_from(ms).ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

/// When `--since WHEN` starts, in milliseconds since the epoch, given `now_ms`: `WHEN` is
/// an RFC 3339 time (`2026-12-05T21:30:00Z`) or an age before now, a whole number and a
/// unit: `s`, `m`, `h`, `d` or `w` (`30m`, `2h`, `7d`).
///
/// # Errors
/// What is wrong with `when`, and what it may be.
pub fn since_ms(when: &str, now_ms: u64) -> Result<u64, String> {
    let when = when.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(when) {
        return u64::try_from(t.timestamp_millis()).map_err(|_| format!("{when:?} is before 1970"));
    }
    let expected = "expected an RFC 3339 time (2026-12-05T21:30:00Z) or an age such as 30m, \
                    2h, 7d (units s, m, h, d, w)";
    let split = when
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&at| at > 0)
        .ok_or_else(|| format!("{when:?}: {expected}"))?;
    let (number, unit) = when.split_at(split);
    let unit_ms: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(format!("{when:?}: unknown unit {unit:?}; {expected}")),
    };
    let age = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .ok_or_else(|| format!("{when:?}: the number is too large"))?;
    Ok(now_ms.saturating_sub(age))
}

/// Milliseconds since the epoch as text for people (`2026-12-05 18:40:00 UTC`).
pub fn utc_text(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms since the epoch"),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// How far `ms` is from `now_ms`: `in 6 d 23 h`, `3 min 4 s ago`.
pub fn relative(ms: u64, now_ms: u64) -> String {
    let span = |s: u64| match s {
        86_400.. => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        3600.. => format!("{} h {} min", s / 3600, s % 3600 / 60),
        60.. => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{s} s"),
    };
    if ms >= now_ms {
        format!("in {}", span((ms - now_ms).div_ceil(1000)))
    } else {
        format!("passed {} ago", span((now_ms - ms) / 1000))
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_utc() {
        assert_eq!(rfc3339(1_764_950_400_000), "2025-12-05T16:00:00.000Z");
        assert_eq!(utc_text(1_764_950_400_000), "2025-12-05 16:00:00 UTC");
        assert_eq!(relative(10_000 + 90_500, 10_000), "in 1 min 31 s");
        assert_eq!(relative(0, 7_200_000), "passed 2 h 0 min ago");
        assert!(relative(u64::MAX, 0).starts_with("in "));
    }

    #[test]
    fn since_takes_a_time_or_an_age() {
        let now = 1_764_950_400_000; // 2025-12-05T16:00:00Z
        assert_eq!(since_ms("30m", now), Ok(now - 30 * 60_000));
        assert_eq!(since_ms("2h", now), Ok(now - 7_200_000));
        assert_eq!(since_ms("7d", now), Ok(now - 7 * 86_400_000));
        assert_eq!(since_ms("45s", now), Ok(now - 45_000));
        assert_eq!(since_ms("1w", now), Ok(now - 7 * 86_400_000));
        assert_eq!(since_ms("2025-12-05T15:00:00Z", now), Ok(now - 3_600_000));
        assert_eq!(
            since_ms("2025-12-05T16:00:00+01:00", now),
            Ok(now - 3_600_000)
        );
        for bad in [
            "",
            "m",
            "30",
            "30x",
            "-5m",
            "yesterday",
            "99999999999999999999d",
        ] {
            let err = since_ms(bad, now).unwrap_err();
            assert!(
                err.contains("expected") || err.contains("too large"),
                "{bad}: {err}"
            );
        }
        assert_eq!(utc_cell(Some(now)), "2025-12-05 16:00:00");
        assert_eq!(utc_cell(None), "-");
        assert_eq!(first_line("boom\nat line 2", 100), "boom…");
        assert_eq!(first_line("boom", 100), "boom");
        assert_eq!(first_line("abcdef", 3), "abc…");
    }

    #[test]
    fn rows_decode_through_the_log_module() {
        let mut timer = CheckpointRow::new(1, "Wait", "wait");
        timer.kind = cano::RowKind::Timer;
        timer.output_blob = Some(b"1764950400000".to_vec());
        let mut broken = CheckpointRow::new(2, "Wait", "wait");
        broken.kind = cano::RowKind::Timer;
        broken.output_blob = Some(b"soon".to_vec());
        let rows = [CheckpointRow::new(0, "Wait", "wait"), timer, broken];
        let path = PathRow::decode("r", &rows);
        assert!(matches!(
            &path[0],
            PathRow::StateEntry {
                visit: 1,
                resumed: false,
                ..
            }
        ));
        assert!(
            matches!(&path[1], PathRow::Timer { deadline, .. } if deadline == "2025-12-05T16:00:00.000Z")
        );
        assert!(
            matches!(&path[2], PathRow::Malformed { problem, .. } if problem.contains("\"soon\""))
        );
        let text = serde_json::to_value(&path[1]).unwrap();
        assert_eq!(text["kind"], "timer");
        assert_eq!(text["deadline_ms"], 1_764_950_400_000_u64);
    }
}
