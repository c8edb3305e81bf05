//! The harness itself, at tiny sizes (seconds, not a benchmark): every workload that does not fix
//! its own large size runs on every Rust side in this process, and the binary runs a two-workload
//! comparison end to end, fresh processes, JSON and table included.

use std::path::PathBuf;
use std::process::Command;

use canopy_compare::measure::{self, Sizes};
use canopy_compare::report::Report;
use canopy_compare::{Flavor, Side, WORKLOADS};

/// Workloads whose size is in their name (10,000 children and more): left to real runs.
fn fixed_large(name: &str) -> bool {
    name.starts_with("static_10000") || name.starts_with("dynamic_")
}

#[test]
fn every_small_workload_runs_on_every_rust_side_and_measures_something() {
    for w in WORKLOADS
        .iter()
        .filter(|w| !w.external && !fixed_large(w.name))
    {
        let runnable = |s: &&Side| **s != Side::Otp && measure::missing(w.name, **s).is_none();
        for &side in w.sides.iter().filter(runnable) {
            let metrics = measure::run(w.name, side, Flavor::TwoWorkers, Sizes::tiny())
                .unwrap_or_else(|e| panic!("{} on {}: {e}", w.name, side.name()));
            assert!(!metrics.is_empty(), "{} on {}", w.name, side.name());
            for m in metrics {
                assert!(
                    !m.samples.is_empty(),
                    "{} on {}: {}",
                    w.name,
                    side.name(),
                    m.name
                );
                // A resident-set delta in a process that ran other workloads before can be
                // negative (the allocator returns their memory): only times must be positive.
                let positive = m.unit != "B/child";
                assert!(
                    m.samples
                        .iter()
                        .all(|s| s.is_finite() && (*s > 0.0 || !positive)),
                    "{} on {}: {} {:?}",
                    w.name,
                    side.name(),
                    m.name,
                    m.samples
                );
            }
        }
    }
}

#[test]
fn a_side_that_cannot_express_a_workload_is_refused() {
    let err = measure::run(
        "static_1000_infinity",
        Side::Kameo,
        Flavor::CurrentThread,
        Sizes::tiny(),
    )
    .unwrap_err();
    assert!(err.contains("does not run on kameo"), "{err}");
    assert!(measure::run(
        "no_such_workload",
        Side::Canopy,
        Flavor::CurrentThread,
        Sizes::tiny()
    )
    .is_err());
}

#[test]
fn the_binary_compares_in_fresh_processes_and_writes_json_and_a_table() {
    let dir = std::env::temp_dir().join(format!("canopy-compare-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out: PathBuf = dir.join("r.json");
    let status = Command::new(env!("CARGO_BIN_EXE_canopy-compare"))
        .args([
            "--tiny",
            "--only",
            "ask",
            "--only",
            "sigterm_1000",
            "--sides",
            "canopy,ractor",
            "--reps",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    for flavor in Flavor::ALL {
        for metric in ["ask_direct", "ask_handle", "ask_service", "sigterm_1000"] {
            for side in ["canopy", "ractor"] {
                let row = report
                    .rows
                    .iter()
                    .find(|r| r.flavor == flavor && r.metric == metric && r.side == side)
                    .unwrap_or_else(|| panic!("no {metric} row for {side} on {flavor:?}"));
                assert_eq!(row.repetitions, 2);
                assert_eq!(row.ratio_to_ractor.is_some(), side == "canopy");
            }
        }
    }
    let md = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(md.contains("| row | canopy | ractor |"), "{md}");
    assert!(md.contains("| sigterm_1000 |"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_otp_side_runs_where_erl_is_installed() {
    let ebin = std::env::temp_dir().join(format!("canopy-compare-ebin-{}", std::process::id()));
    let otp = match canopy_compare::otp::Otp::prepare(&ebin) {
        Ok(otp) => otp,
        Err(e) => {
            // The harness skips OTP the same way, with this message.
            eprintln!("skipped: {e}");
            return;
        }
    };
    let names: Vec<&str> = WORKLOADS
        .iter()
        .filter(|w| !w.external && !fixed_large(w.name) && w.sides.contains(&Side::Otp))
        .map(|w| w.name)
        .collect();
    let results = otp.run(&names, Flavor::CurrentThread, "tiny").unwrap();
    assert_eq!(results.len(), names.len());
    for (name, result) in results {
        let metrics = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(metrics.iter().all(|m| !m.samples.is_empty()), "{name}");
    }
    std::fs::remove_dir_all(&ebin).unwrap();
}
