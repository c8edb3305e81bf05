//! OTP conformance: starting and stopping static supervisors (the cases on "Start / init" and
//! "Stop / shutdown protocol"; the simple_one_for_one / dynamic variants are not ported here).
//!
//! Each test is named after the `supervisor_SUITE` case it ports. Cases that Rust's types make
//! impossible (a spec without a start function, a strategy that is not one of the enum's values, ...)
//! keep their name and test the nearest thing that can still go wrong; each says so where it does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canopy::*;
use parking_lot::Mutex;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::time::Instant;

use crate::common::*;

/// Generous upper bound for anything that must not hang; never a speed assertion.
const NO_HANG: Duration = Duration::from_secs(10);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A start refused because its spec is invalid: `StartError::Spec` with exactly this error.
#[track_caller]
fn assert_spec_rejected(got: Option<StartError>, expected: SpecError) {
    assert_eq!(got, Some(StartError::Spec(expected)));
}

/// Waits for `fut`, failing the test if it takes longer than [`NO_HANG`].
async fn no_hang<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(NO_HANG, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {NO_HANG:?}"),
    }
}

/// A stand-in for the OTP test process that calls `start_link`: an actor that records every
/// supervision event it receives (the Rust form of the EXIT messages a trapping caller would get).
/// Its message is a call it answers: since ractor hands an actor its supervision events before its
/// messages, the answer comes after every event already sent to it (see [`probe_events`]).
struct Probe {
    events: ProbeEvents,
}

impl Actor for Probe {
    type Msg = RpcReplyPort<()>;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<RpcReplyPort<()>>,
        _: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<RpcReplyPort<()>>,
        reply: RpcReplyPort<()>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(());
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<RpcReplyPort<()>>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let entry = match &event {
            SupervisionEvent::ActorStarted(cell) => (cell.get_id(), None),
            other => match ExitReason::from_event(other) {
                Some((cell, reason)) => (cell.get_id(), Some(reason)),
                None => return Ok(()),
            },
        };
        self.events.lock().push(entry);
        Ok(())
    }
}

type ProbeEvents = Arc<Mutex<Vec<(ActorId, Option<ExitReason>)>>>;

async fn probe() -> (ActorCell, ProbeEvents) {
    let events: ProbeEvents = Arc::default();
    let (actor, _) = Actor::spawn(
        None,
        Probe {
            events: events.clone(),
        },
        (),
    )
    .await
    .expect("probe starts");
    (actor.get_cell(), events)
}

/// What the probe has received, read once it has handled every event sent to it before this call.
async fn probe_events(
    probe: &ActorCell,
    events: &ProbeEvents,
) -> Vec<(ActorId, Option<ExitReason>)> {
    let probe_ref: ActorRef<RpcReplyPort<()>> = probe.clone().into();
    ractor::call!(probe_ref, |reply| reply).expect("the probe answers");
    let seen = events.lock().clone();
    seen
}

/// A child supervisor whose `SupervisorRef` is handed to the test through `slot`, so that the test
/// can reach its grandchildren.
fn stashed_supervisor(
    id: &str,
    spec: SupervisorSpec,
    slot: Arc<Mutex<Option<SupervisorRef>>>,
) -> ChildSpec {
    ChildSpec::new(id, move |sup: ActorCell| {
        let spec = spec.clone();
        let slot = slot.clone();
        async move {
            let child = Supervisor::start_linked(spec, sup).await?;
            let cell = child.cell();
            *slot.lock() = Some(child);
            Ok(Start::from(cell))
        }
    })
    .kind(ChildKind::Supervisor)
}

// -------------------------------------------------------------------------------------------------
// Start / init

/// A supervisor with no children starts, and stopping it exits it cleanly with `shutdown`.
#[tokio::test]
async fn sup_start_normal() {
    trace();
    let w = Watcher::new().await;
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne))
        .await
        .expect("an empty supervisor starts");
    w.watch(&sup.cell());
    assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));
    assert!(sup.which_children().await.unwrap().is_empty());

    no_hang("shutdown", sup.shutdown()).await;
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    // A call to a supervisor that is gone is OTP's `noproc`.
    assert_eq!(
        sup.count_children().await.unwrap_err(),
        ChildError::SupervisorDown
    );
}

