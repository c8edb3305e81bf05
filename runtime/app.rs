//! The process lifecycle: start the tree, wait for a reason to stop, then stop in order and on time.
//!
//! [`App::run`] owns the whole life of a service process:
//!
//! 1. **Start**: the root supervisor starts its tree depth first in spec order. Readiness turns on
//!    when every child is up.
//! 2. **Trigger**: SIGTERM, SIGINT, [`AppHandle::shutdown`], or the root supervisor exiting by itself
//!    (it gave up after its restart intensity, or auto-shutdown). The trigger is logged.
//! 3. **Unready**: readiness turns off and every [`ShutdownToken`] fires at once; liveness stays on.
//! 4. **Drain delay** (default 0): the process keeps serving while load balancers stop sending it
//!    traffic. This is Kubernetes' `preStop` sleep, built in.
//! 5. **Teardown**: the root stops its children in reverse start order, recursively, each by its own
//!    shutdown policy.
//! 6. **Final hooks**: flush what must be flushed, each bounded by what is left of the deadline; a
//!    hook that panics is reported and the others still run.
//! 7. **Reap**: tasks spawned through [`AppHandle::spawn`] that are still running are aborted.
//! 8. **Exit**: the line `shutdown complete` is logged with the status and the duration, then the
//!    values kept with [`App::keep_until_exit`] (log writer guards) are dropped, so the line reaches
//!    the log file. [`run`](App::run) returns the [`ExitStatus`].
//!
//! One global deadline (default 25 s, inside Kubernetes' default 30 s grace period) covers phases 3
//! to 7, the drain delay included (a drain delay not shorter than the deadline is refused). When it
//! runs out, whatever is still running is killed and reported by path. A second SIGTERM or SIGINT
//! at any phase kills whatever is left at once.
//!
//! A trigger that comes during phase 1, or the optional [`start_timeout`](App::start_timeout),
//! abandons the start: each supervisor stops what it had started, in reverse order, within the
//! deadline, and the status is [`ExitStatus::START_INTERRUPTED`] or
//! [`ExitStatus::START_TIMED_OUT`].
//!
//! Nothing in canopy calls `std::process::exit`. Don't either: it skips every `Drop`, so log writers
//! lose their buffered lines and children are never stopped. Return the status from `main`.
//!
//! ```no_run
//! use std::time::Duration;
//! use canopy::app::{App, ExitStatus};
//! use canopy::SupervisorSpec;
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let tree = SupervisorSpec::default(); // your children here
//!     let app = App::new(tree)
//!         .drain_delay(Duration::from_secs(5))
//!         .shutdown_deadline(Duration::from_secs(25))
//!         .on_shutdown("flush metrics", || async { /* push final metrics */ });
//!     ExitStatus::of(app.run().await).into()
//! }
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor::{ActorCell, ActorStatus};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::core::REACHED_MAX_RESTART_INTENSITY;
use crate::exit::ExitReason;
use crate::health::{Health, ShutdownToken};
use crate::introspect;
use crate::shell::StartError;
use crate::spec::{SpecError, SupervisorSpec};
use crate::supervisor::SupervisorRef;

/// The default global shutdown deadline: 25 s, leaving 5 s of Kubernetes' default 30 s grace period
/// for the process to exit after the tree is down.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(25);

const T: &str = "canopy::app";

/// How the process ended; convert it into [`std::process::ExitCode`] and return it from `main`.
///
/// | status | code | meaning |
/// |---|---|---|
/// | [`CLEAN`](Self::CLEAN) | 0 | graceful stop, everything stopped by its own policy in time |
/// | [`START_FAILED`](Self::START_FAILED) | 3 | the tree failed to start (invalid spec, a child failed) |
/// | [`ROOT_GAVE_UP`](Self::ROOT_GAVE_UP) | 4 | the root supervisor exited by itself abnormally (restart intensity reached) |
/// | [`DEADLINE_EXCEEDED`](Self::DEADLINE_EXCEEDED) | 5 | the global deadline ran out; what was left was killed |
/// | [`SECOND_SIGNAL`](Self::SECOND_SIGNAL) | 6 | a second SIGTERM/SIGINT cut the stop short |
/// | [`START_INTERRUPTED`](Self::START_INTERRUPTED) | 7 | a stop came while the tree was starting; the start was abandoned and what had started was stopped in order |
/// | [`START_TIMED_OUT`](Self::START_TIMED_OUT) | 8 | the tree was not up within the start timeout; handled as a stop during start-up |
///
/// When several apply, the later cause wins: a second signal over a deadline, a deadline over the
/// root giving up or a start cut short. A child killed after its own shutdown timeout does not
/// change the status: its policy said "kill after this long", that is what happened, and it is
/// reported (`shutdown_error`, and a `child stopped` warning with reason `killed`); the status is
/// about the process as a whole keeping its deadline.
///
/// ```
/// use canopy::app::ExitStatus;
/// assert_eq!(ExitStatus::CLEAN.code(), 0);
/// let _code: std::process::ExitCode = ExitStatus::ROOT_GAVE_UP.into();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExitStatus(u8);

