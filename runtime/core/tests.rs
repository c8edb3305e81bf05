//! Unit tests of the pure core: one per rule of docs/semantics.md, no runtime.
//!
//! [`Shell`] plays the part of the ractor shell: it answers every [`Command`] the core gives until
//! [`Command::Done`], taking start results and termination reasons from a per-child script (by
//! default a start succeeds with a fresh pid and a stop ends with `shutdown`, or `killed` for a brutal
//! kill), and records the commands as `S:id` / `T:id` so that a test can assert their exact order.
//! It also remembers the last retry handed out for each child, which `retry` hands back as a timer
//! would. Time is passed in as offsets from a base instant.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::*;
use crate::spec::Start;

// -------------------------------------------------------------------------------------------------
// Fixtures

/// A child spec whose start function is never called: the shell answers for it.
fn child(id: &str) -> ChildSpec {
    ChildSpec::new(id, |_sup| async { Ok(Start::Ignore) })
}

fn permanent(id: &str) -> ChildSpec {
    child(id)
}

fn transient(id: &str) -> ChildSpec {
    child(id).restart(Restart::Transient)
}

fn temporary(id: &str) -> ChildSpec {
    child(id).restart(Restart::Temporary)
}

/// A supervisor spec with the default budget (3 restarts in 5 s).
fn sup(strategy: Strategy, children: impl IntoIterator<Item = ChildSpec>) -> SupervisorSpec {
    SupervisorSpec::new(strategy).children(children)
}

/// The five classes of exit reason of the decision table.
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

fn child_terminated(id: &str, reason: ExitReason) -> Report {
    Report::ChildTerminated {
        id: id.into(),
        reason,
    }
}

/// What the shell answers to one `Command::Start`.
#[derive(Debug, Clone)]
enum Started {
    /// Started as a fresh pid.
    Ok,
    /// The start function returned `ignore`.
    Ignore,
    /// The start function failed with this reason.
    Fail(&'static str),
    /// The start function clashed with this running process.
    Clash(u64),
}

/// The shell: carries out the core's commands.
struct Shell {
    core: Core<u64>,
    t0: Instant,
    next_pid: u64,
    /// Per-child answers to `Start`; when empty, `start_dice`, then `Started::Ok`.
    starts: HashMap<String, VecDeque<Started>>,
    /// Per-child answers to `Terminate`; when empty, `stop_dice`, then the policy's usual reason.
    stops: HashMap<String, VecDeque<Option<ExitReason>>>,
    start_dice: VecDeque<Started>,
    stop_dice: VecDeque<Option<ExitReason>>,
    /// Every pid that stopped: terminated by the shell or exited by itself.
    dead: Vec<u64>,
    log: Vec<String>,
    /// The last retry handed out for each child.
    retries: HashMap<String, Retry>,
}

impl Shell {
    /// A shell around a fresh core; nothing started yet.
    fn new(spec: SupervisorSpec) -> Self {
        Shell {
            core: Core::new(&spec).expect("valid spec"),
            t0: Instant::now(),
            next_pid: 100,
            starts: HashMap::new(),
            stops: HashMap::new(),
            start_dice: VecDeque::new(),
            stop_dice: VecDeque::new(),
            dead: Vec::new(),
            log: Vec::new(),
            retries: HashMap::new(),
        }
    }

