//! OTP conformance: dynamic supervisors, the `simple_one_for_one` cases of OTP's `supervisor_SUITE`
//! and the `DynamicSupervisor` cases of Elixir's test suite (rules: docs/semantics.md,
//! "Dynamic supervisors").
//!
//! Each test is named after the case it ports. Counts written `[specs, active, supervisors,
//! workers]` are OTP's `count_children`. A dynamic child is named by its cell; its `which_children`
//! id is its internal key. Where Rust's types make a case impossible (a call by id, `restart_child`
//! or `delete_child` on a dynamic supervisor), the test keeps the name and checks the nearest Rust
//! equivalent, with a comment saying so.

use std::sync::Arc;
use std::time::Duration;

use canopy::core::REACHED_MAX_RESTART_INTENSITY;
use canopy::dynamic::DynamicSpec;
use canopy::{
    ChildError, ChildKind, ChildSpec, ChildStatus, DynamicRef, DynamicSupervisor, ExitReason,
    Restart, Shutdown, SpecError, Start, StartError, Supervisor, SupervisorSpec,
};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::common::*;

/// OTP's `3600`: a period no test lives through.
const HOUR: Duration = Duration::from_secs(3600);

/// A budget the restart loops below never reach.
const ENDLESS: u32 = u32::MAX;

/// Generous upper bound for anything that must not hang; never a speed assertion.
const NO_HANG: Duration = Duration::from_secs(10);

fn died() -> ExitReason {
    ExitReason::Error("died".into())
}

fn gave_up() -> ExitReason {
    ExitReason::ShutdownWith(REACHED_MAX_RESTART_INTENSITY.into())
}

async fn start(spec: DynamicSpec<u32>) -> DynamicRef<u32> {
    DynamicSupervisor::start(spec)
        .await
        .expect("dynamic supervisor starts")
}

/// `start_child` that must start a running child; returns its cell.
async fn add(sup: &DynamicRef<u32>, n: u32) -> ActorCell {
    sup.start_child(n)
        .await
        .unwrap_or_else(|e| panic!("start_child({n}): {e}"))
        .cell
        .unwrap_or_else(|| panic!("child {n} ignored its start"))
}

/// `which_children` statuses, newest first.
async fn statuses(sup: &DynamicRef<u32>) -> Vec<ChildStatus<ActorCell>> {
    sup.which_children()
        .await
        .expect("supervisor answers")
        .into_iter()
        .map(|c| c.status)
        .collect()
}

async fn running_cells(sup: &DynamicRef<u32>) -> Vec<ActorCell> {
    statuses(sup)
        .await
        .into_iter()
        .filter_map(|s| s.pid().cloned())
        .collect()
}

/// Waits until the supervisor has exited and asserts it gave up on its restart budget.
async fn assert_gave_up(w: &Watcher, sup: &DynamicRef<u32>) {
    assert_eq!(w.exit_of(&sup.cell()).await, gave_up());
}

async fn no_hang<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(NO_HANG, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {NO_HANG:?}"),
    }
}

/// Waits until the counts are `expected`, for at most 10 s.
async fn counts_become(sup: &DynamicRef<u32>, expected: canopy::ChildCounts) {
    for _ in 0..1000 {
        if sup.count_children().await.unwrap() == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "counts stayed {:?}, expected {expected:?}",
        sup.count_children().await.unwrap()
    );
}

/// Waits until the template `id` has failed at least a few more starts: its restart loop runs.
async fn wait_looping(lab: &Lab, id: &str, from: u32) {
    eventually("the restart loop runs", || lab.starts(id) >= from + 3).await;
}

/// Asserts that `id` is not started any more. A failed restart is retried through the supervisor's
/// mailbox, so a loop that still ran would always have a retry queued or in hand: the first call
/// below is answered after the retry in hand has queued the next one, the second after that one
/// has run (and started `id` again). A supervisor that is gone starts nothing.
async fn assert_loop_ended(sup: &DynamicRef<u32>, lab: &Lab, id: &str) {
    let n = lab.starts(id);
    for _ in 0..2 {
        if sup.count_children().await.is_err() {
            break;
        }
    }
    assert_eq!(lab.starts(id), n, "{id} is no longer being restarted");
}

// -------------------------------------------------------------------------------------------------
// Start / stop (cases 5, 9, 12, 18, 19, 21)

