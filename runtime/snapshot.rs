//! A snapshot of the live tree: stable, versioned wire types for tools (the observer, the CLI,
//! your own), taken without sending a message to any actor.
//!
//! [`tree`] snapshots every top-level supervisor; [`at`] the subtree at a path. Each node carries
//! what its supervisor's state says of it (status, restarts, last exit and when), its shutdown
//! policy, for a supervisor its strategy and restart budget in use, and for a generated service its
//! message counters. The types here are the wire format: serde-serialisable, separate from the
//! internal ones, versioned by [`SCHEMA_VERSION`]. Fields may be added in a minor version; a field
//! is never renamed, removed or given another meaning without a new schema version.
//!
//! Reading is a few lock acquisitions per supervisor, each held for the instant of a copy: a
//! supervisor that is busy (a long restart, a slow child's stop) or stuck is still read.
//!
//! There is no mailbox length: ractor exposes none, so an actor's backlog cannot be read without
//! asking the actor. `in_flight` is what can be had instead: for a generated service, 1 while it
//! handles a message.
//!
//! ```
//! use canopy::{snapshot, ChildSpec, Start, Supervisor, SupervisorSpec};
//! # #[tokio::main] async fn main() {
//! let sup = Supervisor::start(
//!     SupervisorSpec::default()
//!         .name("snap-doc")
//!         .child(ChildSpec::new("idle", |_sup| async { Ok(Start::Ignore) })),
//! )
//! .await
//! .unwrap();
//! let node = snapshot::at("/snap-doc").expect("running");
//! assert_eq!(node.children[0].path, "/snap-doc/idle");
//! assert_eq!(node.children[0].status, snapshot::Status::Stopped);
//! println!("{node}"); // a pstree-like rendering
//! let json = serde_json::to_string(&snapshot::tree()).unwrap();
//! assert!(json.contains("\"schema_version\":1"));
//! sup.shutdown().await;
//! # }
//! ```

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractor::{ActorCell, ActorId, ActorStatus};
use serde::{Deserialize, Serialize};

use crate::core::{ChildInfo, ChildStatus, ChildView};
use crate::exit::ExitReason;
use crate::introspect::{self, Node};
use crate::spec::{ChildKind, Restart, Shutdown, Strategy};

/// The version of the snapshot schema. A change that removes, renames or re-means a field bumps it.
pub const SCHEMA_VERSION: u32 = 1;

/// Every top-level supervisor and its tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeSnapshot {
    /// [`SCHEMA_VERSION`] of the producer.
    pub schema_version: u32,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub taken_at_ms: u64,
    /// The top-level supervisors, by path.
    pub roots: Vec<NodeSnapshot>,
}

/// One node: a supervisor or a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// Its path, e.g. `/app/web/listener`.
    pub path: String,
    /// Its id under its supervisor (a top-level supervisor's name).
    pub id: String,
    /// Worker or supervisor.
    pub kind: Kind,
    /// Its restart type; `None` for a top-level supervisor, which nobody restarts.
    pub restart: Option<RestartType>,
    /// How its supervisor stops it; `None` for a top-level supervisor.
    pub shutdown: Option<ShutdownPolicy>,
    /// Whether its exit can shut its supervisor down.
    pub significant: bool,
    /// Where it stands.
    pub status: Status,
    /// The actor id of the running incarnation, as ractor prints it (`0.42`).
    pub actor_id: Option<String>,
    /// When the running incarnation started, in milliseconds since the Unix epoch.
    pub started_at_ms: Option<u64>,
    /// How long the running incarnation has been up, in milliseconds.
    pub uptime_ms: Option<u64>,
    /// How many times its supervisor restarted it.
    pub restarts: u32,
    /// Its last exit, if it has exited.
    pub last_exit: Option<LastExit>,
    /// For a supervisor: its strategy and restart budget.
    pub supervisor: Option<SupervisorSnapshot>,
    /// For a generated service: its message counters.
    pub service: Option<ServiceSnapshot>,
    /// Messages being handled now, where that can be known (see the [module docs](self)).
    pub in_flight: Option<u64>,
    /// Its children, in start order (a worker has none).
    pub children: Vec<NodeSnapshot>,
}

