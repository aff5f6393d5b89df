//! The async-fn rewrite shared by every attribute macro.
//!
//! Each `async fn` in a trait definition or an impl block becomes an ordinary method that
//! returns `Pin<Box<dyn Future<Output = R> + Send + 'async_trait>>`, the shape the
//! `async-trait` crate produces, so the traits stay object-safe and hand-written impls of
//! cano's traits keep matching the generated ones.

use crate::errors::Errors;
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Block, FnArg, GenericParam, ImplItem, Item, ItemImpl, ItemTrait, Lifetime, LifetimeParam,
    ParenthesizedGenericArguments, Pat, PatIdent, ReturnType, Signature, Stmt, TraitItem, Type,
    TypeBareFn, TypeReference, WherePredicate, parse_quote, parse_quote_spanned,
};

/// Message for an item that is neither a trait nor an impl block.
pub(crate) const EXPECTED_TRAIT_OR_IMPL: &str =
    "cano async-trait macros: expected a trait or impl block";

/// Rewrites every `async fn` of a trait definition or impl block; any other item is an error.
pub(crate) fn rewrite_item(item: Item) -> syn::Result<TokenStream> {
    match item {
        Item::Trait(mut item) => {
            rewrite_trait(&mut item)?;
            Ok(item.into_token_stream())
        }
        Item::Impl(mut item) => {
            rewrite_impl(&mut item)?;
            Ok(item.into_token_stream())
        }
        other => Err(syn::Error::new_spanned(other, EXPECTED_TRAIT_OR_IMPL)),
    }
}

/// Rewrites the `async fn`s of a trait definition (default bodies included).
pub(crate) fn rewrite_trait(item: &mut ItemTrait) -> syn::Result<()> {
    let mut errors = Errors::default();
    for trait_item in &mut item.items {
        if let TraitItem::Fn(method) = trait_item {
            errors.check(rewrite_fn(&mut method.sig, method.default.as_mut()));
        }
    }
    errors.finish()
}

/// Rewrites the `async fn`s of an impl block (trait impl or inherent).
pub(crate) fn rewrite_impl(item: &mut ItemImpl) -> syn::Result<()> {
    let mut errors = Errors::default();
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            errors.check(rewrite_fn(&mut method.sig, Some(&mut method.block)));
        }
    }
    errors.finish()
}

/// What the receiver of a method requires of `Self` for the future to be `Send`.
enum ReceiverKind {
    /// No receiver: nothing is required of `Self`.
    None,
    /// `&self`: the future holds `&Self`, so `Self: Sync`.
    Shared,
    /// `&mut self`: the future holds `&mut Self`, so `Self: Send`.
    Exclusive,
}

