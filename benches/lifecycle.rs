//! SIGTERM to process exit for a 1,000-actor tree (`cargo bench -p canopy-benches --bench
//! lifecycle`).
//!
//! Builds `examples/03_shutdown_order` in release mode, then 20 times: start it with `--fanout 1000
//! --quiet` (1,000 extra workers under `/app/web/pool`, 1,009 actors counting supervisors), wait for
//! `ready`, send SIGTERM, and time until the process has exited. The teardown phase's own duration
//! comes from the app's `phase done` log line. Prints the median, min and max of both.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 20;
const FANOUT: usize = 1000;
const ACTORS: usize = FANOUT + 9;

fn main() {
    // `cargo bench` passes flags such as `--bench`; this harness takes none.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        // The example belongs to canopy, not to this package, which is where `cargo bench` runs us.
        .args(["build", "--release", "-p", "canopy"])
        .args(["--example", "03_shutdown_order"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the example failed");
    let exe = std::env::current_exe().expect("bench path");
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(|p| p.to_path_buf())
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(Into::into))
        .expect("target dir");
    let example = target.join("release/examples/03_shutdown_order");

    let mut exits = Vec::new();
    let mut teardowns = Vec::new();
    for _ in 0..RUNS {
        let (exit, teardown) = one_run(&example);
        exits.push(exit);
        teardowns.push(teardown);
    }
    report("SIGTERM -> exit", &mut exits);
    report("teardown phase", &mut teardowns);
    let mut per_actor: Vec<Duration> = teardowns.iter().map(|d| *d / ACTORS as u32).collect();
    report("teardown per actor", &mut per_actor);
}

fn one_run(example: &std::path::Path) -> (Duration, Duration) {
    let mut child = Command::new(example)
        .args(["--fanout", &FANOUT.to_string(), "--quiet"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while out.read_line(&mut line).expect("read") > 0 {
        if line.trim() == "ready" {
            break;
        }
        line.clear();
    }
    // Let the tree settle after readiness.
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    let exit = sent.elapsed();
    assert_eq!(status.code(), Some(0), "clean exit expected");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    (exit, teardown_ms(&err))
}

/// The teardown phase's duration from the app's log (ANSI colour codes removed).
fn teardown_ms(log: &str) -> Duration {
    let plain: String = {
        let mut s = String::with_capacity(log.len());
        let mut chars = log.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                s.push(c);
            }
        }
        s
    };
    let line = plain
        .lines()
        .find(|l| l.contains("phase=\"teardown\""))
        .expect("teardown phase logged");
    let ms: f64 = line
        .split("elapsed_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("elapsed_ms");
    Duration::from_secs_f64(ms / 1000.0)
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "{what:>20}: median {:>10.3?}  min {:>10.3?}  max {:>10.3?}  ({} runs)",
        median,
        samples[0],
        samples[samples.len() - 1],
        samples.len()
    );
}
