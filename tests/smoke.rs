mod common;
use canopy::*;
use common::*;

#[tokio::test]
async fn smoke_restart_and_ordered_stop() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("a"))
            .child(lab.spec("b"))
            .child(lab.spec("c")),
    )
    .await
    .unwrap();
    assert_eq!(lab.started(), vec!["a", "b", "c"]);
    let b = running_child(&sup, "b", None).await;
    w.watch(&b);
    crash(&b, ExitReason::Error("boom".into()));
    let b2 = running_child(&sup, "b", Some(&b)).await;
    assert_ne!(b, b2);
    assert_eq!(w.exit_of(&b).await, ExitReason::Error("boom".into()));
    lab.clear_events();
    sup.shutdown().await;
    assert_eq!(lab.stopped(), vec!["c", "b", "a"]);
}
