//! Static supervisors: a fixed list of children, started in order, restarted by strategy, stopped
//! in reverse order.
//!
//! The decisions are [`core`](crate::core)'s; the actor that carries them out is the supervisor
//! shell shared with dynamic supervisors, which records the reason each child really exited with.
//!
//! - **Start** is synchronous: [`Supervisor::start`] returns once every child's `pre_start` is done, in
//!   spec order. If one fails, the ones already started are stopped in reverse order and the start
//!   fails with [`StartError::ChildFailed`] naming the child.
//! - **Stop**: stopping the supervisor ([`shutdown`](AnySupervisorRef::shutdown), its own supervisor
//!   terminating it, an app's teardown, or a plain ractor `stop`) stops its children one at a time in
//!   reverse start order, each by its policy, before the supervisor itself finishes; ractor's own
//!   teardown, which kills linked children in no order, never sees a live child.
//! - **Kill** skips all of that: the whole subtree is killed.
//!
//! ```
//! use canopy::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
//! # #[derive(Clone)] struct Worker;
//! # impl canopy::ractor::Actor for Worker {
//! #     type Msg = (); type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: ()) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
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
use std::ops::Deref;
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use ractor::{ActorCell, ActorStatus};

use crate::core::{
    AwaitedExit, ChildError, ChildInfo, Command, Core, Outcome, Report, StartFailure,
};
use crate::exit::ExitReason;
use crate::introspect;
use crate::shell::{
    self, AnySupervisorRef, Api, Behaviour, Cmd, Done, Init, Query, RetryAt, RetryKey, StartError,
    StartedChild,
};
use crate::spec::{BoxError, ChildKind, ChildSpec, Start, SupervisorSpec};

/// An init function: decides the supervisor's spec when it starts (and at every restart when it is a
/// child). `Ok(None)` is OTP's `ignore`: the supervisor does not start.
pub type InitFn = Arc<dyn Fn() -> Result<Option<SupervisorSpec>, BoxError> + Send + Sync>;

/// Static supervisors: start one with [`Supervisor::start`] and talk to it through the
/// [`SupervisorRef`] it returns.
pub struct Supervisor;

/// Where a static supervisor's spec comes from.
enum Source {
    Spec(SupervisorSpec),
    With(InitFn),
}

/// The static behaviour: [`Core`] seen by the shell.
pub(crate) struct Static {
    core: Arc<Mutex<Core<ActorCell>>>,
}

impl introspect::Children for Mutex<Core<ActorCell>> {
    fn which_children(&self) -> Vec<ChildInfo> {
        self.lock().which_children()
    }

