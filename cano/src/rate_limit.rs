//! Rate limiters: a token bucket, a fixed window, and a multi-tier limiter over both.
//!
//! - [`RateLimiter`] is a token bucket. It starts full with
//!   [`capacity`](RateLimiterPolicy::capacity) tokens and refills continuously at
//!   `tokens_per_period` tokens per `refill_period`, computed lazily on each call (no
//!   background task).
//! - [`WindowedRateLimiter`] allows [`limit`](WindowPolicy::limit) units per fixed window. A
//!   window opens at the first debit after the previous one expired (monotonic clock, no
//!   wall-clock alignment) and usage resets when it ends.
//! - [`MultiRateLimiter`] stacks named tiers ("100 per minute *and* 5 000 per day"): an
//!   acquire reserves every tier or none; when a tier rejects, the tiers already charged are
//!   refunded.
//!
//! All three share the object-safe [`Meter`] trait (the first two implement it, the third
//! composes them), implement [`Resource`](crate::Resource) so they can live in
//! [`Resources`](crate::Resources), and are cheap to clone: clones share one state.
//!
//! `try_*` methods never wait: they return a [`Permit`] or a [`RateLimited`] that names the
//! tier and how long to wait. `acquire*` methods sleep on Tokio's timer exactly until the
//! capacity exists, and read time from Tokio's clock, so on a paused clock
//! (`#[tokio::test(start_paused = true)]`) tests can assert exact waits.
//!
//! **Cost.** An uncontended `try_acquire` reads the clock once and updates one atomic:
//! 28.4–29.4 ns for a token bucket and 27.9–28.2 ns for a window on a 2-core VM where
//! reading the clock alone takes 16.6–17.8 ns (`cargo bench -p cano --bench engine --
//! rate_limiter`). A token bucket's arithmetic is exact: a nanosecond is `gain` units
//! and a token `unit` units (`tokens_per_period` and `refill_period` in ns, divided by
//! their greatest common divisor), and its state is one 64-bit count of such units from
//! a base that moves forward now and then. That holds for every policy whose capacity,
//! in units, stays below about 4.6 × 10^18 (and whose scaled clock fits 63 bits for a
//! second): `per_second(n)` for any `n`, 50 per minute, 2^31 per minute. The others, such
//! as 2^31 − 1 tokens an hour with as many in the bucket (7.7 × 10^21 units), keep 128
//! bits under a lock.
//!
//! A rejection converts into the *existing* [`CanoError::Generic`] variant (see
//! [`RateLimited`] for the text), so a task can use `?` on it. A bad policy (zero capacity,
//! zero rate, a non-finite rate) is a [`CanoError::Configuration`] from the constructor,
//! never a panic.
//!
//! ```
//! use cano::rate_limit::{RateLimiter, RateLimiterPolicy};
//! use std::time::Duration;
//! use tokio::time::Instant;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! // 2 tokens per second, bucket of 2.
//! let limiter = RateLimiter::new(RateLimiterPolicy::per_second(2))?;
//! let _a = limiter.try_acquire()?;
//! let _b = limiter.try_acquire()?;
//!
//! // Empty: try_acquire says how long to wait, acquire waits exactly that long.
//! let rejected = limiter.try_acquire().unwrap_err();
//! assert_eq!(rejected.retry_after, Duration::from_millis(500));
//! let start = Instant::now();
//! let _c = limiter.acquire().await;
//! assert_eq!(start.elapsed(), Duration::from_millis(500));
//! # Ok::<(), cano::CanoError>(())
//! # }).unwrap();
//! ```

use crate::error::CanoError;
use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Converts nanoseconds to a `Duration`, saturating at [`Duration::MAX`].
fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = nanos / NANOS_PER_SEC;
    let sub = (nanos % NANOS_PER_SEC) as u32;
    match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, sub),
        Err(_) => Duration::MAX,
    }
}

// ---------------------------------------------------------------------------------------
// Rejection and permits
// ---------------------------------------------------------------------------------------

/// A limiter refused a request: which tier refused and how long until it could succeed.
///
/// `retry_after` is [`Duration::MAX`] when the request can never succeed (its cost exceeds
/// the tier's capacity).
///
/// It converts into [`CanoError::Generic`] with the text
/// `rate limited by tier '<tier>': retry after <retry_after:?>` (for example
/// `Error: rate limited by tier 'api': retry after 500ms` once displayed), so `?` works
/// inside a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    /// The name of the tier (or single limiter) that refused.
    pub tier: String,
    /// How long until the same request would succeed, if nothing else takes capacity first.
    pub retry_after: Duration,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited by tier '{}': retry after {:?}",
            self.tier, self.retry_after
        )
    }
}

impl std::error::Error for RateLimited {}

impl From<RateLimited> for CanoError {
    fn from(err: RateLimited) -> Self {
        CanoError::Generic(err.to_string())
    }
}

/// Proof that a single limiter granted `cost` units.
///
/// A scope marker only: the units are spent when the permit is granted, and dropping it
/// gives nothing back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a permit marks the rate-limited work; bind it to a name for the scope"]
pub struct Permit {
    cost: u64,
}

impl Permit {
    /// The number of units this permit was granted for.
    #[must_use]
    pub fn cost(&self) -> u64 {
        self.cost
    }
}

/// Identifies the window a debit was made in, so a late [`Meter::credit`] cannot give back
/// units to a window that has since reset. Token buckets ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(u64);

// ---------------------------------------------------------------------------------------
// The common trait
// ---------------------------------------------------------------------------------------

