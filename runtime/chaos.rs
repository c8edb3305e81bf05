//! The chaos monkey (feature `chaos`): faults injected at random into a running tree, on purpose.
//!
//! "The only way a system handles hard crashes is if they happen all the time." A [`Monkey`]
//! reads the live tree from the registry every supervisor publishes itself in (the one
//! [`introspect`] reads): it never asks a supervisor anything and never
//! messages one to choose a target. At each step it picks one running child whose path matches
//! its targets and none of its protected paths, and acts on that child's actor directly, the way a
//! real fault would; the child's supervisor then sees an exit it did not ask for and applies its
//! rules.
//!
//! ```
//! use std::time::Duration;
//! use canopy::chaos::{Mode, Monkey, Outcome};
//! use canopy::{ChildSpec, Supervisor, SupervisorSpec};
//! # #[derive(Clone)] struct W;
//! # impl canopy::ractor::Actor for W {
//! #     type Msg = (); type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: ()) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
//! # }
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sup = Supervisor::start(
//!     SupervisorSpec::default()
//!         .name("chaos-doc")
//!         .restart_intensity(3, Duration::from_secs(5))
//!         .child(ChildSpec::actor("db", W, ()))
//!         .child(ChildSpec::actor("web", W, ())),
//! )
//! .await?;
//! let mut monkey = Monkey::builder()
//!     .seed(7)
//!     .target("/chaos-doc/*")
//!     .protect("/chaos-doc/db")
//!     .mode(Mode::Kill)
//!     .respect_intensity(true)
//!     .build()?;
//! let action = monkey.step();                   // one step now; `spawn` runs them on a timer
//! assert_eq!(action.path.as_deref(), Some("/chaos-doc/web"));
//! assert_eq!(action.outcome, Outcome::Done);
//! sup.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Modes, and how each reaches the target
//!
//! | mode | a plain ractor actor (and a supervisor) | a `#[canopy::service]` |
//! |---|---|---|
//! | [`Mode::Kill`] | ractor's `kill()`: the actor's task is aborted at its next await, `post_stop` does not run; exit reason `killed` | the same |
//! | [`Mode::Stop`] | ractor's `stop()` with the reason `error:canopy::chaos stop`: handled between two messages, ahead of the mailbox; `post_stop` runs; the supervisor reads an abnormal exit ([`ExitReason::Error`]), so every restart type but `temporary` restarts. A supervisor stops its children in order first | the same; the `#[on_stop]` hook runs, and is given `Shutdown`: ractor does not hand a stop's reason to `post_stop`, so only the supervisor sees the chaos reason |
//! | [`Mode::Panic`] | not deliverable: ractor gives no way to run code inside another actor's handler, so such a target is never chosen for this mode | a message queued behind the ones already in its mailbox; handling it panics inside the service's handler, so the service fails exactly as a panicking method does (the hook sees the panic's text) |
//! | [`Mode::Error`] | not deliverable (as above) | the same message; its handler returns an error: the service fails as a method returning `Err` does |
//! | [`Mode::Stall`] | not deliverable (as above) | the same message; its handler waits the duration on tokio's timer (the worker thread runs other tasks), so the service handles nothing else meanwhile and its mailbox fills |
//!
//! A mode a target cannot take is never reported for it: the monkey chooses only among the modes
//! its target can take, and a target that can take none of the configured modes is not a target.
//! A fault queued in a service's mailbox is reported as [`Outcome::Queued`]: it happens when the
//! service reaches it, and not at all if the service stops first (then its own
//! `fault delivered` event never appears). Injected faults count as handled messages in the
//! service's [`stats`](crate::service::stats).
//!
//! ## What it never touches
//!
//! Top-level supervisors (they have no supervisor to restart them), supervisors unless
//! [`supervisors(true)`](MonkeyBuilder::supervisors), children that are not running at the instant
//! of the step (starting, restarting, stopping), and every path a protected pattern matches.
//!
//! ## Patterns
//!
//! A pattern is a canopy path in which a segment may be `*` (any one segment), contain `*` (any
//! characters within the segment: `/app/worker-*`), or be `**` (any number of segments, none
//! included). `/app/db/**` matches `/app/db` and everything below it; `/app/*` matches the children
//! of `/app` only. Patterns are checked by [`MonkeyBuilder::build`].
//!
//! ## The intensity limit
//!
//! With [`respect_intensity(true)`](MonkeyBuilder::respect_intensity) (Ranch's stampede practice
//! turned around: rather than raising the tree's intensity, the monkey stays under it), a child is
//! a target only if acting on it cannot make its supervisor give up. For each supervisor, the
//! monkey takes the restarts the supervisor has counted in its current window (crashes from every
//! cause, the monkey's included), adds its own actions of the supervisor's period that the
//! supervisor has not counted yet (the child's restart count has not moved since), and acts only
//! while that sum plus one is within the supervisor's intensity. An action whose restart never
//! comes (a `temporary` child) stays counted for the whole period: the limit errs on the side of
//! acting less often than allowed, never more. Stalls cause no restart and are not counted.
//! The limit cannot see a crash that has happened and not yet reached the supervisor: a child
//! that fails on its own at the same instant can still take a supervisor at its limit over it.
//!
//! ## Reports
//!
//! Every step emits one `tracing` event under the target `canopy::chaos` (the step number, the
//! target's path, the mode, the outcome) and adds to process-wide counters, read with
//! [`counters`] and, with the `metrics` feature, exported by
//! [`TreeMetrics`](crate::metrics::TreeMetrics) (so by the observer's `/metrics`) as
//! `canopy_chaos_actions_total{mode,outcome}`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, ActorStatus};
use tokio::time::Instant;

use crate::exit::ExitReason;
use crate::introspect::{self, Node};
use crate::spec::ChildKind;

const T: &str = "canopy::chaos";

/// The reason a [`Mode::Stop`] stops its target with, as its supervisor reads it.
///
/// ```
/// assert_eq!(canopy::chaos::STOP_REASON, "canopy::chaos stop");
/// ```
pub const STOP_REASON: &str = "canopy::chaos stop";

/// The panic message of a [`Mode::Panic`] in a service: its supervisor reads the exit
/// `ExitReason::Error(PANIC_MESSAGE)`.
///
/// ```
/// assert_eq!(canopy::chaos::PANIC_MESSAGE, "canopy::chaos injected panic");
/// ```
pub const PANIC_MESSAGE: &str = "canopy::chaos injected panic";

/// The error of a [`Mode::Error`] in a service: its supervisor reads the exit
/// `ExitReason::Error(ERROR_MESSAGE)`.
///
/// ```
/// assert_eq!(canopy::chaos::ERROR_MESSAGE, "canopy::chaos injected error");
/// ```
pub const ERROR_MESSAGE: &str = "canopy::chaos injected error";

// -------------------------------------------------------------------------------------------------
// The generator

/// SplitMix64: a few lines, seedable, and the same sequence for a seed in every version of canopy
/// (a crate's generator may change its stream between releases, which would break replays).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// -------------------------------------------------------------------------------------------------
// Configuration

/// What the monkey does to its target; see the [module docs](self) for how each is delivered.
///
/// ```
/// use std::time::Duration;
/// let modes = [canopy::chaos::Mode::Kill, canopy::chaos::Mode::Stall(Duration::from_millis(200))];
/// # let _ = modes;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The target's handler panics (services only).
    Panic,
    /// The target's handler returns an error (services only).
    Error,
    /// The target is stopped with [`STOP_REASON`], an abnormal reason.
    Stop,
    /// The target is killed (ractor's `kill`).
    Kill,
    /// The target's handler waits this long on tokio's timer (services only).
    Stall(Duration),
}

