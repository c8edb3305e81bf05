//! A dynamic supervisor's decisions, as a plain synchronous state machine (OTP's
//! `simple_one_for_one`, Elixir's `DynamicSupervisor`; see docs/semantics.md).
//!
//! [`DynCore`] reads like the static [`Core`](crate::core::Core): events in (a child exited, a retry
//! came up, an API call), one [`DynCommand`] out at a time, the shell feeding each result back
//! ([`DynCore::started`], [`DynCore::terminated`], [`DynCore::terminated_all`]) until the answer is
//! [`DynCommand::Done`]. It owns no clock (time is passed in) and no randomness it cannot be given
//! (the backoff jitter is seedable).
//!
//! Children are kept by an internal key that stays the same across restarts, with a map from the
//! running (or, while restarting, the last) process to the key. A child is running, restarting (a
//! restart failed, its retry is queued) or delayed (a backed-off restart waits for its time). It
//! keeps its start arguments, except under a temporary template, whose children are never
//! restarted (OTP keeps no arguments for them either).
//!
//! Every [`DynRetry`] carries a generation, and [`DynCore::retry_due`] honours only the last one
//! handed out for the child, once: a duplicate, a timer that outlived its wait, or a retry of a
//! child that was terminated or shut down does nothing.
//!
//! ```
//! use std::time::Instant;
//! use canopy::dynamic::core::{DynCommand, DynCore, DynOutcome};
//! use canopy::dynamic::DynamicSpec;
//! use canopy::{ExitReason, Start};
//!
//! let spec = DynamicSpec::new(|_sup, _port: u16| async { Ok(Start::Ignore) });
//! let mut core: DynCore<u64, u16> = DynCore::new(&spec).unwrap();
//!
//! // start_child(8080): the core asks for a start with those arguments; it runs as process 7.
//! let DynCommand::Start { key, args } = core.start_child(8080) else { unreachable!() };
//! assert_eq!(args, 8080);
//! assert!(matches!(core.started(Ok(Some(7))), DynCommand::Done(DynOutcome::Reply(Ok(Some(7))))));
//!
//! // Process 7 crashes: the same child (same key) is started again with the same arguments.
//! let cmd = core.child_exited(&7, ExitReason::Error("boom".into()), Instant::now());
//! assert!(matches!(cmd, Some(DynCommand::Start { key: k, args: 8080 }) if k == key));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::{Debug, Write as _};
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, Jitter};
use crate::core::{
    shutdown_went_as_planned, ChildCounts, ChildError, ChildInfo, ChildStatus, ChildView, History,
    Pid, Report, StartFailure, REACHED_MAX_RESTART_INTENSITY,
};
use crate::dynamic::DynamicSpec;
use crate::exit::ExitReason;
use crate::intensity::RestartWindow;
use crate::pid_hash::PidHash;
use crate::spec::{ChildKind, Restart, Shutdown, SpecError};

/// What the shell must do next.
///
/// ```
/// use canopy::dynamic::core::{DynCommand, DynCore};
/// use canopy::{dynamic::DynamicSpec, ExitReason, Start};
/// let mut core: DynCore<u64, ()> =
///     DynCore::new(&DynamicSpec::new(|_s, _a: ()| async { Ok(Start::Ignore) })).unwrap();
/// core.start_child(());
/// core.started(Ok(Some(1)));
/// core.start_child(());
/// core.started(Ok(Some(2)));
/// // A shutdown is one command for every child: the shell stops them all at once.
/// let DynCommand::TerminateAll { children } = core.shutdown(ExitReason::Shutdown) else { panic!() };
/// assert_eq!(children.len(), 2);
/// ```
#[derive(Debug)]
pub enum DynCommand<P, A> {
    /// Run the template's start function with `args` and report with [`DynCore::started`].
    Start {
        /// The child being started (a fresh key for `start_child`, the child's own for a restart).
        key: u64,
        /// Its start arguments.
        args: A,
    },
    /// Stop this process by its policy and report with [`DynCore::terminated`].
    Terminate {
        /// The child.
        key: u64,
        /// The process to stop.
        pid: P,
        /// How to stop it.
        shutdown: Shutdown,
    },
    /// Stop all these processes at once, each by its policy, and report with
    /// [`DynCore::terminated_all`] (a dynamic supervisor's shutdown is parallel).
    TerminateAll {
        /// Every running child: key, process, policy.
        children: Vec<(u64, P, Shutdown)>,
    },
    /// The operation is over.
    Done(DynOutcome<P>),
}

