//! OTP conformance: restart types, strategies and restart intensity (see docs/semantics.md).
//!
//! Each test is named after the case of OTP's `supervisor_SUITE` it ports. Counts written
//! `[specs, active, supervisors, workers]` are OTP's `count_children`, here [`ChildCounts`].
//!
//! Waiting: a child's exit reaches its supervisor before the child is seen as stopped, and a
//! supervisor handles exits before API calls, so a query made after `wait_dead(child)` already sees
//! the supervisor's reaction to that exit. Restarts are awaited with `running_child`.

use std::time::Duration;

use canopy::core::REACHED_MAX_RESTART_INTENSITY;
use canopy::{
    ChildError, ChildSpec, ChildStatus, ExitReason, Restart, Shutdown, Strategy, Supervisor,
    SupervisorRef, SupervisorSpec,
};
use ractor::ActorCell;

use crate::common::*;

/// OTP's `3600`: a period no test lives through.
const HOUR: Duration = Duration::from_secs(3600);

/// OTP's `abnormal` termination: the child's handler fails with `died`.
fn died() -> ExitReason {
    ExitReason::Error("died".into())
}

/// What a supervisor exits with when its restart budget is spent.
fn gave_up() -> ExitReason {
    ExitReason::ShutdownWith(REACHED_MAX_RESTART_INTENSITY.into())
}

/// A started supervisor with no children (OTP's `start_link({ok, {{Strategy, I, P}, []}})`).
async fn empty_sup(strategy: Strategy, intensity: u32, period: Duration) -> SupervisorRef {
    Supervisor::start(SupervisorSpec::new(strategy).restart_intensity(intensity, period))
        .await
        .expect("supervisor starts")
}

/// `start_child` that must start a running child; returns its cell.
async fn add(sup: &SupervisorRef, spec: ChildSpec) -> ActorCell {
    let id = spec.id().to_string();
    sup.start_child(spec)
        .await
        .unwrap_or_else(|e| panic!("start_child {id}: {e}"))
        .cell
        .unwrap_or_else(|| panic!("child {id} ignored its start"))
}

/// `which_children` as (id, status) pairs, most recently started first.
async fn children(sup: &SupervisorRef) -> Vec<(String, ChildStatus<ActorCell>)> {
    sup.which_children()
        .await
        .expect("supervisor answers")
        .into_iter()
        .map(|c| (c.id, c.status))
        .collect()
}

fn running(id: &str, cell: &ActorCell) -> (String, ChildStatus<ActorCell>) {
    (id.to_string(), ChildStatus::Running(cell.clone()))
}

fn stopped(id: &str) -> (String, ChildStatus<ActorCell>) {
    (id.to_string(), ChildStatus::Stopped)
}

fn restarting(id: &str) -> (String, ChildStatus<ActorCell>) {
    (id.to_string(), ChildStatus::Restarting)
}

/// The running cells in a `which_children` answer.
fn cells(list: &[(String, ChildStatus<ActorCell>)]) -> Vec<ActorCell> {
    list.iter().filter_map(|(_, s)| s.pid().cloned()).collect()
}

/// The first running child `which_children` lists, i.e. the last in start order (OTP's
/// `[{Id, Pid, _, _} | _] = which_children(Sup)`).
async fn newest(sup: &SupervisorRef) -> (String, ActorCell) {
    children(sup)
        .await
        .into_iter()
        .find_map(|(id, s)| s.pid().cloned().map(|c| (id, c)))
        .expect("a running child")
}

/// Waits until the supervisor has exited and asserts it gave up on its restart budget.
async fn assert_gave_up(w: &Watcher, sup: &SupervisorRef) {
    let reason = w.exit_of(&sup.cell()).await;
    assert!(
        reason.is_shutdown(),
        "escalation is shutdown-class: {reason:?}"
    );
    assert_eq!(reason, gave_up());
}

fn count_of(list: &[String], id: &str) -> usize {
    list.iter().filter(|s| s.as_str() == id).count()
}

// -------------------------------------------------------------------------------------------------
// Restart types (cases 24–30)

