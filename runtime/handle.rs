//! Restart-transparent handles: a reference to a child that follows it across restarts.
//!
//! A ractor `ActorRef` names one incarnation; after a restart it points at a dead actor and every
//! send to it fails. A [`ChildHandle`] names the child slot instead: it keeps the current
//! incarnation's `ActorRef` and sends straight to it (no lock and no extra hop: each thread keeps
//! the incarnation it last sent to, valid until a restart moves the handle's generation on), and
//! when that incarnation is gone it looks up the new one in the supervisor's shared state. A child of a static supervisor is
//! followed by its path (`/app/web/listener`): when its supervisor, or any supervisor above it, is
//! restarted, the handle finds the child under the supervisor's next incarnation.
//!
//! While the child is restarting, or will be (its supervisor, or one above it, is being restarted),
//! a [`cast`](ChildHandle::cast) or [`call`](ChildHandle::call) waits for the new incarnation, up to
//! a bound, holding one of a bounded number of slots. Every way a message cannot be delivered is an
//! error returned to the sender: [`HandleError::Timeout`], [`HandleError::Overflow`],
//! [`HandleError::ChildStopped`] at once for a child that is stopped until someone calls
//! `restart_child` (terminated through the API, or it ignored its start), and
//! [`HandleError::ChildGone`] once the child is gone for good (removed, a temporary child that
//! exited, or its supervisor stopped for good). A dynamic child is gone with its supervisor: a
//! dynamic supervisor that is restarted starts with no children.
//!
//! While a supervisor stops its children one by one, a child it has already stopped is judged by
//! what happens to the supervisor: a send waits if a supervisor above is restarting it, and gets
//! `ChildGone` if the tree is stopping for good. A child not stopped yet still takes messages until
//! its turn, so the children stopped before it can drain through their handles.
//!
//! What a handle cannot promise, no more than OTP can: a message accepted into a mailbox of an actor
//! that then crashes before handling it is lost with that actor.
//!
//! ```
//! use canopy::{ChildSpec, Supervisor, SupervisorSpec};
//! use canopy::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
//!
//! #[derive(Clone)]
//! struct Counter;
//! enum Msg { Add(u64), Get(RpcReplyPort<u64>), Crash }
//!
//! impl Actor for Counter {
//!     type Msg = Msg;
//!     type State = u64;
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> { Ok(0) }
//!     async fn handle(&self, _: ActorRef<Msg>, msg: Msg, n: &mut u64) -> Result<(), ActorProcessingErr> {
//!         match msg {
//!             Msg::Add(k) => *n += k,
//!             Msg::Get(reply) => { let _ = reply.send(*n); }
//!             Msg::Crash => return Err("crash".into()),
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sup = Supervisor::start(SupervisorSpec::default().child(ChildSpec::actor("counter", Counter, ()))).await?;
//! let counter = sup.handle::<Msg>("counter")?;
//! counter.cast(Msg::Add(2)).await?;
//! assert_eq!(counter.call(Msg::Get, None).await?, 2);
//!
//! let first = counter.current().map(|a| a.get_id());
//! counter.cast(Msg::Crash).await?;
//! // Messages already in the crashed incarnation's mailbox die with it; wait until it is down.
//! while counter.current().map(|a| a.get_id()) == first {
//!     tokio::task::yield_now().await;
//! }
//! // Sent while the child restarts: waits for the new incarnation, then reaches it.
//! counter.cast(Msg::Add(5)).await?;
//! assert_eq!(counter.call(Msg::Get, None).await?, 5);
//! sup.shutdown().await;
//! assert!(matches!(counter.cast(Msg::Add(1)).await, Err(canopy::handle::HandleError::ChildGone)));
//! # Ok(()) }
//! ```

use std::any::TypeId;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use ractor::concurrency::OneshotReceiver;
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, ActorStatus, Message, MessagingErr, RpcReplyPort};
use tokio::sync::{watch, Semaphore};

use crate::core::{ChildInfo, ChildStatus};
use crate::introspect::{self, Node};
use crate::spec::{Restart, SpecError};

