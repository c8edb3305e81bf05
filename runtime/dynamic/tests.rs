//! Unit tests of the pure dynamic core: one per rule, no runtime.
//!
//! [`Shell`] plays the part of the ractor shell, like the static core's tests do: it answers every
//! [`DynCommand`] until [`DynCommand::Done`], taking start results and stop reasons from scripts
//! (by default a start succeeds with a fresh pid and a stop ends with `shutdown`, or `killed` for a
//! brutal kill), and records the commands as `S:key(args)`, `T:key` and `TA:key,key,…` so that a
//! test can assert them exactly. It remembers the last retry handed out for each child, which
//! `retry` hands back as a timer would. Time is passed in as offsets from a base instant.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::core::*;
use super::DynamicSpec;
use crate::backoff::Backoff;
use crate::core::{ChildError, ChildStatus, Report, StartFailure, REACHED_MAX_RESTART_INTENSITY};
use crate::exit::ExitReason;
use crate::spec::{ChildKind, Restart, Shutdown, SpecError, Start};

// -------------------------------------------------------------------------------------------------
// Fixtures

/// A template whose start function is never called: the shell answers for it. Arguments are u32.
fn template() -> DynamicSpec<u32> {
    DynamicSpec::new(|_sup, _args: u32| async { Ok(Start::Ignore) })
}

fn reasons() -> [ExitReason; 5] {
    [
        ExitReason::Normal,
        ExitReason::Shutdown,
        ExitReason::ShutdownWith("bye".into()),
        ExitReason::Killed,
        ExitReason::Error("boom".into()),
    ]
}

