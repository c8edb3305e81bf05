//! Calls and casts through a restart-transparent `ChildHandle` beside the raw `ActorRef`, in the
//! same run (`cargo bench -p canopy-benches --bench handle`).
//!
//! One multi-thread tokio runtime with 2 workers; the timed body runs in a task spawned onto it.
//! `cast`: a batch of 10,000 fire-and-forget messages, timed until a final call proves every one
//! was handled. `call`: sequential request/reply round trips.

use std::time::{Duration, Instant};

use canopy::handle::ChildHandle;
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use canopy::{ChildSpec, Supervisor, SupervisorSpec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::runtime::Runtime;

const BATCH: u64 = 10_000;

#[derive(Clone)]
struct Counter;

enum Msg {
    Add(u64),
    Get(RpcReplyPort<u64>),
}

impl Actor for Counter {
    type Msg = Msg;
    type State = u64;
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }
    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Add(k) => *n += k,
            Msg::Get(reply) => {
                let _ = reply.send(*n);
            }
        }
        Ok(())
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `body` in a task on the runtime and returns what it measured.
fn on<F, Fut>(rt: &Runtime, body: F) -> Duration
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Duration> + Send + 'static,
{
    rt.block_on(async move { tokio::spawn(body()).await.expect("bench task") })
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let (sup, handle, raw) = rt.block_on(async {
        let sup =
            Supervisor::start(SupervisorSpec::default().child(ChildSpec::actor("c", Counter, ())))
                .await
                .expect("supervisor");
        let handle: ChildHandle<Msg> = sup.handle("c").expect("handle");
        let raw = handle.current().expect("running");
        (sup, handle, raw)
    });

    let mut g = c.benchmark_group("cast");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(30);
    {
        let raw = raw.clone();
        g.bench_function("raw_actor_ref", |b| {
            b.iter_custom(|iters| {
                let raw = raw.clone();
                on(&rt, move || async move {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..BATCH {
                            raw.send_message(Msg::Add(1)).expect("send");
                        }
                        raw.call(Msg::Get, None).await.expect("call");
                    }
                    t0.elapsed()
                })
            })
        });
    }
    {
        let handle = handle.clone();
        g.bench_function("handle", |b| {
            b.iter_custom(|iters| {
                let handle = handle.clone();
                on(&rt, move || async move {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..BATCH {
                            handle.cast(Msg::Add(1)).await.expect("cast");
                        }
                        handle.call(Msg::Get, None).await.expect("call");
                    }
                    t0.elapsed()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("call");
    g.sample_size(30);
    {
        let raw = raw.clone();
        g.bench_function("raw_actor_ref", |b| {
            b.iter_custom(|iters| {
                let raw = raw.clone();
                on(&rt, move || async move {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        raw.call(Msg::Get, None).await.expect("call");
                    }
                    t0.elapsed()
                })
            })
        });
    }
    {
        let handle = handle.clone();
        g.bench_function("handle", |b| {
            b.iter_custom(|iters| {
                let handle = handle.clone();
                on(&rt, move || async move {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        handle.call(Msg::Get, None).await.expect("call");
                    }
                    t0.elapsed()
                })
            })
        });
    }
    g.finish();
    rt.block_on(sup.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
