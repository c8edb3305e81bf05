//! Dynamic supervisors: children started on demand from one template (OTP's `simple_one_for_one`,
//! Elixir's `DynamicSupervisor`; docs/semantics.md, "Dynamic supervisors").
//!
//! A [`DynamicSpec<A>`] is a child template: a start function that takes the supervisor's cell and
//! per-child arguments of type `A`, plus the restart type, shutdown policy and kind every child
//! shares, the restart budget, an optional `max_children` limit and an optional restart
//! [`Backoff`]. A [`DynamicSupervisor`] starts with no children; [`DynamicRef::start_child`] starts
//! one with its arguments, which the supervisor keeps (unless the template is temporary, as in OTP)
//! and gives again at every restart.
//!
//! How it differs from a static [`Supervisor`](struct@crate::Supervisor), as in OTP:
//!
//! - Children have no ids. Each gets an internal key that survives its restarts; `which_children`
//!   shows it as the child's id (`"1"`, `"2"`, …), and the introspection tree uses it in paths
//!   (`/app/pool/17`). The API names a child by its running cell.
//! - A child the supervisor does not restart (a transient child's normal exit, any exit of a
//!   temporary one, `terminate_child`, a restart that returns ignore) is gone: there is no
//!   `restart_child` or `delete_child`.
//! - Shutdown is parallel: every child is told to stop at once, one timer runs per distinct
//!   shutdown policy, and whatever is still alive when its timer fires is killed.
//! - `count_children` counts one spec (the template); `active` is the running children, and
//!   `workers`/`supervisors` count every child, restarting ones included.
//! - There is no auto-shutdown: a significant template is rejected
//!   ([`SpecError::SignificantDynamic`]).
//!
//! The decisions live in the pure [`core::DynCore`]; the actor in this module only carries them out.
//!
//! ```
//! use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
//! use canopy::Restart;
//! use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
//!
//! #[derive(Clone)]
//! struct Session;
//!
//! impl Actor for Session {
//!     type Msg = ();
//!     type State = String;
//!     type Arguments = String; // the user name, given to start_child
//!     async fn pre_start(&self, _me: ActorRef<()>, user: String) -> Result<String, ActorProcessingErr> {
//!         Ok(user)
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = DynamicSupervisor::start(
//!     DynamicSpec::actor(Session).restart(Restart::Transient).max_children(10_000),
//! )
//! .await?;
//! let alice = sessions.start_child("alice".to_string()).await?;
//! assert!(alice.cell.is_some());
//! assert_eq!(sessions.count_children().await?.active, 1);
//! sessions.shutdown().await; // stops every session at once
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use ractor::{Actor, ActorCell};

use crate::backoff::Backoff;
use crate::spec::{
    BoxError, ChildKind, Restart, Shutdown, SpecError, Start, DEFAULT_INTENSITY, DEFAULT_PERIOD,
};

pub mod core;
mod shell;

pub use shell::{DynamicRef, DynamicSupervisor};

#[cfg(test)]
mod tests;

/// What a dynamic child's start arguments must be: cloned for every restart, and sent to the
/// supervisor's mailbox with each `start_child`. Implemented for every such type.
///
/// ```
/// fn takes<A: canopy::dynamic::StartArgs>() {}
/// takes::<(String, std::net::SocketAddr)>();
/// takes::<std::sync::Arc<Vec<u8>>>();
/// ```
pub trait StartArgs: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> StartArgs for T {}

/// A dynamic child's start function: given the supervisor's cell and the child's arguments, spawn
/// the child linked to the cell and return once its `pre_start` has finished.
/// [`DynamicSpec::new`] builds one from any async closure.
///
/// ```
/// use futures::FutureExt;
/// let f: canopy::dynamic::DynStartFn<u32> =
///     std::sync::Arc::new(|_sup, _n| async { Ok(canopy::Start::Ignore) }.boxed());
/// # let _ = f;
/// ```
pub type DynStartFn<A> =
    Arc<dyn Fn(ActorCell, A) -> BoxFuture<'static, Result<Start, BoxError>> + Send + Sync>;

/// The template of a dynamic supervisor's children, and the supervisor's own settings.
///
/// Defaults: permanent, worker (so 5 s shutdown), 3 restarts in 5 s, no `max_children`, no backoff.
///
/// ```
/// use std::time::Duration;
/// use canopy::backoff::Backoff;
/// use canopy::dynamic::DynamicSpec;
/// use canopy::{Restart, Shutdown, Start};
///
/// let spec = DynamicSpec::new(|sup: canopy::ractor::ActorCell, port: u16| async move {
///     // spawn a listener on `port`, linked to `sup` ...
///     # let _ = (sup, port);
///     Ok(Start::Ignore)
/// })
/// .restart(Restart::Transient)
/// .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
/// .restart_intensity(10, Duration::from_secs(60))
/// .max_children(100)
/// .backoff(Backoff::new(Duration::from_millis(100), Duration::from_secs(10)));
/// assert!(spec.validate().is_ok());
/// ```
pub struct DynamicSpec<A> {
    pub(crate) start: DynStartFn<A>,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Option<Shutdown>,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
    pub(crate) intensity: u32,
    pub(crate) period: Duration,
    pub(crate) max_children: Option<usize>,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) name: Option<String>,
}

