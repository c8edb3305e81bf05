//! # 01: a supervision tree that restarts a crashed worker and stops in order
//!
//! Run it:
//!
//! ```text
//! cargo run --example 01_supervision_tree
//! RUST_LOG=debug cargo run --example 01_supervision_tree   # canopy's debug events too
//! cargo run --example 01_supervision_tree -- --help
//! ```
//!
//! What you will see:
//!
//! 1. `started` lines in start order: `/app/db`, `/app/cache`, the nested supervisor's children
//!    `/app/web/listener` and `/app/web/sessions`, then `/app/flaky`.
//! 2. About every 1.5 s `/app/flaky` fails on purpose. The supervisor starts it again at once (a new
//!    `started /app/flaky (incarnation N)` line) and then logs the `child_terminated` report on
//!    stderr (`supervisor=/app child=flaky`): reports are written after the restart, off its
//!    critical path. The siblings are untouched: the root's strategy is one_for_one.
//! 3. After 4 s the tree is shut down from the root: every child prints `stopped`, in exactly the
//!    reverse of the start order, the nested supervisor's children included.
//!
//! The log goes to stderr at `info` unless `RUST_LOG` says otherwise.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use clap::Parser;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// A supervision tree that restarts a crashing worker, then stops in reverse start order.
///
/// Prints each child's start and stop on stdout; canopy's reports go to stderr, filtered by
/// RUST_LOG (default: info).
#[derive(Parser)]
#[command(name = "01_supervision_tree")]
struct Cli {}

/// A worker that prints its life; if `crash_after` is set, it fails that long after it starts.
#[derive(Clone)]
struct Worker {
    path: &'static str,
    crash_after: Option<Duration>,
    incarnations: Arc<AtomicU32>,
}

impl Worker {
    fn new(path: &'static str) -> Self {
        Worker {
            path,
            crash_after: None,
            incarnations: Arc::default(),
        }
    }
}

struct Fail;

impl Actor for Worker {
    type Msg = Fail;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, me: ActorRef<Fail>, _: ()) -> Result<(), ActorProcessingErr> {
        let n = self.incarnations.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            println!("started {}", self.path);
        } else {
            println!("started {} (incarnation {n})", self.path);
        }
        if let Some(after) = self.crash_after {
            me.send_after(after, || Fail);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Fail>,
        _: Fail,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Err(format!("{} failed on purpose", self.path).into())
    }

    async fn post_stop(&self, _: ActorRef<Fail>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        println!("stopped {}", self.path);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Cli {} = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(LevelFilter::INFO.into())
                .from_env_lossy(),
        )
        .init();

    let web = SupervisorSpec::new(Strategy::RestForOne)
        .child(ChildSpec::actor(
            "listener",
            Worker::new("/app/web/listener"),
            (),
        ))
        .child(ChildSpec::actor(
            "sessions",
            Worker::new("/app/web/sessions"),
            (),
        ));

    let flaky = Worker {
        crash_after: Some(Duration::from_millis(1500)),
        ..Worker::new("/app/flaky")
    };

    // Named so that the log's paths (`supervisor=/app`) are the ones printed on stdout; an unnamed
    // root would be `/root`.
    let app = SupervisorSpec::new(Strategy::OneForOne)
        .name("app")
        .restart_intensity(3, Duration::from_secs(5))
        .child(ChildSpec::actor("db", Worker::new("/app/db"), ()))
        .child(ChildSpec::actor("cache", Worker::new("/app/cache"), ()))
        .child(ChildSpec::supervisor("web", web))
        .child(ChildSpec::actor("flaky", flaky, ()));

    let root = Supervisor::start(app).await?;

    tokio::time::sleep(Duration::from_secs(4)).await;

    println!("-- shutting down the tree from the root --");
    root.shutdown().await;
    println!("-- done --");
    Ok(())
}
