//! `/events`: the tree as server-sent events.
//!
//! One hub per observer polls the snapshot while anyone listens and turns each change into an
//! event with the next id. A client gets the current state as a `snapshot` event, then `diff`
//! events; a client that reconnects with `Last-Event-ID` gets the diffs it missed, or a fresh
//! snapshot when they are no longer kept (or the id is another process's). Every client reads from
//! one bounded broadcast ring: a client that falls a whole ring behind is dropped (its stream ends
//! with a `dropped` event) instead of holding memory, and resumes from its last id when it
//! reconnects.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::sse::Event;
use futures::Stream;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::snapshot::{self, LastExit, NodeSnapshot, ServiceSnapshot, Status, Text, TreeSnapshot};

use super::Ending;

/// One event as sent: its id, its SSE event name and its JSON.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) id: u64,
    pub(crate) kind: &'static str,
    pub(crate) data: String,
}

/// The body of a `diff` event: the nodes that are new or changed (their `children` empty), and
/// the new child order of every parent whose children changed (`""` for the list of roots).
#[derive(Serialize)]
struct Diff<'a> {
    taken_at_ms: u64,
    nodes: Vec<NodeSnapshot>,
    children: Vec<(&'a str, Vec<&'a str>)>,
}

/// A tree flattened by path: each node without its children, and each parent's child paths.
#[derive(Default)]
struct Flat {
    nodes: HashMap<Text, NodeSnapshot>,
    children: HashMap<Text, Vec<Text>>,
}

impl Flat {
    fn of(tree: &TreeSnapshot) -> Flat {
        let mut flat = Flat::default();
        flat.children.insert(
            Text::default(),
            tree.roots.iter().map(|r| r.path.clone()).collect(),
        );
        for root in &tree.roots {
            flat.add(root);
        }
        flat
    }

    fn add(&mut self, node: &NodeSnapshot) {
        if !node.children.is_empty() {
            self.children.insert(
                node.path.clone(),
                node.children.iter().map(|c| c.path.clone()).collect(),
            );
        }
        for child in &node.children {
            self.add(child);
        }
        self.nodes.insert(node.path.clone(), shallow(node));
    }
}

fn shallow(node: &NodeSnapshot) -> NodeSnapshot {
    NodeSnapshot {
        children: Vec::new(),
        ..node.clone()
    }
}

/// Whether two readings of one node differ in anything but the passing of time. Uptime and a
/// handler's elapsed time grow between any two readings; wall-clock times are converted from the
/// monotonic clock at each reading and may move by a millisecond. The struct is destructured
/// whole so that a field added to the snapshot cannot be forgotten here.
fn same(a: &NodeSnapshot, b: &NodeSnapshot) -> bool {
    let NodeSnapshot {
        path,
        id,
        kind,
        restart,
        shutdown,
        significant,
        status,
        actor_id,
        started_at_ms,
        uptime_ms: _,
        restarts,
        last_exit,
        supervisor,
        service,
        in_flight,
        children: _,
    } = a;
    *path == b.path
        && *id == b.id
        && *kind == b.kind
        && *restart == b.restart
        && *shutdown == b.shutdown
        && *significant == b.significant
        && same_status(status, &b.status)
        && *actor_id == b.actor_id
        && close(*started_at_ms, b.started_at_ms)
        && *restarts == b.restarts
        && same_exit(last_exit.as_ref(), b.last_exit.as_ref())
        && *supervisor == b.supervisor
        && same_service(service.as_ref(), b.service.as_ref())
        && *in_flight == b.in_flight
}

fn close(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.abs_diff(b) <= 2,
        (a, b) => a == b,
    }
}

fn same_status(a: &Status, b: &Status) -> bool {
    match (a, b) {
        (Status::Restarting { next_attempt_ms: x }, Status::Restarting { next_attempt_ms: y }) => {
            close(*x, *y)
        }
        (a, b) => a == b,
    }
}

fn same_exit(a: Option<&LastExit>, b: Option<&LastExit>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.reason == b.reason && a.class == b.class && close(a.at_ms, b.at_ms),
        (a, b) => a.is_none() && b.is_none(),
    }
}

