//! Services: actors written as plain methods, with typed clients, and child-spec defaults on the
//! type. This module is what the code of [`#[canopy::service]`](macro@crate::service),
//! [`#[derive(Child)]`](derive@crate::Child) and
//! [`#[derive(Supervisor)]`](derive@crate::Supervisor) stands on.
//!
//! A service is an `impl` block whose methods become the messages of an actor:
//!
//! ```
//! use canopy::{ChildSpec, Supervisor, SupervisorSpec};
//!
//! struct Counter {
//!     n: u64,
//! }
//!
//! #[canopy::service(restart = transient)]
//! impl Counter {
//!     fn init(start: u64) -> Self {
//!         Counter { n: start }
//!     }
//!
//!     /// Adds `k`.
//!     pub fn add(&mut self, k: u64) {
//!         self.n += k;
//!     }
//!
//!     /// The count so far.
//!     pub fn get(&self) -> u64 {
//!         self.n
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sup = Supervisor::start(SupervisorSpec::default().child(Counter::child_spec("counter", 40)))
//!     .await?;
//! let counter = CounterClient::new(&sup, "counter")?;
//! counter.add(2).await?;                       // a cast: returns once it is in the mailbox
//! assert_eq!(counter.get().await?, 42);        // a call: returns the reply
//! let stats = canopy::service::stats(&counter.current().unwrap().get_cell()).unwrap();
//! assert_eq!(stats.handled, 2);
//! sup.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! What runs is a [`ServiceActor<S>`], one ractor actor type for every service: it calls the
//! service's constructor in `pre_start`, its methods for each message, and its `#[on_stop]` hook
//! when it stops. The generated code only implements [`Service`] (the message enum and the match
//! over it) and [`Child`] (how to start it under a supervisor and how to reach it).
//!
//! Calls have a timeout: 5 s by default ([`DEFAULT_CALL_TIMEOUT`], Elixir's), per method with
//! `#[call(timeout = "500ms")]` or `#[call(timeout = infinity)]`, per client with
//! `client.with_timeout(d)`. Every way a call or cast can fail is a [`CallError`].
//!
//! Every service counts the messages it handled and, while it handles one, since when; read them
//! with [`stats`], from anywhere, without a message to the actor.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, Message, RpcReplyPort};

use crate::backoff::Backoff;
use crate::dynamic::{DynamicRef, DynamicSpec, DynamicSupervisor};
use crate::exit::ExitReason;
use crate::handle::{ChildHandle, HandleError, Sent};
use crate::introspect;
use crate::pid_hash::PidHash;
use crate::spec::{BoxError, ChildKind, ChildSpec, Restart, Shutdown, Start};
use crate::supervisor::SupervisorRef;
use crate::ChildError;

/// How long a call waits for its reply unless told otherwise: 5 s, as in Elixir's `GenServer.call`.
///
/// ```
/// assert_eq!(canopy::service::DEFAULT_CALL_TIMEOUT, std::time::Duration::from_secs(5));
/// ```
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

// -------------------------------------------------------------------------------------------------
// The service behaviour

/// A service: what `#[canopy::service]` implements for the type of its `impl` block. The methods
/// are the generated glue that [`ServiceActor`] runs; write a service with the macro rather than
/// implementing this by hand.
///
/// The message type is the service's private enum. It has no name in your module (so two services
/// in one module may both have a `get`), only this path: `<Counter as Service>::Msg`.
///
/// ```
/// use canopy::service::Service;
/// struct Unit;
/// #[canopy::service]
/// impl Unit {
///     fn init() -> Self { Unit }
///     fn ping(&self) -> &'static str { "pong" }
/// }
/// fn takes<S: Service<Args = ()>>() {}
/// takes::<Unit>();
/// ```
pub trait Service: Sized + Send + 'static {
    /// The private message enum: one variant per method.
    type Msg: Message;
    /// The constructor's arguments: `()`, the one argument, or a tuple of them in order.
    type Args: Clone + Send + Sync + 'static;
    /// The generated typed client.
    type Client: Clone + Send + Sync + 'static;

    /// The service's name in logs and [`StatsSnapshot::service`].
    const NAME: &'static str;

    /// Runs the constructor.
    #[doc(hidden)]
    fn __init(
        args: Self::Args,
        ctx: &Ctx<Self>,
    ) -> impl Future<Output = Result<Self, BoxError>> + Send;

    /// Runs the method a message names; an `Err` fails the actor.
    #[doc(hidden)]
    fn __handle(
        &mut self,
        msg: Self::Msg,
        ctx: &Ctx<Self>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Runs the `#[on_stop]` hook, if there is one.
    #[doc(hidden)]
    fn __on_stop(
        &mut self,
        reason: ExitReason,
        ctx: &Ctx<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }

    /// Wraps an endpoint into the typed client.
    #[doc(hidden)]
    fn __client(endpoint: Endpoint<Self::Msg>) -> Self::Client;

    /// The message that injects `fault` (the chaos monkey's); `None` when the service cannot take
    /// one (a hand-written `Service`). Without the `chaos` feature there is no fault to inject.
    #[doc(hidden)]
    fn __fault(fault: __private::Fault) -> Option<Self::Msg> {
        let _ = fault;
        None
    }

    /// The child-spec defaults written in `#[canopy::service(...)]`.
    fn defaults() -> ChildDefaults {
        ChildDefaults::WORKER
    }
}

/// The one ractor actor that runs every service `S`: its `State` is the service value.
///
/// Spawn it yourself to run a service outside a supervisor:
///
/// ```
/// use canopy::service::ServiceActor;
/// struct Echo;
/// #[canopy::service]
/// impl Echo {
///     fn init() -> Self { Echo }
///     fn echo(&self, s: String) -> String { s }
/// }
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (actor, task) = canopy::ractor::Actor::spawn(None, ServiceActor::<Echo>::new(), ()).await?;
/// let echo = EchoClient::from_actor(actor.clone());
/// assert_eq!(echo.echo("hi".into()).await?, "hi");
/// actor.stop(None);
/// task.await?;
/// # Ok(()) }
/// ```
pub struct ServiceActor<S>(PhantomData<fn() -> S>);