    /// A shell whose start-up went through with every child started; log and reports cleared.
    fn boot(spec: SupervisorSpec) -> Self {
        let mut sh = Shell::new(spec);
        let outcome = sh.init();
        assert!(matches!(outcome, Outcome::Ready), "{outcome:?}");
        sh.log.clear();
        sh.core.take_reports();
        sh
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn script_start(&mut self, id: &str, results: impl IntoIterator<Item = Started>) {
        self.starts.entry(id.into()).or_default().extend(results);
    }

    fn script_stop(&mut self, id: &str, results: impl IntoIterator<Item = Option<ExitReason>>) {
        self.stops.entry(id.into()).or_default().extend(results);
    }

    /// Answers commands until the operation is done.
    fn run(&mut self, mut cmd: Command<u64>) -> Outcome<u64> {
        loop {
            cmd = match cmd {
                Command::Start { spec } => {
                    let id = spec.id().to_string();
                    self.log.push(format!("S:{id}"));
                    let answer = self
                        .starts
                        .get_mut(&id)
                        .and_then(VecDeque::pop_front)
                        .or_else(|| self.start_dice.pop_front())
                        .unwrap_or(Started::Ok);
                    let result = match answer {
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
                Command::Terminate { id, pid, shutdown } => {
                    assert_eq!(
                        self.core.id_of(&pid),
                        Some(id.as_str()),
                        "asked to terminate {pid}, which is not the current `{id}`"
                    );
                    self.log.push(format!("T:{id}"));
                    self.dead.push(pid);
                    let usual = match shutdown {
                        Shutdown::BrutalKill => ExitReason::Killed,
                        _ => ExitReason::Shutdown,
                    };
                    let reason = self
                        .stops
                        .get_mut(&id)
                        .and_then(VecDeque::pop_front)
                        .or_else(|| self.stop_dice.pop_front())
                        .unwrap_or(Some(usual));
                    self.core.terminated(reason)
                }
                Command::Done(outcome) => {
                    if let Outcome::Idle { retry: Some(r) } = &outcome {
                        self.retries.insert(r.id.clone(), r.clone());
                    }
                    return outcome;
                }
            }
        }
    }

    /// The commands carried out since the last call, as `S:id T:id ...`.
    fn take_log(&mut self) -> String {
        std::mem::take(&mut self.log).join(" ")
    }

    fn reports(&mut self) -> Vec<Report> {
        self.core.take_reports()
    }

    fn init(&mut self) -> Outcome<u64> {
        let cmd = self.core.init();
        self.run(cmd)
    }

    fn status(&self, id: &str) -> Option<ChildStatus<u64>> {
        self.core.which_child(id).map(|c| c.status)
    }

    fn pid(&self, id: &str) -> u64 {
        match self.status(id) {
            Some(ChildStatus::Running(pid)) => pid,
            other => panic!("`{id}` is not running: {other:?}"),
        }
    }

    /// which_children's ids, in its order.
    fn ids(&self) -> Vec<String> {
        self.core
            .which_children()
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    /// The current incarnation of `id` exits by itself at `secs`.
    fn exit(&mut self, id: &str, reason: ExitReason, secs: f64) -> Outcome<u64> {
        let pid = self.pid(id);
        self.dead.push(pid);
        let now = self.at(secs);
        let cmd = self
            .core
            .child_exited(&pid, reason, now)
            .unwrap_or_else(|| panic!("the exit of the current `{id}` was taken as stale"));
        self.run(cmd)
    }

    /// The last retry handed out for `id` comes up at `secs`.
    fn retry(&mut self, id: &str, secs: f64) -> Option<Outcome<u64>> {
        let generation = self.generation(id);
        self.retry_gen(id, generation, secs)
    }

    /// A retry of `id` with this generation comes up at `secs`.
    fn retry_gen(&mut self, id: &str, generation: u64, secs: f64) -> Option<Outcome<u64>> {
        let now = self.at(secs);
        let cmd = self.core.retry_due(id, generation, now)?;
        Some(self.run(cmd))
    }

    /// The generation of the last retry handed out for `id`.
    fn generation(&self, id: &str) -> u64 {
        self.retries
            .get(id)
            .unwrap_or_else(|| panic!("no retry was handed out for `{id}`"))
            .generation
    }

    /// What `which_children` shows, as text: to check that a call changed nothing.
    fn snapshot(&self) -> String {
        format!("{:?}", self.core.which_children())
    }

    fn shutdown(&mut self, reason: ExitReason) -> Outcome<u64> {
        let cmd = self.core.shutdown(reason);
        self.run(cmd)
    }

    fn start_child(&mut self, spec: ChildSpec) -> Result<Option<u64>, ChildError<u64>> {
        let cmd = self.core.start_child(spec);
        reply(self.run(cmd))
    }

    fn terminate_child(&mut self, id: &str) -> Result<Option<u64>, ChildError<u64>> {
        let cmd = self.core.terminate_child(id);
        reply(self.run(cmd))
    }

    fn restart_child(&mut self, id: &str) -> Result<Option<u64>, ChildError<u64>> {
        let cmd = self.core.restart_child(id);
        reply(self.run(cmd))
    }
}

#[track_caller]
fn reply(outcome: Outcome<u64>) -> Result<Option<u64>, ChildError<u64>> {
    match outcome {
        Outcome::Reply(result) => result,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[track_caller]
fn assert_idle(outcome: &Outcome<u64>) {
    assert!(
        matches!(outcome, Outcome::Idle { retry: None }),
        "expected Idle without retry, got {outcome:?}"
    );
}

#[track_caller]
fn assert_retry(outcome: &Outcome<u64>, id: &str) {
    assert!(
        matches!(outcome, Outcome::Idle { retry: Some(r) } if r.id == id && r.after.is_zero()),
        "expected a retry of `{id}`, got {outcome:?}"
    );
}

#[track_caller]
fn assert_exit(outcome: &Outcome<u64>, reason: &ExitReason) {
    assert!(
        matches!(outcome, Outcome::Exit(r) if r == reason),
        "expected Exit({reason:?}), got {outcome:?}"
    );
}

const STOPPED: Option<ChildStatus<u64>> = Some(ChildStatus::Stopped);
const RESTARTING: Option<ChildStatus<u64>> = Some(ChildStatus::Restarting);

// -------------------------------------------------------------------------------------------------
// Start-up

#[test]
fn init_starts_children_one_at_a_time_in_list_order() {
    let mut sh = Shell::new(sup(
        Strategy::OneForOne,
        [permanent("a"), permanent("b"), permanent("c")],
    ));
    assert!(matches!(sh.init(), Outcome::Ready));
    assert_eq!(sh.take_log(), "S:a S:b S:c");
    assert_eq!(sh.core.count_children().active, 3);
    assert!(sh.reports().is_empty());
}

#[test]
fn init_ignore_keeps_the_spec_stopped_but_drops_a_temporary_one() {
    let mut sh = Shell::new(sup(
        Strategy::OneForOne,
        [
            permanent("a"),
            permanent("p"),
            temporary("t"),
            permanent("b"),
        ],
    ));
    sh.script_start("p", [Started::Ignore]);
    sh.script_start("t", [Started::Ignore]);
    assert!(matches!(sh.init(), Outcome::Ready));
    assert_eq!(sh.take_log(), "S:a S:p S:t S:b");
    assert_eq!(sh.status("p"), STOPPED);
    assert!(sh.core.which_child("t").is_none());
    assert_eq!(sh.ids(), ["b", "p", "a"]);
}

#[test]
fn init_failure_terminates_the_started_children_in_reverse_and_fails() {
    let mut sh = Shell::new(sup(
        Strategy::OneForOne,
        [
            permanent("a"),
            permanent("b"),
            permanent("c"),
            permanent("d"),
            permanent("e"),
        ],
    ));
    sh.script_start("b", [Started::Ignore]);
    sh.script_start("d", [Started::Fail("bad config")]);
    let outcome = sh.init();
    assert!(
        matches!(&outcome, Outcome::InitFailed { id, reason } if id == "d" && reason == "bad config"),
        "{outcome:?}"
    );
    // b ignored its start, e was never reached: only c and a are stopped, c first.
    assert_eq!(sh.take_log(), "S:a S:b S:c S:d T:c T:a");
    assert_eq!(
        sh.reports(),
        [Report::StartError {
            id: "d".into(),
            reason: "bad config".into()
        }]
    );
    assert!(!sh.core.has_running_children());
}

// -------------------------------------------------------------------------------------------------
// The exit decision table

#[test]
fn permanent_child_is_restarted_after_every_exit_and_every_exit_is_reported() {
    for reason in reasons() {
        let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("w"), permanent("x")]));
        let (old, x) = (sh.pid("w"), sh.pid("x"));
        let outcome = sh.exit("w", reason.clone(), 0.0);
        assert_idle(&outcome);
        assert_eq!(sh.take_log(), "S:w", "{reason:?}");
        assert_ne!(sh.pid("w"), old, "{reason:?}");
        assert_eq!(sh.pid("x"), x, "{reason:?}");
        let info = sh.core.which_child("w").unwrap();
        assert_eq!(info.restarts, 1, "{reason:?}");
        assert_eq!(info.last_exit, Some(reason.clone()));
        assert_eq!(
            sh.reports(),
            [child_terminated("w", reason.clone())],
            "{reason:?}"
        );
    }
}

#[test]
fn transient_child_is_restarted_only_after_an_abnormal_exit() {
    for reason in reasons() {
        let mut sh = Shell::boot(sup(Strategy::OneForOne, [transient("w"), permanent("x")]));
        let outcome = sh.exit("w", reason.clone(), 0.0);
        assert_idle(&outcome);
        if reason.is_normal_class() {
            assert_eq!(sh.take_log(), "", "{reason:?}");
            assert_eq!(sh.status("w"), STOPPED, "spec kept, no process: {reason:?}");
            assert_eq!(sh.core.count_children().specs, 2);
            assert!(sh.reports().is_empty(), "a normal exit is not reported");
        } else {
            assert_eq!(sh.take_log(), "S:w", "{reason:?}");
            assert!(matches!(sh.status("w"), Some(ChildStatus::Running(_))));
            assert_eq!(sh.reports(), [child_terminated("w", reason.clone())]);
        }
    }
}

#[test]
fn temporary_child_is_never_restarted_and_its_spec_is_deleted() {
    for reason in reasons() {
        let mut sh = Shell::boot(sup(Strategy::OneForOne, [temporary("w"), permanent("x")]));
        let outcome = sh.exit("w", reason.clone(), 0.0);
        assert_idle(&outcome);
        assert_eq!(sh.take_log(), "", "{reason:?}");
        assert!(sh.core.which_child("w").is_none(), "{reason:?}");
        assert_eq!(sh.core.count_children().specs, 1);
        let expected = if reason.is_normal_class() {
            vec![]
        } else {
            vec![child_terminated("w", reason.clone())]
        };
        assert_eq!(sh.reports(), expected, "{reason:?}");
    }
}

#[test]
fn exits_of_strangers_and_of_replaced_or_terminated_incarnations_are_stale() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a"), permanent("b")]));
    let now = sh.at(0.0);
    assert!(sh
        .core
        .child_exited(&9999, ExitReason::Error("who?".into()), now)
        .is_none());

    // An incarnation already replaced by a restart.
    let old_a = sh.pid("a");
    assert_idle(&sh.exit("a", ExitReason::Error("boom".into()), 0.0));
    let new_a = sh.pid("a");
    sh.take_log();
    sh.reports();
    assert!(sh
        .core
        .child_exited(&old_a, ExitReason::Error("again".into()), now)
        .is_none());

    // An incarnation the supervisor terminated: its exit arrives after the fact.
    let old_b = sh.pid("b");
    assert_eq!(sh.terminate_child("b"), Ok(None));
    sh.take_log();
    assert!(sh
        .core
        .child_exited(&old_b, ExitReason::Shutdown, now)
        .is_none());

    assert_eq!(sh.take_log(), "");
    assert!(sh.reports().is_empty());
    assert_eq!(sh.pid("a"), new_a);
    assert_eq!(sh.status("b"), STOPPED);
}

// -------------------------------------------------------------------------------------------------
// Restart intensity

#[test]
fn a_failed_restart_counts_against_intensity() {
    let mut sh = Shell::boot(
        sup(
            Strategy::OneForOne,
            [permanent("a"), permanent("b"), permanent("c")],
        )
        .restart_intensity(1, Duration::from_secs(5)),
    );
    sh.script_start("a", [Started::Fail("boom")]);
    assert_retry(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a");
    // End a's restart loop without a further restart.
    assert_eq!(sh.terminate_child("a"), Ok(None));
    sh.take_log();
    // The budget (1) went to a's failed restart: b's crash gives up.
    let outcome = sh.exit("b", ExitReason::Error("y".into()), 1.0);
    assert_exit(&outcome, &gave_up());
    assert_eq!(sh.take_log(), "T:c");
}

#[test]
fn every_retry_counts_against_intensity() {
    let mut sh = Shell::boot(
        sup(Strategy::OneForOne, [permanent("a"), permanent("b")])
            .restart_intensity(2, Duration::from_secs(5)),
    );
    sh.script_start("a", [Started::Fail("e1"), Started::Fail("e2")]);
    assert_retry(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a");
    assert_retry(&sh.retry("a", 0.1).unwrap(), "a");
    assert_eq!(sh.take_log(), "S:a S:a");
    // Third restart in the window: refused before anything is started.
    let outcome = sh.retry("a", 0.2).unwrap();
    assert_exit(&outcome, &gave_up());
    assert_eq!(sh.take_log(), "T:b");
    assert_eq!(
        sh.reports().last(),
        Some(&Report::ReachedMaxRestartIntensity { id: "a".into() })
    );
}

#[test]
fn intensity_zero_gives_up_on_the_first_crash() {
    let mut sh = Shell::boot(
        sup(
            Strategy::OneForOne,
            [permanent("a"), permanent("b"), permanent("c")],
        )
        .restart_intensity(0, Duration::from_secs(5)),
    );
    let outcome = sh.exit("b", ExitReason::Error("boom".into()), 0.0);
    assert_exit(&outcome, &gave_up());
    assert_eq!(sh.take_log(), "T:c T:a");
    assert_eq!(
        sh.reports(),
        [
            child_terminated("b", ExitReason::Error("boom".into())),
            Report::ReachedMaxRestartIntensity { id: "b".into() },
        ]
    );
}

#[test]
fn giving_up_terminates_the_rest_in_reverse_order_and_exits_with_shutdown() {
    let mut sh = Shell::boot(
        sup(
            Strategy::OneForOne,
            [
                permanent("a"),
                permanent("b"),
                permanent("c"),
                permanent("d"),
            ],
        )
        .restart_intensity(1, Duration::from_secs(5)),
    );
    assert_idle(&sh.exit("c", ExitReason::Killed, 0.0));
    assert_eq!(sh.take_log(), "S:c");
    sh.reports();
    let outcome = sh.exit("c", ExitReason::Killed, 1.0);
    assert_exit(&outcome, &gave_up());
    assert!(gave_up().is_shutdown());
    assert_eq!(sh.take_log(), "T:d T:b T:a");
    assert_eq!(
        sh.reports(),
        [
            child_terminated("c", ExitReason::Killed),
            Report::ReachedMaxRestartIntensity { id: "c".into() },
        ]
    );
    // Nothing runs any more; the failed child's spec is kept with no process.
    assert!(!sh.core.has_running_children());
    assert_eq!(sh.core.count_children().active, 0);
    assert_eq!(sh.status("c"), STOPPED);
}

#[test]
fn the_budget_is_shared_by_all_children() {
    let mut sh = Shell::boot(
        sup(Strategy::OneForOne, [permanent("a"), permanent("b")])
            .restart_intensity(1, Duration::from_secs(5)),
    );
    assert_idle(&sh.exit("a", ExitReason::Error("x".into()), 0.0));
    assert_exit(
        &sh.exit("b", ExitReason::Error("y".into()), 1.0),
        &gave_up(),
    );
    assert_eq!(sh.take_log(), "S:a T:a");
}

#[test]
fn the_restart_window_slides() {
    let mut sh = Shell::boot(
        sup(Strategy::OneForOne, [permanent("a"), permanent("b")])
            .restart_intensity(2, Duration::from_secs(5)),
    );
    let crash = || ExitReason::Error("boom".into());
    assert_idle(&sh.exit("a", crash(), 0.0));
    assert_idle(&sh.exit("a", crash(), 1.0));
    // At 5.0 the restart of 0.0 is exactly one period old and has left the window.
    assert_idle(&sh.exit("a", crash(), 5.0));
    assert_eq!(sh.take_log(), "S:a S:a S:a");
    // At 5.5 the restarts of 1.0 and 5.0 are both in it: a third one is refused.
    assert_exit(&sh.exit("a", crash(), 5.5), &gave_up());
    assert_eq!(sh.take_log(), "T:b");
}

// -------------------------------------------------------------------------------------------------
// Strategies

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForOne,
        [permanent("a"), permanent("b"), permanent("c")],
    ));
    let (a, c) = (sh.pid("a"), sh.pid("c"));
    assert_idle(&sh.exit("b", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "S:b");
    assert_eq!((sh.pid("a"), sh.pid("c")), (a, c));
}

#[test]
fn one_for_all_terminates_the_others_in_reverse_then_starts_all_in_order() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForAll,
        [
            permanent("a"),
            permanent("b"),
            permanent("c"),
            permanent("d"),
        ],
    ));
    let before: Vec<u64> = ["a", "b", "c", "d"].iter().map(|id| sh.pid(id)).collect();
    assert_idle(&sh.exit("c", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "T:d T:b T:a S:a S:b S:c S:d");
    for (id, old) in ["a", "b", "c", "d"].iter().zip(before) {
        assert_ne!(sh.pid(id), old, "{id} runs as a new process");
    }
    assert_eq!(
        sh.reports(),
        [child_terminated("c", ExitReason::Error("boom".into()))]
    );
}

#[test]
fn one_for_all_also_starts_children_that_were_stopped() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForAll,
        [
            permanent("a"),
            permanent("b"),
            transient("t"),
            permanent("c"),
        ],
    ));
    assert_eq!(sh.terminate_child("b"), Ok(None));
    assert_idle(&sh.exit("t", ExitReason::Normal, 0.0));
    assert_eq!(sh.take_log(), "T:b");
    assert_idle(&sh.exit("a", ExitReason::Error("boom".into()), 1.0));
    assert_eq!(sh.take_log(), "T:c S:a S:b S:t S:c");
    assert_eq!(sh.core.count_children().active, 4);
}