impl Mode {
    /// The mode's name in events and metrics: `panic`, `error`, `stop`, `kill`, `stall`.
    ///
    /// ```
    /// assert_eq!(canopy::chaos::Mode::Kill.name(), "kill");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Panic => "panic",
            Mode::Error => "error",
            Mode::Stop => "stop",
            Mode::Kill => "kill",
            Mode::Stall(_) => "stall",
        }
    }

    /// Whether it needs a `#[canopy::service]` target.
    fn service_only(&self) -> bool {
        matches!(self, Mode::Panic | Mode::Error | Mode::Stall(_))
    }

    fn index(&self) -> usize {
        match self {
            Mode::Panic => 0,
            Mode::Error => 1,
            Mode::Stop => 2,
            Mode::Kill => 3,
            Mode::Stall(_) => 4,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Stall(d) => write!(f, "stall({d:?})"),
            other => f.write_str(other.name()),
        }
    }
}

/// A configuration [`MonkeyBuilder::build`] refuses.
///
/// ```
/// use std::time::Duration;
/// use canopy::chaos::{ChaosError, Monkey};
/// let err = Monkey::builder()
///     .interval(Duration::from_secs(2), Duration::from_secs(1))
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, ChaosError::IntervalReversed { .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChaosError {
    /// The interval's minimum is above its maximum.
    IntervalReversed {
        /// The minimum given.
        min: Duration,
        /// The maximum given.
        max: Duration,
    },
    /// An interval of zero at both ends: the monkey would never wait between steps.
    ZeroInterval,
    /// No mode to act with.
    NoModes,
    /// A stall of zero: it would do nothing.
    ZeroStall,
    /// A probability that is not a number in (0, 1]: 0 would never act.
    Probability(f64),
    /// A limit of zero actions: the monkey would never act.
    ZeroActions,
    /// A target or protected pattern that is not a canopy path pattern.
    Pattern {
        /// The pattern given.
        pattern: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl fmt::Display for ChaosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IntervalReversed { min, max } => write!(
                f,
                "the chaos interval's minimum ({min:?}) is above its maximum ({max:?})"
            ),
            Self::ZeroInterval => f.write_str("a chaos interval of zero would never wait"),
            Self::NoModes => f.write_str("the chaos monkey needs at least one mode"),
            Self::ZeroStall => f.write_str("a stall of zero does nothing"),
            Self::Probability(p) => {
                write!(
                    f,
                    "a chaos probability must be above 0 and at most 1, not {p}"
                )
            }
            Self::ZeroActions => f.write_str("a limit of zero actions would never act"),
            Self::Pattern { pattern, why } => write!(f, "bad path pattern `{pattern}`: {why}"),
        }
    }
}