impl ExitStatus {
    /// 0: a clean graceful stop.
    pub const CLEAN: ExitStatus = ExitStatus(0);
    /// 3: the tree failed to start.
    pub const START_FAILED: ExitStatus = ExitStatus(3);
    /// 4: the root supervisor gave up.
    pub const ROOT_GAVE_UP: ExitStatus = ExitStatus(4);
    /// 5: the deadline forced kills.
    pub const DEADLINE_EXCEEDED: ExitStatus = ExitStatus(5);
    /// 6: a second signal cut the stop short.
    pub const SECOND_SIGNAL: ExitStatus = ExitStatus(6);
    /// 7: a stop came while the tree was still starting; the start was abandoned.
    pub const START_INTERRUPTED: ExitStatus = ExitStatus(7);
    /// 8: the tree did not finish starting within [`App::start_timeout`]; the start was abandoned.
    pub const START_TIMED_OUT: ExitStatus = ExitStatus(8);

    /// The process exit code.
    pub fn code(self) -> u8 {
        self.0
    }

    /// The status of a finished [`App::run`]: its status, or `START_FAILED` for a start error (which
    /// is logged).
    ///
    /// ```
    /// use canopy::app::ExitStatus;
    /// let failed: Result<ExitStatus, canopy::StartError> = Err(canopy::StartError::Init("x".into()));
    /// assert_eq!(ExitStatus::of(failed), ExitStatus::START_FAILED);
    /// ```
    pub fn of(result: Result<ExitStatus, StartError>) -> ExitStatus {
        result.unwrap_or(ExitStatus::START_FAILED)
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            ExitStatus::CLEAN => "clean",
            ExitStatus::START_FAILED => "start failed",
            ExitStatus::ROOT_GAVE_UP => "root supervisor gave up",
            ExitStatus::DEADLINE_EXCEEDED => "deadline exceeded",
            ExitStatus::SECOND_SIGNAL => "second signal",
            ExitStatus::START_INTERRUPTED => "start interrupted",
            ExitStatus::START_TIMED_OUT => "start timed out",
            _ => "unknown",
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// What started the stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An operating-system signal (`SIGTERM` or `SIGINT`).
    Signal(&'static str),
    /// [`AppHandle::shutdown`] was called.
    Requested,
    /// The root supervisor exited by itself with this reason.
    RootExited(ExitReason),
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Signal(name) => write!(f, "signal {name}"),
            Trigger::Requested => f.write_str("shutdown requested"),
            Trigger::RootExited(reason) => write!(f, "root supervisor exited: {reason}"),
        }
    }
}

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// A supervision tree wrapped in the process lifecycle. See the [module docs](self).
pub struct App {
    root: SupervisorSpec,
    drain_delay: Duration,
    deadline: Duration,
    start_timeout: Option<Duration>,
    signals: bool,
    hooks: Vec<(String, Hook)>,
    keep: Vec<Box<dyn Any + Send>>,
    health: Health,
    tx: mpsc::UnboundedSender<Trigger>,
    rx: mpsc::UnboundedReceiver<Trigger>,
    tasks: Arc<parking_lot::Mutex<JoinSet<()>>>,
    lifecycle: Lifecycle,
}