/// The synchronous core shared by the limiters: debit, refund, and ask how long to wait.
///
/// Object-safe, so [`MultiRateLimiter`] holds its tiers as `Arc<dyn Meter>`; implement it
/// for your own limiter to stack it with the built-in ones.
pub trait Meter: Send + Sync + 'static {
    /// Take `cost` units now, or return how long until they would be available
    /// ([`Duration::MAX`] if `cost` exceeds [`capacity`](Self::capacity)). Never waits.
    ///
    /// # Errors
    /// The time to wait, when the units are not available now.
    fn try_debit(&self, cost: u64) -> Result<Epoch, Duration>;

    /// Give back `cost` units taken by a [`try_debit`](Self::try_debit) that returned
    /// `epoch`. A window limiter ignores a credit for a window that has already ended.
    fn credit(&self, cost: u64, epoch: Epoch);

    /// How long until `cost` units would be available (zero if they are now); `None` if
    /// never, because `cost` exceeds [`capacity`](Self::capacity).
    fn time_until(&self, cost: u64) -> Option<Duration>;

    /// The most units a single request can ever get.
    fn capacity(&self) -> u64;
}

// ---------------------------------------------------------------------------------------
// Token bucket
// ---------------------------------------------------------------------------------------

/// The shape of a [`RateLimiter`]'s token bucket.
///
/// The bucket holds at most [`capacity`](Self::capacity) (`max_tokens + burst`) tokens and
/// gains `tokens_per_period` tokens every `refill_period`, continuously (one token every
/// `refill_period / tokens_per_period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimiterPolicy {
    /// The steady bucket size. Together with `burst`, must be at least 1.
    pub max_tokens: u32,
    /// Tokens added per `refill_period`. Must be at least 1.
    pub tokens_per_period: u32,
    /// The period over which `tokens_per_period` tokens are added. Must be non-zero.
    pub refill_period: Duration,
    /// Extra room on top of `max_tokens` for short bursts.
    pub burst: u32,
}

impl RateLimiterPolicy {
    /// `tokens` per `period`, with a bucket of `tokens` and no extra burst.
    #[must_use]
    pub fn new(tokens: u32, period: Duration) -> Self {
        Self {
            max_tokens: tokens,
            tokens_per_period: tokens,
            refill_period: period,
            burst: 0,
        }
    }

    /// `tokens` per second, with a bucket of `tokens`.
    #[must_use]
    pub fn per_second(tokens: u32) -> Self {
        Self::new(tokens, Duration::from_secs(1))
    }

    /// A fractional rate of `tokens_per_second` (e.g. `0.5` for one token every two
    /// seconds), with a bucket of `max_tokens`.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if the rate is not finite, not positive, or so high that
    /// one token would take less than a nanosecond.
    pub fn from_rate(tokens_per_second: f64, max_tokens: u32) -> Result<Self, CanoError> {
        if !tokens_per_second.is_finite() || tokens_per_second <= 0.0 {
            return Err(CanoError::configuration(format!(
                "rate limiter: the rate must be a finite number of tokens per second above 0, got {tokens_per_second}"
            )));
        }
        let period = Duration::try_from_secs_f64(1.0 / tokens_per_second)
            .ok()
            .filter(|p| !p.is_zero())
            .ok_or_else(|| {
                CanoError::configuration(format!(
                    "rate limiter: a rate of {tokens_per_second} tokens per second is out of range (one token must take between 1 ns and Duration::MAX)"
                ))
            })?;
        Ok(Self {
            max_tokens,
            tokens_per_period: 1,
            refill_period: period,
            burst: 0,
        })
    }

    /// The same policy with a bucket of `max_tokens`.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// The same policy with `burst` extra tokens of room.
    #[must_use]
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// The most tokens the bucket holds: `max_tokens + burst`.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        u64::from(self.max_tokens) + u64::from(self.burst)
    }

    /// Checks the policy.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if the capacity is 0, `tokens_per_period` is 0 or
    /// `refill_period` is zero.
    pub fn validate(&self) -> Result<(), CanoError> {
        if self.capacity() == 0 {
            return Err(CanoError::configuration(
                "rate limiter: max_tokens + burst must be at least 1",
            ));
        }
        if self.tokens_per_period == 0 {
            return Err(CanoError::configuration(
                "rate limiter: tokens_per_period must be at least 1 (a zero rate never refills)",
            ));
        }
        if self.refill_period.is_zero() {
            return Err(CanoError::configuration(
                "rate limiter: refill_period must be non-zero",
            ));
        }
        Ok(())
    }
}

/// A policy keeps its bucket in one `u64` if its scaled clock fits 63 bits for at least
/// this long (the bucket then moves its base forward every half of that span); otherwise
/// the bucket is kept in a `u128` under a lock.
const NARROW_MIN_NS: u64 = 1_000_000_000;

/// The value of [`Bucket::tat`] for a bucket kept in [`Bucket::wide`]. Never a narrow
/// value: those are at most `REL` (epoch bit 0) or `EPOCH | (now_max + max64)`, below it.
const WIDE: u64 = u64::MAX;

/// The bit of a narrow [`Bucket::tat`] that says which of [`Bucket::bases`] it counts from.
const EPOCH: u64 = 1 << 63;

/// The bits of a narrow [`Bucket::tat`] that hold the scaled time.
const REL: u64 = EPOCH - 1;

/// Greatest common divisor (Euclid).
fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Turns a shortfall of `deficit` units into the exact wait: a nanosecond adds `gain`
/// units, and a partial nanosecond does not count.
#[cold]
#[inline(never)]
fn wait_for_deficit(deficit: u128, gain: u128) -> Duration {
    duration_from_nanos(deficit.div_ceil(gain))
}

