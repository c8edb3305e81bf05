//! The supervisor shell: the one ractor actor that carries out a core's decisions, for static and
//! dynamic supervisors alike.
//!
//! A supervisor's decisions live in a pure core ([`Core`](crate::core::Core) or
//! [`DynCore`](crate::dynamic::core::DynCore)); the shell only turns ractor's supervision events and
//! API messages into core events, and the core's commands into actions: run a start function, stop
//! one child, stop many at once, and, when an operation is over, reply, queue a retry or exit. A
//! [`Behaviour`] adapts each core to the shell; everything else (the drive loop, retry and kill
//! timers, the start wrapper, reports, the request/reply helper) is written once, here.
//!
//! **Real exit reasons.** While it runs, the shell stops a child the way OTP's supervisor does: it
//! signals the child and then waits for the child's own exit event, whose reason is the one recorded,
//! logged and reported. A restart round (one_for_all, rest_for_one) waits on each child's cell
//! instead, to keep the round off the actor's loop, and reads each real reason from the exit event
//! right after the round, before any message is handled. A child whose `post_stop` fails, that
//! panics while draining or that exited by itself just before the stop shows that reason (and a
//! `shutdown_error` report where the rules say so), not the reason that was asked for. Anything
//! that arrives while an operation waits for exits (API calls, other children's exits, retries, its
//! own stop request) is kept in order and handled after the operation, as OTP's supervisor does
//! with its selective receive.
//!
//! A graceful stop asked of a canopy supervisor by canopy (its parent's shutdown, the app's teardown,
//! [`AnySupervisorRef::shutdown`]) is a message, handled in that order. Two paths cannot wait for
//! exit events because ractor does not run the actor's loop there: a start-up that fails half-way,
//! and a plain ractor `stop` sent to a supervisor from outside. On those the shell waits on each
//! child's cell, and the reason it records is what it saw: `shutdown` for a child that stopped when
//! asked, `killed` for one it had to kill, and "exited by itself" (no reason) for one that was
//! already gone.
//!
//! Stopping a child is bounded by its policy: one timer per supervisor, reset rather than re-created
//! for each child, fires a kill when the child overstays.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use ractor::concurrency::JoinHandle;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};

use crate::core::{AwaitedExit, ChildCounts, ChildError, ChildInfo, Report, StartFailure};
use crate::exit::ExitReason;
use crate::introspect;
use crate::pid_hash::PidHash;
use crate::shutdown;
use crate::spec::{panic_text, BoxError, ChildSpec, Shutdown, SpecError, Start, StartInfo};

const T: &str = "canopy::supervisor";

// -------------------------------------------------------------------------------------------------
// What a core asks of the shell

/// A command of either core, in the shell's terms.
pub(crate) enum Cmd<J> {
    /// Run a start function (described by the behaviour's job) and report with `started`.
    Start(J),
    /// Stop one child by its policy and report with `terminated`.
    Terminate {
        id: String,
        pid: ActorCell,
        shutdown: Shutdown,
    },
    /// Stop all of these dynamic children (by key) at once and report with `terminated_all`, in
    /// the same order. Keys, not ids: a shutdown of 100,000 children formats no id unless it logs.
    TerminateAll(Vec<(u64, ActorCell, Shutdown)>),
    /// The operation is over.
    Done(Done),
}

/// How an operation ended, in the shell's terms.
#[derive(Debug)]
pub(crate) enum Done {
    /// Start-up finished.
    Ready,
    /// A child failed during start-up; the ones started before it were stopped.
    InitFailed { id: String, reason: String },
    /// Nothing more to do, unless a restart must be come back to.
    Idle(Option<RetryAt>),
    /// Every child is down; the supervisor exits with this reason.
    Exit(ExitReason),
    /// The answer to a child management call.
    Reply(Result<Option<ActorCell>, ChildError>),
}

/// A restart the shell must come back to: after `after`, it calls the behaviour's `retry_due` with
/// this key and generation (a timer whose generation is no longer the child's does nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryAt {
    pub(crate) key: RetryKey,
    pub(crate) after: Duration,
    pub(crate) generation: u64,
}

/// Which child a retry is for: a static child by id, a dynamic one by key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RetryKey {
    Id(String),
    Key(u64),
}

impl fmt::Display for RetryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryKey::Id(id) => f.write_str(id),
            RetryKey::Key(key) => write!(f, "{key}"),
        }
    }
}

/// A child management call that may start an operation.
pub(crate) enum Api {
    /// Static: add and start this child.
    StartSpec(Arc<ChildSpec>),
    /// Dynamic: start a child with these arguments (boxed, since the message type is shared).
    StartArgs(Box<dyn Any + Send>),
    /// Static: stop a child by id.
    TerminateId(String),
    /// Dynamic: stop a child by its cell.
    TerminateCell(ActorCell),
    /// Static: start a stopped child again.
    RestartId(String),
}

/// A question answered from the core's state, without an operation.
pub(crate) enum Query {
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    /// Static: by id.
    WhichChildId(String, RpcReplyPort<Option<ChildInfo>>),
    /// Dynamic: by cell.
    WhichChildCell(ActorCell, RpcReplyPort<Option<ChildInfo>>),
    CountChildren(RpcReplyPort<ChildCounts>),
    GetChildSpec(String, RpcReplyPort<Option<ChildSpec>>),
    DeleteChild(String, RpcReplyPort<Result<(), ChildError>>),
}

/// One kind of supervisor, seen by the shell: its core's events and results, in the shell's terms.
/// Every method takes the core's lock for the instant of one decision.
pub(crate) trait Behaviour: Send + Sync + Sized + 'static {
    /// What a start command carries (a child spec, or a dynamic child's arguments).
    type Job: Send;
    /// A future that runs the start function for `job`, as a child of `sup`.
    fn start(&self, job: Self::Job, sup: ActorCell) -> BoxFuture<'static, Result<Start, BoxError>>;
    /// True if `job` starts a supervisor (which abandons its own start-up when asked to).
    fn starts_supervisor(&self, job: &Self::Job) -> bool;
    /// The time now, for the start and exit times the next operation records.
    fn tick(&self, now: std::time::Instant);
    /// Start-up.
    fn init(&self) -> Cmd<Self::Job>;
    /// A child exited; `None` if it is not a current child.
    fn child_exited(
        &self,
        pid: &ActorCell,
        reason: ExitReason,
        now: std::time::Instant,
    ) -> Option<Cmd<Self::Job>>;
    /// A queued retry came up; `None` if it is stale.
    fn retry_due(
        &self,
        key: &RetryKey,
        generation: u64,
        now: std::time::Instant,
    ) -> Option<Cmd<Self::Job>>;
    /// Stop every child and exit with `reason`.
    fn shutdown(&self, reason: ExitReason) -> Cmd<Self::Job>;
    /// The result of the last start.
    fn started(&self, result: Result<Option<ActorCell>, StartFailure>) -> Cmd<Self::Job>;
    /// The result of the last single stop.
    fn terminated(&self, reason: Option<ExitReason>) -> Cmd<Self::Job>;
    /// The results of the last stop of many: each child's key and how it ended.
    fn terminated_all(&self, results: Vec<(u64, Option<ExitReason>)>) -> Cmd<Self::Job>;
    /// True if the operation in progress is a restart round, whose children are stopped inline
    /// (see [`State::stop_in_round`]).
    fn stops_inline(&self) -> bool {
        false
    }
    /// The last single stop of a restart round is over; the child's real reason comes later, through
    /// `stopped_with`, and `seen` stands in for it if it never does.
    fn terminated_later(&self, seen: Option<ExitReason>) -> Cmd<Self::Job> {
        self.terminated(seen)
    }
    /// The real exit reason of a child a restart round stopped: recorded and reported. `None` if
    /// `pid` is not such a child.
    fn stopped_with(&self, _pid: &ActorCell, _reason: &ExitReason) -> Option<AwaitedExit> {
        None
    }
    /// The children of past rounds whose exit events never came, recorded with what was seen.
    fn settle_stopped(&self) -> Vec<AwaitedExit> {
        Vec::new()
    }
    /// A child management call, at `now` (the time the operation it starts records). One lock
    /// for both: a call is on the caller's critical path, and a separate `tick` was a second
    /// lock and unlock of the core per call.
    fn api(&self, call: Api, now: std::time::Instant) -> Cmd<Self::Job>;
    /// A question about the children.
    fn query(&self, query: Query);
    /// Reports gathered since the last call.
    fn take_reports(&self) -> Vec<Report>;
    /// True while any child runs.
    fn has_running_children(&self) -> bool;
    /// How many children wait for a restart (logged when a stop cancels them).
    fn pending_restarts(&self) -> usize;
}

