//! The tree as Prometheus metrics (feature `metrics`), through the `prometheus-client` crate.
//!
//! [`TreeMetrics`] is a collector: registered into *your* [`Registry`] (there is no global one), it
//! reads the tree with [`snapshot::tree`] at each scrape, so a scrape
//! never sends a message to any actor and costs nothing between scrapes. Every value comes from
//! the supervisors' own state at that instant:
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `canopy_child_restarts_total` | counter | `supervisor`, `child` | restarts of a child by its supervisor |
//! | `canopy_children` | gauge | `supervisor`, `status` | children by status (`starting`, `running`, `restarting`, `stopping`, `stopped`) |
//! | `canopy_supervisor_restarts_in_window` | gauge | `supervisor` | restarts counted in the current intensity window |
//! | `canopy_supervisor_restart_intensity` | gauge | `supervisor` | restarts allowed per period |
//! | `canopy_supervisor_restart_period_seconds` | gauge | `supervisor` | the period |
//! | `canopy_supervisor_restart_intensity_used_ratio` | gauge | `supervisor` | restarts in the window over the intensity (1 = the next crash escalates) |
//! | `canopy_service_messages_handled_total` | counter | `supervisor`, `child` | messages handled by a generated service's running incarnation |
//! | `canopy_app_phase` | gauge | `phase` | 1 for the [`App`](crate::app::App)'s current phase, 0 for the others |
//! | `canopy_app_phase_duration_seconds` | gauge | `phase` | how long each phase entered so far lasted (the current one: so far) |
//! | `canopy_app_stopping_seconds` | gauge | | time since the stop was triggered (absent before) |
//! | `canopy_chaos_actions_total` | counter | `mode`, `outcome` | feature `chaos`: the [chaos monkey](crate::chaos)'s steps that chose a target (process-wide) |
//! | `canopy_chaos_skips_total` | counter | `reason` | feature `chaos`: its steps that did nothing |
//! | `canopy_fault_point_hits_total`, `canopy_fault_point_fired_total` | counter | `point` | feature `chaos`: each configured [fault point](crate::fault)'s hits and fires |
//!
//! The `canopy_app_*` metrics need the app's [`Lifecycle`] ([`TreeMetrics::lifecycle`]).
//!
//! **Bounded labels.** `supervisor` is a supervisor's path and `child` a static child's id, both
//! fixed by the specs. The children of a dynamic supervisor are started on demand, so they are
//! summed into one series labelled with their supervisor's path and `child="*"`, and the trees
//! below them are not broken out: the number of series does not grow with the number of
//! connections, sessions or jobs. Counters restart from zero when the supervisor that counts them
//! restarts, and a dynamic sum drops when children leave: Prometheus' `rate` and `increase` read a
//! drop as a counter reset.
//!
//! ```
//! use canopy::metrics::TreeMetrics;
//! use canopy::{ChildSpec, Start, Supervisor, SupervisorSpec};
//! use prometheus_client::registry::Registry;
//! # #[tokio::main] async fn main() {
//! let sup = Supervisor::start(
//!     SupervisorSpec::default()
//!         .name("metrics-doc")
//!         .child(ChildSpec::new("idle", |_sup| async { Ok(Start::Ignore) })),
//! )
//! .await
//! .unwrap();
//! let mut registry = Registry::default(); // yours, with your own metrics in it too
//! TreeMetrics::new().register(&mut registry);
//! let text = canopy::metrics::encode(&registry).unwrap();
//! assert!(text.contains(r#"canopy_children{supervisor="/metrics-doc",status="stopped"} 1"#));
//! sup.shutdown().await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::app::{Lifecycle, Phase};
use crate::snapshot::{self, NodeSnapshot, Status};

