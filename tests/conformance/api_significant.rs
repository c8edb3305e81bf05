//! OTP conformance: the child management API and significant children with
//! auto-shutdown, ported from OTP's `supervisor_SUITE.erl`.
//!
//! Each test is named after the OTP case it ports. Where OTP's case checks that something does
//! *not* happen ("error = check_exit([Sup], 1000)"), the test waits until the supervisor has
//! handled the exit that could have made it happen, and then checks that it did not (see
//! [`assert_keeps_running`]). Exit reasons are learnt through ractor monitors (`Watcher`), the way
//! the OTP suite links to the children it checks.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use canopy::{
    AutoShutdown, ChildError, ChildInfo, ChildKind, ChildSpec, ChildStatus, ExitReason, Restart,
    Shutdown, Strategy, Supervisor, SupervisorRef, SupervisorSpec,
};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus};

use crate::common::*;

/// OTP's `{intensity => 5}` flags with a period long enough never to forget a restart here.
fn flags(strategy: Strategy, mode: AutoShutdown) -> SupervisorSpec {
    SupervisorSpec::new(strategy)
        .restart_intensity(5, Duration::from_secs(3600))
        .auto_shutdown(mode)
}

async fn start(spec: SupervisorSpec) -> SupervisorRef {
    Supervisor::start(spec).await.expect("supervisor starts")
}

fn ids(children: &[ChildInfo]) -> Vec<&str> {
    children.iter().map(|c| c.id.as_str()).collect()
}

/// The running cell of every child, in `which_children` order; panics on a child that does not run.
fn cells(children: &[ChildInfo]) -> Vec<ActorCell> {
    children
        .iter()
        .map(|c| {
            c.status
                .pid()
                .cloned()
                .unwrap_or_else(|| panic!("child {} is not running: {:?}", c.id, c.status))
        })
        .collect()
}

/// A name no other test uses, for ractor's process-wide registry.
fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "api_significant_{what}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// OTP's `error = check_exit([Sup], 1000)`: the exit of `exited` must not make the supervisor exit.
/// Once `exited` is seen as stopped its exit has been sent to the supervisor, which takes
/// supervision events before calls: the call below is answered only after the supervisor has
/// handled that exit (restarts, auto-shutdown and all), and only if it is still running.
async fn assert_keeps_running(sup: &SupervisorRef, w: &Watcher, exited: &ActorCell, what: &str) {
    wait_dead(exited).await;
    sup.count_children()
        .await
        .unwrap_or_else(|e| panic!("{what}: the supervisor must still answer, got {e}"));
    assert_eq!(
        w.exited(&sup.cell()),
        None,
        "{what}: the supervisor must keep running"
    );
}

/// The child has not exited (call after `assert_keeps_running`: a child the supervisor stopped
/// while handling the exit is stopped by the time the supervisor answers).
fn assert_alive(w: &Watcher, cell: &ActorCell, what: &str) {
    assert_eq!(w.exited(cell), None, "{what}: must still be running");
    assert_ne!(
        cell.get_status(),
        ActorStatus::Stopped,
        "{what}: must still be running"
    );
}

fn temporary(lab: &Lab, id: &str, significant: bool) -> ChildSpec {
    lab.spec(id)
        .restart(Restart::Temporary)
        .significant(significant)
}

fn transient(lab: &Lab, id: &str, significant: bool) -> ChildSpec {
    lab.spec(id)
        .restart(Restart::Transient)
        .significant(significant)
}

fn abnormal() -> ExitReason {
    ExitReason::Error("abnormal".into())
}

/// Every field `which_children` reports, so two views of one child can be compared.
fn same_child(a: &ChildInfo, b: &ChildInfo) -> bool {
    a.id == b.id
        && a.status == b.status
        && a.kind == b.kind
        && a.restart == b.restart
        && a.restarts == b.restarts
        && a.last_exit == b.last_exit
}

/// `which_children`, after checking that `which_child` agrees with it on every child and that
/// `count_children` counts the same children.
async fn agreeing_children(sup: &SupervisorRef) -> Vec<ChildInfo> {
    let all = sup.which_children().await.expect("which_children");
    for info in &all {
        let one = sup.which_child(&info.id).await.expect("which_child");
        assert!(
            same_child(info, &one),
            "which_child({}) = {one:?} disagrees with which_children: {info:?}",
            info.id
        );
    }
    let c = sup.count_children().await.expect("count_children");
    assert_eq!(c.specs, all.len(), "count_children specs vs which_children");
    assert_eq!(
        c.active,
        all.iter().filter(|i| i.status.pid().is_some()).count(),
        "count_children active vs which_children"
    );
    all
}

