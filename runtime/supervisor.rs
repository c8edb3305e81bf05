//! The static supervisor actor: the ractor shell around [`core`].
//!
//! The actor turns ractor's supervision events and API messages into core events and carries out the
//! core's commands: it runs start functions (children are linked to it), stops children by their
//! policy ([`shutdown::terminate`]), queues retries through its own mailbox
//! and exits when the core says so. All decisions are the core's.
//!
//! - **Start** is synchronous: [`Supervisor::start`] returns once every child's `pre_start` is done, in
//!   spec order. If one fails, the ones already started are stopped in reverse order and the start
//!   fails with [`StartError::ChildFailed`] naming the child.
//! - **Stop**: stopping the supervisor (ractor `stop`, or its own supervisor terminating it) stops its
//!   children one at a time in reverse start order, each by its policy, before the supervisor itself
//!   finishes; ractor's own teardown, which kills linked children in no order, never sees a live child.
//! - **Kill** skips all of that: the whole subtree is killed.
//!
//! ```
//! use canopy::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
//! # #[derive(Clone)] struct Worker;
//! # impl ractor::Actor for Worker {
//! #     type Msg = (); type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: ractor::ActorRef<()>, _: ()) -> Result<(), ractor::ActorProcessingErr> { Ok(()) }
//! # }
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sup = Supervisor::start(
//!     SupervisorSpec::new(Strategy::OneForOne)
//!         .child(ChildSpec::actor("a", Worker, ()))
//!         .child(ChildSpec::actor("b", Worker, ())),
//! )
//! .await?;
//! let children = sup.which_children().await?;
//! assert_eq!(children[0].id, "b"); // most recently started first, as in OTP
//! sup.shutdown().await;             // stops b, then a
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use futures::FutureExt;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};

use crate::core::{self, ChildCounts, Command, Core, Outcome, Report, StartFailure};
use crate::exit::ExitReason;
use crate::introspect;
use crate::shutdown;
use crate::spec::{panic_text, BoxError, ChildSpec, SpecError, Start, StartInfo, SupervisorSpec};

/// A child management error, with running processes given as their cells.
pub type ChildError = core::ChildError<ActorCell>;
/// A child as `which_children` reports it.
pub type ChildInfo = core::ChildInfo<ActorCell>;

/// What a successful `start_child` or `restart_child` gives back.
///
/// ```
/// # async fn demo(sup: canopy::SupervisorRef, spec: canopy::ChildSpec) -> Result<(), canopy::ChildError> {
/// let started = sup.start_child(spec).await?;
/// match started.cell {
///     Some(cell) => println!("running as {:?}", cell.get_id()),
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
    /// The init function given to [`Supervisor::start_with`] failed or panicked.
    Init(String),
    /// ractor refused to spawn the supervisor (for example, its name is taken).
    Spawn(String),
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
        }
    }
}

impl std::error::Error for StartError {}

/// An init function: decides the supervisor's spec when it starts (and at every restart when it is a
/// child). `Ok(None)` is OTP's `ignore`: the supervisor does not start.
pub type InitFn = Arc<dyn Fn() -> Result<Option<SupervisorSpec>, BoxError> + Send + Sync>;

/// The static supervisor actor. Start it with [`Supervisor::start`]; talk to it through the
/// [`SupervisorRef`] it returns.
pub struct Supervisor;

/// The supervisor's mailbox. Opaque: use [`SupervisorRef`].
pub struct SupervisorMsg(Request);

enum Request {
    StartChild(ChildSpec, RpcReplyPort<Result<StartedChild, ChildError>>),
    TerminateChild(String, RpcReplyPort<Result<(), ChildError>>),
    RestartChild(String, RpcReplyPort<Result<StartedChild, ChildError>>),
    DeleteChild(String, RpcReplyPort<Result<(), ChildError>>),
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    WhichChild(String, RpcReplyPort<Option<ChildInfo>>),
    CountChildren(RpcReplyPort<ChildCounts>),
    GetChildSpec(String, RpcReplyPort<Option<ChildSpec>>),
    /// OTP's `try_again_restart`.
    Retry(String),
}

