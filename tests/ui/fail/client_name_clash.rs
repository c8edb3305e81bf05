struct Counter;

#[canopy::service]
impl Counter {
    fn init() -> Self {
        Counter
    }

    fn with_timeout(&self, ms: u64) -> u64 {
        ms
    }
}

fn main() {}
