//! Small internal helpers shared across modules.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A `HashMap` with a fast, non-cryptographic, per-map-seeded hasher.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The text of a panic payload: the payload itself when it is a string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// A future that turns a panic inside `F::poll` into `Err(payload)`.
///
/// Unlike `futures_util::FutureExt::catch_unwind`, this needs no `UnwindSafe` bound:
/// callers only use it where a panicking future is dropped right after and its
/// state is never observed again.
pub(crate) struct CatchUnwind<F> {
    inner: F,
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9E37_79B9_7F4A_7C15);
    h.finish() | 1
}

/// A uniform draw from `[-1.0, 1.0]` (thread-local xorshift; only used for jitter).
pub(crate) fn unit_jitter() -> f64 {
    RNG.with(|cell| {
        let mut x = cell.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cell.set(x);
        // 53 random bits -> [0, 1], then map to [-1, 1].
        let unit = (x >> 11) as f64 / ((1u64 << 53) - 1) as f64;
        unit * 2.0 - 1.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let draws: Vec<f64> = (0..1000).map(|_| unit_jitter()).collect();
        assert!(draws.iter().all(|d| (-1.0..=1.0).contains(d)));
        assert!(draws.iter().any(|d| *d < -0.5));
        assert!(draws.iter().any(|d| *d > 0.5));
    }

    #[test]
    fn panic_message_reads_strings() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42u8), "<non-string panic payload>");
    }
}
