//! The log format's parser on arbitrary rows: it never panics; it accepts exactly the rows
//! the format allows, returns what the engine's constructors put in, and names the run and
//! the sequence of every row it refuses.

use cano::recovery::log::{LogEntry, parse_row, summarize};
use cano::{CheckpointRow, RowKind};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = RowKind> {
    prop_oneof![
        Just(RowKind::StateEntry),
        Just(RowKind::StepCursor),
        Just(RowKind::CompensationCompletion),
        Just(RowKind::RollbackStarted),
        Just(RowKind::Compensated),
        Just(RowKind::Timer),
        Just(RowKind::SignalWait),
        Just(RowKind::Signal),
        Just(RowKind::SplitMember),
    ]
}

/// JSON blobs of the newer row kinds, well formed and not.
const JSON_BLOBS: &[&str] = &[
    r#"{"resumed":true,"supersedes":3}"#,
    r#"{"set":{"k":{"type":"u8","value":1}},"removed":["x"]}"#,
    r#"{"supersedes":null}"#,
    r#"{}"#,
    r#"{"category":1}"#,
    r#"{"resumed":"yes"}"#,
    r#"{"set":{"k":{"type":"u8"}}}"#,
    r#"{"removed":null}"#,
    r#"{"version":2,"resumed":true}"#,
    r#"{"version":-1}"#,
    r#"{"version":4294967296}"#,
    r#"{"signal":"approval","deadline_ms":null}"#,
    r#"{"signal":"approval","deadline_ms":5}"#,
    r#"{"signal":1}"#,
    r#"{"signal":"a","id":"1","payload":{"ok":true}}"#,
    r#"{"signal":"a","id":"1"}"#,
];

fn blob() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        any::<u64>().prop_map(|n| Some(n.to_string().into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
        Just(Some(
            br#"{"category":"timeout","message":"m","steps":[{"task_id":"t","output":[1,2]}]}"#
                .to_vec()
        )),
        Just(Some(
            br#"{"category":"timeout","message":"m","steps":[{"task_id":"t""#.to_vec()
        )),
        proptest::sample::select(JSON_BLOBS).prop_map(|b| Some(b.as_bytes().to_vec())),
    ]
}

fn json(b: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(b).ok()
}

/// What a state entry's JSON record may hold.
fn entry_record_ok(v: &serde_json::Value) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    let stored_ok = |e: &serde_json::Value| {
        e.as_object().is_some_and(|e| {
            e.get("type").is_some_and(|t| t.is_string()) && e.contains_key("value")
        })
    };
    let known = ["resumed", "supersedes", "set", "removed", "version"];
    o.keys().all(|k| known.contains(&k.as_str()))
        && o.get("resumed").is_none_or(|r| r.is_boolean())
        && o.get("supersedes")
            .is_none_or(|s| s.is_null() || s.is_u64())
        && o.get("set")
            .is_none_or(|s| s.as_object().is_some_and(|m| m.values().all(stored_ok)))
        && o.get("version")
            .is_none_or(|v| v.is_null() || v.as_u64().is_some_and(|v| u32::try_from(v).is_ok()))
        && o.get("removed").is_none_or(|r| {
            r.as_array()
                .is_some_and(|a| a.iter().all(|k| k.is_string()))
        })
}

fn row() -> impl Strategy<Value = CheckpointRow> {
    (any::<u64>(), ".{0,8}", ".{0,8}", blob(), kind()).prop_map(
        |(sequence, state, task_id, output_blob, kind)| CheckpointRow {
            sequence,
            state,
            task_id,
            output_blob,
            kind,
        },
    )
}

fn is_decimal(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(b).is_ok_and(|t| t.parse::<u64>().is_ok())
}

