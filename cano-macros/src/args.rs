//! The `state = S, key = K` argument list shared by the task-like attributes.

use crate::errors::Errors;
use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::{Ident, Path, Token, Type, parse_quote};

/// Message for any argument other than `state = T` / `key = K`.
pub(crate) const UNSUPPORTED: &str = "unsupported argument; expected `state = T` or `key = K`";

/// Parsed `state = S` / `key = K` attribute arguments.
pub(crate) struct StateKeyArgs {
    /// The `state = S` type, if given.
    pub(crate) state: Option<Type>,
    /// The `key = K` type, if given.
    pub(crate) key: Option<Type>,
    /// The raw argument tokens, used to point errors at the arguments.
    raw: TokenStream,
}

impl StateKeyArgs {
    /// Parses a comma-separated list of `state = T` / `key = K` in any order (trailing comma
    /// allowed). Every malformed entry is recorded in `errors`; the valid ones are kept.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = Self {
            state: None,
            key: None,
            raw: tokens.clone(),
        };
        for entry in split_top_level_commas(tokens) {
            args.parse_entry(entry, errors);
        }
        args
    }

    /// `true` when the attribute had no arguments at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Records the error for arguments on a trait impl (`impl Trait<S> for T`), where the
    /// state and key come from the header. `attr` is the attribute's path, e.g. `task` or
    /// `task::router`.
    pub(crate) fn reject_on_trait_impl(&self, attr: &str, errors: &mut Errors) {
        if !self.is_empty() {
            errors.spanned(
                &self.raw,
                format!(
                    "#[cano::{attr}]: `state` / `key` args only apply to inherent \
                     `impl T {{ ... }}` blocks; on a trait impl the state and key come from \
                     the trait header, so remove the arguments"
                ),
            );
        }
    }

    /// Records the error for arguments on a trait definition, which take none.
    pub(crate) fn reject_on_trait_def(&self, attr: &str, errors: &mut Errors) {
        if !self.is_empty() {
            errors.spanned(
                &self.raw,
                format!("#[cano::{attr}]: no attribute args are accepted on a trait definition"),
            );
        }
    }

    /// The path of the trait an inherent impl becomes: `trait_path<S>` or
    /// `trait_path<S, K>`. Without `state`, records an error (pointing at the arguments, or
    /// at `header` when there are none) and returns `trait_path` alone.
    pub(crate) fn trait_path(
        &self,
        trait_path: &Path,
        attr: &str,
        header: TokenStream,
        errors: &mut Errors,
    ) -> Path {
        match (&self.state, &self.key) {
            (Some(state), None) => parse_quote!(#trait_path<#state>),
            (Some(state), Some(key)) => parse_quote!(#trait_path<#state, #key>),
            (None, _) => {
                let span = if self.is_empty() {
                    header
                } else {
                    self.raw.clone()
                };
                errors.spanned(
                    span,
                    format!(
                        "#[cano::{attr}] on an inherent `impl T {{ ... }}` block requires \
                         `state = T` (e.g. `#[{attr}(state = MyState)]`)"
                    ),
                );
                trait_path.clone()
            }
        }
    }

    fn parse_entry(&mut self, entry: TokenStream, errors: &mut Errors) {
        let mut trees = entry.clone().into_iter();
        let (Some(TokenTree::Ident(name)), Some(TokenTree::Punct(eq))) =
            (trees.next(), trees.next())
        else {
            errors.spanned(&entry, UNSUPPORTED);
            return;
        };
        let slot = match name.to_string().as_str() {
            "state" => &mut self.state,
            "key" => &mut self.key,
            _ => {
                errors.spanned(&entry, UNSUPPORTED);
                return;
            }
        };
        if eq.as_char() != '=' || eq.spacing() != Spacing::Alone {
            errors.spanned(&entry, UNSUPPORTED);
            return;
        }
        let value: TokenStream = trees.collect();
        if value.is_empty() {
            errors.spanned(&entry, format!("expected a type after `{name} =`"));
            return;
        }
        let Some(ty) = errors.check(syn::parse2::<Type>(value)) else {
            return;
        };
        if slot.is_some() {
            errors.spanned(&entry, format!("duplicate `{name}` argument"));
        } else {
            *slot = Some(ty);
        }
    }
}

/// Parses `key = Type` (used by `#[from_resources(key = K)]`).
pub(crate) fn parse_key_only(input: syn::parse::ParseStream<'_>) -> syn::Result<Type> {
    let name: Ident = input.parse()?;
    if name != "key" {
        return Err(syn::Error::new(
            name.span(),
            "FromResources: expected `#[from_resources(key = SomeType)]`",
        ));
    }
    input.parse::<Token![=]>()?;
    let ty: Type = input.parse()?;
    if !input.is_empty() {
        input.parse::<Token![,]>()?;
    }
    if !input.is_empty() {
        return Err(input.error("FromResources: expected only `key = SomeType`"));
    }
    Ok(ty)
}

/// Splits `tokens` at commas that are not nested in brackets or in `<…>` (so
/// `key = HashMap<A, B>` stays one entry). Empty entries (a trailing comma) are dropped.
fn split_top_level_commas(tokens: TokenStream) -> Vec<TokenStream> {
    let mut entries = Vec::new();
    let mut current = Vec::new();
    let mut angle_depth = 0usize;
    let mut after_minus = false;
    for tree in tokens {
        if let TokenTree::Punct(punct) = &tree {
            match punct.as_char() {
                ',' if angle_depth == 0 => {
                    entries.push(current.drain(..).collect::<TokenStream>());
                    after_minus = false;
                    continue;
                }
                '<' => angle_depth += 1,
                // `->` in a fn-pointer type is not a closing angle bracket.
                '>' if !after_minus => angle_depth = angle_depth.saturating_sub(1),
                _ => {}
            }
            after_minus = punct.as_char() == '-' && punct.spacing() == Spacing::Joint;
        } else {
            after_minus = false;
        }
        current.push(tree);
    }
    if !current.is_empty() {
        entries.push(current.into_iter().collect());
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{ToTokens, quote};

    fn parse(tokens: TokenStream) -> (StateKeyArgs, Vec<String>) {
        let mut errors = Errors::default();
        let args = StateKeyArgs::parse(tokens, &mut errors);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (args, messages)
    }

    fn render(ty: &Option<Type>) -> String {
        ty.as_ref()
            .map(|t| t.to_token_stream().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn accepts_any_order_and_trailing_comma() {
        let (args, errors) = parse(quote!(key = HashMap<A, B>, state = fn() -> u8,));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(render(&args.state), "fn () -> u8");
        assert_eq!(render(&args.key), "HashMap < A , B >");
        assert!(!args.is_empty());
    }

    #[test]
    fn empty_args() {
        let (args, errors) = parse(TokenStream::new());
        assert!(errors.is_empty());
        assert!(args.is_empty() && args.state.is_none() && args.key.is_none());
    }

    #[test]
    fn reports_every_bad_entry() {
        let (args, errors) = parse(quote!(foo = u8, state = S, MyState, state = T));
        assert_eq!(render(&args.state), "S");
        assert_eq!(
            errors,
            [UNSUPPORTED, UNSUPPORTED, "duplicate `state` argument"]
        );
    }
}
