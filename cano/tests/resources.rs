//! `Resource`, `Resources` and `HealthStatus`.

mod support;

use cano::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use support::{Log, Probe};

#[derive(Debug, Resource)]
struct Config {
    retries: u32,
}

#[derive(Debug, Resource)]
struct Other;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Db,
    Cache,
}

#[test]
fn default_cow_keys_take_literals_and_strings_and_look_up_by_str() {
    let res: Resources = Resources::new()
        .insert("config", Config { retries: 3 })
        .insert(String::from("other"), Other);
    assert_eq!(res.get::<Config, _>("config").unwrap().retries, 3);
    assert_eq!(res.get::<Config, str>("config").unwrap().retries, 3);
    let key = String::from("other");
    assert!(res.get::<Other, str>(key.as_str()).is_ok());
}

#[test]
fn string_keys_work_with_explicit_str_lookups() {
    let res: Resources<String> = Resources::new()
        .insert("a".to_string(), Config { retries: 1 })
        .insert("b", Config { retries: 2 });
    assert_eq!(res.get::<Config, str>("a").unwrap().retries, 1);
    assert_eq!(res.get::<Config, str>("b").unwrap().retries, 2);
}

#[test]
fn enum_keys_work() {
    let res = Resources::<Key>::new()
        .insert(Key::Db, Config { retries: 5 })
        .insert(Key::Cache, MemoryStore::new());
    assert_eq!(res.get::<Config, _>(&Key::Db).unwrap().retries, 5);
    assert!(res.get::<MemoryStore, _>(&Key::Cache).is_ok());
    let Err(err) = res.get::<MemoryStore, _>(&Key::Db) else {
        panic!("a Config is not a MemoryStore");
    };
    assert_eq!(err.category(), "resource_type_mismatch");
}

#[test]
fn a_missing_key_is_resource_not_found_naming_the_requested_type() {
    let res: Resources = Resources::new().insert("config", Config { retries: 0 });
    let err = res.get::<CircuitBreaker, _>("breaker").unwrap_err();
    assert_eq!(err.category(), "resource_not_found");
    assert_eq!(
        err.to_string(),
        "Resource not found: no resource found for the given key (requested type: cano::circuit::CircuitBreaker)"
    );
}

#[test]
fn a_wrong_type_is_resource_type_mismatch_not_not_found() {
    let res: Resources = Resources::new().insert("config", Config { retries: 0 });
    let err = res.get::<Other, _>("config").unwrap_err();
    assert_eq!(err.category(), "resource_type_mismatch");
    assert!(matches!(err, CanoError::ResourceTypeMismatch(_)));
    assert!(err.message().contains("Other"), "{err}");
    assert!(
        err.message().contains("does not match the stored type"),
        "{err}"
    );
}

#[test]
fn repeated_gets_return_the_same_arc() {
    let res: Resources = Resources::new().insert("store", MemoryStore::new());
    let a = res.get::<MemoryStore, _>("store").unwrap();
    let b = res.get::<MemoryStore, _>("store").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    a.put("k", 1u8).unwrap();
    assert_eq!(b.get::<u8>("k").unwrap(), 1);
}

#[test]
fn every_constructor_starts_empty() {
    let all: [Resources; 4] = [
        Resources::default(),
        Resources::new(),
        Resources::empty(),
        Resources::with_capacity(64),
    ];
    for res in all {
        assert_eq!(format!("{res:?}"), "Resources { count: 0 }");
        assert!(res.get::<Other, _>("anything").is_err());
    }
}

#[test]
fn debug_prints_the_number_of_resources() {
    let res: Resources = Resources::new()
        .insert("a", Other)
        .insert("b", Other)
        .insert("c", MemoryStore::new());
    assert_eq!(format!("{res:?}"), "Resources { count: 3 }");
    let keyed = Resources::<Key>::new().insert(Key::Db, Other);
    assert_eq!(format!("{keyed:?}"), "Resources { count: 1 }");
}

#[tokio::test]
async fn setup_runs_in_insertion_order_and_teardown_in_reverse() {
    let log = Log::new();
    let res: Resources = Resources::new()
        .insert("a", Probe::new("A", &log))
        .insert("b", Probe::new("B", &log))
        .insert("c", Probe::new("C", &log));
    res.setup_all().await.unwrap();
    assert_eq!(log.entries(), ["setup:A", "setup:B", "setup:C"]);
    log.clear();
    res.teardown_all().await;
    assert_eq!(log.entries(), ["teardown:C", "teardown:B", "teardown:A"]);
}

#[tokio::test]
async fn a_setup_failure_tears_down_only_what_was_set_up_in_reverse() {
    let log = Log::new();
    let res: Resources = Resources::new()
        .insert("r0", Probe::new("R0", &log))
        .insert("r1", Probe::new("R1", &log))
        .insert("r2", Probe::new("R2", &log).failing_setup())
        .insert("r3", Probe::new("R3", &log));
    let err = res.setup_all().await.unwrap_err();
    assert_eq!(err, CanoError::generic("setup of R2 failed"));
    assert_eq!(
        log.entries(),
        [
            "setup:R0",
            "setup:R1",
            "setup:R2",
            "teardown:R1",
            "teardown:R0"
        ]
    );
}

