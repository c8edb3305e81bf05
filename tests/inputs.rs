//! Every value a public builder accepts either works or is refused by validation with a typed
//! error: zero, one nanosecond and `Duration::MAX` (which means "no bound"), and for floats NaN,
//! infinities and huge values. Nothing here may panic. Also: paths are unambiguous, and errors
//! show actors as paths or ids, never as Rust `Debug` dumps.

use std::time::Duration;

use canopy::app::{App, ExitStatus};
use canopy::backoff::Backoff;
use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
use canopy::handle::HandleOptions;
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{
    ChildError, ChildSpec, ExitReason, PartitionSupervisor, Shutdown, SpecError, StartError,
    Supervisor, SupervisorSpec,
};

const DURATIONS: [Duration; 3] = [Duration::ZERO, Duration::from_nanos(1), Duration::MAX];

#[derive(Clone)]
struct Worker;

impl Actor for Worker {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("crash on purpose".into())
    }
}

/// Every shutdown policy with every duration stops the child; the reason is what happened (a
/// zero grace may kill before the child stops by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shutdown_duration_stops_the_child() {
    for d in DURATIONS {
        for policy in [Shutdown::Timeout(d), Shutdown::Drain(d)] {
            let sup = Supervisor::start(
                SupervisorSpec::default().child(ChildSpec::actor("w", Worker, ()).shutdown(policy)),
            )
            .await
            .unwrap();
            sup.terminate_child("w").await.unwrap();
            let last = sup.which_child("w").await.unwrap().last_exit;
            assert!(
                matches!(last, Some(ExitReason::Shutdown | ExitReason::Killed)),
                "{policy:?}: {last:?}"
            );
            sup.shutdown().await;
        }
    }
}

/// Restart intensity and period at their extremes: a zero period is refused, everything else
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_intensity_and_period_extremes() {
    for intensity in [0, 1, u32::MAX] {
        for period in DURATIONS {
            let spec = SupervisorSpec::default()
                .restart_intensity(intensity, period)
                .child(ChildSpec::actor("w", Worker, ()));
            let started = Supervisor::start(spec).await;
            if period.is_zero() {
                assert_eq!(
                    started.unwrap_err(),
                    StartError::Spec(SpecError::ZeroPeriod)
                );
                continue;
            }
            let sup = started.unwrap();
            // One crash: restarted, or (intensity 0) the supervisor gives up. Neither panics.
            let cell = sup
                .which_child("w")
                .await
                .unwrap()
                .status
                .pid()
                .cloned()
                .unwrap();
            cell.send_message(()).unwrap();
            cell.wait(None).await.unwrap();
            if intensity == 0 {
                sup.wait().await;
            } else {
                let _ = sup.which_children().await.unwrap();
                sup.shutdown().await;
            }
        }
    }
}

/// A backoff with every duration works or is refused; `Duration::MAX` puts the restart off for
/// good, which a shutdown still ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_extremes() {
    for min in DURATIONS {
        for max in DURATIONS {
            for reset in DURATIONS {
                let backoff = Backoff::new(min, max).reset_after(reset);
                if min > max {
                    assert!(matches!(
                        backoff.validate(),
                        Err(SpecError::InvalidBackoff(_))
                    ));
                    continue;
                }
                assert_eq!(backoff.validate(), Ok(()));
                let sup = Supervisor::start(
                    SupervisorSpec::default()
                        .restart_intensity(100, Duration::from_secs(60))
                        .child(ChildSpec::actor("w", Worker, ()).backoff(backoff)),
                )
                .await
                .unwrap();
                let cell = sup
                    .which_child("w")
                    .await
                    .unwrap()
                    .status
                    .pid()
                    .cloned()
                    .unwrap();
                cell.send_message(()).unwrap();
                cell.wait(None).await.unwrap();
                let _ = sup.which_children().await.unwrap();
                sup.shutdown().await;
            }
        }
    }
    for jitter in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, f64::MAX] {
        let b = Backoff::new(Duration::from_millis(1), Duration::from_secs(1)).jitter(jitter);
        if jitter.is_finite() && jitter >= 0.0 {
            assert_eq!(b.validate(), Ok(()));
            // A huge stretch saturates instead of panicking.
            assert!(b.delay(30, 1.0) >= Duration::from_secs(1));
        } else {
            assert!(
                matches!(b.validate(), Err(SpecError::InvalidBackoff(_))),
                "{jitter}"
            );
        }
    }
    for retries in [0, 1, u32::MAX] {
        let b = Backoff::new(Duration::ZERO, Duration::MAX).max_retries(retries);
        assert_eq!(b.validate().is_ok(), retries > 0);
    }
}

