//! The cost of one per-child operation of a supervisor as the number of children grows: each should
//! be O(1) amortised in the children already present (`cargo bench -p canopy-benches --bench
//! per_child`; `-- --sizes 10,1000` to choose the sizes, default 10, 1,000 and 100,000).
//!
//! For each size N, a supervisor is built with N idle children (untimed), then each operation is
//! timed on its own, `--reps` times (default 200), alternating sizes round by round so that drift on
//! a shared machine spreads evenly over them. Printed: the median per operation at each size, and
//! its ratio to the smallest size; a flat row is O(1).
//!
//! | row | what is timed |
//! |---|---|
//! | `static start_child` | `start_child` of a new id, with N children present |
//! | `static which_child` | `which_child` of the child added last |
//! | `static terminate_child` | `terminate_child` of that child |
//! | `static restart_child` | `restart_child` of that child |
//! | `static delete_child` | `delete_child` of that child (terminated again, untimed) |
//! | `static child exit` | a middle child is killed → its replacement's `pre_start` (one_for_one) |
//! | `dynamic start_child` | `start_child` with N children present |
//! | `dynamic which_child` | `which_child` of the child started last |
//! | `dynamic terminate_child` | `terminate_child` of that child |
//! | `dynamic child exit` | a middle child is killed → its replacement's `pre_start` |
//! | `core …` | the same calls on the pure decision core (`canopy::core::Core<u64>`), no actors: the
//! algorithmic cost alone |

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use canopy::core::{Command, Core, Outcome};
use canopy::dynamic::{DynamicRef, DynamicSpec, DynamicSupervisor};
use canopy::ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, Shutdown, Start, Strategy, Supervisor, SupervisorRef, SupervisorSpec};
use tokio::sync::mpsc;

/// How long any single wait may take before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Worker;

impl Actor for Worker {
    type Msg = ();
    type State = ();
    type Arguments = Option<mpsc::UnboundedSender<ActorCell>>;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        notify: Self::Arguments,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(notify) = notify {
            let _ = notify.send(myself.get_cell());
        }
        Ok(())
    }
}

fn spec(id: String, notify: Option<mpsc::UnboundedSender<ActorCell>>) -> ChildSpec {
    ChildSpec::actor(id, Worker, notify).shutdown(Shutdown::BrutalKill)
}

/// The timings of one size, by row.
type Rows = BTreeMap<&'static str, Vec<Duration>>;

/// Records the time since `t` under `row`.
fn note(rows: &mut Rows, row: &'static str, t: Instant) {
    rows.entry(row).or_default().push(t.elapsed());
}

struct StaticTree {
    sup: SupervisorRef,
    ups: mpsc::UnboundedReceiver<ActorCell>,
    middle: ActorCell,
    next: usize,
}

async fn static_tree(n: usize) -> StaticTree {
    let (notify, mut ups) = mpsc::unbounded_channel();
    let children = (0..n).map(|i| spec(format!("c{i}"), Some(notify.clone())));
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .restart_intensity(u32::MAX, Duration::from_secs(1))
            .children(children),
    )
    .await
    .expect("tree starts");
    let mut middle = None;
    for i in 0..n {
        let cell = ups.recv().await.expect("child up");
        if i == n / 2 {
            middle = Some(cell);
        }
    }
    StaticTree {
        sup,
        ups,
        middle: middle.expect("a middle child"),
        next: 0,
    }
}

async fn static_round(tree: &mut StaticTree, rows: &mut Rows) {
    let id = format!("extra{}", tree.next);
    tree.next += 1;
    let sup = &tree.sup;
    let t = Instant::now();
    sup.start_child(spec(id.clone(), None))
        .await
        .expect("start_child");
    note(rows, "static start_child", t);
    let t = Instant::now();
    sup.which_child(&id).await.expect("which_child");
    note(rows, "static which_child", t);
    let t = Instant::now();
    sup.terminate_child(&id).await.expect("terminate_child");
    note(rows, "static terminate_child", t);
    let t = Instant::now();
    sup.restart_child(&id).await.expect("restart_child");
    note(rows, "static restart_child", t);
    sup.terminate_child(&id).await.expect("terminate_child");
    let t = Instant::now();
    sup.delete_child(&id).await.expect("delete_child");
    note(rows, "static delete_child", t);

    let t = Instant::now();
    tree.middle = kill_and_wait(&tree.middle, &mut tree.ups).await;
    note(rows, "static child exit", t);
}

/// Kills `child` and waits for its replacement's `pre_start`.
async fn kill_and_wait(
    child: &ActorCell,
    ups: &mut mpsc::UnboundedReceiver<ActorCell>,
) -> ActorCell {
    child.kill();
    tokio::time::timeout(STUCK, ups.recv())
        .await
        .expect("restart in time")
        .expect("child up")
}

struct DynamicTree {
    sup: DynamicRef<()>,
    ups: mpsc::UnboundedReceiver<ActorCell>,
    middle: ActorCell,
}

async fn dynamic_tree(n: usize) -> DynamicTree {
    let (notify, mut ups) = mpsc::unbounded_channel::<ActorCell>();
    let spec = DynamicSpec::new(move |sup: ActorCell, (): ()| {
        let notify = notify.clone();
        async move {
            let (actor, _) = Actor::spawn_linked(None, Worker, Some(notify), sup).await?;
            Ok(Start::from(actor))
        }
    })
    .restart_intensity(u32::MAX, Duration::from_secs(1))
    .shutdown(Shutdown::BrutalKill);
    let sup = DynamicSupervisor::start(spec).await.expect("pool starts");
    let mut middle = None;
    for i in 0..n {
        sup.start_child(()).await.expect("start_child");
        let cell = ups.recv().await.expect("child up");
        if i == n / 2 {
            middle = Some(cell);
        }
    }
    DynamicTree {
        sup,
        ups,
        middle: middle.expect("a middle child"),
    }
}