/// How an operation ended.
///
/// ```
/// use canopy::dynamic::core::{DynCommand, DynCore, DynOutcome};
/// use canopy::{core::ChildError, dynamic::DynamicSpec, Start};
/// let spec = DynamicSpec::new(|_s, _a: ()| async { Ok(Start::Ignore) }).max_children(1);
/// let mut core: DynCore<u64, ()> = DynCore::new(&spec).unwrap();
/// core.start_child(());
/// core.started(Ok(Some(1)));
/// let refused = core.start_child(());
/// assert!(matches!(refused, DynCommand::Done(DynOutcome::Reply(Err(ChildError::MaxChildren)))));
/// ```
#[derive(Debug)]
pub enum DynOutcome<P> {
    /// Nothing more to do, unless a restart must be tried again: then the shell queues
    /// [`DynCore::retry_due`] for it.
    Idle {
        /// The restart to come back to, if any.
        retry: Option<DynRetry>,
    },
    /// Every child is down; the supervisor must exit with this reason.
    Exit(ExitReason),
    /// The answer to a child management call.
    Reply(Result<Option<P>, ChildError<P>>),
}

/// A restart the shell must come back to with [`DynCore::retry_due`], passing `generation` back.
///
/// ```
/// use std::time::Duration;
/// let now = canopy::dynamic::core::DynRetry { key: 3, after: Duration::ZERO, generation: 1 };
/// assert!(now.after.is_zero()); // OTP's try_again: behind what is already queued, no timer
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynRetry {
    /// The child.
    pub key: u64,
    /// How long to wait first: zero for OTP's `try_again_restart`, which goes behind whatever is
    /// already in the mailbox, or the backoff delay.
    pub after: Duration,
    /// Which retry this is. Only the last retry handed out for a child counts, and only once.
    pub generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// A restart failed; its retry is queued.
    Restarting,
    /// A backed-off restart, already counted against intensity, is due at this time (`None` when
    /// the delay is too long for the clock to say).
    Delayed(Option<Instant>),
}

struct Child<P, A> {
    state: State,
    /// The running process, or while restarting the last one: `terminate_child` with a restarting
    /// child's old process ends its restart loop, as in OTP.
    pid: Option<P>,
    /// `None` under a temporary template.
    args: Option<A>,
    restarts: u32,
    started_at: Option<Instant>,
    /// Its exits and restarts so far, boxed as a static child's.
    past: History<u64>,
}

impl<P, A> Child<P, A> {
    fn set_retry(&mut self, retry: Option<u64>) {
        match retry {
            None => self.past.drop_retry(),
            Some(_) => self.past.get_mut().pending = retry,
        }
    }
}

enum Op<A> {
    ApiStart {
        key: u64,
        keep: Option<A>,
    },
    /// A restart begun at `now`: the child's start time if it succeeds.
    Restart {
        key: u64,
        now: Instant,
    },
    ApiTerminate {
        key: u64,
    },
    Shutdown {
        reason: ExitReason,
    },
}

