//! The HTTP observer (feature `observer`): the live tree over HTTP, for probes, Prometheus, tools
//! and a browser.
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /` | one page, no external assets: the live tree as a nested list with status colours, restart counts and last exits; expand/collapse, expand all, search by path |
//! | `GET /healthz` | liveness: 200 while the process is live |
//! | `GET /readyz` | readiness: 200 once the tree is up, 503 from the moment a stop is triggered |
//! | `GET /metrics` | the registry: canopy's [`TreeMetrics`] and your own metrics (OpenMetrics if the scraper asks for it, else text 0.0.4) |
//! | `GET /tree` | the [snapshot] as JSON; `?path=/app/web` for a subtree (404 if nothing is there), `&format=text` for the `pstree`-like text |
//! | `GET /events` | server-sent events: a `snapshot`, then a `diff` per change, with ids a reconnecting client resumes from (`Last-Event-ID`); a final `shutdown` event when the stop begins, then 204 |
//! | `POST /children/restart?path=…`, `POST /children/terminate?path=…` | only with [`Observer::mutations`], and only with its bearer token (401 without); 404 otherwise |
//!
//! **Inspection never messages the inspected.** Every read goes through the snapshot, which
//! copies each supervisor's state under its lock: a supervisor that is stuck or busy is still
//! shown. Only the mutating endpoints send anything, and they go through the supervisor's own API.
//!
//! **Loopback unless asked.** The observer binds `127.0.0.1:9470` ([`DEFAULT_ADDR`]); another
//! address is used only when given ([`Observer::addr`], [`Observer::listener`]).
//!
//! **The exit is observable.** Within an [`App`]: `/readyz` answers 503 from the trigger on,
//! `/metrics`, `/tree` and `/healthz` keep being served through the drain and the teardown until
//! the tree is down. `/events` ends with a `shutdown` event the moment the stop begins, so no open
//! stream holds the process. Then the observer's final hook writes the last metrics to a file
//! ([`Observer::write_final`]), pushes them to a Pushgateway ([`Observer::push_to`]), can linger
//! until one more scrape ([`Observer::linger`]), and stops the server, letting a response being
//! written finish. Final hooks run in the order they were added: attach the observer after your own
//! hooks, so that its last export includes what they counted.
//!
//! **Events are bounded.** `/events` polls the snapshot (every 200 ms by default) only while a
//! client listens, and sends what changed; a tree so big that a poll takes long is polled less
//! often, so that polling takes at most a tenth of a core. Each client can fall at most
//! [`client_buffer`](Observer::client_buffer) events behind before it is dropped; it then resumes
//! from its `Last-Event-ID`.
//!
//! With an [`App`], in one line:
//!
//! ```no_run
//! use canopy::{app::App, observer::Observer, SupervisorSpec};
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = App::new(SupervisorSpec::default()).observer(Observer::new())?;
//! app.run().await?; // http://127.0.0.1:9470/ until the app exits
//! # Ok(()) }
//! ```
//!
//! Without one:
//!
//! ```
//! use canopy::observer::Observer;
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?; // any free port
//! let observer = Observer::new().listener(listener).serve()?;
//! println!("open http://{}/", observer.local_addr());
//! observer.shutdown().await;
//! # Ok(()) }
//! ```

mod events;
mod push;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use push::{PushError, Pushgateway};

use crate::app::{App, Lifecycle};
use crate::health::{Health, ShutdownToken};
use crate::metrics::TreeMetrics;
use crate::snapshot::{self, TreeSnapshot};
use events::Hub;

const T: &str = "canopy::observer";

/// The page at `/`.
const PAGE: &str = include_str!("page.html");

/// Where the observer listens unless told otherwise: `127.0.0.1:9470`, reachable from this
/// machine only.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9470);

