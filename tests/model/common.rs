//! What the static and the dynamic checks share: the scripted world around a core (start and stop
//! answers, process ids, timers), the tables of docs/semantics.md that every rule of the models is
//! read from, and the models' own restart budget and backoff arithmetic.
//!
//! Nothing here calls into `canopy::core` beyond its public data types: the tables are written out
//! again from the documentation, so that a rule changed in the core and not in the documentation
//! (or the other way round) shows up as a disagreement.

use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use canopy::backoff::Backoff;
use canopy::core::{ChildError, ChildInfo, ChildStatus, StartFailure};
use canopy::{ChildKind, ExitReason, Restart, Shutdown, SpecError};

/// A live process that never was a child: what a start that clashes finds, and a stranger whose
/// exit reaches the supervisor.
pub const STRANGER: u64 = 1;
/// A process that never was a child and is dead.
pub const DEAD_STRANGER: u64 = 2;
/// The first pid the environment hands out; pids then go up by one per successful start.
pub const FIRST_PID: u64 = 100;
/// The detail of the reason a supervisor exits with when it gives up (docs, "Escalation").
pub const GAVE_UP: &str = "reached_max_restart_intensity";

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// -------------------------------------------------------------------------------------------------
// The tables of docs/semantics.md

/// The five exit reasons of the decision table, as test input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum R {
    Normal,
    Shutdown,
    ShutdownWith,
    Killed,
    Error,
}

impl R {
    pub fn reason(self) -> ExitReason {
        match self {
            R::Normal => ExitReason::Normal,
            R::Shutdown => ExitReason::Shutdown,
            R::ShutdownWith => ExitReason::ShutdownWith("detail".into()),
            R::Killed => ExitReason::Killed,
            R::Error => ExitReason::Error("boom".into()),
        }
    }
}

pub const REASONS: [R; 5] = [R::Normal, R::Shutdown, R::ShutdownWith, R::Killed, R::Error];

/// "Exit reasons": `Normal`, `Shutdown` and `ShutdownWith` are the normal class.
pub fn normal_class(reason: &ExitReason) -> bool {
    matches!(
        reason,
        ExitReason::Normal | ExitReason::Shutdown | ExitReason::ShutdownWith(_)
    )
}

/// "The exit decision table": is a child of this restart type restarted after this exit?
pub fn restarted(restart: Restart, reason: &ExitReason) -> bool {
    match restart {
        Restart::Permanent => true,
        Restart::Transient => !normal_class(reason),
        Restart::Temporary => false,
    }
}

/// `child_terminated` is logged for every exit of a permanent child and for the abnormal exits of
/// the others.
pub fn reported(restart: Restart, reason: &ExitReason) -> bool {
    restart == Restart::Permanent || !normal_class(reason)
}

/// "Shutdown errors": did a child the supervisor stopped end as its policy and restart type lead
/// the supervisor to expect?
pub fn stop_as_expected(restart: Restart, policy: Shutdown, reason: &ExitReason) -> bool {
    match reason {
        ExitReason::Shutdown => true,
        ExitReason::Normal | ExitReason::ShutdownWith(_) => restart != Restart::Permanent,
        ExitReason::Killed => policy == Shutdown::BrutalKill,
        ExitReason::Error(_) => false,
    }
}

/// "Specs and defaults": 5 s for a worker, infinity for a supervisor.
pub fn default_shutdown(kind: ChildKind) -> Shutdown {
    match kind {
        ChildKind::Worker => Shutdown::Timeout(Duration::from_secs(5)),
        ChildKind::Supervisor => Shutdown::Infinity,
    }
}

// -------------------------------------------------------------------------------------------------
// The scripted environment

/// How the environment answers one start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAns {
    /// Up, as the next fresh pid.
    Ok,
    /// `Start::Ignore`.
    Ignore,
    /// The start function failed.
    Fail,
    /// The start clashed with a running process ([`STRANGER`]).
    Clash,
}

/// How the environment answers one stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAns {
    /// The child ended the way its policy asks: `Killed` for a brutal kill, `Shutdown` otherwise.
    AsAsked,
    /// The child ended with this reason instead (killed after its timeout, a failing `post_stop`,
    /// or it had exited by itself just before the stop came).
    Ended(R),
    /// It was already gone and its exit is still on its way: no reason seen.
    Gone,
}

