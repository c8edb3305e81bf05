//! What the `canopy` command-line tool does (feature `cli`): read a running tree from its
//! observer's `/tree` endpoint and print it once ([`render_tree`]), or keep a `top`-like table of
//! its nodes sorted by restarts or messages, absolute or over a window ([`Top`]).
//!
//! The binary is a thin clap front over these functions:
//!
//! ```text
//! canopy tree http://127.0.0.1:9470            # the tree, like pstree
//! canopy tree http://127.0.0.1:9470 --json     # the snapshot as the observer serves it
//! canopy top http://127.0.0.1:9470 --sort messages --window 10
//! ```
//!
//! ```
//! use canopy::cli::{rows, Sort, Top};
//! use canopy::snapshot::{NodeSnapshot, TreeSnapshot};
//! # fn snap(restarts: u32) -> TreeSnapshot {
//! #     let json = format!(r#"{{"schema_version":1,"taken_at_ms":0,"roots":[{{"path":"/app","id":"app",
//! #       "kind":"supervisor","restart":null,"shutdown":null,"significant":false,
//! #       "status":{{"state":"running"}},"actor_id":"0.1","started_at_ms":null,"uptime_ms":null,
//! #       "restarts":0,"last_exit":null,"supervisor":null,"service":null,"in_flight":null,"children":[
//! #       {{"path":"/app/db","id":"db","kind":"worker","restart":"permanent","shutdown":{{"policy":"infinity"}},
//! #       "significant":false,"status":{{"state":"running"}},"actor_id":"0.2","started_at_ms":null,
//! #       "uptime_ms":5,"restarts":{restarts},"last_exit":null,"supervisor":null,"service":null,
//! #       "in_flight":null,"children":[]}}]}}]}}"#);
//! #     serde_json::from_str(&json).unwrap()
//! # }
//! let mut top = Top::new(Sort::Restarts, Some(std::time::Duration::from_secs(10)));
//! top.push(snap(1), std::time::Instant::now());
//! top.push(snap(4), std::time::Instant::now());
//! let table = top.rows();
//! assert_eq!(table[0].path, "/app/db");
//! assert_eq!(table[0].restarts, 3); // over the window: 4 - 1
//! assert_eq!(rows(&snap(4)).len(), 2);
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::snapshot::{NodeSnapshot, Status, TreeSnapshot};

/// Why the tree could not be read.
///
/// ```
/// let e = canopy::cli::CliError::Status(404);
/// assert_eq!(e.to_string(), "the observer answered 404");
/// ```
#[derive(Debug)]
pub enum CliError {
    /// The URL is not one the tool can reach.
    Url(String),
    /// The connection or the request failed.
    Http(String),
    /// The observer answered with this status.
    Status(u16),
    /// The answer is not a snapshot of a schema this tool reads.
    Body(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Url(why) => write!(f, "bad URL: {why}"),
            CliError::Http(why) => write!(f, "cannot reach the observer: {why}"),
            CliError::Status(code) => write!(f, "the observer answered {code}"),
            CliError::Body(why) => write!(f, "not a canopy tree snapshot: {why}"),
        }
    }
}

impl std::error::Error for CliError {}

/// Reads `/tree` (with `?path=` for a subtree) from the observer at `base` (`http://host:port`),
/// as a tree: a subtree comes back as a tree with one root.
///
/// ```no_run
/// # async fn demo() -> Result<(), canopy::cli::CliError> {
/// let tree = canopy::cli::fetch_tree("http://127.0.0.1:9470", None).await?;
/// print!("{tree}");
/// # Ok(()) }
/// ```
pub async fn fetch_tree(base: &str, path: Option<&str>) -> Result<TreeSnapshot, CliError> {
    let body = fetch(&tree_url(base, path)).await?;
    parse_tree(&body)
}

/// The raw `/tree` answer, for `--json`.
///
/// ```no_run
/// # async fn demo() -> Result<(), canopy::cli::CliError> {
/// println!("{}", canopy::cli::fetch_json("http://127.0.0.1:9470", None).await?);
/// # Ok(()) }
/// ```
pub async fn fetch_json(base: &str, path: Option<&str>) -> Result<String, CliError> {
    let body = fetch(&tree_url(base, path)).await?;
    String::from_utf8(body).map_err(|e| CliError::Body(e.to_string()))
}

fn tree_url(base: &str, path: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    match path {
        Some(path) => format!("{base}/tree?path={}", encode(path)),
        None => format!("{base}/tree"),
    }
}

/// Percent-encodes what a path may hold that a query may not.
fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

async fn fetch(url: &str) -> Result<Vec<u8>, CliError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| CliError::Url(format!("{url}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(CliError::Url(format!(
            "{url}: only http:// is supported (the observer serves plain HTTP on a local address)"
        )));
    }
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .get(uri)
        .await
        .map_err(|e| CliError::Http(e.to_string()))?;
    if !response.status().is_success() {
        return Err(CliError::Status(response.status().as_u16()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| CliError::Http(e.to_string()))?;
    Ok(body.to_bytes().to_vec())
}

/// A `/tree` answer: a whole tree, or one node (a subtree).
fn parse_tree(body: &[u8]) -> Result<TreeSnapshot, CliError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| CliError::Body(e.to_string()))?;
    if value.get("roots").is_some() {
        let tree: TreeSnapshot =
            serde_json::from_value(value).map_err(|e| CliError::Body(e.to_string()))?;
        if tree.schema_version != crate::snapshot::SCHEMA_VERSION {
            return Err(CliError::Body(format!(
                "schema version {} (this tool reads {})",
                tree.schema_version,
                crate::snapshot::SCHEMA_VERSION
            )));
        }
        return Ok(tree);
    }
    let node: NodeSnapshot =
        serde_json::from_value(value).map_err(|e| CliError::Body(e.to_string()))?;
    Ok(TreeSnapshot {
        schema_version: crate::snapshot::SCHEMA_VERSION,
        taken_at_ms: 0,
        roots: vec![node],
    })
}

