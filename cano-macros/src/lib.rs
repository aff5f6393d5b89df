//! Procedural macros for the [`cano`](https://docs.rs/cano) workflow engine.
//!
//! Depend on `cano`, not on this crate: `cano` re-exports every macro at the paths users
//! write (`#[cano::task]`, `#[derive(cano::Resource)]`, `cano::prelude::*`, …). Generated
//! code names everything by absolute path (`::cano::…`, `::core::…`, `::std::…`), so it needs
//! no imports at the expansion site.
//!
//! Every attribute macro shares one async-fn rewrite: each `async fn` in the annotated trait
//! or impl becomes a method returning
//! `Pin<Box<dyn Future<Output = R> + Send + 'async_trait>>`, which keeps the traits usable
//! as `dyn` objects and makes every returned future `Send`.
//!
//! Each macro parses, then validates (collecting every problem, each pointing at the
//! offending token), then expands. When an attribute macro fails, the annotated item is
//! still emitted next to the errors, so no follow-up errors pile up.

mod args;
mod batch;
mod checkpoint_store;
mod derive_resource;
mod errors;
mod fallback;
mod from_resources;
mod inherent;
mod model;
mod poll;
mod resource;
mod rewrite;
mod router;
mod saga;
mod signal;
mod stepped;
mod stream;
mod task;
mod timer;

use proc_macro::TokenStream;

/// Implements `cano::Task`, or rewrites the `async fn`s of any trait or impl block.
///
/// * On a trait definition or a trait impl (`impl Task<S> for T`, `impl Task<S, K> for T`,
///   or an impl of any other trait), each `async fn` becomes a method returning a boxed
///   `Send` future. No arguments are accepted on a trait impl.
/// * On an inherent impl, `#[task(state = S)]` or `#[task(state = S, key = K)]` writes the
///   `impl ::cano::Task<S[, K]> for T` header. The block may contain `run` or `run_bare`
///   (exactly one), plus optional `config` and `name`; anything else is a compile error.
///
/// ```ignore
/// use cano::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Fetch, Done }
///
/// struct Fetch;
///
/// #[task(state = Step)]
/// impl Fetch {
///     async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
///         Ok(TaskResult::Single(Step::Done))
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_attribute(item.clone(), || {
        let input = task::parse(args.into(), item.into())?;
        let plan = task::validate(input)?;
        task::expand(plan)
    })
}

/// Rewrites the `async fn`s of a `Resource` impl (or of any trait or impl block).
///
/// Attribute arguments are ignored.
///
/// ```ignore
/// use cano::prelude::*;
///
/// struct Pool;
///
/// #[resource]
/// impl Resource for Pool {
///     async fn setup(&self) -> Result<(), CanoError> {
///         Ok(())
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn resource(_args: TokenStream, item: TokenStream) -> TokenStream {
    emit_attribute(item.clone(), || {
        let item = resource::parse(item.into())?;
        resource::expand(item)
    })
}

/// Implements `cano::CheckpointStore`, or rewrites the `async fn`s of a trait or impl block.
///
/// On an inherent impl the block must contain exactly `append`, `load_run` and `clear`, and
/// the macro writes the `impl ::cano::CheckpointStore for T` header. On a trait definition or
/// trait impl it only rewrites the `async fn`s. Attribute arguments are ignored.
///
/// ```ignore
/// use cano::prelude::*;
///
/// struct NullStore;
///
/// #[checkpoint_store]
/// impl NullStore {
///     async fn append(&self, _id: &str, _row: CheckpointRow) -> Result<(), CanoError> { Ok(()) }
///     async fn load_run(&self, _id: &str) -> Result<Vec<CheckpointRow>, CanoError> { Ok(vec![]) }
///     async fn clear(&self, _id: &str) -> Result<(), CanoError> { Ok(()) }
/// }
/// ```
#[proc_macro_attribute]
pub fn checkpoint_store(_args: TokenStream, item: TokenStream) -> TokenStream {
    emit_attribute(item.clone(), || {
        let item = checkpoint_store::parse(item.into())?;
        let item = checkpoint_store::validate(item)?;
        checkpoint_store::expand(item)
    })
}