#[doc(hidden)]
pub struct SupervisorInit {
    source: Source,
    path: String,
}

enum Source {
    Spec(SupervisorSpec),
    With(InitFn),
}

#[doc(hidden)]
pub struct SupervisorState {
    /// The decision state, shared with the introspection tree.
    node: Arc<introspect::Node>,
    /// Info attached by the last start function, for the API reply.
    last_info: Option<StartInfo>,
    /// Backed-off restarts waiting for their time, aborted when the supervisor stops.
    timers: Vec<tokio::task::JoinHandle<Result<(), ractor::MessagingErr<SupervisorMsg>>>>,
}

impl SupervisorState {
    fn core(&self) -> parking_lot::MutexGuard<'_, Core<ActorCell>> {
        self.node.core.lock()
    }
}

/// The marker a supervisor's `pre_start` fails with when its init function said "ignore".
#[derive(Debug)]
struct Ignored;
impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ignored")
    }
}
impl std::error::Error for Ignored {}

impl Supervisor {
    /// Starts an unlinked (top-level) supervisor and its children, in order.
    pub async fn start(spec: SupervisorSpec) -> Result<SupervisorRef, StartError> {
        let path = format!("/{}", spec.name.as_deref().unwrap_or(DEFAULT_NAME));
        spawn(Source::Spec(spec), None, path)
            .await?
            .ok_or_else(|| StartError::Init("ignored".into()))
    }