fn same_service(a: Option<&ServiceSnapshot>, b: Option<&ServiceSnapshot>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.service == b.service && a.messages_handled == b.messages_handled,
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The events of `next` against `prev`: `None` when nothing changed.
fn diff(prev: &Flat, next: &TreeSnapshot, next_flat: &Flat) -> Option<String> {
    let mut out = Diff {
        taken_at_ms: next.taken_at_ms,
        nodes: Vec::new(),
        children: Vec::new(),
    };
    let roots = next_flat.children.get("").map_or(&[][..], Vec::as_slice);
    if prev.children.get("").map_or(&[][..], Vec::as_slice) != roots {
        out.children
            .push(("", roots.iter().map(Text::as_str).collect()));
    }
    // Tree order, so that a client applying the nodes in order meets a parent before its children.
    fn walk<'a>(prev: &Flat, node: &'a NodeSnapshot, out: &mut Diff<'a>) {
        if !prev
            .nodes
            .get(&node.path)
            .is_some_and(|old| same(old, node))
        {
            out.nodes.push(shallow(node));
        }
        let ids: Vec<&str> = node.children.iter().map(|c| c.path.as_str()).collect();
        let old = prev.children.get(&node.path);
        let unchanged = match old {
            Some(old) => old.iter().map(Text::as_str).eq(ids.iter().copied()),
            None => ids.is_empty(),
        };
        if !unchanged {
            out.children.push((node.path.as_str(), ids));
        }
        for child in &node.children {
            walk(prev, child, out);
        }
    }
    for root in &next.roots {
        walk(prev, root, &mut out);
    }
    if out.nodes.is_empty() && out.children.is_empty() {
        return None;
    }
    serde_json::to_string(&out).ok()
}

struct State {
    /// The id of the latest state: the number of the last event made.
    id: u64,
    latest: Option<(TreeSnapshot, Flat)>,
    /// The last diffs, oldest first, for clients that resume.
    history: VecDeque<Arc<Frame>>,
}

/// What a new client starts with.
pub(crate) struct Subscription {
    pub(crate) first: Vec<Arc<Frame>>,
    pub(crate) rx: broadcast::Receiver<Arc<Frame>>,
}

/// The observer's event source; see the [module docs](self).
pub(crate) struct Hub {
    /// Tells this hub's ids from another process's (or another observer's in this process).
    boot: String,
    capacity: usize,
    state: parking_lot::Mutex<State>,
    tx: broadcast::Sender<Arc<Frame>>,
    clients: AtomicUsize,
}

impl Hub {
    pub(crate) fn new(capacity: usize) -> Hub {
        static HUBS: AtomicU64 = AtomicU64::new(0);
        let capacity = capacity.max(1);
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        Hub {
            boot: format!("{ms:x}.{}", HUBS.fetch_add(1, Ordering::Relaxed)),
            capacity,
            state: parking_lot::Mutex::new(State {
                id: 0,
                latest: None,
                history: VecDeque::with_capacity(capacity),
            }),
            tx: broadcast::channel(capacity).0,
            clients: AtomicUsize::new(0),
        }
    }

    /// The id a client sees for event `n`.
    pub(crate) fn event_id(&self, n: u64) -> String {
        format!("{}-{n}", self.boot)
    }

    /// The number of the last event made.
    pub(crate) fn last_id(&self) -> u64 {
        self.state.lock().id
    }

    /// How many clients are connected now.
    pub(crate) fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Whether anyone listens (the poller skips its work otherwise).
    pub(crate) fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Reads the tree; a change becomes the next event.
    pub(crate) fn poll(&self) {
        let mut state = self.state.lock();
        self.poll_locked(&mut state);
    }

    fn poll_locked(&self, state: &mut State) {
        let tree = snapshot::tree();
        let flat = Flat::of(&tree);
        let Some((_, prev)) = &state.latest else {
            state.id = 1;
            state.latest = Some((tree, flat));
            return;
        };
        let Some(data) = diff(prev, &tree, &flat) else {
            return;
        };
        state.id += 1;
        let frame = Arc::new(Frame {
            id: state.id,
            kind: "diff",
            data,
        });
        if state.history.len() == self.capacity {
            state.history.pop_front();
        }
        state.history.push_back(frame.clone());
        state.latest = Some((tree, flat));
        // No receiver is not an error: the event is kept in the history for clients that resume.
        let _ = self.tx.send(frame);
    }

    /// A new client, resuming after `last` (a `Last-Event-ID`) if it can. Taken under the lock
    /// that orders events, so the first frames and the broadcast neither overlap nor leave a gap.
    pub(crate) fn subscribe(&self, last: Option<&str>) -> Subscription {
        let mut state = self.state.lock();
        self.poll_locked(&mut state);
        let rx = self.tx.subscribe();
        let resumed = last
            .and_then(|last| last.rsplit_once('-'))
            .filter(|(boot, _)| *boot == self.boot)
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .filter(|n| *n <= state.id)
            .and_then(|n| {
                if n == state.id {
                    return Some(Vec::new());
                }
                // Every event after n must still be kept.
                let oldest = state.history.front()?.id;
                (oldest <= n + 1)
                    .then(|| state.history.iter().filter(|f| f.id > n).cloned().collect())
            });
        let first = match resumed {
            Some(missed) => missed,
            None => {
                let data = state
                    .latest
                    .as_ref()
                    .and_then(|(tree, _)| serde_json::to_string(tree).ok())
                    .unwrap_or_default();
                vec![Arc::new(Frame {
                    id: state.id,
                    kind: "snapshot",
                    data,
                })]
            }
        };
        Subscription { first, rx }
    }

