//! `#[checkpoint_store]`: the async rewrite, plus the inherent form `#[checkpoint_store] impl T`
//! that writes the `impl ::cano::CheckpointStore for T` header.
//! Attribute arguments are ignored.

use crate::errors::Errors;
use crate::inherent::{self, Rules};
use crate::rewrite::{self, EXPECTED_TRAIT_OR_IMPL};
use proc_macro2::TokenStream;
use syn::{Item, ItemImpl, parse_quote};

const RULES: Rules<'static> = Rules {
    prefix: "#[cano::checkpoint_store]: ",
    trait_name: "CheckpointStore",
    methods: &["append", "load_run", "clear"],
    assoc_types: &[],
};

/// The required methods with the signatures quoted by the "missing" errors.
const REQUIRED: [(&str, &str); 3] = [
    (
        "append",
        "async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError>",
    ),
    (
        "load_run",
        "async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError>",
    ),
    (
        "clear",
        "async fn clear(&self, workflow_id: &str) -> Result<(), CanoError>",
    ),
];

/// Parses the annotated item (the arguments are ignored).
pub(crate) fn parse(item: TokenStream) -> syn::Result<Item> {
    syn::parse2(item)
}

/// Checks the inherent form's rules (every problem at once) and builds the trait impl.
pub(crate) fn validate(item: Item) -> syn::Result<Item> {
    match item {
        Item::Impl(item) if item.trait_.is_none() => validate_inherent(item).map(Item::Impl),
        item @ (Item::Impl(_) | Item::Trait(_)) => Ok(item),
        other => Err(syn::Error::new_spanned(other, EXPECTED_TRAIT_OR_IMPL)),
    }
}

/// Emits the rewritten item.
pub(crate) fn expand(item: Item) -> syn::Result<TokenStream> {
    rewrite::rewrite_item(item)
}

fn validate_inherent(item: ItemImpl) -> syn::Result<ItemImpl> {
    let mut errors = Errors::default();
    let inventory = inherent::inventory(&item, &RULES, &mut errors);
    for (name, signature) in REQUIRED {
        if !inventory.has_method(name) {
            errors.spanned(
                inherent::header_span(&item),
                format!("#[cano::checkpoint_store] requires `{signature}` — missing `{name}`"),
            );
        }
    }
    errors.finish()?;
    Ok(inherent::into_trait_impl(
        item,
        parse_quote!(::cano::CheckpointStore),
    ))
}
