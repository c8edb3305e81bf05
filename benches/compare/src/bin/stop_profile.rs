//! A driver for callgrind: one supervisor operation of the harness, on canopy or on the harness's
//! raw ractor parent, and nothing else inside the function callgrind is told to count, so that
//! instruction counts per operation can be compared and attributed (BENCHMARKS.md, "Stop paths").
//!
//! ```text
//! cargo build --release -p canopy-compare --no-default-features --bin stop_profile
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/stop_profile canopy-shutdown
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/stop_profile raw-shutdown
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/stop_profile canopy-one-for-all
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/stop_profile raw-round
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/stop_profile canopy-start-child
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/stop_profile raw-start-child
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/stop_profile canopy-ordered --children 1000
//! valgrind --tool=callgrind --toggle-collect='*measured_*' target/release/stop_profile raw-ordered --children 1000
//! ```
//!
//! `--no-default-features` builds ractor as canopy alone does (ractor-supervisor's default features
//! would switch on ractor's message span propagation for every actor). Only the measured phase runs
//! inside a `measured_*` function, on a current-thread runtime, so every task the operation wakes
//! runs on that stack; `--workers 2` asks for the 2-worker runtime instead. Children are started
//! untimed. The child and the raw parent are the harness's own ([`canopy_compare::worker`],
//! [`canopy_compare::raw_side`]). Run without valgrind, it prints the wall time of the phase.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use canopy::ractor::{ActorCell, ActorRef};
use canopy::{
    ChildSpec, DynamicRef, DynamicSpec, DynamicSupervisor, Restart, Shutdown, Strategy, Supervisor,
    SupervisorRef, SupervisorSpec,
};
use canopy_compare::raw_side::{self, Mode, ParentArgs, ParentMsg, Stop};
use canopy_compare::worker::{kill_first, ping_all, wait_up, Up, WArgs, Worker};
use canopy_compare::Policy;
use clap::{Parser, ValueEnum};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(about = "One supervisor operation of the harness, canopy or raw ractor, for callgrind")]
struct Cli {
    /// What to measure.
    #[arg(value_enum)]
    what: What,
    /// Children of the parallel or ordered shutdown.
    #[arg(long, default_value_t = 5_000)]
    children: usize,
    /// Children of the restart round.
    #[arg(long, default_value_t = 10)]
    round_children: usize,
    /// Rounds (kills of the first child) measured.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Sequential `start_child` calls (or spawn requests to the raw parent) measured.
    #[arg(long, default_value_t = 300)]
    calls: usize,
    /// Children of the storm's tree.
    #[arg(long, default_value_t = 100)]
    storm_children: usize,
    /// Children killed in one storm.
    #[arg(long, default_value_t = 30)]
    storm_kills: usize,
    /// Runtime workers: 1 is tokio's current-thread runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Print the measured phase's bounds on CLOCK_MONOTONIC to stderr, so that a
    /// `perf record -k CLOCK_MONOTONIC` profile can be cut to it (`perf report --time A,B`):
    /// perf cannot toggle collection by function as callgrind does.
    #[arg(long)]
    perf_marks: bool,
}

