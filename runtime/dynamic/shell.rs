//! The dynamic supervisor actor: the ractor shell around [`DynCore`].
//!
//! It turns supervision events and API messages into core events and carries out the core's
//! commands: it runs the template's start function with each child's arguments, stops children
//! (one by one for `terminate_child`, all at once for a shutdown), queues retries through its own
//! mailbox (after the backoff delay, if any) and exits when the core says so.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;
use ractor::concurrency::JoinHandle;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, MessagingErr,
    RpcReplyPort, SpawnErr, SupervisionEvent,
};

use super::core::{DynCommand, DynCore, DynOutcome, DynRetry};
use super::{DynamicSpec, StartArgs};
use crate::core::{ChildCounts, StartFailure};
use crate::exit::ExitReason;
use crate::introspect;
use crate::shutdown;
use crate::spec::{ChildKind, ChildSpec, Shutdown, Start, StartInfo};
use crate::supervisor::{
    child_path, log_report, log_stop, run_start, ChildError, ChildInfo, StartError, StartedChild,
};

/// The name of a top-level dynamic supervisor in paths when its spec gives none.
const DEFAULT_NAME: &str = "dynamic";

/// The dynamic supervisor actor, for children started with arguments of type `A`. Start it with
/// [`DynamicSupervisor::start`]; talk to it through the [`DynamicRef`] it returns.
///
/// ```
/// use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
/// use canopy::{Start, Supervisor, SupervisorSpec};
/// # #[tokio::main] async fn main() {
/// let spec = DynamicSpec::new(|_sup, _job: u64| async { Ok(Start::Ignore) });
/// // Top level ...
/// let jobs = DynamicSupervisor::start(spec.clone()).await.unwrap();
/// // ... or linked to any actor, here a static supervisor.
/// let root = Supervisor::start(SupervisorSpec::default()).await.unwrap();
/// let more_jobs = DynamicSupervisor::start_linked(spec, root.cell()).await.unwrap();
/// jobs.shutdown().await;
/// more_jobs.shutdown().await;
/// root.shutdown().await;
/// # }
/// ```
pub struct DynamicSupervisor<A>(PhantomData<fn() -> A>);

/// The dynamic supervisor's mailbox. Opaque: use [`DynamicRef`].
///
/// ```
/// // Its only use from outside: naming the actor's type, e.g. in an `ActorRef`.
/// type JobsRef = ractor::ActorRef<canopy::dynamic::DynamicMsg<u64>>;
/// ```
pub struct DynamicMsg<A>(Request<A>);

enum Request<A> {
    StartChild(A, RpcReplyPort<Result<StartedChild, ChildError>>),
    TerminateChild(ActorCell, RpcReplyPort<Result<(), ChildError>>),
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    WhichChild(ActorCell, RpcReplyPort<Option<ChildInfo>>),
    CountChildren(RpcReplyPort<ChildCounts>),
    /// OTP's `try_again_restart`, or a backed-off restart whose time has come.
    Retry(u64),
}

#[doc(hidden)]
pub struct DynamicInit<A> {
    spec: DynamicSpec<A>,
    path: String,
}

/// The task that sends a backed-off retry when its delay is over.
type RetryTimer<A> = JoinHandle<Result<(), MessagingErr<DynamicMsg<A>>>>;

#[doc(hidden)]
pub struct DynamicState<A> {
    path: String,
    spec: DynamicSpec<A>,
    /// The decision state, shared with the introspection tree.
    core: Arc<Mutex<DynCore<ActorCell, A>>>,
    /// Info attached by the last start function, for the API reply.
    last_info: Option<StartInfo>,
    /// Backed-off restarts waiting for their time, so that a shutdown can cancel them.
    timers: HashMap<u64, RetryTimer<A>>,
    /// This supervisor's entry in the shared tree, whose change signal wakes waiting handles.
    node: Arc<introspect::DynNode>,
}

impl<A> DynamicState<A> {
    fn core(&self) -> parking_lot::MutexGuard<'_, DynCore<ActorCell, A>> {
        self.core.lock()
    }
}

impl<A: StartArgs> introspect::Children for Mutex<DynCore<ActorCell, A>> {
    fn which_children(&self) -> Vec<ChildInfo> {
        self.lock().which_children()
    }