/// A token bucket kept as a GCRA "theoretical arrival time" (`tat`).
///
/// Time is scaled: a nanosecond is `gain` units and a token is `unit` units
/// (`tokens_per_period` and `refill_period` in nanoseconds, both divided by their greatest
/// common divisor, so the arithmetic is exact and the numbers small). `tat` is the scaled
/// time at which the bucket is full again: at scaled time `now` it holds
/// `max - (tat - now)` units if `tat > now`, and is full (`max` units) otherwise. Taking
/// `n` tokens moves `tat` to `max(tat, now) + n * unit`, which is allowed while the result
/// stays within `max` of `now`; the excess, divided by `gain` and rounded up, is the exact
/// wait. This is the lazily refilled token bucket, in one number.
///
/// **Narrow** (every policy whose scaled clock fits 63 bits for [`NARROW_MIN_NS`]): `tat`
/// is one atomic updated with a compare-exchange. Its top bit (`EPOCH`) picks one of two
/// `bases` (nanoseconds since `anchor`), and its other bits count scaled time from that
/// base. Once the clock is more than `rebase_after` past the base, [`rebase`] (under
/// `rebase_lock`) writes the other base (now), then moves `tat` to it in one
/// compare-exchange, so a reader always pairs `tat` with the base it counts from: the base
/// a `tat` names is rewritten only by the rebase after next, at least a span (a second or
/// more) later, and a reader holding a stale `tat` has its compare-exchange fail — unless
/// it stalled between reading the base and its compare-exchange for that whole span and
/// `tat` holds the very same 64 bits again, which we accept as impossible. **Wide** (the
/// rest, and a narrow bucket whose clock passes 584 years, which only a paused clock
/// reaches): a `u128` under a lock, for good.
///
/// [`rebase`]: Bucket::rebase
#[derive(Debug)]
struct Bucket {
    anchor: Instant,
    tat: AtomicU64,
    bases: [AtomicU64; 2],
    rebase_lock: Mutex<()>,
    wide: Mutex<u128>,
    unit: u128,
    gain: u128,
    max: u128,
    /// `unit`, `gain` and `max` as `u64` (all unused when the bucket is wide).
    unit64: u64,
    gain64: u64,
    max64: u64,
    /// How far past its base the clock may go before the base moves (half the span the
    /// scaled clock fits in).
    rebase_after: u64,
}

impl Bucket {
    /// A full bucket for a validated `policy`.
    fn new(policy: &RateLimiterPolicy) -> Self {
        let period = policy.refill_period.as_nanos();
        let tokens = u128::from(policy.tokens_per_period);
        let divisor = gcd(period, tokens).max(1);
        let (unit, gain) = (period / divisor, tokens / divisor);
        let max = u128::from(policy.capacity()).saturating_mul(unit);
        let narrow = (|| {
            let unit64 = u64::try_from(unit).ok()?;
            let gain64 = u64::try_from(gain).ok()?.max(1);
            let max64 = u64::try_from(max).ok()?;
            // A narrow `tat` is at most `now_max + max64 < REL`.
            let now_max = REL.checked_sub(max64.checked_mul(2)?.checked_add(1)?)?;
            let span = now_max / gain64;
            (span >= NARROW_MIN_NS).then_some((unit64, gain64, max64, span / 2))
        })();
        let (tat, (unit64, gain64, max64, rebase_after)) = match narrow {
            Some(narrow) => (0, narrow),
            None => (WIDE, (0, 0, 0, 0)),
        };
        Self {
            anchor: Instant::now(),
            tat: AtomicU64::new(tat),
            bases: [AtomicU64::new(0), AtomicU64::new(0)],
            rebase_lock: Mutex::new(()),
            wide: Mutex::new(0),
            unit,
            gain,
            max,
            unit64,
            gain64,
            max64,
            rebase_after,
        }
    }

    /// Nanoseconds since `anchor`; `None` once they no longer fit a `u64` (after 584
    /// years, which only a paused clock reaches).
    #[inline]
    fn now_ns(&self) -> Option<u64> {
        let elapsed = Instant::now().saturating_duration_since(self.anchor);
        // `u64::MAX` ns is 18,446,744,073.7 s: below that many whole seconds, no sum or
        // product below overflows (one comparison instead of two overflow checks).
        let secs = elapsed.as_secs();
        (secs < 18_446_744_073).then(|| secs * 1_000_000_000 + u64::from(elapsed.subsec_nanos()))
    }

    /// Move a narrow bucket into `wide` for good (its clock no longer fits a `u64`).
    #[cold]
    #[inline(never)]
    fn go_wide(&self) {
        // Under the wide lock, so that whoever sees `WIDE` finds the moved value once it
        // locks.
        let mut wide = self.wide.lock();
        let mut tat = self.tat.load(Ordering::Acquire);
        while tat != WIDE {
            let base = self.bases[usize::from(tat & EPOCH != 0)].load(Ordering::Acquire);
            match self
                .tat
                .compare_exchange(tat, WIDE, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => *wide = u128::from(base) * self.gain + u128::from(tat & REL),
                Err(seen) => tat = seen,
            }
        }
    }

    /// A narrow bucket's `tat` and the scaled time now, counted from the base that `tat`
    /// names (moving the base first when it is due); `None` for a wide bucket.
    #[inline]
    fn narrow_view(&self) -> Option<(u64, u64)> {
        let mut now = self.now_ns();
        loop {
            let tat = self.tat.load(Ordering::Acquire);
            if tat == WIDE {
                return None;
            }
            let Some(clock) = now else {
                self.go_wide();
                return None;
            };
            let base = self.bases[usize::from(tat & EPOCH != 0)].load(Ordering::Acquire);
            match clock.checked_sub(base) {
                // A base written after this thread read the clock: read it again.
                None => now = self.now_ns(),
                Some(elapsed) if elapsed > self.rebase_after => {
                    self.rebase();
                    now = self.now_ns();
                }
                // `elapsed <= span / 2`, so the product is at most `now_max`.
                Some(elapsed) => return Some((tat, elapsed * self.gain64)),
            }
        }
    }

