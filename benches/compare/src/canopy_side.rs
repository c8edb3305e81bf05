//! The workloads on canopy.

use std::time::{Duration, Instant};

use canopy::app::App;
use canopy::ractor::{ActorCell, ActorRef};
use canopy::{
    ChildSpec, DynamicRef, DynamicSpec, DynamicSupervisor, Restart, Shutdown, Strategy, Supervisor,
    SupervisorRef, SupervisorSpec,
};
use tokio::sync::{mpsc, oneshot};

use crate::worker::{kill_first, Up, WArgs, WMsg, Worker};
use crate::{ns, per_child, Policy};

/// A supervisor that never gives up within a run: the restart workloads kill thousands of times.
fn spec(strategy: Strategy) -> SupervisorSpec {
    SupervisorSpec::new(strategy).restart_intensity(u32::MAX / 2, Duration::from_secs(3600))
}

fn child(idx: usize, args: WArgs, policy: Policy) -> ChildSpec {
    ChildSpec::actor(format!("w{idx}"), Worker, args).shutdown(match policy {
        Policy::Timeout => Shutdown::Timeout(Duration::from_secs(5)),
        Policy::Brutal => Shutdown::BrutalKill,
        Policy::Infinity => Shutdown::Infinity,
    })
}

fn template() -> DynamicSpec<WArgs> {
    DynamicSpec::actor(Worker).restart(Restart::Temporary)
}

/// `n` sequential `start_child` calls into a static supervisor; the time of each.
pub async fn start_child_static(n: usize) -> Result<Vec<f64>, String> {
    let sup = Supervisor::start(spec(Strategy::OneForOne))
        .await
        .map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let c = child(i, WArgs::default(), Policy::Timeout);
        let t0 = Instant::now();
        sup.start_child(c).await.map_err(|e| e.to_string())?;
        samples.push(ns(t0));
    }
    sup.shutdown().await;
    Ok(samples)
}

/// `n` sequential `start_child` calls into a dynamic supervisor; the time of each.
pub async fn start_child_dynamic(n: usize) -> Result<Vec<f64>, String> {
    let sup = DynamicSupervisor::start(template())
        .await
        .map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        sup.start_child(WArgs::default())
            .await
            .map_err(|e| e.to_string())?;
        samples.push(ns(t0));
    }
    sup.shutdown().await;
    Ok(samples)
}

/// `rounds` times `Supervisor::start` of one child (shut down untimed); the time of each.
pub async fn supervisor_start_1(rounds: usize) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let s = spec(Strategy::OneForOne).child(child(0, WArgs::default(), Policy::Timeout));
        let t0 = Instant::now();
        let sup = Supervisor::start(s).await.map_err(|e| e.to_string())?;
        samples.push(ns(t0));
        sup.shutdown().await;
    }
    Ok(samples)
}

/// `kills` times: kill the first of `n` children, time until every restarted child's
/// `pre_start` is done.
pub async fn restart(strategy: Strategy, n: usize, kills: usize) -> Result<Vec<f64>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let s = spec(strategy)
        .children((0..n).map(|i| child(i, WArgs::new(i, Some(tx.clone())), Policy::Timeout)));
    let sup = Supervisor::start(s).await.map_err(|e| e.to_string())?;
    let restarted = if strategy == Strategy::OneForOne {
        1
    } else {
        n
    };
    // A round trip: the supervisor has handled every exit before the next kill.
    let samples = kill_first(&mut rx, n, restarted, kills, || async {
        sup.count_children()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await?;
    sup.shutdown().await;
    Ok(samples)
}

/// `rounds` times: start a static tree of `n` children with `policy`, shut it down. Microseconds
/// per child for the start and for the shutdown.
pub async fn static_tree(
    n: usize,
    policy: Policy,
    rounds: usize,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let s =
            spec(Strategy::OneForOne).children((0..n).map(|i| child(i, WArgs::default(), policy)));
        let t0 = Instant::now();
        let sup = Supervisor::start(s).await.map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        sup.shutdown().await;
        start.push(per_child(t1 - t0, n));
        stop.push(per_child(t1.elapsed(), n));
    }
    Ok((start, stop))
}

