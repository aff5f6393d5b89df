//! `#[task::timer]`: `TimerTask` impls and their companion `Task` impl, which runs the
//! in-memory timer and tells the workflow (through `Task::__timer`) that the task is a
//! timer, so that a registered timer is run durably.

use crate::inherent::Rules;
use crate::model::{self, Model, Runner};
use syn::ImplItem;

pub(crate) const MODEL: Model = Model {
    attr: "task::timer",
    trait_name: "TimerTask",
    rules: Rules {
        prefix: "#[cano::task::timer]: ",
        trait_name: "TimerTask",
        methods: &["wait", "after_wait", "config", "name", "is_retryable"],
        assoc_types: &[],
    },
    requires: "#[cano::task::timer] requires",
    required_methods: &[
        (
            "wait",
            "async fn wait(&self, res: &Resources) -> Result<TimerOutcome, CanoError>",
        ),
        (
            "after_wait",
            "async fn after_wait(&self, res: &Resources) -> Result<TaskResult<S>, CanoError>",
        ),
    ],
    required_types: &[],
    defaults,
    infer: model::infer_nothing,
    runner: Some(Runner::Recognised {
        module: "timer",
        function: "run_timer",
        marker: "__timer",
    }),
    forwards_is_retryable: true,
};

fn defaults() -> Vec<(&'static str, ImplItem)> {
    vec![model::default_config("minimal"), model::default_name()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn the_companion_runs_the_timer_and_marks_it() {
        let out = model::expand_for_test(
            &MODEL,
            quote!(state = Step),
            quote! {
                impl T {
                    async fn wait(&self, res: &Resources) -> Result<TimerOutcome, CanoError> { todo!() }
                    async fn after_wait(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> { todo!() }
                }
            },
        )
        .unwrap();
        assert!(out.contains(":: cano :: TaskConfig :: minimal ()"), "{out}");
        assert!(out.contains("impl :: cano :: Task < Step > for T"), "{out}");
        assert!(
            out.contains(":: cano :: task :: timer :: run_timer"),
            "{out}"
        );
        assert!(out.contains("fn __timer"), "{out}");
        assert!(
            out.contains(
                "< Self as :: cano :: TimerTask < Step > > :: is_retryable (self , error , attempt)"
            ),
            "{out}"
        );
    }

    #[test]
    fn both_methods_are_required() {
        let errors = model::expand_for_test(
            &MODEL,
            quote!(state = Step),
            quote!(impl T { async fn wait(&self, res: &Resources) -> Result<TimerOutcome, CanoError> { todo!() } }),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("after_wait"), "{errors:?}");
    }
}
