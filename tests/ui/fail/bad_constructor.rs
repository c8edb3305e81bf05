struct Counter;

#[canopy::service]
impl Counter {
    fn init(&self) -> u64 {
        0
    }
}

fn main() {}