impl std::error::Error for ChaosError {}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `**`: any number of segments.
    Any,
    /// A segment, its `*` matching any characters within it.
    Glob(Glob),
}

/// One segment's glob, split at its `*`s once, when the pattern is parsed: a monkey matches every
/// pattern against every child at every step, so the matching itself allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    /// The text between the `*`s: one piece for a segment without `*`.
    pieces: Vec<String>,
}

impl Glob {
    fn new(seg: &str) -> Glob {
        Glob {
            pieces: seg.split('*').map(str::to_string).collect(),
        }
    }

    /// `*` matches any characters (none included) within one segment.
    fn matches(&self, text: &str) -> bool {
        let Some((first, after)) = self.pieces.split_first() else {
            return text.is_empty();
        };
        let Some(mut rest) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = after.split_last() else {
            return rest.is_empty();
        };
        for piece in middle {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last.as_str())
    }
}

/// A parsed path pattern; see the [module docs](self#patterns).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segs: Vec<Seg>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, ChaosError> {
        let bad = |why| ChaosError::Pattern {
            pattern: text.to_string(),
            why,
        };
        let Some(rest) = text.strip_prefix('/') else {
            return Err(bad("a path pattern starts with `/`"));
        };
        if rest.is_empty() {
            return Err(bad("`/` alone names nothing; `/**` matches everything"));
        }
        let mut segs = Vec::new();
        for seg in rest.split('/') {
            if seg.is_empty() {
                return Err(bad("empty segment (`//` or a trailing `/`)"));
            }
            if seg == "**" {
                segs.push(Seg::Any);
            } else if seg.contains("**") {
                return Err(bad("`**` must be a whole segment"));
            } else {
                segs.push(Seg::Glob(Glob::new(seg)));
            }
        }
        Ok(Pattern { segs })
    }

    #[cfg(test)]
    fn matches(&self, path: &str) -> bool {
        path_parts(path).is_some_and(|parts| self.matches_parts(&parts))
    }

    /// Whether the path split by [`path_parts`] matches.
    fn matches_parts(&self, parts: &[&str]) -> bool {
        match_segs(&self.segs, parts)
    }
}

/// The segments of an absolute path, split once for every pattern it is matched against; `None`
/// if it does not start with `/`.
fn path_parts(path: &str) -> Option<Vec<&str>> {
    Some(path.strip_prefix('/')?.split('/').collect())
}

fn match_segs(segs: &[Seg], parts: &[&str]) -> bool {
    match segs.split_first() {
        None => parts.is_empty(),
        Some((Seg::Any, rest)) => (0..=parts.len()).any(|skip| match_segs(rest, &parts[skip..])),
        Some((Seg::Glob(g), rest)) => match parts.split_first() {
            Some((part, more)) => g.matches(part) && match_segs(rest, more),
            None => false,
        },
    }
}

/// Builds a [`Monkey`]; every setting is checked by [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use canopy::chaos::{Mode, Monkey};
/// let monkey = Monkey::builder()
///     .seed(42)
///     .target("/app/workers/**")
///     .protect("/app/workers/ledger")
///     .interval(Duration::from_millis(100), Duration::from_millis(500))
///     .modes([Mode::Kill, Mode::Stop])
///     .respect_intensity(true)
///     .build()
///     .unwrap();
/// assert_eq!(monkey.seed(), 42);
/// ```
#[derive(Debug, Clone)]
pub struct MonkeyBuilder {
    seed: Option<u64>,
    targets: Vec<String>,
    protected: Vec<String>,
    interval: (Duration, Duration),
    modes: Vec<Mode>,
    /// `modes` was given an empty list: refused, rather than read as "the default".
    no_modes: bool,
    supervisors: bool,
    dry_run: bool,
    respect_intensity: bool,
    probability: f64,
    max_actions: Option<u64>,
}

impl Default for MonkeyBuilder {
    fn default() -> Self {
        MonkeyBuilder {
            seed: None,
            targets: Vec::new(),
            protected: Vec::new(),
            interval: (Duration::from_secs(1), Duration::from_secs(5)),
            modes: Vec::new(),
            no_modes: false,
            supervisors: false,
            dry_run: false,
            respect_intensity: false,
            probability: 1.0,
            max_actions: None,
        }
    }
}

impl MonkeyBuilder {
    /// The generator's seed: the same seed on the same tree makes the same choices. Without one,
    /// a seed is taken from the clock and logged when the monkey is built, so a run can be
    /// replayed.
    ///
    /// ```
    /// let monkey = canopy::chaos::Monkey::builder().seed(1).build().unwrap();
    /// assert_eq!(monkey.seed(), 1);
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Adds a target pattern. Without any, every path is a target (`/**`).
    ///
    /// ```
    /// let _ = canopy::chaos::Monkey::builder().target("/app/web/*").target("/app/jobs/**");
    /// ```
    pub fn target(mut self, pattern: &str) -> Self {
        self.targets.push(pattern.to_string());
        self
    }

    /// Adds a protected pattern: a path it matches is never a target.
    ///
    /// ```
    /// let _ = canopy::chaos::Monkey::builder().protect("/app/db/**");
    /// ```
    pub fn protect(mut self, pattern: &str) -> Self {
        self.protected.push(pattern.to_string());
        self
    }

