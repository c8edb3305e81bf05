//! The supervisor's decisions, as a plain synchronous state machine (docs/semantics.md).
//!
//! [`Core`] holds a static supervisor's children and restart budget and decides, rule by rule, what
//! happens when a child exits, when a restart fails, when an API call arrives and when the supervisor
//! stops. It never starts or stops anything itself and owns no clock: it answers each event with a
//! [`Command`] for the shell to carry out, and the shell feeds each result back
//! ([`Core::started`], [`Core::terminated`]) until the answer is [`Command::Done`]. Because an operation
//! is driven one step at a time, every rule is a fast deterministic unit test, and the shell around it
//! (the ractor actor in `supervisor`) stays a thin loop.
//!
//! The child list is kept in start order. An operation (a restart, a shutdown, an API call) is a queue
//! of `Terminate`/`Start` steps over positions in that list; a removed child is left as a tombstone,
//! and tombstones are swept only between operations, once they are half of the list, so positions
//! stay valid for an operation's whole life and removing a child costs O(1) amortised. A map from
//! id to position (and one from pid to position) makes every call by id, and every exit, O(1).
//!
//! A restart the core cannot make at once (a failed start's retry, a backed-off restart) is handed to
//! the shell as a [`Retry`] and comes back through [`Core::retry_due`]. Each retry carries a
//! generation, and a child honours only the last one it was given, and only while it still waits for
//! it: a timer that outlived its wait (the child was restarted by a sibling's round, terminated,
//! given a newer retry) comes back as `None` and changes nothing, instead of cutting a later backoff
//! short.
//!
//! ```
//! use std::time::Instant;
//! use canopy::core::{Command, Core, Outcome};
//! use canopy::{ChildSpec, ExitReason, Start, SupervisorSpec};
//!
//! let spec = SupervisorSpec::default()
//!     .child(ChildSpec::new("a", |_sup| async { Ok(Start::Ignore) }));
//! let mut core: Core<u64> = Core::new(&spec).unwrap();
//!
//! // Start-up: the core asks for child "a", the shell starts it as process 7.
//! let Command::Start { spec } = core.init() else { unreachable!() };
//! assert_eq!(spec.id(), "a");
//! assert!(matches!(core.started(Ok(Some(7))), Command::Done(Outcome::Ready)));
//!
//! // Process 7 crashes: a permanent child under one_for_one is started again.
//! let cmd = core.child_exited(&7, ExitReason::Error("boom".into()), Instant::now());
//! assert!(matches!(cmd, Some(Command::Start { .. })));
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Debug};
use std::hash::Hash;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::ActorCell;

use crate::backoff::{Backoff, BackoffState, Jitter};
use crate::exit::ExitReason;
use crate::intensity::RestartWindow;
use crate::pid_hash::PidHash;
use crate::spec::{
    check_child_spec, AutoShutdown, ChildKind, ChildSpec, Restart, Shutdown, SpecError, Strategy,
    SupervisorSpec,
};

/// What identifies a running child: a ractor `ActorCell` in the shell, a number in tests.
///
/// ```
/// use canopy::core::Pid;
/// assert_eq!(7u64.describe(), "process 7");
/// ```
pub trait Pid: Clone + Eq + Hash + Debug {
    /// How the process is named in an error message: a path or an id in one fixed format, never a
    /// dump of internal structures.
    fn describe(&self) -> String;
}

impl Pid for u64 {
    fn describe(&self) -> String {
        format!("process {self}")
    }
}

/// The reason a supervisor exits with when its restart budget is spent (a shutdown-class reason, so
/// its own supervisor treats it exactly as OTP's `shutdown`).
pub const REACHED_MAX_RESTART_INTENSITY: &str = "reached_max_restart_intensity";

/// Where a child stands, as `which_children` shows it.
///
/// ```
/// use canopy::core::ChildStatus;
/// let s: ChildStatus<u64> = ChildStatus::Restarting;
/// assert!(s.pid().is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildStatus<P = ActorCell> {
    /// Running as this process.
    Running(P),
    /// Its restart failed; a retry is queued (OTP's `restarting`).
    Restarting,
    /// Not running: it ignored its start, exited without needing a restart, or was terminated through
    /// the API (OTP's `undefined`).
    Stopped,
}

impl<P> ChildStatus<P> {
    /// The running process, if any.
    pub fn pid(&self) -> Option<&P> {
        match self {
            ChildStatus::Running(p) => Some(p),
            _ => None,
        }
    }
}

/// One child as seen from outside: what `which_children` and `which_child` return.
#[derive(Debug, Clone)]
pub struct ChildInfo<P = ActorCell> {
    /// The child's id.
    pub id: String,
    /// Running, restarting or stopped.
    pub status: ChildStatus<P>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// The restart type.
    pub restart: Restart,
    /// How many times the supervisor restarted it (API restarts not included).
    pub restarts: u32,
    /// The reason of its last exit, if it has exited.
    pub last_exit: Option<ExitReason>,
    /// When a backed-off restart is due, while the child waits for it.
    pub next_attempt: Option<Instant>,
    /// How the supervisor stops it.
    pub shutdown: Shutdown,
    /// Whether its exit can shut the supervisor down (auto-shutdown).
    pub significant: bool,
    /// When the current incarnation started, while it runs (to the precision of the supervisor's
    /// operation that started it).
    pub started_at: Option<Instant>,
    /// When it last exited, if it has.
    pub last_exit_at: Option<Instant>,
    /// Its start function is running right now.
    pub starting: bool,
}

/// One child lent by reference for the instant of a [`Core::visit_children`] call: the fields of
/// a [`ChildInfo`], borrowed from the supervisor's state instead of copied out of it.
#[derive(Debug)]
pub struct ChildView<'a, P = ActorCell> {
    /// The child's id (a dynamic child's key, as text).
    pub id: &'a str,
    /// Running, restarting or stopped.
    pub status: ChildStatus<&'a P>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// The restart type.
    pub restart: Restart,
    /// How many times the supervisor restarted it (API restarts not included).
    pub restarts: u32,
    /// The reason of its last exit, if it has exited.
    pub last_exit: Option<&'a ExitReason>,
    /// When a backed-off restart is due, while the child waits for it.
    pub next_attempt: Option<Instant>,
    /// How the supervisor stops it.
    pub shutdown: Shutdown,
    /// Whether its exit can shut the supervisor down (auto-shutdown).
    pub significant: bool,
    /// When the current incarnation started, while it runs.
    pub started_at: Option<Instant>,
    /// When it last exited, if it has.
    pub last_exit_at: Option<Instant>,
    /// Its start function is running right now.
    pub starting: bool,
}

impl<P: Clone> ChildView<'_, P> {
    /// The same child, copied out.
    ///
    /// ```
    /// use canopy::{core::Core, ChildSpec, Start, SupervisorSpec};
    /// let spec = SupervisorSpec::default().child(ChildSpec::new("a", |_| async { Ok(Start::Ignore) }));
    /// let core: Core<u64> = Core::new(&spec).unwrap();
    /// let mut ids = Vec::new();
    /// core.visit_children(|child| ids.push(child.to_info().id));
    /// assert_eq!(ids, ["a"]);
    /// ```
    pub fn to_info(&self) -> ChildInfo<P> {
        ChildInfo {
            id: self.id.to_string(),
            status: match &self.status {
                ChildStatus::Running(p) => ChildStatus::Running((*p).clone()),
                ChildStatus::Restarting => ChildStatus::Restarting,
                ChildStatus::Stopped => ChildStatus::Stopped,
            },
            kind: self.kind,
            restart: self.restart,
            restarts: self.restarts,
            last_exit: self.last_exit.cloned(),
            next_attempt: self.next_attempt,
            shutdown: self.shutdown,
            significant: self.significant,
            started_at: self.started_at,
            last_exit_at: self.last_exit_at,
            starting: self.starting,
        }
    }
}

/// A supervisor's strategy and restart budget, and how much of it is in use.
///
/// ```
/// use std::time::{Duration, Instant};
/// use canopy::{core::Core, SupervisorSpec};
/// let core: Core<u64> = Core::new(&SupervisorSpec::default()).unwrap();
/// let budget = core.budget(Instant::now());
/// assert_eq!((budget.intensity, budget.period, budget.restarts_in_window), (3, Duration::from_secs(5), 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The strategy; `None` for a dynamic supervisor (each child on its own).
    pub strategy: Option<Strategy>,
    /// The restarts allowed per period.
    pub intensity: u32,
    /// The period.
    pub period: Duration,
    /// Restarts counted in the period up to now.
    pub restarts_in_window: usize,
}