/// How long a send waits for a restarting child, and how many sends may wait at once.
///
/// ```
/// use std::time::Duration;
/// use canopy::handle::HandleOptions;
/// let opts = HandleOptions::default().wait(Duration::from_secs(1)).buffer(64);
/// assert!(opts.validate().is_ok());
/// assert!(HandleOptions::default().buffer(0).validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleOptions {
    wait: Duration,
    buffer: usize,
}

impl Default for HandleOptions {
    /// Wait up to 5 s; up to 1,024 sends waiting at once.
    fn default() -> Self {
        HandleOptions {
            wait: Duration::from_secs(5),
            buffer: 1024,
        }
    }
}

impl HandleOptions {
    /// The longest a send waits for the child to be running again.
    pub fn wait(mut self, bound: Duration) -> Self {
        self.wait = bound;
        self
    }

    /// How many sends may wait for a restart at the same time; one more is [`HandleError::Overflow`].
    /// Zero is refused by [`validate`](Self::validate); a number beyond what tokio's semaphore
    /// holds (about 2^61) is that many.
    pub fn buffer(mut self, capacity: usize) -> Self {
        self.buffer = capacity;
        self
    }

    /// A zero buffer is [`SpecError::ZeroBufferCapacity`].
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.buffer == 0 {
            return Err(SpecError::ZeroBufferCapacity);
        }
        Ok(())
    }
}

/// Why a handle could not deliver.
///
/// ```
/// assert_eq!(canopy::handle::HandleError::ChildGone.to_string(), "the child is gone for good");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// The child was removed, was temporary and exited, or its supervisor stopped for good (a
    /// dynamic child is gone with its supervisor: a restarted dynamic supervisor starts empty).
    ChildGone,
    /// The child is stopped and comes back only if someone calls `restart_child` (it was
    /// terminated through the API, it ignored its start, or it exited and its restart type does not
    /// restart it); a send fails at once instead of waiting out the bound.
    ChildStopped,
    /// The child did not come back within the handle's wait bound.
    Timeout(Duration),
    /// Too many sends were already waiting for the child to come back.
    Overflow(usize),
    /// The child runs an actor of another message type than the handle's.
    WrongType,
    /// The call was sent but no reply came: the child died while handling it, or the call's own
    /// timeout ran out.
    CallFailed(String),
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::ChildGone => f.write_str("the child is gone for good"),
            HandleError::ChildStopped => {
                f.write_str("the child is stopped until someone calls restart_child")
            }
            HandleError::Timeout(d) => write!(f, "the child did not come back within {d:?}"),
            HandleError::Overflow(n) => {
                write!(
                    f,
                    "{n} sends are already waiting for the child to come back"
                )
            }
            HandleError::WrongType => {
                f.write_str("the child's actor takes another message type than this handle")
            }
            HandleError::CallFailed(why) => write!(f, "the call got no reply: {why}"),
        }
    }
}

impl std::error::Error for HandleError {}

/// Where a handle finds the current incarnation: child `id` of the supervisor at `sup_path`.
struct Slot {
    sup_path: String,
    id: String,
    /// The supervisor last seen at that path, tried before a lookup by path.
    node: RwLock<Weak<Node>>,
    /// Follow the path to the next incarnation of the supervisor when this one is gone. A dynamic
    /// child does not: it is gone with its supervisor's state, arguments and all, and the next
    /// incarnation's child with the same key is another child.
    follow: bool,
}

enum Lookup {
    Running(ActorCell),
    /// Restarting, or about to be: wait for it.
    Waiting,
    /// Stopped until someone calls `restart_child`: do not wait.
    Stopped,
    Gone,
}

impl Slot {
    fn id(&self) -> &str {
        &self.id
    }

    /// The running supervisor of the child, following its path if the one we knew is gone.
    fn node(&self) -> Option<Arc<Node>> {
        let known = self.node.read().upgrade();
        if let Some(node) = known.filter(|n| n.cell.get_status() < ActorStatus::Stopping) {
            return Some(node);
        }
        if !self.follow {
            return None;
        }
        let node = introspect::node_at(&self.sup_path)?;
        *self.node.write() = Arc::downgrade(&node);
        Some(node)
    }

