//! The macros of [canopy](https://docs.rs/canopy): `#[canopy::service]`, `#[derive(canopy::Child)]`
//! and `#[derive(canopy::Supervisor)]`. Use them through `canopy`, which re-exports them; the code
//! they generate names only `::canopy::…` paths, so a crate that uses them depends on canopy
//! alone.
//!
//! Every misuse is a compile error spanned on the offending token that says what is accepted; all
//! the errors of one item are reported together, and the item itself is always emitted, with the
//! generated code for its parts that have no error (a method in error is left out of the client),
//! so the rest of the crate still type-checks and completion keeps working while you fix them.

use proc_macro::TokenStream;

mod attrs;
mod child;
mod service;
mod supervisor;

/// Turns an inherent `impl` block into a supervised actor with a typed client.
///
/// ```
/// use canopy::{ExitReason, Supervisor, SupervisorSpec};
/// use canopy::service::{CallError, Ctx};
///
/// pub struct Counter {
///     n: u64,
/// }
///
/// #[canopy::service(restart = transient, shutdown = "10s")]
/// impl Counter {
///     /// The constructor: its arguments are the child's start arguments.
///     fn init(start: u64) -> Self {
///         Counter { n: start }
///     }
///
///     /// Adds `k` (a cast: no return value).
///     pub fn add(&mut self, k: u64) {
///         self.n += k;
///     }
///
///     /// The count (a call).
///     pub fn get(&self) -> u64 {
///         self.n
///     }
///
///     /// Takes `k` away; refuses to go below zero (a call whose `Err` reaches the caller).
///     pub async fn take(&mut self, k: u64) -> Result<u64, String> {
///         self.n = self.n.checked_sub(k).ok_or("not enough")?;
///         Ok(self.n)
///     }
///
///     /// Adds one later, through a cast to itself.
///     #[call(timeout = "500ms")]
///     pub fn bump_later(&self, ctx: &Ctx<Self>) {
///         let me = ctx.client();
///         ctx.spawn(async move { let _ = me.add(1).await; });
///     }
///
///     #[on_stop]
///     fn stopped(&mut self, reason: ExitReason) {
///         println!("counter stopped at {} ({reason:?})", self.n);
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sup = Supervisor::start(SupervisorSpec::default().child(Counter::child_spec("counter", 1)))
///     .await?;
/// let counter = CounterClient::new(&sup, "counter")?;
/// counter.add(2).await?;
/// assert_eq!(counter.get().await?, 3);
/// assert_eq!(counter.take(5).await, Err(CallError::Handler("not enough".to_string())));
/// assert_eq!(counter.take(1).await?, 2);
/// sup.shutdown().await;
/// # Ok(()) }
/// ```
///
/// # What becomes what
///
/// - The **constructor** is the associated function named `init` (or marked `#[init]`), sync or
///   `async`, returning `Self` or `Result<Self, E>` with `E: Into<canopy::BoxError>` (a `String`,
///   a `&'static str` or any error type). It is the actor's `pre_start`: an `Err` or a panic fails
///   the start with that message. Its arguments are the child's start arguments: `()` for none,
///   the type itself for one, a tuple in order for several. Exactly one is required.
/// - Every method taking **`&self` or `&mut self`** is a message. Without a return value it is a
///   **cast** (the client returns once the message is in the mailbox); with one it is a **call**
///   (the client waits for the reply). A call returning `Result<T, E>` gives the caller
///   `Result<T, CallError<E>>`, its `Err` as `CallError::Handler(E)`, and the service goes on. A
///   `#[cast]` method may return `Result<(), E>`: an `Err` fails the actor, and its restart type
///   applies. Methods may be sync or `async`.
/// - An optional **`#[on_stop]`** method, `fn stopped(&mut self, reason: canopy::ExitReason)`,
///   runs when the actor stops: with `Error(..)` after a method failed or panicked, with the
///   reason given to `Ctx::stop`, and with `Shutdown` for a stop asked from outside (its
///   supervisor, `stop`, a drain). A kill skips it, as in OTP.
/// - A parameter of type **`Ctx<Self>` or `&Ctx<Self>`** (any name, any position, in a method,
///   the constructor or the hook) is the context, not an argument: the actor's own reference, a
///   client to itself, tasks that end with the actor, `stop` with a reason.
/// - Associated functions without `self` (other than the constructor) and methods marked
///   `#[skip]` are left alone.
///
/// # What it generates
///
/// - A private message enum, inside an anonymous `const _` block: no name leaks into your module,
///   so two services in one module may both have a `get`. Reach it as
///   `<Counter as canopy::service::Service>::Msg`.
/// - `impl canopy::service::Service` and `impl canopy::service::Child` for the type, and an
///   inherent `Counter::child_spec(id, args) -> canopy::ChildSpec` with the attribute's defaults.
/// - `pub struct CounterClient` (generics and where clauses carried over), `Clone` and `Debug`,
///   built on the restart-transparent `canopy::handle::ChildHandle`:
///   `CounterClient::new(&sup, "id")`, `from_handle(handle)`, `from_actor(actor_ref)`,
///   `with_timeout(duration)` (every call of the returned client; `Duration::MAX` for none),
///   `endpoint()`, `current()`, and one `async fn` per message with the method's name,
///   visibility, arguments and doc comments, returning `Result<_, canopy::service::CallError>`.
///
/// # Attribute grammar
///
/// ```text
/// #[canopy::service( key, … )]          every key optional, in any order
///     restart     = permanent | transient | temporary         default permanent
///     shutdown    = brutal_kill | "<duration>" | infinity | drain("<duration>")   default "5s"
///     significant                                             needs transient or temporary
///     backoff(min = "<duration>", max = "<duration>"
///             [, jitter = <0.0..=1.0>] [, reset_after = "<duration>"] [, max_retries = <n>])
///     timeout     = "<duration>" | infinity                   every call's default; else 5 s
///     client      = <Ident>                                   default <Type>Client
///
/// on a method:
///     #[call]                       a call even without a return value (waits until handled)
///     #[call(timeout = "<duration>" | infinity)]
///     #[cast]                       a cast; may return Result<(), E> (an Err fails the actor)
///     #[on_stop]                    the stop hook
///     #[init]                       the constructor, when it is not named `init`
///     #[skip]                       not a message
///
/// <duration> = <whole number><unit>, unit one of ns us ms s m h: "500ms", "5s", "2m", "1h"
/// ```
///
/// # Rejected at compile time
///
/// A trait impl; lifetime or const generics on the service; a method taking `self` by value or
/// another receiver; reference parameters (other than `&Ctx<Self>`) or borrowed data in arguments
/// or replies (other than `'static`); `impl Trait` parameters or returns; generic, `unsafe` or
/// `extern` methods; a method named like one of the client's own (`new`, `from_handle`,
/// `from_actor`, `with_timeout`, `endpoint`, `current`); no constructor, or two; a constructor
/// with `self` or returning something else than `Self`/`Result<Self, E>`; two `#[on_stop]` hooks;
/// `significant` without `restart = transient | temporary`; unknown keys and malformed values.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    service::expand(args.into(), input.into()).into()
}