/// Starts a supervisor under `strategy`/`mode` and adds child1 (significant), child2 (significant)
/// and child3 (not significant), all of `restart` type, as OTP's significant_* cases do. Returns
/// the supervisor and the cells of child1, child2, child3, all watched by `w` (the supervisor too).
async fn three_children(
    lab: &Lab,
    w: &Watcher,
    strategy: Strategy,
    mode: AutoShutdown,
    restart: Restart,
) -> (SupervisorRef, [ActorCell; 3]) {
    let sup = start(flags(strategy, mode)).await;
    w.watch(&sup.cell());
    for (id, significant) in [("child1", true), ("child2", true), ("child3", false)] {
        sup.start_child(lab.spec(id).restart(restart).significant(significant))
            .await
            .unwrap_or_else(|e| panic!("start_child({id}): {e}"));
    }
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child3", "child2", "child1"]);
    let [c3, c2, c1]: [ActorCell; 3] = cells(&children).try_into().unwrap();
    for c in [&c1, &c2, &c3] {
        w.watch(c);
    }
    (sup, [c1, c2, c3])
}

/// The position of `id` among the `Stopped` events.
fn stop_position(lab: &Lab, id: &str) -> usize {
    lab.stopped()
        .iter()
        .position(|s| s == id)
        .unwrap_or_else(|| panic!("{id} was not stopped gracefully: {:?}", lab.stopped()))
}

// -------------------------------------------------------------------------------------------------
// Child management API

/// The full walk-through of the child management API on a static supervisor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_adm() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let child = || {
        lab.spec("child1")
            .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
    };
    let sup = start(
        SupervisorSpec::new(Strategy::OneForOne)
            .restart_intensity(2, Duration::from_secs(3600))
            .child(child()),
    )
    .await;
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child1"]);
    assert_eq!(children[0].kind, ChildKind::Worker);
    let cpid = cells(&children).remove(0);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    w.watch(&cpid);

    // A supervisor that is gone: every call is OTP's noproc.
    let gone =
        start(SupervisorSpec::new(Strategy::OneForOne).child(Lab::new().spec("child1"))).await;
    gone.shutdown().await;

    // Start of an already running child.
    assert_eq!(
        sup.start_child(child()).await.unwrap_err(),
        ChildError::AlreadyStarted {
            id: "child1".into(),
            pid: cpid.clone()
        }
    );

    // Termination.
    assert_eq!(
        sup.terminate_child("hej").await.unwrap_err(),
        ChildError::NotFound("hej".into())
    );
    assert_eq!(
        gone.terminate_child("child1").await.unwrap_err(),
        ChildError::SupervisorDown
    );
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(w.exit_of(&cpid).await, ExitReason::Shutdown);
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child1"]);
    assert_eq!(children[0].status, ChildStatus::Stopped);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));
    // Terminating a child that is not running succeeds, like deleting something that isn't there.
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));

    // Start of a child that exists but does not run.
    assert_eq!(
        sup.start_child(child()).await.unwrap_err(),
        ChildError::AlreadyPresent("child1".into())
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));

    // Restart.
    let cpid2 = sup
        .restart_child("child1")
        .await
        .unwrap()
        .cell
        .expect("restart_child gives the new process");
    assert_ne!(cpid2, cpid);
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child1"]);
    assert_eq!(children[0].status, ChildStatus::Running(cpid2.clone()));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    assert_eq!(
        sup.restart_child("child1").await.unwrap_err(),
        ChildError::Running("child1".into())
    );
    assert_eq!(
        sup.restart_child("child2").await.unwrap_err(),
        ChildError::NotFound("child2".into())
    );

    // Deletion.
    assert_eq!(
        sup.delete_child("child1").await.unwrap_err(),
        ChildError::Running("child1".into())
    );
    assert_eq!(
        sup.delete_child("hej").await.unwrap_err(),
        ChildError::NotFound("hej".into())
    );
    assert_eq!(
        gone.delete_child("child1").await.unwrap_err(),
        ChildError::SupervisorDown
    );
    w.watch(&cpid2);
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(w.exit_of(&cpid2).await, ExitReason::Shutdown);
    sup.delete_child("child1").await.unwrap();
    assert_eq!(
        sup.restart_child("child1").await.unwrap_err(),
        ChildError::NotFound("child1".into())
    );
    assert_eq!(
        sup.delete_child("child1").await.unwrap_err(),
        ChildError::NotFound("child1".into())
    );
    assert!(sup.which_children().await.unwrap().is_empty());
    assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));

    // Start.
    assert_eq!(
        gone.start_child(child()).await.unwrap_err(),
        ChildError::SupervisorDown
    );
    let cpid3 = sup
        .start_child(child())
        .await
        .unwrap()
        .cell
        .expect("start_child gives the new process");
    w.watch(&cpid3);
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child1"]);
    assert_eq!(children[0].status, ChildStatus::Running(cpid3.clone()));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));

    // A process is not a child id on a static supervisor: not_found, and the child is untouched.
    let as_id = cpid3.get_id().to_string();
    assert_eq!(
        sup.terminate_child(&as_id).await.unwrap_err(),
        ChildError::NotFound(as_id)
    );
    let children = sup.which_children().await.unwrap();
    assert_eq!(children[0].status, ChildStatus::Running(cpid3.clone()));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    assert_eq!(w.exited(&cpid3), None);

    // The queries on a supervisor that is gone.
    assert_eq!(
        gone.which_children().await.unwrap_err(),
        ChildError::SupervisorDown
    );
    assert_eq!(
        gone.count_children().await.unwrap_err(),
        ChildError::SupervisorDown
    );
    assert_eq!(
        gone.which_child("child1").await.unwrap_err(),
        ChildError::SupervisorDown
    );
    assert_eq!(
        gone.restart_child("child1").await.unwrap_err(),
        ChildError::SupervisorDown
    );
    assert!(matches!(
        gone.get_childspec("child1").await,
        Err(ChildError::SupervisorDown)
    ));

    sup.shutdown().await;
    assert_eq!(w.exit_of(&cpid3).await, ExitReason::Shutdown);
}