/// The world around a core: answers to its starts and stops, from scripts, and fresh pids.
///
/// The core and the model each get a clone before a step, so that the same questions in the same
/// order get the same answers; if they ask different questions the traces differ and that is the
/// disagreement reported.
#[derive(Debug, Clone)]
pub struct Env {
    /// Answers to the first starts (the start-up), then `starts` over and over.
    first: Rc<[StartAns]>,
    starts: Rc<[StartAns]>,
    stops: Rc<[StopAns]>,
    started: usize,
    stopped: usize,
    pub next_pid: u64,
}

impl Env {
    pub fn new(first: &[StartAns], starts: &[StartAns], stops: &[StopAns]) -> Self {
        Env {
            first: first.into(),
            starts: starts.into(),
            stops: stops.into(),
            started: 0,
            stopped: 0,
            next_pid: FIRST_PID,
        }
    }

    pub fn start(&mut self) -> Result<Option<u64>, StartFailure<u64>> {
        let n = self.started;
        self.started += 1;
        let answer = if n < self.first.len() {
            self.first[n]
        } else if self.starts.is_empty() {
            StartAns::Ok
        } else {
            self.starts[(n - self.first.len()) % self.starts.len()]
        };
        match answer {
            StartAns::Ok => {
                let pid = self.next_pid;
                self.next_pid += 1;
                Ok(Some(pid))
            }
            StartAns::Ignore => Ok(None),
            // Each failure says which start it was, so a report naming the wrong one shows.
            StartAns::Fail => Err(StartFailure::Error(format!("start #{n} failed"))),
            StartAns::Clash => Err(StartFailure::AlreadyStarted(STRANGER)),
        }
    }

