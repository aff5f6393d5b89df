//! `#[task::stepped]`: `SteppedTask` impls and their companion `Task` impl, which runs the
//! steps in memory. Inherent impls may leave out `type Cursor`; it is read
//! off `step`'s `cursor: Option<C>` parameter.

use crate::errors::Errors;
use crate::inherent::{Inventory, Rules};
use crate::model::{self, Model, Runner};
use syn::{FnArg, ImplItem, ItemImpl, Signature, Type};

pub(crate) const MODEL: Model = Model {
    attr: "task::stepped",
    trait_name: "SteppedTask",
    rules: Rules {
        prefix: "#[cano::task::stepped]: ",
        trait_name: "SteppedTask",
        methods: &["step", "config", "name", "is_retryable"],
        assoc_types: &["Cursor"],
    },
    requires: "#[cano::task::stepped] requires",
    required_methods: &[(
        "step",
        "async fn step(&self, res: &Resources, cursor: Option<C>) \
         -> Result<StepOutcome<C, S>, CanoError>",
    )],
    required_types: &[],
    defaults,
    infer,
    runner: Some(Runner::Function {
        module: "stepped",
        function: "run_stepped",
    }),
    // `SteppedTask::is_retryable` is about one step of the engine-driven loop
    // (`register_stepped`), not the whole in-memory loop the companion runs.
    forwards_is_retryable: false,
};

fn defaults() -> Vec<(&'static str, ImplItem)> {
    vec![model::default_config("default"), model::default_name()]
}

/// `type Cursor` from `step(&self, res, cursor: Option<C>)`, unless the impl declares it.
fn infer(item: &ItemImpl, inventory: &Inventory, errors: &mut Errors) -> Vec<ImplItem> {
    if inventory.has_assoc_type("Cursor") {
        return Vec::new();
    }
    // A missing `step` is reported on its own.
    let Some(method) = model::find_method(item, "step") else {
        return Vec::new();
    };
    errors
        .check(cursor_type(&method.sig))
        .map(|ty| model::assoc_type("Cursor", ty))
        .into_iter()
        .collect()
}

/// `C` from the third parameter `cursor: Option<C>` (the receiver is the first).
fn cursor_type(sig: &Signature) -> syn::Result<Type> {
    let param = sig.inputs.iter().nth(2);
    if let Some(FnArg::Typed(param)) = param
        && let Some(ty) = model::first_type_arg(&param.ty, &["Option"])
    {
        return Ok(ty.clone());
    }
    let message = "#[cano::task::stepped]: cannot infer `type Cursor`: the third parameter of \
                   `step` must be the cursor, `Option<C>` (e.g. `cursor: Option<u32>`); \
                   otherwise declare `type Cursor = …;`";
    Err(match param {
        Some(FnArg::Typed(param)) => syn::Error::new_spanned(&param.ty, message),
        Some(receiver) => syn::Error::new_spanned(receiver, message),
        None => syn::Error::new_spanned(&sig.inputs, message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn expand(items: proc_macro2::TokenStream) -> Result<String, Vec<String>> {
        model::expand_for_test(&MODEL, quote!(state = Step), quote!(impl T { #items }))
    }

    #[test]
    fn infers_the_cursor_from_the_option_parameter() {
        let out = expand(quote! {
            async fn step(&self, res: &Resources, cursor: std::option::Option<Progress>)
                -> Result<StepOutcome<Progress, Step>, CanoError> { todo!() }
        })
        .unwrap();
        assert!(out.contains("type Cursor = Progress ;"), "{out}");
        assert!(out.contains(":: cano :: TaskConfig :: default ()"), "{out}");
        assert!(
            out.contains(":: cano :: task :: stepped :: run_stepped :: < Self , Step ,"),
            "{out}"
        );
    }

    #[test]
    fn declared_cursor_is_kept() {
        let out = expand(quote! {
            type Cursor = u8;
            async fn step(&self, res: &Resources, cursor: Option<Self::Cursor>)
                -> Result<StepOutcome<u8, Step>, CanoError> { todo!() }
        })
        .unwrap();
        assert_eq!(out.matches("type Cursor").count(), 1, "{out}");
    }

    #[test]
    fn reports_a_cursor_that_cannot_be_inferred() {
        for step in [
            quote!(
                async fn step(&self, res: &Resources, cursor: u32) {}
            ),
            quote!(
                async fn step(&self, res: &Resources) {}
            ),
            quote!(
                async fn step(&self, res: &Resources, cursor: Option) {}
            ),
        ] {
            let errors = expand(step).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                errors[0].contains("cannot infer `type Cursor`"),
                "{errors:?}"
            );
        }
    }
}