/// Worker or supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A worker.
    Worker,
    /// A supervisor.
    Supervisor,
}

/// A restart type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always restarted.
    Permanent,
    /// Restarted after an abnormal exit.
    Transient,
    /// Never restarted.
    Temporary,
}

/// A shutdown policy; durations in milliseconds, `None` for no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum ShutdownPolicy {
    /// Killed at once.
    BrutalKill,
    /// Asked to stop, killed after `ms`.
    Timeout {
        /// The grace, in milliseconds (saturated).
        ms: u64,
    },
    /// Asked to stop, waited for.
    Infinity,
    /// Its queued messages handled first, killed after `ms`.
    Drain {
        /// The grace, in milliseconds (saturated).
        ms: u64,
    },
}

/// Where a node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    /// Its start function is running.
    Starting,
    /// Running.
    Running,
    /// Waiting to be started again: after a failed restart, or until a backed-off restart is due.
    Restarting {
        /// When the backed-off restart is due, in milliseconds since the Unix epoch.
        next_attempt_ms: Option<u64>,
    },
    /// Being stopped.
    Stopping,
    /// Not running (it ignored its start, exited for good, or was terminated through the API).
    Stopped,
}

/// A node's last exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    /// The reason, as canopy prints it (`shutdown`, `killed`, `error: …`).
    pub reason: String,
    /// Its class: `normal`, `shutdown`, `killed` or `error`.
    pub class: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: Option<u64>,
}

/// A supervisor's settings and restart budget in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorSnapshot {
    /// `one_for_one`, `one_for_all`, `rest_for_one`, or `dynamic`.
    pub strategy: String,
    /// Restarts allowed per period.
    pub intensity: u32,
    /// The period, in milliseconds (saturated).
    pub period_ms: u64,
    /// Restarts counted in the current window.
    pub restarts_in_window: u64,
}

/// A generated service's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    /// The service's type name.
    pub service: String,
    /// Messages handled by the running incarnation.
    pub messages_handled: u64,
    /// How long the message being handled now has been, in milliseconds; `None` while idle.
    pub current_handler_ms: Option<u64>,
}

/// Every top-level supervisor and its tree, now.
///
/// ```
/// let snap = canopy::snapshot::tree();
/// assert_eq!(snap.schema_version, canopy::snapshot::SCHEMA_VERSION);
/// ```
pub fn tree() -> TreeSnapshot {
    let clock = Clock::now();
    let mut roots: Vec<NodeSnapshot> = introspect::top_level()
        .into_iter()
        .map(|node| supervisor_node(&node, None, &clock))
        .collect();
    roots.sort_by(|a, b| a.path.cmp(&b.path));
    TreeSnapshot {
        schema_version: SCHEMA_VERSION,
        taken_at_ms: clock.unix_ms(clock.instant),
        roots,
    }
}

/// The subtree at `path` (a supervisor's or a worker's), now; `None` if nothing runs or is known
/// there.
///
/// ```
/// assert!(canopy::snapshot::at("/no/such/path").is_none());
/// ```
pub fn at(path: &str) -> Option<NodeSnapshot> {
    let clock = Clock::now();
    if let Some(node) = introspect::node_at(path) {
        let info = parent_info(path);
        return Some(supervisor_node(&node, info.as_ref(), &clock));
    }
    // A worker, or a supervisor that is not running: its supervisor's entry.
    let (parent, id) = path.rsplit_once('/')?;
    let node = introspect::node_at(parent)?;
    let info = node.children.child(id)?;
    Some(child_node(parent, info, &clock))
}

/// The entry of the supervisor at `path` in its own supervisor, if it has one.
fn parent_info(path: &str) -> Option<ChildInfo> {
    let (parent, id) = path.rsplit_once('/')?;
    introspect::node_at(parent)?.children.child(id)
}