#[test]
fn one_for_all_removes_temporary_bystanders() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForAll,
        [permanent("a"), temporary("tmp"), permanent("c")],
    ));
    assert_idle(&sh.exit("a", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "T:c T:tmp S:a S:c");
    assert!(sh.core.which_child("tmp").is_none());
    assert_eq!(sh.ids(), ["c", "a"]);
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let mut sh = Shell::boot(sup(
        Strategy::RestForOne,
        [
            permanent("a"),
            permanent("b"),
            permanent("c"),
            permanent("d"),
        ],
    ));
    let a = sh.pid("a");
    assert_idle(&sh.exit("b", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "T:d T:c S:b S:c S:d");
    assert_eq!(
        sh.pid("a"),
        a,
        "children before the failed one are untouched"
    );
}

#[test]
fn rest_for_one_removes_temporary_children_after_the_failed_one() {
    let mut sh = Shell::boot(sup(
        Strategy::RestForOne,
        [
            permanent("a"),
            permanent("b"),
            temporary("tmp"),
            permanent("d"),
        ],
    ));
    assert_idle(&sh.exit("b", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "T:d T:tmp S:b S:d");
    assert_eq!(sh.ids(), ["d", "b", "a"]);
}

#[test]
fn start_child_appends_the_child_as_the_last_started_one() {
    let mut sh = Shell::boot(sup(Strategy::RestForOne, [permanent("a"), permanent("b")]));
    let n = sh.start_child(permanent("n")).unwrap().expect("a pid");
    assert_eq!(sh.take_log(), "S:n");
    assert_eq!(sh.pid("n"), n);
    assert_eq!(sh.ids(), ["n", "b", "a"]);
    // For rest_for_one it comes after every existing child.
    assert_idle(&sh.exit("a", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "T:n T:b S:a S:b S:n");
}

#[test]
fn ignore_during_a_restart_leaves_the_spec_stopped_without_retry() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a"), permanent("b")]));
    sh.script_start("a", [Started::Ignore]);
    assert_idle(&sh.exit("a", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "S:a");
    assert_eq!(sh.status("a"), STOPPED);
}

// -------------------------------------------------------------------------------------------------
// Failed restarts (try again)

#[test]
fn a_failed_restart_marks_the_child_restarting_and_asks_for_a_retry() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a"), permanent("b")]));
    sh.script_start("a", [Started::Fail("no db")]);
    let outcome = sh.exit("a", ExitReason::Error("boom".into()), 0.0);
    assert_retry(&outcome, "a");
    assert_eq!(sh.take_log(), "S:a");
    assert_eq!(sh.status("a"), RESTARTING);
    let c = sh.core.count_children();
    assert_eq!((c.specs, c.active, c.workers), (2, 1, 2));
    assert_eq!(
        sh.reports(),
        [
            child_terminated("a", ExitReason::Error("boom".into())),
            Report::StartError {
                id: "a".into(),
                reason: "no db".into()
            },
        ]
    );
    // The retry succeeds.
    assert_idle(&sh.retry("a", 0.5).expect("a is still restarting"));
    assert_eq!(sh.take_log(), "S:a");
    assert!(matches!(sh.status("a"), Some(ChildStatus::Running(_))));
}

#[test]
fn one_for_all_retry_terminates_what_the_failed_round_started() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForAll,
        [permanent("a"), permanent("b"), permanent("c")],
    ));
    sh.script_start("b", [Started::Fail("not yet")]);
    assert_retry(&sh.exit("b", ExitReason::Error("boom".into()), 0.0), "b");
    assert_eq!(sh.take_log(), "T:c T:a S:a S:b");
    assert!(matches!(sh.status("a"), Some(ChildStatus::Running(_))));
    assert_eq!(sh.status("b"), RESTARTING);
    assert_eq!(sh.status("c"), STOPPED);
    assert_idle(&sh.retry("b", 0.1).unwrap());
    assert_eq!(sh.take_log(), "T:a S:a S:b S:c");
    assert_eq!(sh.core.count_children().active, 3);
}

#[test]

fn one_for_all_failed_round_leaves_only_the_failed_child_restarting() {
    // OTP takes the crashed child out first (`del_child`: pid undefined); after a failed round only
    // the child that failed to start is `restarting`, and only it has a retry queued.
    let mut sh = Shell::boot(sup(
        Strategy::OneForAll,
        [permanent("a"), permanent("b"), permanent("c")],
    ));
    sh.script_start("b", [Started::Fail("not yet")]);
    assert_retry(&sh.exit("c", ExitReason::Error("boom".into()), 0.0), "b");
    assert_eq!(sh.take_log(), "T:b T:a S:a S:b");
    assert_eq!(sh.status("b"), RESTARTING);
    assert_eq!(sh.status("c"), STOPPED);
    // Ending b's loop must leave c restartable by hand, as in OTP.
    assert_eq!(sh.terminate_child("b"), Ok(None));
    assert!(sh.retry("b", 0.1).is_none());
    assert!(matches!(sh.restart_child("c"), Ok(Some(_))));
}

#[test]
fn rest_for_one_retry_starts_from_the_child_that_failed_to_start() {
    let mut sh = Shell::boot(sup(
        Strategy::RestForOne,
        [permanent("a"), permanent("b"), permanent("c")],
    ));
    sh.script_start("b", [Started::Fail("not yet")]);
    assert_retry(&sh.exit("a", ExitReason::Error("boom".into()), 0.0), "b");
    assert_eq!(sh.take_log(), "T:c T:b S:a S:b");
    let a = sh.pid("a");
    assert_idle(&sh.retry("b", 0.1).unwrap());
    assert_eq!(sh.take_log(), "S:b S:c");
    assert_eq!(
        sh.pid("a"),
        a,
        "a restarted fine and is not restarted again"
    );
}

#[test]
fn retry_is_ignored_after_terminate_child() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a"), permanent("b")]));
    sh.script_start("a", [Started::Fail("no")]);
    assert_retry(&sh.exit("a", ExitReason::Error("boom".into()), 0.0), "a");
    sh.take_log();
    assert_eq!(sh.terminate_child("a"), Ok(None));
    assert_eq!(sh.take_log(), "", "nothing to stop: it was not running");
    assert_eq!(sh.status("a"), STOPPED);
    assert!(sh.retry("a", 0.1).is_none());
    assert_eq!(sh.take_log(), "");
}

// -------------------------------------------------------------------------------------------------
// Termination

#[test]
fn shutdown_terminates_running_children_in_reverse_start_order() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForOne,
        [
            permanent("a"),
            permanent("b"),
            permanent("c"),
            permanent("d"),
        ],
    ));
    assert_eq!(sh.terminate_child("b"), Ok(None));
    sh.start_child(permanent("n")).unwrap();
    sh.script_start("c", [Started::Fail("no")]);
    assert_retry(&sh.exit("c", ExitReason::Error("boom".into()), 0.0), "c");
    sh.take_log();
    let outcome = sh.shutdown(ExitReason::Shutdown);
    assert_exit(&outcome, &ExitReason::Shutdown);
    // b is stopped and c is restarting: neither has a process to stop.
    assert_eq!(sh.take_log(), "T:n T:d T:a");
    assert!(!sh.core.has_running_children());
}

#[test]
fn killed_after_a_timeout_is_a_shutdown_error_but_not_after_a_brutal_kill() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForOne,
        [
            permanent("slow").shutdown(Shutdown::Timeout(Duration::from_secs(1))),
            permanent("brute").shutdown(Shutdown::BrutalKill),
            permanent("drain").shutdown(Shutdown::Drain(Duration::from_secs(1))),
        ],
    ));
    sh.script_stop("slow", [Some(ExitReason::Killed)]);
    sh.script_stop("brute", [Some(ExitReason::Killed)]);
    sh.script_stop("drain", [Some(ExitReason::Killed)]);
    assert_exit(&sh.shutdown(ExitReason::Shutdown), &ExitReason::Shutdown);
    assert_eq!(sh.take_log(), "T:drain T:brute T:slow");
    assert_eq!(
        sh.reports(),
        [
            Report::ShutdownError {
                id: "drain".into(),
                reason: ExitReason::Killed
            },
            Report::ShutdownError {
                id: "slow".into(),
                reason: ExitReason::Killed
            },
        ]
    );
}

#[test]
fn shutdown_error_follows_the_restart_type_like_otp_child_res() {
    // (restart type, how it ended, is it a shutdown_error?)
    let table = [
        (Restart::Permanent, ExitReason::Shutdown, false),
        (Restart::Permanent, ExitReason::Normal, true),
        (
            Restart::Permanent,
            ExitReason::ShutdownWith("x".into()),
            true,
        ),
        (Restart::Permanent, ExitReason::Error("e".into()), true),
        (Restart::Transient, ExitReason::Shutdown, false),
        (Restart::Transient, ExitReason::Normal, false),
        (
            Restart::Transient,
            ExitReason::ShutdownWith("x".into()),
            false,
        ),
        (Restart::Transient, ExitReason::Error("e".into()), true),
        (Restart::Temporary, ExitReason::Normal, false),
        (Restart::Temporary, ExitReason::Error("e".into()), true),
    ];
    for (restart, reason, is_error) in table {
        let mut sh = Shell::boot(sup(Strategy::OneForOne, [child("w").restart(restart)]));
        sh.script_stop("w", [Some(reason.clone())]);
        // terminate_child still succeeds.
        assert_eq!(sh.terminate_child("w"), Ok(None), "{restart:?} {reason:?}");
        let expected = if is_error {
            vec![Report::ShutdownError {
                id: "w".into(),
                reason: reason.clone(),
            }]
        } else {
            vec![]
        };
        assert_eq!(sh.reports(), expected, "{restart:?} {reason:?}");
    }
}

#[test]
fn a_child_that_already_exited_by_itself_is_not_reported_nor_restarted_twice() {
    let mut sh = Shell::boot(sup(Strategy::OneForAll, [permanent("a"), permanent("b")]));
    let old_b = sh.pid("b");
    // b crashed on its own just before the supervisor came to stop it.
    sh.script_stop("b", [None]);
    assert_idle(&sh.exit("a", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "T:b S:a S:b");
    assert_eq!(
        sh.reports(),
        [child_terminated("a", ExitReason::Error("boom".into()))]
    );
    // Its own exit arrives afterwards: part of this restart, not a second one.
    let now = sh.at(0.1);
    assert!(sh
        .core
        .child_exited(&old_b, ExitReason::Error("late".into()), now)
        .is_none());
    assert_eq!(sh.take_log(), "");
    assert!(sh.reports().is_empty());
}

// -------------------------------------------------------------------------------------------------
// Significant children and auto-shutdown

fn significant(spec: ChildSpec) -> ChildSpec {
    spec.significant(true)
}

#[test]
fn any_significant_shuts_down_on_the_first_significant_exit() {
    let mut sh = Shell::boot(
        sup(
            Strategy::OneForOne,
            [
                permanent("p"),
                significant(transient("s1")),
                significant(transient("s2")),
                transient("n"),
                permanent("q"),
            ],
        )
        .auto_shutdown(AutoShutdown::AnySignificant),
    );
    // A child that is not significant leaves quietly.
    assert_idle(&sh.exit("n", ExitReason::Normal, 0.0));
    assert_eq!(sh.take_log(), "");
    let outcome = sh.exit("s1", ExitReason::Normal, 0.0);
    assert_exit(&outcome, &ExitReason::Shutdown);
    assert_eq!(sh.take_log(), "T:q T:s2 T:p");
    assert_eq!(sh.reports(), [Report::AutoShutdown { id: "s1".into() }]);
}

#[test]
fn all_significant_shuts_down_when_no_significant_child_is_left() {
    let mut sh = Shell::boot(
        sup(
            Strategy::OneForOne,
            [
                permanent("p"),
                significant(transient("s1")),
                significant(temporary("s2")),
            ],
        )
        .auto_shutdown(AutoShutdown::AllSignificant),
    );
    assert_idle(&sh.exit("s1", ExitReason::Shutdown, 0.0));
    assert_eq!(sh.take_log(), "");
    assert!(sh.reports().is_empty());
    let outcome = sh.exit("s2", ExitReason::ShutdownWith("done".into()), 1.0);
    assert_exit(&outcome, &ExitReason::Shutdown);
    assert_eq!(sh.take_log(), "T:p");
    assert_eq!(sh.reports(), [Report::AutoShutdown { id: "s2".into() }]);
}

#[test]
fn a_significant_temporary_child_triggers_on_any_exit() {
    for reason in reasons() {
        let mut sh = Shell::boot(
            sup(
                Strategy::OneForOne,
                [permanent("p"), significant(temporary("t"))],
            )
            .auto_shutdown(AutoShutdown::AnySignificant),
        );
        let outcome = sh.exit("t", reason.clone(), 0.0);
        assert_exit(&outcome, &ExitReason::Shutdown);
        assert_eq!(sh.take_log(), "T:p", "{reason:?}");
        assert_eq!(
            sh.reports().last(),
            Some(&Report::AutoShutdown { id: "t".into() }),
            "{reason:?}"
        );
    }
}

#[test]
fn a_significant_transient_child_is_restarted_after_an_abnormal_exit() {
    for reason in [ExitReason::Killed, ExitReason::Error("boom".into())] {
        let mut sh = Shell::boot(
            sup(
                Strategy::OneForOne,
                [permanent("p"), significant(transient("s"))],
            )
            .auto_shutdown(AutoShutdown::AnySignificant),
        );
        assert_idle(&sh.exit("s", reason.clone(), 0.0));
        assert_eq!(sh.take_log(), "S:s", "{reason:?}");
        assert_eq!(sh.reports(), [child_terminated("s", reason.clone())]);
    }
}

#[test]
fn terminate_child_of_a_significant_child_does_not_trigger_auto_shutdown() {
    let mut sh = Shell::boot(
        sup(
            Strategy::OneForOne,
            [
                permanent("p"),
                significant(transient("s")),
                significant(temporary("t")),
            ],
        )
        .auto_shutdown(AutoShutdown::AnySignificant),
    );
    assert_eq!(sh.terminate_child("s"), Ok(None));
    assert_eq!(sh.terminate_child("t"), Ok(None));
    assert_eq!(sh.take_log(), "T:s T:t");
    assert!(sh.reports().is_empty());
    assert!(matches!(sh.status("p"), Some(ChildStatus::Running(_))));
    assert_eq!(sh.status("s"), STOPPED);
    assert!(sh.status("t").is_none());
}

#[test]
fn significant_bystanders_of_a_restart_do_not_trigger_auto_shutdown() {
    let mut sh = Shell::boot(
        sup(
            Strategy::OneForAll,
            [
                permanent("p"),
                significant(transient("s")),
                significant(temporary("t")),
                permanent("q"),
            ],
        )
        .auto_shutdown(AutoShutdown::AnySignificant),
    );
    assert_idle(&sh.exit("p", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "T:q T:t T:s S:p S:s S:q");
    assert_eq!(
        sh.reports(),
        [child_terminated("p", ExitReason::Error("boom".into()))]
    );
    assert!(sh.status("t").is_none());
    assert_eq!(sh.core.count_children().active, 3);
}

// -------------------------------------------------------------------------------------------------
// Child management API

#[test]
fn unknown_ids_are_not_found() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    let nf = || Err(ChildError::NotFound("x".into()));
    assert_eq!(sh.terminate_child("x"), nf());
    assert_eq!(sh.restart_child("x"), nf());
    assert_eq!(
        sh.core.delete_child("x"),
        Err(ChildError::NotFound("x".into()))
    );
    assert!(sh.core.which_child("x").is_none());
    assert!(sh.core.get_childspec("x").is_none());
    assert_eq!(sh.take_log(), "");
}

#[test]
fn restart_and_delete_of_a_running_child_are_refused() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    assert_eq!(sh.restart_child("a"), Err(ChildError::Running("a".into())));
    assert_eq!(
        sh.core.delete_child("a"),
        Err(ChildError::Running("a".into()))
    );
    assert_eq!(sh.take_log(), "");
}