/// `{ok, Pid, Info}` from the start function reaches the caller of `start_child` and
/// `restart_child`; the supervisor keeps nothing of it and restarts the child automatically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_return() {
    trace();
    let lab = Lab::new();
    lab.set_start("child1", StartMode::OkWithInfo(42));
    let w = Watcher::new().await;
    let child = || {
        lab.spec("child1")
            .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
    };
    let sup = start(
        SupervisorSpec::new(Strategy::OneForOne)
            .restart_intensity(2, Duration::from_secs(3600))
            .child(child()),
    )
    .await;
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child1"]);
    let cpid = cells(&children).remove(0);
    w.watch(&cpid);

    for missing in [
        sup.terminate_child("hej").await.unwrap_err(),
        sup.delete_child("hej").await.unwrap_err(),
        sup.restart_child("hej").await.unwrap_err(),
    ] {
        assert_eq!(missing, ChildError::NotFound("hej".into()));
    }
    assert_eq!(
        sup.delete_child("child1").await.unwrap_err(),
        ChildError::Running("child1".into())
    );
    assert_eq!(
        sup.restart_child("child1").await.unwrap_err(),
        ChildError::Running("child1".into())
    );
    let children = sup.which_children().await.unwrap();
    assert_eq!(children[0].status, ChildStatus::Running(cpid.clone()));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));

    sup.terminate_child("child1").await.unwrap();
    assert_eq!(w.exit_of(&cpid).await, ExitReason::Shutdown);
    let children = sup.which_children().await.unwrap();
    assert_eq!(children[0].status, ChildStatus::Stopped);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));

    // restart_child hands the info back.
    let restarted = sup.restart_child("child1").await.unwrap();
    assert_eq!(restarted.info_as::<u32>(), Some(&42));
    let cpid2 = restarted.cell.clone().expect("restarted child runs");
    let children = sup.which_children().await.unwrap();
    assert_eq!(children[0].status, ChildStatus::Running(cpid2.clone()));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));

    sup.terminate_child("child1").await.unwrap();
    sup.terminate_child("child1").await.unwrap();
    sup.delete_child("child1").await.unwrap();
    assert_eq!(
        sup.restart_child("child1").await.unwrap_err(),
        ChildError::NotFound("child1".into())
    );
    assert!(sup.which_children().await.unwrap().is_empty());
    assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));

    // start_child hands the info back.
    let started = sup.start_child(child()).await.unwrap();
    assert_eq!(started.info_as::<u32>(), Some(&42));
    let cpid3 = started.cell.clone().expect("started child runs");
    let children = sup.which_children().await.unwrap();
    assert_eq!(children[0].status, ChildStatus::Running(cpid3.clone()));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));

    // An automatic restart still works with a start function that returns info.
    w.watch(&cpid3);
    crash(&cpid3, abnormal());
    assert_eq!(w.exit_of(&cpid3).await, abnormal());
    let cpid4 = running_child(&sup, "child1", Some(&cpid3)).await;
    assert_ne!(cpid4, cpid3);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    assert_eq!(lab.starts("child1"), 4);

    sup.shutdown().await;
}

