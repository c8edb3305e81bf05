//! The tree snapshot: what it shows of each node, that it agrees with the supervisor's own
//! answers, and that it is read without messaging anyone (a supervisor stuck in a start is still
//! read).

use std::time::Duration;

use canopy::dynamic::DynamicSpec;
use canopy::snapshot::{self, Kind, RestartType, ShutdownPolicy, Status};
use canopy::{
    ChildSpec, ExitReason, Restart, Shutdown, Start, Strategy, Supervisor, SupervisorSpec,
};
use tokio::sync::mpsc;

#[path = "support/announcer.rs"]
mod announcer;
use announcer::Worker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_shows_every_node_with_its_settings_and_state() {
    let (tx, mut ups) = mpsc::unbounded_channel();
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .name("snap-fields")
            .restart_intensity(5, Duration::from_secs(60))
            .child(ChildSpec::actor("db", Worker(tx.clone()), ()))
            .child(ChildSpec::supervisor(
                "web",
                SupervisorSpec::new(Strategy::RestForOne).child(
                    ChildSpec::actor("listener", Worker(tx.clone()), ())
                        .shutdown(Shutdown::BrutalKill),
                ),
            ))
            .child(
                ChildSpec::new("ignored", |_sup| async { Ok(Start::Ignore) })
                    .restart(Restart::Transient),
            )
            .child(ChildSpec::dynamic(
                "pool",
                DynamicSpec::actor(Worker(tx.clone())),
            )),
    )
    .await
    .unwrap();
    let db = ups.recv().await.unwrap();
    let _listener = ups.recv().await.unwrap();
    // db crashes once and is restarted.
    db.send_message(()).unwrap();
    let _db2 = ups.recv().await.unwrap();
    let _ = sup.which_children().await.unwrap();

    let root = snapshot::at("/snap-fields").expect("running");
    assert_eq!(root.kind, Kind::Supervisor);
    assert_eq!(
        root.restart, None,
        "a top-level supervisor has no restart type"
    );
    let budget = root.supervisor.as_ref().unwrap();
    assert_eq!(
        (budget.strategy.as_str(), budget.intensity, budget.period_ms),
        ("one_for_one", 5, 60_000)
    );
    assert_eq!(budget.restarts_in_window, 1);
    let ids: Vec<&str> = root.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["db", "web", "ignored", "pool"], "start order");

    let db = &root.children[0];
    assert_eq!(db.path, "/snap-fields/db");
    assert_eq!(db.status, Status::Running);
    assert_eq!(db.restarts, 1);
    assert_eq!(db.restart, Some(RestartType::Permanent));
    assert_eq!(db.shutdown, Some(ShutdownPolicy::Timeout { ms: 5000 }));
    let exit = db.last_exit.as_ref().unwrap();
    assert_eq!(exit.class, "error");
    assert!(exit.reason.contains("boom"));
    assert!(exit.at_ms.is_some() && db.started_at_ms.is_some() && db.uptime_ms.is_some());

    let web = &root.children[1];
    assert_eq!(web.supervisor.as_ref().unwrap().strategy, "rest_for_one");
    assert_eq!(web.shutdown, Some(ShutdownPolicy::Infinity));
    assert_eq!(web.children[0].path, "/snap-fields/web/listener");
    assert_eq!(web.children[0].shutdown, Some(ShutdownPolicy::BrutalKill));

    assert_eq!(root.children[2].status, Status::Stopped);
    assert_eq!(root.children[2].restart, Some(RestartType::Transient));
    assert_eq!(
        root.children[3].supervisor.as_ref().unwrap().strategy,
        "dynamic"
    );

    // The same node in the whole-tree snapshot, and as JSON with its schema version.
    let tree = snapshot::tree();
    assert!(tree.roots.iter().any(|r| r.path == "/snap-fields"));
    let json = serde_json::to_value(&tree).unwrap();
    assert_eq!(json["schema_version"], 1);
    let back: snapshot::TreeSnapshot = serde_json::from_value(json).unwrap();
    assert_eq!(back.roots.len(), tree.roots.len());
    // A worker's subtree, and the text rendering.
    assert_eq!(
        snapshot::at("/snap-fields/web/listener").unwrap().kind,
        Kind::Worker
    );
    let text = root.to_string();
    assert!(
        text.starts_with("/snap-fields [one_for_one 1/5 in 60000ms] running"),
        "{text}"
    );
    assert!(text.contains("└─ pool [dynamic"), "{text}");
    assert!(text.contains("│  └─ listener running"), "{text}");
    sup.shutdown().await;
    assert!(snapshot::at("/snap-fields").is_none());
}

/// Reading never messages the supervisor: one stuck in a child's start (its mailbox not served)
/// is still read, and shows that child as starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_supervisor_is_still_read() {
    let sup = Supervisor::start(SupervisorSpec::default().name("snap-busy"))
        .await
        .unwrap();
    let (begun, mut begun_rx) = mpsc::unbounded_channel::<()>();
    let stuck = ChildSpec::new("stuck", move |_sup| {
        let begun = begun.clone();
        async move {
            let _ = begun.send(());
            std::future::pending::<()>().await;
            Ok(Start::Ignore)
        }
    });
    let api = sup.clone();
    let call = tokio::spawn(async move { api.start_child(stuck).await });
    begun_rx.recv().await.unwrap();
    let node = snapshot::at("/snap-busy").expect("read while busy");
    assert_eq!(node.children[0].status, Status::Starting);
    call.abort();
    sup.cell().kill();
}

/// During a restart storm the snapshot always agrees with `count_children`, taken right after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_agrees_with_count_children_during_a_restart_storm() {
    let (tx, mut ups) = mpsc::unbounded_channel();
    let mut spec = SupervisorSpec::new(Strategy::OneForOne)
        .name("snap-storm")
        .restart_intensity(u32::MAX, Duration::from_secs(1));
    for i in 0..20 {
        spec = spec.child(ChildSpec::actor(format!("w{i}"), Worker(tx.clone()), ()));
    }
    let sup = Supervisor::start(spec).await.unwrap();
    let storm = tokio::spawn(async move {
        let mut crashed = 0;
        while let Some(w) = ups.recv().await {
            let _ = w.send_message(());
            crashed += 1;
            if crashed == 500 {
                break;
            }
        }
    });
    for _ in 0..200 {
        let node = snapshot::at("/snap-storm").unwrap();
        assert_eq!(node.children.len(), 20);
        let counts = sup.count_children().await.unwrap();
        assert_eq!(counts.specs, node.children.len());
        assert_eq!(counts.workers, 20);
        let running = node
            .children
            .iter()
            .filter(|c| c.status == Status::Running)
            .count();
        assert!(running <= 20);
    }
    storm.await.unwrap();
    let _ = sup.which_children().await.unwrap();
    let restarts: u32 = snapshot::at("/snap-storm")
        .unwrap()
        .children
        .iter()
        .map(|c| c.restarts)
        .sum();
    assert!(restarts >= 480, "{restarts}");
    sup.stop_and_wait(ExitReason::Shutdown).await;
}
