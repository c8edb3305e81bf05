//! # canopy: OTP-style supervision trees for Rust
//!
//! canopy puts [ractor] actors into supervision trees that behave the way Erlang/OTP's `supervisor`
//! does: children start one at a time in order, a child that dies is restarted according to its
//! restart type and its supervisor's strategy, a crash loop spends a restart budget and escalates to
//! the supervisor above, and a tree is stopped from the root down, each supervisor stopping its
//! children one after another in reverse start order, each within its own shutdown policy.
//!
//! ## A first tree
//!
//! ```
//! use std::time::Duration;
//! use canopy::{ChildSpec, Restart, Shutdown, Strategy, Supervisor, SupervisorSpec};
//! use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
//!
//! #[derive(Clone)]
//! struct Worker;
//!
//! impl Actor for Worker {
//!     type Msg = ();
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _me: ActorRef<()>, _args: ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tree = SupervisorSpec::new(Strategy::OneForOne)
//!     .restart_intensity(3, Duration::from_secs(5))
//!     .child(ChildSpec::actor("db", Worker, ()))
//!     .child(ChildSpec::supervisor(
//!         "web",
//!         SupervisorSpec::new(Strategy::RestForOne)
//!             .child(ChildSpec::actor("listener", Worker, ()))
//!             .child(ChildSpec::actor("sessions", Worker, ()).restart(Restart::Transient)),
//!     ))
//!     .child(ChildSpec::actor("metrics", Worker, ()).shutdown(Shutdown::BrutalKill));
//!
//! // Returns once db, web (with listener and sessions) and metrics have all run their pre_start.
//! let root = Supervisor::start(tree).await?;
//! assert_eq!(root.count_children().await?.active, 3);
//!
//! // Stops metrics, then web (sessions, then listener), then db.
//! root.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## The pieces
//!
//! - [`spec`]: [`ChildSpec`] and [`SupervisorSpec`], their defaults and their validation.
//! - [`exit`]: [`ExitReason`], the typed exit reason, and how it classifies (normal or not).
//! - [`intensity`]: the restart window (an exact sliding window, not OTP's whole seconds).
//! - [`core`]: every supervision decision as a pure state machine, with no runtime.
//! - [`supervisor`]: static supervisors ([`Supervisor`](struct@Supervisor), [`SupervisorRef`], the child management
//!   API). Static and dynamic supervisors run in one actor shell that carries out their core's
//!   decisions and records every child's real exit reason; what the two kinds of reference share is
//!   [`AnySupervisorRef`].
//! - [`dynamic`]: dynamic supervisors ([`DynamicSupervisor`], [`DynamicRef`]): children started on
//!   demand from a [`DynamicSpec`] template with arguments of their own, stopped in parallel, with
//!   an optional restart [`backoff`]; their decisions in the pure [`dynamic::core`].
//! - [`partition`]: [`PartitionSupervisor`], N dynamic supervisors with children routed by key.
//! - [`backoff`]: exponential restart delays with jitter, for static and dynamic supervisors.
//! - [`handle`]: [`ChildHandle`](handle::ChildHandle), a typed reference that follows a child
//!   across restarts and waits (bounded) while it restarts.
//! - [`app`]: the process lifecycle: signals, readiness, drain delay, ordered teardown within a
//!   global deadline, final hooks and exit statuses; [`health`]: liveness, readiness and the
//!   shutdown token.
//! - [`introspect`]: the live tree, read without a message round trip; [`snapshot`]: the tree as
//!   stable, versioned wire types (serde), and a `pstree`-like rendering.
//! - `metrics` (feature `metrics`): the tree as Prometheus metrics in your own registry;
//!   `observer` (feature `observer`): an HTTP observer with probes, `/metrics`, `/tree`, live
//!   `/events` and a browser page, whose final export outlives the tree.
//! - `chaos` (feature `chaos`): a chaos monkey that acts on a running tree at random (seeded, with
//!   target and protected paths, an intensity limit, dry runs); [`fault`]: named fault points
//!   (`fault_point!("name")`) configured at run time, nothing at all without the feature. Guide:
//!   `docs/chaos.md`.
//! - [`service`](mod@service): actors written as plain methods ([`#[service]`](macro@service)) with typed
//!   clients, child-spec defaults on a type ([`#[derive(Child)]`](derive@Child)) and supervisors
//!   declared as structs ([`#[derive(Supervisor)]`](derive@Supervisor)).
//!
//! ## Where canopy differs from OTP on purpose
//!
//! - The restart window is exact on the monotonic clock; defaults are Elixir's 3 restarts in 5 s.
//! - A supervisor that reaches its restart intensity exits with
//!   `ShutdownWith("reached_max_restart_intensity")`, which every rule treats exactly like OTP's
//!   `shutdown` while telling the two causes apart in logs.
//! - `Shutdown::Drain(d)` lets a child handle what is already in its mailbox before it stops.
//! - Any supervisor can delay restarts with an exponential [`backoff`]. A delayed restart counts
//!   against the restart intensity when it is scheduled, and a child restarted more than
//!   [`Backoff::max_retries`](backoff::Backoff::max_retries) times in a row (10 by default) without
//!   staying up counts as past the intensity, so a crash loop escalates even when its delays
//!   outgrow the intensity period.
//! - What a supervisor records, logs and reports for a child it stopped is the reason the child
//!   really exited with (a failing `post_stop`, a panic while draining), not the one it asked for.
//! - One global deadline bounds the whole stop of an [`app::App`]; SIGINT is graceful like SIGTERM
//!   and a second signal kills what is left.
//! - Reports (`child_terminated`, `start_error`, `shutdown_error`, `reached_max_restart_intensity`)
//!   are `tracing` events under the `canopy::supervisor` target, emitted after the restart they
//!   describe is done.