#[test]
fn restart_delete_and_start_of_a_restarting_child_are_refused() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    sh.script_start("a", [Started::Fail("no")]);
    assert_retry(&sh.exit("a", ExitReason::Error("boom".into()), 0.0), "a");
    sh.take_log();
    assert_eq!(
        sh.restart_child("a"),
        Err(ChildError::Restarting("a".into()))
    );
    assert_eq!(
        sh.core.delete_child("a"),
        Err(ChildError::Restarting("a".into()))
    );
    assert_eq!(
        sh.start_child(permanent("a")),
        Err(ChildError::AlreadyPresent("a".into()))
    );
    assert_eq!(sh.take_log(), "");
    assert_eq!(sh.status("a"), RESTARTING);
}

#[test]
fn start_child_with_a_taken_id_is_already_started_or_already_present() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a"), permanent("b")]));
    let a = sh.pid("a");
    assert_eq!(sh.terminate_child("b"), Ok(None));
    sh.take_log();
    assert_eq!(
        sh.start_child(permanent("a")),
        Err(ChildError::AlreadyStarted {
            id: "a".into(),
            pid: a
        })
    );
    assert_eq!(
        sh.start_child(permanent("b")),
        Err(ChildError::AlreadyPresent("b".into()))
    );
    assert_eq!(sh.take_log(), "", "no start attempted");
    assert_eq!(sh.ids(), ["b", "a"]);
}

#[test]
fn an_id_deleted_and_added_again_leads_to_the_new_child() {
    // One removed child of four is not swept: the index still holds the tombstone's position
    // under "a" when "a" is added again, and must now lead to the new child.
    let mut sh = Shell::boot(sup(
        Strategy::OneForOne,
        [permanent("a"), permanent("b"), permanent("c")],
    ));
    assert_eq!(sh.terminate_child("a"), Ok(None));
    sh.core.delete_child("a").unwrap();
    let new = sh.start_child(permanent("a")).unwrap().unwrap();
    assert_eq!(sh.pid("a"), new);
    assert_eq!(
        sh.start_child(permanent("a")),
        Err(ChildError::AlreadyStarted {
            id: "a".into(),
            pid: new
        })
    );
    assert_eq!(sh.terminate_child("a"), Ok(None));
    assert_eq!(sh.status("a"), STOPPED);
    assert_eq!(sh.ids(), ["a", "c", "b"]);
}

#[test]
fn start_child_whose_start_clashes_is_already_started_and_nothing_is_kept() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    sh.script_start("n", [Started::Clash(77)]);
    assert_eq!(
        sh.start_child(permanent("n")),
        Err(ChildError::AlreadyStarted {
            id: "n".into(),
            pid: 77
        })
    );
    assert_eq!(sh.take_log(), "S:n");
    assert!(sh.core.which_child("n").is_none());
    assert_eq!(sh.ids(), ["a"]);
}

#[test]
fn start_child_failure_stores_nothing() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    sh.script_start("n", [Started::Fail("nope")]);
    assert_eq!(
        sh.start_child(permanent("n")),
        Err(ChildError::StartFailed {
            id: "n".into(),
            reason: "nope".into()
        })
    );
    assert!(sh.core.which_child("n").is_none());
    assert_eq!(sh.core.count_children().specs, 1);
    // The id is free: the next attempt is a fresh start, not `already_present`.
    assert!(matches!(sh.start_child(permanent("n")), Ok(Some(_))));
    assert_eq!(sh.take_log(), "S:n S:n");
}

#[test]
fn start_child_ignore_keeps_the_spec_unless_temporary() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    sh.script_start("n", [Started::Ignore]);
    sh.script_start("t", [Started::Ignore]);
    assert_eq!(sh.start_child(permanent("n")), Ok(None));
    assert_eq!(sh.status("n"), STOPPED);
    assert_eq!(sh.start_child(temporary("t")), Ok(None));
    assert!(sh.status("t").is_none());
    assert_eq!(sh.ids(), ["n", "a"]);
}

#[test]
fn a_failed_restart_child_keeps_the_spec_stopped() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    assert_eq!(sh.terminate_child("a"), Ok(None));
    sh.script_start("a", [Started::Fail("still broken")]);
    assert_eq!(
        sh.restart_child("a"),
        Err(ChildError::StartFailed {
            id: "a".into(),
            reason: "still broken".into()
        })
    );
    assert_eq!(sh.status("a"), STOPPED);
    let pid = sh.restart_child("a").unwrap().expect("a pid");
    assert_eq!(sh.pid("a"), pid);
    assert_eq!(sh.take_log(), "T:a S:a S:a");
}

#[test]
fn restart_child_does_not_count_against_intensity() {
    let mut sh = Shell::boot(
        sup(Strategy::OneForOne, [permanent("a"), permanent("b")])
            .restart_intensity(1, Duration::from_secs(5)),
    );
    for _ in 0..3 {
        assert_eq!(sh.terminate_child("a"), Ok(None));
        assert!(matches!(sh.restart_child("a"), Ok(Some(_))));
    }
    sh.take_log();
    // The whole budget is still there for a crash.
    assert_idle(&sh.exit("a", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.take_log(), "S:a");
}

#[test]
fn terminate_child_twice_is_ok_and_drops_a_temporary_spec() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a"), temporary("t")]));
    assert_eq!(sh.terminate_child("a"), Ok(None));
    assert_eq!(sh.terminate_child("a"), Ok(None));
    assert_eq!(sh.take_log(), "T:a");
    assert_eq!(sh.status("a"), STOPPED);

    assert_eq!(sh.terminate_child("t"), Ok(None));
    assert!(sh.status("t").is_none());
    assert_eq!(
        sh.terminate_child("t"),
        Err(ChildError::NotFound("t".into()))
    );
    assert_eq!(sh.take_log(), "T:t");
}

#[test]
fn delete_child_only_when_stopped() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a"), permanent("b")]));
    assert_eq!(
        sh.core.delete_child("a"),
        Err(ChildError::Running("a".into()))
    );
    assert_eq!(sh.terminate_child("a"), Ok(None));
    assert_eq!(sh.core.delete_child("a"), Ok(()));
    assert!(sh.status("a").is_none());
    assert_eq!(
        sh.core.delete_child("a"),
        Err(ChildError::NotFound("a".into()))
    );
    assert_eq!(sh.ids(), ["b"]);
    // The id can be used again; the new child is the last started.
    assert!(matches!(sh.start_child(permanent("a")), Ok(Some(_))));
    assert_eq!(sh.ids(), ["a", "b"]);
}

#[test]
fn invalid_specs_are_refused() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    assert_eq!(
        sh.start_child(permanent("")),
        Err(ChildError::Spec(SpecError::EmptyId))
    );
    assert_eq!(
        sh.start_child(significant(transient("s"))),
        Err(ChildError::Spec(SpecError::SignificantWithoutAutoShutdown(
            "s".into()
        )))
    );
    assert_eq!(sh.take_log(), "");
    assert_eq!(sh.ids(), ["a"]);

    let mut sh =
        Shell::boot(sup(Strategy::OneForOne, []).auto_shutdown(AutoShutdown::AnySignificant));
    assert_eq!(
        sh.start_child(significant(permanent("s"))),
        Err(ChildError::Spec(SpecError::SignificantPermanent(
            "s".into()
        )))
    );

    let dup = sup(Strategy::OneForOne, [permanent("a"), permanent("a")]);
    assert_eq!(
        Core::<u64>::new(&dup).err(),
        Some(SpecError::DuplicateId("a".into()))
    );
    let zero = sup(Strategy::OneForOne, []).restart_intensity(1, Duration::ZERO);
    assert_eq!(Core::<u64>::new(&zero).err(), Some(SpecError::ZeroPeriod));
}

#[test]
fn which_children_lists_the_newest_first_and_restarts_do_not_reorder() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForOne,
        [permanent("a"), permanent("b"), permanent("c")],
    ));
    assert_eq!(sh.ids(), ["c", "b", "a"]);
    assert_idle(&sh.exit("a", ExitReason::Error("boom".into()), 0.0));
    assert_eq!(sh.ids(), ["c", "b", "a"]);
    sh.start_child(permanent("d")).unwrap();
    assert_eq!(sh.ids(), ["d", "c", "b", "a"]);
}

#[test]
fn count_children_counts_specs_active_supervisors_and_workers() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForOne,
        [
            permanent("w1"),
            permanent("s1").kind(ChildKind::Supervisor),
            permanent("w2"),
            permanent("w3"),
        ],
    ));
    assert_eq!(sh.terminate_child("w2"), Ok(None));
    sh.script_start("w3", [Started::Fail("no")]);
    assert_retry(&sh.exit("w3", ExitReason::Error("boom".into()), 0.0), "w3");
    assert_eq!(
        sh.core.count_children(),
        ChildCounts {
            specs: 4,
            active: 2,
            supervisors: 1,
            workers: 3
        }
    );
}

// -------------------------------------------------------------------------------------------------
// Property test: random event sequences keep the core's bookkeeping consistent.

mod property {
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    use proptest::prelude::*;

    use super::{child, reasons, Shell, Started};
    use crate::backoff::Backoff;
    use crate::core::{ChildKind, ChildStatus, Core, Outcome, Retry};
    use crate::exit::ExitReason;
    use crate::spec::{AutoShutdown, ChildSpec, Restart, Strategy as SupStrategy, SupervisorSpec};

    /// Ids come from a small pool so that API calls often hit existing children.
    const POOL: usize = 6;