/// A temporary dynamic child that ignores its start gives `Ok` without a cell and is
/// not stored; a later shutdown exits `shutdown` cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_start_ignore_temporary_child_start_child_simple() {
    ignore_start_child_simple(Restart::Temporary).await;
}

/// Permanent template: the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_start_ignore_permanent_child_start_child_simple() {
    ignore_start_child_simple(Restart::Permanent).await;
}

async fn ignore_start_child_simple(restart: Restart) {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    lab.set_start("child", StartMode::Ignore);
    let sup = start(lab.dynamic_spec("child").restart(restart)).await;
    w.watch(&sup.cell());
    let started = sup.start_child(1).await.expect("ignore is ok");
    assert!(started.cell.is_none());
    assert!(sup.which_children().await.unwrap().is_empty());
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 0));
    no_hang("shutdown", sup.shutdown()).await;
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

/// A dynamic start that fails returns the start function's own reason, unwrapped, and
/// nothing is stored; so does a panic in the start function and a child failing its `pre_start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_start_child_returns_error_simple() {
    trace();
    let lab = Lab::new();
    let sup = start(lab.dynamic_spec("child")).await;
    lab.set_start("child:1", StartMode::Error("child_error".into()));
    lab.set_start("child:2", StartMode::Panic);
    lab.set_start("child:3", StartMode::FailPreStart("bad init".into()));
    match sup.start_child(1).await {
        Err(ChildError::StartFailed { reason, .. }) => assert_eq!(reason, "child_error"),
        other => panic!("expected StartFailed, got {other:?}"),
    }
    match sup.start_child(2).await {
        Err(ChildError::StartFailed { reason, .. }) => {
            assert!(reason.contains("start of child:2 panicked"), "{reason}")
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    match sup.start_child(3).await {
        Err(ChildError::StartFailed { reason, .. }) => {
            assert!(reason.contains("bad init"), "{reason}")
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert!(sup.which_children().await.unwrap().is_empty());
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 0));
    // The supervisor is unharmed: the next start works.
    add(&sup, 4).await;
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    sup.shutdown().await;
}

/// The defaults are filled in. Rust has no `get_childspec` for a dynamic child
/// (its spec is the template): the template's getters give the defaults, and `which_child` by cell
/// gives the child's view; an unknown live cell is `NotFound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_start_map_simple() {
    let lab = Lab::new();
    let spec = lab.dynamic_spec("child");
    assert_eq!(spec.get_restart(), Restart::Permanent);
    assert_eq!(
        spec.get_shutdown(),
        Shutdown::Timeout(Duration::from_secs(5))
    );
    assert_eq!(spec.get_kind(), ChildKind::Worker);
    assert!(!spec.is_significant());
    assert_eq!(
        (spec.get_intensity(), spec.get_period()),
        (3, Duration::from_secs(5))
    );
    assert_eq!(spec.get_max_children(), None);
    assert!(spec.get_backoff().is_none());
    assert_eq!(
        spec.clone().kind(ChildKind::Supervisor).get_shutdown(),
        Shutdown::Infinity
    );

    let sup = start(spec).await;
    let cell = add(&sup, 1).await;
    let info = sup.which_child(&cell).await.expect("a child, by its cell");
    assert_eq!(info.status, ChildStatus::Running(cell.clone()));
    assert_eq!(
        (info.kind, info.restart, info.restarts),
        (ChildKind::Worker, Restart::Permanent, 0)
    );
    let other = start(lab.dynamic_spec("other")).await;
    assert!(matches!(
        sup.which_child(&other.cell()).await,
        Err(ChildError::NotFound(_))
    ));
    other.shutdown().await;
    sup.shutdown().await;
}

