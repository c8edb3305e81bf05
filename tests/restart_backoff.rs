//! Restart backoff on a real static supervisor, with tokio's paused clock so delays are exact.

use std::time::Duration;

use canopy::backoff::Backoff;
use canopy::{ChildSpec, ChildStatus, Supervisor, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef};

#[derive(Clone)]
struct Worker;

impl Actor for Worker {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn spec(intensity: u32, backoff_ms: u64) -> SupervisorSpec {
    SupervisorSpec::new(canopy::Strategy::OneForOne)
        .restart_intensity(intensity, Duration::from_secs(3600))
        .backoff(
            Backoff::new(Duration::from_millis(backoff_ms), Duration::from_secs(60)).jitter(0.0),
        )
        .child(ChildSpec::actor("w", Worker, ()))
        .child(ChildSpec::actor("other", Worker, ()))
}

async fn kill(sup: &canopy::SupervisorRef, id: &str) {
    let cell = sup
        .which_child(id)
        .await
        .unwrap()
        .status
        .pid()
        .cloned()
        .expect("running");
    cell.kill();
    cell.wait(None).await.ok();
}

#[tokio::test(start_paused = true)]
async fn a_backed_off_child_shows_as_restarting_with_its_next_attempt_and_the_api_answers() {
    let sup = Supervisor::start(spec(10, 1000)).await.unwrap();
    let t0 = tokio::time::Instant::now();
    kill(&sup, "w").await;
    // The supervisor answers while the restart waits.
    let info = loop {
        let info = sup.which_child("w").await.unwrap();
        if info.status == ChildStatus::Restarting {
            break info;
        }
        tokio::task::yield_now().await;
    };
    let due = info
        .next_attempt
        .expect("a backed-off child shows its next attempt");
    assert!(due >= t0.into_std() + Duration::from_millis(1000));
    assert_eq!(sup.count_children().await.unwrap().active, 1);
    assert!(sup
        .which_child("other")
        .await
        .unwrap()
        .status
        .pid()
        .is_some());
    // Not before the delay...
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        sup.which_child("w").await.unwrap().status,
        ChildStatus::Restarting
    );
    // ...and running after it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sup.which_child("w").await.unwrap().status.pid().is_some());
    assert_eq!(sup.which_child("w").await.unwrap().next_attempt, None);
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_a_backoff_wait_is_prompt() {
    let sup = Supervisor::start(spec(10, 30_000)).await.unwrap();
    kill(&sup, "w").await;
    while sup.which_child("w").await.unwrap().status != ChildStatus::Restarting {
        tokio::task::yield_now().await;
    }
    let began = tokio::time::Instant::now();
    sup.shutdown().await;
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "did not wait out the 30 s backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_with_backoff_still_escalates() {
    let sup = Supervisor::start(spec(2, 100)).await.unwrap();
    let watcher = sup.cell();
    for _ in 0..2 {
        kill(&sup, "w").await;
        // wait out the backoff and the restart
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if sup.which_child("w").await.unwrap().status.pid().is_some() {
                break;
            }
        }
    }
    kill(&sup, "w").await;
    // The third restart is refused when it is scheduled: the supervisor gives up at once.
    tokio::time::timeout(Duration::from_secs(1), watcher.wait(None))
        .await
        .expect("the supervisor exits without waiting for a backoff")
        .ok();
    assert!(sup.count_children().await.is_err());
}
