//! The workloads on raw ractor: the least a ractor user would write by hand for the same work.

use std::time::{Duration, Instant};

use canopy::ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::{mpsc, oneshot};

use crate::worker::{kill_first, Up, WArgs, WMsg, Worker};
use crate::{ns, per_child, Policy};

/// What the parent does when a child exits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing: the parent only starts children on request (start and shutdown workloads).
    Keep,
    /// Re-spawn the child that exited.
    One,
    /// Stop every other child (reverse order, each waited for within its 5 s grace and killed if
    /// it overstays), then re-spawn all in order.
    All,
}

/// How the parent stops its children in `post_stop`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// One at a time in reverse start order, each waited for: stopped within a 5 s grace (killed
    /// if it overstays), or `kill_and_wait` for [`Policy::Brutal`].
    Ordered(Policy),
    /// Stop every child, then wait for all of them.
    Parallel,
}

/// The parent's start arguments.
pub struct ParentArgs {
    /// Children started in `pre_start`.
    pub n: usize,
    /// What an exit triggers.
    pub mode: Mode,
    /// How `post_stop` stops the children.
    pub stop: Stop,
    /// Where children report that they are up.
    pub notify: Option<mpsc::UnboundedSender<Up>>,
}

/// The raw parent's state.
pub struct ParentState {
    mode: Mode,
    stop: Stop,
    args: Vec<WArgs>,
    children: Vec<ActorCell>,
}

/// What the raw parent handles.
pub enum ParentMsg {
    /// A round trip, to know the parent is idle.
    Sync(RpcReplyPort<()>),
    /// Spawn one more child and reply once its `pre_start` is done.
    Spawn(WArgs, RpcReplyPort<()>),
}

/// The hand-written parent.
pub struct Parent;

async fn spawn_child(
    args: &WArgs,
    parent: &ActorRef<ParentMsg>,
) -> Result<ActorCell, ActorProcessingErr> {
    let (child, _) = Actor::spawn_linked(None, Worker, args.clone(), parent.get_cell()).await?;
    Ok(child.get_cell())
}

