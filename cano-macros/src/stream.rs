//! `#[task::stream]`: `StreamTask` impls and their companion `Task` impl, which runs the
//! stream in memory. Inherent impls may leave out `type Item`, `type Output` and
//! `type Cursor`: `Item` is read off `process_item`'s owned `item` parameter, `Output` and
//! `Cursor` off its `Result<(Output, Cursor), CanoError>` return type.

use crate::errors::Errors;
use crate::inherent::{Inventory, Rules};
use crate::model::{self, Model, Runner};
use syn::{FnArg, ImplItem, ItemImpl, ReturnType, Signature, Type};

pub(crate) const MODEL: Model = Model {
    attr: "task::stream",
    trait_name: "StreamTask",
    rules: Rules {
        prefix: "#[cano::task::stream]: ",
        trait_name: "StreamTask",
        methods: &[
            "open",
            "process_item",
            "flush_window",
            "on_close",
            "window",
            "on_item_error",
            "config",
            "name",
        ],
        assoc_types: &["Item", "Output", "Cursor"],
    },
    requires: "#[cano::task::stream] requires",
    required_methods: &[
        (
            "open",
            "async fn open(&self, res: &Resources, cursor: Option<C>) \
             -> Result<ItemStream<I>, CanoError>",
        ),
        (
            "process_item",
            "async fn process_item(&self, res: &Resources, item: I) \
             -> Result<(O, C), CanoError>",
        ),
        (
            "flush_window",
            "async fn flush_window(&self, res: &Resources, outputs: Vec<O>) \
             -> Result<WindowSignal<S>, CanoError>",
        ),
        (
            "on_close",
            "async fn on_close(&self, res: &Resources, reason: CloseReason) \
             -> Result<TaskResult<S>, CanoError>",
        ),
    ],
    required_types: &[],
    defaults,
    infer,
    runner: Some(Runner::Function {
        module: "stream",
        function: "run_stream",
    }),
    // A stream is never retried (a retry would read the source again).
    forwards_is_retryable: false,
};

fn defaults() -> Vec<(&'static str, ImplItem)> {
    vec![model::default_config("minimal"), model::default_name()]
}

/// The associated types an inherent impl leaves out, from `process_item`.
fn infer(item: &ItemImpl, inventory: &Inventory, errors: &mut Errors) -> Vec<ImplItem> {
    let wanted: Vec<&str> = ["Item", "Output", "Cursor"]
        .into_iter()
        .filter(|name| !inventory.has_assoc_type(name))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    // A missing `process_item` is reported on its own.
    let Some(method) = model::find_method(item, "process_item") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if wanted.contains(&"Item")
        && let Some(ty) = errors.check(item_type(&method.sig))
    {
        out.push(model::assoc_type("Item", ty));
    }
    if (wanted.contains(&"Output") || wanted.contains(&"Cursor"))
        && let Some((output, cursor)) = errors.check(output_and_cursor(&method.sig))
    {
        if wanted.contains(&"Output") {
            out.push(model::assoc_type("Output", output));
        }
        if wanted.contains(&"Cursor") {
            out.push(model::assoc_type("Cursor", cursor));
        }
    }
    out
}

/// `I` from the third parameter `item: I` (owned).
fn item_type(sig: &Signature) -> syn::Result<Type> {
    let message = "#[cano::task::stream]: cannot infer `type Item`: the third parameter of \
                   `process_item` must be the item, taken by value (e.g. `item: Line`); \
                   otherwise declare `type Item = …;`";
    match sig.inputs.iter().nth(2) {
        Some(FnArg::Typed(param)) => match model::peel(&param.ty) {
            Type::Reference(_) => Err(syn::Error::new_spanned(
                &param.ty,
                "#[cano::task::stream]: `process_item` takes its item by value (the stream \
                 hands it over): write `item: T`, not `item: &T`",
            )),
            ty => Ok(ty.clone()),
        },
        Some(receiver) => Err(syn::Error::new_spanned(receiver, message)),
        None => Err(syn::Error::new_spanned(&sig.inputs, message)),
    }
}

