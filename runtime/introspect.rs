//! The live tree, readable from anywhere without a message round trip.
//!
//! Every supervisor publishes itself here when it starts: its path (`/app/web`) and its decision
//! state, behind a `parking_lot` lock that the supervisor takes only for the instant of each decision.
//! A reader therefore sees a consistent picture between two steps of an operation, and a supervisor
//! that is busy (a long restart, a slow child's shutdown) or stuck can still be inspected.
//!
//! Paths: a top-level supervisor is `/<name>` (its [`SupervisorSpec::name`](crate::SupervisorSpec::name),
//! `root` by default); a child is its supervisor's path, a slash, and its child id.
//!
//! ```
//! use canopy::{introspect, ChildSpec, Supervisor, SupervisorSpec};
//! # #[derive(Clone)] struct W;
//! # impl canopy::ractor::Actor for W {
//! #     type Msg = (); type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: ()) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
//! # }
//! # #[tokio::main] async fn main() {
//! let sup = Supervisor::start(
//!     SupervisorSpec::default()
//!         .name("app")
//!         .child(ChildSpec::supervisor("web", SupervisorSpec::default().child(ChildSpec::actor("listener", W, ()))))
//!         .child(ChildSpec::actor("db", W, ())),
//! ).await.unwrap();
//! let paths: Vec<String> = introspect::running(&sup.cell()).into_iter().map(|c| c.path).collect();
//! assert_eq!(paths, ["/app/web", "/app/web/listener", "/app/db"]); // start order, depth first
//! sup.shutdown().await;
//! # }
//! ```

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;
use ractor::{ActorCell, ActorId, ActorStatus};
use rustc_hash::FxBuildHasher;

use crate::core::{ChildInfo, ChildView};
use crate::pid_hash::PidHash;
use crate::spec::ChildKind;