/// A handle's wait bound at its extremes; a zero buffer is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_options_extremes() {
    let sup = Supervisor::start(SupervisorSpec::default().child(ChildSpec::actor("w", Worker, ())))
        .await
        .unwrap();
    for wait in DURATIONS {
        let h = sup
            .handle_with::<()>("w", HandleOptions::default().wait(wait))
            .unwrap();
        assert!(h.current().is_some());
    }
    for buffer in [1, usize::MAX] {
        assert!(sup
            .handle_with::<()>("w", HandleOptions::default().buffer(buffer))
            .is_ok());
    }
    assert_eq!(
        sup.handle_with::<()>("w", HandleOptions::default().buffer(0))
            .unwrap_err(),
        ChildError::Spec(SpecError::ZeroBufferCapacity)
    );
    sup.shutdown().await;
}

/// `max_children` and partitions at their extremes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_extremes() {
    let template = || DynamicSpec::actor(Worker);
    assert_eq!(
        DynamicSupervisor::start(template().max_children(0))
            .await
            .unwrap_err(),
        StartError::Spec(SpecError::ZeroMaxChildren)
    );
    for max in [1, usize::MAX] {
        let pool = DynamicSupervisor::start(template().max_children(max))
            .await
            .unwrap();
        pool.start_child(()).await.unwrap();
        pool.shutdown().await;
    }
    assert_eq!(
        PartitionSupervisor::new(template())
            .partitions(0)
            .validate(),
        Err(SpecError::ZeroPartitions)
    );
    assert_eq!(
        PartitionSupervisor::new(template())
            .partitions(usize::MAX)
            .validate(),
        Err(SpecError::TooManyPartitions(usize::MAX))
    );
    let parts = PartitionSupervisor::new(template())
        .partitions(canopy::partition::MAX_PARTITIONS)
        .start()
        .await
        .unwrap();
    parts.supervisor().shutdown().await;
}

/// The app's durations at their extremes: each either runs to a clean stop or is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_durations_extremes() {
    for deadline in DURATIONS {
        for drain in DURATIONS {
            for start_timeout in DURATIONS {
                let app =
                    App::new(SupervisorSpec::default().child(ChildSpec::actor("w", Worker, ())))
                        .handle_signals(false)
                        .shutdown_deadline(deadline)
                        .drain_delay(drain)
                        .start_timeout(start_timeout);
                app.handle().shutdown();
                let status = app.run().await;
                if !drain.is_zero() && drain >= deadline {
                    assert_eq!(
                        status,
                        Err(StartError::Spec(SpecError::DrainNotShorterThanDeadline {
                            drain,
                            deadline
                        }))
                    );
                    continue;
                }
                // The shutdown was requested before the start: the start is cut short (or had
                // already timed out, for a zero timeout). With a zero deadline whatever had
                // started is killed.
                let status = status.unwrap();
                assert!(
                    [
                        ExitStatus::START_INTERRUPTED,
                        ExitStatus::START_TIMED_OUT,
                        ExitStatus::DEADLINE_EXCEEDED,
                        ExitStatus::CLEAN,
                    ]
                    .contains(&status),
                    "deadline {deadline:?} drain {drain:?} start {start_timeout:?}: {status}"
                );
            }
        }
    }
}

