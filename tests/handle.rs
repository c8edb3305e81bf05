//! Restart-transparent handles against real supervisors: following restarts, waiting (bounded) while
//! a child restarts, overflow, and `ChildGone` once a child is gone for good.

use std::time::Duration;

use canopy::backoff::Backoff;
use canopy::handle::{HandleError, HandleOptions};
use canopy::{
    ChildError, ChildSpec, Restart, SpecError, Supervisor, SupervisorRef, SupervisorSpec,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

#[derive(Clone)]
struct Counter;

enum Msg {
    Add(u64),
    Get(RpcReplyPort<u64>),
    Stop,
}

impl Actor for Counter {
    type Msg = Msg;
    type State = u64;
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }
    async fn handle(
        &self,
        me: ActorRef<Msg>,
        msg: Msg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Add(k) => *n += k,
            Msg::Get(reply) => {
                let _ = reply.send(*n);
            }
            Msg::Stop => me.stop(None),
        }
        Ok(())
    }
}

fn backed_off(ms: u64) -> Backoff {
    Backoff::new(Duration::from_millis(ms), Duration::from_millis(ms)).jitter(0.0)
}

async fn start(child: ChildSpec) -> SupervisorRef {
    Supervisor::start(
        SupervisorSpec::default()
            .restart_intensity(100, Duration::from_secs(60))
            .child(child),
    )
    .await
    .expect("supervisor starts")
}

/// Kills the current incarnation and waits until the handle no longer sees it running.
async fn kill_current(h: &canopy::handle::ChildHandle<Msg>) {
    let old = h.current().expect("running");
    old.kill();
    old.get_cell().wait(None).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_follows_its_child_across_restarts() {
    let sup = start(ChildSpec::actor("c", Counter, ())).await;
    let h = sup.handle::<Msg>("c").unwrap();
    h.cast(Msg::Add(3)).await.unwrap();
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 3);
    for _ in 0..3 {
        let before = h.current().unwrap().get_id();
        kill_current(&h).await;
        h.cast(Msg::Add(1)).await.unwrap();
        assert_eq!(
            h.call(Msg::Get, None).await.unwrap(),
            1,
            "fresh state, message delivered"
        );
        assert_ne!(h.current().unwrap().get_id(), before);
    }
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn sends_while_restarting_wait_for_the_new_incarnation() {
    let sup = start(ChildSpec::actor("c", Counter, ()).backoff(backed_off(500))).await;
    let h = sup.handle::<Msg>("c").unwrap();
    kill_current(&h).await;
    let began = tokio::time::Instant::now();
    h.cast(Msg::Add(7)).await.unwrap();
    assert!(
        began.elapsed() >= Duration::from_millis(400),
        "waited for the backed-off restart"
    );
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 7);
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn waiting_is_bounded_and_a_timeout_is_returned() {
    let sup = start(ChildSpec::actor("c", Counter, ()).backoff(backed_off(10_000))).await;
    let h = sup
        .handle_with::<Msg>("c", HandleOptions::default().wait(Duration::from_secs(1)))
        .unwrap();
    kill_current(&h).await;
    assert_eq!(
        h.cast(Msg::Add(1)).await,
        Err(HandleError::Timeout(Duration::from_secs(1)))
    );
    assert!(matches!(
        h.call(Msg::Get, None).await,
        Err(HandleError::Timeout(_))
    ));
    sup.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn too_many_waiting_sends_overflow() {
    let sup = start(ChildSpec::actor("c", Counter, ()).backoff(backed_off(1_000))).await;
    let h = sup
        .handle_with::<Msg>("c", HandleOptions::default().buffer(2))
        .unwrap();
    kill_current(&h).await;
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move { h.cast(Msg::Add(i)).await })
        })
        .collect();
    // Let both take their slots.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.cast(Msg::Add(100)).await, Err(HandleError::Overflow(2)));
    for w in waiting {
        assert_eq!(
            w.await.unwrap(),
            Ok(()),
            "the buffered sends are delivered after the restart"
        );
    }
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 1);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_child_that_exited_is_gone() {
    let sup = start(ChildSpec::actor("c", Counter, ()).restart(Restart::Temporary)).await;
    let h = sup.handle::<Msg>("c").unwrap();
    h.cast(Msg::Stop).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        match h.cast(Msg::Add(1)).await {
            Err(HandleError::ChildGone) => break,
            Ok(()) => tokio::time::sleep(Duration::from_millis(5)).await,
            other => panic!("unexpected {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(matches!(
        h.call(Msg::Get, None).await,
        Err(HandleError::ChildGone)
    ));
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_child_and_a_stopped_supervisor_are_gone_not_hangs() {
    let sup = start(ChildSpec::actor("c", Counter, ())).await;
    let h = sup.handle::<Msg>("c").unwrap();
    sup.terminate_child("c").await.unwrap();
    sup.delete_child("c").await.unwrap();
    assert_eq!(h.cast(Msg::Add(1)).await, Err(HandleError::ChildGone));

    let sup2 = start(ChildSpec::actor("c", Counter, ())).await;
    let h2 = sup2.handle::<Msg>("c").unwrap();
    sup2.shutdown().await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), h2.cast(Msg::Add(1))).await;
    assert_eq!(outcome.expect("no hang"), Err(HandleError::ChildGone));
    assert!(matches!(
        h2.call(Msg::Get, None).await,
        Err(HandleError::ChildGone)
    ));
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handle_requests_are_typed_errors() {
    let sup = start(ChildSpec::actor("c", Counter, ())).await;
    assert_eq!(
        sup.handle_with::<Msg>("c", HandleOptions::default().buffer(0))
            .unwrap_err(),
        ChildError::Spec(SpecError::ZeroBufferCapacity)
    );
    assert_eq!(
        sup.handle::<Msg>("nope").unwrap_err(),
        ChildError::NotFound("nope".into())
    );
    let wrong = sup.handle::<String>("c").unwrap();
    assert_eq!(
        wrong.cast("hello".to_string()).await,
        Err(HandleError::WrongType)
    );
    sup.shutdown().await;
    assert_eq!(
        sup.handle::<Msg>("c").unwrap_err(),
        ChildError::SupervisorDown
    );
}

