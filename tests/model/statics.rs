//! The static supervisor: a reference model of docs/semantics.md, written as plain data and
//! straight-line code (one function per rule, the rounds as loops), and the harness that runs it in
//! lockstep with `canopy::core::Core`.
//!
//! The core is a state machine driven one command at a time, with a queue of steps over positions
//! and tombstones for removed children; the model is none of that. It keeps the children in a
//! `Vec` in start order and carries an operation out in one call, asking the scripted [`Env`] for
//! each start's and stop's result as it goes. The harness drives the core with a clone of the same
//! environment and compares, after every event: what was started and stopped and in what order,
//! the outcome (idle, retry and its delay, exit and its reason, the reply of an API call), the
//! reports, and the children as `which_children`, `which_child` and `count_children` show them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use canopy::core::{Command, Core, Outcome, Report, StartFailure};
use canopy::{
    AutoShutdown, ChildError, ChildKind, ChildSpec, ChildStatus, ExitReason, Restart, Shutdown,
    SpecError, Start, Strategy, SupervisorSpec,
};

use crate::common::*;

/// Ids of the children come from a small pool, so that API calls often hit existing children.
pub const POOL: usize = 6;

pub fn pool(i: usize) -> String {
    format!("c{}", i % POOL)
}

// -------------------------------------------------------------------------------------------------
// Inputs

/// A child spec as plain data.
#[derive(Debug, Clone)]
pub struct Desc {
    pub id: String,
    pub restart: Restart,
    pub kind: ChildKind,
    /// `None`: the kind's default.
    pub shutdown: Option<Shutdown>,
    pub significant: bool,
    pub backoff: Option<BackoffModel>,
}

impl Desc {
    pub fn new(id: &str, restart: Restart) -> Self {
        Desc {
            id: id.into(),
            restart,
            kind: ChildKind::Worker,
            shutdown: None,
            significant: false,
            backoff: None,
        }
    }

    pub fn with_backoff(mut self, backoff: BackoffModel) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The spec handed to the core. Its start function is never called: the harness answers.
    pub fn spec(&self) -> ChildSpec {
        let mut spec = ChildSpec::new(self.id.clone(), |_sup| async { Ok(Start::Ignore) })
            .restart(self.restart)
            .kind(self.kind)
            .significant(self.significant);
        if let Some(policy) = self.shutdown {
            spec = spec.shutdown(policy);
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
pub struct Setup {
    pub strategy: Strategy,
    pub intensity: u32,
    pub period_ms: u64,
    pub auto: AutoShutdown,
    /// The supervisor's default backoff.
    pub backoff: Option<BackoffModel>,
    pub children: Vec<Desc>,
    pub seed: u64,
}

impl Setup {
    pub fn spec(&self) -> SupervisorSpec {
        let mut spec = SupervisorSpec::new(self.strategy)
            .restart_intensity(self.intensity, ms(self.period_ms))
            .auto_shutdown(self.auto)
            .children(self.children.iter().map(Desc::spec));
        if let Some(b) = self.backoff {
            spec = spec.backoff(b.to_backoff());
        }
        spec
    }
}

/// One event of a case.
#[derive(Debug, Clone)]
pub enum Ev {
    /// After `dt_ms`, a running child (the `pick`-th by pid, modulo) exits by itself.
    Exit {
        pick: usize,
        reason: R,
        dt_ms: u64,
    },
    /// The exit of a process that already ended arrives (again, or after the supervisor stopped
    /// it): stale.
    LateExit {
        pick: usize,
    },
    /// A process that never was a child exits: stale.
    Stranger,
    /// Time passes.
    Advance(u64),
    /// The queued retry due first comes up; the clock moves to its due time if that is later.
    Fire,
    /// A retry that already came up comes up again: stale.
    Redeliver {
        pick: usize,
    },
    /// A retry of one child comes up under another child's id, or with a generation never handed
    /// out: stale.
    Bogus {
        pick: usize,
    },
    StartChild(Desc),
    Terminate(usize),
    Restart(usize),
    Delete(usize),
    /// `shutdown()` (`Shutdown`) or `stop_and_wait(reason)`.
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
            Ev::Terminate(_) => "terminate_child",
            Ev::Restart(_) => "restart_child",
            Ev::Delete(_) => "delete_child",
            Ev::Shutdown(_) => "shutdown",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub setup: Setup,
    /// Answers to the start-up's starts.
    pub init: Vec<StartAns>,
    /// Answers to every later start, cycled.
    pub starts: Vec<StartAns>,
    /// Answers to every stop, cycled.
    pub stops: Vec<StopAns>,
    pub events: Vec<Ev>,
}

// -------------------------------------------------------------------------------------------------
// The model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Running(u64),
    /// Waiting for a retry: a try-again after a failed start, or a backed-off restart.
    Restarting,
    Stopped,
}

/// The retry a restarting child waits for.
#[derive(Debug, Clone, Copy)]
struct Wait {
    token: u64,
    /// A backed-off restart, counted when it was scheduled; a try-again is counted when it comes up.
    counted: bool,
}

#[derive(Debug, Clone)]
struct Kid {
    desc: Desc,
    backoff: Option<BackoffModel>,
    st: St,
    wait: Option<Wait>,
    next_attempt: Option<Instant>,
    restarts: u32,
    last_exit: Option<ExitReason>,
    started_at: Option<Instant>,
    last_exit_at: Option<Instant>,
    series: Series,
}

/// Who asked for a start.
#[derive(Debug, Clone, Copy)]
enum How {
    Init,
    Api,
    /// A restart round begun at this time.
    Round(Instant),
}

enum Got {
    Up(u64),
    Ignored,
    Failed(StartFailure<u64>),
}

/// A rule deliberately broken, to show that the check notices (see the `mutants` tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// Transient children are restarted after a normal exit too.
    TransientAlwaysRestarts,
    /// One_for_all and rest_for_one stop the others in start order instead of reverse.
    StopInStartOrder,
    /// The window counts a restart exactly `period` ago.
    InclusiveWindow,
    /// A try-again retry is not counted against the budget.
    TryAgainUncounted,
    /// A round does not start children that were stopped before it.
    RoundSkipsStopped,
    /// A stale retry (superseded generation) still restarts the child.
    StaleRetryActs,
}

pub struct Model {
    strategy: Strategy,
    auto: AutoShutdown,
    window: Window,
    default_backoff: Option<BackoffModel>,
    kids: Vec<Kid>,
    tokens: u64,
    now: Instant,
    t0: Instant,
    pub alive: bool,
    pub env: Env,
    pub acts: Vec<Act>,
    pub reports: Vec<Report>,
    /// The token of the retry handed out by the last step, if any.
    pub handed_out: Option<u64>,
    /// The delay the core drew for a backed-off restart in this step, for a jittered backoff.
    pub drawn: Option<Duration>,
    pub violations: Vec<String>,
    pub mutant: Option<Mutant>,
}

impl Model {
    pub fn new(setup: &Setup, t0: Instant, env: Env) -> Self {
        Model {
            strategy: setup.strategy,
            auto: setup.auto,
            window: Window::new(setup.intensity, ms(setup.period_ms)),
            default_backoff: setup.backoff,
            kids: setup
                .children
                .iter()
                .map(|d| Kid::new(d.clone(), setup.backoff))
                .collect(),
            tokens: 0,
            now: t0,
            t0,
            alive: true,
            env,
            acts: Vec::new(),
            reports: Vec::new(),
            handed_out: None,
            drawn: None,
            violations: Vec::new(),
            mutant: None,
        }
    }