    /// Starts a supervisor linked to `parent` (a supervisor's start function does this).
    pub async fn start_linked(
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<SupervisorRef, StartError> {
        let path = child_path(&parent, spec.name.as_deref().unwrap_or(DEFAULT_NAME));
        spawn(Source::Spec(spec), Some(parent), path)
            .await?
            .ok_or_else(|| StartError::Init("ignored".into()))
    }

    /// Starts a supervisor whose spec comes from `init`, run inside the supervisor as it starts.
    /// `Ok(None)` from `init` means "ignore" (OTP's `init` returning `ignore`): nothing starts and
    /// this returns `Ok(None)`. An error or a panic in `init` is [`StartError::Init`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let sup = canopy::Supervisor::start_with(None, || Ok(None)).await.unwrap();
    /// assert!(sup.is_none());
    /// # }
    /// ```
    pub async fn start_with<F>(
        parent: Option<ActorCell>,
        init: F,
    ) -> Result<Option<SupervisorRef>, StartError>
    where
        F: Fn() -> Result<Option<SupervisorSpec>, BoxError> + Send + Sync + 'static,
    {
        let path = match &parent {
            Some(parent) => child_path(parent, DEFAULT_NAME),
            None => format!("/{DEFAULT_NAME}"),
        };
        spawn(Source::With(Arc::new(init)), parent, path).await
    }
}

impl ChildSpec {
    /// A child supervisor whose spec comes from `init` at every (re)start; `Ok(None)` means the
    /// child ignores its start.
    ///
    /// ```
    /// use canopy::{ChildSpec, SupervisorSpec};
    /// let child = ChildSpec::supervisor_with("pool", || Ok(Some(SupervisorSpec::default())));
    /// assert_eq!(child.get_kind(), canopy::ChildKind::Supervisor);
    /// ```
    pub fn supervisor_with<F>(id: impl Into<String>, init: F) -> Self
    where
        F: Fn() -> Result<Option<SupervisorSpec>, BoxError> + Send + Sync + 'static,
    {
        let init: InitFn = Arc::new(init);
        let id: String = id.into();
        let name = id.clone();
        ChildSpec::new(id, move |sup| {
            let init = init.clone();
            let path = child_path(&sup, &name);
            async move {
                Ok(match spawn(Source::With(init), Some(sup), path).await? {
                    Some(child) => Start::from(child.cell()),
                    None => Start::Ignore,
                })
            }
        })
        .kind(crate::ChildKind::Supervisor)
    }
}

/// The name of a supervisor in paths when nothing names it.
const DEFAULT_NAME: &str = "root";

/// The path of a child `name` of the supervisor `parent` (just `/name` if `parent` is not one).
pub(crate) fn child_path(parent: &ActorCell, name: &str) -> String {
    format!("{}/{name}", introspect::path_of(parent).unwrap_or_default())
}

pub(crate) async fn spawn_child_supervisor(
    spec: SupervisorSpec,
    parent: ActorCell,
    id: &str,
) -> Result<SupervisorRef, StartError> {
    let path = child_path(&parent, id);
    spawn(Source::Spec(spec), Some(parent), path)
        .await?
        .ok_or_else(|| StartError::Init("ignored".into()))
}

async fn spawn(
    source: Source,
    parent: Option<ActorCell>,
    path: String,
) -> Result<Option<SupervisorRef>, StartError> {
    let init = SupervisorInit { source, path };
    let spawned = match parent {
        Some(parent) => Actor::spawn_linked(None, Supervisor, init, parent).await,
        None => Actor::spawn(None, Supervisor, init).await,
    };
    match spawned {
        Ok((actor, _)) => Ok(Some(SupervisorRef { actor })),
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

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorInit;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        init: SupervisorInit,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let SupervisorInit { source, path } = init;
        let spec = match source {
            Source::Spec(spec) => spec,
            Source::With(init) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init())) {
                    Ok(Ok(Some(spec))) => spec,
                    Ok(Ok(None)) => return Err(Box::new(Ignored)),
                    Ok(Err(e)) => return Err(Box::new(StartError::Init(e.to_string()))),
                    Err(panic) => {
                        return Err(Box::new(StartError::Init(format!(
                            "init panicked: {}",
                            panic_text(&panic)
                        ))))
                    }
                }
            }
        };
        let core = Core::new(&spec)
            .map_err(|e| -> ActorProcessingErr { Box::new(StartError::Spec(e)) })?;
        let node = Arc::new(introspect::Node::new(path, myself.get_cell(), core));
        // Registered before the children start, so that child supervisors find their parent's path.
        introspect::register(node.clone());
        let mut state = SupervisorState {
            node,
            last_info: None,
            timers: Vec::new(),
        };
        let first = state.core().init();
        let outcome = drive(&myself, &mut state, first).await;
        match outcome {
            Outcome::Ready => Ok(state),
            other => {
                introspect::unregister(&myself.get_id());
                match other {
                    Outcome::InitFailed { id, reason } => {
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
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match request {
            Request::StartChild(spec, reply) => {
                let cmd = state.core().start_child(spec);
                let result = run_call(&myself, state, cmd).await;
                let _ = reply.send(result.map(|cell| StartedChild {
                    cell,
                    info: state.last_info.take(),
                }));
            }
            Request::RestartChild(id, reply) => {
                let cmd = state.core().restart_child(&id);
                let result = run_call(&myself, state, cmd).await;
                let _ = reply.send(result.map(|cell| StartedChild {
                    cell,
                    info: state.last_info.take(),
                }));
            }
            Request::TerminateChild(id, reply) => {
                let cmd = state.core().terminate_child(&id);
                let result = run_call(&myself, state, cmd).await;
                let _ = reply.send(result.map(|_| ()));
            }
            Request::DeleteChild(id, reply) => {
                let _ = reply.send(state.core().delete_child(&id));
            }
            Request::WhichChildren(reply) => {
                let _ = reply.send(state.core().which_children());
            }
            Request::WhichChild(id, reply) => {
                let _ = reply.send(state.core().which_child(&id));
            }
            Request::CountChildren(reply) => {
                let counts = state
                    .core()
                    .count_children_alive(|cell| cell.get_status() < ActorStatus::Stopping);
                let _ = reply.send(counts);
            }
            Request::GetChildSpec(id, reply) => {
                let _ = reply.send(state.core().get_childspec(&id));
            }
            Request::Retry(id) => {
                let cmd = state.core().retry_due(&id, now());
                if let Some(cmd) = cmd {
                    let outcome = drive(&myself, state, cmd).await;
                    after(&myself, state, outcome);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = ExitReason::from_event(&event) else {
            return Ok(());
        };
        let cmd = state.core().child_exited(cell, reason.clone(), now());
        match cmd {
            Some(cmd) => {
                let outcome = drive(&myself, state, cmd).await;
                after(&myself, state, outcome);
            }
            None => tracing::debug!(
                target: "canopy::supervisor",
                supervisor = %myself.get_id(),
                actor = %cell.get_id(),
                %reason,
                "exit of an actor that is no longer a current child (already replaced or terminated)"
            ),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        for timer in state.timers.drain(..) {
            timer.abort();
        }
        // Ordered teardown must finish here: once post_stop returns, ractor kills whatever is still
        // linked, in no particular order.
        let running = state.core().has_running_children();
        if running {
            let cmd = state.core().shutdown(ExitReason::Shutdown);
            drive(&myself, state, cmd).await;
        }
        introspect::unregister(&myself.get_id());
        state.node.changed();
        Ok(())
    }
}

/// Carries out the core's commands until the operation is done, then logs its reports.
async fn drive(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    mut cmd: Command<ActorCell>,
) -> Outcome<ActorCell> {
    let sup = myself.get_cell();
    let mut timer = shutdown::ShutdownTimer::default();
    let outcome = loop {
        cmd = match cmd {
            Command::Start { spec } => {
                let result = run_start(&sup, || (spec.start)(sup.clone())).await;
                let result = result.map(|start| match start {
                    Start::Started { cell, info } => {
                        state.last_info = info;
                        Some(cell)
                    }
                    Start::Ignore => {
                        state.last_info = None;
                        None
                    }
                });
                state.core().started(result)
            }
            Command::Terminate { id, pid, shutdown } => {
                let reason = shutdown::terminate_timed(&pid, shutdown, &mut timer).await;
                log_stop(&state.node.path, &id, shutdown, reason.as_ref());
                state.core().terminated(reason)
            }
            Command::Done(outcome) => break outcome,
        };
    };
    state.node.changed();
    let reports = state.core().take_reports();
    for report in reports {
        log_report(&state.node.path, &report);
    }
    outcome
}

/// One line per child the supervisor stops, in the order it stops them: the audit trail of an
/// ordered shutdown. A kill the policy did not ask for is a warning at once; the `shutdown_error`
/// report follows when the operation ends.
pub(crate) fn log_stop(sup: &str, id: &str, policy: crate::Shutdown, reason: Option<&ExitReason>) {
    const T: &str = "canopy::supervisor";
    let path = format_args!("{sup}/{id}");
    match reason {
        Some(ExitReason::Killed) if policy != crate::Shutdown::BrutalKill => tracing::warn!(
            target: T, %path, reason = "killed", ?policy,
            "child stopped"
        ),
        Some(reason) => tracing::debug!(target: T, %path, %reason, "child stopped"),
        None => tracing::debug!(target: T, %path, reason = "exited by itself", "child stopped"),
    }
}

/// Drives an API call and extracts its reply.
async fn run_call(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    cmd: Command<ActorCell>,
) -> Result<Option<ActorCell>, ChildError> {
    match drive(myself, state, cmd).await {
        Outcome::Reply(result) => result,
        other => {
            after(myself, state, other);
            Err(ChildError::SupervisorDown)
        }
    }
}

/// What an operation leaves to do once it is over: a retry to queue, or the supervisor's own exit.
fn after(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    outcome: Outcome<ActorCell>,
) {
    match outcome {
        Outcome::Idle { retry: Some(retry) } => {
            // Behind everything already queued (spec §1.6), after the backoff delay if any. If the
            // mailbox is closed we are stopping and the retry no longer matters.
            if retry.after.is_zero() {
                let _ = myself.send_message(SupervisorMsg(Request::Retry(retry.id)));
            } else {
                log_backoff(&state.node.path, &retry.id, retry.after);
                state.timers.retain(|t| !t.is_finished());
                let timer =
                    myself.send_after(retry.after, move || SupervisorMsg(Request::Retry(retry.id)));
                state.timers.push(timer);
            }
        }
        Outcome::Exit(reason) => myself.get_cell().stop(Some(reason.encode())),
        _ => {}
    }
}

/// The time a core is given: tokio's clock, so that a paused test clock drives backoff and the
/// restart window alike, for static and dynamic supervisors.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A call to a supervisor actor, waiting with no time limit as OTP's API does; a supervisor that is
/// gone (or stops before it answers) is [`ChildError::SupervisorDown`](core::ChildError::SupervisorDown).
pub(crate) async fn ask<M: ractor::Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    request: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, ChildError> {
    match actor.call(request, None).await {
        Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
        _ => Err(ChildError::SupervisorDown),
    }
}

/// A restart put off by its backoff: logged when it is scheduled, so a crash loop being slowed down
/// shows in the logs with the delay it was given.
pub(crate) fn log_backoff(sup: &str, child: &str, delay: std::time::Duration) {
    tracing::warn!(
        target: "canopy::supervisor",
        supervisor = %sup,
        child = %child,
        delay_ms = delay.as_millis() as u64,
        "restart delayed by backoff"
    );
}

/// Runs a start function (`start` calls it and gives its future); makes sure the child is linked to
/// `sup`, and reads a name clash as `already_started`. A panic, in the call or in the future, is a
/// start failure, never the supervisor's own.
pub(crate) async fn run_start<F>(
    sup: &ActorCell,
    start: F,
) -> Result<Start, StartFailure<ActorCell>>
where
    F: FnOnce() -> futures::future::BoxFuture<'static, Result<Start, BoxError>>,
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
        let linked = cell
            .try_get_supervisor()
            .is_some_and(|s| s.get_id() == sup.get_id());
        if !linked {
            // The start function must link the child (OTP's contract); do it for it, since an
            // unlinked child's exit would never reach us.
            cell.link(sup.clone());
            if cell
                .try_get_supervisor()
                .is_none_or(|s| s.get_id() != sup.get_id())
            {
                return Err(StartFailure::Error(
                    "the child exited before it could be linked to its supervisor".into(),
                ));
            }
        }
    }
    Ok(start)
}

pub(crate) fn start_failure(err: BoxError) -> StartFailure<ActorCell> {
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

pub(crate) fn log_report(sup: &str, report: &Report) {
    const T: &str = "canopy::supervisor";
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

/// A reference to a running supervisor: the child management API (spec §1.10).
///
/// Every call waits for the supervisor, with no time limit, as OTP's do: a supervisor in the middle
/// of a long restart answers when it is done. A call to a supervisor that is gone returns
/// [`ChildError::SupervisorDown`](core::ChildError::SupervisorDown).
#[derive(Clone)]
pub struct SupervisorRef {
    actor: ActorRef<SupervisorMsg>,
}

impl fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SupervisorRef")
            .field(&self.actor.get_id())
            .finish()
    }
}

impl SupervisorRef {
    /// The supervisor behind `cell`, if `cell` is a canopy supervisor (for example a child
    /// supervisor's cell from `which_children`).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use canopy::{ChildSpec, Supervisor, SupervisorRef, SupervisorSpec};
    /// let root = Supervisor::start(
    ///     SupervisorSpec::default().child(ChildSpec::supervisor("inner", SupervisorSpec::default())),
    /// ).await.unwrap();
    /// let inner_cell = root.which_child("inner").await.unwrap().status.pid().cloned().unwrap();
    /// let inner = SupervisorRef::from_cell(inner_cell).expect("a supervisor");
    /// assert_eq!(inner.count_children().await.unwrap().specs, 0);
    /// assert!(SupervisorRef::from_cell(root.cell()).is_some());
    /// root.shutdown().await;
    /// # }
    /// ```
    pub fn from_cell(cell: ActorCell) -> Option<SupervisorRef> {
        (cell.get_type_id() == std::any::TypeId::of::<SupervisorMsg>()).then(|| SupervisorRef {
            actor: ActorRef::from(cell),
        })
    }

    /// The supervisor's cell, e.g. to link or monitor it.
    pub fn cell(&self) -> ActorCell {
        self.actor.get_cell()
    }

    /// The supervisor's actor id.
    pub fn id(&self) -> ActorId {
        self.actor.get_id()
    }

    async fn ask<T: Send + 'static>(
        &self,
        request: impl FnOnce(RpcReplyPort<T>) -> Request,
    ) -> Result<T, ChildError> {
        ask(&self.actor, |reply| SupervisorMsg(request(reply))).await
    }

    /// Adds a child and starts it; it becomes the last-started child.
    ///
    /// Errors: [`AlreadyStarted`](core::ChildError::AlreadyStarted) if the id runs (or the start
    /// function clashed with a registered name), [`AlreadyPresent`](core::ChildError::AlreadyPresent)
    /// if it exists but is not running, [`StartFailed`](core::ChildError::StartFailed) (nothing kept),
    /// [`Spec`](core::ChildError::Spec).
    pub async fn start_child(&self, spec: ChildSpec) -> Result<StartedChild, ChildError> {
        self.ask(|r| Request::StartChild(spec, r)).await?
    }

    /// Stops a child by its policy; its spec stays (a temporary child's is dropped). Calling it on a
    /// stopped child is `Ok`.
    pub async fn terminate_child(&self, id: &str) -> Result<(), ChildError> {
        let id = id.to_string();
        self.ask(|r| Request::TerminateChild(id, r)).await?
    }

    /// Starts a stopped child again (not counted against the restart budget).
    pub async fn restart_child(&self, id: &str) -> Result<StartedChild, ChildError> {
        let id = id.to_string();
        self.ask(|r| Request::RestartChild(id, r)).await?
    }

    /// Drops a stopped child's spec.
    pub async fn delete_child(&self, id: &str) -> Result<(), ChildError> {
        let id = id.to_string();
        self.ask(|r| Request::DeleteChild(id, r)).await?
    }

    /// Every child, most recently started first.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, ChildError> {
        self.ask(Request::WhichChildren).await
    }

    /// One child by id; [`NotFound`](core::ChildError::NotFound) if there is none.
    pub async fn which_child(&self, id: &str) -> Result<ChildInfo, ChildError> {
        let id = id.to_string();
        let key = id.clone();
        self.ask(|r| Request::WhichChild(key, r))
            .await?
            .ok_or(ChildError::NotFound(id))
    }

    /// Counts of specs, running children, supervisors and workers.
    pub async fn count_children(&self) -> Result<ChildCounts, ChildError> {
        self.ask(Request::CountChildren).await
    }

    /// A child's spec with every default filled in.
    pub async fn get_childspec(&self, id: &str) -> Result<ChildSpec, ChildError> {
        let id = id.to_string();
        let key = id.clone();
        self.ask(|r| Request::GetChildSpec(key, r))
            .await?
            .ok_or(ChildError::NotFound(id))
    }

    /// Stops the supervisor gracefully (its children in reverse start order) and waits until it is gone.
    pub async fn shutdown(&self) {
        self.stop_and_wait(ExitReason::Shutdown).await
    }

    /// Stops the supervisor with `reason` after its children, and waits until it is gone.
    pub async fn stop_and_wait(&self, reason: ExitReason) {
        let cell = self.actor.get_cell();
        cell.stop(Some(reason.encode()));
        cell.wait(None).await.ok();
    }

    /// Waits until the supervisor has exited, for whatever reason.
    pub async fn wait(&self) {
        self.actor.get_cell().wait(None).await.ok();
    }
}
