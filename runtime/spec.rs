//! Child and supervisor specifications, with their defaults and validation.
//!
//! A [`ChildSpec`] says how to start one child and how to treat it when it exits; a
//! [`SupervisorSpec`] holds the strategy, the restart budget and the children in start order. Specs are
//! plain data with builders; every combination that Rust's types do not already rule out is checked by
//! [`SupervisorSpec::validate`] and reported as a [`SpecError`] that names the child.
//!
//! ```
//! use std::time::Duration;
//! use canopy::{ChildSpec, Restart, Shutdown, Strategy, SupervisorSpec};
//! # #[derive(Clone)] struct Worker;
//! # impl canopy::ractor::Actor for Worker {
//! #     type Msg = (); type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: ()) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
//! # }
//!
//! let spec = SupervisorSpec::new(Strategy::RestForOne)
//!     .restart_intensity(5, Duration::from_secs(10))
//!     .child(ChildSpec::actor("db", Worker, ()))
//!     .child(ChildSpec::actor("cache", Worker, ()).restart(Restart::Transient))
//!     .child(ChildSpec::actor("web", Worker, ()).shutdown(Shutdown::Drain(Duration::from_secs(2))));
//! assert!(spec.validate().is_ok());
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use ractor::{Actor, ActorCell, ActorRef};

/// The error type a start function may fail with: anything that is an error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Extra information a start function hands back to the caller of `start_child` or `restart_child`,
/// OTP's `{ok, Pid, Info}`. The supervisor stores nothing of it.
pub type StartInfo = Arc<dyn Any + Send + Sync>;

/// What a start function produced: a started, linked child, or `Ignore` (OTP's `ignore`: the child chose
/// not to run; its spec is kept with no process, unless it is temporary).
///
/// ```
/// # use canopy::Start;
/// # async fn demo(actor: canopy::ractor::ActorRef<()>) {
/// let started: Start = actor.into();
/// let with_info = started.with_info(42u32);
/// let ignored = Start::Ignore;
/// # }
/// ```
#[derive(Clone)]
pub enum Start {
    /// The child runs and is linked to the supervisor cell given to the start function.
    Started {
        /// The child's cell.
        cell: ActorCell,
        /// Extra information passed back to an API caller.
        info: Option<StartInfo>,
    },
    /// The child decided not to run.
    Ignore,
}

impl Start {
    /// Attaches information for the API caller; does nothing on `Ignore`.
    pub fn with_info<T: Any + Send + Sync>(self, info: T) -> Self {
        match self {
            Start::Started { cell, .. } => Start::Started {
                cell,
                info: Some(Arc::new(info)),
            },
            Start::Ignore => Start::Ignore,
        }
    }
}

impl From<ActorCell> for Start {
    fn from(cell: ActorCell) -> Self {
        Start::Started { cell, info: None }
    }
}

impl<M: ractor::Message> From<ActorRef<M>> for Start {
    fn from(actor: ActorRef<M>) -> Self {
        actor.get_cell().into()
    }
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Started { cell, info } => f
                .debug_struct("Started")
                .field("cell", cell)
                .field("info", &info.is_some())
                .finish(),
            Start::Ignore => f.write_str("Ignore"),
        }
    }
}

/// A start function: given the supervisor's cell, spawn the child linked to it and return once the
/// child's `pre_start` has finished.
pub type StartFn =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<Start, BoxError>> + Send + Sync>;

/// When a child is restarted after it exits (docs/semantics.md, the exit decision table).
///
/// ```
/// assert_eq!(canopy::Restart::default(), canopy::Restart::Permanent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Restart {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (not `normal` or `shutdown`).
    Transient,
    /// Never restarted; its spec is dropped when it exits.
    Temporary,
}

/// How a child is stopped by its supervisor (docs/semantics.md, "Shutdown policies").
///
/// ```
/// use std::time::Duration;
/// let policy = canopy::Shutdown::Timeout(Duration::from_secs(5));
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Kill at once: the task is aborted and `post_stop` does not run.
    BrutalKill,
    /// Ask to stop (taken between messages; queued messages are dropped), kill if still alive after
    /// the duration.
    Timeout(Duration),
    /// Ask to stop and wait for as long as it takes. The right policy for child supervisors.
    Infinity,
    /// Let the child handle every message already in its mailbox, then stop; kill after the duration.
    Drain(Duration),
}