/// A path segment cannot contain `/`: child ids and supervisor names with one are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_in_an_id_or_a_name_is_refused() {
    let err =
        Supervisor::start(SupervisorSpec::default().child(ChildSpec::actor("a/b", Worker, ())))
            .await
            .unwrap_err();
    assert_eq!(err, StartError::Spec(SpecError::SlashInName("a/b".into())));
    let err = Supervisor::start(SupervisorSpec::default().name("x/y"))
        .await
        .unwrap_err();
    assert_eq!(err, StartError::Spec(SpecError::SlashInName("x/y".into())));
    let sup = Supervisor::start(SupervisorSpec::default()).await.unwrap();
    assert_eq!(
        sup.start_child(ChildSpec::actor("c/d", Worker, ()))
            .await
            .unwrap_err(),
        ChildError::Spec(SpecError::SlashInName("c/d".into()))
    );
    sup.shutdown().await;
}

/// Two running supervisors never share a path: a named one is refused, an unnamed one takes the
/// next free path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_supervisors_never_share_a_path() {
    let first = Supervisor::start(SupervisorSpec::default().name("inputs-shared"))
        .await
        .unwrap();
    let err = Supervisor::start(SupervisorSpec::default().name("inputs-shared"))
        .await
        .unwrap_err();
    assert_eq!(err, StartError::PathTaken("/inputs-shared".into()));
    assert!(err.to_string().contains("/inputs-shared"));
    first.shutdown().await;
    // Free again once the first is gone.
    let again = Supervisor::start(SupervisorSpec::default().name("inputs-shared"))
        .await
        .unwrap();
    again.shutdown().await;

    let a = canopy::Supervisor::start_with(None, || Ok(Some(SupervisorSpec::default())))
        .await
        .unwrap()
        .unwrap();
    let b = canopy::Supervisor::start_with(None, || Ok(Some(SupervisorSpec::default())))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a.path(), b.path(), "unnamed supervisors get distinct paths");
    a.shutdown().await;
    b.shutdown().await;
}

/// Errors name actors by path or id, never by a Rust `Debug` dump of internal types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_show_actors_as_paths_or_ids() {
    let sup = Supervisor::start(
        SupervisorSpec::default()
            .name("inputs-errors")
            .child(ChildSpec::supervisor("inner", SupervisorSpec::default()))
            .child(ChildSpec::actor("w", Worker, ())),
    )
    .await
    .unwrap();
    let inner = sup
        .which_child("inner")
        .await
        .unwrap()
        .status
        .pid()
        .cloned()
        .unwrap();
    let err = sup
        .start_child(ChildSpec::new("inner", |_sup| async {
            Ok(canopy::Start::Ignore)
        }))
        .await
        .unwrap_err();
    assert!(matches!(&err, ChildError::AlreadyStarted { .. }));
    let text = err.to_string();
    assert!(text.contains("/inputs-errors/inner"), "{text}");
    let worker = sup
        .which_child("w")
        .await
        .unwrap()
        .status
        .pid()
        .cloned()
        .unwrap();
    let text = sup
        .start_child(ChildSpec::new("w", |_sup| async {
            Ok(canopy::Start::Ignore)
        }))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(&format!("actor {}", worker.get_id())),
        "{text}"
    );
    for text in [text, format!("{:?}", sup)] {
        assert!(!text.contains("Local("), "{text}");
        assert!(!text.contains("ActorCell"), "{text}");
    }
    let pool = DynamicSupervisor::start(DynamicSpec::actor(Worker))
        .await
        .unwrap();
    let text = pool.terminate_child(&inner).await.unwrap_err().to_string();
    assert!(!text.contains("Local("), "{text}");
    pool.shutdown().await;
    sup.shutdown().await;
}
