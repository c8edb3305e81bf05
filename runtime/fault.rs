//! Named fault points: `canopy::fault_point!("name").await?` in a handler, configured at run time.
//!
//! A fault point is a place in your code where a test (or a staging run) can make things go wrong
//! on purpose: return an error, panic, or wait. Which, and when, is a `Scenario` set by name with
//! `configure` (feature `chaos`):
//!
//! | scenario | what a hit does |
//! |---|---|
//! | `Scenario::off` (or no scenario) | nothing: `Ok(())` |
//! | `Scenario::error` | returns `Err(FaultError)` |
//! | `Scenario::panic` | panics, in the task that awaits the point |
//! | `Scenario::delay` | waits on tokio's timer, then `Ok(())`: the worker thread runs other tasks meanwhile |
//! | `.after(n)` | the first `n` hits pass, the later ones fire |
//! | `.probability(p, seed)` | each hit (past `after`) fires with probability `p`, drawn from a generator seeded with `seed` |
//!
//! The point is a future: its scenario is read when it is awaited, not when it is created. A
//! delay is a tokio sleep, never `std::thread::sleep`: a point that waits 10 s in one actor does
//! not stop the other actors that share its worker thread.
//!
//! **Without the `chaos` feature**, `fault_point!("name")` is `std::future::ready(Ok(()))`: no
//! lookup, no counter, no lock; the name is not even evaluated. Code that uses fault points
//! compiles the same way with and without the feature, since [`FaultError`] exists in both.
//!
//! ```
//! async fn save(row: u64) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     canopy::fault_point!("db.save").await?;
//!     let _ = row; // … write it
//!     Ok(())
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # #[cfg(feature = "chaos")] {
//! use canopy::fault::{self, Scenario};
//! fault::configure("db.save", Scenario::error().after(2)).unwrap();
//! assert!(save(1).await.is_ok());
//! assert!(save(2).await.is_ok());
//! assert!(save(3).await.is_err()); // the third hit fires
//! assert_eq!(fault::stats("db.save").map(|s| (s.hits, s.fired)), Some((3, 1)));
//! fault::clear("db.save");
//! # }
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;

/// The error a fault point returns when its scenario is [`Scenario::error`].
///
/// ```
/// let e = canopy::fault::FaultError::new("db.save");
/// assert_eq!(e.point(), "db.save");
/// assert_eq!(e.to_string(), "fault point `db.save` injected an error");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError {
    point: Cow<'static, str>,
}

impl FaultError {
    /// The error of the point `point` (useful to compare against in a test).
    ///
    /// ```
    /// assert_eq!(canopy::fault::FaultError::new("x").point(), "x");
    /// ```
    pub fn new(point: impl Into<Cow<'static, str>>) -> Self {
        FaultError {
            point: point.into(),
        }
    }

    /// The name of the point that fired.
    ///
    /// ```
    /// assert_eq!(canopy::fault::FaultError::new("x").point(), "x");
    /// ```
    pub fn point(&self) -> &str {
        &self.point
    }
}

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault point `{}` injected an error", self.point)
    }
}

impl std::error::Error for FaultError {}

/// A named fault point: a future of `Result<(), FaultError>` to await where the fault should
/// happen. See the [module docs](crate::fault) for the scenarios.
///
/// ```
/// async fn handler() -> Result<u32, canopy::fault::FaultError> {
///     canopy::fault_point!("handler.start").await?;
///     Ok(7)
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(handler().await, Ok(7)); // no scenario configured: the point does nothing
/// # }
/// ```
#[cfg(feature = "chaos")]
#[macro_export]
macro_rules! fault_point {
    ($name:expr $(,)?) => {
        $crate::fault::__hit($name)
    };
}

/// A named fault point: a future of `Result<(), FaultError>` to await where the fault should
/// happen. See the [module docs](crate::fault) for the scenarios.
///
/// ```
/// async fn handler() -> Result<u32, canopy::fault::FaultError> {
///     canopy::fault_point!("handler.start").await?;
///     Ok(7)
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(handler().await, Ok(7)); // no scenario configured: the point does nothing
/// # }
/// ```
#[cfg(not(feature = "chaos"))]
#[macro_export]
macro_rules! fault_point {
    ($name:expr $(,)?) => {{
        // Never called: the name type-checks as a string and costs nothing.
        let _ = || -> &str { $name };
        ::core::future::ready(::core::result::Result::<(), $crate::fault::FaultError>::Ok(
            (),
        ))
    }};
}

#[cfg(feature = "chaos")]
pub use enabled::*;