// -------------------------------------------------------------------------------------------------
// The actor

/// The supervisor actor: one type for every behaviour.
pub(crate) struct Shell<B>(std::marker::PhantomData<fn() -> B>);

/// The mailbox of every canopy supervisor, static or dynamic.
pub(crate) struct SupervisorMsg(pub(crate) Request);

pub(crate) enum Request {
    /// A call that may start an operation, with where its answer goes.
    Api(Api, ReplyTo),
    Query(Query),
    /// Stop every child in order, then exit with this reason: OTP's `EXIT` from the parent, which a
    /// supervisor handles in mailbox order.
    Shutdown(ExitReason),
    /// A retry whose time has come (OTP's `try_again_restart`, or a backed-off restart).
    Retry(RetryKey, u64),
    /// The kill timer of an operation fired (a stale generation does nothing).
    KillDue(u64),
    /// A child that had unlinked itself is gone (its exit event will never come).
    Gone(ActorId),
}

/// Where the answer to an [`Api`] call goes.
pub(crate) enum ReplyTo {
    Started(RpcReplyPort<Result<StartedChild, ChildError>>),
    Unit(RpcReplyPort<Result<(), ChildError>>),
}

/// A task that sends the supervisor a message when its time comes.
type Timer = JoinHandle<Result<(), MessagingErr<SupervisorMsg>>>;

/// What the shell is given to start a supervisor.
pub(crate) struct Init<B> {
    pub(crate) path: String,
    /// The path comes from a chosen name or child id: a clash with a running supervisor is
    /// [`StartError::PathTaken`]. An unnamed supervisor takes the next free path instead.
    pub(crate) named: bool,
    /// Builds the behaviour, and so decides the spec, inside the new actor. `Ok(None)` is "ignore".
    pub(crate) make: Box<dyn FnOnce() -> Result<Option<B>, StartError> + Send>,
    /// Reads the behaviour's children for the shared tree.
    pub(crate) children: fn(&B) -> Arc<dyn introspect::Children>,
    /// A dynamic supervisor's argument type, so that a typed reference can check it.
    pub(crate) args: Option<std::any::TypeId>,
    /// Turns true when the start-up must be abandoned (the app is stopping before the tree is up).
    /// `None`: inherited from the parent supervisor, if it has one.
    pub(crate) abort: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The shell's state around one behaviour.
pub(crate) struct State<B: Behaviour> {
    b: B,
    node: Arc<introspect::Node>,
    /// Info attached by the last start function, for the API reply.
    last_info: Option<StartInfo>,
    /// The operation waiting for exits, if any.
    op: Option<Op>,
    /// What arrived while an operation was waiting, in arrival order.
    deferred: DeferredQueue,
    /// Backed-off retries waiting for their time, by child, with their generation; aborted when
    /// the supervisor stops.
    retries: HashMap<RetryKey, (u64, Timer)>,
    kill: KillTimer,
    /// The grace timer of the stops a restart round makes inline, reused from child to child.
    round_timer: shutdown::ShutdownTimer,
    /// A restart round stopped children whose exit events are still to be read.
    awaiting_exits: bool,
    /// Set once the supervisor has decided to exit: nothing queued behind that is acted on.
    exiting: bool,
}

enum Deferred {
    Exit(ActorCell, ExitReason),
    Request(Request),
    /// An exit taken out of the queue by the stop of its child; passed over when the queue runs.
    Taken,
}

/// What arrived while an operation was waiting, in arrival order, with the deferred exits also
/// found by actor id. A stop looks up every child it stops here (a child that exited by itself
/// before the stop began is not stopped again), so a stop of `n` children with `d` exits deferred
/// costs `O(n + d)`, not a scan of the queue per child: a storm of exits during a long
/// `terminate_child` followed by a shutdown of 100,000 children would otherwise be quadratic.
#[derive(Default)]
struct DeferredQueue {
    items: VecDeque<Deferred>,
    /// The sequence number the next item gets; the front item's is `next - items.len()`.
    next: u64,
    /// The sequence number of each deferred exit, by the exited actor's id.
    exits: HashMap<ActorId, u64, PidHash>,
}

impl DeferredQueue {
    fn push_request(&mut self, request: Request) {
        self.items.push_back(Deferred::Request(request));
        self.next += 1;
    }

    fn push_exit(&mut self, cell: ActorCell, reason: ExitReason) {
        self.exits.insert(cell.get_id(), self.next);
        self.items.push_back(Deferred::Exit(cell, reason));
        self.next += 1;
    }

    /// The oldest item still to be handled (taken exits are passed over).
    fn pop_front(&mut self) -> Option<Deferred> {
        loop {
            let seq = self.next - self.items.len() as u64;
            match self.items.pop_front()? {
                Deferred::Taken => continue,
                Deferred::Exit(cell, reason) => {
                    let id = cell.get_id();
                    if self.exits.get(&id) == Some(&seq) {
                        self.exits.remove(&id);
                    }
                    return Some(Deferred::Exit(cell, reason));
                }
                request => return Some(request),
            }
        }
    }

    /// The deferred exit of `pid`, taken out of the queue, if there is one: the child exited by
    /// itself before the operation that now stops it began.
    fn take_exit(&mut self, pid: &ActorCell) -> Option<ExitReason> {
        if self.exits.is_empty() {
            // The usual case, checked first: no hashing for each child a stop stops.
            return None;
        }
        let seq = self.exits.remove(&pid.get_id())?;
        let front = self.next - self.items.len() as u64;
        let slot = self.items.get_mut(usize::try_from(seq - front).ok()?)?;
        match std::mem::replace(slot, Deferred::Taken) {
            Deferred::Exit(_, reason) => Some(reason),
            other => {
                // The index and the queue disagree; leave the item as it was.
                *slot = other;
                None
            }
        }
    }

