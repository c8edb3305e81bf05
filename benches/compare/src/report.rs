//! Aggregating the samples of every process into rows, `target/bench-compare.json` and the
//! Markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::{Flavor, Metric, Side};

/// The samples of one (row, runtime, side), repetition by repetition.
#[derive(Clone, Debug, Default)]
struct Series {
    unit: String,
    p99: bool,
    reps: BTreeMap<usize, Vec<f64>>,
}

/// Every sample collected so far.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    series: BTreeMap<(String, Flavor, Side), Series>,
    /// Metric names in the order they were first seen: the run's workload order.
    order: Vec<String>,
}

impl Collected {
    /// Adds one process's metrics, from repetition `rep` of `side` on `flavor`.
    pub fn add(&mut self, rep: usize, flavor: Flavor, side: Side, metrics: Vec<Metric>) {
        for m in metrics {
            if !self.order.contains(&m.name) {
                self.order.push(m.name.clone());
            }
            let s = self
                .series
                .entry((m.name.clone(), flavor, side))
                .or_default();
            s.unit = m.unit;
            s.p99 = m.p99;
            s.reps.entry(rep).or_default().extend(m.samples);
        }
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// One row per (metric, runtime, side), with its ratio to raw ractor's row; by runtime, then
    /// in the order the metrics were first collected.
    ///
    /// ```
    /// use canopy_compare::report::Collected;
    /// use canopy_compare::{Flavor, Metric, Side};
    /// let mut c = Collected::default();
    /// for rep in 0..2 {
    ///     let m = |v: f64| vec![Metric::new("ask_direct", "ns", false, vec![v, v])];
    ///     c.add(rep, Flavor::CurrentThread, Side::Ractor, m(100.0));
    ///     c.add(rep, Flavor::CurrentThread, Side::Canopy, m(120.0));
    /// }
    /// let rows = c.rows();
    /// let canopy = rows.iter().find(|r| r.side == "canopy").unwrap();
    /// assert_eq!(canopy.ratio_to_ractor, Some(1.2));
    /// ```
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for ((metric, flavor, side), s) in &self.series {
            let rep_medians: Vec<f64> = s.reps.values().map(|v| median(v)).collect();
            if rep_medians.is_empty() {
                continue;
            }
            let med = median(&rep_medians);
            let (lo, hi) = min_max(&rep_medians);
            let p99 = s.p99.then(|| {
                let mut all: Vec<f64> = s.reps.values().flatten().copied().collect();
                all.sort_by(f64::total_cmp);
                quantile(&all, 0.99)
            });
            let raw = self.series.get(&(metric.clone(), *flavor, Side::Ractor));
            let (ratio, ratio_range) = match raw {
                Some(raw) if *side != Side::Ractor => {
                    let raw_meds: Vec<f64> = raw.reps.values().map(|v| median(v)).collect();
                    // Per repetition: the sides of one repetition ran one after the other, so
                    // their ratio is the least touched by the machine's drift.
                    let per_rep: Vec<f64> = s
                        .reps
                        .iter()
                        .filter_map(|(rep, v)| {
                            let r = median(raw.reps.get(rep)?);
                            (r > 0.0).then(|| median(v) / r)
                        })
                        .collect();
                    let raw_med = median(&raw_meds);
                    let ratio = (raw_med > 0.0).then(|| round3(med / raw_med));
                    let range = (!per_rep.is_empty()).then(|| {
                        let (a, b) = min_max(&per_rep);
                        [round3(a), round3(b)]
                    });
                    (ratio, range)
                }
                _ => (None, None),
            };
            rows.push(Row {
                metric: metric.clone(),
                flavor: *flavor,
                side: side.name().to_string(),
                unit: s.unit.clone(),
                median: med,
                p99,
                repetitions: rep_medians.len(),
                samples: s.reps.values().map(Vec::len).sum(),
                spread: if med > 0.0 {
                    round3((hi - lo) / med)
                } else {
                    0.0
                },
                rep_medians,
                ratio_to_ractor: ratio,
                ratio_range,
            });
        }
        let pos = |m: &str| self.order.iter().position(|o| o == m);
        rows.sort_by_key(|r| (r.flavor, pos(&r.metric)));
        rows
    }
}

