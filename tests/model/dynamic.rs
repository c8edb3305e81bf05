//! The dynamic supervisor: a reference model of docs/semantics.md ("Dynamic supervisors" and the
//! rules it refers to), and the harness that runs it in lockstep with
//! `canopy::dynamic::core::DynCore`.
//!
//! The model keeps its children in a `Vec` in the order `start_child` added them, each with the
//! key the core gave it (the key is the core's to choose; the model checks that it is fresh and
//! grows, and then predicts it for every restart), its arguments and its state. The harness
//! compares the same things as for the static core; the shutdown is one parallel stop, compared as
//! a set.

use std::cell::Cell;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use canopy::core::{Pid, Report, StartFailure};
use canopy::dynamic::core::{DynCommand, DynCore, DynOutcome};
use canopy::dynamic::DynamicSpec;
use canopy::{ChildError, ChildKind, ChildStatus, ExitReason, Restart, Shutdown, Start};

use crate::common::*;

#[derive(Debug, Clone)]
pub struct Setup {
    pub restart: Restart,
    pub kind: ChildKind,
    /// `None`: the kind's default.
    pub shutdown: Option<Shutdown>,
    pub intensity: u32,
    pub period_ms: u64,
    pub max_children: Option<usize>,
    pub backoff: Option<BackoffModel>,
    pub seed: u64,
}

impl Setup {
    pub fn spec(&self) -> DynamicSpec<u32> {
        let mut spec = DynamicSpec::new(|_sup, _args: u32| async { Ok(Start::Ignore) })
            .restart(self.restart)
            .kind(self.kind)
            .restart_intensity(self.intensity, ms(self.period_ms));
        if let Some(policy) = self.shutdown {
            spec = spec.shutdown(policy);
        }
        if let Some(max) = self.max_children {
            spec = spec.max_children(max);
        }
        if let Some(b) = self.backoff {
            spec = spec.backoff(b.to_backoff());
        }
        spec
    }

    fn policy(&self) -> Shutdown {
        self.shutdown.unwrap_or(default_shutdown(self.kind))
    }
}

#[derive(Debug, Clone)]
pub enum Ev {
    /// After `dt_ms`, a running child (the `pick`-th by pid, modulo) exits by itself.
    Exit {
        pick: usize,
        reason: R,
        dt_ms: u64,
    },
    /// The exit of a process that already ended arrives: stale.
    LateExit {
        pick: usize,
    },
    /// A process that never was a child exits: stale.
    Stranger,
    Advance(u64),
    /// The queued retry due first comes up.
    Fire,
    /// A retry that already came up comes up again: stale.
    Redeliver {
        pick: usize,
    },
    /// A retry of one child under another's key, or a generation never handed out: stale.
    Bogus {
        pick: usize,
    },
    StartChild(u32),
    /// `terminate_child` of a running child's pid, a waiting child's last pid, a pid that ended,
    /// or a stranger, live or dead (picked modulo).
    Terminate {
        pick: usize,
    },
    Shutdown(R),
}

impl Ev {
    pub fn kind(&self) -> &'static str {
        match self {
            Ev::Exit { .. } => "exit",
            Ev::LateExit { .. } => "late exit",
            Ev::Stranger => "stranger exit",
            Ev::Advance(_) => "advance",
            Ev::Fire => "retry",
            Ev::Redeliver { .. } => "redelivered retry",
            Ev::Bogus { .. } => "bogus retry",
            Ev::StartChild(_) => "start_child",
            Ev::Terminate { .. } => "terminate_child",
            Ev::Shutdown(_) => "shutdown",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub setup: Setup,
    pub starts: Vec<StartAns>,
    pub stops: Vec<StopAns>,
    pub events: Vec<Ev>,
}

// -------------------------------------------------------------------------------------------------
// The model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Running(u64),
    /// A restart failed; its try-again is queued.
    Restarting,
    /// A backed-off restart, already counted, is due then.
    Delayed(Option<Instant>),
}

#[derive(Debug, Clone)]
struct Kid {
    key: u64,
    st: St,
    /// The running process, or while waiting the last one (which `terminate_child` and
    /// `which_child` still accept).
    last_pid: u64,
    args: u32,
    restarts: u32,
    last_exit: Option<ExitReason>,
    started_at: Option<Instant>,
    last_exit_at: Option<Instant>,
    series: Series,
    wait: Option<u64>,
}

/// A rule deliberately broken, to show that the check notices (see the `mutants` tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// A backed-off restart is counted again when its delay is over.
    BackedOffCountedTwice,
    /// `max_children` counts only the running children.
    MaxCountsRunningOnly,
    /// A restart that returns ignore keeps the child, waiting.
    IgnoreKeepsChild,
    /// A stable run does not start the backoff over.
    NoBackoffReset,
}