    fn clear(&mut self) {
        self.items.clear();
        self.exits.clear();
    }
}

/// An operation suspended while it waits for children to exit.
struct Op {
    wait: Wait,
    then: Then,
}

/// What to do with an operation's outcome.
enum Then {
    /// A call: reply to it.
    Reply(ReplyTo),
    /// Anything else: queue its retry or exit.
    Background,
}

enum Wait {
    /// One child (`terminated`).
    One {
        id: String,
        pid: ActorCell,
        shutdown: Shutdown,
        deadline: Option<tokio::time::Instant>,
    },
    /// Many children at once (`terminated_all`), each with its own kill deadline: its policy's
    /// grace counted from `since`.
    All {
        children: Vec<(u64, ActorCell, Shutdown)>,
        /// Each child's key and, once seen, its reason: already in the form `terminated_all`
        /// takes, so the end of a 100,000-child stop does not copy them into another vector.
        results: Vec<(u64, Option<ExitReason>)>,
        /// When the stop began. One instant rather than a deadline per child: the deadlines
        /// follow from it and each child's policy, and are needed only when the kill timer fires.
        since: tokio::time::Instant,
        /// Where each child still waited for is in `children`: an exit event finds its child in
        /// O(1), so stopping 100,000 children is not quadratic.
        index: HashMap<ActorId, usize, PidHash>,
        left: usize,
    },
}

impl Wait {
    /// The earliest kill deadline of a child still waited for.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        match self {
            Wait::One { deadline, .. } => *deadline,
            Wait::All {
                children,
                results,
                since,
                ..
            } => children
                .iter()
                .zip(results)
                .filter(|(_, (_, reason))| reason.is_none())
                .filter_map(|((_, _, policy), _)| kill_deadline_from(*since, *policy))
                .min(),
        }
    }
}

/// The deadline by which a child stopped under `policy` is killed, if any. A grace too long to
/// add to the clock means no bound.
fn kill_deadline(policy: Shutdown) -> Option<tokio::time::Instant> {
    kill_deadline_from(tokio::time::Instant::now(), policy)
}

/// [`kill_deadline`] from a clock read once for many children.
fn kill_deadline_from(now: tokio::time::Instant, policy: Shutdown) -> Option<tokio::time::Instant> {
    match policy {
        Shutdown::Timeout(grace) | Shutdown::Drain(grace) => now.checked_add(grace),
        Shutdown::BrutalKill | Shutdown::Infinity => None,
    }
}

/// One kill timer per supervisor. It is armed for the earliest deadline in force and, when it fires,
/// either kills what overstayed or re-arms for the current deadline: children that stop in time
/// (nearly all of them) cost no timer of their own.
#[derive(Default)]
struct KillTimer {
    armed_for: Option<tokio::time::Instant>,
    generation: u64,
    task: Option<Timer>,
}

impl KillTimer {
    fn arm(&mut self, myself: &ActorCell, deadline: tokio::time::Instant) {
        if self.armed_for.is_some_and(|at| at <= deadline) {
            return;
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.generation = self.generation.wrapping_add(1);
        self.armed_for = Some(deadline);
        let generation = self.generation;
        let me: ActorRef<SupervisorMsg> = myself.clone().into();
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.task = Some(me.send_after(wait, move || SupervisorMsg(Request::KillDue(generation))));
    }

    fn cancel(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.armed_for = None;
    }
}

/// Why a supervisor did not start.
///
/// ```
/// let e = canopy::StartError::ChildFailed { id: "db".into(), reason: "refused".into() };
/// assert_eq!(e.to_string(), "failed to start child `db`: refused");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The spec is invalid; no child was started.
    Spec(SpecError),
    /// A child failed to start; the ones started before it were stopped in reverse order
    /// (OTP's `{shutdown, {failed_to_start_child, Id, Reason}}`).
    ChildFailed {
        /// The child that failed.
        id: String,
        /// What its start function reported.
        reason: String,
    },
    /// The init function of a supervisor failed or panicked.
    Init(String),
    /// ractor refused to spawn the supervisor (for example, its parent is stopping).
    Spawn(String),
    /// A running supervisor already has this path: two top-level supervisors (or two dynamic
    /// supervisors started with the same name under one parent) would be indistinguishable in
    /// the tree, in logs and to handles.
    PathTaken(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Spec(e) => write!(f, "invalid supervisor spec: {e}"),
            StartError::ChildFailed { id, reason } => {
                write!(f, "failed to start child `{id}`: {reason}")
            }
            StartError::Init(reason) => write!(f, "supervisor init failed: {reason}"),
            StartError::Spawn(reason) => write!(f, "could not spawn the supervisor: {reason}"),
            StartError::PathTaken(path) => {
                write!(f, "a running supervisor already has the path `{path}`")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// What a successful `start_child` or `restart_child` gives back.
///
/// ```
/// # async fn demo(sup: canopy::SupervisorRef, spec: canopy::ChildSpec) -> Result<(), canopy::ChildError> {
/// let started = sup.start_child(spec).await?;
/// match started.cell {
///     Some(cell) => println!("running as {}", cell.get_id()),
///     None => println!("the child ignored its start"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct StartedChild {
    /// The child's cell, or `None` when its start function returned [`Start::Ignore`].
    pub cell: Option<ActorCell>,
    /// What the start function attached with [`Start::with_info`].
    pub info: Option<StartInfo>,
}

impl StartedChild {
    /// The attached information, if it is a `T`.
    ///
    /// ```
    /// # fn demo(started: canopy::StartedChild) {
    /// let port: Option<&u16> = started.info_as::<u16>();
    /// # }
    /// ```
    pub fn info_as<T: 'static>(&self) -> Option<&T> {
        self.info.as_ref().and_then(|i| i.downcast_ref::<T>())
    }
}

/// The marker a supervisor's `pre_start` fails with when its init said "ignore".
#[derive(Debug)]
struct Ignored;
impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ignored")
    }
}
impl std::error::Error for Ignored {}

/// Spawns a supervisor with behaviour `B`, linked to `parent` if given. `Ok(None)` if its init said
/// "ignore".
pub(crate) async fn spawn<B: Behaviour>(
    mut init: Init<B>,
    parent: Option<ActorCell>,
) -> Result<Option<AnySupervisorRef>, StartError> {
    if init.abort.is_none() {
        // A child supervisor abandons its start-up with the tree it belongs to.
        init.abort = parent
            .as_ref()
            .and_then(|p| introspect::node(&p.get_id()))
            .and_then(|n| n.abort.clone());
    }
    let me = Shell::<B>(std::marker::PhantomData);
    let spawned = match parent {
        Some(parent) => Actor::spawn_linked(None, me, init, parent).await,
        None => Actor::spawn(None, me, init).await,
    };
    match spawned {
        Ok((actor, _)) => Ok(Some(AnySupervisorRef { actor })),
        Err(SpawnErr::StartupFailed(err)) => {
            if err.is::<Ignored>() {
                return Ok(None);
            }
            match err.downcast::<StartError>() {
                Ok(e) => Err(*e),
                Err(other) => Err(StartError::Init(other.to_string())),
            }
        }
        Err(other) => Err(StartError::Spawn(other.to_string())),
    }
}

/// An actor in an error message: a supervisor by its path, any other actor by its id.
impl crate::core::Pid for ActorCell {
    fn describe(&self) -> String {
        match introspect::path_of(self) {
            Some(path) => path,
            None => format!("actor {}", self.get_id()),
        }
    }
}

/// The path of a child `name` of the supervisor `parent` (just `/name` if `parent` is not one).
pub(crate) fn child_path(parent: &ActorCell, name: &str) -> String {
    introspect::with_path(parent, |prefix| join_path(prefix.unwrap_or_default(), name))
}

/// The path of a supervisor named `name` under `parent`, or at the top level. Built in one
/// allocation, read straight from the tree: it is on every supervisor's start.
pub(crate) fn path_under(parent: Option<&ActorCell>, name: &str) -> String {
    match parent {
        Some(parent) => child_path(parent, name),
        None => join_path("", name),
    }
}