impl Budget {
    pub(crate) fn of(strategy: Option<Strategy>, window: &RestartWindow, now: Instant) -> Budget {
        Budget {
            strategy,
            intensity: window.intensity(),
            period: window.period(),
            restarts_in_window: window.in_window(now),
        }
    }
}

/// OTP's `count_children`.
///
/// ```
/// let c = canopy::ChildCounts::default();
/// assert_eq!((c.specs, c.active, c.supervisors, c.workers), (0, 0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// Child specs held, running or not.
    pub specs: usize,
    /// Children running now.
    pub active: usize,
    /// Specs of kind supervisor.
    pub supervisors: usize,
    /// Specs of kind worker.
    pub workers: usize,
}

/// Why a child management call was refused (docs/semantics.md, "Child management API").
///
/// ```
/// let e: canopy::ChildError = canopy::ChildError::NotFound("db".into());
/// assert_eq!(e.to_string(), "no child with id `db`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildError<P = ActorCell> {
    /// No child has this id.
    NotFound(String),
    /// The child is running; terminate it first.
    Running(String),
    /// The child is between a failed restart and its retry.
    Restarting(String),
    /// A spec with this id exists but is not running (`already_present`).
    AlreadyPresent(String),
    /// A child with this id, or the process the start function clashed with, is running
    /// (`already_started`).
    AlreadyStarted {
        /// The child's id.
        id: String,
        /// The running process.
        pid: P,
    },
    /// The start function failed; nothing was stored (`start_child`) or the spec stays stopped
    /// (`restart_child`).
    StartFailed {
        /// The child's id.
        id: String,
        /// What the start function reported.
        reason: String,
    },
    /// The spec given to `start_child` is invalid.
    Spec(SpecError),
    /// The supervisor is not running (OTP's `noproc`).
    SupervisorDown,
    /// A dynamic supervisor already has its `max_children` children (running, restarting or
    /// waiting for a backed-off restart); Elixir's `{:error, :max_children}`.
    MaxChildren,
}

impl<P: Pid> fmt::Display for ChildError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::NotFound(id) => write!(f, "no child with id `{id}`"),
            ChildError::Running(id) => write!(f, "child `{id}` is running"),
            ChildError::Restarting(id) => write!(f, "child `{id}` is restarting"),
            ChildError::AlreadyPresent(id) => write!(f, "child `{id}` is already present"),
            ChildError::AlreadyStarted { id, pid } => {
                write!(f, "child `{id}` is already started as {}", pid.describe())
            }
            ChildError::StartFailed { id, reason } => {
                write!(f, "child `{id}` failed to start: {reason}")
            }
            ChildError::Spec(e) => write!(f, "invalid child spec: {e}"),
            ChildError::SupervisorDown => f.write_str("the supervisor is not running"),
            ChildError::MaxChildren => {
                f.write_str("the supervisor already has its maximum number of children")
            }
        }
    }
}

impl<P: Pid> std::error::Error for ChildError<P> {}

/// Why a start function did not produce a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure<P = ActorCell> {
    /// It failed, with this reason.
    Error(String),
    /// It clashed with a running process (a registered name taken outside the tree).
    AlreadyStarted(P),
}

impl<P: Pid> fmt::Display for StartFailure<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartFailure::Error(reason) => f.write_str(reason),
            StartFailure::AlreadyStarted(pid) => {
                write!(f, "already started as {}", pid.describe())
            }
        }
    }
}

/// What the shell must do next.
#[derive(Debug)]
pub enum Command<P> {
    /// Run this spec's start function and report with [`Core::started`].
    Start {
        /// The spec to start (shared with the core: a restart copies no spec).
        spec: Arc<ChildSpec>,
    },
    /// Stop this process by its policy and report with [`Core::terminated`].
    Terminate {
        /// The child's id.
        id: String,
        /// The process to stop.
        pid: P,
        /// How to stop it.
        shutdown: Shutdown,
    },
    /// The operation is over.
    Done(Outcome<P>),
}

/// How an operation ended.
#[derive(Debug)]
pub enum Outcome<P> {
    /// Start-up finished; every child that did not ignore its start is running.
    Ready,
    /// A child failed to start during start-up; the ones already started were terminated in reverse
    /// order. The supervisor must fail its own start with this.
    InitFailed {
        /// The child that failed.
        id: String,
        /// Why.
        reason: String,
    },
    /// Nothing more to do. `retry` names a child whose restart failed or is backed off: the shell
    /// queues a retry behind whatever is already waiting, after the delay if there is
    /// one, and calls [`Core::retry_due`] with the retry's generation when it comes up. The shell
    /// need not cancel earlier retries of the same child: the core ignores them.
    Idle {
        /// The restart to retry, if any.
        retry: Option<Retry>,
    },
    /// Every child is down; the supervisor must exit with this reason.
    Exit(ExitReason),
    /// The answer to a child management call.
    Reply(Result<Option<P>, ChildError<P>>),
}

/// A restart the shell must come back to with [`Core::retry_due`], passing `generation` back.
///
/// ```
/// use std::time::{Duration, Instant};
/// use canopy::backoff::Backoff;
/// use canopy::core::{Command, Core, Outcome, Retry};
/// use canopy::{ChildSpec, ExitReason, Start, SupervisorSpec};
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// let spec = SupervisorSpec::default()
///     .child(ChildSpec::new("a", |_sup| async { Ok(Start::Ignore) }).backoff(backoff));
/// let mut core: Core<u64> = Core::new(&spec).unwrap();
/// let Command::Start { .. } = core.init() else { unreachable!() };
/// core.started(Ok(Some(7)));
///
/// let t0 = Instant::now();
/// let cmd = core.child_exited(&7, ExitReason::Error("boom".into()), t0);
/// let Some(Command::Done(Outcome::Idle { retry: Some(Retry { id, after, generation }) })) = cmd
/// else { unreachable!() };
/// assert!(after >= Duration::from_millis(100));
/// // A retry of another generation is stale: nothing happens.
/// assert!(core.retry_due(&id, generation + 1, t0 + after).is_none());
/// // This one is due: the child is started again.
/// assert!(matches!(core.retry_due(&id, generation, t0 + after), Some(Command::Start { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The child.
    pub id: String,
    /// How long to wait first: zero for OTP's immediate `try_again_restart`, the backoff delay
    /// otherwise.
    pub after: Duration,
    /// Which retry this is. Only the last retry handed out for a child counts, and only while the
    /// child still waits for it.
    pub generation: u64,
}

/// An OTP supervisor report, for the shell to log once the operation is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A child exited by itself: every exit of a permanent child, the abnormal ones of the others.
    ChildTerminated {
        /// The child.
        id: String,
        /// Its exit reason.
        reason: ExitReason,
    },
    /// A start function failed.
    StartError {
        /// The child.
        id: String,
        /// What it reported.
        reason: String,
    },
    /// A child did not stop the way its policy expects (killed after its timeout, or an abnormal
    /// reason).
    ShutdownError {
        /// The child.
        id: String,
        /// How it ended.
        reason: ExitReason,
    },
    /// The restart budget is spent, or a child's backoff allows no further restart in a row
    /// ([`Backoff::max_retries`]); the supervisor is shutting down.
    ReachedMaxRestartIntensity {
        /// The child whose restart was refused.
        id: String,
    },
    /// A significant child's exit triggered auto-shutdown.
    AutoShutdown {
        /// The significant child.
        id: String,
    },
    /// A dynamic child's restart returned ignore, so the child is gone; its start
    /// arguments are dropped with it.
    RestartIgnored {
        /// The child.
        id: String,
    },
}

#[derive(Debug, Clone)]
enum State<P> {
    Running(P),
    Restarting,
    Stopped,
    /// Removed while an operation was running; swept when it ends.
    Removed,
}

#[derive(Debug)]
struct Child<P> {
    spec: Arc<ChildSpec>,
    state: State<P>,
    started_at: Option<Instant>,
    /// Its exits and restarts so far, boxed (see [`History`]).
    past: History<PendingRetry>,
}

/// What only a child that has exited, been stopped or waited for a restart has, static or
/// dynamic: boxed, so that an idle child that never exited costs one pointer for it (issue 13's
/// memory per child). Allocated at the first exit and kept: a child that exits once tends to again.
#[derive(Debug)]
pub(crate) struct History<R>(Option<Box<Past<R>>>);

