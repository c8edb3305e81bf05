//! The per-child termination policies on a real supervisor: `Drain` handles what is already queued
//! before it stops, `Timeout` drops it, and `Drain` still kills after its bound.
//!
//! On tokio's paused clock (which the supervisor's shutdown timers read): a job's time and a
//! policy's bound pass only when every task waits, so "the stop is sent before the first job is
//! done" and "the bound runs out after so many jobs" hold however loaded the machine is, and cost
//! no real time.

mod common;

use std::time::Duration;

use canopy::{ExitReason, Shutdown, Supervisor, SupervisorSpec};
use common::*;
use tokio::time::Instant;

async fn queue_slow_work(
    lab: &Lab,
    policy: Shutdown,
    jobs: usize,
    each: Duration,
) -> (canopy::SupervisorRef, ractor::ActorCell) {
    let sup = Supervisor::start(SupervisorSpec::default().child(lab.spec("w").shutdown(policy)))
        .await
        .expect("supervisor starts");
    let cell = running_child(&sup, "w", None).await;
    for _ in 0..jobs {
        tell(&cell, WorkerMsg::SlowWork(each));
    }
    (sup, cell)
}

fn handled(lab: &Lab) -> usize {
    lab.started()
        .iter()
        .filter(|s| s.starts_with("handled:"))
        .count()
}

#[tokio::test(start_paused = true)]
async fn drain_handles_every_queued_message_before_stopping() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let (sup, cell) = queue_slow_work(
        &lab,
        Shutdown::Drain(Duration::from_secs(10)),
        5,
        Duration::from_millis(50),
    )
    .await;
    w.watch(&cell);
    sup.terminate_child("w").await.unwrap();
    assert_eq!(
        handled(&lab),
        5,
        "all five queued jobs were handled before the stop"
    );
    assert_eq!(w.exit_of(&cell).await, ExitReason::Shutdown);
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn timeout_stops_between_messages_and_drops_the_queue() {
    let lab = Lab::new();
    let (sup, _cell) = queue_slow_work(
        &lab,
        Shutdown::Timeout(Duration::from_secs(10)),
        5,
        Duration::from_millis(50),
    )
    .await;
    sup.terminate_child("w").await.unwrap();
    // The stop is taken after the message being handled: at most one job ran.
    assert!(
        handled(&lab) <= 1,
        "queued messages are dropped by a plain stop, got {}",
        handled(&lab)
    );
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn drain_kills_after_its_bound() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    // Twenty jobs of 200 ms cannot be drained within 1 s.
    let (sup, cell) = queue_slow_work(
        &lab,
        Shutdown::Drain(Duration::from_secs(1)),
        20,
        Duration::from_millis(200),
    )
    .await;
    w.watch(&cell);
    let began = Instant::now();
    sup.terminate_child("w").await.unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(w.exit_of(&cell).await, ExitReason::Killed);
    assert!(handled(&lab) < 20);
    sup.shutdown().await;
}
