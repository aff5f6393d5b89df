//! `MemoryStore` and `StoreError`.

use cano::prelude::*;
use cano::store::{StoreError, StoreResult};
use std::sync::Arc;
use std::thread;

#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    lines: Vec<String>,
}

/// Deliberately not `Clone`: `put` and `get_shared` must not need it.
#[derive(Debug, PartialEq)]
struct Handle(u32);

#[test]
fn new_and_default_stores_are_empty() {
    for store in [MemoryStore::new(), MemoryStore::default()] {
        assert_eq!(store.len(), Ok(0));
        assert_eq!(store.is_empty(), Ok(true));
        assert_eq!(store.keys(), Ok(vec![]));
    }
}

#[test]
fn put_then_get_round_trips_values_of_many_types() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.put("s", String::from("hello"))?;
    store.put("i", -7i32)?;
    store.put("v", vec![1u8, 2, 3])?;
    let order = Order {
        id: 9,
        lines: vec!["tea".into()],
    };
    store.put("order", order.clone())?;

    assert_eq!(store.get::<String>("s")?, "hello");
    assert_eq!(store.get::<i32>("i")?, -7);
    assert_eq!(store.get::<Vec<u8>>("v")?, vec![1, 2, 3]);
    assert_eq!(store.get::<Order>("order")?, order);
    assert_eq!(store.len()?, 4);
    assert!(!store.is_empty()?);
    Ok(())
}

#[test]
fn overwriting_a_key_keeps_one_entry_and_may_change_its_type() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.put("k", 1u32)?;
    store.put("k", 2u32)?;
    assert_eq!(store.len()?, 1);
    assert_eq!(store.get::<u32>("k")?, 2);

    store.put("k", String::from("now a string"))?;
    assert_eq!(store.len()?, 1);
    assert_eq!(store.get::<String>("k")?, "now a string");
    assert!(matches!(
        store.get::<u32>("k"),
        Err(StoreError::TypeMismatch(_))
    ));
    Ok(())
}

#[test]
fn a_missing_key_is_key_not_found_with_the_exact_payload() {
    let store = MemoryStore::new();
    assert_eq!(
        store.get::<String>("nonexistent"),
        Err(StoreError::KeyNotFound(
            "Key 'nonexistent' not found in store".to_string()
        ))
    );
    assert_eq!(
        store.get::<String>("nonexistent").unwrap_err().to_string(),
        "Key not found: Key 'nonexistent' not found in store"
    );
}

#[test]
fn a_wrong_type_is_type_mismatch_and_types_must_match_exactly() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.put("n", 5u32)?;
    store.put("text", "static str")?;
    let err = store.get::<u64>("n").unwrap_err();
    assert!(
        matches!(&err, StoreError::TypeMismatch(m) if m.contains("'n'")),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("Type mismatch: "), "{err}");
    // `&'static str` and `String` are different types.
    assert!(matches!(
        store.get::<String>("text"),
        Err(StoreError::TypeMismatch(_))
    ));
    assert_eq!(store.get::<&'static str>("text")?, "static str");
    Ok(())
}

#[test]
fn remove_deletes_existing_keys_and_ignores_missing_ones() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.put("a", 1u8)?;
    store.put("b", 2u8)?;
    assert!(store.contains_key("a")?);
    store.remove("a")?;
    assert!(!store.contains_key("a")?);
    assert!(store.contains_key("b")?);
    assert_eq!(store.len()?, 1);
    // Removing a key that is not there is Ok, and changes nothing.
    store.remove("a")?;
    store.remove("never-there")?;
    assert_eq!(store.len()?, 1);
    assert!(matches!(
        store.get::<u8>("a"),
        Err(StoreError::KeyNotFound(_))
    ));
    Ok(())
}

#[test]
fn keys_len_is_empty_and_clear_agree() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.put("x", 1u8)?;
    store.put("y", 2u8)?;
    store.put("z", 3u8)?;
    let mut keys: Vec<String> = store.keys()?.iter().map(|k| k.to_string()).collect();
    keys.sort();
    assert_eq!(keys, ["x", "y", "z"]);
    assert_eq!(store.len()?, 3);

    store.clear()?;
    assert_eq!(store.len()?, 0);
    assert!(store.is_empty()?);
    assert!(store.keys()?.is_empty());
    assert!(!store.contains_key("x")?);
    Ok(())
}

