//! The workloads: what each one measures, on which sides, at which sizes, and the code that runs
//! one of them on one side in the current process.

use serde::{Deserialize, Serialize};

use crate::{canopy_side, kameo_side, raw_side, Flavor, Policy, Side};

/// One figure a workload produces: its samples from one process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The table row, e.g. `restart_one_for_one`.
    pub name: String,
    /// What one sample counts: `ns` (per operation), `us/child`, `B/child`, `ms`.
    pub unit: String,
    /// Whether the row reports a p99 over the single samples (latencies of single operations).
    pub p99: bool,
    /// The samples.
    pub samples: Vec<f64>,
}

impl Metric {
    /// A metric named `name` in `unit`.
    pub fn new(name: &str, unit: &str, p99: bool, samples: Vec<f64>) -> Metric {
        Metric {
            name: name.to_string(),
            unit: unit.to_string(),
            p99,
            samples,
        }
    }
}

/// A workload of the comparison (issue 13 §3).
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Its name, as `--only` takes it.
    pub name: &'static str,
    /// What it measures.
    pub about: &'static str,
    /// The sides that can express it.
    pub sides: &'static [Side],
    /// Run only without `--quick` (too long for the two-minute run).
    pub full_only: bool,
    /// Measured by the harness from outside (SIGTERM to exit), not inside the child process.
    pub external: bool,
}

use Side::{Canopy as C, Kameo as K, Otp as O, Ractor as R, RactorSupervisor as S};

const fn w(
    name: &'static str,
    about: &'static str,
    sides: &'static [Side],
    full_only: bool,
) -> Workload {
    Workload {
        name,
        about,
        sides,
        full_only,
        external: false,
    }
}

/// Every workload, in table order.
pub const WORKLOADS: &[Workload] = &[
    w(
        "start_child_static",
        "one start_child into a static supervisor (ns per call, up to 1,000 present)",
        &[C, R, K, O],
        false,
    ),
    w(
        "start_child_dynamic",
        "one start_child into a dynamic supervisor (ns per call)",
        &[C, R, K, S, O],
        false,
    ),
    w(
        "supervisor_start_1",
        "start a supervisor of one child, until the child is up (ns)",
        &[C, R, K, S, O],
        false,
    ),
    w(
        "restart_one_for_one",
        "kill a child until its replacement is up (ns)",
        &[C, R, K, S, O],
        false,
    ),
    w(
        "restart_one_for_all_10",
        "kill the first of 10 until all 10 are up again (ns)",
        &[C, R, K, S, O],
        false,
    ),
    w(
        "restart_rest_for_one_10",
        "kill the first of 10 until all 10 are up again (ns)",
        &[C, R, K, S, O],
        false,
    ),
    w(
        "static_1000_timeout",
        "start 1,000 static children, then stop them in reverse order (µs per child)",
        &[C, R, K, S, O],
        false,
    ),
    w(
        "static_1000_brutal_kill",
        "the same, stopped by brutal kill",
        &[C, R, S, O],
        false,
    ),
    w(
        "static_1000_infinity",
        "the same, shutdown infinity",
        &[C, R, O],
        false,
    ),
    w(
        "static_10000_timeout",
        "start 10,000 static children, then stop them in reverse order",
        &[C, R, K, S, O],
        false,
    ),
    w(
        "static_10000_brutal_kill",
        "the same, stopped by brutal kill",
        &[C, R, S, O],
        true,
    ),
    w(
        "static_10000_infinity",
        "the same, shutdown infinity",
        &[C, R, O],
        true,
    ),
    w(
        "dynamic_10000",
        "10,000 dynamic start_child, then a parallel shutdown (µs per child)",
        &[C, R, K, S, O],
        false,
    ),
    w(
        "dynamic_100000",
        "100,000 dynamic start_child, then a parallel shutdown",
        &[C, R, K, S, O],
        true,
    ),
    w(
        "ask",
        "ask round trip from inside a task (ns)",
        &[C, R, K, O],
        false,
    ),
    w(
        "tell",
        "tells round-robin over 100 actors until all are handled (ns per message)",
        &[C, R, K, O],
        false,
    ),
    w(
        "memory_static",
        "RSS per idle static child at 100,000 children (bytes)",
        &[C, R, K, O],
        false,
    ),
    w(
        "memory_dynamic",
        "RSS per idle dynamic child at 100,000 children (bytes)",
        &[C, R, K, S, O],
        false,
    ),
    Workload {
        name: "chaos_storm",
        about: "30 children of a one_for_one tree of 100 killed back to back, until all are back (ns; canopy: picked by its chaos monkey, needs --features chaos)",
        sides: &[C, R],
        full_only: false,
        external: false,
    },
    Workload {
        name: "sigterm_1000",
        about: "SIGTERM to process exit, a tree of 1,000 actors (ms)",
        sides: &[C, R, K, O],
        full_only: false,
        external: true,
    },
];