/// The chaos monkey's and the fault points' counters (feature `chaos`), process-wide.
#[cfg(feature = "chaos")]
fn encode_chaos(encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    let counters = crate::chaos::counters();
    let mut m = encoder.encode_descriptor(
        "canopy_chaos_actions",
        "Steps of the chaos monkey that chose a target, by mode and outcome (done, queued, dry_run).",
        None,
        MetricType::Counter,
    )?;
    for (mode, outcome, n) in counters.action_series() {
        ConstCounter::new(n).encode(m.encode_family(&[("mode", mode), ("outcome", outcome)])?)?;
    }
    let mut m = encoder.encode_descriptor(
        "canopy_chaos_skips",
        "Steps of the chaos monkey that did nothing, by reason.",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in counters.skip_series() {
        ConstCounter::new(n).encode(m.encode_family(&[("reason", reason)])?)?;
    }
    let points = crate::fault::all_stats();
    let mut m = encoder.encode_descriptor(
        "canopy_fault_point_hits",
        "Awaits of a configured fault point since it was configured.",
        None,
        MetricType::Counter,
    )?;
    for (point, stats) in &points {
        ConstCounter::new(stats.hits).encode(m.encode_family(&[("point", point.as_str())])?)?;
    }
    let mut m = encoder.encode_descriptor(
        "canopy_fault_point_fired",
        "Hits of a configured fault point where its fault happened.",
        None,
        MetricType::Counter,
    )?;
    for (point, stats) in &points {
        ConstCounter::new(stats.fired).encode(m.encode_family(&[("point", point.as_str())])?)?;
    }
    Ok(())
}

/// The `Content-Type` of [`encode`]'s output (Prometheus text format 0.0.4).
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `child` label of the series that sums a dynamic supervisor's children.
pub const DYNAMIC_CHILDREN: &str = "*";

/// A collector of the live tree's metrics; see the [module docs](self).
///
/// ```
/// use canopy::metrics::TreeMetrics;
/// let mut registry = prometheus_client::registry::Registry::default();
/// TreeMetrics::new().register(&mut registry);
/// ```
#[derive(Debug, Clone, Default)]
pub struct TreeMetrics {
    lifecycle: Option<Lifecycle>,
}

impl TreeMetrics {
    /// Metrics of every top-level supervisor's tree, without app phases.
    ///
    /// ```
    /// let metrics = canopy::metrics::TreeMetrics::new();
    /// # let _ = metrics;
    /// ```
    pub fn new() -> Self {
        TreeMetrics::default()
    }

    /// Adds the `canopy_app_*` metrics of this app's [`Lifecycle`].
    ///
    /// ```
    /// use canopy::{app::App, metrics::TreeMetrics, SupervisorSpec};
    /// let app = App::new(SupervisorSpec::default());
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// TreeMetrics::new().lifecycle(app.lifecycle()).register(&mut registry);
    /// let text = canopy::metrics::encode(&registry).unwrap();
    /// assert!(text.contains(r#"canopy_app_phase{phase="starting"} 1"#));
    /// ```
    pub fn lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = Some(lifecycle);
        self
    }

    /// Registers this collector into `registry`; it is read at each encoding of the registry.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// canopy::metrics::TreeMetrics::new().register(&mut registry);
    /// assert!(canopy::metrics::encode(&registry).unwrap().contains("canopy_children"));
    /// ```
    pub fn register(self, registry: &mut Registry) {
        registry.register_collector(Box::new(self));
    }
}

/// What one scrape gathers from a snapshot, before encoding.
#[derive(Default)]
struct Gathered<'a> {
    /// (supervisor, child, restarts), a dynamic supervisor's children summed under `*`.
    restarts: Vec<(&'a str, &'a str, u64)>,
    /// Children by status, per supervisor, in the order of `STATUSES`.
    statuses: BTreeMap<&'a str, [u64; 5]>,
    /// (supervisor, in window, intensity, period in seconds).
    budgets: Vec<(&'a str, u64, u32, f64)>,
    /// (supervisor, child, messages handled).
    handled: Vec<(&'a str, &'a str, u64)>,
}