    /// The wait between two steps of a running monkey, drawn uniformly in `min..=max` (1 s to 5 s
    /// by default). `min` may equal `max`; both zero is refused. `Duration::MAX` waits for ever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = canopy::chaos::Monkey::builder().interval(Duration::from_millis(50), Duration::from_millis(50));
    /// ```
    pub fn interval(mut self, min: Duration, max: Duration) -> Self {
        self.interval = (min, max);
        self
    }

    /// Adds a mode. Without any, the monkey kills ([`Mode::Kill`]).
    ///
    /// ```
    /// let _ = canopy::chaos::Monkey::builder().mode(canopy::chaos::Mode::Stop);
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.modes.push(mode);
        self.no_modes = false;
        self
    }

    /// Sets the modes (replacing those added before); each step picks one the target can take.
    /// An empty list is refused.
    ///
    /// ```
    /// use canopy::chaos::Mode;
    /// let _ = canopy::chaos::Monkey::builder().modes([Mode::Kill, Mode::Panic]);
    /// ```
    pub fn modes(mut self, modes: impl IntoIterator<Item = Mode>) -> Self {
        self.modes = modes.into_iter().collect();
        self.no_modes = self.modes.is_empty();
        self
    }

    /// Whether supervisors below the top level are targets too (false by default). Acting on a
    /// supervisor takes its whole subtree down with it.
    ///
    /// ```
    /// let _ = canopy::chaos::Monkey::builder().supervisors(true);
    /// ```
    pub fn supervisors(mut self, yes: bool) -> Self {
        self.supervisors = yes;
        self
    }

    /// Dry run: every step chooses and reports as usual, and acts on nothing.
    ///
    /// ```
    /// let _ = canopy::chaos::Monkey::builder().dry_run(true);
    /// ```
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Keeps every supervisor within its restart intensity; see [the module docs](self#the-intensity-limit).
    ///
    /// ```
    /// let _ = canopy::chaos::Monkey::builder().respect_intensity(true);
    /// ```
    pub fn respect_intensity(mut self, yes: bool) -> Self {
        self.respect_intensity = yes;
        self
    }

    /// Each step acts with probability `p` (in (0, 1], 1 by default) and otherwise skips.
    ///
    /// ```
    /// let _ = canopy::chaos::Monkey::builder().probability(0.5);
    /// ```
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = p;
        self
    }

    /// A running monkey stops after this many actions (dry-run ones included); unbounded by default.
    ///
    /// ```
    /// let _ = canopy::chaos::Monkey::builder().max_actions(100);
    /// ```
    pub fn max_actions(mut self, n: u64) -> Self {
        self.max_actions = Some(n);
        self
    }

    /// Checks every setting and builds the monkey.
    ///
    /// ```
    /// use canopy::chaos::{ChaosError, Monkey};
    /// assert!(matches!(
    ///     Monkey::builder().target("app/*").build(),
    ///     Err(ChaosError::Pattern { .. })
    /// ));
    /// assert!(matches!(Monkey::builder().modes([]).build(), Err(ChaosError::NoModes)));
    /// ```
    pub fn build(self) -> Result<Monkey, ChaosError> {
        let (min, max) = self.interval;
        if min > max {
            return Err(ChaosError::IntervalReversed { min, max });
        }
        if max.is_zero() {
            return Err(ChaosError::ZeroInterval);
        }
        if self.no_modes {
            return Err(ChaosError::NoModes);
        }
        let mut modes = self.modes;
        if modes.is_empty() {
            modes.push(Mode::Kill);
        }
        if modes.contains(&Mode::Stall(Duration::ZERO)) {
            return Err(ChaosError::ZeroStall);
        }
        // One entry per mode: a mode given twice is not twice as likely.
        let mut seen = Vec::new();
        modes.retain(|m| {
            let fresh = !seen.contains(&m.index());
            seen.push(m.index());
            fresh
        });
        if !(self.probability > 0.0 && self.probability <= 1.0) {
            return Err(ChaosError::Probability(self.probability));
        }
        if self.max_actions == Some(0) {
            return Err(ChaosError::ZeroActions);
        }
        let targets = if self.targets.is_empty() {
            vec![Pattern {
                segs: vec![Seg::Any],
            }]
        } else {
            self.targets
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<_, _>>()?
        };
        let protected = self
            .protected
            .iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<_, _>>()?;
        let seed = self.seed.unwrap_or_else(|| {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            tracing::info!(target: T, seed, "chaos monkey seeded from the clock");
            seed
        });
        Ok(Monkey {
            seed,
            rng: Rng::new(seed),
            step: 0,
            actions: 0,
            targets,
            protected,
            interval: (min, max),
            modes,
            supervisors: self.supervisors,
            dry_run: self.dry_run,
            respect_intensity: self.respect_intensity,
            probability: self.probability,
            max_actions: self.max_actions,
            own: HashMap::new(),
        })
    }
}

// -------------------------------------------------------------------------------------------------
// The monkey

/// Why a step did nothing.
///
/// ```
/// assert_eq!(canopy::chaos::Skip::NoTarget.name(), "no_target");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The step's draw fell outside the [probability](MonkeyBuilder::probability).
    Probability,
    /// No running child matched the targets, the protected paths and the modes.
    NoTarget,
    /// Every candidate's supervisor was at the [intensity limit](self#the-intensity-limit).
    Intensity,
    /// The chosen target stopped between the choice and the action.
    Gone,
}