#[tokio::test]
async fn setup_of_an_empty_map_succeeds() {
    let res: Resources = Resources::new();
    assert_eq!(res.setup_all().await, Ok(()));
    res.teardown_all().await;
}

#[tokio::test]
async fn teardown_continues_past_failing_teardowns() {
    let log = Log::new();
    let res: Resources = Resources::new()
        .insert("a", Probe::new("A", &log).failing_teardown())
        .insert("b", Probe::new("B", &log).failing_teardown())
        .insert("c", Probe::new("C", &log).failing_teardown());
    res.teardown_all().await;
    assert_eq!(log.entries(), ["teardown:C", "teardown:B", "teardown:A"]);
}

#[test]
fn inserting_a_duplicate_key_panics() {
    let res: Resources = Resources::new().insert("dup", Other);
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = res.insert("dup", Other);
    }))
    .unwrap_err();
    let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(
        msg.contains("duplicate resource key inserted into Resources"),
        "{msg}"
    );
    assert!(msg.contains("try_insert"), "{msg}");
}

#[test]
fn try_insert_reports_duplicates_as_errors() {
    let res: Resources = Resources::new().insert("dup", Other);
    let err = res.try_insert("dup", Other).unwrap_err();
    assert_eq!(err.category(), "resource_duplicate_key");
    assert!(err.message().contains("duplicate"), "{err}");
    assert_eq!(
        err,
        CanoError::resource_duplicate_key("duplicate resource key inserted into Resources")
    );
}

#[test]
fn try_insert_with_fresh_keys_chains_with_insert() -> Result<(), CanoError> {
    let res: Resources = Resources::new()
        .try_insert("a", Config { retries: 1 })?
        .insert("b", Other)
        .try_insert("c", MemoryStore::new())?;
    assert_eq!(format!("{res:?}"), "Resources { count: 3 }");
    assert_eq!(res.get::<Config, _>("a")?.retries, 1);
    assert!(res.get::<MemoryStore, _>("c").is_ok());
    Ok(())
}

#[tokio::test]
async fn health_defaults_to_healthy() {
    assert_eq!(Other.health().await, HealthStatus::Healthy);
    let res: Resources = Resources::new().insert("o", Other);
    assert_eq!(res.aggregate_health().await, HealthStatus::Healthy);
}

