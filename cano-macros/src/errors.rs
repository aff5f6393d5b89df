//! Collecting several compile errors so that one expansion reports them all.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

/// An accumulator of [`syn::Error`]s, combined with [`syn::Error::combine`].
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Records `error`.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records an error spanning `tokens` (from their first to their last token).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records the error of `result`, if any, and returns its value.
    pub(crate) fn check<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// `Ok(())` when nothing was recorded, else every recorded error at once.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Renders `names` as "`a`, `b`, and `c`" (or "`a` and `b`", or "`a`").
pub(crate) fn backticked_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [first, second] => format!("{first} and {second}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

/// Tokens whose span covers both `a` and `b`, for errors about a whole header.
pub(crate) fn span_of(a: impl ToTokens, b: impl ToTokens) -> TokenStream {
    let mut tokens = a.into_token_stream();
    b.to_tokens(&mut tokens);
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_names_like_prose() {
        assert_eq!(backticked_list(&["a"]), "`a`");
        assert_eq!(backticked_list(&["a", "b"]), "`a` and `b`");
        assert_eq!(backticked_list(&["a", "b", "c"]), "`a`, `b`, and `c`");
    }

    #[test]
    fn combines_every_error() {
        let mut errors = Errors::default();
        assert!(Errors::default().finish().is_ok());
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "one"));
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "two"));
        let messages: Vec<String> = errors
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages, ["one", "two"]);
    }
}