    pub fn stop(&mut self, policy: Shutdown) -> Option<ExitReason> {
        let answer = if self.stops.is_empty() {
            StopAns::AsAsked
        } else {
            self.stops[self.stopped % self.stops.len()]
        };
        self.stopped += 1;
        match answer {
            StopAns::AsAsked if policy == Shutdown::BrutalKill => Some(ExitReason::Killed),
            StopAns::AsAsked => Some(ExitReason::Shutdown),
            StopAns::Ended(r) => Some(r.reason()),
            StopAns::Gone => None,
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Timers: the shell's queue of retries

/// One retry handed out, paired: the core's generation and the model's own token for it.
#[derive(Debug, Clone)]
pub struct Timer<T> {
    pub due: Instant,
    pub seq: u64,
    pub target: T,
    pub after: Duration,
    pub generation: u64,
    pub token: u64,
}

/// The retries handed out and not fired yet, and those that fired (for redelivery). The shell never
/// cancels a retry: stale ones fire too, and both sides must ignore them.
#[derive(Debug)]
pub struct Timers<T> {
    pub queued: Vec<Timer<T>>,
    pub fired: Vec<Timer<T>>,
    seq: u64,
}

impl<T: Clone> Timers<T> {
    pub fn new() -> Self {
        Timers {
            queued: Vec::new(),
            fired: Vec::new(),
            seq: 0,
        }
    }

    pub fn push(&mut self, now: Instant, target: T, after: Duration, generation: u64, token: u64) {
        self.seq += 1;
        self.queued.push(Timer {
            due: now + after,
            seq: self.seq,
            target,
            after,
            generation,
            token,
        });
    }

    /// The retry that comes up next: the earliest due; among equals the first queued (a zero-delay
    /// retry goes to the back of the mailbox).
    pub fn pop(&mut self) -> Option<Timer<T>> {
        let i = (0..self.queued.len()).min_by_key(|&i| (self.queued[i].due, self.queued[i].seq))?;
        let timer = self.queued.remove(i);
        self.fired.push(timer.clone());
        Some(timer)
    }

    /// Every retry ever handed out.
    pub fn all(&self) -> impl Iterator<Item = &Timer<T>> {
        self.queued.iter().chain(self.fired.iter())
    }
}

// -------------------------------------------------------------------------------------------------
// The model's restart budget and backoff

/// "Restart intensity": at most `intensity` restarts in any window of `period`; a restart exactly
/// `period` ago no longer counts; a refused restart is not recorded. Kept as the plain list of every
/// restart allowed, not as the core's bounded queue.
#[derive(Debug, Clone)]
pub struct Window {
    pub intensity: u32,
    pub period: Duration,
    /// Broken on purpose by a mutant: a restart exactly `period` ago still counts.
    pub inclusive: bool,
    stamps: Vec<Instant>,
}

impl Window {
    pub fn new(intensity: u32, period: Duration) -> Self {
        Window {
            intensity,
            period,
            inclusive: false,
            stamps: Vec::new(),
        }
    }

    pub fn in_window(&self, now: Instant) -> usize {
        self.stamps
            .iter()
            .filter(|&&t| {
                let ago = now.saturating_duration_since(t);
                ago < self.period || (self.inclusive && ago == self.period)
            })
            .count()
    }

    /// Counts a restart at `now`, or refuses it.
    pub fn charge(&mut self, now: Instant) -> bool {
        if self.in_window(now) >= self.intensity as usize {
            return false;
        }
        self.stamps.push(now);
        true
    }
}

/// A backoff policy as plain numbers (docs, "Backoff").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffModel {
    pub min_ms: u64,
    pub max_ms: u64,
    pub jitter: f64,
    pub reset_ms: u64,
    pub max_retries: u32,
}

impl BackoffModel {
    pub fn to_backoff(self) -> Backoff {
        Backoff::new(ms(self.min_ms), ms(self.max_ms))
            .jitter(self.jitter)
            .reset_after(ms(self.reset_ms))
            .max_retries(self.max_retries)
    }

    /// The delay of attempt `n` before jitter: `min · 2ⁿ`, capped at `max`.
    pub fn base(self, n: u32) -> Duration {
        let max = ms(self.max_ms);
        let mut d = ms(self.min_ms);
        for _ in 0..n {
            if d >= max {
                break;
            }
            d = d.saturating_mul(2);
        }
        d.min(max)
    }
}

/// One child's run of restarts in a row, for its backoff.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Restarts granted in a row (attempt number of the next one).
    pub in_a_row: u32,
    /// When the round that last started the child successfully began, until the run it started
    /// has been judged.
    pub stable_from: Option<Instant>,
}

impl Series {
    /// The delay of a restart scheduled at `now`, or `None` when it would be past `max_retries`
    /// (the supervisor gives up). A child that stayed up for `reset_after` since the round that
    /// started it starts over at attempt 0; each run is judged once, when it ends, so a start that
    /// failed afterwards never passes for a stable run.
    ///
    /// With jitter the stretch is random: the core's draw (`drawn`) is taken if it lies in
    /// `[base, base · (1 + jitter)]`, and a draw outside is a violation.
    pub fn next(
        &mut self,
        policy: BackoffModel,
        now: Instant,
        drawn: Option<Duration>,
        violations: &mut Vec<String>,
    ) -> Option<Duration> {
        if let Some(from) = self.stable_from.take() {
            if now.saturating_duration_since(from) >= ms(policy.reset_ms) {
                self.in_a_row = 0;
            }
        }
        if self.in_a_row >= policy.max_retries {
            return None;
        }
        let base = policy.base(self.in_a_row);
        self.in_a_row += 1;
        if policy.jitter == 0.0 || base.is_zero() {
            return Some(base);
        }
        let top = base + base.mul_f64(policy.jitter) + Duration::from_micros(1);
        match drawn {
            Some(d) if d >= base && d <= top => Some(d),
            other => {
                violations.push(format!(
                    "attempt {} of {policy:?}: delay {other:?} outside [{base:?}, {top:?}]",
                    self.in_a_row - 1
                ));
                Some(base)
            }
        }
    }
}

// -------------------------------------------------------------------------------------------------
// What is compared

/// One thing the core asked the shell to do.
#[derive(Clone, PartialEq)]
pub enum Act {
    /// Static: start this child.
    Start(String),
    /// Static: stop this child, running as this pid, by this policy.
    Stop(String, u64, Shutdown),
    /// Dynamic: start this key with these arguments.
    DynStart(u64, u32),
    /// Dynamic: stop this key, running as this pid.
    DynStop(u64, u64, Shutdown),
    /// Dynamic: stop all of these at once (sorted by key: the order is not defined).
    DynStopAll(Vec<(u64, u64, Shutdown)>),
}

impl fmt::Debug for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Act::Start(id) => write!(f, "S:{id}"),
            Act::Stop(id, pid, policy) => write!(f, "T:{id}#{pid}{}", short(*policy)),
            Act::DynStart(key, args) => write!(f, "S:{key}({args})"),
            Act::DynStop(key, pid, policy) => write!(f, "T:{key}#{pid}{}", short(*policy)),
            Act::DynStopAll(all) => {
                write!(f, "TA:[")?;
                for (i, (key, pid, policy)) in all.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(f, "{sep}{key}#{pid}{}", short(*policy))?;
                }
                write!(f, "]")
            }
        }
    }
}

