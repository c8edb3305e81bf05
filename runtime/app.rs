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
//! to 7. When it runs out, whatever is still running is killed and reported by path. A second
//! SIGTERM or SIGINT at any phase kills whatever is left at once.
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
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::core::REACHED_MAX_RESTART_INTENSITY;
use crate::exit::ExitReason;
use crate::health::{Health, ShutdownToken};
use crate::introspect;
use crate::shell::StartError;
use crate::spec::SupervisorSpec;
use crate::supervisor::{Supervisor, SupervisorRef};

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
///
/// When several apply, the later cause wins: a second signal over a deadline, a deadline over the
/// root giving up.
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
    signals: bool,
    hooks: Vec<(String, Hook)>,
    keep: Vec<Box<dyn Any + Send>>,
    health: Health,
    tx: mpsc::UnboundedSender<Trigger>,
    rx: mpsc::UnboundedReceiver<Trigger>,
    tasks: Arc<parking_lot::Mutex<JoinSet<()>>>,
}

impl App {
    /// An app around this root supervisor spec, named `app` in paths unless the spec has a name.
    pub fn new(root: SupervisorSpec) -> Self {
        let root = if root.name.is_none() {
            root.name("app")
        } else {
            root
        };
        let (tx, rx) = mpsc::unbounded_channel();
        App {
            root,
            drain_delay: Duration::ZERO,
            deadline: DEFAULT_SHUTDOWN_DEADLINE,
            signals: true,
            hooks: Vec::new(),
            keep: Vec::new(),
            health: Health::new(),
            tx,
            rx,
            tasks: Arc::default(),
        }
    }

    /// How long to keep serving after readiness turns off, before teardown begins (default 0).
    /// Waits on the clock only; a second signal cuts it short.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// The global deadline from the trigger to the end of the final hooks (default 25 s).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
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
        }
    }

    /// Starts the tree, waits for a trigger, stops everything in order within the deadline and
    /// returns how it went. An invalid spec or a failed start returns the error before anything
    /// else happens (its status is [`ExitStatus::START_FAILED`]).
    pub async fn run(self) -> Result<ExitStatus, StartError> {
        let App {
            root,
            drain_delay,
            deadline,
            signals,
            hooks,
            keep,
            health,
            tx,
            mut rx,
            tasks,
        } = self;
        let began = Instant::now();
        if let Err(e) = root.validate() {
            tracing::error!(target: T, error = %e, "invalid supervision tree; nothing started");
            return Err(StartError::Spec(e));
        }
        // Listen before starting, so that a signal during start-up still stops the tree afterwards.
        let listener = signals.then(|| tokio::spawn(listen_for_signals(tx.clone())));
        let watcher = match Actor::spawn(None, RootWatcher { tx: tx.clone() }, ()).await {
            Ok((watcher, _)) => watcher,
            Err(e) => return Err(StartError::Spawn(e.to_string())),
        };
        let root = match Supervisor::start_linked(root, watcher.get_cell()).await {
            Ok(root) => root,
            Err(e) => {
                tracing::error!(target: T, error = %e, "the supervision tree failed to start");
                watcher.stop(None);
                if let Some(l) = listener {
                    l.abort();
                }
                return Err(e);
            }
        };
        health.set_ready(true);
        tracing::info!(target: T, elapsed_ms = ms(began.elapsed()), "tree started; ready");

        let trigger = rx.recv().await.unwrap_or(Trigger::Requested);
        let stop_began = Instant::now();
        let deadline_at = tokio::time::Instant::from_std(stop_began + deadline);
        tracing::info!(target: T, %trigger, "shutdown triggered");
        let mut status = match &trigger {
            Trigger::RootExited(reason) if root_gave_up(reason) => ExitStatus::ROOT_GAVE_UP,
            _ => ExitStatus::CLEAN,
        };

        let mut stop = Stop {
            rx,
            deadline_at,
            status: &mut status,
        };
        let phase = Instant::now();
        health.begin_shutdown();
        log_phase("unready", phase);

        // Each phase returns false when a second signal ended the stop; the rest are then skipped.
        let _ = stop.drain(drain_delay, &root, &trigger).await
            && stop.teardown(&root).await
            && stop.final_hooks(hooks).await;
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
        watcher.stop(None);
        if let Some(l) = listener {
            l.abort();
        }
        health.set_live(false);
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

/// The running stop: the trigger channel (for a second signal), the deadline and the status.
struct Stop<'a> {
    rx: mpsc::UnboundedReceiver<Trigger>,
    deadline_at: tokio::time::Instant,
    status: &'a mut ExitStatus,
}

