//! `#[derive(FromResources)]`: string keys (generic over the key type), enum path keys,
//! and `#[from_resources(key = K)]`.

use cano::prelude::*;
use std::borrow::{Borrow, Cow};
use std::sync::Arc;

#[derive(Resource)]
struct Config {
    retries: u32,
}

#[derive(Resource)]
struct Db(&'static str);

/// String keys: works with any `Resources<K>` whose key borrows as `str`.
#[derive(FromResources)]
struct Deps {
    #[res("store")]
    store: Arc<MemoryStore>,
    #[res("config")]
    config: std::sync::Arc<Config>,
}

#[test]
fn string_keys_with_the_default_key_type() {
    let res: Resources = Resources::new()
        .insert("store", MemoryStore::new())
        .insert("config", Config { retries: 3 });
    let Deps { store, config } = Deps::from_resources(&res).unwrap();
    assert_eq!(config.retries, 3);
    assert!(Arc::ptr_eq(
        &store,
        &res.get::<MemoryStore, _>("store").unwrap()
    ));
}

#[test]
fn string_keys_with_string_resources() {
    let res: Resources<String> = Resources::new()
        .insert("store".to_string(), MemoryStore::new())
        .insert("config".to_string(), Config { retries: 5 });
    assert_eq!(Deps::from_resources(&res).unwrap().config.retries, 5);
}

#[test]
fn first_failing_field_error_is_returned() {
    let missing: Resources = Resources::new().insert("config", Config { retries: 1 });
    let err = Deps::from_resources(&missing).err().unwrap();
    assert_eq!(err.category(), "resource_not_found");
    assert!(err.message().contains("MemoryStore"), "{err}");

    // Both fields are wrong; the first declared one is reported.
    let wrong: Resources = Resources::new()
        .insert("store", Config { retries: 1 })
        .insert("config", MemoryStore::new());
    let err = Deps::from_resources(&wrong).err().unwrap();
    assert_eq!(err.category(), "resource_type_mismatch");
    assert!(err.message().contains("MemoryStore"), "{err}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Store,
    Db,
}

mod keys {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Slot {
        Primary,
    }
}

/// Path keys: the key type is the path minus its last segment.
#[derive(FromResources)]
struct EnumDeps {
    #[res(Key::Store)]
    store: Arc<MemoryStore>,
    #[res(Key::Db)]
    db: Arc<Db>,
}

#[derive(FromResources)]
struct ModuleDeps {
    #[res(crate::keys::Slot::Primary)]
    db: Arc<Db>,
}

#[test]
fn enum_path_keys() {
    let res: Resources<Key> = Resources::new()
        .insert(Key::Store, MemoryStore::new())
        .insert(Key::Db, Db("main"));
    let deps = EnumDeps::from_resources(&res).unwrap();
    assert_eq!(deps.db.0, "main");
    deps.store.put("x", 1u8).unwrap();

    let res: Resources<keys::Slot> = Resources::new().insert(keys::Slot::Primary, Db("p"));
    assert_eq!(ModuleDeps::from_resources(&res).unwrap().db.0, "p");
    let empty: Resources<keys::Slot> = Resources::new();
    assert!(ModuleDeps::from_resources(&empty).is_err());
}

/// An explicit key type with string keys.
#[derive(FromResources)]
#[from_resources(key = String)]
struct StringKeyed {
    #[res("config")]
    config: Arc<Config>,
}

/// An explicit key type makes single-segment paths (here a glob-imported variant) usable.
mod glob {
    use super::{Arc, Key};
    use Key::*;

    #[derive(cano::FromResources)]
    #[from_resources(key = Key)]
    pub struct Deps {
        #[res(Store)]
        pub store: Arc<cano::MemoryStore>,
    }
}

/// A key type that borrows as `str` and has its own constants, so string and path keys
/// can be mixed under an explicit key type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Name(Cow<'static, str>);

impl Name {
    const DB: Name = Name(Cow::Borrowed("db"));
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[derive(FromResources)]
#[from_resources(key = Name)]
struct Mixed {
    #[res("config")]
    config: Arc<Config>,
    #[res(Name::DB)]
    db: Arc<Db>,
}

#[test]
fn explicit_key_type() {
    let res: Resources<String> =
        Resources::new().insert("config".to_string(), Config { retries: 8 });
    assert_eq!(StringKeyed::from_resources(&res).unwrap().config.retries, 8);

    let store = MemoryStore::new();
    let res: Resources<Key> = Resources::new().insert(Key::Store, store.clone());
    let deps = glob::Deps::from_resources(&res).unwrap();
    deps.store.put("glob", true).unwrap();
    assert!(store.get::<bool>("glob").unwrap());

    let res: Resources<Name> = Resources::new()
        .insert(Name(Cow::Borrowed("config")), Config { retries: 2 })
        .insert(Name::DB, Db("mixed"));
    let mixed = Mixed::from_resources(&res).unwrap();
    assert_eq!((mixed.config.retries, mixed.db.0), (2, "mixed"));
}

/// Generic structs carry their generics onto the generated impl.
#[derive(FromResources)]
struct GenericDeps<R: Resource> {
    #[res("thing")]
    thing: Arc<R>,
}

#[test]
fn generic_struct() {
    let res: Resources = Resources::new().insert("thing", Db("g"));
    assert_eq!(
        GenericDeps::<Db>::from_resources(&res).unwrap().thing.0,
        "g"
    );
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Load,
    Done,
}

struct UsesDeps;

#[task(state = Step)]
impl UsesDeps {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        let Deps { store, config } = Deps::from_resources(res)?;
        store.put("retries", config.retries)?;
        Ok(TaskResult::Single(Step::Done))
    }
}

#[tokio::test]
async fn typical_use_inside_a_task() {
    let store = MemoryStore::new();
    let workflow = Workflow::new(
        Resources::new()
            .insert("store", store.clone())
            .insert("config", Config { retries: 4 }),
    )
    .register(Step::Load, UsesDeps)
    .add_exit_state(Step::Done);
    assert_eq!(workflow.orchestrate(Step::Load).await.unwrap(), Step::Done);
    assert_eq!(store.get::<u32>("retries").unwrap(), 4);
}