/// Child-spec defaults on a hand-written ractor actor, so that `MyActor::child_spec(id, args)`
/// needs nothing else.
///
/// The actor value is made with `Default` for every start (the start arguments are the actor's
/// `Arguments`), so the type must be `Default`; its `Arguments` must be `Clone + Send + Sync`
/// (cloned for each restart). The client a supervisor gives for it is a
/// `canopy::handle::ChildHandle<Msg>`.
///
/// ```
/// use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
/// use canopy::{Restart, Shutdown};
///
/// #[derive(Default, canopy::Child)]
/// #[child(restart = transient, shutdown = drain("2s"), backoff(min = "100ms", max = "10s"))]
/// struct Listener;
///
/// impl Actor for Listener {
///     type Msg = ();
///     type State = ();
///     type Arguments = u16;
///     async fn pre_start(&self, _: ActorRef<()>, _port: u16) -> Result<(), ActorProcessingErr> {
///         Ok(())
///     }
/// }
///
/// let spec = Listener::child_spec("listener", 8080);
/// assert_eq!(spec.get_restart(), Restart::Transient);
/// assert_eq!(spec.get_shutdown(), Shutdown::Drain(std::time::Duration::from_secs(2)));
/// assert!(spec.get_backoff().is_some());
/// ```
///
/// # Attribute grammar
///
/// ```text
/// #[child( key, … )]                    every key optional, in any order
///     restart     = permanent | transient | temporary         default permanent
///     shutdown    = brutal_kill | "<duration>" | infinity | drain("<duration>")
///                                                             default "5s" (infinity for supervisors)
///     kind        = worker | supervisor                       default worker
///     significant                                             needs transient or temporary
///     backoff(min = "<duration>", max = "<duration>"
///             [, jitter = <0.0..=1.0>] [, reset_after = "<duration>"] [, max_retries = <n>])
///
/// <duration> = <whole number><unit>, unit one of ns us ms s m h: "500ms", "5s", "2m", "1h"
/// ```
#[proc_macro_derive(Child, attributes(child))]
pub fn derive_child(input: TokenStream) -> TokenStream {
    child::expand(input.into()).into()
}

