//! Cooperative cancellation of a run.
//!
//! [`CancellationToken::new`] gives a pair: the [`CancellationHandle`] you keep, and the
//! [`CancellationToken`] you hand to a run
//! ([`Workflow::orchestrate_with_token`](crate::Workflow::orchestrate_with_token),
//! [`Workflow::resume_from_with_token`](crate::Workflow::resume_from_with_token)). When
//! the handle cancels:
//!
//! * the task in flight is dropped at its next `.await` (a tight CPU loop is not
//!   interrupted); split members are aborted with it;
//! * a [`CompensatableTask`](crate::CompensatableTask) is never interrupted mid-run: it
//!   completes (and is recorded), and the cancel takes effect at the next state boundary;
//! * observers' `on_cancelled(state)` fires once, then the saga's compensation stack
//!   drains — the drain itself cannot be cancelled;
//! * resources set up for the run are torn down once;
//! * the run ends with [`CanoError::cancelled`](crate::CanoError::cancelled)'s error (tell it apart with
//!   [`CanoError::is_cancelled`](crate::CanoError::is_cancelled)), or `CompensationFailed` whose first error is it.
//!
//! A token cancelled before the run starts runs nothing (no setup, no row). Task bodies
//! are not given the token; what they await is simply dropped.
//!
//! ```
//! use cano::cancel::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (handle, token) = CancellationToken::new();
//! assert!(!token.is_cancelled());
//! handle.cancel();
//! handle.cancel(); // idempotent
//! assert!(token.is_cancelled());
//! token.cancelled().await; // ready at once
//!
//! // A token that never fires, for APIs that require one.
//! assert!(!CancellationToken::disabled().is_cancelled());
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use tokio::sync::watch;

/// The run's side of a cancellation pair: it tells whether, and waits until, the
/// [`CancellationHandle`] cancelled. Cheap to clone; all clones see the same cancel.
#[derive(Clone, Default)]
pub struct CancellationToken {
    /// `None` for [`disabled`](Self::disabled) tokens: nothing to watch, never fires.
    rx: Option<watch::Receiver<bool>>,
}

/// The caller's side of a cancellation pair: [`cancel`](Self::cancel) fires every token
/// of the pair. Cheap to clone; cancelling twice is a no-op.
#[derive(Clone)]
pub struct CancellationHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl CancellationToken {
    /// A new pair: the handle that cancels and the token that sees it.
    #[allow(clippy::new_ret_no_self)] // the pair is the point, as in cano 0.15
    pub fn new() -> (CancellationHandle, CancellationToken) {
        let (tx, rx) = watch::channel(false);
        (
            CancellationHandle { tx: Arc::new(tx) },
            CancellationToken { rx: Some(rx) },
        )
    }

    /// A token that never fires. A run given one pays nothing for cancellation.
    pub fn disabled() -> Self {
        Self { rx: None }
    }

    /// Whether the handle has cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.rx.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Whether this token can ever fire (it is not [`disabled`](Self::disabled)).
    pub fn is_enabled(&self) -> bool {
        self.rx.is_some()
    }

    /// Wait until the handle cancels. Ready at once if it already has; pending forever
    /// for a disabled token, or once every handle of the pair was dropped without
    /// cancelling.
    pub async fn cancelled(&self) {
        if let Some(rx) = &self.rx {
            let mut rx = rx.clone();
            if rx.wait_for(|cancelled| *cancelled).await.is_ok() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

impl CancellationHandle {
    /// Cancel every token of the pair. Idempotent.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`cancel`](Self::cancel) has been called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("enabled", &self.is_enabled())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl fmt::Debug for CancellationHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationHandle")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn cancelled_wakes_every_clone_and_stays_set() {
        let (handle, token) = CancellationToken::new();
        let other = token.clone();
        let waiter = tokio::spawn(async move { other.cancelled().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        handle.clone().cancel();
        waiter.await.unwrap();
        assert!(token.is_cancelled() && handle.is_cancelled());
        token.cancelled().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_handle_or_a_disabled_token_never_fires() {
        let (handle, token) = CancellationToken::new();
        drop(handle);
        let waited = tokio::time::timeout(Duration::from_secs(60), token.cancelled()).await;
        assert!(waited.is_err() && !token.is_cancelled());
        let disabled = CancellationToken::disabled();
        let waited = tokio::time::timeout(Duration::from_secs(60), disabled.cancelled()).await;
        assert!(waited.is_err() && !disabled.is_enabled());
    }
}
