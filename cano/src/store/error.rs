//! [`StoreError`]: what can go wrong in a key/value store.

use std::fmt;

/// Errors returned by [`MemoryStore`](crate::MemoryStore) and custom stores.
///
/// Converts into [`CanoError::Store`](crate::CanoError::Store) with `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No value under the key.
    KeyNotFound(String),
    /// A value exists but has another type than the one requested.
    TypeMismatch(String),
    /// A lock could not be taken (never produced by `MemoryStore`, whose lock cannot be poisoned).
    LockError(String),
    /// `append` found a value that is not a `Vec` of the item type.
    AppendTypeMismatch(String),
    /// Any other store error.
    Generic(String),
}

impl StoreError {
    /// No value under `key`. The message names the key.
    pub fn key_not_found<S: Into<String>>(key: S) -> Self {
        Self::KeyNotFound(format!("Key '{}' not found in store", key.into()))
    }
    /// A value of another type is stored; `msg` is kept verbatim.
    pub fn type_mismatch<S: Into<String>>(msg: S) -> Self {
        Self::TypeMismatch(msg.into())
    }
    /// A lock failure; `msg` is kept verbatim.
    pub fn lock_error<S: Into<String>>(msg: S) -> Self {
        Self::LockError(msg.into())
    }
    /// `append` onto a value that is not a `Vec` of the item type. The message names the key.
    pub fn append_type_mismatch<S: Into<String>>(key: S) -> Self {
        Self::AppendTypeMismatch(format!(
            "Cannot append to key '{}': existing value is not a Vec<TState>",
            key.into()
        ))
    }
    /// Any other error; `msg` is kept verbatim.
    pub fn generic<S: Into<String>>(msg: S) -> Self {
        Self::Generic(msg.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyNotFound(m) => write!(f, "Key not found: {m}"),
            Self::TypeMismatch(m) => write!(f, "Type mismatch: {m}"),
            Self::LockError(m) => write!(f, "Lock error: {m}"),
            Self::AppendTypeMismatch(m) => write!(f, "Append type mismatch: {m}"),
            Self::Generic(m) => write!(f, "Store error: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}
