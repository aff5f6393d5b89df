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
    ]
}

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
    ]
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
            (RowKind::StateEntry, Some(b)) => is_decimal(b),
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
                    LogEntry::StateEntry { state, task_id, supersedes } => {
                        prop_assert_eq!(state, row.state.as_str());
                        prop_assert_eq!(task_id, row.task_id.as_str());
                        prop_assert_eq!(supersedes.map(|s| s.to_string().into_bytes()), row.output_blob.clone());
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