/// What a child is: a worker, or a supervisor with children of its own.
///
/// ```
/// assert_eq!(canopy::ChildKind::default(), canopy::ChildKind::Worker);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChildKind {
    /// A leaf actor.
    #[default]
    Worker,
    /// A supervisor.
    Supervisor,
}

impl ChildKind {
    /// The default shutdown policy for this kind: 5 s for workers, infinity for supervisors.
    ///
    /// ```
    /// # use canopy::{ChildKind, Shutdown};
    /// assert_eq!(ChildKind::Supervisor.default_shutdown(), Shutdown::Infinity);
    /// ```
    pub fn default_shutdown(self) -> Shutdown {
        match self {
            ChildKind::Worker => Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
            ChildKind::Supervisor => Shutdown::Infinity,
        }
    }
}

/// OTP's default shutdown for workers.
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

/// How one child is started and treated when it exits.
///
/// A spec whose start function cannot be given does not exist: the start is a constructor argument.
///
/// ```compile_fail
/// // OTP's `missing_start` cannot be written: there is no constructor without a start function.
/// let spec = canopy::ChildSpec::new("worker");
/// ```
///
/// ```
/// use canopy::{ChildSpec, Restart, Shutdown};
/// # #[derive(Clone)] struct Cache;
/// # impl canopy::ractor::Actor for Cache {
/// #     type Msg = (); type State = (); type Arguments = usize;
/// #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: usize) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
/// # }
/// let spec = ChildSpec::actor("cache", Cache, 1024).restart(Restart::Transient);
/// assert_eq!(spec.id(), "cache");
/// assert_eq!(spec.get_shutdown(), Shutdown::Timeout(std::time::Duration::from_secs(5)));
///
/// // The general form: any async function that spawns a child linked to the given supervisor cell.
/// let custom = ChildSpec::new("cache2", |sup| async move {
///     let (cache, _) = canopy::ractor::Actor::spawn_linked(None, Cache, 2048, sup).await?;
///     Ok(cache.into())
/// });
/// # let _ = custom;
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    shutdown: ShutdownSetting,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
    /// Boxed: most children have none, and every supervised child carries its spec for as long as
    /// it is supervised (a `Backoff` inline would be 64 of the spec's bytes).
    pub(crate) backoff: Option<Box<crate::backoff::Backoff>>,
}

impl ChildSpec {
    /// A worker spec from an id and a start function. The function gets the supervisor's cell and must
    /// spawn the child linked to it (`spawn_linked`), returning after the child's `pre_start`. A panic in
    /// it is caught and treated as a start error.
    pub fn new<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Start, BoxError>> + Send + 'static,
    {
        ChildSpec {
            id: id.into(),
            start: Arc::new(move |sup| start(sup).boxed()),
            restart: Restart::Permanent,
            shutdown: ShutdownSetting::DEFAULT,
            kind: ChildKind::Worker,
            significant: false,
            backoff: None,
        }
    }

    /// A worker spec that spawns `actor` with `args` (both cloned for every start and restart).
    pub fn actor<A>(id: impl Into<String>, actor: A, args: A::Arguments) -> Self
    where
        A: Actor + Clone,
        A::Arguments: Clone + Sync,
    {
        ChildSpec::new(id, move |sup| {
            let actor = actor.clone();
            let args = args.clone();
            async move {
                let (child, _) = Actor::spawn_linked(None, actor, args, sup).await?;
                Ok(Start::from(child))
            }
        })
    }