impl<S> ServiceActor<S> {
    /// The actor value (it holds nothing: the service value is the actor's state).
    ///
    /// ```
    /// struct Unit;
    /// #[canopy::service]
    /// impl Unit { fn init() -> Self { Unit } }
    /// let actor = canopy::service::ServiceActor::<Unit>::new();
    /// # let _ = actor;
    /// ```
    pub fn new() -> Self {
        ServiceActor(PhantomData)
    }
}

impl<S> Default for ServiceActor<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Clone for ServiceActor<S> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<S> fmt::Debug for ServiceActor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceActor<{}>", std::any::type_name::<S>())
    }
}

/// A running service: its value, its context and its counters.
#[doc(hidden)]
pub struct Running<S: Service> {
    service: S,
    ctx: Ctx<S>,
}

impl<S: Service> Drop for Running<S> {
    /// Runs on every way out, a kill included: the service's tasks end with it, and the
    /// registry forgets its counters.
    fn drop(&mut self) {
        self.ctx.abort_tasks();
        unregister(&self.ctx.inner.myself.get_id());
    }
}

impl<S: Service> Actor for ServiceActor<S> {
    type Msg = S::Msg;
    type State = Running<S>;
    type Arguments = S::Args;

    async fn pre_start(
        &self,
        myself: ActorRef<S::Msg>,
        args: S::Args,
    ) -> Result<Running<S>, ActorProcessingErr> {
        let ctx = Ctx::new(myself);
        let init = AssertUnwindSafe(S::__init(args, &ctx)).catch_unwind().await;
        let service = match init {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => {
                ctx.abort_tasks();
                return Err(e);
            }
            Err(panic) => {
                ctx.abort_tasks();
                return Err(crate::spec::panic_text(&panic).into());
            }
        };
        register(&ctx.inner.myself.get_cell(), &ctx.inner.stats);
        Ok(Running { service, ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<S::Msg>,
        msg: S::Msg,
        state: &mut Running<S>,
    ) -> Result<(), ActorProcessingErr> {
        let stats = &state.ctx.inner.stats;
        stats.begin();
        // Caught here rather than by ractor so that the #[on_stop] hook sees the crash, as OTP's
        // terminate/2 does.
        let outcome = AssertUnwindSafe(state.service.__handle(msg, &state.ctx))
            .catch_unwind()
            .await;
        // A call was counted already, before its reply went out; anything else is counted here.
        state.ctx.inner.stats.end();
        let error: BoxError = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(panic) => crate::spec::panic_text(&panic).into(),
        };
        let reason = ExitReason::Error(error.to_string());
        let _ = AssertUnwindSafe(state.service.__on_stop(reason, &state.ctx))
            .catch_unwind()
            .await;
        Err(error)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<S::Msg>,
        state: &mut Running<S>,
    ) -> Result<(), ActorProcessingErr> {
        let reason = state
            .ctx
            .inner
            .stop_reason
            .lock()
            .take()
            .unwrap_or(ExitReason::Shutdown);
        state.service.__on_stop(reason, &state.ctx).await;
        Ok(())
    }
}

// -------------------------------------------------------------------------------------------------
// The context

/// What a service method can ask for besides its arguments: its own actor, a client to itself,
/// tasks that end with it, and a stop with a reason. A method gets it by taking a parameter of
/// type `Ctx<Self>` or `&Ctx<Self>` (recognised by its type, whatever its name).
///
/// ```
/// use canopy::service::Ctx;
/// struct Ticker { ticks: u32 }
/// #[canopy::service]
/// impl Ticker {
///     fn init() -> Self { Ticker { ticks: 0 } }
///     /// Casts `tick` to itself `n` times from a task of its own.
///     pub fn start(&self, n: u32, ctx: &Ctx<Self>) {
///         let me = ctx.client();
///         ctx.spawn(async move {
///             for _ in 0..n {
///                 let _ = me.tick().await;
///             }
///         });
///     }
///     pub fn tick(&mut self) { self.ticks += 1; }
///     pub fn ticks(&self) -> u32 { self.ticks }
/// }
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ticker = canopy::service::ServiceActor::<Ticker>::new();
/// let (actor, _) = canopy::ractor::Actor::spawn(None, ticker, ()).await?;
/// let ticker = TickerClient::from_actor(actor.clone());
/// ticker.start(3).await?;
/// while ticker.ticks().await? < 3 { tokio::task::yield_now().await; }
/// actor.stop(None);
/// # Ok(()) }
/// ```
pub struct Ctx<S: Service> {
    inner: Arc<CtxInner<S>>,
}

struct CtxInner<S: Service> {
    myself: ActorRef<S::Msg>,
    stats: Arc<ServiceStats>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    stop_reason: Mutex<Option<ExitReason>>,
}

impl<S: Service> Clone for Ctx<S> {
    fn clone(&self) -> Self {
        Ctx {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Service> fmt::Debug for Ctx<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("service", &S::NAME)
            .field("actor", &self.inner.myself.get_id())
            .finish()
    }
}

impl<S: Service> Ctx<S> {
    fn new(myself: ActorRef<S::Msg>) -> Self {
        Ctx {
            inner: Arc::new(CtxInner {
                myself,
                stats: Arc::new(ServiceStats {
                    name: S::NAME,
                    #[cfg(feature = "chaos")]
                    inject: inject::<S>,
                    handled: AtomicU64::new(0),
                    busy_since: AtomicU64::new(0),
                }),
                tasks: Mutex::new(Vec::new()),
                stop_reason: Mutex::new(None),
            }),
        }
    }