/// Rewrites one method if it is `async`; leaves every other method untouched.
fn rewrite_fn(sig: &mut Signature, body: Option<&mut Block>) -> syn::Result<()> {
    if sig.asyncness.take().is_none() {
        return Ok(());
    }
    let mut lifetimes = Lifetimes::default();
    let mut receiver = ReceiverKind::None;
    let mut receiver_lifetime: Option<Lifetime> = None;
    let mut bindings: Vec<Stmt> = Vec::new();
    let mut errors = Errors::default();
    let has_body = body.is_some();

    for (index, arg) in sig.inputs.iter_mut().enumerate() {
        match arg {
            FnArg::Receiver(recv) => {
                if let Some((_, lifetime)) = &mut recv.reference {
                    lifetimes.elide(lifetime);
                    if let Type::Reference(ty) = &mut *recv.ty {
                        ty.lifetime.clone_from(lifetime);
                    }
                } else if let Type::Reference(ty) = &mut *recv.ty {
                    // `self: &Self` / `self: &mut Self`
                    lifetimes.elide(&mut ty.lifetime);
                    lifetimes.elide_chain(&mut ty.elem);
                } else {
                    errors.spanned(
                        &*recv,
                        "cano async macros do not support a by-value `self` in an `async fn`; \
                         take `&self` or `&mut self`",
                    );
                    continue;
                }
                let mutable = match &*recv.ty {
                    Type::Reference(ty) => {
                        receiver_lifetime.clone_from(&ty.lifetime);
                        ty.mutability.is_some()
                    }
                    _ => recv.mutability.is_some(),
                };
                receiver = if mutable {
                    ReceiverKind::Exclusive
                } else {
                    ReceiverKind::Shared
                };
            }
            FnArg::Typed(arg) => {
                lifetimes.elide_chain(&mut arg.ty);
                if has_body {
                    bindings.extend(bind_param(&mut arg.pat, index));
                }
            }
        }
    }
    errors.finish()?;

    // Elided lifetimes in the output refer to the receiver's (or the only input) lifetime;
    // now that the inputs name their lifetimes, name it in the output too.
    let elision_target =
        receiver_lifetime.or_else(|| match (&*lifetimes.fresh, &*lifetimes.named) {
            ([only], []) | ([], [only]) => Some(only.clone()),
            _ => None,
        });
    if let (Some(target), ReturnType::Type(_, ty)) = (elision_target, &mut sig.output) {
        NameElidedLifetimes(target).visit_type_mut(ty);
    }

    let async_trait = Lifetime::new("'async_trait", Span::call_site());
    let mut bounds: Vec<WherePredicate> = Vec::new();
    for param in &sig.generics.params {
        match param {
            GenericParam::Lifetime(param) => {
                let lifetime = &param.lifetime;
                bounds.push(parse_quote!(#lifetime: #async_trait));
            }
            GenericParam::Type(param) => {
                let ident = &param.ident;
                bounds.push(parse_quote!(#ident: #async_trait));
            }
            GenericParam::Const(_) => {}
        }
    }
    for lifetime in &lifetimes.named {
        let declared_here = sig.generics.lifetimes().any(|p| p.lifetime == *lifetime);
        if !declared_here {
            bounds.push(parse_quote!(#lifetime: #async_trait));
        }
    }
    for lifetime in &lifetimes.fresh {
        bounds.push(parse_quote!(#lifetime: #async_trait));
    }
    match receiver {
        ReceiverKind::None => {}
        ReceiverKind::Shared => {
            bounds.push(parse_quote!(Self: ::core::marker::Sync + #async_trait))
        }
        ReceiverKind::Exclusive => {
            bounds.push(parse_quote!(Self: ::core::marker::Send + #async_trait));
        }
    }

    // Lifetime parameters must precede type and const parameters.
    let first_non_lifetime = sig
        .generics
        .params
        .iter()
        .take_while(|param| matches!(param, GenericParam::Lifetime(_)))
        .count();
    let new_params = lifetimes.fresh.iter().chain(std::iter::once(&async_trait));
    for (offset, lifetime) in new_params.enumerate() {
        let param = GenericParam::Lifetime(LifetimeParam::new(lifetime.clone()));
        sig.generics
            .params
            .insert(first_non_lifetime + offset, param);
    }
    sig.generics.make_where_clause().predicates.extend(bounds);

    let (output, output_span) = match &sig.output {
        ReturnType::Default => (quote!(()), sig.ident.span()),
        ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
    };
    // Spanned at the user's return type, so a signature mismatch with the trait points there.
    sig.output = parse_quote_spanned! {output_span=>
        -> ::core::pin::Pin<::std::boxed::Box<
            dyn ::core::future::Future<Output = #output> + ::core::marker::Send + #async_trait
        >>
    };

    if let Some(body) = body {
        let original = &*body;
        *body = parse_quote!({
            ::std::boxed::Box::pin(async move {
                #(#bindings)*
                // The annotation pins the block's type, so `?` and `Ok(..)` in the body infer
                // as they would in a native `async fn`.
                #[allow(clippy::diverging_sub_expression)]
                let __ret: #output = #original;
                #[allow(unreachable_code)]
                __ret
            })
        });
    }
    Ok(())
}

/// Makes a parameter usable inside the `async move` block and returns the statements that
/// move it in.
///
/// A plain identifier keeps its name (minus `mut`, which moves onto the inner binding); any
/// other pattern (`_`, tuples, `ref x`, …) is renamed to `__argN` in the signature and
/// destructured inside the block. Either way every parameter is moved into the future, as
/// with a native `async fn`, so it is dropped when the future completes (a `_: Guard`
/// parameter lives as long as the future, too).
fn bind_param(pat: &mut Box<Pat>, index: usize) -> Vec<Stmt> {
    // `let x = x;` is deliberate; keep clippy (default, pedantic and restriction groups)
    // from flagging the generated rebinding in user crates.
    let allows = quote! {
        #[allow(
            clippy::redundant_locals,
            clippy::shadow_same,
            clippy::shadow_unrelated,
            clippy::used_underscore_binding,
            clippy::no_effect_underscore_binding
        )]
    };
    if let Pat::Ident(PatIdent {
        by_ref: None,
        subpat: None,
        ident,
        mutability,
        ..
    }) = &mut **pat
    {
        let mutability = mutability.take();
        return vec![parse_quote! {
            #allows
            let #mutability #ident = #ident;
        }];
    }
    let arg = format_ident!("__arg{}", index);
    let original = std::mem::replace(
        &mut **pat,
        Pat::Ident(PatIdent {
            attrs: Vec::new(),
            by_ref: None,
            mutability: None,
            ident: arg.clone(),
            subpat: None,
        }),
    );
    vec![
        parse_quote! {
            #allows
            let #arg = #arg;
        },
        parse_quote!(let #original = #arg;),
    ]
}

/// Replaces elided lifetimes (`&T`, `&'_ T`, `Cow<'_, T>`) with a given one, except inside
/// `fn(..)` types and `Fn(..)` bounds, which have their own elision scope.
struct NameElidedLifetimes(Lifetime);

impl VisitMut for NameElidedLifetimes {
    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(self.0.clone());
        }
        visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.0.clone();
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(&mut self, _: &mut ParenthesizedGenericArguments) {
    }
}

/// The lifetimes a method's parameters end up with.
#[derive(Default)]
struct Lifetimes {
    /// Synthesised `'life0`, `'life1`, … in order of appearance.
    fresh: Vec<Lifetime>,
    /// Explicit lifetimes written by the user on top-level references (not `'static`).
    named: Vec<Lifetime>,
}

impl Lifetimes {
    /// Gives an elided (or `'_`) reference lifetime a fresh name; records a named one.
    fn elide(&mut self, lifetime: &mut Option<Lifetime>) {
        match lifetime {
            Some(named) if named.ident != "_" => {
                if named.ident != "static" && !self.named.contains(named) {
                    self.named.push(named.clone());
                }
            }
            _ => {
                let fresh = Lifetime::new(&format!("'life{}", self.fresh.len()), Span::call_site());
                self.fresh.push(fresh.clone());
                *lifetime = Some(fresh);
            }
        }
    }

    /// Walks a top-level chain of references (`&T`, `&mut &T`, …) and names each elided
    /// lifetime. References nested in other types (`Option<&T>`) are left alone.
    fn elide_chain(&mut self, ty: &mut Type) {
        match ty {
            Type::Reference(reference) => {
                self.elide(&mut reference.lifetime);
                self.elide_chain(&mut reference.elem);
            }
            Type::Paren(paren) => self.elide_chain(&mut paren.elem),
            Type::Group(group) => self.elide_chain(&mut group.elem),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(tokens: TokenStream) -> String {
        let item: Item = syn::parse2(tokens).unwrap();
        let out = rewrite_item(item).unwrap();
        let file: syn::File = syn::parse2(out).unwrap();
        prettyish(&file)
    }

    fn prettyish(file: &syn::File) -> String {
        file.to_token_stream().to_string()
    }

    fn normalize(tokens: TokenStream) -> String {
        let file: syn::File = syn::parse2(tokens).unwrap();
        prettyish(&file)
    }

    #[test]
    fn trait_method_shape_matches_async_trait() {
        let got = rewrite(quote! {
            trait T<K> {
                async fn run(&self, res: &Resources<K>) -> Result<u8, E>;
            }
        });
        let want = normalize(quote! {
            trait T<K> {
                fn run<'life0, 'life1, 'async_trait>(&'life0 self, res: &'life1 Resources<K>)
                    -> ::core::pin::Pin<::std::boxed::Box<
                        dyn ::core::future::Future<Output = Result<u8, E>>
                            + ::core::marker::Send + 'async_trait>>
                where
                    'life0: 'async_trait,
                    'life1: 'async_trait,
                    Self: ::core::marker::Sync + 'async_trait;
            }
        });
        assert_eq!(got, want);
    }

    #[test]
    fn mut_receiver_nested_refs_and_generic_args() {
        let got = rewrite(quote! {
            trait T {
                async fn f(&mut self, a: & &str, b: Option<&u8>, c: &'_ u8, d: &'static str);
            }
        });
        let want = normalize(quote! {
            trait T {
                fn f<'life0, 'life1, 'life2, 'life3, 'async_trait>(
                    &'life0 mut self, a: &'life1 &'life2 str, b: Option<&u8>, c: &'life3 u8,
                    d: &'static str
                ) -> ::core::pin::Pin<::std::boxed::Box<
                        dyn ::core::future::Future<Output = ()>
                            + ::core::marker::Send + 'async_trait>>
                where
                    'life0: 'async_trait,
                    'life1: 'async_trait,
                    'life2: 'async_trait,
                    'life3: 'async_trait,
                    Self: ::core::marker::Send + 'async_trait;
            }
        });
        assert_eq!(got, want);
    }

    #[test]
    fn lifetimes_go_before_type_params_and_keep_existing_predicates() {
        let allows = quote! {
            #[allow(
                clippy::redundant_locals,
                clippy::shadow_same,
                clippy::shadow_unrelated,
                clippy::used_underscore_binding,
                clippy::no_effect_underscore_binding
            )]
        };
        let got = rewrite(quote! {
            impl X {
                async fn g<'a, T: Send>(x: &'a T, y: T) -> u8 where T: Sync { 1 }
            }
        });
        let want = normalize(quote! {
            impl X {
                fn g<'a, 'async_trait, T: Send>(x: &'a T, y: T)
                    -> ::core::pin::Pin<::std::boxed::Box<
                        dyn ::core::future::Future<Output = u8>
                            + ::core::marker::Send + 'async_trait>>
                where
                    T: Sync,
                    'a: 'async_trait,
                    T: 'async_trait
                {
                    ::std::boxed::Box::pin(async move {
                        #allows
                        let x = x;
                        #allows
                        let y = y;
                        #[allow(clippy::diverging_sub_expression)]
                        let __ret: u8 = { 1 };
                        #[allow(unreachable_code)]
                        __ret
                    })
                }
            }
        });
        assert_eq!(got, want);
    }

    #[test]
    fn patterns_are_renamed_and_destructured() {
        let got = rewrite(quote! {
            impl X {
                async fn h(&self, (a, b): (u8, u8), mut c: u32, _: u8) {}
            }
        });
        assert!(got.contains("__arg1 : (u8 , u8)"), "{got}");
        assert!(got.contains("let (a , b) = __arg1 ;"), "{got}");
        assert!(got.contains(" c : u32"), "{got}");
        assert!(got.contains("let mut c = c ;"), "{got}");
        assert!(got.contains("__arg3 : u8"), "{got}");
        assert!(got.contains("let _ = __arg3 ;"), "{got}");
    }

    #[test]
    fn elided_output_lifetimes_follow_the_receiver() {
        let got = rewrite(quote! {
            trait T {
                async fn a(&self, x: &u8) -> (&str, Cow<'_, str>, fn(&u8) -> &u8);
                async fn b(x: &u8) -> &u8;
            }
        });
        assert!(
            got.contains("Output = (& 'life0 str , Cow < 'life0 , str > , fn (& u8) -> & u8)"),
            "{got}"
        );
        assert!(got.contains("Output = & 'life0 u8"), "{got}");
    }

    #[test]
    fn non_async_items_are_untouched() {
        let src = quote! {
            impl X {
                type A = u8;
                const C: u8 = 1;
                fn sync(&self) -> u8 { 1 }
            }
        };
        assert_eq!(rewrite(src.clone()), normalize(src));
    }

    #[test]
    fn by_value_self_and_other_items_are_errors() {
        let item: Item = syn::parse2(quote!(impl X { async fn f(self) {} })).unwrap();
        let err = rewrite_item(item).unwrap_err().to_string();
        assert!(err.contains("by-value `self`"), "{err}");
        let item: Item = syn::parse2(quote!(
            struct S;
        ))
        .unwrap();
        let err = rewrite_item(item).unwrap_err().to_string();
        assert_eq!(err, EXPECTED_TRAIT_OR_IMPL);
    }
}