/// Why this build cannot run `workload` on `side`, if it cannot (a feature left out).
pub fn missing(workload: &str, side: Side) -> Option<&'static str> {
    if !side.built() {
        return Some("built without the ractor-supervisor feature");
    }
    if workload == "chaos_storm" && side == Side::Canopy && !cfg!(feature = "chaos") {
        return Some("canopy's side needs `--features chaos` (canopy's chaos monkey)");
    }
    None
}

/// Looks a workload up by name.
pub fn workload(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

/// The sizes of a run: full, or `--quick`.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Sequential start_child calls.
    pub start_calls: usize,
    /// Supervisors of one child started.
    pub sup_starts: usize,
    /// Kills of the one_for_one restart.
    pub kills_one: usize,
    /// Kills of the 10-children restarts.
    pub kills_ten: usize,
    /// Trees per static workload of 1,000 children.
    pub rounds_1k: usize,
    /// Trees per workload of 10,000 or more children.
    pub rounds_big: usize,
    /// Asks, in batches of 1,000.
    pub asks: usize,
    /// Tells over the 100 actors.
    pub tells: usize,
    /// Idle children held for the memory workloads.
    pub memory_children: usize,
    /// SIGTERM processes per repetition.
    pub sigterms: usize,
    /// Chaos storms per process.
    pub storms: usize,
}

impl Sizes {
    /// The sizes of a full run, or of a `--quick` one.
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                start_calls: 300,
                sup_starts: 100,
                kills_one: 400,
                kills_ten: 60,
                rounds_1k: 2,
                rounds_big: 1,
                asks: 20_000,
                tells: 200_000,
                memory_children: 20_000,
                sigterms: 1,
                storms: 5,
            }
        } else {
            Sizes {
                start_calls: 1_000,
                sup_starts: 300,
                kills_one: 2_000,
                kills_ten: 200,
                rounds_1k: 5,
                rounds_big: 2,
                asks: 100_000,
                tells: 1_000_000,
                memory_children: 100_000,
                sigterms: 3,
                storms: 20,
            }
        }
    }

    /// A tiny run for the harness's own tests.
    pub fn tiny() -> Sizes {
        Sizes {
            start_calls: 5,
            sup_starts: 3,
            kills_one: 5,
            kills_ten: 2,
            rounds_1k: 1,
            rounds_big: 1,
            asks: 2_000,
            tells: 1_000,
            memory_children: 100,
            sigterms: 1,
            storms: 1,
        }
    }
}

/// Actors of the tell workload.
pub const TELL_ACTORS: usize = 100;
/// Asks per sample of the ask workload.
pub const ASK_BATCH: usize = 1_000;
/// Children of the chaos storm's tree, and kills per storm.
pub const STORM: (usize, usize) = (100, 30);
/// Actors of the SIGTERM workload's tree.
pub const SIGTERM_CHILDREN: usize = 1_000;

/// Runs workload `name` on `side` (a Rust side) on a fresh `flavor` runtime in this process.
/// The workload's body runs in a task spawned onto the runtime, never in `block_on` from
/// outside it (which would add cross-thread wake-ups to every step on the 2-worker runtime).
pub fn run(name: &str, side: Side, flavor: Flavor, sizes: Sizes) -> Result<Vec<Metric>, String> {
    let wl = workload(name).ok_or_else(|| format!("no workload {name}"))?;
    if !wl.sides.contains(&side) || side == Side::Otp || !side.built() || wl.external {
        return Err(format!(
            "{name} does not run on {} in this process",
            side.name()
        ));
    }
    let rt = flavor.runtime().map_err(|e| e.to_string())?;
    let name = name.to_string();
    rt.block_on(async move {
        tokio::spawn(body(name, side, sizes))
            .await
            .map_err(|e| format!("the workload panicked: {e}"))?
    })
}

