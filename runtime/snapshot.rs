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
//! The strings of a node are [`Text`]: up to 24 bytes are held in place, without an allocation,
//! which is what most paths and ids take; longer ones are on the heap. Actor ids are two numbers
//! ([`ActorIdSnapshot`]). Both serialise as JSON strings, as in every version of the schema: the
//! schema is the serialised form, and these Rust types only carry it.
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

use compact_str::CompactString;
use ractor::{ActorCell, ActorId, ActorStatus};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::core::{ChildInfo, ChildStatus, ChildView};
use crate::exit::ExitReason;
use crate::introspect::{self, Node};
use crate::service::StatsReader;
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
    pub path: Text,
    /// Its id under its supervisor (a top-level supervisor's name).
    pub id: Text,
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
    pub actor_id: Option<ActorIdSnapshot>,
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
    pub reason: Text,
    /// Its class: `normal`, `shutdown`, `killed` or `error`.
    pub class: Text,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: Option<u64>,
}

/// A supervisor's settings and restart budget in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorSnapshot {
    /// `one_for_one`, `one_for_all`, `rest_for_one`, or `dynamic`.
    pub strategy: Text,
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
    pub service: Text,
    /// Messages handled by the running incarnation.
    pub messages_handled: u64,
    /// How long the message being handled now has been, in milliseconds; `None` while idle.
    pub current_handler_ms: Option<u64>,
}

/// A string of the snapshot: a path, an id, an exit reason. It reads as a `&str` (it derefs to
/// one), compares with `str` and `String`, hashes as a `str` does, and is serialised as a plain
/// string.
///
/// Up to 24 bytes are held in place, the size of a `String`, without an allocation: a snapshot
/// writes two per node (its path and its id), and most take no more. Longer ones are on the heap.
///
/// ```
/// use canopy::snapshot::Text;
/// let path = Text::from("/app/web/listener");
/// assert_eq!(path, "/app/web/listener");
/// assert_eq!(path.rsplit('/').next(), Some("listener")); // any `str` method
/// assert_eq!(serde_json::to_string(&path).unwrap(), "\"/app/web/listener\"");
/// let owned: String = path.into();
/// assert_eq!(owned, "/app/web/listener");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(CompactString);

/// How many bytes a [`Text`] holds in place.
const INLINE: usize = std::mem::size_of::<String>();

impl Text {
    /// The text as a `&str`.
    ///
    /// ```
    /// assert_eq!(canopy::snapshot::Text::from("db").as_str(), "db");
    /// ```
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// A `&'static str`, kept as a pointer to it: no copy, whatever its length.
    const fn from_static(text: &'static str) -> Text {
        Text(CompactString::const_new(text))
    }

    /// `parent/id`, in place when it fits.
    fn joined(parent: &str, id: &str) -> Text {
        Joiner::new(parent).join(id)
    }

    /// What `value` prints, in place when it fits.
    fn display(value: &impl fmt::Display) -> Text {
        use fmt::Write as _;
        let mut text = CompactString::default();
        // Writing to a CompactString fails only if `value`'s own Display does; what it wrote
        // up to then is kept.
        let _ = write!(text, "{value}");
        Text(text)
    }
}

/// `parent/id` for the ids of one parent: `parent/` is written once, and each path that fits in
/// place is put together on the stack and copied in once (`CompactString::push_str`, a piece at a
/// time, cost a snapshot more than the rest of a node).
struct Joiner<'a> {
    parent: &'a str,
    /// `parent/`, then room for an id.
    buf: [u8; INLINE],
    /// The length of `parent/` when it fits in place.
    prefix: Option<usize>,
}

