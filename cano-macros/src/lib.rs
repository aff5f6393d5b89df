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
mod checkpoint_store;
mod derive_resource;
mod errors;
mod fallback;
mod from_resources;
mod inherent;
mod resource;
mod rewrite;
mod task;

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