/// `init` returning `ignore` makes the start return "ignore" (`Ok(None)`), and the caller
/// gets no exit signal. As a child, a supervisor whose init ignores is kept stopped, not restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_start_ignore_init() {
    trace();
    let calls = Arc::new(AtomicUsize::new(0));

    // Top level.
    let c = calls.clone();
    let started = Supervisor::start_with(None, move || {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    })
    .await;
    assert!(matches!(started, Ok(None)), "init ignore gives Ok(None)");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Linked to a caller: the caller hears nothing.
    let (parent, parent_events) = probe().await;
    let c = calls.clone();
    let started = Supervisor::start_with(Some(parent.clone()), move || {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    })
    .await;
    assert!(matches!(started, Ok(None)), "init ignore gives Ok(None)");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Anything the start sent the caller was sent before it returned, so the probe has taken it
    // by the time it answers a call made now. (Checked again at the end of the test.)
    let seen = probe_events(&parent, &parent_events).await;
    assert!(seen.is_empty(), "the caller got no exit: {seen:?}");

    // As a child of a supervisor: `{ok, undefined}`, spec kept with no process, never restarted.
    let lab = Lab::new();
    let c = calls.clone();
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("before"))
            .child(ChildSpec::supervisor_with("ignoring", move || {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(None)
            })),
    )
    .await
    .expect("a child supervisor that ignores does not fail its parent");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let info = sup.which_child("ignoring").await.unwrap();
    assert_eq!(info.status, ChildStatus::Stopped);
    assert_eq!(info.kind, ChildKind::Supervisor);
    assert_eq!(sup.count_children().await.unwrap(), counts(2, 1, 1, 1));
    // A retry would go through the supervisor's mailbox: a call answered after the calls above
    // comes after anything the start queued.
    assert_eq!(sup.which_child("ignoring").await.unwrap().restarts, 0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "an ignored child is not retried"
    );
    sup.shutdown().await;
    let seen = probe_events(&parent, &parent_events).await;
    assert!(seen.is_empty(), "the caller got no exit: {seen:?}");
    parent.stop(None);
}

/// A static child that returns `ignore` through `start_child` gives `{ok, undefined}`; its
/// spec is kept with no process and listed after the children started later.
#[tokio::test]
async fn sup_start_ignore_child() {
    trace();
    let lab = Lab::new();
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne))
        .await
        .unwrap();
    lab.set_start("child1", StartMode::Ignore);

    let r1 = sup.start_child(lab.spec("child1")).await.unwrap();
    assert!(r1.cell.is_none(), "ignore gives no process");
    let r2 = sup.start_child(lab.spec("child2")).await.unwrap();
    let cpid2 = r2.cell.expect("child2 runs");

    let children = sup.which_children().await.unwrap();
    let listed: Vec<_> = children
        .iter()
        .map(|c| (c.id.as_str(), c.status.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("child2", ChildStatus::Running(cpid2)),
            ("child1", ChildStatus::Stopped)
        ]
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(2, 1, 0, 2));
    // The kept spec makes the id taken.
    assert_eq!(
        sup.start_child(lab.spec("child1")).await.unwrap_err(),
        ChildError::AlreadyPresent("child1".into())
    );

    // The same at init: a permanent child that ignores is kept with no process.
    let lab2 = Lab::new();
    lab2.set_start("a", StartMode::Ignore);
    let sup2 = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab2.spec("a"))
            .child(lab2.spec("b")),
    )
    .await
    .unwrap();
    assert_eq!(
        sup2.which_child("a").await.unwrap().status,
        ChildStatus::Stopped
    );
    assert_eq!(sup2.count_children().await.unwrap(), counts(2, 1, 0, 2));
    assert_eq!(lab2.started(), vec!["b"]);

    sup.shutdown().await;
    sup2.shutdown().await;
}

/// A temporary child that ignores, at init or through `start_child`, is not kept.
#[tokio::test]
async fn sup_start_ignore_temporary_child() {
    trace();
    // At init.
    let lab = Lab::new();
    lab.set_start("child1", StartMode::Ignore);
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("child1").restart(Restart::Temporary))
            .child(lab.spec("child2").restart(Restart::Temporary)),
    )
    .await
    .unwrap();
    let children = sup.which_children().await.unwrap();
    assert_eq!(children.len(), 1, "{children:?}");
    assert_eq!(children[0].id, "child2");
    assert!(children[0].status.pid().is_some());
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    assert_eq!(
        sup.which_child("child1").await.unwrap_err(),
        ChildError::NotFound("child1".into())
    );
    sup.shutdown().await;

    // Through start_child.
    let lab = Lab::new();
    lab.set_start("child1", StartMode::Ignore);
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne))
        .await
        .unwrap();
    let r1 = sup
        .start_child(lab.spec("child1").restart(Restart::Temporary))
        .await
        .unwrap();
    assert!(r1.cell.is_none());
    let r2 = sup
        .start_child(lab.spec("child2").restart(Restart::Temporary))
        .await
        .unwrap();
    let cpid2 = r2.cell.expect("child2 runs");
    let children = sup.which_children().await.unwrap();
    assert_eq!(children.len(), 1, "{children:?}");
    assert_eq!(children[0].id, "child2");
    assert_eq!(children[0].status, ChildStatus::Running(cpid2));
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    // Nothing was kept, so the id is free: the same spec can be started again.
    lab.set_start("child1", StartMode::Ok);
    let again = sup
        .start_child(lab.spec("child1").restart(Restart::Temporary))
        .await
        .expect("the ignored temporary id is free");
    assert!(again.cell.is_some());
    sup.shutdown().await;
}

/// `init` returning something that is not a valid spec fails the start (OTP's
/// `{error, {bad_return, ...}}`): an `Err` from init is `StartError::Init`, an invalid spec is
/// `StartError::Spec`, and no child is started.
#[tokio::test]