fn supervisor_node(node: &Node, entry: Option<&ChildInfo>, clock: &Clock) -> NodeSnapshot {
    let mut snap = match entry {
        Some(info) => child_fields(node.path.clone(), &view_of(info), clock),
        None => NodeSnapshot {
            path: node.path.clone(),
            id: node
                .path
                .rsplit_once('/')
                .map_or(node.path.as_str(), |(_, id)| id)
                .to_string(),
            kind: Kind::Supervisor,
            restart: None,
            shutdown: None,
            significant: false,
            status: cell_status(&node.cell, Status::Running),
            actor_id: Some(actor_id(node.cell.get_id())),
            started_at_ms: None,
            uptime_ms: None,
            restarts: 0,
            last_exit: None,
            supervisor: None,
            service: None,
            in_flight: None,
            children: Vec::new(),
        },
    };
    fill_supervisor(node, &mut snap, clock);
    snap
}

/// A supervisor's budget and children, into its own node `snap`.
fn fill_supervisor(node: &Node, snap: &mut NodeSnapshot, clock: &Clock) {
    let budget = node.children.budget(clock.instant);
    snap.supervisor = Some(SupervisorSnapshot {
        strategy: match budget.strategy {
            Some(Strategy::OneForOne) => "one_for_one",
            Some(Strategy::OneForAll) => "one_for_all",
            Some(Strategy::RestForOne) => "rest_for_one",
            None => "dynamic",
        }
        .to_string(),
        intensity: budget.intensity,
        period_ms: millis(budget.period),
        restarts_in_window: budget.restarts_in_window as u64,
    });
    // The children are written straight from the supervisor's state, under its lock, in start
    // order; the running supervisors among them are read after that lock is released, so that
    // each lock is held for its own children only.
    let children = &mut snap.children;
    let mut below: Vec<(usize, ActorId)> = Vec::new();
    node.children.visit(&mut |count, child| {
        children.reserve(count.saturating_sub(children.len()));
        if let (ChildKind::Supervisor, ChildStatus::Running(cell)) = (child.kind, &child.status) {
            below.push((children.len(), cell.get_id()));
        }
        children.push(child_fields(child_path(&node.path, child.id), child, clock));
    });
    for (at, id) in below {
        if let Some(sub) = introspect::node(&id) {
            let snap = &mut children[at];
            if snap.path != sub.path {
                snap.path.clone_from(&sub.path);
            }
            fill_supervisor(&sub, snap, clock);
        }
    }
}

/// A child, descending into it if it is a running supervisor.
fn child_node(parent: &str, info: ChildInfo, clock: &Clock) -> NodeSnapshot {
    if info.kind == ChildKind::Supervisor {
        if let ChildStatus::Running(cell) = &info.status {
            if let Some(node) = introspect::node(&cell.get_id()) {
                return supervisor_node(&node, Some(&info), clock);
            }
        }
    }
    child_fields(child_path(parent, &info.id), &view_of(&info), clock)
}

/// `parent/id`, without the formatting machinery: a snapshot builds one per node.
fn child_path(parent: &str, id: &str) -> String {
    let mut path = String::with_capacity(parent.len() + 1 + id.len());
    path.push_str(parent);
    path.push('/');
    path.push_str(id);
    path
}

/// An actor id as ractor prints it (`0.42`, `node.pid`), without the formatting machinery: a
/// snapshot writes one per running node.
fn actor_id(id: ActorId) -> String {
    let (node, pid) = match id {
        ActorId::Local(pid) => (0, pid),
        ActorId::Remote { node_id, pid } => (node_id, pid),
    };
    let mut text = String::with_capacity(24);
    push_decimal(&mut text, node);
    text.push('.');
    push_decimal(&mut text, pid);
    text
}

fn push_decimal(text: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        text.push(char::from(d));
    }
}

/// A copied-out entry, lent the way the supervisor's state lends its children.
fn view_of(info: &ChildInfo) -> ChildView<'_> {
    ChildView {
        id: &info.id,
        status: match &info.status {
            ChildStatus::Running(cell) => ChildStatus::Running(cell),
            ChildStatus::Restarting => ChildStatus::Restarting,
            ChildStatus::Stopped => ChildStatus::Stopped,
        },
        kind: info.kind,
        restart: info.restart,
        restarts: info.restarts,
        last_exit: info.last_exit.as_ref(),
        next_attempt: info.next_attempt,
        shutdown: info.shutdown,
        significant: info.significant,
        started_at: info.started_at,
        last_exit_at: info.last_exit_at,
        starting: info.starting,
    }
}