impl Skip {
    /// Its name in events and metrics.
    ///
    /// ```
    /// assert_eq!(canopy::chaos::Skip::Intensity.name(), "intensity");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Skip::Probability => "probability",
            Skip::NoTarget => "no_target",
            Skip::Intensity => "intensity",
            Skip::Gone => "gone",
        }
    }

    fn index(&self) -> usize {
        match self {
            Skip::Probability => 0,
            Skip::NoTarget => 1,
            Skip::Intensity => 2,
            Skip::Gone => 3,
        }
    }
}

/// What a step did.
///
/// ```
/// assert_eq!(canopy::chaos::Outcome::DryRun.name(), "dry_run");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A kill or a stop was sent to the target.
    Done,
    /// A fault message was put in the target service's mailbox: it happens when the service
    /// reaches it (see the [module docs](self#modes-and-how-each-reaches-the-target)).
    Queued,
    /// Dry run: the target and mode were chosen, nothing was done.
    DryRun,
    /// Nothing was chosen or done.
    Skipped(Skip),
}

impl Outcome {
    /// Its name in events and metrics: `done`, `queued`, `dry_run`, or `skipped`.
    ///
    /// ```
    /// use canopy::chaos::{Outcome, Skip};
    /// assert_eq!(Outcome::Skipped(Skip::Gone).name(), "skipped");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Queued => "queued",
            Outcome::DryRun => "dry_run",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// True when the step chose a target and a mode (acted, queued, or would have in a dry run).
    ///
    /// ```
    /// assert!(canopy::chaos::Outcome::DryRun.chose());
    /// ```
    pub fn chose(&self) -> bool {
        !matches!(self, Outcome::Skipped(_))
    }
}

/// One step of a [`Monkey`]: the report of what it did (the same as its `tracing` event).
///
/// ```
/// # #[tokio::main] async fn main() {
/// let mut monkey = canopy::chaos::Monkey::builder().seed(3).target("/nothing-here/*").build().unwrap();
/// let action = monkey.step();
/// assert_eq!(action.step, 1);
/// assert_eq!((action.path, action.mode), (None, None));
/// assert_eq!(action.outcome, canopy::chaos::Outcome::Skipped(canopy::chaos::Skip::NoTarget));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The step's number, from 1: with the seed, it locates the step in a replay.
    pub step: u64,
    /// The target's path, when one was chosen.
    pub path: Option<String>,
    /// The mode, when a target was chosen.
    pub mode: Option<Mode>,
    /// What happened.
    pub outcome: Outcome,
}

/// A child the monkey may act on.
struct Candidate {
    path: String,
    id: String,
    /// Its restarts when it was seen, to tell when its supervisor has counted the monkey's action.
    restarts: u32,
    cell: ActorCell,
    parent: Arc<Node>,
    service: bool,
}

/// One of the monkey's own actions, kept for the intensity limit.
#[derive(Debug)]
struct Own {
    at: Instant,
    child: String,
    restarts: u32,
}

/// The chaos monkey: built by [`Monkey::builder`], run by [`spawn`](Self::spawn) (with an app) or
/// [`run_until`](Self::run_until), or stepped by hand with [`step`](Self::step). See the
/// [module docs](self).
///
/// ```
/// let monkey = canopy::chaos::Monkey::builder().dry_run(true).seed(5).build().unwrap();
/// assert_eq!((monkey.steps(), monkey.actions()), (0, 0));
/// ```
#[derive(Debug)]
pub struct Monkey {
    seed: u64,
    rng: Rng,
    step: u64,
    actions: u64,
    targets: Vec<Pattern>,
    protected: Vec<Pattern>,
    interval: (Duration, Duration),
    modes: Vec<Mode>,
    supervisors: bool,
    dry_run: bool,
    respect_intensity: bool,
    probability: f64,
    max_actions: Option<u64>,
    /// The monkey's own actions on each supervisor's children, by the supervisor's path, within
    /// that supervisor's period (kept only with the intensity limit).
    own: HashMap<String, VecDeque<Own>>,
}

impl Monkey {
    /// A builder with the defaults: every path a target, kills, one step every 1 to 5 s.
    ///
    /// ```
    /// let monkey = canopy::chaos::Monkey::builder().build().unwrap();
    /// # let _ = monkey;
    /// ```
    pub fn builder() -> MonkeyBuilder {
        MonkeyBuilder::default()
    }

    /// The seed (given, or taken from the clock).
    ///
    /// ```
    /// assert_eq!(canopy::chaos::Monkey::builder().seed(9).build().unwrap().seed(), 9);
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Steps taken so far.
    ///
    /// ```
    /// assert_eq!(canopy::chaos::Monkey::builder().build().unwrap().steps(), 0);
    /// ```
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Steps that chose a target so far (done, queued or dry-run).
    ///
    /// ```
    /// assert_eq!(canopy::chaos::Monkey::builder().build().unwrap().actions(), 0);
    /// ```
    pub fn actions(&self) -> u64 {
        self.actions
    }