async fn sup_start_error_return() {
    trace();
    let started = Supervisor::start_with(None, || Err("garbage".into())).await;
    match started {
        Err(StartError::Init(text)) => assert!(text.contains("garbage"), "{text}"),
        other => panic!("expected StartError::Init, got {other:?}"),
    }

    let lab = Lab::new();
    let l = lab.clone();
    let started = Supervisor::start_with(None, move || {
        Ok(Some(
            SupervisorSpec::new(Strategy::OneForOne)
                .child(l.spec("dup"))
                .child(l.spec("dup")),
        ))
    })
    .await;
    assert_spec_rejected(started.err(), SpecError::DuplicateId("dup".into()));

    let l = lab.clone();
    let started = Supervisor::start_with(None, move || {
        Ok(Some(
            SupervisorSpec::new(Strategy::OneForOne)
                .restart_intensity(1, Duration::ZERO)
                .child(l.spec("a")),
        ))
    })
    .await;
    assert_spec_rejected(started.err(), SpecError::ZeroPeriod);
    assert_eq!(lab.starts("dup"), 0, "an invalid spec starts nothing");
    assert_eq!(lab.starts("a"), 0, "an invalid spec starts nothing");
}

/// `init` raising (panicking) fails the start with the panic's text.
#[tokio::test]
async fn sup_start_fail() {
    trace();
    let started = Supervisor::start_with(None, || -> Result<Option<SupervisorSpec>, BoxError> {
        panic!("init exploded")
    })
    .await;
    match started {
        Err(StartError::Init(text)) => assert!(text.contains("init exploded"), "{text}"),
        other => panic!("expected StartError::Init, got {other:?}"),
    }

    // The caller survives and nothing is left behind: a probe parent hears nothing.
    let (parent, events) = probe().await;
    let started = Supervisor::start_with(
        Some(parent.clone()),
        || -> Result<Option<SupervisorSpec>, BoxError> { panic!("init exploded again") },
    )
    .await;
    assert!(
        matches!(&started, Err(StartError::Init(t)) if t.contains("init exploded again")),
        "{started:?}"
    );
    // Anything the failed start sent the caller was sent before it returned: the probe has taken
    // it by the time it answers.
    let seen = probe_events(&parent, &events).await;
    assert!(seen.is_empty(), "{seen:?}");
    parent.stop(None);
}

/// A child start that returns an error (or "garbage": a panic, a failing `pre_start`) makes
/// `start_child` fail with the reason; nothing is stored.
#[tokio::test]
async fn sup_start_child_returns_error() {
    trace();
    let lab = Lab::new();
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne))
        .await
        .unwrap();
    let cases = [
        ("child1", StartMode::Error("reason".into()), "reason"),
        ("child2", StartMode::Panic, "start of child2 panicked"),
        (
            "child3",
            StartMode::FailPreStart("pre_start refused".into()),
            "pre_start refused",
        ),
    ];
    for (id, mode, text) in cases {
        lab.set_start(id, mode);
        match sup.start_child(lab.spec(id)).await {
            Err(ChildError::StartFailed { id: got, reason }) => {
                assert_eq!(got, id);
                assert!(reason.contains(text), "{id}: {reason}");
            }
            other => panic!("{id}: expected StartFailed, got {other:?}"),
        }
        assert_eq!(
            sup.which_child(id).await.unwrap_err(),
            ChildError::NotFound(id.into()),
            "nothing is stored for {id}"
        );
        assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));
    }
    assert!(sup.which_children().await.unwrap().is_empty());
    // The ids are free and the supervisor is fine.
    lab.set_start("child1", StartMode::Ok);
    assert!(sup
        .start_child(lab.spec("child1"))
        .await
        .unwrap()
        .cell
        .is_some());
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    sup.shutdown().await;
}

/// After `terminate_child`, a `restart_child` whose start fails returns the error; the spec
/// stays with no process (and is not retried in the background).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_start_restart_child_returns_error() {
    trace();
    let lab = Lab::new();
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).child(lab.spec("child1")))
        .await
        .unwrap();
    sup.terminate_child("child1").await.unwrap();
    assert_eq!(
        sup.which_child("child1").await.unwrap().status,
        ChildStatus::Stopped
    );

    lab.set_start("child1", StartMode::Error("refused".into()));
    match sup.restart_child("child1").await {
        Err(ChildError::StartFailed { id, reason }) => {
            assert_eq!(id, "child1");
            assert!(reason.contains("refused"), "{reason}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert_eq!(
        sup.which_child("child1").await.unwrap().status,
        ChildStatus::Stopped
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 0, 0, 1));
    // A retry would be queued in the supervisor's mailbox while it handled restart_child, so the
    // calls above were answered after it: the first start and the refused restart, nothing more.
    assert_eq!(lab.starts("child1"), 2, "an API restart is not retried");

    lab.set_start("child1", StartMode::Ok);
    let again = sup
        .restart_child("child1")
        .await
        .expect("restart works now");
    let cell = again.cell.expect("child1 runs");
    assert_eq!(
        sup.which_child("child1").await.unwrap().status,
        ChildStatus::Running(cell)
    );
    sup.shutdown().await;
}

