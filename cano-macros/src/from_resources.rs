//! `#[derive(FromResources)]`: a `from_resources(&Resources<K>)` constructor that fetches
//! every `Arc<T>` field by its `#[res(…)]` key.

use crate::args::parse_key_only;
use crate::errors::Errors;
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{
    Attribute, Data, DeriveInput, Expr, ExprPath, Fields, GenericArgument, Generics, Ident, Lit,
    LitStr, Meta, Path, PathArguments, Type,
};

const ARC_ONLY: &str =
    "FromResources: every field must be `Arc<T>` (it matches what `Resources::get` returns)";
const KEY_FORMS: &str = "FromResources: `#[res(...)]` takes a string literal \
                         (`#[res(\"store\")]`) or a path expression (`#[res(Key::Store)]`)";

/// A validated derive input, ready to expand.
pub(crate) struct Plan {
    name: Ident,
    generics: Generics,
    key_type: KeyType,
    fields: Vec<Field>,
}

/// The key type of the generated `from_resources`.
enum KeyType {
    /// Every key is a string literal and no override: generic over any `K: Borrow<str>`.
    AnyStr,
    /// From `#[from_resources(key = K)]` or inferred from the first path key.
    Concrete(Box<Type>),
}

/// One field: `name: Arc<inner>` fetched with `key`.
struct Field {
    name: Ident,
    inner: Type,
    key: Key,
}

enum Key {
    Str(LitStr),
    Path(ExprPath),
}

/// Parses the deriving type.
pub(crate) fn parse(input: TokenStream) -> syn::Result<DeriveInput> {
    syn::parse2(input)
}

/// Checks the derive's rules (a struct with named fields, each an `Arc<T>` with a
/// `#[res(…)]` key, and a key type that is given or can be inferred), reporting all
/// problems at once.
pub(crate) fn validate(input: DeriveInput) -> syn::Result<Plan> {
    let mut errors = Errors::default();
    let key_override = container_key(&input.attrs, &mut errors);
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) if named.named.is_empty() => {
                errors.spanned(named, "FromResources requires at least one field");
                None
            }
            Fields::Named(named) => Some(named),
            Fields::Unnamed(fields) => {
                errors.spanned(fields, "FromResources requires named fields");
                None
            }
            Fields::Unit => {
                errors.spanned(&input.ident, "FromResources requires named fields");
                None
            }
        },
        Data::Enum(data) => {
            errors.spanned(
                crate::errors::span_of(data.enum_token, &input.ident),
                "FromResources can only be derived for structs with named fields",
            );
            None
        }
        Data::Union(data) => {
            errors.spanned(
                crate::errors::span_of(data.union_token, &input.ident),
                "FromResources can only be derived for structs with named fields",
            );
            None
        }
    };

    let mut fields = Vec::new();
    for field in named.into_iter().flat_map(|named| &named.named) {
        let Some(name) = field.ident.clone() else {
            continue;
        };
        let inner = arc_inner(&field.ty);
        if inner.is_none() {
            errors.spanned(&field.ty, ARC_ONLY);
        }
        let key = field_key(&name, &field.attrs, &mut errors);
        if let (Some(inner), Some(key)) = (inner, key) {
            fields.push(Field {
                name,
                inner: inner.clone(),
                key,
            });
        }
    }

    let key_type = match key_override {
        Some(ty) => KeyType::Concrete(Box::new(ty)),
        None => infer_key_type(&fields, &mut errors),
    };
    errors.finish()?;
    Ok(Plan {
        name: input.ident,
        generics: input.generics,
        key_type,
        fields,
    })
}