const STATUSES: [&str; 5] = ["starting", "running", "restarting", "stopping", "stopped"];

fn status_index(status: &Status) -> usize {
    match status {
        Status::Starting => 0,
        Status::Running => 1,
        Status::Restarting { .. } => 2,
        Status::Stopping => 3,
        Status::Stopped => 4,
    }
}

impl<'a> Gathered<'a> {
    fn supervisor(&mut self, node: &'a NodeSnapshot) {
        let Some(sup) = &node.supervisor else {
            return;
        };
        let path = node.path.as_str();
        self.budgets.push((
            path,
            sup.restarts_in_window,
            sup.intensity,
            sup.period_ms as f64 / 1000.0,
        ));
        let counts = self.statuses.entry(path).or_default();
        let dynamic = sup.strategy == "dynamic";
        let (mut restarts, mut handled, mut services) = (0u64, 0u64, false);
        for child in &node.children {
            counts[status_index(&child.status)] += 1;
            if dynamic {
                restarts += u64::from(child.restarts);
                if let Some(service) = &child.service {
                    handled += service.messages_handled;
                    services = true;
                }
            } else {
                self.restarts
                    .push((path, child.id.as_str(), u64::from(child.restarts)));
                if let Some(service) = &child.service {
                    self.handled
                        .push((path, child.id.as_str(), service.messages_handled));
                }
            }
        }
        if dynamic {
            self.restarts.push((path, DYNAMIC_CHILDREN, restarts));
            if services {
                self.handled.push((path, DYNAMIC_CHILDREN, handled));
            }
        } else {
            // Below a dynamic supervisor, paths are unbounded: only static branches descend.
            for child in &node.children {
                self.supervisor(child);
            }
        }
    }
}

impl Collector for TreeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let tree = snapshot::tree();
        let mut g = Gathered::default();
        for root in &tree.roots {
            g.supervisor(root);
        }

        let mut m = encoder.encode_descriptor(
            "canopy_child_restarts",
            "Restarts of a child by its supervisor (a dynamic supervisor's children summed under child=\"*\").",
            None,
            MetricType::Counter,
        )?;
        for (sup, child, n) in &g.restarts {
            ConstCounter::new(*n)
                .encode(m.encode_family(&[("supervisor", *sup), ("child", *child)])?)?;
        }

        let mut m = encoder.encode_descriptor(
            "canopy_children",
            "Children of a supervisor by status.",
            None,
            MetricType::Gauge,
        )?;
        for (sup, counts) in &g.statuses {
            for (status, n) in STATUSES.iter().zip(counts) {
                ConstGauge::new(*n as i64)
                    .encode(m.encode_family(&[("supervisor", *sup), ("status", *status)])?)?;
            }
        }

        let mut m = encoder.encode_descriptor(
            "canopy_supervisor_restarts_in_window",
            "Restarts counted in the supervisor's current restart-intensity window.",
            None,
            MetricType::Gauge,
        )?;
        for (sup, used, _, _) in &g.budgets {
            ConstGauge::new(*used as i64).encode(m.encode_family(&[("supervisor", *sup)])?)?;
        }
        let mut m = encoder.encode_descriptor(
            "canopy_supervisor_restart_intensity",
            "Restarts the supervisor allows per period before it gives up.",
            None,
            MetricType::Gauge,
        )?;
        for (sup, _, intensity, _) in &g.budgets {
            ConstGauge::new(i64::from(*intensity))
                .encode(m.encode_family(&[("supervisor", *sup)])?)?;
        }
        let mut m = encoder.encode_descriptor(
            "canopy_supervisor_restart_period",
            "The supervisor's restart-intensity period.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (sup, _, _, period) in &g.budgets {
            ConstGauge::new(*period).encode(m.encode_family(&[("supervisor", *sup)])?)?;
        }
        let mut m = encoder.encode_descriptor(
            "canopy_supervisor_restart_intensity_used_ratio",
            "Restarts in the window over the intensity: at 1 the next restart makes the supervisor give up.",
            None,
            MetricType::Gauge,
        )?;
        for (sup, used, intensity, _) in &g.budgets {
            ConstGauge::new(used_ratio(*used, *intensity))
                .encode(m.encode_family(&[("supervisor", *sup)])?)?;
        }

        let mut m = encoder.encode_descriptor(
            "canopy_service_messages_handled",
            "Messages handled by a generated service's running incarnation (a dynamic supervisor's children summed under child=\"*\").",
            None,
            MetricType::Counter,
        )?;
        for (sup, child, n) in &g.handled {
            ConstCounter::new(*n)
                .encode(m.encode_family(&[("supervisor", *sup), ("child", *child)])?)?;
        }

        #[cfg(feature = "chaos")]
        encode_chaos(&mut encoder)?;

        if let Some(lifecycle) = &self.lifecycle {
            let current = lifecycle.phase();
            let mut m = encoder.encode_descriptor(
                "canopy_app_phase",
                "1 for the app's current lifecycle phase, 0 for the others.",
                None,
                MetricType::Gauge,
            )?;
            for phase in Phase::ALL {
                ConstGauge::new(i64::from(phase == current))
                    .encode(m.encode_family(&[("phase", phase.name())])?)?;
            }
            let mut m = encoder.encode_descriptor(
                "canopy_app_phase_duration",
                "How long each lifecycle phase entered so far lasted (the current one: so far).",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for (phase, took) in lifecycle.durations() {
                ConstGauge::new(took.as_secs_f64())
                    .encode(m.encode_family(&[("phase", phase.name())])?)?;
            }
            if let Some(stopping) = lifecycle.stopping_for() {
                let m = encoder.encode_descriptor(
                    "canopy_app_stopping",
                    "Time since the app's stop was triggered.",
                    Some(&Unit::Seconds),
                    MetricType::Gauge,
                )?;
                ConstGauge::new(stopping.as_secs_f64()).encode(m)?;
            }
        }
        Ok(())
    }
}