fn gave_up() -> ExitReason {
    ExitReason::ShutdownWith(REACHED_MAX_RESTART_INTENSITY.into())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the shell answers to one `Start`.
#[derive(Debug, Clone)]
enum Started {
    Ok,
    Ignore,
    Fail(&'static str),
    Clash(u64),
}

struct Shell {
    core: DynCore<u64, u32>,
    t0: Instant,
    next_pid: u64,
    starts: VecDeque<Started>,
    stops: VecDeque<Option<ExitReason>>,
    log: Vec<String>,
    /// The last retry handed out for each child.
    retries: HashMap<u64, DynRetry>,
}

impl Shell {
    fn new(spec: DynamicSpec<u32>) -> Self {
        Shell {
            core: DynCore::new(&spec).expect("valid spec").with_jitter_seed(1),
            t0: Instant::now(),
            next_pid: 100,
            starts: VecDeque::new(),
            stops: VecDeque::new(),
            log: Vec::new(),
            retries: HashMap::new(),
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn script_starts(&mut self, answers: impl IntoIterator<Item = Started>) {
        self.starts.extend(answers);
    }

    fn run(&mut self, mut cmd: DynCommand<u64, u32>) -> DynOutcome<u64> {
        loop {
            cmd = match cmd {
                DynCommand::Start { key, args } => {
                    self.log.push(format!("S:{key}({args})"));
                    let result = match self.starts.pop_front().unwrap_or(Started::Ok) {
                        Started::Ok => {
                            self.next_pid += 1;
                            Ok(Some(self.next_pid))
                        }
                        Started::Ignore => Ok(None),
                        Started::Fail(reason) => Err(StartFailure::Error(reason.into())),
                        Started::Clash(pid) => Err(StartFailure::AlreadyStarted(pid)),
                    };
                    self.core.started(result)
                }
                DynCommand::Terminate { key, pid, shutdown } => {
                    assert_eq!(self.core.key_of(&pid), Some(key));
                    self.log.push(format!("T:{key}"));
                    let reason = self.stop_reason(shutdown);
                    self.core.terminated(reason)
                }
                DynCommand::TerminateAll { children } => {
                    let mut keys: Vec<u64> = children.iter().map(|c| c.0).collect();
                    keys.sort_unstable();
                    let keys: Vec<String> = keys.iter().map(u64::to_string).collect();
                    self.log.push(format!("TA:{}", keys.join(",")));
                    let results = children
                        .into_iter()
                        .map(|(key, pid, shutdown)| {
                            assert_eq!(self.core.key_of(&pid), Some(key));
                            (key, self.stop_reason(shutdown))
                        })
                        .collect();
                    self.core.terminated_all(results)
                }
                DynCommand::Done(outcome) => {
                    if let DynOutcome::Idle { retry: Some(r) } = &outcome {
                        self.retries.insert(r.key, *r);
                    }
                    return outcome;
                }
            }
        }
    }

    fn stop_reason(&mut self, policy: Shutdown) -> Option<ExitReason> {
        let usual = match policy {
            Shutdown::BrutalKill => ExitReason::Killed,
            _ => ExitReason::Shutdown,
        };
        self.stops.pop_front().unwrap_or(Some(usual))
    }

    fn take_log(&mut self) -> String {
        std::mem::take(&mut self.log).join(" ")
    }

    fn reports(&mut self) -> Vec<Report> {
        self.core.take_reports()
    }

    fn start_child(&mut self, args: u32) -> Result<Option<u64>, ChildError<u64>> {
        let cmd = self.core.start_child(args);
        reply(self.run(cmd))
    }

    /// start_child that must start a process; returns it.
    fn add(&mut self, args: u32) -> u64 {
        self.start_child(args)
            .expect("start_child")
            .expect("a process")
    }

    fn terminate_child(&mut self, pid: u64, alive: bool) -> Result<Option<u64>, ChildError<u64>> {
        let cmd = self.core.terminate_child(&pid, alive);
        reply(self.run(cmd))
    }

    /// Process `pid` exits by itself at `secs`.
    fn exit(&mut self, pid: u64, reason: ExitReason, secs: f64) -> DynOutcome<u64> {
        let now = self.at(secs);
        let cmd = self
            .core
            .child_exited(&pid, reason, now)
            .unwrap_or_else(|| panic!("the exit of {pid} was taken as stale"));
        self.run(cmd)
    }

    /// The last retry handed out for `key` comes up at `secs`.
    fn retry(&mut self, key: u64, secs: f64) -> Option<DynOutcome<u64>> {
        let generation = self.generation(key);
        self.retry_gen(key, generation, secs)
    }

    /// A retry of `key` with this generation comes up at `secs`.
    fn retry_gen(&mut self, key: u64, generation: u64, secs: f64) -> Option<DynOutcome<u64>> {
        let now = self.at(secs);
        let cmd = self.core.retry_due(key, generation, now)?;
        Some(self.run(cmd))
    }

    /// The generation of the last retry handed out for `key`.
    fn generation(&self, key: u64) -> u64 {
        self.retries
            .get(&key)
            .unwrap_or_else(|| panic!("no retry was handed out for {key}"))
            .generation
    }

    /// What `which_children` shows, as text: to check that a call changed nothing.
    fn snapshot(&self) -> String {
        format!("{:?}", self.core.which_children())
    }

    fn shutdown(&mut self) -> DynOutcome<u64> {
        let cmd = self.core.shutdown(ExitReason::Shutdown);
        self.run(cmd)
    }

    /// The running pid of child `key`.
    fn pid(&self, key: u64) -> u64 {
        match self.status(key) {
            Some(ChildStatus::Running(pid)) => pid,
            other => panic!("child {key} is not running: {other:?}"),
        }
    }

    fn status(&self, key: u64) -> Option<ChildStatus<u64>> {
        self.core
            .which_children()
            .into_iter()
            .find(|c| c.id == key.to_string())
            .map(|c| c.status)
    }

    fn next_attempt(&self, key: u64) -> Option<Instant> {
        self.core
            .which_children()
            .into_iter()
            .find(|c| c.id == key.to_string())
            .and_then(|c| c.next_attempt)
    }

    fn ids(&self) -> Vec<String> {
        self.core
            .which_children()
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    fn counts(&self) -> [usize; 4] {
        let c = self.core.count_children();
        [c.specs, c.active, c.supervisors, c.workers]
    }
}

#[track_caller]
fn reply(outcome: DynOutcome<u64>) -> Result<Option<u64>, ChildError<u64>> {
    match outcome {
        DynOutcome::Reply(result) => result,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[track_caller]
fn assert_idle(outcome: &DynOutcome<u64>) {
    assert!(
        matches!(outcome, DynOutcome::Idle { retry: None }),
        "expected Idle without retry, got {outcome:?}"
    );
}

#[track_caller]
fn retry_of(outcome: &DynOutcome<u64>) -> DynRetry {
    match outcome {
        DynOutcome::Idle { retry: Some(r) } => *r,
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[track_caller]
fn assert_exit(outcome: &DynOutcome<u64>, reason: &ExitReason) {
    assert!(
        matches!(outcome, DynOutcome::Exit(r) if r == reason),
        "expected Exit({reason:?}), got {outcome:?}"
    );
}

// -------------------------------------------------------------------------------------------------
// Validation

#[test]
fn invalid_templates_are_typed_errors() {
    let new = |spec: DynamicSpec<u32>| DynCore::<u64, u32>::new(&spec).map(|_| ());
    assert_eq!(
        new(template().max_children(0)),
        Err(SpecError::ZeroMaxChildren)
    );
    assert_eq!(
        new(template().restart_intensity(3, Duration::ZERO)),
        Err(SpecError::ZeroPeriod)
    );
    assert!(matches!(
        new(template().backoff(Backoff::new(ms(10), ms(1)))),
        Err(SpecError::InvalidBackoff(_))
    ));
    assert_eq!(
        new(template().restart(Restart::Transient).significant(true)),
        Err(SpecError::SignificantDynamic)
    );
    assert!(new(template().max_children(1)).is_ok());
}

// -------------------------------------------------------------------------------------------------
// start_child (Child management API)

#[test]
fn start_child_runs_the_template_with_the_args_and_keeps_them() {
    let mut sh = Shell::new(template());
    let pid = sh.add(7);
    assert_eq!(sh.take_log(), "S:1(7)");
    assert_eq!(sh.core.key_of(&pid), Some(1));
    assert_eq!(sh.core.args_of(1), Some(&7));
    assert_eq!(sh.counts(), [1, 1, 0, 1]);
    assert_eq!(sh.ids(), ["1"]);
    assert!(sh.reports().is_empty());
}

#[test]
fn a_temporary_template_keeps_no_args() {
    let mut sh = Shell::new(template().restart(Restart::Temporary));
    sh.add(7);
    assert_eq!(sh.core.args_of(1), None);
    assert_eq!(sh.counts(), [1, 1, 0, 1]);
}

#[test]
fn start_child_ignore_is_ok_without_a_process_and_stores_nothing() {
    for restart in [Restart::Permanent, Restart::Temporary] {
        let mut sh = Shell::new(template().restart(restart));
        sh.script_starts([Started::Ignore]);
        assert_eq!(sh.start_child(1), Ok(None));
        assert_eq!(sh.counts(), [1, 0, 0, 0], "{restart:?}");
        assert!(sh.ids().is_empty());
    }
}

#[test]
fn start_child_failure_is_returned_as_is_and_stores_nothing() {
    let mut sh = Shell::new(template());
    sh.script_starts([Started::Fail("no such user")]);
    assert_eq!(
        sh.start_child(1),
        Err(ChildError::StartFailed {
            id: "1".into(),
            reason: "no such user".into()
        })
    );
    assert_eq!(sh.counts(), [1, 0, 0, 0]);
    assert!(
        sh.reports().is_empty(),
        "OTP logs no start_error for a start it answers to the caller"
    );
}

#[test]
fn start_child_clash_is_already_started_and_stores_nothing() {
    let mut sh = Shell::new(template());
    sh.script_starts([Started::Clash(42)]);
    assert_eq!(
        sh.start_child(1),
        Err(ChildError::AlreadyStarted {
            id: "1".into(),
            pid: 42
        })
    );
    assert_eq!(sh.counts(), [1, 0, 0, 0]);
}

#[test]
fn max_children_counts_running_restarting_and_delayed_children() {
    let mut sh = Shell::new(
        template()
            .max_children(3)
            .restart_intensity(100, Duration::from_secs(1)),
    );
    let a = sh.add(1);
    sh.add(2);
    sh.add(3);
    assert_eq!(sh.start_child(4), Err(ChildError::MaxChildren));
    // Child 1 fails to restart: it is restarting, and still counts.
    sh.script_starts([Started::Fail("down")]);
    let retry = retry_of(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
    assert_eq!(sh.status(1), Some(ChildStatus::Restarting));
    assert_eq!(sh.start_child(4), Err(ChildError::MaxChildren));
    // Once it is gone there is room again.
    sh.terminate_child(a, false).unwrap();
    assert!(sh.retry(retry.key, 0.1).is_none());
    assert!(sh.start_child(4).unwrap().is_some());

    // A child waiting for a backed-off restart counts too.
    let mut sh = Shell::new(
        template()
            .max_children(1)
            .backoff(Backoff::new(ms(100), ms(100)).jitter(0.0)),
    );
    let a = sh.add(1);
    retry_of(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
    assert!(sh.next_attempt(1).is_some());
    assert_eq!(sh.start_child(2), Err(ChildError::MaxChildren));
}

// -------------------------------------------------------------------------------------------------
// The exit decision table

#[test]
fn permanent_child_is_restarted_after_every_exit_with_its_own_args() {
    for reason in reasons() {
        let mut sh = Shell::new(template());
        let a = sh.add(10);
        let b = sh.add(20);
        sh.take_log();
        assert_idle(&sh.exit(a, reason.clone(), 0.0));
        assert_eq!(sh.take_log(), "S:1(10)", "same key, same args: {reason:?}");
        let a2 = sh.pid(1);
        assert_ne!(a2, a);
        assert_eq!(sh.pid(2), b, "the sibling is untouched");
        let info = &sh.core.which_children()[1];
        assert_eq!(
            (info.restarts, info.last_exit.clone()),
            (1, Some(reason.clone()))
        );
        assert_eq!(
            sh.reports(),
            [Report::ChildTerminated {
                id: "1".into(),
                reason: reason.clone()
            }]
        );
        // Again: the args are given at every restart.
        assert_idle(&sh.exit(a2, ExitReason::Killed, 1.0));
        assert_eq!(sh.take_log(), "S:1(10)");
    }
}

#[test]
fn transient_child_is_restarted_only_after_an_abnormal_exit_and_removed_otherwise() {
    for reason in reasons() {
        let mut sh = Shell::new(template().restart(Restart::Transient));
        let a = sh.add(1);
        sh.take_log();
        assert_idle(&sh.exit(a, reason.clone(), 0.0));
        if reason.is_normal_class() {
            assert_eq!(sh.take_log(), "", "{reason:?}");
            assert!(sh.ids().is_empty(), "not kept: {reason:?}");
            assert_eq!(sh.core.key_of(&a), None);
            assert!(sh.reports().is_empty());
        } else {
            assert_eq!(sh.take_log(), "S:1(1)", "{reason:?}");
            assert_eq!(sh.reports().len(), 1);
        }
    }
}

#[test]
fn temporary_child_is_never_restarted_and_only_abnormal_exits_are_reported() {
    for reason in reasons() {
        let mut sh = Shell::new(template().restart(Restart::Temporary));
        let a = sh.add(1);
        sh.take_log();
        assert_idle(&sh.exit(a, reason.clone(), 0.0));
        assert_eq!(sh.take_log(), "");
        assert_eq!(sh.counts(), [1, 0, 0, 0]);
        assert_eq!(sh.reports().len(), usize::from(!reason.is_normal_class()));
    }
}

#[test]
fn exits_of_strangers_and_of_replaced_or_terminated_children_are_stale() {
    let mut sh = Shell::new(template());
    let a = sh.add(1);
    let b = sh.add(2);
    let now = sh.at(0.0);
    assert!(sh
        .core
        .child_exited(&9999, ExitReason::Killed, now)
        .is_none());
    sh.exit(a, ExitReason::Killed, 0.0);
    assert!(
        sh.core.child_exited(&a, ExitReason::Killed, now).is_none(),
        "the replaced incarnation"
    );
    sh.terminate_child(b, true).unwrap();
    assert!(
        sh.core
            .child_exited(&b, ExitReason::Shutdown, now)
            .is_none(),
        "a terminated child"
    );
    assert_eq!(sh.counts(), [1, 1, 0, 1]);
}

#[test]
fn a_restart_that_returns_ignore_removes_the_child() {
    for restart in [Restart::Permanent, Restart::Transient] {
        let mut sh = Shell::new(template().restart(restart));
        let a = sh.add(1);
        sh.reports();
        sh.script_starts([Started::Ignore]);
        assert_idle(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
        assert!(sh.ids().is_empty(), "{restart:?}");
        assert_eq!(sh.counts(), [1, 0, 0, 0]);
        assert_eq!(sh.core.key_of(&a), None);
        assert!(sh
            .reports()
            .contains(&Report::RestartIgnored { id: "1".into() }));
    }
}

// -------------------------------------------------------------------------------------------------
// Restart intensity, failed restarts (try again)

#[test]
fn a_failed_restart_leaves_the_child_restarting_with_an_immediate_retry_that_counts() {
    let mut sh = Shell::new(template().restart_intensity(3, Duration::from_secs(10)));
    let a = sh.add(5);
    let b = sh.add(6);
    sh.take_log();
    sh.reports();
    sh.script_starts([Started::Fail("db down"), Started::Fail("db down")]);
    let retry = retry_of(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
    assert_eq!((retry.key, retry.after), (1, Duration::ZERO));
    assert_eq!(sh.status(1), Some(ChildStatus::Restarting));
    assert_eq!(
        sh.next_attempt(1),
        None,
        "not delayed, just waiting for its turn"
    );
    assert_eq!(
        sh.counts(),
        [1, 1, 0, 2],
        "restarting: a worker, not active"
    );
    assert_eq!(
        sh.core.key_of(&a),
        Some(1),
        "the old process still names it"
    );
    assert_eq!(
        sh.reports(),
        [
            Report::ChildTerminated {
                id: "1".into(),
                reason: ExitReason::Error("x".into())
            },
            Report::StartError {
                id: "1".into(),
                reason: "db down".into()
            }
        ]
    );
    // First retry (restart 2) fails too; the second (restart 3) succeeds, with the same args.
    retry_of(&sh.retry(1, 0.1).unwrap());
    assert_idle(&sh.retry(1, 0.2).unwrap());
    assert_eq!(sh.take_log(), "S:1(5) S:1(5) S:1(5)");
    let a2 = sh.pid(1);
    assert_eq!(sh.core.key_of(&a), None, "the old process is forgotten");
    assert_eq!(sh.core.key_of(&a2), Some(1));
    assert_eq!(sh.pid(2), b);
    // The budget (3 in 10 s) is spent: the next crash gives up.
    let out = sh.exit(a2, ExitReason::Error("y".into()), 0.3);
    assert_exit(&out, &gave_up());
}

#[test]
fn retries_that_keep_failing_escalate_and_stop_every_other_child_at_once() {
    let mut sh = Shell::new(template().restart_intensity(2, Duration::from_secs(10)));
    let a = sh.add(1);
    sh.add(2);
    sh.add(3);
    sh.take_log();
    sh.script_starts([Started::Fail("no"), Started::Fail("no")]);
    retry_of(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
    retry_of(&sh.retry(1, 0.1).unwrap());
    let out = sh.retry(1, 0.2).unwrap();
    assert_exit(&out, &gave_up());
    assert_eq!(sh.take_log(), "S:1(1) S:1(1) TA:2,3");
    assert!(sh
        .reports()
        .contains(&Report::ReachedMaxRestartIntensity { id: "1".into() }));
    assert!(!sh.core.has_running_children());
    assert!(sh.ids().is_empty());
}

#[test]
fn intensity_zero_gives_up_on_the_first_crash() {
    let mut sh = Shell::new(template().restart_intensity(0, Duration::from_secs(1)));
    let a = sh.add(1);
    sh.add(2);
    sh.take_log();
    assert_exit(&sh.exit(a, ExitReason::Normal, 0.0), &gave_up());
    assert_eq!(sh.take_log(), "TA:2");
}

#[test]
fn the_budget_is_shared_and_the_window_slides() {
    let mut sh = Shell::new(template().restart_intensity(2, Duration::from_secs(5)));
    let a = sh.add(1);
    let b = sh.add(2);
    assert_idle(&sh.exit(a, ExitReason::Killed, 0.0));
    assert_idle(&sh.exit(b, ExitReason::Killed, 1.0));
    // At 5.5 s the first restart has left the window.
    let a = sh.pid(1);
    assert_idle(&sh.exit(a, ExitReason::Killed, 5.5));
    let b = sh.pid(2);
    assert_exit(&sh.exit(b, ExitReason::Killed, 5.6), &gave_up());
}

// -------------------------------------------------------------------------------------------------
// terminate_child (Child management API)

#[test]
fn terminate_child_stops_and_forgets_a_running_child() {
    let mut sh = Shell::new(template());
    let a = sh.add(1);
    let b = sh.add(2);
    sh.take_log();
    assert_eq!(sh.terminate_child(a, true), Ok(None));
    assert_eq!(sh.take_log(), "T:1");
    assert_eq!(sh.ids(), ["2"]);
    assert_eq!(sh.core.args_of(1), None, "its arguments are dropped");
    // Again, now that it is dead: ok. A live stranger: not found.
    assert_eq!(sh.terminate_child(a, false), Ok(None));
    assert_eq!(
        sh.terminate_child(9999, true),
        Err(ChildError::NotFound("process 9999".into()))
    );
    assert_eq!(sh.take_log(), "");
    assert_eq!(sh.pid(2), b);
}

#[test]
fn terminate_child_with_the_old_process_ends_a_restart_loop() {
    let mut sh = Shell::new(template().restart_intensity(100, Duration::from_secs(1)));
    let a = sh.add(1);
    sh.script_starts([Started::Fail("no")]);
    let retry = retry_of(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
    sh.take_log();
    assert_eq!(sh.terminate_child(a, false), Ok(None));
    assert_eq!(sh.take_log(), "", "nothing to stop");
    assert!(sh.ids().is_empty());
    assert!(
        sh.retry(retry.key, 0.1).is_none(),
        "the queued retry is dropped"
    );
}

#[test]
fn a_shutdown_error_is_reported_when_a_child_had_to_be_killed() {
    let mut sh = Shell::new(template().shutdown(Shutdown::Timeout(ms(100))));
    let a = sh.add(1);
    sh.stops.push_back(Some(ExitReason::Killed));
    sh.terminate_child(a, true).unwrap();
    assert_eq!(
        sh.reports(),
        [Report::ShutdownError {
            id: "1".into(),
            reason: ExitReason::Killed
        }]
    );
}

// -------------------------------------------------------------------------------------------------
// Parallel shutdown

#[test]
fn shutdown_stops_every_running_child_in_one_command_and_drops_pending_restarts() {
    let mut sh = Shell::new(template().restart_intensity(100, Duration::from_secs(1)));
    let a = sh.add(1);
    sh.add(2);
    sh.add(3);
    sh.script_starts([Started::Fail("no")]);
    retry_of(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
    sh.take_log();
    sh.reports();
    assert_eq!(sh.core.pending_restarts(), 1);
    assert_exit(&sh.shutdown(), &ExitReason::Shutdown);
    assert_eq!(sh.take_log(), "TA:2,3");
    assert!(sh.reports().is_empty(), "a clean shutdown reports nothing");
    assert!(sh.ids().is_empty());
    assert!(sh.retry(1, 0.1).is_none());
}

#[test]
fn a_shutdown_forgets_restarting_children_at_once_and_keeps_running_ones_until_they_stop() {
    // The restarting child and its last pid go when the shutdown begins, whether or not every
    // other child is running (the core skips that sweep when there is nothing to sweep).
    for restarting in [false, true] {
        let mut sh = Shell::new(template().restart_intensity(100, Duration::from_secs(1)));
        let a = sh.add(1);
        let b = sh.add(2);
        if restarting {
            sh.script_starts([Started::Fail("no")]);
            retry_of(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
        }
        let DynCommand::TerminateAll { children } = sh.core.shutdown(ExitReason::Shutdown) else {
            panic!("a shutdown with a running child stops it");
        };
        let keys: Vec<u64> = children.iter().map(|c| c.0).collect();
        if restarting {
            assert_eq!(keys, [2]);
            assert_eq!(sh.ids(), ["2"]);
            assert_eq!(sh.core.key_of(&a), None);
        } else {
            assert_eq!(keys, [1, 2]);
            assert_eq!(sh.ids(), ["2", "1"]);
            assert_eq!(sh.core.key_of(&a), Some(1));
        }
        assert_eq!(sh.core.key_of(&b), Some(2));
        assert_eq!(sh.core.pending_restarts(), 0);
    }
}

#[test]
fn shutdown_with_no_running_child_exits_at_once() {
    let mut sh = Shell::new(template());
    assert_exit(&sh.shutdown(), &ExitReason::Shutdown);
    assert_eq!(sh.take_log(), "");
}

#[test]
fn shutdown_reports_the_children_that_had_to_be_killed_but_not_brutal_kills() {
    let mut sh = Shell::new(template().shutdown(Shutdown::Timeout(ms(100))));
    sh.add(1);
    sh.add(2);
    sh.stops
        .extend([Some(ExitReason::Shutdown), Some(ExitReason::Killed)]);
    assert_exit(&sh.shutdown(), &ExitReason::Shutdown);
    assert_eq!(
        sh.reports(),
        [Report::ShutdownError {
            id: "2".into(),
            reason: ExitReason::Killed
        }]
    );

    let mut sh = Shell::new(template().shutdown(Shutdown::BrutalKill));
    sh.add(1);
    assert_exit(&sh.shutdown(), &ExitReason::Shutdown);
    assert!(sh.reports().is_empty());
}

#[test]
fn a_child_that_exited_by_itself_during_shutdown_is_not_an_error() {
    let mut sh = Shell::new(template());
    sh.add(1);
    sh.add(2);
    sh.stops.extend([None, Some(ExitReason::Shutdown)]);
    assert_exit(&sh.shutdown(), &ExitReason::Shutdown);
    assert!(sh.reports().is_empty());
    assert!(!sh.core.has_running_children());
}

// -------------------------------------------------------------------------------------------------
// Queries

#[test]
fn which_children_lists_the_newest_first_and_restarts_do_not_reorder() {
    let mut sh = Shell::new(template());
    let a = sh.add(1);
    sh.add(2);
    sh.add(3);
    sh.exit(a, ExitReason::Killed, 0.0);
    assert_eq!(sh.ids(), ["3", "2", "1"]);
}

#[test]
fn count_children_follows_the_template_kind_and_counts_restarting_children() {
    let mut sh = Shell::new(
        template()
            .kind(ChildKind::Supervisor)
            .restart_intensity(100, Duration::from_secs(1)),
    );
    let a = sh.add(1);
    sh.add(2);
    assert_eq!(sh.counts(), [1, 2, 2, 0]);
    sh.script_starts([Started::Fail("no")]);
    retry_of(&sh.exit(a, ExitReason::Killed, 0.0));
    assert_eq!(sh.counts(), [1, 1, 2, 0]);
    assert_eq!(sh.core.which_children().len(), 2);
}

// -------------------------------------------------------------------------------------------------
// Backoff

fn backoff_template(b: Backoff) -> DynamicSpec<u32> {
    template()
        .backoff(b)
        .restart_intensity(100, Duration::from_secs(3600))
}

#[test]
fn a_backed_off_restart_waits_shows_its_next_attempt_and_then_starts() {
    let mut sh = Shell::new(backoff_template(
        Backoff::new(ms(100), ms(1000)).jitter(0.0),
    ));
    let a = sh.add(9);
    sh.take_log();
    let retry = retry_of(&sh.exit(a, ExitReason::Error("x".into()), 0.0));
    assert_eq!((retry.key, retry.after), (1, ms(100)));
    assert_eq!(sh.take_log(), "", "nothing starts before the delay");
    assert_eq!(sh.status(1), Some(ChildStatus::Restarting));
    assert_eq!(sh.next_attempt(1), Some(sh.at(0.1)));
    assert_eq!(sh.counts(), [1, 0, 0, 1]);
    assert_idle(&sh.retry(1, 0.1).unwrap());
    assert_eq!(sh.take_log(), "S:1(9)");
    assert_eq!(sh.next_attempt(1), None);
    assert!(matches!(sh.status(1), Some(ChildStatus::Running(_))));
}

#[test]
fn the_delay_grows_with_each_failure_up_to_the_maximum() {
    let mut sh = Shell::new(backoff_template(Backoff::new(ms(100), ms(500)).jitter(0.0)));
    let a = sh.add(1);
    let mut t = 0.0;
    let mut delays = vec![retry_of(&sh.exit(a, ExitReason::Killed, t)).after];
    // Every new incarnation crashes at once: 100, 200, 400, 500, 500 ms.
    for _ in 0..4 {
        t += delays.last().unwrap().as_secs_f64();
        assert_idle(&sh.retry(1, t).unwrap());
        let pid = sh.pid(1);
        delays.push(retry_of(&sh.exit(pid, ExitReason::Killed, t)).after);
    }
    assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), ms(500)]);

    // A start that fails takes the same path: an immediate retry counts and picks the next delay.
    sh.script_starts([Started::Fail("no")]);
    t += 0.5;
    let now_retry = retry_of(&sh.retry(1, t).unwrap());
    assert_eq!(now_retry.after, Duration::ZERO);
    let delayed = retry_of(&sh.retry(1, t).unwrap());
    assert_eq!(delayed.after, ms(500));
}

#[test]
fn jitter_stretches_each_delay_within_its_bounds() {
    // Fifty crashes in a row: far past the default bound on consecutive restarts.
    let mut sh = Shell::new(backoff_template(
        Backoff::new(ms(100), ms(100))
            .jitter(0.5)
            .max_retries(u32::MAX),
    ));
    let a = sh.add(1);
    let mut t = 0.0;
    let mut pid = a;
    let mut seen = Vec::new();
    for _ in 0..50 {
        let d = retry_of(&sh.exit(pid, ExitReason::Killed, t)).after;
        assert!(d >= ms(100) && d <= ms(150), "{d:?}");
        seen.push(d);
        t += d.as_secs_f64();
        sh.retry(1, t).unwrap();
        pid = sh.pid(1);
    }
    seen.sort();
    seen.dedup();
    assert!(seen.len() > 1, "the jitter varies");
}

#[test]
fn a_backed_off_restart_counts_when_scheduled_so_a_crash_loop_escalates() {
    let mut sh = Shell::new(
        template()
            .backoff(Backoff::new(ms(100), ms(100)).jitter(0.0))
            .restart_intensity(3, Duration::from_secs(60)),
    );
    let a = sh.add(1);
    sh.add(2);
    sh.take_log();
    let mut t = 0.0;
    let mut pid = a;
    for _ in 0..3 {
        // Counted here, before any wait.
        retry_of(&sh.exit(pid, ExitReason::Killed, t));
        t += 0.1;
        sh.retry(1, t).unwrap();
        pid = sh.pid(1);
    }
    // The fourth crash within the minute: no delay, the supervisor gives up at once.
    let out = sh.exit(pid, ExitReason::Killed, t);
    assert_exit(&out, &gave_up());
    assert_eq!(sh.take_log(), "S:1(1) S:1(1) S:1(1) TA:2");
}

#[test]
fn a_child_that_ran_long_enough_starts_over_at_the_minimum_delay() {
    let mut sh = Shell::new(backoff_template(
        Backoff::new(ms(100), ms(10_000))
            .jitter(0.0)
            .reset_after(Duration::from_secs(2)),
    ));
    let a = sh.add(1);
    assert_eq!(
        retry_of(&sh.exit(a, ExitReason::Killed, 0.0)).after,
        ms(100)
    );
    sh.retry(1, 0.1).unwrap();
    let p = sh.pid(1);
    assert_eq!(
        retry_of(&sh.exit(p, ExitReason::Killed, 0.5)).after,
        ms(200)
    );
    sh.retry(1, 0.7).unwrap();
    // Ran from 0.7 s to 3 s: stable for more than 2 s.
    let p = sh.pid(1);
    assert_eq!(
        retry_of(&sh.exit(p, ExitReason::Killed, 3.0)).after,
        ms(100)
    );
}

#[test]
fn shutdown_while_a_restart_is_delayed_exits_at_once() {
    let mut sh = Shell::new(backoff_template(
        Backoff::new(Duration::from_secs(60), Duration::from_secs(60)).jitter(0.0),
    ));
    let a = sh.add(1);
    let retry = retry_of(&sh.exit(a, ExitReason::Killed, 0.0));
    assert_eq!(retry.after, Duration::from_secs(60));
    sh.take_log();
    assert_exit(&sh.shutdown(), &ExitReason::Shutdown);
    assert_eq!(sh.take_log(), "", "nothing to stop, nothing to wait for");
    assert!(
        sh.retry(1, 60.0).is_none(),
        "the timer firing later is ignored"
    );
}

#[test]
fn terminate_child_cancels_a_delayed_restart() {
    let mut sh = Shell::new(backoff_template(Backoff::new(ms(100), ms(100)).jitter(0.0)));
    let a = sh.add(1);
    retry_of(&sh.exit(a, ExitReason::Killed, 0.0));
    assert_eq!(sh.terminate_child(a, false), Ok(None));
    assert!(sh.ids().is_empty());
    assert!(sh.retry(1, 0.1).is_none());
}

// Retry generations: a retry acts once, and only while its child still waits for it.

#[test]
fn a_retry_of_another_generation_does_nothing_and_a_retry_comes_up_once() {
    let mut sh = Shell::new(backoff_template(
        Backoff::new(ms(100), ms(1000)).jitter(0.0),
    ));
    let a = sh.add(1);
    sh.take_log();
    let r = retry_of(&sh.exit(a, ExitReason::Killed, 0.0));
    let waiting = sh.snapshot();
    assert!(sh.retry_gen(1, r.generation + 1, 0.1).is_none());
    assert!(sh.retry_gen(1, r.generation.wrapping_sub(1), 0.1).is_none());
    assert_eq!(sh.snapshot(), waiting, "a stale retry changes nothing");
    assert_eq!(sh.take_log(), "");
    assert_idle(&sh.retry_gen(1, r.generation, 0.1).unwrap());
    assert_eq!(sh.take_log(), "S:1(1)");
    assert!(
        sh.retry_gen(1, r.generation, 0.1).is_none(),
        "delivered twice"
    );
    // Nor once the child waits again.
    let p = sh.pid(1);
    let again = retry_of(&sh.exit(p, ExitReason::Killed, 0.2));
    assert!(sh.retry_gen(1, r.generation, 0.3).is_none());
    assert_eq!(sh.take_log(), "");
    assert_eq!(sh.next_attempt(1), Some(sh.at(0.4)));
    assert_idle(&sh.retry_gen(1, again.generation, 0.4).unwrap());
}

#[test]
fn a_try_again_retry_is_stale_once_it_came_up_or_the_child_was_terminated() {
    let mut sh = Shell::new(backoff_template(
        Backoff::new(ms(100), ms(1000)).jitter(0.0),
    ));
    let a = sh.add(1);
    sh.script_starts([Started::Fail("no")]);
    retry_of(&sh.exit(a, ExitReason::Killed, 0.0));
    assert_eq!(retry_of(&sh.retry(1, 0.1).unwrap()).after, Duration::ZERO);
    let try_again = sh.generation(1);
    assert_eq!(retry_of(&sh.retry(1, 0.1).unwrap()).after, ms(200));
    // The same try-again again (say, sent twice): not a second restart, nor an early one.
    assert!(sh.retry_gen(1, try_again, 0.1).is_none());
    let delayed = sh.generation(1);
    // Terminated by its last process while it waits: its retry does nothing.
    assert_eq!(sh.terminate_child(a, false), Ok(None));
    assert!(sh.retry_gen(1, delayed, 0.3).is_none());
    assert!(sh.ids().is_empty());
}

// A failed backed-off attempt: counted once, and the next attempt backed off.

#[test]
fn a_failed_backed_off_attempt_is_counted_once() {
    // Budget 2: the crash pays for attempt 1, the failure of attempt 1 pays for attempt 2. Were the
    // failed attempt charged twice, the retry after it would already give up.
    let mut sh = Shell::new(
        template()
            .backoff(Backoff::new(ms(100), ms(1000)).jitter(0.0))
            .restart_intensity(2, Duration::from_secs(10)),
    );
    let a = sh.add(1);
    sh.add(2);
    sh.take_log();
    assert_eq!(
        retry_of(&sh.exit(a, ExitReason::Killed, 0.0)).after,
        ms(100)
    );
    sh.script_starts([Started::Fail("down")]);
    assert_eq!(retry_of(&sh.retry(1, 0.1).unwrap()).after, Duration::ZERO);
    // The try-again counts and is put off by the next delay: no start now.
    assert_eq!(retry_of(&sh.retry(1, 0.1).unwrap()).after, ms(200));
    assert_eq!(sh.take_log(), "S:1(1)");
    assert_idle(&sh.retry(1, 0.3).unwrap());
    assert_eq!(sh.take_log(), "S:1(1)");
    let p = sh.pid(1);
    assert_exit(&sh.exit(p, ExitReason::Killed, 0.4), &gave_up());
}

#[test]
fn a_start_that_fails_slowly_does_not_reset_the_backoff() {
    // The start function takes longer than reset_after to fail: the child never ran, so the next
    // delay is the next one, not the minimum again.
    let mut sh = Shell::new(backoff_template(
        Backoff::new(ms(100), ms(10_000))
            .jitter(0.0)
            .reset_after(Duration::from_secs(1)),
    ));
    let a = sh.add(1);
    assert_eq!(
        retry_of(&sh.exit(a, ExitReason::Killed, 0.0)).after,
        ms(100)
    );
    sh.script_starts([Started::Fail("timed out")]);
    assert_eq!(retry_of(&sh.retry(1, 0.1).unwrap()).after, Duration::ZERO);
    // The failure (and so its retry) comes 2 s after the attempt began.
    assert_eq!(retry_of(&sh.retry(1, 2.1).unwrap()).after, ms(200));
}

// The bound on consecutive restarts (max_retries).

#[test]
fn past_max_retries_a_crash_loop_escalates_though_its_delays_outgrow_the_period() {
    // One restart per second is allowed, and every wait is longer than that: the window alone
    // would let this loop run forever.
    let mut sh = Shell::new(
        template()
            .backoff(
                Backoff::new(Duration::from_secs(2), Duration::from_secs(60))
                    .jitter(0.0)
                    .reset_after(Duration::from_secs(600))
                    .max_retries(3),
            )
            .restart_intensity(1, Duration::from_secs(1)),
    );
    let mut pid = sh.add(1);
    sh.add(2);
    let mut t = 0.0;
    for expected in [2, 4, 8] {
        let r = retry_of(&sh.exit(pid, ExitReason::Killed, t));
        assert_eq!(r.after, Duration::from_secs(expected));
        t += expected as f64;
        assert_idle(&sh.retry(1, t).unwrap());
        pid = sh.pid(1);
        t += 0.5;
    }
    sh.take_log();
    sh.reports();
    assert_exit(&sh.exit(pid, ExitReason::Killed, t), &gave_up());
    assert_eq!(sh.take_log(), "TA:2");
    assert!(sh
        .reports()
        .contains(&Report::ReachedMaxRestartIntensity { id: "1".into() }));
    assert!(sh.ids().is_empty());
}

#[test]
fn failed_starts_count_towards_max_retries() {
    let mut sh = Shell::new(backoff_template(
        Backoff::new(ms(100), ms(1000)).jitter(0.0).max_retries(2),
    ));
    let a = sh.add(1);
    sh.script_starts([Started::Fail("no"), Started::Fail("no")]);
    retry_of(&sh.exit(a, ExitReason::Killed, 0.0));
    retry_of(&sh.retry(1, 0.1).unwrap());
    assert_eq!(retry_of(&sh.retry(1, 0.1).unwrap()).after, ms(200));
    retry_of(&sh.retry(1, 0.3).unwrap());
    // A third restart in a row.
    assert_exit(&sh.retry(1, 0.3).unwrap(), &gave_up());
    assert!(sh
        .reports()
        .contains(&Report::ReachedMaxRestartIntensity { id: "1".into() }));
}

#[test]
fn a_child_that_stays_up_past_reset_after_starts_its_count_over() {
    let mut sh = Shell::new(backoff_template(
        Backoff::new(ms(100), ms(1000))
            .jitter(0.0)
            .reset_after(Duration::from_secs(5))
            .max_retries(2),
    ));
    let mut pid = sh.add(1);
    for (crash, delay) in [(0.0, 100), (1.0, 200), (10.0, 100), (11.0, 200)] {
        assert_eq!(
            retry_of(&sh.exit(pid, ExitReason::Killed, crash)).after,
            ms(delay)
        );
        assert_idle(&sh.retry(1, crash + 0.2).unwrap());
        pid = sh.pid(1);
    }
    // Up 0.8 s since 11.2 s: the third restart in a row.
    assert_exit(&sh.exit(pid, ExitReason::Killed, 12.0), &gave_up());
}

#[test]
fn max_retries_zero_is_refused() {
    let spec = template().backoff(Backoff::new(ms(1), ms(1)).max_retries(0));
    assert!(matches!(
        DynCore::<u64, u32>::new(&spec),
        Err(SpecError::InvalidBackoff(_))
    ));
}

// -------------------------------------------------------------------------------------------------
// Property: whatever happens, the bookkeeping stays consistent.

mod property {
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    use proptest::prelude::*;

    use super::{reasons, template, Shell, Started};
    use crate::backoff::Backoff;
    use crate::core::ChildStatus;
    use crate::dynamic::core::{DynCore, DynOutcome, DynRetry};
    use crate::exit::ExitReason;
    use crate::spec::{Restart, Shutdown};

    #[derive(Debug, Clone)]
    enum Event {
        /// A running child (picked modulo) exits by itself after `dt_ms`.
        Exit {
            pick: usize,
            reason: usize,
            dt_ms: u64,
        },
        /// A process that already stopped exits again: must be ignored.
        Stale {
            pick: usize,
        },
        /// The oldest queued retry comes up after its delay plus `dt_ms`.
        Retry {
            dt_ms: u64,
        },
        /// A retry that already came up comes up again: must be ignored.
        Redeliver {
            pick: usize,
        },
        StartChild(u32),
        /// terminate_child of a running child, an old pid, or a stranger.
        Terminate {
            pick: usize,
            alive: bool,
        },
        Shutdown,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            8 => (any::<usize>(), 0..5usize, 0..3000u64)
                .prop_map(|(pick, reason, dt_ms)| Event::Exit { pick, reason, dt_ms }),
            1 => any::<usize>().prop_map(|pick| Event::Stale { pick }),
            4 => (0..1500u64).prop_map(|dt_ms| Event::Retry { dt_ms }),
            1 => any::<usize>().prop_map(|pick| Event::Redeliver { pick }),
            4 => (0..100u32).prop_map(Event::StartChild),
            2 => (any::<usize>(), any::<bool>())
                .prop_map(|(pick, alive)| Event::Terminate { pick, alive }),
            1 => Just(Event::Shutdown),
        ]
    }

    fn start_answer() -> impl Strategy<Value = Started> {
        prop_oneof![
            6 => Just(Started::Ok),
            1 => Just(Started::Ignore),
            2 => Just(Started::Fail("no")),
            1 => Just(Started::Clash(1)),
        ]
    }

    fn stop_answer() -> impl Strategy<Value = Option<ExitReason>> {
        prop_oneof![
            6 => Just(Some(ExitReason::Shutdown)),
            2 => Just(None),
            1 => Just(Some(ExitReason::Killed)),
        ]
    }

    /// The invariants that must hold between operations.
    fn check(
        core: &DynCore<u64, u32>,
        dead: &[u64],
        max: Option<usize>,
        temporary: bool,
    ) -> Result<(), TestCaseError> {
        let children = core.which_children();
        let counts = core.count_children();
        let running: Vec<u64> = children
            .iter()
            .filter_map(|c| c.status.pid().copied())
            .collect();
        prop_assert_eq!(counts.specs, 1);
        prop_assert_eq!(counts.active, running.len());
        prop_assert_eq!(counts.workers + counts.supervisors, children.len());
        prop_assert_eq!(core.pending_restarts(), children.len() - running.len());
        prop_assert_eq!(core.has_running_children(), !running.is_empty());
        if let Some(max) = max {
            prop_assert!(children.len() <= max);
        }
        let ids: HashSet<&str> = children.iter().map(|c| c.id.as_str()).collect();
        prop_assert_eq!(ids.len(), children.len(), "an id twice: {:?}", children);
        let pids: HashSet<u64> = running.iter().copied().collect();
        prop_assert_eq!(pids.len(), running.len(), "a pid twice: {:?}", children);
        for c in &children {
            let key: u64 = c.id.parse().unwrap();
            if let Some(pid) = c.status.pid() {
                prop_assert_eq!(core.key_of(pid), Some(key));
                prop_assert!(!dead.contains(pid), "{} runs as dead pid {}", key, pid);
            }
            prop_assert_eq!(core.args_of(key).is_some(), !temporary);
            if matches!(c.status, ChildStatus::Running(_)) {
                prop_assert!(c.next_attempt.is_none());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_events_keep_the_bookkeeping_consistent(
            restart in 0..3usize,
            intensity in 0..6u32,
            period_ms in 500..4000u64,
            max in prop::option::of(1..6usize),
            backoff in any::<bool>(),
            brutal in any::<bool>(),
            events in prop::collection::vec(event(), 1..80),
            starts in prop::collection::vec(start_answer(), 0..100),
            stops in prop::collection::vec(stop_answer(), 0..100),
        ) {
            let restart = [Restart::Permanent, Restart::Transient, Restart::Temporary][restart];
            let mut spec = template()
                .restart(restart)
                .restart_intensity(intensity, Duration::from_millis(period_ms));
            if let Some(max) = max {
                spec = spec.max_children(max);
            }
            if backoff {
                spec = spec.backoff(
                    Backoff::new(Duration::from_millis(50), Duration::from_millis(800)).max_retries(3),
                );
            }
            if brutal {
                spec = spec.shutdown(Shutdown::BrutalKill);
            }
            let temporary = restart == Restart::Temporary;
            let mut sh = Shell::new(spec);
            sh.starts.extend(starts);
            sh.stops.extend(stops);
            let mut dead: Vec<u64> = Vec::new();
            let mut retries: Vec<DynRetry> = Vec::new();
            let mut latest: HashMap<u64, u64> = HashMap::new();
            let mut delivered: Vec<DynRetry> = Vec::new();
            let mut now_ms = 0u64;

            for event in events {
                let outcome = match event {
                    Event::Exit { pick, reason, dt_ms } => {
                        now_ms += dt_ms;
                        let running: Vec<u64> = sh.core.which_children().iter()
                            .filter_map(|c| c.status.pid().copied()).collect();
                        if running.is_empty() {
                            continue;
                        }
                        let pid = running[pick % running.len()];
                        dead.push(pid);
                        let now = sh.at(now_ms as f64 / 1000.0);
                        let cmd = sh.core.child_exited(&pid, reasons()[reason].clone(), now);
                        prop_assert!(cmd.is_some(), "exit of running pid {} taken as stale", pid);
                        sh.run(cmd.unwrap())
                    }
                    Event::Stale { pick } => {
                        if dead.is_empty() {
                            continue;
                        }
                        let pid = dead[pick % dead.len()];
                        let now = sh.at(now_ms as f64 / 1000.0);
                        prop_assert!(sh.core.child_exited(&pid, ExitReason::Killed, now).is_none());
                        continue;
                    }
                    Event::Retry { dt_ms } => {
                        if retries.is_empty() {
                            continue;
                        }
                        let retry = retries.remove(0);
                        now_ms += retry.after.as_millis() as u64 + dt_ms;
                        let now = sh.at(now_ms as f64 / 1000.0);
                        let superseded = latest.get(&retry.key) != Some(&retry.generation);
                        let before = sh.snapshot();
                        let cmd = sh.core.retry_due(retry.key, retry.generation, now);
                        delivered.push(retry);
                        match cmd {
                            Some(cmd) => {
                                prop_assert!(!superseded, "a superseded retry acted: {:?}", retry);
                                sh.run(cmd)
                            }
                            None => {
                                prop_assert_eq!(before, sh.snapshot(), "a stale retry changed something");
                                prop_assert!(sh.core.take_reports().is_empty());
                                continue;
                            }
                        }
                    }
                    Event::Redeliver { pick } => {
                        if delivered.is_empty() {
                            continue;
                        }
                        let retry = delivered[pick % delivered.len()];
                        let now = sh.at(now_ms as f64 / 1000.0);
                        let before = sh.snapshot();
                        let cmd = sh.core.retry_due(retry.key, retry.generation, now);
                        prop_assert!(cmd.is_none(), "a retry acted twice: {:?}", retry);
                        prop_assert_eq!(before, sh.snapshot());
                        continue;
                    }
                    Event::StartChild(args) => {
                        let cmd = sh.core.start_child(args);
                        sh.run(cmd)
                    }
                    Event::Terminate { pick, alive } => {
                        let mut known: Vec<u64> = sh.core.which_children().iter()
                            .filter_map(|c| c.status.pid().copied()).collect();
                        known.extend(dead.iter().copied());
                        known.push(1);
                        let pid = known[pick % known.len()];
                        let running = sh.core.which_children().iter()
                            .any(|c| c.status.pid() == Some(&pid));
                        let cmd = sh.core.terminate_child(&pid, alive || running);
                        let outcome = sh.run(cmd);
                        if running {
                            dead.push(pid);
                            prop_assert!(matches!(outcome, DynOutcome::Reply(Ok(None))));
                        }
                        outcome
                    }
                    Event::Shutdown => {
                        let cmd = sh.core.shutdown(ExitReason::Shutdown);
                        let outcome = sh.run(cmd);
                        prop_assert!(matches!(outcome, DynOutcome::Exit(ExitReason::Shutdown)));
                        check(&sh.core, &dead, max, temporary)?;
                        prop_assert!(sh.core.which_children().is_empty());
                        break;
                    }
                };
                match outcome {
                    DynOutcome::Idle { retry } => {
                        if let Some(r) = retry {
                            latest.insert(r.key, r.generation);
                            retries.push(r);
                        }
                    }
                    DynOutcome::Reply(_) => {}
                    DynOutcome::Exit(reason) => {
                        prop_assert!(reason.is_shutdown(), "exit with {:?}", reason);
                        prop_assert!(!sh.core.has_running_children());
                        prop_assert!(sh.core.which_children().is_empty());
                        break;
                    }
                }
                check(&sh.core, &dead, max, temporary)?;
                prop_assert!(sh.core.take_reports().len() < 1000);
            }
        }
    }
}