/// The observer's settings; [`App::observer`] or [`serve`](Observer::serve) starts it. See the
/// [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use canopy::observer::Observer;
/// let observer = Observer::new()
///     .port(9100)                               // still 127.0.0.1
///     .poll_interval(Duration::from_millis(500))
///     .linger(Duration::from_secs(15));         // one scrape interval
/// # let _ = observer;
/// ```
pub struct Observer {
    addr: SocketAddr,
    listener: Option<std::net::TcpListener>,
    registry: Option<Registry>,
    health: Option<Health>,
    lifecycle: Option<Lifecycle>,
    token: Option<String>,
    poll_interval: Duration,
    client_buffer: usize,
    linger: Option<Duration>,
    push: Option<Pushgateway>,
    final_file: Option<PathBuf>,
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token stays out of logs.
        f.debug_struct("Observer")
            .field("addr", &self.addr)
            .field("mutations", &self.token.is_some())
            .field("poll_interval", &self.poll_interval)
            .field("client_buffer", &self.client_buffer)
            .field("linger", &self.linger)
            .field("push", &self.push)
            .field("final_file", &self.final_file)
            .finish_non_exhaustive()
    }
}

impl Default for Observer {
    fn default() -> Self {
        Observer::new()
    }
}

/// Why the observer could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ObserverError {
    /// The address could not be bound (in use, not this machine's, no permission).
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The listener given could not be used.
    Listener(io::Error),
    /// There is no tokio runtime to serve on: start the observer inside one.
    NoRuntime,
    /// The bearer token for mutations is empty.
    EmptyToken,
}

impl fmt::Display for ObserverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObserverError::Bind { addr, source } => {
                write!(f, "the observer cannot listen on {addr}: {source}")
            }
            ObserverError::Listener(e) => write!(f, "the observer's listener is unusable: {e}"),
            ObserverError::NoRuntime => {
                f.write_str("the observer must be started inside a tokio runtime")
            }
            ObserverError::EmptyToken => f.write_str("the observer's mutation token is empty"),
        }
    }
}

impl std::error::Error for ObserverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ObserverError::Bind { source, .. } => Some(source),
            ObserverError::Listener(e) => Some(e),
            _ => None,
        }
    }
}

impl Observer {
    /// An observer on [`DEFAULT_ADDR`], read-only, polling every 200 ms for `/events`, with a
    /// 64-event buffer per client and no final export.
    ///
    /// ```
    /// let observer = canopy::observer::Observer::new(); // 127.0.0.1:9470
    /// # let _ = observer;
    /// ```
    pub fn new() -> Self {
        Observer {
            addr: DEFAULT_ADDR,
            listener: None,
            registry: None,
            health: None,
            lifecycle: None,
            token: None,
            poll_interval: Duration::from_millis(200),
            client_buffer: 64,
            linger: None,
            push: None,
            final_file: None,
        }
    }