/// OTP 28: `which_child(id)` agrees with `which_children()` through start, restart,
/// terminate and delete; `which_children` lists the most recently added child first, and a
/// restart does not move a child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn which_children() {
    trace();
    let lab = Lab::new();
    let sup = start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("child1"))
            .child(transient(&lab, "child2", false)),
    )
    .await;
    let all = agreeing_children(&sup).await;
    assert_eq!(ids(&all), ["child2", "child1"]);
    assert_eq!(all[0].restart, Restart::Transient);
    assert_eq!(all[1].restart, Restart::Permanent);
    let c1 = cells(&all)[1].clone();
    assert_eq!(
        sup.which_child("child3").await.unwrap_err(),
        ChildError::NotFound("child3".into())
    );

    // Start: the new child comes first.
    let c3 = sup
        .start_child(temporary(&lab, "child3", false))
        .await
        .unwrap()
        .cell
        .unwrap();
    let all = agreeing_children(&sup).await;
    assert_eq!(ids(&all), ["child3", "child2", "child1"]);
    let one = sup.which_child("child3").await.unwrap();
    assert_eq!(one.status, ChildStatus::Running(c3.clone()));
    assert_eq!(one.restart, Restart::Temporary);
    assert_eq!(one.kind, ChildKind::Worker);

    // An automatic restart replaces the process in place.
    crash(&c1, abnormal());
    let c1b = running_child(&sup, "child1", Some(&c1)).await;
    let all = agreeing_children(&sup).await;
    assert_eq!(ids(&all), ["child3", "child2", "child1"]);
    let one = sup.which_child("child1").await.unwrap();
    assert_eq!(one.status, ChildStatus::Running(c1b));
    assert_eq!(one.restarts, 1);
    assert_eq!(one.last_exit, Some(abnormal()));

    // Terminate: the spec stays, not running.
    sup.terminate_child("child2").await.unwrap();
    let all = agreeing_children(&sup).await;
    assert_eq!(ids(&all), ["child3", "child2", "child1"]);
    assert_eq!(
        sup.which_child("child2").await.unwrap().status,
        ChildStatus::Stopped
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(3, 2, 0, 3));

    // Terminate a temporary child: its spec is gone.
    sup.terminate_child("child3").await.unwrap();
    let all = agreeing_children(&sup).await;
    assert_eq!(ids(&all), ["child2", "child1"]);
    assert_eq!(
        sup.which_child("child3").await.unwrap_err(),
        ChildError::NotFound("child3".into())
    );

    // Restart through the API.
    let c2 = sup.restart_child("child2").await.unwrap().cell.unwrap();
    let all = agreeing_children(&sup).await;
    assert_eq!(ids(&all), ["child2", "child1"]);
    assert_eq!(
        sup.which_child("child2").await.unwrap().status,
        ChildStatus::Running(c2)
    );

    // Delete.
    sup.terminate_child("child2").await.unwrap();
    sup.delete_child("child2").await.unwrap();
    let all = agreeing_children(&sup).await;
    assert_eq!(ids(&all), ["child1"]);
    assert_eq!(
        sup.which_child("child2").await.unwrap_err(),
        ChildError::NotFound("child2".into())
    );

    // A child added after a delete comes first again.
    sup.start_child(lab.spec("child4")).await.unwrap();
    let all = agreeing_children(&sup).await;
    assert_eq!(ids(&all), ["child4", "child1"]);
    assert_eq!(sup.count_children().await.unwrap(), counts(2, 2, 0, 2));

    sup.shutdown().await;
}

/// An actor that only holds a registered name.
struct Squatter;

impl Actor for Squatter {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// A start function that clashes with a name registered outside the tree gives
/// `already_started` with the process holding the name; nothing is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_started_outside_supervisor() {
    trace();
    let name = unique("outside");
    let (squatter, _) = Actor::spawn(Some(name.clone()), Squatter, ())
        .await
        .expect("the outside actor registers its name");
    let lab = Lab::new();
    lab.set_start("child1", StartMode::Named(name.clone()));
    let sup = start(SupervisorSpec::new(Strategy::OneForOne)).await;