/// What the tree reads from a supervisor's decision state, under the supervisor's own lock.
pub(crate) trait Children: Send + Sync {
    /// Every child, most recently started first.
    fn which_children(&self) -> Vec<ChildInfo>;
    /// Lends every child to `visit` in start order, under the supervisor's lock: for readers that
    /// turn them into types of their own without a copy in between. The first argument is how
    /// many children there are at most, to size what the reader fills.
    fn visit(&self, visit: &mut dyn FnMut(usize, &ChildView<'_>));
    /// One child by id (a dynamic child's id is its key).
    fn child(&self, id: &str) -> Option<ChildInfo>;
    /// The supervisor has begun to stop for good; it never turns back (see `Core::is_exiting`).
    fn exiting(&self) -> bool;
    /// The tree is being killed at once: every running child's last exit becomes `killed`.
    fn record_killed(&self, now: std::time::Instant);
    /// The supervisor's strategy and restart budget, and how much of it is in use at `now`.
    fn budget(&self, now: std::time::Instant) -> crate::core::Budget;
}

/// One supervisor, static or dynamic, in the shared tree.
pub(crate) struct Node {
    pub(crate) path: String,
    pub(crate) cell: ActorCell,
    pub(crate) children: Arc<dyn Children>,
    /// A dynamic supervisor's argument type; `None` for a static one.
    pub(crate) args: Option<TypeId>,
    /// Turns true when the start-up of the tree this supervisor belongs to must be abandoned.
    pub(crate) abort: Option<tokio::sync::watch::Receiver<bool>>,
    /// Bumped after every operation that may have changed a child's incarnation, so that handles
    /// waiting for a restart wake up; dropped with the node, which tells them the supervisor is gone.
    /// Made by the first handle that waits: most supervisors never have one, and it is an
    /// allocation on every start.
    changes: std::sync::OnceLock<tokio::sync::watch::Sender<u64>>,
}

impl Node {
    pub(crate) fn new(
        path: String,
        cell: ActorCell,
        children: Arc<dyn Children>,
        args: Option<TypeId>,
        abort: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Self {
        Node {
            path,
            cell,
            children,
            args,
            abort,
            changes: std::sync::OnceLock::new(),
        }
    }

    /// A receiver woken by every [`changed`](Self::changed) after this call. A waiter reads the
    /// supervisor's state (under its core's lock) after subscribing; the supervisor changes that
    /// state under the same lock before it calls `changed`, so either the waiter sees the change or
    /// `changed` sees the waiter.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes
            .get_or_init(|| tokio::sync::watch::Sender::new(0))
            .subscribe()
    }

    /// Wakes handles waiting on this supervisor, if any.
    pub(crate) fn changed(&self) {
        if let Some(changes) = self.changes.get() {
            if changes.receiver_count() > 0 {
                changes.send_modify(|generation| *generation = generation.wrapping_add(1));
            }
        }
    }
}

// Fx hashing: every supervisor's start inserts into `nodes` and `paths` under the write lock, and
// their keys are ids this process hands out and paths the program itself chose (no input from
// outside to collide on purpose). SipHash was a third of the registration's cost.
struct Registry {
    nodes: HashMap<ActorId, Arc<Node>, PidHash>,
    /// The running supervisor at each path: what a handle follows across its supervisor's restarts.
    /// It holds ids only, hashed by their node's path: the path is not copied into a key of its
    /// own on every start. Every id here is in `nodes` (removals from `nodes` remove it here first
    /// or sweep it right after), and no two have the same path.
    paths: hashbrown::HashTable<ActorId>,
    /// The next suffix to try for an unnamed supervisor whose path is taken, by path, so that
    /// starting many of them under one parent stays O(1) each.
    suffixes: HashMap<String, u64, FxBuildHasher>,
    /// Entries of supervisors that were killed with no canopy supervisor above them to reap them
    /// (see [`reap_killed`]) are swept when the map reaches this size; doubling it keeps
    /// registration amortised O(1).
    sweep_at: usize,
}

static TREE: LazyLock<RwLock<Registry>> = LazyLock::new(|| {
    RwLock::new(Registry {
        nodes: HashMap::default(),
        paths: hashbrown::HashTable::new(),
        suffixes: HashMap::default(),
        sweep_at: 64,
    })
});

/// Publishes a supervisor at `path`, building its node there. If a running supervisor already has
/// that path, a `named` one is refused ([`StartError::PathTaken`](crate::StartError::PathTaken));
/// an unnamed one takes the first free `path-2`, `path-3`, … and says so in the log.
pub(crate) fn register(
    path: String,
    named: bool,
    build: impl FnOnce(String) -> Node,
) -> Result<Arc<Node>, crate::StartError> {
    let mut tree = TREE.write();
    let taken = |tree: &Registry, path: &str| {
        tree.at(path)
            .is_some_and(|other| other.cell.get_status() < ActorStatus::Stopping)
    };
    let mut chosen = path;
    if taken(&tree, &chosen) {
        if named {
            return Err(crate::StartError::PathTaken(chosen));
        }
        let path = std::mem::take(&mut chosen);
        let mut n = tree.suffixes.get(&path).copied().unwrap_or(2);
        while taken(&tree, &format!("{path}-{n}")) {
            n += 1;
        }
        tree.suffixes.insert(path.clone(), n + 1);
        chosen = format!("{path}-{n}");
        tracing::info!(
            target: "canopy::supervisor",
            wanted = %path,
            path = %chosen,
            "an unnamed supervisor's path was taken; name it to choose its path"
        );
    }
    if tree.nodes.len() >= tree.sweep_at {
        tree.nodes
            .retain(|_, n| n.cell.get_status() != ActorStatus::Stopped);
        let Registry { nodes, paths, .. } = &mut *tree;
        paths.retain(|id| nodes.contains_key(id));
        tree.sweep_at = (tree.nodes.len() * 2).max(64);
    }
    let node = Arc::new(build(chosen));
    let id = node.cell.get_id();
    // Into `nodes` first: the path index finds an entry's path (to hash it again when it grows)
    // through `nodes`.
    tree.nodes.insert(id, node.clone());
    let Registry { nodes, paths, .. } = &mut *tree;
    let hash = path_hash(&node.path);
    let same_path = |other: &ActorId| nodes.get(other).is_some_and(|n| n.path == node.path);
    match paths.find_mut(hash, same_path) {
        // A supervisor that is stopping, or gone unreaped, had it: the path is this one's now.
        Some(slot) => *slot = id,
        None => {
            paths.insert_unique(hash, id, |other| {
                nodes.get(other).map_or(0, |n| path_hash(&n.path))
            });
        }
    }
    Ok(node)
}

fn path_hash(path: &str) -> u64 {
    std::hash::BuildHasher::hash_one(&FxBuildHasher, path)
}

impl Registry {
    /// The supervisor holding `path` in the index (it may be stopping).
    fn at(&self, path: &str) -> Option<&Arc<Node>> {
        let id = self.paths.find(path_hash(path), |id| {
            self.nodes.get(id).is_some_and(|n| n.path == path)
        })?;
        self.nodes.get(id)
    }
}

pub(crate) fn unregister(id: &ActorId) {
    let mut tree = TREE.write();
    if let Some(node) = tree.nodes.remove(id) {
        if let Ok(entry) = tree
            .paths
            .find_entry(path_hash(&node.path), |other| other == id)
        {
            entry.remove();
        }
    }
}

/// The running supervisor at `path`, if any.
pub(crate) fn node_at(path: &str) -> Option<Arc<Node>> {
    let tree = TREE.read();
    tree.at(path)
        .filter(|n| n.cell.get_status() < ActorStatus::Stopping)
        .cloned()
}

pub(crate) fn node(id: &ActorId) -> Option<Arc<Node>> {
    TREE.read().nodes.get(id).cloned()
}

/// The running top-level supervisors (those with no supervisor above them in the tree).
pub(crate) fn top_level() -> Vec<Arc<Node>> {
    TREE.read()
        .nodes
        .values()
        .filter(|n| n.path.rfind('/') == Some(0))
        .filter(|n| n.cell.get_status() < ActorStatus::Stopping)
        .cloned()
        .collect()
}

/// A supervisor of either kind: its path and its children.
fn view(id: &ActorId) -> Option<(String, Vec<ChildInfo>)> {
    let n = node(id)?;
    let children = n.children.which_children();
    Some((n.path.clone(), children))
}

/// The path of a running supervisor, if `cell` is one.
///
/// ```
/// # let cell: Option<canopy::ractor::ActorCell> = None;
/// # if let Some(cell) = cell {
/// println!("{:?}", canopy::introspect::path_of(&cell));
/// # }
/// ```
pub fn path_of(cell: &ActorCell) -> Option<String> {
    TREE.read()
        .nodes
        .get(&cell.get_id())
        .map(|n| n.path.clone())
}

/// Lends `cell`'s path (if it is a supervisor in the tree) to `f`, without a copy.
pub(crate) fn with_path<R>(cell: &ActorCell, f: impl FnOnce(Option<&str>) -> R) -> R {
    let tree = TREE.read();
    f(tree.nodes.get(&cell.get_id()).map(|n| n.path.as_str()))
}

/// The children of a running supervisor, most recently started first, read from the shared tree
/// (no message is sent to the supervisor).
pub fn children_of(cell: &ActorCell) -> Option<Vec<ChildInfo>> {
    view(&cell.get_id()).map(|(_, children)| children)
}

/// A running actor of the tree, by path.
#[derive(Debug, Clone)]
pub struct RunningChild {
    /// Its path, e.g. `/app/web/listener`.
    pub path: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its cell.
    pub cell: ActorCell,
}

/// Records every child running below `root` as killed, in its supervisor's state, and returns them
/// by path: the tree is about to be killed at once, and no supervisor in it will run again to
/// record it. Supervisors below `root` are found by path, so that a branch still starting (not yet
/// a running child of its parent) is included.
pub(crate) fn record_tree_killed(root: &ActorCell) -> Vec<RunningChild> {
    let Some(top) = node(&root.get_id()) else {
        return Vec::new();
    };
    let prefix = format!("{}/", top.path);
    let mut nodes: Vec<Arc<Node>> = TREE
        .read()
        .nodes
        .values()
        .filter(|n| n.path == top.path || n.path.starts_with(&prefix))
        .filter(|n| n.cell.get_status() < ActorStatus::Stopped)
        .cloned()
        .collect();
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    let now = tokio::time::Instant::now().into_std();
    let mut left = Vec::new();
    for n in &nodes {
        n.children.record_killed(now);
        for child in n.children.which_children().into_iter().rev() {
            let Some(cell) = child.status.pid() else {
                continue;
            };
            if cell.get_status() == ActorStatus::Stopped {
                continue;
            }
            left.push(RunningChild {
                path: format!("{}/{}", n.path, child.id),
                kind: child.kind,
                cell: cell.clone(),
            });
        }
    }
    left
}

/// Cleans up after a supervisor that was killed: kills what survived the kill below it, returned
/// by path, and takes the killed supervisors out of the tree. ractor's kill of a supervisor reaches
/// the children that are running, not those already stopping (in `post_stop`, or draining): those
/// would outlive it, unlinked, where no supervisor sees them, for as long as their stop takes,
/// forever for one stuck in it. A killed supervisor never unregisters itself either: its entry,
/// with every spec it held and whatever they captured, would stay until a later registration
/// sweeps it, and handles waiting on it would wait out their bound. Followed through the killed
/// supervisors' own entries, not by path, so a newer incarnation at the same path is never touched.
pub(crate) fn reap_killed(sup: &ActorCell) -> Vec<RunningChild> {
    let mut left = Vec::new();
    let mut pending = vec![sup.get_id()];
    let mut killed = Vec::new();
    while let Some(id) = pending.pop() {
        let Some(n) = node(&id) else {
            continue;
        };
        killed.push(id);
        for child in n.children.which_children().into_iter().rev() {
            let Some(cell) = child.status.pid() else {
                continue;
            };
            if child.kind == ChildKind::Supervisor {
                pending.push(cell.get_id());
            }
            // A running one got ractor's kill with its supervisor; a stopped one is gone.
            if !matches!(
                cell.get_status(),
                ActorStatus::Draining | ActorStatus::Stopping
            ) {
                continue;
            }
            cell.kill();
            left.push(RunningChild {
                path: format!("{}/{}", n.path, child.id),
                kind: child.kind,
                cell: cell.clone(),
            });
        }
    }
    for id in &killed {
        unregister(id);
    }
    left
}

/// Every running child below the supervisor `root`, depth first in start order (a supervisor
/// before its own children).
pub fn running(root: &ActorCell) -> Vec<RunningChild> {
    let mut out = Vec::new();
    collect(root, &mut out);
    out
}

fn collect(sup: &ActorCell, out: &mut Vec<RunningChild>) {
    let Some((path, children)) = view(&sup.get_id()) else {
        return;
    };
    for child in children.into_iter().rev() {
        let Some(cell) = child.status.pid() else {
            continue;
        };
        if cell.get_status() == ActorStatus::Stopped {
            continue;
        }
        out.push(RunningChild {
            path: format!("{path}/{}", child.id),
            kind: child.kind,
            cell: cell.clone(),
        });
        if child.kind == ChildKind::Supervisor {
            collect(cell, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Supervisor, SupervisorSpec};

    /// The path index holds ids only and finds paths through the nodes: every supervisor is found
    /// at its path while the index grows (and rehashes through the nodes), a stopped one's path is
    /// free again, and a path taken over from a gone supervisor points at the new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_supervisor_is_found_at_its_path_as_the_index_grows_and_shrinks() {
        let name = |i: usize| format!("introspect-index-{i}");
        let mut sups = Vec::new();
        for i in 0..150 {
            let sup = Supervisor::start(SupervisorSpec::default().name(name(i)))
                .await
                .unwrap();
            sups.push(sup);
        }
        for (i, sup) in sups.iter().enumerate() {
            let path = format!("/{}", name(i));
            let node = node_at(&path).expect("found at its path");
            assert_eq!(node.cell.get_id(), sup.cell().get_id());
            assert_eq!(path_of(&sup.cell()), Some(path));
        }
        // Every other one stops: its path is gone from the index, the others' stay.
        for sup in sups.iter().step_by(2) {
            sup.shutdown().await;
        }
        for (i, sup) in sups.iter().enumerate() {
            let found = node_at(&format!("/{}", name(i))).map(|n| n.cell.get_id());
            if i % 2 == 0 {
                assert_eq!(found, None, "{i} stopped");
            } else {
                assert_eq!(found, Some(sup.cell().get_id()), "{i} runs");
            }
        }
        // A freed path is taken by a new supervisor; a running one's is refused.
        let again = Supervisor::start(SupervisorSpec::default().name(name(0)))
            .await
            .unwrap();
        assert_eq!(
            node_at(&format!("/{}", name(0))).map(|n| n.cell.get_id()),
            Some(again.cell().get_id())
        );
        assert_eq!(
            Supervisor::start(SupervisorSpec::default().name(name(1)))
                .await
                .unwrap_err(),
            crate::StartError::PathTaken(format!("/{}", name(1)))
        );
        // A supervisor killed with nothing above to reap it leaves its node behind; its path goes
        // to the next supervisor that asks for it, and the index follows.
        let killed = Supervisor::start(SupervisorSpec::default().name(name(2)))
            .await
            .unwrap();
        let cell = killed.cell();
        cell.kill();
        killed.wait().await;
        let taker = Supervisor::start(SupervisorSpec::default().name(name(2)))
            .await
            .unwrap();
        assert_eq!(
            node_at(&format!("/{}", name(2))).map(|n| n.cell.get_id()),
            Some(taker.cell().get_id())
        );
        unregister(&cell.get_id());
        assert_eq!(
            node_at(&format!("/{}", name(2))).map(|n| n.cell.get_id()),
            Some(taker.cell().get_id()),
            "removing the gone one leaves the new one's entry"
        );
        taker.shutdown().await;
        again.shutdown().await;
        for sup in sups.iter().skip(1).step_by(2) {
            sup.shutdown().await;
        }
        for i in 0..150 {
            assert!(node_at(&format!("/{}", name(i))).is_none(), "{i}");
        }
    }
}