    #[derive(Debug, Clone)]
    enum Event {
        /// The running child at this index (modulo) exits by itself after `dt_ms`.
        Exit {
            pick: usize,
            reason: usize,
            dt_ms: u64,
        },
        /// A pid that already stopped exits (again): must be ignored.
        Stale {
            pick: usize,
        },
        /// A process that never was a child exits.
        Stranger,
        /// The oldest queued retry comes up after `dt_ms`.
        Retry {
            dt_ms: u64,
        },
        /// A retry that already came up comes up again: must be ignored.
        Redeliver {
            pick: usize,
        },
        StartChild {
            id: usize,
            restart: usize,
            significant: bool,
            supervisor: bool,
        },
        Terminate(usize),
        Restart(usize),
        Delete(usize),
        Shutdown,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            8 => (any::<usize>(), 0..5usize, 0..3000u64)
                .prop_map(|(pick, reason, dt_ms)| Event::Exit { pick, reason, dt_ms }),
            1 => any::<usize>().prop_map(|pick| Event::Stale { pick }),
            1 => Just(Event::Stranger),
            3 => (0..1500u64).prop_map(|dt_ms| Event::Retry { dt_ms }),
            1 => any::<usize>().prop_map(|pick| Event::Redeliver { pick }),
            2 => (0..POOL, 0..3usize, any::<bool>(), any::<bool>()).prop_map(
                |(id, restart, significant, supervisor)| Event::StartChild {
                    id, restart, significant, supervisor
                }
            ),
            2 => (0..POOL).prop_map(Event::Terminate),
            2 => (0..POOL).prop_map(Event::Restart),
            1 => (0..POOL).prop_map(Event::Delete),
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
            1 => Just(Some(ExitReason::Error("stuck".into()))),
        ]
    }

    fn restart_type(n: usize) -> Restart {
        [Restart::Permanent, Restart::Transient, Restart::Temporary][n % 3]
    }

    fn spec_for(
        id: usize,
        restart: usize,
        significant: bool,
        supervisor: bool,
        auto: AutoShutdown,
    ) -> ChildSpec {
        let restart = restart_type(restart);
        let significant =
            significant && restart != Restart::Permanent && auto != AutoShutdown::Never;
        let kind = if supervisor {
            ChildKind::Supervisor
        } else {
            ChildKind::Worker
        };
        child(&format!("c{id}"))
            .restart(restart)
            .significant(significant)
            .kind(kind)
    }

    #[derive(Debug, Clone)]
    struct Setup {
        strategy: usize,
        intensity: u32,
        period_ms: u64,
        auto: usize,
        backoff: bool,
        children: Vec<(usize, bool, bool)>,
    }

    fn setup() -> impl Strategy<Value = Setup> {
        (
            0..3usize,
            0..4u32,
            500..4000u64,
            0..3usize,
            any::<bool>(),
            prop::collection::vec((0..3usize, any::<bool>(), any::<bool>()), 0..POOL),
        )
            .prop_map(
                |(strategy, intensity, period_ms, auto, backoff, children)| Setup {
                    strategy,
                    intensity,
                    period_ms,
                    auto,
                    backoff,
                    children,
                },
            )
    }

    /// The bookkeeping invariants that must hold between operations.
    fn check(core: &Core<u64>, dead: &[u64]) -> Result<(), TestCaseError> {
        let children = core.which_children();
        let counts = core.count_children();
        let running: Vec<(&str, u64)> = children
            .iter()
            .filter_map(|c| c.status.pid().map(|p| (c.id.as_str(), *p)))
            .collect();
        prop_assert_eq!(counts.active, running.len());
        prop_assert_eq!(counts.specs, children.len());
        prop_assert_eq!(counts.workers + counts.supervisors, counts.specs);
        let ids: HashSet<&str> = children.iter().map(|c| c.id.as_str()).collect();
        prop_assert_eq!(
            ids.len(),
            children.len(),
            "an id appears twice: {:?}",
            children
        );
        let pids: HashSet<u64> = running.iter().map(|&(_, p)| p).collect();
        prop_assert_eq!(
            pids.len(),
            running.len(),
            "a pid appears twice: {:?}",
            children
        );
        prop_assert_eq!(core.has_running_children(), !running.is_empty());
        for &(id, pid) in &running {
            prop_assert_eq!(core.id_of(&pid), Some(id));
            prop_assert!(!dead.contains(&pid), "{} runs as dead pid {}", id, pid);
        }
        for pid in dead {
            prop_assert_eq!(core.id_of(pid), None);
        }
        Ok(())
    }

    /// Whether the supervisor is still alive after this outcome; queues a requested retry and
    /// remembers it as its child's latest.
    fn settle(
        outcome: Outcome<u64>,
        core: &Core<u64>,
        retries: &mut Vec<Retry>,
        latest: &mut HashMap<String, u64>,
    ) -> Result<bool, TestCaseError> {
        match outcome {
            Outcome::Idle { retry } => {
                if let Some(r) = retry {
                    latest.insert(r.id.clone(), r.generation);
                    retries.push(r);
                }
                Ok(true)
            }
            Outcome::Reply(_) | Outcome::Ready => Ok(true),
            Outcome::Exit(reason) => {
                prop_assert!(reason.is_shutdown(), "exit with {:?}", reason);
                prop_assert!(!core.has_running_children());
                prop_assert!(core
                    .which_children()
                    .iter()
                    .all(|c| !matches!(c.status, ChildStatus::Running(_))));
                Ok(false)
            }
            Outcome::InitFailed { .. } => {
                prop_assert!(!core.has_running_children());
                Ok(false)
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_events_keep_the_bookkeeping_consistent(
            setup in setup(),
            events in prop::collection::vec(event(), 1..60),
            starts in prop::collection::vec(start_answer(), 0..80),
            stops in prop::collection::vec(stop_answer(), 0..80),
        ) {
            let strategy = [SupStrategy::OneForOne, SupStrategy::OneForAll, SupStrategy::RestForOne]
                [setup.strategy];
            let auto = [AutoShutdown::Never, AutoShutdown::AnySignificant, AutoShutdown::AllSignificant]
                [setup.auto];
            let mut spec = SupervisorSpec::new(strategy)
                .restart_intensity(setup.intensity, Duration::from_millis(setup.period_ms))
                .auto_shutdown(auto)
                .children(setup.children.iter().enumerate().map(
                    |(i, &(restart, significant, supervisor))| {
                        spec_for(i, restart, significant, supervisor, auto)
                    },
                ));
            if setup.backoff {
                spec = spec.backoff(
                    Backoff::new(Duration::from_millis(50), Duration::from_millis(800)).max_retries(3),
                );
            }
            let mut sh = Shell::new(spec);
            sh.start_dice.extend(starts);
            sh.stop_dice.extend(stops);
            let mut retries: Vec<Retry> = Vec::new();
            let mut latest: HashMap<String, u64> = HashMap::new();
            let mut delivered: Vec<Retry> = Vec::new();
            let mut now_ms = 0u64;

            let outcome = sh.init();
            let mut alive = settle(outcome, &sh.core, &mut retries, &mut latest)?;
            check(&sh.core, &sh.dead)?;

            for event in events {
                if !alive {
                    break;
                }
                let outcome = match event {
                    Event::Exit { pick, reason, dt_ms } => {
                        now_ms += dt_ms;
                        let running: Vec<u64> = sh
                            .core
                            .which_children()
                            .iter()
                            .filter_map(|c| c.status.pid().copied())
                            .collect();
                        if running.is_empty() {
                            continue;
                        }
                        let pid = running[pick % running.len()];
                        sh.dead.push(pid);
                        let now = sh.at(now_ms as f64 / 1000.0);
                        let cmd = sh.core.child_exited(&pid, reasons()[reason].clone(), now);
                        prop_assert!(cmd.is_some(), "exit of running pid {} taken as stale", pid);
                        sh.run(cmd.unwrap())
                    }
                    Event::Stale { pick } => {
                        if sh.dead.is_empty() {
                            continue;
                        }
                        let pid = sh.dead[pick % sh.dead.len()];
                        let now = sh.at(now_ms as f64 / 1000.0);
                        let cmd = sh.core.child_exited(&pid, ExitReason::Error("late".into()), now);
                        prop_assert!(cmd.is_none(), "stale exit of {} acted upon", pid);
                        continue;
                    }
                    Event::Stranger => {
                        let now = sh.at(now_ms as f64 / 1000.0);
                        let cmd = sh.core.child_exited(&1, ExitReason::Killed, now);
                        prop_assert!(cmd.is_none());
                        continue;
                    }
                    Event::Retry { dt_ms } => {
                        now_ms += dt_ms;
                        if retries.is_empty() {
                            continue;
                        }
                        let retry = retries.remove(0);
                        let now = sh.at(now_ms as f64 / 1000.0);
                        let superseded = latest.get(&retry.id) != Some(&retry.generation);
                        let before = sh.snapshot();
                        let cmd = sh.core.retry_due(&retry.id, retry.generation, now);
                        delivered.push(retry.clone());
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
                        let retry = delivered[pick % delivered.len()].clone();
                        let now = sh.at(now_ms as f64 / 1000.0);
                        let before = sh.snapshot();
                        let cmd = sh.core.retry_due(&retry.id, retry.generation, now);
                        prop_assert!(cmd.is_none(), "a retry acted twice: {:?}", retry);
                        prop_assert_eq!(before, sh.snapshot());
                        continue;
                    }
                    Event::StartChild { id, restart, significant, supervisor } => {
                        let cmd = sh.core.start_child(spec_for(id, restart, significant, supervisor, auto));
                        sh.run(cmd)
                    }
                    Event::Terminate(id) => {
                        let cmd = sh.core.terminate_child(&format!("c{id}"));
                        sh.run(cmd)
                    }
                    Event::Restart(id) => {
                        let cmd = sh.core.restart_child(&format!("c{id}"));
                        sh.run(cmd)
                    }
                    Event::Delete(id) => {
                        let _ = sh.core.delete_child(&format!("c{id}"));
                        check(&sh.core, &sh.dead)?;
                        continue;
                    }
                    Event::Shutdown => {
                        let cmd = sh.core.shutdown(ExitReason::Shutdown);
                        sh.run(cmd)
                    }
                };
                alive = settle(outcome, &sh.core, &mut retries, &mut latest)?;
                check(&sh.core, &sh.dead)?;
                prop_assert!(sh.core.take_reports().len() < 1000);
            }
            // Whatever happened, the supervisor can always be brought down cleanly.
            if alive {
                let cmd = sh.core.shutdown(ExitReason::Shutdown);
                let outcome = sh.run(cmd);
                prop_assert!(matches!(outcome, Outcome::Exit(ExitReason::Shutdown)));
                check(&sh.core, &sh.dead)?;
                prop_assert!(!sh.core.has_running_children());
            }
        }
    }
}

#[test]
fn api_start_failures_go_to_the_caller_and_are_not_logged_as_start_errors() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    sh.script_start("b", [Started::Fail("nope")]);
    assert!(matches!(
        sh.start_child(permanent("b")),
        Err(ChildError::StartFailed { ref id, ref reason }) if id == "b" && reason == "nope"
    ));
    sh.terminate_child("a").unwrap();
    sh.script_start("a", [Started::Fail("still nope")]);
    assert!(sh.restart_child("a").is_err());
    assert!(
        !sh.reports()
            .iter()
            .any(|r| matches!(r, Report::StartError { .. })),
        "OTP logs start_error only for starts the supervisor makes itself"
    );
}

#[test]
fn restart_child_clashing_with_a_running_process_is_already_started() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    sh.terminate_child("a").unwrap();
    sh.script_start("a", [Started::Clash(7)]);
    assert_eq!(
        sh.restart_child("a"),
        Err(ChildError::AlreadyStarted {
            id: "a".into(),
            pid: 7
        })
    );
    assert_eq!(sh.status("a"), Some(ChildStatus::Stopped));
}

// -------------------------------------------------------------------------------------------------
// Restart backoff