/// A permanent child exits with `reason`: it is restarted as a new actor, counts `[1,1,0,1]`.
async fn permanent_restarted_after(reasons: &[ExitReason]) {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::OneForOne, 2, HOUR).await;
    let mut cell = add(&sup, lab.spec("child1")).await;
    for (n, reason) in reasons.iter().enumerate() {
        w.watch(&cell);
        crash(&cell, reason.clone());
        assert_eq!(&w.exit_of(&cell).await, reason, "the child exits as told");
        let next = running_child(&sup, "child1", Some(&cell)).await;
        assert_ne!(next, cell, "a restarted child is a new actor");
        assert_eq!(children(&sup).await, vec![running("child1", &next)]);
        assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
        assert_eq!(lab.starts("child1"), n as u32 + 2);
        cell = next;
    }
    assert!(w.exited(&sup.cell()).is_none());
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_normal() {
    permanent_restarted_after(&[ExitReason::Normal]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_shutdown() {
    permanent_restarted_after(&[
        ExitReason::Shutdown,
        ExitReason::ShutdownWith("some_info".into()),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_abnormal() {
    permanent_restarted_after(&[died()]).await;
}

/// A transient child that exits with a normal-class reason is not restarted: its spec stays with no
/// process, counts `[1,0,0,1]`, and `restart_child` starts it again.
async fn transient_kept_after(reasons: &[ExitReason]) {
    let lab = Lab::new();
    let sup = empty_sup(Strategy::OneForOne, 2, HOUR).await;
    let mut cell = add(&sup, lab.spec("child1").restart(Restart::Transient)).await;
    for (n, reason) in reasons.iter().enumerate() {
        crash(&cell, reason.clone());
        wait_dead(&cell).await;
        assert_eq!(children(&sup).await, vec![stopped("child1")]);
        assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));
        let info = sup.which_child("child1").await.unwrap();
        assert_eq!(info.last_exit.as_ref(), Some(reason));
        assert_eq!(info.restarts, 0, "no automatic restart");
        assert_eq!(lab.starts("child1"), n as u32 + 1, "not started again");
        cell = sup
            .restart_child("child1")
            .await
            .expect("restart_child works on a stopped transient child")
            .cell
            .expect("it runs");
        assert_eq!(children(&sup).await, vec![running("child1", &cell)]);
    }
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_normal() {
    transient_kept_after(&[ExitReason::Normal]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_shutdown() {
    transient_kept_after(&[
        ExitReason::Shutdown,
        ExitReason::ShutdownWith("some_info".into()),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_abnormal() {
    let lab = Lab::new();
    let sup = empty_sup(Strategy::OneForOne, 2, HOUR).await;
    let cell = add(&sup, lab.spec("child1").restart(Restart::Transient)).await;
    crash(&cell, died());
    let next = running_child(&sup, "child1", Some(&cell)).await;
    assert_eq!(children(&sup).await, vec![running("child1", &next)]);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    assert_eq!(lab.starts("child1"), 2);
    // Killed is abnormal too.
    crash(&next, ExitReason::Killed);
    let third = running_child(&sup, "child1", Some(&next)).await;
    assert_eq!(children(&sup).await, vec![running("child1", &third)]);
    sup.shutdown().await;
}

/// A temporary child is never restarted and its spec is dropped (`[]`, `[0,0,0,0]`); `start_child`
/// with the same spec works again.
async fn temporary_dropped_after(reasons: &[ExitReason]) {
    let lab = Lab::new();
    let sup = empty_sup(Strategy::OneForOne, 2, HOUR).await;
    let spec = lab.spec("child1").restart(Restart::Temporary);
    for (n, reason) in reasons.iter().enumerate() {
        let cell = add(&sup, spec.clone()).await;
        assert_eq!(children(&sup).await, vec![running("child1", &cell)]);
        crash(&cell, reason.clone());
        wait_dead(&cell).await;
        assert_eq!(children(&sup).await, vec![]);
        assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));
        assert!(matches!(
            sup.which_child("child1").await,
            Err(ChildError::NotFound(_))
        ));
        assert_eq!(lab.starts("child1"), n as u32 + 1, "never restarted");
    }
    // The spec is gone, so the same id can be added again.
    let again = add(&sup, spec).await;
    assert_eq!(children(&sup).await, vec![running("child1", &again)]);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_normal() {
    temporary_dropped_after(&[ExitReason::Normal]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_shutdown() {
    temporary_dropped_after(&[
        ExitReason::Shutdown,
        ExitReason::ShutdownWith("some_info".into()),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_abnormal() {
    temporary_dropped_after(&[died(), ExitReason::Killed]).await;
}

/// Under one_for_all and rest_for_one, a temporary sibling stopped because another child restarts
/// is not restarted but removed, and the supervisor carries on. On tokio's paused clock, so the
/// intensity period is waited out exactly and at no real cost.
#[tokio::test(start_paused = true)]
async fn temporary_bystander() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let lab = Lab::new();
        let w = Watcher::new().await;
        let sup = empty_sup(strategy, 2, Duration::from_millis(300)).await;
        w.watch(&sup.cell());
        let c1 = add(&sup, lab.spec("child1")).await;
        let c2 = add(&sup, lab.spec("child2").restart(Restart::Temporary)).await;
        w.watch(&c2);
        crash(&c1, ExitReason::Normal);
        let new1 = running_child(&sup, "child1", Some(&c1)).await;
        assert_eq!(
            w.exit_of(&c2).await,
            ExitReason::Shutdown,
            "{strategy:?}: the bystander is stopped by its supervisor"
        );
        assert_eq!(
            children(&sup).await,
            vec![running("child1", &new1)],
            "{strategy:?}: the temporary bystander is removed, not restarted"
        );
        assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
        assert_eq!(lab.starts("child2"), 1, "{strategy:?}");
        // OTP waits out its 300 ms period here: the supervisor must still be up afterwards. The
        // period passes on the paused clock; the call is answered only by a supervisor still up.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(children(&sup).await, vec![running("child1", &new1)]);
        assert!(
            w.exited(&sup.cell()).is_none(),
            "{strategy:?}: supervisor survives"
        );
        sup.shutdown().await;
    }
}

#[derive(Clone, Copy, Debug)]
enum EndBy {
    Kill,
    Normal,
    Abnormal,
    /// `terminate_child` through the supervisor.
    Api,
}

async fn end_child(sup: &SupervisorRef, cell: &ActorCell, id: &str, how: EndBy) {
    match how {
        EndBy::Api => sup.terminate_child(id).await.expect("terminate_child"),
        EndBy::Kill => crash(cell, ExitReason::Killed),
        EndBy::Normal => crash(cell, ExitReason::Normal),
        EndBy::Abnormal => crash(cell, died()),
    }
    wait_dead(cell).await;
}

/// OTP's `already_present`: the spec stays, not running; `restart_child` brings it back.
async fn spec_kept_stopped(sup: &SupervisorRef, spec: ChildSpec, how: EndBy, tag: &str) {
    let id = spec.id().to_string();
    let cell = add(sup, spec.clone()).await;
    end_child(sup, &cell, &id, how).await;
    assert_eq!(
        sup.start_child(spec).await.map(|s| s.cell),
        Err(ChildError::AlreadyPresent(id.clone())),
        "{tag}"
    );
    let again = sup.restart_child(&id).await.expect("restart_child").cell;
    assert!(again.is_some_and(|c| c != cell), "{tag}");
}

/// OTP's `restarted`: the supervisor restarted the child, so its id is `already_started`.
async fn spec_kept_restarted(sup: &SupervisorRef, spec: ChildSpec, how: EndBy, tag: &str) {
    let id = spec.id().to_string();
    let cell = add(sup, spec.clone()).await;
    end_child(sup, &cell, &id, how).await;
    match sup.start_child(spec).await {
        Err(ChildError::AlreadyStarted { id: got, pid }) => {
            assert_eq!(got, id, "{tag}");
            assert_ne!(pid, cell, "{tag}: the running child is the restarted one");
        }
        other => panic!("{tag}: expected AlreadyStarted, got {other:?}"),
    }
}

/// After a temporary child ends in any way, its id can be added again.
async fn spec_not_kept(sup: &SupervisorRef, spec: ChildSpec, how: EndBy, tag: &str) {
    let id = spec.id().to_string();
    let cell = add(sup, spec.clone()).await;
    end_child(sup, &cell, &id, how).await;
    let again = sup.start_child(spec).await;
    assert!(
        matches!(&again, Ok(s) if s.cell.as_ref().is_some_and(|c| *c != cell)),
        "{tag}: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_save_child_specs_for_temporary_children() {
    for how in [EndBy::Kill, EndBy::Normal, EndBy::Abnormal, EndBy::Api] {
        for strategy in [
            Strategy::OneForAll,
            Strategy::OneForOne,
            Strategy::RestForOne,
        ] {
            let tag = format!("{strategy:?}/{how:?}");
            let lab = Lab::new();
            let w = Watcher::new().await;
            let sup = empty_sup(strategy, 2, HOUR).await;
            w.watch(&sup.cell());

            let permanent = lab.spec("child1");
            match how {
                EndBy::Api => spec_kept_stopped(&sup, permanent, how, &tag).await,
                _ => spec_kept_restarted(&sup, permanent, how, &tag).await,
            }

            let transient = lab.spec("child2").restart(Restart::Transient);
            match how {
                EndBy::Api | EndBy::Normal => spec_kept_stopped(&sup, transient, how, &tag).await,
                _ => spec_kept_restarted(&sup, transient, how, &tag).await,
            }

            let temporary = lab.spec("child3").restart(Restart::Temporary);
            spec_not_kept(&sup, temporary, how, &tag).await;

            assert!(
                w.exited(&sup.cell()).is_none(),
                "{tag}: supervisor survives"
            );
            sup.shutdown().await;
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Strategies and intensity (cases 31–39)

/// Intensity 1 per 1 s: crashes spaced more than the period apart never add up, because canopy's
/// window is exact. (OTP needs 2.1 s between crashes because its window is whole seconds.) The
/// spacing is measured from after the previous restart was seen, so the gap between two restart
/// stamps is at least 1.5 s however the threads are scheduled. A final crash right after a restart
/// shows the budget really is one restart per second. On tokio's paused clock (which the
/// supervisor's window reads): the spacing is exact, and "right after" cannot stretch past the
/// period on a loaded machine.
#[tokio::test(start_paused = true)]
async fn multiple_restarts() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::OneForOne, 1, Duration::from_secs(1)).await;
    w.watch(&sup.cell());
    let mut cell = add(&sup, lab.spec("child1").shutdown(Shutdown::BrutalKill)).await;

    crash(&cell, died());
    cell = running_child(&sup, "child1", Some(&cell)).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_, newest) = newest(&sup).await;
        assert_eq!(newest, cell);
        crash(&cell, died());
        cell = running_child(&sup, "child1", Some(&cell)).await;
    }
    assert!(
        w.exited(&sup.cell()).is_none(),
        "spaced crashes are absorbed"
    );
    assert_eq!(lab.starts("child1"), 4);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));

    // Two restarts within the period are one too many.
    crash(&cell, died());
    assert_gave_up(&w, &sup).await;
    assert_eq!(
        lab.starts("child1"),
        4,
        "the refused restart is not attempted"
    );
}

/// Only the crashed child is restarted; with intensity 2 the third crash gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::OneForOne, 2, HOUR).await;
    w.watch(&sup.cell());
    let c1 = add(&sup, lab.spec("child1")).await;
    let c2 = add(&sup, lab.spec("child2")).await;

    crash(&c1, died());
    let new1 = running_child(&sup, "child1", Some(&c1)).await;
    let list = children(&sup).await;
    assert_eq!(list, vec![running("child2", &c2), running("child1", &new1)]);
    assert_eq!(sup.count_children().await.unwrap(), counts(2, 2, 0, 2));
    assert_eq!(lab.starts("child2"), 1, "the sibling is untouched");

    // Restart intensity: the second restart is allowed, the third is not.
    crash(&c2, died());
    let new2 = running_child(&sup, "child2", Some(&c2)).await;
    assert_eq!(
        children(&sup).await,
        vec![running("child2", &new2), running("child1", &new1)]
    );
    let (_, last) = newest(&sup).await;
    w.watch(&last);
    w.watch(&new1);
    crash(&last, died());
    assert_gave_up(&w, &sup).await;
    assert_eq!(
        w.exit_of(&new1).await,
        ExitReason::Shutdown,
        "the rest is shut down"
    );
    assert_eq!(w.exit_of(&last).await, died());
}

/// A child whose restart keeps failing uses up intensity 4 (a failed restart counts, and so does
/// every retry); the supervisor exits and the healthy sibling is shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_escalation() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::OneForOne, 4, HOUR).await;
    w.watch(&sup.cell());
    let c1 = add(&sup, lab.spec("child1")).await;
    let c2 = add(&sup, lab.spec("child2")).await;
    w.watch(&c2);
    lab.set_start("child1", StartMode::Error("child1 cannot start".into()));

    crash(&c1, died());
    assert_gave_up(&w, &sup).await;
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown);
    assert_eq!(
        lab.starts("child1"),
        1 + 4,
        "four restarts allowed, all failed"
    );
    assert_eq!(lab.starts("child2"), 1, "the sibling is never restarted");
}

/// One crash restarts both children; no old child survives; counts `[2,2,0,2]`; the third restart
/// within the period gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::OneForAll, 2, HOUR).await;
    w.watch(&sup.cell());
    let c1 = add(&sup, lab.spec("child1")).await;
    let c2 = add(&sup, lab.spec("child2")).await;
    w.watch(&c2);

    crash(&c1, died());
    assert_eq!(
        w.exit_of(&c2).await,
        ExitReason::Shutdown,
        "the sibling is stopped"
    );
    let new1 = running_child(&sup, "child1", Some(&c1)).await;
    let new2 = running_child(&sup, "child2", Some(&c2)).await;
    let list = children(&sup).await;
    assert_eq!(
        list,
        vec![running("child2", &new2), running("child1", &new1)]
    );
    let live = cells(&list);
    assert!(
        !live.contains(&c1) && !live.contains(&c2),
        "no old child is still there"
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(2, 2, 0, 2));
    assert_eq!(lab.started(), vec!["child1", "child2", "child1", "child2"]);

    // Restart intensity.
    let (id3, pid3) = newest(&sup).await;
    crash(&pid3, died());
    running_child(&sup, &id3, Some(&pid3)).await;
    let (_, pid4) = newest(&sup).await;
    crash(&pid4, died());
    assert_gave_up(&w, &sup).await;
}

/// A sibling that cannot restart makes both the sibling and the supervisor exit (one_for_all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_escalation() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::OneForAll, 4, HOUR).await;
    w.watch(&sup.cell());
    let c1 = add(&sup, lab.spec("child1")).await;
    let c2 = add(&sup, lab.spec("child2")).await;
    w.watch(&c2);
    lab.set_start("child2", StartMode::Error("child2 cannot start".into()));

    crash(&c1, died());
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown);
    assert_gave_up(&w, &sup).await;
    // Every round (the first restart and three retries) restarts child1 and tries child2; child1's
    // incarnations are all stopped again, the last one by the supervisor's own shutdown.
    assert_eq!(lab.starts("child2"), 1 + 4);
    assert_eq!(lab.starts("child1"), 1 + 4);
    assert_eq!(count_of(&lab.started(), "child1"), 1 + 4);
    assert_eq!(
        count_of(&lab.stopped(), "child1"),
        4,
        "no child1 outlives the supervisor"
    );
}

/// In a one_for_all restart child1 comes back but child2 fails once: the already restarted child1
/// is stopped with `shutdown` and a new full round starts, which succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_other_child_fails_restart() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForAll)
            .restart_intensity(3, HOUR)
            .child(lab.spec("child1"))
            .child(lab.spec_planned("child2", |n| {
                (n == 2).then(|| StartMode::Error("not this time".into()))
            })),
    )
    .await
    .unwrap();
    w.watch(&sup.cell());
    let c1 = running_child(&sup, "child1", None).await;
    let c2 = running_child(&sup, "child2", None).await;
    w.watch(&c2);
    lab.clear_events();

    crash(&c1, ExitReason::Error("die".into()));
    let new2 = running_child(&sup, "child2", Some(&c2)).await;
    let new1 = running_child(&sup, "child1", Some(&c1)).await;
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown);
    assert_eq!(
        lab.events(),
        vec![
            Event::Stopped("child2".into()), // the sibling, stopped for the restart
            Event::Started("child1".into()), // round 1: child1 restarts ...
            Event::Stopped("child1".into()), // ... child2 fails, so child1 is stopped again
            Event::Started("child1".into()), // round 2 (the retry)
            Event::Started("child2".into()),
        ]
    );
    let info1 = sup.which_child("child1").await.unwrap();
    assert_eq!(info1.status, ChildStatus::Running(new1.clone()));
    assert_eq!(
        info1.last_exit,
        Some(ExitReason::Shutdown),
        "the child1 of the failed round was stopped with shutdown"
    );
    assert_eq!(info1.restarts, 2);
    assert_eq!(lab.starts("child2"), 3);
    assert_eq!(
        children(&sup).await,
        vec![running("child2", &new2), running("child1", &new1)]
    );
    assert!(w.exited(&sup.cell()).is_none());
    sup.shutdown().await;
}

