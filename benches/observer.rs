//! What inspecting a big tree costs (`cargo bench -p canopy-benches --bench observer`, about a
//! minute on a 2-core machine).
//!
//! | benchmark | what is timed |
//! |---|---|
//! | `snapshot_10k/tree` | `canopy::snapshot::tree()` of a 10,001-node tree: a root, 100 static supervisors, 99 workers under each |
//! | `snapshot_10k/subtree` | `canopy::snapshot::at` of one of those supervisors (100 nodes) |
//! | `snapshot_10k/tree_json` | the whole snapshot and its JSON (`serde_json::to_string`), what `/tree` sends |
//! | `metrics_10k/encode_static` | encoding a registry holding canopy's `TreeMetrics` over the same tree (9,900 static children, a series each) |
//! | `metrics_10k/encode_dynamic` | the same over a root holding one dynamic supervisor with 10,000 children (summed into one series) |
//! | `http_10k/metrics`, `http_10k/tree` | one HTTP/1.0 `GET /metrics` or `GET /tree` of the static tree from the observer over loopback, response read to the end |
//!
//! The trees are started untimed, once, on a tokio multi-thread runtime with 2 workers; the HTTP
//! requests run in tasks on that runtime. Nothing changes the tree while it is read.

use std::time::Duration;

use canopy::metrics::TreeMetrics;
use canopy::observer::Observer;
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use canopy::{ChildSpec, DynamicSpec, Restart, Supervisor, SupervisorSpec};
use criterion::Criterion;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SUPERVISORS: usize = 100;
const WORKERS: usize = 99;
const DYNAMIC: usize = 10_000;

#[derive(Clone)]
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn static_tree() -> SupervisorSpec {
    let mut root = SupervisorSpec::default().name("bench");
    for s in 0..SUPERVISORS {
        let mut sup = SupervisorSpec::default();
        for w in 0..WORKERS {
            sup = sup.child(ChildSpec::actor(format!("w{w}"), Idle, ()));
        }
        root = root.child(ChildSpec::supervisor(format!("s{s}"), sup));
    }
    root
}

/// One HTTP/1.0 GET, read to the end; the length of the answer.
async fn get(addr: std::net::SocketAddr, path: &str) -> usize {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&answer[..40.min(answer.len())])
    );
    answer.len()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));

    let sup = rt.block_on(async {
        Supervisor::start(static_tree())
            .await
            .expect("the tree starts")
    });
    let nodes = count(&canopy::snapshot::tree().roots);
    assert_eq!(nodes, 1 + SUPERVISORS * (1 + WORKERS));
    eprintln!("static tree: {nodes} nodes");

    let mut g = c.benchmark_group("snapshot_10k");
    g.bench_function("tree", |b| b.iter(canopy::snapshot::tree));
    g.bench_function("subtree", |b| b.iter(|| canopy::snapshot::at("/bench/s42")));
    g.bench_function("tree_json", |b| {
        b.iter(|| serde_json::to_string(&canopy::snapshot::tree()).expect("json"))
    });
    g.finish();

    let mut registry = Registry::default();
    TreeMetrics::new().register(&mut registry);
    let text = canopy::metrics::encode(&registry).expect("encodes");
    eprintln!(
        "static tree: /metrics is {} bytes, {} lines",
        text.len(),
        text.lines().count()
    );
    let mut g = c.benchmark_group("metrics_10k");
    g.bench_function("encode_static", |b| {
        b.iter(|| canopy::metrics::encode(&registry).expect("encodes"))
    });
    g.finish();

    let observer = rt.block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        Observer::new().listener(listener).serve().expect("serves")
    });
    let addr = observer.local_addr();
    let mut g = c.benchmark_group("http_10k");
    g.bench_function("metrics", |b| {
        b.to_async(&rt)
            .iter(|| async move { tokio::spawn(get(addr, "/metrics")).await.expect("task") })
    });
    g.bench_function("tree", |b| {
        b.to_async(&rt)
            .iter(|| async move { tokio::spawn(get(addr, "/tree")).await.expect("task") })
    });
    g.finish();
    rt.block_on(async {
        observer.shutdown().await;
        sup.shutdown().await;
    });

    let pool = rt.block_on(async {
        let root = Supervisor::start(SupervisorSpec::default().name("bench-dyn").child(
            ChildSpec::dynamic("pool", DynamicSpec::actor(Idle).restart(Restart::Temporary)),
        ))
        .await
        .expect("starts");
        let cell = root
            .which_child("pool")
            .await
            .expect("pool")
            .status
            .pid()
            .cloned()
            .expect("running");
        let pool = canopy::DynamicRef::<()>::from_cell(cell).expect("a dynamic supervisor");
        for _ in 0..DYNAMIC {
            pool.start_child(()).await.expect("a child");
        }
        root
    });
    let text = canopy::metrics::encode(&registry).expect("encodes");
    eprintln!(
        "dynamic tree: /metrics is {} bytes, {} lines",
        text.len(),
        text.lines().count()
    );
    let mut g = c.benchmark_group("metrics_10k");
    g.bench_function("encode_dynamic", |b| {
        b.iter(|| canopy::metrics::encode(&registry).expect("encodes"))
    });
    g.finish();
    rt.block_on(pool.shutdown());
    c.final_summary();
}

fn count(nodes: &[canopy::snapshot::NodeSnapshot]) -> usize {
    nodes.iter().map(|n| 1 + count(&n.children)).sum()
}