    /// The actor's own reference.
    ///
    /// ```
    /// # use canopy::service::Ctx;
    /// struct Me;
    /// #[canopy::service]
    /// impl Me {
    ///     fn init() -> Self { Me }
    ///     /// Its own actor id, as text.
    ///     fn id(&self, ctx: &Ctx<Self>) -> String { ctx.actor_ref().get_id().to_string() }
    /// }
    /// ```
    pub fn actor_ref(&self) -> &ActorRef<S::Msg> {
        &self.inner.myself
    }

    /// The actor's own cell.
    ///
    /// ```
    /// # use canopy::service::Ctx;
    /// struct Me;
    /// #[canopy::service]
    /// impl Me {
    ///     fn init(ctx: &Ctx<Self>) -> Self {
    ///         println!("starting as {}", ctx.cell().get_id());
    ///         Me
    ///     }
    /// }
    /// ```
    pub fn cell(&self) -> ActorCell {
        self.inner.myself.get_cell()
    }

    /// A client that sends to this very incarnation. Cast to yourself through it; a call to
    /// yourself from inside a method cannot be answered (the actor is busy with the method) and
    /// waits out its timeout. See the [type's example](Ctx).
    ///
    /// ```
    /// # use canopy::service::Ctx;
    /// struct Loop { n: u32 }
    /// #[canopy::service]
    /// impl Loop {
    ///     fn init() -> Self { Loop { n: 0 } }
    ///     /// Counts to `to`, one cast to itself at a time, between other messages.
    ///     async fn count(&mut self, to: u32, ctx: &Ctx<Self>) {
    ///         self.n += 1;
    ///         if self.n < to {
    ///             let _ = ctx.client().count(to).await;
    ///         }
    ///     }
    /// }
    /// ```
    pub fn client(&self) -> S::Client {
        S::__client(Endpoint::from_actor(self.inner.myself.clone()))
    }

    /// Runs `work` on a task that is aborted when this incarnation stops, whichever way it stops.
    /// See the [type's example](Ctx).
    ///
    /// ```
    /// # use canopy::service::Ctx;
    /// struct Poller;
    /// #[canopy::service]
    /// impl Poller {
    ///     fn init(ctx: &Ctx<Self>) -> Self {
    ///         // Polls for as long as this incarnation runs; a restart starts a fresh task.
    ///         ctx.spawn(async {
    ///             loop {
    ///                 tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    ///             }
    ///         });
    ///         Poller
    ///     }
    /// }
    /// ```
    pub fn spawn<F>(&self, work: F) -> tokio::task::AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(work).abort_handle();
        let mut tasks = self.inner.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle.clone());
        handle
    }

    /// Stops the actor after the current message, with `reason` (given to `#[on_stop]`, and to
    /// the supervisor, which restarts a transient child only for an abnormal reason).
    ///
    /// ```
    /// # use canopy::{service::Ctx, ExitReason};
    /// struct Job;
    /// #[canopy::service(restart = transient)]
    /// impl Job {
    ///     fn init() -> Self { Job }
    ///     /// Done: a normal stop, after which a transient child stays down.
    ///     fn finish(&self, ctx: &Ctx<Self>) { ctx.stop(ExitReason::Normal); }
    /// }
    /// ```
    pub fn stop(&self, reason: ExitReason) {
        let encoded = reason.encode();
        *self.inner.stop_reason.lock() = Some(reason);
        self.inner.myself.stop(Some(encoded));
    }

    fn abort_tasks(&self) {
        for task in self.inner.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Clients

/// What a generated client sends through: a restart-transparent [`ChildHandle`], or one actor.
/// The generated methods call [`call`](Self::call) and [`cast`](Self::cast) with the service's
/// private message variants; any ractor message type works the same way:
///
/// ```
/// use std::time::Duration;
/// use canopy::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
/// use canopy::service::{CallError, Endpoint};
///
/// struct Echo;
/// impl Actor for Echo {
///     type Msg = RpcReplyPort<u8>;
///     type State = ();
///     type Arguments = ();
///     async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
///         Ok(())
///     }
///     async fn handle(&self, _: ActorRef<Self::Msg>, r: Self::Msg, _: &mut ()) -> Result<(), ActorProcessingErr> {
///         let _ = r.send(7);
///         Ok(())
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (actor, task) = Actor::spawn(None, Echo, ()).await?;
/// let echo = Endpoint::from_actor(actor.clone()).with_timeout(Duration::from_secs(1));
/// assert_eq!(echo.call(|reply| reply, Duration::MAX).await, Ok(7));
/// actor.stop(None);
/// task.await?;
/// assert!(matches!(echo.call(|reply| reply, Duration::MAX).await, Err(CallError::Unreachable(_))));
/// # Ok(()) }
/// ```
pub struct Endpoint<M: Message> {
    target: Target<M>,
    timeout: Option<Duration>,
}

enum Target<M: Message> {
    Handle(ChildHandle<M>),
    Actor(ActorRef<M>),
}

impl<M: Message> Clone for Endpoint<M> {
    fn clone(&self) -> Self {
        Endpoint {
            target: match &self.target {
                Target::Handle(h) => Target::Handle(h.clone()),
                Target::Actor(a) => Target::Actor(a.clone()),
            },
            timeout: self.timeout,
        }
    }
}

impl<M: Message> fmt::Debug for Endpoint<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Handle(h) => f.debug_tuple("Endpoint").field(h).finish(),
            Target::Actor(a) => f.debug_tuple("Endpoint").field(&a.get_id()).finish(),
        }
    }
}

impl<M: Message> Endpoint<M> {
    /// Sends through a handle: follows the child across restarts.
    pub fn from_handle(handle: ChildHandle<M>) -> Self {
        Endpoint {
            target: Target::Handle(handle),
            timeout: None,
        }
    }

    /// Sends to this one actor; once it is gone, every send is [`HandleError::ChildGone`].
    pub fn from_actor(actor: ActorRef<M>) -> Self {
        Endpoint {
            target: Target::Actor(actor),
            timeout: None,
        }
    }

