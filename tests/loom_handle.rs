//! A loom model of the handle's wait/wake path (runtime/handle.rs, `running_before`): a caller
//! waits for a restarting child and must be woken when it is back, or told when its supervisor is
//! gone. loom runs every interleaving of the threads below (and the weak-memory outcomes of their
//! atomics that it models), so a lost wake-up shows up as a deadlock in some interleaving.
//!
//! What is modelled, operation by operation, with the orderings the real code and tokio 1.x use:
//!
//! - the supervisor's decision state: a mutex (canopy's `Mutex<Core>`), holding the child's
//!   incarnation and whether it is running or restarting; each incarnation's own status is an
//!   atomic (ractor's actor status), which flips to stopped when it dies, before the supervisor
//!   has processed the exit;
//! - the node's `watch` channel as tokio implements it: a version bumped with `Release` under the
//!   value's write lock and read with `Acquire`; `subscribe` reads the version and then counts the
//!   receiver (`Relaxed`); `Node::changed` sends only when `receiver_count()` (a `Relaxed` load)
//!   is above zero; dropping the sender sets a closed bit and wakes everyone; `changed()` registers
//!   for a notification before it compares versions (tokio's `Notify::notified` then
//!   `maybe_changed`), and `notify_waiters` wakes only those registered;
//! - the waiter: subscribe, then in a loop mark the version seen (`borrow_and_update`), look the
//!   child up under the supervisor's lock (running and its incarnation alive: done), then wait for
//!   a change; a closed channel ends the wait (the real handle then follows the path).
//!
//! Not modelled: the deadline (the real wait is bounded, so a lost wake-up there would be a
//! spurious `Timeout` rather than a hang; the model has no timeout so that it shows as a
//! deadlock), the path-following to the next supervisor, and tokio's scheduler (waits are threads).
//! loom treats `SeqCst` as `AcqRel` and does not produce every outcome the C++ memory model allows
//! for `Relaxed`; the model's correctness rests on the mutex, which loom models exactly.

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex, RwLock};
use loom::thread;

/// tokio's `Notify` as the watch channel uses it: `notify_waiters` wakes those registered before
/// it and leaves no permit behind.
#[derive(Default)]
struct Notify {
    generation: Mutex<u64>,
    cv: Condvar,
}

impl Notify {
    /// `notified()` with the future enabled: later `notify_waiters` calls wake it.
    fn register(&self) -> u64 {
        *self.generation.lock().unwrap()
    }

    fn wait(&self, registered: u64) {
        let mut g = self.generation.lock().unwrap();
        while *g == registered {
            g = self.cv.wait(g).unwrap();
        }
    }

    fn notify_waiters(&self) {
        *self.generation.lock().unwrap() += 1;
        self.cv.notify_all();
    }
}

const STEP: usize = 2;
const CLOSED: usize = 1;

/// tokio's `watch::Sender<u64>` and its shared state.
#[derive(Default)]
struct Watch {
    value: RwLock<()>,
    state: AtomicUsize,
    rx_count: AtomicUsize,
    notify_rx: Notify,
}

impl Watch {
    /// `Sender::subscribe`: the current version, then the receiver counted.
    fn subscribe(&self) -> usize {
        let version = self.state.load(Ordering::Acquire) & !CLOSED;
        self.rx_count.fetch_add(1, Ordering::Relaxed);
        version
    }

    /// canopy's `Node::changed`: a `send_modify` only if someone listens.
    fn changed(&self) {
        if self.rx_count.load(Ordering::Relaxed) > 0 {
            {
                let _w = self.value.write().unwrap();
                self.state.fetch_add(STEP, Ordering::Release);
            }
            self.notify_rx.notify_waiters();
        }
    }