/// Crashing child2 of 3 restarts child2 and child3; child1 is untouched; counts `[3,3,0,3]`; the
/// third restart within the period gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::RestForOne, 2, HOUR).await;
    w.watch(&sup.cell());
    let c1 = add(&sup, lab.spec("child1")).await;
    let c2 = add(&sup, lab.spec("child2")).await;
    let c3 = add(&sup, lab.spec("child3")).await;
    w.watch(&c3);
    assert_eq!(sup.count_children().await.unwrap(), counts(3, 3, 0, 3));

    crash(&c2, died());
    assert_eq!(
        w.exit_of(&c3).await,
        ExitReason::Shutdown,
        "child3 is stopped"
    );
    let new2 = running_child(&sup, "child2", Some(&c2)).await;
    let new3 = running_child(&sup, "child3", Some(&c3)).await;
    let list = children(&sup).await;
    assert_eq!(
        list,
        vec![
            running("child3", &new3),
            running("child2", &new2),
            running("child1", &c1)
        ]
    );
    let live = cells(&list);
    assert!(!live.contains(&c2) && !live.contains(&c3));
    assert_eq!(sup.count_children().await.unwrap(), counts(3, 3, 0, 3));
    assert_eq!(lab.starts("child1"), 1, "child1 is untouched");

    // Restart intensity: child3 (the last) restarts alone, then child2 is one restart too many.
    crash(&new3, died());
    let newer3 = running_child(&sup, "child3", Some(&new3)).await;
    assert_eq!(
        children(&sup).await,
        vec![
            running("child3", &newer3),
            running("child2", &new2),
            running("child1", &c1)
        ]
    );
    crash(&new2, died());
    assert_gave_up(&w, &sup).await;
    assert_eq!(lab.starts("child1"), 1);
}