/// A child's exits and restarts so far (see [`History`]).
#[derive(Debug)]
pub(crate) struct Past<R> {
    /// Restarts of a static child (a dynamic child keeps its own count inline).
    pub(crate) restarts: u32,
    pub(crate) last_exit: Option<ExitReason>,
    pub(crate) last_exit_at: Option<Instant>,
    pub(crate) backoff_state: BackoffState,
    /// The one retry the shell may still act on. Any other that comes up is stale.
    pub(crate) pending: Option<R>,
    /// When a backed-off restart is due, while the child waits for it: shown, never decided on.
    pub(crate) next_attempt: Option<Instant>,
}

impl<R> History<R> {
    pub(crate) const NONE: History<R> = History(None);

    pub(crate) fn get(&self) -> Option<&Past<R>> {
        self.0.as_deref()
    }

    /// The past, created empty the first time something is recorded in it.
    pub(crate) fn get_mut(&mut self) -> &mut Past<R> {
        self.0.get_or_insert_with(|| {
            Box::new(Past {
                restarts: 0,
                last_exit: None,
                last_exit_at: None,
                backoff_state: BackoffState::default(),
                pending: None,
                next_attempt: None,
            })
        })
    }

    /// Records how and when the child last exited.
    pub(crate) fn record_exit(&mut self, reason: ExitReason, at: Option<Instant>) {
        let past = self.get_mut();
        past.last_exit = Some(reason);
        past.last_exit_at = at;
    }

    pub(crate) fn restarts(&self) -> u32 {
        self.get().map_or(0, |p| p.restarts)
    }

    pub(crate) fn last_exit(&self) -> Option<&ExitReason> {
        self.get().and_then(|p| p.last_exit.as_ref())
    }

    pub(crate) fn last_exit_at(&self) -> Option<Instant> {
        self.get().and_then(|p| p.last_exit_at)
    }

    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        self.get().and_then(|p| p.next_attempt)
    }

    /// The child no longer waits for a retry: whichever was handed out is stale from now on.
    pub(crate) fn drop_retry(&mut self) {
        if let Some(past) = &mut self.0 {
            past.pending = None;
            past.next_attempt = None;
        }
    }

    /// The delay before the next restart under `policy`, or `None` past its bound on restarts in
    /// a row (see [`BackoffState::next_delay`]).
    pub(crate) fn next_delay(
        &mut self,
        policy: &Backoff,
        now: Instant,
        unit: f64,
    ) -> Option<Duration> {
        self.get_mut().backoff_state.next_delay(policy, now, unit)
    }

    /// A start that did not come from a restart: no crash loop to carry on.
    pub(crate) fn reset_backoff(&mut self) {
        if let Some(past) = &mut self.0 {
            past.backoff_state.reset();
        }
    }
}

impl<R: Copy> History<R> {
    pub(crate) fn pending(&self) -> Option<R> {
        self.get().and_then(|p| p.pending)
    }
}

/// The retry a child waits for.
#[derive(Debug, Clone, Copy)]
struct PendingRetry {
    generation: u64,
    /// A backed-off restart, counted against the budget when it was scheduled, rather than OTP's
    /// try-again after a failed start, counted when it comes up.
    backed_off: bool,
}

impl<P> Child<P> {
    fn new(spec: ChildSpec) -> Self {
        Self::shared(Arc::new(spec))
    }

    fn shared(spec: Arc<ChildSpec>) -> Self {
        Child {
            spec,
            state: State::Stopped,
            started_at: None,
            past: History::NONE,
        }
    }

    /// The child no longer waits for a retry: whichever was handed out is stale from now on.
    fn drop_retry(&mut self) {
        self.past.drop_retry();
    }
}

impl<P: Pid> Child<P> {
    /// `starting`: the operation in progress will start this child (a one_for_all or
    /// rest_for_one round that has stopped it and not started it again yet): it shows as
    /// restarting, not stopped, so that nobody takes it for stopped for good.
    ///
    /// `shutdown_exit`: its exit in the supervisor's shutdown, if it was recorded outside its past
    /// (see `Core::shutdown_exits`).
    fn view<'a>(
        &'a self,
        starting: bool,
        starting_now: bool,
        shutdown_exit: Option<&'a ShutdownExit>,
    ) -> ChildView<'a, P> {
        let (last_exit, last_exit_at) = match (self.past.last_exit(), shutdown_exit) {
            (None, Some((reason, at))) => (Some(reason), *at),
            (last, _) => (last, self.past.last_exit_at()),
        };
        ChildView {
            id: &self.spec.id,
            status: match &self.state {
                State::Running(p) => ChildStatus::Running(p),
                State::Restarting => ChildStatus::Restarting,
                State::Stopped if starting => ChildStatus::Restarting,
                State::Stopped | State::Removed => ChildStatus::Stopped,
            },
            kind: self.spec.kind,
            restart: self.spec.restart,
            restarts: self.past.restarts(),
            last_exit,
            next_attempt: self.past.next_attempt(),
            shutdown: self.spec.get_shutdown(),
            significant: self.spec.significant,
            started_at: match self.state {
                State::Running(_) => self.started_at,
                _ => None,
            },
            last_exit_at,
            starting: starting_now,
        }
    }

    fn is_temporary(&self) -> bool {
        self.spec.restart == Restart::Temporary
    }

    /// Stopped, or removed for good if temporary: what becomes of a child the supervisor took down
    /// outside of its own shutdown. True if it was removed (one more tombstone to sweep).
    #[must_use]
    fn stop_or_remove(&mut self) -> bool {
        self.drop_retry();
        let removed = self.is_temporary() && !matches!(self.state, State::Removed);
        self.state = if self.is_temporary() {
            State::Removed
        } else {
            State::Stopped
        };
        removed
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Terminate(usize),
    Start(usize),
}

/// An operation's steps still to come: the children at the positions of `stop` stopped from the
/// last to the first, then those of `start` started from the first to the last. Every operation
/// has this shape (start-up starts the whole list, a shutdown stops it, a one_for_all or
/// rest_for_one round stops a tail of it and starts that tail again, an API call or a one_for_one
/// restart touches one child), so two ranges hold it: nothing is allocated per operation, and a
/// round of any size is built in O(1).
#[derive(Debug, Clone)]
struct Steps {
    stop: Range<usize>,
    start: Range<usize>,
}

impl Steps {
    fn start(idx: usize) -> Self {
        Steps {
            stop: 0..0,
            start: idx..idx + 1,
        }
    }

    fn start_all(len: usize) -> Self {
        Steps {
            stop: 0..0,
            start: 0..len,
        }
    }

    fn stop(idx: usize) -> Self {
        Steps {
            stop: idx..idx + 1,
            start: 0..0,
        }
    }

    /// Every child from `from` on stopped in reverse start order.
    fn stop_from(from: usize, len: usize) -> Self {
        Steps {
            stop: from..len,
            start: 0..0,
        }
    }

    /// Every child from `from` on stopped in reverse start order, then started in start order.
    fn cycle(from: usize, len: usize) -> Self {
        Steps {
            stop: from..len,
            start: from..len,
        }
    }

    fn pop_front(&mut self) -> Option<Step> {
        match self.stop.next_back() {
            Some(idx) => Some(Step::Terminate(idx)),
            None => self.start.next().map(Step::Start),
        }
    }

    /// The positions still to be started.
    fn starts(&self) -> &Range<usize> {
        &self.start
    }
}

#[derive(Debug)]
enum OpKind {
    Init,
    InitAbort {
        id: String,
        reason: String,
    },
    /// A restart round, begun at `now`: the start time of every child it starts.
    Restart {
        now: Instant,
    },
    Shutdown(ExitReason),
    ApiStart(usize),
    ApiRestart(usize),
    ApiTerminate,
}

#[derive(Debug)]
struct Op {
    kind: OpKind,
    steps: Steps,
    current: Option<Step>,
}