    fn child_info(&self, key: u64) -> Option<ChildInfo> {
        self.lock().child_info(key)
    }
}

impl<A: StartArgs> DynamicSupervisor<A> {
    /// Starts an unlinked (top-level) dynamic supervisor, with no children.
    ///
    /// ```
    /// use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
    /// use canopy::{SpecError, StartError, Start};
    /// # #[tokio::main] async fn main() {
    /// let bad = DynamicSpec::new(|_sup, _n: u8| async { Ok(Start::Ignore) }).max_children(0);
    /// let err = DynamicSupervisor::start(bad).await.unwrap_err();
    /// assert_eq!(err, StartError::Spec(SpecError::ZeroMaxChildren));
    /// # }
    /// ```
    pub async fn start(spec: DynamicSpec<A>) -> Result<DynamicRef<A>, StartError> {
        let path = format!("/{}", spec.name.as_deref().unwrap_or(DEFAULT_NAME));
        spawn(spec, None, path).await
    }

    /// Starts a dynamic supervisor linked to `parent` (a supervisor's start function does this;
    /// [`ChildSpec::dynamic`] does it for you).
    pub async fn start_linked(
        spec: DynamicSpec<A>,
        parent: ActorCell,
    ) -> Result<DynamicRef<A>, StartError> {
        let name = spec.name.clone();
        let path = child_path(&parent, name.as_deref().unwrap_or(DEFAULT_NAME));
        spawn(spec, Some(parent), path).await
    }
}

impl ChildSpec {
    /// A dynamic supervisor as a child of a static one: kind `Supervisor`, shutdown `Infinity`,
    /// registered in the introspection tree under `id`. Reach its API with
    /// [`DynamicRef::from_cell`] on the cell `which_child` gives.
    ///
    /// ```
    /// use canopy::dynamic::{DynamicRef, DynamicSpec};
    /// use canopy::{ChildSpec, Start, Supervisor, SupervisorSpec};
    /// # #[tokio::main] async fn main() {
    /// let pool = DynamicSpec::new(|_sup, _job: u64| async { Ok(Start::Ignore) });
    /// let root = Supervisor::start(SupervisorSpec::default().child(ChildSpec::dynamic("pool", pool)))
    ///     .await
    ///     .unwrap();
    /// let cell = root.which_child("pool").await.unwrap().status.pid().cloned().unwrap();
    /// let pool: DynamicRef<u64> = DynamicRef::from_cell(cell).expect("a dynamic supervisor of u64");
    /// assert_eq!(pool.count_children().await.unwrap().specs, 1);
    /// root.shutdown().await;
    /// # }
    /// ```
    pub fn dynamic<A: StartArgs>(id: impl Into<String>, spec: DynamicSpec<A>) -> ChildSpec {
        let id: String = id.into();
        let name = id.clone();
        ChildSpec::new(id, move |sup: ActorCell| {
            let spec = spec.clone();
            let path = child_path(&sup, &name);
            async move {
                let child = spawn(spec, Some(sup), path).await?;
                Ok(Start::from(child.cell()))
            }
        })
        .kind(ChildKind::Supervisor)
    }
}

async fn spawn<A: StartArgs>(
    spec: DynamicSpec<A>,
    parent: Option<ActorCell>,
    path: String,
) -> Result<DynamicRef<A>, StartError> {
    let init = DynamicInit { spec, path };
    let me = DynamicSupervisor::<A>(PhantomData);
    let spawned = match parent {
        Some(parent) => Actor::spawn_linked(None, me, init, parent).await,
        None => Actor::spawn(None, me, init).await,
    };
    match spawned {
        Ok((actor, _)) => Ok(DynamicRef { actor }),
        Err(SpawnErr::StartupFailed(err)) => match err.downcast::<StartError>() {
            Ok(e) => Err(*e),
            Err(other) => Err(StartError::Init(other.to_string())),
        },
        Err(other) => Err(StartError::Spawn(other.to_string())),
    }
}

impl<A: StartArgs> Actor for DynamicSupervisor<A> {
    type Msg = DynamicMsg<A>;
    type State = DynamicState<A>;
    type Arguments = DynamicInit<A>;