impl App {
    /// An app around this root supervisor spec, named `app` in paths unless the spec has a name.
    pub fn new(root: SupervisorSpec) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        App {
            root,
            drain_delay: Duration::ZERO,
            deadline: DEFAULT_SHUTDOWN_DEADLINE,
            start_timeout: None,
            signals: true,
            hooks: Vec::new(),
            keep: Vec::new(),
            health: Health::new(),
            tx,
            rx,
            tasks: Arc::default(),
            lifecycle: Lifecycle::default(),
        }
    }

    /// How long to keep serving after readiness turns off, before teardown begins (default 0).
    /// Waits on the clock only; a second signal cuts it short.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// The global deadline from the trigger to the end of the final hooks (default 25 s). It
    /// covers the drain delay, which must be shorter. `Duration::MAX` means no deadline; zero
    /// means whatever is still running when the stop begins is killed at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// let app = canopy::app::App::new(canopy::SupervisorSpec::default())
    ///     .shutdown_deadline(Duration::from_secs(55)); // inside a 60 s terminationGracePeriod
    /// # let _ = app;
    /// ```
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Gives up starting the tree after `timeout` (Kubernetes' startup probe, on the inside): what
    /// has started is stopped in reverse order and [`run`](Self::run) returns
    /// [`ExitStatus::START_TIMED_OUT`]. Default: no start timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let app = canopy::app::App::new(canopy::SupervisorSpec::default())
    ///     .start_timeout(Duration::from_secs(120));
    /// # let _ = app;
    /// ```
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = Some(timeout);
        self
    }

    /// Whether `run` listens to SIGTERM and SIGINT (default true). Turn it off to embed an app in a
    /// process that handles signals itself, and stop it with [`AppHandle::shutdown`].
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.signals = on;
        self
    }

    /// Adds a final hook, run after the tree is down, in the order added, each bounded by the time
    /// left before the deadline. A panic in a hook is reported and the next hook still runs.
    pub fn on_shutdown<F, Fut>(mut self, name: impl Into<String>, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks
            .push((name.into(), Box::new(move || hook().boxed())));
        self
    }

    /// Keeps `value` alive until after the last log line, then drops it: the place for
    /// `tracing_appender`'s `WorkerGuard`, whose drop flushes the log file.
    pub fn keep_until_exit<V: Send + 'static>(mut self, value: V) -> Self {
        self.keep.push(Box::new(value));
        self
    }

    /// Uses `health` as this app's health state, so that children built before the app (in its
    /// spec) can hold it.
    ///
    /// ```
    /// use canopy::{app::App, health::Health, SupervisorSpec};
    /// let health = Health::new();
    /// let spec = SupervisorSpec::default(); // children that keep `health.clone()`
    /// let app = App::new(spec).with_health(health.clone());
    /// # let _ = app;
    /// ```
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// The health state (liveness, readiness, shutdown token), for probes and components.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// A handle to trigger the stop from code and to spawn tasks the app reaps at exit.
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            tx: self.tx.clone(),
            health: self.health.clone(),
            tasks: self.tasks.clone(),
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// Where the app is in its life and how long each phase took, for metrics and observers.
    ///
    /// ```
    /// use canopy::app::{App, Phase};
    /// let app = App::new(canopy::SupervisorSpec::default());
    /// assert_eq!(app.lifecycle().phase(), Phase::Starting);
    /// ```
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    /// Serves the HTTP [observer](crate::observer) for this app: bound now, serving from now until
    /// the app exits, its readiness the app's, with its final export as a final hook.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use canopy::{app::App, observer::Observer, SupervisorSpec};
    /// let app = App::new(SupervisorSpec::default()).observer(Observer::new())?; // 127.0.0.1:9470
    /// app.run().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "observer")]
    pub fn observer(
        self,
        observer: crate::observer::Observer,
    ) -> Result<Self, crate::observer::ObserverError> {
        observer.attach(self)
    }

    /// Starts the tree, waits for a trigger, stops everything in order within the deadline and
    /// returns how it went.
    ///
    /// Errors, returned before anything starts: an invalid spec, or a drain delay that is not
    /// shorter than the shutdown deadline (the deadline covers the drain), both
    /// [`StartError::Spec`]. A tree that fails to start returns its [`StartError`] (status
    /// [`ExitStatus::START_FAILED`]). A stop that comes while the tree is still starting abandons
    /// the start: what has started is stopped in reverse order within the deadline, and the status
    /// is [`ExitStatus::START_INTERRUPTED`] ([`ExitStatus::START_TIMED_OUT`] past the
    /// [`start_timeout`](Self::start_timeout)).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use std::time::Duration;
    /// use canopy::{app::App, SpecError, StartError, SupervisorSpec};
    /// let app = App::new(SupervisorSpec::default())
    ///     .drain_delay(Duration::from_secs(30))
    ///     .shutdown_deadline(Duration::from_secs(25));
    /// assert!(matches!(
    ///     app.run().await,
    ///     Err(StartError::Spec(SpecError::DrainNotShorterThanDeadline { .. }))
    /// ));
    /// # }
    /// ```
    pub async fn run(self) -> Result<ExitStatus, StartError> {
        let App {
            root,
            drain_delay,
            deadline,
            start_timeout,
            signals,
            hooks,
            keep,
            health,
            tx,
            mut rx,
            tasks,
            lifecycle,
        } = self;
        let began = Instant::now();
        if let Err(e) = check(&root, drain_delay, deadline) {
            tracing::error!(target: T, error = %e, "invalid app; nothing started");
            return Err(StartError::Spec(e));
        }
        // Listen before starting, so that a signal during start-up is seen.
        let listener = signals.then(|| tokio::spawn(listen_for_signals(tx.clone())));
        let (exit_tx, mut root_exit) = watch::channel(None);
        let watcher = match Actor::spawn(
            None,
            RootWatcher {
                tx: tx.clone(),
                exit: exit_tx,
            },
            (),
        )
        .await
        {
            Ok((watcher, _)) => watcher,
            Err(e) => return Err(StartError::Spawn(e.to_string())),
        };
        let stop_listening = || {
            watcher.stop(None);
            if let Some(l) = &listener {
                l.abort();
            }
        };

        // 1. Start, unless a trigger or the start timeout comes first.
        let (abort_tx, abort_rx) = watch::channel(false);
        let root_path = format!("/{}", root.name.as_deref().unwrap_or(DEFAULT_ROOT_NAME));
        let start = crate::supervisor::start_root(root, watcher.get_cell(), abort_rx);
        tokio::pin!(start);
        let start_by = start_timeout.map(crate::deadline_in);
        let first = tokio::select! {
            biased;
            started = &mut start => Ok(started),
            trigger = rx.recv() => Err(trigger.map_or(StartCut::Requested, StartCut::Trigger)),
            _ = sleep_until_some(start_by) => Err(StartCut::TimedOut),
        };
        let (root, trigger, status, stop_began) = match first {
            Ok(Ok(root)) => {
                health.set_ready(true);
                lifecycle.enter(Phase::Running);
                tracing::info!(target: T, elapsed_ms = ms(began.elapsed()), "tree started; ready");
                let trigger = rx.recv().await.unwrap_or(Trigger::Requested);
                let status = match &trigger {
                    Trigger::RootExited(reason) if root_gave_up(reason) => ExitStatus::ROOT_GAVE_UP,
                    _ => ExitStatus::CLEAN,
                };
                tracing::info!(target: T, %trigger, "shutdown triggered");
                (Some(root), trigger, status, Instant::now())
            }
            Ok(Err(e)) => {
                tracing::error!(target: T, error = %e, "the supervision tree failed to start");
                stop_listening();
                // Tasks spawned through the app's handle (an observer's server among them) end
                // with the failed start, as they would at the end of a stop.
                tasks.lock().abort_all();
                return Err(e);
            }
            Err(cut) => {
                let stop_began = Instant::now();
                let status = match cut {
                    StartCut::TimedOut => ExitStatus::START_TIMED_OUT,
                    _ => ExitStatus::START_INTERRUPTED,
                };
                tracing::warn!(
                    target: T,
                    cause = %cut,
                    elapsed_ms = ms(began.elapsed()),
                    "stop during start-up: abandoning the start"
                );
                let _ = abort_tx.send(true);
                let mut stop = Stop {
                    rx,
                    deadline_at: crate::deadline_in(deadline),
                    status,
                    root_exit,
                };
                let root = stop.unwind_start(start, &root_path).await;
                let trigger = match cut {
                    StartCut::Trigger(trigger) => trigger,
                    StartCut::Requested | StartCut::TimedOut => Trigger::Requested,
                };
                rx = stop.rx;
                root_exit = stop.root_exit;
                (root, trigger, stop.status, stop_began)
            }
        };

        // 2. Stop: unready, drain, teardown, final hooks, reap.
        let mut stop = Stop {
            rx,
            deadline_at: tokio::time::Instant::from_std(stop_began)
                .checked_add(deadline)
                .unwrap_or_else(|| crate::deadline_in(deadline)),
            status,
            root_exit,
        };
        let phase = Instant::now();
        // Entered first, so that whoever the shutdown token wakes reads the phase it belongs to.
        lifecycle.enter(Phase::Draining);
        health.begin_shutdown();
        log_phase("unready", phase);

        // Each phase returns false when a second signal ended the stop; the rest are then skipped.
        let stopped = match &root {
            Some(root) => {
                stop.drain(drain_delay, root, &trigger).await && {
                    lifecycle.enter(Phase::Teardown);
                    stop.teardown(root).await
                }
            }
            None => stop.status != ExitStatus::SECOND_SIGNAL,
        };
        let _ = stopped && {
            lifecycle.enter(Phase::FinalHooks);
            stop.final_hooks(hooks).await
        };
        lifecycle.enter(Phase::Reaping);
        let phase = Instant::now();
        let reaped = {
            let mut set = std::mem::take(&mut *tasks.lock());
            while set.try_join_next().is_some() {}
            let still_running = set.len();
            set.abort_all();
            while set.join_next().await.is_some() {}
            still_running
        };
        tracing::info!(target: T, phase = "reap", tasks = reaped, elapsed_ms = ms(phase.elapsed()), "phase done");
        stop_listening();
        health.set_live(false);
        let status = stop.status;
        lifecycle.enter(Phase::Done);
        tracing::info!(
            target: T,
            status = %status,
            stop_ms = ms(stop_began.elapsed()),
            total_ms = ms(began.elapsed()),
            "shutdown complete"
        );
        drop(keep);
        Ok(status)
    }
}