/// A dynamic supervisor's state and decision logic. See the [module docs](self).
pub struct DynCore<P, A> {
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    max_children: Option<usize>,
    backoff: Option<Backoff>,
    jitter: Jitter,
    /// The latest time the shell gave: what start and exit times are recorded with.
    clock: Option<Instant>,
    window: RestartWindow,
    /// By key; keys grow with each `start_child`, so the newest child is last.
    children: BTreeMap<u64, Child<P, A>>,
    pids: HashMap<P, u64, PidHash>,
    next_key: u64,
    op: Option<Op<A>>,
    reports: Vec<Report>,
    /// The last retry generation handed out.
    generations: u64,
    /// The supervisor has begun to stop for good (see [`DynCore::is_exiting`]).
    exiting: bool,
}

impl<P: Debug, A> Debug for DynCore<P, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The arguments are the user's and need not be Debug.
        f.debug_struct("DynCore")
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("children", &self.children.len())
            .field("pids", &self.pids.keys().collect::<Vec<_>>())
            .field("busy", &self.op.is_some())
            .finish_non_exhaustive()
    }
}

impl<P: Pid, A: Clone> DynCore<P, A> {
    /// A core for this template, with no child. The spec is validated first.
    pub fn new(spec: &DynamicSpec<A>) -> Result<Self, SpecError> {
        spec.validate()?;
        Ok(DynCore {
            restart: spec.restart,
            shutdown: spec.get_shutdown(),
            kind: spec.kind,
            max_children: spec.max_children,
            backoff: spec.backoff,
            jitter: Jitter::from_entropy(),
            clock: None,
            window: RestartWindow::new(spec.intensity, spec.period),
            children: BTreeMap::new(),
            pids: HashMap::default(),
            next_key: 1,
            op: None,
            reports: Vec::new(),
            generations: 0,
            exiting: false,
        })
    }