fn backed_off(id: &str, min_ms: u64, max_ms: u64) -> ChildSpec {
    permanent(id).backoff(
        crate::backoff::Backoff::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms))
            .jitter(0.0)
            .reset_after(Duration::from_secs(60)),
    )
}

fn assert_delayed(outcome: &Outcome<u64>, id: &str, ms: u64) {
    assert!(
        matches!(outcome, Outcome::Idle { retry: Some(r) } if r.id == id && r.after == Duration::from_millis(ms)),
        "expected a retry of `{id}` after {ms} ms, got {outcome:?}"
    );
}

#[test]
fn backoff_delays_the_restart_and_shows_the_next_attempt() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [backed_off("a", 100, 1000)]));
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 1.0), "a", 100);
    assert_eq!(sh.take_log(), "", "nothing is started before the delay");
    let info = sh.core.which_child("a").unwrap();
    assert_eq!(info.status, ChildStatus::Restarting);
    assert_eq!(info.next_attempt, Some(sh.at(1.1)));
    assert_eq!(sh.core.count_children().active, 0);
    // The delay is over: the child starts, and the next failure waits twice as long.
    assert_idle(&sh.retry("a", 1.1).unwrap());
    assert_eq!(sh.take_log(), "S:a");
    assert_eq!(sh.core.which_child("a").unwrap().next_attempt, None);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 1.2), "a", 200);
}

#[test]
fn a_backed_off_restart_counts_when_scheduled_so_a_crash_loop_escalates() {
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(2, Duration::from_secs(10))
        .child(backed_off("a", 10, 1000))
        .child(permanent("b"));
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 10);
    assert_idle(&sh.retry("a", 0.01).unwrap());
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.1), "a", 20);
    // The retry itself does not count again: the budget of 2 is not spent yet.
    assert_idle(&sh.retry("a", 0.12).unwrap());
    // The third crash in the window is refused when it is scheduled.
    assert_exit(
        &sh.exit("a", ExitReason::Error("x".into()), 0.2),
        &gave_up(),
    );
}

#[test]
fn a_failed_start_under_backoff_is_retried_after_a_delay() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [backed_off("a", 100, 1000)]));
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    sh.script_start("a", [Started::Fail("down")]);
    // The start fails: an immediate retry (OTP's try_again) that counts and backs off again.
    assert_retry(&sh.retry("a", 0.1).unwrap(), "a");
    assert_delayed(&sh.retry("a", 0.1).unwrap(), "a", 200);
}

#[test]
fn terminate_child_ends_a_backoff_wait_and_the_retry_is_ignored() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [backed_off("a", 100, 1000)]));
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    assert_eq!(
        sh.restart_child("a"),
        Err(ChildError::Restarting("a".into()))
    );
    sh.terminate_child("a").unwrap();
    assert_eq!(sh.core.which_child("a").unwrap().next_attempt, None);
    assert!(sh.retry("a", 0.1).is_none());
    assert_eq!(sh.take_log(), "");
}

#[test]
fn stability_resets_the_backoff() {
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(10, Duration::from_secs(1))
        .child(
            permanent("a").backoff(
                crate::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
                    .jitter(0.0)
                    .reset_after(Duration::from_secs(5)),
            ),
        );
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    assert_idle(&sh.retry("a", 0.1).unwrap());
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.2), "a", 200);
    assert_idle(&sh.retry("a", 0.4).unwrap());
    // Up for more than reset_after: back to the minimum.
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 6.0), "a", 100);
}

fn backoff(min_ms: u64, max_ms: u64) -> crate::backoff::Backoff {
    crate::backoff::Backoff::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms))
        .jitter(0.0)
}

// Retry generations: a retry acts only while its child still waits for it.

#[test]
fn a_stale_backoff_timer_does_not_cut_a_later_wait_short() {
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .restart_intensity(100, Duration::from_secs(10))
        .child(backed_off("a", 100, 1000))
        .child(permanent("b"));
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    let g1 = sh.generation("a");
    // b's round restarts a too, before a's own retry is due.
    assert_idle(&sh.exit("b", ExitReason::Error("y".into()), 0.01));
    assert_eq!(sh.take_log(), "S:a S:b");
    let a = sh.pid("a");
    // The stale timer of a's first wait comes up while a runs: nothing happens.
    assert!(sh.retry_gen("a", g1, 0.05).is_none());
    assert_eq!(sh.pid("a"), a);
    // a crashes again and waits twice as long.
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.06), "a", 200);
    let g2 = sh.generation("a");
    assert_ne!(g1, g2);
    let waiting = sh.snapshot();
    // The first wait's timer comes up at 0.1 s, in the middle of the second wait: still nothing.
    assert!(sh.retry_gen("a", g1, 0.1).is_none());
    assert_eq!(sh.take_log(), "", "a stale timer must not restart a early");
    assert_eq!(sh.snapshot(), waiting, "nor change anything");
    assert_eq!(
        sh.core.which_child("a").unwrap().next_attempt,
        Some(sh.at(0.26))
    );
    // The second wait's own retry does restart it.
    assert_idle(&sh.retry_gen("a", g2, 0.26).unwrap());
    assert_eq!(sh.take_log(), "T:b S:a S:b");
}

#[test]
fn a_retry_comes_up_once() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [backed_off("a", 100, 1000)]));
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    let g = sh.generation("a");
    assert_idle(&sh.retry_gen("a", g, 0.1).unwrap());
    assert_eq!(sh.take_log(), "S:a");
    assert!(sh.retry_gen("a", g, 0.1).is_none(), "delivered twice");
    // Also once the child waits again.
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.2), "a", 200);
    assert!(sh.retry_gen("a", g, 0.3).is_none());
    assert_eq!(sh.take_log(), "");
    // A try-again retry (failed start) too.
    sh.script_start("a", [Started::Fail("no")]);
    assert_retry(&sh.retry("a", 0.4).unwrap(), "a");
    let again = sh.generation("a");
    assert_delayed(&sh.retry_gen("a", again, 0.4).unwrap(), "a", 400);
    assert!(sh.retry_gen("a", again, 0.4).is_none());
}

#[test]
fn terminate_child_makes_the_retry_stale_even_after_a_new_wait() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [backed_off("a", 100, 1000)]));
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    let g1 = sh.generation("a");
    assert_eq!(sh.terminate_child("a"), Ok(None));
    assert!(matches!(sh.restart_child("a"), Ok(Some(_))));
    sh.take_log();
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.05), "a", 100);
    assert!(sh.retry_gen("a", g1, 0.1).is_none());
    assert_eq!(sh.take_log(), "");
    assert_idle(&sh.retry("a", 0.15).unwrap());
    assert_eq!(sh.take_log(), "S:a");
}

#[test]
fn a_child_added_again_under_the_same_id_does_not_take_its_predecessors_retry() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForOne,
        [backed_off("a", 100, 1000), permanent("b")],
    ));
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    let old = sh.generation("a");
    sh.terminate_child("a").unwrap();
    sh.core.delete_child("a").unwrap();
    assert!(matches!(
        sh.start_child(backed_off("a", 100, 1000)),
        Ok(Some(_))
    ));
    sh.take_log();
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.05), "a", 100);
    assert!(sh.retry_gen("a", old, 0.1).is_none());
    assert_eq!(sh.take_log(), "");
}

#[test]
fn shutdown_makes_every_retry_stale() {
    let mut sh = Shell::boot(sup(
        Strategy::OneForOne,
        [backed_off("a", 100, 1000), permanent("b")],
    ));
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    assert_exit(&sh.shutdown(ExitReason::Shutdown), &ExitReason::Shutdown);
    sh.take_log();
    assert!(sh.retry("a", 0.1).is_none());
    assert_eq!(sh.take_log(), "");
}

// A failed backed-off attempt: counted once, and the next attempt backed off.

#[test]
fn a_failed_backed_off_attempt_is_counted_once() {
    // Budget 2: the crash pays for attempt 1, the failure of attempt 1 pays for attempt 2. Were the
    // failed attempt charged twice, the retry after it would already give up.
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(2, Duration::from_secs(10))
        .child(backed_off("a", 100, 1000))
        .child(permanent("b"));
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    sh.script_start("a", [Started::Fail("down")]);
    assert_retry(&sh.retry("a", 0.1).unwrap(), "a");
    // The try-again counts and is put off by the next delay: no start now.
    assert_delayed(&sh.retry("a", 0.1).unwrap(), "a", 200);
    assert_eq!(sh.take_log(), "S:a");
    assert_idle(&sh.retry("a", 0.3).unwrap());
    assert_eq!(sh.take_log(), "S:a");
    sh.pid("a");
    // Both restarts are spent: the next crash is one too many.
    assert_exit(
        &sh.exit("a", ExitReason::Error("x".into()), 0.4),
        &gave_up(),
    );
}

#[test]
fn a_waiting_child_that_fails_in_a_siblings_round_is_counted_and_backed_off() {
    // a waits for its backoff when b's crash restarts everything, and a fails to start. That
    // failure's retry is a's next attempt: counted, and put off by a's next delay. (It used to take
    // a's old wait for its own: restarted at once and never counted.)
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .restart_intensity(3, Duration::from_secs(10))
        .child(backed_off("a", 100, 1000))
        .child(permanent("b"));
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    let wait = sh.generation("a");
    sh.script_start("a", [Started::Fail("down")]);
    assert_retry(&sh.exit("b", ExitReason::Error("y".into()), 0.01), "a");
    assert_eq!(sh.take_log(), "S:a");
    assert_eq!(sh.core.which_child("a").unwrap().next_attempt, None);
    assert!(
        sh.retry_gen("a", wait, 0.01).is_none(),
        "the old wait is over"
    );
    // Restart 3 of 3: allowed, and delayed.
    assert_delayed(&sh.retry("a", 0.02).unwrap(), "a", 200);
    assert_eq!(sh.take_log(), "", "nothing starts before the delay");
    assert_idle(&sh.retry("a", 0.22).unwrap());
    assert_eq!(sh.take_log(), "S:a S:b");
    // The budget is spent.
    assert_exit(
        &sh.exit("b", ExitReason::Error("y".into()), 0.3),
        &gave_up(),
    );
}

#[test]
fn a_start_that_fails_slowly_does_not_reset_the_backoff() {
    // The start function takes longer than reset_after to fail: the child never ran, so the next
    // delay is the next one, not the minimum again.
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(100, Duration::from_secs(10))
        .child(permanent("a").backoff(backoff(100, 10_000).reset_after(Duration::from_secs(1))));
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    sh.script_start("a", [Started::Fail("timed out")]);
    assert_retry(&sh.retry("a", 0.1).unwrap(), "a");
    // The failure (and so its retry) comes 2 s after the attempt began.
    assert_delayed(&sh.retry("a", 2.1).unwrap(), "a", 200);
}

#[test]
fn a_child_restarted_by_a_siblings_round_and_stable_since_starts_over() {
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .restart_intensity(100, Duration::from_secs(10))
        .child(permanent("a").backoff(backoff(100, 10_000).reset_after(Duration::from_secs(1))))
        .child(permanent("b"));
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    // b's round starts a at 0.01 s; a then runs for 100 s.
    assert_idle(&sh.exit("b", ExitReason::Error("y".into()), 0.01));
    assert_delayed(
        &sh.exit("a", ExitReason::Error("x".into()), 100.0),
        "a",
        100,
    );
}

// The bound on consecutive restarts (max_retries).

