//! [`StateTable`]: the map from states to handlers (and the exit-state set).
//!
//! Workflows usually have a handful of states, and the run loop looks one up on every
//! transition. For small tables a linear scan with `==` beats hashing; larger tables
//! keep a hash index beside the entries.
//!
//! Each entry also keeps its state's label (its `Debug` text), formatted once at insert:
//! observers and checkpoint rows name the state on every entry, and formatting it each
//! time was a tenth of a checkpointed transition's cost.

use crate::util::FastMap;
use std::fmt;
use std::hash::Hash;

/// Above this many entries lookups go through the hash index.
const LINEAR_LIMIT: usize = 8;

/// A state, its value and its label (`format!("{state:?}")`).
pub(crate) type Entry<S, V> = (S, V, Box<str>);

#[derive(Clone)]
pub(crate) struct StateTable<S, V> {
    /// In insertion order.
    entries: Vec<Entry<S, V>>,
    index: FastMap<S, usize>,
}

impl<S: Hash + Eq + Clone + fmt::Debug, V> StateTable<S, V> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Vec::new(),
            index: FastMap::default(),
        }
    }

    /// Insert or replace; returns the replaced value.
    pub(crate) fn insert(&mut self, key: S, value: V) -> Option<V> {
        if let Some(&i) = self.index.get(&key) {
            return Some(std::mem::replace(&mut self.entries[i].1, value));
        }
        self.index.insert(key.clone(), self.entries.len());
        let label = format!("{key:?}").into_boxed_str();
        self.entries.push((key, value, label));
        None
    }

    #[inline]
    fn position(&self, key: &S) -> Option<usize> {
        if self.entries.len() <= LINEAR_LIMIT {
            self.entries.iter().position(|(k, ..)| k == key)
        } else {
            self.index.get(key).copied()
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: &S) -> Option<&V> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// The whole entry of `key`: one reference for the run loop to keep across an
    /// `await`, where the value and the label would be three words.
    #[inline]
    pub(crate) fn entry(&self, key: &S) -> Option<&Entry<S, V>> {
        self.position(key).map(|i| &self.entries[i])
    }

    /// The state's label if `key` is in the table.
    #[inline]
    pub(crate) fn label(&self, key: &S) -> Option<&str> {
        self.position(key).map(|i| &*self.entries[i].2)
    }

    #[inline]
    pub(crate) fn contains(&self, key: &S) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in insertion order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&S, &V)> {
        self.entries.iter().map(|(k, v, _)| (k, v))
    }

    /// Keys and their labels, in insertion order.
    pub(crate) fn labelled_keys(&self) -> impl Iterator<Item = (&S, &str)> {
        self.entries.iter().map(|(k, _, label)| (k, &**label))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &S> {
        self.entries.iter().map(|(k, ..)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree_below_and_above_the_linear_limit() {
        let mut t = StateTable::new();
        for i in 0..40u32 {
            assert!(t.insert(i, i * 10).is_none());
            for j in 0..=i {
                assert_eq!(t.get(&j), Some(&(j * 10)));
            }
            assert_eq!(t.get(&(i + 1)), None);
        }
        assert_eq!(t.insert(3, 99), Some(30));
        assert_eq!(t.get(&3), Some(&99));
        assert_eq!(t.entry(&3), Some(&(3, 99, "3".into())));
        assert_eq!(t.label(&39), Some("39"));
        assert_eq!(t.label(&40), None);
        assert_eq!(t.len(), 40);
        assert_eq!(t.keys().copied().take(3).collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