/// The same escalation as `one_for_all_escalation` under rest_for_one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_escalation() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::RestForOne, 4, HOUR).await;
    w.watch(&sup.cell());
    let c1 = add(&sup, lab.spec("child1")).await;
    let c2 = add(&sup, lab.spec("child2")).await;
    w.watch(&c2);
    lab.set_start("child2", StartMode::Error("child2 cannot start".into()));

    crash(&c1, died());
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown);
    assert_gave_up(&w, &sup).await;
    assert_eq!(lab.starts("child2"), 1 + 4);
    // The retries start from child2, the child that failed: child1 restarted once, and that
    // incarnation was stopped by the supervisor's shutdown.
    assert_eq!(lab.starts("child1"), 2);
    assert_eq!(count_of(&lab.stopped(), "child1"), 1);
}

/// After child2 fails to restart, the retry restarts child2 only, not child1 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_other_child_fails_restart() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::RestForOne)
            .restart_intensity(3, HOUR)
            .child(lab.spec("child1"))
            .child(lab.spec_planned("child2", |n| {
                (n == 2).then(|| StartMode::Error("not this time".into()))
            })),
    )
    .await
    .unwrap();
    w.watch(&sup.cell());
    let c1 = running_child(&sup, "child1", None).await;
    let c2 = running_child(&sup, "child2", None).await;
    lab.clear_events();

    crash(&c1, ExitReason::Error("die".into()));
    let new2 = running_child(&sup, "child2", Some(&c2)).await;
    let new1 = running_child(&sup, "child1", Some(&c1)).await;
    assert_eq!(
        lab.events(),
        vec![
            Event::Stopped("child2".into()),
            Event::Started("child1".into()),
            Event::Started("child2".into()), // the retry: child2 only
        ]
    );
    assert_eq!(
        lab.starts("child1"),
        2,
        "child1 is not restarted by the retry"
    );
    assert_eq!(lab.starts("child2"), 3);
    assert_eq!(sup.which_child("child1").await.unwrap().restarts, 1);
    assert_eq!(
        children(&sup).await,
        vec![running("child2", &new2), running("child1", &new1)]
    );
    assert!(w.exited(&sup.cell()).is_none());
    sup.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// A restart that keeps failing (case 44, OTP-9549)