#[test]
fn past_max_retries_a_crash_loop_escalates_though_its_delays_outgrow_the_period() {
    // One restart per second is allowed, and every wait is longer than that: the window alone
    // would let this loop run forever.
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(1, Duration::from_secs(1))
        .child(
            permanent("a").backoff(
                backoff(2_000, 60_000)
                    .reset_after(Duration::from_secs(600))
                    .max_retries(3),
            ),
        )
        .child(permanent("b"));
    let mut sh = Shell::boot(spec);
    let mut t = 0.0;
    for expected_ms in [2_000, 4_000, 8_000] {
        assert_delayed(
            &sh.exit("a", ExitReason::Error("x".into()), t),
            "a",
            expected_ms,
        );
        t += expected_ms as f64 / 1000.0;
        assert_idle(&sh.retry("a", t).unwrap());
        t += 0.5;
    }
    sh.take_log();
    sh.reports();
    let outcome = sh.exit("a", ExitReason::Error("x".into()), t);
    assert_exit(&outcome, &gave_up());
    assert_eq!(sh.take_log(), "T:b");
    assert_eq!(
        sh.reports(),
        [
            child_terminated("a", ExitReason::Error("x".into())),
            Report::ReachedMaxRestartIntensity { id: "a".into() },
        ]
    );
    assert_eq!(sh.status("a"), STOPPED);
}

#[test]
fn failed_starts_count_towards_max_retries() {
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(100, Duration::from_secs(1))
        .child(permanent("a").backoff(backoff(100, 1_000).max_retries(2)))
        .child(permanent("b"));
    let mut sh = Shell::boot(spec);
    sh.script_start("a", [Started::Fail("no"), Started::Fail("no")]);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    assert_retry(&sh.retry("a", 0.1).unwrap(), "a");
    assert_delayed(&sh.retry("a", 0.1).unwrap(), "a", 200);
    assert_retry(&sh.retry("a", 0.3).unwrap(), "a");
    // A third restart in a row.
    assert_exit(&sh.retry("a", 0.3).unwrap(), &gave_up());
    assert_eq!(
        sh.reports().last(),
        Some(&Report::ReachedMaxRestartIntensity { id: "a".into() })
    );
}

#[test]
fn a_child_that_stays_up_past_reset_after_starts_its_count_over() {
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(100, Duration::from_secs(1))
        .child(
            permanent("a").backoff(
                backoff(100, 1_000)
                    .reset_after(Duration::from_secs(5))
                    .max_retries(2),
            ),
        );
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    assert_idle(&sh.retry("a", 0.1).unwrap());
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 1.0), "a", 200);
    assert_idle(&sh.retry("a", 1.2).unwrap());
    // Up from 1.2 s to 10 s: stable, so this is restart 1 of a new series, not the third in a row.
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 10.0), "a", 100);
    assert_idle(&sh.retry("a", 10.1).unwrap());
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 11.0), "a", 200);
    assert_idle(&sh.retry("a", 11.2).unwrap());
    assert_exit(
        &sh.exit("a", ExitReason::Error("x".into()), 12.0),
        &gave_up(),
    );
}

#[test]
fn past_max_retries_one_for_all_stops_the_others_in_reverse_order() {
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .restart_intensity(100, Duration::from_secs(1))
        .backoff(backoff(100, 1_000).max_retries(1))
        .children([permanent("a"), permanent("b"), permanent("c")]);
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("b", ExitReason::Error("x".into()), 0.0), "b", 100);
    assert_idle(&sh.retry("b", 0.1).unwrap());
    assert_eq!(sh.take_log(), "T:c T:a S:a S:b S:c");
    assert_exit(
        &sh.exit("b", ExitReason::Error("x".into()), 0.2),
        &gave_up(),
    );
    assert_eq!(sh.take_log(), "T:c T:a");
}

#[test]
fn an_api_restart_begins_a_new_series() {
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .restart_intensity(100, Duration::from_secs(1))
        .child(permanent("a").backoff(backoff(100, 1_000).max_retries(1)));
    let mut sh = Shell::boot(spec);
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.0), "a", 100);
    sh.terminate_child("a").unwrap();
    sh.restart_child("a").unwrap();
    // Restart 1 of a new series, at the minimum delay; not the second in a row.
    assert_delayed(&sh.exit("a", ExitReason::Error("x".into()), 0.1), "a", 100);
}

#[test]
fn max_retries_zero_is_refused_by_spec_validation() {
    let zero = backoff(100, 1_000).max_retries(0);
    let own = sup(Strategy::OneForOne, [permanent("a").backoff(zero)]);
    assert!(matches!(
        Core::<u64>::new(&own).err(),
        Some(SpecError::InvalidBackoff(_))
    ));
    let default = sup(Strategy::OneForOne, [permanent("a")]).backoff(zero);
    assert!(matches!(
        Core::<u64>::new(&default).err(),
        Some(SpecError::InvalidBackoff(_))
    ));
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    assert!(matches!(
        sh.start_child(permanent("b").backoff(zero)),
        Err(ChildError::Spec(SpecError::InvalidBackoff(_)))
    ));
}

#[test]
fn count_children_alive_does_not_count_a_dead_process_whose_exit_is_pending() {
    let sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a"), permanent("b")]));
    let dead = sh.pid("a");
    let counts = sh.core.count_children_alive(|pid| *pid != dead);
    assert_eq!((counts.specs, counts.active, counts.workers), (2, 1, 2));
    assert_eq!(sh.core.count_children().active, 2);
}

/// In the middle of a one_for_all round, a sibling that the round has stopped and will start again
/// shows as restarting, not stopped: a handle must wait for it rather than take it for stopped for
/// good.
#[test]
fn a_child_stopped_by_a_round_it_will_restart_shows_as_restarting() {
    let spec = sup(Strategy::OneForAll, [permanent("a"), permanent("b")]);
    let mut core: Core<u64> = Core::new(&spec).unwrap();
    let t0 = Instant::now();
    assert!(matches!(core.init(), Command::Start { .. }));
    assert!(matches!(core.started(Ok(Some(1))), Command::Start { .. }));
    assert!(matches!(
        core.started(Ok(Some(2))),
        Command::Done(Outcome::Ready)
    ));
    // a crashes: the round first stops b.
    let cmd = core.child_exited(&1, ExitReason::Error("boom".into()), t0);
    assert!(matches!(cmd, Some(Command::Terminate { ref id, .. }) if id == "b"));
    assert_eq!(
        core.which_child("b").unwrap().status,
        ChildStatus::Running(2)
    );
    // b is down; the round goes on to start a, then b.
    assert!(matches!(
        core.terminated(Some(ExitReason::Shutdown)),
        Command::Start { .. }
    ));
    assert_eq!(
        core.which_child("b").unwrap().status,
        ChildStatus::Restarting
    );
    assert_eq!(
        core.which_children()
            .iter()
            .find(|c| c.id == "b")
            .map(|c| c.status.clone()),
        Some(ChildStatus::Restarting)
    );
    // Once the round is over, a child stopped through the API is stopped.
    assert!(matches!(core.started(Ok(Some(3))), Command::Start { .. }));
    assert!(matches!(core.started(Ok(Some(4))), Command::Done(_)));
    assert!(matches!(
        core.terminate_child("b"),
        Command::Terminate { .. }
    ));
    assert!(matches!(
        core.terminated(Some(ExitReason::Shutdown)),
        Command::Done(_)
    ));
    assert_eq!(core.which_child("b").unwrap().status, ChildStatus::Stopped);
}

// -------------------------------------------------------------------------------------------------
// A restart round's stops, with reasons read afterwards (the shell's inline stops)

/// Drives a one_for_all round over `a` (crashed, pid 1), `b` (pid 2) and temporary `t` (pid 3),
/// answering b's and t's stops with `terminated_later(seen)`; ends with b restarted as 5.
fn round_with_later_reasons(seen: Option<ExitReason>) -> Core<u64> {
    let spec = sup(
        Strategy::OneForAll,
        [permanent("a"), permanent("b"), temporary("t")],
    );
    let mut core: Core<u64> = Core::new(&spec).unwrap();
    let t0 = Instant::now();
    core.init();
    core.started(Ok(Some(1)));
    core.started(Ok(Some(2)));
    core.started(Ok(Some(3)));
    let cmd = core.child_exited(&1, ExitReason::Error("crash".into()), t0);
    let Some(Command::Terminate { pid: 3, .. }) = cmd else {
        panic!("{cmd:?}")
    };
    assert!(core.in_restart_round());
    let Command::Terminate { pid: 2, .. } = core.terminated_later(seen.clone()) else {
        panic!("b is stopped next")
    };
    let Command::Start { spec } = core.terminated_later(seen) else {
        panic!("a is started next")
    };
    assert_eq!(spec.id(), "a");
    let Command::Start { spec } = core.started(Ok(Some(4))) else {
        panic!("b is started next")
    };
    assert_eq!(spec.id(), "b");
    assert!(matches!(
        core.started(Ok(Some(5))),
        Command::Done(Outcome::Idle { retry: None })
    ));
    assert!(!core.in_restart_round());
    core
}

/// The real reason handed in after the round is b's last exit, and a `shutdown_error` when it is
/// not what its policy expects; a temporary child removed by the round is still reported. An exit
/// of a process that was not awaited is not taken.
#[test]
fn a_round_reason_comes_after_the_round() {
    let mut core = round_with_later_reasons(Some(ExitReason::Shutdown));
    core.take_reports();
    assert_eq!(core.which_child("b").unwrap().last_exit, None);
    let boom = ExitReason::Error("flush failed".into());
    let b = core.stopped_with(&2, boom.clone()).unwrap();
    assert_eq!(b.spec.id(), "b");
    assert_eq!(core.which_child("b").unwrap().last_exit, Some(boom.clone()));
    let t = core.stopped_with(&3, boom.clone()).unwrap();
    assert_eq!(t.spec.id(), "t");
    assert!(core.which_child("t").is_none());
    assert_eq!(
        core.take_reports(),
        vec![
            Report::ShutdownError {
                id: "b".into(),
                reason: boom.clone()
            },
            Report::ShutdownError {
                id: "t".into(),
                reason: boom
            }
        ]
    );
    // Each reason is taken once; the restarted b's exit is an ordinary one.
    assert!(core.stopped_with(&2, ExitReason::Shutdown).is_none());
    assert!(core.stopped_with(&5, ExitReason::Shutdown).is_none());
    assert!(core.settle_stopped().is_empty());
}

/// A round's reasons are recorded on the child that was stopped even when the list was swept
/// under them: the round removes three temporary children out of six, the sweep at its end moves
/// a, b and c down, and the positions they were stopped at now hold their neighbours.
#[test]
fn a_round_reason_finds_its_child_after_a_sweep_moved_it() {
    let spec = sup(
        Strategy::OneForAll,
        [
            temporary("t1"),
            permanent("a"),
            permanent("b"),
            permanent("c"),
            temporary("t2"),
            temporary("t3"),
        ],
    );
    let mut core: Core<u64> = Core::new(&spec).unwrap();
    core.init();
    for pid in 1..=6 {
        core.started(Ok(Some(pid)));
    }
    // c (pid 4) crashes: the round stops t3, t2, b, a and t1 and starts a, b and c again.
    let mut cmd = core
        .child_exited(&4, ExitReason::Error("crash".into()), Instant::now())
        .expect("a round begins");
    let mut next_pid = 7;
    let mut stopped = Vec::new();
    loop {
        cmd = match cmd {
            Command::Terminate { pid, .. } => {
                stopped.push(pid);
                core.terminated_later(Some(ExitReason::Shutdown))
            }
            Command::Start { .. } => {
                next_pid += 1;
                core.started(Ok(Some(next_pid - 1)))
            }
            Command::Done(_) => break,
        };
    }
    assert_eq!(stopped, vec![6, 5, 3, 2, 1]);
    let ids: Vec<String> = core.which_children().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec!["c", "b", "a"], "the temporaries were swept");
    let late = ExitReason::Error("late".into());
    core.stopped_with(&2, late.clone()).unwrap();
    assert_eq!(core.which_child("a").unwrap().last_exit, Some(late));
    assert_eq!(core.which_child("b").unwrap().last_exit, None);
    core.stopped_with(&3, ExitReason::Shutdown).unwrap();
    assert_eq!(
        core.which_child("b").unwrap().last_exit,
        Some(ExitReason::Shutdown)
    );
    assert_eq!(
        core.which_child("c").unwrap().last_exit,
        Some(ExitReason::Error("crash".into()))
    );
}

