//! What a generated service's counters and its entry in the service registry cost a restart
//! (`cargo bench -p canopy-benches --bench restart_counters`, under a minute).
//!
//! One supervisor, two children that do the same thing in their start (report the time on a
//! channel): `plain`, a hand-written ractor actor, which has no counters and no registry entry, and
//! `service`, the same start written with `#[canopy::service]`, whose every incarnation allocates
//! its counters, registers them by actor id and unregisters them when it stops. The two take turns,
//! round by round: kill one, wait for its replacement's start (T0 just before the kill, T1 taken in
//! the start), then a round trip to the supervisor so that the next kill finds it idle. The median
//! of each and the median of the per-round ratios are printed.
//!
//! What it cannot switch off: the tree registry a supervisor registers in when it starts (a worker
//! restart does not touch it) and the times and counts the supervisor's core keeps per child
//! (kept by both children alike). `CANOPY_BENCH_ROUNDS` sets the number of rounds (default 2,000);
//! `CANOPY_BENCH_ONLY=plain|service` restarts only one of them, for instruction counts under
//! callgrind (the other child still starts once).

use std::time::{Duration, Instant};

use canopy::ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, Supervisor, SupervisorSpec};
use tokio::sync::mpsc;

const STUCK: Duration = Duration::from_secs(30);

type Notify = mpsc::UnboundedSender<(usize, ActorCell, Instant)>;

#[derive(Clone)]
struct Plain;

impl Actor for Plain {
    type Msg = ();
    type State = ();
    type Arguments = Notify;
    async fn pre_start(&self, me: ActorRef<()>, up: Notify) -> Result<(), ActorProcessingErr> {
        let _ = up.send((0, me.get_cell(), Instant::now()));
        Ok(())
    }
}

struct Counted;

#[canopy::service]
impl Counted {
    fn init(up: Notify, ctx: &canopy::service::Ctx<Self>) -> Self {
        let _ = up.send((1, ctx.cell(), Instant::now()));
        Counted
    }
}

fn main() {
    let rounds: usize = std::env::var("CANOPY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let only = std::env::var("CANOPY_BENCH_ONLY").ok();
    let which: Vec<usize> = match only.as_deref() {
        Some("plain") => vec![0],
        Some("service") => vec![1],
        _ => vec![0, 1],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let latencies = rt.block_on(async move {
        tokio::spawn(async move {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let sup = Supervisor::start(
                SupervisorSpec::default()
                    .restart_intensity(u32::MAX / 2, Duration::from_secs(3600))
                    .child(ChildSpec::actor("plain", Plain, tx.clone()))
                    .child(Counted::child_spec("service", tx)),
            )
            .await
            .expect("starts");
            let mut cells: Vec<Option<ActorCell>> = vec![None, None];
            for _ in 0..2 {
                let (i, cell, _) = rx.recv().await.expect("up");
                cells[i] = Some(cell);
            }
            let mut latencies = vec![Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
            for round in 0..rounds {
                for k in 0..which.len() {
                    let i = which[(round + k) % which.len()];
                    let victim = cells[i].take().expect("up");
                    let t0 = Instant::now();
                    victim.kill();
                    let (j, cell, t1) = tokio::time::timeout(STUCK, rx.recv())
                        .await
                        .expect("restarted in time")
                        .expect("up");
                    assert_eq!(i, j, "only the killed child restarts");
                    cells[i] = Some(cell);
                    latencies[i].push(t1.saturating_duration_since(t0).as_nanos() as f64);
                    sup.count_children().await.expect("supervisor is up");
                }
            }
            sup.shutdown().await;
            latencies
        })
        .await
        .expect("bench task")
    });
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!("restart latency, kill to the replacement's start ({rounds} rounds, alternating):");
    for (name, v) in ["plain", "service"].iter().zip(&latencies) {
        if !v.is_empty() {
            println!("  {name:<8} median {:>9.1} µs", median(v) / 1000.0);
        }
    }
    if latencies.iter().all(|v| !v.is_empty()) {
        let ratios: Vec<f64> = latencies[1]
            .iter()
            .zip(&latencies[0])
            .map(|(s, p)| s / p)
            .collect();
        println!(
            "  service / plain, median of per-round ratios: {:.3}x",
            median(&ratios)
        );
    }
}