    fn mutant(&self, m: Mutant) -> bool {
        self.mutant == Some(m)
    }

    fn ids(&self) -> Vec<String> {
        self.kids.iter().map(|k| k.desc.id.clone()).collect()
    }

    fn pos(&self, id: &str) -> Option<usize> {
        self.kids.iter().position(|k| k.desc.id == id)
    }

    fn kid(&mut self, id: &str) -> &mut Kid {
        let i = self.pos(id).expect("the model lost a child");
        &mut self.kids[i]
    }

    fn has(&self, id: &str) -> bool {
        self.pos(id).is_some()
    }

    fn running(&self, id: &str) -> bool {
        self.pos(id)
            .is_some_and(|i| matches!(self.kids[i].st, St::Running(_)))
    }

    fn new_token(&mut self) -> u64 {
        self.tokens += 1;
        self.handed_out = Some(self.tokens);
        self.tokens
    }

    /// What becomes of a child the supervisor took down outside an exit it restarts, or one that
    /// ignored its start: its spec is kept, stopped, unless it is temporary; any retry it waited for
    /// is over.
    fn stop_or_drop(&mut self, id: &str) {
        let k = self.kid(id);
        k.wait = None;
        k.next_attempt = None;
        if k.desc.restart == Restart::Temporary {
            let i = self.pos(id).unwrap();
            self.kids.remove(i);
        } else {
            k.st = St::Stopped;
        }
    }

    /// Runs a child's start function (through the environment).
    fn start(&mut self, id: &str, how: How) -> Got {
        self.acts.push(Act::Start(id.to_string()));
        let now = self.now;
        match self.env.start() {
            Ok(Some(pid)) => {
                let k = self.kid(id);
                k.st = St::Running(pid);
                k.started_at = Some(now);
                // Started, by whoever: a retry it waited for is over.
                k.wait = None;
                k.next_attempt = None;
                match how {
                    How::Round(began) => {
                        // `restarts` counts the starts of restart rounds, bystanders included.
                        k.restarts += 1;
                        k.series.stable_from = Some(began);
                    }
                    // Start-up and the API begin a new backoff series.
                    How::Init | How::Api => k.series = Series::default(),
                }
                Got::Up(pid)
            }
            Ok(None) => {
                self.stop_or_drop(id);
                Got::Ignored
            }
            Err(failure) => Got::Failed(failure),
        }
    }

