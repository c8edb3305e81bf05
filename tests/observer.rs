//! The observer over loopback, on its own (without an `App`): every endpoint, the token that
//! mutations require, the 404 of mutations that were not enabled, `/events` with its snapshot,
//! diffs, resume after reconnect and end, and reading a supervisor that is stuck.
#![cfg(feature = "observer")]

#[path = "observer/http.rs"]
mod http;

use canopy::dynamic::DynamicSpec;
use canopy::health::Health;
use canopy::observer::{Observer, ObserverError, ObserverHandle, DEFAULT_ADDR};
use canopy::ractor::ActorRef;
use canopy::snapshot::{self, Status};
use canopy::{ChildSpec, Start, Supervisor, SupervisorRef, SupervisorSpec};
use http::{get, listener, request, until, Sse};
use hyper::{Method, StatusCode};
use tokio::sync::mpsc;

/// A worker that tells the test when it has started and crashes on any message.
#[path = "support/announcer.rs"]
mod announcer;
use announcer::Worker;

/// `/<name>` with a worker `w` and a supervisor `web` holding a worker `listener`; the workers'
/// refs arrive on the receiver as they start.
async fn tree(name: &str) -> (SupervisorRef, mpsc::UnboundedReceiver<ActorRef<()>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sup = Supervisor::start(
        SupervisorSpec::default()
            .name(name)
            .child(ChildSpec::actor("w", Worker(tx.clone()), ()))
            .child(ChildSpec::supervisor(
                "web",
                SupervisorSpec::default().child(ChildSpec::actor("listener", Worker(tx), ())),
            )),
    )
    .await
    .unwrap();
    (sup, rx)
}

fn serve(observer: Observer) -> ObserverHandle {
    let (l, _) = listener();
    observer.listener(l).serve().expect("the observer starts")
}