/// `prefix/name`.
fn join_path(prefix: &str, name: &str) -> String {
    let mut path = String::with_capacity(prefix.len() + 1 + name.len());
    path.push_str(prefix);
    path.push('/');
    path.push_str(name);
    path
}

impl<B: Behaviour> Actor for Shell<B> {
    type Msg = SupervisorMsg;
    /// Boxed: ractor moves an actor's state out of the `pre_start` future, through its start-up,
    /// into the task of the processing loop, copying it whole at each step, and the task's block
    /// grows by its size. A pointer moves for free and keeps the task's block small.
    type State = Box<State<B>>;
    type Arguments = Init<B>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        init: Init<B>,
    ) -> Result<Box<State<B>>, ActorProcessingErr> {
        let Init {
            path,
            named,
            make,
            children,
            args,
            abort,
        } = init;
        let b = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(make)) {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => return Err(Box::new(Ignored)),
            Ok(Err(e)) => return Err(Box::new(e)),
            Err(panic) => {
                return Err(Box::new(StartError::Init(format!(
                    "init panicked: {}",
                    panic_text(&panic)
                ))))
            }
        };
        // Registered before the children start, so that child supervisors find their parent's path.
        let cell = myself.get_cell();
        let node = introspect::register(path, named, |path| {
            introspect::Node::new(path, cell, children(&b), args, abort)
        })
        .map_err(|e| -> ActorProcessingErr { Box::new(e) })?;
        let mut state = Box::new(State {
            b,
            node,
            last_info: None,
            op: None,
            deferred: DeferredQueue::default(),
            retries: HashMap::new(),
            kill: KillTimer::default(),
            round_timer: shutdown::ShutdownTimer::default(),
            awaiting_exits: false,
            exiting: false,
        });
        state.b.tick(now());
        let first = state.b.init();
        // Boxed: inline, its states (a child's start, stops, the abort watch) made this future
        // over 1 KiB, which ractor boxes and moves whole on every supervisor's start; a block that
        // size is a large-bin request for glibc, which sorts its unsorted free blocks and searches
        // the large bins for it (about 500 instructions a start, more than a second small block).
        match Box::pin(drive_inline(&myself, &mut state, first)).await {
            Done::Ready => Ok(state),
            other => {
                introspect::unregister(&myself.get_id());
                match other {
                    Done::InitFailed { id, reason } => {
                        Err(Box::new(StartError::ChildFailed { id, reason }))
                    }
                    other => Err(format!("unexpected start-up outcome {other:?}").into()),
                }
            }
        }
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        SupervisorMsg(request): SupervisorMsg,
        state: &mut Box<State<B>>,
    ) -> Result<(), ActorProcessingErr> {
        if state.awaiting_exits {
            // ractor hands a supervisor its queued exit events before any message: whatever a
            // past round still awaits will never come.
            state.settle_stopped();
        }
        match request {
            // These two belong to the operation in progress and are never deferred.
            Request::KillDue(generation) => state.kill_due(&myself, generation),
            Request::Gone(id) => {
                if let Some(cell) = state.waited_for(&id) {
                    // It had unlinked itself, so no exit event will come: it is gone, and its
                    // reason cannot be seen.
                    state.exited(&myself, &cell, None).await;
                }
            }
            // Calls that come after the decision to exit get no answer: their callers see the
            // supervisor down.
            _ if state.exiting => {}
            other if state.op.is_some() => state.deferred.push_request(other),
            other => state.request(&myself, other).await,
        }
        state.run_deferred(&myself).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut Box<State<B>>,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = ExitReason::from_event(&event) else {
            return Ok(());
        };
        if reason == ExitReason::Killed && is_supervisor(cell) {
            // Its children that were already stopping survived the kill; they go with it.
            for orphan in introspect::reap_killed(cell) {
                tracing::warn!(
                    target: T,
                    path = %orphan.path,
                    reason = "killed",
                    cause = "its supervisor was killed",
                    "child stopped"
                );
            }
        }
        if state.awaiting_exits {
            if let Some(awaited) = state.b.stopped_with(cell, &reason) {
                let spec = &awaited.spec;
                let policy = spec.get_shutdown();
                log_stop(&state.node.path, &spec.id, policy, Some(&reason));
                // The core reports this stop only if it did not go as its policy planned: only
                // then is there a report to take (a lock and an empty list less per child).
                if !crate::core::shutdown_went_as_planned(spec.restart, policy, &reason) {
                    state.log_reports();
                }
                return Ok(());
            }
        }
        if state.exiting {
            // Every child was stopped before the decision to exit: this is a stranger's.
            return Ok(());
        }
        if state.waited_for(&cell.get_id()).is_some() {
            state.exited(&myself, cell, Some(reason)).await;
        } else if state.op.is_some() {
            state.deferred.push_exit(cell.clone(), reason);
        } else {
            state.child_exited(&myself, cell, reason).await;
        }
        state.run_deferred(&myself).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut Box<State<B>>,
    ) -> Result<(), ActorProcessingErr> {
        state.cancel_retries();
        state.kill.cancel();
        if state.awaiting_exits {
            state.settle_stopped();
        }
        // Calls still queued get no answer: their callers see the supervisor down.
        state.deferred.clear();
        state.op = None;
        let pending = state.b.pending_restarts();
        if pending > 0 {
            tracing::info!(
                target: T,
                supervisor = %state.node.path,
                children = pending,
                "shutting down: restarts still pending are cancelled"
            );
        }
        // Reached with children still running only when ractor's own stop was sent (from outside
        // canopy, or in the middle of an operation). The ordered teardown must finish here: once
        // post_stop returns, ractor kills whatever is still linked, in no particular order.
        if state.b.has_running_children() {
            state.b.tick(now());
            let cmd = state.b.shutdown(ExitReason::Shutdown);
            drive_inline(&myself, state, cmd).await;
        }
        introspect::unregister(&myself.get_id());
        state.node.changed();
        Ok(())
    }
}

impl<B: Behaviour> State<B> {
    /// The cell of a child the suspended operation waits for, by actor id.
    fn waited_for(&self, id: &ActorId) -> Option<ActorCell> {
        match &self.op.as_ref()?.wait {
            Wait::One { pid, .. } => (pid.get_id() == *id).then(|| pid.clone()),
            Wait::All {
                children, index, ..
            } => index.get(id).map(|&i| children[i].1.clone()),
        }
    }

    async fn request(&mut self, myself: &ActorRef<SupervisorMsg>, request: Request) {
        match request {
            Request::Api(call, reply) => {
                let cmd = self.b.api(call, now());
                self.step(myself, cmd, Then::Reply(reply)).await;
            }
            Request::Query(query) => self.b.query(query),
            Request::Shutdown(reason) => {
                self.cancel_retries();
                self.b.tick(now());
                let cmd = self.b.shutdown(reason);
                self.step(myself, cmd, Then::Background).await;
            }
            Request::Retry(key, generation) => {
                if self
                    .retries
                    .get(&key)
                    .is_some_and(|(g, _)| *g == generation)
                {
                    self.retries.remove(&key);
                }
                match self.b.retry_due(&key, generation, now()) {
                    Some(cmd) => self.step(myself, cmd, Then::Background).await,
                    None => tracing::debug!(
                        target: T,
                        supervisor = %self.node.path,
                        child = %key,
                        generation,
                        "stale retry: the child is no longer waiting for this one"
                    ),
                }
            }
            Request::KillDue(_) | Request::Gone(_) => {}
        }
    }

