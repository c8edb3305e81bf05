//! Dynamic and partition supervisor benchmarks, each beside raw ractor doing the same work in the
//! same run (`cargo bench -p canopy-benches --bench dynamic`, about 4–5 minutes on a 2-core
//! machine).
//!
//! Every benchmark runs on one multi-thread tokio runtime with 2 worker threads. The timed body runs
//! inside a task spawned onto that runtime (never `block_on` from outside the pool, which would add
//! cross-thread wake-ups to every step), and times itself with `iter_custom`. Each iteration builds
//! its own supervisor (or raw parent) untimed and tears it down untimed, so no iteration inherits the
//! children of the one before.
//!
//! | group | canopy | raw ractor baselines |
//! |---|---|---|
//! | `dyn_start_child` | 10,000 sequential `DynamicRef::start_child(args)` of a trivial actor (temporary template) | `raw_parent_call`: a ractor parent that `spawn_linked`s the same child on a request and replies (the same request/reply shape); `raw_spawn_linked`: a bare `Actor::spawn_linked` loop in the benchmark task (the floor) |
//! | `dyn_parallel_shutdown` | `DynamicRef::shutdown()` of a supervisor holding N children (N = 10,000 and 100,000, started untimed) | a ractor parent holding N linked children whose `post_stop` stops them all, then waits for all: `raw_stop_all_then_wait` (stop each in start order, then `join_all` of the waits, the same shape as canopy's) and `raw_stop_children_and_wait` (ractor's own `stop_children_and_wait`, one task per child) |
//! | `partitioned_start_child` | 2 tasks each starting 5,000 children at once into one `DynamicSupervisor` (`canopy_one_dynamic`) or a `PartitionSupervisor` with 2 partitions, routed by distinct keys (`canopy_partitions_2`) | the same 2 tasks calling one raw parent (`raw_one_parent`), two raw parents routed by the same key hash (`raw_two_parents`), or `spawn_linked` directly (`raw_spawn_linked`) |
//!
//! Criterion's throughput lines give children per second; its times are per iteration (all the
//! children of one iteration). The raw parents are filled through the same request path as canopy's
//! supervisor, so both sets of children are allocated the same way: the order children are stopped
//! in matters (stopping 100,000 in ractor's `HashMap` order took about twice as long as in start
//! order in a trial run). At the end the run prints, for every benchmark, the median time per
//! child over every single iteration (warm-up included), as a cross-check.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use canopy::ractor::rpc::CallResult;
use canopy::ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use canopy::{DynamicRef, DynamicSpec, DynamicSupervisor, PartitionSupervisor, Restart};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;

/// Children started per iteration of `dyn_start_child`.
const STARTS: usize = 10_000;
/// Children each of the 2 tasks starts per iteration of `partitioned_start_child`.
const PER_TASK: usize = 5_000;
/// Concurrent starting tasks in `partitioned_start_child`.
const TASKS: usize = 2;

// -------------------------------------------------------------------------------------------------
// The child, shared by every variant

/// A trivial actor: no state, no messages; its argument is the start argument of the child.
#[derive(Clone)]
struct Child;

impl Actor for Child {
    type Msg = ();
    type State = ();
    type Arguments = u64;

    async fn pre_start(&self, _: ActorRef<()>, _: u64) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// The canopy template: temporary children, default (worker, 5 s) shutdown.
fn template() -> DynamicSpec<u64> {
    DynamicSpec::actor(Child).restart(Restart::Temporary)
}

// -------------------------------------------------------------------------------------------------
// The raw ractor baseline: a parent that starts children on request and stops them all at once

/// How the raw parent stops its children in `post_stop`.
#[derive(Clone, Copy)]
enum RawStop {
    /// Stop every child it holds, then wait for every one (`join_all`), in start order, like
    /// canopy's parallel shutdown.
    AllThenWait,
    /// ractor's `stop_children_and_wait`: a task per linked child that stops it and waits for it
    /// (in the order of ractor's child map, a `HashMap`).
    StopChildrenAndWait,
}

enum RawMsg {
    /// Spawn a child linked to the parent with these arguments; reply with its cell once its
    /// `pre_start` is done.
    Spawn(u64, RpcReplyPort<ActorCell>),
    /// Hold these children too (spawned linked to the parent by someone else).
    Adopt(Vec<ActorCell>),
}

struct RawParent;

struct RawState {
    stop: RawStop,
    /// Every child, in start order.
    children: Vec<ActorCell>,
}

impl Actor for RawParent {
    type Msg = RawMsg;
    type State = RawState;
    type Arguments = RawStop;