#[test]
fn append_creates_a_vec_then_pushes_onto_it() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.append("log", String::from("first"))?;
    assert_eq!(store.get::<Vec<String>>("log")?, vec!["first"]);
    store.append("log", String::from("second"))?;
    store.append("log", String::from("third"))?;
    assert_eq!(
        store.get::<Vec<String>>("log")?,
        vec!["first", "second", "third"]
    );

    store.put("nums", vec![1u32, 2])?;
    store.append("nums", 3u32)?;
    assert_eq!(store.get::<Vec<u32>>("nums")?, vec![1, 2, 3]);
    Ok(())
}

#[test]
fn append_onto_a_non_vec_fails_and_keeps_the_original_value() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.put("test_append_error", String::from("not a vec"))?;
    assert_eq!(
        store.append("test_append_error", 1u32),
        Err(StoreError::AppendTypeMismatch(
            "Cannot append to key 'test_append_error': existing value is not a Vec<TState>"
                .to_string()
        ))
    );
    assert_eq!(store.get::<String>("test_append_error")?, "not a vec");

    // A Vec of another element type is "not a Vec<T>" as well.
    store.put("bytes", vec![1u8])?;
    assert!(matches!(
        store.append("bytes", 2u32),
        Err(StoreError::AppendTypeMismatch(_))
    ));
    assert_eq!(store.get::<Vec<u8>>("bytes")?, vec![1]);
    Ok(())
}

#[test]
fn append_does_not_change_a_vec_someone_holds_through_get_shared() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.append("list", 1u32)?;
    let before = store.get_shared::<Vec<u32>>("list")?;
    store.append("list", 2u32)?;
    assert_eq!(*before, vec![1]);
    assert_eq!(store.get::<Vec<u32>>("list")?, vec![1, 2]);
    Ok(())
}

#[test]
fn put_does_not_change_a_value_someone_holds_through_get_shared() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.put("n", 1u64)?;
    let held = store.get_shared::<u64>("n")?;
    store.put("n", 2u64)?;
    assert_eq!(*held, 1);
    assert_eq!(store.get::<u64>("n")?, 2);
    // Once nobody holds it, the stored value is replaced where it is.
    drop(held);
    let before = Arc::as_ptr(&store.get_shared::<u64>("n")?);
    store.put("n", 3u64)?;
    let after = store.get_shared::<u64>("n")?;
    assert_eq!(*after, 3);
    assert_eq!(Arc::as_ptr(&after), before, "same allocation");
    Ok(())
}

#[test]
fn every_replaced_value_is_dropped_once() -> StoreResult<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted(#[allow(dead_code)] u32);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let store = MemoryStore::new();
    store.put("c", Counted(1))?; // new
    store.put("c", Counted(2))?; // in place: 1 dropped
    let held = store.get_shared::<Counted>("c")?;
    store.put("c", Counted(3))?; // new allocation: 2 lives on in `held`
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    drop(held); // 2 dropped
    store.put("c", 4u8)?; // another type: 3 dropped
    assert_eq!(DROPS.load(Ordering::SeqCst), 3);
    Ok(())
}

#[test]
fn clones_share_one_map_in_both_directions() -> StoreResult<()> {
    let store = MemoryStore::new();
    let clone = store.clone();
    store.put("from_original", 1u8)?;
    clone.put("from_clone", 2u8)?;
    assert_eq!(clone.get::<u8>("from_original")?, 1);
    assert_eq!(store.get::<u8>("from_clone")?, 2);
    clone.remove("from_original")?;
    assert!(!store.contains_key("from_original")?);
    store.clear()?;
    assert!(clone.is_empty()?);
    Ok(())
}

#[test]
fn get_shared_hands_out_the_stored_arc_without_copying() -> StoreResult<()> {
    let store = MemoryStore::new();
    store.put("h", Handle(7))?;
    let a = store.get_shared::<Handle>("h")?;
    let b = store.get_shared::<Handle>("h")?;
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(*a, Handle(7));
    assert!(matches!(
        store.get_shared::<Handle>("missing"),
        Err(StoreError::KeyNotFound(m)) if m == "Key 'missing' not found in store"
    ));
    assert!(matches!(
        store.get_shared::<u32>("h"),
        Err(StoreError::TypeMismatch(_))
    ));
    Ok(())
}

