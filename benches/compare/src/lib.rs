//! canopy side by side with raw ractor, kameo, ractor-supervisor and Erlang/OTP.
//!
//! The `canopy-compare` binary runs every workload of [`WORKLOADS`] on every side that can
//! express it, each measurement in a fresh process (the binary re-executes itself, or starts
//! `erl`), interleaving the sides, and writes `target/bench-compare.json` and a Markdown table of
//! ratios to raw ractor. This library holds the workloads ([`measure`]) and the report
//! ([`report`]), so that the harness's own tests can run them.

pub mod canopy_side;
pub mod kameo_side;
pub mod measure;
pub mod otp;
pub mod raw_side;
pub mod report;
#[cfg(feature = "ractor-supervisor")]
pub mod rsup_side;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use measure::{Metric, Workload, WORKLOADS};

/// How long any single wait in a workload may take before the run is declared stuck.
pub const STUCK: Duration = Duration::from_secs(120);

/// What runs a workload.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// canopy, this repository.
    Canopy,
    /// Hand-written raw ractor: the baseline every ratio divides by.
    Ractor,
    /// kameo 0.22.
    Kameo,
    /// ractor-supervisor 0.2.
    RactorSupervisor,
    /// Erlang/OTP, the modules under `benches/otp/`.
    Otp,
}

impl Side {
    /// Every side, in table order.
    pub const ALL: [Side; 5] = [
        Side::Canopy,
        Side::Ractor,
        Side::Kameo,
        Side::RactorSupervisor,
        Side::Otp,
    ];

    /// The name used on the command line, in the JSON and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Side::Canopy => "canopy",
            Side::Ractor => "ractor",
            Side::Kameo => "kameo",
            Side::RactorSupervisor => "ractor-supervisor",
            Side::Otp => "otp",
        }
    }

    /// Whether this build can run the side at all (ractor-supervisor is an optional feature).
    pub fn built(self) -> bool {
        self != Side::RactorSupervisor || cfg!(feature = "ractor-supervisor")
    }
}

/// The runtime a workload runs on.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
pub enum Flavor {
    /// A tokio current-thread runtime; Erlang with one scheduler (`+S 1:1`).
    #[value(name = "1t")]
    #[serde(rename = "1t")]
    CurrentThread,
    /// A tokio multi-thread runtime with 2 workers; Erlang with two schedulers (`+S 2:2`).
    #[value(name = "2t")]
    #[serde(rename = "2t")]
    TwoWorkers,
}

impl Flavor {
    /// Both runtimes.
    pub const ALL: [Flavor; 2] = [Flavor::CurrentThread, Flavor::TwoWorkers];

    /// `1t` or `2t`.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::CurrentThread => "1t",
            Flavor::TwoWorkers => "2t",
        }
    }

    /// A tokio runtime of this flavor.
    pub fn runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Flavor::TwoWorkers => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
        }
    }
}

/// How a tree's children are stopped in the static shutdown workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Ask to stop, kill after 5 s (OTP's `Shutdown = 5000`).
    Timeout,
    /// Kill at once (OTP's `brutal_kill`).
    Brutal,
    /// Ask to stop and wait as long as it takes (OTP's `infinity`).
    Infinity,
}

impl Policy {
    /// The name in workload and metric names.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Timeout => "timeout",
            Policy::Brutal => "brutal_kill",
            Policy::Infinity => "infinity",
        }
    }
}

/// Nanoseconds since `t0`.
pub fn ns(t0: Instant) -> f64 {
    t0.elapsed().as_nanos() as f64
}

/// `d` spread over `n` children, in microseconds per child.
pub fn per_child(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64 / 1e3
}

/// The barrier of the tell workload: a semaphore holding one permit per message. Each message
/// carries a permit and its handler drops it, so all permits are back exactly when every message
/// has been handled, whatever order they were handled in.
pub fn permits(total: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(total))
}

/// One permit to send along with a message.
pub fn permit(sem: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    // The semaphore holds one permit per message and the caller takes at most that many.
    match sem.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => unreachable!("more messages than permits"),
    }
}

/// Waits until every one of the `total` permits has come back.
pub async fn all_handled(sem: &Arc<Semaphore>, total: usize) -> Result<(), String> {
    let n = u32::try_from(total).map_err(|_| "too many messages for one barrier".to_string())?;
    let permits = tokio::time::timeout(STUCK, sem.acquire_many(n))
        .await
        .map_err(|_| "messages were not all handled in time".to_string())?
        .map_err(|e| e.to_string())?;
    drop(permits);
    Ok(())
}

/// `k` distinct indices below `n`, a seeded (xorshift) partial shuffle: the same seed, the same
/// victims.
pub fn seeded_pick(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    let k = k.min(n);
    for i in 0..k {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = i + (x % (n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(k);
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeded_pick_is_distinct_and_repeatable() {
        let a = super::seeded_pick(100, 30, 7);
        let mut d = a.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 30);
        assert!(a.iter().all(|&i| i < 100));
        assert_eq!(a, super::seeded_pick(100, 30, 7));
        assert_ne!(a, super::seeded_pick(100, 30, 8));
        assert_eq!(super::seeded_pick(3, 10, 1).len(), 3);
    }
}