    async fn pre_start(
        &self,
        _: ActorRef<RawMsg>,
        stop: RawStop,
    ) -> Result<RawState, ActorProcessingErr> {
        Ok(RawState {
            stop,
            children: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RawMsg>,
        msg: RawMsg,
        state: &mut RawState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RawMsg::Spawn(args, reply) => {
                let (child, _) = Actor::spawn_linked(None, Child, args, myself.get_cell()).await?;
                state.children.push(child.get_cell());
                let _ = reply.send(child.get_cell());
            }
            RawMsg::Adopt(children) => state.children.extend(children),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RawMsg>,
        state: &mut RawState,
    ) -> Result<(), ActorProcessingErr> {
        match state.stop {
            RawStop::AllThenWait => {
                for child in &state.children {
                    child.stop(None);
                }
                futures::future::join_all(state.children.iter().map(|c| c.wait(None))).await;
            }
            RawStop::StopChildrenAndWait => myself.stop_children_and_wait(None, None).await,
        }
        Ok(())
    }
}

async fn raw_parent(stop: RawStop) -> ActorRef<RawMsg> {
    let (parent, _) = Actor::spawn(None, RawParent, stop)
        .await
        .expect("raw parent starts");
    parent
}

/// One request/reply to the raw parent: a child is spawned and its `pre_start` is done.
async fn raw_call_spawn(parent: &ActorRef<RawMsg>, args: u64) -> ActorCell {
    match parent
        .call(|reply| RawMsg::Spawn(args, reply), None)
        .await
        .expect("raw parent is up")
    {
        CallResult::Success(cell) => cell,
        _ => panic!("raw parent did not reply"),
    }
}

/// Hands children spawned outside the raw parent to it, so that its `post_stop` stops them.
fn adopt(parent: &ActorRef<RawMsg>, children: Vec<ActorCell>) {
    parent
        .send_message(RawMsg::Adopt(children))
        .expect("raw parent is up");
}

/// Stops the raw parent (its `post_stop` stops every child) and waits until it is gone, as
/// `DynamicRef::shutdown` does.
async fn raw_shutdown(parent: &ActorRef<RawMsg>) {
    parent
        .stop_and_wait(None, None)
        .await
        .expect("raw parent stops");
}

/// `n` children of the raw parent, started through its request (untimed set-up of the raw
/// shutdown, the same path as canopy's).
async fn raw_fill(parent: &ActorRef<RawMsg>, n: usize) {
    for i in 0..n {
        raw_call_spawn(parent, i as u64).await;
    }
}

/// `n` children of a canopy dynamic supervisor (untimed set-up of the canopy shutdown).
async fn canopy_fill(sup: &DynamicRef<u64>, n: usize) {
    for i in 0..n {
        sup.start_child(i as u64).await.expect("child starts");
    }
}

// -------------------------------------------------------------------------------------------------
// Recording and running

/// Every single iteration's timed duration, per child, in nanoseconds, by benchmark name.
static PER_CHILD: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(label: &str, elapsed: Duration, children: usize) {
    PER_CHILD
        .lock()
        .unwrap()
        .entry(label.to_string())
        .or_default()
        .push(elapsed.as_nanos() as f64 / children as f64);
}

/// Runs `body` as a task on the runtime's workers and waits for its result.
fn on_workers<F>(rt: &Runtime, body: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(body))
        .expect("benchmark task panicked")
}

/// Runs `TASKS` copies of `task(i)` at once as tasks on the runtime and waits for all of them.
async fn in_parallel<F, Fut>(task: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handles: Vec<_> = (0..TASKS).map(|i| tokio::spawn(task(i))).collect();
    for h in handles {
        h.await.expect("starting task panicked");
    }
}

/// The partition (of `n`) a key goes to, hashed as `PartitionRef` hashes it.
fn route(key: u64, n: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % n as u64) as usize
}

// -------------------------------------------------------------------------------------------------
// 1. start_child cost

#[derive(Clone, Copy)]
enum StartImpl {
    Canopy,
    RawParentCall,
    RawSpawnLinked,
}

impl StartImpl {
    fn name(self) -> &'static str {
        match self {
            StartImpl::Canopy => "canopy",
            StartImpl::RawParentCall => "raw_parent_call",
            StartImpl::RawSpawnLinked => "raw_spawn_linked",
        }
    }
}

