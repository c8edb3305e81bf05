//! # 03: ordered shutdown of a three-level tree, with slow children, a drain delay and a deadline
//!
//! Run it, then stop it with Ctrl-C (SIGINT) or `kill -TERM <pid>`. A slow worker is busy for the
//! time given from its start, so stop it well within that time (here, a minute):
//!
//! ```text
//! # every child stops in the reverse of the start order; `exit 0`
//! cargo run --example 03_shutdown_order
//!
//! # the listener ignores its stop and is killed at its 1 s shutdown timeout; the rest stop in
//! # order; still `exit 0`, as every child stopped within its own policy
//! cargo run --example 03_shutdown_order -- --slow /app/web/listener=60000 --timeout 1000
//!
//! # half a second of drain, then everything but db stops in order; db ignores its stop and its
//! # own timeout is 30 s, so the 2 s global deadline kills it: `stopped /app/db killed`, `exit 5`
//! cargo run --example 03_shutdown_order -- --slow /app/db=60000 --timeout 30000 --deadline 2000 --drain 500
//!
//! # metrics, stopped first, hangs; press Ctrl-C a second time to kill what is left: `exit 6`
//! cargo run --example 03_shutdown_order -- --slow /app/metrics=60000 --timeout 30000
//!
//! # the listener's start waits a minute; press Ctrl-C meanwhile: the start is abandoned, what had
//! # started stops in reverse order, `exit 7`
//! cargo run --example 03_shutdown_order -- --slow-start /app/web/listener=60000
//!
//! # the log goes to a file whose last line, after the stop, is `shutdown complete`
//! cargo run --example 03_shutdown_order -- --log-file /tmp/03_shutdown_order.log
//! tail -n 1 /tmp/03_shutdown_order.log
//!
//! cargo run --example 03_shutdown_order -- --help
//! ```
//!
//! What you will see on stdout, one line each, flushed at once:
//!
//! - `started <path>` for every child as it starts, in start order (a supervisor before its children);
//! - `ready` once the whole tree is up;
//! - after the signal, `stopped <path> <reason>` for every child as its supervisor stops it: the exact
//!   reverse of the start order, level by level. `<reason>` is `shutdown`, or `killed` for a child
//!   that ignored its stop past its shutdown timeout or the global deadline;
//! - `exit <code>`: 0 clean, 5 deadline reached, 6 second signal, 7 stopped while still starting
//!   (see `canopy::app::ExitStatus`).
//!
//! Flags:
//!
//! - `--slow <path>=<ms>`: that worker is busy for `<ms>` ms from its start and takes no stop until
//!   then (repeatable). `<path>` must be a worker's (`/app/db`, `/app/cache`, `/app/web/pool/conn1`,
//!   `/app/web/pool/conn2`, `/app/web/pool/w<n>` with `--fanout`, `/app/web/listener`,
//!   `/app/metrics`): any other path is a usage error;
//! - `--slow-start <path>=<ms>`: that worker's start takes `<ms>` ms; it prints `starting <path>`
//!   when it begins and `started <path>` when done (repeatable, same paths as `--slow`);
//! - `--timeout <ms>`: every worker's shutdown timeout (default 1000);
//! - `--deadline <ms>`: the global shutdown deadline (default 25000);
//! - `--drain <ms>`: the drain delay (default 0);
//! - `--fanout <n>`: `n` more workers under `/app/web/pool` (`/app/web/pool/w1`...), for load;
//! - `--quiet`: no `started`/`stopped` lines (the benchmark uses this with `--fanout 1000`);
//! - `--log-file <path>`: write the log there through a non-blocking writer instead of stderr; its
//!   guard is kept until after the last line (`shutdown complete`), so that line always reaches
//!   the file.
//!
//! A flag it does not know, a value it cannot read, a `--slow` path that is not a worker's or a log
//! file it cannot create is a usage error: a message, and exit 2. The log is at `info` unless
//! `RUST_LOG` says otherwise; the `stopped` lines do not depend on it.
//!
//! The process-level tests in `tests/signals.rs` drive this binary.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use canopy::app::{App, ExitStatus};
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, Shutdown, Strategy, SupervisorSpec};
use clap::{CommandFactory, Parser};
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One line on stdout, flushed at once; `--quiet` keeps only `ready` and `exit`.
fn line(text: &str) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed)
        && (text.starts_with("started ") || text.starts_with("stopped "))
    {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A worker that announces its start and, if told, stays busy for a while.
#[derive(Clone)]
struct Node {
    path: String,
    busy_for: Option<Duration>,
    start_delay: Option<Duration>,
}

struct Busy(Duration);

impl Actor for Node {
    type Msg = Busy;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, me: ActorRef<Busy>, _: ()) -> Result<(), ActorProcessingErr> {
        if let Some(d) = self.start_delay {
            // A start that waits, like one on a database that does not answer yet.
            line(&format!("starting {}", self.path));
            tokio::time::sleep(d).await;
        }
        line(&format!("started {}", self.path));
        if let Some(d) = self.busy_for {
            // The first message makes it busy: a stop is only taken between messages.
            me.send_message(Busy(d))?;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Busy>,
        Busy(d): Busy,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        tokio::time::sleep(d).await;
        Ok(())
    }
}

/// A three-level supervision tree that stops in reverse start order, within a deadline.
///
/// Prints `started <path>` for every child, `ready`, then, after Ctrl-C or SIGTERM, `stopped <path>
/// <reason>` in the reverse order and `exit <code>` (0 clean, 5 deadline, 6 second signal, 7
/// stopped while starting). The log goes to stderr (or --log-file), filtered by RUST_LOG (default:
/// info).
///
/// Workers: /app/db, /app/cache, /app/web/pool/conn1, /app/web/pool/conn2, /app/web/pool/w<n> with
/// --fanout, /app/web/listener, /app/metrics.
#[derive(Parser)]
#[command(name = "03_shutdown_order")]
struct Cli {
    /// That worker is busy for <MS> ms from its start and takes no stop until then (repeatable)
    #[arg(long, value_name = "PATH=MS", value_parser = slow_worker)]
    slow: Vec<(String, Duration)>,
    /// That worker's start takes <MS> ms (it prints `starting <PATH>` first): stop the app
    /// meanwhile to see the start abandoned (repeatable)
    #[arg(long, value_name = "PATH=MS", value_parser = slow_worker)]
    slow_start: Vec<(String, Duration)>,
    /// Every worker's shutdown timeout, in milliseconds
    #[arg(long, value_name = "MS", default_value = "1000", value_parser = millis)]
    timeout: Duration,
    /// The global shutdown deadline, in milliseconds
    #[arg(long, value_name = "MS", default_value = "25000", value_parser = millis)]
    deadline: Duration,
    /// The drain delay, in milliseconds
    #[arg(long, value_name = "MS", default_value = "0", value_parser = millis)]
    drain: Duration,
    /// <N> more workers under /app/web/pool (/app/web/pool/w1 ...), for load
    #[arg(long, value_name = "N", default_value_t = 0)]
    fanout: usize,
    /// No `started`/`stopped` lines, only `ready` and `exit`
    #[arg(long)]
    quiet: bool,
    /// Write the log to this file through a non-blocking writer instead of stderr; its last line
    /// is always `shutdown complete`
    #[arg(long, value_name = "PATH")]
    log_file: Option<std::path::PathBuf>,
}

fn millis(text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("`{text}` is not a whole number of milliseconds"))
}