fn lat(name: &str, samples: Vec<f64>) -> Metric {
    Metric::new(name, "ns", true, samples)
}

fn pair(start: &str, stop: &str, (a, b): (Vec<f64>, Vec<f64>)) -> Vec<Metric> {
    vec![
        Metric::new(start, "us/child", false, a),
        Metric::new(stop, "us/child", false, b),
    ]
}

/// The resident set of this process, in bytes.
pub fn rss_bytes() -> Result<f64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm").map_err(|e| e.to_string())?;
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("unreadable /proc/self/statm")?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * page as f64)
}

async fn body(name: String, side: Side, z: Sizes) -> Result<Vec<Metric>, String> {
    use canopy::Strategy;
    let n = name.as_str();
    Ok(match (n, side) {
        ("start_child_static", C) => vec![lat(
            n,
            canopy_side::start_child_static(z.start_calls).await?,
        )],
        ("start_child_static" | "start_child_dynamic", R) => {
            vec![lat(n, raw_side::start_child(z.start_calls).await?)]
        }
        ("start_child_static" | "start_child_dynamic", K) => {
            vec![lat(n, kameo_side::start_child(z.start_calls).await?)]
        }
        ("start_child_dynamic", C) => vec![lat(
            n,
            canopy_side::start_child_dynamic(z.start_calls).await?,
        )],
        ("supervisor_start_1", C) => {
            vec![lat(n, canopy_side::supervisor_start_1(z.sup_starts).await?)]
        }
        ("supervisor_start_1", R) => {
            vec![lat(n, raw_side::supervisor_start_1(z.sup_starts).await?)]
        }
        ("supervisor_start_1", K) => {
            vec![lat(n, kameo_side::supervisor_start_1(z.sup_starts).await?)]
        }
        ("restart_one_for_one", C) => vec![lat(
            n,
            canopy_side::restart(Strategy::OneForOne, 1, z.kills_one).await?,
        )],
        ("restart_one_for_all_10", C) => vec![lat(
            n,
            canopy_side::restart(Strategy::OneForAll, 10, z.kills_ten).await?,
        )],
        ("restart_rest_for_one_10", C) => vec![lat(
            n,
            canopy_side::restart(Strategy::RestForOne, 10, z.kills_ten).await?,
        )],
        ("restart_one_for_one", R) => vec![lat(n, raw_side::restart(false, 1, z.kills_one).await?)],
        ("restart_one_for_all_10" | "restart_rest_for_one_10", R) => {
            vec![lat(n, raw_side::restart(true, 10, z.kills_ten).await?)]
        }
        ("restart_one_for_one", K) => vec![lat(n, kameo_side::restart(0, 1, z.kills_one).await?)],
        ("restart_one_for_all_10", K) => {
            vec![lat(n, kameo_side::restart(1, 10, z.kills_ten).await?)]
        }
        ("restart_rest_for_one_10", K) => {
            vec![lat(n, kameo_side::restart(2, 10, z.kills_ten).await?)]
        }
        (_, C | R | K) if n.starts_with("static_") => {
            let (size, policy) = static_params(n)?;
            let rounds = if size > 1_000 {
                z.rounds_big
            } else {
                z.rounds_1k
            };
            let start = format!("static_start_{size}");
            let stop = format!("ordered_shutdown_{size}_{}", policy.name());
            let m = match side {
                C => canopy_side::static_tree(size, policy, rounds).await?,
                R => raw_side::static_tree(size, policy, rounds).await?,
                _ => kameo_side::static_tree(size, rounds).await?,
            };
            let mut out = pair(&start, &stop, m);
            // One start figure per size: the start is the same whatever the policy.
            if policy != Policy::Timeout {
                out.remove(0);
            }
            out
        }
        (_, C | R | K) if n.starts_with("dynamic_") => {
            let size = size_of(n)?;
            let start = format!("dynamic_start_{size}");
            let stop = format!("parallel_shutdown_{size}");
            pair(
                &start,
                &stop,
                match side {
                    C => canopy_side::dynamic_tree(size, z.rounds_big).await?,
                    R => raw_side::dynamic_tree(size, z.rounds_big).await?,
                    _ => kameo_side::dynamic_tree(size, z.rounds_big).await?,
                },
            )
        }
        ("ask", C) => {
            let [direct, handle, service] = canopy_side::ask(z.asks, ASK_BATCH).await?;
            vec![
                Metric::new("ask_direct", "ns", false, direct),
                Metric::new("ask_handle", "ns", false, handle),
                Metric::new("ask_service", "ns", false, service),
            ]
        }
        ("ask", R) => {
            // Raw ractor has no handle and no generated client: its figure for those rows is the
            // plain call, measured again for each row. A generated client's call has a 5 s
            // timeout unless told otherwise (a tokio timer armed and cancelled per call), so the
            // hand-written equivalent of `ask_service` is a call with that timeout.
            let mut out = Vec::new();
            for (row, bound) in [
                ("ask_direct", None),
                ("ask_handle", None),
                ("ask_service", Some(canopy::service::DEFAULT_CALL_TIMEOUT)),
            ] {
                out.push(Metric::new(
                    row,
                    "ns",
                    false,
                    raw_side::ask(z.asks, ASK_BATCH, bound).await?,
                ));
            }
            out
        }
        ("ask", K) => vec![Metric::new(
            "ask_direct",
            "ns",
            false,
            kameo_side::ask(z.asks, ASK_BATCH).await?,
        )],
        ("tell", _) => {
            let per = match side {
                C => canopy_side::tell(z.tells, TELL_ACTORS).await?,
                R => raw_side::tell(z.tells, TELL_ACTORS).await?,
                _ => kameo_side::tell(z.tells, TELL_ACTORS).await?,
            };
            vec![Metric::new("tell_100_actors", "ns", false, vec![per])]
        }
        ("memory_static" | "memory_dynamic", _) => {
            let dynamic = n == "memory_dynamic";
            let k = z.memory_children;
            let before = rss_bytes()?;
            let per = match side {
                C => {
                    let held = canopy_side::hold(k, dynamic).await?;
                    let per = (rss_bytes()? - before) / k as f64;
                    drop(held);
                    per
                }
                R => {
                    let held = raw_side::hold(k, dynamic).await?;
                    let per = (rss_bytes()? - before) / k as f64;
                    held.kill();
                    per
                }
                K => {
                    let held = kameo_side::hold(k, dynamic).await?;
                    let per = (rss_bytes()? - before) / k as f64;
                    held.kill();
                    per
                }
                _ => rsup_memory(k).await?,
            };
            vec![Metric::new(n, "B/child", false, vec![per])]
        }
        ("chaos_storm", _) => {
            let mut samples = Vec::with_capacity(z.storms);
            let picks = match side {
                C => canopy_storm_victims(z.storms).await?,
                _ => Vec::new(),
            };
            for round in 0..z.storms {
                samples.push(match side {
                    C => canopy_storm(picks.get(round).ok_or("no victims picked")?, round).await?,
                    _ => raw_side::chaos_storm(STORM.0, STORM.1, round).await?,
                });
            }
            vec![lat(n, samples)]
        }
        (_, S) => rsup(n, z).await?,
        _ => return Err(format!("{n} has no code for {}", side.name())),
    })
}