/// `rounds` times: `n` dynamic `start_child` calls, then the supervisor's (parallel) shutdown.
/// Microseconds per child for each phase.
pub async fn dynamic_tree(n: usize, rounds: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let sup = DynamicSupervisor::start(template())
            .await
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        fill_dynamic(&sup, n).await?;
        let t1 = Instant::now();
        sup.shutdown().await;
        start.push(per_child(t1 - t0, n));
        stop.push(per_child(t1.elapsed(), n));
    }
    Ok((start, stop))
}

async fn fill_dynamic(sup: &DynamicRef<WArgs>, n: usize) -> Result<(), String> {
    for _ in 0..n {
        sup.start_child(WArgs::default())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[canopy::service]
impl Echo {
    fn init() -> Self {
        Echo
    }

    fn ping(&self, n: u64) -> u64 {
        n
    }
}

/// A service for the generated-client ask.
pub struct Echo;

/// `n` asks each way, in batches of `batch`: straight to the supervised child's `ActorRef`,
/// through a `ChildHandle`, through the `#[canopy::service]` client. Nanoseconds per ask, one
/// sample per batch.
pub async fn ask(n: usize, batch: usize) -> Result<[Vec<f64>; 3], String> {
    let sup = Supervisor::start(
        spec(Strategy::OneForOne)
            .child(child(0, WArgs::default(), Policy::Timeout))
            .child(Echo::child_spec("echo", ())),
    )
    .await
    .map_err(|e| e.to_string())?;
    let handle = sup.handle::<WMsg>("w0").map_err(|e| e.to_string())?;
    let direct: ActorRef<WMsg> = handle.current().ok_or("child is not running")?;
    let client = EchoClient::new(&sup, "echo").map_err(|e| e.to_string())?;
    let mut out: [Vec<f64>; 3] = Default::default();
    for _ in 0..n / batch {
        let t0 = Instant::now();
        for i in 0..batch as u64 {
            let r = direct
                .call(|reply| WMsg::Ping(i, reply), None)
                .await
                .map_err(|e| e.to_string())?;
            std::hint::black_box(r);
        }
        out[0].push(ns(t0) / batch as f64);
        let t0 = Instant::now();
        for i in 0..batch as u64 {
            let r = handle
                .call(|reply| WMsg::Ping(i, reply), None)
                .await
                .map_err(|e| e.to_string())?;
            std::hint::black_box(r);
        }
        out[1].push(ns(t0) / batch as f64);
        let t0 = Instant::now();
        for i in 0..batch as u64 {
            let r = client.ping(i).await.map_err(|e| e.to_string())?;
            std::hint::black_box(r);
        }
        out[2].push(ns(t0) / batch as f64);
    }
    sup.shutdown().await;
    Ok(out)
}

/// `total` tells spread round-robin over `actors` supervised children through their handles;
/// nanoseconds per message, counted until every message has been handled.
pub async fn tell(total: usize, actors: usize) -> Result<f64, String> {
    let sup = Supervisor::start(
        spec(Strategy::OneForOne)
            .children((0..actors).map(|i| child(i, WArgs::default(), Policy::Timeout))),
    )
    .await
    .map_err(|e| e.to_string())?;
    let handles = (0..actors)
        .map(|i| sup.handle::<WMsg>(&format!("w{i}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let permits = crate::permits(total);
    let t0 = Instant::now();
    for i in 0..total {
        let permit = crate::permit(&permits);
        handles[i % actors]
            .cast(WMsg::Tell(permit))
            .await
            .map_err(|e| e.to_string())?;
    }
    crate::all_handled(&permits, total).await?;
    let took = ns(t0);
    sup.shutdown().await;
    Ok(took / total as f64)
}

/// Holds a tree of `n` idle children (static or dynamic) for the memory workload.
pub enum Held {
    /// A static supervisor.
    Static(SupervisorRef),
    /// A dynamic supervisor.
    Dynamic(DynamicRef<WArgs>),
}

/// Starts `n` idle supervised children and returns what holds them.
pub async fn hold(n: usize, dynamic: bool) -> Result<Held, String> {
    if dynamic {
        let sup = DynamicSupervisor::start(template())
            .await
            .map_err(|e| e.to_string())?;
        fill_dynamic(&sup, n).await?;
        Ok(Held::Dynamic(sup))
    } else {
        let s = spec(Strategy::OneForOne)
            .children((0..n).map(|i| child(i, WArgs::default(), Policy::Timeout)));
        Ok(Held::Static(
            Supervisor::start(s).await.map_err(|e| e.to_string())?,
        ))
    }
}

/// An application of `n` workers with canopy's own signal handling: returns when a SIGTERM has
/// stopped it. `ready` fires once every child is up.
pub async fn serve_until_signal(n: usize, ready: oneshot::Sender<()>) -> Result<(), String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let root = spec(Strategy::OneForOne)
        .children((0..n).map(|i| child(i, WArgs::new(i, Some(tx.clone())), Policy::Timeout)));
    drop(tx);
    tokio::spawn(async move {
        if crate::worker::wait_n(&mut rx, n).await.is_ok() {
            let _ = ready.send(());
        }
    });
    let status = App::new(root).run().await.map_err(|e| e.to_string())?;
    if status.code() != 0 {
        return Err(format!("the app exited with status {}", status.code()));
    }
    Ok(())
}

/// A one_for_one tree named `name` of `n` workers reporting to the returned receiver, once every
/// one is up, with their cells by index.
async fn storm_tree(
    name: &str,
    n: usize,
) -> Result<
    (
        SupervisorRef,
        mpsc::UnboundedReceiver<Up>,
        Vec<Option<ActorCell>>,
    ),
    String,
> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sup = Supervisor::start(
        spec(Strategy::OneForOne)
            .name(name)
            .children((0..n).map(|i| child(i, WArgs::new(i, Some(tx.clone())), Policy::Timeout))),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut cells = vec![None; n];
    crate::worker::wait_up(&mut rx, &mut cells).await?;
    Ok((sup, rx, cells))
}

/// The victims of `storms` storms, each `kills` of `n` children, picked by canopy's chaos monkey
/// (seeded, dry run, each child once per storm) on a tree of `n` built for the purpose and shut
/// down before any storm. Picking costs tens of milliseconds of the monkey walking the tree and
/// matching paths; made just before each storm, that churn of the allocator and the caches made
/// the storm after it 1.3-2x slower than on a quiet heap, a cost the raw side's picks do not have.
#[cfg(feature = "chaos")]
pub async fn storm_victims(
    n: usize,
    kills: usize,
    storms: usize,
) -> Result<Vec<Vec<usize>>, String> {
    use canopy::chaos::{Mode, Monkey, Outcome};
    let name = "storm-picks";
    let (sup, _, _) = storm_tree(name, n).await?;
    let target = format!("/{name}/*");
    let mut all = Vec::with_capacity(storms);
    for round in 0..storms {
        let mut hit: Vec<String> = Vec::with_capacity(kills);
        let mut victims = Vec::with_capacity(kills);
        for k in 0..kills {
            let mut builder = Monkey::builder()
                .seed(2026 + (round * kills + k) as u64)
                .target(&target)
                .mode(Mode::Kill)
                .dry_run(true);
            for path in &hit {
                builder = builder.protect(path);
            }
            let action = builder.build().map_err(|e| e.to_string())?.step();
            if action.outcome != Outcome::DryRun {
                return Err(format!("chaos step {k}: {:?}", action.outcome));
            }
            let path = action.path.ok_or("a pick without a target")?;
            let idx: usize = path
                .rsplit('/')
                .next()
                .and_then(|id| id.strip_prefix('w'))
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| format!("unexpected target {path}"))?;
            victims.push(idx);
            hit.push(path);
        }
        all.push(victims);
    }
    sup.shutdown().await;
    Ok(all)
}

/// One storm: a one_for_one tree of `n` started, `victims` (from [`storm_victims`]) killed back
/// to back; the time from the first kill until every replacement is up.
pub async fn chaos_storm(n: usize, victims: &[usize], round: usize) -> Result<f64, String> {
    let (sup, mut rx, cells) = storm_tree(&format!("storm-{round}"), n).await?;
    // Both sides start the clock with their children equally warm (see `ping_all`).
    crate::worker::ping_all(&cells).await?;
    let t0 = Instant::now();
    for &i in victims {
        cells
            .get(i)
            .and_then(Option::as_ref)
            .ok_or("a child is not up")?
            .kill();
    }
    let mut pending: std::collections::HashSet<usize> = victims.iter().copied().collect();
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
    sup.shutdown().await;
    Ok((latest - t0).as_nanos() as f64)
}