    fn lookup(&self) -> Lookup {
        match self.node() {
            Some(node) => {
                let status = status_of(node.children.child(&self.id));
                // The supervisor may have begun its own stop before the read (ractor stops the
                // children of a killed supervisor; an ordered shutdown stops them one by one): an
                // entry that says the child is not running then tells that stop, not the child's
                // fate, which the supervisors above decide. Both are read after the entry and never
                // turn back, so a supervisor seen still running was running when it was read. A
                // child still running under an ordered shutdown keeps taking messages until its
                // turn comes: that is what lets the children stopped before it drain.
                let killed = node.cell.get_status() >= ActorStatus::Stopping;
                if killed || (!matches!(status, Lookup::Running(_)) && node.children.exiting()) {
                    return if self.follow {
                        fate_of(&self.sup_path)
                    } else {
                        Lookup::Gone
                    };
                }
                status
            }
            None if self.follow => fate_of(&self.sup_path),
            None => Lookup::Gone,
        }
    }

    /// What to wait on for a change: the child's supervisor, or while it is down, the nearest
    /// running supervisor above it, which will start it again.
    fn changes(&self) -> Option<watch::Receiver<u64>> {
        if let Some(node) = self.node() {
            return Some(node.subscribe());
        }
        if !self.follow {
            return None;
        }
        let mut path = self.sup_path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            if parent.is_empty() {
                return None;
            }
            if let Some(node) = introspect::node_at(parent) {
                return Some(node.subscribe());
            }
            path = parent;
        }
        None
    }
}

/// What a child's entry in its supervisor says about sending to it.
fn status_of(info: Option<ChildInfo>) -> Lookup {
    let Some(info) = info else {
        return Lookup::Gone;
    };
    match info.status {
        // This incarnation no longer takes messages and the supervisor has not processed its exit
        // yet: it will decide, so wait.
        ChildStatus::Running(cell) if cell.get_status() >= ActorStatus::Draining => Lookup::Waiting,
        ChildStatus::Running(cell) => Lookup::Running(cell),
        ChildStatus::Restarting => Lookup::Waiting,
        ChildStatus::Stopped if info.restart == Restart::Temporary => Lookup::Gone,
        ChildStatus::Stopped => Lookup::Stopped,
    }
}

/// What became of a supervisor that is not running at `path`: its own supervisor's entry for it
/// says, or, if that one is down too, the next one up.
fn fate_of(path: &str) -> Lookup {
    let Some((parent, name)) = path.rsplit_once('/') else {
        return Lookup::Gone;
    };
    if parent.is_empty() {
        // A top-level supervisor that is gone has nobody to start it again.
        return Lookup::Gone;
    }
    match introspect::node_at(parent) {
        Some(node) => match status_of(node.children.child(name)) {
            // A parent that is stopping for good starts nothing again: ask the one above it.
            _ if node.children.exiting() || node.cell.get_status() >= ActorStatus::Stopping => {
                fate_of(parent)
            }
            // Started again but not registered yet, or about to be: wait.
            Lookup::Running(_) | Lookup::Waiting => Lookup::Waiting,
            other => other,
        },
        None => fate_of(parent),
    }
}

/// A typed, cloneable reference to a supervised child that always addresses its current
/// incarnation. See the [module docs](self).
pub struct ChildHandle<M: Message> {
    inner: Arc<Inner<M>>,
}

impl<M: Message> Clone for ChildHandle<M> {
    fn clone(&self) -> Self {
        ChildHandle {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Message> fmt::Debug for ChildHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildHandle")
            .field("id", &self.inner.slot.id())
            .finish_non_exhaustive()
    }
}

struct Inner<M> {
    slot: Slot,
    /// The incarnation sends go to, as last looked up; `None` while it is down.
    current: RwLock<Option<ActorRef<M>>>,
    /// This handle's number, unique in the process, and how many times `current` was replaced:
    /// together they name one value of `current` in a thread's [`RECENT`] cache.
    key: u64,
    generation: AtomicU64,
    options: HandleOptions,
    waiting: Semaphore,
    _msg: PhantomData<fn(M)>,
}

impl<M: Message> ChildHandle<M> {
    fn new(slot: Slot, options: HandleOptions) -> Result<Self, SpecError> {
        options.validate()?;
        Ok(ChildHandle {
            inner: Arc::new(Inner {
                slot,
                current: RwLock::new(None),
                key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
                generation: AtomicU64::new(0),
                options,
                // Beyond tokio's limit a bound is no bound: clamp rather than panic.
                waiting: Semaphore::new(options.buffer.min(Semaphore::MAX_PERMITS)),
                _msg: PhantomData,
            }),
        })
    }