/// The name of the root supervisor in paths when its spec has none.
const DEFAULT_ROOT_NAME: &str = "app";

/// The checks `run` makes before anything starts.
fn check(root: &SupervisorSpec, drain: Duration, deadline: Duration) -> Result<(), SpecError> {
    root.validate()?;
    if !drain.is_zero() && drain >= deadline {
        return Err(SpecError::DrainNotShorterThanDeadline { drain, deadline });
    }
    Ok(())
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What cut a start-up short.
enum StartCut {
    Trigger(Trigger),
    /// The trigger channel closed (it cannot while the app holds a sender; kept total).
    Requested,
    TimedOut,
}

impl fmt::Display for StartCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartCut::Trigger(trigger) => trigger.fmt(f),
            StartCut::Requested => f.write_str("shutdown requested"),
            StartCut::TimedOut => f.write_str("start timeout"),
        }
    }
}

/// What the stop waits on besides the clock.
enum Event {
    SecondSignal(&'static str),
    /// The root supervisor is gone, with this reason.
    RootExited(ExitReason),
}

/// The running stop: the trigger channel (for a second signal), the deadline, the status and the
/// root's exit reason (set by its watcher once the root is gone).
struct Stop {
    rx: mpsc::UnboundedReceiver<Trigger>,
    deadline_at: tokio::time::Instant,
    status: ExitStatus,
    root_exit: watch::Receiver<Option<ExitReason>>,
}

impl Stop {
    /// The next signal or the root's exit; a shutdown request or the root's exit as a trigger
    /// changes nothing here (the root's exit is read from its watcher).
    async fn next_event(&mut self) -> Event {
        let signal = next_signal(&mut self.rx);
        let exited = async {
            let reason = (self.root_exit.wait_for(Option::is_some).await)
                .ok()
                .and_then(|reason| reason.clone());
            match reason {
                Some(reason) => reason,
                // The watcher is gone without a word: the root's exit cannot be seen.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            reason = exited => Event::RootExited(reason),
            name = signal => Event::SecondSignal(name),
        }
    }

    /// The root is gone with `reason`: a root that gave up makes the status say so.
    fn root_exited(&mut self, reason: &ExitReason) {
        if root_gave_up(reason) {
            tracing::error!(target: T, %reason, "the root supervisor gave up during the stop");
            self.status = self.status.max(ExitStatus::ROOT_GAVE_UP);
        }
    }

    fn cut_short(&mut self, name: &str, root: &ActorCell) {
        tracing::warn!(target: T, signal = name, "second signal: killing whatever is left");
        kill_tree(root, "second signal");
        self.status = ExitStatus::SECOND_SIGNAL;
    }

    /// A stop came during start-up: the start unwinds (each supervisor stops what it started, in
    /// reverse order) within the deadline; past it, or on a second signal, the tree is killed.
    /// Returns the root if the start completed after all (it is then stopped like any tree).
    async fn unwind_start(
        &mut self,
        start: std::pin::Pin<&mut impl Future<Output = Result<SupervisorRef, StartError>>>,
        root_path: &str,
    ) -> Option<SupervisorRef> {
        let mut start = start;
        let deadline_at = self.deadline_at;
        let signal = next_signal(&mut self.rx);
        let killed = tokio::select! {
            biased;
            started = &mut start => {
                return match started {
                    Ok(root) => {
                        tracing::info!(target: T, "the tree finished starting before the stop reached it");
                        Some(root)
                    }
                    Err(e) => {
                        tracing::info!(target: T, error = %e, "start-up abandoned; what had started is stopped");
                        None
                    }
                };
            }
            _ = tokio::time::sleep_until(deadline_at) => {
                tracing::error!(target: T, "shutdown deadline reached during start-up; killing the tree");
                ExitStatus::DEADLINE_EXCEEDED
            }
            name = signal => {
                tracing::warn!(target: T, signal = name, "second signal during start-up: killing the tree");
                ExitStatus::SECOND_SIGNAL
            }
        };
        self.status = killed;
        // The root's start-up runs in this task, inside `start`; its cell is found by path.
        // Killing it ends its start at the next poll (ractor's kill reaches an actor in
        // pre_start) and kills what it had linked, so `start` is polled to its end.
        if let Some(node) = introspect::node_at(root_path) {
            kill_tree(&node.cell, "start-up cut short");
            if let Err(e) = start.await {
                tracing::info!(target: T, error = %e, "start-up ended by the kill");
            }
        }
        None
    }

    /// Phase 4, which the deadline covers. Returns false if a second signal ended the stop.
    async fn drain(&mut self, delay: Duration, root: &SupervisorRef, trigger: &Trigger) -> bool {
        let phase = Instant::now();
        if delay.is_zero() || matches!(trigger, Trigger::RootExited(_)) {
            log_phase("drain", phase);
            return true;
        }
        let until = crate::deadline_in(delay).min(self.deadline_at);
        let event = tokio::select! {
            _ = tokio::time::sleep_until(until) => None,
            event = self.next_event() => Some(event),
        };
        match event {
            Some(Event::SecondSignal(name)) => {
                self.cut_short(name, &root.cell());
                root.wait().await;
                return false;
            }
            // Nothing left to drain for.
            Some(Event::RootExited(reason)) => self.root_exited(&reason),
            None => {}
        }
        log_phase("drain", phase);
        true
    }

    /// Phase 5. Returns false if a second signal ended the stop.
    async fn teardown(&mut self, root: &SupervisorRef) -> bool {
        let phase = Instant::now();
        crate::shell::ask_to_stop(&root.cell(), ExitReason::Shutdown);
        let deadline_at = self.deadline_at;
        let event = tokio::select! {
            biased;
            event = self.next_event() => event,
            _ = tokio::time::sleep_until(deadline_at) => {
                tracing::error!(target: T, "shutdown deadline reached; killing what is left");
                kill_tree(&root.cell(), "shutdown deadline");
                root.wait().await;
                self.status = self.status.max(ExitStatus::DEADLINE_EXCEEDED);
                log_phase("teardown", phase);
                return true;
            }
        };
        match event {
            Event::RootExited(reason) => {
                root.wait().await;
                self.root_exited(&reason);
                log_phase("teardown", phase);
                true
            }
            Event::SecondSignal(name) => {
                self.cut_short(name, &root.cell());
                root.wait().await;
                false
            }
        }
    }

    /// Phase 6. Returns false if a second signal ended the stop.
    async fn final_hooks(&mut self, hooks: Vec<(String, Hook)>) -> bool {
        let phase = Instant::now();
        for (name, hook) in hooks {
            let mut task = tokio::spawn(hook());
            let deadline_at = self.deadline_at;
            let signal = next_signal(&mut self.rx);
            tokio::select! {
                joined = &mut task => {
                    if let Err(e) = joined {
                        if e.is_panic() {
                            let text = crate::spec::panic_text(&e.into_panic());
                            tracing::error!(target: T, hook = %name, panic = %text, "final hook panicked");
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline_at) => {
                    task.abort();
                    tracing::error!(target: T, hook = %name, "final hook cut off at the shutdown deadline");
                    self.status = self.status.max(ExitStatus::DEADLINE_EXCEEDED);
                }
                signal = signal => {
                    task.abort();
                    tracing::warn!(target: T, signal, hook = %name, "second signal: skipping the remaining final hooks");
                    self.status = ExitStatus::SECOND_SIGNAL;
                    return false;
                }
            }
        }
        log_phase("final hooks", phase);
        true
    }
}

/// The next signal; other triggers during the stop change nothing (the root's exit is read from
/// its watcher).
async fn next_signal(rx: &mut mpsc::UnboundedReceiver<Trigger>) -> &'static str {
    loop {
        match rx.recv().await {
            Some(Trigger::Signal(name)) => return name,
            Some(_) => continue,
            None => std::future::pending::<()>().await,
        }
    }
}

/// Kills the whole tree at once (the deadline ran out, or a second signal came). Every child still
/// running is recorded as killed in its supervisor's state and logged by path, as a `child stopped`
/// line with reason `killed` like any other stop, before anything is killed: once the kill is sent
/// no supervisor runs again to say it. A child stuck in its stop (its `post_stop`, a drain), which
/// is what a deadline is usually about, is killed as well.
fn kill_tree(root: &ActorCell, why: &'static str) {
    let left = introspect::record_tree_killed(root);
    tracing::error!(target: T, running = left.len(), cause = why, "killing the tree");
    for child in &left {
        tracing::warn!(
            target: "canopy::supervisor",
            path = %child.path,
            reason = "killed",
            cause = why,
            "child stopped"
        );
    }
    root.kill();
    // ractor's kill of the root goes down to every actor that is running; one already stopping
    // is passed over and would outlive the tree. Only those are killed here: a running child
    // killed directly could be restarted by its supervisor before that supervisor's own kill.
    for child in &left {
        if child.cell.get_status() >= ActorStatus::Draining {
            child.cell.kill();
        }
    }
}

fn root_gave_up(reason: &ExitReason) -> bool {
    match reason {
        ExitReason::ShutdownWith(detail) => detail == REACHED_MAX_RESTART_INTENSITY,
        other => !other.is_normal_class(),
    }
}

/// Milliseconds with microsecond precision, for log fields.
fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

fn log_phase(phase: &'static str, began: Instant) {
    tracing::info!(target: T, phase, elapsed_ms = ms(began.elapsed()), "phase done");
}

/// A cloneable handle to a running [`App`].
///
/// ```
/// # #[tokio::main] async fn main() {
/// use canopy::app::{App, ExitStatus};
/// let app = App::new(canopy::SupervisorSpec::default()).handle_signals(false);
/// let handle = app.handle();
/// let token = handle.shutdown_token();
/// handle.spawn(async move { token.triggered().await });
/// handle.shutdown();
/// assert_eq!(app.run().await, Ok(ExitStatus::CLEAN));
/// # }
/// ```
#[derive(Clone)]
pub struct AppHandle {
    tx: mpsc::UnboundedSender<Trigger>,
    health: Health,
    tasks: Arc<parking_lot::Mutex<JoinSet<()>>>,
    lifecycle: Lifecycle,
}

impl AppHandle {
    /// Starts the graceful stop, as SIGTERM would (but never counts as a second signal).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Trigger::Requested);
    }

    /// The health state.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// A token that fires when the stop begins.
    pub fn shutdown_token(&self) -> ShutdownToken {
        self.health.shutdown_token()
    }

    /// Where the app is in its life; see [`App::lifecycle`].
    ///
    /// ```
    /// let app = canopy::app::App::new(canopy::SupervisorSpec::default());
    /// assert_eq!(app.handle().lifecycle().phase(), canopy::app::Phase::Starting);
    /// ```
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    /// Spawns a task that belongs to the app: if it is still running after the final hooks, it is
    /// aborted (OTP's application master reaping the processes of its application). Tasks that
    /// have finished are reaped as new ones are spawned, so a task per request costs no memory once
    /// it is done.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let app = canopy::app::App::new(canopy::SupervisorSpec::default());
    /// app.handle().spawn(async { /* serve one request */ });
    /// # }
    /// ```
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock();
        // Each call reaps at least as many finished tasks as it adds: amortised O(1).
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// How many tasks the app holds that have not been reaped (finished ones are reaped as new
    /// ones are spawned).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let app = canopy::app::App::new(canopy::SupervisorSpec::default());
    /// assert_eq!(app.handle().tasks(), 0);
    /// # }
    /// ```
    pub fn tasks(&self) -> usize {
        self.tasks.lock().len()
    }
}

/// The root supervisor's parent: tells the app when the root exits, and with which reason.
struct RootWatcher {
    tx: mpsc::UnboundedSender<Trigger>,
    exit: watch::Sender<Option<ExitReason>>,
}

impl Actor for RootWatcher {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, reason)) = ExitReason::from_event(&event) {
            self.exit.send_replace(Some(reason.clone()));
            let _ = self.tx.send(Trigger::RootExited(reason));
        }
        Ok(())
    }
}