//! ## The public surface
//!
//! At the crate root: [`Supervisor`](struct@Supervisor), [`SupervisorRef`], [`DynamicSupervisor`], [`DynamicRef`],
//! [`PartitionSupervisor`], [`PartitionRef`] and [`AnySupervisorRef`] (what every supervisor
//! reference has); the specs [`ChildSpec`], [`SupervisorSpec`], [`DynamicSpec`] with [`Restart`],
//! [`Shutdown`], [`ChildKind`], [`Strategy`], [`AutoShutdown`], [`Start`] and [`StartInfo`]; what
//! the API answers and fails with: [`ChildInfo`], [`ChildStatus`], [`ChildCounts`],
//! [`StartedChild`], [`ChildError`], [`StartError`], [`SpecError`]; [`ExitReason`] and
//! [`StopWith`]; and [`ractor`], re-exported so that your code names the ractor canopy runs on.
//! Modules: [`app`] and [`health`] (the process lifecycle), [`handle`], [`backoff`],
//! [`introspect`], [`intensity`], [`exit`], [`spec`], [`dynamic`], [`partition`], and the pure
//! decision cores [`core`] and [`dynamic::core`] for those who test or model-check against them.
//!
//! [`Supervisor`]: struct@Supervisor
//! [`service`]: mod@service

#![warn(missing_docs)]

pub mod app;
pub mod backoff;
#[cfg(feature = "chaos")]
pub mod chaos;
#[cfg(feature = "cli")]
pub mod cli;
pub mod core;
pub mod dynamic;
pub mod exit;
pub mod fault;
pub mod handle;
pub mod health;
pub mod intensity;
pub mod introspect;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "observer")]
pub mod observer;
pub mod partition;
mod pid_hash;
pub mod service;
mod shell;
mod shutdown;
pub mod snapshot;
pub mod spec;
pub mod supervisor;

pub use crate::core::ChildCounts;
pub use crate::core::ChildStatus;
pub use crate::core::{ChildError, ChildInfo};
pub use crate::dynamic::{DynamicRef, DynamicSpec, DynamicSupervisor};
pub use crate::exit::{ExitReason, StopWith};
pub use crate::partition::{PartitionRef, PartitionSupervisor};
pub use crate::service::{Child, Dynamic};
pub use crate::shell::{AnySupervisorRef, StartError, StartedChild};
pub use crate::spec::{
    check_child_specs, AutoShutdown, BoxError, ChildKind, ChildSpec, Restart, Shutdown, SpecError,
    Start, StartInfo, Strategy, SupervisorSpec,
};
pub use crate::supervisor::{Supervisor, SupervisorRef};
pub use canopy_macros::{service, Child, Supervisor};

/// The instant `d` from now on tokio's clock. A `d` too long to add to the clock (`Duration::MAX`
/// means "no bound" everywhere canopy takes a duration) gives an instant decades away, which no
/// timer reaches.
pub(crate) fn deadline_in(d: std::time::Duration) -> tokio::time::Instant {
    const FAR: std::time::Duration = std::time::Duration::from_secs(30 * 365 * 24 * 3600);
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now.checked_add(FAR).unwrap_or(now))
}

/// The ractor canopy is built on, so that a user's code names the same version canopy uses.
pub use ractor;

/// The Rust snippets of the guides under `docs/`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/kubernetes.md")]
pub struct KubernetesGuideDoctests;

/// The Rust snippets of the chaos guide, compiled and run as doc tests (they need the feature).
#[cfg(all(doctest, feature = "chaos"))]
#[doc = include_str!("../docs/chaos.md")]
pub struct ChaosGuideDoctests;

/// The Rust snippets of the README, compiled and run as doc tests. Some need the optional
/// features, so they run with `cargo test --all-features` (the README's test command).
#[cfg(all(doctest, feature = "observer", feature = "cli"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