/// A child failing during the supervisor's start makes the start fail with
/// `failed_to_start_child` naming it; the children already started are stopped in reverse order
/// and the ones after it never start. Nested, the failure surfaces at the top as the child
/// supervisor's failure (OTP sees it through `application:start`).
#[tokio::test]
async fn faulty_application_shutdown() {
    trace();
    let lab = Lab::new();
    lab.set_start("c", StartMode::Error("boom".into()));
    let started = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("a"))
            .child(lab.spec("b"))
            .child(lab.spec("c"))
            .child(lab.spec("d")),
    )
    .await;
    assert_eq!(
        started.err(),
        Some(StartError::ChildFailed {
            id: "c".into(),
            reason: "boom".into()
        })
    );
    assert_eq!(lab.started(), vec!["a", "b"]);
    // post_stop ran for both (a graceful stop), in reverse start order.
    assert_eq!(lab.stopped(), vec!["b", "a"]);
    assert_eq!(lab.starts("d"), 0);

    // Nested: the top supervisor's child supervisor cannot start its own child.
    let lab = Lab::new();
    lab.set_start("z", StartMode::FailPreStart("no database".into()));
    let started = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("x"))
            .child(ChildSpec::supervisor(
                "app_sup",
                SupervisorSpec::new(Strategy::OneForOne)
                    .child(lab.spec("y"))
                    .child(lab.spec("z")),
            ))
            .child(lab.spec("after")),
    )
    .await;
    match started {
        Err(StartError::ChildFailed { id, reason }) => {
            assert_eq!(id, "app_sup");
            assert!(
                reason.contains("no database") && reason.contains('z'),
                "{reason}"
            );
        }
        other => panic!("expected ChildFailed, got {other:?}"),
    }
    assert_eq!(lab.started(), vec!["x", "y"]);
    assert_eq!(lab.stopped(), vec!["y", "x"]);
    assert_eq!(lab.starts("after"), 0);
}

/// Defaults are filled in (permanent, 5 s for workers and infinity for supervisors, worker,
/// not significant) and `get_childspec` returns them; an unknown id is `not_found`.
#[tokio::test]
async fn sup_start_map() {
    trace();
    let lab = Lab::new();
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("worker"))
            .child(ChildSpec::supervisor(
                "sup",
                SupervisorSpec::new(Strategy::OneForOne),
            ))
            .child(lab.spec("sup_kind").kind(ChildKind::Supervisor))
            .child(
                lab.spec("explicit")
                    .restart(Restart::Transient)
                    .shutdown(Shutdown::BrutalKill),
            ),
    )
    .await
    .unwrap();

    let w = sup.get_childspec("worker").await.unwrap();
    assert_eq!(w.id(), "worker");
    assert_eq!(w.get_restart(), Restart::Permanent);
    assert_eq!(w.get_shutdown(), Shutdown::Timeout(secs(5)));
    assert_eq!(w.get_kind(), ChildKind::Worker);
    assert!(!w.is_significant());

    for id in ["sup", "sup_kind"] {
        let s = sup.get_childspec(id).await.unwrap();
        assert_eq!(s.id(), id);
        assert_eq!(s.get_restart(), Restart::Permanent);
        assert_eq!(s.get_shutdown(), Shutdown::Infinity, "{id}");
        assert_eq!(s.get_kind(), ChildKind::Supervisor);
        assert!(!s.is_significant());
    }

    let e = sup.get_childspec("explicit").await.unwrap();
    assert_eq!(e.get_restart(), Restart::Transient);
    assert_eq!(e.get_shutdown(), Shutdown::BrutalKill);
    assert_eq!(e.get_kind(), ChildKind::Worker);

    assert_eq!(sup.count_children().await.unwrap(), counts(4, 4, 2, 2));
    assert_eq!(
        sup.get_childspec("nope").await.unwrap_err(),
        ChildError::NotFound("nope".into())
    );
    // A stopped child's spec is still there, with the same values.
    sup.terminate_child("worker").await.unwrap();
    let w = sup.get_childspec("worker").await.unwrap();
    assert_eq!(w.get_shutdown(), Shutdown::Timeout(secs(5)));
    sup.shutdown().await;
}

/// OTP's `missing_id` is an empty id here (`SpecError::EmptyId`), rejected at start, by
/// `start_child` and by `check_child_specs`. `missing_start` cannot be written in Rust (a
/// `compile_fail` doctest on `ChildSpec` covers it), and neither can "unknown keys" nor a term that
/// is not a spec: the nearest value that can still be wrong is the id, so that is what is tested.
#[tokio::test]

async fn sup_start_map_faulty_specs() {
    trace();
    let lab = Lab::new();
    let started = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("ok"))
            .child(lab.spec("")),
    )
    .await;
    assert_spec_rejected(started.err(), SpecError::EmptyId);
    assert_eq!(lab.starts("ok"), 0, "validation comes before any start");

    assert_eq!(
        check_child_specs(&[lab.spec("")], AutoShutdown::Never),
        Err(SpecError::EmptyId)
    );

    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne))
        .await
        .unwrap();
    assert_eq!(
        sup.start_child(lab.spec("")).await.unwrap_err(),
        ChildError::Spec(SpecError::EmptyId)
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));
    assert_eq!(lab.starts(""), 0);
    sup.shutdown().await;
}