    /// Takes one step now: chooses a target and a mode and acts (or reports why not). Draws the
    /// same number of values from the generator whatever happens, so that a replay with the same
    /// seed stays in step with the original.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let mut monkey = canopy::chaos::Monkey::builder().target("/nobody/**").build().unwrap();
    /// assert!(!monkey.step().outcome.chose());
    /// # }
    /// ```
    pub fn step(&mut self) -> Action {
        self.step += 1;
        let act_draw = self.rng.unit();
        let target_draw = self.rng.next_u64();
        let mode_draw = self.rng.next_u64();
        let action = self.choose_and_act(act_draw, target_draw, mode_draw);
        count(&action);
        if action.outcome.chose() {
            self.actions += 1;
        }
        let mode = action.mode.map(|m| m.to_string());
        match action.outcome {
            Outcome::Skipped(why) => tracing::info!(
                target: T,
                seed = self.seed,
                step = action.step,
                skipped = why.name(),
                "chaos step skipped"
            ),
            outcome => tracing::info!(
                target: T,
                seed = self.seed,
                step = action.step,
                path = action.path.as_deref().unwrap_or(""),
                mode = mode.as_deref().unwrap_or(""),
                outcome = outcome.name(),
                "chaos step"
            ),
        }
        action
    }

    fn choose_and_act(&mut self, act_draw: f64, target_draw: u64, mode_draw: u64) -> Action {
        let step = self.step;
        let skipped = |why| Action {
            step,
            path: None,
            mode: None,
            outcome: Outcome::Skipped(why),
        };
        if act_draw >= self.probability {
            return skipped(Skip::Probability);
        }
        let mut candidates = self.candidates();
        if candidates.is_empty() {
            return skipped(Skip::NoTarget);
        }
        let now = Instant::now();
        if self.respect_intensity {
            candidates.retain(|c| self.within_intensity(&c.parent, now));
            if candidates.is_empty() {
                return skipped(Skip::Intensity);
            }
        }
        let target = &candidates[pick(target_draw, candidates.len())];
        let modes: Vec<Mode> = self
            .modes
            .iter()
            .copied()
            .filter(|m| target.service || !m.service_only())
            .collect();
        let mode = modes[pick(mode_draw, modes.len())];
        let outcome = if self.dry_run {
            Outcome::DryRun
        } else {
            deliver(&target.cell, mode)
        };
        if self.respect_intensity && outcome.chose() && !matches!(mode, Mode::Stall(_)) {
            self.own
                .entry(target.parent.path.clone())
                .or_default()
                .push_back(Own {
                    at: now,
                    child: target.id.clone(),
                    restarts: target.restarts,
                });
        }
        Action {
            step,
            path: Some(target.path.clone()),
            mode: Some(mode),
            outcome,
        }
    }