/// Set from `--perf-marks`.
static PERF_MARKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The measured phase begins (`what` is "start") or ends, on the clock perf can be told to use.
fn mark(what: &str) {
    if !PERF_MARKS.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    eprintln!("perf mark {what}: {}.{:09}", ts.tv_sec, ts.tv_nsec);
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    /// `DynamicRef::shutdown` of a supervisor holding `--children` children.
    CanopyShutdown,
    /// The raw parent holding as many children stops them all, then waits for all.
    RawShutdown,
    /// `--rounds` one_for_all rounds of `--round-children` children.
    CanopyOneForAll,
    /// `--rounds` rest_for_one rounds (the first child is killed: all restart).
    CanopyRestForOne,
    /// The raw parent's round: the others stopped in reverse order, then all spawned again.
    RawRound,
    /// `--calls` static `start_child` calls into a one_for_one supervisor; the specs (and their
    /// id strings) are built before the measured phase.
    CanopyStartChild,
    /// `--calls` spawn requests to the raw parent that spawns on request.
    RawStartChild,
    /// `--rounds` chaos storms: `--storm-kills` of the `--storm-children` children of a
    /// one_for_one supervisor killed back to back, until every replacement is up.
    CanopyStorm,
    /// The same storms on the raw parent, which re-spawns the child that exited.
    RawStorm,
    /// `Supervisor::shutdown` of a static one_for_one supervisor of `--children` children, each
    /// `Shutdown::Timeout(5 s)`: the ordered shutdown, one child at a time in reverse order.
    CanopyOrdered,
    /// The raw parent holding as many children stops them one at a time in reverse order
    /// (`stop_and_wait` with a 5 s bound each).
    RawOrdered,
}

#[inline(never)]
fn measured_canopy_ordered(rt: &Runtime, sup: SupervisorRef) -> Duration {
    mark("start");
    let t0 = Instant::now();
    rt.block_on(async move { sup.shutdown().await });
    let took = t0.elapsed();
    mark("end");
    took
}

#[inline(never)]
fn measured_canopy_shutdown(rt: &Runtime, sup: DynamicRef<WArgs>) -> Duration {
    mark("start");
    let t0 = Instant::now();
    rt.block_on(async move { sup.shutdown().await });
    let took = t0.elapsed();
    mark("end");
    took
}

#[inline(never)]
fn measured_raw_shutdown(rt: &Runtime, parent: ActorRef<ParentMsg>) -> Duration {
    mark("start");
    let t0 = Instant::now();
    rt.block_on(async move {
        let _ = parent.stop_and_wait(None, None).await;
    });
    let took = t0.elapsed();
    mark("end");
    took
}

#[inline(never)]
fn measured_rounds<T>(rt: &Runtime, rounds: T) -> Result<Duration, String>
where
    T: std::future::Future<Output = Result<Vec<f64>, String>>,
{
    let t0 = Instant::now();
    rt.block_on(rounds)?;
    Ok(t0.elapsed())
}

#[inline(never)]
fn measured_canopy_start_child(
    rt: &Runtime,
    sup: &SupervisorRef,
    specs: Vec<ChildSpec>,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    rt.block_on(async {
        for spec in specs {
            sup.start_child(spec).await.map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    })?;
    Ok(t0.elapsed())
}

#[inline(never)]
fn measured_raw_start_child(
    rt: &Runtime,
    parent: &ActorRef<ParentMsg>,
    calls: usize,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    rt.block_on(async {
        for _ in 0..calls {
            parent
                .call(|r| ParentMsg::Spawn(WArgs::default(), r), None)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    })?;
    Ok(t0.elapsed())
}

/// One storm: the victims killed back to back, until each has reported its replacement up.
#[inline(never)]
fn measured_storm(
    rt: &Runtime,
    rx: &mut mpsc::UnboundedReceiver<Up>,
    cells: &mut [Option<ActorCell>],
    victims: &[usize],
) -> Result<Duration, String> {
    let t0 = Instant::now();
    rt.block_on(async {
        for &i in victims {
            cells[i].as_ref().ok_or("a child is not up")?.kill();
        }
        let mut pending: HashSet<usize> = victims.iter().copied().collect();
        while !pending.is_empty() {
            let up = rx.recv().await.ok_or("every notifier dropped")?;
            if pending.remove(&up.idx) {
                cells[up.idx] = Some(up.cell);
            }
        }
        Ok::<_, String>(())
    })?;
    Ok(t0.elapsed())
}

/// `rounds` storms on a tree whose children report to `rx`, each started with every child
/// answering an ask (as the harness's storm does), victims picked as the harness's raw side does.
fn storms(
    rt: &Runtime,
    rx: &mut mpsc::UnboundedReceiver<Up>,
    n: usize,
    kills: usize,
    rounds: usize,
) -> Result<Duration, String> {
    let mut cells = vec![None; n];
    rt.block_on(wait_up(rx, &mut cells))?;
    let mut took = Duration::ZERO;
    for round in 0..rounds {
        rt.block_on(ping_all(&cells))?;
        let victims = canopy_compare::seeded_pick(n, kills, 2026 + round as u64);
        took += measured_storm(rt, rx, &mut cells, &victims)?;
    }
    Ok(took)
}

fn runtime(workers: u16) -> std::io::Result<Runtime> {
    if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(workers))
            .enable_all()
            .build()
    }
}