async fn dynamic_round(tree: &mut DynamicTree, rows: &mut Rows) {
    let sup = &tree.sup;
    let t = Instant::now();
    let started = sup.start_child(()).await.expect("start_child");
    note(rows, "dynamic start_child", t);
    tree.ups.recv().await.expect("child up");
    let cell = started.cell.expect("a running child");
    let t = Instant::now();
    sup.which_child(&cell).await.expect("which_child");
    note(rows, "dynamic which_child", t);
    let t = Instant::now();
    sup.terminate_child(&cell).await.expect("terminate_child");
    note(rows, "dynamic terminate_child", t);

    let t = Instant::now();
    tree.middle = kill_and_wait(&tree.middle, &mut tree.ups).await;
    note(rows, "dynamic child exit", t);
}

/// The pure core with `n` running children (pids 0..n).
fn core_tree(n: usize) -> Core<u64> {
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(u32::MAX, Duration::from_secs(1))
        .children((0..n).map(|i| ChildSpec::new(format!("c{i}"), |_| async { Ok(Start::Ignore) })));
    let mut core = Core::new(&spec).expect("valid spec");
    let mut cmd = core.init();
    let mut pid = 0;
    while let Command::Start { .. } = cmd {
        cmd = core.started(Ok(Some(pid)));
        pid += 1;
    }
    core
}

fn core_round(core: &mut Core<u64>, n: usize, round: usize, rows: &mut Rows) {
    let id = format!("extra{round}");
    let pid = (n + 2 * round) as u64;
    let new_spec = ChildSpec::new(id.clone(), |_| async { Ok(Start::Ignore) });
    let t = Instant::now();
    let Command::Start { .. } = core.start_child(new_spec) else {
        panic!("start_child starts")
    };
    let done = core.started(Ok(Some(pid)));
    note(rows, "core start_child", t);
    assert!(matches!(done, Command::Done(Outcome::Reply(Ok(_)))));
    let t = Instant::now();
    let info = core.which_child(&id);
    note(rows, "core which_child", t);
    assert!(info.is_some());
    let t = Instant::now();
    let Command::Terminate { .. } = core.terminate_child(&id) else {
        panic!("terminate_child stops")
    };
    core.terminated(Some(canopy::ExitReason::Killed));
    note(rows, "core terminate_child", t);
    let t = Instant::now();
    core.delete_child(&id).expect("delete_child");
    note(rows, "core delete_child", t);
    // A middle child exits and is restarted as a fresh pid.
    let middle = core
        .which_child(&format!("c{}", n / 2))
        .and_then(|c| c.status.pid().copied())
        .expect("the middle child runs");
    let t = Instant::now();
    let Some(Command::Start { .. }) = core.child_exited(
        &middle,
        canopy::ExitReason::Error("bench".into()),
        std::time::Instant::now(),
    ) else {
        panic!("restarted")
    };
    core.started(Ok(Some(pid + 1)));
    note(rows, "core child exit", t);
}

fn arg<T: std::str::FromStr>(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .filter(|v| v.parse::<T>().is_ok() || v.contains(','))
}

fn main() {
    let sizes: Vec<usize> = arg::<String>("--sizes")
        .map(|s| {
            s.split(',')
                .map(|n| n.trim().parse().expect("--sizes takes numbers"))
                .collect()
        })
        .unwrap_or_else(|| vec![10, 1_000, 100_000]);
    let reps: usize = arg::<usize>("--reps")
        .map(|r| r.parse().expect("--reps takes a number"))
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut by_size: Vec<Rows> = sizes.iter().map(|_| Rows::new()).collect();
    let mut cores: Vec<Core<u64>> = sizes.iter().map(|&n| core_tree(n)).collect();
    rt.block_on(async {
        tokio::spawn(async move {
            let mut statics = Vec::new();
            let mut dynamics = Vec::new();
            for &n in &sizes {
                statics.push(static_tree(n).await);
                dynamics.push(dynamic_tree(n).await);
            }
            for round in 0..reps {
                for (i, &n) in sizes.iter().enumerate() {
                    static_round(&mut statics[i], &mut by_size[i]).await;
                    dynamic_round(&mut dynamics[i], &mut by_size[i]).await;
                    core_round(&mut cores[i], n, round, &mut by_size[i]);
                }
            }
            for tree in &statics {
                tree.sup.shutdown().await;
            }
            for tree in &dynamics {
                tree.sup.shutdown().await;
            }
            print(&sizes, &mut by_size, reps);
        })
        .await
        .expect("bench task");
    });
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn print(sizes: &[usize], by_size: &mut [Rows], reps: usize) {
    println!(
        "median per operation over {reps} rounds (ratio to N = {})",
        sizes[0]
    );
    print!("{:<26}", "row");
    for n in sizes {
        print!("{:>22}", format!("N = {n}"));
    }
    println!();
    let rows: Vec<&'static str> = by_size[0].keys().copied().collect();
    for row in rows {
        print!("{row:<26}");
        let mut base = None;
        for rows in by_size.iter_mut() {
            let m = median(rows.get_mut(row).expect("every size has every row"));
            let b = *base.get_or_insert(m);
            print!(
                "{:>22}",
                format!(
                    "{:.2} µs ({:.2}x)",
                    m.as_secs_f64() * 1e6,
                    m.as_secs_f64() / b.as_secs_f64()
                )
            );
        }
        println!();
    }
}