    /// Every running child the patterns and modes allow, sorted by path (so that the choice
    /// depends on the tree, not on the registry's hash order or on start order).
    fn candidates(&self) -> Vec<Candidate> {
        let mut out = Vec::new();
        for root in introspect::top_level() {
            self.walk(&root, &mut out);
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    fn walk(&self, node: &Arc<Node>, out: &mut Vec<Candidate>) {
        for child in node.children.which_children() {
            let Some(cell) = child.status.pid() else {
                continue;
            };
            // ractor marks an actor running only once its task is next polled; its supervisor
            // counting it as started is what matters here.
            if child.starting || cell.get_status() >= ActorStatus::Stopping {
                continue;
            }
            let path = format!("{}/{}", node.path, child.id);
            if child.kind == ChildKind::Supervisor {
                if let Some(below) = introspect::node(&cell.get_id()) {
                    self.walk(&below, out);
                }
                if !self.supervisors {
                    continue;
                }
            }
            let Some(parts) = path_parts(&path) else {
                continue;
            };
            if !self.targets.iter().any(|p| p.matches_parts(&parts))
                || self.protected.iter().any(|p| p.matches_parts(&parts))
            {
                continue;
            }
            let service = crate::service::takes_faults(cell);
            if !service && self.modes.iter().all(Mode::service_only) {
                continue;
            }
            out.push(Candidate {
                path,
                id: child.id.clone(),
                restarts: child.restarts,
                cell: cell.clone(),
                parent: node.clone(),
                service,
            });
        }
    }

    /// Whether one more restart of a child of `parent` keeps it within its intensity: the
    /// restarts it has counted, plus the monkey's actions it has not counted yet (the child's
    /// restart count has not moved since), plus this one.
    fn within_intensity(&mut self, parent: &Node, now: Instant) -> bool {
        let budget = parent.children.budget(now.into_std());
        let own = self.own.entry(parent.path.clone()).or_default();
        while own
            .front()
            .is_some_and(|o| now.saturating_duration_since(o.at) >= budget.period)
        {
            own.pop_front();
        }
        let uncounted = own
            .iter()
            .filter(|o| {
                parent
                    .children
                    .child(&o.child)
                    .is_none_or(|c| c.restarts <= o.restarts)
            })
            .count();
        budget.restarts_in_window + uncounted < budget.intensity as usize
    }

    /// The wait before the next step, drawn in the interval.
    fn next_wait(&mut self) -> Duration {
        let (min, max) = self.interval;
        let span = (max - min).as_nanos();
        let offset = if span == 0 {
            0
        } else if let Ok(span) = u64::try_from(span) {
            pick(
                self.rng.next_u64(),
                span as usize + usize::from(span < u64::MAX),
            ) as u128
        } else {
            ((u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64())) % span
        };
        let offset = Duration::new(
            (offset / 1_000_000_000) as u64,
            (offset % 1_000_000_000) as u32,
        );
        min.saturating_add(offset)
    }

    /// Runs steps, each after a wait drawn in the interval, until `stop` completes or the
    /// [action limit](MonkeyBuilder::max_actions) is reached; logs a summary when it ends.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use std::time::Duration;
    /// let mut monkey = canopy::chaos::Monkey::builder()
    ///     .target("/nobody/**")
    ///     .interval(Duration::from_millis(1), Duration::from_millis(2))
    ///     .build()
    ///     .unwrap();
    /// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    /// tx.send(()).unwrap();
    /// monkey.run_until(async { let _ = rx.await; }).await;
    /// # }
    /// ```
    pub async fn run_until(&mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if self.max_actions.is_some_and(|max| self.actions >= max) {
                break;
            }
            let wait = self.next_wait();
            tokio::select! {
                biased;
                _ = &mut stop => break,
                _ = tokio::time::sleep_until(crate::deadline_in(wait)) => {}
            }
            self.step();
        }
        tracing::info!(
            target: T,
            seed = self.seed,
            steps = self.step,
            actions = self.actions,
            "chaos monkey stopped"
        );
    }

    /// Runs the monkey as a task of `app` ([`AppHandle::spawn`](crate::app::AppHandle::spawn)):
    /// it stops when the app's stop begins, before the drain and the teardown, and the app reaps
    /// it.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use canopy::app::{App, ExitStatus};
    /// let app = App::new(canopy::SupervisorSpec::default()).handle_signals(false);
    /// canopy::chaos::Monkey::builder().dry_run(true).build().unwrap().spawn(&app.handle());
    /// app.handle().shutdown();
    /// assert_eq!(app.run().await, Ok(ExitStatus::CLEAN));
    /// # }
    /// ```
    pub fn spawn(mut self, app: &crate::app::AppHandle) {
        let token = app.shutdown_token();
        app.spawn(async move {
            self.run_until(async move { token.triggered().await }).await;
        });
    }
}

/// Index below `n` (> 0) from a uniform draw, by multiply-and-shift.
fn pick(draw: u64, n: usize) -> usize {
    ((u128::from(draw) * n as u128) >> 64) as usize
}

/// Acts on `cell`; see the table in the [module docs](self#modes-and-how-each-reaches-the-target).
fn deliver(cell: &ActorCell, mode: Mode) -> Outcome {
    if cell.get_status() >= ActorStatus::Stopping {
        return Outcome::Skipped(Skip::Gone);
    }
    let fault = match mode {
        Mode::Kill => {
            cell.kill();
            return Outcome::Done;
        }
        Mode::Stop => {
            cell.stop(Some(ExitReason::Error(STOP_REASON.into()).encode()));
            return Outcome::Done;
        }
        Mode::Panic => crate::service::__private::Fault::Panic,
        Mode::Error => crate::service::__private::Fault::Error,
        Mode::Stall(d) => crate::service::__private::Fault::Stall(d),
    };
    if crate::service::inject_fault(cell, fault) {
        Outcome::Queued
    } else {
        Outcome::Skipped(Skip::Gone)
    }
}

// -------------------------------------------------------------------------------------------------
// Counters

const OUTCOMES: [&str; 3] = ["done", "queued", "dry_run"];
const MODES: [&str; 5] = ["panic", "error", "stop", "kill", "stall"];
const SKIPS: [&str; 4] = ["probability", "no_target", "intensity", "gone"];

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ROW: [AtomicU64; 3] = [ZERO; 3];
static ACTIONS: [[AtomicU64; 3]; 5] = [ROW; 5];
static SKIPPED: [AtomicU64; 4] = [ZERO; 4];

fn count(action: &Action) {
    let slot = match (action.outcome, action.mode) {
        (Outcome::Skipped(why), _) => &SKIPPED[why.index()],
        (outcome, Some(mode)) => {
            let o = match outcome {
                Outcome::Done => 0,
                Outcome::Queued => 1,
                _ => 2,
            };
            &ACTIONS[mode.index()][o]
        }
        (_, None) => return,
    };
    slot.fetch_add(1, Ordering::Relaxed);
}

/// The process-wide totals of every monkey's steps (what the metrics export).
///
/// ```
/// let c = canopy::chaos::counters();
/// assert!(c.actions("kill", "done") <= c.total_actions());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    actions: [[u64; 3]; 5],
    skipped: [u64; 4],
}

impl Counters {
    /// Steps of `mode` (`panic`, `error`, `stop`, `kill`, `stall`) with `outcome` (`done`,
    /// `queued`, `dry_run`); 0 for names that are not these.
    ///
    /// ```
    /// let _ = canopy::chaos::counters().actions("stop", "done");
    /// ```
    pub fn actions(&self, mode: &str, outcome: &str) -> u64 {
        let m = MODES.iter().position(|n| *n == mode);
        let o = OUTCOMES.iter().position(|n| *n == outcome);
        match (m, o) {
            (Some(m), Some(o)) => self.actions[m][o],
            _ => 0,
        }
    }