    /// The same endpoint with every call's timeout set to `timeout` (`Duration::MAX`: none),
    /// instead of each method's own.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The handle, if this endpoint sends through one.
    pub fn handle(&self) -> Option<&ChildHandle<M>> {
        match &self.target {
            Target::Handle(h) => Some(h),
            Target::Actor(_) => None,
        }
    }

    /// The incarnation that would receive a message now, if it runs.
    pub fn current(&self) -> Option<ActorRef<M>> {
        match &self.target {
            Target::Handle(h) => h.current(),
            Target::Actor(a) => Some(a.clone()),
        }
    }

    /// Sends `msg`; `Ok` once it is in the mailbox of a running incarnation. Nothing is sent
    /// until the returned future is polled.
    ///
    /// ```
    /// # use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
    /// # use canopy::service::Endpoint;
    /// # struct Sink;
    /// # impl Actor for Sink {
    /// #     type Msg = u32; type State = (); type Arguments = ();
    /// #     async fn pre_start(&self, _: ActorRef<u32>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
    /// # }
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (actor, task) = Actor::spawn(None, Sink, ()).await?;
    /// let sink = Endpoint::from_actor(actor.clone());
    /// sink.cast(7).await?;
    /// actor.stop(None);
    /// task.await?;
    /// assert!(sink.cast(8).await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn cast(&self, msg: M) -> Cast<'_, M> {
        Cast {
            endpoint: self,
            msg: Some(msg),
            waiting: None,
        }
    }

    /// The rest of a cast whose child is restarting: wait for it, then send.
    #[cold]
    fn wait_and_cast(&self, msg: M) -> BoxFuture<'_, Result<(), HandleError>> {
        match &self.target {
            Target::Handle(h) => Box::pin(h.cast(msg)),
            // An actor endpoint's send is final: `try_cast` never leaves it a message to wait with.
            Target::Actor(_) => Box::pin(async { Err(HandleError::ChildGone) }),
        }
    }

    /// The synchronous first step of a cast: sends the message in `msg`, and leaves it there if
    /// it is to be sent once the handle's child is back.
    #[inline]
    fn try_cast(&self, msg: &mut Option<M>) -> Result<Sent, CallError> {
        match &self.target {
            Target::Handle(h) => h.try_cast_cached(msg).map_err(CallError::Unreachable),
            Target::Actor(a) => match msg.take().map(|m| a.send_message(m)) {
                Some(Ok(())) => Ok(Sent::Delivered),
                _ => Err(CallError::Unreachable(HandleError::ChildGone)),
            },
        }
    }

    /// Sends the message `request` builds around a reply port and waits for the reply, up to the
    /// client's timeout if it has one, else `timeout` (the method's; `Duration::MAX`: no bound).
    pub async fn call<R, F>(&self, request: F, timeout: Duration) -> Result<R, CallError>
    where
        R: Send + 'static,
        F: FnOnce(RpcReplyPort<R>) -> M,
    {
        let timeout = self.timeout.unwrap_or(timeout);
        let bound = (timeout != Duration::MAX).then_some(timeout);
        let (port, reply) = crate::handle::reply_port(bound);
        // A call is a cast of a message that carries its reply port, then a wait: the incarnation
        // is borrowed for the send only, so no reference to it is taken (its count is shared with
        // the actor's own thread), and a request refused by a dying incarnation goes to the next.
        self.cast(request(port)).await?;
        match crate::handle::wait_reply(reply, bound).await {
            CallResult::Success(reply) => Ok(reply),
            CallResult::Timeout => Err(CallError::Timeout(timeout)),
            CallResult::SenderError => Err(CallError::Stopped),
        }
    }

    /// [`call`](Self::call) for a method that returns `Result<T, E>`: its `Err` is
    /// [`CallError::Handler`].
    pub async fn call_result<T, E, F>(
        &self,
        request: F,
        timeout: Duration,
    ) -> Result<T, CallError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(RpcReplyPort<Result<T, E>>) -> M,
    {
        match self.call(request, timeout).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CallError::Handler(e)),
            Err(e) => Err(e.widen()),
        }
    }
}

/// The future of [`Endpoint::cast`] (and of a generated client's cast methods): sends on its first
/// poll, and if the child is restarting, waits for it as [`ChildHandle::cast`] does.
///
/// A named future rather than an `async fn`'s: a cast that is delivered at once (nearly all of
/// them) runs no state machine, and the wait, which is rare, is boxed so that it does not make
/// every cast's future larger.
///
/// ```
/// use canopy::service::{CallError, Cast, ServiceActor};
/// struct Counter { n: u64 }
/// #[canopy::service]
/// impl Counter {
///     fn init() -> Self { Counter { n: 0 } }
///     fn add(&mut self, k: u64) { self.n += k; }
///     fn get(&self) -> u64 { self.n }
/// }
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (actor, _) = canopy::ractor::Actor::spawn(None, ServiceActor::<Counter>::new(), ()).await?;
/// let counter = CounterClient::from_actor(actor.clone());
/// let unsent: Cast<'_, _> = counter.add(1);
/// drop(unsent); // never polled: nothing was sent
/// let sent: Result<(), CallError> = counter.add(2).await;
/// sent?;
/// assert_eq!(counter.get().await?, 2);
/// actor.stop(None);
/// # Ok(()) }
/// ```
#[must_use = "a cast sends nothing until it is awaited"]
pub struct Cast<'a, M: Message> {
    endpoint: &'a Endpoint<M>,
    /// The message, until it is sent.
    msg: Option<M>,
    /// Waiting for the handle's child to come back.
    waiting: Option<BoxFuture<'a, Result<(), HandleError>>>,
}

// The message is moved out on the first poll and never pinned; the wait is pinned in its box.
impl<M: Message> Unpin for Cast<'_, M> {}

