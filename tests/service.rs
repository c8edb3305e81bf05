//! `#[canopy::service]` and `#[derive(canopy::Child)]` at run time: messages, replies, errors,
//! timeouts, the context, the stop hook, the counters, and the child-spec defaults.

use std::time::Duration;

use canopy::handle::HandleError;
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::service::{CallError, ChildDefaults, Ctx, ServiceActor};
use canopy::{
    ChildError, ChildKind, ExitReason, Restart, Shutdown, StartError, Supervisor, SupervisorSpec,
};
use tokio::sync::{mpsc, oneshot, Notify};

// -------------------------------------------------------------------------------------------------
// A counter, the running example

struct Counter {
    n: u64,
}

#[canopy::service]
impl Counter {
    fn init(start: u64) -> Self {
        Counter { n: start }
    }

    fn add(&mut self, k: u64) {
        self.n += k;
    }

    async fn add_async(&mut self, k: u64) {
        tokio::task::yield_now().await;
        self.n += k;
    }

    fn get(&self) -> u64 {
        self.n
    }

    fn take(&mut self, k: u64) -> Result<u64, String> {
        self.n = self
            .n
            .checked_sub(k)
            .ok_or_else(|| format!("only {} left", self.n))?;
        Ok(self.n)
    }

    #[cast]
    fn fail(&mut self, why: String) -> Result<(), String> {
        Err(why)
    }

    fn panic(&self) -> u64 {
        panic!("counter panicked")
    }
}

async fn counter_tree(start: u64) -> (canopy::SupervisorRef, CounterClient) {
    let sup =
        Supervisor::start(SupervisorSpec::default().child(Counter::child_spec("counter", start)))
            .await
            .expect("starts");
    let client = CounterClient::new(&sup, "counter").expect("a child");
    (sup, client)
}

