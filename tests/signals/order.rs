//! Example 03 under real signals: ordered teardown, per-child timeouts, the global deadline and the
//! second signal.

use std::time::Duration;

use crate::Proc;

const EXAMPLE: &str = "03_shutdown_order";
const SECS: fn(u64) -> Duration = Duration::from_secs;

fn paths(lines: &[String], prefix: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| rest.split(' ').next().unwrap_or("").to_string())
        .collect()
}

fn start(args: &[&str]) -> Proc {
    let p = Proc::spawn(EXAMPLE, args);
    p.wait_line(SECS(30), |l| l == "ready");
    p
}

/// The stop order must be the exact reverse of the start order: supervisors announce themselves
/// before their children start and are reported stopped after their children are down, so the
/// reverse holds level by level and across the whole tree.
fn assert_reverse_order(p: &Proc) {
    let lines = p.lines();
    let started = paths(&lines, "started ");
    let stopped = paths(&lines, "stopped ");
    assert_eq!(started.len(), 8, "every child started: {lines:#?}");
    let mut reversed = started.clone();
    reversed.reverse();
    assert_eq!(
        stopped, reversed,
        "stop order is the reverse of the start order"
    );
}

#[test]
fn sigterm_stops_in_reverse_start_order_and_exits_0() {
    let mut p = start(&[]);
    p.signal("TERM");
    let (code, _) = p.wait_exit(SECS(20));
    assert_eq!(code, 0, "clean graceful stop: {:#?}", p.lines());
    assert_reverse_order(&p);
    assert!(p
        .lines()
        .iter()
        .filter(|l| l.starts_with("stopped "))
        .all(|l| l.ends_with(" shutdown")));
}

#[test]
fn sigint_alone_is_graceful() {
    let mut p = start(&[]);
    p.signal("INT");
    let (code, _) = p.wait_exit(SECS(20));
    assert_eq!(code, 0);
    assert_reverse_order(&p);
}

#[test]
fn slow_child_is_killed_at_its_own_timeout_and_siblings_still_stop_in_order() {
    // The listener is busy for 20 s and takes no stop; its shutdown timeout is 1 s.
    let mut p = start(&["--slow", "/app/web/listener=20000", "--timeout", "1000"]);
    let sent = std::time::Instant::now();
    p.signal("TERM");
    let (code, exited) = p.wait_exit(SECS(15));
    assert_eq!(
        code, 0,
        "a child killed at its own timeout is still a clean stop"
    );
    assert_reverse_order(&p);
    let lines = p.lines();
    assert!(
        lines.contains(&"stopped /app/web/listener killed".to_string()),
        "{lines:#?}"
    );
    let waited = exited - sent;
    assert!(
        waited >= Duration::from_millis(900),
        "the timeout was waited out: {waited:?}"
    );
    assert!(
        waited < SECS(15),
        "the slow child was killed, not waited for: {waited:?}"
    );
}

#[test]
fn global_deadline_ends_the_process_with_the_deadline_code() {
    // db ignores its stop for a minute and its own timeout is 30 s: only the 2 s deadline can end it.
    let mut p = start(&[
        "--slow",
        "/app/db=60000",
        "--timeout",
        "30000",
        "--deadline",
        "2000",
    ]);
    let sent = std::time::Instant::now();
    p.signal("TERM");
    let (code, exited) = p.wait_exit(SECS(20));
    assert_eq!(code, 5, "deadline code: {:#?}", p.lines());
    let took = exited - sent;
    assert!(
        took >= Duration::from_millis(1900),
        "stopped before the deadline: {took:?}"
    );
    assert!(
        took <= SECS(3),
        "the process must end within deadline + 1 s, took {took:?}"
    );
    // Everything started after db stopped in order before the deadline hit db, and db, killed by
    // the deadline, is reported killed by path.
    let lines = p.lines();
    let stopped = paths(&lines, "stopped ");
    assert_eq!(stopped.first().map(String::as_str), Some("/app/metrics"));
    assert!(
        lines.contains(&"stopped /app/db killed".to_string()),
        "{lines:#?}"
    );
    assert_exit_is_last(&lines);
}

/// `exit <code>` is the last line: nothing is reported stopped after the process said it exits.
fn assert_exit_is_last(lines: &[String]) {
    let exit = lines.iter().position(|l| l.starts_with("exit "));
    assert_eq!(exit, Some(lines.len() - 1), "{lines:#?}");
}