    /// Sets the restart type (default `Permanent`).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the shutdown policy (default: 5 s for workers, infinity for supervisors).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = ShutdownSetting::of(shutdown);
        self
    }

    /// Sets the kind (default `Worker`); the default shutdown follows the kind.
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    /// Marks the child significant for `auto_shutdown`. Only transient and temporary
    /// children may be significant, and only under a supervisor whose auto-shutdown is not `Never`.
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// Delays this child's restarts with `backoff` (overrides the supervisor's
    /// [`SupervisorSpec::backoff`]). See [`backoff`](crate::backoff).
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::{backoff::Backoff, ChildSpec, Start};
    /// let spec = ChildSpec::new("flaky", |_sup| async { Ok(Start::Ignore) })
    ///     .backoff(Backoff::new(Duration::from_millis(100), Duration::from_secs(10)));
    /// assert!(spec.get_backoff().is_some());
    /// ```
    pub fn backoff(mut self, backoff: crate::backoff::Backoff) -> Self {
        self.backoff = Some(Box::new(backoff));
        self
    }

    /// The child's own backoff policy, if it has one.
    pub fn get_backoff(&self) -> Option<crate::backoff::Backoff> {
        self.backoff.as_deref().copied()
    }

    /// The child's id, unique among its siblings.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The restart type.
    pub fn get_restart(&self) -> Restart {
        self.restart
    }

    /// The shutdown policy, with the kind's default filled in.
    pub fn get_shutdown(&self) -> Shutdown {
        self.shutdown.get().unwrap_or(self.kind.default_shutdown())
    }

    /// The kind.
    pub fn get_kind(&self) -> ChildKind {
        self.kind
    }

    /// Whether the child is significant.
    pub fn is_significant(&self) -> bool {
        self.significant
    }
}

pub(crate) fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.get_shutdown())
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// A child's shutdown policy as set, or "the kind's default": an `Option<Shutdown>` in 16 bytes
/// instead of 24 (a grace's seconds and nanoseconds, and which policy), since every supervised child
/// keeps its spec for as long as it is supervised.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ShutdownSetting {
    secs: u64,
    nanos: u32,
    how: u8,
}

impl ShutdownSetting {
    const DEFAULT: ShutdownSetting = ShutdownSetting::packed(0, Duration::ZERO);
    const BRUTAL_KILL: u8 = 1;
    const TIMEOUT: u8 = 2;
    const INFINITY: u8 = 3;
    const DRAIN: u8 = 4;

    const fn packed(how: u8, grace: Duration) -> ShutdownSetting {
        ShutdownSetting {
            secs: grace.as_secs(),
            nanos: grace.subsec_nanos(),
            how,
        }
    }

    fn of(policy: Shutdown) -> ShutdownSetting {
        match policy {
            Shutdown::BrutalKill => Self::packed(Self::BRUTAL_KILL, Duration::ZERO),
            Shutdown::Timeout(grace) => Self::packed(Self::TIMEOUT, grace),
            Shutdown::Infinity => Self::packed(Self::INFINITY, Duration::ZERO),
            Shutdown::Drain(grace) => Self::packed(Self::DRAIN, grace),
        }
    }

    /// The policy set, or `None` for the kind's default.
    fn get(self) -> Option<Shutdown> {
        // `nanos` only ever comes from a `Duration`, so it is below a second.
        let grace = Duration::new(self.secs, self.nanos);
        match self.how {
            Self::BRUTAL_KILL => Some(Shutdown::BrutalKill),
            Self::TIMEOUT => Some(Shutdown::Timeout(grace)),
            Self::INFINITY => Some(Shutdown::Infinity),
            Self::DRAIN => Some(Shutdown::Drain(grace)),
            _ => None,
        }
    }
}

/// How a supervisor restarts its children when one of them must be restarted.
///
/// ```
/// assert_eq!(canopy::Strategy::default(), canopy::Strategy::OneForOne);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Restart only the child that exited.
    #[default]
    OneForOne,
    /// Stop all other children in reverse start order, then start all of them in start order.
    OneForAll,
    /// Stop the children started after the one that exited, then start it and them again in order.
    RestForOne,
}

/// When a supervisor stops by itself because significant children exited (docs/semantics.md).
///
/// ```
/// assert_eq!(canopy::AutoShutdown::default(), canopy::AutoShutdown::Never);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AutoShutdown {
    /// Never; significant children are not allowed.
    #[default]
    Never,
    /// As soon as any significant child exits by itself.
    AnySignificant,
    /// Once every significant child has exited by itself.
    AllSignificant,
}

/// Elixir's defaults: 3 restarts in 5 seconds.
pub const DEFAULT_INTENSITY: u32 = 3;
/// See [`DEFAULT_INTENSITY`].
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