    async fn child_exited(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        cell: &ActorCell,
        reason: ExitReason,
    ) {
        match self.b.child_exited(cell, reason.clone(), now()) {
            Some(cmd) => self.step(myself, cmd, Then::Background).await,
            None => tracing::debug!(
                target: T,
                supervisor = %self.node.path,
                actor = %cell.get_id(),
                %reason,
                "exit of an actor that is not a current child"
            ),
        }
    }

    /// Handles what arrived while an operation waited, until another one waits or nothing is left.
    async fn run_deferred(&mut self, myself: &ActorRef<SupervisorMsg>) {
        while self.op.is_none() && !self.exiting {
            match self.deferred.pop_front() {
                Some(Deferred::Exit(cell, reason)) => {
                    self.child_exited(myself, &cell, reason).await
                }
                Some(Deferred::Request(request)) => self.request(myself, request).await,
                // `pop_front` passes over taken exits already.
                Some(Deferred::Taken) => {}
                None => break,
            }
        }
    }

    /// Carries out commands until the operation is done or must wait for exits.
    ///
    /// Boxed: ractor moves the future of every message and exit event it hands the shell, and with
    /// this one inline those futures were 1.4-1.6 KB, copied on each event (callgrind: about 200
    /// instructions per event). One allocation per operation costs less than that.
    fn step<'a>(
        &'a mut self,
        myself: &'a ActorRef<SupervisorMsg>,
        cmd: Cmd<B::Job>,
        then: Then,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.step_inline(myself, cmd, then))
    }

    async fn step_inline(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        mut cmd: Cmd<B::Job>,
        then: Then,
    ) {
        let sup = myself.get_cell();
        loop {
            cmd = match cmd {
                Cmd::Start(job) => {
                    let result = self.run_start(&sup, job).await;
                    self.b.started(result)
                }
                Cmd::Terminate { id, pid, shutdown } => {
                    if let Some(reason) = self.deferred.take_exit(&pid) {
                        log_stop(&self.node.path, &id, shutdown, Some(&reason));
                        self.b.terminated(Some(reason))
                    } else if self.b.stops_inline() {
                        self.stop_in_round(&pid, shutdown).await
                    } else {
                        signal(&pid, shutdown);
                        if !linked_to(&pid, &sup) {
                            // It unlinked itself: its exit event will not come to us.
                            self.watch_cell(myself, &pid);
                        }
                        let deadline = kill_deadline(shutdown);
                        self.suspend(
                            myself,
                            Wait::One {
                                id,
                                pid,
                                shutdown,
                                deadline,
                            },
                            then,
                        );
                        return;
                    }
                }
                Cmd::TerminateAll(children) => {
                    let mut results: Vec<(u64, Option<ExitReason>)> =
                        children.iter().map(|(key, _, _)| (*key, None)).collect();
                    let mut index = HashMap::with_capacity_and_hasher(children.len(), PidHash);
                    let mut left = 0;
                    // Every deadline counts from the start of the stop.
                    let since = tokio::time::Instant::now();
                    let mut earliest = None;
                    for (i, (key, pid, shutdown)) in children.iter().enumerate() {
                        if let Some(reason) = self.deferred.take_exit(pid) {
                            log_stop(&self.node.path, key, *shutdown, Some(&reason));
                            results[i].1 = Some(reason);
                            continue;
                        }
                        // Every child is signalled before anyone is waited for: that is what makes
                        // the stop parallel.
                        signal(pid, *shutdown);
                        if !linked_to(pid, &sup) {
                            self.watch_cell(myself, pid);
                        }
                        if let Some(at) = kill_deadline_from(since, *shutdown) {
                            earliest =
                                Some(earliest.map_or(at, |e: tokio::time::Instant| e.min(at)));
                        }
                        index.insert(pid.get_id(), i);
                        left += 1;
                    }
                    if left == 0 {
                        self.b.terminated_all(results)
                    } else {
                        self.suspend_until(
                            myself,
                            Wait::All {
                                children,
                                results,
                                since,
                                index,
                                left,
                            },
                            then,
                            earliest,
                        );
                        return;
                    }
                }
                Cmd::Done(done) => {
                    self.finish(myself, done, then);
                    return;
                }
            };
        }
    }

    /// Stops one child of a restart round without going back to the actor's loop: signal it, wait
    /// on its cell within its policy's grace, and read its own exit reason later. Suspending for
    /// the exit event instead would cost a trip through ractor's loop per stopped child, most of a
    /// 10-child round's cost over raw ractor. The reason is not lost: ractor queues the child's exit
    /// event before it marks the cell stopped, and hands a supervisor its queued exit events before
    /// any message, so every reason arrives (to `stopped_with`) before anyone can ask about it.
    async fn stop_in_round(&mut self, pid: &ActorCell, shutdown: Shutdown) -> Cmd<B::Job> {
        // A child that unlinked itself sends no event; it is not told apart here (that would cost
        // a lock per child on the round's path): its reason is settled with what was seen once the
        // events queued before the next message are read.
        let seen = shutdown::terminate_timed(pid, shutdown, &mut self.round_timer).await;
        self.awaiting_exits = true;
        self.b.terminated_later(seen)
    }

    /// Records what was seen for every child of a past round whose exit event never came.
    fn settle_stopped(&mut self) {
        self.awaiting_exits = false;
        for awaited in self.b.settle_stopped() {
            let spec = &awaited.spec;
            log_stop(
                &self.node.path,
                &spec.id,
                spec.get_shutdown(),
                awaited.seen.as_ref(),
            );
        }
        self.log_reports();
    }

    fn log_reports(&self) {
        for report in self.b.take_reports() {
            log_report(&self.node.path, &report);
        }
    }

    fn suspend(&mut self, myself: &ActorRef<SupervisorMsg>, wait: Wait, then: Then) {
        let deadline = wait.deadline();
        self.suspend_until(myself, wait, then, deadline);
    }

    /// [`suspend`](Self::suspend) when the caller already knows the earliest kill deadline (a stop
    /// of many children finds it while signalling them, rather than in another pass over them).
    fn suspend_until(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        wait: Wait,
        then: Then,
        deadline: Option<tokio::time::Instant>,
    ) {
        if let Some(deadline) = deadline {
            self.kill.arm(&myself.get_cell(), deadline);
        }
        self.op = Some(Op { wait, then });
    }

    /// A child the suspended operation waits for has exited, with its own reason (`None`: it had
    /// unlinked itself and its reason could not be seen).
    async fn exited(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        cell: &ActorCell,
        reason: Option<ExitReason>,
    ) {
        let Some(op) = self.op.as_mut() else {
            return;
        };
        let cmd = match &mut op.wait {
            Wait::One { id, shutdown, .. } => {
                log_stop(&self.node.path, id, *shutdown, reason.as_ref());
                self.b.terminated(reason)
            }
            Wait::All {
                children,
                results,
                index,
                left,
                ..
            } => {
                let Some(i) = index.remove(&cell.get_id()) else {
                    return;
                };
                let (key, _, shutdown) = &children[i];
                log_stop(&self.node.path, key, *shutdown, reason.as_ref());
                // An unseen reason still counts the child as stopped.
                results[i].1 = Some(reason.unwrap_or(ExitReason::Shutdown));
                *left -= 1;
                if *left > 0 {
                    return;
                }
                self.b.terminated_all(std::mem::take(results))
            }
        };
        let Some(Op { then, .. }) = self.op.take() else {
            return;
        };
        self.step(myself, cmd, then).await;
    }

    /// The kill timer fired: kill what overstayed its policy, or wait on for a later deadline.
    fn kill_due(&mut self, myself: &ActorRef<SupervisorMsg>, generation: u64) {
        if generation != self.kill.generation {
            return;
        }
        self.kill.armed_for = None;
        self.kill.task = None;
        let Some(op) = self.op.as_ref() else {
            return;
        };
        let Some(deadline) = op.wait.deadline() else {
            return;
        };
        if tokio::time::Instant::now() < deadline {
            self.kill.arm(&myself.get_cell(), deadline);
            return;
        }
        // The exit events of the killed children come back with ractor's `killed`.
        let now = tokio::time::Instant::now();
        match &op.wait {
            Wait::One { pid, .. } => pid.kill(),
            Wait::All {
                children,
                results,
                since,
                ..
            } => {
                for ((_, pid, policy), (_, reason)) in children.iter().zip(results) {
                    if reason.is_none()
                        && kill_deadline_from(*since, *policy).is_some_and(|at| at <= now)
                    {
                        pid.kill();
                    }
                }
            }
        }
        if let Some(next) = op.wait.deadline().filter(|at| *at > now) {
            self.kill.arm(&myself.get_cell(), next);
        }
    }

    /// A child that unlinked itself: a task tells the supervisor when its cell is gone.
    fn watch_cell(&self, myself: &ActorRef<SupervisorMsg>, pid: &ActorCell) {
        let me = myself.clone();
        let pid = pid.clone();
        tokio::spawn(async move {
            pid.wait(None).await.ok();
            let _ = me.send_message(SupervisorMsg(Request::Gone(pid.get_id())));
        });
    }

    /// An operation is over: logs its reports, then replies, queues its retry or exits.
    fn finish(&mut self, myself: &ActorRef<SupervisorMsg>, done: Done, then: Then) {
        self.node.changed();
        self.log_reports();
        let done = match then {
            Then::Reply(reply) => {
                let result = match done {
                    Done::Reply(result) => result,
                    other => {
                        self.after(myself, other);
                        Err(ChildError::SupervisorDown)
                    }
                };
                match reply {
                    ReplyTo::Started(port) => {
                        let info = self.last_info.take();
                        let _ = port.send(result.map(|cell| StartedChild { cell, info }));
                    }
                    ReplyTo::Unit(port) => {
                        let _ = port.send(result.map(|_| ()));
                    }
                }
                return;
            }
            Then::Background => done,
        };
        self.after(myself, done);
    }

    /// What an operation leaves to do: a retry to queue, or the supervisor's own exit.
    fn after(&mut self, myself: &ActorRef<SupervisorMsg>, done: Done) {
        match done {
            Done::Idle(Some(retry)) => {
                let RetryAt {
                    key,
                    after,
                    generation,
                } = retry;
                if after.is_zero() {
                    // Behind everything already queued (OTP's try_again_restart). A closed
                    // mailbox means the supervisor is stopping and the retry no longer matters.
                    let _ = myself.send_message(SupervisorMsg(Request::Retry(key, generation)));
                } else {
                    log_backoff(&self.node.path, &key, after);
                    let message_key = key.clone();
                    let timer = myself.send_after(after, move || {
                        SupervisorMsg(Request::Retry(message_key, generation))
                    });
                    // A newer wait makes the older one stale; its timer need not fire.
                    if let Some((_, old)) = self.retries.insert(key, (generation, timer)) {
                        old.abort();
                    }
                }
            }
            Done::Exit(reason) => {
                self.exiting = true;
                self.deferred.clear();
                self.cancel_retries();
                myself.get_cell().stop(Some(reason.encode()))
            }
            Done::Ready | Done::InitFailed { .. } | Done::Reply(_) | Done::Idle(None) => {}
        }
    }

    fn cancel_retries(&mut self) {
        for (_, (_, timer)) in self.retries.drain() {
            timer.abort();
        }
    }

    /// Runs a start function and reads its result for the core.
    async fn run_start(
        &mut self,
        sup: &ActorCell,
        job: B::Job,
    ) -> Result<Option<ActorCell>, StartFailure> {
        let b = &self.b;
        let result = run_start(sup, || b.start(job, sup.clone())).await;
        result.map(|start| match start {
            Start::Started { cell, info } => {
                self.last_info = info;
                Some(cell)
            }
            Start::Ignore => {
                self.last_info = None;
                None
            }
        })
    }
}

