//! Dynamic supervisors inside a tree, and partition supervisors: routing by key, aggregated views,
//! a partition restarted on its own, and the introspection paths of dynamic children.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use canopy::core::REACHED_MAX_RESTART_INTENSITY;
use canopy::{
    introspect, ChildError, ChildSpec, DynamicRef, ExitReason, PartitionRef, PartitionSupervisor,
    SpecError, StartError, Supervisor, SupervisorSpec,
};
use ractor::ActorCell;

use common::*;

const HOUR: Duration = Duration::from_secs(3600);

async fn start_parts(lab: &Lab, n: usize) -> PartitionRef<u32> {
    PartitionSupervisor::new(lab.dynamic_spec("child").restart_intensity(0, HOUR))
        .partitions(n)
        .restart_intensity(10, HOUR)
        .start()
        .await
        .expect("partition supervisor starts")
}

async fn add(parts: &PartitionRef<u32>, key: u32) -> ActorCell {
    parts
        .start_child(&key, key)
        .await
        .expect("start_child")
        .cell
        .expect("a running child")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_routed_by_key_and_views_add_up() {
    let lab = Lab::new();
    let parts = start_parts(&lab, 4).await;
    assert_eq!(parts.partitions(), 4);
    let mut used = HashSet::new();
    for key in 0..100u32 {
        let cell = add(&parts, key).await;
        let partition = parts.partition(&key).unwrap();
        let info = partition
            .which_child(&cell)
            .await
            .expect("in its key's partition");
        assert!(info.status.pid().is_some());
        used.insert(parts.partition_of(&key));
    }
    assert!(used.len() > 1, "keys spread over partitions: {used:?}");
    assert_eq!(
        parts.count_children().await.unwrap(),
        counts(4, 100, 0, 100)
    );
    let all = parts.which_children().await.unwrap();
    assert_eq!(all.len(), 100);
    for info in &all {
        let (partition, key) = info.id.split_once('/').expect("<partition>/<key>");
        assert!(partition.parse::<usize>().unwrap() < 4);
        assert!(key.parse::<u64>().is_ok());
    }

    // terminate_child finds the child's partition; a live stranger is not found.
    let victim = all[0].status.pid().cloned().unwrap();
    parts.terminate_child(&victim).await.unwrap();
    assert_eq!(parts.count_children().await.unwrap(), counts(4, 99, 0, 99));
    parts.terminate_child(&victim).await.unwrap();
    // A partition itself is alive and not a child of a partition.
    let outsider = parts.partition_at(0).unwrap().cell();
    assert!(matches!(
        parts.terminate_child(&outsider).await,
        Err(ChildError::NotFound(_))
    ));
    parts.shutdown().await;
    assert_eq!(
        parts.count_children().await,
        Err(ChildError::SupervisorDown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_is_one_partition_per_worker_thread() {
    let lab = Lab::new();
    let parts = PartitionSupervisor::new(lab.dynamic_spec("child"))
        .start()
        .await
        .unwrap();
    assert_eq!(parts.partitions(), 2);
    parts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_gives_up_is_restarted_alone() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let parts = start_parts(&lab, 2).await;
    // One child in each partition.
    let mut keys = [None, None];
    let mut key = 0u32;
    while keys.iter().any(Option::is_none) {
        let p = parts.partition_of(&key);
        if keys[p].is_none() {
            keys[p] = Some(key);
        }
        key += 1;
    }
    let [k0, k1] = keys.map(Option::unwrap);
    let c0 = add(&parts, k0).await;
    let c1 = add(&parts, k1).await;
    let p0 = parts.partition_at(0).unwrap();
    w.watch(&p0.cell());
    w.watch(&c1);

    // Partition 0 allows no restart: the crash makes it give up, and the static supervisor starts
    // a fresh, empty partition 0. Partition 1 and its child are untouched.
    crash(&c0, ExitReason::Error("boom".into()));
    assert_eq!(
        w.exit_of(&p0.cell()).await,
        ExitReason::ShutdownWith(REACHED_MAX_RESTART_INTENSITY.into())
    );
    eventually("partition 0 is back", || {
        parts.partition_at(0).is_ok_and(|p| {
            p.id() != p0.id() && p.cell().get_status() == ractor::ActorStatus::Running
        })
    })
    .await;
    assert_eq!(w.exited(&c1), None);
    assert_eq!(parts.count_children().await.unwrap(), counts(2, 1, 0, 1));
    add(&parts, k0).await;
    assert_eq!(parts.count_children().await.unwrap(), counts(2, 2, 0, 2));
    parts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_partition_specs_are_refused() {
    let lab = Lab::new();
    let zero = PartitionSupervisor::new(lab.dynamic_spec("child")).partitions(0);
    assert_eq!(
        zero.start().await.unwrap_err(),
        StartError::Spec(SpecError::ZeroPartitions)
    );
    let bad = PartitionSupervisor::new(lab.dynamic_spec("child").max_children(0));
    assert_eq!(
        bad.start().await.unwrap_err(),
        StartError::Spec(SpecError::ZeroMaxChildren)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_and_partition_supervisors_nest_in_a_static_tree() {
    let lab = Lab::new();
    let w = Watcher::new().await;
    let root = Supervisor::start(
        SupervisorSpec::default()
            .name("app")
            .restart_intensity(5, HOUR)
            .child(ChildSpec::dynamic(
                "pool",
                lab.dynamic_spec("job").restart_intensity(0, HOUR),
            ))
            .child(
                PartitionSupervisor::new(lab.dynamic_spec("session"))
                    .partitions(2)
                    .child_spec("sessions"),
            ),
    )
    .await
    .unwrap();
    let pool_cell = running_child(&root, "pool", None).await;
    let pool = DynamicRef::<u32>::from_cell(pool_cell.clone()).expect("a dynamic supervisor");
    let sessions_cell = running_child(&root, "sessions", None).await;
    let sessions = PartitionRef::<u32>::from_cell(sessions_cell).expect("a partition supervisor");
    assert_eq!(sessions.partitions(), 2);
    assert!(PartitionRef::<u32>::from_cell(pool_cell.clone()).is_none());
    assert!(DynamicRef::<String>::from_cell(pool_cell.clone()).is_none());

    let job = pool.start_child(1).await.unwrap().cell.unwrap();
    sessions.start_child("alice", 2).await.unwrap();
    let paths: Vec<String> = introspect::running(&root.cell())
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert!(paths.contains(&"/app/pool".to_string()), "{paths:?}");
    assert!(paths.contains(&"/app/pool/1".to_string()), "{paths:?}");
    let alice = format!("/app/sessions/{}/1", sessions.partition_of("alice"));
    assert!(paths.contains(&alice), "{paths:?}");

    // The pool gives up on its first crash; the root restarts it empty (dynamic children are not
    // recreated), and the sessions are untouched.
    w.watch(&pool_cell);
    crash(&job, ExitReason::Error("boom".into()));
    assert_eq!(
        w.exit_of(&pool_cell).await,
        ExitReason::ShutdownWith(REACHED_MAX_RESTART_INTENSITY.into())
    );
    let pool2 = running_child(&root, "pool", Some(&pool_cell)).await;
    let pool2 = DynamicRef::<u32>::from_cell(pool2).unwrap();
    assert_eq!(pool2.count_children().await.unwrap(), counts(1, 0, 0, 0));
    assert_eq!(sessions.count_children().await.unwrap(), counts(2, 1, 0, 1));
    assert_eq!(root.which_child("pool").await.unwrap().restarts, 1);

    root.shutdown().await;
    assert!(introspect::running(&root.cell()).is_empty());
}
