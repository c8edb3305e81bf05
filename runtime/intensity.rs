//! The restart window: how many restarts a supervisor may make before it gives up.
//!
//! OTP keeps one timestamp per restart, truncated to whole seconds, so its real window is anywhere
//! between `period` and `period + 1` s and every restart costs O(restarts in the window). canopy keeps
//! an exact sliding window on the monotonic clock: a restart is allowed when fewer than `intensity`
//! restarts happened in the `period` before it. A restart at exactly `period` after an earlier one no
//! longer sees it. The queue holds at most `intensity` stamps and each stamp is pushed and popped once,
//! so a check is amortised O(1) and memory never exceeds the budget, whatever the intensity.
//!
//! Time is passed in, so the window is tested without a clock:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use canopy::intensity::RestartWindow;
//!
//! let mut w = RestartWindow::new(2, Duration::from_secs(5));
//! let t0 = Instant::now();
//! assert!(w.allow(t0));
//! assert!(w.allow(t0 + Duration::from_secs(1)));
//! assert!(!w.allow(t0 + Duration::from_secs(2)));   // a third restart inside 5 s: give up
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The restart budget of one supervisor: at most `intensity` restarts in any window of `period`.
#[derive(Debug, Clone)]
pub struct RestartWindow {
    intensity: u32,
    period: Duration,
    stamps: VecDeque<Instant>,
}

impl RestartWindow {
    /// The restarts allowed per period.
    ///
    /// ```
    /// let w = canopy::intensity::RestartWindow::new(3, std::time::Duration::from_secs(5));
    /// assert_eq!((w.intensity(), w.period()), (3, std::time::Duration::from_secs(5)));
    /// ```
    pub fn intensity(&self) -> u32 {
        self.intensity
    }

    /// The length of the window.
    ///
    /// ```
    /// let w = canopy::intensity::RestartWindow::new(3, std::time::Duration::from_secs(5));
    /// assert_eq!(w.period(), std::time::Duration::from_secs(5));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// A window allowing `intensity` restarts per `period`.
    pub fn new(intensity: u32, period: Duration) -> Self {
        RestartWindow {
            intensity,
            period,
            stamps: VecDeque::new(),
        }
    }

    /// Records a restart at `now`. Returns false when it exceeds the budget: the supervisor must give
    /// up. A refused restart is not recorded.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use canopy::intensity::RestartWindow;
    /// let mut none_allowed = RestartWindow::new(0, Duration::from_secs(5));
    /// assert!(!none_allowed.allow(Instant::now()));
    /// ```
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.stamps.front() {
            if now.saturating_duration_since(oldest) >= self.period {
                self.stamps.pop_front();
            } else {
                break;
            }
        }
        if self.stamps.len() >= self.intensity as usize {
            return false;
        }
        self.stamps.push_back(now);
        true
    }

    /// Restarts counted in the window that ends at `now`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use canopy::intensity::RestartWindow;
    /// let mut w = RestartWindow::new(3, Duration::from_secs(1));
    /// let t0 = Instant::now();
    /// w.allow(t0);
    /// assert_eq!(w.in_window(t0), 1);
    /// assert_eq!(w.in_window(t0 + Duration::from_secs(1)), 0);
    /// ```
    pub fn in_window(&self, now: Instant) -> usize {
        self.stamps
            .iter()
            .filter(|&&s| now.saturating_duration_since(s) < self.period)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn intensity_zero_gives_up_on_first_restart() {
        let mut w = RestartWindow::new(0, secs(5.0));
        assert!(!w.allow(Instant::now()));
    }

    #[test]
    fn budget_is_per_window_and_frees_as_it_slides() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(3, secs(5.0));
        assert!(w.allow(t0));
        assert!(w.allow(t0 + secs(1.0)));
        assert!(w.allow(t0 + secs(2.0)));
        assert!(!w.allow(t0 + secs(4.9)), "fourth restart inside 5 s");
        // at t0+5 the first stamp leaves the window
        assert!(w.allow(t0 + secs(5.0)));
        assert!(!w.allow(t0 + secs(5.5)));
        assert!(w.allow(t0 + secs(6.0)));
    }

    #[test]
    fn exact_window_unlike_otp_whole_seconds() {
        // OTP (whole seconds, inclusive) refuses two crashes 1.5 s apart with intensity 1, period 1
        // about half of the time; the exact window always allows them.
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, secs(1.0));
        assert!(w.allow(t0));
        assert!(w.allow(t0 + secs(1.5)));
        assert!(!w.allow(t0 + secs(2.4)));
    }

    #[test]
    fn memory_is_bounded_by_intensity() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(4, secs(1000.0));
        for i in 0..10 {
            w.allow(t0 + secs(i as f64));
        }
        assert_eq!(w.stamps.len(), 4);
    }

    #[test]
    fn huge_intensity_allocates_nothing_up_front() {
        let w = RestartWindow::new(u32::MAX, secs(1.0));
        assert_eq!(w.stamps.capacity(), 0);
    }
}