#[cfg(feature = "chaos")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::LazyLock;
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::FaultError;
    use crate::chaos::Rng;

    /// What a fault point does when it fires.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Act {
        Error,
        Panic,
        Delay(Duration),
    }

    /// What a fault point does, set by name with [`configure`]; see the [module docs](crate::fault).
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::fault::Scenario;
    /// let _ = Scenario::delay(Duration::from_millis(50)).after(10).probability(0.5, 7);
    /// ```
    #[derive(Debug, Clone, PartialEq)]
    pub struct Scenario {
        act: Option<Act>,
        after: u64,
        probability: Option<(f64, u64)>,
    }

    impl Scenario {
        /// The point does nothing (as if no scenario were set; [`stats`] still counts its hits).
        ///
        /// ```
        /// canopy::fault::configure("quiet", canopy::fault::Scenario::off()).unwrap();
        /// ```
        pub fn off() -> Self {
            Scenario {
                act: None,
                after: 0,
                probability: None,
            }
        }

        /// The point returns `Err(FaultError)` each time it fires.
        ///
        /// ```
        /// let _ = canopy::fault::Scenario::error();
        /// ```
        pub fn error() -> Self {
            Scenario {
                act: Some(Act::Error),
                ..Self::off()
            }
        }

        /// The point panics each time it fires (in the task that awaits it: in a service's handler,
        /// the service fails with the panic's message, as any panic there).
        ///
        /// ```
        /// let _ = canopy::fault::Scenario::panic();
        /// ```
        pub fn panic() -> Self {
            Scenario {
                act: Some(Act::Panic),
                ..Self::off()
            }
        }

        /// The point waits `d` on tokio's timer each time it fires, then returns `Ok(())`.
        /// `Duration::MAX` waits for ever; zero is refused by [`configure`].
        ///
        /// ```
        /// let _ = canopy::fault::Scenario::delay(std::time::Duration::from_millis(20));
        /// ```
        pub fn delay(d: Duration) -> Self {
            Scenario {
                act: Some(Act::Delay(d)),
                ..Self::off()
            }
        }

        /// The first `n` hits pass; the point fires from hit `n + 1` on (0: from the first).
        ///
        /// ```
        /// let _ = canopy::fault::Scenario::error().after(3);
        /// ```
        pub fn after(mut self, n: u64) -> Self {
            self.after = n;
            self
        }

        /// Each hit past [`after`](Self::after) fires with probability `p` (0 to 1 inclusive),
        /// drawn from a generator seeded with `seed`: the same seed and the same hits fire the
        /// same way in every run.
        ///
        /// ```
        /// let _ = canopy::fault::Scenario::error().probability(0.25, 42);
        /// ```
        pub fn probability(mut self, p: f64, seed: u64) -> Self {
            self.probability = Some((p, seed));
            self
        }
    }

    /// A scenario [`configure`] refuses.
    ///
    /// ```
    /// use canopy::fault::{configure, FaultConfigError, Scenario};
    /// assert_eq!(configure("", Scenario::error()), Err(FaultConfigError::EmptyName));
    /// ```
    #[derive(Debug, Clone, PartialEq)]
    #[non_exhaustive]
    pub enum FaultConfigError {
        /// The point's name is empty.
        EmptyName,
        /// A probability that is not a number between 0 and 1 inclusive.
        Probability(f64),
        /// A delay of zero: it would do nothing; use [`Scenario::off`].
        ZeroDelay,
    }

    impl std::fmt::Display for FaultConfigError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Self::EmptyName => f.write_str("a fault point's name cannot be empty"),
                Self::Probability(p) => {
                    write!(f, "a fault probability must be between 0 and 1, not {p}")
                }
                Self::ZeroDelay => f.write_str(
                    "a fault delay of zero does nothing; use Scenario::off to turn a point off",
                ),
            }
        }
    }

    impl std::error::Error for FaultConfigError {}

    /// How often a point was reached and how often it fired, since it was last configured.
    ///
    /// ```
    /// canopy::fault::configure("counted", canopy::fault::Scenario::off()).unwrap();
    /// assert_eq!(canopy::fault::stats("counted"), Some(canopy::fault::PointStats { hits: 0, fired: 0 }));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PointStats {
        /// Awaits of the point.
        pub hits: u64,
        /// Hits where the scenario's fault happened.
        pub fired: u64,
    }

    struct Point {
        scenario: Scenario,
        rng: Rng,
        stats: PointStats,
    }

    static POINTS: LazyLock<Mutex<HashMap<String, Point>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));

    /// Sets the scenario of the point `name` (replacing any earlier one and resetting its counts).
    /// Points are process-wide: every `fault_point!(name)` with this name follows it.
    ///
    /// ```
    /// use canopy::fault::{configure, FaultConfigError, Scenario};
    /// assert!(configure("p", Scenario::error().probability(0.5, 1)).is_ok());
    /// assert_eq!(
    ///     configure("p", Scenario::error().probability(1.5, 1)),
    ///     Err(FaultConfigError::Probability(1.5))
    /// );
    /// assert_eq!(
    ///     configure("p", Scenario::delay(std::time::Duration::ZERO)),
    ///     Err(FaultConfigError::ZeroDelay)
    /// );
    /// ```
    pub fn configure(name: &str, scenario: Scenario) -> Result<(), FaultConfigError> {
        if name.is_empty() {
            return Err(FaultConfigError::EmptyName);
        }
        if let Some((p, _)) = scenario.probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(FaultConfigError::Probability(p));
            }
        }
        if scenario.act == Some(Act::Delay(Duration::ZERO)) {
            return Err(FaultConfigError::ZeroDelay);
        }
        let rng = Rng::new(scenario.probability.map_or(0, |(_, seed)| seed));
        POINTS.lock().insert(
            name.to_string(),
            Point {
                scenario,
                rng,
                stats: PointStats { hits: 0, fired: 0 },
            },
        );
        Ok(())
    }

    /// Removes the scenario of `name`: its point does nothing again. Returns whether it had one.
    ///
    /// ```
    /// canopy::fault::configure("gone", canopy::fault::Scenario::panic()).unwrap();
    /// assert!(canopy::fault::clear("gone"));
    /// assert!(!canopy::fault::clear("gone"));
    /// ```
    pub fn clear(name: &str) -> bool {
        POINTS.lock().remove(name).is_some()
    }

    /// The counts of `name` since it was configured; `None` for a point with no scenario (hits
    /// of an unconfigured point are not counted: that costs a lookup only).
    ///
    /// ```
    /// assert_eq!(canopy::fault::stats("never-configured"), None);
    /// ```
    pub fn stats(name: &str) -> Option<PointStats> {
        POINTS.lock().get(name).map(|p| p.stats)
    }

    /// Every configured point and its counts, sorted by name (the metrics read this).
    #[cfg(feature = "metrics")]
    pub(crate) fn all_stats() -> Vec<(String, PointStats)> {
        let mut all: Vec<(String, PointStats)> = POINTS
            .lock()
            .iter()
            .map(|(name, p)| (name.clone(), p.stats))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// What `fault_point!(name)` expands to with the `chaos` feature.
    #[doc(hidden)]
    pub async fn __hit(name: &'static str) -> Result<(), FaultError> {
        // Decided under the lock, acted on after it: a delay must not hold the registry.
        let act = {
            let mut points = POINTS.lock();
            let Some(point) = points.get_mut(name) else {
                return Ok(());
            };
            point.stats.hits += 1;
            let past = point.stats.hits > point.scenario.after;
            // The draw happens on every hit past `after`, so the sequence depends on hits alone.
            let drawn = match point.scenario.probability {
                Some((p, _)) if past => point.rng.unit() < p,
                _ => true,
            };
            match point.scenario.act {
                Some(act) if past && drawn => {
                    point.stats.fired += 1;
                    tracing::info!(
                        target: "canopy::chaos",
                        point = name,
                        hit = point.stats.hits,
                        action = ?act,
                        "fault point fired"
                    );
                    act
                }
                _ => return Ok(()),
            }
        };
        match act {
            Act::Error => Err(FaultError::new(name)),
            Act::Panic => panic!("fault point `{name}` injected a panic"),
            Act::Delay(d) => {
                tokio::time::sleep_until(crate::deadline_in(d)).await;
                Ok(())
            }
        }
    }
}

#[cfg(all(test, not(feature = "chaos")))]
mod tests {
    use super::FaultError;
    use std::future::Future;

    /// Without the feature the point is a ready future holding `Ok(())`: the type says it, and
    /// its size is that of the value alone (no name, no registry handle, no timer).
    #[test]
    fn a_point_without_the_feature_is_a_ready_ok() {
        fn ready(_: &std::future::Ready<Result<(), FaultError>>) {}
        let point = crate::fault_point!("anything");
        ready(&point);
        assert_eq!(
            std::mem::size_of_val(&point),
            std::mem::size_of::<Option<Result<(), FaultError>>>()
        );
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut point = point;
        assert_eq!(
            std::pin::Pin::new(&mut point).poll(&mut cx),
            std::task::Poll::Ready(Ok(()))
        );
    }
}
