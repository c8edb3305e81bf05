//! Restart backoff: wait before a restart, longer after each failure, with jitter (Akka's
//! `restartWithBackoff`; OTP has none).
//!
//! The delay of attempt `n` (0 for the first restart after a period of stability) is
//! `min(max, min_delay · 2ⁿ)`, then stretched by a random factor in `[1, 1 + jitter]` so that many
//! children failing together do not restart in lockstep. A child that ran for at least `reset_after`
//! since its last successful start goes back to attempt 0; a start that failed is no start, however
//! long it took to fail.
//!
//! A backed-off restart counts against the supervisor's restart intensity when it is *scheduled*;
//! while it waits, the supervisor answers API calls and can be shut down, and the child shows as
//! restarting with its next attempt time. The intensity alone does not stop every crash loop: once
//! the delays grow past the intensity period, each restart finds the window empty again and the
//! loop would go on forever, one long wait after another. So a backoff also bounds the consecutive
//! restarts of a child that never stayed up for `reset_after` ([`Backoff::max_retries`], Akka's
//! `maxNrOfRetries`, 10 by default): the restart past the bound is refused exactly as one past the
//! intensity is, and the supervisor gives up and escalates.
//!
//! Everything here is pure: randomness comes from a small seeded generator the caller owns.
//!
//! ```
//! use std::time::Duration;
//! use canopy::backoff::Backoff;
//!
//! let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5)).jitter(0.0);
//! assert_eq!(b.delay(0, 0.5), Duration::from_millis(100));
//! assert_eq!(b.delay(3, 0.5), Duration::from_millis(800));
//! assert_eq!(b.delay(10, 0.5), Duration::from_secs(5)); // capped
//! assert_eq!(b.get_max_retries(), 10);
//! ```

use std::time::{Duration, Instant};

use crate::spec::SpecError;

/// How many consecutive restarts a backoff allows unless told otherwise ([`Backoff::max_retries`]).
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// An exponential backoff policy with jitter, a reset-after period and a bound on consecutive
/// restarts.
///
/// ```
/// use std::time::Duration;
/// use canopy::backoff::Backoff;
/// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
///     .jitter(0.1)
///     .reset_after(Duration::from_secs(30))
///     .max_retries(5);
/// assert!(b.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    reset_after: Duration,
    max_retries: u32,
}

impl Backoff {
    /// From `min` doubling up to `max`, with 20 % jitter, reset after `max` of stability, and at
    /// most [`DEFAULT_MAX_RETRIES`] consecutive restarts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::backoff::Backoff;
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(b.get_reset_after(), Duration::from_secs(1));
    /// ```
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            jitter: 0.2,
            reset_after: max,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    /// The random stretch: each delay is multiplied by a factor in `[1, 1 + jitter]`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::backoff::Backoff;
    /// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.5);
    /// assert_eq!(b.delay(0, 1.0), Duration::from_millis(150));
    /// ```
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// How long a child must run after a start before its next failure counts as attempt 0 again
    /// (and no longer counts towards [`max_retries`](Self::max_retries)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::backoff::Backoff;
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
    ///     .reset_after(Duration::from_secs(60));
    /// assert_eq!(b.get_reset_after(), Duration::from_secs(60));
    /// ```
    pub fn reset_after(mut self, stable: Duration) -> Self {
        self.reset_after = stable;
        self
    }

    /// At most `n` consecutive restarts of a child that does not stay up for
    /// [`reset_after`](Self::reset_after) in between (Akka's `maxNrOfRetries`); a failed start counts
    /// as one. The restart after the `n`-th is refused as one past the restart intensity would be:
    /// the supervisor reports `reached_max_restart_intensity` and shuts down. This is what stops a
    /// crash loop whose delays have outgrown the intensity period, which the intensity alone never
    /// sees as a loop. Default [`DEFAULT_MAX_RETRIES`] (10).
    ///
    /// `0` is refused by [`validate`](Self::validate): it would allow no restart at all, which is
    /// better said with a temporary child or a restart intensity of 0, and elsewhere it is often
    /// read as "unbounded". For a practically unbounded backoff, give `u32::MAX`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::{backoff::Backoff, SpecError};
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(b.max_retries(3).get_max_retries(), 3);
    /// assert!(matches!(b.max_retries(0).validate(), Err(SpecError::InvalidBackoff(_))));
    /// ```
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The smallest delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::backoff::Backoff;
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(b.get_min(), Duration::from_millis(10));
    /// ```
    pub fn get_min(&self) -> Duration {
        self.min
    }