#[test]
fn sigterm_then_sigint_exits_at_once_with_the_second_signal_code() {
    // metrics is stopped first and hangs for a minute (timeout 30 s, deadline 25 s).
    let mut p = start(&["--slow", "/app/metrics=60000", "--timeout", "30000"]);
    p.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    let second = std::time::Instant::now();
    p.signal("INT");
    let (code, exited) = p.wait_exit(SECS(20));
    assert_eq!(code, 6, "second-signal code: {:#?}", p.lines());
    assert!(
        exited - second < SECS(10),
        "the second signal cut the stop short"
    );
    // Nothing after metrics was stopped gracefully: the rest was killed with the tree, and every
    // child killed is reported by path.
    let lines = p.lines();
    assert!(!lines.iter().any(|l| l == "stopped /app/db shutdown"));
    assert!(
        lines.contains(&"stopped /app/metrics killed".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"stopped /app/db killed".to_string()),
        "{lines:#?}"
    );
    assert_exit_is_last(&lines);
}

#[test]
fn drain_delay_keeps_the_tree_up_before_teardown() {
    let mut p = start(&["--drain", "1500"]);
    let sent = std::time::Instant::now();
    p.signal("TERM");
    let first_stop = p.wait_line(SECS(20), |l| l.starts_with("stopped "));
    assert!(
        first_stop - sent >= Duration::from_millis(1400),
        "teardown began after the drain delay"
    );
    let (code, _) = p.wait_exit(SECS(20));
    assert_eq!(code, 0);
    assert_reverse_order(&p);
}

#[test]
fn the_last_log_line_reaches_the_log_file() {
    let dir = std::env::temp_dir().join(format!("canopy-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("app.log");
    let mut p = start(&["--log-file", log.to_str().unwrap()]);
    p.signal("TERM");
    let (code, _) = p.wait_exit(SECS(20));
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&log).expect("log file written");
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("log not empty");
    assert!(
        last.contains("shutdown complete") && last.contains("status=0"),
        "the last line of the file is the final one: {last}"
    );
    assert!(text.contains("shutdown triggered"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_slow_path_that_names_no_worker_is_a_usage_error() {
    // A typo must not pass for a run in which nothing was slow.
    let mut p = Proc::spawn(EXAMPLE, &["--slow", "/app/web/listner=1000"]);
    let (code, _) = p.wait_exit(SECS(20));
    assert_eq!(code, 2, "usage error: {:#?}", p.lines());
    assert!(p.lines().is_empty(), "nothing started: {:#?}", p.lines());
}

/// SIGTERM while a child's start is still waiting: the start is abandoned, what had started is
/// stopped in reverse order, and the status says the start was interrupted.
#[test]
fn sigterm_during_start_up_abandons_the_start_in_reverse_order() {
    let mut p = Proc::spawn(EXAMPLE, &["--slow-start", "/app/web/listener=60000"]);
    p.wait_line(SECS(30), |l| l == "starting /app/web/listener");
    p.signal("TERM");
    let (code, _) = p.wait_exit(SECS(20));
    let lines = p.lines();
    assert_eq!(code, 7, "start interrupted: {lines:#?}");
    assert!(!lines.iter().any(|l| l == "ready"), "{lines:#?}");
    let mut started = paths(&lines, "started ");
    assert_eq!(
        started,
        [
            "/app/db",
            "/app/cache",
            "/app/web",
            "/app/web/pool",
            "/app/web/pool/conn1",
            "/app/web/pool/conn2"
        ],
        "the listener never finished starting, metrics never began"
    );
    // /app/web failed its start (its listener's was abandoned): it is not a started child of
    // /app, so nobody reports stopping it; everything else stops in reverse order.
    started.retain(|p| p != "/app/web");
    started.reverse();
    assert_eq!(paths(&lines, "stopped "), started, "{lines:#?}");
    assert!(lines
        .iter()
        .filter(|l| l.starts_with("stopped "))
        .all(|l| l.ends_with(" shutdown")));
    assert_exit_is_last(&lines);
}

/// A second signal while an abandoned start unwinds kills what is left at once.
#[test]
fn a_second_signal_during_start_up_kills_at_once() {
    let mut p = Proc::spawn(
        EXAMPLE,
        &[
            "--slow-start",
            "/app/web/listener=60000",
            "--slow",
            "/app/web/pool/conn1=60000",
            "--timeout",
            "30000",
        ],
    );
    p.wait_line(SECS(30), |l| l == "starting /app/web/listener");
    p.signal("TERM");
    // conn2 stops first; conn1 then hangs in its stop for half a minute.
    p.wait_line(SECS(20), |l| l == "stopped /app/web/pool/conn2 shutdown");
    let second = std::time::Instant::now();
    p.signal("INT");
    let (code, exited) = p.wait_exit(SECS(20));
    let lines = p.lines();
    assert_eq!(code, 6, "second signal: {lines:#?}");
    assert!(
        exited - second < SECS(10),
        "killed at once, not after conn1's timeout"
    );
    for killed in ["/app/web/pool/conn1", "/app/db", "/app/cache"] {
        assert!(
            lines.contains(&format!("stopped {killed} killed")),
            "{killed} reported killed: {lines:#?}"
        );
    }
    assert_exit_is_last(&lines);
}
