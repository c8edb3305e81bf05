//! The `canopy` tool, run as a user would: against a live tree served on loopback the way the
//! observer serves `/tree`.
#![cfg(feature = "cli")]

use std::process::Output;
use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use canopy::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use tokio::sync::mpsc;

#[path = "support/announcer.rs"]
mod announcer;
use announcer::Worker;

#[derive(serde::Deserialize)]
struct PathQuery {
    path: Option<String>,
}

/// `/tree` as the observer serves it: the whole snapshot, or the subtree at `?path=`.
async fn serve() -> String {
    let app = Router::new().route(
        "/tree",
        get(|Query(q): Query<PathQuery>| async move {
            match q.path {
                Some(path) => match canopy::snapshot::at(&path) {
                    Some(node) => (
                        axum::http::StatusCode::OK,
                        serde_json::to_string(&node).unwrap_or_default(),
                    ),
                    None => (axum::http::StatusCode::NOT_FOUND, String::new()),
                },
                None => (
                    axum::http::StatusCode::OK,
                    serde_json::to_string(&canopy::snapshot::tree()).unwrap_or_default(),
                ),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn canopy(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(args)
        .output()
        .await
        .expect("the canopy binary runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_and_top_read_a_live_tree() {
    let (tx, mut ups) = mpsc::unbounded_channel();
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .name("cli-app")
            .restart_intensity(100, Duration::from_secs(60))
            .child(ChildSpec::actor("db", Worker(tx.clone()), ()))
            .child(ChildSpec::supervisor(
                "web",
                SupervisorSpec::default().child(ChildSpec::actor(
                    "listener",
                    Worker(tx.clone()),
                    (),
                )),
            )),
    )
    .await
    .unwrap();
    let db = ups.recv().await.unwrap();
    let _listener = ups.recv().await.unwrap();
    // db crashes twice: it has the most restarts.
    db.send_message(()).unwrap();
    let db = ups.recv().await.unwrap();
    db.send_message(()).unwrap();
    let _db = ups.recv().await.unwrap();
    let _ = sup.which_children().await.unwrap();
    let url = serve().await;

    let out = canopy(&["tree", &url]).await;
    assert!(out.status.success(), "{out:?}");
    let shown = text(&out);
    assert!(shown.contains("/cli-app [one_for_one 2/100"), "{shown}");
    assert!(shown.contains("├─ db running"), "{shown}");
    assert!(shown.contains("restarts=2 last=error: boom"), "{shown}");
    assert!(shown.contains("   └─ listener running"), "{shown}");

    let out = canopy(&["tree", &url, "--path", "/cli-app/web", "--json"]).await;
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&text(&out)).unwrap();
    assert_eq!(json["path"], "/cli-app/web");
    assert_eq!(json["children"][0]["id"], "listener");

    let out = canopy(&["top", &url, "--iterations", "2", "--interval", "10"]).await;
    assert!(out.status.success(), "{out:?}");
    let table = text(&out);
    let first_rows: Vec<&str> = table.lines().skip(1).take(1).collect();
    assert!(
        first_rows[0].starts_with("/cli-app/db "),
        "most restarts first: {table}"
    );
    assert_eq!(
        table.matches("PATH").count(),
        2,
        "one table per reading: {table}"
    );

    // Over a window, nothing restarted between the two readings.
    let out = canopy(&[
        "top",
        &url,
        "--iterations",
        "2",
        "--interval",
        "10",
        "--window",
        "60",
    ])
    .await;
    let table = text(&out);
    let last = table.split("PATH").last().unwrap_or_default();
    let db_line = last
        .lines()
        .find(|l| l.starts_with("/cli-app/db "))
        .unwrap();
    assert_eq!(db_line.split_whitespace().nth(2), Some("0"), "{table}");
    sup.shutdown().await;
}

#[tokio::test]
async fn failures_are_reported_with_their_exit_status() {
    // Nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let out = canopy(&["tree", &format!("http://{addr}")]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the observer"));

    let out = canopy(&["tree", "ftp://example"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http://"));

    let out = canopy(&["top"]).await;
    assert_eq!(out.status.code(), Some(2), "usage error");
    let out = canopy(&["--help"]).await;
    assert!(out.status.success());
    assert!(text(&out).contains("tree") && text(&out).contains("top"));
}
