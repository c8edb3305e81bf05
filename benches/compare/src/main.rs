//! `canopy-compare`: the same workloads on canopy, raw ractor, kameo, ractor-supervisor and
//! Erlang/OTP, each measurement in a fresh process, written to `target/bench-compare.json` and a
//! Markdown table of ratios to raw ractor. See BENCHMARKS.md ("Side by side").

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use canopy_compare::measure::{self, Sizes, Workload};
use canopy_compare::otp::Otp;
use canopy_compare::report::{self, Collected, Machine, Report};
use canopy_compare::{Flavor, Metric, Side, WORKLOADS};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "canopy-compare",
    about = "canopy side by side with raw ractor, kameo, ractor-supervisor and Erlang/OTP"
)]
struct Cli {
    /// Smaller sizes and two repetitions: the whole table in under two minutes.
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (repeatable; `--list` names them).
    #[arg(long, value_name = "WORKLOAD")]
    only: Vec<String>,
    /// Run only these sides (default: all that this machine can run).
    #[arg(long, value_enum, value_delimiter = ',')]
    sides: Vec<Side>,
    /// Run only on these runtimes (default: both).
    #[arg(long, value_enum, value_delimiter = ',')]
    flavors: Vec<Flavor>,
    /// Repetitions, each a fresh process per workload, side and runtime (default 5, quick 2).
    #[arg(long)]
    reps: Option<usize>,
    /// Where to write the JSON report (the Markdown table goes beside it, `.md`).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Tiny sizes, for the harness's own tests: figures of no value.
    #[arg(long, hide = true)]
    tiny: bool,
    /// List the workloads and exit.
    #[arg(long)]
    list: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// (internal) Runs one workload on one side in this process and prints its metrics.
    #[command(hide = true)]
    Child {
        #[arg(long)]
        workload: String,
        #[arg(long, value_enum)]
        side: Side,
        #[arg(long, value_enum)]
        flavor: Flavor,
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        tiny: bool,
    },
    /// (internal) Serves a 1,000-actor tree until SIGTERM.
    #[command(hide = true)]
    Serve {
        #[arg(long, value_enum)]
        side: Side,
        #[arg(long, value_enum)]
        flavor: Flavor,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Some(Cmd::Child {
            workload,
            side,
            flavor,
            quick,
            tiny,
        }) => measure::run(workload, *side, *flavor, sizes(*quick, *tiny)).and_then(|m| {
            let json = serde_json::to_string(&m).map_err(|e| e.to_string())?;
            println!("RESULT {json}");
            Ok(())
        }),
        Some(Cmd::Serve { side, flavor }) => measure::serve(*side, *flavor),
        None if cli.list => {
            for w in WORKLOADS {
                let sides: Vec<&str> = w.sides.iter().map(|s| s.name()).collect();
                let full = if w.full_only { " (full run only)" } else { "" };
                println!(
                    "{:<26} {}{full}\n{:<26} sides: {}",
                    w.name,
                    w.about,
                    "",
                    sides.join(", ")
                );
            }
            Ok(())
        }
        None => compare(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canopy-compare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sizes(quick: bool, tiny: bool) -> Sizes {
    if tiny {
        Sizes::tiny()
    } else {
        Sizes::new(quick)
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compare(cli: &Cli) -> Result<(), String> {
    let began = Instant::now();
    for name in &cli.only {
        if measure::workload(name).is_none() {
            return Err(format!("no workload {name} (see --list)"));
        }
    }
    let workloads: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| {
            if cli.only.is_empty() {
                !((cli.quick || cli.tiny) && w.full_only)
            } else {
                cli.only.iter().any(|o| o == w.name)
            }
        })
        .collect();
    let flavors = if cli.flavors.is_empty() {
        Flavor::ALL.to_vec()
    } else {
        cli.flavors.clone()
    };
    let wanted = |s: Side| cli.sides.is_empty() || cli.sides.contains(&s);
    let reps = cli.reps.unwrap_or(if cli.quick { 2 } else { 5 }).max(1);
    let sizes = sizes(cli.quick, cli.tiny);
    // Quick and tiny runs start one Erlang VM per repetition and runtime for all OTP workloads.
    let mode = if cli.tiny {
        "tiny"
    } else if cli.quick {
        "quick"
    } else {
        "full"
    };
    let batched = cli.quick || cli.tiny;
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| root().join("target/bench-compare.json"));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut notes = Vec::new();

    let otp = if wanted(Side::Otp) {
        match Otp::prepare(&root().join("target/otp-ebin")) {
            Ok(otp) => Some(otp),
            Err(e) => {
                let note = format!("Erlang/OTP skipped: {e}");
                eprintln!("{note}");
                notes.push(note);
                None
            }
        }
    } else {
        None
    };
    if batched && otp.is_some() {
        notes.push(
            "quick run: Erlang/OTP ran all its workloads of a repetition in one VM per runtime"
                .into(),
        );
    }
    // The commit the binary was built from, when run through cargo (which rebuilds it first).
    let commit = commit();
    let load_before = loadavg();
    let mut collected = Collected::default();
    for rep in 0..reps {
        for w in &workloads {
            for &flavor in &flavors {
                let mut sides: Vec<Side> = w
                    .sides
                    .iter()
                    .copied()
                    .filter(|&s| wanted(s) && (s != Side::Otp || otp.is_some()))
                    .filter(|&s| match measure::missing(w.name, s) {
                        None => true,
                        Some(why) => {
                            let note = format!("{} skipped on {}: {why}", w.name, s.name());
                            if !notes.contains(&note) {
                                eprintln!("{note}");
                                notes.push(note);
                            }
                            false
                        }
                    })
                    .collect();
                // A row without canopy, where canopy was asked for, compares nothing.
                if sides.is_empty() || (wanted(Side::Canopy) && !sides.contains(&Side::Canopy)) {
                    continue;
                }
                // Interleave: each repetition starts with a different side.
                let k = rep % sides.len();
                sides.rotate_left(k);
                for side in sides {
                    let result = if w.external {
                        sigterm(&exe, otp.as_ref(), side, flavor, sizes.sigterms)
                    } else if side == Side::Otp {
                        if batched {
                            continue;
                        }
                        match otp.as_ref() {
                            Some(otp) => otp
                                .run(&[w.name], flavor, mode)?
                                .into_iter()
                                .next()
                                .map(|(_, r)| r)
                                .unwrap_or_else(|| Err("erl printed no result".into())),
                            None => continue,
                        }
                    } else {
                        child(&exe, w.name, side, flavor, mode)
                    };
                    record(
                        &mut collected,
                        &mut notes,
                        rep,
                        flavor,
                        side,
                        w.name,
                        result,
                    );
                }
            }
        }
        // Quick: one VM per runtime and repetition for all OTP workloads (a VM starts in ~0.3 s),
        // after the Rust sides, so that the table's rows follow the workloads' order.
        if let (true, Some(otp)) = (batched, &otp) {
            let names: Vec<&str> = workloads
                .iter()
                .filter(|w| !w.external && w.sides.contains(&Side::Otp))
                .map(|w| w.name)
                .collect();
            for &flavor in &flavors {
                for (name, result) in otp.run(&names, flavor, mode)? {
                    record(
                        &mut collected,
                        &mut notes,
                        rep,
                        flavor,
                        Side::Otp,
                        &name,
                        result,
                    );
                }
            }
        }
    }
    let load_after = loadavg();
    if collected.is_empty() {
        return Err("nothing was measured".into());
    }
    let report = Report {
        date: date(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        quick: cli.quick,
        commit,
        machine: Machine {
            cpu: cpu_model(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: run_text("uname", &["-sr"]),
            load_before,
            load_after,
        },
        versions: versions(otp.as_ref()),
        notes,
        rows: collected.rows(),
    };
    let md = format!("{}\n{}", header(&report), report::markdown(&report));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&out, json).map_err(|e| format!("{}: {e}", out.display()))?;
    let md_path = out.with_extension("md");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    println!("{md}");
    eprintln!(
        "wrote {} and {} in {:.0} s",
        out.display(),
        md_path.display(),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Adds one measurement's metrics, or notes its failure (a failure is reported, never dropped).
fn record(
    collected: &mut Collected,
    notes: &mut Vec<String>,
    rep: usize,
    flavor: Flavor,
    side: Side,
    workload: &str,
    result: Result<Vec<Metric>, String>,
) {
    match result {
        Ok(metrics) => {
            for m in &metrics {
                eprintln!(
                    "[rep {}] {} {:<34} {:<18} {}",
                    rep + 1,
                    flavor.name(),
                    m.name,
                    side.name(),
                    report::show(report::median(&m.samples), &m.unit)
                );
            }
            collected.add(rep, flavor, side, metrics);
        }
        Err(e) => {
            let note = format!(
                "{workload} on {} ({}), repetition {}: failed: {e}",
                side.name(),
                flavor.name(),
                rep + 1
            );
            eprintln!("{note}");
            notes.push(note);
        }
    }
}

/// Runs one workload on one Rust side in a fresh process.
fn child(
    exe: &Path,
    workload: &str,
    side: Side,
    flavor: Flavor,
    mode: &str,
) -> Result<Vec<Metric>, String> {
    let mut cmd = Command::new(exe);
    cmd.args([
        "child",
        "--workload",
        workload,
        "--side",
        side.name(),
        "--flavor",
        flavor.name(),
    ]);
    if mode != "full" {
        cmd.arg(format!("--{mode}"));
    }
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) {
        Some(json) if out.status.success() => serde_json::from_str(json).map_err(|e| e.to_string()),
        _ => Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// `n` times: start a 1,000-actor tree in a fresh process, wait for its READY, send it SIGTERM
/// and time until the process has exited.
fn sigterm(
    exe: &Path,
    otp: Option<&Otp>,
    side: Side,
    flavor: Flavor,
    n: usize,
) -> Result<Vec<Metric>, String> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut cmd = match side {
            Side::Otp => {
                let mut cmd = otp.ok_or("no erl")?.command(flavor);
                cmd.args(["-run", "canopy_compare", "serve"]);
                cmd
            }
            _ => {
                let mut cmd = Command::new(exe);
                cmd.args(["serve", "--side", side.name(), "--flavor", flavor.name()]);
                cmd
            }
        };
        let mut proc = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = proc.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.any(|l| l.map(|l| l.trim() == "READY").unwrap_or(false));
        if !ready {
            let status = proc.wait().map_err(|e| e.to_string())?;
            return Err(format!("the server exited ({status}) before it was ready"));
        }
        let pid = libc::pid_t::try_from(proc.id()).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        // SAFETY: kill(2) on the pid of a child this process spawned and has not yet reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(format!("kill: {}", std::io::Error::last_os_error()));
        }
        let status = proc.wait().map_err(|e| e.to_string())?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if !status.success() {
            return Err(format!("the server exited with {status} after SIGTERM"));
        }
        samples.push(ms);
    }
    Ok(vec![Metric::new("sigterm_1000", "ms", false, samples)])
}

fn header(r: &Report) -> String {
    let versions: Vec<String> = r.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut s = format!(
        "Run {} at {} on {} ({} CPUs, {}), load {} → {}; canopy {}; {}.",
        if r.quick { "(quick)" } else { "(full)" },
        r.date,
        r.machine.cpu,
        r.machine.cpus,
        r.machine.kernel,
        r.machine.load_before,
        r.machine.load_after,
        r.commit,
        versions.join(", ")
    );
    for note in &r.notes {
        s.push_str(&format!("\n- {note}"));
    }
    s
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn run_text(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn date() -> String {
    run_text("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
}

fn commit() -> String {
    let dir = root();
    let dir = dir.to_string_lossy();
    let hash = run_text("git", &["-C", &dir, "rev-parse", "--short", "HEAD"]);
    let dirty = !run_text(
        "git",
        &["-C", &dir, "status", "--porcelain", "--untracked-files=no"],
    )
    .is_empty();
    if dirty {
        format!("{hash} (with uncommitted changes)")
    } else {
        hash
    }
}

fn cpu_model() -> String {
    run_text("lscpu", &[])
        .lines()
        .find_map(|l| l.strip_prefix("Model name:"))
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Versions from the workspace's Cargo.lock (what this binary was built with), rustc's, erl's.
fn versions(otp: Option<&Otp>) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert(
        "rustc".into(),
        run_text("rustc", &["--version"]).replace("rustc ", ""),
    );
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap_or_default();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(n), Some(ver)) = (&name, line.strip_prefix("version = ")) {
            if ["ractor", "kameo", "ractor-supervisor", "tokio"].contains(&n.as_str()) {
                v.insert(n.clone(), ver.trim_matches('"').to_string());
            }
            name = None;
        }
    }
    if !Side::RactorSupervisor.built() {
        v.remove("ractor-supervisor");
    }
    if let Some(otp) = otp {
        v.insert("erlang".into(), otp.version());
    }
    v
}