fn child_fields(path: String, info: &ChildView<'_>, clock: &Clock) -> NodeSnapshot {
    let (status, actor_id, service) = match &info.status {
        ChildStatus::Running(cell) => (
            cell_status(cell, Status::Running),
            Some(actor_id(cell.get_id())),
            crate::service::stats(cell).map(|s| ServiceSnapshot {
                service: s.service.to_string(),
                messages_handled: s.handled,
                current_handler_ms: s.current.map(millis),
            }),
        ),
        ChildStatus::Restarting if info.starting => (Status::Starting, None, None),
        ChildStatus::Restarting => (
            Status::Restarting {
                next_attempt_ms: info.next_attempt.map(|at| clock.unix_ms(at)),
            },
            None,
            None,
        ),
        ChildStatus::Stopped if info.starting => (Status::Starting, None, None),
        ChildStatus::Stopped => (Status::Stopped, None, None),
    };
    let in_flight = service
        .as_ref()
        .map(|s| u64::from(s.current_handler_ms.is_some()));
    NodeSnapshot {
        path,
        id: info.id.to_string(),
        kind: match info.kind {
            ChildKind::Worker => Kind::Worker,
            ChildKind::Supervisor => Kind::Supervisor,
        },
        restart: Some(match info.restart {
            Restart::Permanent => RestartType::Permanent,
            Restart::Transient => RestartType::Transient,
            Restart::Temporary => RestartType::Temporary,
        }),
        shutdown: Some(match info.shutdown {
            Shutdown::BrutalKill => ShutdownPolicy::BrutalKill,
            Shutdown::Timeout(d) => ShutdownPolicy::Timeout { ms: millis(d) },
            Shutdown::Infinity => ShutdownPolicy::Infinity,
            Shutdown::Drain(d) => ShutdownPolicy::Drain { ms: millis(d) },
        }),
        significant: info.significant,
        status,
        actor_id,
        started_at_ms: info.started_at.map(|at| clock.unix_ms(at)),
        uptime_ms: info
            .started_at
            .map(|at| millis(clock.instant.saturating_duration_since(at))),
        restarts: info.restarts,
        last_exit: info.last_exit.map(|reason| LastExit {
            reason: reason.to_string(),
            class: match reason {
                ExitReason::Normal => "normal",
                ExitReason::Shutdown | ExitReason::ShutdownWith(_) => "shutdown",
                ExitReason::Killed => "killed",
                ExitReason::Error(_) => "error",
            }
            .to_string(),
            at_ms: info.last_exit_at.map(|at| clock.unix_ms(at)),
        }),
        supervisor: None,
        service,
        in_flight,
        children: Vec::new(),
    }
}

/// A running actor that is already on its way out shows as stopping. One its supervisor counts as
/// started is running, even in the instant before ractor marks it so (after its `post_start`).
fn cell_status(cell: &ActorCell, running: Status) -> Status {
    match cell.get_status() {
        ActorStatus::Draining | ActorStatus::Stopping | ActorStatus::Stopped => Status::Stopping,
        _ => running,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One reading of both clocks, so that every instant of a snapshot converts to wall time the
/// same way. The cores keep tokio's clock, which a paused test clock moves.
struct Clock {
    instant: Instant,
    /// The wall clock at `instant`, in nanoseconds since the Unix epoch (0 before it).
    unix_nanos: u128,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            instant: tokio::time::Instant::now().into_std(),
            unix_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        }
    }

    /// `at` on the wall clock, in whole milliseconds since the Unix epoch (0 before it); in
    /// integers rather than `SystemTime` arithmetic, which a snapshot would do twice per node.
    fn unix_ms(&self, at: Instant) -> u64 {
        let nanos = if at <= self.instant {
            self.unix_nanos
                .saturating_sub(self.instant.duration_since(at).as_nanos())
        } else {
            self.unix_nanos
                .saturating_add(at.duration_since(self.instant).as_nanos())
        };
        u64::try_from(nanos / 1_000_000).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for TreeSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for root in &self.roots {
            root.fmt(f)?;
        }
        Ok(())
    }
}