#[test]
fn store_error_constructors_and_display() {
    assert_eq!(
        StoreError::key_not_found("k"),
        StoreError::KeyNotFound("Key 'k' not found in store".into())
    );
    assert_eq!(
        StoreError::type_mismatch("tm"),
        StoreError::TypeMismatch("tm".into())
    );
    assert_eq!(
        StoreError::lock_error("le"),
        StoreError::LockError("le".into())
    );
    assert_eq!(
        StoreError::append_type_mismatch("k"),
        StoreError::AppendTypeMismatch(
            "Cannot append to key 'k': existing value is not a Vec<TState>".into()
        )
    );
    assert_eq!(StoreError::generic("g"), StoreError::Generic("g".into()));

    assert_eq!(
        StoreError::key_not_found("k").to_string(),
        "Key not found: Key 'k' not found in store"
    );
    assert_eq!(
        StoreError::type_mismatch("x").to_string(),
        "Type mismatch: x"
    );
    assert_eq!(StoreError::lock_error("x").to_string(), "Lock error: x");
    assert_eq!(
        StoreError::append_type_mismatch("k").to_string(),
        "Append type mismatch: Cannot append to key 'k': existing value is not a Vec<TState>"
    );
    assert_eq!(StoreError::generic("x").to_string(), "Store error: x");
    let _: &dyn std::error::Error = &StoreError::generic("x");
}

#[test]
fn concurrent_readers_all_see_the_value() {
    let store = MemoryStore::new();
    store.put("shared", 42u64).unwrap();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            thread::spawn(move || {
                for _ in 0..100 {
                    assert_eq!(store.get::<u64>("shared").unwrap(), 42);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn concurrent_writers_lose_no_keys() {
    let store = MemoryStore::new();
    let handles: Vec<_> = (0..10)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                for i in 0..10 {
                    store.put(&format!("t{t}-{i}"), i).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.len().unwrap(), 100);
    assert_eq!(store.get::<i32>("t3-7").unwrap(), 7);
}

#[test]
fn mixed_readers_and_writers_end_with_every_written_key() {
    let store = MemoryStore::new();
    store.put("seed", 0u32).unwrap();
    let mut handles = Vec::new();
    for t in 0..5 {
        let store = store.clone();
        handles.push(thread::spawn(move || {
            for i in 0..20u32 {
                store.put(&format!("w{t}-{i}"), i).unwrap();
            }
        }));
    }
    for _ in 0..5 {
        let store = store.clone();
        handles.push(thread::spawn(move || {
            for _ in 0..20 {
                assert_eq!(store.get::<u32>("seed").unwrap(), 0);
                let _ = store.len().unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.len().unwrap(), 1 + 5 * 20);
}

#[test]
fn concurrent_appends_to_one_key_lose_no_items() {
    let store = MemoryStore::new();
    let handles: Vec<_> = (0..5u32)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                for i in 0..10u32 {
                    store.append("items", t * 100 + i).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut items = store.get::<Vec<u32>>("items").unwrap();
    assert_eq!(items.len(), 50);
    items.sort_unstable();
    items.dedup();
    assert_eq!(items.len(), 50, "every appended item is present once");
}

#[tokio::test]
async fn memory_store_is_a_resource_with_a_no_op_lifecycle() {
    let store = MemoryStore::new();
    store.put("kept", 1u8).unwrap();
    assert_eq!(store.setup().await, Ok(()));
    assert_eq!(store.teardown().await, Ok(()));
    assert_eq!(store.health().await, HealthStatus::Healthy);
    assert_eq!(store.get::<u8>("kept").unwrap(), 1, "lifecycle keeps data");
}

#[test]
fn memory_store_is_send_sync_and_lives_in_resources() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<MemoryStore>();
    send_sync::<StoreError>();

    let store = MemoryStore::new();
    let res: Resources = Resources::new().insert("store", store.clone());
    res.get::<MemoryStore, _>("store")
        .unwrap()
        .put("through_resources", 5u8)
        .unwrap();
    assert_eq!(store.get::<u8>("through_resources").unwrap(), 5);
}
