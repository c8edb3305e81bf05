struct Counter;

#[canopy::service(shutdown = "5 seconds")]
impl Counter {
    fn init() -> Self {
        Counter
    }

    #[call(timeout = "fast")]
    fn get(&self) -> u64 {
        0
    }

    #[call(timeout = 500)]
    fn get2(&self) -> u64 {
        0
    }
}

fn main() {}
