//! The child every ractor-based side (canopy, raw ractor, ractor-supervisor) runs: the same actor,
//! so that the sides differ only in what supervises it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use canopy::ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};

/// What a child reports at the end of its `pre_start`.
pub struct Up {
    /// Its index among its siblings.
    pub idx: usize,
    /// The incarnation that came up.
    pub cell: ActorCell,
    /// When its `pre_start` finished.
    pub at: Instant,
}

/// Counts live children, and wakes a waiter when the last one is gone (whether it stopped or
/// was killed: the count drops with the child's state).
#[derive(Default)]
pub struct Alive {
    n: AtomicUsize,
    zero: Notify,
}

impl Alive {
    /// Waits until no child counted here is alive.
    pub async fn none_left(&self) {
        while self.n.load(Ordering::Acquire) != 0 {
            self.zero.notified().await;
        }
    }
}

/// Held in a child's state: one live child for [`Alive`].
pub struct LiveGuard(Option<Arc<Alive>>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Some(alive) = &self.0 {
            if alive.n.fetch_sub(1, Ordering::AcqRel) == 1 {
                // notify_one keeps a permit, so a waiter that checks after this still wakes.
                alive.zero.notify_one();
            }
        }
    }
}

/// A child's start arguments.
#[derive(Clone, Default)]
pub struct WArgs {
    /// Its index among its siblings.
    pub idx: usize,
    /// Where to report that it is up, if anyone listens.
    pub notify: Option<mpsc::UnboundedSender<Up>>,
    /// The live-children count it belongs to, if any.
    pub alive: Option<Arc<Alive>>,
}

impl WArgs {
    /// Arguments for child `idx` reporting to `notify`.
    pub fn new(idx: usize, notify: Option<mpsc::UnboundedSender<Up>>) -> WArgs {
        WArgs {
            idx,
            notify,
            alive: None,
        }
    }
}

/// What the child handles: an ask and a tell.
pub enum WMsg {
    /// Replies with the number it is given.
    Ping(u64, RpcReplyPort<u64>),
    /// Handled by dropping the permit, which is how the tell workload knows it was processed.
    Tell(OwnedSemaphorePermit),
}

/// The child actor.
#[derive(Clone, Copy)]
pub struct Worker;

impl Actor for Worker {
    type Msg = WMsg;
    type State = LiveGuard;
    type Arguments = WArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WMsg>,
        args: WArgs,
    ) -> Result<LiveGuard, ActorProcessingErr> {
        if let Some(alive) = &args.alive {
            alive.n.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(notify) = &args.notify {
            let _ = notify.send(Up {
                idx: args.idx,
                cell: myself.get_cell(),
                at: Instant::now(),
            });
        }
        Ok(LiveGuard(args.alive))
    }

    async fn handle(
        &self,
        _myself: ActorRef<WMsg>,
        msg: WMsg,
        _state: &mut LiveGuard,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WMsg::Ping(n, reply) => {
                let _ = reply.send(n);
            }
            WMsg::Tell(permit) => drop(permit),
        }
        Ok(())
    }
}

/// Asks every child in `cells` once and waits for each reply: untimed work that leaves both sides
/// of a workload with the children's mailboxes and tasks in cache. The chaos storm needs it: the
/// canopy side picks its victims with the chaos monkey, whose walk of the tree (tens of
/// milliseconds of string matching) evicted them, and its recovery then measured 1.5-2x slower
/// than with the raw side's picks, which cost nothing.
pub async fn ping_all(cells: &[Option<ActorCell>]) -> Result<(), String> {
    for cell in cells.iter().flatten() {
        let child: ActorRef<WMsg> = cell.clone().into();
        child
            .call(|reply| WMsg::Ping(0, reply), Some(crate::STUCK))
            .await
            .map_err(|e| format!("a child did not answer: {e}"))?;
    }
    Ok(())
}

/// Waits for `cells.len()` reports, records each child's cell, returns the latest report time.
pub async fn wait_up(
    rx: &mut mpsc::UnboundedReceiver<Up>,
    cells: &mut [Option<ActorCell>],
) -> Result<Instant, String> {
    let mut latest: Option<Instant> = None;
    for _ in 0..cells.len() {
        let up = tokio::time::timeout(crate::STUCK, rx.recv())
            .await
            .map_err(|_| "children did not come up in time".to_string())?
            .ok_or("every notifier dropped")?;
        if let Some(slot) = cells.get_mut(up.idx) {
            *slot = Some(up.cell);
        }
        latest = Some(latest.map_or(up.at, |l: Instant| l.max(up.at)));
    }
    latest.ok_or_else(|| "no child to wait for".to_string())
}

/// Waits for `n` reports without keeping them.
pub async fn wait_n(rx: &mut mpsc::UnboundedReceiver<Up>, n: usize) -> Result<(), String> {
    for _ in 0..n {
        tokio::time::timeout(crate::STUCK, rx.recv())
            .await
            .map_err(|_| "children did not come up in time".to_string())?
            .ok_or("every notifier dropped")?;
    }
    Ok(())
}

/// The restart workload's loop, the same for every ractor-based side: waits for the `n` children
/// to come up, then `kills` times kills the first one and times until `restarted` children have
/// come up again (the Erlang method: T0 just before the kill, T1 the latest `pre_start`), with a
/// round trip to the supervisor (`sync`) after each, so that every kill finds it idle.
pub async fn kill_first<S, F>(
    rx: &mut mpsc::UnboundedReceiver<Up>,
    n: usize,
    restarted: usize,
    kills: usize,
    mut sync: S,
) -> Result<Vec<f64>, String>
where
    S: FnMut() -> F,
    F: Future<Output = Result<(), String>>,
{
    let mut cells: Vec<Option<ActorCell>> = vec![None; n];
    wait_up(rx, &mut cells).await?;
    let mut samples = Vec::with_capacity(kills);
    for _ in 0..kills {
        let first = cells[0].clone().ok_or("first child is not up")?;
        let t0 = Instant::now();
        first.kill();
        let t1 = wait_up(rx, &mut cells[..restarted]).await?;
        samples.push(t1.saturating_duration_since(t0).as_nanos() as f64);
        sync().await?;
    }
    Ok(samples)
}
