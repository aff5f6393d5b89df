//! Every macro form compiles warning-free: this file denies all warnings (rustc, missing
//! docs on the generated public items, and the clippy groups CI runs).
#![deny(warnings, missing_docs, unused, rust_2018_idioms, unreachable_code)]
#![deny(clippy::all)]

use cano::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;

/// Public items, so `missing_docs` checks what the derives generate.
pub mod api {
    use cano::prelude::*;
    use std::sync::Arc;

    /// A resource.
    #[derive(Resource)]
    pub struct Config;

    /// Dependencies fetched by string key.
    #[derive(FromResources)]
    pub struct Deps {
        /// The config.
        #[res("config")]
        pub config: Arc<Config>,
    }

    /// Keys.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Key {
        /// The config.
        Config,
    }

    /// Dependencies fetched by enum key.
    #[derive(FromResources)]
    pub struct KeyedDeps {
        /// The config.
        #[res(Key::Config)]
        pub config: Arc<Config>,
    }

    /// A public user trait.
    #[task]
    pub trait Service: Send + Sync {
        /// Required.
        async fn call(&self, input: &str) -> Result<usize, CanoError>;

        /// Defaulted, with early returns and `?`.
        async fn call_twice(&self, input: &str) -> Result<usize, CanoError> {
            if input.is_empty() {
                return Ok(0);
            }
            let first = self.call(input).await?;
            Ok(first + self.call(input).await?)
        }

        /// Borrows from `self` through an elided output lifetime.
        async fn prefix(&self) -> &str {
            "svc"
        }

        /// Mutable receiver, pattern parameters.
        async fn absorb(&mut self, (a, _): (u8, u8), mut rest: Vec<u8>, _: bool) -> usize {
            rest.push(a);
            rest.len()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    A,
    Done,
}

struct Len;

impl Len {
    fn new() -> Self {
        Len
    }
}

#[task]
impl api::Service for Len {
    async fn call(&self, input: &str) -> Result<usize, CanoError> {
        Ok(input.len())
    }
}

struct Diverges;

#[task]
impl api::Service for Diverges {
    async fn call(&self, _input: &str) -> Result<usize, CanoError> {
        return Err(CanoError::generic("always"));
    }

    async fn call_twice(&self, input: &str) -> Result<usize, CanoError> {
        match input {
            "" => return Ok(0),
            _ => return Ok(1),
        }
    }
}

struct TraitImpl;

#[task]
impl Task<Step> for TraitImpl {
    async fn run(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

struct Inherent;

#[task(state = Step)]
impl Inherent {
    fn name(&self) -> Cow<'static, str> {
        "inherent".into()
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        let api::Deps { config } = api::Deps::from_resources(res)?;
        drop(config);
        Ok(TaskResult::Single(Step::Done))
    }
}

struct InherentKeyed<T>(T);

#[task(state = Step, key = api::Key)]
impl<T: Send + Sync + 'static> InherentKeyed<T> {
    async fn run(&self, res: &Resources<api::Key>) -> Result<TaskResult<Step>, CanoError> {
        let _deps = api::KeyedDeps::from_resources(res)?;
        Ok(TaskResult::Single(Step::Done))
    }
}

struct Pool;

#[resource]
impl Resource for Pool {
    async fn setup(&self) -> Result<(), CanoError> {
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        HealthStatus::Healthy
    }
}

struct NoRows;

#[checkpoint_store]
impl NoRows {
    async fn append(&self, _workflow_id: &str, _row: CheckpointRow) -> Result<(), CanoError> {
        Ok(())
    }

    async fn load_run(&self, _workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        Ok(Vec::new())
    }

    async fn clear(&self, _workflow_id: &str) -> Result<(), CanoError> {
        Ok(())
    }
}

#[tokio::test]
async fn generated_code_is_warning_free_and_works() {
    use api::Service as _;

    assert_eq!(Len.call_twice("abc").await.unwrap(), 6);
    assert_eq!(Len.prefix().await, "svc");
    assert_eq!(Len::new().absorb((1, 2), vec![0], true).await, 2);
    assert_eq!(Len.call_twice("").await.unwrap(), 0);
    assert!(Diverges.call("x").await.is_err());
    assert_eq!(Diverges.call_twice("x").await.unwrap(), 1);

    let res: Resources = Resources::new()
        .insert("config", api::Config)
        .insert("pool", Pool);
    let workflow = Workflow::new(res)
        .register(Step::A, Inherent)
        .add_exit_state(Step::Done)
        .with_checkpoint_store(Arc::new(NoRows))
        .with_workflow_id("pass");
    assert_eq!(workflow.orchestrate(Step::A).await.unwrap(), Step::Done);
    assert_eq!(Inherent.name(), "inherent");

    let keyed: Resources<api::Key> = Resources::new().insert(api::Key::Config, api::Config);
    assert_eq!(
        InherentKeyed(()).run(&keyed).await.unwrap(),
        TaskResult::Single(Step::Done)
    );
    assert_eq!(
        TraitImpl.run(&Resources::new()).await.unwrap(),
        TaskResult::Single(Step::Done)
    );
}