pub struct Model {
    pub mutant: Option<Mutant>,
    restart: Restart,
    kind: ChildKind,
    policy: Shutdown,
    max_children: Option<usize>,
    backoff: Option<BackoffModel>,
    window: Window,
    kids: Vec<Kid>,
    tokens: u64,
    pub last_key: u64,
    pub now: Instant,
    t0: Instant,
    pub alive: bool,
    pub env: Env,
    pub acts: Vec<Act>,
    pub reports: Vec<Report>,
    pub handed_out: Option<u64>,
    pub drawn: Option<Duration>,
    pub violations: Vec<String>,
}

impl Model {
    pub fn new(setup: &Setup, t0: Instant, env: Env) -> Self {
        Model {
            mutant: None,
            restart: setup.restart,
            kind: setup.kind,
            policy: setup.policy(),
            max_children: setup.max_children,
            backoff: setup.backoff,
            window: Window::new(setup.intensity, ms(setup.period_ms)),
            kids: Vec::new(),
            tokens: 0,
            last_key: 0,
            now: t0,
            t0,
            alive: true,
            env,
            acts: Vec::new(),
            reports: Vec::new(),
            handed_out: None,
            drawn: None,
            violations: Vec::new(),
        }
    }

    fn pos(&self, key: u64) -> Option<usize> {
        self.kids.iter().position(|k| k.key == key)
    }

    fn kid(&mut self, key: u64) -> &mut Kid {
        let i = self.pos(key).expect("the model lost a child");
        &mut self.kids[i]
    }

    fn remove(&mut self, key: u64) {
        if let Some(i) = self.pos(key) {
            self.kids.remove(i);
        }
    }

    fn new_token(&mut self) -> u64 {
        self.tokens += 1;
        self.handed_out = Some(self.tokens);
        self.tokens
    }

    /// `start_child(args)`; `key` is the one the core chose for it.
    pub fn start_child(&mut self, args: u32, key: u64) -> Out {
        // `max_children` counts running, restarting and delayed children.
        let counted = if self.mutant == Some(Mutant::MaxCountsRunningOnly) {
            self.kids
                .iter()
                .filter(|k| matches!(k.st, St::Running(_)))
                .count()
        } else {
            self.kids.len()
        };
        if self.max_children.is_some_and(|max| counted >= max) {
            return Out::Reply(Err(ChildError::MaxChildren));
        }
        self.last_key = key;
        self.acts.push(Act::DynStart(key, args));
        // Whatever happens, nothing is kept unless the child is up.
        match self.env.start() {
            Ok(Some(pid)) => {
                self.kids.push(Kid {
                    key,
                    st: St::Running(pid),
                    last_pid: pid,
                    args,
                    restarts: 0,
                    last_exit: None,
                    started_at: Some(self.now),
                    last_exit_at: None,
                    series: Series::default(),
                    wait: None,
                });
                Out::Reply(Ok(Some(pid)))
            }
            Ok(None) => Out::Reply(Ok(None)),
            Err(StartFailure::Error(reason)) => Out::Reply(Err(ChildError::StartFailed {
                id: key.to_string(),
                reason,
            })),
            Err(StartFailure::AlreadyStarted(pid)) => Out::Reply(Err(ChildError::AlreadyStarted {
                id: key.to_string(),
                pid,
            })),
        }
    }

    /// The decision table; a child that is not restarted is removed.
    pub fn child_exited(&mut self, pid: u64, reason: ExitReason, now: Instant) -> Out {
        self.now = now;
        let Some(i) = self.kids.iter().position(|k| k.st == St::Running(pid)) else {
            return Out::Stale;
        };
        let key = self.kids[i].key;
        if reported(self.restart, &reason) {
            self.reports.push(Report::ChildTerminated {
                id: key.to_string(),
                reason: reason.clone(),
            });
        }
        let again = restarted(self.restart, &reason);
        let k = &mut self.kids[i];
        k.last_exit = Some(reason);
        k.last_exit_at = Some(now);
        if !again {
            self.remove(key);
            return Out::Idle(None);
        }
        k.st = St::Restarting;
        self.restart(key, now)
    }