    /// The child's id (a dynamic child's key as text).
    pub fn id(&self) -> &str {
        self.inner.slot.id()
    }

    /// The current incarnation, if the child is running now.
    pub fn current(&self) -> Option<ActorRef<M>> {
        match self.resolve() {
            Ok(Some(actor)) => Some(actor),
            _ => None,
        }
    }

    /// Sends `msg` to the current incarnation; while the child is restarting, waits for the next one
    /// (up to the wait bound, in one of the bounded waiting slots).
    pub async fn cast(&self, msg: M) -> Result<(), HandleError> {
        // The fast path: the cached incarnation is up.
        let mut msg = Some(msg);
        if self.try_cast_cached(&mut msg)?.is_delivered() {
            return Ok(());
        }
        self.wait_and_send(&mut msg).await
    }

    /// The slow path of a send that the cached incarnation did not take: waits for the child to
    /// run, then sends `msg` (taken from its slot).
    async fn wait_and_send(&self, msg: &mut Option<M>) -> Result<(), HandleError> {
        let _slot = self.wait_slot()?;
        let deadline = crate::deadline_in(self.inner.options.wait);
        loop {
            let actor = self.running_before(deadline).await?;
            // It died between the lookup and the send: the message came back, try the next one.
            if send(&actor, msg)?.is_delivered() {
                return Ok(());
            }
        }
    }

    /// Calls the current incarnation (waiting for it as [`cast`](Self::cast) does) and returns its
    /// reply. The call itself is not retried: once sent, a crash of the child is
    /// [`HandleError::CallFailed`].
    pub async fn call<R, F>(&self, request: F, timeout: Option<Duration>) -> Result<R, HandleError>
    where
        R: Send + 'static,
        F: FnOnce(RpcReplyPort<R>) -> M,
    {
        let (port, reply) = reply_port(timeout);
        // Sent as a cast: the incarnation is only borrowed for the send, and a request that a
        // dying incarnation refused goes to the next one.
        let mut msg = Some(request(port));
        if !self.try_cast_cached(&mut msg)?.is_delivered() {
            Box::pin(self.wait_and_send(&mut msg)).await?;
        }
        match wait_reply(reply, timeout).await {
            CallResult::Success(reply) => Ok(reply),
            CallResult::Timeout => Err(HandleError::CallFailed("timed out".into())),
            CallResult::SenderError => Err(HandleError::CallFailed(
                "the child stopped before it replied".into(),
            )),
        }
    }

    /// The synchronous first step of [`cast`](Self::cast): sends the message in `msg` to the
    /// cached incarnation. [`Sent::Delivered`] took it out; [`Sent::Refused`] left it there (no
    /// incarnation is cached, or it is stopping) for the waiting path.
    ///
    /// The message stays in the caller's slot rather than going in and out by value: a cast that
    /// is delivered (nearly all of them) then moves it once, into ractor's send.
    #[inline]
    pub(crate) fn try_cast_cached(&self, msg: &mut Option<M>) -> Result<Sent, HandleError> {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let key = self.inner.key;
        let sent = RECENT.try_with(|recent| {
            // Borrowed already: this send is made from inside another one on this thread (by a
            // tracing subscriber, say). It goes through the shared cache below instead.
            let mut recent = recent.try_borrow_mut().ok()?;
            let cell = recent.get(key, generation, || {
                // Not sent through this handle from this thread since the cache last changed:
                // one read of the shared cache, kept for the next sends.
                self.inner.current.read().as_ref().map(|a| a.get_cell())
            })?;
            Some(send(cell, msg))
        });
        match sent {
            Ok(Some(sent)) => sent,
            // Nothing cached (the child is down), this thread's cache is in use or gone already
            // (a send from a thread-local destructor): the shared cache decides.
            _ => match self.inner.current.read().as_ref() {
                Some(actor) => send(actor, msg),
                None => Ok(Sent::Refused),
            },
        }
    }