    /// Move the base of a narrow `tat` to now, if it is due (see [`Bucket`]).
    #[cold]
    #[inline(never)]
    fn rebase(&self) {
        let _one_at_a_time = self.rebase_lock.lock();
        let Some(now) = self.now_ns() else {
            return; // the caller moves the bucket wide
        };
        let mut tat = self.tat.load(Ordering::Acquire);
        if tat == WIDE {
            return;
        }
        let epoch = tat & EPOCH;
        let base = self.bases[usize::from(epoch != 0)].load(Ordering::Acquire);
        let shift = match now.checked_sub(base) {
            Some(shift) if shift > self.rebase_after => shift,
            // Another thread moved it meanwhile.
            _ => return,
        };
        // Only the holder of the lock changes the epoch, and the base it writes is the one
        // no `tat` names now.
        self.bases[usize::from(epoch == 0)].store(now, Ordering::Release);
        let drop = u128::from(shift) * self.gain;
        loop {
            // A `tat` behind the new base is a full bucket: it becomes the base itself.
            let rel = u64::try_from(u128::from(tat & REL).saturating_sub(drop)).unwrap_or(0);
            match self.tat.compare_exchange_weak(
                tat,
                (epoch ^ EPOCH) | rel,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(WIDE) => return,
                Err(seen) => tat = seen,
            }
        }
    }

    /// The scaled time at `now`, in full (the wide state).
    fn wide_now(&self) -> u128 {
        // At most 2^94 ns times a `gain` below 2^32: no overflow.
        Instant::now()
            .saturating_duration_since(self.anchor)
            .as_nanos()
            * self.gain
    }

    /// Takes `cost` tokens (at most the capacity), or returns the wait.
    #[inline]
    fn debit(&self, cost: u64) -> Result<(), Duration> {
        let Some((mut tat, mut now)) = self.narrow_view() else {
            return self.debit_wide(cost);
        };
        // `cost` is at most the capacity, so `need <= max64`, and a narrow `tat` is at
        // most `now_max + max64`: no sum below overflows.
        let need = cost.saturating_mul(self.unit64);
        loop {
            let rel = tat & REL;
            let next = rel.max(now) + need;
            let ahead = next - now;
            if ahead > self.max64 {
                return Err(wait_for_deficit(u128::from(ahead - self.max64), self.gain));
            }
            match self.tat.compare_exchange_weak(
                tat,
                (tat & EPOCH) | next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                // Same base: `now` still counts from it.
                Err(seen) if seen != WIDE && seen & EPOCH == tat & EPOCH => tat = seen,
                Err(_) => match self.narrow_view() {
                    Some(view) => (tat, now) = view,
                    None => return self.debit_wide(cost),
                },
            }
        }
    }

    /// [`debit`](Self::debit) on the wide state.
    #[inline(never)]
    fn debit_wide(&self, cost: u64) -> Result<(), Duration> {
        let now = self.wide_now();
        let need = u128::from(cost).saturating_mul(self.unit);
        let mut tat = self.wide.lock();
        let ahead = (*tat).max(now).saturating_add(need) - now;
        if ahead > self.max {
            drop(tat);
            return Err(wait_for_deficit(ahead - self.max, self.gain));
        }
        *tat = now.saturating_add(ahead);
        Ok(())
    }

    /// Gives back `cost` tokens, up to a full bucket.
    fn credit(&self, cost: u64) {
        let Some((mut tat, mut now)) = self.narrow_view() else {
            let now = self.wide_now();
            let back = u128::from(cost).saturating_mul(self.unit);
            let mut tat = self.wide.lock();
            if *tat > now {
                *tat = tat.saturating_sub(back).max(now);
            }
            return;
        };
        let back = cost.saturating_mul(self.unit64);
        loop {
            let rel = tat & REL;
            if rel <= now {
                return; // already full: nothing to give back
            }
            let moved = (tat & EPOCH) | rel.saturating_sub(back).max(now);
            match self
                .tat
                .compare_exchange_weak(tat, moved, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(seen) if seen != WIDE && seen & EPOCH == tat & EPOCH => tat = seen,
                Err(_) => match self.narrow_view() {
                    Some(view) => (tat, now) = view,
                    None => return self.credit(cost),
                },
            }
        }
    }

    /// How far `tat` is ahead of now, in units (0 when the bucket is full).
    fn owed(&self) -> u128 {
        match self.narrow_view() {
            Some((tat, now)) => u128::from((tat & REL).saturating_sub(now)),
            None => self.wide.lock().saturating_sub(self.wide_now()),
        }
    }

    /// How long until `cost` tokens (at most the capacity) would be in the bucket.
    fn wait(&self, cost: u64) -> Duration {
        let need = u128::from(cost).saturating_mul(self.unit);
        match self.owed().saturating_add(need).checked_sub(self.max) {
            Some(deficit) if deficit > 0 => wait_for_deficit(deficit, self.gain),
            _ => Duration::ZERO,
        }
    }

    /// Whole tokens in the bucket now.
    fn tokens(&self) -> u64 {
        let units = self.max.saturating_sub(self.owed());
        u64::try_from(units / self.unit).unwrap_or(u64::MAX)
    }
}

/// A token bucket rate limiter. See the [module docs](self).
///
/// `Clone` is shallow: clones share one bucket.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    bucket: Arc<Bucket>,
    policy: RateLimiterPolicy,
    name: Arc<str>,
}

impl RateLimiter {
    /// A full bucket shaped by `policy`, named `"rate_limiter"` in rejections.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if the policy is invalid (see
    /// [`RateLimiterPolicy::validate`]).
    pub fn new(policy: RateLimiterPolicy) -> Result<Self, CanoError> {
        policy.validate()?;
        Ok(Self {
            bucket: Arc::new(Bucket::new(&policy)),
            policy,
            name: Arc::from("rate_limiter"),
        })
    }