    /// Only the last retry handed out to the child counts, and only once.
    pub fn retry_due(&mut self, key: u64, token: u64, now: Instant) -> Out {
        self.now = now;
        let Some(i) = self.pos(key) else {
            return Out::Stale;
        };
        if self.kids[i].wait != Some(token) {
            return Out::Stale;
        }
        self.kids[i].wait = None;
        match self.kids[i].st {
            St::Running(_) => {
                self.violations
                    .push(format!("model: running child {key} had a retry"));
                Out::Stale
            }
            // A try-again is counted when it comes up.
            St::Restarting => self.restart(key, now),
            St::Delayed(_) if self.mutant == Some(Mutant::BackedOffCountedTwice) => {
                if self.window.charge(now) {
                    self.restart_now(key, now)
                } else {
                    self.give_up(key)
                }
            }
            // A backed-off restart was counted when it was scheduled.
            St::Delayed(_) => self.restart_now(key, now),
        }
    }

    /// "Parallel shutdown": every running child at once; waiting children are dropped.
    pub fn shutdown(&mut self, reason: ExitReason) -> Out {
        let mut running: Vec<(u64, u64, Shutdown)> = self
            .kids
            .iter()
            .filter_map(|k| match k.st {
                St::Running(pid) => Some((k.key, pid, self.policy)),
                _ => None,
            })
            .collect();
        running.sort_unstable_by_key(|r| r.0);
        self.kids.clear();
        if !running.is_empty() {
            self.acts.push(Act::DynStopAll(running.clone()));
            for (key, _, policy) in running {
                if let Some(how) = self.env.stop(policy) {
                    if !stop_as_expected(self.restart, policy, &how) {
                        self.reports.push(Report::ShutdownError {
                            id: key.to_string(),
                            reason: how,
                        });
                    }
                }
            }
        }
        self.alive = false;
        Out::Exit(reason)
    }

    /// Stops and forgets a child named by its process; a waiting child named by its last process
    /// is forgotten; a process that is not a child is fine if dead, not found if alive.
    pub fn terminate_child(&mut self, pid: u64, alive: bool) -> Out {
        let Some(i) = self.kids.iter().position(|k| k.last_pid == pid) else {
            return Out::Reply(if alive {
                Err(ChildError::NotFound(pid.describe()))
            } else {
                Ok(None)
            });
        };
        let key = self.kids[i].key;
        if self.kids[i].st == St::Running(pid) {
            self.acts.push(Act::DynStop(key, pid, self.policy));
            if let Some(how) = self.env.stop(self.policy) {
                if !stop_as_expected(self.restart, self.policy, &how) {
                    self.reports.push(Report::ShutdownError {
                        id: key.to_string(),
                        reason: how,
                    });
                }
            }
        }
        self.remove(key);
        Out::Reply(Ok(None))
    }

    /// Counted against the budget, put off by the backoff, then started again.
    fn restart(&mut self, key: u64, now: Instant) -> Out {
        if !self.window.charge(now) {
            return self.give_up(key);
        }
        if let Some(policy) = self.backoff {
            let drawn = self.drawn;
            let mut violations = Vec::new();
            let delay = self
                .kid(key)
                .series
                .next(policy, now, drawn, &mut violations);
            self.violations.extend(violations);
            let Some(delay) = delay else {
                return self.give_up(key);
            };
            if !delay.is_zero() {
                let token = self.new_token();
                let k = self.kid(key);
                k.st = St::Delayed(now.checked_add(delay));
                k.wait = Some(token);
                return Out::Idle(Some((key.to_string(), delay)));
            }
        }
        self.restart_now(key, now)
    }

    /// "Escalation": the refused child is dropped, every other one stopped at once.
    fn give_up(&mut self, key: u64) -> Out {
        self.reports.push(Report::ReachedMaxRestartIntensity {
            id: key.to_string(),
        });
        self.remove(key);
        self.shutdown(gave_up())
    }

