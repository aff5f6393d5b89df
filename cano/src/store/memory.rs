//! [`MemoryStore`]: a thread-safe map from string keys to values of any type.

use super::{StoreError, StoreResult};
use crate::util::FastMap;
use parking_lot::RwLock;
use std::any::Any;
use std::sync::Arc;

type Value = Arc<dyn Any + Send + Sync>;

/// A shared, typed, in-memory key/value store.
///
/// * Cloning is shallow: every clone sees the same map.
/// * Values keep their exact type; reading with another type is a
///   [`StoreError::TypeMismatch`].
/// * All methods take `&self` and are safe to call from many threads and tasks at once.
///
/// ```
/// use cano::MemoryStore;
///
/// let store = MemoryStore::new();
/// store.put("user", String::from("ada"))?;
/// store.append("events", "created")?;
/// store.append("events", "verified")?;
/// assert_eq!(store.get::<String>("user")?, "ada");
/// assert_eq!(store.get::<Vec<&str>>("events")?, vec!["created", "verified"]);
/// assert!(store.get::<u32>("user").is_err()); // wrong type
/// # Ok::<(), cano::store::StoreError>(())
/// ```
#[derive(Default, Clone)]
pub struct MemoryStore {
    map: Arc<RwLock<FastMap<String, Value>>>,
}

fn mismatch(key: &str) -> StoreError {
    StoreError::type_mismatch(format!(
        "Cannot downcast value for key '{key}' to requested type"
    ))
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored `Arc` itself (no copy of the value); repeated calls return the same `Arc`.
    ///
    /// # Errors
    /// [`StoreError::KeyNotFound`] or [`StoreError::TypeMismatch`].
    pub fn get_shared<TState: 'static + Send + Sync>(&self, key: &str) -> StoreResult<Arc<TState>> {
        let map = self.map.read();
        let value = map.get(key).ok_or_else(|| StoreError::key_not_found(key))?;
        Arc::clone(value)
            .downcast::<TState>()
            .map_err(|_| mismatch(key))
    }

    /// A clone of the value stored under `key`.
    ///
    /// # Errors
    /// [`StoreError::KeyNotFound`] or [`StoreError::TypeMismatch`].
    pub fn get<TState: 'static + Clone>(&self, key: &str) -> StoreResult<TState> {
        let map = self.map.read();
        let value = map.get(key).ok_or_else(|| StoreError::key_not_found(key))?;
        (**value)
            .downcast_ref::<TState>()
            .cloned()
            .ok_or_else(|| mismatch(key))
    }

    /// Insert or replace the value under `key` (the type may change). Never fails.
    ///
    /// Replacing a value of the same type that no one holds an `Arc` of (from
    /// [`get_shared`](Self::get_shared)) reuses its allocation; otherwise the new value gets
    /// its own, and holders of the old `Arc` keep seeing the old value.
    pub fn put<TState: 'static + Send + Sync>(&self, key: &str, value: TState) -> StoreResult<()> {
        // What is replaced: the old value itself, or the old `Arc`.
        let replaced: (Option<TState>, Option<Value>) = {
            let mut map = self.map.write();
            match map.get_mut(key) {
                Some(slot) => match Arc::get_mut(slot).and_then(|v| v.downcast_mut::<TState>()) {
                    Some(in_place) => (Some(std::mem::replace(in_place, value)), None),
                    None => (None, Some(std::mem::replace(slot, Arc::new(value)))),
                },
                None => {
                    map.insert(key.to_owned(), Arc::new(value));
                    (None, None)
                }
            }
        };
        // It is dropped outside the lock.
        drop(replaced);
        Ok(())
    }

    /// Remove the value under `key`; removing a missing key is not an error.
    pub fn remove(&self, key: &str) -> StoreResult<()> {
        let old = self.map.write().remove(key);
        drop(old);
        Ok(())
    }

    /// Push `item` onto the `Vec<TState>` stored under `key`, creating it if absent.
    ///
    /// If someone still holds an `Arc` from [`get_shared`](Self::get_shared), the vector
    /// is copied first so that `Arc` keeps seeing the old contents.
    ///
    /// # Errors
    /// [`StoreError::AppendTypeMismatch`] when the key holds anything but a `Vec<TState>`;
    /// the stored value is left untouched.
    pub fn append<TState: 'static + Send + Sync + Clone>(
        &self,
        key: &str,
        item: TState,
    ) -> StoreResult<()> {
        let mut map = self.map.write();
        let Some(slot) = map.get_mut(key) else {
            map.insert(key.to_owned(), Arc::new(vec![item]));
            return Ok(());
        };
        if !slot.is::<Vec<TState>>() {
            return Err(StoreError::append_type_mismatch(key));
        }
        if let Some(vec) = Arc::get_mut(slot).and_then(|v| v.downcast_mut::<Vec<TState>>()) {
            vec.push(item);
            return Ok(());
        }
        // Shared: copy on write.
        let mut copy = slot
            .downcast_ref::<Vec<TState>>()
            .cloned()
            .ok_or_else(|| StoreError::append_type_mismatch(key))?;
        copy.push(item);
        *slot = Arc::new(copy);
        Ok(())
    }

    /// Whether a value is stored under `key`.
    pub fn contains_key(&self, key: &str) -> StoreResult<bool> {
        Ok(self.map.read().contains_key(key))
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> StoreResult<Vec<Arc<str>>> {
        Ok(self
            .map
            .read()
            .keys()
            .map(|k| Arc::from(k.as_str()))
            .collect())
    }

    /// Number of stored values.
    pub fn len(&self) -> StoreResult<usize> {
        Ok(self.map.read().len())
    }

    /// Whether the store holds no values.
    pub fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.map.read().is_empty())
    }

    /// Remove every value.
    pub fn clear(&self) -> StoreResult<()> {
        let old = std::mem::take(&mut *self.map.write());
        drop(old);
        Ok(())
    }
}

impl crate::resource::Resource for MemoryStore {}