/// `(O, C)` from the return type `Result<(O, C), CanoError>`.
fn output_and_cursor(sig: &Signature) -> syn::Result<(Type, Type)> {
    let message = "#[cano::task::stream]: cannot infer `type Output` and `type Cursor`: \
                   `process_item` must return `Result<(Output, Cursor), CanoError>`; \
                   otherwise declare them";
    let ReturnType::Type(_, ty) = &sig.output else {
        return Err(syn::Error::new_spanned(&sig.ident, message));
    };
    if let Some(Type::Tuple(tuple)) = model::first_type_arg(ty, &["Result"]).map(model::peel)
        && tuple.elems.len() == 2
    {
        return Ok((tuple.elems[0].clone(), tuple.elems[1].clone()));
    }
    Err(syn::Error::new_spanned(ty, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn expand(items: proc_macro2::TokenStream) -> Result<String, Vec<String>> {
        model::expand_for_test(&MODEL, quote!(state = Step), quote!(impl T { #items }))
    }

    fn methods() -> proc_macro2::TokenStream {
        quote! {
            async fn open(&self, res: &Resources, cursor: Option<u64>) -> Result<ItemStream<Line>, CanoError> { todo!() }
            async fn process_item(&self, res: &Resources, item: Line) -> Result<(Row, u64), CanoError> { todo!() }
            async fn flush_window(&self, res: &Resources, outputs: Vec<Row>) -> Result<WindowSignal<Step>, CanoError> { todo!() }
            async fn on_close(&self, res: &Resources, reason: CloseReason) -> Result<TaskResult<Step>, CanoError> { todo!() }
        }
    }

    #[test]
    fn infers_item_output_and_cursor_from_process_item() {
        let out = expand(methods()).unwrap();
        assert!(out.contains("type Item = Line ;"), "{out}");
        assert!(out.contains("type Output = Row ;"), "{out}");
        assert!(out.contains("type Cursor = u64 ;"), "{out}");
        assert!(out.contains(":: cano :: TaskConfig :: minimal ()"), "{out}");
        assert!(
            out.contains(":: cano :: task :: stream :: run_stream :: < Self , Step ,"),
            "{out}"
        );
    }

    #[test]
    fn declared_types_are_kept() {
        let methods = methods();
        let out = expand(quote! { type Cursor = u64; type Item = Line; #methods }).unwrap();
        assert_eq!(out.matches("type Cursor").count(), 1, "{out}");
        assert_eq!(out.matches("type Item").count(), 1, "{out}");
        assert_eq!(out.matches("type Output").count(), 1, "{out}");
    }

    #[test]
    fn a_borrowed_item_is_rejected() {
        let errors = expand(quote! {
            async fn open(&self, res: &Resources, cursor: Option<u64>) -> Result<ItemStream<Line>, CanoError> { todo!() }
            async fn process_item(&self, res: &Resources, item: &Line) -> Result<(Row, u64), CanoError> { todo!() }
            async fn flush_window(&self, res: &Resources, outputs: Vec<Row>) -> Result<WindowSignal<Step>, CanoError> { todo!() }
            async fn on_close(&self, res: &Resources, reason: CloseReason) -> Result<TaskResult<Step>, CanoError> { todo!() }
        })
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("takes its item by value"), "{errors:?}");
    }

    #[test]
    fn a_return_type_without_a_pair_is_reported() {
        let errors = expand(quote! {
            async fn open(&self, res: &Resources, cursor: Option<u64>) -> Result<ItemStream<Line>, CanoError> { todo!() }
            async fn process_item(&self, res: &Resources, item: Line) -> Result<Row, CanoError> { todo!() }
            async fn flush_window(&self, res: &Resources, outputs: Vec<Row>) -> Result<WindowSignal<Step>, CanoError> { todo!() }
            async fn on_close(&self, res: &Resources, reason: CloseReason) -> Result<TaskResult<Step>, CanoError> { todo!() }
        })
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("cannot infer `type Output` and `type Cursor`"),
            "{errors:?}"
        );
    }

    #[test]
    fn missing_methods_are_named() {
        let errors = expand(quote! {
            async fn process_item(&self, res: &Resources, item: Line) -> Result<(Row, u64), CanoError> { todo!() }
        })
        .unwrap_err();
        let all = errors.join("\n");
        for name in ["open", "flush_window", "on_close"] {
            assert!(all.contains(name), "{name} not named in {all}");
        }
    }
}