/// One (metric, runtime, side) of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The table row.
    pub metric: String,
    /// The runtime.
    pub flavor: Flavor,
    /// The side.
    pub side: String,
    /// What one sample counts.
    pub unit: String,
    /// The median of the repetitions' medians.
    pub median: f64,
    /// The 99th percentile over every single sample, where the row has one.
    pub p99: Option<f64>,
    /// How many repetitions (fresh processes) the row has.
    pub repetitions: usize,
    /// How many samples in all.
    pub samples: usize,
    /// Each repetition's median.
    pub rep_medians: Vec<f64>,
    /// The spread between runs: (largest − smallest repetition median) ÷ median.
    pub spread: f64,
    /// `median` ÷ raw ractor's `median` on the same row and runtime.
    pub ratio_to_ractor: Option<f64>,
    /// The smallest and largest of the per-repetition ratios to raw ractor.
    pub ratio_range: Option<[f64; 2]>,
}

/// Where and with what the run was made.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `lscpu`'s model name.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// `uname -sr`.
    pub kernel: String,
    /// The 1-, 5- and 15-minute load averages before the run.
    pub load_before: String,
    /// The same after the run.
    pub load_after: String,
}

/// The whole report, as written to `target/bench-compare.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// When the run ended (UTC).
    pub date: String,
    /// The command line of the run.
    pub command: String,
    /// Whether it was a `--quick` run.
    pub quick: bool,
    /// The commit of canopy measured.
    pub commit: String,
    /// The machine.
    pub machine: Machine,
    /// rustc, ractor, kameo, ractor-supervisor, tokio and Erlang/OTP versions.
    pub versions: BTreeMap<String, String>,
    /// What was skipped, and why.
    pub notes: Vec<String>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// The median of unsorted values (0 for none).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    }
}

/// The `q` quantile of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A value in its unit, readable: `ns` shown as ns, µs or ms.
pub fn show(value: f64, unit: &str) -> String {
    match unit {
        "ns" if value >= 1e6 => format!("{:.2} ms", value / 1e6),
        "ns" if value >= 1e3 => format!("{:.2} µs", value / 1e3),
        "ns" => format!("{value:.0} ns"),
        "us/child" => format!("{value:.2} µs"),
        "B/child" => format!("{value:.0} B"),
        "ms" => format!("{value:.1} ms"),
        other => format!("{value:.2} {other}"),
    }
}

/// The Markdown tables: one per runtime, a row per metric, a column per side. Raw ractor's
/// column shows its value; every other column its value, its ratio to raw ractor and the range
/// of the per-repetition ratios.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let sides: Vec<&str> = Side::ALL.iter().map(|s| s.name()).collect();
    let present: Vec<&str> = sides
        .iter()
        .copied()
        .filter(|s| report.rows.iter().any(|r| r.side == *s))
        .collect();
    for flavor in Flavor::ALL {
        let rows: Vec<&Row> = report.rows.iter().filter(|r| r.flavor == flavor).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n**{}** ({}). Median of the repetitions' medians; × = ratio to raw ractor, \
             [min–max] of the per-repetition ratios; p99 where a row has single latencies.\n",
            flavor.name(),
            match flavor {
                Flavor::CurrentThread => "tokio current-thread; Erlang +S 1:1",
                Flavor::TwoWorkers => "tokio multi-thread, 2 workers; Erlang +S 2:2",
            }
        );
        let _ = writeln!(out, "| row | {} |", present.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(present.len()));
        let mut metrics: Vec<&str> = Vec::new();
        for r in &rows {
            if !metrics.contains(&r.metric.as_str()) {
                metrics.push(&r.metric);
            }
        }
        for metric in metrics {
            let mut cells = Vec::new();
            for side in &present {
                let cell = rows
                    .iter()
                    .find(|r| r.metric == metric && r.side == *side)
                    .map(|r| cell(r))
                    .unwrap_or_else(|| "–".to_string());
                cells.push(cell);
            }
            let _ = writeln!(out, "| {metric} | {} |", cells.join(" | "));
        }
    }
    out
}

