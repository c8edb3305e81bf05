//! # 04: a connection pool under load, with crashing connections, backoff and handles
//!
//! Run it:
//!
//! ```text
//! cargo run --example 04_dynamic_pool
//! RUST_LOG=error cargo run --example 04_dynamic_pool   # the crash reports, without the backoff lines
//! cargo run --example 04_dynamic_pool -- --help
//! ```
//!
//! What you will see:
//!
//! 1. A dynamic supervisor, `/pool`, starts four connections (`conn 1` … `conn 4`), each with its
//!    start argument (its number), and the program takes a restart-transparent handle to each. A
//!    connection's number is its child key in the pool, so `conn 3` on stdout is `child=3` in the
//!    log.
//! 2. Eight client tasks send queries through those handles for four seconds. Every connection
//!    fails on purpose now and then (about one query in 25). On stderr the supervisor reports each
//!    crash (`child_terminated`) and the backoff it gives the restart (`restart delayed by backoff`,
//!    100 ms doubling up to 1.6 s, stretched by up to 20 % of jitter, reset after 2 s of
//!    stability). The log is at `info` unless `RUST_LOG` says otherwise.
//! 3. The clients never hold a dead address: a query sent while its connection restarts waits for
//!    the new incarnation (up to 3 s), which is started again with the same argument.
//! 4. At the end a summary: queries answered, queries lost with a crashing connection (a call in
//!    flight when its actor dies gets no reply; the client sees `CallFailed`, never a hang), and
//!    restarts per connection. Then the pool shuts down in parallel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canopy::backoff::Backoff;
use canopy::dynamic::{DynamicSpec, DynamicSupervisor};
use canopy::handle::{ChildHandle, HandleError, HandleOptions};
use canopy::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use clap::Parser;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// A dynamic connection pool under load: crashing connections restarted with backoff, callers
/// holding handles that keep working across restarts.
///
/// Runs for about four seconds, then prints what the clients saw and each connection's restarts.
/// The supervisor's reports go to stderr, filtered by RUST_LOG (default: info).
#[derive(Parser)]
#[command(name = "04_dynamic_pool")]
struct Cli {}

/// A connection: answers queries, and fails on purpose every so often.
#[derive(Clone)]
struct Conn;

enum Query {
    Run(String, RpcReplyPort<String>),
}

struct ConnState {
    id: u32,
    served: u64,
    rng: u64,
}

impl Actor for Conn {
    type Msg = Query;
    type State = ConnState;
    type Arguments = u32;

    async fn pre_start(
        &self,
        _: ActorRef<Query>,
        id: u32,
    ) -> Result<ConnState, ActorProcessingErr> {
        // A slow-ish connect, as a real connection would have.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(ConnState {
            id,
            served: 0,
            rng: 0x9E37_79B9 ^ (u64::from(id) << 17) ^ now_nanos(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Query>,
        Query::Run(sql, reply): Query,
        st: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        st.rng ^= st.rng << 13;
        st.rng ^= st.rng >> 7;
        st.rng ^= st.rng << 17;
        if st.rng % 25 == 0 {
            return Err(
                format!("conn {} lost its socket after {} queries", st.id, st.served).into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        st.served += 1;
        let _ = reply.send(format!("conn {}: {sql} -> ok", st.id));
        Ok(())
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Cli {} = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(LevelFilter::INFO.into())
                .from_env_lossy(),
        )
        .init();

    let template = DynamicSpec::actor(Conn)
        .restart_intensity(100, Duration::from_secs(10))
        .backoff(
            Backoff::new(Duration::from_millis(100), Duration::from_millis(1600))
                .reset_after(Duration::from_secs(2)),
        )
        .name("pool");
    let pool = DynamicSupervisor::start(template).await?;

    let mut conns: Vec<ChildHandle<Query>> = Vec::new();
    // The pool keys its children 1, 2, 3, ... in start order, and its log names them by key; each
    // connection's number is that key, so stdout, the log and the connections' own errors agree.
    for id in 1..=4u32 {
        let started = pool.start_child(id).await?;
        let cell = started.cell.ok_or("a connection ignored its start")?;
        let key = pool.which_child(&cell).await?.id;
        if key != id.to_string() {
            return Err(format!("conn {id} got child key {key} in the pool").into());
        }
        conns.push(pool.handle_with(&cell, HandleOptions::default().wait(Duration::from_secs(3)))?);
        println!("conn {id} started");
    }

    let answered = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let timed_out = Arc::new(AtomicU64::new(0));
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let conns = conns.clone();
            let (answered, lost, timed_out) = (answered.clone(), lost.clone(), timed_out.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while tokio::time::Instant::now() < until {
                    let conn = &conns[(client + n) % conns.len()];
                    let sql = format!("select {n} -- client {client}");
                    match conn
                        .call(|r| Query::Run(sql, r), Some(Duration::from_secs(3)))
                        .await
                    {
                        Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                        Err(HandleError::CallFailed(_)) => lost.fetch_add(1, Ordering::Relaxed),
                        Err(HandleError::Timeout(_)) => timed_out.fetch_add(1, Ordering::Relaxed),
                        Err(other) => {
                            eprintln!("client {client}: {other}");
                            return;
                        }
                    };
                    n += 1;
                }
            })
        })
        .collect();
    for c in clients {
        c.await?;
    }

    println!("-- after 4 s of load --");
    println!(
        "queries answered: {}, lost with a crashing connection: {}, timed out waiting for a restart: {}",
        answered.load(Ordering::Relaxed),
        lost.load(Ordering::Relaxed),
        timed_out.load(Ordering::Relaxed)
    );
    // Oldest first: the connections in the order they were started.
    for info in pool.which_children().await?.iter().rev() {
        println!("conn {}: restarted {} times", info.id, info.restarts);
    }
    pool.shutdown().await;
    println!("-- pool stopped --");
    Ok(())
}
