//! The process lifecycle in-process (signals off, stopped through the handle): phases, health,
//! final hooks, deadline, exit statuses and bad input.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canopy::app::{App, ExitStatus};
use canopy::health::Health;
use canopy::{
    AutoShutdown, ChildSpec, Restart, Shutdown, SpecError, Start, StartError, SupervisorSpec,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// A worker that records what it saw of the app's health when it was stopped, and can be told to
/// crash or to ignore stops.
#[derive(Clone, Default)]
struct Probe {
    health: Option<Health>,
    seen_at_stop: Arc<parking_lot::Mutex<Option<(bool, bool, bool)>>>,
    crash_after: Option<Duration>,
    busy_for: Option<Duration>,
}

enum Msg {
    Crash,
    Busy(Duration),
}

impl Actor for Probe {
    type Msg = Msg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, me: ActorRef<Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        if let Some(d) = self.crash_after {
            me.send_after(d, || Msg::Crash);
        }
        if let Some(d) = self.busy_for {
            me.send_message(Msg::Busy(d))?;
        }
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Crash => Err("crash on purpose".into()),
            Msg::Busy(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }
    async fn post_stop(&self, _: ActorRef<Msg>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        if let Some(h) = &self.health {
            *self.seen_at_stop.lock() =
                Some((h.is_live(), h.is_ready(), h.shutdown_token().is_triggered()));
        }
        Ok(())
    }
}

fn quiet(spec: SupervisorSpec) -> App {
    App::new(spec).handle_signals(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spec_returns_the_typed_error_before_any_child_starts() {
    let started = Arc::new(AtomicUsize::new(0));
    let counting = |id: &str| {
        let started = started.clone();
        ChildSpec::new(id, move |_sup| {
            started.fetch_add(1, Ordering::SeqCst);
            async { Ok(Start::Ignore) }
        })
    };
    let spec = SupervisorSpec::default()
        .child(counting("a"))
        .child(counting("a"));
    let result = quiet(spec).run().await;
    assert_eq!(
        result,
        Err(StartError::Spec(SpecError::DuplicateId("a".into())))
    );
    assert_eq!(ExitStatus::of(result), ExitStatus::START_FAILED);
    assert_eq!(started.load(Ordering::SeqCst), 0, "no child may start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_failing_at_start_fails_the_app_with_the_start_code() {
    let spec = SupervisorSpec::default()
        .child(ChildSpec::actor("ok", Probe::default(), ()))
        .child(ChildSpec::new("bad", |_sup| async {
            Err("no database".into())
        }));
    let result = quiet(spec).run().await;
    assert!(
        matches!(&result, Err(StartError::ChildFailed { id, reason }) if id == "bad" && reason == "no database")
    );
    assert_eq!(ExitStatus::of(result), ExitStatus::START_FAILED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_on_while_up_and_off_before_teardown_while_liveness_stays() {
    let health = Health::new();
    let probe = Probe {
        health: Some(health.clone()),
        ..Probe::default()
    };
    let seen = probe.seen_at_stop.clone();
    let app = quiet(SupervisorSpec::default().child(ChildSpec::actor("probe", probe, ())))
        .with_health(health.clone());
    let handle = app.handle();
    assert!(
        health.is_live() && !health.is_ready(),
        "not ready before the tree is up"
    );
    let run = tokio::spawn(app.run());
    while !health.is_ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let token = handle.shutdown_token();
    assert!(!token.is_triggered());
    handle.shutdown();
    token.triggered().await;
    assert_eq!(run.await.unwrap(), Ok(ExitStatus::CLEAN));
    let (live, ready, triggered) = seen.lock().expect("the probe was stopped gracefully");
    assert!(
        live && !ready && triggered,
        "at teardown: live, not ready, token fired"
    );
    assert!(!health.is_live(), "liveness ends when run returns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_final_hook_is_reported_and_the_next_hooks_still_run() {
    let ran = Arc::new(AtomicUsize::new(0));
    let (r1, r2) = (ran.clone(), ran.clone());
    let app = quiet(SupervisorSpec::default())
        .on_shutdown("first", move || async move {
            r1.fetch_add(1, Ordering::SeqCst);
        })
        .on_shutdown("panics", || async { panic!("hook failed on purpose") })
        .on_shutdown("last", move || async move {
            r2.fetch_add(10, Ordering::SeqCst);
        });
    app.handle().shutdown();
    assert_eq!(app.run().await, Ok(ExitStatus::CLEAN));
    assert_eq!(
        ran.load(Ordering::SeqCst),
        11,
        "hooks before and after the panicking one ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_giving_up_goes_through_the_same_phases_with_its_own_code() {
    let hook_ran = Arc::new(AtomicBool::new(false));
    let flag = hook_ran.clone();
    let crasher = Probe {
        crash_after: Some(Duration::from_millis(50)),
        ..Probe::default()
    };
    let spec = SupervisorSpec::default()
        .restart_intensity(0, Duration::from_secs(5))
        .child(ChildSpec::actor("crasher", crasher, ()));
    let app = quiet(spec).on_shutdown("flush", move || async move {
        flag.store(true, Ordering::SeqCst);
    });
    let health = app.health();
    let status = tokio::time::timeout(Duration::from_secs(10), app.run())
        .await
        .expect("app ends");
    assert_eq!(status, Ok(ExitStatus::ROOT_GAVE_UP));
    assert!(
        hook_ran.load(Ordering::SeqCst),
        "final hooks run after the root gave up"
    );
    assert!(!health.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_auto_shutting_down_is_a_clean_stop() {
    let done = Probe {
        crash_after: None,
        ..Probe::default()
    };
    let spec = SupervisorSpec::default()
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(ChildSpec::actor("stays", Probe::default(), ()))
        .child(
            ChildSpec::new("finishes", move |sup| {
                let done = done.clone();
                async move {
                    let (a, _) = Actor::spawn_linked(None, done, (), sup).await?;
                    let cell = a.get_cell();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        cell.stop(None);
                    });
                    Ok(Start::from(a))
                }
            })
            .restart(Restart::Transient)
            .significant(true),
        );
    let status = tokio::time::timeout(Duration::from_secs(10), quiet(spec).run())
        .await
        .expect("app ends");
    assert_eq!(status, Ok(ExitStatus::CLEAN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_kills_what_is_left_and_sets_the_deadline_code() {
    // Busy for a minute, with a 30 s timeout of its own: only the 1 s global deadline can end it.
    let stuck = Probe {
        busy_for: Some(Duration::from_secs(60)),
        ..Probe::default()
    };
    let spec = SupervisorSpec::default().child(
        ChildSpec::actor("stuck", stuck, ()).shutdown(Shutdown::Timeout(Duration::from_secs(30))),
    );
    let app = quiet(spec).shutdown_deadline(Duration::from_secs(1));
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = Instant::now();
    handle.shutdown();
    let status = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("app ends")
        .unwrap();
    assert_eq!(status, Ok(ExitStatus::DEADLINE_EXCEEDED));
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_hook_is_cut_off_at_the_deadline() {
    let app = quiet(SupervisorSpec::default())
        .shutdown_deadline(Duration::from_secs(1))
        .on_shutdown("slow", || async {
            tokio::time::sleep(Duration::from_secs(60)).await
        });
    app.handle().shutdown();
    let status = tokio::time::timeout(Duration::from_secs(10), app.run())
        .await
        .expect("app ends");
    assert_eq!(status, Ok(ExitStatus::DEADLINE_EXCEEDED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_the_app_owns_are_reaped_at_exit() {
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let app = quiet(SupervisorSpec::default());
    let handle = app.handle();
    let guard = Guard(dropped.clone());
    handle.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    });
    handle.shutdown();
    assert_eq!(app.run().await, Ok(ExitStatus::CLEAN));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the pending task was aborted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_kept_until_exit_are_dropped_after_the_last_line() {
    struct Flush(Arc<AtomicBool>);
    impl Drop for Flush {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let flushed = Arc::new(AtomicBool::new(false));
    let app = quiet(SupervisorSpec::default()).keep_until_exit(Flush(flushed.clone()));
    app.handle().shutdown();
    let status = app.run().await;
    assert_eq!(status, Ok(ExitStatus::CLEAN));
    assert!(flushed.load(Ordering::SeqCst));
}

/// Tells the test each incarnation's address as it starts, so the test can crash it.
#[derive(Clone)]
struct Announcer(tokio::sync::mpsc::UnboundedSender<ActorRef<Msg>>);

impl Actor for Announcer {
    type Msg = Msg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, me: ActorRef<Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        let _ = self.0.send(me);
        Ok(())
    }
    async fn handle(&self, _: ActorRef<Msg>, _: Msg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("crash on purpose".into())
    }
}

/// The root giving up during the drain delay ends the drain and the status says so (it used to
/// be 0): a crash loop that exhausts the restart budget while the app drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_giving_up_during_the_drain_is_root_gave_up() {
    let (tx, mut incarnations) = tokio::sync::mpsc::unbounded_channel();
    let spec = SupervisorSpec::default()
        .restart_intensity(2, Duration::from_secs(3600))
        .child(ChildSpec::actor("crasher", Announcer(tx), ()));
    let app = quiet(spec)
        .drain_delay(Duration::from_secs(3600))
        .shutdown_deadline(Duration::from_secs(7200));
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    let first = incarnations.recv().await.expect("started");
    handle.shutdown();
    // The stop has begun (the token fires before the drain): crash the child until the root
    // gives up; each new incarnation announces itself.
    handle.shutdown_token().triggered().await;
    first.send_message(Msg::Crash).unwrap();
    while let Some(next) = incarnations.recv().await {
        next.send_message(Msg::Crash).unwrap();
    }
    let status = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the drain ends when the root gives up")
        .unwrap();
    assert_eq!(status, Ok(ExitStatus::ROOT_GAVE_UP));
}

/// The deadline covers the drain: a drain delay not shorter than it is refused before anything
/// starts, with a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_delay_not_shorter_than_the_deadline_is_refused() {
    let started = Arc::new(AtomicUsize::new(0));
    let counter = started.clone();
    let spec = SupervisorSpec::default().child(ChildSpec::new("c", move |_sup| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(Start::Ignore) }
    }));
    for (drain, deadline) in [(10, 10), (11, 10), (u64::MAX, 10)] {
        let app = quiet(spec.clone())
            .drain_delay(Duration::from_secs(drain))
            .shutdown_deadline(Duration::from_secs(deadline));
        assert_eq!(
            app.run().await,
            Err(StartError::Spec(SpecError::DrainNotShorterThanDeadline {
                drain: Duration::from_secs(drain),
                deadline: Duration::from_secs(deadline),
            }))
        );
    }
    assert_eq!(started.load(Ordering::SeqCst), 0, "nothing started");
    // A drain shorter than the deadline is fine, and no drain at all with any deadline.
    let app = quiet(spec.clone())
        .drain_delay(Duration::from_millis(1))
        .shutdown_deadline(Duration::from_secs(10));
    app.handle().shutdown();
    assert_eq!(app.run().await, Ok(ExitStatus::CLEAN));
    let app = quiet(spec).shutdown_deadline(Duration::ZERO);
    app.handle().shutdown();
    assert_eq!(
        app.run().await,
        Ok(ExitStatus::CLEAN),
        "nothing was left to kill"
    );
}

/// Finished tasks are reaped as new ones are spawned: a task per request does not grow memory
/// for the life of the process.
#[tokio::test]
async fn spawned_tasks_are_reaped_as_they_finish() {
    let app = quiet(SupervisorSpec::default());
    let handle = app.handle();
    let mut most = 0;
    for i in 0..100_000u32 {
        handle.spawn(async {});
        if i % 1_000 == 999 {
            // Let the spawned tasks run to completion (the test runs on one thread): this task
            // waits on a task spawned last, which runs after those spawned before it.
            let (done, finished) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let _ = done.send(());
            });
            finished.await.unwrap();
        }
        most = most.max(handle.tasks());
    }
    assert!(most <= 2_000, "at most {most} tasks held at once");
    handle.shutdown();
    assert_eq!(app.run().await, Ok(ExitStatus::CLEAN));
}