/// Every spec error (empty id, duplicate id, significant+permanent, significant under
/// auto_shutdown `Never`) is reported by `check_child_specs`, at start and by `start_child`; the
/// full cartesian product of valid restart × shutdown × kind × significant values passes.
#[tokio::test]

async fn child_specs() {
    trace();
    let lab = Lab::new();

    // Duplicate ids.
    let c1 = lab.spec("child").kind(ChildKind::Supervisor);
    let c2 = lab.spec("child").shutdown(Shutdown::Timeout(secs(1)));
    assert_eq!(
        check_child_specs(&[c1.clone(), c2.clone()], AutoShutdown::Never),
        Err(SpecError::DuplicateId("child".into()))
    );
    assert_spec_rejected(
        Supervisor::start(SupervisorSpec::new(Strategy::OneForOne).children([c1, c2]))
            .await
            .err(),
        SpecError::DuplicateId("child".into()),
    );
    assert_eq!(lab.starts("child"), 0);

    // Bad combinations.
    let significant = lab.spec("s").significant(true);
    assert_eq!(
        check_child_specs(
            &[significant.clone().restart(Restart::Permanent)],
            AutoShutdown::AnySignificant
        ),
        Err(SpecError::SignificantPermanent("s".into()))
    );
    assert_eq!(
        check_child_specs(
            std::slice::from_ref(&significant),
            AutoShutdown::AllSignificant
        ),
        Err(SpecError::SignificantPermanent("s".into())),
        "the default restart type is permanent"
    );
    assert_eq!(
        check_child_specs(
            &[significant.clone().restart(Restart::Transient)],
            AutoShutdown::Never
        ),
        Err(SpecError::SignificantWithoutAutoShutdown("s".into()))
    );

    // Through the API: rejected, nothing stored, nothing started.
    let sup = Supervisor::start(SupervisorSpec::new(Strategy::OneForOne))
        .await
        .unwrap();
    assert_eq!(
        sup.start_child(significant.clone().restart(Restart::Temporary))
            .await
            .unwrap_err(),
        ChildError::Spec(SpecError::SignificantWithoutAutoShutdown("s".into()))
    );
    assert_eq!(
        sup.start_child(significant.clone()).await.unwrap_err(),
        ChildError::Spec(SpecError::SignificantPermanent("s".into()))
    );
    assert_eq!(sup.count_children().await.unwrap(), counts(0, 0, 0, 0));
    assert_eq!(lab.starts("s"), 0);
    sup.shutdown().await;

    // The cartesian product.
    let restarts = [Restart::Permanent, Restart::Transient, Restart::Temporary];
    let shutdowns = [
        Shutdown::BrutalKill,
        Shutdown::Timeout(Duration::ZERO),
        Shutdown::Timeout(Duration::from_millis(1000)),
        Shutdown::Infinity,
        Shutdown::Drain(secs(1)),
    ];
    let kinds = [ChildKind::Worker, ChildKind::Supervisor];
    let modes = [
        AutoShutdown::Never,
        AutoShutdown::AnySignificant,
        AutoShutdown::AllSignificant,
    ];
    let mut valid = 0;
    for &restart in &restarts {
        for &shutdown in &shutdowns {
            for &kind in &kinds {
                for significant in [false, true] {
                    for &mode in &modes {
                        let spec = lab
                            .spec("c")
                            .restart(restart)
                            .shutdown(shutdown)
                            .kind(kind)
                            .significant(significant);
                        assert_eq!(spec.get_shutdown(), shutdown);
                        let got = check_child_specs(std::slice::from_ref(&spec), mode);
                        let what =
                            format!("{restart:?} {shutdown:?} {kind:?} {significant} {mode:?}");
                        if !significant
                            || (restart != Restart::Permanent && mode != AutoShutdown::Never)
                        {
                            assert_eq!(got, Ok(()), "{what}");
                            valid += 1;
                        } else if restart == Restart::Permanent && mode != AutoShutdown::Never {
                            assert_eq!(
                                got,
                                Err(SpecError::SignificantPermanent("c".into())),
                                "{what}"
                            );
                        } else if restart != Restart::Permanent {
                            assert_eq!(
                                got,
                                Err(SpecError::SignificantWithoutAutoShutdown("c".into())),
                                "{what}"
                            );
                        } else {
                            // Permanent and Never together: both rules are broken (OTP's
                            // bad_combination names both); either error is right.
                            assert!(
                                got == Err(SpecError::SignificantPermanent("c".into()))
                                    || got
                                        == Err(SpecError::SignificantWithoutAutoShutdown(
                                            "c".into()
                                        )),
                                "{what}: {got:?}"
                            );
                        }
                    }
                }
            }
        }
    }
    // 3 restarts × 5 shutdowns × 2 kinds × 3 modes non-significant, plus 2 restarts × 5 × 2 × 2
    // modes significant.
    assert_eq!(valid, 3 * 5 * 2 * 3 + 2 * 5 * 2 * 2);

    // All the valid ones together (unique ids) pass as one list.
    let mut all = Vec::new();
    for &restart in &restarts {
        for &shutdown in &shutdowns {
            for &kind in &kinds {
                for significant in [false, true] {
                    if significant && restart == Restart::Permanent {
                        continue;
                    }
                    all.push(
                        lab.spec(&format!("c{}", all.len()))
                            .restart(restart)
                            .shutdown(shutdown)
                            .kind(kind)
                            .significant(significant),
                    );
                }
            }
        }
    }
    assert_eq!(
        check_child_specs(&all, AutoShutdown::AnySignificant),
        Ok(())
    );
    assert_eq!(check_child_specs(&[], AutoShutdown::Never), Ok(()));
}

