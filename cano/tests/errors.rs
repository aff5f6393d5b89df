//! `CanoError`: constructors, `category()`, `message()`, `Display`, equality and the
//! `From` conversions.

use cano::prelude::*;
use cano::store::StoreError;
use std::error::Error as _;

/// One value of every variant, with its category and Display text (the same as 0.12.0's).
fn every_variant() -> Vec<(CanoError, &'static str, &'static str)> {
    vec![
        (
            CanoError::task_execution("m"),
            "task_execution",
            "Task execution error: m",
        ),
        (CanoError::store("m"), "store", "Store error: m"),
        (CanoError::workflow("m"), "workflow", "Workflow error: m"),
        (
            CanoError::configuration("m"),
            "configuration",
            "Configuration error: m",
        ),
        (
            CanoError::retry_exhausted("m"),
            "retry_exhausted",
            "Retry exhausted: m",
        ),
        (CanoError::timeout("m"), "timeout", "Timeout error: m"),
        (
            CanoError::circuit_open("m"),
            "circuit_open",
            "Circuit open: m",
        ),
        (
            CanoError::checkpoint_store("m"),
            "checkpoint_store",
            "Checkpoint store error: m",
        ),
        (
            CanoError::compensation_failed(vec![CanoError::generic("m")]),
            "compensation_failed",
            "Compensation failed (1 error(s)); original: Error: m",
        ),
        (CanoError::generic("m"), "generic", "Error: m"),
        (
            CanoError::resource_not_found("m"),
            "resource_not_found",
            "Resource not found: m",
        ),
        (
            CanoError::resource_type_mismatch("m"),
            "resource_type_mismatch",
            "Resource type mismatch: m",
        ),
        (
            CanoError::resource_duplicate_key("m"),
            "resource_duplicate_key",
            "Resource duplicate key: m",
        ),
    ]
}

#[test]
fn every_variant_has_its_category_message_and_display() {
    let all = every_variant();
    assert_eq!(all.len(), 13);
    for (err, category, display) in all {
        assert_eq!(err.category(), category, "{err:?}");
        assert_eq!(err.message(), "m", "{err:?}");
        assert_eq!(err.to_string(), display, "{err:?}");
    }
}

#[test]
fn constructors_store_the_message_verbatim_and_pick_the_variant() {
    assert!(matches!(CanoError::task_execution("a b"), CanoError::TaskExecution(m) if m == "a b"));
    assert!(matches!(CanoError::store(String::from("s")), CanoError::Store(m) if m == "s"));
    assert!(matches!(CanoError::workflow("w"), CanoError::Workflow(m) if m == "w"));
    assert!(matches!(CanoError::configuration("c"), CanoError::Configuration(m) if m == "c"));
    assert!(matches!(CanoError::retry_exhausted("r"), CanoError::RetryExhausted(m) if m == "r"));
    assert!(matches!(CanoError::timeout("t"), CanoError::Timeout(m) if m == "t"));
    assert!(matches!(CanoError::circuit_open("o"), CanoError::CircuitOpen(m) if m == "o"));
    assert!(matches!(CanoError::checkpoint_store("k"), CanoError::CheckpointStore(m) if m == "k"));
    assert!(matches!(CanoError::generic("g"), CanoError::Generic(m) if m == "g"));
    assert!(
        matches!(CanoError::resource_not_found("n"), CanoError::ResourceNotFound(m) if m == "n")
    );
    assert!(
        matches!(CanoError::resource_type_mismatch("y"), CanoError::ResourceTypeMismatch(m) if m == "y")
    );
    assert!(
        matches!(CanoError::resource_duplicate_key("d"), CanoError::ResourceDuplicateKey(m) if m == "d")
    );
    assert!(matches!(
        CanoError::compensation_failed(vec![CanoError::timeout("x")]),
        CanoError::CompensationFailed { errors } if errors == vec![CanoError::timeout("x")]
    ));
}

#[test]
fn compensation_failed_message_is_the_first_errors_raw_message() {
    let e = CanoError::compensation_failed(vec![
        CanoError::task_execution("forward broke"),
        CanoError::generic("undo broke"),
    ]);
    assert_eq!(e.message(), "forward broke");

    let nested = CanoError::compensation_failed(vec![CanoError::compensation_failed(vec![
        CanoError::timeout("deep"),
    ])]);
    assert_eq!(nested.message(), "deep");

    assert_eq!(
        CanoError::compensation_failed(vec![]).message(),
        "compensation failed"
    );
}

#[test]
fn compensation_failed_display_lists_the_original_then_each_compensation() {
    let two = CanoError::compensation_failed(vec![
        CanoError::task_execution("D forward failed"),
        CanoError::generic("B compensate failed"),
    ]);
    let text = two.to_string();
    assert!(text.contains("Compensation failed (2 error(s))"), "{text}");
    assert!(
        text.contains("original: Task execution error: D forward failed"),
        "{text}"
    );
    assert!(
        text.contains("compensation #1: Error: B compensate failed"),
        "{text}"
    );

    let three = CanoError::compensation_failed(vec![
        CanoError::generic("a"),
        CanoError::timeout("b"),
        CanoError::store("c"),
    ]);
    assert_eq!(
        three.to_string(),
        "Compensation failed (3 error(s)); original: Error: a; compensation #1: Timeout error: b; compensation #2: Store error: c"
    );
    assert_eq!(
        CanoError::compensation_failed(vec![]).to_string(),
        "Compensation failed (0 error(s))"
    );
}