/// Restarts in the window over the intensity. An intensity of 0 allows no restart at all: the
/// budget is then fully used by the first one.
fn used_ratio(used: u64, intensity: u32) -> f64 {
    if intensity == 0 {
        if used > 0 {
            1.0
        } else {
            0.0
        }
    } else {
        used as f64 / f64::from(intensity)
    }
}

/// `registry` in Prometheus' text format 0.0.4 ([`TEXT_CONTENT_TYPE`]), what a Pushgateway and
/// node_exporter's textfile collector read.
///
/// ```
/// let registry = prometheus_client::registry::Registry::default();
/// assert_eq!(canopy::metrics::encode(&registry).unwrap(), "");
/// ```
pub fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

/// Writes `registry` in text format 0.0.4 to `path`, whole or not at all: it is written beside
/// `path` and renamed over it, so a reader (node_exporter's textfile collector) never sees half a
/// file.
///
/// ```
/// let registry = prometheus_client::registry::Registry::default();
/// let path = std::env::temp_dir().join("canopy-metrics-doc.prom");
/// canopy::metrics::write_file(&path, &registry).unwrap();
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn write_file(path: impl AsRef<Path>, registry: &Registry) -> io::Result<()> {
    let text = encode(registry).map_err(|_| io::Error::other("metrics could not be encoded"))?;
    write_text(path.as_ref(), &text)
}

/// Writes `text` to `path` through a file beside it, renamed over it.
pub(crate) fn write_text(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::used_ratio;

    #[test]
    fn the_used_ratio_is_full_at_the_intensity_and_for_any_restart_of_a_zero_budget() {
        assert_eq!(used_ratio(0, 3), 0.0);
        assert_eq!(used_ratio(3, 3), 1.0);
        assert_eq!(used_ratio(0, 0), 0.0);
        assert_eq!(used_ratio(1, 0), 1.0);
    }
}