/// A static supervisor's state and decision logic. See the [module docs](self).
#[derive(Debug)]
pub struct Core<P> {
    strategy: Strategy,
    auto_shutdown: AutoShutdown,
    window: RestartWindow,
    children: Vec<Child<P>>,
    /// Where each child is in `children`, by id: what makes every call by id O(1). An entry may
    /// point at a tombstone (a removed child not swept yet); `find` checks.
    ids: IdIndex,
    /// Removed children still in `children`. They are swept once they are half of the list and no
    /// operation holds positions into it, so that removing a child costs O(1) amortised.
    tombstones: usize,
    pids: PidIndex<P>,
    op: Option<Op>,
    reports: Vec<Report>,
    default_backoff: Option<Backoff>,
    /// Seeded at the first backed-off restart: reading the clock for a seed cost every start about
    /// 110 instructions, and most supervisors never back off.
    jitter: Option<Jitter>,
    /// The latest time the shell gave: what start and exit times are recorded with.
    clock: Option<Instant>,
    /// The last retry generation handed out. One counter for all children, not one each, so that a
    /// child deleted and added again under the same id cannot take its predecessor's retry for its
    /// own.
    generations: u64,
    /// Children a restart round stopped whose own exit reason has not arrived yet, with the process
    /// that was stopped, in the order they were stopped (see [`Core::terminated_later`]). A queue
    /// searched from the front rather than a map: the round waits for each child before it stops
    /// the next, so their exit events come in this order and each is found first, at no hashing.
    awaited: VecDeque<(P, AwaitedExit)>,
    /// The supervisor has begun to stop for good (see [`Core::is_exiting`]).
    exiting: bool,
    /// How the children that the supervisor's shutdown stopped before they ever exited ended, by
    /// position: one table for the whole shutdown (allocated at its first stop) rather than a
    /// boxed past per child, which cost an allocation and a free per child, about 6 % of the
    /// instructions of an ordered shutdown of 1,000 children. Read as the child's last exit while
    /// its past has none. Empty unless the supervisor has shut down.
    shutdown_exits: Vec<Option<ShutdownExit>>,
}

/// A child's exit in its supervisor's shutdown and when it was recorded.
type ShutdownExit = (ExitReason, Option<Instant>);

/// Where each child is in the list, by id. The table holds positions only; an entry's id is read
/// from the child it points at, so the index costs a child a position and a control byte (about
/// 12 bytes at the table's load), not a second pointer to the spec beside it as well (22).
///
/// Hashed with foldhash, seeded at random per index as std's `RandomState` is: an id may come from
/// outside the program, so the seed stays secret, but SipHash cost about 150 instructions per id,
/// paid on every `start_child` and again for every entry when the table grows.
///
/// A list of at most [`IdIndex::SCANNED`] children has no table: an id is found by comparing it
/// with each child's, newest first, which costs less than hashing it, and building the table (an
/// allocation, a hash per child) cost every supervisor's start about 340 instructions. The table is
/// built the moment the list outgrows that size, so every lookup stays O(1) in the number of
/// children.
#[derive(Debug, Default)]
struct IdIndex {
    table: hashbrown::HashTable<usize>,
    hasher: foldhash::fast::RandomState,
    /// The table holds every child; false while the list is small enough to scan.
    built: bool,
}

impl IdIndex {
    /// The longest list found by scanning.
    const SCANNED: usize = 16;

    /// `id`'s hash, if there is a table to look it up in.
    fn hash(&self, id: &str) -> Option<u64> {
        self.built
            .then(|| std::hash::BuildHasher::hash_one(&self.hasher, id))
    }

    /// The position recorded for `id` (it may be a tombstone's).
    fn get<P>(&self, id: &str, children: &[Child<P>]) -> Option<usize> {
        self.get_hashed(self.hash(id), id, children)
    }

    /// [`get`](Self::get) with `id`'s hash already worked out (`None`: no table).
    fn get_hashed<P>(&self, hash: Option<u64>, id: &str, children: &[Child<P>]) -> Option<usize> {
        match hash {
            Some(hash) => self
                .table
                .find(hash, |&i| children[i].spec.id == id)
                .copied(),
            // Newest first: a child added again under a removed child's id is the one found, as
            // the table would find it.
            None => children.iter().rposition(|c| c.spec.id == id),
        }
    }

    /// Records `idx` as the position of the child there, replacing the position of a removed
    /// child with the same id.
    fn insert<P>(&mut self, idx: usize, children: &[Child<P>]) {
        let id = children[idx].spec.id.as_str();
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, id);
        let replaces = self.get_hashed(Some(hash), id, children).is_some();
        self.insert_in_table(hash, idx, replaces, children);
    }

    /// Records `idx`, just pushed, whose id hashes to `hash` (`None`: no table): in the slot of a
    /// removed child with the same id if `replaces` (the caller has just looked the id up), or as
    /// a new entry. Builds the table when the list has just outgrown scanning.
    fn insert_hashed<P>(
        &mut self,
        hash: Option<u64>,
        idx: usize,
        replaces: bool,
        children: &[Child<P>],
    ) {
        match hash {
            Some(hash) => self.insert_in_table(hash, idx, replaces, children),
            None if children.len() > Self::SCANNED => self.rebuild(children),
            None => {}
        }
    }

    fn insert_in_table<P>(&mut self, hash: u64, idx: usize, replaces: bool, children: &[Child<P>]) {
        let id = children[idx].spec.id.as_str();
        if replaces {
            if let Some(slot) = self.table.find_mut(hash, |&i| children[i].spec.id == id) {
                *slot = idx;
                return;
            }
        }
        let hasher = &self.hasher;
        self.table.insert_unique(hash, idx, |&i| {
            std::hash::BuildHasher::hash_one(hasher, children[i].spec.id.as_str())
        });
    }

    /// Every child of `children` at its position, from scratch; no table for a list short enough
    /// to scan.
    fn rebuild<P>(&mut self, children: &[Child<P>]) {
        self.table.clear();
        self.built = children.len() > Self::SCANNED;
        if !self.built {
            return;
        }
        self.table.reserve(children.len(), |_| 0);
        for idx in 0..children.len() {
            self.insert(idx, children);
        }
    }
}

/// Where each running child is in the list, by process: how an exit finds its child in O(1).
///
/// As with [`IdIndex`], a list of at most [`IdIndex::SCANNED`] children has no table: a process is
/// found by comparing it with each running child's, which spares every supervisor's start the
/// table's allocation and a hashed insert per child (about 250 instructions for one child). The
/// table is built when a child starts or exits in a list longer than that.
#[derive(Debug)]
struct PidIndex<P> {
    table: HashMap<P, usize, PidHash>,
    /// The table holds every running child; false while the list is scanned instead.
    built: bool,
}

impl<P> Default for PidIndex<P> {
    fn default() -> Self {
        PidIndex {
            table: HashMap::with_hasher(PidHash),
            built: false,
        }
    }
}

impl<P: Pid> PidIndex<P> {
    /// The position of the child running as `pid`.
    fn get(&self, pid: &P, children: &[Child<P>]) -> Option<usize> {
        if self.built {
            return self.table.get(pid).copied();
        }
        children
            .iter()
            .position(|c| matches!(&c.state, State::Running(p) if p == pid))
    }

    /// `pid` stops running: its position, if it was a running child's. Called while its child's
    /// state still says it runs.
    fn remove(&mut self, pid: &P, children: &[Child<P>]) -> Option<usize> {
        self.grown(children);
        if self.built {
            self.table.remove(pid)
        } else {
            self.get(pid, children)
        }
    }

    /// The child at `idx` now runs as `pid` (its state already says so).
    fn insert(&mut self, pid: P, idx: usize, children: &[Child<P>]) {
        if self.built {
            self.table.insert(pid, idx);
        } else {
            self.grown(children);
        }
    }

    /// Builds the table once the list has outgrown scanning. Called when a child is added too,
    /// not only when one starts or stops: a list grown past the size by children that were
    /// ignored (added, never running) would otherwise be scanned on every lookup until the next
    /// start or exit.
    fn grown(&mut self, children: &[Child<P>]) {
        if !self.built && children.len() > IdIndex::SCANNED {
            self.rebuild(children);
        }
    }

    /// True while any child runs.
    fn any(&self, children: &[Child<P>]) -> bool {
        if self.built {
            return !self.table.is_empty();
        }
        children
            .iter()
            .any(|c| matches!(c.state, State::Running(_)))
    }

    /// Every running child of `children` at its position, from scratch; no table for a list short
    /// enough to scan.
    fn rebuild(&mut self, children: &[Child<P>]) {
        self.table.clear();
        self.built = children.len() > IdIndex::SCANNED;
        if !self.built {
            return;
        }
        for (idx, child) in children.iter().enumerate() {
            if let State::Running(pid) = &child.state {
                self.table.insert(pid.clone(), idx);
            }
        }
    }
}

/// A child stopped by a restart round, waiting for its real exit reason: what is needed to record
/// and report it once it comes, even if the child was removed meanwhile (a temporary one).
#[derive(Debug)]
pub(crate) struct AwaitedExit {
    /// The child's spec (shared: a round copies no id).
    pub(crate) spec: Arc<ChildSpec>,
    /// What the shell saw when the child was gone, used if the real reason never comes.
    pub(crate) seen: Option<ExitReason>,
    at: Option<Instant>,
    /// Where the child was in the list when it was stopped: where it still is unless a sweep moved
    /// it, which saves hashing its id to record its exit.
    idx: usize,
}

