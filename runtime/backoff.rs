//! Restart backoff: wait before a restart, longer after each failure, with jitter (Akka's
//! `restartWithBackoff`; OTP has none).
//!
//! The delay of attempt `n` (0 for the first restart after a period of stability) is
//! `min(max, min_delay · 2ⁿ)`, then stretched by a random factor in `[1, 1 + jitter]` so that many
//! children failing together do not restart in lockstep. A child that ran for at least `reset_after`
//! since its last start goes back to attempt 0.
//!
//! A backed-off restart counts against the supervisor's restart intensity when it is *scheduled*,
//! so a crash loop still spends the budget and escalates; while it waits, the supervisor answers API
//! calls and can be shut down, and the child shows as restarting with its next attempt time.
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
//! ```

use std::time::{Duration, Instant};

use crate::spec::SpecError;

/// An exponential backoff policy with jitter and a reset-after period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    reset_after: Duration,
}

impl Backoff {
    /// From `min` doubling up to `max`, with 20 % jitter, reset after `max` of stability.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            jitter: 0.2,
            reset_after: max,
        }
    }

    /// The random stretch: each delay is multiplied by a factor in `[1, 1 + jitter]`.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// How long a child must run after a start before its next failure counts as attempt 0 again.
    pub fn reset_after(mut self, stable: Duration) -> Self {
        self.reset_after = stable;
        self
    }

    /// The smallest delay.
    pub fn get_min(&self) -> Duration {
        self.min
    }

    /// The largest delay before jitter.
    pub fn get_max(&self) -> Duration {
        self.max
    }

    /// Rejects a minimum above the maximum and a jitter that is negative or not a number.
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
        Ok(())
    }

    /// The delay before restart attempt `attempt`, given a uniform random number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let base = self
            .min
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        base.mul_f64(1.0 + self.jitter * random.clamp(0.0, 1.0))
    }
}

/// One child's progress through its backoff: which attempt comes next.
#[derive(Debug, Clone, Default)]
pub struct BackoffState {
    attempt: u32,
    last_start: Option<Instant>,
}

impl BackoffState {
    /// Records a successful start at `now`.
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    /// The delay for the next restart, scheduled at `now`; advances the attempt count. A child that
    /// ran for `reset_after` since its last start starts over at attempt 0.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use canopy::backoff::{Backoff, BackoffState};
    /// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1)).jitter(0.0);
    /// let mut s = BackoffState::default();
    /// let t0 = Instant::now();
    /// s.started(t0);
    /// assert_eq!(s.next_delay(&b, t0, 0.0), Duration::from_millis(10));
    /// assert_eq!(s.next_delay(&b, t0, 0.0), Duration::from_millis(20));
    /// s.started(t0);
    /// // ran for a second: back to the minimum
    /// assert_eq!(s.next_delay(&b, t0 + Duration::from_secs(1), 0.0), Duration::from_millis(10));
    /// ```
    pub fn next_delay(&mut self, policy: &Backoff, now: Instant, random: f64) -> Duration {
        if let Some(started) = self.last_start.take() {
            if now.saturating_duration_since(started) >= policy.reset_after {
                self.attempt = 0;
            }
        }
        let delay = policy.delay(self.attempt, random);
        self.attempt = self.attempt.saturating_add(1);
        delay
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
        assert_eq!(s.next_delay(&b, t0, 0.0).as_millis(), 10);
        s.started(t0);
        assert_eq!(
            s.next_delay(&b, t0 + Duration::from_secs(1), 0.0)
                .as_millis(),
            20
        );
        s.started(t0 + Duration::from_secs(1));
        assert_eq!(
            s.next_delay(&b, t0 + Duration::from_secs(3), 0.0)
                .as_millis(),
            10
        );
    }
}
