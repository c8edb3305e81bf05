struct Counter;

#[canopy::service]
impl Counter {
    fn init() -> Self {
        Counter
    }

    #[init]
    fn new() -> Self {
        Counter
    }
}

fn main() {}