    /// A handle to child `id` of the static supervisor at `sup_path`, which need not be running
    /// now: the handle finds it by path when it is. Generated supervisor handles use this for the
    /// children of nested supervisors.
    pub(crate) fn at_path(sup_path: String, id: String) -> Result<Self, SpecError> {
        let node = introspect::node_at(&sup_path)
            .map(|n| Arc::downgrade(&n))
            .unwrap_or_default();
        let slot = Slot {
            sup_path,
            id,
            node: RwLock::new(node),
            follow: true,
        };
        ChildHandle::new(slot, HandleOptions::default())
    }

    fn wait_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, HandleError> {
        self.inner
            .waiting
            .try_acquire()
            .map_err(|_| HandleError::Overflow(self.inner.options.buffer))
    }

    /// Replaces the cached incarnation, and moves the generation on so that every thread's copy
    /// of the old one misses. The bump is made under the write lock: a thread that read the
    /// generation before it reads at least this value, never an older one, under that generation.
    fn set_current(&self, actor: Option<ActorRef<M>>) {
        let mut current = self.inner.current.write();
        *current = actor;
        self.inner.generation.fetch_add(1, Ordering::Release);
    }

    /// Looks the child up and refreshes the cache: `Some` if it runs now, `None` if it will again.
    fn resolve(&self) -> Result<Option<ActorRef<M>>, HandleError> {
        match self.inner.slot.lookup() {
            Lookup::Gone => {
                self.set_current(None);
                Err(HandleError::ChildGone)
            }
            Lookup::Waiting => Ok(None),
            Lookup::Stopped => {
                self.set_current(None);
                Err(HandleError::ChildStopped)
            }
            Lookup::Running(cell) => {
                if cell.get_type_id() != TypeId::of::<M>() {
                    return Err(HandleError::WrongType);
                }
                let actor: ActorRef<M> = cell.into();
                self.set_current(Some(actor.clone()));
                Ok(Some(actor))
            }
        }
    }

    /// Waits until the child runs, the deadline passes, or it is gone.
    async fn running_before(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<ActorRef<M>, HandleError> {
        let Some(mut changes) = self.inner.slot.changes() else {
            return Err(HandleError::ChildGone);
        };
        loop {
            // Subscribe first, then look: a restart between the two still wakes us.
            changes.borrow_and_update();
            if let Some(actor) = self.resolve()? {
                return Ok(actor);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                // That supervisor is gone with its state: follow the path to whoever decides now.
                Ok(Err(_)) => match self.inner.slot.changes() {
                    Some(next) => changes = next,
                    None => return Err(HandleError::ChildGone),
                },
                Err(_) => {
                    // A last look: the exit of a dead incarnation may not have been processed when
                    // we last looked, and no change is signalled for a child that merely died.
                    return match self.resolve()? {
                        Some(actor) => Ok(actor),
                        None => Err(HandleError::Timeout(self.inner.options.wait)),
                    };
                }
            }
        }
    }
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The incarnations this thread last sent to through handles. A send through a handle finds
    /// its incarnation here, by the handle's key and its generation, with no lock and no write to
    /// memory another thread touches: a shared read lock cost the cast benchmark about 6%. A
    /// restart moves the generation on, so a stale entry is never used, only evicted.
    static RECENT: RefCell<Recent> = const { RefCell::new(Recent::new()) };
}

/// A few (handle key, generation, incarnation) entries, replaced round-robin. Each holds a
/// reference to its incarnation, so an entry is valid for as long as it is there; what it costs is
/// that a stopped actor's memory is freed only once its entry is replaced (at most
/// [`Recent::SIZE`] per thread).
struct Recent {
    entries: [(u64, u64, Option<ActorCell>); Recent::SIZE],
    /// Where the next new handle's entry goes.
    next: usize,
    /// The entry found last.
    last: usize,
}

impl Recent {
    const SIZE: usize = 4;

    const fn new() -> Self {
        Recent {
            // Key u64::MAX is never handed out: these match nothing.
            entries: [
                (u64::MAX, 0, None),
                (u64::MAX, 0, None),
                (u64::MAX, 0, None),
                (u64::MAX, 0, None),
            ],
            next: 0,
            last: 0,
        }
    }