/// Derives an empty `impl ::cano::Resource` (the trait's no-op lifecycle applies).
///
/// Works on structs of any shape and on enums. No bounds are added to generic parameters;
/// declare `T: Send + Sync + 'static` on the type itself.
///
/// ```ignore
/// #[derive(cano::Resource)]
/// struct Config { retries: u32 }
/// ```
#[proc_macro_derive(Resource)]
pub fn derive_resource(input: TokenStream) -> TokenStream {
    emit_derive(|| {
        let input = derive_resource::parse(input.into())?;
        Ok(derive_resource::expand(&input))
    })
}

/// Derives `pub fn from_resources(res: &Resources<K>) -> CanoResult<Self>`.
///
/// Every field must be an `Arc<T>` with one key: `#[res("name")]` (a string key: the
/// function then accepts any `Resources<K>` whose `K: Borrow<str>`) or
/// `#[res(Key::Variant)]` (an enum key: `K` is `Key`, inferred from the path). Name the key
/// type explicitly with `#[from_resources(key = MyKey)]`, which is required to mix both kinds.
///
/// ```ignore
/// use cano::prelude::*;
/// use std::sync::Arc;
///
/// #[derive(FromResources)]
/// struct Deps {
///     #[res("store")]
///     store: Arc<MemoryStore>,
/// }
/// ```
#[proc_macro_derive(FromResources, attributes(res, from_resources))]
pub fn derive_from_resources(input: TokenStream) -> TokenStream {
    emit_derive(|| {
        let input = from_resources::parse(input.into())?;
        let plan = from_resources::validate(input)?;
        Ok(from_resources::expand(&plan))
    })
}

/// Implements `cano::RouterTask` (and `cano::Task` for it): `#[cano::task::router]`.
///
/// * On a trait definition: the async rewrite alone. No arguments.
/// * On `impl RouterTask<S[, K]> for T` (the trait named bare, as `cano::RouterTask` or as
///   `::cano::RouterTask`): the async rewrite, plus `impl Task<S[, K]> for T` naming cano
///   items with the same prefix (bare names must be in scope, e.g. via `cano::prelude::*`).
///   No arguments.
/// * On an inherent impl, `#[task::router(state = S[, key = K])]`: `route` is required,
///   `config`, `name` and `is_retryable` are optional (the trait's defaults are filled in);
///   anything else is an error. Writes `impl ::cano::RouterTask<S[, K]> for T` and the
///   `Task` impl.
///
/// The `Task` impl forwards `config`, `name` and `is_retryable` and runs `route`.
///
/// ```ignore
/// use cano::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Triage, Small, Large }
///
/// struct BySize;
///
/// #[task::router(state = Step)]
/// impl BySize {
///     async fn route(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
///         let n = res.get::<MemoryStore, _>("store")?.get::<u32>("items")?;
///         Ok(TaskResult::Single(if n > 100 { Step::Large } else { Step::Small }))
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn router_task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_model(&router::MODEL, args, item)
}

/// Implements `cano::PollTask` (and `cano::Task` for it): `#[cano::task::poll]`.
///
/// The forms are those of [`macro@router_task`]. An inherent impl requires `poll` and may
/// define `config` (default `TaskConfig::minimal()`), `name`, `on_poll_error` (default
/// `PollErrorPolicy::FailFast`) and `is_retryable`. The `Task` impl forwards `config`,
/// `name` and `is_retryable` and runs `cano::task::poll::run_poll_loop`.
///
/// ```ignore
/// use cano::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Wait, Done }
///
/// struct JobFinished;
///
/// #[task::poll(state = Step)]
/// impl JobFinished {
///     async fn poll(&self, _res: &Resources) -> Result<PollOutcome<Step>, CanoError> {
///         Ok(PollOutcome::Ready(TaskResult::Single(Step::Done)))
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn poll_task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_model(&poll::MODEL, args, item)
}