/// The results of a stop of many, each with its child's key.
fn with_keys(
    children: &[(u64, ActorCell, Shutdown)],
    reasons: Vec<Option<ExitReason>>,
) -> Vec<(u64, Option<ExitReason>)> {
    children
        .iter()
        .map(|(key, _, _)| *key)
        .zip(reasons)
        .collect()
}

/// True if `child` is linked to `sup`, so its exit event comes to `sup`.
fn linked_to(child: &ActorCell, sup: &ActorCell) -> bool {
    child
        .try_get_supervisor()
        .is_some_and(|s| s.get_id() == sup.get_id())
}

/// Asks a child to stop the way `policy` says. A canopy supervisor is asked with a message, so that
/// it stops its own children in order with their real reasons; anything else gets ractor's stop
/// (taken between messages), drain (queued messages first) or kill.
pub(crate) fn signal(child: &ActorCell, policy: Shutdown) {
    match policy {
        Shutdown::BrutalKill => child.kill(),
        Shutdown::Infinity | Shutdown::Timeout(_) | Shutdown::Drain(_) if is_supervisor(child) => {
            ask_to_stop(child, ExitReason::Shutdown)
        }
        Shutdown::Infinity | Shutdown::Timeout(_) => {
            child.stop(Some(ExitReason::Shutdown.encode()))
        }
        Shutdown::Drain(_) => {
            if child.drain().is_err() {
                // No mailbox left to drain: it is already stopping.
                child.stop(Some(ExitReason::Shutdown.encode()));
            }
        }
    }
}

/// True if `cell` is a canopy supervisor (of either kind).
pub(crate) fn is_supervisor(cell: &ActorCell) -> bool {
    cell.get_type_id() == std::any::TypeId::of::<SupervisorMsg>()
}

/// Asks a canopy supervisor to stop its children in order and exit with `reason`. If its mailbox is
/// closed it is stopping already; ractor's stop is sent anyway, which does no harm.
pub(crate) fn ask_to_stop(cell: &ActorCell, reason: ExitReason) {
    let sent = cell.send_message(SupervisorMsg(Request::Shutdown(reason.clone())));
    if sent.is_err() {
        cell.stop(Some(reason.encode()));
    }
}