#[cfg(unix)]
async fn listen_for_signals(tx: mpsc::UnboundedSender<Trigger>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(target: T, error = %e, "cannot listen for SIGTERM/SIGINT; stop the app through its handle");
            return;
        }
    };
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if tx.send(Trigger::Signal(name)).is_err() {
            return;
        }
    }
}

#[cfg(not(unix))]
async fn listen_for_signals(tx: mpsc::UnboundedSender<Trigger>) {
    while tokio::signal::ctrl_c().await.is_ok() {
        if tx.send(Trigger::Signal("ctrl-c")).is_err() {
            return;
        }
    }
}

/// The phases of an [`App`]'s life, in order (see the [module docs](self)). A stop that comes
/// during start-up stays in `Starting` while the start unwinds, then goes on from `Draining`
/// (with nothing left to drain or tear down); a second signal skips what is left up to `Reaping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Phase 1: the tree is starting.
    Starting,
    /// The tree is up and ready; no stop has been triggered.
    Running,
    /// Phases 3 and 4: readiness is off, the drain delay runs.
    Draining,
    /// Phase 5: the tree is being stopped.
    Teardown,
    /// Phase 6: the tree is down, the final hooks run.
    FinalHooks,
    /// Phase 7: the app's tasks are reaped.
    Reaping,
    /// `run` is returning.
    Done,
}