impl<P: Pid> Core<P> {
    /// A core for this spec, with no child started yet. The spec is validated first.
    pub fn new(spec: &SupervisorSpec) -> Result<Self, SpecError> {
        spec.validate()?;
        Ok(Self::from_valid(spec.clone()))
    }

    /// [`Core::new`], taking the spec: each child's spec is moved into the core rather than
    /// copied, so that a large tree is not held twice while it starts.
    pub(crate) fn from_spec(spec: SupervisorSpec) -> Result<Self, SpecError> {
        spec.validate()?;
        Ok(Self::from_valid(spec))
    }

    fn from_valid(spec: SupervisorSpec) -> Self {
        // Not `collect`: it would reuse the specs' buffer in place, and an entry being smaller
        // than a spec, the buffer's tail (24 bytes a child) would stay allocated for good.
        let mut children: Vec<Child<P>> = Vec::with_capacity(spec.children.len());
        children.extend(spec.children.into_iter().map(Child::new));
        let mut core = Core {
            strategy: spec.strategy,
            auto_shutdown: spec.auto_shutdown,
            window: RestartWindow::new(spec.intensity, spec.period),
            ids: IdIndex::default(),
            pids: PidIndex::default(),
            children,
            tombstones: 0,
            op: None,
            reports: Vec::new(),
            default_backoff: spec.backoff,
            jitter: None,
            clock: None,
            generations: 0,
            awaited: VecDeque::new(),
            shutdown_exits: Vec::new(),
            exiting: false,
        };
        core.ids.rebuild(&core.children);
        core.pids.rebuild(&core.children);
        core
    }