#[cfg(feature = "ractor-supervisor")]
async fn rsup(n: &str, z: Sizes) -> Result<Vec<Metric>, String> {
    use crate::rsup_side;
    use ractor_supervisor::SupervisorStrategy as St;
    Ok(match n {
        "start_child_dynamic" => vec![lat(n, rsup_side::start_child_dynamic(z.start_calls).await?)],
        "supervisor_start_1" => vec![lat(n, rsup_side::supervisor_start_1(z.sup_starts).await?)],
        "restart_one_for_one" => vec![lat(
            n,
            rsup_side::restart(St::OneForOne, 1, z.kills_one).await?,
        )],
        "restart_one_for_all_10" => vec![lat(
            n,
            rsup_side::restart(St::OneForAll, 10, z.kills_ten).await?,
        )],
        "restart_rest_for_one_10" => vec![lat(
            n,
            rsup_side::restart(St::RestForOne, 10, z.kills_ten).await?,
        )],
        _ if n.starts_with("static_") => {
            let (size, policy) = static_params(n)?;
            let rounds = if size > 1_000 {
                z.rounds_big
            } else {
                z.rounds_1k
            };
            let (start, kill) = rsup_side::static_tree(size, rounds).await?;
            // Its only way down is a kill: that figure belongs to the brutal-kill row only.
            match policy {
                Policy::Timeout => vec![Metric::new(
                    &format!("static_start_{size}"),
                    "us/child",
                    false,
                    start,
                )],
                Policy::Brutal => vec![Metric::new(
                    &format!("ordered_shutdown_{size}_brutal_kill"),
                    "us/child",
                    false,
                    kill,
                )],
                Policy::Infinity => return Err("ractor-supervisor has no shutdown infinity".into()),
            }
        }
        _ if n.starts_with("dynamic_") => {
            let size = size_of(n)?;
            vec![Metric::new(
                &format!("dynamic_start_{size}"),
                "us/child",
                false,
                rsup_side::dynamic_start(size, z.rounds_big).await?,
            )]
        }
        _ => return Err(format!("{n} has no code for ractor-supervisor")),
    })
}

