//! `#[resource]`: the plain async rewrite; attribute arguments are ignored.

use proc_macro2::TokenStream;
use syn::Item;

/// Parses the annotated item (the arguments are ignored).
pub(crate) fn parse(item: TokenStream) -> syn::Result<Item> {
    syn::parse2(item)
}

/// Emits the rewritten trait or impl; any other item is an error.
pub(crate) fn expand(item: Item) -> syn::Result<TokenStream> {
    crate::rewrite::rewrite_item(item)
}
