//! # 06: the tree in a browser, in Prometheus and over the process's exit
//!
//! Run it, then open **<http://127.0.0.1:9470/>**:
//!
//! ```text
//! cargo run --features observer --example 06_observer
//! cargo run --features observer --example 06_observer -- --help
//! RUST_LOG=canopy=debug cargo run --features observer --example 06_observer
//! ```
//!
//! The page shows the live tree: `/app/db`, `/app/cache`, the `web` supervisor with its `listener`
//! and `counter` (a generated service: watch its handled count grow), a `sessions` pool whose
//! children come and go, and `/app/flaky`, which crashes every few seconds: its restart count and
//! its last exit change in place, without reloading. Search by path, expand and collapse.
//!
//! Meanwhile, in another terminal:
//!
//! ```text
//! curl -s 127.0.0.1:9470/tree?format=text               # the tree like pstree
//! curl -s '127.0.0.1:9470/tree?path=/app/web' | head -c 300
//! curl -s 127.0.0.1:9470/metrics | grep canopy_child_restarts_total
//! curl -sN 127.0.0.1:9470/events | head -c 600           # the event stream
//! ```
//!
//! With `--token s3cret`, a child can be restarted or terminated over HTTP:
//!
//! ```text
//! curl -s -X POST -H 'Authorization: Bearer s3cret' '127.0.0.1:9470/children/restart?path=/app/cache'
//! ```
//!
//! Press Ctrl-C: `/readyz` turns 503 at once, the page says the process is stopping and follows
//! the teardown from `/tree` (slowed by `--drain`), and with `--final-file last.prom` the last
//! metrics are written once the tree is down (`--push http://127.0.0.1:9091` pushes them to a
//! Pushgateway). `--linger 15` keeps `/metrics` up until one more scrape, 15 s at most.
//!
//! The log goes to stderr at `info` unless `RUST_LOG` says otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use canopy::app::{App, ExitStatus};
use canopy::observer::{Observer, Pushgateway};
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{
    ChildInfo, ChildSpec, DynamicRef, DynamicSpec, Restart, Strategy, SupervisorRef, SupervisorSpec,
};
use clap::Parser;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// A demo tree served by canopy's observer: a live page, /tree, /events and /metrics.
#[derive(Parser)]
#[command(name = "06_observer")]
struct Cli {
    /// The port on 127.0.0.1 to serve on.
    #[arg(long, default_value_t = 9470)]
    port: u16,
    /// Listen on this address instead (e.g. 0.0.0.0:9470, reachable from other machines).
    #[arg(long, value_name = "ADDR")]
    addr: Option<SocketAddr>,
    /// How often /app/flaky crashes, in milliseconds.
    #[arg(long, default_value_t = 4000, value_name = "MS")]
    crash_every: u64,
    /// Enable POST /children/restart and /children/terminate with this bearer token.
    #[arg(long)]
    token: Option<String>,
    /// The drain delay after Ctrl-C, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    drain: u64,
    /// After the tree is down, write the last metrics to this file.
    #[arg(long, value_name = "PATH")]
    final_file: Option<PathBuf>,
    /// After the tree is down, push the last metrics to this Pushgateway (http://host:port).
    #[arg(long, value_name = "URL")]
    push: Option<String>,
    /// After the tree is down, serve /metrics until one more scrape, for at most this many seconds.
    #[arg(long, value_name = "SECONDS")]
    linger: Option<u64>,
}

/// A worker that does nothing but live; with `crash_every`, it fails that long after each start.
#[derive(Clone)]
struct Worker {
    crash_every: Option<Duration>,
}

struct Crash;

impl Actor for Worker {
    type Msg = Crash;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, me: ActorRef<Crash>, _: ()) -> Result<(), ActorProcessingErr> {
        if let Some(after) = self.crash_every {
            me.send_after(after, || Crash);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Crash>,
        _: Crash,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Err("crashed on purpose".into())
    }
}

/// A session that ends by itself after a while (a temporary child of the pool).
#[derive(Clone)]
struct Session;

impl Actor for Session {
    type Msg = ();
    type State = ();
    type Arguments = u64;