/// Implements `cano::SignalTask`: `#[cano::task::signal]`.
///
/// The forms are those of [`macro@router_task`], without a companion `Task` impl (register
/// the task with `Workflow::register_signal`). An inherent impl requires `type Payload`,
/// `signal` and `on_signal`, and may define `timeout`, `config`, `name` and
/// `is_retryable`.
///
/// ```ignore
/// use cano::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Await, Done }
///
/// struct Await;
///
/// #[task::signal(state = Step)]
/// impl Await {
///     type Payload = bool;
///     fn signal(&self) -> std::borrow::Cow<'static, str> { "approval".into() }
///     async fn on_signal(&self, _res: &Resources, ok: bool) -> Result<TaskResult<Step>, CanoError> {
///         Ok(TaskResult::Single(Step::Done))
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn signal_task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_model(&signal::MODEL, args, item)
}

/// Implements `cano::TimerTask` (and `cano::Task` for it): `#[cano::task::timer]`.
///
/// The forms are those of [`macro@router_task`]. An inherent impl requires `wait` and
/// `after_wait` and may define `config` (default `TaskConfig::minimal()`), `name` and
/// `is_retryable`. The `Task` impl forwards `config`, `name` and `is_retryable`, runs
/// `cano::task::timer::run_timer` and marks the task as a timer, so that a workflow that
/// registers it with `register` runs it durably.
///
/// ```ignore
/// use cano::prelude::*;
/// use cano::{TimerOutcome, TimerTask};
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Cooldown, Done }
///
/// struct Cooldown;
///
/// #[task::timer(state = Step)]
/// impl Cooldown {
///     async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
///         Ok(TimerOutcome::Duration(std::time::Duration::from_secs(60)))
///     }
///     async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
///         Ok(TaskResult::Single(Step::Done))
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn timer_task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_model(&timer::MODEL, args, item)
}

/// Implements `cano::BatchTask` (and `cano::Task` for it): `#[cano::task::batch]`.
///
/// The forms are those of [`macro@router_task`]. An inherent impl requires `load`,
/// `process_item` and `finish`, and may define `concurrency` (default 1), `item_retry`
/// (default `RetryMode::None`), `config`, `name` and `is_retryable`. `type Item` and
/// `type ItemOutput` may be declared; otherwise they are inferred from
/// `process_item(&self, item: &Item)` and its `Result<ItemOutput, _>` (or
/// `CanoResult<ItemOutput>`) return type. The `Task` impl forwards `config`, `name` and
/// `is_retryable` and runs `cano::task::batch::run_batch`.
///
/// ```ignore
/// use cano::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Resize, Done }
///
/// struct Double;
///
/// #[task::batch(state = Step)]
/// impl Double {
///     async fn load(&self, _res: &Resources) -> Result<Vec<u32>, CanoError> {
///         Ok(vec![1, 2, 3])
///     }
///     async fn process_item(&self, item: &u32) -> Result<u32, CanoError> {
///         Ok(item * 2)
///     }
///     async fn finish(&self, _res: &Resources, outputs: Vec<Result<u32, CanoError>>)
///         -> Result<TaskResult<Step>, CanoError>
///     {
///         Ok(TaskResult::Single(Step::Done))
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn batch_task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_model(&batch::MODEL, args, item)
}

/// Implements `cano::SteppedTask` (and `cano::Task` for it): `#[cano::task::stepped]`.
///
/// The forms are those of [`macro@router_task`]. An inherent impl requires `step` and may
/// define `config`, `name` and `is_retryable` (asked per step by
/// `Workflow::register_stepped`). `type Cursor` may be declared; otherwise it is inferred from
/// the `cursor: Option<Cursor>` parameter of `step`. The `Task` impl runs the steps in
/// memory with `cano::task::stepped::run_stepped`.
///
/// ```ignore
/// use cano::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Count, Done }
///
/// struct CountTo(u32);
///
/// #[task::stepped(state = Step)]
/// impl CountTo {
///     async fn step(&self, _res: &Resources, cursor: Option<u32>)
///         -> Result<StepOutcome<u32, Step>, CanoError>
///     {
///         let n = cursor.unwrap_or(0) + 1;
///         Ok(if n >= self.0 { StepOutcome::Done(TaskResult::Single(Step::Done)) } else { StepOutcome::More(n) })
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn stepped_task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_model(&stepped::MODEL, args, item)
}