    /// The same limiter reporting `name` as the tier in [`RateLimited`].
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Arc::from(name.into());
        self
    }

    /// The name reported in [`RateLimited::tier`].
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy this limiter was built with.
    #[must_use]
    pub fn policy(&self) -> &RateLimiterPolicy {
        &self.policy
    }

    /// Takes `cost` tokens now, or returns how long until they exist ([`Duration::MAX`]
    /// if never).
    #[inline]
    fn debit(&self, cost: u64) -> Result<(), Duration> {
        if cost > self.policy.capacity() {
            return Err(Duration::MAX);
        }
        if cost == 0 {
            return Ok(());
        }
        self.bucket.debit(cost)
    }

    /// Take one token now, or say how long until one exists. Never waits.
    ///
    /// # Errors
    /// [`RateLimited`] when the bucket is empty.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit, RateLimited> {
        self.try_acquire_n(1)
    }

    /// Take `cost` tokens now, or say how long until they exist. Never waits. A cost of 0
    /// always succeeds.
    ///
    /// # Errors
    /// [`RateLimited`] when fewer than `cost` tokens are available; its `retry_after` is
    /// [`Duration::MAX`] if `cost` exceeds the capacity.
    #[inline]
    pub fn try_acquire_n(&self, cost: u64) -> Result<Permit, RateLimited> {
        try_take(self, &self.name, cost)
    }

    /// Take one token, sleeping exactly until one exists.
    ///
    /// Dropping the future before it completes takes nothing.
    pub async fn acquire(&self) -> Permit {
        // One unit always fits: a policy's capacity is at least 1.
        take_waiting(self, &self.name, 1).await
    }

    /// Take `cost` tokens, sleeping exactly until they exist (other callers may take tokens
    /// in between; the wait is then recomputed).
    ///
    /// Dropping the future before it completes takes nothing.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] at once if `cost` exceeds the capacity (it could never
    /// succeed).
    pub async fn acquire_n(&self, cost: u64) -> Result<Permit, CanoError> {
        if cost > self.policy.capacity() {
            return Err(too_costly(&self.name, cost, self.policy.capacity()));
        }
        Ok(take_waiting(self, &self.name, cost).await)
    }

    /// Whole tokens available now.
    #[must_use]
    pub fn tokens_available(&self) -> u64 {
        self.bucket.tokens()
    }

    /// How long until `cost` tokens would be available (zero if they are now); `None` if
    /// `cost` exceeds the capacity.
    #[must_use]
    pub fn time_until(&self, cost: u64) -> Option<Duration> {
        if cost > self.policy.capacity() {
            return None;
        }
        Some(self.bucket.wait(cost))
    }
}

/// Take `cost` units of `meter` now, or say (as tier `tier`) how long until they exist.
#[inline]
fn try_take<M: Meter>(meter: &M, tier: &str, cost: u64) -> Result<Permit, RateLimited> {
    match meter.try_debit(cost) {
        Ok(_) => {
            crate::instrument::rate_limit_acquired(cost);
            Ok(Permit { cost })
        }
        Err(retry_after) => Err(rejected(tier, retry_after)),
    }
}

/// The rejection of a `try_*` call, counted in the metrics.
#[cold]
#[inline(never)]
fn rejected(tier: &str, retry_after: Duration) -> RateLimited {
    crate::instrument::rate_limit_throttled(tier, None);
    RateLimited {
        tier: tier.to_string(),
        retry_after,
    }
}