impl<'a> Joiner<'a> {
    fn new(parent: &'a str) -> Joiner<'a> {
        let mut buf = [0; INLINE];
        let prefix = (parent.len() < INLINE).then(|| {
            buf[..parent.len()].copy_from_slice(parent.as_bytes());
            buf[parent.len()] = b'/';
            parent.len() + 1
        });
        Joiner {
            parent,
            buf,
            prefix,
        }
    }

    fn join(&self, id: &str) -> Text {
        if let Some(prefix) = self.prefix {
            let len = prefix + id.len();
            if len <= INLINE {
                let mut buf = self.buf;
                buf[prefix..len].copy_from_slice(id.as_bytes());
                // SAFETY: `buf[..len]` is `parent`, a `/` and `id`: two `str`s with an ASCII byte
                // between them, which is valid UTF-8. (Checking it cost more than the copies.)
                let path = unsafe { std::str::from_utf8_unchecked(&buf[..len]) };
                return Text(CompactString::new(path));
            }
        }
        let mut path = String::with_capacity(self.parent.len() + 1 + id.len());
        path.push_str(self.parent);
        path.push('/');
        path.push_str(id);
        Text(CompactString::from(path))
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text(CompactString::new(text))
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text(CompactString::from(text))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> String {
        text.0.into_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.0.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.0.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.0.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.0.as_str()
    }
}

/// An actor id: the node it runs on (0 for this one) and its number there. It prints and is
/// serialised as ractor prints an actor id, `node.pid` (`0.42`); held as two numbers, so a
/// snapshot writes no text for it.
///
/// ```
/// use canopy::snapshot::ActorIdSnapshot;
/// let id = ActorIdSnapshot::from(canopy::ractor::ActorId::Local(42));
/// assert_eq!((id.node, id.pid), (0, 42));
/// assert_eq!(id.to_string(), "0.42");
/// assert_eq!(serde_json::to_string(&id).unwrap(), "\"0.42\"");
/// let back: ActorIdSnapshot = serde_json::from_str("\"3.7\"").unwrap();
/// assert_eq!((back.node, back.pid), (3, 7));
/// assert!(serde_json::from_str::<ActorIdSnapshot>("\"42\"").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorIdSnapshot {
    /// The node: 0 for an actor of this process.
    pub node: u64,
    /// Its number on that node.
    pub pid: u64,
}

impl From<ActorId> for ActorIdSnapshot {
    fn from(id: ActorId) -> Self {
        match id {
            ActorId::Local(pid) => ActorIdSnapshot { node: 0, pid },
            ActorId::Remote { node_id, pid } => ActorIdSnapshot { node: node_id, pid },
        }
    }
}

impl ActorIdSnapshot {
    /// `node.pid` in decimal, written into `buf`: no allocation, no formatting machinery.
    fn write<'b>(&self, buf: &'b mut [u8; 41]) -> &'b str {
        let mut at = buf.len();
        for (i, mut n) in [self.pid, self.node].into_iter().enumerate() {
            if i == 1 {
                at -= 1;
                buf[at] = b'.';
            }
            loop {
                at -= 1;
                buf[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
        }
        // Only ASCII digits and a dot were written.
        std::str::from_utf8(&buf[at..]).unwrap_or_default()
    }
}

impl fmt::Display for ActorIdSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write(&mut [0; 41]))
    }
}

impl Serialize for ActorIdSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.write(&mut [0; 41]))
    }
}

