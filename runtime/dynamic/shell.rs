//! The dynamic behaviour: [`DynCore`] seen by the supervisor shell, [`DynamicSupervisor`] and
//! [`DynamicRef`].
//!
//! The shell (shared with static supervisors) runs the template's start function with each child's
//! arguments, stops children (one for `terminate_child`, all at once for a shutdown) and queues
//! retries; every decision is the core's.

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use ractor::{ActorCell, ActorStatus};

use super::core::{DynCommand, DynCore, DynOutcome};
use super::{DynamicSpec, StartArgs};
use crate::core::{ChildError, ChildInfo, Report, StartFailure};
use crate::exit::ExitReason;
use crate::introspect;
use crate::shell::{
    self, AnySupervisorRef, Api, Behaviour, Cmd, Done, Init, Query, Request, RetryAt, RetryKey,
    StartError, StartedChild,
};
use crate::spec::{BoxError, ChildKind, ChildSpec, Start};

/// The name of a top-level dynamic supervisor in paths when its spec gives none.
const DEFAULT_NAME: &str = "dynamic";

/// Dynamic supervisors, for children started with arguments of type `A`. Start one with
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

/// The dynamic behaviour: a [`DynCore`] and the template's start function.
pub(crate) struct Dynamic<A> {
    spec: DynamicSpec<A>,
    core: Arc<Mutex<DynCore<ActorCell, A>>>,
}

impl<A: StartArgs> introspect::Children for Mutex<DynCore<ActorCell, A>> {
    fn which_children(&self) -> Vec<ChildInfo> {
        self.lock().which_children()
    }

    fn visit(&self, visit: &mut dyn FnMut(usize, &crate::core::ChildView<'_>)) {
        let core = self.lock();
        let count = core.child_count();
        core.visit_children(|child| visit(count, child));
    }

    fn child(&self, id: &str) -> Option<ChildInfo> {
        let key = id.parse::<u64>().ok()?;
        self.lock().child_info(key)
    }

    fn exiting(&self) -> bool {
        self.lock().is_exiting()
    }

    fn record_killed(&self, now: std::time::Instant) {
        self.lock().record_killed(now);
    }

    fn budget(&self, now: std::time::Instant) -> crate::core::Budget {
        self.lock().budget(now)
    }
}

impl<A: StartArgs> Dynamic<A> {
    /// A dynamic core's command in the shell's terms.
    fn cmd(&self, command: DynCommand<ActorCell, A>) -> Cmd<A> {
        match command {
            DynCommand::Start { args, .. } => Cmd::Start(args),
            DynCommand::Terminate { key, pid, shutdown } => Cmd::Terminate {
                id: key.to_string(),
                pid,
                shutdown,
            },
            DynCommand::TerminateAll { children } => Cmd::TerminateAll(children),
            DynCommand::Done(outcome) => Cmd::Done(match outcome {
                DynOutcome::Idle { retry } => Done::Idle(retry.map(|r| RetryAt {
                    key: RetryKey::Key(r.key),
                    after: r.after,
                    generation: r.generation,
                })),
                DynOutcome::Exit(reason) => Done::Exit(reason),
                DynOutcome::Reply(result) => Done::Reply(result),
            }),
        }
    }
}

impl<A: StartArgs> Behaviour for Dynamic<A> {
    type Job = A;

    fn starts_supervisor(&self, _: &A) -> bool {
        self.spec.kind == ChildKind::Supervisor
    }

    fn start(&self, args: A, sup: ActorCell) -> BoxFuture<'static, Result<Start, BoxError>> {
        (self.spec.start)(sup, args)
    }

    fn tick(&self, now: std::time::Instant) {
        self.core.lock().tick(now);
    }

    fn init(&self) -> Cmd<A> {
        // A dynamic supervisor starts with no children.
        Cmd::Done(Done::Ready)
    }

    fn child_exited(
        &self,
        pid: &ActorCell,
        reason: ExitReason,
        now: std::time::Instant,
    ) -> Option<Cmd<A>> {
        let command = self.core.lock().child_exited(pid, reason, now)?;
        Some(self.cmd(command))
    }

    fn retry_due(
        &self,
        key: &RetryKey,
        generation: u64,
        now: std::time::Instant,
    ) -> Option<Cmd<A>> {
        let RetryKey::Key(key) = key else { return None };
        let command = self.core.lock().retry_due(*key, generation, now)?;
        Some(self.cmd(command))
    }

