//! The exit is observable: the observer plugged into an `App` keeps serving `/metrics`, `/tree`
//! and a 503 `/readyz` through the stop until the tree is down, ends `/events` when the stop
//! begins, pushes and writes the last metrics (with what was counted during the drain) after the
//! tree is down, and lingers until one more scrape.
#![cfg(feature = "observer")]

#[path = "observer/http.rs"]
mod http;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method as AxumMethod, Uri};
use canopy::app::{App, ExitStatus, Phase};
use canopy::observer::{Observer, ObserverError, Pushgateway};
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, SupervisorSpec};
use http::{get, listener, until, Sse, WAIT};
use hyper::StatusCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, Notify};

/// A worker whose stop waits for the test: it says when its `post_stop` began, and finishes it
/// once released.
#[derive(Clone)]
struct Slow {
    stopping: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
}

impl Actor for Slow {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn post_stop(&self, _: ActorRef<()>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        let _ = self.stopping.send(());
        self.release.notified().await;
        Ok(())
    }
}

#[derive(Clone)]
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_but_events_is_served_during_the_stop_until_the_tree_is_down() {
    let (stopping_tx, mut stopping) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let spec = SupervisorSpec::default()
        .name("obs-app")
        .child(ChildSpec::actor("db", Idle, ()))
        .child(ChildSpec::actor(
            "slow",
            Slow {
                stopping: stopping_tx,
                release: release.clone(),
            },
            (),
        ));
    let (l, addr) = listener();
    let app = App::new(spec)
        .handle_signals(false)
        .observer(Observer::new().listener(l))
        .expect("the observer starts");
    let (handle, lifecycle) = (app.handle(), app.lifecycle());
    let run = tokio::spawn(app.run());

    // Served from before the tree is up: not ready yet, then ready.
    until("the tree is up", || {
        (lifecycle.phase() == Phase::Running).then_some(())
    })
    .await;
    assert_eq!(get(addr, "/readyz").await.status, StatusCode::OK);
    let mut events = Sse::open(addr, None).await;
    assert_eq!(events.expect().await.event, "snapshot");

    handle.shutdown();
    // The stream ends when the stop begins: an open stream cannot hold the process.
    assert_eq!(events.until_not("diff").await.event, "shutdown");
    assert!(events.next().await.is_none());

    // The teardown is under way and held: `slow` is in its post_stop.
    stopping.recv().await.expect("slow is stopping");
    assert_eq!(lifecycle.phase(), Phase::Teardown);
    let ready = get(addr, "/readyz").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
    );
    assert_eq!(
        get(addr, "/healthz").await.status,
        StatusCode::OK,
        "live through the stop"
    );
    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .body
            .contains(r#"canopy_app_phase{phase="teardown"} 1"#),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("canopy_app_stopping_seconds "),
        "{}",
        metrics.body
    );
    let tree = get(addr, "/tree").await;
    assert_eq!(tree.status, StatusCode::OK);
    let slow = tree.json()["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/obs-app")
        .map(|root| root["children"][1]["status"]["state"].clone());
    // `db` stops after `slow` (reverse start order): still running; `slow` on its way out.
    assert_eq!(slow, Some(serde_json::json!("stopping")));
    assert_eq!(Sse::open(addr, None).await.status, StatusCode::NO_CONTENT);

    release.notify_one();
    let status = tokio::time::timeout(WAIT, run)
        .await
        .expect("the app exits")
        .unwrap();
    assert_eq!(status, Ok(ExitStatus::CLEAN));
    // Reaped with the app's tasks: nothing listens any more.
    assert!(http::try_request(addr, hyper::Method::GET, "/healthz", &[])
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_is_an_error_before_anything_starts() {
    let (_taken, addr) = listener();
    let app = App::new(SupervisorSpec::default()).observer(Observer::new().addr(addr));
    assert!(matches!(app, Err(ObserverError::Bind { .. })));
}

/// What a test Pushgateway received: method, path, content type, body.
type Pushed = (String, String, String, String);

/// A Pushgateway stand-in on loopback that records every request.
async fn pushgateway() -> (String, mpsc::UnboundedReceiver<Pushed>) {
    let (tx, rx) = mpsc::unbounded_channel::<Pushed>();
    let app = axum::Router::new().fallback(
        move |method: AxumMethod, uri: Uri, headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send((method.to_string(), uri.to_string(), content_type, body));
                StatusCode::OK
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_incremented_during_the_drain_reaches_the_final_push_and_file() {
    let (url, mut pushes) = pushgateway().await;
    let mut registry = Registry::default();
    let drained = Counter::<u64>::default();
    registry.register(
        "drained_requests",
        "Requests served during the drain",
        drained.clone(),
    );
    let file = std::env::temp_dir().join(format!("canopy-final-{}.prom", std::process::id()));
    let _ = std::fs::remove_file(&file);

    let (l, _) = listener();
    let app = App::new(
        SupervisorSpec::default()
            .name("obs-push")
            .child(ChildSpec::actor("db", Idle, ())),
    )
    .handle_signals(false)
    .drain_delay(Duration::from_secs(2))
    .observer(
        Observer::new()
            .listener(l)
            .registry(registry)
            .push_to(
                Pushgateway::new(&url, "canopy-test")
                    .unwrap()
                    .label("instance", "obs-push")
                    .label("tree", "/obs-push"),
            )
            .write_final(&file),
    )
    .expect("the observer starts");
    let (handle, lifecycle) = (app.handle(), app.lifecycle());
    // Serves one more request when the stop begins, as a server would during the drain delay.
    let (counted_tx, mut counted) = mpsc::unbounded_channel();
    let token = handle.shutdown_token();
    handle.spawn({
        let lifecycle = lifecycle.clone();
        async move {
            token.triggered().await;
            drained.inc();
            let _ = counted_tx.send(lifecycle.phase());
        }
    });
    let run = tokio::spawn(app.run());
    until("the tree is up", || {
        (lifecycle.phase() == Phase::Running).then_some(())
    })
    .await;
    handle.shutdown();
    assert_eq!(
        counted.recv().await,
        Some(Phase::Draining),
        "counted during the drain"
    );
    let status = tokio::time::timeout(WAIT, run)
        .await
        .expect("the app exits")
        .unwrap();
    assert_eq!(status, Ok(ExitStatus::CLEAN));

    let (method, path, content_type, body) =
        pushes.try_recv().expect("one push, before run returned");
    assert_eq!(method, "PUT");
    assert_eq!(
        path,
        "/metrics/job/canopy-test/instance/obs-push/tree@base64/L29icy1wdXNo"
    );
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(body.contains("drained_requests_total 1\n"), "{body}");
    // Pushed after the tree was down, in the final hooks.
    assert!(
        body.contains(r#"canopy_app_phase{phase="final_hooks"} 1"#),
        "{body}"
    );
    assert!(
        !body.contains(r#"supervisor="/obs-push""#),
        "the tree is down: {body}"
    );
    assert!(pushes.try_recv().is_err(), "one push only");

    let written = std::fs::read_to_string(&file).expect("the final file");
    assert_eq!(written, body, "the file and the push say the same");
    std::fs::remove_file(&file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_linger_serves_metrics_after_the_tree_is_down_until_one_more_scrape() {
    let (l, addr) = listener();
    // A linger longer than the wait: the app can only return in time if the scrape ends it.
    let app = App::new(
        SupervisorSpec::default()
            .name("obs-linger")
            .child(ChildSpec::actor("db", Idle, ())),
    )
    .handle_signals(false)
    .observer(Observer::new().listener(l).linger(WAIT * 3))
    .expect("the observer starts");
    let (handle, lifecycle) = (app.handle(), app.lifecycle());
    let run = tokio::spawn(app.run());
    until("the tree is up", || {
        (lifecycle.phase() == Phase::Running).then_some(())
    })
    .await;
    handle.shutdown();
    until("the final hooks", || {
        (lifecycle.phase() == Phase::FinalHooks).then_some(())
    })
    .await;

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .body
            .contains(r#"canopy_app_phase{phase="final_hooks"} 1"#),
        "{}",
        metrics.body
    );
    assert!(metrics
        .body
        .contains(r#"canopy_app_phase_duration_seconds{phase="teardown"} "#));
    assert!(
        !metrics.body.contains(r#"supervisor="/obs-linger""#),
        "the tree is down"
    );

    let status = tokio::time::timeout(WAIT, run)
        .await
        .expect("the scrape ends the linger")
        .unwrap();
    assert_eq!(status, Ok(ExitStatus::CLEAN));
}