    /// Starts the child again with its own arguments.
    fn restart_now(&mut self, key: u64, now: Instant) -> Out {
        let args = {
            let k = self.kid(key);
            k.st = St::Restarting;
            k.wait = None;
            k.args
        };
        self.acts.push(Act::DynStart(key, args));
        match self.env.start() {
            Ok(Some(pid)) => {
                let no_reset = self.mutant == Some(Mutant::NoBackoffReset);
                let k = self.kid(key);
                k.st = St::Running(pid);
                k.last_pid = pid;
                k.restarts += 1;
                k.started_at = Some(now);
                // Stability is measured from the start of the round that started it.
                k.series.stable_from = (!no_reset).then_some(now);
                Out::Idle(None)
            }
            Ok(None) if self.mutant == Some(Mutant::IgnoreKeepsChild) => Out::Idle(None),
            Ok(None) => {
                self.reports.push(Report::RestartIgnored {
                    id: key.to_string(),
                });
                self.remove(key);
                Out::Idle(None)
            }
            Err(failure) => {
                self.reports.push(Report::StartError {
                    id: key.to_string(),
                    reason: failure.to_string(),
                });
                let token = self.new_token();
                let k = self.kid(key);
                k.st = St::Restarting;
                k.wait = Some(token);
                Out::Idle(Some((key.to_string(), Duration::ZERO)))
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Queries

    /// Newest first.
    pub fn views(&self) -> Vec<View> {
        self.kids.iter().rev().map(|k| self.view(k)).collect()
    }

    fn view(&self, k: &Kid) -> View {
        View {
            id: k.key.to_string(),
            status: match k.st {
                St::Running(pid) => ChildStatus::Running(pid),
                _ => ChildStatus::Restarting,
            },
            kind: self.kind,
            restart: self.restart,
            shutdown: self.policy,
            significant: false,
            restarts: k.restarts,
            last_exit: k.last_exit.clone(),
            next_attempt: match k.st {
                St::Delayed(at) => since(self.t0, at),
                _ => None,
            },
            started_at: match k.st {
                St::Running(_) => since(self.t0, k.started_at),
                _ => None,
            },
            last_exit_at: since(self.t0, k.last_exit_at),
        }
    }

    /// `which_child(pid)`: running as `pid`, or waiting after it.
    pub fn view_of(&self, pid: u64) -> Option<View> {
        self.kids
            .iter()
            .find(|k| k.last_pid == pid)
            .map(|k| self.view(k))
    }

    /// One spec (the template), the running children as active, every child under its kind.
    pub fn counts(&self) -> canopy::ChildCounts {
        let all = self.kids.len();
        let active = self
            .kids
            .iter()
            .filter(|k| matches!(k.st, St::Running(_)))
            .count();
        let (supervisors, workers) = match self.kind {
            ChildKind::Supervisor => (all, 0),
            ChildKind::Worker => (0, all),
        };
        canopy::ChildCounts {
            specs: 1,
            active,
            supervisors,
            workers,
        }
    }

    /// Arguments kept for restarts: none under a temporary template.
    pub fn args_of(&self, key: u64) -> Option<u32> {
        if self.restart == Restart::Temporary {
            return None;
        }
        self.pos(key).map(|i| self.kids[i].args)
    }

    /// Every pid `terminate_child` may name a child by.
    pub fn known_pids(&self) -> Vec<u64> {
        self.kids.iter().map(|k| k.last_pid).collect()
    }

    pub fn keys(&self) -> Vec<u64> {
        self.kids.iter().map(|k| k.key).collect()
    }
}

// -------------------------------------------------------------------------------------------------
// The harness

/// Runs one case against the core and the model; the first disagreement or broken invariant is
/// the error, with the steps that led to it.
pub fn run(case: &Case) -> Result<(), String> {
    trace_with(case, None).map(drop)
}

/// [`run`] against a model with one rule broken on purpose.
pub fn run_with(case: &Case, mutant: Option<Mutant>) -> Result<(), String> {
    trace_with(case, mutant).map(drop)
}

/// [`run`], returning the steps as text: one line per event, with the starts and stops, the
/// outcome and the reports.
pub fn trace(case: &Case) -> Result<String, String> {
    trace_with(case, None)
}

fn trace_with(case: &Case, mutant: Option<Mutant>) -> Result<String, String> {
    let mut h = Harness::new(case);
    h.model.mutant = mutant;
    let result = h.go(case);
    let log = h.log.join("\n");
    match result {
        Ok(()) => Ok(log),
        Err(e) => Err(format!("{e}\n--- steps:\n{log}")),
    }
}

struct Harness {
    core: DynCore<u64, u32>,
    model: Model,
    env: Env,
    t0: Instant,
    now: Instant,
    timers: Timers<u64>,
    ended: HashSet<u64>,
    charges: Charges,
    intensity: u32,
    max_children: Option<usize>,
    backoff: bool,
    alive: bool,
    log: Vec<String>,
    /// The kind of the event being handled, for the coverage counters.
    kind: &'static str,
}

struct Side {
    acts: Vec<Act>,
    out: Out,
    reports: Vec<Report>,
    /// The core's generation or the model's token of the retry handed out.
    retry: Option<u64>,
    /// The core's key of that retry.
    retry_key: Option<u64>,
    /// What the core did wrong in the middle of the operation.
    violations: Vec<String>,
}

impl Harness {
    fn new(case: &Case) -> Self {
        let t0 = Instant::now();
        let env = Env::new(&[], &case.starts, &case.stops);
        let s = &case.setup;
        Harness {
            core: DynCore::new(&s.spec())
                .expect("the generated template is valid")
                .with_jitter_seed(s.seed),
            model: Model::new(s, t0, env.clone()),
            env,
            t0,
            now: t0,
            timers: Timers::new(),
            ended: HashSet::new(),
            charges: Charges::new(s.intensity, ms(s.period_ms)),
            intensity: s.intensity,
            max_children: s.max_children,
            backoff: s.backoff.is_some(),
            alive: true,
            log: Vec::new(),
            kind: "init",
        }
    }

    fn go(&mut self, case: &Case) -> Result<(), String> {
        let mut handled = 0;
        for (n, ev) in case.events.iter().enumerate() {
            if !self.alive {
                break;
            }
            self.kind = ev.kind();
            self.event(n, ev)?;
            handled += 1;
        }
        note_case(handled, self.alive);
        self.kind = "final shutdown";
        if self.alive {
            self.step(
                "final shutdown",
                |core| Some(core.shutdown(ExitReason::Shutdown)),
                |model| model.shutdown(ExitReason::Shutdown),
            )?;
            if !self.core.which_children().is_empty() {
                return Err("children left after the shutdown".into());
            }
        }
        for pid in FIRST_PID..self.env.next_pid {
            if !self.ended.contains(&pid) {
                return Err(format!("process {pid} was started and never ended"));
            }
        }
        Ok(())
    }

    fn at(&self) -> String {
        format!("@{}ms", self.now.duration_since(self.t0).as_millis())
    }

    fn running_pids(&self) -> Vec<u64> {
        let mut pids: Vec<u64> = self
            .core
            .which_children()
            .iter()
            .filter_map(|c| c.status.pid().copied())
            .collect();
        pids.sort_unstable();
        pids
    }

    fn event(&mut self, n: usize, ev: &Ev) -> Result<(), String> {
        match ev {
            Ev::Exit {
                pick,
                reason,
                dt_ms,
            } => {
                self.now += ms(*dt_ms);
                let pids = self.running_pids();
                if pids.is_empty() {
                    return Ok(());
                }
                let pid = pids[pick % pids.len()];
                self.end(pid, "exited")?;
                let (now, reason) = (self.now, reason.reason());
                let key = self.core.key_of(&pid);
                let what = format!("#{n} {} child {key:?}#{pid} exits {reason:?}", self.at());
                let r2 = reason.clone();
                let out = self.step(
                    &what,
                    |core| core.child_exited(&pid, reason, now),
                    |model| model.child_exited(pid, r2.clone(), now),
                )?;
                if out == Out::Stale {
                    return Err(format!("{what}: the exit of a running child was stale"));
                }
                if restarted(self.model.restart, &r2) {
                    self.count(&out)?;
                }
            }
            Ev::LateExit { pick } => {
                let mut ended: Vec<u64> = self.ended.iter().copied().collect();
                if ended.is_empty() {
                    return Ok(());
                }
                ended.sort_unstable();
                let pid = ended[pick % ended.len()];
                self.stale(&format!("#{n} {} late exit of #{pid}", self.at()), |h| {
                    let late = ExitReason::Error("late".into());
                    h.core.child_exited(&pid, late.clone(), h.now).is_none()
                        && h.model.child_exited(pid, late, h.now) == Out::Stale
                })?;
            }
            Ev::Stranger => {
                self.stale(&format!("#{n} {} a stranger exits", self.at()), |h| {
                    h.core
                        .child_exited(&STRANGER, ExitReason::Killed, h.now)
                        .is_none()
                        && h.model.child_exited(STRANGER, ExitReason::Killed, h.now) == Out::Stale
                })?;
            }
            Ev::Advance(dt) => {
                self.now += ms(*dt);
                self.core.tick(self.now);
            }
            Ev::Fire => {
                let Some(timer) = self.timers.pop() else {
                    return Ok(());
                };
                self.now = self.now.max(timer.due);
                let now = self.now;
                let what = format!(
                    "#{n} {} retry of {} (gen {}, after {:?}) comes up",
                    self.at(),
                    timer.target,
                    timer.generation,
                    timer.after
                );
                let before = self.core_views();
                let (key, generation, token) = (timer.target, timer.generation, timer.token);
                let out = self.step(
                    &what,
                    |core| core.retry_due(key, generation, now),
                    |model| model.retry_due(key, token, now),
                )?;
                if out == Out::Stale {
                    if before != self.core_views() {
                        return Err(format!("{what}: a stale retry changed the children"));
                    }
                } else if timer.after.is_zero() {
                    self.count(&out)?;
                }
            }
            Ev::Redeliver { pick } => {
                if self.timers.fired.is_empty() {
                    return Ok(());
                }
                let t = self.timers.fired[pick % self.timers.fired.len()].clone();
                let what = format!(
                    "#{n} {} retry gen {} of {} again",
                    self.at(),
                    t.generation,
                    t.target
                );
                self.stale(&what, |h| {
                    h.core.retry_due(t.target, t.generation, h.now).is_none()
                        && h.model.retry_due(t.target, t.token, h.now) == Out::Stale
                })?;
            }
            Ev::Bogus { pick } => {
                let all: Vec<Timer<u64>> = self.timers.all().cloned().collect();
                let mut keys = self.model.keys();
                keys.push(self.model.last_key + 1);
                let key = keys[pick % keys.len()];
                let (generation, token) = match all.get((pick / 8) % all.len().max(1)) {
                    Some(t) if t.target != key => (t.generation, t.token),
                    _ => (u64::MAX - *pick as u64 % 1000, u64::MAX),
                };
                let what = format!("#{n} {} bogus retry gen {generation} of {key}", self.at());
                self.stale(&what, |h| {
                    h.core.retry_due(key, generation, h.now).is_none()
                        && h.model.retry_due(key, token, h.now) == Out::Stale
                })?;
            }
            Ev::StartChild(args) => {
                let what = format!("#{n} {} start_child({args})", self.at());
                let args = *args;
                let last_key = self.model.last_key;
                // The core runs first and chooses the key; the model then takes it.
                let key = Cell::new(last_key + 1);
                let fresh = Cell::new(true);
                self.step(
                    &what,
                    |core| {
                        let cmd = core.start_child(args);
                        if let DynCommand::Start { key: k, args: a } = &cmd {
                            // Fresh, and growing, so that "newest first" is by key.
                            fresh.set(*k > last_key && *a == args);
                            key.set(*k);
                        }
                        Some(cmd)
                    },
                    |model| model.start_child(args, key.get()),
                )?;
                if !fresh.get() {
                    return Err(format!(
                        "{what}: started as key {} after key {last_key}",
                        key.get()
                    ));
                }
            }
            Ev::Terminate { pick } => {
                let mut pids = self.model.known_pids();
                let mut ended: Vec<u64> = self.ended.iter().copied().collect();
                ended.sort_unstable();
                pids.extend(ended);
                pids.push(STRANGER);
                pids.push(DEAD_STRANGER);
                let pid = pids[pick % pids.len()];
                let alive = pid != DEAD_STRANGER && !self.ended.contains(&pid);
                let what = format!("#{n} {} terminate_child(#{pid}, alive {alive})", self.at());
                self.step(
                    &what,
                    |core| Some(core.terminate_child(&pid, alive)),
                    |model| model.terminate_child(pid, alive),
                )?;
            }
            Ev::Shutdown(r) => {
                let reason = r.reason();
                let r2 = reason.clone();
                let what = format!("#{n} {} shutdown({reason:?})", self.at());
                self.step(
                    &what,
                    |core| Some(core.shutdown(reason)),
                    |model| model.shutdown(r2.clone()),
                )?;
            }
        }
        Ok(())
    }

    fn count(&mut self, out: &Out) -> Result<(), String> {
        if *out == Out::Exit(gave_up()) {
            self.charges.gave_up(self.now, self.backoff)
        } else {
            self.charges.went_ahead(self.now)
        }
    }

    fn end(&mut self, pid: u64, how: &str) -> Result<(), String> {
        if !self.ended.insert(pid) {
            return Err(format!("process {pid} {how}, but it had already ended"));
        }
        Ok(())
    }

    fn core_views(&self) -> Vec<View> {
        self.core
            .which_children()
            .iter()
            .map(|c| view(self.t0, c))
            .collect()
    }

    fn stale(&mut self, what: &str, f: impl FnOnce(&mut Self) -> bool) -> Result<(), String> {
        let before = self.core_views();
        let model_before = self.model.views();
        self.log.push(format!("{what} -> stale"));
        stats::note(|| format!("{}: stale", self.kind));
        if !f(self) {
            return Err(format!("{what}: acted upon, but it is stale"));
        }
        if before != self.core_views() || model_before != self.model.views() {
            return Err(format!("{what}: a stale event changed the children"));
        }
        let reports = self.core.take_reports();
        if !reports.is_empty() || !self.model.reports.is_empty() {
            return Err(format!("{what}: a stale event reported {reports:?}"));
        }
        Ok(())
    }

    fn step(
        &mut self,
        what: &str,
        core_side: impl FnOnce(&mut DynCore<u64, u32>) -> Option<DynCommand<u64, u32>>,
        model_side: impl FnOnce(&mut Model) -> Out,
    ) -> Result<Out, String> {
        let mut env = self.env.clone();
        self.core.tick(self.now);
        let core = match core_side(&mut self.core) {
            None => Side {
                acts: Vec::new(),
                out: Out::Stale,
                reports: self.core.take_reports(),
                retry: None,
                retry_key: None,
                violations: Vec::new(),
            },
            Some(cmd) => drive(&mut self.core, cmd, &mut env),
        };

        self.model.env = self.env.clone();
        self.model.acts.clear();
        self.model.reports.clear();
        self.model.handed_out = None;
        self.model.now = self.now;
        self.model.drawn = match &core.out {
            Out::Idle(Some((_, after))) if !after.is_zero() => Some(*after),
            _ => None,
        };
        let model_out = model_side(&mut self.model);
        let model = Side {
            acts: std::mem::take(&mut self.model.acts),
            out: model_out,
            reports: std::mem::take(&mut self.model.reports),
            retry: self.model.handed_out,
            retry_key: None,
            violations: Vec::new(),
        };
        self.env = env;

        self.log.push(format!(
            "{what} -> {} {:?} {}",
            list(&core.acts),
            core.out,
            if core.reports.is_empty() {
                String::new()
            } else {
                list(&core.reports)
            }
        ));
        note_step(self.kind, &core.out, &core.acts, &core.reports);
        if !core.violations.is_empty() {
            return Err(format!("{what}: {}", core.violations.join("; ")));
        }
        let agree = core.acts == model.acts
            && same_out(&core.out, &model.out)
            && core.reports == model.reports
            && self.model.violations.is_empty();
        if !agree {
            return Err(format!(
                "{what}: core and model disagree\n  core:  {} -> {:?}\n         reports {}\n  model: {} -> {:?}\n         reports {}\n  {}",
                list(&core.acts),
                core.out,
                list(&core.reports),
                list(&model.acts),
                model.out,
                list(&model.reports),
                self.model.violations.join("; "),
            ));
        }

        // No child started twice in one step; every process stopped at most once, and only if it
        // had not ended.
        let mut started = HashSet::new();
        for act in &core.acts {
            match act {
                Act::DynStart(key, _) if !started.insert(*key) => {
                    return Err(format!("{what}: {key} started twice in one step"));
                }
                Act::DynStop(_, pid, _) => {
                    self.end(*pid, "was stopped")
                        .map_err(|e| format!("{what}: {e}"))?;
                }
                Act::DynStopAll(all) => {
                    for (_, pid, _) in all {
                        self.end(*pid, "was stopped")
                            .map_err(|e| format!("{what}: {e}"))?;
                    }
                }
                _ => {}
            }
        }

        match (&core.out, core.retry, model.retry) {
            (Out::Idle(Some((_, after))), Some(generation), Some(token)) => {
                let key = match core.retry_key {
                    Some(k) => k,
                    None => return Err(format!("{what}: a retry without a key")),
                };
                self.timers.push(self.now, key, *after, generation, token);
            }
            (Out::Idle(Some(_)), _, _) => {
                return Err(format!("{what}: a retry without a generation or token"));
            }
            _ => {}
        }
        if matches!(core.out, Out::Exit(_)) {
            self.alive = false;
            if self.core.has_running_children() || !self.core.which_children().is_empty() {
                return Err(format!("{what}: exited with children left"));
            }
            return Ok(core.out);
        }
        self.check(what)?;
        Ok(core.out)
    }

    fn check(&mut self, what: &str) -> Result<(), String> {
        let infos = self.core.which_children();
        let views: Vec<View> = infos.iter().map(|c| view(self.t0, c)).collect();
        let expected = self.model.views();
        if views != expected {
            return Err(format!(
                "{what}: which_children differs\n  core:  {views:#?}\n  model: {expected:#?}"
            ));
        }
        let mut pids = self.model.known_pids();
        pids.extend(self.ended.iter().copied());
        pids.push(STRANGER);
        for pid in pids {
            let core = self.core.which_child(&pid).map(|c| view(self.t0, &c));
            if core != self.model.view_of(pid) {
                return Err(format!("{what}: which_child(#{pid}) differs: {core:?}"));
            }
        }
        let counts = self.core.count_children();
        let running: Vec<u64> = infos
            .iter()
            .filter_map(|c| c.status.pid().copied())
            .collect();
        let workers = infos.iter().filter(|c| c.kind == ChildKind::Worker).count();
        if counts.specs != 1
            || counts.active != running.len()
            || counts.workers != workers
            || counts.supervisors != infos.len() - workers
        {
            return Err(format!(
                "{what}: count_children {counts:?} does not match which_children {views:?}"
            ));
        }
        if counts != self.model.counts() {
            return Err(format!(
                "{what}: count_children {counts:?}, model {:?}",
                self.model.counts()
            ));
        }
        if self.core.pending_restarts() != infos.len() - running.len() {
            return Err(format!("{what}: pending_restarts is wrong"));
        }
        if self.max_children.is_some_and(|max| infos.len() > max) {
            return Err(format!("{what}: more than max_children children"));
        }
        let ids: HashSet<&str> = infos.iter().map(|c| c.id.as_str()).collect();
        let unique: HashSet<u64> = running.iter().copied().collect();
        if ids.len() != infos.len() || unique.len() != running.len() {
            return Err(format!("{what}: an id or a pid appears twice: {views:?}"));
        }
        for info in &infos {
            let key: u64 = info
                .id
                .parse()
                .map_err(|_| format!("{what}: id {} is not a key", info.id))?;
            if let Some(pid) = info.status.pid() {
                if self.ended.contains(pid) {
                    return Err(format!(
                        "{what}: process {pid} shows as running but it ended"
                    ));
                }
                if self.core.key_of(pid) != Some(key) {
                    return Err(format!("{what}: key_of(#{pid}) is not {key}"));
                }
            }
            if self
                .core
                .child_info(key)
                .map(|c| view(self.t0, &c))
                .as_ref()
                != Some(&view(self.t0, info))
            {
                return Err(format!(
                    "{what}: child_info({key}) differs from which_children"
                ));
            }
            if self.core.args_of(key).copied() != self.model.args_of(key) {
                return Err(format!(
                    "{what}: args_of({key}) is {:?}, model {:?}",
                    self.core.args_of(key),
                    self.model.args_of(key)
                ));
            }
        }
        if self.core.has_running_children() == running.is_empty() {
            return Err(format!("{what}: has_running_children is wrong"));
        }
        // A waiting child is still found by its last process.
        for (key, pid) in self.model.keys().into_iter().zip(self.model.known_pids()) {
            if self.core.key_of(&pid) != Some(key) {
                return Err(format!("{what}: key_of(#{pid}) is not {key}"));
            }
        }
        let budget = self.core.budget(self.now);
        if budget.restarts_in_window > self.intensity as usize
            || budget.restarts_in_window != self.model.window.in_window(self.now)
        {
            return Err(format!(
                "{what}: {} restarts in the window, model {}, intensity {}",
                budget.restarts_in_window,
                self.model.window.in_window(self.now),
                self.intensity
            ));
        }
        Ok(())
    }
}

/// Answers the core's commands until it is done, from the environment, recording them; the child
/// whose restart runs is `starting` meanwhile.
fn drive(core: &mut DynCore<u64, u32>, mut cmd: DynCommand<u64, u32>, env: &mut Env) -> Side {
    let mut acts = Vec::new();
    let mut violations = Vec::new();
    loop {
        cmd = match cmd {
            DynCommand::Start { key, args } => {
                // A restart's child is listed while it starts; a new child is not yet.
                if let Some(info) = core.child_info(key) {
                    if !info.starting {
                        violations
                            .push(format!("{key} is not shown as starting during its restart"));
                    }
                }
                acts.push(Act::DynStart(key, args));
                core.started(env.start())
            }
            DynCommand::Terminate { key, pid, shutdown } => {
                if core.key_of(&pid) != Some(key) {
                    violations.push(format!("asked to stop #{pid}, which is not {key}'s"));
                }
                acts.push(Act::DynStop(key, pid, shutdown));
                core.terminated(env.stop(shutdown))
            }
            DynCommand::TerminateAll { mut children } => {
                // The order is not defined: answered, and compared, by key.
                children.sort_unstable_by_key(|c| c.0);
                acts.push(Act::DynStopAll(children.clone()));
                let results = children
                    .iter()
                    .map(|&(key, _, policy)| (key, env.stop(policy)))
                    .collect();
                core.terminated_all(results)
            }
            DynCommand::Done(outcome) => {
                let (out, retry) = match outcome {
                    DynOutcome::Idle { retry: None } => (Out::Idle(None), None),
                    DynOutcome::Idle { retry: Some(r) } => {
                        (Out::Idle(Some((r.key.to_string(), r.after))), Some(r))
                    }
                    DynOutcome::Exit(reason) => (Out::Exit(reason), None),
                    DynOutcome::Reply(result) => (Out::Reply(result), None),
                };
                return Side {
                    acts,
                    out,
                    reports: core.take_reports(),
                    retry: retry.map(|r| r.generation),
                    retry_key: retry.map(|r| r.key),
                    violations,
                };
            }
        };
    }
}