/// A static supervisor: strategy, restart budget, auto-shutdown mode and children in start order.
///
/// ```
/// use std::time::Duration;
/// use canopy::{AutoShutdown, Strategy, SupervisorSpec};
/// let spec = SupervisorSpec::new(Strategy::OneForAll)
///     .restart_intensity(1, Duration::from_secs(1))
///     .auto_shutdown(AutoShutdown::AnySignificant);
/// assert_eq!(spec.get_intensity(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub(crate) strategy: Strategy,
    pub(crate) intensity: u32,
    pub(crate) period: Duration,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) name: Option<String>,
    pub(crate) backoff: Option<crate::backoff::Backoff>,
}

impl Default for SupervisorSpec {
    fn default() -> Self {
        SupervisorSpec::new(Strategy::OneForOne)
    }
}

impl SupervisorSpec {
    /// A spec with the given strategy, 3 restarts in 5 s, auto-shutdown `Never` and no children.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            intensity: DEFAULT_INTENSITY,
            period: DEFAULT_PERIOD,
            auto_shutdown: AutoShutdown::Never,
            children: Vec::new(),
            name: None,
            backoff: None,
        }
    }

    /// Delays the restarts of every child that has no backoff of its own. A delayed restart still
    /// counts against the restart intensity when it is scheduled, and a child that keeps failing
    /// without staying up escalates after the backoff's
    /// [`max_retries`](crate::backoff::Backoff::max_retries) restarts in a row, however long its
    /// delays have grown.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::{backoff::Backoff, SupervisorSpec};
    /// let spec = SupervisorSpec::default()
    ///     .backoff(Backoff::new(Duration::from_millis(50), Duration::from_secs(5)));
    /// assert!(spec.validate().is_ok());
    /// ```
    pub fn backoff(mut self, backoff: crate::backoff::Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Names a top-level supervisor in paths (`/app/...`; `root` by default). A child supervisor is
    /// named by its child id instead.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// At most `intensity` restarts in any sliding window of `period`; one more and the supervisor
    /// stops its children and exits with a shutdown reason. `intensity` 0 means the first restart
    /// already gives up.
    pub fn restart_intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    /// Sets the auto-shutdown mode.
    pub fn auto_shutdown(mut self, mode: AutoShutdown) -> Self {
        self.auto_shutdown = mode;
        self
    }

    /// Appends a child; children start in the order they are added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Appends several children in order.
    pub fn children(mut self, children: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.children.extend(children);
        self
    }

    /// The strategy.
    pub fn get_strategy(&self) -> Strategy {
        self.strategy
    }

    /// The restart intensity.
    pub fn get_intensity(&self) -> u32 {
        self.intensity
    }

    /// The restart period.
    pub fn get_period(&self) -> Duration {
        self.period
    }

    /// The auto-shutdown mode.
    pub fn get_auto_shutdown(&self) -> AutoShutdown {
        self.auto_shutdown
    }

    /// The child specs in start order.
    pub fn get_children(&self) -> &[ChildSpec] {
        &self.children
    }

    /// Checks the flags and every child spec; the first problem found is returned.
    ///
    /// ```
    /// use canopy::{ChildSpec, SpecError, SupervisorSpec};
    /// let start = |sup: canopy::ractor::ActorCell| async move { Ok(canopy::Start::Ignore) };
    /// let spec = SupervisorSpec::default()
    ///     .child(ChildSpec::new("a", start))
    ///     .child(ChildSpec::new("a", start));
    /// assert_eq!(spec.validate(), Err(SpecError::DuplicateId("a".into())));
    /// ```
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.period.is_zero() {
            return Err(SpecError::ZeroPeriod);
        }
        if let Some(name) = &self.name {
            check_name(name)?;
        }
        if let Some(b) = &self.backoff {
            b.validate()?;
        }
        check_child_specs(&self.children, self.auto_shutdown)
    }
}