async fn start_child_run(which: StartImpl, iters: u64, label: String) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let elapsed = match which {
            StartImpl::Canopy => {
                let sup = DynamicSupervisor::start(template())
                    .await
                    .expect("dynamic supervisor starts");
                let t0 = Instant::now();
                for i in 0..STARTS {
                    let started = sup.start_child(i as u64).await.expect("child starts");
                    debug_assert!(started.cell.is_some());
                }
                let elapsed = t0.elapsed();
                sup.shutdown().await;
                elapsed
            }
            StartImpl::RawParentCall => {
                let parent = raw_parent(RawStop::AllThenWait).await;
                let t0 = Instant::now();
                for i in 0..STARTS {
                    raw_call_spawn(&parent, i as u64).await;
                }
                let elapsed = t0.elapsed();
                raw_shutdown(&parent).await;
                elapsed
            }
            StartImpl::RawSpawnLinked => {
                let parent = raw_parent(RawStop::AllThenWait).await;
                let sup = parent.get_cell();
                let mut children = Vec::with_capacity(STARTS);
                let t0 = Instant::now();
                for i in 0..STARTS {
                    let (child, _) = Actor::spawn_linked(None, Child, i as u64, sup.clone())
                        .await
                        .expect("child starts");
                    children.push(child.get_cell());
                }
                let elapsed = t0.elapsed();
                adopt(&parent, children);
                raw_shutdown(&parent).await;
                elapsed
            }
        };
        record(&label, elapsed, STARTS);
        total += elapsed;
    }
    total
}

fn start_child_benches(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("dyn_start_child");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(STARTS as u64));
    for which in [
        StartImpl::Canopy,
        StartImpl::RawParentCall,
        StartImpl::RawSpawnLinked,
    ] {
        let label = format!("dyn_start_child/{}", which.name());
        group.bench_function(which.name(), |b| {
            b.iter_custom(|iters| on_workers(rt, start_child_run(which, iters, label.clone())))
        });
    }
    group.finish();
}

// -------------------------------------------------------------------------------------------------
// 2. Parallel shutdown

#[derive(Clone, Copy)]
enum ShutdownImpl {
    Canopy,
    Raw(RawStop),
}

impl ShutdownImpl {
    fn name(self) -> &'static str {
        match self {
            ShutdownImpl::Canopy => "canopy",
            ShutdownImpl::Raw(RawStop::AllThenWait) => "raw_stop_all_then_wait",
            ShutdownImpl::Raw(RawStop::StopChildrenAndWait) => "raw_stop_children_and_wait",
        }
    }
}

async fn shutdown_run(which: ShutdownImpl, n: usize, iters: u64, label: String) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let elapsed = match which {
            ShutdownImpl::Canopy => {
                let sup = DynamicSupervisor::start(template())
                    .await
                    .expect("dynamic supervisor starts");
                canopy_fill(&sup, n).await;
                let t0 = Instant::now();
                sup.shutdown().await;
                t0.elapsed()
            }
            ShutdownImpl::Raw(stop) => {
                let parent = raw_parent(stop).await;
                raw_fill(&parent, n).await;
                let t0 = Instant::now();
                raw_shutdown(&parent).await;
                t0.elapsed()
            }
        };
        record(&label, elapsed, n);
        total += elapsed;
    }
    total
}

fn shutdown_benches(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("dyn_parallel_shutdown");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300));
    for n in [10_000usize, 100_000] {
        // One iteration per sample at 100,000 (each also pays an untimed start of every child).
        group
            .throughput(Throughput::Elements(n as u64))
            .measurement_time(Duration::from_secs(if n > 10_000 { 3 } else { 1 }));
        for which in [
            ShutdownImpl::Canopy,
            ShutdownImpl::Raw(RawStop::AllThenWait),
            ShutdownImpl::Raw(RawStop::StopChildrenAndWait),
        ] {
            let label = format!("dyn_parallel_shutdown/{}/{n}", which.name());
            group.bench_with_input(BenchmarkId::new(which.name(), n), &n, |b, &n| {
                b.iter_custom(|iters| on_workers(rt, shutdown_run(which, n, iters, label.clone())))
            });
        }
    }
    group.finish();
}

// -------------------------------------------------------------------------------------------------
// 3. Partitioned start_child throughput

#[derive(Clone, Copy)]
enum ParImpl {
    CanopyOneDynamic,
    CanopyPartitions2,
    RawOneParent,
    RawTwoParents,
    RawSpawnLinked,
}

impl ParImpl {
    fn name(self) -> &'static str {
        match self {
            ParImpl::CanopyOneDynamic => "canopy_one_dynamic",
            ParImpl::CanopyPartitions2 => "canopy_partitions_2",
            ParImpl::RawOneParent => "raw_one_parent",
            ParImpl::RawTwoParents => "raw_two_parents",
            ParImpl::RawSpawnLinked => "raw_spawn_linked",
        }
    }
}

/// The keys task `t` starts: distinct across tasks.
fn keys(t: usize) -> std::ops::Range<u64> {
    (t * PER_TASK) as u64..((t + 1) * PER_TASK) as u64
}