fn cell(r: &Row) -> String {
    let mut s = show(r.median, &r.unit);
    if let Some(p99) = r.p99 {
        let _ = write!(s, " (p99 {})", show(p99, &r.unit));
    }
    if let Some(ratio) = r.ratio_to_ractor {
        let _ = write!(s, " **{ratio:.2}×**");
        if let Some([a, b]) = r.ratio_range {
            if r.repetitions > 1 {
                let _ = write!(s, " [{a:.2}–{b:.2}]");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, v: &[f64]) -> Vec<Metric> {
        vec![Metric::new(name, "ns", true, v.to_vec())]
    }

    #[test]
    fn ratio_median_p99_and_spread() {
        let mut c = Collected::default();
        c.add(
            0,
            Flavor::TwoWorkers,
            Side::Ractor,
            m("restart_one_for_one", &[100.0, 100.0, 300.0]),
        );
        c.add(
            1,
            Flavor::TwoWorkers,
            Side::Ractor,
            m("restart_one_for_one", &[200.0]),
        );
        c.add(
            0,
            Flavor::TwoWorkers,
            Side::Canopy,
            m("restart_one_for_one", &[110.0]),
        );
        c.add(
            1,
            Flavor::TwoWorkers,
            Side::Canopy,
            m("restart_one_for_one", &[180.0]),
        );
        let rows = c.rows();
        let raw = rows.iter().find(|r| r.side == "ractor").unwrap();
        assert_eq!(raw.rep_medians, vec![100.0, 200.0]);
        assert_eq!(raw.median, 150.0);
        assert_eq!(raw.p99, Some(300.0));
        assert_eq!(raw.spread, round3(100.0 / 150.0));
        assert_eq!(raw.ratio_to_ractor, None);
        let canopy = rows.iter().find(|r| r.side == "canopy").unwrap();
        assert_eq!(canopy.median, 145.0);
        assert_eq!(canopy.ratio_to_ractor, Some(round3(145.0 / 150.0)));
        assert_eq!(canopy.ratio_range, Some([0.9, 1.1]));
        assert_eq!(canopy.samples, 2);
    }

    #[test]
    fn a_row_without_raw_ractor_has_no_ratio() {
        let mut c = Collected::default();
        c.add(
            0,
            Flavor::CurrentThread,
            Side::Otp,
            m("sigterm_1000", &[5.0]),
        );
        assert_eq!(c.rows()[0].ratio_to_ractor, None);
    }

    #[test]
    fn table_has_a_column_per_side_present_and_a_dash_where_a_side_is_missing() {
        let mut c = Collected::default();
        c.add(
            0,
            Flavor::CurrentThread,
            Side::Ractor,
            m("ask_direct", &[400.0]),
        );
        c.add(
            0,
            Flavor::CurrentThread,
            Side::Kameo,
            m("ask_direct", &[500.0]),
        );
        c.add(
            0,
            Flavor::CurrentThread,
            Side::Ractor,
            m("ask_handle", &[400.0]),
        );
        let report = Report {
            rows: c.rows(),
            ..Report::default()
        };
        let md = markdown(&report);
        assert!(md.contains("| row | ractor | kameo |"), "{md}");
        assert!(
            md.contains("| ask_direct | 400 ns (p99 400 ns) | 500 ns (p99 500 ns) **1.25×** |"),
            "{md}"
        );
        assert!(
            md.contains("| ask_handle | 400 ns (p99 400 ns) | – |"),
            "{md}"
        );
        assert!(!md.contains("2t"), "{md}");
    }

    #[test]
    fn units_read_well() {
        assert_eq!(show(1_500.0, "ns"), "1.50 µs");
        assert_eq!(show(2_500_000.0, "ns"), "2.50 ms");
        assert_eq!(show(5_432.4, "B/child"), "5432 B");
    }
}
