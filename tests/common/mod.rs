//! Test support shared by the integration tests: a scriptable child (OTP's `supervisor_1`), a lab that
//! builds child specs for it and records what happened, and a watcher that learns every exit reason
//! through ractor monitors, the way OTP's suite monitors children.
//!
//! Waiting: tests order events by handshakes, never by sleeps. The child reports what it does (the
//! lab's events, "I am in the handler now" on [`hang`] and [`busy`]), the lab and the watcher wake
//! whoever waits on them when something is recorded ([`Lab::until`], [`Watcher::exit_of`]), and a
//! check that something did *not* happen is made after a call that the supervisor answers only once
//! it has handled what came before it (supervision events are taken before messages).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use canopy::{ChildSpec, ExitReason, Start, StopWith};
use parking_lot::Mutex;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{oneshot, Notify};

/// The longest any wait for a handshake may take before the test fails: an upper bound against
/// hanging, never what orders anything.
pub const WAIT: Duration = Duration::from_secs(10);

/// Something that is changed by actors and waited on by tests: a wait re-checks its condition
/// each time a change is announced, so it never sleeps and never misses a change.
#[derive(Clone, Default)]
struct Changes(Arc<Notify>);

impl Changes {
    /// Wakes every waiter, after the change has been made.
    fn announce(&self) {
        self.0.notify_waiters();
    }

    /// Waits until `probe` gives a value, re-checking after each change, for at most [`WAIT`].
    async fn until<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.0.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change made right after it still wakes us.
            changed.as_mut().enable();
            if let Some(value) = probe() {
                return value;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("timed out after {WAIT:?} waiting for: {what}");
            }
        }
    }
}

/// What the next start of a child does.
#[derive(Clone, Debug)]
pub enum StartMode {
    /// Spawn and link a `TestWorker`.
    Ok,
    /// Spawn, and attach this info (OTP's `{ok, Pid, Info}`).
    OkWithInfo(u32),
    /// Return `Start::Ignore`.
    Ignore,
    /// Return an error with this text.
    Error(String),
    /// Panic in the start function.
    Panic,
    /// Fail inside the child's pre_start.
    FailPreStart(String),
    /// Spawn with this registered name (a clash gives `already_started`).
    Named(String),
}

/// Something a test child did, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Started(String),
    Stopped(String),
}

/// Messages a test child understands.
pub enum WorkerMsg {
    /// Exit with this reason (an `Error` reason makes the handler fail; `Killed` kills itself).
    Exit(ExitReason),
    /// Panic in the handler.
    Panic(String),
    /// Say so on the sender once in the handler, then block there for good (awaiting a future that
    /// never completes): a stop is never taken, only a kill works. See [`hang`].
    Hang(oneshot::Sender<()>),
    /// Say so on `entered` once in the handler, then stay there until `release` fires (or its
    /// sender is dropped), then record `Event::Started("handled:<id>")`: work that lasts exactly
    /// as long as the test wants. See [`busy`].
    Busy {
        entered: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    },
    /// Unlink from the supervisor.
    Unlink,
    /// Answer, to prove it is alive and its mailbox has been drained up to here.
    Ping(ractor::RpcReplyPort<()>),
    /// Sleep this long, then record `Event::Started("handled:<id>")`; used for drain tests.
    SlowWork(Duration),
}

#[derive(Clone)]
pub struct TestWorker {
    id: String,
    lab: Lab,
    fail_pre_start: Option<String>,
}

impl Actor for TestWorker {
    type Msg = WorkerMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<WorkerMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        if let Some(reason) = &self.fail_pre_start {
            return Err(reason.clone().into());
        }
        self.lab.record(Event::Started(self.id.clone()));
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<WorkerMsg>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.lab.record(Event::Stopped(self.id.clone()));
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Exit(ExitReason::Error(text)) => return Err(text.into()),
            WorkerMsg::Exit(ExitReason::Killed) => me.kill(),
            WorkerMsg::Exit(reason) => me.stop_with(reason),
            WorkerMsg::Panic(text) => panic!("{text}"),
            WorkerMsg::Hang(entered) => {
                let _ = entered.send(());
                std::future::pending::<()>().await
            }
            WorkerMsg::Busy { entered, release } => {
                let _ = entered.send(());
                let _ = release.await;
                self.lab
                    .record(Event::Started(format!("handled:{}", self.id)));
            }
            WorkerMsg::Unlink => {
                if let Some(sup) = me.get_cell().try_get_supervisor() {
                    me.get_cell().unlink(sup);
                }
            }
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(());
            }
            WorkerMsg::SlowWork(d) => {
                tokio::time::sleep(d).await;
                self.lab
                    .record(Event::Started(format!("handled:{}", self.id)));
            }
        }
        Ok(())
    }
}

