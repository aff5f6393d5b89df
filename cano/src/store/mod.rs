//! A typed, shared, in-memory key/value store: [`MemoryStore`].
//!
//! Tasks commonly share intermediate data through a `MemoryStore` kept in the
//! workflow's [`Resources`](crate::Resources). Clones share the same map, so the
//! caller can keep a handle and read the results after a run.
//!
//! ```
//! use cano::MemoryStore;
//!
//! let store = MemoryStore::new();
//! let handle = store.clone();
//! store.put("answer", 42u32)?;
//! assert_eq!(handle.get::<u32>("answer")?, 42);
//! # Ok::<(), cano::store::StoreError>(())
//! ```

pub mod error;
pub mod memory;

pub use error::StoreError;
pub use memory::MemoryStore;

/// Result alias for store operations.
pub type StoreResult<TState> = Result<TState, error::StoreError>;