// -------------------------------------------------------------------------------------------------
// Dynamic children

#[derive(Clone)]
struct Seeded;

impl Actor for Seeded {
    type Msg = Msg;
    type State = u64;
    type Arguments = u64;
    async fn pre_start(&self, _: ActorRef<Msg>, seed: u64) -> Result<u64, ActorProcessingErr> {
        Ok(seed)
    }
    async fn handle(
        &self,
        me: ActorRef<Msg>,
        msg: Msg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        Counter.handle(me, msg, n).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_to_a_dynamic_child_follows_it_with_its_start_arguments() {
    use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
    let pool = DynamicSupervisor::start(DynamicSpec::actor(Seeded))
        .await
        .unwrap();
    let started = pool.start_child(40).await.unwrap();
    let h = pool.handle::<Msg>(started.cell.as_ref().unwrap()).unwrap();
    h.cast(Msg::Add(2)).await.unwrap();
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 42);
    kill_current(&h).await;
    // The restarted incarnation got the same start argument again.
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 40);
    // Terminated through the API: gone for good.
    let cell = h.current().unwrap().get_cell();
    pool.terminate_child(&cell).await.unwrap();
    assert_eq!(h.cast(Msg::Add(1)).await, Err(HandleError::ChildGone));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_to_a_temporary_dynamic_child_is_gone_after_it_exits() {
    use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
    let pool = DynamicSupervisor::start(DynamicSpec::actor(Seeded).restart(Restart::Temporary))
        .await
        .unwrap();
    let started = pool.start_child(1).await.unwrap();
    let h = pool.handle::<Msg>(started.cell.as_ref().unwrap()).unwrap();
    kill_current(&h).await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match h.cast(Msg::Add(1)).await {
                Err(HandleError::ChildGone) => return,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "ChildGone, not a hang");
    let stranger = Counter.clone();
    let (other, _) = Actor::spawn(None, stranger, ()).await.unwrap();
    assert!(matches!(
        pool.handle::<Msg>(&other.get_cell()),
        Err(ChildError::NotFound(_))
    ));
    other.stop(None);
    pool.shutdown().await;
}

/// A handle follows its child by path: when the child's supervisor, or one above it, is killed and
/// restarted, the handle reaches the child under the new incarnation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_follows_its_child_through_restarts_of_the_supervisors_above_it() {
    let web = SupervisorSpec::default()
        .restart_intensity(100, Duration::from_secs(60))
        .child(ChildSpec::actor("listener", Counter, ()));
    let mid = SupervisorSpec::default()
        .restart_intensity(100, Duration::from_secs(60))
        .child(ChildSpec::supervisor("web", web));
    let root = start(ChildSpec::supervisor("mid", mid)).await;
    let mid_ref = SupervisorRef::from_cell(running_pid(&root, "mid").await).unwrap();
    let web_ref = SupervisorRef::from_cell(running_pid(&mid_ref, "web").await).unwrap();
    let h = web_ref.handle::<Msg>("listener").unwrap();
    h.cast(Msg::Add(1)).await.unwrap();
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 1);

    // The child's own supervisor is killed; its parent starts a new one, with a new listener.
    let old = h.current().unwrap();
    web_ref.cell().kill();
    // ractor kills a killed actor's children after it; messages accepted by the old listener
    // before it died would be lost with it, as with any crash.
    old.get_cell().wait(None).await.unwrap();
    let old = old.get_id();
    h.cast(Msg::Add(2)).await.unwrap();
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 2, "the new listener");
    assert_ne!(h.current().unwrap().get_id(), old);

    // A supervisor two levels up is killed: the whole branch comes back, and so does the handle.
    let old = h.current().unwrap();
    mid_ref.cell().kill();
    old.get_cell().wait(None).await.unwrap();
    let old = old.get_id();
    h.cast(Msg::Add(5)).await.unwrap();
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 5);
    assert_ne!(h.current().unwrap().get_id(), old);
    root.shutdown().await;
    assert_eq!(h.cast(Msg::Add(1)).await, Err(HandleError::ChildGone));
}

