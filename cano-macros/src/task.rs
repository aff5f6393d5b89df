//! `#[task]`: the async rewrite, plus the inherent form `#[task(state = S[, key = K])] impl T`
//! that writes the `impl ::cano::Task<S[, K]> for T` header.

use crate::args::StateKeyArgs;
use crate::errors::Errors;
use crate::inherent::{self, Rules};
use crate::rewrite::{self, EXPECTED_TRAIT_OR_IMPL};
use proc_macro2::TokenStream;
use syn::{Item, ItemImpl, parse_quote};

/// The attribute's path after `cano::`, for messages.
const ATTR: &str = "task";

const RULES: Rules<'static> = Rules {
    prefix: "",
    trait_name: "Task",
    methods: &["run", "run_bare", "config", "name", "is_retryable"],
    assoc_types: &[],
};

/// A parsed `#[task]` invocation.
pub(crate) struct Input {
    args: StateKeyArgs,
    item: Item,
    /// Problems found while parsing the arguments, reported together with the item's.
    errors: Errors,
}

/// What to generate.
pub(crate) enum Plan {
    /// Trait definitions and trait impls: the async rewrite alone.
    Rewrite(Item),
    /// An inherent impl, already turned into `impl ::cano::Task<…> for T`.
    Inherent(ItemImpl),
}

/// Parses the attribute arguments and the annotated item.
pub(crate) fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Input> {
    let mut errors = Errors::default();
    let args = StateKeyArgs::parse(args, &mut errors);
    let item = syn::parse2(item)?;
    Ok(Input { args, item, errors })
}

/// Chooses the form and checks the inherent form's rules, reporting every problem at once.
pub(crate) fn validate(input: Input) -> syn::Result<Plan> {
    let Input {
        args,
        item,
        mut errors,
    } = input;
    let plan = match item {
        Item::Impl(item) if item.trait_.is_some() => {
            args.reject_on_trait_impl(ATTR, &mut errors);
            Plan::Rewrite(Item::Impl(item))
        }
        Item::Impl(item) => Plan::Inherent(validate_inherent(item, &args, &mut errors)),
        item @ Item::Trait(_) => Plan::Rewrite(item),
        other => {
            errors.spanned(&other, EXPECTED_TRAIT_OR_IMPL);
            Plan::Rewrite(other)
        }
    };
    errors.finish()?;
    Ok(plan)
}

/// Emits the rewritten item.
pub(crate) fn expand(plan: Plan) -> syn::Result<TokenStream> {
    match plan {
        Plan::Rewrite(item) => rewrite::rewrite_item(item),
        Plan::Inherent(item) => rewrite::rewrite_item(Item::Impl(item)),
    }
}

fn validate_inherent(item: ItemImpl, args: &StateKeyArgs, errors: &mut Errors) -> ItemImpl {
    let header = inherent::header_span(&item);
    let inventory = inherent::inventory(&item, &RULES, errors);
    match (inventory.method("run"), inventory.method("run_bare")) {
        (Some(_), Some(run_bare)) => errors.spanned(
            run_bare,
            "implement only one of `run` / `run_bare`, not both: `run` receives the \
             resources, `run_bare` is for tasks that need none",
        ),
        (None, None) => errors.spanned(
            &header,
            "#[cano::task] requires exactly one of `run` / `run_bare`: \
             `async fn run(&self, res: &Resources) -> Result<TaskResult<S>, CanoError>` or \
             `async fn run_bare(&self) -> Result<TaskResult<S>, CanoError>`",
        ),
        _ => {}
    }
    let trait_path = args.trait_path(&parse_quote!(::cano::Task), ATTR, header, errors);
    inherent::into_trait_impl(item, trait_path)
}