fn per(took: Duration, count: usize) -> f64 {
    took.as_secs_f64() * 1e6 / count.max(1) as f64
}

fn run(cli: &Cli) -> Result<String, String> {
    let rt = runtime(cli.workers).map_err(|e| e.to_string())?;
    let n = cli.children.max(1);
    let k = cli.round_children.max(1);
    let calls = cli.calls.max(1);
    match cli.what {
        What::CanopyStartChild => {
            let sup = rt
                .block_on(Supervisor::start(
                    SupervisorSpec::new(Strategy::OneForOne)
                        .restart_intensity(u32::MAX / 2, Duration::from_secs(3600)),
                ))
                .map_err(|e| e.to_string())?;
            let specs = (0..calls)
                .map(|i| {
                    ChildSpec::actor(format!("w{i}"), Worker, WArgs::default())
                        .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
                })
                .collect();
            let took = measured_canopy_start_child(&rt, &sup, specs)?;
            rt.block_on(sup.shutdown());
            Ok(format!(
                "canopy start_child: {:.2} µs per call",
                per(took, calls)
            ))
        }
        What::RawStartChild => {
            let parent = rt.block_on(raw_side::parent(ParentArgs {
                n: 0,
                mode: Mode::Keep,
                stop: Stop::Ordered(Policy::Timeout),
                notify: None,
            }))?;
            let took = measured_raw_start_child(&rt, &parent, calls)?;
            rt.block_on(async {
                let _ = parent.stop_and_wait(None, None).await;
            });
            Ok(format!(
                "raw start_child: {:.2} µs per call",
                per(took, calls)
            ))
        }
        What::CanopyShutdown => {
            let sup = rt.block_on(async {
                let template = DynamicSpec::actor(Worker).restart(Restart::Temporary);
                let sup = DynamicSupervisor::start(template)
                    .await
                    .map_err(|e| e.to_string())?;
                for _ in 0..n {
                    sup.start_child(WArgs::default())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(sup)
            })?;
            let took = measured_canopy_shutdown(&rt, sup);
            Ok(format!(
                "canopy shutdown of {n}: {:.2} µs per child",
                per(took, n)
            ))
        }
        What::RawShutdown => {
            let parent = rt.block_on(async {
                let parent = raw_side::parent(ParentArgs {
                    n: 0,
                    mode: Mode::Keep,
                    stop: Stop::Parallel,
                    notify: None,
                })
                .await?;
                for _ in 0..n {
                    parent
                        .call(|r| ParentMsg::Spawn(WArgs::default(), r), None)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(parent)
            })?;
            let took = measured_raw_shutdown(&rt, parent);
            Ok(format!(
                "raw shutdown of {n}: {:.2} µs per child",
                per(took, n)
            ))
        }
        What::CanopyOrdered => {
            let spec = SupervisorSpec::new(Strategy::OneForOne).children((0..n).map(|i| {
                ChildSpec::actor(format!("w{i}"), Worker, WArgs::default())
                    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
            }));
            let sup = rt
                .block_on(Supervisor::start(spec))
                .map_err(|e| e.to_string())?;
            let took = measured_canopy_ordered(&rt, sup);
            Ok(format!(
                "canopy ordered shutdown of {n}: {:.2} µs per child",
                per(took, n)
            ))
        }
        What::RawOrdered => {
            let parent = rt.block_on(raw_side::parent(ParentArgs {
                n,
                mode: Mode::Keep,
                stop: Stop::Ordered(Policy::Timeout),
                notify: None,
            }))?;
            let took = measured_raw_shutdown(&rt, parent);
            Ok(format!(
                "raw ordered shutdown of {n}: {:.2} µs per child",
                per(took, n)
            ))
        }
        What::CanopyOneForAll | What::CanopyRestForOne => {
            let strategy = match cli.what {
                What::CanopyOneForAll => Strategy::OneForAll,
                _ => Strategy::RestForOne,
            };
            let (tx, mut rx) = mpsc::unbounded_channel();
            let spec = SupervisorSpec::new(strategy)
                .restart_intensity(u32::MAX / 2, Duration::from_secs(3600))
                .children((0..k).map(|i| {
                    ChildSpec::actor(format!("w{i}"), Worker, WArgs::new(i, Some(tx.clone())))
                        .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
                }));
            let sup = rt
                .block_on(Supervisor::start(spec))
                .map_err(|e| e.to_string())?;
            let took = measured_rounds(
                &rt,
                kill_first(&mut rx, k, k, cli.rounds, || async {
                    sup.count_children()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
            )?;
            rt.block_on(sup.shutdown());
            Ok(format!(
                "canopy round of {k}: {:.2} µs per round",
                per(took, cli.rounds)
            ))
        }
        What::RawRound => {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let parent = rt.block_on(raw_side::parent(ParentArgs {
                n: k,
                mode: Mode::All,
                stop: Stop::Ordered(Policy::Timeout),
                notify: Some(tx),
            }))?;
            let took = measured_rounds(
                &rt,
                kill_first(&mut rx, k, k, cli.rounds, || async {
                    parent
                        .call(ParentMsg::Sync, None)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
            )?;
            rt.block_on(async {
                let _ = parent.stop_and_wait(None, None).await;
            });
            Ok(format!(
                "raw round of {k}: {:.2} µs per round",
                per(took, cli.rounds)
            ))
        }
        What::CanopyStorm => {
            let n = cli.storm_children.max(1);
            let (tx, mut rx) = mpsc::unbounded_channel();
            let spec = SupervisorSpec::new(Strategy::OneForOne)
                .restart_intensity(u32::MAX / 2, Duration::from_secs(3600))
                .children((0..n).map(|i| {
                    ChildSpec::actor(format!("w{i}"), Worker, WArgs::new(i, Some(tx.clone())))
                        .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
                }));
            let sup = rt
                .block_on(Supervisor::start(spec))
                .map_err(|e| e.to_string())?;
            let took = storms(&rt, &mut rx, n, cli.storm_kills, cli.rounds)?;
            rt.block_on(sup.shutdown());
            Ok(format!(
                "canopy storm: {:.2} µs per storm",
                per(took, cli.rounds)
            ))
        }
        What::RawStorm => {
            let n = cli.storm_children.max(1);
            let (tx, mut rx) = mpsc::unbounded_channel();
            let parent = rt.block_on(raw_side::parent(ParentArgs {
                n,
                mode: Mode::One,
                stop: Stop::Ordered(Policy::Timeout),
                notify: Some(tx),
            }))?;
            let took = storms(&rt, &mut rx, n, cli.storm_kills, cli.rounds)?;
            rt.block_on(async {
                let _ = parent.stop_and_wait(None, None).await;
            });
            Ok(format!(
                "raw storm: {:.2} µs per storm",
                per(took, cli.rounds)
            ))
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    PERF_MARKS.store(cli.perf_marks, std::sync::atomic::Ordering::Relaxed);
    match run(&cli) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stop_profile: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
