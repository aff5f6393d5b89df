//! `#[saga::task]`: `CompensatableTask` impls. Unlike the processing
//! models there is no companion `Task` impl and nothing is injected: a compensatable task is
//! registered with `Workflow::register_with_compensation`, and the trait's own defaults apply.

use crate::inherent::Rules;
use crate::model::{self, Model};

pub(crate) const MODEL: Model = Model {
    attr: "saga::task",
    trait_name: "CompensatableTask",
    rules: Rules {
        prefix: "#[cano::saga::task]: ",
        trait_name: "CompensatableTask",
        methods: &["run", "compensate", "config", "name", "is_retryable"],
        assoc_types: &["Output"],
    },
    requires: "#[cano::saga::task]: a compensatable-task impl requires",
    required_methods: &[
        (
            "run",
            "async fn run(&self, res: &Resources) -> Result<(TaskResult<S>, Self::Output), CanoError>",
        ),
        (
            "compensate",
            "async fn compensate(&self, res: &Resources, output: Self::Output) -> Result<(), CanoError>",
        ),
    ],
    required_types: &[("Output", "type Output = …;")],
    defaults: model::no_defaults,
    infer: model::infer_nothing,
    runner: None,
    // No companion: the workflow asks `CompensatableTask::is_retryable` itself.
    forwards_is_retryable: false,
};

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn inherent_form_emits_the_trait_impl_only() {
        let out = model::expand_for_test(
            &MODEL,
            quote!(state = Step, key = Key),
            quote! {
                #[doc = "x"]
                impl<T: Send> Reserve<T> where T: Sync {
                    type Output = u32;
                    async fn run(&self, res: &Resources<Key>) -> Result<(TaskResult<Step>, u32), CanoError> { todo!() }
                    async fn compensate(&self, res: &Resources<Key>, output: u32) -> Result<(), CanoError> { todo!() }
                }
            },
        )
        .unwrap();
        assert!(
            out.contains("impl < T : Send > :: cano :: CompensatableTask < Step , Key > for Reserve < T > where T : Sync"),
            "{out}"
        );
        assert!(!out.contains(":: cano :: Task <"), "no companion: {out}");
        assert!(!out.contains("fn config"), "no defaults: {out}");
    }

    #[test]
    fn trait_impl_is_only_rewritten() {
        let out = model::expand_for_test(
            &MODEL,
            quote!(),
            quote!(impl CompensatableTask for X { async fn run(&self) {} }),
        )
        .unwrap();
        assert!(!out.contains("impl Task"), "{out}");
        assert!(out.contains("'async_trait"), "{out}");
    }

    #[test]
    fn reports_every_missing_piece() {
        let errors = model::expand_for_test(
            &MODEL,
            quote!(state = Step),
            quote!(impl X { type Other = u8; fn helper(&self) {} }),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "#[cano::saga::task]: unexpected associated type `Other`; only `Output` is allowed",
                "#[cano::saga::task]: unexpected method `helper` in inherent impl; only `run`, `compensate`, `config`, `name`, and `is_retryable` are allowed",
                "#[cano::saga::task]: a compensatable-task impl requires `async fn run(&self, res: &Resources) -> Result<(TaskResult<S>, Self::Output), CanoError>` — missing `run`",
                "#[cano::saga::task]: a compensatable-task impl requires `async fn compensate(&self, res: &Resources, output: Self::Output) -> Result<(), CanoError>` — missing `compensate`",
                "#[cano::saga::task]: a compensatable-task impl requires `type Output = …;` — missing `type Output`",
            ]
        );
    }
}