/// Checks a list of child specs as a supervisor with the given auto-shutdown mode would (OTP's
/// `check_childspecs/2`): every spec valid, ids unique.
///
/// ```
/// use canopy::{check_child_specs, AutoShutdown, ChildSpec, Restart, SpecError};
/// let s = ChildSpec::new("s", |_sup| async { Ok(canopy::Start::Ignore) }).significant(true);
/// assert_eq!(
///     check_child_specs(&[s.clone().restart(Restart::Transient)], AutoShutdown::Never),
///     Err(SpecError::SignificantWithoutAutoShutdown("s".into()))
/// );
/// assert_eq!(
///     check_child_specs(&[s], AutoShutdown::AnySignificant),
///     Err(SpecError::SignificantPermanent("s".into()))
/// );
/// ```
pub fn check_child_specs(
    children: &[ChildSpec],
    auto_shutdown: AutoShutdown,
) -> Result<(), SpecError> {
    // A few children (the common case, and every supervisor's start validates its list) are
    // compared with the ones before them: no set to allocate and hash into.
    if children.len() <= FEW_CHILDREN {
        for (i, child) in children.iter().enumerate() {
            check_child_spec(child, auto_shutdown)?;
            if children[..i].iter().any(|earlier| earlier.id == child.id) {
                return Err(SpecError::DuplicateId(child.id.clone()));
            }
        }
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(children.len());
    for child in children {
        check_child_spec(child, auto_shutdown)?;
        if !seen.insert(child.id.as_str()) {
            return Err(SpecError::DuplicateId(child.id.clone()));
        }
    }
    Ok(())
}

/// Up to this many children, duplicate ids are found by comparing each id with those before it
/// (at most 120 comparisons of short strings).
const FEW_CHILDREN: usize = 16;

/// Checks one child spec on its own (not its id's uniqueness).
/// A name or id becomes one segment of a path: it may not contain `/`.
pub(crate) fn check_name(name: &str) -> Result<(), SpecError> {
    if name.contains('/') {
        return Err(SpecError::SlashInName(name.to_string()));
    }
    Ok(())
}

pub(crate) fn check_child_spec(
    child: &ChildSpec,
    auto_shutdown: AutoShutdown,
) -> Result<(), SpecError> {
    if child.id.is_empty() {
        return Err(SpecError::EmptyId);
    }
    check_name(&child.id)?;
    if let Some(b) = &child.backoff {
        b.validate()?;
    }
    if child.significant {
        if child.restart == Restart::Permanent {
            return Err(SpecError::SignificantPermanent(child.id.clone()));
        }
        if auto_shutdown == AutoShutdown::Never {
            return Err(SpecError::SignificantWithoutAutoShutdown(child.id.clone()));
        }
    }
    Ok(())
}

/// A spec that cannot be run, naming the child where one is at fault.
///
/// ```
/// let err = canopy::SpecError::DuplicateId("db".into());
/// assert_eq!(err.to_string(), "duplicate child id `db`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// A child id is the empty string (OTP's `missing_id`).
    EmptyId,
    /// Two children share an id (`duplicate_child_name`).
    DuplicateId(String),
    /// A permanent child is marked significant (`bad_combination`).
    SignificantPermanent(String),
    /// A significant child under a supervisor whose auto-shutdown is `Never` (`bad_combination`).
    SignificantWithoutAutoShutdown(String),
    /// The restart period is zero (`invalid_period`).
    ZeroPeriod,
    /// A backoff policy cannot be used (its minimum is above its maximum, its jitter is invalid,
    /// or its `max_retries` is 0).
    InvalidBackoff(String),
    /// A dynamic supervisor's `max_children` is zero: it could never start a child.
    ZeroMaxChildren,
    /// A handle's buffer capacity is zero: no message could wait for a restart.
    ZeroBufferCapacity,
    /// A dynamic supervisor's child template is marked significant: dynamic supervisors have no
    /// auto-shutdown (OTP's `bad_combination` for simple_one_for_one; Elixir accepts only `:never`).
    SignificantDynamic,
    /// A partition supervisor with zero partitions: no child could ever be routed anywhere.
    ZeroPartitions,
    /// A partition supervisor with more than
    /// [`MAX_PARTITIONS`](crate::partition::MAX_PARTITIONS) partitions.
    TooManyPartitions(usize),
    /// A child id or a supervisor name contains `/`, which separates the segments of a path.
    SlashInName(String),
    /// An app's drain delay is not shorter than its shutdown deadline, which covers it: the
    /// teardown would begin with no time left.
    DrainNotShorterThanDeadline {
        /// The drain delay.
        drain: Duration,
        /// The shutdown deadline.
        deadline: Duration,
    },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::EmptyId => f.write_str("a child spec has an empty id"),
            SpecError::DuplicateId(id) => write!(f, "duplicate child id `{id}`"),
            SpecError::SignificantPermanent(id) => {
                write!(f, "child `{id}` is significant but permanent; only transient and temporary children can be significant")
            }
            SpecError::SignificantWithoutAutoShutdown(id) => {
                write!(
                    f,
                    "child `{id}` is significant but the supervisor's auto_shutdown is Never"
                )
            }
            SpecError::ZeroPeriod => f.write_str("the restart period must be greater than zero"),
            SpecError::InvalidBackoff(why) => write!(f, "invalid restart backoff: {why}"),
            SpecError::ZeroMaxChildren => f.write_str("max_children must be at least 1"),
            SpecError::ZeroBufferCapacity => {
                f.write_str("a handle's buffer capacity must be at least 1")
            }
            SpecError::SignificantDynamic => f.write_str(
                "a dynamic supervisor's child template cannot be significant: dynamic supervisors have no auto-shutdown",
            ),
            SpecError::ZeroPartitions => f.write_str("a partition supervisor needs at least 1 partition"),
            SpecError::TooManyPartitions(n) => write!(
                f,
                "{n} partitions is more than the {} a partition supervisor takes",
                crate::partition::MAX_PARTITIONS
            ),
            SpecError::SlashInName(name) => write!(
                f,
                "`{name}` contains `/`, which separates the segments of a path"
            ),
            SpecError::DrainNotShorterThanDeadline { drain, deadline } => write!(
                f,
                "the drain delay ({drain:?}) must be shorter than the shutdown deadline ({deadline:?}), which covers it"
            ),
        }
    }
}