    /// Listens on `addr`: the way to listen beyond this machine (`0.0.0.0:9470`), which is logged.
    ///
    /// ```
    /// let observer = canopy::observer::Observer::new().addr(([0, 0, 0, 0], 9470).into());
    /// # let _ = observer;
    /// ```
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Listens on `127.0.0.1:port`.
    ///
    /// ```
    /// let observer = canopy::observer::Observer::new().port(9100);
    /// # let _ = observer;
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        self
    }

    /// Serves on a listener you bound (e.g. on port 0, to learn the port first).
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let observer = canopy::observer::Observer::new().listener(listener);
    /// # let _ = (observer, port); Ok(()) }
    /// ```
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Serves `registry` at `/metrics`, canopy's [`TreeMetrics`] registered into it: your own
    /// metrics and the tree's in one scrape and one final push. Do not register `TreeMetrics` in it
    /// yourself.
    ///
    /// ```
    /// use prometheus_client::{metrics::counter::Counter, registry::Registry};
    /// let mut registry = Registry::default();
    /// let requests = Counter::<u64>::default();
    /// registry.register("requests", "Requests served", requests.clone());
    /// let observer = canopy::observer::Observer::new().registry(registry);
    /// # let _ = observer;
    /// ```
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The readiness `/readyz` reports, without an [`App`] (an app gives its own). Without
    /// either, `/readyz` is 200 while the observer serves.
    ///
    /// ```
    /// let health = canopy::health::Health::new(); // set ready when your service is
    /// let observer = canopy::observer::Observer::new().health(health.clone());
    /// # let _ = observer;
    /// ```
    pub fn health(mut self, health: Health) -> Self {
        self.health = Some(health);
        self
    }

    /// The app lifecycle whose phases `/metrics` reports, without [`App::observer`] (which gives
    /// its own).
    ///
    /// ```
    /// let app = canopy::app::App::new(canopy::SupervisorSpec::default());
    /// let observer = canopy::observer::Observer::new().lifecycle(app.lifecycle());
    /// # let _ = observer;
    /// ```
    pub fn lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = Some(lifecycle);
        self
    }

    /// Enables `POST /children/restart?path=…` and `POST /children/terminate?path=…`, which
    /// require `Authorization: Bearer <token>`. Without this they do not exist (404). A restart
    /// is the supervisor's `terminate_child` then `restart_child` (not counted against its
    /// restart intensity); a dynamic child can be terminated, not restarted.
    ///
    /// ```
    /// let token = std::env::var("OBSERVER_TOKEN").unwrap_or_default();
    /// let observer = canopy::observer::Observer::new().mutations(token); // empty: refused at start
    /// # let _ = observer;
    /// ```
    pub fn mutations(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How often `/events` reads the tree while a client listens (default 200 ms, at least 10 ms).
    ///
    /// ```
    /// let observer = canopy::observer::Observer::new()
    ///     .poll_interval(std::time::Duration::from_secs(1)); // a calmer page for a big tree
    /// # let _ = observer;
    /// ```
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// How many events a client may fall behind before it is dropped, and how many past events are
    /// kept for clients that resume (default 64, at least 1).
    ///
    /// ```
    /// let observer = canopy::observer::Observer::new().client_buffer(256);
    /// # let _ = observer;
    /// ```
    pub fn client_buffer(mut self, events: usize) -> Self {
        self.client_buffer = events.max(1);
        self
    }

    /// After the tree is down, keeps serving until `/metrics` has been scraped once more, for at
    /// most `at_most` (your scrape interval), so that Prometheus reads the last values. An
    /// [`App`] final hook; the shutdown deadline bounds it.
    ///
    /// ```
    /// // Prometheus scrapes every 15 s: one more scrape after the tree is down.
    /// let observer = canopy::observer::Observer::new().linger(std::time::Duration::from_secs(15));
    /// # let _ = observer;
    /// ```
    pub fn linger(mut self, at_most: Duration) -> Self {
        self.linger = Some(at_most);
        self
    }

    /// After the tree is down, pushes the last metrics to this Pushgateway. An [`App`] final
    /// hook; a failure is logged.
    ///
    /// ```
    /// use canopy::observer::{Observer, Pushgateway};
    /// # fn main() -> Result<(), canopy::observer::PushError> {
    /// let observer = Observer::new()
    ///     .push_to(Pushgateway::new("http://127.0.0.1:9091", "api")?.label("instance", "api-0"));
    /// # let _ = observer; Ok(()) }
    /// ```
    pub fn push_to(mut self, gateway: Pushgateway) -> Self {
        self.push = Some(gateway);
        self
    }

    /// After the tree is down, writes the last metrics to `path` (text format 0.0.4, whole or not
    /// at all), e.g. for node_exporter's textfile collector. An [`App`] final hook; a failure is
    /// logged.
    ///
    /// ```
    /// let observer = canopy::observer::Observer::new()
    ///     .write_final("/var/lib/node_exporter/textfile/app.prom");
    /// # let _ = observer;
    /// ```
    pub fn write_final(mut self, path: impl Into<PathBuf>) -> Self {
        self.final_file = Some(path.into());
        self
    }

    /// Starts serving on its own, inside the current tokio runtime, until
    /// [`ObserverHandle::shutdown`] or the handle is dropped. The final export settings are for
    /// [`App`]; here, call [`ObserverHandle::push`] or [`ObserverHandle::write_metrics`] yourself.
    ///
    /// Errors: [`ObserverError::Bind`], [`ObserverError::Listener`], [`ObserverError::NoRuntime`],
    /// [`ObserverError::EmptyToken`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use canopy::observer::{Observer, ObserverError};
    /// let first = Observer::new().listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).serve().unwrap();
    /// let taken = Observer::new().addr(first.local_addr()).serve();
    /// assert!(matches!(taken, Err(ObserverError::Bind { .. })));
    /// # }
    /// ```
    pub fn serve(self) -> Result<ObserverHandle, ObserverError> {
        if self.final_file.is_some() || self.push.is_some() || self.linger.is_some() {
            tracing::warn!(
                target: T,
                "write_final, push_to and linger are final hooks of an App; a standalone observer ignores them"
            );
        }
        let started = self.start()?;
        let task = tokio::spawn(started.serving);
        Ok(ObserverHandle {
            addr: started.addr,
            shared: started.shared,
            task: Some(task),
        })
    }

    /// Serves for `app`: its health and lifecycle, its tasks (a second signal reaps the server) and
    /// its final hooks (file, push, linger). Called by [`App::observer`].
    pub(crate) fn attach(mut self, app: App) -> Result<App, ObserverError> {
        self.health = Some(app.health());
        self.lifecycle = Some(app.lifecycle());
        let (file, push, linger) = (self.final_file.take(), self.push.take(), self.linger.take());
        let started = self.start()?;
        app.handle().spawn(started.serving);
        let shared = started.shared;
        Ok(
            app.on_shutdown("observer: final metrics", move || async move {
                final_export(&shared, file, push, linger).await;
                // Stopped here rather than aborted with the app's tasks, so that a response being
                // written (the linger's scrape) is finished.
                shared.stop.send_replace(true);
                let _ = shared.finished.subscribe().wait_for(|done| *done).await;
            }),
        )
    }

    fn start(self) -> Result<Started, ObserverError> {
        tokio::runtime::Handle::try_current().map_err(|_| ObserverError::NoRuntime)?;
        if self.token.as_deref() == Some("") {
            return Err(ObserverError::EmptyToken);
        }
        let std_listener = match self.listener {
            Some(listener) => listener,
            None => {
                std::net::TcpListener::bind(self.addr).map_err(|source| ObserverError::Bind {
                    addr: self.addr,
                    source,
                })?
            }
        };
        std_listener
            .set_nonblocking(true)
            .map_err(ObserverError::Listener)?;
        let addr = std_listener.local_addr().map_err(ObserverError::Listener)?;
        let listener =
            tokio::net::TcpListener::from_std(std_listener).map_err(ObserverError::Listener)?;

        let mut registry = self.registry.unwrap_or_default();
        let mut tree_metrics = TreeMetrics::new();
        if let Some(lifecycle) = self.lifecycle {
            tree_metrics = tree_metrics.lifecycle(lifecycle);
        }
        tree_metrics.register(&mut registry);
        let health = self.health.unwrap_or_else(|| {
            let own = Health::new();
            own.set_ready(true);
            own
        });
        let (stop, stopped) = watch::channel(false);
        let ending = Ending {
            token: health.shutdown_token(),
            stop: stopped,
        };
        let mutations = self.token.is_some();
        let shared = Arc::new(Shared {
            registry,
            health,
            ending,
            hub: Arc::new(Hub::new(self.client_buffer)),
            token: self.token,
            stop,
            scrapes: watch::Sender::new(0),
            finished: watch::Sender::new(false),
            retry: Duration::from_secs(1),
        });
        let mut router = Router::new()
            .route("/", get(page))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/tree", get(tree))
            .route("/events", get(events));
        if mutations {
            router = router
                .route("/children/restart", post(restart))
                .route("/children/terminate", post(terminate));
        }
        let router = router.with_state(shared.clone());
        if !addr.ip().is_loopback() {
            tracing::warn!(target: T, %addr, mutations, "the observer listens beyond this machine");
        }
        tracing::info!(target: T, url = %format!("http://{addr}/"), mutations, "observer listening");
        let serving = serve(listener, router, shared.clone(), self.poll_interval);
        Ok(Started {
            addr,
            shared,
            serving: Box::pin(serving),
        })
    }
}

