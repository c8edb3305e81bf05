//! Restart backoff on a real dynamic supervisor, on tokio's paused clock: time moves only when
//! every task is idle, straight to the next timer, so delays of seconds or hours are checked exactly
//! and take no real time.
//!
//! What is checked: a backed-off restart is visible as restarting with its next attempt time; the
//! supervisor answers API calls while it waits; a shutdown during the wait is prompt; a crash loop
//! with backoff still spends the restart budget and escalates.

mod common;

use std::time::Duration;

use canopy::backoff::Backoff;
use canopy::core::REACHED_MAX_RESTART_INTENSITY;
use canopy::{ChildStatus, DynamicRef, DynamicSupervisor, ExitReason};
use ractor::ActorCell;
use tokio::time::Instant;

use common::*;

const HOUR: Duration = Duration::from_secs(3600);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

async fn add(sup: &DynamicRef<u32>, n: u32) -> ActorCell {
    sup.start_child(n)
        .await
        .expect("start_child")
        .cell
        .expect("a running child")
}

/// The status and next attempt of the child with internal key `id`.
async fn child(sup: &DynamicRef<u32>, id: &str) -> (ChildStatus<ActorCell>, Option<Instant>) {
    let info = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no child {id}"));
    (info.status, info.next_attempt.map(Instant::from_std))
}

/// Crashes `cell` and waits until the supervisor has taken the exit (it handles exits before API
/// calls, and the child is seen as stopped only after its exit was sent).
async fn crash_and_wait(cell: &ActorCell) {
    crash(cell, ExitReason::Error("boom".into()));
    wait_dead(cell).await;
}