    /// Stops a running child by its policy and records how it ended.
    fn stop(&mut self, id: &str) {
        let now = self.now;
        let k = self.kid(id);
        let St::Running(pid) = k.st else {
            return;
        };
        let (policy, restart) = (k.desc.policy(), k.desc.restart);
        self.acts.push(Act::Stop(id.to_string(), pid, policy));
        if let Some(reason) = self.env.stop(policy) {
            if !stop_as_expected(restart, policy, &reason) {
                self.reports.push(Report::ShutdownError {
                    id: id.to_string(),
                    reason: reason.clone(),
                });
            }
            let k = self.kid(id);
            k.last_exit = Some(reason);
            k.last_exit_at = Some(now);
        }
        self.stop_or_drop(id);
    }

    // ---------------------------------------------------------------------------------------------
    // Events

    /// "Start-up": one at a time in order; on a failure, the started ones are stopped in reverse.
    pub fn init(&mut self) -> Out {
        for id in self.ids() {
            if let Got::Failed(failure) = self.start(&id, How::Init) {
                let reason = failure.to_string();
                self.reports.push(Report::StartError {
                    id: id.clone(),
                    reason: reason.clone(),
                });
                for other in self.ids().into_iter().rev() {
                    self.stop(&other);
                }
                self.alive = false;
                return Out::InitFailed { id, reason };
            }
        }
        Out::Ready
    }

    /// "The exit decision table", then the strategy or auto-shutdown.
    pub fn child_exited(&mut self, pid: u64, reason: ExitReason, now: Instant) -> Out {
        self.now = now;
        let Some(i) = self.kids.iter().position(|k| k.st == St::Running(pid)) else {
            return Out::Stale;
        };
        let (id, restart, significant) = {
            let d = &self.kids[i].desc;
            (d.id.clone(), d.restart, d.significant)
        };
        if reported(restart, &reason) {
            self.reports.push(Report::ChildTerminated {
                id: id.clone(),
                reason: reason.clone(),
            });
        }
        let again = restarted(restart, &reason)
            || (self.mutant(Mutant::TransientAlwaysRestarts) && restart == Restart::Transient);
        let k = &mut self.kids[i];
        k.last_exit = Some(reason);
        k.last_exit_at = Some(now);
        if again {
            k.st = St::Restarting;
            return self.restart(&id, now);
        }
        self.stop_or_drop(&id);
        if significant && self.auto_shutdown_due() {
            self.reports.push(Report::AutoShutdown { id });
            return self.shutdown(ExitReason::Shutdown);
        }
        Out::Idle(None)
    }

    /// A retry came up: only the last one handed out to the child, while it still waits.
    pub fn retry_due(&mut self, id: &str, token: u64, now: Instant) -> Out {
        self.now = now;
        let Some(i) = self.pos(id) else {
            return Out::Stale;
        };
        let wait = match self.kids[i].wait {
            Some(w) if w.token == token => w,
            // The mutant honours a superseded retry of a child that still waits.
            Some(w) if self.mutant(Mutant::StaleRetryActs) && token < w.token => w,
            _ => return Out::Stale,
        };
        if self.kids[i].st != St::Restarting {
            self.violations.push(format!(
                "model: `{id}` waits for a retry but is not restarting"
            ));
        }
        let k = &mut self.kids[i];
        k.wait = None;
        k.next_attempt = None;
        // A backed-off restart was counted when it was scheduled; a try-again is counted now.
        if wait.counted || self.mutant(Mutant::TryAgainUncounted) {
            self.round(id, now)
        } else {
            self.restart(id, now)
        }
    }

    /// "Termination": cancel every pending restart, stop the running children in reverse start
    /// order, exit with `reason`.
    pub fn shutdown(&mut self, reason: ExitReason) -> Out {
        for k in &mut self.kids {
            k.wait = None;
            k.next_attempt = None;
        }
        for id in self.ids().into_iter().rev() {
            self.stop(&id);
        }
        self.alive = false;
        Out::Exit(reason)
    }

    // ---------------------------------------------------------------------------------------------
    // Restarts

    /// "Restarted": counted against the budget, put off by the backoff, then the strategy's round.
    fn restart(&mut self, id: &str, now: Instant) -> Out {
        if !self.window.charge(now) {
            return self.give_up(id);
        }
        if let Some(policy) = self.kid(id).backoff {
            let drawn = self.drawn;
            let mut violations = Vec::new();
            let delay = self
                .kid(id)
                .series
                .next(policy, now, drawn, &mut violations);
            self.violations.extend(violations);
            let Some(delay) = delay else {
                return self.give_up(id);
            };
            if !delay.is_zero() {
                let token = self.new_token();
                let k = self.kid(id);
                k.st = St::Restarting;
                k.wait = Some(Wait {
                    token,
                    counted: true,
                });
                k.next_attempt = now.checked_add(delay);
                return Out::Idle(Some((id.to_string(), delay)));
            }
        }
        self.round(id, now)
    }

