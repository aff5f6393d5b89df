//! The surface forms shared by the processing-model attributes (`#[task::router]`,
//! `#[task::poll]`, `#[task::batch]`, `#[task::stepped]`) and `#[saga::task]`.
//!
//! Each attribute accepts:
//!
//! * a trait definition: the async rewrite alone;
//! * a trait impl `impl [P::]XTask<S[, K]> for T`: the async rewrite, plus a companion
//!   `impl [P::]Task<S[, K]> for T` that runs the model;
//! * an inherent impl with `(state = S[, key = K])`: the items are checked against the
//!   model's allow-list, defaults and inferable associated types are added, the block becomes
//!   `impl ::cano::XTask<S[, K]> for T`, and the companion `impl ::cano::Task<S[, K]> for T`
//!   follows.
//!
//! A [`Model`] supplies what differs: names, allowed and required items, defaults, type
//! inference, and how the companion's `run` drives the model (`#[saga::task]` has no
//! companion).

use crate::args::StateKeyArgs;
use crate::errors::Errors;
use crate::inherent::{self, Inventory, Rules};
use crate::rewrite;
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{
    GenericArgument, Ident, ImplItem, ImplItemFn, ImplItemType, Item, ItemImpl, Path,
    PathArguments, Token, Type, Visibility, parse_quote,
};

