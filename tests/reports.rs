//! What a supervisor records, logs and reports when it stops a child is the reason the child really
//! exited with, not the one it was asked for. Each test captures the tracing output and checks
//! which report, for which child, with which reason; the order of events comes from handshakes.

use std::sync::Arc;
use std::time::Duration;

use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, ExitReason, Shutdown, Strategy, Supervisor, SupervisorSpec};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

#[path = "support/capture.rs"]
mod capture;
use capture::{Capture, Logged};

// ---------------------------------------------------------------------------------------------
// A child whose stop can be made to go wrong

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OnStop {
    /// Stops cleanly.
    Clean,
    /// `post_stop` returns an error.
    Fail,
}

enum Msg {
    /// Waits for the test before going on, so that what is sent next stays queued.
    Block(oneshot::Receiver<()>),
    /// Panics when handled (queued before a drain, it is handled while draining).
    Panic,
    /// Stops itself with this reason.
    Exit(ExitReason),
}

/// A worker that tells the test when it is up, and can be held in `post_stop` until released.
#[derive(Clone)]
struct Child {
    on_stop: OnStop,
    up: mpsc::UnboundedSender<ActorRef<Msg>>,
    hold: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

impl Child {
    fn new(on_stop: OnStop, up: &mpsc::UnboundedSender<ActorRef<Msg>>) -> Child {
        Child {
            on_stop,
            up: up.clone(),
            hold: Arc::new(Mutex::new(None)),
        }
    }

    /// The next incarnation to stop waits in `post_stop` until the sender is used or dropped.
    fn hold(&self) -> oneshot::Sender<()> {
        let (tx, rx) = oneshot::channel();
        *self.hold.lock() = Some(rx);
        tx
    }
}

impl Actor for Child {
    type Msg = Msg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, me: ActorRef<Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        let _ = self.up.send(me);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Msg>,
        msg: Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Block(rx) => {
                let _ = rx.await;
            }
            Msg::Panic => panic!("boom while draining"),
            Msg::Exit(reason) => canopy::StopWith::stop_with(&me, reason),
        }
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<Msg>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        let hold = self.hold.lock().take();
        if let Some(hold) = hold {
            let _ = hold.await;
        }
        match self.on_stop {
            OnStop::Clean => Ok(()),
            OnStop::Fail => Err("flush failed".into()),
        }
    }
}

fn spec(id: &str, child: &Child) -> ChildSpec {
    ChildSpec::actor(id, child.clone(), ())
}

/// Three children `a`, `b`, `c` under one supervisor of `strategy`, all up; `b` stops by `b_stop`.
struct Trio {
    sup: canopy::SupervisorRef,
    children: [Child; 3],
    ups: mpsc::UnboundedReceiver<ActorRef<Msg>>,
    refs: [ActorRef<Msg>; 3],
}

