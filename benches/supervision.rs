//! Supervision benchmarks: canopy beside the raw ractor cost of the same work, in the same run.
//!
//! Run with `cargo bench -p canopy-benches --bench supervision` (about 5–10 minutes on a 2-core
//! machine). Results and their reading are in `BENCHMARKS.md`.
//!
//! Every benchmark runs on one multi-thread tokio runtime with 2 worker threads. The timed body runs
//! inside a task spawned onto that runtime (never `block_on` from outside the pool, which would add
//! cross-thread wake-ups to every step), and times itself with `iter_custom`.
//!
//! | group | canopy | raw ractor baseline |
//! |---|---|---|
//! | `restart_one_for_one` | kill the child → its replacement's `pre_start` done | a parent whose `handle_supervisor_evt` re-spawns the child with `spawn_linked` |
//! | `restart_one_for_all_10` | kill the first of 10 → all 10 `pre_start`s done | a parent that stops the other 9 (`stop_and_wait`, reverse order) and re-spawns all 10 in order |
//! | `restart_rest_for_one_10` | same, `RestForOne` (the first child is killed, so all 10 restart) | the same parent as above |
//! | `static_start` | `Supervisor::start` of N `ChildSpec::actor` children | a parent that `spawn_linked`s N children in its `pre_start` |
//! | `ordered_shutdown` | `SupervisorRef::shutdown()` of that tree | the parent's `post_stop` stopping them in reverse order with `stop_and_wait` |
//!
//! Restart latency follows the Erlang method of the spec's Appendix A: T0 is taken just before the
//! kill, T1 is the latest timestamp taken inside a (re)started child's `pre_start`. Between two kills the
//! benchmark waits (untimed) for a round trip to the parent, so that every kill finds it idle. Besides
//! criterion's per-sample statistics, every single restart latency is recorded, and the median and p99
//! per event are printed at the end of the run.
//!
//! Last, outside criterion, an interleaved comparison: canopy and raw ractor alternate round by round
//! on fresh trees and their medians are compared. On a small shared VM the cost of a cross-thread
//! wake-up drifts over seconds, and criterion, which runs one benchmark after the other, carries that
//! drift into its ratios; the interleaved ratios do not. It runs with `cargo bench` (no filter) or with
//! the filter `paired`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use canopy::ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use canopy::{ChildSpec, Strategy, Supervisor, SupervisorRef, SupervisorSpec};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// How long any single wait in a benchmark may take before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(30);

// -------------------------------------------------------------------------------------------------
// The child actor, shared by canopy and the raw baseline

/// What a child reports at the end of its `pre_start`.
struct Up {
    idx: usize,
    cell: ActorCell,
    at: Instant,
}

#[derive(Clone)]
struct WorkerArgs {
    idx: usize,
    notify: Option<mpsc::UnboundedSender<Up>>,
}

#[derive(Clone)]
struct Worker;

impl Actor for Worker {
    type Msg = ();
    type State = ();
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(notify) = &args.notify {
            let _ = notify.send(Up {
                idx: args.idx,
                cell: myself.get_cell(),
                at: Instant::now(),
            });
        }
        Ok(())
    }
}

// -------------------------------------------------------------------------------------------------
// The raw ractor baseline: the least a ractor user would write by hand

#[derive(Clone, Copy, PartialEq, Eq)]
enum RawMode {
    /// Re-spawn the child that exited.
    One,
    /// Stop every other child (reverse order, `stop_and_wait`), then re-spawn all in order.
    All,
}

struct RawParent;

struct RawArgs {
    n: usize,
    mode: RawMode,
    notify: Option<mpsc::UnboundedSender<Up>>,
}

struct RawState {
    mode: RawMode,
    args: Vec<WorkerArgs>,
    children: Vec<ActorCell>,
}

enum RawMsg {
    /// A round trip, to know the parent is idle.
    Sync(RpcReplyPort<()>),
}

async fn raw_spawn_child(
    args: &WorkerArgs,
    parent: &ActorRef<RawMsg>,
) -> Result<ActorCell, ActorProcessingErr> {
    let (child, _) = Actor::spawn_linked(None, Worker, args.clone(), parent.get_cell()).await?;
    Ok(child.get_cell())
}