fn short(policy: Shutdown) -> &'static str {
    match policy {
        Shutdown::BrutalKill => "/kill",
        Shutdown::Timeout(_) => "/timeout",
        Shutdown::Infinity => "/inf",
        Shutdown::Drain(_) => "/drain",
    }
}

/// How a step ended, on either side.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Ready,
    InitFailed {
        id: String,
        reason: String,
    },
    /// Idle, with the retry handed out if any: its child and its delay.
    Idle(Option<(String, Duration)>),
    Exit(ExitReason),
    Reply(Result<Option<u64>, ChildError<u64>>),
    Deleted(Result<(), ChildError<u64>>),
    /// The model's answer to an invalid spec: refused with any of these errors (docs do not rank
    /// them when a spec has several faults).
    SpecRefused(Vec<SpecError>),
    /// The event was not about a current child (the core returned `None`).
    Stale,
}

/// Whether the core's outcome is one the model allows.
pub fn same_out(core: &Out, model: &Out) -> bool {
    match (core, model) {
        (Out::Reply(Err(ChildError::Spec(e))), Out::SpecRefused(allowed)) => allowed.contains(e),
        _ => core == model,
    }
}

pub fn gave_up() -> ExitReason {
    ExitReason::ShutdownWith(GAVE_UP.into())
}

/// A child as `which_children` shows it, with times as offsets from the start of the case.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub id: String,
    pub status: ChildStatus<u64>,
    pub kind: ChildKind,
    pub restart: Restart,
    pub shutdown: Shutdown,
    pub significant: bool,
    pub restarts: u32,
    pub last_exit: Option<ExitReason>,
    pub next_attempt: Option<Duration>,
    pub started_at: Option<Duration>,
    pub last_exit_at: Option<Duration>,
}

pub fn since(t0: Instant, t: Option<Instant>) -> Option<Duration> {
    t.map(|t| t.saturating_duration_since(t0))
}

pub fn view(t0: Instant, info: &ChildInfo<u64>) -> View {
    View {
        id: info.id.clone(),
        status: info.status.clone(),
        kind: info.kind,
        restart: info.restart,
        shutdown: info.shutdown,
        significant: info.significant,
        restarts: info.restarts,
        last_exit: info.last_exit.clone(),
        next_attempt: since(t0, info.next_attempt),
        started_at: since(t0, info.started_at),
        last_exit_at: since(t0, info.last_exit_at),
    }
}

/// The budget invariant, checked without the model: every restart the documentation says is counted
/// (an exit the decision table restarts, a try-again retry that comes up) and did not make the
/// supervisor give up must fit in the window.
#[derive(Debug)]
pub struct Charges {
    intensity: u32,
    period: Duration,
    stamps: Vec<Instant>,
}

impl Charges {
    pub fn new(intensity: u32, period: Duration) -> Self {
        Charges {
            intensity,
            period,
            stamps: Vec::new(),
        }
    }

    pub fn in_window(&self, now: Instant) -> usize {
        self.stamps
            .iter()
            .filter(|&&t| now.saturating_duration_since(t) < self.period)
            .count()
    }

    /// A restart went ahead at `now`.
    pub fn went_ahead(&mut self, now: Instant) -> Result<(), String> {
        self.stamps.push(now);
        let n = self.in_window(now);
        if n > self.intensity as usize {
            return Err(format!(
                "budget exceeded without escalation: {n} restarts within {:?} (intensity {})",
                self.period, self.intensity
            ));
        }
        Ok(())
    }

    /// The supervisor gave up over a restart at `now`: the window must be full, unless the child has
    /// a backoff whose `max_retries` may have refused it.
    pub fn gave_up(&self, now: Instant, backoff: bool) -> Result<(), String> {
        let n = self.in_window(now);
        if n < self.intensity as usize && !backoff {
            return Err(format!(
                "gave up with {n} restarts in the window, intensity {}, and no backoff",
                self.intensity
            ));
        }
        Ok(())
    }
}