struct Started {
    addr: SocketAddr,
    shared: Arc<Shared>,
    serving: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// What every request handler shares.
struct Shared {
    registry: Registry,
    health: Health,
    ending: Ending,
    hub: Arc<Hub>,
    token: Option<String>,
    /// Set to stop serving: a standalone observer's shutdown, or the end of the app's final hook.
    stop: watch::Sender<bool>,
    /// Scrapes of `/metrics` served, for the linger.
    scrapes: watch::Sender<u64>,
    /// Set once the server has stopped, every connection closed.
    finished: watch::Sender<bool>,
    retry: Duration,
}

/// When `/events` streams end: the stop of the app (its shutdown token), or the observer's own.
#[derive(Clone)]
pub(crate) struct Ending {
    token: ShutdownToken,
    stop: watch::Receiver<bool>,
}

impl Ending {
    pub(crate) async fn wait(&self) {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = self.token.triggered() => {}
            _ = stopped(&mut stop) => {}
        }
    }

    fn is_ended(&self) -> bool {
        self.token.is_triggered() || *self.stop.borrow()
    }

    #[cfg(test)]
    pub(crate) fn for_test() -> (watch::Sender<bool>, Ending) {
        let (tx, stop) = watch::channel(false);
        (
            tx,
            Ending {
                token: Health::new().shutdown_token(),
                stop,
            },
        )
    }
}