    /// Steps that chose a target, whatever the mode and outcome.
    ///
    /// ```
    /// let _ = canopy::chaos::counters().total_actions();
    /// ```
    pub fn total_actions(&self) -> u64 {
        self.actions.iter().flatten().sum()
    }

    /// Steps skipped for `reason` (`probability`, `no_target`, `intensity`, `gone`).
    ///
    /// ```
    /// let _ = canopy::chaos::counters().skipped("intensity");
    /// ```
    pub fn skipped(&self, reason: &str) -> u64 {
        SKIPS
            .iter()
            .position(|n| *n == reason)
            .map_or(0, |i| self.skipped[i])
    }

    /// Every (mode, outcome, count), in a fixed order.
    #[cfg(feature = "metrics")]
    pub(crate) fn action_series(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        MODES.iter().enumerate().flat_map(move |(m, mode)| {
            OUTCOMES
                .iter()
                .enumerate()
                .map(move |(o, outcome)| (*mode, *outcome, self.actions[m][o]))
        })
    }

    /// Every (reason, count), in a fixed order.
    #[cfg(feature = "metrics")]
    pub(crate) fn skip_series(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SKIPS.iter().zip(self.skipped.iter()).map(|(r, n)| (*r, *n))
    }
}

/// Reads the process-wide counters.
///
/// ```
/// let before = canopy::chaos::counters().total_actions();
/// # let _ = before;
/// ```
pub fn counters() -> Counters {
    let mut c = Counters {
        actions: [[0; 3]; 5],
        skipped: [0; 4],
    };
    for (m, row) in ACTIONS.iter().enumerate() {
        for (o, n) in row.iter().enumerate() {
            c.actions[m][o] = n.load(Ordering::Relaxed);
        }
    }
    for (i, n) in SKIPPED.iter().enumerate() {
        c.skipped[i] = n.load(Ordering::Relaxed);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        assert!(p("/app/*").matches("/app/web"));
        assert!(!p("/app/*").matches("/app/web/listener"));
        assert!(!p("/app/*").matches("/app"));
        assert!(p("/app/**").matches("/app"));
        assert!(p("/app/**").matches("/app/web/listener"));
        assert!(p("/**").matches("/x"));
        assert!(p("/app/worker-*").matches("/app/worker-12"));
        assert!(!p("/app/worker-*").matches("/app/work"));
        assert!(p("/a/*x*y").matches("/a/xxy"));
        assert!(!p("/a/*x*y").matches("/a/yx"));
        assert!(p("/**/db").matches("/app/web/db"));
        assert!(!p("/**/db").matches("/app/web/dbs"));
        assert!(p("/app/**/leaf").matches("/app/leaf"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "app", "/", "//a", "/a/", "/a/b**", "/a//b"] {
            assert!(
                matches!(Pattern::parse(bad), Err(ChaosError::Pattern { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn every_builder_extreme_is_refused_or_works() {
        let b = Monkey::builder;
        assert_eq!(
            b().interval(Duration::ZERO, Duration::ZERO).build().err(),
            Some(ChaosError::ZeroInterval)
        );
        assert!(b().interval(Duration::ZERO, Duration::MAX).build().is_ok());
        assert!(b().interval(Duration::MAX, Duration::MAX).build().is_ok());
        assert_eq!(
            b().mode(Mode::Stall(Duration::ZERO)).build().err(),
            Some(ChaosError::ZeroStall)
        );
        assert!(b().mode(Mode::Stall(Duration::MAX)).build().is_ok());
        for p in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                b().probability(p).build(),
                Err(ChaosError::Probability(_))
            ));
        }
        assert_eq!(
            b().max_actions(0).build().err(),
            Some(ChaosError::ZeroActions)
        );
        assert!(b().max_actions(u64::MAX).build().is_ok());
        assert_eq!(b().modes([]).build().err(), Some(ChaosError::NoModes));
        assert!(b().modes([]).mode(Mode::Kill).build().is_ok());
    }

    #[test]
    fn waits_stay_in_the_interval_even_at_the_extremes() {
        let ms = Duration::from_millis;
        for (min, max) in [
            (ms(5), ms(5)),
            (ms(1), ms(3)),
            (Duration::ZERO, Duration::MAX),
            (Duration::MAX - ms(1), Duration::MAX),
        ] {
            let mut m = Monkey::builder()
                .seed(11)
                .interval(min, max)
                .build()
                .unwrap();
            for _ in 0..200 {
                let w = m.next_wait();
                assert!(min <= w && w <= max, "{w:?} outside {min:?}..={max:?}");
            }
        }
        // Both ends are reached on a small range.
        let ns = Duration::from_nanos;
        let mut m = Monkey::builder()
            .seed(1)
            .interval(ns(1), ns(2))
            .build()
            .unwrap();
        let waits: Vec<Duration> = (0..64).map(|_| m.next_wait()).collect();
        assert!(waits.contains(&ns(1)) && waits.contains(&ns(2)));
    }

    #[test]
    fn the_generator_is_fixed_for_a_seed() {
        // SplitMix64's published first output for seed 0: a change of stream breaks replays.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