/// A supervisor declared as a struct: one field per child, field order is start order (reverse
/// is stop order).
///
/// A field's type is a child: a `#[canopy::service]` type, an actor with
/// `#[derive(canopy::Child)]`, another `#[derive(canopy::Supervisor)]` struct (a nested
/// supervisor), or `canopy::Dynamic<T>` (a dynamic supervisor of `T`s). The struct is a
/// declaration: it is never built.
///
/// ```
/// use canopy::Dynamic;
///
/// struct Db { url: String }
/// #[canopy::service]
/// impl Db {
///     fn init(url: String) -> Self { Db { url } }
///     pub fn url(&self) -> String { self.url.clone() }
/// }
///
/// struct Listener { accepted: u64 }
/// #[canopy::service(restart = permanent)]
/// impl Listener {
///     fn init(_port: u16) -> Self { Listener { accepted: 0 } }
///     pub fn accept(&mut self) { self.accepted += 1; }
///     pub fn accept_count(&self) -> u64 { self.accepted }
/// }
///
/// struct Job;
/// #[canopy::service(restart = temporary)]
/// impl Job {
///     fn init(_n: u32) -> Self { Job }
///     pub fn ping(&self) -> bool { true }
/// }
///
/// #[derive(canopy::Supervisor)]
/// #[supervisor(strategy = rest_for_one, intensity = 3, period = "5s")]
/// struct Web {
///     db: Db,
///     #[child(shutdown = "30s")]
///     listener: Listener,
///     jobs: Dynamic<Job>,
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let web = Web::start(WebArgs { db: "postgres://db".into(), listener: 8080 }).await?;
/// web.listener.accept().await?;
/// assert_eq!(web.listener.accept_count().await?, 1);
/// assert_eq!(web.db.url().await?, "postgres://db");
/// let job = web.jobs.start_child(1).await?;
/// assert!(job.ping().await?);
/// web.shutdown().await; // jobs, listener, db
/// # Ok(()) }
/// ```
///
/// # What it generates
///
/// For `struct Web`, with the struct's visibility:
///
/// - `WebArgs`: one public field per child that takes arguments, of type
///   `<T as canopy::service::Child>::Args` (a missing one is a type error). A child whose
///   arguments are written in its attribute (`args = …`) and a `Dynamic<T>` have none.
/// - `WebHandles`: one public field per child with its typed client (a service's
///   `XClient`, an actor's `ChildHandle<Msg>`, a nested struct's handles, a `Dynamic<T>`'s
///   `canopy::service::DynamicClient<T>`), each finding its child by path, so they keep working
///   across restarts; and `supervisor()`, `path()`, `shutdown()`.
/// - `Web::spec(args) -> SupervisorSpec`, `Web::start(args) -> Result<WebHandles, StartError>`
///   (a top-level tree), `Web::handles(&SupervisorRef)`, `Web::child_spec(id, args)` and
///   `impl canopy::service::Child for Web`, so a struct nests in another as a field.
///
/// # Attribute grammar
///
/// ```text
/// on the struct:
/// #[supervisor( key, … )]               every key optional, in any order
///     strategy      = one_for_one | one_for_all | rest_for_one   default one_for_one
///     intensity     = <n>                                         default 3
///     period        = "<duration>"                                default "5s"
///     auto_shutdown = never | any_significant | all_significant   default never
///     name          = "<name>"                                    the top-level path; default "root"
///     backoff(min = "<duration>", max = "<duration>" [, jitter = ..] [, reset_after = ..] [, max_retries = ..])
/// #[child( restart = .., shutdown = .., significant, backoff(..) )]
///                                       the struct's own defaults as a child of another
///
/// on a field:
/// #[child( key, … )]
///     id          = "<id>"                                    default the field's name
///     args        = <expression>                              fixed arguments: no field in WebArgs
///     restart     = permanent | transient | temporary         default: the child type's
///     shutdown    = brutal_kill | "<duration>" | infinity | drain("<duration>")
///     significant                                             needs auto_shutdown and a non-permanent restart
///     backoff(min = "<duration>", max = "<duration>" [, jitter = ..] [, reset_after = ..] [, max_retries = ..])
/// ```
///
/// Rejected at compile time: enums, unions, tuple structs and generic structs; a field type that
/// is not a child; two children with one id; a significant child that is permanent (written on
/// the field, or its type's default) or under `auto_shutdown = never`; `args` on a `Dynamic<T>`;
/// unknown keys and malformed values.
#[proc_macro_derive(Supervisor, attributes(supervisor, child))]
pub fn derive_supervisor(input: TokenStream) -> TokenStream {
    supervisor::expand(input.into()).into()
}
