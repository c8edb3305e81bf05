//! Example 02 (an axum server under an `App`) as a real process: readiness turns off at the signal,
//! the drain delay keeps serving, the server stops first and finishes what it accepted, and nothing
//! it accepted fails.
//!
//! Every client here talks HTTP/1.1 over a plain `TcpStream` to 127.0.0.1 only, with a timeout on
//! every request, and every loop is bounded in count and time.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Proc;

const EXAMPLE: &str = "02_http_service";
/// The bound on any one request (connect, send, and read to the end).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A port that was free a moment ago (the listener that found it is dropped).
fn free_port() -> u16 {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    probe.local_addr().expect("local addr").port()
}

/// Starts the example on a free port and waits until it is ready. The port is found free then given
/// to the child, so someone else may take it in between: the example then exits with 3 before
/// `ready`, and this tries another port (three times at most).
fn start_service(extra: &[&str]) -> (Proc, u16) {
    for _ in 0..3 {
        let port = free_port();
        let port_text = port.to_string();
        let mut args = vec!["--port", port_text.as_str()];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(EXAMPLE, &args);
        proc.wait_line(Duration::from_secs(10), |l| {
            l == "ready" || l.starts_with("exit ")
        });
        if proc.line_at("ready").is_some() {
            assert!(
                proc.line_at(&format!("listening 127.0.0.1:{port}"))
                    .is_some(),
                "no `listening` line for port {port}: {:#?}",
                proc.lines()
            );
            return (proc, port);
        }
        assert_eq!(
            proc.line_at("exit 3").map(|_| ()),
            Some(()),
            "the example exited before `ready` for another reason: {:#?}",
            proc.lines()
        );
    }
    panic!("the example could not get a free port in three tries");
}

/// The position of the first line equal to `text`.
fn index_of(lines: &[String], text: &str) -> Option<usize> {
    lines.iter().position(|l| l == text)
}

/// Asserts the `stopped` lines of the three workers: exactly one each, http, then cache, then db.
fn assert_stop_order(lines: &[String]) {
    let stopped: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("stopped "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        stopped,
        ["stopped http", "stopped cache", "stopped db"],
        "stop order; all lines {lines:#?}"
    );
}

/// How one request went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A complete response with this status and body.
    Reply(u16, String),
    /// The connection was refused or could not be made: nothing was accepted.
    Refused(String),
    /// Connected, but the request could not be sent, or no response came back (reset, closed, timed
    /// out) before a single byte of it.
    Dropped(String),
    /// Something came back that is not a complete HTTP response.
    Malformed(String),
}

impl Outcome {
    fn is(&self, status: u16, body: &str) -> bool {
        matches!(self, Outcome::Reply(s, b) if *s == status && b == body)
    }
}

/// `GET path` on 127.0.0.1:port with `Connection: close`, bounded by [`REQUEST_TIMEOUT`].
fn get(port: u16, path: &str) -> Outcome {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = match TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let until = Instant::now() + REQUEST_TIMEOUT;
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return Outcome::Dropped(format!("send: {e}"));
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return cut_off(&response, "timed out");
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) => return cut_off(&response, &e.to_string()),
        }
    }
    parse(&response)
}

/// A read that ended in an error: dropped if nothing came back, malformed if part of it did.
fn cut_off(response: &[u8], why: &str) -> Outcome {
    if response.is_empty() {
        Outcome::Dropped(why.to_string())
    } else {
        Outcome::Malformed(format!("cut off ({why}) after {} bytes", response.len()))
    }
}

/// Parses a whole `Connection: close` response: the status line, headers, and a body of exactly
/// `content-length` bytes.
fn parse(response: &[u8]) -> Outcome {
    if response.is_empty() {
        return Outcome::Dropped("closed with no response".into());
    }
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Malformed(format!("no end of headers in {text:?}"));
    };
    let mut head_lines = head.split("\r\n");
    let status = head_lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else {
        return Outcome::Malformed(format!("bad status line in {text:?}"));
    };
    let length = head_lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    if length != Some(body.len()) {
        return Outcome::Malformed(format!(
            "body of {} bytes, content-length {length:?}",
            body.len()
        ));
    }
    Outcome::Reply(status, body.to_string())
}

