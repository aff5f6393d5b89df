//! `#[task::signal]`: `SignalTask` impls. Like `#[saga::task]` there is no companion
//! `Task` impl: a signal task is registered with `Workflow::register_signal`.

use crate::inherent::Rules;
use crate::model::{self, Model};

pub(crate) const MODEL: Model = Model {
    attr: "task::signal",
    trait_name: "SignalTask",
    rules: Rules {
        prefix: "#[cano::task::signal]: ",
        trait_name: "SignalTask",
        methods: &[
            "on_signal",
            "signal",
            "timeout",
            "config",
            "name",
            "is_retryable",
        ],
        assoc_types: &["Payload"],
    },
    requires: "#[cano::task::signal]: a signal-task impl requires",
    required_methods: &[
        ("signal", "fn signal(&self) -> Cow<'static, str>"),
        (
            "on_signal",
            "async fn on_signal(&self, res: &Resources, payload: Self::Payload) -> Result<TaskResult<S>, CanoError>",
        ),
    ],
    required_types: &[("Payload", "type Payload = …;")],
    defaults: model::no_defaults,
    infer: model::infer_nothing,
    runner: None,
    // No companion: the workflow asks `SignalTask::is_retryable` itself.
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
            quote!(state = Step),
            quote! {
                impl T {
                    type Payload = u32;
                    fn signal(&self) -> Cow<'static, str> { "go".into() }
                    async fn on_signal(&self, res: &Resources, payload: u32) -> Result<TaskResult<Step>, CanoError> { todo!() }
                }
            },
        )
        .unwrap();
        assert!(
            out.contains("impl :: cano :: SignalTask < Step > for T"),
            "{out}"
        );
        assert!(!out.contains("impl :: cano :: Task"), "{out}");
    }

    #[test]
    fn the_payload_type_is_required() {
        let errors = model::expand_for_test(
            &MODEL,
            quote!(state = Step),
            quote! {
                impl T {
                    fn signal(&self) -> Cow<'static, str> { "go".into() }
                    async fn on_signal(&self, res: &Resources, payload: u32) -> Result<TaskResult<Step>, CanoError> { todo!() }
                }
            },
        )
        .unwrap_err();
        assert!(errors.iter().any(|e| e.contains("Payload")), "{errors:?}");
    }
}