/// A budget the loops below never reach: failing starts retry as fast as the mailbox turns.
const ENDLESS: u32 = u32::MAX;

/// Waits until `id` has failed at least a few more starts: its restart loop is running.
async fn wait_looping(lab: &Lab, id: &str, from: u32) {
    eventually("the restart loop runs", || lab.starts(id) >= from + 3).await;
}

/// Asserts that `id` is not started any more. A failed restart is retried through the supervisor's
/// mailbox, so a loop that still ran would always have a retry queued or in hand: the first call
/// below is answered after the retry in hand has queued the next one, the second after that one
/// has run (and started `id` again). A supervisor that is gone starts nothing.
async fn assert_loop_ended(sup: &SupervisorRef, lab: &Lab, id: &str) {
    let n = lab.starts(id);
    for _ in 0..2 {
        if sup.count_children().await.is_err() {
            break;
        }
    }
    assert_eq!(lab.starts(id), n, "{id} is no longer being restarted");
}

/// While a restart keeps failing, the supervisor answers: `start_child` is `AlreadyPresent`,
/// `restart_child` and `delete_child` are `Restarting`, the child shows as restarting and not
/// active. `terminate_child` ends the loop; a shutdown during a loop completes, and the child's exit
/// reason is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_restart_loop() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::OneForOne, ENDLESS, Duration::from_secs(10)).await;
    w.watch(&sup.cell());
    let spec = lab.spec("child1").shutdown(Shutdown::BrutalKill);
    let c1 = add(&sup, spec.clone()).await;
    w.watch(&c1);

    lab.set_start("child1", StartMode::Error("cannot start".into()));
    crash(&c1, ExitReason::Error("error".into()));
    wait_looping(&lab, "child1", 1).await;

    // While it loops, the supervisor answers, and the child is `restarting`.
    assert_eq!(
        sup.start_child(spec.clone()).await.map(|s| s.cell),
        Err(ChildError::AlreadyPresent("child1".into()))
    );
    assert_eq!(
        sup.restart_child("child1").await.map(|s| s.cell),
        Err(ChildError::Restarting("child1".into()))
    );
    assert_eq!(
        sup.delete_child("child1").await,
        Err(ChildError::Restarting("child1".into()))
    );
    assert_eq!(children(&sup).await, vec![restarting("child1")]);
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));

    // terminate_child ends the loop and leaves the child stopped.
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(w.exit_of(&c1).await, ExitReason::Error("error".into()));
    assert_eq!(children(&sup).await, vec![stopped("child1")]);
    assert_loop_ended(&sup, &lab, "child1").await;

    lab.set_start("child1", StartMode::Ok);
    let c2 = sup.restart_child("child1").await.unwrap().cell.unwrap();
    w.watch(&c2);
    let from = lab.starts("child1");
    lab.set_start("child1", StartMode::Error("cannot start".into()));
    crash(&c2, ExitReason::Error("error2".into()));
    wait_looping(&lab, "child1", from).await;

    // The supervisor still shuts down (OTP-9549), and the child's reason is its own.
    tokio::time::timeout(Duration::from_secs(10), sup.shutdown())
        .await
        .expect("the supervisor shuts down while a restart loops");
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&c2).await, ExitReason::Error("error2".into()));
    assert_loop_ended(&sup, &lab, "child1").await;
}