/// At shutdown a child that ignores its stop is killed after the template's timeout
/// (`killed`), while its well-behaved sibling exits `shutdown`. On tokio's paused clock: the timeout
/// costs no real time.
#[tokio::test(start_paused = true)]
async fn sup_stop_timeout_dynamic() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(
        lab.dynamic_spec("child")
            .shutdown(Shutdown::Timeout(Duration::from_secs(1))),
    )
    .await;
    w.watch(&sup.cell());
    let stuck = add(&sup, 1).await;
    let good = add(&sup, 2).await;
    w.watch(&stuck);
    w.watch(&good);
    // It is in its handler, for good, before the stop is sent (a stop queued before the message
    // would win over it).
    hang(&stuck).await;
    no_hang("shutdown", sup.shutdown()).await;
    assert_eq!(w.exit_of(&stuck).await, ExitReason::Killed);
    assert_eq!(w.exit_of(&good).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

/// `BrutalKill` children exit `killed`; the supervisor exits `shutdown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_stop_brutal_kill_dynamic() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(lab.dynamic_spec("child").shutdown(Shutdown::BrutalKill)).await;
    w.watch(&sup.cell());
    let cells = [add(&sup, 1).await, add(&sup, 2).await];
    for c in &cells {
        w.watch(c);
    }
    hang(&cells[0]).await;
    no_hang("shutdown", sup.shutdown()).await;
    for c in &cells {
        assert_eq!(w.exit_of(c).await, ExitReason::Killed);
    }
    assert!(lab.stopped().is_empty(), "a brutal kill skips post_stop");
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

/// A child for the shutdown race. A racer, told `ExitWith`, says so on `busy` once it is in its
/// handler (from then on a stop can no longer overtake the message), stays there until the test
/// opens `go`, and then ends with its own reason, whatever the supervisor asked meanwhile. A child
/// told nothing takes its stop at once: its `post_stop` says on `stopped` that the shutdown has
/// begun (racers end abnormally and skip `post_stop`).
#[derive(Clone)]
struct Racer {
    busy: mpsc::UnboundedSender<u32>,
    go: watch::Receiver<bool>,
    stopped: mpsc::UnboundedSender<u32>,
}

enum RacerMsg {
    ExitWith(ExitReason),
}

impl Actor for Racer {
    type Msg = RacerMsg;
    type State = u32;
    type Arguments = u32;

    async fn pre_start(&self, _: ActorRef<RacerMsg>, n: u32) -> Result<u32, ActorProcessingErr> {
        Ok(n)
    }

    async fn handle(
        &self,
        me: ActorRef<RacerMsg>,
        RacerMsg::ExitWith(reason): RacerMsg,
        n: &mut u32,
    ) -> Result<(), ActorProcessingErr> {
        let _ = self.busy.send(*n);
        let _ = self.go.clone().wait_for(|open| *open).await;
        match reason {
            ExitReason::Error(text) => Err(text.into()),
            ExitReason::Killed => {
                me.kill();
                // The kill lands at the next await.
                std::future::pending::<()>().await;
                Ok(())
            }
            other => panic!("a racer ends abnormally, not with {other:?}"),
        }
    }

    async fn post_stop(
        &self,
        _: ActorRef<RacerMsg>,
        n: &mut u32,
    ) -> Result<(), ActorProcessingErr> {
        let _ = self.stopped.send(*n);
        Ok(())
    }
}

/// The next report on `rx`, waiting for at most [`WAIT`].
async fn next_report(rx: &mut mpsc::UnboundedReceiver<u32>, what: &str) -> u32 {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no report within {WAIT:?}: {what}"))
        .expect("the children keep their senders")
}

/// While the supervisor is shutting down, children of every restart type end by
/// themselves with reasons of their own (errors, a kill). Each ends with its own reason,
/// none is restarted, and the supervisor finishes and exits `shutdown`. (A stop already asked for
/// wins over a normal-class reason the child picks afterwards, so the race is run with abnormal
/// reasons, which are the ones a restart would follow.)
///
/// Ordered by handshakes: the racers are in their handlers before the shutdown starts, a herald
/// child (told nothing) says from its `post_stop` that the shutdown is under way, and only then are
/// the racers let go. On tokio's paused clock, so the 5 s shutdown timeout cannot run out while
/// the test is making progress.
#[tokio::test(start_paused = true)]
async fn sup_stop_non_shutdown_exit_dynamic() {
    trace();
    const HERALD: u32 = 99;
    for restart in [Restart::Permanent, Restart::Transient, Restart::Temporary] {
        let w = Watcher::new().await;
        let starts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = starts.clone();
        let (busy_tx, mut busy) = mpsc::unbounded_channel();
        let (stopped_tx, mut stopped) = mpsc::unbounded_channel();
        let (go, go_rx) = watch::channel(false);
        let racer = Racer {
            busy: busy_tx,
            go: go_rx,
            stopped: stopped_tx,
        };
        let spec = DynamicSpec::new(move |sup: ActorCell, n: u32| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let racer = racer.clone();
            async move {
                Ok(Start::from(
                    Actor::spawn_linked(None, racer, n, sup).await?.0,
                ))
            }
        })
        .restart(restart)
        .shutdown(Shutdown::Timeout(Duration::from_secs(5)));
        let sup = DynamicSupervisor::start(spec).await.unwrap();
        w.watch(&sup.cell());
        let reasons = [
            ExitReason::Error("own".into()),
            ExitReason::Error("another".into()),
            ExitReason::Killed,
        ];
        let mut cells = Vec::new();
        for (n, reason) in reasons.iter().enumerate() {
            let cell = sup.start_child(n as u32).await.unwrap().cell.unwrap();
            w.watch(&cell);
            cell.send_message(RacerMsg::ExitWith(reason.clone()))
                .unwrap();
            cells.push(cell);
        }
        add(&sup, HERALD).await;
        // A stop taken before the message would win over it: wait until all three are busy.
        for _ in 0..reasons.len() {
            next_report(&mut busy, "a racer is in its handler").await;
        }
        let stopping = tokio::spawn({
            let sup = sup.clone();
            async move { sup.shutdown().await }
        });
        // Racers end abnormally and skip post_stop: the herald's report is the one to wait for.
        while next_report(&mut stopped, "the herald is stopped").await != HERALD {}
        // The supervisor is shutting down: the racers end by themselves now.
        go.send_replace(true);
        no_hang("shutdown", stopping)
            .await
            .expect("the shutdown task ran to its end");
        assert_eq!(
            w.exit_of(&sup.cell()).await,
            ExitReason::Shutdown,
            "{restart:?}"
        );
        for (cell, reason) in cells.iter().zip(&reasons) {
            assert_eq!(&w.exit_of(cell).await, reason, "{restart:?}");
        }
        assert_eq!(
            starts.load(std::sync::atomic::Ordering::SeqCst),
            reasons.len() as u32 + 1,
            "nothing restarted during the shutdown: the racers and the herald started once each \
             ({restart:?})"
        );
    }
}