/// Flags. A zero period is `invalid_period`, at `validate`, at start and from an init
/// function. OTP's other flag errors (`invalid_strategy`, `invalid_auto_shutdown`, `invalid_type`,
/// `invalid_intensity` for `infinity`, `invalid_period` for `infinity`) are values Rust's types
/// cannot hold; instead every value they can hold is checked to pass, and the defaults are checked.
#[tokio::test]

async fn sup_flags() {
    trace();
    let strategies = [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ];
    let modes = [
        AutoShutdown::Never,
        AutoShutdown::AnySignificant,
        AutoShutdown::AllSignificant,
    ];
    for &strategy in &strategies {
        for &mode in &modes {
            for intensity in [0, 1, 3, u32::MAX] {
                let spec = SupervisorSpec::new(strategy)
                    .auto_shutdown(mode)
                    .restart_intensity(intensity, Duration::ZERO);
                assert_eq!(spec.validate(), Err(SpecError::ZeroPeriod));
                for period in [
                    Duration::from_nanos(1),
                    Duration::from_millis(1),
                    secs(5),
                    secs(3600),
                    Duration::MAX,
                ] {
                    let spec = spec.clone().restart_intensity(intensity, period);
                    assert_eq!(
                        spec.validate(),
                        Ok(()),
                        "{strategy:?} {mode:?} {intensity} {period:?}"
                    );
                }
            }
        }
    }

    let d = SupervisorSpec::default();
    assert_eq!(d.get_strategy(), Strategy::OneForOne);
    assert_eq!(d.get_intensity(), 3);
    assert_eq!(d.get_period(), secs(5));
    assert_eq!(d.get_auto_shutdown(), AutoShutdown::Never);
    assert_eq!(d.validate(), Ok(()));

    let lab = Lab::new();
    let bad = SupervisorSpec::new(Strategy::OneForAll)
        .restart_intensity(2, Duration::ZERO)
        .child(lab.spec("a"));
    assert_spec_rejected(
        Supervisor::start(bad.clone()).await.err(),
        SpecError::ZeroPeriod,
    );
    assert_spec_rejected(
        Supervisor::start_with(None, move || Ok(Some(bad.clone())))
            .await
            .err(),
        SpecError::ZeroPeriod,
    );
    assert_eq!(lab.starts("a"), 0);

    // Intensity 0 is a valid flag (the first restart gives up), so such a supervisor starts.
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::RestForOne)
            .restart_intensity(0, secs(1))
            .child(lab.spec("a")),
    )
    .await
    .expect("intensity 0 is valid");
    assert_eq!(sup.count_children().await.unwrap(), counts(1, 1, 0, 1));
    sup.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// Stop / shutdown protocol

/// `Infinity` is accepted for a worker and for a child supervisor; both (and the grandchild)
/// are stopped with `shutdown`, in reverse start order, and the supervisor exits `shutdown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_stop_infinity() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let slot = Arc::new(Mutex::new(None));
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("child1").shutdown(Shutdown::Infinity))
            .child(stashed_supervisor(
                "child2",
                SupervisorSpec::new(Strategy::OneForOne).child(lab.spec("grandchild")),
                slot.clone(),
            )),
    )
    .await
    .unwrap();
    assert_eq!(
        sup.get_childspec("child1").await.unwrap().get_shutdown(),
        Shutdown::Infinity
    );
    assert_eq!(
        sup.get_childspec("child2").await.unwrap().get_shutdown(),
        Shutdown::Infinity
    );
    let child1 = running_child(&sup, "child1", None).await;
    let child2 = running_child(&sup, "child2", None).await;
    let inner = slot.lock().clone().expect("child supervisor started");
    assert_eq!(inner.cell(), child2);
    let grandchild = running_child(&inner, "grandchild", None).await;
    for cell in [&sup.cell(), &child1, &child2, &grandchild] {
        w.watch(cell);
    }

    no_hang("shutdown", sup.shutdown()).await;
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&child1).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&child2).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&grandchild).await, ExitReason::Shutdown);
    assert_eq!(lab.stopped(), vec!["grandchild", "child1"]);
}

