//! The workloads on ractor-supervisor 0.2 (`Supervisor` with static child specs,
//! `DynamicSupervisor`). It requires a registered name for every supervisor and child; names here
//! are unique per process. It has no shutdown of its own: stopping a supervisor leaves its
//! children running, so its trees are taken down with `kill` (ractor kills the subtree, no
//! `post_stop`), which only compares with the brutal-kill rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canopy::ractor::{call_t, ActorCell, ActorRef};
use ractor_supervisor::{
    ChildSpec, DynamicSupervisor, DynamicSupervisorMsg, DynamicSupervisorOptions, Restart, SpawnFn,
    Supervisor, SupervisorArguments, SupervisorMsg, SupervisorOptions, SupervisorStrategy,
};
use tokio::sync::mpsc;

use crate::worker::{kill_first, wait_n, Alive, WArgs, Worker};
use crate::{ns, per_child};

static NAMES: AtomicU64 = AtomicU64::new(0);

fn fresh_name(what: &str) -> String {
    format!("{what}-{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

fn child(id: String, args: WArgs, restart: Restart) -> ChildSpec {
    ChildSpec {
        id,
        restart,
        spawn_fn: SpawnFn::new(move |sup: ActorCell, id: String| {
            let args = args.clone();
            async move {
                let (child, _) = Supervisor::spawn_linked(id, Worker, args, sup).await?;
                Ok(child.get_cell())
            }
        }),
        backoff_fn: None,
        reset_after: None,
    }
}

fn options(strategy: SupervisorStrategy) -> SupervisorOptions {
    SupervisorOptions {
        strategy,
        max_restarts: usize::MAX / 2,
        max_window: Duration::from_secs(3600),
        reset_after: None,
    }
}

/// Spawns a static supervisor of children made by `args(i)`; its children start in its
/// `post_start`, after `spawn` has returned.
async fn start_static(
    n: usize,
    strategy: SupervisorStrategy,
    args: impl Fn(usize) -> WArgs,
) -> Result<ActorRef<SupervisorMsg>, String> {
    let name = fresh_name("rs-sup");
    let specs = (0..n)
        .map(|i| child(format!("{name}-{i}"), args(i), Restart::Permanent))
        .collect();
    let (sup, _) = Supervisor::spawn(
        name,
        SupervisorArguments {
            child_specs: specs,
            options: options(strategy),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(sup)
}

async fn start_dynamic() -> Result<ActorRef<DynamicSupervisorMsg>, String> {
    let (sup, _) = DynamicSupervisor::spawn(
        fresh_name("rs-dyn"),
        DynamicSupervisorOptions {
            max_children: None,
            max_restarts: usize::MAX / 2,
            max_window: Duration::from_secs(3600),
            reset_after: None,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(sup)
}

async fn spawn_dynamic(sup: &ActorRef<DynamicSupervisorMsg>, args: WArgs) -> Result<(), String> {
    let id = fresh_name("rs-child");
    DynamicSupervisor::spawn_child(sup.clone(), child(id, args, Restart::Temporary))
        .await
        .map_err(|e| e.to_string())
}

/// `n` sequential `DynamicSupervisor::spawn_child` calls; the time of each.
pub async fn start_child_dynamic(n: usize) -> Result<Vec<f64>, String> {
    let sup = start_dynamic().await?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        spawn_dynamic(&sup, WArgs::default()).await?;
        samples.push(ns(t0));
    }
    let _ = sup.kill_and_wait(None).await;
    Ok(samples)
}

/// `rounds` times: `Supervisor::spawn` of one child, until that child's `pre_start` is done.
pub async fn supervisor_start_1(rounds: usize) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(rounds);
    let (tx, mut rx) = mpsc::unbounded_channel();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let sup = start_static(1, SupervisorStrategy::OneForOne, |i| {
            WArgs::new(i, Some(tx.clone()))
        })
        .await?;
        wait_n(&mut rx, 1).await?;
        samples.push(ns(t0));
        let _ = sup.kill_and_wait(None).await;
    }
    Ok(samples)
}

/// The restart workload.
pub async fn restart(
    strategy: SupervisorStrategy,
    n: usize,
    kills: usize,
) -> Result<Vec<f64>, String> {
    let one = matches!(strategy, SupervisorStrategy::OneForOne);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sup = start_static(n, strategy, |i| WArgs::new(i, Some(tx.clone()))).await?;
    drop(tx);
    let restarted = if one { 1 } else { n };
    let samples = kill_first(&mut rx, n, restarted, kills, || async {
        call_t!(sup, SupervisorMsg::InspectState, 30_000)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await?;
    let _ = sup.kill_and_wait(None).await;
    Ok(samples)
}

/// `rounds` times: a static supervisor of `n` children (until every `pre_start` is done), then
/// `kill` of the supervisor until every child is gone. µs per child.
pub async fn static_tree(n: usize, rounds: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let alive = Arc::new(Alive::default());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let t0 = Instant::now();
        let sup = start_static(n, SupervisorStrategy::OneForOne, |i| WArgs {
            idx: i,
            notify: Some(tx.clone()),
            alive: Some(alive.clone()),
        })
        .await?;
        wait_n(&mut rx, n).await?;
        let t1 = Instant::now();
        sup.kill();
        tokio::time::timeout(crate::STUCK, alive.none_left())
            .await
            .map_err(|_| "children outlived the kill".to_string())?;
        start.push(per_child(t1 - t0, n));
        stop.push(per_child(t1.elapsed(), n));
    }
    Ok((start, stop))
}

/// `n` dynamic children µs per child to start (the kill afterwards is not measured: ractor-supervisor
/// has no shutdown to compare with a parallel stop).
pub async fn dynamic_start(n: usize, rounds: usize) -> Result<Vec<f64>, String> {
    let mut start = Vec::new();
    for _ in 0..rounds {
        let sup = start_dynamic().await?;
        let t0 = Instant::now();
        for _ in 0..n {
            spawn_dynamic(&sup, WArgs::default()).await?;
        }
        start.push(per_child(t0.elapsed(), n));
        let _ = sup.kill_and_wait(None).await;
    }
    Ok(start)
}

/// Starts `n` idle dynamic children and returns their supervisor.
pub async fn hold_dynamic(n: usize) -> Result<ActorRef<DynamicSupervisorMsg>, String> {
    let sup = start_dynamic().await?;
    for _ in 0..n {
        spawn_dynamic(&sup, WArgs::default()).await?;
    }
    Ok(sup)
}
