//! A stop that comes while the tree is still starting: the start is abandoned, what has started
//! is stopped in reverse order, and the status says the start was cut short. Events are ordered by
//! handshakes: a child's start tells the test it has begun and then waits for something that
//! never comes (a database that does not answer).

use std::sync::Arc;
use std::time::Duration;

use canopy::app::{App, ExitStatus};
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, Start, SupervisorSpec};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Records its start and its stop, by name, in one shared log.
#[derive(Clone)]
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Actor for Recorder {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        self.log.lock().push(format!("started {}", self.name));
        Ok(())
    }
    async fn post_stop(&self, _: ActorRef<()>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        self.log.lock().push(format!("stopped {}", self.name));
        Ok(())
    }
}

fn recorder(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> ChildSpec {
    ChildSpec::actor(
        name,
        Recorder {
            name,
            log: log.clone(),
        },
        (),
    )
}

/// A child whose start says it has begun, then never finishes.
fn hanging(name: &'static str, begun: mpsc::UnboundedSender<()>) -> ChildSpec {
    ChildSpec::new(name, move |_sup| {
        let begun = begun.clone();
        async move {
            let _ = begun.send(());
            std::future::pending::<()>().await;
            Ok(Start::Ignore)
        }
    })
}

/// `a`, then `web` (`w1`, then `w2` whose start hangs), then `b` never started.
fn tree(log: &Arc<Mutex<Vec<String>>>, begun: mpsc::UnboundedSender<()>) -> SupervisorSpec {
    SupervisorSpec::default()
        .child(recorder("a", log))
        .child(ChildSpec::supervisor(
            "web",
            SupervisorSpec::default()
                .child(recorder("w1", log))
                .child(hanging("w2", begun)),
        ))
        .child(recorder("b", log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_start_up_abandons_the_start_and_stops_what_started_in_reverse_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (begun, mut begun_rx) = mpsc::unbounded_channel();
    let app = App::new(tree(&log, begun))
        .handle_signals(false)
        .shutdown_deadline(Duration::from_secs(60));
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    begun_rx.recv().await.expect("w2's start began");
    handle.shutdown();
    let status = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the app ends")
        .unwrap();
    assert_eq!(status, Ok(ExitStatus::START_INTERRUPTED));
    assert_eq!(
        *log.lock(),
        ["started a", "started w1", "stopped w1", "stopped a"],
        "w1 stopped before a, b never started"
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_start_timeout_the_start_is_abandoned_with_its_own_status() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (begun, _begun_rx) = mpsc::unbounded_channel();
    let app = App::new(tree(&log, begun))
        .handle_signals(false)
        .start_timeout(Duration::from_secs(120));
    let status = app.run().await;
    assert_eq!(status, Ok(ExitStatus::START_TIMED_OUT));
    assert_eq!(
        *log.lock(),
        ["started a", "started w1", "stopped w1", "stopped a"]
    );
}

/// A child that will not stop in time while the start unwinds: the deadline kills the tree.
#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_an_abandoned_start() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (begun, mut begun_rx) = mpsc::unbounded_channel();
    let stuck = ChildSpec::new("stuck", |sup| async move {
        // Stops only when killed: its post_stop never returns.
        #[derive(Clone)]
        struct Stuck;
        impl Actor for Stuck {
            type Msg = ();
            type State = ();
            type Arguments = ();
            async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
                Ok(())
            }
            async fn post_stop(
                &self,
                _: ActorRef<()>,
                _: &mut (),
            ) -> Result<(), ActorProcessingErr> {
                std::future::pending::<()>().await;
                Ok(())
            }
        }
        let (actor, _) = Actor::spawn_linked(None, Stuck, (), sup).await?;
        Ok(Start::from(actor))
    })
    .shutdown(canopy::Shutdown::Infinity);
    let spec = SupervisorSpec::default()
        .child(recorder("a", &log))
        .child(stuck)
        .child(hanging("slow", begun));
    let app = App::new(spec)
        .handle_signals(false)
        .shutdown_deadline(Duration::from_secs(10));
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    begun_rx.recv().await.expect("slow's start began");
    handle.shutdown();
    assert_eq!(run.await.unwrap(), Ok(ExitStatus::DEADLINE_EXCEEDED));
    assert_eq!(
        *log.lock(),
        ["started a"],
        "killed, so no post_stop ran after the deadline"
    );
}

/// A request that comes once the tree is up is an ordinary stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_after_the_start_is_clean() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let app = App::new(SupervisorSpec::default().child(recorder("a", &log)))
        .handle_signals(false)
        .start_timeout(Duration::from_secs(3600));
    let handle = app.handle();
    let health = app.health();
    let run = tokio::spawn(app.run());
    while !health.is_ready() {
        tokio::task::yield_now().await;
    }
    handle.shutdown();
    assert_eq!(run.await.unwrap(), Ok(ExitStatus::CLEAN));
    assert_eq!(*log.lock(), ["started a", "stopped a"]);
}
