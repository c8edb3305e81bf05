//! Issue 13: an idle supervised child costs at most 256 bytes more than the same child under a
//! hand-written ractor parent. Counted here as live heap bytes (what the program asked the
//! allocator for and has not given back), which is repeatable, unlike the resident set the
//! comparison harness (`benches/compare`, `memory_static` / `memory_dynamic`) measures; the
//! allocator's own overhead per block is on top of both sides' figures.
//!
//! Each side starts the same number of the same idle actor and keeps what it needs to restart
//! them: the raw parent their arguments and cells, canopy its specs or arguments and its entries.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use canopy::ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use canopy::{ChildSpec, DynamicSpec, DynamicSupervisor, Restart, Supervisor, SupervisorSpec};

/// Counts the bytes the program holds on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const CHILDREN: usize = 5_000;
const BUDGET: f64 = 256.0;

/// The idle child of every side, with arguments of three words, as the harness's worker has.
#[derive(Clone, Copy)]
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = [usize; 3];

    async fn pre_start(&self, _: ActorRef<()>, _: [usize; 3]) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// The hand-written parent: spawns `n` children in `pre_start`, and one more on each request
/// (replying once it is up), and keeps their arguments (to restart them) and cells (to stop them).
struct RawParent;

impl Actor for RawParent {
    type Msg = RpcReplyPort<()>;
    type State = (Vec<[usize; 3]>, Vec<ActorCell>);
    type Arguments = usize;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        n: usize,
    ) -> Result<Self::State, ActorProcessingErr> {
        let args: Vec<[usize; 3]> = (0..n).map(|i| [i, 0, 0]).collect();
        let mut cells = Vec::with_capacity(n);
        for a in &args {
            let (child, _) = Actor::spawn_linked(None, Idle, *a, myself.get_cell()).await?;
            cells.push(child.get_cell());
        }
        Ok((args, cells))
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        reply: RpcReplyPort<()>,
        (args, cells): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let a = [args.len(), 0, 0];
        let (child, _) = Actor::spawn_linked(None, Idle, a, myself.get_cell()).await?;
        args.push(a);
        cells.push(child.get_cell());
        let _ = reply.send(());
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        (_, cells): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for child in cells.iter().rev() {
            let _ = child.stop_and_wait(None, None).await;
        }
        Ok(())
    }
}

/// Lets every task that is finishing (stopped actors whose tasks have not been dropped yet) run
/// to its end, so that what they free is not counted against the next measurement: on this
/// current-thread runtime, the heap is settled once it has not moved while every other task had
/// many turns.
async fn settle() {
    let mut still = 0;
    let mut last = live();
    while still < 1_000 {
        tokio::task::yield_now().await;
        let now = live();
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
}

fn per_child(before: isize, after: isize) -> f64 {
    (after - before) as f64 / CHILDREN as f64
}

/// Bytes per child of a raw parent with `CHILDREN` children, spawned in its `pre_start` or, if
/// `on_request`, one per request.
async fn raw(on_request: bool) -> f64 {
    settle().await;
    let before = live();
    let at_start = if on_request { 0 } else { CHILDREN };
    let (parent, handle) = Actor::spawn(None, RawParent, at_start).await.unwrap();
    if on_request {
        for _ in 0..CHILDREN {
            let reply = parent.call(|r| r, None).await.unwrap();
            assert!(reply.is_success(), "the raw parent did not spawn");
        }
    }
    let per = per_child(before, live());
    parent.stop(None);
    handle.await.unwrap();
    per
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_supervised_child_costs_at_most_256_bytes_more_than_under_a_raw_parent() {
    // Warm up whatever ractor and tokio allocate once per process.
    raw(false).await;
    raw(true).await;
    let raw_static = raw(false).await;
    let raw_dynamic = raw(true).await;

    settle().await;
    let before = live();
    let spec = SupervisorSpec::default()
        .children((0..CHILDREN).map(|i| ChildSpec::actor(format!("w{i}"), Idle, [i, 0, 0])));
    let sup = Supervisor::start(spec).await.unwrap();
    let canopy_static = per_child(before, live());
    sup.shutdown().await;

    settle().await;
    let before = live();
    let dynamic = DynamicSupervisor::start(DynamicSpec::actor(Idle).restart(Restart::Transient))
        .await
        .unwrap();
    for i in 0..CHILDREN {
        dynamic.start_child([i, 0, 0]).await.unwrap();
    }
    let canopy_dynamic = per_child(before, live());
    dynamic.shutdown().await;

    println!(
        "live heap per child: static: raw {raw_static:.0} B, canopy {canopy_static:.0} B; \
         on request: raw {raw_dynamic:.0} B, canopy {canopy_dynamic:.0} B"
    );
    assert!(
        canopy_static - raw_static <= BUDGET,
        "static: {canopy_static:.0} B per child, raw {raw_static:.0} B"
    );
    assert!(
        canopy_dynamic - raw_dynamic <= BUDGET,
        "dynamic: {canopy_dynamic:.0} B per child, raw {raw_dynamic:.0} B"
    );
}
