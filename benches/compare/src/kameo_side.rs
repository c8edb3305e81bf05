//! The workloads on kameo 0.22: children supervised with `Child::supervise(&parent, args)`, every
//! mailbox unbounded (kameo's default is bounded(64), which would make a tell wait for room).
//! kameo's `spawn` returns before `on_start` has run; a child counts as started here once
//! `wait_for_startup` returns, the same "ready" as a ractor `pre_start` that has finished.

use std::time::{Duration, Instant};

use kameo::actor::{Actor, ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::supervision::SupervisionStrategy;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::{ns, per_child};

/// What a kameo child reports at the end of its `on_start`.
pub struct KUp {
    idx: usize,
    actor: ActorRef<KWorker>,
    at: Instant,
}

/// A kameo child's arguments.
#[derive(Clone)]
pub struct KArgs {
    idx: usize,
    notify: Option<mpsc::UnboundedSender<KUp>>,
}

impl KArgs {
    fn quiet(idx: usize) -> KArgs {
        KArgs { idx, notify: None }
    }
}

/// The kameo child.
pub struct KWorker;

impl Actor for KWorker {
    type Args = KArgs;
    type Error = Infallible;

    async fn on_start(args: KArgs, actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        if let Some(notify) = &args.notify {
            let _ = notify.send(KUp {
                idx: args.idx,
                actor: actor_ref,
                at: Instant::now(),
            });
        }
        Ok(KWorker)
    }
}

/// An ask.
pub struct Ping(u64);

impl Message<Ping> for KWorker {
    type Reply = u64;
    async fn handle(&mut self, msg: Ping, _: &mut Context<Self, u64>) -> u64 {
        msg.0
    }
}

/// A tell, handled by dropping the permit.
pub struct Tell(#[allow(dead_code)] OwnedSemaphorePermit);

impl Message<Tell> for KWorker {
    type Reply = ();
    async fn handle(&mut self, _: Tell, _: &mut Context<Self, ()>) {}
}

/// The parent's arguments.
pub struct PArgs {
    n: usize,
    notify: Option<mpsc::UnboundedSender<KUp>>,
}

/// A kameo parent whose strategy is its type parameter (0 one_for_one, 1 one_for_all, 2
/// rest_for_one): kameo reads the strategy from the type, not from a value.
pub struct KParent<const S: u8>;

async fn supervise<const S: u8>(parent: &ActorRef<KParent<S>>, args: KArgs) -> ActorRef<KWorker> {
    let child = KWorker::supervise(parent, args)
        .restart_limit(u32::MAX, Duration::from_secs(3600))
        .spawn_with_mailbox(mailbox::unbounded())
        .await;
    child.wait_for_startup().await;
    child
}

impl<const S: u8> Actor for KParent<S> {
    type Args = PArgs;
    type Error = Infallible;

    fn supervision_strategy() -> SupervisionStrategy {
        match S {
            0 => SupervisionStrategy::OneForOne,
            1 => SupervisionStrategy::OneForAll,
            _ => SupervisionStrategy::RestForOne,
        }
    }

    async fn on_start(args: PArgs, actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        for idx in 0..args.n {
            supervise(
                &actor_ref,
                KArgs {
                    idx,
                    notify: args.notify.clone(),
                },
            )
            .await;
        }
        Ok(KParent)
    }
}

/// Supervise one more child and reply once it has started.
pub struct SpawnOne;

impl<const S: u8> Message<SpawnOne> for KParent<S> {
    type Reply = ();
    async fn handle(&mut self, _: SpawnOne, ctx: &mut Context<Self, ()>) {
        supervise(ctx.actor_ref(), KArgs::quiet(0)).await;
    }
}

/// A round trip to the parent.
pub struct Sync;

impl<const S: u8> Message<Sync> for KParent<S> {
    type Reply = ();
    async fn handle(&mut self, _: Sync, _: &mut Context<Self, ()>) {}
}

async fn parent<const S: u8>(
    n: usize,
    notify: Option<mpsc::UnboundedSender<KUp>>,
) -> ActorRef<KParent<S>> {
    let p = KParent::<S>::spawn_with_mailbox(PArgs { n, notify }, mailbox::unbounded());
    p.wait_for_startup().await;
    p
}

async fn stop<A: Actor>(a: &ActorRef<A>) -> Result<(), String> {
    a.stop_gracefully().await.map_err(|e| e.to_string())?;
    a.wait_for_shutdown().await;
    Ok(())
}

async fn request_spawn(p: &ActorRef<KParent<0>>) -> Result<(), String> {
    p.ask(SpawnOne).await.map_err(|e| e.to_string())
}

/// `n` sequential supervise-one-more-child requests to a parent; the time of each.
pub async fn start_child(n: usize) -> Result<Vec<f64>, String> {
    let p = parent::<0>(0, None).await;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        request_spawn(&p).await?;
        samples.push(ns(t0));
    }
    stop(&p).await?;
    Ok(samples)
}

/// `rounds` times: a parent whose `on_start` supervises one child, until the parent has started.
pub async fn supervisor_start_1(rounds: usize) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        let p = parent::<0>(1, None).await;
        samples.push(ns(t0));
        stop(&p).await?;
    }
    Ok(samples)
}

