//! # 05: example 01's tree, written with the macros
//!
//! Run it:
//!
//! ```text
//! cargo run --example 05_macros
//! cargo run --example 05_macros -- --help
//! ```
//!
//! The same tree as `01_supervision_tree`, and the same output: `started` lines in start order
//! (`/app/db`, `/app/cache`, `/app/web/listener`, `/app/web/sessions`, `/app/flaky`), `/app/flaky`
//! failing about every 1.5 s and started again at once, then after 4 s `stopped` lines in exactly
//! the reverse order. What changes is the code: the worker is a `#[canopy::service]` (no message
//! enum, no `Actor` impl, no `match`), and each supervisor is a struct whose fields are its
//! children in start order. Between the crashes, `main` asks the workers how many times they
//! started through their typed clients, which keep working across the restarts.
//!
//! The log goes to stderr at `info` unless `RUST_LOG` says otherwise.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canopy::service::Ctx;
use canopy::ExitReason;
use clap::Parser;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// Example 01's supervision tree written with canopy's macros: a crashing worker restarted, then
/// every child stopped in reverse start order.
///
/// Prints each child's start and stop on stdout; canopy's reports go to stderr, filtered by
/// RUST_LOG (default: info).
#[derive(Parser)]
#[command(name = "05_macros")]
struct Cli {}

/// A worker that prints its life; if it has a `crash_after`, it fails that long after it starts.
struct Worker {
    path: &'static str,
    incarnation: u32,
}

/// A worker's start arguments: its path, when it fails (if ever) and the count of its starts,
/// shared by its incarnations.
type Spot = (&'static str, Option<Duration>, Arc<AtomicU32>);

#[canopy::service]
impl Worker {
    fn init(
        path: &'static str,
        crash_after: Option<Duration>,
        starts: Arc<AtomicU32>,
        ctx: &Ctx<Self>,
    ) -> Self {
        let incarnation = starts.fetch_add(1, Ordering::SeqCst) + 1;
        if incarnation == 1 {
            println!("started {path}");
        } else {
            println!("started {path} (incarnation {incarnation})");
        }
        if let Some(after) = crash_after {
            // A cast to itself from a task of its own, which ends with this incarnation.
            let me = ctx.client();
            ctx.spawn(async move {
                tokio::time::sleep(after).await;
                let _ = me.fail().await;
            });
        }
        Worker { path, incarnation }
    }

    /// Fails the worker on purpose: an `Err` from a cast fails the actor.
    #[cast]
    fn fail(&mut self) -> Result<(), String> {
        Err(format!("{} failed on purpose", self.path))
    }

    /// Which incarnation this is.
    fn incarnation(&self) -> u32 {
        self.incarnation
    }

    #[on_stop]
    fn stopped(&mut self, reason: ExitReason) {
        // A failure is reported by the supervisor; only an orderly stop is printed, as in 01.
        if reason.is_normal_class() {
            println!("stopped {}", self.path);
        }
    }
}

/// A worker at `path` that never fails.
fn at(path: &'static str) -> Spot {
    (path, None, Arc::default())
}

#[derive(canopy::Supervisor)]
#[supervisor(strategy = rest_for_one)]
struct Web {
    #[child(args = at("/app/web/listener"))]
    listener: Worker,
    #[child(args = at("/app/web/sessions"))]
    sessions: Worker,
}

// Named so that the log's paths (`supervisor=/app`) are the ones printed on stdout.
#[derive(canopy::Supervisor)]
#[supervisor(name = "app", strategy = one_for_one, intensity = 3, period = "5s")]
struct App {
    #[child(args = at("/app/db"))]
    db: Worker,
    #[child(args = at("/app/cache"))]
    cache: Worker,
    web: Web,
    #[child(args = ("/app/flaky", Some(Duration::from_millis(1500)), Arc::default()))]
    flaky: Worker,
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

    // Every child's arguments are in its attribute, so there is nothing left to give.
    let app = App::start(AppArgs { web: WebArgs {} }).await?;

    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "-- db is on incarnation {}, flaky on {} --",
        app.db.incarnation().await?,
        app.flaky.incarnation().await?
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("-- shutting down the tree from the root --");
    app.shutdown().await;
    println!("-- done --");
    Ok(())
}