impl<M: Message> fmt::Debug for Cast<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cast")
            .field("endpoint", self.endpoint)
            .field("sent", &self.msg.is_none())
            .finish_non_exhaustive()
    }
}

impl<M: Message> Future for Cast<'_, M> {
    type Output = Result<(), CallError>;

    #[inline]
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        let waiting = match &mut this.waiting {
            Some(waiting) => waiting,
            None => match this.endpoint.try_cast(&mut this.msg) {
                Ok(Sent::Delivered) => return std::task::Poll::Ready(Ok(())),
                Err(e) => return std::task::Poll::Ready(Err(e)),
                // Refused with the message left in its slot: wait for the child with it.
                Ok(Sent::Refused) => match this.msg.take() {
                    Some(msg) => this.waiting.insert(this.endpoint.wait_and_cast(msg)),
                    None => panic!("a cast polled again after it completed"),
                },
            },
        };
        waiting.as_mut().poll(cx).map_err(CallError::Unreachable)
    }
}

/// Why a call or a cast through a client failed. `E` is the error type of a method that returns
/// `Result<T, E>`; for every other method it is [`Infallible`] (there is no `Handler` error).
///
/// ```
/// use std::time::Duration;
/// use canopy::service::CallError;
/// let e: CallError<String> = CallError::Handler("no such key".into());
/// assert_eq!(e.to_string(), "the handler failed: no such key");
/// let t: CallError = CallError::Timeout(Duration::from_millis(500));
/// assert_eq!(t.to_string(), "no reply within 500ms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E = Infallible> {
    /// The method returned this error; the service goes on.
    Handler(E),
    /// No reply came within the call's timeout. The message may still be handled later.
    Timeout(Duration),
    /// The service stopped or crashed before it replied.
    Stopped,
    /// The message could not be delivered: the child is gone, stopped, did not come back from a
    /// restart in time, or too many sends were already waiting for it.
    Unreachable(HandleError),
}