    assert_eq!(
        sup.start_child(lab.spec("child1")).await.unwrap_err(),
        ChildError::AlreadyStarted {
            id: "child1".into(),
            pid: squatter.get_cell()
        }
    );
    assert_eq!(lab.starts("child1"), 1);
    assert!(sup.which_children().await.unwrap().is_empty());
    assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));
    assert_eq!(squatter.get_status(), ActorStatus::Running);

    // Nothing was kept: once the name is free, the same spec starts (not `already_present`).
    squatter.stop(None);
    wait_dead(&squatter.get_cell()).await;
    eventually("the name is released", || {
        ractor::registry::where_is(name.clone()).is_none()
    })
    .await;
    let started = sup.start_child(lab.spec("child1")).await.unwrap();
    let cell = started.cell.expect("child1 runs");
    assert_eq!(cell.get_name().as_deref(), Some(name.as_str()));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));

    sup.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// Significant children and auto-shutdown

const ALL_MODES: [AutoShutdown; 3] = [
    AutoShutdown::Never,
    AutoShutdown::AnySignificant,
    AutoShutdown::AllSignificant,
];

/// Under every auto-shutdown mode, no exit of a temporary non-significant child (API
/// stop, kill, abnormal, normal) shuts the supervisor down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsignificant_temporary() {
    trace();
    futures::future::join_all(ALL_MODES.map(nonsignificant_temporary_under)).await;
}

async fn nonsignificant_temporary_under(mode: AutoShutdown) {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(flags(Strategy::OneForOne, mode)).await;
    w.watch(&sup.cell());
    let start_child1 = || async {
        let cell = sup
            .start_child(temporary(&lab, "child1", false))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: start_child: {e}"))
            .cell
            .unwrap();
        w.watch(&cell);
        cell
    };

    // Terminated through the supervisor.
    let c = start_child1().await;
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(w.exit_of(&c).await, ExitReason::Shutdown);
    assert_keeps_running(&sup, &w, &c, &format!("{mode:?}, terminate_child")).await;

    // Killed.
    let c = start_child1().await;
    c.kill();
    assert_eq!(w.exit_of(&c).await, ExitReason::Killed);
    assert_keeps_running(&sup, &w, &c, &format!("{mode:?}, kill")).await;

    // Abnormal exit.
    let c = start_child1().await;
    crash(&c, abnormal());
    assert_eq!(w.exit_of(&c).await, abnormal());
    assert_keeps_running(&sup, &w, &c, &format!("{mode:?}, abnormal")).await;

    // Normal exit.
    let c = start_child1().await;
    crash(&c, ExitReason::Normal);
    assert_eq!(w.exit_of(&c).await, ExitReason::Normal);
    assert_keeps_running(&sup, &w, &c, &format!("{mode:?}, normal")).await;
    assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));

    sup.shutdown().await;
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

/// Under every auto-shutdown mode, no exit of a transient non-significant child (API
/// stop, kill and abnormal, which restart it, normal, which does not) shuts the supervisor down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsignificant_transient() {
    trace();
    futures::future::join_all(ALL_MODES.map(nonsignificant_transient_under)).await;
}

async fn nonsignificant_transient_under(mode: AutoShutdown) {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(flags(Strategy::OneForOne, mode)).await;
    w.watch(&sup.cell());

    // Terminated through the supervisor.
    let c1 = sup
        .start_child(transient(&lab, "child1", false))
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: start_child: {e}"))
        .cell
        .unwrap();
    w.watch(&c1);
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(w.exit_of(&c1).await, ExitReason::Shutdown);
    assert_keeps_running(&sup, &w, &c1, &format!("{mode:?}, terminate_child")).await;
    assert_eq!(
        sup.which_child("child1").await.unwrap().status,
        ChildStatus::Stopped
    );

    // Killed: restarted.
    let c2 = sup.restart_child("child1").await.unwrap().cell.unwrap();
    w.watch(&c2);
    c2.kill();
    assert_eq!(w.exit_of(&c2).await, ExitReason::Killed);
    assert_keeps_running(&sup, &w, &c2, &format!("{mode:?}, kill")).await;
    let c3 = running_child(&sup, "child1", Some(&c2)).await;

    // Abnormal exit: restarted.
    w.watch(&c3);
    crash(&c3, abnormal());
    assert_eq!(w.exit_of(&c3).await, abnormal());
    assert_keeps_running(&sup, &w, &c3, &format!("{mode:?}, abnormal")).await;
    let c4 = running_child(&sup, "child1", Some(&c3)).await;

    // Normal exit: not restarted.
    w.watch(&c4);
    crash(&c4, ExitReason::Normal);
    assert_eq!(w.exit_of(&c4).await, ExitReason::Normal);
    assert_keeps_running(&sup, &w, &c4, &format!("{mode:?}, normal")).await;
    assert_eq!(
        sup.which_child("child1").await.unwrap().status,
        ChildStatus::Stopped
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));

    sup.shutdown().await;
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

