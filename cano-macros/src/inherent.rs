//! Turning an inherent `impl T { … }` into `impl Trait for T { … }`.
//!
//! The inherent forms of the attribute macros (`#[task(state = S)] impl T`,
//! `#[checkpoint_store] impl T`, and the processing-model macros) all follow the same steps:
//! check the items against a whitelist, report the missing required ones, inject defaults for
//! the absent optional ones, then swap the trait into the header. This module holds those
//! steps; each macro supplies its own rules and messages.

use crate::errors::{Errors, backticked_list, span_of};
use proc_macro2::TokenStream;
use syn::{Ident, ImplItem, ItemImpl, Path, Token, Visibility};

/// What an inherent impl may contain for one target trait.
pub(crate) struct Rules<'a> {
    /// Prefix of every message, e.g. `"#[cano::task::router]: "` (may be empty).
    pub(crate) prefix: &'a str,
    /// Name of the target trait, for messages (`"Task"`).
    pub(crate) trait_name: &'a str,
    /// Every method name allowed in the impl.
    pub(crate) methods: &'a [&'a str],
    /// Every associated type name allowed in the impl.
    pub(crate) assoc_types: &'a [&'a str],
}

/// The method and associated-type names found in an impl, with their tokens for spans.
pub(crate) struct Inventory {
    methods: Vec<Ident>,
    assoc_types: Vec<Ident>,
}

impl Inventory {
    /// The ident of method `name`, if the impl has it.
    pub(crate) fn method(&self, name: &str) -> Option<&Ident> {
        self.methods.iter().find(|ident| *ident == name)
    }

    /// Whether the impl has method `name`.
    pub(crate) fn has_method(&self, name: &str) -> bool {
        self.method(name).is_some()
    }

    /// Whether the impl has associated type `name`.
    pub(crate) fn has_assoc_type(&self, name: &str) -> bool {
        self.assoc_types.iter().any(|ident| ident == name)
    }
}

/// Lists the impl's methods and associated types, recording an error (spanned at the item's
/// name) for each one `rules` does not allow. Other items (consts, macros) pass unchecked.
pub(crate) fn inventory(item: &ItemImpl, rules: &Rules<'_>, errors: &mut Errors) -> Inventory {
    let mut inventory = Inventory {
        methods: Vec::new(),
        assoc_types: Vec::new(),
    };
    for impl_item in &item.items {
        match impl_item {
            ImplItem::Fn(method) => {
                let ident = &method.sig.ident;
                if !rules.methods.iter().any(|allowed| ident == allowed) {
                    errors.spanned(
                        ident,
                        format!(
                            "{}unexpected method `{ident}` in inherent impl; only {} are allowed",
                            rules.prefix,
                            backticked_list(rules.methods),
                        ),
                    );
                }
                inventory.methods.push(ident.clone());
            }
            ImplItem::Type(ty) => {
                let ident = &ty.ident;
                if rules.assoc_types.is_empty() {
                    errors.spanned(
                        ty,
                        format!(
                            "{}associated types are not part of the `{}` trait",
                            rules.prefix, rules.trait_name,
                        ),
                    );
                } else if !rules.assoc_types.iter().any(|allowed| ident == allowed) {
                    errors.spanned(
                        ident,
                        format!(
                            "{}unexpected associated type `{ident}`; only {} allowed",
                            rules.prefix,
                            match rules.assoc_types {
                                [one] => format!("`{one}` is"),
                                many => format!("{} are", backticked_list(many)),
                            },
                        ),
                    );
                }
                inventory.assoc_types.push(ident.clone());
            }
            _ => {}
        }
    }
    inventory
}

/// Tokens covering `impl<…> SelfTy`, to point errors about the impl as a whole.
pub(crate) fn header_span(item: &ItemImpl) -> TokenStream {
    span_of(item.impl_token, &item.self_ty)
}

/// Appends each `(name, item)` default whose method is not already in the impl.
#[allow(dead_code)] // used by the processing-model macros
pub(crate) fn inject_defaults(
    item: &mut ItemImpl,
    inventory: &Inventory,
    defaults: impl IntoIterator<Item = (&'static str, ImplItem)>,
) {
    for (name, default) in defaults {
        if !inventory.has_method(name) && !inventory.has_assoc_type(name) {
            item.items.push(default);
        }
    }
}

/// Turns `impl<G> T where W { items }` into `impl<G> TraitPath for T where W { items }`,
/// keeping attributes, `unsafe`, generics and the where-clause. Visibility on the items is
/// dropped (trait impl items cannot have one).
pub(crate) fn into_trait_impl(mut item: ItemImpl, trait_path: Path) -> ItemImpl {
    item.trait_ = Some((None, trait_path, <Token![for]>::default()));
    for impl_item in &mut item.items {
        match impl_item {
            ImplItem::Fn(method) => method.vis = Visibility::Inherited,
            ImplItem::Type(ty) => ty.vis = Visibility::Inherited,
            ImplItem::Const(constant) => constant.vis = Visibility::Inherited,
            _ => {}
        }
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;
    use syn::parse_quote;

    const RULES: Rules<'static> = Rules {
        prefix: "#[x]: ",
        trait_name: "X",
        methods: &["a", "b"],
        assoc_types: &[],
    };

    fn messages(errors: Errors) -> Vec<String> {
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn reports_unknown_methods_and_types() {
        let item: ItemImpl = parse_quote! {
            impl T { fn a(&self) {} fn c(&self) {} type Z = u8; const K: u8 = 1; }
        };
        let mut errors = Errors::default();
        let inventory = inventory(&item, &RULES, &mut errors);
        assert!(inventory.has_method("a") && inventory.has_method("c"));
        assert!(!inventory.has_method("b"));
        assert_eq!(
            messages(errors),
            [
                "#[x]: unexpected method `c` in inherent impl; only `a` and `b` are allowed",
                "#[x]: associated types are not part of the `X` trait",
            ]
        );
    }

    #[test]
    fn whitelisted_assoc_types() {
        let rules = Rules {
            assoc_types: &["Item", "ItemOutput"],
            ..RULES
        };
        let item: ItemImpl = parse_quote!(impl T { type Item = u8; type Other = u8; });
        let mut errors = Errors::default();
        let inventory = inventory(&item, &rules, &mut errors);
        assert!(inventory.has_assoc_type("Item"));
        assert_eq!(
            messages(errors),
            ["#[x]: unexpected associated type `Other`; only `Item` and `ItemOutput` are allowed"]
        );
    }

    #[test]
    fn builds_trait_impl_with_defaults() {
        let mut item: ItemImpl = parse_quote! {
            #[doc = "d"]
            impl<T: Send> G<T> where T: Sync { pub fn a(&self) {} }
        };
        let inventory = inventory(&item, &RULES, &mut Errors::default());
        inject_defaults(
            &mut item,
            &inventory,
            [
                (
                    "a",
                    parse_quote!(
                        fn a(&self) {
                            unreachable!()
                        }
                    ),
                ),
                (
                    "b",
                    parse_quote!(
                        fn b(&self) {}
                    ),
                ),
            ],
        );
        let item = into_trait_impl(item, parse_quote!(::x::X<u8>));
        let want: ItemImpl = parse_quote! {
            #[doc = "d"]
            impl<T: Send> ::x::X<u8> for G<T> where T: Sync { fn a(&self) {} fn b(&self) {} }
        };
        assert_eq!(
            item.to_token_stream().to_string(),
            want.to_token_stream().to_string()
        );
    }
}
