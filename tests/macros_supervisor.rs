//! `#[derive(canopy::Supervisor)]` at run time: the spec it builds, start and stop order, typed
//! handles that keep working across restarts, nested supervisor structs, dynamic children and
//! significant children.

use std::time::Duration;

use canopy::service::Ctx;
use canopy::{ChildKind, Dynamic, ExitReason, Restart, Shutdown, Strategy};
use tokio::sync::mpsc;

type Log = mpsc::UnboundedSender<String>;

/// Logs its start and its stop.
struct Db {
    url: String,
    log: Log,
}

#[canopy::service]
impl Db {
    fn init((url, log): (String, Log)) -> Self {
        let _ = log.send("db started".into());
        Db { url, log }
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    #[on_stop]
    fn stopped(&mut self, _reason: ExitReason) {
        let _ = self.log.send("db stopped".into());
    }
}

struct Listener {
    accepted: u64,
    log: Log,
}

#[canopy::service]
impl Listener {
    fn init(log: Log) -> Self {
        let _ = log.send("listener started".into());
        Listener { accepted: 0, log }
    }

    fn accept(&mut self) {
        self.accepted += 1;
    }

    fn accept_count(&self) -> u64 {
        self.accepted
    }

    #[cast]
    fn crash(&mut self) -> Result<(), String> {
        Err("listener crashed".into())
    }

    #[on_stop]
    fn stopped(&mut self, _reason: ExitReason) {
        let _ = self.log.send("listener stopped".into());
    }
}

struct Job {
    n: u32,
}

#[canopy::service(restart = temporary)]
impl Job {
    fn init(n: u32) -> Self {
        Job { n }
    }