/// The same under rest_for_one, for the middle of three children: the child after it stays stopped
/// while the loop runs (counts `[3,1,0,3]`), and the one before it is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_restart_loop_rest_for_one() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = empty_sup(Strategy::RestForOne, ENDLESS, Duration::from_secs(10)).await;
    w.watch(&sup.cell());
    let c1 = add(&sup, lab.spec("child1").shutdown(Shutdown::BrutalKill)).await;
    let spec2 = lab.spec("child2").shutdown(Shutdown::BrutalKill);
    let c2 = add(&sup, spec2.clone()).await;
    let c3 = add(&sup, lab.spec("child3").shutdown(Shutdown::BrutalKill)).await;
    w.watch(&c1);
    w.watch(&c2);
    w.watch(&c3);

    lab.set_start("child2", StartMode::Error("cannot start".into()));
    crash(&c2, ExitReason::Error("error".into()));
    wait_looping(&lab, "child2", 1).await;

    assert_eq!(
        sup.start_child(spec2.clone()).await.map(|s| s.cell),
        Err(ChildError::AlreadyPresent("child2".into()))
    );
    assert_eq!(
        sup.restart_child("child2").await.map(|s| s.cell),
        Err(ChildError::Restarting("child2".into()))
    );
    assert_eq!(
        sup.delete_child("child2").await,
        Err(ChildError::Restarting("child2".into()))
    );
    assert_eq!(
        children(&sup).await,
        vec![
            stopped("child3"),
            restarting("child2"),
            running("child1", &c1)
        ]
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(3, 1, 0, 3));
    assert_eq!(
        w.exit_of(&c3).await,
        ExitReason::Killed,
        "child3 stopped by rest_for_one"
    );
    assert_eq!(lab.starts("child3"), 1, "child3 waits for child2");

    sup.terminate_child("child2").await.unwrap();
    assert_eq!(w.exit_of(&c2).await, ExitReason::Error("error".into()));
    assert_eq!(
        children(&sup).await,
        vec![stopped("child3"), stopped("child2"), running("child1", &c1)]
    );
    assert_loop_ended(&sup, &lab, "child2").await;

    lab.set_start("child2", StartMode::Ok);
    let c22 = sup.restart_child("child2").await.unwrap().cell.unwrap();
    w.watch(&c22);
    let from = lab.starts("child2");
    lab.set_start("child2", StartMode::Error("cannot start".into()));
    crash(&c22, ExitReason::Error("error2".into()));
    wait_looping(&lab, "child2", from).await;

    tokio::time::timeout(Duration::from_secs(10), sup.shutdown())
        .await
        .expect("the supervisor shuts down while a restart loops");
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&c22).await, ExitReason::Error("error2".into()));
    assert_eq!(
        w.exit_of(&c1).await,
        ExitReason::Killed,
        "child1 stopped by the shutdown"
    );
    assert_eq!(lab.starts("child1"), 1);
    assert_loop_ended(&sup, &lab, "child2").await;
}