    async fn pre_start(
        &self,
        me: ActorRef<()>,
        lifetime_ms: u64,
    ) -> Result<(), ActorProcessingErr> {
        me.send_after(Duration::from_millis(lifetime_ms), || ());
        Ok(())
    }

    async fn handle(&self, me: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        me.stop(None);
        Ok(())
    }
}

/// A generated service: the page shows how many messages it has handled.
struct Counter {
    n: u64,
}

#[canopy::service]
impl Counter {
    fn init(_: ()) -> Self {
        Counter { n: 0 }
    }

    fn bump(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

/// Demo traffic: every 700 ms a session starts and the counter is called.
#[derive(Clone)]
struct Traffic;

struct Tick;

impl Actor for Traffic {
    type Msg = Tick;
    /// Ticks so far, and the pool and the counter once found.
    type State = (u64, Option<(DynamicRef<u64>, CounterClient)>);
    type Arguments = ();

    async fn pre_start(
        &self,
        me: ActorRef<Tick>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        me.send_interval(Duration::from_millis(700), || Tick);
        Ok((0, None))
    }

    async fn handle(
        &self,
        me: ActorRef<Tick>,
        _: Tick,
        (ticks, found): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        *ticks += 1;
        if found.is_none() {
            // Asked here, not in pre_start: the root answers only once it has started everyone.
            let root = me
                .try_get_supervisor()
                .and_then(SupervisorRef::from_cell)
                .ok_or("no root")?;
            let cell_of = |info: ChildInfo| info.status.pid().cloned().ok_or("not running");
            let pool = DynamicRef::from_cell(cell_of(root.which_child("sessions").await?)?)
                .ok_or("no pool")?;
            let web = SupervisorRef::from_cell(cell_of(root.which_child("web").await?)?)
                .ok_or("no web")?;
            *found = Some((pool, CounterClient::new(&web, "counter")?));
        }
        if let Some((pool, counter)) = found {
            // Sessions of 1.5 to 4.3 s, so that the pool's size moves.
            let lifetime_ms = 1500 + (*ticks % 5) * 700;
            pool.start_child(lifetime_ms).await?;
            counter.bump().await?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(LevelFilter::INFO.into())
                .from_env_lossy(),
        )
        .init();

    let still = || Worker { crash_every: None };
    let web = SupervisorSpec::new(Strategy::RestForOne)
        .child(ChildSpec::actor("listener", still(), ()))
        .child(Counter::child_spec("counter", ()));
    let sessions = DynamicSpec::actor(Session).restart(Restart::Temporary);
    let tree = SupervisorSpec::new(Strategy::OneForOne)
        .name("app")
        .restart_intensity(5, Duration::from_secs(10))
        .child(ChildSpec::actor("db", still(), ()))
        .child(ChildSpec::actor("cache", still(), ()))
        .child(ChildSpec::supervisor("web", web))
        .child(ChildSpec::dynamic("sessions", sessions))
        .child(ChildSpec::actor(
            "flaky",
            Worker {
                crash_every: Some(Duration::from_millis(cli.crash_every.max(100))),
            },
            (),
        ))
        .child(ChildSpec::actor("traffic", Traffic, ()));

    let mut observer = match cli.addr {
        Some(addr) => Observer::new().addr(addr),
        None => Observer::new().port(cli.port),
    };
    if let Some(token) = cli.token {
        observer = observer.mutations(token);
    }
    if let Some(path) = cli.final_file {
        observer = observer.write_final(path);
    }
    if let Some(url) = cli.push {
        observer =
            observer.push_to(Pushgateway::new(&url, "06_observer")?.label("instance", "demo"));
    }
    if let Some(secs) = cli.linger {
        observer = observer.linger(Duration::from_secs(secs));
    }

    let app = App::new(tree)
        .drain_delay(Duration::from_millis(cli.drain))
        .observer(observer)?;
    println!(
        "observer: open http://{}/",
        cli.addr
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], cli.port)))
    );

    let status = app.run().await;
    Ok(ExitStatus::of(status).into())
}