/// Builds child specs whose behaviour a test scripts per id, and records what the children did.
#[derive(Clone, Default)]
pub struct Lab {
    events: Arc<Mutex<Vec<Event>>>,
    changed: Changes,
    modes: Arc<Mutex<HashMap<String, StartMode>>>,
    starts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Lab {
    pub fn new() -> Self {
        Self::default()
    }

    /// A worker spec for `id`; what its start does follows `set_start` (default `StartMode::Ok`).
    pub fn spec(&self, id: &str) -> ChildSpec {
        let lab = self.clone();
        let id_owned = id.to_string();
        ChildSpec::new(id, move |sup: ActorCell| {
            let lab = lab.clone();
            let id = id_owned.clone();
            async move {
                *lab.starts.lock().entry(id.clone()).or_default() += 1;
                let mode = lab.modes.lock().get(&id).cloned().unwrap_or(StartMode::Ok);
                let worker = |fail| TestWorker {
                    id: id.clone(),
                    lab: lab.clone(),
                    fail_pre_start: fail,
                };
                match mode {
                    StartMode::Ok => {
                        let (a, _) = Actor::spawn_linked(None, worker(None), (), sup).await?;
                        Ok(Start::from(a))
                    }
                    StartMode::OkWithInfo(info) => {
                        let (a, _) = Actor::spawn_linked(None, worker(None), (), sup).await?;
                        Ok(Start::from(a).with_info(info))
                    }
                    StartMode::Ignore => Ok(Start::Ignore),
                    StartMode::Error(text) => Err(text.into()),
                    StartMode::Panic => panic!("start of {id} panicked"),
                    StartMode::FailPreStart(reason) => {
                        let (a, _) =
                            Actor::spawn_linked(None, worker(Some(reason)), (), sup).await?;
                        Ok(Start::from(a))
                    }
                    StartMode::Named(name) => {
                        let (a, _) = Actor::spawn_linked(Some(name), worker(None), (), sup).await?;
                        Ok(Start::from(a))
                    }
                }
            }
        })
    }

    pub fn set_start(&self, id: &str, mode: StartMode) {
        self.modes.lock().insert(id.to_string(), mode);
    }

    /// How many times the start function of `id` ran.
    pub fn starts(&self, id: &str) -> u32 {
        self.starts.lock().get(id).copied().unwrap_or(0)
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }

    /// Records what a child did and wakes whoever waits in [`Lab::until`].
    fn record(&self, event: Event) {
        self.events.lock().push(event);
        self.changed.announce();
    }

    /// Waits until the events recorded so far satisfy `cond` (checked again at every new event,
    /// no polling), for at most [`WAIT`].
    pub async fn until(&self, what: &str, mut cond: impl FnMut(&[Event]) -> bool) {
        self.changed
            .until(what, || cond(&self.events.lock()).then_some(()))
            .await
    }

    pub fn clear_events(&self) {
        self.events.lock().clear();
    }

    /// The ids in `Stopped` events, in order.
    pub fn stopped(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                Event::Stopped(id) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    /// The ids in `Started` events, in order.
    pub fn started(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                Event::Started(id) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Sends a message to a test child.
pub fn tell(cell: &ActorCell, msg: WorkerMsg) {
    cell.send_message(msg).expect("test child is alive");
}

/// Tells a test child to exit with `reason`.
pub fn crash(cell: &ActorCell, reason: ExitReason) {
    tell(cell, WorkerMsg::Exit(reason));
}

/// Waits (up to [`WAIT`]) for a child's "I am in the handler now".
async fn entered(rx: oneshot::Receiver<()>) {
    match tokio::time::timeout(WAIT, rx).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the test child stopped before it took the message"),
        Err(_) => panic!("the test child did not take the message within {WAIT:?}"),
    }
}

/// Makes a test child block in its handler for good, and returns once it is in there: from then
/// on a stop sent to it is not taken (a stop queued before the message would have won over it),
/// only a kill ends it.
pub async fn hang(cell: &ActorCell) {
    let (tx, rx) = oneshot::channel();
    tell(cell, WorkerMsg::Hang(tx));
    entered(rx).await;
}

/// Work a test child is busy with until the test ends it (dropping it ends it too).
pub struct Release(oneshot::Sender<()>);

impl Release {
    /// Ends the work: the child records `Event::Started("handled:<id>")` and takes its next
    /// message or signal.
    pub fn release(self) {
        let _ = self.0.send(());
    }
}

/// Makes a test child busy in its handler until the returned [`Release`] is used, and returns once
/// it is in there: a stop sent from now on waits until the work is done.
pub async fn busy(cell: &ActorCell) -> Release {
    let (entered_tx, entered_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    tell(
        cell,
        WorkerMsg::Busy {
            entered: entered_tx,
            release: release_rx,
        },
    );
    entered(entered_rx).await;
    Release(release_tx)
}

/// Records the exit reason of every actor it watches (through ractor monitors, not links).
#[derive(Clone)]
pub struct Watcher {
    cell: ActorCell,
    exits: Arc<Mutex<HashMap<ActorId, ExitReason>>>,
    changed: Changes,
}

struct WatcherActor {
    exits: Arc<Mutex<HashMap<ActorId, ExitReason>>>,
    changed: Changes,
}

impl Actor for WatcherActor {
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
        if let Some((cell, reason)) = ExitReason::from_event(&event) {
            self.exits.lock().insert(cell.get_id(), reason);
            self.changed.announce();
        }
        Ok(())
    }
}

impl Watcher {
    pub async fn new() -> Self {
        let exits = Arc::new(Mutex::new(HashMap::new()));
        let changed = Changes::default();
        let (actor, _) = Actor::spawn(
            None,
            WatcherActor {
                exits: exits.clone(),
                changed: changed.clone(),
            },
            (),
        )
        .await
        .expect("watcher starts");
        Watcher {
            cell: actor.get_cell(),
            exits,
            changed,
        }
    }

    /// Starts watching `cell`.
    pub fn watch(&self, cell: &ActorCell) {
        self.cell.monitor(cell.clone());
    }

    /// The exit reason of `cell`, waiting (woken by the watcher, up to [`WAIT`]) until it is seen.
    pub async fn exit_of(&self, cell: &ActorCell) -> ExitReason {
        let id = cell.get_id();
        self.changed
            .until(&format!("the exit of {id}"), || {
                self.exits.lock().get(&id).cloned()
            })
            .await
    }

    /// The exit reason of `cell` if it has exited already.
    pub fn exited(&self, cell: &ActorCell) -> Option<ExitReason> {
        self.exits.lock().get(&cell.get_id()).cloned()
    }
}

/// Waits until `cond` holds, polling every 5 ms, for at most 10 s. For conditions nothing announces;
/// the condition is what the test waits on, the poll interval orders nothing. (Prefer
/// [`Lab::until`] and [`Watcher::exit_of`], which are woken by the change itself.)
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut cond: F) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The running cell of child `id`, waiting (up to 10 s) until it runs and differs from `not`; asks
/// the supervisor again every 5 ms (the answer is what is waited on, not the interval).
pub async fn running_child(
    sup: &canopy::SupervisorRef,
    id: &str,
    not: Option<&ActorCell>,
) -> ActorCell {
    for _ in 0..2000 {
        if let Ok(info) = sup.which_child(id).await {
            if let Some(cell) = info.status.pid() {
                if Some(cell) != not {
                    return cell.clone();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("child {id} did not (re)start within 10 s");
}

/// Waits (up to 10 s) until the actor has stopped.
pub async fn wait_dead(cell: &ActorCell) {
    tokio::time::timeout(Duration::from_secs(10), cell.wait(None))
        .await
        .expect("actor stopped within 10 s")
        .ok();
}

/// Installs a test subscriber once, so that supervisor reports show in failing tests' output.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

// -------------------------------------------------------------------------------------------------
// Added for conformance/restarts.rs: a child whose every start can be scripted by its number.

impl Lab {
    /// Like [`Lab::spec`], but the `n`-th start of `id` (1-based, as [`Lab::starts`] counts them)
    /// runs `plan(n)` when that is `Some`, and the mode from `set_start` otherwise. Lets a test make
    /// one particular restart fail while the starts around it succeed.
    pub fn spec_planned<F>(&self, id: &str, plan: F) -> ChildSpec
    where
        F: Fn(u32) -> Option<StartMode> + Send + Sync + 'static,
    {
        let lab = self.clone();
        let id_owned = id.to_string();
        let plan = Arc::new(plan);
        ChildSpec::new(id, move |sup: ActorCell| {
            let lab = lab.clone();
            let id = id_owned.clone();
            let plan = plan.clone();
            async move {
                let n = {
                    let mut starts = lab.starts.lock();
                    let n = starts.entry(id.clone()).or_default();
                    *n += 1;
                    *n
                };
                let mode = match plan(n) {
                    Some(mode) => mode,
                    None => lab.modes.lock().get(&id).cloned().unwrap_or(StartMode::Ok),
                };
                start_planned(&lab, &id, mode, sup).await
            }
        })
    }
}

async fn start_planned(
    lab: &Lab,
    id: &str,
    mode: StartMode,
    sup: ActorCell,
) -> Result<Start, canopy::BoxError> {
    let worker = |fail| TestWorker {
        id: id.to_string(),
        lab: lab.clone(),
        fail_pre_start: fail,
    };
    Ok(match mode {
        StartMode::Ok => Actor::spawn_linked(None, worker(None), (), sup)
            .await?
            .0
            .into(),
        StartMode::OkWithInfo(info) => {
            let (a, _) = Actor::spawn_linked(None, worker(None), (), sup).await?;
            Start::from(a).with_info(info)
        }
        StartMode::Ignore => Start::Ignore,
        StartMode::Error(text) => return Err(text.into()),
        StartMode::Panic => panic!("start of {id} panicked"),
        StartMode::FailPreStart(reason) => Actor::spawn_linked(None, worker(Some(reason)), (), sup)
            .await?
            .0
            .into(),
        StartMode::Named(name) => Actor::spawn_linked(Some(name), worker(None), (), sup)
            .await?
            .0
            .into(),
    })
}

/// OTP's `count_children` as `[specs, active, supervisors, workers]`.
pub fn counts(
    specs: usize,
    active: usize,
    supervisors: usize,
    workers: usize,
) -> canopy::ChildCounts {
    canopy::ChildCounts {
        specs,
        active,
        supervisors,
        workers,
    }
}

// -------------------------------------------------------------------------------------------------
// Added for conformance/dynamic.rs: the test child as a dynamic supervisor's template.

impl Lab {
    /// A dynamic template for the test child. `start_child(n)` starts the instance `"{id}:{n}"`:
    /// that is its name in events and in [`Lab::starts`], and what its start does follows
    /// `set_start("{id}:{n}")`, else `set_start(id)`. Starts are counted under both names, so
    /// `starts(id)` counts every start of the template.
    pub fn dynamic_spec(&self, id: &str) -> canopy::DynamicSpec<u32> {
        let lab = self.clone();
        let template = id.to_string();
        canopy::DynamicSpec::new(move |sup: ActorCell, n: u32| {
            let lab = lab.clone();
            let template = template.clone();
            async move {
                let instance = format!("{template}:{n}");
                {
                    let mut starts = lab.starts.lock();
                    *starts.entry(template.clone()).or_default() += 1;
                    *starts.entry(instance.clone()).or_default() += 1;
                }
                let mode = {
                    let modes = lab.modes.lock();
                    modes
                        .get(&instance)
                        .or_else(|| modes.get(&template))
                        .cloned()
                        .unwrap_or(StartMode::Ok)
                };
                start_planned(&lab, &instance, mode, sup).await
            }
        })
    }
}