impl Trio {
    async fn start(strategy: Strategy, b_stop: OnStop) -> Trio {
        let (up, mut ups) = mpsc::unbounded_channel();
        let children = [
            Child::new(OnStop::Clean, &up),
            Child::new(b_stop, &up),
            Child::new(OnStop::Clean, &up),
        ];
        let sup = Supervisor::start(
            SupervisorSpec::new(strategy)
                .restart_intensity(10, Duration::from_secs(60))
                .child(spec("a", &children[0]))
                .child(spec("b", &children[1]))
                .child(spec("c", &children[2])),
        )
        .await
        .unwrap();
        let refs = [
            ups.recv().await.unwrap(),
            ups.recv().await.unwrap(),
            ups.recv().await.unwrap(),
        ];
        Trio {
            sup,
            children,
            ups,
            refs,
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// `terminate_child` of a child whose `post_stop` fails: the failure is what is recorded, logged
/// in `child stopped` and reported as `shutdown_error`.
#[tokio::test]
async fn api_terminate_records_a_failing_post_stop() {
    let (log, _guard) = Capture::install();
    let (up, mut ups) = mpsc::unbounded_channel();
    let child = Child::new(OnStop::Fail, &up);
    let sup = Supervisor::start(SupervisorSpec::default().child(spec("db", &child)))
        .await
        .unwrap();
    ups.recv().await.unwrap();

    sup.terminate_child("db").await.unwrap();

    let info = sup.which_child("db").await.unwrap();
    assert!(
        matches!(&info.last_exit, Some(ExitReason::Error(text)) if text.contains("flush failed")),
        "last_exit = {:?}",
        info.last_exit
    );
    let stopped = log.about("child stopped", "db");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(stopped[0].get("reason").unwrap().contains("flush failed"));
    let reports = log.about("shutdown_error", "db");
    assert_eq!(reports.len(), 1, "{:?}", log.events());
    assert!(reports[0].get("reason").unwrap().contains("flush failed"));
    sup.shutdown().await;
}

/// A clean stop is recorded as `shutdown` and gets no report.
#[tokio::test]
async fn a_clean_stop_is_shutdown_and_unreported() {
    let (log, _guard) = Capture::install();
    let (up, mut ups) = mpsc::unbounded_channel();
    let child = Child::new(OnStop::Clean, &up);
    let sup = Supervisor::start(SupervisorSpec::default().child(spec("db", &child)))
        .await
        .unwrap();
    ups.recv().await.unwrap();
    sup.terminate_child("db").await.unwrap();
    let info = sup.which_child("db").await.unwrap();
    assert_eq!(info.last_exit, Some(ExitReason::Shutdown));
    assert!(log.about("shutdown_error", "db").is_empty());
    assert_eq!(
        log.about("child stopped", "db")[0].get("reason"),
        Some("shutdown")
    );
    sup.shutdown().await;
}

/// A Drain child that panics on a message it drains: the panic is its exit reason.
#[tokio::test]
async fn a_panic_while_draining_is_the_reason() {
    let (log, _guard) = Capture::install();
    let (up, mut ups) = mpsc::unbounded_channel();
    let child = Child::new(OnStop::Clean, &up);
    let sup = Supervisor::start(
        SupervisorSpec::default()
            .child(spec("worker", &child).shutdown(Shutdown::Drain(Duration::from_secs(30)))),
    )
    .await
    .unwrap();
    let worker = ups.recv().await.unwrap();
    // The worker is kept busy so that the panicking message is still queued when the drain begins.
    let (unblock, blocked) = oneshot::channel();
    worker.cast(Msg::Block(blocked)).unwrap();
    worker.cast(Msg::Panic).unwrap();
    let stopping = {
        let sup = sup.clone();
        tokio::spawn(async move { sup.terminate_child("worker").await })
    };
    while worker.get_status() != canopy::ractor::ActorStatus::Draining {
        tokio::task::yield_now().await;
    }
    unblock.send(()).unwrap();
    stopping.await.unwrap().unwrap();
    let info = sup.which_child("worker").await.unwrap();
    assert!(
        matches!(&info.last_exit, Some(ExitReason::Error(text)) if text.contains("boom while draining")),
        "last_exit = {:?}",
        info.last_exit
    );
    let reports = log.about("shutdown_error", "worker");
    assert_eq!(reports.len(), 1, "{:?}", log.events());
    sup.shutdown().await;
}

/// In a one_for_all round, a sibling that exits by itself (its own reason) while the supervisor
/// is still stopping another child is recorded with its own reason, and reported.
#[tokio::test]
async fn an_exit_just_before_the_stop_keeps_its_reason() {
    let (log, _guard) = Capture::install();
    let Trio {
        sup,
        children: [_, _, c],
        mut ups,
        refs: [a_ref, b_ref, _],
    } = Trio::start(Strategy::OneForAll, OnStop::Clean).await;

    // c will wait in post_stop, so the round is held while it stops c.
    let release_c = c.hold();
    a_ref
        .cast(Msg::Exit(ExitReason::Error("a crashed".into())))
        .unwrap();
    // b exits by itself with its own reason while the round waits for c.
    let b_cell = b_ref.get_cell();
    b_ref
        .cast(Msg::Exit(ExitReason::ShutdownWith(
            "b left on its own".into(),
        )))
        .unwrap();
    b_cell.wait(None).await.unwrap();
    release_c.send(()).unwrap();

    // The round restarts all three.
    for _ in 0..3 {
        ups.recv().await.unwrap();
    }
    let info = sup.which_child("b").await.unwrap();
    assert_eq!(
        info.last_exit,
        Some(ExitReason::ShutdownWith("b left on its own".into()))
    );
    let stopped = log.about("child stopped", "b");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(stopped[0]
        .get("reason")
        .unwrap()
        .contains("b left on its own"));
    // A permanent child ending with {shutdown, _} is not a clean stop (OTP's child_res).
    assert_eq!(
        log.about("shutdown_error", "b").len(),
        1,
        "{:?}",
        log.events()
    );
    assert_eq!(
        log.about("child stopped", "c")[0].get("reason"),
        Some("shutdown")
    );
    sup.shutdown().await;
}

/// A sibling that a one_for_all or rest_for_one round stops, and whose `post_stop` fails: the
/// failure is what is recorded as its last exit, logged in `child stopped` and reported as
/// `shutdown_error` (the round stops it without waiting for its exit event, and reads the reason
/// from that event afterwards).
#[tokio::test]
async fn a_round_records_a_failing_post_stop() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let (log, _guard) = Capture::install();
        let Trio {
            sup,
            mut ups,
            refs: [a_ref, _, _],
            ..
        } = Trio::start(strategy, OnStop::Fail).await;

        a_ref
            .cast(Msg::Exit(ExitReason::Error("a crashed".into())))
            .unwrap();
        // The round restarts all three (a is first, so rest_for_one takes them all too).
        for _ in 0..3 {
            ups.recv().await.unwrap();
        }
        let info = sup.which_child("b").await.unwrap();
        assert!(
            matches!(&info.last_exit, Some(ExitReason::Error(text)) if text.contains("flush failed")),
            "{strategy:?}: last_exit = {:?}",
            info.last_exit
        );
        assert_eq!(info.restarts, 1, "{strategy:?}");
        let stopped = log.about("child stopped", "b");
        assert_eq!(stopped.len(), 1, "{strategy:?}: {stopped:?}");
        assert!(stopped[0].get("reason").unwrap().contains("flush failed"));
        let reports = log.about("shutdown_error", "b");
        assert_eq!(reports.len(), 1, "{strategy:?}: {:?}", log.events());
        assert!(reports[0].get("reason").unwrap().contains("flush failed"));
        // The clean sibling is recorded as shutdown, and not reported.
        assert_eq!(
            sup.which_child("c").await.unwrap().last_exit,
            Some(ExitReason::Shutdown)
        );
        assert!(log.about("shutdown_error", "c").is_empty(), "{strategy:?}");
        assert_eq!(
            log.about("child stopped", "c")[0].get("reason"),
            Some("shutdown")
        );
        sup.shutdown().await;
    }
}

/// A child that ignores its stop past its timeout is killed, and recorded as `killed`.
#[tokio::test(start_paused = true)]
async fn killed_after_the_timeout_is_killed() {
    let (log, _guard) = Capture::install();
    let (up, mut ups) = mpsc::unbounded_channel();
    let child = Child::new(OnStop::Clean, &up);
    let sup = Supervisor::start(
        SupervisorSpec::default()
            .child(spec("stuck", &child).shutdown(Shutdown::Timeout(Duration::from_millis(100)))),
    )
    .await
    .unwrap();
    ups.recv().await.unwrap();
    // Held in post_stop forever (the sender is kept): only a kill ends it.
    let _never = child.hold();
    sup.terminate_child("stuck").await.unwrap();
    let info = sup.which_child("stuck").await.unwrap();
    assert_eq!(info.last_exit, Some(ExitReason::Killed));
    let stopped = log.about("child stopped", "stuck");
    assert_eq!(stopped[0].get("reason"), Some("killed"));
    assert_eq!(log.about("shutdown_error", "stuck").len(), 1);
    sup.shutdown().await;
}

/// The supervisor's own shutdown records each child's real reason too; the stop is in reverse
/// start order.
#[tokio::test]
async fn a_supervisor_shutdown_reports_real_reasons_in_order() {
    let (log, _guard) = Capture::install();
    let (up, mut ups) = mpsc::unbounded_channel();
    let first = Child::new(OnStop::Clean, &up);
    let second = Child::new(OnStop::Fail, &up);
    let sup = Supervisor::start(
        SupervisorSpec::default()
            .name("reports")
            .child(spec("first", &first))
            .child(spec("second", &second)),
    )
    .await
    .unwrap();
    ups.recv().await.unwrap();
    ups.recv().await.unwrap();
    sup.shutdown().await;
    let stops: Vec<(String, String)> = log
        .events()
        .into_iter()
        .filter(|e| e.message == "child stopped")
        .map(|e| {
            (
                e.get("path").unwrap_or_default().to_string(),
                e.get("reason").unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(stops.len(), 2, "{stops:?}");
    assert_eq!(stops[0].0, "/reports/second");
    assert!(stops[0].1.contains("flush failed"), "{stops:?}");
    assert_eq!(
        stops[1],
        ("/reports/first".to_string(), "shutdown".to_string())
    );
    assert_eq!(log.about("shutdown_error", "second").len(), 1);
    assert!(log.about("shutdown_error", "first").is_empty());
}

/// A dynamic supervisor's parallel shutdown records each child's own reason.
#[tokio::test]
async fn a_dynamic_shutdown_records_each_reason() {
    let (log, _guard) = Capture::install();
    let (up, mut ups) = mpsc::unbounded_channel();
    let failing = Child::new(OnStop::Fail, &up);
    let pool = DynamicSupervisor::start(
        DynamicSpec::new(move |sup, _n: u32| {
            let child = failing.clone();
            async move {
                let (actor, _) = Actor::spawn_linked(None, child, (), sup).await?;
                Ok(canopy::Start::from(actor))
            }
        })
        .name("pool"),
    )
    .await
    .unwrap();
    pool.start_child(1).await.unwrap();
    pool.start_child(2).await.unwrap();
    ups.recv().await.unwrap();
    ups.recv().await.unwrap();
    pool.shutdown().await;
    let stopped: Vec<Logged> = log
        .events()
        .into_iter()
        .filter(|e| e.message == "child stopped")
        .collect();
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    for e in &stopped {
        assert!(e.get("reason").unwrap().contains("flush failed"), "{e:?}");
    }
    assert_eq!(
        log.events()
            .iter()
            .filter(|e| e.message == "shutdown_error")
            .count(),
        2
    );
}