async fn partitioned_run(which: ParImpl, iters: u64, label: String) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let elapsed = match which {
            ParImpl::CanopyOneDynamic => {
                let sup = DynamicSupervisor::start(template())
                    .await
                    .expect("dynamic supervisor starts");
                let t0 = Instant::now();
                in_parallel(|t| {
                    let sup = sup.clone();
                    async move {
                        for key in keys(t) {
                            sup.start_child(key).await.expect("child starts");
                        }
                    }
                })
                .await;
                let elapsed = t0.elapsed();
                sup.shutdown().await;
                elapsed
            }
            ParImpl::CanopyPartitions2 => {
                let parts = PartitionSupervisor::new(template())
                    .partitions(2)
                    .start()
                    .await
                    .expect("partition supervisor starts");
                let t0 = Instant::now();
                in_parallel(|t| {
                    let parts = parts.clone();
                    async move {
                        for key in keys(t) {
                            parts.start_child(&key, key).await.expect("child starts");
                        }
                    }
                })
                .await;
                let elapsed = t0.elapsed();
                parts.shutdown().await;
                elapsed
            }
            ParImpl::RawOneParent => {
                let parent = raw_parent(RawStop::AllThenWait).await;
                let t0 = Instant::now();
                in_parallel(|t| {
                    let parent = parent.clone();
                    async move {
                        for key in keys(t) {
                            raw_call_spawn(&parent, key).await;
                        }
                    }
                })
                .await;
                let elapsed = t0.elapsed();
                raw_shutdown(&parent).await;
                elapsed
            }
            ParImpl::RawTwoParents => {
                let parents = [
                    raw_parent(RawStop::AllThenWait).await,
                    raw_parent(RawStop::AllThenWait).await,
                ];
                let t0 = Instant::now();
                in_parallel(|t| {
                    let parents = parents.clone();
                    async move {
                        for key in keys(t) {
                            raw_call_spawn(&parents[route(key, 2)], key).await;
                        }
                    }
                })
                .await;
                let elapsed = t0.elapsed();
                for parent in &parents {
                    raw_shutdown(parent).await;
                }
                elapsed
            }
            ParImpl::RawSpawnLinked => {
                let parent = raw_parent(RawStop::AllThenWait).await;
                let t0 = Instant::now();
                in_parallel(|t| {
                    let parent = parent.clone();
                    async move {
                        let mut children = Vec::with_capacity(PER_TASK);
                        for key in keys(t) {
                            let (child, _) =
                                Actor::spawn_linked(None, Child, key, parent.get_cell())
                                    .await
                                    .expect("child starts");
                            children.push(child.get_cell());
                        }
                        adopt(&parent, children);
                    }
                })
                .await;
                let elapsed = t0.elapsed();
                raw_shutdown(&parent).await;
                elapsed
            }
        };
        record(&label, elapsed, TASKS * PER_TASK);
        total += elapsed;
    }
    total
}

fn partitioned_benches(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("partitioned_start_child");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((TASKS * PER_TASK) as u64));
    for which in [
        ParImpl::CanopyOneDynamic,
        ParImpl::CanopyPartitions2,
        ParImpl::RawOneParent,
        ParImpl::RawTwoParents,
        ParImpl::RawSpawnLinked,
    ] {
        let label = format!("partitioned_start_child/{}", which.name());
        group.bench_function(which.name(), |b| {
            b.iter_custom(|iters| on_workers(rt, partitioned_run(which, iters, label.clone())))
        });
    }
    group.finish();
}

// -------------------------------------------------------------------------------------------------

/// Median, min and max time per child over every single iteration, which criterion's per-sample
/// statistics do not show.
fn print_per_child_summary() {
    let all = PER_CHILD.lock().unwrap();
    if all.is_empty() {
        return;
    }
    println!("\nPer child, over every iteration of the run (warm-up included):");
    println!(
        "{:<58} {:>6} {:>11} {:>9} {:>9} {:>12}",
        "benchmark", "iters", "median µs", "min µs", "max µs", "children/s"
    );
    for (name, samples) in all.iter() {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "{:<58} {:>6} {:>11.3} {:>9.3} {:>9.3} {:>12.0}",
            name,
            sorted.len(),
            median / 1e3,
            sorted[0] / 1e3,
            sorted[sorted.len() - 1] / 1e3,
            1e9 / median
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut c = Criterion::default().configure_from_args();
    start_child_benches(&mut c, &rt);
    shutdown_benches(&mut c, &rt);
    partitioned_benches(&mut c, &rt);
    c.final_summary();
    print_per_child_summary();
}
