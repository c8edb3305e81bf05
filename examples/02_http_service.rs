//! # 02: an HTTP service in a supervision tree: readiness, drain delay and an ordered, graceful stop
//!
//! Run it, send it work, then stop it with Ctrl-C (SIGINT) or `kill -TERM <pid>`:
//!
//! ```text
//! cargo run --example 02_http_service
//! curl localhost:3000/work          # answers `done` after about 200 ms
//! curl -i localhost:3000/readyz     # 200 while ready, 503 from the moment the stop begins
//! cargo run --example 02_http_service -- --port 8080 --drain 5000
//! cargo run --example 02_http_service -- --help
//! ```
//!
//! The tree is one root (`one_for_one`) with three children, started in this order: `db` (a stand-in
//! for a connection pool), `cache`, and `http`, an axum server that handles requests with them. The
//! server starts last and stops first, so no request ever finds the database gone.
//!
//! What you will see on stdout, one line each, flushed at once:
//!
//! - `started db`, `started cache`, then `listening 127.0.0.1:3000` and `started http`;
//! - `ready` once the whole tree is up (`/readyz` answers 200 from then on);
//! - after the signal, `/readyz` answers 503 at once, while `/work` and `/healthz` are still served for
//!   the drain delay, so that a load balancer takes the instance out of rotation before anything
//!   closes. Then the server stops accepting, finishes the requests it has, and prints `stopped http`;
//!   then `stopped cache`, then `stopped db`: the reverse of the start order;
//! - `exit <code>`: 0 clean, 3 failed to start (for example, the port is taken), 5 deadline reached,
//!   6 second signal, 7 stopped while still starting (see `canopy::app::ExitStatus`). The process
//!   exits with that code.
//!
//! canopy's own log (the trigger, each phase of the stop) goes to stderr, at `info` unless `RUST_LOG`
//! says otherwise.
//!
//! Endpoints:
//!
//! - `GET /work`: takes about 200 ms, then answers 200 `done`;
//! - `GET /readyz`: readiness, 200 `ready` or 503 `not ready`;
//! - `GET /healthz`: liveness, 200 `live` until the process exits, the stop included.
//!
//! Flags:
//!
//! - `--port <n>`: the port to listen on, on 127.0.0.1 only (default 3000);
//! - `--drain <ms>`: the drain delay (default 0);
//! - `--deadline <ms>`: the global shutdown deadline (default 25000).
//!
//! A flag it does not know, or a value it cannot read, is a usage error: a message, and exit 2.
//!
//! The process-level tests in `tests/signals/http.rs` drive this binary.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use canopy::app::{App, ExitStatus};
use canopy::health::Health;
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, Shutdown, Strategy, SupervisorSpec};
use clap::Parser;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// How long the server may take to finish its requests once told to stop. Past it, its supervisor
/// kills it (which aborts the server and drops the connections left), so a stuck request cannot hang
/// the stop.
const HTTP_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `/work` takes.
const WORK_TIME: Duration = Duration::from_millis(200);

fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A backend the handlers depend on (here `db` and `cache`): it only announces its start and stop.
#[derive(Clone)]
struct Backend {
    name: &'static str,
}

impl Actor for Backend {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        line(&format!("started {}", self.name));
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<()>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        line(&format!("stopped {}", self.name));
        Ok(())
    }
}

/// The HTTP server as a supervised actor. It binds in `pre_start`, so a port that is taken is a start
/// error and the app does not start; it serves on a task of its own, and in `post_stop` it stops
/// accepting and waits for the requests in flight.
#[derive(Clone)]
struct HttpServer {
    port: u16,
    health: Health,
}

/// The server task ended by itself (it should not): fail, so that the supervisor restarts the server.
struct ServerExited(String);

struct Serving {
    /// Starts axum's graceful shutdown.
    stop: Option<oneshot::Sender<()>>,
    task: Option<ServerTask>,
}