    /// "Escalation": the refused child stays stopped, everything else is stopped in reverse order.
    fn give_up(&mut self, id: &str) -> Out {
        self.reports
            .push(Report::ReachedMaxRestartIntensity { id: id.to_string() });
        self.stop_or_drop(id);
        self.shutdown(gave_up())
    }

    /// "Strategies": the round that restarts `id`, already counted.
    fn round(&mut self, id: &str, now: Instant) -> Out {
        if self.strategy == Strategy::OneForOne {
            return match self.start(id, How::Round(now)) {
                Got::Failed(failure) => self.failed_in_round(id, failure),
                Got::Up(_) | Got::Ignored => Out::Idle(None),
            };
        }
        // The child that failed is out of the running set for the round: if a sibling's start
        // fails, only that sibling is left restarting.
        {
            let k = self.kid(id);
            k.st = St::Stopped;
            k.wait = None;
            k.next_attempt = None;
        }
        let from = match self.strategy {
            Strategy::RestForOne => self.pos(id).unwrap(),
            _ => 0,
        };
        let range: Vec<String> = self.kids[from..]
            .iter()
            .map(|k| k.desc.id.clone())
            .collect();
        let stopped_before: Vec<String> = range
            .iter()
            .filter(|o| *o != id && self.kid(o).st == St::Stopped)
            .cloned()
            .collect();
        // Stop every running child of the range, one at a time, in reverse start order...
        let stop_order: Vec<&String> = if self.mutant(Mutant::StopInStartOrder) {
            range.iter().collect()
        } else {
            range.iter().rev().collect()
        };
        for other in stop_order {
            if self.running(other) {
                self.stop(other);
            }
        }
        // ...then start every child of the range still there in start order, those stopped before
        // the round included (temporary ones the round stopped are gone).
        for other in &range {
            if !self.has(other) || self.running(other) {
                continue;
            }
            if self.mutant(Mutant::RoundSkipsStopped) && stopped_before.contains(other) {
                continue;
            }
            if let Got::Failed(failure) = self.start(other, How::Round(now)) {
                return self.failed_in_round(other, failure);
            }
        }
        Out::Idle(None)
    }

    /// "Failed restarts": `start_error`, the child restarting, a retry through the mailbox.
    fn failed_in_round(&mut self, id: &str, failure: StartFailure<u64>) -> Out {
        self.reports.push(Report::StartError {
            id: id.to_string(),
            reason: failure.to_string(),
        });
        let token = self.new_token();
        let k = self.kid(id);
        k.st = St::Restarting;
        k.wait = Some(Wait {
            token,
            counted: false,
        });
        k.next_attempt = None;
        Out::Idle(Some((id.to_string(), Duration::ZERO)))
    }

    /// "Significant children and auto-shutdown", after a significant child's exit that is not
    /// restarted.
    fn auto_shutdown_due(&self) -> bool {
        match self.auto {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self
                .kids
                .iter()
                .any(|k| k.desc.significant && matches!(k.st, St::Running(_) | St::Restarting)),
        }
    }

    // ---------------------------------------------------------------------------------------------
    // The child management API

    /// The faults of a spec, by "Specs and defaults" and "Significant children".
    fn spec_faults(&self, d: &Desc) -> Vec<SpecError> {
        let mut faults = Vec::new();
        if d.id.is_empty() {
            faults.push(SpecError::EmptyId);
        }
        if d.id.contains('/') {
            faults.push(SpecError::SlashInName(d.id.clone()));
        }
        if d.significant && d.restart == Restart::Permanent {
            faults.push(SpecError::SignificantPermanent(d.id.clone()));
        }
        if d.significant && self.auto == AutoShutdown::Never {
            faults.push(SpecError::SignificantWithoutAutoShutdown(d.id.clone()));
        }
        faults
    }

    pub fn start_child(&mut self, d: &Desc) -> Out {
        let faults = self.spec_faults(d);
        if !faults.is_empty() {
            return Out::SpecRefused(faults);
        }
        if let Some(i) = self.pos(&d.id) {
            return Out::Reply(Err(match self.kids[i].st {
                St::Running(pid) => ChildError::AlreadyStarted {
                    id: d.id.clone(),
                    pid,
                },
                _ => ChildError::AlreadyPresent(d.id.clone()),
            }));
        }
        self.kids.push(Kid::new(d.clone(), self.default_backoff));
        match self.start(&d.id, How::Api) {
            Got::Up(pid) => Out::Reply(Ok(Some(pid))),
            Got::Ignored => Out::Reply(Ok(None)),
            Got::Failed(failure) => {
                let i = self.pos(&d.id).unwrap();
                self.kids.remove(i);
                Out::Reply(Err(api_error(&d.id, failure)))
            }
        }
    }

    pub fn terminate_child(&mut self, id: &str) -> Out {
        if !self.has(id) {
            return Out::Reply(Err(ChildError::NotFound(id.to_string())));
        }
        if self.running(id) {
            self.stop(id);
        } else {
            self.stop_or_drop(id);
        }
        Out::Reply(Ok(None))
    }