/// What one attribute generates, beyond the shared forms.
pub(crate) struct Model {
    /// The attribute's path after `cano::`, for messages (`"task::router"`).
    pub(crate) attr: &'static str,
    /// The trait's name at the cano crate root (`"RouterTask"`).
    pub(crate) trait_name: &'static str,
    /// What an inherent impl may contain.
    pub(crate) rules: Rules<'static>,
    /// Start of the messages about missing items (`"#[cano::task::router] requires"`).
    pub(crate) requires: &'static str,
    /// Methods an inherent impl must define, with the signature quoted when one is missing.
    pub(crate) required_methods: &'static [(&'static str, &'static str)],
    /// Associated types an inherent impl must define, with the item quoted when missing.
    pub(crate) required_types: &'static [(&'static str, &'static str)],
    /// Methods added to an inherent impl that does not define them, by name.
    pub(crate) defaults: fn() -> Vec<(&'static str, ImplItem)>,
    /// Associated types an inherent impl leaves out, inferred from its methods. Records an
    /// error for each one that cannot be inferred.
    pub(crate) infer: fn(&ItemImpl, &Inventory, &mut Errors) -> Vec<ImplItem>,
    /// How the companion `Task::run` drives the model; `None` for no companion.
    pub(crate) runner: Option<Runner>,
    /// Whether the companion's `Task::is_retryable` forwards to the model trait's
    /// `is_retryable`, so that the attempts the companion's config allows retry only the
    /// errors the task says are worth it. Otherwise the companion keeps `Task`'s default.
    pub(crate) forwards_is_retryable: bool,
}

/// The body of the companion `Task::run`.
#[derive(Clone, Copy)]
pub(crate) enum Runner {
    /// Return the future of this model method, which already yields the task result.
    Method(&'static str),
    /// Box the future of the runner `cano::task::<module>::<function>(self, res)`.
    Function {
        module: &'static str,
        function: &'static str,
    },
    /// As `Function`, and the companion also overrides the hidden `Task` method `marker`
    /// to return `Some(self)` as a `dyn` model trait object, so that the workflow
    /// recognises the task's model when it is registered with plain `register`.
    Recognised {
        module: &'static str,
        function: &'static str,
        marker: &'static str,
    },
}

/// A parsed invocation.
pub(crate) struct Input {
    args: StateKeyArgs,
    item: Item,
    /// Problems found while parsing the arguments, reported with the item's.
    errors: Errors,
}

/// What to generate.
pub(crate) enum Plan {
    /// A trait definition: the async rewrite alone.
    Rewrite(Item),
    /// A trait impl (written by the user or built from an inherent impl) and its companion.
    Impl(ItemImpl, Option<Box<Companion>>),
}

/// The companion `impl Task<S[, K]> for T`.
pub(crate) struct Companion {
    /// How cano names are written.
    prefix: Prefix,
    /// The model trait as named in the impl header (`RouterTask<S>`, `::cano::RouterTask<S, K>`).
    trait_path: Path,
    state: Type,
    key: Option<Type>,
}

/// How the companion names cano items.
enum Prefix {
    /// The header named the trait bare (`RouterTask<S>`): bare names, which must be in scope
    /// at the use site. The span is the trait name's, so a missing import points there.
    Bare(Span),
    /// `::cano::RouterTask<S>`, and every inherent form: `::cano::Name`.
    Cano,
    /// Any other prefix `P::RouterTask<S>`: `P::Name`.
    Prefixed(TokenStream),
}

impl Prefix {
    /// The prefix of the trait path in an impl header.
    fn of(path: &Path) -> Self {
        let count = path.segments.len();
        let Some(last) = path.segments.last() else {
            return Self::Cano;
        };
        if count == 1 && path.leading_colon.is_none() {
            return Self::Bare(last.ident.span());
        }
        let first = &path.segments[0];
        if count == 2
            && path.leading_colon.is_some()
            && first.ident == "cano"
            && first.arguments.is_none()
        {
            return Self::Cano;
        }
        let leading = path.leading_colon;
        let segments = path.segments.iter().take(count - 1);
        Self::Prefixed(quote!(#leading #(#segments)::*))
    }

    /// A cano item at the crate root, e.g. `Task`.
    fn name(&self, name: &str) -> TokenStream {
        match self {
            Self::Bare(span) => Ident::new(name, *span).into_token_stream(),
            Self::Cano => {
                let ident = Ident::new(name, Span::call_site());
                quote!(::cano::#ident)
            }
            Self::Prefixed(prefix) => {
                let ident = Ident::new(name, Span::call_site());
                quote!(#prefix::#ident)
            }
        }
    }

    /// A model runner, e.g. `task::batch::run_batch`. Bare headers use the absolute
    /// `::cano::` path: it needs nothing in scope.
    fn runner(&self, module: &str, function: &str) -> TokenStream {
        let module = Ident::new(module, Span::call_site());
        let function = Ident::new(function, Span::call_site());
        match self {
            Self::Bare(_) | Self::Cano => quote!(::cano::task::#module::#function),
            Self::Prefixed(prefix) => quote!(#prefix::task::#module::#function),
        }
    }
}

/// Parses the attribute arguments and the annotated item.
pub(crate) fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Input> {
    let mut errors = Errors::default();
    let args = StateKeyArgs::parse(args, &mut errors);
    let item = syn::parse2(item)?;
    Ok(Input { args, item, errors })
}

/// Chooses the form and checks it, reporting every problem at once.
pub(crate) fn validate(model: &Model, input: Input) -> syn::Result<Plan> {
    let Input {
        args,
        item,
        mut errors,
    } = input;
    let plan = match item {
        Item::Trait(item) => {
            args.reject_on_trait_def(model.attr, &mut errors);
            Plan::Rewrite(Item::Trait(item))
        }
        Item::Impl(item) if item.trait_.is_some() => {
            args.reject_on_trait_impl(model.attr, &mut errors);
            let companion = match model.runner {
                Some(_) => header_companion(model, &item, &mut errors),
                None => None,
            };
            Plan::Impl(item, companion)
        }
        Item::Impl(item) => validate_inherent(model, item, &args, &mut errors),
        other => {
            errors.spanned(
                &other,
                format!(
                    "#[cano::{}]: expected a trait definition or impl block",
                    model.attr
                ),
            );
            Plan::Rewrite(other)
        }
    };
    errors.finish()?;
    Ok(plan)
}

/// Emits the rewritten item and its companion.
pub(crate) fn expand(model: &Model, plan: Plan) -> syn::Result<TokenStream> {
    match plan {
        Plan::Rewrite(item) => rewrite::rewrite_item(item),
        Plan::Impl(mut item, companion) => {
            let companion = match (companion, model.runner) {
                (Some(companion), Some(runner)) => {
                    companion.expand(runner, model.forwards_is_retryable, &item)
                }
                _ => TokenStream::new(),
            };
            rewrite::rewrite_impl(&mut item)?;
            Ok(quote!(#item #companion))
        }
    }
}

/// The companion for a trait impl: state and key come from the header's type arguments.
fn header_companion(model: &Model, item: &ItemImpl, errors: &mut Errors) -> Option<Box<Companion>> {
    let (bang, path, _) = item.trait_.as_ref()?;
    if let Some(bang) = bang {
        errors.spanned(
            bang,
            format!(
                "#[cano::{}]: negative impls are not supported; implement `{}` for the type",
                model.attr, model.trait_name
            ),
        );
        return None;
    }
    let types: Vec<&Type> = match path.segments.last().map(|last| &last.arguments) {
        Some(PathArguments::AngleBracketed(args)) => args
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let Some(state) = types.first() else {
        errors.spanned(
            path,
            format!(
                "#[cano::{attr}]: the trait must name the state type, e.g. \
                 `impl {name}<MyState> for T` or `impl {name}<MyState, MyKey> for T`",
                attr = model.attr,
                name = model.trait_name,
            ),
        );
        return None;
    };
    Some(Box::new(Companion {
        prefix: Prefix::of(path),
        trait_path: path.clone(),
        state: (*state).clone(),
        key: types.get(1).map(|key| (*key).clone()),
    }))
}

/// Checks an inherent impl and turns it into `impl ::cano::XTask<S[, K]> for T`.
fn validate_inherent(
    model: &Model,
    mut item: ItemImpl,
    args: &StateKeyArgs,
    errors: &mut Errors,
) -> Plan {
    let header = inherent::header_span(&item);
    let inventory = inherent::inventory(&item, &model.rules, errors);
    for (name, signature) in model.required_methods {
        if !inventory.has_method(name) {
            errors.spanned(
                &header,
                format!("{} `{signature}` — missing `{name}`", model.requires),
            );
        }
    }
    for (name, declaration) in model.required_types {
        if !inventory.has_assoc_type(name) {
            errors.spanned(
                &header,
                format!("{} `{declaration}` — missing `type {name}`", model.requires),
            );
        }
    }
    let inferred = (model.infer)(&item, &inventory, errors);
    let trait_ident = Ident::new(model.trait_name, Span::call_site());
    let trait_path = args.trait_path(
        &parse_quote!(::cano::#trait_ident),
        model.attr,
        header,
        errors,
    );
    inherent::inject_defaults(&mut item, &inventory, (model.defaults)());
    item.items.extend(inferred);
    let companion = match (&model.runner, &args.state) {
        (Some(_), Some(state)) => Some(Box::new(Companion {
            prefix: Prefix::Cano,
            trait_path: trait_path.clone(),
            state: state.clone(),
            key: args.key.clone(),
        })),
        _ => None,
    };
    Plan::Impl(inherent::into_trait_impl(item, trait_path), companion)
}

impl Companion {
    /// `impl Task<S[, K]> for T`, with the impl's attributes, generics and where-clause;
    /// `is_retryable` forwarded to the model trait when `forwards_is_retryable`.
    fn expand(&self, runner: Runner, forwards_is_retryable: bool, item: &ItemImpl) -> TokenStream {
        let Self {
            prefix,
            trait_path,
            state,
            key,
        } = self;
        let attrs = &item.attrs;
        let (impl_generics, _, where_clause) = item.generics.split_for_impl();
        let self_ty = &item.self_ty;
        let task = prefix.name("Task");
        let task_config = prefix.name("TaskConfig");
        let resources = prefix.name("Resources");
        let task_result = prefix.name("TaskResult");
        let cano_error = prefix.name("CanoError");
        let task_args = match key {
            Some(key) => quote!(<#state, #key>),
            None => quote!(<#state>),
        };
        let key = match key {
            Some(key) => key.to_token_stream(),
            None => quote!(::std::borrow::Cow<'static, str>),
        };
        let (body, marker) = match runner {
            Runner::Method(method) => {
                let method = Ident::new(method, Span::call_site());
                (quote!(<Self as #trait_path>::#method(self, res)), None)
            }
            Runner::Function { module, function } => {
                let function = prefix.runner(module, function);
                let body =
                    quote!(::std::boxed::Box::pin(#function::<Self, #state, #key>(self, res)));
                (body, None)
            }
            Runner::Recognised {
                module,
                function,
                marker,
            } => {
                let function = prefix.runner(module, function);
                let body =
                    quote!(::std::boxed::Box::pin(#function::<Self, #state, #key>(self, res)));
                let marker = Ident::new(marker, Span::call_site());
                let marker = quote! {
                    #[doc(hidden)]
                    fn #marker(&self) -> ::core::option::Option<
                        &(dyn #trait_path + ::core::marker::Send + ::core::marker::Sync)
                    > {
                        ::core::option::Option::Some(self)
                    }
                };
                (body, Some(marker))
            }
        };
        let is_retryable = forwards_is_retryable.then(|| {
            quote! {
                fn is_retryable(&self, error: &#cano_error, attempt: u32) -> bool {
                    <Self as #trait_path>::is_retryable(self, error, attempt)
                }
            }
        });
        quote! {
            #(#attrs)*
            #[automatically_derived]
            impl #impl_generics #task #task_args for #self_ty #where_clause {
                fn config(&self) -> #task_config {
                    <Self as #trait_path>::config(self)
                }

                fn name(&self) -> ::std::borrow::Cow<'static, str> {
                    <Self as #trait_path>::name(self)
                }

                #is_retryable

                fn run<'life0, 'life1, 'async_trait>(
                    &'life0 self,
                    res: &'life1 #resources<#key>,
                ) -> ::core::pin::Pin<::std::boxed::Box<
                    dyn ::core::future::Future<
                        Output = ::std::result::Result<#task_result<#state>, #cano_error>
                    > + ::core::marker::Send + 'async_trait
                >>
                where
                    'life0: 'async_trait,
                    'life1: 'async_trait,
                    Self: ::core::marker::Sync + 'async_trait,
                {
                    #body
                }

                #marker
            }
        }
    }
}

/// For models whose inherent impls have nothing to infer.
pub(crate) fn infer_nothing(_: &ItemImpl, _: &Inventory, _: &mut Errors) -> Vec<ImplItem> {
    Vec::new()
}

/// For models without injected defaults.
pub(crate) fn no_defaults() -> Vec<(&'static str, ImplItem)> {
    Vec::new()
}

/// `fn config(&self) -> ::cano::TaskConfig { ::cano::TaskConfig::<constructor>() }`.
pub(crate) fn default_config(constructor: &str) -> (&'static str, ImplItem) {
    let constructor = Ident::new(constructor, Span::call_site());
    (
        "config",
        parse_quote! {
            fn config(&self) -> ::cano::TaskConfig {
                ::cano::TaskConfig::#constructor()
            }
        },
    )
}

/// `fn name(&self)` returning the implementing type's path.
pub(crate) fn default_name() -> (&'static str, ImplItem) {
    (
        "name",
        parse_quote! {
            fn name(&self) -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(::std::any::type_name::<Self>())
            }
        },
    )
}

/// The first method called `name` in the impl.
pub(crate) fn find_method<'a>(item: &'a ItemImpl, name: &str) -> Option<&'a ImplItemFn> {
    item.items.iter().find_map(|impl_item| match impl_item {
        ImplItem::Fn(method) if method.sig.ident == name => Some(method),
        _ => None,
    })
}

/// `type <name> = <ty>;`, spanned at the type it was inferred from.
pub(crate) fn assoc_type(name: &str, ty: Type) -> ImplItem {
    let span = ty.span();
    ImplItem::Type(ImplItemType {
        attrs: Vec::new(),
        vis: Visibility::Inherited,
        defaultness: None,
        type_token: <Token![type]>::default(),
        ident: Ident::new(name, span),
        generics: Default::default(),
        eq_token: <Token![=]>::default(),
        ty,
        semi_token: <Token![;]>::default(),
    })
}

/// `ty` without invisible groups and parentheses.
pub(crate) fn peel(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

/// The first type argument of `ty` when it is a path type whose last segment is one of
/// `idents` (`Option<T>` ⇒ `T`).
pub(crate) fn first_type_arg<'a>(ty: &'a Type, idents: &[&str]) -> Option<&'a Type> {
    let Type::Path(path) = peel(ty) else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if !idents.iter().any(|ident| last.ident == ident) {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    }
}

/// Expanded output, for the unit tests of each model.
#[cfg(test)]
pub(crate) fn expand_for_test(
    model: &Model,
    args: TokenStream,
    item: TokenStream,
) -> Result<String, Vec<String>> {
    let result = parse(args, item)
        .and_then(|input| validate(model, input))
        .and_then(|plan| expand(model, plan));
    match result {
        Ok(tokens) => Ok(tokens.to_string()),
        Err(error) => Err(error.into_iter().map(|e| e.to_string()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(path: TokenStream) -> String {
        let path: Path = syn::parse2(path).unwrap();
        match Prefix::of(&path) {
            Prefix::Bare(_) => "bare".to_string(),
            Prefix::Cano => "cano".to_string(),
            Prefix::Prefixed(prefix) => format!("prefixed {prefix}"),
        }
    }

    #[test]
    fn classifies_header_prefixes() {
        assert_eq!(prefix(quote!(RouterTask<S>)), "bare");
        assert_eq!(prefix(quote!(::cano::RouterTask<S>)), "cano");
        assert_eq!(prefix(quote!(cano::RouterTask<S>)), "prefixed cano");
        assert_eq!(
            prefix(quote!(::foo::bar::RouterTask<S>)),
            "prefixed :: foo :: bar"
        );
        assert_eq!(prefix(quote!(crate::RouterTask<S>)), "prefixed crate");
    }

    #[test]
    fn names_follow_the_prefix() {
        let prefixed = Prefix::Prefixed(quote!(cano));
        assert_eq!(prefixed.name("Task").to_string(), "cano :: Task");
        assert_eq!(
            prefixed.runner("batch", "run_batch").to_string(),
            "cano :: task :: batch :: run_batch"
        );
        assert_eq!(Prefix::Cano.name("Task").to_string(), ":: cano :: Task");
        let bare = Prefix::Bare(Span::call_site());
        assert_eq!(bare.name("Task").to_string(), "Task");
        assert_eq!(
            bare.runner("poll", "run_poll_loop").to_string(),
            ":: cano :: task :: poll :: run_poll_loop"
        );
    }

    #[test]
    fn finds_wrapped_type_arguments() {
        let ty: Type = parse_quote!(std::option::Option<(u32, String)>);
        let arg = first_type_arg(&ty, &["Option"]).unwrap();
        assert_eq!(arg.to_token_stream().to_string(), "(u32 , String)");
        let ty: Type = parse_quote!(Option);
        assert!(first_type_arg(&ty, &["Option"]).is_none());
        let ty: Type = parse_quote!(<X as Y>::Option<u8>);
        assert!(first_type_arg(&ty, &["Option"]).is_none());
        let ty: Type = parse_quote!(Vec<u8>);
        assert!(first_type_arg(&ty, &["Option"]).is_none());
    }
}
