struct Counter;

#[canopy::service(restart = sometimes)]
impl Counter {
    fn init() -> Self {
        Counter
    }
}

fn main() {}