/// Temporary significant children. `any_significant`: `terminate_child` does not
/// trigger auto-shutdown; a kill, an abnormal and a normal exit each do: the other children are
/// stopped in reverse start order and the supervisor exits `shutdown`. `all_significant`: only the
/// exit of the last significant child triggers it (and stopping it through the API never does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn significant_temporary() {
    trace();
    tokio::join!(
        significant_temporary_terminate_then_kill(),
        significant_temporary_any_exit(abnormal()),
        significant_temporary_any_exit(ExitReason::Normal),
        significant_temporary_all(),
        significant_temporary_all_terminate_last(),
    );
}

async fn significant_temporary_terminate_then_kill() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let (sup, [c1, c2, c3]) = three_children(
        &lab,
        &w,
        Strategy::OneForOne,
        AutoShutdown::AnySignificant,
        Restart::Temporary,
    )
    .await;

    // Terminating a significant child through the supervisor does not trigger auto-shutdown.
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(w.exit_of(&c1).await, ExitReason::Shutdown);
    assert_keeps_running(&sup, &w, &c1, "any_significant, terminate_child").await;
    assert_alive(&w, &c2, "child2");
    assert_alive(&w, &c3, "child3");

    // Killing one does.
    let n1 = sup
        .start_child(temporary(&lab, "child1", true))
        .await
        .unwrap()
        .cell
        .unwrap();
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child1", "child3", "child2"]);
    w.watch(&n1);
    lab.clear_events();
    n1.kill();
    assert_eq!(w.exit_of(&n1).await, ExitReason::Killed);
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&c3).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    // An orderly shutdown: reverse start order.
    assert_eq!(lab.stopped(), ["child3", "child2"]);
}

async fn significant_temporary_any_exit(reason: ExitReason) {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let (sup, [c1, c2, c3]) = three_children(
        &lab,
        &w,
        Strategy::OneForOne,
        AutoShutdown::AnySignificant,
        Restart::Temporary,
    )
    .await;
    lab.clear_events();
    crash(&c1, reason.clone());
    assert_eq!(w.exit_of(&c1).await, reason);
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown, "{reason:?}");
    assert_eq!(w.exit_of(&c3).await, ExitReason::Shutdown, "{reason:?}");
    assert_eq!(
        w.exit_of(&sup.cell()).await,
        ExitReason::Shutdown,
        "{reason:?}"
    );
    assert!(
        stop_position(&lab, "child3") < stop_position(&lab, "child2"),
        "{reason:?}: children must stop in reverse start order: {:?}",
        lab.stopped()
    );
}

async fn significant_temporary_all() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let (sup, [c1, c2, c3]) = three_children(
        &lab,
        &w,
        Strategy::OneForOne,
        AutoShutdown::AllSignificant,
        Restart::Temporary,
    )
    .await;

    // One of the two significant children exits: nothing happens.
    crash(&c1, ExitReason::Normal);
    assert_eq!(w.exit_of(&c1).await, ExitReason::Normal);
    assert_keeps_running(&sup, &w, &c1, "all_significant, first significant exit").await;
    assert_alive(&w, &c2, "child2");
    assert_alive(&w, &c3, "child3");
    assert_eq!(
        ids(&sup.which_children().await.unwrap()),
        ["child3", "child2"]
    );

    // The last one exits: auto-shutdown.
    crash(&c2, ExitReason::Normal);
    assert_eq!(w.exit_of(&c2).await, ExitReason::Normal);
    assert_eq!(w.exit_of(&c3).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

async fn significant_temporary_all_terminate_last() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let (sup, [c1, c2, c3]) = three_children(
        &lab,
        &w,
        Strategy::OneForOne,
        AutoShutdown::AllSignificant,
        Restart::Temporary,
    )
    .await;
    crash(&c1, abnormal());
    assert_eq!(w.exit_of(&c1).await, abnormal());
    // Stopping the last significant child through the supervisor does not trigger it either.
    sup.terminate_child("child2").await.unwrap();
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown);
    assert_keeps_running(
        &sup,
        &w,
        &c2,
        "all_significant, terminate_child of the last",
    )
    .await;
    assert_alive(&w, &c3, "child3");
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    sup.shutdown().await;
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

