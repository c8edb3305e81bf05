//! The per-child termination protocol (spec §1.7, plus `Drain`).
//!
//! | policy | what is sent | if still alive after d | reported reason |
//! |---|---|---|---|
//! | `BrutalKill` | kill | — | `killed` (expected) |
//! | `Timeout(d)` | stop (taken between messages; queued messages are dropped) | kill | `shutdown`, or `killed` (a `shutdown_error`) |
//! | `Infinity` | stop | wait on | `shutdown` |
//! | `Drain(d)` | drain (queued messages are handled first; later sends are refused) | kill | `shutdown`, or `killed` |
//!
//! Death is observed on the child's own cell (ractor's exit notification), not through the link, so a
//! child that unlinked itself from its supervisor is still waited for and cannot hang the supervisor.
//! The reason is the one canopy asked for; a child that had already exited by itself is reported as
//! such (`None`) and its own reason reaches the supervisor as a (stale) supervision event.
//!
//! ractor's kill aborts the actor's task at its next `.await`: an actor stuck in blocking code without
//! awaiting cannot be killed by any async runtime, and `Infinity` waits on it for as long as it runs.
//!
//! ```no_run
//! use std::time::Duration;
//! use canopy::{shutdown::terminate, ExitReason, Shutdown};
//! # async fn demo(child: ractor::ActorCell) {
//! let reason = terminate(&child, Shutdown::Timeout(Duration::from_secs(1))).await;
//! if reason == Some(ExitReason::Killed) {
//!     eprintln!("{:?} ignored its stop and was killed", child.get_id());
//! }
//! # }
//! ```

use ractor::{ActorCell, ActorStatus};

use crate::exit::ExitReason;
use crate::spec::Shutdown;

/// Stops `child` by `policy` and waits until it is gone. Returns how it ended, or `None` if it had
/// already exited by itself before it was asked to stop.
pub async fn terminate(child: &ActorCell, policy: Shutdown) -> Option<ExitReason> {
    if child.get_status() == ActorStatus::Stopped {
        return None;
    }
    let grace = match policy {
        Shutdown::BrutalKill => return Some(kill(child).await),
        Shutdown::Infinity => {
            child.stop(Some(ExitReason::Shutdown.encode()));
            child.wait(None).await.ok();
            return Some(ExitReason::Shutdown);
        }
        Shutdown::Timeout(grace) => {
            child.stop(Some(ExitReason::Shutdown.encode()));
            grace
        }
        Shutdown::Drain(grace) => {
            if child.drain().is_err() {
                // No mailbox left to drain: it is already stopping.
                child.stop(Some(ExitReason::Shutdown.encode()));
            }
            grace
        }
    };
    match child.wait(Some(grace)).await {
        Ok(()) => Some(ExitReason::Shutdown),
        Err(_) => Some(kill(child).await),
    }
}

async fn kill(child: &ActorCell) -> ExitReason {
    child.kill();
    child.wait(None).await.ok();
    ExitReason::Killed
}