impl Phase {
    /// Every phase, in order.
    ///
    /// ```
    /// use canopy::app::Phase;
    /// assert!(Phase::ALL.windows(2).all(|w| w[0] < w[1]));
    /// ```
    pub const ALL: [Phase; 7] = [
        Phase::Starting,
        Phase::Running,
        Phase::Draining,
        Phase::Teardown,
        Phase::FinalHooks,
        Phase::Reaping,
        Phase::Done,
    ];

    /// Its name in snake case, as metrics label it.
    ///
    /// ```
    /// assert_eq!(canopy::app::Phase::FinalHooks.name(), "final_hooks");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Teardown => "teardown",
            Phase::FinalHooks => "final_hooks",
            Phase::Reaping => "reaping",
            Phase::Done => "done",
        }
    }
}

/// Where an [`App`] is in its life and when each phase began; cheap to clone, read at any time
/// (one short lock), by [`App::lifecycle`] or [`AppHandle::lifecycle`].
///
/// ```
/// use canopy::app::{Lifecycle, Phase};
/// let lifecycle = Lifecycle::default();
/// assert_eq!(lifecycle.phase(), Phase::Starting);
/// assert_eq!(lifecycle.durations()[0].0, Phase::Starting);
/// assert!(lifecycle.stopping_for().is_none());
/// ```
#[derive(Clone, Debug)]
pub struct Lifecycle {
    /// The phases entered, in order, with when; never empty.
    began: Arc<parking_lot::Mutex<Vec<(Phase, Instant)>>>,
}