/// The running cell of child `id`, once the supervisor has it running.
async fn running_pid(sup: &SupervisorRef, id: &str) -> ractor::ActorCell {
    sup.which_child(id)
        .await
        .unwrap()
        .status
        .pid()
        .cloned()
        .expect("running")
}

/// A child stopped through the API comes back only with `restart_child`: a send fails at once
/// with `ChildStopped` instead of waiting out its (hour-long) bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_stopped_through_the_api_fails_at_once() {
    let sup = start(ChildSpec::actor("c", Counter, ())).await;
    let h = sup
        .handle_with::<Msg>(
            "c",
            HandleOptions::default().wait(Duration::from_secs(3600)),
        )
        .unwrap();
    sup.terminate_child("c").await.unwrap();
    let cast = tokio::time::timeout(Duration::from_secs(10), h.cast(Msg::Add(1))).await;
    assert_eq!(cast.expect("no wait"), Err(HandleError::ChildStopped));
    let call = tokio::time::timeout(Duration::from_secs(10), h.call(Msg::Get, None)).await;
    assert!(matches!(
        call.expect("no wait"),
        Err(HandleError::ChildStopped)
    ));
    sup.restart_child("c").await.unwrap();
    h.cast(Msg::Add(4)).await.unwrap();
    assert_eq!(h.call(Msg::Get, None).await.unwrap(), 4);
    sup.shutdown().await;
}

/// A child that ignored its start is stopped, not restarting: a send fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_ignored_its_start_fails_at_once() {
    let sup = start(ChildSpec::new("c", |_sup| async {
        Ok(canopy::Start::Ignore)
    }))
    .await;
    let h = sup
        .handle_with::<Msg>(
            "c",
            HandleOptions::default().wait(Duration::from_secs(3600)),
        )
        .unwrap();
    let cast = tokio::time::timeout(Duration::from_secs(10), h.cast(Msg::Add(1))).await;
    assert_eq!(cast.expect("no wait"), Err(HandleError::ChildStopped));
    sup.shutdown().await;
}