    async fn pre_start(
        &self,
        myself: ActorRef<DynamicMsg<A>>,
        init: DynamicInit<A>,
    ) -> Result<DynamicState<A>, ActorProcessingErr> {
        let DynamicInit { spec, path } = init;
        let core = DynCore::new(&spec)
            .map_err(|e| -> ActorProcessingErr { Box::new(StartError::Spec(e)) })?;
        let core = Arc::new(Mutex::new(core));
        let node = Arc::new(introspect::DynNode {
            path: path.clone(),
            cell: myself.get_cell(),
            children: core.clone(),
            changes: tokio::sync::watch::Sender::new(0),
        });
        introspect::register_dynamic(node.clone());
        Ok(DynamicState {
            path,
            spec,
            core,
            last_info: None,
            timers: HashMap::new(),
            node,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DynamicMsg<A>>,
        DynamicMsg(request): DynamicMsg<A>,
        state: &mut DynamicState<A>,
    ) -> Result<(), ActorProcessingErr> {
        match request {
            Request::StartChild(args, reply) => {
                let cmd = state.core().start_child(args);
                let result = run_call(&myself, state, cmd).await;
                let _ = reply.send(result.map(|cell| StartedChild {
                    cell,
                    info: state.last_info.take(),
                }));
            }
            Request::TerminateChild(cell, reply) => {
                let alive = cell.get_status() != ActorStatus::Stopped;
                let cmd = state.core().terminate_child(&cell, alive);
                let result = run_call(&myself, state, cmd).await;
                let _ = reply.send(result.map(|_| ()));
            }
            Request::WhichChildren(reply) => {
                let _ = reply.send(state.core().which_children());
            }
            Request::WhichChild(cell, reply) => {
                let _ = reply.send(state.core().which_child(&cell));
            }
            Request::CountChildren(reply) => {
                let _ = reply.send(state.core().count_children());
            }
            Request::Retry(key) => {
                state.timers.remove(&key);
                let now = crate::supervisor::now();
                let cmd = state.core().retry_due(key, now);
                match cmd {
                    Some(cmd) => {
                        let outcome = drive(&myself, state, cmd).await;
                        after(&myself, state, outcome);
                    }
                    None => tracing::debug!(
                        target: "canopy::supervisor",
                        supervisor = %state.path,
                        child = key,
                        "retry of a child that is no longer waiting for one (terminated)"
                    ),
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<DynamicMsg<A>>,
        event: SupervisionEvent,
        state: &mut DynamicState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = ExitReason::from_event(&event) else {
            return Ok(());
        };
        let cmd = state
            .core()
            .child_exited(cell, reason.clone(), crate::supervisor::now());
        match cmd {
            Some(cmd) => {
                let outcome = drive(&myself, state, cmd).await;
                after(&myself, state, outcome);
            }
            None => tracing::debug!(
                target: "canopy::supervisor",
                supervisor = %state.path,
                actor = %cell.get_id(),
                %reason,
                "exit of an actor that is no longer a current child (already replaced or terminated)"
            ),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<DynamicMsg<A>>,
        state: &mut DynamicState<A>,
    ) -> Result<(), ActorProcessingErr> {
        for (_, timer) in state.timers.drain() {
            timer.abort();
        }
        let pending = state.core().pending_restarts();
        if pending > 0 {
            tracing::info!(
                target: "canopy::supervisor",
                supervisor = %state.path,
                children = pending,
                "shutting down: restarts still pending are cancelled"
            );
        }
        // Parallel teardown must finish here: once post_stop returns, ractor kills whatever is
        // still linked.
        let cmd = state.core().shutdown(ExitReason::Shutdown);
        drive(&myself, state, cmd).await;
        introspect::unregister(&myself.get_id());
        state.node.changed();
        Ok(())
    }
}

/// Carries out the core's commands until the operation is done, then logs its reports.
async fn drive<A: StartArgs>(
    myself: &ActorRef<DynamicMsg<A>>,
    state: &mut DynamicState<A>,
    mut cmd: DynCommand<ActorCell, A>,
) -> DynOutcome<ActorCell> {
    let sup = myself.get_cell();
    let outcome = loop {
        cmd = match cmd {
            DynCommand::Start { args, .. } => {
                let start = state.spec.start.clone();
                let result = run_start(&sup, || start(sup.clone(), args)).await;
                let result: Result<Option<ActorCell>, StartFailure<ActorCell>> =
                    result.map(|start| match start {
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
            DynCommand::Terminate { key, pid, shutdown } => {
                let reason = shutdown::terminate(&pid, shutdown).await;
                log_stop(&state.path, &key.to_string(), shutdown, reason.as_ref());
                state.core().terminated(reason)
            }
            DynCommand::TerminateAll { children } => {
                let cells: Vec<(ActorCell, Shutdown)> = children
                    .iter()
                    .map(|(_, cell, policy)| (cell.clone(), *policy))
                    .collect();
                let reasons = shutdown::terminate_all(&cells).await;
                let results = children
                    .into_iter()
                    .zip(reasons)
                    .map(|((key, _, policy), reason)| {
                        log_stop(&state.path, &key.to_string(), policy, reason.as_ref());
                        (key, reason)
                    })
                    .collect();
                state.core().terminated_all(results)
            }
            DynCommand::Done(outcome) => break outcome,
        };
    };
    state.node.changed();
    let reports = state.core().take_reports();
    for report in reports {
        log_report(&state.path, &report);
    }
    outcome
}

/// Drives an API call and extracts its reply.
async fn run_call<A: StartArgs>(
    myself: &ActorRef<DynamicMsg<A>>,
    state: &mut DynamicState<A>,
    cmd: DynCommand<ActorCell, A>,
) -> Result<Option<ActorCell>, ChildError> {
    match drive(myself, state, cmd).await {
        DynOutcome::Reply(result) => result,
        other => {
            after(myself, state, other);
            Err(ChildError::SupervisorDown)
        }
    }
}

/// What an operation leaves to do once it is over: a retry to queue, or the supervisor's own exit.
fn after<A: StartArgs>(
    myself: &ActorRef<DynamicMsg<A>>,
    state: &mut DynamicState<A>,
    outcome: DynOutcome<ActorCell>,
) {
    match outcome {
        DynOutcome::Idle {
            retry: Some(DynRetry { key, after }),
        } => {
            if after.is_zero() {
                // Behind everything already queued (spec §1.6).
                if myself
                    .send_message(DynamicMsg(Request::Retry(key)))
                    .is_err()
                {
                    tracing::debug!(
                        target: "canopy::supervisor",
                        supervisor = %state.path,
                        child = key,
                        "retry dropped: the supervisor is stopping"
                    );
                }
            } else {
                crate::supervisor::log_backoff(&state.path, &key.to_string(), after);
                let timer = myself.send_after(after, move || DynamicMsg(Request::Retry(key)));
                state.timers.insert(key, timer);
            }
        }
        DynOutcome::Exit(reason) => myself.get_cell().stop(Some(reason.encode())),
        DynOutcome::Idle { retry: None } | DynOutcome::Reply(_) => {}
    }
}

/// A reference to a running dynamic supervisor whose children take arguments of type `A`: the
/// child management API (spec §1.10, simple rows).
///
/// Every call waits for the supervisor, with no time limit, as OTP's do. A call to a supervisor
/// that is gone returns [`SupervisorDown`](crate::core::ChildError::SupervisorDown).
///
/// ```
/// use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
/// use canopy::ChildError;
/// # #[derive(Clone)] struct Job;
/// # impl ractor::Actor for Job {
/// #     type Msg = (); type State = (); type Arguments = u64;
/// #     async fn pre_start(&self, _: ractor::ActorRef<()>, _: u64) -> Result<(), ractor::ActorProcessingErr> { Ok(()) }
/// # }
/// # #[tokio::main] async fn main() -> Result<(), ChildError> {
/// let jobs = DynamicSupervisor::start(DynamicSpec::actor(Job)).await.unwrap();
/// let job = jobs.start_child(17).await?.cell.expect("started");
/// assert_eq!(jobs.which_children().await?.len(), 1);
/// jobs.terminate_child(&job).await?;                   // stopped and forgotten
/// assert_eq!(jobs.count_children().await?.active, 0);
/// jobs.shutdown().await;
/// assert_eq!(jobs.count_children().await, Err(ChildError::SupervisorDown));
/// # Ok(()) }
/// ```
pub struct DynamicRef<A> {
    actor: ActorRef<DynamicMsg<A>>,
}

impl<A> Clone for DynamicRef<A> {
    fn clone(&self) -> Self {
        DynamicRef {
            actor: self.actor.clone(),
        }
    }
}

impl<A> fmt::Debug for DynamicRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DynamicRef")
            .field(&self.actor.get_id())
            .finish()
    }
}

impl<A: StartArgs> DynamicRef<A> {
    /// The dynamic supervisor behind `cell`, if `cell` is one whose children take `A`.
    ///
    /// ```
    /// use canopy::dynamic::{DynamicRef, DynamicSpec, DynamicSupervisor};
    /// use canopy::Start;
    /// # #[tokio::main] async fn main() {
    /// let sup = DynamicSupervisor::start(DynamicSpec::new(|_s, _a: String| async { Ok(Start::Ignore) }))
    ///     .await
    ///     .unwrap();
    /// assert!(DynamicRef::<String>::from_cell(sup.cell()).is_some());
    /// assert!(DynamicRef::<u32>::from_cell(sup.cell()).is_none()); // other argument type
    /// sup.shutdown().await;
    /// # }
    /// ```
    pub fn from_cell(cell: ActorCell) -> Option<DynamicRef<A>> {
        (cell.get_type_id() == std::any::TypeId::of::<DynamicMsg<A>>()).then(|| DynamicRef {
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
        request: impl FnOnce(RpcReplyPort<T>) -> Request<A>,
    ) -> Result<T, ChildError> {
        crate::supervisor::ask(&self.actor, |reply| DynamicMsg(request(reply))).await
    }

    /// Starts a child with `args` (kept for its restarts unless the template is temporary).
    ///
    /// `Ok` with `cell: None` when the start function ignored (nothing is kept). Errors, with
    /// nothing kept: [`StartFailed`](crate::core::ChildError::StartFailed) carrying the start
    /// function's own reason, [`AlreadyStarted`](crate::core::ChildError::AlreadyStarted) on a
    /// name clash, [`MaxChildren`](crate::core::ChildError::MaxChildren).
    ///
    /// ```
    /// use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
    /// use canopy::{ChildError, Start};
    /// # #[tokio::main] async fn main() {
    /// let sup = DynamicSupervisor::start(DynamicSpec::new(|_sup, ok: bool| async move {
    ///     if ok { Ok(Start::Ignore) } else { Err("refused".into()) }
    /// }))
    /// .await
    /// .unwrap();
    /// assert!(sup.start_child(true).await.unwrap().cell.is_none());
    /// assert!(matches!(
    ///     sup.start_child(false).await,
    ///     Err(ChildError::StartFailed { reason, .. }) if reason == "refused"
    /// ));
    /// sup.shutdown().await;
    /// # }
    /// ```
    pub async fn start_child(&self, args: A) -> Result<StartedChild, ChildError> {
        self.ask(|r| Request::StartChild(args, r)).await?
    }

    /// Stops a child by the template's policy and forgets it. A restarting child, named by its
    /// last cell, leaves its restart loop. `Ok` for an actor that is already dead;
    /// [`NotFound`](crate::core::ChildError::NotFound) for a live actor that is not a child.
    pub async fn terminate_child(&self, child: &ActorCell) -> Result<(), ChildError> {
        let child = child.clone();
        self.ask(|r| Request::TerminateChild(child, r)).await?
    }

    /// Every child, newest first, restarting ones included; a child's `id` is its internal key.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, ChildError> {
        self.ask(Request::WhichChildren).await
    }

    /// One child by its cell (a restarting child by its last cell);
    /// [`NotFound`](crate::core::ChildError::NotFound) if it is not a child.
    pub async fn which_child(&self, child: &ActorCell) -> Result<ChildInfo, ChildError> {
        let cell = child.clone();
        self.ask(|r| Request::WhichChild(cell, r))
            .await?
            .ok_or_else(|| ChildError::NotFound(format!("{:?}", child)))
    }

    /// OTP's counts for a dynamic supervisor: `specs` 1, `active` the running children,
    /// `workers`/`supervisors` every child (restarting ones too) by the template's kind.
    pub async fn count_children(&self) -> Result<ChildCounts, ChildError> {
        self.ask(Request::CountChildren).await
    }

    /// Stops the supervisor gracefully (every child at once, each by its policy) and waits until it
    /// is gone.
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