#[test]
fn equality_requires_the_same_variant_and_the_same_payload() {
    assert_eq!(CanoError::timeout("x"), CanoError::timeout("x"));
    assert_ne!(CanoError::timeout("x"), CanoError::timeout("y"));
    assert_ne!(CanoError::timeout("x"), CanoError::circuit_open("x"));
    assert_ne!(CanoError::generic("x"), CanoError::task_execution("x"));
    assert_ne!(
        CanoError::compensation_failed(vec![CanoError::generic("x")]),
        CanoError::generic("x")
    );
    assert_eq!(
        CanoError::compensation_failed(vec![CanoError::generic("x"), CanoError::store("y")]),
        CanoError::compensation_failed(vec![CanoError::generic("x"), CanoError::store("y")])
    );
    assert_ne!(
        CanoError::compensation_failed(vec![CanoError::generic("x"), CanoError::store("y")]),
        CanoError::compensation_failed(vec![CanoError::generic("x"), CanoError::store("z")])
    );
    assert_ne!(
        CanoError::compensation_failed(vec![CanoError::generic("x")]),
        CanoError::compensation_failed(vec![CanoError::generic("x"), CanoError::generic("x")])
    );
}

#[test]
fn every_variant_equals_its_clone_and_differs_from_every_other_variant() {
    let all = every_variant();
    for (i, (a, ..)) in all.iter().enumerate() {
        assert_eq!(a, &a.clone());
        for (j, (b, ..)) in all.iter().enumerate() {
            if i != j {
                assert_ne!(a, b, "{a:?} vs {b:?}");
            }
        }
    }
}

#[test]
fn strings_convert_into_generic_errors() {
    let from_str: CanoError = "plain".into();
    assert_eq!(from_str, CanoError::Generic("plain".to_string()));
    let from_string: CanoError = String::from("owned").into();
    assert_eq!(from_string, CanoError::Generic("owned".to_string()));
    assert_eq!(from_string.to_string(), "Error: owned");
}

#[test]
fn io_errors_convert_into_generic_errors_mentioning_io() {
    let io = std::io::Error::new(std::io::ErrorKind::NotFound, "disk gone");
    let err: CanoError = io.into();
    assert_eq!(err.category(), "generic");
    assert!(err.message().contains("IO error"), "{err}");
    assert!(err.message().contains("disk gone"), "{err}");
    assert_eq!(err.to_string(), "Error: IO error: disk gone");
}

#[test]
fn boxed_errors_convert_into_generic_errors() {
    let boxed: Box<dyn std::error::Error + Send + Sync> = "boxed text".into();
    let err: CanoError = boxed.into();
    assert_eq!(err, CanoError::generic("boxed text"));
}

#[test]
fn store_errors_convert_into_store_errors_with_their_display_text() {
    let err: CanoError = StoreError::key_not_found("zz").into();
    assert_eq!(err.category(), "store");
    assert!(err.message().contains("zz"), "{err}");
    assert!(err.message().contains("not found"), "{err}");
    assert_eq!(
        err.to_string(),
        "Store error: Key not found: Key 'zz' not found in store"
    );

    let append: CanoError = StoreError::append_type_mismatch("k").into();
    assert_eq!(
        append.to_string(),
        "Store error: Append type mismatch: Cannot append to key 'k': existing value is not a Vec<TState>"
    );
}

#[test]
fn the_question_mark_operator_converts_store_errors_inside_tasks() {
    fn read(store: &MemoryStore) -> Result<u32, CanoError> {
        Ok(store.get::<u32>("missing")?)
    }
    let err = read(&MemoryStore::new()).unwrap_err();
    assert!(matches!(&err, CanoError::Store(m) if m.contains("missing")));
}

#[test]
fn cano_error_is_a_std_error_without_a_source() {
    let err = CanoError::task_execution("x");
    assert!(err.source().is_none());
    fn needs_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    needs_error(&err);
}

#[test]
fn cano_errors_propagate_into_boxed_std_errors() {
    fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err(CanoError::timeout("late"))?;
        Ok(())
    }
    let err = run().unwrap_err();
    assert_eq!(err.to_string(), "Timeout error: late");
    let back = err.downcast::<CanoError>().expect("still a CanoError");
    assert_eq!(*back, CanoError::timeout("late"));
}

#[test]
fn cano_result_is_a_result_alias() {
    fn parse(input: &str) -> CanoResult<u8> {
        input
            .parse()
            .map_err(|_| CanoError::generic(format!("bad number {input:?}")))
    }
    assert_eq!(parse("7"), Ok(7));
    assert_eq!(parse("x"), Err(CanoError::generic("bad number \"x\"")));
}