/// A child that does not respond to its stop is killed after its 1 s timeout (`killed`); its
/// well-behaved sibling exits `shutdown`; the supervisor exits `shutdown`. On tokio's paused clock:
/// the timeout is exact and costs no real time (time moves only when every task waits).
#[tokio::test(start_paused = true)]
async fn sup_stop_timeout() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("child1").shutdown(Shutdown::Timeout(secs(1))))
            .child(lab.spec("child2").shutdown(Shutdown::Timeout(secs(1)))),
    )
    .await
    .unwrap();
    let child1 = running_child(&sup, "child1", None).await;
    let child2 = running_child(&sup, "child2", None).await;
    for cell in [&sup.cell(), &child1, &child2] {
        w.watch(cell);
    }
    // child2 is in its handler, for good, before the stop is sent (a stop queued before the
    // message would win over it).
    hang(&child2).await;

    let t0 = Instant::now();
    no_hang("shutdown", sup.shutdown()).await;
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "the hanging child was given its 1 s before the kill; took {elapsed:?}"
    );
    assert_eq!(w.exit_of(&child2).await, ExitReason::Killed);
    assert_eq!(w.exit_of(&child1).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    // Killed children skip post_stop; the graceful one ran it.
    assert_eq!(lab.stopped(), vec!["child1"]);
}

/// `BrutalKill` children exit `killed` (no `post_stop`); a sibling with a timeout exits
/// `shutdown`; the supervisor exits `shutdown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_stop_brutal_kill() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("child1").shutdown(Shutdown::Timeout(secs(1))))
            .child(lab.spec("child2").shutdown(Shutdown::BrutalKill))
            .child(lab.spec("child3").shutdown(Shutdown::BrutalKill)),
    )
    .await
    .unwrap();
    let cells = [
        running_child(&sup, "child1", None).await,
        running_child(&sup, "child2", None).await,
        running_child(&sup, "child3", None).await,
    ];
    w.watch(&sup.cell());
    for cell in &cells {
        w.watch(cell);
    }
    // A brutal kill does not wait for the child: even one stuck in a handler goes at once.
    hang(&cells[2]).await;

    no_hang("shutdown", sup.shutdown()).await;
    assert_eq!(w.exit_of(&cells[0]).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&cells[1]).await, ExitReason::Killed);
    assert_eq!(w.exit_of(&cells[2]).await, ExitReason::Killed);
    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    assert_eq!(lab.stopped(), vec!["child1"]);
}

/// While the supervisor is shutting down (held up by a slow child), twelve children of every
/// restart type exit by themselves with normal / shutdown / {shutdown, _} / other. Each ends with
/// its own reason, none is restarted, the slow child and the first child get `shutdown`, and the
/// supervisor finishes and exits `shutdown`.
///
/// Ordered by handshakes: a herald child, started last, is the first one the shutdown stops, and its
/// `post_stop` says the shutdown is under way; the slow child is busy (in its handler before the
/// shutdown starts) until the test releases it, which it does once every racer has exited. On
/// tokio's paused clock, so no shutdown timeout can run out while the test is making progress.
#[tokio::test(start_paused = true)]
async fn sup_stop_race() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne).restart_intensity(2, secs(3600)),
    )
    .await
    .unwrap();
    w.watch(&sup.cell());

    let child_a = sup
        .start_child(
            lab.spec("child_a")
                .restart(Restart::Temporary)
                .shutdown(Shutdown::Timeout(secs(1))),
        )
        .await
        .unwrap()
        .cell
        .unwrap();
    w.watch(&child_a);

    let mut racers = Vec::new();
    for restart in [Restart::Temporary, Restart::Transient, Restart::Permanent] {
        for reason in [
            ExitReason::Normal,
            ExitReason::Shutdown,
            ExitReason::ShutdownWith("test".into()),
            ExitReason::Error("other".into()),
        ] {
            let id = format!("child_{}", racers.len());
            let cell = sup
                .start_child(
                    lab.spec(&id)
                        .restart(restart)
                        .shutdown(Shutdown::Timeout(secs(1))),
                )
                .await
                .unwrap()
                .cell
                .unwrap();
            w.watch(&cell);
            racers.push((id, cell, reason));
        }
    }

    let child_z = sup
        .start_child(
            lab.spec("child_z")
                .restart(Restart::Temporary)
                .shutdown(Shutdown::Timeout(secs(3))),
        )
        .await
        .unwrap()
        .cell
        .unwrap();
    w.watch(&child_z);
    // Started last, so stopped first: once it runs its post_stop the supervisor is shutting down.
    sup.start_child(lab.spec("herald").restart(Restart::Temporary))
        .await
        .unwrap();
    // child_z is stopped right after the herald and does not take its stop before its work is
    // released: it holds the supervisor in its shutdown.
    let work = busy(&child_z).await;

    let stopping = tokio::spawn({
        let sup = sup.clone();
        async move { sup.shutdown().await }
    });
    lab.until("the shutdown has begun: the herald was stopped", |events| {
        events.contains(&Event::Stopped("herald".into()))
    })
    .await;
    // The supervisor is now waiting for child_z: every racer exits by itself meanwhile.
    for (_, cell, reason) in &racers {
        crash(cell, reason.clone());
    }
    for (_, cell, _) in &racers {
        wait_dead(cell).await;
    }
    work.release();
    no_hang("shutdown", stopping)
        .await
        .expect("the shutdown task ran to its end");

    assert_eq!(w.exit_of(&sup.cell()).await, ExitReason::Shutdown);
    assert_eq!(w.exit_of(&child_z).await, ExitReason::Shutdown);
    for (id, cell, reason) in &racers {
        assert_eq!(&w.exit_of(cell).await, reason, "{id}");
        assert_eq!(lab.starts(id), 1, "{id} was not restarted during shutdown");
    }
    assert_eq!(w.exit_of(&child_a).await, ExitReason::Shutdown);
    assert_eq!(lab.starts("child_a"), 1);
    // child_z finished its work before it took the stop.
    assert!(lab.started().contains(&"handled:child_z".to_string()));
}