    /// The incarnation cached for this handle and generation, read from the shared cache with
    /// `load` on a miss and kept. The entry used last is tried first: a thread that sends through
    /// one handle in a loop finds it with one comparison.
    #[inline]
    fn get(
        &mut self,
        key: u64,
        generation: u64,
        load: impl FnOnce() -> Option<ActorCell>,
    ) -> Option<&ActorCell> {
        let last = self.last;
        let at = if self.entries[last].0 == key && self.entries[last].1 == generation {
            last
        } else {
            self.find_or_insert(key, generation, load)
        };
        self.entries[at].2.as_ref()
    }

    #[cold]
    fn find_or_insert(
        &mut self,
        key: u64,
        generation: u64,
        load: impl FnOnce() -> Option<ActorCell>,
    ) -> usize {
        let at = match self
            .entries
            .iter()
            .position(|(k, g, _)| *k == key && *g == generation)
        {
            Some(at) => at,
            None => {
                // The handle's stale entry if it has one, so that one handle takes one entry.
                let at = self
                    .entries
                    .iter()
                    .position(|(k, _, _)| *k == key)
                    .unwrap_or_else(|| {
                        let at = self.next;
                        self.next = (at + 1) % Self::SIZE;
                        at
                    });
                self.entries[at] = (key, generation, load());
                at
            }
        };
        self.last = at;
        at
    }
}

/// What became of a message sent to one incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// It is in the incarnation's mailbox.
    Delivered,
    /// Refused: that incarnation is stopping or gone (or none was there to send to). The message
    /// is back in its slot, for the next incarnation.
    Refused,
}

impl Sent {
    pub(crate) fn is_delivered(self) -> bool {
        self == Sent::Delivered
    }
}

/// Sends the message in `msg` to one incarnation: taken out if delivered, put back if refused.
/// An empty slot has nothing to send and is [`Sent::Refused`].
#[inline]
fn send<M: Message>(actor: &ActorCell, msg: &mut Option<M>) -> Result<Sent, HandleError> {
    let Some(m) = msg.take() else {
        return Ok(Sent::Refused);
    };
    match actor.send_message(m) {
        Ok(()) => Ok(Sent::Delivered),
        Err(MessagingErr::SendErr(back)) => {
            *msg = Some(back);
            Ok(Sent::Refused)
        }
        Err(MessagingErr::InvalidActorType) => Err(HandleError::WrongType),
        Err(MessagingErr::ChannelClosed) => Err(HandleError::ChildGone),
    }
}

/// A reply port for a call and the receiver of its reply. With a bound, the port carries it, as
/// ractor's own `call` does, so that the callee can tell that the caller stopped waiting.
pub(crate) fn reply_port<R>(bound: Option<Duration>) -> (RpcReplyPort<R>, OneshotReceiver<R>) {
    let (tx, rx) = ractor::concurrency::oneshot();
    let port = match bound {
        Some(bound) => RpcReplyPort::from((tx, bound)),
        None => RpcReplyPort::from(tx),
    };
    (port, rx)
}

/// Waits for the reply to a sent call, up to `bound`.
pub(crate) async fn wait_reply<R>(
    reply: OneshotReceiver<R>,
    bound: Option<Duration>,
) -> CallResult<R> {
    let outcome = match bound {
        Some(bound) => match tokio::time::timeout(bound, reply).await {
            Ok(outcome) => outcome,
            Err(_) => return CallResult::Timeout,
        },
        None => reply.await,
    };
    match outcome {
        Ok(reply) => CallResult::Success(reply),
        // The port was dropped unanswered: the incarnation stopped (or dropped the request).
        Err(_) => CallResult::SenderError,
    }
}

impl crate::supervisor::SupervisorRef {
    /// A handle to child `id`, with [`HandleOptions::default`]. The child need not be running.
    ///
    /// Errors: [`NotFound`](crate::core::ChildError::NotFound) if there is no such child,
    /// [`SupervisorDown`](crate::core::ChildError::SupervisorDown) if the supervisor is not running.
    pub fn handle<M: Message>(&self, id: &str) -> Result<ChildHandle<M>, crate::ChildError> {
        self.handle_with(id, HandleOptions::default())
    }