/// A `pstree`-like rendering: one line per node, its status, restarts and last exit.
///
/// ```text
/// /app [one_for_one 0/3 in 5000ms] running
/// ├─ db running 0.12 up 3412ms
/// └─ web [rest_for_one 1/3 in 5000ms] running 0.13
///    ├─ listener restarting restarts=1 last=error: boom
///    └─ sessions running 0.15
/// ```
impl fmt::Display for NodeSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render(self, f, "", "", true)
    }
}

fn render(
    node: &NodeSnapshot,
    f: &mut fmt::Formatter<'_>,
    lead: &str,
    rest: &str,
    top: bool,
) -> fmt::Result {
    let name = if top { &node.path } else { &node.id };
    write!(f, "{lead}{name}")?;
    if let Some(sup) = &node.supervisor {
        write!(
            f,
            " [{} {}/{} in {}ms]",
            sup.strategy, sup.restarts_in_window, sup.intensity, sup.period_ms
        )?;
    }
    match node.status {
        Status::Starting => f.write_str(" starting")?,
        Status::Running => f.write_str(" running")?,
        Status::Restarting { .. } => f.write_str(" restarting")?,
        Status::Stopping => f.write_str(" stopping")?,
        Status::Stopped => f.write_str(" stopped")?,
    }
    if let Some(id) = &node.actor_id {
        write!(f, " {id}")?;
    }
    if let Some(up) = node.uptime_ms {
        write!(f, " up {up}ms")?;
    }
    if node.restarts > 0 {
        write!(f, " restarts={}", node.restarts)?;
    }
    if let Some(exit) = &node.last_exit {
        write!(f, " last={}", exit.reason)?;
    }
    if let Some(service) = &node.service {
        write!(f, " handled={}", service.messages_handled)?;
    }
    writeln!(f)?;
    let last = node.children.len().saturating_sub(1);
    for (i, child) in node.children.iter().enumerate() {
        let (branch, next) = if i == last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        render(
            child,
            f,
            &format!("{rest}{branch}"),
            &format!("{rest}{next}"),
            false,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot writes actor ids itself: exactly as ractor prints them.
    #[test]
    fn actor_ids_read_as_ractor_prints_them() {
        for id in [
            ActorId::Local(0),
            ActorId::Local(7),
            ActorId::Local(10),
            ActorId::Local(4_294_967_296),
            ActorId::Local(u64::MAX),
            ActorId::Remote { node_id: 3, pid: 0 },
            ActorId::Remote {
                node_id: u64::MAX,
                pid: 1_000_001,
            },
        ] {
            assert_eq!(actor_id(id), id.to_string());
        }
    }

    /// Wall-clock milliseconds in integers agree with `SystemTime` arithmetic, before and after
    /// the instant the clock was read, and saturate at the epoch.
    #[test]
    fn wall_clock_milliseconds_agree_with_system_time() {
        let clock = Clock::now();
        let system = UNIX_EPOCH + Duration::from_nanos(clock.unix_nanos as u64);
        for nanos in [
            0u64,
            1,
            999_999,
            1_000_000,
            1_234_567_891,
            86_400_000_000_123,
        ] {
            let d = Duration::from_nanos(nanos);
            let Some(earlier) = clock.instant.checked_sub(d) else {
                continue;
            };
            let want = (system - d).duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            assert_eq!(clock.unix_ms(earlier), want, "{d:?} before");
            let want = (system + d).duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            assert_eq!(clock.unix_ms(clock.instant + d), want, "{d:?} after");
        }
        let at_epoch = Clock {
            instant: clock.instant,
            unix_nanos: 5_000_000,
        };
        assert_eq!(at_epoch.unix_ms(clock.instant), 5);
        if let Some(before) = clock.instant.checked_sub(Duration::from_secs(1)) {
            assert_eq!(at_epoch.unix_ms(before), 0);
        }
    }
}