fn slow_worker(text: &str) -> Result<(String, Duration), String> {
    let (path, ms) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not <PATH>=<MS>"))?;
    Ok((path.to_string(), millis(ms)?))
}

/// A usage error in clap's words and with its exit code (2), for what only the whole command line
/// can tell.
fn usage_error(message: String) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::InvalidValue, message)
        .exit()
}

/// Prints `stopped <path> <reason>` for every child stop canopy records.
struct StopLines;

#[derive(Default)]
struct StopFields {
    message: String,
    path: String,
    reason: String,
}

impl Visit for StopFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_text(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_text(field, format!("{value:?}"));
    }
}

impl StopFields {
    fn record_text(&mut self, field: &Field, text: String) {
        match field.name() {
            "message" => self.message = text,
            "path" => self.path = text,
            "reason" => self.reason = text,
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for StopLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "canopy::supervisor" {
            return;
        }
        let mut fields = StopFields::default();
        event.record(&mut fields);
        if fields.message == "child stopped" {
            line(&format!("stopped {} {}", fields.path, fields.reason));
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flags = Cli::parse();
    QUIET.store(flags.quiet, std::sync::atomic::Ordering::Relaxed);
    let slow: HashMap<&str, Duration> = flags.slow.iter().map(|(p, d)| (p.as_str(), *d)).collect();
    let slow_start: HashMap<&str, Duration> = flags
        .slow_start
        .iter()
        .map(|(p, d)| (p.as_str(), *d))
        .collect();

    // Every worker's path, as the tree is built, so that `--slow` can be checked against them.
    let workers = RefCell::new(Vec::new());
    let worker = |path: &str| {
        workers.borrow_mut().push(path.to_string());
        let node = Node {
            path: path.to_string(),
            busy_for: slow.get(path).copied(),
            start_delay: slow_start.get(path).copied(),
        };
        let id = path.rsplit('/').next().unwrap_or(path).to_string();
        ChildSpec::actor(id, node, ()).shutdown(Shutdown::Timeout(flags.timeout))
    };
    // A supervisor announces itself from its init, before its own children start.
    let supervisor = |path: &'static str, spec: SupervisorSpec| {
        let id = path.rsplit('/').next().unwrap_or(path).to_string();
        ChildSpec::supervisor_with(id, move || {
            line(&format!("started {path}"));
            Ok(Some(spec.clone()))
        })
    };

    let pool = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("/app/web/pool/conn1"))
        .child(worker("/app/web/pool/conn2"))
        .children((1..=flags.fanout).map(|i| worker(&format!("/app/web/pool/w{i}"))));
    let web = SupervisorSpec::new(Strategy::RestForOne)
        .child(supervisor("/app/web/pool", pool))
        .child(worker("/app/web/listener"));
    let tree = SupervisorSpec::new(Strategy::OneForOne)
        .name("app")
        .child(worker("/app/db"))
        .child(worker("/app/cache"))
        .child(supervisor("/app/web", web))
        .child(worker("/app/metrics"));

    // A mistyped path would otherwise slow nothing down, and the run would not show what was asked.
    let workers = workers.into_inner();
    let unknown = (flags.slow.iter().map(|(p, _)| ("--slow", p)))
        .chain(flags.slow_start.iter().map(|(p, _)| ("--slow-start", p)))
        .find(|(_, p)| !workers.contains(p));
    if let Some((flag, path)) = unknown {
        let mut known: Vec<&str> = workers
            .iter()
            .map(String::as_str)
            .filter(|w| !w.starts_with("/app/web/pool/w"))
            .collect();
        known.sort_unstable();
        let fanout_range = format!("/app/web/pool/w1 ... /app/web/pool/w{}", flags.fanout);
        if flags.fanout > 0 {
            known.push(&fanout_range);
        }
        usage_error(format!(
            "invalid value '{path}' for '{flag} <PATH=MS>': not a worker of this tree \
             (workers: {})",
            known.join(", ")
        ));
    }

    // The log goes to stderr, or to a file through a non-blocking writer whose buffered lines are
    // flushed when its guard is dropped: the app keeps the guard until after its last line.
    let (writer, guard) = match &flags.log_file {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => tracing_appender::non_blocking(file),
            Err(e) => usage_error(format!(
                "invalid value '{}' for '--log-file <PATH>': cannot create it: {e}",
                path.display()
            )),
        },
        None => tracing_appender::non_blocking(std::io::stderr()),
    };
    tracing_subscriber::registry()
        .with(
            // Its own filter, so that RUST_LOG never hides a `stopped` line.
            StopLines.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.target() == "canopy::supervisor"
            })),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(flags.log_file.is_none())
                .with_filter(
                    EnvFilter::builder()
                        .with_default_directive(LevelFilter::INFO.into())
                        .from_env_lossy(),
                ),
        )
        .init();

    let app = App::new(tree)
        .drain_delay(flags.drain)
        .shutdown_deadline(flags.deadline)
        .keep_until_exit(guard);
    let health = app.health();
    let handle = app.handle();
    // Announce readiness as the app sees it.
    handle.spawn(async move {
        while !health.is_ready() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        line("ready");
    });
    let status = ExitStatus::of(app.run().await);
    line(&format!("exit {}", status.code()));
    status.into()
}