/// A clean `shutdown` is recorded and not reported.
#[test]
fn a_clean_round_reason_is_unreported() {
    let mut core = round_with_later_reasons(Some(ExitReason::Shutdown));
    core.take_reports();
    core.stopped_with(&2, ExitReason::Shutdown).unwrap();
    assert_eq!(
        core.which_child("b").unwrap().last_exit,
        Some(ExitReason::Shutdown)
    );
    assert!(core.take_reports().is_empty());
}

/// A reason that never comes is settled with what the shell saw: `killed` after the timeout is
/// recorded and reported; nothing seen records nothing.
#[test]
fn unarrived_round_reasons_settle_on_what_was_seen() {
    let mut core = round_with_later_reasons(Some(ExitReason::Killed));
    core.take_reports();
    let settled = core.settle_stopped();
    assert_eq!(settled.len(), 2);
    assert_eq!(
        core.which_child("b").unwrap().last_exit,
        Some(ExitReason::Killed)
    );
    let reports = core.take_reports();
    assert!(reports.contains(&Report::ShutdownError {
        id: "b".into(),
        reason: ExitReason::Killed
    }));
    assert!(core.settle_stopped().is_empty());

    let mut core = round_with_later_reasons(None);
    core.take_reports();
    assert_eq!(core.settle_stopped().len(), 2);
    assert_eq!(core.which_child("b").unwrap().last_exit, None);
    assert!(core.take_reports().is_empty());
}

// -------------------------------------------------------------------------------------------------
// The child list's maps and tombstones

/// Children removed and added again, many times over, under ids taken before: every id finds its
/// current child, `which_children` keeps start order (newest first), a deleted id is gone, and a
/// restart round still reaches every live child, whether or not tombstones were swept yet.
///
/// Run with a list short enough to be scanned by id and with one long enough for the index's table,
/// as the temporary children added and removed take each across that size and back.
#[test]
fn ids_stay_right_across_removals_and_sweeps() {
    ids_stay_right_across_removals_and_sweeps_of(8);
    ids_stay_right_across_removals_and_sweeps_of(IdIndex::SCANNED - 1);
    ids_stay_right_across_removals_and_sweeps_of(IdIndex::SCANNED + 8);
}

fn ids_stay_right_across_removals_and_sweeps_of(len: usize) {
    let ids: Vec<String> = (0..len).map(|i| format!("c{i}")).collect();
    let mut sh = Shell::boot(
        sup(Strategy::OneForAll, ids.iter().map(|id| permanent(id)))
            .restart_intensity(1000, Duration::from_secs(5)),
    );
    let mut order: Vec<String> = ids.clone();
    for round in 0..40 {
        // Remove one (terminate + delete), then add it back as the last started.
        let id = order[(round * 3) % order.len()].clone();
        assert_eq!(sh.terminate_child(&id), Ok(None));
        assert_eq!(sh.core.delete_child(&id), Ok(()));
        assert!(sh.core.which_child(&id).is_none(), "{id} deleted");
        assert!(matches!(
            sh.core.terminate_child(&id),
            Command::Done(Outcome::Reply(Err(ChildError::NotFound(_))))
        ));
        order.retain(|o| *o != id);
        assert!(sh.start_child(permanent(&id)).unwrap().is_some());
        order.push(id.clone());
        // A temporary child that exits is removed, and its id can be taken again.
        let temp = format!("t{round}");
        assert!(sh.start_child(temporary(&temp)).unwrap().is_some());
        let outcome = sh.exit(&temp, ExitReason::Normal, 0.0);
        assert_idle(&outcome);
        assert!(sh.core.which_child(&temp).is_none());

        let shown = sh.ids();
        let mut expected = order.clone();
        expected.reverse();
        assert_eq!(shown, expected, "round {round}");
        for id in &order {
            let info = sh.core.which_child(id).expect("every live id is found");
            assert_eq!(&info.id, id);
            let pid = *info.status.pid().expect("running");
            assert_eq!(sh.core.id_of(&pid), Some(id.as_str()));
        }
    }
    // A round over the list stops and starts every live child once, in start order.
    sh.take_log();
    let outcome = sh.exit(&order[0].clone(), ExitReason::Error("boom".into()), 0.0);
    assert_idle(&outcome);
    let mut expected: Vec<String> = order[1..]
        .iter()
        .rev()
        .map(|id| format!("T:{id}"))
        .collect();
    expected.extend(order.iter().map(|id| format!("S:{id}")));
    assert_eq!(sh.take_log(), expected.join(" "));
}

/// A list that grows one `start_child` at a time past the size found by scanning, then shrinks
/// below it through deletions and the sweeps they cause, and grows again: at every size every live
/// id leads to its child, every running process to its id, a deleted id to nothing, and a taken id
/// is refused; a crash is found by its process and restarts its own child, and the stale process
/// leads nowhere.
#[test]
fn ids_are_found_as_the_list_crosses_the_scanned_size_both_ways() {
    let mut sh = Shell::boot(
        sup(Strategy::OneForOne, [permanent("c0")]).restart_intensity(1000, Duration::from_secs(5)),
    );
    let mut live: Vec<String> = vec!["c0".into()];
    let check = |sh: &mut Shell, live: &[String]| {
        let crashed = &live[live.len() / 2];
        let old = sh.pid(crashed);
        assert_idle(&sh.exit(crashed, ExitReason::Error("boom".into()), 0.0));
        assert_ne!(sh.pid(crashed), old, "{crashed} restarted");
        assert_eq!(sh.core.id_of(&old), None);
        assert!(sh
            .core
            .child_exited(&old, ExitReason::Killed, Instant::now())
            .is_none());
        assert!(sh.core.has_running_children());
        for id in live {
            let info = sh.core.which_child(id).expect("every live id is found");
            let pid = *info.status.pid().expect("running");
            assert_eq!(sh.core.id_of(&pid), Some(id.as_str()));
            assert!(matches!(
                sh.start_child(permanent(id)),
                Err(ChildError::AlreadyStarted { .. })
            ));
        }
        assert!(sh.core.which_child("never").is_none());
    };
    for i in 1..IdIndex::SCANNED * 2 {
        let id = format!("c{i}");
        assert!(sh.start_child(permanent(&id)).unwrap().is_some());
        live.push(id);
        check(&mut sh, &live);
    }
    while live.len() > 2 {
        let id = live.remove(0);
        assert_eq!(sh.terminate_child(&id), Ok(None));
        assert_eq!(sh.core.delete_child(&id), Ok(()));
        assert!(sh.core.which_child(&id).is_none(), "{id} deleted");
        check(&mut sh, &live);
    }
    for i in 0..IdIndex::SCANNED + 2 {
        // Ids deleted before are taken again, by new children.
        let id = format!("c{i}");
        if live.contains(&id) {
            continue;
        }
        let pid = sh.start_child(permanent(&id)).unwrap().unwrap();
        assert_eq!(sh.pid(&id), pid);
        live.push(id);
        check(&mut sh, &live);
    }
}

/// In the middle of a round, a child the round has stopped and will start again reads as
/// restarting, the same through every way of reading the children (one by id, all of them, and
/// the visitor snapshots use), which work out the round's pending starts once per read.
#[test]
fn children_a_round_will_start_read_as_restarting_through_every_reader() {
    let spec = sup(Strategy::OneForAll, [child("a"), child("b"), child("c")]);
    let mut core: Core<u64> = Core::new(&spec).unwrap();
    core.init();
    core.started(Ok(Some(1)));
    core.started(Ok(Some(2)));
    assert!(matches!(
        core.started(Ok(Some(3))),
        Command::Done(Outcome::Ready)
    ));
    let now = Instant::now();
    let Some(Command::Terminate { pid: 3, .. }) = core.child_exited(&1, ExitReason::Killed, now)
    else {
        panic!("the round stops c first")
    };
    let Command::Terminate { pid: 2, .. } = core.terminated(Some(ExitReason::Shutdown)) else {
        panic!("then b")
    };
    let Command::Start { spec } = core.terminated(Some(ExitReason::Shutdown)) else {
        panic!("then starts a")
    };
    assert_eq!(spec.id(), "a");
    let by_id: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| core.which_child(id).unwrap().status)
        .collect();
    let mut all: Vec<_> = core
        .which_children()
        .into_iter()
        .map(|c| c.status)
        .collect();
    all.reverse();
    let mut visited = Vec::new();
    core.visit_children(|view| {
        visited.push((
            view.id.to_string(),
            matches!(view.status, ChildStatus::Restarting),
            view.starting,
        ))
    });
    for status in by_id.iter().chain(&all) {
        assert_eq!(*status, ChildStatus::Restarting);
    }
    assert_eq!(
        visited,
        [
            ("a".to_string(), true, true),
            ("b".to_string(), true, false),
            ("c".to_string(), true, false),
        ]
    );
}

/// Each child the supervisor's shutdown stops shows how it ended, when, from the moment it is
/// stopped, including children that never exited before (whose exits are kept beside the list,
/// not in a past of their own) and after the sweep at the end of the shutdown moved them.
#[test]
fn a_shutdown_shows_every_stopped_childs_last_exit() {
    let spec = sup(
        Strategy::OneForOne,
        [
            temporary("t1"),
            temporary("t2"),
            permanent("a"),
            permanent("b"),
        ],
    );
    let mut core: Core<u64> = Core::new(&spec).unwrap();
    let t0 = Instant::now();
    core.tick(t0);
    core.init();
    for pid in 1..=4 {
        core.started(Ok(Some(pid)));
    }
    let Command::Terminate { pid: 4, .. } = core.shutdown(ExitReason::Shutdown) else {
        panic!("b is stopped first")
    };
    let Command::Terminate { pid: 3, .. } = core.terminated(Some(ExitReason::Killed)) else {
        panic!("a is stopped next")
    };
    let b = core.which_child("b").unwrap();
    assert_eq!(b.last_exit, Some(ExitReason::Killed));
    assert_eq!(b.last_exit_at, Some(t0));
    assert_eq!(core.which_child("a").unwrap().last_exit, None);
    let Command::Terminate { pid: 2, .. } = core.terminated(Some(ExitReason::Shutdown)) else {
        panic!("t2 is stopped next")
    };
    let Command::Terminate { pid: 1, .. } = core.terminated(Some(ExitReason::Normal)) else {
        panic!("t1 is stopped last")
    };
    let Command::Done(Outcome::Exit(ExitReason::Shutdown)) =
        core.terminated(Some(ExitReason::Normal))
    else {
        panic!("the supervisor exits")
    };
    let ids: Vec<String> = core.which_children().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec!["b", "a"], "the temporaries were swept");
    let a = core.which_child("a").unwrap();
    assert_eq!(a.last_exit, Some(ExitReason::Shutdown));
    assert_eq!(a.last_exit_at, Some(t0));
    assert_eq!(
        core.which_child("b").unwrap().last_exit,
        Some(ExitReason::Killed)
    );
}

/// A list that grows past the scanned size through children whose start was ignored (added, never
/// running) has its pid table from then on, so that looking a pid up stays O(1) instead of scanning
/// every stopped child until the next start or exit. The running child is still found by its pid.
#[test]
fn a_list_grown_by_ignored_children_gets_its_pid_table() {
    let mut sh = Shell::boot(sup(Strategy::OneForOne, [permanent("a")]));
    let a = sh.pid("a");
    for i in 0..IdIndex::SCANNED {
        let id = format!("n{i}");
        sh.script_start(&id, [Started::Ignore]);
        assert_eq!(sh.start_child(permanent(&id)), Ok(None));
    }
    assert!(sh.core.children.len() > IdIndex::SCANNED);
    assert!(
        sh.core.pids.built,
        "the pid table is built when the list outgrows scanning"
    );
    assert_eq!(sh.core.id_of(&a), Some("a"));
    assert_eq!(sh.status("n0"), STOPPED);
}