    fn visit(&self, visit: &mut dyn FnMut(usize, &crate::core::ChildView<'_>)) {
        let core = self.lock();
        let count = core.child_count();
        core.visit_children(|child| visit(count, child));
    }

    fn child(&self, id: &str) -> Option<ChildInfo> {
        self.lock().which_child(id)
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

/// A static core's command in the shell's terms.
fn cmd(command: Command<ActorCell>) -> Cmd<Arc<ChildSpec>> {
    match command {
        Command::Start { spec } => Cmd::Start(spec),
        Command::Terminate { id, pid, shutdown } => Cmd::Terminate { id, pid, shutdown },
        Command::Done(outcome) => Cmd::Done(match outcome {
            Outcome::Ready => Done::Ready,
            Outcome::InitFailed { id, reason } => Done::InitFailed { id, reason },
            Outcome::Idle { retry } => Done::Idle(retry.map(|r| RetryAt {
                key: RetryKey::Id(r.id),
                after: r.after,
                generation: r.generation,
            })),
            Outcome::Exit(reason) => Done::Exit(reason),
            Outcome::Reply(result) => Done::Reply(result),
        }),
    }
}

fn reply(result: Result<Option<ActorCell>, ChildError>) -> Cmd<Arc<ChildSpec>> {
    Cmd::Done(Done::Reply(result))
}

impl Behaviour for Static {
    type Job = Arc<ChildSpec>;

    fn starts_supervisor(&self, spec: &Arc<ChildSpec>) -> bool {
        spec.kind == ChildKind::Supervisor
    }

    fn start(
        &self,
        spec: Arc<ChildSpec>,
        sup: ActorCell,
    ) -> BoxFuture<'static, Result<Start, BoxError>> {
        (spec.start)(sup)
    }

    fn tick(&self, now: std::time::Instant) {
        self.core.lock().tick(now);
    }

    fn init(&self) -> Cmd<Self::Job> {
        cmd(self.core.lock().init())
    }

    fn child_exited(
        &self,
        pid: &ActorCell,
        reason: ExitReason,
        now: std::time::Instant,
    ) -> Option<Cmd<Self::Job>> {
        self.core.lock().child_exited(pid, reason, now).map(cmd)
    }

    fn retry_due(
        &self,
        key: &RetryKey,
        generation: u64,
        now: std::time::Instant,
    ) -> Option<Cmd<Self::Job>> {
        let RetryKey::Id(id) = key else { return None };
        self.core.lock().retry_due(id, generation, now).map(cmd)
    }

    fn shutdown(&self, reason: ExitReason) -> Cmd<Self::Job> {
        cmd(self.core.lock().shutdown(reason))
    }

    fn started(&self, result: Result<Option<ActorCell>, StartFailure>) -> Cmd<Self::Job> {
        cmd(self.core.lock().started(result))
    }

    fn terminated(&self, reason: Option<ExitReason>) -> Cmd<Self::Job> {
        cmd(self.core.lock().terminated(reason))
    }

    fn stops_inline(&self) -> bool {
        self.core.lock().in_restart_round()
    }

    fn terminated_later(&self, seen: Option<ExitReason>) -> Cmd<Self::Job> {
        cmd(self.core.lock().terminated_later(seen))
    }

    fn stopped_with(&self, pid: &ActorCell, reason: &ExitReason) -> Option<AwaitedExit> {
        self.core.lock().stopped_with(pid, reason.clone())
    }

    fn settle_stopped(&self) -> Vec<AwaitedExit> {
        self.core.lock().settle_stopped()
    }

    fn terminated_all(&self, _results: Vec<(u64, Option<ExitReason>)>) -> Cmd<Self::Job> {
        // A static core stops its children one at a time and never asks for this.
        Cmd::Done(Done::Idle(None))
    }

    fn api(&self, call: Api, now: std::time::Instant) -> Cmd<Self::Job> {
        let mut core = self.core.lock();
        core.tick(now);
        match call {
            Api::StartSpec(spec) => cmd(core.start_child_shared(spec)),
            Api::TerminateId(id) => cmd(core.terminate_child(&id)),
            Api::RestartId(id) => cmd(core.restart_child(&id)),
            Api::StartArgs(_) | Api::TerminateCell(_) => reply(Err(ChildError::NotFound(
                "a dynamic child (this is a static supervisor)".into(),
            ))),
        }
    }

    fn query(&self, query: Query) {
        let core = self.core.lock();
        match query {
            Query::WhichChildren(reply) => {
                let _ = reply.send(core.which_children());
            }
            Query::WhichChildId(id, reply) => {
                let _ = reply.send(core.which_child(&id));
            }
            Query::WhichChildCell(_, reply) => {
                let _ = reply.send(None);
            }
            Query::CountChildren(reply) => {
                // As OTP checks is_process_alive: an exit not processed yet is not active.
                let counts =
                    core.count_children_alive(|cell| cell.get_status() < ActorStatus::Stopping);
                let _ = reply.send(counts);
            }
            Query::GetChildSpec(id, reply) => {
                let _ = reply.send(core.get_childspec(&id));
            }
            Query::DeleteChild(id, reply) => {
                drop(core);
                let _ = reply.send(self.core.lock().delete_child(&id));
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

/// The name of a supervisor in paths when nothing names it.
const DEFAULT_NAME: &str = "root";

/// `named`: the path comes from a name or a child id someone chose, so a clash is an error; an
/// unnamed supervisor takes the next free path instead (`/root-2`).
async fn spawn(
    source: Source,
    parent: Option<ActorCell>,
    path: String,
    named: bool,
) -> Result<Option<SupervisorRef>, StartError> {
    spawn_abortable(source, parent, (path, named), None).await
}

/// Starts the root of an app's tree, linked to `parent`: its start-up, and that of every supervisor
/// below it, is abandoned in order when `abort` turns true.
pub(crate) async fn start_root(
    spec: SupervisorSpec,
    parent: ActorCell,
    abort: tokio::sync::watch::Receiver<bool>,
) -> Result<SupervisorRef, StartError> {
    let named = spec.name.is_some();
    let path = shell::child_path(&parent, spec.name.as_deref().unwrap_or(DEFAULT_NAME));
    spawn_abortable(Source::Spec(spec), Some(parent), (path, named), Some(abort))
        .await?
        .ok_or_else(|| StartError::Init("ignored".into()))
}

async fn spawn_abortable(
    source: Source,
    parent: Option<ActorCell>,
    path: (String, bool),
    abort: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<Option<SupervisorRef>, StartError> {
    Ok(shell::spawn(init(source, path, abort), parent)
        .await?
        .map(|inner| SupervisorRef { inner }))
}

/// What the shell is given to start a static supervisor.
fn init(
    source: Source,
    (path, named): (String, bool),
    abort: Option<tokio::sync::watch::Receiver<bool>>,
) -> Init<Static> {
    Init {
        path,
        named,
        make: Box::new(move || {
            let spec = match source {
                Source::Spec(spec) => spec,
                Source::With(init) => match init() {
                    Ok(Some(spec)) => spec,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(StartError::Init(e.to_string())),
                },
            };
            let core = Core::from_spec(spec).map_err(StartError::Spec)?;
            Ok(Some(Static {
                core: Arc::new(Mutex::new(core)),
            }))
        }),
        children: |b: &Static| b.core.clone(),
        args: None,
        abort,
    }
}

/// The shell's start-up arguments for `spec`, unnamed and top-level (for tests of the shell).
#[cfg(test)]
pub(crate) fn test_init(spec: SupervisorSpec) -> Init<Static> {
    init(Source::Spec(spec), ("/test".into(), false), None)
}

/// Starts a child supervisor of `parent` named `id` in paths.
pub(crate) async fn spawn_child_supervisor(
    spec: SupervisorSpec,
    parent: ActorCell,
    id: &str,
) -> Result<SupervisorRef, StartError> {
    spawn_at(spec, Some(parent), id, true).await
}

/// Starts a supervisor named `name` in paths, top-level or under `parent`. `named`: the name was
/// chosen (a clash is an error) rather than a default (a clash takes the next free path).
pub(crate) async fn spawn_at(
    spec: SupervisorSpec,
    parent: Option<ActorCell>,
    name: &str,
    named: bool,
) -> Result<SupervisorRef, StartError> {
    let path = shell::path_under(parent.as_ref(), name);
    spawn(Source::Spec(spec), parent, path, named)
        .await?
        .ok_or_else(|| StartError::Init("ignored".into()))
}

impl Supervisor {
    /// Starts an unlinked (top-level) supervisor and its children, in order.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let sup = canopy::Supervisor::start(canopy::SupervisorSpec::default()).await.unwrap();
    /// sup.shutdown().await;
    /// # }
    /// ```
    pub async fn start(spec: SupervisorSpec) -> Result<SupervisorRef, StartError> {
        let named = spec.name.is_some();
        let path = shell::path_under(None, spec.name.as_deref().unwrap_or(DEFAULT_NAME));
        spawn(Source::Spec(spec), None, path, named)
            .await?
            .ok_or_else(|| StartError::Init("ignored".into()))
    }

    /// Starts a supervisor linked to `parent` (a supervisor's start function does this).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use canopy::{Supervisor, SupervisorSpec};
    /// let root = Supervisor::start(SupervisorSpec::default()).await.unwrap();
    /// let inner = Supervisor::start_linked(SupervisorSpec::default(), root.cell()).await.unwrap();
    /// root.shutdown().await; // inner goes with it
    /// inner.wait().await;
    /// # }
    /// ```
    pub async fn start_linked(
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<SupervisorRef, StartError> {
        let named = spec.name.is_some();
        let path = shell::child_path(&parent, spec.name.as_deref().unwrap_or(DEFAULT_NAME));
        spawn(Source::Spec(spec), Some(parent), path, named)
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
        let path = shell::path_under(parent.as_ref(), DEFAULT_NAME);
        spawn(Source::With(Arc::new(init)), parent, path, false).await
    }
}

impl ChildSpec {
    /// A child supervisor with its own spec: kind `Supervisor`, shutdown `Infinity`.
    ///
    /// ```
    /// use canopy::{ChildSpec, Strategy, SupervisorSpec};
    /// let inner = SupervisorSpec::new(Strategy::OneForAll);
    /// let child = ChildSpec::supervisor("pool", inner);
    /// assert_eq!(child.get_kind(), canopy::ChildKind::Supervisor);
    /// ```
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        let id: String = id.into();
        let name = id.clone();
        ChildSpec::new(id, move |sup| {
            let spec = spec.clone();
            let name = name.clone();
            async move {
                let child = spawn_child_supervisor(spec, sup, &name).await?;
                Ok(Start::from(child.cell()))
            }
        })
        .kind(ChildKind::Supervisor)
    }

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
            let path = shell::child_path(&sup, &name);
            async move {
                Ok(
                    match spawn(Source::With(init), Some(sup), path, true).await? {
                        Some(child) => Start::from(child.cell()),
                        None => Start::Ignore,
                    },
                )
            }
        })
        .kind(ChildKind::Supervisor)
    }
}

/// A reference to a running static supervisor: the child management API. The methods every
/// supervisor has (`which_children`, `count_children`, `shutdown`, `cell`, …) come from
/// [`AnySupervisorRef`], which it dereferences to.
///
/// Every call waits for the supervisor, with no time limit, as OTP's do. A call to a supervisor
/// that is gone returns [`ChildError::SupervisorDown`].
///
/// ```
/// use canopy::{ChildSpec, Supervisor, SupervisorSpec};
/// # #[derive(Clone)] struct Worker;
/// # impl canopy::ractor::Actor for Worker {
/// #     type Msg = (); type State = (); type Arguments = ();
/// #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: ()) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
/// # }
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sup = Supervisor::start(SupervisorSpec::default()).await?;
/// sup.start_child(ChildSpec::actor("w", Worker, ())).await?;
/// sup.terminate_child("w").await?;
/// sup.restart_child("w").await?;
/// assert_eq!(sup.which_child("w").await?.restarts, 0); // API restarts are not counted
/// sup.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SupervisorRef {
    inner: AnySupervisorRef,
}

impl Deref for SupervisorRef {
    type Target = AnySupervisorRef;

    fn deref(&self) -> &AnySupervisorRef {
        &self.inner
    }
}

impl fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl SupervisorRef {
    /// The static supervisor behind `cell`, if `cell` is one (for example a child supervisor's
    /// cell from `which_children`).
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
        let node = introspect::node(&cell.get_id())?;
        if node.args.is_some() {
            return None;
        }
        AnySupervisorRef::from_cell(cell).map(|inner| SupervisorRef { inner })
    }

    /// Adds a child and starts it; it becomes the last-started child.
    ///
    /// Errors: [`AlreadyStarted`](ChildError::AlreadyStarted) if the id runs (or the start
    /// function clashed with a registered name), [`AlreadyPresent`](ChildError::AlreadyPresent)
    /// if it exists but is not running, [`StartFailed`](ChildError::StartFailed) (nothing kept),
    /// [`Spec`](ChildError::Spec).
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef, spec: canopy::ChildSpec) -> Result<(), canopy::ChildError> {
    /// let started = sup.start_child(spec).await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_child(&self, spec: ChildSpec) -> Result<StartedChild, ChildError> {
        self.inner
            .call_started(Api::StartSpec(Arc::new(spec)))
            .await
    }

    /// Stops a child by its policy; its spec stays (a temporary child's is dropped). Calling it on a
    /// stopped child is `Ok`.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) -> Result<(), canopy::ChildError> {
    /// sup.terminate_child("worker").await?;
    /// # Ok(()) }
    /// ```
    pub async fn terminate_child(&self, id: &str) -> Result<(), ChildError> {
        self.inner.call_unit(Api::TerminateId(id.to_string())).await
    }

    /// Starts a stopped child again (not counted against the restart budget).
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) -> Result<(), canopy::ChildError> {
    /// sup.restart_child("worker").await?;
    /// # Ok(()) }
    /// ```
    pub async fn restart_child(&self, id: &str) -> Result<StartedChild, ChildError> {
        self.inner
            .call_started(Api::RestartId(id.to_string()))
            .await
    }

    /// Drops a stopped child's spec.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) -> Result<(), canopy::ChildError> {
    /// sup.terminate_child("worker").await?;
    /// sup.delete_child("worker").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_child(&self, id: &str) -> Result<(), ChildError> {
        let id = id.to_string();
        self.inner
            .ask(|r| shell::Request::Query(Query::DeleteChild(id, r)))
            .await?
    }

    /// One child by id; [`NotFound`](ChildError::NotFound) if there is none.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) -> Result<(), canopy::ChildError> {
    /// let db = sup.which_child("db").await?;
    /// println!("{:?}, last exit {:?}", db.status, db.last_exit);
    /// # Ok(()) }
    /// ```
    pub async fn which_child(&self, id: &str) -> Result<ChildInfo, ChildError> {
        let key = id.to_string();
        self.inner
            .ask(|r| shell::Request::Query(Query::WhichChildId(key, r)))
            .await?
            .ok_or_else(|| ChildError::NotFound(id.to_string()))
    }

    /// A child's spec with every default filled in.
    ///
    /// ```
    /// # async fn demo(sup: canopy::SupervisorRef) -> Result<(), canopy::ChildError> {
    /// let spec = sup.get_childspec("db").await?;
    /// println!("{:?}", spec.get_shutdown());
    /// # Ok(()) }
    /// ```
    pub async fn get_childspec(&self, id: &str) -> Result<ChildSpec, ChildError> {
        let key = id.to_string();
        self.inner
            .ask(|r| shell::Request::Query(Query::GetChildSpec(key, r)))
            .await?
            .ok_or_else(|| ChildError::NotFound(id.to_string()))
    }
}
