//! The Prometheus collector: what it reports of a live tree, read at scrape time from the user's
//! own registry, with labels bounded however many dynamic children run.
#![cfg(feature = "metrics")]

use std::time::Duration;

use canopy::dynamic::DynamicSpec;
use canopy::metrics::{self, TreeMetrics};
use canopy::{ChildSpec, Start, Strategy, Supervisor, SupervisorSpec};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

#[path = "support/announcer.rs"]
mod announcer;
use announcer::Worker;

#[path = "support/tally.rs"]
mod tally;
use tally::{Tally, TallyClient};

/// Waits (bounded) until the snapshot shows `path` running. A child its supervisor has started
/// shows as starting until its own task has run ractor's `post_start`, an instant later.
async fn running(path: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while canopy::snapshot::at(path).map(|n| n.status) != Some(canopy::snapshot::Status::Running) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never shows as running"
        );
        tokio::task::yield_now().await;
    }
}

fn scrape(registry: &Registry) -> String {
    metrics::encode(registry).expect("encodes")
}

/// The value of the one sample `line_start` begins (name and labels), if present.
fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_statuses_budgets_and_messages_are_read_at_scrape_time() {
    let (tx, mut ups) = mpsc::unbounded_channel();
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .name("m-tree")
            .restart_intensity(4, Duration::from_secs(60))
            .child(ChildSpec::actor("w", Worker(tx.clone()), ()))
            .child(ChildSpec::new("idle", |_sup| async { Ok(Start::Ignore) }))
            .child(Tally::child_spec("tally", ()))
            .child(ChildSpec::supervisor(
                "web",
                SupervisorSpec::new(Strategy::RestForOne).child(ChildSpec::actor(
                    "listener",
                    Worker(tx),
                    (),
                )),
            )),
    )
    .await
    .unwrap();
    let w = ups.recv().await.unwrap();
    let mut registry = Registry::default();
    let mine = Counter::<u64>::default();
    registry.register(
        "my_requests",
        "The user's own metric, beside canopy's",
        mine.clone(),
    );
    TreeMetrics::new().register(&mut registry);

    let before = scrape(&registry);
    assert_eq!(
        value(
            &before,
            r#"canopy_child_restarts_total{supervisor="/m-tree",child="w"}"#
        ),
        Some(0.0)
    );
    assert_eq!(value(&before, "my_requests_total"), Some(0.0));

    // Between two scrapes: a crash and restart, two messages, one of the user's requests.
    w.send_message(()).unwrap();
    let _w2 = ups.recv().await.unwrap();
    // Answered once the supervisor has finished the restart it is in (and counted it).
    sup.count_children().await.unwrap();
    running("/m-tree/w").await;
    let tally = TallyClient::new(&sup, "tally").expect("a child");
    tally.add().await.unwrap();
    assert_eq!(tally.add().await.unwrap(), 2);
    // A call is counted before its reply goes out: both are in the snapshot now.
    assert_eq!(
        canopy::snapshot::at("/m-tree/tally")
            .and_then(|n| n.service)
            .map(|s| s.messages_handled),
        Some(2)
    );
    mine.inc();

    let text = scrape(&registry);
    assert_eq!(
        value(
            &text,
            r#"canopy_child_restarts_total{supervisor="/m-tree",child="w"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_child_restarts_total{supervisor="/m-tree/web",child="listener"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_children{supervisor="/m-tree",status="running"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_children{supervisor="/m-tree",status="stopped"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_children{supervisor="/m-tree",status="restarting"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_supervisor_restarts_in_window{supervisor="/m-tree"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_supervisor_restart_intensity{supervisor="/m-tree"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_supervisor_restart_period_seconds{supervisor="/m-tree"}"#
        ),
        Some(60.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_supervisor_restart_intensity_used_ratio{supervisor="/m-tree"}"#
        ),
        Some(0.25)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_supervisor_restart_intensity_used_ratio{supervisor="/m-tree/web"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_service_messages_handled_total{supervisor="/m-tree",child="tally"}"#
        ),
        Some(2.0)
    );
    assert_eq!(value(&text, "my_requests_total"), Some(1.0));
    // No app lifecycle given: no phase metrics.
    assert!(!text.contains("canopy_app_phase"));
    sup.shutdown().await;
    assert!(
        !scrape(&registry).contains(r#"supervisor="/m-tree""#),
        "gone with the tree"
    );
}