impl Actor for Parent {
    type Msg = ParentMsg;
    type State = ParentState;
    type Arguments = ParentArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ParentMsg>,
        a: ParentArgs,
    ) -> Result<ParentState, ActorProcessingErr> {
        let args: Vec<WArgs> = (0..a.n).map(|i| WArgs::new(i, a.notify.clone())).collect();
        let mut children = Vec::with_capacity(a.n);
        for child_args in &args {
            children.push(spawn_child(child_args, &myself).await?);
        }
        Ok(ParentState {
            mode: a.mode,
            stop: a.stop,
            args,
            children,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ParentMsg>,
        msg: ParentMsg,
        state: &mut ParentState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ParentMsg::Sync(reply) => {
                let _ = reply.send(());
            }
            ParentMsg::Spawn(args, reply) => {
                let cell = spawn_child(&args, &myself).await?;
                state.children.push(cell);
                state.args.push(args);
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ParentMsg>,
        event: SupervisionEvent,
        state: &mut ParentState,
    ) -> Result<(), ActorProcessingErr> {
        let cell = match &event {
            SupervisionEvent::ActorTerminated(cell, _, _)
            | SupervisionEvent::ActorFailed(cell, _) => cell,
            _ => return Ok(()),
        };
        // Exits of children this parent stopped itself are stale: ignore them.
        let Some(pos) = state
            .children
            .iter()
            .position(|c| c.get_id() == cell.get_id())
        else {
            return Ok(());
        };
        match state.mode {
            Mode::Keep => {}
            Mode::One => {
                state.children[pos] = spawn_child(&state.args[pos], &myself).await?;
            }
            Mode::All => {
                for (i, child) in state.children.iter().enumerate().rev() {
                    if i != pos {
                        stop_within_grace(child).await;
                    }
                }
                for i in 0..state.args.len() {
                    state.children[i] = spawn_child(&state.args[i], &myself).await?;
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ParentMsg>,
        state: &mut ParentState,
    ) -> Result<(), ActorProcessingErr> {
        match state.stop {
            Stop::Ordered(Policy::Brutal) => {
                for child in state.children.iter().rev() {
                    let _ = child.kill_and_wait(None).await;
                }
            }
            Stop::Ordered(_) => {
                for child in state.children.iter().rev() {
                    stop_within_grace(child).await;
                }
            }
            Stop::Parallel => {
                for child in &state.children {
                    child.stop(None);
                }
                futures::future::join_all(state.children.iter().map(|c| c.wait(None))).await;
            }
        }
        Ok(())
    }
}

/// Stops `child` and waits for it, killing it if it overstays a 5 s grace: what canopy does for a
/// child whose shutdown is `Timeout(5 s)` (every child of the restart rounds and of the
/// `_timeout` shutdowns), so that the raw parent gives the same guarantee a hand-written one
/// would have to: a child that ignores its stop cannot hold the round or the shutdown forever.
async fn stop_within_grace(child: &ActorCell) {
    if child
        .stop_and_wait(None, Some(Duration::from_secs(5)))
        .await
        .is_err()
    {
        let _ = child.kill_and_wait(None).await;
    }
}

/// Spawns a raw parent and returns once all its children are up.
pub async fn parent(args: ParentArgs) -> Result<ActorRef<ParentMsg>, String> {
    let (parent, _) = Actor::spawn(None, Parent, args)
        .await
        .map_err(|e| e.to_string())?;
    Ok(parent)
}

fn plain(n: usize, mode: Mode, stop: Stop) -> ParentArgs {
    ParentArgs {
        n,
        mode,
        stop,
        notify: None,
    }
}

async fn request_spawn(parent: &ActorRef<ParentMsg>) -> Result<(), String> {
    parent
        .call(|r| ParentMsg::Spawn(WArgs::default(), r), None)
        .await
        .map_err(|e| e.to_string())?
        .success_or(())
        .map_err(|_| "the raw parent did not reply".to_string())
}

/// `n` sequential spawn requests to a parent that spawns on request; the time of each.
pub async fn start_child(n: usize) -> Result<Vec<f64>, String> {
    let p = parent(plain(0, Mode::Keep, Stop::Ordered(Policy::Timeout))).await?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        request_spawn(&p).await?;
        samples.push(ns(t0));
    }
    let _ = p.stop_and_wait(None, None).await;
    Ok(samples)
}

/// `rounds` times: spawn a parent that spawns one linked child in its `pre_start`.
pub async fn supervisor_start_1(rounds: usize) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        let p = parent(plain(1, Mode::One, Stop::Ordered(Policy::Timeout))).await?;
        samples.push(ns(t0));
        let _ = p.stop_and_wait(None, None).await;
    }
    Ok(samples)
}

/// The restart workload against the hand-written parent (`all`: the 10-children strategies).
pub async fn restart(all: bool, n: usize, kills: usize) -> Result<Vec<f64>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let p = parent(ParentArgs {
        n,
        mode: if all { Mode::All } else { Mode::One },
        stop: Stop::Ordered(Policy::Timeout),
        notify: Some(tx),
    })
    .await?;
    let restarted = if all { n } else { 1 };
    let samples = kill_first(&mut rx, n, restarted, kills, || async {
        p.call(ParentMsg::Sync, None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await?;
    let _ = p.stop_and_wait(None, None).await;
    Ok(samples)
}

/// A parent spawning `n` children in `pre_start`, stopped as `policy` says; µs per child.
pub async fn static_tree(
    n: usize,
    policy: Policy,
    rounds: usize,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t0 = Instant::now();
        let p = parent(plain(n, Mode::One, Stop::Ordered(policy))).await?;
        let t1 = Instant::now();
        let _ = p.stop_and_wait(None, None).await;
        start.push(per_child(t1 - t0, n));
        stop.push(per_child(t1.elapsed(), n));
    }
    Ok((start, stop))
}

/// `n` spawn requests, then the parent stops all its children at once; µs per child.
pub async fn dynamic_tree(n: usize, rounds: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let p = parent(plain(0, Mode::Keep, Stop::Parallel)).await?;
        let t0 = Instant::now();
        for _ in 0..n {
            request_spawn(&p).await?;
        }
        let t1 = Instant::now();
        let _ = p.stop_and_wait(None, None).await;
        start.push(per_child(t1 - t0, n));
        stop.push(per_child(t1.elapsed(), n));
    }
    Ok((start, stop))
}

/// `n` asks to a plain actor in batches, each with the reply timeout `bound` (`None`: no timer);
/// nanoseconds per ask, one sample per batch.
pub async fn ask(n: usize, batch: usize, bound: Option<Duration>) -> Result<Vec<f64>, String> {
    let (a, _) = Actor::spawn(None, Worker, WArgs::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for _ in 0..n / batch {
        let t0 = Instant::now();
        for i in 0..batch as u64 {
            let r = a
                .call(|reply| WMsg::Ping(i, reply), bound)
                .await
                .map_err(|e| e.to_string())?;
            std::hint::black_box(r);
        }
        out.push(ns(t0) / batch as f64);
    }
    let _ = a.stop_and_wait(None, None).await;
    Ok(out)
}

/// `total` casts round-robin over `actors` plain actors; nanoseconds per handled message.
pub async fn tell(total: usize, actors: usize) -> Result<f64, String> {
    let mut refs = Vec::with_capacity(actors);
    for _ in 0..actors {
        let (a, _) = Actor::spawn(None, Worker, WArgs::default())
            .await
            .map_err(|e| e.to_string())?;
        refs.push(a);
    }
    let permits = crate::permits(total);
    let t0 = Instant::now();
    for i in 0..total {
        refs[i % actors]
            .cast(WMsg::Tell(crate::permit(&permits)))
            .map_err(|e| e.to_string())?;
    }
    crate::all_handled(&permits, total).await?;
    let took = ns(t0);
    for a in &refs {
        let _ = a.stop_and_wait(None, None).await;
    }
    Ok(took / total as f64)
}

/// Starts `n` idle children under a raw parent: in its `pre_start` (static) or on request
/// (dynamic).
pub async fn hold(n: usize, dynamic: bool) -> Result<ActorRef<ParentMsg>, String> {
    if dynamic {
        let p = parent(plain(0, Mode::Keep, Stop::Parallel)).await?;
        for _ in 0..n {
            request_spawn(&p).await?;
        }
        Ok(p)
    } else {
        parent(plain(n, Mode::One, Stop::Ordered(Policy::Timeout))).await
    }
}

/// A raw parent of `n` children and a hand-written SIGTERM handler that stops it (children in
/// reverse order) and returns.
pub async fn serve_until_signal(n: usize, ready: oneshot::Sender<()>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let p = parent(plain(n, Mode::One, Stop::Ordered(Policy::Timeout))).await?;
    let _ = ready.send(());
    term.recv().await;
    p.stop_and_wait(None, None).await.map_err(|e| e.to_string())
}

/// The chaos storm by hand: `kills` distinct children of a one_for_one raw parent of `n`, chosen
/// by a seeded shuffle, killed back to back; the time from the first kill until every
/// replacement is up.
pub async fn chaos_storm(n: usize, kills: usize, round: usize) -> Result<f64, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let p = parent(ParentArgs {
        n,
        mode: Mode::One,
        stop: Stop::Ordered(Policy::Timeout),
        notify: Some(tx),
    })
    .await?;
    let mut cells: Vec<Option<ActorCell>> = vec![None; n];
    crate::worker::wait_up(&mut rx, &mut cells).await?;
    let victims = crate::seeded_pick(n, kills, 2026 + round as u64);
    // Both sides start the clock with their children equally warm (see `ping_all`).
    crate::worker::ping_all(&cells).await?;
    let t0 = Instant::now();
    for &i in &victims {
        cells[i].as_ref().ok_or("a child is not up")?.kill();
    }
    let mut pending: std::collections::HashSet<usize> = victims.into_iter().collect();
    let mut latest = t0;
    while !pending.is_empty() {
        let up = tokio::time::timeout(crate::STUCK, rx.recv())
            .await
            .map_err(|_| "the tree did not recover in time".to_string())?
            .ok_or("every notifier dropped")?;
        if pending.remove(&up.idx) {
            latest = latest.max(up.at);
        }
    }
    let _ = p.stop_and_wait(None, None).await;
    Ok((latest - t0).as_nanos() as f64)
}
