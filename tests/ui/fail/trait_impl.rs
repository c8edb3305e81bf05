#[derive(Clone)]
struct Counter;

#[canopy::service]
impl Default for Counter {
    fn default() -> Self {
        Counter
    }
}

fn main() {}