impl CallError {
    /// The same error, as the error of a method whose handler error type is `E`.
    ///
    /// ```
    /// use canopy::service::CallError;
    /// let e: CallError<std::io::Error> = CallError::Stopped.widen();
    /// assert!(matches!(e, CallError::Stopped));
    /// ```
    pub fn widen<E>(self) -> CallError<E> {
        match self {
            CallError::Handler(never) => match never {},
            CallError::Timeout(d) => CallError::Timeout(d),
            CallError::Stopped => CallError::Stopped,
            CallError::Unreachable(e) => CallError::Unreachable(e),
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Handler(e) => write!(f, "the handler failed: {e}"),
            CallError::Timeout(d) => write!(f, "no reply within {d:?}"),
            CallError::Stopped => f.write_str("the service stopped before it replied"),
            CallError::Unreachable(e) => write!(f, "not delivered: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for CallError<E> {}

// -------------------------------------------------------------------------------------------------
// Counters

/// What a service's counters said when read; see [`stats`].
///
/// ```
/// let idle = canopy::service::StatsSnapshot { service: "Counter", handled: 3, current: None };
/// assert!(idle.current.is_none()); // waiting for a message
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// The service's type name.
    pub service: &'static str,
    /// Messages handled to the end by this incarnation. A call is counted before its reply goes
    /// out, so a read made after a call returned counts it (and shows the service idle, unless
    /// another message is being handled).
    pub handled: u64,
    /// How long the message being handled now has been (on a clock of a few milliseconds'
    /// resolution); `None` while the service waits for a message.
    pub current: Option<Duration>,
}

/// A running service's counters, written only by the service's own task.
struct ServiceStats {
    name: &'static str,
    /// Puts a fault message in this service's mailbox (its type is known only where it started).
    #[cfg(feature = "chaos")]
    inject: fn(&ActorCell, __private::Fault) -> bool,
    handled: AtomicU64,
    /// When the current message began, on the coarse clock, plus one; 0 while idle.
    busy_since: AtomicU64,
}

impl ServiceStats {
    // A coarse clock read and relaxed loads and stores, a few per message: the counters must cost
    // the call benchmark at most 2%, and a precise clock read alone costs more.
    #[inline]
    fn begin(&self) {
        self.busy_since
            .store(coarse_now_nanos().saturating_add(1), Ordering::Relaxed);
    }

    /// The message is handled: counted, and the service idle. Called twice for a call (before its
    /// reply goes out, then after the handler returns), which counts it once.
    #[inline]
    fn end(&self) {
        // One writer (the service's task), so loads and stores rather than locked operations.
        if self.busy_since.load(Ordering::Relaxed) != 0 {
            let n = self.handled.load(Ordering::Relaxed);
            self.handled.store(n.wrapping_add(1), Ordering::Relaxed);
            self.busy_since.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(target_os = "linux")]
fn coarse_now_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a live, writable one. With
    // a clock that every Linux since 2.6.32 has it does not fail; if it did, `ts` would stay zero
    // and the handler's elapsed time would read as since boot, never undefined behaviour.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn coarse_now_nanos() -> u64 {
    static BASE: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    BASE.elapsed().as_nanos() as u64
}

/// Keyed by process: every service's start and stop writes here, and a snapshot reads it once per
/// child, so it hashes with the supervisor maps' hasher rather than SipHash.
type StatsMap = HashMap<ActorId, Weak<ServiceStats>, PidHash>;

static STATS: LazyLock<RwLock<StatsMap>> = LazyLock::new(|| RwLock::new(StatsMap::default()));

/// Publishes a service's counters, once its constructor has succeeded.
fn register(cell: &ActorCell, stats: &Arc<ServiceStats>) {
    STATS.write().insert(cell.get_id(), Arc::downgrade(stats));
}

fn unregister(id: &ActorId) {
    STATS.write().remove(id);
}

#[cfg(feature = "chaos")]
fn inject<S: Service>(cell: &ActorCell, fault: __private::Fault) -> bool {
    S::__fault(fault).is_some_and(|msg| cell.send_message::<S::Msg>(msg).is_ok())
}

/// Whether `cell` is a running service, which can take the chaos monkey's faults.
#[cfg(feature = "chaos")]
pub(crate) fn takes_faults(cell: &ActorCell) -> bool {
    STATS
        .read()
        .get(&cell.get_id())
        .is_some_and(|s| s.strong_count() > 0)
}

/// Puts `fault` in the mailbox of the service running as `cell`; false if it is not one (any
/// more) or cannot take it.
#[cfg(feature = "chaos")]
pub(crate) fn inject_fault(cell: &ActorCell, fault: __private::Fault) -> bool {
    let Some(stats) = STATS.read().get(&cell.get_id()).and_then(Weak::upgrade) else {
        return false;
    };
    (stats.inject)(cell, fault)
}

/// The counters of the service running as `cell`, read without a message to it; `None` if `cell`
/// is not a running service.
///
/// ```
/// struct Idle;
/// #[canopy::service]
/// impl Idle { fn init() -> Self { Idle } fn nop(&self) {} }
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let idle = canopy::service::ServiceActor::<Idle>::new();
/// let (actor, _) = canopy::ractor::Actor::spawn(None, idle, ()).await?;
/// let stats = canopy::service::stats(&actor.get_cell()).expect("a running service");
/// assert_eq!((stats.handled, stats.current), (0, None));
/// actor.stop(None);
/// # Ok(()) }
/// ```
pub fn stats(cell: &ActorCell) -> Option<StatsSnapshot> {
    StatsReader::new().get(cell)
}

/// Reads the counters of many services under one acquisition of the registry's lock: what a
/// snapshot uses for the children of a supervisor, rather than one [`stats`] call (one lock
/// acquisition) each.
pub(crate) struct StatsReader {
    map: RwLockReadGuard<'static, StatsMap>,
    reads: u32,
}

impl StatsReader {
    pub(crate) fn new() -> StatsReader {
        StatsReader {
            map: STATS.read(),
            reads: 0,
        }
    }

    /// [`stats`] of `cell`.
    pub(crate) fn get(&mut self, cell: &ActorCell) -> Option<StatsSnapshot> {
        // A service starting or stopping waits for the write lock: a reader of a big supervisor
        // lets it in every so often rather than hold it out for the whole read.
        self.reads = self.reads.wrapping_add(1);
        if self.reads % 64 == 0 {
            RwLockReadGuard::bump(&mut self.map);
        }
        if self.map.is_empty() {
            return None;
        }
        let stats = self.map.get(&cell.get_id())?.upgrade()?;
        let since = stats.busy_since.load(Ordering::Relaxed);
        Some(StatsSnapshot {
            service: stats.name,
            handled: stats.handled.load(Ordering::Relaxed),
            current: (since != 0)
                .then(|| Duration::from_nanos(coarse_now_nanos().saturating_sub(since - 1))),
        })
    }
}

// -------------------------------------------------------------------------------------------------
// Children

/// The child-spec defaults a type declares (`#[canopy::service(restart = ..)]`,
/// `#[child(..)]`): applied by [`Child::child_spec`], and overridden per field in a
/// `#[derive(Supervisor)]` struct.
///
/// ```
/// use canopy::service::ChildDefaults;
/// use canopy::{ChildKind, Restart};
/// let d = ChildDefaults { restart: Restart::Transient, ..ChildDefaults::WORKER };
/// assert_eq!(d.kind, ChildKind::Worker);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChildDefaults {
    /// Restart type.
    pub restart: Restart,
    /// Shutdown policy; `None` follows the kind.
    pub shutdown: Option<Shutdown>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Significant for `auto_shutdown`.
    pub significant: bool,
    /// Restart backoff.
    pub backoff: Option<Backoff>,
}

impl ChildDefaults {
    /// A permanent worker, shut down within 5 s, without backoff: OTP's defaults.
    ///
    /// ```
    /// use canopy::service::ChildDefaults;
    /// assert_eq!(ChildDefaults::WORKER.restart, canopy::Restart::Permanent);
    /// ```
    pub const WORKER: ChildDefaults = ChildDefaults {
        restart: Restart::Permanent,
        shutdown: None,
        kind: ChildKind::Worker,
        significant: false,
        backoff: None,
    };

    /// A permanent supervisor, shut down with `infinity`.
    ///
    /// ```
    /// use canopy::service::ChildDefaults;
    /// assert_eq!(ChildDefaults::SUPERVISOR.kind, canopy::ChildKind::Supervisor);
    /// ```
    pub const SUPERVISOR: ChildDefaults = ChildDefaults {
        kind: ChildKind::Supervisor,
        ..ChildDefaults::WORKER
    };

    /// `spec` with these settings.
    ///
    /// ```
    /// use canopy::service::ChildDefaults;
    /// use canopy::{ChildSpec, Restart, Start};
    /// let spec = ChildDefaults { restart: Restart::Temporary, ..ChildDefaults::WORKER }
    ///     .apply(ChildSpec::new("x", |_sup| async { Ok(Start::Ignore) }));
    /// assert_eq!(spec.get_restart(), Restart::Temporary);
    /// ```
    pub fn apply(self, spec: ChildSpec) -> ChildSpec {
        let mut spec = spec
            .restart(self.restart)
            .kind(self.kind)
            .significant(self.significant);
        if let Some(shutdown) = self.shutdown {
            spec = spec.shutdown(shutdown);
        }
        if let Some(backoff) = self.backoff {
            spec = spec.backoff(backoff);
        }
        spec
    }
}

/// Anything a supervisor can start with arguments and reach with a typed client: a service, a
/// hand-written actor with `#[derive(Child)]`, a `#[derive(Supervisor)]` struct, or a
/// [`Dynamic`] supervisor of one of them. The macros implement it; `#[derive(Supervisor)]` builds
/// on it.
///
/// ```
/// use canopy::service::Child;
/// struct Clock;
/// #[canopy::service(restart = temporary)]
/// impl Clock { fn init() -> Self { Clock } fn now(&self) -> u64 { 0 } }
/// let spec = <Clock as Child>::child_spec("clock", ());
/// assert_eq!(spec.get_restart(), canopy::Restart::Temporary);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a child canopy knows how to start",
    label = "not a canopy child",
    note = "a child is a `#[canopy::service]` type, a ractor actor with `#[derive(canopy::Child)]`, \
            a `#[derive(canopy::Supervisor)]` struct, or `canopy::Dynamic<T>` of one of them"
)]
pub trait Child: Sized + 'static {
    /// What a start needs (cloned for each restart).
    type Args: Clone + Send + Sync + 'static;
    /// The typed client a supervisor gives for it.
    type Client: Clone + fmt::Debug + Send + Sync + 'static;