    /// The largest delay before jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::backoff::Backoff;
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(b.get_max(), Duration::from_secs(1));
    /// ```
    pub fn get_max(&self) -> Duration {
        self.max
    }

    /// How long a child must run for its next failure to start the backoff over.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::backoff::Backoff;
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(2));
    /// assert_eq!(b.get_reset_after(), Duration::from_secs(2)); // the maximum by default
    /// ```
    pub fn get_reset_after(&self) -> Duration {
        self.reset_after
    }

    /// The bound on consecutive restarts ([`max_retries`](Self::max_retries)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::backoff::{Backoff, DEFAULT_MAX_RETRIES};
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(b.get_max_retries(), DEFAULT_MAX_RETRIES);
    /// ```
    pub fn get_max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Rejects a minimum above the maximum, a jitter that is negative or not a number, and a
    /// [`max_retries`](Self::max_retries) of 0.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use canopy::{backoff::Backoff, SpecError};
    /// let bad = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
    /// assert!(matches!(bad.validate(), Err(SpecError::InvalidBackoff(_))));
    /// ```
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.min > self.max {
            return Err(SpecError::InvalidBackoff(format!(
                "minimum {:?} is above maximum {:?}",
                self.min, self.max
            )));
        }
        if !(self.jitter >= 0.0 && self.jitter.is_finite()) {
            return Err(SpecError::InvalidBackoff(format!(
                "jitter {} must be a finite number >= 0",
                self.jitter
            )));
        }
        if self.max_retries == 0 {
            return Err(SpecError::InvalidBackoff(
                "max_retries must be at least 1 (u32::MAX for practically unbounded)".into(),
            ));
        }
        Ok(())
    }

    /// The delay before restart attempt `attempt`, given a uniform random number in `[0, 1)`.
    /// Saturates at `Duration::MAX` rather than overflow, whatever the policy's durations.
    ///
    /// ```
    /// use std::time::Duration;
    /// use canopy::backoff::Backoff;
    /// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
    /// assert_eq!(b.delay(1, 0.3), Duration::from_millis(200));
    /// assert_eq!(Backoff::new(Duration::MAX, Duration::MAX).delay(0, 0.9), Duration::MAX);
    /// ```
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let base = self
            .min
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        // The stretch is added to the exact base rather than the base multiplied through a float,
        // so a delay without jitter is exactly the base; and saturating, as `mul_f64` would panic
        // on a product too large for a Duration, and the policy is the user's.
        let stretch = self.jitter * random.clamp(0.0, 1.0);
        base.saturating_add(
            Duration::try_from_secs_f64(base.as_secs_f64() * stretch).unwrap_or(Duration::MAX),
        )
    }
}

/// One child's progress through its backoff: which attempt comes next, and when it last started.
///
/// ```
/// use std::time::{Duration, Instant};
/// use canopy::backoff::{Backoff, BackoffState};
/// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1)).jitter(0.0).max_retries(2);
/// let mut s = BackoffState::default();
/// let t0 = Instant::now();
/// assert!(s.next_delay(&b, t0, 0.0).is_some());
/// assert!(s.next_delay(&b, t0, 0.0).is_some());
/// assert_eq!(s.next_delay(&b, t0, 0.0), None); // a third restart in a row: past the bound
/// ```
#[derive(Debug, Clone, Default)]
pub struct BackoffState {
    attempt: u32,
    last_start: Option<Instant>,
}