// -------------------------------------------------------------------------------------------------
// A supervision tree (case 46)

/// The API of a child supervisor, reached through its cell.
fn sup_ref(cell: &ActorCell) -> SupervisorRef {
    SupervisorRef::from_cell(cell.clone()).expect("the child is a supervisor")
}

/// Nested supervisors: a worker crash restarts only that worker; a child supervisor that spends
/// its budget escalates to the top one_for_all, which restarts every subtree (also one stopped with
/// `terminate_child`); children added to a subtree with `start_child` are not recreated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let inner = || SupervisorSpec::new(Strategy::OneForOne).restart_intensity(4, HOUR);
    let supchild1 = ChildSpec::supervisor(
        "supchild1",
        inner().child(lab.spec("child1")).child(lab.spec("child2")),
    );
    let supchild2 = ChildSpec::supervisor("supchild2", inner());
    let supchild3 = ChildSpec::supervisor("supchild3", inner());

    // The top supervisor, with a stopped third subtree.
    let top = empty_sup(Strategy::OneForAll, 4, HOUR).await;
    w.watch(&top.cell());
    let sup1_cell = add(&top, supchild1).await;
    let sup2_cell = add(&top, supchild2).await;
    add(&top, supchild3).await;
    top.terminate_child("supchild3").await.unwrap();
    assert_eq!(top.count_children().await.unwrap(), counts(3, 2, 3, 0));
    assert_eq!(
        top.get_childspec("supchild1").await.unwrap().get_shutdown(),
        Shutdown::Infinity
    );
    let (sup1, sup2) = (sup_ref(&sup1_cell), sup_ref(&sup2_cell));
    w.watch(&sup1_cell);
    w.watch(&sup2_cell);

    // Workers.
    let list1 = children(&sup1).await;
    let [(ref id2, ChildStatus::Running(ref cpid2)), (ref id1, ChildStatus::Running(ref cpid1))] =
        list1[..]
    else {
        panic!("supchild1 runs child2 and child1: {list1:?}");
    };
    assert_eq!((id1.as_str(), id2.as_str()), ("child1", "child2"));
    let (cpid1, cpid2) = (cpid1.clone(), cpid2.clone());
    w.watch(&cpid1);
    w.watch(&cpid2);
    assert_eq!(sup1.count_children().await.unwrap(), counts(2, 2, 0, 2));
    assert_eq!(sup2.count_children().await.unwrap(), counts(0, 0, 0, 0));

    // Children added to a subtree at run time.
    let cpid3 = add(&sup2, lab.spec("child3")).await;
    let cpid4 = add(&sup2, lab.spec("child4")).await;
    lab.set_start("child3", StartMode::Error("child3 cannot start".into()));
    assert_eq!(sup1.count_children().await.unwrap(), counts(2, 2, 0, 2));
    assert_eq!(sup2.count_children().await.unwrap(), counts(2, 2, 0, 2));

    // Only the worker that dies is restarted.
    crash(&cpid4, died());
    let new4 = running_child(&sup2, "child4", Some(&cpid4)).await;
    w.watch(&new4);
    assert_eq!(
        children(&sup1).await,
        vec![running("child2", &cpid2), running("child1", &cpid1)]
    );
    assert_eq!(sup1.count_children().await.unwrap(), counts(2, 2, 0, 2));
    assert_eq!(
        children(&sup2).await,
        vec![running("child4", &new4), running("child3", &cpid3)]
    );
    assert_eq!(sup2.count_children().await.unwrap(), counts(2, 2, 0, 2));
    assert!(w.exited(&sup2_cell).is_none() && w.exited(&sup1_cell).is_none());

    // child3 cannot restart: supchild2 spends its budget and gives up, and the top one_for_all
    // restarts every subtree, including the stopped supchild3, but not the children added later.
    crash(&cpid3, died());
    let reason = w.exit_of(&sup2_cell).await;
    assert!(reason.is_shutdown(), "{reason:?}");
    assert_eq!(reason, gave_up());
    assert_eq!(w.exit_of(&new4).await, ExitReason::Shutdown);
    assert_eq!(
        w.exit_of(&sup1_cell).await,
        ExitReason::Shutdown,
        "the sibling subtree stops"
    );
    assert_eq!(w.exit_of(&cpid1).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&cpid2).await, ExitReason::Shutdown);

    let new_sup1_cell = running_child(&top, "supchild1", Some(&sup1_cell)).await;
    let new_sup2_cell = running_child(&top, "supchild2", Some(&sup2_cell)).await;
    let new_sup3_cell = running_child(&top, "supchild3", None).await;
    assert_eq!(
        children(&top).await,
        vec![
            running("supchild3", &new_sup3_cell),
            running("supchild2", &new_sup2_cell),
            running("supchild1", &new_sup1_cell),
        ]
    );
    assert_eq!(top.count_children().await.unwrap(), counts(3, 3, 3, 0));
    let new_sup1 = sup_ref(&new_sup1_cell);
    let new_sup2 = sup_ref(&new_sup2_cell);
    let new_sup3 = sup_ref(&new_sup3_cell);

    let list1 = children(&new_sup1).await;
    let ids: Vec<&str> = list1.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["child2", "child1"]);
    let live = cells(&list1);
    assert_eq!(live.len(), 2);
    assert!(
        !live.contains(&cpid1) && !live.contains(&cpid2),
        "fresh workers"
    );
    assert_eq!(new_sup1.count_children().await.unwrap(), counts(2, 2, 0, 2));
    assert_eq!(children(&new_sup2).await, vec![]);
    assert_eq!(new_sup2.count_children().await.unwrap(), counts(0, 0, 0, 0));
    assert_eq!(children(&new_sup3).await, vec![]);
    assert_eq!(new_sup3.count_children().await.unwrap(), counts(0, 0, 0, 0));
    assert_eq!(lab.starts("child4"), 2, "added children are not recreated");

    assert!(
        w.exited(&top.cell()).is_none(),
        "the top absorbs the escalation"
    );
    top.shutdown().await;
}