#[tokio::test]
async fn check_all_health_reports_each_key() {
    let log = Log::new();
    let res: Resources = Resources::new()
        .insert("ok", Probe::new("ok", &log))
        .insert(
            "lagging",
            Probe::new("lagging", &log).with_health(HealthStatus::Degraded("replica lag".into())),
        )
        .insert(
            "down",
            Probe::new("down", &log)
                .with_health(HealthStatus::Unhealthy("connection refused".into())),
        );
    let report = res.check_all_health().await;
    let expected: HashMap<std::borrow::Cow<'static, str>, HealthStatus> = [
        ("ok".into(), HealthStatus::Healthy),
        (
            "lagging".into(),
            HealthStatus::Degraded("replica lag".into()),
        ),
        (
            "down".into(),
            HealthStatus::Unhealthy("connection refused".into()),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(report, expected);
    assert!(
        log.entries().is_empty(),
        "health checks do not set up or tear down"
    );
}

#[tokio::test]
async fn check_all_health_works_with_enum_keys() {
    let log = Log::new();
    let res = Resources::<Key>::new()
        .insert(
            Key::Db,
            Probe::new("db", &log).with_health(HealthStatus::Degraded("slow".into())),
        )
        .insert(Key::Cache, Other);
    let report = res.check_all_health().await;
    assert_eq!(report.len(), 2);
    assert_eq!(report[&Key::Db], HealthStatus::Degraded("slow".into()));
    assert_eq!(report[&Key::Cache], HealthStatus::Healthy);
}

#[tokio::test]
async fn aggregate_health_returns_the_worst_and_the_first_among_equals() {
    let log = Log::new();
    let degraded_then_unhealthy: Resources = Resources::new()
        .insert("a", Probe::new("a", &log))
        .insert(
            "b",
            Probe::new("b", &log).with_health(HealthStatus::Degraded("first".into())),
        )
        .insert(
            "c",
            Probe::new("c", &log).with_health(HealthStatus::Unhealthy("worst".into())),
        )
        .insert(
            "d",
            Probe::new("d", &log).with_health(HealthStatus::Degraded("later".into())),
        );
    assert_eq!(
        degraded_then_unhealthy.aggregate_health().await,
        HealthStatus::Unhealthy("worst".into())
    );

    let two_degraded: Resources = Resources::new()
        .insert(
            "a",
            Probe::new("a", &log).with_health(HealthStatus::Degraded("first".into())),
        )
        .insert(
            "b",
            Probe::new("b", &log).with_health(HealthStatus::Degraded("second".into())),
        );
    assert_eq!(
        two_degraded.aggregate_health().await,
        HealthStatus::Degraded("first".into())
    );
}

#[tokio::test]
async fn an_empty_map_reports_nothing_and_is_healthy() {
    let res: Resources = Resources::new();
    assert!(res.check_all_health().await.is_empty());
    assert_eq!(res.aggregate_health().await, HealthStatus::Healthy);
}

#[test]
fn only_healthy_is_healthy() {
    assert!(HealthStatus::Healthy.is_healthy());
    assert!(!HealthStatus::Degraded("x".into()).is_healthy());
    assert!(!HealthStatus::Unhealthy("x".into()).is_healthy());
}

#[test]
fn health_status_matches_need_a_wildcard_arm() {
    // `HealthStatus` is #[non_exhaustive]; this is how downstream code matches it.
    let describe = |h: &HealthStatus| match h {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Degraded(_) => "degraded",
        HealthStatus::Unhealthy(_) => "unhealthy",
        _ => "unknown",
    };
    assert_eq!(describe(&HealthStatus::Degraded("x".into())), "degraded");
}

#[tokio::test]
async fn each_inserted_value_gets_its_own_lifecycle() {
    let log = Log::new();
    let res: Resources = Resources::new()
        .insert("first", Probe::new("P", &log))
        .insert("second", Probe::new("P", &log));
    res.setup_all().await.unwrap();
    assert_eq!(log.count("setup:P"), 2);
}

#[tokio::test]
async fn a_plain_impl_uses_the_default_lifecycle() {
    struct Plain;
    impl Resource for Plain {}
    assert_eq!(Plain.setup().await, Ok(()));
    assert_eq!(Plain.teardown().await, Ok(()));
    assert_eq!(Plain.health().await, HealthStatus::Healthy);
    let res: Resources = Resources::new().insert("plain", Plain);
    assert_eq!(res.setup_all().await, Ok(()));
}

#[tokio::test]
async fn derived_resources_work_for_generic_and_tuple_structs() {
    #[derive(Debug, Resource)]
    struct Cell<T: Send + Sync + 'static>(T);
    #[derive(Resource)]
    enum Mode {
        Fast,
    }
    let res: Resources = Resources::new()
        .insert("cell", Cell(41u32))
        .insert("mode", Mode::Fast);
    assert_eq!(res.get::<Cell<u32>, _>("cell").unwrap().0, 41);
    assert!(matches!(*res.get::<Mode, _>("mode").unwrap(), Mode::Fast));
    assert_eq!(
        res.get::<Cell<u64>, _>("cell").unwrap_err().category(),
        "resource_type_mismatch"
    );
}

#[tokio::test]
async fn resources_are_usable_as_trait_objects() {
    let log = Log::new();
    let objects: Vec<Arc<dyn Resource>> = vec![Arc::new(Probe::new("dyn", &log)), Arc::new(Other)];
    for r in &objects {
        r.setup().await.unwrap();
    }
    assert_eq!(log.entries(), ["setup:dyn"]);
}

#[test]
fn resources_are_send_and_sync() {
    support::assert_send_sync::<Resources>();
    support::assert_send_sync::<Resources<Key>>();
    support::assert_send_sync::<Resources<String>>();
    support::assert_send_sync::<HealthStatus>();
}

#[derive(Debug, Resource)]
struct Numbered(usize);

#[tokio::test]
async fn maps_of_every_size_find_every_key_and_reject_duplicates() {
    // Small maps are searched linearly and larger ones hashed; the switch happens while
    // inserting, so check every size across it, whatever the capacity hint.
    for hint in [0, 4, 40] {
        let mut res: Resources<String> = Resources::with_capacity(hint);
        for n in 0..30 {
            res = res.insert(format!("key-{n}"), Numbered(n));
            for m in 0..=n {
                let key = format!("key-{m}");
                assert_eq!(
                    res.get::<Numbered, str>(&key).unwrap().0,
                    m,
                    "size {}",
                    n + 1
                );
                assert_eq!(
                    res.get::<Config, str>(&key).unwrap_err().category(),
                    "resource_type_mismatch"
                );
            }
            let absent = format!("key-{}", n + 1);
            let err = res.get::<Numbered, str>(&absent).unwrap_err();
            assert_eq!(err.category(), "resource_not_found");
            assert_eq!(
                format!("{res:?}"),
                format!("Resources {{ count: {} }}", n + 1)
            );
            let dup = res.try_insert(format!("key-{}", n / 2), Other);
            let Err(err) = dup else {
                panic!("key-{} is taken at size {}", n / 2, n + 1);
            };
            assert_eq!(err.category(), "resource_duplicate_key");
            // `try_insert` consumed the map: rebuild it up to this size.
            res = (0..=n).fold(Resources::with_capacity(hint), |r, m| {
                r.insert(format!("key-{m}"), Numbered(m))
            });
        }
        assert_eq!(res.check_all_health().await.len(), 30);
        res.setup_all().await.unwrap();
        res.teardown_all().await;
    }
}
