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

#[path = "support/tally.rs"]
mod tally;
use tally::{Tally, TallyClient};

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

/// Every shape the wire types take (each status, policy and optional part, an actor id of another
/// node, strings that need escaping and strings too long to be held in place), as the schema's
/// version 1 writes them: read and written again, byte for byte.
#[test]
fn the_wire_format_reads_and_writes_back_byte_for_byte() {
    const V1: &str = concat!(
        r#"{"schema_version":1,"taken_at_ms":1764600000123,"roots":[{"path":"/app","id":"app","#,
        r#""kind":"supervisor","restart":null,"shutdown":null,"significant":false,"#,
        r#""status":{"state":"running"},"actor_id":"0.7","started_at_ms":null,"uptime_ms":null,"#,
        r#""restarts":0,"last_exit":null,"supervisor":{"strategy":"one_for_one","intensity":3,"#,
        r#""period_ms":5000,"restarts_in_window":1},"service":null,"in_flight":null,"children":["#,
        r#"{"path":"/app/db","id":"db","kind":"worker","restart":"permanent","#,
        r#""shutdown":{"policy":"timeout","ms":5000},"significant":false,"#,
        r#""status":{"state":"running"},"actor_id":"0.12","started_at_ms":1764600000000,"#,
        r#""uptime_ms":123,"restarts":2,"last_exit":{"reason":"error: boom \"quoted\"\n\tünïcode","#,
        r#""class":"error","at_ms":1764599999990},"supervisor":null,"#,
        r#""service":{"service":"Counter","messages_handled":5,"current_handler_ms":12},"#,
        r#""in_flight":1,"children":[]},"#,
        r#"{"path":"/app/a-supervisor-with-a-long-name","id":"a-supervisor-with-a-long-name","#,
        r#""kind":"supervisor","restart":"transient","shutdown":{"policy":"infinity"},"#,
        r#""significant":true,"status":{"state":"stopping"},"#,
        r#""actor_id":"18446744073709551615.18446744073709551615","started_at_ms":null,"#,
        r#""uptime_ms":null,"restarts":0,"last_exit":null,"supervisor":{"strategy":"dynamic","#,
        r#""intensity":0,"period_ms":18446744073709551615,"restarts_in_window":0},"service":null,"#,
        r#""in_flight":null,"children":[{"path":"/app/a-supervisor-with-a-long-name/12","id":"12","#,
        r#""kind":"worker","restart":"temporary","shutdown":{"policy":"drain","ms":0},"#,
        r#""significant":false,"status":{"state":"restarting","next_attempt_ms":1764600001000},"#,
        r#""actor_id":null,"started_at_ms":null,"uptime_ms":null,"restarts":1,"#,
        r#""last_exit":{"reason":"killed","class":"killed","at_ms":null},"supervisor":null,"#,
        r#""service":null,"in_flight":null,"children":[]}]},"#,
        r#"{"path":"/app/cache","id":"cache","kind":"worker","restart":"permanent","#,
        r#""shutdown":{"policy":"brutal_kill"},"significant":false,"#,
        r#""status":{"state":"restarting","next_attempt_ms":null},"actor_id":null,"#,
        r#""started_at_ms":null,"uptime_ms":null,"restarts":7,"#,
        r#""last_exit":{"reason":"shutdown","class":"shutdown","at_ms":0},"supervisor":null,"#,
        r#""service":{"service":"a-service-type-name-over-24-bytes","messages_handled":0,"#,
        r#""current_handler_ms":null},"in_flight":0,"children":[]},"#,
        r#"{"path":"/app/warm","id":"warm","kind":"worker","restart":"permanent","#,
        r#""shutdown":{"policy":"timeout","ms":18446744073709551615},"significant":false,"#,
        r#""status":{"state":"starting"},"actor_id":null,"started_at_ms":null,"uptime_ms":null,"#,
        r#""restarts":0,"last_exit":null,"supervisor":null,"service":null,"in_flight":null,"#,
        r#""children":[]},"#,
        r#"{"path":"/app/done","id":"done","kind":"worker","restart":"transient","#,
        r#""shutdown":{"policy":"timeout","ms":5000},"significant":true,"#,
        r#""status":{"state":"stopped"},"actor_id":null,"started_at_ms":null,"uptime_ms":null,"#,
        r#""restarts":4294967295,"last_exit":{"reason":"normal","class":"normal","#,
        r#""at_ms":1764600000100},"supervisor":null,"service":null,"in_flight":null,"#,
        r#""children":[]}]}]}"#,
    );
    let tree: canopy::snapshot::TreeSnapshot = serde_json::from_str(V1).unwrap();
    assert_eq!(serde_json::to_string(&tree).unwrap(), V1);
    let pretty = serde_json::to_string_pretty(&tree).unwrap();
    let again: canopy::snapshot::TreeSnapshot = serde_json::from_str(&pretty).unwrap();
    assert_eq!(again, tree);
}

/// The counters of the services under one supervisor are read under one hold of the service
/// registry's lock, which lets writers in every 64 reads: with more children than that, every one
/// still shows its own counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_of_a_big_supervisor_shows_its_own_counters() {
    const SERVICES: u64 = 130;
    let mut spec = SupervisorSpec::default().name("snap-services");
    for i in 0..SERVICES {
        spec = spec.child(Tally::child_spec(format!("t{i}"), ()));
    }
    let sup = Supervisor::start(spec).await.unwrap();
    for i in 0..SERVICES {
        let tally = TallyClient::new(&sup, &format!("t{i}")).expect("a child");
        for _ in 0..i % 4 {
            tally.add().await.unwrap();
        }
    }
    // A call is counted before its reply goes out: every one is in the snapshot now.
    let node = snapshot::at("/snap-services").expect("running");
    assert_eq!(node.children.len(), SERVICES as usize);
    for (i, child) in (0..SERVICES).zip(&node.children) {
        assert_eq!(child.id, format!("t{i}"));
        let service = child.service.as_ref().expect("a service's counters");
        assert_eq!(service.service, "Tally");
        assert_eq!(service.messages_handled, i % 4, "{}", child.path);
    }
    sup.shutdown().await;
}