impl<A> Clone for DynamicSpec<A> {
    fn clone(&self) -> Self {
        DynamicSpec {
            start: self.start.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            significant: self.significant,
            intensity: self.intensity,
            period: self.period,
            max_children: self.max_children,
            backoff: self.backoff,
            name: self.name.clone(),
        }
    }
}

impl<A> fmt::Debug for DynamicSpec<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicSpec")
            .field("restart", &self.restart)
            .field("shutdown", &self.get_shutdown())
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .field("intensity", &self.intensity)
            .field("period", &self.period)
            .field("max_children", &self.max_children)
            .field("backoff", &self.backoff)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<A: StartArgs> DynamicSpec<A> {
    /// A template from a start function. The function gets the supervisor's cell and the child's
    /// arguments, must spawn the child linked to the cell (`spawn_linked`) and return after the
    /// child's `pre_start`. A panic in it is caught and treated as a start error.
    ///
    /// ```
    /// # #[derive(Clone)] struct Conn;
    /// # impl canopy::ractor::Actor for Conn {
    /// #     type Msg = (); type State = (); type Arguments = (String, u16);
    /// #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: Self::Arguments) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
    /// # }
    /// use canopy::{dynamic::DynamicSpec, Start};
    /// // Common settings live in the closure; each child brings its own port.
    /// let host = "db.internal".to_string();
    /// let spec = DynamicSpec::new(move |sup, port: u16| {
    ///     let args = (host.clone(), port);
    ///     async move {
    ///         let (conn, _) = canopy::ractor::Actor::spawn_linked(None, Conn, args, sup).await?;
    ///         Ok(Start::from(conn))
    ///     }
    /// });
    /// # let _ = spec;
    /// ```
    pub fn new<F, Fut>(start: F) -> Self
    where
        F: Fn(ActorCell, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Start, BoxError>> + Send + 'static,
    {
        DynamicSpec {
            start: Arc::new(move |sup, args| start(sup, args).boxed()),
            restart: Restart::Permanent,
            shutdown: None,
            kind: ChildKind::Worker,
            significant: false,
            intensity: DEFAULT_INTENSITY,
            period: DEFAULT_PERIOD,
            max_children: None,
            backoff: None,
            name: None,
        }
    }

    /// A template that spawns `actor` (cloned for every start) with the child's arguments as its
    /// `Arguments`.
    ///
    /// ```
    /// # #[derive(Clone)] struct Conn;
    /// # impl canopy::ractor::Actor for Conn {
    /// #     type Msg = (); type State = (); type Arguments = std::net::SocketAddr;
    /// #     async fn pre_start(&self, _: canopy::ractor::ActorRef<()>, _: Self::Arguments) -> Result<(), canopy::ractor::ActorProcessingErr> { Ok(()) }
    /// # }
    /// let spec: canopy::dynamic::DynamicSpec<std::net::SocketAddr> =
    ///     canopy::dynamic::DynamicSpec::actor(Conn);
    /// # let _ = spec;
    /// ```
    pub fn actor<T>(actor: T) -> Self
    where
        T: Actor<Arguments = A> + Clone,
    {
        DynamicSpec::new(move |sup, args| {
            let actor = actor.clone();
            async move {
                let (child, _) = Actor::spawn_linked(None, actor, args, sup).await?;
                Ok(Start::from(child))
            }
        })
    }
}

impl<A> DynamicSpec<A> {
    /// Sets the children's restart type (default `Permanent`).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the children's shutdown policy (default: 5 s for workers, infinity for supervisors).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// Sets the children's kind (default `Worker`); the default shutdown follows the kind.
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    /// Marks the template significant. Dynamic supervisors have no auto-shutdown, so validation
    /// rejects a significant template with [`SpecError::SignificantDynamic`], as recent OTP does.
    ///
    /// ```
    /// use canopy::{dynamic::DynamicSpec, Restart, SpecError, Start};
    /// let spec = DynamicSpec::new(|_sup, _args: ()| async { Ok(Start::Ignore) })
    ///     .restart(Restart::Temporary)
    ///     .significant(true);
    /// assert_eq!(spec.validate(), Err(SpecError::SignificantDynamic));
    /// ```
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// At most `intensity` restarts in any sliding window of `period` (default 3 in 5 s); one more
    /// and the supervisor stops every child and exits.
    pub fn restart_intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    /// Refuses `start_child` with [`MaxChildren`](crate::core::ChildError::MaxChildren) once this
    /// many children are running, restarting or waiting for a backed-off restart (default:
    /// unlimited).
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Delays restarts with `backoff`. A delayed restart counts against the restart intensity when
    /// it is scheduled, and a child that keeps failing without staying up escalates after the
    /// backoff's [`max_retries`](Backoff::max_retries) restarts in a row, however long its delays
    /// have grown; meanwhile the child shows as restarting with its next attempt time and the
    /// supervisor keeps answering. See [`backoff`](crate::backoff).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Names a top-level dynamic supervisor in introspection paths (`/<name>`, `dynamic` by
    /// default). Under a static supervisor it is named by its child id instead.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The restart type.
    pub fn get_restart(&self) -> Restart {
        self.restart
    }

    /// The shutdown policy, with the kind's default filled in.
    pub fn get_shutdown(&self) -> Shutdown {
        self.shutdown.unwrap_or(self.kind.default_shutdown())
    }

    /// The kind.
    pub fn get_kind(&self) -> ChildKind {
        self.kind
    }

    /// Whether the template is marked significant (which validation rejects).
    pub fn is_significant(&self) -> bool {
        self.significant
    }

    /// The restart intensity.
    pub fn get_intensity(&self) -> u32 {
        self.intensity
    }

    /// The restart period.
    pub fn get_period(&self) -> Duration {
        self.period
    }

    /// The child limit, if any.
    pub fn get_max_children(&self) -> Option<usize> {
        self.max_children
    }

    /// The backoff policy, if any.
    pub fn get_backoff(&self) -> Option<Backoff> {
        self.backoff
    }

    /// Checks the settings; the first problem found is returned.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::{dynamic::DynamicSpec, SpecError, Start};
    /// let spec = DynamicSpec::new(|_sup, _args: u32| async { Ok(Start::Ignore) });
    /// assert_eq!(spec.clone().max_children(0).validate(), Err(SpecError::ZeroMaxChildren));
    /// assert_eq!(
    ///     spec.restart_intensity(1, Duration::ZERO).validate(),
    ///     Err(SpecError::ZeroPeriod)
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.period.is_zero() {
            return Err(SpecError::ZeroPeriod);
        }
        if self.max_children == Some(0) {
            return Err(SpecError::ZeroMaxChildren);
        }
        if let Some(backoff) = &self.backoff {
            backoff.validate()?;
        }
        if self.significant {
            return Err(SpecError::SignificantDynamic);
        }
        if let Some(name) = &self.name {
            crate::spec::check_name(name)?;
        }
        Ok(())
    }
}