fn restarts(path: &str) -> u32 {
    snapshot::at(path).map_or(0, |n| n.restarts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_endpoint_answers_over_loopback() {
    let (sup, _ups) = tree("obs-read").await;
    let observer = serve(Observer::new());
    let addr = observer.local_addr();
    assert!(addr.ip().is_loopback());

    let page = get(addr, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.body.contains("<title>canopy observer</title>"));
    // One page, nothing fetched from elsewhere: no external script, style, font or image.
    for external in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!page.body.contains(external), "the page loads {external}…");
    }
    assert!(page
        .header("content-security-policy")
        .contains("default-src 'none'"));

    assert_eq!(get(addr, "/healthz").await.status, StatusCode::OK);
    let ready = get(addr, "/readyz").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, "ready\n")
    );

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    assert!(
        metrics
            .body
            .contains(r#"canopy_child_restarts_total{supervisor="/obs-read",child="w"} 0"#),
        "{}",
        metrics.body
    );
    assert!(metrics
        .body
        .contains(r#"canopy_children{supervisor="/obs-read/web",status="running"} 1"#));
    let open = request(
        addr,
        Method::GET,
        "/metrics",
        &[("accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await;
    assert!(open
        .header("content-type")
        .starts_with("application/openmetrics-text"));
    assert!(open.body.ends_with("# EOF\n"));

    let whole = get(addr, "/tree").await;
    assert_eq!(whole.header("content-type"), "application/json");
    let whole = whole.json();
    assert_eq!(whole["schema_version"], snapshot::SCHEMA_VERSION);
    let root = whole["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/obs-read")
        .expect("the tree's root");
    assert_eq!(
        root["children"][1]["children"][0]["path"],
        "/obs-read/web/listener"
    );
    assert_eq!(root["children"][0]["status"]["state"], "running");

    let sub = get(addr, "/tree?path=/obs-read/web").await.json();
    assert_eq!(sub["roots"].as_array().unwrap().len(), 1);
    assert_eq!(sub["roots"][0]["path"], "/obs-read/web");
    let encoded = get(addr, "/tree?path=%2Fobs-read%2Fweb%2Flistener")
        .await
        .json();
    assert_eq!(encoded["roots"][0]["kind"], "worker");
    let missing = get(addr, "/tree?path=/obs-read/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("/obs-read/nope"));
    let text = get(addr, "/tree?path=/obs-read&format=text").await;
    assert!(
        text.body
            .starts_with("/obs-read [one_for_one 0/3 in 5000ms] running"),
        "{}",
        text.body
    );
    assert!(text.body.contains("└─ web"), "{}", text.body);

    assert_eq!(get(addr, "/nowhere").await.status, StatusCode::NOT_FOUND);
    observer.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_binds_loopback_unless_told_otherwise() {
    assert_eq!(DEFAULT_ADDR.ip(), std::net::Ipv4Addr::LOCALHOST);
    let observer = Observer::new().port(0).serve().unwrap();
    assert_eq!(observer.local_addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    // The same address twice is a typed error, not a panic.
    let taken = Observer::new().addr(observer.local_addr()).serve();
    assert!(
        matches!(taken, Err(ObserverError::Bind { addr, .. }) if addr == observer.local_addr())
    );
    observer.shutdown().await;
    assert!(matches!(
        Observer::new().port(0).mutations("").serve(),
        Err(ObserverError::EmptyToken)
    ));
}

#[test]
fn it_needs_a_runtime_and_says_so() {
    assert!(matches!(
        Observer::new().port(0).serve(),
        Err(ObserverError::NoRuntime)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_do_not_exist_unless_enabled() {
    let (sup, _ups) = tree("obs-nomut").await;
    let observer = serve(Observer::new());
    let addr = observer.local_addr();
    for action in ["restart", "terminate"] {
        let answer = request(
            addr,
            Method::POST,
            &format!("/children/{action}?path=/obs-nomut/w"),
            &[("authorization", "Bearer anything")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(
        snapshot::at("/obs-nomut/w").unwrap().status,
        Status::Running
    );
    observer.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_require_the_bearer_token() {
    let (tx, mut ups) = mpsc::unbounded_channel();
    let sup = Supervisor::start(
        SupervisorSpec::default()
            .name("obs-mut")
            .child(ChildSpec::actor("w", Worker(tx.clone()), ()))
            .child(ChildSpec::dynamic("pool", DynamicSpec::actor(Worker(tx)))),
    )
    .await
    .unwrap();
    let first = ups.recv().await.unwrap();
    let observer = serve(Observer::new().mutations("s3cret"));
    let addr = observer.local_addr();
    let post = |path: &'static str, auth: Option<&'static str>| async move {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
        request(addr, Method::POST, path, &headers).await
    };

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("s3cret"),
        Some("Basic s3cret"),
    ] {
        let answer = post("/children/restart?path=/obs-mut/w", auth).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer.header("www-authenticate"), "Bearer");
    }
    // Nothing happened to the child.
    assert_eq!(
        snapshot::at("/obs-mut/w").unwrap().actor_id,
        Some(first.get_id().into())
    );

    // The scheme is case-insensitive, as HTTP says.
    let answer = post("/children/restart?path=/obs-mut/w", Some("bearer s3cret")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["action"], "restart");
    let second = ups.recv().await.expect("a new incarnation");
    assert_ne!(second.get_id(), first.get_id());
    assert_eq!(snapshot::at("/obs-mut/w").unwrap().status, Status::Running);

    let answer = post("/children/terminate?path=/obs-mut/w", Some("Bearer s3cret")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(snapshot::at("/obs-mut/w").unwrap().status, Status::Stopped);

    // A dynamic child can be terminated, not restarted.
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
    pool.start_child(()).await.unwrap();
    let _conn = ups.recv().await.unwrap();
    let key = snapshot::at("/obs-mut/pool").unwrap().children[0]
        .id
        .clone();
    let path: &'static str =
        Box::leak(format!("/children/restart?path=/obs-mut/pool/{key}").into_boxed_str());
    assert_eq!(
        post(path, Some("Bearer s3cret")).await.status,
        StatusCode::CONFLICT
    );
    let path: &'static str =
        Box::leak(format!("/children/terminate?path=/obs-mut/pool/{key}").into_boxed_str());
    assert_eq!(
        post(path, Some("Bearer s3cret")).await.status,
        StatusCode::OK
    );
    assert!(snapshot::at("/obs-mut/pool").unwrap().children.is_empty());

    // Paths that name nothing, or a root, which nothing supervises.
    assert_eq!(
        post(
            "/children/restart?path=/obs-mut/nope",
            Some("Bearer s3cret")
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post("/children/restart?path=/no-such/w", Some("Bearer s3cret"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post("/children/restart?path=/obs-mut", Some("Bearer s3cret"))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post("/children/restart", Some("Bearer s3cret"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    observer.shutdown().await;
    sup.shutdown().await;
}

/// Inspection never messages the inspected: a supervisor stuck in a child's start (its mailbox not
/// served) is still shown, over every read endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_supervisor_is_still_shown() {
    let sup = Supervisor::start(SupervisorSpec::default().name("obs-stuck"))
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
    let starting = tokio::spawn(async move { api.start_child(stuck).await });
    begun_rx.recv().await.unwrap();

    let observer = serve(Observer::new());
    let addr = observer.local_addr();
    let node = get(addr, "/tree?path=/obs-stuck/stuck").await.json();
    assert_eq!(node["roots"][0]["status"]["state"], "starting");
    let metrics = get(addr, "/metrics").await.body;
    assert!(
        metrics.contains(r#"canopy_children{supervisor="/obs-stuck",status="starting"} 1"#),
        "{metrics}"
    );
    let mut events = Sse::open(addr, None).await;
    let first = events.expect().await;
    assert_eq!(first.event, "snapshot");
    assert!(first.data.contains("/obs-stuck/stuck"));

    drop(events);
    observer.shutdown().await;
    starting.abort();
    canopy::ractor::ActorCell::kill(&sup.cell());
    sup.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_send_a_snapshot_then_changes_with_increasing_ids() {
    let (sup, mut ups) = tree("obs-live").await;
    let w = ups.recv().await.unwrap();
    let _listener = ups.recv().await.unwrap();
    let observer = serve(Observer::new().poll_interval(std::time::Duration::from_millis(20)));
    let addr = observer.local_addr();
    let mut events = Sse::open(addr, None).await;
    assert_eq!(events.status, StatusCode::OK);
    let first = events.expect().await;
    assert_eq!(first.event, "snapshot");
    let tree = first.json();
    assert_eq!(tree["schema_version"], snapshot::SCHEMA_VERSION);
    assert!(first.data.contains("\"/obs-live/web/listener\""));
    until("a listening client", || {
        (observer.clients() == 1).then_some(())
    })
    .await;

    // A crash and its restart arrive as a diff naming the restarted node, with a later id.
    w.send_message(()).unwrap();
    let _w2 = ups.recv().await.unwrap();
    // The restart shows as restarts=1 with its last exit; the new incarnation shows as starting
    // until its own task has run ractor's post_start, and then as running (maybe in a later diff).
    let mut last = first.number();
    let (mut restarts, mut state, mut exit) = (0, String::new(), String::new());
    while !(restarts == 1 && state == "running") {
        let event = events.expect().await;
        assert_eq!(event.event, "diff");
        assert!(
            event.number() > last,
            "ids increase: {} after {last}",
            event.number()
        );
        last = event.number();
        let body = event.json();
        for node in body["nodes"].as_array().unwrap() {
            if node["path"] == "/obs-live/w" {
                restarts = node["restarts"].as_u64().unwrap();
                state = node["status"]["state"].as_str().unwrap().to_string();
                exit = node["last_exit"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
            }
        }
    }
    assert!(exit.contains("boom"), "{exit}");
    drop(events);
    until("the client is gone", || {
        (observer.clients() == 0).then_some(())
    })
    .await;
    observer.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_resumes_from_its_last_event_id() {
    let (sup, mut ups) = tree("obs-resume").await;
    let w = ups.recv().await.unwrap();
    let _listener = ups.recv().await.unwrap();
    let observer = serve(Observer::new());
    let addr = observer.local_addr();

    let mut events = Sse::open(addr, None).await;
    let snap = events.expect().await;
    let seen = snap.id.clone().unwrap();
    drop(events);
    until("the client is gone", || {
        (observer.clients() == 0).then_some(())
    })
    .await;

    // While nobody listens, the worker crashes and is restarted.
    w.send_message(()).unwrap();
    let _w2 = ups.recv().await.unwrap();
    until("the restart in the tree", || {
        (restarts("/obs-resume/w") == 1).then_some(())
    })
    .await;

    // Resuming: the missed change as a diff, right after the last id seen; no snapshot.
    let mut events = Sse::open(addr, Some(&seen)).await;
    let missed = events.expect().await;
    assert_eq!(missed.event, "diff", "{missed:?}");
    assert_eq!(missed.number(), snap.number() + 1);
    assert!(missed.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["path"] == "/obs-resume/w" && n["restarts"] == 1));
    let resumed_at = missed.id.clone().unwrap();
    drop(events);

    // Up to date: nothing to replay; what comes next is changes (other tests' trees live in
    // this process too) and then the end.
    let mut current = Sse::open(addr, Some(&resumed_at)).await;
    until("the client listens", || {
        (observer.clients() == 1).then_some(())
    })
    .await;
    // An id from another process (or another observer) gets a fresh snapshot.
    let mut other = Sse::open(addr, Some("1a2b3c.9-2")).await;
    assert_eq!(other.expect().await.event, "snapshot");
    let mut garbage = Sse::open(addr, Some("not an id")).await;
    assert_eq!(garbage.expect().await.event, "snapshot");

    observer.shutdown().await;
    assert_eq!(current.until_not("diff").await.event, "shutdown");
    assert!(current.next().await.is_none());
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_stop_begins_and_no_new_one_opens() {
    let (sup, _ups) = tree("obs-end").await;
    let health = Health::new();
    health.set_ready(true);
    let observer = serve(Observer::new().health(health.clone()));
    let addr = observer.local_addr();
    let mut events = Sse::open(addr, None).await;
    assert_eq!(events.expect().await.event, "snapshot");

    health.begin_shutdown();
    // Other tests' trees, in this process too, may change first.
    let last = events.until_not("diff").await;
    assert_eq!(last.event, "shutdown");
    assert!(
        last.id.is_none(),
        "the final event does not move the client's last id"
    );
    assert!(events.next().await.is_none(), "the stream ends");
    // A browser's EventSource does not reconnect after a 204.
    assert_eq!(Sse::open(addr, None).await.status, StatusCode::NO_CONTENT);
    // The rest is still served.
    let ready = get(addr, "/readyz").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
    );
    assert_eq!(get(addr, "/healthz").await.status, StatusCode::OK);
    assert_eq!(
        get(addr, "/tree?path=/obs-end").await.status,
        StatusCode::OK
    );
    assert_eq!(get(addr, "/metrics").await.status, StatusCode::OK);
    observer.shutdown().await;
    // Shut down: nothing listens any more.
    assert!(http::try_request(addr, Method::GET, "/healthz", &[])
        .await
        .is_err());
    sup.shutdown().await;
}