/// Transient significant children. `terminate_child` does not trigger auto-shutdown; a
/// kill or an abnormal exit means a restart and no shutdown; a normal-class exit (normal, shutdown,
/// {shutdown, _}) triggers it (`any`), or triggers it once the last significant child is gone
/// (`all`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn significant_transient() {
    trace();
    tokio::join!(significant_transient_any(), significant_transient_all());
}

async fn significant_transient_any() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let (sup, [c1, c2, c3]) = three_children(
        &lab,
        &w,
        Strategy::OneForOne,
        AutoShutdown::AnySignificant,
        Restart::Transient,
    )
    .await;

    // Terminated through the supervisor: no auto-shutdown.
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(w.exit_of(&c1).await, ExitReason::Shutdown);
    assert_keeps_running(&sup, &w, &c1, "any_significant, terminate_child").await;
    assert_alive(&w, &c2, "child2");
    assert_alive(&w, &c3, "child3");
    let n1 = sup.restart_child("child1").await.unwrap().cell.unwrap();
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child3", "child2", "child1"]);
    assert_eq!(children[2].status, ChildStatus::Running(n1.clone()));

    // Killed: restarted, no auto-shutdown.
    w.watch(&n1);
    n1.kill();
    assert_eq!(w.exit_of(&n1).await, ExitReason::Killed);
    assert_keeps_running(&sup, &w, &n1, "any_significant, kill").await;
    let n2 = running_child(&sup, "child1", Some(&n1)).await;
    assert_alive(&w, &c2, "child2");
    assert_alive(&w, &c3, "child3");

    // Abnormal exit: restarted, no auto-shutdown.
    w.watch(&n2);
    crash(&n2, abnormal());
    assert_eq!(w.exit_of(&n2).await, abnormal());
    assert_keeps_running(&sup, &w, &n2, "any_significant, abnormal").await;
    let n3 = running_child(&sup, "child1", Some(&n2)).await;
    assert_alive(&w, &c2, "child2");
    assert_alive(&w, &c3, "child3");
    assert_eq!(sup.count_children().await.unwrap(), counts(3, 3, 0, 3));

    // Normal exit: auto-shutdown.
    w.watch(&n3);
    crash(&n3, ExitReason::Normal);
    assert_eq!(w.exit_of(&n3).await, ExitReason::Normal);
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&c3).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

async fn significant_transient_all() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let (sup, [c1, c2, c3]) = three_children(
        &lab,
        &w,
        Strategy::OneForOne,
        AutoShutdown::AllSignificant,
        Restart::Transient,
    )
    .await;

    // The first significant child exits normally (`shutdown`): kept, not restarted, no shutdown.
    crash(&c1, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&c1).await, ExitReason::Shutdown);
    assert_keeps_running(&sup, &w, &c1, "all_significant, first significant exit").await;
    assert_alive(&w, &c2, "child2");
    assert_alive(&w, &c3, "child3");
    assert_eq!(
        sup.which_child("child1").await.unwrap().status,
        ChildStatus::Stopped
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(3, 2, 0, 3));

    // The last one exits normally (`{shutdown, _}`): auto-shutdown.
    let done = ExitReason::ShutdownWith("done".into());
    crash(&c2, done.clone());
    assert_eq!(w.exit_of(&c2).await, done);
    assert_eq!(w.exit_of(&c3).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
}

/// Significant children terminated as bystanders of a one_for_all or rest_for_one
/// restart are restarted and do not trigger auto-shutdown (nor does anything under one_for_one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn significant_bystander() {
    trace();
    let mut cases = Vec::new();
    for strategy in [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ] {
        for mode in [AutoShutdown::AnySignificant, AutoShutdown::AllSignificant] {
            cases.push(significant_bystander_under(strategy, mode));
        }
    }
    futures::future::join_all(cases).await;
}

