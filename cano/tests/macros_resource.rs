//! `#[resource]` and `#[derive(Resource)]`.

use cano::prelude::*;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<String>>>;

struct Tracked {
    name: &'static str,
    log: Log,
    fail_setup: bool,
}

#[resource]
impl Resource for Tracked {
    async fn setup(&self) -> Result<(), CanoError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("setup:{}", self.name));
        if self.fail_setup {
            return Err(CanoError::configuration(format!("{} failed", self.name)));
        }
        Ok(())
    }

    async fn teardown(&self) -> Result<(), CanoError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("teardown:{}", self.name));
        Ok(())
    }
}

struct Lagging;

#[resource]
impl Resource for Lagging {
    async fn health(&self) -> HealthStatus {
        HealthStatus::Degraded("replica lag".into())
    }
}

/// `#[resource]` with nothing to override.
struct Empty;

#[resource]
impl Resource for Empty {}

/// Fully-qualified spellings, no prelude needed.
struct Noop;

#[cano::resource]
impl cano::resource::Resource for Noop {}

#[tokio::test]
async fn overridden_hooks_run_through_resources() {
    let log = Log::default();
    let tracked = |name| Tracked {
        name,
        log: log.clone(),
        fail_setup: false,
    };
    let res: Resources = Resources::new()
        .insert("a", tracked("A"))
        .insert("b", tracked("B"))
        .insert("empty", Empty)
        .insert("noop", Noop);
    res.setup_all().await.unwrap();
    res.teardown_all().await;
    assert_eq!(
        *log.lock().unwrap(),
        ["setup:A", "setup:B", "teardown:B", "teardown:A"]
    );
}

#[tokio::test]
async fn overridden_setup_error_is_returned() {
    let log = Log::default();
    let res: Resources = Resources::new()
        .insert(
            "ok",
            Tracked {
                name: "ok",
                log: log.clone(),
                fail_setup: false,
            },
        )
        .insert(
            "bad",
            Tracked {
                name: "bad",
                log: log.clone(),
                fail_setup: true,
            },
        );
    let err = res.setup_all().await.unwrap_err();
    assert_eq!(err.message(), "bad failed");
    assert_eq!(
        *log.lock().unwrap(),
        ["setup:ok", "setup:bad", "teardown:ok"]
    );
}

#[tokio::test]
async fn overridden_health_and_defaults() {
    assert_eq!(
        Lagging.health().await,
        HealthStatus::Degraded("replica lag".into())
    );
    assert!(Lagging.setup().await.is_ok());
    assert_eq!(Empty.health().await, HealthStatus::Healthy);
    assert!(Noop.teardown().await.is_ok());
    let res: Resources = Resources::new()
        .insert("lag", Lagging)
        .insert("empty", Empty);
    assert_eq!(
        res.aggregate_health().await,
        HealthStatus::Degraded("replica lag".into())
    );
}

/// `#[resource]` on a user trait definition: the plain rewrite.
#[resource]
trait Pingable: Send + Sync {
    async fn ping(&self, times: &u32) -> u32 {
        *times * 2
    }
}

impl Pingable for Empty {}

#[tokio::test]
async fn resource_attribute_on_a_trait_definition() {
    let pingable: Box<dyn Pingable> = Box::new(Empty);
    assert_eq!(pingable.ping(&21).await, 42);
}

// ---------------------------------------------------------------------------------------
// #[derive(Resource)]
// ---------------------------------------------------------------------------------------

#[derive(Resource)]
struct Unit;

#[derive(Resource)]
struct Tuple(u32, String);

#[derive(cano::Resource)]
struct Named {
    retries: u32,
}

#[derive(ResourceDerive)]
struct ViaAlias;

#[derive(Resource)]
struct Cell<T: Send + Sync + 'static> {
    value: T,
}

#[derive(Resource)]
struct Phantom<T>
where
    T: Send + Sync + 'static,
{
    _marker: PhantomData<T>,
}

#[derive(Resource)]
enum Mode {
    Fast,
    Slow(u8),
}

fn is_resource<R: Resource>() {}

#[tokio::test]
async fn derived_resources_have_the_default_lifecycle() {
    is_resource::<Unit>();
    is_resource::<ViaAlias>();
    is_resource::<Phantom<String>>();
    let res: Resources = Resources::new()
        .insert("unit", Unit)
        .insert("tuple", Tuple(1, "one".into()))
        .insert("named", Named { retries: 3 })
        .insert("cell", Cell { value: 2.5f64 })
        .insert("mode", Mode::Slow(9));
    res.setup_all().await.unwrap();
    assert_eq!(res.get::<Named, _>("named").unwrap().retries, 3);
    let tuple = res.get::<Tuple, _>("tuple").unwrap();
    assert_eq!((tuple.0, tuple.1.as_str()), (1, "one"));
    assert_eq!(res.get::<Cell<f64>, _>("cell").unwrap().value, 2.5);
    assert!(matches!(
        *res.get::<Mode, _>("mode").unwrap(),
        Mode::Slow(9)
    ));
    assert!(!matches!(Mode::Fast, Mode::Slow(_)));
    assert_eq!(res.aggregate_health().await, HealthStatus::Healthy);
    res.teardown_all().await;
}