/// However many children a dynamic supervisor has, its series are the same few: its children are
/// summed under `child="*"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_children_are_summed_under_their_supervisor() {
    let mut registry = Registry::default();
    TreeMetrics::new().register(&mut registry);
    let series = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(r#"supervisor="/m-dyn/pool""#))
            .count()
    };
    let (tx, mut ups) = mpsc::unbounded_channel();
    let sup = Supervisor::start(
        SupervisorSpec::default()
            .name("m-dyn")
            .child(ChildSpec::dynamic(
                "pool",
                DynamicSpec::actor(Worker(tx)).restart_intensity(100, Duration::from_secs(60)),
            )),
    )
    .await
    .unwrap();
    let pool = canopy::DynamicRef::<()>::from_cell(
        sup.which_child("pool")
            .await
            .unwrap()
            .status
            .pid()
            .cloned()
            .unwrap(),
    )
    .unwrap();
    let mut children = Vec::new();
    for _ in 0..3 {
        pool.start_child(()).await.unwrap();
        children.push(ups.recv().await.unwrap());
    }
    let few = series(&scrape(&registry));
    for _ in 0..40 {
        pool.start_child(()).await.unwrap();
        children.push(ups.recv().await.unwrap());
    }
    // Two crashes, each restarted.
    for child in &children[..2] {
        child.send_message(()).unwrap();
        let _ = ups.recv().await.unwrap();
    }
    // Answered once the pool has finished the restart it is in (and counted it).
    pool.count_children().await.unwrap();
    for child in canopy::snapshot::at("/m-dyn/pool").unwrap().children {
        running(&child.path).await;
    }
    let text = scrape(&registry);
    assert_eq!(
        series(&text),
        few,
        "43 children, as many series as for 3:\n{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_child_restarts_total{supervisor="/m-dyn/pool",child="*"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_children{supervisor="/m-dyn/pool",status="running"}"#
        ),
        Some(43.0)
    );
    assert_eq!(
        value(
            &text,
            r#"canopy_supervisor_restarts_in_window{supervisor="/m-dyn/pool"}"#
        ),
        Some(2.0)
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_phases_and_their_durations_come_from_the_lifecycle() {
    use canopy::app::{App, ExitStatus, Phase};
    let app = App::new(SupervisorSpec::default().name("m-app")).handle_signals(false);
    let mut registry = Registry::default();
    TreeMetrics::new()
        .lifecycle(app.lifecycle())
        .register(&mut registry);
    let text = scrape(&registry);
    assert_eq!(
        value(&text, r#"canopy_app_phase{phase="starting"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"canopy_app_phase{phase="running"}"#),
        Some(0.0)
    );
    assert!(!text.contains("canopy_app_stopping_seconds"), "no stop yet");

    let (handle, lifecycle) = (app.handle(), app.lifecycle());
    handle.shutdown();
    assert_eq!(app.run().await, Ok(ExitStatus::CLEAN));
    assert_eq!(lifecycle.phase(), Phase::Done);
    let text = scrape(&registry);
    assert_eq!(value(&text, r#"canopy_app_phase{phase="done"}"#), Some(1.0));
    assert_eq!(
        value(&text, r#"canopy_app_phase{phase="starting"}"#),
        Some(0.0)
    );
    for phase in [
        "starting",
        "running",
        "draining",
        "teardown",
        "final_hooks",
        "reaping",
        "done",
    ] {
        let took = value(
            &text,
            &format!(r#"canopy_app_phase_duration_seconds{{phase="{phase}"}}"#),
        );
        assert!(took.is_some_and(|s| s >= 0.0), "{phase}: {text}");
    }
    assert!(value(&text, "canopy_app_stopping_seconds").is_some_and(|s| s >= 0.0));
}

#[test]
fn the_final_file_is_the_text_format_written_whole() {
    let mut registry = Registry::default();
    let c = Counter::<u64>::default();
    registry.register("written", "A counter", c.clone());
    c.inc_by(3);
    let path = std::env::temp_dir().join(format!("canopy-metrics-{}.prom", std::process::id()));
    metrics::write_file(&path, &registry).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# TYPE written_total counter\nwritten_total 3\n"),
        "{text}"
    );
    std::fs::remove_file(&path).unwrap();
    // Where it cannot be written, an error and nothing left behind.
    let missing = std::env::temp_dir()
        .join("canopy-no-such-dir")
        .join("m.prom");
    assert!(metrics::write_file(&missing, &registry).is_err());
}