/// Returns once `stop` is set, or once its sender is gone (the observer is gone: stopped too).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A running standalone observer; dropping it stops it too.
///
/// ```
/// # #[tokio::main] async fn main() {
/// let observer = canopy::observer::Observer::new()
///     .listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
///     .serve()
///     .unwrap();
/// assert_eq!(observer.clients(), 0);
/// observer.shutdown().await;
/// # }
/// ```
pub struct ObserverHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for ObserverHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObserverHandle(http://{}/)", self.addr)
    }
}

impl ObserverHandle {
    /// The address it listens on.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let observer = canopy::observer::Observer::new().port(0).serve().unwrap();
    /// assert!(observer.local_addr().ip().is_loopback());
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The readiness it reports.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let observer = canopy::observer::Observer::new().port(0).serve().unwrap();
    /// assert!(observer.health().is_ready()); // no Health given: ready while it serves
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        self.shared.health.clone()
    }

    /// How many `/events` clients are connected now.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let observer = canopy::observer::Observer::new().port(0).serve().unwrap();
    /// assert_eq!(observer.clients(), 0);
    /// # }
    /// ```
    pub fn clients(&self) -> usize {
        self.shared.hub.clients()
    }

    /// The number of the last `/events` event made (0 before the first client).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let observer = canopy::observer::Observer::new().port(0).serve().unwrap();
    /// assert_eq!(observer.last_event(), 0); // nobody has listened yet
    /// # }
    /// ```
    pub fn last_event(&self) -> u64 {
        self.shared.hub.last_id()
    }

    /// The metrics `/metrics` serves, in text format 0.0.4.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let observer = canopy::observer::Observer::new().listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).serve().unwrap();
    /// assert!(observer.metrics_text().unwrap().contains("canopy_child_restarts"));
    /// # }
    /// ```
    pub fn metrics_text(&self) -> Result<String, fmt::Error> {
        crate::metrics::encode(&self.shared.registry)
    }

    /// Pushes what `/metrics` serves to `gateway`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let observer = canopy::observer::Observer::new().port(0).serve()?;
    /// let gateway = canopy::observer::Pushgateway::new("http://127.0.0.1:9", "api")?;
    /// // Nothing listens on port 9: the push fails with a typed error.
    /// assert!(observer.push(&gateway).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn push(&self, gateway: &Pushgateway) -> Result<(), PushError> {
        gateway.push(&self.shared.registry).await
    }

    /// Writes what `/metrics` serves to `path`, whole or not at all.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let observer = canopy::observer::Observer::new().port(0).serve().unwrap();
    /// let path = std::env::temp_dir().join("canopy-observer-doc.prom");
    /// observer.write_metrics(&path).unwrap();
    /// # std::fs::remove_file(&path).unwrap();
    /// # }
    /// ```
    pub fn write_metrics(&self, path: impl AsRef<std::path::Path>) -> io::Result<()> {
        crate::metrics::write_file(path, &self.shared.registry)
    }

    /// Ends every `/events` stream (with its `shutdown` event), stops accepting, lets the requests
    /// in progress finish and returns when the server is down.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let observer = canopy::observer::Observer::new().port(0).serve().unwrap();
    /// let addr = observer.local_addr();
    /// observer.shutdown().await;
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// # }
    /// ```
    pub async fn shutdown(mut self) {
        self.shared.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ObserverHandle {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
    }
}

