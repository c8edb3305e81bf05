//! Process-level lifecycle tests: build the example binaries, run them as real processes, send real
//! signals, and read what they print and how they exit.
//!
//! Each test owns its process and kills it if the test fails, so no process outlives the run.

#[path = "signals/http.rs"]
mod http;
#[path = "signals/order.rs"]
mod order;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Builds an example once per test binary and returns its path.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap();
    // target/<profile>/deps/signals-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("examples");
    let path = dir.join(name);
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", name]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building example {name} failed");
        built.push(name.to_string());
    }
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// A running example process whose stdout lines are collected with the time they arrived.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    pub spawned: Instant,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("example starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Proc {
            child,
            lines,
            spawned: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Waits (up to `within`) for a line for which `pred` holds; returns when it arrived.
    pub fn wait_line(&self, within: Duration, pred: impl Fn(&str) -> bool) -> Instant {
        let until = Instant::now() + within;
        loop {
            if let Some((at, _)) = self.lines.lock().unwrap().iter().find(|(_, l)| pred(l)) {
                return *at;
            }
            assert!(
                Instant::now() < until,
                "no matching line within {within:?}; got {:#?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The time a line equal to `text` arrived, if it has.
    pub fn line_at(&self, text: &str) -> Option<Instant> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l == text)
            .map(|(at, _)| *at)
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit (up to `within`); returns its exit code and when it exited.
    pub fn wait_exit(&mut self, within: Duration) -> (i32, Instant) {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let at = Instant::now();
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return (status.code().unwrap_or(-1), at);
            }
            assert!(
                Instant::now() < until,
                "process did not exit within {within:?}; lines {:#?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