    pub fn restart_child(&mut self, id: &str) -> Out {
        let Some(i) = self.pos(id) else {
            return Out::Reply(Err(ChildError::NotFound(id.to_string())));
        };
        match self.kids[i].st {
            St::Running(_) => Out::Reply(Err(ChildError::Running(id.to_string()))),
            St::Restarting => Out::Reply(Err(ChildError::Restarting(id.to_string()))),
            St::Stopped => match self.start(id, How::Api) {
                Got::Up(pid) => Out::Reply(Ok(Some(pid))),
                Got::Ignored => Out::Reply(Ok(None)),
                Got::Failed(failure) => Out::Reply(Err(api_error(id, failure))),
            },
        }
    }

    pub fn delete_child(&mut self, id: &str) -> Out {
        let Some(i) = self.pos(id) else {
            return Out::Deleted(Err(ChildError::NotFound(id.to_string())));
        };
        match self.kids[i].st {
            St::Running(_) => Out::Deleted(Err(ChildError::Running(id.to_string()))),
            St::Restarting => Out::Deleted(Err(ChildError::Restarting(id.to_string()))),
            St::Stopped => {
                self.kids.remove(i);
                Out::Deleted(Ok(()))
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Queries

    /// `which_children`: most recently started first.
    pub fn views(&self) -> Vec<View> {
        self.kids.iter().rev().map(|k| k.view(self.t0)).collect()
    }

    pub fn view_of(&self, id: &str) -> Option<View> {
        self.pos(id).map(|i| self.kids[i].view(self.t0))
    }

    pub fn counts(&self) -> canopy::ChildCounts {
        let mut c = canopy::ChildCounts::default();
        for k in &self.kids {
            c.specs += 1;
            if matches!(k.st, St::Running(_)) {
                c.active += 1;
            }
            match k.desc.kind {
                ChildKind::Worker => c.workers += 1,
                ChildKind::Supervisor => c.supervisors += 1,
            }
        }
        c
    }

    pub fn in_window(&self, now: Instant) -> usize {
        self.window.in_window(now)
    }

    pub fn desc_of(&self, id: &str) -> Option<Desc> {
        self.pos(id).map(|i| self.kids[i].desc.clone())
    }

    pub fn has_backoff(&self, id: &str) -> bool {
        self.pos(id).is_some_and(|i| self.kids[i].backoff.is_some())
    }
}

impl Kid {
    fn new(desc: Desc, default_backoff: Option<BackoffModel>) -> Self {
        Kid {
            backoff: desc.backoff.or(default_backoff),
            desc,
            st: St::Stopped,
            wait: None,
            next_attempt: None,
            restarts: 0,
            last_exit: None,
            started_at: None,
            last_exit_at: None,
            series: Series::default(),
        }
    }

    fn view(&self, t0: Instant) -> View {
        View {
            id: self.desc.id.clone(),
            status: match self.st {
                St::Running(pid) => ChildStatus::Running(pid),
                St::Restarting => ChildStatus::Restarting,
                St::Stopped => ChildStatus::Stopped,
            },
            kind: self.desc.kind,
            restart: self.desc.restart,
            shutdown: self.desc.policy(),
            significant: self.desc.significant,
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            next_attempt: since(t0, self.next_attempt),
            started_at: match self.st {
                St::Running(_) => since(t0, self.started_at),
                _ => None,
            },
            last_exit_at: since(t0, self.last_exit_at),
        }
    }
}

/// "Child management API": a start through the API returns its failure to the caller.
fn api_error(id: &str, failure: StartFailure<u64>) -> ChildError<u64> {
    match failure {
        StartFailure::Error(reason) => ChildError::StartFailed {
            id: id.to_string(),
            reason,
        },
        StartFailure::AlreadyStarted(pid) => ChildError::AlreadyStarted {
            id: id.to_string(),
            pid,
        },
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
    let mut h = Harness::new(case, mutant);
    let result = h.go(case);
    let log = h.log.join("\n");
    match result {
        Ok(()) => Ok(log),
        Err(e) => Err(format!("{e}\n--- steps:\n{log}")),
    }
}

struct Harness {
    core: Core<u64>,
    model: Model,
    env: Env,
    t0: Instant,
    now: Instant,
    timers: Timers<String>,
    /// Every pid that ended: exited by itself or stopped by the supervisor, each exactly once.
    ended: HashSet<u64>,
    charges: Charges,
    intensity: u32,
    alive: bool,
    log: Vec<String>,
    /// The kind of the event being handled, for the coverage counters.
    kind: &'static str,
}

/// One side's answer to a step.
struct Side {
    acts: Vec<Act>,
    out: Out,
    reports: Vec<Report>,
    /// The core's generation or the model's token of the retry handed out.
    retry: Option<u64>,
    /// What the core did wrong in the middle of the operation.
    violations: Vec<String>,
}

impl Harness {
    fn new(case: &Case, mutant: Option<Mutant>) -> Self {
        let t0 = Instant::now();
        let env = Env::new(&case.init, &case.starts, &case.stops);
        let core = Core::new(&case.setup.spec())
            .expect("the generated spec is valid")
            .with_jitter_seed(case.setup.seed);
        let mut model = Model::new(&case.setup, t0, env.clone());
        model.mutant = mutant;
        model.window.inclusive = mutant == Some(Mutant::InclusiveWindow);
        Harness {
            core,
            model,
            env,
            t0,
            now: t0,
            timers: Timers::new(),
            ended: HashSet::new(),
            charges: Charges::new(case.setup.intensity, ms(case.setup.period_ms)),
            intensity: case.setup.intensity,
            alive: true,
            log: Vec::new(),
            kind: "init",
        }
    }

    fn go(&mut self, case: &Case) -> Result<(), String> {
        self.step("init", |core| Some(core.init()), |model| model.init())?;
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
            // Whatever happened, the supervisor can be brought down cleanly.
            self.step(
                "final shutdown",
                |core| Some(core.shutdown(ExitReason::Shutdown)),
                |model| model.shutdown(ExitReason::Shutdown),
            )?;
        }
        // Every incarnation ended exactly once (checked as they end), and none is left running.
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
                let info = self.core.which_children();
                let info = info
                    .iter()
                    .find(|c| c.status.pid() == Some(&pid))
                    .expect("a running pid");
                let (id, restart) = (info.id.clone(), info.restart);
                let backoff = self.model.has_backoff(&id);
                self.end(pid, "exited")?;
                let (now, reason) = (self.now, reason.reason());
                let what = format!("#{n} {} `{id}`#{pid} exits {reason:?}", self.at());
                let r2 = reason.clone();
                let out = self.step(
                    &what,
                    |core| core.child_exited(&pid, reason, now),
                    |model| model.child_exited(pid, r2.clone(), now),
                )?;
                if out == Out::Stale {
                    return Err(format!("{what}: the exit of a running child was stale"));
                }
                if restarted(restart, &r2) {
                    self.count(&out, backoff)?;
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
                let backoff = self.model.has_backoff(&timer.target);
                let now = self.now;
                let what = format!(
                    "#{n} {} retry of `{}` (gen {}, after {:?}) comes up",
                    self.at(),
                    timer.target,
                    timer.generation,
                    timer.after
                );
                let before = self.core_views();
                let (id, generation, token) = (timer.target.clone(), timer.generation, timer.token);
                let out = self.step(
                    &what,
                    |core| core.retry_due(&id, generation, now),
                    |model| model.retry_due(&id, token, now),
                )?;
                if out == Out::Stale {
                    if before != self.core_views() {
                        return Err(format!("{what}: a stale retry changed the children"));
                    }
                } else if timer.after.is_zero() {
                    // A try-again is counted when it comes up; a backed-off restart was counted
                    // when it was scheduled.
                    self.count(&out, backoff)?;
                }
            }
            Ev::Redeliver { pick } => {
                if self.timers.fired.is_empty() {
                    return Ok(());
                }
                let t = self.timers.fired[pick % self.timers.fired.len()].clone();
                let what = format!(
                    "#{n} {} retry gen {} of `{}` again",
                    self.at(),
                    t.generation,
                    t.target
                );
                self.stale(&what, |h| {
                    h.core.retry_due(&t.target, t.generation, h.now).is_none()
                        && h.model.retry_due(&t.target, t.token, h.now) == Out::Stale
                })?;
            }
            Ev::Bogus { pick } => {
                let all: Vec<Timer<String>> = self.timers.all().cloned().collect();
                let id = pool(*pick);
                let (generation, token) = match all.get((pick / POOL) % all.len().max(1)) {
                    Some(t) if t.target != id => (t.generation, t.token),
                    _ => (u64::MAX - *pick as u64 % 1000, u64::MAX),
                };
                let what = format!("#{n} {} bogus retry gen {generation} of `{id}`", self.at());
                self.stale(&what, |h| {
                    h.core.retry_due(&id, generation, h.now).is_none()
                        && h.model.retry_due(&id, token, h.now) == Out::Stale
                })?;
            }
            Ev::StartChild(d) => {
                self.core.tick(self.now);
                let what = format!("#{n} {} start_child({d:?})", self.at());
                let spec = d.spec();
                self.step(
                    &what,
                    |core| Some(core.start_child(spec)),
                    |model| model.start_child(d),
                )?;
            }
            Ev::Terminate(i) => {
                self.core.tick(self.now);
                let id = pool(*i);
                let what = format!("#{n} {} terminate_child({id})", self.at());
                self.step(
                    &what,
                    |core| Some(core.terminate_child(&id)),
                    |model| model.terminate_child(&id),
                )?;
            }
            Ev::Restart(i) => {
                self.core.tick(self.now);
                let id = pool(*i);
                let what = format!("#{n} {} restart_child({id})", self.at());
                self.step(
                    &what,
                    |core| Some(core.restart_child(&id)),
                    |model| model.restart_child(&id),
                )?;
            }
            Ev::Delete(i) => {
                self.core.tick(self.now);
                let id = pool(*i);
                let what = format!("#{n} {} delete_child({id})", self.at());
                let core_out = Out::Deleted(self.core.delete_child(&id));
                let model_out = self.model.delete_child(&id);
                note_step(self.kind, &core_out, &[], &[]);
                self.log.push(format!("{what} -> {core_out:?}"));
                if core_out != model_out {
                    return Err(format!("{what}: core {core_out:?}, model {model_out:?}"));
                }
                self.check(&what)?;
            }
            Ev::Shutdown(r) => {
                self.core.tick(self.now);
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

    /// A counted restart went ahead or made the supervisor give up (the model-free budget check).
    fn count(&mut self, out: &Out, backoff: bool) -> Result<(), String> {
        if *out == Out::Exit(gave_up()) {
            self.charges.gave_up(self.now, backoff)
        } else {
            self.charges.went_ahead(self.now)
        }
    }

    /// A pid ended; it must not have ended before.
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

    /// An event that must change nothing on either side.
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

    /// Runs one step on both sides and compares everything.
    fn step(
        &mut self,
        what: &str,
        core_side: impl FnOnce(&mut Core<u64>) -> Option<Command<u64>>,
        model_side: impl FnOnce(&mut Model) -> Out,
    ) -> Result<Out, String> {
        // Start order before the step, for the order invariants.
        let mut order: Vec<String> = self
            .core
            .which_children()
            .into_iter()
            .rev()
            .map(|c| c.id)
            .collect();

        let mut env = self.env.clone();
        // The shell gives the time before each operation; events that carry one set it too.
        self.core.tick(self.now);
        let core = match core_side(&mut self.core) {
            None => Side {
                acts: Vec::new(),
                out: Out::Stale,
                reports: self.core.take_reports(),
                retry: None,
                violations: Vec::new(),
            },
            Some(cmd) => drive(&mut self.core, cmd, &mut env),
        };

        self.model.env = self.env.clone();
        self.model.acts.clear();
        self.model.reports.clear();
        self.model.handed_out = None;
        self.model.drawn = match &core.out {
            Out::Idle(Some((_, after))) if !after.is_zero() => Some(*after),
            _ => None,
        };
        self.model.now = self.now;
        let model_out = model_side(&mut self.model);
        let model = Side {
            acts: std::mem::take(&mut self.model.acts),
            out: model_out,
            reports: std::mem::take(&mut self.model.reports),
            retry: self.model.handed_out,
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

        // Reverse-order termination, start order, and no child started twice in one step.
        for act in &core.acts {
            if let Act::Start(id) = act {
                if !order.contains(id) {
                    order.push(id.clone());
                }
            }
        }
        check_order(&order, &core.acts).map_err(|e| format!("{what}: {e}"))?;
        for act in &core.acts {
            if let Act::Stop(id, pid, _) = act {
                self.end(*pid, &format!("was stopped as `{id}`"))
                    .map_err(|e| format!("{what}: {e}"))?;
            }
        }

        match (&core.out, core.retry, model.retry) {
            (Out::Idle(Some((id, after))), Some(generation), Some(token)) => {
                self.timers
                    .push(self.now, id.clone(), *after, generation, token);
            }
            (Out::Idle(Some(_)), _, _) => {
                return Err(format!("{what}: a retry without a generation or token"));
            }
            _ => {}
        }
        if matches!(core.out, Out::Exit(_) | Out::InitFailed { .. }) {
            self.alive = false;
            if self.core.has_running_children() {
                return Err(format!("{what}: exited with children still running"));
            }
            return Ok(core.out);
        }
        self.check(what)?;
        Ok(core.out)
    }

    /// Between operations: the core's children, counts and budget against the model's, and the
    /// invariants that need no model.
    fn check(&mut self, what: &str) -> Result<(), String> {
        let infos = self.core.which_children();
        let views: Vec<View> = infos.iter().map(|c| view(self.t0, c)).collect();
        let expected = self.model.views();
        if views != expected {
            return Err(format!(
                "{what}: which_children differs\n  core:  {views:#?}\n  model: {expected:#?}"
            ));
        }
        for i in 0..POOL {
            let id = pool(i);
            let core = self.core.which_child(&id).map(|c| view(self.t0, &c));
            if core != self.model.view_of(&id) {
                return Err(format!("{what}: which_child({id}) differs: {core:?}"));
            }
            // get_childspec: the spec as given, the shutdown default filled in.
            let spec = self.core.get_childspec(&id);
            let expected = self.model.desc_of(&id);
            let same = match (&spec, &expected) {
                (None, None) => true,
                (Some(s), Some(d)) => {
                    s.get_restart() == d.restart
                        && s.get_kind() == d.kind
                        && s.get_shutdown() == d.policy()
                        && s.is_significant() == d.significant
                        && s.get_backoff().is_some() == d.backoff.is_some()
                }
                _ => false,
            };
            if !same {
                return Err(format!(
                    "{what}: get_childspec({id}) is {spec:?}, model {expected:?}"
                ));
            }
        }
        // count_children against which_children, then against the model.
        let counts = self.core.count_children();
        let running: Vec<u64> = infos
            .iter()
            .filter_map(|c| c.status.pid().copied())
            .collect();
        let workers = infos.iter().filter(|c| c.kind == ChildKind::Worker).count();
        if counts.specs != infos.len()
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
        let ids: HashSet<&str> = infos.iter().map(|c| c.id.as_str()).collect();
        let pids: HashSet<u64> = running.iter().copied().collect();
        if ids.len() != infos.len() || pids.len() != running.len() {
            return Err(format!("{what}: an id or a pid appears twice: {views:?}"));
        }
        for pid in &running {
            if self.ended.contains(pid) {
                return Err(format!(
                    "{what}: process {pid} shows as running but it ended"
                ));
            }
            if self.core.id_of(pid).is_none() {
                return Err(format!("{what}: id_of({pid}) is none for a running child"));
            }
        }
        if self.core.has_running_children() == running.is_empty() {
            return Err(format!("{what}: has_running_children is wrong"));
        }
        // The budget: never past the intensity, and as the model counts it.
        let budget = self.core.budget(self.now);
        if budget.restarts_in_window > self.intensity as usize
            || budget.restarts_in_window != self.model.in_window(self.now)
        {
            return Err(format!(
                "{what}: {} restarts in the window, model {}, intensity {}",
                budget.restarts_in_window,
                self.model.in_window(self.now),
                self.intensity
            ));
        }
        Ok(())
    }
}

/// Answers the core's commands until it is done, from the environment, recording them.
///
/// It also checks what only shows in the middle of an operation: the child whose start function
/// runs is `starting`, and a child this operation stopped and has not started again shows as
/// `Restarting` while the round goes on ("Strategies").
fn drive(core: &mut Core<u64>, mut cmd: Command<u64>, env: &mut Env) -> Side {
    let mut acts = Vec::new();
    let mut stopped: Vec<String> = Vec::new();
    let mut violations = Vec::new();
    loop {
        cmd = match cmd {
            Command::Start { spec } => {
                let id = spec.id().to_string();
                if !core.which_child(&id).is_some_and(|c| c.starting) {
                    violations.push(format!("`{id}` is not shown as starting during its start"));
                }
                stopped.retain(|s| *s != id);
                for other in &stopped {
                    // A temporary child the round stopped is gone; any other waits for its start.
                    if let Some(info) = core.which_child(other) {
                        if info.status != ChildStatus::Restarting {
                            violations.push(format!(
                                "`{other}`, stopped by this round, shows as {:?} while `{id}` starts",
                                info.status
                            ));
                        }
                    }
                }
                acts.push(Act::Start(id));
                core.started(env.start())
            }
            Command::Terminate { id, pid, shutdown } => {
                if core.id_of(&pid) != Some(id.as_str()) {
                    violations.push(format!(
                        "asked to stop #{pid}, which is not the current `{id}`"
                    ));
                }
                stopped.push(id.clone());
                acts.push(Act::Stop(id, pid, shutdown));
                core.terminated(env.stop(shutdown))
            }
            Command::Done(outcome) => {
                let (out, retry) = match outcome {
                    Outcome::Ready => (Out::Ready, None),
                    Outcome::InitFailed { id, reason } => (Out::InitFailed { id, reason }, None),
                    Outcome::Idle { retry: None } => (Out::Idle(None), None),
                    Outcome::Idle { retry: Some(r) } => {
                        (Out::Idle(Some((r.id, r.after))), Some(r.generation))
                    }
                    Outcome::Exit(reason) => (Out::Exit(reason), None),
                    Outcome::Reply(result) => (Out::Reply(result), None),
                };
                return Side {
                    acts,
                    out,
                    reports: core.take_reports(),
                    retry,
                    violations,
                };
            }
        };
    }
}

/// Within one step, every run of stops goes in reverse start order and every run of starts in
/// start order, and no child is started twice.
fn check_order(order: &[String], acts: &[Act]) -> Result<(), String> {
    let pos = |id: &str| order.iter().position(|o| o == id);
    let mut last: Option<(bool, usize)> = None;
    let mut started = HashSet::new();
    for act in acts {
        let (stop, id) = match act {
            Act::Start(id) => (false, id),
            Act::Stop(id, _, _) => (true, id),
            _ => continue,
        };
        if !stop && !started.insert(id.clone()) {
            return Err(format!("`{id}` started twice in one step: {}", list(acts)));
        }
        let p = pos(id).ok_or_else(|| format!("`{id}` is not a child"))?;
        if let Some((was_stop, q)) = last {
            if was_stop == stop && ((stop && p >= q) || (!stop && p <= q)) {
                return Err(format!(
                    "{} out of order (start order {order:?}): {}",
                    if stop { "stops" } else { "starts" },
                    list(acts)
                ));
            }
        }
        last = Some((stop, p));
    }
    Ok(())
}
