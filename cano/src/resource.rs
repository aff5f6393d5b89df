//! Shared, typed dependencies for tasks: [`Resource`], [`Resources`], [`HealthStatus`].
//!
//! A [`Resources`] map is handed to every task of a workflow run. Each entry is a
//! [`Resource`]: something with an optional async lifecycle (`setup` before a run,
//! `teardown` after it) and an optional health check.
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Resource)]
//! struct Config { retries: u32 }
//!
//! let res: Resources = Resources::new()
//!     .insert("config", Config { retries: 3 })
//!     .insert("store", MemoryStore::new());
//! assert_eq!(res.get::<Config, _>("config")?.retries, 3);
//! assert!(res.get::<Config, _>("store").is_err()); // wrong type
//! # Ok::<(), CanoError>(())
//! ```

use crate::error::CanoError;
use crate::util::FastMap;
use std::any::{Any, type_name};
use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

/// Health of a resource, as reported by [`Resource::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthStatus {
    /// Fully working.
    Healthy,
    /// Working with reduced capability; the text says how.
    Degraded(String),
    /// Not working; the text says why.
    Unhealthy(String),
}

impl HealthStatus {
    /// `true` only for [`HealthStatus::Healthy`].
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy)
    }

    fn severity(&self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::Degraded(_) => 1,
            Self::Unhealthy(_) => 2,
        }
    }
}

/// A dependency that lives in [`Resources`], with an optional async lifecycle.
///
/// Every method has a default, so `impl Resource for MyType {}` (or
/// `#[derive(Resource)]`) is enough. Override the hooks with `#[resource]`:
///
/// ```
/// use cano::prelude::*;
///
/// struct Pool;
///
/// #[resource]
/// impl Resource for Pool {
///     async fn setup(&self) -> Result<(), CanoError> {
///         // open connections...
///         Ok(())
///     }
///     async fn health(&self) -> HealthStatus {
///         HealthStatus::Degraded("one replica lagging".into())
///     }
/// }
/// ```
///
/// The workflow calls `setup` on every resource (in insertion order) before each run
/// and `teardown` (in reverse order) after it; see [`Resources::setup_all`].
pub trait Resource: Send + Sync + 'static {
    /// Prepare the resource before a workflow run. Default: nothing.
    fn setup<'life0, 'async_trait>(
        &'life0 self,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(async move { Ok(()) })
    }

    /// Release the resource after a workflow run. Default: nothing.
    fn teardown<'life0, 'async_trait>(
        &'life0 self,
    ) -> Pin<Box<dyn Future<Output = Result<(), CanoError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(async move { Ok(()) })
    }

    /// Report the resource's health. Default: [`HealthStatus::Healthy`].
    fn health<'life0, 'async_trait>(
        &'life0 self,
    ) -> Pin<Box<dyn Future<Output = HealthStatus> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(async move { HealthStatus::Healthy })
    }
}

/// A typed map of [`Resource`]s shared by every task of a workflow.
///
/// The key type defaults to `Cow<'static, str>`, so string literals and `String`s
/// both work as keys and lookups take a `&str`. Any `Hash + Eq` type (an enum, say)
/// can be used instead: `Resources::<MyKey>::new()`.
///
/// Resources are wrapped in an `Arc` on insert; [`get`](Self::get) hands out clones
/// of that `Arc`.
pub struct Resources<TResourceKey = Cow<'static, str>>
where
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    map: KeyMap<TResourceKey, Arc<dyn Any + Send + Sync>>,
    lifecycle: Vec<Arc<dyn Resource>>,
}

/// Maps of at most this many resources are searched linearly.
const SMALL: usize = 8;

/// The key → resource map. Most workflows have a handful of resources, looked up on every
/// step: for those, comparing the keys one by one is faster than hashing the one asked
/// for (`resources_get` in `cano/benches/engine.rs`). Larger maps are hashed.
enum KeyMap<K, V> {
    Small(Vec<(K, V)>),
    Large(FastMap<K, V>),
}