/// A dynamic child is gone with its supervisor: after the dynamic supervisor is restarted (with
/// no children), the handle says so at once instead of reaching another child with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_child_is_gone_when_its_supervisor_restarts() {
    let pool = canopy::DynamicSpec::new(|sup, _: u32| async move {
        let (actor, _) = Actor::spawn_linked(None, Counter, (), sup).await?;
        Ok(canopy::Start::from(actor))
    });
    let root = start(ChildSpec::dynamic("pool", pool)).await;
    let pool_ref = canopy::DynamicRef::<u32>::from_cell(running_pid(&root, "pool").await).unwrap();
    let child = pool_ref.start_child(1).await.unwrap().cell.unwrap();
    let h = pool_ref.handle::<Msg>(&child).unwrap();
    h.cast(Msg::Add(1)).await.unwrap();
    pool_ref.cell().kill();
    pool_ref.wait().await;
    // ractor kills a killed supervisor's children after it: until the child is down too, a send
    // may still reach it (and be lost with it, as with any crash).
    child.wait(None).await.unwrap();
    let new_pool = canopy::DynamicRef::<u32>::from_cell(running_pid(&root, "pool").await).unwrap();
    new_pool.start_child(2).await.unwrap();
    let cast = tokio::time::timeout(Duration::from_secs(10), h.cast(Msg::Add(1))).await;
    assert_eq!(cast.expect("no wait"), Err(HandleError::ChildGone));
    root.shutdown().await;
}

/// A child whose stop waits for the test: it says when its `post_stop` began, then holds its
/// supervisor's ordered stop there until released.
#[derive(Clone)]
struct HeldStop {
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    release: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Actor for HeldStop {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn post_stop(&self, _: ActorRef<()>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        let _ = self.entered.send(());
        self.release.acquire().await?.forget();
        Ok(())
    }
}

/// While a supervisor stops its children one by one, a child it has already stopped is not
/// "stopped until someone calls restart_child": that entry tells the supervisor's own stop. In its
/// parent's restart round the handle waits for the next incarnation; when the tree stops for good
/// the child is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_stopped_by_its_supervisors_own_stop_is_waited_for_or_gone_not_stopped() {
    let (entered, mut entered_rx) = tokio::sync::mpsc::unbounded_channel();
    let release = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let held = HeldStop {
        entered,
        release: release.clone(),
    };
    // Stopped in reverse: the listener first, then `held`, which holds `web` in its stop.
    let web = SupervisorSpec::default()
        .child(ChildSpec::actor("held", held, ()).shutdown(canopy::Shutdown::Infinity))
        .child(ChildSpec::actor("listener", Counter, ()));
    let root = Supervisor::start(
        SupervisorSpec::new(canopy::Strategy::OneForAll)
            .restart_intensity(100, Duration::from_secs(60))
            .child(ChildSpec::supervisor("web", web))
            .child(ChildSpec::actor("trigger", Counter, ())),
    )
    .await
    .expect("supervisor starts");
    let web_ref = SupervisorRef::from_cell(running_pid(&root, "web").await).unwrap();
    let short = web_ref
        .handle_with::<Msg>(
            "listener",
            HandleOptions::default().wait(Duration::from_millis(50)),
        )
        .unwrap();
    let patient = web_ref
        .handle_with::<Msg>(
            "listener",
            HandleOptions::default().wait(Duration::from_secs(3600)),
        )
        .unwrap();
    short.cast(Msg::Add(1)).await.unwrap();

    // The trigger's crash makes the root restart every child: `web` stops its listener, then is
    // held in `held`'s stop while still running.
    running_pid(&root, "trigger").await.kill();
    entered_rx.recv().await.expect("held's stop began");
    assert_eq!(
        short.cast(Msg::Add(1)).await,
        Err(HandleError::Timeout(Duration::from_millis(50))),
        "the listener comes back with its supervisor: wait, do not fail as stopped"
    );
    let mut waiting = std::pin::pin!(patient.cast(Msg::Add(5)));
    assert!(futures::poll!(&mut waiting).is_pending());
    release.add_permits(1);
    waiting.await.expect("delivered to the next incarnation");
    assert_eq!(patient.call(Msg::Get, None).await.unwrap(), 5);

    // Now the whole tree stops for good, held again in `held`'s stop: the listener is gone.
    let stopping = tokio::spawn(async move { root.shutdown().await });
    entered_rx.recv().await.expect("held's stop began");
    assert_eq!(short.cast(Msg::Add(1)).await, Err(HandleError::ChildGone));
    assert_eq!(patient.cast(Msg::Add(1)).await, Err(HandleError::ChildGone));
    release.add_permits(1);
    stopping.await.unwrap();
}