impl std::error::Error for SpecError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A duplicate id is found, and it is the first repeated one in list order, whether the list
    /// is short (compared pairwise) or long (a set), and at either end of the list.
    #[test]
    fn a_duplicate_id_is_refused_in_short_and_long_lists() {
        let child = |id: String| ChildSpec::new(id, |_sup: ActorCell| async { Ok(Start::Ignore) });
        for n in [1, 2, FEW_CHILDREN - 1, FEW_CHILDREN, FEW_CHILDREN + 1, 40] {
            let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            let list: Vec<ChildSpec> = ids.iter().cloned().map(child).collect();
            assert_eq!(check_child_specs(&list, AutoShutdown::Never), Ok(()), "{n}");
            for (dup_of, at) in [(0, n), (n - 1, n), (0, 1)] {
                let mut list: Vec<ChildSpec> = ids.iter().cloned().map(child).collect();
                let at = at.min(list.len());
                list.insert(at, child(ids[dup_of].clone()));
                // A second duplicate after it: the first one in list order is reported.
                list.push(child(ids[n - 1].clone()));
                assert_eq!(
                    check_child_specs(&list, AutoShutdown::Never),
                    Err(SpecError::DuplicateId(ids[dup_of].clone())),
                    "{n} children, a copy of {dup_of} at {at}"
                );
            }
        }
    }

    /// Every policy comes back as it was set, the extreme graces included, and an unset one
    /// follows the kind.
    #[test]
    fn a_packed_shutdown_policy_reads_back_as_set() {
        let start = |_sup: ActorCell| async { Ok(Start::Ignore) };
        for policy in [
            Shutdown::BrutalKill,
            Shutdown::Infinity,
            Shutdown::Timeout(Duration::ZERO),
            Shutdown::Timeout(Duration::MAX),
            Shutdown::Timeout(Duration::new(5, 999_999_999)),
            Shutdown::Drain(Duration::ZERO),
            Shutdown::Drain(Duration::MAX),
            Shutdown::Drain(Duration::from_millis(1500)),
        ] {
            let spec = ChildSpec::new("c", start).shutdown(policy);
            assert_eq!(spec.get_shutdown(), policy);
            let spec = spec.kind(ChildKind::Supervisor);
            assert_eq!(
                spec.get_shutdown(),
                policy,
                "set, it does not follow the kind"
            );
        }
        let spec = ChildSpec::new("c", start);
        assert_eq!(
            spec.get_shutdown(),
            Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN)
        );
        let spec = spec.kind(ChildKind::Supervisor);
        assert_eq!(spec.get_shutdown(), Shutdown::Infinity);
    }
}
