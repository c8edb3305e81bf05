//! The observer's page in a real browser: Debian's Chromium, headless, loads `/` from loopback;
//! the test reads the DOM the page's script built and checks that every node of a known tree is
//! shown with its status, and that a restart made after the page loaded shows up without a
//! reload. It also saves a screenshot, `target/observer.png`.
//!
//! Chromium is required: `.ci/run` installs it (`apt-get install chromium`); where it is missing
//! this test fails and says so, it does not pass without having run. `CHROMIUM=/path` picks
//! another binary.
//!
//! Ordering, without sleeps: a headless Chromium's virtual time does not advance while a request
//! is open, and `/events` stays open, so the DOM is dumped only after the page closes its stream,
//! which it does on the `shutdown` event. The test sees the restart's diff on a stream of its own
//! from the same observer (one broadcast, delivered in order to every client) before it stops the
//! observer; the page's stream therefore carries the diff before its `shutdown` event.
#![cfg(feature = "observer")]

#[path = "observer/http.rs"]
mod http;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use canopy::observer::Observer;
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, DynamicSpec, Strategy, Supervisor, SupervisorSpec};
use http::{listener, until_within, Sse};
use tokio::sync::mpsc;

#[path = "support/announcer.rs"]
mod announcer;
use announcer::Worker;

fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "the browser test needs Chromium at {}: `apt-get install chromium` (CI's .ci/run installs it), \
         or set CHROMIUM to its path",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `extra` flags and returns its stdout.
async fn run_chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempdir("profile");
    let mut command = tokio::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = command.spawn().expect("chromium starts");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium's output");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("canopy-chromium-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// The opening tag of the node at `path` in the dumped DOM.