/// Polls `/readyz` every 10 ms until it answers 503 (or `within` passes); returns when that answer
/// arrived.
fn wait_unready(port: u16, within: Duration) -> Instant {
    let until = Instant::now() + within;
    for _ in 0..1000 {
        let outcome = get(port, "/readyz");
        if outcome.is(503, "not ready") {
            return Instant::now();
        }
        assert!(
            outcome.is(200, "ready"),
            "/readyz answered {outcome:?} before turning 503"
        );
        assert!(Instant::now() < until, "/readyz still 200 after {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("/readyz still 200 after 1000 polls");
}

#[test]
fn readyz_turns_503_before_first_stop_during_drain() {
    let (mut proc, port) = start_service(&["--drain", "1500"]);
    let lines = proc.lines();
    let started: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("started "))
        .map(String::as_str)
        .collect();
    assert_eq!(started, ["started db", "started cache", "started http"]);
    assert!(get(port, "/readyz").is(200, "ready"));
    assert!(get(port, "/healthz").is(200, "live"));
    assert!(get(port, "/work").is(200, "done"));

    proc.signal("TERM");
    // The bound is loose on purpose: what matters is that 503 comes before any child stops.
    let unready_at = wait_unready(port, Duration::from_secs(5));
    let lines_then = proc.lines();
    assert!(
        !lines_then.iter().any(|l| l.starts_with("stopped ")),
        "a child stopped before /readyz turned 503: {lines_then:#?}"
    );

    // Inside the drain delay the service still serves, and is still live.
    let work = get(port, "/work");
    let work_done_at = Instant::now();
    assert!(work.is(200, "done"), "/work during the drain: {work:?}");
    assert!(get(port, "/healthz").is(200, "live"));
    assert!(get(port, "/readyz").is(503, "not ready"));

    let (code, _) = proc.wait_exit(Duration::from_secs(10));
    let lines = proc.lines();
    assert_eq!(code, 0, "exit code; lines {lines:#?}");
    assert_eq!(lines.last().map(String::as_str), Some("exit 0"));
    assert_stop_order(&lines);
    let first_stop = proc.line_at("stopped http").expect("stopped http");
    assert!(
        unready_at < first_stop,
        "/readyz turned 503 only after `stopped http`"
    );
    assert!(
        work_done_at < first_stop,
        "/work in the drain finished only after `stopped http`"
    );
}

/// One request of the load, as the client saw it.
#[derive(Debug, Clone)]
struct Sample {
    began: Instant,
    ended: Instant,
    outcome: Outcome,
}

/// One client: sequential `/work` requests until `until`, at most `max` of them; it gives up after
/// three refusals in a row (the server is gone).
fn client(port: u16, until: Instant, max: usize, samples: Arc<Mutex<Vec<Sample>>>) {
    let mut refused_in_a_row = 0;
    for _ in 0..max {
        if Instant::now() >= until || refused_in_a_row >= 3 {
            return;
        }
        let began = Instant::now();
        let outcome = get(port, "/work");
        let ended = Instant::now();
        let refused = matches!(outcome, Outcome::Refused(_));
        samples.lock().unwrap().push(Sample {
            began,
            ended,
            outcome,
        });
        if refused {
            refused_in_a_row += 1;
            std::thread::sleep(Duration::from_millis(50));
        } else {
            refused_in_a_row = 0;
        }
    }
}

/// One `/readyz` poll: when it was sent, when its answer came, and the answer.
#[derive(Debug, Clone)]
struct Probe {
    sent: Instant,
    answered: Instant,
    outcome: Outcome,
}

/// Polls `/readyz` every 10 ms until the first 503 (or `until`, or 500 polls).
fn prober(port: u16, until: Instant) -> Vec<Probe> {
    let mut probes = Vec::new();
    for _ in 0..500 {
        if Instant::now() >= until {
            break;
        }
        let sent = Instant::now();
        let outcome = get(port, "/readyz");
        let unready = !outcome.is(200, "ready");
        probes.push(Probe {
            sent,
            answered: Instant::now(),
            outcome,
        });
        if unready {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    probes
}

#[test]
fn graceful_stop_under_load_fails_no_accepted_request() {
    const CLIENTS: usize = 4;
    let (mut proc, port) = start_service(&["--drain", "1000"]);

    let load_began = Instant::now();
    let until = load_began + Duration::from_secs(4);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let samples = samples.clone();
            std::thread::spawn(move || client(port, until, 40, samples))
        })
        .collect();
    let prober = std::thread::spawn(move || prober(port, until));

    std::thread::sleep(Duration::from_secs(1));
    proc.signal("TERM");
    let (code, _) = proc.wait_exit(Duration::from_secs(10));
    for c in clients {
        c.join().expect("client thread");
    }
    let probes = prober.join().expect("prober thread");
    let samples = samples.lock().unwrap().clone();
    let lines = proc.lines();
    assert_eq!(code, 0, "exit code; lines {lines:#?}");
    assert_stop_order(&lines);
    let first_stop = proc.line_at("stopped http").expect("stopped http");

    // Readiness was still on when the last 200 probe was sent, and off when the first 503 came back.
    let first_unready = probes
        .iter()
        .position(|p| !p.outcome.is(200, "ready"))
        .unwrap_or_else(|| panic!("/readyz never stopped answering 200: {probes:#?}"));
    let unready = &probes[first_unready];
    assert!(
        unready.outcome.is(503, "not ready"),
        "/readyz answered {:?} instead of 503",
        unready.outcome
    );
    assert!(first_unready > 0, "/readyz was never 200 under load");
    let still_ready_at = probes[first_unready - 1].sent;
    let unready_at = unready.answered;
    assert!(
        unready_at < first_stop,
        "/readyz turned 503 only after `stopped http`"
    );

    let accepted_before_unready: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.began < still_ready_at)
        .collect();
    let failed: Vec<&&Sample> = accepted_before_unready
        .iter()
        .filter(|s| !s.outcome.is(200, "done"))
        .collect();
    let malformed: Vec<&Sample> = samples
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Malformed(_)))
        .collect();
    let served_in_drain = samples
        .iter()
        .filter(|s| s.began > unready_at && s.ended < first_stop && s.outcome.is(200, "done"))
        .count();
    let ok = samples.iter().filter(|s| s.outcome.is(200, "done")).count();
    let refused = samples
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Refused(_)))
        .count();
    let dropped_after_unready = samples
        .iter()
        .filter(|s| s.began >= still_ready_at && matches!(s.outcome, Outcome::Dropped(_)))
        .count();
    let summary = format!(
        "{} requests: {ok} ok ({served_in_drain} begun and served inside the drain), {refused} \
         refused, {dropped_after_unready} dropped after readiness turned off; {} begun before it",
        samples.len(),
        accepted_before_unready.len()
    );

    assert!(
        failed.is_empty(),
        "{summary}; failed before readiness turned off: {failed:#?}"
    );
    assert!(
        malformed.is_empty(),
        "{summary}; cut-off or malformed responses: {malformed:#?}"
    );
    assert!(
        accepted_before_unready.len() >= CLIENTS,
        "{summary}: too little load before the signal"
    );
    assert!(
        served_in_drain > 0,
        "{summary}: nothing was served during the drain"
    );
    // Every request either succeeded or never reached the server once it stopped listening.
    for s in &samples {
        match &s.outcome {
            o if o.is(200, "done") => {}
            Outcome::Refused(_) | Outcome::Dropped(_) => {
                assert!(s.began >= still_ready_at, "{summary}; {s:?}")
            }
            other => panic!("{summary}; /work answered {other:?}"),
        }
    }
    eprintln!("graceful_stop_under_load: {summary}");
}

#[test]
fn port_taken_fails_start_with_status_3() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let port = taken.local_addr().expect("local addr").port().to_string();
    let mut proc = Proc::spawn(EXAMPLE, &["--port", &port]);
    let (code, _) = proc.wait_exit(Duration::from_secs(10));
    let lines = proc.lines();
    assert_eq!(code, 3, "exit code; lines {lines:#?}");
    assert!(
        index_of(&lines, "ready").is_none(),
        "ready although the start failed: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("listening ")),
        "listening on a taken port: {lines:#?}"
    );
    // What had started is stopped again, in reverse order.
    let stopped: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("stopped "))
        .map(String::as_str)
        .collect();
    assert_eq!(stopped, ["stopped cache", "stopped db"], "lines {lines:#?}");
    assert_eq!(lines.last().map(String::as_str), Some("exit 3"));
    drop(taken);
}