async fn wait_up(
    rx: &mut mpsc::UnboundedReceiver<KUp>,
    kids: &mut [Option<ActorRef<KWorker>>],
) -> Result<Instant, String> {
    let mut latest: Option<Instant> = None;
    for _ in 0..kids.len() {
        let up = tokio::time::timeout(crate::STUCK, rx.recv())
            .await
            .map_err(|_| "kameo children did not come up in time".to_string())?
            .ok_or("every notifier dropped")?;
        if let Some(slot) = kids.get_mut(up.idx) {
            *slot = Some(up.actor);
        }
        latest = Some(latest.map_or(up.at, |l: Instant| l.max(up.at)));
    }
    latest.ok_or_else(|| "no child to wait for".to_string())
}

async fn restart_with<const S: u8>(n: usize, kills: usize) -> Result<Vec<f64>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let p = parent::<S>(n, Some(tx)).await;
    let mut kids: Vec<Option<ActorRef<KWorker>>> = vec![None; n];
    wait_up(&mut rx, &mut kids).await?;
    let restarted = if S == 0 { 1 } else { n };
    let mut samples = Vec::with_capacity(kills);
    for _ in 0..kills {
        let first = kids[0].clone().ok_or("first child is not up")?;
        let t0 = Instant::now();
        first.kill();
        let t1 = wait_up(&mut rx, &mut kids[..restarted]).await?;
        samples.push(t1.saturating_duration_since(t0).as_nanos() as f64);
        p.ask(Sync).await.map_err(|e| e.to_string())?;
    }
    stop(&p).await?;
    Ok(samples)
}

/// The restart workload: `strategy` 0 one_for_one, 1 one_for_all, 2 rest_for_one.
pub async fn restart(strategy: u8, n: usize, kills: usize) -> Result<Vec<f64>, String> {
    match strategy {
        0 => restart_with::<0>(n, kills).await,
        1 => restart_with::<1>(n, kills).await,
        _ => restart_with::<2>(n, kills).await,
    }
}

/// A parent supervising `n` children from its `on_start`, then stopped gracefully (kameo stops
/// children concurrently; it has no ordered shutdown). µs per child.
pub async fn static_tree(n: usize, rounds: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut start, mut stop_t) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t0 = Instant::now();
        let p = parent::<0>(n, None).await;
        let t1 = Instant::now();
        stop(&p).await?;
        start.push(per_child(t1 - t0, n));
        stop_t.push(per_child(t1.elapsed(), n));
    }
    Ok((start, stop_t))
}

/// `n` supervise requests, then the parent's graceful stop; µs per child.
pub async fn dynamic_tree(n: usize, rounds: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut start, mut stop_t) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let p = parent::<0>(0, None).await;
        let t0 = Instant::now();
        for _ in 0..n {
            request_spawn(&p).await?;
        }
        let t1 = Instant::now();
        stop(&p).await?;
        start.push(per_child(t1 - t0, n));
        stop_t.push(per_child(t1.elapsed(), n));
    }
    Ok((start, stop_t))
}

/// `n` asks to one actor in batches; nanoseconds per ask.
pub async fn ask(n: usize, batch: usize) -> Result<Vec<f64>, String> {
    let a = KWorker::spawn_with_mailbox(KArgs::quiet(0), mailbox::unbounded());
    a.wait_for_startup().await;
    let mut out = Vec::new();
    for _ in 0..n / batch {
        let t0 = Instant::now();
        for i in 0..batch as u64 {
            let r = a.ask(Ping(i)).await.map_err(|e| e.to_string())?;
            std::hint::black_box(r);
        }
        out.push(ns(t0) / batch as f64);
    }
    stop(&a).await?;
    Ok(out)
}

/// `total` tells round-robin over `actors` actors; nanoseconds per handled message.
pub async fn tell(total: usize, actors: usize) -> Result<f64, String> {
    let mut refs = Vec::with_capacity(actors);
    for i in 0..actors {
        let a = KWorker::spawn_with_mailbox(KArgs::quiet(i), mailbox::unbounded());
        a.wait_for_startup().await;
        refs.push(a);
    }
    let permits = crate::permits(total);
    let t0 = Instant::now();
    for i in 0..total {
        refs[i % actors]
            .tell(Tell(crate::permit(&permits)))
            .await
            .map_err(|e| e.to_string())?;
    }
    crate::all_handled(&permits, total).await?;
    let took = ns(t0);
    for a in &refs {
        stop(a).await?;
    }
    Ok(took / total as f64)
}

/// Starts `n` idle supervised children: from the parent's `on_start` (static) or on request.
pub async fn hold(n: usize, dynamic: bool) -> Result<ActorRef<KParent<0>>, String> {
    if dynamic {
        let p = parent::<0>(0, None).await;
        for _ in 0..n {
            request_spawn(&p).await?;
        }
        Ok(p)
    } else {
        Ok(parent::<0>(n, None).await)
    }
}

/// A parent of `n` children and a hand-written SIGTERM handler that stops it gracefully.
pub async fn serve_until_signal(n: usize, ready: oneshot::Sender<()>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let p = parent::<0>(n, None).await;
    let _ = ready.send(());
    term.recv().await;
    stop(&p).await
}