/// Children start in spec order; a rest_for_one restart of child 3 of 5 stops 5 then 4 and
/// starts 3, 4, 5 in that order (1 and 2 untouched); shutdown stops 5, 4, 3, 2, 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_of_children() {
    trace();
    let lab = Lab::new();
    let ids = ["child1", "child2", "child3", "child4", "child5"];
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::RestForOne)
            .restart_intensity(3, secs(3600))
            .children(ids.iter().map(|id| lab.spec(id))),
    )
    .await
    .unwrap();
    assert_eq!(lab.started(), ids);

    let mut before = Vec::new();
    for id in ids {
        before.push(running_child(&sup, id, None).await);
    }
    lab.clear_events();
    // An abnormal exit (no post_stop of its own, so the events are the supervisor's doing only).
    crash(&before[2], ExitReason::Error("crash".into()));
    let child3 = running_child(&sup, "child3", Some(&before[2])).await;
    eventually("child5 restarted", || lab.started().len() == 3).await;
    assert_eq!(
        lab.events(),
        vec![
            Event::Stopped("child5".into()),
            Event::Stopped("child4".into()),
            Event::Started("child3".into()),
            Event::Started("child4".into()),
            Event::Started("child5".into()),
        ]
    );
    assert_eq!(running_child(&sup, "child1", None).await, before[0]);
    assert_eq!(running_child(&sup, "child2", None).await, before[1]);
    assert_ne!(child3, before[2]);
    assert_ne!(running_child(&sup, "child4", None).await, before[3]);
    assert_ne!(running_child(&sup, "child5", None).await, before[4]);
    let listed: Vec<_> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, ["child5", "child4", "child3", "child2", "child1"]);

    lab.clear_events();
    no_hang("shutdown", sup.shutdown()).await;
    assert_eq!(
        lab.stopped(),
        ["child5", "child4", "child3", "child2", "child1"]
    );
}

/// A child that unlinked itself from its supervisor can still be terminated with
/// `terminate_child`, without hanging the supervisor, whether it stops when told (`shutdown`) or has
/// to be killed after its timeout (`killed`). On tokio's paused clock, so the 1 s timeout costs no
/// real time.
#[tokio::test(start_paused = true)]
async fn child_unlink() {
    trace();
    let lab = Lab::new();
    let w = Watcher::new().await;
    let sup = Supervisor::start(
        SupervisorSpec::new(Strategy::OneForOne)
            .child(lab.spec("naughty").shutdown(Shutdown::Timeout(secs(1))))
            .child(lab.spec("stubborn").shutdown(Shutdown::Timeout(secs(1)))),
    )
    .await
    .unwrap();
    let naughty = running_child(&sup, "naughty", None).await;
    let stubborn = running_child(&sup, "stubborn", None).await;
    w.watch(&naughty);
    w.watch(&stubborn);
    for cell in [&naughty, &stubborn] {
        tell(cell, WorkerMsg::Unlink);
        // The reply proves the unlink has been handled.
        let actor: ActorRef<WorkerMsg> = cell.clone().into();
        ractor::call!(actor, WorkerMsg::Ping).expect("child answers");
        assert!(cell.try_get_supervisor().is_none(), "the child unlinked");
    }
    // stubborn is in its handler, for good, before terminate_child sends its stop.
    hang(&stubborn).await;

    no_hang("terminate_child(naughty)", sup.terminate_child("naughty"))
        .await
        .expect("terminate_child of an unlinked child");
    assert_eq!(w.exit_of(&naughty).await, ExitReason::Shutdown);
    no_hang("terminate_child(stubborn)", sup.terminate_child("stubborn"))
        .await
        .expect("terminate_child of an unlinked, hanging child");
    assert_eq!(w.exit_of(&stubborn).await, ExitReason::Killed);

    // The supervisor is still serving, both specs are kept stopped, and nothing was restarted.
    assert_eq!(sup.count_children().await.unwrap(), counts(2, 0, 0, 2));
    for id in ["naughty", "stubborn"] {
        assert_eq!(
            sup.which_child(id).await.unwrap().status,
            ChildStatus::Stopped
        );
        assert_eq!(lab.starts(id), 1);
    }
    let again = sup.restart_child("naughty").await.unwrap();
    assert!(again.cell.is_some());
    no_hang("shutdown", sup.shutdown()).await;
}