proptest! {
    #[test]
    fn the_parser_accepts_exactly_the_format(row in row()) {
        let parsed = parse_row("run-1", &row);
        let blob = row.output_blob.as_deref();
        let allowed = match (row.kind, blob) {
            (RowKind::StateEntry, None) => true,
            (RowKind::StateEntry, Some(b)) if b.first() == Some(&b'{') => {
                json(b).is_some_and(|v| entry_record_ok(&v))
            }
            (RowKind::StateEntry, Some(b)) => is_decimal(b),
            (RowKind::Timer, Some(b)) => is_decimal(b),
            (RowKind::SplitMember, Some(b)) => {
                is_decimal(b) && std::str::from_utf8(b).is_ok_and(|t| t.parse::<usize>().is_ok())
            }
            (RowKind::SignalWait, Some(b)) => json(b).is_some_and(|v| {
                v["signal"].is_string()
                    && v.get("deadline_ms").is_none_or(|d| d.is_null() || d.is_u64())
            }),
            (RowKind::Signal, Some(b)) => json(b).is_some_and(|v| {
                v["signal"].is_string() && v["id"].is_string() && v.get("payload").is_some()
            }),
            (RowKind::Compensated, Some(b)) => {
                is_decimal(b) && std::str::from_utf8(b).is_ok_and(|t| t.parse::<usize>().is_ok())
            }
            (RowKind::StepCursor | RowKind::CompensationCompletion, Some(_)) => true,
            (RowKind::RollbackStarted, Some(b)) => {
                serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|v| v["steps"].is_array())
            }
            _ => false,
        };
        match parsed {
            Ok(entry) => {
                prop_assert!(allowed, "accepted {row:?}");
                match entry {
                    LogEntry::StateEntry { state, task_id, supersedes, resumed, writes, version } => {
                        prop_assert_eq!(state, row.state.as_str());
                        prop_assert_eq!(task_id, row.task_id.as_str());
                        match blob {
                            None => prop_assert!(supersedes.is_none() && !resumed && writes.is_none() && version.is_none()),
                            Some(b) if b.first() == Some(&b'{') => {
                                let v = json(b).unwrap_or_default();
                                prop_assert_eq!(supersedes, v["supersedes"].as_u64());
                                prop_assert_eq!(resumed, v["resumed"].as_bool().unwrap_or(false));
                                prop_assert_eq!(version.map(u64::from), v["version"].as_u64());
                                let written = writes.map_or(0, |w| w.set.len() + w.removed.len());
                                let listed = v["set"].as_object().map_or(0, |m| m.len())
                                    + v["removed"].as_array().map_or(0, |a| a.len());
                                prop_assert_eq!(written, listed);
                            }
                            // The decimal marker of earlier versions: a re-entry.
                            Some(b) => {
                                prop_assert_eq!(supersedes.map(|s| s.to_string().into_bytes()), Some(b.to_vec()));
                                prop_assert!(resumed);
                            }
                        }
                    }
                    LogEntry::SplitMember { index, .. } => {
                        prop_assert_eq!(Some(index.to_string().into_bytes()), row.output_blob.clone());
                    }
                    LogEntry::Timer { deadline_ms, .. } => {
                        prop_assert_eq!(Some(deadline_ms.to_string().into_bytes()), row.output_blob.clone());
                    }
                    LogEntry::SignalWait { signal, .. } => {
                        let v = json(blob.unwrap_or_default()).unwrap_or_default();
                        prop_assert_eq!(v["signal"].as_str(), Some(signal.as_str()));
                    }
                    LogEntry::Signal { signal, .. } => {
                        let v = json(blob.unwrap_or_default()).unwrap_or_default();
                        prop_assert_eq!(v["id"].as_str(), Some(signal.id.as_str()));
                    }
                    LogEntry::StepCursor { cursor, .. } => prop_assert_eq!(Some(cursor), blob),
                    LogEntry::Completion { output, .. } => prop_assert_eq!(Some(output), blob),
                    LogEntry::RollbackStarted(record) => prop_assert_eq!(record.steps.len(), 1),
                    LogEntry::Compensated { index } => {
                        prop_assert_eq!(Some(index.to_string().into_bytes()), row.output_blob.clone());
                    }
                    other => prop_assert!(false, "unexpected entry {other:?}"),
                }
            }
            Err(e) => {
                prop_assert!(!allowed, "refused {row:?}: {e}");
                let text = e.to_string();
                prop_assert_eq!(e.category(), "checkpoint_store");
                prop_assert!(text.contains("\"run-1\""), "{}", text);
                let needle = format!("sequence {}", row.sequence);
                prop_assert!(text.contains(&needle), "{}", text);
            }
        }
    }

    #[test]
    fn a_summary_of_any_log_never_panics(rows in proptest::collection::vec(row(), 0..8)) {
        let summary = summarize("run-1", &rows);
        prop_assert_eq!(summary.rows, rows.len());
    }
}