impl<'de> Deserialize<'de> for ActorIdSnapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ActorIdSnapshot;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an actor id, `node.pid` in decimal")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ActorIdSnapshot, E> {
                let parsed = v
                    .split_once('.')
                    .and_then(|(node, pid)| Some((node.parse().ok()?, pid.parse().ok()?)));
                match parsed {
                    Some((node, pid)) => Ok(ActorIdSnapshot { node, pid }),
                    None => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_str(Visitor)
    }
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
    let path = Text::from(node.path.as_str());
    let mut snap = match entry {
        Some(info) => child_fields(path, &view_of(info), clock, &mut StatsReader::new()),
        None => NodeSnapshot {
            id: Text::from(path.rsplit_once('/').map_or(path.as_str(), |(_, id)| id)),
            path,
            kind: Kind::Supervisor,
            restart: None,
            shutdown: None,
            significant: false,
            status: cell_status(&node.cell, Status::Running),
            actor_id: Some(node.cell.get_id().into()),
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
        strategy: Text::from_static(match budget.strategy {
            Some(Strategy::OneForOne) => "one_for_one",
            Some(Strategy::OneForAll) => "one_for_all",
            Some(Strategy::RestForOne) => "rest_for_one",
            None => "dynamic",
        }),
        intensity: budget.intensity,
        period_ms: millis(budget.period),
        restarts_in_window: budget.restarts_in_window as u64,
    });
    // The children are written straight from the supervisor's state, under its lock, in start
    // order; the running supervisors among them are read after that lock is released, so that
    // each lock is held for its own children only.
    let children = &mut snap.children;
    let mut below: Vec<(usize, ActorId)> = Vec::new();
    {
        // One acquisition of the service registry's lock for all the children, not one each.
        let mut services = StatsReader::new();
        let paths = Joiner::new(&node.path);
        node.children.visit(&mut |count, child| {
            children.reserve(count.saturating_sub(children.len()));
            if let (ChildKind::Supervisor, ChildStatus::Running(cell)) = (child.kind, &child.status)
            {
                below.push((children.len(), cell.get_id()));
            }
            let path = paths.join(child.id);
            children.push(child_fields(path, child, clock, &mut services));
        });
    }
    for (at, id) in below {
        if let Some(sub) = introspect::node(&id) {
            let snap = &mut children[at];
            if snap.path != sub.path {
                snap.path = Text::from(sub.path.as_str());
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
    let path = Text::joined(parent, &info.id);
    child_fields(path, &view_of(&info), clock, &mut StatsReader::new())
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

fn child_fields(
    path: Text,
    info: &ChildView<'_>,
    clock: &Clock,
    services: &mut StatsReader,
) -> NodeSnapshot {
    let (status, actor_id, service) = match &info.status {
        ChildStatus::Running(cell) => (
            cell_status(cell, Status::Running),
            Some(cell.get_id().into()),
            services.get(cell).map(|s| ServiceSnapshot {
                service: Text::from_static(s.service),
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
    let (started_at_ms, uptime_ms) = info.started_at.map(|at| clock.started(at)).unzip();
    NodeSnapshot {
        path,
        id: Text::from(info.id),
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
        started_at_ms,
        uptime_ms,
        restarts: info.restarts,
        last_exit: info.last_exit.map(|reason| LastExit {
            reason: Text::display(reason),
            class: Text::from_static(match reason {
                ExitReason::Normal => "normal",
                ExitReason::Shutdown | ExitReason::ShutdownWith(_) => "shutdown",
                ExitReason::Killed => "killed",
                ExitReason::Error(_) => "error",
            }),
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

/// `d` in nanoseconds, saturated: 584 years fit.
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// One reading of both clocks, so that every instant of a snapshot converts to wall time the
/// same way. The cores keep tokio's clock, which a paused test clock moves.
struct Clock {
    instant: Instant,
    /// The wall clock at `instant`, in nanoseconds since the Unix epoch: 0 before it, saturated
    /// after 2554. In 64 bits, so that converting an instant takes no 128-bit division.
    unix_nanos: u64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            instant: tokio::time::Instant::now().into_std(),
            unix_nanos: nanos(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
        }
    }

    /// `at` on the wall clock, in whole milliseconds since the Unix epoch (0 before it); in
    /// integers rather than `SystemTime` arithmetic, which a snapshot would do twice per node.
    fn unix_ms(&self, at: Instant) -> u64 {
        let nanos = match self.instant.checked_duration_since(at) {
            Some(ago) => self.unix_nanos.saturating_sub(nanos(ago)),
            None => self
                .unix_nanos
                .saturating_add(nanos(at.duration_since(self.instant))),
        };
        nanos / 1_000_000
    }

    /// An incarnation started at `at`: when on the wall clock (as [`unix_ms`](Self::unix_ms)) and
    /// how long it has been up (0 if `at` is after this reading), from one subtraction of
    /// instants rather than two.
    fn started(&self, at: Instant) -> (u64, u64) {
        match self.instant.checked_duration_since(at) {
            Some(up) => (
                self.unix_nanos.saturating_sub(nanos(up)) / 1_000_000,
                millis(up),
            ),
            None => (self.unix_ms(at), 0),
        }
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

    /// The snapshot writes actor ids itself: exactly as ractor prints them, and read back.
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
            ActorId::Remote {
                node_id: u64::MAX,
                pid: u64::MAX,
            },
        ] {
            let wire = ActorIdSnapshot::from(id);
            assert_eq!(wire.to_string(), id.to_string());
            let json = serde_json::to_string(&wire).unwrap();
            assert_eq!(json, format!("\"{id}\""));
            assert_eq!(
                serde_json::from_str::<ActorIdSnapshot>(&json).unwrap(),
                wire
            );
        }
        for bad in [
            "\"\"",
            "\"42\"",
            "\".\"",
            "\"1.\"",
            "\"a.1\"",
            "\"1.2.3\"",
            "7",
        ] {
            assert!(
                serde_json::from_str::<ActorIdSnapshot>(bad).is_err(),
                "{bad}"
            );
        }
    }

    /// A path written in place or on the heap reads, compares, hashes and serialises as the
    /// `String` it replaces.
    #[test]
    fn texts_read_as_the_strings_they_replace() {
        use std::collections::HashMap;
        let long = "/a-supervisor-with-a-long-name/and-a-child-with-another";
        for (parent, id) in [
            ("/app", "db"),
            ("/a-supervisor-with-a-long-name", "and-a-child-with-another"),
            ("", ""),
            ("/ü", "ñ\"\\"),
            ("/twenty-four-bytes", "abcd"),
            ("/twenty-four-bytes", "abcde"),
            ("/twenty-four-bytes", "abcdef"),
            ("/twenty-three-bytes-lon", ""),
            ("/twenty-four-bytes-long!", ""),
        ] {
            let want = format!("{parent}/{id}");
            let text = Text::joined(parent, id);
            assert_eq!(text, want);
            assert_eq!(text.as_str(), want);
            assert_eq!(format!("{text}"), want);
            assert_eq!(format!("{text:?}"), format!("{want:?}"));
            assert_eq!(
                serde_json::to_string(&text).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
            let mut map = HashMap::new();
            map.insert(text.clone(), ());
            assert!(map.contains_key(want.as_str()));
            // Held in place up to the size of a `String`: no allocation for most paths.
            assert_eq!(text.0.is_heap_allocated(), want.len() > INLINE, "{want}");
            assert_eq!(String::from(text), want);
        }
        assert_eq!(Text::from(long), long);
        assert_eq!(Text::display(&ExitReason::Killed), "killed");
        assert_eq!(Text::from_static("one_for_all"), "one_for_all");
    }

    /// Distances from the clock's reading to convert at: none, under and at a millisecond, and
    /// longer.
    const NANOS: [u64; 6] = [0, 1, 999_999, 1_000_000, 1_234_567_891, 86_400_000_000_123];

    /// An uptime and a start time from one subtraction agree with `unix_ms` and a saturating
    /// subtraction, before and after the clock's reading.
    #[test]
    fn start_and_uptime_agree_with_separate_readings() {
        let clock = Clock::now();
        for nanos in NANOS {
            let d = Duration::from_nanos(nanos);
            for at in [clock.instant.checked_sub(d), clock.instant.checked_add(d)]
                .into_iter()
                .flatten()
            {
                assert_eq!(
                    clock.started(at),
                    (
                        clock.unix_ms(at),
                        millis(clock.instant.saturating_duration_since(at))
                    ),
                    "{d:?}"
                );
            }
        }
    }

    /// Wall-clock milliseconds in integers agree with `SystemTime` arithmetic, before and after
    /// the instant the clock was read, and saturate at the epoch.
    #[test]
    fn wall_clock_milliseconds_agree_with_system_time() {
        let clock = Clock::now();
        let system = UNIX_EPOCH + Duration::from_nanos(clock.unix_nanos);
        for nanos in NANOS {
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