// -------------------------------------------------------------------------------------------------
// Restarts (cases 40–45)

/// Only the crashed instance is restarted, counts `[1,2,0,2]`, no old cell survives;
/// intensity 2 in an hour: the third crash makes the supervisor exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_one_for_one() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(
        lab.dynamic_spec("child")
            .shutdown(Shutdown::BrutalKill)
            .restart_intensity(2, HOUR),
    )
    .await;
    w.watch(&sup.cell());
    let c1 = add(&sup, 1).await;
    let c2 = add(&sup, 2).await;
    w.watch(&c1);
    crash(&c1, died());
    assert_eq!(w.exit_of(&c1).await, died());
    eventually_running(&sup, 2, &[&c1]).await;
    let cells = running_cells(&sup).await;
    assert!(cells.contains(&c2), "the sibling is untouched");
    assert!(!cells.contains(&c1), "the old incarnation is gone");
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 2, 0, 2));

    // Two more crashes within the hour: 3 > 2.
    w.watch(&c2);
    crash(&c2, died());
    assert_eq!(w.exit_of(&c2).await, died());
    eventually_running(&sup, 2, &[&c1, &c2]).await;
    let victim = running_cells(&sup).await.remove(0);
    crash(&victim, died());
    assert_gave_up(&w, &sup).await;
}

/// Waits until `n` children run and none of them is one of `not`.
async fn eventually_running(sup: &DynamicRef<u32>, n: usize, not: &[&ActorCell]) {
    for _ in 0..1000 {
        let cells = running_cells(sup).await;
        if cells.len() == n && cells.iter().all(|c| !not.contains(&c)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} fresh children did not come up");
}

/// The information the start function attaches (OTP's `{ok, Pid, Info}`)
/// reaches the `start_child` caller unchanged; only the crashed instance is restarted; the budget
/// holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_one_for_one_extra() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    lab.set_start("child", StartMode::OkWithInfo(42));
    let sup = start(
        lab.dynamic_spec("child")
            .shutdown(Shutdown::BrutalKill)
            .restart_intensity(2, HOUR),
    )
    .await;
    w.watch(&sup.cell());
    let s1 = sup.start_child(1).await.unwrap();
    assert_eq!(s1.info_as::<u32>(), Some(&42));
    let c1 = s1.cell.unwrap();
    let c2 = add(&sup, 2).await;
    crash(&c1, died());
    eventually_running(&sup, 2, &[&c1]).await;
    assert!(running_cells(&sup).await.contains(&c2));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 2, 0, 2));
    for _ in 0..2 {
        let victim = running_cells(&sup).await.remove(0);
        crash(&victim, died());
        wait_dead(&victim).await;
    }
    assert_gave_up(&w, &sup).await;
}