impl Actor for RawParent {
    type Msg = RawMsg;
    type State = RawState;
    type Arguments = RawArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RawMsg>,
        a: RawArgs,
    ) -> Result<RawState, ActorProcessingErr> {
        let args: Vec<WorkerArgs> = (0..a.n)
            .map(|idx| WorkerArgs {
                idx,
                notify: a.notify.clone(),
            })
            .collect();
        let mut children = Vec::with_capacity(a.n);
        for child_args in &args {
            children.push(raw_spawn_child(child_args, &myself).await?);
        }
        Ok(RawState {
            mode: a.mode,
            args,
            children,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<RawMsg>,
        msg: RawMsg,
        _state: &mut RawState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RawMsg::Sync(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RawMsg>,
        event: SupervisionEvent,
        state: &mut RawState,
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
            RawMode::One => {
                state.children[pos] = raw_spawn_child(&state.args[pos], &myself).await?;
            }
            RawMode::All => {
                for (i, child) in state.children.iter().enumerate().rev() {
                    if i != pos {
                        let _ = child.stop_and_wait(None, None).await;
                    }
                }
                for i in 0..state.args.len() {
                    state.children[i] = raw_spawn_child(&state.args[i], &myself).await?;
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RawMsg>,
        state: &mut RawState,
    ) -> Result<(), ActorProcessingErr> {
        for child in state.children.iter().rev() {
            let _ = child.stop_and_wait(None, None).await;
        }
        Ok(())
    }
}

// -------------------------------------------------------------------------------------------------
// The two trees behind one interface

#[derive(Clone, Copy)]
enum Impl {
    Canopy = 0,
    Raw = 1,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Canopy => "canopy",
            Impl::Raw => "raw_ractor",
        }
    }
}

enum Tree {
    Canopy(SupervisorRef),
    Raw(ActorRef<RawMsg>),
}

impl Tree {
    /// Starts a tree of `n` workers; returns once every `pre_start` is done.
    async fn start(
        which: Impl,
        strategy: Strategy,
        n: usize,
        notify: Option<mpsc::UnboundedSender<Up>>,
    ) -> Tree {
        match which {
            Impl::Canopy => Tree::Canopy(
                Supervisor::start(canopy_spec(strategy, n, notify))
                    .await
                    .expect("canopy supervisor starts"),
            ),
            Impl::Raw => Tree::Raw(raw_start(strategy, n, notify).await),
        }
    }

    /// A round trip to the parent: once it returns, the parent has handled every exit before it.
    async fn sync(&self) {
        match self {
            Tree::Canopy(sup) => {
                sup.count_children().await.expect("supervisor is up");
            }
            Tree::Raw(parent) => {
                parent
                    .call(RawMsg::Sync, None)
                    .await
                    .expect("raw parent is up");
            }
        }
    }

    /// Stops the tree (children in reverse start order) and waits until the parent is gone.
    async fn shutdown(&self) {
        match self {
            Tree::Canopy(sup) => sup.shutdown().await,
            Tree::Raw(parent) => {
                let _ = parent.stop_and_wait(None, None).await;
            }
        }
    }
}

fn canopy_spec(
    strategy: Strategy,
    n: usize,
    notify: Option<mpsc::UnboundedSender<Up>>,
) -> SupervisorSpec {
    SupervisorSpec::new(strategy)
        // The window is lazy (stamps are kept only as restarts happen), and each supervisor lives
        // for one criterion sample, so this never gives up and never holds more than that sample's
        // restarts.
        .restart_intensity(u32::MAX / 2, Duration::from_secs(3600))
        .children((0..n).map(|idx| {
            ChildSpec::actor(
                format!("worker-{idx}"),
                Worker,
                WorkerArgs {
                    idx,
                    notify: notify.clone(),
                },
            )
        }))
}

async fn raw_start(
    strategy: Strategy,
    n: usize,
    notify: Option<mpsc::UnboundedSender<Up>>,
) -> ActorRef<RawMsg> {
    let mode = match strategy {
        Strategy::OneForOne => RawMode::One,
        Strategy::OneForAll | Strategy::RestForOne => RawMode::All,
    };
    let (parent, _) = Actor::spawn(None, RawParent, RawArgs { n, mode, notify })
        .await
        .expect("raw parent starts");
    parent
}

// -------------------------------------------------------------------------------------------------
// Measurements

/// Every single restart latency, in nanoseconds, by benchmark name.
static LATENCIES: Mutex<BTreeMap<String, Vec<u64>>> = Mutex::new(BTreeMap::new());

/// Waits for `n` children to report; updates their cells and returns the latest report time.
async fn wait_up(rx: &mut mpsc::UnboundedReceiver<Up>, cells: &mut [Option<ActorCell>]) -> Instant {
    let mut latest: Option<Instant> = None;
    for _ in 0..cells.len() {
        let up = tokio::time::timeout(STUCK, rx.recv())
            .await
            .expect("children came up in time")
            .expect("notifier open");
        cells[up.idx] = Some(up.cell);
        latest = Some(latest.map_or(up.at, |l| l.max(up.at)));
    }
    latest.expect("at least one child")
}

/// `iters` times: kill the first child, wait for all `n` children to be up again. Returns every
/// kill → last `pre_start` latency, in nanoseconds.
async fn restart_run(which: Impl, strategy: Strategy, n: usize, iters: u64) -> Vec<u64> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tree = Tree::start(which, strategy, n, Some(tx)).await;
    let mut cells: Vec<Option<ActorCell>> = vec![None; n];
    wait_up(&mut rx, &mut cells).await;
    let mut samples = Vec::with_capacity(iters as usize);
    for _ in 0..iters {
        let first = cells[0].clone().expect("first child is up");
        let t0 = Instant::now();
        first.kill();
        let t1 = wait_up(&mut rx, &mut cells).await;
        samples.push(t1.saturating_duration_since(t0).as_nanos() as u64);
        tree.sync().await;
    }
    tree.shutdown().await;
    samples
}

/// [`restart_run`] for criterion: records the single latencies under `label`, returns their sum.
async fn restart_timed(
    which: Impl,
    strategy: Strategy,
    n: usize,
    iters: u64,
    label: String,
) -> Duration {
    let samples = restart_run(which, strategy, n, iters).await;
    let total = Duration::from_nanos(samples.iter().sum());
    LATENCIES
        .lock()
        .unwrap()
        .entry(label)
        .or_default()
        .extend(samples);
    total
}

/// Starts a tree of `n` children and shuts it down. Returns how long the start and the shutdown took.
async fn static_once(which: Impl, n: usize) -> (Duration, Duration) {
    // The spec (ids, argument clones) is built before the clock starts.
    let spec = match which {
        Impl::Canopy => Some(canopy_spec(Strategy::OneForOne, n, None)),
        Impl::Raw => None,
    };
    let t0 = Instant::now();
    let tree = match spec {
        Some(spec) => Tree::Canopy(Supervisor::start(spec).await.expect("canopy starts")),
        None => Tree::Raw(raw_start(Strategy::OneForOne, n, None).await),
    };
    let t1 = Instant::now();
    tree.shutdown().await;
    let t2 = Instant::now();
    (t1 - t0, t2 - t1)
}

/// `iters` times [`static_once`]. Returns the summed time of the start (`time_start`) or of the
/// shutdown.
async fn static_run(which: Impl, n: usize, iters: u64, time_start: bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (start, shutdown) = static_once(which, n).await;
        total += if time_start { start } else { shutdown };
    }
    total
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

// -------------------------------------------------------------------------------------------------
// Groups

fn restart_benches(c: &mut Criterion, rt: &Runtime) {
    let cases = [
        ("restart_one_for_one", Strategy::OneForOne, 1),
        ("restart_one_for_all_10", Strategy::OneForAll, 10),
        ("restart_rest_for_one_10", Strategy::RestForOne, 10),
    ];
    for (group_name, strategy, n) in cases {
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        for which in [Impl::Canopy, Impl::Raw] {
            let label = format!("{group_name}/{}", which.name());
            group.bench_function(which.name(), |b| {
                b.iter_custom(|iters| {
                    on_workers(rt, restart_timed(which, strategy, n, iters, label.clone()))
                })
            });
        }
        group.finish();
    }
}

fn static_benches(c: &mut Criterion, rt: &Runtime) {
    for (group_name, time_start) in [("static_start", true), ("ordered_shutdown", false)] {
        let mut group = c.benchmark_group(group_name);
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1));
        for n in [1_000usize, 10_000] {
            group
                .throughput(Throughput::Elements(n as u64))
                .measurement_time(Duration::from_secs(if n > 1_000 { 6 } else { 3 }));
            for which in [Impl::Canopy, Impl::Raw] {
                group.bench_with_input(BenchmarkId::new(which.name(), n), &n, |b, &n| {
                    b.iter_custom(|iters| on_workers(rt, static_run(which, n, iters, time_start)))
                });
            }
        }
        group.finish();
    }
}