impl Default for Lifecycle {
    /// Starting, from now.
    fn default() -> Self {
        Lifecycle {
            began: Arc::new(parking_lot::Mutex::new(vec![(
                Phase::Starting,
                Instant::now(),
            )])),
        }
    }
}

impl Lifecycle {
    /// The current phase.
    ///
    /// ```
    /// let app = canopy::app::App::new(canopy::SupervisorSpec::default());
    /// assert_eq!(app.lifecycle().phase(), canopy::app::Phase::Starting);
    /// ```
    pub fn phase(&self) -> Phase {
        self.began
            .lock()
            .last()
            .map_or(Phase::Starting, |(phase, _)| *phase)
    }

    /// Each phase entered so far, in order, with how long it lasted (the current one: so far).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use canopy::app::{App, Phase};
    /// let app = App::new(canopy::SupervisorSpec::default()).handle_signals(false);
    /// let lifecycle = app.lifecycle();
    /// app.handle().shutdown();
    /// app.run().await.unwrap();
    /// let phases: Vec<Phase> = lifecycle.durations().into_iter().map(|(p, _)| p).collect();
    /// assert_eq!(phases, Phase::ALL);
    /// # }
    /// ```
    pub fn durations(&self) -> Vec<(Phase, Duration)> {
        let began = self.began.lock();
        let now = Instant::now();
        began
            .iter()
            .enumerate()
            .map(|(i, (phase, at))| {
                let end = began.get(i + 1).map_or(now, |(_, next)| *next);
                (*phase, end.saturating_duration_since(*at))
            })
            .collect()
    }

    /// How long ago the stop was triggered, once it has been.
    ///
    /// ```
    /// let app = canopy::app::App::new(canopy::SupervisorSpec::default());
    /// assert!(app.lifecycle().stopping_for().is_none()); // not stopping yet
    /// ```
    pub fn stopping_for(&self) -> Option<Duration> {
        let began = self.began.lock();
        let (_, at) = began.iter().find(|(phase, _)| *phase >= Phase::Draining)?;
        Some(at.elapsed())
    }

    pub(crate) fn enter(&self, phase: Phase) {
        let mut began = self.began.lock();
        // Phases only move forward; entering one already passed changes nothing.
        if began.last().is_some_and(|(last, _)| *last < phase) {
            began.push((phase, Instant::now()));
        }
    }
}
