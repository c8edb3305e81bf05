struct Counter;

#[canopy::service]
impl Counter {
    fn init() -> Self {
        Counter
    }

    fn consume(self) -> u64 {
        0
    }
}

fn main() {}
