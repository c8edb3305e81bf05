//! Model-checked cores (issue 12, deliverable 1).
//!
//! A small reference model of the supervision rules of docs/semantics.md, written again from the
//! documentation as plain data and straight-line code (`model/statics.rs`, `model/dynamic.rs`,
//! the tables in `model/common.rs`), is run in lockstep with the pure decision cores
//! (`canopy::core::Core` and `canopy::dynamic::core::DynCore`, through their public API only) over
//! random sequences of events: child exits with every reason, start results (up, ignore, failure,
//! clash), stop results (as asked, another reason, already gone), every API call, clock advances,
//! retries coming up in time order (stale ones included, redelivered ones, and ones under the wrong
//! child), and shutdown requests, for every strategy, restart type, auto-shutdown mode, shutdown
//! policy and backoff setting.
//!
//! After every event both sides must make the same decisions: the same starts and stops in the same
//! order, the same outcome (idle, a retry and its delay, an exit and its reason, an API reply), the
//! same reports (`child_terminated`, `start_error`, `shutdown_error`,
//! `reached_max_restart_intensity`, auto-shutdown, restart ignored), and the same children as
//! `which_children`, `which_child` and `count_children` show them. Independently of the model,
//! the harness checks the invariants: stops in reverse start order, no child started twice in one
//! step and no process ended twice (an exit restarts a child at most once), every restart the
//! documentation counts fitting the intensity window unless the supervisor escalates (and no
//! escalation while the window has room and no backoff bound applies), `count_children` consistent
//! with `which_children`, and every process started ending exactly once by the end of the case.
//!
//! Each property runs `CANOPY_MODEL_CASES` cases (default [`DEFAULT_CASES`], so 12,000 over the
//! four properties in a normal `cargo test`):
//!
//! ```text
//! CANOPY_MODEL_CASES=1000000 CANOPY_MODEL_EVENTS=150 cargo test --release --test model
//! ```
//!
//! (`CANOPY_MODEL_EVENTS` bounds the events per case, 60 by default.) What the cases exercise,
//! outcome by outcome: `cargo test --test model coverage -- --ignored --nocapture`.
//!
//! Every counterexample found becomes a named test in `regressions` at the end of this file.

#[path = "model/common.rs"]
mod common;
#[path = "model/dynamic.rs"]
mod dynamic;
#[path = "model/statics.rs"]
mod statics;

use std::time::Duration;

use canopy::{AutoShutdown, ChildKind, Restart, Shutdown, Strategy as SupStrategy};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use common::{BackoffModel, StartAns, StopAns, R, REASONS};

/// Cases per property in a normal run.
const DEFAULT_CASES: u32 = 3000;