/// An instance that cannot restart uses up the budget; the supervisor exits and its
/// siblings die with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_one_for_one_escalation() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(
        lab.dynamic_spec("child")
            .shutdown(Shutdown::BrutalKill)
            .restart_intensity(4, HOUR),
    )
    .await;
    w.watch(&sup.cell());
    let c1 = add(&sup, 1).await;
    let c2 = add(&sup, 2).await;
    w.watch(&c2);
    lab.set_start("child:1", StartMode::Error("cannot start".into()));
    crash(&c1, died());
    assert_gave_up(&w, &sup).await;
    assert_eq!(w.exit_of(&c2).await, ExitReason::Killed);
    assert_eq!(
        lab.starts("child:1"),
        1 + 4,
        "the first start and four counted restarts"
    );
}

/// A restart that returns ignore removes the instance, transient and permanent alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_one_for_one_restart_ignore() {
    for restart in [Restart::Transient, Restart::Permanent] {
        let lab = Lab::new();
        let sup = start(lab.dynamic_spec("child").restart(restart)).await;
        let c1 = add(&sup, 1).await;
        lab.set_start("child", StartMode::Ignore);
        crash(&c1, died());
        wait_dead(&c1).await;
        counts_become(&sup, counts(1, 0, 0, 0)).await;
        assert!(
            sup.which_children().await.unwrap().is_empty(),
            "{restart:?}"
        );
        assert_eq!(lab.starts("child"), 2, "restarted once, which ignored");
        sup.shutdown().await;
    }
}

/// A child whose `post_stop` takes a while: OTP's `supervisor_2` children that delay their exit.
#[derive(Clone)]
struct SlowStop;

impl Actor for SlowStop {
    type Msg = ();
    type State = Duration;
    type Arguments = Duration;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        delay: Duration,
    ) -> Result<Duration, ActorProcessingErr> {
        Ok(delay)
    }

    async fn post_stop(
        &self,
        _: ActorRef<()>,
        delay: &mut Duration,
    ) -> Result<(), ActorProcessingErr> {
        tokio::time::sleep(*delay).await;
        Ok(())
    }
}

/// Parallel shutdown. Two children take 1 s to stop, a third would take 5 s and is
/// killed at the 2 s timeout: the whole stop takes at least the graceful children's 1 s (they are
/// waited for) and less than the slow child's own 5 s (it is not waited for, nor are the children
/// stopped one after another). On tokio's paused clock: the children's delays and the timeout are
/// exact, so the bounds hold however loaded the machine is, and cost no real time.
#[tokio::test(start_paused = true)]
async fn simple_one_for_one_shutdown() {
    let w = Watcher::new().await;
    let shutdown_time = Duration::from_secs(1);
    let sup = DynamicSupervisor::start(
        DynamicSpec::actor(SlowStop).shutdown(Shutdown::Timeout(2 * shutdown_time)),
    )
    .await
    .unwrap();
    w.watch(&sup.cell());
    let mut cells = Vec::new();
    for delay in [shutdown_time, shutdown_time, 5 * shutdown_time] {
        let cell = sup.start_child(delay).await.unwrap().cell.unwrap();
        w.watch(&cell);
        cells.push(cell);
    }
    let t0 = Instant::now();
    no_hang("shutdown", sup.shutdown()).await;
    let took = t0.elapsed();
    assert!(took >= shutdown_time, "too short: {took:?}");
    assert!(took < 5 * shutdown_time, "too long: {took:?}");
    assert_eq!(w.exit_of(&cells[0]).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&cells[1]).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&cells[2]).await, ExitReason::Killed);
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