/// Carries out commands with the actor's loop not running (start-up, and ractor's stop): each stop
/// waits on the child's cell, since exit events cannot be received here.
async fn drive_inline<B: Behaviour>(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut State<B>,
    mut cmd: Cmd<B::Job>,
) -> Done {
    let sup = myself.get_cell();
    let mut timer = shutdown::ShutdownTimer::default();
    let done = loop {
        cmd = match cmd {
            Cmd::Start(job) => {
                let result = match state.node.abort.clone() {
                    Some(abort) if *abort.borrow() => Err(abandoned()),
                    // A supervisor being started sees the same signal and unwinds its own
                    // start-up in order, so it is waited for; a worker's start is dropped.
                    Some(abort) if !state.b.starts_supervisor(&job) => tokio::select! {
                        biased;
                        result = state.run_start(&sup, job) => result,
                        _ = aborted(abort) => {
                            tracing::warn!(
                                target: T,
                                supervisor = %state.node.path,
                                "start-up abandoned while a child was starting"
                            );
                            Err(abandoned())
                        }
                    },
                    _ => state.run_start(&sup, job).await,
                };
                state.b.started(result)
            }
            Cmd::Terminate { id, pid, shutdown } => {
                let reason = shutdown::terminate_timed(&pid, shutdown, &mut timer).await;
                log_stop(&state.node.path, &id, shutdown, reason.as_ref());
                state.b.terminated(reason)
            }
            Cmd::TerminateAll(children) => {
                let cells: Vec<(ActorCell, Shutdown)> = children
                    .iter()
                    .map(|(_, cell, policy)| (cell.clone(), *policy))
                    .collect();
                let reasons = shutdown::terminate_all(&cells).await;
                for ((key, _, policy), reason) in children.iter().zip(&reasons) {
                    log_stop(&state.node.path, key, *policy, reason.as_ref());
                }
                state.b.terminated_all(with_keys(&children, reasons))
            }
            Cmd::Done(done) => break done,
        };
    };
    state.node.changed();
    for report in state.b.take_reports() {
        log_report(&state.node.path, &report);
    }
    done
}

/// Why a start-up that was abandoned failed.
fn abandoned() -> StartFailure {
    StartFailure::Error("start-up abandoned: the application is stopping".into())
}

/// Resolves once `abort` turns true; never if its sender is gone without it.
async fn aborted(mut abort: tokio::sync::watch::Receiver<bool>) {
    if abort.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The time a core is given: tokio's clock, so that a paused test clock drives backoff and the
/// restart window alike.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// One line per child the supervisor stops, in the order it stops them: the audit trail of an
/// ordered shutdown. A kill the policy did not ask for is a warning at once; the `shutdown_error`
/// report follows when the operation ends.
fn log_stop(sup: &str, id: impl fmt::Display, policy: Shutdown, reason: Option<&ExitReason>) {
    let path = format_args!("{sup}/{id}");
    match reason {
        Some(ExitReason::Killed) if policy != Shutdown::BrutalKill => tracing::warn!(
            target: T, %path, reason = "killed", ?policy,
            "child stopped"
        ),
        Some(reason @ (ExitReason::Error(_) | ExitReason::Normal)) => {
            tracing::warn!(target: T, %path, %reason, ?policy, "child stopped")
        }
        Some(reason) => tracing::debug!(target: T, %path, %reason, "child stopped"),
        None => tracing::debug!(target: T, %path, reason = "exited by itself", "child stopped"),
    }
}

/// A restart put off by its backoff: logged when it is scheduled, so a crash loop being slowed down
/// shows in the logs with the delay it was given.
fn log_backoff(sup: &str, child: &RetryKey, delay: Duration) {
    tracing::warn!(
        target: T,
        supervisor = %sup,
        child = %child,
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        "restart delayed by backoff"
    );
}

fn log_report(sup: &str, report: &Report) {
    match report {
        Report::ChildTerminated { id, reason } => {
            tracing::error!(target: T, supervisor = %sup, child = %id, %reason, "child_terminated")
        }
        Report::StartError { id, reason } => {
            tracing::error!(target: T, supervisor = %sup, child = %id, %reason, "start_error")
        }
        Report::ShutdownError { id, reason } => {
            tracing::error!(target: T, supervisor = %sup, child = %id, %reason, "shutdown_error")
        }
        Report::ReachedMaxRestartIntensity { id } => tracing::error!(
            target: T, supervisor = %sup, child = %id, "reached_max_restart_intensity; shutting down"
        ),
        Report::AutoShutdown { id } => tracing::info!(
            target: T, supervisor = %sup, child = %id, "significant child exited; auto-shutdown"
        ),
        Report::RestartIgnored { id } => tracing::info!(
            target: T, supervisor = %sup, child = %id, "restart returned ignore; child removed"
        ),
    }
}

/// Runs a start function (`start` calls it and gives its future); makes sure the child is linked to
/// `sup`, and reads a name clash as `already_started`. A panic, in the call or in the future, is a
/// start failure, never the supervisor's own.
async fn run_start<F>(sup: &ActorCell, start: F) -> Result<Start, StartFailure>
where
    F: FnOnce() -> BoxFuture<'static, Result<Start, BoxError>>,
{
    let fut = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(start)) {
        Ok(fut) => fut,
        Err(panic) => {
            return Err(StartFailure::Error(format!(
                "start function panicked: {}",
                panic_text(&panic)
            )))
        }
    };
    let start = match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(start)) => start,
        Ok(Err(err)) => return Err(start_failure(err)),
        Err(panic) => {
            return Err(StartFailure::Error(format!(
                "start function panicked: {}",
                panic_text(&panic)
            )))
        }
    };
    if let Start::Started { cell, .. } = &start {
        if !linked_to(cell, sup) {
            // The start function must link the child (OTP's contract); do it for it, since an
            // unlinked child's exit would never reach us.
            cell.link(sup.clone());
            if !linked_to(cell, sup) {
                return Err(StartFailure::Error(
                    "the child exited before it could be linked to its supervisor".into(),
                ));
            }
        }
    }
    Ok(start)
}

fn start_failure(err: BoxError) -> StartFailure {
    match err.downcast::<SpawnErr>() {
        Ok(spawn_err) => match *spawn_err {
            SpawnErr::StartupFailed(inner) => StartFailure::Error(inner.to_string()),
            SpawnErr::ActorAlreadyRegistered(name) => {
                match ractor::registry::where_is(name.clone()) {
                    Some(holder) => StartFailure::AlreadyStarted(holder),
                    None => StartFailure::Error(format!("name `{name}` is already registered")),
                }
            }
            other => StartFailure::Error(other.to_string()),
        },
        Err(err) => StartFailure::Error(err.to_string()),
    }
}

// -------------------------------------------------------------------------------------------------
// References

/// A reference to any running canopy supervisor, static or dynamic: what the two kinds have in
/// common. [`SupervisorRef`](crate::SupervisorRef) and [`DynamicRef`](crate::DynamicRef) dereference
/// to it, so these methods are theirs too.
///
/// Every call waits for the supervisor, with no time limit, as OTP's do: a supervisor in the middle
/// of a long restart answers when it is done. A call to a supervisor that is gone returns
/// [`ChildError::SupervisorDown`].
///
/// ```
/// use canopy::{AnySupervisorRef, Supervisor, SupervisorSpec};
/// # #[tokio::main] async fn main() {
/// let sup = Supervisor::start(SupervisorSpec::default()).await.unwrap();
/// let any = AnySupervisorRef::from_cell(sup.cell()).expect("a canopy supervisor");
/// assert_eq!(any.count_children().await.unwrap().specs, 0);
/// any.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct AnySupervisorRef {
    pub(crate) actor: ActorRef<SupervisorMsg>,
}

impl fmt::Debug for AnySupervisorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match introspect::path_of(&self.actor.get_cell()) {
            Some(path) => write!(f, "supervisor {path}"),
            None => write!(f, "supervisor {}", self.actor.get_id()),
        }
    }
}