impl BackoffState {
    /// Records a successful start at `now`: the child's stability is measured from here. Call it
    /// only once the start has succeeded, so that a failed start never looks like a stable run.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use canopy::backoff::{Backoff, BackoffState};
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1)).jitter(0.0);
    /// let mut s = BackoffState::default();
    /// let t0 = Instant::now();
    /// let _ = s.next_delay(&b, t0, 0.0);
    /// s.started(t0);
    /// assert_eq!(s.next_delay(&b, t0 + Duration::from_secs(1), 0.0), Some(Duration::from_millis(10)));
    /// ```
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    /// Forgets the series: the next restart is attempt 0. For a start that is no restart (an API
    /// start or restart), which begins a new series.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use canopy::backoff::{Backoff, BackoffState};
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1)).jitter(0.0);
    /// let mut s = BackoffState::default();
    /// let t0 = Instant::now();
    /// let _ = s.next_delay(&b, t0, 0.0);
    /// s.reset();
    /// assert_eq!(s.consecutive(), 0);
    /// assert_eq!(s.next_delay(&b, t0, 0.0), Some(Duration::from_millis(10)));
    /// ```
    pub fn reset(&mut self) {
        *self = BackoffState::default();
    }

    /// Restarts granted in a row since the last stable run (or reset).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use canopy::backoff::{Backoff, BackoffState};
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    /// let mut s = BackoffState::default();
    /// let _ = s.next_delay(&b, Instant::now(), 0.0);
    /// assert_eq!(s.consecutive(), 1);
    /// ```
    pub fn consecutive(&self) -> u32 {
        self.attempt
    }

    /// The delay for the next restart, scheduled at `now`, and one more restart in a row; or `None`
    /// when that restart would be past `policy`'s [`max_retries`](Backoff::max_retries), and the
    /// supervisor must give up. A child that ran for `reset_after` since its last start starts over
    /// at attempt 0.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use canopy::backoff::{Backoff, BackoffState};
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1)).jitter(0.0);
    /// let mut s = BackoffState::default();
    /// let t0 = Instant::now();
    /// s.started(t0);
    /// assert_eq!(s.next_delay(&b, t0, 0.0), Some(Duration::from_millis(10)));
    /// assert_eq!(s.next_delay(&b, t0, 0.0), Some(Duration::from_millis(20)));
    /// s.started(t0);
    /// // ran for a second: back to the minimum
    /// assert_eq!(s.next_delay(&b, t0 + Duration::from_secs(1), 0.0), Some(Duration::from_millis(10)));
    /// ```
    #[must_use = "None means the restart is refused: the supervisor must give up"]
    pub fn next_delay(&mut self, policy: &Backoff, now: Instant, random: f64) -> Option<Duration> {
        if let Some(started) = self.last_start.take() {
            if now.saturating_duration_since(started) >= policy.reset_after {
                self.attempt = 0;
            }
        }
        if self.attempt >= policy.max_retries {
            return None;
        }
        let delay = policy.delay(self.attempt, random);
        self.attempt = self.attempt.saturating_add(1);
        Some(delay)
    }
}

