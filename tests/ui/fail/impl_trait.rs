struct Runner;

#[canopy::service]
impl Runner {
    fn init() -> Self {
        Runner
    }

    fn run(&self, job: impl FnOnce() + Send + 'static) {
        job()
    }

    fn numbers(&self) -> impl Iterator<Item = u8> {
        0..3
    }
}

fn main() {}