impl<K: Hash + Eq, V> KeyMap<K, V> {
    fn with_capacity(n: usize) -> Self {
        if n <= SMALL {
            Self::Small(Vec::with_capacity(n))
        } else {
            Self::Large(FastMap::with_capacity_and_hasher(n, Default::default()))
        }
    }

    #[inline]
    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Self::Small(entries) => entries
                .iter()
                .find(|(k, _)| k.borrow() == key)
                .map(|(_, v)| v),
            Self::Large(map) => map.get(key),
        }
    }

    /// Add an entry whose key is not in the map yet.
    fn insert_new(&mut self, key: K, value: V) {
        match self {
            Self::Small(entries) if entries.len() < SMALL => entries.push((key, value)),
            Self::Small(entries) => {
                let mut map = FastMap::with_capacity_and_hasher(SMALL * 2, Default::default());
                map.extend(entries.drain(..));
                map.insert(key, value);
                *self = Self::Large(map);
            }
            Self::Large(map) => {
                map.insert(key, value);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Small(entries) => entries.len(),
            Self::Large(map) => map.len(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&K, &V)> + Send + '_>
    where
        K: Sync,
        V: Sync,
    {
        match self {
            Self::Small(entries) => Box::new(entries.iter().map(|(k, v)| (k, v))),
            Self::Large(map) => Box::new(map.iter()),
        }
    }
}

const DUPLICATE_KEY: &str = "duplicate resource key inserted into Resources";

impl<TResourceKey> Resources<TResourceKey>
where
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        Self {
            map: KeyMap::with_capacity(0),
            lifecycle: Vec::new(),
        }
    }

    /// An empty map (same as [`new`](Self::new)).
    #[must_use]
    pub fn empty() -> Self {
        Self::new()
    }

    /// An empty map with room for `n` resources.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            map: KeyMap::with_capacity(n),
            lifecycle: Vec::with_capacity(n),
        }
    }

    /// Add `resource` under `key`.
    ///
    /// # Panics
    /// If `key` is already present. Use [`try_insert`](Self::try_insert) to get an error instead.
    #[must_use]
    #[track_caller]
    pub fn insert<R: Resource + 'static>(self, key: impl Into<TResourceKey>, resource: R) -> Self {
        match self.try_insert(key, resource) {
            Ok(this) => this,
            Err(_) => panic!("{DUPLICATE_KEY}; use try_insert to handle duplicates as Result"),
        }
    }

    /// Add `resource` under `key`, or fail with [`CanoError::ResourceDuplicateKey`] if the
    /// key is taken (the map is consumed either way).
    ///
    /// # Errors
    /// [`CanoError::ResourceDuplicateKey`] when `key` is already present.
    pub fn try_insert<R: Resource + 'static>(
        mut self,
        key: impl Into<TResourceKey>,
        resource: R,
    ) -> Result<Self, CanoError> {
        let key = key.into();
        if self.map.get(&key).is_some() {
            return Err(CanoError::resource_duplicate_key(DUPLICATE_KEY));
        }
        let resource = Arc::new(resource);
        self.lifecycle.push(resource.clone());
        self.map.insert_new(key, resource);
        Ok(self)
    }

    /// The resource stored under `key`, as type `R`.
    ///
    /// `Q` is the borrowed form of the key (`str` for the default key type), so
    /// `res.get::<MyType, _>("name")` works.
    ///
    /// # Errors
    /// [`CanoError::ResourceNotFound`] if nothing is stored under `key`;
    /// [`CanoError::ResourceTypeMismatch`] if the resource is not an `R`.
    pub fn get<R, Q>(&self, key: &Q) -> Result<Arc<R>, CanoError>
    where
        R: Resource + 'static,
        TResourceKey: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(value) = self.map.get(key) else {
            return Err(CanoError::resource_not_found(format!(
                "no resource found for the given key (requested type: {})",
                type_name::<R>()
            )));
        };
        Arc::clone(value).downcast::<R>().map_err(|_| {
            CanoError::resource_type_mismatch(format!(
                "resource found but the requested type {} does not match the stored type",
                type_name::<R>()
            ))
        })
    }

    /// Call [`Resource::setup`] on every resource, in insertion order.
    ///
    /// If one fails, the resources already set up are torn down in reverse order and the
    /// original error is returned; the failing resource and later ones are not torn down.
    ///
    /// # Errors
    /// The first setup error.
    pub async fn setup_all(&self) -> Result<(), CanoError> {
        self.setup_reporting(&|e| report_teardown_error(e, false))
            .await
    }

    /// [`setup_all`](Self::setup_all), handing the errors of the teardown after a failed
    /// setup to `report`.
    pub(crate) async fn setup_reporting(
        &self,
        report: &(dyn Fn(&CanoError) + Sync),
    ) -> Result<(), CanoError> {
        for (i, resource) in self.lifecycle.iter().enumerate() {
            if let Err(err) = resource.setup().await {
                self.teardown_range(0..i, report).await;
                return Err(err);
            }
        }
        Ok(())
    }

    /// Call [`Resource::teardown`] on every resource, in reverse insertion order.
    ///
    /// A failing teardown does not stop the others; its error is logged (with the
    /// `tracing` feature through `tracing::error!`, otherwise on stderr).
    pub async fn teardown_all(&self) {
        self.teardown_range(0..self.lifecycle.len(), &|e| {
            report_teardown_error(e, false);
        })
        .await;
    }

    /// Tear down the resources with lifecycle indices in `range`, last first, handing
    /// each error to `report`.
    pub(crate) async fn teardown_range(
        &self,
        range: Range<usize>,
        report: &(dyn Fn(&CanoError) + Sync),
    ) {
        let end = range.end.min(self.lifecycle.len());
        let start = range.start.min(end);
        for resource in self.lifecycle[start..end].iter().rev() {
            if let Err(err) = resource.teardown().await {
                report(&err);
            }
        }
    }

    /// Number of resources with a lifecycle (every inserted resource).
    pub(crate) fn lifecycle_len(&self) -> usize {
        self.lifecycle.len()
    }

    /// Whether any resource is registered (the engine skips setup/teardown otherwise).
    pub(crate) fn has_lifecycle(&self) -> bool {
        !self.lifecycle.is_empty()
    }

    /// The health of every resource, by key.
    pub async fn check_all_health(&self) -> HashMap<TResourceKey, HealthStatus>
    where
        TResourceKey: Clone,
    {
        let mut report = HashMap::with_capacity(self.map.len());
        for (key, value) in self.map.iter() {
            if let Some(resource) = self.lifecycle.iter().find(|r| same_allocation(r, value)) {
                report.insert(key.clone(), resource.health().await);
            }
        }
        report
    }

    /// The worst health over all resources (`Healthy` < `Degraded` < `Unhealthy`);
    /// among equally bad statuses the first in insertion order wins. Empty: `Healthy`.
    pub async fn aggregate_health(&self) -> HealthStatus {
        let mut worst = HealthStatus::Healthy;
        for resource in &self.lifecycle {
            let status = resource.health().await;
            if status.severity() > worst.severity() {
                worst = status;
            }
        }
        worst
    }
}

fn same_allocation(a: &Arc<dyn Resource>, b: &Arc<dyn Any + Send + Sync>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// A failed teardown, at `tracing`'s ERROR level; on stderr when neither `tracing` nor an
/// observer (`observed`) hears of it.
pub(crate) fn report_teardown_error(err: &CanoError, observed: bool) {
    #[cfg(feature = "tracing")]
    {
        let _ = observed;
        tracing::error!("resource teardown failed: {err}");
    }
    #[cfg(not(feature = "tracing"))]
    if !observed {
        eprintln!("cano: resource teardown error: {err}");
    }
}

impl<TResourceKey> Default for Resources<TResourceKey>
where
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<TResourceKey> fmt::Debug for Resources<TResourceKey>
where
    TResourceKey: Hash + Eq + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("count", &self.map.len())
            .finish()
    }
}
