//! # 03: ordered shutdown of a three-level tree, with slow children, a drain delay and a deadline
//!
//! Run it, then stop it with Ctrl-C (SIGINT) or `kill -TERM <pid>`:
//!
//! ```text
//! cargo run --example 03_shutdown_order
//! cargo run --example 03_shutdown_order -- --slow /app/web/listener=3000 --deadline 2000 --drain 500
//! ```
//!
//! What you will see on stdout, one line each, flushed at once:
//!
//! - `started <path>` for every child as it starts, in start order (a supervisor before its children);
//! - `ready` once the whole tree is up;
//! - after the signal, `stopped <path> <reason>` for every child as its supervisor stops it: the exact
//!   reverse of the start order, level by level. `<reason>` is `shutdown`, or `killed` for a child
//!   that ignored its stop past its shutdown timeout or the global deadline;
//! - `exit <code>`: 0 clean, 5 deadline reached, 6 second signal (see `canopy::app::ExitStatus`).
//!
//! Flags:
//!
//! - `--slow <path>=<ms>`: that worker is busy for `<ms>` ms from the start and takes no stop until then
//!   (repeatable);
//! - `--timeout <ms>`: every worker's shutdown timeout (default 1000);
//! - `--deadline <ms>`: the global shutdown deadline (default 25000);
//! - `--drain <ms>`: the drain delay (default 0);
//! - `--fanout <n>`: `n` more workers under `/app/web/pool` (`/app/web/pool/w1`...), for load;
//! - `--quiet`: no `started`/`stopped` lines (the benchmark uses this with `--fanout 1000`);
//! - `--log-file <path>`: write the log there through a non-blocking writer instead of stderr; its
//!   guard is kept until after the last line (`shutdown complete`), so that line always reaches
//!   the file.
//!
//! The process-level tests in `tests/signals.rs` drive this binary.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use canopy::app::{App, ExitStatus};
use canopy::{ChildSpec, Shutdown, Strategy, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::field::{Field, Visit};
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
}

struct Busy(Duration);

impl Actor for Node {
    type Msg = Busy;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, me: ActorRef<Busy>, _: ()) -> Result<(), ActorProcessingErr> {
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

struct Flags {
    slow: HashMap<String, Duration>,
    timeout: Duration,
    deadline: Duration,
    drain: Duration,
    fanout: usize,
    log_file: Option<std::path::PathBuf>,
}

fn parse_flags() -> Result<Flags, String> {
    let mut flags = Flags {
        slow: HashMap::new(),
        timeout: Duration::from_millis(1000),
        deadline: Duration::from_millis(25_000),
        drain: Duration::ZERO,
        fanout: 0,
        log_file: None,
    };
    let ms = |v: Option<String>, flag: &str| -> Result<Duration, String> {
        let v = v.ok_or(format!("{flag} needs a value in milliseconds"))?;
        v.parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{flag}: `{v}` is not a number of milliseconds"))
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--slow" => {
                let v = args.next().ok_or("--slow needs <path>=<ms>")?;
                let (path, d) = v
                    .split_once('=')
                    .ok_or(format!("--slow: `{v}` is not <path>=<ms>"))?;
                flags
                    .slow
                    .insert(path.to_string(), ms(Some(d.to_string()), "--slow")?);
            }
            "--timeout" => flags.timeout = ms(args.next(), "--timeout")?,
            "--deadline" => flags.deadline = ms(args.next(), "--deadline")?,
            "--drain" => flags.drain = ms(args.next(), "--drain")?,
            "--fanout" => {
                let v = args.next().ok_or("--fanout needs a count")?;
                flags.fanout = v
                    .parse()
                    .map_err(|_| format!("--fanout: `{v}` is not a count"))?;
            }
            "--quiet" => QUIET.store(true, std::sync::atomic::Ordering::Relaxed),
            "--log-file" => {
                flags.log_file = Some(args.next().ok_or("--log-file needs a path")?.into())
            }
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    Ok(flags)
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
    let flags = match parse_flags() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("03_shutdown_order: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    // The log goes to stderr, or to a file through a non-blocking writer whose buffered lines are
    // flushed when its guard is dropped: the app keeps the guard until after its last line.
    let (writer, guard) = match &flags.log_file {
        Some(path) => {
            let file = match std::fs::File::create(path) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("03_shutdown_order: cannot create {}: {e}", path.display());
                    return std::process::ExitCode::from(64);
                }
            };
            tracing_appender::non_blocking(file)
        }
        None => tracing_appender::non_blocking(std::io::stderr()),
    };
    tracing_subscriber::registry()
        .with(
            StopLines.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.target() == "canopy::supervisor"
            })),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(flags.log_file.is_none())
                .with_filter(tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let worker = |path: &str| {
        let node = Node {
            path: path.to_string(),
            busy_for: flags.slow.get(path).copied(),
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
