//! `canopy`: look at a running canopy tree from outside the process, through its observer.
//!
//! ```text
//! canopy tree http://127.0.0.1:9470               # the tree once, like pstree
//! canopy tree http://127.0.0.1:9470 --json        # the snapshot as JSON
//! canopy tree http://127.0.0.1:9470 --path /app/web
//! canopy top http://127.0.0.1:9470                # refreshed every second, sorted by restarts
//! canopy top http://127.0.0.1:9470 --sort messages --window 10
//! ```
//!
//! Exit status: 0 when the tree was read, 1 when it could not be (the message says why), 2 for a
//! usage error.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use canopy::cli::{self, Sort, Top};
use clap::{Parser, Subcommand, ValueEnum};

/// Look at a running canopy supervision tree through its observer (`/tree`).
#[derive(Parser)]
#[command(name = "canopy", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tree once.
    Tree {
        /// The observer's address, e.g. http://127.0.0.1:9470
        url: String,
        /// Only the subtree at this path, e.g. /app/web
        #[arg(long)]
        path: Option<String>,
        /// Print the snapshot as JSON (its schema is versioned) instead of text
        #[arg(long)]
        json: bool,
    },
    /// Keep a table of the tree's nodes, refreshed, busiest first.
    Top {
        /// The observer's address, e.g. http://127.0.0.1:9470
        url: String,
        /// What to sort by
        #[arg(long, value_enum, default_value = "restarts")]
        sort: SortBy,
        /// Count restarts and messages over the last <SECS> seconds instead of since the start
        #[arg(long, value_name = "SECS")]
        window: Option<u64>,
        /// Milliseconds between two readings
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        interval: u64,
        /// Stop after this many readings (default: until interrupted)
        #[arg(long, value_name = "N")]
        iterations: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SortBy {
    Restarts,
    Messages,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tree { url, path, json } => tree(&url, path.as_deref(), json).await,
        Command::Top {
            url,
            sort,
            window,
            interval,
            iterations,
        } => {
            let sort = match sort {
                SortBy::Restarts => Sort::Restarts,
                SortBy::Messages => Sort::Messages,
            };
            top(&url, sort, window, interval, iterations).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canopy: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn tree(url: &str, path: Option<&str>, json: bool) -> Result<(), cli::CliError> {
    let text = if json {
        cli::fetch_json(url, path).await? + "\n"
    } else {
        cli::render_tree(&cli::fetch_tree(url, path).await?)
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

async fn top(
    url: &str,
    sort: Sort,
    window: Option<u64>,
    interval: u64,
    iterations: Option<u64>,
) -> Result<(), cli::CliError> {
    let mut state = Top::new(sort, window.map(Duration::from_secs));
    // A terminal gets the table redrawn in place; a pipe gets one table per reading.
    let redraw = std::io::stdout().is_terminal();
    let mut n = 0u64;
    loop {
        let tree = cli::fetch_tree(url, None).await?;
        state.push(tree, Instant::now());
        let mut out = std::io::stdout().lock();
        if redraw {
            let _ = out.write_all(b"\x1b[2J\x1b[H");
        }
        let _ = out.write_all(state.render().as_bytes());
        if !redraw {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
        drop(out);
        n += 1;
        if iterations.is_some_and(|max| n >= max) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(interval)).await;
    }
}