/// While a restart keeps failing the supervisor answers, the child shows as
/// restarting and is not active (`[1,0,0,1]`); `terminate_child` with its last cell ends the loop
/// and forgets it; a shutdown during a loop completes and the child's exit reason is its own.
/// `restart_child`/`delete_child` (OTP's `{error, simple_one_for_one}`) do not exist on a
/// [`DynamicRef`]: the type has no such methods, so that half of the case is the compiler's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_restart_loop_simple() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(
        lab.dynamic_spec("child")
            .shutdown(Shutdown::BrutalKill)
            .restart_intensity(ENDLESS, Duration::from_secs(10)),
    )
    .await;
    w.watch(&sup.cell());
    let c1 = add(&sup, 1).await;
    w.watch(&c1);
    lab.set_start("child", StartMode::Error("cannot start".into()));
    crash(&c1, died());
    wait_looping(&lab, "child", 1).await;

    assert_eq!(statuses(&sup).await, vec![ChildStatus::Restarting]);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));
    let info = sup.which_child(&c1).await.expect("the last cell names it");
    assert_eq!(info.status, ChildStatus::Restarting);

    sup.terminate_child(&c1).await.unwrap();
    assert_eq!(w.exit_of(&c1).await, died());
    assert!(sup.which_children().await.unwrap().is_empty());
    assert_loop_ended(&sup, &lab, "child").await;

    lab.set_start("child", StartMode::Ok);
    let c2 = add(&sup, 2).await;
    w.watch(&c2);
    let from = lab.starts("child");
    lab.set_start("child", StartMode::Error("cannot start".into()));
    crash(&c2, ExitReason::Error("error2".into()));
    wait_looping(&lab, "child", from).await;

    no_hang("shutdown during a restart loop", sup.shutdown()).await;
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&c2).await, ExitReason::Error("error2".into()));
    assert_loop_ended(&sup, &lab, "child").await;
}

/// Restarting dynamic children count in `workers` but not in `active`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_restarting_children() {
    let lab = Lab::new();
    let sup = start(
        lab.dynamic_spec("child")
            .shutdown(Shutdown::BrutalKill)
            .restart_intensity(ENDLESS, Duration::from_secs(10)),
    )
    .await;
    let mut cells = Vec::new();
    for n in 1..=4 {
        cells.push(add(&sup, n).await);
    }
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 4, 0, 4));
    lab.set_start("child", StartMode::Error("cannot start".into()));
    for c in &cells[..2] {
        c.kill();
        wait_dead(c).await;
    }
    counts_become(&sup, counts(1, 2, 0, 4)).await;
    for c in &cells[2..] {
        c.kill();
        wait_dead(c).await;
    }
    counts_become(&sup, counts(1, 0, 0, 4)).await;
    lab.set_start("child", StartMode::Ok);
    counts_become(&sup, counts(1, 4, 0, 4)).await;
    sup.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// Child management API (cases 48, 50, 51)

/// `terminate_child` by cell is `Ok`, also for a cell that is already dead; a live
/// actor that is not a child is `NotFound`; a terminated child is forgotten. OTP's
/// `terminate_child` by id and `restart_child`/`delete_child` (all `{error, simple_one_for_one}`)
/// cannot be written: [`DynamicRef::terminate_child`] takes a cell, and the other two do not
/// exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_adm_simple() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(lab.dynamic_spec("child")).await;
    let c1 = add(&sup, 1).await;
    let c2 = add(&sup, 2).await;
    w.watch(&c1);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 2, 0, 2));

    sup.terminate_child(&c1).await.unwrap();
    assert_eq!(w.exit_of(&c1).await, ExitReason::Shutdown);
    assert_eq!(running_cells(&sup).await, vec![c2.clone()]);
    // Again, now that it is dead: still ok.
    sup.terminate_child(&c1).await.unwrap();

    // A live actor that is not a child (here: another supervisor's child).
    let other = start(lab.dynamic_spec("other")).await;
    let foreign = add(&other, 1).await;
    assert!(matches!(
        sup.terminate_child(&foreign).await,
        Err(ChildError::NotFound(_))
    ));
    assert!(
        foreign.get_status() != ractor::ActorStatus::Stopped,
        "not ours: not touched"
    );
    other.shutdown().await;

    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    sup.shutdown().await;
    assert_eq!(
        sup.count_children().await.unwrap_err(),
        ChildError::SupervisorDown,
        "a call to a supervisor that is gone is OTP's noproc"
    );
}

