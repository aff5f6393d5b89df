//! `#[task::router]`: `RouterTask` impls and their companion `Task` impl.

use crate::inherent::Rules;
use crate::model::{self, Model, Runner};
use syn::ImplItem;

pub(crate) const MODEL: Model = Model {
    attr: "task::router",
    trait_name: "RouterTask",
    rules: Rules {
        prefix: "#[cano::task::router]: ",
        trait_name: "RouterTask",
        methods: &["route", "config", "name", "is_retryable"],
        assoc_types: &[],
    },
    requires: "#[cano::task::router] requires",
    required_methods: &[(
        "route",
        "async fn route(&self, res: &Resources) -> Result<TaskResult<S>, CanoError>",
    )],
    required_types: &[],
    defaults,
    infer: model::infer_nothing,
    runner: Some(Runner::Method("route")),
    forwards_is_retryable: true,
};

fn defaults() -> Vec<(&'static str, ImplItem)> {
    vec![model::default_config("default"), model::default_name()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn inherent_form_gets_trait_impl_defaults_and_companion() {
        let out = model::expand_for_test(
            &MODEL,
            quote!(state = Step),
            quote! {
                impl R {
                    async fn route(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
                        todo!()
                    }
                }
            },
        )
        .unwrap();
        assert!(
            out.contains("impl :: cano :: RouterTask < Step > for R"),
            "{out}"
        );
        assert!(out.contains(":: cano :: TaskConfig :: default ()"), "{out}");
        assert!(
            out.contains(":: std :: any :: type_name :: < Self > ()"),
            "{out}"
        );
        assert!(out.contains("impl :: cano :: Task < Step > for R"), "{out}");
        assert!(
            out.contains("< Self as :: cano :: RouterTask < Step > > :: route (self , res)"),
            "{out}"
        );
        assert!(
            out.contains(
                "< Self as :: cano :: RouterTask < Step > > :: is_retryable (self , error , attempt)"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "res : & 'life1 :: cano :: Resources < :: std :: borrow :: Cow < 'static , str > >"
            ),
            "{out}"
        );
    }

    #[test]
    fn trait_impl_companion_follows_the_header() {
        let out = model::expand_for_test(
            &MODEL,
            quote!(),
            quote! {
                impl<T: Send + Sync> cano::RouterTask<Step, Key> for R<T> where T: Clone {
                    async fn route(&self, res: &Resources<Key>) -> Result<TaskResult<Step>, CanoError> {
                        todo!()
                    }
                }
            },
        )
        .unwrap();
        assert!(
            out.contains(
                "impl < T : Send + Sync > cano :: Task < Step , Key > for R < T > where T : Clone"
            ),
            "{out}"
        );
        assert!(
            out.contains("fn config (& self) -> cano :: TaskConfig"),
            "{out}"
        );
        assert!(
            out.contains("res : & 'life1 cano :: Resources < Key >"),
            "{out}"
        );
        assert!(
            !out.contains("type_name"),
            "no defaults on a trait impl: {out}"
        );
    }

    #[test]
    fn reports_every_inherent_problem() {
        let errors = model::expand_for_test(
            &MODEL,
            quote!(key = K),
            quote! {
                impl R {
                    type Extra = u8;
                    fn helper(&self) {}
                }
            },
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "#[cano::task::router]: associated types are not part of the `RouterTask` trait",
                "#[cano::task::router]: unexpected method `helper` in inherent impl; only `route`, `config`, `name`, and `is_retryable` are allowed",
                "#[cano::task::router] requires `async fn route(&self, res: &Resources) -> Result<TaskResult<S>, CanoError>` — missing `route`",
                "#[cano::task::router] on an inherent `impl T { ... }` block requires `state = T` (e.g. `#[task::router(state = MyState)]`)",
            ]
        );
    }

    #[test]
    fn rejects_misplaced_args_and_headers_without_state() {
        let errors = model::expand_for_test(
            &MODEL,
            quote!(state = S),
            quote!(
                trait RouterTask {}
            ),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            ["#[cano::task::router]: no attribute args are accepted on a trait definition"]
        );
        let errors = model::expand_for_test(
            &MODEL,
            quote!(state = S),
            quote!(impl RouterTask<S> for R {}),
        )
        .unwrap_err();
        assert!(errors[0].contains("only apply to inherent"), "{errors:?}");
        let errors =
            model::expand_for_test(&MODEL, quote!(), quote!(impl RouterTask for R {})).unwrap_err();
        assert!(errors[0].contains("must name the state type"), "{errors:?}");
        let errors = model::expand_for_test(
            &MODEL,
            quote!(),
            quote!(
                struct R;
            ),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            ["#[cano::task::router]: expected a trait definition or impl block"]
        );
    }
}