impl Stop<'_> {
    /// Waits for the next signal; other triggers during the stop change nothing.
    async fn second_signal(&mut self) -> &'static str {
        loop {
            match self.rx.recv().await {
                Some(Trigger::Signal(name)) => return name,
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn cut_short(&mut self, name: &str, root: &SupervisorRef) {
        tracing::warn!(target: T, signal = name, "second signal: killing whatever is left");
        kill_tree(root, "second signal");
        *self.status = ExitStatus::SECOND_SIGNAL;
    }

    /// Phase 4. Returns false if a second signal ended the stop.
    async fn drain(&mut self, delay: Duration, root: &SupervisorRef, trigger: &Trigger) -> bool {
        let phase = Instant::now();
        if delay.is_zero() || matches!(trigger, Trigger::RootExited(_)) {
            log_phase("drain", phase);
            return true;
        }
        let until = tokio::time::Instant::now() + delay;
        tokio::select! {
            _ = tokio::time::sleep_until(until.min(self.deadline_at)) => {
                log_phase("drain", phase);
                true
            }
            name = self.second_signal() => {
                self.cut_short(name, root);
                root.wait().await;
                false
            }
        }
    }

    /// Phase 5. Returns false if a second signal ended the stop.
    async fn teardown(&mut self, root: &SupervisorRef) -> bool {
        let phase = Instant::now();
        crate::shell::ask_to_stop(&root.cell(), ExitReason::Shutdown);
        let deadline_at = self.deadline_at;
        tokio::select! {
            _ = root.wait() => {
                log_phase("teardown", phase);
                true
            }
            _ = tokio::time::sleep_until(deadline_at) => {
                tracing::error!(target: T, "shutdown deadline reached; killing what is left");
                kill_tree(root, "shutdown deadline");
                root.wait().await;
                *self.status = (*self.status).max(ExitStatus::DEADLINE_EXCEEDED);
                log_phase("teardown", phase);
                true
            }
            name = self.second_signal() => {
                self.cut_short(name, root);
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
                    *self.status = (*self.status).max(ExitStatus::DEADLINE_EXCEEDED);
                }
                signal = self.second_signal() => {
                    task.abort();
                    tracing::warn!(target: T, signal, hook = %name, "second signal: skipping the remaining final hooks");
                    *self.status = ExitStatus::SECOND_SIGNAL;
                    return false;
                }
            }
        }
        log_phase("final hooks", phase);
        true
    }
}

/// Kills the whole tree at once (the deadline ran out, or a second signal came). Every child still
/// running is recorded as killed in its supervisor's state and logged by path, as a `child stopped`
/// line with reason `killed` like any other stop, before anything is killed: once the kill is sent
/// no supervisor runs again to say it.
fn kill_tree(root: &SupervisorRef, why: &'static str) {
    let left = introspect::record_tree_killed(&root.cell());
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
    root.cell().kill();
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

    /// Spawns a task that belongs to the app: if it is still running after the final hooks, it is
    /// aborted (OTP's application master reaping the processes of its application).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.lock().spawn(task);
    }
}

/// The root supervisor's parent: tells the app when the root exits by itself.
struct RootWatcher {
    tx: mpsc::UnboundedSender<Trigger>,
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