    fn shutdown(&self, reason: ExitReason) -> Cmd<A> {
        let command = self.core.lock().shutdown(reason);
        self.cmd(command)
    }

    fn started(&self, result: Result<Option<ActorCell>, StartFailure>) -> Cmd<A> {
        let command = self.core.lock().started(result);
        self.cmd(command)
    }

    fn terminated(&self, reason: Option<ExitReason>) -> Cmd<A> {
        let command = self.core.lock().terminated(reason);
        self.cmd(command)
    }

    fn terminated_all(&self, results: Vec<(u64, Option<ExitReason>)>) -> Cmd<A> {
        let command = self.core.lock().terminated_all(results);
        self.cmd(command)
    }

    fn api(&self, call: Api, now: std::time::Instant) -> Cmd<A> {
        let mut core = self.core.lock();
        core.tick(now);
        let command = match call {
            Api::StartArgs(args) => match args.downcast::<A>() {
                Ok(args) => core.start_child(*args),
                Err(_) => {
                    return Cmd::Done(Done::Reply(Err(ChildError::NotFound(
                        "a child with arguments of another type".into(),
                    ))))
                }
            },
            Api::TerminateCell(cell) => {
                let alive = cell.get_status() != ActorStatus::Stopped;
                core.terminate_child(&cell, alive)
            }
            Api::StartSpec(spec) => {
                return Cmd::Done(Done::Reply(Err(ChildError::NotFound(format!(
                    "{} (a dynamic supervisor takes no child specs)",
                    spec.id()
                )))))
            }
            Api::TerminateId(id) | Api::RestartId(id) => {
                return Cmd::Done(Done::Reply(Err(ChildError::NotFound(id))))
            }
        };
        drop(core);
        self.cmd(command)
    }

    fn query(&self, query: Query) {
        let core = self.core.lock();
        match query {
            Query::WhichChildren(reply) => {
                let _ = reply.send(core.which_children());
            }
            Query::WhichChildCell(cell, reply) => {
                let _ = reply.send(core.which_child(&cell));
            }
            Query::WhichChildId(id, reply) => {
                let _ = reply.send(id.parse::<u64>().ok().and_then(|k| core.child_info(k)));
            }
            Query::CountChildren(reply) => {
                let _ = reply.send(core.count_children());
            }
            Query::GetChildSpec(_, reply) => {
                let _ = reply.send(None);
            }
            Query::DeleteChild(id, reply) => {
                let _ = reply.send(Err(ChildError::NotFound(id)));
            }
        }
    }

    fn take_reports(&self) -> Vec<Report> {
        self.core.lock().take_reports()
    }

    fn has_running_children(&self) -> bool {
        self.core.lock().has_running_children()
    }

    fn pending_restarts(&self) -> usize {
        self.core.lock().pending_restarts()
    }
}

/// `named`: as for static supervisors, a clash of a chosen name is an error and an unnamed
/// supervisor takes the next free path.
async fn spawn<A: StartArgs>(
    spec: DynamicSpec<A>,
    parent: Option<ActorCell>,
    path: String,
    named: bool,
) -> Result<DynamicRef<A>, StartError> {
    let init = Init {
        path,
        named,
        make: Box::new(move || {
            let core = DynCore::new(&spec).map_err(StartError::Spec)?;
            Ok(Some(Dynamic {
                spec,
                core: Arc::new(Mutex::new(core)),
            }))
        }),
        children: |b: &Dynamic<A>| b.core.clone(),
        args: Some(TypeId::of::<A>()),
        abort: None,
    };
    match shell::spawn(init, parent).await? {
        Some(inner) => Ok(DynamicRef {
            inner,
            _args: PhantomData,
        }),
        None => Err(StartError::Init("ignored".into())),
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
        let named = spec.name.is_some();
        let path = format!("/{}", spec.name.as_deref().unwrap_or(DEFAULT_NAME));
        spawn(spec, None, path, named).await
    }

    /// Starts a dynamic supervisor linked to `parent` (a supervisor's start function does this;
    /// [`ChildSpec::dynamic`] does it for you).
    ///
    /// ```
    /// use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
    /// use canopy::{Start, Supervisor, SupervisorSpec};
    /// # #[tokio::main] async fn main() {
    /// let root = Supervisor::start(SupervisorSpec::default()).await.unwrap();
    /// let spec = DynamicSpec::new(|_sup, _job: u64| async { Ok(Start::Ignore) });
    /// let jobs = DynamicSupervisor::start_linked(spec, root.cell()).await.unwrap();
    /// root.shutdown().await;
    /// jobs.wait().await;
    /// # }
    /// ```
    pub async fn start_linked(
        spec: DynamicSpec<A>,
        parent: ActorCell,
    ) -> Result<DynamicRef<A>, StartError> {
        let name = spec.name.clone();
        let path = shell::child_path(&parent, name.as_deref().unwrap_or(DEFAULT_NAME));
        spawn(spec, Some(parent), path, name.is_some()).await
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
            let path = shell::child_path(&sup, &name);
            async move {
                let child = spawn(spec, Some(sup), path, true).await?;
                Ok(Start::from(child.cell()))
            }
        })
        .kind(ChildKind::Supervisor)
    }
}

