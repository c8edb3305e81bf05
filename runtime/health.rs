//! Liveness, readiness and the shutdown token: what a load balancer, a probe or a component asks of
//! the running application.
//!
//! - **Liveness** is true from the moment the [`App`](crate::app::App) runs until it returns: the
//!   process is not wedged. A liveness probe should never fail during a graceful stop, or the
//!   orchestrator kills the process in the middle of it.
//! - **Readiness** is true once the whole tree has started and turns false the instant a stop is
//!   triggered, before anything is torn down, so that traffic moves elsewhere first.
//! - The **shutdown token** fires at the same instant; a component awaits or polls it to refuse new
//!   work while it finishes what it has.
//!
//! ```
//! use canopy::health::Health;
//!
//! let health = Health::new();
//! assert!(health.is_live() && !health.is_ready());
//! health.set_ready(true);
//! let token = health.shutdown_token();
//! assert!(!token.is_triggered());
//! health.begin_shutdown();
//! assert!(!health.is_ready() && health.is_live() && token.is_triggered());
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Cloneable health state shared by the app and whoever reads it. Reading is two atomic loads.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    live: AtomicBool,
    ready: AtomicBool,
    stopping: watch::Sender<bool>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// Live, not ready, not stopping.
    pub fn new() -> Self {
        Health {
            inner: Arc::new(Inner {
                live: AtomicBool::new(true),
                ready: AtomicBool::new(false),
                stopping: watch::Sender::new(false),
            }),
        }
    }

    /// True while the process is running and not wedged.
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// True once the tree is up, false from the shutdown trigger on.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Sets readiness. Once shutdown has begun, readiness stays false.
    ///
    /// ```
    /// # let health = canopy::health::Health::new();
    /// health.begin_shutdown();
    /// health.set_ready(true);
    /// assert!(!health.is_ready());
    /// ```
    pub fn set_ready(&self, ready: bool) {
        let stopping = *self.inner.stopping.borrow();
        self.inner
            .ready
            .store(ready && !stopping, Ordering::Release);
    }

    /// Sets liveness (the app clears it when it returns).
    pub fn set_live(&self, live: bool) {
        self.inner.live.store(live, Ordering::Release);
    }

    /// Turns readiness off and fires every shutdown token. Idempotent.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.send_replace(true);
        self.inner.ready.store(false, Ordering::Release);
    }

    /// A token that fires when shutdown begins.
    pub fn shutdown_token(&self) -> ShutdownToken {
        ShutdownToken {
            rx: self.inner.stopping.subscribe(),
        }
    }
}

/// Fires once, when the application begins to shut down. Cheap to clone; await it or poll it.
///
/// ```
/// # #[tokio::main] async fn main() {
/// let health = canopy::health::Health::new();
/// let token = health.shutdown_token();
/// let worker = tokio::spawn(async move {
///     token.triggered().await;   // e.g. in a select! beside accepting new work
///     "stopped accepting"
/// });
/// health.begin_shutdown();
/// assert_eq!(worker.await.unwrap(), "stopped accepting");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownToken {
    rx: watch::Receiver<bool>,
}

impl ShutdownToken {
    /// True once shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when shutdown begins (at once if it already has).
    pub async fn triggered(&self) {
        let mut rx = self.rx.clone();
        // The sender lives in `Health`; if every `Health` is gone nothing can trigger any more, so
        // treating a closed channel as "triggered" is the only answer that cannot hang a caller.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }
}