/// Take `cost` units of `meter`, sleeping exactly until they exist (the wait is
/// recomputed if other callers took units meanwhile). The caller checked that `cost`
/// fits the meter's capacity.
async fn take_waiting(meter: &dyn Meter, tier: &str, cost: u64) -> Permit {
    let mut waited_since = None;
    loop {
        match meter.try_debit(cost) {
            Ok(_) => {
                if let Some(since) = waited_since {
                    crate::instrument::rate_limit_throttled(tier, Some(Instant::now() - since));
                }
                crate::instrument::rate_limit_acquired(cost);
                return Permit { cost };
            }
            Err(wait) => {
                waited_since.get_or_insert_with(Instant::now);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn too_costly(tier: &str, cost: u64, capacity: u64) -> CanoError {
    CanoError::configuration(format!(
        "rate limiter '{tier}': a cost of {cost} exceeds the capacity of {capacity} and can never be granted"
    ))
}

impl Meter for RateLimiter {
    #[inline]
    fn try_debit(&self, cost: u64) -> Result<Epoch, Duration> {
        self.debit(cost).map(|()| Epoch(0))
    }

    fn credit(&self, cost: u64, _epoch: Epoch) {
        self.bucket.credit(cost);
    }

    fn time_until(&self, cost: u64) -> Option<Duration> {
        RateLimiter::time_until(self, cost)
    }

    fn capacity(&self) -> u64 {
        self.policy.capacity()
    }
}

impl crate::resource::Resource for RateLimiter {}

// ---------------------------------------------------------------------------------------
// Fixed window
// ---------------------------------------------------------------------------------------

/// The shape of a [`WindowedRateLimiter`]: at most `limit` units per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    /// Units allowed per window. Must be at least 1.
    pub limit: u64,
    /// The window length. Must be non-zero.
    pub window: Duration,
}

impl WindowPolicy {
    /// `limit` units per `window`.
    #[must_use]
    pub fn new(limit: u64, window: Duration) -> Self {
        Self { limit, window }
    }

    /// `limit` units per second.
    #[must_use]
    pub fn per_second(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` units per minute.
    #[must_use]
    pub fn per_minute(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// `limit` units per `hours` hours.
    #[must_use]
    pub fn per_hours(limit: u64, hours: u64) -> Self {
        Self::new(limit, Duration::from_secs(hours.saturating_mul(3600)))
    }

    /// `limit` units per `days` days.
    #[must_use]
    pub fn per_days(limit: u64, days: u64) -> Self {
        Self::new(limit, Duration::from_secs(days.saturating_mul(86_400)))
    }

    /// Checks the policy.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if `limit` is 0 or `window` is zero.
    pub fn validate(&self) -> Result<(), CanoError> {
        if self.limit == 0 {
            return Err(CanoError::configuration(
                "windowed rate limiter: limit must be at least 1",
            ));
        }
        if self.window.is_zero() {
            return Err(CanoError::configuration(
                "windowed rate limiter: window must be non-zero",
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Window {
    /// Whether a window is open; the next debit opens one if not.
    open: bool,
    /// When the open window ends; `None` if none is open or its end is past the clock's
    /// range (then it never ends).
    ends: Option<Instant>,
    used: u64,
    epoch: u64,
}

/// A fixed-window rate limiter. See the [module docs](self).
///
/// `Clone` is shallow: clones share one window.
#[derive(Debug, Clone)]
pub struct WindowedRateLimiter {
    state: Arc<Mutex<Window>>,
    policy: WindowPolicy,
    name: Arc<str>,
}

impl WindowedRateLimiter {
    /// A limiter with no window open yet, named `"window"` in rejections.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] if the policy is invalid (see
    /// [`WindowPolicy::validate`]).
    pub fn new(policy: WindowPolicy) -> Result<Self, CanoError> {
        policy.validate()?;
        Ok(Self {
            state: Arc::new(Mutex::new(Window {
                open: false,
                ends: None,
                used: 0,
                epoch: 0,
            })),
            policy,
            name: Arc::from("window"),
        })
    }

    /// The same limiter reporting `name` as the tier in [`RateLimited`].
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Arc::from(name.into());
        self
    }

    /// The name reported in [`RateLimited::tier`].
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy this limiter was built with.
    #[must_use]
    pub fn policy(&self) -> &WindowPolicy {
        &self.policy
    }

    /// The window state at `now`, with an expired window closed.
    #[inline]
    fn current(&self, now: Instant) -> parking_lot::MutexGuard<'_, Window> {
        let mut w = self.state.lock();
        if w.ends.is_some_and(|end| now >= end) {
            w.open = false;
            w.ends = None;
            w.used = 0;
            w.epoch = w.epoch.wrapping_add(1);
        }
        w
    }

    fn wait_in(&self, w: &Window, now: Instant, cost: u64) -> Option<Duration> {
        if cost > self.policy.limit {
            return None;
        }
        if w.used.saturating_add(cost) <= self.policy.limit {
            return Some(Duration::ZERO);
        }
        // Over the limit implies a window is open.
        Some(
            w.ends
                .map_or(Duration::MAX, |end| end.saturating_duration_since(now)),
        )
    }

    /// Use one unit of the current window now, or say how long until it resets. Never
    /// waits.
    ///
    /// # Errors
    /// [`RateLimited`] when the window is used up.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit, RateLimited> {
        self.try_acquire_n(1)
    }

    /// Use `cost` units of the current window now, or say how long until it resets. Never
    /// waits. A cost of 0 always succeeds.
    ///
    /// # Errors
    /// [`RateLimited`] when fewer than `cost` units remain; its `retry_after` is
    /// [`Duration::MAX`] if `cost` exceeds the limit.
    #[inline]
    pub fn try_acquire_n(&self, cost: u64) -> Result<Permit, RateLimited> {
        try_take(self, &self.name, cost)
    }

    /// Use one unit, sleeping exactly until the window resets if it is used up.
    ///
    /// Dropping the future before it completes uses nothing.
    pub async fn acquire(&self) -> Permit {
        // One unit always fits: a policy's capacity is at least 1.
        take_waiting(self, &self.name, 1).await
    }

    /// Use `cost` units, sleeping exactly until a window has room for them.
    ///
    /// Dropping the future before it completes uses nothing.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] at once if `cost` exceeds the limit.
    pub async fn acquire_n(&self, cost: u64) -> Result<Permit, CanoError> {
        if cost > self.policy.limit {
            return Err(too_costly(&self.name, cost, self.policy.limit));
        }
        Ok(take_waiting(self, &self.name, cost).await)
    }

    /// Units used in the current window (0 if none is open).
    #[must_use]
    pub fn used(&self) -> u64 {
        self.current(Instant::now()).used
    }

    /// Units left in the current window.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.policy.limit.saturating_sub(self.used())
    }

    /// When the current window ends; `None` if no window is open (the next debit opens
    /// one).
    #[must_use]
    pub fn resets_at(&self) -> Option<Instant> {
        self.current(Instant::now()).ends
    }

    /// How long until `cost` units would be available (zero if they are now); `None` if
    /// `cost` exceeds the limit.
    #[must_use]
    pub fn time_until(&self, cost: u64) -> Option<Duration> {
        let now = Instant::now();
        let w = self.current(now);
        self.wait_in(&w, now, cost)
    }
}

impl Meter for WindowedRateLimiter {
    #[inline]
    fn try_debit(&self, cost: u64) -> Result<Epoch, Duration> {
        let now = Instant::now();
        let mut w = self.current(now);
        if cost <= self.policy.limit && w.used.saturating_add(cost) <= self.policy.limit {
            if cost > 0 {
                if !w.open {
                    w.open = true;
                    w.ends = now.checked_add(self.policy.window);
                }
                w.used += cost;
            }
            return Ok(Epoch(w.epoch));
        }
        let wait = self.wait_in(&w, now, cost);
        drop(w);
        Err(wait.unwrap_or(Duration::MAX))
    }

    fn credit(&self, cost: u64, epoch: Epoch) {
        let mut w = self.current(Instant::now());
        if w.epoch == epoch.0 {
            w.used = w.used.saturating_sub(cost);
        }
    }

    fn time_until(&self, cost: u64) -> Option<Duration> {
        WindowedRateLimiter::time_until(self, cost)
    }

    fn capacity(&self) -> u64 {
        self.policy.limit
    }
}

impl crate::resource::Resource for WindowedRateLimiter {}

// ---------------------------------------------------------------------------------------
// Multi-tier
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
struct Tier {
    name: Arc<str>,
    meter: Arc<dyn Meter>,
    cost: u64,
}

/// Several named limiters charged together: every tier or none. See the
/// [module docs](self).
///
/// Tiers are charged in the order they were added, one lock at a time; when one rejects,
/// the tiers already charged get their units back. A tier with cost 0 is never charged.
/// Tier names are labels only: the same meter added twice is charged twice.
///
/// ```
/// use cano::rate_limit::{MultiRateLimiter, RateLimiter, RateLimiterPolicy, WindowPolicy, WindowedRateLimiter};
/// use std::sync::Arc;
///
/// let per_second = RateLimiter::new(RateLimiterPolicy::per_second(10))?;
/// let per_day = WindowedRateLimiter::new(WindowPolicy::per_days(1, 1))?;
/// let multi = MultiRateLimiter::new()
///     .with_tier("second", Arc::new(per_second.clone()), 1)
///     .with_tier("day", Arc::new(per_day), 1);
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let _first = multi.try_acquire()?;
/// let rejected = multi.try_acquire().unwrap_err();
/// assert_eq!(rejected.tier, "day");
/// assert_eq!(per_second.tokens_available(), 9, "the second tier was refunded");
/// # Ok::<(), cano::CanoError>(())
/// # }).unwrap();
/// # Ok::<(), cano::CanoError>(())
/// ```
#[derive(Clone, Default)]
pub struct MultiRateLimiter {
    tiers: Vec<Tier>,
}

impl fmt::Debug for MultiRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiRateLimiter")
            .field(
                "tiers",
                &self
                    .tiers
                    .iter()
                    .map(|t| (&*t.name, t.cost))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Proof that a [`MultiRateLimiter`] charged every tier. A scope marker only: dropping it
/// gives nothing back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a permit marks the rate-limited work; bind it to a name for the scope"]
pub struct MultiPermit {
    charged: Vec<(Arc<str>, u64)>,
}

impl MultiPermit {
    /// The tiers charged, in order, with the units each was charged (tiers of cost 0 are
    /// left out).
    pub fn charged(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.charged.iter().map(|(n, c)| (&**n, *c))
    }
}

impl MultiRateLimiter {
    /// A limiter with no tiers (it grants everything).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a tier named `name` charging `meter` `cost` units per acquire.
    #[must_use]
    pub fn with_tier(mut self, name: impl Into<String>, meter: Arc<dyn Meter>, cost: u64) -> Self {
        self.tiers.push(Tier {
            name: Arc::from(name.into()),
            meter,
            cost,
        });
        self
    }

    /// The tier names, in charging order.
    pub fn tier_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.tiers.iter().map(|t| &*t.name)
    }

    /// Charge every tier now, or none. Never waits.
    ///
    /// # Errors
    /// [`RateLimited`] naming the first tier that refused, with its `retry_after`
    /// ([`Duration::MAX`] if the tier's cost exceeds its capacity). Tiers charged before it
    /// have been refunded.
    pub fn try_acquire(&self) -> Result<MultiPermit, RateLimited> {
        let charged = self.charge();
        match &charged {
            Ok(_) => crate::instrument::rate_limit_acquired(self.cost()),
            Err(rejected) => crate::instrument::rate_limit_throttled(&rejected.tier, None),
        }
        charged
    }

    /// The units one acquire takes, over every tier.
    fn cost(&self) -> u64 {
        self.tiers.iter().map(|t| t.cost).sum()
    }

    /// [`try_acquire`](Self::try_acquire) without metrics.
    fn charge(&self) -> Result<MultiPermit, RateLimited> {
        let mut taken: Vec<(&Tier, Epoch)> = Vec::with_capacity(self.tiers.len());
        for tier in self.tiers.iter().filter(|t| t.cost > 0) {
            match tier.meter.try_debit(tier.cost) {
                Ok(epoch) => taken.push((tier, epoch)),
                Err(retry_after) => {
                    for (done, epoch) in taken.iter().rev() {
                        done.meter.credit(done.cost, *epoch);
                    }
                    return Err(RateLimited {
                        tier: tier.name.to_string(),
                        retry_after,
                    });
                }
            }
        }
        Ok(MultiPermit {
            charged: taken
                .into_iter()
                .map(|(t, _)| (t.name.clone(), t.cost))
                .collect(),
        })
    }

    /// Charge every tier, sleeping for the refusing tier's `retry_after` (at least 1 ms)
    /// and trying again until all tiers grant at once.
    ///
    /// Dropping the future before it completes charges nothing.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] at once if some tier's cost exceeds its capacity.
    pub async fn acquire(&self) -> Result<MultiPermit, CanoError> {
        if let Some(t) = self.tiers.iter().find(|t| t.cost > t.meter.capacity()) {
            return Err(too_costly(&t.name, t.cost, t.meter.capacity()));
        }
        let mut waited: Option<(Instant, String)> = None;
        loop {
            match self.charge() {
                Ok(permit) => {
                    if let Some((since, tier)) = waited {
                        crate::instrument::rate_limit_throttled(
                            &tier,
                            Some(Instant::now() - since),
                        );
                    }
                    crate::instrument::rate_limit_acquired(self.cost());
                    return Ok(permit);
                }
                Err(rejected) => {
                    if waited.is_none() {
                        waited = Some((Instant::now(), rejected.tier.clone()));
                    }
                    tokio::time::sleep(rejected.retry_after.max(Duration::from_millis(1))).await;
                }
            }
        }
    }
}

impl crate::resource::Resource for MultiRateLimiter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_from_nanos_splits_and_saturates() {
        assert_eq!(
            duration_from_nanos(1_500_000_000),
            Duration::from_millis(1500)
        );
        assert_eq!(duration_from_nanos(u128::MAX), Duration::MAX);
    }

    /// `policy`'s bucket kept wide whatever the policy: the exact reference.
    fn wide_bucket(policy: &RateLimiterPolicy) -> Bucket {
        Bucket {
            tat: AtomicU64::new(WIDE),
            ..Bucket::new(policy)
        }
    }

    #[test]
    fn usual_policies_are_narrow_and_only_huge_capacities_are_wide() {
        let narrow = Bucket::new(&RateLimiterPolicy::per_second(4));
        assert_ne!(narrow.tat.load(Ordering::Relaxed), WIDE);
        assert_eq!((narrow.unit64, narrow.gain64), (250_000_000, 1), "reduced");
        // Round rates (gain 1), rates coprime with their period, and the largest rates.
        for rate in [100, 1000, 50_000, 577, 999, 999_983, u32::MAX / 2, u32::MAX] {
            let b = Bucket::new(&RateLimiterPolicy::per_second(rate));
            assert_ne!(b.tat.load(Ordering::Relaxed), WIDE, "{rate}/s");
        }
        for per_minute in [50, 1 << 31] {
            let b = Bucket::new(&RateLimiterPolicy::new(per_minute, Duration::from_secs(60)));
            assert_ne!(b.tat.load(Ordering::Relaxed), WIDE, "{per_minute}/min");
        }
        // 2^31 - 1 tokens an hour, as many in the bucket: the capacity alone is 7.7e21
        // scaled units.
        let huge = RateLimiterPolicy::new(u32::MAX / 2, Duration::from_secs(3600));
        assert_eq!(Bucket::new(&huge).tat.load(Ordering::Relaxed), WIDE);
    }

    /// A small pseudo-random sequence (xorshift), the same on every run.
    struct Steps(u64);

    impl Steps {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below.max(1)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_narrow_bucket_moves_its_base_and_stays_exact() {
        // Spans of about 2.3 s (2^31 - 1 tokens a second) and 5.8 months (999 a second):
        // the first moves its base every 1.15 s of this test.
        for policy in [
            RateLimiterPolicy::per_second(u32::MAX / 2),
            RateLimiterPolicy::per_second(999),
            RateLimiterPolicy::new(7, Duration::from_millis(3)).with_burst(5),
            RateLimiterPolicy::new(2, Duration::from_secs(1)).with_max_tokens(u32::MAX),
        ] {
            let narrow = Bucket::new(&policy);
            let wide = wide_bucket(&policy);
            assert_ne!(narrow.tat.load(Ordering::Relaxed), WIDE);
            let capacity = policy.capacity();
            let mut steps = Steps(0x9e37_79b9_7f4a_7c15);
            let mut rebased = 0;
            for i in 0..3000 {
                let epoch = narrow.tat.load(Ordering::Relaxed) & EPOCH;
                match steps.next(4) {
                    0 => {
                        // After 2,000 steps, jumps of up to 73 years as well: the clock
                        // passes 584 years and the bucket moves wide on the way.
                        let ns = match steps.next(if i < 2000 { 2 } else { 3 }) {
                            0 => steps.next(1_500_000_000),
                            1 => steps.next(3),
                            _ => steps.next(1 << 61),
                        };
                        tokio::time::advance(Duration::from_nanos(ns)).await;
                    }
                    1 => {
                        let cost = 1 + steps.next(capacity);
                        assert_eq!(
                            narrow.debit(cost),
                            wide.debit(cost),
                            "step {i}: debit {cost}"
                        );
                    }
                    2 => {
                        let cost = 1 + steps.next(capacity);
                        narrow.credit(cost);
                        wide.credit(cost);
                    }
                    _ => {
                        let cost = 1 + steps.next(capacity);
                        assert_eq!(narrow.wait(cost), wide.wait(cost), "step {i}: wait {cost}");
                    }
                }
                assert_eq!(narrow.tokens(), wide.tokens(), "step {i}");
                if narrow.tat.load(Ordering::Relaxed) & EPOCH != epoch {
                    rebased += 1;
                }
            }
            if policy.tokens_per_period == u32::MAX / 2 {
                assert!(rebased > 100, "the base moved {rebased} times");
            }
            assert_eq!(
                narrow.tat.load(Ordering::Relaxed),
                WIDE,
                "wide after 584 years"
            );
        }
    }

    #[test]
    fn threads_sharing_a_bucket_that_moves_its_base_take_no_more_than_it_holds() {
        // 999,983 tokens a second (a prime: gain 999,983), its base moved every 100 µs
        // instead of every few minutes, four threads taking one token at a time.
        let policy = RateLimiterPolicy::per_second(999_983);
        let bucket = Arc::new(Bucket {
            rebase_after: 100_000,
            ..Bucket::new(&policy)
        });
        let started = std::time::Instant::now();
        let run_for = Duration::from_millis(200);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let bucket = Arc::clone(&bucket);
                std::thread::spawn(move || {
                    let mut taken = 0u64;
                    while started.elapsed() < run_for {
                        if bucket.debit(1).is_ok() {
                            taken += 1;
                        }
                    }
                    taken
                })
            })
            .collect();
        let taken: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let elapsed = started.elapsed();
        let refilled = |d: Duration| (d.as_secs_f64() * 999_983.0) as u64;
        let most = policy.capacity() + refilled(elapsed) + 1;
        assert!(
            taken <= most,
            "took {taken}, more than the {most} there were"
        );
        // Nothing was lost either: what was taken and what is left are what the bucket
        // held and gained (the paused-clock test above checks the exact arithmetic).
        let left = bucket.tokens();
        let gained = policy.capacity() + refilled(started.elapsed());
        assert!(
            taken + left <= gained + 1,
            "took {taken} and {left} are left: more than the {gained} there were"
        );
        assert!(taken > 0, "the threads took nothing");
    }
}