/// The tree once, as text (like `pstree`).
///
/// ```
/// let tree = canopy::snapshot::tree();
/// let text = canopy::cli::render_tree(&tree);
/// assert!(text.is_empty() || text.starts_with('/'));
/// ```
pub fn render_tree(tree: &TreeSnapshot) -> String {
    tree.to_string()
}

/// What `top` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Restarts (absolute, or within the window).
    Restarts,
    /// Messages handled by generated services (absolute, or within the window).
    Messages,
}

/// One line of the `top` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The node's path.
    pub path: String,
    /// `running`, `restarting`, …
    pub status: &'static str,
    /// Restarts, absolute or within the window.
    pub restarts: u64,
    /// Messages handled, absolute or within the window; `None` for a node that is not a service.
    pub messages: Option<u64>,
    /// The running incarnation's uptime.
    pub uptime_ms: Option<u64>,
    /// Its last exit reason.
    pub last_exit: Option<String>,
}

/// Every node of a snapshot, depth first, as absolute rows.
///
/// ```
/// assert!(canopy::cli::rows(&canopy::snapshot::tree()).len() >= 0);
/// ```
pub fn rows(tree: &TreeSnapshot) -> Vec<Row> {
    let mut out = Vec::new();
    for root in &tree.roots {
        flatten(root, &mut out);
    }
    out
}

fn flatten(node: &NodeSnapshot, out: &mut Vec<Row>) {
    out.push(Row {
        path: node.path.as_str().to_owned(),
        status: match node.status {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Restarting { .. } => "restarting",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
        },
        restarts: u64::from(node.restarts),
        messages: node.service.as_ref().map(|s| s.messages_handled),
        uptime_ms: node.uptime_ms,
        last_exit: node
            .last_exit
            .as_ref()
            .map(|e| e.reason.as_str().to_owned()),
    });
    for child in &node.children {
        flatten(child, out);
    }
}

/// The state of `top`: the snapshots of the last window, and how to sort.
///
/// ```
/// let top = canopy::cli::Top::new(canopy::cli::Sort::Messages, None);
/// assert!(top.rows().is_empty());
/// ```
pub struct Top {
    sort: Sort,
    window: Option<Duration>,
    history: VecDeque<(Instant, Vec<Row>)>,
}

impl Top {
    /// A `top` sorted by `sort`, over `window` (absolute counts without one).
    pub fn new(sort: Sort, window: Option<Duration>) -> Top {
        Top {
            sort,
            window,
            history: VecDeque::new(),
        }
    }

    /// A new reading, taken at `at`.
    pub fn push(&mut self, tree: TreeSnapshot, at: Instant) {
        self.history.push_back((at, rows(&tree)));
        let keep = self.window.unwrap_or(Duration::ZERO);
        // Keep one reading at or before the start of the window to diff against.
        while self.history.len() > 2 {
            let second = self.history[1].0;
            if at.saturating_duration_since(second) >= keep {
                self.history.pop_front();
            } else {
                break;
            }
        }
    }

    /// The rows of the latest reading, counts over the window if there is one, sorted (largest
    /// first, then by path).
    pub fn rows(&self) -> Vec<Row> {
        let Some((_, latest)) = self.history.back() else {
            return Vec::new();
        };
        let mut rows = latest.clone();
        if self.window.is_some() {
            if let Some((_, oldest)) = self.history.front() {
                let before: HashMap<&str, &Row> =
                    oldest.iter().map(|r| (r.path.as_str(), r)).collect();
                for row in &mut rows {
                    if let Some(old) = before.get(row.path.as_str()) {
                        row.restarts = row.restarts.saturating_sub(old.restarts);
                        row.messages = match (row.messages, old.messages) {
                            (Some(now), Some(then)) => Some(now.saturating_sub(then)),
                            (now, _) => now,
                        };
                    }
                }
            }
        }
        rows.sort_by(|a, b| {
            let key = |r: &Row| match self.sort {
                Sort::Restarts => r.restarts,
                Sort::Messages => r.messages.unwrap_or(0),
            };
            key(b).cmp(&key(a)).then_with(|| a.path.cmp(&b.path))
        });
        rows
    }

    /// The table as text, with a header saying what it shows.
    ///
    /// ```
    /// let top = canopy::cli::Top::new(canopy::cli::Sort::Restarts, None);
    /// assert!(top.render().starts_with("PATH"));
    /// ```
    pub fn render(&self) -> String {
        let over = match self.window {
            Some(w) => format!(" (last {}s)", w.as_secs()),
            None => String::new(),
        };
        let mut out = format!(
            "{:<48} {:<10} {:>10} {:>12} {:>10}  LAST EXIT\n",
            "PATH",
            "STATUS",
            format!("RESTARTS{over}"),
            "MESSAGES",
            "UPTIME",
        );
        for row in self.rows() {
            let _ = writeln!(
                out,
                "{:<48} {:<10} {:>10} {:>12} {:>10}  {}",
                row.path,
                row.status,
                row.restarts,
                row.messages
                    .map_or_else(|| "-".to_string(), |m| m.to_string()),
                row.uptime_ms
                    .map_or_else(|| "-".to_string(), |ms| format!("{}s", ms / 1000)),
                row.last_exit.as_deref().unwrap_or("-"),
            );
        }
        out
    }
}
