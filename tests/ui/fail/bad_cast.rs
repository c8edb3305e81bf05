struct Counter {
    n: u64,
}

#[canopy::service]
impl Counter {
    fn init() -> Self {
        Counter { n: 0 }
    }

    #[cast]
    fn get(&self) -> u64 {
        self.n
    }
}

fn main() {}