fn cases() -> u32 {
    std::env::var("CANOPY_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Events per case at most: `CANOPY_MODEL_EVENTS`, default 60 (longer runs reach deeper states).
fn max_events() -> usize {
    std::env::var("CANOPY_MODEL_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
        .max(2)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Counterexamples become named tests below, not files next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// -------------------------------------------------------------------------------------------------
// Generators.
//
// A case is generated as flat integers and decoded here: proptest's nested strategy trees cost more
// than the checks themselves in a debug build, while a vector of integers is cheap to generate and
// still shrinks well (an integer shrinks towards 0, which decodes to the first, simplest choice of
// every field). Times come from small sets so that boundaries are hit exactly: a restart exactly
// one period after another, a run exactly `reset_after` long, a retry due exactly when an exit
// happens.

/// Mixed-radix decoding of one random integer into fields.
struct Bits(u64);

impl Bits {
    fn below(&mut self, n: u64) -> u64 {
        let v = self.0 % n;
        self.0 /= n;
        v
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    fn of<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())].clone()
    }

    /// One of `table`, with the weights given.
    fn weighted<T: Clone>(&mut self, table: &[(u64, T)]) -> T {
        let total: u64 = table.iter().map(|(w, _)| w).sum();
        let mut x = self.below(total);
        for (w, t) in table {
            if x < *w {
                return t.clone();
            }
            x -= w;
        }
        unreachable!()
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

fn reason(b: &mut Bits) -> R {
    b.of(&REASONS)
}

fn restart_type(b: &mut Bits) -> Restart {
    b.of(&[Restart::Permanent, Restart::Transient, Restart::Temporary])
}

fn kind(b: &mut Bits) -> ChildKind {
    b.weighted(&[(3, ChildKind::Worker), (1, ChildKind::Supervisor)])
}

fn policy(b: &mut Bits) -> Option<Shutdown> {
    b.weighted(&[
        (3, None),
        (2, Some(Shutdown::BrutalKill)),
        (1, Some(Shutdown::Timeout(Duration::from_secs(1)))),
        (1, Some(Shutdown::Infinity)),
        (1, Some(Shutdown::Drain(Duration::from_secs(1)))),
    ])
}

fn dt(b: &mut Bits) -> u64 {
    b.of(&[0, 0, 10, 50, 100, 250, 500, 1000, 1500])
}

fn period(b: &mut Bits) -> u64 {
    b.of(&[100, 250, 500, 1000, 2000])
}

fn intensity(b: &mut Bits) -> u32 {
    if b.chance(12) {
        0
    } else {
        1 + b.below(6) as u32
    }
}

fn backoff(b: &mut Bits) -> BackoffModel {
    let min_ms = b.of(&[0, 10, 50, 100]);
    BackoffModel {
        min_ms,
        max_ms: min_ms + b.of(&[0, 40, 400]),
        jitter: b.weighted(&[(3, 0.0), (1, 0.2)]),
        reset_ms: b.of(&[50, 100, 500, 1000]),
        max_retries: 1 + b.below(4) as u32,
    }
}

/// Answers to starts: mostly up, now and then ignored, failed or clashing.
fn start_answer(x: u8) -> StartAns {
    Bits(u64::from(x)).weighted(&[
        (14, StartAns::Ok),
        (1, StartAns::Ignore),
        (3, StartAns::Fail),
        (1, StartAns::Clash),
    ])
}

/// Answers to the start-up's starts: a start-up seldom fails, or few cases would get past it.
fn init_answer(x: u8) -> StartAns {
    Bits(u64::from(x)).weighted(&[
        (120, StartAns::Ok),
        (6, StartAns::Ignore),
        (1, StartAns::Fail),
        (1, StartAns::Clash),
    ])
}

fn stop_answer(x: u8) -> StopAns {
    let mut b = Bits(u64::from(x));
    match b.weighted(&[(10, 0), (2, 1), (2, 2)]) {
        0 => StopAns::AsAsked,
        1 => StopAns::Ended(reason(&mut b)),
        _ => StopAns::Gone,
    }
}

/// The raw material of a case.
type Raw = (u64, Vec<u64>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u64>);

fn raw() -> impl Strategy<Value = Raw> {
    (
        any::<u64>(),
        prop::collection::vec(any::<u64>(), 0..=statics::POOL),
        prop::collection::vec(any::<u8>(), statics::POOL),
        prop::collection::vec(any::<u8>(), 1..40),
        prop::collection::vec(any::<u8>(), 1..20),
        prop::collection::vec(any::<u64>(), 1..max_events()),
    )
}

// Static ------------------------------------------------------------------------------------------

fn desc(b: &mut Bits, id: String, significant_one_in: u64) -> statics::Desc {
    statics::Desc {
        id,
        restart: restart_type(b),
        kind: kind(b),
        shutdown: policy(b),
        significant: b.chance(significant_one_in),
        backoff: if b.chance(4) { Some(backoff(b)) } else { None },
    }
}

fn static_event(x: u64) -> statics::Ev {
    use statics::Ev;
    let mut b = Bits(x);
    // A shutdown ends the case, so it is rare (the harness shuts down at the end anyway).
    match b.weighted(&[
        (20, 0),
        (2, 1),
        (2, 2),
        (4, 3),
        (14, 4),
        (2, 5),
        (2, 6),
        (4, 7),
        (4, 8),
        (4, 9),
        (2, 10),
        (1, 11),
    ]) {
        0 => Ev::Exit {
            pick: b.index(8),
            reason: reason(&mut b),
            dt_ms: dt(&mut b),
        },
        1 => Ev::LateExit { pick: b.index(64) },
        2 => Ev::Stranger,
        3 => Ev::Advance(dt(&mut b)),
        4 => Ev::Fire,
        5 => Ev::Redeliver { pick: b.index(64) },
        6 => Ev::Bogus { pick: b.index(64) },
        7 => {
            // Now and then an invalid id, for the spec errors.
            let which = b.weighted(&[(30, 0), (1, 1), (1, 2)]);
            let n = b.index(statics::POOL);
            let id = match which {
                0 => statics::pool(n),
                1 => String::new(),
                _ => "a/b".to_string(),
            };
            Ev::StartChild(desc(&mut b, id, 5))
        }
        8 => Ev::Terminate(b.index(statics::POOL)),
        9 => Ev::Restart(b.index(statics::POOL)),
        10 => Ev::Delete(b.index(statics::POOL)),
        _ => Ev::Shutdown(reason(&mut b)),
    }
}

fn static_case(strategy: SupStrategy, raw: Raw) -> statics::Case {
    let (top, children, init, starts, stops, events) = raw;
    let mut b = Bits(top);
    let auto = b.of(&[
        AutoShutdown::Never,
        AutoShutdown::AnySignificant,
        AutoShutdown::AllSignificant,
    ]);
    let setup = statics::Setup {
        strategy,
        intensity: intensity(&mut b),
        period_ms: period(&mut b),
        auto,
        backoff: if b.chance(3) {
            Some(backoff(&mut b))
        } else {
            None
        },
        children: children
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let mut c = desc(&mut Bits(x), statics::pool(i), 3);
                // The start spec is valid: only transient and temporary children may be
                // significant, and only with an auto-shutdown.
                c.significant &= c.restart != Restart::Permanent && auto != AutoShutdown::Never;
                c
            })
            .collect(),
        seed: top,
    };
    statics::Case {
        setup,
        init: init.iter().map(|&x| init_answer(x)).collect(),
        starts: starts.iter().map(|&x| start_answer(x)).collect(),
        stops: stops.iter().map(|&x| stop_answer(x)).collect(),
        events: events.iter().map(|&x| static_event(x)).collect(),
    }
}

// Dynamic -----------------------------------------------------------------------------------------

fn dynamic_event(x: u64) -> dynamic::Ev {
    use dynamic::Ev;
    let mut b = Bits(x);
    match b.weighted(&[
        (20, 0),
        (2, 1),
        (2, 2),
        (4, 3),
        (14, 4),
        (2, 5),
        (2, 6),
        (10, 7),
        (4, 8),
        (1, 9),
    ]) {
        0 => Ev::Exit {
            pick: b.index(8),
            reason: reason(&mut b),
            dt_ms: dt(&mut b),
        },
        1 => Ev::LateExit { pick: b.index(64) },
        2 => Ev::Stranger,
        3 => Ev::Advance(dt(&mut b)),
        4 => Ev::Fire,
        5 => Ev::Redeliver { pick: b.index(64) },
        6 => Ev::Bogus { pick: b.index(64) },
        7 => Ev::StartChild(b.below(100) as u32),
        8 => Ev::Terminate { pick: b.index(64) },
        _ => Ev::Shutdown(reason(&mut b)),
    }
}

fn dynamic_case(raw: Raw) -> dynamic::Case {
    let (top, _, _, starts, stops, events) = raw;
    let mut b = Bits(top);
    let setup = dynamic::Setup {
        restart: restart_type(&mut b),
        kind: kind(&mut b),
        shutdown: policy(&mut b),
        intensity: intensity(&mut b),
        period_ms: period(&mut b),
        max_children: if b.chance(2) {
            Some(1 + b.index(5))
        } else {
            None
        },
        backoff: if b.below(5) < 2 {
            Some(backoff(&mut b))
        } else {
            None
        },
        seed: top,
    };
    dynamic::Case {
        setup,
        starts: starts.iter().map(|&x| start_answer(x)).collect(),
        stops: stops.iter().map(|&x| stop_answer(x)).collect(),
        events: events.iter().map(|&x| dynamic_event(x)).collect(),
    }
}

// -------------------------------------------------------------------------------------------------
// The properties

fn agree(result: Result<(), String>) -> Result<(), TestCaseError> {
    result.map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn one_for_one_core_agrees_with_the_model(
        case in raw().prop_map(|r| static_case(SupStrategy::OneForOne, r))
    ) {
        agree(statics::run(&case))?;
    }

    #[test]
    fn one_for_all_core_agrees_with_the_model(
        case in raw().prop_map(|r| static_case(SupStrategy::OneForAll, r))
    ) {
        agree(statics::run(&case))?;
    }

    #[test]
    fn rest_for_one_core_agrees_with_the_model(
        case in raw().prop_map(|r| static_case(SupStrategy::RestForOne, r))
    ) {
        agree(statics::run(&case))?;
    }

    #[test]
    fn dynamic_core_agrees_with_the_model(case in raw().prop_map(dynamic_case)) {
        agree(dynamic::run(&case))?;
    }
}

// -------------------------------------------------------------------------------------------------
// Coverage: what the generated cases exercise.

/// Prints, per property, how often each kind of event led to each outcome, each report and how far
/// the cases got: `cargo test --test model coverage -- --ignored --nocapture`.
#[test]
#[ignore = "prints coverage counters; run by hand"]
fn coverage() {
    common::stats::enable();
    let n = cases();
    let runner = || {
        TestRunner::new_with_rng(
            Config {
                cases: n,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        )
    };
    let print = |what: String| {
        println!("== {what}, {n} cases");
        for (what, count) in common::stats::take() {
            println!("{count:>9}  {what}");
        }
    };
    for strategy in [
        SupStrategy::OneForOne,
        SupStrategy::OneForAll,
        SupStrategy::RestForOne,
    ] {
        runner()
            .run(&raw(), |r| agree(statics::run(&static_case(strategy, r))))
            .unwrap();
        print(format!("{strategy:?}"));
    }
    runner()
        .run(&raw(), |r| agree(dynamic::run(&dynamic_case(r))))
        .unwrap();
    print("dynamic".into());
}

// -------------------------------------------------------------------------------------------------
// Mutants: the check must notice a rule broken on purpose in the model. If a mutant goes
// unnoticed, the generators no longer reach that rule, and a bug there in the core would pass too.

/// The first of `limit` deterministic cases on which `check` fails, with its index.
fn first_failure<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    limit: u32,
    check: impl Fn(&T) -> Result<(), String>,
) -> Option<(u32, String)> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    (0..limit).find_map(|i| {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        check(&case).err().map(|e| (i, e))
    })
}

#[test]
fn every_static_mutant_is_caught() {
    use statics::Mutant::*;
    for (mutant, strategy) in [
        (TransientAlwaysRestarts, SupStrategy::OneForOne),
        (StopInStartOrder, SupStrategy::OneForAll),
        (StopInStartOrder, SupStrategy::RestForOne),
        (InclusiveWindow, SupStrategy::OneForOne),
        (TryAgainUncounted, SupStrategy::OneForOne),
        (RoundSkipsStopped, SupStrategy::OneForAll),
        (StaleRetryActs, SupStrategy::OneForAll),
    ] {
        let found = first_failure(raw(), 2000, |r| {
            statics::run_with(&static_case(strategy, r.clone()), Some(mutant))
        });
        let Some((i, error)) = found else {
            panic!("{mutant:?} under {strategy:?} went unnoticed in 2000 cases");
        };
        let first = error.lines().next().unwrap_or_default();
        println!("{mutant:?} under {strategy:?}: caught by case {i}: {first}");
        if std::env::var_os("CANOPY_MODEL_SHOW").is_some() {
            println!("{error}");
        }
    }
}

#[test]
fn every_dynamic_mutant_is_caught() {
    use dynamic::Mutant::*;
    for mutant in [
        BackedOffCountedTwice,
        MaxCountsRunningOnly,
        IgnoreKeepsChild,
        NoBackoffReset,
    ] {
        let found = first_failure(raw(), 2000, |r| {
            dynamic::run_with(&dynamic_case(r.clone()), Some(mutant))
        });
        let Some((i, error)) = found else {
            panic!("{mutant:?} went unnoticed in 2000 cases");
        };
        let first = error.lines().next().unwrap_or_default();
        println!("{mutant:?}: caught by case {i}: {first}");
        if std::env::var_os("CANOPY_MODEL_SHOW").is_some() {
            println!("{error}");
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Scenarios: the rules the random cases reach only now and then, pinned as fixed sequences through
// the same lockstep harness (so each checks the core against the model, and against the outcome
// written here).

mod scenarios {
    use canopy::{Restart, Strategy as SupStrategy};

    use super::common::{BackoffModel, StartAns, StopAns, R};
    use super::dynamic;
    use super::statics::{self, Desc, Ev};

    fn setup(
        strategy: SupStrategy,
        intensity: u32,
        period_ms: u64,
        children: Vec<Desc>,
    ) -> statics::Setup {
        statics::Setup {
            strategy,
            intensity,
            period_ms,
            auto: canopy::AutoShutdown::Never,
            backoff: None,
            children,
            seed: 1,
        }
    }

    /// No jitter, so that delays are exact.
    fn backoff(min_ms: u64, max_ms: u64, reset_ms: u64, max_retries: u32) -> BackoffModel {
        BackoffModel {
            min_ms,
            max_ms,
            jitter: 0.0,
            reset_ms,
            max_retries,
        }
    }

    fn exit(pick: usize, reason: R, dt_ms: u64) -> Ev {
        Ev::Exit {
            pick,
            reason,
            dt_ms,
        }
    }

    #[track_caller]
    fn expect(trace: Result<String, String>, lines: &[&str]) {
        let trace = trace.unwrap_or_else(|e| panic!("{e}"));
        for line in lines {
            assert!(trace.contains(line), "expected `{line}` in:\n{trace}");
        }
    }

    /// "Strategies" and "Failed restarts": a child waiting out its backoff is started by a
    /// sibling's one_for_all round, so the timer that comes up afterwards is stale and must not
    /// restart it a second time for the same exit.
    #[test]
    fn a_backoff_timer_that_outlived_a_siblings_round_is_stale() {
        let case = statics::Case {
            setup: setup(
                SupStrategy::OneForAll,
                10,
                1000,
                vec![
                    Desc::new("c0", Restart::Permanent).with_backoff(backoff(100, 100, 1000, 5)),
                    Desc::new("c1", Restart::Permanent),
                ],
            ),
            init: vec![],
            starts: vec![],
            stops: vec![],
            events: vec![exit(0, R::Error, 0), exit(0, R::Error, 10), Ev::Fire],
        };
        expect(
            statics::trace(&case),
            &[
                "`c0`#100 exits Error(\"boom\") -> [] Idle(Some((\"c0\", 100ms)))",
                "`c1`#101 exits Error(\"boom\") -> [S:c0 S:c1] Idle(None)",
                "retry of `c0` (gen 1, after 100ms) comes up -> [] Stale",
            ],
        );
    }

    /// "Failed restarts": under rest_for_one the try-again starts over from the child that failed
    /// to start, not from the one that crashed.
    #[test]
    fn rest_for_one_try_again_starts_from_the_child_that_failed_to_start() {
        let case = statics::Case {
            setup: setup(
                SupStrategy::RestForOne,
                10,
                1000,
                vec![
                    Desc::new("c0", Restart::Permanent),
                    Desc::new("c1", Restart::Permanent),
                    Desc::new("c2", Restart::Permanent),
                ],
            ),
            init: vec![StartAns::Ok; 3],
            starts: vec![StartAns::Ok, StartAns::Fail, StartAns::Ok, StartAns::Ok],
            stops: vec![],
            events: vec![exit(0, R::Killed, 0), Ev::Fire],
        };
        expect(
            statics::trace(&case),
            &[
                "-> [T:c2#102/timeout T:c1#101/timeout S:c0 S:c1] Idle(Some((\"c1\", 0ns)))",
                "comes up -> [S:c1 S:c2] Idle(None)",
            ],
        );
    }

    /// "Restart intensity": a restart exactly `period` after another no longer sees it; the next
    /// one inside the window is refused and the supervisor gives up.
    #[test]
    fn a_restart_exactly_one_period_later_is_allowed() {
        let case = statics::Case {
            setup: setup(
                SupStrategy::OneForOne,
                1,
                1000,
                vec![Desc::new("c0", Restart::Permanent)],
            ),
            init: vec![],
            starts: vec![],
            stops: vec![],
            events: vec![
                exit(0, R::Error, 1000),
                exit(0, R::Error, 1000),
                exit(0, R::Error, 500),
            ],
        };
        expect(
            statics::trace(&case),
            &[
                "@1000ms `c0`#100 exits Error(\"boom\") -> [S:c0] Idle(None)",
                "@2000ms `c0`#101 exits Error(\"boom\") -> [S:c0] Idle(None)",
                "@2500ms `c0`#102 exits Error(\"boom\") -> [] Exit(ShutdownWith(\"reached_max_restart_intensity\"))",
            ],
        );
    }

    /// "Backoff": a run exactly `reset_after` long, measured from the round that started it,
    /// starts the series over; a shorter one does not.
    #[test]
    fn a_run_exactly_reset_after_long_starts_the_backoff_over() {
        let case = statics::Case {
            setup: setup(
                SupStrategy::OneForOne,
                10,
                100,
                vec![Desc::new("c0", Restart::Permanent).with_backoff(backoff(100, 400, 500, 3))],
            ),
            init: vec![],
            starts: vec![],
            stops: vec![],
            events: vec![
                exit(0, R::Error, 0),
                Ev::Fire,
                exit(0, R::Error, 499),
                Ev::Fire,
                exit(0, R::Error, 500),
            ],
        };
        expect(
            statics::trace(&case),
            &[
                "@0ms `c0`#100 exits Error(\"boom\") -> [] Idle(Some((\"c0\", 100ms)))",
                "@599ms `c0`#101 exits Error(\"boom\") -> [] Idle(Some((\"c0\", 200ms)))",
                "@1299ms `c0`#102 exits Error(\"boom\") -> [] Idle(Some((\"c0\", 100ms)))",
            ],
        );
    }

    /// "Strategies": a bystander that had already exited by itself when the round came to stop it
    /// belongs to the round: its own reason is recorded (a shutdown_error), and its exit, arriving
    /// late, restarts nothing.
    #[test]
    fn a_bystander_that_had_already_exited_is_not_restarted_twice() {
        let case = statics::Case {
            setup: setup(
                SupStrategy::OneForAll,
                10,
                1000,
                vec![
                    Desc::new("c0", Restart::Permanent),
                    Desc::new("c1", Restart::Permanent),
                ],
            ),
            init: vec![],
            starts: vec![],
            stops: vec![StopAns::Ended(R::Error)],
            events: vec![exit(0, R::Killed, 0), Ev::LateExit { pick: 1 }],
        };
        expect(
            statics::trace(&case),
            &[
                "-> [T:c1#101/timeout S:c0 S:c1] Idle(None) [ChildTerminated { id: \"c0\", reason: Killed } ShutdownError { id: \"c1\", reason: Error(\"boom\") }]",
                "late exit of #101 -> stale",
            ],
        );
    }

    fn dyn_setup(max_children: Option<usize>, backoff: Option<BackoffModel>) -> dynamic::Setup {
        dynamic::Setup {
            restart: Restart::Permanent,
            kind: canopy::ChildKind::Worker,
            shutdown: None,
            intensity: 10,
            period_ms: 1000,
            max_children,
            backoff,
            seed: 1,
        }
    }

    /// "Child management API": a child waiting for its restart is named by its last process;
    /// terminating it forgets it, and its retry is then stale.
    #[test]
    fn terminating_a_waiting_dynamic_child_by_its_last_process_ends_its_restarts() {
        use dynamic::Ev;
        let case = dynamic::Case {
            setup: dyn_setup(None, Some(backoff(100, 100, 1000, 5))),
            starts: vec![],
            stops: vec![],
            events: vec![
                Ev::StartChild(7),
                Ev::Exit {
                    pick: 0,
                    reason: R::Error,
                    dt_ms: 0,
                },
                Ev::Terminate { pick: 0 },
                Ev::Fire,
            ],
        };
        expect(
            dynamic::trace(&case),
            &[
                "start_child(7) -> [S:1(7)] Reply(Ok(Some(100)))",
                "-> [] Idle(Some((\"1\", 100ms)))",
                "terminate_child(#100, alive false) -> [] Reply(Ok(None))",
                "comes up -> [] Stale",
            ],
        );
    }

    /// "max_children": a child waiting out its backoff still counts; its restart keeps its key
    /// and its arguments.
    #[test]
    fn a_delayed_dynamic_child_counts_towards_max_children() {
        use dynamic::Ev;
        let case = dynamic::Case {
            setup: dyn_setup(Some(1), Some(backoff(50, 50, 1000, 5))),
            starts: vec![],
            stops: vec![],
            events: vec![
                Ev::StartChild(7),
                Ev::Exit {
                    pick: 0,
                    reason: R::Killed,
                    dt_ms: 0,
                },
                Ev::StartChild(8),
                Ev::Fire,
            ],
        };
        expect(
            dynamic::trace(&case),
            &[
                "start_child(8) -> [] Reply(Err(MaxChildren))",
                "comes up -> [S:1(7)] Idle(None)",
            ],
        );
    }
}

// -------------------------------------------------------------------------------------------------
// Regressions: every counterexample the properties find, as a named test. Paste the shrunk case
// proptest prints (`statics::Case { .. }` or `dynamic::Case { .. }`) into a test that calls
// `statics::run` or `dynamic::run`; while the core is wrong, mark it
// `#[ignore = "core bug: <one line>"]` so that it stays visible.
//
// None so far: the cores agreed with the model on every case run while this file was written
// (4,000,000 cases of up to 150 events in release, besides the normal runs).