async fn significant_bystander_under(strategy: Strategy, mode: AutoShutdown) {
    let what = format!("{strategy:?}/{mode:?}");
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = start(flags(strategy, mode)).await;
    w.watch(&sup.cell());
    for (id, significant) in [("child1", true), ("child2", false), ("child3", true)] {
        sup.start_child(transient(&lab, id, significant))
            .await
            .unwrap();
    }
    let children = sup.which_children().await.unwrap();
    assert_eq!(ids(&children), ["child3", "child2", "child1"]);
    let [c3, c2, c1]: [ActorCell; 3] = cells(&children).try_into().unwrap();
    for c in [&c1, &c2, &c3] {
        w.watch(c);
    }

    c2.kill();
    assert_eq!(w.exit_of(&c2).await, ExitReason::Killed, "{what}");
    let (bystanders, untouched): (Vec<_>, Vec<_>) = match strategy {
        Strategy::OneForOne => (vec![], vec![("child1", &c1), ("child3", &c3)]),
        Strategy::OneForAll => (vec![("child1", &c1), ("child3", &c3)], vec![]),
        Strategy::RestForOne => (vec![("child3", &c3)], vec![("child1", &c1)]),
    };
    for (id, cell) in &bystanders {
        assert_eq!(
            w.exit_of(cell).await,
            ExitReason::Shutdown,
            "{what}: bystander {id} is stopped by the supervisor"
        );
    }
    assert_keeps_running(&sup, &w, &c2, &what).await;

    // Every child runs again: the crashed one and the bystanders in new processes.
    running_child(&sup, "child2", Some(&c2)).await;
    for (id, cell) in &bystanders {
        running_child(&sup, id, Some(cell)).await;
    }
    for (id, cell) in &untouched {
        assert_alive(&w, cell, &format!("{what}: {id}"));
        assert_eq!(
            sup.which_child(id).await.unwrap().status,
            ChildStatus::Running((*cell).clone()),
            "{what}: {id} is not restarted"
        );
    }
    assert_eq!(
        sup.count_children().await.unwrap(),
        counts(3, 3, 0, 3),
        "{what}"
    );
    assert_eq!(lab.starts("child2"), 2, "{what}");
    for id in ["child1", "child3"] {
        let expected = if bystanders.iter().any(|(b, _)| *b == id) {
            2
        } else {
            1
        };
        assert_eq!(lab.starts(id), expected, "{what}: starts of {id}");
    }

    sup.shutdown().await;
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown, "{what}");
}

/// Supervisor B auto-shuts down when its significant child exits normally; if B is a
/// significant (transient) child of A, A auto-shuts down too; if it is not significant, A keeps
/// running with B stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn significant_escalation() {
    trace();
    tokio::join!(
        significant_escalation_with(true),
        significant_escalation_with(false)
    );
}

async fn significant_escalation_with(b_significant: bool) {
    let what = format!("B significant: {b_significant}");
    let lab = Lab::new();
    let name = unique("escalation_child1");
    lab.set_start("child1", StartMode::Named(name.clone()));
    let w = Watcher::new().await;

    let b = ChildSpec::supervisor(
        "sup1",
        SupervisorSpec::new(Strategy::OneForOne)
            .auto_shutdown(AutoShutdown::AnySignificant)
            .child(transient(&lab, "child1", true)),
    )
    .restart(Restart::Transient)
    .significant(b_significant);
    let a =
        start(SupervisorSpec::new(Strategy::OneForOne).auto_shutdown(AutoShutdown::AnySignificant))
            .await;
    w.watch(&a.cell());
    let b_cell = a.start_child(b).await.unwrap().cell.expect("B runs");
    w.watch(&b_cell);
    assert_eq!(a.count_children().await.unwrap(), counts(1, 1, 1, 0));
    let c = ractor::registry::where_is(name).expect("B started child1");
    assert_eq!(
        c.try_get_supervisor().map(|s| s.get_id()),
        Some(b_cell.get_id()),
        "child1 is B's child"
    );
    w.watch(&c);

    crash(&c, ExitReason::Normal);
    assert_eq!(w.exit_of(&c).await, ExitReason::Normal, "{what}");
    assert_eq!(w.exit_of(&b_cell).await, ExitReason::Shutdown, "{what}");
    if b_significant {
        assert_eq!(w.exit_of(&a.cell()).await, ExitReason::Shutdown, "{what}");
    } else {
        assert_keeps_running(&a, &w, &b_cell, &what).await;
        assert_eq!(
            a.which_child("sup1").await.unwrap().status,
            ChildStatus::Stopped,
            "{what}: B, transient, is not restarted after its shutdown"
        );
        assert_eq!(a.count_children().await.unwrap(), counts(1, 0, 1, 0));
        a.shutdown().await;
        assert_eq!(w.exit_of(&a.cell()).await, ExitReason::Shutdown, "{what}");
    }
}