/// Emits `impl Name { pub fn from_resources(…) -> ::cano::CanoResult<Self> }`.
pub(crate) fn expand(plan: &Plan) -> TokenStream {
    let name = &plan.name;
    let (impl_generics, ty_generics, where_clause) = plan.generics.split_for_impl();
    let inits = plan.fields.iter().map(|field| {
        let Field { name, inner, key } = field;
        match key {
            Key::Str(lit) => quote!(#name: __res.get::<#inner, ::core::primitive::str>(#lit)?),
            Key::Path(path) => quote!(#name: __res.get::<#inner, _>(&#path)?),
        }
    });
    let body = quote!(::core::result::Result::Ok(Self { #(#inits,)* }));
    let doc = format!(
        "Builds a `{name}` by fetching each field from `Resources` by its `#[res(...)]` key, \
         in declaration order; the first failing lookup's error is returned."
    );
    let function = match &plan.key_type {
        KeyType::AnyStr => quote! {
            #[doc = #doc]
            pub fn from_resources<__K>(
                __res: &::cano::Resources<__K>,
            ) -> ::cano::CanoResult<Self>
            where
                __K: ::core::borrow::Borrow<::core::primitive::str>
                    + ::core::hash::Hash
                    + ::core::cmp::Eq
                    + ::core::marker::Send
                    + ::core::marker::Sync
                    + 'static,
            {
                #body
            }
        },
        KeyType::Concrete(key) => quote! {
            #[doc = #doc]
            pub fn from_resources(__res: &::cano::Resources<#key>) -> ::cano::CanoResult<Self> {
                #body
            }
        },
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics #name #ty_generics #where_clause {
            #function
        }
    }
}

/// Reads `#[from_resources(key = K)]`, if present.
fn container_key(attrs: &[Attribute], errors: &mut Errors) -> Option<Type> {
    let mut found: Option<Type> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("from_resources")) {
        let Some(ty) = errors.check(attr.parse_args_with(parse_key_only)) else {
            continue;
        };
        if found.is_some() {
            errors.spanned(
                attr,
                "FromResources: duplicate `#[from_resources(key = ...)]`",
            );
        } else {
            found = Some(ty);
        }
    }
    found
}

/// `T` when `ty` is `Arc<T>` (judged by the last path segment, e.g. `std::sync::Arc<T>`).
fn arc_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Arc" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

/// Reads the field's single `#[res(…)]` key.
fn field_key(name: &Ident, attrs: &[Attribute], errors: &mut Errors) -> Option<Key> {
    let mut res_attrs = attrs.iter().filter(|a| a.path().is_ident("res"));
    let Some(attr) = res_attrs.next() else {
        errors.spanned(
            name,
            format!(
                "FromResources: field `{name}` needs a key: `#[res(\"key\")]` or \
                 `#[res(Key::Variant)]`"
            ),
        );
        return None;
    };
    for duplicate in res_attrs {
        errors.spanned(
            duplicate,
            format!("FromResources: field `{name}` has more than one `#[res(...)]`; keep one"),
        );
    }
    let Meta::List(list) = &attr.meta else {
        errors.spanned(attr, KEY_FORMS);
        return None;
    };
    if list.tokens.is_empty() {
        errors.spanned(attr, KEY_FORMS);
        return None;
    }
    let expr: Expr = match syn::parse2(list.tokens.clone()) {
        Ok(expr) => expr,
        Err(_) => {
            errors.spanned(&list.tokens, KEY_FORMS);
            return None;
        }
    };
    match expr {
        Expr::Lit(lit) => match lit.lit {
            Lit::Str(s) => Some(Key::Str(s)),
            other => {
                errors.spanned(other, KEY_FORMS);
                None
            }
        },
        Expr::Path(path) if path.path.is_ident("skip") => {
            errors.spanned(
                path,
                "FromResources: `#[res(skip)]` is not yet supported; every field is fetched \
                 from `Resources`",
            );
            None
        }
        Expr::Path(path) => Some(Key::Path(path)),
        other => {
            errors.spanned(other, KEY_FORMS);
            None
        }
    }
}

/// Without an override: generic for all-string keys, else the key type named by the first
/// path key minus its last segment (`Key::Store` → `Key`).
fn infer_key_type(fields: &[Field], errors: &mut Errors) -> KeyType {
    let Some(first) = fields.first() else {
        return KeyType::AnyStr;
    };
    let is_str = |field: &Field| matches!(field.key, Key::Str(_));
    if let Some(odd) = fields.iter().find(|field| is_str(field) != is_str(first)) {
        let key = match &odd.key {
            Key::Str(lit) => lit.to_token_stream(),
            Key::Path(path) => path.to_token_stream(),
        };
        errors.spanned(
            key,
            "FromResources: string-literal and path keys cannot be mixed unless the key type \
             is given; add #[from_resources(key = MyKey)] to the struct",
        );
        return KeyType::AnyStr;
    }
    let Key::Path(path) = &first.key else {
        return KeyType::AnyStr;
    };
    if path.qself.is_some() || path.path.segments.len() < 2 {
        errors.spanned(
            path,
            "cannot infer key type from a single-segment path; add \
             #[from_resources(key = MyKey)] to the struct",
        );
        return KeyType::AnyStr;
    }
    let segments = &path.path.segments;
    let key = Path {
        leading_colon: path.path.leading_colon,
        segments: segments.iter().take(segments.len() - 1).cloned().collect(),
    };
    KeyType::Concrete(Box::new(Type::Path(syn::TypePath {
        qself: None,
        path: key,
    })))
}