/// Waits (by handshake with the supervisor's state, no sleep) until `client` reaches an
/// incarnation other than `before`.
async fn next_incarnation(client: &CounterClient, before: canopy::ractor::ActorId) {
    loop {
        if let Some(now) = client.current() {
            if now.get_id() != before {
                return;
            }
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn casts_and_calls_reach_the_methods_in_order() {
    let (sup, counter) = counter_tree(1).await;
    counter.add(2).await.unwrap();
    counter.add_async(3).await.unwrap();
    assert_eq!(counter.get().await.unwrap(), 6);
    sup.shutdown().await;
}

#[tokio::test]
async fn a_cast_sends_nothing_until_it_is_awaited() {
    let (sup, counter) = counter_tree(0).await;
    let never_polled = counter.add(1);
    drop(never_polled);
    counter.add(2).await.unwrap();
    assert_eq!(counter.get().await.unwrap(), 2);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_to_a_dead_incarnation_waits_for_the_next_one_and_reaches_it() {
    let (sup, counter) = counter_tree(10).await;
    // Sent through the handle once, so that this thread caches the first incarnation.
    counter.add(1).await.unwrap();
    let first = counter.current().unwrap();
    first.kill();
    while first.get_status() != canopy::ractor::ActorStatus::Stopped {
        tokio::task::yield_now().await;
    }
    // The cached incarnation refuses it: the cast waits for the restart and goes to the next.
    counter.add(5).await.unwrap();
    assert_ne!(counter.current().unwrap().get_id(), first.get_id());
    // Restarted with its start arguments (10), then the 5.
    assert_eq!(counter.get().await.unwrap(), 15);
    sup.shutdown().await;
}

#[tokio::test]
async fn a_call_returning_result_gives_the_handler_error_typed_and_the_service_goes_on() {
    let (sup, counter) = counter_tree(3).await;
    let first = counter.current().unwrap().get_id();
    assert_eq!(
        counter.take(5).await,
        Err(CallError::Handler("only 3 left".to_string()))
    );
    assert_eq!(counter.take(1).await, Ok(2));
    assert_eq!(counter.current().unwrap().get_id(), first, "not restarted");
    sup.shutdown().await;
}

#[tokio::test]
async fn an_err_from_a_cast_fails_the_actor_and_its_restart_type_applies() {
    let (sup, counter) = counter_tree(10).await;
    counter.add(5).await.unwrap();
    let first = counter.current().unwrap().get_id();
    counter.fail("boom".into()).await.unwrap();
    next_incarnation(&counter, first).await;
    // Permanent: restarted with its start arguments, so the count is back to 10.
    assert_eq!(counter.get().await.unwrap(), 10);
    let info = sup.which_child("counter").await.unwrap();
    assert_eq!(info.restarts, 1);
    assert_eq!(info.last_exit, Some(ExitReason::Error("boom".into())));
    sup.shutdown().await;
}

#[tokio::test]
async fn a_panicking_call_is_stopped_for_the_caller_and_restarted() {
    let (sup, counter) = counter_tree(7).await;
    let first = counter.current().unwrap().get_id();
    assert_eq!(counter.panic().await, Err(CallError::Stopped));
    next_incarnation(&counter, first).await;
    assert_eq!(counter.get().await.unwrap(), 7);
    sup.shutdown().await;
}

#[tokio::test]
async fn a_client_of_a_stopped_tree_says_the_child_is_gone() {
    let (sup, counter) = counter_tree(0).await;
    sup.shutdown().await;
    assert_eq!(
        counter.get().await,
        Err(CallError::Unreachable(HandleError::ChildGone))
    );
    assert_eq!(
        counter.add(1).await,
        Err(CallError::Unreachable(HandleError::ChildGone))
    );
}

#[tokio::test]
async fn a_client_for_a_missing_child_is_not_found() {
    let (sup, _) = counter_tree(0).await;
    assert_eq!(
        CounterClient::new(&sup, "nope").unwrap_err(),
        ChildError::NotFound("nope".into())
    );
    sup.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// Constructors

struct Fallible;

#[canopy::service]
impl Fallible {
    async fn init(ok: bool, ctx: &Ctx<Self>) -> Result<Self, String> {
        let _ = ctx.actor_ref();
        if ok {
            Ok(Fallible)
        } else {
            Err("refused to start".to_string())
        }
    }

    fn ping(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn an_init_error_fails_the_start_with_its_message() {
    let err = Supervisor::start(SupervisorSpec::default().child(Fallible::child_spec("f", false)))
        .await
        .unwrap_err();
    match err {
        StartError::ChildFailed { id, reason } => {
            assert_eq!(id, "f");
            assert!(reason.contains("refused to start"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let sup = Supervisor::start(SupervisorSpec::default().child(Fallible::child_spec("f", true)))
        .await
        .unwrap();
    assert!(FallibleClient::new(&sup, "f")
        .unwrap()
        .ping()
        .await
        .unwrap());
    sup.shutdown().await;
}

/// Several constructor arguments are a tuple.
struct Pair {
    a: String,
    b: u8,
}

#[canopy::service]
impl Pair {
    #[init]
    fn make(a: String, b: u8) -> Self {
        Pair { a, b }
    }

    fn both(&self) -> (String, u8) {
        (self.a.clone(), self.b)
    }
}

#[tokio::test]
async fn several_constructor_arguments_are_a_tuple() {
    let sup = Supervisor::start(
        SupervisorSpec::default().child(Pair::child_spec("p", ("x".to_string(), 2))),
    )
    .await
    .unwrap();
    let pair = PairClient::new(&sup, "p").unwrap();
    assert_eq!(pair.both().await.unwrap(), ("x".to_string(), 2));
    sup.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// Timeouts and counters

/// Handles `block` until told to go on; says when it is inside.
struct Gate {
    entered: mpsc::UnboundedSender<()>,
    release: std::sync::Arc<Notify>,
}

#[canopy::service]
impl Gate {
    fn init(entered: mpsc::UnboundedSender<()>, release: std::sync::Arc<Notify>) -> Self {
        Gate { entered, release }
    }

    #[call(timeout = "50ms")]
    async fn block(&self) {
        let _ = self.entered.send(());
        self.release.notified().await;
    }

    #[call(timeout = infinity)]
    async fn block_forever(&self) -> u8 {
        let _ = self.entered.send(());
        self.release.notified().await;
        7
    }

    async fn block_default(&self) -> u8 {
        let _ = self.entered.send(());
        self.release.notified().await;
        8
    }

    fn quick(&self) -> u8 {
        1
    }
}

async fn gate() -> (
    GateClient,
    ActorRef<<Gate as canopy::service::Service>::Msg>,
    mpsc::UnboundedReceiver<()>,
    std::sync::Arc<Notify>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let release = std::sync::Arc::new(Notify::new());
    let (actor, _) = Actor::spawn(None, ServiceActor::<Gate>::new(), (tx, release.clone()))
        .await
        .unwrap();
    (GateClient::from_actor(actor.clone()), actor, rx, release)
}

#[tokio::test]
async fn a_call_times_out_after_its_methods_timeout() {
    let (gate, actor, mut entered, release) = gate().await;
    assert_eq!(
        gate.block().await,
        Err(CallError::Timeout(Duration::from_millis(50)))
    );
    entered.recv().await.unwrap();
    release.notify_one();
    assert_eq!(gate.quick().await, Ok(1));
    actor.stop(None);
}

#[tokio::test]
async fn with_timeout_overrides_every_calls_timeout() {
    let (gate, actor, mut entered, release) = gate().await;
    let short = gate.with_timeout(Duration::from_millis(20));
    assert_eq!(
        short.block_default().await,
        Err(CallError::Timeout(Duration::from_millis(20)))
    );
    entered.recv().await.unwrap();
    release.notify_one();
    assert_eq!(gate.quick().await, Ok(1));
    actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn the_default_call_timeout_is_five_seconds_and_infinity_has_none() {
    let (gate, actor, mut entered, release) = gate().await;
    // On the paused clock, the 5 s default elapses at once when nothing else can run.
    assert_eq!(
        gate.block_default().await,
        Err(CallError::Timeout(Duration::from_secs(5)))
    );
    entered.recv().await.unwrap();
    release.notify_one();

    let forever = tokio::spawn({
        let gate = gate.clone();
        async move { gate.block_forever().await }
    });
    entered.recv().await.unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert!(!forever.is_finished());
    release.notify_one();
    assert_eq!(forever.await.unwrap(), Ok(7));
    actor.stop(None);
}

/// A call is counted before its reply goes out: a read right after the call returns counts it and
/// shows the service idle. On a multi-thread runtime the caller resumes on another worker while
/// the service's task may still be finishing the handler, so a count taken after the reply would
/// be missed by some of these reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_counted_before_its_reply_goes_out() {
    let (gate, actor, _entered, _release) = gate().await;
    let cell = actor.get_cell();
    for n in 1..=2_000u64 {
        gate.quick().await.unwrap();
        let stats = canopy::service::stats(&cell).unwrap();
        assert_eq!((stats.handled, stats.current), (n, None), "after call {n}");
    }
    actor.stop(None);
}

#[tokio::test]
async fn counters_show_messages_handled_and_the_current_handler() {
    let (gate, actor, mut entered, release) = gate().await;
    let cell = actor.get_cell();
    let before = canopy::service::stats(&cell).unwrap();
    assert_eq!(
        (before.service, before.handled, before.current),
        ("Gate", 0, None)
    );

    gate.quick().await.unwrap();
    let call = tokio::spawn({
        let gate = gate.clone();
        async move { gate.block_forever().await }
    });
    entered.recv().await.unwrap();
    let busy = canopy::service::stats(&cell).unwrap();
    assert_eq!(busy.handled, 1);
    assert!(busy.current.is_some(), "inside a handler");
    release.notify_one();
    call.await.unwrap().unwrap();
    gate.quick().await.unwrap();
    let after = canopy::service::stats(&cell).unwrap();
    assert_eq!((after.handled, after.current), (3, None));

    actor.stop(None);
    actor.wait(None).await.unwrap();
    assert_eq!(
        canopy::service::stats(&cell),
        None,
        "forgotten once stopped"
    );
}

// -------------------------------------------------------------------------------------------------
// The stop hook and the context

struct Hooked {
    reasons: mpsc::UnboundedSender<ExitReason>,
}

/// Sends a message when dropped: tells that a task was aborted.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[canopy::service(restart = temporary)]
impl Hooked {
    fn init(reasons: mpsc::UnboundedSender<ExitReason>) -> Self {
        Hooked { reasons }
    }

    fn stop_with(&self, why: String, ctx: Ctx<Self>) {
        ctx.stop(ExitReason::ShutdownWith(why));
    }

    fn crash(&self) -> Result<(), String> {
        Err("crashed".into())
    }

    #[cast]
    fn crash_cast(&self) -> Result<(), String> {
        Err("crashed".into())
    }

    /// Starts a task that never ends by itself.
    #[call]
    fn start_task(&self, ctx: &Ctx<Self>, dropped: oneshot::Sender<()>) {
        let guard = DropSignal(Some(dropped));
        ctx.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
    }

    #[on_stop]
    async fn stopped(&mut self, reason: ExitReason) {
        let _ = self.reasons.send(reason);
    }
}

async fn hooked() -> (
    canopy::SupervisorRef,
    HookedClient,
    mpsc::UnboundedReceiver<ExitReason>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sup = Supervisor::start(SupervisorSpec::default().child(Hooked::child_spec("h", tx)))
        .await
        .unwrap();
    let client = HookedClient::new(&sup, "h").unwrap();
    (sup, client, rx)
}

#[tokio::test]
async fn on_stop_gets_shutdown_when_its_supervisor_stops_it() {
    let (sup, _h, mut reasons) = hooked().await;
    sup.shutdown().await;
    assert_eq!(reasons.recv().await, Some(ExitReason::Shutdown));
}

#[tokio::test]
async fn on_stop_gets_the_reason_given_to_ctx_stop() {
    let (sup, h, mut reasons) = hooked().await;
    h.stop_with("done".into()).await.unwrap();
    assert_eq!(
        reasons.recv().await,
        Some(ExitReason::ShutdownWith("done".into()))
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn on_stop_gets_the_error_of_a_failed_cast() {
    let (sup, h, mut reasons) = hooked().await;
    h.crash_cast().await.unwrap();
    assert_eq!(
        reasons.recv().await,
        Some(ExitReason::Error("crashed".into()))
    );
    sup.shutdown().await;
}

#[tokio::test]
async fn a_call_returning_err_does_not_stop_the_service() {
    let (sup, h, mut reasons) = hooked().await;
    assert_eq!(
        h.crash().await,
        Err(CallError::Handler("crashed".to_string()))
    );
    sup.shutdown().await;
    assert_eq!(
        reasons.recv().await,
        Some(ExitReason::Shutdown),
        "only the shutdown"
    );
}

#[tokio::test]
async fn tasks_spawned_through_the_context_end_with_the_actor() {
    let (sup, h, _reasons) = hooked().await;
    let (tx, rx) = oneshot::channel();
    h.start_task(tx).await.unwrap();
    sup.shutdown().await;
    rx.await
        .expect("the task was aborted and dropped its guard");
}

// -------------------------------------------------------------------------------------------------
// Generics, name clashes, defaults

/// A generic service: the client carries the parameter and its bounds.
struct Store<T> {
    items: Vec<T>,
}

#[canopy::service]
impl<T> Store<T>
where
    T: Clone + Send + Sync + 'static,
{
    fn init() -> Self {
        Store { items: Vec::new() }
    }

    fn push(&mut self, item: T) {
        self.items.push(item);
    }

    fn all(&self) -> Vec<T> {
        self.items.clone()
    }

    fn snapshot(&self) -> Self {
        Store {
            items: self.items.clone(),
        }
    }
}

#[tokio::test]
async fn a_generic_service_has_a_generic_client() {
    let sup = Supervisor::start(
        SupervisorSpec::default()
            .child(Store::<String>::child_spec("names", ()))
            .child(Store::<u32>::child_spec("numbers", ())),
    )
    .await
    .unwrap();
    let names: StoreClient<String> = StoreClient::new(&sup, "names").unwrap();
    let numbers: StoreClient<u32> = StoreClient::new(&sup, "numbers").unwrap();
    names.push("a".into()).await.unwrap();
    numbers.push(1).await.unwrap();
    assert_eq!(names.all().await.unwrap(), ["a"]);
    assert_eq!(numbers.snapshot().await.unwrap().items, [1]);
    sup.shutdown().await;
}

/// A second service with a `get` in the same module: the message enums do not clash.
struct Other;

#[canopy::service(restart = transient, shutdown = drain("2s"), significant, backoff(min = "10ms", max = "1s", max_retries = 4))]
impl Other {
    fn init() -> Self {
        Other
    }

    fn get(&self) -> &'static str {
        "other"
    }
}

#[test]
fn the_attributes_defaults_reach_the_child_spec() {
    let spec = Other::child_spec("o", ());
    assert_eq!(spec.get_restart(), Restart::Transient);
    assert_eq!(spec.get_shutdown(), Shutdown::Drain(Duration::from_secs(2)));
    assert!(spec.is_significant());
    let backoff = spec.get_backoff().unwrap();
    assert_eq!(
        (
            backoff.get_min(),
            backoff.get_max(),
            backoff.get_max_retries()
        ),
        (Duration::from_millis(10), Duration::from_secs(1), 4)
    );
    // Nothing written: OTP's defaults.
    let plain = Counter::child_spec("c", 0);
    assert_eq!(plain.get_restart(), Restart::Permanent);
    assert_eq!(
        plain.get_shutdown(),
        Shutdown::Timeout(Duration::from_secs(5))
    );
    assert!(!plain.is_significant() && plain.get_backoff().is_none());
    assert_eq!(<Other as canopy::Child>::RESTART, Restart::Transient);
}

#[tokio::test]
async fn two_services_in_one_module_each_have_their_own_get() {
    let (other, _) = Actor::spawn(None, ServiceActor::<Other>::new(), ())
        .await
        .unwrap();
    let (counter, _) = Actor::spawn(None, ServiceActor::<Counter>::new(), 4)
        .await
        .unwrap();
    assert_eq!(
        OtherClient::from_actor(other.clone()).get().await.unwrap(),
        "other"
    );
    assert_eq!(
        CounterClient::from_actor(counter.clone())
            .get()
            .await
            .unwrap(),
        4
    );
    other.stop(None);
    counter.stop(None);
}

// -------------------------------------------------------------------------------------------------
// #[derive(Child)] on a hand-written actor

#[derive(Default, canopy::Child)]
#[child(restart = temporary, shutdown = brutal_kill, kind = worker)]
struct Echo;

impl Actor for Echo {
    type Msg = canopy::ractor::RpcReplyPort<u16>;
    type State = u16;
    type Arguments = u16;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        port: u16,
    ) -> Result<u16, ActorProcessingErr> {
        Ok(port)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        reply: Self::Msg,
        port: &mut u16,
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(*port);
        Ok(())
    }
}

#[derive(Default, canopy::Child)]
#[child(kind = supervisor)]
struct SupervisorLike;

impl Actor for SupervisorLike {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

#[tokio::test]
async fn derive_child_gives_a_hand_written_actor_its_defaults_and_a_handle() {
    let spec = Echo::child_spec("echo", 8080);
    assert_eq!(spec.get_restart(), Restart::Temporary);
    assert_eq!(spec.get_shutdown(), Shutdown::BrutalKill);
    assert_eq!(spec.get_kind(), ChildKind::Worker);
    let sup_like = SupervisorLike::child_spec("s", ());
    assert_eq!(sup_like.get_kind(), ChildKind::Supervisor);
    assert_eq!(
        sup_like.get_shutdown(),
        Shutdown::Infinity,
        "the kind's default"
    );
    assert_eq!(
        <SupervisorLike as canopy::Child>::defaults(),
        ChildDefaults::SUPERVISOR
    );

    let sup = Supervisor::start(SupervisorSpec::default().child(spec))
        .await
        .unwrap();
    let echo = <Echo as canopy::Child>::client(&sup, "echo").unwrap();
    assert_eq!(echo.call(|r| r, None).await.unwrap(), 8080);
    sup.shutdown().await;
}