    /// The sender dropped with the node.
    fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::Release);
        self.notify_rx.notify_waiters();
    }

    /// `Receiver::borrow_and_update`: the version under the value's read lock.
    fn borrow_and_update(&self, seen: &mut usize) {
        let _r = self.value.read().unwrap();
        *seen = self.state.load(Ordering::Acquire) & !CLOSED;
    }

    /// `Receiver::changed`: `Ok` on a new version, `Err` once closed.
    fn wait_changed(&self, seen: &mut usize) -> Result<(), ()> {
        loop {
            let registered = self.notify_rx.register();
            let state = self.state.load(Ordering::Acquire);
            if state & !CLOSED != *seen {
                *seen = state & !CLOSED;
                return Ok(());
            }
            if state & CLOSED != 0 {
                return Err(());
            }
            self.notify_rx.wait(registered);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Running(usize),
    Restarting,
    /// The supervisor gave up: the child will not come back from this supervisor.
    Gone,
}

struct Tree {
    core: Mutex<Status>,
    /// Each incarnation's own status: true while it takes messages.
    alive: [AtomicBool; 3],
    changes: Watch,
}

impl Tree {
    fn new() -> Arc<Tree> {
        Arc::new(Tree {
            core: Mutex::new(Status::Running(1)),
            alive: [
                AtomicBool::new(false),
                AtomicBool::new(true),
                AtomicBool::new(false),
            ],
            changes: Watch::default(),
        })
    }

    /// `status_of`: a running entry whose incarnation is dead means "wait": the supervisor has
    /// not processed its exit yet.
    fn lookup(&self) -> Option<Result<usize, ()>> {
        match *self.core.lock().unwrap() {
            Status::Running(n) if self.alive[n].load(Ordering::Acquire) => Some(Ok(n)),
            Status::Running(_) | Status::Restarting => None,
            Status::Gone => Some(Err(())),
        }
    }
}

/// The waiter, as `running_before` does it: subscribe, then look, then wait.
fn wait_for_child(tree: &Tree) -> Result<usize, ()> {
    let mut seen = tree.changes.subscribe();
    loop {
        tree.changes.borrow_and_update(&mut seen);
        if let Some(found) = tree.lookup() {
            return found;
        }
        // Closed: the real handle follows the path to whoever decides now.
        tree.changes.wait_changed(&mut seen)?;
    }
}

/// The order `running_before`'s comment warns against: look, then subscribe and wait.
fn look_then_subscribe(tree: &Tree) -> Result<usize, ()> {
    loop {
        if let Some(found) = tree.lookup() {
            return found;
        }
        let mut seen = tree.changes.subscribe();
        tree.changes.wait_changed(&mut seen)?;
    }
}

/// Incarnation 1 dies; its supervisor processes the exit, marks the child restarting, starts
/// incarnation 2, and signals the change once the operation is over.
fn crash_and_restart(tree: &Tree) {
    tree.alive[1].store(false, Ordering::Release);
    *tree.core.lock().unwrap() = Status::Restarting;
    tree.alive[2].store(true, Ordering::Release);
    *tree.core.lock().unwrap() = Status::Running(2);
    tree.changes.changed();
}

/// Incarnation 1 dies and its supervisor gives up: the entry says gone and the node is dropped.
fn crash_and_give_up(tree: &Tree) {
    tree.alive[1].store(false, Ordering::Release);
    *tree.core.lock().unwrap() = Status::Gone;
    tree.changes.changed();
    tree.changes.close();
}

#[test]
fn a_waiter_is_woken_when_the_child_is_back() {
    loom::model(|| {
        let tree = Tree::new();
        let waiter = {
            let tree = tree.clone();
            thread::spawn(move || wait_for_child(&tree))
        };
        crash_and_restart(&tree);
        let got = waiter.join().unwrap();
        // Incarnation 1 only if it was still alive when the waiter looked; never a dead one.
        assert!(matches!(got, Ok(1) | Ok(2)), "{got:?}");
    });
}

/// Three threads: explored with at most three preemptions (exhaustively it runs for many
/// minutes); the two-thread models above and below are exhaustive.
#[test]
fn two_waiters_are_both_woken() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let tree = Tree::new();
        // The crash has happened: both wait for the restart.
        tree.alive[1].store(false, Ordering::Release);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let tree = tree.clone();
                thread::spawn(move || wait_for_child(&tree))
            })
            .collect();
        *tree.core.lock().unwrap() = Status::Restarting;
        tree.alive[2].store(true, Ordering::Release);
        *tree.core.lock().unwrap() = Status::Running(2);
        tree.changes.changed();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Ok(2));
        }
    });
}

#[test]
fn a_waiter_learns_that_the_supervisor_gave_up() {
    loom::model(|| {
        let tree = Tree::new();
        let waiter = {
            let tree = tree.clone();
            thread::spawn(move || wait_for_child(&tree))
        };
        crash_and_give_up(&tree);
        let got = waiter.join().unwrap();
        assert!(matches!(got, Ok(1) | Err(())), "{got:?}");
    });
}

/// The model can fail: looking before subscribing loses the wake-up of a restart that lands
/// between the look and the subscription (the sender sees no receiver and sends nothing), and
/// loom finds that interleaving as a deadlock. loom aborts the process on it, so the model runs
/// in a child process of this test binary and the test reads its verdict.
#[test]
fn looking_before_subscribing_loses_the_wake_up() {
    const CHILD: &str = "CANOPY_LOOM_LOST_WAKE_UP";
    if std::env::var_os(CHILD).is_some() {
        loom::model(|| {
            let tree = Tree::new();
            tree.alive[1].store(false, Ordering::Release);
            let waiter = {
                let tree = tree.clone();
                thread::spawn(move || look_then_subscribe(&tree))
            };
            *tree.core.lock().unwrap() = Status::Restarting;
            tree.alive[2].store(true, Ordering::Release);
            *tree.core.lock().unwrap() = Status::Running(2);
            tree.changes.changed();
            let _ = waiter.join();
        });
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "looking_before_subscribing_loses_the_wake_up",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "loom found no lost wake-up");
    assert!(stderr.contains("deadlock"), "{stderr}");
}