    /// The SSE stream of one client: `first`, then what is broadcast, until the end (a final
    /// `shutdown` event) or until the client falls behind (a final `dropped` event).
    pub(crate) fn stream(
        self: Arc<Self>,
        sub: Subscription,
        ending: Ending,
        retry: Duration,
    ) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        enum Step {
            Live(Client),
            Done,
        }
        struct Client {
            hub: Arc<Hub>,
            pending: VecDeque<Arc<Frame>>,
            rx: broadcast::Receiver<Arc<Frame>>,
            ending: Ending,
            retry: Option<Duration>,
        }
        impl Drop for Client {
            fn drop(&mut self) {
                self.hub.clients.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.clients.fetch_add(1, Ordering::Relaxed);
        let client = Client {
            hub: self,
            pending: sub.first.into(),
            rx: sub.rx,
            ending,
            retry: Some(retry),
        };
        futures::stream::unfold(Step::Live(client), |step| async move {
            let Step::Live(mut c) = step else {
                return None;
            };
            let frame = match c.pending.pop_front() {
                Some(frame) => Some(frame),
                None => {
                    tokio::select! {
                        // What was broadcast before the end is still sent.
                        biased;
                        got = c.rx.recv() => match got {
                            Ok(frame) => Some(frame),
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                let dropped = Event::default()
                                    .event("dropped")
                                    .data(r#"{"reason":"too slow: reconnect to resume"}"#);
                                return Some((Ok(dropped), Step::Done));
                            }
                            Err(broadcast::error::RecvError::Closed) => None,
                        },
                        _ = c.ending.wait() => None,
                    }
                }
            };
            let Some(frame) = frame else {
                return Some((Ok(shutdown_event()), Step::Done));
            };
            let mut event = Event::default()
                .id(c.hub.event_id(frame.id))
                .event(frame.kind)
                .data(frame.data.as_str());
            if let Some(retry) = c.retry.take() {
                event = event.retry(retry);
            }
            Some((Ok(event), Step::Live(c)))
        })
    }
}

/// The last event of every stream when the stop begins.
fn shutdown_event() -> Event {
    Event::default()
        .event("shutdown")
        .data(r#"{"reason":"the process is stopping"}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, restarts: u32, children: Vec<NodeSnapshot>) -> NodeSnapshot {
        NodeSnapshot {
            path: path.into(),
            id: path.rsplit('/').next().unwrap_or_default().into(),
            kind: snapshot::Kind::Worker,
            restart: None,
            shutdown: None,
            significant: false,
            status: Status::Running,
            actor_id: None,
            started_at_ms: Some(1000),
            uptime_ms: Some(5),
            restarts,
            last_exit: None,
            supervisor: None,
            service: None,
            in_flight: None,
            children,
        }
    }

    fn tree(roots: Vec<NodeSnapshot>) -> TreeSnapshot {
        TreeSnapshot {
            schema_version: snapshot::SCHEMA_VERSION,
            taken_at_ms: 7,
            roots,
        }
    }

    #[test]
    fn time_passing_is_no_change_but_a_restart_and_a_new_child_are() {
        let a = tree(vec![node("/r", 0, vec![node("/r/w", 0, vec![])])]);
        let mut b = a.clone();
        b.roots[0].children[0].uptime_ms = Some(999);
        b.roots[0].children[0].started_at_ms = Some(1001);
        assert_eq!(diff(&Flat::of(&a), &b, &Flat::of(&b)), None);

        b.roots[0].children[0].restarts = 1;
        b.roots[0].children.push(node("/r/x", 0, vec![]));
        let d: serde_json::Value =
            serde_json::from_str(&diff(&Flat::of(&a), &b, &Flat::of(&b)).unwrap()).unwrap();
        let paths: Vec<&str> = d["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/r/w", "/r/x"]);
        assert_eq!(d["children"], serde_json::json!([["/r", ["/r/w", "/r/x"]]]));
    }