/// A small seeded random generator (SplitMix64): enough for jitter, and reproducible in tests.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator with this seed.
    pub fn seeded(seed: u64) -> Self {
        Jitter { state: seed }
    }

    /// A generator seeded from the clock and a process-wide counter, different per supervisor.
    ///
    /// ```
    /// use canopy::backoff::Jitter;
    /// // Created in the same clock tick, two generators still differ.
    /// assert_ne!(Jitter::from_entropy().next_unit(), Jitter::from_entropy().next_unit());
    /// ```
    pub fn from_entropy() -> Self {
        // The counter, not an address: a reference to a zero-sized value has the same dangling
        // address every time, so it told supervisors started in the same clock tick nothing apart,
        // and those are exactly the ones whose restarts jitter must spread.
        static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Jitter::seeded(nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_min_and_caps_at_max() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300)).jitter(0.0);
        let delays: Vec<_> = (0..5).map(|n| b.delay(n, 0.9).as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 300, 300]);
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_millis(300));
    }

    #[test]
    fn jitter_stretches_within_bounds() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.5);
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(150));
        let mut rng = Jitter::seeded(7);
        for _ in 0..1000 {
            let u = rng.next_unit();
            assert!((0.0..1.0).contains(&u));
            let d = b.delay(0, u);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(150));
        }
    }

    #[test]
    fn invalid_policies_are_typed_errors() {
        let ok = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
        assert!(ok.validate().is_ok());
        assert!(ok.jitter(-0.1).validate().is_err());
        assert!(ok.jitter(f64::NAN).validate().is_err());
        assert!(Backoff::new(Duration::from_secs(2), Duration::from_secs(1))
            .validate()
            .is_err());
    }

    #[test]
    fn stability_resets_the_attempt_count() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(10))
            .jitter(0.0)
            .reset_after(Duration::from_secs(2));
        let t0 = Instant::now();
        let mut s = BackoffState::default();
        s.started(t0);
        assert_eq!(s.next_delay(&b, t0, 0.0), Some(Duration::from_millis(10)));
        s.started(t0);
        assert_eq!(
            s.next_delay(&b, t0 + Duration::from_secs(1), 0.0),
            Some(Duration::from_millis(20))
        );
        s.started(t0 + Duration::from_secs(1));
        assert_eq!(
            s.next_delay(&b, t0 + Duration::from_secs(3), 0.0),
            Some(Duration::from_millis(10))
        );
    }

    #[test]
    fn the_default_bound_is_ten_consecutive_restarts() {
        let b = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
        assert_eq!(b.get_max_retries(), DEFAULT_MAX_RETRIES);
        assert_eq!(DEFAULT_MAX_RETRIES, 10);
        let t0 = Instant::now();
        let mut s = BackoffState::default();
        for n in 0..10 {
            assert!(s.next_delay(&b, t0, 0.0).is_some(), "restart {n}");
        }
        assert_eq!(s.next_delay(&b, t0, 0.0), None);
    }

    #[test]
    fn past_the_bound_every_further_restart_is_refused_and_nothing_advances() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
            .jitter(0.0)
            .max_retries(2);
        let t0 = Instant::now();
        let mut s = BackoffState::default();
        assert!(s.next_delay(&b, t0, 0.0).is_some());
        assert!(s.next_delay(&b, t0, 0.0).is_some());
        assert_eq!(s.next_delay(&b, t0, 0.0), None);
        assert_eq!(s.next_delay(&b, t0, 0.0), None);
        assert_eq!(s.consecutive(), 2);
    }

    #[test]
    fn a_stable_run_resets_the_count_towards_the_bound_but_a_short_one_does_not() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
            .jitter(0.0)
            .reset_after(Duration::from_secs(5))
            .max_retries(2);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = BackoffState::default();
        assert!(s.next_delay(&b, at(0), 0.0).is_some());
        s.started(at(1));
        // Up 4 s: not stable, so this is the second restart in a row.
        assert!(s.next_delay(&b, at(5), 0.0).is_some());
        s.started(at(6));
        // Up 5 s: stable, the series starts over.
        assert_eq!(
            s.next_delay(&b, at(11), 0.0),
            Some(Duration::from_millis(10))
        );
        assert_eq!(s.consecutive(), 1);
        assert!(s.next_delay(&b, at(11), 0.0).is_some());
        assert_eq!(s.next_delay(&b, at(11), 0.0), None);
    }

    #[test]
    fn without_a_recorded_start_nothing_resets() {
        // A restart whose start failed records no start: however long ago the last attempt was,
        // the series goes on.
        let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
            .jitter(0.0)
            .reset_after(Duration::from_secs(1));
        let t0 = Instant::now();
        let mut s = BackoffState::default();
        assert_eq!(s.next_delay(&b, t0, 0.0), Some(Duration::from_millis(10)));
        assert_eq!(
            s.next_delay(&b, t0 + Duration::from_secs(60), 0.0),
            Some(Duration::from_millis(20))
        );
    }

    #[test]
    fn reset_starts_a_new_series() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
            .jitter(0.0)
            .max_retries(1);
        let t0 = Instant::now();
        let mut s = BackoffState::default();
        assert!(s.next_delay(&b, t0, 0.0).is_some());
        assert_eq!(s.next_delay(&b, t0, 0.0), None);
        s.reset();
        assert_eq!(s.next_delay(&b, t0, 0.0), Some(Duration::from_millis(10)));
    }

    #[test]
    fn zero_max_retries_is_refused() {
        let b = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
        assert!(matches!(
            b.max_retries(0).validate(),
            Err(SpecError::InvalidBackoff(_))
        ));
        assert!(b.max_retries(1).validate().is_ok());
        assert!(b.max_retries(u32::MAX).validate().is_ok());
    }

    #[test]
    fn huge_delays_saturate_instead_of_panicking() {
        let b = Backoff::new(Duration::MAX, Duration::MAX).jitter(1.0);
        assert_eq!(b.delay(0, 0.99), Duration::MAX);
        assert_eq!(b.delay(u32::MAX, 0.99), Duration::MAX);
        let big = Duration::from_secs(u64::MAX / 2);
        assert_eq!(Backoff::new(big, big).jitter(0.0).delay(0, 0.0), big);
    }
}