/// Implements `cano::StreamTask` (and `cano::Task` for it): `#[cano::task::stream]`.
///
/// The forms are those of [`macro@router_task`]. An inherent impl requires `open`,
/// `process_item`, `flush_window` and `on_close`, and may define `window`,
/// `on_item_error`, `config` and `name`. `type Item`, `type Output` and `type Cursor` may
/// be declared; otherwise `Item` is inferred from `process_item`'s `item` parameter (taken
/// by value) and `Output` and `Cursor` from its `Result<(Output, Cursor), CanoError>`.
/// The `Task` impl runs the stream in memory with `cano::task::stream::run_stream`;
/// `Workflow::register_stream` runs it durably.
///
/// ```text
/// #[task::stream(state = Step)]
/// impl Import {
///     fn window(&self) -> StreamWindow { StreamWindow::Count(500) }
///     async fn open(&self, res: &Resources, cursor: Option<u64>) -> Result<ItemStream<Line>, CanoError> { ... }
///     async fn process_item(&self, res: &Resources, line: Line) -> Result<(Row, u64), CanoError> { ... }
///     async fn flush_window(&self, res: &Resources, rows: Vec<Row>) -> Result<WindowSignal<Step>, CanoError> { ... }
///     async fn on_close(&self, res: &Resources, reason: CloseReason) -> Result<TaskResult<Step>, CanoError> { ... }
/// }
/// ```
#[proc_macro_attribute]
pub fn stream_task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_model(&stream::MODEL, args, item)
}

/// Implements `cano::CompensatableTask`: `#[cano::saga::task]`.
///
/// * On a trait definition or on `impl CompensatableTask<S[, K]> for T`: the async rewrite
///   alone. No arguments.
/// * On an inherent impl, `#[saga::task(state = S[, key = K])]`: `type Output`, `run` and
///   `compensate` are required, `config`, `name` and `is_retryable` are optional; anything
///   else is an error.
///   Writes `impl ::cano::CompensatableTask<S[, K]> for T`.
///
/// No `Task` impl is generated: register the type with
/// `Workflow::register_with_compensation`.
///
/// ```ignore
/// use cano::prelude::*;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// enum Step { Reserve, Done }
///
/// struct Reserve;
///
/// #[saga::task(state = Step)]
/// impl Reserve {
///     type Output = String;
///     async fn run(&self, _res: &Resources) -> Result<(TaskResult<Step>, String), CanoError> {
///         Ok((TaskResult::Single(Step::Done), "R-1".to_string()))
///     }
///     async fn compensate(&self, _res: &Resources, reservation: String) -> Result<(), CanoError> {
///         Ok(())
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn compensatable_task(args: TokenStream, item: TokenStream) -> TokenStream {
    emit_model(&saga::MODEL, args, item)
}

/// Runs a model attribute (`router_task`, …, `compensatable_task`).
fn emit_model(model: &model::Model, args: TokenStream, item: TokenStream) -> TokenStream {
    emit_attribute(item.clone(), || {
        let input = model::parse(args.into(), item.into())?;
        let plan = model::validate(model, input)?;
        model::expand(model, plan)
    })
}

/// The expansion, or the errors followed by a best-effort copy of `item` (so that uses of
/// the item elsewhere do not fail too).
fn emit_attribute(
    item: TokenStream,
    expand: impl FnOnce() -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    match expand() {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(fallback::best_effort(item.into()));
            tokens.into()
        }
    }
}

/// The derived items, or the errors.
fn emit_derive(expand: impl FnOnce() -> syn::Result<proc_macro2::TokenStream>) -> TokenStream {
    expand()
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