    /// A handle to child `id` with these options; a zero buffer is a
    /// [`Spec`](crate::core::ChildError::Spec) error.
    pub fn handle_with<M: Message>(
        &self,
        id: &str,
        options: HandleOptions,
    ) -> Result<ChildHandle<M>, crate::ChildError> {
        let node = introspect::node(&self.id()).ok_or(crate::ChildError::SupervisorDown)?;
        if node.children.child(id).is_none() {
            return Err(crate::ChildError::NotFound(id.to_string()));
        }
        let slot = Slot {
            sup_path: node.path.clone(),
            id: id.to_string(),
            node: RwLock::new(Arc::downgrade(&node)),
            follow: true,
        };
        ChildHandle::new(slot, options).map_err(crate::ChildError::Spec)
    }
}

impl<A: crate::dynamic::StartArgs> crate::dynamic::DynamicRef<A> {
    /// A handle to the dynamic child now running as `child`, with [`HandleOptions::default`]. It
    /// follows that child across its restarts (the same start arguments, a new actor).
    ///
    /// ```
    /// use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
    /// # #[derive(Clone)] struct Conn;
    /// # impl canopy::ractor::Actor for Conn {
    /// #     type Msg = u32; type State = (); type Arguments = u32;
    /// #     async fn pre_start(&self, _: canopy::ractor::ActorRef<u32>, _: u32) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
    /// # }
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = DynamicSupervisor::start(DynamicSpec::actor(Conn)).await?;
    /// let started = pool.start_child(7).await?;
    /// let conn = pool.handle::<u32>(started.cell.as_ref().expect("started"))?;
    /// conn.cast(42).await?;
    /// pool.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn handle<M: Message>(
        &self,
        child: &ActorCell,
    ) -> Result<ChildHandle<M>, crate::ChildError> {
        self.handle_with(child, HandleOptions::default())
    }

    /// [`handle`](Self::handle) with these options; a zero buffer is a
    /// [`Spec`](crate::core::ChildError::Spec) error.
    pub fn handle_with<M: Message>(
        &self,
        child: &ActorCell,
        options: HandleOptions,
    ) -> Result<ChildHandle<M>, crate::ChildError> {
        let node = introspect::node(&self.id()).ok_or(crate::ChildError::SupervisorDown)?;
        let id = node
            .children
            .which_children()
            .into_iter()
            .find(|c| c.status.pid() == Some(child))
            .map(|c| c.id)
            .ok_or_else(|| crate::ChildError::NotFound(format!("actor {}", child.get_id())))?;
        let slot = Slot {
            sup_path: node.path.clone(),
            id,
            node: RwLock::new(Arc::downgrade(&node)),
            follow: false,
        };
        ChildHandle::new(slot, options).map_err(crate::ChildError::Spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChildSpec, Supervisor, SupervisorSpec};
    use ractor::{Actor, ActorProcessingErr};
    use tokio::sync::mpsc;

    #[derive(Clone)]
    struct Echo;

    impl Actor for Echo {
        type Msg = u32;
        type State = mpsc::UnboundedSender<u32>;
        type Arguments = mpsc::UnboundedSender<u32>;
        async fn pre_start(
            &self,
            _: ActorRef<u32>,
            out: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(out)
        }
        async fn handle(
            &self,
            _: ActorRef<u32>,
            n: u32,
            out: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            let _ = out.send(n);
            Ok(())
        }
    }

    /// A send made while this thread's cache is borrowed (from inside another send: a tracing
    /// subscriber or a message's destructor that sends) must neither panic on the `RefCell` nor be
    /// refused: it goes through the shared cache.
    #[tokio::test]
    async fn a_send_from_inside_another_send_goes_through_the_shared_cache() {
        let (out, mut seen) = mpsc::unbounded_channel();
        let sup =
            Supervisor::start(SupervisorSpec::default().child(ChildSpec::actor("echo", Echo, out)))
                .await
                .expect("supervisor starts");
        let h = sup.handle::<u32>("echo").expect("a handle");
        // Fills this thread's cache, and the shared one, with the running incarnation.
        h.cast(1).await.expect("first cast");
        let sent = RECENT.with(|recent| {
            let _held = recent.borrow_mut();
            let mut msg = Some(2);
            let sent = h.try_cast_cached(&mut msg);
            (sent, msg)
        });
        assert!(matches!(sent, (Ok(Sent::Delivered), None)), "{:?}", sent.0);
        assert_eq!(seen.recv().await, Some(1));
        assert_eq!(seen.recv().await, Some(2));
        sup.shutdown().await;
    }
}