/// Accepts connections and polls the tree for `/events` until the observer stops. Connections
/// live in a set owned here: if the app reaps this task (a second signal skips the final hooks),
/// they go with it.
async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shared: Arc<Shared>,
    poll_interval: Duration,
) {
    let poller = {
        let shared = shared.clone();
        async move {
            let mut wait = poll_interval;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.ending.wait() => return,
                }
                wait = poll_interval;
                if shared.hub.listened() {
                    let began = std::time::Instant::now();
                    let hub = shared.hub.clone();
                    off_the_workers(move || hub.poll()).await;
                    wait = pace(poll_interval, began.elapsed());
                }
            }
        }
    };
    let accept = async {
        let mut stop = shared.stop.subscribe();
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stopped(&mut stop) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(target: T, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let service = TowerToHyperService::new(router.clone());
            let mut stop = shared.stop.subscribe();
            connections.spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    _ = stopped(&mut stop) => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    };
    tokio::join!(poller, accept);
    shared.finished.send_replace(true);
}

/// The wait before the next poll: the interval, or nine times what the last poll took if that is
/// longer, so that reading a huge tree for `/events` takes at most a tenth of a core.
fn pace(interval: Duration, took: Duration) -> Duration {
    interval.max(took.saturating_mul(9))
}

/// The app's final hook: the last metrics to a file and a Pushgateway, then the linger.
async fn final_export(
    shared: &Shared,
    file: Option<PathBuf>,
    push: Option<Pushgateway>,
    linger: Option<Duration>,
) {
    // One reading for the file and the push: both say the same thing.
    let text = match crate::metrics::encode(&shared.registry) {
        Ok(text) => text,
        Err(_) => {
            tracing::error!(target: T, "the final metrics could not be encoded");
            String::new()
        }
    };
    if let Some(path) = file {
        match crate::metrics::write_text(&path, &text) {
            Ok(()) => {
                tracing::info!(target: T, path = %path.display(), "final metrics written")
            }
            Err(e) => {
                tracing::error!(target: T, path = %path.display(), error = %e, "final metrics not written")
            }
        }
    }
    if let Some(gateway) = push {
        match gateway.push_text(text).await {
            Ok(()) => tracing::info!(target: T, ?gateway, "final metrics pushed"),
            Err(e) => tracing::error!(target: T, ?gateway, error = %e, "final metrics not pushed"),
        }
    }
    if let Some(at_most) = linger {
        let mut scrapes = shared.scrapes.subscribe();
        scrapes.mark_unchanged();
        let scraped = tokio::time::timeout(at_most, scrapes.changed()).await;
        tracing::info!(
            target: T,
            scraped = scraped.is_ok(),
            "linger over"
        );
    }
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // Nothing but this page's own inline code and requests to this origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    if s.health.is_live() {
        (StatusCode::OK, "live\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not live\n").into_response()
    }
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else if s.health.shutdown_token().is_triggered() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Runs `read` on tokio's blocking pool: reading a big tree takes milliseconds that the app's own
/// tasks should not wait behind on a worker thread.
async fn off_the_workers<T: Send + 'static>(
    read: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(read).await.ok()
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    off_the_workers(move || encode_metrics(&s, openmetrics))
        .await
        .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn encode_metrics(s: &Shared, openmetrics: bool) -> Response {
    let mut text = String::new();
    let (encoded, content_type) = if openmetrics {
        (
            prometheus_client::encoding::text::encode(&mut text, &s.registry),
            OPENMETRICS,
        )
    } else {
        (
            prometheus_client::encoding::prometheus_text::encode(&mut text, &s.registry),
            crate::metrics::TEXT_CONTENT_TYPE,
        )
    };
    if encoded.is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded\n",
        )
            .into_response();
    }
    s.scrapes.send_modify(|n| *n += 1);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

#[derive(Deserialize)]
struct TreeQuery {
    path: Option<String>,
    format: Option<String>,
}

async fn tree(Query(q): Query<TreeQuery>) -> Response {
    off_the_workers(move || read_tree(q))
        .await
        .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn read_tree(q: TreeQuery) -> Response {
    let snap = match q.path.as_deref() {
        None => snapshot::tree(),
        Some(path) => match snapshot::at(path) {
            Some(node) => TreeSnapshot {
                schema_version: snapshot::SCHEMA_VERSION,
                taken_at_ms: now_ms(),
                roots: vec![node],
            },
            None => return error(StatusCode::NOT_FOUND, &format!("nothing at {path}")),
        },
    };
    if q.format.as_deref() == Some("text") {
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            snap.to_string(),
        )
            .into_response();
    }
    json(StatusCode::OK, &snap)
}