/// Median and p99 of every single restart, which criterion's per-sample statistics do not show.
fn print_latency_summary() {
    let latencies = LATENCIES.lock().unwrap();
    if latencies.is_empty() {
        return;
    }
    println!("\nPer-restart latency (every kill of the run, warm-up included):");
    println!(
        "{:<42} {:>9} {:>11} {:>11} {:>11}",
        "benchmark", "restarts", "median µs", "p99 µs", "max µs"
    );
    for (name, samples) in latencies.iter() {
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
        println!(
            "{:<42} {:>9} {:>11.2} {:>11.2} {:>11.2}",
            name,
            sorted.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}

/// Criterion options that take a value: the word after them is not a benchmark filter.
const VALUE_OPTIONS: &[&str] = &[
    "-b",
    "-c",
    "-s",
    "--baseline",
    "--baseline-lenient",
    "--color",
    "--confidence-level",
    "--format",
    "--load-baseline",
    "--measurement-time",
    "--noise-threshold",
    "--nresamples",
    "--output-format",
    "--plotting-backend",
    "--sample-size",
    "--save-baseline",
    "--significance-level",
    "--warm-up-time",
];

/// The interleaved comparison runs in a real benchmark run (`--bench`, as `cargo bench` passes it)
/// with no filter, or with a filter that names `paired`.
fn paired_wanted() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    if !flag("--bench") || flag("--test") || flag("--list") || flag("--profile-time") {
        return false;
    }
    let mut filters = Vec::new();
    let mut value_next = false;
    for arg in &args {
        if std::mem::take(&mut value_next) {
            continue;
        }
        if arg.starts_with('-') {
            value_next = VALUE_OPTIONS.contains(&arg.as_str());
        } else {
            filters.push(arg);
        }
    }
    filters.is_empty() || filters.iter().any(|f| f.contains("paired"))
}

fn quantile_us(sorted: &[u64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1e3
}

/// canopy and raw ractor alternate round by round (the order flips every round), each round on a
/// fresh tree, so that both see the same state of the machine. On a shared 2-vCPU VM the cost of
/// a cross-thread wake-up drifts over seconds; criterion measures one benchmark after the other and
/// its ratios carry that drift, these do not.
fn paired_comparison(rt: &Runtime) {
    const ROUNDS: usize = 40;
    println!("\nInterleaved comparison: canopy and raw ractor alternate, a fresh tree per round");
    println!(
        "{:<24} {:>7} {:>11} {:>11} {:>7} {:>11} {:>11}",
        "restart", "kills", "canopy p50", "raw p50", "ratio", "canopy p99", "raw p99"
    );
    let cases = [
        ("one_for_one", Strategy::OneForOne, 1, 2_000),
        ("one_for_all_10", Strategy::OneForAll, 10, 200),
        ("rest_for_one_10", Strategy::RestForOne, 10, 200),
    ];
    for (name, strategy, n, kills) in cases {
        let (mut canopy, mut raw) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let order = if round % 2 == 0 {
                [Impl::Canopy, Impl::Raw]
            } else {
                [Impl::Raw, Impl::Canopy]
            };
            for which in order {
                let samples = on_workers(rt, restart_run(which, strategy, n, kills));
                match which {
                    Impl::Canopy => canopy.extend(samples),
                    Impl::Raw => raw.extend(samples),
                }
            }
        }
        canopy.sort_unstable();
        raw.sort_unstable();
        let (c50, r50) = (quantile_us(&canopy, 0.5), quantile_us(&raw, 0.5));
        println!(
            "{:<24} {:>7} {:>11.2} {:>11.2} {:>7.2} {:>11.2} {:>11.2}",
            name,
            canopy.len(),
            c50,
            r50,
            c50 / r50,
            quantile_us(&canopy, 0.99),
            quantile_us(&raw, 0.99)
        );
    }
    println!(
        "{:<24} {:>7} {:>11} {:>11} {:>7}   (medians, µs per child)",
        "static tree", "rounds", "canopy", "raw", "ratio"
    );
    for (n, rounds) in [(1_000usize, 40usize), (10_000, 12)] {
        let mut times: [[Vec<Duration>; 2]; 2] = Default::default(); // [impl][start, shutdown]
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [Impl::Canopy, Impl::Raw]
            } else {
                [Impl::Raw, Impl::Canopy]
            };
            for which in order {
                let (start, shutdown) = on_workers(rt, static_once(which, n));
                let slot = &mut times[which as usize];
                slot[0].push(start);
                slot[1].push(shutdown);
            }
        }
        for (phase, what) in ["start", "shutdown"].iter().enumerate() {
            let per_child = |v: &mut Vec<Duration>| {
                v.sort_unstable();
                v[v.len() / 2].as_nanos() as f64 / n as f64 / 1e3
            };
            let c = per_child(&mut times[Impl::Canopy as usize][phase]);
            let r = per_child(&mut times[Impl::Raw as usize][phase]);
            println!(
                "{:<24} {:>7} {:>11.2} {:>11.2} {:>7.2}",
                format!("{what} {n}"),
                rounds,
                c,
                r,
                c / r
            );
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut c = Criterion::default().configure_from_args();
    restart_benches(&mut c, &rt);
    static_benches(&mut c, &rt);
    c.final_summary();
    print_latency_summary();
    if paired_wanted() {
        paired_comparison(&rt);
    }
}