#[cfg(not(feature = "ractor-supervisor"))]
async fn rsup(n: &str, _: Sizes) -> Result<Vec<Metric>, String> {
    Err(format!("{n}: built without the ractor-supervisor feature"))
}

#[cfg(feature = "chaos")]
async fn canopy_storm_victims(storms: usize) -> Result<Vec<Vec<usize>>, String> {
    canopy_side::storm_victims(STORM.0, STORM.1, storms).await
}

#[cfg(feature = "chaos")]
async fn canopy_storm(victims: &[usize], round: usize) -> Result<f64, String> {
    canopy_side::chaos_storm(STORM.0, victims, round).await
}

#[cfg(not(feature = "chaos"))]
async fn canopy_storm_victims(_: usize) -> Result<Vec<Vec<usize>>, String> {
    Err("built without the chaos feature (cargo run -p canopy-compare --features chaos)".into())
}

#[cfg(not(feature = "chaos"))]
async fn canopy_storm(_: &[usize], _: usize) -> Result<f64, String> {
    Err("built without the chaos feature (cargo run -p canopy-compare --features chaos)".into())
}

#[cfg(feature = "ractor-supervisor")]
async fn rsup_memory(k: usize) -> Result<f64, String> {
    let before = rss_bytes()?;
    let held = crate::rsup_side::hold_dynamic(k).await?;
    let per = (rss_bytes()? - before) / k as f64;
    held.kill();
    Ok(per)
}

#[cfg(not(feature = "ractor-supervisor"))]
async fn rsup_memory(_: usize) -> Result<f64, String> {
    Err("built without the ractor-supervisor feature".into())
}

/// The size in a workload name such as `dynamic_10000`.
fn size_of(name: &str) -> Result<usize, String> {
    name.split('_')
        .find_map(|part| part.parse().ok())
        .ok_or_else(|| format!("no size in {name}"))
}

/// The size and policy in a workload name such as `static_1000_brutal_kill`.
fn static_params(name: &str) -> Result<(usize, Policy), String> {
    let size = size_of(name)?;
    let policy = [Policy::Timeout, Policy::Brutal, Policy::Infinity]
        .into_iter()
        .find(|p| name.ends_with(p.name()))
        .ok_or_else(|| format!("no shutdown policy in {name}"))?;
    Ok((size, policy))
}

/// Serves a tree of [`SIGTERM_CHILDREN`] actors on `side` until a SIGTERM stops it: prints
/// `READY` once every actor is up, returns once the tree has stopped.
pub fn serve(side: Side, flavor: Flavor) -> Result<(), String> {
    let rt = flavor.runtime().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        tokio::spawn(async move {
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                if ready_rx.await.is_ok() {
                    println!("READY");
                }
            });
            match side {
                C => canopy_side::serve_until_signal(SIGTERM_CHILDREN, ready_tx).await,
                R => raw_side::serve_until_signal(SIGTERM_CHILDREN, ready_tx).await,
                K => kameo_side::serve_until_signal(SIGTERM_CHILDREN, ready_tx).await,
                _ => Err(format!("no SIGTERM server for {}", side.name())),
            }
        })
        .await
        .map_err(|e| format!("the server panicked: {e}"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_size_and_policy() {
        assert_eq!(size_of("dynamic_100000"), Ok(100_000));
        assert_eq!(
            static_params("static_10000_brutal_kill"),
            Ok((10_000, Policy::Brutal))
        );
        assert!(static_params("static_10").is_err());
    }

    #[test]
    fn every_workload_has_raw_ractor_and_canopy() {
        for w in WORKLOADS {
            assert!(w.sides.contains(&Side::Canopy), "{}", w.name);
            assert!(w.sides.contains(&Side::Ractor), "{}", w.name);
        }
    }
}
