//! The per-child termination protocol, and `Drain`.
//!
//! | policy | what is sent | if still alive after d | reported reason |
//! |---|---|---|---|
//! | `BrutalKill` | kill | — | `killed` (expected) |
//! | `Timeout(d)` | stop (taken between messages; queued messages are dropped) | kill | `shutdown`, or `killed` (a `shutdown_error`) |
//! | `Infinity` | stop | wait on | `shutdown` |
//! | `Drain(d)` | drain (queued messages are handled first; later sends are refused) | kill | `shutdown`, or `killed` |
//!
//! A running supervisor stops its children through its own loop and records each child's real exit
//! reason (see [`shell`](crate::shell)). The functions here are for code that has no actor loop to
//! receive exit events in: they watch the child's own cell (ractor's exit notification), so a child
//! that unlinked itself is still waited for, and they report what they saw: `shutdown` for a child
//! that stopped when asked, `killed` for one that had to be killed, `None` for one that had already
//! exited by itself. A canopy supervisor is asked to stop with a message, so that it stops its own
//! children in order.
//!
//! [`terminate`] stops one child; [`terminate_all`] signals many at once and waits for them
//! together, one timer per distinct policy.
//!
//! ractor's kill aborts the actor's task at its next `.await`: an actor stuck in blocking code without
//! awaiting cannot be killed by any async runtime, and `Infinity` waits on it for as long as it runs.

use std::pin::Pin;

use ractor::{ActorCell, ActorStatus};
use tokio::time::{Instant, Sleep};

use crate::exit::ExitReason;
use crate::shell::signal;
use crate::spec::Shutdown;

/// One timer reused across the children a supervisor stops one after another. Registering a fresh
/// tokio timer per child wakes the timer driver each time (nothing else is pending, so the new
/// deadline is always the earliest); moving one registered timer to a later deadline does not. On
/// a 10-child one_for_all restart that was most of canopy's cost over raw ractor.
///
/// It is moved lazily: a child's kill deadline is read off the clock, and the registered timer is
/// moved only when it is set later than that deadline (or has fired). Children stopped one after
/// another under the same grace have ever later deadlines, so after the first they leave it where
/// it is, and a timer that fires early for the child now waited on is moved to that child's own
/// deadline: each child is killed at its own stop plus its own grace, never at an earlier child's.
#[derive(Default)]
pub(crate) struct ShutdownTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl ShutdownTimer {
    /// A timer that fires no later than `deadline`: the one already registered if it is not later
    /// and has not fired, else the same timer moved to `deadline`.
    fn at_most(&mut self, deadline: Instant) -> Pin<&mut Sleep> {
        match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() > deadline || sleep.is_elapsed() {
                    sleep.as_mut().reset(deadline);
                }
                sleep.as_mut()
            }
            slot @ None => slot
                .insert(Box::pin(tokio::time::sleep_until(deadline)))
                .as_mut(),
        }
    }
}

/// Stops `child` by `policy` and waits until it is gone, on a timer the caller keeps across calls.
/// Returns how it ended as seen from outside, or `None` if it had already exited by itself.
pub(crate) async fn terminate_timed(
    child: &ActorCell,
    policy: Shutdown,
    timer: &mut ShutdownTimer,
) -> Option<ExitReason> {
    if child.get_status() == ActorStatus::Stopped {
        return None;
    }
    signal(child, policy);
    let grace = match policy {
        Shutdown::BrutalKill => {
            child.wait(None).await.ok();
            return Some(ExitReason::Killed);
        }
        Shutdown::Infinity => {
            child.wait(None).await.ok();
            return Some(ExitReason::Shutdown);
        }
        Shutdown::Timeout(grace) | Shutdown::Drain(grace) => grace,
    };
    // Counted from this child's stop, whatever the timer was last set for.
    let deadline = crate::deadline_in(grace);
    loop {
        let expired = timer.at_most(deadline);
        // An earlier child's deadline: due is only what reached this child's own.
        let due = expired.deadline() >= deadline;
        tokio::select! {
            biased;
            _ = child.wait(None) => return Some(ExitReason::Shutdown),
            _ = expired => {}
        }
        if due {
            break;
        }
    }
    child.kill();
    child.wait(None).await.ok();
    Some(ExitReason::Killed)
}

/// Stops every child at once, each by its own policy, and waits until all of them are gone: the
/// parallel shutdown of dynamic supervisors. Children that share a policy share one timer,
/// so the whole stop takes as long as the slowest policy, not the sum of them. The result has one entry
/// per child, in the given order, read as for [`terminate_timed`].
///
pub(crate) async fn terminate_all(children: &[(ActorCell, Shutdown)]) -> Vec<Option<ExitReason>> {
    let mut out = vec![None; children.len()];
    // Grouped by policy, in first-seen order: the number of distinct policies is tiny (a dynamic
    // supervisor has one), so a linear search beats hashing.
    let mut groups: Vec<(Shutdown, Vec<usize>, Vec<ActorCell>)> = Vec::new();
    for (i, (child, policy)) in children.iter().enumerate() {
        if child.get_status() == ActorStatus::Stopped {
            continue;
        }
        // Every child is signalled before anyone is waited for: that is what makes it parallel.
        signal(child, *policy);
        match groups.iter_mut().find(|(p, _, _)| p == policy) {
            Some((_, idx, cells)) => {
                idx.push(i);
                cells.push(child.clone());
            }
            None => groups.push((*policy, vec![i], vec![child.clone()])),
        }
    }
    let waits = groups
        .iter()
        .map(|(policy, _, cells)| wait_out(cells, *policy));
    let results = futures::future::join_all(waits).await;
    for ((_, idx, _), reasons) in groups.iter().zip(results) {
        for (&i, reason) in idx.iter().zip(reasons) {
            out[i] = Some(reason);
        }
    }
    out
}

