struct Counter {
    n: u64,
}

#[canopy::service]
impl Counter {
    fn get(&self) -> u64 {
        self.n
    }
}

fn main() {}