    /// Seeds the backoff jitter, for reproducible tests.
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter = Some(Jitter::seeded(seed));
        self
    }

    // ---------------------------------------------------------------------------------------------
    // Events

    /// Start-up (docs/semantics.md, "Start-up"): start every child one at a time, in list order.
    pub fn init(&mut self) -> Command<P> {
        let steps = Steps::start_all(self.children.len());
        self.begin(OpKind::Init, steps)
    }

    /// A child exited. Returns `None` for an exit that is not about a current child: an
    /// incarnation already replaced or terminated (OTP's unlink-and-flush), or a stranger.
    pub fn child_exited(
        &mut self,
        pid: &P,
        reason: ExitReason,
        now: Instant,
    ) -> Option<Command<P>> {
        debug_assert!(self.op.is_none(), "events are handled between operations");
        self.clock = Some(now);
        let idx = self.pids.remove(pid, &self.children)?;
        let child = &mut self.children[idx];
        if !matches!(&child.state, State::Running(p) if p == pid) {
            return None;
        }
        let abnormal = !reason.is_normal_class();
        if child.spec.restart == Restart::Permanent || abnormal {
            self.reports.push(Report::ChildTerminated {
                id: child.spec.id.clone(),
                reason: reason.clone(),
            });
        }
        child.past.record_exit(reason, Some(now));
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if restart {
            child.state = State::Restarting;
            return Some(self.restart(idx, now));
        }
        self.tombstones += usize::from(child.stop_or_remove());
        let significant = child.spec.significant;
        let id = child.spec.id.clone();
        self.sweep();
        if significant && self.auto_shutdown_due() {
            self.reports.push(Report::AutoShutdown { id });
            return Some(self.shutdown(ExitReason::Shutdown));
        }
        Some(Command::Done(Outcome::Idle { retry: None }))
    }

    /// A queued retry came up, with the `generation` of its [`Retry`]: a failed start's retry
    /// that counts against the budget now (it is the next attempt), or a backed-off restart,
    /// counted when it was scheduled. `None`, with nothing changed, unless it is the last retry
    /// handed out for the child and the child still waits for it: a retry is stale once the child
    /// was restarted by a sibling's round, terminated or deleted, given a newer retry, or the
    /// supervisor shut down.
    ///
    /// ```
    /// use std::time::Instant;
    /// use canopy::core::{Command, Core, Outcome};
    /// use canopy::{ChildSpec, ExitReason, Start, SupervisorSpec};
    ///
    /// let spec = SupervisorSpec::default()
    ///     .child(ChildSpec::new("a", |_sup| async { Ok(Start::Ignore) }));
    /// let mut core: Core<u64> = Core::new(&spec).unwrap();
    /// core.init();
    /// core.started(Ok(Some(7)));
    /// let now = Instant::now();
    /// let Some(Command::Start { .. }) = core.child_exited(&7, ExitReason::Killed, now) else {
    ///     unreachable!()
    /// };
    /// // The restart fails: OTP's try-again, through the shell's queue.
    /// let Command::Done(Outcome::Idle { retry: Some(retry) }) =
    ///     core.started(Err(canopy::core::StartFailure::Error("no db".into())))
    /// else { unreachable!() };
    /// assert!(retry.after.is_zero());
    /// assert!(matches!(core.retry_due("a", retry.generation, now), Some(Command::Start { .. })));
    /// ```
    pub fn retry_due(&mut self, id: &str, generation: u64, now: Instant) -> Option<Command<P>> {
        debug_assert!(self.op.is_none(), "events are handled between operations");
        self.clock = Some(now);
        let idx = self.find(id)?;
        let child = &mut self.children[idx];
        let pending = child
            .past
            .pending()
            .filter(|p| p.generation == generation)?;
        if !matches!(child.state, State::Restarting) {
            debug_assert!(false, "a child with a pending retry is restarting");
            return None;
        }
        child.drop_retry();
        if pending.backed_off {
            return Some(self.restart_now(idx, now));
        }
        Some(self.restart(idx, now))
    }

    /// Stop every running child in reverse start order, then exit with `reason`. Any
    /// operation in progress is abandoned.
    pub fn shutdown(&mut self, reason: ExitReason) -> Command<P> {
        self.exiting = true;
        let steps = self.terminate_steps(0);
        self.op = None;
        for child in &mut self.children {
            child.drop_retry();
        }
        self.begin(OpKind::Shutdown(reason), steps)
    }

    // ---------------------------------------------------------------------------------------------
    // The child management API (docs/semantics.md, "Child management API")

    /// Adds a child as the last-started one and starts it.
    pub fn start_child(&mut self, spec: ChildSpec) -> Command<P> {
        self.start_child_shared(Arc::new(spec))
    }

    /// [`start_child`](Self::start_child) of a spec already shared: the supervisor's caller wraps
    /// it, so that the request carries a pointer instead of the whole spec through every move of
    /// the message, and the core keeps that very allocation.
    pub(crate) fn start_child_shared(&mut self, spec: Arc<ChildSpec>) -> Command<P> {
        if let Err(e) = check_child_spec(&spec, self.auto_shutdown) {
            return reply(Err(ChildError::Spec(e)));
        }
        // The id is hashed once, for the check and the insert both.
        let hash = self.ids.hash(&spec.id);
        let known = self.ids.get_hashed(hash, &spec.id, &self.children);
        if let Some(idx) = known {
            match &self.children[idx].state {
                State::Running(pid) => {
                    return reply(Err(ChildError::AlreadyStarted {
                        id: spec.id.clone(),
                        pid: pid.clone(),
                    }))
                }
                State::Removed => {}
                _ => return reply(Err(ChildError::AlreadyPresent(spec.id.clone()))),
            }
        }
        let idx = self.children.len();
        let child = Child::shared(spec);
        self.children.push(child);
        self.ids
            .insert_hashed(hash, idx, known.is_some(), &self.children);
        self.pids.grown(&self.children);
        self.begin(OpKind::ApiStart(idx), Steps::start(idx))
    }

    /// Stops a child by its policy and keeps its spec (a temporary child's spec is dropped). A child
    /// in a restart loop leaves it; a stopped child is already terminated.
    pub fn terminate_child(&mut self, id: &str) -> Command<P> {
        let Some(idx) = self.find(id) else {
            return reply(Err(ChildError::NotFound(id.to_string())));
        };
        let child = &mut self.children[idx];
        match child.state {
            State::Running(_) => self.begin(OpKind::ApiTerminate, Steps::stop(idx)),
            State::Restarting | State::Stopped => {
                self.tombstones += usize::from(child.stop_or_remove());
                self.sweep();
                reply(Ok(None))
            }
            State::Removed => reply(Err(ChildError::NotFound(id.to_string()))),
        }
    }

    /// Starts a stopped child again. Does not count against the restart budget.
    pub fn restart_child(&mut self, id: &str) -> Command<P> {
        let Some(idx) = self.find(id) else {
            return reply(Err(ChildError::NotFound(id.to_string())));
        };
        match self.children[idx].state {
            State::Stopped => self.begin(OpKind::ApiRestart(idx), Steps::start(idx)),
            State::Running(_) => reply(Err(ChildError::Running(id.to_string()))),
            State::Restarting => reply(Err(ChildError::Restarting(id.to_string()))),
            State::Removed => reply(Err(ChildError::NotFound(id.to_string()))),
        }
    }

    /// Drops a stopped child's spec.
    pub fn delete_child(&mut self, id: &str) -> Result<(), ChildError<P>> {
        let idx = self
            .find(id)
            .ok_or_else(|| ChildError::NotFound(id.to_string()))?;
        match self.children[idx].state {
            State::Stopped => {
                self.remove(idx);
                self.sweep();
                Ok(())
            }
            State::Running(_) => Err(ChildError::Running(id.to_string())),
            State::Restarting => Err(ChildError::Restarting(id.to_string())),
            State::Removed => Err(ChildError::NotFound(id.to_string())),
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Results fed back by the shell

    /// The result of the last [`Command::Start`]: the new process, `None` for ignore, or the failure.
    pub fn started(&mut self, result: Result<Option<P>, StartFailure<P>>) -> Command<P> {
        let Some(Step::Start(idx)) = self.op.as_mut().and_then(|op| op.current.take()) else {
            debug_assert!(false, "started() without a Start in progress");
            return Command::Done(Outcome::Idle { retry: None });
        };
        let round = match self.op_kind() {
            Some(OpKind::Restart { now }) => Some(*now),
            _ => None,
        };
        let child = &mut self.children[idx];
        match result {
            Ok(Some(pid)) => {
                child.started_at = self.clock;
                match round {
                    Some(at) => {
                        child.past.get_mut().restarts += 1;
                        // Stability is measured from a start that succeeded, never from an
                        // attempt: a start that fails slowly must not pass for a stable run.
                        child.past.get_mut().backoff_state.started(at);
                    }
                    // Start-up or the API: no restart, so no crash loop to carry on.
                    None => child.past.reset_backoff(),
                }
                // Started by a sibling's round while its own retry waited: that retry is stale.
                child.drop_retry();
                child.state = State::Running(pid.clone());
                self.pids.insert(pid, idx, &self.children);
                self.next()
            }
            Ok(None) => {
                // `ignore`: the spec is kept with no process, except a temporary one's.
                self.tombstones += usize::from(child.stop_or_remove());
                self.next()
            }
            Err(failure) => self.start_failed(idx, failure),
        }
    }

    /// The result of the last [`Command::Terminate`]: how the child ended, or `None` when it had
    /// already exited by itself and its reason is still on its way.
    pub fn terminated(&mut self, reason: Option<ExitReason>) -> Command<P> {
        let Some(idx) = self.take_terminate() else {
            return Command::Done(Outcome::Idle { retry: None });
        };
        let in_shutdown = matches!(self.op_kind(), Some(OpKind::Shutdown(_)));
        let len = self.children.len();
        if let State::Running(pid) = &self.children[idx].state {
            self.pids.remove(pid, &self.children);
        }
        let child = &mut self.children[idx];
        if let Some(reason) = reason {
            if !shutdown_went_as_planned(child.spec.restart, child.spec.get_shutdown(), &reason) {
                self.reports.push(Report::ShutdownError {
                    id: child.spec.id.clone(),
                    reason: reason.clone(),
                });
            }
            if in_shutdown && child.past.get().is_none() {
                if self.shutdown_exits.len() < len {
                    self.shutdown_exits.resize_with(len, || None);
                }
                self.shutdown_exits[idx] = Some((reason, self.clock));
            } else {
                child.past.record_exit(reason, self.clock);
            }
        }
        // A temporary child the supervisor stopped is gone for good (OTP's temporary_bystander).
        self.tombstones += usize::from(child.stop_or_remove());
        self.next()
    }

    /// The child of the `Terminate` in progress, now answered.
    fn take_terminate(&mut self) -> Option<usize> {
        match self.op.as_mut().and_then(|op| op.current.take()) {
            Some(Step::Terminate(idx)) => Some(idx),
            other => {
                debug_assert!(
                    false,
                    "a stop's result without a Terminate in progress: {other:?}"
                );
                None
            }
        }
    }

    /// True while a restart round runs: the shell may stop its children without waiting for their
    /// exit events and hand their reasons in afterwards ([`Core::terminated_later`]).
    pub(crate) fn in_restart_round(&self) -> bool {
        matches!(self.op_kind(), Some(OpKind::Restart { .. }))
    }

    /// The result of the last [`Command::Terminate`] of a restart round when the child is gone but
    /// its own exit reason has not been seen yet: the round goes on, and the reason is recorded and
    /// reported when it comes, through [`Core::stopped_with`]. `seen` (what the shell saw: `shutdown`,
    /// `killed`, or `None` for a child already gone) stands in for it if it never comes
    /// ([`Core::settle_stopped`]).
    pub(crate) fn terminated_later(&mut self, seen: Option<ExitReason>) -> Command<P> {
        let Some(idx) = self.take_terminate() else {
            return Command::Done(Outcome::Idle { retry: None });
        };
        if let State::Running(pid) = &self.children[idx].state {
            self.pids.remove(pid, &self.children);
        }
        let child = &mut self.children[idx];
        if let State::Running(pid) = &child.state {
            self.awaited.push_back((
                pid.clone(),
                AwaitedExit {
                    spec: child.spec.clone(),
                    seen,
                    at: self.clock,
                    idx,
                },
            ));
        }
        self.tombstones += usize::from(child.stop_or_remove());
        self.next()
    }

    /// The real exit reason of `pid`, a child a restart round stopped with
    /// [`Core::terminated_later`]: recorded as the child's last exit (if it is still there), and a
    /// `shutdown_error` report if it is not the reason its policy expects. `None` if `pid` was not
    /// awaited (it is then an ordinary exit, for [`Core::child_exited`]).
    pub(crate) fn stopped_with(&mut self, pid: &P, reason: ExitReason) -> Option<AwaitedExit> {
        let at = self.awaited.iter().position(|(p, _)| p == pid)?;
        let (_, awaited) = self.awaited.remove(at)?;
        self.record_stop(&awaited, reason);
        Some(awaited)
    }

    /// Records every child still awaited with what the shell saw, since its exit event will not come
    /// (it had unlinked itself, or the supervisor is stopping): the shell calls this once every event
    /// already queued has been handled.
    pub(crate) fn settle_stopped(&mut self) -> Vec<AwaitedExit> {
        let settled: Vec<AwaitedExit> = self.awaited.drain(..).map(|(_, a)| a).collect();
        for awaited in &settled {
            if let Some(reason) = awaited.seen.clone() {
                self.record_stop(awaited, reason);
            }
        }
        settled
    }

    fn record_stop(&mut self, awaited: &AwaitedExit, reason: ExitReason) {
        let spec = &awaited.spec;
        if !shutdown_went_as_planned(spec.restart, spec.get_shutdown(), &reason) {
            self.reports.push(Report::ShutdownError {
                id: spec.id.clone(),
                reason: reason.clone(),
            });
        }
        // Only the child of this spec: not one deleted and added again under the same id.
        let is_it = |c: &Child<P>| Arc::ptr_eq(&c.spec, spec) && !matches!(c.state, State::Removed);
        let idx = match self.children.get(awaited.idx) {
            Some(c) if is_it(c) => Some(awaited.idx),
            _ => self.find(&spec.id),
        };
        if let Some(idx) = idx {
            let child = &mut self.children[idx];
            if Arc::ptr_eq(&child.spec, spec) {
                child.past.record_exit(reason, awaited.at);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Queries

    /// Every child, most recently started first (OTP's order).
    pub fn which_children(&self) -> Vec<ChildInfo<P>> {
        (0..self.children.len())
            .rev()
            .filter(|&idx| !matches!(self.children[idx].state, State::Removed))
            .map(|idx| self.view_at(idx).to_info())
            .collect()
    }

    /// Whether the supervisor has begun to stop for good: a shutdown (asked for, or after too many
    /// restarts, or an automatic one), or the undoing of a failed start-up. It never turns back,
    /// so a reader who sees `false` after reading a child knows the child's entry told the
    /// child's own fate, not the supervisor's exit.
    ///
    /// ```
    /// use canopy::core::Core;
    /// use canopy::{ChildSpec, ExitReason, Start, SupervisorSpec};
    ///
    /// let spec = SupervisorSpec::default().child(ChildSpec::new("a", |_| async { Ok(Start::Ignore) }));
    /// let mut core: Core<u64> = Core::new(&spec).unwrap();
    /// assert!(!core.is_exiting());
    /// core.shutdown(ExitReason::Shutdown);
    /// assert!(core.is_exiting());
    /// ```
    pub fn is_exiting(&self) -> bool {
        self.exiting
    }

    /// One child by id.
    pub fn which_child(&self, id: &str) -> Option<ChildInfo<P>> {
        self.find(id).map(|idx| self.info_at(idx))
    }

    /// How many children [`visit_children`](Self::visit_children) lends at most.
    ///
    /// ```
    /// use canopy::{core::Core, SupervisorSpec};
    /// let core: Core<u64> = Core::new(&SupervisorSpec::default()).unwrap();
    /// assert_eq!(core.child_count(), 0);
    /// ```
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// Lends every child but the removed ones to `visit`, in start order (the reverse of
    /// [`which_children`](Self::which_children)), without copying them: what a reader that turns
    /// children into its own types (the snapshot) uses instead of `which_children`.
    ///
    /// ```
    /// use canopy::{core::Core, ChildSpec, Start, SupervisorSpec};
    /// let ignore = |id| ChildSpec::new(id, |_| async { Ok(Start::Ignore) });
    /// let core: Core<u64> =
    ///     Core::new(&SupervisorSpec::default().child(ignore("a")).child(ignore("b"))).unwrap();
    /// let mut ids = Vec::new();
    /// core.visit_children(|child| ids.push(child.id.to_string()));
    /// assert_eq!(ids, ["a", "b"]);
    /// ```
    pub fn visit_children(&self, mut visit: impl FnMut(&ChildView<'_, P>)) {
        for idx in 0..self.children.len() {
            if !matches!(self.children[idx].state, State::Removed) {
                visit(&self.view_at(idx));
            }
        }
    }

    fn info_at(&self, idx: usize) -> ChildInfo<P> {
        self.view_at(idx).to_info()
    }

    /// The child at `idx` as a reader sees it. Whether the operation in progress has yet to start
    /// it, or is starting it, is read from the operation's two ranges, in O(1): a snapshot taken
    /// during a round of a large supervisor does not scan the round for every child.
    fn view_at(&self, idx: usize) -> ChildView<'_, P> {
        let (starting, starting_now) = match &self.op {
            Some(op) => {
                let now = matches!(op.current, Some(Step::Start(i)) if i == idx);
                (now || op.steps.starts().contains(&idx), now)
            }
            None => (false, false),
        };
        let shutdown_exit = self.shutdown_exits.get(idx).and_then(Option::as_ref);
        self.children[idx].view(starting, starting_now, shutdown_exit)
    }

    /// OTP's `count_children`.
    pub fn count_children(&self) -> ChildCounts {
        self.count_children_alive(|_| true)
    }

    /// [`count_children`](Self::count_children) where `active` also asks `alive` about each
    /// running process, as OTP checks `is_process_alive`: an exit not processed yet is not active.
    pub fn count_children_alive(&self, alive: impl Fn(&P) -> bool) -> ChildCounts {
        let mut c = ChildCounts::default();
        for child in self.live() {
            c.specs += 1;
            if matches!(&child.state, State::Running(pid) if alive(pid)) {
                c.active += 1;
            }
            match child.spec.kind {
                ChildKind::Supervisor => c.supervisors += 1,
                ChildKind::Worker => c.workers += 1,
            }
        }
        c
    }

    /// A child's full spec, defaults filled in.
    pub fn get_childspec(&self, id: &str) -> Option<ChildSpec> {
        self.find(id).map(|idx| (*self.children[idx].spec).clone())
    }

    /// How many children are waiting to be restarted (backed off, or retried through the
    /// mailbox): what a supervisor that stops now cancels, and says so.
    ///
    /// ```
    /// use std::time::Instant;
    /// use canopy::core::{Command, Core, StartFailure};
    /// use canopy::{ChildSpec, ExitReason, Start, SupervisorSpec};
    ///
    /// let spec = SupervisorSpec::default()
    ///     .child(ChildSpec::new("a", |_| async { Ok(Start::Ignore) }))
    ///     .child(ChildSpec::new("b", |_| async { Ok(Start::Ignore) }));
    /// let mut core: Core<u64> = Core::new(&spec).unwrap();
    /// core.init();
    /// core.started(Ok(Some(1)));
    /// core.started(Ok(Some(2)));
    /// assert_eq!(core.pending_restarts(), 0);
    /// // "a" crashes and its restart fails: it waits for a retry.
    /// let Some(Command::Start { .. }) = core.child_exited(&1, ExitReason::Killed, Instant::now())
    /// else { unreachable!() };
    /// core.started(Err(StartFailure::Error("no db".into())));
    /// assert_eq!(core.pending_restarts(), 1);
    /// ```
    pub fn pending_restarts(&self) -> usize {
        self.live()
            .filter(|child| matches!(child.state, State::Restarting))
            .count()
    }

    /// True while any child runs.
    pub fn has_running_children(&self) -> bool {
        self.pids.any(&self.children)
    }

    /// The child id of a running process.
    pub fn id_of(&self, pid: &P) -> Option<&str> {
        self.pids
            .get(pid, &self.children)
            .map(|idx| self.children[idx].spec.id.as_str())
    }

    /// The supervisor's own settings and how much of its restart budget is in use at `now`.
    pub fn budget(&self, now: Instant) -> Budget {
        Budget::of(Some(self.strategy), &self.window, now)
    }

    /// The time now, for the start and exit times of the operation that follows (events that carry
    /// a time set it too).
    pub fn tick(&mut self, now: Instant) {
        self.clock = Some(now);
    }

    /// The whole tree is being killed at once (a shutdown deadline ran out, or a second signal came):
    /// every running child's last exit becomes `killed`, since the supervisor will not run again to
    /// record it.
    pub fn record_killed(&mut self, now: Instant) {
        self.clock = Some(now);
        for child in &mut self.children {
            if matches!(child.state, State::Running(_)) {
                child.past.record_exit(ExitReason::Killed, self.clock);
            }
        }
    }

    /// Takes the reports gathered since the last call, for logging off the decision path.
    pub fn take_reports(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.reports)
    }

    // ---------------------------------------------------------------------------------------------
    // Strategies, restart intensity and try-again (docs/semantics.md)

    /// Counts a restart of `idx` against the budget, then restarts by strategy, after the child's
    /// backoff delay if it has one. Past the budget, or past the backoff's bound on restarts in a
    /// row, the supervisor gives up.
    fn restart(&mut self, idx: usize, now: Instant) -> Command<P> {
        if !self.window.allow(now) {
            return self.give_up(idx);
        }
        let child = &mut self.children[idx];
        // The child's own backoff, or the supervisor's: looked up rather than copied into every
        // child, which would cost each of them 64 bytes.
        if let Some(policy) = child
            .spec
            .backoff
            .as_deref()
            .or(self.default_backoff.as_ref())
        {
            let Some(delay) = child.past.next_delay(
                policy,
                now,
                self.jitter
                    .get_or_insert_with(Jitter::from_entropy)
                    .next_unit(),
            ) else {
                // Once the delays outgrow the intensity period the window never fills, so the
                // bound is what stops this crash loop.
                return self.give_up(idx);
            };
            if !delay.is_zero() {
                let retry = self.hand_out_retry(idx, delay, true);
                // A delay too long for the clock leaves nothing to show, not a panic.
                self.children[idx].past.get_mut().next_attempt = now.checked_add(delay);
                return Command::Done(Outcome::Idle { retry: Some(retry) });
            }
        }
        self.restart_now(idx, now)
    }

    /// OTP's `reached_max_restart_intensity`, for `idx`'s refused restart.
    fn give_up(&mut self, idx: usize) -> Command<P> {
        let child = &mut self.children[idx];
        self.reports.push(Report::ReachedMaxRestartIntensity {
            id: child.spec.id.clone(),
        });
        self.tombstones += usize::from(child.stop_or_remove());
        self.shutdown(ExitReason::ShutdownWith(
            REACHED_MAX_RESTART_INTENSITY.to_string(),
        ))
    }

    /// Marks `idx` restarting with a new retry, which makes any earlier one stale.
    fn hand_out_retry(&mut self, idx: usize, after: Duration, backed_off: bool) -> Retry {
        self.generations = self.generations.wrapping_add(1);
        let generation = self.generations;
        let child = &mut self.children[idx];
        child.state = State::Restarting;
        let past = child.past.get_mut();
        past.next_attempt = None;
        past.pending = Some(PendingRetry {
            generation,
            backed_off,
        });
        Retry {
            id: child.spec.id.clone(),
            after,
            generation,
        }
    }

    /// The strategy's round for `idx`, already counted against the budget.
    fn restart_now(&mut self, idx: usize, now: Instant) -> Command<P> {
        if self.strategy != Strategy::OneForOne {
            // OTP's `del_child`: the child leaves the running set before the round, so that if a
            // sibling's start fails only that sibling is left restarting.
            self.children[idx].state = State::Stopped;
        }
        let steps = match self.strategy {
            Strategy::OneForOne => Steps::start(idx),
            Strategy::OneForAll => self.cycle_steps(0),
            Strategy::RestForOne => self.cycle_steps(idx),
        };
        self.begin(OpKind::Restart { now }, steps)
    }

    /// Terminate the running children from `from` on in reverse start order (the one that failed is
    /// not running, so it is skipped), then start every remaining child from `from` on in start order.
    fn cycle_steps(&self, from: usize) -> Steps {
        Steps::cycle(from, self.children.len())
    }

    fn terminate_steps(&self, from: usize) -> Steps {
        Steps::stop_from(from, self.children.len())
    }

    fn start_failed(&mut self, idx: usize, failure: StartFailure<P>) -> Command<P> {
        let id = self.children[idx].spec.id.clone();
        let kind = self.op.take().map(|op| op.kind);
        // An API call returns its error to the caller; OTP logs `start_error` only for starts the
        // supervisor makes on its own (start-up and restarts).
        let api_error = |failure: StartFailure<P>, id: String| match failure {
            StartFailure::AlreadyStarted(pid) => ChildError::AlreadyStarted { id, pid },
            StartFailure::Error(reason) => ChildError::StartFailed { id, reason },
        };
        match kind {
            Some(OpKind::ApiStart(_)) => {
                self.remove(idx);
                self.sweep();
                return reply(Err(api_error(failure, id)));
            }
            Some(OpKind::ApiRestart(_)) => return reply(Err(api_error(failure, id))),
            _ => {}
        }
        let reason = failure.to_string();
        self.reports.push(Report::StartError {
            id: id.clone(),
            reason: reason.clone(),
        });
        if let Some(OpKind::Init) = kind {
            // Undo the start-up in reverse order, then fail.
            self.children[idx].state = State::Stopped;
            self.exiting = true;
            let steps = self.terminate_steps(0);
            return self.begin(OpKind::InitAbort { id, reason }, steps);
        }
        // Mark it restarting and retry through the mailbox, so that anything already
        // waiting (API calls, exits, a shutdown) is handled first. The retry counts as the next
        // attempt when it comes up, and a child with a backoff is then put off by its next delay.
        // A backed-off wait the child had is over (a sibling's round just tried it): its timer
        // must not restart it again, uncounted and undelayed.
        let retry = self.hand_out_retry(idx, Duration::ZERO, false);
        self.sweep();
        Command::Done(Outcome::Idle { retry: Some(retry) })
    }

    fn auto_shutdown_due(&self) -> bool {
        match self.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self.live().any(|c| {
                c.spec.significant && matches!(c.state, State::Running(_) | State::Restarting)
            }),
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Driving an operation

    fn begin(&mut self, kind: OpKind, steps: Steps) -> Command<P> {
        debug_assert!(self.op.is_none(), "one operation at a time");
        self.op = Some(Op {
            kind,
            steps,
            current: None,
        });
        self.next()
    }

    fn op_kind(&self) -> Option<&OpKind> {
        self.op.as_ref().map(|op| &op.kind)
    }

    /// The next step that applies, or the end of the operation.
    fn next(&mut self) -> Command<P> {
        loop {
            let Some(op) = self.op.as_mut() else {
                return Command::Done(Outcome::Idle { retry: None });
            };
            let Some(step) = op.steps.pop_front() else {
                return self.finish();
            };
            let child = &self.children[step_index(step)];
            let command = match (step, &child.state) {
                (Step::Terminate(_), State::Running(pid)) => Command::Terminate {
                    id: child.spec.id.clone(),
                    pid: pid.clone(),
                    shutdown: child.spec.get_shutdown(),
                },
                (Step::Start(_), State::Stopped | State::Restarting) => Command::Start {
                    spec: child.spec.clone(),
                },
                // Not running (nothing to stop), removed, or already running: skip.
                _ => continue,
            };
            op.current = Some(step);
            return command;
        }
    }

    fn finish(&mut self) -> Command<P> {
        let Some(op) = self.op.take() else {
            return Command::Done(Outcome::Idle { retry: None });
        };
        let outcome = match op.kind {
            OpKind::Init => Outcome::Ready,
            OpKind::InitAbort { id, reason } => Outcome::InitFailed { id, reason },
            OpKind::Restart { .. } => Outcome::Idle { retry: None },
            OpKind::Shutdown(reason) => Outcome::Exit(reason),
            OpKind::ApiStart(idx) | OpKind::ApiRestart(idx) => {
                Outcome::Reply(Ok(match &self.children[idx].state {
                    State::Running(pid) => Some(pid.clone()),
                    _ => None,
                }))
            }
            OpKind::ApiTerminate => Outcome::Reply(Ok(None)),
        };
        self.sweep();
        Command::Done(outcome)
    }

    // ---------------------------------------------------------------------------------------------
    // The child list

    fn live(&self) -> impl DoubleEndedIterator<Item = &Child<P>> {
        self.children
            .iter()
            .filter(|c| !matches!(c.state, State::Removed))
    }

    fn find(&self, id: &str) -> Option<usize> {
        let idx = self.ids.get(id, &self.children)?;
        (!matches!(self.children[idx].state, State::Removed)).then_some(idx)
    }

    /// Leaves a tombstone at `idx` (it is not running).
    fn remove(&mut self, idx: usize) {
        if !matches!(self.children[idx].state, State::Removed) {
            self.children[idx].state = State::Removed;
            self.tombstones += 1;
        }
    }

    /// Drops removed children once they are half of the list and no operation holds positions
    /// into it. Sweeping after every removal would make each one O(children).
    fn sweep(&mut self) {
        if self.op.is_some() || self.tombstones == 0 || self.tombstones * 2 < self.children.len() {
            return;
        }
        if !self.shutdown_exits.is_empty() {
            // Kept beside the children they belong to.
            let mut kept = self
                .children
                .iter()
                .map(|c| !matches!(c.state, State::Removed));
            self.shutdown_exits.retain(|_| kept.next().unwrap_or(false));
        }
        self.children.retain(|c| !matches!(c.state, State::Removed));
        self.tombstones = 0;
        self.ids.rebuild(&self.children);
        self.pids.rebuild(&self.children);
    }
}

fn reply<P>(result: Result<Option<P>, ChildError<P>>) -> Command<P> {
    Command::Done(Outcome::Reply(result))
}

fn step_index(step: Step) -> usize {
    match step {
        Step::Terminate(i) | Step::Start(i) => i,
    }
}

/// OTP's `child_res`: `killed` is expected only from a brutal kill, `shutdown` always, `normal` and
/// `{shutdown, _}` only from a child that is not permanent. Anything else is a `shutdown_error`.
pub(crate) fn shutdown_went_as_planned(
    restart: Restart,
    shutdown: Shutdown,
    reason: &ExitReason,
) -> bool {
    match reason {
        ExitReason::Killed => shutdown == Shutdown::BrutalKill,
        ExitReason::Shutdown => true,
        ExitReason::Normal | ExitReason::ShutdownWith(_) => restart != Restart::Permanent,
        ExitReason::Error(_) => false,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Issue 13: a supervised child costs at most 256 bytes more than the same child under a
    /// hand-written ractor parent. The entry in the core's list is most of what canopy adds, so
    /// its size is held here; what it no longer carries inline (its exits and restarts, its
    /// backoff) is what an idle child does not need.
    #[test]
    fn an_idle_child_entry_stays_small() {
        let entry = std::mem::size_of::<Child<ActorCell>>();
        let spec = std::mem::size_of::<ChildSpec>();
        println!(
            "Child<ActorCell> = {entry} B, ChildSpec = {spec} B, Past = {} B",
            std::mem::size_of::<Past<PendingRetry>>()
        );
        assert!(entry <= 48, "Child<ActorCell> is {entry} bytes");
        assert!(spec <= 72, "ChildSpec is {spec} bytes");
    }
}