    /// What a client does with a diff (the page's `diff()`): set the nodes, set the child lists,
    /// forget what is no longer reachable from the roots.
    fn apply(flat: &mut Flat, diff: &str) {
        let d: serde_json::Value = serde_json::from_str(diff).unwrap();
        for n in d["nodes"].as_array().unwrap() {
            let node: NodeSnapshot = serde_json::from_value(n.clone()).unwrap();
            flat.nodes.insert(node.path.clone(), node);
        }
        for entry in d["children"].as_array().unwrap() {
            let paths = entry[1].as_array().unwrap();
            flat.children.insert(
                entry[0].as_str().unwrap().into(),
                paths.iter().map(|p| p.as_str().unwrap().into()).collect(),
            );
        }
        let mut live = std::collections::HashSet::new();
        let mut todo = vec![Text::default()];
        while let Some(p) = todo.pop() {
            todo.extend(flat.children.get(&p).cloned().unwrap_or_default());
            live.insert(p);
        }
        flat.nodes.retain(|p, _| live.contains(p));
        flat.children.retain(|p, _| live.contains(p));
    }

    /// The tree a client holds, rebuilt from its flat maps.
    fn rebuild(flat: &Flat) -> Vec<NodeSnapshot> {
        fn node(flat: &Flat, path: &str) -> NodeSnapshot {
            let mut n = flat.nodes[path].clone();
            n.children = flat.children.get(path).map_or(Vec::new(), |kids| {
                kids.iter().map(|k| node(flat, k)).collect()
            });
            n
        }
        flat.children.get("").map_or(Vec::new(), |roots| {
            roots.iter().map(|r| node(flat, r)).collect()
        })
    }

    /// Random edits of a tree (children added, removed, moved, restarted, their status changed),
    /// each turned into a diff and applied: the client's tree is always the server's.
    #[test]
    fn diffs_applied_in_order_rebuild_the_tree_exactly() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let mut server = tree(vec![node("/a", 0, vec![node("/a/x", 0, vec![])])]);
        let mut client = Flat::of(&server);
        let mut made = 0;
        for round in 0..2000 {
            let mut edited = server.clone();
            for _ in 0..1 + next(3) {
                // Every node of the tree, as a path of indexes from the roots.
                fn all(nodes: &[NodeSnapshot], at: Vec<usize>, out: &mut Vec<Vec<usize>>) {
                    for (i, n) in nodes.iter().enumerate() {
                        let mut here = at.clone();
                        here.push(i);
                        out.push(here.clone());
                        all(&n.children, here, out);
                    }
                }
                fn get<'a>(nodes: &'a mut [NodeSnapshot], at: &[usize]) -> &'a mut NodeSnapshot {
                    let n = &mut nodes[at[0]];
                    if at.len() == 1 {
                        n
                    } else {
                        get(&mut n.children, &at[1..])
                    }
                }
                let mut every = Vec::new();
                all(&edited.roots, Vec::new(), &mut every);
                if every.is_empty() || next(10) == 0 {
                    made += 1;
                    edited.roots.push(node(&format!("/r{made}"), 0, vec![]));
                    continue;
                }
                let target = every[next(every.len())].clone();
                let n = get(&mut edited.roots, &target);
                match next(6) {
                    0 | 1 => {
                        made += 1;
                        let path = format!("{}/c{made}", n.path);
                        let at = next(n.children.len() + 1);
                        n.children.insert(at, node(&path, 0, vec![]));
                    }
                    2 => n.restarts += 1,
                    3 => {
                        n.status = if n.status == Status::Running {
                            Status::Stopped
                        } else {
                            Status::Running
                        }
                    }
                    4 if !n.children.is_empty() => {
                        let i = next(n.children.len());
                        n.children.remove(i);
                    }
                    _ if n.children.len() > 1 => n.children.rotate_left(1),
                    _ => {
                        let (parent, i) = target.split_at(target.len() - 1);
                        if parent.is_empty() {
                            edited.roots.remove(i[0]);
                        } else {
                            get(&mut edited.roots, parent).children.remove(i[0]);
                        }
                    }
                }
            }
            let (prev, next_flat) = (Flat::of(&server), Flat::of(&edited));
            if let Some(d) = diff(&prev, &edited, &next_flat) {
                apply(&mut client, &d);
            }
            assert_eq!(rebuild(&client), edited.roots, "round {round}");
            server = edited;
        }
    }

    #[tokio::test]
    async fn a_client_a_whole_buffer_behind_is_dropped() {
        let hub = Arc::new(Hub::new(2));
        let sub = hub.subscribe(None);
        for n in 0..3 {
            let _ = hub.tx.send(Arc::new(Frame {
                id: 100 + n,
                kind: "diff",
                data: String::new(),
            }));
        }
        let (_stop, ending) = Ending::for_test();
        let events: Vec<_> = futures::StreamExt::collect::<Vec<_>>(hub.clone().stream(
            sub,
            ending,
            Duration::from_secs(1),
        ))
        .await;
        // The snapshot, then the drop: the stream ends by itself.
        assert_eq!(events.len(), 2);
        let last = format!("{:?}", events[1].as_ref().unwrap());
        assert!(last.contains("dropped"), "{last}");
        assert_eq!(hub.clients(), 0);
    }
}