/// Waits for already signalled children that share `policy`, on one timer, killing whoever is still
/// alive when it fires. One reason per child, in order.
async fn wait_out(cells: &[ActorCell], policy: Shutdown) -> Vec<ExitReason> {
    let all_gone = || futures::future::join_all(cells.iter().map(|c| c.wait(None)));
    let grace = match policy {
        Shutdown::BrutalKill => {
            all_gone().await;
            return vec![ExitReason::Killed; cells.len()];
        }
        Shutdown::Infinity => {
            all_gone().await;
            return vec![ExitReason::Shutdown; cells.len()];
        }
        Shutdown::Timeout(grace) | Shutdown::Drain(grace) => grace,
    };
    if tokio::time::timeout(grace, all_gone()).await.is_ok() {
        return vec![ExitReason::Shutdown; cells.len()];
    }
    let reasons = cells
        .iter()
        .map(|c| {
            if c.get_status() == ActorStatus::Stopped {
                ExitReason::Shutdown
            } else {
                c.kill();
                ExitReason::Killed
            }
        })
        .collect();
    all_gone().await;
    reasons
}

#[cfg(test)]
pub(crate) mod tests {
    //! The grace timer a restart round reuses from child to child, on tokio's paused clock: time
    //! moves only by `advance` or when every task waits on a timer, so the kill instants below are
    //! exact however loaded the machine is.

    use std::time::Duration;

    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use tokio::sync::oneshot;
    use tokio::time::Instant;

    use super::{terminate_timed, ShutdownTimer};
    use crate::exit::ExitReason;
    use crate::spec::Shutdown;

    /// Stops when asked while idle; once handed a message it never finishes it, so a stop waits
    /// behind it and only a kill ends it. The message says when it has begun.
    struct Child;

    impl Actor for Child {
        type Msg = oneshot::Sender<()>;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _: ActorRef<Self::Msg>,
            began: Self::Msg,
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            let _ = began.send(());
            std::future::pending::<()>().await;
            Ok(())
        }
    }

    /// A running actor that does nothing, for tests that need a real cell (the shell's too).
    pub(crate) async fn idle() -> ractor::ActorCell {
        let (child, _) = Actor::spawn(None, Child, ()).await.expect("child spawns");
        child.get_cell()
    }

    async fn stuck() -> ractor::ActorCell {
        let (child, _) = Actor::spawn(None, Child, ()).await.expect("child spawns");
        let (began, begun) = oneshot::channel();
        child.send_message(began).expect("child takes messages");
        begun.await.expect("child began its message");
        child.get_cell()
    }

    /// The timer is left set for the first child's deadline; the second child, stopped 800 ms
    /// later under the same grace, must still get its whole grace from its own stop.
    #[tokio::test(start_paused = true)]
    async fn a_later_child_gets_its_whole_grace_from_its_own_stop() {
        let grace = Duration::from_secs(1);
        let mut timer = ShutdownTimer::default();
        let first = idle().await;
        let reason = terminate_timed(&first, Shutdown::Timeout(grace), &mut timer).await;
        assert_eq!(reason, Some(ExitReason::Shutdown));

        tokio::time::advance(Duration::from_millis(800)).await;
        let second = stuck().await;
        let stopped_at = Instant::now();
        let reason = terminate_timed(&second, Shutdown::Timeout(grace), &mut timer).await;
        let took = stopped_at.elapsed();
        assert_eq!(reason, Some(ExitReason::Killed));
        assert!(
            took >= grace,
            "killed {took:?} after its stop, before its own grace of {grace:?}"
        );
        assert!(took < grace * 2, "killed {took:?} after its stop");
    }

    /// A child with a shorter grace than the one the timer is set for is killed at its own.
    #[tokio::test(start_paused = true)]
    async fn a_shorter_grace_moves_the_timer_earlier() {
        let mut timer = ShutdownTimer::default();
        let first = idle().await;
        let reason = terminate_timed(
            &first,
            Shutdown::Timeout(Duration::from_secs(60)),
            &mut timer,
        )
        .await;
        assert_eq!(reason, Some(ExitReason::Shutdown));

        let second = stuck().await;
        let grace = Duration::from_secs(1);
        let stopped_at = Instant::now();
        let reason = terminate_timed(&second, Shutdown::Drain(grace), &mut timer).await;
        let took = stopped_at.elapsed();
        assert_eq!(reason, Some(ExitReason::Killed));
        assert!(
            took >= grace && took < grace * 2,
            "killed {took:?} after its stop"
        );
    }
}