/// Compact text of a list for error messages.
pub fn list<T: fmt::Debug>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", parts.join(" "))
}

// -------------------------------------------------------------------------------------------------
// Coverage counters, for the `coverage` test: what the generated cases actually exercise.

pub mod stats {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static COUNTS: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub fn enable() {
        ON.with(|on| on.set(true));
    }

    /// Counts one occurrence of `what` (a no-op unless enabled on this thread).
    pub fn note(what: impl FnOnce() -> String) {
        if ON.with(Cell::get) {
            COUNTS.with(|c| *c.borrow_mut().entry(what()).or_default() += 1);
        }
    }

    pub fn take() -> BTreeMap<String, u64> {
        COUNTS.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }
}

/// The name of an outcome, for the coverage counters.
pub fn out_class(out: &Out) -> String {
    match out {
        Out::Ready => "ready".into(),
        Out::InitFailed { .. } => "init failed".into(),
        Out::Idle(None) => "idle".into(),
        Out::Idle(Some((_, after))) if after.is_zero() => "retry (try again)".into(),
        Out::Idle(Some(_)) => "retry (backed off)".into(),
        Out::Exit(reason) if *reason == gave_up() => "exit: gave up".into(),
        Out::Exit(_) => "exit".into(),
        Out::Reply(Ok(Some(_))) => "reply: started".into(),
        Out::Reply(Ok(None)) => "reply: ok, no process".into(),
        Out::Reply(Err(e)) => format!("reply: {}", error_class(e)),
        Out::Deleted(Ok(())) => "deleted".into(),
        Out::Deleted(Err(e)) => format!("delete refused: {}", error_class(e)),
        Out::SpecRefused(_) => "spec refused".into(),
        Out::Stale => "stale".into(),
    }
}

fn error_class(e: &ChildError<u64>) -> &'static str {
    match e {
        ChildError::NotFound(_) => "NotFound",
        ChildError::Running(_) => "Running",
        ChildError::Restarting(_) => "Restarting",
        ChildError::AlreadyPresent(_) => "AlreadyPresent",
        ChildError::AlreadyStarted { .. } => "AlreadyStarted",
        ChildError::StartFailed { .. } => "StartFailed",
        ChildError::Spec(_) => "Spec",
        ChildError::SupervisorDown => "SupervisorDown",
        ChildError::MaxChildren => "MaxChildren",
    }
}

/// The name of a report, for the coverage counters.
pub fn report_class(r: &canopy::core::Report) -> &'static str {
    use canopy::core::Report;
    match r {
        Report::ChildTerminated { .. } => "child_terminated",
        Report::StartError { .. } => "start_error",
        Report::ShutdownError { .. } => "shutdown_error",
        Report::ReachedMaxRestartIntensity { .. } => "reached_max_restart_intensity",
        Report::AutoShutdown { .. } => "auto-shutdown",
        Report::RestartIgnored { .. } => "restart ignored",
    }
}

/// Notes what a step did, for the coverage counters.
pub fn note_step(kind: &str, out: &Out, acts: &[Act], reports: &[canopy::core::Report]) {
    stats::note(|| format!("{kind}: {}", out_class(out)));
    for r in reports {
        stats::note(|| format!("report: {}", report_class(r)));
    }
    let stops = acts
        .iter()
        .filter(|a| matches!(a, Act::Stop(..) | Act::DynStop(..) | Act::DynStopAll(..)))
        .count();
    let starts = acts
        .iter()
        .filter(|a| matches!(a, Act::Start(..) | Act::DynStart(..)))
        .count();
    if stops > 0 && starts > 0 {
        stats::note(|| format!("{kind}: stops then starts"));
    }
    if starts > 1 {
        stats::note(|| format!("{kind}: several starts"));
    }
}

/// Notes how far a case got.
pub fn note_case(events: usize, alive: bool) {
    let bucket = match events {
        0 => "0",
        1..=9 => "1-9",
        10..=29 => "10-29",
        _ => "30+",
    };
    stats::note(|| {
        format!(
            "case: {bucket} events, {}",
            if alive {
                "ran to the end"
            } else {
                "supervisor exited"
            }
        )
    });
}