/// The server task, aborted if dropped: when the actor is killed (its stop timed out), its state is
/// dropped with it, and the server must not outlive it.
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Actor for HttpServer {
    type Msg = ServerExited;
    type State = Serving;
    type Arguments = ();

    async fn pre_start(
        &self,
        me: ActorRef<ServerExited>,
        _: (),
    ) -> Result<Serving, ActorProcessingErr> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, self.port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", self.port))?;
        let addr: SocketAddr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server =
            axum::serve(listener, router(self.health.clone())).with_graceful_shutdown(async move {
                // A dropped sender (the actor is gone) stops the server too.
                let _ = stopped.await;
            });
        let task = tokio::spawn(async move {
            let why = match server.await {
                Ok(()) => "it returned".to_string(),
                Err(e) => e.to_string(),
            };
            // While the actor is stopping this goes nowhere, as it should.
            let _ = me.send_message(ServerExited(why));
        });
        line(&format!("listening {addr}"));
        line("started http");
        Ok(Serving {
            stop: Some(stop),
            task: Some(ServerTask(task)),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<ServerExited>,
        ServerExited(why): ServerExited,
        _: &mut Serving,
    ) -> Result<(), ActorProcessingErr> {
        Err(format!("the HTTP server stopped by itself: {why}").into())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ServerExited>,
        serving: &mut Serving,
    ) -> Result<(), ActorProcessingErr> {
        // Stop accepting (the listener is closed) and let every accepted connection finish its
        // request; the future completes when the last one has.
        if let Some(stop) = serving.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = serving.task.take() {
            let _ = (&mut task.0).await;
        }
        line("stopped http");
        Ok(())
    }
}

fn router(health: Health) -> Router {
    Router::new()
        .route("/work", get(work))
        .route("/readyz", get(readyz))
        .route("/healthz", get(healthz))
        .with_state(health)
}

async fn work() -> &'static str {
    tokio::time::sleep(WORK_TIME).await;
    "done"
}

async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn healthz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.is_live() {
        (StatusCode::OK, "live")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not live")
    }
}

/// An axum server under a canopy App: readiness, drain delay and an ordered, graceful stop.
///
/// Serves GET /work, /readyz and /healthz on 127.0.0.1. Stop it with Ctrl-C or SIGTERM: /readyz
/// turns 503 at once, requests are still served for the drain delay, then the server, cache and
/// db stop in that order. Prints its lifecycle on stdout and exits with canopy's exit status (0
/// clean, 3 start failed, 5 deadline, 6 second signal, 7 stopped while starting). The log goes to
/// stderr, filtered by RUST_LOG (default: info).
#[derive(Parser)]
#[command(name = "02_http_service")]
struct Cli {
    /// The port to listen on, on 127.0.0.1 only
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// The drain delay in milliseconds: how long requests are still served after the signal
    #[arg(long, value_name = "MS", default_value = "0", value_parser = millis)]
    drain: Duration,
    /// The global shutdown deadline in milliseconds
    #[arg(long, value_name = "MS", default_value = "25000", value_parser = millis)]
    deadline: Duration,
}

fn millis(text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("`{text}` is not a whole number of milliseconds"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flags = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(LevelFilter::INFO.into())
                .from_env_lossy(),
        )
        .init();

    // The server reads the app's health for `/readyz`, so the health exists before the tree.
    let health = Health::new();
    let http = HttpServer {
        port: flags.port,
        health: health.clone(),
    };
    let tree = SupervisorSpec::new(Strategy::OneForOne)
        .name("app")
        .child(ChildSpec::actor("db", Backend { name: "db" }, ()))
        .child(ChildSpec::actor("cache", Backend { name: "cache" }, ()))
        .child(ChildSpec::actor("http", http, ()).shutdown(Shutdown::Timeout(HTTP_STOP_TIMEOUT)));

    let app = App::new(tree)
        .with_health(health.clone())
        .drain_delay(flags.drain)
        .shutdown_deadline(flags.deadline);
    // Announce readiness as the app sees it.
    app.handle().spawn(async move {
        while !health.is_ready() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        line("ready");
    });
    let status = ExitStatus::of(app.run().await);
    line(&format!("exit {}", status.code()));
    status.into()
}
