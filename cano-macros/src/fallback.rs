//! What an attribute macro emits next to its errors.
//!
//! Emitting the user's item keeps the rest of the crate compiling against it, so the user
//! sees the macro's errors rather than a cascade of "cannot find" and trait errors. The item
//! is adjusted just enough to compile on its own.

use crate::rewrite;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{ImplItem, Item};

/// The annotated item, made to compile without the macro where that is cheap:
///
/// * a trait impl or trait definition gets the async rewrite, so it still matches (or
///   declares) the boxed method shapes — e.g. when only the attribute arguments were wrong;
/// * an inherent impl loses its associated types (unstable on inherent impls) and keeps
///   its methods as native `async fn`s;
/// * anything else, or anything the rewrite rejects, is emitted unchanged.
pub(crate) fn best_effort(item: TokenStream) -> TokenStream {
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Impl(mut imp)) if imp.trait_.is_none() => {
            imp.items.retain(|item| !matches!(item, ImplItem::Type(_)));
            imp.into_token_stream()
        }
        Ok(Item::Impl(mut imp)) => match rewrite::rewrite_impl(&mut imp) {
            Ok(()) => imp.into_token_stream(),
            Err(_) => item,
        },
        Ok(Item::Trait(mut def)) => match rewrite::rewrite_trait(&mut def) {
            Ok(()) => def.into_token_stream(),
            Err(_) => item,
        },
        _ => item,
    }
}