    /// Seeds the backoff jitter, for reproducible tests.
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter = Jitter::seeded(seed);
        self
    }

    // ---------------------------------------------------------------------------------------------
    // Events

    /// A child exited. Returns `None` for an exit that is not about a running child: an
    /// incarnation already replaced or terminated, or a stranger.
    pub fn child_exited(
        &mut self,
        pid: &P,
        reason: ExitReason,
        now: Instant,
    ) -> Option<DynCommand<P, A>> {
        debug_assert!(self.op.is_none(), "events are handled between operations");
        self.clock = Some(now);
        let key = *self.pids.get(pid)?;
        let child = self.children.get_mut(&key)?;
        if child.state != State::Running || child.pid.as_ref() != Some(pid) {
            return None;
        }
        let abnormal = !reason.is_normal_class();
        if self.restart == Restart::Permanent || abnormal {
            self.reports.push(Report::ChildTerminated {
                id: key.to_string(),
                reason: reason.clone(),
            });
        }
        child.past.record_exit(reason, Some(now));
        let restart = match self.restart {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if !restart {
            // A dynamic child that is not restarted is gone, arguments and all.
            self.remove(key);
            return Some(idle(None));
        }
        // Out of the running set before the budget is checked, so that a refused restart leaves
        // nothing running that the shutdown would try to stop. The old process stays mapped.
        child.state = State::Restarting;
        Some(self.restart(key, now))
    }

    /// A queued retry came up, with the `generation` of its [`DynRetry`]: a failed start's retry
    /// that counts against the budget now (it is the next attempt), or a backed-off restart,
    /// counted when it was scheduled. `None`, with nothing changed, unless it is the last retry
    /// handed out for the child and has not come up before: the child may have been terminated,
    /// the supervisor may have stopped it, or the retry may be a duplicate or superseded.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use canopy::backoff::Backoff;
    /// use canopy::dynamic::core::{DynCommand, DynCore, DynOutcome};
    /// use canopy::{dynamic::DynamicSpec, ExitReason, Start};
    ///
    /// let spec = DynamicSpec::new(|_s, _a: ()| async { Ok(Start::Ignore) })
    ///     .backoff(Backoff::new(Duration::from_millis(100), Duration::from_secs(1)));
    /// let mut core: DynCore<u64, ()> = DynCore::new(&spec).unwrap();
    /// core.start_child(());
    /// core.started(Ok(Some(7)));
    /// let t0 = Instant::now();
    /// let Some(DynCommand::Done(DynOutcome::Idle { retry: Some(r) })) =
    ///     core.child_exited(&7, ExitReason::Killed, t0)
    /// else { unreachable!() };
    /// assert!(core.retry_due(r.key, r.generation + 1, t0 + r.after).is_none()); // not this one's
    /// assert!(matches!(core.retry_due(r.key, r.generation, t0 + r.after), Some(DynCommand::Start { .. })));
    /// ```
    pub fn retry_due(
        &mut self,
        key: u64,
        generation: u64,
        now: Instant,
    ) -> Option<DynCommand<P, A>> {
        debug_assert!(self.op.is_none(), "events are handled between operations");
        self.clock = Some(now);
        let child = self.children.get_mut(&key)?;
        if child.past.pending() != Some(generation) {
            return None;
        }
        child.set_retry(None);
        match child.state {
            State::Running => {
                debug_assert!(false, "a running child has no retry");
                None
            }
            State::Restarting => Some(self.restart(key, now)),
            State::Delayed(_) => Some(self.restart_now(key, now)),
        }
    }

    /// Stop every running child at once, then exit with `reason`. Children waiting for a
    /// restart have nothing to stop and are dropped. Any operation in progress is abandoned.
    pub fn shutdown(&mut self, reason: ExitReason) -> DynCommand<P, A> {
        self.exiting = true;
        self.op = None;
        let children: Vec<(u64, P, Shutdown)> = self
            .children
            .iter()
            .filter(|(_, c)| c.state == State::Running)
            .filter_map(|(&key, c)| c.pid.clone().map(|pid| (key, pid, self.shutdown)))
            .collect();
        // Restarting and delayed children are forgotten now. Usually there are none, and then the
        // maps stay as they are: the pid map's retain looks every pid up in the B-tree, in hash
        // order, a cache miss per child at 100,000 children (7 % of that shutdown under perf).
        if children.len() < self.children.len() {
            self.children.retain(|_, c| c.state == State::Running);
            self.pids.retain(|_, key| self.children.contains_key(key));
        }
        if children.is_empty() {
            return self.finish_shutdown(reason);
        }
        self.op = Some(Op::Shutdown { reason });
        DynCommand::TerminateAll { children }
    }

    // ---------------------------------------------------------------------------------------------
    // The child management API (docs/semantics.md, "Child management API")

    /// Starts a new child with `args`. Refused with [`ChildError::MaxChildren`] when the limit is
    /// reached (restarting and delayed children count).
    pub fn start_child(&mut self, args: A) -> DynCommand<P, A> {
        debug_assert!(self.op.is_none(), "one operation at a time");
        if self
            .max_children
            .is_some_and(|max| self.children.len() >= max)
        {
            return reply(Err(ChildError::MaxChildren));
        }
        let key = self.next_key;
        self.next_key += 1;
        let keep = (self.restart != Restart::Temporary).then(|| args.clone());
        self.op = Some(Op::ApiStart { key, keep });
        DynCommand::Start { key, args }
    }

    /// Stops a child by its process and forgets it (a dynamic child is not kept after
    /// `terminate_child`). A restarting child, named by its last process, just leaves its restart
    /// loop. A process that is not ours is `Ok` if it is dead (`alive` false; the shell checks) and
    /// [`ChildError::NotFound`] if it is alive, as in OTP.
    pub fn terminate_child(&mut self, pid: &P, alive: bool) -> DynCommand<P, A> {
        debug_assert!(self.op.is_none(), "one operation at a time");
        let Some(&key) = self.pids.get(pid) else {
            return reply(if alive {
                Err(ChildError::NotFound(pid.describe()))
            } else {
                Ok(None)
            });
        };
        let running = self
            .children
            .get(&key)
            .is_some_and(|c| c.state == State::Running);
        if !running {
            self.remove(key);
            return reply(Ok(None));
        }
        self.op = Some(Op::ApiTerminate { key });
        DynCommand::Terminate {
            key,
            pid: pid.clone(),
            shutdown: self.shutdown,
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Results fed back by the shell

    /// The result of the last [`DynCommand::Start`]: the new process, `None` for ignore, or the
    /// failure.
    pub fn started(&mut self, result: Result<Option<P>, StartFailure<P>>) -> DynCommand<P, A> {
        match self.op.take() {
            Some(Op::ApiStart { key, keep }) => self.api_started(key, keep, result),
            Some(Op::Restart { key, now }) => self.restarted(key, now, result),
            other => {
                debug_assert!(false, "started() without a Start in progress");
                self.op = other;
                idle(None)
            }
        }
    }

    /// The result of the last [`DynCommand::Terminate`]: how the child ended, or `None` when it had
    /// already exited by itself.
    pub fn terminated(&mut self, reason: Option<ExitReason>) -> DynCommand<P, A> {
        let Some(Op::ApiTerminate { key }) = self.op.take() else {
            debug_assert!(false, "terminated() without a Terminate in progress");
            return idle(None);
        };
        self.check_shutdown(key, reason.as_ref());
        self.remove(key);
        reply(Ok(None))
    }

    /// The results of the last [`DynCommand::TerminateAll`], one per child, in any order.
    pub fn terminated_all(&mut self, results: Vec<(u64, Option<ExitReason>)>) -> DynCommand<P, A> {
        let Some(Op::Shutdown { reason }) = self.op.take() else {
            debug_assert!(false, "terminated_all() without a TerminateAll in progress");
            return idle(None);
        };
        // No child is removed one by one: `finish_shutdown` clears the maps at once, which at
        // 100,000 children saves a B-tree removal and a hash removal per child.
        for (key, how) in results {
            self.check_shutdown(key, how.as_ref());
        }
        self.finish_shutdown(reason)
    }

    // ---------------------------------------------------------------------------------------------
    // Queries

    /// Every child, newest first, restarting and delayed ones included (shown as
    /// [`ChildStatus::Restarting`], a delayed one with its `next_attempt`). A child's id is its
    /// key as text.
    pub fn which_children(&self) -> Vec<ChildInfo<P>> {
        self.children
            .iter()
            .rev()
            .map(|(&key, child)| self.info(key, child))
            .collect()
    }

    /// How many children [`visit_children`](Self::visit_children) lends.
    ///
    /// ```
    /// use canopy::dynamic::core::DynCore;
    /// use canopy::{dynamic::DynamicSpec, Start};
    /// let core: DynCore<u64, ()> =
    ///     DynCore::new(&DynamicSpec::new(|_s, _a: ()| async { Ok(Start::Ignore) })).unwrap();
    /// assert_eq!(core.child_count(), 0);
    /// ```
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// Lends every child to `visit`, in start order (the reverse of
    /// [`which_children`](Self::which_children)), without copying them (see
    /// [`Core::visit_children`](crate::core::Core::visit_children)).
    ///
    /// ```
    /// use canopy::dynamic::core::DynCore;
    /// use canopy::{dynamic::DynamicSpec, Start};
    /// let mut core: DynCore<u64, ()> =
    ///     DynCore::new(&DynamicSpec::new(|_s, _a: ()| async { Ok(Start::Ignore) })).unwrap();
    /// core.start_child(());
    /// core.started(Ok(Some(10)));
    /// core.start_child(());
    /// core.started(Ok(Some(20)));
    /// let mut seen = Vec::new();
    /// core.visit_children(|child| seen.push((child.id.to_string(), child.status.pid().map(|p| **p))));
    /// assert_eq!(seen, [("1".to_string(), Some(10)), ("2".to_string(), Some(20))]);
    /// ```
    pub fn visit_children(&self, mut visit: impl FnMut(&ChildView<'_, P>)) {
        // Every key is written into one buffer rather than a string of its own.
        let mut id = String::new();
        for (&key, child) in &self.children {
            id.clear();
            // Writing to a String cannot fail.
            let _ = write!(id, "{key}");
            visit(&self.view(&id, key, child));
        }
    }

    /// One child by its running process, or a restarting child by its last one (OTP 28's
    /// `which_child/2` with a pid).
    pub fn which_child(&self, pid: &P) -> Option<ChildInfo<P>> {
        let key = self.pids.get(pid)?;
        self.children.get(key).map(|child| self.info(*key, child))
    }

    /// OTP's `count_children` for `simple_one_for_one`: one spec (the template), the running
    /// children as `active`, and every child, restarting ones included, under its kind.
    pub fn count_children(&self) -> ChildCounts {
        let all = self.children.len();
        let active = self
            .children
            .values()
            .filter(|c| c.state == State::Running)
            .count();
        let (supervisors, workers) = match self.kind {
            ChildKind::Supervisor => (all, 0),
            ChildKind::Worker => (0, all),
        };
        ChildCounts {
            specs: 1,
            active,
            supervisors,
            workers,
        }
    }

    /// True while any child runs.
    pub fn has_running_children(&self) -> bool {
        self.children.values().any(|c| c.state == State::Running)
    }

    /// Children waiting for a restart (restarting or delayed).
    pub fn pending_restarts(&self) -> usize {
        self.children
            .values()
            .filter(|c| c.state != State::Running)
            .count()
    }

    /// Whether the supervisor has begun to stop for good (asked to, or after too many restarts, or
    /// an automatic shutdown). It never turns back.
    ///
    /// ```
    /// use canopy::dynamic::core::DynCore;
    /// use canopy::{dynamic::DynamicSpec, ExitReason, Start};
    ///
    /// let spec = DynamicSpec::new(|_s, _a: ()| async { Ok(Start::Ignore) });
    /// let mut core: DynCore<u64, ()> = DynCore::new(&spec).unwrap();
    /// assert!(!core.is_exiting());
    /// core.shutdown(ExitReason::Shutdown);
    /// assert!(core.is_exiting());
    /// ```
    pub fn is_exiting(&self) -> bool {
        self.exiting
    }

    /// One child by its key.
    pub fn child_info(&self, key: u64) -> Option<ChildInfo<P>> {
        self.children.get(&key).map(|child| self.info(key, child))
    }

    /// The key of a running child's process, or of a restarting child's last one.
    pub fn key_of(&self, pid: &P) -> Option<u64> {
        self.pids.get(pid).copied()
    }

    /// The start arguments kept for a child (none under a temporary template).
    pub fn args_of(&self, key: u64) -> Option<&A> {
        self.children.get(&key).and_then(|c| c.args.as_ref())
    }

    /// The restart budget and how much of it is in use at `now` (see
    /// [`Core::budget`](crate::core::Core::budget)).
    pub fn budget(&self, now: Instant) -> crate::core::Budget {
        crate::core::Budget::of(None, &self.window, now)
    }

    /// The time now, for the start and exit times of the operation that follows (see
    /// [`Core::tick`](crate::core::Core::tick)).
    pub fn tick(&mut self, now: Instant) {
        self.clock = Some(now);
    }

    /// The whole tree is being killed at once: every running child's last exit becomes `killed`
    /// (see [`Core::record_killed`](crate::core::Core::record_killed)).
    pub fn record_killed(&mut self, now: Instant) {
        self.clock = Some(now);
        for child in self.children.values_mut() {
            if child.state == State::Running {
                child.past.record_exit(ExitReason::Killed, self.clock);
            }
        }
    }

    /// Takes the reports gathered since the last call, for logging off the decision path.
    pub fn take_reports(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.reports)
    }

    // ---------------------------------------------------------------------------------------------
    // Restarts (intensity, try-again, backoff)

    /// Counts a restart of `key` against the budget, then starts it again, after the backoff delay
    /// if there is one. Past the budget, or past the backoff's bound on restarts in a row, the
    /// supervisor gives up.
    fn restart(&mut self, key: u64, now: Instant) -> DynCommand<P, A> {
        if !self.window.allow(now) {
            return self.give_up(key);
        }
        let Some(child) = self.children.get_mut(&key) else {
            return idle(None);
        };
        if let Some(policy) = &self.backoff {
            let Some(delay) = child.past.next_delay(policy, now, self.jitter.next_unit()) else {
                // Once the delays outgrow the intensity period the window never fills, so the
                // bound is what stops this crash loop.
                return self.give_up(key);
            };
            if !delay.is_zero() {
                let retry = self.hand_out_retry(key, delay, State::Delayed(now.checked_add(delay)));
                return idle(retry);
            }
        }
        self.restart_now(key, now)
    }

    /// The dynamic `reached_max_restart_intensity`: `key` is dropped and every other child stopped.
    fn give_up(&mut self, key: u64) -> DynCommand<P, A> {
        self.reports.push(Report::ReachedMaxRestartIntensity {
            id: key.to_string(),
        });
        self.remove(key);
        self.shutdown(ExitReason::ShutdownWith(
            REACHED_MAX_RESTART_INTENSITY.to_string(),
        ))
    }

    /// Puts `key` in `state` with a new retry, which makes any earlier one stale.
    fn hand_out_retry(&mut self, key: u64, after: Duration, state: State) -> Option<DynRetry> {
        let child = self.children.get_mut(&key)?;
        self.generations = self.generations.wrapping_add(1);
        child.state = state;
        child.set_retry(Some(self.generations));
        Some(DynRetry {
            key,
            after,
            generation: self.generations,
        })
    }

    /// Starts `key` again with its arguments; the restart is already counted.
    fn restart_now(&mut self, key: u64, now: Instant) -> DynCommand<P, A> {
        let Some(child) = self.children.get_mut(&key) else {
            return idle(None);
        };
        child.set_retry(None);
        child.state = State::Restarting;
        let Some(args) = child.args.clone() else {
            // Only a temporary child has no arguments, and it is never restarted; should that
            // change, dropping the child loudly beats starting it with made-up arguments.
            debug_assert!(false, "restart of a child without arguments");
            self.reports.push(Report::StartError {
                id: key.to_string(),
                reason: "no start arguments kept for this child".into(),
            });
            self.remove(key);
            return idle(None);
        };
        self.op = Some(Op::Restart { key, now });
        DynCommand::Start { key, args }
    }

    fn restarted(
        &mut self,
        key: u64,
        began: Instant,
        result: Result<Option<P>, StartFailure<P>>,
    ) -> DynCommand<P, A> {
        let Some(child) = self.children.get_mut(&key) else {
            return idle(None);
        };
        match result {
            Ok(Some(pid)) => {
                if let Some(old) = child.pid.replace(pid.clone()) {
                    self.pids.remove(&old);
                }
                child.state = State::Running;
                child.restarts += 1;
                child.started_at = self.clock;
                // Stability is measured from a start that succeeded, never from an attempt: a
                // start that fails slowly must not pass for a stable run.
                child.past.get_mut().backoff_state.started(began);
                self.pids.insert(pid, key);
                idle(None)
            }
            Ok(None) => {
                // OTP's simple_one_for_one_restart_ignore: the instance is removed.
                self.reports.push(Report::RestartIgnored {
                    id: key.to_string(),
                });
                self.remove(key);
                idle(None)
            }
            Err(failure) => {
                self.reports.push(Report::StartError {
                    id: key.to_string(),
                    reason: failure.to_string(),
                });
                // Retry through the mailbox, so that anything already waiting (API calls,
                // exits, a shutdown) is handled first. The retry counts against the budget as the
                // next attempt, and under a backoff is then put off by the next delay.
                idle(self.hand_out_retry(key, Duration::ZERO, State::Restarting))
            }
        }
    }

    fn api_started(
        &mut self,
        key: u64,
        keep: Option<A>,
        result: Result<Option<P>, StartFailure<P>>,
    ) -> DynCommand<P, A> {
        // The caller gets every failure as it is and nothing is stored; OTP
        // logs no start_error for calls it answers.
        let pid = match result {
            Ok(Some(pid)) => pid,
            Ok(None) => return reply(Ok(None)),
            Err(StartFailure::AlreadyStarted(pid)) => {
                return reply(Err(ChildError::AlreadyStarted {
                    id: key.to_string(),
                    pid,
                }))
            }
            Err(StartFailure::Error(reason)) => {
                return reply(Err(ChildError::StartFailed {
                    id: key.to_string(),
                    reason,
                }))
            }
        };
        self.pids.insert(pid.clone(), key);
        self.children.insert(
            key,
            Child {
                state: State::Running,
                pid: Some(pid.clone()),
                args: keep,
                restarts: 0,
                started_at: self.clock,
                past: History::NONE,
            },
        );
        reply(Ok(Some(pid)))
    }

    // ---------------------------------------------------------------------------------------------
    // Bookkeeping

    fn remove(&mut self, key: u64) {
        if let Some(child) = self.children.remove(&key) {
            if let Some(pid) = child.pid {
                self.pids.remove(&pid);
            }
        }
    }

    /// Reports a `shutdown_error` when a child did not stop the way its policy expects.
    fn check_shutdown(&mut self, key: u64, how: Option<&ExitReason>) {
        if let Some(reason) = how {
            if !shutdown_went_as_planned(self.restart, self.shutdown, reason) {
                self.reports.push(Report::ShutdownError {
                    id: key.to_string(),
                    reason: reason.clone(),
                });
            }
        }
    }

    fn finish_shutdown(&mut self, reason: ExitReason) -> DynCommand<P, A> {
        self.children.clear();
        self.pids.clear();
        DynCommand::Done(DynOutcome::Exit(reason))
    }

    fn info(&self, key: u64, child: &Child<P, A>) -> ChildInfo<P> {
        self.view(&key.to_string(), key, child).to_info()
    }

    /// `child`, whose key is `key`, written `id`.
    fn view<'a>(&'a self, id: &'a str, key: u64, child: &'a Child<P, A>) -> ChildView<'a, P> {
        let (status, next_attempt) = match (&child.state, &child.pid) {
            (State::Running, Some(pid)) => (ChildStatus::Running(pid), None),
            (State::Delayed(at), _) => (ChildStatus::Restarting, *at),
            _ => (ChildStatus::Restarting, None),
        };
        ChildView {
            id,
            status,
            kind: self.kind,
            restart: self.restart,
            restarts: child.restarts,
            last_exit: child.past.last_exit(),
            next_attempt,
            shutdown: self.shutdown,
            significant: false,
            started_at: match child.state {
                State::Running => child.started_at,
                _ => None,
            },
            last_exit_at: child.past.last_exit_at(),
            starting: matches!(self.op, Some(Op::Restart { key: k, .. }) if k == key),
        }
    }
}

fn idle<P, A>(retry: Option<DynRetry>) -> DynCommand<P, A> {
    DynCommand::Done(DynOutcome::Idle { retry })
}

fn reply<P, A>(result: Result<Option<P>, ChildError<P>>) -> DynCommand<P, A> {
    DynCommand::Done(DynOutcome::Reply(result))
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// As `core::size_tests`: a dynamic child's entry, with arguments of three words.
    #[test]
    fn an_idle_child_entry_stays_small() {
        let entry = std::mem::size_of::<Child<ractor::ActorCell, [usize; 3]>>();
        println!(
            "dynamic Child<ActorCell, [usize; 3]> = {entry} B, Past = {} B",
            std::mem::size_of::<crate::core::Past<u64>>()
        );
        assert!(entry <= 88, "a dynamic child's entry is {entry} bytes");
    }
}
