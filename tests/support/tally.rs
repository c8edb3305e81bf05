//! A generated service for tests that read a service's counters: it counts its calls.

/// Counts its `add` calls.
pub struct Tally {
    n: u64,
}

#[canopy::service]
impl Tally {
    pub fn init(_: ()) -> Self {
        Tally { n: 0 }
    }

    /// One more; the count so far.
    pub fn add(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}