#[tokio::test(start_paused = true)]
async fn a_delayed_restart_shows_as_restarting_with_its_next_attempt() {
    let lab = Lab::new();
    let sup = DynamicSupervisor::start(
        lab.dynamic_spec("child")
            .backoff(Backoff::new(secs(2), secs(60)).jitter(0.0))
            .restart_intensity(10, HOUR),
    )
    .await
    .unwrap();
    let c1 = add(&sup, 1).await;
    let crashed_at = Instant::now();
    crash_and_wait(&c1).await;

    let (status, next) = child(&sup, "1").await;
    assert_eq!(status, ChildStatus::Restarting);
    let next = next.expect("a next attempt time");
    assert!(
        next >= crashed_at + secs(2) && next <= Instant::now() + secs(2),
        "due 2 s after the crash: {:?} after it",
        next - crashed_at
    );
    assert_eq!(lab.starts("child"), 1, "not restarted yet");

    // Just before the time: still waiting. Just after: running again, as a new actor.
    tokio::time::sleep_until(next - Duration::from_millis(10)).await;
    assert_eq!(child(&sup, "1").await.0, ChildStatus::Restarting);
    tokio::time::sleep_until(next + Duration::from_millis(10)).await;
    let (status, next_after) = child(&sup, "1").await;
    assert!(
        matches!(status, ChildStatus::Running(ref c) if *c != c1),
        "{status:?}"
    );
    assert_eq!(next_after, None);
    assert_eq!(lab.starts("child"), 2);

    // A second crash right away waits twice as long.
    let c2 = status.pid().cloned().unwrap();
    let crashed_at = Instant::now();
    crash_and_wait(&c2).await;
    let next = child(&sup, "1").await.1.expect("waiting again");
    assert!(next >= crashed_at + secs(4) && next <= Instant::now() + secs(4));
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_supervisor_answers_while_a_restart_waits() {
    let lab = Lab::new();
    let sup = DynamicSupervisor::start(
        lab.dynamic_spec("child")
            .backoff(Backoff::new(secs(60), secs(60)).jitter(0.0))
            .restart_intensity(10, HOUR),
    )
    .await
    .unwrap();
    let c1 = add(&sup, 1).await;
    let c2 = add(&sup, 2).await;
    let t0 = Instant::now();
    crash_and_wait(&c1).await;

    // Every call is answered at once, while child 1 waits for its minute.
    let c3 = add(&sup, 3).await;
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 2, 0, 3));
    assert_eq!(sup.which_children().await.unwrap().len(), 3);
    assert_eq!(
        sup.which_child(&c1).await.unwrap().status,
        ChildStatus::Restarting,
        "the old cell still names the waiting child"
    );
    sup.terminate_child(&c2).await.unwrap();
    wait_dead(&c2).await;
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 2));
    assert!(
        Instant::now() - t0 < secs(60),
        "no call waited for the backoff"
    );
    assert_eq!(child(&sup, "1").await.0, ChildStatus::Restarting);
    assert!(c3.get_status() != ractor::ActorStatus::Stopped);

    // terminate_child with the waiting child's last cell cancels its restart.
    sup.terminate_child(&c1).await.unwrap();
    tokio::time::sleep(secs(120)).await;
    assert_eq!(lab.starts("child:1"), 1, "the cancelled restart never ran");
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_the_wait_is_prompt() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = DynamicSupervisor::start(
        lab.dynamic_spec("child")
            .backoff(Backoff::new(HOUR, HOUR).jitter(0.0))
            .restart_intensity(10, HOUR),
    )
    .await
    .unwrap();
    w.watch(&sup.cell());
    let c1 = add(&sup, 1).await;
    let c2 = add(&sup, 2).await;
    w.watch(&c2);
    crash_and_wait(&c1).await;
    assert_eq!(child(&sup, "1").await.0, ChildStatus::Restarting);

    let t0 = Instant::now();
    sup.shutdown().await;
    assert!(
        Instant::now() - t0 < secs(1),
        "the shutdown did not wait for the hour-long backoff"
    );
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&c2).await, ExitReason::Shutdown);
    // Even once the hour has passed, nothing restarts.
    tokio::time::sleep(2 * HOUR).await;
    assert_eq!(lab.starts("child"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_with_backoff_still_escalates() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = DynamicSupervisor::start(
        lab.dynamic_spec("child")
            .backoff(Backoff::new(Duration::from_millis(100), secs(10)).jitter(0.0))
            .restart_intensity(3, HOUR),
    )
    .await
    .unwrap();
    w.watch(&sup.cell());
    let c1 = add(&sup, 1).await;
    let bystander = add(&sup, 2).await;
    w.watch(&bystander);

    // Every restart of child 1 fails: each retry is counted when it is scheduled, and waits
    // 100, 200, then 400 ms; the fourth restart exceeds the budget of 3.
    lab.set_start("child:1", StartMode::Error("still broken".into()));
    let t0 = Instant::now();
    crash(&c1, ExitReason::Error("boom".into()));
    let reason = w.exit_of(&sup.cell()).await;
    assert_eq!(
        reason,
        ExitReason::ShutdownWith(REACHED_MAX_RESTART_INTENSITY.into())
    );
    let took = Instant::now() - t0;
    assert!(
        took >= Duration::from_millis(700),
        "the restarts were delayed: {took:?}"
    );
    assert_eq!(
        lab.starts("child:1"),
        1 + 3,
        "three delayed attempts, then give up"
    );
    assert_eq!(w.exit_of(&bystander).await, ExitReason::Shutdown);
}

/// A child added by a call records the time the call was handled as its start time, on either kind
/// of supervisor: the call reads the clock under the same lock as the decision (fails if the call
/// no longer reads it, and the start time stays at the supervisor's own start).
#[tokio::test(start_paused = true)]
async fn a_child_added_by_a_call_starts_at_the_time_of_the_call() {
    let lab = Lab::new();
    let sup = canopy::Supervisor::start(canopy::SupervisorSpec::default())
        .await
        .unwrap();
    tokio::time::advance(secs(7)).await;
    let called_at = Instant::now().into_std();
    sup.start_child(lab.spec("late")).await.unwrap();
    let started_at = sup.which_child("late").await.unwrap().started_at;
    assert_eq!(started_at, Some(called_at));
    sup.shutdown().await;

    let dynamic = DynamicSupervisor::start(lab.dynamic_spec("d"))
        .await
        .unwrap();
    tokio::time::advance(secs(5)).await;
    let called_at = Instant::now().into_std();
    let cell = add(&dynamic, 1).await;
    let started_at = dynamic.which_child(&cell).await.unwrap().started_at;
    assert_eq!(started_at, Some(called_at));
    dynamic.shutdown().await;
}