impl AnySupervisorRef {
    /// The supervisor behind `cell`, if `cell` is a canopy supervisor of either kind.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use canopy::{AnySupervisorRef, Supervisor, SupervisorSpec};
    /// let sup = Supervisor::start(SupervisorSpec::default()).await.unwrap();
    /// assert!(AnySupervisorRef::from_cell(sup.cell()).is_some());
    /// sup.shutdown().await;
    /// # }
    /// ```
    pub fn from_cell(cell: ActorCell) -> Option<AnySupervisorRef> {
        is_supervisor(&cell).then(|| AnySupervisorRef {
            actor: ActorRef::from(cell),
        })
    }

    /// The supervisor's cell, e.g. to link or monitor it.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) {
    /// let cell: canopy::ractor::ActorCell = sup.cell();
    /// # }
    /// ```
    pub fn cell(&self) -> ActorCell {
        self.actor.get_cell()
    }

    /// The supervisor's actor id.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) {
    /// println!("{}", sup.id());
    /// # }
    /// ```
    pub fn id(&self) -> ActorId {
        self.actor.get_id()
    }

    /// Its path in the tree (`/app/web`), while it runs.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let sup = canopy::Supervisor::start(canopy::SupervisorSpec::default().name("app")).await.unwrap();
    /// assert_eq!(sup.path().as_deref(), Some("/app"));
    /// sup.shutdown().await;
    /// # }
    /// ```
    pub fn path(&self) -> Option<String> {
        introspect::path_of(&self.actor.get_cell())
    }

    pub(crate) async fn ask<T: Send + 'static>(
        &self,
        request: impl FnOnce(RpcReplyPort<T>) -> Request,
    ) -> Result<T, ChildError> {
        match self
            .actor
            .call(|reply| SupervisorMsg(request(reply)), None)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
            _ => Err(ChildError::SupervisorDown),
        }
    }

    pub(crate) async fn call_started(&self, call: Api) -> Result<StartedChild, ChildError> {
        self.ask(|r| Request::Api(call, ReplyTo::Started(r)))
            .await?
    }

    pub(crate) async fn call_unit(&self, call: Api) -> Result<(), ChildError> {
        self.ask(|r| Request::Api(call, ReplyTo::Unit(r))).await?
    }

    /// Every child, most recently started first (a dynamic child's `id` is its key).
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) -> Result<(), canopy::ChildError> {
    /// for child in sup.which_children().await? {
    ///     println!("{} {:?} restarted {} times", child.id, child.status, child.restarts);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, ChildError> {
        self.ask(|r| Request::Query(Query::WhichChildren(r))).await
    }

    /// OTP's counts: specs, running children, supervisors and workers. For a dynamic supervisor
    /// `specs` is 1 and `supervisors`/`workers` count every child by the template's kind.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) -> Result<(), canopy::ChildError> {
    /// let counts = sup.count_children().await?;
    /// println!("{} of {} running", counts.active, counts.specs);
    /// # Ok(()) }
    /// ```
    pub async fn count_children(&self) -> Result<ChildCounts, ChildError> {
        self.ask(|r| Request::Query(Query::CountChildren(r))).await
    }

    /// Stops the supervisor gracefully (its children by their policies, a static supervisor's in
    /// reverse start order) and waits until it is gone.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) {
    /// sup.shutdown().await;
    /// assert!(sup.count_children().await.is_err());
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        self.stop_and_wait(ExitReason::Shutdown).await
    }

    /// Stops the supervisor with `reason` after its children, and waits until it is gone.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) {
    /// sup.stop_and_wait(canopy::ExitReason::ShutdownWith("maintenance".into())).await;
    /// # }
    /// ```
    pub async fn stop_and_wait(&self, reason: ExitReason) {
        let cell = self.actor.get_cell();
        ask_to_stop(&cell, reason);
        cell.wait(None).await.ok();
    }

    /// Waits until the supervisor has exited, for whatever reason.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) {
    /// sup.wait().await; // returns when the supervisor is gone
    /// # }
    /// ```
    pub async fn wait(&self) {
        self.actor.get_cell().wait(None).await.ok();
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::{Supervisor, SupervisorSpec};

    /// A supervisor's `pre_start` future stays under 1 KiB: ractor boxes it and moves it whole on
    /// every supervisor's start, and glibc serves 1 KiB and more from its large bins, sorting its
    /// unsorted free blocks first (about 500 instructions a start when it was 1,152 B).
    #[tokio::test]
    async fn the_start_up_future_stays_under_a_kib() {
        let sup = Supervisor::start(SupervisorSpec::default()).await.unwrap();
        let me: ActorRef<SupervisorMsg> = sup.cell().into();
        let init = crate::supervisor::test_init(SupervisorSpec::default());
        let start_up =
            Shell::<crate::supervisor::Static>(std::marker::PhantomData).pre_start(me, init);
        let size = std::mem::size_of_val(&start_up);
        drop(start_up);
        sup.shutdown().await;
        assert!(size < 1024, "{size} B");
    }

    /// What ractor moves through a supervisor's start-up and into its processing loop's task is a
    /// pointer to the shell's state, not the state itself (over 300 B). One actor type serves every
    /// behaviour, so the static one stands for all.
    #[test]
    fn the_state_ractor_moves_is_a_pointer() {
        use crate::supervisor::Static;
        assert_eq!(
            std::mem::size_of::<<Shell<Static> as Actor>::State>(),
            std::mem::size_of::<usize>()
        );
    }
}

#[cfg(test)]
mod deferred_tests {
    use super::*;
    use crate::shutdown::tests::idle;

    fn order(queue: &mut DeferredQueue) -> Vec<String> {
        std::iter::from_fn(|| queue.pop_front())
            .map(|item| match item {
                Deferred::Exit(cell, reason) => format!("exit {} {reason}", cell.get_id()),
                Deferred::Request(Request::KillDue(n)) => format!("request {n}"),
                Deferred::Request(_) => "another request".into(),
                Deferred::Taken => "taken".into(),
            })
            .collect()
    }

    /// Exits taken by a stop, found by id, leave the queue; everything else runs in arrival order,
    /// requests and exits interleaved; an exit is taken once; the index empties with the queue.
    #[tokio::test]
    async fn a_stop_takes_its_childrens_exits_and_the_rest_keeps_its_order() {
        let mut cells = Vec::new();
        for _ in 0..4 {
            cells.push(idle().await);
        }
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| cells[i].clone());
        let mut queue = DeferredQueue::default();
        queue.push_request(Request::KillDue(1));
        queue.push_exit(a.clone(), ExitReason::Normal);
        queue.push_exit(b.clone(), ExitReason::Error("b broke".into()));
        queue.push_request(Request::KillDue(2));
        queue.push_exit(c.clone(), ExitReason::Killed);
        assert_eq!(
            queue.take_exit(&b),
            Some(ExitReason::Error("b broke".into()))
        );
        assert_eq!(queue.take_exit(&b), None, "an exit is taken once");
        assert_eq!(queue.take_exit(&d), None, "d never exited");
        // Runs part of the queue, as `run_deferred` does until another operation waits.
        assert_eq!(queue.pop_front().map(|_| ()), Some(()));
        assert_eq!(queue.take_exit(&c), Some(ExitReason::Killed));
        queue.push_exit(d.clone(), ExitReason::Shutdown);
        assert_eq!(
            order(&mut queue),
            [
                format!("exit {} {}", a.get_id(), ExitReason::Normal),
                "request 2".into(),
                format!("exit {} {}", d.get_id(), ExitReason::Shutdown),
            ]
        );
        assert!(queue.exits.is_empty(), "every exit was handed out");
        assert_eq!(queue.take_exit(&a), None, "a ran already");
        for cell in cells {
            cell.stop(None);
        }
    }
}