/// 1,000 then 2,000 temporary workers: counts `[1,N,0,N]` agree with `which_children`;
/// `[1,0,0,0]` once they have all been killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_children() {
    let lab = Lab::new();
    let sup = start(lab.dynamic_spec("child").restart(Restart::Temporary)).await;
    for n in 0..1000 {
        add(&sup, n).await;
    }
    assert_eq!(
        sup.count_children().await.unwrap(),
        counts(1, 1000, 0, 1000)
    );
    assert_eq!(running_cells(&sup).await.len(), 1000);
    for n in 1000..2000 {
        add(&sup, n).await;
    }
    assert_eq!(
        sup.count_children().await.unwrap(),
        counts(1, 2000, 0, 2000)
    );
    let cells = running_cells(&sup).await;
    assert_eq!(cells.len(), 2000);
    for c in &cells {
        c.kill();
    }
    counts_become(&sup, counts(1, 0, 0, 0)).await;
    assert!(sup.which_children().await.unwrap().is_empty());
    sup.shutdown().await;
}

/// The same with 1,000 then 2,000 child supervisors, `[1,N,N,0]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_children_supervisor() {
    let spec = DynamicSpec::new(|sup: ActorCell, _n: u32| async move {
        let child = Supervisor::start_linked(SupervisorSpec::default(), sup).await?;
        Ok(Start::from(child.cell()))
    })
    .kind(ChildKind::Supervisor)
    .restart(Restart::Temporary);
    let sup = start(spec).await;
    for n in 0..1000 {
        add(&sup, n).await;
    }
    assert_eq!(
        sup.count_children().await.unwrap(),
        counts(1, 1000, 1000, 0)
    );
    for n in 1000..2000 {
        add(&sup, n).await;
    }
    assert_eq!(
        sup.count_children().await.unwrap(),
        counts(1, 2000, 2000, 0)
    );
    let cells = running_cells(&sup).await;
    assert_eq!(cells.len(), 2000);
    for c in &cells {
        c.kill();
    }
    counts_become(&sup, counts(1, 0, 0, 0)).await;
    sup.shutdown().await;
}

/// `which_child` by cell agrees with `which_children` and `count_children`
/// throughout start, restart, terminate and a stopped instance; an unknown cell is `NotFound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn which_children_simple_one_for_one() {
    let lab = Lab::new();
    let sup = start(lab.dynamic_spec("child").restart(Restart::Transient)).await;

    async fn agreeing(sup: &DynamicRef<u32>) -> Vec<canopy::ChildInfo> {
        let all = sup.which_children().await.unwrap();
        for info in &all {
            let cell = info.status.pid().expect("all running here");
            let one = sup.which_child(cell).await.expect("which_child by cell");
            assert_eq!(
                (&one.id, &one.status, one.kind, one.restart, one.restarts),
                (
                    &info.id,
                    &info.status,
                    info.kind,
                    info.restart,
                    info.restarts
                )
            );
        }
        let c = sup.count_children().await.unwrap();
        assert_eq!((c.specs, c.active, c.workers), (1, all.len(), all.len()));
        all
    }

    assert!(agreeing(&sup).await.is_empty());
    let c1 = add(&sup, 1).await;
    let c2 = add(&sup, 2).await;
    let all = agreeing(&sup).await;
    assert_eq!(
        all.iter().map(|i| i.status.clone()).collect::<Vec<_>>(),
        vec![
            ChildStatus::Running(c2.clone()),
            ChildStatus::Running(c1.clone())
        ],
        "newest first"
    );
    crash(&c1, died());
    eventually_running(&sup, 2, &[&c1]).await;
    let all = agreeing(&sup).await;
    assert_eq!(
        all[1].restarts, 1,
        "the restarted child keeps its place and counts restarts"
    );
    assert!(matches!(
        sup.which_child(&c1).await,
        Err(ChildError::NotFound(_))
    ));
    sup.terminate_child(&c2).await.unwrap();
    assert_eq!(agreeing(&sup).await.len(), 1);
    // A transient child's normal exit removes it.
    let c3 = running_cells(&sup).await.remove(0);
    crash(&c3, ExitReason::Normal);
    wait_dead(&c3).await;
    counts_become(&sup, counts(1, 0, 0, 0)).await;
    assert!(agreeing(&sup).await.is_empty());
    sup.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// Significant children, Elixir extras (cases 56, 59, 60)