    fn n(&self) -> u32 {
        self.n
    }
}

#[derive(canopy::Supervisor)]
#[supervisor(strategy = rest_for_one, intensity = 5, period = "10s")]
struct Web {
    db: Db,
    #[child(shutdown = "30s")]
    listener: Listener,
    jobs: Dynamic<Job>,
}

fn web_args(log: &Log) -> WebArgs {
    WebArgs {
        db: ("postgres://db".into(), log.clone()),
        listener: log.clone(),
    }
}

#[test]
fn the_spec_follows_the_struct() {
    let (log, _rx) = mpsc::unbounded_channel();
    let spec = Web::spec(web_args(&log));
    assert_eq!(spec.get_strategy(), Strategy::RestForOne);
    assert_eq!(spec.get_intensity(), 5);
    assert_eq!(spec.get_period(), Duration::from_secs(10));
    let ids: Vec<&str> = spec.get_children().iter().map(|c| c.id()).collect();
    assert_eq!(
        ids,
        ["db", "listener", "jobs"],
        "field order is start order"
    );
    let children = spec.get_children();
    assert_eq!(
        children[0].get_shutdown(),
        Shutdown::Timeout(Duration::from_secs(5))
    );
    assert_eq!(
        children[1].get_shutdown(),
        Shutdown::Timeout(Duration::from_secs(30))
    );
    assert_eq!(children[2].get_kind(), ChildKind::Supervisor);
    assert!(spec.validate().is_ok());
}

async fn expect(rx: &mut mpsc::UnboundedReceiver<String>, lines: &[&str]) {
    for line in lines {
        assert_eq!(rx.recv().await.as_deref(), Some(*line));
    }
}

#[tokio::test]
async fn children_start_in_field_order_and_stop_in_reverse() {
    let (log, mut rx) = mpsc::unbounded_channel();
    let web = Web::start(web_args(&log)).await.unwrap();
    expect(&mut rx, &["db started", "listener started"]).await;
    web.listener.accept().await.unwrap();
    assert_eq!(web.listener.accept_count().await.unwrap(), 1);
    assert_eq!(web.db.url().await.unwrap(), "postgres://db");
    let stopped = web.supervisor().expect("the supervisor runs").id();
    web.shutdown().await;
    expect(&mut rx, &["listener stopped", "db stopped"]).await;
    // The handles follow the path, and the other test of this file may start its own `Web` at the
    // path this one freed: what must be gone is the incarnation that was stopped.
    assert!(web.supervisor().is_none_or(|sup| sup.id() != stopped));
}

#[tokio::test]
async fn handles_keep_working_across_restarts() {
    let (log, mut rx) = mpsc::unbounded_channel();
    let web = Web::start(web_args(&log)).await.unwrap();
    expect(&mut rx, &["db started", "listener started"]).await;
    let job = web.jobs.start_child(7).await.unwrap();
    assert_eq!(job.n().await.unwrap(), 7);

    web.listener.accept().await.unwrap();
    web.listener.crash().await.unwrap();
    // rest_for_one: the listener and the jobs after it are restarted, the db is not.
    expect(&mut rx, &["listener stopped", "listener started"]).await;
    assert_eq!(
        web.listener.accept_count().await.unwrap(),
        0,
        "a new incarnation"
    );
    assert_eq!(web.db.url().await.unwrap(), "postgres://db");
    // The dynamic supervisor came back empty; its client finds the new one.
    let sup = web.jobs.supervisor().unwrap();
    assert_eq!(sup.count_children().await.unwrap().active, 0);
    let job = web.jobs.start_child(8).await.unwrap();
    assert_eq!(job.n().await.unwrap(), 8);
    web.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// Nesting, fixed arguments, ids

struct Metrics;

#[canopy::service(shutdown = brutal_kill)]
impl Metrics {
    fn init() -> Self {
        Metrics
    }

    fn up(&self) -> bool {
        true
    }
}

struct Port {
    port: u16,
}

#[canopy::service]
impl Port {
    fn init(port: u16) -> Self {
        Port { port }
    }

    fn port(&self) -> u16 {
        self.port
    }
}

#[derive(canopy::Supervisor)]
#[supervisor(strategy = one_for_one, name = "app")]
struct App {
    #[child(id = "front")]
    web: Web,
    #[child(args = ())]
    metrics: Metrics,
    #[child(args = 8080, restart = transient)]
    port: Port,
}

#[tokio::test]
async fn a_supervisor_struct_nests_in_another_and_its_handles_follow_it() {
    let (log, mut rx) = mpsc::unbounded_channel();
    // `metrics` and `port` have their arguments in the attribute: only `web` is asked for.
    let app = App::start(AppArgs {
        web: web_args(&log),
    })
    .await
    .unwrap();
    expect(&mut rx, &["db started", "listener started"]).await;
    assert_eq!(app.path(), "/app");
    assert_eq!(app.web.path(), "/app/front");
    assert!(app.metrics.up().await.unwrap());
    assert_eq!(app.port.port().await.unwrap(), 8080);

    let sup = app.supervisor().unwrap();
    let front = sup.which_child("front").await.unwrap();
    assert_eq!(front.kind, ChildKind::Supervisor);
    assert_eq!(
        sup.get_childspec("port").await.unwrap().get_restart(),
        Restart::Transient
    );

    // The nested supervisor stopped and started again: the same handles reach the new children.
    app.web.listener.accept().await.unwrap();
    sup.terminate_child("front").await.unwrap();
    expect(&mut rx, &["listener stopped", "db stopped"]).await;
    sup.restart_child("front").await.unwrap();
    expect(&mut rx, &["db started", "listener started"]).await;
    assert_eq!(app.web.listener.accept_count().await.unwrap(), 0);
    assert_eq!(app.web.db.url().await.unwrap(), "postgres://db");
    app.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// Significant children

struct Task;

#[canopy::service(restart = transient)]
impl Task {
    fn init() -> Self {
        Task
    }

    /// Finishes its work: a normal stop.
    fn finish(&self, ctx: &Ctx<Self>) {
        ctx.stop(ExitReason::Normal);
    }
}

#[derive(canopy::Supervisor)]
#[supervisor(auto_shutdown = any_significant)]
struct Batch {
    metrics: Metrics,
    // Transient by its type's default: no restart written here.
    #[child(significant)]
    task: Task,
}

#[tokio::test]
async fn a_significant_child_that_finishes_stops_its_supervisor() {
    let batch = Batch::start(BatchArgs {
        metrics: (),
        task: (),
    })
    .await
    .unwrap();
    let sup = batch.supervisor().unwrap();
    assert!(sup.get_childspec("task").await.unwrap().is_significant());
    batch.task.finish().await.unwrap();
    sup.wait().await;
    assert!(batch.supervisor().is_none());
}
