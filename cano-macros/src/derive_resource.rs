//! `#[derive(Resource)]`: an empty `impl ::cano::Resource`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

/// Parses the deriving type (any struct, enum or union shape).
pub(crate) fn parse(input: TokenStream) -> syn::Result<DeriveInput> {
    syn::parse2(input)
}

/// Emits `impl<…> ::cano::Resource for Name<…> where … {}`; no bounds are added.
pub(crate) fn expand(input: &DeriveInput) -> TokenStream {
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::cano::Resource for #name #ty_generics #where_clause {}
    }
}