/// A dynamic supervisor has no auto-shutdown (the mode cannot even be written), and a
/// significant template is refused, at the top level and as the child of a static supervisor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn significant_simple() {
    let lab = Lab::new();
    for restart in [Restart::Transient, Restart::Temporary] {
        let spec = lab.dynamic_spec("child").restart(restart).significant(true);
        assert_eq!(
            DynamicSupervisor::start(spec.clone()).await.unwrap_err(),
            StartError::Spec(SpecError::SignificantDynamic)
        );
        let nested =
            Supervisor::start(SupervisorSpec::default().child(ChildSpec::dynamic("dyn", spec)))
                .await
                .unwrap_err();
        match nested {
            StartError::ChildFailed { id, reason } => {
                assert_eq!(id, "dyn");
                assert!(reason.contains("significant"), "{reason}");
            }
            other => panic!("expected ChildFailed, got {other:?}"),
        }
    }
    assert_eq!(lab.starts("child"), 0);
}

/// From Elixir's tests: `max_children` refuses the next start with `MaxChildren`, and children
/// that are restarting count toward the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_max_children() {
    let lab = Lab::new();
    let sup = start(
        lab.dynamic_spec("child")
            .max_children(2)
            .restart_intensity(ENDLESS, Duration::from_secs(10)),
    )
    .await;
    let c1 = add(&sup, 1).await;
    add(&sup, 2).await;
    assert_eq!(
        sup.start_child(3).await.unwrap_err(),
        ChildError::MaxChildren
    );

    lab.set_start("child:1", StartMode::Error("cannot start".into()));
    crash(&c1, died());
    wait_looping(&lab, "child:1", 1).await;
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 2));
    assert_eq!(
        sup.start_child(3).await.unwrap_err(),
        ChildError::MaxChildren,
        "a restarting child counts"
    );
    sup.terminate_child(&c1).await.unwrap();
    add(&sup, 3).await;
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 2, 0, 2));
    sup.shutdown().await;
}

/// Elixir's `extra_arguments`: the arguments given to `start_child` reach the child at
/// its start and again at every restart. Rust has one argument value per child instead of a list
/// with a prefix; any common part lives in the template's closure, which every start shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_extra_arguments() {
    let lab = Lab::new();
    let sup = start(lab.dynamic_spec("child").restart_intensity(10, HOUR)).await;
    let mut c7 = add(&sup, 7).await;
    add(&sup, 8).await;
    for _ in 0..2 {
        crash(&c7, died());
        wait_dead(&c7).await;
        eventually_running(&sup, 2, &[&c7]).await;
        c7 = sup
            .which_children()
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.id == "1")
            .and_then(|i| i.status.pid().cloned())
            .expect("child 1 runs");
    }
    let started = lab.started();
    assert_eq!(
        started.iter().filter(|s| *s == "child:7").count(),
        3,
        "args 7 at the start and both restarts: {started:?}"
    );
    assert_eq!(started.iter().filter(|s| *s == "child:8").count(), 1);
    assert_eq!(started.len(), 4);

    // The same through DynamicSpec::actor: the args are the actor's Arguments.
    let w = Watcher::new().await;
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sup2 = DynamicSupervisor::start(DynamicSpec::actor(Recorder(seen.clone())))
        .await
        .unwrap();
    let r = sup2.start_child(99).await.unwrap().cell.unwrap();
    w.watch(&r);
    r.kill();
    assert_eq!(w.exit_of(&r).await, ExitReason::Killed);
    eventually("the recorder restarts", || seen.lock().len() == 2).await;
    assert_eq!(*seen.lock(), [99, 99]);
    sup2.shutdown().await;
    sup.shutdown().await;
}

/// Records the arguments of every start.
#[derive(Clone)]
struct Recorder(Arc<parking_lot::Mutex<Vec<u32>>>);

impl Actor for Recorder {
    type Msg = ();
    type State = ();
    type Arguments = u32;

    async fn pre_start(&self, _: ActorRef<()>, args: u32) -> Result<(), ActorProcessingErr> {
        self.0.lock().push(args);
        Ok(())
    }
}