async fn events(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    // Once the stop has begun there is nothing more to stream; 204 tells a browser's EventSource
    // not to reconnect.
    if s.ending.is_ended() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let hub = s.hub.clone();
    let last = last.map(str::to_owned);
    let Some(sub) = off_the_workers(move || hub.subscribe(last.as_deref())).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let stream = s.hub.clone().stream(sub, s.ending.clone(), s.retry);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies that buffer would hold events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[derive(Deserialize)]
struct PathQuery {
    path: Option<String>,
}

async fn restart(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PathQuery>,
) -> Response {
    mutate(&s, &headers, q.path, Mutation::Restart).await
}

async fn terminate(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PathQuery>,
) -> Response {
    mutate(&s, &headers, q.path, Mutation::Terminate).await
}

#[derive(Clone, Copy, Debug)]
enum Mutation {
    Restart,
    Terminate,
}

async fn mutate(s: &Shared, headers: &HeaderMap, path: Option<String>, what: Mutation) -> Response {
    let Some(expected) = &s.token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110); the token is not.
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token);
    if !given.is_some_and(|given| same_secret(given.as_bytes(), expected.as_bytes())) {
        let mut response = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let Some(path) = path else {
        return error(StatusCode::BAD_REQUEST, "?path= is required");
    };
    tracing::info!(target: T, %path, action = ?what, "mutation requested through the observer");
    match apply(&path, what).await {
        Ok(()) => json(
            StatusCode::OK,
            &serde_json::json!({ "ok": true, "path": path, "action": format!("{what:?}").to_lowercase() }),
        ),
        Err((status, why)) => error(status, &why),
    }
}

/// Carries a mutation out through the supervisor's API.
async fn apply(path: &str, what: Mutation) -> Result<(), (StatusCode, String)> {
    use crate::core::ChildError;
    let Some((parent, id)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) else {
        return Err((
            StatusCode::CONFLICT,
            format!("{path} is a top-level supervisor: nothing supervises it"),
        ));
    };
    let node = crate::introspect::node_at(parent).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("no supervisor runs at {parent}"),
        )
    })?;
    let failed = |e: ChildError| match e {
        ChildError::NotFound(_) => (StatusCode::NOT_FOUND, format!("{path}: {e}")),
        e => (StatusCode::CONFLICT, format!("{path}: {e}")),
    };
    if node.args.is_none() {
        let sup = crate::SupervisorRef::from_cell(node.cell.clone()).ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("no supervisor runs at {parent}"),
            )
        })?;
        if node.children.child(id).is_none() {
            return Err((StatusCode::NOT_FOUND, format!("no child at {path}")));
        }
        sup.terminate_child(id).await.map_err(failed)?;
        if let Mutation::Restart = what {
            sup.restart_child(id).await.map_err(failed)?;
        }
        return Ok(());
    }
    // A dynamic supervisor knows its children by cell.
    if let Mutation::Restart = what {
        return Err((
            StatusCode::CONFLICT,
            format!("{path} is a dynamic child: it can be terminated, not restarted"),
        ));
    }
    let info = node
        .children
        .child(id)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no child at {path}")))?;
    let cell = info
        .status
        .pid()
        .cloned()
        .ok_or_else(|| (StatusCode::CONFLICT, format!("{path} is not running")))?;
    let sup = crate::AnySupervisorRef::from_cell(node.cell.clone()).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("no supervisor runs at {parent}"),
        )
    })?;
    sup.call_unit(crate::shell::Api::TerminateCell(cell))
        .await
        .map_err(failed)
}

/// Compares without stopping at the first difference, so the time taken does not tell how much
/// of a guess was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut differ = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        differ |= usize::from(given.get(i).copied().unwrap_or(!*e) ^ e);
    }
    differ == 0
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn error(status: StatusCode, why: &str) -> Response {
    json(status, &serde_json::json!({ "error": why }))
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::{pace, same_secret};
    use std::time::Duration;

    #[test]
    fn polling_a_slow_tree_slows_down_to_a_tenth_of_the_time() {
        let ms = Duration::from_millis;
        assert_eq!(pace(ms(200), ms(1)), ms(200));
        assert_eq!(pace(ms(200), ms(50)), ms(450));
        assert_eq!(pace(ms(200), Duration::MAX), Duration::MAX);
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cret!", b"s3cret"));
        assert!(!same_secret(b"S3cret", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