    /// The restart type of its [`defaults`](Self::defaults), as a constant, so that
    /// `#[derive(Supervisor)]` can reject a significant permanent child at compile time.
    const RESTART: Restart = Restart::Permanent;

    /// The defaults its spec gets.
    fn defaults() -> ChildDefaults;

    /// Spawns it linked to the supervisor cell `sup`.
    fn spawn(sup: ActorCell, args: Self::Args) -> BoxFuture<'static, Result<Start, BoxError>>;

    /// Its spec under `id`, with its [`defaults`](Self::defaults).
    fn child_spec(id: impl Into<String>, args: Self::Args) -> ChildSpec {
        Self::defaults().apply(ChildSpec::new(id, move |sup| {
            Self::spawn(sup, args.clone())
        }))
    }

    /// A client to child `id` of the static supervisor at `sup_path`, which need not be running
    /// now.
    #[doc(hidden)]
    fn client_at(sup_path: &str, id: &str) -> Result<Self::Client, ChildError>;

    /// A client to its child `id` of `sup`; it keeps working across restarts.
    fn client(sup: &SupervisorRef, id: &str) -> Result<Self::Client, ChildError> {
        let path = sup.path().ok_or(ChildError::SupervisorDown)?;
        if let Some(node) = introspect::node_at(&path) {
            if node.children.child(id).is_none() {
                return Err(ChildError::NotFound(id.to_string()));
            }
        }
        Self::client_at(&path, id)
    }

    /// A client to `child`, a child of the dynamic supervisor `sup`.
    fn dynamic_client(
        sup: &DynamicRef<Self::Args>,
        child: &ActorCell,
    ) -> Result<Self::Client, ChildError>;
}

/// The static supervisor running at `path` now, if any.
#[doc(hidden)]
pub fn supervisor_at(path: &str) -> Option<SupervisorRef> {
    SupervisorRef::from_cell(introspect::node_at(path)?.cell.clone())
}

/// [`Child::client_at`] for anything reached through a [`ChildHandle`].
#[doc(hidden)]
pub fn handle_at<M: Message>(sup_path: &str, id: &str) -> Result<ChildHandle<M>, ChildError> {
    ChildHandle::at_path(sup_path.to_string(), id.to_string()).map_err(ChildError::Spec)
}

/// [`Child::spawn`] for an actor value and its arguments.
#[doc(hidden)]
pub fn spawn_actor<A>(
    actor: A,
    sup: ActorCell,
    args: A::Arguments,
) -> BoxFuture<'static, Result<Start, BoxError>>
where
    A: Actor,
{
    async move {
        let (child, _) = Actor::spawn_linked(None, actor, args, sup).await?;
        Ok(Start::from(child))
    }
    .boxed()
}

impl<S: Service> ServiceActor<S> {
    /// [`Child::spawn`] for the service `S`.
    #[doc(hidden)]
    pub fn spawn_child(
        sup: ActorCell,
        args: S::Args,
    ) -> BoxFuture<'static, Result<Start, BoxError>> {
        spawn_actor(ServiceActor::<S>::new(), sup, args)
    }
}

/// A dynamic supervisor whose children are `T`s, as a field of a `#[derive(Supervisor)]` struct:
/// it takes no arguments and its client, a [`DynamicClient<T>`], starts typed children.
///
/// ```
/// use canopy::{Dynamic, Supervisor as _};
/// struct Job { id: u32 }
/// #[canopy::service(restart = temporary)]
/// impl Job {
///     fn init(id: u32) -> Self { Job { id } }
///     pub fn id(&self) -> u32 { self.id }
/// }
///
/// #[derive(canopy::Supervisor)]
/// struct Jobs {
///     pool: Dynamic<Job>,
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jobs = Jobs::start(JobsArgs {}).await?;
/// let job = jobs.pool.start_child(7).await?;
/// assert_eq!(job.id().await?, 7);
/// jobs.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Dynamic<T>(PhantomData<fn() -> T>);

impl<T: Child> Dynamic<T> {
    /// The dynamic supervisor's template: `T`'s start function with `T`'s defaults.
    ///
    /// ```
    /// struct Session;
    /// #[canopy::service(restart = temporary)]
    /// impl Session { fn init(_user: String) -> Self { Session } }
    /// let template = canopy::Dynamic::<Session>::spec().max_children(10_000);
    /// assert_eq!(template.get_restart(), canopy::Restart::Temporary);
    /// ```
    pub fn spec() -> DynamicSpec<T::Args> {
        let d = T::defaults();
        let mut spec = DynamicSpec::new(T::spawn).restart(d.restart).kind(d.kind);
        if let Some(shutdown) = d.shutdown {
            spec = spec.shutdown(shutdown);
        }
        if let Some(backoff) = d.backoff {
            spec = spec.backoff(backoff);
        }
        spec
    }
}

impl<T: Child> Child for Dynamic<T> {
    type Args = ();
    type Client = DynamicClient<T>;

    fn defaults() -> ChildDefaults {
        ChildDefaults::SUPERVISOR
    }