/// A reference to a running dynamic supervisor whose children take arguments of type `A`: the
/// child management API. The methods every supervisor has (`which_children`, `count_children`,
/// `shutdown`, `cell`, …) come from [`AnySupervisorRef`], which it dereferences to.
///
/// Every call waits for the supervisor, with no time limit, as OTP's do. A call to a supervisor
/// that is gone returns [`ChildError::SupervisorDown`].
///
/// ```
/// use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
/// use canopy::ChildError;
/// # #[derive(Clone)] struct Job;
/// # impl canopy::ractor::Actor for Job {
/// #     type Msg = (); type State = (); type Arguments = u64;
/// #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: u64) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
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
    inner: AnySupervisorRef,
    _args: PhantomData<fn(A)>,
}

impl<A> Clone for DynamicRef<A> {
    fn clone(&self) -> Self {
        DynamicRef {
            inner: self.inner.clone(),
            _args: PhantomData,
        }
    }
}

impl<A> Deref for DynamicRef<A> {
    type Target = AnySupervisorRef;

    fn deref(&self) -> &AnySupervisorRef {
        &self.inner
    }
}

impl<A> fmt::Debug for DynamicRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
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
        let node = introspect::node(&cell.get_id())?;
        if node.args != Some(TypeId::of::<A>()) {
            return None;
        }
        AnySupervisorRef::from_cell(cell).map(|inner| DynamicRef {
            inner,
            _args: PhantomData,
        })
    }

    /// Starts a child with `args` (kept for its restarts unless the template is temporary).
    ///
    /// `Ok` with `cell: None` when the start function ignored (nothing is kept). Errors, with
    /// nothing kept: [`StartFailed`](ChildError::StartFailed) carrying the start function's own
    /// reason, [`AlreadyStarted`](ChildError::AlreadyStarted) on a name clash,
    /// [`MaxChildren`](ChildError::MaxChildren).
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
        self.inner
            .call_started(Api::StartArgs(Box::new(args)))
            .await
    }

    /// Stops a child by the template's policy and forgets it. A restarting child, named by its
    /// last cell, leaves its restart loop. `Ok` for an actor that is already dead;
    /// [`NotFound`](ChildError::NotFound) for a live actor that is not a child.
    ///
    /// ```
    /// # async fn demo(pool: canopy::DynamicRef<u64>, conn: canopy::ractor::ActorCell) -> Result<(), canopy::ChildError> {
    /// pool.terminate_child(&conn).await?;
    /// # Ok(()) }
    /// ```
    pub async fn terminate_child(&self, child: &ActorCell) -> Result<(), ChildError> {
        self.inner
            .call_unit(Api::TerminateCell(child.clone()))
            .await
    }

    /// One child by its cell (a restarting child by its last cell);
    /// [`NotFound`](ChildError::NotFound) if it is not a child.
    ///
    /// ```
    /// # async fn demo(pool: canopy::DynamicRef<u64>, conn: canopy::ractor::ActorCell) -> Result<(), canopy::ChildError> {
    /// let info = pool.which_child(&conn).await?;
    /// println!("child {} restarted {} times", info.id, info.restarts);
    /// # Ok(()) }
    /// ```
    pub async fn which_child(&self, child: &ActorCell) -> Result<ChildInfo, ChildError> {
        let cell = child.clone();
        self.inner
            .ask(|r| Request::Query(Query::WhichChildCell(cell, r)))
            .await?
            .ok_or_else(|| ChildError::NotFound(format!("actor {}", child.get_id())))
    }
}