fn node_tag<'a>(dom: &'a str, path: &str) -> &'a str {
    let at = dom
        .find(&format!("data-path=\"{path}\""))
        .unwrap_or_else(|| panic!("{path} is not on the page:\n{dom}"));
    let start = dom[..at].rfind("<li").expect("a list item");
    let end = at + dom[at..].find('>').expect("the end of the tag");
    &dom[start..=end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_node_and_a_restart_without_reloading() {
    let chromium_path = chromium(); // fail first, and clearly, without a browser
    let (tx, mut ups) = mpsc::unbounded_channel();
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .name("shop")
            .child(ChildSpec::actor("db", Worker(tx.clone()), ()))
            .child(ChildSpec::actor("cache", Worker(tx.clone()), ()))
            .child(ChildSpec::supervisor(
                "web",
                SupervisorSpec::new(Strategy::RestForOne)
                    .child(ChildSpec::actor("listener", Worker(tx.clone()), ()))
                    .child(ChildSpec::actor("sessions", Worker(tx.clone()), ())),
            ))
            .child(ChildSpec::actor("payments", Worker(tx), ())),
    )
    .await
    .unwrap();
    let mut workers = Vec::new();
    for _ in 0..5 {
        workers.push(ups.recv().await.unwrap());
    }
    let payments = workers.pop().unwrap();
    let nodes = [
        "/shop",
        "/shop/db",
        "/shop/cache",
        "/shop/web",
        "/shop/web/listener",
        "/shop/web/sessions",
        "/shop/payments",
    ];

    let (l, addr) = listener();
    let observer = Observer::new()
        .listener(l)
        .poll_interval(Duration::from_millis(50))
        .serve()
        .unwrap();
    let url = format!("http://{addr}/");
    let budget = "--virtual-time-budget=5000".to_string();
    let browser = tokio::spawn({
        let url = url.clone();
        async move { run_chromium(&url, &[&budget, "--dump-dom"]).await }
    });

    // The test's own stream, from before the restart.
    let mut mine = Sse::open(addr, None).await;
    assert_eq!(mine.expect().await.event, "snapshot");
    until_within(Duration::from_secs(60), "the page's stream is open", || {
        (observer.clients() == 2).then_some(())
    })
    .await;

    // The page has loaded and listens. Now payments crashes and is restarted.
    payments.send_message(()).unwrap();
    let _again = ups.recv().await.unwrap();
    // Until payments shows restarted and running again: the new incarnation shows as starting until
    // its own task has run ractor's post_start, which may come in a later diff.
    let (mut restarts, mut state) = (0, String::new());
    while !(restarts == 1 && state == "running") {
        let event = mine.expect().await;
        assert_eq!(event.event, "diff");
        for node in event.json()["nodes"].as_array().unwrap() {
            if node["path"] == "/shop/payments" {
                restarts = node["restarts"].as_u64().unwrap();
                state = node["status"]["state"].as_str().unwrap().to_string();
            }
        }
    }
    // The page's stream has the diffs too; the stop ends it after them, and the DOM is dumped.
    observer.shutdown().await;
    let dom = browser.await.unwrap();
    assert!(
        dom.contains("<title>canopy observer</title>"),
        "no page was dumped: {dom}"
    );

    for path in nodes {
        let tag = node_tag(&dom, path);
        assert!(tag.contains("data-status=\"running\""), "{path}: {tag}");
    }
    assert!(node_tag(&dom, "/shop/payments").contains("data-restarts=\"1\""));
    assert!(node_tag(&dom, "/shop/db").contains("data-restarts=\"0\""));
    assert!(
        dom.contains("last exit: error: boom"),
        "the last exit is shown"
    );
    assert!(
        dom.contains(r#"<span class="status">running</span>"#),
        "statuses are shown as text"
    );
    // One load: the snapshot, then at least the diff, applied in place; then the stop.
    let events: u32 = dom
        .split("data-events=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("the page counts its events");
    assert!(events >= 2, "snapshot and diff: {events}");
    assert!(
        dom.contains("data-mode=\"stopping\"") || dom.contains("data-mode=\"disconnected\""),
        "the page saw the stop"
    );

    // A picture for people: the same tree, live, on a fresh observer.
    let (l, addr) = listener();
    let observer = Observer::new().listener(l).serve().unwrap();
    // `target/observer.png`, wherever the target directory is (CARGO_TARGET_DIR included).
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    std::fs::create_dir_all(&target).expect("the target directory exists");
    let shot = target.join("observer.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &format!("http://{addr}/"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
            "--hide-scrollbars",
            // The live stream keeps virtual time still; a plain timeout ends the load.
            "--timeout=3000",
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    observer.shutdown().await;

    // Search by path, from a link: the matches and their ancestors, nothing else. The page has
    // its snapshot as soon as its stream is open, and the stop follows it.
    let (l, addr) = listener();
    let observer = Observer::new().listener(l).serve().unwrap();
    let budget = "--virtual-time-budget=5000".to_string();
    let browser = tokio::spawn(async move {
        run_chromium(&format!("http://{addr}/?q=pay"), &[&budget, "--dump-dom"]).await
    });
    until_within(Duration::from_secs(60), "the page's stream is open", || {
        (observer.clients() == 1).then_some(())
    })
    .await;
    observer.shutdown().await;
    let dom = browser.await.unwrap();
    assert!(
        node_tag(&dom, "/shop/payments").contains("hit"),
        "the match is marked"
    );
    assert!(
        !node_tag(&dom, "/shop").contains("hit"),
        "its ancestor is shown, not marked"
    );
    for hidden in ["/shop/db", "/shop/web", "/shop/web/listener"] {
        assert!(
            !dom.contains(&format!("data-path=\"{hidden}\"")),
            "{hidden} is filtered out"
        );
    }

    // A branch of more than 50 children starts collapsed: one line with its count, the children
    // not built; the other branches stay open.
    let bulk = Supervisor::start(
        SupervisorSpec::default()
            .name("bulk")
            .child(ChildSpec::dynamic("pool", DynamicSpec::actor(Idle))),
    )
    .await
    .unwrap();
    let pool = canopy::DynamicRef::<()>::from_cell(
        bulk.which_child("pool")
            .await
            .unwrap()
            .status
            .pid()
            .cloned()
            .unwrap(),
    )
    .unwrap();
    for _ in 0..60 {
        pool.start_child(()).await.unwrap();
    }
    let (l, addr) = listener();
    let observer = Observer::new().listener(l).serve().unwrap();
    let budget = "--virtual-time-budget=5000".to_string();
    let browser = tokio::spawn(async move {
        run_chromium(&format!("http://{addr}/"), &[&budget, "--dump-dom"]).await
    });
    until_within(Duration::from_secs(60), "the page's stream is open", || {
        (observer.clients() == 1).then_some(())
    })
    .await;
    observer.shutdown().await;
    let dom = browser.await.unwrap();
    assert!(
        node_tag(&dom, "/bulk/pool").contains("collapsed"),
        "the big branch is collapsed"
    );
    assert!(dom.contains("60 children"), "with its count");
    assert!(
        !dom.contains("data-path=\"/bulk/pool/"),
        "its children are not built"
    );
    assert!(
        !node_tag(&dom, "/shop/web").contains("collapsed"),
        "small branches stay open"
    );
    assert!(dom.contains("data-path=\"/shop/web/listener\""));
    bulk.shutdown().await;

    drop(chromium_path);
    sup.shutdown().await;
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