    fn spawn(sup: ActorCell, _args: ()) -> BoxFuture<'static, Result<Start, BoxError>> {
        async move {
            let child = DynamicSupervisor::start_linked(Self::spec(), sup).await?;
            Ok(Start::from(child.cell()))
        }
        .boxed()
    }

    fn child_spec(id: impl Into<String>, _args: ()) -> ChildSpec {
        // Named by its id in paths, which is how its client finds it.
        ChildSpec::dynamic(id, Self::spec())
    }

    fn client_at(sup_path: &str, id: &str) -> Result<DynamicClient<T>, ChildError> {
        Ok(DynamicClient {
            path: format!("{sup_path}/{id}"),
            _child: PhantomData,
        })
    }

    fn dynamic_client(
        _sup: &DynamicRef<()>,
        child: &ActorCell,
    ) -> Result<Self::Client, ChildError> {
        let path = introspect::path_of(child).ok_or(ChildError::SupervisorDown)?;
        Ok(DynamicClient {
            path,
            _child: PhantomData,
        })
    }
}

/// The client of a [`Dynamic<T>`] child: starts `T`s and gives their typed clients. It finds the
/// dynamic supervisor by path, so it keeps working after the supervisor is restarted (with no
/// children: a restarted dynamic supervisor starts empty). See [`Dynamic`] for an example.
///
/// ```
/// # struct Job;
/// # #[canopy::service] impl Job { fn init(_n: u32) -> Self { Job } }
/// # #[derive(canopy::Supervisor)] struct Jobs { pool: canopy::Dynamic<Job> }
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jobs = Jobs::start(JobsArgs {}).await?;
/// let pool: &canopy::service::DynamicClient<Job> = &jobs.pool;
/// pool.start_child(1).await?;
/// assert_eq!(pool.supervisor()?.count_children().await?.active, 1);
/// jobs.shutdown().await;
/// # Ok(()) }
/// ```
pub struct DynamicClient<T> {
    path: String,
    _child: PhantomData<fn() -> T>,
}

impl<T> Clone for DynamicClient<T> {
    fn clone(&self) -> Self {
        DynamicClient {
            path: self.path.clone(),
            _child: PhantomData,
        }
    }
}

impl<T> fmt::Debug for DynamicClient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DynamicClient").field(&self.path).finish()
    }
}

impl<T: Child> DynamicClient<T> {
    /// The dynamic supervisor's current incarnation.
    pub fn supervisor(&self) -> Result<DynamicRef<T::Args>, ChildError> {
        let node = introspect::node_at(&self.path).ok_or(ChildError::SupervisorDown)?;
        DynamicRef::from_cell(node.cell.clone()).ok_or(ChildError::SupervisorDown)
    }

    /// Starts a child with `args` and returns its client. A child that ignored its start is
    /// [`ChildError::StartFailed`] with the reason `ignored`.
    pub async fn start_child(&self, args: T::Args) -> Result<T::Client, ChildError> {
        let sup = self.supervisor()?;
        let started = sup.start_child(args).await?;
        let cell = started.cell.ok_or_else(|| ChildError::StartFailed {
            id: String::new(),
            reason: "ignored".into(),
        })?;
        T::dynamic_client(&sup, &cell)
    }
}

/// What generated code names, so that a user's `Cargo.toml` needs only canopy.
#[doc(hidden)]
pub mod __private {
    pub use futures::future::BoxFuture;
    pub use futures::FutureExt;

    /// A fault the chaos monkey injects into a service, as a message of its own.
    #[cfg(feature = "chaos")]
    #[derive(Debug)]
    pub enum Fault {
        /// The handler panics.
        Panic,
        /// The handler returns an error.
        Error,
        /// The handler waits this long on tokio's timer.
        Stall(std::time::Duration),
    }

    /// Without the `chaos` feature no fault exists: the generated variant that carries one can
    /// never be built, and its arm compiles to nothing.
    #[cfg(not(feature = "chaos"))]
    #[derive(Debug)]
    pub enum Fault {}

    /// Runs an injected fault inside the service's handler.
    pub async fn deliver<S: super::Service>(
        fault: Fault,
        ctx: &super::Ctx<S>,
    ) -> Result<(), crate::BoxError> {
        #[cfg(feature = "chaos")]
        {
            tracing::info!(
                target: "canopy::chaos",
                service = S::NAME,
                actor = %ctx.inner.myself.get_id(),
                fault = ?fault,
                "fault delivered"
            );
            match fault {
                Fault::Panic => panic!("{}", crate::chaos::PANIC_MESSAGE),
                Fault::Error => Err(crate::chaos::ERROR_MESSAGE.into()),
                Fault::Stall(d) => {
                    tokio::time::sleep_until(crate::deadline_in(d)).await;
                    Ok(())
                }
            }
        }
        #[cfg(not(feature = "chaos"))]
        {
            let _ = ctx;
            match fault {}
        }
    }

    /// Counts the message a call's handler has just handled, before its reply goes out: a caller
    /// that reads [`stats`](crate::service::stats) once the reply came sees it counted.
    pub fn handled<S: crate::service::Service>(ctx: &crate::service::Ctx<S>) {
        ctx.inner.stats.end();
    }

    /// Turns a method's error into the actor's failure.
    pub fn fail<E: Into<crate::BoxError>>(e: E) -> crate::BoxError {
        e.into()
    }

    /// A field of a `#[derive(Supervisor)]` struct must be a child: the type error for one that
    /// is not lands on this call, spanned on the field's type.
    pub fn assert_child<T: crate::service::Child>() {}

    /// Fails compilation (as a constant's evaluation) for a significant permanent child.
    pub const fn check_significant(restart: crate::Restart) {
        if matches!(restart, crate::Restart::Permanent) {
            panic!(
                "a significant child cannot be permanent (OTP rejects it): \
                 give it `restart = transient` or `restart = temporary`"
            );
        }
    }
}
