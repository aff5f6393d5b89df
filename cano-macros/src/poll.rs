//! `#[task::poll]`: `PollTask` impls and their companion `Task` impl, which runs the poll
//! loop.

use crate::inherent::Rules;
use crate::model::{self, Model, Runner};
use syn::{ImplItem, parse_quote};

pub(crate) const MODEL: Model = Model {
    attr: "task::poll",
    trait_name: "PollTask",
    rules: Rules {
        prefix: "#[cano::task::poll]: ",
        trait_name: "PollTask",
        methods: &["poll", "config", "name", "on_poll_error", "is_retryable"],
        assoc_types: &[],
    },
    requires: "#[cano::task::poll] requires",
    required_methods: &[(
        "poll",
        "async fn poll(&self, res: &Resources) -> Result<PollOutcome<S>, CanoError>",
    )],
    required_types: &[],
    defaults,
    infer: model::infer_nothing,
    runner: Some(Runner::Function {
        module: "poll",
        function: "run_poll_loop",
    }),
    forwards_is_retryable: true,
};

fn defaults() -> Vec<(&'static str, ImplItem)> {
    vec![
        model::default_config("minimal"),
        model::default_name(),
        (
            "on_poll_error",
            parse_quote! {
                fn on_poll_error(&self) -> ::cano::PollErrorPolicy {
                    ::cano::PollErrorPolicy::FailFast
                }
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn inherent_defaults_are_minimal_and_fail_fast() {
        let out = model::expand_for_test(
            &MODEL,
            quote!(state = Step, key = Key),
            quote! {
                impl P {
                    async fn poll(&self, res: &Resources<Key>) -> Result<PollOutcome<Step>, CanoError> {
                        todo!()
                    }
                }
            },
        )
        .unwrap();
        assert!(out.contains(":: cano :: TaskConfig :: minimal ()"), "{out}");
        assert!(
            out.contains(":: cano :: PollErrorPolicy :: FailFast"),
            "{out}"
        );
        assert!(
            out.contains("impl :: cano :: Task < Step , Key > for P"),
            "{out}"
        );
        assert!(
            out.contains(
                ":: cano :: task :: poll :: run_poll_loop :: < Self , Step , Key > (self , res)"
            ),
            "{out}"
        );
    }

    #[test]
    fn user_overrides_are_not_duplicated() {
        let out = model::expand_for_test(
            &MODEL,
            quote!(state = Step),
            quote! {
                impl P {
                    fn on_poll_error(&self) -> PollErrorPolicy { PollErrorPolicy::RetryOnError { max_errors: 2 } }
                    async fn poll(&self, res: &Resources) -> Result<PollOutcome<Step>, CanoError> { todo!() }
                }
            },
        )
        .unwrap();
        assert_eq!(out.matches("fn on_poll_error").count(), 1, "{out}");
        assert!(!out.contains("FailFast"), "{out}");
    }

    #[test]
    fn bare_header_uses_bare_names_and_the_absolute_runner() {
        let out = model::expand_for_test(
            &MODEL,
            quote!(),
            quote! {
                impl PollTask<Step> for P {
                    async fn poll(&self, res: &Resources) -> Result<PollOutcome<Step>, CanoError> { todo!() }
                }
            },
        )
        .unwrap();
        assert!(out.contains("impl Task < Step > for P"), "{out}");
        assert!(out.contains("res : & 'life1 Resources <"), "{out}");
        assert!(
            out.contains(":: cano :: task :: poll :: run_poll_loop"),
            "{out}"
        );
    }

    #[test]
    fn unexpected_method_lists_the_allowed_ones() {
        let errors = model::expand_for_test(
            &MODEL,
            quote!(state = Step),
            quote!(impl P { async fn poll(&self) {} fn extra(&self) {} }),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "#[cano::task::poll]: unexpected method `extra` in inherent impl; only `poll`, `config`, `name`, `on_poll_error`, and `is_retryable` are allowed"
            ]
        );
    }
}
