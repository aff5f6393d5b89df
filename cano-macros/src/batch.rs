//! `#[task::batch]`: `BatchTask` impls and their companion `Task` impl, which runs
//! load → process → finish. Inherent impls may leave out `type Item` and
//! `type ItemOutput`; they are read off `process_item`'s signature.

use crate::errors::Errors;
use crate::inherent::{Inventory, Rules};
use crate::model::{self, Model, Runner};
use syn::{FnArg, ImplItem, ItemImpl, ReturnType, Signature, Type, parse_quote};

pub(crate) const MODEL: Model = Model {
    attr: "task::batch",
    trait_name: "BatchTask",
    rules: Rules {
        prefix: "#[cano::task::batch]: ",
        trait_name: "BatchTask",
        methods: &[
            "load",
            "process_item",
            "finish",
            "concurrency",
            "item_retry",
            "config",
            "name",
            "is_retryable",
        ],
        assoc_types: &["Item", "ItemOutput"],
    },
    requires: "#[cano::task::batch] requires",
    required_methods: &[
        (
            "load",
            "async fn load(&self, res: &Resources) -> Result<Vec<Item>, CanoError>",
        ),
        (
            "process_item",
            "async fn process_item(&self, item: &Item) -> Result<ItemOutput, CanoError>",
        ),
        (
            "finish",
            "async fn finish(&self, res: &Resources, outputs: Vec<Result<ItemOutput, CanoError>>) \
             -> Result<TaskResult<S>, CanoError>",
        ),
    ],
    required_types: &[],
    defaults,
    infer,
    runner: Some(Runner::Function {
        module: "batch",
        function: "run_batch",
    }),
    forwards_is_retryable: true,
};

fn defaults() -> Vec<(&'static str, ImplItem)> {
    vec![
        (
            "concurrency",
            parse_quote! {
                fn concurrency(&self) -> usize {
                    1
                }
            },
        ),
        (
            "item_retry",
            parse_quote! {
                fn item_retry(&self) -> ::cano::RetryMode {
                    ::cano::RetryMode::None
                }
            },
        ),
        model::default_config("default"),
        model::default_name(),
    ]
}

/// `type Item` from `process_item(&self, item: &T)` and `type ItemOutput` from its
/// `Result<T, _>` / `CanoResult<T>` return type, for whichever the impl does not declare.
fn infer(item: &ItemImpl, inventory: &Inventory, errors: &mut Errors) -> Vec<ImplItem> {
    let mut inferred = Vec::new();
    // A missing `process_item` is reported on its own.
    let Some(method) = model::find_method(item, "process_item") else {
        return inferred;
    };
    if !inventory.has_assoc_type("Item")
        && let Some(ty) = errors.check(item_type(&method.sig))
    {
        inferred.push(model::assoc_type("Item", ty));
    }
    if !inventory.has_assoc_type("ItemOutput")
        && let Some(ty) = errors.check(item_output_type(&method.sig))
    {
        inferred.push(model::assoc_type("ItemOutput", ty));
    }
    inferred
}

/// `T` from the second parameter `item: &T` (the receiver is the first).
fn item_type(sig: &Signature) -> syn::Result<Type> {
    let param = sig.inputs.iter().nth(1);
    if let Some(FnArg::Typed(param)) = param
        && let Type::Reference(reference) = model::peel(&param.ty)
        && reference.mutability.is_none()
    {
        return Ok((*reference.elem).clone());
    }
    let message = "#[cano::task::batch]: cannot infer `type Item`: the second parameter of \
                   `process_item` must be a shared reference to the item (e.g. \
                   `item: &u32`); otherwise declare `type Item = …;`";
    Err(match param {
        Some(FnArg::Typed(param)) => syn::Error::new_spanned(&param.ty, message),
        Some(receiver) => syn::Error::new_spanned(receiver, message),
        None => syn::Error::new_spanned(&sig.ident, message),
    })
}

/// `T` from the return type `Result<T, _>` or `CanoResult<T>`.
fn item_output_type(sig: &Signature) -> syn::Result<Type> {
    let message = "#[cano::task::batch]: cannot infer `type ItemOutput`: `process_item` must \
                   return `Result<T, CanoError>` or `CanoResult<T>`; otherwise declare \
                   `type ItemOutput = …;`";
    match &sig.output {
        ReturnType::Type(_, ty) => model::first_type_arg(ty, &["Result", "CanoResult"])
            .cloned()
            .ok_or_else(|| syn::Error::new_spanned(ty, message)),
        ReturnType::Default => Err(syn::Error::new_spanned(&sig.ident, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn expand(items: proc_macro2::TokenStream) -> Result<String, Vec<String>> {
        model::expand_for_test(&MODEL, quote!(state = Step), quote!(impl B { #items }))
    }

    #[test]
    fn infers_item_and_output_types() {
        let out = expand(quote! {
            async fn load(&self, res: &Resources) -> Result<Vec<u32>, CanoError> { todo!() }
            async fn process_item(&self, item: &'static u32) -> cano::CanoResult<(String, u8)> { todo!() }
            async fn finish(&self, res: &Resources, outputs: Vec<Result<(String, u8), CanoError>>)
                -> Result<TaskResult<Step>, CanoError> { todo!() }
        })
        .unwrap();
        assert!(out.contains("type Item = u32 ;"), "{out}");
        assert!(out.contains("type ItemOutput = (String , u8) ;"), "{out}");
        assert!(
            out.contains("fn concurrency (& self) -> usize { 1 }"),
            "{out}"
        );
        assert!(out.contains(":: cano :: RetryMode :: None"), "{out}");
        assert!(
            out.contains(":: cano :: task :: batch :: run_batch :: < Self , Step , :: std :: borrow :: Cow < 'static , str > > (self , res)"),
            "{out}"
        );
    }

    #[test]
    fn declared_types_are_kept() {
        let out = expand(quote! {
            type Item = Box<u8>;
            type ItemOutput = ();
            async fn load(&self, res: &Resources) -> Result<Vec<Box<u8>>, CanoError> { todo!() }
            async fn process_item(&self, item: Box<u8>) -> Out { todo!() }
            async fn finish(&self, res: &Resources, outputs: Vec<Result<(), CanoError>>)
                -> Result<TaskResult<Step>, CanoError> { todo!() }
        })
        .unwrap();
        assert_eq!(out.matches("type Item =").count(), 1, "{out}");
        assert_eq!(out.matches("type ItemOutput =").count(), 1, "{out}");
    }

    #[test]
    fn reports_what_cannot_be_inferred_and_every_missing_method() {
        let errors = expand(quote! {
            async fn process_item(&self, item: &mut u32) -> Option<u32> { todo!() }
        })
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].contains("missing `load`"), "{errors:?}");
        assert!(errors[1].contains("missing `finish`"), "{errors:?}");
        assert!(errors[2].contains("cannot infer `type Item`"), "{errors:?}");
        assert!(
            errors[3].contains("cannot infer `type ItemOutput`"),
            "{errors:?}"
        );
        let errors = expand(quote! {
            async fn process_item(&self) { }
        })
        .unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("cannot infer `type Item`"))
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("cannot infer `type ItemOutput`"))
        );
    }

    #[test]
    fn other_associated_types_are_rejected() {
        let errors = expand(quote! {
            type Extra = u8;
        })
        .unwrap_err();
        assert_eq!(
            errors[0],
            "#[cano::task::batch]: unexpected associated type `Extra`; only `Item` and `ItemOutput` are allowed"
        );
    }
}
